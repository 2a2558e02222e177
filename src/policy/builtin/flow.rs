//! Policies that steer the pipeline or produce answers: set-variable, choose,
//! return-response, mock-response, set-status, set-body, trace, forward-request.

use super::attrs::{no_children, reads_body, Attrs};
use super::headers::{expression_failed, expression_failure, SetHeader};
use super::{compile_children, CompileCx, Policy};
use crate::policy::context::{Context, Response, Value};
use crate::policy::expr::{Expr, Template};
use crate::policy::pipeline::{self, Flow, PolicyFailure, Section};
use crate::policy::services::Services;
use crate::policy::xml::Element;
use std::time::Duration;

#[derive(Debug)]
pub struct ForwardRequest {
    pub timeout: Option<Duration>,
    pub follow_redirects: bool,
    pub buffer_request_body: bool,
}

impl ForwardRequest {
    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let timeout = match a.opt("timeout") {
            None => None,
            Some(t) => {
                Some(Duration::from_secs(t.trim().parse::<u64>().map_err(
                    |_| format!("timeout must be whole seconds, not {t:?}"),
                )?))
            }
        };
        let follow_redirects = a.bool_or("follow-redirects", false)?;
        let buffer_request_body = a.bool_or("buffer-request-body", false)?;
        a.finish()?;
        no_children(el)?;
        Ok(ForwardRequest {
            timeout,
            follow_redirects,
            buffer_request_body,
        })
    }

    pub fn is_default(&self) -> bool {
        self.timeout.is_none() && !self.follow_redirects && !self.buffer_request_body
    }

    /// Whether the request body must be held to be sent again (a followed 307 or 308),
    /// or the policy asks for it to be buffered.
    pub fn needs_request_body(&self) -> bool {
        self.follow_redirects || self.buffer_request_body
    }
}

#[derive(Debug)]
pub struct SetVariable {
    name: String,
    value: Template,
}

impl SetVariable {
    /// True when its value reads a body.
    pub fn needs_body(&self) -> bool {
        reads_body(&self.value)
    }

    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let name = a.req("name")?.to_string();
        let value = a.template("value")?.ok_or("attribute value is required")?;
        a.finish()?;
        no_children(el)?;
        Ok(SetVariable { name, value })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let value = match &self.value {
            Template::Literal(s) => Value::Str(s.as_str().into()),
            Template::Expr(e) => match e.eval(cx) {
                Ok(v) => v,
                Err(err) => return expression_failed("set-variable", err.message),
            },
        };
        cx.variables.insert(self.name.clone(), value);
        Flow::Continue
    }
}

#[derive(Debug)]
pub struct Choose {
    branches: Vec<(Expr, Vec<Policy>)>,
    otherwise: Vec<Policy>,
}

impl Choose {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        Attrs::new(el).finish()?;
        let mut branches = Vec::new();
        let mut otherwise = None;
        for child in el.elements() {
            match child.name.as_str() {
                "when" if otherwise.is_none() => {
                    let mut a = Attrs::new(child);
                    let cond = a.req("condition")?;
                    a.finish()?;
                    let expr = match Template::parse(cond).map_err(|e| format!("condition: {e}"))? {
                        Template::Expr(e) => e,
                        Template::Literal(_) => {
                            return Err("condition must be an expression @(...)".into())
                        }
                    };
                    if expr.ty() != crate::policy::expr::Type::Bool
                        && expr.ty() != crate::policy::expr::Type::Object
                    {
                        return Err(format!(
                            "<when> line {}: condition must be a boolean expression",
                            child.line
                        ));
                    }
                    branches.push((expr, compile_children(child, cx)?));
                }
                "otherwise" if otherwise.is_none() => {
                    Attrs::new(child).finish()?;
                    otherwise = Some(compile_children(child, cx)?);
                }
                other => return Err(format!("unexpected <{other}> in <choose>")),
            }
        }
        if branches.is_empty() {
            return Err("<choose> needs at least one <when>".into());
        }
        Ok(Choose {
            branches,
            otherwise: otherwise.unwrap_or_default(),
        })
    }

    pub fn apply(&self, section: Section, cx: &mut Context, svc: &mut Services) -> Flow {
        match self.select(cx) {
            Ok(policies) => pipeline::run(policies, section, cx, svc),
            Err(failed) => Flow::Error(*failed),
        }
    }

    /// The policies of the first branch whose condition holds (or of `otherwise`);
    /// `Err` is the failure of a condition that could not be evaluated.
    pub fn select(&self, cx: &Context) -> Result<&[Policy], Box<PolicyFailure>> {
        for (cond, policies) in &self.branches {
            match cond.eval_bool(cx) {
                Ok(true) => return Ok(policies),
                Ok(false) => {}
                Err(e) => return Err(Box::new(expression_failure("choose", e.message))),
            }
        }
        Ok(&self.otherwise)
    }

    /// Whether `f` holds for a policy of any branch.
    pub fn any(&self, f: impl Fn(&Policy) -> bool) -> bool {
        self.branches
            .iter()
            .flat_map(|(_, policies)| policies)
            .chain(&self.otherwise)
            .any(f)
    }

    /// Whether a condition reads a body or a branch holds a policy that needs one.
    pub fn needs_body(&self) -> bool {
        self.branches.iter().any(|(cond, policies)| {
            cond.reads_request_body()
                || cond.reads_response_body()
                || policies.iter().any(Policy::needs_body)
        }) || self.otherwise.iter().any(Policy::needs_body)
    }
}

