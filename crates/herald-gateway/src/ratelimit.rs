//! Per-token rate limits: a token bucket per token (`events_per_second`
//! refilled continuously, holding at most `burst`). Events, not requests,
//! are counted, since one request may carry a batch of a thousand. A batch
//! larger than the burst passes when the bucket is full and leaves it in
//! debt, so every batch the limits allow can pass and the long-run rate
//! still holds. Pure decisions taking `now`; one mutex around the map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token's bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            level: burst,
            at: now,
        }
    }

    /// Take `n` events at `rate` per second, at most `burst` held: `Ok`, or
    /// how long until they would pass (for `Retry-After`).
    pub fn take(&mut self, n: f64, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(burst);
        self.at = now;
        let need = n.min(burst);
        if self.level >= need {
            self.level -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - self.level) / rate))
        }
    }
}

/// The buckets, by token name.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Take `n` events for `token` under `(rate, burst)`.
    pub fn take(
        &self,
        token: &str,
        n: usize,
        (rate, burst): (f64, f64),
        now: Instant,
    ) -> Result<(), Duration> {
        let mut m = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(token.to_string())
            .or_insert_with(|| Bucket::full(burst, now))
            .take(n as f64, rate, burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_passes_the_burst_then_refuses_until_refilled() {
        let t0 = Instant::now();
        let mut b = Bucket::full(10.0, t0);
        for _ in 0..10 {
            b.take(1.0, 5.0, 10.0, t0).unwrap();
        }
        // Empty: one event needs 1/5 s.
        let wait = b.take(1.0, 5.0, 10.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        // Refilled after that long.
        b.take(1.0, 5.0, 10.0, t0 + Duration::from_millis(200))
            .unwrap();
        // Never more than the burst, however long it rested.
        let later = t0 + Duration::from_secs(3600);
        b.take(10.0, 5.0, 10.0, later).unwrap();
        assert!(b.take(1.0, 5.0, 10.0, later).is_err());
    }

    #[test]
    fn a_batch_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_debt() {
        let t0 = Instant::now();
        let mut b = Bucket::full(10.0, t0);
        b.take(30.0, 10.0, 10.0, t0).unwrap();
        // 20 in debt, then 1 needed: 2.1 s at 10/s.
        assert_eq!(
            b.take(1.0, 10.0, 10.0, t0).unwrap_err(),
            Duration::from_millis(2100)
        );
        assert!(b
            .take(1.0, 10.0, 10.0, t0 + Duration::from_millis(2100))
            .is_ok());
    }

    #[test]
    fn tokens_have_their_own_buckets() {
        let t0 = Instant::now();
        let l = Limiter::default();
        l.take("a", 2, (1.0, 2.0), t0).unwrap();
        assert!(l.take("a", 1, (1.0, 2.0), t0).is_err());
        l.take("b", 2, (1.0, 2.0), t0).unwrap();
    }
}
