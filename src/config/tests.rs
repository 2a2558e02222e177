//! Tests of loading as a whole: the documented example, the default config, YAML and
//! JSON, shape errors with paths, files, and a no-panic loop over mutated documents.

use std::time::Duration;

use super::testutil::{error_paths, errors, load, try_load};
use super::*;

pub(crate) const EXAMPLE: &str = r#"
apis:
  - id: echo
    path: echo                       # requests under /echo/ belong to this API
    serviceUrl: http://127.0.0.1:9000/v1
    operations:
      - { id: get-item,    method: GET,  urlTemplate: "/items/{id}" }
      - { id: create-item, method: POST, urlTemplate: "/items" }
      - { id: anything,    method: "*",  urlTemplate: "/*" }
"#;

const FULL: &str = r#"
gateway:
  id: edge-1
  limits:
    requestLine: 4096
    headerBytes: 32768
    headerCount: 50
    connectionsPerCore: 500
  timeouts:
    requestHead: 10s
    keepAlive: 75
    bodyIdle: 1.5
    upstreamConnect: 500ms
    drain: 2m
  upstream:
    maxIdlePerBackend: 8
    idleTimeout: 1h
apis:
  - id: echo
    name: Echo API
    path: /echo/
    hostnames: [api.example.com, "*.Example.com"]
    serviceUrl: http://127.0.0.1:9000/v1
    timeout: 30s
    maxRequestBodySize: 10485760
    operations:
      - id: get-item
        method: GET
        urlTemplate: "/items/{id}"
        mock:
          statusCode: 201
          contentType: application/json
          body: '{"hello":"world"}'
"#;

fn op_id<'a>(m: &RouteMatch<'a>) -> Option<&'a str> {
    match m {
        RouteMatch::Found { operation, .. } => Some(operation.id.as_str()),
        _ => None,
    }
}

