//! The client's byte stream to one origin: plain TCP or TLS over a
//! [`portico_io::Socket`], opened on the thread's io_uring engine when it has one and
//! on glommio's `TcpStream` otherwise.
//!
//! Also the one way a connection's I/O is cut short from outside: a [`Kick`] that the
//! watchdog fires (a late response, the end of the run). Every read and write of a
//! connection goes through [`Kick::guard`], which ends it with an error as soon as the
//! kick fires; dropping a pending socket future is safe on both paths, so the
//! connection is then simply dropped and reopened. Guarding costs one flag test and,
//! when the operation waits, one waker comparison.

use crate::conn::Target;
use crate::tls::TlsStream;
use futures_lite::future;
use glommio::net::TcpStream;
use portico_io::uring::Engine;
use portico_io::{Conn, RecvBuf, Socket, TcpConn, UringConn};
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// A connection to an origin.
pub enum Transport {
    Plain(Socket),
    Tls(Box<TlsStream>),
}

impl Transport {
    /// Reads into the free space of `buf`; 0 means end of stream.
    pub async fn read(&mut self, buf: &mut RecvBuf) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.recv(buf).await,
            Transport::Tls(s) => {
                let spare = buf.spare();
                if spare.is_empty() {
                    return Err(io::Error::other("receive buffer full"));
                }
                let n = s.read(spare).await?;
                buf.commit(n);
                Ok(n)
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.send(data).await,
            Transport::Tls(s) => s.write_all(data).await,
        }
    }
}

/// Opens a connection (and runs the TLS handshake) within `timeout`, or by
/// `deadline` if that comes first. Errors are one-line messages.
pub async fn connect(
    engine: Option<&Rc<Engine>>,
    target: &Target,
    timeout: Duration,
    deadline: Option<Instant>,
) -> Result<Transport, String> {
    let now = Instant::now();
    let limit = match deadline {
        Some(d) => d.min(now + timeout),
        None => now + timeout,
    };
    let attempt = async {
        let tcp = match engine {
            Some(engine) => Socket::Uring(
                UringConn::connect(engine, target.addr, limit.saturating_duration_since(now))
                    .await?,
            ),
            None => {
                let stream = TcpStream::connect(target.addr).await.map_err(glommio_io)?;
                Socket::Glommio(TcpConn::new(stream))
            }
        };
        match &target.tls {
            None => Ok(Transport::Plain(tcp)),
            Some((config, name)) => {
                let tls = TlsStream::connect(tcp, config.clone(), name.clone()).await?;
                Ok(Transport::Tls(Box::new(tls)))
            }
        }
    };
    let timer = async {
        sleep_until(limit).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    };
    future::or(attempt, timer)
        .await
        .map_err(|e: io::Error| format!("connect to {}: {}", target.label, describe(&e)))
}

fn glommio_io(e: glommio::GlommioError<()>) -> io::Error {
    match e {
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => other.into(),
    }
}

/// `Connection refused` rather than `Connection refused (os error 111)`.
pub fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Completes at a deadline: a timer of the executor's io_uring engine, which fires on
/// time while the engine waits for completions in its ring (glommio's own timers would
/// wait for the engine to hand the core back), or glommio's timer without an engine.
pub use portico_io::uring::sleep_until;

/// Lets the watchdog end a connection's pending read or write.
#[derive(Default)]
pub struct Kick {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Kick {
    /// Ends the guarded operation in progress (and any later one, until [`reset`](Self::reset)).
    pub fn fire(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub fn reset(&self) {
        self.fired.set(false);
        self.waker.set(None);
    }

    /// Runs `op` unless the kick fires first; then `op` is dropped and the result is a
    /// `TimedOut` error.
    pub async fn guard<T>(&self, op: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        let mut op = pin!(op);
        poll_fn(|cx| {
            if self.fired.get() {
                return Poll::Ready(Err(kicked()));
            }
            let r = op.as_mut().poll(cx);
            if r.is_pending() {
                let w = match self.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                self.waker.set(Some(w));
            }
            r
        })
        .await
    }
}

fn kicked() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no response within the timeout")
}
