//! Behaviour of a compiled `validate-jwt` as a user relies on it: tokens signed by
//! `jsonwebtoken` (an independent JWS implementation) with real generated keys, and
//! hand-made tokens for every attack and malformation the module claims to stop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::reason as r;
use super::testkeys::{self, b64};
use super::*;
use crate::policy::context::Headers;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8; 32] = b"fedcba9876543210fedcba9876543210";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn hmac_key(id: Option<&str>, secret: &[u8]) -> KeySpec {
    KeySpec::Hmac {
        id: id.map(str::to_string),
        secret_b64: STANDARD.encode(secret),
    }
}

fn cfg_with(keys: Vec<KeySpec>) -> JwtPolicyConfig {
    JwtPolicyConfig {
        header_name: Some("Authorization".into()),
        signing_keys: keys,
        ..JwtPolicyConfig::default()
    }
}

fn hmac_validator() -> JwtValidator {
    JwtValidator::compile(cfg_with(vec![hmac_key(None, SECRET)])).unwrap()
}

fn claims() -> Value {
    json!({"iss": "https://idp.example", "aud": "api://portico", "sub": "alice", "exp": NOW + 3600})
}

fn hs256(claims: &Value) -> String {
    hs(Algorithm::HS256, None, claims, SECRET)
}

fn hs(alg: Algorithm, kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    testkeys::sign(alg, kid, claims, &EncodingKey::from_secret(secret))
}

fn check(
    v: &JwtValidator,
    token: &str,
) -> Result<std::sync::Arc<crate::policy::context::Jwt>, JwtError> {
    v.validate(token, now(), &KeySet::default())
}

fn reason_of(v: &JwtValidator, token: &str) -> &'static str {
    match check(v, token) {
        Ok(_) => "accepted",
        Err(e) => e.reason,
    }
}

/// The header and payload of `token` replaced, its signature kept.
fn with_parts(token: &str, header: Option<&Value>, payload: Option<&Value>) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    if let Some(h) = header {
        parts[0] = b64(h.to_string().as_bytes());
    }
    if let Some(p) = payload {
        parts[1] = b64(p.to_string().as_bytes());
    }
    parts.join(".")
}

// ---- the happy path and the decoded view ----

#[test]
fn valid_token_yields_the_decoded_view() {
    let c = json!({
        "iss": "https://idp.example", "aud": ["api://portico", "other"], "sub": "alice",
        "jti": "id-1", "exp": NOW + 60, "nbf": NOW - 60, "iat": NOW as f64 - 60.5,
        "roles": ["admin", "user"], "level": 5, "active": true, "obj": {"a": 1}, "gone": null,
    });
    let jwt = check(&hmac_validator(), &hs256(&c)).unwrap();
    assert_eq!(jwt.subject.as_deref(), Some("alice"));
    assert_eq!(jwt.issuer.as_deref(), Some("https://idp.example"));
    assert_eq!(jwt.audiences, vec!["api://portico", "other"]);
    assert_eq!(jwt.id.as_deref(), Some("id-1"));
    assert_eq!(jwt.algorithm.as_deref(), Some("HS256"));
    assert_eq!(jwt.expiration_time, Some(now() + Duration::from_secs(60)));
    assert_eq!(jwt.not_before, Some(now() - Duration::from_secs(60)));
    assert_eq!(jwt.issued_at, Some(now() - Duration::from_millis(60_500)));
    assert_eq!(jwt.claims["roles"], vec!["admin", "user"]);
    assert_eq!(jwt.claims["level"], vec!["5"]);
    assert_eq!(jwt.claims["active"], vec!["true"]);
    assert_eq!(jwt.claims["obj"], vec![r#"{"a":1}"#]);
    assert!(!jwt.claims.contains_key("gone"));
}

#[test]
fn every_key_format_verifies_its_own_tokens() {
    let rsa = testkeys::rsa();
    let c = claims();
    let rs = |alg| testkeys::sign(alg, None, &c, &rsa.encoding);
    let cases: Vec<(&str, KeySpec, String)> = vec![
        (
            "RSA PKCS#1 PEM",
            KeySpec::RsaPem {
                id: None,
                pem: rsa.pkcs1_pem.clone(),
            },
            rs(Algorithm::RS256),
        ),
        (
            "RSA SPKI PEM, PS256",
            KeySpec::RsaPem {
                id: None,
                pem: rsa.spki_pem.clone(),
            },
            rs(Algorithm::PS256),
        ),
        (
            "RSA n/e, RS512",
            KeySpec::RsaComponents {
                id: None,
                n: b64(&rsa.n),
                e: b64(&rsa.e),
            },
            rs(Algorithm::RS512),
        ),
        (
            "RSA JWK, PS384",
            KeySpec::Jwk(rsa.jwk(None).to_string()),
            rs(Algorithm::PS384),
        ),
        (
            "EC P-256 PEM",
            KeySpec::EcPem {
                id: None,
                pem: testkeys::p256().spki_pem.clone(),
            },
            testkeys::sign(Algorithm::ES256, None, &c, &testkeys::p256().encoding),
        ),
        (
            "EC P-384 PEM",
            KeySpec::EcPem {
                id: None,
                pem: testkeys::p384().spki_pem.clone(),
            },
            testkeys::sign(Algorithm::ES384, None, &c, &testkeys::p384().encoding),
        ),
        (
            "EC P-256 JWK",
            KeySpec::Jwk(testkeys::p256().jwk(None).to_string()),
            testkeys::sign(Algorithm::ES256, None, &c, &testkeys::p256().encoding),
        ),
        (
            "EC P-384 JWK",
            KeySpec::Jwk(testkeys::p384().jwk(None).to_string()),
            testkeys::sign(Algorithm::ES384, None, &c, &testkeys::p384().encoding),
        ),
        (
            "Ed25519 JWK",
            KeySpec::Jwk(
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&testkeys::ed25519().public)})
                    .to_string(),
            ),
            testkeys::sign(Algorithm::EdDSA, None, &c, &testkeys::ed25519().encoding),
        ),
        (
            "oct JWK, HS384",
            KeySpec::Jwk(json!({"kty": "oct", "k": b64(SECRET)}).to_string()),
            hs(Algorithm::HS384, None, &c, SECRET),
        ),
        (
            "base64 <key>, HS512",
            hmac_key(None, SECRET),
            hs(Algorithm::HS512, None, &c, SECRET),
        ),
        (
            "base64url <key> with padding",
            KeySpec::Hmac {
                id: None,
                secret_b64: URL_SAFE.encode(SECRET),
            },
            hs256(&c),
        ),
    ];
    for (what, spec, token) in cases {
        let v =
            JwtValidator::compile(cfg_with(vec![spec])).unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Err(e) = check(&v, &token) {
            panic!("{what}: {e}");
        }
        // And the same key refuses a token signed by someone else.
        let forged = hs(Algorithm::HS256, None, &c, OTHER_SECRET);
        assert_ne!(reason_of(&v, &forged), "accepted", "{what}");
    }
}

