//! `retry`: runs its child policies (usually `forward-request`) once, then again while
//! `condition` is true, at most `count` more times, waiting between attempts as APIM
//! does: a fixed `interval`; `interval + (n - 1) * delta` with `delta`; and with
//! `max-interval` too, `interval + (2^(n-1) - 1) * random(0.8, 1.2) * delta` capped at
//! `max-interval` (n = 1 for the first retry). `first-fast-retry` makes the first retry
//! immediate.
//!
//! Waiting needs a timer, so the proxy runs retry (see `src/proxy/backend_section.rs`),
//! and retry is allowed only in the backend section. What this file owns is the
//! compiled form and the arithmetic; it never sleeps. Portico evaluates `condition` after
//! a failed forward-request too (connection refused, timeout), with `context.Response`
//! holding the 502/504 error response, so `@(context.Response.StatusCode >= 500)` also
//! retries unreachable backends.

use std::time::Duration;

use super::access::only_in;
use super::attrs::Attrs;
use super::headers::expression_failure;
use super::{compile_children, CompileCx, Policy};
use crate::policy::context::Context;
use crate::policy::expr::{Expr, Template, Type};
use crate::policy::pipeline::{self, Flow, PolicyFailure, Section};
use crate::policy::services::Services;
use crate::policy::xml::Element;

/// APIM's bounds on `count`.
const MAX_COUNT: u32 = 50;
/// Longest wait between attempts that can be configured, in seconds.
const MAX_WAIT_SECS: f64 = 3600.0;

#[derive(Debug)]
pub struct Retry {
    condition: Condition,
    count: u32,
    interval: Duration,
    max_interval: Option<Duration>,
    delta: Option<Duration>,
    first_fast_retry: bool,
    children: Vec<Policy>,
}

#[derive(Debug)]
enum Condition {
    Literal(bool),
    Expr(Expr),
}

impl Retry {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Backend])?;
        let mut a = Attrs::new(el);
        let condition =
            match Template::parse(a.req("condition")?).map_err(|e| format!("condition: {e}"))? {
                Template::Literal(t) => match t.trim() {
                    t if t.eq_ignore_ascii_case("true") => Condition::Literal(true),
                    t if t.eq_ignore_ascii_case("false") => Condition::Literal(false),
                    other => {
                        return Err(format!(
                            "condition must be true, false or a boolean expression, not {other:?}"
                        ))
                    }
                },
                Template::Expr(e) => {
                    if !matches!(e.ty(), Type::Bool | Type::Object) {
                        return Err(format!(
                            "condition must be a boolean expression, not {}",
                            e.ty()
                        ));
                    }
                    if e.reads_response_body() || e.reads_request_body() {
                        return Err(
                            "condition cannot read a message body (only status and headers)".into(),
                        );
                    }
                    Condition::Expr(e)
                }
            };
        let count = literal(&mut a, "count")?
            .ok_or("attribute count is required")?
            .parse::<u32>()
            .ok()
            .filter(|c| *c <= MAX_COUNT)
            .ok_or_else(|| format!("count must be a whole number from 0 to {MAX_COUNT}"))?;
        let interval = seconds(&mut a, "interval")?.ok_or("attribute interval is required")?;
        let max_interval = seconds(&mut a, "max-interval")?;
        let delta = seconds(&mut a, "delta")?;
        let first_fast_retry = match literal(&mut a, "first-fast-retry")? {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(format!("first-fast-retry must be true or false, not {v:?}")),
        };
        a.finish()?;
        if max_interval.is_some_and(|m| m < interval) {
            return Err("max-interval must not be less than interval".into());
        }
        let children = compile_children(el, cx)?;
        if children.is_empty() {
            return Err("<retry> needs at least one child policy".into());
        }
        Ok(Retry {
            condition,
            count,
            interval,
            max_interval,
            delta,
            first_fast_retry,
            children,
        })
    }

    /// The policies run on each attempt.
    pub fn children(&self) -> &[Policy] {
        &self.children
    }

    /// Retries allowed after the first attempt.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether to run the children again, judged on the context the last attempt left.
    pub fn wants_another(&self, cx: &Context) -> Result<bool, Box<PolicyFailure>> {
        match &self.condition {
            Condition::Literal(b) => Ok(*b),
            Condition::Expr(e) => e
                .eval_bool(cx)
                .map_err(|e| Box::new(expression_failure("retry", e.message))),
        }
    }

    /// The wait before retry number `n` (1 for the first). `jitter` is a random number
    /// in [0, 1), used only by the exponential form.
    pub fn delay(&self, n: u32, jitter: f64) -> Duration {
        if n == 0 || (n == 1 && self.first_fast_retry) {
            return Duration::ZERO;
        }
        let interval = self.interval.as_secs_f64();
        let secs = match (self.delta, self.max_interval) {
            (None, _) => interval,
            (Some(delta), None) => interval + f64::from(n - 1) * delta.as_secs_f64(),
            (Some(delta), Some(_)) => {
                let factor = 2f64.powi(n.saturating_sub(1).min(62) as i32) - 1.0;
                let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
                interval + factor * spread * delta.as_secs_f64()
            }
        };
        let cap = self.max_interval.map_or(MAX_WAIT_SECS, |m| m.as_secs_f64());
        Duration::from_secs_f64(secs.clamp(0.0, cap.min(MAX_WAIT_SECS)))
    }

    /// Without the proxy (never reached in practice: retry compiles only in the backend
    /// section, which the proxy runs itself) the children run once.
    pub fn apply(&self, section: Section, cx: &mut Context, svc: &mut Services) -> Flow {
        pipeline::run(&self.children, section, cx, svc)
    }
}

