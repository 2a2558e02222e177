//! Pre-serialised requests.
//!
//! Each target URL becomes one immutable byte string, built once before the run: the
//! request line, `Host`, the user's headers, `Content-Length` and the body (RFC 9112
//! sections 3 and 6.2). The hot path only copies or writes these bytes; nothing here
//! runs per request.

use crate::url::Url;

/// One request, ready for the wire.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub bytes: Box<[u8]>,
    /// The response to this request carries no body whatever its headers say (HEAD).
    pub no_response_body: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("bad method {0:?}: must be an HTTP token such as GET or POST")]
    Method(String),
    #[error("bad header {0:?}: expected \"Name: value\"")]
    Header(String),
    #[error("header {0:?} is set by loadgen from the body; remove it")]
    Framing(String),
}

/// Parses a `-H "Name: value"` argument.
pub fn parse_header(arg: &str) -> Result<(String, String), RequestError> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| RequestError::Header(arg.to_string()))?;
    let name = name.trim();
    let value = value.trim();
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(RequestError::Header(arg.to_string()));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(RequestError::Header(arg.to_string()));
    }
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(RequestError::Framing(name.to_string()));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Builds the bytes of one request.
pub fn prepare(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Prepared, RequestError> {
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(RequestError::Method(method.to_string()));
    }
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(url.host_header().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has("user-agent") {
        out.extend_from_slice(
            concat!("User-Agent: loadgen/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes(),
        );
    }
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A body always gets a length; so do methods whose semantics expect one, so that
    // servers do not wait for a body that never comes (RFC 9110 section 8.6).
    let expects_body = matches!(method, "POST" | "PUT" | "PATCH");
    if !body.is_empty() || expects_body {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(Prepared {
        bytes: out.into_boxed_slice(),
        no_response_body: method == "HEAD",
    })
}

/// RFC 9110 section 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_has_host_and_no_length() {
        let url = Url::parse("http://127.0.0.1:8080/x?y").unwrap();
        let p = prepare("GET", &url, &[], b"").unwrap();
        let s = std::str::from_utf8(&p.bytes).unwrap();
        assert!(s.starts_with("GET /x?y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(!s.contains("Content-Length"));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(!p.no_response_body);
    }

    #[test]
    fn post_body_and_headers() {
        let url = Url::parse("http://h/").unwrap();
        let hdrs = vec![
            parse_header("Host: other").unwrap(),
            parse_header("X-A:  b ").unwrap(),
        ];
        let p = prepare("POST", &url, &hdrs, b"hello").unwrap();
        let s = std::str::from_utf8(&p.bytes).unwrap();
        assert!(s.contains("Host: other\r\n"));
        assert!(!s.contains("Host: h\r\n"));
        assert!(s.contains("X-A: b\r\n"));
        assert!(s.ends_with("Content-Length: 5\r\n\r\nhello"));
        // It parses as a request.
        let mut h = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Request::new(&mut h);
        assert!(r.parse(&p.bytes).unwrap().is_complete());
    }

    #[test]
    fn head_and_bad_input() {
        let url = Url::parse("http://h/").unwrap();
        assert!(prepare("HEAD", &url, &[], b"").unwrap().no_response_body);
        assert!(prepare("GE T", &url, &[], b"").is_err());
        assert!(parse_header("NoColon").is_err());
        assert!(parse_header(": v").is_err());
        assert!(parse_header("Bad Name: v").is_err());
        assert!(parse_header("Content-Length: 3").is_err());
    }
}
