//! Structures: RTSTRUCT ROIs read onto an image's grid, and the per-slice
//! polygons of a mask in patient coordinates, which a scripting API needs
//! to add contours plane by plane.

use std::ffi::c_char;
use std::path::Path;

use halo_core::contour::mask_to_polygons;
use halo_core::dicom::rtstruct::{self, ReadOptions};

use crate::status::{arg, boundary, out_arg, str_arg, FfiError};
use crate::volume::HaloVolume;
use crate::HaloStatus;

/// Rasterises the ROI named `roi` (ROIName, or its ROINumber as text) of
/// the RTSTRUCT file `rtstruct` onto the grid of `image`, filling at voxel
/// centres and combining the contours of a slice by XOR. The new volume
/// holds 1 inside and 0 outside.
///
/// When `image` was read by `halo_series_read`, its frame of reference must
/// match the ROI's (`HALO_STATUS_INVALID_ARGUMENT` otherwise). A contour off
/// every slice plane is refused with the ROI, slice and distance named; an
/// ROI without contours gives an empty mask. `*out` receives a handle to
/// release with `halo_volume_free`. Thread-safe.
///
/// # Safety
///
/// `rtstruct` and `roi` must be NUL-terminated UTF-8; `image` a live handle;
/// `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_rtstruct_read_roi(
    rtstruct: *const c_char,
    image: *const HaloVolume,
    roi: *const c_char,
    out: *mut *mut HaloVolume,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: forwarded from the caller.
        let (path, image, roi) = unsafe {
            (
                str_arg(rtstruct, "rtstruct")?,
                arg(image, "image")?,
                str_arg(roi, "roi")?,
            )
        };

        let rs = rtstruct::read(Path::new(path))?;
        let chosen = rs.select(roi)?;
        let mask = rs.mask(
            chosen,
            &image.inner.grid,
            image.frame_of_reference_uid.as_deref(),
            &ReadOptions::default(),
        )?;

        let volume = mask.map(|&v| f32::from(v));
        // SAFETY: checked non-NULL above.
        unsafe {
            *out = HaloVolume::boxed_with_frame(volume, image.frame_of_reference_uid.clone())
        };
        Ok(())
    })
}

/// Writes the closed polygons of the mask (voxels > 0.5) on slice `slice`
/// of `mask`, traced on voxel edges, in patient coordinates (LPS, mm).
///
/// `points` receives x, y, z of every vertex of every polygon in turn
/// (`3 * n_points` doubles), `counts` the number of vertices of each
/// polygon (`n_polygons` values); outer boundaries and holes are separate
/// polygons, to be combined by XOR (subtract holes). `*n_polygons` and
/// `*n_points` are always written; when `points_len < 3 * n_points` or
/// `counts_len < n_polygons` nothing else is written and
/// `HALO_STATUS_BUFFER_TOO_SMALL` is returned, so a caller can ask with
/// zero lengths first. An empty slice gives zero polygons. Thread-safe.
///
/// # Safety
///
/// `mask` must be a live handle; `points` valid for `points_len` doubles
/// and `counts` for `counts_len` values (either may be NULL when its length
/// is 0); `n_polygons` and `n_points` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_mask_slice_polygons(
    mask: *const HaloVolume,
    slice: usize,
    points: *mut f64,
    points_len: usize,
    counts: *mut usize,
    counts_len: usize,
    n_polygons: *mut usize,
    n_points: *mut usize,
) -> HaloStatus {
    boundary(|| {
        out_arg(n_polygons, "n_polygons")?;
        out_arg(n_points, "n_points")?;
        // SAFETY: a live handle per the caller.
        let volume = unsafe { arg(mask, "mask") }?;
        let nz = volume.inner.grid.dims[2];
        if slice >= nz {
            return Err(FfiError::invalid(format!(
                "slice {slice} is outside 0..{nz}"
            )));
        }

        let one = volume.mask();
        let single = halo_core::Volume::new(
            slice_grid(&one.grid, slice),
            one.data
                .slice(ndarray::s![slice..slice + 1, .., ..])
                .to_owned(),
        )?;
        let polygons: Vec<Vec<[f64; 3]>> = mask_to_polygons(&single)
            .into_iter()
            .flat_map(|s| s.polygons)
            .collect();
        let total: usize = polygons.iter().map(Vec::len).sum();

        // SAFETY: both checked non-NULL above.
        unsafe {
            *n_polygons = polygons.len();
            *n_points = total;
        }
        if points_len < 3 * total || counts_len < polygons.len() {
            return Err(FfiError::new(
                HaloStatus::BufferTooSmall,
                format!(
                    "slice {slice} has {} polygons with {total} points: {} doubles and {} counts needed",
                    polygons.len(),
                    3 * total,
                    polygons.len()
                ),
            ));
        }
        if total > 0 {
            out_arg(points, "points")?;
            out_arg(counts, "counts")?;
        }
        let mut k = 0;
        for (i, poly) in polygons.iter().enumerate() {
            // SAFETY: lengths checked above against the caller's buffers.
            unsafe { *counts.add(i) = poly.len() };
            for p in poly {
                for c in p {
                    // SAFETY: as above; k < 3 * total <= points_len.
                    unsafe { *points.add(k) = *c };
                    k += 1;
                }
            }
        }
        Ok(())
    })
}

