//! APIM's call limits: `rate-limit` and `rate-limit-by-key` (sliding window, 429 with
//! `Retry-After`) and `quota` and `quota-by-key` (fixed window, calls and/or bandwidth,
//! 403). The counting is [`crate::ratelimit`]'s; here the policy elements are compiled
//! into [`LimitSpec`]s and a request is turned into a key, a count and an answer.
//!
//! * `rate-limit` and `quota` count per subscription and, as in APIM, do nothing for a
//!   call made without one.
//! * The `-by-key` forms evaluate `counter-key`. A false `increment-condition` counts
//!   nothing but still refuses a call once the limit is spent. A condition that reads
//!   `context.Response` cannot be known in inbound: the call is counted now and
//!   refunded after the response if the condition is false there (see
//!   [`after_response`]), so concurrent calls can never overshoot.
//! * Counters are named by the policy's place ([`CompileCx::identity`]), its
//!   `counter-key` text and its numbers: a reload that keeps them keeps the counts.
//!   Unlike APIM, two policies with the same key in different scopes do not share a
//!   counter.
//! * Remaining and total calls headers go in [`Context::response_headers`] (so they are
//!   on whatever response the client gets); `Retry-After` goes on the refusal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::access::only_in;
use super::attrs::Attrs;
use super::headers::expression_failed;
use super::CompileCx;
use crate::policy::context::{Context, Value};
use crate::policy::expr::{Expr, Template, Type};
use crate::policy::pipeline::{Flow, PolicyFailure, Section};
use crate::policy::services::Services;
use crate::policy::xml::Element;
use crate::ratelimit::{Decision, LimitSpec, PolicyIdentity};

/// APIM's longest `renewal-period` for rate limits.
const MAX_RATE_PERIOD_SECS: u64 = 300;

/// A quota with `renewal-period="0"` never renews: a window longer than any uptime.
const NEVER_RENEWS: Duration = Duration::from_millis(i64::MAX as u64 / 8);

/// Work left for when the response is known (see [`after_response`]).
#[derive(Debug, Clone)]
pub struct AfterResponse {
    spec: Arc<LimitSpec>,
    key: String,
    /// Calls counted at request time under a condition that reads the response.
    counted: u64,
    admitted_at: Instant,
    condition: Option<Arc<Expr>>,
    /// Charge the response's size to the spec's bandwidth.
    bandwidth: bool,
}

/// Settles what limit policies left in `cx.after_response`, once the response is final
/// (after outbound or on-error, `cx.response` set): calls counted under an
/// `increment-condition` that is false on the response are refunded (a condition that
/// fails to evaluate keeps them counted), and `response_bytes` (the response body sent
/// to the client) is charged to bandwidth quotas whose condition holds. `svc.now` should
/// be the current time.
pub fn after_response(cx: &Context, svc: &mut Services, response_bytes: u64) {
    for pending in &cx.after_response {
        let holds = match &pending.condition {
            None => true,
            Some(cond) => cond.eval_bool(cx).unwrap_or(true),
        };
        if !holds {
            svc.limits.refund(
                &pending.spec,
                &pending.key,
                pending.counted,
                pending.admitted_at,
                svc.now,
            );
        } else if pending.bandwidth {
            svc.limits
                .record_bandwidth(&pending.spec, &pending.key, response_bytes, svc.now);
        }
    }
}

/// Where the counter key comes from.
#[derive(Debug)]
enum Key {
    /// The subscription id; the policy does nothing without a subscription.
    Subscription,
    Expr(Template),
}

#[derive(Debug)]
enum Condition {
    Always,
    /// Evaluated at request time.
    Now(Expr),
    /// Reads `context.Response`: counted now, settled by [`after_response`].
    OnResponse(Arc<Expr>),
}

#[derive(Debug)]
enum Count {
    Fixed(u64),
    Expr(Expr),
}

/// `rate-limit` and `rate-limit-by-key`.
#[derive(Debug)]
pub struct RateLimit {
    source: &'static str,
    spec: Arc<LimitSpec>,
    calls: u64,
    key: Key,
    condition: Condition,
    count: Count,
    retry_after_header: String,
    retry_after_variable: Option<String>,
    remaining_header: Option<String>,
    remaining_variable: Option<String>,
    total_header: Option<String>,
}

