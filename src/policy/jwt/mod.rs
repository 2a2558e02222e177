//! The engine behind APIM's `validate-jwt` policy: compact JWS tokens (RFC 7515) carrying
//! JWT claims (RFC 7519), checked against keys from the policy (`issuer-signing-keys`) and
//! from OpenID Connect discovery (`openid-config`).
//!
//! It owns key parsing ([`keys`]), token decoding and the checks APIM makes ([`validate`]),
//! and the off-core refresh of keys published by identity providers ([`openid`]). It does
//! not parse XML (the policy compiler fills [`JwtPolicyConfig`]), does not build HTTP
//! responses (callers map a [`JwtError`] to `failed-validation-httpcode` and
//! `context.LastError`), and never does network I/O on a data-plane core: only
//! [`OpenIdCache`]'s own thread fetches.
//!
//! Verified signatures are remembered per core ([`cache`]): a token presented again
//! skips the signature step (only), until its `exp` or until the keys change.
//!
//! Decisions a reader of the policy should know (each has a test in `tests.rs`):
//! * `alg: none` in any spelling is rejected with `TokenNotSigned` while
//!   `require-signed-tokens` is true (the default). When it is false, a token whose `alg` is
//!   exactly `none` with an empty signature skips the signature step but every claim check
//!   (lifetime, audience, issuer, required claims) still applies, whatever keys exist. A
//!   token naming a real algorithm never becomes "unsigned" by dropping its signature.
//! * A key verifies only the algorithms of its type (HMAC: `HS*`, RSA: `RS*`/`PS*`, P-256:
//!   `ES256`, P-384: `ES384`, Ed25519: `EdDSA`), narrowed further by a JWK's `alg`. The
//!   token's `alg` picks among those; it never reinterprets key bytes (no HS256-with-an-RSA-
//!   public-key confusion).
//! * Key choice: a token with a `kid` is checked with the keys carrying that id; if none
//!   does, with the keys that have no id. A token without `kid` is checked with every key
//!   of a matching type. Header parameters that point at keys (`jwk`, `jku`, `x5u`, `x5c`)
//!   are ignored: keys come only from configuration.
//! * Lifetime per RFC 7519 §4.1.4-5 with skew: valid while `now < exp + skew` and
//!   `now >= nbf - skew`. `exp`, `nbf` and `iat` must be JSON numbers when present.
//! * Tokens over 64 KiB are rejected before any decoding.
//! * Reasons use APIM's documented names where APIM documents one (`TokenNotPresent`,
//!   `TokenSignatureInvalid`, `TokenSignatureKeyNotFound`, `TokenExpired`,
//!   `TokenAudienceNotAllowed`, `TokenIssuerNotAllowed`, `TokenClaimNotFound`,
//!   `TokenClaimValueNotAllowed`, `JwtInvalid`); the finer ones APIM folds into
//!   `JwtInvalid` keep their own names here (see [`reason`]).

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod keys;
pub mod openid;
pub mod validate;

pub use cache::{KeySetTag, VerifiedTokens};
pub use config::{JwtPolicyConfig, KeySpec, RequiredClaim};
pub use openid::{KeySet, OpenIdCache};
pub use validate::{parse_unverified, JwtValidator, MAX_TOKEN_LEN};

/// A failed validation: APIM's `context.LastError.Reason` and `.Message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct JwtError {
    /// One of the constants in [`reason`].
    pub reason: &'static str,
    /// Human-readable, APIM wording; may quote (truncated) token content.
    pub message: String,
}

impl JwtError {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> JwtError {
        JwtError {
            reason,
            message: message.into(),
        }
    }
}

/// The values of [`JwtError::reason`].
pub mod reason {
    /// No token in the request, or an empty one.
    pub const TOKEN_NOT_PRESENT: &str = "TokenNotPresent";
    /// The header's scheme is not `require-scheme`.
    pub const TOKEN_SCHEME_NOT_ALLOWED: &str = "TokenSchemeNotAllowed";
    /// `alg: none` while `require-signed-tokens` is true.
    pub const TOKEN_NOT_SIGNED: &str = "TokenNotSigned";
    /// No configured key verifies the signature.
    pub const TOKEN_SIGNATURE_INVALID: &str = "TokenSignatureInvalid";
    /// No key with the token's `kid` (and no key without an id), or no keys at all.
    pub const TOKEN_SIGNATURE_KEY_NOT_FOUND: &str = "TokenSignatureKeyNotFound";
    /// The token's `alg` is unknown, or no candidate key may be used with it.
    pub const TOKEN_ALGORITHM_NOT_ALLOWED: &str = "TokenAlgorithmNotAllowed";
    pub const TOKEN_EXPIRED: &str = "TokenExpired";
    pub const TOKEN_NOT_YET_VALID: &str = "TokenNotYetValid";
    pub const TOKEN_EXPIRATION_TIME_MISSING: &str = "TokenExpirationTimeMissing";
    pub const TOKEN_AUDIENCE_NOT_ALLOWED: &str = "TokenAudienceNotAllowed";
    pub const TOKEN_ISSUER_NOT_ALLOWED: &str = "TokenIssuerNotAllowed";
    pub const TOKEN_CLAIM_NOT_FOUND: &str = "TokenClaimNotFound";
    pub const TOKEN_CLAIM_VALUE_NOT_ALLOWED: &str = "TokenClaimValueNotAllowed";
    /// Malformed: segments, base64url, JSON, claim types, size, ambiguous extraction.
    pub const JWT_INVALID: &str = "JwtInvalid";
}

#[cfg(test)]
mod testkeys;
#[cfg(test)]
mod tests;
