//! Configuration: `gateway.toml` and its validation.
//!
//! Loading is two-stage. `raw` mirrors the file with serde
//! (`deny_unknown_fields`); [`Config::from_raw`] turns it into a validated,
//! typed [`Config`] or refuses with an error that names the file and the
//! offending key. A gateway that guards content must refuse to start on a
//! config it does not understand, so nothing here guesses or falls back
//! silently. Secrets (private keys) may come from files or from environment
//! variables, read through a [`SecretSource`] so that tests never touch the
//! process environment.

mod deep_linking;
mod grades;
mod lms_api;
mod raw;
mod upstream;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use url::Url;

use crate::content::{CourseKey, UsageKey};
use crate::gate::{BlockFilter, LaunchGate};
use crate::keys::ToolKey;

pub use raw::RawConfig;

use crate::assertion::AssertionConfig;
use crate::course_tree::BlockAccess;
use crate::deep_linking::DeepLinkingConfig;
use crate::grades::GradesConfig;
use crate::http::server::{ServerConfig, TlsFiles};
use crate::jwks::{JwksConfig, KeySetSource};
use crate::lms_api::LmsApiConfig;
use crate::proxy::UpstreamConfig;
use crate::registry::PlatformConfig;
use crate::session::SessionConfig;
use crate::store::StoreConfig;
use crate::store::redis::{UrlSecurity, url_security};

/// A config error, naming the file and the key at fault.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            )
        }
    }
}

/// Where secrets named by the config are read from.
pub trait SecretSource {
    /// The value of an environment variable, if set.
    fn env(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl SecretSource for HashMap<String, String> {
    fn env(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this was loaded from (or a label for inline configs).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub session: SessionConfig,
    pub jwks: JwksConfig,
    pub keys: Vec<ToolKey>,
    pub platforms: Vec<PlatformConfig>,
    /// The LMS behind the gateway; without it, the display path only confirms a grant.
    pub upstream: Option<UpstreamConfig>,
    /// How the LMS is told who the learner is (set whenever `upstream` is).
    pub assertion: Option<AssertionConfig>,
    /// Gating rules for every path other than the LTI endpoints.
    pub rules: Vec<crate::rules::Rule>,
    /// Grade passback; `None` without `[grades]`.
    pub grades: Option<GradesConfig>,
    /// Deep linking; `None` without `[deep_linking]`.
    pub deep_linking: Option<DeepLinkingConfig>,
    /// The LMS's REST APIs: from `[lms_api]`, or the client named in
    /// `[deep_linking]`; required by deep linking and by subtree access.
    pub lms_api: Option<LmsApiConfig>,
    /// What `{block_in_course}` rules open (`[upstream] block_access`).
    pub block_access: BlockAccess,
}

// Defaults, documented in docs/configuration.md.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_EMBEDDED_PATH: &str = "data/ltigate.redb";
pub const DEFAULT_KEY_PREFIX: &str = "ltigate:";
pub const DEFAULT_COOKIE_NAME: &str = "ltigate_session";
/// The LMS app's logout view (deploy/openedx, `ltigate_openedx.views.logout`).
pub const DEFAULT_LMS_LOGOUT_PATH: &str = "/ltigate/logout";
pub const DEFAULT_SESSION_LIFETIME_SEC: u64 = 8 * 3600;
pub const DEFAULT_LOGIN_STATE_TTL_SEC: u64 = 600;
pub const DEFAULT_LEEWAY_SEC: u64 = 60;
pub const DEFAULT_MAX_GRANTS: usize = 64;
pub const DEFAULT_JWKS_CACHE_TTL_SEC: u64 = 300;
pub const DEFAULT_JWKS_MIN_REFETCH_SEC: u64 = 2;
pub const DEFAULT_JWKS_FETCH_TIMEOUT_SEC: u64 = 5;
pub const DEFAULT_HEADER_READ_TIMEOUT_SEC: u64 = 10;
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SEC: u64 = 10;
pub const DEFAULT_SHUTDOWN_GRACE_SEC: u64 = 20;
/// A request body gets this long to arrive, plus one second per
/// [`DEFAULT_BODY_MIN_BYTES_PER_SEC`] bytes received: every LTI form
/// (at most 256 KiB) within 28 s, and an upload must keep that rate.
pub const DEFAULT_BODY_READ_TIMEOUT_SEC: u64 = 20;
pub const DEFAULT_BODY_MIN_BYTES_PER_SEC: u64 = 32 * 1024;
pub const DEFAULT_IDLE_TIMEOUT_SEC: u64 = 30;
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL_SEC: u64 = 20;
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

impl Config {
    /// Reads and validates a config file, taking secrets from the process
    /// environment. Validation only reads: key files that
    /// `generate_if_missing` asks for must exist already (the binary creates
    /// them first; see [`missing_generated_keys`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::load(path)?, path, &ProcessEnv)
    }

    /// Parses and validates config text. Relative paths are resolved against
    /// the directory of `path`.
    pub fn parse(text: &str, path: &Path, secrets: &dyn SecretSource) -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::parse(text, path)?, path, secrets)
    }

