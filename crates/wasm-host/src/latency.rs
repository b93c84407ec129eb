//! Latency samples summarised by nearest-rank percentiles and their mean,
//! for every report that times calls of the module (the benchmark, the
//! policy-server load and latency runs).

use std::time::Duration;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Percentiles {
    /// `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Percentiles> {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let last = sorted.len().checked_sub(1)?;
        // Nearest rank: the smallest sample with at least q of them at or below it.
        let pick =
            |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, last + 1) - 1];
        Some(Percentiles {
            count: sorted.len(),
            p50: pick(0.5),
            p90: pick(0.9),
            p99: pick(0.99),
            max: sorted[last],
            mean: sorted.iter().sum::<Duration>() / u32::try_from(sorted.len()).ok()?,
        })
    }
}

/// Milliseconds with two decimals, as the reports print them.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max, p.mean),
            (
                100,
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99),
                Duration::from_millis(100),
                Duration::from_micros(50_500)
            )
        );
        assert_eq!(
            Percentiles::of(&[Duration::from_millis(7)]).unwrap().p99,
            Duration::from_millis(7)
        );
        assert!(Percentiles::of(&[]).is_none());
    }
}
