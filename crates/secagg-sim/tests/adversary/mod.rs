//! A malicious server written as code, and what it does with what it collects.
//!
//! [`Rogue`] drives real clients (the core's [`ClientRound`], built as the harness builds
//! them) and lets a test decide, stage by stage and recipient by recipient, which bytes each
//! client gets. It runs none of the honest server's checks: whatever a client sends is recorded
//! in the server's [`Loot`], and [`Loot::recover`] then does what the attacker is after:
//! rebuilds the secrets the honest clients revealed with `shamir::reconstruct`, recomputes the
//! masks with the `crypto` and `prg` functions the clients use, and subtracts them from the
//! victim's masked vector.
//!
//! Corrupt clients run the honest code but hand their secrets to the server: the server
//! re-derives them from the seed the client's randomness was drawn from
//! ([`Rogue::secrets_of`], checked against what the client advertised).
//!
//! For attacks that only rewrite messages, [`eavesdrop`] fills the same [`Loot`] from the
//! harness's `observe` hook, so those tests run through `secagg_sim::harness`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::{Client, ClientRound, Policy, Roster};
use secagg_core::crypto::{self, DhKeyPair, IdentityKey, SessionId};
use secagg_core::graph::Graph;
use secagg_core::idset::IdSet;
use secagg_core::merkle::Tree;
use secagg_core::messages::{ClientMessage, KeyEntry, MaskedWith, SHARE_BUNDLE_LEN, ServerMessage};
use secagg_core::prg::{MaskStream, Sign, apply_masks};
use secagg_core::shamir::{self, SHARE_LEN, Share};
use secagg_core::{ClientError, ClientId, RoundConfig, Stage, ThreatModel};
use secagg_sim::harness::Scenario;

/// An Ed25519 signature.
pub type Sig = [u8; 64];

/// Inputs that differ per client and per coordinate.
pub fn inputs(cfg: &RoundConfig) -> Vec<Vec<u64>> {
    let mask = cfg.modulus().mask();
    (1..=u64::from(cfg.num_clients))
        .map(|i| {
            (0..u64::from(cfg.dim))
                .map(|j| (i * 1009 + j * 31 + 7) & mask)
                .collect()
        })
        .collect()
}

/// U1 as one party sees it: the key entries, and everything derived from them (Merkle tree,
/// session id, graph).
#[derive(Clone)]
pub struct View {
    /// The parameters this view was built for.
    pub cfg: RoundConfig,
    /// The members.
    pub u1: IdSet,
    /// Their key entries.
    pub entries: BTreeMap<ClientId, KeyEntry>,
    tree: Tree,
    /// Merkle root over the entries.
    pub root: [u8; 32],
    /// The session id.
    pub session: SessionId,
    /// The neighbour graph.
    pub graph: Graph,
}

impl View {
    /// The view of `entries` under `cfg`, built as the honest server builds it.
    pub fn new(cfg: &RoundConfig, entries: BTreeMap<ClientId, KeyEntry>) -> Self {
        let u1 = IdSet::from_ids(cfg.num_clients, entries.keys().copied());
        let tree = Tree::new(entries.values().map(KeyEntry::leaf).collect());
        let root = tree.root();
        let session = cfg.session_id(&u1, &root);
        let graph = Graph::new(cfg.graph, cfg.degree, &u1, &session);
        Self {
            cfg: cfg.clone(),
            u1,
            entries,
            tree,
            root,
            session,
            graph,
        }
    }

    /// `v`'s neighbours, increasing.
    pub fn neighbours(&self, v: ClientId) -> Vec<ClientId> {
        self.graph.neighbours(v)
    }

    /// The NeighbourKeys message for `to`: U1, the root, `to`'s audit path and its neighbours'
    /// entries.
    pub fn neighbour_keys(&self, to: ClientId) -> Vec<u8> {
        let index = self
            .entries
            .keys()
            .position(|id| *id == to)
            .expect("recipient in U1");
        ServerMessage::NeighbourKeys {
            u1: self.u1.clone(),
            keys_root: self.root,
            key_path: self.tree.path(index),
            neighbours: self
                .neighbours(to)
                .iter()
                .map(|v| self.entries[v].clone())
                .collect(),
        }
        .encode()
    }

