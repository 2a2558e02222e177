//! `validate-jwt`: the policy element compiled into a [`JwtValidator`] (the checks are
//! the JWT engine's, [`crate::policy::jwt`]); here the token is found, the keys of the
//! policy's `openid-config` URLs are looked up, and the outcome becomes a variable or a
//! failure with APIM's status, message and `context.LastError`.
//!
//! `openid-config` documents are fetched by one [`OpenIdCache`] per distinct list of
//! URLs, shared process-wide (a registry keyed by the URLs): policies and reloads that
//! name the same URLs share its refresh thread and keys. A new cache is filled once
//! while the config compiles (compilation runs off the data plane), so the first
//! requests after a load already have keys. Each core keeps a copy of the published
//! keys in [`Services::openid`] and reads the cache's generation per request.
//!
//! Each core also remembers the tokens whose signature it verified
//! ([`crate::policy::jwt::VerifiedTokens`], in [`Services::tables`]): a token seen again
//! under the same keys skips the signature step; every claim check still runs.
//!
//! Left out: `decryption-keys` (encrypted tokens), `certificate-id` keys, and
//! expressions anywhere but `token-value` and `failed-validation-error-message`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use super::access::only_in;
use super::attrs::{no_children, Attrs};
use super::headers::expression_failed;
use super::CompileCx;
use crate::policy::context::{Context, Value};
use crate::policy::expr::Template;
use crate::policy::jwt::{
    reason, JwtError, JwtPolicyConfig, JwtValidator, KeySet, KeySpec, OpenIdCache, RequiredClaim,
};
use crate::policy::pipeline::{Flow, PolicyFailure, Section};
use crate::policy::services::Services;
use crate::policy::xml::Element;

/// How often an openid-config document is fetched again (APIM: every hour).
const OPENID_REFRESH: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct ValidateJwt {
    validator: JwtValidator,
    /// `token-value`: the token is this expression's value.
    token_value: Option<Template>,
    /// `failed-validation-error-message`, evaluated on failure.
    message: Option<Template>,
    openid: Option<Arc<SharedOpenId>>,
}

/// An [`OpenIdCache`] with a process-unique id: per-core copies are named by it, never
/// by address (a dropped cache's address can be reused).
pub struct SharedOpenId {
    id: u64,
    cache: OpenIdCache,
}

impl std::fmt::Debug for SharedOpenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedOpenId")
            .field("id", &self.id)
            .field("urls", &self.cache.urls())
            .finish()
    }
}

