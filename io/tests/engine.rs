//! The io_uring engine against real sockets on 127.0.0.1: echo, bulk transfer through
//! the provided-buffer ring with a slow reader (backpressure), large reads that adopt
//! provided buffers instead of copying them, more connections with unread data than
//! there are buffers (starvation and re-arm), parking and resuming, idle expiry (and
//! stale idle deadlines left by a socket that closed), connect errors, a connect
//! timeout carried by a linked ring timeout, and sockets named by their index in the
//! ring's table of registered descriptors (slots reused within one tick), and a
//! gathered send that the kernel takes in parts, and sends that fail giving their
//! buffers back, the time the engine reads once per tick, the engine's own timers,
//! and sends handed to the kernel at once right after a wait.

use portico_io::uring::{self, Acceptor, Engine, Options, UringConn};
use portico_io::{Conn, Piece, RecvBuf};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Body<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// Runs `f` on a fresh glommio executor with a started engine.
fn on_engine<T: Send + 'static>(f: impl FnOnce(Rc<Engine>) -> Body<T> + Send + 'static) -> T {
    on_engine_with(Options::default(), f)
}

/// As [`on_engine`], with the engine started with `opts`.
fn on_engine_with<T: Send + 'static>(
    opts: Options,
    f: impl FnOnce(Rc<Engine>) -> Body<T> + Send + 'static,
) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let engine = uring::start(opts).expect("the engine starts here");
            f(engine).await
        })
        .expect("executor")
        .join()
        .expect("executor thread")
}

/// Waits for a client thread without blocking the executor (the engine must keep
/// flushing while the client finishes).
async fn join<T>(handle: std::thread::JoinHandle<T>) -> T {
    while !handle.is_finished() {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    handle.join().expect("client thread")
}

fn listen(engine: &Rc<Engine>) -> (Acceptor, SocketAddr) {
    let acceptor = Acceptor::bind(engine, "127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = acceptor.local_addr().unwrap();
    (acceptor, addr)
}

async fn read_exact(conn: &mut UringConn, buf: &mut RecvBuf, n: usize) -> Vec<u8> {
    while buf.len() < n {
        let got = conn.recv(buf).await.expect("recv");
        assert!(got > 0, "early end of stream after {} bytes", buf.len());
    }
    let out = buf.filled()[..n].to_vec();
    buf.consume(n);
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn echo_round_trips_and_end_of_stream() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"hello ring").unwrap();
                let mut back = [0u8; 10];
                s.read_exact(&mut back).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                (back.to_vec(), rest)
            });
            let mut conn = acceptor.accept().await.unwrap();
            assert_eq!(conn.peer_addr().unwrap().ip(), addr.ip());
            let mut buf = RecvBuf::new(64, 1024);
            let got = read_exact(&mut conn, &mut buf, 10).await;
            conn.send(&got).await.unwrap();
            assert_eq!(conn.recv(&mut buf).await.unwrap(), 0, "client half-closed");
            conn.send(b"bye").await.unwrap();
            conn.shutdown_write().await.unwrap();
            let (back, rest) = join(client).await;
            assert_eq!(back, b"hello ring");
            assert_eq!(rest, b"bye");
        })
    });
}

#[test]
fn bulk_transfer_with_a_slow_reader_arrives_whole() {
    const LEN: usize = 3 * 1024 * 1024;
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&pattern(LEN, 7)).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                back
            });
            let mut conn = acceptor.accept().await.unwrap();
            let mut buf = RecvBuf::new(4096, 64 * 1024);
            let mut got = Vec::with_capacity(LEN);
            let mut reads = 0;
            loop {
                let n = conn.recv(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(buf.filled());
                let l = buf.len();
                buf.consume(l);
                reads += 1;
                if reads % 8 == 0 {
                    // Fall behind now and then: the engine must stop and re-arm the
                    // receive without losing or reordering bytes.
                    glommio::timer::sleep(Duration::from_millis(2)).await;
                }
            }
            assert!(got == pattern(LEN, 7), "bytes differ after {} reads", reads);
            conn.send(&pattern(LEN, 9)).await.unwrap();
            drop(conn);
            assert!(join(client).await == pattern(LEN, 9));
        })
    });
}

