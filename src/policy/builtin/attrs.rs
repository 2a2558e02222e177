//! Reading a policy element's attributes strictly: each one read is marked, and
//! `finish` refuses any attribute the policy does not know, so a typo is a compile
//! error instead of a silently ignored setting.

use crate::policy::expr::Template;
use crate::policy::xml::Element;

/// A policy element's attributes being read.
pub struct Attrs<'a> {
    el: &'a Element,
    used: Vec<&'a str>,
}

impl<'a> Attrs<'a> {
    pub fn new(el: &'a Element) -> Self {
        Attrs {
            el,
            used: Vec::new(),
        }
    }

    pub fn opt(&mut self, name: &'a str) -> Option<&'a str> {
        self.used.push(name);
        self.el.attr(name)
    }

    pub fn req(&mut self, name: &'a str) -> Result<&'a str, String> {
        self.opt(name)
            .ok_or_else(|| format!("attribute {name} is required"))
    }

    pub fn bool_or(&mut self, name: &'a str, default: bool) -> Result<bool, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(format!("{name} must be true or false, not {v:?}")),
        }
    }

    pub fn num_or<T: std::str::FromStr>(&mut self, name: &'a str, default: T) -> Result<T, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{name} must be a number, not {v:?}")),
        }
    }

    pub fn template(&mut self, name: &'a str) -> Result<Option<Template>, String> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => Template::parse(v)
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
        }
    }

    /// Refuses attributes that were never read.
    pub fn finish(self) -> Result<(), String> {
        for (name, _) in &self.el.attrs {
            if !self.used.iter().any(|u| u == name) {
                return Err(format!("unknown attribute {name}"));
            }
        }
        Ok(())
    }
}

/// The `<value>` children of an element, as templates.
pub fn values(el: &Element) -> Result<Vec<Template>, String> {
    let mut out = Vec::new();
    for child in el.elements() {
        if child.name != "value" {
            return Err(format!("unexpected <{}> (only <value> here)", child.name));
        }
        out.push(Template::parse(&child.text()).map_err(|e| format!("<value>: {e}"))?);
    }
    Ok(out)
}

/// Refuses child elements where a policy takes none.
pub fn no_children(el: &Element) -> Result<(), String> {
    match el.elements().next() {
        Some(child) => Err(format!("unexpected <{}>", child.name)),
        None => Ok(()),
    }
}

/// RFC 9110 token characters (header names, methods).
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// True when a template's expression reads a message body, which must then be
/// buffered before the policy runs.
pub fn reads_body(t: &Template) -> bool {
    match t {
        Template::Literal(_) => false,
        Template::Expr(e) => e.reads_request_body() || e.reads_response_body(),
    }
}
