//! Test-only deviations of a validated round's client (feature `cheats`; VALIDATION.md §16):
//! the cheaters the simulator's `--cheat` and the validation tests run against the real server.
//! A client deviates only when [`crate::client::Client::with_cheat`] is called on it (the CLI
//! does so only in `simulate`); a build with the feature whose clients never get a cheat behaves
//! exactly as one without it.

use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::ClientId;

/// How a cheating client deviates (§16). Each keeps every other step honest, so the server's
/// check named in the variant is the one that must catch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cheat {
    /// Commits to and proves the norm of its input, but masks `masked` instead: §16's
    /// `inconsistent`, and `forged-proof` (b) when the input is a small vector and `masked` the
    /// real one. Its binding answer is made for `masked`, so the binding proof fails.
    MaskOther(Vec<u64>),
    /// Masks its pair with `peer` with a wrong seed, proves everything consistently with it and
    /// commits P_uv from it (§16 `wrong-mask`, second variant): the pair's commitments differ,
    /// and the dispute names it.
    WrongPairMask {
        /// The other end of the pair it lies on.
        peer: ClientId,
    },
    /// Signs a wrong pair-seed hash for its pair with `peer` and cuts that pair (masks without
    /// it), as a consistent cheater would: the server cuts it too, and the round must still
    /// release the exact sum whoever leaves afterwards (review 8b #1).
    CutPair {
        /// The neighbour it cuts.
        peer: ClientId,
    },
    /// Masks with a wrong self mask (from b_u with its first bit flipped) and commits O_u to
    /// match (§16 `wrong-mask`, third variant): caught after unmasking, when b_u is rebuilt.
    WrongSelfMask,
    /// Signs wrong hashes for all these peers, cuts them all, and masks with the rest even
    /// when fewer than t remain (an honest client would refuse; the final review, finding 3).
    CutMany(Vec<ClientId>),
    /// `WrongPairMask` and `WrongSelfMask` at once: excluded for its self mask, after which a
    /// colluder's lie about their pair is exposed with evidence naming this client, which its
    /// holders signed in U3 (review rev10, W1).
    WrongPairAndSelfMask {
        /// The other end of the pair it lies on.
        peer: ClientId,
    },
}

/// The self secret a cheater masks and proves with.
pub(crate) fn self_secret(cheat: Option<&Cheat>, b: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new(*b);
    if matches!(
        cheat,
        Some(Cheat::WrongSelfMask | Cheat::WrongPairAndSelfMask { .. })
    ) {
        out[0] ^= 1;
    }
    out
}

/// The pair-seed hash a cheater signs for `peer`.
pub(crate) fn signed_hash(cheat: Option<&Cheat>, peer: ClientId, mut h: [u8; 32]) -> [u8; 32] {
    if matches!(cheat, Some(Cheat::CutPair { peer: p }) if *p == peer)
        || matches!(cheat, Some(Cheat::CutMany(ps)) if ps.contains(&peer))
    {
        h[0] ^= 1;
    }
    h
}

/// The pairs a cheater cuts on its own.
pub(crate) fn cuts(cheat: Option<&Cheat>, cut: &mut Vec<ClientId>) {
    if let Some(Cheat::CutPair { peer }) = cheat
        && !cut.contains(peer)
    {
        cut.push(*peer);
        cut.sort_unstable();
    }
    if let Some(Cheat::CutMany(ps)) = cheat {
        for p in ps {
            if !cut.contains(p) {
                cut.push(*p);
            }
        }
        cut.sort_unstable();
    }
}

/// The pair seed with `peer` a cheater masks and proves with.
pub(crate) fn pair_seed(
    cheat: Option<&Cheat>,
    peer: ClientId,
    seed: Zeroizing<[u8; 32]>,
) -> Zeroizing<[u8; 32]> {
    let mut out = seed;
    if matches!(cheat, Some(Cheat::WrongPairMask { peer: p } | Cheat::WrongPairAndSelfMask { peer: p }) if *p == peer)
    {
        out[0] ^= 1;
    }
    out
}
