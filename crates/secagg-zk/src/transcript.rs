//! The Fiat–Shamir transcript of validated rounds (arguments.md §E): SHA-256 over
//! length-prefixed (label, bytes) records; challenges by SHA-512 wide reduction of
//! (transcript hash ‖ label ‖ counter).
//!
//! Encoding choices the design leaves open (listed in the crate's open questions):
//! - a record is `le64(|label|) ‖ label ‖ le64(|bytes|) ‖ bytes`;
//! - a transcript starts with the record `("domain", name)`, name e.g.
//!   `secagg/v3/validate/norm`;
//! - the counter is `le64`, the number of challenges drawn from this transcript so far, so two
//!   challenges never repeat even with the same label and no record in between;
//! - "transcript hash" is SHA-256 of every record absorbed so far; a challenge is not absorbed
//!   back (it is a function of the records before it, so later challenges depend on it anyway);
//! - a challenge that reduces to zero is redrawn with the next counter (the WIP inverts its
//!   challenges; zero has probability 2^-252).

use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha256, Sha512};

/// A running Fiat–Shamir transcript. Clone it to fork (the verifier of a batch keeps one per
/// proof).
#[derive(Clone)]
pub struct Transcript {
    hasher: Sha256,
    challenges: u64,
}

impl core::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transcript")
            .field("state", &self.state_hash())
            .field("challenges", &self.challenges)
            .finish()
    }
}

impl Transcript {
    /// A transcript for the protocol `domain` (e.g. `b"secagg/v3/validate/norm"`).
    pub fn new(domain: &[u8]) -> Self {
        let mut t = Transcript {
            hasher: Sha256::new(),
            challenges: 0,
        };
        t.append(b"domain", domain);
        t
    }

    /// Absorbs one record.
    pub fn append(&mut self, label: &[u8], bytes: &[u8]) {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label);
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Absorbs an integer as its 8 little-endian bytes.
    pub fn append_u64(&mut self, label: &[u8], value: u64) {
        self.append(label, &value.to_le_bytes());
    }

    /// Absorbs a point by its canonical encoding.
    pub fn append_point(&mut self, label: &[u8], point: &CompressedRistretto) {
        self.append(label, point.as_bytes());
    }

    /// Absorbs a scalar by its canonical encoding.
    pub fn append_scalar(&mut self, label: &[u8], scalar: &Scalar) {
        self.append(label, scalar.as_bytes());
    }

