//! The delivery loop: claims due deliveries and sends them, several at once.
//!
//! Each gateway runs one loop, which keeps up to `concurrent_total`
//! deliveries in flight, and up to `concurrent_per_platform` to any one
//! platform: the claim skips the platforms that are at their limit, so a
//! slow or failing platform delays only its own scores. A delivery is
//! claimed atomically in the store with a short lease, renewed while it is
//! sent, so with several replicas on one Redis each delivery is sent by one
//! replica, and a replica that dies mid-delivery gives it back within
//! [`LEASE_SEC`]. One id is never in flight twice: a newer score for a
//! resource that is being sent waits for that send to finish, then goes
//! (last wins). Network errors, 5xx and 429 are retried with exponential
//! back-off and full jitter (honouring `Retry-After`); a refusal retrying
//! cannot fix, or too many attempts, parks the delivery as failed with its
//! last error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ags::{self, AgsError};
use super::queue::{Delivery, PARKED, Score, State};
use super::{GradedResource, Grades, GradesConfig, LINEITEM_SCOPE, SCORE_SCOPE};
use crate::backoff::Backoff;
use crate::clock::UnixTime;
use crate::registry::Registration;
use crate::session::UserRef;
use crate::store::Queued;

/// How long a claimed delivery stays out of other workers' reach without a
/// renewal: the longest a dead replica's delivery waits for another.
pub const LEASE_SEC: u64 = 15;
/// How often a delivery in flight renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// The wait between attempts: 20 s after the first failure, doubling, at most an hour.
const RETRY: Backoff = Backoff::new(Duration::from_secs(20), Duration::from_secs(3600));

