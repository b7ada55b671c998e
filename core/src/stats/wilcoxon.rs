//! Wilcoxon signed-rank test, with SciPy's rules.
//!
//! For differences `d_i = x_i - y_i` (computed in f64, as SciPy does),
//! rank `|d_i|` with average ranks for ties; `R+` is the sum of the ranks
//! of positive differences and `R-` that of negative ones (Wilcoxon 1945;
//! Hollander, Wolfe and Chicken, *Nonparametric Statistical Methods*, 3rd
//! ed., section 3.1). Zeros are dropped (`wilcox`), ranked but not counted
//! (`pratt`, Pratt 1959, with Cureton's 1967 normal approximation), or
//! split between `R+` and `R-` (`zsplit`).
//!
//! The reported statistic is `min(R+, R-)` for the two-sided test and `R+`
//! otherwise. p-values come from one of three paths:
//!
//! - exact: the null distribution of `R+` for `n` untied ranks, by the
//!   recurrence that adds rank `k` to every subset of `1..k-1`; a
//!   non-integral `R+` is rounded up for the lower tail and down for the
//!   upper one (conservative, SciPy gh-19872);
//! - asymptotic: `z = (R+ - n(n+1)/4) / se` with
//!   `se^2 = (n(n+1)(2n+1) - sum(t^3 - t)/2) / 24` over tie groups `t`,
//!   optional continuity correction of 0.5 towards zero;
//! - permutation: every one of the `2^n` sign flips of `d` (exact), or a
//!   seeded Monte Carlo sample of them for larger `n`.
//!
//! [`ScipyRules::V1_15`] (SciPy 1.15 and later, the default) chooses, for
//! `method = auto`: exact when there are neither ties nor zeros and
//! `n <= 50`, the exhaustive permutation test when `n <= 13`, asymptotic
//! otherwise. [`ScipyRules::V1_14`] reproduces SciPy 1.13 and 1.14: exact
//! for `n <= 50` without zeros (ties included, rounding as above),
//! asymptotic otherwise, an exact request with zeros falls back to the
//! asymptotic path, and all-zero differences under `wilcox` or `pratt` are
//! an error. Either way an all-zero sample large enough for the asymptotic
//! path has `se = 0` and gives a NaN p-value, as SciPy does.
//!
//! Tested against SciPy 1.16.3 (and the 1.14.1 variants) on the vectors of
//! `shared/reference/stats_vectors.json`: statistics exactly, exact and
//! permutation p-values exactly, asymptotic p-values to a relative 1e-12.

use serde::Serialize;

use super::rng::Rng;
use super::{descriptive, special, Alternative};
use crate::{Error, Result};

/// How zero differences are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroMethod {
    /// Drop zeros (Wilcoxon 1945); SciPy's default.
    #[default]
    Wilcox,
    /// Rank zeros with the rest but count them in neither sum (Pratt 1959).
    Pratt,
    /// Split the ranks of zeros equally between `R+` and `R-`.
    Zsplit,
}

impl std::str::FromStr for ZeroMethod {
    type Err = Error;

    /// Parses SciPy's spelling: `wilcox`, `pratt`, `zsplit`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "wilcox" => Ok(ZeroMethod::Wilcox),
            "pratt" => Ok(ZeroMethod::Pratt),
            "zsplit" => Ok(ZeroMethod::Zsplit),
            _ => Err(Error::InvalidInput(format!(
                "zero_method {s:?} is not one of wilcox, pratt, zsplit"
            ))),
        }
    }
}

/// How the p-value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Chosen from the data under the [`ScipyRules`] in force.
    #[default]
    Auto,
    /// The exact null distribution of untied ranks.
    Exact,
    /// The normal approximation with tie correction.
    Asymptotic,
    /// Sign-flip permutation test: exhaustive when `2^n <= 9999` (SciPy's
    /// default resample count), else 9999 seeded random flips.
    Permutation,
}

impl std::str::FromStr for Method {
    type Err = Error;

    /// Parses `auto`, `exact`, `asymptotic` or `permutation`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Method::Auto),
            "exact" => Ok(Method::Exact),
            "asymptotic" => Ok(Method::Asymptotic),
            "permutation" => Ok(Method::Permutation),
            _ => Err(Error::InvalidInput(format!(
                "method {s:?} is not one of auto, exact, asymptotic, permutation"
            ))),
        }
    }
}

/// Which SciPy release's choices to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum ScipyRules {
    /// SciPy 1.15 and later (the design's default).
    #[default]
    #[serde(rename = "1.15")]
    V1_15,
    /// SciPy 1.13 and 1.14.
    #[serde(rename = "1.14")]
    V1_14,
}

