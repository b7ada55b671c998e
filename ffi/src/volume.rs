//! Volumes: `float` voxel arrays with their geometry, made from caller
//! buffers or read from files.

use halo_core::{Grid, Volume};
use ndarray::Array3;

use crate::status::{arg, boundary, copy_slice_out, out_arg, slice_arg, FfiError, FfiResult};
use crate::HaloStatus;

/// An immutable volume: voxel values (`float`, `[z][y][x]`, x fastest) on a
/// grid in patient coordinates (LPS, mm).
///
/// Created by `halo_volume_new` or a reader, released by `halo_volume_free`.
/// A volume is never modified after creation, so several threads may read
/// it at once; freeing must not race with any other use.
pub struct HaloVolume {
    pub(crate) inner: Volume<f32>,
    /// FrameOfReferenceUID (0020,0052) of the series it was read from.
    pub(crate) frame_of_reference_uid: Option<String>,
}

impl HaloVolume {
    /// Boxes a volume as a handle.
    pub(crate) fn boxed(inner: Volume<f32>) -> *mut HaloVolume {
        Self::boxed_with_frame(inner, None)
    }

    /// Boxes a volume with the frame of reference it lies in.
    pub(crate) fn boxed_with_frame(inner: Volume<f32>, frame: Option<String>) -> *mut HaloVolume {
        Box::into_raw(Box::new(HaloVolume {
            inner,
            frame_of_reference_uid: frame,
        }))
    }

    /// The voxels above 0.5 as a mask on the same grid.
    pub(crate) fn mask(&self) -> Volume<u8> {
        self.inner.map(|&v| u8::from(v > 0.5))
    }
}

/// Reads a grid from C arrays, validating it.
///
/// # Safety
///
/// Each pointer must be valid for the number of values in its name.
pub(crate) unsafe fn grid_arg(
    dims: *const usize,
    spacing: *const f64,
    origin: *const f64,
    direction: *const f64,
) -> FfiResult<Grid> {
    // SAFETY: the caller guarantees the lengths.
    let (d, s, o, r) = unsafe {
        (
            slice_arg(dims, 3, "dims")?,
            slice_arg(spacing, 3, "spacing")?,
            slice_arg(origin, 3, "origin")?,
            slice_arg(direction, 9, "direction")?,
        )
    };
    let grid = Grid {
        dims: [d[0], d[1], d[2]],
        spacing: [s[0], s[1], s[2]],
        origin: [o[0], o[1], o[2]],
        direction: [[r[0], r[1], r[2]], [r[3], r[4], r[5]], [r[6], r[7], r[8]]],
    };
    grid.validate().map_err(FfiError::from)?;
    Ok(grid)
}

/// Creates a volume by copying `len` floats from `data`.
///
/// `dims` is `[x, y, z]` (3 values), `spacing` mm `[x, y, z]` (3),
/// `origin` the LPS position in mm of voxel `[0][0][0]` (3), `direction`
/// nine numbers in SimpleITK's `GetDirection()` order (row by row; the
/// columns are the unit vectors of the x, y and z index axes). `len` must
/// equal `dims[0] * dims[1] * dims[2]`; `data` is `[z][y][x]`, x fastest.
/// The caller keeps ownership of every buffer; `*out` receives a new handle
/// to release with `halo_volume_free`. Thread-safe.
///
/// # Safety
///
/// Each pointer must be valid for the number of values stated above.
#[no_mangle]
pub unsafe extern "C" fn halo_volume_new(
    dims: *const usize,
    spacing: *const f64,
    origin: *const f64,
    direction: *const f64,
    data: *const f32,
    len: usize,
    out: *mut *mut HaloVolume,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: forwarded from the caller.
        let grid = unsafe { grid_arg(dims, spacing, origin, direction) }?;
        let (z, y, x) = grid.shape_zyx();
        let want = x
            .checked_mul(y)
            .and_then(|v| v.checked_mul(z))
            .ok_or_else(|| FfiError::invalid(format!("dims {:?} overflow", grid.dims)))?;
        if len != want {
            return Err(FfiError::invalid(format!(
                "len is {len} but dims {:?} hold {want} voxels",
                grid.dims
            )));
        }
        // SAFETY: `data` is valid for `len` reads per the caller.
        let values = unsafe { slice_arg(data, len, "data") }?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(FfiError::invalid(format!(
                "data[{i}] is {}, not finite",
                values[i]
            )));
        }

        let array = Array3::from_shape_vec((z, y, x), values.to_vec())
            .map_err(|e| FfiError::invalid(e.to_string()))?;
        let volume = Volume::new(grid, array).map_err(FfiError::from)?;
        // SAFETY: `out` checked non-NULL above.
        unsafe { *out = HaloVolume::boxed(volume) };
        Ok(())
    })
}

/// Releases a volume. NULL is accepted and ignored. Must not race with any
/// other use of the same handle.
///
/// # Safety
///
/// `volume` must come from halo and not have been freed before.
#[no_mangle]
pub unsafe extern "C" fn halo_volume_free(volume: *mut HaloVolume) -> HaloStatus {
    boundary(|| {
        if !volume.is_null() {
            // SAFETY: created by `Box::into_raw` in `HaloVolume::boxed`.
            drop(unsafe { Box::from_raw(volume) });
        }
        Ok(())
    })
}

/// Writes the volume's grid: `dims` `[x, y, z]` (3 values), `spacing` mm
/// (3), `origin` LPS mm (3), `direction` (9, SimpleITK order). Any of the
/// four out-pointers may be NULL to skip it. Thread-safe.
///
/// # Safety
///
/// `volume` must be a live handle; each non-NULL out-pointer valid for its
/// number of values.
#[no_mangle]
pub unsafe extern "C" fn halo_volume_geometry(
    volume: *const HaloVolume,
    dims: *mut usize,
    spacing: *mut f64,
    origin: *mut f64,
    direction: *mut f64,
) -> HaloStatus {
    boundary(|| {
        // SAFETY: a live handle per the caller.
        let g = &unsafe { arg(volume, "volume") }?.inner.grid;
        // SAFETY: each non-NULL pointer is valid for its length.
        unsafe {
            if !dims.is_null() {
                copy_slice_out(&g.dims, dims, 3, "dims")?;
            }
            if !spacing.is_null() {
                copy_slice_out(&g.spacing, spacing, 3, "spacing")?;
            }
            if !origin.is_null() {
                copy_slice_out(&g.origin, origin, 3, "origin")?;
            }
            if !direction.is_null() {
                copy_slice_out(&g.direction_flat(), direction, 9, "direction")?;
            }
        }
        Ok(())
    })
}

/// Copies the voxel values (`[z][y][x]`, x fastest) into `buf`, which holds
/// `len` floats; `HALO_STATUS_BUFFER_TOO_SMALL` when `len` is less than the
/// voxel count. Thread-safe.
///
/// # Safety
///
/// `volume` must be a live handle; `buf` valid for `len` writes.
#[no_mangle]
pub unsafe extern "C" fn halo_volume_copy_data(
    volume: *const HaloVolume,
    buf: *mut f32,
    len: usize,
) -> HaloStatus {
    boundary(|| {
        // SAFETY: a live handle per the caller.
        let v = &unsafe { arg(volume, "volume") }?.inner;
        let data = v.data.as_standard_layout();
        let src = data
            .as_slice()
            .ok_or_else(|| FfiError::invalid("volume is not contiguous"))?;
        // SAFETY: `buf` valid for `len` writes per the caller.
        unsafe { copy_slice_out(src, buf, len, "buf") }
    })
}
