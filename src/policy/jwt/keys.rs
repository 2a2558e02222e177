//! Signing keys: parsed once, when a policy is compiled or a JWKS is fetched, into
//! verifier objects that need no parsing per token (aws-lc's `ParsedPublicKey`, a
//! precomputed `hmac::Key`). Sources: base64 HMAC secrets, RSA PEM (PKCS#1 `RSA PUBLIC KEY`
//! and SPKI `PUBLIC KEY`), EC PEM (SPKI, P-256 and P-384), JWK and JWKS (RFC 7517, with
//! the RFC 7518 §6 key types), and APIM's `<key n=".." e=".."/>`.
//!
//! A key's type fixes the algorithms it can verify (RFC 7518 §3.1); a JWK's `alg` narrows
//! that to one. This module never turns key bytes into a key of another type, which is
//! what makes HS256-signed-with-the-RSA-public-key tokens fail. Private keys and
//! certificates are refused rather than guessed at. Nothing here does I/O.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde_json::Value;

use super::config::KeySpec;

/// A JWS `alg` this gateway verifies (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    /// The algorithm named exactly `name`: JOSE names are case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// Shortest HMAC secret accepted: RFC 7518 §3.2 asks for a key at least as long as the
/// hash output; 256 bits is the floor for HS256 (and what Microsoft.IdentityModel, behind
/// APIM, enforces for every HS*).
pub const MIN_HMAC_KEY_BYTES: usize = 32;
/// RSA modulus sizes accepted (RFC 7518 §3.3 requires 2048 or more).
pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;

/// RSA verifiers, one per algorithm, in this order.
const RSA_ALGS: [(Alg, &signature::RsaParameters); 6] = [
    (Alg::Rs256, &signature::RSA_PKCS1_2048_8192_SHA256),
    (Alg::Rs384, &signature::RSA_PKCS1_2048_8192_SHA384),
    (Alg::Rs512, &signature::RSA_PKCS1_2048_8192_SHA512),
    (Alg::Ps256, &signature::RSA_PSS_2048_8192_SHA256),
    (Alg::Ps384, &signature::RSA_PSS_2048_8192_SHA384),
    (Alg::Ps512, &signature::RSA_PSS_2048_8192_SHA512),
];

/// A key ready to verify signatures; immutable, `Send + Sync`.
pub struct VerifyKey {
    id: Option<String>,
    /// A JWK's `alg`: the only algorithm this key may verify.
    only_alg: Option<Alg>,
    material: Material,
}

enum Material {
    /// One precomputed key per hash (aws-lc binds an HMAC key to its digest).
    Hmac(Box<[hmac::Key; 3]>),
    Rsa {
        bits: usize,
        by_alg: Box<[ParsedPublicKey; 6]>,
    },
    P256(ParsedPublicKey),
    P384(ParsedPublicKey),
    Ed25519(ParsedPublicKey),
}

/// Where a JWK came from decides what is acceptable in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkOrigin {
    /// The policy document: a symmetric (`oct`) key is allowed; anything unusable is an error.
    Config,
    /// A fetched JWKS: keys not for signatures are skipped, and symmetric keys are never
    /// taken from a published document.
    Published,
}

impl VerifyKey {
    /// An HMAC secret (raw bytes, not base64).
    pub fn hmac(id: Option<String>, secret: &[u8]) -> Result<VerifyKey, String> {
        if secret.len() < MIN_HMAC_KEY_BYTES {
            return Err(format!(
                "HMAC key is {} bits; at least {} are required",
                secret.len() * 8,
                MIN_HMAC_KEY_BYTES * 8
            ));
        }
        Ok(VerifyKey {
            id,
            only_alg: None,
            material: Material::Hmac(Box::new([
                hmac::Key::new(hmac::HMAC_SHA256, secret),
                hmac::Key::new(hmac::HMAC_SHA384, secret),
                hmac::Key::new(hmac::HMAC_SHA512, secret),
            ])),
        })
    }

