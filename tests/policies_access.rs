//! Access, routing and transformation policies end to end, each on the real gateway in
//! front of a recording backend: `ip-filter`, `cors`, `check-header`,
//! `set-backend-service`, `set-method`, `set-query-parameter`, `set-body`,
//! `find-and-replace`, `json-to-xml`, `mock-response`, `choose`, `set-variable`,
//! `trace`, and `on-error` reading `context.LastError`.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::client::{request, Response};
use common::{Backend, Gateway, Reply, ANY_OP};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn policy(name: &str) -> String {
    format!("{}/tests/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One API `api` on `/api` forwarding everything to `{backend_url}/v1`, with `policies`
/// (an inline document) at API scope.
fn one_api(backend_url: &str, policies: &str) -> String {
    format!(
        "apis:\n  - id: api\n    path: api\n    serviceUrl: {backend_url}/v1\n    policies: |\n{}\n    operations:\n      - {ANY_OP}\n",
        indent(policies, 6)
    )
}

fn inbound(policies: &str) -> String {
    format!("<policies>\n<inbound>\n<base />\n{policies}\n</inbound>\n</policies>")
}

fn outbound(policies: &str) -> String {
    format!("<policies>\n<outbound>\n<base />\n{policies}\n</outbound>\n</policies>")
}

fn send(
    gw: &Gateway,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        raw.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    raw.push_str("\r\n");
    if let Some(b) = body {
        raw.push_str(b);
    }
    let mut c = common::Client::connect(gw.addr);
    c.send(raw);
    c.read_response_for(method)
}

fn get(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(gw.addr, raw)
}

/// The query of a request target as sorted (name, value) pairs.
fn query_pairs(target: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------
// ip-filter

#[test]
fn ip_filter_forbidding_the_caller_answers_403() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<ip-filter action="forbid">
    <address>127.0.0.1</address>
    <address-range from="10.0.0.0" to="10.255.255.255" />
</ip-filter>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(r.json()["statusCode"], 403);
    assert!(
        backend.requests().is_empty(),
        "a filtered caller never reaches the backend"
    );
}

#[test]
fn ip_filter_allowing_a_range_that_holds_the_caller_lets_it_through() {
    let backend = Backend::echo();
    // IPv4 and IPv6 entries side by side; the caller (127.0.0.1) is in the v4 range.
    let pol = inbound(
        r#"<ip-filter action="allow">
    <address-range from="2001:db8::" to="2001:db8::ffff" />
    <address>::1</address>
    <address-range from="127.0.0.0" to="127.255.255.255" />
    <address>fe80::1:2:3:4</address>
</ip-filter>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v1/x");
}

#[test]
fn ip_filter_allow_list_without_the_caller_answers_403() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<ip-filter action="allow">
    <address-range from="10.0.0.0" to="10.255.255.255" />
    <address-range from="2001:db8::" to="2001:db8::ffff" />
    <address>::1</address>
</ip-filter>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(backend.requests().is_empty());
}

// ---------------------------------------------------------------------------------
// cors

fn cors_gateway(backend: &Backend) -> Gateway {
    let yaml = format!(
        "apis:\n  - id: api\n    path: api\n    serviceUrl: {}/v1\n    policies: {}\n    operations:\n      - {ANY_OP}\n",
        backend.url(),
        policy("cors-api.xml")
    );
    Gateway::start(&yaml)
}

fn header_lists(r: &Response, name: &str, item: &str) -> bool {
    r.headers_named(name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(item))
}

/// A CORS preflight: OPTIONS with `Origin`, `Access-Control-Request-Method` and,
/// when given, `Access-Control-Request-Headers`.
fn preflight(
    gw: &Gateway,
    path: &str,
    origin: &str,
    method: &str,
    request_headers: Option<&str>,
) -> Response {
    let mut fields = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if let Some(h) = request_headers {
        fields.push(("Access-Control-Request-Headers", h));
    }
    send(gw, "OPTIONS", path, &fields, None)
}

#[test]
fn cors_preflight_is_answered_at_the_gateway() {
    let backend = Backend::echo();
    let gw = cors_gateway(&backend);
    let r = preflight(
        &gw,
        "/api/items/7",
        "https://app.example.com",
        "PUT",
        Some("content-type, x-request-id"),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert!(
        header_lists(&r, "Access-Control-Allow-Methods", "PUT"),
        "{:?}",
        r.headers
    );
    assert!(
        header_lists(&r, "Access-Control-Allow-Headers", "content-type"),
        "{:?}",
        r.headers
    );
    assert!(
        header_lists(&r, "Access-Control-Allow-Headers", "x-request-id"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(r.header("Access-Control-Max-Age"), Some("300"));
    assert!(r.body.is_empty());
    assert!(
        backend.requests().is_empty(),
        "the preflight never reaches the backend"
    );
}

/// An API as APIM users write them: GET and PUT operations only (no OPTIONS), a
/// subscription required, and a policy before `cors` that a preflight would fail.
fn cors_gateway_without_options(backend: &Backend) -> Gateway {
    let yaml = format!(
        r#"
subscriptions:
  - {{ id: s-a, scope: api:api, primaryKey: key-a-0123456789 }}
apis:
  - id: api
    path: api
    serviceUrl: {}/v1
    subscriptionRequired: true
    policies: |
      <policies>
        <inbound>
          <base />
          <check-header name="X-Client" failed-check-httpcode="403" failed-check-error-message="no client" ignore-case="true" />
          <cors allow-credentials="true">
            <allowed-origins><origin>https://app.example.com</origin></allowed-origins>
            <allowed-methods><method>GET</method><method>PUT</method></allowed-methods>
            <allowed-headers><header>Content-Type</header></allowed-headers>
          </cors>
        </inbound>
      </policies>
    operations:
      - {{ id: get-item, method: GET, urlTemplate: "/items/{{id}}" }}
      - {{ id: put-item, method: PUT, urlTemplate: "/items/{{id}}" }}
"#,
        backend.url()
    );
    Gateway::start(&yaml)
}

#[test]
fn cors_preflight_is_matched_by_the_requested_method_and_runs_only_cors() {
    let backend = Backend::echo();
    let gw = cors_gateway_without_options(&backend);
    let ask = |method: &str, path: &str| {
        preflight(
            &gw,
            path,
            "https://app.example.com",
            method,
            Some("content-type"),
        )
    };
    // No OPTIONS operation, no key, no X-Client: the cors policy alone answers.
    for method in ["PUT", "GET"] {
        let r = ask(method, "/api/items/7");
        assert_eq!(r.status, 200, "{method}: {}", r.body_str());
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some("https://app.example.com")
        );
        assert!(header_lists(&r, "Access-Control-Allow-Methods", method));
        assert!(header_lists(
            &r,
            "Access-Control-Allow-Headers",
            "content-type"
        ));
        assert!(r.body.is_empty());
    }
    // A method no operation takes, or a path none matches: still 404.
    let r = ask("DELETE", "/api/items/7");
    assert_eq!(r.status, 404, "{}", r.body_str());
    let r = ask("GET", "/api/other");
    assert_eq!(r.status, 404, "{}", r.body_str());
    // An OPTIONS request that is not a preflight is not matched by anything else.
    let r = send(
        &gw,
        "OPTIONS",
        "/api/items/7",
        &[("Origin", "https://app.example.com")],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body_str());
    // The actual request still needs its key and passes every policy.
    let r = get(
        &gw,
        "/api/items/7",
        &[("Origin", "https://app.example.com")],
    );
    assert_eq!(r.status, 401, "{}", r.body_str());
    let r = get(
        &gw,
        "/api/items/7",
        &[
            ("Origin", "https://app.example.com"),
            ("Ocp-Apim-Subscription-Key", "key-a-0123456789"),
        ],
    );
    assert_eq!(r.status, 403, "check-header runs: {}", r.body_str());
    let r = get(
        &gw,
        "/api/items/7",
        &[
            ("Origin", "https://app.example.com"),
            ("Ocp-Apim-Subscription-Key", "key-a-0123456789"),
            ("X-Client", "spa"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        backend.wait_requests(1, WAIT).len(),
        1,
        "only the actual request reached the backend"
    );
}

#[test]
fn cors_preflight_from_a_disallowed_origin_is_terminated_without_cors_headers() {
    let backend = Backend::echo();
    let gw = cors_gateway_without_options(&backend);
    let r = preflight(&gw, "/api/items/7", "https://evil.example.com", "PUT", None);
    // terminate-unmatched-request defaults to true: an empty 200, no CORS headers.
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    assert!(r.body.is_empty());
    assert!(backend.requests().is_empty());
}

#[test]
fn cors_actual_request_from_an_allowed_origin_gets_allow_origin() {
    let backend = Backend::echo();
    let gw = cors_gateway(&backend);
    let r = get(
        &gw,
        "/api/items/7",
        &[("Origin", "https://app.example.com")],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v1/items/7", "the backend's own answer");
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    assert!(header_lists(&r, "Access-Control-Expose-Headers", "X-Conn"));
    assert!(
        header_lists(&r, "Vary", "Origin"),
        "the answer depends on Origin: {:?}",
        r.headers
    );
    assert_eq!(backend.wait_requests(1, WAIT).len(), 1);
}

#[test]
fn cors_disallowed_origin_gets_no_cors_headers() {
    let backend = Backend::echo();
    let gw = cors_gateway(&backend);
    for r in [
        get(
            &gw,
            "/api/items/7",
            &[("Origin", "https://evil.example.com")],
        ),
        preflight(&gw, "/api/items/7", "https://evil.example.com", "PUT", None),
        // Allowed origin, but a method or a header the policy does not allow.
        preflight(
            &gw,
            "/api/items/7",
            "https://app.example.com",
            "DELETE",
            None,
        ),
        preflight(
            &gw,
            "/api/items/7",
            "https://app.example.com",
            "GET",
            Some("x-secret"),
        ),
    ] {
        for h in [
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
            "Access-Control-Allow-Credentials",
        ] {
            assert_eq!(
                r.header(h),
                None,
                "{h} on a refused request: {:?}",
                r.headers
            );
        }
    }
    // Same-origin calls (no Origin) are not CORS: they pass untouched.
    let r = get(&gw, "/api/items/8", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "GET /v1/items/8");
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

// ---------------------------------------------------------------------------------
// check-header

#[test]
fn check_header_refuses_a_missing_or_wrong_header_with_the_configured_answer() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<check-header name="X-Api-Version" failed-check-httpcode="400"
              failed-check-error-message="Header X-Api-Version is required" ignore-case="true">
    <value>2024-01-01</value>
    <value>2024-06-01-preview</value>
</check-header>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));

    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(r.json()["statusCode"], 400);
    assert_eq!(r.json()["message"], "Header X-Api-Version is required");

    let r = get(&gw, "/api/x", &[("X-Api-Version", "1999-01-01")]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(backend.requests().is_empty());

    let r = get(&gw, "/api/x", &[("X-Api-Version", "2024-06-01-PREVIEW")]);
    assert_eq!(r.status, 200, "ignore-case: {}", r.body_str());
    let r = get(&gw, "/api/x", &[("x-api-version", "2024-01-01")]);
    assert_eq!(
        r.status,
        200,
        "header names are case-insensitive: {}",
        r.body_str()
    );
}

// ---------------------------------------------------------------------------------
// set-backend-service, set-method, set-query-parameter

#[test]
fn set_backend_service_sends_the_call_to_another_backend() {
    let main = Backend::echo();
    let other = Backend::echo();
    let yaml = format!(
        r#"
apis:
  - id: api
    path: api
    serviceUrl: {main}/v1
    operations:
      - id: moved
        method: GET
        urlTemplate: /legacy/{{id}}
        policies: |
          <policies><inbound><base />
            <set-backend-service base-url="{other}/v2" />
          </inbound></policies>
      - {ANY_OP}
"#,
        main = main.url(),
        other = other.url()
    );
    let gw = Gateway::start(&yaml);

    let r = get(&gw, "/api/legacy/42?x=1", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v2/legacy/42?x=1");
    let seen = other.wait_requests(1, WAIT);
    assert_eq!(seen[0].target, "/v2/legacy/42?x=1");
    assert_eq!(
        seen[0].header("Host"),
        Some(other.addr.to_string().as_str()),
        "Host is the new backend's"
    );

    // Other operations still go to the API's own backend.
    let r = get(&gw, "/api/current/1", &[]);
    assert_eq!(r.body_str(), "GET /v1/current/1");
    assert_eq!(main.wait_requests(1, WAIT)[0].target, "/v1/current/1");
    assert_eq!(other.requests().len(), 1);
}

#[test]
fn set_method_changes_the_method_the_backend_sees() {
    let backend = Backend::echo();
    let pol = inbound(r#"<set-method>POST</set-method>"#);
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/jobs", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "POST /v1/jobs");
    assert_eq!(backend.wait_requests(1, WAIT)[0].method, "POST");
}

#[test]
fn set_query_parameter_override_skip_append_and_delete() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<set-query-parameter name="a" exists-action="override"><value>10</value></set-query-parameter>
<set-query-parameter name="b" exists-action="skip"><value>20</value></set-query-parameter>
<set-query-parameter name="e" exists-action="skip"><value>50</value></set-query-parameter>
<set-query-parameter name="c" exists-action="append"><value>30</value></set-query-parameter>
<set-query-parameter name="d" exists-action="delete" />
<set-query-parameter name="f"><value>@(context.Request.Headers.GetValueOrDefault("X-Tenant", "none"))</value></set-query-parameter>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/q?a=1&b=2&c=3&d=4", &[("X-Tenant", "acme")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = backend.wait_requests(1, WAIT);
    let target = &seen[0].target;
    assert!(target.starts_with("/v1/q?"), "{target}");
    assert_eq!(
        query_pairs(target),
        pairs(&[
            ("a", "10"),
            ("b", "2"),
            ("c", "3"),
            ("c", "30"),
            ("e", "50"),
            ("f", "acme")
        ]),
        "{target}"
    );
}

// ---------------------------------------------------------------------------------
// set-body, find-and-replace, json-to-xml

#[test]
fn set_body_in_inbound_replaces_the_request_body() {
    let backend = Backend::start(|r| Reply::ok(format!("got {} bytes", r.body.len())));
    let pol = inbound(r#"<set-body>{"order":"replaced","qty":1}</set-body>"#);
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let new_body = r#"{"order":"replaced","qty":1}"#;

    // A longer body than the new one: the backend must get exactly the new one.
    let original =
        r#"{"order":"original","qty":100,"note":"this body is longer than the new one"}"#;
    let r = send(
        &gw,
        "POST",
        "/api/orders",
        &[("Content-Type", "application/json")],
        Some(original),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = backend.wait_requests(1, WAIT);
    assert_eq!(seen[0].body_str(), new_body);
    assert_eq!(
        seen[0].header("Content-Length"),
        Some(new_body.len().to_string().as_str())
    );
    assert!(!seen[0].chunked);

    // A bodiless GET gets the body too, with its length.
    let r = get(&gw, "/api/orders", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = backend.wait_requests(2, WAIT);
    assert_eq!(seen[1].body_str(), new_body);
    assert_eq!(
        seen[1].header("Content-Length"),
        Some(new_body.len().to_string().as_str())
    );
}

#[test]
fn set_body_in_inbound_from_an_expression() {
    let backend = Backend::start(|_| Reply::ok("ok"));
    let yaml = format!(
        r#"
apis:
  - id: api
    path: api
    serviceUrl: {}/v1
    operations:
      - id: ship
        method: POST
        urlTemplate: /orders/{{id}}/ship
        policies: |
          <policies><inbound><base />
            <set-body>@("ship order " + context.Request.MatchedParameters["id"] + " via " + context.Request.Headers.GetValueOrDefault("X-Carrier", "post"))</set-body>
          </inbound></policies>
"#,
        backend.url()
    );
    let gw = Gateway::start(&yaml);
    let r = send(
        &gw,
        "POST",
        "/api/orders/77/ship",
        &[("X-Carrier", "ups")],
        Some("ignored"),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = backend.wait_requests(1, WAIT);
    assert_eq!(seen[0].body_str(), "ship order 77 via ups");
    assert_eq!(seen[0].header("Content-Length"), Some("21"));
}

#[test]
fn set_body_in_outbound_replaces_the_response_body() {
    let backend = Backend::start(|_| {
        Reply::status(
            200,
            &[("Content-Type", "text/plain")],
            "the backend's own body",
        )
    });
    let pol = outbound(
        r#"<set-body>@("wrapped: " + context.Response.Body.As<string>(preserveContent: true))</set-body>
<set-header name="Content-Type" exists-action="override"><value>text/x-wrapped</value></set-header>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "wrapped: the backend's own body");
    assert_eq!(r.header("Content-Type"), Some("text/x-wrapped"));
    // Framed exactly (the client reads by Content-Length or chunks, never to close).
    assert!(!r.until_close);
    if let Some(cl) = r.header("Content-Length") {
        assert_eq!(cl, r.body.len().to_string());
    }
}

#[test]
fn find_and_replace_rewrites_the_response_body() {
    let backend = Backend::start(|_| {
        Reply::status(
            200,
            &[("Content-Type", "text/plain")],
            "internal-host:8080/a and internal-host:8080/b",
        )
    });
    let pol = outbound(r#"<find-and-replace from="internal-host:8080" to="api.example.com" />"#);
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "api.example.com/a and api.example.com/b");
    assert!(!r.until_close);
    if let Some(cl) = r.header("Content-Length") {
        assert_eq!(cl, r.body.len().to_string());
    }
}

#[test]
fn json_to_xml_converts_a_json_backend_response() {
    let backend = Backend::start(|_| {
        Reply::status(
            200,
            &[("Content-Type", "application/json; charset=utf-8")],
            r#"{"id":42,"name":"Widget & Co","tags":["a","b"],"inStock":true}"#,
        )
    });
    let pol =
        outbound(r#"<json-to-xml apply="content-type-json" consider-accept-header="true" />"#);
    let gw = Gateway::start(&one_api(&backend.url(), &pol));

    let r = get(&gw, "/api/items/42", &[("Accept", "application/xml")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        "<Document><id>42</id><name>Widget &amp; Co</name><tags>a</tags><tags>b</tags><inStock>True</inStock></Document>"
    );
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(ct.starts_with("application/xml"), "{ct}");
    if let Some(cl) = r.header("Content-Length") {
        assert_eq!(cl, r.body.len().to_string());
    }

    // A client that wants JSON gets the backend's JSON (consider-accept-header).
    let r = get(&gw, "/api/items/42", &[("Accept", "application/json")]);
    assert_eq!(r.status, 200);
    assert!(r.body_str().starts_with(r#"{"id":42"#), "{}", r.body_str());
    assert!(r
        .header("Content-Type")
        .unwrap_or_default()
        .starts_with("application/json"));
}

// ---------------------------------------------------------------------------------
// mock-response, choose, set-variable, trace

#[test]
fn mock_response_answers_with_the_operations_example() {
    let backend = Backend::echo();
    let yaml = format!(
        r#"
apis:
  - id: api
    path: api
    serviceUrl: {}/v1
    operations:
      - id: get-item
        method: GET
        urlTemplate: /items/{{id}}
        mock:
          statusCode: 200
          contentType: application/json
          body: '{{"id":"example","name":"An example item"}}'
        policies: |
          <policies><inbound><base />
            <mock-response status-code="200" content-type="application/json" />
          </inbound></policies>
      - id: create-item
        method: POST
        urlTemplate: /items
        mock:
          statusCode: 201
          contentType: application/json
          body: '{{"id":"new"}}'
        policies: |
          <policies><inbound><base />
            <mock-response />
          </inbound></policies>
"#,
        backend.url()
    );
    let gw = Gateway::start(&yaml);
    let r = get(&gw, "/api/items/1", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json()["name"], "An example item");

    let r = send(&gw, "POST", "/api/items", &[], Some("{}"));
    assert_eq!(r.status, 201, "{}", r.body_str());
    assert_eq!(r.json()["id"], "new");
    assert!(
        backend.requests().is_empty(),
        "a mocked call never reaches the backend"
    );
}

#[test]
fn choose_takes_the_first_true_branch_or_otherwise() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<choose>
    <when condition="@(context.Request.Headers.GetValueOrDefault("X-Tier", "") == "gold")">
        <set-header name="X-Route" exists-action="override"><value>gold</value></set-header>
    </when>
    <when condition="@(context.Request.Url.Query.GetValueOrDefault("beta", "") == "1")">
        <set-header name="X-Route" exists-action="override"><value>beta</value></set-header>
    </when>
    <otherwise>
        <set-header name="X-Route" exists-action="override"><value>standard</value></set-header>
    </otherwise>
</choose>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    for (i, (target, headers, route)) in [
        ("/api/a", vec![("X-Tier", "gold")], "gold"),
        ("/api/b?beta=1", vec![("X-Tier", "gold")], "gold"),
        ("/api/c?beta=1", vec![("X-Tier", "silver")], "beta"),
        ("/api/d", vec![], "standard"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = get(&gw, target, &headers);
        assert_eq!(r.status, 200, "{target}: {}", r.body_str());
        let seen = backend.wait_requests(i + 1, WAIT);
        assert_eq!(seen[i].header("X-Route"), Some(route), "{target}");
    }
}

#[test]
fn set_variable_is_visible_to_later_expressions_and_sections() {
    let backend = Backend::echo();
    let pol = r#"<policies>
<inbound>
    <base />
    <set-variable name="tenant" value="@(context.Request.Headers.GetValueOrDefault("X-Tenant", "none").ToUpper())" />
    <set-variable name="limit" value="@(20 + 5)" />
    <set-variable name="plain" value="literal text" />
    <set-header name="X-Tenant-Upper" exists-action="override">
        <value>@((string)context.Variables["tenant"])</value>
    </set-header>
    <set-header name="X-Double-Limit" exists-action="override">
        <value>@(((int)context.Variables["limit"] * 2).ToString())</value>
    </set-header>
    <set-header name="X-Plain" exists-action="override">
        <value>@(context.Variables.GetValueOrDefault<string>("plain", "?"))</value>
    </set-header>
</inbound>
<outbound>
    <base />
    <set-header name="X-Tenant" exists-action="override">
        <value>@((string)context.Variables["tenant"])</value>
    </set-header>
</outbound>
</policies>"#;
    let gw = Gateway::start(&one_api(&backend.url(), pol));
    let r = get(&gw, "/api/x", &[("X-Tenant", "acme")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.header("X-Tenant"),
        Some("ACME"),
        "outbound sees inbound's variable"
    );
    let seen = backend.wait_requests(1, WAIT);
    assert_eq!(seen[0].header("X-Tenant-Upper"), Some("ACME"));
    assert_eq!(seen[0].header("X-Double-Limit"), Some("50"));
    assert_eq!(seen[0].header("X-Plain"), Some("literal text"));
}

#[test]
fn trace_compiles_and_the_request_passes() {
    let backend = Backend::echo();
    let pol = r#"<policies>
<inbound>
    <base />
    <trace source="orders-api" severity="information">
        <message>@("inbound " + context.Request.Method + " " + context.Request.Url.Path)</message>
        <metadata name="tenant" value="acme" />
    </trace>
    <trace source="orders-api">
        <message>a literal message</message>
    </trace>
</inbound>
<outbound>
    <base />
    <trace source="orders-api" severity="error">
        <message>@("outbound " + context.Response.StatusCode)</message>
    </trace>
</outbound>
</policies>"#;
    let gw = Gateway::start(&one_api(&backend.url(), pol));
    let r = get(&gw, "/api/traced", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v1/traced");
}

// ---------------------------------------------------------------------------------
// on-error

#[test]
fn on_error_sees_last_error_from_a_failed_validate_jwt() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    const SECRET: &[u8] = b"an-hmac-secret-of-32-bytes-long!";
    let backend = Backend::echo();
    let yaml = format!(
        r#"
namedValues:
  - {{ name: hmac-key, value: "{}", secret: true }}
apis:
  - id: api
    path: api
    serviceUrl: {}/v1
    policies: {}
    operations:
      - {ANY_OP}
"#,
        STANDARD.encode(SECRET),
        backend.url(),
        policy("on-error-jwt.xml")
    );
    let gw = Gateway::start(&yaml);

    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert_eq!(r.header("X-Error-Reason"), Some("TokenNotPresent"));
    assert_eq!(r.header("X-Error-Source"), Some("validate-jwt"));
    assert_eq!(r.header("X-Error-Section"), Some("inbound"));
    assert_eq!(r.json()["statusCode"], 401, "APIM's error body is kept");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |exp: u64| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "bob", "exp": exp}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let expired = format!("Bearer {}", sign(now - 600));
    let r = get(&gw, "/api/x", &[("Authorization", &expired)]);
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert_eq!(r.header("X-Error-Reason"), Some("TokenExpired"));
    assert!(backend.requests().is_empty());

    // A good token passes, and on-error does not run.
    let good = format!("Bearer {}", sign(now + 600));
    let r = get(&gw, "/api/x", &[("Authorization", &good)]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("X-Error-Reason"), None);
}

// ---------------------------------------------------------------------------------
// bodies and framing on kept-alive connections

#[test]
fn set_body_replaces_a_chunked_request_body_and_the_connection_stays_usable() {
    let backend = Backend::start(|r| Reply::ok(format!("{} {}", r.method, r.body_str())));
    let pol = inbound(r#"<set-body>replaced</set-body>"#);
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let mut c = common::Client::connect(gw.addr);
    c.send(
        "POST /api/a HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "POST replaced");
    let seen = backend.wait_requests(1, WAIT);
    assert_eq!(seen[0].body_str(), "replaced");
    assert_eq!(seen[0].header("Content-Length"), Some("8"));
    assert!(!seen[0].chunked, "the new body is not sent chunked");
    assert_eq!(seen[0].header("Transfer-Encoding"), None);

    // The client's chunked body was consumed whole: the next request on the
    // connection is read from the right place.
    c.send("GET /api/b HTTP/1.1\r\nHost: api.test\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET replaced");
    assert_eq!(backend.wait_requests(2, WAIT)[1].target, "/v1/b");
}

#[test]
fn a_refused_request_with_a_body_leaves_the_connection_usable() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<check-header name="X-Api-Version" failed-check-httpcode="400" failed-check-error-message="version required" />"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let mut c = common::Client::connect(gw.addr);
    let body = "x".repeat(3000);
    c.send(format!(
        "POST /api/a HTTP/1.1\r\nHost: api.test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 400, "{}", r.body_str());
    if !r.connection_has("close") {
        // Kept alive: the refused body must not be read as the next request.
        c.send("GET /api/b HTTP/1.1\r\nHost: api.test\r\nX-Api-Version: 1\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.body_str(), "GET /v1/b");
    }
}

/// A chunked body of these chunks, with the last-chunk and an empty trailer.
fn chunked(chunks: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n{c}\r\n", c.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn find_and_replace_and_json_to_xml_work_on_a_chunked_backend_response() {
    let backend = Backend::start(|_| {
        Reply::Send(common::backend::response(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
            &chunked(&[r#"{"host""#, r#":"internal:8080"}"#]),
        ))
    });
    let pol = outbound(
        r#"<find-and-replace from="internal:8080" to="api.example.com" />
<json-to-xml apply="always" consider-accept-header="false" />"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let mut c = common::Client::connect(gw.addr);
    for _ in 0..2 {
        c.send("GET /api/x HTTP/1.1\r\nHost: api.test\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(
            r.body_str(),
            "<Document><host>api.example.com</host></Document>"
        );
    }
}
