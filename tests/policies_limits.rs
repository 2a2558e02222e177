//! Rate limits and quotas end to end: `rate-limit-by-key`, `rate-limit` (per
//! subscription), `quota-by-key`, `increment-condition`, and the counters' response
//! headers, on the real gateway. The node-wide limit holds across cores: a gateway with
//! two cores never admits more than the limit, and admits nearly all of it.

mod common;

use common::client::{request, Response};
use common::{Backend, Client, Gateway, Reply, ANY_OP};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest Retry-After a 60 s rate limit may give: the sliding window spans 41 of
/// its 40 buckets (src/ratelimit: any interval of one period holds at most `calls`), so
/// a refused caller may have to wait 61.5 s, rounded up.
const MAX_RETRY_AFTER_60S: u64 = 62;

fn policy(name: &str) -> String {
    format!("{}/tests/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn get(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(gw.addr, raw)
}

/// One API `api` with `policies` (inline XML) at API scope.
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

fn inbound(policies: &str) -> String {
    format!("<policies>\n<inbound>\n<base />\n{policies}\n</inbound>\n</policies>")
}

/// The Retry-After of a refusal, as whole seconds.
fn retry_after(r: &Response) -> u64 {
    let v = r
        .header("Retry-After")
        .unwrap_or_else(|| panic!("a {} without Retry-After: {:?}", r.status, r.headers));
    v.trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {v:?} is not whole seconds"))
}

#[test]
fn rate_limit_by_ip_holds_across_two_cores_under_4x_overload() {
    const LIMIT: usize = 200;
    const OFFERED: usize = 4 * LIMIT;
    const THREADS: usize = 16;
    const PER_CONNECTION: usize = 5;

    let backend = Backend::echo();
    let yaml = format!(
        "apis:\n  - id: api\n    path: api\n    serviceUrl: {}/v1\n    policies: {}\n    operations:\n      - {ANY_OP}\n",
        backend.url(),
        policy("limits-by-ip.xml")
    );
    let gw = Gateway::builder(&yaml).cores(2).start();
    let addr = gw.addr;

    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (ok, limited, problems) = (ok.clone(), limited.clone(), problems.clone());
        handles.push(std::thread::spawn(move || {
            let mine = OFFERED / THREADS;
            let mut sent = 0;
            // A fresh connection every few requests: many connections, so that the
            // kernel spreads them over both cores' listeners.
            while sent < mine {
                let mut c = Client::connect(addr);
                for _ in 0..PER_CONNECTION.min(mine - sent) {
                    c.send(format!(
                        "GET /api/t{t}/{sent} HTTP/1.1\r\nHost: api.test\r\n\r\n"
                    ));
                    let r = c.read_response();
                    sent += 1;
                    match r.status {
                        200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        429 => {
                            limited.fetch_add(1, Ordering::SeqCst);
                            let secs = r
                                .header("Retry-After")
                                .and_then(|v| v.trim().parse::<u64>().ok());
                            if !matches!(secs, Some(1..=MAX_RETRY_AFTER_60S)) {
                                problems.lock().unwrap().push(format!(
                                    "429 with Retry-After {:?}",
                                    r.header("Retry-After")
                                ));
                            }
                            let j = r.json();
                            if j["statusCode"] != 429
                                || !j["message"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .contains("Rate limit is exceeded")
                            {
                                problems
                                    .lock()
                                    .unwrap()
                                    .push(format!("429 body {}", r.body_str()));
                            }
                        }
                        other => problems
                            .lock()
                            .unwrap()
                            .push(format!("status {other}: {}", r.body_str())),
                    }
                }
            }
        }));
    }
    for h in handles {
        h.join().expect("client thread");
    }
    let (ok, limited) = (ok.load(Ordering::SeqCst), limited.load(Ordering::SeqCst));
    let problems = problems.lock().unwrap();
    assert!(
        problems.is_empty(),
        "{} problems: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    eprintln!("offered {OFFERED}: {ok} admitted, {limited} refused (limit {LIMIT})");
    assert_eq!(ok + limited, OFFERED);
    assert!(ok <= LIMIT, "admitted {ok} calls, the limit is {LIMIT}");
    assert!(
        ok >= LIMIT * 99 / 100,
        "admitted only {ok} of the {LIMIT} allowed ({limited} refused)"
    );
    // Exactly the admitted calls reached the backend.
    assert_eq!(backend.wait_requests(ok, Duration::from_secs(10)).len(), ok);
}

#[test]
fn rate_limit_gives_each_subscription_its_own_budget() {
    let backend = Backend::echo();
    let yaml = format!(
        r#"
subscriptions:
  - {{ id: s-a, scope: api:api, primaryKey: key-a-0123456789 }}
  - {{ id: s-b, scope: api:api, primaryKey: key-b-0123456789 }}
apis:
  - id: api
    path: api
    serviceUrl: {}/v1
    subscriptionRequired: true
    policies: |
      <policies><inbound><base /><rate-limit calls="3" renewal-period="60" /></inbound></policies>
    operations:
      - {ANY_OP}
"#,
        backend.url()
    );
    let gw = Gateway::start(&yaml);
    let key_a = [("Ocp-Apim-Subscription-Key", "key-a-0123456789")];
    let key_b = [("Ocp-Apim-Subscription-Key", "key-b-0123456789")];

    for i in 0..3 {
        let r = get(&gw, "/api/x", &key_a);
        assert_eq!(r.status, 200, "a, call {}: {}", i + 1, r.body_str());
    }
    let r = get(&gw, "/api/x", &key_a);
    assert_eq!(r.status, 429, "a, call 4: {}", r.body_str());
    assert!((1..=MAX_RETRY_AFTER_60S).contains(&retry_after(&r)));
    assert_eq!(r.json()["statusCode"], 429);

    // B's budget is untouched by A's calls.
    for i in 0..3 {
        let r = get(&gw, "/api/x", &key_b);
        assert_eq!(r.status, 200, "b, call {}: {}", i + 1, r.body_str());
    }
    let r = get(&gw, "/api/x", &key_b);
    assert_eq!(r.status, 429, "b, call 4: {}", r.body_str());

    // And A is still refused.
    assert_eq!(get(&gw, "/api/x", &key_a).status, 429);
    assert_eq!(backend.requests().len(), 6);
}

#[test]
fn quota_by_key_refuses_with_403_once_spent() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<quota-by-key calls="3" renewal-period="604800"
              counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;X-Client&quot;, &quot;anonymous&quot;))" />"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    let alice = [("X-Client", "alice")];
    for i in 0..3 {
        let r = get(&gw, "/api/x", &alice);
        assert_eq!(r.status, 200, "call {}: {}", i + 1, r.body_str());
    }
    let r = get(&gw, "/api/x", &alice);
    assert_eq!(r.status, 403, "{}", r.body_str());
    let j = r.json();
    assert_eq!(j["statusCode"], 403);
    assert!(
        j["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Out of call volume quota"),
        "{j}"
    );
    assert!(retry_after(&r) >= 1);
    assert_eq!(get(&gw, "/api/x", &alice).status, 403);

    // Another key has its own quota.
    assert_eq!(get(&gw, "/api/x", &[("X-Client", "bob")]).status, 200);
    assert_eq!(backend.requests().len(), 4);
}

