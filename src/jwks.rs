//! Platform public keys: JWKS fetched by URL (cached) or kept inline.
//!
//! Owns turning a JWKS document into verification keys and keeping them fresh,
//! without letting a hostile token make the gateway hammer the platform or
//! stall launches. Only RSA signing keys are taken; a key without `alg` is
//! taken as RS256. Each key is parsed once, when its set is loaded, not on
//! every verification. It must never wait on a fetch while holding a lock, and
//! never refuse a key it has cached because the platform's endpoint is slow.
//!
//! The rules for a key set fetched by URL (one cache per URL, shared by the
//! registrations that name it):
//! - **One fetch at a time.** A fetch runs in its own task and publishes its
//!   result on a `tokio::sync::watch` channel; every launch that needs it waits
//!   on that one fetch, for at most `jwks.fetch_timeout_sec` from its arrival.
//!   A launch that gives up does not cancel the fetch.
//! - **Stale while revalidate.** Past `jwks.cache_ttl_sec`, a kid in the cached
//!   set is answered from the cache at once, and one refresh runs in the
//!   background. A failed refresh keeps the cached set.
//! - **Unknown kids are rate-limited per key set.** An unknown kid in a fresh
//!   set starts at most one fetch per `jwks.min_refetch_interval_sec`. Inside
//!   the interval it waits for the next slot (joining whatever fetch starts
//!   there) if that slot falls within its wait, and is refused otherwise; so a
//!   forged kid just before a real key rotation delays the rotation by at most
//!   the interval instead of refusing it. A fetch that had started before the
//!   launch arrived does not prove its kid absent: the launch may try the next
//!   slot. A flood of forged kids therefore costs the platform one fetch per
//!   interval, whatever its size.
//! - **Back-off while failing.** After a failed fetch (timeout, non-2xx, not a
//!   JWKS) no fetch of any kind starts for `min_refetch_interval_sec`, doubling
//!   with each further failure up to [`FAILING_BACKOFF_CAP`], with jitter
//!   ([`Backoff`]). Launches that need the platform meanwhile are refused at
//!   once with the last error rather than held.
//!
//! Borrowed, as facts: MicahParks/jwkset (the storage under keyfunc v3) rate-
//! limits "refresh on unknown kid" with a `rate.Limiter` (`RefreshUnknownKID`)
//! and bounds how long a read waits for that limiter (`RateLimitWaitMax`, "the
//! timeout for waiting for rate limiting to end") instead of refusing at once:
//! the wait-for-the-next-slot rule above. panva/jose's `createRemoteJWKSet`
//! documents a cooldown after a successful fetch (`cooldownDuration`, 30 s by
//! default), a maximum age (`cacheMaxAge`, 10 min) and a 5 s request timeout
//! (`timeoutDuration`); our interval is shorter (2 s by default) because
//! Brightspace rotates about hourly and a forged kid must not hold a rotation
//! back. Serving the cached value while one refresh runs is HTTP's
//! stale-while-revalidate (RFC 5861).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use crate::backoff::Backoff;
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

