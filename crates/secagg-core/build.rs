//! Turns on `cfg(secagg_avx512)`, the VAES / AVX-512 mask key stream (`src/prg/aes_wide.rs`),
//! on compilers where those target features are stable (Rust 1.89 and later), so the crate
//! still builds on its MSRV (1.88) without them.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(secagg_avx512)");
    println!("cargo::rerun-if-env-changed=RUSTC");
    println!("cargo::rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| String::from("rustc"));
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.split_whitespace()
                .nth(1)?
                .split('.')
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo::rustc-cfg=secagg_avx512");
    }
}
