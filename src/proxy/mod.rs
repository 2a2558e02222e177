//! The per-connection state machine and request pipeline: read a head, route it, answer
//! locally (health probe, errors, mocks) or forward it, then go back for the next head
//! on the same connection. Pipelined requests are answered in order because a
//! connection handles one request at a time and leaves unread bytes in its buffer.
//! This module decides what happens to a request; the bytes on the wire are `http`'s
//! and the sockets are `io`'s.

mod deadline;
mod forward;
mod outgoing;
pub mod path;
mod policy_path;
pub mod respond;
pub mod rewrite;
mod subscription;
mod tunnel;

use crate::config::{RouteMatch, Settings};
use crate::http::{parse_request_head, BodyDecoder, BodyKind, RequestHead};
use crate::io::uring::{Resume, UringConn};
use crate::io::{Conn, RecvBuf, Socket};
use crate::runtime::core::{ConfigRef, ConnGuard, CoreState};
use respond::{Failure, STATUS_PATH};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What the connection does after a request.
pub enum Next {
    KeepAlive,
    Close,
    /// The backend switched protocols: the connection becomes a tunnel to it.
    Tunnel(Box<crate::upstream::Upstream>),
}

/// First allocation of a client receive buffer. On the io_uring engine an idle
/// connection is parked without it; on glommio's sockets `recv` needs a buffer before
/// bytes arrive, so an idle keep-alive connection holds this much there.
const CLIENT_BUF_INITIAL: usize = 1024;
/// Bytes of a request body the gateway reads and throws away to keep a connection open
/// after answering locally; a longer body closes the connection instead.
const DISCARD_LIMIT: u64 = 1024 * 1024;

/// A client connection and what the gateway knows of it.
pub struct Client {
    pub conn: Socket,
    pub buf: RecvBuf,
    pub peer: SocketAddr,
    pub core: Rc<CoreState>,
    /// Requests answered on this connection so far (across parks), saturating.
    pub served: u32,
}

/// The settings a connection uses before any config has arrived: built once, not on
/// every connection (a resumed one included).
static FALLBACK_SETTINGS: std::sync::LazyLock<Settings> =
    std::sync::LazyLock::new(Settings::default);

/// What a parked connection does when its next bytes arrive: a new task serves it.
/// `served` is how many requests the connection has had answered before.
pub fn resume(core: Rc<CoreState>, peer: SocketAddr, guard: ConnGuard, served: u32) -> Resume {
    Box::new(move |conn: UringConn| {
        let serve = serve_connection(core, Socket::Uring(conn), peer, guard, served);
        portico_io::spawn_local(serve).detach();
    })
}

/// Serves one accepted connection until it closes or, on the io_uring engine, until
/// it has stayed idle past a linger tick (see `linger`; then it is parked, and
/// [`resume`] serves it again). `guard` holds the connection's place in the core's
/// count for as long as it is open.
pub async fn serve_connection(
    core: Rc<CoreState>,
    conn: Socket,
    peer: SocketAddr,
    guard: ConnGuard,
    served: u32,
) {
    // Used only while no config has arrived yet (the health probe answers 503 then).
    let fallback: &Settings = &FALLBACK_SETTINGS;
    let max_head = core.config().map_or(fallback.limits.max_header_bytes, |c| {
        c.settings.limits.max_header_bytes
    });
    let buf_max = max_head + 4096;
    let mut client = Client {
        conn,
        buf: RecvBuf::with_headroom(
            CLIENT_BUF_INITIAL.min(buf_max),
            buf_max,
            crate::io::HEAD_GROWTH,
        ),
        peer,
        core,
        served,
    };
    loop {
        let waiting = client.core.config();
        let settings = waiting.as_ref().map_or(fallback, |c| &c.settings);
        let head = match read_head(&mut client, settings).await {
            HeadRead::Head(head) => head,
            HeadRead::Park(idle) => {
                drop(waiting);
                let Client {
                    conn,
                    peer,
                    core,
                    served,
                    ..
                } = client;
                if let Socket::Uring(conn) = conn {
                    conn.park(idle, resume(core, peer, guard, served));
                }
                return;
            }
            HeadRead::Closed => return,
            HeadRead::Reject(failure) => {
                // Boxed, like the rare paths in `handle`: the task of every connection
                // holds this future, lingering ones included.
                Box::pin(send_failure(&mut client, failure, false)).await;
                return;
            }
        };
        drop(waiting);
        // A request runs on the config that is current when its head has arrived, and
        // keeps it to the end even if a swap happens meanwhile.
        let config = client.core.config();
        let settings = config.as_ref().map_or(fallback, |c| &c.settings);
        // Not boxed: the plain forwarding path's state lives in the task itself, so a
        // request costs no allocation and copy of it (about 900 instructions). The rare
        // and large paths (policies, preflight, tunnels) are boxed where they start.
        let next = handle(&mut client, &head, config.clone(), settings).await;
        client.served = client.served.saturating_add(1);
        match next {
            Next::KeepAlive if !client.core.is_draining() => {}
            Next::KeepAlive | Next::Close => return,
            Next::Tunnel(upstream) => return Box::pin(tunnel::run(client, *upstream)).await,
        }
    }
}

