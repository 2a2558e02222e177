//! Timeouts with short settings: request head (slowloris) -> 408 and close, idle
//! keep-alive -> close, request body idle -> close, upstream connect and upstream
//! response -> 504; timeouts still fire while other clients keep the core busy, and an
//! idle gateway sleeps. Every wait in here is a generous upper bound for something that
//! must happen, never a speed requirement.

mod common;

use common::{get_req, Backend, Client, Gateway, Reply};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(15);

fn handler(r: &common::Request) -> Reply {
    match r.target.as_str() {
        "/v1/hang" => Reply::Hang,
        "/v1/late" => {
            std::thread::sleep(Duration::from_millis(2500));
            Reply::ok("late")
        }
        t => Reply::ok(format!("fast {t}")),
    }
}

fn setup() -> (Backend, Gateway) {
    setup_on(1)
}

fn setup_on(cores: usize) -> (Backend, Gateway) {
    setup_with(cores, &[])
}

/// `setup_on`, with more arguments for `portico gateway`.
fn setup_with(cores: usize, args: &[&str]) -> (Backend, Gateway) {
    let backend = Backend::start(handler);
    let yaml = format!(
        r#"
gateway:
  timeouts: {{ requestHead: 1s, keepAlive: 1s, bodyIdle: 1s, upstreamConnect: 1s, drain: 5s }}
apis:
  - id: echo
    path: echo
    serviceUrl: {}/v1
    timeout: 1s
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#,
        backend.url()
    );
    let builder = args
        .iter()
        .fold(Gateway::builder(&yaml).cores(cores), |b, a| b.arg(a));
    (backend, builder.start())
}

/// Reads whatever arrives until the peer closes or `bound` passes, while `tick` is
/// called every 250 ms (to trickle bytes).
fn collect_while(
    c: &mut Client,
    bound: Duration,
    mut tick: impl FnMut(&mut Client),
) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + bound;
    let mut data = Vec::new();
    while Instant::now() < deadline {
        let got = c.read_to_close(Duration::from_millis(250));
        data.extend_from_slice(&got.data);
        if got.closed {
            return (data, true);
        }
        if !data.is_empty() && data.windows(4).any(|w| w == b"\r\n\r\n") {
            // A response head arrived: stop trickling, wait for the close.
            let rest = c.read_to_close(Duration::from_secs(5));
            data.extend_from_slice(&rest.data);
            return (data, rest.closed);
        }
        tick(c);
    }
    (data, false)
}

fn status_of(data: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(data.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?
        .parse()
        .ok()
}

#[test]
fn slowloris_head_gets_408_and_close() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/slow HTTP/1.1\r\nHost: x\r\n");
    // One more field line every 250 ms: the head never completes, yet bytes keep
    // coming, so only a deadline on the whole head stops it.
    let mut n = 0;
    let (data, closed) = collect_while(&mut c, BOUND, |c| {
        n += 1;
        let _ = c.try_send(format!("X-Drip-{n}: a\r\n"));
    });
    assert_eq!(
        status_of(&data),
        Some(408),
        "expected 408 within {BOUND:?} (requestHead: 1s); got {:?}",
        common::show(&data, 300)
    );
    assert!(closed, "connection left open after the 408");
    assert!(backend.requests().is_empty() && backend.total_bytes() == 0);
}

#[test]
fn incomplete_head_then_silence_gets_408_and_close() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/slow HTTP/1.1\r\nHo");
    c.timeout = BOUND;
    let r = c.read_response();
    assert_eq!(r.status, 408);
    c.expect_closed(Duration::from_secs(5)).unwrap();
    assert_eq!(backend.total_bytes(), 0);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/echo/once"));
    assert_eq!(c.read_response().status, 200);
    let end = c.read_to_close(BOUND);
    assert!(
        end.closed,
        "idle keep-alive connection still open after {BOUND:?} (keepAlive: 1s)"
    );
    assert!(
        end.data.is_empty(),
        "bytes sent on an idle keep-alive connection (a client would take them as the next response): {:?}",
        common::show(&end.data, 300)
    );
}

