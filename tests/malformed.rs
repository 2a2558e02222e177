//! Adversarial requests over raw TCP, table-driven (sozu's `e2e` habit). For every
//! malformed or over-limit input the gateway must answer with the exact status, close
//! the connection, forward NOTHING to the backend, and still serve a new connection
//! correctly afterwards. Each group runs all of its cases and then fails once, listing
//! every case that went wrong with its request bytes, what was expected and what came.
//!
//! Inputs cover RFC 9112 §2.2 (bare CR, whitespace before the first field), §5
//! (field syntax, obs-fold, whitespace before the colon), §6.1/§6.3 (Transfer-Encoding
//! and Content-Length conflicts, request smuggling), §7.1 (chunk sizes, extensions,
//! CRLF after data), §3.2 (Host), and the configured limits (414, 431, 413).

mod common;

use common::client::get;
use common::{show, Backend, Client, Gateway, Pattern};
use std::time::Duration;

const CLOSE_WAIT: Duration = Duration::from_secs(5);
const MAX_BODY: u64 = 1048576;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    status: u16,
}

fn case(name: &'static str, status: u16, bytes: impl AsRef<[u8]>) -> Case {
    Case {
        name,
        bytes: bytes.as_ref().to_vec(),
        status,
    }
}

fn setup(engine: &str) -> (Backend, Gateway) {
    let backend = Backend::echo();
    let yaml = format!(
        r#"
gateway:
  limits: {{ requestLine: 8192, headerBytes: 65536, headerCount: 100 }}
apis:
  - id: echo
    path: echo
    serviceUrl: {}/v1
    maxRequestBodySize: {MAX_BODY}
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
"#,
        backend.url()
    );
    let gw = Gateway::builder(&yaml).engine(engine).start();
    (backend, gw)
}

