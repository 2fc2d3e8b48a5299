//! The tool's own signing keys.
//!
//! Owns loading RSA private keys (PEM, PKCS#1 or PKCS#8), publishing their
//! public halves as JWKS (all keys, or one org's), signing the JWTs ltigate
//! issues, and generating new key pairs for `ltigate keygen`. Private key
//! material never leaves this module: it is not logged, not serialised, and
//! `Debug` shows only the `kid`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use serde_json::json;

/// Why a key could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no RSA private key in the PEM (expected PKCS#1 or PKCS#8)")]
    NotPem,
    #[error("the PEM holds a non-RSA key or a malformed RSA key")]
    NotRsa,
    #[error("RSA keys must be at least 2048 bits")]
    TooSmall,
    #[error("key generation failed")]
    Generation,
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

/// One tool key pair, identified by its `kid`.
pub struct ToolKey {
    kid: String,
    org: Option<String>,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

impl fmt::Debug for ToolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolKey")
            .field("kid", &self.kid)
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

impl ToolKey {
    /// Loads a PEM private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    pub fn from_pem(kid: &str, org: Option<&str>, pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPem)?;
        let pair = match &der {
            PrivateKeyDer::Pkcs1(k) => KeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => KeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err(KeyError::NotRsa),
        }
        .map_err(|_| KeyError::NotRsa)?;
        if pair.public_modulus_len() < 256 {
            return Err(KeyError::TooSmall);
        }
        let encoding = EncodingKey::from_rsa_pem(pem).map_err(|_| KeyError::NotRsa)?;
        Ok(Self {
            kid: kid.to_owned(),
            org: org.map(str::to_owned),
            encoding,
            jwk: public_jwk(kid, &pair),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// The public JWK: `kid`, `kty`, `alg=RS256`, `use=sig`, `n`, `e`.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// Signs `claims` as an RS256 JWT whose header carries this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

fn public_jwk(kid: &str, pair: &KeyPair) -> serde_json::Value {
    let public = pair.public_key();
    json!({
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

/// All tool keys, with their JWKS documents rendered once at start-up.
#[derive(Debug)]
pub struct ToolKeys {
    by_kid: BTreeMap<String, Arc<ToolKey>>,
    all_jwks: Bytes,
    org_jwks: BTreeMap<String, Bytes>,
}

impl ToolKeys {
    pub fn new(keys: Vec<ToolKey>) -> Self {
        let render = |keys: &mut dyn Iterator<Item = &ToolKey>| -> Bytes {
            let keys: Vec<&serde_json::Value> = keys.map(|k| &k.jwk).collect();
            Bytes::from(json!({ "keys": keys }).to_string())
        };
        let all_jwks = render(&mut keys.iter());
        let mut orgs: Vec<&str> = keys.iter().filter_map(|k| k.org()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        let org_jwks = orgs
            .iter()
            .map(|org| {
                let doc = render(&mut keys.iter().filter(|k| k.org() == Some(org)));
                ((*org).to_owned(), doc)
            })
            .collect();
        let by_kid = keys
            .into_iter()
            .map(|k| (k.kid.clone(), Arc::new(k)))
            .collect();
        Self {
            by_kid,
            all_jwks,
            org_jwks,
        }
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<ToolKey>> {
        self.by_kid.get(kid)
    }

    /// The JWKS document of every key.
    pub fn jwks(&self) -> Bytes {
        self.all_jwks.clone()
    }

    /// The JWKS document of one org's keys, if the org has any.
    pub fn org_jwks(&self, org: &str) -> Option<Bytes> {
        self.org_jwks.get(org).cloned()
    }
}

/// A freshly generated key pair, PEM-encoded.
pub struct GeneratedKey {
    pub private_pem: String,
    pub public_pem: String,
    pub public_jwk: serde_json::Value,
}

/// Generates an RSA-2048 key pair with aws-lc-rs.
pub fn generate(kid: &str) -> Result<GeneratedKey, KeyError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
    let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeyError::Generation)?;
    let spki: PublicKeyX509Der<'static> = pair
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Generation)?;
    let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
    Ok(GeneratedKey {
        private_pem,
        public_pem,
        public_jwk: public_jwk(kid, &pair),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_loads_signs_and_verifies() {
        let generated = generate("k1").expect("generate");
        let key =
            ToolKey::from_pem("k1", Some("OrgX"), generated.private_pem.as_bytes()).expect("load");
        assert_eq!(key.public_jwk(), &generated.public_jwk);
        let token = key
            .sign(&json!({"sub": "x", "exp": 4_000_000_000u64}))
            .expect("sign");
        let jwk = key.public_jwk();
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().expect("n"),
            jwk["e"].as_str().expect("e"),
        )
        .expect("components");
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &decoding,
            &jsonwebtoken::Validation::new(Algorithm::RS256),
        )
        .expect("verify");
        assert_eq!(data.header.kid.as_deref(), Some("k1"));
        assert_eq!(data.claims["sub"], "x");
    }

    #[test]
    fn jwks_by_org() {
        let a = generate("a").expect("a");
        let b = generate("b").expect("b");
        let keys = ToolKeys::new(vec![
            ToolKey::from_pem("a", Some("OrgA"), a.private_pem.as_bytes()).expect("a"),
            ToolKey::from_pem("b", None, b.private_pem.as_bytes()).expect("b"),
        ]);
        let all: serde_json::Value = serde_json::from_slice(&keys.jwks()).expect("json");
        assert_eq!(all["keys"].as_array().map(Vec::len), Some(2));
        let org: serde_json::Value =
            serde_json::from_slice(&keys.org_jwks("OrgA").expect("org")).expect("json");
        assert_eq!(org["keys"][0]["kid"], "a");
        assert!(keys.org_jwks("OrgB").is_none());
    }

    #[test]
    fn rejects_garbage_pem() {
        assert!(matches!(
            ToolKey::from_pem("x", None, b"not a key"),
            Err(KeyError::NotPem)
        ));
    }
}
