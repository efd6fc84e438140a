//! Summaries of measurements: percentiles of one run's samples (nearest rank), and the median, min and
//! max of a figure over repeated runs. Figures are printed, never compared against a limit.

use serde::Serialize;

/// One figure over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many runs it summarises.
    pub runs: usize,
}

impl Spread {
    /// The median (mean of the middle two for an even count), min and max of `values`; `None` when
    /// empty. Non-finite values are left out.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Self { median, min: v[0], max: v[n - 1], runs: n })
    }
}

/// The `p`-th percentile (0 < p ≤ 100) of `samples` by the nearest-rank method: the smallest sample with
/// at least p % of the samples at or below it. `None` when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0 * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// p50, p99 and max of one run's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(samples: &[f64]) -> Option<Self> {
        Some(Self {
            p50: percentile(samples, 50.0)?,
            p99: percentile(samples, 99.0)?,
            max: percentile(samples, 100.0)?,
        })
    }
}

/// p50, p99 and max, each over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySpread {
    pub p50: Spread,
    pub p99: Spread,
    pub max: Spread,
    /// Samples per run (the smallest run's count).
    pub samples_per_run: usize,
}

impl LatencySpread {
    /// Summarises runs of samples; runs without samples are left out. `None` when no run has any.
    pub fn of(runs: &[Vec<f64>]) -> Option<Self> {
        let per_run: Vec<Percentiles> = runs.iter().filter_map(|r| Percentiles::of(r)).collect();
        let pick = |f: fn(&Percentiles) -> f64| per_run.iter().map(f).collect::<Vec<_>>();
        Some(Self {
            p50: Spread::of(&pick(|p| p.p50))?,
            p99: Spread::of(&pick(|p| p.p99))?,
            max: Spread::of(&pick(|p| p.max))?,
            samples_per_run: runs.iter().map(Vec::len).filter(|n| *n > 0).min().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value_and_of_an_even_count_the_mean_of_the_middle_two() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0, runs: 3 }));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).map(|s| s.runs), Some(1));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 99.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn latency_runs_are_summarised_per_percentile() {
        let runs = vec![vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 6.0], vec![]];
        let s = LatencySpread::of(&runs).unwrap_or_else(|| panic!("two runs have samples"));
        assert_eq!(s.p50, Spread { median: 3.0, min: 2.0, max: 4.0, runs: 2 });
        assert_eq!(s.max.max, 6.0);
        assert_eq!(s.samples_per_run, 3);
    }
}
