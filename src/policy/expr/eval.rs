//! The evaluator: walks a checked tree against one request's [`Context`]. Values borrow
//! from the tree (literals) and from the context (headers, variables) where they can, so
//! `context.Request.Method == "GET"` allocates nothing. Every failure C# would throw
//! (null dereference, bad cast, index or key not found, bad format, overflow) is an
//! [`EvalError`]; nothing here panics or indexes unchecked. String positions and lengths
//! are in UTF-16 code units, as in .NET.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::check::{
    Arith, Body, CmpOp, Code, Const, DatePart, Dict, DictOp, Field, Ir, JwtField, Method, Parent,
    Side, StrCmp, TStmt, TrimSide, VarOp,
};
use super::csfmt::{self, civil, format_datetime, format_double, MAX_TICKS, TICKS_PER_DAY};
use super::jwt::parse_jwt;
use super::{EvalError, Type};
use crate::policy::context::{Context, Headers, Jwt, LastError, Response, Subscription, Value};

/// A string during evaluation: borrowed from the tree or the context, shared, or owned.
#[derive(Debug, Clone)]
pub(crate) enum Text<'a> {
    Ref(&'a str),
    Arc(Arc<str>),
    Own(String),
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Ref(s) => s,
            Text::Arc(s) => s,
            Text::Own(s) => s,
        }
    }
}

impl Text<'_> {
    fn into_string(self) -> String {
        match self {
            Text::Own(s) => s,
            other => other.to_string(),
        }
    }

    fn into_arc(self) -> Arc<str> {
        match self {
            Text::Arc(r) => r,
            Text::Ref(s) => Arc::from(s),
            Text::Own(s) => Arc::from(s),
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone)]
pub(crate) enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Text<'a>),
    Arr(Arc<[Arc<str>]>),
    /// A UTC `DateTime` as .NET ticks.
    Time(i64),
    Jwt(Arc<Jwt>),
}

impl<'a> V<'a> {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            V::Null => "null",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Double(_) => "double",
            V::Str(_) => "string",
            V::Arr(_) => "string[]",
            V::Time(_) => "DateTime",
            V::Jwt(_) => "Jwt",
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(b),
            V::Int(i) => Value::Int(i),
            V::Double(d) => Value::Double(d),
            V::Str(s) => Value::Str(s.into_arc()),
            V::Arr(a) => Value::StrArray(a),
            V::Time(t) => Value::DateTime(csfmt::system_from_ticks(t).unwrap_or(UNIX_EPOCH)),
            V::Jwt(j) => Value::Jwt(j),
        }
    }

    /// C#'s string conversion: `null` is "", bools are "True"/"False".
    pub(crate) fn into_string(self) -> String {
        match self {
            V::Str(s) => s.into_string(),
            other => {
                let mut out = String::new();
                push_cs(&mut out, &other);
                out
            }
        }
    }

    fn from_value(v: &'a Value) -> V<'a> {
        match v {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(*b),
            Value::Int(i) => V::Int(*i),
            Value::Double(d) => V::Double(*d),
            Value::Str(s) => V::Str(Text::Ref(s)),
            Value::StrArray(a) => V::Arr(a.clone()),
            Value::DateTime(t) => V::Time(csfmt::ticks_from_system(*t)),
            Value::Jwt(j) => V::Jwt(j.clone()),
        }
    }

    /// The same value, cheap to clone (for locals, which are read more than written).
    fn shared(self) -> V<'a> {
        match self {
            V::Str(Text::Own(s)) => V::Str(Text::Arc(Arc::from(s))),
            v => v,
        }
    }
}

/// Appends `v` as C# converts it to a string.
fn push_cs(out: &mut String, v: &V) {
    match v {
        V::Null => {}
        V::Bool(true) => out.push_str("True"),
        V::Bool(false) => out.push_str("False"),
        V::Int(i) => {
            let _ = write!(out, "{i}");
        }
        V::Double(d) => out.push_str(&format_double(*d)),
        V::Str(s) => out.push_str(s),
        V::Arr(_) => out.push_str("System.String[]"),
        V::Time(t) => out.push_str(&format_datetime(*t, "").unwrap_or_default()),
        V::Jwt(_) => out.push_str("Jwt"),
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::new(msg))
}

fn null_ref<T>(what: &str) -> Result<T, EvalError> {
    fail(format!("null reference: {what} is null"))
}

/// Runs a compiled program.
pub(crate) fn run<'a>(code: &'a Code, cx: &'a Context) -> Result<V<'a>, EvalError> {
    let mut ev = Ev {
        cx,
        locals: vec![V::Null; code.slots],
        now: None,
    };
    match &code.body {
        Body::Expr(ir) => ev.eval(ir),
        Body::Block(stmts) => Ok(ev.exec(stmts)?.unwrap_or(V::Null)),
    }
}

struct Ev<'a> {
    cx: &'a Context,
    locals: Vec<V<'a>>,
    /// `DateTime.UtcNow`, read once per evaluation.
    now: Option<i64>,
}

