//! Added path length (APL): how much contour a clinician had to draw.
//!
//! Per axial slice (the grid's third index axis), the length of the
//! reference contour (the edited one) that lies farther than a tolerance
//! from the test contour (the automatic one); reported in mm as a total, a
//! mean per slice and per-slice values (Vaassen et al., "Evaluation of
//! measures for assessing time-saving of automatic organ-at-risk
//! segmentation in radiotherapy", phiRO 2020).
//!
//! A slice's contour is the set of its mask pixels with a 4-neighbour
//! inside the image that is not in the mask (SimpleITK's `LabelContour`,
//! which platipy uses; pixels on the image edge are not contour unless a
//! neighbour inside the image is background). A contour pixel counts for
//! one mean in-plane spacing `(sx + sy) / 2` of length. Slices where
//! either mask has voxels take part; the others are left out of the mean.
//!
//! Two modes:
//! - [`AplMode::Exact`]: a pixel is added when its in-plane Euclidean
//!   distance in mm to the nearest test contour pixel exceeds the
//!   tolerance (every pixel counts when the slice has no test contour).
//! - [`AplMode::Platipy`]: platipy 0.7.2's `compute_metric_total_apl`:
//!   the test contour is dilated by a ball of radius
//!   `ceil(tau / mean in-plane spacing)` pixels (ITK's ball: offsets with
//!   `dx² + dy² <= (r + 0.5)²`), not at all when `tau <= 0`, and reference
//!   contour pixels outside it count. platipy's own helper returns the
//!   pixel count; halo reports mm.
//!
//! Empty masks: no slice takes part when both are empty, which gives a
//! total of 0 and a NaN mean; an empty test mask makes the whole reference
//! contour added; an empty reference gives 0.

use ndarray::{s, Array3, ArrayView2};
use rayon::prelude::*;

use super::distance_transform::squared_distance_transform;
use super::mask::{check_same_grid, union_bbox, MaskValue};
use crate::{Error, Result, Volume};

/// How the tolerance of the added path length is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AplMode {
    /// In-plane Euclidean distance in mm against the tolerance (default).
    #[default]
    Exact,
    /// platipy 0.7.2's pixel dilation, reproduced exactly.
    Platipy,
}

impl AplMode {
    /// The mode's name in results: `exact` or `platipy`.
    pub fn name(self) -> &'static str {
        match self {
            AplMode::Exact => "exact",
            AplMode::Platipy => "platipy",
        }
    }
}

impl std::str::FromStr for AplMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(AplMode::Exact),
            "platipy" => Ok(AplMode::Platipy),
            _ => Err(Error::InvalidInput(format!(
                "added path length mode {s:?} is not one of exact, platipy"
            ))),
        }
    }
}

/// The added path length of one slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceApl {
    /// Slice index along the grid's third axis.
    pub slice: usize,
    /// Added contour pixels.
    pub pixels: u64,
    /// Added length in mm.
    pub mm: f64,
}

/// Added path length of a reference (edited) contour against a test
/// (automatic) one.
#[derive(Debug, Clone, PartialEq)]
pub struct AddedPathLength {
    /// How the tolerance was applied.
    pub mode: AplMode,
    /// The tolerance in mm.
    pub tolerance_mm: f64,
    /// Every slice where either mask has voxels, ascending.
    pub per_slice: Vec<SliceApl>,
    /// Sum over slices, mm (0 without slices).
    pub total_mm: f64,
    /// Mean over the slices taking part, mm (NaN without slices).
    pub mean_mm: f64,
}

/// Measures the added path length of `reference` (edited) against `test`
/// (automatic) at `tolerance_mm`.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the masks are on different grids or the
/// tolerance is not finite.
pub fn added_path_length<T: MaskValue>(
    reference: &Volume<T>,
    test: &Volume<T>,
    tolerance_mm: f64,
    mode: AplMode,
) -> Result<AddedPathLength> {
    check_same_grid(&reference.grid, &test.grid)?;
    if !tolerance_mm.is_finite() {
        return Err(Error::InvalidInput(format!(
            "added path length tolerance {tolerance_mm} mm is not finite"
        )));
    }
    let [sx, sy, _] = reference.grid.spacing;
    let pixel_mm = (sx + sy) / 2.0;

    let per_slice: Vec<SliceApl> = match union_bbox(&reference.data, &test.data) {
        None => Vec::new(),
        Some(bbox) => (bbox[0][0]..=bbox[0][1])
            .into_par_iter()
            .filter_map(|z| {
                let r = reference.data.index_axis(ndarray::Axis(0), z);
                let t = test.data.index_axis(ndarray::Axis(0), z);
                let pixels = slice_added_pixels(r, t, &bbox, [sy, sx], tolerance_mm, mode)?;
                Some(SliceApl {
                    slice: z,
                    pixels,
                    mm: pixels as f64 * pixel_mm,
                })
            })
            .collect(),
    };

    let total_pixels: u64 = per_slice.iter().map(|s| s.pixels).sum();
    let total_mm = total_pixels as f64 * pixel_mm;
    Ok(AddedPathLength {
        mode,
        tolerance_mm,
        mean_mm: total_mm / per_slice.len() as f64,
        total_mm,
        per_slice,
    })
}

