//! Sending DICOM files to the planning system's storage SCP (C-ECHO, then
//! C-STORE), with a per-instance report.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use halo_core::dicom::send::{send_paths_with_progress, Destination, SendOptions, SendReport};

use crate::status::{arg, boundary, copy_out, opt_str_arg, out_arg, slice_arg, str_arg, FfiError};
use crate::HaloStatus;

/// Progress of a send: `done` of `total` instances handled. Return `false`
/// to cancel; instances not yet sent are then reported as not stored.
pub type HaloSendProgress =
    Option<unsafe extern "C" fn(user: *mut c_void, done: usize, total: usize) -> bool>;

/// The outcome of `halo_send`: which instances were stored.
///
/// Released by `halo_send_report_free`. Immutable; may be read from several
/// threads.
pub struct HaloSendReport {
    report: SendReport,
    json: String,
}

/// Sends DICOM files and folders (searched recursively) to the storage SCP
/// `destination`, written `AE@HOST:PORT`.
///
/// `calling_ae` may be NULL (`HALO`). `timeout_s` bounds connecting and
/// each response (0 keeps the default of 30 s); `retries` is how many
/// further associations are tried after a connection or association
/// failure, with doubling back-off. `progress` may be NULL.
///
/// Returns `HALO_STATUS_OK` whenever the send ran, even if some instances
/// were not stored: read `halo_send_report_counts`; a network failure is
/// reported per instance, never silently. Other statuses mean nothing was
/// attempted (bad destination, unreadable path, no DICOM found). `*out`
/// receives a report to release with `halo_send_report_free`. Blocking;
/// thread-safe.
///
/// # Safety
///
/// `destination` and `calling_ae` (when not NULL) must be NUL-terminated
/// UTF-8; `paths` must hold `n_paths` such strings; `out` valid for one
/// write; `progress`, when given, is called on the calling thread with
/// `user`.
#[no_mangle]
pub unsafe extern "C" fn halo_send(
    destination: *const c_char,
    calling_ae: *const c_char,
    paths: *const *const c_char,
    n_paths: usize,
    timeout_s: f64,
    retries: u32,
    progress: HaloSendProgress,
    user: *mut c_void,
    out: *mut *mut HaloSendReport,
) -> HaloStatus {
    boundary(|| {
        out_arg(out, "out")?;
        // SAFETY: forwarded from the caller.
        let destination: Destination = unsafe { str_arg(destination, "destination") }?.parse()?;
        // SAFETY: forwarded from the caller.
        let calling = unsafe { opt_str_arg(calling_ae, "calling_ae") }?;
        // SAFETY: `paths` holds `n_paths` pointers per the caller.
        let raw = unsafe { slice_arg(paths, n_paths, "paths") }?;
        if raw.is_empty() {
            return Err(FfiError::invalid("no paths given"));
        }
        let mut files = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            // SAFETY: each entry is a NUL-terminated string per the caller.
            files.push(unsafe { str_arg(*p, &format!("paths[{i}]")) }?.to_string());
        }
        if !(timeout_s.is_finite() && timeout_s >= 0.0) {
            return Err(FfiError::invalid(format!(
                "timeout_s {timeout_s} is not a duration"
            )));
        }

        let mut options = SendOptions::default();
        if let Some(ae) = calling {
            options.calling_ae_title = ae.to_string();
        }
        if timeout_s > 0.0 {
            options.connect_timeout = Duration::from_secs_f64(timeout_s);
            options.response_timeout = Duration::from_secs_f64(timeout_s);
        }
        options.retries = retries;

        let mut callback = |p: &halo_core::dicom::send::SendProgress<'_>| match progress {
            // SAFETY: the caller supplied the function and its `user`.
            Some(f) => unsafe { f(user, p.done, p.total) },
            None => true,
        };
        let report = send_paths_with_progress(&destination, &files, &options, &mut callback)?;
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| FfiError::new(HaloStatus::Internal, e.to_string()))?;

        let boxed = Box::new(HaloSendReport { report, json });
        // SAFETY: checked non-NULL above.
        unsafe { *out = Box::into_raw(boxed) };
        Ok(())
    })
}

/// Writes how many instances were stored and how many were not. Either
/// out-pointer may be NULL. Thread-safe.
///
/// # Safety
///
/// `report` must be a live handle; non-NULL out-pointers valid for a write.
#[no_mangle]
pub unsafe extern "C" fn halo_send_report_counts(
    report: *const HaloSendReport,
    stored: *mut usize,
    failed: *mut usize,
) -> HaloStatus {
    boundary(|| {
        // SAFETY: a live handle per the caller.
        let r = &unsafe { arg(report, "report") }?.report;
        // SAFETY: each checked non-NULL; valid per the caller.
        unsafe {
            if !stored.is_null() {
                *stored = r.stored;
            }
            if !failed.is_null() {
                *failed = r.failed;
            }
        }
        Ok(())
    })
}

/// Copies the full report as JSON (destination, C-ECHO result, and per
/// instance: file, SOPInstanceUID, status, outcome, attempts, message) into
/// `buf`; `needed` receives the size including the NUL, also when `buf` is
/// too small (`HALO_STATUS_BUFFER_TOO_SMALL`). Thread-safe.
///
/// # Safety
///
/// `report` must be a live handle; `buf` valid for `len` bytes when not
/// NULL; `needed` for one write when not NULL.
#[no_mangle]
pub unsafe extern "C" fn halo_send_report_json(
    report: *const HaloSendReport,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> HaloStatus {
    boundary(|| {
        // SAFETY: a live handle per the caller.
        let r = unsafe { arg(report, "report") }?;
        // SAFETY: forwarded from the caller.
        unsafe { copy_out(&r.json, buf, len, needed) }
    })
}

/// Releases a send report; NULL is ignored. Must not race with other uses.
///
/// # Safety
///
/// `report` must come from `halo_send` and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn halo_send_report_free(report: *mut HaloSendReport) -> HaloStatus {
    boundary(|| {
        if !report.is_null() {
            // SAFETY: created by `Box::into_raw` in `halo_send`.
            drop(unsafe { Box::from_raw(report) });
        }
        Ok(())
    })
}
