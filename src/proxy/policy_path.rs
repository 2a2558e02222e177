//! The request path when an operation has policies: the request becomes APIM's
//! `context`, the inbound section runs on it, the backend section (see
//! `backend_section`) forwards what the context then says (method, path, query,
//! headers, body, backend), the outbound section runs on the backend's response, and
//! any failure runs on-error before the answer goes out. Sections other than backend
//! run synchronously between awaits: no policy holds a core.

mod backend_section;
pub mod preflight;
mod redirect;

use super::forward::{self, Answer, Forwarded, ResponseHook, Rewrite};
use super::respond;
use super::subscription::{KeyPlace, Presented};
use super::{discard_body, read_request_body, Client, Next};
use crate::config::{Api, CompiledConfig, Operation, Settings};
use crate::http::{BodyKind, RequestHead, ResponseHead};
use crate::policy::builtin::limits;
use crate::policy::context::{self, Context, Deployment, Headers, LastError, Response};
use crate::policy::pipeline::{self, Flow, Pipeline, PolicyFailure, Section};
use backend_section::{forward_failure, Outcome, Pending, Runner};
use std::time::{Instant, SystemTime};

/// The most of a body the gateway buffers for policies.
const MAX_POLICY_BODY: u64 = 4 * 1024 * 1024;
/// The longest response buffered to be stored by cache-store (responses of unknown
/// length are not stored).
const MAX_CACHED_BODY: u64 = 4 * 1024 * 1024;

/// Everything about the matched request the policy path needs.
pub struct Matched<'a> {
    pub config: &'a CompiledConfig,
    pub api: &'a Api,
    pub operation: &'a Operation,
    pub suffix: &'a str,
    pub params: &'a [(&'a str, &'a str)],
    pub subscription: Option<Presented<'a>>,
    pub key_place: KeyPlace,
    pub pipeline: &'a Pipeline,
}

pub async fn run(
    client: &mut Client,
    head: &RequestHead,
    m: Matched<'_>,
    settings: &Settings,
    keep_alive: bool,
) -> Next {
    let mut cx = build_context(client, head, &m, settings);
    let head_only = head.method == "HEAD";
    // Policies that read the request body get it whole (bounded); it is then forwarded
    // from the context.
    let reads_body = m
        .pipeline
        .inbound
        .iter()
        .chain(&m.pipeline.backend)
        .any(|p| p.needs_body());
    let mut body_read = false;
    if reads_body && head.body != BodyKind::Empty {
        let limit = m
            .api
            .max_request_body
            .unwrap_or(MAX_POLICY_BODY)
            .min(MAX_POLICY_BODY);
        match read_request_body(client, head, settings, limit).await {
            Ok(body) => {
                cx.request.body = Some(body);
                body_read = true;
            }
            Err(Some(failure)) => {
                let mut out = Vec::with_capacity(256);
                respond::error_response(failure, false, &mut out);
                let _ = crate::io::Conn::send(&mut client.conn, &out).await;
                return Next::Close;
            }
            Err(None) => return Next::Close,
        }
    }

    match run_section(client, m.pipeline, Section::Inbound, &mut cx) {
        Flow::Continue => {}
        Flow::Respond => {
            let ka = keep_alive && (body_read || discard_body(client, head, settings).await);
            return answer_from_context(client, &mut cx, head_only, ka).await;
        }
        Flow::SkipToOutbound => {
            let ka = keep_alive && (body_read || discard_body(client, head, settings).await);
            return outbound_then_answer(client, m.pipeline, &mut cx, head_only, ka).await;
        }
        Flow::Error(failure) => {
            let ka = keep_alive && (body_read || discard_body(client, head, settings).await);
            return on_error(client, m.pipeline, &mut cx, failure, head_only, ka).await;
        }
    }
    if let Some(mock) = &m.operation.mock {
        let ka = keep_alive && (body_read || discard_body(client, head, settings).await);
        let mut headers = Vec::new();
        if let Some(ct) = &mock.content_type {
            headers.push(("Content-Type".to_string(), ct.clone()));
        }
        let mut answer = Answer {
            status: mock.status,
            reason: String::new(),
            headers,
            body: mock.body.clone(),
        };
        let core = client.core.clone();
        finish(&core, &mut cx, &mut answer, mock.body.len() as u64);
        return forward::send_answer(client, &answer, head_only, ka).await;
    }
    let runner = Runner::new(
        client, head, m.api, m.config, settings, keep_alive, body_read,
    );
    let Pending { exchanged, slots } = match runner.run(&m.pipeline.backend, &mut cx).await {
        Outcome::Forwarded(pending) => pending,
        Outcome::Respond { keep_alive } => {
            return answer_from_context(client, &mut cx, head_only, keep_alive).await
        }
        Outcome::Error {
            failure,
            keep_alive,
        } => return on_error(client, m.pipeline, &mut cx, failure, head_only, keep_alive).await,
        Outcome::Closed(next) => return next,
    };
    let core = client.core.clone();
    let mut hook = Outbound {
        pipeline: m.pipeline,
        cx: &mut cx,
        core: &core,
    };
    let delivered = forward::deliver(
        client,
        head,
        m.api,
        exchanged,
        settings,
        keep_alive,
        Some(&mut hook),
    )
    .await;
    // limit-concurrency slots around the forward-request end with its response.
    drop(slots);
    match delivered {
        Forwarded::Done(next) => next,
        Forwarded::Failed {
            failure,
            keep_alive,
        } => {
            let pf = forward_failure(failure);
            on_error(client, m.pipeline, &mut cx, pf, head_only, keep_alive).await
        }
    }
}

