//! `set-backend-service`: sends the request to another backend than the API's: a
//! literal `base-url` (`http://host[:port][/path]`) or the `backend-id` of one of the
//! config's `backends:`. Either is parsed and resolved when the config is compiled
//! (compilation runs off the data plane; DNS never runs per request), so applying the
//! policy only stores a ready [`BackendOverride`].

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::access::only_in;
use super::attrs::{no_children, Attrs};
use super::CompileCx;
use crate::policy::context::{BackendOverride, Context};
use crate::policy::pipeline::{Flow, Section};
use crate::policy::xml::Element;

#[derive(Debug)]
pub struct SetBackendService {
    target: BackendOverride,
}

impl SetBackendService {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound, Section::Backend])?;
        let mut a = Attrs::new(el);
        let base_url = a.opt("base-url");
        let backend_id = a.opt("backend-id");
        for sf in [
            "sf-resolve-condition",
            "sf-service-instance-name",
            "sf-partition-key",
            "sf-replica-type",
            "sf-listener-name",
        ] {
            if a.opt(sf).is_some() {
                return Err(format!("{sf}: Service Fabric backends are not supported"));
            }
        }
        a.finish()?;
        no_children(el)?;
        let url = match (base_url, backend_id) {
            (Some(_), Some(_)) => return Err("give base-url or backend-id, not both".into()),
            (None, None) => return Err("one of base-url or backend-id is required".into()),
            (None, Some(id)) => return named(id.trim(), cx),
            (Some(url), None) => url.trim(),
        };
        if url.starts_with('@') {
            return Err(
                "base-url must be a literal URL: expressions are not supported (the backend is resolved when the config loads)"
                    .into(),
            );
        }
        let target = resolve(url, |host, port| {
            (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("host {host:?} does not resolve: {e}"))?
                .next()
                .ok_or_else(|| format!("host {host:?} did not resolve to any address"))
        })?;
        Ok(SetBackendService { target })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        cx.forward.backend = Some(self.target.clone());
        Flow::Continue
    }
}

/// `backend-id`: one of the config's `backends:`, already resolved.
fn named(id: &str, cx: &CompileCx<'_>) -> Result<SetBackendService, String> {
    if id.starts_with('@') {
        return Err("backend-id must be a literal id: expressions are not supported".into());
    }
    match cx.env.backends.iter().find(|b| b.id == id) {
        Some(b) => Ok(SetBackendService {
            target: b.target.clone(),
        }),
        None if cx.env.backends.is_empty() => {
            Err(format!("backend-id {id:?}: the config has no `backends`"))
        }
        None => {
            let known: Vec<&str> = cx.env.backends.iter().map(|b| b.id.as_str()).collect();
            Err(format!(
                "backend-id {id:?} is not one of the config's backends ({})",
                known.join(", ")
            ))
        }
    }
}

