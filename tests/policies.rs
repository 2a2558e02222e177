//! Policies end to end: complete documents at global, product, API and operation scope
//! (tests/policies/*.xml, written as APIM users write them, `<base/>` included), run by
//! the real gateway against a recording backend. Subscriptions and products decide
//! which pipeline runs and who gets in.

mod common;

use common::client::request;
use common::{Backend, Gateway};
use std::time::Duration;

const GOLD_KEY: &str = "gold-key-0123456789";
const ALL_KEY: &str = "all-apis-key-0123456789";
const SUSPENDED_KEY: &str = "suspended-key-0123456789";

fn policy(name: &str) -> String {
    format!("{}/tests/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn config(backend_url: &str) -> String {
    format!(
        r#"
gateway:
  id: edge-7
policies: {global}
products:
  - id: gold
    apis: [orders]
    policies: {gold}
subscriptions:
  - id: s-gold
    name: Gold Client
    scope: product:gold
    primaryKey: {GOLD_KEY}
  - id: s-all
    name: Ops
    scope: all
    primaryKeySha256: {all_digest}
  - id: s-off
    scope: api:orders
    primaryKey: {SUSPENDED_KEY}
    state: suspended
apis:
  - id: orders
    path: orders
    serviceUrl: {backend_url}/v1
    subscriptionRequired: true
    policies: {api}
    operations:
      - id: get-order
        method: GET
        urlTemplate: /{{id}}
        policies: {op}
      - {{ id: list, method: GET, urlTemplate: / }}
"#,
        global = policy("global.xml"),
        gold = policy("product-gold.xml"),
        api = policy("api-orders.xml"),
        op = policy("operation-get-order.xml"),
        all_digest = sha256_hex(ALL_KEY),
    )
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn get(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> common::client::Response {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(gw.addr, raw)
}

#[test]
fn missing_invalid_and_suspended_keys_are_refused_with_apim_errors() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));

    let r = get(&gw, "/orders/42", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["statusCode"], 401);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("missing subscription key"));

    let r = get(
        &gw,
        "/orders/42",
        &[("Ocp-Apim-Subscription-Key", "nope-nope-nope")],
    );
    assert_eq!(r.status, 401);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("invalid subscription key"));

    let r = get(
        &gw,
        "/orders/42",
        &[("Ocp-Apim-Subscription-Key", SUSPENDED_KEY)],
    );
    assert_eq!(r.status, 403);
    assert!(
        backend.requests().is_empty(),
        "nothing refused reaches the backend"
    );
}

#[test]
fn all_four_scopes_apply_in_base_order_for_a_product_subscription() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let r = get(
        &gw,
        "/orders/42?x=1",
        &[("Ocp-Apim-Subscription-Key", GOLD_KEY)],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = backend.wait_requests(1, Duration::from_secs(5));
    let req = &seen[0];
    // Operation scope rewrote the path; API scope added the query parameter.
    assert_eq!(
        req.target,
        "/v1/orders/42/details?x=1&api-version=2024-01-01"
    );
    // Global, product and API inbound policies all ran.
    assert_eq!(req.header("X-Gateway"), Some("portico"));
    assert_eq!(req.header("X-Product"), Some("gold"));
    assert_eq!(req.header("X-Caller"), Some("Gold Client"));
    // The key never reaches the backend.
    assert_eq!(req.header("Ocp-Apim-Subscription-Key"), None);
    // Outbound: global added X-Served-By; the API removed Server.
    assert_eq!(r.header("X-Served-By"), Some("edge-7"));
    assert_eq!(
        r.body_str(),
        "GET /v1/orders/42/details?x=1&api-version=2024-01-01"
    );
}

#[test]
fn product_policies_apply_only_to_that_products_subscriptions() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let r = get(&gw, &format!("/orders/7?subscription-key={ALL_KEY}"), &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let req = &backend.wait_requests(1, Duration::from_secs(5))[0];
    assert_eq!(req.header("X-Product"), None);
    assert_eq!(req.header("X-Caller"), Some("Ops"));
    assert!(
        !req.target.contains("subscription-key"),
        "query key removed: {}",
        req.target
    );
}

#[test]
fn return_response_answers_at_the_gateway() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let r = get(
        &gw,
        "/orders/99",
        &[("Ocp-Apim-Subscription-Key", GOLD_KEY), ("X-Mode", "mock")],
    );
    assert_eq!(r.status, 418);
    assert_eq!(r.reason, "Teapot");
    assert_eq!(r.header("X-Mocked"), Some("yes"));
    assert_eq!(r.body_str(), "mocked 99");
    assert!(backend.requests().is_empty());
}

#[test]
fn backend_failure_runs_on_error_with_last_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::start(&config(&format!("http://127.0.0.1:{port}")));
    let r = get(&gw, "/orders/1", &[("Ocp-Apim-Subscription-Key", GOLD_KEY)]);
    assert_eq!(r.status, 502);
    assert_eq!(r.header("X-Error-Source"), Some("forward-request"));
    assert_eq!(r.json()["statusCode"], 502);
}

#[test]
fn a_bad_policy_is_a_compile_error_naming_scope_and_line() {
    let dir = common::gateway::TempDir::new();
    let bad = dir.write(
        "bad.xml",
        "<policies>\n  <inbound>\n    <base />\n    <set-haeder name=\"x\"><value>1</value></set-haeder>\n  </inbound>\n</policies>",
    );
    let cfg = dir.write(
        "portico.yaml",
        &format!(
            "apis:\n  - id: a\n    path: a\n    serviceUrl: http://127.0.0.1:9\n    policies: {}\n    operations:\n      - {{ id: o, method: GET, urlTemplate: / }}\n",
            bad.display()
        ),
    );
    let (status, _out, err) = common::gateway::run_cli(&["validate".as_ref(), cfg.as_os_str()]);
    assert!(!status.success());
    assert!(err.contains("apis[0].policies"), "{err}");
    assert!(err.contains("set-haeder"), "{err}");
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn an_inbound_expression_reading_the_body_gets_it_and_the_backend_still_does() {
    let backend = Backend::echo();
    let yaml = format!(
        r#"
apis:
  - id: up
    path: up
    serviceUrl: {}
    policies: |
      <policies><inbound><base/>
        <set-header name="X-Body-Length" exists-action="override">
          <value>@(context.Request.Body.As<string>(preserveContent: true).Length.ToString())</value>
        </set-header>
      </inbound></policies>
    operations:
      - {{ id: post, method: POST, urlTemplate: / }}
"#,
        backend.url()
    );
    let gw = Gateway::start(&yaml);
    // Chunked on the way in: the gateway buffers it for the policy and forwards it whole.
    let r = request(
        gw.addr,
        "POST /up/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let req = &backend.wait_requests(1, Duration::from_secs(5))[0];
    assert_eq!(req.header("X-Body-Length"), Some("11"));
    assert_eq!(req.body_str(), "hello world");
    assert_eq!(req.header("Content-Length"), Some("11"));
}