fn run_section(client: &Client, pipeline: &Pipeline, section: Section, cx: &mut Context) -> Flow {
    let policies = pipeline.section(section);
    if policies.is_empty() {
        return Flow::Continue;
    }
    let mut svc = client.core.services.borrow_mut();
    svc.now = Instant::now();
    pipeline::run(policies, section, cx, &mut svc)
}

/// Runs outbound on the response already in the context (a cache hit), then answers
/// with it, or runs on-error if outbound fails.
async fn outbound_then_answer(
    client: &mut Client,
    pipeline: &Pipeline,
    cx: &mut Context,
    head_only: bool,
    keep_alive: bool,
) -> Next {
    if let Flow::Error(failure) = run_section(client, pipeline, Section::Outbound, cx) {
        return on_error(client, pipeline, cx, failure, head_only, keep_alive).await;
    }
    answer_from_context(client, cx, head_only, keep_alive).await
}

/// Runs on-error with `failure` as `context.LastError`, then answers with what on-error
/// left in `context.response`, or with the failure's own status and message.
async fn on_error(
    client: &mut Client,
    pipeline: &Pipeline,
    cx: &mut Context,
    failure: PolicyFailure,
    head_only: bool,
    keep_alive: bool,
) -> Next {
    cx.last_error = Some(failure.error.clone());
    // In on-error, context.Response is the error response: policies there change it.
    cx.response = Some(error_response(&failure));
    if let Flow::Error(second) = run_section(client, pipeline, Section::OnError, cx) {
        // A failure inside on-error is not handled again.
        cx.response = Some(error_response(&second));
    }
    answer_from_context(client, cx, head_only, keep_alive).await
}

/// The response a policy failure gives unless on-error changes it.
pub(super) fn error_response(failure: &PolicyFailure) -> Response {
    let mut headers = Headers(vec![(
        "Content-Type".to_string(),
        "application/json".to_string(),
    )]);
    for (n, v) in &failure.headers {
        headers.append(n, v.clone());
    }
    Response {
        status: failure.status,
        reason: String::new(),
        headers,
        body: Some(respond::error_body(failure.status, &failure.message).into_bytes()),
    }
}

async fn answer_from_context(
    client: &mut Client,
    cx: &mut Context,
    head_only: bool,
    keep_alive: bool,
) -> Next {
    let resp = cx.response.take().unwrap_or(Response {
        status: 200,
        ..Response::default()
    });
    let mut answer = Answer {
        status: if resp.status == 0 { 200 } else { resp.status },
        reason: resp.reason,
        headers: resp.headers.0,
        body: resp.body.unwrap_or_default(),
    };
    let bytes = answer.body.len() as u64;
    let core = client.core.clone();
    finish(&core, cx, &mut answer, bytes);
    forward::send_answer(client, &answer, head_only, keep_alive).await
}

/// Last touches on any answer of the policy path: the response fields policies asked
/// for (cors, rate-limit counters) and the limit bookkeeping that needs the final
/// status (quota bandwidth, increment conditions that read the response).
fn finish(
    core: &crate::runtime::core::CoreState,
    cx: &mut Context,
    answer: &mut Answer,
    body_bytes: u64,
) {
    for (name, value) in &cx.response_headers.0 {
        if name.eq_ignore_ascii_case("vary") {
            match answer
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case("vary"))
            {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => answer.headers.push((name.clone(), value.clone())),
            }
        } else {
            answer
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            answer.headers.push((name.clone(), value.clone()));
        }
    }
    if !cx.after_response.is_empty() {
        cx.response = Some(Response {
            status: answer.status,
            reason: answer.reason.clone(),
            headers: Headers(answer.headers.clone()),
            body: None,
        });
        let mut svc = core.services.borrow_mut();
        svc.now = Instant::now();
        limits::after_response(cx, &mut svc, body_bytes);
    }
}

/// The outbound section, run when the backend's response head is in.
struct Outbound<'a> {
    pipeline: &'a Pipeline,
    cx: &'a mut Context,
    core: &'a std::rc::Rc<crate::runtime::core::CoreState>,
}

