//! The backend section of a policy pipeline, run by the proxy because some of its
//! policies wait: `forward-request` (sending, and following redirects), `retry` (running
//! its children again after a pause on a glommio timer) and `limit-concurrency` (holding
//! a slot while its children run). `choose` is walked here so that those may sit in its
//! branches; every other policy runs as in the other sections, synchronously.
//!
//! A forward-request leaves the backend's response pending, its body unread, and its
//! status and headers in `context.Response` (filled in only when a later policy or a
//! retry condition may read them): a retry drops it (closing that backend
//! connection) before the next attempt, and when the section ends the caller delivers it
//! through the outbound section. A section that ends with no response pending forwards
//! the request once, as a plain `<forward-request/>` would.
//!
//! The client's body is read at most once: buffered in `context.Request.Body` before
//! inbound when a policy may send the request more than once (retry, follow-redirects,
//! buffer-request-body; see `Policy::needs_body`), otherwise streamed by the first
//! forward-request.

use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::time::Instant;

use super::error_response;
use super::redirect::{self, Origin, MAX_REDIRECTS};
use crate::config::{Api, CompiledConfig, Settings};
use crate::http::{BodyKind, RequestHead, ResponseHead};
use crate::policy::builtin::{ForwardRequest, LimitConcurrency, Policy, Retry, Slot};
use crate::policy::context::{Context, Headers, Response};
use crate::policy::pipeline::{Flow, PolicyFailure, Section};
use crate::proxy::forward::{self, Exchanged, Forwarded, Plan};
use crate::proxy::respond::Failure;
use crate::proxy::rewrite;
use crate::proxy::{discard_body, Client, Next};

/// How the backend section ended.
pub(super) enum Outcome {
    /// A backend response waits to be delivered through outbound.
    Forwarded(Pending),
    /// Answer with `context.Response` (return-response in the backend section).
    Respond { keep_alive: bool },
    /// Run on-error with this failure.
    Error {
        failure: PolicyFailure,
        keep_alive: bool,
    },
    /// The client is gone or has its answer.
    Closed(Next),
}

/// A backend response not yet delivered, and the concurrency slots held until it is.
pub(super) struct Pending {
    pub exchanged: Exchanged,
    pub slots: Vec<Slot>,
}

/// Runs one request's backend section.
pub(super) struct Runner<'r> {
    client: &'r mut Client,
    head: &'r RequestHead,
    api: &'r Api,
    config: &'r CompiledConfig,
    settings: &'r Settings,
    keep_alive: bool,
    body: ClientBody,
    /// False once a failed forward left the client's body half read.
    conn_ok: bool,
    /// Responses made pending so far (limit-concurrency tells whether its children
    /// forwarded).
    forwards: u64,
    pending: Option<Pending>,
    /// The pending response is not in `context.Response` yet: it is put there only
    /// when a policy or a retry condition may read it (most requests never do).
    response_unseen: bool,
}

/// Where the client's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientBody {
    /// On the connection still (or there is none).
    Unread,
    /// Read: into `context.Request.Body`, or dropped for a body a policy set.
    Consumed,
    /// Streamed to a backend.
    Streamed,
}

/// What running some policies came to.
enum Step {
    Continue,
    Respond,
    Error(PolicyFailure),
    Closed(Next),
}

type StepFuture<'s> = Pin<Box<dyn Future<Output = Step> + 's>>;

impl<'r> Runner<'r> {
    /// `body_read`: the client's body is already in `context.Request.Body`.
    pub fn new(
        client: &'r mut Client,
        head: &'r RequestHead,
        api: &'r Api,
        config: &'r CompiledConfig,
        settings: &'r Settings,
        keep_alive: bool,
        body_read: bool,
    ) -> Self {
        Runner {
            client,
            head,
            api,
            config,
            settings,
            keep_alive,
            body: if body_read {
                ClientBody::Consumed
            } else {
                ClientBody::Unread
            },
            conn_ok: true,
            forwards: 0,
            pending: None,
            response_unseen: false,
        }
    }

    pub async fn run(mut self, policies: &[Policy], cx: &mut Context) -> Outcome {
        let mut step = self.run_list(policies, cx).await;
        if matches!(step, Step::Continue) && self.pending.is_none() {
            step = self.forward(None, cx).await;
        }
        match step {
            Step::Continue => match self.pending.take() {
                Some(pending) => Outcome::Forwarded(pending),
                None => Outcome::Closed(Next::Close),
            },
            Step::Respond => Outcome::Respond {
                keep_alive: self.settle().await,
            },
            Step::Error(failure) => Outcome::Error {
                failure,
                keep_alive: self.settle().await,
            },
            Step::Closed(next) => Outcome::Closed(next),
        }
    }

    /// Whether the connection can serve another request after a local answer: the
    /// client's body must be off the connection.
    async fn settle(&mut self) -> bool {
        self.pending = None;
        if !self.keep_alive || !self.conn_ok {
            return false;
        }
        match self.body {
            ClientBody::Unread => discard_body(self.client, self.head, self.settings).await,
            ClientBody::Consumed | ClientBody::Streamed => true,
        }
    }

