//! How long to wait before a retry.
//!
//! Owns the one back-off policy for every retry that waits (the grade
//! queue's, and a failing platform JWKS's refetch; the proxy and the Redis
//! store retry a request at most once, at once): a wait that
//! doubles from a base with each failed attempt, up to a cap, with jitter
//! (uniform between
//! half that ceiling and the ceiling, so that deliveries that failed together
//! do not come back together, and a failing platform is never retried at
//! once), and a server's `Retry-After`. It computes waits only: it
//! never sleeps, never retries, and never decides whether an error is worth
//! retrying. The attempt count is the caller's, so a retry kept in a store
//! (the grade queue) and a retry in a loop use the same figures.
//!
//! Written here rather than taken from a crate: `backon` and
//! `exponential-backoff` hand out waits from a stateful iterator with their own
//! `fastrand` source, and neither reads `Retry-After`; the grade queue needs a wait for a stored
//! attempt number.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, header};
use rand::Rng;

use crate::clock::UnixTime;

/// Exponential back-off with jitter and a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Waits of at most `base` after the first failure, doubling after each
    /// further one, never above `cap` (a `cap` below `base` is taken as `base`).
    pub const fn new(base: Duration, cap: Duration) -> Self {
        let cap = if cap.as_nanos() < base.as_nanos() {
            base
        } else {
            cap
        };
        Self { base, cap }
    }

    /// The longest wait after failed attempt number `attempt` (1 for the
    /// first failure; 0 counts as 1): `base × 2^(attempt − 1)`, at most the cap.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait after failed attempt `attempt`, drawn from the thread's random
    /// source; see [`Backoff::delay_with`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(attempt, retry_after, &mut rand::rng())
    }

    /// The wait after failed attempt `attempt`: uniform in
    /// `[ceiling(attempt) / 2, ceiling(attempt)]`, or the server's `retry_after` if that is
    /// longer. Every wait is at most the cap, `Retry-After` included: a
    /// platform's header can neither park a retry for years nor overflow the
    /// caller's due time; a retry that comes too early is refused again and
    /// costs one attempt.
    pub fn delay_with<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = rng.random_range(ceiling / 2..=ceiling);
        jittered
            .max(retry_after.unwrap_or(Duration::ZERO))
            .min(self.cap)
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3) as a wait from `now`, in Unix
/// seconds: delta-seconds, or an HTTP-date read by `httpdate` (a date already
/// past is a wait of zero). Delta-seconds too large to hold are the longest
/// wait. Anything else is `None`.
pub fn parse_retry_after(value: &str, now: UnixTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// The first `Retry-After` header of a response, read by [`parse_retry_after`].
pub fn retry_after(headers: &HeaderMap, now: UnixTime) -> Option<Duration> {
    parse_retry_after(headers.get(header::RETRY_AFTER)?.to_str().ok()?, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    /// The grade worker's policy (`grades/worker.rs`).
    const GRADES: Backoff = Backoff::new(Duration::from_secs(20), Duration::from_secs(3600));

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let ceilings: Vec<u64> = (0..=11).map(|a| GRADES.ceiling(a).as_secs()).collect();
        assert_eq!(
            ceilings,
            [20, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]
        );
        assert_eq!(GRADES.ceiling(u32::MAX), secs(3600));
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.ceiling(u32::MAX), Duration::MAX);
        let inverted = Backoff::new(secs(5), secs(1));
        assert_eq!(inverted.ceiling(9), secs(5));
    }

    #[test]
    fn delays_are_jittered_between_half_the_ceiling_and_the_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let ceiling = GRADES.ceiling(attempt);
            let draws: Vec<Duration> = (0..500)
                .map(|_| GRADES.delay_with(attempt, None, &mut rng))
                .collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Never less than half: a failing platform is not retried at once.
            assert!(draws.iter().all(|d| *d >= ceiling / 2), "attempt {attempt}");
            assert!(
                draws.iter().any(|d| *d < ceiling * 6 / 10),
                "attempt {attempt}"
            );
            assert!(
                draws.iter().any(|d| *d > ceiling * 9 / 10),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (1..20)
                .map(|a| GRADES.delay_with(a, None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            assert!(GRADES.delay_with(1, Some(secs(60)), &mut rng) >= secs(60));
            assert_eq!(
                GRADES.delay_with(1, Some(secs(86_400 * 365)), &mut rng),
                secs(3600)
            );
            assert!(GRADES.delay_with(20, Some(secs(1)), &mut rng) <= secs(3600));
        }
        assert!(GRADES.delay(1, None) <= secs(20));
    }

    #[test]
    fn retry_after_reads_seconds_and_each_http_date_form() {
        for (value, now, wait) in [
            ("120", 0, Some(120)),
            (" 120 ", 0, Some(120)),
            ("0", 0, Some(0)),
            ("99999999999999999999999", 0, Some(u64::MAX)),
            ("Thu, 01 Jan 1970 00:01:40 GMT", 40, Some(60)),
            ("Thursday, 01-Jan-70 00:01:40 GMT", 40, Some(60)),
            ("Thu Jan  1 00:01:40 1970", 40, Some(60)),
            ("Thu, 01 Jan 1970 00:01:40 GMT", 1_000, Some(0)),
            ("soon", 0, None),
            ("", 0, None),
            ("-5", 0, None),
            ("+5", 0, None),
            ("1.5", 0, None),
            ("Thu, 01 Jan 1970 00:01:40", 0, None),
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                wait.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn retry_after_takes_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, 0), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h, 0), Some(secs(30)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_bytes(b"3\xe90").expect("header"),
        );
        assert_eq!(retry_after(&h, 0), None);
    }
}
