//! Who may call: `ip-filter` (the client address against addresses and ranges) and
//! `cors` (cross-origin requests: preflights answered here, response headers for the
//! actual request left in [`Context::response_headers`] for the proxy to add). Both run
//! in inbound only and never look at a body.

use std::net::IpAddr;

use super::attrs::{no_children, Attrs};
use super::headers::expression_failed;
use super::CompileCx;
use crate::policy::context::{Context, Headers, Response};
use crate::policy::expr::Template;
use crate::policy::pipeline::{Flow, PolicyFailure, Section};
use crate::policy::xml::Element;

/// Refuses a policy outside the sections APIM allows it in.
pub(super) fn only_in(cx: &CompileCx<'_>, allowed: &[Section]) -> Result<(), String> {
    if allowed.contains(&cx.section) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
    Err(format!(
        "not allowed in {} (only in {})",
        cx.section.name(),
        names.join(", ")
    ))
}

// ---------------------------------------------------------------------------------
// ip-filter

/// `<ip-filter action="allow|forbid">` with `<address>` and `<address-range from to>`.
#[derive(Debug)]
pub struct IpFilter {
    action: ActionSpec,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Forbid,
}

#[derive(Debug)]
enum ActionSpec {
    Fixed(Action),
    /// `action="@(...)"`: evaluated per request, must give "allow" or "forbid".
    Expr(Template),
}

#[derive(Debug)]
enum Entry {
    Range(IpRange),
    /// `<address>@(...)</address>`: evaluated and parsed per request.
    Expr(Template),
}

/// An inclusive range of one family; IPv4-mapped IPv6 addresses are stored as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpRange {
    from: IpAddr,
    to: IpAddr,
}

impl IpRange {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.from, self.to, ip) {
            (IpAddr::V4(f), IpAddr::V4(t), IpAddr::V4(x)) => f <= x && x <= t,
            (IpAddr::V6(f), IpAddr::V6(t), IpAddr::V6(x)) => f <= x && x <= t,
            _ => false,
        }
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let t = text.trim();
    t.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| format!("{t:?} is not an IPv4 or IPv6 address"))
}

fn parse_action(text: &str) -> Result<Action, String> {
    match text.trim() {
        "allow" => Ok(Action::Allow),
        "forbid" => Ok(Action::Forbid),
        other => Err(format!("action must be allow or forbid, not {other:?}")),
    }
}

