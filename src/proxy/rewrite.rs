//! Building the heads that leave the gateway: the request to the backend and the
//! response to the client. Hop-by-hop fields (RFC 9110 7.6.1), including every field
//! named in `Connection`, are dropped; framing is set by the gateway, never copied; the
//! `X-Forwarded-*` fields and `Host` are set for the backend.

use crate::config::Backend;
use crate::http::headers::{connection_tokens, is_hop_by_hop};
use crate::http::write::{
    reason_phrase, write_header, write_header_with, write_ip, write_request_line,
    write_status_line, write_u64,
};
use crate::http::{BodyKind, Header, RequestHead, ResponseHead};
use std::net::IpAddr;

/// How the body of a message leaving the gateway is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFraming {
    /// No body.
    None,
    /// `Content-Length: n`, bytes copied as they are.
    Length(u64),
    /// `Transfer-Encoding: chunked`, re-encoded by the gateway.
    Chunked,
    /// Bytes until the connection closes (HTTP/1.0 clients).
    Close,
}

/// The path and query sent to the backend: its base path, then the part of the request
/// path after the API path, then the query as received.
pub fn backend_target(backend: &Backend, suffix: &str, query: Option<&str>) -> String {
    let mut target = String::with_capacity(backend.base_path.len() + suffix.len() + 16);
    target.push_str(&backend.base_path);
    target.push_str(suffix);
    if target.is_empty() {
        target.push('/');
    }
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    target
}

/// Writes the request head for the backend from the client's head (the fast path).
pub fn request_head(
    out: &mut Vec<u8>,
    req: &RequestHead,
    backend: &Backend,
    target: &str,
    client_ip: IpAddr,
    drop_header: Option<&str>,
) {
    let named = connection_tokens(&req.headers);
    let outgoing = Outgoing {
        method: &req.method,
        target,
        authority: &backend.authority,
        client_host: &req.host,
        client_ip: Some(client_ip),
        connection_tokens: &named,
        drop_header,
        body: req.body,
        upgrade: req.upgrade.as_deref(),
    };
    let fields = req
        .headers
        .iter()
        .map(|Header { name, value }| (name.as_str(), value.as_slice()));
    write_request_head(out, &outgoing, fields);
}

/// What a request head for the backend is made of, besides the header fields.
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// `Host` for the backend.
    pub authority: &'a str,
    /// The Host the client used (`X-Forwarded-Host`).
    pub client_host: &'a str,
    pub client_ip: Option<IpAddr>,
    /// Fields named in the client's `Connection` header: hop-by-hop, dropped.
    pub connection_tokens: &'a [String],
    /// A field to drop as well (the subscription key).
    pub drop_header: Option<&'a str>,
    /// The body's framing towards the backend.
    pub body: BodyKind,
    pub upgrade: Option<&'a str>,
}

/// Writes a request head for the backend: the fields given minus hop-by-hop ones,
/// framing and forwarding fields set by the gateway. Both the fast path and the policy
/// path (which passes the context's fields) write through here.
pub fn write_request_head<'h>(
    out: &mut Vec<u8>,
    o: &Outgoing<'_>,
    fields: impl Iterator<Item = (&'h str, &'h [u8])>,
) {
    write_request_line(out, o.method, o.target);
    write_header(out, "host", o.authority.as_bytes());
    let mut forwarded_for: Vec<u8> = Vec::new();
    for (name, value) in fields {
        if is_hop_by_hop(name)
            || o.connection_tokens
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name))
            || o.drop_header.is_some_and(|d| d.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            if !forwarded_for.is_empty() {
                forwarded_for.extend_from_slice(b", ");
            }
            forwarded_for.extend_from_slice(value);
            continue;
        }
        if [
            "host",
            "content-length",
            "expect",
            "x-forwarded-proto",
            "x-forwarded-host",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        write_header(out, name, value);
    }
    // The client's own X-Forwarded-For values, then its address.
    write_header_with(out, "x-forwarded-for", |out| {
        out.extend_from_slice(&forwarded_for);
        if let Some(ip) = o.client_ip {
            if !forwarded_for.is_empty() {
                out.extend_from_slice(b", ");
            }
            write_ip(ip, out);
        }
    });
    write_header(out, "x-forwarded-proto", b"http");
    write_header(out, "x-forwarded-host", o.client_host.as_bytes());
    match o.body {
        BodyKind::Length(n) => write_header_with(out, "content-length", |out| write_u64(n, out)),
        BodyKind::Chunked => write_header(out, "transfer-encoding", b"chunked"),
        BodyKind::Empty | BodyKind::UntilClose => {}
    }
    if let Some(proto) = o.upgrade {
        write_header(out, "connection", b"upgrade");
        write_header(out, "upgrade", proto.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body reaches a client of `version`, given the backend's framing.
pub fn response_framing(body: BodyKind, client_http11: bool) -> OutFraming {
    match body {
        BodyKind::Empty => OutFraming::None,
        BodyKind::Length(n) => OutFraming::Length(n),
        BodyKind::Chunked | BodyKind::UntilClose if client_http11 => OutFraming::Chunked,
        BodyKind::Chunked | BodyKind::UntilClose => OutFraming::Close,
    }
}

/// Writes the response head for the client. `upgrade` keeps `Connection: upgrade` and
/// `Upgrade` for a 101 answer.
pub fn response_head(
    out: &mut Vec<u8>,
    resp: &ResponseHead,
    framing: OutFraming,
    keep_alive: bool,
    client_http11: bool,
    upgrade: bool,
) {
    let reason = if resp.reason.is_empty() {
        reason_phrase(resp.status)
    } else {
        &resp.reason
    };
    write_status_line(out, resp.status, reason);
    let named = connection_tokens(&resp.headers);
    for Header { name, value } in &resp.headers {
        if upgrade && name.eq_ignore_ascii_case("upgrade") {
            write_header(out, name, value);
            continue;
        }
        if is_hop_by_hop(name) || named.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            continue;
        }
        // Content-Length is kept only where the body is copied as it is (and on HEAD,
        // 204 and 304 answers, where it describes the body not sent).
        if name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, OutFraming::Length(_) | OutFraming::None)
        {
            continue;
        }
        write_header(out, name, value);
    }
    if framing == OutFraming::Chunked {
        write_header(out, "transfer-encoding", b"chunked");
    }
    if upgrade {
        write_header(out, "connection", b"upgrade");
    } else if !keep_alive {
        write_header(out, "connection", b"close");
    } else if !client_http11 {
        write_header(out, "connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

/// Methods a retry may repeat (RFC 9110 9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}
