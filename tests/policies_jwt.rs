//! `validate-jwt` end to end: RS256 access tokens signed at test time (an RSA key
//! generated with aws-lc, tokens signed by `jsonwebtoken`, an independent JWS
//! implementation) checked by the real gateway in front of a recording backend. Keys
//! come from the policy (`<key n e>`, filled in through named values) or from an
//! OpenID Connect discovery document served by an in-test HTTP server.

mod common;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::client::{request, Response};
use common::{Backend, Gateway, ANY_OP};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://idp.portico.test/";
const AUDIENCE: &str = "api://portico-orders";
const KID: &str = "test-key-1";

/// An RSA key pair: the private half as a `jsonwebtoken` key, the public half as the
/// JWK `n` and `e` (base64url, no padding).
struct RsaKey {
    encoding: EncodingKey,
    n: String,
    e: String,
}

fn gen_rsa() -> RsaKey {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).unwrap();
    let body = STANDARD.encode(pkcs8.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let public = kp.public_key();
    RsaKey {
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }
}

/// The key the gateway trusts.
fn key() -> &'static RsaKey {
    static K: OnceLock<RsaKey> = OnceLock::new();
    K.get_or_init(gen_rsa)
}

/// A key the gateway does not know.
fn other_key() -> &'static RsaKey {
    static K: OnceLock<RsaKey> = OnceLock::new();
    K.get_or_init(gen_rsa)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@example.com",
        "scp": "orders.read orders.write",
        "iat": now() - 10,
        "nbf": now() - 10,
        "exp": now() + 3600,
    })
}

fn sign(key: &RsaKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn valid_token() -> String {
    sign(key(), Some(KID), &claims())
}

fn token_with(name: &str, value: Value) -> String {
    let mut c = claims();
    c[name] = value;
    sign(key(), Some(KID), &c)
}

fn policy(name: &str) -> String {
    format!("{}/tests/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Two APIs on one backend: `orders` (jwt-api.xml, 401 on failure, subject forwarded)
/// and `strict` (jwt-api-403.xml, 403 with a fixed message).
fn config(backend_url: &str) -> String {
    format!(
        r#"
namedValues:
  - {{ name: jwt-n, value: "{n}" }}
  - {{ name: jwt-e, value: "{e}" }}
apis:
  - id: orders
    path: orders
    serviceUrl: {backend_url}/v1
    policies: {orders}
    operations:
      - {ANY_OP}
  - id: strict
    path: strict
    serviceUrl: {backend_url}/v1
    policies: {strict}
    operations:
      - {ANY_OP}
"#,
        n = key().n,
        e = key().e,
        orders = policy("jwt-api.xml"),
        strict = policy("jwt-api-403.xml"),
    )
}

fn get(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(gw.addr, raw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts an APIM error answer: this status, `{"statusCode": status, "message": ...}`
/// with a message containing `needle`.
fn assert_refused(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "body: {}", r.body_str());
    let j = r.json();
    assert_eq!(j["statusCode"], status, "{j}");
    let msg = j["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message {msg:?} should contain {needle:?}"
    );
}

#[test]
fn a_valid_rs256_token_is_forwarded_with_its_subject() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let token = valid_token();
    let auth = bearer(&token);
    let r = get(&gw, "/orders/42", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v1/42");

    let seen = backend.wait_requests(1, Duration::from_secs(10));
    let req = &seen[0];
    // validate-jwt does not consume the token: the backend gets it as sent.
    assert_eq!(req.header("Authorization"), Some(auth.as_str()));
    // output-token-variable-name, read back with a cast and with GetValueOrDefault<Jwt>.
    assert_eq!(req.header("X-Jwt-Subject"), Some("alice@example.com"));
    assert_eq!(req.header("X-Jwt-Issuer"), Some(ISSUER));
}

#[test]
fn the_scheme_is_matched_without_regard_to_case() {
    // RFC 9110 §11.1: the auth scheme is case-insensitive ("bearer" is common).
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let auth = format!("bearer {}", valid_token());
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body_str());
}

#[test]
fn no_token_or_another_scheme_is_refused_with_401() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));

    let r = get(&gw, "/orders/1", &[]);
    assert_refused(&r, 401, "JWT not present");

    let basic = format!("Basic {}", STANDARD.encode("alice:secret"));
    let r = get(&gw, "/orders/1", &[("Authorization", &basic)]);
    assert_eq!(r.status, 401, "{}", r.body_str());

    let r = get(&gw, "/orders/1", &[("Authorization", "Bearer ")]);
    assert_eq!(r.status, 401, "{}", r.body_str());

    let r = get(&gw, "/orders/1", &[("Authorization", "Bearer not.a.jwt")]);
    assert_eq!(r.status, 401, "{}", r.body_str());

    assert!(
        backend.requests().is_empty(),
        "refused calls never reach the backend"
    );
}

