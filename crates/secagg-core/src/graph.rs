//! Neighbour graphs over the clients that advertised keys (U1).
//!
//! The Harary graph H(k, m) puts the m clients on a ring and joins each to the k/2 before
//! and after it. The ring order is a uniformly random permutation derived from the session
//! id, which every client recomputes, so the server cannot pick who neighbours whom.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};

use crate::ClientId;
use crate::PROTOCOL_VERSION;
use crate::config::GraphKind;
use crate::crypto::{SessionId, hash};
use crate::idset::IdSet;

/// A neighbour graph over U1.
///
/// Its memory is O(|U1|) whatever the id universe n is (8 bytes per member for a Harary
/// graph, 4 for a complete one): a device that joins a round sized for many clients, or is
/// sent a forged one, holds no table indexed by id.
#[derive(Debug, Clone)]
pub struct Graph {
    ring: Vec<ClientId>,
    /// `by_rank[r]` = the ring position of the r-th smallest member, so `ring[by_rank[r]]`
    /// increases with r and an id's position is a binary search away. Empty when `ring` is
    /// itself sorted (complete graph, not shuffled).
    by_rank: Vec<u32>,
    half: usize,
    complete: bool,
}

impl Graph {
    /// Builds the graph for members `u1` with degree `k`. A degree of at least |U1| - 1
    /// (or a complete graph) joins everyone.
    pub fn new(kind: GraphKind, k: u32, u1: &IdSet, session: &SessionId) -> Self {
        match Self::try_new(kind, k, u1, session) {
            Ok(g) => g,
            Err(_) => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<ClientId>()),
        }
    }

    /// As [`Graph::new`], but reports an allocation failure instead of aborting (on a device,
    /// |U1| comes from a server message).
    pub fn try_new(
        kind: GraphKind,
        k: u32,
        u1: &IdSet,
        session: &SessionId,
    ) -> Result<Self, TryReserveError> {
        let m = u1.len();
        let complete = kind == GraphKind::Complete || k as usize >= m.saturating_sub(1);
        let mut sorted: Vec<ClientId> = Vec::new();
        sorted.try_reserve_exact(m)?;
        sorted.extend(u1.iter());
        let half = k as usize / 2;
        if complete {
            return Ok(Self {
                ring: sorted,
                by_rank: Vec::new(),
                half,
                complete,
            });
        }
        // Shuffling the ranks 0..m with the same swaps as shuffling the ids gives the same
        // ring, and the ranks invert into `by_rank` in O(m).
        let mut perm: Vec<u32> = Vec::new();
        perm.try_reserve_exact(m)?;
        perm.extend(0..m as u32);
        shuffle(&mut perm, session);
        let mut ring: Vec<ClientId> = Vec::new();
        ring.try_reserve_exact(m)?;
        ring.extend(perm.iter().map(|r| sorted[*r as usize]));
        let mut by_rank = sorted;
        for (p, r) in perm.iter().enumerate() {
            by_rank[*r as usize] = p as u32;
        }
        Ok(Self {
            ring,
            by_rank,
            half,
            complete,
        })
    }

    /// Heap bytes the graph holds (what it costs a device, beyond the struct itself).
    pub fn heap_bytes(&self) -> usize {
        (self.ring.capacity() + self.by_rank.capacity()) * core::mem::size_of::<u32>()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the graph has no members.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: ClientId) -> bool {
        self.pos(id).is_some()
    }

    fn pos(&self, id: ClientId) -> Option<usize> {
        if self.by_rank.is_empty() {
            return self.ring.binary_search(&id).ok();
        }
        let r = self
            .by_rank
            .binary_search_by_key(&id, |p| self.ring[*p as usize])
            .ok()?;
        Some(self.by_rank[r] as usize)
    }

    /// The neighbours of `id` in increasing id order (empty if `id` is not a member).
    pub fn neighbours(&self, id: ClientId) -> Vec<ClientId> {
        let Some(p) = self.pos(id) else {
            return Vec::new();
        };
        let mut out: Vec<ClientId> = if self.complete {
            self.ring.iter().copied().filter(|v| *v != id).collect()
        } else {
            let m = self.ring.len();
            (1..=self.half)
                .flat_map(|d| [self.ring[(p + d) % m], self.ring[(p + m - d) % m]])
                .collect()
        };
        out.sort_unstable();
        out
    }

    /// Whether `a` and `b` are distinct neighbours.
    pub fn are_neighbours(&self, a: ClientId, b: ClientId) -> bool {
        match (self.pos(a), self.pos(b)) {
            (Some(pa), Some(pb)) if pa != pb => {
                if self.complete {
                    return true;
                }
                let m = self.ring.len();
                let d = (pa + m - pb) % m;
                d.min(m - d) <= self.half
            }
            _ => false,
        }
    }
}

