//! Streaming masked input, for devices whose RAM cannot hold the input vector.
//!
//! [`Client::streamed`] makes a client that holds only the input's length. Its round runs
//! through the same stages and checks as every other client ([`Client::check_config`] at the
//! start, [`AwaitingNeighbours::handle`], and [`AwaitingShares::handle`] for every check of
//! SharesForYou); only the last step differs: [`AwaitingShares::handle_streamed`] returns a
//! [`MaskedInputStream`] that masks and packs the input chunk by chunk as the driver reads it
//! (from flash, a sensor, or the host), so the working memory is one chunk plus the k + 1
//! PRG states, whatever d is. The bytes it yields, concatenated, are exactly the
//! `MaskedInput` message [`AwaitingShares::handle`] would have encoded for the whole input.

use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{
    AfterMaskedInput, AwaitingNeighbours, AwaitingShares, Client, Common, Policy, Roster, own_entry,
};
use crate::ClientId;
use crate::crypto::{self, DhKeyPair, IdentityKey};
use crate::error::ClientError;
use crate::messages::{ClientMessage, ServerMessage};
use crate::prg::{MaskStream, Sign, apply_masks};
use crate::ring::Modulus;

/// Bytes of a `MaskedInput` encoding before the vector's 4-byte length: wire version and tag.
const HEADER_LEN: usize = 2;

/// A client whose input is streamed at the masking stage instead of held from the start.
pub struct StreamedClient {
    /// A client with a one-element stand-in input, for the policy checks that do not concern
    /// the input's length (checked here against `dim`).
    client: Client,
    dim: u32,
    /// The input's elements are < 2^input_bits (0: not declared, checked per chunk only).
    input_bits: u8,
    /// The largest round the client's memory holds ([`StreamedClient::with_capacity`]).
    max_num_clients: u32,
    max_degree: u32,
}

impl core::fmt::Debug for StreamedClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamedClient")
            .field("id", &self.client.id)
            .field("dim", &self.dim)
            .field("input_bits", &self.input_bits)
            .field("max_num_clients", &self.max_num_clients)
            .field("max_degree", &self.max_degree)
            .finish()
    }
}

impl Client {
    /// A client with id `id` whose input of `dim` elements (already in Z_2^b) is supplied
    /// chunk by chunk to [`MaskedInputStream::mask_chunk`] at the masking stage.
    pub fn streamed(id: ClientId, dim: u32) -> StreamedClient {
        StreamedClient {
            client: Client::new(id, vec![0]),
            dim,
            input_bits: 0,
            max_num_clients: u32::MAX,
            max_degree: u32::MAX,
        }
    }
}

impl StreamedClient {
    /// Signs with `identity` and checks peers against `roster` (the PKI).
    pub fn with_pki(mut self, identity: IdentityKey, roster: Roster) -> Self {
        self.client = self.client.with_pki(identity, roster);
        self
    }

