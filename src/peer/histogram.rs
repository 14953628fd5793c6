//! A compact histogram of durations with logarithmic buckets, for delay percentiles.

/// Each bucket is this much wider than the previous one: percentiles are within 5 %.
const GROWTH: f64 = 1.05;
/// Values at or below this many microseconds share the first bucket.
const FIRST: f64 = 10.0;
/// Buckets, covering 10 µs to about 100 s.
const BUCKETS: usize = 340;

/// Counts of microsecond values in logarithmic buckets.
#[derive(Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Histogram(n={}, p50={}, max={})",
            self.total,
            self.percentile(50.0),
            self.max
        )
    }
}

fn bucket_of(micros: u64) -> usize {
    if (micros as f64) <= FIRST {
        return 0;
    }
    let index = ((micros as f64 / FIRST).ln() / GROWTH.ln()).ceil() as usize;
    index.min(BUCKETS - 1)
}

/// The upper bound of a bucket, in microseconds.
fn upper_bound(bucket: usize) -> u64 {
    (FIRST * GROWTH.powi(bucket as i32)).round() as u64
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.counts[bucket_of(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// What was recorded since `earlier` (a copy of this histogram taken before).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(now, before)| now.saturating_sub(*before))
            .collect();
        let total = counts.iter().sum();
        // The maximum of the interval is not known exactly: bound it by its bucket.
        let max = counts.iter().rposition(|c| *c > 0).map_or(0, |b| {
            if b == BUCKETS - 1 {
                self.max
            } else {
                upper_bound(b).min(self.max)
            }
        });
        Histogram { counts, total, max }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which `p` percent of the values fall (an upper bound within 5 %),
    /// or 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                // The last bucket also holds everything beyond the range.
                if bucket == BUCKETS - 1 {
                    return self.max;
                }
                return upper_bound(bucket).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_five_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 100); // 100 µs .. 1 s, uniform
        }
        for (p, exact) in [(50.0, 500_000.0), (90.0, 900_000.0), (99.0, 990_000.0)] {
            let got = h.percentile(p) as f64;
            assert!(
                got >= exact && got <= exact * 1.05,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.percentile(100.0), 1_000_000);
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn empty_small_and_huge_values() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), 0);
        h.record(3);
        assert_eq!(h.percentile(50.0), 3, "capped by the maximum");
        h.record(u64::MAX / 2);
        assert_eq!(h.percentile(100.0), u64::MAX / 2);
        let before = h.clone();
        let mut other = Histogram::default();
        other.record(1000);
        h.merge(&other);
        assert_eq!(h.count(), 3);
        let recent = h.since(&before);
        assert_eq!(recent.count(), 1);
        // The interval's maximum is only known to its bucket: within 5 % above.
        let p50 = recent.percentile(50.0);
        assert!((1000..=1050).contains(&p50), "p50 of the interval: {p50}");
    }
}
