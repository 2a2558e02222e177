//! Routing end to end: which API and operation a request reaches, how its path is
//! rewritten onto the serviceUrl, and the gateway's own answers (404 JSON, mocks, the
//! health probe, 400 for dot segments).

mod common;

use common::client::{get, request};
use common::{Backend, Client, Gateway};
use std::time::Duration;

fn config(backend: &Backend) -> String {
    let url = backend.url();
    format!(
        r#"
apis:
  - id: echo
    path: echo
    serviceUrl: {url}/v1
    operations:
      - {{ id: get-item, method: GET, urlTemplate: "/items/{{id}}" }}
      - {{ id: create-item, method: POST, urlTemplate: "/items" }}
      - {{ id: deeper, method: GET, urlTemplate: "/deeper" }}
  - id: nested
    path: echo/deep
    serviceUrl: {url}/v2
    operations:
      - {{ id: any, method: "*", urlTemplate: "/*" }}
  - id: prec
    path: prec
    operations:
      - {{ id: wild, method: "*", urlTemplate: "/*", mock: {{ statusCode: 200, body: wild }} }}
      - {{ id: param, method: GET, urlTemplate: "/items/{{id}}", mock: {{ statusCode: 200, body: param }} }}
      - {{ id: literal, method: GET, urlTemplate: "/items/special", mock: {{ statusCode: 200, body: literal }} }}
      - {{ id: json, method: GET, urlTemplate: "/json", mock: {{ statusCode: 201, contentType: application/json, body: '{{"m":1}}' }} }}
  - id: strict
    path: strict
    operations:
      - {{ id: only, method: GET, urlTemplate: "/only", mock: {{ statusCode: 200, body: only }} }}
  - id: host-a
    path: multi
    hostnames: [a.example]
    operations:
      - {{ id: x, method: GET, urlTemplate: "/*", mock: {{ statusCode: 200, body: host-a }} }}
  - id: host-any
    path: multi
    operations:
      - {{ id: x, method: GET, urlTemplate: "/*", mock: {{ statusCode: 200, body: host-any }} }}
"#
    )
}

fn setup() -> (Backend, Gateway) {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend));
    (backend, gw)
}

/// Asserts a gateway-made 404 with the APIM JSON body.
fn assert_json_404(resp: &common::Response, what: &str) {
    assert_eq!(
        resp.status,
        404,
        "{what}: status; body {:?}",
        resp.body_str()
    );
    let ct = resp.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{what}: content-type {ct:?}"
    );
    let v = resp.json();
    assert_eq!(v["statusCode"], 404, "{what}: body {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: message in {v}"
    );
}

#[test]
fn forwards_path_and_query_onto_the_service_url() {
    let (backend, gw) = setup();
    let resp = get(gw.addr, "/echo/items/42?x=1&y=%20z");
    assert_eq!(resp.status, 200, "{:?}", resp.body_str());
    assert_eq!(resp.body_str(), "GET /v1/items/42?x=1&y=%20z");
    let reqs = backend.wait_requests(1, Duration::from_secs(5));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].target, "/v1/items/42?x=1&y=%20z");
    assert_eq!(reqs[0].version, "HTTP/1.1");
    assert_eq!(
        reqs[0].headers_named("host"),
        vec![backend.addr.to_string().as_str()]
    );
}

#[test]
fn longest_api_path_wins_on_a_segment_boundary() {
    let (backend, gw) = setup();
    // `echo/deep` is longer than `echo`.
    let r = get(gw.addr, "/echo/deep/z/y");
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /v2/z/y"));
    let r = get(gw.addr, "/echo/deep");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "GET /v2"),
        "API root"
    );
    // `/echo/deeper` is not under `echo/deep`: it is `echo`'s `/deeper` operation.
    let r = get(gw.addr, "/echo/deeper");
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /v1/deeper"));
    // `/echoes/...` is not under `echo` at all.
    let r = get(gw.addr, "/echoes/items/1");
    assert_json_404(&r, "/echoes/items/1");
    assert_eq!(backend.requests().len(), 3);
}

#[test]
fn literal_segments_beat_parameters_and_the_wildcard_comes_last() {
    let (_backend, gw) = setup();
    // The wildcard is declared first: document order must not matter.
    for (path, want) in [
        ("/prec/items/special", "literal"),
        ("/prec/items/7", "param"),
        ("/prec/items", "wild"),
        ("/prec/other/x", "wild"),
        ("/prec/items/7/more", "wild"),
        ("/prec/", "wild"),
    ] {
        let r = get(gw.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body_str(), want, "{path}");
    }
}