/// After its first answer a keep-alive connection is parked with the engine at once;
/// from its second on, it waits for its next request with its task until the core's
/// linger tick (500 ms), then is parked for the rest of keepAlive (1s here). Requests
/// that come after a park, while it lingers, and after a linger ended in a park are all
/// served on the same connection, and it still closes once idle.
#[test]
fn keep_alive_connection_is_served_while_lingering_and_after_parking() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    for (pause, path) in [
        (0, "/echo/a"),
        (100, "/echo/b"),
        (100, "/echo/c"),
        (700, "/echo/d"),
        (700, "/echo/e"),
    ] {
        std::thread::sleep(Duration::from_millis(pause));
        c.send(get_req(path));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{path} after {pause} ms idle");
    }
    assert_eq!(backend.requests().len(), 5);
    let end = c.read_to_close(BOUND);
    assert!(end.closed, "still open {BOUND:?} after the last response");
    assert!(end.data.is_empty(), "{:?}", common::show(&end.data, 300));
}

#[test]
fn connection_that_never_sends_is_closed() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    let end = c.read_to_close(BOUND);
    assert!(end.closed, "silent connection still open after {BOUND:?}");
    assert!(
        end.data.is_empty() || status_of(&end.data) == Some(408),
        "unexpected bytes: {:?}",
        common::show(&end.data, 300)
    );
}

#[test]
fn stalled_request_body_is_cut_after_body_idle() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("POST /echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    let end = c.read_to_close(BOUND);
    assert!(
        end.closed,
        "client connection open {BOUND:?} after the body stalled (bodyIdle: 1s)"
    );
    assert!(
        end.data.is_empty() || status_of(&end.data) == Some(408),
        "a stalled body may only be answered with 408: {:?}",
        common::show(&end.data, 300)
    );
    // The backend never got a complete request and its connection was given up.
    assert!(
        common::wait_until(Duration::from_secs(10), || backend
            .conns()
            .iter()
            .all(|c| c.peer_closed)),
        "backend connection(s) left open: {:?}",
        backend.conns()
    );
    assert!(
        backend.requests().iter().all(|r| r.body_len < 10),
        "the backend saw a complete body"
    );
}

#[test]
fn upstream_response_timeout_is_504_and_the_backend_connection_is_dropped() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.timeout = BOUND;
    c.send(get_req("/echo/hang"));
    let r = c.read_response();
    assert_eq!(r.status, 504, "{:?}", r.body_str());
    let reqs = backend.wait_requests(1, Duration::from_secs(5));
    assert!(
        backend.wait_peer_closed(reqs[0].conn, Duration::from_secs(10)),
        "the gateway kept the timed-out backend connection open"
    );
}

/// One core, kept busy by a client that sends its next request as soon as it has the
/// last response: between requests the engine's driver waits for completions in its
/// own ring, and glommio, which fires the timers, must still get the core back. The
/// upstream timeout of a request that hangs must fire while the load goes on.
#[test]
fn timeouts_fire_while_another_client_keeps_the_core_busy() {
    let (_backend, gw) = setup_on(1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = gw.addr;
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut served = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.send(get_req("/echo/fast"));
                assert_eq!(c.read_response().status, 200);
                served += 1;
            }
            served
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Client::connect(gw.addr);
    c.timeout = BOUND;
    c.send(get_req("/echo/hang"));
    let r = c.read_response();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = busy.join().expect("the busy client");
    assert_eq!(r.status, 504, "{:?}", r.body_str());
    assert!(
        served > 100,
        "the other client was not kept busy ({served} requests)"
    );
}

/// After serving, a gateway with nothing to do sleeps in the kernel: over two idle
/// seconds it uses a few clock ticks at most, where a core that polled would use about
/// 200 (a whole CPU).
#[test]
fn an_idle_gateway_uses_no_cpu() {
    assert_idle_uses_no_cpu(&[]);
}

/// The same with `--ring-poll-us` at its largest: the poll before a wait ends, and an
/// idle core sleeps as before.
#[test]
fn an_idle_gateway_that_polls_its_ring_before_waiting_uses_no_cpu() {
    assert_idle_uses_no_cpu(&["--ring-poll-us", "10000"]);
}

