//! Response head parsing (RFC 9112 4, 6.3, 9.3) for what backends send back.
//! Same line and field rules as requests, no Host rule, and the response side of
//! message framing: which responses have no body, and when the body runs until
//! the connection closes. Any error here is the backend's fault; the proxy turns
//! it into a 502 and does not reuse the connection.

use super::body::BodyKind;
use super::error::ParseError;
use super::head::{self, Framing};
use super::headers::Header;
use super::limits::Limits;
use super::syntax::is_other_http_version;
use super::Version;

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// 100 to 599.
    pub status: u16,
    /// As received; "" when absent or when it held obs-text.
    pub reason: String,
    pub version: Version,
    /// All field lines, in order, as received.
    pub headers: Vec<Header>,
    pub body: BodyKind,
    /// Whether the connection can carry another request after this response
    /// (RFC 9112 9.3); never with an until-close body.
    pub keep_alive: bool,
}

/// Parse a response head from the front of `buf`. `head_request`: the request
/// was HEAD, so there is no body whatever the fields say. 1xx, 204 and 304
/// responses have no body either (RFC 9112 6.3 rule 1). Framing fields are
/// validated even when they do not apply.
///
/// `Ok(None)`: incomplete, feed more bytes. `Ok(Some((head, consumed)))`: the
/// head was the first `consumed` bytes of `buf`.
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
    head_request: bool,
) -> Result<Option<(ResponseHead, usize)>, ParseError> {
    // Status lines have no limit of their own beyond the head size.
    let Some(span) = head::scan_head(buf, usize::MAX, limits.max_header_bytes)? else {
        return Ok(None);
    };
    let bytes = buf
        .get(span.start..span.end)
        .ok_or(ParseError::Invalid("malformed head"))?;
    let line = buf.get(span.start..span.line_end).unwrap_or(&[]);
    let head = head::with_slots(limits.max_headers, bytes.len(), |slots| {
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, bytes, slots);
        match parsed {
            Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
            Ok(_) => return Err(ParseError::Invalid("malformed head")),
            Err(httparse::Error::Version) => {
                let version = line.split(|&b| b == b' ').next().unwrap_or(&[]);
                return Err(if is_other_http_version(version) {
                    ParseError::UnsupportedVersion
                } else {
                    ParseError::Invalid("invalid HTTP version")
                });
            }
            Err(e) => return Err(head::map_httparse(e)),
        }
        let (Some(minor), Some(status), Some(reason)) = (res.version, res.code, res.reason) else {
            return Err(ParseError::Invalid("malformed head"));
        };
        let version = if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        };
        build(status, reason, version, res.headers, head_request)
    })?;
    Ok(Some((head, span.end)))
}

