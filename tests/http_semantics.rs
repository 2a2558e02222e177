//! HTTP/1.1 semantics through the gateway (RFC 9110, RFC 9112): persistent
//! connections, pipelining, HTTP/1.0, 100-continue, bodiless responses, chunked
//! bodies both ways with trailers, until-close responses, hop-by-hop headers,
//! X-Forwarded-*, and the WebSocket upgrade tunnel.

mod common;

use common::backend::response;
use common::client::request;
use common::{get_req, Backend, Client, Gateway, Reply, Request};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn handler(r: &Request) -> Reply {
    let path = r.target.strip_prefix("/v1").unwrap_or(&r.target);
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/head" => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Head: 1\r\n\r\n".to_vec()),
        "/204" => Reply::Send(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec()),
        "/304" => Reply::Send(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n".to_vec(),
        ),
        "/chunked" => Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
              5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Checksum: abc\r\n\r\n"
                .to_vec(),
        ),
        "/until-close" => Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close".to_vec(),
        ),
        "/interim" => Reply::Send(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
                .to_vec(),
        ),
        "/hop" => Reply::Send(
            b"HTTP/1.1 200 OK\r\nConnection: X-Backend-Hop\r\nX-Backend-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-End: kept\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        ),
        "/ws" => Reply::Upgrade(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .to_vec(),
        ),
        _ => Reply::Send(response(
            200,
            &[("Content-Type", "text/plain")],
            format!("{} {} {}", r.method, r.target, r.body_str()).as_bytes(),
        )),
    }
}

fn setup() -> (Backend, Gateway) {
    let backend = Backend::start(handler);
    let yaml = format!(
        r#"
apis:
  - id: echo
    path: echo
    serviceUrl: {}/v1
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
      - {{ id: mocked, method: GET, urlTemplate: "/mock", mock: {{ statusCode: 200, contentType: text/plain, body: mocked }} }}
"#,
        backend.url()
    );
    let gw = Gateway::start(&yaml);
    (backend, gw)
}

#[test]
fn keep_alive_serves_sequential_requests_on_one_connection() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    for i in 0..3 {
        c.send(get_req(&format!("/echo/seq/{i}")));
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.body_str(), format!("GET /v1/seq/{i} "));
        assert!(
            !r.connection_has("close"),
            "request {i} answered with Connection: close"
        );
    }
    assert_eq!(backend.requests().len(), 3);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    let mut all = Vec::new();
    all.extend_from_slice(&get_req("/echo/p/1"));
    all.extend_from_slice(b"POST /echo/p/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz");
    all.extend_from_slice(&get_req("/echo/mock"));
    all.extend_from_slice(&get_req("/nowhere"));
    all.extend_from_slice(b"POST /echo/p/5 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
    all.extend_from_slice(b"HEAD /echo/head HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend_from_slice(&get_req("/echo/p/7"));
    c.send(&all);
    let expect: [(&str, u16, Option<&str>); 7] = [
        ("GET", 200, Some("GET /v1/p/1 ")),
        ("POST", 200, Some("POST /v1/p/2 xyz")),
        ("GET", 200, Some("mocked")),
        ("GET", 404, None),
        ("POST", 200, Some("POST /v1/p/5 ab")),
        ("HEAD", 200, Some("")),
        ("GET", 200, Some("GET /v1/p/7 ")),
    ];
    for (i, (method, status, body)) in expect.iter().enumerate() {
        let r = c
            .try_read_response(method, None)
            .unwrap_or_else(|e| panic!("pipelined response {i}: {e}"));
        assert_eq!(
            r.status,
            *status,
            "pipelined response {i}: {:?}",
            r.body_str()
        );
        if let Some(b) = body {
            assert_eq!(r.body_str(), *b, "pipelined response {i}");
        }
    }
}

#[test]
fn http10_request_closes_after_the_response() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/old HTTP/1.0\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(!r.chunked, "chunked response to an HTTP/1.0 client");
    assert_eq!(r.body_str(), "GET /v1/old ");
    c.expect_closed(WAIT)
        .expect("HTTP/1.0 without keep-alive must close");
}