enum HeadRead {
    Head(RequestHead),
    /// Nothing received and nothing to do: hand the connection to the engine, to be
    /// closed if nothing arrives within this long.
    Park(Duration),
    Closed,
    Reject(Failure),
}

/// Waits for a complete request head. Between requests the wait is bounded by the
/// keep-alive timeout and ends at a drain; once the first byte is in, the whole head
/// must arrive within the request-head timeout (slowloris).
async fn read_head(client: &mut Client, settings: &Settings) -> HeadRead {
    let mut deadline: Option<Instant> = None;
    loop {
        if !client.buf.is_empty() {
            match parse_request_head(client.buf.filled(), &settings.limits) {
                Ok(Some((head, used))) => {
                    client.buf.consume(used);
                    return HeadRead::Head(head);
                }
                Ok(None) => {}
                Err(e) => return HeadRead::Reject(Failure::BadRequest(e.status(), e.reason())),
            }
            if client.buf.is_full() {
                return HeadRead::Reject(Failure::BadRequest(431, "Request header too large"));
            }
        }
        let read = if client.buf.is_empty() {
            if client.core.is_draining() {
                return HeadRead::Closed;
            }
            if matches!(&client.conn, Socket::Uring(conn) if !conn.readable()) {
                match linger(client, settings).await {
                    Ok(read) => read,
                    Err(next) => return next,
                }
            } else {
                // Only a connection that waits here needs to hear of a drain. Listening
                // after the check misses nothing: drains start on this core's own thread,
                // and nothing between the check and here yields.
                let drain = client.core.drain_listener();
                let idle = portico_io::now() + settings.timeouts.keep_alive;
                let recv = deadline::before(idle, client.conn.recv(&mut client.buf));
                match futures_lite::future::or(recv, async {
                    drain.await;
                    Some(Ok(0))
                })
                .await
                {
                    None => return HeadRead::Closed,
                    Some(r) => r,
                }
            }
        } else {
            let at =
                *deadline.get_or_insert_with(|| portico_io::now() + settings.timeouts.request_head);
            match deadline::before(at, client.conn.recv(&mut client.buf)).await {
                None => return HeadRead::Reject(Failure::ClientTimeout),
                Some(r) => r,
            }
        };
        match read {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {
                if deadline.is_none() {
                    deadline = Some(portico_io::now() + settings.timeouts.request_head);
                }
            }
        }
    }
}

/// A client receive buffer larger than this is given back before its connection
/// lingers (a lingering connection is not idle yet, but it may stay so).
const LINGER_BUF_KEEP: usize = 4096;