/// Runs the delivery loop until `shutdown`. Once it is cancelled nothing
/// new is claimed; deliveries in flight get `grace` to finish and are then
/// abandoned with their leases given back (due at once), so that the next
/// process sends them without waiting for the leases to end.
pub async fn run(app: Arc<Grades>, shutdown: CancellationToken, grace: Duration) {
    let config = &app.config;
    let mut tasks = JoinSet::new();
    // What each task in flight holds, to count per platform and to give back.
    let mut held: HashMap<tokio::task::Id, Queued> = HashMap::new();
    while !shutdown.is_cancelled() {
        while held.len() < config.concurrent_total && !shutdown.is_cancelled() {
            let busy = busy_groups(&held, config.concurrent_per_platform);
            let now = app.clock.now();
            match app.store.queue_claim(now, now + LEASE_SEC, &busy).await {
                Ok(Some(item)) => {
                    let task = tasks.spawn(send_leased(app.clone(), item.clone()));
                    held.insert(task.id(), item);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "grade queue unavailable; will retry");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            Some(done) = tasks.join_next_with_id() => finished(&mut held, done),
            () = app.wake.notified() => {}
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    while !held.is_empty() {
        tokio::select! {
            () = &mut deadline => break,
            Some(done) = tasks.join_next_with_id() => finished(&mut held, done),
        }
    }
    tasks.abort_all();
    while let Some(done) = tasks.join_next_with_id().await {
        if done.is_ok() {
            finished(&mut held, done);
        }
    }
    for item in held.into_values() {
        abandon(&app, &item.id, item.payload).await;
    }
}

/// The platforms (queue groups) with `limit` deliveries in flight.
fn busy_groups(held: &HashMap<tokio::task::Id, Queued>, limit: usize) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for item in held.values() {
        *counts.entry(item.group.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|&(_, n)| n >= limit)
        .map(|(group, _)| group.to_owned())
        .collect()
}

/// Forgets a task that has ended. A task that panicked leaves its lease to
/// end on its own.
fn finished(
    held: &mut HashMap<tokio::task::Id, Queued>,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    let id = match done {
        Ok((id, ())) => id,
        Err(e) => {
            if e.is_panic() {
                tracing::error!("a score delivery panicked; it is retried when its lease ends");
            }
            e.id()
        }
    };
    held.remove(&id);
}

/// Sends one claimed delivery, renewing its lease until it is finished. The
/// renewals run beside the send, so a slow store never holds the send up.
async fn send_leased(app: Arc<Grades>, item: Queued) {
    let id = item.id.clone();
    let renewals = async {
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            renew.tick().await;
            let until = app.clock.now() + LEASE_SEC;
            match app.store.queue_renew(&id, until).await {
                Ok(true) => {}
                Ok(false) => tracing::debug!(id, "delivery no longer leased while in flight"),
                Err(e) => tracing::warn!(
                    id,
                    error = %e,
                    "could not renew a delivery's lease; another worker may send it too"
                ),
            }
        }
    };
    tokio::select! {
        () = process(&app, item) => {}
        () = renewals => {}
    }
}

/// Gives a claimed delivery back, unchanged and due now.
async fn abandon(app: &Grades, id: &str, claimed: Vec<u8>) {
    let now = app.clock.now();
    match app
        .store
        .queue_finish(id, &claimed, Some((claimed.clone(), now)))
        .await
    {
        Ok(_) => tracing::warn!(
            id,
            "shutting down: a score delivery still in flight after the grace period was abandoned; it is due again at once"
        ),
        Err(e) => tracing::warn!(
            id,
            error = %e,
            "shutting down: could not give back an abandoned delivery; it returns when its lease ends"
        ),
    }
}

async fn process(app: &Grades, item: Queued) {
    let config = &app.config;
    let mut delivery = match Delivery::decode(&item.payload) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(id = %item.id, error = %e, "dropping an unreadable delivery");
            let _ = app.store.queue_finish(&item.id, &item.payload, None).await;
            return;
        }
    };
    let id = item.id.as_str();
    let outcome = deliver(app, &delivery).await;
    let now = app.clock.now();
    let next = match outcome {
        Ok(what) => {
            tracing::info!(id, usage_key = %delivery.resource.usage_key, outcome = what, "score delivered");
            None
        }
        Err(AgsError::Retry { error, after }) => {
            delivery.attempts += 1;
            delivery.last_error = Some(error.clone());
            if delivery.attempts >= config.max_attempts {
                tracing::error!(
                    id,
                    attempts = delivery.attempts,
                    error,
                    "score delivery failed for good; parked"
                );
                delivery.state = State::Failed;
                Some(PARKED)
            } else {
                let wait = RETRY
                    .delay(delivery.attempts, after.map(Duration::from_secs))
                    .as_secs();
                tracing::warn!(
                    id,
                    attempts = delivery.attempts,
                    retry_in_sec = wait,
                    error,
                    "score delivery failed; will retry"
                );
                Some(now + wait)
            }
        }
        Err(AgsError::Permanent(error) | AgsError::TokenRefused(error)) => {
            delivery.attempts += 1;
            tracing::error!(id, error, "score delivery refused; parked");
            delivery.last_error = Some(error);
            delivery.state = State::Failed;
            Some(PARKED)
        }
    };
    let next = match next {
        None => None,
        Some(due) => match delivery.encode() {
            Ok(bytes) => Some((bytes, due)),
            Err(e) => {
                tracing::error!(id, error = %e, "cannot re-queue a delivery");
                return;
            }
        },
    };
    match app.store.queue_finish(id, &item.payload, next).await {
        Ok(true) => {}
        // A newer score replaced it while we were sending: that one goes next.
        Ok(false) => tracing::debug!(id, "delivery superseded while in flight"),
        Err(e) => {
            tracing::warn!(id, error = %e, "could not update a delivery; it returns when its lease ends")
        }
    }
}

/// Sends one delivery. Returns what happened, for the log.
async fn deliver(app: &Grades, delivery: &Delivery) -> Result<&'static str, AgsError> {
    let config = &app.config;
    let r = &delivery.resource;
    let reg = app
        .registry
        .find(&r.issuer, Some(&r.client_id))
        .map_err(|e| {
            AgsError::Permanent(format!("the platform registration is not usable: {e}"))
        })?;
    let timeout = config.request_timeout;
    let scopes: Vec<&str> = [SCORE_SCOPE, LINEITEM_SCOPE]
        .into_iter()
        .filter(|s| r.scopes.iter().any(|have| have == s))
        .collect();
    let scopes = scopes.join(" ");

    let (given, maximum) = match delivery.score {
        Score::Leaf { earned, possible } => (earned, possible),
        Score::Composite => match composite(app, r).await? {
            Some(score) => score,
            None => return Ok("nothing gradable"),
        },
    };

    // Any call refused with 401 gets one fresh token, then counts as a failure.
    let mut refreshed = false;
    loop {
        let token = app.ags.token(&reg, &scopes, timeout).await?;
        match send_score(
            app,
            &reg,
            r,
            given,
            maximum,
            &delivery.timestamp,
            &token,
            timeout,
        )
        .await
        {
            Err(AgsError::TokenRefused(error)) if refreshed => {
                return Err(AgsError::Retry { error, after: None });
            }
            Err(AgsError::TokenRefused(_)) => {
                app.ags.forget_token(&reg, &scopes);
                refreshed = true;
            }
            Err(e) => return Err(e),
            Ok(()) if refreshed => return Ok("sent after a token refresh"),
            Ok(()) => return Ok("sent"),
        }
    }
}

