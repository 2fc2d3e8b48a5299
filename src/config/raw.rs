//! The config file exactly as written: serde structs, no validation.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Server,
    pub store: Option<Store>,
    pub session: Option<Session>,
    pub jwks: Option<Jwks>,
    #[serde(default)]
    pub keys: Vec<Key>,
    #[serde(default)]
    pub platforms: Vec<Platform>,
    pub upstream: Option<Upstream>,
    pub assertion: Option<Assertion>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    pub grades: Option<Grades>,
    pub deep_linking: Option<DeepLinking>,
    pub lms_api: Option<LmsApi>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmsApi {
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub client_id_env: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub request_timeout_sec: Option<u64>,
    pub tree_cache_ttl_sec: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepLinking {
    pub token_ttl_sec: Option<u64>,
    pub accepted_roles: Option<Vec<String>>,
    pub lms_url: Option<String>,
    pub lms_client_id: Option<String>,
    pub lms_client_id_env: Option<String>,
    pub lms_client_secret: Option<String>,
    pub lms_client_secret_env: Option<String>,
    pub cache_ttl_sec: Option<u64>,
    pub request_timeout_sec: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grades {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub aggregate_delay_sec: Option<u64>,
    pub max_attempts: Option<u32>,
    pub composite_score_url: Option<String>,
    pub resource_ttl_days: Option<u64>,
    pub request_timeout_sec: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub concurrent_per_platform: Option<u64>,
    pub concurrent_total: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: String,
    pub host: Option<String>,
    pub connect_timeout_sec: Option<u64>,
    pub response_header_timeout_sec: Option<u64>,
    pub request_timeout_sec: Option<u64>,
    pub display_path: Option<String>,
    pub display_query: Option<String>,
    pub block_access: Option<String>,
    pub max_request_body_bytes: Option<u64>,
    pub cookie_domain: Option<String>,
    pub strip_request_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    pub header: Option<String>,
    pub audience: Option<String>,
    pub key: Option<String>,
    pub ttl_sec: Option<u64>,
    pub username_key: Option<String>,
    pub username_key_env: Option<String>,
    pub identity_headers: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub scope: String,
    pub path: String,
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: Option<String>,
    pub public_url: String,
    pub allow_http: Option<bool>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub header_read_timeout_sec: Option<u64>,
    pub tls_handshake_timeout_sec: Option<u64>,
    pub shutdown_grace_sec: Option<u64>,
    pub body_read_timeout_sec: Option<u64>,
    pub body_min_bytes_per_sec: Option<u64>,
    pub idle_timeout_sec: Option<u64>,
    pub http2_keep_alive_interval_sec: Option<u64>,
    pub http2_max_concurrent_streams: Option<u32>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub key_prefix: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub cookie_name: Option<String>,
    pub lifetime_sec: Option<u64>,
    pub access_length_sec: Option<u64>,
    pub login_state_ttl_sec: Option<u64>,
    pub leeway_sec: Option<u64>,
    pub partitioned_cookies: Option<bool>,
    pub max_grants: Option<usize>,
    pub lms_logout_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub cache_ttl_sec: Option<u64>,
    pub min_refetch_interval_sec: Option<u64>,
    pub fetch_timeout_sec: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub kid: String,
    pub private_key_file: Option<String>,
    pub private_key_env: Option<String>,
    pub generate_if_missing: Option<bool>,
    pub org: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    pub title: Option<String>,
    pub active: Option<bool>,
    pub issuer: String,
    pub client_id: String,
    pub auth_login_url: String,
    pub auth_token_url: String,
    pub auth_audience: Option<String>,
    pub key_set_url: Option<String>,
    pub key_set: Option<String>,
    pub key: String,
    #[serde(default)]
    pub deployment_ids: Vec<String>,
    pub org: Option<String>,
    pub gate: Option<Gate>,
    #[serde(default)]
    pub service_origins: Vec<String>,
    pub allow_private_addresses: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    #[serde(default)]
    pub allowed_keys: Vec<String>,
    #[serde(default)]
    pub allowed_courses: Vec<String>,
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
    pub block_filter: Option<Vec<String>>,
    #[serde(default)]
    pub course_block_filter: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub org_block_filter: BTreeMap<String, Vec<String>>,
}
