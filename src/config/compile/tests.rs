//! Every compile error with its exact path and message, plus the compiled values
//! that the data plane relies on (defaults, backends, deduplication).

use std::time::Duration;

use crate::config::testutil::{error_paths, errors, load, try_load};

/// A one-API document with `extra` inserted into the API and `ops` as operations.
fn api(extra: &str, ops: &str) -> String {
    format!(
        "apis:\n  - id: a\n    serviceUrl: http://127.0.0.1:9000\n{extra}    operations:\n{ops}"
    )
}

const OP: &str = "      - { id: op, method: GET, urlTemplate: / }\n";

fn one(text: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
    errs.into_iter().next().unwrap_or_default()
}

#[test]
fn gateway_errors() {
    assert_eq!(
        one("gateway: { id: 'bad id' }"),
        "gateway.id: invalid character ' ' in id \"bad id\" (allowed: A-Z a-z 0-9 . _ -)"
    );
    assert_eq!(one("gateway: { id: '' }"), "gateway.id: must not be empty");
    for (field, bad) in [
        ("requestLine", "0"),
        ("headerBytes", "99999999999"),
        ("headerCount", "0"),
        ("connectionsPerCore", "0"),
        ("responseCacheBytesPerCore", "99999999999999"),
    ] {
        let e = one(&format!("gateway: {{ limits: {{ {field}: {bad} }} }}"));
        assert!(
            e.starts_with(&format!("gateway.limits.{field}: {bad} is out of range")),
            "{e}"
        );
    }
    for field in ["requestHead", "keepAlive", "bodyIdle", "upstreamConnect"] {
        assert_eq!(
            one(&format!("gateway: {{ timeouts: {{ {field}: 0s }} }}")),
            format!("gateway.timeouts.{field}: must be greater than zero")
        );
        let e = one(&format!("gateway: {{ timeouts: {{ {field}: 10x }} }}"));
        assert!(
            e.starts_with(&format!(
                "gateway.timeouts.{field}: invalid duration \"10x\""
            )),
            "{e}"
        );
    }
    let e = one("gateway: { timeouts: { drain: -1 } }");
    assert!(
        e.starts_with("gateway.timeouts.drain: invalid duration -1"),
        "{e}"
    );
    assert_eq!(
        one("gateway: { upstream: { idleTimeout: 0 } }"),
        "gateway.upstream.idleTimeout: must be greater than zero"
    );
    let e = one("gateway: { upstream: { maxIdlePerBackend: 2000000 } }");
    assert!(
        e.starts_with("gateway.upstream.maxIdlePerBackend: 2000000 is out of range"),
        "{e}"
    );
    // Zero idle connections (no reuse) and a zero drain are valid.
    let config = load("gateway: { upstream: { maxIdlePerBackend: 0 }, timeouts: { drain: 0 } }");
    assert_eq!(config.settings.upstream.max_idle_per_backend, 0);
    assert_eq!(config.settings.timeouts.drain, Duration::ZERO);
    // A cache of zero bytes (none) is valid; the default is 32 MiB.
    let config = load("gateway: { limits: { responseCacheBytesPerCore: 0 } }");
    assert_eq!(config.settings.response_cache_bytes_per_core, 0);
    assert_eq!(
        load("{}").settings.response_cache_bytes_per_core,
        32 * 1024 * 1024
    );
}

