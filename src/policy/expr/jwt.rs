//! `someString.AsJwt()`: decodes a compact JWS (`header.payload.signature`) into a
//! [`Jwt`] without checking anything (APIM's `AsJwt` does not validate; `validate-jwt`
//! does). Base64url and a small JSON reader live here so the expression engine does not
//! depend on a JSON crate at run time; the reader bounds nesting and accepts only
//! well-formed JSON. Anything that is not a JWT gives `None` (C# `null`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::policy::context::Jwt;

/// Decodes `token` (surrounding whitespace ignored), or `None` when it is not a JWS
/// whose header and payload are base64url JSON objects.
pub(crate) fn parse_jwt(token: &str) -> Option<Jwt> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() || payload.is_empty() {
        return None;
    }
    let header = Json::parse(&base64url(header)?)?;
    let payload = Json::parse(&base64url(payload)?)?;
    let (Json::Obj(header), Json::Obj(payload)) = (header, payload) else {
        return None;
    };
    let field = |obj: &[(String, Json)], name: &str| {
        obj.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let string = |name: &str| match field(&payload, name) {
        Some(Json::Str(s)) => Some(s),
        _ => None,
    };
    let time = |name: &str| match field(&payload, name) {
        Some(Json::Num(n)) => n.parse::<f64>().ok().and_then(seconds_to_time),
        _ => None,
    };
    let audiences = match field(&payload, "aud") {
        Some(Json::Str(s)) => vec![s],
        Some(Json::Arr(items)) => items.iter().map(Json::claim_text).collect(),
        _ => Vec::new(),
    };
    let mut claims: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in &payload {
        let values = match value {
            Json::Arr(items) => items.iter().map(Json::claim_text).collect(),
            v => vec![v.claim_text()],
        };
        claims.insert(name.clone(), values);
    }
    Some(Jwt {
        subject: string("sub"),
        issuer: string("iss"),
        audiences,
        id: string("jti"),
        algorithm: match field(&header, "alg") {
            Some(Json::Str(s)) => Some(s),
            _ => None,
        },
        expiration_time: time("exp"),
        not_before: time("nbf"),
        issued_at: time("iat"),
        claims,
    })
}

fn seconds_to_time(secs: f64) -> Option<SystemTime> {
    if !(0.0..=253_402_300_799.0).contains(&secs) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs))
}

/// Base64url without padding (padding and the standard alphabet are tolerated).
pub(crate) fn base64url(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // One leftover sextet cannot encode a byte.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number as written.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

const MAX_JSON_DEPTH: u32 = 32;

impl Json {
    fn parse(bytes: &[u8]) -> Option<Json> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut r = Reader {
            b: text.as_bytes(),
            s: text,
            i: 0,
        };
        let v = r.value(0)?;
        r.ws();
        (r.i == r.b.len()).then_some(v)
    }

    /// A claim value as .NET's JWT handler gives it: strings as they are, other values
    /// as their JSON text, `null` as "".
    fn claim_text(&self) -> String {
        match self {
            Json::Str(s) => s.clone(),
            Json::Null => String::new(),
            other => {
                let mut out = String::new();
                other.write(&mut out);
                out
            }
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => crate::policy::json::write_string(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    crate::policy::json::write_string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Option<Json> {
        if self.s.get(self.i..)?.starts_with(word) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn value(&mut self, depth: u32) -> Option<Json> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'n' => self.lit("null", Json::Null),
            b't' => self.lit("true", Json::Bool(true)),
            b'f' => self.lit("false", Json::Bool(false)),
            b'"' => self.string().map(Json::Str),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(Json::Arr(items));
                        }
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    fields.push((k, v));
                    self.ws();
                    match self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(Json::Obj(fields));
                        }
                        _ => return None,
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        let digits = |r: &mut Self| {
            let s = r.i;
            while r.b.get(r.i).is_some_and(u8::is_ascii_digit) {
                r.i += 1;
            }
            r.i > s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        if !digits(self) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        Some(Json::Num(self.s.get(start..self.i)?.to_string()))
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let rest = self.s.get(self.i..)?;
            let c = rest.chars().next()?;
            self.i += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.s.get(self.i..)?.starts_with("\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                                    continue;
                                }
                                self.i = save;
                            }
                            out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                        }
                        _ => return None,
                    }
                }
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        Some(v)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.len();
            let v = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for k in 0..=n {
                out.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
            }
        }
        out
    }

    /// An unsigned token with these JSON header and payload.
    pub(crate) fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.sig", b64(header.as_bytes()), b64(payload.as_bytes()))
    }

    #[test]
    fn base64url_round_trip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00"] {
            assert_eq!(base64url(&b64(data)).unwrap(), data);
        }
        assert_eq!(base64url("Zm9v").unwrap(), b"foo");
        assert_eq!(base64url("Zg==").unwrap(), b"f");
        assert!(base64url("Z").is_none());
        assert!(base64url("a b").is_none());
    }

    #[test]
    fn decodes_registered_and_custom_claims() {
        let t = token(
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"sub":"alice","iss":"https://idp","aud":["a","b"],"jti":"j1","exp":1700000000,
               "nbf":1600000000.5,"iat":1650000000,"roles":["r1","r2"],"n":42,"ok":true,
               "o":{"k":"v"},"z":null,"u":"\u00e9\ud83d\ude00"}"#,
        );
        let j = parse_jwt(&t).unwrap();
        assert_eq!(j.subject.as_deref(), Some("alice"));
        assert_eq!(j.issuer.as_deref(), Some("https://idp"));
        assert_eq!(j.audiences, vec!["a", "b"]);
        assert_eq!(j.id.as_deref(), Some("j1"));
        assert_eq!(j.algorithm.as_deref(), Some("RS256"));
        assert_eq!(
            j.expiration_time,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            j.not_before,
            Some(UNIX_EPOCH + Duration::from_millis(1_600_000_000_500))
        );
        assert_eq!(j.claims["roles"], vec!["r1", "r2"]);
        assert_eq!(j.claims["n"], vec!["42"]);
        assert_eq!(j.claims["ok"], vec!["true"]);
        assert_eq!(j.claims["o"], vec![r#"{"k":"v"}"#]);
        assert_eq!(j.claims["z"], vec![""]);
        assert_eq!(j.claims["u"], vec!["é😀"]);
        assert_eq!(j.claims["aud"], vec!["a", "b"]);
        // A single audience string.
        let j = parse_jwt(&token(r#"{"alg":"none"}"#, r#"{"aud":"x"}"#)).unwrap();
        assert_eq!(j.audiences, vec!["x"]);
        assert_eq!(j.subject, None);
    }

    #[test]
    fn not_a_jwt_is_none() {
        let good_h = b64(br#"{"alg":"none"}"#);
        let good_p = b64(br#"{"sub":"a"}"#);
        for bad in [
            String::new(),
            "Bearer".into(),
            "a.b".into(),
            format!("{good_h}.{good_p}.s.x.y"),
            format!("{good_h}..s"),
            format!("{good_h}.{}.s", b64(b"[1]")),
            format!("{good_h}.{}.s", b64(b"{\"a\":1")),
            format!("{good_h}.{}.s", b64(b"{\"a\":01x}")),
            format!("{good_h}.{}.s", b64(&[0xff, 0xfe])),
            format!("{good_h}.{}.s", b64("[".repeat(100).as_bytes())),
            format!("{good_h}.{good_p}!.s"),
        ] {
            assert!(parse_jwt(&bad).is_none(), "{bad}");
        }
        assert!(parse_jwt(&format!(" {good_h}.{good_p}. ")).is_some());
    }
}
