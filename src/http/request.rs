//! Request head parsing (RFC 9112 3, 6, 9.3). Turns the bytes a client sent into
//! a `RequestHead` whose framing, Host, target and connection options are
//! unambiguous, or into the `ParseError` the gateway answers with before closing.
//! The function is stateless: call it again on the grown buffer until it returns
//! a head. It does not read bodies (see `body`) and does not decide routing.

use super::body::BodyKind;
use super::error::ParseError;
use super::head::{self, Framing};
use super::headers::Header;
use super::limits::Limits;
use super::syntax::{is_other_http_version, valid_authority, valid_target_bytes};
use super::Version;
use compact_str::CompactString;

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, case-sensitive as received (RFC 9110 9.1). Held inline up
    /// to 24 bytes, as are `target` and `host`: parsing a head with a short path
    /// allocates once, for its list of fields.
    pub method: CompactString,
    /// Origin-form "/path?query", or "*" for `OPTIONS *`. An absolute-form
    /// target is converted to origin-form (RFC 9112 3.2.2).
    pub target: CompactString,
    pub version: Version,
    /// All field lines, in order, as received.
    pub headers: Vec<Header>,
    /// The validated authority, lowercased: the absolute-form authority when
    /// the target had one, else the single Host field ("" only for an
    /// HTTP/1.0 request without Host).
    pub host: CompactString,
    /// `Empty`, `Length(n)` or `Chunked`; never `UntilClose` (RFC 9112 6.3 rule 7).
    pub body: BodyKind,
    /// Whether the connection may carry another request (RFC 9112 9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 10.1.1).
    pub expect_continue: bool,
    /// The Upgrade field value, only when Connection lists "upgrade" on an
    /// HTTP/1.1 request (RFC 9110 7.8).
    pub upgrade: Option<String>,
}

impl RequestHead {
    /// The target up to the first "?".
    pub fn path(&self) -> &str {
        self.target.get(..self.query_mark()).unwrap_or(&self.target)
    }

    /// The target after the first "?", if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.get(self.query_mark() + 1..)
    }

    /// Where the first "?" is, or the target's length. A plain loop: targets are short,
    /// and this runs several times per request.
    fn query_mark(&self) -> usize {
        let t = self.target.as_bytes();
        t.iter().position(|&b| b == b'?').unwrap_or(t.len())
    }
}

/// Parse a request head from the front of `buf`.
///
/// `Ok(None)`: incomplete, feed more bytes. `Ok(Some((head, consumed)))`: the
/// head was the first `consumed` bytes of `buf` (including skipped empty lines
/// before it). `Err`: answer `err.status()` and close the connection. The answer
/// never depends on how the bytes were split across reads.
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    let Some(span) = head::scan_head(buf, limits.max_request_line, limits.max_header_bytes)? else {
        return Ok(None);
    };
    let bytes = buf
        .get(span.start..span.end)
        .ok_or(ParseError::Invalid("malformed head"))?;
    let line = buf.get(span.start..span.line_end).unwrap_or(&[]);
    let head = head::with_slots(limits.max_headers, bytes.len(), |slots| {
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, bytes, slots);
        match parsed {
            Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
            // The scanner found a complete head; httparse disagreeing means
            // a line it could not frame.
            Ok(_) => return Err(ParseError::Invalid("malformed head")),
            Err(httparse::Error::Version) => return Err(version_error(line)),
            Err(httparse::Error::Token) if req.method.is_none() => {
                return Err(ParseError::Invalid("invalid method"))
            }
            Err(httparse::Error::Token) => {
                return Err(ParseError::Invalid("invalid request-target"))
            }
            Err(e) => return Err(head::map_httparse(e)),
        }
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(ParseError::Invalid("malformed head"));
        };
        let version = if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        };
        build(method, target, version, req.headers)
    })?;
    Ok(Some((head, span.end)))
}

/// A request-target converted to what the head exposes.
enum Target {
    Origin(CompactString),
    /// Absolute-form: origin-form target and the authority (RFC 9112 3.2.2).
    Absolute(CompactString, CompactString),
    Asterisk,
}

