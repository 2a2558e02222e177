//! Host matching: patterns from `apis[].hostnames` (exact names and `*.` wildcards)
//! and the normalisation of a request's Host value (port stripped, case ignored, one
//! trailing dot ignored). Patterns are stored lowercase so matching never allocates.

use crate::config::syntax;

/// A compiled `hostnames` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// Matches this name exactly (lowercase).
    Exact(String),
    /// `*.example.com`: stores `.example.com`; matches one or more labels before it.
    Suffix(String),
}

impl HostPattern {
    /// Parses one `hostnames` entry.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        if let Some(domain) = lower.strip_prefix("*.") {
            check_name(domain, text)?;
            return Ok(HostPattern::Suffix(format!(".{domain}")));
        }
        if lower.contains('*') {
            return Err(format!(
                "invalid host name {text:?}: '*' is only allowed as a whole first label (\"*.example.com\")"
            ));
        }
        if lower.starts_with('[') {
            return match lower
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .map(str::parse::<std::net::Ipv6Addr>)
            {
                Some(Ok(_)) => Ok(HostPattern::Exact(lower.to_owned())),
                _ => Err(format!("invalid host name {text:?}: bad IPv6 literal")),
            };
        }
        check_name(lower, text)?;
        Ok(HostPattern::Exact(lower.to_owned()))
    }

    /// Whether `host` (already passed through [`normalize_host`]) matches.
    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// Whether some host matches both patterns.
    pub(crate) fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
            (HostPattern::Exact(name), p @ HostPattern::Suffix(_))
            | (p @ HostPattern::Suffix(_), HostPattern::Exact(name)) => p.matches(name),
            (HostPattern::Suffix(a), HostPattern::Suffix(b)) => a.ends_with(b) || b.ends_with(a),
        }
    }

    /// The pattern as users write it.
    pub(crate) fn to_text(&self) -> String {
        match self {
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Suffix(suffix) => format!("*{suffix}"),
        }
    }
}

fn check_name(name: &str, text: &str) -> Result<(), String> {
    if name.contains(':') {
        return Err(format!(
            "invalid host name {text:?}: no port here (the port of the Host header is ignored)"
        ));
    }
    syntax::check_dns_name(name).map_err(|e| format!("invalid host name {text:?}: {e}"))
}

/// The host part of a Host header value: the port and one trailing dot removed.
/// `[::1]:8080` gives `[::1]`. Case is left alone; matching ignores it. Runs once per
/// request on an authority the parser has already checked, so it works on bytes (the
/// cut is always next to an ASCII byte) rather than through `char` searches.
pub(crate) fn normalize_host(host: &str) -> &str {
    let host = host.trim_ascii();
    let b = host.as_bytes();
    let end = if b.first() == Some(&b'[') {
        b.iter().position(|&c| c == b']').map_or(b.len(), |i| i + 1)
    } else {
        b.iter().rposition(|&c| c == b':').unwrap_or(b.len())
    };
    let host = host.get(..end).unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parse_patterns() {
        assert_eq!(
            p("API.Example.com"),
            HostPattern::Exact("api.example.com".into())
        );
        assert_eq!(
            p("*.example.com"),
            HostPattern::Suffix(".example.com".into())
        );
        assert_eq!(p("example.com."), HostPattern::Exact("example.com".into()));
        assert_eq!(p("[::1]"), HostPattern::Exact("[::1]".into()));
        assert_eq!(p("10.0.0.1"), HostPattern::Exact("10.0.0.1".into()));
        assert_eq!(p("*.example.com").to_text(), "*.example.com");
        for bad in [
            "",
            "*",
            "*.",
            "a.*.com",
            "*example.com",
            "api.example.com:8080",
            "a b",
            "[::1",
            "[zz]",
            "**.a",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        let exact = p("api.example.com");
        assert!(exact.matches("api.example.com"));
        assert!(exact.matches("API.EXAMPLE.COM"));
        assert!(!exact.matches("x.api.example.com"));
        let wild = p("*.example.com");
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.Example.COM"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches(".example.com"));
        assert!(!wild.matches("aexample.com"));
        assert!(!wild.matches("é.example.co"));
    }

    #[test]
    fn overlap() {
        assert!(p("a.com").overlaps(&p("A.com")));
        assert!(!p("a.com").overlaps(&p("b.com")));
        assert!(p("x.a.com").overlaps(&p("*.a.com")));
        assert!(p("*.a.com").overlaps(&p("x.a.com")));
        assert!(!p("a.com").overlaps(&p("*.a.com")));
        assert!(p("*.b.a.com").overlaps(&p("*.a.com")));
        assert!(!p("*.b.com").overlaps(&p("*.a.com")));
        assert!(!p("*.ba.com").overlaps(&p("*.a.com")));
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_host("api.example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("api.example.com"), "api.example.com");
        assert_eq!(normalize_host("api.example.com.:80"), "api.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host(""), "");
        assert_eq!(normalize_host(" api.example.com:80\t"), "api.example.com");
        assert_eq!(normalize_host("[::1"), "[::1", "no closing bracket: as is");
        assert_eq!(normalize_host("[::1]:"), "[::1]");
        assert_eq!(
            normalize_host("a:b:80"),
            "a:b",
            "the last colon starts the port"
        );
        assert_eq!(normalize_host(":80"), "");
        assert_eq!(normalize_host("."), "");
    }
}