    fn run_list<'s>(&'s mut self, policies: &'s [Policy], cx: &'s mut Context) -> StepFuture<'s> {
        Box::pin(async move {
            for policy in policies {
                if !matches!(policy, Policy::ForwardRequest(_)) {
                    self.show_response(cx);
                }
                let step = match policy {
                    Policy::ForwardRequest(f) => self.forward(Some(f), cx).await,
                    Policy::Retry(r) => self.retry(r, cx).await,
                    Policy::LimitConcurrency(l) => self.limit(l, cx).await,
                    Policy::Choose(c) => match c.select(cx) {
                        Ok(branch) => self.run_list(branch, cx).await,
                        Err(failed) => step_of(Flow::Error(*failed)),
                    },
                    other => {
                        let mut svc = self.client.core.services.borrow_mut();
                        svc.now = Instant::now();
                        step_of(other.apply(Section::Backend, cx, &mut svc))
                    }
                };
                if !matches!(step, Step::Continue) {
                    return step;
                }
            }
            Step::Continue
        })
    }

    async fn retry(&mut self, retry: &Retry, cx: &mut Context) -> Step {
        let mut retries = 0;
        loop {
            let failed = match self.run_list(retry.children(), cx).await {
                Step::Continue => None,
                // The condition judges a failed call by its error response.
                Step::Error(f) if f.error.source == "forward-request" => {
                    cx.response = Some(error_response(&f));
                    cx.last_error = Some(f.error.clone());
                    Some(f)
                }
                other => return other,
            };
            let again = if retries >= retry.count() {
                Ok(false)
            } else {
                self.show_response(cx);
                retry.wants_another(cx)
            };
            if failed.is_some() {
                cx.last_error = None;
            }
            match (again, failed) {
                (Ok(true), _) => {}
                (Ok(false), None) => return Step::Continue,
                (Ok(false), Some(f)) => return Step::Error(f),
                (Err(e), _) => return step_of(Flow::Error(*e)),
            }
            retries += 1;
            self.pending = None;
            let wait = retry.delay(retries, jitter());
            if !wait.is_zero() {
                glommio::timer::sleep(wait).await;
            }
        }
    }

    /// Puts the pending response's status and headers in `context.Response`.
    fn show_response(&mut self, cx: &mut Context) {
        if std::mem::take(&mut self.response_unseen) {
            if let Some(pending) = &self.pending {
                cx.response = Some(response_of(&pending.exchanged.resp));
            }
        }
    }

    async fn limit(&mut self, limit: &LimitConcurrency, cx: &mut Context) -> Step {
        let slot = {
            let mut svc = self.client.core.services.borrow_mut();
            match limit.acquire(cx, &mut svc) {
                Ok(slot) => slot,
                Err(refused) => return step_of(Flow::Error(*refused)),
            }
        };
        let before = self.forwards;
        let step = self.run_list(limit.children(), cx).await;
        if self.forwards != before {
            if let Some(pending) = &mut self.pending {
                // The call is not over until its response has been relayed.
                pending.slots.push(slot);
            }
        }
        step
    }

    /// forward-request (`None`: the implicit one): sends the request as the context
    /// says, follows redirects if asked, and leaves the response pending.
    async fn forward(&mut self, policy: Option<&ForwardRequest>, cx: &mut Context) -> Step {
        self.pending = None;
        let timeout = policy.and_then(|f| f.timeout).unwrap_or(self.api.timeout);
        let follow = policy.is_some_and(|f| f.follow_redirects);
        let (addr, authority, base_path) =
            match (&cx.forward.backend, self.config.backend_of(self.api)) {
                (Some(b), _) => (b.addr, b.authority.clone(), b.base_path.clone()),
                (None, Some(b)) => (b.addr, b.authority.clone(), b.base_path.clone()),
                (None, None) => {
                    return Step::Error(PolicyFailure::new(
                        500,
                        "forward-request",
                        "NoBackend",
                        "No backend service for this API",
                    ))
                }
            };
        let client_body = self.head.body != BodyKind::Empty;
        if client_body && cx.request.body.is_none() && self.body == ClientBody::Streamed {
            return Step::Error(PolicyFailure::new(
                500,
                "forward-request",
                "RequestBodyConsumed",
                "The request body was already sent to a backend and was not buffered",
            ));
        }
        if client_body && cx.request.body.is_some() && self.body == ClientBody::Unread {
            // A policy set the body: the client's goes nowhere, but must be read.
            if !discard_body(self.client, self.head, self.settings).await {
                return Step::Closed(Next::Close);
            }
            self.body = ClientBody::Consumed;
        }
        let mut origin = Origin {
            addr,
            authority,
            target: context_target(cx, &base_path),
        };
        let mut method = cx.request.method.clone();
        let mut send_body = true;
        let mut cross_origin = false;
        let mut redirects = 0;
        loop {
            let (body, framing) = match (send_body, cx.request.body.as_deref()) {
                (false, _) => (Some(&[][..]), BodyKind::Empty),
                (true, Some(b)) => (Some(b), BodyKind::Length(b.len() as u64)),
                (true, None) => (None, self.head.body),
            };
            let mut head_bytes = Vec::with_capacity(512);
            let out = OutHead {
                method: &method,
                origin: &origin,
                framing,
                cross_origin,
                body_dropped: !send_body,
            };
            write_head(&mut head_bytes, cx, self.head, &out);
            let mut plan = Plan {
                addr: origin.addr,
                head_bytes,
                body,
                timeout,
            };
            let streams = body.is_none() && client_body;
            let result = forward::exchange(
                self.client,
                self.head,
                self.api,
                &mut plan,
                self.settings,
                self.keep_alive,
            )
            .await;
            if streams {
                self.body = ClientBody::Streamed;
            }
            let exchanged = match result {
                Ok(exchanged) => exchanged,
                Err(Forwarded::Done(next)) => return Step::Closed(next),
                Err(Forwarded::Failed {
                    failure,
                    keep_alive,
                }) => {
                    if streams {
                        self.conn_ok &= keep_alive;
                    }
                    return Step::Error(forward_failure(failure));
                }
            };
            if follow && redirects < MAX_REDIRECTS {
                let location = header(&exchanged.resp, "location");
                if let Some(hop) =
                    redirect::next_hop(exchanged.resp.status, location, &origin, &method)
                {
                    // A streamed body cannot be sent again (it is buffered whenever
                    // follow-redirects is on, so this is only a guard).
                    if !streams || hop.drop_body {
                        drop(exchanged);
                        redirects += 1;
                        origin = hop.origin;
                        method = hop.method;
                        send_body &= !hop.drop_body;
                        cross_origin |= hop.cross_origin;
                        continue;
                    }
                }
            }
            self.response_unseen = true;
            self.pending = Some(Pending {
                exchanged,
                slots: Vec::new(),
            });
            self.forwards += 1;
            return Step::Continue;
        }
    }
}

