//! An HTTP/1.1 backend on std::net, one thread per connection, that records every byte
//! it receives (per connection id) and every request it parses, and answers each
//! request as a closure says. It parses leniently: it is a witness of what the gateway
//! sent, not a judge; tests look at the records.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::pattern::PatternCheck;

/// Raw bytes kept per connection and body bytes kept per request; the rest is
/// counted (and checked against the pattern) but not stored.
const KEEP: usize = 1024 * 1024;

/// One request as the backend received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Connection id (0, 1, 2... in accept order).
    pub conn: usize,
    /// Position of the request on its connection (0 for the first).
    pub index: usize,
    pub method: String,
    pub target: String,
    pub version: String,
    /// In received order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The head as received, up to and including the empty line.
    pub raw_head: Vec<u8>,
    /// Whether the body was framed with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Decoded body (first 1 MiB).
    pub body: Vec<u8>,
    /// Decoded body length.
    pub body_len: u64,
    /// Whether the decoded body equals the start of [`super::Pattern`].
    pub body_is_pattern: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Chunk extensions seen (raw text after the size, per chunk line).
    pub chunk_lines: Vec<String>,
}

impl Request {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the backend does with a request.
pub enum Reply {
    /// Write these bytes, then read the next request on the connection.
    Send(Vec<u8>),
    /// Write these bytes, then close the connection.
    SendAndClose(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Never answer: keep reading (and recording) until the peer closes.
    Hang,
    /// Write these bytes (a 101 response), then echo every byte back until EOF.
    Upgrade(Vec<u8>),
    /// Hand the socket to a function; it returns whether to read another request.
    Stream(Box<dyn FnOnce(&mut TcpStream) -> bool + Send>),
}

impl Reply {
    /// `200 OK` with a Content-Length body, kept alive.
    pub fn ok(body: impl AsRef<[u8]>) -> Reply {
        Reply::Send(response(200, &[], body.as_ref()))
    }

    pub fn status(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Reply {
        Reply::Send(response(status, headers, body.as_ref()))
    }
}

/// A complete response with Content-Length (unless a Content-Length or
/// Transfer-Encoding header is given in `headers`, then `body` is written as is).
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if !framed && !matches!(status, 100..=199 | 204 | 304) {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

/// Everything received on one connection.
#[derive(Clone, Debug, Default)]
pub struct ConnLog {
    pub id: usize,
    /// First 1 MiB of the bytes received.
    pub bytes: Vec<u8>,
    /// Bytes received in all.
    pub total: u64,
    /// The peer closed (EOF or reset was seen).
    pub peer_closed: bool,
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

struct Inner {
    handler: Box<Handler>,
    conns: Mutex<Vec<ConnLog>>,
    requests: Mutex<Vec<Request>>,
    changed: Condvar,
    streams: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    next_id: AtomicUsize,
}

/// A recording backend. Dropping it stops the accept loop and shuts every
/// connection down.
pub struct Backend {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Backend {
    /// A backend answering each request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        Self::serve(listener, handler)
    }

    /// Answers `200` with body `"{METHOD} {target}"` and header `X-Conn: <id>`.
    pub fn echo() -> Backend {
        Self::start(|r| {
            Reply::status(
                200,
                &[
                    ("X-Conn", &r.conn.to_string()),
                    ("Content-Type", "text/plain"),
                ],
                format!("{} {}", r.method, r.target),
            )
        })
    }

    pub fn serve(
        listener: TcpListener,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Backend {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            handler: Box::new(handler),
            conns: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            streams: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            next_id: AtomicUsize::new(0),
        });
        let acc = inner.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if acc.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = acc.next_id.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = stream.try_clone() {
                    acc.streams.lock().unwrap().push(c);
                }
                acc.conns.lock().unwrap().push(ConnLog {
                    id,
                    ..ConnLog::default()
                });
                acc.changed.notify_all();
                let inner = acc.clone();
                std::thread::spawn(move || serve_conn(inner, id, stream));
            }
        });
        Backend { addr, inner }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn conns(&self) -> Vec<ConnLog> {
        self.inner.conns.lock().unwrap().clone()
    }

