//! GHL approximate smallness with flooding: completeness (never a restart), the per-row bound,
//! matrix expansion, encodings.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use secagg_zk::ghl::{self, FLOOD_BITS, GhlMask, GhlParams, ROWS, TernaryMatrix, int_to_scalar};
use secagg_zk::{Error, Transcript};

fn matrix(seed: u8, cols: usize) -> TernaryMatrix {
    TernaryMatrix::from_seed([seed; 32], cols)
}

#[test]
fn constants_are_the_wire_version_3_ones() {
    assert_eq!((ROWS, FLOOD_BITS), (128, 56));
}

#[test]
fn matrix_entries_have_the_specified_distribution() {
    let m = matrix(1, 1000);
    let (mut neg, mut zero, mut pos) = (0u32, 0u32, 0u32);
    let mut rows = 0;
    m.for_each_row(|k, row| {
        assert_eq!(k, rows);
        rows += 1;
        for r in row {
            match r {
                -1 => neg += 1,
                0 => zero += 1,
                1 => pos += 1,
                _ => panic!("entry {r}"),
            }
        }
    });
    assert_eq!(rows, ROWS);
    let total = f64::from(neg + zero + pos);
    // 128,000 entries: ¼, ½, ¼ within 1%.
    for (got, want) in [(neg, 0.25), (zero, 0.5), (pos, 0.25)] {
        assert!(
            (f64::from(got) / total - want).abs() < 0.01,
            "{got} of {total}"
        );
    }
}

/// First 64 entries for the seed 0x01..: AES-128(key = 01×16) of the IV block 01×16, i.e. the
/// first keystream block of CTR, cross-checked with Python's `cryptography` (AES-ECB of the IV)
/// and the 2-bit mapping of arguments.md §E (LSB first; 1 → +1, 2 → −1).
#[test]
fn matrix_known_answer() {
    let mut first = Vec::new();
    matrix(1, 64).for_each_row(|k, row| {
        if k == 0 {
            first = row.to_vec();
        }
    });
    let s: String = first
        .iter()
        .map(|r| match r {
            1 => '+',
            -1 => '-',
            _ => '0',
        })
        .collect();
    assert_eq!(s, KAT_ROW0);
}

const KAT_ROW0: &str = "-0++0+0+++-000+-000-++0-0++-0+00+-0--0--+00++-0+0+0000++-00++-00";

#[test]
fn rows_continue_the_stream_across_odd_widths() {
    // A 3-column matrix is the prefix-by-rows of the same stream as a 1-column-per-entry view:
    // entry (k, i) of a cols-wide matrix is entry k·cols + i of the stream.
    let wide = matrix(2, 3 * ROWS);
    let mut stream = Vec::new();
    wide.for_each_row(|_, row| stream.extend_from_slice(row));
    let narrow = matrix(2, 3);
    narrow.for_each_row(|k, row| assert_eq!(row, &stream[3 * k..3 * k + 3]));
}

/// The fold reads the key stream directly (zkperf: no row buffer, zero bytes skipped, one
/// reduction per column); it must equal Σ_k R_k,i·c_k entry by entry for every column count,
/// rows starting mid-byte included, and for a length crossing its 1,024-byte chunks.
#[test]
fn fold_equals_the_row_by_row_sum() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let coeffs: [Scalar; ROWS] = core::array::from_fn(|_| Scalar::random(&mut rng));
    for (seed, cols) in [
        (1u8, 1usize),
        (2, 3),
        (3, 4),
        (4, 5),
        (5, 67),
        (6, 1001),
        (7, 4096),
    ] {
        let m = matrix(seed, cols);
        let mut want = vec![Scalar::ZERO; cols];
        m.for_each_row(|k, row| {
            for (acc, r) in want.iter_mut().zip(row) {
                *acc += Scalar::from(u8::from(*r == 1)) * coeffs[k];
                *acc -= Scalar::from(u8::from(*r == -1)) * coeffs[k];
            }
        });
        assert_eq!(m.fold(&coeffs), want, "cols = {cols}");
    }
}

