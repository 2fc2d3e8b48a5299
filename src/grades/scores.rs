//! Score changes from the LMS: validated in full, then turned into deliveries.
//!
//! A score event names the learner (by gateway username, or by the LTI
//! identity the username is derived from), the block, its score and when it
//! changed, and the block's ancestors. Nothing is written until the whole
//! event has been checked. Each graded resource recorded under the block or
//! one of its ancestors gets one delivery: the block's own score at once, an
//! ancestor's composite score after `aggregate_delay_sec`.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Grades;
use super::queue::{self, Delivery, Score, State};
use super::worker::due_at;
use crate::clock::UnixTime;
use crate::content::{CourseKey, UsageKey};
use crate::session::UserRef;
use crate::store::{Namespace, StoreError};

/// Most ancestors one event may list.
const MAX_ANCESTORS: usize = 64;

/// Why a score event was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The event is malformed: `field` is at fault.
    #[error("{field}: {error}")]
    Invalid { field: String, error: String },
    #[error("unknown user: no graded launch is recorded for this user")]
    UnknownUser,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(field: &str, error: &str) -> ScoreError {
    ScoreError::Invalid {
        field: field.to_owned(),
        error: error.to_owned(),
    }
}

/// One delivery a score event caused.
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    pub id: String,
    /// `leaf` or `composite`.
    pub kind: &'static str,
    pub due_at: UnixTime,
}

/// A validated score event.
struct ScoreEvent {
    username: String,
    usage: UsageKey,
    earned: f64,
    possible: f64,
    timestamp: String,
    ancestors: Vec<UsageKey>,
}

impl Grades {
    /// Accepts a score change: validates all of it, then stores every
    /// delivery it causes, and returns them.
    pub async fn accept_score(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<Vec<Queued>, ScoreError> {
        let event = self.validate(fields).await?;
        let now = self.clock.now();
        let mut queued = Vec::new();
        for key in std::iter::once(&event.usage).chain(event.ancestors.iter()) {
            for resource in self.resources_of(&event.username, key).await? {
                let score = if resource.usage_key == event.usage {
                    Score::Leaf {
                        earned: event.earned,
                        possible: event.possible,
                    }
                } else {
                    Score::Composite
                };
                let due = due_at(&score, now, &self.config);
                let kind = match score {
                    Score::Leaf { .. } => "leaf",
                    Score::Composite => "composite",
                };
                let delivery = Delivery {
                    resource,
                    score,
                    timestamp: event.timestamp.clone(),
                    attempts: 0,
                    state: State::Pending,
                    last_error: None,
                    created_at: now,
                };
                let id = queue::enqueue(self.store.as_ref(), &delivery, due).await?;
                queued.push(Queued {
                    id,
                    kind,
                    due_at: due,
                });
            }
        }
        self.wake();
        tracing::info!(usage_key = %event.usage, deliveries = queued.len(), "score change accepted");
        Ok(queued)
    }

    async fn validate(&self, f: &Map<String, Value>) -> Result<ScoreEvent, ScoreError> {
        const KNOWN: &[&str] = &[
            "username",
            "lti",
            "course_key",
            "usage_key",
            "earned",
            "possible",
            "modified",
            "ancestors",
        ];
        if let Some(unknown) = f.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(unknown, "unknown field"));
        }
        let text = |name: &str| -> Result<&str, ScoreError> {
            f.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(name, "required, a non-empty string"))
        };
        let course =
            CourseKey::parse(text("course_key")?).map_err(|e| bad("course_key", &e.to_string()))?;
        let usage =
            UsageKey::parse(text("usage_key")?).map_err(|e| bad("usage_key", &e.to_string()))?;
        if usage.course_key() != course {
            return Err(bad("usage_key", "the usage key is not in course_key"));
        }
        let number = |name: &str| -> Result<f64, ScoreError> {
            f.get(name)
                .and_then(Value::as_f64)
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| bad(name, "required, a non-negative number"))
        };
        let earned = number("earned")?;
        let possible = number("possible")?;
        if possible <= 0.0 {
            return Err(bad("possible", "must be greater than 0"));
        }
        if earned > possible {
            return Err(bad("earned", "must not exceed possible"));
        }
        let modified = OffsetDateTime::parse(text("modified")?, &Rfc3339).map_err(|_| {
            bad(
                "modified",
                "must be an RFC 3339 timestamp, like 2026-11-27T10:00:00.123Z",
            )
        })?;
        let ancestors = match f.get("ancestors") {
            None => Vec::new(),
            Some(Value::Array(list)) if list.len() <= MAX_ANCESTORS => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .and_then(|s| UsageKey::parse(s).ok())
                        .filter(|k| k.course_key() == course)
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("ancestors", "must list usage keys of the same course"))?,
            Some(_) => {
                return Err(bad(
                    "ancestors",
                    "must be an array of at most 64 usage keys",
                ));
            }
        };
        let username = match (f.get("username"), f.get("lti")) {
            (Some(Value::String(u)), None) if !u.is_empty() => u.clone(),
            (None, Some(Value::Object(lti))) => {
                let part = |name: &str| {
                    lti.get(name)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| bad(&format!("lti.{name}"), "required, a non-empty string"))
                };
                let user = UserRef {
                    issuer: part("issuer")?,
                    client_id: part("client_id")?,
                    sub: part("sub")?,
                };
                self.usernames.of(&user)
            }
            _ => {
                return Err(bad(
                    "username",
                    "give exactly one of username (a string) and lti (an object)",
                ));
            }
        };
        if self
            .store
            .get(Namespace::GradedUser, &username)
            .await?
            .is_none()
        {
            return Err(ScoreError::UnknownUser);
        }
        Ok(ScoreEvent {
            username,
            usage,
            earned,
            possible,
            timestamp: format_timestamp(modified),
            ancestors,
        })
    }
}

/// ISO 8601 in UTC with milliseconds, as AGS platforms expect.
fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let t = OffsetDateTime::parse("2026-11-27T11:00:00.5+01:00", &Rfc3339).expect("parse");
        assert_eq!(format_timestamp(t), "2026-11-27T10:00:00.500Z");
        let t = OffsetDateTime::parse("2026-01-02T03:04:05Z", &Rfc3339).expect("parse");
        assert_eq!(format_timestamp(t), "2026-01-02T03:04:05.000Z");
    }
}