    /// The AEAD binding of the pair (a, b) in this view.
    pub fn binding(&self, a: ClientId, b: ClientId) -> [u8; 32] {
        crypto::pair_binding(a, &self.entries[&a].leaf(), b, &self.entries[&b].leaf())
    }

    /// Opens the bundle `from` sealed for `to`, with `to`'s encryption key pair (the server
    /// holds it for a corrupt client or a key it substituted): (mask-key share, self-mask share).
    pub fn open_bundle(
        &self,
        from: ClientId,
        to: ClientId,
        to_enc: &DhKeyPair,
        ct: &[u8],
    ) -> Option<(Share, Share)> {
        let shared = to_enc.agree(&self.entries[&from].enc_pk)?;
        let pt = crypto::open_shares(
            &shared,
            &self.session,
            from,
            to,
            &self.binding(from, to),
            ct,
        )?;
        if pt.len() != SHARE_BUNDLE_LEN {
            return None;
        }
        Some((
            Share::from_bytes(&pt[..SHARE_LEN]).ok()?,
            Share::from_bytes(&pt[SHARE_LEN..]).ok()?,
        ))
    }

    /// Seals `plaintext` from `from` (whose encryption key pair the server holds) to `to`,
    /// authentic in this view.
    pub fn seal(
        &self,
        from: ClientId,
        from_enc: &DhKeyPair,
        to: ClientId,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let shared = from_enc
            .agree(&self.entries[&to].enc_pk)
            .expect("valid key");
        crypto::seal_shares(
            &shared,
            &self.session,
            from,
            to,
            &self.binding(from, to),
            plaintext,
        )
    }
}

/// Everything the server collected, and the secrets it holds outright.
#[derive(Default, Clone)]
pub struct Loot {
    /// Advertised keys, by sender.
    pub adverts: BTreeMap<ClientId, KeyEntry>,
    /// Share ciphertexts, by sender: (recipient, ciphertext).
    pub shares_out: BTreeMap<ClientId, Vec<(ClientId, Vec<u8>)>>,
    /// Masked inputs (unpacked), by sender.
    pub masked: BTreeMap<ClientId, Vec<u64>>,
    /// Masked-with statements, by sender.
    pub statements: BTreeMap<ClientId, MaskedWith>,
    /// Consistency signatures, by signer (over whatever U3 it was asked to sign).
    pub signatures: BTreeMap<ClientId, Sig>,
    /// Revealed shares of self-mask seeds b_v, by owner: (holder, share).
    pub b_shares: BTreeMap<ClientId, Vec<(ClientId, Share)>>,
    /// Revealed shares of mask secret keys s_v, by owner: (holder, share).
    pub s_shares: BTreeMap<ClientId, Vec<(ClientId, Share)>>,
    /// Mask secret keys the server holds (its own substituted keys, corrupt clients' keys).
    pub mask_secrets: BTreeMap<ClientId, [u8; 32]>,
}

impl Loot {
    /// Files one client message.
    pub fn record(&mut self, cfg: &RoundConfig, from: ClientId, bytes: &[u8]) {
        let Ok(msg) = ClientMessage::decode(bytes, cfg) else {
            return;
        };
        match msg {
            ClientMessage::AdvertiseKeys(e) => {
                self.adverts.insert(from, e);
            }
            ClientMessage::EncryptedShares(list) => {
                self.shares_out.insert(from, list);
            }
            ClientMessage::MaskedInput {
                vector,
                masked_with,
                ..
            } => {
                let y = cfg
                    .modulus()
                    .unpack(&vector, cfg.dim as usize)
                    .expect("decoded vector");
                self.masked.insert(from, y);
                if let Some(st) = masked_with {
                    self.statements.insert(from, st);
                }
            }
            ClientMessage::ConsistencySignature(sig) => {
                self.signatures.insert(from, sig);
            }
            ClientMessage::UnmaskShares {
                self_mask,
                mask_key,
            } => {
                for (owner, s) in self_mask {
                    self.b_shares.entry(owner).or_default().push((from, s));
                }
                for (owner, s) in mask_key {
                    self.s_shares.entry(owner).or_default().push((from, s));
                }
            }
        }
    }