/// Runs every case against a gateway on each socket path (the io_uring engine and
/// glommio's sockets: the engine changes how bytes move, never what they mean) and
/// panics once with all failures.
fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for engine in ["uring", "glommio"] {
        let (backend, gw) = setup(engine);
        for (i, c) in cases.iter().enumerate() {
            if let Err(e) = run_case(&backend, &gw, i, c) {
                failures.push(format!(
                "[{engine}: {}] expected {} + close + nothing forwarded\n    request: {:?}\n    problem: {e}",
                c.name,
                c.status,
                show(&c.bytes, 300)
            ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed-input cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn run_case(backend: &Backend, gw: &Gateway, i: usize, c: &Case) -> Result<(), String> {
    let before_bytes = backend.total_bytes();
    let before_reqs = backend.requests().len();
    let before_conns: Vec<(usize, u64)> = backend.conns().iter().map(|c| (c.id, c.total)).collect();

    let mut client = Client::connect(gw.addr);
    client.timeout = Duration::from_secs(15);
    let sent = client.try_send(&c.bytes);
    let mut problems = Vec::new();
    match client.try_read_response("GET", None) {
        Ok(r) if r.status == c.status => {
            if let Err(e) = client.expect_closed(CLOSE_WAIT) {
                problems.push(format!("got {} but {e}", r.status));
            }
        }
        Ok(r) => problems.push(format!(
            "got status {} ({:?}), body {:?}",
            r.status,
            r.reason,
            r.body_str()
        )),
        Err(e) => problems.push(format!("no response: {e} (send: {sent:?})")),
    }

    // A new connection is served normally.
    let path = format!("/echo/after/{i}");
    let r = get(gw.addr, &path);
    if r.status != 200 || r.body_str() != format!("GET /v1/after/{i}") {
        problems.push(format!(
            "follow-up GET {path} on a new connection got {} {:?}",
            r.status,
            r.body_str()
        ));
    }
    // Let anything forwarded by mistake arrive before looking.
    std::thread::sleep(Duration::from_millis(100));
    let reqs = backend.requests();
    let new: Vec<_> = reqs[before_reqs..].to_vec();
    let follow_up: Vec<_> = new
        .iter()
        .filter(|r| r.target == format!("/v1/after/{i}"))
        .collect();
    let others: Vec<_> = new
        .iter()
        .filter(|r| r.target != format!("/v1/after/{i}"))
        .map(|r| format!("{} {} (body {:?})", r.method, r.target, show(&r.body, 60)))
        .collect();
    if !others.is_empty() {
        problems.push(format!("backend received request(s): {others:?}"));
    }
    let expected_bytes: u64 = follow_up.iter().map(|r| r.raw_head.len() as u64).sum();
    let delta = backend.total_bytes() - before_bytes;
    if others.is_empty() && delta != expected_bytes {
        let mut grown = Vec::new();
        for conn in backend.conns() {
            let old = before_conns
                .iter()
                .find(|(id, _)| *id == conn.id)
                .map(|(_, t)| *t)
                .unwrap_or(0);
            if conn.total > old {
                let from = (old as usize).min(conn.bytes.len());
                grown.push(format!(
                    "conn {}: {:?}",
                    conn.id,
                    show(&conn.bytes[from..], 300)
                ));
            }
        }
        problems.push(format!(
            "backend received {delta} bytes, expected only the follow-up's {expected_bytes}: {grown:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn post(head_fields: &str, body: &str) -> String {
    format!("POST /echo/m HTTP/1.1\r\nHost: x\r\n{head_fields}\r\n{body}")
}

#[test]
fn content_length_and_transfer_encoding_conflicts() {
    run(vec![
        case(
            "TE + CL",
            400,
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        case(
            "CL + TE (TE first)",
            400,
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
        ),
        case(
            "TE + CL 0",
            400,
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
                "0\r\n\r\n",
            ),
        ),
        case(
            "duplicate CL, same value",
            400,
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        ),
        case(
            "duplicate CL, differing",
            400,
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        ),
        case(
            "CL list in one field",
            400,
            post("Content-Length: 5, 5\r\n", "hello"),
        ),
        case(
            "CL with plus sign",
            400,
            post("Content-Length: +5\r\n", "hello"),
        ),
        case("CL negative", 400, post("Content-Length: -5\r\n", "hello")),
        case("CL hex", 400, post("Content-Length: 0x5\r\n", "hello")),
        case(
            "CL trailing letters",
            400,
            post("Content-Length: 5a\r\n", "hello"),
        ),
        case("CL empty", 400, post("Content-Length: \r\n", "hello")),
        case(
            "CL inner space",
            400,
            post("Content-Length: 5 5\r\n", "hello"),
        ),
        case(
            "CL overflow (2^64)",
            400,
            post("Content-Length: 18446744073709551616\r\n", "hello"),
        ),
        case(
            "CL overflow (26 digits)",
            400,
            post("Content-Length: 99999999999999999999999999\r\n", "hello"),
        ),
        case(
            "TE gzip, chunked",
            400,
            post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        ),
        case(
            "TE identity",
            400,
            post("Transfer-Encoding: identity\r\n", ""),
        ),
        case(
            "TE chunked, chunked",
            400,
            post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
        ),
        case(
            "TE chunked twice",
            400,
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        case(
            "TE xchunked",
            400,
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
        ),
        case(
            "TE chunked then gzip",
            400,
            post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
        ),
        case("TE empty", 400, post("Transfer-Encoding: \r\n", "")),
        case(
            "TE on HTTP/1.0",
            400,
            "POST /echo/m HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ]);
}

#[test]
fn field_syntax_violations() {
    let g = |fields: &[u8]| {
        let mut v = b"GET /echo/m HTTP/1.1\r\nHost: x\r\n".to_vec();
        v.extend_from_slice(fields);
        v.extend_from_slice(b"\r\n");
        v
    };
    run(vec![
        case("obs-fold (space)", 400, g(b"X-Foo: a\r\n b\r\n")),
        case("obs-fold (tab)", 400, g(b"X-Foo: a\r\n\tb\r\n")),
        case(
            "obs-fold of Content-Length",
            400,
            post("Content-Length:\r\n 5\r\n", "hello"),
        ),
        case(
            "whitespace before the first field",
            400,
            "GET /echo/m HTTP/1.1\r\n X-Foo: a\r\nHost: x\r\n\r\n",
        ),
        case("bare CR inside a value", 400, g(b"X-Foo: a\rb\r\n")),
        case("bare CR as a line end", 400, g(b"X-Foo: a\rX-Bar: b\r\n")),
        case(
            "bare CR in the request line",
            400,
            "GET /echo/m\r HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case("NUL in a value", 400, g(b"X-Foo: a\x00b\r\n")),
        case("NUL in a name", 400, g(b"X-F\x00oo: a\r\n")),
        case("SOH in a value", 400, g(b"X-Foo: a\x01b\r\n")),
        case("ESC in a value", 400, g(b"X-Foo: a\x1bb\r\n")),
        case("DEL in a value", 400, g(b"X-Foo: a\x7fb\r\n")),
        case("control byte in a name", 400, g(b"X-F\x01oo: a\r\n")),
        case("space before the colon", 400, g(b"X-Foo : a\r\n")),
        case("tab before the colon", 400, g(b"X-Foo\t: a\r\n")),
        case(
            "space before the colon of Content-Length",
            400,
            post("Content-Length : 5\r\n", "hello"),
        ),
        case(
            "space before the colon of Transfer-Encoding",
            400,
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
        ),
        case("space inside a name", 400, g(b"X Foo: a\r\n")),
        case("no colon", 400, g(b"X-Foo a\r\n")),
        case("empty name", 400, g(b": a\r\n")),
        case("separator in a name", 400, g(b"X-Fo(o: a\r\n")),
    ]);
}

#[test]
fn host_header_violations() {
    run(vec![
        case(
            "missing Host (HTTP/1.1)",
            400,
            "GET /echo/m HTTP/1.1\r\nX-A: 1\r\n\r\n",
        ),
        case(
            "repeated Host, same",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
        ),
        case(
            "repeated Host, differing",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        ),
        case(
            "Host with a space",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: a b\r\n\r\n",
        ),
        case(
            "Host with a slash",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: a/b\r\n\r\n",
        ),
        case(
            "Host with userinfo",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: user@a\r\n\r\n",
        ),
        case(
            "Host with a bad port",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: a:b\r\n\r\n",
        ),
        case(
            "Host with an open IPv6 literal",
            400,
            "GET /echo/m HTTP/1.1\r\nHost: [::1\r\n\r\n",
        ),
    ]);
}

#[test]
fn chunked_body_violations() {
    let c = |body: &[u8]| {
        let mut v =
            b"POST /echo/m HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        v.extend_from_slice(body);
        v
    };
    run(vec![
        case("chunk size not hex", 400, c(b"zz\r\nhello\r\n0\r\n\r\n")),
        case("chunk size negative", 400, c(b"-5\r\nhello\r\n0\r\n\r\n")),
        case("chunk size empty", 400, c(b"\r\nhello\r\n0\r\n\r\n")),
        case("chunk size with 0x", 400, c(b"0x5\r\nhello\r\n0\r\n\r\n")),
        case(
            "chunk size with leading space",
            400,
            c(b" 5\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk size with inner space",
            400,
            c(b"5 5\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk size overflow (17 hex digits)",
            400,
            c(b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk size overflow (21 hex digits)",
            400,
            c(b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk extension without a name",
            400,
            c(b"5;\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk extension '=' without a name",
            400,
            c(b"5;=x\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk extension unterminated quote",
            400,
            c(b"5;a=\"x\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk extension control byte",
            400,
            c(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "chunk extension stray token",
            400,
            c(b"5;a b\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "missing CRLF after chunk data",
            400,
            c(b"5\r\nhello0\r\n\r\n"),
        ),
        case(
            "junk before CRLF after chunk data",
            400,
            c(b"5\r\nhelloX\r\n0\r\n\r\n"),
        ),
        case(
            "chunk data longer than its size",
            400,
            c(b"3\r\nhello\r\n0\r\n\r\n"),
        ),
    ]);
}

#[test]
fn request_line_violations() {
    run(vec![
        case(
            "HTTP/2.0 version",
            505,
            "GET /echo/m HTTP/2.0\r\nHost: x\r\n\r\n",
        ),
        case(
            "HTTP/3.0 version",
            505,
            "GET /echo/m HTTP/3.0\r\nHost: x\r\n\r\n",
        ),
        case(
            "lowercase version",
            400,
            "GET /echo/m http/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "version with junk",
            400,
            "GET /echo/m HTTP/1.1x\r\nHost: x\r\n\r\n",
        ),
        case(
            "version without a dot",
            400,
            "GET /echo/m HTTP/11\r\nHost: x\r\n\r\n",
        ),
        case(
            "no version (HTTP/0.9 style)",
            400,
            "GET /echo/m\r\nHost: x\r\n\r\n",
        ),
        case(
            "double space after the method",
            400,
            "GET  /echo/m HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "double space before the version",
            400,
            "GET /echo/m  HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "leading space",
            400,
            " GET /echo/m HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "separator in the method",
            400,
            "G(T /echo/m HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "target not starting with '/'",
            400,
            "GET echo/m HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        case(
            "NUL in the target",
            400,
            b"GET /echo/m\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ]);
}

#[test]
fn limits_are_enforced() {
    let long_target = format!("/echo/{}", "a".repeat(9000));
    // Request line of 8193 bytes: one over the limit.
    let over_by_one = format!("/echo/{}", "a".repeat(8193 - 4 - 9 - 6));
    let mut many = String::from("GET /echo/m HTTP/1.1\r\nHost: x\r\n");
    for i in 0..70 {
        many.push_str(&format!("X-Big-{i:02}: {}\r\n", "a".repeat(990)));
    }
    many.push_str("\r\n");
    let huge_one = format!(
        "GET /echo/m HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let mut count = String::from("GET /echo/m HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        count.push_str(&format!("X-H{i}: v\r\n"));
    }
    count.push_str("\r\n");
    run(vec![
        case("request line of 9000+ bytes", 414, format!("GET {long_target} HTTP/1.1\r\nHost: x\r\n\r\n")),
        case("request line of 8193 bytes", 414, format!("GET {over_by_one} HTTP/1.1\r\nHost: x\r\n\r\n")),
        case("request line of 9000+ bytes, no CRLF yet", 414, format!("GET {long_target}")),
        case("head over 64 KiB (70 x 1 KB fields)", 431, many),
        case("head over 64 KiB (one 70 KB field)", 431, huge_one),
        case("101 header fields", 431, count),
        case(
            "Content-Length over maxRequestBodySize",
            413,
            format!("POST /echo/m HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1),
        ),
        case(
            "Content-Length over maxRequestBodySize, Expect: 100-continue",
            413,
            format!(
                "POST /echo/m HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
                MAX_BODY + 1
            ),
        ),
        case(
            "Content-Length 2^63 over maxRequestBodySize",
            413,
            "POST /echo/m HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
        ),
        case(
            "first chunk over maxRequestBodySize",
            413,
            format!(
                "POST /echo/m HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                MAX_BODY + 1
            ),
        ),
    ]);
}

/// Inputs right at the limits, or odd but valid, are served (and the connection stays
/// usable). Guards against limits that are off by one or parsers that are too strict.
#[test]
fn valid_edge_cases_are_accepted() {
    let (backend, gw) = setup("uring");
    let target = format!("/echo/{}", "a".repeat(8192 - 4 - 9 - 6));
    let line_8192 = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(line_8192.find("\r\n"), Some(8192));
    let mut fields_100 = String::from("GET /echo/fields HTTP/1.1\r\nHost: x\r\n");
    for i in 0..99 {
        fields_100.push_str(&format!("X-H{i}: v\r\n"));
    }
    fields_100.push_str("\r\n");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("request line of exactly 8192 bytes", line_8192.into_bytes(), format!("GET /v1/{}", &target[6..])),
        ("exactly 100 header fields", fields_100.into_bytes(), "GET /v1/fields".into()),
        ("empty line before the request line", b"\r\nGET /echo/crlf HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "GET /v1/crlf".into()),
        ("tab and obs-text in a value", b"GET /echo/obs HTTP/1.1\r\nHost: x\r\nX-A: a\tb\xe9\r\n\r\n".to_vec(), "GET /v1/obs".into()),
        ("no space after the colon", b"GET /echo/nospace HTTP/1.1\r\nHost:x\r\nX-A:1\r\n\r\n".to_vec(), "GET /v1/nospace".into()),
        ("Transfer-Encoding in another case", b"POST /echo/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(), "POST /v1/te".into()),
        ("chunk extensions with BWS and quoted values", b"POST /echo/ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2 ; a=b ; c=\"d;e\"\r\nok\r\n0\r\n\r\n".to_vec(), "POST /v1/ext".into()),
        ("uppercase hex chunk size", b"POST /echo/hex HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n".to_vec(), "POST /v1/hex".into()),
        ("Content-Length with OWS", b"POST /echo/ows HTTP/1.1\r\nHost: x\r\nContent-Length:  2 \r\n\r\nok".to_vec(), "POST /v1/ows".into()),
    ];
    let mut failures = Vec::new();
    for (name, bytes, want) in &cases {
        let mut c = Client::connect(gw.addr);
        c.send(bytes);
        match c.try_read_response("GET", None) {
            Ok(r) if r.status == 200 && r.body_str() == *want => {
                c.send(common::get_req("/echo/again"));
                match c.try_read_response("GET", None) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("[{name}] second request got {}", r.status)),
                    Err(e) => failures.push(format!("[{name}] second request: {e}")),
                }
            }
            Ok(r) => failures.push(format!(
                "[{name}] request {:?}: expected 200 {want:?}, got {} {:?}",
                show(bytes, 200),
                r.status,
                r.body_str()
            )),
            Err(e) => failures.push(format!("[{name}] request {:?}: {e}", show(bytes, 200))),
        }
    }
    assert!(
        failures.is_empty(),
        "valid inputs rejected:\n{}",
        failures.join("\n")
    );
    let obs = backend
        .requests()
        .into_iter()
        .find(|r| r.target == "/v1/obs")
        .expect("obs-text request forwarded");
    let raw = obs.raw_head;
    assert!(
        raw.windows(5).any(|w| w == b"a\tb\xe9\r"),
        "value bytes not forwarded as is: {:?}",
        show(&raw, 400)
    );
}

#[test]
fn body_of_exactly_max_request_body_size_is_accepted() {
    let (backend, gw) = setup("uring");
    let mut c = Client::connect(gw.addr);
    c.send(format!(
        "POST /echo/max HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY}\r\n\r\n"
    ));
    c.send(Pattern::bytes(MAX_BODY as usize));
    let r = c.read_response_for("POST");
    assert_eq!(r.status, 200, "{:?}", r.body_str());
    let req = &backend.wait_requests(1, Duration::from_secs(10))[0];
    assert_eq!(req.body_len, MAX_BODY);
    assert!(req.body_is_pattern, "body corrupted on the way");
}