    /// Validates a raw config.
    pub fn from_raw(
        raw: RawConfig,
        path: &Path,
        secrets: &dyn SecretSource,
    ) -> Result<Self, ConfigError> {
        let v = Validator {
            file: path,
            base: path.parent().unwrap_or(Path::new(".")),
        };
        let server = v.server(raw.server)?;
        let store = v.store(raw.store.unwrap_or_default())?;
        let session = v.session(raw.session.unwrap_or_default())?;
        let jwks = v.jwks(raw.jwks.unwrap_or_default())?;
        let keys = v.keys(raw.keys, secrets)?;
        let platforms = v.platforms(raw.platforms, &keys, server.allow_http)?;
        let block_access_raw = raw.upstream.as_ref().and_then(|u| u.block_access.clone());
        let (upstream, assertion) =
            v.upstream(raw.upstream, raw.assertion, &keys, &server, secrets)?;
        let rules = v.rules(raw.rules)?;
        let grades = v.grades(raw.grades, upstream.is_some(), secrets)?;
        let upstream_url = upstream.as_ref().map(|u| &u.url);
        let tree_ttl = raw.lms_api.as_ref().and_then(|l| l.tree_cache_ttl_sec);
        let lms_api = v.lms_api(
            raw.lms_api,
            raw.deep_linking.as_ref(),
            upstream_url,
            secrets,
        )?;
        let block_access = v.block_access(
            block_access_raw.as_deref(),
            upstream.is_some(),
            lms_api.is_some(),
            tree_ttl,
        )?;
        let deep_linking = v.deep_linking(raw.deep_linking, lms_api.is_some())?;
        Ok(Self {
            source: path.to_owned(),
            server,
            store,
            session,
            jwks,
            keys,
            platforms,
            upstream,
            assertion,
            rules,
            grades,
            deep_linking,
            lms_api,
            block_access,
        })
    }
}

impl RawConfig {
    /// Reads and parses a config file, without validating it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text (of the file at `path`), without validating it.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            message: e.to_string().trim_end().to_owned(),
        })
    }
}

