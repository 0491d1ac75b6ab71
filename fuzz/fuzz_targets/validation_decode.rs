//! The decoders of validated rounds: the proofs (crates/secagg-zk, VALIDATION.md §21 step 5),
//! norm and binding proofs under statements chosen by the first two bytes, and the WIP, linear,
//! range and GHL response encodings on their own; and the round's new messages (step 7,
//! `secagg_core::validate::wire`): Challenge, ValidationResponse, DisputeRequest/DisputeAnswer,
//! ExclusionRequest with DroppedPair or SelfMask evidence, ExclusionShares and the share-stage
//! hash list, under round parameters chosen by the same two bytes. Must hold: no panic;
//! whatever decodes re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secagg_zk::bind::BindParams;
use secagg_zk::codec::{
    decode_bind_proof, decode_norm_proof, encode_bind_proof, encode_norm_proof,
};
use secagg_zk::ghl::{self, GhlParams};
use secagg_zk::linear::LinearProof;
use secagg_zk::norm::NormParams;
use secagg_zk::range::RangeProof;
use secagg_zk::wip::WipProof;

fuzz_target!(|data: &[u8]| {
    secagg_core::validate::wire::fuzz_decode(data);
    let [a, b, rest @ ..] = data else {
        return;
    };
    // Statements from d = 1 to 2^20, small and large bounds, with and without a weight.
    let d = 1usize << (a % 21) | usize::from(b >> 4);
    let bound_sq = [1u64, 400, 1 << 40, (1 << 62) - 1][usize::from(b & 3)];
    let weight = (b & 4 != 0).then_some(u64::from(*a));
    if let Ok(params) = NormParams::new(d, bound_sq, weight)
        && let Ok(proof) = decode_norm_proof(&params, rest)
    {
        assert_eq!(
            encode_norm_proof(&params, &proof),
            rest,
            "norm proof re-encodes"
        );
    }
    // Binding statements: J from 1 to 2^11, k from 0 to 1023, b from 1 to 32.
    let projections = 1 + (usize::from(*a) << (b % 4));
    let neighbours = usize::from(*b) * 4 + usize::from(a & 3);
    if let Ok(params) = BindParams::new(d, projections, neighbours, 1 + u32::from(b % 32))
        && let Ok(proof) = decode_bind_proof(&params, rest)
    {
        assert_eq!(
            encode_bind_proof(&params, &proof),
            rest,
            "binding proof re-encodes"
        );
    }
    let n = 1usize << (a % 24);
    if let Ok(p) = WipProof::from_bytes(rest, n) {
        assert_eq!(p.to_bytes(), rest, "wip proof re-encodes");
    }
    if let Ok(p) = LinearProof::from_bytes(rest, n) {
        assert_eq!(p.to_bytes(), rest, "linear proof re-encodes");
    }
    if let Ok(p) = RangeProof::from_bytes(rest, b & 8 != 0) {
        assert_eq!(p.to_bytes(), rest, "range proof re-encodes");
    }
    if let Ok(params) = GhlParams::new(u64::from(*a) << (b % 34))
        && let Ok(z) = ghl::decode(&params, rest)
    {
        assert_eq!(ghl::encode(&params, &z), rest, "ghl response re-encodes");
    }
});
