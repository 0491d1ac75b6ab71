//! The device's input: d values computed chunk by chunk from their index, a stand-in for an
//! update read from flash or produced by on-device training (the device never holds it
//! whole). `scripts/device-round.sh` computes the same values to check the aggregate.

/// Elements of the device's input: `SECAGG_DEVICE_DIM` at build time, else 10^4.
pub const DIM: u32 = parse_dim(option_env!("SECAGG_DEVICE_DIM"));

const fn parse_dim(s: Option<&str>) -> u32 {
    let Some(s) = s else { return 10_000 };
    let b = s.as_bytes();
    let mut v = 0u32;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "SECAGG_DEVICE_DIM must be a number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    assert!(v > 0, "SECAGG_DEVICE_DIM must be positive");
    v
}

/// Value `j` of the input: (7919 + 104729 j) mod 2^16 (fits any round with b ≥ 16).
pub fn value(j: usize) -> u64 {
    (7919 + j as u64 * 104_729) & 0xFFFF
}

/// Fills `chunk` with values `offset..offset + chunk.len()`.
pub fn fill(offset: usize, chunk: &mut [u64]) {
    for (j, x) in chunk.iter_mut().enumerate() {
        *x = value(offset + j);
    }
}
