//! Records libtorch's folder as this plug-in's run path, so that the
//! plug-in loads without `LD_LIBRARY_PATH`.
//!
//! The folder comes from `LIBTORCH` (a libtorch distribution) or, with
//! `LIBTORCH_USE_PYTORCH=1`, from the `torch` package of the `python3` on
//! `PATH`, the same rule `torch-sys` follows.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=PATH");

    let lib_dir = if let Ok(root) = std::env::var("LIBTORCH") {
        Some(PathBuf::from(root).join("lib"))
    } else {
        Command::new("python3")
            .args([
                "-c",
                "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };

    if let Some(dir) = lib_dir {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,{}", dir.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    } else {
        println!("cargo:warning=libtorch folder not found; the plug-in will need LD_LIBRARY_PATH");
    }
}