#[test]
fn large_reads_adopt_provided_buffers_and_keep_every_byte() {
    // Messages of these sizes, back and forth, more times than there are provided
    // buffers: chunks of 4 KiB and more read into an empty buffer become its storage
    // (the ring gets other memory for that id), smaller ones and whatever follows are
    // copied. Every byte must arrive in order however the two mix.
    const SIZES: [usize; 6] = [16 * 1024 + 200, 100_000, 5_000, 300, 16 * 1024, 70_000];
    const ROUNDS: usize = 120;
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                for round in 0..ROUNDS {
                    for (i, &len) in SIZES.iter().enumerate() {
                        let seed = (round * SIZES.len() + i) as u8;
                        s.write_all(&pattern(len, seed)).unwrap();
                        let mut back = vec![0u8; len];
                        s.read_exact(&mut back).unwrap();
                        assert!(back == pattern(len, seed.wrapping_add(1)), "echo differs");
                    }
                }
            });
            let mut conn = acceptor.accept().await.unwrap();
            // The gateway's shape: headroom in front, room for a large head and more.
            let mut buf = RecvBuf::with_headroom(1024, 80 * 1024, 256);
            let mut adopted = 0;
            for round in 0..ROUNDS {
                for (i, &len) in SIZES.iter().enumerate() {
                    let seed = (round * SIZES.len() + i) as u8;
                    let mut got = Vec::with_capacity(len);
                    while got.len() < len {
                        assert!(buf.is_empty());
                        let n = conn.recv(&mut buf).await.expect("recv");
                        assert!(n > 0, "early end of stream");
                        // The adopted storage is the provided buffer's allocation (20
                        // KiB), which growing this buffer never yields (powers of two).
                        if buf.capacity() == 20 * 1024 {
                            adopted += 1;
                        }
                        got.extend_from_slice(buf.filled());
                        buf.consume(buf.len());
                    }
                    assert!(got == pattern(len, seed), "bytes differ in round {round}");
                    conn.send(&pattern(len, seed.wrapping_add(1)))
                        .await
                        .unwrap();
                }
            }
            assert!(
                adopted >= ROUNDS,
                "large reads were copied, not adopted ({adopted})"
            );
            drop(conn);
            join(client).await;
            // A buffer that may not grow to a provided buffer's size copies instead.
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&pattern(12_000, 3)).unwrap();
                let mut ok = [0u8; 2];
                s.read_exact(&mut ok).unwrap();
            });
            let mut conn = acceptor.accept().await.unwrap();
            let mut small = RecvBuf::new(1024, 16 * 1024);
            let got = read_exact(&mut conn, &mut small, 12_000).await;
            assert!(got == pattern(12_000, 3));
            assert!(small.capacity() <= 16 * 1024);
            conn.send(b"ok").await.unwrap();
            join(client).await;
        })
    });
}

#[test]
fn more_connections_with_unread_data_than_buffers_all_get_their_bytes() {
    // 400 connections each with 20 KiB unread (two buffers each) exhaust the 256
    // provided buffers; receives that run dry must be re-armed as buffers return.
    const CONNS: usize = 400;
    const LEN: usize = 20 * 1024;
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut socks = Vec::new();
                for i in 0..CONNS {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(&pattern(LEN, i as u8)).unwrap();
                    socks.push(s);
                }
                for s in &mut socks {
                    let mut ok = [0u8; 2];
                    s.read_exact(&mut ok).unwrap();
                    assert_eq!(&ok, b"ok");
                }
            });
            let mut conns = Vec::new();
            for _ in 0..CONNS {
                let mut conn = acceptor.accept().await.unwrap();
                let mut buf = RecvBuf::new(1, 1);
                // One byte each, to arm every receive while nobody reads on.
                let first = read_exact(&mut conn, &mut buf, 1).await;
                conns.push((conn, first));
            }
            glommio::timer::sleep(Duration::from_millis(100)).await;
            for (conn, first) in &mut conns {
                let mut buf = RecvBuf::new(LEN, LEN);
                let rest = read_exact(conn, &mut buf, LEN - 1).await;
                let mut all = first.clone();
                all.extend_from_slice(&rest);
                let seed = all[0];
                assert!(all == pattern(LEN, seed), "a connection's bytes differ");
                conn.send(b"ok").await.unwrap();
            }
            join(client).await;
        })
    });
}

