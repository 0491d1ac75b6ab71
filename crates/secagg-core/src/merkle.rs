//! A Merkle tree over the advertised key entries of U1 (RFC 9162 §2.1's tree shape and audit
//! paths, SHA-256 with 0x00/0x01 leaf/node prefixes).
//!
//! Its root is part of the session id ([`crate::RoundConfig::session_id`]), so every derived
//! key, the graph's permutation and every consistency signature depend on the fresh keys of
//! every client in U1. The server sends each client the audit path of its own entry; the client
//! checks it, so a server cannot build a session that leaves out (or replays) a client's keys
//! without that client noticing. Paths are ⌈log2 |U1|⌉ hashes: 20 at 10^6 clients.

use alloc::vec::Vec;

use sha2::{Digest, Sha256};

/// Deepest path accepted: a tree of up to 2^32 leaves.
pub const MAX_PATH_LEN: usize = 32;

/// Hash of a leaf's bytes.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A tree built once, from which the root and every leaf's path are read in O(log n).
#[derive(Debug, Clone)]
pub struct Tree {
    /// levels[0] are the leaves; the last level has one node (none for an empty tree).
    levels: Vec<Vec<[u8; 32]>>,
}

impl Tree {
    /// Builds the tree over leaf hashes (from [`leaf_hash`]) in order. Pairing bottom-up and
    /// carrying an odd last node up unchanged gives RFC 9162's tree (split at the largest
    /// power of two below the size).
    pub fn new(leaves: Vec<[u8; 32]>) -> Self {
        let mut levels = Vec::new();
        let mut cur = leaves;
        while cur.len() > 1 {
            let next = cur
                .chunks(2)
                .map(|p| {
                    p.iter()
                        .copied()
                        .reduce(|l, r| node_hash(&l, &r))
                        .unwrap_or_default()
                })
                .collect();
            levels.push(core::mem::replace(&mut cur, next));
        }
        levels.push(cur);
        Self { levels }
    }

    /// The root (SHA-256 of nothing for an empty tree).
    pub fn root(&self) -> [u8; 32] {
        match self.levels.last().and_then(|l| l.first()) {
            Some(r) => *r,
            None => Sha256::digest([]).into(),
        }
    }

    /// The audit path of leaf `index` (empty if out of range or the tree has one leaf).
    pub fn path(&self, index: usize) -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        let mut i = index;
        if self.levels.first().is_none_or(|l| i >= l.len()) {
            return out;
        }
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(s) = level.get(i ^ 1) {
                out.push(*s);
            }
            i >>= 1;
        }
        out
    }
}

/// Checks that `leaf` is leaf `index` of a tree of `size` leaves with root `root` (RFC 9162
/// §2.1.3.2). Any malformed input is just `false`.
pub fn verify(
    leaf: &[u8; 32],
    index: usize,
    size: usize,
    path: &[[u8; 32]],
    root: &[u8; 32],
) -> bool {
    if index >= size || path.len() > MAX_PATH_LEN {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// RFC 9162's recursive definition, as an oracle.
    fn mth(d: &[[u8; 32]]) -> [u8; 32] {
        match d.len() {
            0 => Sha256::digest([]).into(),
            1 => d[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_recursive_definition_and_every_path_verifies() {
        for n in 0..70usize {
            let leaves: Vec<[u8; 32]> = (0..n)
                .map(|i| leaf_hash(&(i as u32).to_le_bytes()))
                .collect();
            let t = Tree::new(leaves.clone());
            let root = t.root();
            assert_eq!(root, mth(&leaves), "n = {n}");
            for (i, l) in leaves.iter().enumerate() {
                let p = t.path(i);
                assert!(verify(l, i, n, &p, &root), "n = {n}, i = {i}");
                // Wrong index, size, leaf or path fail.
                assert!(!verify(&leaf_hash(b"x"), i, n, &p, &root));
                if n > 1 {
                    assert!(!verify(l, i, n, &p[..p.len() - 1], &root));
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify(l, i, n, &bad, &root));
                    assert!(!verify(l, (i + 1) % n, n, &p, &root));
                }
            }
            assert!(!verify(&[0; 32], n, n, &[], &root));
        }
    }

    #[test]
    fn out_of_range_and_oversized_inputs_are_false() {
        let t = Tree::new(vec![leaf_hash(b"a")]);
        assert!(t.path(3).is_empty());
        assert!(verify(&leaf_hash(b"a"), 0, 1, &[], &t.root()));
        assert!(!verify(&leaf_hash(b"a"), 0, 0, &[], &t.root()));
        assert!(!verify(&leaf_hash(b"a"), 0, 1, &[[0; 32]; 33], &t.root()));
    }
}