fn literal<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<&'a str>, String> {
    match a.opt(name).map(str::trim) {
        Some(v) if v.starts_with('@') => Err(format!(
            "{name}: policy expressions are not supported here (only a literal value)"
        )),
        other => Ok(other),
    }
}

/// A literal number of seconds (fractions allowed), at most an hour.
fn seconds<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<Duration>, String> {
    let Some(v) = literal(a, name)? else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(s) if (0.0..=MAX_WAIT_SECS).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(format!(
            "{name} must be a number of seconds from 0 to {MAX_WAIT_SECS}, not {v:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::Response;
    use crate::policy::document::Scope;
    use crate::policy::xml;

    fn compile_in(doc: &str, section: Section) -> Result<Retry, String> {
        let cx = CompileCx {
            section,
            scope: Scope::Api,
            scope_id: "api",
            index: 0,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        };
        Retry::compile(&xml::parse(doc).unwrap(), &cx)
    }

    fn compile(doc: &str) -> Result<Retry, String> {
        compile_in(doc, Section::Backend)
    }

    fn retry(attrs: &str) -> Retry {
        compile(&format!(
            r#"<retry condition="true" {attrs}><forward-request/></retry>"#
        ))
        .unwrap()
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn fixed_linear_and_exponential_waits() {
        let fixed = retry(r#"count="3" interval="2""#);
        assert_eq!(
            (1..=3)
                .map(|n| secs(fixed.delay(n, 0.5)))
                .collect::<Vec<_>>(),
            [2.0, 2.0, 2.0]
        );
        let linear = retry(r#"count="3" interval="1" delta="2""#);
        assert_eq!(
            (1..=3)
                .map(|n| secs(linear.delay(n, 0.5)))
                .collect::<Vec<_>>(),
            [1.0, 3.0, 5.0]
        );
        // APIM's example: interval and delta 10 s, max 100 s: about 10, 20, 40, 80, 100.
        let exp = retry(r#"count="6" interval="10" delta="10" max-interval="100""#);
        assert_eq!(
            (1..=6).map(|n| secs(exp.delay(n, 0.5))).collect::<Vec<_>>(),
            [10.0, 20.0, 40.0, 80.0, 100.0, 100.0]
        );
        // The random factor stays within 0.8..1.2 of delta.
        assert_eq!(secs(exp.delay(3, 0.0)), 10.0 + 3.0 * 8.0);
        assert!((secs(exp.delay(3, 0.999_999)) - (10.0 + 3.0 * 12.0)).abs() < 1e-3);
        let fast = retry(r#"count="3" interval="5" first-fast-retry="true""#);
        assert_eq!(secs(fast.delay(1, 0.5)), 0.0);
        assert_eq!(secs(fast.delay(2, 0.5)), 5.0);
        // No overflow far out.
        assert_eq!(secs(exp.delay(50, 1.0)), 100.0);
        let uncapped = retry(r#"count="50" interval="1" delta="3600""#);
        assert_eq!(secs(uncapped.delay(50, 0.5)), MAX_WAIT_SECS);
    }

    #[test]
    fn the_condition_is_judged_on_the_last_response() {
        let r = compile(
            r#"<retry condition="@(context.Response.StatusCode >= 500)" count="2" interval="0"><forward-request/></retry>"#,
        )
        .unwrap();
        assert_eq!(r.count(), 2);
        assert_eq!(r.children().len(), 1);
        let mut cx = Context {
            response: Some(Response {
                status: 503,
                ..Response::default()
            }),
            ..Context::default()
        };
        assert_eq!(r.wants_another(&cx), Ok(true));
        cx.response.as_mut().unwrap().status = 200;
        assert_eq!(r.wants_another(&cx), Ok(false));
        // No response at all: the expression throws, which is a failure of retry.
        cx.response = None;
        let f = r.wants_another(&cx).unwrap_err();
        assert_eq!(f.error.source, "retry");
        assert_eq!(f.status, 500);
        assert_eq!(
            retry(r#"count="1" interval="0""#).wants_another(&cx),
            Ok(true)
        );
    }

    #[test]
    fn compile_errors() {
        let err = |doc: &str| compile(doc).unwrap_err();
        let fr = "<forward-request/>";
        assert_eq!(
            err(&format!(r#"<retry count="1" interval="1">{fr}</retry>"#)),
            "attribute condition is required"
        );
        assert!(err(&format!(
            r#"<retry condition="maybe" count="1" interval="1">{fr}</retry>"#
        ))
        .contains("boolean expression"));
        assert!(err(&format!(
            r#"<retry condition="@(context.Response.StatusCode)" count="1" interval="1">{fr}</retry>"#
        ))
        .contains("boolean expression, not int"));
        assert!(err(&format!(
            r#"<retry condition="@(context.Response.Body.As<string>().Length > 0)" count="1" interval="1">{fr}</retry>"#
        ))
        .contains("message body"));
        for count in ["51", "-1", "x", "@(3)"] {
            assert!(
                err(&format!(
                    r#"<retry condition="true" count="{count}" interval="1">{fr}</retry>"#
                ))
                .contains("count"),
                "{count}"
            );
        }
        assert!(err(&format!(
            r#"<retry condition="true" count="1">{fr}</retry>"#
        ))
        .contains("interval is required"));
        assert!(err(&format!(
            r#"<retry condition="true" count="1" interval="-2">{fr}</retry>"#
        ))
        .contains("interval must be"));
        assert!(err(&format!(
            r#"<retry condition="true" count="1" interval="5" max-interval="2">{fr}</retry>"#
        ))
        .contains("max-interval"));
        assert!(err(&format!(
            r#"<retry condition="true" count="1" interval="1" first-fast-retry="yes">{fr}</retry>"#
        ))
        .contains("true or false"));
        assert_eq!(
            err(&format!(
                r#"<retry condition="true" count="1" interval="1" backoff="2">{fr}</retry>"#
            )),
            "unknown attribute backoff"
        );
        assert!(err(r#"<retry condition="true" count="1" interval="1"/>"#)
            .contains("at least one child"));
        assert!(
            err(r#"<retry condition="true" count="1" interval="1"><nope/></retry>"#)
                .contains("unknown policy <nope>")
        );
        assert!(compile_in(
            &format!(r#"<retry condition="true" count="1" interval="1">{fr}</retry>"#),
            Section::Inbound
        )
        .unwrap_err()
        .contains("not allowed in inbound"));
    }
}