    /// An RSA public key from its big-endian modulus and exponent.
    pub fn rsa(id: Option<String>, n: &[u8], e: &[u8]) -> Result<VerifyKey, String> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_len(n);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(format!(
                "RSA key is {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
            ));
        }
        let components = RsaPublicKeyComponents { n, e };
        let parse = |params: &'static signature::RsaParameters| {
            components
                .to_parsed_public_key(params)
                .map_err(|e| format!("not a valid RSA public key ({e})"))
        };
        let by_alg = Box::new([
            parse(RSA_ALGS[0].1)?,
            parse(RSA_ALGS[1].1)?,
            parse(RSA_ALGS[2].1)?,
            parse(RSA_ALGS[3].1)?,
            parse(RSA_ALGS[4].1)?,
            parse(RSA_ALGS[5].1)?,
        ]);
        Ok(VerifyKey {
            id,
            only_alg: None,
            material: Material::Rsa { bits, by_alg },
        })
    }

    /// An RSA public key from DER: PKCS#1 `RSAPublicKey` or SPKI.
    pub fn rsa_der(id: Option<String>, der: &[u8]) -> Result<VerifyKey, String> {
        let public = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| "not an RSA public key".to_string())?;
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        VerifyKey::rsa(id, &n, &e)
    }

    /// An EC public key (SPKI DER or an uncompressed SEC1 point) on P-256 or P-384; the
    /// curve is read from the key and checked.
    pub fn ec(id: Option<String>, key: &[u8]) -> Result<VerifyKey, String> {
        let material = if let Ok(k) = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key)
        {
            Material::P256(k)
        } else if let Ok(k) = ParsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, key) {
            Material::P384(k)
        } else {
            return Err("not an EC public key on P-256 or P-384".to_string());
        };
        Ok(VerifyKey {
            id,
            only_alg: None,
            material,
        })
    }

    /// An Ed25519 public key (32 raw bytes or SPKI DER).
    pub fn ed25519(id: Option<String>, key: &[u8]) -> Result<VerifyKey, String> {
        let k = ParsedPublicKey::new(&signature::ED25519, key)
            .map_err(|_| "not an Ed25519 public key".to_string())?;
        Ok(VerifyKey {
            id,
            only_alg: None,
            material: Material::Ed25519(k),
        })
    }

    /// Compiles one `<key>` of the policy.
    pub fn from_spec(spec: &KeySpec) -> Result<VerifyKey, String> {
        match spec {
            KeySpec::Hmac { id, secret_b64 } => {
                let secret = decode_b64_any(secret_b64).ok_or("not valid base64")?;
                VerifyKey::hmac(id.clone(), &secret)
            }
            KeySpec::RsaPem { id, pem } => {
                let der = pem_der(pem, &["RSA PUBLIC KEY", "PUBLIC KEY"])?;
                VerifyKey::rsa_der(id.clone(), &der)
            }
            KeySpec::EcPem { id, pem } => {
                let der = pem_der(pem, &["PUBLIC KEY"])?;
                VerifyKey::ec(id.clone(), &der)
            }
            KeySpec::Jwk(json) => {
                let v: Value =
                    serde_json::from_str(json).map_err(|e| format!("JWK is not JSON: {e}"))?;
                match VerifyKey::from_jwk(&v, JwkOrigin::Config)? {
                    Some(k) => Ok(k),
                    None => Err("JWK is not a signature verification key".to_string()),
                }
            }
            KeySpec::RsaComponents { id, n, e } => {
                let n = decode_b64url(n).ok_or("n is not valid base64url")?;
                let e = decode_b64url(e).ok_or("e is not valid base64url")?;
                VerifyKey::rsa(id.clone(), &n, &e)
            }
        }
    }

    /// One JWK. `Ok(None)`: a well-formed key that is not for verifying signatures (or,
    /// when published, a symmetric key); it is skipped.
    pub fn from_jwk(jwk: &Value, origin: JwkOrigin) -> Result<Option<VerifyKey>, String> {
        let obj = jwk.as_object().ok_or("JWK is not a JSON object")?;
        if origin == JwkOrigin::Config {
            if obj.contains_key("keys") {
                return Err("this is a JWKS (a 'keys' array); give one JWK per key".into());
            }
            // RFC 7518 §6.2.2.1, §6.3.2.1: "d" is the private part of an EC or RSA key.
            if obj.contains_key("d") {
                return Err("JWK holds a private key; configure the public key".into());
            }
        }
        let text = |name: &str| -> Result<Option<&str>, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("JWK '{name}' is not a string")),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let s = text(name)?.ok_or_else(|| format!("JWK has no '{name}'"))?;
            decode_b64url(s).ok_or_else(|| format!("JWK '{name}' is not base64url"))
        };
        let kty = text("kty")?.ok_or("JWK has no 'kty'")?;
        let id = text("kid")?.map(str::to_string);
        // RFC 7517 §4.2-4.3: a key meant for encryption must not verify signatures.
        if let Some(usage) = text("use")? {
            if usage != "sig" {
                return skip_or_err(origin, format!("JWK 'use' is '{usage}', not 'sig'"));
            }
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops.as_array().ok_or("JWK 'key_ops' is not an array")?;
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return skip_or_err(origin, "JWK 'key_ops' lacks 'verify'".to_string());
            }
        }
        let only_alg = match text("alg")? {
            None => None,
            Some(name) => match Alg::from_name(name) {
                Some(alg) => Some(alg),
                None => return skip_or_err(origin, format!("JWK 'alg' {name} is not supported")),
            },
        };
        let mut key = match kty {
            "RSA" => VerifyKey::rsa(id, &bytes("n")?, &bytes("e")?)?,
            "EC" => {
                let crv = text("crv")?.ok_or("JWK has no 'crv'")?;
                let len = match crv {
                    "P-256" => 32,
                    "P-384" => 48,
                    _ => return skip_or_err(origin, format!("EC curve {crv} is not supported")),
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return Err(format!("JWK {crv} coordinates must be {len} bytes"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = VerifyKey::ec(id, &point)?;
                match (&key.material, crv) {
                    (Material::P256(_), "P-256") | (Material::P384(_), "P-384") => key,
                    _ => return Err(format!("JWK point is not on {crv}")),
                }
            }
            "OKP" => match text("crv")? {
                Some("Ed25519") => VerifyKey::ed25519(id, &bytes("x")?)?,
                other => {
                    let crv = other.unwrap_or("(none)");
                    return skip_or_err(origin, format!("OKP curve {crv} is not supported"));
                }
            },
            "oct" => match origin {
                JwkOrigin::Config => VerifyKey::hmac(id, &bytes("k")?)?,
                JwkOrigin::Published => return Ok(None),
            },
            other => return skip_or_err(origin, format!("JWK 'kty' {other} is not supported")),
        };
        if let Some(alg) = only_alg {
            if !key.material.allows(alg) {
                return Err(format!(
                    "JWK 'alg' {} does not fit a {} key",
                    alg.name(),
                    key.kind()
                ));
            }
            key.only_alg = Some(alg);
        }
        Ok(Some(key))
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// "HMAC", "RSA", "EC P-256", "EC P-384" or "Ed25519".
    pub fn kind(&self) -> &'static str {
        match self.material {
            Material::Hmac(_) => "HMAC",
            Material::Rsa { .. } => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "Ed25519",
        }
    }

    /// Whether this key may verify `alg`: its type allows it and a JWK `alg` does not
    /// exclude it.
    pub fn allows(&self, alg: Alg) -> bool {
        self.only_alg.is_none_or(|only| only == alg) && self.material.allows(alg)
    }

    /// Verifies `signature` over `message` (the JWS signing input). One signature check,
    /// no parsing; `false` when the key does not allow `alg`.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        if !self.allows(alg) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Hmac(keys), Alg::Hs256) => {
                hmac::verify(&keys[0], message, signature).is_ok()
            }
            (Material::Hmac(keys), Alg::Hs384) => {
                hmac::verify(&keys[1], message, signature).is_ok()
            }
            (Material::Hmac(keys), Alg::Hs512) => {
                hmac::verify(&keys[2], message, signature).is_ok()
            }
            (Material::Rsa { by_alg, .. }, alg) => RSA_ALGS
                .iter()
                .position(|(a, _)| *a == alg)
                .is_some_and(|i| by_alg[i].verify_sig(message, signature).is_ok()),
            (Material::P256(k), Alg::Es256)
            | (Material::P384(k), Alg::Es384)
            | (Material::Ed25519(k), Alg::EdDsa) => k.verify_sig(message, signature).is_ok(),
            _ => false,
        }
    }
}

