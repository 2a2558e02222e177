//! The type checker: the untyped tree to the typed tree (`Ir`) that `eval` runs. Every
//! name and member is resolved here, once: `context.Request.Headers.GetValueOrDefault`
//! becomes `Ir::Dict { dict: Headers(Request), op: Get }`, a string method becomes a
//! `Method` variant, and C#'s static rules are applied (operand types, argument counts
//! and types, implicit numeric conversions, definite `return`). Values typed `object`
//! (`context.Variables[...]`) are the one dynamic corner: a cast or an argument position
//! inserts a run-time check (`Ir::Unbox`). The `context` objects that are not values
//! (Request, Headers, Variables...) exist only here, as `Handle`s.

use super::parser::{Arg, BinOp, IPart, Kind, Lit, Node, Program, Stmt, TypeName, UnOp};
use super::{ExprError, Type};

/// A compiled program.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub ty: Type,
    /// Number of local slots (`var`s and null-conditional temporaries).
    pub slots: usize,
    pub body: Body,
    pub reads_request_body: bool,
    pub reads_response_body: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Expr(Ir),
    Block(Vec<TStmt>),
}

#[derive(Debug, Clone)]
pub(crate) enum TStmt {
    Set(u32, Ir),
    If(Ir, Vec<TStmt>, Vec<TStmt>),
    Return(Ir),
}

/// A constant. Strings are boxed (not `Rc`) so a compiled expression is `Send + Sync`;
/// evaluation borrows them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
}

#[derive(Debug, Clone)]
pub(crate) enum Ir {
    Const(Const),
    Local(u32),
    Field(Field),
    /// Whether a nullable part of the context (`context.Subscription`...) is absent.
    IsNull(Parent),
    Dict {
        dict: Dict,
        key: Box<Ir>,
        op: DictOp,
    },
    Var {
        key: Box<Ir>,
        op: VarOp,
    },
    Not(Box<Ir>),
    Neg(Box<Ir>),
    Arith(Arith, Box<Ir>, Box<Ir>),
    /// String concatenation of every part, each converted as C# does.
    Concat(Vec<Ir>),
    Cmp(CmpOp, Box<Ir>, Box<Ir>),
    And(Box<Ir>, Box<Ir>),
    Or(Box<Ir>, Box<Ir>),
    Coalesce(Box<Ir>, Box<Ir>),
    Cond(Box<Ir>, Box<Ir>, Box<Ir>),
    /// A checked conversion from `object`: an error unless the value has this type.
    Unbox(Type, Box<Ir>),
    ToDouble(Box<Ir>),
    /// `(int)double`: truncation.
    ToInt(Box<Ir>),
    /// Evaluates `target`; null gives null, else stores it in `slot` and evaluates `body`.
    NullCond {
        target: Box<Ir>,
        slot: u32,
        body: Box<Ir>,
    },
    /// A method; for instance methods `args[0]` is the receiver.
    Call(Method, Vec<Ir>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// The nullable parts of `context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parent {
    Response,
    Subscription,
    Product,
    LastError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Method,
    UrlPath,
    UrlHost,
    UrlPort,
    UrlScheme,
    UrlQueryString,
    UrlString,
    IpAddress,
    Body(Side),
    StatusCode,
    StatusReason,
    SubscriptionId,
    SubscriptionKey,
    SubscriptionName,
    ProductId,
    ApiId,
    ApiName,
    ApiPath,
    OperationId,
    ErrorSource,
    ErrorReason,
    ErrorMessage,
    ErrorScope,
    ErrorSection,
    ErrorPolicyId,
    GatewayId,
    Now,
}

#[derive(Debug, Clone)]
pub(crate) enum Dict {
    Headers(Side),
    Query,
    Matched,
    Claims(Box<Ir>),
}

#[derive(Debug, Clone)]
pub(crate) enum DictOp {
    /// `d[key]`: all values (a string for MatchedParameters); missing is an error.
    Index,
    /// `GetValueOrDefault(key, default)`: values joined with ",".
    Get(Option<Box<Ir>>),
    Contains,
}

#[derive(Debug, Clone)]
pub(crate) enum VarOp {
    Index,
    Get { ty: Type, default: Option<Box<Ir>> },
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// String comparison mode (culture-sensitive modes compare ordinally).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrCmp {
    Ordinal,
    IgnoreCase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrimSide {
    Both,
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtField {
    Subject,
    Issuer,
    Audiences,
    Id,
    Algorithm,
    ExpirationTime,
    NotBefore,
    IssuedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatePart {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Ticks,
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Method {
    ToLower,
    ToUpper,
    Contains(StrCmp),
    StartsWith(StrCmp),
    EndsWith(StrCmp),
    IndexOf(StrCmp),
    LastIndexOf(StrCmp),
    /// `a.Equals(b)`: `a` must not be null.
    Equals(StrCmp),
    /// `string.Equals(a, b)`.
    StaticEquals(StrCmp),
    /// `Equals` on a non-string: value equality.
    ObjEquals,
    Substring,
    Replace,
    Split {
        remove_empty: bool,
        trim: bool,
    },
    Trim(TrimSide),
    PadLeft,
    PadRight,
    StrLength,
    CharAt,
    IsNullOrEmpty,
    IsNullOrWhiteSpace,
    /// `string.Join(sep, array)` or `string.Join(sep, a, b, ...)`.
    Join,
    Format,
    ToStr,
    /// `x.ToString(format)` and `{x:format}`.
    ToStrFormat,
    Parse(Type),
    AsJwt,
    Jwt(JwtField),
    ArrLength,
    ArrFirst {
        or_default: bool,
    },
    ArrLast {
        or_default: bool,
    },
    ArrContains,
    ArrIndex,
    /// `AddSeconds(n)` etc.: ticks per unit.
    AddTime(f64),
    DatePart(DatePart),
    HasValue,
    ValueOf,
}

/// Compiles a parsed program.
pub(crate) fn check(program: &Program) -> Result<Code, ExprError> {
    let mut c = Checker {
        scopes: vec![Vec::new()],
        next_slot: 0,
        hole: None,
        reads_request_body: false,
        reads_response_body: false,
    };
    let (body, ty) = match program {
        Program::Expr(node) => {
            let (ir, ty) = c.value(node)?;
            (Body::Expr(ir), ty)
        }
        Program::Block(stmts) => {
            let mut returns = Vec::new();
            let (mut out, always) = c.stmts(stmts, &mut returns)?;
            if !always {
                let at = last_offset(stmts);
                return Err(ExprError::new(at, "not all code paths return a value"));
            }
            let mut ty = Type::Null;
            for &(t, at) in &returns {
                ty = unify(ty, t).ok_or_else(|| {
                    ExprError::new(
                        at,
                        format!("return types differ: cannot convert '{t}' to '{ty}'"),
                    )
                })?;
            }
            coerce_returns(&mut out, ty);
            (Body::Block(out), ty)
        }
    };
    Ok(Code {
        ty,
        slots: c.next_slot as usize,
        body,
        reads_request_body: c.reads_request_body,
        reads_response_body: c.reads_response_body,
    })
}

fn last_offset(stmts: &[Stmt]) -> usize {
    match stmts.last() {
        Some(Stmt::Decl { at, .. })
        | Some(Stmt::Assign { at, .. })
        | Some(Stmt::If { at, .. })
        | Some(Stmt::Return { at, .. }) => *at,
        Some(Stmt::Block(b)) => last_offset(b),
        None => 0,
    }
}

/// Wraps `return` values whose type is narrower than the block's (int in a double block).
fn coerce_returns(stmts: &mut [TStmt], ty: Type) {
    for s in stmts {
        match s {
            // ToDouble leaves doubles and nulls as they are.
            TStmt::Return(ir) if ty == Type::Double => {
                let inner = std::mem::replace(ir, Ir::Const(Const::Null));
                *ir = Ir::ToDouble(Box::new(inner));
            }
            TStmt::If(_, a, b) => {
                coerce_returns(a, ty);
                coerce_returns(b, ty);
            }
            _ => {}
        }
    }
}

/// The common type of two branches (`?:`, `??`, `return`s), as C#'s implicit conversions allow.
fn unify(a: Type, b: Type) -> Option<Type> {
    match (a, b) {
        _ if a == b => Some(a),
        (Type::Null, t) | (t, Type::Null) => Some(t),
        (Type::Int, Type::Double) | (Type::Double, Type::Int) => Some(Type::Double),
        (Type::Object, _) | (_, Type::Object) => Some(Type::Object),
        _ => None,
    }
}

fn is_numeric(t: Type) -> bool {
    matches!(t, Type::Int | Type::Double)
}

/// Implicit conversion of a value already known to be compatible.
fn coerce(ir: Ir, from: Type, to: Type) -> Ir {
    match (from, to) {
        _ if from == to => ir,
        (Type::Int, Type::Double) => Ir::ToDouble(Box::new(ir)),
        (Type::Object, t) if t != Type::Null => Ir::Unbox(t, Box::new(ir)),
        _ => ir,
    }
}

/// Static types the checker knows as names (`DateTime.UtcNow`, `string.Join`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Static {
    DateTime,
    String,
    Int,
    Double,
    Bool,
    StringComparison,
    StringSplitOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnumVal {
    Cmp(StrCmp),
    Split { remove_empty: bool, trim: bool },
}

/// Parts of `context` that are not values.
#[derive(Debug, Clone)]
enum Handle {
    Context,
    Request,
    Url,
    Query,
    Headers(Side),
    Matched,
    Body(Side),
    Response,
    Subscription,
    Product,
    Api,
    Operation,
    Variables,
    LastError,
    Deployment,
    Claims(Box<Ir>),
}

impl Handle {
    fn name(&self) -> &'static str {
        match self {
            Handle::Context => "context",
            Handle::Request => "context.Request",
            Handle::Url => "context.Request.Url",
            Handle::Query => "context.Request.Url.Query",
            Handle::Headers(Side::Request) => "context.Request.Headers",
            Handle::Headers(Side::Response) => "context.Response.Headers",
            Handle::Matched => "context.Request.MatchedParameters",
            Handle::Body(Side::Request) => "context.Request.Body",
            Handle::Body(Side::Response) => "context.Response.Body",
            Handle::Response => "context.Response",
            Handle::Subscription => "context.Subscription",
            Handle::Product => "context.Product",
            Handle::Api => "context.Api",
            Handle::Operation => "context.Operation",
            Handle::Variables => "context.Variables",
            Handle::LastError => "context.LastError",
            Handle::Deployment => "context.Deployment",
            Handle::Claims(_) => "Jwt.Claims",
        }
    }

    fn parent(&self) -> Option<Parent> {
        match self {
            Handle::Response => Some(Parent::Response),
            Handle::Subscription => Some(Parent::Subscription),
            Handle::Product => Some(Parent::Product),
            Handle::LastError => Some(Parent::LastError),
            _ => None,
        }
    }

    /// Supported members, for messages.
    fn members(&self) -> &'static str {
        match self {
            Handle::Context => "Request, Response, Subscription, Product, Api, Operation, Variables, LastError, Deployment, Timestamp",
            Handle::Request => "Method, Url, Headers, IpAddress, MatchedParameters, Body",
            Handle::Url => "Path, Query, QueryString, Host, Port, Scheme, ToString()",
            Handle::Query | Handle::Headers(_) | Handle::Claims(_) | Handle::Matched => {
                "GetValueOrDefault(name[, default]), ContainsKey(name), [name]"
            }
            Handle::Variables => {
                "GetValueOrDefault<T>(name[, default]), ContainsKey(name), [name]"
            }
            Handle::Body(_) => "As<string>(preserveContent: true)",
            Handle::Response => "StatusCode, StatusReason, Headers, Body",
            Handle::Subscription => "Id, Key, Name",
            Handle::Product | Handle::Operation => "Id, Name",
            Handle::Api => "Id, Name, Path",
            Handle::LastError => "Source, Reason, Message, Scope, Section, PolicyId",
            Handle::Deployment => "GatewayId",
        }
    }
}

#[derive(Debug, Clone)]
enum Checked {
    Val(Ir, Type),
    H(Handle),
    Static(Static),
    Enum(EnumVal),
}

#[derive(Debug, Clone)]
enum Bind {
    Local(u32, Type),
    Alias(Handle),
}

struct Checker {
    scopes: Vec<Vec<(String, Bind)>>,
    next_slot: u32,
    /// What a `Hole` stands for, inside the body of a null-conditional.
    hole: Option<Checked>,
    reads_request_body: bool,
    reads_response_body: bool,
}

fn literal(l: &Lit) -> Checked {
    match l {
        Lit::Null => Checked::Val(Ir::Const(Const::Null), Type::Null),
        Lit::Bool(b) => Checked::Val(Ir::Const(Const::Bool(*b)), Type::Bool),
        Lit::Int(i) => Checked::Val(Ir::Const(Const::Int(*i)), Type::Int),
        Lit::Double(d) => Checked::Val(Ir::Const(Const::Double(*d)), Type::Double),
        Lit::Str(s) => Checked::Val(Ir::Const(Const::Str(s.as_str().into())), Type::String),
    }
}

fn field(f: Field, ty: Type) -> Result<Checked, ExprError> {
    Ok(Checked::Val(Ir::Field(f), ty))
}

fn err<T>(at: usize, msg: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError::new(at, msg))
}

fn resolve_type(t: &TypeName) -> Result<Type, ExprError> {
    let name = t.name.strip_prefix("System.").unwrap_or(&t.name);
    let base = match name {
        "string" | "String" => Type::String,
        "int" | "Int32" | "long" | "Int64" => Type::Int,
        "double" | "Double" | "float" | "Single" => Type::Double,
        "bool" | "Boolean" => Type::Bool,
        "object" | "Object" => Type::Object,
        "DateTime" => Type::DateTime,
        "Jwt" => Type::Jwt,
        n if n.starts_with("Newtonsoft.")
            || matches!(n, "JObject" | "JToken" | "JArray" | "JValue") =>
        {
            return err(
                t.at,
                format!("JSON types ({n}) are not supported; read bodies with As<string>()"),
            )
        }
        "decimal" | "Decimal" => return err(t.at, "decimal is not supported"),
        "char" | "Char" => {
            return err(
                t.at,
                "char is not supported (char literals are one-character strings)",
            )
        }
        n => return err(t.at, format!("unknown or unsupported type '{n}'")),
    };
    match (t.array, base) {
        (false, b) => Ok(b),
        (true, Type::String) => Ok(Type::StrArray),
        (true, _) => err(t.at, "only string[] arrays are supported"),
    }
}

fn describe(c: &Checked) -> String {
    match c {
        Checked::Val(_, t) => format!("'{t}'"),
        Checked::H(h) => format!("'{}'", h.name()),
        Checked::Static(s) => format!("'{s:?}'"),
        Checked::Enum(_) => "an enum value".to_string(),
    }
}

impl Checker {
    // ---- statements ----

