//! Policy documents that must not load, checked with `portico validate FILE`: every
//! error is reported at once, names the item, the section, the policy and its line,
//! and an expression error gives its position; named values are substituted before
//! the document is read, an unknown one is an error, and a secret value never shows in
//! any output.

mod common;

use common::gateway::run_cli;
use common::TempDir;
use std::process::ExitStatus;

/// Writes `yaml` to a temporary config and runs `portico validate` on it.
fn validate(yaml: &str) -> (ExitStatus, String, String) {
    let dir = TempDir::new();
    let cfg = dir.write("portico.yaml", yaml);
    run_cli(&["validate".as_ref(), cfg.as_os_str()])
}

/// A config with one API whose API-scope document is `policies` (inline).
fn api_with(policies: &str, named_values: &str) -> String {
    let doc: String = policies.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "{named_values}apis:\n  - id: orders\n    path: orders\n    serviceUrl: http://127.0.0.1:9/v1\n    policies: |\n{doc}    operations:\n      - {{ id: get, method: GET, urlTemplate: \"/{{id}}\" }}\n"
    )
}

/// The error lines of a failed validation (stderr), after checking it failed.
fn errors(yaml: &str) -> Vec<String> {
    let (status, out, err) = validate(yaml);
    assert!(
        !status.success(),
        "validate accepted it; stdout: {out}\nstderr: {err}"
    );
    err.lines()
        .filter(|l| l.contains(": "))
        .map(str::to_string)
        .collect()
}

fn one_matching<'a>(errs: &'a [String], needle: &str) -> &'a str {
    let hits: Vec<&String> = errs.iter().filter(|e| e.contains(needle)).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one error containing {needle:?}, got: {errs:#?}"
    );
    hits[0]
}

