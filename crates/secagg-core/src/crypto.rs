//! Thin wrappers over RustCrypto/dalek primitives, with every derived key domain-separated by
//! protocol version, purpose, session and the ordered pair of client ids.
//!
//! - Key agreement: X25519 (`x25519-dalek`); non-contributory (low-order) points are refused.
//! - KDF: HKDF-SHA-256 with salt [`PROTOCOL_VERSION`] and info `purpose ‖ session ‖ a ‖ b`.
//! - Share encryption: ChaCha20-Poly1305. Each key encrypts exactly one message (it is bound
//!   to the session and the *ordered* sender → receiver pair), so a fixed nonce is safe.
//! - Signatures: Ed25519 (`ed25519-dalek`, strict verification).

use alloc::vec::Vec;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::{ClientId, PROTOCOL_VERSION};

/// A 32-byte session id: a hash of the round's parameters and its first survivor set.
pub type SessionId = [u8; 32];

/// Length of the AEAD tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// What a derived key is for; part of the HKDF info string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Seed of the pairwise mask between two clients (unordered pair: low id first).
    PairwiseMask,
    /// Key encrypting the shares one client sends another (ordered pair).
    ShareEncryption,
    /// Expansion of a client's self-mask seed b_u.
    SelfMask,
    /// Randomness of a client's Shamir polynomials ([`share_split_rng`]).
    ShareSplit,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::PairwiseMask => b"pairwise-mask",
            Purpose::ShareEncryption => b"share-encryption",
            Purpose::SelfMask => b"self-mask",
            Purpose::ShareSplit => b"share-split",
        }
    }
}

/// An X25519 key pair. The secret zeroizes on drop and never prints.
pub struct DhKeyPair {
    secret: StaticSecret,
    public: [u8; 32],
}

impl core::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl DhKeyPair {
    /// A fresh key pair from a CSPRNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret_bytes(&Zeroizing::new(random_array(rng)))
    }

    /// A key pair from secret bytes (the server uses this for a reconstructed secret key).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        let secret = StaticSecret::from(*bytes);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The secret key bytes, for Shamir sharing.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// X25519 with a peer's public key; `None` if the result is all zero (a low-order point,
    /// i.e. a peer trying to force a known shared secret).
    pub fn agree(&self, peer_public: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer_public));
        if shared.was_contributory() {
            Some(Zeroizing::new(shared.to_bytes()))
        } else {
            None
        }
    }
}

/// HKDF-SHA-256(ikm) with info `purpose ‖ session ‖ a ‖ b`.
pub fn derive(
    ikm: &[u8],
    purpose: Purpose,
    session: &[u8; 32],
    a: ClientId,
    b: ClientId,
) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(PROTOCOL_VERSION), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    let info: [&[u8]; 4] = [purpose.label(), session, &a.to_le_bytes(), &b.to_le_bytes()];
    // 32 bytes is far below HKDF-SHA-256's 8,160-byte limit, so expansion cannot fail.
    let _ = hk.expand_multi_info(&info, out.as_mut());
    out
}

/// Seed of the pairwise mask between `u` and `v` from their X25519 shared secret.
pub fn pairwise_seed(
    shared: &[u8; 32],
    session: &SessionId,
    u: ClientId,
    v: ClientId,
) -> Zeroizing<[u8; 32]> {
    derive(shared, Purpose::PairwiseMask, session, u.min(v), u.max(v))
}

/// Expansion seed of client `owner`'s self mask from its secret b_u.
pub fn self_mask_seed(b: &[u8; 32], session: &SessionId, owner: ClientId) -> Zeroizing<[u8; 32]> {
    derive(b, Purpose::SelfMask, session, owner, 0)
}

/// Commitment to a self-mask secret b_u, published with the client's keys so the server can
/// tell a reconstruction from bad shares.
pub fn commit_self_secret(b: &[u8; 32], round_id: u64, owner: ClientId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PROTOCOL_VERSION);
    h.update(b"self-mask-commitment");
    h.update(round_id.to_le_bytes());
    h.update(owner.to_le_bytes());
    h.update(b);
    h.finalize().into()
}

fn share_aad(session: &SessionId, from: ClientId, to: ClientId, binding: &[u8; 32]) -> [u8; 72] {
    let mut aad = [0u8; 72];
    aad[..32].copy_from_slice(session);
    aad[32..36].copy_from_slice(&from.to_le_bytes());
    aad[36..40].copy_from_slice(&to.to_le_bytes());
    aad[40..].copy_from_slice(binding);
    aad
}

