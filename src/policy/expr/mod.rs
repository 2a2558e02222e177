//! APIM policy expressions: the C# snippets of `@(expression)` values and `@{ ... }`
//! statement blocks. A snippet is compiled once, when the configuration is loaded, by a
//! real pipeline: `lexer` (tokens with byte offsets), `parser` (an untyped tree),
//! `check` (types and member resolution into a typed tree whose `context` members are
//! enum variants, not names) and `eval` (a tree walk over a [`Context`] per request: no
//! parsing, no name lookups, literals borrowed from the tree). `template` decides whether
//! a policy attribute or text is a literal or one expression and finds where an
//! expression ends in raw policy XML. `csfmt` and `jwt` hold what C# does for string
//! conversion and date formats, and `AsJwt()` decoding.
//!
//! What is not C#: no lambdas, LINQ with predicates, `new`, Newtonsoft JSON types, loops,
//! `try`, `is`/`as`, out parameters; char literals are one-character strings; `int` and
//! `long` are both 64-bit; culture-sensitive comparisons are ordinal. As in APIM, the
//! `string[]` dictionaries (`Headers`, `Url.Query`, `Jwt.Claims`) give all values for
//! `d["name"]` and the values joined with "," for `GetValueOrDefault`.
//! Every input (any text to `parse`, any context to `eval`) gives a value or an error,
//! never a panic; nesting is bounded so that no input exhausts the stack. A compiled
//! [`Expr`] holds no `Rc` and is `Send + Sync`, so it can live in the shared compiled
//! configuration.

mod check;
mod csfmt;
mod eval;
mod jwt;
mod lexer;
mod parser;
mod template;

use std::fmt;

use crate::policy::context::{Context, Value};

pub use template::{expression_end, Template};

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int,
    Double,
    String,
    StrArray,
    DateTime,
    Jwt,
    /// `context.Variables[...]` without a cast: checked when the value is used.
    Object,
    /// The type of the literal `null`.
    Null,
}

impl Type {
    /// The C# spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Double => "double",
            Type::String => "string",
            Type::StrArray => "string[]",
            Type::DateTime => "DateTime",
            Type::Jwt => "Jwt",
            Type::Object => "object",
            Type::Null => "null",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compile-time error: where in the source text (byte offset) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {offset}: {message}")]
pub struct ExprError {
    /// Byte offset in the text given to `parse`.
    pub offset: usize,
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            offset,
            message: message.into(),
        }
    }

    /// The same error with its offset moved by `by` (for a snippet cut out of a larger text).
    pub fn shifted(mut self, by: usize) -> ExprError {
        self.offset = self.offset.saturating_add(by);
        self
    }
}

/// A run-time error: what C# would throw (bad cast, null dereference, index out of
/// range, key not found, division by zero, bad format...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

/// A compiled expression or statement block.
#[derive(Debug, Clone)]
pub struct Expr {
    code: check::Code,
}

impl Expr {
    /// Compiles `src`: the text between "@(" and the matching ")", or the body of a
    /// `@{ ... }` block (the text between the braces). A text with a top-level `;` or
    /// starting with `return`, `var` or `if` is taken as a block body.
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        let program = parser::parse(src, parser::Mode::Auto)?;
        Ok(Expr {
            code: check::check(&program)?,
        })
    }

    /// Compiles the body of a `@{ ... }` block (statements ending in `return`).
    pub fn parse_block(src: &str) -> Result<Expr, ExprError> {
        let program = parser::parse(src, parser::Mode::Block)?;
        Ok(Expr {
            code: check::check(&program)?,
        })
    }

    /// The static type of the result (for a block, of its `return` values).
    pub fn ty(&self) -> Type {
        self.code.ty
    }

    /// Whether evaluation reads `context.Request.Body`: the caller must have buffered it.
    pub fn reads_request_body(&self) -> bool {
        self.code.reads_request_body
    }

    /// Whether evaluation reads `context.Response.Body`.
    pub fn reads_response_body(&self) -> bool {
        self.code.reads_response_body
    }

    pub fn eval(&self, cx: &Context) -> Result<Value, EvalError> {
        Ok(eval::run(&self.code, cx)?.into_value())
    }

    /// Evaluates and converts the result to a string as C# would: "True"/"False" for
    /// bools, invariant-culture numbers and dates, `null` -> "".
    pub fn eval_string(&self, cx: &Context) -> Result<String, EvalError> {
        Ok(eval::run(&self.code, cx)?.into_string())
    }

    /// Evaluates a condition: an error unless the result is a bool at run time.
    pub fn eval_bool(&self, cx: &Context) -> Result<bool, EvalError> {
        match eval::run(&self.code, cx)? {
            eval::V::Bool(b) => Ok(b),
            other => Err(EvalError::new(format!(
                "expected a bool result, got {}",
                other.type_name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
