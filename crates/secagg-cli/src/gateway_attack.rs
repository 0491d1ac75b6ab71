//! A malicious gateway, for tests only (cargo feature `gateway-attacks`, never in a release
//! build): the attacks of docs/review-devices.md F1 and F2, driven as code.
//!
//! - `forge-round` (F1, attack 1): the gateway alone makes up a round around the device. A
//!   secagg-core [`ServerRound`] runs inside the gateway with Sybil clients (input 0) at every
//!   other id; if the device took part, the round's "aggregate" would be its input.
//! - `substitute-keys` (F1, attack 2): inside a real round, the gateway relays RoundStart and
//!   the device's keys, then answers the device itself with its Sybils' keys in place of the
//!   neighbours' (the same local round, on the real round's parameters).
//! - `reassign` (F2): after the device advertised, a second `ASSIGN` and RoundStart, as a
//!   gateway would do to hide a made-up round or re-run the device's input.
//! - `oversize` (F2): after the device advertised, a message over its 16 KiB limit (the boot
//!   must end, not wait for the next `ASSIGN`).
//!
//! The Sybils sign with identity keys the gateway made up: the device, which checks every
//! neighbour against its own roster and requires the malicious model, must refuse; a client
//! without that defence (the firmware before the fix) is unmasked, as the tests show.

// The test build compiles the engine without the gateway's flags.
#![cfg_attr(not(feature = "gateway-attacks"), allow(dead_code))]

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client, ClientRound};
use secagg_core::crypto::IdentityKey;
use secagg_core::params::{self, Assumptions};
use secagg_core::server::{Outcome as LocalOutcome, ServerRound};
use secagg_core::{GraphKind, PrgKind, RoundConfig, ThreatModel};
#[cfg(feature = "gateway-attacks")]
pub use serial::*;

// The firmware's own constructor of its client, so the tests attack what the device runs
// (the firmware's boot-time parts are not used here).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../devices/cortex-m/src/provision.rs"]
mod provision;

/// Which attack `secagg gateway --attack` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// Make up a whole round around the device, with Sybil clients.
    ForgeRound,
    /// In a real round, replace the device's neighbours' keys with the Sybils'.
    SubstituteKeys,
    /// Assign the device a second round in the same boot.
    Reassign,
    /// Send the device a message over its size limit.
    Oversize,
}

impl Attack {
    /// The name `--attack` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::ForgeRound => "forge-round",
            Self::SubstituteKeys => "substitute-keys",
            Self::Reassign => "reassign",
            Self::Oversize => "oversize",
        }
    }
}

/// A round the gateway runs with the device and its own Sybil clients.
pub struct SybilRound {
    server: ServerRound,
    sybils: BTreeMap<u32, (ClientRound, ChaCha20Rng)>,
    device: u32,
    to_device: VecDeque<Vec<u8>>,
    /// The device already has the RoundStart (substitution inside a real round).
    skip_round_start: bool,
    now: u64,
    /// Messages the device answered.
    pub answered: usize,
}

impl SybilRound {
    /// A local round on `config` where the device is `device` (identity `device_key` when the
    /// round uses a PKI) and every other id is a Sybil with input 0 and a made-up identity.
    pub fn new(config: RoundConfig, device: u32, device_key: [u8; 32]) -> Result<Self, String> {
        let n = config.num_clients;
        let mut seed_rng = ChaCha20Rng::from_seed(config.round_seed);
        let keys: Vec<Option<IdentityKey>> = (1..=n)
            .map(|id| (id != device).then(|| IdentityKey::generate(&mut seed_rng)))
            .collect();
        let roster: Vec<[u8; 32]> = keys
            .iter()
            .map(|k| k.as_ref().map_or(device_key, IdentityKey::public))
            .collect();
        let dim = config.dim as usize;
        let mut sybils = BTreeMap::new();
        for (i, k) in keys.into_iter().enumerate() {
            let Some(k) = k else { continue };
            let id = i as u32 + 1;
            let mut c = Client::new(id, vec![0; dim]);
            if config.pki {
                c = c.with_pki(k, roster.clone());
            }
            let rng = ChaCha20Rng::seed_from_u64(u64::from(id));
            sybils.insert(id, (ClientRound::New(c), rng));
        }
        let pki = config.pki.then_some(roster);
        let mut server = ServerRound::new(config, pki, 1_000).map_err(|e| e.to_string())?;
        server.start(0);
        Ok(Self {
            server,
            sybils,
            device,
            to_device: VecDeque::new(),
            skip_round_start: false,
            now: 0,
            answered: 0,
        })
    }

