//! Validation of `[upstream]`, `[assertion]` and `[[rules]]`: the LMS behind
//! the gateway, how it learns who the learner is, and which paths it serves.

use std::time::Duration;

use http::HeaderName;
use url::Url;

use super::{ConfigError, SecretSource, Validator, raw};
use crate::assertion::AssertionConfig;
use crate::http::server::ServerConfig;
use crate::keys::ToolKey;
use crate::proxy::UpstreamConfig;
use crate::rules::Rule;

pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SEC: u64 = 5;
pub const DEFAULT_UPSTREAM_RESPONSE_HEADER_TIMEOUT_SEC: u64 = 60;
pub const DEFAULT_UPSTREAM_REQUEST_TIMEOUT_SEC: u64 = 300;
pub const DEFAULT_DISPLAY_PATH: &str = "/ltigate/xblock/{usage_key}";
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_ASSERTION_HEADER: &str = "X-Ltigate-Assertion";
pub const DEFAULT_ASSERTION_AUDIENCE: &str = "openedx";
pub const DEFAULT_ASSERTION_TTL_SEC: u64 = 300;
/// The assertion never lives longer than this.
pub const MAX_ASSERTION_TTL_SEC: u64 = 300;
const MIN_USERNAME_KEY_BYTES: usize = 16;