/// Waits, on the io_uring engine, for the next request on a connection that has just
/// been served and has nothing buffered: with its task until the core's next linger
/// tick (a busy keep-alive connection then costs no task spawn per request), then
/// parked for what is left of the keep-alive timeout. A connection that has had only
/// one answer is parked at once. `Ok` is the receive's result, as on a connection that
/// waits; `Err` is what happens to the connection instead.
async fn linger(
    client: &mut Client,
    settings: &Settings,
) -> Result<std::io::Result<usize>, HeadRead> {
    let keep_alive = settings.timeouts.keep_alive;
    // Only a connection that has come back for a second request lingers: one that has
    // had a single answer is as likely to stay idle (a client that opens a connection
    // per request, or keeps one open in case), and parking it at once keeps a burst of
    // such connections from holding a task and a buffer each for a tick.
    if keep_alive <= crate::runtime::core::LINGER_TICK || client.served < 2 {
        return Err(HeadRead::Park(keep_alive));
    }
    if client.buf.capacity() > LINGER_BUF_KEEP {
        client.buf.release_if_empty();
    }
    let since = portico_io::now();
    let mut linger = client.core.linger();
    let recv = async { Some(client.conn.recv(&mut client.buf).await) };
    let tick = async {
        (&mut linger).await;
        None
    };
    match futures_lite::future::or(recv, tick).await {
        Some(read) => Ok(read),
        None if client.core.is_draining() => Err(HeadRead::Closed),
        None => Err(HeadRead::Park(
            keep_alive.saturating_sub(portico_io::now().saturating_duration_since(since)),
        )),
    }
}

/// Handles one request whose head has been read.
async fn handle(
    client: &mut Client,
    head: &RequestHead,
    config: Option<ConfigRef>,
    settings: &Settings,
) -> Next {
    let keep_alive = head.keep_alive && !client.core.is_draining();
    let path = head.path();
    if path == STATUS_PATH {
        let status = if config.is_some() { 200 } else { 503 };
        return answer(client, head, settings, keep_alive, |ka, out| {
            respond::simple_response(status, None, b"", false, ka, out)
        })
        .await;
    }
    let Some(config) = config else {
        return fail(client, head, settings, Failure::NotReady, keep_alive).await;
    };
    if path::has_dot_segment(path) {
        return fail(client, head, settings, Failure::BadPath, false).await;
    }
    let route = config.route(&head.host, path, &head.method);
    if let Some(requested) = policy_path::preflight::requested_method(head) {
        // A CORS preflight: only the cors policies in scope, before the subscription
        // check; matched by the requested method when no operation takes OPTIONS.
        let rerouted;
        let by = match route {
            RouteMatch::NoOperation { .. } => {
                rerouted = config.route(&head.host, path, requested);
                &rerouted
            }
            _ => &route,
        };
        let preflight =
            policy_path::preflight::answer(client, head, &config, by, settings, keep_alive);
        if let Some(next) = Box::pin(preflight).await {
            return next;
        }
    }
    match route {
        RouteMatch::NoApi => fail(client, head, settings, Failure::NoApi, keep_alive).await,
        RouteMatch::NoOperation { .. } => {
            fail(client, head, settings, Failure::NoOperation, keep_alive).await
        }
        RouteMatch::Found {
            api,
            operation,
            suffix,
            params,
        } => {
            if let (Some(max), BodyKind::Length(n)) = (api.max_request_body, head.body) {
                if n > max {
                    return fail(client, head, settings, Failure::BodyTooLarge, false).await;
                }
            }
            let (presented, key_place) = match subscription::check(&config, api, head) {
                Ok(found) => found,
                Err(failure) => return fail(client, head, settings, failure, keep_alive).await,
            };
            let product = presented.as_ref().and_then(|p| p.product.map(|p| p.index));
            let pipeline = config.pipelines.get(api.index, operation.index, product);
            if let Some(pipeline) = pipeline.filter(|p| !p.is_passthrough()) {
                let matched = policy_path::Matched {
                    config: &config,
                    api,
                    operation,
                    suffix,
                    params: &params,
                    subscription: presented,
                    key_place,
                    pipeline,
                };
                // Boxed: the policy path's state is larger than the plain path's
                // (4.4 KB), and every connection task would carry it.
                let run = policy_path::run(client, head, matched, settings, keep_alive);
                return Box::pin(run).await;
            }
            if let Some(mock) = &operation.mock {
                let head_only = head.method == "HEAD";
                return answer(client, head, settings, keep_alive, |ka, out| {
                    respond::simple_response(
                        mock.status,
                        mock.content_type.as_deref(),
                        &mock.body,
                        head_only,
                        ka,
                        out,
                    )
                })
                .await;
            }
            let Some(backend) = config.backend_of(api) else {
                return fail(
                    client,
                    head,
                    settings,
                    Failure::BadGateway("No backend for this API"),
                    keep_alive,
                )
                .await;
            };
            let strip = forward::KeyStrip {
                header: key_place.in_header.then_some(api.key_header.as_str()),
                query: key_place.in_query.then_some(api.key_query.as_str()),
            };
            forward::forward(
                client, head, api, backend, suffix, &strip, settings, keep_alive,
            )
            .await
        }
    }
}