    /// The same local round inside a real one: the device already received the real
    /// RoundStart (this `config`) and sent `advertise`, which the real server also got.
    pub fn substitute(
        config: RoundConfig,
        device: u32,
        device_key: [u8; 32],
        advertise: &[u8],
    ) -> Result<Self, String> {
        let mut r = Self::new(config, device, device_key)?;
        r.skip_round_start = true;
        r.feed_device_reply(advertise)?;
        Ok(r)
    }

    /// Runs the Sybils until the local server has a message for the device.
    pub fn next_for_device(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(m) = self.to_device.pop_front() {
                return Ok(Some(m));
            }
            let mut progressed = false;
            while let Some((to, bytes)) = self.server.poll_outgoing() {
                progressed = true;
                if to == self.device {
                    if std::mem::take(&mut self.skip_round_start) {
                        continue;
                    }
                    self.to_device.push_back(bytes);
                } else if let Some((c, rng)) = self.sybils.get_mut(&to) {
                    // A Sybil that fails simply stays silent, as a dropout.
                    if let Ok(Some(reply)) = c.handle(&bytes, rng) {
                        self.now += 1;
                        let _ = self.server.handle_message(self.now, to, &reply);
                    }
                }
            }
            if !progressed {
                return Ok(None);
            }
        }
    }

    /// Feeds the device's reply to the local server.
    pub fn feed_device_reply(&mut self, msg: &[u8]) -> Result<(), String> {
        self.answered += 1;
        self.now += 1;
        self.server
            .handle_message(self.now, self.device, msg)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The device's input, if the round released: the Sybils added 0.
    pub fn recovered(&self) -> Option<&[u64]> {
        match self.server.outcome() {
            Some(LocalOutcome::Released { aggregate, .. }) => Some(aggregate),
            _ => None,
        }
    }
}

/// The round a gateway alone would make up for a device of `dim` values whose roster has
/// `n` keys: the strongest the device's policy could accept (malicious model, PKI, complete
/// graph, the smallest secure threshold and min_clients) or, with `pki = false`, the
/// honest-but-curious round without a PKI that the old firmware accepted (n = 3, t = 2).
pub fn forged_config(n: u32, dim: u32, pki: bool) -> Result<RoundConfig, String> {
    let (n, model, threshold, min_clients) = if pki {
        let a = Assumptions {
            corrupt_fraction: 0.05,
            dropout_fraction: 0.05,
            model: ThreatModel::Malicious,
        };
        let t = params::choose_complete_threshold(n, &a).map_err(|e| e.to_string())?;
        let m = params::min_survivors_required(n, &a).max(t);
        (n, ThreatModel::Malicious, t, m)
    } else {
        (3, ThreatModel::HonestButCurious, 2, 2)
    };
    Ok(RoundConfig {
        round_id: 0x6761_7465_7761_7921,
        round_seed: [7; 32],
        num_clients: n,
        min_clients,
        degree: n - 1,
        threshold,
        graph: GraphKind::Complete,
        bits: 16,
        dim,
        prg: PrgKind::ChaCha20,
        model,
        pki,
        encoding: Vec::new(),
        validation: None,
    })
}

/// The attacks over the device's serial line, in `secagg gateway` (feature only).
#[cfg(feature = "gateway-attacks")]
mod serial {
    use secagg_core::RoundConfig;
    use secagg_core::messages::ServerMessage;
    use tokio::time::Instant;

    use super::super::frame::{self, kind};
    use super::super::{DeviceLink, FromDevice, GatewayArgs, Hello, Outcome, Report, frames_of};
    use super::{Attack, SybilRound, forged_config};

    /// The gateway's test hooks (`--attack`, `--tamper-at`).
    #[derive(Debug, Clone, clap::Args)]
    pub struct Hooks {
        /// Attack the device (tests only): forge-round, substitute-keys, reassign or oversize.
        #[arg(long, value_enum)]
        pub attack: Option<Attack>,
        /// forge-round: the round's roster (public: the device's id is its key's line in it).
        #[arg(long, required_if_eq("attack", "forge-round"))]
        pub attack_roster: Option<std::path::PathBuf>,
        /// Flip one bit of the server's message to the device at this stage (advertise, share,
        /// masked-input, consistency, unmask), re-framed with a valid CRC so that only the
        /// device's own checks can catch it.
        #[arg(long)]
        pub tamper_at: Option<String>,
    }

    /// Flips one bit in the middle of a message, past its two-byte header (so it still decodes as
    /// the same type).
    pub fn flip_one_bit(msg: &mut [u8]) {
        let i = 2 + (msg.len().saturating_sub(2)) / 2;
        if let Some(b) = msg.get_mut(i) {
            *b ^= 0x01;
        }
    }

