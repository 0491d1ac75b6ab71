//! The round-facing calls of validated inputs, first slice (VALIDATION.md §21 step 8a): the
//! configuration check of a [`RoundConfig`] with validation, the norm proof a client attaches
//! to its masked input (`MaskedInput.proof`, §5.1, §15) and the server's batch verification
//! of a stage's proofs. The binding (statement B, §5.2), the challenge and the later stages are
//! step 8b: until then nothing ties C_u to the masked upload, so a client that proves one
//! vector and masks another is not caught (VALIDATION.md §21.1, D30–D37).

use alloc::vec::Vec;

use rand_core::{CryptoRng, SeedableRng};
use secagg_zk::norm::{self, NormContext, NormParams, NormProof, NormWitness};
use secagg_zk::{Generators, codec};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{ValidateError, commit, params};
use crate::ClientId;
use crate::config::{RoundConfig, ValidationParams};
use crate::crypto::SessionId;

/// The §5.3 check's view of a round with validation `v`.
pub fn validation_config(config: &RoundConfig, v: &ValidationParams) -> params::ValidationConfig {
    params::ValidationConfig {
        bits: config.bits,
        dim: config.dim,
        clients: config.num_clients,
        neighbours: config.degree,
        projections: u32::from(v.projections),
        bound_sq: v.bound_sq,
    }
}

/// The configuration check of §5.3 on a round's config, with the client's J_cap
/// ([`params::projections_cap`]) as the cap (the server announces only what clients accept).
/// A plain round passes.
pub fn check_round_config(config: &RoundConfig) -> Result<(), ValidateError> {
    match &config.validation {
        None => Ok(()),
        Some(v) => params::check_config(
            &validation_config(config, v),
            params::projections_cap(config.num_clients),
        ),
    }
}

/// Statement N's public parameters for the round: d, B_enc² and W when the last coordinate is
/// a weight (D33).
pub fn norm_params(config: &RoundConfig) -> Result<NormParams, ValidateError> {
    let v = config.validation.as_ref().ok_or(ValidateError::Zero {
        what: "validation parameters",
    })?;
    Ok(NormParams::new(
        config.dim as usize,
        v.bound_sq,
        v.max_weight,
    )?)
}

/// The generators statement N needs at the round's d (hashed once per process and shared).
pub fn norm_generators(params: &NormParams) -> Result<std::sync::Arc<Generators>, ValidateError> {
    Ok(Generators::shared(params.generator_sizes())?)
}

/// SHA-256 of the packed masked vector, the `upload` record of the norm transcript (D12).
pub fn upload_hash(packed: &[u8]) -> [u8; 32] {
    Sha256::digest(packed).into()
}

/// The norm statement's context for client `id`'s upload `packed` in `session`.
pub fn norm_context(session: &SessionId, id: ClientId, packed: &[u8]) -> NormContext {
    NormContext {
        session: *session,
        client: u64::from(id),
        upload_hash: upload_hash(packed),
    }
}

/// What a client proves at upload: its encoded input, C_u's blinding secrets (b_u and the pair
/// seeds s_uv of the neighbours it masked with, §5.1) and the packed masked vector.
pub struct UploadWitness<'a> {
    /// The encoded input in Z_2^b (its signed representative is x).
    pub input: &'a [u64],
    /// b_u, the self-mask secret (D16: the value committed in the key entry).
    pub self_secret: &'a [u8; 32],
    /// (v, s_uv) for v ∈ S_u.
    pub pairs: &'a [(ClientId, &'a [u8; 32])],
    /// The packed masked vector y_u, as sent.
    pub packed_upload: &'a [u8],
}

