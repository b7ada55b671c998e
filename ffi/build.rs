//! Gives the shared library the soname `libhalo.so`, so that a host that
//! first loads it by full path (the C# bridge does, from the plug-in's own
//! folder) and then asks for `libhalo.so` by name gets the same copy.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhalo.so");
    }
}