    /// Opens every ciphertext addressed to `holder` (a corrupt client or a key the server
    /// substituted) with its encryption key pair and files the shares as revealed by it.
    pub fn open_all_for(&mut self, view: &View, holder: ClientId, enc: &DhKeyPair) {
        let mut found = Vec::new();
        for (from, list) in &self.shares_out {
            for (to, ct) in list {
                if *to == holder
                    && let Some((s, b)) = view.open_bundle(*from, holder, enc, ct)
                {
                    found.push((*from, s, b));
                }
            }
        }
        for (owner, s, b) in found {
            self.s_shares.entry(owner).or_default().push((holder, s));
            self.b_shares.entry(owner).or_default().push((holder, b));
        }
    }

    /// Holders that revealed a share of `owner`'s self-mask seed.
    pub fn b_holders(&self, owner: ClientId) -> Vec<ClientId> {
        holders(self.b_shares.get(&owner))
    }

    /// Holders that revealed a share of `owner`'s mask key.
    pub fn s_holders(&self, owner: ClientId) -> Vec<ClientId> {
        holders(self.s_shares.get(&owner))
    }

    /// `owner`'s self-mask seed, if t revealed shares rebuild the committed value.
    pub fn self_seed(&self, view: &View, owner: ClientId) -> Option<[u8; 32]> {
        let entry = view.entries.get(&owner)?;
        let b = rebuild(self.b_shares.get(&owner)?, view.cfg.threshold as usize)?;
        (crypto::commit_self_secret(&b, view.cfg.round_id, owner) == entry.commitment).then_some(b)
    }

    /// `owner`'s mask secret key, if held outright or if t revealed shares rebuild the key
    /// whose public half `view` lists.
    pub fn mask_secret(&self, view: &View, owner: ClientId) -> Option<[u8; 32]> {
        let entry = view.entries.get(&owner)?;
        let fits = |sk: &[u8; 32]| DhKeyPair::from_secret_bytes(sk).public() == entry.mask_pk;
        if let Some(sk) = self.mask_secrets.get(&owner).filter(|sk| fits(sk)) {
            return Some(*sk);
        }
        let sk = rebuild(self.s_shares.get(&owner)?, view.cfg.threshold as usize)?;
        fits(&sk).then_some(sk)
    }

    /// The attack's goal: the victim's input, from its masked vector y_v = x_v + PRG(b_v) +
    /// Σ_{w ∈ masked_with} ±PRG(s_vw), with the masks computed from what the server holds.
    /// `view` is U1 as the victim saw it (its session and its peers' keys), `masked_with` whom
    /// it masked with. The error says what the server lacks.
    pub fn recover(
        &self,
        view: &View,
        victim: ClientId,
        masked_with: &[ClientId],
    ) -> Result<Vec<u64>, String> {
        let cfg = &view.cfg;
        let t = cfg.threshold as usize;
        let y = self
            .masked
            .get(&victim)
            .ok_or("the victim sent no masked input")?;
        let b = self.self_seed(view, victim).ok_or_else(|| {
            format!(
                "{} of the {t} shares of b_{victim} needed were revealed",
                self.b_holders(victim).len()
            )
        })?;
        let s_v = self.mask_secret(view, victim);
        let mut streams = vec![MaskStream::new(
            cfg.prg,
            &crypto::self_mask_seed(&b, &view.session, victim),
            Sign::Minus,
        )];
        for w in masked_with {
            let shared = match (&s_v, self.mask_secret(view, *w)) {
                (Some(sv), _) => DhKeyPair::from_secret_bytes(sv).agree(&view.entries[w].mask_pk),
                (None, Some(sw)) => {
                    DhKeyPair::from_secret_bytes(&sw).agree(&view.entries[&victim].mask_pk)
                }
                (None, None) => {
                    return Err(format!(
                        "neither s_{victim} nor s_{w} is known, so their pairwise mask stays"
                    ));
                }
            }
            .ok_or("low-order key")?;
            let seed = crypto::pairwise_seed(&shared, &view.session, victim, *w);
            let added = if victim < *w { Sign::Plus } else { Sign::Minus };
            streams.push(MaskStream::new(cfg.prg, &seed, added.flip()));
        }
        let mut x = y.clone();
        apply_masks(&mut x, cfg.modulus(), &mut streams);
        Ok(x)
    }
}

