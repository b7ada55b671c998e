//! Per-case measurements and the study statistics.
//!
//! For every case, observer and structure: Dice and surface Dice of step 1
//! against the automatic contour, step 2 against it, and step 1 against
//! step 2; the three volumes; and the histogram of edited voxels (edited
//! XOR automatic) by uncertainty, in bins of width 0.1 found by integer
//! index `min(floor(u / 0.1), bins - 1)`. Then the statistics of the
//! reference study: VGC of the ratings (step 1 reference, step 2 test),
//! Wilcoxon of each metric and of the editing time per observer,
//! Fligner-Killeen across observers, and outliers of the step 2 / step 1
//! volume ratio.

use rayon::prelude::*;
use serde::Serialize;

use super::manifest::{ContourSource, Manifest};
use crate::stats::{self, wilcoxon, Descriptives, ReaderRatings, VgcOptions, VgcResult};
use crate::{Error, Result, Volume};

/// Width of an uncertainty bin.
pub const BIN_WIDTH: f64 = 0.1;
/// Number of uncertainty bins: 0 to 0.5, the range of a binary ensemble's
/// standard deviation (the last bin also takes 0.5 itself).
pub const BINS: usize = 5;

/// The three comparisons of each case, observer and structure.
pub const COMPARISONS: [&str; 3] = ["step1_vs_auto", "step2_vs_auto", "step1_vs_step2"];

/// Overlap of two masks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairMetrics {
    /// Dice coefficient.
    pub dice: f64,
    /// Surface Dice at the study's tolerance; `None` until
    /// `halo_core::metrics` provides it.
    pub surface_dice: Option<f64>,
}

/// Measurements of one case, observer and structure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRecord {
    /// Case identifier.
    pub case: String,
    /// Observer identifier.
    pub observer: String,
    /// Structure name.
    pub structure: String,
    /// In [`COMPARISONS`] order.
    pub comparisons: [PairMetrics; 3],
    /// Volumes of the automatic, step 1 and step 2 contours, cm3.
    pub volumes_cm3: [f64; 3],
    /// Edited voxels per uncertainty bin, step 1 and step 2.
    pub histograms: [[u64; BINS]; 2],
}

/// The metrics named in the tables.
pub const METRICS: [&str; 2] = ["dice", "surface_dice"];

impl PairMetrics {
    /// The metric called `name` (one of [`METRICS`]); NaN when absent.
    pub fn get(&self, name: &str) -> f64 {
        match name {
            "dice" => self.dice,
            _ => self.surface_dice.unwrap_or(f64::NAN),
        }
    }
}

/// Dice and surface Dice (surfel model, DeepMind's surface-distance
/// definition; distances <= `tolerance_mm` count) of two masks on one grid,
/// through [`crate::metrics`]. Two empty masks have Dice 1.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the masks are not on one grid.
pub fn segmentation_metrics(
    a: &Volume<u8>,
    b: &Volume<u8>,
    tolerance_mm: f64,
) -> Result<PairMetrics> {
    let o = crate::metrics::overlap(a, b)?;
    // An observer who leaves an absent structure absent agrees perfectly;
    // the metric itself gives NaN there (DeepMind's convention).
    let dice = if o.reference_voxels + o.test_voxels == 0 {
        1.0
    } else {
        o.dice()
    };
    let surface = crate::metrics::surface_distances(
        a,
        b,
        crate::metrics::BoundaryModel::Surfel,
        crate::metrics::Dimensionality::Volumetric,
    )?;
    Ok(PairMetrics {
        dice,
        surface_dice: Some(surface.surface_dice(tolerance_mm)),
    })
}

/// Measures every case (in parallel), calling `progress(done, total)` as
/// cases finish.
///
/// # Errors
///
/// Any file that cannot be read, masks on different grids (naming both
/// files), or an RTSTRUCT source (not supported yet).
pub fn measure(
    manifest: &Manifest,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<CaseRecord>> {
    let total = manifest.cases.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let per_case: Vec<Vec<CaseRecord>> = manifest
        .cases
        .par_iter()
        .map(|case| {
            let records = measure_case(manifest, case)?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, total);
            Ok(records)
        })
        .collect::<Result<_>>()?;
    Ok(per_case.into_iter().flatten().collect())
}

