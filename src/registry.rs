//! Platform registrations, looked up by (`iss`, `client_id`).
//!
//! Canvas uses one issuer for every tenant, so a registration is identified by
//! the pair. When a login omits `client_id` and several active registrations
//! share the issuer, the lookup is ambiguous and says so instead of guessing.

use std::collections::HashMap;
use std::sync::Arc;

use crate::jwks::PlatformKeys;
use crate::jwks::{JwksConfig, KeySetSource};
use crate::keys::{ToolKey, ToolKeys};

/// One platform registration (the Open edX plugin's "LTI tool" fields).
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub title: String,
    pub active: bool,
    pub issuer: String,
    pub client_id: String,
    pub auth_login_url: url::Url,
    pub auth_token_url: url::Url,
    pub auth_audience: Option<String>,
    pub key_set: KeySetSource,
    /// The `kid` of the tool key used with this platform.
    pub key: String,
    pub deployment_ids: std::collections::BTreeSet<String>,
    pub org: Option<String>,
    pub gate: Option<crate::gate::LaunchGate>,
    /// Origins besides the auth and token URLs' where a launch's service
    /// URLs (AGS line items, the deep-linking return URL) may point.
    pub service_origins: Vec<url::Origin>,
    /// Whether those URLs (and the addresses their hosts resolve to) may be
    /// loopback, link-local or private.
    pub allow_private_addresses: bool,
}

/// Why a service URL a launch handed over is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceUrlRefused {
    #[error("{url} is not an http(s) URL")]
    NotHttp { url: String },
    #[error(
        "{origin} is neither the origin of this registration's auth_login_url or auth_token_url nor listed in its service_origins"
    )]
    OtherOrigin { origin: String },
    #[error(
        "{host} is a loopback, link-local or private address, which this registration does not allow (allow_private_addresses)"
    )]
    PrivateAddress { host: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no platform is registered with this issuer and client_id")]
    Unknown,
    #[error("several platforms share this issuer; the login must send client_id")]
    Ambiguous,
    #[error("the platform registration is not active")]
    Inactive,
}

/// One registration with its resolved keys.
pub struct Registration {
    pub platform: PlatformConfig,
    pub platform_keys: Arc<PlatformKeys>,
    pub tool_key: Arc<ToolKey>,
}

impl Registration {
    /// Checks a URL that a launch handed over (a line item, a line items
    /// container or its next page, a deep-linking return URL) before ltigate
    /// sends a token there: it must be on the origin of the registration's
    /// auth or token URL, or on one listed in `service_origins`; and, unless
    /// the registration allows private addresses, its host must not be a
    /// loopback, link-local or private IP. (Host names are resolved by the
    /// client, which refuses such addresses the same way:
    /// [`crate::client::HttpClient::public_only`].)
    pub fn check_service_url(&self, url: &url::Url) -> Result<(), ServiceUrlRefused> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ServiceUrlRefused::NotHttp {
                url: url.to_string(),
            });
        }
        let origin = url.origin();
        let p = &self.platform;
        let listed = origin == p.auth_login_url.origin()
            || origin == p.auth_token_url.origin()
            || p.service_origins.contains(&origin);
        if !listed {
            return Err(ServiceUrlRefused::OtherOrigin {
                origin: origin.ascii_serialization(),
            });
        }
        if !p.allow_private_addresses {
            let ip = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if ip.is_some_and(|ip| !crate::client::is_public(ip)) {
                return Err(ServiceUrlRefused::PrivateAddress {
                    host: url.host_str().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(())
    }
}

pub struct Registry {
    by_pair: HashMap<(String, String), Arc<Registration>>,
    by_issuer: HashMap<String, Vec<Arc<Registration>>>,
}

impl Registry {
    /// Builds the registry. Registrations that share a key set URL share its cache.
    pub fn new(platforms: &[PlatformConfig], tool_keys: &ToolKeys, jwks: &JwksConfig) -> Self {
        let mut shared: HashMap<String, Arc<PlatformKeys>> = HashMap::new();
        let mut by_pair = HashMap::new();
        let mut by_issuer: HashMap<String, Vec<Arc<Registration>>> = HashMap::new();
        for p in platforms {
            let platform_keys = match &p.key_set {
                KeySetSource::Url(url) => shared
                    .entry(url.to_string())
                    .or_insert_with(|| Arc::new(PlatformKeys::new(&p.key_set, jwks)))
                    .clone(),
                KeySetSource::Inline(_) => Arc::new(PlatformKeys::new(&p.key_set, jwks)),
            };
            let Some(tool_key) = tool_keys.get(&p.key).cloned() else {
                // Config validation guarantees the kid exists.
                continue;
            };
            let reg = Arc::new(Registration {
                platform: p.clone(),
                platform_keys,
                tool_key,
            });
            by_pair.insert((p.issuer.clone(), p.client_id.clone()), reg.clone());
            by_issuer.entry(p.issuer.clone()).or_default().push(reg);
        }
        Self { by_pair, by_issuer }
    }

    /// Finds the active registration for a login.
    pub fn find(
        &self,
        issuer: &str,
        client_id: Option<&str>,
    ) -> Result<Arc<Registration>, LookupError> {
        let reg = match client_id {
            Some(cid) => self
                .by_pair
                .get(&(issuer.to_owned(), cid.to_owned()))
                .cloned()
                .ok_or(LookupError::Unknown)?,
            None => {
                let all = self.by_issuer.get(issuer).ok_or(LookupError::Unknown)?;
                let mut active = all.iter().filter(|r| r.platform.active);
                match (active.next(), active.next()) {
                    (Some(one), None) => one.clone(),
                    (Some(_), Some(_)) => return Err(LookupError::Ambiguous),
                    (None, _) => return Err(LookupError::Inactive),
                }
            }
        };
        if !reg.platform.active {
            return Err(LookupError::Inactive);
        }
        Ok(reg)
    }

    pub fn is_empty(&self) -> bool {
        self.by_pair.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Registration>> {
        self.by_pair.values()
    }
}
