//! The challenge stage's round-facing calls (VALIDATION.md §5.2, §7.2, §9; build plan step 8b):
//! the client's signed binding answer to κ and the server's check of it, plus the server's
//! post-unmask recomputations (O_u, dropped-pair P_uv) and the safety net of §6.4.
//!
//! Everything is a deterministic function of the round's values; the state machines
//! (`client.rs`, `server.rs`) call it.

use alloc::sync::Arc;
use alloc::vec::Vec;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use secagg_zk::Generators;
use secagg_zk::bind::{self, BindContext, BindStatement, BindWitness};
use secagg_zk::codec;
use zeroize::Zeroizing;

use super::commit::{input_blinding, pair_commitment, projection_blinding, self_commitment};
use super::projection::{Rho, client_projections, expand_rho, upload_projections};
use super::wire::{ValidationResponse, WireParams};
use super::{ValidateError, pair_sign_positive};
use crate::ClientId;
use crate::config::RoundConfig;
use crate::crypto::{self, IdentityKey, SessionId};

/// The wire parameters of a validated round (k, d, J, b).
pub fn wire_params(config: &RoundConfig) -> Result<WireParams, ValidateError> {
    let v = config.validation.as_ref().ok_or(ValidateError::Zero {
        what: "validation parameters",
    })?;
    WireParams::new(
        config.degree,
        config.dim,
        u32::from(v.projections),
        config.bits,
    )
}

/// The round's view after κ: ρ, the generators the binding statement needs, the wire
/// parameters. Built once per round by the server, once per answer by a client.
pub struct Challenge {
    params: WireParams,
    gens: Arc<Generators>,
    rho: Rho,
    session: SessionId,
    kappa: [u8; 32],
}

impl core::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Challenge")
            .field("kappa", &self.kappa)
            .finish_non_exhaustive()
    }
}

impl Challenge {
    /// Expands ρ from κ for the round.
    pub fn new(
        config: &RoundConfig,
        session: &SessionId,
        kappa: &[u8; 32],
    ) -> Result<Self, ValidateError> {
        let params = wire_params(config)?;
        let gens = Generators::shared(params.bind().generator_sizes())?;
        let v = config.validation.as_ref().ok_or(ValidateError::Zero {
            what: "validation parameters",
        })?;
        let rho = expand_rho(
            kappa,
            session,
            usize::from(v.projections),
            config.dim as usize,
        )?;
        Ok(Self {
            params,
            gens,
            rho,
            session: *session,
            kappa: *kappa,
        })
    }

    /// The wire parameters.
    pub fn params(&self) -> &WireParams {
        &self.params
    }

    /// The generators (shared).
    pub fn gens(&self) -> &Generators {
        &self.gens
    }

    /// κ.
    pub fn kappa(&self) -> &[u8; 32] {
        &self.kappa
    }

    /// The evidence checks' and disputes' view of the round (ρ expanded again: the context
    /// owns its copy).
    pub fn context(
        &self,
        config: &RoundConfig,
    ) -> Result<super::evidence::RoundContext<'_>, ValidateError> {
        super::evidence::RoundContext::new(
            &self.gens,
            self.session,
            self.kappa,
            config.round_id,
            config.prg,
            config.modulus(),
            self.rho.rows(),
            self.rho.cols(),
        )
    }
}

/// What a client answers the challenge with: its encoded input, its upload, b_u, the seeds of
/// S_u and the bitmap it signed with its upload.
pub struct AnswerInput<'a> {
    /// The encoded input (elements mod 2^b).
    pub input: &'a [u64],
    /// The packed upload y_u as sent.
    pub packed_upload: &'a [u8],
    /// b_u.
    pub self_secret: &'a [u8; 32],
    /// (v, s_uv) for v ∈ S_u, increasing v.
    pub pairs: &'a [(ClientId, Zeroizing<[u8; 32]>)],
    /// The bitmap of the upload's signed `MaskedWith` (copied into the response, D28).
    pub bitmap: &'a [u8],
    /// C_u as sent with the norm proof.
    pub c_u: RistrettoPoint,
    /// rev9 fix: V_u as signed at the share stage.
    pub view: [u8; 32],
}