/// `<set-status code reason/>` also used inside return-response.
#[derive(Debug)]
pub struct SetStatus {
    code: u16,
    reason: Option<String>,
}

impl SetStatus {
    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let code = a.num_or("code", 0u16)?;
        if !(100..=599).contains(&code) {
            return Err("code is required (100-599)".into());
        }
        let reason = a.opt("reason").map(str::to_string);
        a.finish()?;
        no_children(el)?;
        Ok(SetStatus { code, reason })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let resp = cx.response.get_or_insert_with(Default::default);
        resp.status = self.code;
        resp.reason = self.reason.clone().unwrap_or_default();
        Flow::Continue
    }
}

#[derive(Debug)]
pub struct SetBody {
    body: Template,
}

impl SetBody {
    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        if let Some(t) = a.opt("template") {
            return Err(format!(
                "template={t:?} is not supported (only plain text and expressions)"
            ));
        }
        a.finish()?;
        no_children(el)?;
        let body = Template::parse(&el.text()).map_err(|e| e.to_string())?;
        Ok(SetBody { body })
    }

    pub fn apply(&self, section: Section, cx: &mut Context) -> Flow {
        let text = match self.body.eval_string(cx) {
            Ok(t) => t,
            Err(e) => return expression_failed("set-body", e.message),
        };
        match section {
            Section::Inbound | Section::Backend => cx.request.body = Some(text.into_bytes()),
            Section::Outbound | Section::OnError => {
                cx.response.get_or_insert_with(Default::default).body = Some(text.into_bytes())
            }
        }
        Flow::Continue
    }
}

#[derive(Debug)]
pub struct ReturnResponse {
    status: Option<SetStatus>,
    headers: Vec<SetHeader>,
    body: Option<SetBody>,
}

impl ReturnResponse {
    /// True when one of its parts reads a body.
    pub fn needs_body(&self) -> bool {
        self.headers.iter().any(SetHeader::needs_body)
            || self.body.as_ref().is_some_and(|b| reads_body(&b.body))
    }

    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        if a.opt("response-variable-name").is_some() {
            return Err("response-variable-name is not supported yet".into());
        }
        a.finish()?;
        let mut out = ReturnResponse {
            status: None,
            headers: Vec::new(),
            body: None,
        };
        for child in el.elements() {
            match child.name.as_str() {
                "set-status" if out.status.is_none() => {
                    out.status = Some(SetStatus::compile(child, cx)?)
                }
                "set-header" => out.headers.push(SetHeader::compile(child, cx)?),
                "set-body" if out.body.is_none() => out.body = Some(SetBody::compile(child, cx)?),
                other => return Err(format!("unexpected <{other}> in <return-response>")),
            }
        }
        Ok(out)
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        cx.response = Some(Response {
            status: 200,
            ..Response::default()
        });
        if let Some(s) = &self.status {
            s.apply(cx);
        }
        for h in &self.headers {
            if let f @ Flow::Error(_) = h.apply(Section::Outbound, cx) {
                return f;
            }
        }
        if let Some(b) = &self.body {
            if let f @ Flow::Error(_) = b.apply(Section::Outbound, cx) {
                return f;
            }
        }
        Flow::Respond
    }
}

