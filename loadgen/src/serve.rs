//! `loadgen serve`: a minimal HTTP/1.1 backend for benchmarks and tests.
//!
//! One glommio executor per CPU, each with its own `SO_REUSEPORT` listener, so the
//! kernel spreads connections. Per connection: read into a fixed buffer, parse request
//! heads in place with httparse, skip bodies (Content-Length or chunked, RFC 9112
//! section 6.3), and answer each request with a response built once at start
//! (200, `Content-Length`, N body bytes). Pipelined requests are answered in one
//! write. Nothing is allocated per request. It is deliberately not a general server:
//! no routing, no date header, no logging.

use crate::cli::ServeArgs;
use crate::response::{parse_content_length, ChunkedDecoder};
use anyhow::{anyhow, bail, Context as _};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

const READ_BUF: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Runs the backend until the process is killed.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .listen
        .to_socket_addrs()
        .with_context(|| format!("bad --listen address {:?}", args.listen))?
        .next()
        .ok_or_else(|| anyhow!("bad --listen address {:?}", args.listen))?;
    if args.body_size > 1 << 30 {
        bail!(
            "--body-size {} is too large (at most 1 GiB)",
            args.body_size
        );
    }

    // Bind once here to learn the real port when asked for port 0. The socket does not
    // listen, so the kernel sends it no connections; it only holds the port until
    // every executor has bound its own listener to it.
    let placeholder = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    placeholder.set_reuse_port(true)?;
    placeholder
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = placeholder
        .local_addr()?
        .as_socket()
        .ok_or_else(|| anyhow!("cannot listen on {addr}"))?;

    let cpus = crate::allowed_cpus();
    let threads = args.threads.unwrap_or(cpus.len()).max(1);
    let responses = Responses::build(args.body_size);
    let delay = Duration::from_millis(args.delay);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let ready = ready_tx.clone();
        let responses = responses.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpus[i % cpus.len()]))
            .name(&format!("serve-{i}"))
            .io_memory(1 << 20)
            .spawn(move || async move {
                let listener = match TcpListener::bind(addr) {
                    Ok(l) => {
                        let _ = ready.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
                        return;
                    }
                };
                let responses = Rc::new(responses);
                loop {
                    match listener.accept().await {
                        Ok(stream) => {
                            glommio::spawn_local(serve_connection(
                                stream,
                                responses.clone(),
                                delay,
                            ))
                            .detach();
                        }
                        // Out of descriptors and the like: back off, keep serving.
                        Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
                    }
                }
            })
            .map_err(|e| anyhow!("cannot start executor on CPU {}: {e}", cpus[i % cpus.len()]))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!(e),
            Err(_) => bail!("an executor stopped before listening"),
        }
    }
    drop(placeholder);
    let mut out = std::io::stdout();
    writeln!(out, "listening on {addr}")?;
    out.flush()?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// Every response the backend sends, serialised once.
