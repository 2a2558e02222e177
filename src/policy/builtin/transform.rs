//! Policies that rewrite a buffered body: `find-and-replace`, `json-to-xml` and
//! `xml-to-json`. In inbound and backend they work on the request body, in outbound and
//! on-error on the response body; the proxy buffers the body of a section that holds
//! one of them ([`super::Policy::needs_body`]). A body that is absent or that does not
//! parse is left as it is: a conversion never fails the request.
//!
//! JSON to XML (APIM's shape, as its gateway produces it):
//! * the root element is `Document`, holding the top-level properties; a top-level
//!   object with a single property whose value is an object uses that property as the
//!   root instead (so `{"soap:Envelope": {...}}` gives `<soap:Envelope>`); a top-level
//!   array gives one `<item>` per element inside `<Document>`;
//! * an object property is an element, an array gives one element per item with the
//!   property's name (an empty array one empty element), `null` gives
//!   `<name xsi:nil="true" .../>`, booleans are `True` / `False`, numbers as written;
//! * properties named `@name` with a primitive value, properties whose name starts with
//!   `namespace-prefix`, and the properties of the `attribute-block-name` object become
//!   attributes; `#text` becomes the element's text;
//! * `namespace-separator` (when given) is turned into `:` in names; characters not
//!   allowed in XML names are written as `_xHHHH_` (as .NET's `XmlConvert` does).
//!   Property order is kept. `parse-date` has no effect: date strings are copied.
//!
//! XML to JSON: the document becomes `{"root": value}`. An element with neither
//! attributes nor child elements is its text (`null` when empty); otherwise an object
//! with the attributes, the child elements by name (several of one name, or any with
//! `always-array-child-elements`, as an array) and non-blank text under `#text`.
//! `direct` keeps names, writing `prefix:name` as `prefix$name`, and attributes as
//! `@name`; `javascript-friendly` drops namespace prefixes and `xmlns` declarations and
//! writes attributes without `@`. Comments, processing instructions and the XML
//! declaration are dropped; a DOCTYPE, an unknown entity or nesting deeper than 128 leave
//! the body unconverted.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::access::only_in;
use super::attrs::{no_children, Attrs};
use super::headers::expression_failed;
use super::CompileCx;
use crate::policy::context::{Context, Headers};
use crate::policy::expr::Template;
use crate::policy::pipeline::{Flow, Section};
use crate::policy::xml::Element;

/// The body a section works on and its header fields.
fn body_and_headers(section: Section, cx: &mut Context) -> Option<(&mut Vec<u8>, &mut Headers)> {
    match section {
        Section::Inbound | Section::Backend => {
            let r = &mut cx.request;
            r.body.as_mut().map(|b| (b, &mut r.headers))
        }
        Section::Outbound | Section::OnError => {
            let r = cx.response.as_mut()?;
            r.body.as_mut().map(|b| (b, &mut r.headers))
        }
    }
}

/// Refuses `@(...)` where Portico reads only literal values.
fn literal<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<&'a str>, String> {
    match a.opt(name) {
        Some(v) if v.trim_start().starts_with('@') => {
            Err(format!("{name}: policy expressions are not supported here"))
        }
        other => Ok(other),
    }
}

fn literal_bool<'a>(a: &mut Attrs<'a>, name: &'a str, default: bool) -> Result<bool, String> {
    literal(a, name)?;
    a.bool_or(name, default)
}

// ---------------------------------------------------------------------------------
// find-and-replace

#[derive(Debug)]
pub struct FindAndReplace {
    from: Template,
    to: Template,
}

impl FindAndReplace {
    pub fn compile(el: &Element, _cx: &CompileCx<'_>) -> Result<Self, String> {
        let mut a = Attrs::new(el);
        let from = a.template("from")?.ok_or("attribute from is required")?;
        let to = a.template("to")?.ok_or("attribute to is required")?;
        a.finish()?;
        no_children(el)?;
        if matches!(&from, Template::Literal(s) if s.is_empty()) {
            return Err("from must not be empty".into());
        }
        Ok(FindAndReplace { from, to })
    }

