//! The `validate-jwt` policy as plain data, filled by the policy compiler from the XML.
//! Nothing here checks anything: [`crate::policy::jwt::JwtValidator::compile`] turns it
//! into the runtime form and reports every problem with where it is.

use std::time::Duration;

/// `<validate-jwt>` and its children, attribute for attribute. `token-value` is an
/// expression the caller evaluates; `decryption-keys` is not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicyConfig {
    /// `header-name`, e.g. `Authorization`.
    pub header_name: Option<String>,
    /// `query-parameter-name`.
    pub query_parameter_name: Option<String>,
    /// `failed-validation-httpcode` (401).
    pub failed_validation_httpcode: u16,
    /// `failed-validation-error-message`; `None` means the reason's own message.
    pub failed_validation_error_message: Option<String>,
    /// `require-expiration-time` (true).
    pub require_expiration_time: bool,
    /// `require-signed-tokens` (true).
    pub require_signed_tokens: bool,
    /// `require-scheme`, e.g. `Bearer`; compared case-insensitively.
    pub require_scheme: Option<String>,
    /// `clock-skew` (0).
    pub clock_skew: Duration,
    /// `output-token-variable-name`.
    pub output_token_variable_name: Option<String>,
    /// `<issuer-signing-keys>`, in document order.
    pub signing_keys: Vec<KeySpec>,
    /// `<openid-config url>` elements.
    pub openid_config_urls: Vec<String>,
    /// `<audiences>`: empty means not checked.
    pub audiences: Vec<String>,
    /// `<issuers>`: empty means only issuers from openid-config documents (if any).
    pub issuers: Vec<String>,
    /// `<required-claims>`.
    pub required_claims: Vec<RequiredClaim>,
}

impl Default for JwtPolicyConfig {
    /// APIM's defaults; no token source, no keys.
    fn default() -> Self {
        JwtPolicyConfig {
            header_name: None,
            query_parameter_name: None,
            failed_validation_httpcode: 401,
            failed_validation_error_message: None,
            require_expiration_time: true,
            require_signed_tokens: true,
            require_scheme: None,
            clock_skew: Duration::ZERO,
            output_token_variable_name: None,
            signing_keys: Vec::new(),
            openid_config_urls: Vec::new(),
            audiences: Vec::new(),
            issuers: Vec::new(),
            required_claims: Vec::new(),
        }
    }
}

/// One `<key>` of `<issuer-signing-keys>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// `<key id="..">base64</key>`: an HMAC secret, base64 (standard or URL alphabet).
    Hmac {
        id: Option<String>,
        secret_b64: String,
    },
    /// An RSA public key in PEM: `RSA PUBLIC KEY` (PKCS#1) or `PUBLIC KEY` (SPKI).
    RsaPem { id: Option<String>, pem: String },
    /// An EC public key in PEM (`PUBLIC KEY`, SPKI) on P-256 or P-384.
    EcPem { id: Option<String>, pem: String },
    /// The JSON of one JWK (RFC 7517): `RSA`, `EC` (P-256, P-384), `OKP` (Ed25519) or
    /// `oct`. Its `kid` is the key id.
    Jwk(String),
    /// `<key n=".." e=".."/>`: RSA modulus and exponent, base64url.
    RsaComponents {
        id: Option<String>,
        n: String,
        e: String,
    },
}

/// One `<claim>` of `<required-claims>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    pub name: String,
    /// `match="all"` (the default): every listed value must be present; `"any"`: one.
    pub match_all: bool,
    /// `separator`: split each of the token's values of this claim on it first.
    pub separator: Option<String>,
    /// `<value>`s; empty means the claim only has to be present.
    pub values: Vec<String>,
}
