//! `apis[]` compiled into [`Api`] and [`Operation`] values: ids, API path, host
//! patterns, backend, limits, operations with parsed URL templates and mocks. Checks
//! that concern one API live here; checks across APIs (duplicate ids, clashing paths)
//! live in `compile/mod.rs`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Duration;

use super::backend::BackendTable;
use super::settings::timeout;
use super::Errors;
use crate::config::model::{ApiDoc, MockDoc, OperationDoc};
use crate::config::route::{HostPattern, UrlTemplate};
use crate::config::syntax;

/// A compiled API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Position in [`CompiledConfig::apis`](super::CompiledConfig::apis).
    pub index: usize,
    pub id: String,
    pub name: String,
    /// `""` (serves the root) or `/echo`: a leading '/', never a trailing one.
    pub path: String,
    /// Lowercase host patterns (`api.example.com`, `*.example.com`); empty: any host.
    pub hostnames: Vec<String>,
    /// Index into [`CompiledConfig::backends`](super::CompiledConfig::backends);
    /// `None` when every operation is mocked and no `serviceUrl` was given.
    pub backend: Option<usize>,
    /// Upstream response timeout.
    pub timeout: Duration,
    /// Larger request bodies are answered with 413.
    pub max_request_body: Option<u64>,
    /// A subscription key is required to call it.
    pub subscription_required: bool,
    /// Where the subscription key is read from.
    pub key_header: String,
    pub key_query: String,
    /// In document order; routing precedence is kept separately.
    pub operations: Vec<Operation>,
}

/// A compiled operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Position in its API's `operations`.
    pub index: usize,
    pub id: String,
    /// Case-sensitive method (RFC 9110 §9.1); `None` matches any method.
    pub method: Option<String>,
    pub template: UrlTemplate,
    pub mock: Option<MockResponse>,
}

/// A response the gateway gives itself instead of calling the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(300);

/// Methods whose lowercase spelling is almost surely a typo, since methods are
/// case-sensitive and `get` would never match a `GET` request.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Compiles one API. Always returns a value so that checks across APIs can run; it
/// is only used when `errors` stays empty.
pub(super) fn compile_api(
    at: &str,
    doc: &ApiDoc,
    backends: &mut BackendTable<'_>,
    errors: &mut Errors,
) -> (Api, Vec<(usize, HostPattern)>) {
    if let Err(e) = syntax::check_id(&doc.id) {
        errors.push(format!("{at}.id"), e);
    }
    let name = match &doc.name {
        None => doc.id.clone(),
        Some(name) if name.trim().is_empty() => {
            errors.push(format!("{at}.name"), "must not be empty");
            name.clone()
        }
        Some(name) => name.clone(),
    };
    let path = match api_path(doc.path.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("{at}.path"), e);
            String::new()
        }
    };

    // Each pattern keeps its index in the document for error paths.
    let mut patterns: Vec<(usize, HostPattern)> = Vec::new();
    for (k, text) in doc.hostnames.iter().flatten().enumerate() {
        match HostPattern::parse(text) {
            Ok(p) if patterns.iter().any(|(_, q)| *q == p) => {
                errors.push(
                    format!("{at}.hostnames[{k}]"),
                    format!("duplicate hostname {text:?}"),
                );
            }
            Ok(p) => patterns.push((k, p)),
            Err(e) => errors.push(format!("{at}.hostnames[{k}]"), e),
        }
    }

    let backend = doc
        .service_url
        .as_deref()
        .and_then(|url| match backends.add(url) {
            Ok(i) => Some(i),
            Err(e) => {
                errors.push(format!("{at}.serviceUrl"), e);
                None
            }
        });

    let timeout = timeout(
        errors,
        &format!("{at}.timeout"),
        &doc.timeout,
        DEFAULT_API_TIMEOUT,
        false,
    );

    let mut operations = Vec::with_capacity(doc.operations.len());
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut shapes: HashMap<(Option<&str>, String), usize> = HashMap::new();
    for (j, op_doc) in doc.operations.iter().enumerate() {
        let op_at = format!("{at}.operations[{j}]");
        match ids.entry(&op_doc.id) {
            Entry::Occupied(first) => errors.push(
                format!("{op_at}.id"),
                format!(
                    "duplicate operation id {:?} (first at {at}.operations[{}])",
                    op_doc.id,
                    first.get()
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(j);
            }
        }
        let op = compile_operation(&op_at, op_doc, errors);
        if let Some(mut op) = op {
            op.index = operations.len();
            let key = (op_doc_method(op_doc), op.template.shape());
            if let Some(&first) = shapes.get(&key) {
                errors.push(
                    format!("{op_at}.urlTemplate"),
                    format!(
                        "same method and URL template as {at}.operations[{first}] ({:?})",
                        doc.operations[first].id
                    ),
                );
            } else {
                shapes.insert(key, j);
            }
            // A serviceUrl that failed to compile already has its error; a missing
            // one makes every unmocked operation unanswerable.
            if op_doc.mock.is_none()
                && op_doc.policies.is_none()
                && doc.policies.is_none()
                && doc.service_url.is_none()
            {
                errors.push(
                    format!("{op_at}.mock"),
                    "required: the API has no serviceUrl to forward to",
                );
            }
            operations.push(op);
        }
    }

    let key_names = doc
        .subscription_key_parameter_names
        .clone()
        .unwrap_or_default();
    let api = Api {
        index: 0,
        id: doc.id.clone(),
        name,
        path,
        hostnames: patterns.iter().map(|(_, p)| p.to_text()).collect(),
        backend,
        timeout,
        max_request_body: doc.max_request_body_size,
        subscription_required: doc.subscription_required.unwrap_or(false),
        key_header: key_names
            .header
            .unwrap_or_else(|| "Ocp-Apim-Subscription-Key".to_string()),
        key_query: key_names
            .query
            .unwrap_or_else(|| "subscription-key".to_string()),
        operations,
    };
    (api, patterns)
}

