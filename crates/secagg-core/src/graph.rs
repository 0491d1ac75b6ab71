//! Neighbour graphs over the clients that advertised keys (U1).
//!
//! The Harary graph H(k, m) puts the m clients on a ring and joins each to the k/2 before
//! and after it. The ring order is a uniformly random permutation derived from the session
//! id, which every client recomputes, so the server cannot pick who neighbours whom.

use alloc::vec;
use alloc::vec::Vec;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};

use crate::ClientId;
use crate::PROTOCOL_VERSION;
use crate::config::GraphKind;
use crate::crypto::{SessionId, hash};
use crate::idset::IdSet;

/// A neighbour graph over U1.
#[derive(Debug, Clone)]
pub struct Graph {
    ring: Vec<ClientId>,
    /// position[id] = index in `ring`, or u32::MAX for ids not in U1.
    position: Vec<u32>,
    half: usize,
    complete: bool,
}

impl Graph {
    /// Builds the graph for members `u1` with degree `k`. A degree of at least |U1| - 1
    /// (or a complete graph) joins everyone.
    pub fn new(kind: GraphKind, k: u32, u1: &IdSet, session: &SessionId) -> Self {
        let mut ring: Vec<ClientId> = u1.iter().collect();
        let m = ring.len();
        let complete = kind == GraphKind::Complete || k as usize >= m.saturating_sub(1);
        if !complete {
            shuffle(&mut ring, session);
        }
        let mut position = vec![u32::MAX; u1.universe() as usize + 1];
        for (i, id) in ring.iter().enumerate() {
            position[*id as usize] = i as u32;
        }
        Self {
            ring,
            position,
            half: k as usize / 2,
            complete,
        }
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
        match self.position.get(id as usize) {
            Some(p) if *p != u32::MAX => Some(*p as usize),
            _ => None,
        }
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
    let mut next_u32 = || {
        let mut b = [0u8; 4];
        rng.apply_keystream(&mut b);
        u32::from_le_bytes(b)
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