#[test]
fn api_field_errors() {
    assert_eq!(
        one(&api("", OP).replace("id: a\n", "id: 'a/b'\n")),
        "apis[0].id: invalid character '/' in id \"a/b\" (allowed: A-Z a-z 0-9 . _ -)"
    );
    assert_eq!(
        one(&api("    name: ' '\n", OP)),
        "apis[0].name: must not be empty"
    );
    assert_eq!(
        one(&api("    path: 'a/{b}'\n", OP)),
        "apis[0].path: '{' is not allowed in an API path (templates belong in operations)"
    );
    assert_eq!(
        one(&api("    path: 'a?x=1'\n", OP)),
        "apis[0].path: '?' is not allowed in an API path (a query is not part of a path)"
    );
    assert_eq!(
        one(&api("    path: 'a#x'\n", OP)),
        "apis[0].path: '#' is not allowed in an API path (a fragment is not part of a path)"
    );
    assert_eq!(
        one(&api("    path: 'a//b'\n", OP)),
        "apis[0].path: empty segment in API path \"a//b\""
    );
    assert_eq!(
        one(&api("    path: 'a b'\n", OP)),
        "apis[0].path: invalid character ' ' in segment \"a b\""
    );
    assert_eq!(
        one(&api("    hostnames: [ok.example.com, 'bad host']\n", OP)),
        "apis[0].hostnames[1]: invalid host name \"bad host\": invalid character ' ' in host name \"bad host\""
    );
    assert_eq!(
        one(&api("    hostnames: [a.example.com, A.example.com]\n", OP)),
        "apis[0].hostnames[1]: duplicate hostname \"A.example.com\""
    );
    let e = one(&api("    hostnames: ['a.example.com:8080']\n", OP));
    assert!(
        e.starts_with("apis[0].hostnames[0]: invalid host name \"a.example.com:8080\": no port"),
        "{e}"
    );
    let e = one(&api("    hostnames: ['a.*.com']\n", OP));
    assert!(
        e.starts_with("apis[0].hostnames[0]: invalid host name \"a.*.com\": '*'"),
        "{e}"
    );
    assert_eq!(
        one(&api("    timeout: 0\n", OP)),
        "apis[0].timeout: must be greater than zero"
    );
    let e = one(&api("    timeout: soon\n", OP));
    assert!(
        e.starts_with("apis[0].timeout: invalid duration \"soon\""),
        "{e}"
    );
}

#[test]
fn service_url_errors() {
    let with =
        |url: &str| format!("apis:\n  - id: a\n    serviceUrl: '{url}'\n    operations:\n{OP}");
    assert_eq!(
        one(&with("https://127.0.0.1")),
        "apis[0].serviceUrl: https backends are not supported yet"
    );
    assert_eq!(
        one(&with("ftp://127.0.0.1")),
        "apis[0].serviceUrl: unsupported scheme \"ftp\" (only http is supported)"
    );
    assert_eq!(
        one(&with("127.0.0.1:9000")),
        "apis[0].serviceUrl: invalid URL \"127.0.0.1:9000\": expected http://host[:port][/path]"
    );
    assert_eq!(
        one(&with("http://127.0.0.1:99999")),
        "apis[0].serviceUrl: invalid URL \"http://127.0.0.1:99999\": port \"99999\" is not in 1..=65535"
    );
    assert_eq!(
        one(&with("http://nowhere.invalid")),
        "apis[0].serviceUrl: host \"nowhere.invalid\" does not resolve"
    );
    // An unusable serviceUrl does not add "mock required" errors on top.
    assert_eq!(error_paths(&with("http://")), ["apis[0].serviceUrl"]);
}

#[test]
fn operation_errors() {
    let op = |line: &str| api("", &format!("      - {line}\n"));
    assert_eq!(
        one(&op("{ id: 'x y', method: GET, urlTemplate: / }")),
        "apis[0].operations[0].id: invalid character ' ' in id \"x y\" (allowed: A-Z a-z 0-9 . _ -)"
    );
    assert_eq!(
        one(&op("{ id: x, method: 'G(T', urlTemplate: / }")),
        "apis[0].operations[0].method: invalid method \"G(T\": must be an HTTP token (RFC 9110) or \"*\""
    );
    assert!(one(&op("{ id: x, method: get, urlTemplate: / }"))
        .starts_with("apis[0].operations[0].method: methods are case-sensitive"));
    for (template, message) in [
        ("/items/{id", "unbalanced '{'"),
        ("/items/id}", "unbalanced '}'"),
        ("/{a}{b}", "a parameter must be a whole segment: \"{a}{b}\""),
        ("/x{id}", "a parameter must be a whole segment: \"x{id}\""),
        (
            "/items?id={id}",
            "query parameters in URL templates are not supported yet",
        ),
        ("/*/x", "'*' is only allowed as the last segment"),
        ("/{}", "empty parameter name"),
        ("/{id}/{id}", "duplicate parameter name \"id\""),
        ("items", "must start with '/': \"items\""),
    ] {
        assert_eq!(
            one(&op(&format!(
                "{{ id: x, method: GET, urlTemplate: '{template}' }}"
            ))),
            format!("apis[0].operations[0].urlTemplate: {message}")
        );
    }
    let mock = |m: &str| {
        op(&format!(
            "{{ id: x, method: GET, urlTemplate: /, mock: {m} }}"
        ))
    };
    assert_eq!(
        one(&mock("{ statusCode: 100 }")),
        "apis[0].operations[0].mock.statusCode: 100 is not a final status (200..=599)"
    );
    assert_eq!(
        one(&mock("{ statusCode: 600 }")),
        "apis[0].operations[0].mock.statusCode: 600 is not a final status (200..=599)"
    );
    assert_eq!(
        one(&mock("{ statusCode: 204, body: x }")),
        "apis[0].operations[0].mock.body: a 204 response cannot have a body"
    );
    assert!(one(&mock("{ contentType: \"text/plain\\r\\nX-Evil: 1\" }"))
        .starts_with("apis[0].operations[0].mock.contentType: invalid media type"));
    assert!(one(&mock("{ contentType: json }"))
        .starts_with("apis[0].operations[0].mock.contentType: invalid media type"));
}