fn build(
    status: u16,
    reason: &str,
    version: Version,
    parsed: &[httparse::Header<'_>],
    head_request: bool,
) -> Result<ResponseHead, ParseError> {
    // RFC 9110 15: three digits, first one 1 to 5.
    if !(100..=599).contains(&status) {
        return Err(ParseError::Invalid("invalid status code"));
    }
    let fields = head::collect_fields(parsed, version)?;
    // RFC 9112 6.3: HEAD responses and 1xx/204/304 end at the head (rule 1);
    // then chunked (rule 4), then Content-Length (rule 6), else the body runs
    // until the server closes (rule 8). A 2xx answer to CONNECT (rule 2) is the
    // caller's business: it knows the method.
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let body = match fields.framing {
        _ if no_body => BodyKind::Empty,
        Framing::Chunked => BodyKind::Chunked,
        Framing::Length(n) => BodyKind::Length(n),
        Framing::None => BodyKind::UntilClose,
    };
    let persistent = match version {
        Version::Http11 => !fields.conn_close,
        Version::Http10 => fields.conn_keep_alive && !fields.conn_close,
    };
    Ok(ResponseHead {
        status,
        reason: reason.to_owned(),
        version,
        headers: fields.headers,
        body,
        keep_alive: persistent && body != BodyKind::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testutil::{self, Event};

    fn parse(buf: &[u8], head_request: bool) -> Result<Option<(ResponseHead, usize)>, ParseError> {
        parse_response_head(buf, &Limits::default(), head_request)
    }

    fn ok(buf: &[u8]) -> ResponseHead {
        let (head, n) = parse(buf, false).unwrap().expect("complete");
        assert!(n <= buf.len());
        testutil::assert_responses_split_invariant(buf, false);
        head
    }

    fn invalid(buf: &[u8], reason: &str) {
        match parse(buf, false) {
            Err(ParseError::Invalid(r)) => {
                assert_eq!(r, reason, "{:?}", String::from_utf8_lossy(buf))
            }
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
        testutil::assert_responses_split_invariant(buf, false);
    }

    #[test]
    fn ok_with_length() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: x\r\n\r\nhi";
        let (h, n) = parse(buf, false).unwrap().unwrap();
        assert_eq!(n, buf.len() - 2);
        assert_eq!(h.status, 200);
        assert_eq!(h.reason, "OK");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.body, BodyKind::Length(2));
        assert!(h.keep_alive);
        assert_eq!(h.headers.len(), 2);
        let events = testutil::run_responses(&[&buf[..]], false, true);
        assert_eq!(
            events,
            vec![
                Event::Head("200 OK".into()),
                Event::Data(b"hi".to_vec()),
                Event::End
            ]
        );
        ok(buf);
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(
            ok(b"HTTP/1.1 404 Not  Found\t!\r\nContent-Length: 0\r\n\r\n").reason,
            "Not  Found\t!"
        );
        assert_eq!(ok(b"HTTP/1.1 204\r\n\r\n").reason, "");
        assert_eq!(ok(b"HTTP/1.1 204 \r\n\r\n").reason, "");
        // obs-text in the reason is dropped, not rejected.
        assert_eq!(
            ok(b"HTTP/1.1 200 \xc3\xa9\r\nContent-Length: 0\r\n\r\n").reason,
            ""
        );
    }

    #[test]
    fn no_body_responses() {
        for status in [100u16, 101, 103, 199, 204, 304] {
            let buf = format!("HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n");
            let (h, _) = parse(buf.as_bytes(), false).unwrap().unwrap();
            assert_eq!(h.body, BodyKind::Empty, "{status}");
            assert!(h.keep_alive);
        }
        let (h, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::Empty);
        let (h, _) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.body, BodyKind::Empty);
        let (h, _) = parse(b"HTTP/1.1 200 OK\r\n\r\n", true).unwrap().unwrap();
        assert_eq!(h.body, BodyKind::Empty);
        assert!(h.keep_alive);
        // Framing fields are still checked when they do not apply.
        assert_eq!(
            parse(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
                false
            ),
            Err(ParseError::Invalid("invalid Content-Length"))
        );
        testutil::assert_responses_split_invariant(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            true,
        );
    }

    #[test]
    fn interim_then_final() {
        let stream = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(
            testutil::run_responses(&[&stream[..]], false, false),
            vec![
                Event::Head("100 Continue".into()),
                Event::End,
                Event::Head("103 Early Hints".into()),
                Event::End,
                Event::Head("200 OK".into()),
                Event::Data(b"ok".to_vec()),
                Event::End,
            ]
        );
        testutil::assert_responses_split_invariant(stream, false);
    }

    #[test]
    fn until_close() {
        let buf = b"HTTP/1.1 200 OK\r\nServer: old\r\n\r\nline one\r\nline two";
        let (h, _) = parse(buf, false).unwrap().unwrap();
        assert_eq!(h.body, BodyKind::UntilClose);
        assert!(!h.keep_alive);
        assert_eq!(
            testutil::run_responses(&[&buf[..]], false, true),
            vec![
                Event::Head("200 OK".into()),
                Event::Data(b"line one\r\nline two".to_vec()),
                Event::End,
            ]
        );
        testutil::assert_responses_split_invariant(buf, false);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(
            !ok(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
        assert!(!ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        assert!(!ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_rules() {
        invalid(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        );
        invalid(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "duplicate Content-Length",
        );
        invalid(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
            "invalid Content-Length",
        );
        invalid(
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "invalid Content-Length",
        );
        invalid(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "Transfer-Encoding is not exactly chunked",
        );
        invalid(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "Transfer-Encoding is not exactly chunked",
        );
        invalid(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "multiple Transfer-Encoding fields",
        );
        invalid(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0 message",
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n").body,
            BodyKind::Chunked
        );
    }

    #[test]
    fn status_line_rules() {
        invalid(b"HTTP/1.1 099 X\r\n\r\n", "invalid status code");
        invalid(b"HTTP/1.1 600 X\r\n\r\n", "invalid status code");
        invalid(b"HTTP/1.1 20 X\r\n\r\n", "invalid status line");
        invalid(b"HTTP/1.1 2000 X\r\n\r\n", "invalid status line");
        invalid(b"HTTP/1.1 abc X\r\n\r\n", "invalid status line");
        invalid(b"HTTP/1.1  200 X\r\n\r\n", "invalid status line");
        invalid(b"HTTP/1.1\r\n\r\n", "invalid HTTP version");
        invalid(b"HTTP/1.1 200 OK\nServer: x\r\n\r\n", "bare LF in head");
        invalid(b"HTTP/1.1 200 O\rK\r\n\r\n", "bare CR in head");
        invalid(
            b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
            "field line starts with whitespace (obs-fold)",
        );
        invalid(b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "invalid field name");
        invalid(
            b"HTTP/1.1 200 OK\r\nA: \x01\r\n\r\n",
            "control character in head",
        );
        invalid(b"ICY 200 OK\r\n\r\n", "invalid HTTP version");
        assert_eq!(
            parse(b"HTTP/2.0 200 OK\r\n\r\n", false),
            Err(ParseError::UnsupportedVersion)
        );
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_request_line: 4,
            max_header_bytes: 40,
            max_headers: 1,
        };
        // The request line limit does not apply to status lines.
        assert!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n", &limits, false)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\n", &limits, false),
            Err(ParseError::TooManyHeaders)
        );
        let mut big = b"HTTP/1.1 200 OK\r\nA: ".to_vec();
        big.resize(41, b'x');
        assert_eq!(
            parse_response_head(&big, &limits, false),
            Err(ParseError::HeadersTooLarge)
        );
    }
}
