//! Grade passback (LTI Assignment and Grade Services).
//!
//! Owns the whole path of a score from the LMS to the launching platform, as
//! the [`Grades`] service: [`Grades::record_launch`] remembers a *graded
//! resource* when a launch grants the AGS `score` scope;
//! [`Grades::accept_score`] turns a score change the LMS reports into durable
//! deliveries in the store (see [`queue`]), debouncing composite scores;
//! [`worker`] claims due deliveries (one replica each), and [`ags`] speaks
//! AGS to the platform (OAuth2 client-credentials tokens with a JWT client
//! assertion, line items, scores). The HTTP side of the score API lives in
//! `http/score_api.rs`; nothing here builds a response.
//!
//! Semantics follow the Open edX plugin: a problem's own score is sent at
//! once as `scoreGiven = earned`, `scoreMaximum = possible`; a unit,
//! subsection or course launched as a graded resource is sent
//! `aggregate_delay_sec` after the last change within it, with the composite
//! score the LMS computes, normalised to `scoreGiven = earned / possible`,
//! `scoreMaximum = 1`. A grade is never dropped silently: it is delivered,
//! retried, or parked as failed for an operator to see and retry.

pub mod ags;
pub mod queue;
mod scores;
pub mod worker;

use std::sync::Arc;

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use tokio::sync::Notify;

use crate::assertion::{Asserter, Usernames};
use crate::client::HttpClient;
use crate::clock::{Clock, UnixTime};
use crate::content::{ContentPath, CourseKey, UsageKey};
use crate::registry::Registry;
use crate::session::{LaunchContext, UserRef};
use crate::store::{Namespace, Store, StoreError};

pub use scores::ScoreError;

/// Grade passback settings.
#[derive(Clone)]
pub struct GradesConfig {
    /// The internal score API's listener (loopback by default).
    pub listen: std::net::SocketAddr,
    /// The bearer token the LMS sends. Never logged.
    pub token: String,
    pub aggregate_delay_sec: u64,
    pub max_attempts: u32,
    /// Where the LMS computes composite scores: `{upstream}`, `{username}`,
    /// `{usage_key}` and `{course_key}` are replaced (the last three URL-encoded).
    pub composite_score_url: String,
    pub resource_ttl_sec: u64,
    pub request_timeout: std::time::Duration,
    pub poll_interval: std::time::Duration,
    /// Deliveries in flight to one platform at most (per gateway process).
    pub concurrent_per_platform: usize,
    /// Deliveries in flight at most (per gateway process).
    pub concurrent_total: usize,
}

impl std::fmt::Debug for GradesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradesConfig")
            .field("listen", &self.listen)
            .field("aggregate_delay_sec", &self.aggregate_delay_sec)
            .field("max_attempts", &self.max_attempts)
            .field("composite_score_url", &self.composite_score_url)
            .field("concurrent_per_platform", &self.concurrent_per_platform)
            .field("concurrent_total", &self.concurrent_total)
            .finish_non_exhaustive()
    }
}

/// The LMS, as the grade path calls it for composite scores: on a
/// learner's behalf, with a service assertion.
pub struct Lms {
    pub asserter: Arc<Asserter>,
    /// `http://lms:8000`, for `{upstream}` in the composite score URL.
    pub origin: String,
    pub url: url::Url,
    /// The `Host` the proxy sends (the LMS checks `ALLOWED_HOSTS`).
    pub host: Option<HeaderValue>,
}

/// The grade passback service: everything a score needs on its way from
/// the LMS to the platform, and nothing else.
pub struct Grades {
    config: GradesConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Arc<Registry>,
    usernames: Usernames,
    lms: Lms,
    ags: ags::Ags,
    /// Woken when a delivery is enqueued, so leaf scores go out at once.
    wake: Notify,
}