fn holders(list: Option<&Vec<(ClientId, Share)>>) -> Vec<ClientId> {
    let mut h: Vec<ClientId> = list.map_or(Vec::new(), |l| l.iter().map(|(h, _)| *h).collect());
    h.sort_unstable();
    h.dedup();
    h
}

/// `shamir::reconstruct` from t distinct revealed shares, if there are t.
fn rebuild(list: &[(ClientId, Share)], t: usize) -> Option<[u8; 32]> {
    let mut shares: Vec<Share> = Vec::new();
    for (_, s) in list {
        if !shares.iter().any(|o| o.x == s.x) {
            shares.push(s.clone());
        }
    }
    shamir::reconstruct(&shares, t).ok().map(|s| *s)
}

/// A corrupt client's secrets, handed to the server.
pub struct Secrets {
    /// Its share-encryption key pair.
    pub enc: DhKeyPair,
    /// Its mask key pair.
    pub mask: DhKeyPair,
    /// Its self-mask seed b_u.
    pub self_seed: [u8; 32],
}

/// The malicious server: real clients, and a script that decides what each one gets.
pub struct Rogue {
    /// The parameters the server announces (to every client a test does not single out).
    pub cfg: RoundConfig,
    /// Each client's input (client i + 1 at index i), in Z_2^b.
    pub inputs: Vec<Vec<u64>>,
    /// Every client's policy (the core's default when `None`).
    pub policy: Option<Policy>,
    /// Seed of the clients' randomness (their round keys).
    pub seed: u64,
    /// Seed of the identity keys (kept across rounds for replay attacks).
    pub identity_seed: u64,
    clients: Vec<ClientRound>,
    rngs: Vec<ChaCha20Rng>,
    told: Vec<RoundConfig>,
    /// The first error each client returned (a refusal), by client.
    pub refusals: BTreeMap<ClientId, ClientError>,
    /// Every client message, in order: (stage it answered, sender, bytes).
    pub sent: Vec<(Stage, ClientId, Vec<u8>)>,
    /// What the server collected.
    pub loot: Loot,
}

impl Rogue {
    /// A server for `cfg` whose clients draw their round keys from `seed`.
    pub fn new(cfg: &RoundConfig, seed: u64) -> Self {
        Self {
            cfg: cfg.clone(),
            inputs: inputs(cfg),
            policy: None,
            seed,
            identity_seed: 0x1d,
            clients: Vec::new(),
            rngs: Vec::new(),
            told: Vec::new(),
            refusals: BTreeMap::new(),
            sent: Vec::new(),
            loot: Loot::default(),
        }
    }

    /// Client ids 1..=n.
    pub fn ids(&self) -> impl Iterator<Item = ClientId> + use<> {
        1..=self.cfg.num_clients
    }

    /// All clients.
    pub fn everyone(&self) -> IdSet {
        IdSet::full(self.cfg.num_clients)
    }

