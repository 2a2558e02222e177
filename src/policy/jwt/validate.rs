//! The compiled `validate-jwt` policy: where the token is taken from, and the checks in
//! the order Microsoft.IdentityModel (behind APIM) makes them: structure (RFC 7515 §5.2,
//! RFC 7519 §7.2), signature, lifetime (RFC 7519 §4.1.4-5), audience, issuer, then the
//! policy's required claims. Pure computation over the token and the keys it is given:
//! no I/O, no locks, no key parsing (keys are parsed in [`JwtValidator::compile`] and by
//! the openid-config fetcher).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::cache::{KeySetTag, VerifiedTokens};
use super::config::{JwtPolicyConfig, RequiredClaim};
use super::keys::{Alg, VerifyKey};
use super::openid::KeySet;
use super::reason as r;
use super::JwtError;
use crate::policy::context::{Headers, Jwt};

/// Longest token looked at; longer ones are rejected before any decoding. Real access
/// tokens are a few KiB; this bounds the work an unauthenticated request can cause.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Longest piece of token content quoted in an error message.
const QUOTE_MAX: usize = 64;

/// A compiled `validate-jwt`: immutable, `Send + Sync`, shared by every core.
#[derive(Debug)]
pub struct JwtValidator {
    /// Process-unique, new on every compile: names this validator's keys in the
    /// per-core cache of verified signatures ([`KeySetTag`]).
    id: u64,
    source: TokenSource,
    require_scheme: Option<String>,
    failed_status: u16,
    failed_message: Option<String>,
    require_expiration_time: bool,
    require_signed_tokens: bool,
    /// Seconds, as the lifetime arithmetic is done in `f64` NumericDate seconds.
    clock_skew: f64,
    output_token_variable_name: Option<String>,
    keys: Vec<VerifyKey>,
    openid_config_urls: Vec<String>,
    audiences: Vec<String>,
    issuers: Vec<String>,
    required_claims: Vec<RequiredClaim>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenSource {
    Header(String),
    Query(String),
    /// `token-value`: the caller evaluates the expression.
    Expression,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<JwtValidator>();
    shareable::<KeySet>();
};

impl JwtValidator {
    /// Parses every key and checks the configuration; all problems are reported at once,
    /// each prefixed with where it is (e.g. `issuer-signing-keys[1]: not valid base64`).
    pub fn compile(cfg: JwtPolicyConfig) -> Result<JwtValidator, String> {
        let mut errors = Vec::new();
        let source = match (cfg.header_name, cfg.query_parameter_name) {
            (Some(_), Some(_)) => {
                errors.push("header-name and query-parameter-name cannot both be set".into());
                TokenSource::Expression
            }
            (Some(h), None) if h.trim().is_empty() => {
                errors.push("header-name is empty".into());
                TokenSource::Expression
            }
            (None, Some(q)) if q.is_empty() => {
                errors.push("query-parameter-name is empty".into());
                TokenSource::Expression
            }
            (Some(h), None) => TokenSource::Header(h.trim().to_string()),
            (None, Some(q)) => TokenSource::Query(q),
            (None, None) => TokenSource::Expression,
        };
        if !(100..=599).contains(&cfg.failed_validation_httpcode) {
            errors.push(format!(
                "failed-validation-httpcode {} is not an HTTP status",
                cfg.failed_validation_httpcode
            ));
        }
        if let Some(s) = &cfg.require_scheme {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.push(format!("require-scheme '{s}' is not a scheme name"));
            }
        }
        let mut keys = Vec::with_capacity(cfg.signing_keys.len());
        for (i, spec) in cfg.signing_keys.iter().enumerate() {
            match VerifyKey::from_spec(spec) {
                Ok(k) => keys.push(k),
                Err(e) => errors.push(format!("issuer-signing-keys[{i}]: {e}")),
            }
        }
        for (i, url) in cfg.openid_config_urls.iter().enumerate() {
            let lower = url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            match rest {
                Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                    if lower.starts_with("http://") {
                        tracing::warn!(url = %url, "validate-jwt openid-config over plain HTTP: its keys can be replaced in transit");
                    }
                }
                _ => errors.push(format!(
                    "openid-config[{i}]: '{url}' is not an http(s) URL with a host"
                )),
            }
        }
        for (what, list) in [("audiences", &cfg.audiences), ("issuers", &cfg.issuers)] {
            if list.iter().any(String::is_empty) {
                errors.push(format!("{what}: empty value"));
            }
        }
        for (i, c) in cfg.required_claims.iter().enumerate() {
            if c.name.is_empty() {
                errors.push(format!("required-claims[{i}]: claim has no name"));
            }
            if c.separator.as_deref() == Some("") {
                errors.push(format!("required-claims[{i}]: separator is empty"));
            }
        }
        if cfg.require_signed_tokens
            && cfg.signing_keys.is_empty()
            && cfg.openid_config_urls.is_empty()
        {
            errors.push(
                "no signing keys: add issuer-signing-keys or openid-config, \
                 or set require-signed-tokens=\"false\""
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        if !cfg.require_signed_tokens {
            tracing::warn!("validate-jwt with require-signed-tokens=\"false\" accepts unsigned (alg: none) tokens");
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(JwtValidator {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source,
            require_scheme: cfg.require_scheme,
            failed_status: cfg.failed_validation_httpcode,
            failed_message: cfg.failed_validation_error_message,
            require_expiration_time: cfg.require_expiration_time,
            require_signed_tokens: cfg.require_signed_tokens,
            clock_skew: cfg.clock_skew.as_secs_f64(),
            output_token_variable_name: cfg.output_token_variable_name,
            keys,
            openid_config_urls: cfg.openid_config_urls,
            audiences: cfg.audiences,
            issuers: cfg.issuers,
            required_claims: cfg.required_claims,
        })
    }

    /// The token from `header-name` (after the scheme, which must be `require-scheme` when
    /// that is set; without it any `Scheme token` form is accepted, as APIM does) or from
    /// `query-parameter-name` (name compared case-insensitively, as ASP.NET's query
    /// collection does; value percent-decoded). A field or parameter given twice is
    /// refused rather than picking one. With `token-value` there is nothing to extract:
    /// `TokenNotPresent`.
    pub fn extract<'a>(
        &self,
        headers: &'a Headers,
        query: &'a [(String, String)],
    ) -> Result<String, JwtError> {
        match &self.source {
            TokenSource::Header(name) => {
                let mut found = headers
                    .0
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name));
                let Some((_, value)) = found.next() else {
                    return Err(not_present());
                };
                if found.next().is_some() {
                    return Err(invalid(format!("Multiple {} headers.", quote(name))));
                }
                let value = value.trim();
                if value.is_empty() {
                    return Err(not_present());
                }
                match value.split_once([' ', '\t']) {
                    Some((scheme, token)) => {
                        if let Some(want) = &self.require_scheme {
                            if !scheme.eq_ignore_ascii_case(want) {
                                return Err(scheme_not_allowed());
                            }
                        }
                        let token = token.trim();
                        if token.is_empty() {
                            return Err(not_present());
                        }
                        Ok(token.to_string())
                    }
                    // A scheme and no token ("Bearer ", trimmed above).
                    None if value.eq_ignore_ascii_case(
                        self.require_scheme.as_deref().unwrap_or("Bearer"),
                    ) =>
                    {
                        Err(not_present())
                    }
                    None if self.require_scheme.is_some() => Err(scheme_not_allowed()),
                    None => Ok(value.to_string()),
                }
            }
            TokenSource::Query(name) => {
                let mut found = query.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
                let Some((_, value)) = found.next() else {
                    return Err(not_present());
                };
                if found.next().is_some() {
                    return Err(invalid(format!(
                        "Multiple {} query parameters.",
                        quote(name)
                    )));
                }
                let token = percent_decode(value);
                if token.is_empty() {
                    return Err(not_present());
                }
                Ok(token)
            }
            TokenSource::Expression => Err(not_present()),
        }
    }

    /// Validates a compact JWS. `openid_keys` are the keys and issuers currently cached
    /// from this policy's openid-config URLs; they are ignored when the policy has none,
    /// so a shared set cannot widen a policy configured with its own keys only.
    pub fn validate(
        &self,
        token: &str,
        now: SystemTime,
        openid_keys: &KeySet,
    ) -> Result<Arc<Jwt>, JwtError> {
        self.validate_with(token, now, openid_keys, None)
    }

    /// [`validate`](Self::validate), skipping decoding and signature verification when
    /// `cache` holds this exact token as verified under the same keys (`openid_generation` is
    /// the generation of `openid_keys`), and remembering it there otherwise. Every
    /// other check runs as without the cache.
    pub fn validate_cached(
        &self,
        token: &str,
        now: SystemTime,
        openid_keys: &KeySet,
        openid_generation: u64,
        cache: &mut VerifiedTokens,
    ) -> Result<Arc<Jwt>, JwtError> {
        let tag = KeySetTag {
            validator: self.id,
            openid_generation: if self.openid_config_urls.is_empty() {
                0
            } else {
                openid_generation
            },
        };
        self.validate_with(token, now, openid_keys, Some((cache, tag)))
    }

    fn validate_with(
        &self,
        raw: &str,
        now: SystemTime,
        openid_keys: &KeySet,
        cache: Option<(&mut VerifiedTokens, KeySetTag)>,
    ) -> Result<Arc<Jwt>, JwtError> {
        let openid = (!self.openid_config_urls.is_empty()).then_some(openid_keys);
        let verified = match cache {
            Some((cache, tag)) => {
                let now_secs = numeric_now(now);
                match cache.get(tag, raw, now_secs) {
                    Some(hit) => hit,
                    None => {
                        let (signature, verified) = self.decode_and_verify(raw, openid)?;
                        if let (Signature::Verified, Some(exp)) = (signature, verified.exp) {
                            cache.insert(tag, raw, exp, now_secs, verified.clone());
                        }
                        verified
                    }
                }
            }
            None => self.decode_and_verify(raw, openid)?.1,
        };
        self.check_lifetime(&verified, now)?;
        self.check_audience(&verified.jwt.audiences)?;
        self.check_issuer(verified.jwt.issuer.as_deref(), openid)?;
        self.check_required_claims(&verified.jwt)?;
        Ok(verified.jwt.clone())
    }

    /// Structure and signature checks, then the claims decoded once: what a cache hit
    /// skips.
    fn decode_and_verify(
        &self,
        raw: &str,
        openid: Option<&KeySet>,
    ) -> Result<(Signature, Arc<VerifiedToken>), JwtError> {
        let token = decode(raw)?;
        let signature = self.check_signature(&token, openid)?;
        let claims = ClaimView::read(&token)?;
        let (exp, nbf) = (claims.exp, claims.nbf);
        let verified = VerifiedToken {
            exp,
            nbf,
            jwt: Arc::new(claims.into_jwt(&token)),
        };
        Ok((signature, Arc::new(verified)))
    }

    pub fn openid_config_urls(&self) -> &[String] {
        &self.openid_config_urls
    }

    pub fn failed_status(&self) -> u16 {
        self.failed_status
    }

    /// `failed-validation-error-message`, if set; otherwise use the error's message.
    pub fn failed_message(&self) -> Option<&str> {
        self.failed_message.as_deref()
    }

    pub fn output_token_variable_name(&self) -> Option<&str> {
        self.output_token_variable_name.as_deref()
    }

    fn check_signature(
        &self,
        token: &Decoded<'_>,
        openid: Option<&KeySet>,
    ) -> Result<Signature, JwtError> {
        if token.alg.eq_ignore_ascii_case("none") {
            if self.require_signed_tokens {
                return Err(JwtError::new(
                    r::TOKEN_NOT_SIGNED,
                    "JWT is not signed; signed tokens are required. Access denied.",
                ));
            }
            // RFC 7518 §3.6: the name is exactly "none" and the signature is empty.
            if token.alg != "none" {
                return Err(alg_not_allowed(&token.alg));
            }
            if !token.signature.is_empty() {
                return Err(JwtError::new(
                    r::TOKEN_SIGNATURE_INVALID,
                    "An unsecured JWT must have an empty signature. Access denied.",
                ));
            }
            return Ok(Signature::Unsigned);
        }
        let alg = Alg::from_name(&token.alg).ok_or_else(|| alg_not_allowed(&token.alg))?;
        let message = token.signing_input.as_bytes();
        let all = || {
            self.keys
                .iter()
                .chain(openid.into_iter().flat_map(KeySet::keys))
        };
        let mut seen = Seen::default();
        match &token.kid {
            Some(kid) => {
                seen.try_keys(
                    all().filter(|k| k.id() == Some(kid)),
                    alg,
                    message,
                    &token.signature,
                );
                if !seen.candidate {
                    seen.try_keys(
                        all().filter(|k| k.id().is_none()),
                        alg,
                        message,
                        &token.signature,
                    );
                }
            }
            None => seen.try_keys(all(), alg, message, &token.signature),
        }
        if seen.verified {
            Ok(Signature::Verified)
        } else if !seen.candidate {
            Err(JwtError::new(
                r::TOKEN_SIGNATURE_KEY_NOT_FOUND,
                match &token.kid {
                    Some(kid) => format!(
                        "Signature validation failed. Unable to match key: kid '{}'. Access denied.",
                        quote(kid)
                    ),
                    None => "Signature validation failed. No signing keys are available. Access denied."
                        .to_string(),
                },
            ))
        } else if !seen.allowed {
            Err(alg_not_allowed(&token.alg))
        } else {
            Err(JwtError::new(
                r::TOKEN_SIGNATURE_INVALID,
                "Signature validation failed. Access denied.",
            ))
        }
    }

    fn check_lifetime(&self, claims: &VerifiedToken, now: SystemTime) -> Result<(), JwtError> {
        let now = numeric_now(now);
        match claims.exp {
            // RFC 7519 §4.1.4: not accepted on or after exp (here: exp + skew).
            Some(exp) if now >= exp + self.clock_skew => {
                return Err(JwtError::new(
                    r::TOKEN_EXPIRED,
                    "Lifetime validation failed. The token is expired. Access denied.",
                ))
            }
            Some(_) => {}
            None if self.require_expiration_time => {
                return Err(JwtError::new(
                    r::TOKEN_EXPIRATION_TIME_MISSING,
                    "Lifetime validation failed. The token is missing an expiration time. Access denied.",
                ))
            }
            None => {}
        }
        // RFC 7519 §4.1.5: not accepted before nbf (here: nbf - skew).
        if let Some(nbf) = claims.nbf {
            if now < nbf - self.clock_skew {
                return Err(JwtError::new(
                    r::TOKEN_NOT_YET_VALID,
                    "Lifetime validation failed. The token is not yet valid. Access denied.",
                ));
            }
        }
        Ok(())
    }

    fn check_audience(&self, audiences: &[String]) -> Result<(), JwtError> {
        if self.audiences.is_empty() {
            return Ok(());
        }
        // Microsoft.IdentityModel ignores one trailing slash when comparing audiences.
        fn trim(s: &str) -> &str {
            s.strip_suffix('/').unwrap_or(s)
        }
        let ok = audiences.iter().any(|a| {
            self.audiences
                .iter()
                .any(|want| a == want || trim(a) == trim(want))
        });
        if ok {
            Ok(())
        } else {
            Err(JwtError::new(
                r::TOKEN_AUDIENCE_NOT_ALLOWED,
                "Audience validation failed. Access denied.",
            ))
        }
    }

    /// Allowed issuers: the policy's `<issuers>` plus the `issuer` of each openid-config
    /// document. Neither: not checked.
    fn check_issuer(&self, issuer: Option<&str>, openid: Option<&KeySet>) -> Result<(), JwtError> {
        let mut allowed = self
            .issuers
            .iter()
            .map(String::as_str)
            .chain(openid.into_iter().flat_map(KeySet::issuers))
            .peekable();
        if allowed.peek().is_none() {
            return Ok(());
        }
        match issuer {
            Some(iss) if allowed.any(|a| a == iss) => Ok(()),
            _ => Err(JwtError::new(
                r::TOKEN_ISSUER_NOT_ALLOWED,
                "Issuer validation failed. Access denied.",
            )),
        }
    }

    fn check_required_claims(&self, jwt: &Jwt) -> Result<(), JwtError> {
        let missing: Vec<&str> = self
            .required_claims
            .iter()
            .filter(|c| !jwt.claims.contains_key(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(JwtError::new(
                r::TOKEN_CLAIM_NOT_FOUND,
                format!(
                    "JWT is missing the following claims: {}. Access denied.",
                    missing.join(", ")
                ),
            ));
        }
        for claim in &self.required_claims {
            if claim.values.is_empty() {
                continue;
            }
            let raw = &jwt.claims[&claim.name];
            let have: Vec<&str> = match &claim.separator {
                Some(sep) => raw.iter().flat_map(|v| v.split(sep.as_str())).collect(),
                None => raw.iter().map(String::as_str).collect(),
            };
            let present = |want: &String| have.iter().any(|h| *h == want);
            let ok = if claim.match_all {
                claim.values.iter().all(present)
            } else {
                claim.values.iter().any(present)
            };
            if !ok {
                return Err(JwtError::new(
                    r::TOKEN_CLAIM_VALUE_NOT_ALLOWED,
                    format!(
                        "Claim {} value of {} is not allowed. Access denied.",
                        claim.name,
                        quote(&raw.join(","))
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Decodes a token without checking its signature, lifetime or anything else: what
/// `AsJwt()` does in expressions. Structure and claim types are still checked.
pub fn parse_unverified(token: &str) -> Result<Jwt, JwtError> {
    let token = decode(token)?;
    let claims = ClaimView::read(&token)?;
    Ok(claims.into_jwt(&token))
}

/// A token whose structure and signature passed, decoded once: what the per-core cache
/// keeps, so that a token presented again is neither decoded nor verified again.
#[derive(Debug)]
pub struct VerifiedToken {
    /// NumericDate seconds, as the lifetime check compares them.
    exp: Option<f64>,
    nbf: Option<f64>,
    jwt: Arc<Jwt>,
}

/// A signature check that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signature {
    /// A key verified it: worth remembering.
    Verified,
    /// `alg: none` accepted because `require-signed-tokens` is false.
    Unsigned,
}

/// What signature checking found over the candidate keys.
#[derive(Default)]
struct Seen {
    candidate: bool,
    allowed: bool,
    verified: bool,
}

impl Seen {
    fn try_keys<'k>(
        &mut self,
        keys: impl Iterator<Item = &'k VerifyKey>,
        alg: Alg,
        message: &[u8],
        signature: &[u8],
    ) {
        for key in keys {
            self.candidate = true;
            if key.allows(alg) {
                self.allowed = true;
                if key.verify(alg, message, signature) {
                    self.verified = true;
                    return;
                }
            }
        }
    }
}

/// A token split and decoded, not yet trusted.
struct Decoded<'t> {
    /// `BASE64URL(header) '.' BASE64URL(payload)`, what the signature covers.
    signing_input: &'t str,
    alg: String,
    kid: Option<String>,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

fn decode(token: &str) -> Result<Decoded<'_>, JwtError> {
    if token.is_empty() {
        return Err(not_present());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid(format!(
            "JWT is larger than {MAX_TOKEN_LEN} bytes."
        )));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(if token.split('.').count() == 5 {
            "Encrypted JWTs (JWE) are not supported."
        } else {
            "JWT must have three segments (JWS compact serialization)."
        }));
    };
    let signing_input = &token[..h.len() + 1 + p.len()];
    let header = json_object(h, "header")?;
    let claims = json_object(p, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| invalid("JWT signature is not valid base64url."))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        Some(_) => return Err(invalid("JWT header 'alg' is not a string.")),
        None => return Err(invalid("JWT header has no 'alg'.")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(invalid("JWT header 'kid' is not a string.")),
    };
    // RFC 7515 §4.1.11: extensions listed in crit must be understood; none are.
    if header.contains_key("crit") {
        return Err(invalid(
            "JWT header 'crit' lists extensions that are not supported.",
        ));
    }
    Ok(Decoded {
        signing_input,
        alg,
        kid,
        claims,
        signature,
    })
}

fn json_object(segment: &str, what: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| invalid(format!("JWT {what} is not valid base64url.")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(format!("JWT {what} is not a JSON object."))),
        Err(_) => Err(invalid(format!("JWT {what} is not valid JSON."))),
    }
}

/// The registered claims, type-checked.
struct ClaimView {
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    audiences: Vec<String>,
    issuer: Option<String>,
}

impl ClaimView {
    fn read(token: &Decoded<'_>) -> Result<ClaimView, JwtError> {
        let c = &token.claims;
        let audiences = match c.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid("JWT claim 'aud' must be a string or an array of strings.")
                })?,
            Some(_) => {
                return Err(invalid(
                    "JWT claim 'aud' must be a string or an array of strings.",
                ))
            }
        };
        let issuer = match c.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid("JWT claim 'iss' must be a string.")),
        };
        Ok(ClaimView {
            exp: numeric_date(c, "exp")?,
            nbf: numeric_date(c, "nbf")?,
            iat: numeric_date(c, "iat")?,
            audiences,
            issuer,
        })
    }

    fn into_jwt(self, token: &Decoded<'_>) -> Jwt {
        let text = |name: &str| {
            token
                .claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let claims: HashMap<String, Vec<String>> = token
            .claims
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), claim_strings(v)))
            .collect();
        Jwt {
            subject: text("sub"),
            issuer: self.issuer,
            audiences: self.audiences,
            id: text("jti"),
            algorithm: Some(token.alg.clone()),
            expiration_time: self.exp.and_then(to_system_time),
            not_before: self.nbf.and_then(to_system_time),
            issued_at: self.iat.and_then(to_system_time),
            claims,
        }
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds (fractions allowed).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(invalid(format!("JWT claim '{name}' must be a number."))),
    }
}

