//! halo's libtorch backend plug-in.
//!
//! Built as a shared library and loaded at run time by `halo-core`'s
//! `backend` module, whose docs describe the C protocol implemented here.
//! This is the only crate of the workspace that links libtorch (through
//! `tch`); its build script records libtorch's folder as the library's run
//! path so that no `LD_LIBRARY_PATH` is needed.

use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tch::{CModule, Device, IValue, Kind, Tensor};

/// Protocol version, matching `halo_core::backend::ABI_VERSION`.
const ABI_VERSION: u32 = 1;
const STATUS_OK: i32 = 0;
const STATUS_ERROR: i32 = 1;
const STATUS_TOO_SMALL: i32 = 2;

struct Net {
    module: CModule,
    device: Device,
}

/// The protocol version this plug-in speaks.
#[no_mangle]
pub extern "C" fn halo_backend_abi_version() -> u32 {
    ABI_VERSION
}

/// Computes `[1, 2, 3] . [4, 5, 6]` with libtorch and writes it (32) to
/// `out`.
///
/// # Safety
///
/// `out` must be valid for one write; `err` for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_backend_smoke(
    out: *mut f64,
    err: *mut c_char,
    err_len: usize,
) -> i32 {
    guard(err, err_len, || {
        if out.is_null() {
            return Err("out is NULL".to_string());
        }
        let a = Tensor::from_slice(&[1.0f64, 2.0, 3.0]);
        let b = Tensor::from_slice(&[4.0f64, 5.0, 6.0]);
        let v = a.dot(&b).double_value(&[]);
        // SAFETY: checked non-NULL above; the caller guarantees validity.
        unsafe { *out = v };
        Ok(STATUS_OK)
    })
}

/// Loads a TorchScript module on `device` ("cpu", "cuda" or "cuda:N") with
/// `threads` intra-op threads (0 keeps libtorch's default), in eval mode.
///
/// # Safety
///
/// `path` and `device` must be NUL-terminated strings; `out` valid for one
/// write; `err` for `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn halo_backend_load(
    path: *const c_char,
    device: *const c_char,
    threads: i32,
    out: *mut *mut c_void,
    err: *mut c_char,
    err_len: usize,
) -> i32 {
    guard(err, err_len, || {
        if path.is_null() || device.is_null() || out.is_null() {
            return Err("NULL argument".to_string());
        }
        // SAFETY: checked non-NULL; the caller guarantees NUL termination.
        let path = unsafe { CStr::from_ptr(path) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above.
        let device = unsafe { CStr::from_ptr(device) }
            .to_string_lossy()
            .into_owned();
        let device = parse_device(&device)?;
        if threads > 0 {
            tch::set_num_threads(threads);
        }

        let mut module = CModule::load_on_device(&path, device)
            .map_err(|e| format!("cannot load TorchScript: {e}"))?;
        module.set_eval();

        let net = Box::new(Net { module, device });
        // SAFETY: checked non-NULL above.
        unsafe { *out = Box::into_raw(net).cast() };
        Ok(STATUS_OK)
    })
}

/// Runs the network on `input` (shape `shape[..ndim]`, C order) without
/// gradients and copies the first output tensor to `output`.
///
/// # Safety
///
/// `net` must come from `halo_backend_load`; every buffer must be valid for
/// the length passed with it; `out_shape` for 8 values.
#[no_mangle]
pub unsafe extern "C" fn halo_backend_forward(
    net: *mut c_void,
    input: *const f32,
    shape: *const i64,
    ndim: usize,
    output: *mut f32,
    capacity: usize,
    out_shape: *mut i64,
    out_ndim: *mut usize,
    err: *mut c_char,
    err_len: usize,
) -> i32 {
    guard(err, err_len, || {
        if net.is_null()
            || input.is_null()
            || shape.is_null()
            || out_shape.is_null()
            || out_ndim.is_null()
        {
            return Err("NULL argument".to_string());
        }
        // SAFETY: non-NULL, created by `halo_backend_load`, used by one
        // thread at a time per the protocol.
        let net = unsafe { &*(net as *const Net) };
        // SAFETY: the caller guarantees `ndim` values at `shape`.
        let dims = unsafe { std::slice::from_raw_parts(shape, ndim) }.to_vec();
        let len: i64 = dims.iter().product();
        // SAFETY: the caller guarantees `len` floats at `input`.
        let data = unsafe { std::slice::from_raw_parts(input, len.max(0) as usize) };

        let x = Tensor::from_slice(data)
            .reshape(&dims)
            .to_device(net.device);
        let y = tch::no_grad(|| net.module.forward_is(&[IValue::Tensor(x)]))
            .map_err(|e| format!("forward failed for input shape {dims:?}: {e}"))?;
        let y = first_tensor(y)?
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous();

        let ys = y.size();
        if ys.len() > 8 {
            return Err(format!(
                "output has {} dimensions, at most 8 supported",
                ys.len()
            ));
        }
        // SAFETY: `out_shape` holds 8 values, `out_ndim` one.
        unsafe {
            std::ptr::copy_nonoverlapping(ys.as_ptr(), out_shape, ys.len());
            *out_ndim = ys.len();
        }
        let n = y.numel();
        if n > capacity {
            return Ok(STATUS_TOO_SMALL);
        }
        if output.is_null() {
            return Err("output is NULL".to_string());
        }
        // SAFETY: the caller guarantees `capacity >= n` floats at `output`.
        let dst = unsafe { std::slice::from_raw_parts_mut(output, n) };
        y.view([-1]).copy_data(dst, n);
        Ok(STATUS_OK)
    })
}

/// Releases a network from `halo_backend_load`; NULL is ignored.
///
/// # Safety
///
/// `net` must come from `halo_backend_load` and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn halo_backend_free(net: *mut c_void) {
    if !net.is_null() {
        // SAFETY: created by `Box::into_raw` in `halo_backend_load`.
        drop(unsafe { Box::from_raw(net as *mut Net) });
    }
}

fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err("device cuda requested but libtorch sees no CUDA device".to_string())
            }
        }
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) if (i as i64) < tch::Cuda::device_count() => Ok(Device::Cuda(i)),
            Some(Ok(i)) => Err(format!(
                "device cuda:{i} requested but libtorch sees {} CUDA devices",
                tch::Cuda::device_count()
            )),
            _ => Err(format!("unknown device {other:?}; use cpu, cuda or cuda:N")),
        },
    }
}

fn first_tensor(v: IValue) -> Result<Tensor, String> {
    match v {
        IValue::Tensor(t) => Ok(t),
        IValue::Tuple(items) | IValue::GenericList(items) => items
            .into_iter()
            .next()
            .ok_or_else(|| "network returned an empty tuple".to_string())
            .and_then(first_tensor),
        IValue::TensorList(mut ts) if !ts.is_empty() => Ok(ts.swap_remove(0)),
        _ => Err("network returned no tensor".to_string()),
    }
}

/// Runs `f`, turning an error or a panic into status 1 and a message in
/// `err`; the one panic boundary of the plug-in.
fn guard(err: *mut c_char, err_len: usize, f: impl FnOnce() -> Result<i32, String>) -> i32 {
    let msg = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => return status,
        Ok(Err(m)) => m,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".to_string());
            format!("libtorch plug-in panicked: {what}")
        }
    };
    if !err.is_null() && err_len > 0 {
        let bytes = msg.as_bytes();
        let n = bytes.len().min(err_len - 1);
        // SAFETY: the caller guarantees `err_len` bytes at `err`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), err, n);
            *err.add(n) = 0;
        }
    }
    STATUS_ERROR
}
