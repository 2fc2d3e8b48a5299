//! Validation of `[grades]`: the internal score API and grade delivery.

use std::net::SocketAddr;
use std::time::Duration;

use super::{ConfigError, SecretSource, Validator, raw};
use crate::grades::GradesConfig;

pub const DEFAULT_GRADES_LISTEN: &str = "127.0.0.1:8081";
pub const DEFAULT_AGGREGATE_DELAY_SEC: u64 = 900;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_COMPOSITE_SCORE_URL: &str =
    "{upstream}/ltigate/score?user={username}&usage_key={usage_key}";
pub const DEFAULT_RESOURCE_TTL_DAYS: u64 = 365;
pub const DEFAULT_GRADES_REQUEST_TIMEOUT_SEC: u64 = 15;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_CONCURRENT_PER_PLATFORM: u64 = 4;
pub const DEFAULT_CONCURRENT_TOTAL: u64 = 32;
const MIN_TOKEN_BYTES: usize = 16;

impl Validator<'_> {
    pub(super) fn grades(
        &self,
        raw: Option<raw::Grades>,
        has_upstream: bool,
        secrets: &dyn SecretSource,
    ) -> Result<Option<GradesConfig>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        if !has_upstream {
            return Err(self.err(
                "grades",
                "needs [upstream] and [assertion]: scores are matched by upstream username",
            ));
        }
        let listen = raw
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_GRADES_LISTEN)
            .parse::<SocketAddr>()
            .map_err(|_| self.err("grades.listen", "must be an address like 127.0.0.1:8081"))?;
        let (field, token) = match (raw.token, raw.token_env) {
            (Some(t), None) => ("grades.token", t),
            (None, Some(var)) => (
                "grades.token_env",
                secrets.env(&var).ok_or_else(|| {
                    self.err(
                        "grades.token_env",
                        format!("environment variable {var} is not set"),
                    )
                })?,
            ),
            _ => {
                return Err(self.err(
                    "grades.token",
                    "set exactly one of token and token_env: the bearer token the LMS sends",
                ));
            }
        };
        if token.len() < MIN_TOKEN_BYTES || token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(self.err(
                field,
                format!("must be at least {MIN_TOKEN_BYTES} printable characters without spaces"),
            ));
        }
        let composite_score_url = raw
            .composite_score_url
            .unwrap_or_else(|| DEFAULT_COMPOSITE_SCORE_URL.to_owned());
        let sample = composite_score_url
            .replace("{upstream}", "http://lms")
            .replace("{username}", "u")
            .replace("{usage_key}", "k")
            .replace("{course_key}", "c");
        if url::Url::parse(&sample).is_err()
            || !composite_score_url.contains("{usage_key}")
            || sample.contains(['{', '}'])
        {
            return Err(self.err(
                "grades.composite_score_url",
                "must be a URL template with {usage_key} (and {username}, {upstream}, {course_key} as needed)",
            ));
        }
        let max_attempts = match raw.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS) {
            0 => return Err(self.err("grades.max_attempts", "must be greater than 0")),
            n => n,
        };
        let per_platform = self.positive(
            "grades.concurrent_per_platform",
            raw.concurrent_per_platform,
            DEFAULT_CONCURRENT_PER_PLATFORM,
        )?;
        let total = self.positive(
            "grades.concurrent_total",
            raw.concurrent_total,
            DEFAULT_CONCURRENT_TOTAL,
        )?;
        if per_platform > total {
            return Err(self.err(
                "grades.concurrent_per_platform",
                format!("must not exceed grades.concurrent_total ({total})"),
            ));
        }
        Ok(Some(GradesConfig {
            listen,
            token,
            aggregate_delay_sec: raw
                .aggregate_delay_sec
                .unwrap_or(DEFAULT_AGGREGATE_DELAY_SEC),
            max_attempts,
            composite_score_url,
            resource_ttl_sec: self.positive(
                "grades.resource_ttl_days",
                raw.resource_ttl_days,
                DEFAULT_RESOURCE_TTL_DAYS,
            )? * 86_400,
            request_timeout: Duration::from_secs(self.positive(
                "grades.request_timeout_sec",
                raw.request_timeout_sec,
                DEFAULT_GRADES_REQUEST_TIMEOUT_SEC,
            )?),
            poll_interval: Duration::from_millis(self.positive(
                "grades.poll_interval_ms",
                raw.poll_interval_ms,
                DEFAULT_POLL_INTERVAL_MS,
            )?),
            concurrent_per_platform: per_platform.try_into().unwrap_or(usize::MAX),
            concurrent_total: total.try_into().unwrap_or(usize::MAX),
        }))
    }
}
