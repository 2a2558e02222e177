//! The parser: tokens to an untyped tree (`Node` expressions, `Stmt` statements), with
//! C#'s precedence. Names are not resolved here (that is `check`), but the shape is
//! final: a null-conditional `a?.b.c` becomes `NullCond { target: a, body: Hole.b.c }`,
//! so the rest of the chain is skipped when `a` is null, as in C#. Nesting is bounded
//! (parser recursion and tree depth), so no input can exhaust the stack here or in the
//! passes that walk the tree.

use super::lexer::{lex, InterpPart, Tok, Token, P};
use super::ExprError;

/// Deepest tree accepted; the checker and the evaluator recurse once per level.
pub(crate) const MAX_DEPTH: u32 = 160;
/// Deepest parser recursion (parentheses, unary operators, nested statements).
const MAX_NEST: u32 = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Byte offset in the source, for errors.
    pub at: usize,
    pub depth: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Not,
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Coalesce,
}

impl BinOp {
    pub(crate) fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Coalesce => "??",
        }
    }
}

/// A type as written in a cast, a generic argument or a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeName {
    /// Dotted name as written ("string", "System.String", "JObject").
    pub name: String,
    pub array: bool,
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    /// `name:` of a named argument.
    pub name: Option<(String, usize)>,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IPart {
    Text(String),
    Hole(Node, Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Lit(Lit),
    Interp(Vec<IPart>),
    Name(String),
    /// The value a null-conditional tested, inside the `body` of a `NullCond`.
    Hole,
    Member {
        target: Box<Node>,
        name: String,
    },
    Call {
        target: Box<Node>,
        name: String,
        generic: Option<TypeName>,
        args: Vec<Arg>,
    },
    Index {
        target: Box<Node>,
        index: Box<Node>,
    },
    Unary {
        op: UnOp,
        operand: Box<Node>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Cond {
        cond: Box<Node>,
        then: Box<Node>,
        otherwise: Box<Node>,
    },
    Cast {
        ty: TypeName,
        operand: Box<Node>,
    },
    /// `target?.rest`: `body` is the rest of the chain applied to `Hole`.
    NullCond {
        target: Box<Node>,
        body: Box<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stmt {
    /// `var x = e;`, `string x = e;`, `string x;`.
    Decl {
        ty: Option<TypeName>,
        name: String,
        at: usize,
        init: Option<Node>,
    },
    /// `x = e;` or `x += e;`.
    Assign {
        name: String,
        at: usize,
        value: Node,
        add: bool,
    },
    If {
        cond: Node,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
        at: usize,
    },
    Return {
        value: Node,
        at: usize,
    },
    Block(Vec<Stmt>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Program {
    Expr(Node),
    Block(Vec<Stmt>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A block body when the text has a top-level `;` or starts like a statement.
    Auto,
    Block,
}

pub(crate) fn parse(src: &str, mode: Mode) -> Result<Program, ExprError> {
    let toks = lex(src, 0, src.len())?;
    let block = match mode {
        Mode::Block => true,
        Mode::Auto => {
            toks.iter().any(|t| t.tok == Tok::P(P::Semi))
                || matches!(&toks[0].tok, Tok::Ident(s) if s == "return" || s == "var" || s == "if")
        }
    };
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        nest: 0,
    };
    if block {
        let mut stmts = Vec::new();
        while !p.at_eof() {
            stmts.push(p.stmt()?);
        }
        if stmts.is_empty() {
            return Err(ExprError::new(0, "empty statement block"));
        }
        Ok(Program::Block(stmts))
    } else {
        if p.at_eof() {
            return Err(ExprError::new(0, "empty expression"));
        }
        let e = p.expr()?;
        p.expect_eof()?;
        Ok(Program::Expr(e))
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    nest: u32,
}

fn mk(kind: Kind, at: usize) -> Result<Node, ExprError> {
    let child = |n: &Node| n.depth;
    let depth = 1 + match &kind {
        Kind::Lit(_) | Kind::Name(_) | Kind::Hole => 0,
        Kind::Interp(parts) => parts
            .iter()
            .map(|p| match p {
                IPart::Hole(n, _) => n.depth,
                IPart::Text(_) => 0,
            })
            .max()
            .unwrap_or(0),
        Kind::Member { target, .. } => child(target),
        Kind::Call { target, args, .. } => args
            .iter()
            .map(|a| a.value.depth)
            .max()
            .unwrap_or(0)
            .max(child(target)),
        Kind::Index { target, index } => child(target).max(child(index)),
        Kind::Unary { operand, .. } | Kind::Cast { operand, .. } => child(operand),
        Kind::Binary { lhs, rhs, .. } => child(lhs).max(child(rhs)),
        Kind::Cond {
            cond,
            then,
            otherwise,
        } => child(cond).max(child(then)).max(child(otherwise)),
        Kind::NullCond { target, body } => child(target).max(child(body)),
    };
    if depth > MAX_DEPTH {
        return Err(ExprError::new(at, "expression is nested too deeply"));
    }
    Ok(Node { kind, at, depth })
}

/// Keywords that are never names (a subset of C#'s, the ones that matter here).
const KEYWORDS: &[&str] = &[
    "true", "false", "null", "var", "return", "if", "else", "new", "typeof", "is", "as", "for",
    "foreach", "while", "do", "switch", "try", "catch", "throw", "out", "ref", "this",
];

/// Built-in C# type keywords: `(string)x` is always a cast.
const TYPE_KEYWORDS: &[&str] = &[
    "string", "int", "long", "bool", "double", "object", "float", "decimal", "char", "byte",
    "short", "uint", "ulong",
];

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.peek_n(0)
    }

    fn peek_n(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i].tok
    }

    fn at(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].at
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn at_eof(&self) -> bool {
        *self.peek() == Tok::Eof
    }

    fn is(&self, p: P) -> bool {
        *self.peek() == Tok::P(p)
    }

    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Ident(i) if i == s)
    }

    fn eat(&mut self, p: P) -> bool {
        if self.is(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: P) -> Result<(), ExprError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{}'", p.text())))
        }
    }

    fn expect_eof(&self) -> Result<(), ExprError> {
        if self.at_eof() {
            Ok(())
        } else {
            Err(self.unexpected("end of expression"))
        }
    }

    fn unexpected(&self, wanted: &str) -> ExprError {
        let found = match self.peek() {
            Tok::Eof => "end of input".to_string(),
            Tok::P(p) => format!("'{}'", p.text()),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(_) | Tok::Double(_) => "a number".to_string(),
            Tok::Str(_) | Tok::Interp(_) => "a string".to_string(),
            Tok::Char(_) => "a char".to_string(),
        };
        ExprError::new(self.at(), format!("expected {wanted}, found {found}"))
    }

    fn ident(&mut self, what: &str) -> Result<(String, usize), ExprError> {
        let at = self.at();
        match self.peek() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => {
                let s = s.clone();
                self.bump();
                Ok((s, at))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.nest += 1;
        if self.nest > MAX_NEST {
            return Err(ExprError::new(self.at(), "expression is nested too deeply"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nest = self.nest.saturating_sub(1);
    }

    // ---- statements ----

    fn stmt(&mut self) -> Result<Stmt, ExprError> {
        self.enter()?;
        let r = self.stmt_inner();
        self.leave();
        r
    }

    fn stmt_inner(&mut self) -> Result<Stmt, ExprError> {
        let at = self.at();
        if self.eat(P::LBrace) {
            let mut body = Vec::new();
            while !self.is(P::RBrace) {
                if self.at_eof() {
                    return Err(self.unexpected("'}'"));
                }
                body.push(self.stmt()?);
            }
            self.bump();
            return Ok(Stmt::Block(body));
        }
        if self.is_ident("return") {
            self.bump();
            let value = self.expr()?;
            self.expect(P::Semi)?;
            return Ok(Stmt::Return { value, at });
        }
        if self.is_ident("if") {
            self.bump();
            self.expect(P::LParen)?;
            let cond = self.expr()?;
            self.expect(P::RParen)?;
            let then = self.body()?;
            let otherwise = if self.is_ident("else") {
                self.bump();
                self.body()?
            } else {
                Vec::new()
            };
            return Ok(Stmt::If {
                cond,
                then,
                otherwise,
                at,
            });
        }
        if self.is_ident("var") && matches!(self.peek_n(1), Tok::Ident(_)) {
            self.bump();
            let (name, at) = self.ident("a variable name")?;
            self.expect(P::Assign)?;
            let init = self.expr()?;
            self.expect(P::Semi)?;
            return Ok(Stmt::Decl {
                ty: None,
                name,
                at,
                init: Some(init),
            });
        }
        // `T x = e;` / `T x;` where T is a type name, possibly `T[]` or `T?`.
        if let Some(ty) = self.try_decl_type() {
            let (name, at) = self.ident("a variable name")?;
            let init = if self.eat(P::Assign) {
                Some(self.expr()?)
            } else {
                None
            };
            self.expect(P::Semi)?;
            return Ok(Stmt::Decl {
                ty: Some(ty),
                name,
                at,
                init,
            });
        }
        if let (Tok::Ident(name), Tok::P(op @ (P::Assign | P::PlusAssign))) =
            (self.peek().clone(), self.peek_n(1).clone())
        {
            if !KEYWORDS.contains(&name.as_str()) {
                self.bump();
                self.bump();
                let value = self.expr()?;
                self.expect(P::Semi)?;
                return Ok(Stmt::Assign {
                    name,
                    at,
                    value,
                    add: op == P::PlusAssign,
                });
            }
        }
        Err(ExprError::new(
            at,
            "statement blocks support only variable declarations, assignments, if/else and return",
        ))
    }

    /// The body of an `if` or `else`: a braced block or one statement.
    fn body(&mut self) -> Result<Vec<Stmt>, ExprError> {
        match self.stmt()? {
            Stmt::Block(b) => Ok(b),
            s => Ok(vec![s]),
        }
    }

    /// At `T name` (a declaration): parses and returns T. Leaves the position unchanged otherwise.
    fn try_decl_type(&mut self) -> Option<TypeName> {
        let save = self.pos;
        if let Some(ty) = self.type_name() {
            if matches!(self.peek(), Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()))
                && matches!(self.peek_n(1), Tok::P(P::Assign | P::Semi))
            {
                return Some(ty);
            }
        }
        self.pos = save;
        None
    }

    /// A type: dotted identifiers, optional `<...>` is not allowed, optional `[]` and `?`.
    /// `None` (position unspecified) when the tokens are not a type.
    fn type_name(&mut self) -> Option<TypeName> {
        let at = self.at();
        let mut name = match self.peek() {
            Tok::Ident(s) if !KEYWORDS.contains(&s.as_str()) => s.clone(),
            _ => return None,
        };
        self.bump();
        while self.is(P::Dot) {
            match self.peek_n(1) {
                Tok::Ident(s) => {
                    name.push('.');
                    name.push_str(s);
                    self.bump();
                    self.bump();
                }
                _ => return None,
            }
        }
        self.eat(P::Question);
        let mut array = false;
        if self.is(P::LBracket) && *self.peek_n(1) == Tok::P(P::RBracket) {
            self.bump();
            self.bump();
            array = true;
        }
        Some(TypeName { name, array, at })
    }

    // ---- expressions ----

    pub(crate) fn expr(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let r = self.conditional();
        self.leave();
        r
    }

    fn conditional(&mut self) -> Result<Node, ExprError> {
        let cond = self.binary(0)?;
        if !self.is(P::Question) {
            return Ok(cond);
        }
        let at = self.at();
        self.bump();
        let then = self.expr()?;
        self.expect(P::Colon)?;
        let otherwise = self.expr()?;
        mk(
            Kind::Cond {
                cond: Box::new(cond),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            },
            at,
        )
    }

    /// Binary operators by precedence climbing (one frame per precedence step, not one
    /// per grammar level): `??` (lowest, right-associative), `||`, `&&`, equality,
    /// relational, additive, multiplicative.
    fn binary(&mut self, min: u8) -> Result<Node, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let Some((op, prec)) = self.binop()? else {
                return Ok(lhs);
            };
            if prec < min {
                return Ok(lhs);
            }
            let at = self.at();
            self.bump();
            let rhs = if op == BinOp::Coalesce {
                self.enter()?;
                let r = self.binary(prec);
                self.leave();
                r?
            } else {
                self.binary(prec + 1)?
            };
            lhs = binary(op, lhs, rhs, at)?;
        }
    }

    /// The binary operator at the current token and its precedence.
    fn binop(&self) -> Result<Option<(BinOp, u8)>, ExprError> {
        Ok(Some(match self.peek() {
            Tok::P(P::QQ) => (BinOp::Coalesce, 1),
            Tok::P(P::OrOr) => (BinOp::Or, 2),
            Tok::P(P::AndAnd) => (BinOp::And, 3),
            Tok::P(P::EqEq) => (BinOp::Eq, 4),
            Tok::P(P::NotEq) => (BinOp::Ne, 4),
            Tok::P(P::Lt) => (BinOp::Lt, 5),
            Tok::P(P::Le) => (BinOp::Le, 5),
            Tok::P(P::Gt) => (BinOp::Gt, 5),
            Tok::P(P::Ge) => (BinOp::Ge, 5),
            Tok::P(P::Plus) => (BinOp::Add, 6),
            Tok::P(P::Minus) => (BinOp::Sub, 6),
            Tok::P(P::Star) => (BinOp::Mul, 7),
            Tok::P(P::Slash) => (BinOp::Div, 7),
            Tok::P(P::Percent) => (BinOp::Rem, 7),
            Tok::Ident(s) if s == "is" || s == "as" => {
                return Err(ExprError::new(
                    self.at(),
                    format!("the '{s}' operator is not supported; use a cast"),
                ))
            }
            _ => return Ok(None),
        }))
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let r = self.unary_inner();
        self.leave();
        r
    }

    fn unary_inner(&mut self) -> Result<Node, ExprError> {
        let at = self.at();
        let op = match self.peek() {
            Tok::P(P::Bang) => Some(UnOp::Not),
            Tok::P(P::Minus) => Some(UnOp::Neg),
            Tok::P(P::Plus) => Some(UnOp::Plus),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let operand = self.unary()?;
            // Fold `-literal` so that `-9223372036854775807` stays a constant.
            if op == UnOp::Neg {
                match operand.kind {
                    Kind::Lit(Lit::Int(i)) => return mk(Kind::Lit(Lit::Int(i.wrapping_neg())), at),
                    Kind::Lit(Lit::Double(d)) => return mk(Kind::Lit(Lit::Double(-d)), at),
                    _ => {}
                }
            }
            return mk(
                Kind::Unary {
                    op,
                    operand: Box::new(operand),
                },
                at,
            );
        }
        if self.is(P::LParen) {
            if let Some(ty) = self.try_cast() {
                let operand = self.unary()?;
                return mk(
                    Kind::Cast {
                        ty,
                        operand: Box::new(operand),
                    },
                    at,
                );
            }
        }
        let prim = self.primary()?;
        self.postfix(prim)
    }

    /// At '(': a cast `(T)` followed by something a cast applies to, else nothing consumed.
    fn try_cast(&mut self) -> Option<TypeName> {
        let save = self.pos;
        self.bump();
        let keyword = matches!(self.peek(), Tok::Ident(s) if TYPE_KEYWORDS.contains(&s.as_str()));
        if let Some(ty) = self.type_name() {
            if self.eat(P::RParen) {
                let castable = match self.peek() {
                    Tok::Ident(s) => !matches!(s.as_str(), "is" | "as"),
                    Tok::Int(_)
                    | Tok::Double(_)
                    | Tok::Str(_)
                    | Tok::Char(_)
                    | Tok::Interp(_)
                    | Tok::P(P::LParen)
                    | Tok::P(P::Bang) => true,
                    Tok::P(P::Minus | P::Plus) => keyword,
                    _ => false,
                };
                if castable {
                    return Some(ty);
                }
            }
        }
        self.pos = save;
        None
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let at = self.at();
        let starts_primary = matches!(
            self.peek(),
            Tok::Int(_)
                | Tok::Double(_)
                | Tok::Str(_)
                | Tok::Char(_)
                | Tok::Interp(_)
                | Tok::Ident(_)
                | Tok::P(P::LParen)
        );
        if !starts_primary {
            return Err(self.unexpected("an expression"));
        }
        match self.bump() {
            Tok::Int(i) => mk(Kind::Lit(Lit::Int(i)), at),
            Tok::Double(d) => mk(Kind::Lit(Lit::Double(d)), at),
            Tok::Str(s) | Tok::Char(s) => mk(Kind::Lit(Lit::Str(s)), at),
            Tok::Interp(parts) => self.interpolation(parts, at),
            Tok::Ident(s) => match s.as_str() {
                "true" => mk(Kind::Lit(Lit::Bool(true)), at),
                "false" => mk(Kind::Lit(Lit::Bool(false)), at),
                "null" => mk(Kind::Lit(Lit::Null), at),
                "new" | "typeof" | "this" | "throw" => {
                    Err(ExprError::new(at, format!("'{s}' is not supported")))
                }
                _ if KEYWORDS.contains(&s.as_str()) => {
                    Err(ExprError::new(at, format!("unexpected keyword '{s}'")))
                }
                _ => mk(Kind::Name(s), at),
            },
            _ => {
                let e = self.expr()?;
                self.expect(P::RParen)?;
                Ok(e)
            }
        }
    }

    fn interpolation(&mut self, parts: Vec<InterpPart>, at: usize) -> Result<Node, ExprError> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                InterpPart::Text(t) => out.push(IPart::Text(t)),
                InterpPart::Hole { start, end, format } => {
                    let toks = lex(self.src, start, end)?;
                    let mut sub = Parser {
                        src: self.src,
                        toks,
                        pos: 0,
                        nest: self.nest,
                    };
                    if sub.at_eof() {
                        return Err(ExprError::new(start, "empty interpolation hole"));
                    }
                    let e = sub.expr()?;
                    sub.expect_eof()?;
                    out.push(IPart::Hole(e, format));
                }
            }
        }
        mk(Kind::Interp(out), at)
    }

    /// Member accesses, calls and indexes after a primary expression.
    fn postfix(&mut self, mut node: Node) -> Result<Node, ExprError> {
        loop {
            match self.peek() {
                Tok::P(P::Dot) => {
                    self.bump();
                    node = self.member(node)?;
                }
                Tok::P(P::LBracket) => {
                    node = self.index(node)?;
                }
                Tok::P(P::LParen) => {
                    return Err(ExprError::new(
                        self.at(),
                        "only methods can be called (use a member like x.Method(...))",
                    ));
                }
                Tok::P(P::QDot) => {
                    let at = self.at();
                    self.bump();
                    let hole = mk(Kind::Hole, at)?;
                    let first = self.member(hole)?;
                    return self.null_cond(node, first, at);
                }
                Tok::P(P::Question) if *self.peek_n(1) == Tok::P(P::LBracket) => {
                    let at = self.at();
                    self.bump();
                    let hole = mk(Kind::Hole, at)?;
                    let first = self.index(hole)?;
                    return self.null_cond(node, first, at);
                }
                _ => return Ok(node),
            }
        }
    }

    fn null_cond(&mut self, target: Node, first: Node, at: usize) -> Result<Node, ExprError> {
        self.enter()?;
        let body = self.postfix(first);
        self.leave();
        mk(
            Kind::NullCond {
                target: Box::new(target),
                body: Box::new(body?),
            },
            at,
        )
    }

    /// After '.': a member name, then a call if '(' or '<T>(' follows.
    fn member(&mut self, target: Node) -> Result<Node, ExprError> {
        let (name, at) = self.ident("a member name")?;
        let generic = self.try_generic();
        if self.is(P::LParen) {
            self.bump();
            let args = self.args()?;
            return mk(
                Kind::Call {
                    target: Box::new(target),
                    name,
                    generic,
                    args,
                },
                at,
            );
        }
        if generic.is_some() {
            return Err(self.unexpected("'('"));
        }
        mk(
            Kind::Member {
                target: Box::new(target),
                name,
            },
            at,
        )
    }

    /// `<T>` followed by '(' after a member name; nothing consumed otherwise.
    fn try_generic(&mut self) -> Option<TypeName> {
        if !self.is(P::Lt) {
            return None;
        }
        let save = self.pos;
        self.bump();
        if let Some(ty) = self.type_name() {
            if self.eat(P::Gt) && self.is(P::LParen) {
                return Some(ty);
            }
        }
        self.pos = save;
        None
    }

    /// After '(': arguments up to and including ')'.
    fn args(&mut self) -> Result<Vec<Arg>, ExprError> {
        let mut args = Vec::new();
        if self.eat(P::RParen) {
            return Ok(args);
        }
        loop {
            let name = match (self.peek().clone(), self.peek_n(1)) {
                (Tok::Ident(n), Tok::P(P::Colon)) => {
                    let at = self.at();
                    self.bump();
                    self.bump();
                    Some((n, at))
                }
                (Tok::Ident(n), Tok::Ident(_)) if n == "out" || n == "ref" => {
                    return Err(ExprError::new(
                        self.at(),
                        "out and ref arguments are not supported",
                    ))
                }
                _ => None,
            };
            let value = self.expr()?;
            args.push(Arg { name, value });
            if self.eat(P::RParen) {
                return Ok(args);
            }
            self.expect(P::Comma)?;
        }
    }

    fn index(&mut self, target: Node) -> Result<Node, ExprError> {
        let at = self.at();
        self.expect(P::LBracket)?;
        let index = self.expr()?;
        if self.is(P::Comma) {
            return Err(ExprError::new(
                self.at(),
                "multi-dimensional indexes are not supported",
            ));
        }
        self.expect(P::RBracket)?;
        mk(
            Kind::Index {
                target: Box::new(target),
                index: Box::new(index),
            },
            at,
        )
    }
}

