//! Forwarding one request to its backend and the response back: take or open an
//! upstream connection, send the head and stream the body with bounded buffers, read
//! the response head (retrying once on a fresh connection when a reused one failed
//! before answering an idempotent, bodiless request), then stream the response body,
//! re-framing it for the client where needed. The upstream connection returns to the
//! pool only when both messages went through completely. [`exchange`] (up to the
//! response head) and [`deliver`] (the answer to the client) are separate steps so that
//! the policy path can look at a response and drop it (retry, redirects).

use super::deadline::before;
use super::outgoing::{frame_body, Outgoing};
use super::respond::{self, Failure};
use super::rewrite::{self, OutFraming};
use super::{Client, Next};
use crate::config::{Api, Backend, Settings};
use crate::http::headers::is_hop_by_hop;
use crate::http::write::{reason_phrase, write_header, write_status_line};
use crate::http::{parse_response_head, BodyDecoder, BodyKind, RequestHead, ResponseHead, Version};
use crate::io::Conn;
use crate::upstream::{self, ConnectError, Upstream};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Why sending the request failed.
enum SendFailure {
    /// Writing to the backend failed.
    Upstream,
    /// The client's body was malformed, too large, too slow or cut short.
    Client(Option<Failure>),
}

/// Why reading the response head failed.
enum ReadFailure {
    /// The connection closed or reset before any byte of a response.
    ClosedEarly,
    Timeout,
    Invalid,
}

/// What to send and where. The fast path builds it from the request head; the policy
/// path from the context the inbound policies left.
pub struct Plan<'a> {
    pub addr: SocketAddr,
    /// The complete request head for the backend.
    pub head_bytes: Vec<u8>,
    /// A body set by a policy: sent with Content-Length instead of the client's body
    /// (which the caller has already read and dropped).
    pub body: Option<&'a [u8]>,
    /// Time allowed for the backend's response head.
    pub timeout: Duration,
}

/// How the answer to the client is decided once the backend's response head is in.
pub trait ResponseHook {
    /// True when the hook needs the whole response body (bounded) before deciding.
    fn wants_body(&self, resp: &ResponseHead) -> bool;
    /// `None`: relay the backend's response as it is. `Some`: answer as it says.
    fn on_response(&mut self, resp: &ResponseHead, body: Option<Vec<u8>>) -> Option<Rewrite>;
}

/// A hook's decision about the response.
pub enum Rewrite {
    /// Status and headers from the answer (its body is ignored); the backend's body
    /// streams behind them.
    Head(Answer),
    /// The whole answer, body included.
    Full(Answer),
}

/// A complete response decided by the gateway (a policy's rewrite of the backend's).
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How forwarding ended.
pub enum Forwarded {
    /// The client has its answer; what the connection does next.
    Done(Next),
    /// Nothing was sent to the client yet: the caller answers with this failure (after
    /// on-error, on the policy path).
    Failed { failure: Failure, keep_alive: bool },
}

/// Largest response body a hook may ask to see.
const MAX_BUFFERED_BODY: usize = 4 * 1024 * 1024;

/// The fast path: forwards a request to its API's backend with no policies involved.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    client: &mut Client,
    head: &RequestHead,
    api: &Api,
    backend: &Backend,
    suffix: &str,
    strip: &KeyStrip<'_>,
    settings: &Settings,
    keep_alive: bool,
) -> Next {
    let target = rewrite::backend_target(backend, suffix, strip.query(head.query()).as_deref());
    let mut head_bytes = Vec::with_capacity(512);
    rewrite::request_head(
        &mut head_bytes,
        head,
        backend,
        &target,
        client.peer.ip(),
        strip.header,
    );
    let plan = Plan {
        addr: backend.addr,
        head_bytes,
        body: None,
        timeout: api.timeout,
    };
    match forward_plan(client, head, api, plan, settings, keep_alive, None).await {
        Forwarded::Done(next) => next,
        Forwarded::Failed {
            failure,
            keep_alive,
        } => local(client, failure, keep_alive).await,
    }
}

