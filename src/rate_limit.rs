//! A token bucket per key — a client address (`crate::client_addr::ClientKey`) or a
//! business — for the public booking endpoint.
//!
//! Memory is bounded: buckets that have refilled completely carry no information and are
//! swept, so the table holds only clients active within the last minute.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many buckets trigger a sweep of idle ones.
const SWEEP_AT: usize = 10_000;

/// Allows `per_minute` requests per key, in bursts of up to `per_minute`.
pub struct RateLimiter<K> {
    per_minute: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter allowing `per_minute` requests per key per minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; `Err(wait)` says how long until one is available.
    pub fn check(&self, client: K) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    pub(crate) fn check_at(&self, client: K, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().expect("rate limiter lock poisoned");
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, bucket| {
                let refilled =
                    bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second;
                refilled < capacity
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn allows_the_rate_then_refuses_with_a_wait() {
        let limiter = RateLimiter::<IpAddr>::new(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(ip, t0).is_ok());
        }
        let wait = limiter.check_at(ip, t0).unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20));
        // Another client is unaffected.
        assert!(limiter.check_at("127.0.0.2".parse().unwrap(), t0).is_ok());
        // After the wait, one more is allowed.
        assert!(limiter.check_at(ip, t0 + Duration::from_secs(20)).is_ok());
    }
}
