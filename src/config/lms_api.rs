//! Validation of `[lms_api]` (the LMS's REST APIs and the OAuth2 client
//! ltigate uses there) and of `[upstream] block_access`, which needs it.

use std::time::Duration;

use url::Url;

use super::{ConfigError, SecretSource, Validator, raw};
use crate::course_tree::BlockAccess;
use crate::lms_api::LmsApiConfig;

pub const DEFAULT_LMS_API_REQUEST_TIMEOUT_SEC: u64 = 15;
pub const DEFAULT_TREE_CACHE_TTL_SEC: u64 = 300;

/// Where the client's settings were written: `[lms_api]`, or (as before
/// `[lms_api]` existed) `[deep_linking]` with `lms_`-prefixed names.
struct Source {
    table: &'static str,
    prefix: &'static str,
}

impl Validator<'_> {
    pub(super) fn lms_api(
        &self,
        lms: Option<raw::LmsApi>,
        deep_linking: Option<&raw::DeepLinking>,
        upstream: Option<&Url>,
        secrets: &dyn SecretSource,
    ) -> Result<Option<LmsApiConfig>, ConfigError> {
        let named_in_deep_linking = deep_linking.is_some_and(|d| {
            d.lms_url.is_some()
                || d.lms_client_id.is_some()
                || d.lms_client_id_env.is_some()
                || d.lms_client_secret.is_some()
                || d.lms_client_secret_env.is_some()
                || d.request_timeout_sec.is_some()
        });
        let (source, url, id, id_env, secret, secret_env, timeout) = match (lms, deep_linking) {
            (Some(_), Some(_)) if named_in_deep_linking => {
                return Err(self.err(
                    "deep_linking.lms_client_id",
                    "the LMS client is set in [lms_api]: remove the lms_* keys (and request_timeout_sec) from [deep_linking]",
                ));
            }
            (Some(l), _) => (
                Source {
                    table: "lms_api",
                    prefix: "",
                },
                l.url,
                l.client_id,
                l.client_id_env,
                l.client_secret,
                l.client_secret_env,
                l.request_timeout_sec,
            ),
            (None, Some(d)) => (
                Source {
                    table: "deep_linking",
                    prefix: "lms_",
                },
                d.lms_url.clone(),
                d.lms_client_id.clone(),
                d.lms_client_id_env.clone(),
                d.lms_client_secret.clone(),
                d.lms_client_secret_env.clone(),
                d.request_timeout_sec,
            ),
            (None, None) => return Ok(None),
        };
        let key = |name: &str| format!("{}.{}{name}", source.table, source.prefix);
        let url = match (url, upstream) {
            (Some(u), _) => {
                let url = Url::parse(&u)
                    .map_err(|e| self.err(key("url"), format!("is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(self.err(key("url"), "must be an http(s) URL"));
                }
                url
            }
            (None, Some(u)) => u.clone(),
            (None, None) => {
                return Err(self.err(key("url"), "is required without an [upstream]"));
            }
        };
        let secret_of = |inline: Option<String>,
                         env: Option<String>,
                         name: &str|
         -> Result<String, ConfigError> {
            match (inline, env) {
                (Some(v), None) if !v.is_empty() => Ok(v),
                (None, Some(var)) => secrets.env(&var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    self.err(
                        key(&format!("{name}_env")),
                        format!("environment variable {var} is not set"),
                    )
                }),
                _ => Err(self.err(
                    key(name),
                    format!(
                        "set exactly one of {p}{name} and {p}{name}_env (the LMS OAuth2 client)",
                        p = source.prefix
                    ),
                )),
            }
        };
        let client_id = secret_of(id, id_env, "client_id")?;
        let client_secret = secret_of(secret, secret_env, "client_secret")?;
        let request_timeout = Duration::from_secs(self.positive(
            &format!("{}.request_timeout_sec", source.table),
            timeout,
            DEFAULT_LMS_API_REQUEST_TIMEOUT_SEC,
        )?);
        Ok(Some(LmsApiConfig {
            url,
            client_id,
            client_secret,
            request_timeout,
        }))
    }

    pub(super) fn block_access(
        &self,
        raw: Option<&str>,
        has_upstream: bool,
        has_lms_api: bool,
        tree_ttl_sec: Option<u64>,
    ) -> Result<BlockAccess, ConfigError> {
        let cache_ttl = Duration::from_secs(self.positive(
            "lms_api.tree_cache_ttl_sec",
            tree_ttl_sec,
            DEFAULT_TREE_CACHE_TTL_SEC,
        )?);
        match raw.unwrap_or("subtree") {
            "course" => Ok(BlockAccess::Course),
            "subtree" if has_upstream && !has_lms_api => Err(self.err(
                "upstream.block_access",
                "is \"subtree\" (the default): XBlock handlers and renders are opened only under the launched block, \
                 and ltigate reads that tree from the LMS's Course Blocks API. Add [lms_api] with the OAuth2 client of \
                 a staff service user (docs/configuration.md#lms_api), or set block_access = \"course\" for the \
                 Open edX LTI plugin's access to every block of the launched course",
            )),
            "subtree" => Ok(BlockAccess::Subtree { cache_ttl }),
            other => Err(self.err(
                "upstream.block_access",
                format!("must be \"subtree\" or \"course\", not {other:?}"),
            )),
        }
    }
}