#[test]
fn an_expired_token_is_refused_with_apims_message() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let mut c = claims();
    c["iat"] = json!(now() - 7200);
    c["nbf"] = json!(now() - 7200);
    c["exp"] = json!(now() - 3600);
    let auth = bearer(&sign(key(), Some(KID), &c));
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "Lifetime validation failed. The token is expired.");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(backend.requests().is_empty());
}

#[test]
fn wrong_audience_issuer_or_missing_scope_is_refused() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));

    let auth = bearer(&token_with("aud", json!("api://someone-else")));
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "Audience validation failed");

    let auth = bearer(&token_with("iss", json!("https://evil.example/")));
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "Issuer validation failed");

    // Required claim present but without an accepted value.
    let auth = bearer(&token_with("scp", json!("profile email")));
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.body_str());

    // Required claim missing.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("scp");
    let auth = bearer(&sign(key(), Some(KID), &c));
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "scp");

    // An audience list holding the right one is fine.
    let auth = bearer(&token_with("aud", json!(["api://other", AUDIENCE])));
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(backend.wait_requests(1, Duration::from_secs(10)).len(), 1);
}

#[test]
fn forged_tokens_are_refused() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));

    // alg "none", no signature: the classic bypass.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    for unsigned in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
        format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"None","typ":"JWT","kid":"test-key-1"}"#)
        ),
    ] {
        let auth = bearer(&unsigned);
        let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
        assert_eq!(r.status, 401, "{unsigned}: {}", r.body_str());
    }

    // Signed with a key the gateway does not trust (same kid, and no kid).
    for kid in [Some(KID), None] {
        let auth = bearer(&sign(other_key(), kid, &claims()));
        let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
        assert_eq!(r.status, 401, "kid {kid:?}: {}", r.body_str());
    }

    // A valid token whose payload was swapped for another subject's.
    let good = valid_token();
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("mallory");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(c.to_string()),
        parts[2]
    );
    let auth = bearer(&tampered);
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "Signature validation failed");

    // HS256 with the RSA public key's bytes as the HMAC secret (algorithm confusion).
    let secret = URL_SAFE_NO_PAD.decode(&key().n).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(KID.into());
    let confused = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
    let auth = bearer(&confused);
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.body_str());

    assert!(backend.requests().is_empty());
}

#[test]
fn failed_validation_httpcode_and_message_are_honoured() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));

    let r = get(&gw, "/strict/1", &[]);
    assert_refused(&r, 403, "Forbidden. Access token is missing or invalid.");

    let auth = bearer(&token_with("aud", json!("api://someone-else")));
    let r = get(&gw, "/strict/1", &[("Authorization", &auth)]);
    assert_refused(&r, 403, "Forbidden. Access token is missing or invalid.");
    assert!(backend.requests().is_empty());

    let auth = bearer(&valid_token());
    let r = get(&gw, "/strict/1", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "GET /v1/1");
}

// ---------------------------------------------------------------------------------
// openid-config

/// A tiny identity provider on std::net: `/.well-known/openid-configuration` and
/// `/jwks`, one request per connection; counts what it served.
struct Idp {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Idp {
    fn start(jwk: Value) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let base = format!("http://127.0.0.1:{port}");
        let discovery = json!({
            "issuer": base,
            "jwks_uri": format!("{base}/jwks"),
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string();
        let jwks = json!({ "keys": [jwk] }).to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let (d, j) = (discovery.clone(), jwks.clone());
                std::thread::spawn(move || serve_idp(stream, &d, &j));
            }
        });
        Idp { port, hits }
    }

    fn discovery_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/.well-known/openid-configuration",
            self.port
        )
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve_idp(mut stream: TcpStream, discovery: &str, jwks: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/.well-known/openid-configuration" => ("200 OK", discovery),
        "/jwks" => ("200 OK", jwks),
        _ => ("404 Not Found", "{}"),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes());
}

