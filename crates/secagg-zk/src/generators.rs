//! The generators of validated rounds (VALIDATION.md §4; arguments.md §E), hashed to
//! ristretto255 once and kept.
//!
//! Every generator is `RistrettoPoint::from_uniform_bytes(SHA-512("secagg/v3/validate/" ‖ name
//! ‖ "/" ‖ le32(i)))`: dalek's hash-to-group (the Elligator-based one-way map of the
//! ristretto255 specification applied to a 64-byte hash), so nobody knows a discrete-log
//! relation among them (arguments.md §C.1 needs this). Single generators use index 0.
//!
//! | name | count | used by |
//! |---|---|---|
//! | `G`, `H` | N_pad | the norm WIP's vector generators (K_i = G_i + H_i is x's basis) |
//! | `g0` | 1 | value generator of the range proof and of the norm WIP (U = ζ·g0) |
//! | `h` | 1 | blinding generator of C_u, M_u, V_s |
//! | `tau` | J | mask projections τ (binding argument) |
//! | `r` | 1 | G_r, the blinding slot tying C_u to T_u (B2) |
//! | `omega` | J | carry projections ω |
//! | `ghl2` | 128 | G′_k, the GHL mask of ω |
//! | `h2` | 1 | h′, blinding generator of the binding argument |
//! | `f0` | 1 | value generator of the linear proof (F = ζ′·f0) |
//! | `lpad` | N′_pad − N′ | the linear proof's own padding (F1: disjoint from `G`, `H`) |
//!
//! Vectors are prefix-stable: the first m generators of a set do not depend on its length, so a
//! larger set serves every smaller statement.

use alloc::vec::Vec;

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::{Digest, Sha512};

use crate::Error;

/// Prefix of every generator label (arguments.md §E).
pub const DOMAIN: &[u8] = b"secagg/v3/validate/";

/// Λ′: rows of the binding argument's GHL check, a constant of wire version 3 (F3), and so the
/// number of `ghl2` generators.
pub const GHL_ROWS: usize = 128;

/// Largest N_pad: d ≤ 2^20 (VALIDATION.md §5.3) gives d + 128 ≤ 2^21.
pub const MAX_N_PAD: usize = 1 << 21;
/// Largest J (VALIDATION.md §5.3: J ≤ 2^11).
pub const MAX_PROJECTIONS: usize = 1 << 11;
/// Largest `lpad` count: N′ = d + 2J + 130 < 2^21, so N′_pad − N′ < 2^21.
pub const MAX_LPAD: usize = 1 << 21;

/// The bytes hashed for generator `name`/`index`: `DOMAIN ‖ name ‖ "/" ‖ le32(index)`.
pub fn label(name: &str, index: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + name.len() + 5);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(name.as_bytes());
    out.push(b'/');
    out.extend_from_slice(&index.to_le_bytes());
    out
}

/// Hashes one generator to the group (≈ 10 µs; callers keep the result, see [`Generators`]).
pub fn hash_generator(name: &str, index: u32) -> RistrettoPoint {
    let digest: [u8; 64] = Sha512::digest(label(name, index)).into();
    RistrettoPoint::from_uniform_bytes(&digest)
}

fn hash_set(name: &str, count: usize) -> Vec<RistrettoPoint> {
    // count ≤ MAX_N_PAD < 2^32 is checked by `Generators::new`, so the index fits.
    (0..count as u32).map(|i| hash_generator(name, i)).collect()
}

/// How many generators of each indexed set a round needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GeneratorSizes {
    /// N_pad = 2^⌈log₂(d + 128)⌉: count of `G` and of `H` (a power of two).
    pub n_pad: usize,
    /// J: count of `tau` and of `omega`.
    pub projections: usize,
    /// N′_pad − N′: count of `lpad`.
    pub lpad: usize,
}

impl GeneratorSizes {
    /// Whether a set of these sizes contains every generator a set of `other`'s sizes has.
    pub fn covers(&self, other: &GeneratorSizes) -> bool {
        self.n_pad >= other.n_pad
            && self.projections >= other.projections
            && self.lpad >= other.lpad
    }

    fn check(&self) -> Result<(), Error> {
        if !self.n_pad.is_power_of_two() {
            return Err(Error::NotPowerOfTwo { n: self.n_pad });
        }
        for (what, max, got) in [
            ("n_pad", MAX_N_PAD, self.n_pad),
            ("projections", MAX_PROJECTIONS, self.projections),
            ("lpad", MAX_LPAD, self.lpad),
        ] {
            if got > max {
                return Err(Error::TooLarge {
                    what,
                    max: max as u64,
                    got: got as u64,
                });
            }
        }
        Ok(())
    }
}