    pub fn apply(&self, section: Section, cx: &mut Context) -> Flow {
        let from = match self.from.eval_string(cx) {
            Ok(s) => s,
            Err(e) => return expression_failed("find-and-replace", e.message),
        };
        let to = match self.to.eval_string(cx) {
            Ok(s) => s,
            Err(e) => return expression_failed("find-and-replace", e.message),
        };
        if from.is_empty() {
            return Flow::Continue;
        }
        if let Some((body, _)) = body_and_headers(section, cx) {
            if let Some(replaced) = replace_all(body, from.as_bytes(), to.as_bytes()) {
                *body = replaced;
            }
        }
        Flow::Continue
    }
}

/// Every non-overlapping occurrence of `from` replaced, left to right; `None` when
/// there is none.
fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let first = find(hay, from, 0)?;
    let mut out = Vec::with_capacity(hay.len());
    let mut at = 0;
    let mut next = Some(first);
    while let Some(i) = next {
        out.extend_from_slice(&hay[at..i]);
        out.extend_from_slice(to);
        at = i + from.len();
        next = find(hay, from, at);
    }
    out.extend_from_slice(&hay[at..]);
    Some(out)
}

fn find(hay: &[u8], needle: &[u8], start: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = start;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        i += off;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------------
// json-to-xml

#[derive(Debug)]
pub struct JsonToXml {
    only_json: bool,
    consider_accept: bool,
    attribute_block: Option<String>,
    namespace_prefix: Option<String>,
    namespace_separator: Option<char>,
}

impl JsonToXml {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound, Section::Outbound, Section::OnError])?;
        let mut a = Attrs::new(el);
        let only_json = match literal(&mut a, "apply")? {
            Some("always") => false,
            Some("content-type-json") | Some("content-type-json-only") => true,
            Some(other) => {
                return Err(format!(
                    "apply must be always or content-type-json, not {other:?}"
                ))
            }
            None => return Err("attribute apply is required".into()),
        };
        let consider_accept = literal_bool(&mut a, "consider-accept-header", true)?;
        // Dates are copied either way (see the module comment).
        a.bool_or("parse-date", true)?;
        let namespace_separator = match literal(&mut a, "namespace-separator")? {
            None => None,
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => {
                        return Err(format!(
                            "namespace-separator must be one character, not {s:?}"
                        ))
                    }
                }
            }
        };
        let namespace_prefix = literal(&mut a, "namespace-prefix")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let attribute_block = literal(&mut a, "attribute-block-name")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        a.finish()?;
        no_children(el)?;
        Ok(JsonToXml {
            only_json,
            consider_accept,
            attribute_block,
            namespace_prefix,
            namespace_separator,
        })
    }

    pub fn apply(&self, section: Section, cx: &mut Context) -> Flow {
        if self.consider_accept && !accepts(&cx.request.headers, "xml") {
            return Flow::Continue;
        }
        let Some((body, headers)) = body_and_headers(section, cx) else {
            return Flow::Continue;
        };
        if self.only_json && !content_type_is(headers, "json") {
            return Flow::Continue;
        }
        let Ok(json) = serde_json::from_slice::<Json>(body) else {
            return Flow::Continue;
        };
        *body = self.to_xml(&json).into_bytes();
        headers.set("Content-Type", "application/xml".into());
        Flow::Continue
    }

    fn to_xml(&self, json: &Json) -> String {
        let mut out = String::new();
        match json {
            Json::Obj(props) if props.len() == 1 && matches!(props[0].1, Json::Obj(_)) => {
                self.element(&props[0].0, &props[0].1, &mut out);
            }
            Json::Obj(_) => self.element("Document", json, &mut out),
            Json::Arr(items) => {
                out.push_str("<Document>");
                for item in items {
                    self.element("item", item, &mut out);
                }
                out.push_str("</Document>");
            }
            primitive => self.element("Document", primitive, &mut out),
        }
        out
    }

    fn name(&self, raw: &str) -> String {
        match self.namespace_separator {
            Some(sep) if sep != ':' => xml_name(&raw.replace(sep, ":")),
            _ => xml_name(raw),
        }
    }

    /// Writes `value` as element(s) named `name`.
    fn element(&self, name: &str, value: &Json, out: &mut String) {
        let tag = self.name(name);
        match value {
            Json::Arr(items) if items.is_empty() => {
                let _ = write!(out, "<{tag} />");
            }
            Json::Arr(items) => {
                for item in items {
                    match item {
                        Json::Arr(_) => {
                            let _ = write!(out, "<{tag}>");
                            self.element(name, item, out);
                            let _ = write!(out, "</{tag}>");
                        }
                        _ => self.element(name, item, out),
                    }
                }
            }
            Json::Null => {
                let _ = write!(
                    out,
                    "<{tag} xsi:nil=\"true\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" />"
                );
            }
            Json::Obj(props) => {
                let _ = write!(out, "<{tag}");
                let mut content = String::new();
                for (key, v) in props {
                    if self.attribute_block.as_deref() == Some(key.as_str()) {
                        if let Json::Obj(attrs) = v {
                            for (ak, av) in attrs {
                                if let Some(text) = av.primitive_text() {
                                    self.attribute(ak, &text, out);
                                }
                            }
                            continue;
                        }
                    }
                    let as_attr = key.len() > 1 && key.starts_with('@')
                        || self
                            .namespace_prefix
                            .as_deref()
                            .is_some_and(|p| key.starts_with(p));
                    match (as_attr, v.primitive_text()) {
                        (true, Some(text)) => {
                            self.attribute(key.strip_prefix('@').unwrap_or(key), &text, out)
                        }
                        _ if key == "#text" => {
                            if let Some(text) = v.primitive_text() {
                                escape_into(&text, false, &mut content);
                            }
                        }
                        _ => self.element(key, v, &mut content),
                    }
                }
                if content.is_empty() {
                    out.push_str(" />");
                } else {
                    let _ = write!(out, ">{content}</{tag}>");
                }
            }
            primitive => {
                let text = primitive.primitive_text().unwrap_or_default();
                let _ = write!(out, "<{tag}>");
                escape_into(&text, false, out);
                let _ = write!(out, "</{tag}>");
            }
        }
    }

    fn attribute(&self, name: &str, value: &str, out: &mut String) {
        let _ = write!(out, " {}=\"", self.name(name));
        escape_into(value, true, out);
        out.push('"');
    }
}