    fn lookup(&self, name: &str) -> Option<&Bind> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.iter().rev().find(|(n, _)| n == name).map(|(_, b)| b))
    }

    fn declare(&mut self, name: &str, at: usize, bind: Bind) -> Result<(), ExprError> {
        if self.lookup(name).is_some() || name == "context" {
            return err(at, format!("a local named '{name}' is already defined"));
        }
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_string(), bind));
        }
        Ok(())
    }

    fn slot(&mut self) -> u32 {
        let s = self.next_slot;
        self.next_slot += 1;
        s
    }

    /// Checks statements; returns them and whether they always return.
    fn stmts(
        &mut self,
        stmts: &[Stmt],
        returns: &mut Vec<(Type, usize)>,
    ) -> Result<(Vec<TStmt>, bool), ExprError> {
        self.scopes.push(Vec::new());
        let r = self.stmts_in_scope(stmts, returns);
        self.scopes.pop();
        r
    }

    fn stmts_in_scope(
        &mut self,
        stmts: &[Stmt],
        returns: &mut Vec<(Type, usize)>,
    ) -> Result<(Vec<TStmt>, bool), ExprError> {
        let mut code = Vec::new();
        let mut always = false;
        for s in stmts {
            // Statements after a `return` are unreachable (C# only warns): still checked,
            // but their code is dropped.
            let dead = always;
            let mut out = Vec::new();
            match s {
                Stmt::Decl { ty, name, at, init } => {
                    let declared = ty.as_ref().map(resolve_type).transpose()?;
                    let init = match init {
                        Some(n) => Some((self.check(n)?, n.at)),
                        None => None,
                    };
                    match (declared, init) {
                        (None, Some((Checked::H(h), _))) => {
                            self.declare(name, *at, Bind::Alias(h))?;
                        }
                        (None, Some((c, init_at))) => {
                            let (ir, t) = self.value_of(c, init_at)?;
                            if t == Type::Null {
                                return err(
                                    init_at,
                                    "cannot assign null to an implicitly-typed variable",
                                );
                            }
                            let slot = self.slot();
                            self.declare(name, *at, Bind::Local(slot, t))?;
                            out.push(TStmt::Set(slot, ir));
                        }
                        (Some(t), Some((c, init_at))) => {
                            let (ir, from) = self.value_of(c, init_at)?;
                            let ir = self.implicit(ir, from, t, init_at)?;
                            let slot = self.slot();
                            self.declare(name, *at, Bind::Local(slot, t))?;
                            out.push(TStmt::Set(slot, ir));
                        }
                        (Some(t), None) => {
                            let zero = match t {
                                Type::Int => Const::Int(0),
                                Type::Double => Const::Double(0.0),
                                Type::Bool => Const::Bool(false),
                                _ => Const::Null,
                            };
                            let slot = self.slot();
                            self.declare(name, *at, Bind::Local(slot, t))?;
                            out.push(TStmt::Set(slot, Ir::Const(zero)));
                        }
                        (None, None) => return err(*at, "'var' needs an initial value"),
                    }
                }
                Stmt::Assign {
                    name,
                    at,
                    value,
                    add,
                } => {
                    let (slot, t) = match self.lookup(name) {
                        Some(Bind::Local(slot, t)) => (*slot, *t),
                        Some(Bind::Alias(_)) => {
                            return err(*at, format!("'{name}' is an alias and cannot be assigned"))
                        }
                        None => return err(*at, format!("unknown local '{name}'")),
                    };
                    let (mut ir, mut from) = self.value(value)?;
                    if *add {
                        (ir, from) = self.binary_values(
                            BinOp::Add,
                            (Ir::Local(slot), t),
                            (ir, from),
                            value.at,
                        )?;
                    }
                    let ir = self.implicit(ir, from, t, value.at)?;
                    out.push(TStmt::Set(slot, ir));
                }
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                    ..
                } => {
                    let c = self.bool_value(cond, "an if condition")?;
                    let (t, t_ret) = self.stmts(then, returns)?;
                    let (e, e_ret) = self.stmts(otherwise, returns)?;
                    out.push(TStmt::If(c, t, e));
                    if t_ret && e_ret {
                        always = true;
                    }
                }
                Stmt::Return { value, at } => {
                    let (ir, t) = self.value(value)?;
                    returns.push((t, *at));
                    out.push(TStmt::Return(ir));
                    always = true;
                }
                Stmt::Block(b) => {
                    let (inner, ret) = self.stmts(b, returns)?;
                    out.extend(inner);
                    always |= ret;
                }
            }
            if !dead {
                code.append(&mut out);
            }
        }
        Ok((code, always))
    }

    /// An implicit conversion for an assignment or argument, or an error.
    fn implicit(&self, ir: Ir, from: Type, to: Type, at: usize) -> Result<Ir, ExprError> {
        let ok = from == to
            || to == Type::Object
            || from == Type::Object
            || (from == Type::Null
                && matches!(
                    to,
                    Type::String | Type::StrArray | Type::Jwt | Type::DateTime
                ))
            || (from == Type::Int && to == Type::Double);
        if !ok {
            return err(
                at,
                format!("cannot implicitly convert type '{from}' to '{to}'"),
            );
        }
        Ok(coerce(ir, from, to))
    }

    // ---- expressions ----

    fn value(&mut self, n: &Node) -> Result<(Ir, Type), ExprError> {
        let c = self.check(n)?;
        self.value_of(c, n.at)
    }

    fn value_of(&mut self, c: Checked, at: usize) -> Result<(Ir, Type), ExprError> {
        match c {
            Checked::Val(ir, t) => Ok((ir, t)),
            Checked::H(Handle::Url) => Ok((Ir::Field(Field::UrlString), Type::String)),
            Checked::H(h) => err(
                at,
                format!(
                    "'{}' is not a value; use one of its members: {}",
                    h.name(),
                    h.members()
                ),
            ),
            Checked::Static(s) => err(at, format!("'{s:?}' is a type, not a value")),
            Checked::Enum(_) => err(
                at,
                "enum values are only allowed as method arguments (StringComparison, StringSplitOptions)",
            ),
        }
    }

    fn bool_value(&mut self, n: &Node, what: &str) -> Result<Ir, ExprError> {
        let (ir, t) = self.value(n)?;
        match t {
            Type::Bool => Ok(ir),
            Type::Object => Ok(Ir::Unbox(Type::Bool, Box::new(ir))),
            t => err(n.at, format!("{what} must be a bool, not '{t}'")),
        }
    }

    /// The recursion of checking goes through here; every arm is one call, so the frame
    /// stays small and deep (bounded) trees fit on a thread stack.
    fn check(&mut self, n: &Node) -> Result<Checked, ExprError> {
        let at = n.at;
        match &n.kind {
            Kind::Lit(l) => Ok(literal(l)),
            Kind::Interp(parts) => self.interpolation(parts),
            Kind::Name(name) => self.name(name, at),
            Kind::Hole => match &self.hole {
                Some(h) => Ok(h.clone()),
                None => err(at, "internal error: '?.' without a target"),
            },
            Kind::Member { target, name } => {
                let t = self.check(target)?;
                self.member(t, name, at)
            }
            Kind::Call {
                target,
                name,
                generic,
                args,
            } => self.check_call(target, name, generic.as_ref(), args, at),
            Kind::Index { target, index } => self.check_index(target, index, at),
            Kind::Unary { op, operand } => self.unary(*op, operand, at),
            Kind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, at),
            Kind::Cond {
                cond,
                then,
                otherwise,
            } => self.conditional(cond, then, otherwise, at),
            Kind::Cast { ty, operand } => self.cast(ty, operand, at),
            Kind::NullCond { target, body } => self.null_cond(target, body, at),
        }
    }

    fn interpolation(&mut self, parts: &[IPart]) -> Result<Checked, ExprError> {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p {
                IPart::Text(t) => out.push(Ir::Const(Const::Str(t.as_str().into()))),
                IPart::Hole(e, None) => out.push(self.value(e)?.0),
                IPart::Hole(e, Some(f)) => {
                    let (ir, _) = self.value(e)?;
                    out.push(Ir::Call(
                        Method::ToStrFormat,
                        vec![ir, Ir::Const(Const::Str(f.as_str().into()))],
                    ));
                }
            }
        }
        Ok(Checked::Val(Ir::Concat(out), Type::String))
    }

    fn check_index(
        &mut self,
        target: &Node,
        index: &Node,
        at: usize,
    ) -> Result<Checked, ExprError> {
        let t = self.check(target)?;
        let want = match &t {
            Checked::Val(_, Type::StrArray | Type::String) => Type::Int,
            Checked::H(
                Handle::Headers(_)
                | Handle::Query
                | Handle::Matched
                | Handle::Claims(_)
                | Handle::Variables,
            ) => Type::String,
            Checked::Val(_, Type::Object) => {
                return err(
                    at,
                    "cannot index an 'object': cast it first, e.g. ((string[])context.Variables[\"x\"])[0]",
                )
            }
            other => return err(at, format!("cannot index {}", describe(other))),
        };
        let i = self.arg_value(index, want, 1)?;
        self.index(t, i, at)
    }

    fn unary(&mut self, op: UnOp, operand: &Node, at: usize) -> Result<Checked, ExprError> {
        let (ir, t) = self.value(operand)?;
        match (op, t) {
            (UnOp::Not, Type::Bool) => Ok(Checked::Val(Ir::Not(Box::new(ir)), t)),
            (UnOp::Neg, Type::Int | Type::Double) => Ok(Checked::Val(Ir::Neg(Box::new(ir)), t)),
            (UnOp::Plus, Type::Int | Type::Double) => Ok(Checked::Val(ir, t)),
            (UnOp::Not, t) => err(at, format!("operator '!' cannot be applied to '{t}'")),
            (_, t) => err(at, format!("unary '-' or '+' cannot be applied to '{t}'")),
        }
    }

    fn conditional(
        &mut self,
        cond: &Node,
        then: &Node,
        otherwise: &Node,
        at: usize,
    ) -> Result<Checked, ExprError> {
        let c = self.bool_value(cond, "the condition of '?:'")?;
        let (a, ta) = self.value(then)?;
        let (b, tb) = self.value(otherwise)?;
        let t = unify(ta, tb).ok_or_else(|| {
            ExprError::new(
                at,
                format!("no implicit conversion between '{ta}' and '{tb}'"),
            )
        })?;
        Ok(Checked::Val(
            Ir::Cond(
                Box::new(c),
                Box::new(coerce_branch(a, ta, t)),
                Box::new(coerce_branch(b, tb, t)),
            ),
            t,
        ))
    }

    fn cast(&mut self, ty: &TypeName, operand: &Node, at: usize) -> Result<Checked, ExprError> {
        let to = resolve_type(ty)?;
        let (ir, from) = self.value(operand)?;
        let ir = match (from, to) {
            _ if from == to => ir,
            (_, Type::Object) => ir,
            (Type::Object, t) => Ir::Unbox(t, Box::new(ir)),
            (Type::Null, Type::String | Type::StrArray | Type::Jwt | Type::DateTime) => ir,
            (Type::Int, Type::Double) => Ir::ToDouble(Box::new(ir)),
            (Type::Double, Type::Int) => Ir::ToInt(Box::new(ir)),
            _ => return err(at, format!("cannot convert type '{from}' to '{to}'")),
        };
        Ok(Checked::Val(ir, to))
    }

    fn null_cond(&mut self, target: &Node, body: &Node, at: usize) -> Result<Checked, ExprError> {
        match self.check(target)? {
            Checked::Val(ir, ty) => {
                let slot = self.slot();
                let saved = self.hole.replace(Checked::Val(Ir::Local(slot), ty));
                let b = self.value(body);
                self.hole = saved;
                let (bir, bty) = b?;
                Ok(Checked::Val(
                    Ir::NullCond {
                        target: Box::new(ir),
                        slot,
                        body: Box::new(bir),
                    },
                    bty,
                ))
            }
            Checked::H(h) => {
                let parent = h.parent();
                let saved = self.hole.replace(Checked::H(h));
                let b = self.check(body);
                self.hole = saved;
                let b = b?;
                match parent {
                    None => Ok(b),
                    Some(p) => {
                        let (bir, bty) = self.value_of(b, body.at)?;
                        Ok(Checked::Val(
                            Ir::Cond(
                                Box::new(Ir::IsNull(p)),
                                Box::new(Ir::Const(Const::Null)),
                                Box::new(bir),
                            ),
                            bty,
                        ))
                    }
                }
            }
            other => err(
                at,
                format!("'?.' cannot be applied to {}", describe(&other)),
            ),
        }
    }

    fn name(&mut self, name: &str, at: usize) -> Result<Checked, ExprError> {
        if let Some(b) = self.lookup(name) {
            return Ok(match b {
                Bind::Local(slot, t) => Checked::Val(Ir::Local(*slot), *t),
                Bind::Alias(h) => Checked::H(h.clone()),
            });
        }
        Ok(match name {
            "context" => Checked::H(Handle::Context),
            "DateTime" => Checked::Static(Static::DateTime),
            "string" | "String" => Checked::Static(Static::String),
            "int" | "Int32" | "long" | "Int64" => Checked::Static(Static::Int),
            "double" | "Double" => Checked::Static(Static::Double),
            "bool" | "Boolean" => Checked::Static(Static::Bool),
            "StringComparison" => Checked::Static(Static::StringComparison),
            "StringSplitOptions" => Checked::Static(Static::StringSplitOptions),
            _ => return err(at, format!("unknown name '{name}'")),
        })
    }

    fn member(&mut self, t: Checked, name: &str, at: usize) -> Result<Checked, ExprError> {
        use Type as T;
        let h = |h: Handle| Ok(Checked::H(h));
        let unknown = |what: &str, supported: &str| {
            err(
                at,
                format!("{what} has no member '{name}' (supported: {supported})"),
            )
        };
        match t {
            Checked::H(handle) => match (&handle, name) {
                (Handle::Context, "Request") => h(Handle::Request),
                (Handle::Context, "Response") => h(Handle::Response),
                (Handle::Context, "Subscription") => h(Handle::Subscription),
                (Handle::Context, "Product") => h(Handle::Product),
                (Handle::Context, "Api") => h(Handle::Api),
                (Handle::Context, "Operation") => h(Handle::Operation),
                (Handle::Context, "Variables") => h(Handle::Variables),
                (Handle::Context, "LastError") => h(Handle::LastError),
                (Handle::Context, "Deployment") => h(Handle::Deployment),
                (Handle::Context, "Timestamp") => field(Field::Now, T::DateTime),
                (Handle::Context, "RequestId" | "User" | "Tracing" | "Elapsed" | "Trace") => {
                    err(at, format!("context.{name} is not supported by Portico"))
                }
                (Handle::Request, "Method") => field(Field::Method, T::String),
                (Handle::Request, "Url") => h(Handle::Url),
                (Handle::Request, "Headers") => h(Handle::Headers(Side::Request)),
                (Handle::Request, "IpAddress") => field(Field::IpAddress, T::String),
                (Handle::Request, "MatchedParameters") => h(Handle::Matched),
                (Handle::Request, "Body") => h(Handle::Body(Side::Request)),
                (Handle::Request, "OriginalUrl" | "Certificate") => err(
                    at,
                    format!("context.Request.{name} is not supported by Portico"),
                ),
                (Handle::Url, "Path") => field(Field::UrlPath, T::String),
                (Handle::Url, "Host") => field(Field::UrlHost, T::String),
                (Handle::Url, "Port") => field(Field::UrlPort, T::Int),
                (Handle::Url, "Scheme") => field(Field::UrlScheme, T::String),
                (Handle::Url, "QueryString") => field(Field::UrlQueryString, T::String),
                (Handle::Url, "Query") => h(Handle::Query),
                (Handle::Response, "StatusCode") => field(Field::StatusCode, T::Int),
                (Handle::Response, "StatusReason") => field(Field::StatusReason, T::String),
                (Handle::Response, "Headers") => h(Handle::Headers(Side::Response)),
                (Handle::Response, "Body") => h(Handle::Body(Side::Response)),
                (Handle::Subscription, "Id") => field(Field::SubscriptionId, T::String),
                (Handle::Subscription, "Key") => field(Field::SubscriptionKey, T::String),
                (Handle::Subscription, "Name") => field(Field::SubscriptionName, T::String),
                (Handle::Product, "Id" | "Name") => field(Field::ProductId, T::String),
                (Handle::Api, "Id") => field(Field::ApiId, T::String),
                (Handle::Api, "Name") => field(Field::ApiName, T::String),
                (Handle::Api, "Path") => field(Field::ApiPath, T::String),
                (Handle::Operation, "Id" | "Name") => field(Field::OperationId, T::String),
                (Handle::LastError, "Source") => field(Field::ErrorSource, T::String),
                (Handle::LastError, "Reason") => field(Field::ErrorReason, T::String),
                (Handle::LastError, "Message") => field(Field::ErrorMessage, T::String),
                (Handle::LastError, "Scope") => field(Field::ErrorScope, T::String),
                (Handle::LastError, "Section") => field(Field::ErrorSection, T::String),
                (Handle::LastError, "PolicyId") => field(Field::ErrorPolicyId, T::String),
                (Handle::Deployment, "GatewayId") => field(Field::GatewayId, T::String),
                _ => unknown(&format!("'{}'", handle.name()), handle.members()),
            },
            Checked::Static(Static::DateTime) => match name {
                "UtcNow" | "Now" => field(Field::Now, T::DateTime),
                _ => unknown("'DateTime'", "UtcNow, Now"),
            },
            Checked::Static(Static::String) => match name {
                "Empty" => Ok(Checked::Val(Ir::Const(Const::Str("".into())), T::String)),
                _ => unknown(
                    "'string'",
                    "Empty, IsNullOrEmpty, IsNullOrWhiteSpace, Join, Format, Concat, Equals",
                ),
            },
            Checked::Static(Static::StringComparison) => {
                let c = match name {
                    "Ordinal" | "CurrentCulture" | "InvariantCulture" => StrCmp::Ordinal,
                    "OrdinalIgnoreCase" | "CurrentCultureIgnoreCase"
                    | "InvariantCultureIgnoreCase" => StrCmp::IgnoreCase,
                    _ => return unknown("'StringComparison'", "Ordinal, OrdinalIgnoreCase, InvariantCulture, InvariantCultureIgnoreCase, CurrentCulture, CurrentCultureIgnoreCase"),
                };
                Ok(Checked::Enum(EnumVal::Cmp(c)))
            }
            Checked::Static(Static::StringSplitOptions) => {
                let (remove_empty, trim) = match name {
                    "None" => (false, false),
                    "RemoveEmptyEntries" => (true, false),
                    "TrimEntries" => (false, true),
                    _ => {
                        return unknown(
                            "'StringSplitOptions'",
                            "None, RemoveEmptyEntries, TrimEntries",
                        )
                    }
                };
                Ok(Checked::Enum(EnumVal::Split { remove_empty, trim }))
            }
            Checked::Static(s) => err(at, format!("'{s:?}' has no member '{name}'")),
            Checked::Enum(_) => err(at, format!("an enum value has no member '{name}'")),
            Checked::Val(ir, Type::Jwt) if name == "Claims" => {
                Ok(Checked::H(Handle::Claims(Box::new(ir))))
            }
            Checked::Val(ir, ty) => {
                let call = |m: Method, t: Type| Ok(Checked::Val(Ir::Call(m, vec![ir]), t));
                match (ty, name) {
                    (T::String, "Length") => call(Method::StrLength, T::Int),
                    (T::StrArray, "Length") => call(Method::ArrLength, T::Int),
                    (T::DateTime, _) => {
                        let part = match name {
                            "Year" => DatePart::Year,
                            "Month" => DatePart::Month,
                            "Day" => DatePart::Day,
                            "Hour" => DatePart::Hour,
                            "Minute" => DatePart::Minute,
                            "Second" => DatePart::Second,
                            "Millisecond" => DatePart::Millisecond,
                            "Ticks" => DatePart::Ticks,
                            "Date" => {
                                return call(Method::DatePart(DatePart::Date), T::DateTime)
                            }
                            "HasValue" => return call(Method::HasValue, T::Bool),
                            "Value" => return call(Method::ValueOf, T::DateTime),
                            _ => return unknown("'DateTime'", "Year, Month, Day, Hour, Minute, Second, Millisecond, Ticks, Date, HasValue, Value, AddSeconds(n)..., ToString([format])"),
                        };
                        call(Method::DatePart(part), T::Int)
                    }
                    (T::Jwt, _) => {
                        let (f, t) = match name {
                            "Subject" => (JwtField::Subject, T::String),
                            "Issuer" => (JwtField::Issuer, T::String),
                            "Audiences" => (JwtField::Audiences, T::StrArray),
                            "Id" => (JwtField::Id, T::String),
                            "Algorithm" => (JwtField::Algorithm, T::String),
                            "ExpirationTime" => (JwtField::ExpirationTime, T::DateTime),
                            "NotBefore" => (JwtField::NotBefore, T::DateTime),
                            "IssuedAt" => (JwtField::IssuedAt, T::DateTime),
                            _ => return unknown("'Jwt'", "Subject, Issuer, Audiences, Id, Algorithm, ExpirationTime, NotBefore, IssuedAt, Claims"),
                        };
                        call(Method::Jwt(f), t)
                    }
                    (T::Object, _) => err(
                        at,
                        format!("'object' has no member '{name}': cast it first, e.g. ((string)context.Variables[\"x\"]).{name}"),
                    ),
                    (t, _) => err(at, format!("'{t}' has no member '{name}'")),
                }
            }
        }
    }

    /// An index on a checked target with a checked index (see `check_index`).
    fn index(&mut self, t: Checked, i: Ir, at: usize) -> Result<Checked, ExprError> {
        let key = Box::new(i);
        match t {
            Checked::H(
                h @ (Handle::Headers(_) | Handle::Query | Handle::Matched | Handle::Claims(_)),
            ) => {
                let (dict, ty) = dict_of(h);
                Ok(Checked::Val(
                    Ir::Dict {
                        dict,
                        key,
                        op: DictOp::Index,
                    },
                    ty,
                ))
            }
            Checked::H(Handle::Variables) => Ok(Checked::Val(
                Ir::Var {
                    key,
                    op: VarOp::Index,
                },
                Type::Object,
            )),
            Checked::Val(ir, Type::StrArray) => Ok(Checked::Val(
                Ir::Call(Method::ArrIndex, vec![ir, *key]),
                Type::String,
            )),
            Checked::Val(ir, Type::String) => Ok(Checked::Val(
                Ir::Call(Method::CharAt, vec![ir, *key]),
                Type::String,
            )),
            other => err(at, format!("cannot index {}", describe(&other))),
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        lhs: &Node,
        rhs: &Node,
        at: usize,
    ) -> Result<Checked, ExprError> {
        if matches!(op, BinOp::Eq | BinOp::Ne) {
            // `context.Subscription == null` compares a context part, not a value.
            let l = self.check(lhs)?;
            let r = self.check(rhs)?;
            let parent = match (&l, &r, &lhs.kind, &rhs.kind) {
                (Checked::H(h), _, _, Kind::Lit(Lit::Null))
                | (_, Checked::H(h), Kind::Lit(Lit::Null), _) => match h.parent() {
                    Some(p) => Some(p),
                    None => return err(at, format!("'{}' is never null", h.name())),
                },
                _ => None,
            };
            if let Some(p) = parent {
                let is_null = Ir::IsNull(p);
                let ir = if op == BinOp::Eq {
                    is_null
                } else {
                    Ir::Not(Box::new(is_null))
                };
                return Ok(Checked::Val(ir, Type::Bool));
            }
            let l = self.value_of(l, lhs.at)?;
            let r = self.value_of(r, rhs.at)?;
            let (ir, t) = self.binary_values(op, l, r, at)?;
            return Ok(Checked::Val(ir, t));
        }
        if matches!(op, BinOp::And | BinOp::Or) {
            let what = format!("an operand of '{}'", op.text());
            let l = self.bool_operand(lhs, &what)?;
            let r = self.bool_operand(rhs, &what)?;
            let ir = if op == BinOp::And {
                Ir::And(Box::new(l), Box::new(r))
            } else {
                Ir::Or(Box::new(l), Box::new(r))
            };
            return Ok(Checked::Val(ir, Type::Bool));
        }
        let l = self.value(lhs)?;
        let r = self.value(rhs)?;
        let (ir, t) = self.binary_values(op, l, r, at)?;
        Ok(Checked::Val(ir, t))
    }

    fn bool_operand(&mut self, n: &Node, what: &str) -> Result<Ir, ExprError> {
        let (ir, t) = self.value(n)?;
        match t {
            Type::Bool => Ok(ir),
            t => err(n.at, format!("{what} must be a bool, not '{t}'")),
        }
    }

    fn binary_values(
        &mut self,
        op: BinOp,
        (l, lt): (Ir, Type),
        (r, rt): (Ir, Type),
        at: usize,
    ) -> Result<(Ir, Type), ExprError> {
        use Type as T;
        let mismatch = || {
            err(
                at,
                format!(
                    "operator '{}' cannot be applied to '{lt}' and '{rt}'",
                    op.text()
                ),
            )
        };
        let numeric = |a: T, b: T| {
            (is_numeric(a) || a == T::Null)
                && (is_numeric(b) || b == T::Null)
                && (a != T::Null || b != T::Null)
        };
        let num_type = if lt == T::Double || rt == T::Double {
            T::Double
        } else {
            T::Int
        };
        match op {
            BinOp::Add if lt == T::String || rt == T::String => {
                // String concatenation; flatten chains into one n-ary concat.
                let mut parts = match l {
                    Ir::Concat(p) => p,
                    other => vec![other],
                };
                parts.push(r);
                Ok((Ir::Concat(parts), T::String))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                if !numeric(lt, rt) {
                    return mismatch();
                }
                let a = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    BinOp::Mul => Arith::Mul,
                    BinOp::Div => Arith::Div,
                    _ => Arith::Rem,
                };
                Ok((Ir::Arith(a, Box::new(l), Box::new(r)), num_type))
            }
            BinOp::Eq | BinOp::Ne => {
                let ok = lt == rt
                    || numeric(lt, rt)
                    || lt == T::Null
                    || rt == T::Null
                    || lt == T::Object
                    || rt == T::Object;
                if !ok {
                    return err(
                        at,
                        format!("cannot compare '{lt}' with '{rt}' using '{}'", op.text()),
                    );
                }
                let c = if op == BinOp::Eq {
                    CmpOp::Eq
                } else {
                    CmpOp::Ne
                };
                Ok((Ir::Cmp(c, Box::new(l), Box::new(r)), T::Bool))
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let dates = matches!(
                    (lt, rt),
                    (T::DateTime, T::DateTime | T::Null) | (T::Null, T::DateTime)
                );
                if !numeric(lt, rt) && !dates {
                    return mismatch();
                }
                let c = match op {
                    BinOp::Lt => CmpOp::Lt,
                    BinOp::Le => CmpOp::Le,
                    BinOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                Ok((Ir::Cmp(c, Box::new(l), Box::new(r)), T::Bool))
            }
            BinOp::Coalesce => {
                let t = unify(lt, rt).ok_or_else(|| {
                    ExprError::new(
                        at,
                        format!("operator '??' cannot be applied to '{lt}' and '{rt}'"),
                    )
                })?;
                Ok((
                    Ir::Coalesce(
                        Box::new(coerce_branch(l, lt, t)),
                        Box::new(coerce_branch(r, rt, t)),
                    ),
                    t,
                ))
            }
            BinOp::And | BinOp::Or => {
                if lt != T::Bool || rt != T::Bool {
                    return mismatch();
                }
                Ok(if op == BinOp::And {
                    (Ir::And(Box::new(l), Box::new(r)), T::Bool)
                } else {
                    (Ir::Or(Box::new(l), Box::new(r)), T::Bool)
                })
            }
        }
    }

    // ---- calls ----

    /// Checks a call's target and arguments first, so that the (large) resolution below
    /// runs after the recursion, not inside it.
    fn check_call(
        &mut self,
        target: &Node,
        name: &str,
        generic: Option<&TypeName>,
        args: &[Arg],
        at: usize,
    ) -> Result<Checked, ExprError> {
        let t = self.check(target)?;
        let mut cargs = Vec::with_capacity(args.len());
        for a in args {
            cargs.push(CArg {
                c: Some(self.check(&a.value)?),
                at: a.value.at,
                name: a.name.clone(),
            });
        }
        self.call(t, name, generic, &mut cargs, at)
    }

    /// An argument's value converted to `want`, or an error naming its position.
    fn arg_value(&mut self, n: &Node, want: Type, pos: usize) -> Result<Ir, ExprError> {
        let (ir, t) = self.value(n)?;
        convert_arg(ir, t, want, n.at, pos)
    }

    /// Takes checked argument `i` as a value.
    fn take_value(&mut self, args: &mut [CArg], i: usize) -> Result<(Ir, Type), ExprError> {
        match args.get_mut(i) {
            Some(CArg {
                c: c @ Some(_), at, ..
            }) => {
                let at = *at;
                match c.take() {
                    Some(c) => self.value_of(c, at),
                    None => err(at, "internal error: argument used twice"),
                }
            }
            _ => err(0, "internal error: missing argument"),
        }
    }

    /// Takes checked argument `i` converted to `want`.
    fn arg(&mut self, args: &mut [CArg], i: usize, want: Type) -> Result<Ir, ExprError> {
        let (ir, t) = self.take_value(args, i)?;
        let at = args.get(i).map_or(0, |a| a.at);
        convert_arg(ir, t, want, at, i + 1)
    }
    fn call(
        &mut self,
        t: Checked,
        name: &str,
        generic: Option<&TypeName>,
        args: &mut [CArg],
        at: usize,
    ) -> Result<Checked, ExprError> {
        use Type as T;
        let n = args.len();
        // Only `As<T>(preserveContent: ...)` takes a named argument.
        let body_call = matches!(&t, Checked::H(Handle::Body(_))) && name == "As";
        if !body_call {
            if let Some(a) = args.iter().find(|a| a.name.is_some()) {
                let at = a.name.as_ref().map_or(a.at, |n| n.1);
                return err(at, "named arguments are not supported here");
            }
        }
        let variables_get =
            matches!(&t, Checked::H(Handle::Variables)) && name == "GetValueOrDefault";
        if let Some(g) = generic {
            if !variables_get && !body_call {
                return err(g.at, format!("'{name}' does not take a type argument"));
            }
        }
        let count = |min: usize, max: usize| -> Result<(), ExprError> {
            if n < min || n > max {
                let want = if min == max {
                    min.to_string()
                } else {
                    format!("{min} to {max}")
                };
                return err(at, format!("'{name}' takes {want} argument(s), {n} given"));
            }
            Ok(())
        };
        match t {
            Checked::H(handle) => match (handle, name) {
                (
                    h @ (Handle::Headers(_) | Handle::Query | Handle::Matched | Handle::Claims(_)),
                    "GetValueOrDefault",
                ) => {
                    count(1, 2)?;
                    let key = self.arg(args, 0, T::String)?;
                    let default = if n == 2 {
                        Some(Box::new(self.arg(args, 1, T::String)?))
                    } else {
                        None
                    };
                    let (dict, _) = dict_of(h);
                    Ok(Checked::Val(
                        Ir::Dict {
                            dict,
                            key: Box::new(key),
                            op: DictOp::Get(default),
                        },
                        T::String,
                    ))
                }
                (
                    h @ (Handle::Headers(_) | Handle::Query | Handle::Matched | Handle::Claims(_)),
                    "ContainsKey",
                ) => {
                    count(1, 1)?;
                    let key = self.arg(args, 0, T::String)?;
                    let (dict, _) = dict_of(h);
                    Ok(Checked::Val(
                        Ir::Dict {
                            dict,
                            key: Box::new(key),
                            op: DictOp::Contains,
                        },
                        T::Bool,
                    ))
                }
                (Handle::Variables, "GetValueOrDefault") => {
                    count(1, 2)?;
                    let key = self.arg(args, 0, T::String)?;
                    let (ty, default) = match (generic, n == 2) {
                        (Some(g), d) => {
                            let ty = resolve_type(g)?;
                            let d = match d {
                                true => Some(Box::new(self.arg(args, 1, ty)?)),
                                false => None,
                            };
                            (ty, d)
                        }
                        (None, true) => {
                            let (ir, t) = self.take_value(args, 1)?;
                            let t = if t == T::Null { T::Object } else { t };
                            (t, Some(Box::new(ir)))
                        }
                        (None, false) => (T::Object, None),
                    };
                    Ok(Checked::Val(
                        Ir::Var {
                            key: Box::new(key),
                            op: VarOp::Get { ty, default },
                        },
                        ty,
                    ))
                }
                (Handle::Variables, "ContainsKey") => {
                    count(1, 1)?;
                    let key = self.arg(args, 0, T::String)?;
                    Ok(Checked::Val(
                        Ir::Var {
                            key: Box::new(key),
                            op: VarOp::Contains,
                        },
                        T::Bool,
                    ))
                }
                (Handle::Body(side), "As") => {
                    match generic {
                        Some(g) if resolve_type(g)? == T::String => {}
                        Some(g) => return err(g.at, "only As<string>() is supported for bodies"),
                        None => return err(at, "use As<string>() to read a body"),
                    }
                    count(0, 1)?;
                    if let Some(a) = args.first() {
                        if let Some((arg_name, nat)) = &a.name {
                            if arg_name != "preserveContent" {
                                return err(
                                    *nat,
                                    format!(
                                        "unknown argument '{arg_name}' (expected preserveContent)"
                                    ),
                                );
                            }
                        }
                        // Portico never consumes a body, so preserveContent changes nothing.
                        self.arg(args, 0, T::Bool)?;
                    }
                    match side {
                        Side::Request => self.reads_request_body = true,
                        Side::Response => self.reads_response_body = true,
                    }
                    field(Field::Body(side), T::String)
                }
                (Handle::Url, "ToString") => {
                    count(0, 0)?;
                    field(Field::UrlString, T::String)
                }
                (h, _) => err(
                    at,
                    format!(
                        "'{}' has no method '{name}' (supported: {})",
                        h.name(),
                        h.members()
                    ),
                ),
            },
            Checked::Static(s) => self.static_call(s, name, args, at),
            Checked::Enum(_) => err(at, format!("an enum value has no method '{name}'")),
            Checked::Val(recv, ty) => self.value_call(recv, ty, name, args, at),
        }
    }

    fn static_call(
        &mut self,
        s: Static,
        name: &str,
        args: &mut [CArg],
        at: usize,
    ) -> Result<Checked, ExprError> {
        use Type as T;
        let n = args.len();
        let count = |min: usize, max: usize| -> Result<(), ExprError> {
            if n < min || n > max {
                let want = match max {
                    usize::MAX => format!("at least {min}"),
                    m if m == min => min.to_string(),
                    _ => format!("{min} to {max}"),
                };
                return err(at, format!("'{name}' takes {want} argument(s), {n} given"));
            }
            Ok(())
        };
        let val = |m: Method, a: Vec<Ir>, t: Type| Ok(Checked::Val(Ir::Call(m, a), t));
        match (s, name) {
            (Static::String, "IsNullOrEmpty" | "IsNullOrWhiteSpace") => {
                count(1, 1)?;
                let a = self.arg(args, 0, T::String)?;
                let m = if name == "IsNullOrEmpty" {
                    Method::IsNullOrEmpty
                } else {
                    Method::IsNullOrWhiteSpace
                };
                val(m, vec![a], T::Bool)
            }
            (Static::String, "Join") => {
                count(2, usize::MAX)?;
                let mut a = vec![self.arg(args, 0, T::String)?];
                for i in 1..n {
                    a.push(self.take_value(args, i)?.0);
                }
                val(Method::Join, a, T::String)
            }
            (Static::String, "Format") => {
                count(1, usize::MAX)?;
                let mut a = vec![self.arg(args, 0, T::String)?];
                for i in 1..n {
                    a.push(self.take_value(args, i)?.0);
                }
                val(Method::Format, a, T::String)
            }
            (Static::String, "Concat") => {
                let mut parts = Vec::with_capacity(n);
                for i in 0..n {
                    parts.push(self.take_value(args, i)?.0);
                }
                Ok(Checked::Val(Ir::Concat(parts), T::String))
            }
            (Static::String, "Equals") => {
                count(2, 3)?;
                let a = self.arg(args, 0, T::String)?;
                let b = self.arg(args, 1, T::String)?;
                let c = match args.get(2) {
                    Some(c) => cmp_arg(c)?,
                    None => StrCmp::Ordinal,
                };
                val(Method::StaticEquals(c), vec![a, b], T::Bool)
            }
            (Static::Int | Static::Double | Static::Bool, "Parse") => {
                count(1, 1)?;
                let a = self.arg(args, 0, T::String)?;
                let t = match s {
                    Static::Int => T::Int,
                    Static::Double => T::Double,
                    _ => T::Bool,
                };
                val(Method::Parse(t), vec![a], t)
            }
            (s, _) => err(at, format!("'{s:?}' has no supported method '{name}'")),
        }
    }

    fn value_call(
        &mut self,
        recv: Ir,
        ty: Type,
        name: &str,
        args: &mut [CArg],
        at: usize,
    ) -> Result<Checked, ExprError> {
        use Type as T;
        let n = args.len();
        let arity = |ok: bool, want: &str| -> Result<(), ExprError> {
            if ok {
                Ok(())
            } else {
                err(at, format!("'{name}' takes {want} argument(s), {n} given"))
            }
        };
        let all =
            |c: &mut Checker, args: &mut [CArg], want: T, recv: Ir| -> Result<Vec<Ir>, ExprError> {
                let mut v = vec![recv];
                for i in 0..n {
                    v.push(c.arg(args, i, want)?);
                }
                Ok(v)
            };
        let val = |m: Method, a: Vec<Ir>, t: Type| Ok(Checked::Val(Ir::Call(m, a), t));
        if ty == T::Null {
            return err(at, format!("cannot call '{name}' on null"));
        }
        // Methods every type has.
        match name {
            "ToString" if n == 0 => return val(Method::ToStr, vec![recv], T::String),
            "ToString" if n == 1 && matches!(ty, T::DateTime | T::Object) => {
                let f = self.arg(args, 0, T::String)?;
                return val(Method::ToStrFormat, vec![recv, f], T::String);
            }
            "ToString" => {
                return err(
                    at,
                    format!("'{ty}.ToString' with a format is not supported"),
                )
            }
            "Equals" if ty != T::String => {
                arity(n == 1, "1")?;
                let (b, _) = self.take_value(args, 0)?;
                return val(Method::ObjEquals, vec![recv, b], T::Bool);
            }
            _ => {}
        }
        match ty {
            T::String => {
                let with_cmp = |c: &mut Checker, args: &mut [CArg], m: fn(StrCmp) -> Method, t: Type| -> Result<Checked, ExprError> {
                    arity(n == 1 || n == 2, "1 or 2")?;
                    let s = c.arg(args, 0, T::String)?;
                    let cmp = match args.get(1) {
                        Some(a) => cmp_arg(a)?,
                        None => StrCmp::Ordinal,
                    };
                    val(m(cmp), vec![recv.clone(), s], t)
                };
                match name {
                    "ToLower" | "ToLowerInvariant" => {
                        arity(n == 0, "0")?;
                        val(Method::ToLower, vec![recv], T::String)
                    }
                    "ToUpper" | "ToUpperInvariant" => {
                        arity(n == 0, "0")?;
                        val(Method::ToUpper, vec![recv], T::String)
                    }
                    "Contains" => with_cmp(self, args, Method::Contains, T::Bool),
                    "StartsWith" => with_cmp(self, args, Method::StartsWith, T::Bool),
                    "EndsWith" => with_cmp(self, args, Method::EndsWith, T::Bool),
                    "IndexOf" => with_cmp(self, args, Method::IndexOf, T::Int),
                    "LastIndexOf" => with_cmp(self, args, Method::LastIndexOf, T::Int),
                    "Equals" => with_cmp(self, args, Method::Equals, T::Bool),
                    "Substring" => {
                        arity(n == 1 || n == 2, "1 or 2")?;
                        val(Method::Substring, all(self, args, T::Int, recv)?, T::String)
                    }
                    "Replace" => {
                        arity(n == 2, "2")?;
                        val(Method::Replace, all(self, args, T::String, recv)?, T::String)
                    }
                    "PadLeft" | "PadRight" => {
                        arity(n == 1 || n == 2, "1 or 2")?;
                        let mut a = vec![recv, self.arg(args, 0, T::Int)?];
                        if n == 2 {
                            a.push(self.arg(args, 1, T::String)?);
                        }
                        let m = if name == "PadLeft" { Method::PadLeft } else { Method::PadRight };
                        val(m, a, T::String)
                    }
                    "Split" => {
                        let mut a = vec![recv];
                        let (mut remove_empty, mut trim) = (false, false);
                        for i in 0..n {
                            if i + 1 == n && i > 0 {
                                if let Some(Checked::Enum(EnumVal::Split { remove_empty: r, trim: t })) = args[i].c {
                                    remove_empty = r;
                                    trim = t;
                                    continue;
                                }
                            }
                            a.push(self.arg(args, i, T::String)?);
                        }
                        val(Method::Split { remove_empty, trim }, a, T::StrArray)
                    }
                    "Trim" | "TrimStart" | "TrimEnd" => {
                        let side = match name {
                            "Trim" => TrimSide::Both,
                            "TrimStart" => TrimSide::Start,
                            _ => TrimSide::End,
                        };
                        val(Method::Trim(side), all(self, args, T::String, recv)?, T::String)
                    }
                    "AsJwt" => {
                        arity(n == 0, "0")?;
                        val(Method::AsJwt, vec![recv], T::Jwt)
                    }
                    "AsBasic" | "AsFormUrlEncodedContent" | "Decrypt" | "Encrypt" => {
                        err(at, format!("'{name}' is not supported by Portico"))
                    }
                    _ => err(at, format!("'string' has no supported method '{name}' (supported: ToLower, ToUpper, Contains, StartsWith, EndsWith, IndexOf, LastIndexOf, Equals, Substring, Replace, Split, Trim, TrimStart, TrimEnd, PadLeft, PadRight, AsJwt, ToString)")),
                }
            }
            T::StrArray => match name {
                "First" | "Last" | "FirstOrDefault" | "LastOrDefault" => {
                    arity(n == 0, "0 (predicates are not supported)")?;
                    let or_default = name.ends_with("OrDefault");
                    let m = if name.starts_with("First") {
                        Method::ArrFirst { or_default }
                    } else {
                        Method::ArrLast { or_default }
                    };
                    val(m, vec![recv], T::String)
                }
                "Count" => {
                    arity(n == 0, "0 (predicates are not supported)")?;
                    val(Method::ArrLength, vec![recv], T::Int)
                }
                "Contains" => {
                    arity(n == 1, "1")?;
                    val(Method::ArrContains, all(self, args, T::String, recv)?, T::Bool)
                }
                _ => err(at, format!("'string[]' has no supported method '{name}' (supported: First, Last, FirstOrDefault, LastOrDefault, Count, Contains, Length, [i])")),
            },
            T::DateTime => {
                let scale = match name {
                    "AddMilliseconds" => 1e4,
                    "AddSeconds" => 1e7,
                    "AddMinutes" => 6e8,
                    "AddHours" => 3.6e10,
                    "AddDays" => 8.64e11,
                    "AddTicks" => 1.0,
                    "ToUniversalTime" => {
                        arity(n == 0, "0")?;
                        return Ok(Checked::Val(recv, T::DateTime));
                    }
                    _ => return err(at, format!("'DateTime' has no supported method '{name}' (supported: AddMilliseconds, AddSeconds, AddMinutes, AddHours, AddDays, AddTicks, ToUniversalTime, ToString)")),
                };
                arity(n == 1, "1")?;
                val(Method::AddTime(scale), all(self, args, T::Double, recv)?, T::DateTime)
            }
            t => err(at, format!("'{t}' has no supported method '{name}'")),
        }
    }
}

