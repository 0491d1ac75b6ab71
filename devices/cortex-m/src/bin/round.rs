//! A full client round at the device's target size (d = 10^4, k = 20, b = 16; and d = 10^5,
//! where RAM must stay the same), replayed
//! from `vectors/` through the streaming driver: the device's messages must equal the host
//! client's byte for byte, and the run reports instructions, bytes and RAM per stage as one
//! JSON line per PRG on the semihosting console.
//!
//! The input is computed on the device, chunk by chunk, from its index (a stand-in for an
//! update read from flash or produced by on-device training): the device never holds it whole.
#![no_std]
#![no_main]

extern crate alloc;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use secagg_device::kat::{Vector, replay_streamed};

const ROUNDS: [(&str, u32, Vector); 3] = [
    (
        "chacha20",
        10_000,
        Vector {
            name: "d10000_k20_b16_chacha20.txt",
            text: include_str!("../../vectors/d10000_k20_b16_chacha20.txt"),
            clients: 21,
            pki: false,
            silenced: None,
        },
    ),
    (
        "aes128ctr",
        10_000,
        Vector {
            name: "d10000_k20_b16_aes.txt",
            text: include_str!("../../vectors/d10000_k20_b16_aes.txt"),
            clients: 21,
            pki: false,
            silenced: None,
        },
    ),
    (
        "chacha20",
        100_000,
        Vector {
            name: "d100000_k20_b16_chacha20.txt",
            text: include_str!("../../vectors/d100000_k20_b16_chacha20.txt"),
            clients: 21,
            pki: false,
            silenced: None,
        },
    ),
];

#[entry]
fn main() -> ! {
    secagg_device::init();
    let mut ok = true;
    for (prg, dim, v) in &ROUNDS {
        secagg_device::heap::reset_peak();
        // vectors-gen's input for client 1: (7919 + 104729 j) mod 2^16.
        let r = replay_streamed(v, 1, *dim, &mut |off, chunk| {
            for (j, x) in chunk.iter_mut().enumerate() {
                *x = (7919 + (off + j) as u64 * 104_729) & 0xFFFF;
            }
        });
        let pass = r.mismatch.is_none() && r.compared > 0;
        ok &= pass;
        let total: u64 = r.stages.iter().map(|s| s.instructions).sum();
        hprintln!(
            "{{\"prg\":\"{}\",\"d\":{},\"k\":20,\"b\":16,\"identical_to_host\":{},\
             \"instructions_total\":{},\"heap_peak_bytes\":{},\"stack_peak_bytes\":{},\"stages\":[",
            prg,
            dim,
            pass,
            total,
            secagg_device::heap::peak(),
            secagg_device::stack::peak()
        );
        for (i, s) in r.stages.iter().enumerate() {
            hprintln!(
                "  {{\"stage\":\"{}\",\"instructions\":{},\"bytes_in\":{},\"bytes_out\":{}}}{}",
                s.stage.map(|s| s.name()).unwrap_or("after-end"),
                s.instructions,
                s.bytes_in,
                s.bytes_out,
                if i + 1 < r.stages.len() { "," } else { "" }
            );
        }
        hprintln!("]}}");
    }
    secagg_device::host::exit(ok)
}
