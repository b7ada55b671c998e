//! Image grids in patient space.
//!
//! A [`Grid`] places a voxel array in DICOM patient coordinates (LPS, mm).
//! Index order in this module is `[x, y, z]` (column, row, slice), the
//! order of SimpleITK's `TransformIndexToPhysicalPoint`; the voxel arrays
//! themselves are indexed `[z][y][x]`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The geometry of a voxel grid in patient coordinates (LPS, mm).
///
/// `direction[i][j]` is component `i` (L, P, S) of the unit vector along
/// index axis `j` (x = along a row, y = down a column, z = across slices),
/// so its columns are DICOM's row cosine, column cosine and slice normal.
/// Flattened row by row it is SimpleITK's `GetDirection()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Number of voxels along `[x, y, z]`.
    pub dims: [usize; 3],
    /// Voxel spacing in mm along `[x, y, z]`.
    pub spacing: [f64; 3],
    /// LPS position in mm of the centre of voxel `[0][0][0]`.
    pub origin: [f64; 3],
    /// Direction cosines, columns = index axes (see the type's docs).
    pub direction: [[f64; 3]; 3],
}

/// For messages: `384 x 384 x 19 voxels of 0.5 x 0.5 x 3 mm, origin (x, y, z)
/// mm, direction [..]` (LPS, direction columns as in the type's docs).
impl std::fmt::Display for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [nx, ny, nz] = self.dims;
        let [sx, sy, sz] = self.spacing;
        let [ox, oy, oz] = self.origin;
        let d: Vec<String> = self
            .direction_flat()
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect();
        write!(
            f,
            "{nx} x {ny} x {nz} voxels of {sx} x {sy} x {sz} mm, origin ({ox:.3}, {oy:.3}, \
             {oz:.3}) mm, direction [{}]",
            d.join(", ")
        )
    }
}

impl Grid {
    /// A grid with identity direction.
    pub fn axis_aligned(dims: [usize; 3], spacing: [f64; 3], origin: [f64; 3]) -> Self {
        Grid {
            dims,
            spacing,
            origin,
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// Checks that dims are non-zero, spacing positive and finite, and the
    /// direction orthonormal within 1e-4.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the offending value.
    pub fn validate(&self) -> Result<()> {
        if self.dims.contains(&0) {
            return Err(Error::InvalidInput(format!(
                "grid dims {:?} contain a zero",
                self.dims
            )));
        }
        if self.spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(Error::InvalidInput(format!(
                "grid spacing {:?} mm is not positive and finite",
                self.spacing
            )));
        }
        if self.origin.iter().any(|o| !o.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "grid origin {:?} mm is not finite",
                self.origin
            )));
        }
        for a in 0..3 {
            for b in 0..3 {
                let d = dot(&self.axis(a), &self.axis(b));
                let want = if a == b { 1.0 } else { 0.0 };
                if (d - want).abs() > 1e-4 {
                    return Err(Error::InvalidInput(format!(
                        "grid direction {:?} is not orthonormal",
                        self.direction
                    )));
                }
            }
        }
        Ok(())
    }

    /// The unit vector (LPS) of index axis `j` (0 = x, 1 = y, 2 = z).
    pub fn axis(&self, j: usize) -> [f64; 3] {
        [
            self.direction[0][j],
            self.direction[1][j],
            self.direction[2][j],
        ]
    }

    /// Direction as nine numbers in the order of SimpleITK's `GetDirection()`.
    pub fn direction_flat(&self) -> [f64; 9] {
        let d = &self.direction;
        [
            d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2], d[2][0], d[2][1], d[2][2],
        ]
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True when the grid holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of the matching `[z][y][x]` array.
    pub fn shape_zyx(&self) -> (usize, usize, usize) {
        (self.dims[2], self.dims[1], self.dims[0])
    }

    /// LPS position (mm) of a continuous index `[x, y, z]`.
    pub fn index_to_lps(&self, index: [f64; 3]) -> [f64; 3] {
        let mut p = self.origin;
        for (j, &i) in index.iter().enumerate() {
            let a = self.axis(j);
            for (c, pc) in p.iter_mut().enumerate() {
                *pc += a[c] * self.spacing[j] * i;
            }
        }
        p
    }

    /// Continuous index `[x, y, z]` of an LPS position (mm); the inverse of
    /// [`Grid::index_to_lps`] for an orthonormal direction.
    pub fn lps_to_index(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [
            p[0] - self.origin[0],
            p[1] - self.origin[1],
            p[2] - self.origin[2],
        ];
        let mut out = [0.0; 3];
        for (j, o) in out.iter_mut().enumerate() {
            *o = dot(&self.axis(j), &d) / self.spacing[j];
        }
        out
    }

    /// Volume of one voxel in mm3.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.spacing.iter().product()
    }

    /// True when both grids have the same dims and agree in spacing,
    /// origin (within `tol_mm`) and direction (within 1e-6).
    pub fn same_as(&self, other: &Grid, tol_mm: f64) -> bool {
        self.dims == other.dims
            && (0..3).all(|i| (self.spacing[i] - other.spacing[i]).abs() <= tol_mm)
            && (0..3).all(|i| (self.origin[i] - other.origin[i]).abs() <= tol_mm)
            && (0..3).all(|i| {
                (0..3).all(|j| (self.direction[i][j] - other.direction[i][j]).abs() <= 1e-6)
            })
    }
}

/// Dot product of two 3-vectors.
pub fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product of two 3-vectors.
pub fn cross(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Euclidean norm of a 3-vector.
pub fn norm(a: &[f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique() -> Grid {
        let t = 18.6_f64.to_radians();
        Grid {
            dims: [4, 5, 6],
            spacing: [0.5, 0.6, 3.0],
            origin: [-10.0, 20.0, 5.0],
            direction: [
                [1.0, 0.0, 0.0],
                [0.0, t.cos(), t.sin()],
                [0.0, -t.sin(), t.cos()],
            ],
        }
    }

    #[test]
    fn index_round_trips_through_lps_on_an_oblique_grid() {
        let g = oblique();
        g.validate().unwrap();

        let p = g.index_to_lps([1.5, 2.0, 3.25]);
        let back = g.lps_to_index(p);

        for (i, (a, b)) in back.iter().zip([1.5, 2.0, 3.25]).enumerate() {
            assert!((a - b).abs() < 1e-12, "axis {i}: {a} != {b}");
        }
    }

    #[test]
    fn validate_rejects_a_non_orthonormal_direction() {
        let mut g = oblique();
        g.direction[0][1] = 0.3;

        let err = g.validate().unwrap_err().to_string();

        assert!(err.contains("not orthonormal"), "{err}");
    }

    #[test]
    fn validate_rejects_zero_spacing() {
        let mut g = oblique();
        g.spacing[2] = 0.0;

        assert!(g.validate().is_err());
    }
}