#[test]
fn a_parked_connection_resumes_when_bytes_arrive_and_expires_when_idle() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut a = TcpStream::connect(addr).unwrap();
                let b = TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(150));
                a.write_all(b"wake").unwrap();
                let mut back = [0u8; 4];
                a.read_exact(&mut back).unwrap();
                // `b` never sends: the engine closes it when its idle time is up.
                let started = Instant::now();
                let mut b = b;
                let mut rest = Vec::new();
                let n = b.read_to_end(&mut rest).unwrap_or(0);
                (back, n, started.elapsed())
            });
            let resumed: Rc<RefCell<Vec<UringConn>>> = Rc::default();
            for _ in 0..2 {
                let conn = acceptor.accept().await.unwrap();
                let sink = resumed.clone();
                conn.park(
                    Duration::from_millis(600),
                    Box::new(move |c| sink.borrow_mut().push(c)),
                );
            }
            assert_eq!(engine.parked(), 2);
            let deadline = Instant::now() + Duration::from_secs(10);
            while resumed.borrow().is_empty() {
                assert!(Instant::now() < deadline, "never resumed");
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            let mut conn = resumed.borrow_mut().pop().unwrap();
            assert!(conn.readable());
            let mut buf = RecvBuf::new(16, 16);
            assert_eq!(read_exact(&mut conn, &mut buf, 4).await, b"wake");
            conn.send(b"done").await.unwrap();
            let (back, n, waited) = join(client).await;
            assert_eq!(&back, b"done");
            assert_eq!(n, 0, "the idle connection is closed, not written to");
            assert!(
                waited < Duration::from_secs(5),
                "idle expiry took {waited:?}"
            );
            assert_eq!(engine.parked(), 0);
            assert!(resumed.borrow().is_empty(), "the idle one was not resumed");
        })
    });
}

/// A connection that parked, woke and closed leaves its idle deadline in the heap. The
/// next connection takes the same socket slot and parks too, with a longer idle time:
/// the old deadline must not close it.
#[test]
fn a_stale_idle_deadline_does_not_close_the_next_socket_in_its_slot() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let client = std::thread::spawn(move || {
                let mut a = TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                a.write_all(b"a").unwrap();
                let mut rest = Vec::new();
                a.read_to_end(&mut rest).unwrap();
                wait.recv().unwrap();
                // `b` parks after `a`'s deadline was set and stays idle past it.
                let mut b = TcpStream::connect(addr).unwrap();
                b.set_read_timeout(Some(Duration::from_millis(1500)))
                    .unwrap();
                let mut one = [0u8; 1];
                let early = b.read(&mut one);
                b.write_all(b"b").unwrap();
                let mut back = [0u8; 2];
                b.read_exact(&mut back).unwrap();
                (early.map_err(|e| e.kind()), back)
            });
            let resumed: Rc<RefCell<Vec<UringConn>>> = Rc::default();
            let park = |conn: UringConn, idle: Duration| {
                let sink = resumed.clone();
                conn.park(idle, Box::new(move |c| sink.borrow_mut().push(c)));
            };
            // `a` parks with a short idle time, wakes and closes: its deadline stays.
            park(acceptor.accept().await.unwrap(), Duration::from_millis(400));
            let deadline = Instant::now() + Duration::from_secs(10);
            while resumed.borrow().is_empty() {
                assert!(Instant::now() < deadline, "never resumed");
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            drop(resumed.borrow_mut().pop());
            // Once its slot is free, the next socket takes it (the slab reuses it).
            while engine.sockets() > 0 {
                assert!(Instant::now() < deadline, "slot never freed");
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            go.send(()).unwrap();
            // `b` takes the freed slot and parks for 10 s.
            park(acceptor.accept().await.unwrap(), Duration::from_secs(10));
            while resumed.borrow().is_empty() {
                assert!(Instant::now() < deadline, "b was closed or never resumed");
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            let mut b = resumed.borrow_mut().pop().unwrap();
            let mut buf = RecvBuf::new(16, 16);
            assert_eq!(read_exact(&mut b, &mut buf, 1).await, b"b");
            b.send(b"ok").await.unwrap();
            let (early, back) = join(client).await;
            assert!(
                matches!(
                    early,
                    Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                ),
                "b was closed while parked, before its idle time: {early:?}"
            );
            assert_eq!(&back, b"ok");
        })
    });
}