/// The failure of a forward-request as on-error sees it.
pub(super) fn forward_failure(failure: Failure) -> PolicyFailure {
    let reason = match failure {
        Failure::GatewayTimeout(_) => "Timeout",
        _ => "BackendConnectionFailure",
    };
    PolicyFailure::new(
        failure.status(),
        "forward-request",
        reason,
        failure.message(),
    )
}

fn step_of(flow: Flow) -> Step {
    match flow {
        Flow::Continue => Step::Continue,
        // A cache hit only happens in inbound.
        Flow::Respond | Flow::SkipToOutbound => Step::Respond,
        Flow::Error(mut failure) => {
            if failure.error.section.is_empty() {
                failure.error.section = Section::Backend.name().to_string();
            }
            Step::Error(failure)
        }
    }
}

/// A random number in [0, 1) for retry's jitter (std's per-instance random keys).
fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn header<'a>(resp: &'a ResponseHead, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// `context.Response` from a backend's response head (the body is still unread).
fn response_of(resp: &ResponseHead) -> Response {
    Response {
        status: resp.status,
        reason: resp.reason.clone(),
        headers: Headers(
            resp.headers
                .iter()
                .map(|h| (h.name.to_string(), Headers::text(&h.value)))
                .collect(),
        ),
        body: None,
    }
}

/// The backend's base path, then the path and query as the policies left them.
fn context_target(cx: &Context, base_path: &str) -> String {
    let mut target = String::with_capacity(base_path.len() + cx.forward.path.len() + 32);
    target.push_str(base_path);
    target.push_str(&cx.forward.path);
    if target.is_empty() {
        target.push('/');
    }
    if !cx.request.query.is_empty() {
        target.push('?');
        for (i, (k, v)) in cx.request.query.iter().enumerate() {
            if i > 0 {
                target.push('&');
            }
            target.push_str(k);
            if !v.is_empty() {
                target.push('=');
                target.push_str(v);
            }
        }
    }
    target
}

/// What differs between the requests one forward-request sends (redirects).
struct OutHead<'a> {
    method: &'a str,
    origin: &'a Origin,
    framing: BodyKind,
    /// Another host than the first: `Authorization` stays behind.
    cross_origin: bool,
    /// The method became GET: the body and the fields describing it stay behind.
    body_dropped: bool,
}

/// The backend request head from the context: headers as the inbound policies left
/// them; framing and forwarding fields set by the gateway.
fn write_head(out: &mut Vec<u8>, cx: &Context, head: &RequestHead, o: &OutHead<'_>) {
    let named = crate::http::headers::connection_tokens(&head.headers);
    let outgoing = rewrite::Outgoing {
        method: o.method,
        target: &o.origin.target,
        authority: &o.origin.authority,
        client_host: &head.host,
        client_ip: cx.request.ip,
        connection_tokens: &named,
        drop_header: o.cross_origin.then_some("authorization"),
        body: o.framing,
        upgrade: head.upgrade.as_deref(),
    };
    let fields = cx
        .request
        .headers
        .0
        .iter()
        .filter(|(n, _)| {
            !o.body_dropped
                || !["content-type", "content-encoding", "transfer-encoding"]
                    .iter()
                    .any(|d| n.eq_ignore_ascii_case(d))
        })
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    rewrite::write_request_head(out, &outgoing, fields);
}
