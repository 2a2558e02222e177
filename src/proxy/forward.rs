//! Forwarding one request to its backend and the response back: take or open an
//! upstream connection, send the head and stream the body with bounded buffers, read
//! the response head (retrying once on a fresh connection when a reused one failed
//! before answering an idempotent, bodiless request), then stream the response body,
//! re-framing it for the client where needed. The upstream connection returns to the
//! pool only when both messages went through completely.

use super::deadline::before;
use super::respond::{self, Failure};
use super::rewrite::{self, OutFraming};
use super::{Client, Next};
use crate::config::{Api, Backend, Settings};
use crate::http::write::{write_chunk_header, write_last_chunk};
use crate::http::{parse_response_head, BodyDecoder, BodyKind, RequestHead, ResponseHead, Version};
use crate::io::Conn;
use crate::upstream::{self, ConnectError, Upstream};
use std::time::Instant;

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

pub async fn forward(
    client: &mut Client,
    head: &RequestHead,
    api: &Api,
    backend: &Backend,
    suffix: &str,
    settings: &Settings,
    keep_alive: bool,
) -> Next {
    let target = rewrite::backend_target(backend, suffix, head.query());
    let mut head_bytes = Vec::with_capacity(512);
    rewrite::request_head(&mut head_bytes, head, backend, &target, client.peer.ip());

    if head.expect_continue && head.body != BodyKind::Empty {
        // The gateway gives the go-ahead itself and streams the body when it comes.
        if client
            .conn
            .send(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
        {
            return Next::Close;
        }
    }

    let retry_allowed = head.body == BodyKind::Empty && rewrite::is_idempotent(&head.method);
    let mut retried = false;
    let (mut up, resp) = loop {
        let pooled = client
            .core
            .pools
            .borrow_mut()
            .take(backend.addr, settings.upstream.idle_timeout);
        let mut up = match pooled {
            Some(up) => up,
            None => match upstream::connect(backend.addr, settings.timeouts.upstream_connect).await
            {
                Ok(up) => up,
                Err(ConnectError::Timeout) => {
                    return local(
                        client,
                        Failure::GatewayTimeout("Backend connect timeout"),
                        false,
                    )
                    .await
                }
                Err(ConnectError::Io(e)) => {
                    tracing::debug!(backend = %backend.addr, error = %e, "connect failed");
                    let failure = Failure::BadGateway("Backend connection failed");
                    let ka = keep_alive && head.body == BodyKind::Empty;
                    return local(client, failure, ka).await;
                }
            },
        };
        match send_request(client, &mut up, &head_bytes, head, api, settings).await {
            Ok(()) => {}
            Err(SendFailure::Upstream) if up.reused && retry_allowed && !retried => {
                retried = true;
                continue;
            }
            Err(SendFailure::Upstream) => {
                let failure = Failure::BadGateway("Backend connection failed");
                return local(client, failure, false).await;
            }
            Err(SendFailure::Client(Some(failure))) => return local(client, failure, false).await,
            Err(SendFailure::Client(None)) => return Next::Close,
        }
        let deadline = Instant::now() + api.timeout;
        match read_response_head(&mut up, head.method == "HEAD", settings, deadline).await {
            Ok(resp) => break (up, resp),
            Err(ReadFailure::ClosedEarly) if up.reused && retry_allowed && !retried => {
                retried = true;
                continue;
            }
            Err(ReadFailure::ClosedEarly) | Err(ReadFailure::Invalid) => {
                let failure = Failure::BadGateway("Invalid response from backend");
                return local(client, failure, keep_alive && head.body == BodyKind::Empty).await;
            }
            Err(ReadFailure::Timeout) => {
                let failure = Failure::GatewayTimeout("Backend response timeout");
                return local(client, failure, false).await;
            }
        }
    };

    if resp.status == 101 {
        if head.upgrade.is_none() {
            let failure = Failure::BadGateway("Unexpected protocol switch from backend");
            return local(client, failure, false).await;
        }
        let mut out = Vec::with_capacity(256);
        rewrite::response_head(&mut out, &resp, OutFraming::None, true, true, true);
        if client.conn.send(&out).await.is_err() {
            return Next::Close;
        }
        return Next::Tunnel(Box::new(up));
    }

    let client_http11 = head.version == Version::Http11;
    let framing = rewrite::response_framing(resp.body, client_http11);
    let keep_alive = keep_alive && framing != OutFraming::Close;
    let mut out = Vec::with_capacity(1024);
    rewrite::response_head(&mut out, &resp, framing, keep_alive, client_http11, false);

    match stream_response(client, &mut up, &resp, framing, out, api, settings).await {
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

/// Answers the client with a gateway error.
async fn local(client: &mut Client, failure: Failure, keep_alive: bool) -> Next {
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
    head_bytes: &[u8],
    head: &RequestHead,
    api: &Api,
    settings: &Settings,
) -> Result<(), SendFailure> {
    if head.body == BodyKind::Empty {
        return up
            .conn
            .send(head_bytes)
            .await
            .map_err(|_| SendFailure::Upstream);
    }
    let chunked = head.body == BodyKind::Chunked;
    let mut decoder = BodyDecoder::new(head.body, settings.limits.max_header_bytes);
    let mut out = Vec::with_capacity(head_bytes.len() + client.buf.len() + 64);
    out.extend_from_slice(head_bytes);
    let mut total: u64 = 0;
    loop {
        loop {
            let d = decoder
                .decode(client.buf.filled())
                .map_err(|_| SendFailure::Client(Some(Failure::BadRequest(400, "Invalid body"))))?;
            let data = &client.buf.filled()[d.data.clone()];
            if !data.is_empty() {
                total += data.len() as u64;
                if api.max_request_body.is_some_and(|max| total > max) {
                    return Err(SendFailure::Client(Some(Failure::BodyTooLarge)));
                }
                if chunked {
                    write_chunk_header(data.len(), &mut out);
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(data);
                }
            }
            if d.done && chunked {
                let trailers = d
                    .trailers
                    .clone()
                    .map(|r| &client.buf.filled()[r])
                    .unwrap_or(b"");
                write_last_chunk(trailers, &mut out);
            }
            client.buf.consume(d.consumed);
            if d.done || d.consumed == 0 {
                break;
            }
        }
        // A chunk announced past the limit is refused before any of it is forwarded.
        if api
            .max_request_body
            .is_some_and(|max| total.saturating_add(decoder.announced_remaining()) > max)
        {
            return Err(SendFailure::Client(Some(Failure::BodyTooLarge)));
        }
        if !out.is_empty() {
            up.conn
                .send(&out)
                .await
                .map_err(|_| SendFailure::Upstream)?;
            out.clear();
        }
        if decoder.is_done() {
            return Ok(());
        }
        let at = Instant::now() + settings.timeouts.body_idle;
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
    mut out: Vec<u8>,
    api: &Api,
    settings: &Settings,
) -> Streamed {
    let mut decoder = BodyDecoder::new(resp.body, settings.limits.max_header_bytes);
    loop {
        let mut finished = false;
        loop {
            let d = match decoder.decode(up.buf.filled()) {
                Ok(d) => d,
                Err(_) => {
                    let _ = client.conn.send(&out).await;
                    return Streamed::Broken;
                }
            };
            let data = &up.buf.filled()[d.data.clone()];
            if !data.is_empty() {
                if framing == OutFraming::Chunked {
                    write_chunk_header(data.len(), &mut out);
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(data);
                }
            }
            if d.done {
                if framing == OutFraming::Chunked {
                    let trailers = d
                        .trailers
                        .clone()
                        .map(|r| &up.buf.filled()[r])
                        .unwrap_or(b"");
                    write_last_chunk(trailers, &mut out);
                }
                finished = true;
            }
            up.buf.consume(d.consumed);
            if d.done || d.consumed == 0 {
                break;
            }
        }
        if !out.is_empty() {
            if client.conn.send(&out).await.is_err() {
                return Streamed::Broken;
            }
            out.clear();
        }
        if finished {
            return Streamed::Complete;
        }
        let at = Instant::now() + api.timeout;
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
