//! Deliveries: what is owed to a platform, kept durably in the store.
//!
//! A score change becomes one delivery per matching graded resource. Its id
//! is the resource's id, so a newer change for the same resource replaces a
//! pending one: the last change wins and one request goes out. A leaf
//! delivery is due at once; a composite one `aggregate_delay_sec` after the
//! latest change. A failed delivery is parked (due never) with its last error
//! until an operator retries it.

use serde::{Deserialize, Serialize};

use super::GradedResource;
use crate::clock::UnixTime;
use crate::store::{Queued, Store, StoreError};

/// The due time of a parked delivery: never (and exact as a Redis score).
pub const PARKED: UnixTime = 1 << 52;

/// What is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Score {
    /// The block's own score: `scoreGiven = earned`, `scoreMaximum = possible`.
    Leaf { earned: f64, possible: f64 },
    /// A unit's, subsection's or course's: asked of the LMS at delivery time.
    Composite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Failed,
}

/// One delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub resource: GradedResource,
    pub score: Score,
    /// When the score changed in the LMS (RFC 3339, milliseconds, UTC).
    pub timestamp: String,
    pub attempts: u32,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: UnixTime,
}

impl Delivery {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// A queued delivery with its id and due time, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub due_at: Option<UnixTime>,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// Enqueues (or supersedes) the delivery of `resource`.
pub async fn enqueue(
    store: &dyn Store,
    delivery: &Delivery,
    due_at: UnixTime,
) -> Result<String, StoreError> {
    let id = delivery.resource.id();
    let group = delivery.resource.platform_group();
    store
        .queue_put(&id, &group, delivery.encode()?, due_at)
        .await?;
    Ok(id)
}

/// Every delivery, optionally only the failed ones.
pub async fn list(store: &dyn Store, failed_only: bool) -> Result<Vec<Listed>, StoreError> {
    let mut out = Vec::new();
    for Queued {
        id,
        payload,
        due_at,
        ..
    } in store.queue_list().await?
    {
        let delivery = Delivery::decode(&payload)?;
        if failed_only && delivery.state != State::Failed {
            continue;
        }
        out.push(Listed {
            id,
            due_at: (due_at < PARKED).then_some(due_at),
            delivery,
        });
    }
    Ok(out)
}

/// Re-queues a delivery now, with its attempts reset. False if there is none.
/// A put, not a finish: a delivery in flight keeps its lease, and the
/// re-queued copy goes once that send is over (never two at once).
pub async fn retry(store: &dyn Store, id: &str, now: UnixTime) -> Result<bool, StoreError> {
    let Some(item) = store.queue_get(id).await? else {
        return Ok(false);
    };
    let mut delivery = Delivery::decode(&item.payload)?;
    delivery.state = State::Pending;
    delivery.attempts = 0;
    store
        .queue_put(id, &item.group, delivery.encode()?, now)
        .await?;
    Ok(true)
}

/// Re-queues every failed delivery. Returns how many.
pub async fn retry_failed(store: &dyn Store, now: UnixTime) -> Result<usize, StoreError> {
    let mut n = 0;
    for listed in list(store, true).await? {
        if retry(store, &listed.id, now).await? {
            n += 1;
        }
    }
    Ok(n)
}
