//! The policies Portico runs, one variant each, with APIM's element and attribute
//! names. `compile` turns a document element into a [`Policy`] (every attribute checked,
//! unknown ones refused, expressions parsed); [`Policy::apply`] runs it on a request's
//! context. Each family lives in its own file.

mod access;
mod attrs;
mod backend;
pub mod cache;
pub mod concurrency;
mod flow;
mod headers;
mod jwt;
pub mod limits;
mod retry;
mod transform;

pub use attrs::Attrs;
pub use concurrency::{LimitConcurrency, Slot};
pub use flow::{Choose, ForwardRequest};
pub use retry::Retry;

use super::context::Context;
use super::document::Scope;
use super::pipeline::{Flow, Section};
use super::services::Services;
use super::xml::Element;

/// What compiling one policy element needs to know about where it is.
pub struct CompileCx<'a> {
    pub section: Section,
    pub scope: Scope,
    /// The id of the scope's item ("" for global): API id, product id, operation id.
    pub scope_id: &'a str,
    /// The element's position in its scope's section.
    pub index: usize,
    /// The operation's configured mock answer, for mock-response.
    pub mock: Option<&'a crate::config::MockResponse>,
    /// What the rest of the config offers policies.
    pub env: &'a CompileEnv<'a>,
}

/// What policies may refer to besides their own element, from the rest of the config.
#[derive(Debug)]
pub struct CompileEnv<'a> {
    /// The config's `backends:` (set-backend-service backend-id).
    pub backends: &'a [NamedBackend],
    /// Bytes each core's response cache may hold (cache-store).
    pub response_cache_bytes: u64,
}

impl CompileEnv<'static> {
    /// No named backends, the default cache size.
    pub const EMPTY: CompileEnv<'static> = CompileEnv {
        backends: &[],
        response_cache_bytes: DEFAULT_RESPONSE_CACHE_BYTES,
    };
}

/// Default for `gateway.limits.responseCacheBytesPerCore`.
pub const DEFAULT_RESPONSE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// One entry of the config's `backends:`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedBackend {
    pub id: String,
    pub target: super::context::BackendOverride,
}

impl CompileCx<'_> {
    /// A stable identity for counters (rate limits), from the policy's place.
    pub fn identity(&self, extra: &str) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.scope.name(),
            self.scope_id,
            self.section.name(),
            self.index,
            extra
        )
    }
}

/// A compiled policy.
#[derive(Debug)]
pub enum Policy {
    ForwardRequest(flow::ForwardRequest),
    SetHeader(headers::SetHeader),
    CheckHeader(headers::CheckHeader),
    SetQueryParameter(headers::SetQueryParameter),
    RewriteUri(headers::RewriteUri),
    SetMethod(headers::SetMethod),
    SetVariable(flow::SetVariable),
    Choose(flow::Choose),
    ReturnResponse(flow::ReturnResponse),
    MockResponse(flow::MockResponse),
    SetStatus(flow::SetStatus),
    SetBody(flow::SetBody),
    Trace(flow::Trace),
    IpFilter(access::IpFilter),
    Cors(access::Cors),
    ValidateJwt(jwt::ValidateJwt),
    /// `rate-limit` and `rate-limit-by-key`.
    RateLimit(limits::RateLimit),
    /// `quota` and `quota-by-key`.
    Quota(limits::Quota),
    SetBackendService(backend::SetBackendService),
    FindAndReplace(transform::FindAndReplace),
    JsonToXml(transform::JsonToXml),
    XmlToJson(transform::XmlToJson),
    Retry(retry::Retry),
    LimitConcurrency(concurrency::LimitConcurrency),
    CacheLookup(cache::CacheLookup),
    CacheStore(cache::CacheStore),
}

