//! Descriptive statistics, computed the way NumPy computes them.
//!
//! The tests below a rank statistic (Fligner-Killeen ranks absolute
//! deviations from a centre) are sensitive to the last bit of that centre:
//! two deviations that are equal in exact arithmetic tie or not depending
//! on rounding. So sums use NumPy's pairwise summation (blocks of eight
//! partial sums, `numpy/_core/src/umath/loops_utils.h.src`), means divide
//! that sum by `n`, and percentiles use NumPy's default `linear` rule with
//! its two-sided interpolation. With these, halo reproduces SciPy's ties
//! bit for bit.

use serde::Serialize;

/// Sum of `values` in NumPy's pairwise order (`np.sum` of a contiguous
/// float64 array). Empty input gives 0.
pub fn sum(values: &[f64]) -> f64 {
    // NumPy's block size: below it, eight interleaved accumulators.
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |acc, v| acc + v);
    }
    if n > BLOCK {
        let half = n / 2;
        let half = half - half % 8;
        return sum(&values[..half]) + sum(&values[half..]);
    }

    let mut r = [0.0; 8];
    r.copy_from_slice(&values[..8]);
    let whole = n - n % 8;
    for chunk in values[8..whole].chunks_exact(8) {
        for (acc, v) in r.iter_mut().zip(chunk) {
            *acc += v;
        }
    }
    let mut total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for v in &values[whole..] {
        total += v;
    }
    total
}

/// Arithmetic mean, `sum / n` as `np.mean`. Empty input gives NaN.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    sum(values) / values.len() as f64
}

/// Variance with `ddof` delta degrees of freedom, as `np.var(ddof=...)`:
/// `sum((x - mean)^2) / (n - ddof)`. NaN when `n <= ddof`.
pub fn variance(values: &[f64], ddof: usize) -> f64 {
    if values.len() <= ddof {
        return f64::NAN;
    }

    let m = mean(values);
    let squares: Vec<f64> = values.iter().map(|v| (v - m) * (v - m)).collect();
    sum(&squares) / (values.len() - ddof) as f64
}

/// Median, as `np.median`: the middle value, or the mean of the two middle
/// values for even `n`. Empty input gives NaN.
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// The `q`-th percentile (`0 <= q <= 100`) with NumPy's default `linear`
/// rule (Hyndman and Fan type 7): virtual index `h = q / 100 (n - 1)` into
/// the sorted values, interpolated between its neighbours. Empty input
/// gives NaN.
///
/// # Panics
///
/// If a value is NaN (callers check for finite input first).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("percentile input is NaN-free"));
    percentile_sorted(&sorted, q)
}

/// [`percentile`] of values already sorted ascending.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }

    let h = q / 100.0 * (n - 1) as f64;
    let lo = (h.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let t = h - lo as f64;

    // NumPy's `_lerp` interpolates from the nearer end, so that t = 1 gives
    // exactly the upper value.
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Average ranks (1-based), ties sharing the mean of their ordinal ranks,
/// as `scipy.stats.rankdata(method="average")`. Also returns the size of
/// every tie group (groups of one included), in ascending value order.
///
/// # Panics
///
/// If a value is NaN (callers check for finite input first).
pub fn rank_average(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| {
        values[i]
            .partial_cmp(&values[j])
            .expect("rank input is NaN-free")
    });

    let mut ranks = vec![0.0; values.len()];
    let mut groups = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Ordinal ranks start + 1 ..= end; their mean.
        let rank = (start + 1) as f64 + (end - start - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        groups.push(end - start);
        start = end;
    }
    (ranks, groups)
}

/// Summary of a sample: the figures a study table reports.
///
/// Percentiles follow NumPy's `linear` rule; `sd` is the sample standard
/// deviation (`ddof = 1`). An empty sample gives `n = 0` and NaN
/// everywhere (serialised as JSON `null`); one value gives NaN `sd`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Descriptives {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation, `sqrt(sum((x - mean)^2) / (n - 1))`.
    pub sd: f64,
    /// Smallest value.
    pub min: f64,
    /// First quartile (25th percentile).
    pub q1: f64,
    /// Median (50th percentile).
    pub median: f64,
    /// Third quartile (75th percentile).
    pub q3: f64,
    /// Largest value.
    pub max: f64,
}

/// Describes a sample.
///
/// # Errors
///
/// [`crate::Error::InvalidInput`] when a value is not finite.
pub fn describe(values: &[f64]) -> crate::Result<Descriptives> {
    super::check_finite("sample", values)?;

    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (min, max) = match (sorted.first(), sorted.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => (f64::NAN, f64::NAN),
    };

    Ok(Descriptives {
        n: values.len(),
        mean: mean(values),
        sd: variance(values, 1).sqrt(),
        min,
        q1: percentile_sorted(&sorted, 25.0),
        median: percentile_sorted(&sorted, 50.0),
        q3: percentile_sorted(&sorted, 75.0),
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_differs_from_sequential_like_numpy() {
        // np.sum([0.1] * 10) == 1.0 (pairwise), a sequential loop gives
        // 0.9999999999999999.
        let tenths = [0.1; 10];
        assert_eq!(sum(&tenths), 1.0);
        assert_ne!(tenths.iter().fold(0.0, |a, b| a + b), 1.0);
    }

    #[test]
    fn percentiles_follow_numpy_linear() {
        // np.percentile([1, 2, 3, 4], [25, 50, 75]) == [1.75, 2.5, 3.25]
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 25.0), 1.75);
        assert_eq!(median(&v), 2.5);
        assert_eq!(percentile(&v, 75.0), 3.25);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn average_ranks_share_ties() {
        let (r, groups) = rank_average(&[3.0, 2.0, 1.0, 2.0, 2.0, 2.0, 1.0]);
        assert_eq!(r, vec![7.0, 4.5, 1.5, 4.5, 4.5, 4.5, 1.5]);
        assert_eq!(groups, vec![2, 4, 1]);
    }

    #[test]
    fn describe_reports_empty_and_single_samples_as_nan() {
        let empty = describe(&[]).unwrap();
        assert_eq!(empty.n, 0);
        assert!(empty.mean.is_nan() && empty.median.is_nan() && empty.max.is_nan());

        let one = describe(&[2.5]).unwrap();
        assert_eq!(
            (one.mean, one.median, one.min, one.max),
            (2.5, 2.5, 2.5, 2.5)
        );
        assert!(one.sd.is_nan());

        let d = describe(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((d.sd - 1.290_994_448_735_805_6).abs() < 1e-15);
        assert!(describe(&[1.0, f64::NAN]).is_err());
    }
}
