//! Micro-benchmarks on the device, in instructions (QEMU `-icount`): X25519, Ed25519, share
//! encryption, Shamir splitting, and the mask PRG per key-stream byte (AES-128-CTR against
//! ChaCha20), and the serial framing per byte (an 8 KiB message encoded, then decoded a byte
//! at a time as the client's UART loop feeds it). Prints one JSON object on the semihosting
//! console.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::PrgKind;
use secagg_core::crypto::{self, DhKeyPair, IdentityKey};
use secagg_core::prg::{MaskStream, Sign, apply_masks};
use secagg_core::ring::Modulus;
use secagg_core::shamir;
use secagg_device::clock::instructions;
use secagg_device::frame::{self, Decoder, Reassembler};

/// Median instructions of `reps` runs of `f`.
fn median(reps: usize, mut f: impl FnMut()) -> u64 {
    let mut v: Vec<u64> = (0..reps)
        .map(|_| {
            let t = instructions();
            f();
            instructions() - t
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Instructions per key-stream byte of one mask over `d` elements of `bits` bits, less the
/// reduction pass that runs without any mask.
fn prg_per_byte(kind: PrgKind, bits: u8, d: usize) -> (u64, u64) {
    let Some(m) = Modulus::new(bits) else {
        return (0, 1);
    };
    let mut v = vec![0u64; d];
    let base = median(3, || apply_masks(black_box(&mut v), m, &mut []));
    let one = median(3, || {
        let mut s = [MaskStream::new(kind, &[7u8; 32], Sign::Plus)];
        apply_masks(black_box(&mut v), m, &mut s);
    });
    (
        one.saturating_sub(base),
        (d * m.stream_bytes_per_element()) as u64,
    )
}

/// Instructions per message byte to frame an 8 KiB message, and to decode and reassemble it
/// fed one byte at a time.
fn framing_per_byte() -> (u64, u64, usize) {
    let msg: Vec<u8> = (0..8 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut wire = Vec::new();
    let encode = median(3, || {
        wire.clear();
        frame::encode_message(black_box(&msg), &mut wire);
    });
    let decode = median(3, || {
        let mut dec = Decoder::default();
        let mut re = Reassembler::new(msg.len());
        let mut got = None;
        for b in &wire {
            dec.push(core::slice::from_ref(b));
            while let Some(f) = dec.next_frame() {
                if let Ok(Some(m)) = re.push(f.kind, &f.payload) {
                    got = Some(m);
                }
            }
        }
        assert!(got.as_deref() == Some(&msg[..]));
    });
    (encode, decode, msg.len())
}

#[entry]
fn main() -> ! {
    secagg_device::init();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = DhKeyPair::generate(&mut rng);
    let b = DhKeyPair::generate(&mut rng);
    let pk = b.public();
    let agree = median(5, || {
        black_box(a.agree(black_box(&pk)));
    });
    let keygen = median(5, || {
        black_box(DhKeyPair::generate(&mut rng));
    });
    let idk = IdentityKey::generate(&mut rng);
    let msg = [9u8; 100];
    let sig = idk.sign(&msg);
    let ed_sign = median(5, || {
        black_box(idk.sign(black_box(&msg)));
    });
    let ed_verify = median(5, || {
        black_box(crypto::verify(&idk.public(), black_box(&msg), &sig));
    });
    // Batches of signatures through the core's verify_all (ed25519-dalek's batch equation),
    // per signature: 3 is the device's batch (crypto::VERIFY_BATCH).
    let keys: Vec<IdentityKey> = (0..7).map(|_| IdentityKey::generate(&mut rng)).collect();
    let pubs: Vec<[u8; 32]> = keys.iter().map(IdentityKey::public).collect();
    let msgs: Vec<[u8; 100]> = (0..7u8).map(|i| [i; 100]).collect();
    let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let batch = |n: usize| {
        let checks: Vec<crypto::SignatureCheck<'_>> = (0..n)
            .map(|i| (&pubs[i], &msgs[i][..], &sigs[i]))
            .collect();
        let total = median(3, || {
            assert!(crypto::verify_all(black_box(&checks)).is_ok());
        });
        total / n as u64
    };
    let batch3 = batch(3);
    let pt = [5u8; 88];
    let seal = median(5, || {
        black_box(crypto::seal_shares(&[3; 32], &[4; 32], 1, 2, &[6; 32], &pt));
    });
    let holders: Vec<u32> = (1..=21).collect();
    let split = median(5, || {
        black_box(shamir::split(&[1u8; 32], &holders, 11, &mut rng).ok());
    });
    let d = 4096;
    let (aes, aes_bytes) = prg_per_byte(PrgKind::Aes128Ctr, 16, d);
    let (chacha, chacha_bytes) = prg_per_byte(PrgKind::ChaCha20, 16, d);
    let (frame_enc, frame_dec, frame_bytes) = framing_per_byte();
    hprintln!(
        "{{\"x25519_agree\":{},\"x25519_keygen\":{},\"ed25519_sign\":{},\"ed25519_verify\":{},\
         \"ed25519_verify_batch3_per_sig\":{},\
         \"seal_share_bundle\":{},\"shamir_split_32B_n21_t11\":{},\
         \"prg_aes128ctr_insn_per_byte\":{:.2},\"prg_chacha20_insn_per_byte\":{:.2},\
         \"frame_encode_insn_per_byte\":{:.2},\"frame_decode_insn_per_byte\":{:.2},\
         \"heap_peak_bytes\":{},\"stack_peak_bytes\":{},\"counter_calibration\":{}}}",
        agree,
        keygen,
        ed_sign,
        ed_verify,
        batch3,
        seal,
        split,
        aes as f64 / aes_bytes as f64,
        chacha as f64 / chacha_bytes as f64,
        frame_enc as f64 / frame_bytes as f64,
        frame_dec as f64 / frame_bytes as f64,
        secagg_device::heap::peak(),
        secagg_device::stack::peak(),
        secagg_device::clock::calibration() as f64 / 1000.0
    );
    secagg_device::host::exit(true)
}