impl Grades {
    pub fn new(
        config: GradesConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        client: HttpClient,
        registry: Arc<Registry>,
        lms: Lms,
    ) -> Self {
        Self {
            usernames: lms.asserter.usernames().clone(),
            ags: ags::Ags::new(client, clock.clone()),
            config,
            store,
            clock,
            registry,
            lms,
            wake: Notify::new(),
        }
    }

    pub fn config(&self) -> &GradesConfig {
        &self.config
    }

    /// Whether `presented` is the score API's bearer token (constant time).
    pub fn authorized(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.config.token.as_bytes()))
    }

    /// Wakes the delivery loop: something became due.
    fn wake(&self) {
        self.wake.notify_one();
    }

    /// Every pending and failed delivery (only the failed ones with `failed_only`).
    pub async fn deliveries(&self, failed_only: bool) -> Result<Vec<queue::Listed>, StoreError> {
        queue::list(self.store.as_ref(), failed_only).await
    }

    /// Re-queues delivery `id`; false if there is none.
    pub async fn retry(&self, id: &str) -> Result<bool, StoreError> {
        let found = queue::retry(self.store.as_ref(), id, self.clock.now()).await?;
        if found {
            self.wake();
        }
        Ok(found)
    }

    /// Re-queues every failed delivery; returns how many.
    pub async fn retry_failed(&self) -> Result<usize, StoreError> {
        let n = queue::retry_failed(self.store.as_ref(), self.clock.now()).await?;
        self.wake();
        Ok(n)
    }
}

pub const SCORE_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
pub const LINEITEM_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";

/// One launched resource whose grade goes back to its platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradedResource {
    pub issuer: String,
    pub client_id: String,
    /// The LTI `sub`: the score's `userId`.
    pub sub: String,
    /// The stable upstream username the LMS knows the learner by.
    pub username: String,
    pub course_key: CourseKey,
    pub usage_key: UsageKey,
    pub resource_link_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_link_title: Option<String>,
    /// The line item to post scores to, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineitem: Option<String>,
    /// The line items container, to find or create the line item in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineitems: Option<String>,
    pub scopes: Vec<String>,
    pub updated_at: UnixTime,
}

