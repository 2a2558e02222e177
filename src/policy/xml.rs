//! Reading policy documents. APIM stores policies as "rawxml": expressions inside
//! attribute values and text hold unescaped `"`, `<`, `&&` and generics, and users paste
//! those documents. So before XML parsing, every `@(...)` / `@{...}` span is found (with
//! the expression scanner, which knows C# string literals) and swapped for a placeholder;
//! quick-xml then parses plain XML, and the spans are put back into the values. Well-formed
//! documents (with `&quot;` and friends inside expressions) read the same way.
//! The result is a small element tree with line numbers; nothing here knows policies.

use crate::policy::expr::expression_end;
use quick_xml::events::Event;
use quick_xml::Reader;
use quick_xml::XmlVersion;

/// An element of a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// 1-based line of the start tag in the document.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The text content (text children joined), trimmed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out.trim().to_string()
    }
}

/// A reading error with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// Parses a policy document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let protected = protect_expressions(text)?;
    let mut reader = Reader::from_str(&protected.text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let line = protected.line_of(at);
        let event = reader.read_event().map_err(|e| XmlError {
            line: protected.line_of(reader.buffer_position() as usize),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(start) => {
                let el = element_from(&start, line, &protected)?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = element_from(&start, line, &protected)?;
                attach(&mut stack, &mut root, el, line)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or(XmlError {
                    line,
                    message: "closing tag without an opening one".into(),
                })?;
                attach(&mut stack, &mut root, el, line)?;
            }
            Event::Text(t) => {
                let raw = t.xml10_content();
                push_text(&mut stack, &protected.restore(&raw), line)?;
            }
            Event::CData(c) => {
                let raw = c.xml10_content();
                push_text(&mut stack, &protected.restore(&raw), line)?;
            }
            Event::GeneralRef(r) => {
                let name: &str = &r;
                let resolved = resolve_entity(name).ok_or_else(|| XmlError {
                    line,
                    message: format!("unknown entity &{name};"),
                })?;
                push_text(&mut stack, &resolved, line)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::DocType(_) => {
                return Err(XmlError {
                    line,
                    message: "DOCTYPE is not allowed in a policy document".into(),
                })
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError {
            line: open.line,
            message: format!("<{}> is not closed", open.name),
        });
    }
    root.ok_or(XmlError {
        line: 1,
        message: "empty policy document".into(),
    })
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
    line: usize,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(Node::Element(el));
            Ok(())
        }
        None if root.is_none() => {
            *root = Some(el);
            Ok(())
        }
        None => Err(XmlError {
            line,
            message: "more than one root element".into(),
        }),
    }
}

fn push_text(stack: &mut [Element], text: &str, line: usize) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError {
            line,
            message: "text outside the root element".into(),
        }),
    }
}

fn element_from(
    start: &quick_xml::events::BytesStart<'_>,
    line: usize,
    protected: &Protected,
) -> Result<Element, XmlError> {
    let name = start.name().as_ref().to_string();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError {
            line,
            message: format!("<{name}>: {e}"),
        })?;
        let key = attr.key.as_ref().to_string();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| XmlError {
                line,
                message: format!("<{name} {key}>: {e}"),
            })?;
        if attrs.iter().any(|(k, _)| *k == key) {
            return Err(XmlError {
                line,
                message: format!("<{name}>: attribute {key} given twice"),
            });
        }
        attrs.push((key, protected.restore(&value)));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        line,
    })
}

fn resolve_entity(name: &str) -> Option<String> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let n = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            char::from_u32(n)?
        }
    };
    Some(c.to_string())
}

/// The document with expression spans replaced by placeholders.
struct Protected {
    text: String,
    expressions: Vec<String>,
    /// (offset in `text`, newlines removed before it) for each placeholder.
    shifts: Vec<(usize, usize)>,
}