/// The grid of one slice of `grid`.
fn slice_grid(grid: &halo_core::Grid, slice: usize) -> halo_core::Grid {
    let mut g = grid.clone();
    g.origin = grid.index_to_lps([0.0, 0.0, slice as f64]);
    g.dims[2] = 1;
    g
}

/// Fills closed polygons given in patient coordinates (LPS, mm) onto the
/// grid of `like` at voxel centres, combining the polygons of one slice by
/// XOR (so holes given as separate polygons are subtracted), and returns a
/// new mask volume (1 inside, 0 outside) on that grid.
///
/// Polygon `i` has `counts[i]` vertices, taken in turn from `points`
/// (x, y, z each), and lies on slice `slices[i]` of the grid. This is the
/// inverse of `halo_mask_slice_polygons`: the round trip is exact. `*out`
/// receives a handle to release with `halo_volume_free`. Thread-safe.
///
/// # Safety
///
/// `like` must be a live handle; `counts` and `slices` valid for
/// `n_polygons` values; `points` for `points_len` doubles; `out` for one
/// write.
#[no_mangle]
pub unsafe extern "C" fn halo_mask_from_polygons(
    like: *const HaloVolume,
    points: *const f64,
    points_len: usize,
    counts: *const usize,
    slices: *const usize,
    n_polygons: usize,
    out: *mut *mut HaloVolume,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: forwarded from the caller.
        let (like, points, counts, slices) = unsafe {
            (
                arg(like, "like")?,
                crate::status::slice_arg(points, points_len, "points")?,
                crate::status::slice_arg(counts, n_polygons, "counts")?,
                crate::status::slice_arg(slices, n_polygons, "slices")?,
            )
        };
        let total: usize = counts.iter().sum();
        if 3 * total != points_len {
            return Err(FfiError::invalid(format!(
                "counts add up to {total} vertices ({} doubles) but points_len is {points_len}",
                3 * total
            )));
        }

        let mut polys = Vec::with_capacity(n_polygons);
        let mut k = 0;
        for (i, (&n, &z)) in counts.iter().zip(slices).enumerate() {
            if n < 3 {
                return Err(FfiError::invalid(format!(
                    "polygon {i} has {n} vertices, 3 needed"
                )));
            }
            let poly: Vec<[f64; 3]> = (0..n)
                .map(|j| {
                    [
                        points[k + 3 * j],
                        points[k + 3 * j + 1],
                        points[k + 3 * j + 2],
                    ]
                })
                .collect();
            if poly.iter().flatten().any(|c| !c.is_finite()) {
                return Err(FfiError::invalid(format!(
                    "polygon {i} has a non-finite coordinate"
                )));
            }
            k += 3 * n;
            polys.push(halo_core::contour::SlicePolygons {
                slice: z,
                polygons: vec![poly],
            });
        }

        let mask = halo_core::contour::polygons_to_mask(&like.inner.grid, &polys)?;
        // SAFETY: checked non-NULL above.
        unsafe {
            *out = HaloVolume::boxed_with_frame(
                mask.map(|&v| f32::from(v)),
                like.frame_of_reference_uid.clone(),
            )
        };
        Ok(())
    })
}
