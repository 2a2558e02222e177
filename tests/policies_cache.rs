//! The response cache end to end: `cache-lookup` in inbound, `cache-store` in
//! outbound, on the real gateway (one core, so one cache) in front of a backend that
//! counts its calls. A hit must not reach the backend; what may not be cached must.

mod common;

use common::client::{request, Response};
use common::{Backend, Client, Gateway, Reply, ANY_OP};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A backend answering `<target> #<n>` (n counts its calls), with `Content-Length`,
/// except `/v1/chunked` (chunked), `/v1/missing` (404) and `/v1/big/<n>` (n bytes).
fn counting() -> (Backend, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let backend = Backend::start(move |r| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        if r.target == "/v1/chunked" {
            return Reply::Send(
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n#{n:02}\r\n0\r\n\r\n")
                    .into_bytes(),
            );
        }
        if r.target == "/v1/missing" {
            return Reply::status(404, &[], format!("missing #{n}"));
        }
        if let Some(size) = r.target.strip_prefix("/v1/big/") {
            let size = size.split('?').next().unwrap_or("");
            let size: usize = size.parse().unwrap_or(0);
            return Reply::status(
                200,
                &[("Content-Type", "text/plain")],
                vec![b'a' + (n % 26) as u8; size],
            );
        }
        Reply::status(
            200,
            &[("Content-Type", "text/plain")],
            format!("{} #{n}", r.target),
        )
    });
    (backend, calls)
}

fn config(
    backend_url: &str,
    lookup_attrs: &str,
    lookup_children: &str,
    store_attrs: &str,
    gateway: &str,
) -> String {
    format!(
        r#"{gateway}
apis:
  - id: api
    path: api
    serviceUrl: {backend_url}/v1
    policies: |
      <policies>
        <inbound>
          <base />
          <cache-lookup vary-by-developer="false" vary-by-developer-groups="false" {lookup_attrs}>
            {lookup_children}
          </cache-lookup>
        </inbound>
        <outbound>
          <base />
          <set-header name="X-Outbound" exists-action="override"><value>ran</value></set-header>
          <cache-store duration="60" {store_attrs} />
        </outbound>
      </policies>
    operations:
      - {ANY_OP}
"#
    )
}

fn get(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(gw.addr, raw)
}