    /// SHA-256 of the records absorbed so far.
    pub fn state_hash(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// SHA-512(state_hash ‖ label ‖ le64(counter)), counter then incremented.
    fn challenge_wide(&mut self, label: &[u8]) -> [u8; 64] {
        let mut h = Sha512::new();
        h.update(self.state_hash());
        h.update(label);
        h.update(self.challenges.to_le_bytes());
        self.challenges += 1;
        h.finalize().into()
    }

    /// A nonzero challenge scalar: SHA-512(state_hash ‖ label ‖ le64(counter)) reduced mod ℓ.
    pub fn challenge_scalar(&mut self, label: &[u8]) -> Scalar {
        loop {
            let c = Scalar::from_bytes_mod_order_wide(&self.challenge_wide(label));
            if c != Scalar::ZERO {
                return c;
            }
        }
    }

    /// A 32-byte seed for a stream challenge (the GHL matrices): the first 32 bytes of
    /// SHA-512(state_hash ‖ label ‖ le64(counter)), sharing the counter with the scalars.
    pub fn challenge_seed(&mut self, label: &[u8]) -> [u8; 32] {
        let wide = self.challenge_wide(label);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&wide[..32]);
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn hex(bytes: &[u8]) -> alloc::string::String {
        bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
    }

    /// The specification written out by hand, independently of `Transcript`.
    fn by_hand(records: &[(&[u8], &[u8])], label: &[u8], counter: u64) -> Scalar {
        let mut stream = Vec::new();
        for (l, b) in records {
            stream.extend_from_slice(&(l.len() as u64).to_le_bytes());
            stream.extend_from_slice(l);
            stream.extend_from_slice(&(b.len() as u64).to_le_bytes());
            stream.extend_from_slice(b);
        }
        let state = Sha256::digest(&stream);
        let mut input = state.to_vec();
        input.extend_from_slice(label);
        input.extend_from_slice(&counter.to_le_bytes());
        let wide: [u8; 64] = Sha512::digest(&input).into();
        Scalar::from_bytes_mod_order_wide(&wide)
    }

    fn sample() -> Transcript {
        let mut t = Transcript::new(b"secagg/v3/validate/test");
        t.append(b"session", &[7u8; 32]);
        t.append_u64(b"n", 1024);
        t
    }

    #[test]
    fn challenges_follow_the_specification() {
        let records: [(&[u8], &[u8]); 3] = [
            (b"domain", b"secagg/v3/validate/test"),
            (b"session", &[7u8; 32]),
            (b"n", &1024u64.to_le_bytes()),
        ];
        let mut t = sample();
        assert_eq!(t.challenge_scalar(b"e"), by_hand(&records, b"e", 0));
        // The second challenge at the same state uses the next counter.
        assert_eq!(t.challenge_scalar(b"e"), by_hand(&records, b"e", 1));
        t.append(b"L", b"abc");
        let mut more = records.to_vec();
        more.push((b"L", b"abc"));
        assert_eq!(t.challenge_scalar(b"y"), by_hand(&more, b"y", 2));
        // Seeds share the counter: the next draw uses counter 3.
        let seed = t.challenge_seed(b"R");
        let mut stream = Vec::new();
        for (l, b) in &more {
            stream.extend_from_slice(&(l.len() as u64).to_le_bytes());
            stream.extend_from_slice(l);
            stream.extend_from_slice(&(b.len() as u64).to_le_bytes());
            stream.extend_from_slice(b);
        }
        let mut input = Sha256::digest(&stream).to_vec();
        input.extend_from_slice(b"R");
        input.extend_from_slice(&3u64.to_le_bytes());
        assert_eq!(seed[..], Sha512::digest(&input)[..32]);
    }

    /// Known answers, cross-checked with Python's hashlib (SHA-256 records, SHA-512, mod ℓ).
    #[test]
    fn known_answer_vectors() {
        let mut t = sample();
        assert_eq!(hex(&t.state_hash()), KAT_STATE);
        assert_eq!(hex(t.challenge_scalar(b"e").as_bytes()), KAT_E0);
        assert_eq!(hex(t.challenge_scalar(b"e").as_bytes()), KAT_E1);
    }

    const KAT_STATE: &str = "a17edb8d14008b8cf6b049a40a958751ab0873024b3846ce3d3279d4e1aaac52";
    const KAT_E0: &str = "71ee4dca1389773547aee804085542f7bb8d6212ea5fd791220238f0dd50b305";
    const KAT_E1: &str = "71ebe7afcccfa938ccb9080869a02497801c8cf43ad30838bb039ba624934b02";

    #[test]
    fn records_are_unambiguous() {
        let mut a = Transcript::new(b"d");
        a.append(b"ab", b"c");
        let mut b = Transcript::new(b"d");
        b.append(b"a", b"bc");
        assert_ne!(a.state_hash(), b.state_hash());
        let mut c = Transcript::new(b"d");
        c.append(b"x", b"");
        c.append(b"y", b"");
        let mut d = Transcript::new(b"d");
        d.append(b"xy", b"");
        assert_ne!(c.state_hash(), d.state_hash());
    }

    #[test]
    fn labels_domains_and_order_separate_challenges() {
        let c = |t: &mut Transcript, l: &[u8]| t.challenge_scalar(l);
        assert_ne!(c(&mut sample(), b"e"), c(&mut sample(), b"y"));
        assert_ne!(
            c(&mut Transcript::new(b"secagg/v3/validate/norm"), b"e"),
            c(&mut Transcript::new(b"secagg/v3/validate/bind"), b"e")
        );
        let mut fork = sample();
        fork.append(b"extra", b"");
        assert_ne!(c(&mut sample(), b"e"), c(&mut fork, b"e"));
    }
}
