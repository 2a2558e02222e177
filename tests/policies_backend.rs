//! Backend-section policies end to end, on the real gateway in front of recording
//! backends: `retry` (sending again while its condition holds, the body included),
//! `limit-concurrency` (429 past max-count, the slot freed on every way out),
//! `set-backend-service backend-id` with `backends:` and `forward-request
//! follow-redirects`.

mod common;

use common::client::{request, Response};
use common::{Backend, Client, Gate, Gateway, Reply, ANY_OP};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// One API `api` (path `api`, forwarding to `backend_url/v1`) with `policies` at API
/// scope.
fn one_api(backend_url: &str, policies: &str) -> String {
    format!(
        "apis:\n  - id: api\n    path: api\n    serviceUrl: {backend_url}/v1\n    policies: |\n{}\n    operations:\n      - {ANY_OP}\n",
        indent(policies, 6)
    )
}

fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A document whose backend section is `backend` (no `<base/>`), with on-error
/// telling where an error came from.
fn backend_doc(backend: &str) -> String {
    format!(
        r#"<policies>
  <inbound><base /></inbound>
  <backend>
    {backend}
  </backend>
  <outbound><base /></outbound>
  <on-error>
    <set-header name="X-Error-Source" exists-action="override"><value>@(context.LastError.Source)</value></set-header>
    <set-header name="X-Error-Reason" exists-action="override"><value>@(context.LastError.Reason)</value></set-header>
  </on-error>
</policies>"#
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

/// A backend answering 503 to its first `failures` requests, then 200 `ok <n>`.
fn flaky(failures: usize) -> Backend {
    let seen = AtomicUsize::new(0);
    Backend::start(move |_| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        if n < failures {
            Reply::status(503, &[("Content-Type", "text/plain")], format!("down {n}"))
        } else {
            Reply::ok(format!("ok {n}"))
        }
    })
}

const RETRY_5XX: &str = r#"<retry condition="@(context.Response.StatusCode >= 500)" count="3" interval="0">
      <forward-request />
    </retry>"#;

// ---------------------------------------------------------------------------------
// retry

#[test]
fn retry_sends_again_while_the_condition_holds() {
    let backend = flaky(2);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(RETRY_5XX)));
    let r = get(&gw, "/api/items/1?x=1", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "ok 2");
    let seen = backend.wait_requests(3, WAIT);
    assert_eq!(seen.len(), 3);
    for req in &seen {
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            ("GET", "/v1/items/1?x=1")
        );
    }
    // A success is not repeated.
    let r = get(&gw, "/api/items/2", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(backend.requests().len(), 4);
}

#[test]
fn retry_resends_the_request_body_each_time() {
    let backend = flaky(2);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(RETRY_5XX)));
    // Chunked on the way in: buffered whole, then sent with Content-Length each time.
    let r = request(
        gw.addr,
        "POST /api/orders HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\norder=\r\n2\r\n42\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let seen = backend.wait_requests(3, WAIT);
    for req in &seen {
        assert_eq!(req.method, "POST");
        assert_eq!(req.body_str(), "order=42");
        assert_eq!(req.header("Content-Length"), Some("8"));
        assert!(!req.chunked);
    }
}

#[test]
fn retry_gives_up_after_count_with_the_last_response() {
    let backend = flaky(usize::MAX);
    let doc = backend_doc(
        r#"<retry condition="@(context.Response.StatusCode == 503)" count="2" interval="0.05" delta="0.05" max-interval="1">
      <forward-request />
    </retry>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &doc));
    let r = get(&gw, "/api/x", &[]);
    // Not an error: the backend's last answer, as it sent it.
    assert_eq!(r.status, 503);
    assert_eq!(r.body_str(), "down 2");
    assert_eq!(r.header("X-Error-Source"), None);
    assert_eq!(backend.wait_requests(3, WAIT).len(), 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(backend.requests().len(), 3, "count=2 means three attempts");
}

#[test]
fn a_backend_that_fails_outright_is_retried_then_reaches_on_error() {
    // Closes every connection without answering.
    let backend = Backend::start(|_| Reply::Close);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(RETRY_5XX)));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 502, "{}", r.body_str());
    assert_eq!(r.header("X-Error-Source"), Some("forward-request"));
    assert_eq!(r.header("X-Error-Reason"), Some("BackendConnectionFailure"));
    assert_eq!(backend.wait_requests(4, WAIT).len(), 4);
}

