//! Edit analytics: how far a test mask is from a reference mask, and where
//! a clinician edited.
//!
//! In edit analytics the reference is the clinician's edited contour and
//! the test is the automatic one; every metric here is defined for any
//! pair of binary masks on one grid ([`Volume<u8>`](crate::Volume), any
//! non-zero voxel set, or `Volume<bool>`).
//!
//! - [`overlap`]: Dice, volumes (cm³), volume difference (reference minus
//!   test) and ratio, sensitivity, specificity.
//! - [`surface`]: Hausdorff, percentile Hausdorff (95, 99), average surface
//!   distance both ways and symmetric, surface Dice at a tolerance, signed
//!   distances, under one of two [`BoundaryModel`]s: `surfel` (DeepMind's
//!   surface-distance, default) or `voxel` (MONAI, MedPy).
//! - [`distance_transform`]: the exact Euclidean distance transform behind
//!   every distance, on the bounding box of both masks plus one voxel.
//! - [`apl`]: added path length, exact or platipy-compatible.
//! - [`edits`]: edit maps and the histogram of edited voxels by uncertainty.
//!
//! Every metric's documentation states what empty masks give; [`compare`]
//! computes them all at once.

pub mod apl;
pub mod distance_transform;
pub mod edits;
pub mod mask;
pub mod overlap;
pub mod surface;
pub mod surfel;
mod surfel_table;
pub mod voxel;

pub use apl::{added_path_length, AddedPathLength, AplMode, SliceApl};
pub use edits::{edit_histogram, edit_map, EditHistogram, HistogramBins};
pub use mask::{check_same_grid, Dimensionality, MaskValue};
pub use overlap::{overlap, Overlap};
pub use surface::{surface_distances, BoundaryModel, DirectedDistances, SurfaceDistances};

use crate::{Error, Result, Volume};

/// What [`compare`] measures and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// The boundary model of surface metrics.
    pub boundary: BoundaryModel,
    /// Tolerance in mm of surface Dice and added path length.
    pub tolerance_mm: f64,
    /// How the added path length applies the tolerance.
    pub apl_mode: AplMode,
    /// Volumes or single planes.
    pub dimensionality: Dimensionality,
    /// Bins of the uncertainty histogram.
    pub bins: HistogramBins,
}

impl Default for CompareOptions {
    /// Surfel model, 1 mm, exact APL, volumes, bins of 0.1 over 0 to 0.5.
    fn default() -> Self {
        CompareOptions {
            boundary: BoundaryModel::Surfel,
            tolerance_mm: 1.0,
            apl_mode: AplMode::Exact,
            dimensionality: Dimensionality::Volumetric,
            bins: HistogramBins::default(),
        }
    }
}

/// Every metric of one reference and test pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The options the metrics were computed with.
    pub options: CompareOptions,
    /// Voxel counts (Dice, volumes, sensitivity, specificity).
    pub overlap: Overlap,
    /// Surface distances under `options.boundary`.
    pub surface: SurfaceDistances,
    /// Added path length at `options.tolerance_mm`.
    pub apl: AddedPathLength,
    /// Voxels in the reference only.
    pub added_voxels: u64,
    /// Voxels in the test only.
    pub removed_voxels: u64,
    /// Edited voxels per uncertainty bin, when an uncertainty map was given.
    pub histogram: Option<EditHistogram>,
}

/// Computes every metric of `reference` against `test`, and the histogram
/// of edited voxels by `uncertainty` when given.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the volumes are not on one grid, the
/// tolerance is negative or not finite, or an edited voxel's uncertainty
/// is NaN.
pub fn compare<T: MaskValue>(
    reference: &Volume<T>,
    test: &Volume<T>,
    uncertainty: Option<&Volume<f32>>,
    options: CompareOptions,
) -> Result<Comparison> {
    if !(options.tolerance_mm.is_finite() && options.tolerance_mm >= 0.0) {
        return Err(Error::InvalidInput(format!(
            "tolerance {} mm is not a finite non-negative number",
            options.tolerance_mm
        )));
    }

    check_same_grid(&reference.grid, &test.grid)?;
    if let Some(u) = uncertainty {
        edits::check_uncertainty_grid(&reference.grid, &u.grid)?;
    }
    let grid_voxels = reference.grid.len() as u64;

    // Every metric only looks inside the bounding box of both masks plus
    // one voxel: crop once, so that no metric walks the whole grid again.
    let bbox = mask::union_bbox(&reference.data, &test.data);
    let window = bbox.map(|b| {
        let dims = reference.data.dim();
        let lim = [dims.0, dims.1, dims.2];
        let mut w = [[0usize; 2]; 3];
        for a in 0..3 {
            w[a] = [b[a][0].saturating_sub(1), (b[a][1] + 1).min(lim[a] - 1)];
        }
        w
    });
    let cropped = window.map(|w| {
        let u = uncertainty.map(|u| crop_volume(u, &w));
        (crop_volume(reference, &w), crop_volume(test, &w), u)
    });
    let (reference, test, uncertainty) = match &cropped {
        Some((r, t, u)) => (r, t, u.as_ref()),
        None => (reference, test, uncertainty),
    };

    let ((overlap, surface), (apl, histogram)) = rayon::join(
        || {
            rayon::join(
                || overlap(reference, test),
                || surface_distances(reference, test, options.boundary, options.dimensionality),
            )
        },
        || {
            rayon::join(
                || added_path_length(reference, test, options.tolerance_mm, options.apl_mode),
                || {
                    uncertainty
                        .map(|u| edit_histogram(reference, test, u, options.bins))
                        .transpose()
                },
            )
        },
    );
    let mut overlap = overlap?;
    overlap.grid_voxels = grid_voxels;
    let mut apl = apl?;
    if let Some(w) = window {
        apl.per_slice.iter_mut().for_each(|s| s.slice += w[0][0]);
    }

    Ok(Comparison {
        options,
        added_voxels: overlap.reference_voxels - overlap.both_voxels,
        removed_voxels: overlap.test_voxels - overlap.both_voxels,
        overlap,
        surface: surface?,
        apl,
        histogram: histogram?,
    })
}

/// The part of `v` inside the inclusive window `[z, y, x]`, on its own
/// grid (same spacing and direction, origin moved to the window's corner).
fn crop_volume<T: Clone>(v: &Volume<T>, w: &[[usize; 2]; 3]) -> Volume<T> {
    let data = v
        .data
        .slice(ndarray::s![
            w[0][0]..=w[0][1],
            w[1][0]..=w[1][1],
            w[2][0]..=w[2][1]
        ])
        .to_owned();
    let mut grid = v.grid.clone();
    grid.origin = v
        .grid
        .index_to_lps([w[2][0] as f64, w[1][0] as f64, w[0][0] as f64]);
    grid.dims = [data.dim().2, data.dim().1, data.dim().0];
    Volume { grid, data }
}
