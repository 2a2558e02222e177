//! End-to-end tests of the expression language: source text compiled and evaluated
//! against a populated `Context`, as policies use it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::jwt::tests::token;
use super::*;
use crate::policy::context::{
    Deployment, Headers, LastError, Request, Response, Subscription, Value,
};

/// 2024-03-05T07:08:09Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_709_622_489)
}

fn jwt() -> String {
    token(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"sub":"alice","iss":"https://idp.example","aud":["api://one","api://two"],
            "jti":"tok-1","exp":1709626089,"nbf":1709618889,"iat":1709618889,
            "roles":["reader","writer"],"tid":"t-9"}"#,
    )
}

fn cx() -> Context {
    let mut variables = HashMap::new();
    variables.insert("s".to_string(), Value::Str(Arc::from("hello")));
    variables.insert("n".to_string(), Value::Int(5));
    variables.insert("b".to_string(), Value::Bool(true));
    variables.insert("d".to_string(), Value::Double(1.5));
    variables.insert(
        "arr".to_string(),
        Value::StrArray(Arc::from(vec![Arc::from("x"), Arc::from("y")])),
    );
    variables.insert("nul".to_string(), Value::Null);
    variables.insert("when".to_string(), Value::DateTime(now()));
    Context {
        request: Request {
            method: "POST".into(),
            scheme: "https".into(),
            host: "api.example.com".into(),
            port: 8443,
            path: "/orders/42".into(),
            query: vec![
                ("a".into(), "1".into()),
                ("b".into(), "x%20y".into()),
                ("a".into(), "2".into()),
                ("empty".into(), "".into()),
            ],
            headers: Headers(vec![
                ("Authorization".into(), format!("Bearer {}", jwt())),
                ("X-Multi".into(), "a".into()),
                ("x-multi".into(), "b".into()),
                ("Content-Type".into(), "application/json".into()),
            ]),
            ip: Some("192.0.2.1".parse().unwrap()),
            matched_parameters: vec![("id".into(), "42".into())],
            body: Some(br#"{"k":1}"#.to_vec()),
        },
        response: Some(Response {
            status: 201,
            reason: "Created".into(),
            headers: Headers(vec![("ETag".into(), "\"v1\"".into())]),
            body: Some(b"ok".to_vec()),
        }),
        variables,
        deployment: Deployment {
            gateway_id: "gw-1".into(),
            api_id: "echo-api".into(),
            api_name: "Echo API".into(),
            api_path: "/echo".into(),
            operation_id: "get-order".into(),
            product_id: Some("starter".into()),
            subscription: Some(Subscription {
                id: "sub1".into(),
                name: "Sub One".into(),
                key: "k123".into(),
            }),
        },
        last_error: Some(LastError {
            source: "validate-jwt".into(),
            reason: "TokenExpired".into(),
            message: "expired".into(),
            scope: "api".into(),
            section: "inbound".into(),
            policy_id: "p1".into(),
        }),
        now: Some(now()),
        ..Context::default()
    }
}

#[track_caller]
fn compile(src: &str) -> Expr {
    match Expr::parse(src) {
        Ok(e) => e,
        Err(e) => panic!("{src}: {e}"),
    }
}

/// Evaluates to a string as a policy would.
#[track_caller]
fn s(src: &str) -> String {
    s_in(src, &cx())
}

#[track_caller]
fn s_in(src: &str, cx: &Context) -> String {
    match compile(src).eval_string(cx) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e}"),
    }
}

#[track_caller]
fn v(src: &str) -> Value {
    match compile(src).eval(&cx()) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e}"),
    }
}

#[track_caller]
fn rt_err(src: &str, needle: &str) {
    rt_err_in(src, &cx(), needle)
}

#[track_caller]
fn rt_err_in(src: &str, cx: &Context, needle: &str) {
    match compile(src).eval(cx) {
        Ok(v) => panic!("{src}: expected a run-time error, got {v:?}"),
        Err(e) => assert!(e.message.contains(needle), "{src}: {e}"),
    }
}

#[track_caller]
fn check_all(cases: &[(&str, &str)]) {
    for (src, want) in cases {
        assert_eq!(s(src), *want, "{src}");
    }
}

