//! Surface distances between two masks and the metrics built on them:
//! Hausdorff, percentile Hausdorff, average surface distance, surface
//! overlap, surface Dice and signed distances.
//!
//! Each surface is a list of elements with a weight (area in mm² for
//! `surfel`, one per voxel for `voxel`) and the distance in mm from the
//! element to the nearest element of the other surface, read from an exact
//! Euclidean distance transform computed on the bounding box of both masks
//! plus one voxel (see [`super::distance_transform`]).
//!
//! Empty masks, halo's policy. Each boundary model follows its reference
//! implementation when one mask is empty; when both are empty every
//! distance metric is NaN (DeepMind's package returns `inf` for the
//! Hausdorff distances there; halo does not, since nothing is far away).
//!
//! | metric | one mask empty | both empty |
//! | --- | --- | --- |
//! | Hausdorff, percentile Hausdorff | `inf` (MONAI: NaN for percentiles) | NaN (DeepMind: `inf`) |
//! | ASD from the non-empty surface | `inf` | NaN |
//! | ASD from the empty surface | surfel NaN (no element), voxel `inf` (MONAI) | NaN |
//! | ASD symmetric | `inf` | NaN |
//! | surface overlap of the empty surface | NaN | NaN |
//! | surface Dice | 0 | NaN |

use ndarray::Array3;
use rayon::prelude::*;

use super::distance_transform::squared_distance_transform;
use super::mask::{check_pair, crop, spacing_zyx, union_bbox, Dimensionality, MaskValue};
use super::{surfel, voxel};
use crate::{Error, Result, Volume};

/// How a mask's surface is represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundaryModel {
    /// Area-weighted surface elements on the voxel-corner grid, the model
    /// of DeepMind's `surface-distance` (the default).
    #[default]
    Surfel,
    /// Boundary voxels (6-connected inner boundary), each of weight one,
    /// the model of MONAI and MedPy.
    Voxel,
}

impl BoundaryModel {
    /// The model's name as it appears in results: `surfel` or `voxel`.
    pub fn name(self) -> &'static str {
        match self {
            BoundaryModel::Surfel => "surfel",
            BoundaryModel::Voxel => "voxel",
        }
    }

    /// The rule of [`SurfaceDistances::percentile_hausdorff`] under this
    /// model.
    pub fn percentile_rule(self) -> &'static str {
        match self {
            BoundaryModel::Surfel => "area_weighted_nearest_rank",
            BoundaryModel::Voxel => "linear_interpolation",
        }
    }

    /// The rule of [`SurfaceDistances::asd_symmetric`] under this model.
    pub fn asd_symmetric_rule(self) -> &'static str {
        match self {
            BoundaryModel::Surfel => "mean_of_directed",
            BoundaryModel::Voxel => "pooled",
        }
    }
}

impl std::fmt::Display for BoundaryModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BoundaryModel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "surfel" => Ok(BoundaryModel::Surfel),
            "voxel" => Ok(BoundaryModel::Voxel),
            _ => Err(Error::InvalidInput(format!(
                "boundary model {s:?} is not one of surfel, voxel"
            ))),
        }
    }
}

/// The surface elements of one cropped mask.
pub(crate) struct SurfaceElements {
    /// Element positions on the grid of the distance transform.
    pub border: Array3<bool>,
    /// Grid positions inside the structure (for the sign of distances).
    pub inside: Array3<bool>,
    /// Flat indices of the elements, in row-major order.
    pub points: Vec<usize>,
    /// Weight of each element (mm² for surfels, 1 for voxels).
    pub weights: Vec<f64>,
}

/// One direction of surface distances: from each element of one surface
/// to the other surface, sorted by distance then weight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectedDistances {
    /// Distances in mm, ascending (`inf` when the other surface is empty).
    pub distances: Vec<f64>,
    /// Weight of each element (mm² for surfels, 1 for voxels).
    pub weights: Vec<f64>,
    /// Signed distances in mm, in the same order: negative where the
    /// element lies inside the other mask.
    pub signed: Vec<f64>,
}

impl DirectedDistances {
    fn total_weight(&self) -> f64 {
        numpy_sum(&self.weights)
    }

    /// Weighted mean distance; NaN without elements.
    fn mean(&self) -> f64 {
        let products: Vec<f64> = self
            .distances
            .iter()
            .zip(&self.weights)
            .map(|(d, w)| d * w)
            .collect();
        numpy_sum(&products) / self.total_weight()
    }

