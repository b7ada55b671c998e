//! Fligner-Killeen test of equal variances (scale) across groups.
//!
//! Following Conover, Johnson and Johnson (1981), *Technometrics* 23(4),
//! p. 355, as SciPy's `scipy.stats.fligner`: centre each group (median by
//! default), rank the absolute deviations `|x_ij - c_i|` of all `N` values
//! together (average ranks for ties), turn ranks into normal scores
//! `a_ij = Phi^-1(1/2 + r_ij / (2 (N + 1)))`, and compute
//!
//! `X^2 = sum_i n_i (mean_i(a) - mean(a))^2 / var(a)` (`var` with `N - 1`),
//!
//! referred to chi-squared with `k - 1` degrees of freedom (upper tail).
//! When every deviation ties (each group constant), `var(a) = 0` and both
//! the statistic and the p-value are NaN, as in SciPy.
//!
//! Centres and means are computed as NumPy does (see
//! [`super::descriptive`]), so ties among deviations match SciPy's.
//! Tested against SciPy 1.16.3 on `shared/reference/stats_vectors.json` to
//! a relative 1e-12.

use serde::Serialize;

use super::{descriptive, special};
use crate::{Error, Result};

/// Centre of each group.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Center {
    /// The median (the Brown-Forsythe-like, robust choice; SciPy's default).
    #[default]
    Median,
    /// The mean.
    Mean,
    /// The mean after cutting `proportiontocut` of the sorted values from
    /// each end (`int(proportiontocut * n)` values, as `scipy.stats.trim_mean`).
    Trimmed {
        /// Proportion cut from each end, `0 <= p < 0.5`; SciPy's default is
        /// 0.05.
        proportiontocut: f64,
    },
}

/// Result of [`fligner`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlignerResult {
    /// The chi-squared statistic (NaN when every deviation ties).
    pub statistic: f64,
    /// Upper-tail chi-squared p-value with `df` degrees of freedom.
    pub pvalue: f64,
    /// Degrees of freedom, groups minus one.
    pub df: usize,
}

/// Fligner-Killeen test on two or more groups.
///
/// # Errors
///
/// [`Error::InvalidInput`] with fewer than two groups, an empty group, a
/// value that is not finite, or a trimming proportion outside `[0, 0.5)`.
pub fn fligner(groups: &[&[f64]], center: Center) -> Result<FlignerResult> {
    if groups.len() < 2 {
        return Err(Error::InvalidInput(format!(
            "fligner: needs at least two groups, got {}",
            groups.len()
        )));
    }
    for (i, g) in groups.iter().enumerate() {
        if g.is_empty() {
            return Err(Error::InvalidInput(format!("fligner: group {i} is empty")));
        }
        super::check_finite(&format!("group {i}"), g)?;
    }
    if let Center::Trimmed { proportiontocut: p } = center {
        if !(0.0..0.5).contains(&p) {
            return Err(Error::InvalidInput(format!(
                "fligner: proportiontocut {p} is outside [0, 0.5)"
            )));
        }
    }

    let deviations: Vec<f64> = groups
        .iter()
        .flat_map(|g| {
            let c = centre(g, center);
            g.iter().map(move |v| (v - c).abs())
        })
        .collect();
    let n_total = deviations.len() as f64;
    let (ranks, _) = descriptive::rank_average(&deviations);
    let scores: Vec<f64> = ranks
        .iter()
        .map(|r| special::ndtri(r / (2.0 * (n_total + 1.0)) + 0.5))
        .collect();

    let grand_mean = descriptive::mean(&scores);
    let var = descriptive::variance(&scores, 1);
    let mut start = 0;
    let mut between = 0.0;
    for g in groups {
        let group_mean = descriptive::mean(&scores[start..start + g.len()]);
        between += g.len() as f64 * (group_mean - grand_mean).powi(2);
        start += g.len();
    }

    // 0 / 0 when every score ties: NaN, as SciPy.
    let statistic = between / var;
    let df = groups.len() - 1;
    Ok(FlignerResult {
        statistic,
        pvalue: special::chi2_sf(df as f64, statistic),
        df,
    })
}

/// The centre of one group, as NumPy and SciPy compute it.
fn centre(values: &[f64], center: Center) -> f64 {
    match center {
        Center::Median => descriptive::median(values),
        Center::Mean => descriptive::mean(values),
        Center::Trimmed { proportiontocut } => {
            // trim_mean sorts first: the mean of the sorted values can
            // differ from `mean` in the last bit, and that decides ties.
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            let cut = (proportiontocut * sorted.len() as f64) as usize;
            descriptive::mean(&sorted[cut..sorted.len() - cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_groups_give_no_evidence() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let r = fligner(&[&a, &a], Center::Median).unwrap();
        assert!(r.statistic.abs() < 1e-12, "statistic {}", r.statistic);
        assert!((r.pvalue - 1.0).abs() < 1e-9);
        assert_eq!(r.df, 1);
    }

    #[test]
    fn bad_groups_are_refused() {
        let a = [1.0, 2.0];
        assert!(fligner(&[&a], Center::Median).is_err());
        assert!(fligner(&[&a, &[]], Center::Median)
            .unwrap_err()
            .to_string()
            .contains("group 1"));
        let t = Center::Trimmed {
            proportiontocut: 0.5,
        };
        assert!(fligner(&[&a, &a], t).is_err());
    }
}
