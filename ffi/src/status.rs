//! Status codes, the last-error message, and the helpers every export
//! uses: the panic boundary, NULL checks, strings in and out.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
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
    /// A model folder or its manifest was unusable.
    Model = 9,
    /// A network peer refused or failed (DICOM send).
    Network = 10,
}

/// A failure inside an export: its status and message.
#[derive(Debug)]
pub struct FfiError {
    /// The status returned to the caller.
    pub status: HaloStatus,
    /// The message kept for `halo_last_error_message`.
    pub message: String,
}

impl FfiError {
    /// A failure with a status and message.
    pub fn new(status: HaloStatus, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// An invalid-argument failure.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(HaloStatus::InvalidArgument, message)
    }
}

impl From<halo_core::Error> for FfiError {
    fn from(e: halo_core::Error) -> Self {
        use halo_core::Error as E;
        let status = match &e {
            E::Io { .. } | E::Nifti { .. } => HaloStatus::Io,
            E::Dicom { .. } | E::Series { .. } => HaloStatus::Dicom,
            E::Backend(_) => HaloStatus::Backend,
            E::Cancelled => HaloStatus::Cancelled,
            _ => HaloStatus::InvalidArgument,
        };
        FfiError::new(status, e.to_string())
    }
}

/// Result of an export's body.
pub type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The last failure message of this thread.
pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().clone())
}

/// Runs `f` inside the one panic boundary of the library, recording the
/// message of any failure for `halo_last_error_message`.
pub fn boundary(f: impl FnOnce() -> FfiResult) -> HaloStatus {
    let (status, message) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return HaloStatus::Ok,
        Ok(Err(e)) => (e.status, e.message),
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (
                HaloStatus::Internal,
                format!("internal error: a panic was caught at the C boundary: {what}"),
            )
        }
    };
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
    status
}

/// Borrows `*p`, or fails with `NullArgument` naming the argument.
///
/// # Safety
///
/// `p`, when not NULL, must point to a valid `T` for the returned lifetime.
pub unsafe fn arg<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller guarantees validity when not NULL.
    unsafe { p.as_ref() }
        .ok_or_else(|| FfiError::new(HaloStatus::NullArgument, format!("argument {name} is NULL")))
}

/// Fails with `NullArgument` when an out-pointer is NULL.
pub fn out_arg<T>(p: *mut T, name: &str) -> FfiResult<()> {
    if p.is_null() {
        Err(FfiError::new(
            HaloStatus::NullArgument,
            format!("argument {name} is NULL"),
        ))
    } else {
        Ok(())
    }
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `p`, when not NULL, must point to a NUL-terminated string.
pub unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    let p = unsafe { arg(p, name) }?;
    // SAFETY: non-NULL and NUL-terminated per the caller's guarantee.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::invalid(format!("argument {name} is not UTF-8")))
}

/// Reads an optional string argument: NULL gives `None`.
///
/// # Safety
///
/// As [`str_arg`].
pub unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded.
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// Borrows `len` values at `p` as a slice (NULL allowed only when `len` is
/// 0).
///
/// # Safety
///
/// `p` must be valid for `len` reads of `T`.
pub unsafe fn slice_arg<'a, T>(p: *const T, len: usize, name: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    unsafe { arg(p, name) }?;
    // SAFETY: non-NULL and valid for `len` reads per the caller.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Copies a string into a caller buffer, NUL-terminated; reports the bytes
/// needed (including the NUL) through `needed` when not NULL.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes when not NULL; `needed` for one write
/// when not NULL.
pub unsafe fn copy_out(s: &str, buf: *mut c_char, len: usize, needed: *mut usize) -> FfiResult {
    let bytes = s.as_bytes();
    if !needed.is_null() {
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *needed = bytes.len() + 1 };
    }
    if buf.is_null() || len < bytes.len() + 1 {
        return Err(FfiError::new(
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

/// Copies `src` into a caller buffer of `len` values.
///
/// # Safety
///
/// `buf` must be valid for `len` writes when not NULL.
pub unsafe fn copy_slice_out<T: Copy>(src: &[T], buf: *mut T, len: usize, name: &str) -> FfiResult {
    out_arg(buf, name)?;
    if len < src.len() {
        return Err(FfiError::new(
            HaloStatus::BufferTooSmall,
            format!("{name} holds {len} values, {} needed", src.len()),
        ));
    }
    // SAFETY: `buf` is valid for `len >= src.len()` writes (checked).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_checks_name_the_argument() {
        // SAFETY: NULL is allowed and checked.
        let err = unsafe { arg(std::ptr::null::<u8>(), "volume") }.unwrap_err();

        assert_eq!(err.status, HaloStatus::NullArgument);
        assert!(err.message.contains("volume"));
    }

    #[test]
    fn a_panic_becomes_the_internal_status_with_a_message() {
        let status = boundary(|| panic!("boom"));

        assert_eq!(status, HaloStatus::Internal);
        assert!(last_error().contains("boom"));
    }
}
