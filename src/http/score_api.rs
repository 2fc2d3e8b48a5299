//! Routing for the internal score API, on its own listener (loopback by
//! default). The [`crate::grades::Grades`] service does the work.
//!
//! - `POST /scores`: a score change from the LMS. 202 with the deliveries
//!   it caused, once they are stored; 400 with `{"error", "field"}` for
//!   malformed input; 404 for a user ltigate has no graded resource for.
//! - `GET /deliveries[?failed=1]`, `POST /deliveries/<id>/retry`,
//!   `POST /deliveries/retry-failed`: what `ltigate grades` uses.
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
