//! Bodies relayed without being copied, checked byte for byte on both socket paths.
//! The gateway sends body bytes from the buffer they were received in: in one send
//! with the head written in front of them when it fits, otherwise as one gathered send
//! of head, chunk framing and body pieces (docs/io-engine.md, "Send"). These cases take
//! the second way or sit next to it: large bodies pipelined behind each other (bytes of
//! the next request follow the body in the same buffer), chunked bodies of many large
//! chunks re-encoded both ways (more pieces than one send names), and a rewritten head
//! longer than the space in front of its body.

mod common;

use common::backend::response;
use common::{Backend, Client, Gateway, Reply, Request};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const ENGINES: [&str; 2] = ["uring", "glommio"];

/// Bytes no two offsets of which repeat within a few KiB, distinct per `seed`.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8).wrapping_add(seed))
        .collect()
}

/// Chunk sizes of the chunked response: 150 chunks of 513 to 2,012 bytes.
fn chunk_sizes() -> impl Iterator<Item = usize> {
    (0..150).map(|i| 513 + (i * 389) % 1500)
}

/// `/chunks`: the chunk sizes above, with a trailer. Anything else: the request body
/// echoed with Content-Length.
fn handler(r: &Request) -> Reply {
    if r.target.ends_with("/chunks") {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for (i, len) in chunk_sizes().enumerate() {
            out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
            out.extend_from_slice(&bytes(len, i as u8));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nX-Sum: 150\r\n\r\n");
        return Reply::Send(out);
    }
    Reply::Send(response(200, &[], &r.body))
}

fn setup(engine: &str, service_path: &str) -> (Backend, Gateway) {
    let backend = Backend::start(handler);
    let yaml = format!(
        r#"
apis:
  - id: relay
    path: relay
    serviceUrl: {}/{service_path}
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#,
        backend.url()
    );
    let gw = Gateway::builder(&yaml).engine(engine).start();
    (backend, gw)
}

fn chunked(pieces: &[&[u8]], ext: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        out.extend_from_slice(format!("{:x}{ext}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Done: yes\r\n\r\n");
    out
}

#[test]
fn large_pipelined_bodies_arrive_whole_and_in_order() {
    for engine in ENGINES {
        let (backend, gw) = setup(engine, "v1");
        let first = bytes(3000, 1);
        let (a, b, c) = (bytes(700, 2), bytes(1500, 3), bytes(600, 4));
        let third = bytes(5000, 5);
        let mut all = Vec::new();
        all.extend_from_slice(b"POST /relay/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n");
        all.extend_from_slice(&first);
        all.extend_from_slice(
            b"POST /relay/2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        all.extend_from_slice(&chunked(&[&a, &b, b"tiny", &c], ";e=1"));
        all.extend_from_slice(b"POST /relay/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
        all.extend_from_slice(&third);
        all.extend_from_slice(b"GET /relay/4 HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut client = Client::connect(gw.addr);
        client.send(&all);
        let second = [&a[..], &b[..], b"tiny", &c[..]].concat();
        let expect: [&[u8]; 4] = [&first, &second, &third, b""];
        for (i, want) in expect.iter().enumerate() {
            let r = client
                .try_read_response(if i < 3 { "POST" } else { "GET" }, None)
                .unwrap_or_else(|e| panic!("{engine}: response {i}: {e}"));
            assert_eq!(r.status, 200, "{engine}: response {i}");
            assert!(r.body == *want, "{engine}: response {i}: body differs");
        }
        let got = backend.wait_requests(4, WAIT);
        let targets: Vec<&str> = got.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/v1/1", "/v1/2", "/v1/3", "/v1/4"], "{engine}");
        for (i, want) in expect.iter().enumerate() {
            assert!(got[i].body == *want, "{engine}: request {i}: body differs");
        }
        assert!(
            got[1].chunked,
            "{engine}: the chunked body is forwarded chunked"
        );
        assert_eq!(got[1].trailer("x-done"), Some("yes"), "{engine}");
    }
}

#[test]
fn a_chunked_request_of_many_large_chunks_is_relayed_exactly() {
    for engine in ENGINES {
        let (backend, gw) = setup(engine, "v1");
        // 200 chunks of 1,000 bytes, written at once: buffers full of chunks, more
        // than one gathered send names.
        let parts: Vec<Vec<u8>> = (0..200).map(|i| bytes(1000, i as u8)).collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let mut req =
            b"POST /relay/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(&chunked(&refs, ""));
        let mut client = Client::connect(gw.addr);
        client.send(&req);
        let r = client.read_response_for("POST");
        assert_eq!(r.status, 200, "{engine}");
        let body = parts.concat();
        assert!(r.body == body, "{engine}: echoed body differs");
        let got = &backend.wait_requests(1, WAIT)[0];
        assert_eq!(got.body_len, body.len() as u64, "{engine}");
        assert!(got.body == body, "{engine}: forwarded body differs");
        assert_eq!(got.trailer("x-done"), Some("yes"), "{engine}");
    }
}

#[test]
fn a_chunked_response_of_many_large_chunks_is_relayed_exactly() {
    let want: Vec<u8> = chunk_sizes()
        .enumerate()
        .flat_map(|(i, len)| bytes(len, i as u8))
        .collect();
    for engine in ENGINES {
        let (_backend, gw) = setup(engine, "v1");
        let mut client = Client::connect(gw.addr);
        client.send("GET /relay/chunks HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 200, "{engine}");
        assert!(r.chunked, "{engine}: {:?}", r.headers);
        assert_eq!(r.body.len(), want.len(), "{engine}");
        assert!(r.body == want, "{engine}: body differs");
        assert_eq!(r.trailer("x-sum"), Some("150"), "{engine}");
        // The connection is still in step.
        client.send("POST /relay/next HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext");
        assert_eq!(
            client.read_response_for("POST").body_str(),
            "next",
            "{engine}"
        );
        // An HTTP/1.0 client gets the same bytes, unchunked, until close.
        let mut old = Client::connect(gw.addr);
        old.send("GET /relay/chunks HTTP/1.0\r\nHost: x\r\n\r\n");
        let r = old.read_response();
        assert!(!r.chunked, "{engine}");
        assert!(r.body == want, "{engine}: HTTP/1.0 body differs");
    }
}

#[test]
fn a_head_longer_than_the_space_before_its_body_goes_out_with_it() {
    // The backend path makes the forwarded head 1,500 bytes longer than the received
    // one: it no longer fits in front of the body in the receive buffer.
    let long = format!("v1/{}", "p".repeat(1500));
    for engine in ENGINES {
        let (backend, gw) = setup(engine, &long);
        let body = bytes(6000, 9);
        let mut req = b"POST /relay/x HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n".to_vec();
        req.extend_from_slice(&body);
        let mut client = Client::connect(gw.addr);
        client.send(&req);
        let r = client.read_response_for("POST");
        assert_eq!(r.status, 200, "{engine}");
        assert!(r.body == body, "{engine}: echoed body differs");
        let got = &backend.wait_requests(1, WAIT)[0];
        assert_eq!(got.target, format!("/{long}/x"), "{engine}");
        assert!(got.body == body, "{engine}: forwarded body differs");
    }
}
