//! Reading DICOM image series into volumes.

use halo_core::dicom::{load_series, scan_folder, SeriesSelector};

use crate::status::{boundary, opt_str_arg, out_arg, str_arg, FfiResult};
use crate::volume::HaloVolume;
use crate::HaloStatus;

/// Reads one DICOM image series from `folder` (searched recursively) into a
/// new volume, with RescaleSlope and RescaleIntercept applied.
///
/// `selector` chooses the series by SeriesInstanceUID, SeriesNumber or
/// SeriesDescription; NULL means the folder's only series. Slices are
/// ordered along the slice normal and the geometry is exact for oblique
/// series. On failure (`HALO_STATUS_DICOM`, `HALO_STATUS_IO`, ...) the
/// message names the file, tag or series. `*out` receives a handle to
/// release with `halo_volume_free`. Thread-safe.
///
/// # Safety
///
/// `folder` and `selector` (when not NULL) must be NUL-terminated UTF-8;
/// `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn halo_series_read(
    folder: *const std::ffi::c_char,
    selector: *const std::ffi::c_char,
    out: *mut *mut HaloVolume,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: forwarded from the caller.
        let folder = unsafe { str_arg(folder, "folder") }?;
        // SAFETY: forwarded from the caller.
        let selector: SeriesSelector = match unsafe { opt_str_arg(selector, "selector") }? {
            Some(s) => s.parse()?,
            None => SeriesSelector::Only,
        };

        let (volume, frame) = read(folder, &selector)?;
        // SAFETY: checked non-NULL above.
        unsafe { *out = HaloVolume::boxed_with_frame(volume, frame) };
        Ok(())
    })
}

fn read(folder: &str, selector: &SeriesSelector) -> FfiResult<(halo_core::Volume, Option<String>)> {
    let scan = scan_folder(std::path::Path::new(folder))?;
    let series = scan.select(selector)?;
    Ok((
        load_series(series, None)?,
        series.frame_of_reference_uid.clone(),
    ))
}