/// `quota` and `quota-by-key`.
#[derive(Debug)]
pub struct Quota {
    source: &'static str,
    spec: Arc<LimitSpec>,
    never_renews: bool,
    key: Key,
    condition: Condition,
}

impl RateLimit {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound])?;
        let by_key = el.name == "rate-limit-by-key";
        let mut a = Attrs::new(el);
        let calls = literal_number(&mut a, "calls")?.ok_or("attribute calls is required")?;
        if calls == 0 {
            return Err("calls must be at least 1".into());
        }
        let period = literal_number(&mut a, "renewal-period")?
            .ok_or("attribute renewal-period is required")?;
        if !(1..=MAX_RATE_PERIOD_SECS).contains(&period) {
            return Err(format!(
                "renewal-period must be 1 to {MAX_RATE_PERIOD_SECS} seconds, not {period}"
            ));
        }
        let (key, key_text, condition, count) = if by_key {
            let (key, text) = counter_key(&mut a)?;
            let count = match a.template("increment-count")? {
                None => Count::Fixed(1),
                Some(Template::Literal(t)) => {
                    Count::Fixed(t.trim().parse().map_err(|_| {
                        format!("increment-count must be a whole number, not {t:?}")
                    })?)
                }
                Some(Template::Expr(e)) => match e.ty() {
                    Type::Int | Type::Object => Count::Expr(e),
                    other => return Err(format!("increment-count must be a number, not {other}")),
                },
            };
            (key, text, condition(&mut a)?, count)
        } else {
            (
                Key::Subscription,
                String::new(),
                Condition::Always,
                Count::Fixed(1),
            )
        };
        let retry_after_header =
            header_name(&mut a, "retry-after-header-name")?.unwrap_or_else(|| "Retry-After".into());
        let retry_after_variable = a.opt("retry-after-variable-name").map(str::to_string);
        let remaining_header = header_name(&mut a, "remaining-calls-header-name")?;
        let remaining_variable = a.opt("remaining-calls-variable-name").map(str::to_string);
        let total_header = header_name(&mut a, "total-calls-header-name")?;
        a.finish()?;
        refuse_children(el)?;
        let identity = cx.identity(&el.name);
        let spec = LimitSpec::rate(
            &PolicyIdentity {
                scope: &identity,
                position: "",
                counter_key: &key_text,
            },
            calls,
            Duration::from_secs(period),
        )
        .map_err(|e| e.to_string())?;
        Ok(RateLimit {
            source: if by_key {
                "rate-limit-by-key"
            } else {
                "rate-limit"
            },
            spec: Arc::new(spec),
            calls,
            key,
            condition,
            count,
            retry_after_header,
            retry_after_variable,
            remaining_header,
            remaining_variable,
            total_header,
        })
    }

    pub fn apply(&self, cx: &mut Context, svc: &mut Services) -> Flow {
        let key = match eval_key(&self.key, cx) {
            Ok(Some(k)) => k,
            Ok(None) => return Flow::Continue,
            Err(e) => return expression_failed(self.source, e),
        };
        let count = match &self.count {
            Count::Fixed(n) => *n,
            Count::Expr(e) => match e.eval(cx) {
                Ok(Value::Int(n)) if n >= 0 => n as u64,
                Ok(Value::Str(s)) if s.trim().parse::<u64>().is_ok() => {
                    s.trim().parse().unwrap_or(0)
                }
                Ok(other) => {
                    return expression_failed(
                        self.source,
                        format!("increment-count must be a whole number, not {other:?}"),
                    )
                }
                Err(e) => return expression_failed(self.source, e.message),
            },
        };
        let (count, deferred) = match eval_condition(&self.condition, cx) {
            Ok(Counted::Yes(deferred)) => (count, deferred),
            Ok(Counted::No) => (0, None),
            Err(e) => return expression_failed(self.source, e),
        };
        let decision = svc.limits.check(&self.spec, &key, count, svc.now);
        let remaining = decision.remaining().calls.unwrap_or(0);
        if let Some(name) = &self.remaining_variable {
            cx.variables.insert(
                name.clone(),
                Value::Int(i64::try_from(remaining).unwrap_or(i64::MAX)),
            );
        }
        if let Some(name) = &self.remaining_header {
            cx.response_headers.set(name, remaining.to_string());
        }
        if let Some(name) = &self.total_header {
            cx.response_headers.set(name, self.calls.to_string());
        }
        match decision {
            Decision::Admitted { .. } => {
                if let Some(condition) = deferred {
                    if count > 0 {
                        cx.after_response.push(AfterResponse {
                            spec: self.spec.clone(),
                            key,
                            counted: count,
                            admitted_at: svc.now,
                            condition: Some(condition),
                            bandwidth: false,
                        });
                    }
                }
                Flow::Continue
            }
            Decision::Limited { .. } => {
                let secs = decision.retry_after_secs().unwrap_or(1);
                if let Some(name) = &self.retry_after_variable {
                    cx.variables.insert(
                        name.clone(),
                        Value::Int(i64::try_from(secs).unwrap_or(i64::MAX)),
                    );
                }
                let mut failure = PolicyFailure::new(
                    429,
                    self.source,
                    "RateLimitExceeded",
                    format!("Rate limit is exceeded. Try again in {secs} seconds."),
                );
                failure
                    .headers
                    .push((self.retry_after_header.clone(), secs.to_string()));
                Flow::Error(failure)
            }
        }
    }

    pub fn needs_body(&self) -> bool {
        key_reads_body(&self.key)
            || condition_reads_body(&self.condition)
            || matches!(&self.count, Count::Expr(e) if reads_body(e))
    }
}

