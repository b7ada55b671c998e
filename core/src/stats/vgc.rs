//! Visual grading characteristics (VGC) analysis of paired ordinal ratings.
//!
//! Båth and Månsson (2007), *Br J Radiol* 80:169-176, compare image
//! quality ratings of a reference and a test condition as ROC analysis
//! compares scores of two classes. For one reader rating `n` cases in both
//! conditions:
//!
//! - the VGC curve plots, for each threshold `c` from the highest rating
//!   down, `P(reference >= c)` against `P(test >= c)`;
//! - its trapezoid area is `AUC = P(T > R) + P(T = R) / 2` over all
//!   `n x n` pairs of a test rating `T` and a reference rating `R` (the
//!   Mann-Whitney `U / n^2`); 0.5 means no difference, above 0.5 the test
//!   condition is rated higher;
//! - uncertainty comes from a paired bootstrap over cases (Båth and
//!   Månsson's approach; Hanley and McNeil for the AUC-U link): each
//!   replicate draws `n` case indices with replacement and keeps each
//!   case's (reference, test) pair; with several readers the same draw
//!   serves them all (fixed readers), and with [`ReaderModel::Random`] the
//!   readers are drawn with replacement too, for the pooled estimate. The
//!   standard deviation uses `ddof = 1`, the 95 % interval NumPy's `linear`
//!   2.5th and 97.5th percentiles;
//! - the p-value tests `AUC = 0.5` by swapping the two conditions within
//!   each case with probability 1/2 (the same swap for every reader):
//!   two-sided `P(|AUC* - 0.5| >= |AUC - 0.5|)`, counted without the
//!   usual `+1` so that an exhaustive enumeration (used when `2^n` is at
//!   most the number of permutations asked for) is exact;
//! - pooled readers: the mean of the reader AUCs, through the same
//!   resamples.
//!
//! AUCs are counted in integers (half-pairs), so the permutation
//! comparisons have no rounding ties. Seeds are fixed and reported; the
//! generator is [`super::rng::Rng`]. An empty reader list or case list is
//! an error. Tested on `shared/reference/stats_vectors.json`: AUCs and
//! curves exactly, exhaustive permutation p-values exactly, Monte Carlo
//! targets within five of their standard errors.

use serde::Serialize;

use super::rng::Rng;
use super::{descriptive, ReaderModel};
use crate::{Error, Result};

/// One reader's ratings of the same cases in both conditions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReaderRatings {
    /// Ratings in the reference condition (step 1), one per case.
    pub reference: Vec<f64>,
    /// Ratings in the test condition (step 2), one per case, same order.
    pub test: Vec<f64>,
}

/// Resampling settings of [`vgc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VgcOptions {
    /// Bootstrap replicates (0 skips the bootstrap: `sd` and the interval
    /// are NaN; 1 gives NaN `sd`).
    pub bootstrap: usize,
    /// Permutations (0 skips the test: p-values are NaN).
    pub permutations: usize,
    /// Seed of both resampling streams.
    pub seed: u64,
    /// Whether readers are resampled for the pooled estimate.
    pub readers: ReaderModel,
}

impl Default for VgcOptions {
    fn default() -> Self {
        VgcOptions {
            bootstrap: 2000,
            permutations: 2000,
            seed: 1,
            readers: ReaderModel::Fixed,
        }
    }
}

/// AUC with its bootstrap spread and permutation p-values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VgcEstimate {
    /// Area under the VGC curve.
    pub auc: f64,
    /// Mean of the bootstrap AUCs (see [`within_case_concordance`] for why
    /// it differs from `auc`).
    pub bootstrap_mean: f64,
    /// Bootstrap standard deviation (`ddof = 1`).
    pub sd: f64,
    /// 2.5th percentile of the bootstrap AUCs.
    pub ci_low: f64,
    /// 97.5th percentile of the bootstrap AUCs.
    pub ci_high: f64,
    /// Two-sided permutation p-value of `AUC = 0.5`.
    pub pvalue: f64,
    /// One-sided `P(AUC* >= AUC)`: evidence that the test condition rates
    /// higher.
    pub pvalue_greater: f64,
    /// One-sided `P(AUC* <= AUC)`.
    pub pvalue_less: f64,
}

/// Result of [`vgc`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VgcResult {
    /// One estimate per reader, in input order.
    pub readers: Vec<VgcEstimate>,
    /// The readers pooled: mean of the reader AUCs.
    pub pooled: VgcEstimate,
    /// Number of cases.
    pub cases: usize,
    /// Whether the permutation p-values enumerate all `2^cases` swaps.
    pub exact_permutation: bool,
    /// The settings used, seed included.
    pub options: VgcOptions,
}