/// A JSON value with object members in document order (serde_json's `Value` sorts
/// them unless a crate-wide feature is on, and element order matters in XML).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number as JSON text.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn primitive_text(&self) -> Option<String> {
        match self {
            Json::Bool(true) => Some("True".into()),
            Json::Bool(false) => Some("False".into()),
            Json::Num(n) => Some(n.clone()),
            Json::Str(s) => Some(s.clone()),
            Json::Null | Json::Arr(_) | Json::Obj(_) => None,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Num(n.to_string()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Num(n.to_string()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        Ok(Json::Num(
            serde_json::Number::from_f64(n).map_or_else(|| n.to_string(), |x| x.to_string()),
        ))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::Str(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut props = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            props.push((k, v));
        }
        Ok(Json::Obj(props))
    }
}

/// A JSON name as an XML name: `:` is kept (a namespace prefix); other characters an
/// XML name may not hold become `_xHHHH_`, as .NET's `XmlConvert.EncodeName` does.
fn xml_name(raw: &str) -> String {
    if raw.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.chars().enumerate() {
        let ok = if i == 0 {
            c.is_alphabetic() || c == '_'
        } else {
            c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
        };
        if ok {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "_x{u:04X}_");
            }
        }
    }
    out
}

fn escape_into(text: &str, attribute: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            // Not representable in XML 1.0: dropped rather than making the document invalid.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => {}
            c => out.push(c),
        }
    }
}

/// Whether the request's Accept asks for `kind` ("xml" or "json"): `application/kind`,
/// `text/kind` or a `+kind` suffix.
fn accepts(headers: &Headers, kind: &str) -> bool {
    let Some(accept) = headers.get("Accept") else {
        return false;
    };
    accept.split(',').any(|range| media_type_is(range, kind))
}

fn content_type_is(headers: &Headers, kind: &str) -> bool {
    headers
        .get("Content-Type")
        .is_some_and(|ct| media_type_is(&ct, kind))
}

