//! Observer-study statistics: Wilcoxon signed-rank, Fligner-Killeen, VGC
//! analysis and descriptive summaries.
//!
//! The hypothesis tests reproduce SciPy (`scipy.stats.wilcoxon`,
//! `scipy.stats.fligner`) including its choice of p-value method and its
//! treatment of ties, zeros and degenerate samples; see each module for
//! the formulas, references and the tolerances of the tests that pin them
//! against `shared/reference/stats_vectors.json`. Resampling (VGC
//! bootstrap and permutation, Monte Carlo sign flips) uses the seeded
//! generator of [`rng`], so every reported number can be reproduced from
//! its seed.
//!
//! Non-finite input is refused with [`crate::Error::InvalidInput`] rather
//! than propagated as NaN: in an observer study a NaN is a data error.

use serde::Serialize;

pub mod descriptive;
pub mod fligner;
pub mod rng;
pub mod special;
pub mod vgc;
pub mod wilcoxon;

pub use descriptive::{describe, Descriptives};
pub use fligner::{fligner, Center, FlignerResult};
pub use vgc::{vgc, vgc_auc, vgc_curve, ReaderRatings, VgcEstimate, VgcOptions, VgcResult};
pub use wilcoxon::{wilcoxon, WilcoxonResult};

use crate::{Error, Result};

/// Alternative hypothesis of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    /// The location differs from zero in either direction.
    #[default]
    TwoSided,
    /// The location is below zero.
    Less,
    /// The location is above zero.
    Greater,
}

/// Readers in a multi-reader analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReaderModel {
    /// The readers are the population of interest: only cases are
    /// resampled.
    #[default]
    Fixed,
    /// The readers are a sample of readers: they are resampled too, which
    /// widens the pooled interval.
    Random,
}

impl std::str::FromStr for Alternative {
    type Err = Error;

    /// Parses SciPy's spelling: `two-sided`, `less`, `greater`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "two-sided" => Ok(Alternative::TwoSided),
            "less" => Ok(Alternative::Less),
            "greater" => Ok(Alternative::Greater),
            _ => Err(Error::InvalidInput(format!(
                "alternative {s:?} is not one of two-sided, less, greater"
            ))),
        }
    }
}

impl std::str::FromStr for ReaderModel {
    type Err = Error;

    /// Parses `fixed` or `random`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fixed" => Ok(ReaderModel::Fixed),
            "random" => Ok(ReaderModel::Random),
            _ => Err(Error::InvalidInput(format!(
                "readers {s:?} is not one of fixed, random"
            ))),
        }
    }
}

/// Refuses NaN and infinite values, naming the list and the position.
fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::InvalidInput(format!(
            "{what}: value {} at index {i} is not finite",
            values[i]
        ))),
        None => Ok(()),
    }
}