#[test]
fn literals() {
    check_all(&[
        (r#""a\"b\\c""#, "a\"b\\c"),
        (r#""\u0041\t|""#, "A\t|"),
        (r#"@"c:\x""y""#, "c:\\x\"y"),
        ("'a'", "a"),
        ("42", "42"),
        ("-7", "-7"),
        ("2.50", "2.5"),
        ("1e3", "1000"),
        ("true", "True"),
        ("false", "False"),
        ("null", ""),
        ("10L", "10"),
    ]);
    assert_eq!(v("null"), Value::Null);
    assert_eq!(v("1.5"), Value::Double(1.5));
    assert_eq!(v("\"x\""), Value::Str(Arc::from("x")));
    assert_eq!(compile("1").ty(), Type::Int);
    assert_eq!(compile("null").ty(), Type::Null);
}

#[test]
fn operators() {
    check_all(&[
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3"),
        ("-7 / 2", "-3"),
        ("7 % 3", "1"),
        ("-7 % 3", "-1"),
        ("7 / 2.0", "3.5"),
        ("1 - 0.5", "0.5"),
        ("-(3)", "-3"),
        ("!true", "False"),
        ("\"a\" + 1", "a1"),
        ("1 + 2 + \"a\"", "3a"),
        ("\"a\" + 1 + 2", "a12"),
        ("\"a\" + true", "aTrue"),
        ("\"a\" + null", "a"),
        ("null + \"a\"", "a"),
        ("\"x\" + 1.5", "x1.5"),
        ("\"a\" == \"a\"", "True"),
        ("\"a\" == \"A\"", "False"),
        ("\"a\" != \"b\"", "True"),
        ("1 == 1.0", "True"),
        ("2 > 1 && 1 >= 1 && 1 < 2 && 2 <= 2", "True"),
        ("1 > 2 || 3 > 2", "True"),
        ("true ? \"y\" : \"n\"", "y"),
        ("false ? 1 : 2.5", "2.5"),
        ("null ?? \"d\"", "d"),
        ("\"v\" ?? \"d\"", "v"),
        ("(string)null ?? \"d\"", "d"),
        ("(int)2.9", "2"),
        ("(int)-2.9", "-2"),
        ("(double)1 / 4", "0.25"),
        ("(long)5", "5"),
        ("(bool)true", "True"),
        ("(string)\"s\"", "s"),
        ("null == null", "True"),
        ("\"a\" == null", "False"),
        ("9223372036854775807 + 1", "-9223372036854775808"),
    ]);
    // Short-circuit: the right side would fail.
    check_all(&[
        ("false && context.Variables[\"missing\"] == null", "False"),
        ("true || context.Variables[\"missing\"] == null", "True"),
        (
            "\"x\" ?? context.Variables.GetValueOrDefault<string>(\"missing\").ToLower()",
            "x",
        ),
        ("true ? 1 : 1 / 0", "1"),
    ]);
}

#[test]
fn request_members() {
    check_all(&[
        ("context.Request.Method", "POST"),
        ("context.Request.Url.Path", "/orders/42"),
        ("context.Request.Url.Host", "api.example.com"),
        ("context.Request.Url.Port", "8443"),
        ("context.Request.Url.Scheme", "https"),
        ("context.Request.Url.QueryString", "?a=1&b=x%20y&a=2&empty="),
        (
            "context.Request.Url.ToString()",
            "https://api.example.com:8443/orders/42?a=1&b=x%20y&a=2&empty=",
        ),
        (
            "\"u=\" + context.Request.Url",
            "u=https://api.example.com:8443/orders/42?a=1&b=x%20y&a=2&empty=",
        ),
        (
            "context.Request.Url.Query.GetValueOrDefault(\"a\", \"d\")",
            "1,2",
        ),
        (
            "context.Request.Url.Query.GetValueOrDefault(\"b\", \"d\")",
            "x y",
        ),
        (
            "context.Request.Url.Query.GetValueOrDefault(\"zz\", \"d\")",
            "d",
        ),
        (
            "context.Request.Url.Query.GetValueOrDefault(\"zz\") == null",
            "True",
        ),
        (
            "context.Request.Url.Query.GetValueOrDefault(\"empty\", \"d\")",
            "",
        ),
        ("context.Request.Url.Query[\"a\"][1]", "2"),
        ("context.Request.Url.Query[\"a\"].First()", "1"),
        ("context.Request.Url.Query.ContainsKey(\"b\")", "True"),
        ("context.Request.Url.Query.ContainsKey(\"B\")", "False"),
        (
            "context.Request.Headers.GetValueOrDefault(\"content-type\", \"\")",
            "application/json",
        ),
        (
            "context.Request.Headers.GetValueOrDefault(\"X-Multi\", \"\")",
            "a,b",
        ),
        (
            "context.Request.Headers.GetValueOrDefault(\"Nope\", \"none\")",
            "none",
        ),
        (
            "context.Request.Headers.GetValueOrDefault(\"Nope\") ?? \"null\"",
            "null",
        ),
        ("context.Request.Headers[\"x-multi\"].Length", "2"),
        ("context.Request.Headers[\"X-MULTI\"][1]", "b"),
        (
            "context.Request.Headers.ContainsKey(\"authorization\")",
            "True",
        ),
        ("context.Request.Headers.ContainsKey(\"X-None\")", "False"),
        ("context.Request.IpAddress", "192.0.2.1"),
        ("context.Request.MatchedParameters[\"id\"]", "42"),
        (
            "context.Request.MatchedParameters.GetValueOrDefault(\"id\", \"\")",
            "42",
        ),
        (
            "context.Request.MatchedParameters.GetValueOrDefault(\"x\", \"d\")",
            "d",
        ),
        (
            "context.Request.MatchedParameters.ContainsKey(\"ID\")",
            "True",
        ),
        (
            "context.Request.Body.As<string>(preserveContent: true)",
            r#"{"k":1}"#,
        ),
        ("context.Request.Body.As<string>()", r#"{"k":1}"#),
    ]);
    rt_err("context.Request.Headers[\"X-None\"]", "key not found");
    rt_err("context.Request.Url.Query[\"zz\"]", "key not found");
    rt_err("context.Request.MatchedParameters[\"x\"]", "key not found");
    assert!(compile("context.Request.Body.As<string>(true)").reads_request_body());
    assert!(!compile("context.Request.Method").reads_request_body());
    assert!(compile("context.Response.Body.As<string>()").reads_response_body());
    // Port 443 on https is left out of the URL; an absent IP is null.
    let mut c = cx();
    c.request.port = 443;
    c.request.query.clear();
    c.request.ip = None;
    c.request.body = None;
    assert_eq!(
        s_in("context.Request.Url.ToString()", &c),
        "https://api.example.com/orders/42"
    );
    assert_eq!(s_in("context.Request.Url.QueryString", &c), "");
    assert_eq!(s_in("context.Request.IpAddress ?? \"none\"", &c), "none");
    assert_eq!(s_in("context.Request.Body.As<string>()", &c), "");
}

#[test]
fn response_and_deployment_members() {
    check_all(&[
        ("context.Response.StatusCode", "201"),
        (
            "context.Response.StatusCode >= 200 && context.Response.StatusCode < 300",
            "True",
        ),
        ("context.Response.StatusReason", "Created"),
        (
            "context.Response.Headers.GetValueOrDefault(\"etag\", \"\")",
            "\"v1\"",
        ),
        ("context.Response.Body.As<string>()", "ok"),
        ("context.Subscription.Id", "sub1"),
        ("context.Subscription.Key", "k123"),
        ("context.Subscription.Name", "Sub One"),
        ("context.Subscription?.Id", "sub1"),
        ("context.Subscription != null", "True"),
        ("context.Product.Id", "starter"),
        ("context.Product.Name", "starter"),
        ("context.Api.Id", "echo-api"),
        ("context.Api.Name", "Echo API"),
        ("context.Api.Path", "/echo"),
        ("context.Operation.Id", "get-order"),
        ("context.Operation.Name", "get-order"),
        ("context.LastError.Source", "validate-jwt"),
        ("context.LastError.Reason", "TokenExpired"),
        ("context.LastError.Message", "expired"),
        ("context.LastError.Scope", "api"),
        ("context.LastError.Section", "inbound"),
        ("context.LastError.PolicyId", "p1"),
        ("context.Deployment.GatewayId", "gw-1"),
    ]);
    // Absent parts: null-conditional gives null, plain access is a null reference.
    let bare = Context::default();
    assert_eq!(s_in("context.Subscription?.Id ?? \"anon\"", &bare), "anon");
    assert_eq!(s_in("context.Subscription == null", &bare), "True");
    assert_eq!(s_in("context.Product?.Name ?? \"none\"", &bare), "none");
    assert_eq!(s_in("context.Response?.StatusCode ?? 0", &bare), "0");
    assert_eq!(s_in("context.LastError?.Reason", &bare), "");
    assert_eq!(
        s_in(
            "context.Response?.Headers.GetValueOrDefault(\"a\", \"x\") ?? \"no response\"",
            &bare
        ),
        "no response"
    );
    rt_err_in(
        "context.Subscription.Id",
        &bare,
        "context.Subscription is null",
    );
    rt_err_in("context.Product.Id", &bare, "context.Product is null");
    rt_err_in(
        "context.Response.StatusCode",
        &bare,
        "context.Response is null",
    );
    rt_err_in(
        "context.Response.Headers.GetValueOrDefault(\"a\", \"\")",
        &bare,
        "context.Response is null",
    );
    rt_err_in(
        "context.LastError.Message",
        &bare,
        "context.LastError is null",
    );
}

#[test]
fn variables() {
    check_all(&[
        ("context.Variables[\"s\"]", "hello"),
        ("(string)context.Variables[\"s\"]", "hello"),
        ("((string)context.Variables[\"s\"]).ToUpper()", "HELLO"),
        ("(int)context.Variables[\"n\"] + 1", "6"),
        ("(bool)context.Variables[\"b\"] ? \"yes\" : \"no\"", "yes"),
        ("(double)context.Variables[\"d\"] * 2", "3"),
        ("((string[])context.Variables[\"arr\"])[1]", "y"),
        (
            "context.Variables.GetValueOrDefault<string>(\"s\")",
            "hello",
        ),
        (
            "context.Variables.GetValueOrDefault<string>(\"missing\") == null",
            "True",
        ),
        (
            "context.Variables.GetValueOrDefault<string>(\"missing\", \"dflt\")",
            "dflt",
        ),
        (
            "context.Variables.GetValueOrDefault<int>(\"n\", 0) * 2",
            "10",
        ),
        ("context.Variables.GetValueOrDefault<int>(\"missing\")", "0"),
        (
            "context.Variables.GetValueOrDefault<bool>(\"missing\")",
            "False",
        ),
        (
            "context.Variables.GetValueOrDefault(\"s\", \"d\").Length",
            "5",
        ),
        ("context.Variables.GetValueOrDefault(\"missing\", 7)", "7"),
        ("context.Variables.GetValueOrDefault(\"n\")", "5"),
        ("context.Variables.ContainsKey(\"s\")", "True"),
        ("context.Variables.ContainsKey(\"zzz\")", "False"),
        ("context.Variables[\"b\"]", "True"),
        ("context.Variables[\"nul\"] == null", "True"),
        ("context.Variables[\"s\"] == \"hello\"", "True"),
        ("context.Variables[\"n\"] == 5", "True"),
        ("\"v=\" + context.Variables[\"n\"]", "v=5"),
        ("context.Variables[\"s\"].ToString()", "hello"),
        ("context.Variables[\"n\"].Equals(5)", "True"),
        (
            "context.Variables[\"when\"].ToString(\"s\")",
            "2024-03-05T07:08:09",
        ),
        ("((DateTime)context.Variables[\"when\"]).Year", "2024"),
    ]);
    assert_eq!(compile("context.Variables[\"s\"]").ty(), Type::Object);
    assert_eq!(v("context.Variables[\"n\"]"), Value::Int(5));
    // Casts from object are checked when they run.
    rt_err("(int)context.Variables[\"s\"]", "invalid cast");
    rt_err("(string)context.Variables[\"n\"]", "invalid cast");
    rt_err("(int)context.Variables[\"nul\"]", "null");
    rt_err(
        "context.Variables.GetValueOrDefault<int>(\"s\")",
        "invalid cast",
    );
    rt_err("context.Variables[\"missing\"]", "key not found");
    rt_err(
        "\"a\".Contains((string)context.Variables[\"n\"])",
        "invalid cast",
    );
    rt_err("context.Variables[\"s\"] ? 1 : 2", "invalid cast");
}

#[test]
fn string_methods() {
    check_all(&[
        ("\"AbC\".ToLower()", "abc"),
        ("\"AbC\".ToUpper()", "ABC"),
        ("\"ÀbC\".ToLowerInvariant()", "àbc"),
        ("\"àbc\".ToUpperInvariant()", "ÀBC"),
        ("\"hello\".Contains(\"ell\")", "True"),
        ("\"hello\".Contains(\"\")", "True"),
        ("\"hello\".Contains(\"ELL\")", "False"),
        (
            "\"hello\".Contains(\"ELL\", StringComparison.OrdinalIgnoreCase)",
            "True",
        ),
        ("\"hello\".StartsWith(\"he\")", "True"),
        (
            "\"hello\".StartsWith(\"HE\", StringComparison.OrdinalIgnoreCase)",
            "True",
        ),
        ("\"hello\".EndsWith(\"lo\")", "True"),
        (
            "\"hello\".EndsWith(\"LO\", StringComparison.InvariantCultureIgnoreCase)",
            "True",
        ),
        ("\"hello\".Substring(1)", "ello"),
        ("\"hello\".Substring(1, 3)", "ell"),
        ("\"hello\".Substring(5)", ""),
        ("\"hello\".Substring(0, 0)", ""),
        ("\"héllo\".Substring(1, 2)", "él"),
        ("\"a-b-c\".Replace(\"-\", \"+\")", "a+b+c"),
        ("\"a-b-c\".Replace('-', '/')", "a/b/c"),
        ("\"a-b\".Replace(\"-\", null)", "ab"),
        ("\"a,b,c\".Split(',')[1]", "b"),
        ("\"a,b,c\".Split(\",\").Length", "3"),
        ("\"a,b,c\".Split(',').Last()", "c"),
        ("\"a,b,c\".Split(',').First()", "a"),
        (
            "\"a,,b\".Split(',', StringSplitOptions.RemoveEmptyEntries).Length",
            "2",
        ),
        ("\"a;b,c\".Split(',', ';').Length", "3"),
        ("\"a b\".Split().Length", "2"),
        ("\"\".Split(',').Length", "1"),
        ("\"a,b\".Split(',').Contains(\"b\")", "True"),
        ("\"a,b\".Split(',').Count()", "2"),
        ("\"\".Split(',')[0].Split(';').FirstOrDefault()", ""),
        ("\"  x  \".Trim()", "x"),
        ("\"  x  \".TrimStart()", "x  "),
        ("\"  x  \".TrimEnd()", "  x"),
        ("\"/a/b/\".TrimEnd('/')", "/a/b"),
        ("\"/a/b/\".Trim('/')", "a/b"),
        ("\"xxaxx\".TrimStart('x')", "axx"),
        ("\"hello\".Length", "5"),
        ("\"😀\".Length", "2"),
        ("\"hello\".IndexOf(\"l\")", "2"),
        ("\"hello\".IndexOf(\"z\")", "-1"),
        (
            "\"hello\".IndexOf(\"L\", StringComparison.OrdinalIgnoreCase)",
            "2",
        ),
        ("\"héllo\".IndexOf(\"l\")", "2"),
        ("\"hello\".LastIndexOf(\"l\")", "3"),
        ("string.IsNullOrEmpty(\"\")", "True"),
        ("string.IsNullOrEmpty(null)", "True"),
        ("String.IsNullOrEmpty(\"a\")", "False"),
        ("string.IsNullOrWhiteSpace(\"  \")", "True"),
        ("String.Join(\",\", \"a b c\".Split(' '))", "a,b,c"),
        ("string.Join(\"-\", \"a\", 1, true)", "a-1-True"),
        ("string.Format(\"{0}/{1}\", \"a\", 2)", "a/2"),
        ("string.Concat(\"a\", 1, null, \"b\")", "a1b"),
        ("string.Empty + \"x\"", "x"),
        ("\"a\".Equals(\"a\")", "True"),
        ("\"a\".Equals(\"A\")", "False"),
        (
            "\"a\".Equals(\"A\", StringComparison.OrdinalIgnoreCase)",
            "True",
        ),
        (
            "string.Equals(\"a\", \"A\", StringComparison.OrdinalIgnoreCase)",
            "True",
        ),
        ("string.Equals(null, null)", "True"),
        ("\"abc\"[1]", "b"),
        ("\"7\".PadLeft(3, '0')", "007"),
        ("\"7\".PadRight(3)", "7  "),
        ("\"s\".ToString()", "s"),
        ("5.ToString()", "5"),
        ("(1 + 1).ToString()", "2"),
        ("true.ToString()", "True"),
        ("2.5.ToString()", "2.5"),
        ("int.Parse(\" 42 \") + 1", "43"),
        ("long.Parse(\"-9\")", "-9"),
        ("double.Parse(\"2.5\") * 2", "5"),
        ("bool.Parse(\"TRUE\")", "True"),
        ("$\"{context.Request.Method} {1 + 1}!\"", "POST 2!"),
        ("$\"{{literal}} {\"s\"}\"", "{literal} s"),
        ("$@\"c:\\{1}\"", "c:\\1"),
        ("$\"{DateTime.UtcNow:yyyy}\"", "2024"),
    ]);
    assert_eq!(compile("\"a,b\".Split(',')").ty(), Type::StrArray);
    rt_err("\"hello\".Substring(6)", "out of range");
    rt_err("\"hello\".Substring(-1)", "out of range");
    rt_err("\"hello\".Substring(2, 4)", "out of range");
    rt_err("\"hello\".Substring(1, -1)", "out of range");
    rt_err("\"a,b\".Split(',')[2]", "index out of range");
    rt_err("\"a,b\".Split(',')[-1]", "index out of range");
    rt_err("\"abc\"[3]", "index out of range");
    rt_err("\"a\".Replace(\"\", \"b\")", "cannot be empty");
    rt_err("\"a\".Contains(null)", "argument null");
    rt_err(
        "context.Variables.GetValueOrDefault<string>(\"missing\").ToLower()",
        "null reference",
    );
    rt_err("int.Parse(\"x\")", "not a valid int");
    rt_err("double.Parse(\"inf\")", "not a valid double");
    rt_err("string.Format(\"{1}\", 1)", "index must be less");
    for src in [
        "\"x\".Split(',').Skip(1)",
        "\"x\".Split(',').Where(x)",
        "\"x\".Foo",
    ] {
        assert!(Expr::parse(src).is_err(), "{src}");
    }
}

#[test]
fn split_last_and_first_on_empty() {
    rt_err(
        "context.Variables.GetValueOrDefault<string[]>(\"none\").First()",
        "null reference",
    );
    let mut c = cx();
    c.variables.insert(
        "empty".into(),
        Value::StrArray(Arc::from(Vec::<Arc<str>>::new())),
    );
    rt_err_in(
        "context.Variables.GetValueOrDefault<string[]>(\"empty\").Last()",
        &c,
        "no elements",
    );
    assert_eq!(
        s_in(
            "context.Variables.GetValueOrDefault<string[]>(\"empty\").LastOrDefault() ?? \"none\"",
            &c
        ),
        "none"
    );
}

#[test]
fn jwt_members() {
    let header = "context.Request.Headers.GetValueOrDefault(\"Authorization\",\"\")";
    let j = format!("{header}.Split(' ').Last().AsJwt()");
    check_all(&[
        (&format!("{j}?.Subject"), "alice"),
        (&format!("{j}.Subject"), "alice"),
        (&format!("{j}.Issuer"), "https://idp.example"),
        (&format!("{j}.Audiences.Length"), "2"),
        (&format!("{j}.Audiences[1]"), "api://two"),
        (&format!("{j}.Audiences.Contains(\"api://one\")"), "True"),
        (&format!("{j}.Id"), "tok-1"),
        (&format!("{j}.Algorithm"), "HS256"),
        (
            &format!("{j}.ExpirationTime.Value.ToString(\"o\")"),
            "2024-03-05T08:08:09.0000000Z",
        ),
        (&format!("{j}.ExpirationTime > DateTime.UtcNow"), "True"),
        (&format!("{j}.NotBefore < DateTime.UtcNow"), "True"),
        (&format!("{j}.IssuedAt.HasValue"), "True"),
        (
            &format!("{j}.Claims.GetValueOrDefault(\"tid\", \"none\")"),
            "t-9",
        ),
        (
            &format!("{j}.Claims.GetValueOrDefault(\"roles\", \"\")"),
            "reader,writer",
        ),
        (
            &format!("{j}.Claims.GetValueOrDefault(\"nope\", \"none\")"),
            "none",
        ),
        (&format!("{j}.Claims[\"roles\"][1]"), "writer"),
        (&format!("{j}.Claims.ContainsKey(\"sub\")"), "True"),
        (
            &format!("{j}?.Claims.GetValueOrDefault(\"tid\", \"\")"),
            "t-9",
        ),
        (&format!("{j} != null"), "True"),
        ("\"not a jwt\".AsJwt() == null", "True"),
        (
            "\"not a jwt\".AsJwt()?.Subject ?? \"anonymous\"",
            "anonymous",
        ),
        (
            "\"a.b.c\".AsJwt()?.Claims.GetValueOrDefault(\"x\", \"y\") ?? \"null\"",
            "null",
        ),
    ]);
    assert_eq!(compile(&j).ty(), Type::Jwt);
    assert!(matches!(v(&j), Value::Jwt(_)));
    rt_err(&format!("{j}.Claims[\"nope\"]"), "key not found");
    rt_err("\"x\".AsJwt().Subject", "null reference");
    // Without an Authorization header the typical expression is null, not an error.
    let mut c = cx();
    c.request.headers = Headers::default();
    assert_eq!(s_in(&format!("{j}?.Subject ?? \"anon\""), &c), "anon");
}

#[test]
fn dates() {
    check_all(&[
        (
            "DateTime.UtcNow.ToString(\"o\")",
            "2024-03-05T07:08:09.0000000Z",
        ),
        (
            "DateTime.UtcNow.ToString(\"yyyy-MM-ddTHH:mm:ssZ\")",
            "2024-03-05T07:08:09Z",
        ),
        ("DateTime.UtcNow.ToString()", "03/05/2024 07:08:09"),
        (
            "DateTime.UtcNow.ToString(\"r\")",
            "Tue, 05 Mar 2024 07:08:09 GMT",
        ),
        (
            "DateTime.UtcNow.AddSeconds(60).ToString(\"s\")",
            "2024-03-05T07:09:09",
        ),
        (
            "DateTime.UtcNow.AddSeconds(-0.5).ToString(\"HH:mm:ss.fff\")",
            "07:08:08.500",
        ),
        ("DateTime.UtcNow.AddMinutes(1).Minute", "9"),
        ("DateTime.UtcNow.AddHours(24).Day", "6"),
        ("DateTime.UtcNow.AddDays(-5).Month", "2"),
        ("DateTime.UtcNow.AddMilliseconds(1500).Second", "10"),
        ("DateTime.UtcNow.Ticks", "638452192890000000"),
        ("DateTime.UtcNow.Year", "2024"),
        ("DateTime.UtcNow.Hour", "7"),
        (
            "DateTime.UtcNow.Date.ToString(\"s\")",
            "2024-03-05T00:00:00",
        ),
        ("DateTime.Now == DateTime.UtcNow", "True"),
        ("DateTime.UtcNow.AddSeconds(1) > DateTime.UtcNow", "True"),
        ("context.Timestamp.ToString(\"u\")", "2024-03-05 07:08:09Z"),
        ("\"t=\" + DateTime.UtcNow", "t=03/05/2024 07:08:09"),
    ]);
    match v("DateTime.UtcNow.AddSeconds(1)") {
        Value::DateTime(t) => assert_eq!(t, now() + Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    rt_err("DateTime.UtcNow.ToString(\"Q\")", "format");
    rt_err("DateTime.UtcNow.AddDays(1e10)", "out of range");
    // Without a request time, the clock is read.
    let t = compile("DateTime.UtcNow")
        .eval(&Context::default())
        .unwrap();
    match t {
        Value::DateTime(t) => assert!(t.duration_since(now()).is_ok()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn statement_blocks() {
    let cases = [
        ("return 1;", "1"),
        ("var x = 2; var y = x * 3; return y + 1;", "7"),
        (
            "var auth = context.Request.Headers.GetValueOrDefault(\"Authorization\", \"\");
             if (auth.StartsWith(\"Bearer \")) { return \"bearer\"; }
             return \"other\";",
            "bearer",
        ),
        (
            "string r = \"a\"; if (context.Request.Method == \"GET\") { r = \"get\"; } else { r = \"not-get\"; } return r;",
            "not-get",
        ),
        ("if (false) return 1; else if (true) return 2; else return 3;", "2"),
        ("var s = \"a\"; s += 1; s += \"b\"; return s;", "a1b"),
        ("int n; n = 4; return n;", "4"),
        ("string s; return s ?? \"unset\";", "unset"),
        ("var h = context.Request.Headers; return h.GetValueOrDefault(\"X-Multi\", \"\");", "a,b"),
        ("{ var x = 1; } { var x = 2; return x; }", "2"),
        ("var j = \"x\".AsJwt(); if (j == null) { return \"no\"; } return j.Subject;", "no"),
        ("return 1; return 2;", "1"),
        ("var x = 1; if (x == 1) { return 2.5; } return x;", "2.5"),
        (
            "// comment\nvar x = 1; /* block */ return x;",
            "1",
        ),
    ];
    for (src, want) in cases {
        let e = match Expr::parse_block(src) {
            Ok(e) => e,
            Err(e) => panic!("{src}: {e}"),
        };
        assert_eq!(e.eval_string(&cx()).unwrap(), want, "{src}");
    }
    assert_eq!(
        compile("var x = 1; if (x == 1) { return 2.5; } return x;").ty(),
        Type::Double
    );
    assert_eq!(
        v("var x = 1; if (x == 1) { return 2; } return 2.5;"),
        Value::Double(2.0)
    );
    let e = Expr::parse_block("while (true) { }").unwrap_err();
    assert!(e.message.contains("only variable declarations"), "{e}");
    let e = Expr::parse_block("var x = 1;").unwrap_err();
    assert!(e.message.contains("not all code paths"), "{e}");
}

#[test]
fn eval_bool_and_eval_string() {
    let c = cx();
    assert!(compile("context.Request.Method == \"POST\"")
        .eval_bool(&c)
        .unwrap());
    assert!(!compile("1 > 2").eval_bool(&c).unwrap());
    assert!(compile("context.Variables[\"b\"]").eval_bool(&c).unwrap());
    let e = compile("\"x\"").eval_bool(&c).unwrap_err();
    assert!(e.message.contains("expected a bool"), "{e}");
    assert!(compile("context.Variables[\"nul\"]").eval_bool(&c).is_err());
    assert_eq!(compile("1 == 1").eval_string(&c).unwrap(), "True");
    assert_eq!(
        compile("0.1 + 0.2").eval_string(&c).unwrap(),
        "0.30000000000000004"
    );
    assert_eq!(compile("1e20").eval_string(&c).unwrap(), "1E+20");
}

#[test]
fn runtime_errors() {
    rt_err("1 / 0", "divide by zero");
    rt_err("1 % 0", "divide by zero");
    rt_err("(-9223372036854775807 - 1) / -1", "overflow");
    rt_err("context.Variables[(string)null]", "key is null");
    assert_eq!(s("1.0 / 0"), "Infinity");
}

#[test]
fn type_errors_through_public_api() {
    let e = Expr::parse("context.Request.Method == 1").unwrap_err();
    assert_eq!(e.offset, 23);
    assert_eq!(e.to_string(), format!("at 23: {}", e.message));
    let e = Expr::parse("!context.Request.Method").unwrap_err();
    assert_eq!(e.offset, 0);
    let e = Expr::parse("context.Request.Headers.GetValueOrDefault(\"a\", 5)").unwrap_err();
    assert_eq!(e.offset, 47);
    assert!(e.message.contains("argument 2"), "{e}");
    let e = Expr::parse("context.Request.Method.Frob").unwrap_err();
    assert_eq!(e.offset, 23);
}

#[test]
fn compiled_expressions_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expr>();
    assert_send_sync::<Template>();
}

/// xorshift64*, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutates known-good expressions (delete, duplicate, insert tokens, splice) and checks
/// that parsing, evaluation and `expression_end` never panic.
#[test]
fn fuzz_mutations_never_panic() {
    let seeds = [
        r#"context.Request.Headers.GetValueOrDefault("Authorization","").Split(' ').Last().AsJwt()?.Subject"#,
        r#"context.Variables.GetValueOrDefault<string>("a", "b").Substring(1, 2)"#,
        r#"context.Subscription?.Id ?? "x" + 1.5 + true"#,
        r#"var x = 1; if (x > 0) { return "a"; } else { return (string)context.Variables["s"]; }"#,
        r#"$"{context.Request.Method}:{DateTime.UtcNow:yyyy}" == "a" ? 1 : 2"#,
        r#"string.Format("{0}", context.Request.Url.Query["a"][0]).Trim('/').PadLeft(3, '0')"#,
        r#"(int)context.Variables["n"] / 0 % 2 - -3"#,
        r#""a,b".Split(',', StringSplitOptions.RemoveEmptyEntries)[1].IndexOf("b", StringComparison.OrdinalIgnoreCase)"#,
        r#"DateTime.UtcNow.AddDays(-1).ToString("o") + context.Response?.StatusCode"#,
        r#"@"verbatim""" + '\'' + "\u0041\x41""#,
    ];
    let inserts = [
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "@",
        "$",
        "?.",
        "??",
        "?",
        ":",
        ".",
        ",",
        ";",
        "<",
        ">",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "&&",
        "||",
        "null",
        "0",
        "-1",
        "9999999999",
        "1e308",
        "\\",
        "\u{1F600}",
        "é",
        "return ",
        "var ",
        "if",
        "else",
        "context",
        "Variables",
        "[\"s\"]",
        "(string)",
        "(int)",
        ".Length",
        ".ToString()",
        ".AsJwt()",
        "/*",
        "//",
        "\n",
        "{0}",
        "$\"{",
        "}\"",
    ];
    let cx = cx();
    let bare = Context::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for round in 0..8000 {
        let mut s = seeds[round % seeds.len()].to_string();
        for _ in 0..=rng.below(2) {
            let mut at = rng.below(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(4) {
                0 => {
                    let mut end = (at + rng.below(8)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    s.replace_range(at..end, "");
                }
                1 => s.insert_str(at, inserts[rng.below(inserts.len())]),
                2 => {
                    let other = seeds[rng.below(seeds.len())];
                    let mut cut = rng.below(other.len());
                    while !other.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    s.insert_str(at, &other[cut..]);
                }
                _ => {
                    let mut end = (at + rng.below(12)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    let piece = s[at..end].to_string();
                    s.insert_str(at, &piece);
                }
            }
        }
        if let Ok(e) = Expr::parse(&s) {
            parsed += 1;
            let _ = e.eval(&cx);
            let _ = e.eval_string(&bare);
            let _ = e.eval_bool(&cx);
        }
        let _ = Expr::parse_block(&s);
        let wrapped = format!("@({s})");
        let _ = expression_end(&wrapped, 0);
        if let Ok(t) = Template::parse(&wrapped) {
            let _ = t.eval_string(&cx);
        }
        for i in 0..s.len().min(64) {
            let _ = expression_end(&s, i);
        }
    }
    // The mutations must leave enough valid programs to exercise evaluation.
    assert!(parsed > 500, "only {parsed} mutated inputs parsed");
    eprintln!("{parsed} of 8000 mutated inputs compiled");
}

#[test]
fn nested_interpolation_is_bounded() {
    let deep = format!("{}1{}", "$\"{".repeat(50_000), "}\"".repeat(50_000));
    assert!(Expr::parse(&deep).is_err());
    assert_eq!(expression_end(&format!("@({deep})"), 0), None);
    assert!(Template::parse(&format!("@({deep})")).is_err());
    assert_eq!(s("$\"a{$\"b{$\"c{1}\"}\"}\""), "abc1");
}

/// Deep but legal nesting stays within the stack of a test thread (2 MiB) in a debug build.
#[test]
fn deep_nesting_within_limits_evaluates() {
    let concat = vec!["\"a\""; 150].join(" + ");
    assert_eq!(s(&concat).len(), 150);
    let sum = format!("{}1{}", "(1 + ".repeat(25), ")".repeat(25));
    assert_eq!(s(&sum), "26");
    let chain = format!("\"x\"{}", ".Trim()".repeat(150));
    assert_eq!(s(&chain), "x");
    let nulls = format!("context.Subscription?.Id{}", "?.Trim()".repeat(20));
    assert_eq!(s(&nulls), "sub1");
}