    pub fn conn_count(&self) -> usize {
        self.inner.conns.lock().unwrap().len()
    }

    /// Bytes received over every connection so far.
    pub fn total_bytes(&self) -> u64 {
        self.inner
            .conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.total)
            .sum()
    }

    /// Waits until at least `n` requests were recorded; returns them all. Panics
    /// after `timeout`.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut reqs = self.inner.requests.lock().unwrap();
        while reqs.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "backend: expected {n} request(s) within {timeout:?}, got {}: {:?}",
                    reqs.len(),
                    reqs.iter()
                        .map(|r| format!("{} {}", r.method, r.target))
                        .collect::<Vec<_>>()
                );
            }
            reqs = self.inner.changed.wait_timeout(reqs, left).unwrap().0;
        }
        reqs.clone()
    }

    /// Waits until connection `id` has been closed by the peer.
    pub fn wait_peer_closed(&self, id: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            self.conns().iter().any(|c| c.id == id && c.peer_closed)
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for s in self.inner.streams.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A one-shot latch a handler can wait on (hold a request until the test says go).
#[derive(Clone, Default)]
pub struct Gate {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        let (m, c) = &*self.state;
        *m.lock().unwrap() = true;
        c.notify_all();
    }

    /// Waits until opened; false after `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (m, c) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut open = m.lock().unwrap();
        while !*open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            open = c.wait_timeout(open, left).unwrap().0;
        }
        true
    }
}

/// Reads from the socket and records every byte in the connection log.
struct Recorder {
    inner: Arc<Inner>,
    id: usize,
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Recorder {
    /// Reads more bytes into the buffer; Ok(false) at EOF.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut tmp = [0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.mark_closed();
                    return Err(e);
                }
            }
        };
        if n == 0 {
            self.mark_closed();
            return Ok(false);
        }
        {
            let mut conns = self.inner.conns.lock().unwrap();
            if let Some(c) = conns.iter_mut().find(|c| c.id == self.id) {
                c.total += n as u64;
                let room = KEEP.saturating_sub(c.bytes.len());
                c.bytes.extend_from_slice(&tmp[..n.min(room)]);
            }
        }
        self.inner.changed.notify_all();
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(true)
    }

    fn mark_closed(&self) {
        let mut conns = self.inner.conns.lock().unwrap();
        if let Some(c) = conns.iter_mut().find(|c| c.id == self.id) {
            c.peer_closed = true;
        }
        drop(conns);
        self.inner.changed.notify_all();
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// A line ending in CRLF (or LF), without it; None at EOF first.
    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let mut line = self.available()[..i].to_vec();
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(line);
            }
            if !matches!(self.fill(), Ok(true)) {
                return None;
            }
        }
    }

    /// Up to `max` bytes (at least one), None at EOF.
    fn some(&mut self, max: usize) -> Option<Vec<u8>> {
        if self.available().is_empty() && !matches!(self.fill(), Ok(true)) {
            return None;
        }
        let n = self.available().len().min(max);
        let out = self.available()[..n].to_vec();
        self.pos += n;
        Some(out)
    }

    /// Consumes up to `max` buffered-or-read bytes and passes them to `f`.
    fn consume_with(&mut self, max: u64, mut f: impl FnMut(&[u8])) -> Option<usize> {
        if self.available().is_empty() && !matches!(self.fill(), Ok(true)) {
            return None;
        }
        let n = (self.available().len() as u64).min(max) as usize;
        f(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Some(n)
    }
}

struct BodySink {
    body: Vec<u8>,
    len: u64,
    check: PatternCheck,
}

impl BodySink {
    fn new() -> Self {
        BodySink {
            body: Vec::new(),
            len: 0,
            check: PatternCheck::new(),
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        let room = KEEP.saturating_sub(self.body.len());
        self.body.extend_from_slice(&data[..data.len().min(room)]);
        self.check.feed(data);
    }
}

fn parse_fields(lines: &[Vec<u8>]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            match l.split_once(':') {
                Some((n, v)) => (n.to_owned(), v.trim_matches([' ', '\t']).to_owned()),
                None => (l.into_owned(), String::new()),
            }
        })
        .collect()
}