#[test]
fn http10_keep_alive_is_honoured() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    for i in 0..2 {
        c.send(format!(
            "GET /echo/old/{i} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
        ));
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), format!("GET /v1/old/{i} "));
        assert!(
            r.connection_has("keep-alive"),
            "an HTTP/1.0 client only keeps the connection if told `Connection: keep-alive`: {:?}",
            r.headers
        );
    }
}

#[test]
fn connection_close_closes_after_the_response() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /v1/bye "));
    c.expect_closed(WAIT).expect("Connection: close");
    // Also for a response the gateway makes itself.
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/mock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().body_str(), "mocked");
    c.expect_closed(WAIT).expect("Connection: close on a mock");
}

#[test]
fn expect_100_continue_gets_an_interim_response_then_the_body_is_streamed() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("POST /echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response_for("POST");
    assert_eq!(
        interim.status, 100,
        "expected `100 Continue` before sending the body"
    );
    assert_eq!(interim.version, "HTTP/1.1");
    c.send("hello");
    let r = c.read_response_for("POST");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "POST /v1/upload hello")
    );
    let reqs = backend.wait_requests(1, WAIT);
    assert_eq!(reqs[0].body, b"hello");
    // The connection is still usable.
    c.send(get_req("/echo/after"));
    assert_eq!(c.read_response().body_str(), "GET /v1/after ");
}

#[test]
fn interim_responses_from_the_backend_do_not_end_the_exchange() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/echo/interim"));
    let mut r = c.read_response();
    let mut seen = 0;
    while (100..200).contains(&r.status) {
        seen += 1;
        assert!(seen <= 2, "more interim responses than the backend sent");
        r = c.read_response();
    }
    assert_eq!((r.status, r.body_str().as_str()), (200, "final"));
    c.send(get_req("/echo/next"));
    assert_eq!(c.read_response().body_str(), "GET /v1/next ");
}

#[test]
fn head_response_has_no_body_and_keeps_its_content_length() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("HEAD /echo/head HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_for("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.header("x-head"), Some("1"));
    // If the gateway had waited for (or invented) a body, this would hang or misparse.
    c.send(get_req("/echo/after-head"));
    let r = c.read_response();
    assert_eq!(r.body_str(), "GET /v1/after-head ");
    assert_eq!(backend.requests()[0].method, "HEAD");
}

#[test]
fn no_body_for_204_and_304() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/echo/204"));
    let r = c.read_response();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-a"), Some("1"));
    assert!(
        r.header("transfer-encoding").is_none(),
        "204 with Transfer-Encoding: {:?}",
        r.headers
    );
    c.send(get_req("/echo/304"));
    let r = c.read_response();
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    c.send(get_req("/echo/after"));
    let r = c.read_response();
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "GET /v1/after "),
        "bytes after a 204/304 leaked into the next response"
    );
    assert!(
        c.buffered().is_empty(),
        "extra bytes: {:?}",
        common::show(c.buffered(), 200)
    );
}

#[test]
fn chunked_request_body_is_rechunked_with_trailers() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(
        "POST /echo/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n\
         5;name=val\r\nhello\r\n6\r\n world\r\nB\r\n 0123456789\r\n0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n",
    );
    let r = c.read_response_for("POST");
    assert_eq!(r.status, 200, "{:?}", r.body_str());
    let req = &backend.wait_requests(1, WAIT)[0];
    assert!(
        req.chunked,
        "backend did not get a chunked body: {:?}",
        common::show(&req.raw_head, 500)
    );
    assert!(req.header("content-length").is_none(), "{:?}", req.headers);
    assert_eq!(req.headers_named("transfer-encoding"), vec!["chunked"]);
    assert_eq!(req.body_str(), "hello world 0123456789");
    assert_eq!(
        req.trailer("x-trailer"),
        Some("yes"),
        "trailers: {:?}",
        req.trailers
    );
    assert_eq!(
        req.trailer("x-other"),
        Some("2"),
        "trailers: {:?}",
        req.trailers
    );
    // The whole body was consumed: the next request parses.
    c.send(get_req("/echo/next"));
    assert_eq!(c.read_response().body_str(), "GET /v1/next ");
}