impl Protected {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        let prefix = self.text.get(..offset).unwrap_or("");
        let removed = self
            .shifts
            .iter()
            .take_while(|(at, _)| *at < offset)
            .last()
            .map_or(0, |(_, n)| *n);
        1 + prefix.matches('\n').count() + removed
    }

    /// Puts the expressions back into a value read by the XML parser.
    fn restore(&self, value: &str) -> String {
        if !value.contains(OPEN) {
            return value.to_string();
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(i) = rest.find(OPEN) {
            out.push_str(&rest[..i]);
            let after = &rest[i + OPEN.len_utf8()..];
            match after.find(CLOSE) {
                Some(j) => {
                    let index: Option<usize> = after[..j].parse().ok();
                    match index.and_then(|k| self.expressions.get(k)) {
                        Some(expr) => out.push_str(expr),
                        None => out.push_str(&after[..j]),
                    }
                    rest = &after[j + CLOSE.len_utf8()..];
                }
                None => {
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

fn protect_expressions(text: &str) -> Result<Protected, XmlError> {
    if text.contains(OPEN) || text.contains(CLOSE) {
        return Err(XmlError {
            line: 1,
            message: "the document contains reserved characters U+E000/U+E001".into(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut expressions = Vec::new();
    let mut shifts = Vec::new();
    let mut removed_newlines = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let is_expr = bytes[i] == b'@' && matches!(bytes.get(i + 1), Some(b'(') | Some(b'{'));
        let in_comment = false;
        if is_expr && !in_comment {
            let end = expression_end(text, i).ok_or_else(|| XmlError {
                line: 1 + text[..i].matches('\n').count(),
                message: "expression is not closed (unbalanced brackets or an unterminated string)"
                    .into(),
            })?;
            let expr = unescape_entities(&text[i..end]);
            removed_newlines += text[i..end].matches('\n').count();
            out.push(OPEN);
            out.push_str(&expressions.len().to_string());
            out.push(CLOSE);
            shifts.push((out.len(), removed_newlines));
            expressions.push(expr);
            i = end;
        } else {
            let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + ch_len]);
            i += ch_len;
        }
    }
    Ok(Protected {
        text: out,
        expressions,
        shifts,
    })
}

/// Well-formed documents escape quotes and `<` inside expressions; rawxml ones do not.
/// Only the five predefined entities are turned back, so `&&` stays as it is.
fn unescape_entities(expr: &str) -> String {
    if !expr.contains('&') {
        return expr.to_string();
    }
    expr.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_attributes_and_text() {
        let doc = parse(
            "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"X-A\" exists-action=\"override\">\n      <value>one &amp; two</value>\n    </set-header>\n  </inbound>\n</policies>",
        )
        .unwrap();
        assert_eq!(doc.name, "policies");
        let inbound = doc.elements().next().unwrap();
        assert_eq!(inbound.line, 2);
        let names: Vec<_> = inbound.elements().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["base", "set-header"]);
        let sh = inbound.elements().nth(1).unwrap();
        assert_eq!(sh.attr("name"), Some("X-A"));
        assert_eq!(sh.line, 4);
        assert_eq!(sh.elements().next().unwrap().text(), "one & two");
    }

    #[test]
    fn rawxml_expressions_survive() {
        let doc = parse(
            r#"<policies><inbound><set-variable name="v" value="@(context.Request.Headers.GetValueOrDefault("a", "<b>") == "x" && true)" /><set-body>@{ return "<x>" + "&"; }</set-body></inbound></policies>"#,
        )
        .unwrap();
        let inbound = doc.elements().next().unwrap();
        let sv = inbound.elements().next().unwrap();
        assert_eq!(
            sv.attr("value"),
            Some(r#"@(context.Request.Headers.GetValueOrDefault("a", "<b>") == "x" && true)"#)
        );
        let sb = inbound.elements().nth(1).unwrap();
        assert_eq!(sb.text(), r#"@{ return "<x>" + "&"; }"#);
    }

    #[test]
    fn escaped_expressions_read_the_same() {
        let doc = parse(
            r#"<policies><inbound><set-variable name="v" value="@(context.Request.Headers.GetValueOrDefault(&quot;a&quot;, &quot;&lt;b&gt;&quot;) == &quot;x&quot; &amp;&amp; true)" /></inbound></policies>"#,
        )
        .unwrap();
        let sv = doc.elements().next().unwrap().elements().next().unwrap();
        assert_eq!(
            sv.attr("value"),
            Some(r#"@(context.Request.Headers.GetValueOrDefault("a", "<b>") == "x" && true)"#)
        );
    }

    #[test]
    fn errors_have_lines() {
        let e = parse("<policies>\n<inbound>\n</policies>").unwrap_err();
        assert!(e.line >= 2, "{e}");
        let e = parse("<policies>\n<inbound a=\"@(unclosed\"/>\n</policies>").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(parse("").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("<!DOCTYPE x><a/>").is_err());
        assert!(parse("<a>&bogus;</a>").is_err());
    }

    #[test]
    fn line_numbers_count_newlines_inside_expressions() {
        let doc = parse("<policies>\n<inbound>\n<set-body>@{\nreturn \"a\";\n}</set-body>\n<base/>\n</inbound>\n</policies>").unwrap();
        let inbound = doc.elements().next().unwrap();
        let base = inbound.elements().nth(1).unwrap();
        assert_eq!(base.line, 6);
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let seed = r#"<policies><inbound><set-header name="a" exists-action="override"><value>@(context.Request.Method + "x")</value></set-header></inbound></policies>"#;
        for _ in 0..3000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % bytes.len();
                bytes[i] = (x >> 32) as u8 & 0x7f;
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
        }
    }
}
