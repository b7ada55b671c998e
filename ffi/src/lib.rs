//! The C ABI over `halo-core`.
//!
//! Every export follows the protocol of `DESIGN.md` ("C ABI"): it returns a
//! [`HaloStatus`], checks every pointer for NULL, catches panics at one
//! boundary, and leaves out-parameters untouched on failure. The message of
//! the last failure on the calling thread is copied out by
//! [`halo_last_error_message`].

#![deny(missing_docs)]

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Status of every call. The numbers are part of the ABI and never reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaloStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was out of its domain (dims, sizes, strings).
    InvalidArgument = 2,
    /// A caller buffer was too small; the needed size was reported.
    BufferTooSmall = 3,
    /// A file could not be read or written.
    Io = 4,
    /// A DICOM input was unusable.
    Dicom = 5,
    /// The inference backend failed or is missing.
    Backend = 6,
    /// The operation was cancelled by the progress callback.
    Cancelled = 7,
    /// A panic was caught at the boundary (a bug in halo).
    Internal = 8,
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(msg: impl Into<String>) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg.into());
}

/// Runs `f` inside the one panic boundary of the library, recording the
/// message of any failure for [`halo_last_error_message`].
fn boundary(f: impl FnOnce() -> Result<(), (HaloStatus, String)>) -> HaloStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => HaloStatus::Ok,
        Ok(Err((status, msg))) => {
            set_error(msg);
            status
        }
        Err(_) => {
            set_error("internal error: a panic was caught at the C boundary");
            HaloStatus::Internal
        }
    }
}

/// Copies a string into a caller buffer, NUL-terminated; reports the bytes
/// needed (including the NUL) through `needed` when not NULL.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes when not NULL.
unsafe fn copy_out(
    s: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), (HaloStatus, String)> {
    let bytes = s.as_bytes();
    if !needed.is_null() {
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *needed = bytes.len() + 1 };
    }
    if buf.is_null() || len < bytes.len() + 1 {
        return Err((
            HaloStatus::BufferTooSmall,
            format!(
                "buffer of {len} bytes is too small, {} needed",
                bytes.len() + 1
            ),
        ));
    }
    // SAFETY: `buf` holds at least `bytes.len() + 1` bytes (checked).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), buf, bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    Ok(())
}

/// Copies halo's version string (for example `"0.1.0"`) into `buf`.
///
/// `needed`, when not NULL, receives the size in bytes including the NUL.
/// Returns `HALO_STATUS_BUFFER_TOO_SMALL` when `buf` is NULL or shorter.
/// Thread-safe.
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
/// The message stays until the next failure on the same thread; an empty
/// string when none failed. `needed`, when not NULL, receives the size in
/// bytes including the NUL. Thread-safe (the message is per thread).
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
    let msg = LAST_ERROR.with(|e| e.borrow().clone());
    // SAFETY: forwarded from the caller's guarantees. Not run through
    // `boundary`, which would overwrite the message being read.
    match unsafe { copy_out(&msg, buf, len, needed) } {
        Ok(()) => HaloStatus::Ok,
        Err((status, _)) => status,
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