#[derive(Debug)]
pub struct MockResponse {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl MockResponse {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let status = a.num_or("status-code", 0u16)?;
        let content_type = a.opt("content-type").map(str::to_string);
        a.finish()?;
        no_children(el)?;
        // The operation's configured example answers when it fits the status asked for.
        let example = cx
            .mock
            .filter(|m| status == 0 || m.status == status)
            .filter(|m| content_type.is_none() || m.content_type == content_type);
        let status = if status == 0 {
            example.map_or(200, |m| m.status)
        } else {
            status
        };
        if !(100..=599).contains(&status) {
            return Err(format!("status-code {status} is out of range"));
        }
        Ok(MockResponse {
            status,
            content_type: content_type.or_else(|| example.and_then(|m| m.content_type.clone())),
            body: example.map(|m| m.body.clone()).unwrap_or_default(),
        })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let mut resp = Response {
            status: self.status,
            ..Response::default()
        };
        if let Some(ct) = &self.content_type {
            resp.headers.set("Content-Type", ct.clone());
        }
        resp.body = Some(self.body.clone());
        cx.response = Some(resp);
        Flow::Respond
    }
}

#[derive(Debug)]
pub struct Trace {
    source: String,
    severity: tracing::Level,
    message: Template,
}

impl Trace {
    /// True when its message reads a body.
    pub fn needs_body(&self) -> bool {
        reads_body(&self.message)
    }

    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let source = a.req("source")?.to_string();
        let severity = match a.opt("severity").unwrap_or("verbose") {
            "verbose" => tracing::Level::DEBUG,
            "information" => tracing::Level::INFO,
            "error" => tracing::Level::ERROR,
            other => {
                return Err(format!(
                    "severity must be verbose, information or error, not {other:?}"
                ))
            }
        };
        a.finish()?;
        let mut message = None;
        for child in el.elements() {
            match child.name.as_str() {
                "message" if message.is_none() => {
                    message = Some(Template::parse(&child.text()).map_err(|e| e.to_string())?)
                }
                "metadata" => {}
                other => return Err(format!("unexpected <{other}> in <trace>")),
            }
        }
        Ok(Trace {
            source,
            severity,
            message: message.ok_or("<trace> needs a <message>")?,
        })
    }

    pub fn apply(&self, cx: &mut Context) -> Flow {
        let message = match self.message.eval_string(cx) {
            Ok(m) => m,
            Err(e) => return expression_failed("trace", e.message),
        };
        let source = &self.source;
        match self.severity {
            tracing::Level::ERROR => tracing::error!(target: "portico::trace", source, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "portico::trace", source, "{message}"),
            _ => tracing::debug!(target: "portico::trace", source, "{message}"),
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::Scope;
    use crate::policy::xml;

    fn forward(doc: &str) -> Result<ForwardRequest, String> {
        let cx = CompileCx {
            section: Section::Backend,
            scope: Scope::Api,
            scope_id: "api",
            index: 0,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        };
        ForwardRequest::compile(&xml::parse(doc).unwrap(), &cx)
    }

    #[test]
    fn forward_request_attributes() {
        let plain = forward("<forward-request/>").unwrap();
        assert!(plain.is_default());
        assert!(!plain.needs_request_body());
        let f = forward(r#"<forward-request timeout="20" follow-redirects="true"/>"#).unwrap();
        assert_eq!(f.timeout, Some(Duration::from_secs(20)));
        assert!(f.follow_redirects);
        assert!(!f.is_default());
        assert!(f.needs_request_body(), "a 307 sends the body again");
        assert!(forward(r#"<forward-request buffer-request-body="true"/>"#)
            .unwrap()
            .needs_request_body());
        assert!(forward(r#"<forward-request follow-redirects="yes"/>"#)
            .unwrap_err()
            .contains("true or false"));
        assert!(forward(r#"<forward-request timeout="1.5"/>"#)
            .unwrap_err()
            .contains("whole seconds"));
        assert_eq!(
            forward(r#"<forward-request fail-on-error-status-code="true"/>"#).unwrap_err(),
            "unknown attribute fail-on-error-status-code"
        );
    }
}