#[test]
fn fold_is_the_transpose_of_mul_vec() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let d = 37;
    let m = matrix(3, d);
    let w: Vec<i64> = (0..d)
        .map(|_| (rng.next_u32() as i64) - (1 << 31))
        .collect();
    let coeffs: [Scalar; ROWS] = core::array::from_fn(|_| Scalar::random(&mut rng));
    let rw = m.mul_vec(&w).unwrap();
    let left: Scalar = m
        .fold(&coeffs)
        .iter()
        .zip(&w)
        .map(|(a, x)| a * int_to_scalar(i128::from(*x)))
        .sum();
    let right: Scalar = coeffs
        .iter()
        .zip(&rw)
        .map(|(c, v)| c * int_to_scalar(*v))
        .sum();
    assert_eq!(left, right);
    assert_eq!(
        m.mul_vec(&w[1..]).err(),
        Some(Error::LengthMismatch {
            what: "ghl vector",
            expected: d,
            got: d - 1
        })
    );
}

#[test]
fn honest_responses_are_always_within_the_bound() {
    // w at the worst case of the norm argument: ‖w‖₂ = B, M = ⌈√d⌉·B ≥ |R_k·w|.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let d = 100;
    let b = 1000i64;
    let params = GhlParams::new(10 * b as u64).unwrap();
    for round in 0..50 {
        // All mass on one coordinate, or spread evenly (|w_i| = B/10, ‖w‖ = B).
        let w: Vec<i64> = if round % 2 == 0 {
            (0..d).map(|i| if i == round % d { b } else { 0 }).collect()
        } else {
            (0..d)
                .map(|i| if i % 2 == 0 { b / 10 } else { -b / 10 })
                .collect()
        };
        let mask = GhlMask::sample(&params, &mut rng);
        let mut t = Transcript::new(b"ghl-test");
        t.append_u64(b"round", round as u64);
        let r = TernaryMatrix::from_transcript(&mut t, b"R", d);
        let z = mask.respond(&params, &r, &w).unwrap();
        assert_eq!(ghl::check_bound(&params, &z), Ok(()));
        let bytes = ghl::encode(&params, &z);
        assert_eq!(bytes.len(), ROWS * params.z_width());
        assert_eq!(ghl::decode(&params, &bytes).unwrap(), z);
    }
}

#[test]
fn masks_cover_their_range_uniformly() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let params = GhlParams::new(3).unwrap();
    let bound = params.mask_bound() as i128;
    let mut above = 0usize;
    let mut total = 0usize;
    // The committed scalars are the integers (checked through z = 0·w + g below).
    let mask = GhlMask::sample(&params, &mut rng);
    let g = mask.respond(&params, &matrix(0, 1), &[0]).unwrap();
    assert_eq!(
        mask.scalars(),
        g.iter().map(|v| int_to_scalar(*v)).collect::<Vec<_>>()
    );
    // Sign balance and range, on the integers.
    for _ in 0..40 {
        let mask = GhlMask::sample(&params, &mut rng);
        let z = mask.respond(&params, &matrix(0, 1), &[0]).unwrap();
        for g in z {
            assert!(g.abs() <= bound);
            above += usize::from(g > 0);
            total += 1;
        }
    }
    let frac = above as f64 / total as f64;
    assert!((frac - 0.5).abs() < 0.05, "{frac}");
    assert_eq!(
        format!("{:?}", GhlMask::sample(&params, &mut rng)),
        "GhlMask { .. }"
    );
}

