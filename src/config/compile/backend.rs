//! Backends: `serviceUrl` and the `url` of each named backend (`backends:`) parsed
//! into an address to connect to, the Host header to send and the base path to
//! prepend. Names are resolved here, at compile time, so the data plane never does DNS;
//! identical backends are stored once and referred to by index, which lets each core
//! keep one connection pool per backend.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::Errors;
use crate::config::model::BackendDoc;
use crate::config::syntax;
use crate::policy::builtin::NamedBackend;
use crate::policy::context::BackendOverride;

/// A backend the gateway forwards to. `index` is its position in
/// [`CompiledConfig::backends`](super::CompiledConfig::backends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub index: usize,
    /// Where to connect (resolved at compile time).
    pub addr: SocketAddr,
    /// The Host header value for requests to this backend: host, plus `:port` unless
    /// the port is 80. `127.0.0.1:9000`, `example.com`, `[::1]:9000`.
    pub authority: String,
    /// Prepended to the operation suffix: `/v1`, or `""`. Never ends with '/'.
    pub base_path: String,
}

/// Turns a host name into an address. The system resolver is used by
/// [`compile`](super::compile); tests and tools pass their own.
pub trait Resolve {
    /// Resolves `host` (a DNS name, never an IP literal) with `port`.
    fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String>;
}

/// Resolves through the operating system (`getaddrinfo`), taking the first address.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        match (host, port).to_socket_addrs() {
            Ok(mut addrs) => addrs
                .next()
                .ok_or_else(|| format!("host {host:?} did not resolve to any address")),
            Err(e) => Err(format!("host {host:?} does not resolve: {e}")),
        }
    }
}

/// `serviceUrl` before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceUrl {
    pub host: Host,
    pub port: u16,
    pub base_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    /// Lowercased DNS name.
    Name(String),
}

impl ServiceUrl {
    /// Parses `http://host[:port][/path]`. No user info, query or fragment.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "invalid URL {text:?}: expected http://host[:port][/path]"
            ));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err("https backends are not supported yet".to_owned());
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "unsupported scheme {scheme:?} (only http is supported)"
            ));
        }
        if rest.contains('?') {
            return Err(format!("invalid URL {text:?}: a query is not allowed"));
        }
        if rest.contains('#') {
            return Err(format!("invalid URL {text:?}: a fragment is not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "invalid URL {text:?}: user information is not allowed"
            ));
        }
        let (host, port) =
            parse_authority(authority).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
        let base_path = path.strip_suffix('/').unwrap_or(path);
        if !base_path.is_empty() {
            for segment in base_path[1..].split('/') {
                if segment.is_empty() {
                    return Err(format!("invalid URL {text:?}: empty path segment"));
                }
                syntax::check_segment(segment).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
            }
        }
        Ok(ServiceUrl {
            host,
            port,
            base_path: base_path.to_owned(),
        })
    }

    /// The Host header value: the port is left out when it is the default (80).
    pub(crate) fn authority(&self) -> String {
        let host = match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn parse_authority(authority: &str) -> Result<(Host, u16), String> {
    if authority.is_empty() {
        return Err("missing host".to_owned());
    }
    let (host_text, port_text) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err("unbalanced '[' in IPv6 literal".to_owned());
        };
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("bad IPv6 literal [{ip}]"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("unexpected text after ']'")?),
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), parse_port(port)?));
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = parse_port(port_text)?;
    if host_text.is_empty() {
        return Err("missing host".to_owned());
    }
    // A name made only of digits and dots is meant as an IPv4 address; a bad one
    // ("300.1.1.1") is an error rather than a DNS lookup.
    if host_text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ip = host_text
            .parse()
            .map_err(|_| format!("bad IPv4 address {host_text:?}"))?;
        return Ok((Host::Ip(IpAddr::V4(ip)), port));
    }
    syntax::check_dns_name(host_text)?;
    Ok((Host::Name(host_text.to_ascii_lowercase()), port))
}

/// RFC 3986 §3.2.3: an empty port means the default.
fn parse_port(text: Option<&str>) -> Result<u16, String> {
    match text {
        None | Some("") => Ok(80),
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("port {p:?} is not in 1..=65535")),
            Ok(port) => Ok(port),
        },
        Some(p) => Err(format!("bad port {p:?}")),
    }
}

/// Collects backends while APIs compile: resolves each host once and stores each
/// distinct backend once.
pub(crate) struct BackendTable<'r> {
    resolver: &'r dyn Resolve,
    resolved: HashMap<(String, u16), Result<SocketAddr, String>>,
    backends: Vec<Backend>,
}

impl<'r> BackendTable<'r> {
    pub(crate) fn new(resolver: &'r dyn Resolve) -> Self {
        BackendTable {
            resolver,
            resolved: HashMap::new(),
            backends: Vec::new(),
        }
    }

