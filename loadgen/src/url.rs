//! Target URL parsing.
//!
//! Owns the small subset of RFC 3986 a load generator needs: `http` or `https`, a
//! host (name, IPv4 or bracketed IPv6), an optional port and a path with query. It
//! rejects what it cannot honour (user info, other schemes, empty hosts, bad ports)
//! with a message fit for one line on stderr. It does no I/O: name resolution happens
//! once in `main`, never on the hot path.

use std::fmt;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Host as written, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/` (or `*` is not supported).
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("malformed URL {0:?}: expected http:// or https://")]
    Scheme(String),
    #[error("malformed URL {0:?}: missing host")]
    NoHost(String),
    #[error("malformed URL {0:?}: user info is not supported")]
    UserInfo(String),
    #[error("malformed URL {0:?}: bad port")]
    Port(String),
    #[error("malformed URL {0:?}: bad character in host")]
    Host(String),
    #[error("malformed URL {0:?}: bad character in path")]
    Path(String),
}

impl Url {
    /// Parses `http[s]://host[:port][/path][?query][#fragment]`.
    pub fn parse(input: &str) -> Result<Url, UrlError> {
        let err_input = || input.to_string();
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(input, "http://") {
            (Scheme::Http, r)
        } else if let Some(r) = strip_prefix_ci(input, "https://") {
            (Scheme::Https, r)
        } else {
            return Err(UrlError::Scheme(err_input()));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo(err_input()));
        }
        let (host, port_str) = if let Some(after) = authority.strip_prefix('[') {
            let close = after.find(']').ok_or_else(|| UrlError::Host(err_input()))?;
            let host = &after[..close];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::Host(err_input()));
            }
            let after_host = &after[close + 1..];
            let port = match after_host.strip_prefix(':') {
                Some(p) => Some(p),
                None if after_host.is_empty() => None,
                None => return Err(UrlError::Host(err_input())),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(err_input()));
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(UrlError::Host(err_input()));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let port = match port_str {
            None | Some("") => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(UrlError::Port(err_input())),
                Ok(p) => p,
            },
        };
        // The fragment never goes on the wire (RFC 9110 section 4.2.4).
        let tail = tail.split('#').next().unwrap_or("");
        let path = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::Path(err_input()));
        }
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// The value of the `Host` header: the port is omitted when it is the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.scheme, self.port) {
            (Scheme::Http, 80) | (Scheme::Https, 443) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }

    /// `host:port` suitable for `ToSocketAddrs` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let u = Url::parse("http://127.0.0.1:8080/a/b?x=1#frag").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.path, "/a/b?x=1");
        assert_eq!(u.host_header(), "127.0.0.1:8080");

        let u = Url::parse("HTTPS://Example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.port, 443);
        assert_eq!(u.path, "/");
        assert_eq!(u.host_header(), "example.com");

        let u = Url::parse("http://[::1]:9000?q").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.path, "/?q");
        assert_eq!(u.authority(), "[::1]:9000");
        assert_eq!(u.host_header(), "[::1]:9000");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://x/",
            "http://",
            "http://:80/",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://user@host/",
            "http://ho st/",
            "http://[::1/",
            "http://[zz]/",
            "http://host/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