impl<'a> Ev<'a> {
    fn exec(&mut self, stmts: &'a [TStmt]) -> Result<Option<V<'a>>, EvalError> {
        for s in stmts {
            match s {
                TStmt::Set(slot, ir) => {
                    let v = self.eval(ir)?.shared();
                    self.set(*slot, v);
                }
                TStmt::If(c, a, b) => {
                    let branch = if self.truth(c)? { a } else { b };
                    if let Some(v) = self.exec(branch)? {
                        return Ok(Some(v));
                    }
                }
                TStmt::Return(ir) => return Ok(Some(self.eval(ir)?)),
            }
        }
        Ok(None)
    }

    fn set(&mut self, slot: u32, v: V<'a>) {
        if let Some(l) = self.locals.get_mut(slot as usize) {
            *l = v;
        }
    }

    fn truth(&mut self, ir: &'a Ir) -> Result<bool, EvalError> {
        match self.eval(ir)? {
            V::Bool(b) => Ok(b),
            V::Null => fail("a condition is null"),
            v => fail(format!("expected a bool, got {}", v.type_name())),
        }
    }

    /// The recursion of evaluation goes through here: every arm is one call, so the
    /// frame stays small and deep (bounded) trees fit on a thread stack.
    fn eval(&mut self, ir: &'a Ir) -> Result<V<'a>, EvalError> {
        match ir {
            Ir::Const(c) => Ok(konst(c)),
            Ir::Local(slot) => Ok(self.locals.get(*slot as usize).cloned().unwrap_or(V::Null)),
            Ir::Field(f) => self.field(*f),
            Ir::IsNull(p) => Ok(V::Bool(self.is_null(*p))),
            Ir::Dict { dict, key, op } => self.dict(dict, key, op),
            Ir::Var { key, op } => self.var(key, op),
            Ir::Not(a) => self.eval(a).and_then(not),
            Ir::Neg(a) => self.eval(a).and_then(neg),
            Ir::Arith(op, a, b) => self.arith(*op, a, b),
            Ir::Concat(parts) => self.concat(parts),
            Ir::Cmp(op, a, b) => self.compare(*op, a, b),
            Ir::And(a, b) => Ok(V::Bool(self.truth(a)? && self.truth(b)?)),
            Ir::Or(a, b) => Ok(V::Bool(self.truth(a)? || self.truth(b)?)),
            Ir::Coalesce(a, b) => self.coalesce(a, b),
            Ir::Cond(c, a, b) => self.cond(c, a, b),
            Ir::Unbox(t, a) => self.eval(a).and_then(|v| unbox(*t, v)),
            Ir::ToDouble(a) => self.eval(a).and_then(to_double),
            Ir::ToInt(a) => self.eval(a).and_then(to_int),
            Ir::NullCond { target, slot, body } => self.null_cond(target, *slot, body),
            Ir::Call(m, args) => self.call(*m, args),
        }
    }

    fn arith(&mut self, op: Arith, a: &'a Ir, b: &'a Ir) -> Result<V<'a>, EvalError> {
        let a = self.eval(a)?;
        let b = self.eval(b)?;
        arith(op, a, b)
    }

    fn compare(&mut self, op: CmpOp, a: &'a Ir, b: &'a Ir) -> Result<V<'a>, EvalError> {
        let a = self.eval(a)?;
        let b = self.eval(b)?;
        compare(op, &a, &b).map(V::Bool)
    }

    fn concat(&mut self, parts: &'a [Ir]) -> Result<V<'a>, EvalError> {
        let mut out = String::new();
        for p in parts {
            let v = self.eval(p)?;
            push_cs(&mut out, &v);
        }
        Ok(V::Str(Text::Own(out)))
    }

    fn coalesce(&mut self, a: &'a Ir, b: &'a Ir) -> Result<V<'a>, EvalError> {
        match self.eval(a)? {
            V::Null => self.eval(b),
            v => Ok(v),
        }
    }

    fn cond(&mut self, c: &'a Ir, a: &'a Ir, b: &'a Ir) -> Result<V<'a>, EvalError> {
        if self.truth(c)? {
            self.eval(a)
        } else {
            self.eval(b)
        }
    }

    fn null_cond(&mut self, target: &'a Ir, slot: u32, body: &'a Ir) -> Result<V<'a>, EvalError> {
        match self.eval(target)? {
            V::Null => Ok(V::Null),
            v => {
                self.set(slot, v.shared());
                self.eval(body)
            }
        }
    }

    fn is_null(&self, p: Parent) -> bool {
        match p {
            Parent::Response => self.cx.response.is_none(),
            Parent::Subscription => self.cx.deployment.subscription.is_none(),
            Parent::Product => self.cx.deployment.product_id.is_none(),
            Parent::LastError => self.cx.last_error.is_none(),
        }
    }

    fn now(&mut self) -> i64 {
        *self.now.get_or_insert_with(|| {
            csfmt::ticks_from_system(self.cx.now.unwrap_or_else(SystemTime::now))
        })
    }