impl Quota {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound])?;
        let by_key = el.name == "quota-by-key";
        let mut a = Attrs::new(el);
        let calls = literal_number(&mut a, "calls")?;
        let bandwidth_kb = literal_number(&mut a, "bandwidth")?;
        if calls.is_none() && bandwidth_kb.is_none() {
            return Err("give calls, bandwidth or both".into());
        }
        if calls == Some(0) || bandwidth_kb == Some(0) {
            return Err("calls and bandwidth must be at least 1".into());
        }
        let bandwidth = match bandwidth_kb {
            None => None,
            Some(kb) => Some(kb.checked_mul(1024).ok_or("bandwidth is too large")?),
        };
        let period = literal_number(&mut a, "renewal-period")?
            .ok_or("attribute renewal-period is required")?;
        let never_renews = period == 0;
        let period = if never_renews {
            NEVER_RENEWS
        } else {
            Duration::from_secs(period)
        };
        let (key, key_text, condition, first_period_start) = if by_key {
            let (key, text) = counter_key(&mut a)?;
            let condition = condition(&mut a)?;
            let start = match literal(&mut a, "first-period-start")? {
                None => crate::ratelimit::APIM_FIRST_PERIOD_START_UNIX_MS,
                Some(t) => parse_utc(t).ok_or_else(|| {
                    format!("first-period-start must be yyyy-MM-ddTHH:mm:ssZ, not {t:?}")
                })?,
            };
            (key, text, condition, start)
        } else {
            (
                Key::Subscription,
                String::new(),
                Condition::Always,
                crate::ratelimit::APIM_FIRST_PERIOD_START_UNIX_MS,
            )
        };
        a.finish()?;
        refuse_children(el)?;
        let identity = cx.identity(&el.name);
        let spec = LimitSpec::quota_from(
            &PolicyIdentity {
                scope: &identity,
                position: "",
                counter_key: &key_text,
            },
            calls,
            bandwidth,
            period,
            first_period_start,
        )
        .map_err(|e| e.to_string())?;
        Ok(Quota {
            source: if by_key { "quota-by-key" } else { "quota" },
            spec: Arc::new(spec),
            never_renews,
            key,
            condition,
        })
    }

    pub fn apply(&self, cx: &mut Context, svc: &mut Services) -> Flow {
        let key = match eval_key(&self.key, cx) {
            Ok(Some(k)) => k,
            Ok(None) => return Flow::Continue,
            Err(e) => return expression_failed(self.source, e),
        };
        let (count, deferred) = match eval_condition(&self.condition, cx) {
            Ok(Counted::Yes(deferred)) => (1, deferred),
            Ok(Counted::No) => (0, None),
            Err(e) => return expression_failed(self.source, e),
        };
        let decision = svc.limits.check(&self.spec, &key, count, svc.now);
        match decision {
            Decision::Admitted { .. } => {
                let bandwidth = self.spec.bandwidth_bytes().is_some();
                if count > 0 && (bandwidth || deferred.is_some()) {
                    cx.after_response.push(AfterResponse {
                        spec: self.spec.clone(),
                        key,
                        counted: if self.spec.calls().is_some() {
                            count
                        } else {
                            0
                        },
                        admitted_at: svc.now,
                        condition: deferred,
                        bandwidth,
                    });
                }
                Flow::Continue
            }
            Decision::Limited { remaining, .. } => {
                let what = if remaining.bytes == Some(0) && remaining.calls != Some(0) {
                    "bandwidth"
                } else {
                    "call volume"
                };
                if self.never_renews {
                    return Flow::Error(PolicyFailure::new(
                        403,
                        self.source,
                        "QuotaExceeded",
                        format!("Out of {what} quota."),
                    ));
                }
                let secs = decision.retry_after_secs().unwrap_or(1);
                let mut failure = PolicyFailure::new(
                    403,
                    self.source,
                    "QuotaExceeded",
                    format!(
                        "Out of {what} quota. Quota will be replenished in {}.",
                        timespan(secs)
                    ),
                );
                failure
                    .headers
                    .push(("Retry-After".into(), secs.to_string()));
                Flow::Error(failure)
            }
        }
    }

    pub fn needs_body(&self) -> bool {
        key_reads_body(&self.key) || condition_reads_body(&self.condition)
    }
}