#[test]
fn empty_chunked_request_body_reaches_the_backend_as_empty() {
    let (backend, gw) = setup();
    let r = request(
        gw.addr,
        "POST /echo/empty HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let req = &backend.wait_requests(1, WAIT)[0];
    assert_eq!(req.body_len, 0);
}

#[test]
fn chunked_response_with_trailers_reaches_an_http11_client() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/echo/chunked"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(r.chunked, "expected a chunked response: {:?}", r.headers);
    assert_eq!(r.body_str(), "hello, world");
    assert_eq!(
        r.trailer("x-checksum"),
        Some("abc"),
        "trailers: {:?}",
        r.trailers
    );
    c.send(get_req("/echo/next"));
    assert_eq!(c.read_response().body_str(), "GET /v1/next ");
}

#[test]
fn until_close_response_is_rechunked_for_an_http11_client() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(get_req("/echo/until-close"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(
        !r.until_close,
        "the client connection was used to delimit the body"
    );
    assert!(r.chunked, "expected a chunked response: {:?}", r.headers);
    assert_eq!(r.body_str(), "streamed until close");
    // The client connection stays alive although the backend one closed.
    c.send(get_req("/echo/next"));
    assert_eq!(c.read_response().body_str(), "GET /v1/next ");
}

#[test]
fn until_close_response_to_http10_closes_the_connection() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/until-close HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(!r.chunked, "chunked response to an HTTP/1.0 client");
    assert_eq!(r.body_str(), "streamed until close");
    if !r.until_close {
        // Buffered into a Content-Length is acceptable; then keep-alive may go on.
        return;
    }
    c.expect_closed(WAIT)
        .expect("closed after an until-close body");
}

#[test]
fn chunked_response_to_http10_is_not_chunked() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send("GET /echo/chunked HTTP/1.0\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.header("transfer-encoding").is_none(),
        "Transfer-Encoding sent to an HTTP/1.0 client: {:?}",
        r.headers
    );
    assert_eq!(r.body_str(), "hello, world");
    c.expect_closed(WAIT)
        .expect("HTTP/1.0 without keep-alive must close");
}