fn serve_conn(inner: Arc<Inner>, id: usize, stream: TcpStream) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut rd = Recorder {
        inner: inner.clone(),
        id,
        stream,
        buf: Vec::new(),
        pos: 0,
    };
    let mut index = 0;
    loop {
        // Request line (empty lines before it are skipped, RFC 9112 §2.2).
        let mut raw_head = Vec::new();
        let start = loop {
            match rd.line() {
                None => return,
                Some(l) if l.is_empty() => raw_head.extend_from_slice(b"\r\n"),
                Some(l) => break l,
            }
        };
        raw_head.extend_from_slice(&start);
        raw_head.extend_from_slice(b"\r\n");
        let mut field_lines = Vec::new();
        loop {
            let Some(l) = rd.line() else { return };
            raw_head.extend_from_slice(&l);
            raw_head.extend_from_slice(b"\r\n");
            if l.is_empty() {
                break;
            }
            field_lines.push(l);
        }
        let start = String::from_utf8_lossy(&start).into_owned();
        let mut parts = start.splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let version = parts.next().unwrap_or("").to_owned();
        let headers = parse_fields(&field_lines);
        let has = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        let chunked = has("transfer-encoding")
            .map(|(_, v)| v.to_ascii_lowercase().contains("chunked"))
            .unwrap_or(false);
        let length: u64 = has("content-length")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let upgrade = has("upgrade").is_some();

        let mut sink = BodySink::new();
        let mut trailers = Vec::new();
        let mut chunk_lines = Vec::new();
        let mut complete = true;
        if chunked {
            'chunks: loop {
                let Some(line) = rd.line() else {
                    complete = false;
                    break;
                };
                let line = String::from_utf8_lossy(&line).into_owned();
                let size_text = line.split(';').next().unwrap_or("").trim();
                if line.contains(';') {
                    chunk_lines.push(line.clone());
                }
                let Ok(size) = u64::from_str_radix(size_text, 16) else {
                    complete = false;
                    break;
                };
                if size == 0 {
                    let mut tl = Vec::new();
                    loop {
                        let Some(l) = rd.line() else {
                            complete = false;
                            break 'chunks;
                        };
                        if l.is_empty() {
                            break;
                        }
                        tl.push(l);
                    }
                    trailers = parse_fields(&tl);
                    break;
                }
                let mut left = size;
                while left > 0 {
                    match rd.consume_with(left, |d| sink.push(d)) {
                        Some(n) => left -= n as u64,
                        None => {
                            complete = false;
                            break 'chunks;
                        }
                    }
                }
                if rd.line().is_none() {
                    complete = false;
                    break;
                }
            }
        } else {
            let mut left = length;
            while left > 0 {
                match rd.consume_with(left, |d| sink.push(d)) {
                    Some(n) => left -= n as u64,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
        }

        let req = Request {
            conn: id,
            index,
            method,
            target,
            version,
            headers,
            raw_head,
            chunked,
            body_is_pattern: sink.check.ok(),
            body: sink.body,
            body_len: sink.len,
            trailers,
            chunk_lines,
        };
        index += 1;
        inner.requests.lock().unwrap().push(req.clone());
        inner.changed.notify_all();
        if !complete {
            return;
        }
        let _ = upgrade;

        match (inner.handler)(&req) {
            Reply::Send(bytes) => {
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = writer.write_all(&bytes);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Close => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Hang => {
                while rd.some(usize::MAX).is_some() {}
                return;
            }
            Reply::Upgrade(bytes) => {
                if writer.write_all(&bytes).is_err() {
                    return;
                }
                while let Some(data) = rd.some(usize::MAX) {
                    if writer.write_all(&data).is_err() {
                        return;
                    }
                }
                let _ = writer.shutdown(Shutdown::Write);
                return;
            }
            Reply::Stream(f) => {
                if !f(&mut writer) {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}
