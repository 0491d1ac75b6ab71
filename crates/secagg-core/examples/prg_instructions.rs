//! Applies one mask stream to a vector of `N` 32-bit values, for counting the host's
//! instructions per key-stream byte with valgrind (README "Devices", next to the device's
//! figure). Run at two sizes and divide the difference, so start-up cancels out:
//!
//! ```sh
//! cargo build --release -p secagg-core --example prg_instructions
//! for n in 1048576 2097152; do valgrind --tool=callgrind --callgrind-out-file=/tmp/prg.cg \
//!   target/release/examples/prg_instructions aes $n 2>&1 | grep 'refs:'; done
//! ```
//!
//! (Ir difference) / (1048576 × 4 bytes) is instructions per key-stream byte, mask addition
//! included. `aes` uses AES-NI where the CPU has it, as every host round does.

use secagg_core::PrgKind;
use secagg_core::prg::{MaskStream, Sign, apply_masks};
use secagg_core::ring::Modulus;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = match args.get(1).map(String::as_str) {
        Some("aes") => PrgKind::Aes128Ctr,
        Some("chacha") => PrgKind::ChaCha20,
        _ => {
            eprintln!("usage: prg_instructions aes|chacha N");
            std::process::exit(2);
        }
    };
    let Some(n) = args.get(2).and_then(|s| s.parse::<usize>().ok()) else {
        eprintln!("usage: prg_instructions aes|chacha N");
        std::process::exit(2);
    };
    let Some(m) = Modulus::new(32) else {
        unreachable!("32 bits is a valid modulus")
    };
    let mut v = vec![0u32; n];
    let mut s = [MaskStream::new(kind, &[7u8; 32], Sign::Plus)];
    apply_masks(&mut v, m, &mut s);
    // Keeps the work observable.
    println!("{}", v.iter().fold(0u32, |a, x| a ^ x));
}