// ---- alg: none ----

#[test]
fn alg_none_is_rejected_in_every_spelling_with_any_signature() {
    let v = hmac_validator();
    let valid_mac = hs256(&claims());
    let mac = URL_SAFE_NO_PAD
        .decode(valid_mac.rsplit('.').next().unwrap())
        .unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for sig in [&b""[..], b"x", &mac] {
            let t = testkeys::raw(&json!({"alg": alg, "typ": "JWT"}), &claims(), sig);
            let e = check(&v, &t).unwrap_err();
            assert_eq!(
                e.reason,
                r::TOKEN_NOT_SIGNED,
                "alg {alg}, {} signature bytes",
                sig.len()
            );
        }
    }
}

#[test]
fn unsigned_tokens_when_not_required_still_face_every_claim_check() {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.require_signed_tokens = false;
    cfg.audiences = vec!["api://portico".into()];
    cfg.issuers = vec!["https://idp.example".into()];
    let v = JwtValidator::compile(cfg).unwrap();
    let none = |c: &Value, sig: &[u8]| testkeys::raw(&json!({"alg": "none"}), c, sig);

    // Keys exist, yet an unsigned token passes the signature step.
    let jwt = check(&v, &none(&claims(), b"")).unwrap();
    assert_eq!(jwt.algorithm.as_deref(), Some("none"));
    let mut expired = claims();
    expired["exp"] = json!(NOW - 1);
    assert_eq!(reason_of(&v, &none(&expired, b"")), r::TOKEN_EXPIRED);
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("api://other");
    assert_eq!(
        reason_of(&v, &none(&wrong_aud, b"")),
        r::TOKEN_AUDIENCE_NOT_ALLOWED
    );
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example");
    assert_eq!(
        reason_of(&v, &none(&wrong_iss, b"")),
        r::TOKEN_ISSUER_NOT_ALLOWED
    );
    // Only the exact name "none", and only with an empty signature.
    let t = testkeys::raw(&json!({"alg": "None"}), &claims(), b"");
    assert_eq!(reason_of(&v, &t), r::TOKEN_ALGORITHM_NOT_ALLOWED);
    assert_eq!(
        reason_of(&v, &none(&claims(), b"sig")),
        r::TOKEN_SIGNATURE_INVALID
    );
    // A signed algorithm with its signature stripped is not "unsigned".
    let stripped = testkeys::raw(&json!({"alg": "HS256"}), &claims(), b"");
    assert_eq!(reason_of(&v, &stripped), r::TOKEN_SIGNATURE_INVALID);
    // A properly signed token still has its signature checked.
    assert_eq!(
        reason_of(&v, &hs(Algorithm::HS256, None, &claims(), OTHER_SECRET)),
        r::TOKEN_SIGNATURE_INVALID
    );
    check(&v, &hs256(&claims())).unwrap();
}

// ---- key confusion and algorithm binding ----

#[test]
fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let rsa = testkeys::rsa();
    for (label, spec) in [
        (
            "SPKI PEM",
            KeySpec::RsaPem {
                id: Some("k1".into()),
                pem: rsa.spki_pem.clone(),
            },
        ),
        (
            "PKCS#1 PEM",
            KeySpec::RsaPem {
                id: Some("k1".into()),
                pem: rsa.pkcs1_pem.clone(),
            },
        ),
        ("JWK", KeySpec::Jwk(rsa.jwk(Some("k1")).to_string())),
    ] {
        let v = JwtValidator::compile(cfg_with(vec![spec])).unwrap();
        // Every byte form of the public key an attacker might feed to HMAC.
        let jwk_text = rsa.jwk(Some("k1")).to_string();
        let secrets: [&[u8]; 5] = [
            rsa.spki_pem.as_bytes(),
            rsa.pkcs1_pem.as_bytes(),
            &rsa.pkcs1_der,
            &rsa.n,
            jwk_text.as_bytes(),
        ];
        for secret in secrets {
            for kid in [Some("k1"), None] {
                let t = hs(Algorithm::HS256, kid, &claims(), secret);
                assert_eq!(
                    reason_of(&v, &t),
                    r::TOKEN_ALGORITHM_NOT_ALLOWED,
                    "{label}, kid {kid:?}"
                );
            }
        }
        // The legitimate RS256 token passes.
        check(
            &v,
            &testkeys::sign(Algorithm::RS256, Some("k1"), &claims(), &rsa.encoding),
        )
        .unwrap();
    }
}

