//! Validation of `[deep_linking]`: the content picker and the LMS API it reads.

use std::time::Duration;

use url::Url;

use super::{ConfigError, SecretSource, Validator, raw};
use crate::deep_linking::DeepLinkingConfig;

pub const DEFAULT_DL_TOKEN_TTL_SEC: u64 = 1800;
pub const DEFAULT_CATALOG_CACHE_TTL_SEC: u64 = 300;
/// The Open edX plugin's accepted roles for deep linking.
pub const DEFAULT_ACCEPTED_ROLES: &[&str] = &[
    "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator",
    "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator",
    "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor",
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator",
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
    "http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper",
];

impl Validator<'_> {
    pub(super) fn deep_linking(
        &self,
        raw: Option<raw::DeepLinking>,
        upstream: Option<&Url>,
        secrets: &dyn SecretSource,
    ) -> Result<Option<DeepLinkingConfig>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let lms_url = match (raw.lms_url, upstream) {
            (Some(u), _) => {
                let url = Url::parse(&u)
                    .map_err(|e| self.err("deep_linking.lms_url", format!("is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(self.err("deep_linking.lms_url", "must be an http(s) URL"));
                }
                url
            }
            (None, Some(u)) => u.clone(),
            (None, None) => {
                return Err(self.err("deep_linking.lms_url", "is required without an [upstream]"));
            }
        };
        let secret = |inline: Option<String>,
                      env: Option<String>,
                      name: &str|
         -> Result<String, ConfigError> {
            match (inline, env) {
                (Some(v), None) if !v.is_empty() => Ok(v),
                (None, Some(var)) => secrets.env(&var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    self.err(
                        format!("deep_linking.{name}_env"),
                        format!("environment variable {var} is not set"),
                    )
                }),
                _ => Err(self.err(
                    format!("deep_linking.{name}"),
                    format!("set exactly one of {name} and {name}_env (the LMS OAuth2 client)"),
                )),
            }
        };
        let client_id = secret(raw.lms_client_id, raw.lms_client_id_env, "lms_client_id")?;
        let client_secret = secret(
            raw.lms_client_secret,
            raw.lms_client_secret_env,
            "lms_client_secret",
        )?;
        let accepted_roles = raw.accepted_roles.unwrap_or_else(|| {
            DEFAULT_ACCEPTED_ROLES
                .iter()
                .map(|r| (*r).to_owned())
                .collect()
        });
        if accepted_roles.is_empty() || accepted_roles.iter().any(String::is_empty) {
            return Err(self.err(
                "deep_linking.accepted_roles",
                "must list at least one role URI",
            ));
        }
        Ok(Some(DeepLinkingConfig {
            token_ttl_sec: self.positive(
                "deep_linking.token_ttl_sec",
                raw.token_ttl_sec,
                DEFAULT_DL_TOKEN_TTL_SEC,
            )?,
            accepted_roles,
            lms_url,
            client_id,
            client_secret,
            cache_ttl: Duration::from_secs(self.positive(
                "deep_linking.cache_ttl_sec",
                raw.cache_ttl_sec,
                DEFAULT_CATALOG_CACHE_TTL_SEC,
            )?),
            request_timeout: Duration::from_secs(self.positive(
                "deep_linking.request_timeout_sec",
                raw.request_timeout_sec,
                15,
            )?),
        }))
    }
}
