//! `limit-concurrency`: at most `max-count` requests with the same `key` run the
//! enclosed policies at once; one more is refused with 429 (APIM's behaviour), and
//! nothing waits.
//!
//! Counts are kept per core, in [`ConcurrencySlots`] (no locks, no atomics): on a
//! gateway with N cores up to N x `max-count` calls with one key may be in the enclosed
//! policies at once. A count is held by a [`Slot`], a guard that gives it back when
//! dropped, so it is released on every way out: success, a policy failure, a backend
//! error, a client that disconnects (the request's future is dropped). In the backend
//! section, where the proxy runs the policy, a slot around `forward-request` is held
//! until the backend's response has been relayed to the client. In other sections the
//! enclosed policies run without waiting, so the slot lasts only while they run.
//!
//! Counters are named by the policy's place, key text and max-count
//! ([`CompileCx::identity`]), so a reload that keeps the policy keeps counting the
//! calls still running under the old configuration.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::attrs::Attrs;
use super::headers::expression_failure;
use super::{compile_children, CompileCx, Policy};
use crate::policy::context::Context;
use crate::policy::expr::Template;
use crate::policy::pipeline::{self, Flow, PolicyFailure, Section};
use crate::policy::services::Services;
use crate::policy::xml::Element;

/// Longest key kept; longer keys are cut (they still count, under their first bytes).
const MAX_KEY_BYTES: usize = 512;
/// Distinct idle keys a policy may leave behind before they are swept.
const SWEEP_AT: usize = 1024;

#[derive(Debug)]
pub struct LimitConcurrency {
    identity: Arc<str>,
    key: Template,
    max_count: u32,
    children: Vec<Policy>,
}

impl LimitConcurrency {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let key_text = a.req("key")?;
        let key = Template::parse(key_text).map_err(|e| format!("key: {e}"))?;
        let max_text = a.req("max-count")?;
        let max_count = max_text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                format!("max-count must be a whole number of at least 1, not {max_text:?}")
            })?;
        a.finish()?;
        let children = compile_children(el, cx)?;
        Ok(LimitConcurrency {
            identity: cx.identity(&format!("{key_text}\u{0}{max_count}")).into(),
            key,
            max_count,
            children,
        })
    }

    /// The policies run while a slot is held.
    pub fn children(&self) -> &[Policy] {
        &self.children
    }

    /// Takes a slot for this request's key, or the 429 failure when all are taken.
    pub fn acquire(&self, cx: &Context, svc: &mut Services) -> Result<Slot, Box<PolicyFailure>> {
        let key = self
            .key
            .eval_str(cx)
            .map_err(|e| Box::new(expression_failure("limit-concurrency", e.message)))?;
        svc.tables
            .concurrency
            .acquire(&self.identity, cut(&key), self.max_count)
            .ok_or_else(|| {
                Box::new(PolicyFailure::new(
                    429,
                    "limit-concurrency",
                    "ConcurrencyLimitExceeded",
                    "Too many concurrent requests. Try again later.",
                ))
            })
    }

    /// Outside the backend section: hold a slot while the enclosed policies run.
    pub fn apply(&self, section: Section, cx: &mut Context, svc: &mut Services) -> Flow {
        let _slot = match self.acquire(cx, svc) {
            Ok(slot) => slot,
            Err(failure) => return Flow::Error(*failure),
        };
        pipeline::run(&self.children, section, cx, svc)
    }

    pub fn needs_body(&self) -> bool {
        let reads = match &self.key {
            Template::Literal(_) => false,
            Template::Expr(e) => e.reads_request_body() || e.reads_response_body(),
        };
        reads || self.children.iter().any(Policy::needs_body)
    }
}

/// Cuts a key at a character boundary at most [`MAX_KEY_BYTES`] long.
fn cut(key: &str) -> &str {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let mut end = MAX_KEY_BYTES;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

/// One core's counts of calls inside `limit-concurrency` policies, by policy and key.
#[derive(Debug, Default)]
pub struct ConcurrencySlots {
    by_policy: HashMap<Arc<str>, Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    by_key: HashMap<String, Rc<Cell<u32>>>,
    sweep_at: usize,
}

/// A call's place in a count; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    count: Rc<Cell<u32>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.set(self.count.get().saturating_sub(1));
    }
}

impl ConcurrencySlots {
    /// A slot under `policy` and `key` if fewer than `max` are held.
    pub fn acquire(&mut self, policy: &Arc<str>, key: &str, max: u32) -> Option<Slot> {
        let counters = match self.by_policy.get_mut(policy) {
            Some(c) => c,
            None => self.by_policy.entry(policy.clone()).or_default(),
        };
        let count = match counters.by_key.get(key) {
            Some(c) => c.clone(),
            None => {
                counters.sweep();
                let c = Rc::new(Cell::new(0));
                counters.by_key.insert(key.to_string(), c.clone());
                c
            }
        };
        if count.get() >= max {
            return None;
        }
        count.set(count.get() + 1);
        Some(Slot { count })
    }

    /// Calls currently holding a slot under `policy` and `key`.
    pub fn held(&self, policy: &str, key: &str) -> u32 {
        self.by_policy
            .get(policy)
            .and_then(|c| c.by_key.get(key))
            .map_or(0, |c| c.get())
    }

    /// Keys tracked in all (idle ones included until swept).
    pub fn keys(&self) -> usize {
        self.by_policy.values().map(|c| c.by_key.len()).sum()
    }
}