impl std::str::FromStr for ScipyRules {
    type Err = Error;

    /// Parses a SciPy version: `1.13` or `1.14` (and their patch releases)
    /// select [`ScipyRules::V1_14`]; `1.15` and later [`ScipyRules::V1_15`].
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput(format!("scipy version {s:?} is not 1.13 or later"));
        let mut parts = s.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        match (major, minor) {
            (1, 13..=14) => Ok(ScipyRules::V1_14),
            (1, 15..) | (2.., _) => Ok(ScipyRules::V1_15),
            _ => Err(bad()),
        }
    }
}

/// Options of [`wilcoxon`]; the default is SciPy's default call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Treatment of zero differences.
    pub zero_method: ZeroMethod,
    /// Continuity correction of the normal approximation.
    pub correction: bool,
    /// Alternative hypothesis about the location of `d`.
    pub alternative: Alternative,
    /// p-value path.
    pub method: Method,
    /// SciPy release whose rules apply.
    pub rules: ScipyRules,
    /// Seed of a Monte Carlo permutation test (used only when `n > 13`).
    pub seed: u64,
}

/// The path a p-value actually took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathTaken {
    /// Exact null distribution.
    Exact,
    /// Normal approximation.
    Asymptotic,
    /// All `2^n` sign flips.
    ExhaustivePermutation,
    /// Seeded random sign flips.
    MonteCarloPermutation,
}

/// Result of [`wilcoxon`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WilcoxonResult {
    /// `min(R+, R-)` two-sided, `R+` one-sided.
    pub statistic: f64,
    /// The p-value (NaN when undefined: all differences zero, asymptotic).
    pub pvalue: f64,
    /// The z statistic, on the asymptotic path (negative two-sided).
    pub zstatistic: Option<f64>,
    /// Sum of ranks of positive differences.
    pub r_plus: f64,
    /// Sum of ranks of negative differences.
    pub r_minus: f64,
    /// Number of pairs.
    pub n: usize,
    /// Number of zero differences.
    pub n_zero: usize,
    /// The path the p-value took.
    pub method: PathTaken,
}

/// SciPy's default `n_resamples` of a permutation test.
const PERMUTATION_RESAMPLES: usize = 9999;

/// Wilcoxon signed-rank test of `x` (one sample of differences) or of the
/// pairs `x - y`.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the sample is empty, a value is not finite,
/// `x` and `y` differ in length, or (under [`ScipyRules::V1_14`]) every
/// difference is zero with `wilcox` or `pratt`.
pub fn wilcoxon(x: &[f64], y: Option<&[f64]>, options: &Options) -> Result<WilcoxonResult> {
    super::check_finite("x", x)?;
    let d: Vec<f64> = match y {
        Some(y) => {
            super::check_finite("y", y)?;
            if x.len() != y.len() {
                return Err(Error::InvalidInput(format!(
                    "wilcoxon: x has {} values but y has {}",
                    x.len(),
                    y.len()
                )));
            }
            x.iter().zip(y).map(|(a, b)| a - b).collect()
        }
        None => x.to_vec(),
    };
    if d.is_empty() {
        return Err(Error::InvalidInput(
            "wilcoxon: no differences to test".into(),
        ));
    }

    let n_zero = d.iter().filter(|&&v| v == 0.0).count();
    if options.rules == ScipyRules::V1_14
        && n_zero == d.len()
        && options.zero_method != ZeroMethod::Zsplit
    {
        return Err(Error::InvalidInput(
            format!(
                "wilcoxon: zero_method {:?} does not work when every difference is zero \
             (scipy 1.14 rules)",
                options.zero_method
            )
            .to_lowercase(),
        ));
    }

    let ranked = Ranked::new(&d, options.zero_method);
    let stat = ranked.statistics(&d, options.zero_method);
    let path = choose_path(options, d.len(), n_zero, ranked.has_ties);
    tracing::debug!(?path, n = d.len(), n_zero, "wilcoxon p-value path");

    let (pvalue, zstatistic) = match path {
        PathTaken::Exact => (
            exact_pvalue(stat.count, stat.r_plus, options.alternative),
            None,
        ),
        PathTaken::Asymptotic => {
            let (p, z) = asymptotic_pvalue(&stat, options);
            (p, Some(z))
        }
        PathTaken::ExhaustivePermutation | PathTaken::MonteCarloPermutation => {
            (permutation_pvalue(&ranked, &d, stat.r_plus, options), None)
        }
    };

    let statistic = match options.alternative {
        Alternative::TwoSided => stat.r_plus.min(stat.r_minus),
        _ => stat.r_plus,
    };
    Ok(WilcoxonResult {
        statistic,
        pvalue,
        zstatistic,
        r_plus: stat.r_plus,
        r_minus: stat.r_minus,
        n: d.len(),
        n_zero,
        method: path,
    })
}