    /// Fraction of the weight within `tolerance_mm` (distance <= tolerance).
    fn overlap(&self, tolerance_mm: f64) -> f64 {
        let within: Vec<f64> = self
            .distances
            .iter()
            .zip(&self.weights)
            .filter(|(d, _)| **d <= tolerance_mm)
            .map(|(_, w)| *w)
            .collect();
        numpy_sum(&within) / self.total_weight()
    }

    /// DeepMind's robust Hausdorff rule: the distance of the first element
    /// (sorted) at which the cumulative weight fraction reaches `p / 100`.
    fn nearest_rank(&self, percent: f64) -> f64 {
        let total = self.total_weight();
        let target = percent / 100.0;
        let mut cumulative = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            cumulative += w;
            if cumulative / total >= target {
                return self.distances[i];
            }
        }
        self.distances[self.distances.len() - 1]
    }

    /// MONAI's rule (`torch.quantile`): linear interpolation between the
    /// sorted distances at rank `(n - 1) p / 100`.
    fn interpolated(&self, percent: f64) -> f64 {
        let d = &self.distances;
        let rank = (d.len() - 1) as f64 * percent / 100.0;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(d.len() - 1);
        let t = rank - lo as f64;
        if d[lo] == d[hi] {
            d[lo]
        } else {
            d[lo] + (d[hi] - d[lo]) * t
        }
    }
}

/// Distances between the surfaces of a reference and a test mask.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceDistances {
    /// The boundary model the distances were measured with.
    pub model: BoundaryModel,
    /// From each reference element to the test surface.
    pub reference_to_test: DirectedDistances,
    /// From each test element to the reference surface.
    pub test_to_reference: DirectedDistances,
}

/// Measures the distances between the surfaces of `reference` and `test`.
///
/// Both masks must share one grid. Spacing is the grid's, per axis; the
/// grid's direction and origin do not change distances.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the grids differ or `dim` is planar on a
/// grid of more than one slice.
pub fn surface_distances<T: MaskValue>(
    reference: &Volume<T>,
    test: &Volume<T>,
    model: BoundaryModel,
    dim: Dimensionality,
) -> Result<SurfaceDistances> {
    check_pair(reference, test, dim)?;
    let spacing = spacing_zyx(&reference.grid);
    let empty = SurfaceDistances {
        model,
        reference_to_test: DirectedDistances::default(),
        test_to_reference: DirectedDistances::default(),
    };
    let start = std::time::Instant::now();
    let Some(bbox) = union_bbox(&reference.data, &test.data) else {
        return Ok(empty);
    };
    tracing::debug!("bounding box {bbox:?} in {:?}", start.elapsed());

    let margin = match dim {
        Dimensionality::Volumetric => [1, 1, 1],
        Dimensionality::Planar => [0, 1, 1],
    };
    let (r, t) = rayon::join(
        || elements(&crop(&reference.data, &bbox, margin), spacing, model, dim),
        || elements(&crop(&test.data, &bbox, margin), spacing, model, dim),
    );
    tracing::debug!(
        "{} and {} surface elements in {:?}",
        r.points.len(),
        t.points.len(),
        start.elapsed()
    );
    let (dist_to_r, dist_to_t) = rayon::join(
        || squared_distance_transform(&r.border, spacing),
        || squared_distance_transform(&t.border, spacing),
    );

    tracing::debug!("distance transforms in {:?}", start.elapsed());
    let out = SurfaceDistances {
        model,
        reference_to_test: directed(&r, &dist_to_t, &t.inside),
        test_to_reference: directed(&t, &dist_to_r, &r.inside),
    };
    tracing::debug!("sorted distances in {:?}", start.elapsed());
    Ok(out)
}

fn elements(
    mask: &Array3<bool>,
    spacing: [f64; 3],
    model: BoundaryModel,
    dim: Dimensionality,
) -> SurfaceElements {
    match model {
        BoundaryModel::Surfel => surfel::elements(mask, spacing, dim),
        BoundaryModel::Voxel => voxel::elements(mask, dim),
    }
}

/// Reads the distances of `from`'s elements off the other surface's
/// squared distance map, signs them, and sorts them as DeepMind does (by
/// distance, then weight).
fn directed(
    from: &SurfaceElements,
    squared: &Array3<f64>,
    other_inside: &Array3<bool>,
) -> DirectedDistances {
    // OK because both arrays come from `crop` and are contiguous.
    let sq = squared.as_slice().expect("contiguous distance map");
    let inside = other_inside.as_slice().expect("contiguous mask");

    let mut rows: Vec<(f64, f64, f64)> = from
        .points
        .par_iter()
        .zip(from.weights.par_iter())
        .map(|(&p, &w)| {
            let d = sq[p].sqrt();
            let signed = if inside[p] { -d } else { d };
            (d, w, signed)
        })
        .collect();
    rows.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));

    DirectedDistances {
        distances: rows.iter().map(|r| r.0).collect(),
        weights: rows.iter().map(|r| r.1).collect(),
        signed: rows.iter().map(|r| r.2).collect(),
    }
}

