//! A per-key token bucket (used per client IP for unauthenticated public reads), and the
//! caps on open connections (global and per client address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Token buckets keyed by IP.
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` steady rate plus `burst` extra.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute),
            burst: f64::from(per_minute.saturating_add(burst).max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`'s client (IPv6 by its /64, as the connection caps count);
    /// false when the bucket is empty.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = client_key(ip);
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let (tokens, last) = buckets.entry(ip).or_insert((self.burst, now));
        let refill = now.duration_since(*last).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
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
        let rl = RateLimiter::new(60, 0);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(rl.allow_at(ip, t0));
        }
        assert!(!rl.allow_at(ip, t0));
        assert!(rl.allow_at(ip, t0 + std::time::Duration::from_secs(1)));
        assert!(rl.allow_at([127, 0, 0, 2].into(), t0));
        // One IPv6 /64 is one client: rotating addresses inside it gets no fresh bucket.
        let rl = RateLimiter::new(60, 0);
        for i in 0..60u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 1, 2, i, 0, 0, 1]);
            assert!(rl.allow_at(ip, t0));
        }
        assert!(!rl.allow_at("2001:db8:1:2:ffff::9".parse().unwrap(), t0));
        assert!(rl.allow_at("2001:db8:1:3::1".parse().unwrap(), t0));
    }
}