fn calls(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

#[test]
fn a_hit_is_answered_without_the_backend_and_outbound_still_runs() {
    let (backend, n) = counting();
    let gw = Gateway::start(&config(&backend.url(), "", "", "", ""));
    let first = get(&gw, "/api/items/1", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body_str(), "/v1/items/1 #0");
    assert_eq!(first.header("X-Outbound"), Some("ran"));
    let mut c = Client::connect(gw.addr);
    for _ in 0..3 {
        c.send("GET /api/items/1 HTTP/1.1\r\nHost: api.test\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), "/v1/items/1 #0", "served from the cache");
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
        assert_eq!(r.header("Content-Length"), Some("14"));
        assert!(r.header("Age").is_some(), "{:?}", r.headers);
        assert_eq!(r.header("X-Outbound"), Some("ran"));
    }
    assert_eq!(calls(&n), 1);
    // Another path is another entry.
    assert_eq!(get(&gw, "/api/items/2", &[]).body_str(), "/v1/items/2 #1");
    assert_eq!(calls(&n), 2);
}

#[test]
fn entries_vary_by_the_listed_query_parameters_and_headers_only() {
    let (backend, n) = counting();
    let gw = Gateway::start(&config(
        &backend.url(),
        "",
        "<vary-by-query-parameter>version</vary-by-query-parameter><vary-by-header>Accept</vary-by-header>",
        "",
        "",
    ));
    let body = |target: &str, accept: &str| get(&gw, target, &[("Accept", accept)]).body_str();
    assert_eq!(
        body("/api/a?version=1&x=1", "text/plain"),
        "/v1/a?version=1&x=1 #0"
    );
    // An unlisted parameter does not count, as in APIM.
    assert_eq!(
        body("/api/a?version=1&x=2", "text/plain"),
        "/v1/a?version=1&x=1 #0"
    );
    assert_eq!(body("/api/a?version=2", "text/plain"), "/v1/a?version=2 #1");
    assert_eq!(
        body("/api/a?version=1", "application/json"),
        "/v1/a?version=1 #2"
    );
    assert_eq!(calls(&n), 3);
}

#[test]
fn what_is_not_cached_always_reaches_the_backend() {
    let (backend, n) = counting();
    let gw = Gateway::start(&config(&backend.url(), "", "", "", ""));
    for round in 0..2 {
        // Another method.
        let r = request(
            gw.addr,
            "POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        );
        assert_eq!(r.status, 200);
        // Credentials, without allow-private-response-caching.
        get(&gw, "/api/private", &[("Authorization", "Bearer t")]);
        // Not 200.
        assert_eq!(get(&gw, "/api/missing", &[]).status, 404);
        // No Content-Length: streamed through, not stored.
        let r = get(&gw, "/api/chunked", &[]);
        assert_eq!(r.status, 200);
        assert!(r.chunked);
        assert_eq!(calls(&n), 4 * (round + 1), "round {round}");
    }
}

#[test]
fn entries_expire_after_the_duration() {
    let (backend, n) = counting();
    let gw = Gateway::start(
        &config(&backend.url(), "", "", "", "").replace(r#"duration="60""#, r#"duration="1""#),
    );
    assert_eq!(get(&gw, "/api/t", &[]).body_str(), "/v1/t #0");
    assert_eq!(get(&gw, "/api/t", &[]).body_str(), "/v1/t #0");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&gw, "/api/t", &[]).body_str(), "/v1/t #1");
    assert_eq!(calls(&n), 2);
}

#[test]
fn the_byte_budget_evicts_the_least_recently_used() {
    let (backend, n) = counting();
    // Room for two entries of about 1.3 KB, not three.
    let gw = Gateway::start(&config(
        &backend.url(),
        "",
        "<vary-by-query-parameter>k</vary-by-query-parameter>",
        "",
        "gateway:\n  limits:\n    responseCacheBytesPerCore: 3200",
    ));
    // Each backend call answers 1000 bytes of a letter of its own.
    let call = |k: &str| {
        let r = get(&gw, &format!("/api/big/1000?k={k}"), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 1000);
        r.body[0]
    };
    let a = call("a");
    let b = call("b");
    assert_ne!(a, b);
    assert_eq!(call("a"), a, "a is cached (and now the most recent)");
    assert_eq!(calls(&n), 2);
    call("c"); // evicts b, the least recently used
    assert_eq!(call("a"), a, "a survived");
    assert_eq!(calls(&n), 3);
    assert_ne!(call("b"), b, "b was evicted and fetched again");
    assert_eq!(calls(&n), 4);
}

#[test]
fn downstream_caching_type_sets_cache_control_on_stored_and_cached_responses() {
    let (backend, _n) = counting();
    let gw = Gateway::start(&config(
        &backend.url(),
        r#"downstream-caching-type="private" must-revalidate="false""#,
        "",
        "",
        "",
    ));
    let first = get(&gw, "/api/x", &[]);
    assert_eq!(first.header("Cache-Control"), Some("private, max-age=60"));
    let hit = get(&gw, "/api/x", &[]);
    assert_eq!(hit.body_str(), first.body_str());
    let cc = hit.header("Cache-Control").unwrap_or_default();
    assert!(
        cc == "private, max-age=60" || cc == "private, max-age=59",
        "{cc}"
    );
}

#[test]
fn cache_policies_in_the_wrong_place_do_not_compile() {
    let dir = common::gateway::TempDir::new();
    for (doc, needle) in [
        (
            "<policies>\n<outbound>\n<cache-lookup vary-by-developer=\"false\" vary-by-developer-groups=\"false\" />\n</outbound>\n</policies>",
            "<outbound> <cache-lookup> line 3: not allowed in outbound (only in inbound)",
        ),
        (
            "<policies>\n<inbound>\n<cache-lookup vary-by-developer=\"false\" vary-by-developer-groups=\"false\" caching-type=\"external\" />\n</inbound>\n</policies>",
            "<cache-lookup> line 3: caching-type=\"external\"",
        ),
        (
            "<policies>\n<outbound>\n<cache-store duration=\"soon\" />\n</outbound>\n</policies>",
            "<cache-store> line 3: duration must be whole seconds",
        ),
    ] {
        let policy = dir.write("p.xml", doc);
        let cfg = dir.write(
            "portico.yaml",
            &format!(
                "apis:\n  - id: a\n    path: a\n    serviceUrl: http://127.0.0.1:9\n    policies: {}\n    operations:\n      - {ANY_OP}\n",
                policy.display()
            ),
        );
        let (status, _out, err) = common::gateway::run_cli(&["validate".as_ref(), cfg.as_os_str()]);
        assert!(!status.success(), "{doc}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

/// tests/policies/api-catalog.xml under the global document of tests/policies.
#[test]
fn a_catalog_api_document_caches_retries_follows_and_routes() {
    let (main, main_calls) = {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b = Backend::start(move |r| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                return Reply::status(503, &[], "warming up");
            }
            Reply::status(
                200,
                &[("Content-Type", "application/json")],
                format!("{{\"from\":\"main\",\"target\":\"{}\"}}", r.target),
            )
        });
        (b, calls)
    };
    let eu = Backend::start(|r| {
        if r.target == "/eu/items" {
            return Reply::status(301, &[("Location", "/eu/items/")], "");
        }
        Reply::status(
            200,
            &[("Content-Type", "application/json")],
            format!("{{\"from\":\"eu\",\"target\":\"{}\"}}", r.target),
        )
    });
    let dir = env!("CARGO_MANIFEST_DIR");
    let yaml = format!(
        r#"
gateway:
  id: edge-1
policies: {dir}/tests/policies/global.xml
backends:
  - {{ id: catalog-eu, url: "{eu}/eu" }}
apis:
  - id: catalog
    path: catalog
    serviceUrl: {main}/v1
    policies: {dir}/tests/policies/api-catalog.xml
    operations:
      - {{ id: items, method: GET, urlTemplate: "/items/*" }}
      - {{ id: list, method: GET, urlTemplate: "/items" }}
"#,
        eu = eu.url(),
        main = main.url(),
    );
    let gw = Gateway::start(&yaml);

    // The first backend answer is a 503: retried at once, the caller sees the 200.
    let r = get(
        &gw,
        "/catalog/items/1?version=2",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.json()["target"], "/v1/items/1?version=2");
    assert_eq!(r.header("X-Served-By"), Some("edge-1"), "global outbound");
    assert_eq!(
        r.header("Cache-Control"),
        Some("public, max-age=30, must-revalidate")
    );
    assert_eq!(main_calls.load(Ordering::SeqCst), 2);
    // The same call again: from the cache.
    let r = get(
        &gw,
        "/catalog/items/1?version=2",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.json()["target"], "/v1/items/1?version=2");
    assert!(r.header("Age").is_some());
    assert_eq!(main_calls.load(Ordering::SeqCst), 2);
    // An EU caller: another cache entry, the EU backend, its redirect followed.
    let r = get(
        &gw,
        "/catalog/items",
        &[("Accept", "application/json"), ("X-Region", "eu")],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.json()["from"], "eu");
    assert_eq!(r.json()["target"], "/eu/items/");
    assert_eq!(eu.wait_requests(2, Duration::from_secs(10)).len(), 2);
    assert_eq!(main_calls.load(Ordering::SeqCst), 2);
}
