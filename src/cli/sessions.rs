//! `ltigate sessions revoke`: revoking every session of a learner or of a
//! registration, through the running gateway's internal API (the listener
//! of `[grades] listen`, as `ltigate grades` uses).
//!
//! Through the gateway rather than the store: the embedded store is locked
//! by the gateway process, and the gateway that takes the call drops its own
//! cached session reads at once, so the revocation holds there from the
//! moment the command returns. The record it writes is in the shared store,
//! so every other replica refuses the revoked sessions once its cached read
//! runs out (0.5 s with Redis). The gateway also checks that the
//! registration exists, so that a mistyped issuer is an error, not a
//! revocation of nobody.

use http::Method;
use serde_json::Value;

use crate::config::Config;

/// Whose sessions to revoke.
pub enum Target<'a> {
    User {
        issuer: &'a str,
        client_id: &'a str,
        sub: &'a str,
    },
    Registration {
        issuer: &'a str,
        client_id: &'a str,
    },
}

/// `ltigate sessions revoke --user ISSUER CLIENT_ID SUB` or
/// `--registration ISSUER CLIENT_ID`.
pub async fn revoke(config: &Config, target: Target<'_>) -> Result<String, String> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let what = match target {
        Target::User {
            issuer,
            client_id,
            sub,
        } => {
            query
                .append_pair("issuer", issuer)
                .append_pair("client_id", client_id)
                .append_pair("sub", sub);
            format!("learner {sub:?} of {issuer} (client_id {client_id})")
        }
        Target::Registration { issuer, client_id } => {
            query
                .append_pair("issuer", issuer)
                .append_pair("client_id", client_id);
            format!("every learner of {issuer} (client_id {client_id})")
        }
    };
    let body = super::grades::call(
        config,
        Method::POST,
        &format!("/sessions/revoke?{}", query.finish()),
    )
    .await?;
    let not_before = body.get("not_before").and_then(Value::as_u64).unwrap_or(0);
    Ok(format!(
        "Revoked the sessions of {what}: every session begun before {not_before} (Unix time) is refused, on every replica within a second.\n\
         A learner launches again from the course to get a new session.\n"
    ))
}