/// Picks the p-value path as the chosen SciPy release does.
fn choose_path(options: &Options, n: usize, n_zero: usize, has_ties: bool) -> PathTaken {
    let permutation = if n <= 13 {
        PathTaken::ExhaustivePermutation
    } else {
        PathTaken::MonteCarloPermutation
    };

    match (options.rules, options.method) {
        (_, Method::Asymptotic) => PathTaken::Asymptotic,
        (_, Method::Permutation) => permutation,
        (ScipyRules::V1_15, Method::Exact) => PathTaken::Exact,
        (ScipyRules::V1_15, Method::Auto) => {
            if n > 50 {
                PathTaken::Asymptotic
            } else if !has_ties && n_zero == 0 {
                PathTaken::Exact
            } else if n <= 13 {
                PathTaken::ExhaustivePermutation
            } else {
                PathTaken::Asymptotic
            }
        }
        (ScipyRules::V1_14, Method::Exact) if n_zero > 0 => PathTaken::Asymptotic,
        (ScipyRules::V1_14, Method::Exact) => PathTaken::Exact,
        (ScipyRules::V1_14, Method::Auto) => {
            if n <= 50 && n_zero == 0 {
                PathTaken::Exact
            } else {
                PathTaken::Asymptotic
            }
        }
    }
}

/// Ranks of `|d|` under a zero method.
struct Ranked {
    /// Rank of each difference (NaN for zeros dropped under `wilcox`).
    ranks: Vec<f64>,
    /// Sizes of the tie groups among ranked values, ascending by value (so
    /// the zeros, if ranked, form the first group).
    groups: Vec<usize>,
    /// Number of ranked differences.
    count: usize,
    /// Whether any two ranked values tie.
    has_ties: bool,
}

impl Ranked {
    fn new(d: &[f64], zero_method: ZeroMethod) -> Self {
        let keep = |v: f64| zero_method != ZeroMethod::Wilcox || v != 0.0;
        let kept: Vec<f64> = d.iter().filter(|&&v| keep(v)).map(|v| v.abs()).collect();

        // SciPy drops `wilcox` zeros by turning them into NaN, which sort
        // last: the ranks of the kept values are the same as here.
        let (kept_ranks, groups) = descriptive::rank_average(&kept);
        let mut next = kept_ranks.into_iter();
        let ranks = d
            .iter()
            .map(|&v| {
                if keep(v) {
                    next.next().unwrap_or(f64::NAN)
                } else {
                    f64::NAN
                }
            })
            .collect();

        let has_ties = groups.iter().any(|&g| g > 1);
        Ranked {
            ranks,
            groups,
            count: kept.len(),
            has_ties,
        }
    }

    /// `R+` and `R-` of `d` (ranks are those of `|d|`, so sign-flipped
    /// copies of `d` share them). Ranks are multiples of 1/2, so these sums
    /// are exact in any order.
    fn rank_sums(&self, d: &[f64], zero_method: ZeroMethod) -> (f64, f64) {
        let mut plus = 0.0;
        let mut minus = 0.0;
        let mut zeros = 0.0;
        for (&v, &r) in d.iter().zip(&self.ranks) {
            if v > 0.0 {
                plus += r;
            } else if v < 0.0 {
                minus += r;
            } else if zero_method == ZeroMethod::Zsplit {
                zeros += r;
            }
        }
        (plus + zeros / 2.0, minus + zeros / 2.0)
    }

    /// The rank sums and the moments of the normal approximation, in
    /// SciPy's order of operations.
    fn statistics(&self, d: &[f64], zero_method: ZeroMethod) -> Statistics {
        let (r_plus, r_minus) = self.rank_sums(d, zero_method);

        let count = self.count as f64;
        let mut mn = count * (count + 1.0) * 0.25;
        let mut se = count * (count + 1.0) * (2.0 * count + 1.0);
        let mut groups = &self.groups[..];
        if zero_method == ZeroMethod::Pratt {
            // Cureton (1967): remove the zeros' share of the moments, and
            // keep the zeros' tie group out of the tie correction.
            let n_zero = d.iter().filter(|&&v| v == 0.0).count();
            let nz = n_zero as f64;
            mn -= nz * (nz + 1.0) * 0.25;
            se -= nz * (nz + 1.0) * (2.0 * nz + 1.0);
            if n_zero > 0 {
                groups = &groups[1..];
            }
        }

        let tie_correct: f64 = groups.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
        let se = ((se - tie_correct / 2.0) / 24.0).sqrt();
        let z = (r_plus - mn) / se;
        Statistics {
            r_plus,
            r_minus,
            count: self.count,
            z,
            se,
        }
    }
}