impl ValidateJwt {
    pub fn compile(el: &Element, cx: &CompileCx<'_>) -> Result<Self, String> {
        only_in(cx, &[Section::Inbound])?;
        let mut a = Attrs::new(el);
        let header_name = literal(&mut a, "header-name")?.map(str::to_string);
        let query_parameter_name = literal(&mut a, "query-parameter-name")?.map(str::to_string);
        let token_value = a.template("token-value")?;
        let sources = [
            header_name.is_some(),
            query_parameter_name.is_some(),
            token_value.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => {
                return Err(
                    "one of header-name, query-parameter-name or token-value is required".into(),
                )
            }
            1 => {}
            _ => {
                return Err(
                    "give only one of header-name, query-parameter-name or token-value".into(),
                )
            }
        }
        let failed_validation_httpcode = match literal(&mut a, "failed-validation-httpcode")? {
            None => 401,
            Some(v) => v.trim().parse().map_err(|_| {
                format!("failed-validation-httpcode must be a status code, not {v:?}")
            })?,
        };
        let message = a.template("failed-validation-error-message")?;
        let require_expiration_time = literal_bool(&mut a, "require-expiration-time", true)?;
        let require_scheme = literal(&mut a, "require-scheme")?.map(str::to_string);
        let require_signed_tokens = literal_bool(&mut a, "require-signed-tokens", true)?;
        let clock_skew = match literal(&mut a, "clock-skew")? {
            None => Duration::ZERO,
            Some(v) => Duration::from_secs(
                v.trim()
                    .parse()
                    .map_err(|_| format!("clock-skew must be whole seconds, not {v:?}"))?,
            ),
        };
        let output_token_variable_name = a.opt("output-token-variable-name").map(str::to_string);
        a.finish()?;

        let mut cfg = JwtPolicyConfig {
            header_name,
            query_parameter_name,
            failed_validation_httpcode,
            failed_validation_error_message: None,
            require_expiration_time,
            require_signed_tokens,
            require_scheme,
            clock_skew,
            output_token_variable_name,
            ..JwtPolicyConfig::default()
        };
        let mut seen: Vec<&str> = Vec::new();
        for child in el.elements() {
            let name = child.name.as_str();
            if name != "openid-config" && seen.contains(&name) {
                return Err(format!("<{name}> is given twice"));
            }
            seen.push(name);
            match name {
                "openid-config" => {
                    let mut ca = Attrs::new(child);
                    let url = literal(&mut ca, "url")
                        .and_then(|u| u.ok_or_else(|| "attribute url is required".into()))
                        .map_err(|e| format!("<openid-config>: {e}"))?;
                    ca.finish().map_err(|e| format!("<openid-config>: {e}"))?;
                    no_children(child).map_err(|e| format!("<openid-config>: {e}"))?;
                    cfg.openid_config_urls.push(url.trim().to_string());
                }
                "issuer-signing-keys" => {
                    Attrs::new(child)
                        .finish()
                        .map_err(|e| format!("<issuer-signing-keys>: {e}"))?;
                    for key in child.elements() {
                        if key.name != "key" {
                            return Err(format!(
                                "unexpected <{}> in <issuer-signing-keys>",
                                key.name
                            ));
                        }
                        cfg.signing_keys
                            .push(key_spec(key).map_err(|e| format!("<key>: {e}"))?);
                    }
                }
                "decryption-keys" => {
                    return Err("<decryption-keys> (encrypted tokens) is not supported".into())
                }
                "audiences" => cfg.audiences = texts(child, "audience")?,
                "issuers" => cfg.issuers = texts(child, "issuer")?,
                "required-claims" => {
                    Attrs::new(child)
                        .finish()
                        .map_err(|e| format!("<required-claims>: {e}"))?;
                    for claim in child.elements() {
                        if claim.name != "claim" {
                            return Err(format!(
                                "unexpected <{}> in <required-claims>",
                                claim.name
                            ));
                        }
                        cfg.required_claims
                            .push(required_claim(claim).map_err(|e| format!("<claim>: {e}"))?);
                    }
                }
                other => return Err(format!("unexpected <{other}> in <validate-jwt>")),
            }
        }
        let urls = cfg.openid_config_urls.clone();
        let validator = JwtValidator::compile(cfg)?;
        let openid = if urls.is_empty() {
            None
        } else {
            Some(shared_cache(&urls))
        };
        Ok(ValidateJwt {
            validator,
            token_value,
            message,
            openid,
        })
    }

