//! Binary masks as the metrics see them: any voxel type that says "set",
//! the shared-grid check, and the crop to the bounding box of both masks.

use ndarray::{s, Array3, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use crate::{Error, Grid, Result, Volume};

/// A voxel type that can be read as a binary mask.
pub trait MaskValue: Copy + Send + Sync {
    /// True when the voxel belongs to the structure.
    fn is_set(&self) -> bool;
}

impl MaskValue for bool {
    fn is_set(&self) -> bool {
        *self
    }
}

impl MaskValue for u8 {
    /// Any non-zero value is set.
    fn is_set(&self) -> bool {
        *self != 0
    }
}

/// Whether a mask is a volume (3D surfaces) or a single plane (2D contours).
///
/// Volumes use 2x2x2 corner codes and 6-connected boundaries; planes use
/// 2x2 corner codes and 4-connected boundaries within their only slice,
/// the 2D model of the reference implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dimensionality {
    /// Surfaces in 3D (the default).
    #[default]
    Volumetric,
    /// Contours in 2D: the grid must hold exactly one slice.
    Planar,
}

/// Refuses two masks that are not on one grid (within 1e-3 mm).
///
/// # Errors
///
/// [`Error::InvalidInput`] naming both grids' dims, spacing and origin.
pub fn check_same_grid(reference: &Grid, test: &Grid) -> Result<()> {
    if reference.same_as(test, 1e-3) {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "reference and test masks are on different grids: dims {:?} vs {:?}, spacing {:?} vs \
         {:?} mm, origin {:?} vs {:?} mm; resample one onto the other's grid first",
        reference.dims, test.dims, reference.spacing, test.spacing, reference.origin, test.origin
    )))
}

/// Refuses a planar comparison on a grid with more than one slice.
pub(crate) fn check_dimensionality(grid: &Grid, dim: Dimensionality) -> Result<()> {
    if dim == Dimensionality::Planar && grid.dims[2] != 1 {
        return Err(Error::InvalidInput(format!(
            "a planar (2D) comparison needs a grid of one slice, got dims {:?}",
            grid.dims
        )));
    }
    Ok(())
}

/// Inclusive bounding box `[z, y, x]` of the voxels set in either mask, or
/// `None` when both are empty.
pub(crate) fn union_bbox<T: MaskValue>(a: &Array3<T>, b: &Array3<T>) -> Option<[[usize; 2]; 3]> {
    // One pass per slice in parallel; each slice reports its own box.
    let per_slice: Vec<Option<[[usize; 2]; 2]>> = a
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(b.axis_iter(Axis(0)).into_par_iter())
        .map(|(sa, sb)| slice_bbox(sa, sb))
        .collect();

    let mut out: Option<[[usize; 2]; 3]> = None;
    for (z, bb) in per_slice.iter().enumerate() {
        let Some([by, bx]) = bb else { continue };
        out = Some(match out {
            None => [[z, z], *by, *bx],
            Some([bz, oy, ox]) => [
                [bz[0], z],
                [oy[0].min(by[0]), oy[1].max(by[1])],
                [ox[0].min(bx[0]), ox[1].max(bx[1])],
            ],
        });
    }
    out
}

fn slice_bbox<T: MaskValue>(a: ArrayView2<T>, b: ArrayView2<T>) -> Option<[[usize; 2]; 2]> {
    let mut out: Option<[[usize; 2]; 2]> = None;
    for (y, (ra, rb)) in a.rows().into_iter().zip(b.rows()).enumerate() {
        // First and last set voxel of the row in either mask.
        let first = |r: &ndarray::ArrayView1<T>| r.iter().position(|v| v.is_set());
        let last = |r: &ndarray::ArrayView1<T>| {
            r.iter()
                .rev()
                .position(|v| v.is_set())
                .map(|i| r.len() - 1 - i)
        };
        let lo = match (first(&ra), first(&rb)) {
            (Some(p), Some(q)) => p.min(q),
            (Some(p), None) | (None, Some(p)) => p,
            (None, None) => continue,
        };
        let hi = last(&ra).max(last(&rb)).unwrap_or(lo);
        out = Some(match out {
            None => [[y, y], [lo, hi]],
            Some([oy, ox]) => [[oy[0], y], [ox[0].min(lo), ox[1].max(hi)]],
        });
    }
    out
}

/// A binary array cut out of a mask: the box `bbox` widened by `margin`
/// voxels on each side along each axis `[z, y, x]`, with voxels beyond the
/// grid read as unset.
pub(crate) fn crop<T: MaskValue>(
    mask: &Array3<T>,
    bbox: &[[usize; 2]; 3],
    margin: [usize; 3],
) -> Array3<bool> {
    let shape = [
        bbox[0][1] - bbox[0][0] + 1 + 2 * margin[0],
        bbox[1][1] - bbox[1][0] + 1 + 2 * margin[1],
        bbox[2][1] - bbox[2][0] + 1 + 2 * margin[2],
    ];
    let mut out = Array3::from_elem(shape, false);

    // The box itself is inside the grid; only the margin can leave it.
    let src = mask.slice(s![
        bbox[0][0]..=bbox[0][1],
        bbox[1][0]..=bbox[1][1],
        bbox[2][0]..=bbox[2][1]
    ]);
    let mut dst = out.slice_mut(s![
        margin[0]..shape[0] - margin[0],
        margin[1]..shape[1] - margin[1],
        margin[2]..shape[2] - margin[2]
    ]);
    Zip::from(&mut dst)
        .and(&src)
        .par_for_each(|d, v| *d = v.is_set());
    out
}

/// Spacing in array order `[z, y, x]` (the grid stores `[x, y, z]`).
pub(crate) fn spacing_zyx(grid: &Grid) -> [f64; 3] {
    [grid.spacing[2], grid.spacing[1], grid.spacing[0]]
}

/// Checks both masks for a metric: one grid, matching dimensionality.
pub(crate) fn check_pair<T>(
    reference: &Volume<T>,
    test: &Volume<T>,
    dim: Dimensionality,
) -> Result<()> {
    check_same_grid(&reference.grid, &test.grid)?;
    check_dimensionality(&reference.grid, dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_bbox_spans_both_masks() {
        let mut a = Array3::<u8>::zeros((4, 5, 6));
        let mut b = Array3::<u8>::zeros((4, 5, 6));
        a[[1, 2, 3]] = 1;
        b[[3, 0, 5]] = 1;

        let bb = union_bbox(&a, &b).unwrap();

        assert_eq!(bb, [[1, 3], [0, 2], [3, 5]]);
    }

    #[test]
    fn union_bbox_of_empty_masks_is_none() {
        let a = Array3::<bool>::from_elem((2, 2, 2), false);

        assert!(union_bbox(&a, &a).is_none());
    }

    #[test]
    fn crop_reads_voxels_beyond_the_grid_as_unset() {
        let a = Array3::<u8>::ones((2, 2, 2));

        let c = crop(&a, &[[0, 1], [0, 1], [0, 1]], [1, 1, 0]);

        assert_eq!(c.dim(), (4, 4, 2));
        assert_eq!(c.iter().filter(|v| **v).count(), 8);
        assert!(!c[[0, 1, 1]] && c[[1, 1, 1]] && !c[[3, 2, 0]]);
    }

    #[test]
    fn different_grids_are_refused_with_both_named() {
        let a = Grid::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]);
        let b = Grid::axis_aligned([2, 2, 3], [1.0; 3], [0.0; 3]);

        let err = check_same_grid(&a, &b).unwrap_err().to_string();

        assert!(err.contains("[2, 2, 2] vs [2, 2, 3]"), "{err}");
    }
}