#[test]
fn hop_by_hop_request_headers_are_removed() {
    let (backend, gw) = setup();
    let r = request(
        gw.addr,
        "GET /echo/hop-req HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Custom-Hop\r\n\
         X-Custom-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: deflate\r\n\
         Trailer: X-T\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let req = &backend.wait_requests(1, WAIT)[0];
    let head = common::show(&req.raw_head, 2000);
    assert_eq!(req.header("x-end-to-end"), Some("kept"), "{head}");
    for name in [
        "x-custom-hop",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(
            req.header(name).is_none(),
            "{name} reached the backend: {head}"
        );
    }
    assert!(
        !req.headers_named("te")
            .iter()
            .any(|v| v.contains("deflate")),
        "the client's TE reached the backend: {head}"
    );
    assert!(
        !req.headers_named("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("x-custom-hop")),
        "the client's Connection reached the backend: {head}"
    );
    assert!(req.header("transfer-encoding").is_none(), "{head}");
}

#[test]
fn hop_by_hop_response_headers_are_removed() {
    let (_backend, gw) = setup();
    let r = common::client::get(gw.addr, "/echo/hop");
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
    assert_eq!(r.header("x-end"), Some("kept"), "{:?}", r.headers);
    assert!(r.header("x-backend-hop").is_none(), "{:?}", r.headers);
    assert!(r.header("proxy-connection").is_none(), "{:?}", r.headers);
    assert!(
        r.headers_named("keep-alive")
            .iter()
            .all(|v| *v != "timeout=5"),
        "the backend's Keep-Alive reached the client: {:?}",
        r.headers
    );
    assert!(
        !r.headers_named("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("x-backend-hop")),
        "{:?}",
        r.headers
    );
}

#[test]
fn forwarded_headers_and_host_rewrite() {
    let (backend, gw) = setup();
    let r = request(
        gw.addr,
        "GET /echo/xf HTTP/1.1\r\nHost: client.example:8443\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = request(
        gw.addr,
        "GET /echo/xf2 HTTP/1.1\r\nHost: client.example\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let reqs = backend.wait_requests(2, WAIT);
    let backend_host = backend.addr.to_string();
    for req in &reqs {
        let head = common::show(&req.raw_head, 2000);
        assert_eq!(
            req.headers_named("host"),
            vec![backend_host.as_str()],
            "{head}"
        );
        assert_eq!(
            req.headers_named("x-forwarded-proto"),
            vec!["http"],
            "{head}"
        );
    }
    assert_eq!(reqs[0].headers_named("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(
        reqs[0].headers_named("x-forwarded-host"),
        vec!["client.example:8443"]
    );
    assert_eq!(
        reqs[1].headers_named("x-forwarded-for"),
        vec!["203.0.113.7, 127.0.0.1"],
        "{}",
        common::show(&reqs[1].raw_head, 2000)
    );
    assert_eq!(
        reqs[1].headers_named("x-forwarded-host"),
        vec!["client.example"]
    );
}

#[test]
fn forwarded_proto_and_host_are_set_not_trusted_from_the_client() {
    let (backend, gw) = setup();
    let r = request(
        gw.addr,
        "GET /echo/xf HTTP/1.1\r\nHost: real.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let req = &backend.wait_requests(1, WAIT)[0];
    let head = common::show(&req.raw_head, 2000);
    assert_eq!(
        req.headers_named("x-forwarded-proto"),
        vec!["http"],
        "{head}"
    );
    assert_eq!(
        req.headers_named("x-forwarded-host"),
        vec!["real.example"],
        "{head}"
    );
}

#[test]
fn websocket_upgrade_is_tunnelled_after_101() {
    let (backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(
        "GET /echo/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 101, "{:?}", r.headers);
    assert_eq!(
        r.header("upgrade").map(str::to_ascii_lowercase).as_deref(),
        Some("websocket")
    );
    assert!(r.connection_has("upgrade"), "{:?}", r.headers);
    let req = &backend.wait_requests(1, WAIT)[0];
    let head = common::show(&req.raw_head, 2000);
    assert_eq!(req.header("upgrade"), Some("websocket"), "{head}");
    assert!(
        req.headers_named("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{head}"
    );
    assert_eq!(
        req.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ=="),
        "{head}"
    );
    // Opaque bytes both ways, including some that look like HTTP.
    for msg in [
        &b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"[..],
        b"GET /not-http HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0u8, 255, 13, 10, 13, 10][..],
    ] {
        c.send(msg);
        let got = c
            .read_exact_bytes(msg.len(), WAIT)
            .unwrap_or_else(|e| panic!("tunnel echo of {:?}: {e}", common::show(msg, 100)));
        assert_eq!(got, msg, "tunnel echo");
    }
    // Bulk: buffers lent to sends in turn, each coming back for the next read.
    let bulk: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.send(&bulk);
    let got = c
        .read_exact_bytes(bulk.len(), WAIT)
        .unwrap_or_else(|e| panic!("tunnel echo of 300,000 bytes: {e}"));
    assert!(got == bulk, "tunnel echo of 300,000 bytes differs");
    // Closing our side ends the tunnel both ways.
    c.shutdown_write();
    let end = c.read_to_close(WAIT);
    assert!(end.closed && end.data.is_empty(), "{end:?}");
}

#[test]
fn refused_upgrade_stays_http() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(
        "GET /echo/not-ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /v1/not-ws "));
    c.send(get_req("/echo/next"));
    assert_eq!(c.read_response().body_str(), "GET /v1/next ");
}