impl Counters {
    /// Forgets idle keys once enough have piled up: memory follows the calls in flight,
    /// at amortised constant cost.
    fn sweep(&mut self) {
        if self.by_key.len() < self.sweep_at.max(SWEEP_AT) {
            return;
        }
        self.by_key.retain(|_, c| c.get() > 0);
        self.sweep_at = 2 * self.by_key.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::Scope;
    use crate::policy::xml;
    use crate::ratelimit::{CoreShard, NodeLimiter};
    use std::time::Instant;

    fn services() -> Services {
        Services {
            limits: CoreShard::new(NodeLimiter::new(1, 100), 0),
            now: Instant::now(),
            openid: Default::default(),
            tables: Default::default(),
        }
    }

    fn compile_in(doc: &str, section: Section) -> Result<LimitConcurrency, String> {
        let cx = CompileCx {
            section,
            scope: Scope::Api,
            scope_id: "api",
            index: 1,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        };
        LimitConcurrency::compile(&xml::parse(doc).unwrap(), &cx)
    }

    fn compile(doc: &str) -> Result<LimitConcurrency, String> {
        compile_in(doc, Section::Backend)
    }

    fn cx_for(caller: &str) -> Context {
        let mut cx = Context::default();
        cx.request.headers.set("X-Caller", caller.to_string());
        cx
    }

    const BY_CALLER: &str = r#"<limit-concurrency key="@(context.Request.Headers.GetValueOrDefault("X-Caller", ""))" max-count="2"><forward-request/></limit-concurrency>"#;

    #[test]
    fn at_most_max_count_slots_per_key_and_dropping_frees_them() {
        let p = compile(BY_CALLER).unwrap();
        let mut svc = services();
        let a1 = p.acquire(&cx_for("a"), &mut svc).unwrap();
        let a2 = p.acquire(&cx_for("a"), &mut svc).unwrap();
        let refused = p.acquire(&cx_for("a"), &mut svc).unwrap_err();
        assert_eq!(refused.status, 429);
        assert_eq!(refused.error.source, "limit-concurrency");
        assert_eq!(refused.error.reason, "ConcurrencyLimitExceeded");
        // Another key has its own count.
        let b1 = p.acquire(&cx_for("b"), &mut svc).unwrap();
        drop(a1);
        let a3 = p.acquire(&cx_for("a"), &mut svc).unwrap();
        assert_eq!(svc.tables.concurrency.held(&p.identity, "a"), 2);
        drop((a2, a3, b1));
        assert_eq!(svc.tables.concurrency.held(&p.identity, "a"), 0);
        assert_eq!(svc.tables.concurrency.held(&p.identity, "b"), 0);
    }

    #[test]
    fn outside_the_backend_the_slot_lasts_while_the_children_run() {
        let p = compile_in(
            r#"<limit-concurrency key="k" max-count="1"><set-variable name="v" value="ran"/></limit-concurrency>"#,
            Section::Inbound,
        )
        .unwrap();
        let mut svc = services();
        let mut cx = Context::default();
        for _ in 0..3 {
            assert_eq!(p.apply(Section::Inbound, &mut cx, &mut svc), Flow::Continue);
        }
        assert!(cx.variables.contains_key("v"));
        assert_eq!(svc.tables.concurrency.held(&p.identity, "k"), 0);
        // Held elsewhere (by a backend call in flight): refused here.
        let _held = p.acquire(&cx, &mut svc).unwrap();
        match p.apply(Section::Inbound, &mut cx, &mut svc) {
            Flow::Error(f) => assert_eq!(f.status, 429),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn idle_keys_are_swept() {
        let p = compile(BY_CALLER).unwrap();
        let mut svc = services();
        let held = p.acquire(&cx_for("busy"), &mut svc).unwrap();
        for i in 0..10 * SWEEP_AT {
            drop(p.acquire(&cx_for(&format!("k{i}")), &mut svc).unwrap());
        }
        assert!(svc.tables.concurrency.keys() <= SWEEP_AT + 1);
        assert_eq!(svc.tables.concurrency.held(&p.identity, "busy"), 1);
        drop(held);
        // A huge key is cut, not refused.
        let long = "x".repeat(10 * MAX_KEY_BYTES);
        let _slot = p.acquire(&cx_for(&long), &mut svc).unwrap();
        assert_eq!(
            svc.tables
                .concurrency
                .held(&p.identity, &long[..MAX_KEY_BYTES]),
            1
        );
    }

    #[test]
    fn a_key_expression_that_fails_is_a_500() {
        let p = compile(
            r#"<limit-concurrency key="@(context.Variables["missing"].ToString())" max-count="1"><forward-request/></limit-concurrency>"#,
        )
        .unwrap();
        let f = p.acquire(&Context::default(), &mut services()).unwrap_err();
        assert_eq!(f.status, 500);
    }

    #[test]
    fn compile_errors() {
        let err = |doc: &str| compile(doc).unwrap_err();
        assert_eq!(
            err(r#"<limit-concurrency max-count="1"><forward-request/></limit-concurrency>"#),
            "attribute key is required"
        );
        assert_eq!(
            err(r#"<limit-concurrency key="k"><forward-request/></limit-concurrency>"#),
            "attribute max-count is required"
        );
        for n in ["0", "-1", "x", "@(2)"] {
            assert!(
                err(&format!(
                    r#"<limit-concurrency key="k" max-count="{n}"><forward-request/></limit-concurrency>"#
                ))
                .contains("max-count must be"),
                "{n}"
            );
        }
        assert_eq!(
            err(
                r#"<limit-concurrency key="k" max-count="1" timeout="3"><forward-request/></limit-concurrency>"#
            ),
            "unknown attribute timeout"
        );
        assert!(
            err(r#"<limit-concurrency key="@(context.Nope)" max-count="1"/>"#).contains("key:")
        );
    }
}