#[test]
fn a_false_increment_condition_does_not_count() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<rate-limit-by-key calls="2" renewal-period="60" counter-key="shared"
              increment-condition="@(context.Request.Headers.GetValueOrDefault(&quot;X-Count&quot;, &quot;yes&quot;) == &quot;yes&quot;)" />"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    for i in 0..5 {
        let r = get(&gw, "/api/free", &[("X-Count", "no")]);
        assert_eq!(r.status, 200, "uncounted call {}: {}", i + 1, r.body_str());
    }
    for i in 0..2 {
        let r = get(&gw, "/api/counted", &[]);
        assert_eq!(r.status, 200, "counted call {}: {}", i + 1, r.body_str());
    }
    let r = get(&gw, "/api/counted", &[]);
    assert_eq!(r.status, 429, "{}", r.body_str());
}

#[test]
fn an_increment_condition_on_the_response_counts_only_successes() {
    // Failed calls (the backend answers 500) are given back after the response.
    let backend = Backend::start(|r| {
        if r.target.contains("fail") {
            Reply::status(500, &[], "boom")
        } else {
            Reply::ok("fine")
        }
    });
    let pol = inbound(
        r#"<rate-limit-by-key calls="2" renewal-period="60" counter-key="shared"
              increment-condition="@(context.Response.StatusCode == 200)" />"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    for i in 0..5 {
        let r = get(&gw, "/api/fail", &[]);
        assert_eq!(r.status, 500, "failing call {}: {}", i + 1, r.body_str());
    }
    for i in 0..2 {
        let r = get(&gw, "/api/ok", &[]);
        assert_eq!(r.status, 200, "successful call {}: {}", i + 1, r.body_str());
    }
    let r = get(&gw, "/api/ok", &[]);
    assert_eq!(r.status, 429, "{}", r.body_str());
}

#[test]
fn remaining_and_total_calls_headers_appear_on_responses() {
    let backend = Backend::echo();
    let pol = inbound(
        r#"<rate-limit-by-key calls="5" renewal-period="60" counter-key="@(context.Request.IpAddress)"
              remaining-calls-header-name="X-RateLimit-Remaining"
              total-calls-header-name="X-RateLimit-Limit" />"#,
    );
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    for expect in (0..5).rev() {
        let r = get(&gw, "/api/x", &[]);
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(
            r.header("X-RateLimit-Remaining"),
            Some(expect.to_string().as_str()),
            "headers: {:?}",
            r.headers
        );
        assert_eq!(r.header("X-RateLimit-Limit"), Some("5"));
        // The backend's own answer is what the client gets, plus the counters.
        assert!(r.body_str().starts_with("GET /v1/x"), "{}", r.body_str());
    }
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 429, "{}", r.body_str());
    assert!(retry_after(&r) >= 1);
}

#[test]
fn a_call_after_the_retry_after_interval_is_admitted() {
    // What a well-behaved client does with a 429: wait Retry-After seconds, try again.
    let backend = Backend::echo();
    let pol = inbound(r#"<rate-limit-by-key calls="2" renewal-period="2" counter-key="one" />"#);
    let gw = Gateway::start(&one_api(&backend.url(), &pol));
    assert_eq!(get(&gw, "/api/x", &[]).status, 200);
    assert_eq!(get(&gw, "/api/x", &[]).status, 200);
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 429, "{}", r.body_str());
    let secs = retry_after(&r);
    assert!(
        (1..=3).contains(&secs),
        "Retry-After {secs} for a 2 s period"
    );
    std::thread::sleep(Duration::from_secs(secs));
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(
        r.status,
        200,
        "refused again after waiting the {secs} s it asked for: {}",
        r.body_str()
    );
}