#[test]
fn a_jwk_alg_pins_the_algorithm() {
    let rsa = testkeys::rsa();
    let mut jwk = rsa.jwk(None);
    jwk["alg"] = json!("RS256");
    let v = JwtValidator::compile(cfg_with(vec![KeySpec::Jwk(jwk.to_string())])).unwrap();
    check(
        &v,
        &testkeys::sign(Algorithm::RS256, None, &claims(), &rsa.encoding),
    )
    .unwrap();
    let ps = testkeys::sign(Algorithm::PS256, None, &claims(), &rsa.encoding);
    assert_eq!(reason_of(&v, &ps), r::TOKEN_ALGORITHM_NOT_ALLOWED);
}

#[test]
fn ec_keys_verify_only_their_curve() {
    let v = JwtValidator::compile(cfg_with(vec![KeySpec::EcPem {
        id: None,
        pem: testkeys::p256().spki_pem.clone(),
    }]))
    .unwrap();
    let es384 = testkeys::sign(
        Algorithm::ES384,
        None,
        &claims(),
        &testkeys::p384().encoding,
    );
    assert_eq!(reason_of(&v, &es384), r::TOKEN_ALGORITHM_NOT_ALLOWED);
    let rs = testkeys::sign(Algorithm::RS256, None, &claims(), &testkeys::rsa().encoding);
    assert_eq!(reason_of(&v, &rs), r::TOKEN_ALGORITHM_NOT_ALLOWED);
}

#[test]
fn unknown_or_miscased_algorithms_are_not_allowed() {
    let v = hmac_validator();
    let token = hs256(&claims());
    for alg in ["hs256", "HS1", "RSA-OAEP", "ES512", ""] {
        let t = with_parts(&token, Some(&json!({"alg": alg})), None);
        assert_eq!(reason_of(&v, &t), r::TOKEN_ALGORITHM_NOT_ALLOWED, "{alg}");
    }
}

#[test]
fn keys_in_the_token_header_are_never_trusted() {
    let cfg = cfg_with(vec![KeySpec::RsaPem {
        id: Some("k1".into()),
        pem: testkeys::rsa().pkcs1_pem.clone(),
    }]);
    let v = JwtValidator::compile(cfg).unwrap();
    let attacker = testkeys::rsa2();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    header.jku = Some("https://evil.example/jwks".into());
    header.jwk = Some(serde_json::from_value(attacker.jwk(Some("k1"))).unwrap());
    let t = jsonwebtoken::encode(&header, &claims(), &attacker.encoding).unwrap();
    assert_eq!(reason_of(&v, &t), r::TOKEN_SIGNATURE_INVALID);
}

// ---- signatures and key choice ----

#[test]
fn tampered_tokens_fail_the_signature_check() {
    let v = hmac_validator();
    let token = hs256(&claims());
    let mut elevated = claims();
    elevated["sub"] = json!("admin");
    assert_eq!(
        reason_of(&v, &with_parts(&token, None, Some(&elevated))),
        r::TOKEN_SIGNATURE_INVALID
    );
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[0] ^= 1;
    assert_eq!(
        reason_of(&v, &format!("{input}.{}", b64(&bytes))),
        r::TOKEN_SIGNATURE_INVALID
    );
    assert_eq!(
        reason_of(&v, &format!("{input}.{}", b64(&bytes[..16]))),
        r::TOKEN_SIGNATURE_INVALID
    );
    assert_eq!(
        reason_of(&v, &format!("{input}.")),
        r::TOKEN_SIGNATURE_INVALID
    );
    // RSA too.
    let rsa_v = JwtValidator::compile(cfg_with(vec![KeySpec::RsaPem {
        id: None,
        pem: testkeys::rsa().spki_pem.clone(),
    }]))
    .unwrap();
    let rs = testkeys::sign(
        Algorithm::RS256,
        None,
        &claims(),
        &testkeys::rsa2().encoding,
    );
    assert_eq!(reason_of(&rsa_v, &rs), r::TOKEN_SIGNATURE_INVALID);
}

#[test]
fn kid_selects_keys_and_falls_back_to_keys_without_id() {
    let v = JwtValidator::compile(cfg_with(vec![
        hmac_key(Some("a"), SECRET),
        hmac_key(Some("b"), OTHER_SECRET),
    ]))
    .unwrap();
    check(
        &v,
        &hs(Algorithm::HS256, Some("b"), &claims(), OTHER_SECRET),
    )
    .unwrap();
    assert_eq!(
        reason_of(
            &v,
            &hs(Algorithm::HS256, Some("a"), &claims(), OTHER_SECRET)
        ),
        r::TOKEN_SIGNATURE_INVALID
    );
    let unknown = hs(Algorithm::HS256, Some("c"), &claims(), OTHER_SECRET);
    let e = check(&v, &unknown).unwrap_err();
    assert_eq!(e.reason, r::TOKEN_SIGNATURE_KEY_NOT_FOUND);
    assert!(e.message.contains("kid 'c'"), "{}", e.message);
    // No kid: every key is tried.
    check(&v, &hs(Algorithm::HS256, None, &claims(), OTHER_SECRET)).unwrap();

    let third = b"a third secret that is long enough";
    let v = JwtValidator::compile(cfg_with(vec![
        hmac_key(Some("a"), SECRET),
        hmac_key(None, third),
    ]))
    .unwrap();
    // Unknown kid: the key without an id is tried.
    check(&v, &hs(Algorithm::HS256, Some("zzz"), &claims(), third)).unwrap();
    // A kid that matches excludes the keys without id.
    assert_eq!(
        reason_of(&v, &hs(Algorithm::HS256, Some("a"), &claims(), third)),
        r::TOKEN_SIGNATURE_INVALID
    );
}

