//! The gateway process: one pinned glommio executor per core, each with its own
//! `SO_REUSEPORT` listener so the kernel shards connections, plus a control thread for
//! signals and config reloads. A connection is accepted, served and closed on one core.
//! This module owns start-up, accept backpressure and shutdown; it does not look inside
//! requests (that is `proxy`).

pub mod control;
pub mod core;

pub use self::control::ConfigSource;
use self::core::{CoreMsg, CoreState};
use crate::config::CompiledConfig;
use crate::io::uring::{self, Acceptor, Flavor};
use crate::io::{Socket, TcpConn};
use crate::policy::services::Services;
use crate::ratelimit::{CoreShard, NodeLimiter};
use anyhow::{bail, Context};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Keys tracked per rate limit before quiet ones are evicted.
const MAX_LIMIT_KEYS: usize = 100_000;
/// How often each core settles its rate-limit leases with the node.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(50);

/// Backlog of each core's listener.
const LISTEN_BACKLOG: i32 = 4096;

/// How the gateway is started.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub listen: SocketAddr,
    /// Number of data-plane cores; `None` = every CPU this process may run on.
    pub cores: Option<usize>,
    pub source: ConfigSource,
    pub io: IoChoice,
}

/// Which path carries socket bytes on the cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoEngine {
    /// The io_uring engine where it starts, glommio's sockets where it does not.
    Auto,
    /// The io_uring engine or nothing.
    Uring,
    /// glommio's `TcpStream`.
    Glommio,
}

/// How long a core's task queue runs before glommio takes the core back to run its
/// timers (the deadline ticker among them) and the wakes from other threads.
const PREEMPT: std::time::Duration = std::time::Duration::from_millis(10);

/// The I/O engine and the ring flags to try first.
#[derive(Clone, Copy, Debug)]
pub struct IoChoice {
    pub engine: IoEngine,
    pub flavor: Flavor,
    /// `uring::Options::block`: wait in the ring for a moment before sleeping.
    pub ring_wait: bool,
    /// `uring::Options::fixed_files`: name sockets by their index in the ring's table
    /// of registered descriptors.
    pub fixed_files: bool,
    /// `uring::Options::poll`: how long an idle core keeps asking its ring for
    /// completions before it waits there.
    pub ring_poll: std::time::Duration,
}

impl Default for IoChoice {
    fn default() -> Self {
        Self {
            engine: IoEngine::Auto,
            flavor: Flavor::Defer,
            ring_wait: true,
            fixed_files: true,
            ring_poll: std::time::Duration::ZERO,
        }
    }
}

/// Starts the gateway and blocks until it has drained. The config is compiled before
/// anything listens: a document that does not compile stops the start with its errors.
pub fn run(opts: GatewayOptions) -> anyhow::Result<()> {
    let revision = 1;
    // Signals are caught, and the file's version noted, before the config is read: a
    // SIGHUP or an edit that comes during start-up is then acted on, not lost.
    let signals = control::Signals::install()?;
    let stamp = control::file_stamp(&opts.source);
    let initial = Arc::new(
        opts.source
            .load(revision)
            .map_err(|e| anyhow::anyhow!("config does not compile:\n{e}"))?,
    );
    let cpus = pick_cpus(opts.cores)?;
    // Container runtimes often start processes with a soft limit of 1024 descriptors,
    // far below what a gateway holds; the hard limit is what the operator granted.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(nofile = n, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }

    // Port 0 would give every core a different port: reserve one first, then let every
    // core bind it with SO_REUSEPORT. The reserving socket never listens.
    let (listen, _reservation) = reserve_port(opts.listen)?;

    let limiter = NodeLimiter::new(cpus.len(), MAX_LIMIT_KEYS);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for (index, cpu) in cpus.iter().copied().enumerate() {
        let (tx, rx) = async_channel::unbounded::<CoreMsg>();
        senders.push(tx);
        let ready = ready_tx.clone();
        let config = initial.clone();
        let limiter = limiter.clone();
        let io = opts.io;
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("portico-core-{index}"))
            // glommio runs its timers and the wakes from other threads when it gets the
            // core back from its task queue, which under a steady load (the engine's
            // driver always runnable) is at each preemption: keep that short.
            .preempt_timer(PREEMPT)
            .spawn(move || async move {
                let services = Services {
                    limits: CoreShard::new(limiter, index),
                    now: Instant::now(),
                    openid: Default::default(),
                    tables: Default::default(),
                };
                core_main(index, listen, io, config, services, rx, ready).await
            })
            .map_err(|e| anyhow::anyhow!("starting the executor for cpu {cpu}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..cpus.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("{e}"),
            Err(_) => bail!("a core stopped during start-up"),
        }
    }
    drop(_reservation);
    tracing::info!(
        cores = cpus.len(),
        cpus = ?cpus,
        listen = %listen,
        revision = initial.revision,
        apis = initial.apis.len(),
        "portico gateway started"
    );
    println!("portico listening on {listen}");

    control::run(
        signals,
        stamp,
        opts.source,
        revision,
        initial.settings.timeouts.drain,
        senders,
    )?;
    for handle in handles {
        if handle.join().is_err() {
            bail!("a core failed while draining");
        }
    }
    tracing::info!("drained, exiting");
    Ok(())
}

