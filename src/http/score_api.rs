//! Routing for the internal score API, on its own listener (loopback by
//! default). The [`crate::grades::Grades`] service does the work.
//!
//! - `POST /scores`: a score change from the LMS. 202 with the deliveries
//!   it caused, once they are stored; 400 with `{"error", "field"}` for
//!   malformed input; 404 for a user ltigate has no graded resource for.
//! - `GET /deliveries[?failed=1]`, `POST /deliveries/<id>/retry`,
//!   `POST /deliveries/retry-failed`: what `ltigate grades` uses.
//! - `POST /sessions/revoke?issuer=&client_id=[&sub=]`: what `ltigate
//!   sessions revoke` uses (see [`revoke`]).
//!
//! Every request needs `Authorization: Bearer <grades.token>`, compared in
//! constant time. Errors are rendered as JSON by [`super::reject`], from
//! the same table as the public listener's pages.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use super::RequestId;
use super::app::{Gateway, PeerAddr};
use super::form::FormError;
use super::reject::Rejection;
use crate::grades::{Grades, ScoreError};
use crate::{Body, BoxError, full_body};

/// Largest score event accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

fn reply(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(full_body(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Handles one request to the internal API, and logs it.
pub async fn handle<B>(app: Arc<Gateway>, req: Request<B>, _peer: PeerAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let id = RequestId::new();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (mut response, decision) = match app.grades.as_deref() {
        Some(grades) if path.starts_with("/sessions/") => match revoke(&app, grades, &req).await {
            Ok(response) => (response, "revoke"),
            Err(rejection) => rejection.into_json(id.as_str()),
        },
        Some(grades) => match route(grades, req).await {
            Ok(response) => (response, "score_api"),
            Err(rejection) => rejection.into_json(id.as_str()),
        },
        None => Rejection::NoSuchEndpoint.into_json(id.as_str()),
    };
    crate::logging::access(&crate::logging::Access {
        request_id: id.as_str(),
        method: method.as_str(),
        path: &path,
        status: response.status().as_u16(),
        duration: started.elapsed(),
        decision,
    });
    id.stamp(&mut response);
    response
}

/// `POST /sessions/revoke?issuer=I&client_id=C&sub=S` revokes every session
/// of one learner; without `sub`, of every learner of the registration. The
/// registration must be in the config (active or not), so that a typo is
/// an error rather than a revocation of nobody. It takes effect at once on
/// this replica and within a cached read's life on the others (see
/// [`crate::session::Sessions::revoke`]). The parameters are in the query,
/// so no body is read.
async fn revoke<B>(
    app: &Gateway,
    grades: &Grades,
    req: &Request<B>,
) -> Result<Response<Body>, Rejection> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !grades.authorized(presented) {
        return Err(Rejection::Unauthorized);
    }
    if req.method() != Method::POST || req.uri().path() != "/sessions/revoke" {
        return Err(Rejection::NoSuchEndpoint);
    }
    let mut params = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let required = |field: &str| {
        params
            .get(field)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| ScoreError::Invalid {
                field: field.into(),
                error: format!("{field} is required"),
            })
    };
    let (issuer, client_id) = (required("issuer")?, required("client_id")?);
    if let Err(crate::registry::LookupError::Unknown) =
        app.lti.registry().find(&issuer, Some(&client_id))
    {
        return Err(Rejection::NoSuchRegistration);
    }
    let (what, kind) = match params.get("sub") {
        Some(sub) if sub.is_empty() => {
            return Err(ScoreError::Invalid {
                field: "sub".into(),
                error: "sub must not be empty (leave it out to revoke the registration)".into(),
            }
            .into());
        }
        Some(sub) => (
            crate::session::Revoke::User(crate::session::UserRef {
                issuer,
                client_id,
                sub: sub.clone(),
            }),
            "user",
        ),
        None => (
            crate::session::Revoke::Registration { issuer, client_id },
            "registration",
        ),
    };
    let not_before = app
        .sessions
        .revoke(&what)
        .await
        .map_err(ScoreError::Store)?;
    tracing::info!(
        revoked = kind,
        not_before,
        "sessions revoked by an operator"
    );
    Ok(reply(
        StatusCode::OK,
        &json!({ "revoked": kind, "not_before": not_before }),
    ))
}

async fn route<B>(grades: &Grades, req: Request<B>) -> Result<Response<Body>, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !grades.authorized(presented) {
        return Err(Rejection::Unauthorized);
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/scores") => {
            let invalid = |error: &str| ScoreError::Invalid {
                field: "body".into(),
                error: error.into(),
            };
            let body = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| -> Rejection {
                    // The server cuts off a body that does not arrive in time.
                    if e.is::<super::form::BodyTimedOut>() {
                        FormError::TimedOut.into()
                    } else {
                        invalid("the body is unreadable or larger than 64 KiB").into()
                    }
                })?
                .to_bytes();
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
                return Err(invalid("the body must be a JSON object").into());
            };
            let queued = grades.accept_score(&fields).await?;
            Ok(reply(StatusCode::ACCEPTED, &json!({ "queued": queued })))
        }
        (Method::GET, "/deliveries") => {
            let failed = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "failed=1" || p == "failed=true"));
            let list = grades.deliveries(failed).await.map_err(ScoreError::Store)?;
            Ok(reply(StatusCode::OK, &json!({ "deliveries": list })))
        }
        (Method::POST, "/deliveries/retry-failed") => {
            let n = grades.retry_failed().await.map_err(ScoreError::Store)?;
            Ok(reply(StatusCode::OK, &json!({ "requeued": n })))
        }
        (Method::POST, p) if p.starts_with("/deliveries/") && p.ends_with("/retry") => {
            let id = &p["/deliveries/".len()..p.len() - "/retry".len()];
            match grades.retry(id).await.map_err(ScoreError::Store)? {
                true => Ok(reply(StatusCode::OK, &json!({ "requeued": 1 }))),
                false => Err(Rejection::NoSuchDelivery),
            }
        }
        _ => Err(Rejection::NoSuchEndpoint),
    }
}