/// The client's signed answer (§7.2): O_u, P_uv for v ∈ S_u, the binding proof, signed with
/// the identity key over (session, u, κ, the body).
pub fn answer<R: CryptoRng + ?Sized>(
    config: &RoundConfig,
    ch: &Challenge,
    id: ClientId,
    identity: &IdentityKey,
    a: &AnswerInput<'_>,
    rng: &mut R,
) -> Result<ValidationResponse, ValidateError> {
    let modulus = config.modulus();
    let dim = config.dim as usize;
    let x = Zeroizing::new(super::commit::signed_input(modulus, a.input)?);
    let y = modulus
        .unpack(a.packed_upload, dim)
        .map_err(|e| ValidateError::Other(alloc::format!("own upload: {e}")))?;
    let self_seed = crypto::self_mask_seed(a.self_secret, &ch.session, id);
    let signed: Vec<(bool, &[u8; 32])> = a
        .pairs
        .iter()
        .map(|(v, s)| (pair_sign_positive(id, *v), &**s))
        .collect();
    let p = client_projections(config.prg, modulus, &ch.rho, &x, &y, &self_seed, &signed)?;
    let ids: Vec<(ClientId, &[u8; 32])> = a.pairs.iter().map(|(v, s)| (*v, &**s)).collect();
    let r_u = input_blinding(a.self_secret, &ch.session, id, &ids);
    let o_u = self_commitment(
        &ch.gens,
        &p.t_self,
        a.self_secret,
        &ch.session,
        id,
        &ch.kappa,
    )?;
    let mut pair_points = Vec::with_capacity(a.pairs.len());
    for ((v, s), t) in a.pairs.iter().zip(&p.t_pairs) {
        pair_points.push(pair_commitment(
            &ch.gens,
            t,
            s,
            &ch.session,
            id,
            *v,
            &ch.kappa,
        )?);
    }
    let witness = BindWitness {
        x: x.to_vec(),
        r_u,
        tau: p.tau.clone(),
        t_blind: projection_blinding(a.self_secret, &ch.session, id, &ch.kappa, &ids),
        omega: p.omega.clone(),
    };
    let big_y = upload_projections(&ch.rho, modulus, a.packed_upload, dim)?;
    let signs: Vec<(bool, RistrettoPoint)> = a
        .pairs
        .iter()
        .zip(&pair_points)
        .map(|((v, _), pt)| (pair_sign_positive(id, *v), *pt))
        .collect();
    let st = BindStatement {
        c_u: a.c_u,
        rho: &ch.rho,
        y: &big_y,
        o_u,
        pairs: &signs,
    };
    let ctx = bind_context(ch, id, a.packed_upload, a.bitmap);
    let proof = bind::prove(&ch.gens, ch.params.bind(), &ctx, &st, &witness, rng)?;
    let bytes = codec::encode_bind_proof(ch.params.bind(), &proof);
    Ok(ValidationResponse::sign(
        identity,
        &ch.session,
        id,
        ch.kappa,
        a.view,
        a.bitmap.to_vec(),
        &o_u,
        &pair_points,
        bytes,
    ))
}

/// Statement B's context for u's upload: the session, κ, SHA-256 of the packed upload and the
/// signed bitmap (D14), the same for prover and verifier.
fn bind_context(ch: &Challenge, id: ClientId, packed_upload: &[u8], bitmap: &[u8]) -> BindContext {
    BindContext {
        session: ch.session,
        client: u64::from(id),
        kappa: ch.kappa,
        upload_hash: crypto::hash(&[packed_upload]),
        bitmap: bitmap.to_vec(),
    }
}

/// The server's check of u's binding proof (statement B with u's own O_u and P_uv; the pair
/// comparison with the peers' P_vu is separate). The caller checked the signature, κ and the
/// bitmap's fit to the upload (`ValidationResponse::fits`) first.
pub fn verify_answer(
    ch: &Challenge,
    config: &RoundConfig,
    id: ClientId,
    neighbours: &[ClientId],
    c_u: &RistrettoPoint,
    packed_upload: &[u8],
    response: &ValidationResponse,
) -> Result<(), ValidateError> {
    let members = response
        .masked_with(neighbours)
        .ok_or(ValidateError::Other(alloc::string::String::from(
            "response bitmap does not fit N(u)",
        )))?;
    let (o_u, points) =
        response
            .points()
            .ok_or(ValidateError::Other(alloc::string::String::from(
                "non-canonical point",
            )))?;
    let proof = response.bind_proof(&ch.params)?;
    let big_y = upload_projections(
        &ch.rho,
        config.modulus(),
        packed_upload,
        config.dim as usize,
    )?;
    let signs: Vec<(bool, RistrettoPoint)> = members
        .iter()
        .zip(&points)
        .map(|(v, pt)| (pair_sign_positive(id, *v), *pt))
        .collect();
    let st = BindStatement {
        c_u: *c_u,
        rho: &ch.rho,
        y: &big_y,
        o_u,
        pairs: &signs,
    };
    let ctx = bind_context(ch, id, packed_upload, &response.bitmap);
    Ok(bind::verify(&ch.gens, ch.params.bind(), &ctx, &st, &proof)?)
}

/// The safety net's blinding term for one survivor u (§6.4): r_self(b_u) + Σ_{v ∈ S_u ∩ E}
/// sgn(u, v)·r_pair(s_uv), the part of r_u that does not cancel inside U3.
pub fn survivor_blinding(
    session: &SessionId,
    id: ClientId,
    self_secret: &[u8; 32],
    dropped_pairs: &[(ClientId, Zeroizing<[u8; 32]>)],
) -> Scalar {
    let ids: Vec<(ClientId, &[u8; 32])> = dropped_pairs.iter().map(|(v, s)| (*v, &**s)).collect();
    input_blinding(self_secret, session, id, &ids)
}

/// The safety net (§6.4): whether Σ_{U3} C_u = ⟨X̂, K⟩ + ρ_Σ·h for the released sum `released`
/// (elements mod 2^b, lifted to signed integers) and ρ_Σ the sum of [`survivor_blinding`].
pub fn aggregate_matches(
    config: &RoundConfig,
    commitments_sum: &RistrettoPoint,
    released: &[u64],
    blinding_sum: &Scalar,
) -> Result<bool, ValidateError> {
    let params = super::round::norm_params(config)?;
    let gens = super::round::norm_generators(&params)?;
    let x = super::commit::signed_input(config.modulus(), released)?;
    let expected = super::commit::input_commitment(&gens, &x, blinding_sum)?;
    Ok(expected == *commitments_sum)
}