#[test]
fn a_valid_document_passes() {
    let doc = r#"<policies>
  <inbound>
    <base />
    <set-header name="X-Caller" exists-action="override">
      <value>@(context.Subscription?.Name ?? "anonymous")</value>
    </set-header>
    <rate-limit-by-key calls="10" renewal-period="60" counter-key="@(context.Request.IpAddress)" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;
    let (status, out, err) = validate(&api_with(doc, ""));
    assert!(status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn every_error_of_a_document_is_reported_with_scope_policy_and_line() {
    let doc = r#"<policies>
  <inbound>
    <base />
    <set-haeder name="X-A"><value>1</value></set-haeder>
    <set-header name="X-B" exists-action="override" exist-action="skip"><value>2</value></set-header>
    <rate-limit calls="10" renewal-period="60" counter-key="x" />
  </inbound>
  <outbound>
    <base />
    <frobnicate />
  </outbound>
</policies>"#;
    let errs = errors(&api_with(doc, ""));

    let e = one_matching(&errs, "set-haeder");
    assert!(e.starts_with("apis[0].policies"), "{e}");
    assert!(e.contains("<inbound>"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("unknown policy"), "{e}");

    let e = one_matching(&errs, "exist-action");
    assert!(e.contains("unknown attribute"), "{e}");
    assert!(e.contains("<set-header>"), "{e}");
    assert!(e.contains("line 5"), "{e}");

    // rate-limit (not by-key) has no counter-key.
    let e = one_matching(&errs, "counter-key");
    assert!(e.contains("<rate-limit>"), "{e}");
    assert!(e.contains("line 6"), "{e}");

    let e = one_matching(&errs, "frobnicate");
    assert!(e.contains("<outbound>"), "{e}");
    assert!(e.contains("line 10"), "{e}");
    assert!(e.contains("unknown policy"), "{e}");
}

#[test]
fn a_bad_expression_is_an_error_with_its_position() {
    // Positions are byte offsets in the attribute or element text.
    let missing_operand = r#"@(context.Request.Headers.GetValueOrDefault("X-A", "") + )"#;
    let unknown_member = r#"@(context.Request.Nope)"#;
    let doc = format!(
        r#"<policies>
  <inbound>
    <base />
    <set-header name="X-A" exists-action="override"><value>{missing_operand}</value></set-header>
    <set-header name="X-B" exists-action="override"><value>{unknown_member}</value></set-header>
    <choose>
      <when condition="@(context.Request.Method == )">
        <set-header name="X-C"><value>c</value></set-header>
      </when>
    </choose>
  </inbound>
</policies>"#
    );
    let errs = errors(&api_with(&doc, ""));

    let at = missing_operand.rfind(')').unwrap();
    let e = one_matching(&errs, "line 4");
    assert!(
        e.contains(&format!("at {at}:")),
        "expected position {at}: {e}"
    );
    assert!(e.contains("<set-header>"), "{e}");

    let at = unknown_member.find("Nope").unwrap();
    let e = one_matching(&errs, "line 5");
    assert!(
        e.contains(&format!("at {at}:")),
        "expected position {at}: {e}"
    );
    assert!(e.contains("Nope"), "{e}");

    let cond = "@(context.Request.Method == )";
    let at = cond.rfind(')').unwrap();
    let e = one_matching(&errs, "condition");
    assert!(
        e.contains(&format!("at {at}:")),
        "expected position {at}: {e}"
    );
}

#[test]
fn base_given_twice_is_an_error() {
    let doc = "<policies>\n  <inbound>\n    <base />\n    <base />\n  </inbound>\n</policies>";
    let errs = errors(&api_with(doc, ""));
    let e = one_matching(&errs, "<base/>");
    assert!(e.contains("twice"), "{e}");
    assert!(e.contains("apis[0]"), "{e}");
    assert!(e.contains("inbound"), "{e}");
}

#[test]
fn an_unknown_named_value_is_an_error() {
    let doc = r#"<policies>
  <inbound>
    <base />
    <set-header name="X-Audience" exists-action="override"><value>{{backend-audience}}</value></set-header>
    <set-header name="X-Other" exists-action="override"><value>{{no-such-value}}</value></set-header>
  </inbound>
</policies>"#;
    let nv = "namedValues:\n  - { name: backend-audience, value: \"api://orders\" }\n";
    let errs = errors(&api_with(doc, nv));
    let e = one_matching(&errs, "no-such-value");
    assert!(e.starts_with("apis[0].policies"), "{e}");
    assert!(e.contains("unknown named value"), "{e}");
    assert!(
        !errs.iter().any(|e| e.contains("backend-audience")),
        "{errs:#?}"
    );
    // Defined, it loads.
    let nv = format!("{nv}  - {{ name: no-such-value, value: \"x\" }}\n");
    let (status, out, err) = validate(&api_with(doc, &nv));
    assert!(status.success(), "stdout: {out}\nstderr: {err}");
}

const SECRET: &str = "S3cr3t-Value-7f9a1c";

fn secret_named_values() -> String {
    format!(
        "namedValues:\n  - {{ name: partner-key, value: \"{SECRET}\", secret: true }}\n  - {{ name: public-id, value: \"orders-api\" }}\n"
    )
}

fn assert_secret_hidden(yaml: &str) {
    let (status, out, err) = validate(yaml);
    assert!(
        !status.success(),
        "the document was meant to fail; stderr: {err}"
    );
    let leaks: Vec<&str> = out
        .lines()
        .chain(err.lines())
        .filter(|l| l.contains(SECRET) || l.contains("S3cr3t"))
        .collect();
    assert!(
        leaks.is_empty(),
        "the secret named value appears in the output of `portico validate`:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn a_secret_named_value_is_not_shown_next_to_other_errors() {
    // The secret is used correctly; other policies of the document are broken.
    let doc = r#"<policies>
  <inbound>
    <base />
    <set-header name="X-Partner-Key" exists-action="override"><value>{{partner-key}}</value></set-header>
    <set-header name="X-Partner-Sig" exists-action="override"><value>@("{{partner-key}}".ToUpper( + )</value></set-header>
    <check-header name="X-Key" failed-check-httpcode="401" failed-check-error-message="no" bogus="{{partner-key}}"><value>{{partner-key}}</value></check-header>
    <frobnicate key="{{partner-key}}" />
  </inbound>
</policies>"#;
    assert_secret_hidden(&api_with(doc, &secret_named_values()));
}

#[test]
fn a_secret_named_value_is_not_shown_when_its_own_use_is_wrong() {
    // Each document puts the secret where the value itself is invalid; the error must
    // say what is wrong without quoting it.
    let cases = [
        // A partner API whose key is part of the URL; https is not supported yet.
        r#"<set-backend-service base-url="https://partner.example.com/{{partner-key}}/v1" />"#,
        // An allow-listed address kept as a secret, with a typo.
        r#"<ip-filter action="allow"><address>{{partner-key}}</address></ip-filter>"#,
        // A secret used as a header name.
        r#"<set-header name="X-{{partner-key}} " exists-action="override"><value>1</value></set-header>"#,
        // A secret pasted into an expression without quotes.
        r#"<set-header name="X-Sig" exists-action="override"><value>@({{partner-key}})</value></set-header>"#,
        // A secret in an attribute that takes a fixed set of words.
        r#"<set-header name="X-Sig" exists-action="{{partner-key}}"><value>1</value></set-header>"#,
    ];
    let mut leaks = Vec::new();
    for case in cases {
        let doc =
            format!("<policies>\n  <inbound>\n    <base />\n    {case}\n  </inbound>\n</policies>");
        let (status, out, err) = validate(&api_with(&doc, &secret_named_values()));
        assert!(!status.success(), "{case} was meant to fail; stderr: {err}");
        for l in out.lines().chain(err.lines()) {
            if l.contains("S3cr3t") {
                leaks.push(format!("policy {case}\n  -> {l}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "the secret named value appears in {} error line(s) of `portico validate`:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
