//! CORS preflights, answered the way APIM answers them: only the `cors` policies in
//! scope are evaluated, before the subscription check (a browser's preflight carries
//! no key), and a preflight for an API that has no `OPTIONS` operation is matched by
//! the method it asks about (`Access-Control-Request-Method`). APIs rarely declare
//! `OPTIONS` operations; without this their browser clients would get 404 before any
//! `cors` policy ran.
//!
//! Nothing here reaches the backend. When no `cors` policy in scope answers (none
//! there, or none matched and each has `terminate-unmatched-request="false"`), the
//! request goes on as any other: through the normal path when an operation matched
//! `OPTIONS`, or to 404 when none did.

use super::{answer_from_context, build_context, Matched};
use crate::config::{CompiledConfig, RouteMatch, Settings};
use crate::http::{headers, RequestHead};
use crate::policy::builtin::Policy;
use crate::policy::pipeline::{self, Flow, Section};
use crate::proxy::subscription::KeyPlace;
use crate::proxy::{discard_body, Client, Next};
use std::time::Instant;

/// The method a CORS preflight asks about: `Some` for an `OPTIONS` request with both
/// `Origin` and `Access-Control-Request-Method`.
pub fn requested_method(head: &RequestHead) -> Option<&str> {
    if head.method != "OPTIONS" {
        return None;
    }
    headers::get(&head.headers, "Origin")?;
    let method = std::str::from_utf8(headers::get(
        &head.headers,
        "Access-Control-Request-Method",
    )?)
    .ok()?;
    let method = method.trim();
    (!method.is_empty()).then_some(method)
}

/// Answers the preflight `head` with the `cors` policies of the operation `route`
/// found (by the request's own method when an operation takes it, by the requested
/// method when none did). `None`: no `cors` policy answered; the caller goes on as
/// without this.
pub async fn answer(
    client: &mut Client,
    head: &RequestHead,
    config: &CompiledConfig,
    route: &RouteMatch<'_>,
    settings: &Settings,
    keep_alive: bool,
) -> Option<Next> {
    let RouteMatch::Found {
        api,
        operation,
        suffix,
        params,
    } = route
    else {
        return None;
    };
    // The pipeline without a product: a preflight carries no subscription key.
    let pipeline = config.pipelines.get(api.index, operation.index, None)?;
    let cors: Vec<&Policy> = pipeline
        .inbound
        .iter()
        .filter(|p| matches!(p, Policy::Cors(_)))
        .collect();
    if cors.is_empty() {
        return None;
    }
    let matched = Matched {
        config,
        api,
        operation,
        suffix,
        params,
        subscription: None,
        key_place: KeyPlace::default(),
        pipeline,
    };
    let mut cx = build_context(client, head, &matched, settings);
    let answered = {
        let mut svc = client.core.services.borrow_mut();
        svc.now = Instant::now();
        cors.iter().any(|policy| {
            pipeline::run(
                std::slice::from_ref(*policy),
                Section::Inbound,
                &mut cx,
                &mut svc,
            ) == Flow::Respond
        })
    };
    if !answered {
        return None;
    }
    let keep_alive = keep_alive && discard_body(client, head, settings).await;
    Some(answer_from_context(client, &mut cx, false, keep_alive).await)
}
