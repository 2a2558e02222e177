//! Character classes and the small grammar checks shared by the head parsers and
//! the body decoder: tokens (RFC 9110 5.6.2), field values (RFC 9110 5.5),
//! request-targets (RFC 9112 3.2 over RFC 3986), Host authorities (RFC 9110 7.2)
//! and Content-Length (RFC 9110 8.6). Table lookups and byte loops only: no
//! allocation, no indexing that can fail.

use std::net::Ipv6Addr;

/// `tchar` (RFC 9110 5.6.2): any VCHAR except delimiters.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// Bytes allowed in an origin-form request-target (RFC 9112 3.2.1:
/// absolute-path [ "?" query ], RFC 3986 3.3/3.4): unreserved, sub-delims, ":",
/// "@", "/", "?" and "%" (which must start a pct-encoded triplet). "#" is not
/// allowed: fragments are never sent (RFC 9110 7.1).
static TARGET: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
                    | b'%'
            );
        i += 1;
    }
    t
};

pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `token = 1*tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A byte allowed inside a field value: HTAB, SP, VCHAR or obs-text (RFC 9110 5.5).
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Optional whitespace (RFC 9110 5.6.3).
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !is_ows(*first) {
            break;
        }
        v = rest;
    }
    while let [rest @ .., last] = v {
        if !is_ows(*last) {
            break;
        }
        v = rest;
    }
    v
}

/// The non-empty elements of a comma-separated list (RFC 9110 5.6.1), trimmed.
pub(crate) fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// `Content-Length = 1*DIGIT` (RFC 9110 8.6), strictly: no sign, no inner
/// whitespace, no list, no overflow. Surrounding OWS is already trimmed by the
/// field parser.
pub(crate) fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// An origin-form target, or the path-abempty + query part of an absolute-form
/// one: allowed bytes only and every "%" followed by two hex digits.
pub(crate) fn valid_target_bytes(t: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = t.get(i) {
        if !TARGET[usize::from(b)] {
            return false;
        }
        if b == b'%' {
            match (t.get(i + 1), t.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2). Stricter than
/// RFC 3986 on purpose: a reg-name (which covers IPv4 literals) is limited to
/// ALPHA / DIGIT / "-" / "." / "_" / "~" (no sub-delims, no pct-encoding, no
/// userinfo), an IP-literal must be a plain IPv6 address (no IPvFuture, no zone),
/// and a port, when the ":" is present, is 1 to 5 digits no greater than 65535.
pub(crate) fn valid_authority(a: &[u8]) -> bool {
    let (host_ok, port) = match a {
        [b'[', rest @ ..] => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let (inner, after) = rest.split_at(close);
            let ok = std::str::from_utf8(inner)
                .ok()
                .and_then(|s| s.parse::<Ipv6Addr>().ok())
                .is_some();
            // `after` starts with the "]".
            (ok, after.get(1..).unwrap_or(&[]))
        }
        _ => {
            let split = a.iter().position(|&b| b == b':').unwrap_or(a.len());
            let (name, after) = a.split_at(split);
            let ok = !name.is_empty()
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            (ok, after)
        }
    };
    host_ok
        && match port {
            [] => true,
            [b':', digits @ ..] => {
                (1..=5).contains(&digits.len())
                    && digits.iter().all(u8::is_ascii_digit)
                    && parse_content_length(digits).is_some_and(|p| p <= 65535)
            }
            _ => false,
        }
}

/// The version field of a start line has the `HTTP-version` syntax (RFC 9112 2.3:
/// `"HTTP/" DIGIT "." DIGIT`) but is neither 1.0 nor 1.1, so the right answer is
/// 505 rather than 400.
pub(crate) fn is_other_http_version(v: &[u8]) -> bool {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            !(*major == b'1' && (*minor == b'0' || *minor == b'1'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"GET"));
        assert!(is_token(b"X-Custom_1!~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(!is_token(b"\xc3\xa9"));
    }

    #[test]
    fn content_length() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"00012"), Some(12));
        assert_eq!(
            parse_content_length(b"18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+5",
            b"-5",
            b"5 5",
            b"5,5",
            b"0x10",
            b"a",
        ] {
            assert_eq!(parse_content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn targets() {
        assert!(valid_target_bytes(b"/a/b%20c?x=1&y=%7E;z:@!$'()*+,"));
        assert!(valid_target_bytes(b""));
        for bad in [
            &b"/a#frag"[..],
            b"/a b",
            b"/a%2",
            b"/a%zz",
            b"/\"",
            b"/<>",
            b"/{}",
            b"/\\",
            b"/^",
            b"/`",
            b"/|",
            b"/[",
            b"/\xc3\xa9",
            b"/\x7f",
        ] {
            assert!(!valid_target_bytes(bad), "{bad:?}");
        }
    }

    #[test]
    fn authorities() {
        for good in [
            &b"example.com"[..],
            b"EXAMPLE.com:8080",
            b"a:1",
            b"a:65535",
            b"127.0.0.1",
            b"10.0.0.1:80",
            b"[::1]",
            b"[2001:db8::1]:443",
            b"under_score~",
        ] {
            assert!(valid_authority(good), "{good:?}");
        }
        for bad in [
            &b""[..],
            b":80",
            b"a:",
            b"a:65536",
            b"a:123456",
            b"a:8o",
            b"a:-1",
            b"user@host",
            b"a b",
            b"a,b",
            b"a%20b",
            b"[::1",
            b"[::1]x",
            b"[::1]:",
            b"[zz]",
            b"[v1.x]",
            b"[fe80::1%25eth0]",
            b"a:1:2",
            b"h\xc3\xa9",
        ] {
            assert!(!valid_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        assert!(is_other_http_version(b"HTTP/2.0"));
        assert!(is_other_http_version(b"HTTP/1.2"));
        assert!(is_other_http_version(b"HTTP/0.9"));
        assert!(!is_other_http_version(b"HTTP/1.1"));
        assert!(!is_other_http_version(b"HTTP/1.0"));
        assert!(!is_other_http_version(b"HTTP/2"));
        assert!(!is_other_http_version(b"http/2.0"));
    }

    #[test]
    fn lists() {
        let items: Vec<&[u8]> = list_items(b" close ,, Upgrade\t,").collect();
        assert_eq!(items, vec![&b"close"[..], b"Upgrade"]);
        assert_eq!(trim_ows(b" \t "), b"");
    }
}
