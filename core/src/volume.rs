//! Voxel arrays with their grid.

use ndarray::Array3;

use crate::{Error, Grid, Result};

/// A voxel array placed in patient space.
///
/// `data` is indexed `[z][y][x]` (slice, row, column) with x fastest in
/// memory, the order of SimpleITK's `GetArrayFromImage` and nnU-Net; its
/// shape equals `grid.shape_zyx()`. Coordinates are LPS in mm.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T = f32> {
    /// Where the voxels are.
    pub grid: Grid,
    /// The voxel values, `[z][y][x]`.
    pub data: Array3<T>,
}

impl<T> Volume<T> {
    /// Pairs a grid with an array of the matching shape.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the array's shape is not
    /// `grid.shape_zyx()`.
    pub fn new(grid: Grid, data: Array3<T>) -> Result<Self> {
        let (z, y, x) = grid.shape_zyx();
        if data.dim() != (z, y, x) {
            return Err(Error::InvalidInput(format!(
                "array shape {:?} (z, y, x) does not match grid dims {:?} (x, y, z)",
                data.dim(),
                grid.dims
            )));
        }
        Ok(Volume { grid, data })
    }

    /// Applies `f` to every voxel, keeping the grid.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Volume<U> {
        Volume {
            grid: self.grid.clone(),
            data: self.data.map(f),
        }
    }
}

impl Volume<f32> {
    /// Smallest and largest value, ignoring NaN; `None` when there is none.
    pub fn min_max(&self) -> Option<(f32, f32)> {
        let mut it = self.data.iter().copied().filter(|v| !v.is_nan());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_refuses_an_array_whose_shape_is_not_the_grid() {
        let grid = Grid::axis_aligned([3, 2, 1], [1.0; 3], [0.0; 3]);

        let err = Volume::new(grid, Array3::<f32>::zeros((1, 3, 2))).unwrap_err();

        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
