//! Reading parameters from a request: the query string, or a urlencoded form body.
//!
//! Bodies are read up to a fixed limit and refused past it; only
//! `application/x-www-form-urlencoded` is accepted as a form. How long a
//! body may take is the server's business (`server/body.rs`): a body that
//! comes too late fails with [`BodyTimedOut`], which becomes a 408 here.

use bytes::Bytes;
use http::{HeaderMap, Request, header};
use http_body_util::{BodyExt as _, Limited};

use crate::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body is not application/x-www-form-urlencoded")]
    NotAForm,
    #[error("the request body could not be read")]
    Unreadable,
    #[error("the request body did not arrive in time")]
    TimedOut,
}

pub use crate::BodyTimedOut;

/// Decoded `name=value` pairs of a query string.
pub fn query_pairs<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Decoded pairs of a urlencoded form body, read up to `limit` bytes; the
/// request's `headers` say whether it is a form.
pub async fn form_pairs<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Vec<(String, String)>, FormError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(FormError::NotAForm);
    }
    let body = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FormError::TooLarge(limit)
            } else if e.is::<BodyTimedOut>() {
                FormError::TimedOut
            } else {
                FormError::Unreadable
            }
        })?
        .to_bytes();
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}
