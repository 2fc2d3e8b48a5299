//! Wall-clock time, injectable.
//!
//! Every expiry decision in the gateway (login state, sessions, grants, token
//! `exp`/`iat`/`nbf`) reads the time through a [`Clock`], so tests can move time
//! forward without sleeping. This module must never be bypassed with direct
//! calls to `SystemTime::now()` in code that decides access.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type UnixTime = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        system_now()
    }
}

fn system_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A clock that follows real time plus an offset the caller controls.
///
/// Used by tests (and by nothing in production) to make grants and sessions
/// expire without sleeping.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset: AtomicI64,
}

impl ManualClock {
    /// A clock that starts at the real time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves this clock forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        let offset = self.offset.load(Ordering::SeqCst);
        system_now().saturating_add_signed(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_forward() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(3600);
        let after = clock.now();
        assert!(after >= before + 3600 && after <= before + 3602);
    }
}