/// A call argument, checked before the call is resolved.
struct CArg {
    /// Taken when the argument is used.
    c: Option<Checked>,
    at: usize,
    name: Option<(String, usize)>,
}

fn cmp_arg(a: &CArg) -> Result<StrCmp, ExprError> {
    match a.c {
        Some(Checked::Enum(EnumVal::Cmp(c))) => Ok(c),
        _ => err(
            a.at,
            "expected a StringComparison value, e.g. StringComparison.OrdinalIgnoreCase",
        ),
    }
}

/// The implicit conversion of an argument, or an error naming its position.
fn convert_arg(ir: Ir, t: Type, want: Type, at: usize, pos: usize) -> Result<Ir, ExprError> {
    let ok = t == want
        || want == Type::Object
        || t == Type::Object
        || (t == Type::Null
            && matches!(
                want,
                Type::String | Type::StrArray | Type::Jwt | Type::DateTime
            ))
        || (t == Type::Int && want == Type::Double);
    if !ok {
        return err(
            at,
            format!("argument {pos}: cannot convert from '{t}' to '{want}'"),
        );
    }
    Ok(coerce(ir, t, want))
}

fn dict_of(h: Handle) -> (Dict, Type) {
    match h {
        Handle::Headers(side) => (Dict::Headers(side), Type::StrArray),
        Handle::Query => (Dict::Query, Type::StrArray),
        Handle::Claims(ir) => (Dict::Claims(ir), Type::StrArray),
        _ => (Dict::Matched, Type::String),
    }
}

