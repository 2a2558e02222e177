//! `cache-lookup` (inbound) and `cache-store` (outbound): APIM's response cache, in
//! memory, per core ([`crate::policy::response_cache`]).
//!
//! * Only GET requests are looked up and stored. A request with `Authorization` is
//!   neither, unless `allow-private-response-caching="true"`.
//! * The key is the API, the operation, the request path, and what the policy varies
//!   by: the listed query parameters (as in APIM, a parameter that is not listed is not
//!   part of the key), the listed request headers, and with `vary-by-developer` the
//!   subscription. Portico has no developer groups: `vary-by-developer-groups="true"`
//!   varies by subscription too, which never shares more than APIM would.
//! * A hit answers with the stored response (and `Age`): the rest of inbound and the
//!   backend are skipped, outbound runs, as in APIM. A miss leaves the key in the
//!   context for cache-store.
//! * cache-store keeps a 200 response (any status with `cache-response="true"`) for
//!   `duration` seconds, unless the backend said `Cache-Control: no-store` (or
//!   `private`, without allow-private-response-caching) or sets a cookie. Only responses
//!   with a `Content-Length` of at most 4 MiB are buffered to be stored; others stream
//!   through uncached.
//! * `downstream-caching-type` `private` or `public` gives stored and cached responses
//!   `Cache-Control: private|public, max-age=<seconds left>` (and `must-revalidate`
//!   unless `must-revalidate="false"`); `none` leaves `Cache-Control` as the backend
//!   sent it. `caching-type="external"` is refused (there is no external cache);
//!   `prefer-external` uses the internal one, as APIM does without an external cache.

use std::time::Duration;

use super::access::only_in;
use super::attrs::{no_children, Attrs};
use super::headers::expression_failure;
use super::CompileCx;
use crate::policy::context::{Context, Headers, Response};
use crate::policy::expr::Template;
use crate::policy::pipeline::{Flow, Section};
use crate::policy::response_cache::CachedResponse;
use crate::policy::services::Services;
use crate::policy::xml::Element;

/// Longest `duration` kept (30 days).
const MAX_DURATION_SECS: u64 = 30 * 24 * 3600;

/// What a cache-lookup miss leaves for cache-store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMiss {
    key: String,
    downstream: Downstream,
    allow_private: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Downstream {
    None,
    Private { must_revalidate: bool },
    Public { must_revalidate: bool },
}

#[derive(Debug)]
pub struct CacheLookup {
    vary_by_developer: bool,
    downstream: Downstream,
    allow_private: bool,
    headers: Vec<String>,
    query: Vec<String>,
}

#[derive(Debug)]
pub struct CacheStore {
    duration: Template,
    cache_response: bool,
    budget: u64,
}

