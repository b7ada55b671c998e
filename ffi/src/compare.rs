//! Comparing two masks: the metrics of `halo compare` as a C struct, and
//! the histogram of edited voxels by uncertainty.

use halo_core::metrics::{
    compare, edit_histogram, AplMode, BoundaryModel, CompareOptions, HistogramBins,
};

use crate::status::{arg, boundary, copy_slice_out, out_arg, FfiError};
use crate::volume::HaloVolume;
use crate::HaloStatus;

/// The boundary model of surface metrics.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HaloBoundary {
    /// Area-weighted surface elements on the voxel-corner grid (DeepMind's
    /// surface-distance); the default.
    #[default]
    Surfel = 0,
    /// 6-connected inner boundary voxels (MONAI, MedPy).
    Voxel = 1,
}

/// Every metric of one reference and test mask pair, as `halo compare`
/// reports them. Distances in mm, volumes in cm3. NaN where a metric is
/// undefined (for example Hausdorff with both masks empty), infinity where
/// one surface is empty.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct HaloComparison {
    /// Dice coefficient; NaN when both masks are empty (DeepMind's
    /// surface-distance convention), 0 when one is.
    pub dice: f64,
    /// Surface Dice at `tolerance_mm` (distances <= tolerance count).
    pub surface_dice: f64,
    /// Hausdorff distance: the larger directed maximum.
    pub hausdorff: f64,
    /// 95th percentile Hausdorff distance.
    pub hausdorff95: f64,
    /// 99th percentile Hausdorff distance.
    pub hausdorff99: f64,
    /// Average distance from the reference surface to the test surface.
    pub asd_reference_to_test: f64,
    /// Average distance from the test surface to the reference surface.
    pub asd_test_to_reference: f64,
    /// Symmetric average surface distance.
    pub asd_symmetric: f64,
    /// Reference volume.
    pub volume_reference_cm3: f64,
    /// Test volume.
    pub volume_test_cm3: f64,
    /// Reference minus test volume.
    pub volume_difference_cm3: f64,
    /// Test volume over reference volume.
    pub volume_ratio: f64,
    /// Share of reference voxels inside the test mask.
    pub sensitivity: f64,
    /// Share of voxels outside the reference that are outside the test.
    pub specificity: f64,
    /// Added path length over all slices.
    pub apl_total_mm: f64,
    /// Added path length per slice with contour.
    pub apl_mean_mm: f64,
    /// Voxels in the reference only (added by the editor).
    pub added_voxels: u64,
    /// Voxels in the test only (removed by the editor).
    pub removed_voxels: u64,
    /// The boundary model used.
    pub boundary: HaloBoundary,
    /// The tolerance used, mm.
    pub tolerance_mm: f64,
}

/// Compares `reference` (for example the clinician's edited contour) with
/// `test` (the automatic contour). Both masks are voxels above 0.5 and must
/// lie on one grid (`HALO_STATUS_INVALID_ARGUMENT` otherwise).
/// `tolerance_mm` applies to surface Dice and added path length (exact
/// mode). Writes `*out` only on success. Thread-safe; the volumes are only
/// read.
///
/// # Safety
///
/// `reference` and `test` must be live handles; `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_compare(
    reference: *const HaloVolume,
    test: *const HaloVolume,
    tolerance_mm: f64,
    boundary_model: HaloBoundary,
    out: *mut HaloComparison,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: live handles per the caller.
        let (r, t) = unsafe { (arg(reference, "reference")?, arg(test, "test")?) };
        let model = match boundary_model {
            HaloBoundary::Surfel => BoundaryModel::Surfel,
            HaloBoundary::Voxel => BoundaryModel::Voxel,
        };
        let options = CompareOptions {
            boundary: model,
            tolerance_mm,
            apl_mode: AplMode::Exact,
            ..CompareOptions::default()
        };

        let c = compare(&r.mask(), &t.mask(), None, options)?;
        let s = &c.surface;
        let result = HaloComparison {
            dice: c.overlap.dice(),
            surface_dice: s.surface_dice(tolerance_mm),
            hausdorff: s.hausdorff(),
            hausdorff95: s.percentile_hausdorff(95.0),
            hausdorff99: s.percentile_hausdorff(99.0),
            asd_reference_to_test: s.asd_reference_to_test(),
            asd_test_to_reference: s.asd_test_to_reference(),
            asd_symmetric: s.asd_symmetric(),
            volume_reference_cm3: c.overlap.volume_reference_cm3(),
            volume_test_cm3: c.overlap.volume_test_cm3(),
            volume_difference_cm3: c.overlap.volume_difference_cm3(),
            volume_ratio: c.overlap.volume_ratio(),
            sensitivity: c.overlap.sensitivity(),
            specificity: c.overlap.specificity(),
            apl_total_mm: c.apl.total_mm,
            apl_mean_mm: c.apl.mean_mm,
            added_voxels: c.added_voxels,
            removed_voxels: c.removed_voxels,
            boundary: boundary_model,
            tolerance_mm,
        };
        // SAFETY: checked non-NULL above.
        unsafe { *out = result };
        Ok(())
    })
}

/// Counts the edited voxels of `reference` against `test` by the
/// uncertainty of each voxel: bin `k` holds voxels with
/// `min(floor(u / width), bins - 1) == k` (the last bin is open above).
/// `added` receives voxels in the reference only, `removed` voxels in the
/// test only, `bins` values each. All three volumes must lie on one grid;
/// `width` must be positive and `bins` at least 1. Thread-safe.
///
/// # Safety
///
/// The volumes must be live handles; `added` and `removed` valid for
/// `bins` writes.
#[no_mangle]
pub unsafe extern "C" fn halo_edit_histogram(
    reference: *const HaloVolume,
    test: *const HaloVolume,
    uncertainty: *const HaloVolume,
    width: f64,
    bins: usize,
    added: *mut u64,
    removed: *mut u64,
) -> HaloStatus {
    boundary(|| {
        out_arg(added, "added")?;
        out_arg(removed, "removed")?;
        // SAFETY: live handles per the caller.
        let (r, t, u) = unsafe {
            (
                arg(reference, "reference")?,
                arg(test, "test")?,
                arg(uncertainty, "uncertainty")?,
            )
        };
        if !(width.is_finite() && width > 0.0) || bins == 0 {
            return Err(FfiError::invalid(format!(
                "histogram width {width} and bins {bins}: a positive width and at least one bin needed"
            )));
        }

        let h = edit_histogram(
            &r.mask(),
            &t.mask(),
            &u.inner,
            HistogramBins { width, bins },
        )?;
        // SAFETY: both valid for `bins` writes per the caller.
        unsafe {
            copy_slice_out(&h.added, added, bins, "added")?;
            copy_slice_out(&h.removed, removed, bins, "removed")?;
        }
        Ok(())
    })
}