/// What binds a pair's share ciphertexts to both parties' whole key entries as each saw them:
/// the hash of the two entries' Merkle leaves in id order. A server that substitutes any key
/// of one party in the other's view (encryption key, mask key or commitment) makes every
/// ciphertext between them fail to open.
pub fn pair_binding(a: ClientId, leaf_a: &[u8; 32], b: ClientId, leaf_b: &[u8; 32]) -> [u8; 32] {
    let (lo, hi) = if a <= b {
        (leaf_a, leaf_b)
    } else {
        (leaf_b, leaf_a)
    };
    hash(&[PROTOCOL_VERSION, b"pair-binding", lo, hi])
}

/// Encrypts `plaintext` from `from` to `to` under a key derived from their shared secret,
/// authenticating the session and the pair's [`pair_binding`]. The nonce is fixed: an honest
/// client seals one plaintext per (session, pair, direction) key, and one that shares again
/// after a restore seals the same plaintext (its split randomness is [`share_split_rng`]), so
/// no keystream is reused. The associated data may differ in that case (without a PKI a peer
/// entry can be shown with another mask key), which reuses the Poly1305 one-time key: it lets
/// whoever holds both tags forge ciphertexts under that key, i.e. only the two parties to it,
/// who hold the key anyway.
pub fn seal_shares(
    shared: &[u8; 32],
    session: &SessionId,
    from: ClientId,
    to: ClientId,
    binding: &[u8; 32],
    plaintext: &[u8],
) -> Vec<u8> {
    let key = derive(shared, Purpose::ShareEncryption, session, from, to);
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buf.extend_from_slice(plaintext);
    let nonce = Nonce::default();
    let aad = share_aad(session, from, to, binding);
    // ChaCha20-Poly1305 only fails for messages above 256 GiB; shares are ~100 bytes.
    match cipher.encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into()) {
        Ok(tag) => buf.extend_from_slice(&tag),
        Err(_) => buf.clear(),
    }
    buf
}

/// The randomness of a client's Shamir polynomials: a ChaCha20 stream keyed by its two secrets
/// and the session id. Sharing is then a function of the secrets and the session, so a client
/// rolled back to a saved state and asked to share again seals exactly the same plaintexts
/// (never two different ones under one key and nonce), while the polynomials stay as secret as
/// the secrets themselves.
pub fn share_split_rng(
    mask_sk: &[u8; 32],
    self_seed: &[u8; 32],
    session: &SessionId,
) -> chacha20::ChaCha20Rng {
    use rand_core::SeedableRng;
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(mask_sk);
    ikm[32..].copy_from_slice(self_seed);
    let seed = derive(ikm.as_ref(), Purpose::ShareSplit, session, 0, 0);
    chacha20::ChaCha20Rng::from_seed(*seed)
}

/// Decrypts what [`seal_shares`] produced; `None` if it was tampered with, misrouted or
/// replayed from another session.
pub fn open_shares(
    shared: &[u8; 32],
    session: &SessionId,
    from: ClientId,
    to: ClientId,
    binding: &[u8; 32],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if ciphertext.len() < TAG_LEN {
        return None;
    }
    let key = derive(shared, Purpose::ShareEncryption, session, from, to);
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    let (body, tag) = ciphertext.split_at(ciphertext.len() - TAG_LEN);
    let tag = Tag::try_from(tag).ok()?;
    let mut buf = Zeroizing::new(body.to_vec());
    let aad = share_aad(session, from, to, binding);
    cipher
        .decrypt_inout_detached(&Nonce::default(), &aad, buf.as_mut_slice().into(), &tag)
        .ok()?;
    Some(buf)
}

/// A client's long-term Ed25519 identity key (for the PKI / malicious-server model).
pub struct IdentityKey(SigningKey);

impl core::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IdentityKey(public={:?})", self.public())
    }
}

impl IdentityKey {
    /// A fresh identity key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let seed = Zeroizing::new(random_array::<R, 32>(rng));
        Self(SigningKey::from_bytes(&seed))
    }
    /// From its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }
    /// The 32-byte seed (to store in a key file).
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }
    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
    /// Signs `parts` concatenated (each part is already length-delimited by its producer).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

/// Strict Ed25519 verification (rejects weak keys and malleable signatures).
pub fn verify(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match VerifyingKey::from_bytes(public) {
        Ok(vk) if !vk.is_weak() => vk.verify_strict(msg, &Signature::from_bytes(sig)).is_ok(),
        _ => false,
    }
}

/// Signatures verified together by [`verify_all`]: at most this many per multiscalar
/// multiplication. On a 32-bit target (the device) Straus' tables take 1.3 KiB per point and
/// the vector that collects them doubles as it grows (24 tables during the copy from the 9th
/// point on), so batches stay at 3 signatures (7 points, ≈ 15 KiB at the peak; 7 signatures
/// would save 0.24 M instructions each but peak near 31 KiB). Hosts take larger batches.
#[cfg(target_pointer_width = "32")]
pub const VERIFY_BATCH: usize = 3;
/// See the 32-bit constant.
#[cfg(not(target_pointer_width = "32"))]
pub const VERIFY_BATCH: usize = 64;