#[test]
fn a_false_condition_means_one_call() {
    let backend = flaky(1);
    let doc = backend_doc(
        r#"<retry condition="@(context.Response.StatusCode == 429)" count="5" interval="0" first-fast-retry="true">
      <forward-request timeout="10" />
    </retry>"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &doc));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(backend.wait_requests(1, WAIT).len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(backend.requests().len(), 1);
}

#[test]
fn policies_inside_retry_run_on_every_attempt_and_outbound_sees_the_last() {
    let backend = flaky(2);
    let doc = r#"<policies>
  <inbound><base /><set-variable name="attempt" value="@(0)" /></inbound>
  <backend>
    <retry condition="@(context.Response.StatusCode >= 500)" count="3" interval="0">
      <set-variable name="attempt" value="@(context.Variables.GetValueOrDefault<int>("attempt", 0) + 1)" />
      <set-header name="X-Attempt" exists-action="override"><value>@(context.Variables["attempt"].ToString())</value></set-header>
      <forward-request />
    </retry>
  </backend>
  <outbound>
    <set-header name="X-Attempts" exists-action="override"><value>@(context.Variables["attempt"].ToString())</value></set-header>
  </outbound>
</policies>"#;
    let gw = Gateway::start(&one_api(&backend.url(), doc));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("X-Attempts"), Some("3"));
    let attempts: Vec<String> = backend
        .wait_requests(3, WAIT)
        .iter()
        .map(|r| r.header("X-Attempt").unwrap_or("-").to_string())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
}

#[test]
fn a_policy_after_forward_request_sees_the_backend_status() {
    let backend = flaky(1);
    let doc = r#"<policies>
  <inbound><base /></inbound>
  <backend>
    <forward-request />
    <set-variable name="seen" value="@(context.Response.StatusCode.ToString() + " " + context.Response.Headers.GetValueOrDefault("Content-Type", "-"))" />
  </backend>
  <outbound>
    <set-header name="X-Seen" exists-action="override"><value>@((string)context.Variables["seen"])</value></set-header>
  </outbound>
</policies>"#;
    let gw = Gateway::start(&one_api(&backend.url(), doc));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("X-Seen"), Some("503 text/plain"));
    assert_eq!(r.body_str(), "down 0");
}