/// A number attribute; policy expressions are refused (the counters are laid out when
/// the config compiles).
fn literal_number<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<u64>, String> {
    match literal(a, name)? {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be a whole number, not {v:?}")),
    }
}

fn literal<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<&'a str>, String> {
    match a.opt(name) {
        Some(v) if v.trim_start().starts_with('@') => Err(format!(
            "{name}: policy expressions are not supported here (only a literal value)"
        )),
        other => Ok(other),
    }
}

fn header_name<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<String>, String> {
    match literal(a, name)? {
        None => Ok(None),
        Some(h) if !h.is_empty() && h.bytes().all(super::attrs::is_token_byte) => {
            Ok(Some(h.to_string()))
        }
        Some(h) => Err(format!("{name}: {h:?} is not a valid header name")),
    }
}

fn counter_key(a: &mut Attrs<'_>) -> Result<(Key, String), String> {
    let text = a
        .opt("counter-key")
        .ok_or("attribute counter-key is required")?;
    let template = Template::parse(text).map_err(|e| format!("counter-key: {e}"))?;
    Ok((Key::Expr(template), text.to_string()))
}

fn condition(a: &mut Attrs<'_>) -> Result<Condition, String> {
    let Some(text) = a.opt("increment-condition") else {
        return Ok(Condition::Always);
    };
    match Template::parse(text).map_err(|e| format!("increment-condition: {e}"))? {
        Template::Literal(t) if t.trim().eq_ignore_ascii_case("true") => Ok(Condition::Always),
        Template::Literal(t) if t.trim().eq_ignore_ascii_case("false") => Ok(Condition::Now(
            Expr::parse("false").map_err(|e| format!("increment-condition: {e}"))?,
        )),
        Template::Literal(t) => Err(format!(
            "increment-condition must be a boolean expression @(...), not {t:?}"
        )),
        Template::Expr(e) => {
            if e.ty() != Type::Bool && e.ty() != Type::Object {
                return Err(format!(
                    "increment-condition must be a boolean expression, not {}",
                    e.ty()
                ));
            }
            // The response is not known in inbound. (A textual test: the expression
            // engine does not report which parts of the context an expression reads.)
            if text.contains("context.Response") {
                Ok(Condition::OnResponse(Arc::new(e)))
            } else {
                Ok(Condition::Now(e))
            }
        }
    }
}

/// APIM's per-API and per-operation limits inside a product policy.
fn refuse_children(el: &Element) -> Result<(), String> {
    match el.elements().next() {
        Some(child) if child.name == "api" || child.name == "operation" => Err(format!(
            "<{}> limits inside <{}> are not supported: put a <{}> in that API's or operation's own policy",
            child.name, el.name, el.name
        )),
        Some(child) => Err(format!("unexpected <{}>", child.name)),
        None => Ok(()),
    }
}

/// The counter key, or `None` when the policy does not apply (no subscription). The
/// error is an expression's.
fn eval_key(key: &Key, cx: &Context) -> Result<Option<String>, String> {
    match key {
        Key::Subscription => Ok(cx.deployment.subscription.as_ref().map(|s| s.id.clone())),
        Key::Expr(t) => t.eval_string(cx).map(Some).map_err(|e| e.message),
    }
}

/// What `increment-condition` makes of a call.
enum Counted {
    No,
    /// Counted now; with the condition to settle after the response, if any.
    Yes(Option<Arc<Expr>>),
}