impl IpFilter {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound])?;
        let mut a = Attrs::new(el);
        let action = match a
            .template("action")?
            .ok_or("attribute action is required")?
        {
            Template::Literal(t) => ActionSpec::Fixed(parse_action(&t)?),
            expr => ActionSpec::Expr(expr),
        };
        a.finish()?;
        let mut entries = Vec::new();
        for child in el.elements() {
            match child.name.as_str() {
                "address" => {
                    Attrs::new(child)
                        .finish()
                        .map_err(|e| format!("<address>: {e}"))?;
                    no_children(child).map_err(|e| format!("<address>: {e}"))?;
                    let text = child.text();
                    match Template::parse(&text).map_err(|e| format!("<address>: {e}"))? {
                        Template::Literal(t) => {
                            let ip = parse_ip(&t).map_err(|e| format!("<address>: {e}"))?;
                            entries.push(Entry::Range(IpRange { from: ip, to: ip }));
                        }
                        expr => entries.push(Entry::Expr(expr)),
                    }
                }
                "address-range" => {
                    let mut ra = Attrs::new(child);
                    let from = ra
                        .req("from")
                        .map_err(|e| format!("<address-range>: {e}"))?;
                    let to = ra.req("to").map_err(|e| format!("<address-range>: {e}"))?;
                    ra.finish().map_err(|e| format!("<address-range>: {e}"))?;
                    no_children(child).map_err(|e| format!("<address-range>: {e}"))?;
                    let from = parse_ip(from).map_err(|e| format!("<address-range> from: {e}"))?;
                    let to = parse_ip(to).map_err(|e| format!("<address-range> to: {e}"))?;
                    if from.is_ipv4() != to.is_ipv4() {
                        return Err(format!(
                            "<address-range>: from {from} and to {to} are not the same IP version"
                        ));
                    }
                    if from > to {
                        return Err(format!("<address-range>: from {from} is after to {to}"));
                    }
                    entries.push(Entry::Range(IpRange { from, to }));
                }
                other => return Err(format!("unexpected <{other}> in <ip-filter>")),
            }
        }
        if entries.is_empty() {
            return Err("needs at least one <address> or <address-range>".into());
        }
        Ok(IpFilter { action, entries })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let action = match &self.action {
            ActionSpec::Fixed(a) => *a,
            ActionSpec::Expr(t) => match t.eval_string(cx).map_err(|e| e.message) {
                Ok(s) => match parse_action(&s) {
                    Ok(a) => a,
                    Err(e) => return expression_failed("ip-filter", e),
                },
                Err(e) => return expression_failed("ip-filter", e),
            },
        };
        let Some(ip) = cx.request.ip.map(|ip| ip.to_canonical()) else {
            return forbidden(
                "FailedToParseCallerIP",
                "Failed to establish IP address for the caller. Access denied.".into(),
            );
        };
        let mut listed = false;
        for entry in &self.entries {
            let hit = match entry {
                Entry::Range(r) => r.contains(ip),
                Entry::Expr(t) => {
                    let text = match t.eval_string(cx) {
                        Ok(s) => s,
                        Err(e) => return expression_failed("ip-filter", e.message),
                    };
                    match parse_ip(&text) {
                        Ok(addr) => addr == ip,
                        Err(e) => return expression_failed("ip-filter", e),
                    }
                }
            };
            if hit {
                listed = true;
                break;
            }
        }
        match (action, listed) {
            (Action::Allow, true) | (Action::Forbid, false) => Flow::Continue,
            (Action::Allow, false) => forbidden(
                "CallerIpNotAllowed",
                format!("Caller IP address {ip} is not allowed. Access denied."),
            ),
            (Action::Forbid, true) => forbidden(
                "CallerIpBlocked",
                "Caller IP address is blocked. Access denied.".into(),
            ),
        }
    }
}

/// APIM answers a filtered caller with 403 "Forbidden"; `context.LastError.Message`
/// carries the detailed text.
fn forbidden(reason: &str, detail: String) -> Flow {
    let mut failure = PolicyFailure::new(403, "ip-filter", reason, "Forbidden");
    failure.error.message = detail;
    Flow::Error(failure)
}

// ---------------------------------------------------------------------------------
// cors