/// Every generator of validated rounds, hashed once (VALIDATION.md §14.2: 2d + 2J + 260 hashes,
/// ≈ 2.6 s at N_pad = 2^17). Kept as decompressed points (160 B each) because the prover and
/// verifier use each of them in MSMs; with the `std` feature, [`Generators::shared`] keeps one
/// copy per process.
#[derive(Clone)]
pub struct Generators {
    sizes: GeneratorSizes,
    g_vec: Vec<RistrettoPoint>,
    h_vec: Vec<RistrettoPoint>,
    g0: RistrettoPoint,
    h: RistrettoPoint,
    tau: Vec<RistrettoPoint>,
    r: RistrettoPoint,
    omega: Vec<RistrettoPoint>,
    ghl2: Vec<RistrettoPoint>,
    h2: RistrettoPoint,
    f0: RistrettoPoint,
    lpad: Vec<RistrettoPoint>,
}

impl core::fmt::Debug for Generators {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Generators")
            .field("sizes", &self.sizes)
            .finish_non_exhaustive()
    }
}

impl Generators {
    /// Hashes every generator for `sizes`. Refuses sizes beyond the limits of §5.3 before
    /// allocating (they come from a round configuration).
    pub fn new(sizes: GeneratorSizes) -> Result<Self, Error> {
        sizes.check()?;
        Ok(Generators {
            sizes,
            g_vec: hash_set("G", sizes.n_pad),
            h_vec: hash_set("H", sizes.n_pad),
            g0: hash_generator("g0", 0),
            h: hash_generator("h", 0),
            tau: hash_set("tau", sizes.projections),
            r: hash_generator("r", 0),
            omega: hash_set("omega", sizes.projections),
            ghl2: hash_set("ghl2", GHL_ROWS),
            h2: hash_generator("h2", 0),
            f0: hash_generator("f0", 0),
            lpad: hash_set("lpad", sizes.lpad),
        })
    }

    /// The process-wide copy of a set covering `sizes`, hashed on first use (std only).
    #[cfg(feature = "std")]
    pub fn shared(sizes: GeneratorSizes) -> Result<std::sync::Arc<Self>, Error> {
        use std::sync::{Arc, Mutex};
        static CACHE: Mutex<Vec<Arc<Generators>>> = Mutex::new(Vec::new());
        sizes.check()?;
        // A poisoned lock only means another thread panicked while holding it; the Vec of
        // finished sets is still consistent (sets are pushed whole).
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = cache.iter().find(|s| s.sizes.covers(&sizes)) {
            return Ok(Arc::clone(set));
        }
        // Hash a set covering both this request and the largest one kept, then drop the sets
        // it covers, so the cache holds few sets however the requests arrive.
        let merged = cache.iter().fold(sizes, |acc, s| GeneratorSizes {
            n_pad: acc.n_pad.max(s.sizes.n_pad),
            projections: acc.projections.max(s.sizes.projections),
            lpad: acc.lpad.max(s.sizes.lpad),
        });
        let set = Arc::new(Generators::new(merged)?);
        cache.retain(|s| !merged.covers(&s.sizes));
        cache.push(Arc::clone(&set));
        Ok(set)
    }

    /// The sizes this set was hashed for.
    pub fn sizes(&self) -> GeneratorSizes {
        self.sizes
    }
    /// G_0..G_{N_pad−1}.
    pub fn g_vec(&self) -> &[RistrettoPoint] {
        &self.g_vec
    }
    /// H_0..H_{N_pad−1}.
    pub fn h_vec(&self) -> &[RistrettoPoint] {
        &self.h_vec
    }
    /// g₀.
    pub fn g0(&self) -> &RistrettoPoint {
        &self.g0
    }
    /// h.
    pub fn h(&self) -> &RistrettoPoint {
        &self.h
    }
    /// G_τ,0..G_τ,J−1.
    pub fn tau(&self) -> &[RistrettoPoint] {
        &self.tau
    }
    /// G_r.
    pub fn r(&self) -> &RistrettoPoint {
        &self.r
    }
    /// G_ω,0..G_ω,J−1.
    pub fn omega(&self) -> &[RistrettoPoint] {
        &self.omega
    }
    /// G′_0..G′_127.
    pub fn ghl2(&self) -> &[RistrettoPoint] {
        &self.ghl2
    }
    /// h′.
    pub fn h2(&self) -> &RistrettoPoint {
        &self.h2
    }
    /// f₀.
    pub fn f0(&self) -> &RistrettoPoint {
        &self.f0
    }
    /// The linear proof's padding generators.
    pub fn lpad(&self) -> &[RistrettoPoint] {
        &self.lpad
    }