struct Validator<'a> {
    file: &'a Path,
    base: &'a Path,
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    /// The PEM file at `path`, which must hold at least one certificate.
    fn ca_pem(&self, key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|e| self.err(key, format!("cannot read {}: {e}", path.display())))?;
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
        match certs {
            Ok(certs) if !certs.is_empty() => Ok(pem),
            _ => Err(self.err(
                key,
                format!("{} holds no readable PEM certificate", path.display()),
            )),
        }
    }

    fn positive(&self, key: &str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
        match value.unwrap_or(default) {
            0 => Err(self.err(key, "must be greater than 0")),
            v => Ok(v),
        }
    }

    fn server(&self, raw: raw::Server) -> Result<ServerConfig, ConfigError> {
        let listen = raw
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse()
            .map_err(|_| self.err("server.listen", "must be an address like 127.0.0.1:8080"))?;
        let allow_http = raw.allow_http.unwrap_or(false);
        let public_url = Url::parse(&raw.public_url)
            .map_err(|e| self.err("server.public_url", format!("is not a URL: {e}")))?;
        match public_url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                return Err(self.err(
                    "server.public_url",
                    "must use https; set server.allow_http = true only for local development",
                ));
            }
            _ => return Err(self.err("server.public_url", "must be an http(s) URL")),
        }
        if public_url.host_str().is_none()
            || public_url.path() != "/"
            || public_url.query().is_some()
            || public_url.fragment().is_some()
            || !public_url.username().is_empty()
        {
            return Err(self.err(
                "server.public_url",
                "must be a scheme and host only, like https://lti.example.com",
            ));
        }
        let tls = match (raw.tls_cert, raw.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let tls = TlsFiles {
                    cert: self.resolve(&cert),
                    key: self.resolve(&key),
                };
                for (name, p) in [("server.tls_cert", &tls.cert), ("server.tls_key", &tls.key)] {
                    if !p.is_file() {
                        return Err(self.err(name, format!("file {} does not exist", p.display())));
                    }
                }
                Some(tls)
            }
            (Some(_), None) => return Err(self.err("server.tls_key", "is required with tls_cert")),
            (None, Some(_)) => return Err(self.err("server.tls_cert", "is required with tls_key")),
        };
        let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(self.err("server.max_connections", "must be greater than 0"));
        }
        let max_connections_per_ip = raw
            .max_connections_per_ip
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP.min(max_connections));
        if max_connections_per_ip == 0 || max_connections_per_ip > max_connections {
            return Err(self.err(
                "server.max_connections_per_ip",
                format!("must be between 1 and server.max_connections ({max_connections})"),
            ));
        }
        Ok(ServerConfig {
            listen,
            public_url,
            allow_http,
            tls,
            header_read_timeout: Duration::from_secs(self.positive(
                "server.header_read_timeout_sec",
                raw.header_read_timeout_sec,
                DEFAULT_HEADER_READ_TIMEOUT_SEC,
            )?),
            tls_handshake_timeout: Duration::from_secs(self.positive(
                "server.tls_handshake_timeout_sec",
                raw.tls_handshake_timeout_sec,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT_SEC,
            )?),
            shutdown_grace: Duration::from_secs(
                raw.shutdown_grace_sec.unwrap_or(DEFAULT_SHUTDOWN_GRACE_SEC),
            ),
            body_read_timeout: Duration::from_secs(self.positive(
                "server.body_read_timeout_sec",
                raw.body_read_timeout_sec,
                DEFAULT_BODY_READ_TIMEOUT_SEC,
            )?),
            body_min_bytes_per_sec: raw
                .body_min_bytes_per_sec
                .unwrap_or(DEFAULT_BODY_MIN_BYTES_PER_SEC),
            idle_timeout: Duration::from_secs(self.positive(
                "server.idle_timeout_sec",
                raw.idle_timeout_sec,
                DEFAULT_IDLE_TIMEOUT_SEC,
            )?),
            http2_keep_alive_interval: Duration::from_secs(self.positive(
                "server.http2_keep_alive_interval_sec",
                raw.http2_keep_alive_interval_sec,
                DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL_SEC,
            )?),
            http2_max_concurrent_streams: match raw
                .http2_max_concurrent_streams
                .unwrap_or(DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS)
            {
                0 => {
                    return Err(self.err(
                        "server.http2_max_concurrent_streams",
                        "must be greater than 0",
                    ));
                }
                n => n,
            },
            max_connections,
            max_connections_per_ip,
        })
    }

    fn store(&self, raw: raw::Store) -> Result<StoreConfig, ConfigError> {
        match raw.kind.as_deref().unwrap_or("embedded") {
            "embedded" => {
                if raw.url.is_some() {
                    return Err(self.err("store.url", "belongs to kind = \"redis\""));
                }
                if raw.key_prefix.is_some() {
                    return Err(self.err("store.key_prefix", "belongs to kind = \"redis\""));
                }
                if raw.ca_file.is_some() {
                    return Err(self.err("store.ca_file", "belongs to kind = \"redis\""));
                }
                Ok(StoreConfig::Embedded {
                    path: self.resolve(raw.path.as_deref().unwrap_or(DEFAULT_EMBEDDED_PATH)),
                })
            }
            "redis" => {
                if raw.path.is_some() {
                    return Err(self.err("store.path", "belongs to kind = \"embedded\""));
                }
                let url = raw
                    .url
                    .ok_or_else(|| self.err("store.url", "is required with kind = \"redis\""))?;
                let tls = match url_security(&url)
                    .map_err(|e| self.err("store.url", format!("is not a Redis URL: {e}")))?
                {
                    UrlSecurity::TlsUnchecked => {
                        return Err(self.err(
                            "store.url",
                            "ends in #insecure, which turns off the check of Redis's \
                             certificate; give its CA in store.ca_file instead",
                        ));
                    }
                    UrlSecurity::Tls => true,
                    UrlSecurity::Plain => false,
                };
                let ca_pem = match raw.ca_file {
                    None => None,
                    Some(_) if !tls => {
                        return Err(self.err(
                            "store.ca_file",
                            "needs a rediss:// url: the connection to Redis is not TLS",
                        ));
                    }
                    Some(file) => Some(self.ca_pem("store.ca_file", &self.resolve(&file))?),
                };
                Ok(StoreConfig::Redis {
                    url,
                    key_prefix: raw
                        .key_prefix
                        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned()),
                    ca_pem,
                })
            }
            other => Err(self.err(
                "store.kind",
                format!("is {other:?}; expected \"embedded\" or \"redis\""),
            )),
        }
    }

    fn session(&self, raw: raw::Session) -> Result<SessionConfig, ConfigError> {
        let cookie_name = raw
            .cookie_name
            .unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_owned());
        // On HTTPS the browser-side name is `__Host-<cookie_name>`
        // (crate::cookies::HOST_PREFIX): a name of its own with a `__`
        // prefix would double it, and browsers match those prefixes in any
        // case. The state and picker cookies' names are ltigate's too.
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || cookie_name.starts_with("__")
            || cookie_name.starts_with("ltigate_state")
            || cookie_name.starts_with("ltigate_dl_")
        {
            return Err(self.err(
                "session.cookie_name",
                "must be letters, digits, '_' or '-', not start with '__' (on HTTPS ltigate adds __Host- itself), ltigate_state or ltigate_dl_",
            ));
        }
        let lms_logout_path = match raw.lms_logout_path {
            None => Some(DEFAULT_LMS_LOGOUT_PATH.to_owned()),
            Some(p) if p.is_empty() => None,
            Some(p) => {
                if !p.starts_with('/')
                    || p.contains(['?', '#'])
                    || p.parse::<http::uri::PathAndQuery>().is_err()
                {
                    return Err(self.err(
                        "session.lms_logout_path",
                        "must be an absolute path on the LMS (such as \"/ltigate/logout\"), or \"\" to end only the gateway's session at logout",
                    ));
                }
                Some(p)
            }
        };
        let lifetime_sec = self.positive(
            "session.lifetime_sec",
            raw.lifetime_sec,
            DEFAULT_SESSION_LIFETIME_SEC,
        )?;
        let access_length_sec = match raw.access_length_sec {
            Some(0) => return Err(self.err("session.access_length_sec", "must be greater than 0")),
            v => v,
        };
        let max_grants = match raw.max_grants.unwrap_or(DEFAULT_MAX_GRANTS) {
            0 => return Err(self.err("session.max_grants", "must be greater than 0")),
            v => v,
        };
        Ok(SessionConfig {
            cookie_name,
            lifetime_sec,
            access_length_sec,
            login_state_ttl_sec: self.positive(
                "session.login_state_ttl_sec",
                raw.login_state_ttl_sec,
                DEFAULT_LOGIN_STATE_TTL_SEC,
            )?,
            leeway_sec: raw.leeway_sec.unwrap_or(DEFAULT_LEEWAY_SEC),
            partitioned_cookies: raw.partitioned_cookies.unwrap_or(true),
            max_grants,
            lms_logout_path,
        })
    }

    fn jwks(&self, raw: raw::Jwks) -> Result<JwksConfig, ConfigError> {
        Ok(JwksConfig {
            cache_ttl: Duration::from_secs(self.positive(
                "jwks.cache_ttl_sec",
                raw.cache_ttl_sec,
                DEFAULT_JWKS_CACHE_TTL_SEC,
            )?),
            // Zero would let every unknown kid trigger a fetch from the platform.
            // Short by default (2 s): a launch inside the interval waits for the
            // next slot, so a rotation right after a forged kid still passes.
            min_refetch_interval: Duration::from_secs(self.positive(
                "jwks.min_refetch_interval_sec",
                raw.min_refetch_interval_sec,
                DEFAULT_JWKS_MIN_REFETCH_SEC,
            )?),
            fetch_timeout: Duration::from_secs(self.positive(
                "jwks.fetch_timeout_sec",
                raw.fetch_timeout_sec,
                DEFAULT_JWKS_FETCH_TIMEOUT_SEC,
            )?),
        })
    }

    fn keys(
        &self,
        raw: Vec<raw::Key>,
        secrets: &dyn SecretSource,
    ) -> Result<Vec<ToolKey>, ConfigError> {
        if raw.is_empty() {
            return Err(self.err(
                "keys",
                "at least one [[keys]] entry is required (create one with `ltigate keygen`)",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, k) in raw.into_iter().enumerate() {
            let at = |field: &str| format!("keys[{i}].{field}");
            if k.kid.is_empty() || !seen.insert(k.kid.clone()) {
                return Err(self.err(at("kid"), "must be non-empty and unique"));
            }
            let source_key = if k.private_key_env.is_some() {
                "private_key_env"
            } else {
                "private_key_file"
            };
            if k.private_key_env.is_some() && k.generate_if_missing.is_some() {
                return Err(self.err(
                    at("generate_if_missing"),
                    "works only with private_key_file",
                ));
            }
            let pem = match (&k.private_key_file, &k.private_key_env) {
                (Some(file), None) => {
                    let path = self.resolve(file);
                    std::fs::read(&path).map_err(|e| {
                        self.err(
                            at("private_key_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                }
                (None, Some(var)) => secrets
                    .env(var)
                    .ok_or_else(|| {
                        self.err(
                            at("private_key_env"),
                            format!("environment variable {var} is not set"),
                        )
                    })?
                    .into_bytes(),
                _ => {
                    return Err(self.err(
                        at("private_key_file"),
                        "set exactly one of private_key_file and private_key_env",
                    ));
                }
            };
            if let Some(org) = &k.org {
                check_org(org).map_err(|m| self.err(at("org"), m))?;
            }
            let key = ToolKey::from_pem(&k.kid, k.org.as_deref(), &pem)
                .map_err(|e| self.err(at(source_key), e.to_string()))?;
            out.push(key);
        }
        Ok(out)
    }

    fn platforms(
        &self,
        raw: Vec<raw::Platform>,
        keys: &[ToolKey],
        allow_http: bool,
    ) -> Result<Vec<PlatformConfig>, ConfigError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, p) in raw.into_iter().enumerate() {
            let at = |field: &str| format!("platforms[{i}].{field}");
            if p.issuer.is_empty() {
                return Err(self.err(at("issuer"), "must not be empty"));
            }
            if p.client_id.is_empty() {
                return Err(self.err(at("client_id"), "must not be empty"));
            }
            if !seen.insert((p.issuer.clone(), p.client_id.clone())) {
                return Err(self.err(
                    at("client_id"),
                    format!(
                        "another platform already has issuer {:?} and client_id {:?}",
                        p.issuer, p.client_id
                    ),
                ));
            }
            let url = |field: &str, value: &str| -> Result<Url, ConfigError> {
                let u = Url::parse(value)
                    .map_err(|e| self.err(at(field), format!("is not a URL: {e}")))?;
                match u.scheme() {
                    "https" => Ok(u),
                    "http" if allow_http => Ok(u),
                    _ => Err(self.err(
                        at(field),
                        "must be an https URL (http needs server.allow_http = true)",
                    )),
                }
            };
            let auth_login_url = url("auth_login_url", &p.auth_login_url)?;
            let auth_token_url = url("auth_token_url", &p.auth_token_url)?;
            let key_set = match (&p.key_set_url, &p.key_set) {
                (Some(u), None) => KeySetSource::Url(url("key_set_url", u)?),
                (None, Some(doc)) => {
                    let doc: serde_json::Value = serde_json::from_str(doc)
                        .map_err(|e| self.err(at("key_set"), format!("is not JSON: {e}")))?;
                    if crate::jwks::KeySet::from_jwks(&doc).is_empty() {
                        return Err(
                            self.err(at("key_set"), "holds no usable RSA signing key with a kid")
                        );
                    }
                    KeySetSource::Inline(doc)
                }
                _ => {
                    return Err(self.err(
                        at("key_set_url"),
                        "set exactly one of key_set_url and key_set",
                    ));
                }
            };
            let Some(tool_key) = keys.iter().find(|k| k.kid() == p.key) else {
                return Err(self.err(
                    at("key"),
                    format!("names kid {:?}, which no [[keys]] entry has", p.key),
                ));
            };
            if let Some(org) = &p.org {
                check_org(org).map_err(|m| self.err(at("org"), m))?;
                if tool_key.org().is_some_and(|ko| ko != org) {
                    return Err(self.err(at("key"), "belongs to another org than this platform"));
                }
            }
            if p.deployment_ids.is_empty() || p.deployment_ids.iter().any(String::is_empty) {
                return Err(self.err(
                    at("deployment_ids"),
                    "must list at least one non-empty deployment id",
                ));
            }
            let gate = p.gate.map(|g| self.gate(g, &at("gate"))).transpose()?;
            let service_origins = p
                .service_origins
                .iter()
                .map(|o| {
                    let parsed = url("service_origins", o)?;
                    if parsed.path() != "/" || parsed.query().is_some() || parsed.host_str().is_none() {
                        return Err(self.err(
                            at("service_origins"),
                            format!("{o:?} must be a scheme and host only, like https://school.instructure.com"),
                        ));
                    }
                    Ok(parsed.origin())
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(PlatformConfig {
                title: p.title.unwrap_or_else(|| p.issuer.clone()),
                active: p.active.unwrap_or(true),
                issuer: p.issuer,
                client_id: p.client_id,
                auth_login_url,
                auth_token_url,
                auth_audience: p.auth_audience,
                key_set,
                key: p.key,
                deployment_ids: p.deployment_ids.into_iter().collect(),
                org: p.org,
                gate,
                service_origins,
                allow_private_addresses: p.allow_private_addresses.unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn gate(&self, g: raw::Gate, at: &str) -> Result<LaunchGate, ConfigError> {
        let allowed_keys = g
            .allowed_keys
            .iter()
            .map(|k| {
                UsageKey::parse(k)
                    .map_err(|e| self.err(format!("{at}.allowed_keys"), format!("{k:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let allowed_courses = g
            .allowed_courses
            .iter()
            .map(|k| {
                CourseKey::parse(k)
                    .map_err(|e| self.err(format!("{at}.allowed_courses"), format!("{k:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        for org in &g.allowed_orgs {
            check_org(org)
                .map_err(|m| self.err(format!("{at}.allowed_orgs"), format!("{org:?}: {m}")))?;
        }
        let filter = |list: Vec<String>, key: String| -> Result<BlockFilter, ConfigError> {
            // The same characters a block type may have inside a usage key.
            let bad = |t: &String| {
                t.is_empty()
                    || !t.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'~' | b'.' | b':')
                    })
            };
            if list.iter().any(bad) {
                return Err(self.err(key, "block types are names like \"problem\" or \"html\""));
            }
            Ok(BlockFilter::new(list))
        };
        let mut course_block_filter = BTreeMap::new();
        for (course, list) in g.course_block_filter {
            let key = format!("{at}.course_block_filter.{course}");
            let c = CourseKey::parse(&course).map_err(|e| self.err(key.clone(), e.to_string()))?;
            course_block_filter.insert(c, filter(list, key)?);
        }
        let mut org_block_filter = BTreeMap::new();
        for (org, list) in g.org_block_filter {
            let key = format!("{at}.org_block_filter.{org}");
            check_org(&org).map_err(|m| self.err(key.clone(), m))?;
            org_block_filter.insert(org, filter(list, key)?);
        }
        Ok(LaunchGate {
            allowed_keys,
            allowed_courses,
            allowed_orgs: g.allowed_orgs.into_iter().collect(),
            block_filter: g
                .block_filter
                .map(|l| filter(l, format!("{at}.block_filter")))
                .transpose()?,
            course_block_filter,
            org_block_filter,
        })
    }
}

fn check_org(org: &str) -> Result<(), String> {
    if !org.is_empty()
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~'))
    {
        Ok(())
    } else {
        Err("an org is letters, digits, '_', '-', '.' or '~'".to_owned())
    }
}

/// The key files that `generate_if_missing` asks for and that do not exist
/// yet, as (kid, resolved path). Validation only reads key files; `serve`
/// creates these first (`generate_missing` in `cli/keygen.rs`).
pub fn missing_generated_keys(raw: &RawConfig, path: &Path) -> Vec<(String, PathBuf)> {
    let v = Validator {
        file: path,
        base: path.parent().unwrap_or(Path::new(".")),
    };
    raw.keys
        .iter()
        .filter(|k| k.generate_if_missing == Some(true) && k.private_key_env.is_none())
        .filter_map(|k| Some((k.kid.clone(), v.resolve(k.private_key_file.as_deref()?))))
        .filter(|(_, p)| !p.exists())
        .collect()
}

#[cfg(test)]
mod tests;
