//! Exponential backoff with jitter (KIP-580): `retry.backoff.ms` doubling per
//! attempt up to `retry.backoff.max.ms`, each wait randomised by ±20% so that
//! many producers retrying after the same broker failure spread out.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `attempt + 1`, after `attempt` failed attempts.
pub(crate) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    base.mul_f64(jitter).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let i = Duration::from_millis(100);
        let m = Duration::from_millis(1000);
        for _ in 0..100 {
            let b1 = backoff(i, m, 1);
            assert!(
                b1 >= Duration::from_millis(80) && b1 <= Duration::from_millis(120),
                "{b1:?}"
            );
            let b3 = backoff(i, m, 3);
            assert!(
                b3 >= Duration::from_millis(320) && b3 <= Duration::from_millis(480),
                "{b3:?}"
            );
            assert!(backoff(i, m, 30) <= m);
        }
    }
}
