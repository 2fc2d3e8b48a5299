//! Platform public keys: JWKS fetched by URL (cached) or kept inline.
//!
//! Owns turning a JWKS document into verification keys and keeping them fresh.
//! A key set fetched by URL is cached for `jwks.cache_ttl_sec`. An unknown
//! `kid` triggers one refetch (platforms rotate keys; Brightspace about hourly),
//! but at most once per `jwks.min_refetch_interval_sec`, so a flood of tokens
//! with random kids cannot turn the gateway into a amplifier against the
//! platform. Concurrent refetches of one URL are merged into one. Only RSA
//! signing keys are taken; a key without `alg` is taken as RS256. Each key
//! is parsed once, when its set is loaded, not on every verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::Instant;
use url::Url;

use crate::client::{ClientError, HttpClient};

#[derive(Debug, Clone)]
pub struct JwksConfig {
    pub cache_ttl: Duration,
    pub min_refetch_interval: Duration,
    pub fetch_timeout: Duration,
}

/// Where a platform's public keys come from.
#[derive(Debug, Clone)]
pub enum KeySetSource {
    Url(Url),
    /// A JWKS document kept in the config.
    Inline(serde_json::Value),
}

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("no key with kid {0:?} in the platform's key set")]
    UnknownKid(String),
    #[error("the platform's key set could not be fetched: {0}")]
    Fetch(#[from] ClientError),
    #[error("the platform's key set URL answered {0}")]
    Status(http::StatusCode),
    #[error("the platform's key set is not a JWKS document")]
    NotJwks,
}

/// One platform verification key, for RS256.
pub struct PlatformKey {
    /// `Err` when aws-lc cannot make a key of the components: nothing then
    /// verifies with it. (Keys outside 2048-8192 bits parse, but verify
    /// nothing either: the size is checked on each verification.)
    parsed: Result<ParsedPublicKey, KeyRejected>,
}

impl PlatformKey {
    /// A key from its modulus and exponent (big-endian bytes).
    pub fn from_components(n: &[u8], e: &[u8]) -> Self {
        Self {
            parsed: RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256),
        }
    }

    /// A key from a JWK's base64url `n` and `e`.
    pub fn from_jwk_components(n: &str, e: &str) -> Option<Self> {
        let n = URL_SAFE_NO_PAD.decode(n).ok()?;
        let e = URL_SAFE_NO_PAD.decode(e).ok()?;
        Some(Self::from_components(&n, &e))
    }

    /// Whether `signature` is this key's RS256 (RSASSA-PKCS1-v1_5 with
    /// SHA-256) signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .as_ref()
            .is_ok_and(|key| key.verify_sig(message, signature).is_ok())
    }
}

/// Verification keys by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<PlatformKey>>,
}

impl KeySet {
    /// Takes every usable RSA signing key with a `kid` from a JWKS document.
    pub fn from_jwks(doc: &serde_json::Value) -> Self {
        let mut keys = HashMap::new();
        let Some(list) = doc.get("keys").and_then(|k| k.as_array()) else {
            return Self { keys };
        };
        for jwk in list {
            let field = |name: &str| jwk.get(name).and_then(|v| v.as_str());
            let usable = field("kty") == Some("RSA")
                && field("use").is_none_or(|u| u == "sig")
                && field("alg").is_none_or(|a| a == "RS256")
                && jwk
                    .get("key_ops")
                    .and_then(|ops| ops.as_array())
                    .is_none_or(|ops| ops.iter().any(|op| op == "verify"));
            let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else {
                continue;
            };
            if !usable || kid.is_empty() {
                continue;
            }
            if let Some(key) = PlatformKey::from_jwk_components(n, e) {
                if let Err(e) = &key.parsed {
                    tracing::warn!(kid, error = %e, "a platform key is not a usable RS256 key; nothing signed with it will verify");
                }
                keys.insert(kid.to_owned(), Arc::new(key));
            }
        }
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, kid: &str) -> Option<Arc<PlatformKey>> {
        self.keys.get(kid).cloned()
    }
}

struct Cached {
    set: Arc<KeySet>,
    fetched_at: Instant,
}

/// The keys of one platform key set.
pub struct PlatformKeys {
    source: Source,
}

enum Source {
    Inline(KeySet),
    Url(UrlKeys),
}

