//! Upstream connections: per-core keep-alive pools keyed by backend address, and
//! connecting with a timeout. A connection goes back to its pool only when the caller
//! has read its response completely; the pool itself never looks at HTTP.

use crate::io::{uring, RecvBuf, Socket, TcpConn, UringConn};
use crate::runtime::core::CoreState;
use foldhash::HashMap;
use glommio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Receive buffer sizes for upstream connections.
const UPSTREAM_BUF_INITIAL: usize = 16 * 1024;
const UPSTREAM_BUF_MAX: usize = 80 * 1024;

/// A connection to a backend with its receive buffer.
pub struct Upstream {
    pub conn: Socket,
    pub buf: RecvBuf,
    pub addr: SocketAddr,
    /// True when it came from the pool (it may have been closed by the backend meanwhile).
    pub reused: bool,
    idle_since: Instant,
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    Timeout,
    Io(io::Error),
}

/// Opens a new connection to `addr`, giving up after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Upstream, ConnectError> {
    let conn = match uring::current() {
        Some(engine) => Socket::Uring(UringConn::connect(&engine, addr, timeout).await.map_err(
            |e| match e.kind() {
                io::ErrorKind::TimedOut => ConnectError::Timeout,
                _ => ConnectError::Io(e),
            },
        )?),
        None => Socket::Glommio(connect_glommio(addr, timeout).await?),
    };
    Ok(Upstream {
        conn,
        buf: RecvBuf::with_headroom(
            UPSTREAM_BUF_INITIAL,
            UPSTREAM_BUF_MAX,
            crate::io::HEAD_GROWTH,
        ),
        addr,
        reused: false,
        idle_since: portico_io::now(),
    })
}

async fn connect_glommio(addr: SocketAddr, timeout: Duration) -> Result<TcpConn, ConnectError> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| match e {
            glommio::GlommioError::TimedOut(_) => ConnectError::Timeout,
            glommio::GlommioError::IoError(io) if io.kind() == io::ErrorKind::TimedOut => {
                ConnectError::Timeout
            }
            glommio::GlommioError::IoError(io) => ConnectError::Io(io),
            other => ConnectError::Io(io::Error::other(other.to_string())),
        })?;
    Ok(TcpConn::new(stream))
}

/// Idle keep-alive connections of one core, per backend address, most recent last.
#[derive(Default)]
pub struct Pools {
    /// foldhash: keys are backend addresses from the config, never a client's.
    idle: HashMap<SocketAddr, Vec<Upstream>>,
}

impl Pools {
    /// The most recently used idle connection to `addr` that has not outlived `idle_timeout`.
    pub fn take(&mut self, addr: SocketAddr, idle_timeout: Duration) -> Option<Upstream> {
        let list = self.idle.get_mut(&addr)?;
        let now = portico_io::now();
        while let Some(mut up) = list.pop() {
            // A connection the backend closed while idle is known on the io_uring
            // engine: skip it rather than fail a request on it.
            if now.saturating_duration_since(up.idle_since) < idle_timeout && !up.conn.is_closed() {
                up.reused = true;
                return Some(up);
            }
        }
        None
    }

    /// Keeps `up` for reuse unless the pool for its backend already holds `max_idle`.
    pub fn put(&mut self, mut up: Upstream, max_idle: usize) {
        if max_idle == 0 || !up.buf.is_empty() {
            return;
        }
        up.idle_since = portico_io::now();
        let list = self.idle.entry(up.addr).or_default();
        if list.len() >= max_idle {
            // Drop the oldest: recent connections are the likeliest still open.
            list.remove(0);
        }
        list.push(up);
    }

    /// Closes connections idle for longer than `idle_timeout`.
    pub fn sweep(&mut self, idle_timeout: Duration) {
        self.idle.retain(|_, list| {
            list.retain(|up| up.idle_since.elapsed() < idle_timeout);
            !list.is_empty()
        });
    }

    pub fn idle_count(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }

    pub fn clear(&mut self) {
        self.idle.clear();
    }
}

/// Closes expired idle upstream connections now and then; sleeps long when there are none.
pub async fn sweep_task(core: Rc<CoreState>) {
    loop {
        let timeout = core
            .config()
            .map(|c| c.settings.upstream.idle_timeout)
            .unwrap_or(Duration::from_secs(60));
        let period = (timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
        glommio::timer::sleep(period).await;
        if core.is_draining() {
            return;
        }
        core.pools.borrow_mut().sweep(timeout);
    }
}
