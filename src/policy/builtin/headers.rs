//! Policies that rewrite the request line and header fields: set-header,
//! check-header, set-query-parameter, rewrite-uri, set-method.

use super::attrs::{no_children, reads_body, values, Attrs};
use super::CompileCx;
use crate::policy::context::{Context, Headers};
use crate::policy::expr::Template;
use crate::policy::pipeline::{Flow, PolicyFailure, Section};
use crate::policy::xml::Element;

/// A failed expression: 500 and on-error, as APIM does.
pub fn expression_failed(policy: &str, e: impl std::fmt::Display) -> Flow {
    Flow::Error(expression_failure(policy, e))
}

/// The failure of an expression of `policy` that threw `e`.
pub fn expression_failure(policy: &str, e: impl std::fmt::Display) -> PolicyFailure {
    PolicyFailure::new(
        500,
        policy,
        "ExpressionValueEvaluationFailure",
        format!("Expression evaluation failed. {e}"),
    )
}

/// APIM's `exists-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistsAction {
    Override,
    Skip,
    Append,
    Delete,
}

fn exists_action(a: &mut Attrs<'_>) -> Result<ExistsAction, String> {
    match a.opt("exists-action").unwrap_or("override") {
        "override" => Ok(ExistsAction::Override),
        "skip" => Ok(ExistsAction::Skip),
        "append" => Ok(ExistsAction::Append),
        "delete" => Ok(ExistsAction::Delete),
        other => Err(format!(
            "exists-action must be override, skip, append or delete, not {other:?}"
        )),
    }
}

fn check_field_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(super::attrs::is_token_byte) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok(())
}

/// Evaluates value templates; values with CR, LF or NUL are refused so an expression
/// cannot split a header.
fn eval_values(policy: &str, vals: &[Template], cx: &Context) -> Result<Vec<String>, Box<Flow>> {
    let mut out = Vec::with_capacity(vals.len());
    for v in vals {
        let s = v
            .eval_string(cx)
            .map_err(|e| Box::new(expression_failed(policy, e.message)))?;
        if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Box::new(expression_failed(
                policy,
                "a header value may not contain CR, LF or NUL",
            )));
        }
        out.push(s);
    }
    Ok(out)
}

fn apply_action(fields: &mut Headers, name: &str, action: ExistsAction, vals: Vec<String>) {
    match action {
        ExistsAction::Delete => fields.remove(name),
        ExistsAction::Skip if fields.contains(name) => {}
        ExistsAction::Override | ExistsAction::Skip => {
            fields.remove(name);
            for v in vals {
                fields.append(name, v);
            }
        }
        ExistsAction::Append => {
            for v in vals {
                fields.append(name, v);
            }
        }
    }
}

#[derive(Debug)]
pub struct SetHeader {
    name: String,
    action: ExistsAction,
    values: Vec<Template>,
}

impl SetHeader {
    /// True when an expression of it reads a body.
    pub fn needs_body(&self) -> bool {
        self.values.iter().any(reads_body)
    }

    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let name = a.req("name")?.to_string();
        check_field_name(&name)?;
        let action = exists_action(&mut a)?;
        a.finish()?;
        let values = values(el)?;
        if values.is_empty() && action != ExistsAction::Delete {
            return Err("needs at least one <value> unless exists-action is delete".into());
        }
        Ok(SetHeader {
            name,
            action,
            values,
        })
    }

    pub fn apply(&self, section: Section, cx: &mut Context) -> Flow {
        let vals = match eval_values("set-header", &self.values, cx) {
            Ok(v) => v,
            Err(flow) => return *flow,
        };
        let fields = match section {
            Section::Inbound | Section::Backend => &mut cx.request.headers,
            Section::Outbound | Section::OnError => {
                &mut cx.response.get_or_insert_with(Default::default).headers
            }
        };
        apply_action(fields, &self.name, self.action, vals);
        Flow::Continue
    }
}

#[derive(Debug)]
pub struct CheckHeader {
    name: String,
    status: u16,
    message: String,
    ignore_case: bool,
    values: Vec<Template>,
}

impl CheckHeader {
    /// True when an expression of it reads a body.
    pub fn needs_body(&self) -> bool {
        self.values.iter().any(reads_body)
    }

    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let name = a.req("name")?.to_string();
        check_field_name(&name)?;
        let status = a.num_or("failed-check-httpcode", 0u16)?;
        if !(100..=599).contains(&status) {
            return Err("failed-check-httpcode is required (100-599)".into());
        }
        let message = a.req("failed-check-error-message")?.to_string();
        let ignore_case = a.bool_or("ignore-case", false)?;
        a.finish()?;
        Ok(CheckHeader {
            name,
            status,
            message,
            ignore_case,
            values: values(el)?,
        })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let fail = || {
            Flow::Error(PolicyFailure::new(
                self.status,
                "check-header",
                "HeaderNotFound",
                self.message.clone(),
            ))
        };
        let Some(got) = cx.request.headers.get(&self.name) else {
            return fail();
        };
        if self.values.is_empty() {
            return Flow::Continue;
        }
        let allowed = match eval_values("check-header", &self.values, cx) {
            Ok(v) => v,
            Err(flow) => return *flow,
        };
        let ok = allowed.iter().any(|v| {
            if self.ignore_case {
                v.eq_ignore_ascii_case(&got)
            } else {
                *v == got
            }
        });
        if ok {
            Flow::Continue
        } else {
            fail()
        }
    }
}