impl Validator<'_> {
    pub(super) fn upstream(
        &self,
        raw: Option<raw::Upstream>,
        assertion: Option<raw::Assertion>,
        keys: &[ToolKey],
        server: &ServerConfig,
        secrets: &dyn SecretSource,
    ) -> Result<(Option<UpstreamConfig>, Option<AssertionConfig>), ConfigError> {
        let Some(raw) = raw else {
            if assertion.is_some() {
                return Err(self.err("assertion", "needs an [upstream] to send it to"));
            }
            return Ok((None, None));
        };
        let url = Url::parse(&raw.url)
            .map_err(|e| self.err("upstream.url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.path() != "/"
            || url.query().is_some()
            || !url.username().is_empty()
        {
            return Err(self.err(
                "upstream.url",
                "must be an http(s) scheme and host only, like http://lms:8000",
            ));
        }
        let host = raw
            .host
            .map(|h| {
                h.parse::<http::uri::Authority>()
                    .ok()
                    .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
                    .ok_or_else(|| {
                        self.err(
                            "upstream.host",
                            "must be a host name, optionally with a port",
                        )
                    })
            })
            .transpose()?;
        let display_path = raw
            .display_path
            .unwrap_or_else(|| DEFAULT_DISPLAY_PATH.to_owned());
        let rendered = display_path
            .replace("{usage_key}", "u")
            .replace("{course_key}", "c");
        if !display_path.starts_with('/')
            || !display_path.contains("{usage_key}")
            || rendered.contains(['{', '}', '?', '#'])
            || rendered.parse::<http::uri::PathAndQuery>().is_err()
        {
            return Err(self.err(
                "upstream.display_path",
                "must be a path containing {usage_key} (and optionally {course_key}), like /xblock/{usage_key}",
            ));
        }
        if let Some(q) = &raw.display_query
            && (q.starts_with('?') || format!("/?{q}").parse::<http::uri::PathAndQuery>().is_err())
        {
            {
                return Err(self.err(
                    "upstream.display_query",
                    "must be a query string without '?', like view=student_view",
                ));
            }
        }
        let cookie_domain = match raw.cookie_domain {
            Some(d) => {
                let d = d.trim_start_matches('.').to_ascii_lowercase();
                if d.is_empty() || url::Host::parse(&d).is_err() || d.contains(':') {
                    return Err(self.err(
                        "upstream.cookie_domain",
                        "must be a host name, like lms.example.edu (the LMS's SESSION_COOKIE_DOMAIN)",
                    ));
                }
                Some(d)
            }
            None => host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| a.host().to_ascii_lowercase()),
        };
        let strip_request_headers = raw
            .strip_request_headers
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                let name = entry.strip_suffix('*').unwrap_or(entry);
                http::HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .filter(|_| !name.contains('*'))
                    .map(|n| {
                        let dashed = n.as_str().replace('_', "-");
                        if entry.ends_with('*') {
                            dashed + "*"
                        } else {
                            dashed
                        }
                    })
                    .ok_or_else(|| {
                        self.err(
                            "upstream.strip_request_headers",
                            format!(
                                "{entry:?} is not a header name (a trailing * matches a prefix, like \"X-Corp-*\")"
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let upstream = UpstreamConfig {
            url,
            strip_request_headers,
            host,
            cookie_domain,
            connect_timeout: Duration::from_secs(self.positive(
                "upstream.connect_timeout_sec",
                raw.connect_timeout_sec,
                DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SEC,
            )?),
            response_header_timeout: Duration::from_secs(self.positive(
                "upstream.response_header_timeout_sec",
                raw.response_header_timeout_sec,
                DEFAULT_UPSTREAM_RESPONSE_HEADER_TIMEOUT_SEC,
            )?),
            request_timeout: Duration::from_secs(self.positive(
                "upstream.request_timeout_sec",
                raw.request_timeout_sec,
                DEFAULT_UPSTREAM_REQUEST_TIMEOUT_SEC,
            )?),
            display_path,
            display_query: raw.display_query.filter(|q| !q.is_empty()),
            max_request_body_bytes: self.positive(
                "upstream.max_request_body_bytes",
                raw.max_request_body_bytes,
                DEFAULT_MAX_REQUEST_BODY_BYTES,
            )?,
        };
        let assertion = self.assertion(assertion.unwrap_or_default(), keys, server, secrets)?;
        Ok((Some(upstream), Some(assertion)))
    }

    fn assertion(
        &self,
        raw: raw::Assertion,
        keys: &[ToolKey],
        _server: &ServerConfig,
        secrets: &dyn SecretSource,
    ) -> Result<AssertionConfig, ConfigError> {
        let header = raw
            .header
            .unwrap_or_else(|| DEFAULT_ASSERTION_HEADER.to_owned());
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| self.err("assertion.header", "is not a valid header name"))?;
        let key = match raw.key {
            Some(kid) if keys.iter().any(|k| k.kid() == kid) => kid,
            Some(kid) => {
                return Err(self.err(
                    "assertion.key",
                    format!("names kid {kid:?}, which no [[keys]] entry has"),
                ));
            }
            None => keys
                .first()
                .map(|k| k.kid().to_owned())
                .ok_or_else(|| self.err("assertion.key", "needs a [[keys]] entry"))?,
        };
        let ttl_sec = match raw.ttl_sec.unwrap_or(DEFAULT_ASSERTION_TTL_SEC) {
            t @ 1..=MAX_ASSERTION_TTL_SEC => t,
            _ => {
                return Err(self.err(
                    "assertion.ttl_sec",
                    format!("must be between 1 and {MAX_ASSERTION_TTL_SEC}"),
                ));
            }
        };
        let (field, username_key) = match (raw.username_key, raw.username_key_env) {
            (Some(k), None) => ("assertion.username_key", k),
            (None, Some(var)) => (
                "assertion.username_key_env",
                secrets.env(&var).ok_or_else(|| {
                    self.err(
                        "assertion.username_key_env",
                        format!("environment variable {var} is not set"),
                    )
                })?,
            ),
            _ => {
                return Err(self.err(
                    "assertion.username_key",
                    "set exactly one of username_key and username_key_env: the secret that derives stable LMS usernames",
                ));
            }
        };
        if username_key.len() < MIN_USERNAME_KEY_BYTES {
            return Err(self.err(
                field,
                format!("must be at least {MIN_USERNAME_KEY_BYTES} characters"),
            ));
        }
        Ok(AssertionConfig {
            header,
            audience: raw
                .audience
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| DEFAULT_ASSERTION_AUDIENCE.to_owned()),
            key,
            ttl_sec,
            username_key: username_key.into_bytes(),
            identity_headers: raw.identity_headers.unwrap_or(false),
        })
    }

    pub(super) fn rules(&self, raw: Vec<raw::Rule>) -> Result<Vec<Rule>, ConfigError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, r)| {
                Rule::parse(&r.scope, &r.path, r.methods.as_deref())
                    .map_err(|(field, m)| self.err(format!("rules[{i}].{field}"), m))
            })
            .collect()
    }
}
