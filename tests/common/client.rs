//! A raw TCP HTTP/1.1 client: sends exactly the bytes a test gives it and reads
//! responses with exact framing (RFC 9112 §6.3), so a missing, extra or mis-framed byte
//! from the gateway shows up as a failure instead of being smoothed over. Responses
//! are read in order from one buffer, so pipelined responses can be read one by one.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Receives body bytes as they arrive instead of collecting them.
pub type BodySink<'a> = &'a mut dyn FnMut(&[u8]);

use super::show;

/// Default bound for reading one response (things that must happen).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// Decoded body (empty when a body callback consumed it).
    pub body: Vec<u8>,
    pub body_len: u64,
    pub chunked: bool,
    /// The body was delimited by the connection closing.
    pub until_close: bool,
    pub trailers: Vec<(String, String)>,
    pub raw_head: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

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

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body_str()))
    }

    /// Whether a `Connection` header lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers_named("connection")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// What `read_to_close` saw.
#[derive(Debug)]
pub struct Closed {
    /// Bytes that arrived before the end.
    pub data: Vec<u8>,
    /// The connection ended (EOF or reset) before the timeout.
    pub closed: bool,
    /// It ended with a reset rather than a FIN.
    pub reset: bool,
}

/// One client connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    pub timeout: Duration,
}