impl Material {
    fn allows(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (Material::Hmac(_), Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
                | (
                    Material::Rsa { .. },
                    Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512
                )
                | (Material::P256(_), Alg::Es256)
                | (Material::P384(_), Alg::Es384)
                | (Material::Ed25519(_), Alg::EdDsa)
        )
    }
}

impl std::fmt::Debug for VerifyKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("VerifyKey");
        d.field("id", &self.id).field("kind", &self.kind());
        if let Material::Rsa { bits, .. } = self.material {
            d.field("bits", &bits);
        }
        d.field("alg", &self.only_alg.map(Alg::name)).finish()
    }
}

/// The signing keys of a JWKS document (RFC 7517 §5). Keys that cannot be used are
/// skipped (one odd key must not take the others down); a document with no usable key is
/// an error, so that a caller keeps what it had.
pub fn parse_jwks(body: &str) -> Result<Vec<VerifyKey>, String> {
    let doc: Value = serde_json::from_str(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("JWKS has no 'keys' array")?;
    let mut keys = Vec::with_capacity(list.len());
    let mut first_error = None;
    for jwk in list {
        match VerifyKey::from_jwk(jwk, JwkOrigin::Published) {
            Ok(Some(k)) => keys.push(k),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "JWKS key skipped");
                first_error.get_or_insert(e);
            }
        }
    }
    if keys.is_empty() {
        return Err(match first_error {
            Some(e) => format!("JWKS has no usable signing key (e.g. {e})"),
            None => "JWKS has no usable signing key".to_string(),
        });
    }
    Ok(keys)
}