#[test]
fn openid_config_keys_and_issuer_are_used() {
    let k = key();
    let idp = Idp::start(json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "idp-key-1", "n": k.n, "e": k.e,
    }));
    let backend = Backend::echo();
    let yaml = format!(
        r#"
apis:
  - id: oidc
    path: oidc
    serviceUrl: {backend}/v1
    policies: |
      <policies>
        <inbound>
          <validate-jwt header-name="Authorization" require-scheme="Bearer" output-token-variable-name="jwt">
            <openid-config url="{url}" />
            <audiences><audience>{AUDIENCE}</audience></audiences>
          </validate-jwt>
          <set-header name="X-Jwt-Subject" exists-action="override">
            <value>@(((Jwt)context.Variables["jwt"]).Subject)</value>
          </set-header>
        </inbound>
        <backend><forward-request /></backend>
      </policies>
    operations:
      - {ANY_OP}
"#,
        backend = backend.url(),
        url = idp.discovery_url(),
    );
    let gw = Gateway::start(&yaml);

    // Issued by the discovery document's issuer, signed with the published key.
    let mut c = claims();
    c["iss"] = json!(idp.issuer());
    let auth = bearer(&sign(k, Some("idp-key-1"), &c));
    // The keys are fetched off the data plane; they must be there within a generous
    // bound (the gateway fills the cache while the config loads).
    let mut r = get(&gw, "/oidc/x", &[("Authorization", &auth)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while r.status != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        r = get(&gw, "/oidc/x", &[("Authorization", &auth)]);
    }
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        idp.hits.load(Ordering::SeqCst) >= 2,
        "discovery and JWKS fetched"
    );
    let seen = backend.wait_requests(1, Duration::from_secs(10));
    assert_eq!(seen[0].header("X-Jwt-Subject"), Some("alice@example.com"));
    assert_eq!(seen[0].header("Authorization"), Some(auth.as_str()));

    // Another issuer than the document's: refused.
    let auth = bearer(&sign(k, Some("idp-key-1"), &claims()));
    let r = get(&gw, "/oidc/x", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "Issuer validation failed");

    // Signed by a key the identity provider does not publish: refused.
    let auth = bearer(&sign(other_key(), Some("idp-key-1"), &c));
    let r = get(&gw, "/oidc/x", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.body_str());
    let auth = bearer(&sign(other_key(), Some("unknown-kid"), &c));
    let r = get(&gw, "/oidc/x", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.body_str());

    assert_eq!(backend.requests().len(), 1);
}

// ---------------------------------------------------------------------------------
// The per-core cache of verified signatures

#[test]
fn a_token_seen_before_is_still_refused_once_it_expires() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let mut c = claims();
    let exp = now() + 4;
    c["exp"] = json!(exp);
    let auth = bearer(&sign(key(), Some(KID), &c));
    // Accepted, and so remembered as verified (one core: every call meets the cache).
    for _ in 0..3 {
        let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "The token is expired");
    assert_eq!(backend.requests().len(), 3);
}

#[test]
fn a_key_change_by_reload_verifies_remembered_tokens_again() {
    let backend = Backend::echo();
    let gw = Gateway::start(&config(&backend.url()));
    let auth = bearer(&valid_token());
    for _ in 0..2 {
        let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    // The same document with another key (same kid), and a marker API that tells when
    // the new config serves.
    let reloaded = config(&backend.url())
        .replace(&key().n, &other_key().n)
        .replace(&key().e, &other_key().e)
        + "  - id: marker\n    path: marker\n    operations:\n      - { id: m, method: GET, urlTemplate: \"/*\", mock: { statusCode: 200, body: v2 } }\n";
    gw.replace_config(&reloaded);
    assert!(
        common::wait_until(Duration::from_secs(15), || get(&gw, "/marker/", &[]).status
            == 200),
        "the new config was not served: {}",
        gw.stderr_tail()
    );
    let r = get(&gw, "/orders/1", &[("Authorization", &auth)]);
    assert_refused(&r, 401, "Signature validation failed");
    // Tokens of the new key pass.
    let fresh = bearer(&sign(other_key(), Some(KID), &claims()));
    let r = get(&gw, "/orders/1", &[("Authorization", &fresh)]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(backend.requests().len(), 3);
}