#[test]
fn unknown_api_is_404_json() {
    let (backend, gw) = setup();
    for path in ["/nope", "/", "/ech", "/strictly/only"] {
        assert_json_404(&get(gw.addr, path), path);
    }
    assert!(backend.requests().is_empty());
}

#[test]
fn api_without_a_matching_operation_is_404_json() {
    let (backend, gw) = setup();
    assert_json_404(&get(gw.addr, "/strict/other"), "GET /strict/other");
    assert_json_404(
        &get(gw.addr, "/echo/items"),
        "GET /echo/items (only POST exists)",
    );
    let r = request(
        gw.addr,
        "POST /strict/only HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_json_404(&r, "POST /strict/only (only GET exists)");
    // Methods are case-sensitive (RFC 9110 §9.1).
    let r = request(gw.addr, "get /strict/only HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_json_404(&r, "get /strict/only");
    assert!(backend.requests().is_empty(), "{:?}", backend.requests());
}

#[test]
fn a_404_keeps_the_connection_usable() {
    let (_backend, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(common::get_req("/nope"));
    assert_json_404(&c.read_response(), "/nope");
    c.send(common::get_req("/prec/items/special"));
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "literal"));
}

#[test]
fn methods_select_the_operation() {
    let (backend, gw) = setup();
    let r = request(
        gw.addr,
        "POST /echo/items HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!((r.status, r.body_str().as_str()), (200, "POST /v1/items"));
    let reqs = backend.wait_requests(1, Duration::from_secs(5));
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].body, b"hello");
}

#[test]
fn hostnames_select_between_apis_on_the_same_path() {
    let (_backend, gw) = setup();
    for (host, want) in [
        ("a.example", "host-a"),
        ("A.Example", "host-a"),
        ("a.example:8080", "host-a"),
        ("b.example", "host-any"),
        ("127.0.0.1", "host-any"),
    ] {
        let r = request(
            gw.addr,
            format!("GET /multi/x HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
        assert_eq!(r.status, 200, "Host {host}");
        assert_eq!(r.body_str(), want, "Host {host}");
    }
}

#[test]
fn mocks_are_answered_by_the_gateway() {
    let (backend, gw) = setup();
    let r = get(gw.addr, "/prec/json");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-length"), Some("7"));
    assert_eq!(r.body, br#"{"m":1}"#);
    // HEAD of a mock (the `*` operation): same head, no body.
    let mut c = Client::connect(gw.addr);
    c.send("HEAD /prec/other HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_for("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("4"),
        "Content-Length of the body \"wild\""
    );
    c.send(common::get_req("/prec/items/7"));
    let r = c.read_response();
    assert_eq!(
        r.body_str(),
        "param",
        "the HEAD response must not have carried a body"
    );
    assert!(backend.requests().is_empty());
}

#[test]
fn health_probe_answers_200() {
    let (backend, gw) = setup();
    let r = get(gw.addr, "/status-0123456789abcdef");
    assert_eq!(r.status, 200);
    assert!(backend.requests().is_empty());
}

#[test]
fn dot_segments_are_rejected_with_400() {
    let (backend, gw) = setup();
    for path in [
        "/echo/../x",
        "/echo/items/..",
        "/echo/%2e%2e/x",
        "/echo/%2E%2E/x",
        "/echo/.%2e/items/1",
        "/echo/%2e./items/1",
        "/echo/./items/1",
        "/echo/%2e/items/1",
        "/../echo/items/1",
    ] {
        let r = get(gw.addr, path);
        assert_eq!(r.status, 400, "{path}: {:?}", r.body_str());
    }
    // Dots inside a segment are fine.
    let r = get(gw.addr, "/echo/items/a..b");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "GET /v1/items/a..b")
    );
    std::thread::sleep(Duration::from_millis(100));
    let reqs = backend.requests();
    assert_eq!(
        reqs.len(),
        1,
        "only the last request may reach the backend: {reqs:?}"
    );
}

#[test]
fn default_config_serves_the_hello_api() {
    let gw = Gateway::builder("").config(None).start();
    let r = get(gw.addr, "/hello/");
    assert_eq!(r.status, 200, "{:?}", r.body_str());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "content-type {:?}",
        r.header("content-type")
    );
    let _ = r.json();
    assert_eq!(get(gw.addr, "/status-0123456789abcdef").status, 200);
    assert_json_404(
        &get(gw.addr, "/nothing-here"),
        "default config, unknown API",
    );
}
