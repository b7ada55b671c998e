//! Inference backends loaded at run time.
//!
//! `halo-core` links no deep-learning runtime. A backend is a shared
//! library (a plug-in) exporting the small C protocol below; the libtorch
//! one is `halo-torch`. [`Backend::load`] looks for it, in order:
//!
//! 1. the path in the environment variable `HALO_TORCH_PLUGIN`;
//! 2. next to the shared library holding halo-core (`libhalo.so` when a
//!    host program loads halo through its C ABI);
//! 3. next to the running executable, then one folder above it (so that
//!    test binaries in `target/*/deps` find the plug-in in `target/*`).
//!
//! The protocol (all functions `extern "C"`, status 0 on success, any
//! other value on failure with a message written to `err`):
//!
//! | symbol | signature |
//! | --- | --- |
//! | `halo_backend_abi_version` | `() -> u32` |
//! | `halo_backend_smoke` | `(out: *mut f64, err: *mut c_char, err_len: usize) -> i32` |
//! | `halo_backend_load` | `(path, device, threads: i32, out: *mut *mut c_void, err, err_len) -> i32` |
//! | `halo_backend_forward` | `(net, input: *const f32, shape: *const i64, ndim: usize, output: *mut f32, capacity: usize, out_shape: *mut i64, out_ndim: *mut usize, err, err_len) -> i32` |
//! | `halo_backend_free` | `(net)` |
//!
//! `halo_backend_forward` writes at most `capacity` floats and at most 8
//! dimensions; when the output does not fit it returns 2 and fills
//! `out_shape` and `out_ndim` so that the caller can retry with a larger
//! buffer.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::{Error, Result};

/// The protocol version this build of `halo-core` speaks.
pub const ABI_VERSION: u32 = 1;

/// The environment variable that names the plug-in file.
pub const PLUGIN_ENV: &str = "HALO_TORCH_PLUGIN";

/// File name of the libtorch plug-in on this platform.
pub const TORCH_PLUGIN_FILE: &str = if cfg!(target_os = "windows") {
    "halo_torch.dll"
} else if cfg!(target_os = "macos") {
    "libhalo_torch.dylib"
} else {
    "libhalo_torch.so"
};

const ERR_LEN: usize = 2048;
const STATUS_TOO_SMALL: i32 = 2;

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type SmokeFn = unsafe extern "C" fn(*mut f64, *mut c_char, usize) -> i32;
type LoadFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    i32,
    *mut *mut c_void,
    *mut c_char,
    usize,
) -> i32;
type ForwardFn = unsafe extern "C" fn(
    *mut c_void,
    *const f32,
    *const i64,
    usize,
    *mut f32,
    usize,
    *mut i64,
    *mut usize,
    *mut c_char,
    usize,
) -> i32;
type FreeFn = unsafe extern "C" fn(*mut c_void);