/// Area under the VGC curve of one reader: `P(T > R) + P(T = R) / 2` over
/// all pairs of a test rating `T` and a reference rating `R` (the two
/// lists may differ in length). Exact for ratings of up to 2^26 cases.
///
/// # Errors
///
/// [`Error::InvalidInput`] when a list is empty or holds a non-finite value.
pub fn vgc_auc(reference: &[f64], test: &[f64]) -> Result<f64> {
    check_list("reference", reference)?;
    check_list("test", test)?;

    let levels = Levels::new([reference, test].into_iter());
    let hr = levels.histogram(reference);
    let ht = levels.histogram(test);
    let denominator = 2 * reference.len() as u64 * test.len() as u64;
    Ok(auc_half_pairs(&hr, &ht) as f64 / denominator as f64)
}

/// Points of the empirical VGC curve, `(P(R >= c), P(T >= c))` for each
/// threshold `c` from the highest level down, after `(0, 0)`. `levels`
/// (the rating scale) defaults to the values observed in either list; a
/// scale level nobody used repeats the previous point.
///
/// # Errors
///
/// As [`vgc_auc`].
pub fn vgc_curve(reference: &[f64], test: &[f64], levels: Option<&[f64]>) -> Result<Vec<[f64; 2]>> {
    check_list("reference", reference)?;
    check_list("test", test)?;

    let mut scale: Vec<f64> = match levels {
        Some(l) => l.to_vec(),
        None => Levels::new([reference, test].into_iter()).values,
    };
    scale.sort_by(f64::total_cmp);
    scale.dedup();

    let share =
        |list: &[f64], c: f64| list.iter().filter(|&&v| v >= c).count() as f64 / list.len() as f64;
    let mut points = vec![[0.0, 0.0]];
    points.extend(
        scale
            .iter()
            .rev()
            .map(|&c| [share(reference, c), share(test, c)]),
    );
    Ok(points)
}

/// Within-case concordance `D = mean([T_i > R_i] + [T_i = R_i] / 2)`.
///
/// The expected bootstrap AUC is `AUC + (D - AUC) / n` (each pair is
/// drawn against its own case with probability `1/n`), so `D` tells how
/// far the bootstrap mean sits from the AUC.
///
/// # Errors
///
/// As [`vgc_auc`], and when the lists differ in length.
pub fn within_case_concordance(reference: &[f64], test: &[f64]) -> Result<f64> {
    check_list("reference", reference)?;
    check_list("test", test)?;
    check_paired(0, reference, test)?;

    let half_pairs: u64 = reference
        .iter()
        .zip(test)
        .map(|(r, t)| {
            if t > r {
                2
            } else if t == r {
                1
            } else {
                0
            }
        })
        .sum();
    Ok(half_pairs as f64 / (2 * reference.len()) as f64)
}

/// VGC analysis of one or more readers who rated the same cases in both
/// conditions.
///
/// # Errors
///
/// [`Error::InvalidInput`] when there is no reader, a reader has no cases,
/// its two lists differ in length, readers rated different numbers of
/// cases, or a rating is not finite.
pub fn vgc(readers: &[ReaderRatings], options: &VgcOptions) -> Result<VgcResult> {
    let design = Design::new(readers)?;
    let n = design.cases;
    let nr = design.readers.len();

    // Observed AUCs, in half-pairs.
    let observed: Vec<u64> = (0..nr)
        .map(|r| design.half_pairs(r, |c| (c, false)))
        .collect();
    let full = 2 * (n as u64) * (n as u64);
    let to_auc = |half_pairs: u64| half_pairs as f64 / full as f64;

    let boot = bootstrap(&design, options);
    let perm = permutation_counts(&design, &observed, options);

    let estimate = |auc: f64, samples: &[f64], counts: &PermutationCounts| {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        VgcEstimate {
            auc,
            bootstrap_mean: descriptive::mean(samples),
            sd: descriptive::variance(samples, 1).sqrt(),
            ci_low: descriptive::percentile_sorted(&sorted, 2.5),
            ci_high: descriptive::percentile_sorted(&sorted, 97.5),
            pvalue: counts.ratio(counts.two_sided),
            pvalue_greater: counts.ratio(counts.greater),
            pvalue_less: counts.ratio(counts.less),
        }
    };

    let reader_estimates = (0..nr)
        .map(|r| {
            estimate(
                to_auc(observed[r]),
                &boot.per_reader[r],
                &perm.per_reader[r],
            )
        })
        .collect();
    let pooled_auc = observed.iter().map(|&h| to_auc(h)).sum::<f64>() / nr as f64;
    Ok(VgcResult {
        readers: reader_estimates,
        pooled: estimate(pooled_auc, &boot.pooled, &perm.pooled),
        cases: n,
        exact_permutation: perm.exact,
        options: *options,
    })
}