#[test]
fn closing_parked_connections_ends_them_for_the_peer() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let mut rest = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.read_to_end(&mut rest).map(|_| rest.len())
            });
            let conn = acceptor.accept().await.unwrap();
            conn.park(Duration::from_secs(300), Box::new(drop));
            glommio::timer::sleep(Duration::from_millis(50)).await;
            engine.close_parked();
            assert_eq!(join(client).await.unwrap(), 0);
        })
    });
}

#[test]
fn connect_reports_refusal_and_times_out_on_a_full_backlog() {
    on_engine(|engine| {
        Box::pin(async move {
            // A port with nobody listening: refused.
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let closed = free.local_addr().unwrap();
            drop(free);
            let err = UringConn::connect(&engine, closed, Duration::from_secs(5))
                .await
                .err()
                .expect("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

            // A listener that never accepts, its backlog filled: new SYNs are dropped
            // and only the linked timeout ends the connect.
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            sock.listen(0).unwrap();
            let full: SocketAddr = sock.local_addr().unwrap().as_socket().unwrap();
            let mut fillers = Vec::new();
            for _ in 0..4 {
                if let Ok(c) = UringConn::connect(&engine, full, Duration::from_millis(200)).await {
                    fillers.push(c);
                }
            }
            let started = Instant::now();
            let err = UringConn::connect(&engine, full, Duration::from_millis(300))
                .await
                .err()
                .expect("a connect into a full backlog must time out");
            assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
            assert!(started.elapsed() >= Duration::from_millis(250));
        })
    });
}

#[test]
fn a_paused_acceptor_leaves_clients_in_the_backlog() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let first = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
            let conn = acceptor.accept().await.unwrap();
            let _client = join(first).await;
            acceptor.pause();
            glommio::timer::sleep(Duration::from_millis(50)).await;
            let second = TcpStream::connect(addr).unwrap();
            glommio::timer::sleep(Duration::from_millis(100)).await;
            assert_eq!(engine.sockets(), 1, "nothing accepted while paused");
            let next = acceptor.accept().await.unwrap();
            assert_eq!(engine.sockets(), 2);
            drop((conn, next, second));
        })
    });
}

/// An echo server on its own threads; every connection's received bytes are sent on
/// the channel when the peer closes. Stops after `conns` connections.
fn echo_server(conns: usize) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..conns {
            let (mut s, _) = server.accept().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = tx.send(got);
            });
        }
    });
    (addr, rx)
}

/// A connection on the engine, made with a blocking connect (loopback: the kernel
/// completes it without the server accepting).
fn open(engine: &Rc<Engine>, addr: SocketAddr) -> UringConn {
    UringConn::from_fd(engine, TcpStream::connect(addr).unwrap().into_raw_fd())
}

/// As [`on_engine`], with a table of 4 registered descriptors: slots 0-3 are named by
/// index, later ones by descriptor.
fn on_engine_with_4_slots<T: Send + 'static>(
    f: impl FnOnce(Rc<Engine>) -> Body<T> + Send + 'static,
) -> T {
    let opts = Options {
        fixed_files: 4,
        ..Options::default()
    };
    on_engine_with(opts, |engine| {
        assert_eq!(engine.fixed_slots(), 4);
        f(engine)
    })
}

#[test]
fn sockets_in_the_table_are_named_by_their_index() {
    let (addr, streams) = echo_server(1);
    on_engine_with_4_slots(move |engine| {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).unwrap();
            let fd = stream.as_raw_fd();
            let mut conn = UringConn::from_fd(&engine, stream.into_raw_fd());
            let mut buf = RecvBuf::new(64, 1024);
            // One round trip: the install went to the kernel ahead of this send.
            conn.send(b"first;").await.unwrap();
            assert_eq!(read_exact(&mut conn, &mut buf, 6).await, b"first;");
            // Now /dev/null under the socket's descriptor number: an operation that
            // named the descriptor would fail.
            let null = std::fs::File::open("/dev/null").unwrap();
            // SAFETY: dup2 onto a descriptor this test owns; the engine's close of that
            // number later closes the /dev/null copy.
            assert_eq!(unsafe { libc::dup2(null.as_raw_fd(), fd) }, fd);
            conn.send(b"by index").await.unwrap();
            assert_eq!(read_exact(&mut conn, &mut buf, 8).await, b"by index");
        })
    });
    assert_eq!(streams.recv().unwrap(), b"first;by index");
}

