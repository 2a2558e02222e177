//! Operation URL templates (`/items/{id}`, `/files/{*path}`, `/*`): parsed once at
//! compile time into segments, matched against request paths without allocating
//! except for the captured parameters.
//!
//! Matching rules (see docs/configuration.md):
//! * the path is split on '/'; a literal segment matches byte for byte (case-sensitive,
//!   no percent-decoding), a `{name}` matches one non-empty segment;
//! * a final `*` or `{*name}` matches the rest of the path, which may be empty;
//! * one trailing '/' of the request path is ignored when the path does not match as
//!   is: `/items/` matches `/items` but not `/items/{id}`;
//! * `""` is matched as `/`.

use std::cmp::Ordering;
use std::fmt;

use crate::config::syntax;

/// A parsed operation URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// One '/'-separated piece of a [`UrlTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `{name}`: matches one non-empty segment.
    Param(String),
    /// `*` (no name) or `{*name}`: the rest of the path, possibly empty. Always last.
    Wildcard(Option<String>),
}

impl UrlTemplate {
    /// Parses a template. The error says what is wrong, without the item path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty (use \"/\" for the API root)".to_owned());
        }
        if !text.starts_with('/') {
            return Err(format!("must start with '/': {text:?}"));
        }
        if text.contains('?') {
            return Err("query parameters in URL templates are not supported yet".to_owned());
        }
        if text.contains('#') {
            return Err("'#' (a fragment) is not allowed in a URL template".to_owned());
        }
        let body = &text[1..];
        if body == "/" {
            return Err("empty path segment (\"//\")".to_owned());
        }
        // One trailing slash is not significant, exactly as on the request side.
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut segments = Vec::new();
        if !body.is_empty() {
            let count = body.split('/').count();
            for (i, raw) in body.split('/').enumerate() {
                let segment = parse_segment(raw, i + 1 == count)?;
                if let Segment::Param(name) | Segment::Wildcard(Some(name)) = &segment {
                    let seen = segments.iter().any(|s| {
                        matches!(s, Segment::Param(n) | Segment::Wildcard(Some(n)) if n == name)
                    });
                    if seen {
                        return Err(format!("duplicate parameter name {name:?}"));
                    }
                }
                segments.push(segment);
            }
        }
        Ok(UrlTemplate {
            text: text.to_owned(),
            segments,
        })
    }

    /// The template as written in the document.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed segments; `/` has none.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Names of the parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Wildcard(Some(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Matches `path` (an API suffix: `""` or starting with '/') and returns the
    /// captured `(name, raw value)` pairs, or `None`.
    pub fn matches<'a>(&'a self, path: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
        let mut params = Vec::new();
        self.match_into(path, &mut params).then_some(params)
    }

    /// Like [`matches`](Self::matches) but appends to `params`, which is left as it
    /// was when there is no match, so that one vector can serve many attempts.
    pub fn match_into<'a>(&'a self, path: &'a str, params: &mut Vec<(&'a str, &'a str)>) -> bool {
        let start = params.len();
        if self.match_exact(path, params) {
            return true;
        }
        params.truncate(start);
        // "//" is not "/" plus a trailing slash: it has an empty segment.
        if path.len() > 2 && path.ends_with('/') {
            if self.match_exact(&path[..path.len() - 1], params) {
                return true;
            }
            params.truncate(start);
        }
        false
    }

    fn match_exact<'a>(&'a self, path: &'a str, params: &mut Vec<(&'a str, &'a str)>) -> bool {
        // `rest` is what is left after the consumed segments; None once none are left.
        let mut rest: Option<&'a str> = match path {
            "" | "/" => None,
            p => match p.strip_prefix('/') {
                Some(r) => Some(r),
                None => return false,
            },
        };
        for segment in &self.segments {
            if let Segment::Wildcard(name) = segment {
                if let Some(name) = name {
                    params.push((name.as_str(), rest.unwrap_or("")));
                }
                return true;
            }
            let Some(r) = rest else { return false };
            let (value, next) = match r.find('/') {
                Some(i) => (&r[..i], Some(&r[i + 1..])),
                None => (r, None),
            };
            rest = next;
            match segment {
                Segment::Literal(text) => {
                    if value != text {
                        return false;
                    }
                }
                Segment::Param(name) => {
                    if value.is_empty() {
                        return false;
                    }
                    params.push((name.as_str(), value));
                }
                Segment::Wildcard(_) => {}
            }
        }
        rest.is_none()
    }

    /// Precedence between two templates that can match the same path: at the first
    /// segment where their kinds differ, literal < parameter < wildcard; a template
    /// that ends where the other continues with a wildcard comes first. `Less` wins.
    pub fn precedence(&self, other: &Self) -> Ordering {
        let a = self.segments.iter().map(Segment::rank);
        let b = other.segments.iter().map(Segment::rank);
        a.cmp(b)
    }

    /// The template with parameter names erased: two templates with the same shape
    /// match exactly the same paths.
    pub(crate) fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(_) => out.push_str("{}"),
                Segment::Wildcard(_) => out.push('*'),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param(_) => 1,
            Segment::Wildcard(_) => 2,
        }
    }
}

