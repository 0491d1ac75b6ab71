//! Known-answer replay: the fixed-seed rounds of `crates/secagg-sim/tests/vectors` (the
//! transcripts the host checks in `vectors.rs`), replayed client by client on the device with
//! the harness's per-client seed and input. Every reply must equal the host client's bytes.

use alloc::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::ClientId;
use secagg_core::client::{Client, ClientRound, Roster};
use secagg_core::crypto::IdentityKey;

/// One stored transcript and what the replay needs to know about it.
pub struct Vector {
    /// File name, for the log.
    pub name: &'static str,
    /// The transcript text.
    pub text: &'static str,
    /// Number of clients in the round.
    pub clients: u32,
    /// PKI round: identity keys from the harness's `make_pki`.
    pub pki: bool,
    /// A client the harness silenced after it computed its reply at this 0-based message
    /// (its last reply is not in the transcript).
    pub silenced: Option<(ClientId, usize)>,
}

/// The harness's scenario seed for the stored vectors (`Scenario::new(cfg, 77)`).
pub const SCENARIO_SEED: u64 = 77;

fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    b.chunks(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

/// The messages of `id` in one direction, in transcript order.
fn messages(text: &str, id: ClientId, to_client: bool) -> Vec<Vec<u8>> {
    let dir = if to_client { "S->C" } else { "C->S" };
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let (_stage, d, who, hex) = (it.next()?, it.next()?, it.next()?, it.next()?);
            (d == dir && who.parse::<ClientId>().ok()? == id).then(|| unhex(hex))?
        })
        .collect()
}

/// `make_pki` of the harness: identity keys for clients 1..=n from the scenario seed.
fn make_pki(n: u32) -> (Vec<IdentityKey>, Roster) {
    let mut rng = ChaCha20Rng::seed_from_u64(SCENARIO_SEED ^ 0x9e37_79b9_7f4a_7c15);
    let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate(&mut rng)).collect();
    let roster = keys.iter().map(|k| k.public()).collect();
    (keys, roster)
}

/// Result of replaying one client.
pub struct Replay {
    /// Replies compared with the transcript.
    pub compared: usize,
    /// Index of the first reply that differs (or is missing), if any.
    pub mismatch: Option<usize>,
    /// Instructions spent in each `handle` call.
    pub instructions: Vec<u64>,
}

/// Replays client `id` of `v`.
pub fn replay(v: &Vector, id: ClientId) -> Replay {
    let mut keys = v.pki.then(|| make_pki(v.clients));
    // The harness's input: client i sends (i << 8) | j for j in 0..6.
    let input: Vec<u64> = (0..6).map(|j| (u64::from(id) << 8) | j).collect();
    let mut client = Client::new(id, input);
    if let Some((keys, roster)) = keys.as_mut() {
        let k = keys.swap_remove(id as usize - 1);
        client = client.with_pki(k, roster.clone());
    }
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&SCENARIO_SEED.to_le_bytes());
    seed[8..12].copy_from_slice(&id.to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut round = ClientRound::New(client);
    let want = messages(v.text, id, false);
    let mut got = Vec::new();
    let mut instructions = Vec::new();
    for (i, m) in messages(v.text, id, true).iter().enumerate() {
        let t0 = crate::clock::instructions();
        let reply = round.handle(m, &mut rng);
        instructions.push(crate::clock::instructions() - t0);
        match reply {
            Ok(Some(r)) if v.silenced != Some((id, i)) => got.push(r),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let mismatch = (0..want.len().max(got.len())).find(|i| want.get(*i) != got.get(*i));
    Replay {
        compared: want.len(),
        mismatch,
        instructions,
    }
}

/// The lines of `id` in one direction, still in hex (in flash), in transcript order.
fn hex_messages(text: &str, id: ClientId, to_client: bool) -> Vec<&str> {
    let dir = if to_client { "S->C" } else { "C->S" };
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let (_stage, d, who, hex) = (it.next()?, it.next()?, it.next()?, it.next()?);
            (d == dir && who.parse::<ClientId>().ok()? == id).then_some(hex)
        })
        .collect()
}

/// Compares reply pieces, as they are sent, with one stored hex message.
struct Expect<'a> {
    hex: &'a str,
    pos: usize,
    same: bool,
}