impl SurfaceDistances {
    fn both_empty(&self) -> bool {
        self.reference_to_test.distances.is_empty() && self.test_to_reference.distances.is_empty()
    }

    fn one_empty(&self) -> bool {
        !self.both_empty()
            && (self.reference_to_test.distances.is_empty()
                || self.test_to_reference.distances.is_empty())
    }

    /// Hausdorff distance in mm: the larger of the two directed maxima.
    ///
    /// `inf` when one mask is empty, NaN when both are.
    pub fn hausdorff(&self) -> f64 {
        self.percentile_hausdorff(100.0)
    }

    /// Percentile Hausdorff distance in mm (95 for HD95): the larger of the
    /// two directed `percent`-th percentiles, by the model's rule
    /// ([`BoundaryModel::percentile_rule`]): `surfel` takes the first
    /// sorted element whose cumulative area fraction reaches `percent / 100`
    /// (DeepMind's `compute_robust_hausdorff`), `voxel` interpolates
    /// linearly between ranks (MONAI's `compute_hausdorff_distance` with
    /// `percentile`).
    ///
    /// `inf` when one mask is empty, NaN when both are.
    pub fn percentile_hausdorff(&self, percent: f64) -> f64 {
        if self.both_empty() {
            return f64::NAN;
        }
        if self.one_empty() {
            return f64::INFINITY;
        }
        let directed = |d: &DirectedDistances| match (percent >= 100.0, self.model) {
            (true, _) => d.distances[d.distances.len() - 1],
            (false, BoundaryModel::Surfel) => d.nearest_rank(percent),
            (false, BoundaryModel::Voxel) => d.interpolated(percent),
        };
        directed(&self.reference_to_test).max(directed(&self.test_to_reference))
    }

    /// Average distance in mm from the reference surface to the test
    /// surface, weighted by element area (`surfel`) or per voxel (`voxel`).
    ///
    /// See the module's table for empty masks.
    pub fn asd_reference_to_test(&self) -> f64 {
        self.asd_from(&self.reference_to_test)
    }

    /// Average distance in mm from the test surface to the reference
    /// surface; see [`SurfaceDistances::asd_reference_to_test`].
    pub fn asd_test_to_reference(&self) -> f64 {
        self.asd_from(&self.test_to_reference)
    }

    fn asd_from(&self, d: &DirectedDistances) -> f64 {
        if self.both_empty() {
            return f64::NAN;
        }
        if d.distances.is_empty() {
            // MONAI reports inf from an empty prediction; DeepMind divides
            // zero by zero.
            return match self.model {
                BoundaryModel::Surfel => f64::NAN,
                BoundaryModel::Voxel => f64::INFINITY,
            };
        }
        d.mean()
    }

    /// Mean of the two directed average surface distances, in mm.
    pub fn asd_mean_of_directed(&self) -> f64 {
        if self.one_empty() {
            return f64::INFINITY;
        }
        0.5 * (self.asd_reference_to_test() + self.asd_test_to_reference())
    }

    /// Average over the elements of both surfaces pooled, in mm (MONAI's
    /// `compute_average_surface_distance(symmetric=True)`).
    pub fn asd_pooled(&self) -> f64 {
        if self.both_empty() {
            return f64::NAN;
        }
        if self.one_empty() {
            return f64::INFINITY;
        }
        let (a, b) = (&self.reference_to_test, &self.test_to_reference);
        let products: Vec<f64> = a
            .distances
            .iter()
            .zip(&a.weights)
            .chain(b.distances.iter().zip(&b.weights))
            .map(|(d, w)| d * w)
            .collect();
        numpy_sum(&products) / (a.total_weight() + b.total_weight())
    }

    /// Symmetric average surface distance in mm by the model's rule
    /// ([`BoundaryModel::asd_symmetric_rule`]): the mean of the two
    /// directed averages for `surfel`, the pooled average for `voxel`.
    pub fn asd_symmetric(&self) -> f64 {
        match self.model {
            BoundaryModel::Surfel => self.asd_mean_of_directed(),
            BoundaryModel::Voxel => self.asd_pooled(),
        }
    }

