//! Test-only: real RSA, EC and Ed25519 keys generated with aws-lc (once per test binary),
//! in every encoding the policy accepts, and tokens signed with `jsonwebtoken` (an
//! independent JWS implementation) or assembled by hand for attacks.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub struct RsaKey {
    pub pkcs1_der: Vec<u8>,
    pub pkcs1_pem: String,
    pub spki_pem: String,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub encoding: EncodingKey,
}

pub struct EcKey {
    pub crv: &'static str,
    pub spki_der: Vec<u8>,
    pub spki_pem: String,
    pub point: Vec<u8>,
    pub encoding: EncodingKey,
}

pub struct EdKey {
    pub public: Vec<u8>,
    pub encoding: EncodingKey,
}

pub fn rsa() -> &'static RsaKey {
    static K: OnceLock<RsaKey> = OnceLock::new();
    K.get_or_init(gen_rsa)
}

/// A second RSA key, for rotation.
pub fn rsa2() -> &'static RsaKey {
    static K: OnceLock<RsaKey> = OnceLock::new();
    K.get_or_init(gen_rsa)
}

pub fn p256() -> &'static EcKey {
    static K: OnceLock<EcKey> = OnceLock::new();
    K.get_or_init(|| gen_ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"))
}

pub fn p384() -> &'static EcKey {
    static K: OnceLock<EcKey> = OnceLock::new();
    K.get_or_init(|| gen_ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"))
}

pub fn ed25519() -> &'static EdKey {
    static K: OnceLock<EdKey> = OnceLock::new();
    K.get_or_init(|| {
        let kp = signature::Ed25519KeyPair::generate().unwrap();
        let pkcs8 = kp.to_pkcs8().unwrap();
        EdKey {
            public: kp.public_key().as_ref().to_vec(),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        }
    })
}

fn gen_rsa() -> RsaKey {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).unwrap();
    let public = kp.public_key();
    let pkcs1_der = public.as_ref().to_vec();
    let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(public).unwrap();
    let private_pem = pem("PRIVATE KEY", pkcs8.as_ref());
    RsaKey {
        encoding: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        pkcs1_pem: pem("RSA PUBLIC KEY", &pkcs1_der),
        pkcs1_der,
        spki_pem: pem("PUBLIC KEY", spki.as_ref()),
        n: public.modulus().big_endian_without_leading_zero().to_vec(),
        e: public.exponent().big_endian_without_leading_zero().to_vec(),
    }
}

fn gen_ec(alg: &'static signature::EcdsaSigningAlgorithm, crv: &'static str) -> EcKey {
    let kp = signature::EcdsaKeyPair::generate(alg).unwrap();
    let pkcs8 = kp.to_pkcs8v1().unwrap();
    let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(kp.public_key())
        .unwrap()
        .as_ref()
        .to_vec();
    EcKey {
        crv,
        spki_pem: pem("PUBLIC KEY", &spki),
        spki_der: spki,
        point: kp.public_key().as_ref().to_vec(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
    }
}

impl RsaKey {
    pub fn jwk(&self, kid: Option<&str>) -> Value {
        let mut v = json!({"kty": "RSA", "n": b64(&self.n), "e": b64(&self.e)});
        if let Some(kid) = kid {
            v["kid"] = kid.into();
        }
        v
    }
}

impl EcKey {
    pub fn jwk(&self, kid: Option<&str>) -> Value {
        let len = (self.point.len() - 1) / 2;
        let mut v = json!({
            "kty": "EC",
            "crv": self.crv,
            "x": b64(&self.point[1..1 + len]),
            "y": b64(&self.point[1 + len..]),
        });
        if let Some(kid) = kid {
            v["kid"] = kid.into();
        }
        v
    }
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token signed by `jsonwebtoken`.
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token assembled by hand: any header, any signature bytes.
pub fn raw(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}