/// Ratings turned into indices of a common ordered scale.
struct Design {
    cases: usize,
    levels: usize,
    /// Per reader, per case: (reference level, test level).
    readers: Vec<Vec<(u32, u32)>>,
}

impl Design {
    fn new(readers: &[ReaderRatings]) -> Result<Self> {
        if readers.is_empty() {
            return Err(Error::InvalidInput("vgc: no readers".into()));
        }
        let cases = readers[0].reference.len();
        for (i, r) in readers.iter().enumerate() {
            check_list(&format!("reader {i} reference"), &r.reference)?;
            check_list(&format!("reader {i} test"), &r.test)?;
            check_paired(i, &r.reference, &r.test)?;
            if r.reference.len() != cases {
                return Err(Error::InvalidInput(format!(
                    "vgc: reader {i} rated {} cases but reader 0 rated {cases}",
                    r.reference.len()
                )));
            }
        }

        let levels = Levels::new(readers.iter().flat_map(|r| [&r.reference[..], &r.test[..]]));
        let readers = readers
            .iter()
            .map(|r| {
                r.reference
                    .iter()
                    .zip(&r.test)
                    .map(|(&a, &b)| (levels.index(a), levels.index(b)))
                    .collect()
            })
            .collect();
        Ok(Design {
            cases,
            levels: levels.values.len(),
            readers,
        })
    }

    /// Half-pair count of reader `r` over a sequence of `n` cases, where
    /// `pick(i)` gives the i-th case and whether its conditions are swapped.
    fn half_pairs(&self, r: usize, pick: impl Fn(usize) -> (usize, bool)) -> u64 {
        let mut hr = vec![0u64; self.levels];
        let mut ht = vec![0u64; self.levels];
        let ratings = &self.readers[r];
        for i in 0..self.cases {
            let (c, swap) = pick(i);
            let (a, b) = ratings[c];
            let (a, b) = if swap { (b, a) } else { (a, b) };
            hr[a as usize] += 1;
            ht[b as usize] += 1;
        }
        auc_half_pairs(&hr, &ht)
    }
}

/// Bootstrap AUCs per reader and pooled.
struct Bootstrap {
    per_reader: Vec<Vec<f64>>,
    pooled: Vec<f64>,
}

/// Paired case bootstrap (stream 0 of the seed); readers are drawn too
/// under [`ReaderModel::Random`].
fn bootstrap(design: &Design, options: &VgcOptions) -> Bootstrap {
    let n = design.cases;
    let nr = design.readers.len();
    let full = (2 * n * n) as f64;
    let mut rng = Rng::new(options.seed, 0);
    let mut per_reader = vec![Vec::with_capacity(options.bootstrap); nr];
    let mut pooled = Vec::with_capacity(options.bootstrap);

    let mut draw = vec![0usize; n];
    let mut aucs = vec![0.0; nr];
    for _ in 0..options.bootstrap {
        for d in draw.iter_mut() {
            *d = rng.below(n as u64) as usize;
        }
        for (r, auc) in aucs.iter_mut().enumerate() {
            *auc = design.half_pairs(r, |i| (draw[i], false)) as f64 / full;
            per_reader[r].push(*auc);
        }
        let mean = match options.readers {
            ReaderModel::Fixed => aucs.iter().sum::<f64>() / nr as f64,
            ReaderModel::Random => {
                (0..nr)
                    .map(|_| aucs[rng.below(nr as u64) as usize])
                    .sum::<f64>()
                    / nr as f64
            }
        };
        pooled.push(mean);
    }
    Bootstrap { per_reader, pooled }
}

/// How many permuted AUCs reach the observed one, per direction.
#[derive(Debug, Clone, Copy, Default)]
struct PermutationCounts {
    greater: u64,
    less: u64,
    two_sided: u64,
    total: u64,
}

impl PermutationCounts {
    fn add(&mut self, permuted: u64, observed: u64, centre: u64) {
        self.greater += u64::from(permuted >= observed);
        self.less += u64::from(permuted <= observed);
        self.two_sided += u64::from(permuted.abs_diff(centre) >= observed.abs_diff(centre));
        self.total += 1;
    }

    fn ratio(&self, count: u64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        count as f64 / self.total as f64
    }
}

/// Permutation counts per reader and pooled.
struct Permutation {
    per_reader: Vec<PermutationCounts>,
    pooled: PermutationCounts,
    exact: bool,
}

