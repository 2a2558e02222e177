//! Sans-IO HTTP/1.1 response framing.
//!
//! Bytes go in, "this many bytes consumed" and "a response completed" come out; no
//! socket in sight. The parser finds where each response ends (RFC 9112 section 6.3):
//! no body for HEAD, 1xx, 204 and 304; `Transfer-Encoding: chunked` decoded with
//! extensions and trailers (section 7.1); `Content-Length`; otherwise the body runs
//! until the connection closes. Interim 1xx responses are skipped. A response counts
//! only once its framing is complete, never on a partial read.
//!
//! It must not allocate or copy: heads are parsed in place with httparse into a fixed
//! header array, body bytes are only counted. The caller keeps unconsumed bytes (a
//! partial head) at the front of its buffer and feeds them again with more data.
//!
//! [`ChunkedDecoder`] is also used by the `serve` backend for chunked request bodies.

use std::mem::MaybeUninit;

/// Headers per response head; more is treated as malformed.
pub const MAX_HEADERS: usize = 96;

/// A completed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The connection may carry the next response (no `Connection: close`, not
    /// HTTP/1.0 without keep-alive, not delimited by close).
    pub keep_alive: bool,
}

/// What one call to [`ResponseParser::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to the current response and are done with.
    pub consumed: usize,
    /// Set when the response ended within the consumed bytes; the parser then waits
    /// for the next response's [`ResponseParser::expect`].
    pub complete: Option<Response>,
}

/// What the end of the connection means for the response in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eof {
    /// No byte of a response had arrived.
    Idle,
    /// The body was delimited by the close: the response is complete.
    Complete(Response),
    /// The response was cut short.
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed response head: {0}")]
    Head(#[from] httparse::Error),
    #[error("malformed status code")]
    Status,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("malformed chunked body: {0}")]
    Chunk(#[from] ChunkError),
}

/// Response framing state machine; one per connection, reused for every response.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// The response being read answers a request whose response has no body (HEAD).
    no_body: bool,
}

#[derive(Debug)]
enum State {
    Head,
    Body { response: Response, body: Body },
}

#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            no_body: false,
        }
    }

    /// Declares what the next response answers: `no_body` for HEAD. Call it before the
    /// first byte of each response.
    pub fn expect(&mut self, no_body: bool) {
        self.no_body = no_body;
    }

    /// True between responses (nothing of a response consumed yet).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Consumes bytes of the current response. Stops right after a complete response
    /// so that the rest of `input` can be fed for the next one. A partial head
    /// consumes nothing: feed it again with more bytes appended.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, ParseError> {
        let mut consumed = 0;
        loop {
            let rest = &input[consumed..];
            match &mut self.state {
                State::Head => {
                    if rest.is_empty() {
                        return Ok(Progress::more(consumed));
                    }
                    match parse_head(rest, self.no_body)? {
                        HeadOutcome::Partial => return Ok(Progress::more(consumed)),
                        HeadOutcome::Interim(n) => consumed += n,
                        HeadOutcome::Done(n, response) => {
                            return Ok(self.finish(consumed + n, response));
                        }
                        HeadOutcome::Body(n, response, body) => {
                            consumed += n;
                            self.state = State::Body { response, body };
                        }
                    }
                }
                State::Body { response, body } => {
                    let response = *response;
                    match body {
                        Body::Length(remaining) => {
                            let take = (*remaining).min(rest.len() as u64);
                            *remaining -= take;
                            consumed += take as usize;
                            if *remaining > 0 {
                                return Ok(Progress::more(consumed));
                            }
                            return Ok(self.finish(consumed, response));
                        }
                        Body::Chunked(decoder) => {
                            let (n, done) = decoder.feed(rest)?;
                            consumed += n;
                            if !done {
                                return Ok(Progress::more(consumed));
                            }
                            return Ok(self.finish(consumed, response));
                        }
                        Body::UntilClose => return Ok(Progress::more(input.len())),
                    }
                }
            }
        }
    }

    /// The connection closed. `leftover` is what the caller still holds unconsumed.
    pub fn eof(&mut self, leftover: &[u8]) -> Eof {
        let state = std::mem::replace(&mut self.state, State::Head);
        self.no_body = false;
        match state {
            State::Head if leftover.is_empty() => Eof::Idle,
            State::Head => Eof::Truncated,
            State::Body {
                response,
                body: Body::UntilClose,
            } => Eof::Complete(response),
            State::Body { .. } => Eof::Truncated,
        }
    }

    /// Forgets any response in progress (the connection is being replaced).
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.no_body = false;
    }

    fn finish(&mut self, consumed: usize, response: Response) -> Progress {
        self.state = State::Head;
        self.no_body = false;
        Progress {
            consumed,
            complete: Some(response),
        }
    }
}