#[test]
fn the_connection_serves_the_next_request_after_retries() {
    let backend = flaky(2);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(RETRY_5XX)));
    let mut c = Client::connect(gw.addr);
    c.send("POST /api/a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.body_str());
    c.send("GET /api/b HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(backend.wait_requests(4, WAIT)[3].target, "/v1/b");
}

// ---------------------------------------------------------------------------------
// limit-concurrency

const BY_CALLER: &str = r#"<limit-concurrency key="@(context.Request.Headers.GetValueOrDefault("X-Caller", "anonymous"))" max-count="1">
      <forward-request />
    </limit-concurrency>"#;

/// A backend that holds requests to `/v1/slow` until `gate` opens, and closes the
/// connection on `/v1/fail` without answering.
fn gated(gate: &Gate) -> Backend {
    let gate = gate.clone();
    Backend::start(move |r| {
        if r.target == "/v1/slow" {
            assert!(gate.wait(Duration::from_secs(30)), "gate never opened");
        }
        if r.target == "/v1/fail" {
            return Reply::Close;
        }
        Reply::ok(format!("{} {}", r.method, r.target))
    })
}

#[test]
fn past_max_count_a_key_gets_429_and_the_slot_frees_when_the_call_ends() {
    let gate = Gate::new();
    let backend = gated(&gate);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(BY_CALLER)));

    let mut slow = Client::connect(gw.addr);
    slow.send("GET /api/slow HTTP/1.1\r\nHost: t\r\nX-Caller: alice\r\n\r\n");
    backend.wait_requests(1, WAIT);

    let r = get(&gw, "/api/other", &[("X-Caller", "alice")]);
    assert_eq!(r.status, 429, "{}", r.body_str());
    assert_eq!(r.json()["statusCode"], 429);
    assert_eq!(r.header("X-Error-Source"), Some("limit-concurrency"));
    // Another key has its own slot.
    let r = get(&gw, "/api/other", &[("X-Caller", "bob")]);
    assert_eq!(r.status, 200, "{}", r.body_str());

    gate.open();
    assert_eq!(slow.read_response().status, 200);
    let r = get(&gw, "/api/other", &[("X-Caller", "alice")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    // Only the refused call never reached the backend.
    assert_eq!(backend.requests().len(), 3);
}

#[test]
fn a_failed_call_gives_its_slot_back() {
    let gate = Gate::new();
    gate.open();
    let backend = gated(&gate);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(BY_CALLER)));
    for _ in 0..3 {
        let r = get(&gw, "/api/fail", &[("X-Caller", "alice")]);
        assert_eq!(r.status, 502, "{}", r.body_str());
        assert_eq!(r.header("X-Error-Source"), Some("forward-request"));
    }
    let r = get(&gw, "/api/ok", &[("X-Caller", "alice")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
}

#[test]
fn a_client_that_disconnects_gives_its_slot_back() {
    let gate = Gate::new();
    let backend = gated(&gate);
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(BY_CALLER)));
    let mut gone = Client::connect(gw.addr);
    gone.send("GET /api/slow HTTP/1.1\r\nHost: t\r\nX-Caller: alice\r\n\r\n");
    backend.wait_requests(1, WAIT);
    drop(gone);
    assert_eq!(get(&gw, "/api/x", &[("X-Caller", "alice")]).status, 429);
    // The backend answers to nobody; the call ends and the slot comes back.
    gate.open();
    assert!(
        common::wait_until(WAIT, || get(&gw, "/api/x", &[("X-Caller", "alice")]).status
            == 200),
        "the slot of a disconnected client was never freed"
    );
}

#[test]
fn a_slot_around_a_streamed_response_is_held_until_the_body_is_relayed() {
    // The backend sends the head, then holds the body until the gate opens.
    let gate = Gate::new();
    let g = gate.clone();
    let backend = Backend::start(move |r| {
        if r.target != "/v1/stream" {
            return Reply::ok("quick");
        }
        let g = g.clone();
        Reply::Stream(Box::new(move |s| {
            use std::io::Write;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
            let _ = s.flush();
            g.wait(Duration::from_secs(30));
            s.write_all(b"cd").is_ok()
        }))
    });
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(BY_CALLER)));
    let mut streaming = Client::connect(gw.addr);
    streaming.send("GET /api/stream HTTP/1.1\r\nHost: t\r\n\r\n");
    // The head and the first body bytes reach the client while the body is still open.
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n\r\nab") {
        let byte = streaming
            .read_exact_bytes(1, WAIT)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&seen)));
        seen.extend_from_slice(&byte);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{seen:?}");
    assert_eq!(get(&gw, "/api/quick", &[]).status, 429);
    gate.open();
    assert_eq!(streaming.read_exact_bytes(2, WAIT).unwrap(), b"cd");
    assert!(common::wait_until(WAIT, || get(&gw, "/api/quick", &[])
        .status
        == 200));
}

#[test]
fn retry_inside_limit_concurrency_holds_one_slot_for_all_attempts() {
    let backend = flaky(2);
    let doc = backend_doc(&format!(
        r#"<limit-concurrency key="all" max-count="1">
      {RETRY_5XX}
    </limit-concurrency>"#
    ));
    let gw = Gateway::start(&one_api(&backend.url(), &doc));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(backend.wait_requests(3, WAIT).len(), 3);
    assert_eq!(get(&gw, "/api/y", &[]).status, 200);
}

