//! The internal score API, on its own listener (loopback by default).
//!
//! - `POST /scores`: a score change from the LMS. 202 once every delivery it
//!   causes is stored; 400 with `{"error", "field"}` for malformed input;
//!   404 for a user ltigate has no graded resource for. Input is validated
//!   in full before anything is written.
//! - `GET /deliveries[?failed=1]`, `POST /deliveries/<id>/retry`,
//!   `POST /deliveries/retry-failed`: what `ltigate grades` uses.
//!
//! Every request needs `Authorization: Bearer <grades.token>`, compared in
//! constant time.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::queue::{self, Delivery, Score, State};
use super::worker::due_at;
use crate::app::AppState;
use crate::content::{CourseKey, UsageKey};
use crate::session::UserRef;
use crate::store::{Namespace, StoreError};
use crate::{Body, BoxError, full_body};

/// Largest score event accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most ancestors one event may list.
const MAX_ANCESTORS: usize = 64;

fn reply(status: StatusCode, body: Value) -> Response<Body> {
    let mut r = Response::new(full_body(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A refused score event: its status, the field at fault and why.
struct Refusal {
    status: StatusCode,
    field: String,
    error: String,
}

impl Refusal {
    fn response(self) -> Response<Body> {
        if self.status.is_server_error() {
            tracing::error!(error = %self.error, "score API: store unavailable");
            return reply(
                self.status,
                json!({"error": "the store is unavailable; retry later"}),
            );
        }
        reply(
            self.status,
            json!({"error": self.error, "field": self.field}),
        )
    }
}

fn bad(field: &str, error: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        field: field.to_owned(),
        error: error.to_owned(),
    }
}

fn unavailable(e: &StoreError) -> Response<Body> {
    tracing::error!(error = %e, "score API: store unavailable");
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "the store is unavailable; retry later"}),
    )
}

/// Handles one request to the internal API.
pub async fn handle<B>(app: Arc<AppState>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let Some(config) = &app.config.grades else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "grade passback is not configured"}),
        );
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(config.token.as_bytes())) {
        tracing::warn!(
            path = req.uri().path(),
            "score API: bad or missing bearer token"
        );
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a valid bearer token is required"}),
        );
    }
    let path = req.uri().path().to_owned();
    let now = app.clock.now();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/scores") => scores(&app, req).await,
        (Method::GET, "/deliveries") => {
            let failed = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "failed=1" || p == "failed=true"));
            match queue::list(app.store.as_ref(), failed).await {
                Ok(list) => reply(StatusCode::OK, json!({ "deliveries": list })),
                Err(e) => unavailable(&e),
            }
        }
        (Method::POST, "/deliveries/retry-failed") => {
            match queue::retry_failed(app.store.as_ref(), now).await {
                Ok(n) => {
                    wake(&app);
                    reply(StatusCode::OK, json!({ "requeued": n }))
                }
                Err(e) => unavailable(&e),
            }
        }
        (Method::POST, p) if p.starts_with("/deliveries/") && p.ends_with("/retry") => {
            let id = &p["/deliveries/".len()..p.len() - "/retry".len()];
            match queue::retry(app.store.as_ref(), id, now).await {
                Ok(true) => {
                    wake(&app);
                    reply(StatusCode::OK, json!({ "requeued": 1 }))
                }
                Ok(false) => reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": "no such delivery", "field": "id"}),
                ),
                Err(e) => unavailable(&e),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "no such endpoint"})),
    }
}

fn wake(app: &AppState) {
    if let Some(rt) = &app.grades {
        rt.wake.notify_one();
    }
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

async fn scores<B>(app: &AppState, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt as _;
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return bad("body", "the body is unreadable or larger than 64 KiB").response(),
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return bad("body", "the body must be a JSON object").response();
    };
    let event = match validate(app, &fields).await {
        Ok(e) => e,
        Err(refusal) => return refusal.response(),
    };
    let Some(config) = &app.config.grades else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "grade passback is not configured"}),
        );
    };
    let now = app.clock.now();

    // Everything is checked; now find what to deliver and store it.
    let mut queued = Vec::new();
    for key in std::iter::once(&event.usage).chain(event.ancestors.iter()) {
        let resources = match super::resources_of(app, &event.username, key).await {
            Ok(r) => r,
            Err(e) => return unavailable(&e),
        };
        for resource in resources {
            let score = if resource.usage_key == event.usage {
                Score::Leaf {
                    earned: event.earned,
                    possible: event.possible,
                }
            } else {
                Score::Composite
            };
            let due = due_at(&score, now, config);
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
            match queue::enqueue(app.store.as_ref(), &delivery, due).await {
                Ok(id) => queued.push(json!({"id": id, "kind": kind, "due_at": due})),
                Err(e) => return unavailable(&e),
            }
        }
    }
    wake(app);
    tracing::info!(usage_key = %event.usage, deliveries = queued.len(), "score change accepted");
    reply(StatusCode::ACCEPTED, json!({ "queued": queued }))
}

async fn validate(app: &AppState, f: &Map<String, Value>) -> Result<ScoreEvent, Refusal> {
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
    let text = |name: &str| -> Result<&str, Refusal> {
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
    let number = |name: &str| -> Result<f64, Refusal> {
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
            match &app.proxy {
                Some((_, asserter)) => asserter.username(&user),
                None => return Err(bad("lti", "not supported without an [upstream]")),
            }
        }
        _ => {
            return Err(bad(
                "username",
                "give exactly one of username (a string) and lti (an object)",
            ));
        }
    };
    match app.store.get(Namespace::GradedUser, &username).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                field: "username".into(),
                error: "unknown user: no graded launch is recorded for this user".into(),
            });
        }
        Err(e) => {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                field: String::new(),
                error: e.to_string(),
            });
        }
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