/// The rank sums and the moments of the normal approximation.
struct Statistics {
    r_plus: f64,
    r_minus: f64,
    count: usize,
    z: f64,
    se: f64,
}

/// Exact p-value of `R+` for `count` untied ranks.
fn exact_pvalue(count: usize, r_plus: f64, alternative: Alternative) -> f64 {
    let pmf = signed_rank_pmf(count);
    let mean = count as f64 * (count as f64 + 1.0) / 4.0;

    // SciPy's WilcoxonDistribution: sum whichever tail lies below the mean,
    // complement otherwise. Probabilities are multiples of 2^-count, so
    // every sum and complement here is exact.
    let cdf = |k: i64| -> f64 {
        if (k as f64) <= mean {
            lower_sum(&pmf, k)
        } else {
            1.0 - upper_sum(&pmf, k + 1)
        }
    };
    let sf = |k: i64| -> f64 {
        if (k as f64) <= mean {
            upper_sum(&pmf, k)
        } else {
            1.0 - lower_sum(&pmf, k - 1)
        }
    };

    let up = r_plus.ceil() as i64;
    let down = r_plus.floor() as i64;
    match alternative {
        Alternative::Less => cdf(up),
        Alternative::Greater => sf(down),
        Alternative::TwoSided => (2.0 * sf(down).min(cdf(up))).clamp(0.0, 1.0),
    }
}

/// `P(R+ <= k)` from the probability mass function.
fn lower_sum(pmf: &[f64], k: i64) -> f64 {
    if k < 0 {
        return 0.0;
    }
    let end = (k as usize + 1).min(pmf.len());
    descriptive::sum(&pmf[..end])
}

/// `P(R+ >= k)` from the probability mass function.
fn upper_sum(pmf: &[f64], k: i64) -> f64 {
    let start = k.max(0) as usize;
    if start >= pmf.len() {
        return 0.0;
    }
    descriptive::sum(&pmf[start..])
}

/// Probability of each value `0..=n(n+1)/2` of `R+` for `n` untied ranks:
/// adding rank `k` either leaves a subset sum alone or raises it by `k`,
/// each with probability 1/2.
fn signed_rank_pmf(n: usize) -> Vec<f64> {
    let mut c = vec![1.0];
    for k in 1..=n {
        let mut next = vec![0.0; k * (k + 1) / 2 + 1];
        let m = c.len();
        let len = next.len();
        for (i, &p) in c.iter().enumerate() {
            next[i] += p * 0.5;
            next[len - m + i] += p * 0.5;
        }
        c = next;
    }
    c
}

/// Normal approximation; returns the p-value and the reported z.
fn asymptotic_pvalue(stat: &Statistics, options: &Options) -> (f64, f64) {
    let mut z = stat.z;
    if options.correction {
        let sign = match options.alternative {
            Alternative::Greater => 1.0,
            Alternative::Less => -1.0,
            Alternative::TwoSided => sign_of(z),
        };
        z -= sign * 0.5 / stat.se;
    }

    let p = match options.alternative {
        Alternative::Less => special::ndtr(z),
        Alternative::Greater => special::normal_sf(z),
        Alternative::TwoSided => 2.0 * special::normal_sf(z.abs()),
    };
    let reported = match options.alternative {
        Alternative::TwoSided => -z.abs(),
        _ => z,
    };
    (p, reported)
}

/// `np.sign`: -1, 0 or 1, NaN for NaN.
fn sign_of(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v * 0.0
    }
}

