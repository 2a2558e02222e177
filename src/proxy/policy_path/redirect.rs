//! `forward-request follow-redirects="true"`: which backend redirects the gateway
//! follows itself, and the request it sends next. Pure functions over the response's
//! status and `Location`, no I/O.
//!
//! Followed: 301, 302, 303, 307 and 308 (RFC 9110 §15.4) with a `Location` that is a
//! relative reference (resolved against the request sent, RFC 3986 §5.2) or an `http`
//! URL whose host is the backend's own or an IP literal. A redirect to another scheme,
//! or to a host name the gateway would have to resolve (DNS never runs on a data-plane
//! core), is not followed: the client gets the 3xx as the backend sent it. Like .NET's
//! HttpClient behind APIM: 303 turns any method but HEAD into a GET without body, and
//! 301 and 302 turn POST into GET; 307 and 308 keep the method and body.
//! `Authorization` is not sent to another host.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Most redirects followed for one forward-request (then the last 3xx is answered).
pub const MAX_REDIRECTS: usize = 5;

/// Where the last request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub addr: SocketAddr,
    /// The `Host` sent: `host` or `host:port` (no port when it is 80).
    pub authority: String,
    /// The request target sent: path and query.
    pub target: String,
}

/// The request to send after a followed redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub origin: Origin,
    /// The method to use (changed to GET for 303, and for POST after 301/302).
    pub method: String,
    /// The body is not sent again (the method became GET).
    pub drop_body: bool,
    /// The host changed: credentials stay behind.
    pub cross_origin: bool,
}

/// The next request when `status` with `location` is to be followed, else `None`.
pub fn next_hop(status: u16, location: Option<&str>, from: &Origin, method: &str) -> Option<Hop> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = location?.trim();
    let location = location.split_once('#').map_or(location, |(l, _)| l);
    if location.is_empty()
        || location
            .bytes()
            .any(|b| b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b))
    {
        return None;
    }
    let (origin, target) = if let Some(rest) = strip_prefix_ignore_case(location, "http://") {
        absolute(rest, from)?
    } else if let Some(rest) = location.strip_prefix("//") {
        absolute(rest, from)?
    } else if location.contains(':') && !location.starts_with('/') && scheme_like(location) {
        // Another scheme (https:, ftp:, ...).
        return None;
    } else {
        (
            (from.addr, from.authority.clone()),
            resolve(&from.target, location),
        )
    };
    let (method, drop_body) = match status {
        303 if method != "HEAD" => ("GET".to_string(), true),
        301 | 302 if method == "POST" => ("GET".to_string(), true),
        _ => (method.to_string(), false),
    };
    let cross_origin = origin.0 != from.addr || !origin.1.eq_ignore_ascii_case(&from.authority);
    Some(Hop {
        origin: Origin {
            addr: origin.0,
            authority: origin.1,
            target,
        },
        method,
        drop_body,
        cross_origin,
    })
}

/// `host[:port]/path?query` of an absolute `http` URL: followed when the host is the
/// current backend's or an IP literal.
fn absolute(rest: &str, from: &Origin) -> Option<((SocketAddr, String), String)> {
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = split_authority(authority)?;
    let shown = if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let (from_host, from_port) = split_authority(&from.authority)?;
    let addr = if host.eq_ignore_ascii_case(from_host) && port == from_port {
        from.addr
    } else {
        SocketAddr::new(ip_literal(host)?, port)
    };
    let target = if target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_string()
    };
    Some((
        (addr, shown.to_ascii_lowercase()),
        remove_dot_segments(&target),
    ))
}

/// `host` and port (80 when absent) of an authority; IPv6 literals keep their brackets.
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok().filter(|p| *p > 0)?,
        Some(_) => return None,
    };
    (!host.is_empty()).then_some((host, port))
}