#[test]
fn reused_table_slots_never_cross_sockets() {
    const ROUNDS: usize = 100;
    const HOLDERS: usize = 3;
    let (addr, streams) = echo_server(HOLDERS + ROUNDS * 4);
    on_engine_with_4_slots(move |engine| {
        Box::pin(async move {
            // Slots 0-2 stay taken; each round's sockets get slot 3 (in the table)
            // and slot 4 (beyond it: named by descriptor).
            let mut holders: Vec<UringConn> = (0..HOLDERS).map(|_| open(&engine, addr)).collect();
            let mut buf = RecvBuf::new(64, 1024);
            for round in 0..ROUNDS {
                // The last round's sockets leave their slots once their receives
                // are cancelled.
                while engine.sockets() > HOLDERS {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                let doomed = [open(&engine, addr), open(&engine, addr)];
                for (i, mut conn) in doomed.into_iter().enumerate() {
                    // Queue a send, then drop the connection in the same tick: its
                    // slot is free at once, with its install, send and closes still
                    // queued ahead of the next socket's install in that slot.
                    let msg = format!("a{i}:{round:04};");
                    let sent = futures_lite::future::poll_once(conn.send(msg.as_bytes()));
                    assert!(
                        sent.await.is_none(),
                        "a send completes only in a later tick"
                    );
                    drop(conn);
                }
                // Both take their slots in the same tick as the drops above.
                let fresh = [open(&engine, addr), open(&engine, addr)];
                for (i, mut conn) in fresh.into_iter().enumerate() {
                    let msg = format!("b{i}:{round:04};");
                    conn.send(msg.as_bytes()).await.unwrap();
                    let back = read_exact(&mut conn, &mut buf, msg.len()).await;
                    assert_eq!(back, msg.as_bytes(), "round {round}");
                }
            }
            for (i, conn) in holders.iter_mut().enumerate() {
                let msg = format!("h{i}:done;");
                conn.send(msg.as_bytes()).await.unwrap();
                assert_eq!(read_exact(conn, &mut buf, msg.len()).await, msg.as_bytes());
            }
        })
    });
    let mut seen = Vec::new();
    for _ in 0..HOLDERS + ROUNDS * 4 {
        let got = streams.recv_timeout(Duration::from_secs(30)).unwrap();
        let text = String::from_utf8(got).unwrap();
        // Every connection carried at most one message, and only its own.
        assert!(
            text.is_empty() || (text.len() == 8 && text.matches(';').count() == 1),
            "a connection received {text:?}"
        );
        seen.push(text);
    }
    for round in 0..ROUNDS {
        for i in 0..2 {
            let msg = format!("b{i}:{round:04};");
            assert_eq!(seen.iter().filter(|t| **t == msg).count(), 1, "{msg}");
            let msg = format!("a{i}:{round:04};");
            assert!(seen.iter().filter(|t| **t == msg).count() <= 1, "{msg}");
        }
    }
    for i in 0..HOLDERS {
        assert!(seen.contains(&format!("h{i}:done;")));
    }
}

#[test]
fn a_gathered_send_arrives_whole_in_order_through_partial_sends() {
    // 3,000 pieces (more than one sendmsg takes) over 6 MiB (more than the socket
    // buffers hold), to a reader that sleeps now and then: the kernel takes part of the
    // message at a time, and the rest must follow from the right piece and offset.
    const LEN: usize = 6 * 1024 * 1024;
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let mut got = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = s.read(&mut chunk).unwrap();
                    if n == 0 {
                        return got;
                    }
                    got.extend_from_slice(&chunk[..n]);
                    if got.len() % 7 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
            let mut conn = acceptor.accept().await.unwrap();
            let mut lent = pattern(LEN, 3);
            let mut own = Vec::new();
            let mut pieces = Vec::new();
            let mut expect = Vec::with_capacity(LEN * 2);
            let mut at = 0;
            let mut i = 0usize;
            while at < LEN {
                // Framing of varying length, then a body run of varying length.
                let frame = format!("<{i:x}>");
                pieces.push(Piece::Own(own.len()..own.len() + frame.len()));
                own.extend_from_slice(frame.as_bytes());
                expect.extend_from_slice(frame.as_bytes());
                let len = (1 + (i * 7919) % 4000).min(LEN - at);
                pieces.push(Piece::Lent(at..at + len));
                expect.extend_from_slice(&lent[at..at + len]);
                at += len;
                i += 1;
            }
            assert!(pieces.len() > 2048, "{} pieces", pieces.len());
            let (own_ptr, lent_ptr) = (own.as_ptr(), lent.as_ptr());
            conn.send_gather(&mut own, &mut lent, &pieces)
                .await
                .unwrap();
            assert_eq!(
                (own.as_ptr(), lent.as_ptr()),
                (own_ptr, lent_ptr),
                "both buffers come back, not copies"
            );
            drop(conn);
            let got = join(client).await;
            assert_eq!(got.len(), expect.len());
            assert!(got == expect, "bytes differ");
        })
    });
}