fn measure_case(manifest: &Manifest, case: &super::manifest::Case) -> Result<Vec<CaseRecord>> {
    let uncertainty = crate::nifti::read(&case.uncertainty)?;
    let voxel_cm3 = uncertainty.grid.voxel_volume_mm3() / 1000.0;
    let tol = manifest.study.surface_dice_tolerance_mm;
    let mut records = Vec::new();

    for structure in &manifest.study.structures {
        let auto = load_mask(&case.automatic[structure], &uncertainty, &case.uncertainty)?;
        for observer in &manifest.study.observers {
            let source = |step| {
                case.edited(step, observer, structure)
                    .expect("checked at load")
            };
            let s1 = load_mask(source(1), &uncertainty, &case.uncertainty)?;
            let s2 = load_mask(source(2), &uncertainty, &case.uncertainty)?;

            let volume =
                |m: &Volume<u8>| m.data.iter().filter(|v| **v != 0).count() as f64 * voxel_cm3;
            let flat = |m: &Volume<u8>| m.data.iter().map(|&v| v != 0).collect::<Vec<bool>>();
            let (fa, f1, f2) = (flat(&auto), flat(&s1), flat(&s2));
            records.push(CaseRecord {
                case: case.id.clone(),
                observer: observer.clone(),
                structure: structure.clone(),
                comparisons: [
                    segmentation_metrics(&s1, &auto, tol)?,
                    segmentation_metrics(&s2, &auto, tol)?,
                    segmentation_metrics(&s1, &s2, tol)?,
                ],
                volumes_cm3: [volume(&auto), volume(&s1), volume(&s2)],
                histograms: [
                    edit_histogram(&f1, &fa, &uncertainty),
                    edit_histogram(&f2, &fa, &uncertainty),
                ],
            });
        }
    }
    Ok(records)
}

/// A mask (1 inside) on the grid of `reference`, from a NIfTI file or an
/// RTSTRUCT ROI rasterised onto that grid.
fn load_mask(
    source: &ContourSource,
    reference: &Volume,
    reference_path: &std::path::Path,
) -> Result<Volume<u8>> {
    match source {
        ContourSource::Nifti(path) => {
            let v = crate::nifti::read(path)?;
            if !v.grid.same_as(&reference.grid, 1e-3) {
                return Err(Error::InvalidInput(format!(
                    "{}: grid differs from the uncertainty map {}",
                    path.display(),
                    reference_path.display()
                )));
            }
            Ok(Volume::new(
                reference.grid.clone(),
                v.data.mapv(|x| u8::from(x != 0.0)),
            )?)
        }
        ContourSource::Rtstruct { rtstruct, roi } => {
            let rs = crate::dicom::rtstruct::read(rtstruct)?;
            let chosen = rs.select(roi)?;
            // The uncertainty map is NIfTI and carries no frame of
            // reference, so only the geometry is checked (by the reader).
            rs.mask(chosen, &reference.grid, None, &Default::default())
        }
    }
}

/// Edited voxels (`edited != automatic`) per uncertainty bin.
pub fn edit_histogram(edited: &[bool], automatic: &[bool], uncertainty: &Volume) -> [u64; BINS] {
    let mut h = [0u64; BINS];
    for ((e, a), &u) in edited.iter().zip(automatic).zip(uncertainty.data.iter()) {
        if e != a {
            // Integer index, never float edges; negatives (noise) go to bin 0.
            let bin = ((f64::from(u) / BIN_WIDTH).floor().max(0.0) as usize).min(BINS - 1);
            h[bin] += 1;
        }
    }
    h
}

/// A metric summary of one observer, structure and comparison.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    /// Observer.
    pub observer: String,
    /// Structure.
    pub structure: String,
    /// One of [`COMPARISONS`].
    pub comparison: String,
    /// One of [`METRICS`].
    pub metric: String,
    /// Across cases.
    pub summary: Descriptives,
}

/// A paired step 1 / step 2 test of one observer.
#[derive(Debug, Clone, Serialize)]
pub struct StepTest {
    /// Observer.
    pub observer: String,
    /// Structure, or `None` for editing time.
    pub structure: Option<String>,
    /// A metric of [`METRICS`] against the automatic contour, or `minutes`.
    pub measure: String,
    /// Median of step 1 values.
    pub median_step1: f64,
    /// Median of step 2 values.
    pub median_step2: f64,
    /// Median of the paired changes, step 2 minus step 1.
    pub median_change: f64,
    /// `100 * median_change / median_step1`.
    pub median_change_percent: f64,
    /// Wilcoxon statistic (NaN when not computable).
    pub statistic: f64,
    /// Wilcoxon p-value.
    pub pvalue: f64,
}

/// Fligner-Killeen across observers.
#[derive(Debug, Clone, Serialize)]
pub struct ObserverSpread {
    /// Structure.
    pub structure: String,
    /// One of [`COMPARISONS`].
    pub comparison: String,
    /// One of [`METRICS`].
    pub metric: String,
    /// Statistic.
    pub statistic: f64,
    /// p-value.
    pub pvalue: f64,
}