#[test]
fn duplicate_operations() {
    let ops = "      - { id: a1, method: GET, urlTemplate: '/items/{id}' }\n\
               \x20     - { id: a1, method: POST, urlTemplate: '/items' }\n\
               \x20     - { id: a3, method: GET, urlTemplate: '/items/{key}/' }\n\
               \x20     - { id: a4, method: '*', urlTemplate: '/items/{id}' }\n\
               \x20     - { id: a5, method: '*', urlTemplate: '/items/{*rest}' }\n\
               \x20     - { id: a6, method: '*', urlTemplate: '/items/*' }\n";
    assert_eq!(
        errors(&api("", ops)),
        [
            "apis[0].operations[1].id: duplicate operation id \"a1\" (first at apis[0].operations[0])",
            "apis[0].operations[2].urlTemplate: same method and URL template as apis[0].operations[0] (\"a1\")",
            "apis[0].operations[5].urlTemplate: same method and URL template as apis[0].operations[4] (\"a5\")",
        ]
    );
    // Same id in two APIs is fine: operation ids are scoped to their API.
    load("apis:\n  - { id: a, path: a, operations: [ { id: x, method: GET, urlTemplate: /, mock: {} } ] }\n  - { id: b, path: b, operations: [ { id: x, method: GET, urlTemplate: /, mock: {} } ] }\n");
}

#[test]
fn mock_required_without_service_url() {
    let text = "apis:\n  - id: m\n    operations:\n      - { id: a, method: GET, urlTemplate: /a, mock: { body: hi } }\n      - { id: b, method: GET, urlTemplate: /b }\n";
    assert_eq!(
        errors(text),
        ["apis[0].operations[1].mock: required: the API has no serviceUrl to forward to"]
    );
    // All mocked: no backend needed, none created.
    let config = load(&text.replace("urlTemplate: /b }", "urlTemplate: /b, mock: {} }"));
    assert_eq!(config.apis[0].backend, None);
    assert!(config.backends().is_empty());
    let mock = config.apis[0].operations[1].mock.as_ref().expect("mock");
    assert_eq!(
        (mock.status, mock.content_type.as_deref(), mock.body.len()),
        (200, None, 0)
    );
}

#[test]
fn duplicate_api_ids_and_paths() {
    let text = "apis:\n  - { id: a, path: x, serviceUrl: 'http://127.0.0.1:1' }\n  - { id: a, path: y, serviceUrl: 'http://127.0.0.1:1' }\n  - { id: c, path: /x/, serviceUrl: 'http://127.0.0.1:1' }\n";
    assert_eq!(
        errors(text),
        [
            "apis[1].id: duplicate API id \"a\" (first at apis[0])",
            "apis[2].path: path \"/x\" is already used by API \"a\" (apis[0]); give one of them hostnames",
        ]
    );
}

#[test]
fn same_path_needs_disjoint_hostnames() {
    let doc = |h1: &str, h2: &str| {
        format!("apis:\n  - {{ id: a, path: x, serviceUrl: 'http://127.0.0.1:1'{h1} }}\n  - {{ id: b, path: x, serviceUrl: 'http://127.0.0.1:1'{h2} }}\n")
    };
    // Disjoint host sets, or one API with hostnames and one without: fine.
    load(&doc(
        ", hostnames: [a.com]",
        ", hostnames: [b.com, '*.b.com']",
    ));
    load(&doc(", hostnames: [a.com]", ""));
    load(&doc(", hostnames: ['*.a.com']", ", hostnames: [a.com]"));
    assert_eq!(
        errors(&doc(", hostnames: ['*.example.com']", ", hostnames: [b.com, api.example.com]")),
        ["apis[1].hostnames[1]: \"api.example.com\" overlaps \"*.example.com\" of API \"a\" (apis[0]) on the same path \"/x\""]
    );
    assert_eq!(
        error_paths(&doc(
            ", hostnames: ['*.example.com']",
            ", hostnames: ['*.eu.example.com']"
        )),
        ["apis[1].hostnames[0]"]
    );
    assert_eq!(
        error_paths(&doc(", hostnames: [a.com]", ", hostnames: [A.COM.]")),
        ["apis[1].hostnames[0]"]
    );
}