    /// Sets what the client accepts.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.client = self.client.with_policy(policy);
        self
    }

    /// Declares that every input element is < 2^`bits` (a device knows its value range).
    /// A round with a smaller modulus is then refused at RoundStart, as a host client holding
    /// such an element refuses it, instead of in the middle of the upload.
    pub fn with_input_bits(mut self, bits: u8) -> Self {
        self.input_bits = bits;
        self
    }

    /// The largest round the client's memory holds: at most `max_num_clients` clients (the
    /// id sets and the graph grow with n and |U1|) and `max_degree` neighbours (keys, shares
    /// and PRG states grow with k). A larger round, honest or forged, is refused at
    /// RoundStart instead of running the heap out later.
    pub fn with_capacity(mut self, max_num_clients: u32, max_degree: u32) -> Self {
        self.max_num_clients = max_num_clients;
        self.max_degree = max_degree;
        self
    }

    /// Handles RoundStart as [`Client::start`] does (same checks, same randomness drawn in
    /// the same order, so the same seed gives the same keys).
    pub fn start<R: CryptoRng + ?Sized>(
        mut self,
        round_start: &[u8],
        rng: &mut R,
    ) -> Result<(AwaitingNeighbours, Vec<u8>), ClientError> {
        let config = match ServerMessage::decode(round_start, None)? {
            ServerMessage::RoundStart(c) => c,
            ServerMessage::Abort(r) => return Err(ClientError::RoundAborted(r)),
            _ => return Err(ClientError::UnexpectedMessage("expected RoundStart")),
        };
        config.validate().map_err(ClientError::BadParameters)?;
        if config.validation.is_some() {
            // The norm proof (VALIDATION.md §5.1) needs the whole input at once (its WIP runs
            // over all d coordinates), which is what a streamed client does not hold.
            return Err(ClientError::BadParameters(alloc::string::String::from(
                "the round validates inputs (wire version 3): a streamed client cannot prove \
                 its input's norm without holding the whole input; use a host client",
            )));
        }
        if config.dim != self.dim {
            return Err(ClientError::BadParameters(alloc::format!(
                "the round sums vectors of length {}, my input has {}",
                config.dim,
                self.dim
            )));
        }
        if config.bits < self.input_bits {
            // The host client's words for the same refusal.
            return Err(ClientError::BadParameters(alloc::format!(
                "my input has elements ≥ 2^{}",
                config.bits
            )));
        }
        if config.num_clients > self.max_num_clients || config.degree > self.max_degree {
            return Err(ClientError::BadParameters(alloc::format!(
                "the round has {} clients and degree {}; my memory holds at most {} clients \
                 and degree {}",
                config.num_clients,
                config.degree,
                self.max_num_clients,
                self.max_degree
            )));
        }
        // Every other check of the host client, on the announced round with the length
        // matched to the stand-in input (the real length was checked above). A length-1 copy
        // can only fail validation where the real one passes, never the reverse.
        let mut probe = config.clone();
        probe.dim = 1;
        self.client.check_config(&probe)?;
        let enc = DhKeyPair::generate(rng);
        let mask = DhKeyPair::generate(rng);
        let self_seed = Zeroizing::new(crypto::random_array::<R, 32>(rng));
        let id = self.client.id;
        let mut entry = own_entry(id, &config, &enc, &mask, &self_seed);
        if let Some(idk) = &self.client.identity {
            entry.signature = Some(idk.sign(&entry.signed_bytes(&config.digest())));
        }
        let common = Common {
            id,
            config,
            identity: self.client.identity.take(),
            roster: self.client.roster.take(),
            #[cfg(feature = "cheats")]
            cheat: None,
        };
        Ok((
            AwaitingNeighbours {
                common,
                input: Zeroizing::new(Vec::new()),
                enc,
                mask,
                self_seed,
            },
            ClientMessage::AdvertiseKeys(entry).encode(),
        ))
    }
}

impl super::ClientRound {
    /// Whether this is a [`Client::streamed`] client before its upload (its masked input
    /// goes through [`AwaitingShares::handle_streamed`]). Its saved state
    /// ([`export_state`](super::ClientRound::export_state)) holds no input, whatever d is.
    pub fn is_streamed(&self) -> bool {
        match self {
            super::ClientRound::AwaitingNeighbours(s) => s.input.is_empty(),
            super::ClientRound::AwaitingShares(s) => s.input.is_empty(),
            _ => false,
        }
    }
}