/// `<cors>`: answers preflights (OPTIONS with Origin and Access-Control-Request-Method)
/// with [`Flow::Respond`]; for an allowed actual request it leaves
/// `Access-Control-Allow-Origin` (and credentials, expose-headers, `Vary: Origin`) in
/// [`Context::response_headers`]. An unmatched cross-origin request gets an empty 200
/// when `terminate-unmatched-request` is true (the default), and otherwise goes on
/// without CORS headers (a later `cors` may match it; if none does, the request is
/// forwarded, where APIM would answer an unmatched preflight with an empty 200).
#[derive(Debug)]
pub struct Cors {
    allow_credentials: bool,
    terminate_unmatched: bool,
    /// Normalized `scheme://host[:port]`, default ports left out.
    origins: AnyOr<String>,
    methods: AnyOr<String>,
    max_age: u64,
    /// Lowercased.
    headers: AnyOr<String>,
    expose: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum AnyOr<T> {
    Any,
    List(Vec<T>),
}

impl AnyOr<String> {
    fn allows(&self, item: &str) -> bool {
        match self {
            AnyOr::Any => true,
            AnyOr::List(items) => items.iter().any(|i| i.eq_ignore_ascii_case(item)),
        }
    }
}

/// Reads the `<origin>`/`<method>`/`<header>` children of a cors section: `*` alone
/// means any.
fn cors_list(
    section: &Element,
    item: &str,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<AnyOr<String>, String> {
    let mut items = Vec::new();
    let mut any = false;
    for child in section.elements() {
        if child.name != item {
            return Err(format!(
                "unexpected <{}> in <{}> (only <{item}>)",
                child.name, section.name
            ));
        }
        Attrs::new(child)
            .finish()
            .map_err(|e| format!("<{item}>: {e}"))?;
        no_children(child).map_err(|e| format!("<{item}>: {e}"))?;
        let text = child.text();
        if text.starts_with('@') {
            return Err(format!(
                "<{item}>: policy expressions are not supported here"
            ));
        }
        if text == "*" {
            any = true;
        } else {
            items.push(check(&text).map_err(|e| format!("<{item}>: {e}"))?);
        }
    }
    if !any && items.is_empty() {
        return Err(format!("<{}> needs at least one <{item}>", section.name));
    }
    if any && !items.is_empty() {
        return Err(format!(
            "<{}>: \"*\" must be the only <{item}>",
            section.name
        ));
    }
    Ok(if any { AnyOr::Any } else { AnyOr::List(items) })
}

/// `scheme://host[:port]` with the scheme and host lowercased and the scheme's default
/// port left out; a path of "/" is ignored. `None` for anything else.
fn normalize_origin(text: &str) -> Option<String> {
    let (scheme, rest) = text.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") || authority.is_empty() {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (h, p) = authority.split_at(end + 1);
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b"@/?#".contains(&b))
    {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let default = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let host = host.to_ascii_lowercase();
    Some(match port {
        Some(p) if Some(p) != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn check_token(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.bytes().all(super::attrs::is_token_byte) {
        return Err(format!("{text:?} is not a valid name"));
    }
    Ok(text.to_string())
}

impl Cors {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound])?;
        let mut a = Attrs::new(el);
        let allow_credentials = a.bool_or("allow-credentials", false)?;
        let terminate_unmatched = a.bool_or("terminate-unmatched-request", true)?;
        a.finish()?;
        let mut origins = None;
        let mut methods = None;
        let mut max_age = 0;
        let mut headers = None;
        let mut expose = None;
        for child in el.elements() {
            match child.name.as_str() {
                "allowed-origins" if origins.is_none() => {
                    Attrs::new(child)
                        .finish()
                        .map_err(|e| format!("<allowed-origins>: {e}"))?;
                    origins = Some(cors_list(child, "origin", |t| {
                        normalize_origin(t).ok_or_else(|| {
                            format!("{t:?} is not an origin (scheme://host[:port]) or *")
                        })
                    })?);
                }
                "allowed-methods" if methods.is_none() => {
                    let mut ma = Attrs::new(child);
                    max_age = ma
                        .num_or("preflight-result-max-age", 0u64)
                        .map_err(|e| format!("<allowed-methods>: {e}"))?;
                    ma.finish().map_err(|e| format!("<allowed-methods>: {e}"))?;
                    methods = Some(cors_list(child, "method", check_token)?);
                }
                "allowed-headers" if headers.is_none() => {
                    Attrs::new(child)
                        .finish()
                        .map_err(|e| format!("<allowed-headers>: {e}"))?;
                    headers = Some(cors_list(child, "header", |t| {
                        check_token(t).map(|h| h.to_ascii_lowercase())
                    })?);
                }
                "expose-headers" if expose.is_none() => {
                    Attrs::new(child)
                        .finish()
                        .map_err(|e| format!("<expose-headers>: {e}"))?;
                    expose = Some(match cors_list(child, "header", check_token)? {
                        AnyOr::Any => vec!["*".to_string()],
                        AnyOr::List(l) => l,
                    });
                }
                other => return Err(format!("unexpected or repeated <{other}> in <cors>")),
            }
        }
        let origins = origins.ok_or("<cors> needs <allowed-origins>")?;
        if allow_credentials && origins == AnyOr::Any {
            return Err(
                "allow-credentials=\"true\" cannot be combined with the origin \"*\"".into(),
            );
        }
        Ok(Cors {
            allow_credentials,
            terminate_unmatched,
            origins,
            methods: methods.unwrap_or_else(|| AnyOr::List(vec!["GET".into(), "POST".into()])),
            max_age,
            headers: headers.unwrap_or(AnyOr::List(Vec::new())),
            expose: expose.unwrap_or_default(),
        })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let Some(origin) = cx.request.headers.get("Origin") else {
            return Flow::Continue;
        };
        let origin_ok = match &self.origins {
            AnyOr::Any => true,
            AnyOr::List(list) => normalize_origin(&origin).is_some_and(|o| list.contains(&o)),
        };
        let preflight_method = if cx.request.method == "OPTIONS" {
            cx.request.headers.get("Access-Control-Request-Method")
        } else {
            None
        };
        match preflight_method {
            Some(method) => {
                let method = method.trim().to_string();
                let requested = cx
                    .request
                    .headers
                    .get("Access-Control-Request-Headers")
                    .unwrap_or_default();
                let requested: Vec<&str> = requested
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .collect();
                let ok = origin_ok
                    && self.methods.allows(&method)
                    && requested.iter().all(|h| self.headers.allows(h));
                if !ok {
                    return self.unmatched(cx);
                }
                let mut headers = Headers::default();
                self.origin_headers(&origin, &mut headers);
                headers.set("Access-Control-Allow-Methods", method);
                if !requested.is_empty() {
                    headers.set("Access-Control-Allow-Headers", requested.join(","));
                }
                if self.max_age > 0 {
                    headers.set("Access-Control-Max-Age", self.max_age.to_string());
                }
                cx.response = Some(Response {
                    status: 200,
                    reason: "OK".into(),
                    headers,
                    body: Some(Vec::new()),
                });
                Flow::Respond
            }
            None => {
                if !(origin_ok && self.methods.allows(&cx.request.method)) {
                    return self.unmatched(cx);
                }
                let mut headers = std::mem::take(&mut cx.response_headers);
                self.origin_headers(&origin, &mut headers);
                if !self.expose.is_empty() {
                    headers.set("Access-Control-Expose-Headers", self.expose.join(","));
                }
                cx.response_headers = headers;
                Flow::Continue
            }
        }
    }

    /// Allow-Origin (the request's origin, or `*` when any origin is allowed without
    /// credentials), Allow-Credentials, and `Vary: Origin` when the answer depends on it.
    fn origin_headers(&self, origin: &str, out: &mut Headers) {
        if self.origins == AnyOr::Any && !self.allow_credentials {
            out.set("Access-Control-Allow-Origin", "*".into());
        } else {
            out.set("Access-Control-Allow-Origin", origin.to_string());
            out.set("Vary", "Origin".into());
        }
        if self.allow_credentials {
            out.set("Access-Control-Allow-Credentials", "true".into());
        }
    }

    fn unmatched(&self, cx: &mut Context) -> Flow {
        if !self.terminate_unmatched {
            return Flow::Continue;
        }
        cx.response = Some(Response {
            status: 200,
            reason: "OK".into(),
            headers: Headers::default(),
            body: Some(Vec::new()),
        });
        Flow::Respond
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::Scope;
    use crate::policy::xml;

    fn cx_for(section: Section) -> CompileCx<'static> {
        CompileCx {
            section,
            scope: Scope::Api,
            scope_id: "api1",
            index: 0,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        }
    }

    fn ip_filter(doc: &str) -> Result<IpFilter, String> {
        IpFilter::compile(&xml::parse(doc).unwrap(), &cx_for(Section::Inbound))
    }

    fn cors(doc: &str) -> Result<Cors, String> {
        Cors::compile(&xml::parse(doc).unwrap(), &cx_for(Section::Inbound))
    }

    fn from_ip(ip: &str) -> Context {
        let mut cx = Context::default();
        cx.request.ip = Some(ip.parse().unwrap());
        cx
    }

    fn failure(flow: Flow) -> PolicyFailure {
        match flow {
            Flow::Error(f) => f,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    const RANGES: &str = r#"<ip-filter action="ACTION">
        <address>13.66.201.169</address>
        <address-range from="10.0.0.10" to="10.0.0.20" />
        <address>2001:db8::1</address>
        <address-range from="2001:db8:1::" to="2001:db8:1::ffff" />
    </ip-filter>"#;

    #[test]
    fn ip_filter_allow_admits_only_listed_v4_and_v6() {
        let p = ip_filter(&RANGES.replace("ACTION", "allow")).unwrap();
        for ok in [
            "13.66.201.169",
            "10.0.0.10",
            "10.0.0.15",
            "10.0.0.20",
            "::ffff:10.0.0.12",
            "2001:db8::1",
            "2001:db8:1::",
            "2001:db8:1::ff00",
            "2001:db8:1::ffff",
        ] {
            assert_eq!(p.apply(&mut from_ip(ok)), Flow::Continue, "{ok}");
        }
        for bad in [
            "10.0.0.9",
            "10.0.0.21",
            "13.66.201.170",
            "2001:db8::2",
            "2001:db8:1::1:0",
        ] {
            let f = failure(p.apply(&mut from_ip(bad)));
            assert_eq!(f.status, 403);
            assert_eq!(f.message, "Forbidden");
            assert_eq!(f.error.source, "ip-filter");
            assert_eq!(f.error.reason, "CallerIpNotAllowed");
            assert_eq!(
                f.error.message,
                format!("Caller IP address {bad} is not allowed. Access denied.")
            );
        }
    }

    #[test]
    fn ip_filter_forbid_blocks_only_listed_v4_and_v6() {
        let p = ip_filter(&RANGES.replace("ACTION", "forbid")).unwrap();
        for blocked in ["10.0.0.10", "10.0.0.20", "2001:db8:1::42", "13.66.201.169"] {
            let f = failure(p.apply(&mut from_ip(blocked)));
            assert_eq!(f.status, 403);
            assert_eq!(f.error.reason, "CallerIpBlocked");
            assert_eq!(
                f.error.message,
                "Caller IP address is blocked. Access denied."
            );
        }
        for ok in ["10.0.0.21", "192.168.1.1", "2001:db8:2::1", "::1"] {
            assert_eq!(p.apply(&mut from_ip(ok)), Flow::Continue, "{ok}");
        }
    }

    #[test]
    fn ip_filter_without_client_address_is_refused() {
        let p = ip_filter(&RANGES.replace("ACTION", "forbid")).unwrap();
        let f = failure(p.apply(&mut Context::default()));
        assert_eq!(f.status, 403);
        assert_eq!(f.error.reason, "FailedToParseCallerIP");
    }

    #[test]
    fn ip_filter_expressions_are_evaluated_per_request() {
        let p = ip_filter(
            r#"<ip-filter action="@("al" + "low")"><address>@("10.1.1." + "1")</address></ip-filter>"#,
        )
        .unwrap();
        assert_eq!(p.apply(&mut from_ip("10.1.1.1")), Flow::Continue);
        assert_eq!(failure(p.apply(&mut from_ip("10.1.1.2"))).status, 403);
    }

    #[test]
    fn ip_filter_compile_errors() {
        let err = |doc: &str| ip_filter(doc).unwrap_err();
        assert_eq!(
            err(r#"<ip-filter><address>1.2.3.4</address></ip-filter>"#),
            "attribute action is required"
        );
        assert!(
            err(r#"<ip-filter action="deny"><address>1.2.3.4</address></ip-filter>"#)
                .contains("allow or forbid")
        );
        assert_eq!(
            err(r#"<ip-filter action="allow" mode="x"><address>1.2.3.4</address></ip-filter>"#),
            "unknown attribute mode"
        );
        assert_eq!(
            err(r#"<ip-filter action="allow"/>"#),
            "needs at least one <address> or <address-range>"
        );
        assert!(
            err(r#"<ip-filter action="allow"><address>1.2.3</address></ip-filter>"#)
                .contains("not an IPv4 or IPv6 address")
        );
        assert!(
            err(r#"<ip-filter action="allow"><address>10.0.0.0/8</address></ip-filter>"#)
                .contains("not an IPv4 or IPv6 address")
        );
        assert!(err(r#"<ip-filter action="allow"><address-range from="10.0.0.9" to="10.0.0.1"/></ip-filter>"#)
            .contains("is after"));
        assert!(err(
            r#"<ip-filter action="allow"><address-range from="10.0.0.1" to="::1"/></ip-filter>"#
        )
        .contains("same IP version"));
        assert!(
            err(r#"<ip-filter action="allow"><address-range from="10.0.0.1"/></ip-filter>"#)
                .contains("attribute to is required")
        );
        assert!(
            err(r#"<ip-filter action="allow"><cidr>10.0.0.0/8</cidr></ip-filter>"#)
                .contains("unexpected <cidr>")
        );
        let outbound = IpFilter::compile(
            &xml::parse(r#"<ip-filter action="allow"><address>1.2.3.4</address></ip-filter>"#)
                .unwrap(),
            &cx_for(Section::Outbound),
        );
        assert!(outbound.unwrap_err().contains("not allowed in outbound"));
    }

    const CORS: &str = r#"<cors allow-credentials="true">
        <allowed-origins>
            <origin>http://localhost:8080/</origin>
            <origin>HTTPS://Example.com:443</origin>
        </allowed-origins>
        <allowed-methods preflight-result-max-age="300">
            <method>GET</method>
            <method>POST</method>
            <method>PATCH</method>
        </allowed-methods>
        <allowed-headers>
            <header>content-type</header>
            <header>X-Zumo-Auth</header>
        </allowed-headers>
        <expose-headers>
            <header>x-request-id</header>
            <header>x-total</header>
        </expose-headers>
    </cors>"#;

    fn preflight(origin: &str, method: &str, headers: &str) -> Context {
        let mut cx = Context::default();
        cx.request.method = "OPTIONS".into();
        cx.request.headers.set("Origin", origin.into());
        cx.request
            .headers
            .set("Access-Control-Request-Method", method.into());
        if !headers.is_empty() {
            cx.request
                .headers
                .set("Access-Control-Request-Headers", headers.into());
        }
        cx
    }

    #[test]
    fn cors_answers_an_allowed_preflight() {
        let p = cors(CORS).unwrap();
        let mut cx = preflight("https://example.com", "PATCH", "Content-Type, x-zumo-auth");
        assert_eq!(p.apply(&mut cx), Flow::Respond);
        let resp = cx.response.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, Some(Vec::new()));
        let h = &resp.headers;
        assert_eq!(
            h.get("Access-Control-Allow-Origin").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(
            h.get("Access-Control-Allow-Credentials").as_deref(),
            Some("true")
        );
        assert_eq!(
            h.get("Access-Control-Allow-Methods").as_deref(),
            Some("PATCH")
        );
        assert_eq!(
            h.get("Access-Control-Allow-Headers").as_deref(),
            Some("Content-Type,x-zumo-auth")
        );
        assert_eq!(h.get("Access-Control-Max-Age").as_deref(), Some("300"));
        assert_eq!(h.get("Vary").as_deref(), Some("Origin"));
    }

    #[test]
    fn cors_refuses_disallowed_origin_method_or_header() {
        let p = cors(CORS).unwrap();
        for mut cx in [
            preflight("http://evil.test", "GET", ""),
            preflight("http://localhost:8081", "GET", ""),
            preflight("https://example.com", "DELETE", ""),
            preflight("https://example.com", "GET", "x-other"),
            preflight("null", "GET", ""),
        ] {
            assert_eq!(p.apply(&mut cx), Flow::Respond);
            let resp = cx.response.unwrap();
            assert_eq!(resp.status, 200);
            assert!(!resp.headers.contains("Access-Control-Allow-Origin"));
            assert!(cx.response_headers.0.is_empty());
        }
        // Actual request from a foreign origin: terminated with an empty 200 by default.
        let mut cx = Context::default();
        cx.request.method = "GET".into();
        cx.request.headers.set("Origin", "http://evil.test".into());
        assert_eq!(p.apply(&mut cx), Flow::Respond);
        assert!(!cx
            .response
            .unwrap()
            .headers
            .contains("Access-Control-Allow-Origin"));
    }

    #[test]
    fn cors_unmatched_goes_on_when_not_terminating() {
        let p =
            cors(&CORS.replace("<cors ", "<cors terminate-unmatched-request=\"false\" ")).unwrap();
        let mut cx = preflight("http://evil.test", "GET", "");
        assert_eq!(p.apply(&mut cx), Flow::Continue);
        assert!(cx.response.is_none());
        let mut cx = Context::default();
        cx.request.method = "GET".into();
        cx.request.headers.set("Origin", "http://evil.test".into());
        assert_eq!(p.apply(&mut cx), Flow::Continue);
        assert!(cx.response_headers.0.is_empty());
    }

    #[test]
    fn cors_actual_request_leaves_response_headers() {
        let p = cors(CORS).unwrap();
        let mut cx = Context::default();
        cx.request.method = "POST".into();
        cx.request
            .headers
            .set("Origin", "http://localhost:8080".into());
        assert_eq!(p.apply(&mut cx), Flow::Continue);
        assert!(cx.response.is_none());
        let h = &cx.response_headers;
        assert_eq!(
            h.get("Access-Control-Allow-Origin").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(
            h.get("Access-Control-Allow-Credentials").as_deref(),
            Some("true")
        );
        assert_eq!(
            h.get("Access-Control-Expose-Headers").as_deref(),
            Some("x-request-id,x-total")
        );
        assert_eq!(h.get("Vary").as_deref(), Some("Origin"));

        // No Origin: not a CORS request, nothing to do.
        let mut cx = Context::default();
        cx.request.method = "GET".into();
        assert_eq!(p.apply(&mut cx), Flow::Continue);
        assert!(cx.response_headers.0.is_empty());
    }

    #[test]
    fn cors_wildcards() {
        let p = cors(
            r#"<cors><allowed-origins><origin>*</origin></allowed-origins>
               <allowed-methods><method>*</method></allowed-methods>
               <allowed-headers><header>*</header></allowed-headers></cors>"#,
        )
        .unwrap();
        let mut cx = preflight("https://anything.test", "PURGE", "x-a, x-b");
        assert_eq!(p.apply(&mut cx), Flow::Respond);
        let h = cx.response.unwrap().headers;
        assert_eq!(h.get("Access-Control-Allow-Origin").as_deref(), Some("*"));
        assert!(!h.contains("Vary"));
        assert!(!h.contains("Access-Control-Allow-Credentials"));
        assert!(!h.contains("Access-Control-Max-Age"));

        // Without <allowed-methods>, only GET and POST.
        let p =
            cors(r#"<cors><allowed-origins><origin>*</origin></allowed-origins></cors>"#).unwrap();
        let mut cx = preflight("https://a.test", "PUT", "");
        assert_eq!(p.apply(&mut cx), Flow::Respond);
        assert!(!cx
            .response
            .unwrap()
            .headers
            .contains("Access-Control-Allow-Origin"));
        let mut cx = preflight("https://a.test", "POST", "");
        p.apply(&mut cx);
        assert!(cx
            .response
            .unwrap()
            .headers
            .contains("Access-Control-Allow-Origin"));
    }

    #[test]
    fn cors_compile_errors() {
        let err = |doc: &str| cors(doc).unwrap_err();
        assert_eq!(err("<cors/>"), "<cors> needs <allowed-origins>");
        assert_eq!(
            err(
                r#"<cors allow-creds="true"><allowed-origins><origin>*</origin></allowed-origins></cors>"#
            ),
            "unknown attribute allow-creds"
        );
        assert!(err(r#"<cors allow-credentials="yes"><allowed-origins><origin>*</origin></allowed-origins></cors>"#)
            .contains("true or false"));
        assert!(err(r#"<cors allow-credentials="true"><allowed-origins><origin>*</origin></allowed-origins></cors>"#)
            .contains("cannot be combined"));
        assert!(err(
            r#"<cors><allowed-origins><origin>example.com</origin></allowed-origins></cors>"#
        )
        .contains("is not an origin"));
        assert!(err(r#"<cors><allowed-origins></allowed-origins></cors>"#)
            .contains("needs at least one <origin>"));
        assert!(err(r#"<cors><allowed-origins><origin>*</origin><origin>http://a.test</origin></allowed-origins></cors>"#)
            .contains("must be the only"));
        assert!(err(r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-methods preflight-result-max-age="soon"><method>GET</method></allowed-methods></cors>"#)
            .contains("must be a number"));
        assert!(err(r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-methods><verb>GET</verb></allowed-methods></cors>"#)
            .contains("unexpected <verb>"));
        assert!(err(r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-headers><header>bad header</header></allowed-headers></cors>"#)
            .contains("not a valid name"));
        assert!(err(
            r#"<cors><allowed-origins><origin>*</origin></allowed-origins><max-age/></cors>"#
        )
        .contains("<max-age>"));
        assert!(err(r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-origins><origin>*</origin></allowed-origins></cors>"#)
            .contains("repeated <allowed-origins>"));
    }

    #[test]
    fn origins_normalize() {
        assert_eq!(
            normalize_origin("HTTP://LocalHost:80/").as_deref(),
            Some("http://localhost")
        );
        assert_eq!(
            normalize_origin("https://a.test:8443").as_deref(),
            Some("https://a.test:8443")
        );
        assert_eq!(
            normalize_origin("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        assert_eq!(normalize_origin("http://a.test/path"), None);
        assert_eq!(normalize_origin("null"), None);
        assert_eq!(normalize_origin("http://:80"), None);
        assert_eq!(normalize_origin("http://a.test:99999"), None);
    }
}