#[test]
fn example_document_compiles_and_routes() {
    let config = load_str(EXAMPLE, 7).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.revision, 7);
    assert_eq!(config.apis.len(), 1);
    let api = &config.apis[0];
    assert_eq!(api.id, "echo");
    assert_eq!(api.name, "echo");
    assert_eq!(api.path, "/echo");
    assert!(api.hostnames.is_empty());
    assert_eq!(api.timeout, Duration::from_secs(300));
    assert_eq!(api.max_request_body, None);
    assert_eq!(api.backend, Some(0));
    let backend = config.backend_of(api).expect("backend");
    assert_eq!(backend.addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(backend.authority, "127.0.0.1:9000");
    assert_eq!(backend.base_path, "/v1");
    assert_eq!(config.backends().len(), 1);

    match config.route("localhost:8080", "/echo/items/42", "GET") {
        RouteMatch::Found {
            api,
            operation,
            suffix,
            params,
        } => {
            assert_eq!(api.id, "echo");
            assert_eq!(operation.id, "get-item");
            assert_eq!(suffix, "/items/42");
            assert_eq!(params, [("id", "42")]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        op_id(&config.route("h", "/echo/items", "POST")),
        Some("create-item")
    );
    assert_eq!(
        op_id(&config.route("h", "/echo/x/y", "DELETE")),
        Some("anything")
    );
    // GET /echo/items is not get-item (needs an id) and not create-item (POST).
    assert_eq!(
        op_id(&config.route("h", "/echo/items", "GET")),
        Some("anything")
    );
    assert_eq!(config.route("h", "/other", "GET"), RouteMatch::NoApi);
}

#[test]
fn full_schema_compiles() {
    let config = load(FULL);
    let s = &config.settings;
    assert_eq!(s.gateway_id, "edge-1");
    assert_eq!(s.limits.max_request_line, 4096);
    assert_eq!(s.limits.max_header_bytes, 32768);
    assert_eq!(s.limits.max_headers, 50);
    assert_eq!(s.connections_per_core, 500);
    assert_eq!(
        s.timeouts,
        Timeouts {
            request_head: Duration::from_secs(10),
            keep_alive: Duration::from_secs(75),
            body_idle: Duration::from_millis(1500),
            upstream_connect: Duration::from_millis(500),
            drain: Duration::from_secs(120),
        }
    );
    assert_eq!(
        s.upstream,
        UpstreamSettings {
            max_idle_per_backend: 8,
            idle_timeout: Duration::from_secs(3600),
        }
    );
    let api = &config.apis[0];
    assert_eq!(api.name, "Echo API");
    assert_eq!(api.path, "/echo");
    assert_eq!(api.hostnames, ["api.example.com", "*.example.com"]);
    assert_eq!(api.timeout, Duration::from_secs(30));
    assert_eq!(api.max_request_body, Some(10_485_760));
    let op = &api.operations[0];
    assert_eq!(op.method.as_deref(), Some("GET"));
    assert_eq!(op.template.as_str(), "/items/{id}");
    assert_eq!(
        op.mock,
        Some(MockResponse {
            status: 201,
            content_type: Some("application/json".into()),
            body: br#"{"hello":"world"}"#.to_vec(),
        })
    );
}

#[test]
fn defaults_when_gateway_is_absent() {
    let config = load(EXAMPLE);
    let s = &config.settings;
    assert_eq!(s.gateway_id, "portico");
    assert_eq!(s.limits.max_request_line, 8192);
    assert_eq!(s.limits.max_header_bytes, 65536);
    assert_eq!(s.limits.max_headers, 100);
    assert_eq!(s.connections_per_core, 10_000);
    assert_eq!(s.timeouts, Timeouts::default());
    assert_eq!(s.timeouts.request_head, Duration::from_secs(10));
    assert_eq!(s.timeouts.keep_alive, Duration::from_secs(75));
    assert_eq!(s.timeouts.body_idle, Duration::from_secs(60));
    assert_eq!(s.timeouts.upstream_connect, Duration::from_secs(5));
    assert_eq!(s.timeouts.drain, Duration::from_secs(30));
    assert_eq!(s.upstream.max_idle_per_backend, 64);
    assert_eq!(s.upstream.idle_timeout, Duration::from_secs(60));
}

#[test]
fn default_config_compiles_and_is_self_contained() {
    let config = load_str(DEFAULT_CONFIG, 0).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.backends().is_empty(),
        "the default config must need no backend"
    );
    assert!(config.apis.iter().all(|a| a.backend.is_none()));
    match config.route("localhost", "/hello", "GET") {
        RouteMatch::Found { operation, .. } => {
            let mock = operation.mock.as_ref().expect("mocked");
            assert_eq!(mock.status, 200);
            assert_eq!(mock.content_type.as_deref(), Some("application/json"));
            assert_eq!(mock.body, br#"{"message":"Hello from Portico"}"#);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        op_id(&config.route("localhost", "/hello/", "GET")),
        Some("hello")
    );
    assert_eq!(
        op_id(&config.route("localhost", "/hello/items/9", "GET")),
        Some("get-item")
    );
    // The commented example at the end of the file is valid once uncommented.
    let (head, tail) = DEFAULT_CONFIG
        .split_once("# To proxy an API")
        .expect("the proxied example is in default.yaml");
    let uncommented: String = tail
        .lines()
        .filter_map(|l| l.strip_prefix('#').filter(|r| r.starts_with("  ")))
        .collect::<Vec<_>>()
        .join("\n");
    let uncommented = format!("{head}\n{uncommented}\n");
    let config = load(&uncommented);
    assert_eq!(config.apis.len(), 2);
    assert_eq!(
        op_id(&config.route("h", "/echo/items", "POST")),
        Some("create-item")
    );
}

#[test]
fn json_documents_are_accepted() {
    let json = r#"{
        "gateway": { "id": "j", "timeouts": { "keepAlive": "5s", "drain": 0 } },
        "apis": [ {
            "id": "echo", "path": "/echo", "serviceUrl": "http://127.0.0.1:9000",
            "operations": [ { "id": "all", "method": "*", "urlTemplate": "/*" } ]
        } ]
    }"#;
    let config = load(json);
    assert_eq!(config.settings.gateway_id, "j");
    assert_eq!(config.settings.timeouts.keep_alive, Duration::from_secs(5));
    assert_eq!(config.settings.timeouts.drain, Duration::ZERO);
    assert_eq!(config.backends()[0].base_path, "");
    assert_eq!(op_id(&config.route("h", "/echo", "PATCH")), Some("all"));
}

#[test]
fn empty_document_is_an_empty_config() {
    for text in ["", "   \n", "# nothing here\n\n  # at all\n", "{}"] {
        let config = load(text);
        assert!(config.apis.is_empty());
        assert_eq!(config.route("h", "/", "GET"), RouteMatch::NoApi);
    }
}

#[test]
fn unknown_fields_name_their_path() {
    let text = "apis:\n  - id: a\n    serviceUrl: http://127.0.0.1:1\n    operations:\n      - { id: x, method: GET, urlTemplate: /, mehtod: GET }\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("apis[0].operations[0].mehtod: unknown field `mehtod`"),
        "{errs:?}"
    );

    let errs = errors("gateway:\n  timeouts:\n    keepalive: 5s\n");
    assert!(
        errs[0].starts_with("gateway.timeouts.keepalive: unknown field"),
        "{errs:?}"
    );
    let errs = errors("apis: []\nprodcuts: []\n");
    assert!(errs[0].starts_with("prodcuts: unknown field"), "{errs:?}");
    let errs = errors("apis:\n  - id: a\n    mock: {}\n");
    assert!(
        errs[0].starts_with("apis[0].mock: unknown field"),
        "{errs:?}"
    );
}

#[test]
fn shape_errors_name_their_path() {
    let errs = errors("apis:\n  - path: x\n");
    assert!(
        errs[0].starts_with("apis[0]: missing field `id`"),
        "{errs:?}"
    );
    let errs = errors("apis:\n  - id: a\n    operations:\n      - { id: x, method: GET }\n");
    assert!(
        errs[0].starts_with("apis[0].operations[0]: missing field `urlTemplate`"),
        "{errs:?}"
    );
    let errs = errors("gateway:\n  limits:\n    requestLine: lots\n");
    assert!(
        errs[0].starts_with("gateway.limits.requestLine: invalid type"),
        "{errs:?}"
    );
    let errs = errors("gateway:\n  limits:\n    headerCount: -1\n");
    assert!(
        errs[0].starts_with("gateway.limits.headerCount: "),
        "{errs:?}"
    );
    let errs = errors("apis:\n  - id: a\n    timeout: [1]\n");
    assert!(
        errs[0].starts_with("apis[0].timeout: invalid type"),
        "{errs:?}"
    );
    let errs = errors("apis:\n  - id: a\n    operations:\n      - { id: x, method: GET, urlTemplate: /, mock: { statusCode: 70000 } }\n");
    assert!(
        errs[0].starts_with("apis[0].operations[0].mock.statusCode: "),
        "{errs:?}"
    );
    let errs = errors("apis: {}\n");
    assert!(errs[0].starts_with("apis: invalid type"), "{errs:?}");
    let errs = errors("- 1\n");
    assert!(errs[0].starts_with("invalid type"), "{errs:?}");
    // YAML syntax errors carry a line and column instead of a path.
    let errs = errors("apis:\n  - id: [\n");
    assert!(errs[0].contains("line"), "{errs:?}");
    let errs = error_paths("apis: []\n---\napis: []\n");
    assert_eq!(errs.len(), 1);
}

#[test]
fn scalars_are_read_as_strings_where_strings_are_expected() {
    let config = load("apis:\n  - id: 123\n    path: 2024\n    operations:\n      - { id: 1, method: GET, urlTemplate: /, mock: { body: 42 } }\n");
    assert_eq!(config.apis[0].id, "123");
    assert_eq!(config.apis[0].path, "/2024");
    assert_eq!(
        config.apis[0].operations[0].mock.as_ref().unwrap().body,
        b"42"
    );
}

#[test]
fn load_file_reports_the_file_path() {
    let dir = std::env::temp_dir().join(format!("portico-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.yaml");
    let err = load_file(&missing, 1).expect_err("missing file");
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].path, missing.display().to_string());
    assert!(!err.0[0].message.is_empty());

    let good = dir.join("good.yaml");
    std::fs::write(&good, EXAMPLE).unwrap();
    let config = load_file(&good, 3).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.revision, 3);

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apis:\n  - id: 'a b'\n").unwrap();
    let err = load_file(&bad, 1).expect_err("bad file");
    assert_eq!(err.0[0].path, "apis[0].id");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn all_compile_errors_are_reported_at_once() {
    let text = r#"
gateway:
  timeouts: { keepAlive: 0 }
apis:
  - id: a
    serviceUrl: https://x.test
    operations:
      - { id: one, method: "GET", urlTemplate: "/{a" }
  - id: a
    operations:
      - { id: two, method: "G T", urlTemplate: "/" }
"#;
    let err = try_load(text).expect_err("invalid");
    let shown = err.to_string();
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        [
            "gateway.timeouts.keepAlive: must be greater than zero",
            "apis[0].serviceUrl: https backends are not supported yet",
            "apis[0].operations[0].urlTemplate: unbalanced '{'",
            "apis[1].operations[0].method: invalid method \"G T\": must be an HTTP token (RFC 9110) or \"*\"",
            "apis[1].id: duplicate API id \"a\" (first at apis[0])",
            "apis[1].path: path \"\" (the root) is already used by API \"a\" (apis[0]); give one of them hostnames",
        ]
    );
}

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "{id}",
    "{*rest}",
    "*",
    "/",
    "//",
    "?",
    "#",
    "%",
    "%2F",
    ":",
    "[",
    "]",
    "'",
    "\"",
    "\n",
    "\n  ",
    "\n    - ",
    "- ",
    ": ",
    "&a ",
    "*a",
    "!!str ",
    "~",
    "null",
    "-1",
    "1e999",
    "0",
    "18446744073709551616",
    "https://",
    "http://",
    "[::1]",
    "é",
    "\t",
    "\u{0}",
    "apis",
    "id",
    "path",
    "hostnames",
    "serviceUrl",
    "operations",
    "method",
    "urlTemplate",
    "mock",
    "statusCode",
    "*.",
    "localhost",
    "x.test",
    "10s",
    "ms",
    "1.5",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] = rng.next() as u8;
            }
            _ => {
                let piece = rng.pick(PIECES).as_bytes();
                bytes.splice(at..at, piece.iter().copied());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_documents_never_panic() {
    let seeds = [EXAMPLE, FULL, DEFAULT_CONFIG];
    let paths = [
        "/",
        "",
        "/echo",
        "/echo/",
        "/echo/items/42",
        "/echo/items/",
        "//",
        "/hello/items/x?y",
        "/é",
        "?",
    ];
    let hosts = [
        "",
        "api.example.com:8080",
        "[::1]:80",
        "x.example.com.",
        ":",
        "[",
        "é",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut failed) = (0, 0);
    for round in 0..3000 {
        let seed = seeds[round % seeds.len()];
        let mut text = mutate(&mut rng, seed);
        if round % 7 == 0 {
            text = mutate(&mut rng, &text);
        }
        match try_load(&text) {
            Ok(config) => {
                ok += 1;
                for _ in 0..4 {
                    let _ = config.route(
                        rng.pick(&hosts),
                        rng.pick(&paths),
                        rng.pick(&["GET", "*", "get", ""]),
                    );
                }
            }
            Err(errors) => {
                failed += 1;
                assert!(!errors.0.is_empty());
                assert!(errors.0.iter().all(|e| !e.message.is_empty()), "{errors}");
            }
        }
    }
    // Both outcomes must be exercised, or the loop tests nothing.
    assert!(ok > 100 && failed > 100, "ok={ok} failed={failed}");
}

#[test]
fn random_documents_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let mut text = String::new();
        for _ in 0..rng.below(40) {
            text.push_str(rng.pick(PIECES));
        }
        if let Ok(config) = try_load(&text) {
            let _ = config.route("h", "/a/b", "GET");
        }
    }
}