fn eval_condition(condition: &Condition, cx: &Context) -> Result<Counted, String> {
    match condition {
        Condition::Always => Ok(Counted::Yes(None)),
        Condition::OnResponse(e) => Ok(Counted::Yes(Some(e.clone()))),
        Condition::Now(e) => match e.eval_bool(cx) {
            Ok(true) => Ok(Counted::Yes(None)),
            Ok(false) => Ok(Counted::No),
            Err(err) => Err(err.message),
        },
    }
}

fn reads_body(e: &Expr) -> bool {
    e.reads_request_body() || e.reads_response_body()
}

fn key_reads_body(key: &Key) -> bool {
    matches!(key, Key::Expr(Template::Expr(e)) if reads_body(e))
}

fn condition_reads_body(c: &Condition) -> bool {
    match c {
        Condition::Always => false,
        Condition::Now(e) => reads_body(e),
        Condition::OnResponse(e) => reads_body(e),
    }
}

/// Seconds as .NET prints a `TimeSpan`: `hh:mm:ss`, with `d.` in front from one day.
fn timespan(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}.{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ` as Unix milliseconds.
fn parse_utc(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(&b[r]).ok()?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if y < 1
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), proleptic Gregorian.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::{Response, Subscription};
    use crate::policy::document::Scope;
    use crate::policy::xml;
    use crate::ratelimit::{CoreShard, NodeLimiter};

    fn services() -> Services {
        Services {
            limits: CoreShard::new(NodeLimiter::new(1, 10_000), 0),
            now: Instant::now(),
            openid: Default::default(),
            tables: Default::default(),
        }
    }

    fn cx_at(index: usize) -> CompileCx<'static> {
        CompileCx {
            section: Section::Inbound,
            scope: Scope::Api,
            scope_id: "echo",
            index,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        }
    }

    fn rate(doc: &str) -> Result<RateLimit, String> {
        RateLimit::compile(&xml::parse(doc).unwrap(), &cx_at(0))
    }

    fn quota(doc: &str) -> Result<Quota, String> {
        Quota::compile(&xml::parse(doc).unwrap(), &cx_at(1))
    }

    fn subscribed(id: &str) -> Context {
        let mut cx = Context::default();
        cx.deployment.subscription = Some(Subscription {
            id: id.into(),
            name: id.into(),
            key: "k".into(),
        });
        cx
    }

    fn failure(flow: Flow) -> PolicyFailure {
        match flow {
            Flow::Error(f) => f,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn rate_limit_admits_exactly_calls_then_429() {
        let p = rate(
            r#"<rate-limit calls="5" renewal-period="60" remaining-calls-header-name="X-Remaining"
                 remaining-calls-variable-name="left" total-calls-header-name="X-Total"
                 retry-after-variable-name="wait"/>"#,
        )
        .unwrap();
        let mut svc = services();
        let mut admitted = 0;
        let mut refused = Vec::new();
        for i in 0..10 {
            let mut cx = subscribed("sub-1");
            match p.apply(&mut cx, &mut svc) {
                Flow::Continue => {
                    admitted += 1;
                    assert_eq!(cx.variables.get("left"), Some(&Value::Int(4 - i)));
                    assert_eq!(
                        cx.response_headers.get("X-Remaining"),
                        Some((4 - i).to_string())
                    );
                    assert_eq!(cx.response_headers.get("X-Total").as_deref(), Some("5"));
                }
                flow => refused.push((failure(flow), cx)),
            }
        }
        assert_eq!(admitted, 5);
        assert_eq!(refused.len(), 5);
        for (f, cx) in refused {
            assert_eq!(f.status, 429);
            assert_eq!(f.error.source, "rate-limit");
            assert_eq!(f.error.reason, "RateLimitExceeded");
            let (name, secs) = &f.headers[0];
            assert_eq!(name, "Retry-After");
            let secs: i64 = secs.parse().unwrap();
            // The sliding window keeps one bucket (1/40 of the period) more than the period.
            assert!((1..=62).contains(&secs), "{secs}");
            assert_eq!(
                f.message,
                format!("Rate limit is exceeded. Try again in {secs} seconds.")
            );
            assert_eq!(cx.variables.get("wait"), Some(&Value::Int(secs)));
            assert_eq!(cx.response_headers.get("X-Remaining").as_deref(), Some("0"));
        }
        // Another subscription has its own counter.
        assert_eq!(p.apply(&mut subscribed("sub-2"), &mut svc), Flow::Continue);
        // Without a subscription the policy does not apply.
        for _ in 0..10 {
            assert_eq!(p.apply(&mut Context::default(), &mut svc), Flow::Continue);
        }
        // A later window admits again.
        svc.now += Duration::from_secs(62);
        assert_eq!(p.apply(&mut subscribed("sub-1"), &mut svc), Flow::Continue);
    }

    #[test]
    fn rate_limit_by_key_keys_are_independent() {
        let p = rate(
            r#"<rate-limit-by-key calls="3" renewal-period="10" counter-key="@(context.Request.Headers.GetValueOrDefault("X-Client", "anon"))" retry-after-header-name="X-Retry"/>"#,
        )
        .unwrap();
        let mut svc = services();
        let call = |client: &str, svc: &mut Services| {
            let mut cx = Context::default();
            cx.request.headers.set("X-Client", client.into());
            p.apply(&mut cx, svc)
        };
        for _ in 0..3 {
            assert_eq!(call("a", &mut svc), Flow::Continue);
        }
        let f = failure(call("a", &mut svc));
        assert_eq!(f.status, 429);
        assert_eq!(f.error.source, "rate-limit-by-key");
        assert_eq!(f.headers[0].0, "X-Retry");
        for _ in 0..3 {
            assert_eq!(call("b", &mut svc), Flow::Continue);
        }
        assert_eq!(failure(call("b", &mut svc)).status, 429);
        // No subscription needed for by-key.
        assert_eq!(p.apply(&mut Context::default(), &mut svc), Flow::Continue);
    }

    #[test]
    fn increment_condition_false_does_not_count() {
        let p = rate(
            r#"<rate-limit-by-key calls="2" renewal-period="30" counter-key="k" increment-condition="@(context.Request.Method == "POST")"/>"#,
        )
        .unwrap();
        let mut svc = services();
        let call = |method: &str, svc: &mut Services| {
            let mut cx = Context::default();
            cx.request.method = method.into();
            p.apply(&mut cx, svc)
        };
        for _ in 0..20 {
            assert_eq!(call("GET", &mut svc), Flow::Continue);
        }
        assert_eq!(call("POST", &mut svc), Flow::Continue);
        assert_eq!(call("POST", &mut svc), Flow::Continue);
        assert_eq!(failure(call("POST", &mut svc)).status, 429);
        // Once spent, an uncounted call is refused too (as in APIM).
        assert_eq!(failure(call("GET", &mut svc)).status, 429);
    }

    #[test]
    fn increment_count_and_its_expression() {
        let p = rate(r#"<rate-limit-by-key calls="10" renewal-period="30" counter-key="k" increment-count="4"/>"#).unwrap();
        let mut svc = services();
        assert_eq!(p.apply(&mut Context::default(), &mut svc), Flow::Continue);
        assert_eq!(p.apply(&mut Context::default(), &mut svc), Flow::Continue);
        assert_eq!(
            failure(p.apply(&mut Context::default(), &mut svc)).status,
            429
        );

        let p = rate(r#"<rate-limit-by-key calls="10" renewal-period="30" counter-key="k2" increment-count="@(3 + 2)" remaining-calls-variable-name="r"/>"#).unwrap();
        let mut cx = Context::default();
        assert_eq!(p.apply(&mut cx, &mut svc), Flow::Continue);
        assert_eq!(cx.variables.get("r"), Some(&Value::Int(5)));
    }

    #[test]
    fn condition_on_the_response_is_settled_afterwards() {
        let p = rate(
            r#"<rate-limit-by-key calls="2" renewal-period="60" counter-key="k" increment-condition="@(context.Response.StatusCode == 200)"/>"#,
        )
        .unwrap();
        let mut svc = services();
        // Failed calls are refunded once their response is known: they never use up the limit.
        for _ in 0..5 {
            let mut cx = Context::default();
            assert_eq!(p.apply(&mut cx, &mut svc), Flow::Continue);
            assert_eq!(cx.after_response.len(), 1);
            cx.response = Some(Response {
                status: 500,
                ..Response::default()
            });
            after_response(&cx, &mut svc, 0);
        }
        for _ in 0..2 {
            let mut cx = Context::default();
            assert_eq!(p.apply(&mut cx, &mut svc), Flow::Continue);
            cx.response = Some(Response {
                status: 200,
                ..Response::default()
            });
            after_response(&cx, &mut svc, 0);
        }
        assert_eq!(
            failure(p.apply(&mut Context::default(), &mut svc)).status,
            429
        );
    }

    #[test]
    fn rate_limit_compile_errors() {
        let err = |d: &str| rate(d).unwrap_err();
        assert_eq!(
            err(r#"<rate-limit renewal-period="60"/>"#),
            "attribute calls is required"
        );
        assert_eq!(
            err(r#"<rate-limit calls="5"/>"#),
            "attribute renewal-period is required"
        );
        assert!(err(r#"<rate-limit calls="five" renewal-period="60"/>"#).contains("whole number"));
        assert!(err(r#"<rate-limit calls="0" renewal-period="60"/>"#).contains("at least 1"));
        assert!(err(r#"<rate-limit calls="5" renewal-period="301"/>"#).contains("1 to 300"));
        assert!(err(r#"<rate-limit calls="5" renewal-period="0"/>"#).contains("1 to 300"));
        assert_eq!(
            err(r#"<rate-limit calls="5" renewal-period="60" counter-key="x"/>"#),
            "unknown attribute counter-key"
        );
        assert_eq!(
            err(r#"<rate-limit calls="5" renewal-period="60" burst="2"/>"#),
            "unknown attribute burst"
        );
        assert!(err(r#"<rate-limit calls="5" renewal-period="60"><api name="x" calls="1" renewal-period="60"/></rate-limit>"#)
            .contains("not supported"));
        assert!(err(
            r#"<rate-limit calls="5" renewal-period="60" remaining-calls-header-name="bad name"/>"#
        )
        .contains("not a valid header name"));
        assert_eq!(
            err(r#"<rate-limit-by-key calls="5" renewal-period="60"/>"#),
            "attribute counter-key is required"
        );
        assert!(
            err(r#"<rate-limit-by-key calls="@(5)" renewal-period="60" counter-key="k"/>"#)
                .contains("expressions are not supported")
        );
        assert!(err(r#"<rate-limit-by-key calls="5" renewal-period="60" counter-key="k" increment-condition="yes"/>"#)
            .contains("boolean expression"));
        assert!(err(r#"<rate-limit-by-key calls="5" renewal-period="60" counter-key="k" increment-condition="@("a")"/>"#)
            .contains("boolean expression"));
        assert!(err(r#"<rate-limit-by-key calls="5" renewal-period="60" counter-key="k" increment-count="-1"/>"#)
            .contains("whole number"));
        let outbound = CompileCx {
            section: Section::Outbound,
            ..cx_at(0)
        };
        assert!(RateLimit::compile(
            &xml::parse(r#"<rate-limit calls="5" renewal-period="60"/>"#).unwrap(),
            &outbound
        )
        .unwrap_err()
        .contains("not allowed in outbound"));
    }

    #[test]
    fn counters_are_named_by_place_and_numbers() {
        let a = RateLimit::compile(
            &xml::parse(r#"<rate-limit calls="5" renewal-period="60"/>"#).unwrap(),
            &cx_at(0),
        )
        .unwrap();
        let again = RateLimit::compile(
            &xml::parse(r#"<rate-limit calls="5" renewal-period="60"/>"#).unwrap(),
            &cx_at(0),
        )
        .unwrap();
        let moved = RateLimit::compile(
            &xml::parse(r#"<rate-limit calls="5" renewal-period="60"/>"#).unwrap(),
            &cx_at(3),
        )
        .unwrap();
        let changed = RateLimit::compile(
            &xml::parse(r#"<rate-limit calls="6" renewal-period="60"/>"#).unwrap(),
            &cx_at(0),
        )
        .unwrap();
        assert_eq!(a.spec.id(), again.spec.id());
        assert_ne!(a.spec.id(), moved.spec.id());
        assert_ne!(a.spec.id(), changed.spec.id());
    }

    #[test]
    fn quota_calls_then_403() {
        let p = quota(r#"<quota calls="3" renewal-period="3600"/>"#).unwrap();
        let mut svc = services();
        for _ in 0..3 {
            assert_eq!(p.apply(&mut subscribed("s"), &mut svc), Flow::Continue);
        }
        let f = failure(p.apply(&mut subscribed("s"), &mut svc));
        assert_eq!(f.status, 403);
        assert_eq!(f.error.source, "quota");
        assert_eq!(f.error.reason, "QuotaExceeded");
        let secs: u64 = f.headers[0].1.parse().unwrap();
        assert_eq!(f.headers[0].0, "Retry-After");
        assert!((1..=3600).contains(&secs));
        assert_eq!(
            f.message,
            format!(
                "Out of call volume quota. Quota will be replenished in {}.",
                timespan(secs)
            )
        );
        assert_eq!(p.apply(&mut Context::default(), &mut svc), Flow::Continue);
    }

    #[test]
    fn quota_bandwidth_is_charged_after_the_response() {
        let p = quota(r#"<quota-by-key bandwidth="2" renewal-period="0" counter-key="@(context.Request.Method)"/>"#).unwrap();
        let mut svc = services();
        let mut cx = Context::default();
        cx.request.method = "GET".into();
        assert_eq!(p.apply(&mut cx, &mut svc), Flow::Continue);
        assert_eq!(cx.after_response.len(), 1);
        after_response(&cx, &mut svc, 3000);
        // 2 KB spent: the next call is refused, with no renewal to wait for.
        let mut cx = Context::default();
        cx.request.method = "GET".into();
        let f = failure(p.apply(&mut cx, &mut svc));
        assert_eq!(f.status, 403);
        assert_eq!(f.error.source, "quota-by-key");
        assert_eq!(f.message, "Out of bandwidth quota.");
        assert!(f.headers.is_empty());
        // Another key is untouched.
        let mut cx = Context::default();
        cx.request.method = "POST".into();
        assert_eq!(p.apply(&mut cx, &mut svc), Flow::Continue);
    }

    #[test]
    fn quota_by_key_condition_and_first_period_start() {
        let p = quota(
            r#"<quota-by-key calls="1" renewal-period="86400" counter-key="k" first-period-start="2024-01-01T06:00:00Z" increment-condition="@(context.Request.Method != "HEAD")"/>"#,
        )
        .unwrap();
        assert_eq!(p.spec.first_period_start_unix_ms(), 1_704_088_800_000);
        let mut svc = services();
        let call = |m: &str, svc: &mut Services| {
            let mut cx = Context::default();
            cx.request.method = m.into();
            p.apply(&mut cx, svc)
        };
        assert_eq!(call("HEAD", &mut svc), Flow::Continue);
        assert_eq!(call("GET", &mut svc), Flow::Continue);
        let f = failure(call("GET", &mut svc));
        assert!(
            f.message
                .starts_with("Out of call volume quota. Quota will be replenished in "),
            "{}",
            f.message
        );
    }

    #[test]
    fn quota_compile_errors() {
        let err = |d: &str| quota(d).unwrap_err();
        assert_eq!(
            err(r#"<quota renewal-period="60"/>"#),
            "give calls, bandwidth or both"
        );
        assert_eq!(
            err(r#"<quota calls="5"/>"#),
            "attribute renewal-period is required"
        );
        assert!(err(r#"<quota calls="x" renewal-period="60"/>"#).contains("whole number"));
        assert_eq!(
            err(r#"<quota calls="5" renewal-period="60" counter-key="k"/>"#),
            "unknown attribute counter-key"
        );
        assert!(
            err(r#"<quota calls="5" renewal-period="60"><api id="a" calls="1"/></quota>"#)
                .contains("not supported")
        );
        assert!(err(r#"<quota-by-key calls="5" renewal-period="60" counter-key="k" first-period-start="2024-13-01T00:00:00Z"/>"#)
            .contains("first-period-start"));
        assert!(err(r#"<quota-by-key calls="5" renewal-period="60" counter-key="k" first-period-start="yesterday"/>"#)
            .contains("first-period-start"));
        assert_eq!(
            err(r#"<quota-by-key calls="5" renewal-period="60"/>"#),
            "attribute counter-key is required"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(timespan(59), "00:00:59");
        assert_eq!(timespan(3661), "01:01:01");
        assert_eq!(timespan(90_061), "1.01:01:01");
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_utc("0001-01-01T00:00:00Z"),
            Some(crate::ratelimit::APIM_FIRST_PERIOD_START_UNIX_MS)
        );
        assert_eq!(parse_utc("2024-02-29T23:59:59Z"), Some(1_709_251_199_000));
        assert_eq!(parse_utc("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_utc("2024-01-01 00:00:00Z"), None);
    }
}
