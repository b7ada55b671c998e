//! Edit maps and the uncertainty histogram of edited voxels.
//!
//! With the reference the edited contour and the test the automatic one,
//! added voxels are in the reference and not in the test (the clinician
//! drew them), removed voxels are in the test and not in the reference.
//! Each edited voxel is put in an uncertainty bin by the integer index
//! `min(floor(u / width), bins - 1)`, never by comparing with float edges.

use ndarray::{Axis, Zip};
use rayon::prelude::*;

use super::mask::{check_same_grid, MaskValue};
use crate::{Error, Result, Volume};

/// Label of an unchanged voxel in an edit map.
pub const UNCHANGED: u8 = 0;
/// Label of an added voxel (reference, not test) in an edit map.
pub const ADDED: u8 = 1;
/// Label of a removed voxel (test, not reference) in an edit map.
pub const REMOVED: u8 = 2;

/// Labels every voxel [`UNCHANGED`], [`ADDED`] or [`REMOVED`], on the
/// masks' grid.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the masks are on different grids.
pub fn edit_map<T: MaskValue>(reference: &Volume<T>, test: &Volume<T>) -> Result<Volume<u8>> {
    check_same_grid(&reference.grid, &test.grid)?;

    let mut out = ndarray::Array3::<u8>::zeros(reference.data.dim());
    Zip::from(&mut out)
        .and(&reference.data)
        .and(&test.data)
        .par_for_each(|o, r, t| {
            *o = match (r.is_set(), t.is_set()) {
                (true, false) => ADDED,
                (false, true) => REMOVED,
                _ => UNCHANGED,
            }
        });
    Volume::new(reference.grid.clone(), out)
}

/// Bins of the uncertainty histogram: `bins` bins of `width` from 0, the
/// last one open above.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramBins {
    /// Bin width (uncertainty units).
    pub width: f64,
    /// Number of bins.
    pub bins: usize,
}

impl Default for HistogramBins {
    /// Width 0.1 over 0 to 0.5: the published scale of the ensemble
    /// standard deviation of a binary structure.
    fn default() -> Self {
        HistogramBins {
            width: 0.1,
            bins: 5,
        }
    }
}

impl HistogramBins {
    /// Bins of `width` covering 0 to `upper` (rounded to whole bins).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `width` or `upper` is not positive and
    /// finite, or `upper` holds no whole bin.
    pub fn covering(width: f64, upper: f64) -> Result<Self> {
        if !(width.is_finite() && width > 0.0 && upper.is_finite() && upper > 0.0) {
            return Err(Error::InvalidInput(format!(
                "histogram bin width {width} and upper bound {upper} must be positive and finite"
            )));
        }
        let bins = (upper / width).round() as usize;
        if bins == 0 {
            return Err(Error::InvalidInput(format!(
                "histogram upper bound {upper} holds no bin of width {width}"
            )));
        }
        Ok(HistogramBins { width, bins })
    }

    /// The bin of uncertainty `u`: `min(floor(u / width), bins - 1)`, with
    /// values below zero in bin 0. `None` for NaN.
    pub fn index(&self, u: f64) -> Option<usize> {
        if u.is_nan() {
            return None;
        }
        let k = (u / self.width).floor();
        Some(if k <= 0.0 {
            0
        } else {
            (k as usize).min(self.bins - 1)
        })
    }

    /// Bin edges `k * width` for `k` in `0..=bins` (the last bin is open
    /// above; its upper edge is nominal).
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.bins).map(|k| k as f64 * self.width).collect()
    }
}

/// Edited voxels counted per uncertainty bin.
#[derive(Debug, Clone, PartialEq)]
pub struct EditHistogram {
    /// The bins.
    pub bins: HistogramBins,
    /// Added voxels per bin.
    pub added: Vec<u64>,
    /// Removed voxels per bin.
    pub removed: Vec<u64>,
}

impl EditHistogram {
    /// Added plus removed voxels per bin.
    pub fn edited(&self) -> Vec<u64> {
        self.added
            .iter()
            .zip(&self.removed)
            .map(|(a, r)| a + r)
            .collect()
    }
}

/// Refuses an uncertainty map that is not on the masks' grid.
pub(crate) fn check_uncertainty_grid(masks: &crate::Grid, uncertainty: &crate::Grid) -> Result<()> {
    if masks.same_as(uncertainty, 1e-3) {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "the uncertainty map is on another grid than the masks: dims {:?} vs {:?}, \
         spacing {:?} vs {:?} mm, origin {:?} vs {:?} mm",
        uncertainty.dims,
        masks.dims,
        uncertainty.spacing,
        masks.spacing,
        uncertainty.origin,
        masks.origin
    )))
}