#[derive(Debug)]
pub struct SetQueryParameter {
    name: String,
    action: ExistsAction,
    values: Vec<Template>,
}

impl SetQueryParameter {
    /// True when an expression of it reads a body.
    pub fn needs_body(&self) -> bool {
        self.values.iter().any(reads_body)
    }

    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let name = a.req("name")?.to_string();
        if name.is_empty() || name.contains(['&', '=', '#', ' ']) {
            return Err(format!("{name:?} is not a valid query parameter name"));
        }
        let action = exists_action(&mut a)?;
        a.finish()?;
        let values = values(el)?;
        if values.is_empty() && action != ExistsAction::Delete {
            return Err("needs at least one <value> unless exists-action is delete".into());
        }
        Ok(SetQueryParameter {
            name,
            action,
            values,
        })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let vals = match eval_values("set-query-parameter", &self.values, cx) {
            Ok(v) => v,
            Err(flow) => return *flow,
        };
        let query = &mut cx.request.query;
        let exists = query.iter().any(|(n, _)| *n == self.name);
        match self.action {
            ExistsAction::Delete => query.retain(|(n, _)| *n != self.name),
            ExistsAction::Skip if exists => {}
            ExistsAction::Override | ExistsAction::Skip => {
                query.retain(|(n, _)| *n != self.name);
                query.extend(
                    vals.into_iter()
                        .map(|v| (self.name.clone(), encode_query(&v))),
                );
            }
            ExistsAction::Append => {
                query.extend(
                    vals.into_iter()
                        .map(|v| (self.name.clone(), encode_query(&v))),
                );
            }
        }
        Flow::Continue
    }
}

/// Percent-encodes what may not stand in a query value.
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug)]
pub struct RewriteUri {
    template: Template,
    copy_unmatched: bool,
}

impl RewriteUri {
    /// True when its template reads a body.
    pub fn needs_body(&self) -> bool {
        reads_body(&self.template)
    }

    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let template = a
            .template("template")?
            .ok_or("attribute template is required")?;
        let copy_unmatched = a.bool_or("copy-unmatched-params", true)?;
        a.finish()?;
        no_children(el)?;
        if let Template::Literal(t) = &template {
            if !t.starts_with('/') {
                return Err(format!("template must start with '/': {t:?}"));
            }
        }
        Ok(RewriteUri {
            template,
            copy_unmatched,
        })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let text = match self.template.eval_string(cx) {
            Ok(t) => t,
            Err(e) => return expression_failed("rewrite-uri", e.message),
        };
        // {name} takes the matched template parameter, or a query parameter of that name
        // (which is then used up and not copied).
        let mut used_query: Vec<String> = Vec::new();
        let mut expanded = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            expanded.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                expanded.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let name = &rest[open + 1..open + close];
            let value = cx
                .request
                .matched_parameters
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    cx.request
                        .query
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| {
                            used_query.push(name.to_string());
                            v.clone()
                        })
                })
                .unwrap_or_default();
            expanded.push_str(&value);
            rest = &rest[open + close + 1..];
        }
        expanded.push_str(rest);
        if expanded
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'#')
        {
            return expression_failed("rewrite-uri", "the rewritten URL has invalid characters");
        }
        let (path, query) = match expanded.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (expanded, None),
        };
        let mut new_query: Vec<(String, String)> = query
            .iter()
            .flat_map(|q| q.split('&'))
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect();
        if self.copy_unmatched {
            for (k, v) in &cx.request.query {
                if !used_query.contains(k) && !new_query.iter().any(|(n, _)| n == k) {
                    new_query.push((k.clone(), v.clone()));
                }
            }
        }
        cx.forward.path = path;
        cx.request.query = new_query;
        Flow::Continue
    }
}

#[derive(Debug)]
pub struct SetMethod {
    method: String,
}

impl SetMethod {
    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        Attrs::new(el).finish()?;
        let method = el.text();
        if method.is_empty() || !method.bytes().all(super::attrs::is_token_byte) {
            return Err(format!("{method:?} is not a method"));
        }
        Ok(SetMethod { method })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        cx.request.method.clone_from(&self.method);
        Flow::Continue
    }
}