    /// K_i = G_i + H_i for i < d, the basis of x (arguments.md §A.1). Computed on request
    /// (d point additions), not hashed.
    pub fn k_basis(&self, d: usize) -> Result<Vec<RistrettoPoint>, Error> {
        if d > self.sizes.n_pad {
            return Err(Error::GeneratorsTooShort {
                needed: d,
                have: self.sizes.n_pad,
            });
        }
        Ok(self.g_vec[..d]
            .iter()
            .zip(&self.h_vec[..d])
            .map(|(g, h)| g + h)
            .collect())
    }

    /// Every generator with its set name and index, in a fixed order (for tests and audits).
    pub fn all(&self) -> impl Iterator<Item = (&'static str, usize, &RistrettoPoint)> {
        let sets: [(&'static str, &[RistrettoPoint]); 11] = [
            ("G", &self.g_vec),
            ("H", &self.h_vec),
            ("g0", core::slice::from_ref(&self.g0)),
            ("h", core::slice::from_ref(&self.h)),
            ("tau", &self.tau),
            ("r", core::slice::from_ref(&self.r)),
            ("omega", &self.omega),
            ("ghl2", &self.ghl2),
            ("h2", core::slice::from_ref(&self.h2)),
            ("f0", core::slice::from_ref(&self.f0)),
            ("lpad", &self.lpad),
        ];
        sets.into_iter()
            .flat_map(|(name, set)| set.iter().enumerate().map(move |(i, p)| (name, i, p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use curve25519_dalek::traits::Identity;

    fn hex(bytes: &[u8]) -> alloc::string::String {
        bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
    }

    #[test]
    fn labels_are_the_specified_bytes() {
        assert_eq!(
            label("G", 1),
            b"secagg/v3/validate/G/\x01\x00\x00\x00".to_vec()
        );
        assert_eq!(
            label("lpad", 0x0102_0304),
            b"secagg/v3/validate/lpad/\x04\x03\x02\x01".to_vec()
        );
    }

    #[test]
    fn generator_is_the_ristretto_map_of_sha512_of_the_label() {
        // Independent route through dalek's own hash-to-group helper.
        let expected =
            RistrettoPoint::hash_from_bytes::<Sha512>(b"secagg/v3/validate/tau/\x07\x00\x00\x00");
        assert_eq!(hash_generator("tau", 7), expected);
    }

    /// Known answers (wire version 3), cross-checked independently with libsodium's
    /// `crypto_core_ristretto255_from_hash` on Python's SHA-512 of the §E labels.
    #[test]
    fn known_answer_vectors() {
        let cases = [
            ("G", 0, KAT_G0),
            ("G", 1, KAT_G1),
            ("H", 0, KAT_H0),
            ("g0", 0, KAT_SMALL_G0),
            ("h", 0, KAT_H),
            ("tau", 0, KAT_TAU0),
            ("r", 0, KAT_R),
            ("omega", 0, KAT_OMEGA0),
            ("ghl2", 127, KAT_GHL2_127),
            ("h2", 0, KAT_H2),
            ("f0", 0, KAT_F0),
            ("lpad", 0, KAT_LPAD0),
        ];
        for (name, i, want) in cases {
            assert_eq!(
                hex(hash_generator(name, i).compress().as_bytes()),
                want,
                "{name}/{i}"
            );
        }
    }

    const KAT_G0: &str = "3241c4ab8a0540d042edba5e500dba19708dea799be2f93af8aff24df3aa6c52";
    const KAT_G1: &str = "0aa71118839c5aa7428cceed750af8a7c5aea99db664e2981ea546b11ae9e861";
    const KAT_H0: &str = "34400564a0a22ea1d1e1eaaa7df28aa398e153d41b7a1571287f7555ae2b4332";
    const KAT_SMALL_G0: &str = "dce0b6d33941e3da1c12da10bc13d9793dfd2154b430e5ff860e1c39f5fb201f";
    const KAT_H: &str = "b0b0851227070192dfa3abcc1e61441bd6595e13b6cf1c3227350b65571c384a";
    const KAT_TAU0: &str = "9c5ce9af2641e0c29b069e4c22fccd1a88cd4f6f5946749134c0cc5a6204696c";
    const KAT_R: &str = "e8a11e8b1c640528b627bd86c474ed78fb880c4b88f03c7c680abafccb1b3b64";
    const KAT_OMEGA0: &str = "a69352731a22220eefd65c4cd1d32c3b5b7d983b2c85a6d72996bff8cf11b220";
    const KAT_GHL2_127: &str = "4a8dea7f8d43fb109bc8ab76a734885007c16d89d6507f4ac0cb6c70fc1a0e66";
    const KAT_H2: &str = "b458d65e50733ab6571ade117469751be90716c284eb3a5d268993c43fcd6d6e";
    const KAT_F0: &str = "1ea0d2f411482b4119b7d2e58df052bc10672c8b3110ab2e9b51f6bda7028e7c";
    const KAT_LPAD0: &str = "ce1601813cec4581099b7d587544b2785122042dff0f96dcd828a1474dcaf654";

    #[test]
    fn generator_sets_are_pairwise_disjoint() {
        let gens = Generators::new(GeneratorSizes {
            n_pad: 256,
            projections: 16,
            lpad: 64,
        })
        .unwrap();
        let mut seen: BTreeMap<[u8; 32], (&str, usize)> = BTreeMap::new();
        let mut count = 0;
        for (name, i, p) in gens.all() {
            count += 1;
            assert_ne!(*p, RistrettoPoint::identity(), "{name}/{i} is the identity");
            assert_ne!(*p, RISTRETTO_BASEPOINT_POINT, "{name}/{i} is the basepoint");
            if let Some(prev) = seen.insert(p.compress().to_bytes(), (name, i)) {
                panic!("{name}/{i} equals {}/{}", prev.0, prev.1);
            }
        }
        assert_eq!(count, 2 * 256 + 2 * 16 + 128 + 64 + 5);
        // K_i is a sum, not a member, but must not collide with one either.
        for k in gens.k_basis(256).unwrap() {
            assert!(!seen.contains_key(&k.compress().to_bytes()));
        }
    }

    #[test]
    fn sets_are_prefix_stable() {
        let small = Generators::new(GeneratorSizes {
            n_pad: 4,
            projections: 2,
            lpad: 1,
        })
        .unwrap();
        let large = Generators::new(GeneratorSizes {
            n_pad: 16,
            projections: 5,
            lpad: 3,
        })
        .unwrap();
        assert_eq!(small.g_vec(), &large.g_vec()[..4]);
        assert_eq!(small.h_vec(), &large.h_vec()[..4]);
        assert_eq!(small.tau(), &large.tau()[..2]);
        assert_eq!(small.omega(), &large.omega()[..2]);
        assert_eq!(small.lpad(), &large.lpad()[..1]);
        assert_eq!(small.g0(), large.g0());
    }

    #[test]
    fn sizes_are_checked_before_hashing() {
        let bad = |n_pad, projections, lpad| {
            Generators::new(GeneratorSizes {
                n_pad,
                projections,
                lpad,
            })
            .err()
        };
        assert_eq!(bad(12, 1, 1), Some(Error::NotPowerOfTwo { n: 12 }));
        assert_eq!(bad(0, 1, 1), Some(Error::NotPowerOfTwo { n: 0 }));
        assert_eq!(
            bad(1 << 22, 1, 1),
            Some(Error::TooLarge {
                what: "n_pad",
                max: MAX_N_PAD as u64,
                got: 1 << 22
            })
        );
        assert!(matches!(
            bad(1, MAX_PROJECTIONS + 1, 0),
            Some(Error::TooLarge {
                what: "projections",
                ..
            })
        ));
        assert!(matches!(
            bad(1, 0, MAX_LPAD + 1),
            Some(Error::TooLarge { what: "lpad", .. })
        ));
        let gens = Generators::new(GeneratorSizes {
            n_pad: 4,
            projections: 0,
            lpad: 0,
        })
        .unwrap();
        assert_eq!(
            gens.k_basis(5).err(),
            Some(Error::GeneratorsTooShort { needed: 5, have: 4 })
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn shared_sets_are_hashed_once() {
        let a = Generators::shared(GeneratorSizes {
            n_pad: 8,
            projections: 3,
            lpad: 2,
        })
        .unwrap();
        let b = Generators::shared(GeneratorSizes {
            n_pad: 4,
            projections: 1,
            lpad: 0,
        })
        .unwrap();
        assert!(b.sizes().covers(&GeneratorSizes {
            n_pad: 4,
            projections: 1,
            lpad: 0
        }));
        // A covering request reuses a kept set rather than hashing again.
        let c = Generators::shared(GeneratorSizes {
            n_pad: 8,
            projections: 3,
            lpad: 2,
        })
        .unwrap();
        assert!(c.sizes().covers(&a.sizes()));
        assert_eq!(a.g_vec()[..8], c.g_vec()[..8]);
        let again = Generators::shared(c.sizes()).unwrap();
        assert!(std::sync::Arc::ptr_eq(&c, &again));
    }
}