/// Counts added and removed voxels per bin of `uncertainty`.
///
/// Empty masks give zero counts.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the three volumes are not on one grid, or
/// an edited voxel's uncertainty is NaN (its index `[z, y, x]` named).
pub fn edit_histogram<T: MaskValue>(
    reference: &Volume<T>,
    test: &Volume<T>,
    uncertainty: &Volume<f32>,
    bins: HistogramBins,
) -> Result<EditHistogram> {
    check_same_grid(&reference.grid, &test.grid)?;
    check_uncertainty_grid(&reference.grid, &uncertainty.grid)?;

    let per_slice: Vec<Result<(Vec<u64>, Vec<u64>)>> = (0..reference.data.len_of(Axis(0)))
        .into_par_iter()
        .map(|z| {
            let mut added = vec![0u64; bins.bins];
            let mut removed = vec![0u64; bins.bins];
            let r = reference.data.index_axis(Axis(0), z);
            let t = test.data.index_axis(Axis(0), z);
            let u = uncertainty.data.index_axis(Axis(0), z);
            for (((y, x), rv), (tv, uv)) in r.indexed_iter().zip(t.iter().zip(u.iter())) {
                let (rs, ts) = (rv.is_set(), tv.is_set());
                if rs == ts {
                    continue;
                }
                let k = bins.index(*uv as f64).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "uncertainty is NaN at edited voxel [{z}, {y}, {x}] (z, y, x)"
                    ))
                })?;
                if rs {
                    added[k] += 1;
                } else {
                    removed[k] += 1;
                }
            }
            Ok((added, removed))
        })
        .collect();

    let mut out = EditHistogram {
        bins,
        added: vec![0; bins.bins],
        removed: vec![0; bins.bins],
    };
    for slice in per_slice {
        let (a, r) = slice?;
        out.added.iter_mut().zip(a).for_each(|(o, v)| *o += v);
        out.removed.iter_mut().zip(r).for_each(|(o, v)| *o += v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;
    use ndarray::Array3;

    #[test]
    fn bin_index_uses_integer_floor_and_clamps_the_last_bin() {
        let b = HistogramBins::default();

        assert_eq!(b.index(0.0), Some(0));
        assert_eq!(b.index(0.0999), Some(0));
        assert_eq!(b.index(0.1), Some(1));
        // 0.3 / 0.1 is 2.9999999999999996 in f64: the formula, not the edge.
        assert_eq!(b.index(0.3), Some(2));
        assert_eq!(b.index(0.5), Some(4));
        assert_eq!(b.index(7.0), Some(4));
        assert_eq!(b.index(-0.01), Some(0));
        assert_eq!(b.index(f64::NAN), None);
    }

    #[test]
    fn histogram_counts_added_and_removed_by_uncertainty() {
        let grid = Grid::axis_aligned([4, 1, 1], [1.0; 3], [0.0; 3]);
        let r = Volume::new(
            grid.clone(),
            Array3::from_shape_vec((1, 1, 4), vec![1u8, 1, 0, 0]).unwrap(),
        )
        .unwrap();
        let t = Volume::new(
            grid.clone(),
            Array3::from_shape_vec((1, 1, 4), vec![1u8, 0, 1, 0]).unwrap(),
        )
        .unwrap();
        let u = Volume::new(
            grid,
            Array3::from_shape_vec((1, 1, 4), vec![0.45f32, 0.15, 0.49, 0.3]).unwrap(),
        )
        .unwrap();

        let h = edit_histogram(&r, &t, &u, HistogramBins::default()).unwrap();
        let m = edit_map(&r, &t).unwrap();

        assert_eq!(h.added, vec![0, 1, 0, 0, 0]);
        assert_eq!(h.removed, vec![0, 0, 0, 0, 1]);
        assert_eq!(m.data.iter().copied().collect::<Vec<_>>(), vec![0, 1, 2, 0]);
        assert_eq!(h.bins.edges().len(), 6);
    }

    #[test]
    fn a_nan_uncertainty_on_an_edited_voxel_is_named() {
        let grid = Grid::axis_aligned([2, 1, 1], [1.0; 3], [0.0; 3]);
        let r = Volume::new(
            grid.clone(),
            Array3::from_shape_vec((1, 1, 2), vec![0u8, 1]).unwrap(),
        )
        .unwrap();
        let t = Volume::new(grid.clone(), Array3::<u8>::zeros((1, 1, 2))).unwrap();
        let u = Volume::new(grid, Array3::from_elem((1, 1, 2), f32::NAN)).unwrap();

        let err = edit_histogram(&r, &t, &u, HistogramBins::default())
            .unwrap_err()
            .to_string();

        assert!(err.contains("[0, 0, 1]"), "{err}");
    }
}