    /// Parses and resolves `serviceUrl`, returning the backend index.
    pub(crate) fn add(&mut self, service_url: &str) -> Result<usize, String> {
        let url = ServiceUrl::parse(service_url)?;
        let addr = match &url.host {
            Host::Ip(ip) => SocketAddr::new(*ip, url.port),
            Host::Name(name) => {
                let resolver = self.resolver;
                self.resolved
                    .entry((name.clone(), url.port))
                    .or_insert_with(|| resolver.resolve(name, url.port))
                    .clone()?
            }
        };
        let authority = url.authority();
        if let Some(existing) = self
            .backends
            .iter()
            .find(|b| b.addr == addr && b.authority == authority && b.base_path == url.base_path)
        {
            return Ok(existing.index);
        }
        let index = self.backends.len();
        self.backends.push(Backend {
            index,
            addr,
            authority,
            base_path: url.base_path,
        });
        Ok(index)
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }

    pub(crate) fn finish(self) -> Vec<Backend> {
        self.backends
    }
}

/// `backends:`: each id checked and unique, each url parsed and resolved like a
/// `serviceUrl` (and stored in the same table, so pools are shared).
pub(crate) fn compile_named(
    docs: &[BackendDoc],
    table: &mut BackendTable<'_>,
    errors: &mut Errors,
) -> Vec<NamedBackend> {
    let mut out: Vec<NamedBackend> = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        if let Err(e) = syntax::check_id(&doc.id) {
            errors.push(format!("backends[{i}].id"), e);
            continue;
        }
        if let Some(first) = docs[..i].iter().position(|d| d.id == doc.id) {
            errors.push(
                format!("backends[{i}].id"),
                format!(
                    "duplicate backend id {:?} (first at backends[{first}])",
                    doc.id
                ),
            );
            continue;
        }
        match table.add(&doc.url) {
            Ok(index) => {
                if let Some(b) = table.get(index) {
                    out.push(NamedBackend {
                        id: doc.id.clone(),
                        target: BackendOverride {
                            addr: b.addr,
                            authority: b.authority.clone(),
                            base_path: b.base_path.clone(),
                        },
                    });
                }
            }
            Err(e) => errors.push(format!("backends[{i}].url"), e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::FakeResolver;

    fn url(s: &str) -> ServiceUrl {
        ServiceUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_service_urls() {
        let u = url("http://127.0.0.1:9000/v1");
        assert_eq!(u.host, Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(u.port, 9000);
        assert_eq!(u.base_path, "/v1");
        assert_eq!(u.authority(), "127.0.0.1:9000");

        let u = url("HTTP://Example.COM/api/v2/");
        assert_eq!(u.host, Host::Name("example.com".into()));
        assert_eq!(u.port, 80);
        assert_eq!(u.base_path, "/api/v2");
        assert_eq!(u.authority(), "example.com");

        let u = url("http://[::1]:8080");
        assert_eq!(u.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(u.authority(), "[::1]:8080");
        assert_eq!(u.base_path, "");
        assert_eq!(url("http://[::1]").authority(), "[::1]");
        assert_eq!(url("http://example.com:80/").authority(), "example.com");
        assert_eq!(url("http://example.com:80/").base_path, "");
        assert_eq!(url("http://example.com:/x").port, 80);
        assert_eq!(url("http://a.test/%7Euser").base_path, "/%7Euser");
    }

    #[test]
    fn rejects_bad_service_urls() {
        let err = |s: &str| ServiceUrl::parse(s).expect_err(s);
        assert_eq!(
            err("https://example.com"),
            "https backends are not supported yet"
        );
        assert_eq!(
            err("HTTPS://example.com"),
            "https backends are not supported yet"
        );
        assert!(err("ftp://example.com").starts_with("unsupported scheme"));
        for bad in [
            "",
            "example.com",
            "http://",
            "http:///x",
            "http://:80",
            "http://a b",
            "http://user@example.com",
            "http://example.com?x=1",
            "http://example.com/#f",
            "http://example.com:0",
            "http://example.com:65536",
            "http://example.com:8x",
            "http://example.com:-1",
            "http://[::1",
            "http://[::1]x",
            "http://[zz]",
            "http://300.1.1.1",
            "http://1.2.3",
            "http://example.com/a//b",
            "http://example.com/a b",
            "http://ex_ample..com",
            "http://::1:80",
        ] {
            assert!(
                ServiceUrl::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn table_resolves_and_deduplicates() {
        let mut table = BackendTable::new(&FakeResolver);
        assert_eq!(table.add("http://127.0.0.1:9000/v1"), Ok(0));
        assert_eq!(table.add("http://127.0.0.1:9000/v1/"), Ok(0));
        assert_eq!(table.add("http://127.0.0.1:9000/v2"), Ok(1));
        assert_eq!(table.add("http://localhost:9000/v1"), Ok(2));
        assert!(table
            .add("http://nowhere.invalid")
            .unwrap_err()
            .contains("does not resolve"));
        let backends = table.finish();
        assert_eq!(backends.len(), 3);
        assert_eq!(backends[2].addr, SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(backends[2].authority, "localhost:9000");
        for (i, b) in backends.iter().enumerate() {
            assert_eq!(b.index, i);
        }
    }

    #[test]
    fn system_resolver_handles_localhost() {
        // localhost resolves from /etc/hosts everywhere; no network needed.
        let addr = SystemResolver.resolve("localhost", 8080).unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 8080);
    }
}
