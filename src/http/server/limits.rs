//! Bounds on open connections, in all and per client, and the process's
//! descriptor limit they must fit in.
//!
//! Every accepted connection takes a [`Slot`] before a byte of it is read;
//! past a bound it is closed at once, so a flood from one client can hold at
//! most `max_connections_per_ip` sockets, and a flood from many at most
//! `max_connections`, leaving descriptors for everyone else. The per-client
//! table holds one counter per address that has a connection open and
//! removes it at zero, so it never has more entries than open connections.
//! IPv6 clients are counted per /64: one host usually has a whole /64 to
//! pick source addresses from. Refusals and accept errors are logged at most
//! once a second, with how many there were.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

/// Descriptors kept out of the connection budget: listeners, the store,
/// Redis, JWKS and token fetches, logs.
const RESERVED_FDS: u64 = 256;

/// Open connections, in all and per client.
pub(super) struct Connections {
    open: AtomicUsize,
    max: usize,
    max_per_client: usize,
    per_client: DashMap<IpAddr, usize>,
    refusals: RateLimited,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `max_connections` are open.
    Total,
    /// This client has `max_connections_per_ip` open.
    PerClient,
}

impl Connections {
    pub(super) fn new(max: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
            max_per_client: max_per_client.min(max),
            per_client: DashMap::new(),
            refusals: RateLimited::new(),
        })
    }

    /// A slot for a new connection from `ip`, held while it is open.
    pub(super) fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let client = client_key(ip);
        {
            let mut count = self.per_client.entry(client).or_insert(0);
            if *count >= self.max_per_client {
                drop(count);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refused::PerClient);
            }
            *count += 1;
        }
        Ok(Slot {
            table: self.clone(),
            client,
        })
    }

    /// Counts a refusal and logs, at most once a second, how many there were.
    pub(super) fn refused(&self, ip: IpAddr, why: Refused) {
        if let Some(refused) = self.refusals.note(Instant::now()) {
            let reason = match why {
                Refused::Total => "max_connections",
                Refused::PerClient => "max_connections_per_ip",
            };
            tracing::warn!(
                refused,
                reason,
                client = %ip,
                open = self.open.load(Ordering::Relaxed),
                "connections refused: too many open"
            );
        }
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.per_client.len()
    }
}

/// One open connection's place in [`Connections`].
pub(super) struct Slot {
    table: Arc<Connections>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table
            .per_client
            .remove_if_mut(&self.client, |_, count| {
                *count -= 1;
                *count == 0
            });
        self.table.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The address connections are counted under: IPv4 as is (also when mapped
/// into IPv6), IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Counts events and says, at most once a second, how many there were
/// since it last said.
pub(super) struct RateLimited {
    since_last: AtomicU64,
    last: Mutex<Option<Instant>>,
}

const LOG_EVERY: Duration = Duration::from_secs(1);

impl RateLimited {
    pub(super) fn new() -> Self {
        Self {
            since_last: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Counts one event at `now`; returns the count to log, when it is time.
    pub(super) fn note(&self, now: Instant) -> Option<u64> {
        self.since_last.fetch_add(1, Ordering::AcqRel);
        let mut last = self.last.try_lock().ok()?;
        if last.is_some_and(|at| now.saturating_duration_since(at) < LOG_EVERY) {
            return None;
        }
        *last = Some(now);
        Some(self.since_last.swap(0, Ordering::AcqRel))
    }
}

/// Raises the soft descriptor limit to the hard one (systemd starts services
/// with a soft limit of 1,024) and returns the soft limit then in force, if
/// it is known. Only a raise is attempted, so it never needs a privilege.
pub(super) fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    match limit.maximum {
        Some(hard) if hard > soft => {
            let raised = rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::info!(from = soft, to = hard, "raised the open-file limit");
                    Some(hard)
                }
                Err(e) => {
                    tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                    Some(soft)
                }
            }
        }
        _ => Some(soft),
    }
}

/// `max_connections`, lowered to what `fd_limit` descriptors can serve: each
/// client connection may hold an upstream connection too, and
/// [`RESERVED_FDS`] stay for everything else.
pub(super) fn connection_budget(max_connections: usize, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return max_connections;
    };
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
    max_connections.min(fits.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_and_total_bounds() {
        let table = Connections::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let a1 = table.open(a).expect("first from a");
        let a2 = table.open(a).expect("second from a");
        assert_eq!(table.open(a).err(), Some(Refused::PerClient));
        let b1 = table.open(b).expect("first from b");
        assert_eq!(table.open(b).err(), Some(Refused::Total));
        drop(a1);
        let b2 = table.open(b).expect("a slot was freed");
        drop((a2, b1, b2));
        assert_eq!(table.open.load(Ordering::Relaxed), 0);
        // A counter goes when it reaches zero: the table only holds clients
        // with a connection open.
        assert_eq!(table.clients(), 0);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let table = Connections::new(10, 1);
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let _one = table.open(one).expect("first");
        assert_eq!(table.open(same_64).err(), Some(Refused::PerClient));
        let _other = table.open(other_64).expect("another /64");
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        let _v4 = table.open(v4).expect("v4");
        assert_eq!(table.open(mapped).err(), Some(Refused::PerClient));
    }

    #[test]
    fn rate_limited_says_at_most_once_a_second_with_the_count() {
        let log = RateLimited::new();
        let t0 = Instant::now();
        assert_eq!(log.note(t0), Some(1));
        for i in 1..=99 {
            assert_eq!(log.note(t0 + Duration::from_millis(i * 9)), None);
        }
        assert_eq!(log.note(t0 + Duration::from_secs(1)), Some(100));
        assert_eq!(log.note(t0 + Duration::from_millis(1500)), None);
        assert_eq!(log.note(t0 + Duration::from_millis(2100)), Some(2));
    }

    #[test]
    fn the_connection_budget_fits_the_descriptor_limit() {
        assert_eq!(connection_budget(10_000, Some(65_536)), 10_000);
        assert_eq!(connection_budget(10_000, Some(1_024)), 384);
        assert_eq!(connection_budget(10_000, Some(10)), 1);
        assert_eq!(connection_budget(10_000, None), 10_000);
    }

    #[test]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        let after = raise_fd_limit();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(after, now.current);
        if now.maximum.is_some() {
            assert_eq!(now.current, now.maximum);
        }
    }
}