impl Policy {
    pub fn apply(&self, section: Section, cx: &mut Context, svc: &mut Services) -> Flow {
        match self {
            Policy::ForwardRequest(_) => Flow::Continue,
            Policy::SetHeader(p) => p.apply(section, cx),
            Policy::CheckHeader(p) => p.apply(cx),
            Policy::SetQueryParameter(p) => p.apply(cx),
            Policy::RewriteUri(p) => p.apply(cx),
            Policy::SetMethod(p) => p.apply(cx),
            Policy::SetVariable(p) => p.apply(cx),
            Policy::Choose(p) => p.apply(section, cx, svc),
            Policy::ReturnResponse(p) => p.apply(cx),
            Policy::MockResponse(p) => p.apply(cx),
            Policy::SetStatus(p) => p.apply(cx),
            Policy::SetBody(p) => p.apply(section, cx),
            Policy::Trace(p) => p.apply(cx),
            Policy::IpFilter(p) => p.apply(cx),
            Policy::Cors(p) => p.apply(cx),
            Policy::ValidateJwt(p) => p.apply(cx, svc),
            Policy::RateLimit(p) => p.apply(cx, svc),
            Policy::Quota(p) => p.apply(cx, svc),
            Policy::SetBackendService(p) => p.apply(cx),
            Policy::FindAndReplace(p) => p.apply(section, cx),
            Policy::JsonToXml(p) => p.apply(section, cx),
            Policy::XmlToJson(p) => p.apply(section, cx),
            Policy::Retry(p) => p.apply(section, cx, svc),
            Policy::LimitConcurrency(p) => p.apply(section, cx, svc),
            Policy::CacheLookup(p) => p.apply(cx, svc),
            Policy::CacheStore(p) => p.apply(cx, svc),
        }
    }

    /// Whether the proxy must buffer the body of a section holding this policy: the
    /// policy rewrites it, one of its expressions reads it, or (retry, forward-request
    /// following redirects or buffering) the request may be sent more than once. Policies of `headers.rs`
    /// and `flow.rs` other than set-body and choose are not inspected (their
    /// expressions are private to those files).
    pub fn needs_body(&self) -> bool {
        match self {
            Policy::SetBody(_)
            | Policy::FindAndReplace(_)
            | Policy::JsonToXml(_)
            | Policy::XmlToJson(_) => true,
            Policy::Choose(p) => p.needs_body(),
            Policy::ValidateJwt(p) => p.needs_body(),
            Policy::RateLimit(p) => p.needs_body(),
            Policy::Quota(p) => p.needs_body(),
            Policy::SetHeader(p) => p.needs_body(),
            Policy::CheckHeader(p) => p.needs_body(),
            Policy::SetQueryParameter(p) => p.needs_body(),
            Policy::RewriteUri(p) => p.needs_body(),
            Policy::SetVariable(p) => p.needs_body(),
            Policy::ReturnResponse(p) => p.needs_body(),
            Policy::Trace(p) => p.needs_body(),
            Policy::LimitConcurrency(p) => p.needs_body(),
            // Resending the request (another attempt, a followed 307) needs its body.
            Policy::Retry(_) => true,
            Policy::ForwardRequest(p) => p.needs_request_body(),
            // cache-store asks for the response body only when it may store it: see
            // `stores_response`.
            Policy::CacheStore(p) => p.needs_body(),
            Policy::CacheLookup(_)
            | Policy::SetMethod(_)
            | Policy::MockResponse(_)
            | Policy::SetStatus(_)
            | Policy::IpFilter(_)
            | Policy::Cors(_)
            | Policy::SetBackendService(_) => false,
        }
    }
}

impl Policy {
    /// Whether this policy (or one inside it) would store a response with `status` in
    /// the response cache: the proxy then buffers a response of known, bounded length.
    pub fn stores_response(&self, status: u16) -> bool {
        match self {
            Policy::CacheStore(p) => p.wants(status),
            Policy::Choose(p) => p.any(|p| p.stores_response(status)),
            _ => false,
        }
    }
}