fn pick_cpus(wanted: Option<usize>) -> anyhow::Result<Vec<usize>> {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    if available.is_empty() {
        bail!("cannot read the CPUs this process may use");
    }
    let n = wanted.unwrap_or(available.len());
    if n == 0 || n > available.len() {
        bail!(
            "--cores {n}: this process may use {} CPU(s) ({:?})",
            available.len(),
            available
        );
    }
    // The last CPUs first: CPU 0 usually takes more interrupts.
    Ok(available[available.len() - n..].to_vec())
}

fn reserve_port(addr: SocketAddr) -> anyhow::Result<(SocketAddr, Option<socket2::Socket>)> {
    if addr.port() != 0 {
        return Ok((addr, None));
    }
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    let bound = sock
        .local_addr()?
        .as_socket()
        .context("reserved address is not IP")?;
    Ok((bound, Some(sock)))
}

/// A core's listening socket on its I/O path.
enum Listener {
    Uring(Acceptor),
    Glommio(TcpListener),
}

/// Starts the core's I/O engine as `io` asks; `Err` stops the start.
fn start_engine(index: usize, io: IoChoice) -> Result<Option<Rc<uring::Engine>>, String> {
    if io.engine == IoEngine::Glommio {
        tracing::info!(core = index, "io engine: glommio sockets (as configured)");
        return Ok(None);
    }
    match uring::start(uring::Options {
        flavor: io.flavor,
        block: io.ring_wait,
        fixed_files: if io.fixed_files {
            uring::Options::default().fixed_files
        } else {
            0
        },
        poll: io.ring_poll,
    }) {
        Ok(engine) => {
            tracing::info!(
                core = index,
                flags = engine.flavor().name(),
                registered_descriptors = engine.fixed_slots(),
                "io engine: io_uring"
            );
            Ok(Some(engine))
        }
        Err(e) if io.engine == IoEngine::Auto => {
            tracing::warn!(
                core = index,
                error = %e,
                "io_uring engine unavailable here; using glommio sockets"
            );
            Ok(None)
        }
        Err(e) => Err(format!("core {index}: io_uring engine: {e}")),
    }
}

async fn core_main(
    index: usize,
    listen: SocketAddr,
    io: IoChoice,
    config: Arc<CompiledConfig>,
    services: Services,
    rx: async_channel::Receiver<CoreMsg>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let engine = match start_engine(index, io) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let listener = match &engine {
        Some(engine) => Acceptor::bind(engine, listen, LISTEN_BACKLOG).map(Listener::Uring),
        None => TcpListener::bind(listen)
            .map(Listener::Glommio)
            .map_err(std::io::Error::from),
    };
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("core {index}: cannot listen on {listen}: {e}")));
            return;
        }
    };
    let core = CoreState::new(index, Some(config), services);
    portico_io::spawn_local(control_task(core.clone(), rx)).detach();
    portico_io::spawn_local(reconcile_task(core.clone())).detach();
    portico_io::spawn_local(crate::upstream::sweep_task(core.clone())).detach();
    let _ = ready.send(Ok(()));

    match &listener {
        Listener::Uring(acceptor) => accept_uring(&core, acceptor).await,
        Listener::Glommio(listener) => accept_glommio(&core, listener).await,
    }
    drop(listener);
    // Idle connections have nothing to finish: they close now.
    if let Some(engine) = &engine {
        engine.close_parked();
    }

    // Draining: in-flight requests finish, idle connections close themselves.
    let deadline = core
        .drain_deadline()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(30));
    while core.active_connections() > 0 {
        let closed = core.closed_listener();
        if core.active_connections() == 0 {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                core = index,
                connections = core.active_connections(),
                "drain timeout: closing the remaining connections"
            );
            break;
        }
        futures_lite::future::or(closed, glommio::timer::sleep(left)).await;
    }
    core.pools.borrow_mut().clear();
}