#[test]
fn no_keys_at_all_is_key_not_found() {
    let cfg = JwtPolicyConfig {
        openid_config_urls: vec!["https://idp.example/.well-known/openid-configuration".into()],
        ..JwtPolicyConfig::default()
    };
    let v = JwtValidator::compile(cfg).unwrap();
    assert_eq!(
        reason_of(&v, &hs256(&claims())),
        r::TOKEN_SIGNATURE_KEY_NOT_FOUND
    );
}

#[test]
fn openid_keys_count_only_for_policies_with_openid_config() {
    let rsa = testkeys::rsa();
    let jwks = json!({"keys": [rsa.jwk(Some("r1"))]}).to_string();
    let set = KeySet::from_jwks(&jwks, Some("https://idp.example".into())).unwrap();
    let token = testkeys::sign(Algorithm::RS256, Some("r1"), &claims(), &rsa.encoding);

    let static_only = hmac_validator();
    assert_ne!(
        static_only.validate(&token, now(), &set).map(|_| ()),
        Ok(())
    );

    let with_openid = JwtValidator::compile(JwtPolicyConfig {
        openid_config_urls: vec!["https://idp.example/.well-known/openid-configuration".into()],
        ..JwtPolicyConfig::default()
    })
    .unwrap();
    with_openid.validate(&token, now(), &set).unwrap();
    // The set's issuer is enforced.
    let mut c = claims();
    c["iss"] = json!("https://elsewhere.example");
    let other = testkeys::sign(Algorithm::RS256, Some("r1"), &c, &rsa.encoding);
    let e = with_openid.validate(&other, now(), &set).unwrap_err();
    assert_eq!(e.reason, r::TOKEN_ISSUER_NOT_ALLOWED);
}

#[test]
fn the_signature_is_checked_before_any_claim() {
    let mut c = claims();
    c["exp"] = json!("not a number");
    c["aud"] = json!("elsewhere");
    let forged = hs(Algorithm::HS256, None, &c, OTHER_SECRET);
    assert_eq!(
        reason_of(&hmac_validator(), &forged),
        r::TOKEN_SIGNATURE_INVALID
    );
}

// ---- lifetime ----

fn at_skew(skew: u64) -> JwtValidator {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.clock_skew = Duration::from_secs(skew);
    JwtValidator::compile(cfg).unwrap()
}

fn with_claim(name: &str, value: Value) -> String {
    let mut c = claims();
    c[name] = value;
    hs256(&c)
}

#[test]
fn expiry_boundary_is_exp_plus_skew() {
    let v = at_skew(60);
    // Valid while now < exp + skew.
    assert_eq!(
        reason_of(&v, &with_claim("exp", json!(NOW - 59))),
        "accepted"
    );
    assert_eq!(
        reason_of(&v, &with_claim("exp", json!(NOW - 60))),
        r::TOKEN_EXPIRED
    );
    let v = at_skew(0);
    assert_eq!(
        reason_of(&v, &with_claim("exp", json!(NOW + 1))),
        "accepted"
    );
    assert_eq!(
        reason_of(&v, &with_claim("exp", json!(NOW))),
        r::TOKEN_EXPIRED
    );
    // Fractional NumericDate.
    assert_eq!(
        reason_of(&v, &with_claim("exp", json!(NOW as f64 + 0.5))),
        "accepted"
    );
    assert_eq!(
        reason_of(&v, &with_claim("exp", json!(NOW as f64 - 0.5))),
        r::TOKEN_EXPIRED
    );
}

#[test]
fn not_before_boundary_is_nbf_minus_skew() {
    let v = at_skew(60);
    assert_eq!(
        reason_of(&v, &with_claim("nbf", json!(NOW + 60))),
        "accepted"
    );
    assert_eq!(
        reason_of(&v, &with_claim("nbf", json!(NOW + 61))),
        r::TOKEN_NOT_YET_VALID
    );
    let v = at_skew(0);
    assert_eq!(reason_of(&v, &with_claim("nbf", json!(NOW))), "accepted");
    assert_eq!(
        reason_of(&v, &with_claim("nbf", json!(NOW + 1))),
        r::TOKEN_NOT_YET_VALID
    );
}

#[test]
fn expiration_time_is_required_unless_disabled() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        reason_of(&hmac_validator(), &hs256(&c)),
        r::TOKEN_EXPIRATION_TIME_MISSING
    );
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.require_expiration_time = false;
    let jwt = check(&JwtValidator::compile(cfg).unwrap(), &hs256(&c)).unwrap();
    assert_eq!(jwt.expiration_time, None);
}

#[test]
fn numeric_dates_of_the_wrong_json_type_are_invalid() {
    let v = hmac_validator();
    for (name, value) in [
        ("exp", json!("4000000000")),
        ("exp", json!(null)),
        ("exp", json!(true)),
        ("exp", json!([NOW + 60])),
        ("nbf", json!("0")),
        ("nbf", json!({"t": 0})),
        ("iat", json!("yesterday")),
    ] {
        let e = check(&v, &with_claim(name, value.clone())).unwrap_err();
        assert_eq!(e.reason, r::JWT_INVALID, "{name}: {value}");
        assert!(e.message.contains(name), "{}", e.message);
    }
}

// ---- audience and issuer ----