    /// Plays `round` with the device over the serial line until the device refuses, goes silent,
    /// or the round ends; returns how it ended and what the gateway obtained.
    async fn play(
        link: &mut DeviceLink,
        mut round: SybilRound,
        mode: Attack,
        silence: std::time::Duration,
    ) -> Result<(Outcome, serde_json::Value), String> {
        let outcome = loop {
            let Some(m) = round.next_for_device()? else {
                break Outcome::Aborted("the gateway's round has nothing more to send".into());
            };
            link.send(&frames_of(&m)).await?;
            if matches!(
                ServerMessage::decode(&m, None),
                Ok(ServerMessage::Done | ServerMessage::Abort(_))
            ) {
                break Outcome::Released;
            }
            match link.next(Some(Instant::now() + silence)).await {
                Ok(FromDevice::Message(r)) => round.feed_device_reply(&r)?,
                Ok(FromDevice::Refused(r)) => break Outcome::DeviceRefused(r),
                Ok(FromDevice::Hello(_)) => break Outcome::DeviceDropped("rebooted".into()),
                Ok(FromDevice::Proof(_)) => {
                    break Outcome::DeviceDropped("a join proof nobody asked for".into());
                }
                Err(e) => break Outcome::DeviceDropped(e),
            }
        };
        let recovered = round.recovered();
        let value = serde_json::json!({
            "mode": mode.name(),
            "device_answered": round.answered,
            "recovered": recovered.is_some(),
            "recovered_head": recovered.map(|x| x[..x.len().min(8)].to_vec()),
        });
        Ok((outcome, value))
    }

    /// F1 attack 1: no server at all; a round made up around the device.
    pub async fn forge_round(
        link: &mut DeviceLink,
        hello: Hello,
        a: &GatewayArgs,
    ) -> Result<Report, String> {
        let path = a
            .hooks
            .attack_roster
            .as_ref()
            .ok_or("--attack forge-round needs --attack-roster")?;
        let roster = secagg_service::keys::load_roster(path)?;
        let id = roster
            .iter()
            .position(|k| *k == hello.identity)
            .ok_or("the device's key is not in --attack-roster")? as u32
            + 1;
        let config = forged_config(roster.len() as u32, hello.dim, true)?;
        let mut report = Report::new();
        report.device_id = Some(id);
        report.round_id = Some(config.round_id);
        let round = SybilRound::new(config, id, hello.identity)?;
        let mut assign = Vec::new();
        frame::encode(kind::ASSIGN, &id.to_le_bytes(), &mut assign);
        link.send(&assign).await?;
        let (outcome, value) = play(link, round, Attack::ForgeRound, a.silence).await?;
        report.outcome = outcome;
        report.attack = Some(value);
        report.skipped = link.dec.skipped;
        Ok(report)
    }