impl AwaitingShares {
    /// Handles SharesForYou for a [`Client::streamed`] client: every check of
    /// [`AwaitingShares::handle`], then the masked input as a stream instead of a message.
    pub fn handle_streamed(
        self,
        bytes: &[u8],
    ) -> Result<(AfterMaskedInput, MaskedInputStream), ClientError> {
        if !self.input.is_empty() {
            return Err(ClientError::Misuse(
                "handle_streamed is for clients made with Client::streamed",
            ));
        }
        let c = &self.common;
        let (id, prg, dim) = (c.id, c.config.prg, c.config.dim as usize);
        let modulus = c.config.modulus();
        // Seeds for every neighbour, taken before `handle` drops the secrets; those of
        // neighbours outside U2 are discarded below.
        let self_seed = crypto::self_mask_seed(&self.self_seed, &self.session, id);
        let pair_seeds: Vec<(ClientId, Zeroizing<[u8; 32]>)> = self
            .peers
            .iter()
            .map(|p| {
                let seed = crypto::pairwise_seed(&p.mask_shared, &self.session, id, p.id);
                (p.id, seed)
            })
            .collect();
        // The same checks and next state; the message carries an empty vector.
        let (next, empty) = self.check_and_mask(bytes, None::<&mut chacha20::ChaCha20Rng>)?;
        let live = match &next {
            AfterMaskedInput::Consistency(s) => &s.inner.masked_with,
            AfterMaskedInput::Unmask(s) => &s.masked_with,
        };
        let mut streams = Vec::with_capacity(live.len() + 1);
        streams.push(MaskStream::new(prg, &self_seed, Sign::Plus));
        for (peer, seed) in pair_seeds.iter().filter(|(p, _)| live.contains(p)) {
            let sign = if id < *peer { Sign::Plus } else { Sign::Minus };
            streams.push(MaskStream::new(prg, seed, sign));
        }
        // `empty` is header ‖ u32 0 (vector length) ‖ the rest (proof, masked-with).
        if empty.len() < HEADER_LEN + 4 || empty[HEADER_LEN..HEADER_LEN + 4] != [0; 4] {
            return Err(ClientError::Misuse("unexpected MaskedInput layout"));
        }
        let packed = modulus.packed_len(dim);
        let mut header = empty[..HEADER_LEN].to_vec();
        header.extend_from_slice(&(packed as u32).to_le_bytes());
        Ok((
            next,
            MaskedInputStream {
                streams,
                modulus,
                dim,
                done: 0,
                header,
                trailer: empty[HEADER_LEN + 4..].to_vec(),
            },
        ))
    }
}

/// The masked input of a [`Client::streamed`] client, produced chunk by chunk: send
/// [`header`](Self::header), then each [`mask_chunk`](Self::mask_chunk)'s bytes, then
/// [`finish`](Self::finish)'s, and the receiver has the `MaskedInput` message.
pub struct MaskedInputStream {
    streams: Vec<MaskStream>,
    modulus: Modulus,
    dim: usize,
    done: usize,
    header: Vec<u8>,
    trailer: Vec<u8>,
}

impl core::fmt::Debug for MaskedInputStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MaskedInputStream")
            .field("dim", &self.dim)
            .field("done", &self.done)
            .finish()
    }
}

impl MaskedInputStream {
    /// The bytes before the vector (wire version, tag, packed length).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Elements masked so far (the offset of the next chunk).
    pub fn position(&self) -> usize {
        self.done
    }

    /// Elements still expected.
    pub fn remaining(&self) -> usize {
        self.dim - self.done
    }

    /// Total bytes of the message: header, packed vector and trailer.
    pub fn message_len(&self) -> usize {
        self.header.len() + self.modulus.packed_len(self.dim) + self.trailer.len()
    }