#[test]
fn audience_string_or_array_must_match() {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.audiences = vec!["api://portico".into(), "https://api.example/".into()];
    let v = JwtValidator::compile(cfg).unwrap();
    let ok = [
        json!("api://portico"),
        json!(["x", "api://portico"]),
        json!("https://api.example"),
    ];
    for aud in ok {
        assert_eq!(
            reason_of(&v, &with_claim("aud", aud.clone())),
            "accepted",
            "{aud}"
        );
    }
    for aud in [
        json!("api://other"),
        json!(["x", "y"]),
        json!([]),
        json!("API://PORTICO"),
    ] {
        assert_eq!(
            reason_of(&v, &with_claim("aud", aud.clone())),
            r::TOKEN_AUDIENCE_NOT_ALLOWED,
            "{aud}"
        );
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(reason_of(&v, &hs256(&c)), r::TOKEN_AUDIENCE_NOT_ALLOWED);
    for aud in [json!(5), json!(["api://portico", 5]), json!({"a": 1})] {
        assert_eq!(
            reason_of(&v, &with_claim("aud", aud.clone())),
            r::JWT_INVALID,
            "{aud}"
        );
    }
    // Without <audiences>, any audience is fine.
    assert_eq!(
        reason_of(&hmac_validator(), &with_claim("aud", json!("anything"))),
        "accepted"
    );
}

#[test]
fn issuer_must_be_listed() {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.issuers = vec!["https://a.example".into(), "https://idp.example".into()];
    let v = JwtValidator::compile(cfg).unwrap();
    check(&v, &hs256(&claims())).unwrap();
    assert_eq!(
        reason_of(&v, &with_claim("iss", json!("https://evil.example"))),
        r::TOKEN_ISSUER_NOT_ALLOWED
    );
    assert_eq!(
        reason_of(&v, &with_claim("iss", json!("https://idp.example/"))),
        r::TOKEN_ISSUER_NOT_ALLOWED
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(reason_of(&v, &hs256(&c)), r::TOKEN_ISSUER_NOT_ALLOWED);
    assert_eq!(
        reason_of(&v, &with_claim("iss", json!(["https://idp.example"]))),
        r::JWT_INVALID
    );
}

// ---- required claims ----

fn with_required(claims: Vec<RequiredClaim>) -> JwtValidator {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.required_claims = claims;
    JwtValidator::compile(cfg).unwrap()
}

fn req(name: &str, match_all: bool, separator: Option<&str>, values: &[&str]) -> RequiredClaim {
    RequiredClaim {
        name: name.into(),
        match_all,
        separator: separator.map(str::to_string),
        values: values.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn missing_required_claims_are_all_listed() {
    let v = with_required(vec![
        req("sub", true, None, &[]),
        req("tid", true, None, &[]),
        req("scp", true, None, &["read"]),
    ]);
    let e = check(&v, &hs256(&claims())).unwrap_err();
    assert_eq!(e.reason, r::TOKEN_CLAIM_NOT_FOUND);
    assert_eq!(
        e.message,
        "JWT is missing the following claims: tid, scp. Access denied."
    );
    // Present is enough when no values are listed, whatever the type.
    let mut c = claims();
    c["tid"] = json!(42);
    c["scp"] = json!("read");
    check(&v, &hs256(&c)).unwrap();
}

#[test]
fn claim_values_match_all_or_any() {
    let all = with_required(vec![req("roles", true, None, &["admin", "user"])]);
    let any = with_required(vec![req("roles", false, None, &["admin", "auditor"])]);
    let t = |roles: Value| with_claim("roles", roles);
    assert_eq!(
        reason_of(&all, &t(json!(["user", "admin", "x"]))),
        "accepted"
    );
    assert_eq!(
        reason_of(&all, &t(json!(["admin"]))),
        r::TOKEN_CLAIM_VALUE_NOT_ALLOWED
    );
    assert_eq!(reason_of(&any, &t(json!(["auditor"]))), "accepted");
    assert_eq!(reason_of(&any, &t(json!("admin"))), "accepted");
    assert_eq!(
        reason_of(&any, &t(json!(["user"]))),
        r::TOKEN_CLAIM_VALUE_NOT_ALLOWED
    );
    // Values compare exactly.
    assert_eq!(
        reason_of(&any, &t(json!(["Admin"]))),
        r::TOKEN_CLAIM_VALUE_NOT_ALLOWED
    );
    let e = check(&any, &t(json!(["user", "guest"]))).unwrap_err();
    assert_eq!(
        e.message,
        "Claim roles value of user,guest is not allowed. Access denied."
    );
    // Non-string claims compare by their JSON text.
    let level = with_required(vec![req("level", false, None, &["5"])]);
    assert_eq!(
        reason_of(&level, &with_claim("level", json!(5))),
        "accepted"
    );
}

#[test]
fn separator_splits_claim_values() {
    let v = with_required(vec![req("scp", true, Some(" "), &["read", "write"])]);
    assert_eq!(
        reason_of(&v, &with_claim("scp", json!("read write profile"))),
        "accepted"
    );
    assert_eq!(
        reason_of(&v, &with_claim("scp", json!("read profile"))),
        r::TOKEN_CLAIM_VALUE_NOT_ALLOWED
    );
    assert_eq!(
        reason_of(&v, &with_claim("scp", json!(["read write", "x"]))),
        "accepted"
    );
    // Without the separator the whole string is one value.
    let whole = with_required(vec![req("scp", true, None, &["read"])]);
    assert_eq!(
        reason_of(&whole, &with_claim("scp", json!("read write"))),
        r::TOKEN_CLAIM_VALUE_NOT_ALLOWED
    );
}

// ---- malformed tokens ----

#[test]
fn malformed_tokens_are_invalid() {
    let v = hmac_validator();
    let good = hs256(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let seg = |v: &str| b64(v.as_bytes());
    let cases = [
        ("one segment", "abc".to_string()),
        ("two segments", format!("{h}.{p}")),
        ("four segments", format!("{h}.{p}.{s}.x")),
        ("five segments (JWE)", format!("{h}.a.b.c.d")),
        ("header not base64url", format!("{h}*.{p}.{s}")),
        ("header padded", format!("{h}=.{p}.{s}")),
        (
            "payload standard alphabet",
            format!("{h}.{}+/.{s}", &p[..p.len() - 2]),
        ),
        ("signature not base64url", format!("{h}.{p}.{s}!")),
        ("header not JSON", format!("{}.{p}.{s}", seg("{alg"))),
        ("header an array", format!("{}.{p}.{s}", seg("[\"HS256\"]"))),
        ("payload not JSON", format!("{h}.{}.{s}", seg("{\"sub\":"))),
        ("payload a string", format!("{h}.{}.{s}", seg("\"hello\""))),
        (
            "payload invalid UTF-8",
            format!("{h}.{}.{s}", b64(&[0x7b, 0xff, 0x7d])),
        ),
        ("no alg", format!("{}.{p}.{s}", seg("{\"typ\":\"JWT\"}"))),
        (
            "alg not a string",
            format!("{}.{p}.{s}", seg("{\"alg\":256}")),
        ),
        (
            "kid not a string",
            format!("{}.{p}.{s}", seg("{\"alg\":\"HS256\",\"kid\":1}")),
        ),
        (
            "crit",
            format!(
                "{}.{p}.{s}",
                seg("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}")
            ),
        ),
        ("empty segments", "..".to_string()),
    ];
    for (what, token) in cases {
        let e = check(&v, &token).unwrap_err();
        assert_eq!(e.reason, r::JWT_INVALID, "{what}: {e}");
    }
    assert!(check(&v, &format!("{h}.a.b.c.d"))
        .unwrap_err()
        .message
        .contains("JWE"));
    assert_eq!(reason_of(&v, ""), r::TOKEN_NOT_PRESENT);
}

#[test]
fn huge_tokens_are_rejected_before_decoding() {
    let v = hmac_validator();
    let mut c = claims();
    c["pad"] = json!("x".repeat(MAX_TOKEN_LEN));
    let e = check(&v, &hs256(&c)).unwrap_err();
    assert_eq!(e.reason, r::JWT_INVALID);
    assert!(e.message.contains("larger than 65536"), "{}", e.message);
    // Garbage of that size is refused the same way, without looking at it.
    let e = check(&v, &"!".repeat(MAX_TOKEN_LEN + 1)).unwrap_err();
    assert!(e.message.contains("larger"), "{}", e.message);
    // Just under the limit still works.
    let base = hs256(&claims()).len();
    let mut c = claims();
    c["pad"] = json!("");
    let overhead = hs256(&c).len() - base;
    let room = (MAX_TOKEN_LEN - base - overhead) * 3 / 4 - 8;
    c["pad"] = json!("x".repeat(room));
    let t = hs256(&c);
    assert!(
        t.len() <= MAX_TOKEN_LEN && t.len() > MAX_TOKEN_LEN - 64,
        "{}",
        t.len()
    );
    check(&v, &t).unwrap();
}

#[test]
fn token_content_in_messages_is_truncated_and_has_no_control_characters() {
    let kid = format!("evil\r\nSet-Cookie: x=y{}", "k".repeat(200));
    let t = hs(Algorithm::HS256, Some(&kid), &claims(), SECRET);
    let v = JwtValidator::compile(cfg_with(vec![hmac_key(Some("a"), SECRET)])).unwrap();
    let e = check(&v, &t).unwrap_err();
    assert_eq!(e.reason, r::TOKEN_SIGNATURE_KEY_NOT_FOUND);
    assert!(!e.message.chars().any(char::is_control), "{:?}", e.message);
    assert!(e.message.len() < 200, "{}", e.message);
}

// ---- extraction ----

fn headers(list: &[(&str, &str)]) -> Headers {
    Headers(
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn extract_from_header_with_and_without_scheme() {
    let v = hmac_validator();
    let q: &[(String, String)] = &[];
    assert_eq!(
        v.extract(&headers(&[("authorization", "Bearer abc.def.ghi")]), q)
            .unwrap(),
        "abc.def.ghi"
    );
    assert_eq!(
        v.extract(&headers(&[("Authorization", "abc.def.ghi")]), q)
            .unwrap(),
        "abc.def.ghi"
    );
    let missing = v
        .extract(&headers(&[("X-Other", "Bearer a")]), q)
        .unwrap_err();
    assert_eq!(
        (missing.reason, missing.message.as_str()),
        (r::TOKEN_NOT_PRESENT, "JWT not present.")
    );
    for empty in ["", "   ", "Bearer ", "Bearer    "] {
        assert_eq!(
            v.extract(&headers(&[("Authorization", empty)]), q)
                .unwrap_err()
                .reason,
            r::TOKEN_NOT_PRESENT,
            "{empty:?}"
        );
    }
    assert_eq!(
        v.extract(&headers(&[("Authorization", "Bearer")]), q)
            .unwrap_err()
            .reason,
        r::TOKEN_NOT_PRESENT
    );
    let twice = headers(&[("Authorization", "Bearer a"), ("authorization", "Bearer b")]);
    assert_eq!(v.extract(&twice, q).unwrap_err().reason, r::JWT_INVALID);

    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.require_scheme = Some("Bearer".into());
    let v = JwtValidator::compile(cfg).unwrap();
    assert_eq!(
        v.extract(&headers(&[("Authorization", "bearer  tok")]), q)
            .unwrap(),
        "tok"
    );
    assert_eq!(
        v.extract(&headers(&[("Authorization", "Bearer ")]), q)
            .unwrap_err()
            .reason,
        r::TOKEN_NOT_PRESENT
    );
    for wrong in ["Basic dXNlcjpwYXNz", "tok", "Bearertok"] {
        let e = v
            .extract(&headers(&[("Authorization", wrong)]), q)
            .unwrap_err();
        assert_eq!(e.reason, r::TOKEN_SCHEME_NOT_ALLOWED, "{wrong}");
    }
}

#[test]
fn extract_from_query_parameter() {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.header_name = None;
    cfg.query_parameter_name = Some("access_token".into());
    let v = JwtValidator::compile(cfg).unwrap();
    let q = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    let h = Headers::default();
    assert_eq!(
        v.extract(&h, &q(&[("a", "1"), ("access_token", "x.y%2Ez")]))
            .unwrap(),
        "x.y.z"
    );
    assert_eq!(v.extract(&h, &q(&[("Access_Token", "x")])).unwrap(), "x");
    assert_eq!(
        v.extract(&h, &q(&[("token", "x")])).unwrap_err().reason,
        r::TOKEN_NOT_PRESENT
    );
    assert_eq!(
        v.extract(&h, &q(&[("access_token", "")]))
            .unwrap_err()
            .reason,
        r::TOKEN_NOT_PRESENT
    );
    let twice = q(&[("access_token", "a"), ("ACCESS_TOKEN", "b")]);
    assert_eq!(v.extract(&h, &twice).unwrap_err().reason, r::JWT_INVALID);
    // Headers are not looked at.
    let auth = headers(&[("Authorization", "Bearer a.b.c")]);
    assert_eq!(
        v.extract(&auth, &[]).unwrap_err().reason,
        r::TOKEN_NOT_PRESENT
    );
}

#[test]
fn extracted_token_round_trips_through_validate() {
    let v = hmac_validator();
    let token = hs256(&claims());
    let value = format!("Bearer {token}");
    let got = v
        .extract(&headers(&[("Authorization", &value)]), &[])
        .unwrap();
    check(&v, &got).unwrap();
}

// ---- compile ----

#[test]
fn compile_reports_every_error_with_its_place() {
    let cfg = JwtPolicyConfig {
        header_name: Some("Authorization".into()),
        query_parameter_name: Some("t".into()),
        failed_validation_httpcode: 42,
        signing_keys: vec![
            hmac_key(None, SECRET),
            KeySpec::Hmac {
                id: None,
                secret_b64: "not base64!".into(),
            },
            hmac_key(None, b"short"),
            KeySpec::RsaComponents {
                id: None,
                n: "AQAB".into(),
                e: "AQAB".into(),
            },
        ],
        openid_config_urls: vec!["ftp://idp.example/x".into()],
        required_claims: vec![req("", true, Some(""), &[])],
        ..JwtPolicyConfig::default()
    };
    let err = JwtValidator::compile(cfg).unwrap_err();
    for part in [
        "header-name and query-parameter-name",
        "failed-validation-httpcode 42",
        "issuer-signing-keys[1]: not valid base64",
        "issuer-signing-keys[2]: HMAC key is 40 bits",
        "issuer-signing-keys[3]: RSA key is 17 bits",
        "openid-config[0]",
        "required-claims[0]: claim has no name",
        "required-claims[0]: separator is empty",
    ] {
        assert!(err.contains(part), "missing {part:?} in {err}");
    }
    assert!(!err.contains("issuer-signing-keys[0]"), "{err}");
}

#[test]
fn compile_refuses_a_policy_that_can_never_pass() {
    let err = JwtValidator::compile(cfg_with(vec![])).unwrap_err();
    assert!(err.contains("no signing keys"), "{err}");
    let mut cfg = cfg_with(vec![]);
    cfg.require_signed_tokens = false;
    assert!(JwtValidator::compile(cfg).is_ok());
}

#[test]
fn accessors_expose_the_failure_settings() {
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.failed_validation_httpcode = 403;
    cfg.failed_validation_error_message = Some("Unauthorized.".into());
    cfg.output_token_variable_name = Some("jwt".into());
    let v = JwtValidator::compile(cfg).unwrap();
    assert_eq!(
        (
            v.failed_status(),
            v.failed_message(),
            v.output_token_variable_name()
        ),
        (403, Some("Unauthorized."), Some("jwt"))
    );
    assert_eq!(hmac_validator().failed_message(), None);
    assert_eq!(hmac_validator().failed_status(), 401);
}

#[test]
fn parse_unverified_decodes_without_checking() {
    let mut c = claims();
    c["exp"] = json!(1);
    let jwt = parse_unverified(&hs(Algorithm::HS256, None, &c, OTHER_SECRET)).unwrap();
    assert_eq!(jwt.subject.as_deref(), Some("alice"));
    assert_eq!(
        jwt.expiration_time,
        Some(UNIX_EPOCH + Duration::from_secs(1))
    );
    assert_eq!(parse_unverified("a.b").unwrap_err().reason, r::JWT_INVALID);
}

/// A rough per-validation cost, by hand:
/// `cargo test --release --lib policy::jwt::tests::rs256_validation_speed -- --ignored --nocapture`
#[test]
#[ignore = "timing; run by hand in release"]
fn rs256_validation_speed() {
    let rsa = testkeys::rsa();
    let mut cfg = cfg_with(vec![KeySpec::RsaPem {
        id: Some("k1".into()),
        pem: rsa.spki_pem.clone(),
    }]);
    cfg.audiences = vec!["api://portico".into()];
    cfg.issuers = vec!["https://idp.example".into()];
    cfg.required_claims = vec![req("sub", true, None, &["alice"])];
    let v = JwtValidator::compile(cfg).unwrap();
    let rs = testkeys::sign(Algorithm::RS256, Some("k1"), &claims(), &rsa.encoding);
    let es_v = JwtValidator::compile(cfg_with(vec![KeySpec::EcPem {
        id: None,
        pem: testkeys::p256().spki_pem.clone(),
    }]))
    .unwrap();
    let es = testkeys::sign(
        Algorithm::ES256,
        None,
        &claims(),
        &testkeys::p256().encoding,
    );
    let hs_v = hmac_validator();
    let hs_t = hs256(&claims());
    let key = super::keys::VerifyKey::rsa_der(None, &rsa.pkcs1_der).unwrap();
    let (input, sig) = rs.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    use super::keys::Alg;
    let n = 20_000u32;
    let cases: [(&str, &dyn Fn()); 4] = [
        ("RS256 (2048-bit) validate()", &|| {
            drop(check(&v, std::hint::black_box(&rs)).unwrap())
        }),
        ("ES256 validate()", &|| {
            drop(check(&es_v, std::hint::black_box(&es)).unwrap())
        }),
        ("HS256 validate()", &|| {
            drop(check(&hs_v, std::hint::black_box(&hs_t)).unwrap())
        }),
        ("RS256 signature check alone", &|| {
            assert!(key.verify(Alg::Rs256, input.as_bytes(), std::hint::black_box(&sig)))
        }),
    ];
    for (what, f) in cases {
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ns());
        for _ in 0..n {
            f();
        }
        let cpu = (thread_cpu_ns() - cpu) / u64::from(n);
        println!(
            "{what}: {:?} wall, {cpu} ns on-CPU per call",
            wall.elapsed() / n
        );
    }
}

/// This thread's on-CPU time (Linux schedstat), so a busy machine inflates only the wall
/// time.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// ---- the per-core cache of verified signatures ----

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_cached_token_still_gets_every_claim_check() {
    let v = at_skew(30);
    let mut cache = VerifiedTokens::default();
    let token = with_claim("exp", json!(NOW + 100));
    let none = KeySet::default();
    let first = v
        .validate_cached(&token, now(), &none, 0, &mut cache)
        .unwrap();
    assert_eq!(cache.len(), 1, "a verified token is remembered");
    let hit = v
        .validate_cached(&token, at(NOW + 99), &none, 0, &mut cache)
        .unwrap();
    // A hit hands out the claims decoded on the miss, identical to an uncached check.
    assert!(std::sync::Arc::ptr_eq(&first, &hit));
    assert_eq!(*hit, *v.validate(&token, at(NOW + 99), &none).unwrap());
    // Past exp the entry is no longer used, but the skew still accepts the token:
    // verified again.
    v.validate_cached(&token, at(NOW + 129), &none, 0, &mut cache)
        .unwrap();
    // Past exp + skew: expired, cached or not.
    let e = v
        .validate_cached(&token, at(NOW + 130), &none, 0, &mut cache)
        .unwrap_err();
    assert_eq!(e.reason, r::TOKEN_EXPIRED);
    // Before nbf - skew: not yet valid, although the signature is known good.
    let mut c = claims();
    c["nbf"] = json!(NOW + 50);
    let early = hs256(&c);
    v.validate_cached(&early, at(NOW + 20), &none, 0, &mut cache)
        .unwrap();
    let e = v
        .validate_cached(&early, at(NOW + 19), &none, 0, &mut cache)
        .unwrap_err();
    assert_eq!(e.reason, r::TOKEN_NOT_YET_VALID);
}

#[test]
fn failures_unsigned_and_exp_less_tokens_are_not_remembered() {
    let v = hmac_validator();
    let mut cache = VerifiedTokens::default();
    let none = KeySet::default();
    let forged = hs(Algorithm::HS256, None, &claims(), OTHER_SECRET);
    for _ in 0..2 {
        let e = v
            .validate_cached(&forged, now(), &none, 0, &mut cache)
            .unwrap_err();
        assert_eq!(e.reason, r::TOKEN_SIGNATURE_INVALID);
    }
    let mut cfg = cfg_with(vec![hmac_key(None, SECRET)]);
    cfg.require_expiration_time = false;
    let lax = JwtValidator::compile(cfg).unwrap();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    lax.validate_cached(&hs256(&c), now(), &none, 0, &mut cache)
        .unwrap();
    assert!(cache.is_empty(), "{cache:?}");
}

#[test]
fn a_token_verified_under_old_keys_is_verified_again_after_a_key_change() {
    let (old, new) = (testkeys::rsa(), testkeys::rsa2());
    let set = |key: &testkeys::RsaKey| {
        let jwks = json!({"keys": [key.jwk(Some("r1"))]}).to_string();
        KeySet::from_jwks(&jwks, None).unwrap()
    };
    let v = JwtValidator::compile(JwtPolicyConfig {
        openid_config_urls: vec!["https://idp.example/.well-known/openid-configuration".into()],
        ..JwtPolicyConfig::default()
    })
    .unwrap();
    let token = testkeys::sign(Algorithm::RS256, Some("r1"), &claims(), &old.encoding);
    let mut cache = VerifiedTokens::default();
    v.validate_cached(&token, now(), &set(old), 1, &mut cache)
        .unwrap();
    // Same generation: the signature is not checked again (these keys could not
    // verify it), which is what the cache is for.
    v.validate_cached(&token, now(), &set(new), 1, &mut cache)
        .unwrap();
    // The identity provider rotated its keys: generation 2 has only the new key.
    let e = v
        .validate_cached(&token, now(), &set(new), 2, &mut cache)
        .unwrap_err();
    assert_eq!(e.reason, r::TOKEN_SIGNATURE_INVALID);
    // A config compiled again (new validator, other keys) does not trust old entries.
    let recompiled = JwtValidator::compile(cfg_with(vec![hmac_key(None, SECRET)])).unwrap();
    assert_ne!(
        recompiled
            .validate_cached(&token, now(), &set(old), 1, &mut cache)
            .map(|_| ()),
        Ok(())
    );
}
