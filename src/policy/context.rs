//! The per-request data that policies and expressions read and change: APIM's
//! `context` object, as plain owned data. The proxy fills it from the request head and
//! the matched route, inbound policies change it, the proxy forwards what it says, and
//! outbound policies see the response in it. No I/O and no executor types here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// A runtime value of the expression language and of `context.Variables`. Shared parts
/// are `Arc`, not `Rc`: literals live in the compiled config, which every core shares.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Arc<str>),
    /// An array of strings (e.g. the result of `Split`).
    StrArray(Arc<[Arc<str>]>),
    DateTime(SystemTime),
    /// A parsed (not validated) JWT, from `.AsJwt()`.
    Jwt(Arc<Jwt>),
}

/// A decoded JWT, as `AsJwt()` returns it (no signature check).
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub id: Option<String>,
    pub algorithm: Option<String>,
    pub expiration_time: Option<SystemTime>,
    pub not_before: Option<SystemTime>,
    pub issued_at: Option<SystemTime>,
    /// Every claim, values as strings (arrays give one entry per element).
    pub claims: HashMap<String, Vec<String>>,
}

/// Header fields as an ordered list; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// A field value from the wire as text; bytes that are not UTF-8 become U+FFFD.
    /// `str::from_utf8` first: it checks ASCII a word at a time, where
    /// `String::from_utf8_lossy` walks byte by byte even when nothing needs replacing.
    pub fn text(value: &[u8]) -> String {
        match std::str::from_utf8(value) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(value).into_owned(),
        }
    }

    /// The values of `name`, joined with "," as APIM does for repeated fields.
    pub fn get(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        for (n, v) in &self.0 {
            if n.eq_ignore_ascii_case(name) {
                match &mut found {
                    Some(acc) => {
                        acc.push(',');
                        acc.push_str(v);
                    }
                    None => found = Some(v.clone()),
                }
            }
        }
        found
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn set(&mut self, name: &str, value: String) {
        self.remove(name);
        self.0.push((name.to_string(), value));
    }

    pub fn append(&mut self, name: &str, value: String) {
        self.0.push((name.to_string(), value));
    }
}

/// `context.Request`.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Scheme of the client connection: "http" or "https".
    pub scheme: String,
    /// The Host the client used, without port.
    pub host: String,
    pub port: u16,
    /// The path as received (percent-encoded), starting with '/'.
    pub path: String,
    /// Query parameters in order, raw (percent-encoded) names and values.
    pub query: Vec<(String, String)>,
    pub headers: Headers,
    pub ip: Option<IpAddr>,
    /// `context.Request.MatchedParameters`: URL template parameters.
    pub matched_parameters: Vec<(String, String)>,
    /// A body set or read by a policy (only when a policy needs it).
    pub body: Option<Vec<u8>>,
}

/// `context.Response` (outbound and on-error sections).
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Option<Vec<u8>>,
}

/// `context.LastError`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastError {
    /// The policy or stage that failed: "validate-jwt", "rate-limit", "forward-request", ...
    pub source: String,
    /// Machine-readable reason, e.g. "TokenExpired", "SubscriptionKeyNotFound".
    pub reason: String,
    pub message: String,
    pub scope: String,
    pub section: String,
    pub policy_id: String,
}

/// What the gateway knows about the matched API, operation, product and subscription.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub gateway_id: String,
    pub api_id: String,
    pub api_name: String,
    /// The API's path ("" or "/echo").
    pub api_path: String,
    pub operation_id: String,
    pub product_id: Option<String>,
    pub subscription: Option<Subscription>,
}

/// `context.Subscription`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    /// The key the client presented (never logged).
    pub key: String,
}

/// Where the request goes, as policies leave it (set-backend-service, rewrite-uri).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forward {
    /// The path sent after the backend's base path (the request path after the API
    /// path, unless rewrite-uri changed it), starting with '/' or empty.
    pub path: String,
    /// Set by set-backend-service: the backend to use instead of the API's.
    pub backend: Option<BackendOverride>,
}

/// A backend chosen by a policy, resolved when the config was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendOverride {
    pub addr: std::net::SocketAddr,
    pub authority: String,
    pub base_path: String,
}

/// APIM's `context` for one request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub request: Request,
    pub forward: Forward,
    pub response: Option<Response>,
    pub variables: HashMap<String, Value>,
    pub deployment: Deployment,
    pub last_error: Option<LastError>,
    /// Request time, for `DateTime.UtcNow` (read once per request).
    pub now: Option<SystemTime>,
    /// Header fields that inbound policies put on the response the client finally
    /// gets, whatever produced it (backend, return-response, an error): cors's
    /// `Access-Control-*` and `Vary: Origin`, rate-limit's remaining/total calls. The
    /// proxy applies them last, after outbound / on-error, just before writing the head:
    /// each replaces a field of the same name, except `Vary`, whose value is added to the
    /// existing list.
    pub response_headers: Headers,
    /// Work rate-limit / quota policies leave for when the response is known: a
    /// bandwidth quota's bytes, and calls counted under an `increment-condition` that
    /// reads `context.Response` (refunded if it turns out false). The proxy runs it with
    /// [`crate::policy::builtin::limits::after_response`] once the response is final.
    pub after_response: Vec<crate::policy::builtin::limits::AfterResponse>,
    /// The key a cache-lookup missed, for cache-store to fill.
    pub cache_miss: Option<crate::policy::builtin::cache::CacheMiss>,
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn field_text_is_kept_when_utf8_and_replaced_where_not() {
        assert_eq!(Headers::text(b"Bearer abc"), "Bearer abc");
        assert_eq!(Headers::text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(Headers::text(b"a\xffb\xc3"), "a\u{fffd}b\u{fffd}");
    }
}
