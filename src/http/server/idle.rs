//! When a connection is idle: no request in flight, for long enough.
//!
//! hyper closes an HTTP/1 connection whose next request does not come within
//! the header read timeout, but has no such timeout for HTTP/2: a client that
//! sends the preface, or one request and then nothing, keeps its connection
//! (and a descriptor) for ever; keep-alive pings only prove that it is still
//! there. Each connection therefore has an [`Activity`]: every request holds
//! a [`Busy`] mark from the moment hyper hands it over until its response
//! body is finished or dropped, and [`Activity::idle`] resolves once nothing
//! has been busy for the idle timeout (for the first request: the header
//! read timeout). The server then shuts the connection down gracefully
//! through hyper, which lets a request still in flight finish.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use crate::{Body, BoxError};

/// Requests in flight on one connection, and since when there were none.
pub(super) struct Activity {
    busy: AtomicUsize,
    /// Milliseconds after `opened` when the last request finished;
    /// [`NEVER`] before the first one.
    quiet_since: AtomicU64,
    opened: Instant,
}

const NEVER: u64 = u64::MAX;

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(NEVER),
            opened: Instant::now(),
        })
    }

    /// Marks a request in flight until the mark is dropped.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy {
            activity: self.clone(),
        }
    }

    /// Resolves once no request has been in flight for `idle` (before the
    /// first request: for `first`).
    pub(super) async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let busy = self.busy.load(Ordering::Acquire);
            let quiet_since = self.quiet_since.load(Ordering::Acquire);
            if busy > 0 {
                // A request ends by setting `quiet_since`: look again then.
                tokio::time::sleep(idle).await;
                continue;
            }
            let due = match quiet_since {
                NEVER => self.opened + first,
                ms => self.opened + Duration::from_millis(ms) + idle,
            };
            if Instant::now() >= due {
                // Raced with a request that began meanwhile?
                if self.busy.load(Ordering::Acquire) == 0
                    && self.quiet_since.load(Ordering::Acquire) == quiet_since
                {
                    return;
                }
                continue;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// A request in flight.
pub(super) struct Busy {
    activity: Arc<Activity>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.activity;
        let now = u64::try_from(a.opened.elapsed().as_millis()).unwrap_or(NEVER - 1);
        a.quiet_since.store(now, Ordering::Release);
        a.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request marked busy until it is done.
pub(super) struct Tracked {
    inner: Body,
    busy: Option<Busy>,
}

impl Tracked {
    pub(super) fn new(inner: Body, busy: Busy) -> Self {
        Self {
            inner,
            busy: Some(busy),
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.busy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_first_wait_or_after_the_last_request() {
        let first = Duration::from_secs(10);
        let idle = Duration::from_secs(30);
        let a = Activity::new();
        let started = Instant::now();
        a.idle(first, idle).await;
        assert_eq!(started.elapsed(), first, "no request at all");

        let a = Activity::new();
        let busy = a.busy();
        let started = Instant::now();
        let ends = {
            let a = a.clone();
            tokio::spawn(async move { a.idle(first, idle).await })
        };
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert!(!ends.is_finished(), "idle while a request was in flight");
        drop(busy);
        ends.await.expect("idle");
        assert_eq!(started.elapsed(), Duration::from_secs(45) + idle);
    }
}