    /// Fractions of the reference and of the test surface that lie within
    /// `tolerance_mm` of the other (distance <= tolerance counts).
    ///
    /// NaN for an empty surface.
    pub fn surface_overlap(&self, tolerance_mm: f64) -> (f64, f64) {
        (
            self.reference_to_test.overlap(tolerance_mm),
            self.test_to_reference.overlap(tolerance_mm),
        )
    }

    /// Surface Dice at `tolerance_mm` (Nikolov et al. 2021): the weight of
    /// both surfaces within tolerance of the other (distance <= tolerance)
    /// over the weight of both surfaces.
    ///
    /// 0 when one mask is empty, NaN when both are.
    pub fn surface_dice(&self, tolerance_mm: f64) -> f64 {
        let (a, b) = (&self.reference_to_test, &self.test_to_reference);
        let within = |d: &DirectedDistances| -> Vec<f64> {
            d.distances
                .iter()
                .zip(&d.weights)
                .filter(|(x, _)| **x <= tolerance_mm)
                .map(|(_, w)| *w)
                .collect()
        };
        (numpy_sum(&within(a)) + numpy_sum(&within(b))) / (a.total_weight() + b.total_weight())
    }

    /// Signed distances from the test surface to the reference surface in
    /// mm (negative inside the reference), with their weights.
    pub fn signed_test_to_reference(&self) -> (&[f64], &[f64]) {
        (
            &self.test_to_reference.signed,
            &self.test_to_reference.weights,
        )
    }

    /// Signed distances from the reference surface to the test surface in
    /// mm (negative inside the test mask), with their weights.
    pub fn signed_reference_to_test(&self) -> (&[f64], &[f64]) {
        (
            &self.reference_to_test.signed,
            &self.reference_to_test.weights,
        )
    }

    /// Total weight of the reference surface: its area in mm² (`surfel`)
    /// or its number of boundary voxels (`voxel`).
    pub fn reference_surface(&self) -> f64 {
        self.reference_to_test.total_weight()
    }

    /// Total weight of the test surface; see
    /// [`SurfaceDistances::reference_surface`].
    pub fn test_surface(&self) -> f64 {
        self.test_to_reference.total_weight()
    }
}

/// NumPy's pairwise summation of a float64 array (`np.sum`), so that
/// normalised cumulative areas and means round exactly as in the
/// reference implementations.
pub(crate) fn numpy_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |s, v| s + v);
    }
    if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &a[whole..] {
            s += v;
        }
        return s;
    }
    let mut half = n / 2;
    half -= half % 8;
    numpy_sum(&a[..half]) + numpy_sum(&a[half..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;

    fn vol(dims_zyx: (usize, usize, usize), spacing_zyx: [f64; 3]) -> Volume<bool> {
        let (z, y, x) = dims_zyx;
        let grid = Grid::axis_aligned(
            [x, y, z],
            [spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]],
            [0.0; 3],
        );
        Volume::new(grid, Array3::from_elem(dims_zyx, false)).unwrap()
    }

    #[test]
    fn numpy_sum_is_exact_on_small_integers() {
        let a: Vec<f64> = (0..1000).map(|i| i as f64).collect();

        assert_eq!(numpy_sum(&a), 499500.0);
        assert_eq!(numpy_sum(&a[..5]), 10.0);
    }

    #[test]
    fn identical_masks_are_at_distance_zero_in_both_models() {
        let mut a = vol((6, 7, 8), [2.0, 1.0, 0.5]);
        a.data.slice_mut(ndarray::s![1..4, 2..5, 3..7]).fill(true);

        for model in [BoundaryModel::Surfel, BoundaryModel::Voxel] {
            let d = surface_distances(&a, &a, model, Dimensionality::Volumetric).unwrap();

            assert_eq!(d.hausdorff(), 0.0, "{model}");
            assert_eq!(d.surface_dice(0.0), 1.0, "{model}");
            assert_eq!(d.asd_symmetric(), 0.0, "{model}");
        }
    }

    #[test]
    fn signed_distances_are_negative_inside_the_other_mask() {
        let mut a = vol((9, 9, 9), [1.0; 3]);
        let mut b = a.clone();
        a.data.slice_mut(ndarray::s![2..7, 2..7, 2..7]).fill(true);
        b.data.slice_mut(ndarray::s![3..6, 3..6, 3..6]).fill(true);

        let d =
            surface_distances(&a, &b, BoundaryModel::Voxel, Dimensionality::Volumetric).unwrap();

        let (signed, _) = d.signed_test_to_reference();
        assert!(signed.iter().all(|s| *s < 0.0), "{signed:?}");
        let (signed, _) = d.signed_reference_to_test();
        assert!(signed.iter().all(|s| *s > 0.0), "{signed:?}");
    }
}