/// A case-observer pair whose step 2 / step 1 volume ratio is outside
/// the limits.
#[derive(Debug, Clone, Serialize)]
pub struct Outlier {
    /// Case.
    pub case: String,
    /// Observer.
    pub observer: String,
    /// Structure.
    pub structure: String,
    /// Step 2 volume / step 1 volume.
    pub volume_ratio: f64,
}

/// VGC of one rating question.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionVgc {
    /// The question (CSV column).
    pub question: String,
    /// Per observer (in manifest order) and pooled.
    pub result: VgcResult,
}

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct StudyResults {
    /// Study name.
    pub name: String,
    /// Observers, in report order.
    pub observers: Vec<String>,
    /// Structures, in report order.
    pub structures: Vec<String>,
    /// Per-case measurements.
    pub records: Vec<CaseRecord>,
    /// VGC per question.
    pub vgc: Vec<QuestionVgc>,
    /// Metric summaries.
    pub metrics: Vec<MetricSummary>,
    /// Wilcoxon step 1 vs step 2.
    pub step_tests: Vec<StepTest>,
    /// Fligner-Killeen across observers.
    pub spreads: Vec<ObserverSpread>,
    /// Volume-ratio outliers.
    pub outliers: Vec<Outlier>,
    /// The outlier limits used.
    pub outlier_limits: [f64; 2],
}

/// Computes the study statistics from the measurements.
///
/// # Errors
///
/// Only from malformed ratings that the manifest check let through
/// (non-finite values), as [`Error::InvalidInput`].
pub fn analyse(manifest: &Manifest, records: Vec<CaseRecord>) -> Result<StudyResults> {
    let study = &manifest.study;
    let cases: Vec<&str> = manifest.cases.iter().map(|c| c.id.as_str()).collect();
    let select = |o: &str, s: &str| -> Vec<&CaseRecord> {
        records
            .iter()
            .filter(|r| r.observer == o && r.structure == s)
            .collect()
    };

    let mut metrics = Vec::new();
    let mut step_tests = Vec::new();
    for o in &study.observers {
        for s in &study.structures {
            for (k, comparison) in COMPARISONS.iter().enumerate() {
                for metric in METRICS {
                    let values: Vec<f64> = select(o, s)
                        .into_iter()
                        .map(|r| r.comparisons[k].get(metric))
                        .collect();
                    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
                    metrics.push(MetricSummary {
                        observer: o.clone(),
                        structure: s.clone(),
                        comparison: comparison.to_string(),
                        metric: metric.to_string(),
                        summary: stats::describe(&values)?,
                    });
                }
            }
            for metric in METRICS {
                let s1: Vec<f64> = select(o, s)
                    .into_iter()
                    .map(|r| r.comparisons[0].get(metric))
                    .collect();
                let s2: Vec<f64> = select(o, s)
                    .into_iter()
                    .map(|r| r.comparisons[1].get(metric))
                    .collect();
                step_tests.push(step_test(o, Some(s), metric, &s1, &s2));
            }
        }
        let minutes = |step| column(manifest, &cases, o, step, |r| r.minutes);
        step_tests.push(step_test(o, None, "minutes", &minutes(1), &minutes(2)));
    }

    let mut spreads = Vec::new();
    for s in &study.structures {
        for (k, comparison) in COMPARISONS.iter().enumerate().take(2) {
            for metric in METRICS {
                let groups: Vec<Vec<f64>> = study
                    .observers
                    .iter()
                    .map(|o| {
                        select(o, s)
                            .into_iter()
                            .map(|r| r.comparisons[k].get(metric))
                            .collect()
                    })
                    .collect();
                let slices: Vec<&[f64]> = groups.iter().map(Vec::as_slice).collect();
                let (statistic, pvalue) = match stats::fligner(&slices, stats::Center::Median) {
                    Ok(r) => (r.statistic, r.pvalue),
                    Err(_) => (f64::NAN, f64::NAN),
                };
                spreads.push(ObserverSpread {
                    structure: s.clone(),
                    comparison: comparison.to_string(),
                    metric: metric.to_string(),
                    statistic,
                    pvalue,
                });
            }
        }
    }

    let options = VgcOptions {
        bootstrap: study.bootstrap,
        permutations: study.permutations,
        seed: study.seed,
        readers: stats::ReaderModel::Fixed,
    };
    let mut vgc = Vec::new();
    for (q, question) in manifest.ratings.questions.iter().enumerate() {
        let answers = |o: &str, step| column(manifest, &cases, o, step, |r| r.answers[q]);
        let readers: Vec<ReaderRatings> = study
            .observers
            .iter()
            .map(|o| ReaderRatings {
                reference: answers(o, 1),
                test: answers(o, 2),
            })
            .collect();
        let result = stats::vgc(&readers, &options)
            .map_err(|e| Error::InvalidInput(format!("ratings question {question}: {e}")))?;
        vgc.push(QuestionVgc {
            question: question.clone(),
            result,
        });
    }

    let [low, high] = study.outlier_volume_ratio;
    let outliers = records
        .iter()
        .map(|r| (r, r.volumes_cm3[2] / r.volumes_cm3[1]))
        .filter(|(_, ratio)| !(low..=high).contains(ratio))
        .map(|(r, volume_ratio)| Outlier {
            case: r.case.clone(),
            observer: r.observer.clone(),
            structure: r.structure.clone(),
            volume_ratio,
        })
        .collect();

    Ok(StudyResults {
        name: study.name.clone(),
        observers: study.observers.clone(),
        structures: study.structures.clone(),
        records,
        vgc,
        metrics,
        step_tests,
        spreads,
        outliers,
        outlier_limits: study.outlier_volume_ratio,
    })
}