#[test]
fn limit_concurrency_and_retry_compile_errors_name_the_policy_and_line() {
    let dir = common::gateway::TempDir::new();
    for (doc, needle) in [
        (
            "<policies>\n<inbound>\n<retry condition=\"true\" count=\"1\" interval=\"1\"><set-method>GET</set-method></retry>\n</inbound>\n</policies>",
            "<retry> line 3: not allowed in inbound",
        ),
        (
            "<policies>\n<backend>\n<limit-concurrency key=\"k\" max-count=\"0\"><forward-request/></limit-concurrency>\n</backend>\n</policies>",
            "<limit-concurrency> line 3: max-count must be",
        ),
        (
            "<policies>\n<backend>\n\n<retry condition=\"true\" count=\"1\" interval=\"1\" bogus=\"1\"><forward-request/></retry>\n</backend>\n</policies>",
            "<retry> line 4: unknown attribute bogus",
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
        let (status, _out, err) =
            common::gateway::run_cli(&["validate".as_ref(), cfg.as_os_str()]);
        assert!(!status.success(), "{doc}");
        assert!(err.contains("apis[0].policies"), "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

// ---------------------------------------------------------------------------------
// backends: and set-backend-service backend-id

#[test]
fn set_backend_service_backend_id_routes_to_the_named_backend() {
    let main = Backend::echo();
    let eu = Backend::echo();
    let yaml = format!(
        r#"
backends:
  - id: orders-eu
    url: {eu}/eu/v2
    description: the EU replica
apis:
  - id: api
    path: api
    serviceUrl: {main}/v1
    policies: |
      <policies>
        <inbound>
          <base />
          <choose>
            <when condition="@(context.Request.Headers.GetValueOrDefault("X-Region", "") == "eu")">
              <set-backend-service backend-id="orders-eu" />
            </when>
          </choose>
        </inbound>
      </policies>
    operations:
      - {ANY_OP}
"#,
        eu = eu.url(),
        main = main.url(),
    );
    let gw = Gateway::start(&yaml);
    let r = get(&gw, "/api/orders/7?x=1", &[("X-Region", "eu")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /eu/v2/orders/7?x=1");
    let seen = eu.wait_requests(1, WAIT);
    assert_eq!(seen[0].header("Host"), Some(eu.addr.to_string().as_str()));
    let r = get(&gw, "/api/orders/8", &[]);
    assert_eq!(r.body_str(), "GET /v1/orders/8");
    assert_eq!(main.wait_requests(1, WAIT).len(), 1);
    assert_eq!(eu.requests().len(), 1);
}

#[test]
fn an_unknown_backend_id_is_a_compile_error() {
    let dir = common::gateway::TempDir::new();
    let cfg = dir.write(
        "portico.yaml",
        "backends:\n  - { id: b1, url: 'http://127.0.0.1:9' }\napis:\n  - id: a\n    path: a\n    serviceUrl: http://127.0.0.1:9\n    policies: |\n      <policies>\n        <inbound>\n          <set-backend-service backend-id=\"b2\" />\n        </inbound>\n      </policies>\n    operations:\n      - { id: o, method: GET, urlTemplate: / }\n",
    );
    let (status, _out, err) = common::gateway::run_cli(&["validate".as_ref(), cfg.as_os_str()]);
    assert!(!status.success());
    assert!(
        err.contains("apis[0].policies: <inbound> <set-backend-service> line 3: backend-id \"b2\" is not one of the config's backends (b1)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------
// forward-request follow-redirects

const FOLLOW: &str = r#"<forward-request follow-redirects="true" />"#;

/// Answers `/v1/moved/<status>?to=<location>` with that redirect, `/v1/loop` with a
/// redirect to itself, everything else with 200 `<METHOD> <target> <body>`.
fn redirecting() -> Backend {
    Backend::start(|r| {
        if let Some(rest) = r.target.strip_prefix("/v1/moved/") {
            let (status, to) = rest.split_once("?to=").unwrap_or((rest, "/v1/none"));
            let status: u16 = status.parse().unwrap_or(302);
            return Reply::status(status, &[("Location", to)], "moved");
        }
        if r.target == "/v1/loop" {
            return Reply::status(302, &[("Location", "/v1/loop")], "again");
        }
        Reply::ok(format!("{} {} {}", r.method, r.target, r.body_str()))
    })
}

#[test]
fn redirects_are_followed_at_the_gateway() {
    let backend = redirecting();
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(FOLLOW)));
    for (status, location, expect) in [
        (301, "/v1/new", "GET /v1/new "),
        (302, "../next?page=2", "GET /v1/next?page=2 "),
        (307, "http://{self}/v1/abs", "GET /v1/abs "),
        (308, "/v1/kept", "GET /v1/kept "),
    ] {
        let location = location.replace("{self}", &backend.addr.to_string());
        let r = get(&gw, &format!("/api/moved/{status}?to={location}"), &[]);
        assert_eq!(r.status, 200, "{status}: {}", r.body_str());
        assert_eq!(r.body_str(), expect, "{status}");
    }
    assert_eq!(backend.wait_requests(8, WAIT).len(), 8);
}

#[test]
fn see_other_turns_a_post_into_a_get_and_307_resends_the_body() {
    let backend = redirecting();
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(FOLLOW)));
    let post = |target: &str| {
        request(
            gw.addr,
            format!("POST {target} HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        )
    };
    let r = post("/api/moved/303?to=/v1/result");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v1/result ");
    let r = post("/api/moved/307?to=/v1/again");
    assert_eq!(r.body_str(), "POST /v1/again hello");
    let seen = backend.wait_requests(4, WAIT);
    let (get_after_303, post_after_307) = (&seen[1], &seen[3]);
    assert_eq!(get_after_303.method, "GET");
    assert_eq!(get_after_303.body_len, 0);
    assert_eq!(get_after_303.header("Content-Length"), None);
    assert_eq!(get_after_303.header("Content-Type"), None);
    assert_eq!(post_after_307.header("Content-Length"), Some("5"));
    assert_eq!(post_after_307.header("Content-Type"), Some("text/plain"));
}

#[test]
fn a_redirect_to_another_ip_goes_there_without_credentials() {
    let backend = redirecting();
    let other = Backend::echo();
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(FOLLOW)));
    let r = get(
        &gw,
        &format!("/api/moved/302?to=http://{}/elsewhere", other.addr),
        &[("Authorization", "Bearer secret"), ("X-Kept", "1")],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /elsewhere");
    let there = &other.wait_requests(1, WAIT)[0];
    assert_eq!(there.header("Host"), Some(other.addr.to_string().as_str()));
    assert_eq!(there.header("Authorization"), None);
    assert_eq!(there.header("X-Kept"), Some("1"));
    // The first hop, on the backend's own host, had it.
    assert_eq!(
        backend.wait_requests(1, WAIT)[0].header("Authorization"),
        Some("Bearer secret")
    );
}

#[test]
fn redirects_that_are_not_followed_reach_the_client() {
    let backend = redirecting();
    let gw = Gateway::start(&one_api(&backend.url(), &backend_doc(FOLLOW)));
    // Another scheme, or a name the gateway would have to resolve.
    for location in ["https://example.com/x", "http://elsewhere.example/x"] {
        let r = get(&gw, &format!("/api/moved/302?to={location}"), &[]);
        assert_eq!(r.status, 302, "{location}");
        assert_eq!(r.header("Location"), Some(location));
        assert_eq!(r.body_str(), "moved");
    }
    // A loop: five redirects are followed, then the sixth answer goes out.
    let r = get(&gw, "/api/loop", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.body_str(), "again");
    assert_eq!(backend.wait_requests(2 + 6, WAIT).len(), 8);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(backend.requests().len(), 8);
}

#[test]
fn without_follow_redirects_the_client_gets_the_redirect() {
    let backend = redirecting();
    let gw = Gateway::start(&one_api(
        &backend.url(),
        &backend_doc("<forward-request />"),
    ));
    let r = get(&gw, "/api/moved/301?to=/v1/new", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/v1/new"));
    assert_eq!(backend.wait_requests(1, WAIT).len(), 1);
}

#[test]
fn retry_around_a_redirecting_forward_request() {
    // The redirect target fails twice, then answers: each attempt follows the redirect.
    let seen = AtomicUsize::new(0);
    let backend = Backend::start(move |r| {
        if r.target == "/v1/start" {
            return Reply::status(302, &[("Location", "/v1/target")], "");
        }
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            return Reply::status(503, &[], "busy");
        }
        Reply::ok("done")
    });
    let doc = backend_doc(&format!(
        r#"<retry condition="@(context.Response.StatusCode == 503)" count="3" interval="0">{FOLLOW}</retry>"#
    ));
    let gw = Gateway::start(&one_api(&backend.url(), &doc));
    let r = get(&gw, "/api/start", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "done");
    assert_eq!(backend.wait_requests(6, WAIT).len(), 6);
}
