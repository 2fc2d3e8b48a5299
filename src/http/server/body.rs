//! Request bodies that must arrive in time.
//!
//! hyper bounds how long request headers may take, but not the body: a
//! client that declares `Content-Length: 100` and sends nothing would hold
//! its connection (and the handler waiting on the body) for as long as it
//! likes. Every request body on every listener is therefore wrapped in a
//! [`ReadDeadline`]: it fails with [`BodyTimedOut`] unless the whole body has
//! arrived within `body_read_timeout`, plus one second for every
//! `body_min_bytes_per_sec` bytes received (Apache's `mod_reqtimeout`
//! `body=20,MinRate=…`). A small body (every LTI form, a score event) must
//! arrive within about the timeout; a large upload may take longer as long
//! as it keeps the minimum rate, which a trickle does not.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::BoxError;
pub use crate::http::form::BodyTimedOut;

/// How long a request body may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub timeout: Duration,
    /// 0: no extension, the timeout bounds every body.
    pub min_bytes_per_sec: u64,
}

/// A request body that fails once it is late (see the module comment).
pub struct ReadDeadline<B> {
    inner: B,
    started: Instant,
    limits: BodyLimits,
    received: u64,
    /// Armed only when a read has to wait, so a body that is already
    /// complete (most requests) costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl<B> ReadDeadline<B> {
    pub(super) fn new(inner: B, limits: BodyLimits) -> Self {
        Self {
            inner,
            started: Instant::now(),
            limits,
            received: 0,
            sleep: None,
            timed_out: false,
        }
    }

    fn deadline(&self) -> Instant {
        let earned = match self.limits.min_bytes_per_sec {
            0 => Duration::ZERO,
            rate => {
                let nanos = u128::from(self.received) * 1_000_000_000 / u128::from(rate);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        };
        self.started + self.limits.timeout.saturating_add(earned)
    }
}

impl<B> HttpBody for ReadDeadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out = true;
                    return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.timed_out && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    /// A body that sends `chunks` chunks of `size` bytes, `gap` apart, then
    /// ends; or never sends anything when `chunks` is `None`.
    struct Trickle {
        chunks: Option<usize>,
        size: usize,
        gap: Duration,
        next: Pin<Box<Sleep>>,
    }

    fn trickle(chunks: Option<usize>, size: usize, gap: Duration) -> Trickle {
        Trickle {
            chunks,
            size,
            gap,
            next: Box::pin(tokio::time::sleep(gap)),
        }
    }

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = &mut *self;
            match this.chunks {
                None => Poll::Pending,
                Some(0) => Poll::Ready(None),
                Some(n) => {
                    std::task::ready!(this.next.as_mut().poll(cx));
                    this.chunks = Some(n - 1);
                    let at = Instant::now() + this.gap;
                    this.next.as_mut().reset(at);
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; this.size])))))
                }
            }
        }
    }

    const LIMITS: BodyLimits = BodyLimits {
        timeout: Duration::from_secs(20),
        min_bytes_per_sec: 1000,
    };

    async fn read(body: Trickle) -> (Result<usize, BoxError>, Duration) {
        let started = Instant::now();
        let result = ReadDeadline::new(body, LIMITS)
            .collect()
            .await
            .map(|c| c.to_bytes().len());
        (result, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_comes_fails_at_the_timeout() {
        let (result, after) = read(trickle(None, 0, Duration::ZERO)).await;
        let err = result.expect_err("a missing body was waited for forever");
        assert!(err.is::<BodyTimedOut>(), "{err}");
        assert_eq!(after, Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_minimum_rate_fails_soon_after_the_timeout() {
        // 10 bytes a second against a minimum of 1,000: 20 s + 0.2 s.
        let (result, after) = read(trickle(Some(1000), 1, Duration::from_millis(100))).await;
        assert!(result.expect_err("a trickle").is::<BodyTimedOut>());
        assert!(after <= Duration::from_millis(20_300), "{after:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_body_at_the_minimum_rate_may_take_longer() {
        // 60 KB over 60 s, at 1,000 bytes a second: past the 20 s, never late.
        let (result, after) = read(trickle(Some(60), 1000, Duration::from_secs(1))).await;
        assert_eq!(result.expect("a steady upload"), 60_000);
        assert!(after >= Duration::from_secs(60), "{after:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_is_read_at_once() {
        let body = ReadDeadline::new(
            http_body_util::Full::new(Bytes::from_static(b"a=1")),
            LIMITS,
        );
        let collected = body.collect().await.expect("read");
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"a=1"));
    }
}