impl CacheLookup {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound])?;
        let mut a = Attrs::new(el);
        let by_developer = literal_bool(&mut a, "vary-by-developer", false)?;
        let by_groups = literal_bool(&mut a, "vary-by-developer-groups", false)?;
        match literal(&mut a, "caching-type")? {
            None | Some("internal") | Some("prefer-external") => {}
            Some("external") => {
                return Err(
                    "caching-type=\"external\": Portico has no external cache (use internal)"
                        .into(),
                )
            }
            Some(other) => {
                return Err(format!(
                    "caching-type must be internal, external or prefer-external, not {other:?}"
                ))
            }
        }
        let must_revalidate = literal_bool(&mut a, "must-revalidate", true)?;
        let downstream = match literal(&mut a, "downstream-caching-type")? {
            None | Some("none") => Downstream::None,
            Some("private") => Downstream::Private { must_revalidate },
            Some("public") => Downstream::Public { must_revalidate },
            Some(other) => {
                return Err(format!(
                    "downstream-caching-type must be none, private or public, not {other:?}"
                ))
            }
        };
        let allow_private = literal_bool(&mut a, "allow-private-response-caching", false)?;
        a.finish()?;
        let mut headers = Vec::new();
        let mut query = Vec::new();
        for child in el.elements() {
            Attrs::new(child)
                .finish()
                .map_err(|e| format!("<{}>: {e}", child.name))?;
            no_children(child).map_err(|e| format!("<{}>: {e}", child.name))?;
            let text = child.text();
            if text.starts_with('@') {
                return Err(format!(
                    "<{}>: policy expressions are not supported here",
                    child.name
                ));
            }
            match child.name.as_str() {
                "vary-by-header" => {
                    let name = text.trim();
                    if name.is_empty() || !name.bytes().all(super::attrs::is_token_byte) {
                        return Err(format!("<vary-by-header>: {name:?} is not a header name"));
                    }
                    headers.push(name.to_string());
                }
                "vary-by-query-parameter" => {
                    let names: Vec<String> = text
                        .split(';')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect();
                    if names.is_empty() {
                        return Err("<vary-by-query-parameter> is empty".into());
                    }
                    query.extend(names);
                }
                other => return Err(format!("unexpected <{other}> in <cache-lookup>")),
            }
        }
        Ok(CacheLookup {
            vary_by_developer: by_developer || by_groups,
            downstream,
            allow_private,
            headers,
            query,
        })
    }

    /// A hit: `context.Response` is the stored response and the pipeline skips to
    /// outbound. A miss: the key is kept for cache-store.
    pub fn apply(&self, cx: &mut Context, svc: &mut Services) -> Flow {
        cx.cache_miss = None;
        if cx.request.method != "GET"
            || (!self.allow_private && cx.request.headers.contains("authorization"))
        {
            return Flow::Continue;
        }
        let key = self.key(cx);
        let now = svc.now;
        if let Some(hit) = svc.tables.responses.get(&key, now) {
            let mut headers = Headers(hit.response.headers.clone());
            headers.set("Age", hit.age.as_secs().to_string());
            downstream_headers(&mut headers, self.downstream, hit.fresh_for);
            cx.response = Some(Response {
                status: hit.response.status,
                reason: hit.response.reason.clone(),
                headers,
                body: Some(hit.response.body.clone()),
            });
            return Flow::SkipToOutbound;
        }
        cx.cache_miss = Some(CacheMiss {
            key,
            downstream: self.downstream,
            allow_private: self.allow_private,
        });
        Flow::Continue
    }

    fn key(&self, cx: &Context) -> String {
        let mut key = String::with_capacity(128);
        let mut part = |s: &str| {
            key.push_str(&s.len().to_string());
            key.push(':');
            key.push_str(s);
        };
        part(&cx.deployment.api_id);
        part(&cx.deployment.operation_id);
        part(&cx.request.path);
        for name in &self.query {
            part(name);
            for (_, v) in cx
                .request
                .query
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                part(v);
            }
            part("");
        }
        for name in &self.headers {
            part(name);
            part(&cx.request.headers.get(name).unwrap_or_default());
        }
        if self.vary_by_developer {
            part(
                cx.deployment
                    .subscription
                    .as_ref()
                    .map_or("", |s| s.id.as_str()),
            );
        }
        key
    }
}

impl CacheStore {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Outbound])?;
        let mut a = Attrs::new(el);
        let duration = a
            .template("duration")?
            .ok_or("attribute duration is required")?;
        if let Template::Literal(text) = &duration {
            parse_duration(text)?;
        }
        let cache_response = literal_bool(&mut a, "cache-response", false)?;
        a.finish()?;
        no_children(el)?;
        Ok(CacheStore {
            duration,
            cache_response,
            budget: cx.env.response_cache_bytes,
        })
    }

    /// Whether a response with `status` would be stored (the proxy then buffers it).
    pub fn wants(&self, status: u16) -> bool {
        status == 200 || (self.cache_response && status >= 200)
    }

    pub fn needs_body(&self) -> bool {
        matches!(&self.duration, Template::Expr(e) if e.reads_request_body() || e.reads_response_body())
    }

    pub fn apply(&self, cx: &mut Context, svc: &mut Services) -> Flow {
        let Some(miss) = cx.cache_miss.take() else {
            return Flow::Continue;
        };
        let Some(response) = &cx.response else {
            return Flow::Continue;
        };
        let Some(body) = &response.body else {
            // Not buffered (no Content-Length, or too large): not stored.
            return Flow::Continue;
        };
        if !self.wants(response.status) || !storable(&response.headers, miss.allow_private) {
            return Flow::Continue;
        }
        let seconds = match self.duration.eval_str(cx) {
            Ok(text) => match parse_duration(&text) {
                Ok(s) => s,
                Err(e) => return Flow::Error(expression_failure("cache-store", e)),
            },
            Err(e) => return Flow::Error(expression_failure("cache-store", e.message)),
        };
        let ttl = Duration::from_secs(seconds);
        let mut headers = response.headers.clone();
        downstream_headers(&mut headers, miss.downstream, ttl);
        let stored = CachedResponse {
            status: response.status,
            reason: response.reason.clone(),
            headers: headers
                .0
                .iter()
                .filter(|(n, _)| !is_per_message(n))
                .cloned()
                .collect(),
            body: body.clone(),
        };
        svc.tables
            .responses
            .insert(&miss.key, stored, ttl, svc.now, self.budget);
        if let Some(response) = &mut cx.response {
            response.headers = headers;
        }
        Flow::Continue
    }
}