impl ResponseHook for Outbound<'_> {
    fn wants_body(&self, resp: &ResponseHead) -> bool {
        self.pipeline.outbound.iter().any(|p| p.needs_body())
            || (self.cx.cache_miss.is_some()
                && matches!(resp.body, BodyKind::Length(n) if n <= MAX_CACHED_BODY)
                && self
                    .pipeline
                    .outbound
                    .iter()
                    .any(|p| p.stores_response(resp.status)))
    }

    fn on_response(&mut self, resp: &ResponseHead, body: Option<Vec<u8>>) -> Option<Rewrite> {
        let declared = match resp.body {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        let response_headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| (h.name.to_string(), Headers::text(&h.value)))
            .collect();
        if self.pipeline.outbound.is_empty() {
            if self.cx.response_headers.0.is_empty() && self.cx.after_response.is_empty() {
                return None;
            }
            let mut answer = Answer {
                status: resp.status,
                reason: resp.reason.clone(),
                headers: response_headers,
                body: Vec::new(),
            };
            finish(self.core, self.cx, &mut answer, declared);
            return Some(Rewrite::Head(answer));
        }
        let buffered = body.is_some();
        self.cx.response = Some(Response {
            status: resp.status,
            reason: resp.reason.clone(),
            headers: Headers(response_headers),
            body,
        });
        let flow = {
            let mut svc = self.core.services.borrow_mut();
            svc.now = Instant::now();
            pipeline::run(
                &self.pipeline.outbound,
                Section::Outbound,
                self.cx,
                &mut svc,
            )
        };
        if let Flow::Error(failure) = flow {
            self.cx.last_error = Some(failure.error.clone());
            self.cx.response = Some(error_response(&failure));
            {
                let mut svc = self.core.services.borrow_mut();
                if let Flow::Error(second) =
                    pipeline::run(&self.pipeline.on_error, Section::OnError, self.cx, &mut svc)
                {
                    self.cx.response = Some(error_response(&second));
                }
            }
            let r = self
                .cx
                .response
                .take()
                .unwrap_or_else(|| error_response(&failure));
            let mut answer = Answer {
                status: r.status,
                reason: r.reason,
                headers: r.headers.0,
                body: r.body.unwrap_or_default(),
            };
            let bytes = answer.body.len() as u64;
            finish(self.core, self.cx, &mut answer, bytes);
            return Some(Rewrite::Full(answer));
        }
        let resp_now = self.cx.response.take()?;
        let whole = buffered || resp_now.body.is_some();
        let mut answer = Answer {
            status: resp_now.status,
            reason: resp_now.reason,
            headers: resp_now.headers.0,
            body: resp_now.body.unwrap_or_default(),
        };
        let bytes = if whole {
            answer.body.len() as u64
        } else {
            declared
        };
        finish(self.core, self.cx, &mut answer, bytes);
        // A body set or read by a policy goes out whole; otherwise the backend's body
        // streams behind the rewritten head.
        if whole {
            Some(Rewrite::Full(answer))
        } else {
            Some(Rewrite::Head(answer))
        }
    }
}

fn build_context(
    client: &Client,
    head: &RequestHead,
    m: &Matched<'_>,
    settings: &Settings,
) -> Context {
    let (host, port) = split_host(&head.host);
    let mut headers = Headers(
        head.headers
            .iter()
            .map(|h| (h.name.to_string(), Headers::text(&h.value)))
            .collect(),
    );
    if m.key_place.in_header {
        headers.remove(&m.api.key_header);
    }
    let mut query: Vec<(String, String)> = head
        .query()
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    if m.key_place.in_query {
        query.retain(|(k, _)| *k != m.api.key_query);
    }
    Context {
        request: context::Request {
            method: head.method.to_string(),
            scheme: "http".into(),
            host: host.to_string(),
            port,
            path: head.path().to_string(),
            query,
            headers,
            ip: Some(client.peer.ip()),
            matched_parameters: m
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: None,
        },
        forward: context::Forward {
            path: m.suffix.to_string(),
            backend: None,
        },
        deployment: Deployment {
            gateway_id: settings.gateway_id.clone(),
            api_id: m.api.id.clone(),
            api_name: m.api.name.clone(),
            api_path: m.api.path.clone(),
            operation_id: m.operation.id.clone(),
            product_id: m
                .subscription
                .as_ref()
                .and_then(|s| s.product.map(|p| p.id.clone())),
            subscription: m.subscription.as_ref().map(|s| context::Subscription {
                id: s.subscription.id.clone(),
                name: s.subscription.name.clone(),
                key: s.key.clone(),
            }),
        },
        last_error: None::<LastError>,
        now: Some(SystemTime::now()),
        ..Context::default()
    }
}

fn split_host(host: &str) -> (&str, u16) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            return (
                h,
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(80),
            );
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(80)),
        None => (host, 80),
    }
}