/// A key set fetched by URL, with its cache and refetch rate limit.
struct UrlKeys {
    url: Url,
    config: JwksConfig,
    cached: Mutex<Option<Cached>>,
    /// When an unknown kid last caused a refetch (the rate-limited kind).
    last_refetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

impl PlatformKeys {
    pub fn new(source: &KeySetSource, config: &JwksConfig) -> Self {
        let source = match source {
            KeySetSource::Inline(doc) => Source::Inline(KeySet::from_jwks(doc)),
            KeySetSource::Url(url) => Source::Url(UrlKeys {
                url: url.clone(),
                config: config.clone(),
                cached: Mutex::new(None),
                last_refetch: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        };
        Self { source }
    }

    /// The verification key for `kid`, fetching or refetching the set as the
    /// cache and rate-limit rules allow.
    pub async fn key(&self, kid: &str, client: &HttpClient) -> Result<Arc<PlatformKey>, JwksError> {
        match &self.source {
            Source::Inline(set) => set
                .get(kid)
                .ok_or_else(|| JwksError::UnknownKid(kid.to_owned())),
            Source::Url(keys) => keys.key(kid, client).await,
        }
    }
}

impl UrlKeys {
    async fn key(&self, kid: &str, client: &HttpClient) -> Result<Arc<PlatformKey>, JwksError> {
        let Self {
            url,
            config,
            cached,
            last_refetch,
            fetching,
        } = self;
        let lookup = || -> (Option<Arc<PlatformKey>>, bool, bool) {
            let guard = cached.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                None => (None, false, false),
                Some(c) => (
                    c.set.get(kid),
                    true,
                    c.fetched_at.elapsed() < config.cache_ttl,
                ),
            }
        };
        let may_refetch = || {
            let guard = last_refetch.lock().unwrap_or_else(|p| p.into_inner());
            guard.is_none_or(|t| t.elapsed() >= config.min_refetch_interval)
        };

        let (key, _, fresh) = lookup();
        match (&key, fresh) {
            (Some(k), true) => return Ok(k.clone()),
            (None, true) if !may_refetch() => return Err(JwksError::UnknownKid(kid.to_owned())),
            _ => {}
        }

        // One fetch at a time per URL; whoever waited re-checks the cache.
        let _turn = fetching.lock().await;
        let (key, have_set, fresh) = lookup();
        if let (Some(k), true) = (&key, fresh) {
            return Ok(k.clone());
        }
        if have_set && fresh {
            // A fresh set without this kid: only an unknown-kid refetch, rate-limited.
            if !may_refetch() {
                return Err(JwksError::UnknownKid(kid.to_owned()));
            }
            *last_refetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        match fetch(client, url, config.fetch_timeout).await {
            Ok(set) => {
                let set = Arc::new(set);
                *cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
                    set: set.clone(),
                    fetched_at: Instant::now(),
                });
                set.get(kid)
                    .ok_or_else(|| JwksError::UnknownKid(kid.to_owned()))
            }
            // A stale key is better than no launch while the platform's JWKS
            // endpoint is briefly down; it was valid when we fetched it.
            Err(e) => match key {
                Some(stale) => {
                    tracing::warn!(url = %url, error = %e, "JWKS refetch failed; using the cached key set");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }
}

async fn fetch(client: &HttpClient, url: &Url, timeout: Duration) -> Result<KeySet, JwksError> {
    let response = client
        .get(url, "application/json", MAX_JWKS_BYTES, timeout)
        .await?;
    if !response.status.is_success() {
        return Err(JwksError::Status(response.status));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|_| JwksError::NotJwks)?;
    let set = KeySet::from_jwks(&doc);
    tracing::info!(url = %url, keys = set.keys.len(), "fetched platform key set");
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(extra: serde_json::Value) -> serde_json::Value {
        let generated = crate::keys::generate("k").expect("generate");
        let mut j = generated.public_jwk;
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                j.as_object_mut().expect("object").remove(k);
            } else {
                j[k] = v.clone();
            }
        }
        j
    }

    #[test]
    fn takes_rsa_signing_keys_only() {
        let doc = json!({"keys": [
            jwk(json!({"kid": "plain"})),
            jwk(json!({"kid": "openedx", "alg": null, "use": null, "key_ops": ["verify"]})),
            jwk(json!({"kid": "enc", "use": "enc"})),
            jwk(json!({"kid": "hs", "alg": "HS256"})),
            jwk(json!({"kid": "sign-only", "key_ops": ["sign"]})),
            jwk(json!({"kid": null})),
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "a", "y": "b"},
        ]});
        let set = KeySet::from_jwks(&doc);
        let mut kids: Vec<_> = set.keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["openedx", "plain"]);
        assert!(KeySet::from_jwks(&json!({"nope": 1})).is_empty());
    }

    #[test]
    fn a_key_verifies_its_own_rs256_signatures_only() {
        let generated = crate::keys::generate("k").expect("generate");
        let tool = crate::keys::ToolKey::from_pem("k", None, generated.private_pem.as_bytes())
            .expect("tool key");
        let token = tool.sign(&json!({"sub": "s"})).expect("sign");
        let (signed, signature) = token.rsplit_once('.').expect("jws");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        let jwk = &generated.public_jwk;
        let key = PlatformKey::from_jwk_components(
            jwk["n"].as_str().expect("n"),
            jwk["e"].as_str().expect("e"),
        )
        .expect("key");
        assert!(key.verifies(signed.as_bytes(), &signature));
        assert!(!key.verifies(format!("{signed}x").as_bytes(), &signature));
        let other = crate::keys::generate("o").expect("generate").public_jwk;
        let other = PlatformKey::from_jwk_components(
            other["n"].as_str().expect("n"),
            other["e"].as_str().expect("e"),
        )
        .expect("key");
        assert!(!other.verifies(signed.as_bytes(), &signature));
        assert!(PlatformKey::from_jwk_components("not base64!", "AQAB").is_none());
    }
}