impl Progress {
    fn more(consumed: usize) -> Progress {
        Progress {
            consumed,
            complete: None,
        }
    }
}

enum HeadOutcome {
    Partial,
    /// A 1xx interim response of this many bytes; the final one follows.
    Interim(usize),
    /// A response without body, complete after this many bytes.
    Done(usize, Response),
    Body(usize, Response, Body),
}

fn parse_head(buf: &[u8], no_body: bool) -> Result<HeadOutcome, ParseError> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut headers,
    )? {
        httparse::Status::Partial => return Ok(HeadOutcome::Partial),
        httparse::Status::Complete(n) => n,
    };
    let status = parsed.code.ok_or(ParseError::Status)?;
    if !(100..=999).contains(&status) {
        return Err(ParseError::Status);
    }
    let http11 = parsed.version == Some(1);

    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(h.value)?;
            if length.is_some_and(|l| l != v) {
                return Err(ParseError::ContentLength);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the final coding matters for framing (RFC 9112 section 6.3 rule 4).
            for coding in h.value.split(|&b| b == b',') {
                let coding = trim(coding);
                if !coding.is_empty() {
                    chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = trim(token);
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    // 1xx other than 101 are interim: the final response follows (RFC 9110 15.2).
    if (100..200).contains(&status) && status != 101 {
        return Ok(HeadOutcome::Interim(n));
    }
    let keep_alive = !close && (http11 || keep_alive_token) && status != 101;
    let response = Response { status, keep_alive };
    if no_body || status == 204 || status == 304 || status == 101 {
        return Ok(HeadOutcome::Done(n, response));
    }
    if transfer_encoding && length.is_some() {
        // RFC 9112 section 6.3 rule 3 allows a client to treat this as an error; it
        // is the classic request smuggling shape, so we do.
        return Err(ParseError::LengthAndTransferEncoding);
    }
    if transfer_encoding {
        if chunked_last {
            return Ok(HeadOutcome::Body(
                n,
                response,
                Body::Chunked(ChunkedDecoder::new()),
            ));
        }
        let response = Response {
            keep_alive: false,
            ..response
        };
        return Ok(HeadOutcome::Body(n, response, Body::UntilClose));
    }
    match length {
        Some(0) => Ok(HeadOutcome::Done(n, response)),
        Some(l) => Ok(HeadOutcome::Body(n, response, Body::Length(l))),
        None => {
            let response = Response {
                keep_alive: false,
                ..response
            };
            Ok(HeadOutcome::Body(n, response, Body::UntilClose))
        }
    }
}

/// `Content-Length = 1*DIGIT`, also the `5, 5` list form of repeated fields
/// (RFC 9110 section 8.6) as long as all members agree.
pub fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let mut result: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::ContentLength);
        }
        let v = part
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        if result.is_some_and(|r| r != v) {
            return Err(ParseError::ContentLength);
        }
        result = Some(v);
    }
    result.ok_or(ParseError::ContentLength)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("bad chunk size")]
    Size,
    #[error("bad chunk extension")]
    Extension,
    #[error("missing CRLF")]
    Crlf,
    #[error("bad trailer")]
    Trailer,
}