fn parse_segment(raw: &str, last: bool) -> Result<Segment, String> {
    if raw.is_empty() {
        return Err("empty path segment (\"//\")".to_owned());
    }
    check_braces(raw)?;
    if raw == "*" {
        return if last {
            Ok(Segment::Wildcard(None))
        } else {
            Err("'*' is only allowed as the last segment".to_owned())
        };
    }
    if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        if inner.contains(['{', '}']) {
            return Err(format!("a parameter must be a whole segment: {raw:?}"));
        }
        if let Some(name) = inner.strip_prefix('*') {
            check_param_name(name)?;
            return if last {
                Ok(Segment::Wildcard(Some(name.to_owned())))
            } else {
                Err(format!("{raw:?} is only allowed as the last segment"))
            };
        }
        check_param_name(inner)?;
        return Ok(Segment::Param(inner.to_owned()));
    }
    if raw.contains(['{', '}']) {
        return Err(format!("a parameter must be a whole segment: {raw:?}"));
    }
    if raw.contains('*') {
        return Err(format!("'*' must be a whole segment: {raw:?}"));
    }
    syntax::check_segment(raw)?;
    Ok(Segment::Literal(raw.to_owned()))
}

/// Rejects nested, unopened and unclosed braces with the message users expect.
fn check_braces(raw: &str) -> Result<(), String> {
    let mut open = false;
    for c in raw.chars() {
        match c {
            '{' if open => return Err("unbalanced '{'".to_owned()),
            '{' => open = true,
            '}' if !open => return Err("unbalanced '}'".to_owned()),
            '}' => open = false,
            _ => {}
        }
    }
    if open {
        return Err("unbalanced '{'".to_owned());
    }
    Ok(())
}

fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty parameter name".to_owned());
    }
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "invalid parameter name {name:?} (allowed: A-Z a-z 0-9 _ - .)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> UrlTemplate {
        UrlTemplate::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        UrlTemplate::parse(s).expect_err(s)
    }

    #[test]
    fn parses_segments() {
        assert_eq!(t("/").segments(), &[]);
        assert_eq!(
            t("/items/{id}").segments(),
            &[
                Segment::Literal("items".into()),
                Segment::Param("id".into())
            ]
        );
        assert_eq!(t("/*").segments(), &[Segment::Wildcard(None)]);
        assert_eq!(
            t("/files/{*path}").segments(),
            &[
                Segment::Literal("files".into()),
                Segment::Wildcard(Some("path".into()))
            ]
        );
        assert_eq!(t("/items/").segments(), t("/items").segments());
        assert_eq!(t("/items/").as_str(), "/items/");
        assert_eq!(
            t("/a/{x}/{*y}").param_names().collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(err("/items/{id"), "unbalanced '{'");
        assert_eq!(err("/items/id}"), "unbalanced '}'");
        assert_eq!(err("/items/{{id}}"), "unbalanced '{'");
        assert_eq!(
            err("/{a}{b}"),
            "a parameter must be a whole segment: \"{a}{b}\""
        );
        assert_eq!(
            err("/x{id}"),
            "a parameter must be a whole segment: \"x{id}\""
        );
        assert_eq!(err("/{}"), "empty parameter name");
        assert_eq!(err("/{*}"), "empty parameter name");
        assert!(err("/{a b}").starts_with("invalid parameter name"));
        assert_eq!(
            err("/items?x={x}"),
            "query parameters in URL templates are not supported yet"
        );
        assert!(err("/items#x").contains("fragment"));
        assert_eq!(err("/*/x"), "'*' is only allowed as the last segment");
        assert_eq!(
            err("/{*rest}/x"),
            "\"{*rest}\" is only allowed as the last segment"
        );
        assert_eq!(err("/a*"), "'*' must be a whole segment: \"a*\"");
        assert_eq!(err("/a//b"), "empty path segment (\"//\")");
        assert_eq!(err("//"), "empty path segment (\"//\")");
        assert_eq!(err("/a//"), "empty path segment (\"//\")");
        assert_eq!(err("items"), "must start with '/': \"items\"");
        assert!(err("").starts_with("must not be empty"));
        assert_eq!(err("/{id}/{id}"), "duplicate parameter name \"id\"");
        assert!(err("/a b").starts_with("invalid character ' '"));
        assert!(err("/%zz").starts_with("invalid percent-escape"));
    }

    #[test]
    fn matching() {
        let items = t("/items/{id}");
        assert_eq!(items.matches("/items/42"), Some(vec![("id", "42")]));
        assert_eq!(items.matches("/items/42/"), Some(vec![("id", "42")]));
        assert_eq!(items.matches("/items/"), None);
        assert_eq!(items.matches("/items"), None);
        assert_eq!(items.matches("/items/42/x"), None);
        assert_eq!(items.matches("/Items/42"), None);
        assert_eq!(items.matches("/items/a%2Fb"), Some(vec![("id", "a%2Fb")]));

        let list = t("/items");
        assert_eq!(list.matches("/items"), Some(vec![]));
        assert_eq!(list.matches("/items/"), Some(vec![]));
        assert_eq!(list.matches("/items//"), None);
        assert_eq!(list.matches("/itemsx"), None);

        let root = t("/");
        assert_eq!(root.matches(""), Some(vec![]));
        assert_eq!(root.matches("/"), Some(vec![]));
        assert_eq!(root.matches("/x"), None);
        assert_eq!(root.matches("//"), None);

        let any = t("/*");
        for p in ["", "/", "/x", "/x/y/", "//"] {
            assert_eq!(any.matches(p), Some(vec![]), "{p}");
        }
        let files = t("/files/{*path}");
        assert_eq!(files.matches("/files"), Some(vec![("path", "")]));
        assert_eq!(files.matches("/files/"), Some(vec![("path", "")]));
        assert_eq!(
            files.matches("/files/a/b.txt"),
            Some(vec![("path", "a/b.txt")])
        );
        assert_eq!(files.matches("/filesx"), None);
        assert_eq!(items.matches("items/42"), None);
    }

    #[test]
    fn match_into_leaves_params_alone_on_failure() {
        let tpl = t("/a/{x}/b");
        let mut params = vec![("keep", "me")];
        assert!(!tpl.match_into("/a/1/c", &mut params));
        assert_eq!(params, [("keep", "me")]);
        assert!(tpl.match_into("/a/1/b", &mut params));
        assert_eq!(params, [("keep", "me"), ("x", "1")]);
    }

    #[test]
    fn precedence_and_shape() {
        use Ordering::*;
        assert_eq!(t("/items/new").precedence(&t("/items/{id}")), Less);
        assert_eq!(t("/items/{id}").precedence(&t("/items/*")), Less);
        assert_eq!(t("/items").precedence(&t("/items/*")), Less);
        assert_eq!(t("/{x}/y").precedence(&t("/*")), Less);
        assert_eq!(t("/a/{x}").precedence(&t("/{y}/b")), Less);
        assert_eq!(t("/{a}").precedence(&t("/{b}")), Equal);
        assert_eq!(t("/items/{id}").shape(), t("/items/{key}/").shape());
        assert_eq!(t("/*").shape(), t("/{*rest}").shape());
        assert_eq!(t("/").shape(), "/");
        assert_ne!(t("/a").shape(), t("/{a}").shape());
    }
}