fn ip_literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            host.parse().ok().map(IpAddr::V4)
        }
        None => None,
    }
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`.
fn scheme_like(s: &str) -> bool {
    let scheme = s.split(':').next().unwrap_or("");
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// RFC 3986 §5.2.2 for a reference without scheme or authority, against `base` (a
/// path with an optional query).
fn resolve(base: &str, reference: &str) -> String {
    let base_path = base.split_once('?').map_or(base, |(p, _)| p);
    let merged = if reference.starts_with('/') {
        reference.to_string()
    } else if let Some(query) = reference.strip_prefix('?') {
        format!("{base_path}?{query}")
    } else {
        // §5.2.3: everything of the base path up to its last '/', then the reference.
        let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
        format!("{dir}{reference}")
    };
    remove_dot_segments(&merged)
}

/// RFC 3986 §5.2.4 on the path part; the query is kept as it is.
fn remove_dot_segments(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(target.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    if let Some(q) = query {
        result.push('?');
        result.push_str(q);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> Origin {
        Origin {
            addr: "10.0.0.1:8080".parse().unwrap(),
            authority: "backend.test:8080".into(),
            target: "/v1/items/42?x=1".into(),
        }
    }

    fn hop(status: u16, location: &str, method: &str) -> Option<Hop> {
        next_hop(status, Some(location), &from(), method)
    }

    #[test]
    fn relative_references_resolve_against_the_request_sent() {
        let cases = [
            ("/v2/items/42", "/v2/items/42"),
            ("43", "/v1/items/43"),
            ("../other?y=2", "/v1/other?y=2"),
            ("./", "/v1/items/"),
            ("?page=2", "/v1/items/42?page=2"),
            ("/a/./b/../c#frag", "/a/c"),
            ("/../../x", "/x"),
        ];
        for (location, target) in cases {
            let h = hop(302, location, "GET").unwrap_or_else(|| panic!("{location}"));
            assert_eq!(h.origin.target, target, "{location}");
            assert_eq!(h.origin.addr, from().addr);
            assert!(!h.cross_origin);
        }
    }

    #[test]
    fn absolute_urls_to_the_same_host_or_an_ip_literal_are_followed() {
        let h = hop(301, "http://BACKEND.test:8080/v2?q=1", "GET").unwrap();
        assert_eq!(h.origin.addr, from().addr);
        assert_eq!(h.origin.target, "/v2?q=1");
        assert!(!h.cross_origin);

        let h = hop(307, "http://127.0.0.1:9000", "PUT").unwrap();
        assert_eq!(h.origin.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(h.origin.authority, "127.0.0.1:9000");
        assert_eq!(h.origin.target, "/");
        assert!(h.cross_origin);
        assert_eq!((h.method.as_str(), h.drop_body), ("PUT", false));

        let h = hop(308, "//[::1]/x", "POST").unwrap();
        assert_eq!(h.origin.addr, "[::1]:80".parse().unwrap());
        assert_eq!(h.origin.authority, "[::1]");

        // The same name on another port, another name, another scheme: not followed.
        for location in [
            "http://backend.test/v2",
            "http://elsewhere.test:8080/",
            "https://backend.test:8080/",
            "ftp://10.0.0.1/",
            "mailto:a@b",
            "http://user@10.0.0.2/",
            "http://10.0.0.2:0/",
            "http://10.0.0.2:x/",
            "http:///nohost",
            "/with space",
            "",
        ] {
            assert_eq!(hop(302, location, "GET"), None, "{location}");
        }
    }

    #[test]
    fn methods_change_as_httpclient_changes_them() {
        let m = |status, method| {
            let h = hop(status, "/next", method).unwrap();
            (h.method, h.drop_body)
        };
        assert_eq!(m(303, "POST"), ("GET".into(), true));
        assert_eq!(m(303, "PUT"), ("GET".into(), true));
        assert_eq!(m(303, "HEAD"), ("HEAD".into(), false));
        assert_eq!(m(302, "POST"), ("GET".into(), true));
        assert_eq!(m(301, "POST"), ("GET".into(), true));
        assert_eq!(m(301, "PUT"), ("PUT".into(), false));
        assert_eq!(m(307, "POST"), ("POST".into(), false));
        assert_eq!(m(308, "POST"), ("POST".into(), false));
    }

    #[test]
    fn only_redirect_statuses_with_a_location_are_followed() {
        for status in [200, 300, 304, 305, 306, 404] {
            assert_eq!(hop(status, "/x", "GET"), None, "{status}");
        }
        assert_eq!(next_hop(302, None, &from(), "GET"), None);
    }
}