/// Added pixels of one slice, or `None` when neither mask has a voxel
/// there.
fn slice_added_pixels<T: MaskValue>(
    reference: ArrayView2<T>,
    test: ArrayView2<T>,
    bbox: &[[usize; 2]; 3],
    spacing_yx: [f64; 2],
    tolerance_mm: f64,
    mode: AplMode,
) -> Option<u64> {
    let [y0, y1] = bbox[1];
    let [x0, x1] = bbox[2];
    let window = s![y0..=y1, x0..=x1];
    let any = |m: &ArrayView2<T>| m.slice(window).iter().any(|v| v.is_set());
    if !any(&reference) && !any(&test) {
        return None;
    }

    let measured = contour(&reference, bbox);
    let target = contour(&test, bbox);
    let measured_pixels: Vec<(usize, usize)> = measured
        .indexed_iter()
        .filter(|(_, &v)| v)
        .map(|((_, y, x), _)| (y, x))
        .collect();
    if measured_pixels.is_empty() {
        return Some(0);
    }
    if !target.iter().any(|v| *v) {
        return Some(measured_pixels.len() as u64);
    }

    // Squared distance to the test contour: in mm, or in pixels for the
    // platipy ball.
    let (spacing, added_beyond) = match mode {
        AplMode::Exact => (
            [1.0, spacing_yx[0], spacing_yx[1]],
            tolerance_mm.max(0.0).powi(2),
        ),
        AplMode::Platipy => {
            let radius = if tolerance_mm > 0.0 {
                (tolerance_mm / ((spacing_yx[0] + spacing_yx[1]) / 2.0)).ceil()
            } else {
                -0.5
            };
            ([1.0; 3], (radius + 0.5).powi(2))
        }
    };
    let d2 = squared_distance_transform(&target, spacing);
    let added = measured_pixels
        .iter()
        .filter(|&&(y, x)| {
            let d = d2[[0, y, x]];
            match mode {
                // A distance beyond the tolerance, compared in mm as the
                // tolerance is stated.
                AplMode::Exact => d.sqrt() > tolerance_mm,
                AplMode::Platipy => d > added_beyond,
            }
        })
        .count();
    Some(added as u64)
}

/// `LabelContour` of the slice within the box (see the module docs), as a
/// `[1][h][w]` array over the box.
fn contour<T: MaskValue>(m: &ArrayView2<T>, bbox: &[[usize; 2]; 3]) -> Array3<bool> {
    let (ny, nx) = m.dim();
    let [y0, y1] = bbox[1];
    let [x0, x1] = bbox[2];
    Array3::from_shape_fn((1, y1 - y0 + 1, x1 - x0 + 1), |(_, j, i)| {
        let (y, x) = (y0 + j, x0 + i);
        if !m[[y, x]].is_set() {
            return false;
        }
        let outside = |yy: usize, xx: usize| !m[[yy, xx]].is_set();
        (y > 0 && outside(y - 1, x))
            || (y + 1 < ny && outside(y + 1, x))
            || (x > 0 && outside(y, x - 1))
            || (x + 1 < nx && outside(y, x + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;

    #[test]
    fn a_pixel_on_the_image_edge_is_contour_only_beside_background() {
        let mut m = ndarray::Array2::<u8>::zeros((4, 4));
        m.slice_mut(s![0..2, 0..4]).fill(1);

        let c = contour(&m.view(), &[[0, 0], [0, 3], [0, 3]]);

        let row0: Vec<bool> = (0..4).map(|x| c[[0, 0, x]]).collect();
        let row1: Vec<bool> = (0..4).map(|x| c[[0, 1, x]]).collect();
        assert_eq!(row0, vec![false; 4]);
        assert_eq!(row1, vec![true; 4]);
    }

    #[test]
    fn identical_masks_add_nothing_in_either_mode() {
        let grid = Grid::axis_aligned([8, 8, 3], [0.6, 0.7, 2.5], [0.0; 3]);
        let mut a = Array3::<u8>::zeros((3, 8, 8));
        a.slice_mut(s![0..2, 2..6, 1..5]).fill(1);
        let v = Volume::new(grid, a).unwrap();

        for mode in [AplMode::Exact, AplMode::Platipy] {
            for tau in [0.0, 1.0, 3.0] {
                let apl = added_path_length(&v, &v, tau, mode).unwrap();
                assert_eq!(apl.total_mm, 0.0, "{mode:?} {tau}");
                assert_eq!(apl.per_slice.len(), 2);
            }
        }
    }

    #[test]
    fn empty_masks_give_zero_total_and_nan_mean() {
        let grid = Grid::axis_aligned([4, 4, 2], [1.0; 3], [0.0; 3]);
        let v = Volume::new(grid, Array3::<u8>::zeros((2, 4, 4))).unwrap();

        let apl = added_path_length(&v, &v, 1.0, AplMode::Exact).unwrap();

        assert_eq!(apl.total_mm, 0.0);
        assert!(apl.mean_mm.is_nan());
        assert!(apl.per_slice.is_empty());
    }
}