/// A claim's values as strings: strings as they are, arrays one entry per element,
/// other JSON as its compact text (`true`, `42`, `{"a":1}`).
fn claim_strings(v: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => vec![one(other)],
    }
}

fn numeric_now(now: SystemTime) -> f64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn to_system_time(secs: f64) -> Option<SystemTime> {
    if secs >= 0.0 {
        UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(secs).ok()?)
    } else {
        UNIX_EPOCH.checked_sub(Duration::try_from_secs_f64(-secs).ok()?)
    }
}

/// Percent-decodes a raw query value; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Token content made safe to put in a message (and so, through `context.LastError`, in
/// a header): at most [`QUOTE_MAX`] characters, control characters replaced.
fn quote(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(QUOTE_MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > QUOTE_MAX {
        out.push_str("...");
    }
    out
}

fn not_present() -> JwtError {
    JwtError::new(r::TOKEN_NOT_PRESENT, "JWT not present.")
}

fn scheme_not_allowed() -> JwtError {
    JwtError::new(
        r::TOKEN_SCHEME_NOT_ALLOWED,
        "JWT scheme is not allowed. Access denied.",
    )
}

fn invalid(message: impl Into<String>) -> JwtError {
    JwtError::new(r::JWT_INVALID, message)
}

fn alg_not_allowed(alg: &str) -> JwtError {
    JwtError::new(
        r::TOKEN_ALGORITHM_NOT_ALLOWED,
        format!(
            "Signature algorithm '{}' is not allowed for the signing keys. Access denied.",
            quote(alg)
        ),
    )
}