impl Expect<'_> {
    fn piece(&mut self, bytes: &[u8]) {
        let end = self.pos + 2 * bytes.len();
        let want = self.hex.get(self.pos..end).and_then(unhex);
        self.same &= want.as_deref() == Some(bytes);
        self.pos = end;
    }

    fn whole(&self) -> bool {
        self.same && self.pos == self.hex.len()
    }
}

/// Result of a streamed replay.
pub struct StreamedReplay {
    /// Replies compared with the transcript.
    pub compared: usize,
    /// Index of the first reply that differs, if any.
    pub mismatch: Option<usize>,
    /// What each stage cost.
    pub stages: Vec<crate::driver::StageCost>,
}

/// Replays client `id` of `v` through the streaming driver ([`crate::driver::DeviceClient`]),
/// with `input(offset, chunk)` supplying its input; every reply, compared piece by piece as
/// it is produced, must equal the stored one.
pub fn replay_streamed(
    v: &Vector,
    id: ClientId,
    dim: u32,
    input: &mut dyn FnMut(usize, &mut [u64]),
) -> StreamedReplay {
    let mut client = Client::streamed(id, dim);
    if v.pki {
        let (mut keys, roster) = make_pki(v.clients);
        client = client.with_pki(keys.swap_remove(id as usize - 1), roster);
    }
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&SCENARIO_SEED.to_le_bytes());
    seed[8..12].copy_from_slice(&id.to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut dev = crate::driver::DeviceClient::new(client);
    let want = hex_messages(v.text, id, false);
    let mut stages = Vec::new();
    let mut replies = 0usize;
    let mut mismatch = None;
    for (i, hex) in hex_messages(v.text, id, true).iter().enumerate() {
        let Some(msg) = unhex(hex) else {
            mismatch = Some(replies);
            break;
        };
        let silenced = v.silenced == Some((id, i));
        let mut exp = Expect {
            hex: want.get(replies).copied().unwrap_or(""),
            pos: 0,
            same: true,
        };
        let mut ended = false;
        let r = dev.handle(&msg, &mut rng, input, &mut |b| match b {
            Some(b) => exp.piece(b),
            None => ended = true,
        });
        drop(msg);
        match r {
            Ok(cost) => stages.push(cost),
            Err(_) => {
                mismatch = mismatch.or(Some(replies));
                break;
            }
        }
        if ended && !silenced {
            if !exp.whole() {
                mismatch = mismatch.or(Some(replies));
            }
            replies += 1;
        }
    }
    if replies != want.len() {
        mismatch = mismatch.or(Some(replies));
    }
    StreamedReplay {
        compared: want.len(),
        mismatch,
        stages,
    }
}

/// The device refuses, before sending anything, a round the host client would refuse for its
/// input (another length) and one whose input encoding is not integers. Returns whether every
/// case was refused with nothing sent.
pub fn refusals() -> bool {
    use secagg_core::messages::ServerMessage;
    use secagg_core::{GraphKind, PrgKind, RoundConfig, ThreatModel};
    let config = |dim: u32, encoding: Vec<u8>| RoundConfig {
        round_id: 7,
        round_seed: [1; 32],
        num_clients: 5,
        min_clients: 3,
        degree: 4,
        threshold: 3,
        graph: GraphKind::Complete,
        bits: 16,
        dim,
        prg: PrgKind::ChaCha20,
        model: ThreatModel::HonestButCurious,
        pki: false,
        encoding,
        validation: None,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let cases = [
        (config(6, Vec::new()), true),
        (config(7, Vec::new()), false),
        // A float (weighted-mean) round: tag 1, clip 1.0, max weight 1.
        (
            config(
                6,
                [&[1u8][..], &1f64.to_le_bytes(), &1u64.to_le_bytes()].concat(),
            ),
            false,
        ),
    ];
    cases.into_iter().all(|(c, accept)| {
        let mut dev = crate::driver::DeviceClient::new(Client::streamed(1, 6));
        let mut sent = false;
        let r = dev.handle(
            &ServerMessage::RoundStart(c).encode(),
            &mut rng,
            &mut |_, _| {},
            &mut |_| sent = true,
        );
        r.is_ok() == accept && sent == accept
    })
}
