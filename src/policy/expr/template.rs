//! Policy values: an attribute or element text is either literal text or exactly one
//! expression, `@(...)` or `@{...}`, filling the whole value (surrounding whitespace
//! aside). APIM does not interpolate expressions inside literal text, and neither does
//! this. Also `expression_end`, which the policy XML reader uses to find where an
//! expression ends in raw policy text before XML parsing, because APIM policies write
//! expressions unescaped ("rawxml": `"`, `<`, `&&`, `As<JObject>()`).

use std::borrow::Cow;

use super::lexer::skip_balanced;
use super::{EvalError, Expr, ExprError};
use crate::policy::context::Context;

/// A policy attribute or text value.
#[derive(Debug, Clone)]
pub enum Template {
    Literal(String),
    Expr(Expr),
}

impl Template {
    /// Literal text, or one `@(...)` / `@{...}` expression making up the whole value.
    /// Errors carry byte offsets into `text`.
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        let trimmed = text.trim();
        let lead = text.len() - text.trim_start().len();
        let b = trimmed.as_bytes();
        let block = match (b.first(), b.get(1)) {
            (Some(b'@'), Some(b'(')) => false,
            (Some(b'@'), Some(b'{')) => true,
            _ => return Ok(Template::Literal(text.to_string())),
        };
        let end = match expression_end(trimmed, 0) {
            Some(end) => end,
            None => {
                return Err(ExprError::new(
                    lead,
                    "unterminated expression: no matching ')' or '}'",
                ))
            }
        };
        if end != trimmed.len() {
            return Err(ExprError::new(
                lead + end,
                "a value must be either literal text or a single expression",
            ));
        }
        let body = &trimmed[2..end - 1];
        let expr = if block {
            Expr::parse_block(body)
        } else {
            Expr::parse(body)
        };
        expr.map(Template::Expr).map_err(|e| e.shifted(lead + 2))
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    pub fn eval_string(&self, cx: &Context) -> Result<String, EvalError> {
        match self {
            Template::Literal(s) => Ok(s.clone()),
            Template::Expr(e) => e.eval_string(cx),
        }
    }

    /// Like `eval_string`, without copying literal text.
    pub fn eval_str(&self, cx: &Context) -> Result<Cow<'_, str>, EvalError> {
        match self {
            Template::Literal(s) => Ok(Cow::Borrowed(s)),
            Template::Expr(e) => e.eval_string(cx).map(Cow::Owned),
        }
    }
}

/// Where the expression starting at `text[start]` ('@' then '(' or '{') ends: the byte
/// index just after its matching ')' or '}'. Brackets nest; C# strings (regular, verbatim,
/// interpolated), char literals and comments are skipped, so `")"` and `')'` do not close
/// anything. `None` when `start` is not at "@(" or "@{", or the brackets do not balance.
pub fn expression_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    if b.get(start) != Some(&b'@') {
        return None;
    }
    let close = match b.get(start.checked_add(1)?)? {
        b'(' => b')',
        b'{' => b'}',
        _ => return None,
    };
    skip_balanced(b, start + 2, close).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(s: &str) -> Option<usize> {
        expression_end(s, 0)
    }

    #[test]
    fn expression_end_on_rawxml() {
        let s = r#"@(context.Request.Headers.GetValueOrDefault("a", "<b>") == "x" && true)"#;
        assert_eq!(end(s), Some(s.len()));
        let s = r#"@(context.Variables.GetValueOrDefault<string>("a"))"#;
        assert_eq!(end(s), Some(s.len()));
        let s = r#"@("a)b" + "\")" + @"c"")" + ')' + '\'')"#;
        assert_eq!(end(s), Some(s.len()));
        let s = "@((1 + (2)) * 3) trailing";
        assert_eq!(end(s), Some(16));
        let s = r#"@{ var x = "}"; /* } */ // }
            return x; }"#;
        assert_eq!(end(s), Some(s.len()));
        let s = r#"@($"{context.Request.Headers.GetValueOrDefault("a", ")")}")"#;
        assert_eq!(end(s), Some(s.len()));
        // In the middle of a larger text.
        let text = r#"<set-header value="@("a")" />"#;
        let at = text.find('@').unwrap();
        assert_eq!(&text[at..expression_end(text, at).unwrap()], r#"@("a")"#);
    }

    #[test]
    fn expression_end_rejects() {
        for s in [
            "@(", "@(a", "@((a)", "@(a]", "@{a)", r#"@("a)"#, "@(')", "@(a /* )", "(a)", "@a", "@",
            "",
        ] {
            assert_eq!(end(s), None, "{s}");
        }
        assert_eq!(expression_end("ab", 5), None);
        assert_eq!(expression_end("é@(1)", 1), None);
        assert_eq!(expression_end("é@(1)", 2), Some(6));
    }

    #[test]
    fn templates() {
        let cx = Context::default();
        assert!(Template::parse("plain text").unwrap().is_literal());
        assert!(Template::parse("a @(1) b").unwrap().is_literal());
        assert!(Template::parse("").unwrap().is_literal());
        let t = Template::parse("@(1 + 1)").unwrap();
        assert!(!t.is_literal());
        assert_eq!(t.eval_string(&cx).unwrap(), "2");
        let t = Template::parse("\n   @{ var a = \"x\"; return a + \"y\"; }\n  ").unwrap();
        assert_eq!(t.eval_string(&cx).unwrap(), "xy");
        assert_eq!(
            Template::parse("literal").unwrap().eval_str(&cx).unwrap(),
            "literal"
        );
        assert_eq!(
            Template::parse("@(true)")
                .unwrap()
                .eval_string(&cx)
                .unwrap(),
            "True"
        );
    }

    #[test]
    fn template_errors_point_into_the_text() {
        let e = Template::parse("  @(1 +)").unwrap_err();
        assert_eq!(e.offset, 7);
        let e = Template::parse("@(1) tail").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("single expression"));
        let e = Template::parse(" @(1").unwrap_err();
        assert_eq!(e.offset, 1);
        let e = Template::parse("@{ return x; }").unwrap_err();
        assert_eq!(e.offset, 10);
    }
}