/// Within-case swaps of the two conditions (stream 1 of the seed), or all
/// `2^n` of them when that is no more than `options.permutations`.
fn permutation_counts(design: &Design, observed: &[u64], options: &VgcOptions) -> Permutation {
    let n = design.cases;
    let nr = design.readers.len();
    // AUC = 0.5 is n^2 half-pairs per reader.
    let centre = (n * n) as u64;
    let pooled_observed: u64 = observed.iter().sum();
    let mut per_reader = vec![PermutationCounts::default(); nr];
    let mut pooled = PermutationCounts::default();

    let mut tally = |swaps: &dyn Fn(usize) -> bool| {
        let mut total = 0;
        for (r, counts) in per_reader.iter_mut().enumerate() {
            let h = design.half_pairs(r, |i| (i, swaps(i)));
            counts.add(h, observed[r], centre);
            total += h;
        }
        pooled.add(total, pooled_observed, centre * nr as u64);
    };

    let exact = options.permutations > 0 && n < 63 && (1u64 << n) <= options.permutations as u64;
    if exact {
        for mask in 0..1u64 << n {
            tally(&|i| mask >> i & 1 == 1);
        }
    } else {
        let mut rng = Rng::new(options.seed, 1);
        let mut swaps = vec![false; n];
        for _ in 0..options.permutations {
            for s in swaps.iter_mut() {
                *s = rng.coin();
            }
            tally(&|i| swaps[i]);
        }
    }
    Permutation {
        per_reader,
        pooled,
        exact,
    }
}

/// Twice the number of pairs with `T > R` plus the number with `T = R`,
/// from rating histograms on a common ordered scale.
fn auc_half_pairs(hr: &[u64], ht: &[u64]) -> u64 {
    let mut below = 0;
    let mut total = 0;
    for (&r, &t) in hr.iter().zip(ht) {
        total += t * (2 * below + r);
        below += r;
    }
    total
}

/// The sorted distinct ratings of some lists.
struct Levels {
    values: Vec<f64>,
}

impl Levels {
    fn new<'a>(lists: impl Iterator<Item = &'a [f64]>) -> Self {
        let mut values: Vec<f64> = lists.flat_map(|l| l.iter().copied()).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        Levels { values }
    }

    fn index(&self, v: f64) -> u32 {
        // OK to unwrap_or(0): every rating was collected into the levels.
        self.values
            .binary_search_by(|x| x.total_cmp(&v))
            .unwrap_or(0) as u32
    }

    fn histogram(&self, list: &[f64]) -> Vec<u64> {
        let mut h = vec![0; self.values.len()];
        for &v in list {
            h[self.index(v) as usize] += 1;
        }
        h
    }
}

fn check_list(what: &str, list: &[f64]) -> Result<()> {
    if list.is_empty() {
        return Err(Error::InvalidInput(format!(
            "vgc: {what} ratings are empty"
        )));
    }
    super::check_finite(what, list)
}

fn check_paired(reader: usize, reference: &[f64], test: &[f64]) -> Result<()> {
    if reference.len() != test.len() {
        return Err(Error::InvalidInput(format!(
            "vgc: reader {reader} has {} reference but {} test ratings",
            reference.len(),
            test.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(vgc_auc(&[1.0, 2.0], &[2.0, 3.0]).unwrap(), 0.875);
        assert_eq!(vgc_auc(&[2.0], &[2.0]).unwrap(), 0.5);
        assert_eq!(vgc_auc(&[3.0, 3.0], &[1.0]).unwrap(), 0.0);
    }

    #[test]
    fn trapezoid_under_the_curve_is_the_auc() {
        let r = [2.0, 3.0, 3.0, 1.0, 4.0, 2.0];
        let t = [3.0, 3.0, 4.0, 2.0, 4.0, 5.0];
        let pts = vgc_curve(&r, &t, None).unwrap();
        let area: f64 = pts
            .windows(2)
            .map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0)
            .sum();
        assert!((area - vgc_auc(&r, &t).unwrap()).abs() < 1e-15);
    }

    #[test]
    fn identical_conditions_give_half_and_p_one() {
        let reader = ReaderRatings {
            reference: vec![1.0, 2.0, 3.0, 4.0],
            test: vec![1.0, 2.0, 3.0, 4.0],
        };
        let res = vgc(
            &[reader],
            &VgcOptions {
                bootstrap: 50,
                ..VgcOptions::default()
            },
        )
        .unwrap();
        assert_eq!(res.readers[0].auc, 0.5);
        assert_eq!(res.readers[0].pvalue, 1.0);
        assert!(res.exact_permutation);
    }

    #[test]
    fn mismatched_readers_are_refused() {
        let a = ReaderRatings {
            reference: vec![1.0, 2.0],
            test: vec![1.0, 2.0],
        };
        let b = ReaderRatings {
            reference: vec![1.0],
            test: vec![1.0],
        };
        let err = vgc(&[a.clone(), b], &VgcOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reader 1 rated 1 cases but reader 0 rated 2"),
            "{err}"
        );
        let c = ReaderRatings {
            reference: vec![1.0, 2.0],
            test: vec![1.0],
        };
        assert!(vgc(&[c], &VgcOptions::default()).is_err());
        assert!(vgc(&[], &VgcOptions::default()).is_err());
        let _ = a;
    }
}