/// One value per case from the ratings rows of an observer and step
/// (NaN where a row is missing; the manifest check makes that rare).
fn column(
    manifest: &Manifest,
    cases: &[&str],
    observer: &str,
    step: u8,
    value: impl Fn(&super::manifest::RatingRow) -> f64,
) -> Vec<f64> {
    cases
        .iter()
        .map(|c| {
            manifest
                .ratings
                .get(c, observer, step)
                .map_or(f64::NAN, &value)
        })
        .collect()
}

/// Wilcoxon step 1 vs step 2 with medians; NaN where the data do not
/// allow a test (a missing metric, or no pairs).
fn step_test(
    observer: &str,
    structure: Option<&str>,
    measure: &str,
    s1: &[f64],
    s2: &[f64],
) -> StepTest {
    let changes: Vec<f64> = s1.iter().zip(s2).map(|(a, b)| b - a).collect();
    let median = stats::descriptive::median;
    let finite = s1.iter().chain(s2).all(|v| v.is_finite());
    let (statistic, pvalue) =
        match finite.then(|| wilcoxon::wilcoxon(s1, Some(s2), &Default::default())) {
            Some(Ok(r)) => (r.statistic, r.pvalue),
            _ => (f64::NAN, f64::NAN),
        };
    let median_change = if finite { median(&changes) } else { f64::NAN };
    let median_step1 = if finite { median(s1) } else { f64::NAN };
    StepTest {
        observer: observer.to_string(),
        structure: structure.map(str::to_string),
        measure: measure.to_string(),
        median_step1,
        median_step2: if finite { median(s2) } else { f64::NAN },
        median_change,
        median_change_percent: 100.0 * median_change / median_step1,
        statistic,
        pvalue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;
    use ndarray::Array3;

    fn mask(values: [u8; 4]) -> Volume<u8> {
        let grid = Grid::axis_aligned([4, 1, 1], [1.0; 3], [0.0; 3]);
        Volume::new(
            grid,
            Array3::from_shape_vec((1, 1, 4), values.to_vec()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn dice_counts_overlap_and_empty_masks_agree() {
        let m = segmentation_metrics(&mask([1, 1, 0, 0]), &mask([1, 0, 1, 0]), 0.0).unwrap();
        let empty = segmentation_metrics(&mask([0; 4]), &mask([0; 4]), 1.0).unwrap();

        assert_eq!(m.dice, 0.5);
        assert!(m.surface_dice.is_some_and(|d| d > 0.0 && d < 1.0), "{m:?}");
        assert_eq!(empty.dice, 1.0);
    }

    #[test]
    fn histogram_bins_by_integer_index_and_clamps_the_top() {
        let grid = Grid::axis_aligned([5, 1, 1], [1.0; 3], [0.0; 3]);
        let u = Array3::from_shape_vec((1, 1, 5), vec![0.0f32, 0.1, 0.25, 0.5, 0.7]).unwrap();
        let unc = Volume::new(grid, u).unwrap();
        let edited = [true, true, true, true, false];
        let auto = [false, false, false, false, true];
        // 0.1 f32 is just above 0.1: bin 1; 0.5 and 0.7 both land in the last bin.
        assert_eq!(edit_histogram(&edited, &auto, &unc), [1, 1, 1, 0, 2]);
    }
}