    fn response(&self) -> Result<&'a Response, EvalError> {
        match &self.cx.response {
            Some(r) => Ok(r),
            None => null_ref("context.Response"),
        }
    }

    fn subscription(&self) -> Result<&'a Subscription, EvalError> {
        match &self.cx.deployment.subscription {
            Some(s) => Ok(s),
            None => null_ref("context.Subscription"),
        }
    }

    fn last_error(&self) -> Result<&'a LastError, EvalError> {
        match &self.cx.last_error {
            Some(e) => Ok(e),
            None => null_ref("context.LastError"),
        }
    }

    fn headers(&self, side: Side) -> Result<&'a Headers, EvalError> {
        match side {
            Side::Request => Ok(&self.cx.request.headers),
            Side::Response => Ok(&self.response()?.headers),
        }
    }

    fn field(&mut self, f: Field) -> Result<V<'a>, EvalError> {
        let cx = self.cx;
        let r = &cx.request;
        let d = &cx.deployment;
        let s = |s: &'a str| V::Str(Text::Ref(s));
        Ok(match f {
            Field::Method => s(&r.method),
            Field::UrlPath => s(&r.path),
            Field::UrlHost => s(&r.host),
            Field::UrlPort => V::Int(i64::from(r.port)),
            Field::UrlScheme => s(&r.scheme),
            Field::UrlQueryString => V::Str(Text::Own(query_string(&r.query))),
            Field::UrlString => {
                let mut out = format!("{}://{}", r.scheme, r.host);
                let default_port = matches!(
                    (r.scheme.as_str(), r.port),
                    ("http", 80) | ("https", 443) | (_, 0)
                );
                if !default_port {
                    let _ = write!(out, ":{}", r.port);
                }
                out.push_str(&r.path);
                out.push_str(&query_string(&r.query));
                V::Str(Text::Own(out))
            }
            Field::IpAddress => match r.ip {
                Some(ip) => V::Str(Text::Own(ip.to_string())),
                None => V::Null,
            },
            Field::Body(side) => {
                let body = match side {
                    Side::Request => &r.body,
                    Side::Response => &self.response()?.body,
                };
                match body.as_deref() {
                    None => s(""),
                    Some(b) => match std::str::from_utf8(b) {
                        Ok(t) => s(t),
                        Err(_) => V::Str(Text::Own(String::from_utf8_lossy(b).into_owned())),
                    },
                }
            }
            Field::StatusCode => V::Int(i64::from(self.response()?.status)),
            Field::StatusReason => s(&self.response()?.reason),
            Field::SubscriptionId => s(&self.subscription()?.id),
            Field::SubscriptionKey => s(&self.subscription()?.key),
            Field::SubscriptionName => s(&self.subscription()?.name),
            Field::ProductId => match &d.product_id {
                Some(p) => s(p),
                None => return null_ref("context.Product"),
            },
            Field::ApiId => s(&d.api_id),
            Field::ApiName => s(&d.api_name),
            Field::ApiPath => s(&d.api_path),
            Field::OperationId => s(&d.operation_id),
            Field::ErrorSource => s(&self.last_error()?.source),
            Field::ErrorReason => s(&self.last_error()?.reason),
            Field::ErrorMessage => s(&self.last_error()?.message),
            Field::ErrorScope => s(&self.last_error()?.scope),
            Field::ErrorSection => s(&self.last_error()?.section),
            Field::ErrorPolicyId => s(&self.last_error()?.policy_id),
            Field::GatewayId => s(&d.gateway_id),
            Field::Now => V::Time(self.now()),
        })
    }

    fn key(&mut self, key: &'a Ir) -> Result<Text<'a>, EvalError> {
        match self.eval(key)? {
            V::Str(s) => Ok(s),
            V::Null => fail("key is null"),
            v => fail(format!("a key must be a string, not {}", v.type_name())),
        }
    }

    fn dict(&mut self, dict: &'a Dict, key: &'a Ir, op: &'a DictOp) -> Result<V<'a>, EvalError> {
        let k = self.key(key)?;
        let jwt = match dict {
            Dict::Claims(j) => Some(self.eval(j)?),
            _ => None,
        };
        match self.lookup(dict, &k, jwt, op)? {
            Some(v) => Ok(v),
            None => match op {
                DictOp::Get(Some(d)) => self.eval(d),
                _ => Ok(V::Null),
            },
        }
    }

    /// A dictionary operation on an evaluated key; `None` when `GetValueOrDefault`
    /// misses and the default is to be used.
    #[inline(never)]
    fn lookup(
        &self,
        dict: &'a Dict,
        k: &str,
        jwt: Option<V<'a>>,
        op: &'a DictOp,
    ) -> Result<Option<V<'a>>, EvalError> {
        let not_found = |what: &str| fail(format!("key not found: {what} has no '{k}'"));
        // Values of the key, as owned strings (None: the key is absent).
        let values: Option<Vec<Cow<'a, str>>> = match dict {
            Dict::Headers(side) => {
                let h = self.headers(*side)?;
                let vals: Vec<Cow<'a, str>> =
                    h.0.iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| Cow::Borrowed(v.as_str()))
                        .collect();
                (!vals.is_empty()).then_some(vals)
            }
            Dict::Query => {
                let vals: Vec<Cow<'a, str>> = self
                    .cx
                    .request
                    .query
                    .iter()
                    .filter(|(n, _)| percent_decode(n) == k)
                    .map(|(_, v)| percent_decode(v))
                    .collect();
                (!vals.is_empty()).then_some(vals)
            }
            Dict::Matched => {
                let found = self
                    .cx
                    .request
                    .matched_parameters
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k));
                return match (op, found) {
                    (DictOp::Contains, f) => Ok(Some(V::Bool(f.is_some()))),
                    (_, Some((_, v))) => Ok(Some(V::Str(Text::Ref(v)))),
                    (DictOp::Index, None) => not_found("MatchedParameters"),
                    (DictOp::Get(_), None) => Ok(None),
                };
            }
            Dict::Claims(_) => {
                let j = match jwt {
                    Some(V::Jwt(j)) => j,
                    _ => return null_ref("the Jwt"),
                };
                j.claims
                    .get(k)
                    .map(|v| v.iter().map(|s| Cow::Owned(s.clone())).collect())
            }
        };
        match (op, values) {
            (DictOp::Contains, v) => Ok(Some(V::Bool(v.is_some()))),
            (DictOp::Get(_), None) => Ok(None),
            (DictOp::Get(_), Some(v)) if v.len() == 1 => {
                Ok(Some(V::Str(match v.into_iter().next() {
                    Some(Cow::Borrowed(s)) => Text::Ref(s),
                    Some(Cow::Owned(s)) => Text::Own(s),
                    None => Text::Ref(""),
                })))
            }
            (DictOp::Get(_), Some(v)) => Ok(Some(V::Str(Text::Own(v.join(","))))),
            (DictOp::Index, Some(v)) => Ok(Some(V::Arr(
                v.into_iter().map(|s| Arc::from(&*s)).collect(),
            ))),
            (DictOp::Index, None) => not_found(match dict {
                Dict::Headers(Side::Request) => "context.Request.Headers",
                Dict::Headers(Side::Response) => "context.Response.Headers",
                Dict::Query => "context.Request.Url.Query",
                _ => "Claims",
            }),
        }
    }

    fn var(&mut self, key: &'a Ir, op: &'a VarOp) -> Result<V<'a>, EvalError> {
        let k = self.key(key)?;
        let found = self.cx.variables.get(&*k).map(V::from_value);
        match (op, found) {
            (VarOp::Contains, f) => Ok(V::Bool(f.is_some())),
            (VarOp::Index, Some(v)) => Ok(v),
            (VarOp::Index, None) => {
                fail(format!("key not found: context.Variables has no '{}'", &*k))
            }
            (VarOp::Get { ty, .. }, Some(v)) => unbox(*ty, v),
            (
                VarOp::Get {
                    default: Some(d), ..
                },
                None,
            ) => self.eval(d),
            (VarOp::Get { ty, default: None }, None) => Ok(match ty {
                Type::Int => V::Int(0),
                Type::Double => V::Double(0.0),
                Type::Bool => V::Bool(false),
                _ => V::Null,
            }),
        }
    }

    /// Evaluates a method's receiver and arguments (C# order: all of them, then the
    /// call), then applies it. Kept small: it is on the recursion path.
    fn call(&mut self, m: Method, args: &'a [Ir]) -> Result<V<'a>, EvalError> {
        let mut small: [V<'a>; 3] = [V::Null, V::Null, V::Null];
        if args.len() <= small.len() {
            for (slot, a) in small.iter_mut().zip(args) {
                *slot = self.eval(a)?;
            }
            Args::apply(
                m,
                &mut Args {
                    vals: &mut small[..args.len()],
                },
            )
        } else {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(self.eval(a)?);
            }
            Args::apply(m, &mut Args { vals: &mut vals })
        }
    }
}