    /// F1 attack 2: the real round's NeighbourKeys replaced by the Sybils' (the device already
    /// answered the real RoundStart with `advertise`).
    pub async fn substitute_keys(
        link: &mut DeviceLink,
        config: RoundConfig,
        device: u32,
        identity: [u8; 32],
        advertise: &[u8],
        a: &GatewayArgs,
    ) -> Result<(Outcome, serde_json::Value), String> {
        let round = SybilRound::substitute(config, device, identity, advertise)?;
        play(link, round, Attack::SubstituteKeys, a.silence).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use secagg_core::ClientError;
    use secagg_core::client::{AfterMaskedInput, StreamedClient};

    use super::provision;

    const DIM: u32 = 1000;
    /// The firmware's input (devices/cortex-m/src/input.rs).
    fn device_value(j: usize) -> u64 {
        (7919 + j as u64 * 104_729) & 0xFFFF
    }

    /// How the device's round with a Sybil round ended.
    #[derive(Debug)]
    enum End {
        Refused { stage: usize, error: ClientError },
        Recovered(Vec<u64>),
        Nothing,
    }

    /// Drives a streamed client through `round` the way the firmware's driver does
    /// (devices/cortex-m/src/driver.rs: 256-element chunks of the device's input).
    fn run_device(client: StreamedClient, mut round: SybilRound, start: Option<&[u8]>) -> End {
        use secagg_core::client::{AwaitingNeighbours, AwaitingShares, AwaitingUnmask};
        enum S {
            New(StreamedClient),
            Nb(AwaitingNeighbours),
            Sh(AwaitingShares),
            Cons(secagg_core::client::AwaitingConsistency),
            Un(AwaitingUnmask),
            Done,
        }
        let mut rng = ChaCha20Rng::from_seed(*b"device-entropy-unknown-to-gatewy");
        let mut s = S::New(client);
        if let Some(rs) = start {
            // Substitution: the device answered the real RoundStart already.
            let S::New(c) = s else { unreachable!() };
            let (nb, _) = c.start(rs, &mut rng).unwrap();
            s = S::Nb(nb);
        }
        let mut stage = 0;
        while let Some(bytes) = round.next_for_device().unwrap() {
            stage += 1;
            let r: Result<(S, Option<Vec<u8>>), ClientError> = match s {
                S::New(c) => c.start(&bytes, &mut rng).map(|(n, m)| (S::Nb(n), Some(m))),
                S::Nb(c) => c.handle(&bytes, &mut rng).map(|(n, m)| (S::Sh(n), Some(m))),
                S::Sh(c) => c.handle_streamed(&bytes).and_then(|(next, mut st)| {
                    let mut msg = st.header().to_vec();
                    let mut chunk = vec![0u64; 256];
                    while st.remaining() > 0 {
                        let n = st.remaining().min(256);
                        let off = st.position();
                        for (j, x) in chunk[..n].iter_mut().enumerate() {
                            *x = device_value(off + j);
                        }
                        st.mask_chunk(&mut chunk[..n], &mut msg)?;
                    }
                    msg.extend(st.finish()?);
                    Ok(match next {
                        AfterMaskedInput::Consistency(c) => (S::Cons(c), Some(msg)),
                        AfterMaskedInput::Unmask(u) => (S::Un(u), Some(msg)),
                    })
                }),
                S::Cons(c) => c.handle(&bytes).map(|(n, m)| (S::Un(n), Some(m))),
                S::Un(c) => c.handle(&bytes).map(|m| (S::Done, Some(m))),
                S::Done => Ok((S::Done, None)),
            };
            match r {
                Ok((next, reply)) => {
                    s = next;
                    if let Some(m) = reply {
                        round.feed_device_reply(&m).unwrap();
                    }
                }
                Err(error) => return End::Refused { stage, error },
            }
        }
        match round.recovered() {
            Some(a) => End::Recovered(a.to_vec()),
            None => End::Nothing,
        }
    }

    fn want() -> Vec<u64> {
        (0..DIM as usize).map(device_value).collect()
    }

    /// The firmware's provisioning: 21 keys, the device's at line `device`.
    fn provisioned(n: u32, device: u32) -> (IdentityKey, Vec<[u8; 32]>) {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate(&mut rng)).collect();
        let roster = keys.iter().map(IdentityKey::public).collect();
        let key = IdentityKey::from_seed(&keys[device as usize - 1].seed());
        (key, roster)
    }

    fn firmware_client(key: IdentityKey, roster: &[[u8; 32]], id: u32) -> StreamedClient {
        provision::device_client(id, DIM, key, roster, 10).unwrap()
    }

    #[test]
    fn without_the_defence_a_forged_round_recovers_the_input() {
        // The firmware before the fix: no identity, default policy.
        let round = SybilRound::new(forged_config(3, DIM, false).unwrap(), 1, [0; 32]).unwrap();
        match run_device(Client::streamed(1, DIM), round, None) {
            End::Recovered(x) => assert_eq!(x, want()),
            e => panic!("the attack should have worked: {e:?}"),
        }
    }

