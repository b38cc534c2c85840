//! A per-key token bucket (used per client IP for unauthenticated public reads), and the
//! caps on open connections (global and per client address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;

/// Most clients tracked at once. Past it, buckets that have refilled (indistinguishable from
/// a new client's) are dropped; if every tracked client is still limited, new clients are
/// refused until some refill. An attacker with many addresses can therefore never reset
/// anyone else's limit, only be refused along with other newcomers.
const MAX_TRACKED: usize = 1_000_000;

/// Least time between two sweeps of a full table (each one walks every tracked client).
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// governor's hash-map store, shared so the limiter can ask whether a client is tracked.
struct Buckets(Arc<HashMapStateStore<IpAddr>>);

impl StateStore for Buckets {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for Buckets {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

/// Token buckets keyed by client (GCRA, from `governor`).
pub struct RateLimiter<C: Clock = DefaultClock> {
    limiter: governor::RateLimiter<IpAddr, Buckets, C, NoOpMiddleware<C::Instant>>,
    buckets: Arc<HashMapStateStore<IpAddr>>,
    /// When a full table was last swept.
    last_sweep: Mutex<Option<C::Instant>>,
    max_tracked: usize,
}

impl RateLimiter {
    /// `per_minute` steady rate plus `burst` extra.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default(), MAX_TRACKED)
    }
}

impl<C: Clock> RateLimiter<C> {
    fn with_clock(per_minute: u32, burst: u32, clock: C, max_tracked: usize) -> Self {
        let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let cells = NonZeroU32::new(per_minute.saturating_add(burst).max(1)).unwrap_or(rate);
        let quota = governor::Quota::per_minute(rate).allow_burst(cells);
        let buckets = Arc::new(HashMapStateStore::default());
        RateLimiter {
            limiter: governor::RateLimiter::new(quota, Buckets(buckets.clone()), clock),
            buckets,
            last_sweep: Mutex::new(None),
            max_tracked,
        }
    }

    /// Takes one token for `ip`'s client (IPv6 by its /64, as the connection caps count);
    /// false when the bucket is empty. A client already tracked is served from its bucket even
    /// when the table is full; only a newcomer waits for room.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let key = client_key(ip);
        if self.limiter.len() >= self.max_tracked && !self.buckets.lock().contains_key(&key) {
            // A sweep walks the whole table: at most one per interval, however many
            // newcomers knock meanwhile.
            let now = self.limiter.clock().now();
            let sweep = {
                let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
                let due = last.is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL.into());
                if due {
                    *last = Some(now);
                }
                due
            };
            if sweep {
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
            }
            if self.limiter.len() >= self.max_tracked {
                tracing::warn!("public rate limiter is tracking its maximum of clients");
                return false;
            }
        }
        self.limiter.check_key(&key).is_ok()
    }
}

/// The address a per-client cap counts: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64,
/// the block one subscriber usually holds.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// Counts open connections against a global and a per-client cap.
pub struct ConnectionCaps {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection; dropping it frees its place.
pub struct ConnectionPermit {
    caps: Arc<ConnectionCaps>,
    client: IpAddr,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapExceeded {
    /// The node holds `max_connections`.
    Total,
    /// This client holds `max_connections_per_ip`.
    Client,
}

impl ConnectionCaps {
    /// Caps of `max_total` connections, `max_per_client` per client address.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(ConnectionCaps {
            max_total,
            max_per_client,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a place for a connection from `ip`, or says which cap is full.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, CapExceeded> {
        let client = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *open;
        if *total >= self.max_total {
            return Err(CapExceeded::Total);
        }
        let n = per.entry(client).or_insert(0);
        if *n >= self.max_per_client {
            return Err(CapExceeded::Client);
        }
        *n += 1;
        *total += 1;
        Ok(ConnectionPermit {
            caps: self.clone(),
            client,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_count_per_client_and_in_total() {
        let caps = ConnectionCaps::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let p1 = caps.try_acquire(a).unwrap();
        let _p2 = caps.try_acquire(a).unwrap();
        assert_eq!(caps.try_acquire(a).err(), Some(CapExceeded::Client));
        // One IPv6 /64 is one client.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let _p3 = caps.try_acquire(v6a).unwrap();
        assert_eq!(caps.try_acquire(v6b).err(), Some(CapExceeded::Total));
        drop(p1);
        let _p4 = caps.try_acquire(v6b).unwrap();
        assert_eq!(caps.try_acquire(v6b).err(), Some(CapExceeded::Total));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), a);
    }

    #[test]
    fn bucket_empties_and_refills() {
        let clock = governor::clock::FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(60, 0, clock.clone(), MAX_TRACKED);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..60 {
            assert!(rl.allow(ip));
        }
        assert!(!rl.allow(ip));
        clock.advance(std::time::Duration::from_secs(1));
        assert!(rl.allow(ip));
        assert!(!rl.allow(ip));
        assert!(rl.allow([127, 0, 0, 2].into()));
        // One IPv6 /64 is one client: rotating addresses inside it gets no fresh bucket.
        let rl = RateLimiter::with_clock(60, 0, clock.clone(), MAX_TRACKED);
        for i in 0..60u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 1, 2, i, 0, 0, 1]);
            assert!(rl.allow(ip));
        }
        assert!(!rl.allow("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert!(rl.allow("2001:db8:1:3::1".parse().unwrap()));
    }

    /// Many fresh addresses cannot reset a limited client's bucket (the old limiter cleared
    /// every bucket once it tracked 100k clients).
    #[test]
    fn many_addresses_do_not_reset_a_limited_client() {
        let clock = governor::clock::FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(60, 0, clock.clone(), 100);
        let victim: IpAddr = [10, 0, 0, 1].into();
        while rl.allow(victim) {}
        for i in 0..500u32 {
            let _ = rl.allow(IpAddr::from((0x0b00_0000 + i).to_be_bytes()));
        }
        assert!(!rl.allow(victim), "still limited after the flood");
        // Once everything has refilled, the tracked set is reclaimed and newcomers get in.
        clock.advance(std::time::Duration::from_secs(120));
        assert!(rl.allow([12, 0, 0, 1].into()));
        assert!(rl.allow(victim));
    }

    /// A full table (a flood from many addresses) refuses newcomers only: a client already
    /// tracked keeps its own bucket (the limiter used to refuse everyone while full), and the
    /// whole-table sweep runs at most once per interval.
    #[test]
    fn a_full_table_still_serves_tracked_clients() {
        let clock = governor::clock::FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(60, 0, clock.clone(), 100);
        let regular: IpAddr = [10, 0, 0, 2].into();
        assert!(rl.allow(regular));
        for i in 0..500u32 {
            let _ = rl.allow(IpAddr::from((0x0b00_0000 + i).to_be_bytes()));
        }
        assert!(!rl.allow([12, 0, 0, 9].into()), "a newcomer waits for room");
        assert!(rl.allow(regular), "the tracked client is still served");
        let swept_at = *rl.last_sweep.lock().unwrap();
        assert!(swept_at.is_some());
        let _ = rl.allow([12, 0, 0, 10].into());
        assert_eq!(
            *rl.last_sweep.lock().unwrap(),
            swept_at,
            "no second sweep yet"
        );
        clock.advance(std::time::Duration::from_secs(120));
        assert!(
            rl.allow([12, 0, 0, 11].into()),
            "room once the flood has refilled"
        );
    }
}