/// A network: a batch of multi-channel patches in, logits out.
///
/// Input shape `[batch, channels, z, y, x]`; output
/// `[batch, classes, z, y, x]`. Implemented by plug-in members
/// ([`PluginNetwork`]) and by pure-Rust networks in tests.
pub trait Network: Send {
    /// Runs the network on one batch.
    ///
    /// # Errors
    ///
    /// Whatever the backend reports, as [`Error::Backend`].
    fn forward(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>>;
}

/// A loaded backend plug-in.
#[derive(Clone)]
pub struct Backend {
    inner: Arc<Loaded>,
}

struct Loaded {
    path: PathBuf,
    smoke: SmokeFn,
    load: LoadFn,
    forward: ForwardFn,
    free: FreeFn,
    // Kept last so the function pointers above are dropped before the
    // library is unloaded.
    _lib: libloading::Library,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Backend {
    /// Finds and loads the libtorch plug-in (see the module docs for where
    /// it is looked for).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] listing every place searched when the plug-in is
    /// absent, or saying why it would not load.
    pub fn load() -> Result<Self> {
        let candidates = plugin_candidates();
        match candidates.iter().find(|p| p.is_file()) {
            Some(path) => Self::load_from(path),
            None => Err(Error::Backend(format!(
                "the libtorch plug-in {TORCH_PLUGIN_FILE} was not found; looked in {}; \
                 build it with `make build` or set {PLUGIN_ENV}",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Loads the plug-in at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the library cannot be opened, lacks a symbol
    /// of the protocol, or speaks another protocol version.
    pub fn load_from(path: &Path) -> Result<Self> {
        tracing::debug!(path = %path.display(), "loading backend plug-in");
        // SAFETY: loading a library runs its initialisers; the plug-in is
        // halo's own (or one speaking its protocol), found at a path the
        // user controls.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| Error::Backend(format!("cannot load {}: {e}", path.display())))?;

        let sym_err = |name: &str, e: libloading::Error| {
            Error::Backend(format!("{}: {name}: {e}", path.display()))
        };
        // SAFETY: the symbol types are those of the protocol in the module
        // docs; the pointers are copied out and used only while `_lib`
        // lives (it is dropped last in `Loaded`).
        let (version, smoke, load, forward, free) = unsafe {
            let version: AbiVersionFn = *lib
                .get::<AbiVersionFn>(b"halo_backend_abi_version\0")
                .map_err(|e| sym_err("halo_backend_abi_version", e))?;
            let smoke: SmokeFn = *lib
                .get::<SmokeFn>(b"halo_backend_smoke\0")
                .map_err(|e| sym_err("halo_backend_smoke", e))?;
            let load: LoadFn = *lib
                .get::<LoadFn>(b"halo_backend_load\0")
                .map_err(|e| sym_err("halo_backend_load", e))?;
            let forward: ForwardFn = *lib
                .get::<ForwardFn>(b"halo_backend_forward\0")
                .map_err(|e| sym_err("halo_backend_forward", e))?;
            let free: FreeFn = *lib
                .get::<FreeFn>(b"halo_backend_free\0")
                .map_err(|e| sym_err("halo_backend_free", e))?;
            (version(), smoke, load, forward, free)
        };
        if version != ABI_VERSION {
            return Err(Error::Backend(format!(
                "{} speaks protocol version {version}, this halo needs {ABI_VERSION}",
                path.display()
            )));
        }

        Ok(Backend {
            inner: Arc::new(Loaded {
                path: path.to_path_buf(),
                smoke,
                load,
                forward,
                free,
                _lib: lib,
            }),
        })
    }

    /// The file the plug-in was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs one tensor operation inside the plug-in (the dot product of
    /// `[1, 2, 3]` and `[4, 5, 6]`, which is 32) to prove that the plug-in
    /// and its runtime work.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] with the plug-in's message.
    pub fn smoke(&self) -> Result<f64> {
        let mut out = f64::NAN;
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `out` and `err` are valid for writes of the sizes passed.
        let status = unsafe { (self.inner.smoke)(&mut out, err.as_mut_ptr(), ERR_LEN) };
        check(status, &err)?;
        Ok(out)
    }

    /// Opens a network file (a TorchScript module for `halo-torch`) on a
    /// device (`"cpu"` or `"cuda"`) with `threads` intra-op threads (0
    /// keeps the runtime's default).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] with the plug-in's message (missing file, wrong
    /// format, device not available).
    pub fn open(&self, path: &Path, device: &str, threads: usize) -> Result<PluginNetwork> {
        let cpath = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("path {} contains NUL", path.display())))?;
        let cdev = CString::new(device)
            .map_err(|_| Error::InvalidInput(format!("device {device:?} contains NUL")))?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        let mut err = [0 as c_char; ERR_LEN];

        // SAFETY: the strings are NUL-terminated and outlive the call; the
        // out-pointer and error buffer are valid for writes.
        let status = unsafe {
            (self.inner.load)(
                cpath.as_ptr(),
                cdev.as_ptr(),
                threads.min(i32::MAX as usize) as i32,
                &mut handle,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        check(status, &err).map_err(|e| Error::Backend(format!("{}: {e}", path.display())))?;
        if handle.is_null() {
            return Err(Error::Backend(format!(
                "{}: plug-in returned no network",
                path.display()
            )));
        }

        Ok(PluginNetwork {
            backend: self.clone(),
            handle,
            capacity_hint: 0,
        })
    }
}

/// A network opened by a backend plug-in.
pub struct PluginNetwork {
    backend: Backend,
    handle: *mut c_void,
    capacity_hint: usize,
}

// SAFETY: the handle is used by one thread at a time (`forward` takes
// `&mut self`); the torch plug-in's modules may move between threads.
unsafe impl Send for PluginNetwork {}

impl Network for PluginNetwork {
    fn forward(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
        let input = input.as_standard_layout();
        let shape: Vec<i64> = input.shape().iter().map(|&d| d as i64).collect();
        let mut capacity = self.capacity_hint.max(input.len());

        loop {
            let mut out = vec![0f32; capacity];
            let mut out_shape = [0i64; 8];
            let mut out_ndim = 0usize;
            let mut err = [0 as c_char; ERR_LEN];
            // SAFETY: every buffer is valid for the length passed with it;
            // the handle came from `halo_backend_load` and is not freed.
            let status = unsafe {
                (self.backend.inner.forward)(
                    self.handle,
                    input.as_ptr(),
                    shape.as_ptr(),
                    shape.len(),
                    out.as_mut_ptr(),
                    capacity,
                    out_shape.as_mut_ptr(),
                    &mut out_ndim,
                    err.as_mut_ptr(),
                    ERR_LEN,
                )
            };
            let dims: Vec<usize> = out_shape[..out_ndim.min(8)]
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            let needed: usize = dims.iter().product();
            if status == STATUS_TOO_SMALL && needed > capacity {
                capacity = needed;
                continue;
            }
            check(status, &err)?;
            out.truncate(needed);
            self.capacity_hint = capacity;
            return ArrayD::from_shape_vec(IxDyn(&dims), out)
                .map_err(|e| Error::Backend(format!("output shape {dims:?}: {e}")));
        }
    }
}

impl Drop for PluginNetwork {
    fn drop(&mut self) {
        // SAFETY: the handle came from `halo_backend_load` and is freed once.
        unsafe { (self.backend.inner.free)(self.handle) }
    }
}

fn check(status: i32, err: &[c_char]) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    // SAFETY: the buffer is zero-initialised and the plug-in writes at most
    // `len - 1` bytes plus a NUL, so it is NUL-terminated.
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Err(Error::Backend(if msg.is_empty() {
        format!("plug-in failed with status {status}")
    } else {
        msg
    }))
}

fn plugin_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(PLUGIN_ENV) {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = own_library_dir() {
        out.push(dir.join(TORCH_PLUGIN_FILE));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            out.push(dir.join(TORCH_PLUGIN_FILE));
            if let Some(up) = dir.parent() {
                out.push(up.join(TORCH_PLUGIN_FILE));
            }
        }
    }
    out
}

/// The folder of the shared object this code was linked into, when that
/// is not the executable itself (halo-core inside `libhalo.so`).
#[cfg(unix)]
fn own_library_dir() -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let here = own_library_dir as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`; the strings
    // it points to belong to the loader and are copied at once.
    let found = unsafe { libc::dladdr(here, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so `info` is initialised.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated path owned by the loader.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    let path = PathBuf::from(path);
    let exe = std::env::current_exe().ok();
    if exe.as_deref() == Some(path.as_path()) || !path.is_absolute() {
        return None;
    }
    path.parent().map(Path::to_path_buf)
}

#[cfg(not(unix))]
fn own_library_dir() -> Option<PathBuf> {
    None
}

/// Makes the C allocator keep and reuse the memory libtorch frees, instead
/// of handing it back to the kernel after every convolution (glibc only; a
/// no-op elsewhere). Returns whether the allocator accepted the settings.
///
/// A CPU forward pass allocates and frees buffers of tens of megabytes per
/// layer. With glibc's defaults each one is a fresh `mmap` whose pages the
/// kernel zeroes again on first touch: measured on the inference benchmark
/// (`tools/bench/bench_inference.py`), a third of the forward time went to
/// the kernel. Serving every allocation from the heap and never trimming it
/// below 1 GiB removes that, for a peak resident size about 5 % higher.
///
/// It changes the allocator of the whole process, so only a program that
/// owns its process calls it: the `halo` command does at start, the C ABI
/// leaves the host program's allocator alone.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocator parameters; both
        // are documented options and the values are in range.
        unsafe {
            let heap_only = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
            let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1;
            heap_only && no_trim
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_plugin_is_a_clear_error() {
        let err = Backend::load_from(Path::new("/nonexistent/libhalo_torch.so")).unwrap_err();

        assert!(
            err.to_string().contains("/nonexistent/libhalo_torch.so"),
            "{err}"
        );
    }

    #[test]
    fn glibc_takes_the_allocator_settings() {
        let gnu = cfg!(all(target_os = "linux", target_env = "gnu"));

        assert_eq!(keep_freed_memory(), gnu);
    }
}
