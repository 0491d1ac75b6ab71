//! Puts memory.x where cortex-m-rt's link.x finds it, and provisions the device: the identity
//! key and roster files named by `SECAGG_DEVICE_IDENTITY` and `SECAGG_DEVICE_ROSTER` (written
//! by `secagg keygen`, the host PKI's own format) become constants in `$OUT_DIR/provisioned.rs`,
//! which `src/provisioned.rs` includes. Without them the constants say "not provisioned" and
//! the `client` firmware refuses to take part.
//!
//! Why a generated file and not a flash page written after the build: the constants land in
//! flash (.rodata) with the code, the build needs no second tool, and the firmware cannot run
//! with an identity it was not built for. On a production line a dedicated flash page
//! (written by the provisioning station, read-protected) would let one image serve many
//! devices; the firmware would read the same three values from it.
use std::{env, fs, path::PathBuf};

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `secagg-identity-v1 <64 hex>` (crates/secagg-service/src/keys.rs).
fn identity_seed(path: &str) -> [u8; 32] {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next().and_then(unhex32), parts.next()) {
        (Some("secagg-identity-v1"), Some(seed), None) => seed,
        _ => panic!("{path} is not a secagg identity key file (from `secagg keygen`)"),
    }
}

/// One public key per line, `#` comments, each key once (as `keys::load_roster`).
fn roster(path: &str) -> Vec<[u8; 32]> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut keys: Vec<[u8; 32]> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let k = line
            .split_whitespace()
            .next()
            .and_then(unhex32)
            .unwrap_or_else(|| panic!("{path} line {}: not a public key", i + 1));
        assert!(
            !keys.contains(&k),
            "{path} line {}: a key listed twice",
            i + 1
        );
        keys.push(k);
    }
    assert!(!keys.is_empty(), "{path} lists no keys");
    keys
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x is next to build.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../../crates/secagg-sim/tests/vectors");
    for var in [
        "SECAGG_DEVICE_IDENTITY",
        "SECAGG_DEVICE_ROSTER",
        "SECAGG_DEVICE_MIN_CLIENTS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let identity = env::var("SECAGG_DEVICE_IDENTITY").ok();
    let roster_path = env::var("SECAGG_DEVICE_ROSTER").ok();
    let min_clients: u32 = env::var("SECAGG_DEVICE_MIN_CLIENTS")
        .map(|s| {
            s.parse()
                .expect("SECAGG_DEVICE_MIN_CLIENTS must be a number")
        })
        .unwrap_or(10);
    assert!(
        min_clients >= 2,
        "SECAGG_DEVICE_MIN_CLIENTS must be at least 2"
    );
    let code = match (identity, roster_path) {
        (Some(id), Some(r)) => {
            println!("cargo:rerun-if-changed={id}");
            println!("cargo:rerun-if-changed={r}");
            let seed = identity_seed(&id);
            let keys = roster(&r);
            // A roster smaller than the floor could never run a round the device accepts.
            assert!(
                keys.len() >= min_clients as usize,
                "the roster {r} has {} keys, fewer than SECAGG_DEVICE_MIN_CLIENTS = {min_clients}",
                keys.len()
            );
            format!(
                "pub const IDENTITY_SEED: Option<[u8; 32]> = Some({seed:?});\n\
                 pub const ROSTER: &[[u8; 32]] = &{keys:?};\n"
            )
        }
        (None, None) => "pub const IDENTITY_SEED: Option<[u8; 32]> = None;\n\
                         pub const ROSTER: &[[u8; 32]] = &[];\n"
            .to_string(),
        _ => panic!("set both SECAGG_DEVICE_IDENTITY and SECAGG_DEVICE_ROSTER, or neither"),
    };
    let code = format!("{code}pub const MIN_CLIENTS: u32 = {min_clients};\n");
    let path = out.join("provisioned.rs");
    fs::write(&path, code).expect("OUT_DIR is writable");
    // It holds the identity seed: readable by its owner only, as the key file it came from.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .expect("provisioned.rs permissions");
    }
}
