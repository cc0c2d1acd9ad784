//! Exponential backoff with jitter, per cluster or environment.

use std::time::Duration;

/// Exponential backoff with full jitter: after the n-th failure in a row,
/// wait a random time in `[base·2ⁿ⁻¹ / 2, base·2ⁿ⁻¹]`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    seed: u64,
}

impl Backoff {
    /// A backoff starting at `base`, never longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        use std::hash::{BuildHasher, RandomState};
        Backoff {
            base,
            max,
            failures: 0,
            seed: RandomState::new().hash_one(std::process::id()),
        }
    }

    /// Records a failure; returns how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self
            .base
            .saturating_mul(1u32 << (self.failures - 1).min(16))
            .min(self.max);
        // xorshift: cheap randomness, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = (self.seed % 1000) as f64 / 1000.0;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }

    /// Records a success: the next failure waits `base` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<Duration> = (0..8).map(|_| b.failed()).collect();
        for (n, w) in waits.iter().enumerate() {
            let ceiling = Duration::from_secs(1 << n).min(Duration::from_secs(30));
            assert!(
                *w <= ceiling && *w >= ceiling / 2,
                "wait {n}: {w:?} vs {ceiling:?}"
            );
        }
        assert!(waits[7] <= Duration::from_secs(30));
        b.succeeded();
        assert_eq!(b.failures(), 0);
        assert!(b.failed() <= Duration::from_secs(1));
    }

    #[test]
    fn two_backoffs_do_not_wait_in_lockstep() {
        let mut a = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let wa: Vec<Duration> = (0..5).map(|_| a.failed()).collect();
        let wb: Vec<Duration> = (0..5).map(|_| b.failed()).collect();
        assert_ne!(wa, wb, "jitter differs between backoffs");
    }
}