#[test]
fn a_failed_send_gives_its_buffer_back() {
    // The caller may send the same bytes again elsewhere (a request retried on a new
    // backend connection): a send that fails must not lose them.
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let s = socket2::Socket::from(TcpStream::connect(addr).unwrap());
                // Close with a reset: the next send fails outright.
                s.set_linger(Some(Duration::ZERO)).unwrap();
            });
            let mut conn = acceptor.accept().await.unwrap();
            join(client).await;
            let mut buf = RecvBuf::new(64, 1024);
            assert!(conn.recv(&mut buf).await.is_err(), "the reset is seen");
            let bytes = pattern(3000, 5);
            let mut out = bytes.clone();
            conn.send_vec(&mut out)
                .await
                .expect_err("a send to a reset peer");
            assert!(out == bytes, "the buffer came back with its bytes");
            let mut out = bytes.clone();
            let mut lent = bytes.clone();
            let pieces = [Piece::Own(0..10), Piece::Lent(10..3000)];
            conn.send_gather(&mut out, &mut lent, &pieces)
                .await
                .expect_err("a gathered send to a reset peer");
            assert!(out == bytes && lent == bytes, "both buffers came back");
        })
    });
}

/// Tasks woken by a tick's completions read the time of that tick, however long they
/// run; once a tick finds nothing (the core may sleep next), the real clock again.
#[test]
fn the_time_is_read_once_per_tick_that_reaps_completions() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let client = std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"x").unwrap();
                let mut back = [0u8; 1];
                s.read_exact(&mut back).unwrap();
            });
            let mut conn = acceptor.accept().await.unwrap();
            let mut buf = RecvBuf::new(64, 1024);
            let before = Instant::now();
            read_exact(&mut conn, &mut buf, 1).await;
            let woken = portico_io::now();
            assert!(woken >= before);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(portico_io::now(), woken, "the tick's time, not read again");
            glommio::timer::sleep(Duration::from_millis(30)).await;
            assert!(
                portico_io::now() >= woken + Duration::from_millis(50),
                "after a quiet tick the clock is read"
            );
            conn.send(b"y").await.unwrap();
            join(client).await;
        })
    });
}

/// The engine's own timers: each completes at or after its deadline, in deadline
/// order, and one set while the driver sleeps towards a later deadline ends that sleep
/// (the short timer does not wait for the long one). A dropped timer never completes.
#[test]
fn engine_timers_complete_in_order_and_an_earlier_one_wakes_the_driver() {
    on_engine(|_engine| {
        Box::pin(async move {
            let start = Instant::now();
            let order = Rc::new(RefCell::new(Vec::new()));
            // A long timer first, so the idle driver sleeps towards it.
            let long = {
                let order = order.clone();
                portico_io::spawn_local(async move {
                    uring::sleep_until(start + Duration::from_secs(30)).await;
                    order.borrow_mut().push("long");
                })
            };
            // Let the driver go to sleep with only the long deadline pending.
            glommio::timer::sleep(Duration::from_millis(50)).await;
            let mut tasks = Vec::new();
            for (name, ms) in [("c", 120u64), ("a", 80), ("b", 100)] {
                let order = order.clone();
                tasks.push(portico_io::spawn_local(async move {
                    let at = Instant::now() + Duration::from_millis(ms);
                    uring::sleep_until(at).await;
                    assert!(Instant::now() >= at, "{name} completed early");
                    order.borrow_mut().push(name);
                }));
            }
            // Dropped before its deadline: must never complete.
            let dropped = {
                let order = order.clone();
                portico_io::spawn_local(async move {
                    uring::sleep_until(Instant::now() + Duration::from_millis(90)).await;
                    order.borrow_mut().push("dropped");
                })
            };
            drop(dropped);
            let done = futures_lite::future::or(
                async {
                    for t in tasks {
                        t.await;
                    }
                    true
                },
                async {
                    // glommio's timer, which does not depend on the driver.
                    glommio::timer::sleep(Duration::from_secs(10)).await;
                    false
                },
            )
            .await;
            assert!(done, "the short timers waited for the long one");
            assert_eq!(*order.borrow(), vec!["a", "b", "c"]);
            drop(long);
            // A deadline already past completes at once.
            uring::sleep_until(Instant::now() - Duration::from_millis(1)).await;
        })
    });
}