/// Parses `http://host[:port][/path]` and resolves a DNS name with `lookup` (IP
/// literals are used as they are). The authority is the Host header to send (no port
/// when it is 80); the base path never ends with '/'.
fn resolve(
    url: &str,
    lookup: impl Fn(&str, u16) -> Result<SocketAddr, String>,
) -> Result<BackendOverride, String> {
    let bad = |why: &str| format!("base-url {url:?}: {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http://host[:port][/path]"))?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad("https backends are not supported yet"));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("only http is supported"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("a query or fragment is not allowed"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let (host, ip, port_text) = if let Some(inner) = authority.strip_prefix('[') {
        let (ip, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("unbalanced '[' in an IPv6 literal"))?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad("bad IPv6 literal"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected text after ']'"))?,
            ),
        };
        (format!("[{ip}]"), Some(IpAddr::V6(ip)), port)
    } else {
        let (h, p) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if h.is_empty() {
            return Err(bad("missing host"));
        }
        let ip = if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            Some(IpAddr::V4(h.parse().map_err(|_| bad("bad IPv4 address"))?))
        } else {
            let ok = h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
            if !ok || h.len() > 253 {
                return Err(bad("bad host name"));
            }
            None
        };
        (h.to_ascii_lowercase(), ip, p)
    };
    let port = match port_text {
        None | Some("") => 80,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("port is not in 1..=65535")),
            Ok(port) => port,
        },
        Some(_) => return Err(bad("bad port")),
    };
    let base_path = path.strip_suffix('/').unwrap_or(path);
    if !base_path.is_empty() {
        for segment in base_path[1..].split('/') {
            if segment.is_empty() {
                return Err(bad("empty path segment"));
            }
            if segment
                .bytes()
                .any(|b| b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b))
            {
                return Err(bad("the path has characters that must be percent-encoded"));
            }
        }
    }
    let addr = match ip {
        Some(ip) => SocketAddr::new(ip, port),
        None => lookup(&host, port).map_err(|e| bad(&e))?,
    };
    let authority = if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    };
    Ok(BackendOverride {
        addr,
        authority,
        base_path: base_path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::Scope;
    use crate::policy::xml;

    fn compile(doc: &str, section: Section) -> Result<SetBackendService, String> {
        let cx = CompileCx {
            section,
            scope: Scope::Operation,
            scope_id: "op",
            index: 2,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        };
        SetBackendService::compile(&xml::parse(doc).unwrap(), &cx)
    }

    fn no_dns(host: &str, _: u16) -> Result<SocketAddr, String> {
        Err(format!("no DNS for {host}"))
    }

    #[test]
    fn base_url_sets_the_backend() {
        let p = compile(
            r#"<set-backend-service base-url="http://127.0.0.1:9001/api/8.2/" />"#,
            Section::Inbound,
        )
        .unwrap();
        let mut cx = Context::default();
        assert_eq!(p.apply(&mut cx), Flow::Continue);
        assert_eq!(
            cx.forward.backend,
            Some(BackendOverride {
                addr: "127.0.0.1:9001".parse().unwrap(),
                authority: "127.0.0.1:9001".into(),
                base_path: "/api/8.2".into(),
            })
        );
    }

    #[test]
    fn backend_id_names_one_of_the_configs_backends() {
        let target = BackendOverride {
            addr: "127.0.0.1:9100".parse().unwrap(),
            authority: "127.0.0.1:9100".into(),
            base_path: "/b".into(),
        };
        let backends = [
            crate::policy::builtin::NamedBackend {
                id: "orders-eu".into(),
                target: target.clone(),
            },
            crate::policy::builtin::NamedBackend {
                id: "orders-us".into(),
                target: BackendOverride {
                    authority: "us.test".into(),
                    ..target.clone()
                },
            },
        ];
        let env = crate::policy::builtin::CompileEnv {
            backends: &backends,
            response_cache_bytes: 0,
        };
        let cx = CompileCx {
            section: Section::Inbound,
            scope: Scope::Api,
            scope_id: "api",
            index: 0,
            mock: None,
            env: &env,
        };
        let compile = |doc: &str| SetBackendService::compile(&xml::parse(doc).unwrap(), &cx);
        let p = compile(r#"<set-backend-service backend-id="orders-eu" />"#).unwrap();
        let mut c = Context::default();
        assert_eq!(p.apply(&mut c), Flow::Continue);
        assert_eq!(c.forward.backend, Some(target));
        let e = compile(r#"<set-backend-service backend-id="orders-ap" />"#).unwrap_err();
        assert_eq!(
            e,
            "backend-id \"orders-ap\" is not one of the config's backends (orders-eu, orders-us)"
        );
        assert!(
            compile(r#"<set-backend-service backend-id="@(context.Variables["b"])" />"#)
                .unwrap_err()
                .contains("literal id")
        );
    }

    #[test]
    fn names_resolve_at_compile_time() {
        // localhost resolves from /etc/hosts; no network needed.
        let p = compile(
            r#"<set-backend-service base-url="http://LocalHost:8080" />"#,
            Section::Backend,
        )
        .unwrap();
        assert!(p.target.addr.ip().is_loopback());
        assert_eq!(p.target.addr.port(), 8080);
        assert_eq!(p.target.authority, "localhost:8080");
        assert_eq!(p.target.base_path, "");
    }

    #[test]
    fn parses_urls() {
        let r =
            |u: &str| resolve(u, |_, port| Ok(SocketAddr::from(([10, 0, 0, 1], port)))).unwrap();
        let b = r("http://[::1]/v1");
        assert_eq!(b.addr, "[::1]:80".parse().unwrap());
        assert_eq!(b.authority, "[::1]");
        assert_eq!(b.base_path, "/v1");
        let b = r("http://svc.test:80/");
        assert_eq!(b.authority, "svc.test");
        assert_eq!(b.addr, "10.0.0.1:80".parse().unwrap());
        assert_eq!(b.base_path, "");
        assert_eq!(r("http://svc.test:9000").authority, "svc.test:9000");
        for bad in [
            "svc.test",
            "ftp://svc.test",
            "https://svc.test",
            "http://",
            "http://:80",
            "http://svc.test:0",
            "http://svc.test:x",
            "http://u@svc.test",
            "http://svc.test/?q",
            "http://svc.test/a//b",
            "http://svc.test/a b",
            "http://300.1.1.1",
            "http://[::1",
            "http://bad_host",
        ] {
            assert!(resolve(bad, no_dns).is_err(), "{bad}");
        }
        assert!(resolve("http://nowhere.test", no_dns)
            .unwrap_err()
            .contains("no DNS"));
    }

    #[test]
    fn compile_errors() {
        let err = |doc: &str| compile(doc, Section::Inbound).unwrap_err();
        assert_eq!(
            err("<set-backend-service/>"),
            "one of base-url or backend-id is required"
        );
        assert_eq!(
            err(r#"<set-backend-service backend-id="b1"/>"#),
            "backend-id \"b1\": the config has no `backends`"
        );
        assert_eq!(
            err(r#"<set-backend-service base-url="http://a.test" backend-id="b1"/>"#),
            "give base-url or backend-id, not both"
        );
        assert_eq!(
            err(r#"<set-backend-service base-url="http://127.0.0.1" timeout="3"/>"#),
            "unknown attribute timeout"
        );
        assert!(
            err(r#"<set-backend-service base-url="@(context.Variables["u"])"/>"#)
                .contains("must be a literal URL")
        );
        assert!(err(r#"<set-backend-service base-url="https://a.test"/>"#)
            .contains("https backends are not supported yet"));
        assert!(
            err(r#"<set-backend-service base-url="http://127.0.0.1" sf-partition-key="k"/>"#)
                .contains("Service Fabric")
        );
        assert!(compile(
            r#"<set-backend-service base-url="http://127.0.0.1"/>"#,
            Section::Outbound
        )
        .unwrap_err()
        .contains("not allowed in outbound"));
    }
}