/// One signature to check: the signer's public key, the signed bytes and the signature.
pub type SignatureCheck<'a> = (&'a [u8; 32], &'a [u8], &'a [u8; 64]);

/// Verifies every signature of `checks`; `Err(i)` names the first invalid one.
///
/// Accepts exactly what [`verify`] accepts on each, with one documented widening
/// (docs/SECURITY.md §4a): the signatures are checked in batches of [`VERIFY_BATCH`] with the
/// random-linear-combination batch equation (ed25519-dalek's `verify_batch`), after each key
/// was parsed and refused if weak and each s refused if not canonical. A batch that fails is checked one by one with [`verify`] to
/// name the culprit. A batch can accept a signature that [`verify`] refuses only if it has a
/// small-order component or a non-canonical R, which only the key's holder can produce (a
/// signature on an honest, prime-order key still needs its secret), so the widening gives a
/// signer nothing it could not sign anyway.
pub fn verify_all(checks: &[SignatureCheck<'_>]) -> Result<(), usize> {
    for (chunk_no, chunk) in checks.chunks(VERIFY_BATCH).enumerate() {
        let batch_ok = chunk.len() > 1 && batch_passes(chunk);
        // A failed batch is checked one by one to name the culprit (SECURITY.md §4a: if every
        // strict check passes, the batch equation holds, so this always finds one).
        if let Some(i) = chunk
            .iter()
            .position(|(public, msg, sig)| !batch_ok && !verify(public, msg, sig))
        {
            return Err(chunk_no * VERIFY_BATCH + i);
        }
    }
    Ok(())
}

/// The batch equation over one chunk: weak or unparsable keys fail it.
fn batch_passes(chunk: &[SignatureCheck<'_>]) -> bool {
    let mut keys = Vec::with_capacity(chunk.len());
    let mut msgs: Vec<&[u8]> = Vec::with_capacity(chunk.len());
    let mut sigs = Vec::with_capacity(chunk.len());
    for (public, msg, sig) in chunk {
        match VerifyingKey::from_bytes(public) {
            Ok(vk) if !vk.is_weak() => keys.push(vk),
            _ => return false,
        }
        msgs.push(msg);
        sigs.push(Signature::from_bytes(sig));
    }
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

/// SHA-256 of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// N random bytes.
pub fn random_array<R: CryptoRng + ?Sized, const N: usize>(rng: &mut R) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn agreement_is_symmetric_and_rejects_low_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = DhKeyPair::generate(&mut rng);
        let b = DhKeyPair::generate(&mut rng);
        assert_eq!(
            *a.agree(&b.public()).unwrap(),
            *b.agree(&a.public()).unwrap()
        );
        assert!(a.agree(&[0u8; 32]).is_none());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(a.agree(&one).is_none());
        let c = DhKeyPair::from_secret_bytes(&a.secret_bytes());
        assert_eq!(c.public(), a.public());
        assert!(!alloc::format!("{a:?}").contains(&alloc::format!("{:?}", *a.secret_bytes())));
    }

    #[test]
    fn derivations_are_separated() {
        let s = [1u8; 32];
        let sess = [2u8; 32];
        let all = [
            *derive(&s, Purpose::PairwiseMask, &sess, 1, 2),
            *derive(&s, Purpose::ShareEncryption, &sess, 1, 2),
            *derive(&s, Purpose::ShareEncryption, &sess, 2, 1),
            *derive(&s, Purpose::PairwiseMask, &[3u8; 32], 1, 2),
            *derive(&s, Purpose::SelfMask, &sess, 1, 0),
            *derive(&s, Purpose::ShareSplit, &sess, 0, 0),
        ];
        for i in 0..all.len() {
            for j in 0..i {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_eq!(
            *pairwise_seed(&s, &sess, 1, 2),
            *pairwise_seed(&s, &sess, 2, 1)
        );
    }

    #[test]
    fn aead_binds_session_direction_and_both_key_entries() {
        let k = [5u8; 32];
        let sess = [6u8; 32];
        let (la, lb) = ([8u8; 32], [9u8; 32]);
        let bind = pair_binding(1, &la, 2, &lb);
        assert_eq!(bind, pair_binding(2, &lb, 1, &la));
        let ct = seal_shares(&k, &sess, 1, 2, &bind, b"shares");
        assert_eq!(ct.len(), 6 + TAG_LEN);
        assert_eq!(
            &open_shares(&k, &sess, 1, 2, &bind, &ct).unwrap()[..],
            b"shares"
        );
        assert!(open_shares(&k, &sess, 2, 1, &bind, &ct).is_none());
        assert!(open_shares(&k, &[7u8; 32], 1, 2, &bind, &ct).is_none());
        // A substituted entry on either side (e.g. only the mask key) changes the binding.
        let other = pair_binding(1, &la, 2, &[10u8; 32]);
        assert!(open_shares(&k, &sess, 1, 2, &other, &ct).is_none());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open_shares(&k, &sess, 1, 2, &bind, &bad).is_none());
        assert!(open_shares(&k, &sess, 1, 2, &bind, &ct[..3]).is_none());
    }

    #[test]
    fn share_split_randomness_is_a_function_of_the_secrets_and_session() {
        use rand_core::Rng;
        let draw = |a: u8, b: u8, s: u8| share_split_rng(&[a; 32], &[b; 32], &[s; 32]).next_u64();
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(9, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 9, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 2, 9));
    }

    #[test]
    fn signatures() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = IdentityKey::generate(&mut rng);
        let sig = id.sign(b"msg");
        assert!(verify(&id.public(), b"msg", &sig));
        assert!(!verify(&id.public(), b"msh", &sig));
        assert!(!verify(&[0u8; 32], b"msg", &sig));
        assert_eq!(IdentityKey::from_seed(&id.seed()).public(), id.public());
    }

    type Signed = (Vec<[u8; 32]>, Vec<Vec<u8>>, Vec<[u8; 64]>);

    fn signed(n: usize) -> Signed {
        use alloc::format;
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate(&mut rng)).collect();
        let msgs: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let sigs = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        (keys.iter().map(IdentityKey::public).collect(), msgs, sigs)
    }

    fn checks<'a>(
        pks: &'a [[u8; 32]],
        msgs: &'a [Vec<u8>],
        sigs: &'a [[u8; 64]],
    ) -> Vec<SignatureCheck<'a>> {
        pks.iter()
            .zip(msgs)
            .zip(sigs)
            .map(|((p, m), s)| (p, &m[..], s))
            .collect()
    }

    #[test]
    fn verify_all_accepts_valid_batches_and_names_the_first_invalid() {
        let n = 2 * VERIFY_BATCH + 3;
        let (pks, msgs, sigs) = signed(n);
        assert_eq!(verify_all(&checks(&pks, &msgs, &sigs)), Ok(()));
        assert_eq!(verify_all(&[]), Ok(()));
        for bad in [
            0,
            1,
            VERIFY_BATCH - 1,
            VERIFY_BATCH,
            2 * VERIFY_BATCH,
            n - 1,
        ] {
            // Another message, a flipped bit of R, of s, a swapped key.
            let mut m = msgs.clone();
            m[bad].push(b'!');
            assert_eq!(verify_all(&checks(&pks, &m, &sigs)), Err(bad));
            for byte in [3, 40] {
                let mut s = sigs.clone();
                s[bad][byte] ^= 1;
                assert_eq!(
                    verify_all(&checks(&pks, &msgs, &s)),
                    Err(bad),
                    "byte {byte}"
                );
            }
            let mut p = pks.clone();
            p[bad] = pks[(bad + 1) % n];
            assert_eq!(verify_all(&checks(&p, &msgs, &sigs)), Err(bad));
        }
        // Two invalid: the first is named.
        let mut m = msgs.clone();
        m[n - 2].push(1);
        m[VERIFY_BATCH + 1].push(1);
        assert_eq!(verify_all(&checks(&pks, &m, &sigs)), Err(VERIFY_BATCH + 1));
    }

    #[test]
    fn verify_all_refuses_weak_keys_and_non_canonical_s_as_verify_does() {
        let (mut pks, msgs, mut sigs) = signed(VERIFY_BATCH + 2);
        // The identity point (a weak, small-order key) signs anything under the cofactorless
        // batch equation with s = 0 and R = identity; it must be refused before batching.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        pks[2] = identity;
        sigs[2] = [0u8; 64];
        sigs[2][0] = 1;
        assert!(!verify(&pks[2], &msgs[2], &sigs[2]));
        assert_eq!(verify_all(&checks(&pks, &msgs, &sigs)), Err(2));
        // s + l (the same scalar, non-canonical) is malleable: refused.
        let (pks, msgs, mut sigs) = signed(VERIFY_BATCH + 2);
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (b, l) in sigs[4][32..].iter_mut().zip(L) {
            let v = *b as u16 + l as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        assert!(!verify(&pks[4], &msgs[4], &sigs[4]));
        assert_eq!(verify_all(&checks(&pks, &msgs, &sigs)), Err(4));
    }
}