/// The method as the duplicate check sees it: `None` for "*".
fn op_doc_method(doc: &OperationDoc) -> Option<&str> {
    (doc.method != "*").then_some(doc.method.as_str())
}

/// Compiles one operation; `None` when its method or template is unusable (the
/// errors are recorded either way).
fn compile_operation(at: &str, doc: &OperationDoc, errors: &mut Errors) -> Option<Operation> {
    if let Err(e) = syntax::check_id(&doc.id) {
        errors.push(format!("{at}.id"), e);
    }
    let method = match method(&doc.method) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(format!("{at}.method"), e);
            None
        }
    };
    let template = match UrlTemplate::parse(&doc.url_template) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(format!("{at}.urlTemplate"), e);
            None
        }
    };
    let mock = doc
        .mock
        .as_ref()
        .and_then(|m| mock(&format!("{at}.mock"), m, errors));
    Some(Operation {
        index: 0,
        id: doc.id.clone(),
        method: method?,
        template: template?,
        mock,
    })
}

fn method(text: &str) -> Result<Option<String>, String> {
    if text == "*" {
        return Ok(None);
    }
    if !syntax::is_token(text) {
        return Err(format!(
            "invalid method {text:?}: must be an HTTP token (RFC 9110) or \"*\""
        ));
    }
    let upper = text.to_ascii_uppercase();
    if upper != text && STANDARD_METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "methods are case-sensitive: {text:?} would never match {upper:?} requests; write {upper:?}"
        ));
    }
    Ok(Some(text.to_owned()))
}

fn mock(at: &str, doc: &MockDoc, errors: &mut Errors) -> Option<MockResponse> {
    let mut ok = true;
    let status = doc.status_code.unwrap_or(200);
    if !(200..=599).contains(&status) {
        errors.push(
            format!("{at}.statusCode"),
            format!("{status} is not a final status (200..=599)"),
        );
        ok = false;
    }
    let body = doc.body.clone().unwrap_or_default().into_bytes();
    // RFC 9110 §15.3.5, §15.4.5: these responses never carry content.
    if matches!(status, 204 | 304) && !body.is_empty() {
        errors.push(
            format!("{at}.body"),
            format!("a {status} response cannot have a body"),
        );
        ok = false;
    }
    if let Some(ct) = &doc.content_type {
        // It becomes a header value: refuse anything that could break the head.
        let valid = !ct.trim().is_empty()
            && ct.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            && ct.contains('/');
        if !valid {
            errors.push(
                format!("{at}.contentType"),
                format!("invalid media type {ct:?} (expected type/subtype, printable ASCII)"),
            );
            ok = false;
        }
    }
    ok.then(|| MockResponse {
        status,
        content_type: doc.content_type.as_ref().map(|c| c.trim().to_owned()),
        body,
    })
}

/// `echo`, `/echo/`, `a/b` -> `/echo`, `/a/b`; `""` and `/` -> `""`.
fn api_path(text: &str) -> Result<String, String> {
    let trimmed = text.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for (c, what) in [
        ('{', "templates belong in operations"),
        ('?', "a query is not part of a path"),
        ('#', "a fragment is not part of a path"),
    ] {
        if trimmed.contains(c) {
            return Err(format!("{c:?} is not allowed in an API path ({what})"));
        }
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() {
            return Err(format!("empty segment in API path {text:?}"));
        }
        syntax::check_segment(segment)?;
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert_eq!(api_path(""), Ok(String::new()));
        assert_eq!(api_path("/"), Ok(String::new()));
        assert_eq!(api_path("echo"), Ok("/echo".into()));
        assert_eq!(api_path("/echo/"), Ok("/echo".into()));
        assert_eq!(api_path("a/b:c"), Ok("/a/b:c".into()));
        assert!(api_path("a//b").unwrap_err().contains("empty segment"));
        assert!(api_path("a/{b}").unwrap_err().contains("'{'"));
        assert!(api_path("a?b").unwrap_err().contains("'?'"));
        assert!(api_path("a#b").unwrap_err().contains("'#'"));
        assert!(api_path("a b").unwrap_err().contains("' '"));
    }

    #[test]
    fn methods() {
        assert_eq!(method("*"), Ok(None));
        assert_eq!(method("GET"), Ok(Some("GET".into())));
        assert_eq!(method("PROPFIND"), Ok(Some("PROPFIND".into())));
        assert_eq!(method("custom"), Ok(Some("custom".into())));
        assert!(method("get").unwrap_err().contains("case-sensitive"));
        assert!(method("").unwrap_err().contains("token"));
        assert!(method("GE T").unwrap_err().contains("token"));
    }
}