    #[test]
    fn the_device_refuses_a_forged_round_without_a_pki() {
        let (key, roster) = provisioned(21, 21);
        // ASSIGN(1) is not the device's line: refused before any round.
        assert!(matches!(
            provision::device_client(1, DIM, IdentityKey::from_seed(&key.seed()), &roster, 10),
            Err(provision::ProvisionError::WrongId)
        ));
        // At its own id, the honest-but-curious round without a PKI is refused at RoundStart.
        let round21 = {
            let mut c = forged_config(3, DIM, false).unwrap();
            c.num_clients = 21;
            c.degree = 20;
            SybilRound::new(c, 21, [0; 32]).unwrap()
        };
        match run_device(firmware_client(key, &roster, 21), round21, None) {
            End::Refused {
                stage: 1,
                error: ClientError::BadParameters(m),
            } => assert!(m.contains("malicious"), "{m}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_small_roster_still_assumes_two_colluders() {
        // n = 19: 5 % is no colluder at all; a server with two colluding roster members that
        // announced k = 2, t = 2 could grind the graph until both are the device's neighbours
        // (docs/review-devices-2.md, G2). The device refuses such a round at RoundStart.
        let (key, roster) = provisioned(19, 19);
        let mut cfg = forged_config(19, DIM, true).unwrap();
        cfg.graph = GraphKind::Harary;
        cfg.degree = 2;
        cfg.threshold = 2;
        let round = SybilRound::new(cfg, 19, key.public()).unwrap();
        match run_device(firmware_client(key, &roster, 19), round, None) {
            End::Refused {
                stage: 1,
                error: ClientError::BadParameters(m),
            } => assert!(m.contains("threshold") || m.contains("degree"), "{m}"),
            e => panic!("{e:?}"),
        }
        assert!((provision::corrupt_fraction(19) - 2.0 / 19.0).abs() < 1e-12);
        assert_eq!(provision::corrupt_fraction(100), provision::ASSUMED_CORRUPT);
    }

    #[test]
    fn the_device_refuses_a_forged_malicious_round_with_made_up_identities() {
        let (key, roster) = provisioned(21, 21);
        let pk = key.public();
        let cfg = forged_config(21, DIM, true).unwrap();
        let round = SybilRound::new(cfg, 21, pk).unwrap();
        match run_device(firmware_client(key, &roster, 21), round, None) {
            // It advertised (public keys only), then refused the Sybils' keys.
            End::Refused {
                stage: 2,
                error: ClientError::ServerMisbehaved(m),
            } => assert!(m.contains("without a valid signature"), "{m}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_same_forged_malicious_round_unmasks_a_client_that_trusts_the_sybils_roster() {
        // Shows the attack is real: the defence is the device's own roster, nothing else.
        let (key, _) = provisioned(21, 21);
        let pk = key.public();
        let cfg = forged_config(21, DIM, true).unwrap();
        let round = SybilRound::new(cfg.clone(), 21, pk).unwrap();
        let gateway_roster = {
            // The roster the gateway's local server uses (its Sybils' keys).
            let mut rng = ChaCha20Rng::from_seed(cfg.round_seed);
            let mut r: Vec<[u8; 32]> = (1..21)
                .map(|_| IdentityKey::generate(&mut rng).public())
                .collect();
            r.push(pk);
            r
        };
        let c = firmware_client(key, &gateway_roster, 21);
        match run_device(c, round, None) {
            End::Recovered(x) => assert_eq!(x, want()),
            e => panic!("{e:?}"),
        }
    }

    /// A real round's RoundStart, as a real server would send it: malicious, PKI, n = 21.
    fn real_round() -> RoundConfig {
        let mut c = forged_config(21, DIM, true).unwrap();
        c.round_id = 42;
        c.round_seed = [42; 32];
        c
    }

    #[test]
    fn without_the_defence_substituted_keys_recover_the_input() {
        // The old firmware in an honest-but-curious round without a PKI (n = 21).
        let mut cfg = forged_config(3, DIM, false).unwrap();
        cfg.num_clients = 21;
        cfg.degree = 20;
        cfg.threshold = 11;
        cfg.min_clients = 11;
        let rs = secagg_core::messages::ServerMessage::RoundStart(cfg.clone()).encode();
        let mut rng = ChaCha20Rng::from_seed(*b"device-entropy-unknown-to-gatewy");
        let (_, advertise) = Client::streamed(21, DIM).start(&rs, &mut rng).unwrap();
        let round = SybilRound::substitute(cfg, 21, [0; 32], &advertise).unwrap();
        match run_device(Client::streamed(21, DIM), round, Some(&rs)) {
            End::Recovered(x) => assert_eq!(x, want()),
            e => panic!("the attack should have worked: {e:?}"),
        }
    }

    #[test]
    fn the_device_refuses_substituted_keys() {
        let (key, roster) = provisioned(21, 21);
        let pk = key.public();
        let cfg = real_round();
        let rs = secagg_core::messages::ServerMessage::RoundStart(cfg.clone()).encode();
        // The device's advertisement in the real round (same seed as in run_device).
        let mut rng = ChaCha20Rng::from_seed(*b"device-entropy-unknown-to-gatewy");
        let key2 = IdentityKey::from_seed(&key.seed());
        let (_, advertise) = firmware_client(key2, &roster, 21)
            .start(&rs, &mut rng)
            .unwrap();
        let round = SybilRound::substitute(cfg, 21, pk, &advertise).unwrap();
        match run_device(firmware_client(key, &roster, 21), round, Some(&rs)) {
            End::Refused {
                stage: 1,
                error: ClientError::ServerMisbehaved(m),
            } => assert!(m.contains("without a valid signature"), "{m}"),
            e => panic!("{e:?}"),
        }
    }
}