/// The first 12 bytes of the SHA-256 of `parts` joined with NUL, in hex.
fn hex_digest(parts: &[&str]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\0").as_bytes());
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl GradedResource {
    /// The platform's queue group: deliveries to one registration share
    /// its concurrency limit. A digest, so that no platform's text is in a
    /// store key.
    pub fn platform_group(&self) -> String {
        hex_digest(&[self.issuer.as_str(), self.client_id.as_str()])
    }

    /// A stable id: the same resource of the same user always has it.
    pub fn id(&self) -> String {
        hex_digest(&[
            self.issuer.as_str(),
            self.client_id.as_str(),
            self.sub.as_str(),
            self.resource_link_id.as_str(),
            self.usage_key.as_str(),
        ])
    }

    fn same_link(&self, other: &Self) -> bool {
        self.issuer == other.issuer
            && self.client_id == other.client_id
            && self.sub == other.sub
            && self.resource_link_id == other.resource_link_id
    }
}

/// The store key of the resources of one user and one usage key.
fn resources_key(username: &str, usage: &UsageKey) -> String {
    format!("{username}|{usage}")
}

/// What a launch's AGS claim allows, or why there will be no passback.
fn graded_from_launch(
    user: &UserRef,
    username: String,
    content: &ContentPath,
    launch: &LaunchContext,
    now: UnixTime,
) -> Result<GradedResource, &'static str> {
    let ags = launch
        .ags_endpoint
        .as_ref()
        .ok_or("the launch has no AGS endpoint claim")?;
    let scopes: Vec<String> = ags
        .get("scope")
        .and_then(|s| s.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !scopes.iter().any(|s| s == SCORE_SCOPE) {
        return Err("the AGS claim does not grant the score scope");
    }
    let text = |name: &str| {
        ags.get(name)
            .and_then(|v| v.as_str())
            .filter(|s| url::Url::parse(s).is_ok())
            .map(str::to_owned)
    };
    let lineitem = text("lineitem");
    let lineitems = text("lineitems");
    if lineitem.is_none() && (lineitems.is_none() || !scopes.iter().any(|s| s == LINEITEM_SCOPE)) {
        return Err("the AGS claim has no lineitem, and no lineitems URL with the lineitem scope");
    }
    let link = launch.resource_link.as_ref();
    Ok(GradedResource {
        issuer: user.issuer.clone(),
        client_id: user.client_id.clone(),
        sub: user.sub.clone(),
        username,
        course_key: content.course.clone(),
        usage_key: content.usage.clone(),
        resource_link_id: link
            .and_then(|l| l.get("id"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
        resource_link_title: link
            .and_then(|l| l.get("title"))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        lineitem,
        lineitems,
        scopes,
        updated_at: now,
    })
}

impl Grades {
    /// Records the graded resource of a launch, if it has one. A launch
    /// without passback (no AGS claim, or one without the score scope) is
    /// logged and records nothing; a store that cannot take the record fails
    /// the launch (fail closed: a learner whose scores would be lost gets the
    /// "try again" page instead of content).
    pub async fn record_launch(
        &self,
        user: &UserRef,
        content: &ContentPath,
        launch: &LaunchContext,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let resource = match graded_from_launch(user, self.usernames.of(user), content, launch, now)
        {
            Ok(r) => r,
            Err(why) => {
                if launch.ags_endpoint.is_some() {
                    tracing::info!(usage_key = %content.usage, reason = why, "no grade passback for this launch");
                }
                return Ok(());
            }
        };
        self.store_resource(&resource, now + self.config.resource_ttl_sec)
            .await
            .inspect_err(|e| {
                tracing::error!(error = %e, usage_key = %content.usage, "could not record the graded resource; the launch is refused");
            })
    }

    async fn store_resource(
        &self,
        resource: &GradedResource,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let user = UserRef {
            issuer: resource.issuer.clone(),
            client_id: resource.client_id.clone(),
            sub: resource.sub.clone(),
        };
        let user_bytes =
            serde_json::to_vec(&user).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(
                Namespace::GradedUser,
                &resource.username,
                user_bytes,
                expires_at,
            )
            .await?;
        let new = resource.clone();
        self.store
            .update(
                Namespace::Graded,
                &resources_key(&resource.username, &resource.usage_key),
                std::sync::Arc::new(move |current| {
                    let mut list: Vec<GradedResource> = current
                        .and_then(|c| serde_json::from_slice(c).ok())
                        .unwrap_or_default();
                    // A relaunch updates the record; a line item found earlier is kept.
                    match list.iter_mut().find(|r| r.same_link(&new)) {
                        Some(existing) => {
                            let known = existing.lineitem.take();
                            *existing = new.clone();
                            if existing.lineitem.is_none() {
                                existing.lineitem = known;
                            }
                        }
                        None => list.push(new.clone()),
                    }
                    Some((serde_json::to_vec(&list).ok()?, expires_at))
                }),
            )
            .await?;
        Ok(())
    }

    /// The graded resources of a user under a usage key.
    pub async fn resources_of(
        &self,
        username: &str,
        usage: &UsageKey,
    ) -> Result<Vec<GradedResource>, StoreError> {
        Ok(self
            .store
            .get(Namespace::Graded, &resources_key(username, usage))
            .await?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default())
    }

    /// Remembers a line item found or created for a resource.
    pub async fn remember_lineitem(
        &self,
        resource: &GradedResource,
        lineitem: &str,
    ) -> Result<(), StoreError> {
        let mut updated = resource.clone();
        updated.lineitem = Some(lineitem.to_owned());
        self.store_resource(&updated, self.clock.now() + self.config.resource_ttl_sec)
            .await
    }
}

#[cfg(test)]
mod tests;
