//! `loadgen serve`: a minimal HTTP/1.1 backend for benchmarks and tests.
//!
//! One glommio executor per CPU, each with its own `SO_REUSEPORT` listener, so the
//! kernel spreads connections. Sockets are the executor's io_uring engine's when it
//! has one (accepts, receives and sends of all its connections go to the kernel in one
//! `io_uring_enter` per tick, and an idle keep-alive connection is parked with the
//! engine, holding no task and no buffer), glommio's otherwise. What a connection does
//! with the bytes is in [`conn`], the HTTP in [`http`]. It is deliberately not a
//! general server: no routing, no date header, no logging.

mod conn;
mod http;

use crate::cli::ServeArgs;
use anyhow::{anyhow, bail, Context as _};
use conn::Ctx;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use http::Responses;
use portico_io::uring::Acceptor;
use portico_io::{Socket, TcpConn};
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Pending connections per listener.
const BACKLOG: i32 = 1024;

/// Runs the backend until the process is killed.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .listen
        .to_socket_addrs()
        .with_context(|| format!("bad --listen address {:?}", args.listen))?
        .next()
        .ok_or_else(|| anyhow!("bad --listen address {:?}", args.listen))?;
    if args.body_size > 1 << 30 {
        bail!(
            "--body-size {} is too large (at most 1 GiB)",
            args.body_size
        );
    }

    // Bind once here to learn the real port when asked for port 0. The socket does not
    // listen, so the kernel sends it no connections; it only holds the port until
    // every executor has bound its own listener to it.
    let placeholder = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    placeholder.set_reuse_port(true)?;
    placeholder
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = placeholder
        .local_addr()?
        .as_socket()
        .ok_or_else(|| anyhow!("cannot listen on {addr}"))?;

    let cpus = crate::allowed_cpus();
    let threads = args.threads.unwrap_or(cpus.len()).max(1);
    let responses = Responses::build(args.body_size, args.chunk_size);
    let delay = Duration::from_millis(args.delay);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let ready = ready_tx.clone();
        let responses = responses.clone();
        let (io_engine, idle) = (args.io_engine, args.idle);
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpus[i % cpus.len()]))
            .name(&format!("serve-{i}"))
            .io_memory(1 << 20)
            .spawn(move || async move {
                let listener = match listen(addr, io_engine) {
                    Ok(l) => {
                        let _ = ready.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let ctx = Rc::new(Ctx::new(responses, delay, idle));
                loop {
                    match listener.accept().await {
                        Ok(socket) => {
                            portico_io::spawn_local(conn::serve_connection(socket, ctx.clone()))
                                .detach();
                        }
                        // Out of descriptors and the like: back off, keep serving.
                        Err(_) => {
                            portico_io::uring::sleep_until(
                                Instant::now() + Duration::from_millis(10),
                            )
                            .await
                        }
                    }
                }
            })
            .map_err(|e| anyhow!("cannot start executor on CPU {}: {e}", cpus[i % cpus.len()]))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!(e),
            Err(_) => bail!("an executor stopped before listening"),
        }
    }
    drop(placeholder);
    let mut out = std::io::stdout();
    writeln!(out, "listening on {addr}")?;
    out.flush()?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// An executor's listener on its socket path.
enum Listener {
    Uring(Acceptor),
    Glommio(TcpListener),
}

/// Starts the executor's engine (as `--io-engine` asks) and binds its listener.
fn listen(addr: SocketAddr, io_engine: crate::engine::IoEngine) -> Result<Listener, String> {
    let cannot = |e: std::io::Error| format!("cannot listen on {addr}: {e}");
    match crate::engine::start(io_engine)? {
        Some(engine) => Acceptor::bind(&engine, addr, BACKLOG)
            .map(Listener::Uring)
            .map_err(cannot),
        None => TcpListener::bind(addr)
            .map(Listener::Glommio)
            .map_err(|e| cannot(e.into())),
    }
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Socket> {
        match self {
            Listener::Uring(a) => a.accept().await.map(Socket::Uring),
            Listener::Glommio(l) => l
                .accept()
                .await
                .map(|s| Socket::Glommio(TcpConn::new(s)))
                .map_err(Into::into),
        }
    }
}