/// Sign-flip permutation p-value of `R+`, as `scipy.stats.permutation_test`
/// with `permutation_type="samples"` on one sample.
fn permutation_pvalue(ranked: &Ranked, d: &[f64], observed: f64, options: &Options) -> f64 {
    // What each difference adds to R+ as it is and when flipped; zeros add
    // a constant (half their rank under zsplit, else nothing).
    let mut base = 0.0;
    let mut as_is = Vec::with_capacity(d.len());
    let mut flipped = Vec::with_capacity(d.len());
    for (&v, &r) in d.iter().zip(&ranked.ranks) {
        if v == 0.0 {
            if options.zero_method == ZeroMethod::Zsplit {
                base += r / 2.0;
            }
            as_is.push(0.0);
            flipped.push(0.0);
        } else {
            as_is.push(if v > 0.0 { r } else { 0.0 });
            flipped.push(if v < 0.0 { r } else { 0.0 });
        }
    }
    let null_value = |flip: &dyn Fn(usize) -> bool| -> f64 {
        (0..d.len()).fold(base, |acc, i| {
            acc + if flip(i) { flipped[i] } else { as_is[i] }
        })
    };

    let n = d.len();
    let exhaustive = n < usize::BITS as usize - 1 && (1usize << n) <= PERMUTATION_RESAMPLES;
    let null: Vec<f64> = if exhaustive {
        (0..1usize << n)
            .map(|mask| null_value(&|i| mask >> i & 1 == 1))
            .collect()
    } else {
        let mut rng = Rng::new(options.seed, 0);
        (0..PERMUTATION_RESAMPLES)
            .map(|_| {
                let flips: Vec<bool> = (0..n).map(|_| rng.coin()).collect();
                null_value(&|i| flips[i])
            })
            .collect()
    };

    // SciPy counts null values within a relative 100 eps of the observed
    // one as ties, and adds one to both counts of a random (not exact) test.
    let adjustment = if exhaustive { 0.0 } else { 1.0 };
    let gamma = (f64::EPSILON * 100.0 * observed).abs();
    let total = null.len() as f64 + adjustment;
    let less =
        (null.iter().filter(|&&v| v <= observed + gamma).count() as f64 + adjustment) / total;
    let greater =
        (null.iter().filter(|&&v| v >= observed - gamma).count() as f64 + adjustment) / total;

    let p = match options.alternative {
        Alternative::Less => less,
        Alternative::Greater => greater,
        Alternative::TwoSided => 2.0 * less.min(greater),
    };
    p.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmf_sums_to_one_and_is_symmetric() {
        let pmf = signed_rank_pmf(10);
        assert_eq!(pmf.len(), 56);
        assert_eq!(descriptive::sum(&pmf), 1.0);
        for k in 0..pmf.len() {
            assert_eq!(pmf[k], pmf[pmf.len() - 1 - k], "k {k}");
        }
        // P(R+ = 0) = 2^-10.
        assert_eq!(pmf[0], 1.0 / 1024.0);
    }

    #[test]
    fn statistic_swaps_with_the_sign_of_the_differences() {
        let d = [1.0, -2.0, 3.0, 4.0, -5.0, 6.0];
        let neg: Vec<f64> = d.iter().map(|v| -v).collect();
        let opts = Options::default();
        let a = wilcoxon(&d, None, &opts).unwrap();
        let b = wilcoxon(&neg, None, &opts).unwrap();
        assert_eq!((a.r_plus, a.r_minus), (b.r_minus, b.r_plus));
        assert_eq!(a.pvalue, b.pvalue);
        assert_eq!(a.method, PathTaken::Exact);
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let opts = Options::default();
        let err = wilcoxon(&[1.0, 2.0], Some(&[1.0]), &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x has 2 values but y has 1"), "{err}");
        assert!(wilcoxon(&[], None, &opts).is_err());
        assert!(wilcoxon(&[1.0, f64::INFINITY], None, &opts).is_err());

        let v114 = Options {
            rules: ScipyRules::V1_14,
            ..opts
        };
        let err = wilcoxon(&[0.0, 0.0], None, &v114).unwrap_err().to_string();
        assert!(err.contains("every difference is zero"), "{err}");
    }

    #[test]
    fn monte_carlo_permutation_is_seeded() {
        let d: Vec<f64> = (1..=20)
            .map(|i| if i % 3 == 0 { -(i as f64) } else { i as f64 })
            .collect();
        let opts = Options {
            method: Method::Permutation,
            seed: 5,
            ..Options::default()
        };
        let a = wilcoxon(&d, None, &opts).unwrap();
        let b = wilcoxon(&d, None, &opts).unwrap();
        assert_eq!(a.pvalue, b.pvalue);
        assert_eq!(a.method, PathTaken::MonteCarloPermutation);
        // Close to the exact p-value of the same data.
        let exact = wilcoxon(
            &d,
            None,
            &Options {
                method: Method::Exact,
                ..opts
            },
        )
        .unwrap();
        assert!(
            (a.pvalue - exact.pvalue).abs() < 0.02,
            "{} vs {}",
            a.pvalue,
            exact.pvalue
        );
    }
}
