//! Links wshd with `link/hot.ld`, which groups the code its container
//! daemon runs (see the comment there). Only for Linux with glibc, the
//! target that file's names are about.

fn main() {
    println!("cargo:rerun-if-changed=link/hot.ld");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/link/hot.ld");
    }
}
