//! The gateway as an HTTP client of its backends: connection pooling, the retry rule
//! for pooled connections the backend closed (GET retried, POST not), 502 for refused
//! connections and malformed responses, and truncated responses.

mod common;

use common::backend::response;
use common::client::{get, request};
use common::{get_req, Backend, Client, Gateway, Reply};
use std::net::TcpListener;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn api(id: &str, url: &str) -> String {
    format!(
        r#"
  - id: {id}
    path: {id}
    serviceUrl: {url}
    timeout: 10s
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}"#
    )
}

fn gateway(apis: &[String]) -> Gateway {
    Gateway::start(&format!("apis:{}\n", apis.concat()))
}

#[test]
fn sequential_requests_reuse_one_backend_connection() {
    let backend = Backend::echo();
    let gw = gateway(&[api("pool", &backend.url())]);
    // Separate client connections, one after the other.
    for i in 0..4 {
        let r = get(gw.addr, &format!("/pool/a/{i}"));
        assert_eq!((r.status, r.body_str()), (200, format!("GET /a/{i}")));
    }
    // One client connection, with bodies in between.
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/pool/b/0"));
    assert_eq!(c.read_response().status, 200);
    c.send("POST /pool/b/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.read_response_for("POST").status, 200);
    c.send("POST /pool/b/2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(c.read_response_for("POST").status, 200);
    c.send(get_req("/pool/b/3"));
    assert_eq!(c.read_response().status, 200);
    let reqs = backend.wait_requests(8, WAIT);
    assert_eq!(
        backend.conn_count(),
        1,
        "8 sequential requests used {} backend connections (requests per conn: {:?})",
        backend.conn_count(),
        reqs.iter()
            .map(|r| (r.conn, r.target.clone()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_backend_connection_marked_close_is_not_reused() {
    let backend = Backend::start(|r| {
        Reply::SendAndClose(response(
            200,
            &[("Connection", "close")],
            r.target.as_bytes(),
        ))
    });
    let gw = gateway(&[api("close", &backend.url())]);
    for i in 0..3 {
        let r = get(gw.addr, &format!("/close/{i}"));
        assert_eq!((r.status, r.body_str()), (200, format!("/{i}")));
    }
    assert_eq!(backend.conn_count(), 3);
}

#[test]
fn get_is_retried_when_the_backend_closed_the_idle_pooled_connection() {
    // Answers keep-alive (no `Connection: close`) and closes right after: the
    // gateway pools a connection that is already dead.
    let backend = Backend::start(|r| {
        Reply::SendAndClose(response(200, &[], format!("conn {}", r.conn).as_bytes()))
    });
    let gw = gateway(&[api("stale", &backend.url())]);
    let mut c = Client::connect(gw.addr);
    for i in 0..3 {
        c.send(get_req(&format!("/stale/{i}")));
        let r = c
            .try_read_response("GET", None)
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}: {:?}", r.body_str());
        // Let the backend's FIN arrive before the next request.
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(backend.conn_count(), 3);
}

/// Per backend connection: the first request is answered, the second is read and
/// then the connection is closed without an answer.
fn second_request_dropped(r: &common::Request) -> Reply {
    if r.index == 0 {
        Reply::ok(format!("{} {}", r.method, r.target))
    } else {
        Reply::Close
    }
}

#[test]
fn get_is_retried_when_a_reused_connection_is_dropped() {
    let backend = Backend::start(second_request_dropped);
    let gw = gateway(&[api("flaky", &backend.url())]);
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/flaky/1"));
    assert_eq!(c.read_response().body_str(), "GET /1");
    c.send(get_req("/flaky/2"));
    let r = c
        .try_read_response("GET", None)
        .unwrap_or_else(|e| panic!("second GET: {e}"));
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "GET /2"),
        "a GET on a pooled connection the backend dropped must be retried"
    );
    let reqs = backend.requests();
    let tries: Vec<_> = reqs
        .iter()
        .filter(|r| r.target == "/2")
        .map(|r| r.conn)
        .collect();
    assert_eq!(tries.len(), 2, "expected one retry: {tries:?}");
    assert_ne!(tries[0], tries[1], "the retry must use a new connection");
}

#[test]
fn post_is_not_retried_when_a_reused_connection_is_dropped() {
    // With a body, and without one: POST is not idempotent either way (RFC 9110 §9.2.2).
    for (label, first, second) in [
        (
            "with a body",
            "POST /flaky/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
            "POST /flaky/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb",
        ),
        (
            "without a body",
            "POST /flaky/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /flaky/2 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ] {
        let backend = Backend::start(second_request_dropped);
        let gw = gateway(&[api("flaky", &backend.url())]);
        let mut c = Client::connect(gw.addr);
        c.send(first);
        assert_eq!(c.read_response_for("POST").body_str(), "POST /1", "{label}");
        c.send(second);
        let r = c
            .try_read_response("POST", None)
            .unwrap_or_else(|e| panic!("second POST {label}: {e}"));
        assert_eq!(r.status, 502, "{label}: {:?}", r.body_str());
        std::thread::sleep(Duration::from_millis(200));
        let sent: Vec<_> = backend
            .requests()
            .into_iter()
            .filter(|r| r.target == "/2")
            .collect();
        assert_eq!(sent.len(), 1, "a POST {label} must not be sent twice");
        assert_eq!(
            backend.conn_count(),
            1,
            "no second connection for the POST {label}"
        );
    }
}

#[test]
fn refused_backend_is_502_and_the_gateway_keeps_serving() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let backend = Backend::echo();
    let gw = gateway(&[
        api("refused", &format!("http://127.0.0.1:{port}")),
        api("ok", &backend.url()),
    ]);
    for method in ["GET", "POST"] {
        let r = request(
            gw.addr,
            format!("{method} /refused/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(r.status, 502, "{method}: {:?}", r.body_str());
    }
    let r = get(gw.addr, "/ok/y");
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /y"));
}

#[test]
fn malformed_backend_responses_are_502() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not HTTP", b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
        (
            "bad protocol name",
            b"HTPT/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "four-digit status",
            b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "non-numeric Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n".to_vec(),
        ),
        (
            "conflicting Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".to_vec(),
        ),
        (
            "header without colon",
            b"HTTP/1.1 200 OK\r\nBadHeader\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "NUL in a header",
            b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        ("head cut short", b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()),
        ("nothing at all", Vec::new()),
    ];
    let table: Vec<Vec<u8>> = cases.iter().map(|(_, b)| b.clone()).collect();
    let backend = Backend::start(move |r| {
        let i: usize = r.target.trim_start_matches('/').parse().unwrap_or(0);
        Reply::SendAndClose(table.get(i).cloned().unwrap_or_default())
    });
    let good = Backend::echo();
    let gw = gateway(&[api("bad", &backend.url()), api("ok", &good.url())]);
    let mut failures = Vec::new();
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let mut c = Client::connect(gw.addr);
        c.send(get_req(&format!("/bad/{i}")));
        match c.try_read_response("GET", None) {
            Ok(r) if r.status == 502 => {}
            Ok(r) => failures.push(format!(
                "[{name}] backend sent {:?}: expected 502, got {} {:?}",
                common::show(bytes, 200),
                r.status,
                r.body_str()
            )),
            Err(e) => failures.push(format!(
                "[{name}] backend sent {:?}: expected 502, got {e}",
                common::show(bytes, 200)
            )),
        }
        let r = get(gw.addr, "/ok/after");
        if r.status != 200 {
            failures.push(format!("[{name}] follow-up got {}", r.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn response_truncated_mid_body_closes_the_client_connection() {
    let backend = Backend::start(|r| {
        if r.target == "/cl" {
            let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
            bytes.extend_from_slice(&[b'x'; 500]);
            Reply::SendAndClose(bytes)
        } else if r.target == "/chunked" {
            Reply::SendAndClose(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
            )
        } else {
            Reply::ok("fine")
        }
    });
    let gw = gateway(&[api("trunc", &backend.url())]);
    for path in ["/trunc/cl", "/trunc/chunked"] {
        let mut c = Client::connect(gw.addr);
        c.timeout = Duration::from_secs(15);
        c.send(get_req(path));
        match c.try_read_response("GET", None) {
            Ok(r) => panic!(
                "{path}: the client got a complete response ({} with {} body bytes) from a truncated one",
                r.status, r.body_len
            ),
            Err(e) => assert!(
                e.contains("connection closed") || e.contains("connection reset"),
                "{path}: expected the connection to close mid-body, got: {e}"
            ),
        }
    }
    // The broken backend connections were not pooled.
    let r = get(gw.addr, "/trunc/next");
    assert_eq!((r.status, r.body_str().as_str()), (200, "fine"));
}

#[test]
fn idle_pooled_connections_are_closed_after_the_idle_timeout() {
    let backend = Backend::echo();
    let gw = Gateway::start(&format!(
        "gateway:\n  upstream: {{ idleTimeout: 1s }}\napis:{}\n",
        api("idle", &backend.url())
    ));
    assert_eq!(get(gw.addr, "/idle/x").status, 200);
    assert!(
        backend.wait_peer_closed(0, Duration::from_secs(15)),
        "the pooled backend connection is still open 15 s after a 1 s idleTimeout"
    );
    // And a new request simply opens a new connection.
    assert_eq!(get(gw.addr, "/idle/y").status, 200);
    assert_eq!(backend.conn_count(), 2);
}

#[test]
fn at_most_max_idle_per_backend_connections_are_kept() {
    let gate = common::Gate::new();
    let g = gate.clone();
    let backend = Backend::start(move |r| {
        g.wait(Duration::from_secs(30));
        Reply::ok(format!("{} {}", r.method, r.target))
    });
    let gw = Gateway::start(&format!(
        "gateway:\n  upstream: {{ maxIdlePerBackend: 1, idleTimeout: 60s }}\napis:{}\n",
        api("pool", &backend.url())
    ));
    // Three requests at once need three backend connections.
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let addr = gw.addr;
            std::thread::spawn(move || get(addr, &format!("/pool/{i}")))
        })
        .collect();
    backend.wait_requests(3, WAIT);
    gate.open();
    for c in clients {
        assert_eq!(c.join().unwrap().status, 200);
    }
    assert_eq!(backend.conn_count(), 3);
    assert!(
        common::wait_until(WAIT, || backend
            .conns()
            .iter()
            .filter(|c| c.peer_closed)
            .count()
            == 2),
        "with maxIdlePerBackend: 1, two of three idle connections must be closed: {:?}",
        backend
            .conns()
            .iter()
            .map(|c| (c.id, c.peer_closed))
            .collect::<Vec<_>>()
    );
    // The one kept is reused.
    assert_eq!(get(gw.addr, "/pool/again").status, 200);
    assert_eq!(backend.conn_count(), 3);
}
