//! The `voxel` boundary model of MONAI, MedPy and MetricsReloaded.
//!
//! The boundary is the set of voxels of the mask with at least one
//! face neighbour (6-connected in 3D, 4-connected in a plane) outside it:
//! the mask minus its erosion by the cross-shaped structuring element,
//! with voxels beyond the grid read as outside (SciPy's `binary_erosion`
//! with `border_value=0`, which MONAI's `get_mask_edges` uses). Every
//! boundary voxel weighs one; distances run between voxel centres.

use ndarray::{s, Array3, Zip};

use super::mask::Dimensionality;
use super::surface::SurfaceElements;

/// Boundary voxels of `mask`, a crop with a margin of one unset voxel on
/// each side of every axis it spans (`[0, 1, 1]` for a plane).
pub(crate) fn boundary(mask: &Array3<bool>, dim: Dimensionality) -> Array3<bool> {
    let (nz, ny, nx) = mask.dim();
    let mut border = Array3::from_elem((nz, ny, nx), false);

    // Interior of the crop: every face neighbour exists there.
    let (z0, z1) = match dim {
        Dimensionality::Volumetric => (1, nz - 1),
        Dimensionality::Planar => (0, nz),
    };
    let centre = mask.slice(s![z0..z1, 1..ny - 1, 1..nx - 1]);
    let mut out = border.slice_mut(s![z0..z1, 1..ny - 1, 1..nx - 1]);
    let y_lo = mask.slice(s![z0..z1, 0..ny - 2, 1..nx - 1]);
    let y_hi = mask.slice(s![z0..z1, 2..ny, 1..nx - 1]);
    let x_lo = mask.slice(s![z0..z1, 1..ny - 1, 0..nx - 2]);
    let x_hi = mask.slice(s![z0..z1, 1..ny - 1, 2..nx]);
    Zip::from(&mut out)
        .and(&centre)
        .and(&y_lo)
        .and(&y_hi)
        .and(&x_lo)
        .and(&x_hi)
        .par_for_each(|o, &c, &a, &b, &d, &e| *o = c && !(a && b && d && e));

    if dim == Dimensionality::Volumetric {
        let z_lo = mask.slice(s![0..nz - 2, 1..ny - 1, 1..nx - 1]);
        let z_hi = mask.slice(s![2..nz, 1..ny - 1, 1..nx - 1]);
        Zip::from(&mut out)
            .and(&centre)
            .and(&z_lo)
            .and(&z_hi)
            .par_for_each(|o, &c, &a, &b| *o = *o || (c && !(a && b)));
    }
    border
}

/// Boundary voxels of a cropped mask as surface elements of weight one.
pub(crate) fn elements(mask: &Array3<bool>, dim: Dimensionality) -> SurfaceElements {
    let border = boundary(mask, dim);
    let points: Vec<usize> = border
        .iter()
        .enumerate()
        .filter(|(_, &b)| b)
        .map(|(i, _)| i)
        .collect();
    let weights = vec![1.0; points.len()];
    SurfaceElements {
        border,
        inside: mask.clone(),
        points,
        weights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solid_cube_keeps_only_its_shell() {
        let mut m = Array3::from_elem((7, 7, 7), false);
        m.slice_mut(s![1..6, 1..6, 1..6]).fill(true);

        let b = boundary(&m, Dimensionality::Volumetric);

        assert_eq!(b.iter().filter(|v| **v).count(), 125 - 27);
        assert!(!b[[3, 3, 3]] && b[[1, 3, 3]]);
    }

    #[test]
    fn a_plane_ignores_the_slice_axis() {
        let mut m = Array3::from_elem((1, 5, 5), false);
        m.slice_mut(s![.., 1..4, 1..4]).fill(true);

        let b = boundary(&m, Dimensionality::Planar);

        assert_eq!(b.iter().filter(|v| **v).count(), 8);
        assert!(!b[[0, 2, 2]]);
    }
}