/// Evaluated method arguments; `vals[0]` is the receiver of an instance method.
struct Args<'v, 'a> {
    vals: &'v mut [V<'a>],
}

impl<'a> Args<'_, 'a> {
    fn len(&self) -> usize {
        self.vals.len()
    }

    /// Takes argument `i` (null when absent).
    fn arg(&mut self, i: usize) -> Result<V<'a>, EvalError> {
        Ok(self
            .vals
            .get_mut(i)
            .map_or(V::Null, |v| std::mem::replace(v, V::Null)))
    }

    /// The receiver of an instance method: an error when null.
    fn recv(&mut self, method: &str) -> Result<V<'a>, EvalError> {
        match self.arg(0)? {
            V::Null => fail(format!("null reference: '{method}' called on null")),
            v => Ok(v),
        }
    }

    fn str_arg(&mut self, i: usize, what: &str) -> Result<Text<'a>, EvalError> {
        match self.arg(i)? {
            V::Str(s) => Ok(s),
            V::Null => fail(format!("argument null: {what} is null")),
            v => fail(format!("{what} must be a string, not {}", v.type_name())),
        }
    }

    fn int_arg(&mut self, i: usize, what: &str) -> Result<i64, EvalError> {
        match self.arg(i)? {
            V::Int(n) => Ok(n),
            v => fail(format!("{what} must be an int, not {}", v.type_name())),
        }
    }

    fn recv_str(&mut self, method: &str) -> Result<Text<'a>, EvalError> {
        match self.recv(method)? {
            V::Str(s) => Ok(s),
            v => fail(format!("'{method}' needs a string, not {}", v.type_name())),
        }
    }

    fn recv_arr(&mut self, method: &str) -> Result<Arc<[Arc<str>]>, EvalError> {
        match self.recv(method)? {
            V::Arr(a) => Ok(a),
            v => fail(format!(
                "'{method}' needs a string[], not {}",
                v.type_name()
            )),
        }
    }

    fn recv_time(&mut self, method: &str) -> Result<i64, EvalError> {
        match self.recv(method)? {
            V::Time(t) => Ok(t),
            v => fail(format!(
                "'{method}' needs a DateTime, not {}",
                v.type_name()
            )),
        }
    }

    /// The method itself, on evaluated arguments; never recurses into evaluation.
    #[inline(never)]
    fn apply(m: Method, av: &mut Args<'_, 'a>) -> Result<V<'a>, EvalError> {
        let own = |s: String| Ok(V::Str(Text::Own(s)));
        match m {
            Method::ToLower => {
                let s = av.recv_str("ToLower")?;
                own(if s.is_ascii() {
                    s.to_ascii_lowercase()
                } else {
                    s.to_lowercase()
                })
            }
            Method::ToUpper => {
                let s = av.recv_str("ToUpper")?;
                own(if s.is_ascii() {
                    s.to_ascii_uppercase()
                } else {
                    s.to_uppercase()
                })
            }
            Method::Contains(c) => {
                let s = av.recv_str("Contains")?;
                let n = av.str_arg(1, "value")?;
                Ok(V::Bool(find(&s, &n, c).is_some()))
            }
            Method::StartsWith(c) => {
                let s = av.recv_str("StartsWith")?;
                let n = av.str_arg(1, "value")?;
                Ok(V::Bool(match c {
                    StrCmp::Ordinal => s.starts_with(&*n),
                    StrCmp::IgnoreCase => prefix_ci(&s, &n).is_some(),
                }))
            }
            Method::EndsWith(c) => {
                let s = av.recv_str("EndsWith")?;
                let n = av.str_arg(1, "value")?;
                Ok(V::Bool(match c {
                    StrCmp::Ordinal => s.ends_with(&*n),
                    StrCmp::IgnoreCase => {
                        let (a, b): (Vec<char>, Vec<char>) =
                            (s.chars().collect(), n.chars().collect());
                        a.len() >= b.len()
                            && a[a.len() - b.len()..]
                                .iter()
                                .zip(&b)
                                .all(|(x, y)| char_eq_ci(*x, *y))
                    }
                }))
            }
            Method::IndexOf(c) => {
                let s = av.recv_str("IndexOf")?;
                let n = av.str_arg(1, "value")?;
                Ok(V::Int(match find(&s, &n, c) {
                    Some(b) => utf16_len(&s[..b]),
                    None => -1,
                }))
            }
            Method::LastIndexOf(c) => {
                let s = av.recv_str("LastIndexOf")?;
                let n = av.str_arg(1, "value")?;
                let pos = match c {
                    StrCmp::Ordinal => s.rfind(&*n),
                    StrCmp::IgnoreCase => s
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain(std::iter::once(s.len()))
                        .rev()
                        .find(|&i| prefix_ci(&s[i..], &n).is_some()),
                };
                Ok(V::Int(pos.map_or(-1, |b| utf16_len(&s[..b]))))
            }
            Method::Equals(c) => {
                let s = av.recv_str("Equals")?;
                Ok(V::Bool(match av.arg(1)? {
                    V::Str(n) => str_eq(&s, &n, c),
                    _ => false,
                }))
            }
            Method::StaticEquals(c) => {
                let a = av.arg(0)?;
                let b = av.arg(1)?;
                Ok(V::Bool(match (a, b) {
                    (V::Null, V::Null) => true,
                    (V::Str(a), V::Str(b)) => str_eq(&a, &b, c),
                    _ => false,
                }))
            }
            Method::ObjEquals => {
                let a = av.recv("Equals")?;
                let b = av.arg(1)?;
                Ok(V::Bool(equal(&a, &b)))
            }
            Method::Substring => {
                let s = av.recv_str("Substring")?;
                let start = av.int_arg(1, "startIndex")?;
                let len = utf16_len(&s);
                let count = match av.len() {
                    3 => av.int_arg(2, "length")?,
                    _ => len.saturating_sub(start),
                };
                if start < 0 || count < 0 || start > len || count > len - start {
                    return fail(format!(
                        "argument out of range: Substring({start}, {count}) on a string of length {len}"
                    ));
                }
                Ok(V::Str(utf16_slice(s, start as usize, count as usize)))
            }
            Method::Replace => {
                let s = av.recv_str("Replace")?;
                let from = av.str_arg(1, "oldValue")?;
                if from.is_empty() {
                    return fail("argument error: Replace: oldValue cannot be empty");
                }
                let to = match av.arg(2)? {
                    V::Str(t) => t,
                    _ => Text::Ref(""),
                };
                own(s.replace(&*from, &to))
            }
            Method::Split { remove_empty, trim } => {
                let s = av.recv_str("Split")?;
                let mut seps: Vec<Text<'a>> = Vec::new();
                for i in 1..av.len() {
                    if let V::Str(t) = av.arg(i)? {
                        seps.push(t);
                    }
                }
                Ok(V::Arr(split(&s, &seps, remove_empty, trim)))
            }
            Method::Trim(side) => {
                let s = av.recv_str("Trim")?;
                let mut chars: Vec<char> = Vec::new();
                for i in 1..av.len() {
                    if let V::Str(t) = av.arg(i)? {
                        chars.extend(t.chars());
                    }
                }
                let pat = |c: char| {
                    if chars.is_empty() {
                        c.is_whitespace()
                    } else {
                        chars.contains(&c)
                    }
                };
                let trimmed = match side {
                    TrimSide::Both => s.trim_matches(pat),
                    TrimSide::Start => s.trim_start_matches(pat),
                    TrimSide::End => s.trim_end_matches(pat),
                };
                if trimmed.len() == s.len() {
                    return Ok(V::Str(s));
                }
                own(trimmed.to_string())
            }
            Method::PadLeft | Method::PadRight => {
                let s = av.recv_str("Pad")?;
                let width = av.int_arg(1, "totalWidth")?;
                let pad = match av.arg(2)? {
                    V::Str(p) => p.chars().next().unwrap_or(' '),
                    _ => ' ',
                };
                if width < 0 {
                    return fail("argument out of range: totalWidth is negative");
                }
                let len = utf16_len(&s);
                if width <= len {
                    return Ok(V::Str(s));
                }
                if width > 1 << 20 {
                    return fail("argument out of range: totalWidth is too large");
                }
                let fill: String = std::iter::repeat_n(pad, (width - len) as usize).collect();
                own(if m == Method::PadLeft {
                    fill + &s
                } else {
                    s.to_string() + &fill
                })
            }
            Method::StrLength => {
                let s = av.recv_str("Length")?;
                Ok(V::Int(utf16_len(&s)))
            }
            Method::CharAt => {
                let s = av.recv_str("[]")?;
                let i = av.int_arg(1, "index")?;
                if i < 0 || i >= utf16_len(&s) {
                    return fail("index out of range: index was outside the bounds of the string");
                }
                Ok(V::Str(utf16_slice(s, i as usize, 1)))
            }
            Method::IsNullOrEmpty => Ok(V::Bool(match av.arg(0)? {
                V::Str(s) => s.is_empty(),
                _ => true,
            })),
            Method::IsNullOrWhiteSpace => Ok(V::Bool(match av.arg(0)? {
                V::Str(s) => s.chars().all(char::is_whitespace),
                _ => true,
            })),
            Method::Join => {
                let sep = match av.arg(0)? {
                    V::Str(s) => s,
                    _ => Text::Ref(""),
                };
                let mut out = String::new();
                if av.len() == 2 {
                    match av.arg(1)? {
                        V::Arr(a) => return own(a.join(&*sep)),
                        V::Null => return fail("argument null: values is null"),
                        v => {
                            push_cs(&mut out, &v);
                            return own(out);
                        }
                    }
                }
                for i in 1..av.len() {
                    if i > 1 {
                        out.push_str(&sep);
                    }
                    let v = av.arg(i)?;
                    push_cs(&mut out, &v);
                }
                own(out)
            }
            Method::Format => {
                let f = av.str_arg(0, "format")?;
                let mut vals = Vec::with_capacity(av.len().saturating_sub(1));
                for i in 1..av.len() {
                    vals.push(av.arg(i)?);
                }
                own(composite_format(&f, &vals)?)
            }
            Method::ToStr => {
                let v = av.recv("ToString")?;
                match v {
                    V::Str(s) => Ok(V::Str(s)),
                    v => own(v.into_string()),
                }
            }
            Method::ToStrFormat => {
                let v = av.arg(0)?;
                let f = av.str_arg(1, "format")?;
                own(format_with(&v, &f)?)
            }
            Method::Parse(t) => {
                let s = av.str_arg(0, "s")?;
                let bad = || fail(format!("format error: '{}' is not a valid {t}", &*s));
                let trimmed = s.trim();
                match t {
                    Type::Int => trimmed.parse::<i64>().map(V::Int).or_else(|_| bad()),
                    Type::Double => {
                        let ok = !trimmed.is_empty()
                            && trimmed
                                .chars()
                                .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                            || matches!(trimmed, "NaN" | "Infinity" | "-Infinity");
                        match trimmed.parse::<f64>() {
                            Ok(d) if ok => Ok(V::Double(d)),
                            _ => bad(),
                        }
                    }
                    _ => {
                        if trimmed.eq_ignore_ascii_case("true") {
                            Ok(V::Bool(true))
                        } else if trimmed.eq_ignore_ascii_case("false") {
                            Ok(V::Bool(false))
                        } else {
                            bad()
                        }
                    }
                }
            }
            Method::AsJwt => Ok(match av.arg(0)? {
                V::Str(s) => match parse_jwt(&s) {
                    Some(j) => V::Jwt(Arc::new(j)),
                    None => V::Null,
                },
                _ => V::Null,
            }),
            Method::Jwt(f) => {
                let j = match av.recv("Jwt")? {
                    V::Jwt(j) => j,
                    v => return fail(format!("expected a Jwt, got {}", v.type_name())),
                };
                let s = |o: &Option<String>| match o {
                    Some(s) => V::Str(Text::Own(s.clone())),
                    None => V::Null,
                };
                let t = |o: &Option<SystemTime>| match o {
                    Some(t) => V::Time(csfmt::ticks_from_system(*t)),
                    None => V::Null,
                };
                Ok(match f {
                    JwtField::Subject => s(&j.subject),
                    JwtField::Issuer => s(&j.issuer),
                    JwtField::Id => s(&j.id),
                    JwtField::Algorithm => s(&j.algorithm),
                    JwtField::Audiences => {
                        V::Arr(j.audiences.iter().map(|a| Arc::from(a.as_str())).collect())
                    }
                    JwtField::ExpirationTime => t(&j.expiration_time),
                    JwtField::NotBefore => t(&j.not_before),
                    JwtField::IssuedAt => t(&j.issued_at),
                })
            }
            Method::ArrLength => Ok(V::Int(av.recv_arr("Length")?.len() as i64)),
            Method::ArrFirst { or_default } | Method::ArrLast { or_default } => {
                let a = av.recv_arr("First")?;
                let item = if matches!(m, Method::ArrFirst { .. }) {
                    a.first()
                } else {
                    a.last()
                };
                match item {
                    Some(s) => Ok(V::Str(Text::Arc(s.clone()))),
                    None if or_default => Ok(V::Null),
                    None => fail("invalid operation: sequence contains no elements"),
                }
            }
            Method::ArrContains => {
                let a = av.recv_arr("Contains")?;
                Ok(V::Bool(match av.arg(1)? {
                    V::Str(s) => a.iter().any(|x| **x == *s),
                    _ => false,
                }))
            }
            Method::ArrIndex => {
                let a = av.recv_arr("[]")?;
                let i = av.int_arg(1, "index")?;
                match usize::try_from(i).ok().and_then(|i| a.get(i)) {
                    Some(s) => Ok(V::Str(Text::Arc(s.clone()))),
                    None => fail(format!(
                        "index out of range: index {i} is outside the bounds of an array of length {}",
                        a.len()
                    )),
                }
            }
            Method::AddTime(scale) => {
                let t = av.recv_time("Add")?;
                let n = match av.arg(1)? {
                    V::Double(d) => d,
                    V::Int(i) => i as f64,
                    v => return fail(format!("expected a number, got {}", v.type_name())),
                };
                let delta = n * scale;
                let out = (t as f64) + delta;
                if !delta.is_finite() || out < 0.0 || out > MAX_TICKS as f64 {
                    return fail(
                        "argument out of range: the result is not a representable DateTime",
                    );
                }
                let delta = delta.trunc() as i64;
                match t.checked_add(delta).filter(|v| (0..=MAX_TICKS).contains(v)) {
                    Some(v) => Ok(V::Time(v)),
                    None => {
                        fail("argument out of range: the result is not a representable DateTime")
                    }
                }
            }
            Method::DatePart(p) => {
                let t = av.recv_time("DateTime")?;
                let c = civil(t);
                Ok(match p {
                    DatePart::Year => V::Int(c.year),
                    DatePart::Month => V::Int(c.month),
                    DatePart::Day => V::Int(c.day),
                    DatePart::Hour => V::Int(c.hour),
                    DatePart::Minute => V::Int(c.minute),
                    DatePart::Second => V::Int(c.second),
                    DatePart::Millisecond => V::Int(c.fraction / 10_000),
                    DatePart::Ticks => V::Int(t),
                    DatePart::Date => V::Time(t - t % TICKS_PER_DAY),
                })
            }
            Method::HasValue => Ok(V::Bool(!matches!(av.arg(0)?, V::Null))),
            Method::ValueOf => match av.arg(0)? {
                V::Null => fail("invalid operation: nullable object must have a value"),
                v => Ok(v),
            },
        }
    }
}