/// Finds the line item if needed, then posts the score.
#[allow(clippy::too_many_arguments)]
async fn send_score(
    app: &Grades,
    reg: &Registration,
    r: &GradedResource,
    given: f64,
    maximum: f64,
    timestamp: &str,
    token: &str,
    timeout: std::time::Duration,
) -> Result<(), AgsError> {
    let lineitem = match &r.lineitem {
        Some(l) => l.clone(),
        None => {
            let lineitems = r
                .lineitems
                .as_deref()
                .ok_or_else(|| AgsError::Permanent("no lineitem and no lineitems URL".into()))?;
            let label = r
                .resource_link_title
                .as_deref()
                .unwrap_or(r.usage_key.as_str());
            let found = ags::find_or_create_lineitem(
                &app.ags,
                reg,
                lineitems,
                &r.resource_link_id,
                label,
                token,
                timeout,
            )
            .await?;
            if let Err(e) = app.remember_lineitem(r, &found).await {
                tracing::warn!(error = %e, "could not remember the line item; it will be looked up again");
            }
            found
        }
    };
    let body = json!({
        "userId": r.sub,
        "scoreGiven": given,
        "scoreMaximum": maximum,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": timestamp,
    });
    ags::post_score(&app.ags, reg, &lineitem, &body, token, timeout).await
}

/// The composite score from the LMS, normalised to (earned / possible, 1).
async fn composite(app: &Grades, r: &GradedResource) -> Result<Option<(f64, f64)>, AgsError> {
    let (config, lms) = (&app.config, &app.lms);
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = config
        .composite_score_url
        .replace("{upstream}", &lms.origin)
        .replace("{username}", &enc(&r.username))
        .replace("{usage_key}", &enc(r.usage_key.as_str()))
        .replace("{course_key}", &enc(r.course_key.as_str()));
    let url = url::Url::parse(&raw)
        .map_err(|e| AgsError::Permanent(format!("bad composite score URL: {e}")))?;
    let user = UserRef {
        issuer: r.issuer.clone(),
        client_id: r.client_id.clone(),
        sub: r.sub.clone(),
    };
    let assertion = lms
        .asserter
        .for_service(&user, &r.course_key, &r.usage_key)
        .map_err(|e| AgsError::Permanent(e.to_string()))?;
    let mut request = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, crate::client::USER_AGENT)
        .header(lms.asserter.config().header.clone(), assertion)
        .body(crate::full_body(bytes::Bytes::new()))
        .map_err(|e| AgsError::Permanent(e.to_string()))?;
    // The LMS checks ALLOWED_HOSTS: send the Host the proxy sends.
    if url.origin() == lms.url.origin()
        && let Some(host) = &lms.host
    {
        request
            .headers_mut()
            .insert(http::header::HOST, host.clone());
    }
    let response = app
        .ags
        .client
        .send(&url, request, 64 * 1024, config.request_timeout)
        .await?;
    if !response.status.is_success() {
        let error = format!("the LMS composite score answered {}", response.status);
        return Err(if response.status.is_server_error() {
            AgsError::Retry { error, after: None }
        } else {
            AgsError::Permanent(error)
        });
    }
    let body: Value = serde_json::from_slice(&response.body)
        .map_err(|_| AgsError::Permanent("the LMS composite score is not JSON".into()))?;
    let number = |name: &str| {
        body.get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let (Some(earned), Some(possible)) = (number("earned"), number("possible")) else {
        return Err(AgsError::Permanent(
            "the LMS composite score lacks earned/possible".into(),
        ));
    };
    if possible <= 0.0 {
        return Ok(None);
    }
    Ok(Some(((earned / possible).min(1.0), 1.0)))
}

/// When a new delivery for a resource becomes due.
pub fn due_at(score: &Score, now: UnixTime, config: &GradesConfig) -> UnixTime {
    match score {
        Score::Leaf { .. } => now,
        Score::Composite => now + config.aggregate_delay_sec,
    }
}