    /// Masks the next `chunk` of the input in place and appends its packed bytes to `out`.
    /// Every chunk but the last must hold a multiple of 8 elements (so the packing stays on
    /// byte boundaries); an element ≥ 2^b or more elements than the round's d is refused,
    /// and the stream must then be abandoned (the receiver never gets a whole message).
    pub fn mask_chunk(&mut self, chunk: &mut [u64], out: &mut Vec<u8>) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::BadParameters(alloc::string::String::from(m)));
        if chunk.len() > self.remaining() {
            return bad("my input is longer than the round's dimension");
        }
        if !self.done.is_multiple_of(8) {
            return bad("only the last chunk of my input may hold a length not divisible by 8");
        }
        if chunk.iter().any(|x| *x > self.modulus.mask()) {
            return bad("my input has elements ≥ 2^b");
        }
        apply_masks(chunk, self.modulus, &mut self.streams);
        let at = out.len();
        out.resize(at + self.modulus.packed_len(chunk.len()), 0);
        self.modulus.pack_into(chunk, &mut out[at..]);
        self.done += chunk.len();
        Ok(())
    }

    /// The bytes after the vector (proof, masked-with statement), once all d elements went
    /// through [`mask_chunk`](Self::mask_chunk).
    pub fn finish(self) -> Result<Vec<u8>, ClientError> {
        if self.done != self.dim {
            return Err(ClientError::BadParameters(alloc::format!(
                "my input stopped after {} of the round's {} elements",
                self.done,
                self.dim
            )));
        }
        Ok(self.trailer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::server::{Outcome, ServerRound};
    use crate::{GraphKind, PrgKind, RoundConfig, ThreatModel};
    use alloc::format;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn config(dim: u32, bits: u8, prg: PrgKind) -> RoundConfig {
        RoundConfig {
            round_id: 9,
            round_seed: [3; 32],
            num_clients: 4,
            min_clients: 3,
            degree: 3,
            threshold: 2,
            graph: GraphKind::Complete,
            bits,
            dim,
            prg,
            model: ThreatModel::HonestButCurious,
            pki: false,
            encoding: Vec::new(),
            validation: None,
        }
    }

    fn input(id: u32, dim: u32, bits: u8) -> Vec<u64> {
        let m = Modulus::new(bits).unwrap().mask();
        (0..u64::from(dim))
            .map(|j| (u64::from(id) * 7919 + j * 104_729) & m)
            .collect()
    }

    /// Runs a round where client 1 streams in `chunk`-element pieces and the others hold
    /// their input, and checks client 1's streamed message against the whole-input one.
    fn round(dim: u32, bits: u8, prg: PrgKind, chunk: usize) {
        round_with(dim, bits, prg, chunk, false);
    }

    /// Saves and restores a streamed state through `export_state`/`import_state`.
    fn reload(round: crate::client::ClientRound) -> crate::client::ClientRound {
        assert!(round.is_streamed());
        let saved = round.export_state().unwrap();
        let back = crate::client::ClientRound::import_state(saved.as_bytes()).unwrap();
        assert!(back.is_streamed());
        assert_eq!(back.export_state().unwrap().as_bytes(), saved.as_bytes());
        back
    }

    /// As `round`; with `restore`, client 1's state goes through `export_state` and
    /// `import_state` before each message it handles up to its upload.
    fn round_with(dim: u32, bits: u8, prg: PrgKind, chunk: usize, restore: bool) {
        use crate::client::ClientRound as R;
        let cfg = config(dim, bits, prg);
        let mut server = ServerRound::new(cfg.clone(), None, 1000).unwrap();
        server.start(0);
        let rng_for = |id: u32| ChaCha20Rng::seed_from_u64(100 + u64::from(id));
        // A host client with the same seed: its messages are the reference.
        let mut twin = crate::client::ClientRound::New(Client::new(1, input(1, dim, bits)));
        let mut twin_rng = rng_for(1);
        let mut streamed = Some(Client::streamed(1, dim));
        let mut neighbours = None;
        let mut shares = None;
        let mut after = None;
        let mut clients: Vec<_> = (2..=4)
            .map(|id| {
                (
                    id,
                    crate::client::ClientRound::New(Client::new(id, input(id, dim, bits))),
                    rng_for(id),
                )
            })
            .collect();
        let mut rng1 = rng_for(1);
        let mut now = 0;
        while server.outcome().is_none() {
            let mut out = Vec::new();
            while let Some(m) = server.poll_outgoing() {
                out.push(m);
            }
            for (to, bytes) in out {
                if to == 1 {
                    let want = twin.handle(&bytes, &mut twin_rng).unwrap();
                    let got = if let Some(c) = streamed.take() {
                        let (s, m) = c.start(&bytes, &mut rng1).unwrap();
                        neighbours = Some(s);
                        Some(m)
                    } else if let Some(mut s) = neighbours.take() {
                        if restore {
                            let R::AwaitingNeighbours(r) = reload(R::AwaitingNeighbours(s)) else {
                                panic!("stage changed");
                            };
                            s = r;
                        }
                        let (s, m) = s.handle(&bytes, &mut rng1).unwrap();
                        shares = Some(s);
                        Some(m)
                    } else if let Some(mut s) = shares.take() {
                        if restore {
                            let R::AwaitingShares(r) = reload(R::AwaitingShares(s)) else {
                                panic!("stage changed");
                            };
                            s = r;
                        }
                        let (next, mut stream) = s.handle_streamed(&bytes).unwrap();
                        after = Some(next);
                        let mut msg = stream.header().to_vec();
                        let mut x = input(1, dim, bits);
                        for part in x.chunks_mut(chunk) {
                            stream.mask_chunk(part, &mut msg).unwrap();
                        }
                        assert_eq!(msg.len() + stream.trailer.len(), stream.message_len());
                        msg.extend(stream.finish().unwrap());
                        Some(msg)
                    } else {
                        match after.take() {
                            Some(AfterMaskedInput::Unmask(s)) => Some(s.handle(&bytes).unwrap()),
                            _ => None,
                        }
                    };
                    assert_eq!(got, want, "streamed client differs from the host client");
                    if let Some(m) = got {
                        server.handle_message(now, 1, &m).unwrap();
                    }
                } else {
                    let (_, c, rng) = clients.iter_mut().find(|(i, _, _)| *i == to).unwrap();
                    if let Some(m) = c.handle(&bytes, rng).unwrap() {
                        server.handle_message(now, to, &m).unwrap();
                    }
                }
            }
            now += 1;
        }
        let Some(Outcome::Released { aggregate, .. }) = server.outcome().cloned() else {
            panic!("round not released");
        };
        let m = Modulus::new(bits).unwrap().mask();
        let want: Vec<u64> = (0..dim as usize)
            .map(|j| {
                (1..=4)
                    .map(|id| input(id, dim, bits)[j])
                    .fold(0u64, u64::wrapping_add)
                    & m
            })
            .collect();
        assert_eq!(aggregate, want);
    }

    #[test]
    fn streamed_messages_equal_the_host_clients() {
        round(100, 16, PrgKind::ChaCha20, 8);
        round(100, 16, PrgKind::Aes128Ctr, 64);
        round(37, 20, PrgKind::ChaCha20, 16);
        round(1500, 32, PrgKind::Aes128Ctr, 1024);
    }

    #[test]
    fn streamed_messages_equal_the_host_clients_for_wide_and_narrow_moduli() {
        // b > 32: 8-byte key-stream words per element.
        round(100, 40, PrgKind::ChaCha20, 16);
        round(37, 33, PrgKind::Aes128Ctr, 8);
        // b = 64: no reduction, the sum wraps.
        round(29, 64, PrgKind::ChaCha20, 8);
        round(64, 64, PrgKind::Aes128Ctr, 24);
        // b < 8: several elements per byte, a short last chunk.
        round(37, 5, PrgKind::ChaCha20, 8);
        round(100, 1, PrgKind::Aes128Ctr, 32);
        round(21, 7, PrgKind::ChaCha20, 16);
    }

    /// A streamed client that declares its value range refuses a smaller modulus at
    /// RoundStart, with the host client's error, before advertising anything.
    #[test]
    fn a_declared_value_range_is_checked_at_round_start() {
        let start = ServerMessage::RoundStart(config(10, 8, PrgKind::ChaCha20)).encode();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut x = vec![0u64; 10];
        x[3] = 0xFFFF; // a 16-bit value
        let Err(host) = Client::new(1, x).start(&start, &mut rng) else {
            panic!("the host client accepted b = 8 for a 16-bit input");
        };
        let Err(device) = Client::streamed(1, 10)
            .with_input_bits(16)
            .start(&start, &mut rng)
        else {
            panic!("the streamed client accepted b = 8 for 16-bit values");
        };
        assert_eq!(device, host);
        for bits in [16, 17, 64] {
            let start = ServerMessage::RoundStart(config(10, bits, PrgKind::ChaCha20)).encode();
            let ok = Client::streamed(1, 10)
                .with_input_bits(16)
                .start(&start, &mut rng);
            assert!(ok.is_ok(), "b = {bits}: {:?}", ok.err());
        }
        // Undeclared, the range is checked per chunk only (the round is accepted).
        assert!(Client::streamed(1, 10).start(&start, &mut rng).is_ok());
    }

    /// A round larger than the client's declared memory, honest or forged, is refused at
    /// RoundStart with a typed error (never an allocation failure later).
    #[test]
    fn a_round_over_the_declared_capacity_is_refused_at_round_start() {
        let limited = || Client::streamed(1, 10).with_capacity(1_000, 32);
        let mut huge = config(10, 16, PrgKind::ChaCha20);
        huge.num_clients = crate::config::MAX_CLIENTS;
        huge.graph = GraphKind::Harary;
        huge.degree = 20;
        huge.threshold = 11;
        huge.min_clients = 100;
        let mut wide = config(10, 16, PrgKind::ChaCha20);
        wide.num_clients = 200;
        wide.degree = 199;
        wide.threshold = 100;
        wide.min_clients = 150;
        for cfg in [huge, wide] {
            cfg.validate().unwrap();
            let start = ServerMessage::RoundStart(cfg.clone()).encode();
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            assert!(Client::streamed(1, 10).start(&start, &mut rng).is_ok());
            let Err(err) = limited().start(&start, &mut rng) else {
                panic!("n = {}, k = {} accepted", cfg.num_clients, cfg.degree);
            };
            assert!(
                matches!(&err, ClientError::BadParameters(m) if m.contains("my memory")),
                "{err:?}"
            );
        }
        let mut fits = config(10, 16, PrgKind::ChaCha20);
        fits.num_clients = 1_000;
        fits.graph = GraphKind::Harary;
        fits.degree = 32;
        fits.threshold = 17;
        fits.min_clients = 500;
        let start = ServerMessage::RoundStart(fits).encode();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(limited().start(&start, &mut rng).is_ok());
    }

    /// The whole-input handler refuses a streamed state (it would upload an empty vector),
    /// directly and through a saved and restored [`ClientRound`](crate::client::ClientRound).
    #[test]
    fn the_whole_input_handler_refuses_a_streamed_state() {
        use crate::client::ClientRound as R;
        let cfg = config(16, 16, PrgKind::ChaCha20);
        let mut server = ServerRound::new(cfg, None, 1000).unwrap();
        server.start(0);
        let mut clients: Vec<(u32, R, ChaCha20Rng)> = (2..=4)
            .map(|id| {
                let c = R::New(Client::new(id, input(id, 16, 16)));
                (id, c, ChaCha20Rng::seed_from_u64(u64::from(id)))
            })
            .collect();
        let mut rng1 = ChaCha20Rng::seed_from_u64(1);
        let mut streamed = Some(Client::streamed(1, 16));
        let mut neighbours = None;
        let mut shares = None;
        let mut checked = false;
        for now in 0..10 {
            let mut out = Vec::new();
            while let Some(m) = server.poll_outgoing() {
                out.push(m);
            }
            for (to, bytes) in out {
                if to != 1 {
                    let (_, c, rng) = clients.iter_mut().find(|(i, _, _)| *i == to).unwrap();
                    if let Some(m) = c.handle(&bytes, rng).unwrap() {
                        server.handle_message(now, to, &m).unwrap();
                    }
                } else if let Some(c) = streamed.take() {
                    let (s, m) = c.start(&bytes, &mut rng1).unwrap();
                    neighbours = Some(s);
                    server.handle_message(now, 1, &m).unwrap();
                } else if let Some(s) = neighbours.take() {
                    let (s, m) = s.handle(&bytes, &mut rng1).unwrap();
                    server.handle_message(now, 1, &m).unwrap();
                    shares = Some(s);
                } else if let Some(s) = shares.take() {
                    // Through ClientRound after a save and restore (as the simulator or
                    // Python would), then directly.
                    let saved = R::AwaitingShares(s).export_state().unwrap();
                    let mut restored = R::import_state(saved.as_bytes()).unwrap();
                    let err = restored.handle(&bytes, &mut rng1).unwrap_err();
                    assert!(matches!(err, ClientError::Misuse(_)), "{err:?}");
                    let R::AwaitingShares(direct) = R::import_state(saved.as_bytes()).unwrap()
                    else {
                        panic!("stage changed");
                    };
                    let err = direct.handle(&bytes).map(|_| ()).unwrap_err();
                    assert!(matches!(err, ClientError::Misuse(_)), "{err:?}");
                    checked = true;
                }
            }
        }
        assert!(checked, "the streamed client never reached SharesForYou");
    }

    #[test]
    fn streamed_states_hold_no_input_and_restore() {
        round_with(100, 16, PrgKind::ChaCha20, 8, true);
        round_with(1500, 32, PrgKind::Aes128Ctr, 1024, true);
        // The saved state's size does not grow with d.
        let size = |dim: u32| {
            let start = ServerMessage::RoundStart(config(dim, 16, PrgKind::ChaCha20)).encode();
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (s, _) = Client::streamed(1, dim).start(&start, &mut rng).unwrap();
            crate::client::ClientRound::AwaitingNeighbours(s)
                .export_state()
                .unwrap()
                .len()
        };
        assert_eq!(size(10), size(100_000));
    }

    /// The ciphers keyed by mask seeds and share keys wipe their key state on drop (their
    /// `zeroize` features): a streamed upload holds k + 1 of them for the whole upload.
    #[test]
    fn mask_and_share_cipher_states_are_zeroized_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<chacha20::ChaCha20>();
        wiped_on_drop::<ctr::Ctr64LE<aes::Aes128>>();
        wiped_on_drop::<chacha20poly1305::ChaCha20Poly1305>();
    }

    fn stream_for(dim: u32, bits: u8) -> MaskedInputStream {
        MaskedInputStream {
            streams: vec![MaskStream::new(PrgKind::ChaCha20, &[1; 32], Sign::Plus)],
            modulus: Modulus::new(bits).unwrap(),
            dim: dim as usize,
            done: 0,
            header: vec![0; 6],
            trailer: vec![0],
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        let mut out = Vec::new();
        let mut s = stream_for(20, 12);
        assert!(s.mask_chunk(&mut [0u64; 21], &mut out).is_err());
        assert!(s.mask_chunk(&mut [1u64 << 12], &mut out).is_err());
        s.mask_chunk(&mut [0u64; 5], &mut out).unwrap();
        assert!(
            s.mask_chunk(&mut [0u64; 8], &mut out).is_err(),
            "after an odd chunk"
        );
        let mut s = stream_for(20, 12);
        s.mask_chunk(&mut [0u64; 16], &mut out).unwrap();
        assert!(matches!(s.finish(), Err(ClientError::BadParameters(_))));
    }

    #[test]
    fn a_streamed_client_refuses_what_a_host_client_refuses() {
        let start = ServerMessage::RoundStart(config(10, 16, PrgKind::ChaCha20)).encode();
        let policies = [
            Policy::malicious(0.05, 0.05),
            Policy {
                min_clients: 10,
                ..Policy::default()
            },
            Policy {
                min_threshold_fraction: 0.9,
                ..Policy::default()
            },
            Policy {
                min_threshold_fraction: f64::NAN,
                ..Policy::default()
            },
        ];
        for p in policies {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let host = Client::new(1, vec![0; 10])
                .with_policy(p.clone())
                .start(&start, &mut rng);
            let device = Client::streamed(1, 10)
                .with_policy(p.clone())
                .start(&start, &mut rng);
            match (host, device) {
                (Err(h), Err(d)) => assert_eq!(format!("{h:?}"), format!("{d:?}"), "{p:?}"),
                _ => panic!("{p:?}: both must refuse"),
            }
        }
        // And both accept the round under the default policy.
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(Client::streamed(1, 10).start(&start, &mut rng).is_ok());
        assert!(Client::new(1, vec![0; 10]).start(&start, &mut rng).is_ok());
    }

    #[test]
    fn a_streamed_client_refuses_a_wrong_dimension() {
        let cfg = config(10, 16, PrgKind::ChaCha20);
        let start = ServerMessage::RoundStart(cfg).encode();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let Err(err) = Client::streamed(1, 11).start(&start, &mut rng) else {
            panic!("a wrong dimension was accepted");
        };
        assert!(matches!(err, ClientError::BadParameters(_)), "{err:?}");
    }
}