/// The subscription key to remove before forwarding: its header name and query name.
pub struct KeyStrip<'a> {
    pub header: Option<&'a str>,
    pub query: Option<&'a str>,
}

impl KeyStrip<'_> {
    /// The query without the key parameter.
    pub fn query(&self, query: Option<&str>) -> Option<String> {
        let q = query?;
        let Some(name) = self.query else {
            return Some(q.to_string());
        };
        let kept: Vec<&str> = q
            .split('&')
            .filter(|kv| kv.split('=').next() != Some(name))
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }
}

/// Sends `plan` and relays or rewrites the response.
pub async fn forward_plan(
    client: &mut Client,
    head: &RequestHead,
    api: &Api,
    plan: Plan<'_>,
    settings: &Settings,
    keep_alive: bool,
    hook: Option<&mut dyn ResponseHook>,
) -> Forwarded {
    let mut plan = plan;
    match exchange(client, head, api, &mut plan, settings, keep_alive).await {
        Ok(exchanged) => deliver(client, head, api, exchanged, settings, keep_alive, hook).await,
        Err(ended) => ended,
    }
}

/// A backend's response head, its body still to be read from the connection. Dropping
/// it closes the connection (the body is never read).
pub struct Exchanged {
    up: Upstream,
    pub resp: ResponseHead,
}