/// The longest back-off between two fetches of a failing key set.
pub const FAILING_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Cloned to every launch that waited on the same fetch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    #[error("no key with kid {0:?} in the platform's key set")]
    UnknownKid(String),
    #[error("the platform's key set could not be fetched: {0}")]
    Fetch(#[source] Arc<ClientError>),
    #[error("the platform's key set URL answered {0}")]
    Status(http::StatusCode),
    #[error("the platform's key set is not a JWKS document")]
    NotJwks,
    /// No key set yet, and the fetch did not answer within the wait.
    #[error("the platform's key set is still being fetched")]
    StillFetching,
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

/// A key set fetched by URL: its cache, its one fetch in flight, its rate
/// limit and its back-off.
struct UrlKeys {
    url: Url,
    config: JwksConfig,
    backoff: Backoff,
    /// Held only for short, synchronous steps: never across an `.await`.
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    in_flight: Option<Flight>,
    /// When an unknown kid last started a fetch: the rate limit's clock.
    last_kid_fetch: Option<Instant>,
    /// Failed fetches in a row, and when the back-off after them ends.
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<JwksError>,
}

type Outcome = Result<Arc<KeySet>, JwksError>;

/// The fetch in flight: when it started, and where its outcome will appear.
#[derive(Clone)]
struct Flight {
    started: Instant,
    done: watch::Receiver<Option<Outcome>>,
}

/// What a launch does next, decided under the state lock.
enum Step {
    Key(Arc<PlatformKey>),
    Refuse(JwksError),
    Join(Flight),
    /// The rate limit's next slot for an unknown kid.
    WaitUntil(Instant),
}

impl PlatformKeys {
    pub fn new(source: &KeySetSource, config: &JwksConfig) -> Self {
        let source = match source {
            KeySetSource::Inline(doc) => Source::Inline(KeySet::from_jwks(doc)),
            KeySetSource::Url(url) => Source::Url(UrlKeys {
                url: url.clone(),
                config: config.clone(),
                backoff: Backoff::new(config.min_refetch_interval, FAILING_BACKOFF_CAP),
                state: Arc::default(),
            }),
        };
        Self { source }
    }

    /// The verification key for `kid`, fetching or refetching the set as the
    /// cache, rate-limit and back-off rules allow (see the module comment).
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
        let arrived = Instant::now();
        let deadline = arrived + self.config.fetch_timeout;
        loop {
            let mut flight = match self.step(kid, client) {
                Step::Key(key) => return Ok(key),
                Step::Refuse(e) => return Err(e),
                Step::WaitUntil(slot) if slot > deadline => return Err(self.gave_up(kid)),
                Step::WaitUntil(slot) => {
                    tokio::time::sleep_until(slot).await;
                    continue;
                }
                Step::Join(flight) => flight,
            };
            let outcome = tokio::time::timeout_at(deadline, flight.done.wait_for(Option::is_some))
                .await
                .map(|seen| seen.map(|o| o.clone()));
            let outcome = match outcome {
                Err(_elapsed) => return Err(self.gave_up(kid)),
                // The fetch task ended without an answer (it panicked).
                Ok(Err(_)) | Ok(Ok(None)) => Err(JwksError::StillFetching),
                Ok(Ok(Some(outcome))) => outcome,
            };
            match outcome {
                Ok(set) => match set.get(kid) {
                    Some(key) => return Ok(key),
                    // A fetch that started before this launch arrived may
                    // predate a rotation: try the next slot, if there is time.
                    None if flight.started < arrived => continue,
                    None => return Err(JwksError::UnknownKid(kid.to_owned())),
                },
                Err(e) => return Err(e),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides the next step for `kid`, starting a fetch if one is due.
    fn step(&self, kid: &str, client: &HttpClient) -> Step {
        let now = Instant::now();
        let mut state = self.lock();
        // A fetch clears itself before its task ends; one still here with its
        // sender gone died without an answer (a panic): forget it.
        if state
            .in_flight
            .as_ref()
            .is_some_and(|f| f.done.has_changed().is_err())
        {
            state.in_flight = None;
        }
        let fresh = state
            .cached
            .as_ref()
            .map(|c| now.duration_since(c.fetched_at) < self.config.cache_ttl);
        let backing_off = state.retry_at.is_some_and(|at| now < at);
        if let Some(key) = state.cached.as_ref().and_then(|c| c.set.get(kid)) {
            // Stale while revalidate: the cached key now, one refresh behind it.
            if fresh == Some(false) && state.in_flight.is_none() && !backing_off {
                tracing::debug!(url = %self.url, "platform key set past its TTL; refreshing in the background");
                self.start(&mut state, client, now);
            }
            return Step::Key(key);
        }
        if let Some(flight) = &state.in_flight {
            return Step::Join(flight.clone());
        }
        if backing_off {
            return Step::Refuse(match (&state.cached, &state.last_error) {
                (Some(_), _) => JwksError::UnknownKid(kid.to_owned()),
                (None, Some(e)) => e.clone(),
                (None, None) => JwksError::StillFetching,
            });
        }
        if fresh == Some(true) {
            // A fresh set without this kid: the rate-limited kind of fetch.
            if let Some(last) = state.last_kid_fetch {
                let slot = last + self.config.min_refetch_interval;
                if now < slot {
                    return Step::WaitUntil(slot);
                }
            }
            state.last_kid_fetch = Some(now);
        }
        Step::Join(self.start(&mut state, client, now))
    }

    /// Starts the one fetch of this key set, in its own task so that no
    /// launch that gives up can cancel it.
    fn start(&self, state: &mut State, client: &HttpClient, now: Instant) -> Flight {
        let (tx, rx) = watch::channel(None);
        let flight = Flight {
            started: now,
            done: rx,
        };
        state.in_flight = Some(flight.clone());
        let shared = self.state.clone();
        let (client, url, timeout, backoff) = (
            client.clone(),
            self.url.clone(),
            self.config.fetch_timeout,
            self.backoff,
        );
        tokio::spawn(async move {
            let outcome = fetch(&client, &url, timeout).await.map(Arc::new);
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            state.in_flight = None;
            match &outcome {
                Ok(set) => {
                    state.cached = Some(Cached {
                        set: set.clone(),
                        fetched_at: Instant::now(),
                    });
                    state.failures = 0;
                    state.retry_at = None;
                    state.last_error = None;
                }
                Err(e) => {
                    state.failures = state.failures.saturating_add(1);
                    let wait = backoff.delay(state.failures, None);
                    state.retry_at = Some(Instant::now() + wait);
                    state.last_error = Some(e.clone());
                    tracing::warn!(
                        url = %url,
                        error = %e,
                        failures = state.failures,
                        retry_in_ms = wait.as_millis() as u64,
                        cached = state.cached.is_some(),
                        "platform key set fetch failed; cached keys stay in use"
                    );
                }
            }
            // Published under the lock, so no launch sees the fetch finished
            // in the state but not yet on the channel, or the reverse.
            tx.send_replace(Some(outcome));
        });
        flight
    }

    /// The refusal for a launch whose wait ended before a key set came.
    fn gave_up(&self, kid: &str) -> JwksError {
        if self.lock().cached.is_some() {
            JwksError::UnknownKid(kid.to_owned())
        } else {
            JwksError::StillFetching
        }
    }
}

async fn fetch(client: &HttpClient, url: &Url, timeout: Duration) -> Result<KeySet, JwksError> {
    let response = client
        .get(url, "application/json", MAX_JWKS_BYTES, timeout)
        .await
        .map_err(|e| JwksError::Fetch(Arc::new(e)))?;
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