fn skip_or_err(origin: JwkOrigin, why: String) -> Result<Option<VerifyKey>, String> {
    match origin {
        JwkOrigin::Config => Err(why),
        JwkOrigin::Published => Ok(None),
    }
}

/// The DER inside the first PEM block, which must carry one of `labels`.
fn pem_der(pem: &str, labels: &[&str]) -> Result<Vec<u8>, String> {
    let start = pem.find("-----BEGIN ").ok_or("not PEM (no BEGIN line)")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("not PEM (bad BEGIN line)")?;
    let label = &rest[..label_end];
    if label.contains("PRIVATE KEY") {
        return Err("PEM holds a private key; configure the public key".to_string());
    }
    if !labels.contains(&label) {
        return Err(format!(
            "PEM block is '{label}'; expected {}",
            labels.join(" or ")
        ));
    }
    let body = &rest[label_end + 5..];
    let end_line = format!("-----END {label}-----");
    let body_end = body
        .find(&end_line)
        .ok_or("not PEM (no matching END line)")?;
    let b64: String = body[..body_end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "PEM body is not valid base64".to_string())
}

const fn lenient(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}
const STANDARD_LENIENT: GeneralPurpose = lenient(&alphabet::STANDARD);
const URL_SAFE_LENIENT: GeneralPurpose = lenient(&alphabet::URL_SAFE);

/// base64url with or without padding (JWK members; some publishers pad).
pub(crate) fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_LENIENT.decode(s.trim()).ok()
}