/// Sends `plan` and reads the backend's response head, without answering the client:
/// the caller may look at the head, then [`deliver`] it or drop it (retry, redirects).
/// `Err` is how forwarding ended instead.
pub async fn exchange(
    client: &mut Client,
    head: &RequestHead,
    api: &Api,
    plan: &mut Plan<'_>,
    settings: &Settings,
    keep_alive: bool,
) -> Result<Exchanged, Forwarded> {
    let failed = |failure, keep_alive| {
        Err(Forwarded::Failed {
            failure,
            keep_alive,
        })
    };
    let client_body = plan.body.is_none() && head.body != BodyKind::Empty;
    if head.expect_continue && client_body {
        // The gateway gives the go-ahead itself and streams the body when it comes.
        if client
            .conn
            .send(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
        {
            return Err(Forwarded::Done(Next::Close));
        }
    }

    let retry_allowed = !client_body && rewrite::is_idempotent(&head.method);
    let mut retried = false;
    loop {
        let pooled = client
            .core
            .pools
            .borrow_mut()
            .take(plan.addr, settings.upstream.idle_timeout);
        let mut up = match pooled {
            Some(up) => up,
            None => match upstream::connect(plan.addr, settings.timeouts.upstream_connect).await {
                Ok(up) => up,
                Err(ConnectError::Timeout) => {
                    return failed(Failure::GatewayTimeout("Backend connect timeout"), false)
                }
                Err(ConnectError::Io(e)) => {
                    tracing::debug!(backend = %plan.addr, error = %e, "connect failed");
                    let failure = Failure::BadGateway("Backend connection failed");
                    return failed(failure, keep_alive && !client_body);
                }
            },
        };
        let sent = match plan.body {
            Some(body) => send_fixed(&mut up, &plan.head_bytes, body).await,
            None => send_request(client, &mut up, &mut plan.head_bytes, head, api, settings).await,
        };
        match sent {
            Ok(()) => {}
            Err(SendFailure::Upstream) if up.reused && retry_allowed && !retried => {
                retried = true;
                continue;
            }
            Err(SendFailure::Upstream) => {
                return failed(Failure::BadGateway("Backend connection failed"), false)
            }
            Err(SendFailure::Client(Some(failure))) => return failed(failure, false),
            Err(SendFailure::Client(None)) => return Err(Forwarded::Done(Next::Close)),
        }
        let deadline = portico_io::now() + plan.timeout;
        match read_response_head(&mut up, head.method == "HEAD", settings, deadline).await {
            Ok(resp) => return Ok(Exchanged { up, resp }),
            Err(ReadFailure::ClosedEarly) if up.reused && retry_allowed && !retried => {
                retried = true;
                continue;
            }
            Err(ReadFailure::ClosedEarly) | Err(ReadFailure::Invalid) => {
                let failure = Failure::BadGateway("Invalid response from backend");
                return failed(failure, keep_alive && !client_body);
            }
            Err(ReadFailure::Timeout) => {
                return failed(Failure::GatewayTimeout("Backend response timeout"), false)
            }
        }
    }
}

/// Answers the client from an exchanged response: relays it, or lets `hook` rewrite it
/// (or a protocol switch becomes a tunnel).
pub async fn deliver(
    client: &mut Client,
    head: &RequestHead,
    api: &Api,
    exchanged: Exchanged,
    settings: &Settings,
    keep_alive: bool,
    hook: Option<&mut dyn ResponseHook>,
) -> Forwarded {
    let failed = |failure, keep_alive| Forwarded::Failed {
        failure,
        keep_alive,
    };
    let Exchanged { mut up, resp } = exchanged;
    if resp.status == 101 {
        if head.upgrade.is_none() {
            let failure = Failure::BadGateway("Unexpected protocol switch from backend");
            return failed(failure, false);
        }
        let mut out = Vec::with_capacity(256);
        rewrite::response_head(&mut out, &resp, OutFraming::None, true, true, true);
        if client.conn.send(&out).await.is_err() {
            return Forwarded::Done(Next::Close);
        }
        return Forwarded::Done(Next::Tunnel(Box::new(up)));
    }

    if let Some(hook) = hook {
        let body = if hook.wants_body(&resp) && resp.body != BodyKind::Empty {
            match read_body(&mut up, &resp, api, settings).await {
                Some(b) => Some(b),
                None => {
                    let failure = Failure::BadGateway("Invalid response from backend");
                    return failed(failure, false);
                }
            }
        } else {
            None
        };
        let buffered = body.is_some();
        match hook.on_response(&resp, body) {
            None => {}
            Some(Rewrite::Full(answer)) => {
                // The backend's connection is reusable only if its body was read whole.
                if buffered && resp.keep_alive && up.buf.is_empty() {
                    client
                        .core
                        .pools
                        .borrow_mut()
                        .put(up, settings.upstream.max_idle_per_backend);
                }
                let head_only = head.method == "HEAD";
                return Forwarded::Done(send_answer(client, &answer, head_only, keep_alive).await);
            }
            Some(Rewrite::Head(answer)) => {
                let client_http11 = head.version == Version::Http11;
                let framing = rewrite::response_framing(resp.body, client_http11);
                let keep_alive = keep_alive && framing != OutFraming::Close;
                let mut rewritten = resp.clone();
                rewritten.status = answer.status;
                rewritten.reason = answer.reason;
                rewritten.headers = answer
                    .headers
                    .into_iter()
                    .filter(|(n, _)| {
                        !n.eq_ignore_ascii_case("content-length")
                            && !n.eq_ignore_ascii_case("transfer-encoding")
                    })
                    .map(|(name, value)| crate::http::Header::new(name, value))
                    .chain(
                        resp.headers
                            .iter()
                            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .cloned(),
                    )
                    .collect();
                let mut out = Vec::with_capacity(1024);
                rewrite::response_head(
                    &mut out,
                    &rewritten,
                    framing,
                    keep_alive,
                    client_http11,
                    false,
                );
                return Forwarded::Done(
                    finish_stream(client, up, &resp, framing, out, api, settings, keep_alive).await,
                );
            }
        }
    }

    let client_http11 = head.version == Version::Http11;
    let framing = rewrite::response_framing(resp.body, client_http11);
    let keep_alive = keep_alive && framing != OutFraming::Close;
    let mut out = Vec::with_capacity(1024);
    rewrite::response_head(&mut out, &resp, framing, keep_alive, client_http11, false);

    Forwarded::Done(finish_stream(client, up, &resp, framing, out, api, settings, keep_alive).await)
}

/// Streams the response body behind `out` (the head) and pools the backend connection
/// when both messages ended cleanly.
#[allow(clippy::too_many_arguments)]
async fn finish_stream(
    client: &mut Client,
    mut up: Upstream,
    resp: &ResponseHead,
    framing: OutFraming,
    out: Vec<u8>,
    api: &Api,
    settings: &Settings,
    keep_alive: bool,
) -> Next {
    match stream_response(client, &mut up, resp, framing, out, api, settings).await {
        Streamed::Complete => {
            if resp.keep_alive && resp.body != BodyKind::UntilClose && up.buf.is_empty() {
                client
                    .core
                    .pools
                    .borrow_mut()
                    .put(up, settings.upstream.max_idle_per_backend);
            }
            if keep_alive {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
        Streamed::Broken => Next::Close,
    }
}

/// Writes a gateway-decided answer with Content-Length.
pub async fn send_answer(
    client: &mut Client,
    answer: &Answer,
    head_only: bool,
    keep_alive: bool,
) -> Next {
    let mut out = Vec::with_capacity(256 + answer.body.len());
    write_status_line(
        &mut out,
        answer.status,
        if answer.reason.is_empty() {
            reason_phrase(answer.status)
        } else {
            &answer.reason
        },
    );
    for (name, value) in &answer.headers {
        if is_hop_by_hop(name) || name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        write_header(&mut out, name, value.as_bytes());
    }
    let no_body = answer.status == 204 || answer.status == 304 || answer.status < 200;
    if !no_body {
        write_header(
            &mut out,
            "content-length",
            answer.body.len().to_string().as_bytes(),
        );
    }
    if !keep_alive {
        write_header(&mut out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !no_body {
        out.extend_from_slice(&answer.body);
    }
    if client.conn.send(&out).await.is_err() || !keep_alive {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

/// Sends a head and a fixed body (set by a policy).
async fn send_fixed(up: &mut Upstream, head_bytes: &[u8], body: &[u8]) -> Result<(), SendFailure> {
    let mut out = Vec::with_capacity(head_bytes.len() + body.len());
    out.extend_from_slice(head_bytes);
    out.extend_from_slice(body);
    up.conn.send(&out).await.map_err(|_| SendFailure::Upstream)
}

/// Reads a whole response body (for outbound policies), bounded.
async fn read_body(
    up: &mut Upstream,
    resp: &ResponseHead,
    api: &Api,
    settings: &Settings,
) -> Option<Vec<u8>> {
    let mut decoder = BodyDecoder::new(resp.body, settings.limits.max_header_bytes);
    let mut body = Vec::new();
    loop {
        loop {
            let d = decoder.decode(up.buf.filled()).ok()?;
            body.extend_from_slice(&up.buf.filled()[d.data.clone()]);
            up.buf.consume(d.consumed);
            if body.len() > MAX_BUFFERED_BODY {
                return None;
            }
            if d.done {
                return Some(body);
            }
            if d.consumed == 0 {
                break;
            }
        }
        let at = portico_io::now() + api.timeout;
        match before(at, up.conn.recv(&mut up.buf)).await {
            Some(Ok(n)) if n > 0 => {}
            Some(Ok(_)) => {
                decoder.on_eof().ok()?;
                return Some(body);
            }
            _ => return None,
        }
    }
}

/// Answers the client with a gateway error.
pub async fn local(client: &mut Client, failure: Failure, keep_alive: bool) -> Next {
    let mut out = Vec::with_capacity(256);
    respond::error_response(failure, keep_alive, &mut out);
    if client.conn.send(&out).await.is_err() || !keep_alive {
        return Next::Close;
    }
    Next::KeepAlive
}

/// Sends the head and streams the request body, re-encoding chunked bodies.
async fn send_request(
    client: &mut Client,
    up: &mut Upstream,
    head_bytes: &mut Vec<u8>,
    head: &RequestHead,
    api: &Api,
    settings: &Settings,
) -> Result<(), SendFailure> {
    if head.body == BodyKind::Empty {
        // Lent to the send, not copied; it comes back for a retry.
        return up
            .conn
            .send_vec(head_bytes)
            .await
            .map_err(|_| SendFailure::Upstream);
    }
    let chunked = head.body == BodyKind::Chunked;
    let mut decoder = BodyDecoder::new(head.body, settings.limits.max_header_bytes);
    let mut out = Outgoing::new(head_bytes.to_vec());
    let mut total: u64 = 0;
    loop {
        let pass = frame_body(&mut decoder, &mut client.buf, &mut out, chunked)
            .map_err(|_| SendFailure::Client(Some(Failure::BadRequest(400, "Invalid body"))))?;
        total += pass.bytes;
        // A chunk announced past the limit is refused before any of it is forwarded.
        if api
            .max_request_body
            .is_some_and(|max| total.saturating_add(decoder.announced_remaining()) > max)
        {
            return Err(SendFailure::Client(Some(Failure::BodyTooLarge)));
        }
        out.send(&mut up.conn, &mut client.buf)
            .await
            .map_err(|_| SendFailure::Upstream)?;
        if pass.done {
            return Ok(());
        }
        let at = portico_io::now() + settings.timeouts.body_idle;
        match before(at, client.conn.recv(&mut client.buf)).await {
            None => return Err(SendFailure::Client(Some(Failure::ClientTimeout))),
            Some(Ok(n)) if n > 0 => {}
            Some(_) => return Err(SendFailure::Client(None)),
        }
    }
}

/// Reads the backend's response head, skipping interim 1xx answers (the gateway sent
/// its own 100 Continue) but not 101.
async fn read_response_head(
    up: &mut Upstream,
    head_request: bool,
    settings: &Settings,
    deadline: Instant,
) -> Result<ResponseHead, ReadFailure> {
    let mut got_bytes = !up.buf.is_empty();
    loop {
        if !up.buf.is_empty() {
            match parse_response_head(up.buf.filled(), &settings.limits, head_request) {
                Ok(Some((resp, used))) => {
                    up.buf.consume(used);
                    if (100..200).contains(&resp.status) && resp.status != 101 {
                        continue;
                    }
                    return Ok(resp);
                }
                Ok(None) => {}
                Err(_) => return Err(ReadFailure::Invalid),
            }
        }
        match before(deadline, up.conn.recv(&mut up.buf)).await {
            None => return Err(ReadFailure::Timeout),
            Some(Ok(n)) if n > 0 => got_bytes = true,
            Some(_) if !got_bytes => return Err(ReadFailure::ClosedEarly),
            Some(_) => return Err(ReadFailure::Invalid),
        }
    }
}

enum Streamed {
    Complete,
    /// Either side failed mid-body; the client connection must close so the client
    /// sees the truncation.
    Broken,
}

/// Streams the response body to the client. `out` holds the response head; body bytes
/// already received go out in the same write.
async fn stream_response(
    client: &mut Client,
    up: &mut Upstream,
    resp: &ResponseHead,
    framing: OutFraming,
    out: Vec<u8>,
    api: &Api,
    settings: &Settings,
) -> Streamed {
    let mut decoder = BodyDecoder::new(resp.body, settings.limits.max_header_bytes);
    let chunked = framing == OutFraming::Chunked;
    let mut out = Outgoing::new(out);
    loop {
        let pass = frame_body(&mut decoder, &mut up.buf, &mut out, chunked);
        // On a framing error what came before it still goes out.
        if out.send(&mut client.conn, &mut up.buf).await.is_err() {
            return Streamed::Broken;
        }
        match pass {
            Err(_) => return Streamed::Broken,
            Ok(pass) if pass.done => return Streamed::Complete,
            Ok(_) => {}
        }
        let at = portico_io::now() + api.timeout;
        match before(at, up.conn.recv(&mut up.buf)).await {
            Some(Ok(n)) if n > 0 => {}
            Some(Ok(_)) => {
                // The backend closed: the end of an until-close body, a truncation otherwise.
                if decoder.on_eof().is_err() {
                    return Streamed::Broken;
                }
                if framing == OutFraming::Chunked && client.conn.send(b"0\r\n\r\n").await.is_err() {
                    return Streamed::Broken;
                }
                return Streamed::Complete;
            }
            _ => return Streamed::Broken,
        }
    }
}