enum ReadErr {
    Eof,
    Reset,
    Timeout,
    Other(String),
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).ok();
        Client {
            stream,
            buf: Vec::new(),
            pos: 0,
            timeout: READ_TIMEOUT,
        }
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true).ok();
        Ok(Client {
            stream,
            buf: Vec::new(),
            pos: 0,
            timeout: READ_TIMEOUT,
        })
    }

    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        let data = data.as_ref();
        self.stream
            .write_all(data)
            .unwrap_or_else(|e| panic!("send {:?}: {e}", show(data, 200)));
    }

    pub fn try_send(&mut self, data: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.stream.write_all(data.as_ref())
    }

    /// Half-closes the sending side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads a response to a GET; panics with context on any error.
    pub fn read_response(&mut self) -> Response {
        self.read_response_for("GET")
    }

    /// Reads a response to a request with `method` (HEAD responses have no body).
    pub fn read_response_for(&mut self, method: &str) -> Response {
        self.try_read_response(method, None)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads a response; when `on_body` is given, body bytes go to it instead of
    /// `Response::body`.
    pub fn try_read_response(
        &mut self,
        method: &str,
        mut on_body: Option<BodySink<'_>>,
    ) -> Result<Response, String> {
        let deadline = Instant::now() + self.timeout;
        // Head.
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n\r\n") {
                break self.pos + i + 4;
            }
            if let Err(e) = self.fill(deadline) {
                let got = show(&self.buf[self.pos..], 600);
                return Err(match e {
                    ReadErr::Eof => {
                        format!("connection closed before a complete response head; got {got:?}")
                    }
                    ReadErr::Reset => {
                        format!("connection reset before a complete response head; got {got:?}")
                    }
                    ReadErr::Timeout => format!(
                        "no complete response head within {:?}; got {got:?}",
                        self.timeout
                    ),
                    ReadErr::Other(e) => format!("read error {e}; got {got:?}"),
                });
            }
        };
        let raw_head = self.buf[self.pos..head_end].to_vec();
        self.pos = head_end;
        let mut resp = parse_head(&raw_head)?;
        resp.raw_head = raw_head;

        // Framing of the body (RFC 9112 §6.3).
        let no_body = method == "HEAD" || matches!(resp.status, 100..=199 | 204 | 304);
        if no_body {
            return Ok(resp);
        }
        let te = resp.headers_named("transfer-encoding").join(",");
        let cls: Vec<String> = resp
            .headers_named("content-length")
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !te.is_empty() && !cls.is_empty() {
            return Err(format!(
                "response has both Transfer-Encoding and Content-Length: {:?}",
                show(&resp.raw_head, 2000)
            ));
        }
        let mut sink = |data: &[u8], resp: &mut Response| {
            resp.body_len += data.len() as u64;
            match on_body.as_mut() {
                Some(f) => f(data),
                None => resp.body.extend_from_slice(data),
            }
        };
        if !te.is_empty() {
            let last = te
                .rsplit(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if last == "chunked" {
                resp.chunked = true;
                loop {
                    let line = self.line(deadline).map_err(|e| {
                        format!("{e} in chunked body after {} bytes", resp.body_len)
                    })?;
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let size_text = text.split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size_text, 16).map_err(|_| {
                        format!(
                            "bad chunk size line {:?} from the gateway",
                            show(&line, 100)
                        )
                    })?;
                    if size == 0 {
                        let mut tl = Vec::new();
                        loop {
                            let l = self
                                .line(deadline)
                                .map_err(|e| format!("{e} in trailers"))?;
                            if l.is_empty() {
                                break;
                            }
                            tl.push(l);
                        }
                        resp.trailers = fields(&tl)?;
                        return Ok(resp);
                    }
                    let mut left = size;
                    while left > 0 {
                        if self.pos == self.buf.len() {
                            self.fill(deadline).map_err(|e| {
                                format!(
                                    "{} inside a chunk ({} of {size} bytes missing) after {} body bytes",
                                    describe(&e),
                                    left,
                                    resp.body_len
                                )
                            })?;
                        }
                        let n = ((self.buf.len() - self.pos) as u64).min(left) as usize;
                        let data = self.buf[self.pos..self.pos + n].to_vec();
                        self.pos += n;
                        left -= n as u64;
                        sink(&data, &mut resp);
                        self.compact();
                    }
                    let crlf = self
                        .line(deadline)
                        .map_err(|e| format!("{e} after chunk data"))?;
                    if !crlf.is_empty() {
                        return Err(format!(
                            "chunk data not followed by CRLF: {:?}",
                            show(&crlf, 100)
                        ));
                    }
                }
            }
            // Any other coding: the body runs until the connection closes.
        } else if !cls.is_empty() {
            let first = cls[0].clone();
            if cls.iter().any(|v| *v != first) || first.split(',').count() > 1 {
                return Err(format!("response has conflicting Content-Length: {cls:?}"));
            }
            let mut left: u64 = first
                .trim()
                .parse()
                .map_err(|_| format!("response Content-Length {first:?} is not a number"))?;
            while left > 0 {
                if self.pos == self.buf.len() {
                    self.fill(deadline).map_err(|e| {
                        format!(
                            "{} with {left} of {first} body bytes missing (got {:?})",
                            describe(&e),
                            show(&resp.body, 200)
                        )
                    })?;
                }
                let n = ((self.buf.len() - self.pos) as u64).min(left) as usize;
                let data = self.buf[self.pos..self.pos + n].to_vec();
                self.pos += n;
                left -= n as u64;
                sink(&data, &mut resp);
                self.compact();
            }
            return Ok(resp);
        }
        // Until close.
        resp.until_close = true;
        loop {
            if self.pos < self.buf.len() {
                let data = self.buf[self.pos..].to_vec();
                self.pos = self.buf.len();
                sink(&data, &mut resp);
                self.compact();
            }
            match self.fill(deadline) {
                Ok(()) => {}
                Err(ReadErr::Eof) => return Ok(resp),
                Err(e) => {
                    return Err(format!(
                        "{} in a body delimited by close after {} bytes",
                        describe(&e),
                        resp.body_len
                    ))
                }
            }
        }
    }

    /// Reads until the peer closes or `timeout` passes.
    pub fn read_to_close(&mut self, timeout: Duration) -> Closed {
        let deadline = Instant::now() + timeout;
        let mut data = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        loop {
            match self.fill(deadline) {
                Ok(()) => {
                    data.extend_from_slice(&self.buf[self.pos..]);
                    self.pos = self.buf.len();
                    self.compact();
                }
                Err(ReadErr::Eof) => {
                    return Closed {
                        data,
                        closed: true,
                        reset: false,
                    }
                }
                Err(ReadErr::Reset) => {
                    return Closed {
                        data,
                        closed: true,
                        reset: true,
                    }
                }
                Err(ReadErr::Timeout) => {
                    return Closed {
                        data,
                        closed: false,
                        reset: false,
                    }
                }
                Err(ReadErr::Other(_)) => {
                    return Closed {
                        data,
                        closed: true,
                        reset: true,
                    }
                }
            }
        }
    }

    /// The peer closes within `timeout` without sending anything more.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<(), String> {
        let c = self.read_to_close(timeout);
        if !c.data.is_empty() {
            return Err(format!(
                "expected the connection to close, got more bytes: {:?}",
                show(&c.data, 400)
            ));
        }
        if !c.closed {
            return Err(format!("connection still open after {timeout:?}"));
        }
        Ok(())
    }

    /// Reads exactly `n` raw bytes (a tunnel), failing on close or after `timeout`.
    pub fn read_exact_bytes(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() - self.pos < n {
            if let Err(e) = self.fill(deadline) {
                return Err(format!(
                    "{} after {:?}",
                    describe(&e),
                    show(&self.buf[self.pos..], 200)
                ));
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// Bytes already received but not consumed by a read.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn compact(&mut self) {
        if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), ReadErr> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadErr::Timeout);
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(ReadErr::Eof),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(ReadErr::Reset),
                Err(e) => return Err(ReadErr::Other(e.to_string())),
            }
        }
    }

    fn line(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            if let Err(e) = self.fill(deadline) {
                return Err(format!(
                    "{} (pending {:?})",
                    describe(&e),
                    show(&self.buf[self.pos..], 100)
                ));
            }
        }
    }
}

