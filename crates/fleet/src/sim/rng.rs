//! A seeded random source and the latency distribution the simulation
//! draws from: no dependency, the same numbers for the same seed.

use std::time::Duration;

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and good enough to
/// draw latencies; deterministic for a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The 90th percentile of the standard normal distribution.
const Z90: f64 = 1.281_551_565_5;

/// A latency: log-normal with the given median and 90th percentile (the
/// two figures a benchmark reports), drawn no longer than 10 × the p90.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Half the draws are shorter.
    pub median: Duration,
    /// 90% of the draws are shorter (at least the median).
    pub p90: Duration,
}

impl Latency {
    /// Always `d`.
    pub fn fixed(d: Duration) -> Latency {
        Latency { median: d, p90: d }
    }

    /// From a median and p90 in milliseconds.
    pub fn ms(median: f64, p90: f64) -> Latency {
        Latency {
            median: Duration::from_secs_f64(median.max(0.0) / 1000.0),
            p90: Duration::from_secs_f64(p90.max(median).max(0.0) / 1000.0),
        }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let median = self.median.as_secs_f64();
        let p90 = self.p90.as_secs_f64();
        if p90 <= median || median <= 0.0 {
            return self.median;
        }
        let sigma = (p90 / median).ln() / Z90;
        let draw = median * (sigma * rng.normal()).exp();
        Duration::from_secs_f64(draw.min(10.0 * p90))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_numbers() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(
            xs,
            (0..5).map(|_| Rng::new(8).next_u64()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn draws_follow_the_median_and_p90() {
        let latency = Latency::ms(100.0, 300.0);
        let mut rng = Rng::new(42);
        let mut draws: Vec<f64> = (0..20_000)
            .map(|_| latency.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[draws.len() / 2];
        let p90 = draws[draws.len() * 9 / 10];
        assert!((median - 100.0).abs() < 5.0, "median {median}");
        assert!((p90 - 300.0).abs() < 20.0, "p90 {p90}");
        assert!(draws.iter().all(|d| *d > 0.0 && *d <= 3000.0));
    }

    #[test]
    fn a_fixed_latency_never_varies() {
        let mut rng = Rng::new(1);
        let fixed = Latency::fixed(Duration::from_millis(250));
        assert!((0..100).all(|_| fixed.sample(&mut rng) == Duration::from_millis(250)));
    }
}