#[test]
fn a_coordinate_of_twice_z_max_passes_at_most_half_the_rows() {
    // GHL's per-row bound (arguments.md §A.4): with |w_i| ≥ 2·Z_max, at most one of R_k,i = 0
    // and R_k,i = ±1 lands z_k in the window, whatever the other entries and the mask.
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let params = GhlParams::new(1).unwrap();
    let z_max = params.z_max() as i128;
    let big = (2 * z_max + 1) as i64;
    let d = 4;
    let w = vec![big, 1, -1, 0];
    let (mut passed, mut rows, mut whole) = (0usize, 0usize, 0usize);
    for draw in 0..200u64 {
        let m = TernaryMatrix::from_seed(
            {
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&draw.to_le_bytes());
                s
            },
            d,
        );
        let rw = m.mul_vec(&w).unwrap();
        // Honest masks on even draws; on odd draws the mask a cheater would pick to centre the
        // R_k,i = +1 case (g = −big), which then loses the R_k,i = 0 case.
        let g: Vec<i128> = if draw % 2 == 0 {
            (0..ROWS)
                .map(|_| (rng.next_u64() >> 8) as i128 - (1i128 << 55))
                .collect()
        } else {
            vec![-i128::from(big); ROWS]
        };
        let z: Vec<i128> = rw.iter().zip(&g).map(|(a, b)| a + b).collect();
        let ok = z.iter().filter(|v| v.abs() <= z_max).count();
        passed += ok;
        rows += ROWS;
        whole += usize::from(ghl::check_bound(&params, &z).is_ok());
    }
    let frac = passed as f64 / rows as f64;
    assert!(frac <= 0.53, "rows passing: {frac}");
    assert_eq!(whole, 0, "no draw passes all {ROWS} rows");
    // Control: a coordinate well inside the bound passes every row with an honest mask.
    let small = vec![1i64, 0, 0, 0];
    let mask = GhlMask::sample(&params, &mut rng);
    let z = mask.respond(&params, &matrix(7, d), &small).unwrap();
    assert_eq!(ghl::check_bound(&params, &z), Ok(()));
}

#[test]
fn untrusted_responses_are_typed_errors() {
    let params = GhlParams::new(1 << 20).unwrap();
    let w = params.z_width();
    assert_eq!(
        ghl::decode(&params, &vec![0u8; w * ROWS - 1]),
        Err(Error::ProofLength {
            expected: w * ROWS,
            got: w * ROWS - 1
        })
    );
    // Z_max + 1 in row 5.
    let mut z = vec![0i128; ROWS];
    z[5] = params.z_max() as i128 + 1;
    assert_eq!(
        ghl::decode(&params, &ghl::encode(&params, &z)),
        Err(Error::GhlBound { row: 5 })
    );
    z[5] = -(params.z_max() as i128);
    assert_eq!(ghl::decode(&params, &ghl::encode(&params, &z)).unwrap(), z);
    assert!(matches!(
        GhlParams::new(ghl::MAX_MAGNITUDE + 1),
        Err(Error::TooLarge { .. })
    ));
    // A prover whose vector breaks the bound refuses rather than send a leaky z.
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let small = GhlParams::new(1).unwrap();
    let mask = GhlMask::sample(&small, &mut rng);
    let r = mask.respond(&small, &matrix(9, 2), &[5, 5]);
    assert!(matches!(r, Err(Error::GhlBound { .. })));
}

#[test]
fn z_width_follows_the_specification() {
    // ⌈(log₂ Z_max + 2)/8⌉ for Z_max = (2^56 + 1)·M.
    for (m, want) in [(1u64, 8usize), (1 << 6, 9), (1 << 37, 12), (1 << 41, 13)] {
        let p = GhlParams::new(m).unwrap();
        // The least w with Z_max ≤ 2^(8w−2) (floats round log₂(2^62 + 64) to 62 exactly).
        let w = p.z_width();
        assert!(p.z_max() <= 1u128 << (8 * w - 2) && p.z_max() > 1u128 << (8 * (w - 1) - 2));
        assert_eq!(p.z_width(), want, "M = {m}");
    }
}