    fn rng_seed(&self, id: ClientId) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&self.seed.to_le_bytes());
        s[8..12].copy_from_slice(&id.to_le_bytes());
        s
    }

    /// Client `id`'s identity key (the server uses only colluders').
    pub fn identity(&self, id: ClientId) -> IdentityKey {
        IdentityKey::from_seed(&crypto::hash(&[
            b"rogue-identity",
            &self.identity_seed.to_le_bytes(),
            &id.to_le_bytes(),
        ]))
    }

    /// The PKI's roster (every client holds its own copy of it).
    pub fn roster(&self) -> Roster {
        self.ids().map(|id| self.identity(id).public()).collect()
    }

    /// Builds the clients and sends client `id` RoundStart(`told(id)`). Their key entries land
    /// in `loot.adverts`.
    pub fn start(&mut self, told: impl Fn(ClientId) -> RoundConfig) {
        let roster = self.roster();
        self.clients.clear();
        self.rngs.clear();
        self.told.clear();
        for id in self.ids() {
            let mut c = Client::new(id, self.inputs[id as usize - 1].clone());
            if self.cfg.pki {
                c = c.with_pki(self.identity(id), roster.clone());
            }
            if let Some(p) = &self.policy {
                c = c.with_policy(p.clone());
            }
            self.clients.push(ClientRound::New(c));
            self.rngs.push(ChaCha20Rng::from_seed(self.rng_seed(id)));
            self.told.push(told(id));
        }
        for id in self.ids() {
            let msg = ServerMessage::RoundStart(self.told[id as usize - 1].clone()).encode();
            self.send(Stage::AdvertiseKeys, id, &msg);
        }
    }

    /// Sends `bytes` to `to` as part of `stage`; records and returns its answer (`None` if it
    /// refused or had nothing to say).
    pub fn send(&mut self, stage: Stage, to: ClientId, bytes: &[u8]) -> Option<ClientMessage> {
        let i = to as usize - 1;
        match self.clients[i].handle(bytes, &mut self.rngs[i]) {
            Ok(Some(reply)) => {
                self.loot.record(&self.told[i], to, &reply);
                let msg = ClientMessage::decode(&reply, &self.told[i]).ok();
                self.sent.push((stage, to, reply));
                msg
            }
            Ok(None) => None,
            Err(e) => {
                self.refusals.entry(to).or_insert(e);
                None
            }
        }
    }

    /// Sends each (recipient, bytes); returns who answered.
    pub fn send_all(
        &mut self,
        stage: Stage,
        msgs: impl IntoIterator<Item = (ClientId, Vec<u8>)>,
    ) -> IdSet {
        let mut answered = IdSet::empty(self.cfg.num_clients);
        for (to, bytes) in msgs {
            if self.send(stage, to, &bytes).is_some() {
                answered.insert(to);
            }
        }
        answered
    }

    /// Who sent something in `stage`.
    pub fn answered(&self, stage: Stage) -> IdSet {
        IdSet::from_ids(
            self.cfg.num_clients,
            self.sent
                .iter()
                .filter(|(s, _, _)| *s == stage)
                .map(|(_, id, _)| *id),
        )
    }

    /// Whether `id` sent anything in `stage`.
    pub fn sent_in(&self, stage: Stage, id: ClientId) -> bool {
        self.sent
            .iter()
            .any(|(s, from, _)| *s == stage && *from == id)
    }

    /// Whether `id` refused with a message containing `why`.
    pub fn refused(&self, id: ClientId, why: &str) -> bool {
        self.refusals
            .get(&id)
            .is_some_and(|e| e.to_string().contains(why))
    }

    /// Corrupt client `id`'s secrets, re-derived from the seed its randomness was drawn from
    /// (in the order `Client::start` draws them) and checked against what it advertised.
    pub fn secrets_of(&self, id: ClientId) -> Secrets {
        let mut rng = ChaCha20Rng::from_seed(self.rng_seed(id));
        let enc = DhKeyPair::generate(&mut rng);
        let mask = DhKeyPair::generate(&mut rng);
        let self_seed: [u8; 32] = crypto::random_array(&mut rng);
        let e = &self.loot.adverts[&id];
        assert_eq!(
            (enc.public(), mask.public()),
            (e.enc_pk, e.mask_pk),
            "Client::start draws its keys in another order: update Rogue::secrets_of"
        );
        Secrets {
            enc,
            mask,
            self_seed,
        }
    }

    // The honest server's stages, for the parts of a round an attack leaves alone.

    /// RoundStart with `self.cfg` to everyone; the view of everyone who advertised.
    pub fn honest_start(&mut self) -> View {
        let cfg = self.cfg.clone();
        self.start(|_| cfg.clone());
        View::new(&self.cfg, self.loot.adverts.clone())
    }

    /// NeighbourKeys from `view` to every member; returns U2 (who sent shares).
    pub fn honest_neighbour_keys(&mut self, view: &View) -> IdSet {
        let msgs: Vec<_> = view
            .u1
            .iter()
            .map(|to| (to, view.neighbour_keys(to)))
            .collect();
        self.send_all(Stage::ShareKeys, msgs)
    }

    /// SharesForYou with U2 = `u2` to `to`: the ciphertexts its neighbours in `u2` sent it.
    pub fn shares_for(&self, view: &View, u2: &IdSet, to: ClientId) -> Vec<u8> {
        let ciphertexts = view
            .neighbours(to)
            .into_iter()
            .filter(|v| u2.contains(*v))
            .filter_map(|v| {
                self.loot.shares_out.get(&v).and_then(|list| {
                    list.iter()
                        .find(|(r, _)| *r == to)
                        .map(|(_, ct)| (v, ct.clone()))
                })
            })
            .collect();
        ServerMessage::SharesForYou {
            u2: u2.clone(),
            ciphertexts,
        }
        .encode()
    }

    /// SharesForYou with the true U2 to every member of it; returns who uploaded.
    pub fn honest_shares(&mut self, view: &View, u2: &IdSet) -> IdSet {
        let msgs: Vec<_> = u2
            .iter()
            .map(|to| (to, self.shares_for(view, u2, to)))
            .collect();
        self.send_all(Stage::MaskedInput, msgs)
    }

    /// ConsistencyRequest(`u3`) to each of `to`; returns who signed.
    pub fn ask_to_sign(&mut self, u3: &IdSet, to: impl IntoIterator<Item = ClientId>) -> IdSet {
        let msg = ServerMessage::ConsistencyRequest { u3: u3.clone() }.encode();
        let msgs: Vec<_> = to.into_iter().map(|id| (id, msg.clone())).collect();
        self.send_all(Stage::ConsistencyCheck, msgs)
    }

    /// The signatures `signers` gave (as collected).
    pub fn signatures_of(&self, signers: &IdSet) -> Vec<(ClientId, Sig)> {
        signers
            .iter()
            .filter_map(|id| self.loot.signatures.get(&id).map(|s| (id, *s)))
            .collect()
    }

    /// UnmaskRequest for `to`: `u3`, the given signatures and (malicious model) the
    /// masked-with statements of `to`'s neighbours in `u3`.
    pub fn unmask_request(
        &self,
        view: &View,
        u3: &IdSet,
        signatures: &[(ClientId, Sig)],
        to: ClientId,
    ) -> Vec<u8> {
        let statements = if view.cfg.model == ThreatModel::Malicious {
            view.neighbours(to)
                .into_iter()
                .filter(|v| u3.contains(*v))
                .filter_map(|v| self.loot.statements.get(&v).map(|s| (v, s.clone())))
                .collect()
        } else {
            Vec::new()
        };
        ServerMessage::UnmaskRequest {
            u3: u3.clone(),
            signatures: signatures.to_vec(),
            statements,
        }
        .encode()
    }

    /// UnmaskRequest(`u3`, `signatures`) to each of `to`; returns who answered.
    pub fn ask_to_unmask(
        &mut self,
        view: &View,
        u3: &IdSet,
        signatures: &[(ClientId, Sig)],
        to: impl IntoIterator<Item = ClientId>,
    ) -> IdSet {
        let msgs: Vec<_> = to
            .into_iter()
            .map(|id| (id, self.unmask_request(view, u3, signatures, id)))
            .collect();
        self.send_all(Stage::Unmask, msgs)
    }

    /// The input of client `id`.
    pub fn input(&self, id: ClientId) -> &[u64] {
        &self.inputs[id as usize - 1]
    }
}

/// Records every client→server message of a harness round into a [`Loot`] (the server sees
/// all of them, whatever its state machine then does with them).
pub fn eavesdrop(sc: &mut Scenario) -> Arc<Mutex<Loot>> {
    let loot: Arc<Mutex<Loot>> = Arc::default();
    let l2 = loot.clone();
    let cfg = sc.config.clone();
    sc.observe = Some(Box::new(move |_stage, from_server, id, bytes| {
        if !from_server {
            l2.lock().unwrap().record(&cfg, id, bytes);
        }
    }));
    loot
}
