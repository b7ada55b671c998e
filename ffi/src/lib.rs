//! The C ABI over `halo-core`.
//!
//! Every export follows the protocol of `DESIGN.md` ("C ABI"):
//!
//! - it returns a [`HaloStatus`] whose numbers never change meaning;
//! - every pointer argument is checked for NULL through one helper;
//! - one panic boundary ([`status::boundary`]) wraps every body, so no panic
//!   crosses into the caller;
//! - out-parameters come last and are written only on success;
//! - handles made by `halo_*_new` or `halo_*_open` are released by the
//!   matching `halo_*_free`, which accepts NULL;
//! - the message of the last failure on the calling thread is copied out by
//!   [`halo_last_error_message`].
//!
//! Coordinates are DICOM patient coordinates (LPS) in millimetres; voxel
//! buffers are `[z][y][x]` with x fastest, as in `halo-core`.

#![deny(missing_docs)]

pub mod compare;
pub mod model;
pub mod send;
pub mod series;
pub mod status;
pub mod structure;
pub mod volume;

use std::ffi::c_char;

pub use status::HaloStatus;
use status::{boundary, copy_out, last_error};

/// Copies halo's version string (for example `"0.1.0"`) into `buf`.
///
/// `needed`, when not NULL, receives the size in bytes including the NUL,
/// also on failure. Returns `HALO_STATUS_BUFFER_TOO_SMALL` when `buf` is
/// NULL or shorter than that. Thread-safe.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes when not NULL; `needed` for one
/// write when not NULL.
#[no_mangle]
pub unsafe extern "C" fn halo_version(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> HaloStatus {
    // SAFETY: forwarded from the caller's guarantees.
    boundary(|| unsafe { copy_out(halo_core::VERSION, buf, len, needed) })
}

/// Copies the message of the last failed call on this thread into `buf`.
///
/// The message stays until the next failure on the same thread; it is an
/// empty string when nothing failed yet. `needed`, when not NULL, receives
/// the size in bytes including the NUL. Thread-safe: each thread has its
/// own message. This call never replaces the message it reads.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes when not NULL; `needed` for one
/// write when not NULL.
#[no_mangle]
pub unsafe extern "C" fn halo_last_error_message(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> HaloStatus {
    let msg = last_error();
    // SAFETY: forwarded from the caller's guarantees. Not run through
    // `boundary`, which would overwrite the message being read.
    match unsafe { copy_out(&msg, buf, len, needed) } {
        Ok(()) => HaloStatus::Ok,
        Err(e) => e.status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_reports_the_needed_size_when_the_buffer_is_too_small() {
        let mut buf = [0 as c_char; 2];
        let mut needed = 0usize;

        // SAFETY: buffers are valid for the lengths passed.
        let status = unsafe { halo_version(buf.as_mut_ptr(), buf.len(), &mut needed) };

        assert_eq!(status, HaloStatus::BufferTooSmall);
        assert_eq!(needed, halo_core::VERSION.len() + 1);
    }
}