#[derive(Clone)]
struct Responses {
    /// Indexed by [`Responses::index`]: (keep-alive style) x (with body, HEAD).
    variants: [Box<[u8]>; 6],
    bad_request: Box<[u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persistence {
    /// HTTP/1.1, persistent by default: no Connection header.
    Default,
    /// The client asked to close, or HTTP/1.0 without keep-alive.
    Close,
    /// HTTP/1.0 with `Connection: keep-alive`.
    KeepAlive10,
}

impl Responses {
    fn build(body_size: usize) -> Responses {
        let pattern = b"Hello world\n";
        let body: Vec<u8> = pattern.iter().copied().cycle().take(body_size).collect();
        let make = |connection: &str, head_only: bool| -> Box<[u8]> {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nServer: loadgen\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n",
                body.len()
            )
            .into_bytes();
            if !head_only {
                r.extend_from_slice(&body);
            }
            r.into_boxed_slice()
        };
        Responses {
            variants: [
                make("", false),
                make("", true),
                make("Connection: close\r\n", false),
                make("Connection: close\r\n", true),
                make("Connection: keep-alive\r\n", false),
                make("Connection: keep-alive\r\n", true),
            ],
            bad_request:
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec()
                    .into_boxed_slice(),
        }
    }

    fn index(persistence: Persistence, head: bool) -> usize {
        let base = match persistence {
            Persistence::Default => 0,
            Persistence::Close => 2,
            Persistence::KeepAlive10 => 4,
        };
        base + usize::from(head)
    }
}

/// Where the connection is in the current request.
enum Reading {
    Head,
    /// Skipping a body; the response (by variant index) goes out when it ends.
    Length {
        remaining: u64,
        response: usize,
    },
    Chunked {
        decoder: ChunkedDecoder,
        response: usize,
    },
}

/// What a parsed head asks for.
struct Head {
    len: usize,
    response: usize,
    close: bool,
    body: Body,
    expect_continue: bool,
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

async fn serve_connection(mut stream: TcpStream, responses: Rc<Responses>, delay: Duration) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0usize;
    let mut out: Vec<u8> = Vec::new();
    let mut reading = Reading::Head;
    loop {
        let n = match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;

        // Answer every request the buffer completes. `single` avoids the copy into
        // `out` in the common case of exactly one response.
        let mut pos = 0;
        let mut due = 0usize;
        let mut single = 0usize;
        let mut close = false;
        let mut send_continue = false;
        out.clear();
        let push = |variant: usize, due: &mut usize, single: &mut usize, out: &mut Vec<u8>| {
            if *due == 1 {
                out.extend_from_slice(&responses.variants[*single]);
            }
            if *due >= 1 {
                out.extend_from_slice(&responses.variants[variant]);
            }
            *single = variant;
            *due += 1;
        };
        while !close {
            match &mut reading {
                Reading::Length {
                    remaining,
                    response,
                } => {
                    let take = (*remaining).min((filled - pos) as u64);
                    *remaining -= take;
                    pos += take as usize;
                    if *remaining > 0 {
                        break;
                    }
                    let r = *response;
                    push(r, &mut due, &mut single, &mut out);
                    reading = Reading::Head;
                }
                Reading::Chunked { decoder, response } => match decoder.feed(&buf[pos..filled]) {
                    Ok((n, done)) => {
                        pos += n;
                        if !done {
                            break;
                        }
                        let r = *response;
                        push(r, &mut due, &mut single, &mut out);
                        reading = Reading::Head;
                    }
                    Err(_) => {
                        let _ = stream.write_all(&responses.bad_request).await;
                        return;
                    }
                },
                Reading::Head => {
                    if pos == filled {
                        break;
                    }
                    let head = match parse_request_head(&buf[pos..filled]) {
                        Ok(Some(h)) => h,
                        Ok(None) => break,
                        Err(()) => {
                            if due > 0 {
                                let _ = write_due(&mut stream, &responses, due, single, &out).await;
                            }
                            let _ = stream.write_all(&responses.bad_request).await;
                            return;
                        }
                    };
                    pos += head.len;
                    close = head.close;
                    match head.body {
                        Body::None => push(head.response, &mut due, &mut single, &mut out),
                        Body::Length(remaining) => {
                            reading = Reading::Length {
                                remaining,
                                response: head.response,
                            };
                            send_continue |= head.expect_continue && pos == filled;
                        }
                        Body::Chunked => {
                            reading = Reading::Chunked {
                                decoder: ChunkedDecoder::new(),
                                response: head.response,
                            };
                            send_continue |= head.expect_continue && pos == filled;
                        }
                    }
                }
            }
        }
        // A request that asked to close is answered once its body is read.
        let close = close && matches!(reading, Reading::Head);

        if pos > 0 {
            buf.copy_within(pos..filled, 0);
            filled -= pos;
        }
        if filled == buf.len() {
            // A head larger than the buffer.
            let _ = stream.write_all(&responses.bad_request).await;
            return;
        }
        if due > 0 {
            if !delay.is_zero() {
                glommio::timer::sleep(delay).await;
            }
            if write_due(&mut stream, &responses, due, single, &out)
                .await
                .is_err()
            {
                return;
            }
        } else if send_continue
            && stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        if close {
            let _ = stream.close().await;
            return;
        }
    }
}

async fn write_due(
    stream: &mut TcpStream,
    responses: &Responses,
    due: usize,
    single: usize,
    out: &[u8],
) -> std::io::Result<()> {
    if due == 1 {
        stream.write_all(&responses.variants[single]).await
    } else {
        stream.write_all(out).await
    }
}

/// Parses one request head. `Ok(None)`: incomplete. `Err`: answer 400 and close.
fn parse_request_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let http11 = req.version == Some(1);
    let head = req.method == Some("HEAD");
    let mut length = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(h.value).map_err(|_| ())?;
            if length.is_some_and(|l| l != v) {
                return Err(());
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                close |= token.trim_ascii().eq_ignore_ascii_case(b"close");
                keep_alive |= token.trim_ascii().eq_ignore_ascii_case(b"keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    // RFC 9112 section 6.1: a request with Transfer-Encoding whose final coding is not
    // chunked, or with both framings, cannot be delimited safely.
    if transfer_encoding && (!chunked || length.is_some()) {
        return Err(());
    }
    let persistence = if close || (!http11 && !keep_alive) {
        Persistence::Close
    } else if !http11 {
        Persistence::KeepAlive10
    } else {
        Persistence::Default
    };
    let body = if chunked {
        Body::Chunked
    } else {
        match length {
            None | Some(0) => Body::None,
            Some(l) => Body::Length(l),
        }
    };
    Ok(Some(Head {
        len,
        response: Responses::index(persistence, head),
        close: persistence == Persistence::Close,
        body,
        expect_continue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_well_formed() {
        let r = Responses::build(30);
        let get = &r.variants[0];
        assert!(get.ends_with(b"\r\n\r\nHello world\nHello world\nHello "));
        assert!(std::str::from_utf8(get)
            .unwrap()
            .contains("Content-Length: 30\r\n"));
        assert!(!r.variants[1].ends_with(b"Hello "));
        assert!(std::str::from_utf8(&r.variants[2])
            .unwrap()
            .contains("Connection: close"));
    }

    #[test]
    fn request_heads() {
        let h = parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        assert!(matches!(h.body, Body::None));
        assert_eq!(h.response, 0);

        let h = parse_request_head(b"HEAD / HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        assert_eq!(h.response, Responses::index(Persistence::Close, true));

        let h = parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert!(matches!(h.body, Body::Length(5)));

        let h = parse_request_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.body, Body::Chunked));

        assert!(parse_request_head(b"GET / HTTP/1.1\r\nHost")
            .unwrap()
            .is_none());
        assert!(parse_request_head(
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .is_err());
        assert!(parse_request_head(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
        assert!(parse_request_head(b"\x01garbage\r\n\r\n").is_err());
    }
}