/// Waits while the core is at its connection limit (backpressure: the kernel's backlog
/// holds the waiting clients). False when the core is draining.
async fn below_limit(core: &Rc<CoreState>, at_limit: impl Fn()) -> bool {
    loop {
        let drain = core.drain_listener();
        if core.is_draining() {
            return false;
        }
        let limit = core
            .config()
            .map(|c| c.settings.connections_per_core)
            .unwrap_or(10_000);
        if core.active_connections() < limit {
            return true;
        }
        at_limit();
        let closed = core.closed_listener();
        if core.active_connections() >= limit {
            futures_lite::future::or(closed, drain).await;
        }
    }
}

async fn accept_uring(core: &Rc<CoreState>, acceptor: &Acceptor) {
    loop {
        if !below_limit(core, || acceptor.pause()).await {
            return;
        }
        let drain = core.drain_listener();
        let accepted = futures_lite::future::or(async { Some(acceptor.accept().await) }, async {
            drain.await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(conn)) => {
                let Ok(peer) = conn.peer_addr() else {
                    continue;
                };
                let idle = core
                    .config()
                    .map_or(Duration::from_secs(75), |c| c.settings.timeouts.keep_alive);
                // No task until the first bytes arrive: a connection that has sent
                // nothing holds a socket slot and nothing else.
                let resume = crate::proxy::resume(core.clone(), peer, core.enter(), 0);
                conn.park(idle, resume);
            }
            Some(Err(e)) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(core = core.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn accept_glommio(core: &Rc<CoreState>, listener: &TcpListener) {
    loop {
        if !below_limit(core, || {}).await {
            return;
        }
        let drain = core.drain_listener();
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            drain.await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                let peer = match stream.peer_addr() {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                let guard = core.enter();
                let core = core.clone();
                let conn = Socket::Glommio(TcpConn::new(stream));
                portico_io::spawn_local(crate::proxy::serve_connection(core, conn, peer, guard, 0))
                    .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(core = core.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Returns unused rate-limit budget to the node and takes in what other cores gave
/// back, off the request path. While the core's shard holds nothing it sleeps until
/// a request uses a limit: an idle gateway does not tick.
async fn reconcile_task(core: Rc<CoreState>) {
    loop {
        glommio::timer::sleep(RECONCILE_INTERVAL).await;
        if core.is_draining() {
            return;
        }
        let idle = {
            let mut services = core.services.borrow_mut();
            services.limits.reconcile(Instant::now());
            services.limits.is_idle()
        };
        if idle {
            let drain = core.drain_listener();
            if core.is_draining() {
                return;
            }
            let used = std::future::poll_fn(|cx| {
                let mut services = core.services.borrow_mut();
                if services.limits.is_idle() {
                    services.limits.wake_on_use(cx.waker());
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            });
            futures_lite::future::or(used, drain).await;
        }
    }
}

async fn control_task(core: Rc<CoreState>, rx: async_channel::Receiver<CoreMsg>) {
    while let Ok(msg) = rx.recv().await {
        match msg {
            CoreMsg::Config(cfg) => {
                tracing::debug!(core = core.id, revision = cfg.revision, "config swapped");
                core.swap_config(cfg);
            }
            CoreMsg::Drain { deadline } => core.start_drain(deadline),
        }
    }
}