/// Answers locally with an error.
async fn fail(
    client: &mut Client,
    head: &RequestHead,
    settings: &Settings,
    failure: Failure,
    keep_alive: bool,
) -> Next {
    answer(client, head, settings, keep_alive, |ka, out| {
        respond::error_response(failure, ka, out)
    })
    .await
}

/// Reads and drops the request body (bounded), then writes a local response.
async fn answer(
    client: &mut Client,
    head: &RequestHead,
    settings: &Settings,
    keep_alive: bool,
    write: impl FnOnce(bool, &mut Vec<u8>),
) -> Next {
    let keep_alive = keep_alive && discard_body(client, head, settings).await;
    let mut out = Vec::with_capacity(256);
    write(keep_alive, &mut out);
    if client.conn.send(&out).await.is_err() || !keep_alive {
        return Next::Close;
    }
    Next::KeepAlive
}

async fn send_failure(client: &mut Client, failure: Failure, keep_alive: bool) {
    let mut out = Vec::with_capacity(256);
    respond::error_response(failure, keep_alive, &mut out);
    let _ = client.conn.send(&out).await;
}

/// Reads a whole request body for policies that need it, up to `limit` bytes.
/// `Err(Some(failure))` answers the client (413, 400, 408); `Err(None)` closes.
pub(crate) async fn read_request_body(
    client: &mut Client,
    head: &RequestHead,
    settings: &Settings,
    limit: u64,
) -> Result<Vec<u8>, Option<Failure>> {
    if let BodyKind::Length(n) = head.body {
        if n > limit {
            return Err(Some(Failure::BodyTooLarge));
        }
    }
    if head.expect_continue
        && head.body != BodyKind::Empty
        && client
            .conn
            .send(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return Err(None);
    }
    let mut decoder = BodyDecoder::new(head.body, settings.limits.max_header_bytes);
    let mut body = Vec::new();
    loop {
        loop {
            let d = decoder
                .decode(client.buf.filled())
                .map_err(|_| Some(Failure::BadRequest(400, "Invalid body")))?;
            body.extend_from_slice(&client.buf.filled()[d.data.clone()]);
            client.buf.consume(d.consumed);
            if body.len() as u64 > limit {
                return Err(Some(Failure::BodyTooLarge));
            }
            if d.done {
                return Ok(body);
            }
            if d.consumed == 0 {
                break;
            }
        }
        let at = portico_io::now() + settings.timeouts.body_idle;
        match deadline::before(at, client.conn.recv(&mut client.buf)).await {
            None => return Err(Some(Failure::ClientTimeout)),
            Some(Ok(n)) if n > 0 => {}
            Some(_) => return Err(None),
        }
    }
}

/// Consumes a request body the gateway does not forward, so the next request on the
/// connection starts at the right byte. False when the connection must close instead
/// (body too long, malformed, or too slow).
pub(crate) async fn discard_body(
    client: &mut Client,
    head: &RequestHead,
    settings: &Settings,
) -> bool {
    match head.body {
        BodyKind::Empty => return true,
        BodyKind::Length(n) if n > DISCARD_LIMIT => return false,
        _ => {}
    }
    if head.expect_continue {
        // The client waits for a go-ahead we will not give: do not read, close after.
        return false;
    }
    let mut decoder = BodyDecoder::new(head.body, settings.limits.max_header_bytes);
    let mut seen: u64 = 0;
    loop {
        loop {
            match decoder.decode(client.buf.filled()) {
                Ok(d) => {
                    client.buf.consume(d.consumed);
                    seen += d.consumed as u64;
                    if d.done {
                        return true;
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
                Err(_) => return false,
            }
        }
        if seen > DISCARD_LIMIT {
            return false;
        }
        let at = portico_io::now() + settings.timeouts.body_idle;
        match deadline::before(at, client.conn.recv(&mut client.buf)).await {
            Some(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}