    pub fn apply(&self, cx: &mut Context, svc: &mut Services) -> Flow {
        let token = match &self.token_value {
            Some(t) => match t.eval_string(cx) {
                Ok(s) if s.trim().is_empty() => Err(JwtError {
                    reason: reason::TOKEN_NOT_PRESENT,
                    message: "JWT not present.".into(),
                }),
                Ok(s) => Ok(s.trim().to_string()),
                Err(e) => return expression_failed("validate-jwt", e.message),
            },
            None => self
                .validator
                .extract(&cx.request.headers, &cx.request.query),
        };
        let now = cx.now.unwrap_or_else(SystemTime::now);
        let cache = &mut svc.tables.verified_tokens;
        let result = token.and_then(|token| match &self.openid {
            Some(shared) => {
                let (generation, keys) = svc.openid.get_with_generation(shared.id, &shared.cache);
                self.validator
                    .validate_cached(&token, now, keys, generation, cache)
            }
            None => self
                .validator
                .validate_cached(&token, now, empty_keys(), 0, cache),
        });
        match result {
            Ok(jwt) => {
                if let Some(name) = self.validator.output_token_variable_name() {
                    cx.variables.insert(name.to_string(), Value::Jwt(jwt));
                }
                Flow::Continue
            }
            Err(e) => {
                if e.reason == reason::TOKEN_SIGNATURE_KEY_NOT_FOUND {
                    // The identity provider may have rotated its keys.
                    if let Some(shared) = &self.openid {
                        shared.cache.request_refresh();
                    }
                }
                let client_message = match &self.message {
                    None => e.message.clone(),
                    Some(t) => t.eval_string(cx).unwrap_or_else(|_| e.message.clone()),
                };
                let mut failure = PolicyFailure::new(
                    self.validator.failed_status(),
                    "validate-jwt",
                    e.reason,
                    client_message,
                );
                // on-error sees what actually failed, even behind a custom message.
                failure.error.message = e.message;
                Flow::Error(failure)
            }
        }
    }

    pub fn needs_body(&self) -> bool {
        [&self.token_value, &self.message].into_iter().flatten().any(|t| {
            matches!(t, Template::Expr(e) if e.reads_request_body() || e.reads_response_body())
        })
    }
}

fn empty_keys() -> &'static KeySet {
    static EMPTY: OnceLock<KeySet> = OnceLock::new();
    EMPTY.get_or_init(KeySet::default)
}

/// The shared cache for `urls`, started (and filled once) if no live policy has it.
fn shared_cache(urls: &[String]) -> Arc<SharedOpenId> {
    static REGISTRY: OnceLock<Mutex<HashMap<Vec<String>, Weak<SharedOpenId>>>> = OnceLock::new();
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let mut registry = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(live) = registry.get(urls).and_then(Weak::upgrade) {
        return live;
    }
    registry.retain(|_, w| w.strong_count() > 0);
    let cache = OpenIdCache::start(urls.to_vec(), OPENID_REFRESH);
    if let Err(e) = cache.refresh_now() {
        tracing::warn!(urls = ?urls, error = %e, "validate-jwt openid-config: no keys yet; the refresh thread keeps trying");
    }
    let shared = Arc::new(SharedOpenId {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        cache,
    });
    registry.insert(urls.to_vec(), Arc::downgrade(&shared));
    shared
}

fn literal<'a>(a: &mut Attrs<'a>, name: &'a str) -> Result<Option<&'a str>, String> {
    match a.opt(name) {
        Some(v) if v.trim_start().starts_with('@') => Err(format!(
            "{name}: policy expressions are not supported here (only a literal value)"
        )),
        other => Ok(other),
    }
}

fn literal_bool<'a>(a: &mut Attrs<'a>, name: &'a str, default: bool) -> Result<bool, String> {
    literal(a, name)?;
    a.bool_or(name, default)
}

/// One `<key>`: base64 text (a symmetric key), or `n` and `e` (an RSA public key), with
/// an optional `id` matched against the token's `kid`.
fn key_spec(key: &Element) -> Result<KeySpec, String> {
    let mut a = Attrs::new(key);
    let id = a.opt("id").map(str::to_string);
    let certificate = a.opt("certificate-id");
    let n = a.opt("n");
    let e = a.opt("e");
    a.finish()?;
    no_children(key)?;
    if certificate.is_some() {
        return Err(
            "certificate-id needs certificates in the config (not supported yet): give the key as n and e, or as base64 text"
                .into(),
        );
    }
    let text = key.text();
    match (n, e) {
        (Some(n), Some(e)) if text.is_empty() => Ok(KeySpec::RsaComponents {
            id,
            n: n.trim().to_string(),
            e: e.trim().to_string(),
        }),
        (Some(_), Some(_)) => Err("give n and e, or a base64 key, not both".into()),
        (Some(_), None) | (None, Some(_)) => Err("n and e must be given together".into()),
        (None, None) if text.is_empty() => Err("the key is empty".into()),
        (None, None) if text.starts_with('@') => {
            Err("policy expressions are not supported in keys".into())
        }
        (None, None) => Ok(KeySpec::Hmac {
            id,
            secret_b64: text,
        }),
    }
}