fn konst(c: &Const) -> V<'_> {
    match c {
        Const::Null => V::Null,
        Const::Bool(b) => V::Bool(*b),
        Const::Int(i) => V::Int(*i),
        Const::Double(d) => V::Double(*d),
        Const::Str(s) => V::Str(Text::Ref(s)),
    }
}

fn not(v: V<'_>) -> Result<V<'_>, EvalError> {
    match v {
        V::Bool(b) => Ok(V::Bool(!b)),
        V::Null => Ok(V::Null),
        v => fail(format!(
            "operator '!' cannot be applied to {}",
            v.type_name()
        )),
    }
}

fn neg(v: V<'_>) -> Result<V<'_>, EvalError> {
    match v {
        V::Int(i) => Ok(V::Int(i.wrapping_neg())),
        V::Double(d) => Ok(V::Double(-d)),
        V::Null => Ok(V::Null),
        v => fail(format!(
            "operator '-' cannot be applied to {}",
            v.type_name()
        )),
    }
}

fn to_double(v: V<'_>) -> Result<V<'_>, EvalError> {
    match v {
        V::Int(i) => Ok(V::Double(i as f64)),
        v @ (V::Double(_) | V::Null) => Ok(v),
        v => fail(format!("cannot convert {} to double", v.type_name())),
    }
}

/// `(int)double`: truncation (saturating, where C# gives an unspecified value).
fn to_int(v: V<'_>) -> Result<V<'_>, EvalError> {
    match v {
        V::Double(d) => Ok(V::Int(d as i64)),
        v @ (V::Int(_) | V::Null) => Ok(v),
        v => fail(format!("cannot convert {} to int", v.type_name())),
    }
}

/// A checked conversion from `object` (C# unboxing: exact types only).
fn unbox(t: Type, v: V<'_>) -> Result<V<'_>, EvalError> {
    let ok = matches!(
        (t, &v),
        (Type::Object | Type::Null, _)
            | (Type::String, V::Str(_) | V::Null)
            | (Type::StrArray, V::Arr(_) | V::Null)
            | (Type::Jwt, V::Jwt(_) | V::Null)
            | (Type::DateTime, V::Time(_) | V::Null)
            | (Type::Int, V::Int(_))
            | (Type::Double, V::Double(_))
            | (Type::Bool, V::Bool(_))
    );
    if ok {
        Ok(v)
    } else if let V::Null = v {
        fail(format!("null reference: cannot convert null to '{t}'"))
    } else {
        fail(format!(
            "invalid cast: a {} value cannot be cast to '{t}'",
            v.type_name()
        ))
    }
}

fn arith<'a>(op: Arith, a: V<'a>, b: V<'a>) -> Result<V<'a>, EvalError> {
    Ok(match (a, b) {
        (V::Null, _) | (_, V::Null) => V::Null,
        (V::Int(x), V::Int(y)) => V::Int(match op {
            Arith::Add => x.wrapping_add(y),
            Arith::Sub => x.wrapping_sub(y),
            Arith::Mul => x.wrapping_mul(y),
            Arith::Div | Arith::Rem if y == 0 => return fail("attempted to divide by zero"),
            Arith::Div => match x.checked_div(y) {
                Some(v) => v,
                None => return fail("arithmetic overflow"),
            },
            Arith::Rem => match x.checked_rem(y) {
                Some(v) => v,
                None => return fail("arithmetic overflow"),
            },
        }),
        (a, b) => {
            let (x, y) = match (num(&a), num(&b)) {
                (Some(x), Some(y)) => (x, y),
                _ => {
                    return fail(format!(
                        "arithmetic on {} and {}",
                        a.type_name(),
                        b.type_name()
                    ))
                }
            };
            V::Double(match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                Arith::Rem => x % y,
            })
        }
    })
}

fn num(v: &V) -> Option<f64> {
    match v {
        V::Int(i) => Some(*i as f64),
        V::Double(d) => Some(*d),
        _ => None,
    }
}

/// `==` as C# does it for these types (value equality for strings and numbers,
/// reference equality for arrays and JWTs).
fn equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Str(x), V::Str(y)) => **x == **y,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Time(x), V::Time(y)) => x == y,
        (V::Arr(x), V::Arr(y)) => Arc::ptr_eq(x, y),
        (V::Jwt(x), V::Jwt(y)) => Arc::ptr_eq(x, y),
        (a, b) => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn compare(op: CmpOp, a: &V, b: &V) -> Result<bool, EvalError> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        _ if matches!(op, CmpOp::Eq) => return Ok(equal(a, b)),
        _ if matches!(op, CmpOp::Ne) => return Ok(!equal(a, b)),
        // Lifted comparisons with null are false.
        (V::Null, _) | (_, V::Null) => return Ok(false),
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Time(x), V::Time(y)) => Some(x.cmp(y)),
        (a, b) => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => {
                return fail(format!(
                    "cannot order {} and {}",
                    a.type_name(),
                    b.type_name()
                ))
            }
        },
    };
    Ok(match (op, ord) {
        (_, None) => false,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Eq | CmpOp::Ne, _) => false,
    })
}