/// The poll does run: with 10 ms of it, each of 40 requests spaced 30 ms apart leaves
/// the core polling for 10 ms once its answer is out, about 40 clock ticks in all,
/// where a gateway that waits at once uses a few.
#[test]
fn a_gateway_told_to_poll_its_ring_polls_after_each_answer() {
    let (_backend, gw) = setup_with(1, &["--ring-poll-us", "10000"]);
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/echo/warm"));
    assert_eq!(c.read_response().status, 200);
    let before = gw.cpu_ticks();
    for i in 0..40 {
        std::thread::sleep(Duration::from_millis(30));
        c.send(get_req(&format!("/echo/{i}")));
        assert_eq!(c.read_response().status, 200);
    }
    std::thread::sleep(Duration::from_millis(30));
    let used = gw.cpu_ticks() - before;
    assert!(
        used >= 20,
        "40 answers with a 10 ms poll after each used only {used} clock ticks (no poll?)"
    );
}

/// Starts a 2-core gateway with `args`, serves 200 requests over 4 connections, keeps
/// one of them open, then checks the clock ticks of CPU it uses over two idle seconds.
fn assert_idle_uses_no_cpu(args: &[&str]) {
    let (_backend, gw) = setup_with(2, args);
    let mut conns: Vec<Client> = (0..4).map(|_| Client::connect(gw.addr)).collect();
    for round in 0..50 {
        for c in &mut conns {
            c.send(get_req(&format!("/echo/{round}")));
            assert_eq!(c.read_response().status, 200);
        }
    }
    // One connection stays open and idle (it lingers, parks, then hits keepAlive);
    // the others leave.
    conns.truncate(1);
    std::thread::sleep(Duration::from_millis(1500));
    let before = gw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = gw.cpu_ticks() - before;
    assert!(
        used <= 20,
        "an idle gateway ({args:?}) used {used} clock ticks of CPU in 2 s (polling instead of sleeping?)"
    );
}

#[test]
fn a_late_backend_response_is_not_delivered_to_the_next_request() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.timeout = BOUND;
    c.send(get_req("/echo/late"));
    assert_eq!(c.read_response().status, 504);
    // Give the backend time to write its late answer somewhere.
    std::thread::sleep(Duration::from_secs(2));
    let mut c2 = Client::connect(gw.addr);
    c2.send(get_req("/echo/fast"));
    let r = c2.read_response();
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "fast /v1/fast"),
        "a late response leaked into a later exchange (new client connection)"
    );
    // The first connection, if the gateway kept it after the 504.
    if c.try_send(get_req("/echo/fast")).is_ok() {
        if let Ok(r) = c.try_read_response("GET", None) {
            assert_eq!(
                (r.status, r.body_str().as_str()),
                (200, "fast /v1/fast"),
                "a late response leaked into a later exchange (same client connection)"
            );
        }
    }
}

/// A listener whose accept queue is full: further SYNs are dropped, so connecting
/// to it hangs (a local stand-in for a non-routable address).
fn blackhole() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            fillers.push(s);
        }
    }
    let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    assert!(
        probe.is_err(),
        "test setup: could not make a listener that does not complete connections"
    );
    (sock, fillers, addr)
}

#[test]
fn upstream_connect_timeout_is_504() {
    let (_sock, _fillers, addr) = blackhole();
    let yaml = format!(
        r#"
gateway:
  timeouts: {{ upstreamConnect: 1s }}
apis:
  - id: hole
    path: hole
    serviceUrl: http://{addr}
    timeout: 60s
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#
    );
    let gw = Gateway::start(&yaml);
    let mut c = Client::connect(gw.addr);
    // Far below the 60 s response timeout: only the connect timeout can answer.
    c.timeout = Duration::from_secs(30);
    let started = Instant::now();
    c.send(get_req("/hole/x"));
    let r = c.read_response();
    assert_eq!(
        r.status,
        504,
        "{:?} after {:?}",
        r.body_str(),
        started.elapsed()
    );
}