/// A poll before the wait (`Options::poll`) ends when an engine timer is due, as the
/// wait itself does: with a 2 s poll, a timer due 60 ms after the driver went idle
/// still completes long before the poll would have ended.
#[test]
fn a_timer_is_not_held_back_by_the_poll_before_the_wait() {
    let opts = Options {
        poll: Duration::from_secs(2),
        ..Options::default()
    };
    on_engine_with(opts, |_engine| {
        Box::pin(async move {
            // A first timer, so that the driver has just handled something and goes
            // the way of a busy core: poll, then wait in the ring.
            uring::sleep_until(Instant::now() + Duration::from_millis(20)).await;
            let start = Instant::now();
            uring::sleep_until(start + Duration::from_millis(60)).await;
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "a 60 ms timer completed after {took:?}: the poll ran past its deadline"
            );
        })
    });
}

/// Reads what `client` has without blocking, for up to `for_` (the executor is not
/// given a turn meanwhile): `None` when nothing came.
fn peek_for(client: &mut TcpStream, for_: Duration) -> Option<Vec<u8>> {
    let until = Instant::now() + for_;
    let mut got = [0u8; 16];
    loop {
        match client.read(&mut got) {
            Ok(n) => return Some(got[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("client read: {e}"),
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Right after a wait the engine hands operations to the kernel as they are queued: a
/// send queued by the task that a wait's completion woke reaches the peer before that
/// task gives the executor a turn. Once the driver has ticked without waiting, a send
/// waits for its next tick, batched with whatever else is queued.
#[test]
fn a_send_right_after_a_wait_leaves_at_once_and_later_ones_at_the_tick() {
    on_engine(|engine| {
        Box::pin(async move {
            let (acceptor, addr) = listen(&engine);
            let mut client = TcpStream::connect(addr).unwrap();
            let mut conn = acceptor.accept().await.unwrap();
            let writer = {
                let mut client = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    // Late enough that the idle driver waits for it.
                    std::thread::sleep(Duration::from_millis(100));
                    client.write_all(b"x").unwrap();
                })
            };
            let mut buf = RecvBuf::new(64, 1024);
            read_exact(&mut conn, &mut buf, 1).await;
            client.set_nonblocking(true).unwrap();
            {
                let mut send = std::pin::pin!(conn.send(b"y"));
                let first = futures_lite::future::poll_once(send.as_mut()).await;
                assert_eq!(
                    peek_for(&mut client, Duration::from_secs(2)).as_deref(),
                    Some(&b"y"[..]),
                    "the send after a wait was not handed to the kernel at once"
                );
                if first.is_none() {
                    send.await.unwrap();
                }
            }
            // The driver ticks (reaping that send) before this task runs again.
            futures_lite::future::yield_now().await;
            {
                let mut send = std::pin::pin!(conn.send(b"z"));
                let first = futures_lite::future::poll_once(send.as_mut()).await;
                assert!(
                    first.is_none(),
                    "a queued send cannot be done before a tick"
                );
                assert_eq!(
                    peek_for(&mut client, Duration::from_millis(100)),
                    None,
                    "a send queued without a wait before it left before the tick"
                );
                send.await.unwrap();
            }
            client.set_nonblocking(false).unwrap();
            let mut z = [0u8; 1];
            client.read_exact(&mut z).unwrap();
            assert_eq!(&z, b"z");
            join(writer).await;
        })
    });
}