fn build(
    method: &str,
    raw_target: &str,
    version: Version,
    parsed: &[httparse::Header<'_>],
) -> Result<RequestHead, ParseError> {
    let target = parse_target(method, raw_target)?;
    let fields = head::collect_fields(parsed, version)?;

    // Host (RFC 9112 3.2, RFC 9110 7.2): exactly one on HTTP/1.1, at most one
    // on HTTP/1.0, always a valid authority.
    if fields.host_count > 1 {
        return Err(ParseError::Invalid("multiple Host fields"));
    }
    let host_field = fields
        .host
        .and_then(|i| fields.headers.get(i))
        .map(|h| h.value.as_slice());
    match (host_field, version) {
        (None, Version::Http11) => return Err(ParseError::Invalid("missing Host")),
        (Some([]), Version::Http11) => return Err(ParseError::Invalid("empty Host")),
        (Some(v), _) if !v.is_empty() && !valid_authority(v) => {
            return Err(ParseError::Invalid("invalid Host"))
        }
        _ => {}
    }
    // A valid authority is ASCII, so it is always UTF-8.
    let field_host = || {
        let mut h = std::str::from_utf8(host_field.unwrap_or(&[]))
            .map(CompactString::from)
            .unwrap_or_default();
        h.make_ascii_lowercase();
        h
    };
    let (target, host) = match target {
        Target::Origin(t) => (t, field_host()),
        Target::Asterisk => (CompactString::const_new("*"), field_host()),
        Target::Absolute(t, authority) => {
            // RFC 9112 3.2.2: the absolute-form authority replaces Host. A
            // Host that says something else is how routing and the backend
            // end up disagreeing, so it must name the same authority.
            if let Some(v) = host_field {
                if !v.eq_ignore_ascii_case(authority.as_bytes()) {
                    return Err(ParseError::Invalid(
                        "Host does not match absolute-form authority",
                    ));
                }
            }
            (t, authority)
        }
    };

    let body = match fields.framing {
        Framing::None => BodyKind::Empty,
        Framing::Length(n) => BodyKind::Length(n),
        Framing::Chunked => BodyKind::Chunked,
    };
    // RFC 9112 9.3: HTTP/1.1 is persistent unless "close"; HTTP/1.0 only with
    // "keep-alive".
    let keep_alive = match version {
        Version::Http11 => !fields.conn_close,
        Version::Http10 => fields.conn_keep_alive && !fields.conn_close,
    };
    let expect_continue = version == Version::Http11 && fields.expect_continue;
    // RFC 9110 7.8: Upgrade counts only with the "upgrade" connection option,
    // and is ignored on HTTP/1.0.
    let upgrade = if version == Version::Http11 && fields.conn_upgrade {
        head::upgrade_value(&fields)?
    } else {
        None
    };

    Ok(RequestHead {
        method: CompactString::from(method),
        target,
        version,
        headers: fields.headers,
        host,
        body,
        keep_alive,
        expect_continue,
        upgrade,
    })
}

/// RFC 9112 3.2: origin-form, absolute-form (http/https only) or asterisk-form
/// (OPTIONS only). Authority-form (CONNECT) is not served by a gateway.
fn parse_target(method: &str, t: &str) -> Result<Target, ParseError> {
    match t.as_bytes() {
        [b'/', ..] => {
            if valid_target_bytes(t.as_bytes()) {
                Ok(Target::Origin(CompactString::from(t)))
            } else {
                Err(ParseError::Invalid("invalid request-target"))
            }
        }
        b"*" if method == "OPTIONS" => Ok(Target::Asterisk),
        b"*" => Err(ParseError::Invalid("asterisk-form target without OPTIONS")),
        _ => parse_absolute(t),
    }
}

/// absolute-form = absolute-URI (RFC 9112 3.2.2), limited to
/// `http[s]://authority[path-abempty][?query]`.
fn parse_absolute(t: &str) -> Result<Target, ParseError> {
    const BAD: ParseError = ParseError::Invalid("invalid request-target");
    let rest = strip_prefix_ignore_case(t, "http://")
        .or_else(|| strip_prefix_ignore_case(t, "https://"))
        .ok_or(BAD)?;
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    if !valid_authority(authority.as_bytes()) || !valid_target_bytes(path.as_bytes()) {
        return Err(BAD);
    }
    // RFC 9112 3.2.1: an empty path is sent as "/".
    let target = if path.starts_with('/') {
        CompactString::from(path)
    } else {
        let mut target = CompactString::with_capacity(path.len() + 1);
        target.push('/');
        target.push_str(path);
        target
    };
    let mut authority = CompactString::from(authority);
    authority.make_ascii_lowercase();
    Ok(Target::Absolute(target, authority))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// httparse only knows HTTP/1.0 and 1.1: tell a well-formed other version (505,
/// including the HTTP/2 preface "PRI * HTTP/2.0") from a broken line (400).
fn version_error(line: &[u8]) -> ParseError {
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(v), None) if is_other_http_version(v) => {
            ParseError::UnsupportedVersion
        }
        _ => ParseError::Invalid("invalid request line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testutil::{self, Event};

    fn parse(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, ParseError> {
        parse_request_head(buf, &Limits::default())
    }

    fn ok(buf: &[u8]) -> RequestHead {
        let (head, consumed) = parse(buf)
            .unwrap_or_else(|e| panic!("{e:?} for {:?}", String::from_utf8_lossy(buf)))
            .expect("complete");
        assert!(consumed <= buf.len());
        // Whatever the split, the same head (or the same error) comes out.
        testutil::assert_request_split_invariant(buf);
        head
    }

    fn err(buf: &[u8]) -> ParseError {
        let e = parse(buf).expect_err("must be rejected");
        testutil::assert_request_split_invariant(buf);
        e
    }

    fn invalid(buf: &[u8], reason: &str) {
        match err(buf) {
            ParseError::Invalid(r) => assert_eq!(r, reason, "{:?}", String::from_utf8_lossy(buf)),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\n";
        let (h, n) = parse(buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a/b?x=1&y=2");
        assert_eq!(h.path(), "/a/b");
        assert_eq!(h.query(), Some("x=1&y=2"));
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.host, "example.com:8080");
        assert_eq!(h.body, BodyKind::Empty);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(h.upgrade, None);
        assert_eq!(
            h.headers,
            vec![
                Header::new("Host", "Example.COM:8080"),
                Header::new("Accept", "*/*"),
            ]
        );
        ok(buf);
    }

    #[test]
    fn incomplete_is_none() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for i in 0..buf.len() {
            assert_eq!(parse(&buf[..i]), Ok(None), "prefix {i}");
        }
    }

    #[test]
    fn post_with_length_leaves_body() {
        let buf = b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let (h, n) = parse(buf).unwrap().unwrap();
        assert_eq!(h.body, BodyKind::Length(5));
        assert_eq!(&buf[n..], b"hello");
        ok(buf);
    }

    #[test]
    fn chunked_request() {
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
    }

    #[test]
    fn whitespace_around_values_is_trimmed() {
        let h = ok(b"POST / HTTP/1.1\r\nHost:a\r\nContent-Length: \t7 \t\r\nX:  \r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(7));
        assert_eq!(h.host, "a");
        assert_eq!(testutil::value(&h.headers, "x"), Some(&b""[..]));
    }

    #[test]
    fn http10_keep_alive() {
        let h = ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.version, Version::Http10);
        assert!(!h.keep_alive);
        assert_eq!(h.host, "");
        let h = ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n");
        assert!(h.keep_alive);
        assert_eq!(h.host, "a");
        let h = ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
        assert!(!h.keep_alive);
        let h = ok(b"GET / HTTP/1.0\r\nHost:\r\n\r\n");
        assert_eq!(h.host, "");
    }

    #[test]
    fn http11_close() {
        let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n");
        assert!(!h.keep_alive);
        let h =
            ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n");
        assert!(!h.keep_alive);
    }

    #[test]
    fn expect_continue() {
        let h =
            ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue);
        // RFC 9110 10.1.1: ignored on HTTP/1.0.
        let h = ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.expect_continue);
        let h = ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n");
        assert!(!h.expect_continue);
    }

    #[test]
    fn upgrade() {
        let h = ok(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.upgrade.as_deref(), Some("websocket"));
        let h = ok(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nUpgrade: foo/2\r\n\r\n");
        assert_eq!(h.upgrade.as_deref(), Some("h2c, foo/2"));
        // Upgrade without the connection option, or without Upgrade, or on 1.0.
        let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.upgrade, None);
        let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
        assert_eq!(h.upgrade, None);
        let h = ok(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.upgrade, None);
        invalid(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: web socket\r\n\r\n",
            "invalid Upgrade",
        );
        invalid(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: caf\xc3\xa9\r\n\r\n",
            "invalid Upgrade",
        );
    }

    #[test]
    fn absolute_form() {
        let h = ok(b"GET http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n");
        assert_eq!(h.target, "/p?q=1");
        assert_eq!(h.host, "example.com:8080");
        let h = ok(b"GET HTTPS://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n");
        assert_eq!(h.target, "/");
        assert_eq!(h.host, "a.b");
        let h = ok(b"GET http://a.b?x HTTP/1.1\r\nHost: a.b\r\n\r\n");
        assert_eq!(h.target, "/?x");
        assert_eq!(h.path(), "/");
        assert_eq!(h.query(), Some("x"));
        // HTTP/1.0 may omit Host: the authority is the host.
        let h = ok(b"GET http://[::1]:81/x HTTP/1.0\r\n\r\n");
        assert_eq!(h.host, "[::1]:81");
        assert_eq!(h.target, "/x");
        invalid(
            b"GET http://a.b/ HTTP/1.1\r\nHost: c.d\r\n\r\n",
            "Host does not match absolute-form authority",
        );
        invalid(b"GET http://a.b/ HTTP/1.1\r\n\r\n", "missing Host");
        for t in [
            &b"http://user@a.b/"[..],
            b"http:///x",
            b"http://a.b:99999/",
            b"ftp://a.b/",
            b"http:/a.b/",
            b"http://a.b/#f",
            b"http://a b/",
        ] {
            let mut buf = b"GET ".to_vec();
            buf.extend_from_slice(t);
            buf.extend_from_slice(b" HTTP/1.1\r\nHost: a.b\r\n\r\n");
            if t.contains(&b' ') {
                // A space splits the request line: not a 505, a bad line.
                assert!(matches!(err(&buf), ParseError::Invalid(_)));
            } else {
                invalid(&buf, "invalid request-target");
            }
        }
    }

    #[test]
    fn options_asterisk() {
        let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.target, "*");
        assert_eq!(h.path(), "*");
        invalid(
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "asterisk-form target without OPTIONS",
        );
        invalid(
            b"OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n",
            "invalid request-target",
        );
    }

    #[test]
    fn leading_empty_lines_skipped() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (h, n) = parse(buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(h.method, "GET");
        ok(buf);
    }

    #[test]
    fn methods_are_case_sensitive_tokens() {
        let h = ok(b"get / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.method, "get");
        let h = ok(b"M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.method, "M-SEARCH");
        invalid(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method");
        invalid(
            b"G\xc3\xa9T / HTTP/1.1\r\nHost: a\r\n\r\n",
            "invalid method",
        );
        invalid(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method");
        invalid(
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "invalid request-target",
        );
        invalid(b"GET\r\n\r\n", "invalid method");
    }

    #[test]
    fn versions() {
        assert_eq!(
            err(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
            ParseError::UnsupportedVersion
        );
        assert_eq!(
            err(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            ParseError::UnsupportedVersion
        );
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(err(preface), ParseError::UnsupportedVersion);
        assert_eq!(err(preface).status(), 505);
        assert_eq!(
            err(b"GET / HTTP/0.9\r\n\r\n"),
            ParseError::UnsupportedVersion
        );
        invalid(b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", "invalid start line");
        invalid(b"GET / http/1.1\r\nHost: a\r\n\r\n", "invalid request line");
        invalid(b"GET / FOO\r\nHost: a\r\n\r\n", "invalid request line");
        invalid(b"GET /\r\nHost: a\r\n\r\n", "invalid request-target");
        invalid(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "invalid start line");
        invalid(b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", "invalid start line");
        invalid(
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            "invalid request line",
        );
    }

    #[test]
    fn targets() {
        let h = ok(b"GET /%41b;p=1/c:d@e!$&'()*+,=~._-?q=/?%20 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.path(), "/%41b;p=1/c:d@e!$&'()*+,=~._-");
        assert_eq!(h.query(), Some("q=/?%20"));
        for t in [
            &b"a/b"[..],
            b"/a#b",
            b"/a%2",
            b"/a%g0",
            b"/a\"b",
            b"/a<b",
            b"/a{b",
            b"/a|b",
            b"/a\\b",
            b"/a^b",
            b"/a`b",
            b"/a[b",
            b"/caf\xc3\xa9",
            b"a.b:443",
        ] {
            let mut buf = b"GET ".to_vec();
            buf.extend_from_slice(t);
            buf.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
            invalid(&buf, "invalid request-target");
        }
        // Bytes httparse refuses in a target (controls, DEL) are caught earlier.
        invalid(
            b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
            "control character in head",
        );
    }

    #[test]
    fn host_rules() {
        invalid(b"GET / HTTP/1.1\r\n\r\n", "missing Host");
        invalid(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "empty Host");
        invalid(b"GET / HTTP/1.1\r\nHost:  \r\n\r\n", "empty Host");
        invalid(
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            "multiple Host fields",
        );
        invalid(
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "multiple Host fields",
        );
        for v in [
            &b"a b"[..],
            b"u@a",
            b"u:p@a",
            b"a:",
            b"a:x",
            b"a:70000",
            b"a/b",
            b"[::1",
            b"a,b",
        ] {
            let mut buf = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            buf.extend_from_slice(v);
            buf.extend_from_slice(b"\r\n\r\n");
            invalid(&buf, "invalid Host");
        }
        invalid(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", "invalid Host");
        let h = ok(b"GET / HTTP/1.1\r\nHost: [2001:DB8::1]:443\r\n\r\n");
        assert_eq!(h.host, "[2001:db8::1]:443");
    }

    #[test]
    fn framing_rules() {
        invalid(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        );
        invalid(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        );
        invalid(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "duplicate Content-Length",
        );
        invalid(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
            "duplicate Content-Length",
        );
        for v in [
            &b"5, 5"[..],
            b"5,5",
            b"+5",
            b"-5",
            b"5 5",
            b"0x5",
            b"5a",
            b"",
            b"18446744073709551616",
            b"99999999999999999999999",
        ] {
            let mut buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ".to_vec();
            buf.extend_from_slice(v);
            buf.extend_from_slice(b"\r\n\r\n");
            invalid(&buf, "invalid Content-Length");
        }
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(u64::MAX));
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(0));
        for v in [
            &b"gzip, chunked"[..],
            b"chunked, chunked",
            b"identity",
            b"chunked;q=1",
            b"chunked, gzip",
            b"xchunked",
            b"",
        ] {
            let mut buf = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
            buf.extend_from_slice(v);
            buf.extend_from_slice(b"\r\n\r\n");
            invalid(&buf, "Transfer-Encoding is not exactly chunked");
        }
        invalid(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "multiple Transfer-Encoding fields",
        );
        invalid(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0 message",
        );
        invalid(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0 message",
        );
    }

    #[test]
    fn field_syntax_rules() {
        let host = "GET / HTTP/1.1\r\nHost: a\r\n";
        let cases: &[(&[u8], &str)] = &[
            (
                b"A: b\r\n c\r\n",
                "field line starts with whitespace (obs-fold)",
            ),
            (
                b"A: b\r\n\tc\r\n",
                "field line starts with whitespace (obs-fold)",
            ),
            (b"A : b\r\n", "invalid field name"),
            (b"A\t: b\r\n", "invalid field name"),
            (b": b\r\n", "invalid field name"),
            (b"A(: b\r\n", "invalid field name"),
            (b"A\xc3\xa9: b\r\n", "invalid field name"),
            (b"NoColon\r\n", "invalid field name"),
            (b"A: b\x00c\r\n", "control character in head"),
            (b"A: b\x01c\r\n", "control character in head"),
            (b"A: b\x1fc\r\n", "control character in head"),
            (b"A: b\x7fc\r\n", "control character in head"),
            (b"A\x00: b\r\n", "control character in head"),
            (b"A: b\rc\r\n", "bare CR in head"),
            (b"A: b\nB: c\r\n", "bare LF in head"),
            (b"A: b\r\r\n", "bare CR in head"),
        ];
        for (line, reason) in cases {
            let mut buf = host.as_bytes().to_vec();
            buf.extend_from_slice(line);
            buf.extend_from_slice(b"\r\n");
            invalid(&buf, reason);
        }
        // Whitespace between the start line and the first field (RFC 9112 2.2).
        invalid(
            b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            "field line starts with whitespace (obs-fold)",
        );
        invalid(b"GET / HTTP/1.1\nHost: a\n\n", "bare LF in head");
        invalid(b"GET / HTTP/1.1\r\nHost: a\n\r\n", "bare LF in head");
        invalid(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "bare LF in head");
        invalid(b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", "bare CR in head");
        // obs-text and HTAB are allowed in values.
        let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\tb \xff\r\n\r\n");
        assert_eq!(
            testutil::value(&h.headers, "x"),
            Some(&b"caf\xc3\xa9\tb \xff"[..])
        );
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_request_line: 20,
            max_header_bytes: 64,
            max_headers: 2,
        };
        let p = |b: &[u8]| parse_request_head(b, &limits);
        // 20 bytes of request line is fine, 21 is not, complete or not.
        assert!(p(b"GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .is_some());
        assert_eq!(
            p(b"GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
            ParseError::RequestLineTooLong
        );
        assert_eq!(
            p(b"GET /12345678901234567").unwrap_err(),
            ParseError::RequestLineTooLong
        );
        assert_eq!(p(b"GET /123456789012345"), Ok(None));
        // Head size, complete or not.
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        big.resize(64, b'x');
        assert_eq!(p(&big), Ok(None));
        big.push(b'x');
        assert_eq!(p(&big).unwrap_err(), ParseError::HeadersTooLarge);
        assert_eq!(p(&big).unwrap_err().status(), 431);
        // Field count.
        assert!(p(b"GET / HTTP/1.1\r\nHost: a\r\nB: c\r\n\r\n")
            .unwrap()
            .is_some());
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: a\r\nB: c\r\nD: e\r\n\r\n").unwrap_err(),
            ParseError::TooManyHeaders
        );
        // Default limits.
        let mut line = b"GET /".to_vec();
        line.resize(8200, b'a');
        assert_eq!(err(&line), ParseError::RequestLineTooLong);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..99 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(ok(&many).headers.len(), 100);
        let mut many = many[..many.len() - 2].to_vec();
        many.extend_from_slice(b"One-More: v\r\n\r\n");
        assert_eq!(err(&many), ParseError::TooManyHeaders);
        // A huge configured limit does not mean a huge allocation.
        let huge = Limits {
            max_headers: usize::MAX,
            ..Limits::default()
        };
        assert!(
            parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &huge)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn pipelined_requests() {
        let stream = b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /two HTTP/1.1\r\nHost: a\r\n\r\n\
POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n\
GET /four HTTP/1.0\r\n\r\n";
        let events = testutil::run_requests(&[&stream[..]]);
        assert_eq!(
            events,
            vec![
                Event::Head("POST /one".into()),
                Event::Data(b"hello".to_vec()),
                Event::End,
                Event::Head("GET /two".into()),
                Event::End,
                Event::Head("POST /three".into()),
                Event::Data(b"abc".to_vec()),
                Event::Trailers(b"T: v\r\n".to_vec()),
                Event::End,
                Event::Head("GET /four".into()),
                Event::End,
            ]
        );
        testutil::assert_requests_split_invariant(stream);
    }

    #[test]
    fn invalid_body_after_valid_head_is_split_invariant() {
        let stream =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZ\r\n";
        let events = testutil::run_requests(&[&stream[..]]);
        assert_eq!(
            events.last(),
            Some(&Event::BodyError(crate::http::BodyError::Invalid(
                "invalid chunk size"
            )))
        );
        testutil::assert_requests_split_invariant(stream);
    }
}