fn media_type_is(value: &str, kind: &str) -> bool {
    let mt = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((top, sub)) = mt.split_once('/') else {
        return false;
    };
    (sub == kind && (top == "application" || top == "text")) || sub.ends_with(&format!("+{kind}"))
}

// ---------------------------------------------------------------------------------
// xml-to-json

#[derive(Debug)]
pub struct XmlToJson {
    direct: bool,
    only_xml: bool,
    consider_accept: bool,
    always_array: bool,
}

const MAX_XML_DEPTH: usize = 128;

impl XmlToJson {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound, Section::Outbound, Section::OnError])?;
        let mut a = Attrs::new(el);
        let direct = match literal(&mut a, "kind")? {
            Some("direct") => true,
            Some("javascript-friendly") => false,
            Some(other) => {
                return Err(format!(
                    "kind must be javascript-friendly or direct, not {other:?}"
                ))
            }
            None => return Err("attribute kind is required".into()),
        };
        let only_xml = match literal(&mut a, "apply")? {
            Some("always") => false,
            Some("content-type-xml") => true,
            Some(other) => {
                return Err(format!(
                    "apply must be always or content-type-xml, not {other:?}"
                ))
            }
            None => return Err("attribute apply is required".into()),
        };
        let consider_accept = literal_bool(&mut a, "consider-accept-header", true)?;
        let always_array = literal_bool(&mut a, "always-array-child-elements", false)?;
        a.finish()?;
        no_children(el)?;
        Ok(XmlToJson {
            direct,
            only_xml,
            consider_accept,
            always_array,
        })
    }

    pub fn apply(&self, section: Section, cx: &mut Context) -> Flow {
        if self.consider_accept && !accepts(&cx.request.headers, "json") {
            return Flow::Continue;
        }
        let Some((body, headers)) = body_and_headers(section, cx) else {
            return Flow::Continue;
        };
        if self.only_xml && !content_type_is(headers, "xml") {
            return Flow::Continue;
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return Flow::Continue;
        };
        let Some(json) = self.convert(text) else {
            return Flow::Continue;
        };
        *body = json.into_bytes();
        headers.set("Content-Type", "application/json".into());
        Flow::Continue
    }

    /// The JSON text for an XML document, or `None` when it is not well-formed (or
    /// holds what is refused: DOCTYPE, unknown entities, excessive nesting).
    fn convert(&self, text: &str) -> Option<String> {
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<XNode> = Vec::new();
        let mut root: Option<(String, Json)> = None;
        loop {
            match reader.read_event().ok()? {
                Event::Start(start) => {
                    if root.is_some() || stack.len() >= MAX_XML_DEPTH {
                        return None;
                    }
                    stack.push(self.open(&start)?);
                }
                Event::Empty(start) => {
                    if root.is_some() {
                        return None;
                    }
                    let node = self.open(&start)?;
                    self.close(node, &mut stack, &mut root);
                }
                Event::End(_) => {
                    let node = stack.pop()?;
                    self.close(node, &mut stack, &mut root);
                }
                Event::Text(t) => match stack.last_mut() {
                    Some(node) => node.text.push_str(&t.xml10_content()),
                    None if t.xml10_content().trim().is_empty() => {}
                    None => return None,
                },
                Event::CData(c) => stack.last_mut()?.text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => {
                    let node = stack.last_mut()?;
                    match r.resolve_char_ref().ok()? {
                        Some(c) => node.text.push(c),
                        None => node
                            .text
                            .push_str(quick_xml::escape::resolve_predefined_entity(
                                &r.xml10_content(),
                            )?),
                    }
                }
                Event::DocType(_) => return None,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if !stack.is_empty() {
            return None;
        }
        let (name, value) = root?;
        let mut out = String::new();
        write_json(&Json::Obj(vec![(name, value)]), &mut out);
        Some(out)
    }

    fn open(&self, start: &quick_xml::events::BytesStart<'_>) -> Option<XNode> {
        let raw = start.name().as_ref().to_string();
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = attr.ok()?;
            let key = attr.key.as_ref().to_string();
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()?
                .into_owned();
            if self.direct {
                attrs.push((format!("@{}", key.replace(':', "$")), Json::Str(value)));
            } else if key != "xmlns" && !key.starts_with("xmlns:") {
                attrs.push((local(&key).to_string(), Json::Str(value)));
            }
        }
        let name = if self.direct {
            raw.replace(':', "$")
        } else {
            local(&raw).to_string()
        };
        Some(XNode {
            name,
            attrs,
            children: Vec::new(),
            text: String::new(),
        })
    }

    fn close(&self, node: XNode, stack: &mut [XNode], root: &mut Option<(String, Json)>) {
        let name = node.name.clone();
        let value = self.value_of(node);
        match stack.last_mut() {
            Some(parent) => parent.children.push((name, value)),
            None => *root = Some((name, value)),
        }
    }

    fn value_of(&self, node: XNode) -> Json {
        if node.attrs.is_empty() && node.children.is_empty() {
            return if node.text.is_empty() {
                Json::Null
            } else {
                Json::Str(node.text)
            };
        }
        let mut props = node.attrs;
        let mut groups: Vec<(String, Vec<Json>)> = Vec::new();
        for (name, value) in node.children {
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => groups.push((name, vec![value])),
            }
        }
        for (name, mut values) in groups {
            if values.len() == 1 && !self.always_array {
                props.push((name, values.pop().unwrap_or(Json::Null)));
            } else {
                props.push((name, Json::Arr(values)));
            }
        }
        let text = node.text.trim();
        if !text.is_empty() {
            props.push(("#text".into(), Json::Str(text.to_string())));
        }
        Json::Obj(props)
    }
}

