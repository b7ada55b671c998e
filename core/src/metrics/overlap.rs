//! Voxel-count metrics: Dice, volumes, sensitivity and specificity.
//!
//! The reference mask is the one taken as truth (in edit analytics, the
//! clinician's edited contour); the test mask is compared with it (the
//! automatic contour).

use ndarray::{Axis, Zip};
use rayon::prelude::*;

use super::mask::{check_same_grid, MaskValue};
use crate::{Result, Volume};

/// Voxel counts of a reference and a test mask on one grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// Voxels set in the reference.
    pub reference_voxels: u64,
    /// Voxels set in the test mask.
    pub test_voxels: u64,
    /// Voxels set in both.
    pub both_voxels: u64,
    /// Voxels of the grid.
    pub grid_voxels: u64,
    /// Volume of one voxel in mm³.
    pub voxel_volume_mm3: f64,
}

/// Counts the voxels of `reference`, `test` and both.
///
/// # Errors
///
/// [`crate::Error::InvalidInput`] when the masks are on different grids.
pub fn overlap<T: MaskValue>(reference: &Volume<T>, test: &Volume<T>) -> Result<Overlap> {
    check_same_grid(&reference.grid, &test.grid)?;

    let (r, t, b) = reference
        .data
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(test.data.axis_iter(Axis(0)).into_par_iter())
        .map(|(sr, st)| {
            let mut c = (0u64, 0u64, 0u64);
            Zip::from(&sr).and(&st).for_each(|a, b| {
                let (a, b) = (a.is_set(), b.is_set());
                c.0 += a as u64;
                c.1 += b as u64;
                c.2 += (a && b) as u64;
            });
            c
        })
        .reduce(|| (0, 0, 0), |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2));

    Ok(Overlap {
        reference_voxels: r,
        test_voxels: t,
        both_voxels: b,
        grid_voxels: reference.grid.len() as u64,
        voxel_volume_mm3: reference.grid.voxel_volume_mm3(),
    })
}

impl Overlap {
    /// Dice coefficient `2 |R ∩ T| / (|R| + |T|)`.
    ///
    /// 0 when exactly one mask is empty, NaN when both are (as DeepMind's
    /// `compute_dice_coefficient`).
    pub fn dice(&self) -> f64 {
        2.0 * self.both_voxels as f64 / (self.reference_voxels + self.test_voxels) as f64
    }

    /// Reference volume in cm³ (0 when empty).
    pub fn volume_reference_cm3(&self) -> f64 {
        self.reference_voxels as f64 * self.voxel_volume_mm3 / 1000.0
    }

    /// Test volume in cm³ (0 when empty).
    pub fn volume_test_cm3(&self) -> f64 {
        self.test_voxels as f64 * self.voxel_volume_mm3 / 1000.0
    }

    /// Reference volume minus test volume, in cm³ (defined for empty masks).
    pub fn volume_difference_cm3(&self) -> f64 {
        self.volume_reference_cm3() - self.volume_test_cm3()
    }

    /// Test volume over reference volume: `inf` when only the reference is
    /// empty, NaN when both are.
    pub fn volume_ratio(&self) -> f64 {
        self.test_voxels as f64 / self.reference_voxels as f64
    }

    /// Sensitivity (true positive fraction) `|R ∩ T| / |R|`; NaN when the
    /// reference is empty.
    pub fn sensitivity(&self) -> f64 {
        self.both_voxels as f64 / self.reference_voxels as f64
    }

    /// Specificity (true negative fraction) `TN / (TN + FP)` over the whole
    /// grid; NaN when the reference fills the grid. It depends on the size
    /// of the grid, as always for specificity.
    pub fn specificity(&self) -> f64 {
        let negatives = self.grid_voxels - self.reference_voxels;
        let false_positive = self.test_voxels - self.both_voxels;
        (negatives - false_positive) as f64 / negatives as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;
    use ndarray::Array3;

    fn pair(r: &[usize], t: &[usize]) -> (Volume<u8>, Volume<u8>) {
        let grid = Grid::axis_aligned([10, 1, 1], [2.0, 1.0, 5.0], [0.0; 3]);
        let mut a = Array3::<u8>::zeros((1, 1, 10));
        let mut b = a.clone();
        r.iter().for_each(|&i| a[[0, 0, i]] = 1);
        t.iter().for_each(|&i| b[[0, 0, i]] = 7);
        (
            Volume::new(grid.clone(), a).unwrap(),
            Volume::new(grid, b).unwrap(),
        )
    }

    #[test]
    fn counts_give_dice_volumes_and_fractions() {
        let (r, t) = pair(&[0, 1, 2, 3], &[2, 3, 4]);

        let o = overlap(&r, &t).unwrap();

        assert!((o.dice() - 4.0 / 7.0).abs() < 1e-15);
        assert!((o.volume_reference_cm3() - 0.04).abs() < 1e-15);
        assert!((o.volume_difference_cm3() - 0.01).abs() < 1e-15);
        assert!((o.volume_ratio() - 0.75).abs() < 1e-15);
        assert!((o.sensitivity() - 0.5).abs() < 1e-15);
        assert!((o.specificity() - 5.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn empty_masks_give_the_documented_values() {
        let (r, t) = pair(&[], &[]);
        let o = overlap(&r, &t).unwrap();
        assert!(o.dice().is_nan() && o.volume_ratio().is_nan() && o.sensitivity().is_nan());
        assert_eq!(o.specificity(), 1.0);
        assert_eq!(o.volume_difference_cm3(), 0.0);

        let (r, t) = pair(&[], &[1]);
        let o = overlap(&r, &t).unwrap();
        assert_eq!(o.dice(), 0.0);
        assert_eq!(o.volume_ratio(), f64::INFINITY);

        let (r, t) = pair(&[1], &[]);
        let o = overlap(&r, &t).unwrap();
        assert_eq!(
            (o.dice(), o.sensitivity(), o.volume_ratio()),
            (0.0, 0.0, 0.0)
        );
    }
}