/// An APIM `<key>`: standard base64, or the URL alphabet; padding optional.
fn decode_b64_any(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD_LENIENT
        .decode(&s)
        .or_else(|_| URL_SAFE_LENIENT.decode(&s))
        .ok()
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => be.len() * 8 - top.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkeys;
    use super::*;

    #[test]
    fn alg_names_are_case_sensitive() {
        assert_eq!(Alg::from_name("RS256"), Some(Alg::Rs256));
        assert_eq!(Alg::from_name("rs256"), None);
        assert_eq!(Alg::from_name("none"), None);
        for a in RSA_ALGS.iter().map(|(a, _)| *a) {
            assert_eq!(Alg::from_name(a.name()), Some(a));
        }
    }

    #[test]
    fn key_types_allow_only_their_algorithms() {
        let h = VerifyKey::hmac(None, &[7; 32]).unwrap();
        let r = VerifyKey::rsa_der(None, &testkeys::rsa().pkcs1_der).unwrap();
        let e = VerifyKey::ec(None, &testkeys::p256().spki_der).unwrap();
        assert!(h.allows(Alg::Hs256) && !h.allows(Alg::Rs256) && !h.allows(Alg::Es256));
        assert!(r.allows(Alg::Rs256) && r.allows(Alg::Ps512) && !r.allows(Alg::Hs256));
        assert!(e.allows(Alg::Es256) && !e.allows(Alg::Es384) && !e.allows(Alg::Hs256));
        assert_eq!(e.kind(), "EC P-256");
    }

    #[test]
    fn short_hmac_and_rsa_keys_are_refused() {
        assert!(VerifyKey::hmac(None, &[1; 31])
            .unwrap_err()
            .contains("248 bits"));
        let err = VerifyKey::rsa(None, &[0xff; 128], &[1, 0, 1]).unwrap_err();
        assert!(err.contains("1024 bits"), "{err}");
        // Leading zero bytes do not count towards the size.
        let mut n = vec![0, 0];
        n.extend_from_slice(&[0xff; 128]);
        assert!(VerifyKey::rsa(None, &n, &[1, 0, 1])
            .unwrap_err()
            .contains("1024"));
    }

    #[test]
    fn pem_private_keys_and_wrong_labels_are_refused() {
        let priv_pem = testkeys::pem("PRIVATE KEY", &[1, 2, 3]);
        let err = VerifyKey::from_spec(&KeySpec::RsaPem {
            id: None,
            pem: priv_pem,
        })
        .unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let cert = testkeys::pem("CERTIFICATE", &[1, 2, 3]);
        let err = VerifyKey::from_spec(&KeySpec::EcPem {
            id: None,
            pem: cert,
        })
        .unwrap_err();
        assert!(err.contains("'CERTIFICATE'"), "{err}");
        let ec_as_rsa = KeySpec::RsaPem {
            id: None,
            pem: testkeys::p256().spki_pem.clone(),
        };
        assert!(VerifyKey::from_spec(&ec_as_rsa).is_err());
    }

    #[test]
    fn ec_pem_reads_the_curve() {
        let k = VerifyKey::from_spec(&KeySpec::EcPem {
            id: None,
            pem: testkeys::p384().spki_pem.clone(),
        })
        .unwrap();
        assert_eq!(k.kind(), "EC P-384");
        assert!(k.allows(Alg::Es384) && !k.allows(Alg::Es256));
    }

    #[test]
    fn jwk_alg_narrows_and_must_fit() {
        let mut jwk = testkeys::rsa().jwk(Some("k1"));
        jwk["alg"] = "RS256".into();
        let k = VerifyKey::from_jwk(&jwk, JwkOrigin::Config)
            .unwrap()
            .unwrap();
        assert!(k.allows(Alg::Rs256) && !k.allows(Alg::Ps256));
        jwk["alg"] = "ES256".into();
        let err = VerifyKey::from_jwk(&jwk, JwkOrigin::Config).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn published_jwks_skips_encryption_and_symmetric_keys() {
        let mut enc = testkeys::rsa().jwk(Some("enc"));
        enc["use"] = "enc".into();
        let oct = serde_json::json!({"kty": "oct", "kid": "sym", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"});
        let sig = testkeys::p256().jwk(Some("sig"));
        let odd = serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"});
        let body = serde_json::json!({"keys": [enc, oct, odd, sig]}).to_string();
        let keys = parse_jwks(&body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id(), Some("sig"));
        // The same oct key is fine in the policy's own configuration.
        let oct_cfg = VerifyKey::from_jwk(&oct, JwkOrigin::Config)
            .unwrap()
            .unwrap();
        assert_eq!(oct_cfg.kind(), "HMAC");
    }

    #[test]
    fn config_jwk_refuses_private_keys_and_whole_sets() {
        let mut jwk = testkeys::p256().jwk(None);
        jwk["d"] = "AAAA".into();
        let err = VerifyKey::from_jwk(&jwk, JwkOrigin::Config).unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let set = serde_json::json!({"keys": [testkeys::p256().jwk(None)]});
        let err = VerifyKey::from_jwk(&set, JwkOrigin::Config).unwrap_err();
        assert!(err.contains("JWKS"), "{err}");
    }

    #[test]
    fn jwks_without_usable_keys_is_an_error() {
        assert!(parse_jwks("{}").is_err());
        assert!(parse_jwks("not json").is_err());
        let only_enc =
            serde_json::json!({"keys": [{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]});
        assert!(parse_jwks(&only_enc.to_string()).is_err());
    }

    #[test]
    fn ec_jwk_point_must_be_on_the_named_curve() {
        let mut jwk = testkeys::p256().jwk(None);
        // Flip a bit of y: the point leaves the curve.
        let mut y = decode_b64url(jwk["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        jwk["y"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(y)
            .into();
        assert!(VerifyKey::from_jwk(&jwk, JwkOrigin::Config).is_err());
    }
}
