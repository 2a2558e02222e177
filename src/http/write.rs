//! Serialisation helpers: append start lines, field lines and chunk framing to
//! a caller-owned `Vec<u8>` (RFC 9112 3, 4, 5, 7.1). They write exactly what
//! they are given and do no validation: callers pass names, values and reasons
//! that came through the parsers or from compiled config. No formatting
//! machinery, no allocation beyond growing `out`.

/// Append `"{len:x}\r\n"`, the chunk-size line of a chunk (RFC 9112 7.1).
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>()];
    let mut start = digits.len();
    let mut n = len;
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            *d = HEX[n & 0xf];
        }
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or(b"0"));
    out.extend_from_slice(b"\r\n");
}

/// Append the last chunk, the trailer field lines (each already ending in CRLF)
/// and the final CRLF (RFC 9112 7.1).
pub fn write_last_chunk(trailers: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}

/// Append `"METHOD TARGET HTTP/1.1\r\n"` (RFC 9112 3).
pub fn write_request_line(out: &mut Vec<u8>, method: &str, target: &str) {
    out.reserve(method.len() + target.len() + 12);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Append `"HTTP/1.1 STATUS REASON\r\n"` (RFC 9112 4). The status is written in
/// decimal as given; the reason may be empty (the space stays, as RFC 9112 4
/// requires).
pub fn write_status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.reserve(reason.len() + 16);
    out.extend_from_slice(b"HTTP/1.1 ");
    write_u64(u64::from(status), out);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Append `"name: value\r\n"` (RFC 9112 5).
pub fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    write_header_with(out, name, |out| out.extend_from_slice(value));
}

/// Append `"name: "`, the value `value` writes, and CRLF: for values built in place
/// (numbers, addresses) rather than in a buffer of their own.
pub fn write_header_with(out: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    value(out);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase registered for `status` (RFC 9110 15 and the IANA HTTP
/// status code registry), or "" when there is none.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Append `n` in decimal (a Content-Length, say).
pub fn write_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            // `n % 10` is below 10, so the cast cannot truncate.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or(b"0"));
}

/// Append an address in its usual text form: dotted decimal for IPv4, written here
/// since every forwarded request carries its client's; RFC 5952 (std's `Display`) for
/// IPv6.
pub fn write_ip(ip: std::net::IpAddr, out: &mut Vec<u8>) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(u64::from(octet), out);
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request_head, parse_response_head, BodyDecoder, BodyKind, Limits};
    use std::net::IpAddr;

    #[test]
    fn decimals_and_addresses_match_display() {
        for n in [0u64, 7, 10, 99, 100, 65535, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            write_u64(n, &mut out);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_ip(ip, &mut out);
            assert_eq!(out, ip.to_string().as_bytes(), "{ip}");
        }
    }

    #[test]
    fn chunk_headers() {
        for (len, want) in [
            (0usize, &b"0\r\n"[..]),
            (1, b"1\r\n"),
            (15, b"f\r\n"),
            (16, b"10\r\n"),
            (255, b"ff\r\n"),
            (4096, b"1000\r\n"),
        ] {
            let mut out = b"x".to_vec();
            write_chunk_header(len, &mut out);
            assert_eq!(&out[1..], want, "{len}");
        }
        let mut out = Vec::new();
        write_chunk_header(usize::MAX, &mut out);
        assert_eq!(out, format!("{:x}\r\n", usize::MAX).as_bytes());
    }

    #[test]
    fn last_chunk() {
        let mut out = Vec::new();
        write_last_chunk(b"", &mut out);
        assert_eq!(out, b"0\r\n\r\n");
        let mut out = Vec::new();
        write_last_chunk(b"A: b\r\nC: d\r\n", &mut out);
        assert_eq!(out, b"0\r\nA: b\r\nC: d\r\n\r\n");
    }

    #[test]
    fn lines() {
        let mut out = Vec::new();
        write_request_line(&mut out, "GET", "/a?b");
        write_header(&mut out, "Host", b"example.com");
        write_header(&mut out, "X-Empty", b"");
        assert_eq!(
            out,
            b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-Empty: \r\n"
        );
        let mut out = Vec::new();
        write_status_line(&mut out, 404, "Not Found");
        write_status_line(&mut out, 200, "");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nHTTP/1.1 200 \r\n");
        let mut out = Vec::new();
        write_status_line(&mut out, 7, "x");
        write_status_line(&mut out, u16::MAX, "y");
        assert_eq!(out, b"HTTP/1.1 7 x\r\nHTTP/1.1 65535 y\r\n");
    }

    #[test]
    fn reasons() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(414), "URI Too Long");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(502), "Bad Gateway");
        assert_eq!(reason_phrase(505), "HTTP Version Not Supported");
        assert_eq!(reason_phrase(299), "");
        assert_eq!(reason_phrase(0), "");
        for status in 100..=599 {
            let reason = reason_phrase(status);
            assert!(reason
                .bytes()
                .all(|b| b == b' ' || b == b'-' || b.is_ascii_alphabetic()));
        }
    }

    /// What the writers produce, the parsers read back.
    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        write_request_line(&mut out, "POST", "/up");
        write_header(&mut out, "Host", b"a");
        write_header(&mut out, "Transfer-Encoding", b"chunked");
        out.extend_from_slice(b"\r\n");
        let (h, n) = parse_request_head(&out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::Chunked);
        let mut body = Vec::new();
        write_chunk_header(11, &mut body);
        body.extend_from_slice(b"hello world\r\n");
        write_last_chunk(b"X-T: 1\r\n", &mut body);
        let mut d = BodyDecoder::new(BodyKind::Chunked, 64);
        let r = d.decode(&body).unwrap();
        assert_eq!(&body[r.data], b"hello world");
        assert!(r.done);
        assert_eq!(r.trailers.map(|t| &body[t]), Some(&b"X-T: 1\r\n"[..]));
        assert_eq!(n, out.len());

        let mut out = Vec::new();
        write_status_line(&mut out, 503, reason_phrase(503));
        write_header(&mut out, "Content-Length", b"0");
        out.extend_from_slice(b"\r\n");
        let (h, _) = parse_response_head(&out, &Limits::default(), false)
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.reason.as_str()), (503, "Service Unavailable"));
    }
}