/// The norm proof's bytes for `MaskedInput.proof` (D13). Refuses locally, before any
/// commitment is made, an input whose ‖x‖² exceeds B_enc² ([`secagg_zk::Error::AboveBound`],
/// naming both norms: the client's own error, never sent, §5.4 F12).
pub fn prove_upload<R: CryptoRng + ?Sized>(
    config: &RoundConfig,
    session: &SessionId,
    id: ClientId,
    w: &UploadWitness<'_>,
    rng: &mut R,
) -> Result<Vec<u8>, ValidateError> {
    let params = norm_params(config)?;
    let x = Zeroizing::new(commit::signed_input(config.modulus(), w.input)?);
    // The local refusal first: nothing is derived or committed for an input above the bound.
    let norm_sq = x.iter().fold(0u128, |acc, v| {
        let a = u128::from(v.unsigned_abs());
        acc.saturating_add(a * a)
    });
    if norm_sq > u128::from(params.bound_sq()) {
        return Err(ValidateError::Zk(secagg_zk::Error::AboveBound {
            norm_sq,
            bound_sq: params.bound_sq(),
        }));
    }
    let r_u = commit::input_blinding(w.self_secret, session, id, w.pairs);
    let witness = NormWitness::new(x.to_vec(), r_u);
    let gens = norm_generators(&params)?;
    let ctx = norm_context(session, id, w.packed_upload);
    let proof = norm::prove(&gens, &params, &ctx, &witness, rng)?;
    Ok(codec::encode_norm_proof(&params, &proof))
}

/// Decodes a client's proof bytes for the round (exact length first, D13); `None` when they do
/// not parse (the server rejects the client as for a failed proof).
pub fn decode_upload_proof(params: &NormParams, bytes: &[u8]) -> Option<NormProof> {
    codec::decode_norm_proof(params, bytes).ok()
}

/// One upload to verify: the client, SHA-256 of its packed vector, its decoded proof.
pub struct PendingProof<'a> {
    /// Who uploaded.
    pub id: ClientId,
    /// [`upload_hash`] of its packed vector.
    pub upload_hash: [u8; 32],
    /// Its proof.
    pub proof: &'a NormProof,
}

/// Verifies a batch of uploads' norm proofs (D32): all at once with secagg-zk's batch
/// verifier, and only if that fails, each alone. Returns, for each item, whether its proof
/// verifies. The RNG handed to secagg-zk's batch verifier is ChaCha20 seeded by SHA-256 of
/// `verifier_key` (the server's secret, D26: it should come from a CSPRNG unknown to the
/// provers; the sans-IO server has no RNG, so the driver sets it, and it is all zeros when
/// the driver does not), the session and every item (ids, upload hashes, proofs), so the
/// weights are drawn after every proof is fixed (D32).
pub fn verify_uploads(
    params: &NormParams,
    session: &SessionId,
    verifier_key: &[u8; 32],
    items: &[PendingProof<'_>],
) -> Result<Vec<bool>, ValidateError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let gens = norm_generators(params)?;
    let ctxs: Vec<NormContext> = items
        .iter()
        .map(|p| NormContext {
            session: *session,
            client: u64::from(p.id),
            upload_hash: p.upload_hash,
        })
        .collect();
    let mut h = Sha256::new();
    h.update(b"secagg/v3/validate/round-batch");
    h.update(verifier_key);
    h.update(session);
    for p in items {
        h.update(p.id.to_le_bytes());
        h.update(p.upload_hash);
        h.update(codec::encode_norm_proof(params, p.proof));
    }
    let mut rng = chacha20::ChaCha20Rng::from_seed(h.finalize().into());
    let batch: Vec<(NormParams, NormContext, &NormProof)> = items
        .iter()
        .zip(&ctxs)
        .map(|(p, c)| (*params, *c, p.proof))
        .collect();
    if norm::batch_verify(&gens, &batch, &mut rng).is_ok() {
        return Ok(alloc::vec![true; items.len()]);
    }
    Ok(items
        .iter()
        .zip(&ctxs)
        .map(|(p, c)| norm::verify(&gens, params, c, p.proof).is_ok())
        .collect())
}
