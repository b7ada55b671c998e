//! The `surfel` boundary model of DeepMind's `surface-distance`.
//!
//! Surface elements sit on the voxel-corner grid: each corner takes the
//! code of the 2x2x2 voxels around it (2x2 pixels in a plane), and every
//! corner whose code is neither empty nor full is a surface element with
//! the area (contour length in 2D) that the code's marching-cubes triangles
//! span at the grid's spacing. Distances run between corners. See
//! Nikolov et al., "Clinically applicable segmentation of head and neck
//! anatomy for radiotherapy", JMIR 2021, and `surface_distance/metrics.py`.

use ndarray::{s, Array3, Axis, Zip};

use super::mask::Dimensionality;
use super::surface::SurfaceElements;
use super::surfel_table::NORMALS_EIGHTHS;

/// Area in mm² of each of the 256 corner codes at `spacing` `[z, y, x]`.
pub fn code_areas_3d(spacing: [f64; 3]) -> [f64; 256] {
    let [s0, s1, s2] = spacing;
    let mut out = [0.0; 256];
    for (area, normals) in out.iter_mut().zip(NORMALS_EIGHTHS.iter()) {
        *area = normals
            .iter()
            .map(|n| {
                let v = [
                    n[0] as f64 / 8.0 * s1 * s2,
                    n[1] as f64 / 8.0 * s0 * s2,
                    n[2] as f64 / 8.0 * s0 * s1,
                ];
                (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
            })
            .sum();
    }
    out
}

/// Contour length in mm of each of the 16 codes of a 2x2 pixel block at
/// `spacing` `[y, x]`. Bits: 8 upper left, 4 upper right, 2 lower left,
/// 1 lower right.
pub fn code_lengths_2d(spacing: [f64; 2]) -> [f64; 16] {
    let [vertical, horizontal] = spacing;
    let diag = 0.5 * (vertical * vertical + horizontal * horizontal).sqrt();
    let mut out = [0.0; 16];
    for (code, len) in out.iter_mut().enumerate() {
        *len = match code {
            0b0000 | 0b1111 => 0.0,
            // A full row cut by a horizontal line, a full column by a vertical one.
            0b0011 | 0b1100 => horizontal,
            0b0101 | 0b1010 => vertical,
            // Two diagonal pixels: two corner cuts.
            0b0110 | 0b1001 => 2.0 * diag,
            // One pixel set or one unset: one corner cut.
            _ => diag,
        };
    }
    out
}

/// Corner codes of `mask`, a crop with a margin of one unset voxel on each
/// side of every axis it spans (`[0, 1, 1]` for a plane).
///
/// A 3D corner `[k, j, i]` covers voxels `k..=k+1`, `j..=j+1`, `i..=i+1`;
/// voxel offset `(a, b, c)` sets bit `7 - (4a + 2b + c)`, the order of
/// DeepMind's `ENCODE_NEIGHBOURHOOD_3D_KERNEL`.
pub(crate) fn corner_codes(mask: &Array3<bool>, dim: Dimensionality) -> Array3<u8> {
    let (nz, ny, nx) = mask.dim();
    match dim {
        Dimensionality::Volumetric => {
            let mut codes = Array3::<u8>::zeros((nz - 1, ny - 1, nx - 1));
            let mut bit = 7;
            for a in 0..2 {
                for b in 0..2 {
                    for c in 0..2 {
                        let v = mask.slice(s![a..nz - 1 + a, b..ny - 1 + b, c..nx - 1 + c]);
                        Zip::from(&mut codes)
                            .and(&v)
                            .par_for_each(|code, &set| *code |= (set as u8) << bit);
                        bit -= 1;
                    }
                }
            }
            codes
        }
        Dimensionality::Planar => {
            let mut codes = Array3::<u8>::zeros((nz, ny - 1, nx - 1));
            let mut bit = 3;
            for b in 0..2 {
                for c in 0..2 {
                    let v = mask.slice(s![.., b..ny - 1 + b, c..nx - 1 + c]);
                    Zip::from(&mut codes)
                        .and(&v)
                        .par_for_each(|code, &set| *code |= (set as u8) << bit);
                    bit -= 1;
                }
            }
            codes
        }
    }
}

/// Surface elements of a cropped mask (see [`corner_codes`] for the crop).
pub(crate) fn elements(
    mask: &Array3<bool>,
    spacing: [f64; 3],
    dim: Dimensionality,
) -> SurfaceElements {
    let codes = corner_codes(mask, dim);
    let (full, table): (u8, Vec<f64>) = match dim {
        Dimensionality::Volumetric => (255, code_areas_3d(spacing).to_vec()),
        Dimensionality::Planar => (15, code_lengths_2d([spacing[1], spacing[2]]).to_vec()),
    };

    let border = codes.map(|&c| c != 0 && c != full);
    let inside = codes.map(|&c| c == full);
    let mut points = Vec::new();
    let mut weights = Vec::new();
    for (flat, &c) in codes.iter().enumerate() {
        if c != 0 && c != full {
            points.push(flat);
            weights.push(table[c as usize]);
        }
    }
    debug_assert_eq!(codes.len_of(Axis(0)), border.len_of(Axis(0)));
    SurfaceElements {
        border,
        inside,
        points,
        weights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_corner_code_has_the_area_of_its_triangle() {
        let areas = code_areas_3d([1.0; 3]);

        assert!((areas[1] - 3f64.sqrt() / 8.0).abs() < 1e-12);
        assert!(
            (areas[0b1111_0000] - 1.0).abs() < 1e-12,
            "{}",
            areas[0b1111_0000]
        );
        assert_eq!(areas[0], 0.0);
        assert_eq!(areas[255], 0.0);
    }

    #[test]
    fn codes_and_their_complements_have_equal_areas() {
        let areas = code_areas_3d([2.5, 0.7, 0.6]);

        for c in 0..256 {
            assert!((areas[c] - areas[255 - c]).abs() < 1e-12, "code {c}");
        }
    }

    #[test]
    fn an_isolated_voxel_has_eight_corner_elements() {
        let mut m = Array3::from_elem((3, 3, 3), false);
        m[[1, 1, 1]] = true;

        let e = elements(&m, [1.0; 3], Dimensionality::Volumetric);

        assert_eq!(e.points.len(), 8);
        let total: f64 = e.weights.iter().sum();
        assert!((total - 3f64.sqrt()).abs() < 1e-12, "{total}");
    }
}