/// Fisher–Yates with ChaCha20 keyed by H(session) and unbiased rejection sampling.
fn shuffle(items: &mut [ClientId], session: &SessionId) {
    let key = hash(&[PROTOCOL_VERSION, b"neighbour-graph", session]);
    let mut rng = ChaCha20::new(&key.into(), &[0u8; 12].into());
    // The key stream taken 256 bytes at a time: the same words, in the same order, as
    // taking it 4 bytes at a time, at a fraction of the calls.
    let mut block = [0u8; 256];
    let mut at = block.len();
    let mut next_u32 = || {
        if at == block.len() {
            block.fill(0);
            rng.apply_keystream(&mut block);
            at = 0;
        }
        let w = u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
        at += 4;
        w
    };
    for i in (1..items.len()).rev() {
        let bound = i as u32 + 1;
        // Largest multiple of `bound` that fits in u32, to avoid modulo bias.
        let zone = u32::MAX - (u32::MAX - bound + 1) % bound;
        let j = loop {
            let x = next_u32();
            if x <= zone {
                break x % bound;
            }
        };
        items.swap(i, j as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    proptest! {
        /// The ring is the one the ids shuffled directly give (what every client and server
        /// computed before the rank lookup), and each id's position is where it sits in it.
        #[test]
        fn ring_and_positions_match_a_direct_shuffle(
            n in 2u32..400,
            ids in proptest::collection::vec(1u32..400, 0..120),
            k in 1u32..12,
            seed in any::<u8>(),
        ) {
            let u1 = IdSet::from_ids(n, ids);
            let session = [seed; 32];
            let g = Graph::new(GraphKind::Harary, k, &u1, &session);
            let mut direct: Vec<ClientId> = u1.iter().collect();
            if !g.complete {
                shuffle(&mut direct, &session);
            }
            prop_assert_eq!(&g.ring, &direct);
            for id in 0..=n + 1 {
                prop_assert_eq!(g.pos(id), direct.iter().position(|v| *v == id));
            }
        }
    }

    /// The shuffle as first written (4 key-stream bytes per call): the order every client
    /// and server has computed, and the stored transcripts hold.
    fn shuffle_reference(items: &mut [ClientId], session: &SessionId) {
        let key = hash(&[PROTOCOL_VERSION, b"neighbour-graph", session]);
        let mut rng = ChaCha20::new(&key.into(), &[0u8; 12].into());
        let mut next_u32 = || {
            let mut b = [0u8; 4];
            rng.apply_keystream(&mut b);
            u32::from_le_bytes(b)
        };
        for i in (1..items.len()).rev() {
            let bound = i as u32 + 1;
            let zone = u32::MAX - (u32::MAX - bound + 1) % bound;
            let j = loop {
                let x = next_u32();
                if x <= zone {
                    break x % bound;
                }
            };
            items.swap(i, j as usize);
        }
    }

    #[test]
    fn the_shuffle_is_unchanged() {
        for (m, seed) in [
            (2u32, 1u8),
            (3, 2),
            (64, 3),
            (65, 4),
            (1_000, 5),
            (5_003, 6),
        ] {
            let mut a: Vec<ClientId> = (1..=m).collect();
            let mut b = a.clone();
            shuffle(&mut a, &[seed; 32]);
            shuffle_reference(&mut b, &[seed; 32]);
            assert_eq!(a, b, "m = {m}");
        }
    }

    #[test]
    fn memory_follows_u1_not_the_id_universe() {
        let members = [1, 2, 3, 4, 5, 6, 7, 9];
        let session = [7u8; 32];
        let small = Graph::new(
            GraphKind::Harary,
            4,
            &IdSet::from_ids(10, members),
            &session,
        );
        let huge = Graph::new(
            GraphKind::Harary,
            4,
            &IdSet::from_ids(1 << 20, members),
            &session,
        );
        assert_eq!(small.heap_bytes(), huge.heap_bytes());
        assert_eq!(small.heap_bytes(), 8 * members.len());
        let complete = Graph::new(
            GraphKind::Complete,
            7,
            &IdSet::from_ids(1 << 20, members),
            &session,
        );
        assert_eq!(complete.heap_bytes(), 4 * members.len());
        assert!(huge.contains(9) && !huge.contains(8) && !huge.contains(1 << 20));
    }

    #[test]
    fn harary_is_regular_symmetric_and_seeded() {
        let u1 = IdSet::from_ids(60, (1..=60).filter(|i| i % 7 != 0));
        let g = Graph::new(GraphKind::Harary, 8, &u1, &[4u8; 32]);
        for a in u1.iter() {
            let nb = g.neighbours(a);
            assert_eq!(nb.len(), 8, "client {a}");
            assert!(!nb.contains(&a));
            for b in &nb {
                assert!(u1.contains(*b));
                assert!(g.are_neighbours(a, *b) && g.are_neighbours(*b, a));
                assert!(g.neighbours(*b).contains(&a));
            }
            let non: usize = u1.iter().filter(|b| g.are_neighbours(a, *b)).count();
            assert_eq!(non, 8);
        }
        let g2 = Graph::new(GraphKind::Harary, 8, &u1, &[5u8; 32]);
        assert!(u1.iter().any(|a| g.neighbours(a) != g2.neighbours(a)));
        assert!(g.neighbours(7).is_empty());
    }

    #[test]
    fn complete_and_degenerate() {
        let u1 = IdSet::full(5);
        let g = Graph::new(GraphKind::Harary, 4, &u1, &[0u8; 32]);
        assert_eq!(g.neighbours(3), vec![1, 2, 4, 5]);
        let g = Graph::new(
            GraphKind::Complete,
            4,
            &IdSet::from_ids(5, [1, 2, 5]),
            &[0u8; 32],
        );
        assert_eq!(g.neighbours(5), vec![1, 2]);
        assert!(!g.are_neighbours(5, 5));
        assert!(!g.are_neighbours(5, 3));
    }
}