fn describe(e: &ReadErr) -> String {
    match e {
        ReadErr::Eof => "connection closed".to_owned(),
        ReadErr::Reset => "connection reset".to_owned(),
        ReadErr::Timeout => "timed out".to_owned(),
        ReadErr::Other(e) => format!("read error: {e}"),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(raw: &[u8]) -> Result<Response, String> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| format!("response head is not UTF-8: {:?}", show(raw, 600)))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_owned();
    let code = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("").to_owned();
    if !(version == "HTTP/1.1" || version == "HTTP/1.0") || code.len() != 3 {
        return Err(format!(
            "bad status line {status_line:?} in {:?}",
            show(raw, 600)
        ));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("bad status code in {status_line:?}"))?;
    let field_lines: Vec<Vec<u8>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect();
    Ok(Response {
        version,
        status,
        reason,
        headers: fields(&field_lines)?,
        ..Response::default()
    })
}

fn fields(lines: &[Vec<u8>]) -> Result<Vec<(String, String)>, String> {
    lines
        .iter()
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            let (n, v) = l
                .split_once(':')
                .ok_or_else(|| format!("header line without ':' from the gateway: {l:?}"))?;
            if n.is_empty() || n.contains([' ', '\t']) {
                return Err(format!("bad header name from the gateway: {l:?}"));
            }
            Ok((n.to_owned(), v.trim_matches([' ', '\t']).to_owned()))
        })
        .collect()
}

/// Sends `raw` on a new connection and reads one response (to a GET unless `raw`
/// starts with "HEAD").
pub fn request(addr: SocketAddr, raw: impl AsRef<[u8]>) -> Response {
    let raw = raw.as_ref();
    let mut c = Client::connect(addr);
    c.send(raw);
    let method = if raw.starts_with(b"HEAD ") {
        "HEAD"
    } else {
        "GET"
    };
    c.try_read_response(method, None)
        .unwrap_or_else(|e| panic!("request {:?}: {e}", show(raw, 300)))
}

/// `GET path` with `Host: test.local` on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, super::get_req(path))
}