/// Fields that describe one transfer, not the response: never stored.
fn is_per_message(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "age",
        "date",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// What the backend allows to be kept: no `no-store`, no `private` (unless allowed),
/// no cookie being set.
fn storable(headers: &Headers, allow_private: bool) -> bool {
    if headers.contains("set-cookie") {
        return false;
    }
    let cache_control = headers.get("cache-control").unwrap_or_default();
    !cache_control.split(',').any(|d| {
        let d = d.trim();
        let name = d.split('=').next().unwrap_or("").trim();
        name.eq_ignore_ascii_case("no-store")
            || (!allow_private && name.eq_ignore_ascii_case("private"))
    })
}

fn downstream_headers(headers: &mut Headers, downstream: Downstream, fresh_for: Duration) {
    let (scope, must_revalidate) = match downstream {
        Downstream::None => return,
        Downstream::Private { must_revalidate } => ("private", must_revalidate),
        Downstream::Public { must_revalidate } => ("public", must_revalidate),
    };
    let mut value = format!("{scope}, max-age={}", fresh_for.as_secs());
    if must_revalidate {
        value.push_str(", must-revalidate");
    }
    headers.set("Cache-Control", value);
}

fn parse_duration(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(s) if s <= MAX_DURATION_SECS => Ok(s),
        _ => Err(format!(
            "duration must be whole seconds from 0 to {MAX_DURATION_SECS}, not {:?}",
            text.trim()
        )),
    }
}

fn literal<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<&'a str>, String> {
    match a.opt(name).map(str::trim) {
        Some(v) if v.starts_with('@') => Err(format!(
            "{name}: policy expressions are not supported here (only a literal value)"
        )),
        other => Ok(other),
    }
}