fn binary(op: BinOp, lhs: Node, rhs: Node, at: usize) -> Result<Node, ExprError> {
    mk(
        Kind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(src: &str) -> Node {
        match parse(src, Mode::Auto).unwrap() {
            Program::Expr(e) => e,
            p => panic!("not an expression: {p:?}"),
        }
    }

    fn err(src: &str) -> ExprError {
        parse(src, Mode::Auto).unwrap_err()
    }

    /// A compact rendering of the tree, to assert on shape.
    fn show(n: &Node) -> String {
        match &n.kind {
            Kind::Lit(Lit::Str(s)) => format!("{s:?}"),
            Kind::Lit(Lit::Int(i)) => i.to_string(),
            Kind::Lit(l) => format!("{l:?}"),
            Kind::Interp(p) => format!("interp{}", p.len()),
            Kind::Name(s) => s.clone(),
            Kind::Hole => "_".into(),
            Kind::Member { target, name } => format!("{}.{name}", show(target)),
            Kind::Call {
                target,
                name,
                generic,
                args,
            } => format!(
                "{}.{name}{}({})",
                show(target),
                generic
                    .as_ref()
                    .map(|g| format!("<{}>", g.name))
                    .unwrap_or_default(),
                args.iter()
                    .map(|a| match &a.name {
                        Some((n, _)) => format!("{n}: {}", show(&a.value)),
                        None => show(&a.value),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::Index { target, index } => format!("{}[{}]", show(target), show(index)),
            Kind::Unary { op, operand } => format!("({op:?} {})", show(operand)),
            Kind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", show(lhs), op.text(), show(rhs))
            }
            Kind::Cond {
                cond,
                then,
                otherwise,
            } => format!("({} ? {} : {})", show(cond), show(then), show(otherwise)),
            Kind::Cast { ty, operand } => format!("(({}){})", ty.name, show(operand)),
            Kind::NullCond { target, body } => format!("[{} ?> {}]", show(target), show(body)),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(show(&expr("1 + 2 * 3 - 4")), "((1 + (2 * 3)) - 4)");
        assert_eq!(
            show(&expr("a == b && c != d || !e")),
            "(((a == b) && (c != d)) || (Not e))"
        );
        assert_eq!(show(&expr("a ?? b ?? c")), "(a ?? (b ?? c))");
        assert_eq!(show(&expr("a ? b : c ? d : e")), "(a ? b : (c ? d : e))");
        assert_eq!(show(&expr("a < b == c >= d")), "((a < b) == (c >= d))");
        assert_eq!(show(&expr("-x.y")), "(Neg x.y)");
        assert_eq!(show(&expr("-5")), "-5");
    }

    #[test]
    fn members_calls_generics_named_args() {
        assert_eq!(
            show(&expr(
                r#"context.Variables.GetValueOrDefault<string>("a", "b")"#
            )),
            r#"context.Variables.GetValueOrDefault<string>("a", "b")"#
        );
        assert_eq!(
            show(&expr(
                "context.Request.Body.As<string>(preserveContent: true)"
            )),
            "context.Request.Body.As<string>(preserveContent: Bool(true))"
        );
        assert_eq!(show(&expr("a.b[1].c()")), "a.b[1].c()");
        // `<` that is not a generic stays a comparison; `< T > (` is a generic call, as
        // C#'s disambiguation rule says.
        assert_eq!(show(&expr("a.b < c")), "(a.b < c)");
        assert_eq!(show(&expr("a.b < c > d")), "((a.b < c) > d)");
        assert_eq!(show(&expr("a.b < c > (d)")), "a.b<c>(d)");
    }

    #[test]
    fn null_conditional_covers_rest_of_chain() {
        assert_eq!(show(&expr("a?.b.c")), "[a ?> _.b.c]");
        assert_eq!(show(&expr("a?.b?.c()")), "[a ?> [_.b ?> _.c()]]");
        assert_eq!(show(&expr("a?[0].b")), "[a ?> _[0].b]");
        assert_eq!(show(&expr("a?.b ?? c")), "([a ?> _.b] ?? c)");
    }

    #[test]
    fn casts() {
        assert_eq!(show(&expr("(string)a.b")), "((string)a.b)");
        assert_eq!(show(&expr("(int)-1")), "((int)-1)");
        assert_eq!(show(&expr("(a) - 1")), "(a - 1)");
        assert_eq!(show(&expr("(DateTime)x")), "((DateTime)x)");
        assert_eq!(show(&expr("(string[])x")), "((string)x)");
        assert_eq!(show(&expr("(a)")), "a");
    }

    #[test]
    fn blocks() {
        let p = parse(
            "var x = 1; string y; if (x == 1) { return \"a\"; } else return y; ",
            Mode::Auto,
        )
        .unwrap();
        let Program::Block(stmts) = p else { panic!() };
        assert_eq!(stmts.len(), 3);
        assert!(
            matches!(&stmts[2], Stmt::If { then, otherwise, .. } if then.len() == 1 && otherwise.len() == 1)
        );
        assert!(matches!(
            parse("return 1;", Mode::Auto).unwrap(),
            Program::Block(_)
        ));
        assert!(matches!(
            parse("x += \"a\"; return x;", Mode::Block).unwrap(),
            Program::Block(s) if matches!(&s[0], Stmt::Assign { add: true, .. })
        ));
        let e = parse("foreach (var a in b) { }", Mode::Block).unwrap_err();
        assert!(e.message.contains("only variable declarations"), "{e}");
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn syntax_errors_have_offsets() {
        assert_eq!(err("1 +").offset, 3);
        assert_eq!(err("(1").offset, 2);
        assert_eq!(err("a b").offset, 2);
        assert_eq!(err("f(1)").offset, 1);
        assert_eq!(err("new X()").offset, 0);
        assert_eq!(err("a.").offset, 2);
        assert_eq!(err("a is string").offset, 2);
        assert_eq!(err("").offset, 0);
        assert_eq!(err("return 1").offset, 8);
        assert!(err("x.M(out y)").message.contains("out"));
        assert_eq!(err("$\"a{}\"").offset, 4);
        // Errors inside interpolation holes point into the source.
        assert_eq!(err("$\"ab{1 +}\"").offset, 8);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deep).message.contains("too deeply"));
        let bangs = format!("{}true", "!".repeat(10_000));
        assert!(err(&bangs).message.contains("too deeply"));
        let chain = vec!["1"; 10_000].join(" + ");
        assert!(err(&chain).message.contains("too deeply"));
        let members = format!("a{}", ".b".repeat(10_000));
        assert!(err(&members).message.contains("too deeply"));
        let conds = format!("a{}", "?.b".repeat(10_000));
        assert!(err(&conds).message.contains("too deeply"));
        let blocks = format!("{}return 1;{}", "{".repeat(10_000), "}".repeat(10_000));
        assert!(parse(&blocks, Mode::Block)
            .unwrap_err()
            .message
            .contains("too deeply"));
        // Realistic sizes are fine.
        let ok = vec!["\"a\""; 100].join(" + ");
        parse(&ok, Mode::Auto).unwrap();
    }
}
