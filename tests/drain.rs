//! Graceful shutdown: SIGTERM/SIGINT stop accepting, let requests in flight finish (up
//! to timeouts.drain), close idle keep-alive connections and exit 0; a second signal
//! exits at once. The slow request is held by a gate the test opens, so "in flight
//! during the drain" is certain rather than timed.

mod common;

use common::{get_req, Backend, Client, Gate, Gateway, Reply};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(15);

fn gated_backend(gate: &Gate) -> Backend {
    let g = gate.clone();
    Backend::start(move |r| {
        if r.target.ends_with("/slow") {
            g.wait(Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(200));
        }
        Reply::ok(format!("done {}", r.target))
    })
}

fn config(backend: &Backend, drain: &str) -> String {
    format!(
        r#"
gateway:
  timeouts: {{ keepAlive: 60s, drain: {drain} }}
apis:
  - id: api
    path: api
    serviceUrl: {}
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#,
        backend.url()
    )
}

/// Starts `GET /api/slow` on its own thread; returns its result when joined.
fn start_slow(gw: &Gateway) -> std::thread::JoinHandle<Result<common::Response, String>> {
    let addr = gw.addr;
    std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.timeout = Duration::from_secs(90);
        c.send(get_req("/api/slow"));
        let r = c.try_read_response("GET", None)?;
        // The connection is closed after the last response of a drain.
        c.expect_closed(Duration::from_secs(10))
            .map_err(|e| format!("after the response: {e}"))?;
        Ok(r)
    })
}

fn refused(gw: &Gateway) -> bool {
    match TcpStream::connect_timeout(&gw.addr, Duration::from_millis(500)) {
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let gate = Gate::new();
    let backend = gated_backend(&gate);
    let mut gw = Gateway::builder(&config(&backend, "30s")).cores(2).start();

    let mut idle = Client::connect(gw.addr);
    idle.send(get_req("/api/ping"));
    assert_eq!(idle.read_response().body_str(), "done /ping");

    let slow = start_slow(&gw);
    assert!(
        common::wait_until(BOUND, || backend
            .requests()
            .iter()
            .any(|r| r.target == "/slow")),
        "the slow request never reached the backend"
    );

    gw.signal(libc::SIGTERM);

    // The idle keep-alive connection is closed promptly (keepAlive is 60 s).
    idle.expect_closed(BOUND)
        .expect("idle keep-alive connection must be closed by the drain");
    // New connections are refused while the slow request is still running.
    assert!(
        common::wait_until(BOUND, || refused(&gw)),
        "new connections still accepted during the drain"
    );
    assert!(
        gw.is_running(),
        "the gateway exited with a request in flight"
    );

    gate.open();
    let r = slow
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("in-flight request during the drain: {e}"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "done /slow"));

    let status = gw
        .wait_exit(BOUND)
        .expect("the gateway did not exit after draining");
    assert!(status.success(), "exit status {status:?}");
    let lines = gw.stdout_lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("portico listening on "))
            .count(),
        1,
        "stdout: {lines:?}"
    );
}

/// A connection served `requests` requests and then left idle for `pause` is closed by
/// SIGINT, and the gateway exits 0.
fn sigint_closes_a_connection_idle_for(requests: usize, pause: Duration) {
    let gate = Gate::new();
    let backend = gated_backend(&gate);
    let mut gw = Gateway::start(&config(&backend, "30s"));
    let mut idle = Client::connect(gw.addr);
    for _ in 0..requests {
        idle.send(get_req("/api/ping"));
        assert_eq!(idle.read_response().status, 200);
    }
    std::thread::sleep(pause);
    gw.signal(libc::SIGINT);
    idle.expect_closed(BOUND)
        .expect("idle connection closed on SIGINT");
    let status = gw.wait_exit(BOUND).expect("no exit after SIGINT");
    assert!(status.success(), "exit status {status:?}");
}

/// After its first response a connection is parked with the engine at once.
#[test]
fn sigint_drains_an_idle_gateway_and_exits_0() {
    sigint_closes_a_connection_idle_for(1, Duration::ZERO);
}

/// Right after its second response an idle connection still has its task (it lingers
/// until the core's next linger tick, 500 ms); later it is parked with the engine. Both
/// kinds are closed by a drain: this test signals at once, the next after a pause.
#[test]
fn sigint_closes_a_lingering_connection() {
    sigint_closes_a_connection_idle_for(2, Duration::ZERO);
}

#[test]
fn sigint_closes_a_connection_idle_past_the_linger_tick() {
    sigint_closes_a_connection_idle_for(2, Duration::from_millis(1200));
}

#[test]
fn a_second_signal_exits_at_once() {
    let gate = Gate::new();
    let backend = gated_backend(&gate);
    // A drain that would take a minute.
    let mut gw = Gateway::start(&config(&backend, "60s"));
    let slow = start_slow(&gw);
    assert!(
        common::wait_until(BOUND, || backend
            .requests()
            .iter()
            .any(|r| r.target == "/slow")),
        "the slow request never reached the backend"
    );
    gw.signal(libc::SIGTERM);
    // The first signal has been acted on once the listener is gone.
    assert!(
        common::wait_until(BOUND, || refused(&gw)),
        "first SIGTERM not acted on"
    );
    assert!(gw.is_running());
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(BOUND);
    assert!(
        status.is_some(),
        "still running {BOUND:?} after the second signal (drain is 60 s)"
    );
    let outcome = slow.join().unwrap();
    assert!(
        outcome.is_err(),
        "the in-flight request cannot have completed: {outcome:?}"
    );
    gate.open();
}

#[test]
fn requests_longer_than_the_drain_timeout_are_cut() {
    let gate = Gate::new();
    let backend = gated_backend(&gate);
    let mut gw = Gateway::start(&config(&backend, "1s"));
    let slow = start_slow(&gw);
    assert!(
        common::wait_until(BOUND, || backend
            .requests()
            .iter()
            .any(|r| r.target == "/slow")),
        "the slow request never reached the backend"
    );
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(BOUND)
        .expect("the gateway did not exit after timeouts.drain (1s)");
    assert!(status.success(), "exit status {status:?}");
    let outcome = slow.join().unwrap();
    assert!(
        outcome.is_err(),
        "the cut request cannot have completed: {outcome:?}"
    );
    gate.open();
}