#[test]
fn backends_are_deduplicated_and_indexed() {
    let text = "apis:\n\
        \x20 - { id: a, path: a, serviceUrl: 'http://127.0.0.1:9000/v1' }\n\
        \x20 - { id: b, path: b, serviceUrl: 'http://127.0.0.1:9000/v1/' }\n\
        \x20 - { id: c, path: c, serviceUrl: 'http://localhost:9000/v1' }\n\
        \x20 - { id: d, path: d, serviceUrl: 'http://[::1]:80' }\n\
        \x20 - { id: e, path: e, serviceUrl: 'http://svc.test' }\n";
    let config = load(text);
    let idx: Vec<_> = config.apis.iter().map(|a| a.backend).collect();
    assert_eq!(idx, [Some(0), Some(0), Some(1), Some(2), Some(3)]);
    let b = config.backends();
    assert_eq!(b.len(), 4);
    assert!(b.iter().enumerate().all(|(i, b)| b.index == i));
    assert_eq!(b[1].authority, "localhost:9000");
    assert_eq!(b[1].addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(b[2].authority, "[::1]");
    assert_eq!(b[2].addr, "[::1]:80".parse().unwrap());
    assert_eq!(b[2].base_path, "");
    assert_eq!(b[3].authority, "svc.test");
    assert_eq!(b[3].addr, "127.0.0.1:80".parse().unwrap());
    assert_eq!(config.backend_of(&config.apis[4]).map(|b| b.index), Some(3));
}

#[test]
fn named_backends_are_checked_and_share_the_backend_table() {
    let doc = |backends: &str, policy: &str| {
        format!(
            "backends:\n{backends}apis:\n  - id: a\n    path: a\n    serviceUrl: 'http://127.0.0.1:9000/v1'\n    policies: '<policies><inbound><set-backend-service backend-id=\"{policy}\" /></inbound></policies>'\n    operations:\n      - {{ id: op, method: GET, urlTemplate: / }}\n"
        )
    };
    let good = "  - { id: eu, url: 'http://127.0.0.1:9000/v1', description: same as the API }\n  - { id: us, url: 'http://svc.test:8080/' }\n";
    let config = load(&doc(good, "us"));
    assert_eq!(config.backends().len(), 2, "eu is the API's own backend");
    assert_eq!(config.backends()[1].authority, "svc.test:8080");
    assert_eq!(
        error_paths(&doc(good, "ap")),
        ["apis[0].policies"],
        "an unknown backend-id is a compile error"
    );
    let e = one(&doc(good, "ap"));
    assert!(e.contains("<set-backend-service>"), "{e}");
    assert!(
        e.contains("backend-id \"ap\" is not one of the config's backends (eu, us)"),
        "{e}"
    );
    let bad = "  - { id: eu, url: 'http://127.0.0.1:1' }\n  - { id: eu, url: 'http://127.0.0.1:2' }\n  - { id: 'x y', url: 'http://127.0.0.1:3' }\n  - { id: tls, url: 'https://127.0.0.1' }\n  - { id: gone, url: 'http://nowhere.invalid' }\n";
    let errs = errors(&doc(bad, "eu"));
    assert_eq!(
        errs.iter()
            .map(|e| e.split(':').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        [
            "backends[1].id",
            "backends[2].id",
            "backends[3].url",
            "backends[4].url"
        ],
        "{errs:#?}"
    );
    assert!(errs[0].contains("duplicate backend id \"eu\" (first at backends[0])"));
    assert!(errs[2].contains("https backends are not supported yet"));
    assert!(
        errors("backends:\n  - { id: a, url: 'http://127.0.0.1', port: 1 }\n")[0]
            .contains("unknown field `port`")
    );
}

#[test]
fn compile_with_system_resolver_resolves_localhost() {
    let config = crate::config::load_str(
        "apis:\n  - { id: a, serviceUrl: 'http://localhost:9000/v1' }\n",
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.backends()[0].addr.ip().is_loopback());
    assert_eq!(config.backends()[0].authority, "localhost:9000");
}

#[test]
fn errors_never_produce_a_partial_config() {
    assert!(try_load(&api("    timeout: 0\n", OP)).is_err());
}