fn char_eq_ci(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

fn str_eq(a: &str, b: &str, c: StrCmp) -> bool {
    match c {
        StrCmp::Ordinal => a == b,
        StrCmp::IgnoreCase => {
            a.chars().count() == b.chars().count()
                && a.chars().zip(b.chars()).all(|(x, y)| char_eq_ci(x, y))
        }
    }
}

/// If `s` starts with `prefix` ignoring case, the byte length of the matched part.
fn prefix_ci(s: &str, prefix: &str) -> Option<usize> {
    let mut it = s.char_indices();
    for p in prefix.chars() {
        let (_, c) = it.next()?;
        if !char_eq_ci(c, p) {
            return None;
        }
    }
    Some(it.next().map_or(s.len(), |(i, _)| i))
}

/// Byte position of `needle` in `s`.
fn find(s: &str, needle: &str, c: StrCmp) -> Option<usize> {
    match c {
        StrCmp::Ordinal => s.find(needle),
        StrCmp::IgnoreCase => s
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .find(|&i| prefix_ci(&s[i..], needle).is_some()),
    }
}

fn utf16_len(s: &str) -> i64 {
    if s.is_ascii() {
        s.len() as i64
    } else {
        s.encode_utf16().count() as i64
    }
}

/// `count` UTF-16 units from `start` (already range-checked).
fn utf16_slice(s: Text<'_>, start: usize, count: usize) -> Text<'_> {
    if s.is_ascii() {
        return match s {
            Text::Ref(r) => Text::Ref(r.get(start..start + count).unwrap_or("")),
            other => Text::Own(other.get(start..start + count).unwrap_or("").to_string()),
        };
    }
    let units: Vec<u16> = s.encode_utf16().skip(start).take(count).collect();
    Text::Own(String::from_utf16_lossy(&units))
}

fn split(s: &str, seps: &[Text<'_>], remove_empty: bool, trim: bool) -> Arc<[Arc<str>]> {
    let mut parts: Vec<&str> = Vec::new();
    if seps.is_empty() {
        parts.extend(s.split(char::is_whitespace));
    } else {
        let seps: Vec<&str> = seps
            .iter()
            .map(|t| &**t)
            .filter(|t| !t.is_empty())
            .collect();
        if seps.is_empty() {
            parts.push(s);
        } else if seps.len() == 1 {
            parts.extend(s.split(seps[0]));
        } else {
            let mut start = 0;
            let mut i = 0;
            while i < s.len() {
                match seps.iter().find(|sep| s[i..].starts_with(**sep)) {
                    Some(sep) => {
                        parts.push(&s[start..i]);
                        i += sep.len();
                        start = i;
                    }
                    None => {
                        i += s[i..].chars().next().map_or(1, char::len_utf8);
                    }
                }
            }
            parts.push(&s[start..]);
        }
    }
    parts
        .into_iter()
        .map(|p| if trim { p.trim() } else { p })
        .filter(|p| !(remove_empty && p.is_empty()))
        .map(Arc::from)
        .collect()
}

fn query_string(query: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Decodes `%XX` escapes and '+' (as a space) in a query name or value.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `{x:format}` and `x.ToString(format)`.
fn format_with(v: &V, f: &str) -> Result<String, EvalError> {
    match v {
        V::Time(t) => {
            format_datetime(*t, f).map_err(|e| EvalError::new(format!("format error: {e}")))
        }
        V::Int(_) | V::Double(_) if !f.is_empty() => fail(format!(
            "format error: numeric format strings ('{f}') are not supported"
        )),
        v => {
            let mut out = String::new();
            push_cs(&mut out, v);
            Ok(out)
        }
    }
}

/// `string.Format`: "{0}", "{1,-5}", "{2:yyyy}", "{{" and "}}".
fn composite_format(f: &str, vals: &[V]) -> Result<String, EvalError> {
    let bad = || fail("format error: input string was not in a correct format");
    let mut out = String::with_capacity(f.len() + 16);
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return bad(),
            '{' => {
                let mut spec = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => spec.push(c),
                        None => return bad(),
                    }
                }
                let (head, fmt) = match spec.split_once(':') {
                    Some((h, f)) => (h, Some(f)),
                    None => (spec.as_str(), None),
                };
                let (index, align) = match head.split_once(',') {
                    Some((i, a)) => (i, Some(a)),
                    None => (head, None),
                };
                let index: usize = match index.trim().parse() {
                    Ok(i) => i,
                    Err(_) => return bad(),
                };
                let Some(v) = vals.get(index) else {
                    return fail(
                        "format error: index must be less than the size of the argument list",
                    );
                };
                let text = match fmt {
                    Some(f) => format_with(v, f)?,
                    None => {
                        let mut s = String::new();
                        push_cs(&mut s, v);
                        s
                    }
                };
                match align.map(|a| a.trim().parse::<i64>()) {
                    None => out.push_str(&text),
                    Some(Err(_)) => return bad(),
                    Some(Ok(w)) => {
                        let width = w.unsigned_abs().min(1 << 16) as usize;
                        let len = text.chars().count();
                        let fill = " ".repeat(width.saturating_sub(len));
                        if w < 0 {
                            out.push_str(&text);
                            out.push_str(&fill);
                        } else {
                            out.push_str(&fill);
                            out.push_str(&text);
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cs_string_conversion() {
        assert_eq!(V::Bool(true).into_string(), "True");
        assert_eq!(V::Bool(false).into_string(), "False");
        assert_eq!(V::Null.into_string(), "");
        assert_eq!(V::Int(-5).into_string(), "-5");
        assert_eq!(V::Double(2.5).into_string(), "2.5");
        assert_eq!(V::Double(3.0).into_string(), "3");
        assert_eq!(V::Arr(Arc::from(vec![])).into_string(), "System.String[]");
        assert_eq!(
            V::Time(csfmt::UNIX_EPOCH_TICKS).into_string(),
            "01/01/1970 00:00:00"
        );
    }

    #[test]
    fn utf16_positions() {
        assert_eq!(utf16_len("héllo"), 5);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(&*utf16_slice(Text::Ref("héllo"), 1, 3), "éll");
        assert_eq!(&*utf16_slice(Text::Ref("a😀b"), 3, 1), "b");
    }

    #[test]
    fn splitting() {
        let t = |s: &'static str| Text::Ref(s);
        let got = |a: Arc<[Arc<str>]>| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got(split("a,b,,c", &[t(",")], false, false)),
            ["a", "b", "", "c"]
        );
        assert_eq!(
            got(split("a,b,,c", &[t(",")], true, false)),
            ["a", "b", "c"]
        );
        assert_eq!(
            got(split("a, b;c", &[t(","), t(";")], false, true)),
            ["a", "b", "c"]
        );
        assert_eq!(got(split("a b\tc", &[], false, false)), ["a", "b", "c"]);
        assert_eq!(got(split("abc", &[t("")], false, false)), ["abc"]);
        assert_eq!(got(split("x::y", &[t("::")], false, false)), ["x", "y"]);
    }

    #[test]
    fn composite_formats() {
        let vals = [V::Int(7), V::Str(Text::Ref("x")), V::Bool(true)];
        assert_eq!(composite_format("{0}-{1}-{2}", &vals).unwrap(), "7-x-True");
        assert_eq!(composite_format("{{{0}}}", &vals).unwrap(), "{7}");
        assert_eq!(
            composite_format("[{1,3}][{1,-3}]", &vals).unwrap(),
            "[  x][x  ]"
        );
        assert!(composite_format("{3}", &vals).is_err());
        assert!(composite_format("{0", &vals).is_err());
        assert!(composite_format("}", &vals).is_err());
        assert!(composite_format("{x}", &vals).is_err());
    }

    #[test]
    fn query_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed(_)));
    }
}