/// Converts a branch of `?:` or `??` to the unified type.
fn coerce_branch(ir: Ir, from: Type, to: Type) -> Ir {
    match (from, to) {
        (Type::Int, Type::Double) => Ir::ToDouble(Box::new(ir)),
        _ => ir,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::{parse, Mode};
    use super::*;

    fn ty(src: &str) -> Type {
        match parse(src, Mode::Auto).and_then(|p| check(&p)) {
            Ok(c) => c.ty,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn err_of(src: &str) -> ExprError {
        match parse(src, Mode::Auto).and_then(|p| check(&p)) {
            Ok(c) => panic!("{src}: expected an error, got type {}", c.ty),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn rejects(src: &str, offset: usize, needle: &str) {
        let e = err_of(src);
        assert_eq!(e.offset, offset, "{src}: {e}");
        assert!(e.message.contains(needle), "{src}: {e}");
    }

    #[test]
    fn types_of_members() {
        assert_eq!(ty("context.Request.Method"), Type::String);
        assert_eq!(ty("context.Request.Url.Port"), Type::Int);
        assert_eq!(ty("context.Request.Url"), Type::String);
        assert_eq!(ty("context.Request.Headers[\"a\"]"), Type::StrArray);
        assert_eq!(ty("context.Request.MatchedParameters[\"a\"]"), Type::String);
        assert_eq!(ty("context.Variables[\"a\"]"), Type::Object);
        assert_eq!(
            ty("context.Variables.GetValueOrDefault<int>(\"a\")"),
            Type::Int
        );
        assert_eq!(
            ty("context.Variables.GetValueOrDefault(\"a\", 1.5)"),
            Type::Double
        );
        assert_eq!(
            ty("context.Variables.GetValueOrDefault(\"a\")"),
            Type::Object
        );
        assert_eq!(ty("context.Subscription?.Id"), Type::String);
        assert_eq!(ty("\"a\".AsJwt()?.Audiences"), Type::StrArray);
        assert_eq!(ty("\"a\".AsJwt().ExpirationTime"), Type::DateTime);
        assert_eq!(ty("DateTime.UtcNow.AddSeconds(1).Ticks"), Type::Int);
        assert_eq!(ty("1 + 2.0"), Type::Double);
        assert_eq!(ty("1 + \"a\""), Type::String);
        assert_eq!(ty("true ? 1 : 2.5"), Type::Double);
        assert_eq!(ty("null ?? \"a\""), Type::String);
        assert_eq!(ty("(string)context.Variables[\"a\"]"), Type::String);
        assert_eq!(ty("(long)1.5"), Type::Int);
        assert_eq!(ty("$\"a{1}\""), Type::String);
        assert_eq!(ty("context.Subscription == null"), Type::Bool);
        assert_eq!(
            ty("var x = 1; if (x > 0) { return 2.5; } return x;"),
            Type::Double
        );
        assert_eq!(ty("return null;"), Type::Null);
        assert_eq!(
            ty("var h = context.Request.Headers; return h.GetValueOrDefault(\"a\", \"\");"),
            Type::String
        );
    }

    #[test]
    fn type_errors_have_offsets() {
        rejects("!1", 0, "'!'");
        rejects("1 && true", 0, "must be a bool");
        rejects("true && \"x\"", 8, "must be a bool");
        rejects("\"a\" == 1", 4, "cannot compare");
        rejects("\"a\" < \"b\"", 4, "cannot be applied");
        rejects("context.Foo", 8, "no member 'Foo'");
        rejects("context.Request.Methd", 16, "supported: Method");
        rejects(
            "context.Request.Headers.GetValueOrDefault(1, \"\")",
            42,
            "argument 1",
        );
        rejects(
            "context.Request.Headers.GetValueOrDefault()",
            24,
            "takes 1 to 2",
        );
        rejects("\"a\".Substring(\"b\")", 14, "argument 1");
        rejects("\"a\".ToLower(1)", 4, "takes 0");
        rejects("\"a\".Frobnicate()", 4, "no supported method");
        rejects("1 - \"a\"", 2, "'-'");
        rejects("x", 0, "unknown name 'x'");
        rejects("context.Request", 8, "not a value");
        rejects("context.Request.Headers", 16, "not a value");
        rejects("context.Variables[\"a\"].Length", 23, "cast it first");
        rejects("(int)\"a\"", 0, "cannot convert");
        rejects("(JObject)context.Variables[\"a\"]", 1, "JSON types");
        rejects("context.Request.Body.As<JObject>()", 24, "As<string>");
        rejects("context.Request.Body.As<int>()", 24, "only As<string>");
        rejects("context.RequestId", 8, "not supported");
        rejects("true ? 1 : \"a\"", 5, "no implicit conversion");
        rejects("\"a\".Contains(\"b\", 5)", 18, "StringComparison");
        rejects("\"a\".Contains(x: \"b\")", 13, "named arguments");
        rejects("\"a\".Length<int>()", 11, "type argument");
        rejects("context.Request == null", 16, "never null");
        rejects(
            "StringComparison.Ordinal",
            17,
            "only allowed as method arguments",
        );
        rejects("var x = 1; return y;", 18, "unknown name 'y'");
        rejects("var x = 1; var x = 2; return x;", 15, "already defined");
        rejects("var x = null; return x;", 8, "implicitly-typed");
        rejects("string s = 1; return s;", 11, "cannot implicitly convert");
        rejects(
            "var x = 1; if (x > 0) { return 1; }",
            11,
            "not all code paths",
        );
        rejects("if (1) { return 1; } return 2;", 4, "must be a bool");
        rejects(
            "if (true) { return 1; } return \"a\";",
            24,
            "return types differ",
        );
        rejects(
            "int n = 1; n = \"a\"; return n;",
            15,
            "cannot implicitly convert",
        );
        rejects(
            "var h = context.Request.Headers; h = 1; return 1;",
            33,
            "alias",
        );
    }
}