/// Decoder for `Transfer-Encoding: chunked` framing (RFC 9112 section 7.1): sizes,
/// extensions (skipped), data (counted, not copied), trailers (skipped).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    digits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    /// Whitespace or extensions after the size, up to CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            size: 0,
            digits: 0,
        }
    }

    /// Consumes chunked framing and data. Returns the bytes consumed and whether the
    /// body (including trailers and the final CRLF) is complete; it never consumes
    /// past the end of the body.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == ChunkState::Data {
                let take = self.size.min((input.len() - i) as u64);
                self.size -= take;
                i += take as usize;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // 16 hex digits fill a u64; more would overflow.
                        if self.digits >= 16 {
                            return Err(ChunkError::Size);
                        }
                        self.digits += 1;
                        self.size = self.size << 4 | u64::from(hex_value(b));
                        ChunkState::Size
                    }
                    _ if self.digits == 0 => return Err(ChunkError::Size),
                    b'\r' => ChunkState::SizeLf,
                    b';' | b' ' | b'\t' => ChunkState::Extension,
                    _ => return Err(ChunkError::Size),
                },
                ChunkState::Extension => match b {
                    b'\r' => ChunkState::SizeLf,
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => ChunkState::Extension,
                    _ => return Err(ChunkError::Extension),
                },
                ChunkState::SizeLf => match b {
                    b'\n' if self.size == 0 => ChunkState::TrailerStart,
                    b'\n' => ChunkState::Data,
                    _ => return Err(ChunkError::Crlf),
                },
                ChunkState::Data => unreachable!("handled above"),
                ChunkState::DataCr => match b {
                    b'\r' => ChunkState::DataLf,
                    _ => return Err(ChunkError::Crlf),
                },
                ChunkState::DataLf => match b {
                    b'\n' => {
                        self.digits = 0;
                        ChunkState::Size
                    }
                    _ => return Err(ChunkError::Crlf),
                },
                ChunkState::TrailerStart => match b {
                    b'\r' => ChunkState::EndLf,
                    b'\n' => return Err(ChunkError::Crlf),
                    _ => ChunkState::Trailer,
                },
                ChunkState::Trailer => match b {
                    b'\r' => ChunkState::TrailerLf,
                    b'\n' => return Err(ChunkError::Trailer),
                    _ => ChunkState::Trailer,
                },
                ChunkState::TrailerLf => match b {
                    b'\n' => ChunkState::TrailerStart,
                    _ => return Err(ChunkError::Crlf),
                },
                ChunkState::EndLf => match b {
                    b'\n' => {
                        self.state = ChunkState::Done;
                        return Ok((i, true));
                    }
                    _ => return Err(ChunkError::Crlf),
                },
                ChunkState::Done => {
                    // Never consume past the end of the body.
                    return Ok((i - 1, true));
                }
            };
        }
        Ok((i, self.state == ChunkState::Done))
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a connection would see: completed responses, then what EOF means.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        responses: Vec<Response>,
        eof: Eof,
    }

    /// Feeds `parts` one after another through a buffer like conn.rs does.
    /// `no_body[i]` says whether the i-th response answers a HEAD.
    fn drive(parts: &[&[u8]], no_body: &[bool]) -> Result<Outcome, ParseError> {
        let mut parser = ResponseParser::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut responses = Vec::new();
        parser.expect(no_body.first().copied().unwrap_or(false));
        for part in parts {
            buf.extend_from_slice(part);
            loop {
                let p = parser.feed(&buf)?;
                buf.drain(..p.consumed);
                match p.complete {
                    Some(r) => {
                        responses.push(r);
                        parser.expect(no_body.get(responses.len()).copied().unwrap_or(false));
                    }
                    None => break,
                }
            }
        }
        let eof = parser.eof(&buf);
        Ok(Outcome { responses, eof })
    }

    /// The outcome must not depend on how the bytes were split by the network.
    fn check_splits(raw: &[u8], no_body: &[bool]) -> Result<Outcome, ParseError> {
        let whole = drive(&[raw], no_body);
        for i in 0..=raw.len() {
            let split = drive(&[&raw[..i], &raw[i..]], no_body);
            assert_eq!(
                split,
                whole,
                "split at {i} of {:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        assert_eq!(drive(&bytes, no_body), whole, "byte by byte");
        whole
    }

    fn ok(status: u16) -> Response {
        Response {
            status,
            keep_alive: true,
        }
    }

    #[test]
    fn content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello world\n";
        let out = check_splits(raw, &[]).unwrap();
        assert_eq!(out.responses, vec![ok(200)]);
        assert_eq!(out.eof, Eof::Idle);
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;name=value;x\r\nhello\r\n\
            1A \t; ext=\"q\"\r\nabcdefghijklmnopqrstuvwxyz\r\n\
            0;last\r\nTrailer-One: 1\r\nTrailer-Two: two\r\n\r\n";
        let out = check_splits(raw, &[]).unwrap();
        assert_eq!(out.responses, vec![ok(200)]);
        assert_eq!(out.eof, Eof::Idle);
    }

    #[test]
    fn chunked_without_trailers_then_next_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
            HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let out = check_splits(raw, &[]).unwrap();
        assert_eq!(out.responses, vec![ok(200), ok(201)]);
    }

    #[test]
    fn pipelined_responses_in_one_buffer() {
        let mut raw = Vec::new();
        // (204 would have no body whatever its Content-Length: see head_204_304.)
        for (i, code) in [200, 201, 202, 203, 206].into_iter().enumerate() {
            raw.extend_from_slice(
                format!("HTTP/1.1 {code} OK\r\nContent-Length: {i}\r\n\r\n").as_bytes(),
            );
            raw.extend(std::iter::repeat_n(b'x', i));
        }
        let out = check_splits(&raw, &[]).unwrap();
        let statuses: Vec<u16> = out.responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 201, 202, 203, 206]);
        assert_eq!(out.eof, Eof::Idle);
    }

    #[test]
    fn head_204_304_have_no_body() {
        // HEAD: the Content-Length describes the GET response; no body follows.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\
            HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n\
            HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let out = check_splits(raw, &[true, false, false, false]).unwrap();
        let statuses: Vec<u16> = out.responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 204, 304, 200]);
        assert_eq!(out.eof, Eof::Idle);
    }

    #[test]
    fn interim_100_continue_is_skipped() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        let out = check_splits(raw, &[]).unwrap();
        assert_eq!(out.responses, vec![ok(200)]);
        // Only the interim part: nothing completes; the connection sees no response.
        let out = check_splits(b"HTTP/1.1 100 Continue\r\n\r\n", &[]).unwrap();
        assert!(out.responses.is_empty());
        assert_eq!(out.eof, Eof::Idle);
    }

    #[test]
    fn until_close_completes_at_eof() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody until close";
        let out = check_splits(raw, &[]).unwrap();
        assert!(out.responses.is_empty());
        assert_eq!(
            out.eof,
            Eof::Complete(Response {
                status: 200,
                keep_alive: false
            })
        );
    }

    #[test]
    fn keep_alive_rules() {
        let out = check_splits(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            &[],
        )
        .unwrap();
        assert!(!out.responses[0].keep_alive);
        let out = check_splits(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &[]).unwrap();
        assert!(!out.responses[0].keep_alive);
        let out = check_splits(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
            &[],
        )
        .unwrap();
        assert!(out.responses[0].keep_alive);
        let out = check_splits(
            b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 0\r\n\r\n",
            &[],
        )
        .unwrap();
        assert!(!out.responses[0].keep_alive);
    }

    #[test]
    fn truncated_is_not_counted() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Len"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTrailer: x\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r",
        ] {
            let out = check_splits(raw, &[]).unwrap();
            assert!(
                out.responses.is_empty(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(
                out.eof,
                Eof::Truncated,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // A good response followed by a cut one: exactly one counted.
        let out = check_splits(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
            &[],
        )
        .unwrap();
        assert_eq!(out.responses, vec![ok(200)]);
        assert_eq!(out.eof, Eof::Truncated);
    }

    fn is_malformed(raw: &[u8]) -> bool {
        // Malformed whatever the split: every split must report an error.
        for i in 0..=raw.len() {
            if drive(&[&raw[..i], &raw[i..]], &[]).is_ok() {
                return false;
            }
        }
        true
    }

    #[test]
    fn malformed_responses_are_errors() {
        for raw in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\rXabc\r\n",
        ] {
            assert!(
                is_malformed(raw),
                "{:?} should be malformed",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn repeated_equal_content_length_is_accepted() {
        assert_eq!(parse_content_length(b"5, 5").unwrap(), 5);
        assert!(parse_content_length(b"5, 6").is_err());
        assert!(parse_content_length(b"").is_err());
        assert!(parse_content_length(b"+5").is_err());
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(check_splits(raw, &[]).unwrap().responses, vec![ok(200)]);
    }

    #[test]
    fn chunked_decoder_stops_at_end_of_body() {
        let mut d = ChunkedDecoder::new();
        let input = b"2\r\nab\r\n0\r\n\r\nNEXT";
        assert_eq!(d.feed(input).unwrap(), (input.len() - 4, true));
        assert_eq!(d.feed(b"more").unwrap(), (0, true));
    }
}