/// The literal texts of `<audiences>`/`<issuers>` children.
fn texts(list: &Element, item: &str) -> Result<Vec<String>, String> {
    Attrs::new(list)
        .finish()
        .map_err(|e| format!("<{}>: {e}", list.name))?;
    let mut out = Vec::new();
    for child in list.elements() {
        if child.name != item {
            return Err(format!("unexpected <{}> in <{}>", child.name, list.name));
        }
        Attrs::new(child)
            .finish()
            .map_err(|e| format!("<{item}>: {e}"))?;
        no_children(child).map_err(|e| format!("<{item}>: {e}"))?;
        let text = child.text();
        if text.starts_with('@') {
            return Err(format!(
                "<{item}>: policy expressions are not supported here (only a literal value)"
            ));
        }
        if text.is_empty() {
            return Err(format!("<{item}> is empty"));
        }
        out.push(text);
    }
    if out.is_empty() {
        return Err(format!("<{}> needs at least one <{item}>", list.name));
    }
    Ok(out)
}

fn required_claim(claim: &Element) -> Result<RequiredClaim, String> {
    let mut a = Attrs::new(claim);
    let name = a.req("name")?.to_string();
    let match_all = match a.opt("match").unwrap_or("all") {
        "all" => true,
        "any" => false,
        other => return Err(format!("match must be all or any, not {other:?}")),
    };
    let separator = a.opt("separator").map(str::to_string);
    a.finish()?;
    let mut values = Vec::new();
    for v in claim.elements() {
        if v.name != "value" {
            return Err(format!("unexpected <{}> (only <value> here)", v.name));
        }
        no_children(v).map_err(|e| format!("<value>: {e}"))?;
        let text = v.text();
        if text.starts_with('@') {
            return Err("<value>: policy expressions are not supported here".into());
        }
        values.push(text);
    }
    Ok(RequiredClaim {
        name,
        match_all,
        separator,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::Scope;
    use crate::policy::xml;
    use crate::ratelimit::{CoreShard, NodeLimiter};
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::{json, Value as J};
    use std::time::{Instant, UNIX_EPOCH};

    const NOW: u64 = 1_700_000_000;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn services() -> Services {
        Services {
            limits: CoreShard::new(NodeLimiter::new(1, 100), 0),
            now: Instant::now(),
            openid: Default::default(),
            tables: Default::default(),
        }
    }

    fn compile(doc: &str) -> Result<ValidateJwt, String> {
        let cx = CompileCx {
            section: Section::Inbound,
            scope: Scope::Api,
            scope_id: "api",
            index: 0,
            mock: None,
            env: &crate::policy::builtin::CompileEnv::EMPTY,
        };
        ValidateJwt::compile(&xml::parse(doc).unwrap(), &cx)
    }

    fn policy(children: &str, attrs: &str) -> ValidateJwt {
        let doc = format!(
            r#"<validate-jwt header-name="Authorization" require-scheme="Bearer" {attrs}>
                 <issuer-signing-keys><key>{}</key></issuer-signing-keys>{children}</validate-jwt>"#,
            STANDARD.encode(SECRET)
        );
        compile(&doc).unwrap()
    }

    fn claims() -> J {
        json!({"iss": "https://idp.example", "aud": "api://portico", "sub": "alice",
               "scp": "read write", "exp": NOW + 3600})
    }

    fn hs256(claims: &J) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn request(token: &str) -> Context {
        let mut cx = Context {
            now: Some(UNIX_EPOCH + Duration::from_secs(NOW)),
            ..Context::default()
        };
        cx.request
            .headers
            .set("Authorization", format!("Bearer {token}"));
        cx
    }

    /// The failure's reason, or "accepted".
    fn outcome(p: &ValidateJwt, cx: &mut Context) -> String {
        match p.apply(cx, &mut services()) {
            Flow::Continue => "accepted".into(),
            Flow::Error(f) => {
                assert_eq!(f.error.source, "validate-jwt");
                f.error.reason
            }
            other => panic!("{other:?}"),
        }
    }

    fn with(name: &str, value: J) -> String {
        let mut c = claims();
        c[name] = value;
        hs256(&c)
    }

    struct Rsa {
        encoding: EncodingKey,
        n: String,
        e: String,
    }

    fn rsa() -> &'static Rsa {
        static K: OnceLock<Rsa> = OnceLock::new();
        K.get_or_init(|| {
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
            Rsa {
                encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
                n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }
        })
    }

    #[test]
    fn a_valid_token_is_stored_in_the_output_variable() {
        let p = policy("", r#"output-token-variable-name="jwt""#);
        let mut cx = request(&hs256(&claims()));
        assert_eq!(p.apply(&mut cx, &mut services()), Flow::Continue);
        match cx.variables.get("jwt") {
            Some(Value::Jwt(jwt)) => {
                assert_eq!(jwt.subject.as_deref(), Some("alice"));
                assert_eq!(jwt.issuer.as_deref(), Some("https://idp.example"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_policy_remembers_verified_tokens_per_core() {
        let p = policy("", "");
        let mut svc = services();
        let token = hs256(&claims());
        for _ in 0..3 {
            assert_eq!(p.apply(&mut request(&token), &mut svc), Flow::Continue);
        }
        assert_eq!(svc.tables.verified_tokens.len(), 1);
        // Claims are still checked on a hit: the same token, later than its exp.
        let mut late = request(&token);
        late.now = Some(UNIX_EPOCH + Duration::from_secs(NOW + 3600));
        match p.apply(&mut late, &mut svc) {
            Flow::Error(f) => assert_eq!(f.error.reason, reason::TOKEN_EXPIRED),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let p = policy("", "");
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        let mut cx = request(&format!("{header}.{payload}."));
        assert_eq!(outcome(&p, &mut cx), reason::TOKEN_NOT_SIGNED);
    }

    #[test]
    fn a_key_of_the_wrong_type_does_not_verify() {
        let r = rsa();
        let p = compile(&format!(
            r#"<validate-jwt header-name="Authorization"><issuer-signing-keys><key id="k1" n="{}" e="{}"/></issuer-signing-keys></validate-jwt>"#,
            r.n, r.e
        ))
        .unwrap();
        // HS256 against an RSA key (whatever secret the attacker picked).
        let mut cx = request(&hs256(&claims()));
        assert_eq!(outcome(&p, &mut cx), reason::TOKEN_ALGORITHM_NOT_ALLOWED);
        // The RS256 token signed with the matching private key passes.
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let rs = jsonwebtoken::encode(&header, &claims(), &r.encoding).unwrap();
        assert_eq!(outcome(&p, &mut request(&rs)), "accepted");
        // An RS256 token against the HMAC-only policy.
        assert_eq!(
            outcome(&policy("", ""), &mut request(&rs)),
            reason::TOKEN_ALGORITHM_NOT_ALLOWED
        );
    }

    #[test]
    fn expiry_at_the_clock_skew_boundary() {
        let p = policy("", r#"clock-skew="60""#);
        assert_eq!(
            outcome(&p, &mut request(&with("exp", json!(NOW - 59)))),
            "accepted"
        );
        assert_eq!(
            outcome(&p, &mut request(&with("exp", json!(NOW - 60)))),
            reason::TOKEN_EXPIRED
        );
        let p = policy("", "");
        assert_eq!(
            outcome(&p, &mut request(&with("exp", json!(NOW + 1)))),
            "accepted"
        );
        assert_eq!(
            outcome(&p, &mut request(&with("exp", json!(NOW)))),
            reason::TOKEN_EXPIRED
        );
    }

    #[test]
    fn wrong_issuer_or_audience() {
        let p = policy(
            "<audiences><audience>api://portico</audience></audiences>\
             <issuers><issuer>https://idp.example</issuer></issuers>",
            "",
        );
        assert_eq!(outcome(&p, &mut request(&hs256(&claims()))), "accepted");
        assert_eq!(
            outcome(&p, &mut request(&with("aud", json!("api://other")))),
            reason::TOKEN_AUDIENCE_NOT_ALLOWED
        );
        assert_eq!(
            outcome(
                &p,
                &mut request(&with("iss", json!("https://evil.example")))
            ),
            reason::TOKEN_ISSUER_NOT_ALLOWED
        );
    }

    #[test]
    fn required_claims() {
        let p = policy(
            r#"<required-claims>
                 <claim name="scp" match="any" separator=" "><value>admin</value><value>write</value></claim>
                 <claim name="tid"/>
               </required-claims>"#,
            "",
        );
        assert_eq!(
            outcome(&p, &mut request(&hs256(&claims()))),
            reason::TOKEN_CLAIM_NOT_FOUND
        );
        assert_eq!(
            outcome(&p, &mut request(&with("tid", json!("t1")))),
            "accepted"
        );
        let mut c = claims();
        c["tid"] = json!("t1");
        c["scp"] = json!("read");
        assert_eq!(
            outcome(&p, &mut request(&hs256(&c))),
            reason::TOKEN_CLAIM_VALUE_NOT_ALLOWED
        );
    }

    #[test]
    fn failure_status_and_messages() {
        let p = policy(
            "",
            r#"failed-validation-httpcode="403" failed-validation-error-message="Unauthorized. Access token is missing or invalid.""#,
        );
        let mut cx = request(&with("exp", json!(NOW - 1)));
        match p.apply(&mut cx, &mut services()) {
            Flow::Error(f) => {
                assert_eq!(f.status, 403);
                assert_eq!(
                    f.message,
                    "Unauthorized. Access token is missing or invalid."
                );
                assert_eq!(f.error.reason, reason::TOKEN_EXPIRED);
                assert_ne!(f.error.message, f.message, "LastError keeps the detail");
            }
            other => panic!("{other:?}"),
        }
        // Default: 401 with the engine's (APIM's) message.
        let p = policy("", "");
        let mut cx = Context::default();
        match p.apply(&mut cx, &mut services()) {
            Flow::Error(f) => {
                assert_eq!(f.status, 401);
                assert_eq!(f.error.reason, reason::TOKEN_NOT_PRESENT);
                assert_eq!(f.message, "JWT not present.");
            }
            other => panic!("{other:?}"),
        }
        // The wrong scheme.
        let mut cx = request(&hs256(&claims()));
        cx.request
            .headers
            .set("Authorization", format!("Basic {}", hs256(&claims())));
        assert_eq!(outcome(&p, &mut cx), reason::TOKEN_SCHEME_NOT_ALLOWED);
    }

    #[test]
    fn token_from_an_expression_or_the_query() {
        let p = compile(&format!(
            r#"<validate-jwt token-value="@(context.Request.Headers.GetValueOrDefault("X-Token", ""))"><issuer-signing-keys><key>{}</key></issuer-signing-keys></validate-jwt>"#,
            STANDARD.encode(SECRET)
        ))
        .unwrap();
        let mut cx = request("ignored");
        cx.request.headers.set("X-Token", hs256(&claims()));
        assert_eq!(outcome(&p, &mut cx), "accepted");
        assert_eq!(outcome(&p, &mut request("x")), reason::TOKEN_NOT_PRESENT);

        let p = compile(&format!(
            r#"<validate-jwt query-parameter-name="access_token"><issuer-signing-keys><key>{}</key></issuer-signing-keys></validate-jwt>"#,
            STANDARD.encode(SECRET)
        ))
        .unwrap();
        let mut cx = request("x");
        cx.request
            .query
            .push(("access_token".into(), hs256(&claims())));
        assert_eq!(outcome(&p, &mut cx), "accepted");
    }

    #[test]
    fn openid_caches_are_shared_by_url() {
        // Nothing listens on port 9 of localhost: the first fetch fails at once.
        let doc = r#"<validate-jwt header-name="Authorization"><openid-config url="http://127.0.0.1:9/.well-known/openid-configuration"/></validate-jwt>"#;
        let a = compile(doc).unwrap();
        let b = compile(doc).unwrap();
        let (sa, sb) = (a.openid.as_ref().unwrap(), b.openid.as_ref().unwrap());
        assert!(Arc::ptr_eq(sa, sb));
        // Without keys yet, tokens are refused (and a refresh is asked for).
        assert_eq!(
            outcome(&a, &mut request(&hs256(&claims()))),
            reason::TOKEN_SIGNATURE_KEY_NOT_FOUND
        );
    }

    #[test]
    fn compile_errors() {
        let key = format!(
            "<issuer-signing-keys><key>{}</key></issuer-signing-keys>",
            STANDARD.encode(SECRET)
        );
        let err = |attrs: &str, children: &str| {
            compile(&format!("<validate-jwt {attrs}>{children}</validate-jwt>")).unwrap_err()
        };
        assert!(err("", &key).contains("one of header-name"));
        assert!(err(r#"header-name="A" query-parameter-name="t""#, &key).contains("only one of"));
        assert_eq!(
            err(r#"header-name="A" audience="x""#, &key),
            "unknown attribute audience"
        );
        assert!(err(r#"header-name="A" clock-skew="5m""#, &key).contains("whole seconds"));
        assert!(
            err(r#"header-name="A" require-expiration-time="nope""#, &key)
                .contains("true or false")
        );
        assert!(
            err(r#"header-name="A" failed-validation-httpcode="abc""#, &key)
                .contains("status code")
        );
        assert!(
            err(r#"header-name="A" failed-validation-httpcode="99""#, &key)
                .contains("not an HTTP status")
        );
        assert!(err(r#"header-name="A""#, "").contains("no signing keys"));
        assert!(err(
            r#"header-name="A""#,
            r#"<issuer-signing-keys><key certificate-id="c"/></issuer-signing-keys>"#
        )
        .contains("certificate-id"));
        assert!(err(
            r#"header-name="A""#,
            r#"<issuer-signing-keys><key n="AQAB"/></issuer-signing-keys>"#
        )
        .contains("n and e"));
        assert!(err(
            r#"header-name="A""#,
            r#"<issuer-signing-keys><key>***</key></issuer-signing-keys>"#
        )
        .contains("base64"));
        assert!(
            err(r#"header-name="A""#, &format!("{key}<decryption-keys/>"))
                .contains("not supported")
        );
        assert!(err(r#"header-name="A""#, &format!("{key}<audiences><audience>@(context.Request.OriginalUrl.Host)</audience></audiences>"))
            .contains("expressions are not supported"));
        assert!(err(
            r#"header-name="A""#,
            &format!("{key}<required-claims><claim name=\"a\" match=\"some\"/></required-claims>")
        )
        .contains("all or any"));
        assert!(
            err(r#"header-name="A""#, &format!("{key}<issuers></issuers>"))
                .contains("at least one <issuer>")
        );
        assert!(
            err(r#"header-name="A""#, &format!("{key}<scopes/>")).contains("unexpected <scopes>")
        );
        assert!(err(r#"header-name="A""#, &format!("{key}{key}")).contains("twice"));
        assert!(
            err(r#"header-name="A""#, r#"<openid-config url="ftp://x"/>"#)
                .contains("not an http(s) URL")
        );
    }
}