fn literal_bool<'a>(a: &mut Attrs<'a>, name: &'a str, default: bool) -> Result<bool, String> {
    match literal(a, name)? {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!("{name} must be true or false, not {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::Subscription;
    use crate::policy::document::Scope;
    use crate::policy::xml;
    use crate::ratelimit::{CoreShard, NodeLimiter};
    use std::time::Instant;

    fn services() -> Services {
        Services {
            limits: CoreShard::new(NodeLimiter::new(1, 100), 0),
            now: Instant::now(),
            openid: Default::default(),
            tables: Default::default(),
        }
    }

    fn cx_in(section: Section) -> CompileCx<'static> {
        CompileCx {
            section,
            scope: Scope::Api,
            scope_id: "api",
            index: 0,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        }
    }

    fn lookup(doc: &str) -> Result<CacheLookup, String> {
        CacheLookup::compile(&xml::parse(doc).unwrap(), &cx_in(Section::Inbound))
    }

    fn store(doc: &str) -> Result<CacheStore, String> {
        CacheStore::compile(&xml::parse(doc).unwrap(), &cx_in(Section::Outbound))
    }

    fn request(path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Context {
        let mut cx = Context::default();
        cx.deployment.api_id = "api".into();
        cx.deployment.operation_id = "op".into();
        cx.request.method = "GET".into();
        cx.request.path = path.into();
        cx.request.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (n, v) in headers {
            cx.request.headers.append(n, v.to_string());
        }
        cx
    }

    fn backend_response(cx: &mut Context, status: u16, headers: &[(&str, &str)], body: &str) {
        let mut h = Headers::default();
        for (n, v) in headers {
            h.append(n, v.to_string());
        }
        cx.response = Some(Response {
            status,
            reason: String::new(),
            headers: h,
            body: Some(body.as_bytes().to_vec()),
        });
    }

    /// Looks up, and on a miss stores what the backend "answers"; returns the body
    /// the client gets and whether it came from the cache.
    fn call(
        l: &CacheLookup,
        s: &CacheStore,
        svc: &mut Services,
        mut cx: Context,
        backend_says: &str,
    ) -> (String, bool) {
        match l.apply(&mut cx, svc) {
            Flow::SkipToOutbound => {
                let r = cx.response.unwrap();
                (String::from_utf8(r.body.unwrap()).unwrap(), true)
            }
            Flow::Continue => {
                backend_response(
                    &mut cx,
                    200,
                    &[("Content-Type", "text/plain")],
                    backend_says,
                );
                assert_eq!(s.apply(&mut cx, svc), Flow::Continue);
                (backend_says.to_string(), false)
            }
            other => panic!("{other:?}"),
        }
    }

    const LOOKUP: &str = r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="none" caching-type="internal">
        <vary-by-header>Accept</vary-by-header>
        <vary-by-query-parameter>version;page</vary-by-query-parameter>
    </cache-lookup>"#;

    #[test]
    fn the_key_is_path_and_the_listed_query_parameters_and_headers() {
        let l = lookup(LOOKUP).unwrap();
        let s = store(r#"<cache-store duration="60"/>"#).unwrap();
        let mut svc = services();
        let get = |path: &str, q: &[(&str, &str)], h: &[(&str, &str)]| request(path, q, h);
        assert_eq!(
            call(&l, &s, &mut svc, get("/a", &[("version", "1")], &[]), "one"),
            ("one".into(), false)
        );
        // Same key: a hit, whatever unlisted parameters say.
        assert_eq!(
            call(
                &l,
                &s,
                &mut svc,
                get("/a", &[("version", "1"), ("x", "9")], &[]),
                "-"
            ),
            ("one".into(), true)
        );
        // A listed parameter, a listed header or the path differ: a miss.
        for cx in [
            get("/a", &[("version", "2")], &[]),
            get("/a", &[("version", "1"), ("page", "2")], &[]),
            get("/a", &[("version", "1")], &[("Accept", "text/xml")]),
            get("/b", &[("version", "1")], &[]),
        ] {
            assert!(!call(&l, &s, &mut svc, cx, "two").1);
        }
        // Query parameter names compare without case, values exactly.
        assert!(call(&l, &s, &mut svc, get("/a", &[("VERSION", "1")], &[]), "-").1);
    }

    #[test]
    fn only_gets_without_credentials_are_cached() {
        let l = lookup(LOOKUP).unwrap();
        let s = store(r#"<cache-store duration="60"/>"#).unwrap();
        let mut svc = services();
        let mut post = request("/a", &[], &[]);
        post.request.method = "POST".into();
        assert_eq!(l.apply(&mut post, &mut svc), Flow::Continue);
        assert_eq!(post.cache_miss, None);
        let private = request("/a", &[], &[("Authorization", "Bearer x")]);
        assert!(!call(&l, &s, &mut svc, private.clone(), "p").1);
        assert!(!call(&l, &s, &mut svc, private, "p").1);
        assert!(svc.tables.responses.is_empty());
        // Allowed explicitly (and varied by the header, as APIM advises).
        let l = lookup(
            r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" allow-private-response-caching="true"><vary-by-header>Authorization</vary-by-header></cache-lookup>"#,
        )
        .unwrap();
        let alice = || request("/a", &[], &[("Authorization", "Bearer alice")]);
        assert!(!call(&l, &s, &mut svc, alice(), "a").1);
        assert_eq!(call(&l, &s, &mut svc, alice(), "-"), ("a".into(), true));
        let bob = request("/a", &[], &[("Authorization", "Bearer bob")]);
        assert!(!call(&l, &s, &mut svc, bob, "b").1);
    }

    #[test]
    fn vary_by_developer_keys_by_subscription() {
        let l =
            lookup(r#"<cache-lookup vary-by-developer="true" vary-by-developer-groups="false"/>"#)
                .unwrap();
        let s = store(r#"<cache-store duration="60"/>"#).unwrap();
        let mut svc = services();
        let as_sub = |id: &str| {
            let mut cx = request("/a", &[], &[]);
            cx.deployment.subscription = Some(Subscription {
                id: id.into(),
                ..Subscription::default()
            });
            cx
        };
        assert!(!call(&l, &s, &mut svc, as_sub("s1"), "for s1").1);
        assert!(!call(&l, &s, &mut svc, as_sub("s2"), "for s2").1);
        assert_eq!(
            call(&l, &s, &mut svc, as_sub("s1"), "-"),
            ("for s1".into(), true)
        );
    }

    #[test]
    fn what_cache_store_keeps() {
        let l = lookup(LOOKUP).unwrap();
        let s = store(r#"<cache-store duration="60"/>"#).unwrap();
        let mut svc = services();
        for (status, headers) in [
            (404, vec![]),
            (200, vec![("Cache-Control", "no-store")]),
            (200, vec![("Cache-Control", "max-age=5, private")]),
            (200, vec![("Set-Cookie", "a=b")]),
        ] {
            let mut cx = request("/a", &[], &[]);
            assert_eq!(l.apply(&mut cx, &mut svc), Flow::Continue);
            backend_response(&mut cx, status, &headers, "body");
            s.apply(&mut cx, &mut svc);
            assert!(svc.tables.responses.is_empty(), "{status} {headers:?}");
        }
        // Not buffered (streamed): nothing to store.
        let mut cx = request("/a", &[], &[]);
        l.apply(&mut cx, &mut svc);
        backend_response(&mut cx, 200, &[], "x");
        cx.response.as_mut().unwrap().body = None;
        s.apply(&mut cx, &mut svc);
        assert!(svc.tables.responses.is_empty());
        // cache-response="true": other statuses too; per-message fields are dropped.
        let any = store(r#"<cache-store duration="60" cache-response="true"/>"#).unwrap();
        let mut cx = request("/a", &[], &[]);
        l.apply(&mut cx, &mut svc);
        backend_response(
            &mut cx,
            404,
            &[("Content-Length", "4"), ("X-Kept", "1"), ("Date", "x")],
            "gone",
        );
        any.apply(&mut cx, &mut svc);
        let mut again = request("/a", &[], &[]);
        assert_eq!(l.apply(&mut again, &mut svc), Flow::SkipToOutbound);
        let r = again.response.unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.headers.get("X-Kept").as_deref(), Some("1"));
        assert_eq!(r.headers.get("Content-Length"), None);
        assert_eq!(r.headers.get("Date"), None);
        assert_eq!(r.headers.get("Age").as_deref(), Some("0"));
        // A zero duration stores nothing.
        let mut svc = services();
        let zero = store(r#"<cache-store duration="0"/>"#).unwrap();
        let mut cx = request("/a", &[], &[]);
        l.apply(&mut cx, &mut svc);
        backend_response(&mut cx, 200, &[], "x");
        zero.apply(&mut cx, &mut svc);
        assert!(svc.tables.responses.is_empty());
    }

    #[test]
    fn entries_expire_after_duration() {
        let l = lookup(LOOKUP).unwrap();
        let s = store(r#"<cache-store duration="@(30 + 30)"/>"#).unwrap();
        let mut svc = services();
        assert!(!call(&l, &s, &mut svc, request("/a", &[], &[]), "v1").1);
        svc.now += Duration::from_secs(59);
        assert!(call(&l, &s, &mut svc, request("/a", &[], &[]), "-").1);
        svc.now += Duration::from_secs(1);
        assert_eq!(
            call(&l, &s, &mut svc, request("/a", &[], &[]), "v2"),
            ("v2".into(), false)
        );
    }

    #[test]
    fn downstream_caching_sets_cache_control() {
        let l = lookup(
            r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="public"/>"#,
        )
        .unwrap();
        let s = store(r#"<cache-store duration="120"/>"#).unwrap();
        let mut svc = services();
        let mut cx = request("/a", &[], &[]);
        l.apply(&mut cx, &mut svc);
        backend_response(&mut cx, 200, &[("Cache-Control", "max-age=1")], "x");
        s.apply(&mut cx, &mut svc);
        assert_eq!(
            cx.response.unwrap().headers.get("Cache-Control").as_deref(),
            Some("public, max-age=120, must-revalidate")
        );
        svc.now += Duration::from_secs(20);
        let mut hit = request("/a", &[], &[]);
        assert_eq!(l.apply(&mut hit, &mut svc), Flow::SkipToOutbound);
        let h = hit.response.unwrap().headers;
        assert_eq!(
            h.get("Cache-Control").as_deref(),
            Some("public, max-age=100, must-revalidate")
        );
        assert_eq!(h.get("Age").as_deref(), Some("20"));
        let private = lookup(
            r#"<cache-lookup vary-by-developer="false" vary-by-developer-groups="false" downstream-caching-type="private" must-revalidate="false"/>"#,
        )
        .unwrap();
        let mut headers = Headers::default();
        downstream_headers(&mut headers, private.downstream, Duration::from_secs(9));
        assert_eq!(
            headers.get("Cache-Control").as_deref(),
            Some("private, max-age=9")
        );
    }

    #[test]
    fn a_duration_expression_that_fails_is_a_500() {
        let l = lookup(LOOKUP).unwrap();
        let s = store(r#"<cache-store duration="@((string)context.Variables["ttl"])"/>"#).unwrap();
        let mut svc = services();
        let mut cx = request("/a", &[], &[]);
        l.apply(&mut cx, &mut svc);
        backend_response(&mut cx, 200, &[], "x");
        cx.variables.insert(
            "ttl".into(),
            crate::policy::context::Value::Str("soon".into()),
        );
        match s.apply(&mut cx, &mut svc) {
            Flow::Error(f) => {
                assert_eq!(f.status, 500);
                assert_eq!(f.error.source, "cache-store");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compile_errors() {
        let err = |doc: &str| lookup(doc).unwrap_err();
        assert!(err(r#"<cache-lookup caching-type="external"/>"#).contains("no external cache"));
        assert!(err(r#"<cache-lookup caching-type="redis"/>"#).contains("caching-type must be"));
        assert!(err(r#"<cache-lookup downstream-caching-type="shared"/>"#)
            .contains("downstream-caching-type must be"));
        assert!(err(r#"<cache-lookup vary-by-developer="maybe"/>"#).contains("true or false"));
        assert!(err(r#"<cache-lookup vary-by-developer="@(true)"/>"#).contains("expressions"));
        assert_eq!(
            err(r#"<cache-lookup vary-by-user="true"/>"#),
            "unknown attribute vary-by-user"
        );
        assert!(
            err(r#"<cache-lookup><vary-by-cookie>a</vary-by-cookie></cache-lookup>"#)
                .contains("unexpected <vary-by-cookie>")
        );
        assert!(
            err(r#"<cache-lookup><vary-by-header>a b</vary-by-header></cache-lookup>"#)
                .contains("not a header name")
        );
        assert!(err(
            r#"<cache-lookup><vary-by-query-parameter> ; </vary-by-query-parameter></cache-lookup>"#
        )
        .contains("empty"));
        assert!(CacheLookup::compile(
            &xml::parse("<cache-lookup/>").unwrap(),
            &cx_in(Section::Outbound)
        )
        .unwrap_err()
        .contains("not allowed in outbound"));
        let err = |doc: &str| store(doc).unwrap_err();
        assert_eq!(err("<cache-store/>"), "attribute duration is required");
        assert!(err(r#"<cache-store duration="-1"/>"#).contains("whole seconds"));
        assert!(err(r#"<cache-store duration="1h"/>"#).contains("whole seconds"));
        assert!(err(r#"<cache-store duration="5" cache-value="x"/>"#)
            .contains("unknown attribute cache-value"));
        assert!(CacheStore::compile(
            &xml::parse(r#"<cache-store duration="5"/>"#).unwrap(),
            &cx_in(Section::Inbound)
        )
        .unwrap_err()
        .contains("not allowed in inbound"));
    }
}