/// An element being read.
struct XNode {
    name: String,
    attrs: Vec<(String, Json)>,
    children: Vec<(String, Json)>,
    text: String,
}

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

fn write_json(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(n),
        Json::Str(s) => crate::policy::json::write_string(s, out),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Obj(props) => {
            out.push('{');
            for (i, (k, v)) in props.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                crate::policy::json::write_string(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::Response;
    use crate::policy::document::Scope;
    use crate::policy::xml;

    fn cx_for(section: Section) -> CompileCx<'static> {
        CompileCx {
            section,
            scope: Scope::Global,
            scope_id: "",
            index: 0,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        }
    }

    fn el(doc: &str) -> Element {
        xml::parse(doc).unwrap()
    }

    fn outbound_with(body: &str, content_type: &str) -> Context {
        let mut cx = Context::default();
        let mut resp = Response {
            status: 200,
            body: Some(body.as_bytes().to_vec()),
            ..Response::default()
        };
        resp.headers.set("Content-Type", content_type.into());
        cx.response = Some(resp);
        cx
    }

    fn response_body(cx: &Context) -> String {
        String::from_utf8(cx.response.as_ref().unwrap().body.clone().unwrap()).unwrap()
    }

    #[test]
    fn find_and_replace_request_and_response() {
        let p = FindAndReplace::compile(
            &el(r#"<find-and-replace from="notebook" to="laptop"/>"#),
            &cx_for(Section::Inbound),
        )
        .unwrap();
        let mut cx = Context::default();
        cx.request.body = Some(b"a notebook, another notebook; notebooknotebook".to_vec());
        assert_eq!(p.apply(Section::Inbound, &mut cx), Flow::Continue);
        assert_eq!(
            cx.request.body.as_deref(),
            Some(&b"a laptop, another laptop; laptoplaptop"[..])
        );

        let mut cx = outbound_with("no match here", "text/plain");
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(response_body(&cx), "no match here");

        // Removing, and overlapping candidates are replaced left to right.
        let p = FindAndReplace::compile(
            &el(r#"<find-and-replace from="aa" to=""/>"#),
            &cx_for(Section::Outbound),
        )
        .unwrap();
        let mut cx = outbound_with("aaa-aaaa", "text/plain");
        p.apply(Section::OnError, &mut cx);
        assert_eq!(response_body(&cx), "a-");

        // No body: nothing to do.
        let mut cx = Context::default();
        assert_eq!(p.apply(Section::Inbound, &mut cx), Flow::Continue);
        assert!(cx.request.body.is_none());
    }

    #[test]
    fn find_and_replace_with_expressions() {
        let p = FindAndReplace::compile(
            &el(r#"<find-and-replace from="@("x" + "y")" to="@(context.Request.Method)"/>"#),
            &cx_for(Section::Inbound),
        )
        .unwrap();
        let mut cx = Context::default();
        cx.request.method = "PUT".into();
        cx.request.body = Some(b"1xy2".to_vec());
        p.apply(Section::Inbound, &mut cx);
        assert_eq!(cx.request.body.as_deref(), Some(&b"1PUT2"[..]));
    }

    #[test]
    fn find_and_replace_compile_errors() {
        let err = |d: &str| FindAndReplace::compile(&el(d), &cx_for(Section::Inbound)).unwrap_err();
        assert_eq!(
            err(r#"<find-and-replace to="b"/>"#),
            "attribute from is required"
        );
        assert_eq!(
            err(r#"<find-and-replace from="a"/>"#),
            "attribute to is required"
        );
        assert_eq!(
            err(r#"<find-and-replace from="" to="b"/>"#),
            "from must not be empty"
        );
        assert_eq!(
            err(r#"<find-and-replace from="a" to="b" ignore-case="true"/>"#),
            "unknown attribute ignore-case"
        );
        assert!(
            err(r#"<find-and-replace from="a" to="b"><x/></find-and-replace>"#)
                .contains("unexpected <x>")
        );
    }

    fn json_to_xml(attrs: &str) -> JsonToXml {
        JsonToXml::compile(
            &el(&format!("<json-to-xml {attrs}/>")),
            &cx_for(Section::Outbound),
        )
        .unwrap()
    }

    #[test]
    fn json_to_xml_shape() {
        let p = json_to_xml(r#"apply="always" consider-accept-header="false""#);
        let json = r#"{"firstName":"John","isAlive":true,"age":25,"height":1.5,
            "address":{"city":"New York","zip":"10021"},
            "phones":[{"type":"home"},{"type":"mobile"}],
            "children":[],"spouse":null,"a<b":"x&y","1st":"z"}"#;
        let mut cx = outbound_with(json, "application/json");
        assert_eq!(p.apply(Section::Outbound, &mut cx), Flow::Continue);
        assert_eq!(
            response_body(&cx),
            "<Document><firstName>John</firstName><isAlive>True</isAlive><age>25</age>\
             <height>1.5</height><address><city>New York</city><zip>10021</zip></address>\
             <phones><type>home</type></phones><phones><type>mobile</type></phones>\
             <children /><spouse xsi:nil=\"true\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" />\
             <a_x003C_b>x&amp;y</a_x003C_b><_x0031_st>z</_x0031_st></Document>"
        );
        assert_eq!(
            cx.response
                .as_ref()
                .unwrap()
                .headers
                .get("Content-Type")
                .as_deref(),
            Some("application/xml")
        );
        // The output is well-formed XML.
        assert!(crate::policy::xml::parse(&response_body(&cx)).is_ok());
    }

    #[test]
    fn json_to_xml_single_root_attributes_and_namespaces() {
        let p = json_to_xml(
            r##"apply="always" consider-accept-header="false" namespace-separator=":" namespace-prefix="xmlns" attribute-block-name="#attrs""##,
        );
        let json = r##"{"soapenv:Envelope":{"xmlns:soapenv":"http://schemas.xmlsoap.org/soap/envelope/",
            "soapenv:Header":{},"soapenv:Body":{"v1:QueryList":{"#attrs":{"queryName":"test"},
            "@id":7,"#text":"t","name":"dummy"}}}}"##;
        let mut cx = outbound_with(json, "application/json");
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(
            response_body(&cx),
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
             <soapenv:Header /><soapenv:Body><v1:QueryList queryName=\"test\" id=\"7\">t\
             <name>dummy</name></v1:QueryList></soapenv:Body></soapenv:Envelope>"
        );
    }

    #[test]
    fn json_to_xml_respects_apply_and_accept() {
        let p = json_to_xml(r#"apply="content-type-json""#);
        // consider-accept-header defaults to true: no XML asked for, no conversion.
        let mut cx = outbound_with(r#"{"a":1}"#, "application/json");
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(response_body(&cx), r#"{"a":1}"#);
        // Asked for, but the body is not JSON by its Content-Type.
        let mut cx = outbound_with(r#"{"a":1}"#, "text/plain");
        cx.request.headers.set("Accept", "application/xml".into());
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(response_body(&cx), r#"{"a":1}"#);
        let mut cx = outbound_with(
            r#"{"a":1,"b":[1,2]}"#,
            "application/problem+json; charset=utf-8",
        );
        cx.request
            .headers
            .set("Accept", "text/html, text/xml;q=0.9".into());
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(
            response_body(&cx),
            "<Document><a>1</a><b>1</b><b>2</b></Document>"
        );
        // Not JSON at all: left as it is.
        let mut cx = outbound_with("{oops", "application/json");
        cx.request.headers.set("Accept", "application/xml".into());
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(response_body(&cx), "{oops");
    }

    #[test]
    fn json_to_xml_on_the_request() {
        let p = JsonToXml::compile(
            &el(r#"<json-to-xml apply="always" consider-accept-header="false"/>"#),
            &cx_for(Section::Inbound),
        )
        .unwrap();
        let mut cx = Context::default();
        cx.request.body = Some(br#"[1,"two"]"#.to_vec());
        cx.request
            .headers
            .set("Content-Type", "application/json".into());
        p.apply(Section::Inbound, &mut cx);
        assert_eq!(
            cx.request.body.as_deref(),
            Some(&b"<Document><item>1</item><item>two</item></Document>"[..])
        );
        assert_eq!(
            cx.request.headers.get("Content-Type").as_deref(),
            Some("application/xml")
        );
    }

    #[test]
    fn json_to_xml_compile_errors() {
        let err = |d: &str, s: Section| JsonToXml::compile(&el(d), &cx_for(s)).unwrap_err();
        assert_eq!(
            err("<json-to-xml/>", Section::Outbound),
            "attribute apply is required"
        );
        assert!(
            err(r#"<json-to-xml apply="sometimes"/>"#, Section::Outbound).contains("apply must be")
        );
        assert!(err(
            r#"<json-to-xml apply="always" parse-date="maybe"/>"#,
            Section::Outbound
        )
        .contains("true or false"));
        assert!(
            err(r#"<json-to-xml apply="@("always")"/>"#, Section::Outbound)
                .contains("expressions are not supported")
        );
        assert!(err(
            r#"<json-to-xml apply="always" namespace-separator="::"/>"#,
            Section::Outbound
        )
        .contains("one character"));
        assert_eq!(
            err(
                r#"<json-to-xml apply="always" root="x"/>"#,
                Section::Outbound
            ),
            "unknown attribute root"
        );
        assert!(err(r#"<json-to-xml apply="always"/>"#, Section::Backend)
            .contains("not allowed in backend"));
    }

    fn xml_to_json(attrs: &str) -> XmlToJson {
        XmlToJson::compile(
            &el(&format!("<xml-to-json {attrs}/>")),
            &cx_for(Section::Outbound),
        )
        .unwrap()
    }

    const SOAP: &str = r#"<?xml version="1.0"?>
<!-- a comment -->
<soap:Envelope xmlns="http://fyicenter.com/" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
    <soap:Body>
        <GetOrders id="7">
            <Customer>1234567</Customer>
            <Item>a &amp; b</Item>
            <Item><![CDATA[<c>]]></Item>
            <Empty/>
            <Note lang="en">hi&#33;</Note>
        </GetOrders>
    </soap:Body>
</soap:Envelope>"#;

    #[test]
    fn xml_to_json_direct() {
        let p = xml_to_json(r#"kind="direct" apply="always" consider-accept-header="false""#);
        let mut cx = outbound_with(SOAP, "text/xml");
        assert_eq!(p.apply(Section::Outbound, &mut cx), Flow::Continue);
        let out = response_body(&cx);
        assert_eq!(
            out,
            r##"{"soap$Envelope":{"@xmlns":"http://fyicenter.com/","@xmlns$soap":"http://schemas.xmlsoap.org/soap/envelope/","soap$Body":{"GetOrders":{"@id":"7","Customer":"1234567","Item":["a & b","<c>"],"Empty":null,"Note":{"@lang":"en","#text":"hi!"}}}}}"##
        );
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
        assert_eq!(
            cx.response
                .as_ref()
                .unwrap()
                .headers
                .get("Content-Type")
                .as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn xml_to_json_javascript_friendly_and_arrays() {
        let p = xml_to_json(
            r#"kind="javascript-friendly" apply="always" consider-accept-header="false" always-array-child-elements="true""#,
        );
        let mut cx = outbound_with(SOAP, "text/xml");
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(
            response_body(&cx),
            r##"{"Envelope":{"Body":[{"GetOrders":[{"id":"7","Customer":["1234567"],"Item":["a & b","<c>"],"Empty":[null],"Note":[{"lang":"en","#text":"hi!"}]}]}]}}"##
        );
    }

    #[test]
    fn xml_to_json_respects_apply_accept_and_bad_input() {
        let p = xml_to_json(r#"kind="direct" apply="content-type-xml""#);
        let mut cx = outbound_with("<a>1</a>", "application/xml");
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(
            response_body(&cx),
            "<a>1</a>",
            "Accept does not ask for JSON"
        );
        let mut cx = outbound_with("<a>1</a>", "application/xml");
        cx.request.headers.set("Accept", "application/json".into());
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(response_body(&cx), r#"{"a":"1"}"#);
        let mut cx = outbound_with("<a>1</a>", "text/plain");
        cx.request.headers.set("Accept", "application/json".into());
        p.apply(Section::Outbound, &mut cx);
        assert_eq!(
            response_body(&cx),
            "<a>1</a>",
            "not XML by its Content-Type"
        );

        let p = xml_to_json(r#"kind="direct" apply="always" consider-accept-header="false""#);
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        for bad in [
            "<a><b></a>",
            "<a>",
            "<a/><b/>",
            "text",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a>&bogus;</a>",
            deep.as_str(),
        ] {
            let mut cx = outbound_with(bad, "application/xml");
            p.apply(Section::Outbound, &mut cx);
            assert_eq!(response_body(&cx), bad);
        }
    }

    #[test]
    fn policies_that_need_the_body_say_so() {
        let needs = |doc: &str| {
            crate::policy::builtin::compile(&el(doc), &cx_for(Section::Inbound))
                .unwrap()
                .needs_body()
        };
        assert!(needs(r#"<find-and-replace from="a" to="b"/>"#));
        assert!(needs(r#"<json-to-xml apply="always"/>"#));
        assert!(needs(r#"<xml-to-json kind="direct" apply="always"/>"#));
        assert!(needs(
            r#"<choose><when condition="@(true)"><set-header name="a" exists-action="delete"/></when>
               <otherwise><find-and-replace from="a" to="b"/></otherwise></choose>"#
        ));
        assert!(needs(
            r#"<choose><when condition="@(context.Request.Body.As<string>() == "x")"><set-header name="a" exists-action="delete"/></when></choose>"#
        ));
        assert!(!needs(
            r#"<choose><when condition="@(true)"><set-header name="a" exists-action="delete"/></when></choose>"#
        ));
        assert!(!needs(
            r#"<ip-filter action="allow"><address>1.2.3.4</address></ip-filter>"#
        ));
    }

    #[test]
    fn xml_to_json_compile_errors() {
        let err = |d: &str| XmlToJson::compile(&el(d), &cx_for(Section::Outbound)).unwrap_err();
        assert_eq!(
            err(r#"<xml-to-json apply="always"/>"#),
            "attribute kind is required"
        );
        assert_eq!(
            err(r#"<xml-to-json kind="direct"/>"#),
            "attribute apply is required"
        );
        assert!(err(r#"<xml-to-json kind="pretty" apply="always"/>"#).contains("kind must be"));
        assert!(
            err(r#"<xml-to-json kind="direct" apply="content-type-json"/>"#)
                .contains("apply must be")
        );
        assert_eq!(
            err(r#"<xml-to-json kind="direct" apply="always" indent="2"/>"#),
            "unknown attribute indent"
        );
    }
}