/// Compiles one policy element. The error names the policy and its line; the caller
/// adds the scope and section.
pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Policy, String> {
    let here = |e: String| format!("<{}> line {}: {e}", el.name, el.line);
    let policy = match el.name.as_str() {
        "forward-request" => flow::ForwardRequest::compile(el, cx).map(Policy::ForwardRequest),
        "set-header" => headers::SetHeader::compile(el, cx).map(Policy::SetHeader),
        "check-header" => headers::CheckHeader::compile(el, cx).map(Policy::CheckHeader),
        "set-query-parameter" => {
            headers::SetQueryParameter::compile(el, cx).map(Policy::SetQueryParameter)
        }
        "rewrite-uri" => headers::RewriteUri::compile(el, cx).map(Policy::RewriteUri),
        "set-method" => headers::SetMethod::compile(el, cx).map(Policy::SetMethod),
        "set-variable" => flow::SetVariable::compile(el, cx).map(Policy::SetVariable),
        "choose" => flow::Choose::compile(el, cx).map(Policy::Choose),
        "return-response" => flow::ReturnResponse::compile(el, cx).map(Policy::ReturnResponse),
        "mock-response" => flow::MockResponse::compile(el, cx).map(Policy::MockResponse),
        "set-status" => flow::SetStatus::compile(el, cx).map(Policy::SetStatus),
        "set-body" => flow::SetBody::compile(el, cx).map(Policy::SetBody),
        "trace" => flow::Trace::compile(el, cx).map(Policy::Trace),
        "ip-filter" => access::IpFilter::compile(el, cx).map(Policy::IpFilter),
        "cors" => access::Cors::compile(el, cx).map(Policy::Cors),
        "validate-jwt" => jwt::ValidateJwt::compile(el, cx).map(Policy::ValidateJwt),
        "rate-limit" | "rate-limit-by-key" => {
            limits::RateLimit::compile(el, cx).map(Policy::RateLimit)
        }
        "quota" | "quota-by-key" => limits::Quota::compile(el, cx).map(Policy::Quota),
        "set-backend-service" => {
            backend::SetBackendService::compile(el, cx).map(Policy::SetBackendService)
        }
        "find-and-replace" => {
            transform::FindAndReplace::compile(el, cx).map(Policy::FindAndReplace)
        }
        "json-to-xml" => transform::JsonToXml::compile(el, cx).map(Policy::JsonToXml),
        "xml-to-json" => transform::XmlToJson::compile(el, cx).map(Policy::XmlToJson),
        "retry" => retry::Retry::compile(el, cx).map(Policy::Retry),
        "cache-lookup" => cache::CacheLookup::compile(el, cx).map(Policy::CacheLookup),
        "cache-store" => cache::CacheStore::compile(el, cx).map(Policy::CacheStore),
        "limit-concurrency" => {
            concurrency::LimitConcurrency::compile(el, cx).map(Policy::LimitConcurrency)
        }
        "base" => return Err(here("<base/> is only allowed directly in a section".into())),
        other => return Err(here(format!("unknown policy <{other}>"))),
    };
    policy.map_err(here)
}

/// Compiles the child policies of a container element (choose branches).
pub fn compile_children(el: &Element, cx: &CompileCx<'_>) -> Result<Vec<Policy>, String> {
    let mut out = Vec::new();
    for child in el.elements() {
        out.push(compile(child, cx)?);
    }
    if el
        .children
        .iter()
        .any(|n| matches!(n, super::xml::Node::Text(t) if !t.trim().is_empty()))
    {
        return Err(format!("<{}> line {}: unexpected text", el.name, el.line));
    }
    Ok(out)
}

#[cfg(test)]
mod robustness {
    use super::*;
    use crate::policy::document::{merge, ScopeDoc};

    /// Mutated copies of the policy documents used by the end-to-end tests: reading,
    /// merging and compiling never panic, whatever the damage.
    #[test]
    fn mutated_documents_never_panic() {
        let seeds = [
            include_str!("../../../tests/policies/api-orders.xml"),
            include_str!("../../../tests/policies/global.xml"),
            include_str!("../../../tests/policies/operation-get-order.xml"),
            include_str!("../../../tests/policies/api-catalog.xml"),
        ];
        let forward = crate::policy::xml::parse("<forward-request/>").unwrap();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut compiled = 0;
        for round in 0..1500 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..(1 + round % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % bytes.len();
                match x % 3 {
                    0 => bytes[i] = b"<>\"'/@(){}=& ;abc"[(x >> 8) as usize % 17],
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, (x >> 16) as u8 & 0x7f),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let Ok(doc) = ScopeDoc::parse(&text) else {
                continue;
            };
            for section in Section::ALL {
                let Ok(placed) = merge(&[(Scope::Api, Some(&doc))], section, &forward) else {
                    continue;
                };
                for p in placed {
                    let cx = CompileCx {
                        section,
                        scope: p.scope,
                        scope_id: "t",
                        index: p.index,
                        mock: None,
                        env: &CompileEnv::EMPTY,
                    };
                    if compile(p.element, &cx).is_ok() {
                        compiled += 1;
                    }
                }
            }
        }
        assert!(
            compiled > 0,
            "the mutations left nothing compilable: the test tests nothing"
        );
    }
}
