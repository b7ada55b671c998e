//! Observer studies: does the uncertainty map change how clinicians edit?
//!
//! A study (see [`manifest`]) has observers edit the automatic contours of
//! each case twice: without the map (step 1) and, weeks later, with it
//! (step 2), rating each result and timing the editing. [`analysis`]
//! measures the edits and computes the statistics of the reference study
//! (VGC of ratings, Wilcoxon of metrics and times, Fligner-Killeen across
//! observers, outliers); [`report`] writes `report.md`, CSV tables,
//! `results.json` and the [`plots`].

pub mod analysis;
pub mod manifest;
pub mod plots;
pub mod report;

pub use analysis::{analyse, measure, StudyResults};
pub use manifest::Manifest;
