//! Validation of `[deep_linking]`: the content picker (the LMS API it reads
//! is `[lms_api]`, see `lms_api.rs`).

use std::time::Duration;

use super::{ConfigError, Validator, raw};
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
        has_lms_api: bool,
    ) -> Result<Option<DeepLinkingConfig>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        // The LMS client itself is validated with [lms_api] (see lms_api.rs),
        // which also takes it from the lms_* keys here.
        if !has_lms_api {
            return Err(self.err(
                "deep_linking",
                "needs the LMS's OAuth2 client: add [lms_api] with client_id and client_secret (docs/configuration.md#lms_api)",
            ));
        }
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
            cache_ttl: Duration::from_secs(self.positive(
                "deep_linking.cache_ttl_sec",
                raw.cache_ttl_sec,
                DEFAULT_CATALOG_CACHE_TTL_SEC,
            )?),
        }))
    }
}
