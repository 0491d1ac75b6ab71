//! What a client remembers across rounds: the rounds it took part in (docs/SECURITY.md rule 8:
//! a client refuses a round id it has already taken part in) and, for a client that adds DP
//! noise, its own privacy ledger (it cannot verify the server's ledger or sampling claim, so it
//! charges every round it contributed to at sampling rate 1).
//!
//! In memory for the process, and with a directory in one small JSON file there,
//! `secagg-client-state.json`, rewritten atomically (temporary file, fsync, rename, fsync of
//! the directory) before the client acts on it: a round id is written before the client
//! advertises keys, a charge before it sends its masked input, so a crash can only make the
//! client remember more than it did, never less.
//!
//! ```json
//! {"version": 1,
//!  "rounds": {"http://server:7000": [1, 2, 3]},
//!  "dp_ledger": {"orders": [...], "rdp": [...], "rounds": [["http://server:7000", 1], ...]}}
//! ```
//!
//! Round ids are the server's, so they are kept per server URL (the URL the client was told
//! to use; a server cannot choose it). The ledger is the client's, whatever the server. One
//! directory serves one client process at a time: two processes that share it could each
//! charge against the same remaining budget.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use secagg_dp::accountant::{Accountant, Round};
use serde_json::{Value, json};

/// The file in the state directory.
pub const STATE_FILE: &str = "secagg-client-state.json";

/// A client's own privacy budget: the (ε, δ) it will not exceed over every round it
/// contributes noise to, whichever server runs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpBudget {
    /// Total ε.
    pub epsilon: f64,
    /// δ at which ε is computed.
    pub delta: f64,
    /// The honest survivors whose noise the client counts on: rounds are charged at the
    /// noise multiplier h of them reach (`DpParams::client_charge`), not the announced one.
    pub honest_clients: u32,
}

impl DpBudget {
    /// Checks the values a user chose; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(format!(
                "the client's ε budget must be a positive number, got {}",
                self.epsilon
            ));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(format!(
                "the client's δ must be in (0, 1), got {}",
                self.delta
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
struct Inner {
    dir: Option<PathBuf>,
    rounds: BTreeMap<String, BTreeSet<u64>>,
    ledger: Option<Accountant>,
    charged: Vec<(String, u64)>,
}

/// A client's memory across rounds; cheap to clone (clones share it).
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    inner: Arc<Mutex<Inner>>,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> String {
    format!(
        "{} is not a valid secagg client state ({what}); it is never read as empty: restore it \
         or, knowing that the rounds and privacy spending it records are forgotten, remove it",
        path.display()
    )
}

impl ClientState {
    /// Remembers for this process only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Reads (or starts) the state kept in `dir`, creating the directory if needed. A file
    /// that cannot be read or is not a valid state is an error, never an empty state.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let path = dir.join(STATE_FILE);
        let mut inner = Inner {
            dir: Some(dir.to_path_buf()),
            ..Inner::default()
        };
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            Ok(text) => parse(&text, &mut inner).map_err(|e| corrupt(&path, e))?,
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated: every update is one insert.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this client already took part in round `round_id` of `server`.
    pub fn took_part(&self, server: &str, round_id: u64) -> bool {
        self.lock()
            .rounds
            .get(server)
            .is_some_and(|s| s.contains(&round_id))
    }

    /// Records that the client takes part in round `round_id` of `server`, durably when the
    /// state has a directory, before returning. Refuses a round id already recorded.
    pub fn record_round(&self, server: &str, round_id: u64) -> Result<(), String> {
        let mut g = self.lock();
        if g.rounds.get(server).is_some_and(|s| s.contains(&round_id)) {
            return Err(format!(
                "this client already took part in round {round_id} of {server}"
            ));
        }
        let mut next = g.clone();
        next.rounds
            .entry(server.to_string())
            .or_default()
            .insert(round_id);
        save(&next)?;
        *g = next;
        Ok(())
    }

    /// ε this client has spent at `delta` (0 before any charge), and the rounds charged.
    pub fn dp_spent(&self, delta: f64) -> Result<(f64, usize), String> {
        let g = self.lock();
        let e = match &g.ledger {
            Some(acc) => acc
                .spent(delta)
                .map_err(|e| e.0)?
                .map_or(0.0, |e| e.epsilon),
            None => 0.0,
        };
        Ok((e, g.charged.len()))
    }

    /// Checks that charging `cost` keeps the client within `budget`; returns ε after it.
    pub fn dp_check(&self, cost: &Round, budget: &DpBudget) -> Result<f64, String> {
        let g = self.lock();
        check(&g, cost, budget)
    }

    /// Charges round `round_id` of `server` at `cost`, durably, after checking the budget
    /// again (another round of this process may have charged meanwhile). Returns ε after it.
    pub fn dp_charge(
        &self,
        server: &str,
        round_id: u64,
        cost: &Round,
        budget: &DpBudget,
    ) -> Result<f64, String> {
        let mut g = self.lock();
        let after = check(&g, cost, budget)?;
        let mut next = g.clone();
        let acc = next.ledger.get_or_insert_with(Accountant::new);
        acc.compose(cost);
        next.charged.push((server.to_string(), round_id));
        save(&next)?;
        *g = next;
        Ok(after)
    }
}

fn check(g: &Inner, cost: &Round, budget: &DpBudget) -> Result<f64, String> {
    let acc = g.ledger.clone().unwrap_or_default();
    let before = acc
        .spent(budget.delta)
        .map_err(|e| e.0)?
        .map_or(0.0, |e| e.epsilon);
    let after = acc.epsilon_after(cost, budget.delta).map_err(|e| e.0)?;
    if after.epsilon > budget.epsilon {
        return Err(format!(
            "this client's own privacy budget would be exceeded: it has spent ε = {before:.4} \
             over {} rounds, and this round (charged at sampling rate 1, since the client cannot \
             verify the server's sampling) would bring it to {:.4} > its budget {} (δ = {})",
            g.charged.len(),
            after.epsilon,
            budget.epsilon,
            budget.delta
        ));
    }
    Ok(after.epsilon)
}

fn parse(text: &str, inner: &mut Inner) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["version", "rounds", "dp_ledger"].contains(&k.as_str()))
    {
        return Err(format!("unknown key {k:?}"));
    }
    if obj.get("version").and_then(Value::as_u64) != Some(1) {
        return Err("version must be 1".into());
    }
    let rounds = obj
        .get("rounds")
        .and_then(Value::as_object)
        .ok_or("\"rounds\" must be an object of server URL → round ids")?;
    for (server, ids) in rounds {
        let ids = ids
            .as_array()
            .ok_or_else(|| format!("the round ids of {server:?} must be a list"))?;
        let mut set = BTreeSet::new();
        for id in ids {
            let id = id
                .as_u64()
                .ok_or_else(|| format!("round id {id} of {server:?} is not an unsigned integer"))?;
            set.insert(id);
        }
        inner.rounds.insert(server.clone(), set);
    }
    match obj.get("dp_ledger") {
        None | Some(Value::Null) => {}
        Some(l) => {
            let l = l.as_object().ok_or("\"dp_ledger\" must be an object")?;
            if let Some(k) = l
                .keys()
                .find(|k| !["orders", "rdp", "rounds"].contains(&k.as_str()))
            {
                return Err(format!("unknown key {k:?} in the DP ledger"));
            }
            let floats = |key: &str| -> Result<Vec<f64>, String> {
                l.get(key)
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("the DP ledger's {key:?} must be a list of numbers"))?
                    .iter()
                    .map(|x| {
                        x.as_f64()
                            .ok_or_else(|| format!("the DP ledger's {key:?} holds {x}"))
                    })
                    .collect()
            };
            let acc = Accountant::from_rdp(floats("orders")?, floats("rdp")?)
                .map_err(|e| format!("DP ledger: {}", e.0))?;
            let charged = l
                .get("rounds")
                .and_then(Value::as_array)
                .ok_or("the DP ledger's \"rounds\" must be a list")?
                .iter()
                .map(|r| match r.as_array().map(Vec::as_slice) {
                    Some([Value::String(s), id]) => id
                        .as_u64()
                        .map(|id| (s.clone(), id))
                        .ok_or_else(|| format!("charged round {r} has no valid id")),
                    _ => Err(format!("charged round {r} is not [server, id]")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            // A curve with charges must be positive somewhere, and one without all zero: a
            // zeroed curve is corruption, not an unspent budget.
            let zero = acc.rdp().iter().all(|r| *r == 0.0);
            if zero != charged.is_empty() {
                return Err(format!(
                    "the DP ledger lists {} charged rounds but its RDP curve is {}",
                    charged.len(),
                    if zero { "zero" } else { "not zero" }
                ));
            }
            inner.ledger = Some(acc);
            inner.charged = charged;
        }
    }
    Ok(())
}

fn to_json(inner: &Inner) -> Value {
    json!({
        "version": 1,
        "rounds": inner.rounds,
        "dp_ledger": inner.ledger.as_ref().map(|acc| json!({
            "orders": acc.orders(),
            "rdp": acc.rdp(),
            "rounds": inner.charged.iter().map(|(s, id)| json!([s, id])).collect::<Vec<_>>(),
        })),
    })
}

/// Writes the state durably (no-op without a directory).
fn save(inner: &Inner) -> Result<(), String> {
    let Some(dir) = &inner.dir else {
        return Ok(());
    };
    let path = dir.join(STATE_FILE);
    let text = format!("{:#}\n", to_json(inner));
    crate::durable::write_durable(&path, text.as_bytes())
        .map_err(|e| format!("cannot write the client state {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use secagg_dp::accountant::Mechanism;

    fn cost() -> Round {
        Round::new(
            Mechanism::Gaussian {
                noise_multiplier: 2.0,
            },
            1.0,
            1,
        )
        .unwrap()
    }

    #[test]
    fn rounds_and_charges_survive_reopening_and_the_budget_holds() {
        let dir = tempfile::tempdir().unwrap();
        let s = ClientState::open(dir.path()).unwrap();
        assert!(!s.took_part("http://a", 1));
        s.record_round("http://a", 1).unwrap();
        assert!(s.record_round("http://a", 1).is_err());
        s.record_round("http://b", 1).unwrap();
        let one = Accountant::new()
            .composed(&cost())
            .epsilon(1e-5)
            .unwrap()
            .epsilon;
        let two = Accountant::new()
            .composed(&cost())
            .composed(&cost())
            .epsilon(1e-5)
            .unwrap()
            .epsilon;
        let budget = DpBudget {
            epsilon: (one + two) / 2.0,
            delta: 1e-5,
            honest_clients: 1,
        };
        let after = s.dp_charge("http://a", 1, &cost(), &budget).unwrap();
        assert!((after - one).abs() < 1e-12);
        let s = ClientState::open(dir.path()).unwrap();
        assert!(s.took_part("http://a", 1) && s.took_part("http://b", 1));
        assert!(!s.took_part("http://a", 2));
        let (spent, n) = s.dp_spent(1e-5).unwrap();
        assert!((spent - one).abs() < 1e-12 && n == 1);
        let e = s.dp_check(&cost(), &budget).unwrap_err();
        assert!(e.contains("own privacy budget"), "{e}");
        assert!(s.dp_charge("http://a", 2, &cost(), &budget).is_err());
        assert_eq!(
            ClientState::open(dir.path())
                .unwrap()
                .dp_spent(1e-5)
                .unwrap()
                .1,
            1
        );
    }

    #[test]
    fn a_corrupt_state_is_an_error_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = ClientState::open(dir.path()).unwrap();
        s.record_round("http://a", 7).unwrap();
        s.dp_charge(
            "http://a",
            7,
            &cost(),
            &DpBudget {
                epsilon: 100.0,
                delta: 1e-5,
                honest_clients: 1,
            },
        )
        .unwrap();
        let path = dir.path().join(STATE_FILE);
        let good = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&good).unwrap();
        let mut zeroed = v.clone();
        let n = zeroed["dp_ledger"]["rdp"].as_array().unwrap().len();
        zeroed["dp_ledger"]["rdp"] = json!(vec![0.0; n]);
        let mut negative = v.clone();
        negative["dp_ledger"]["rdp"][0] = json!(-1.0);
        let mut bad_id = v.clone();
        bad_id["rounds"]["http://a"] = json!(["x"]);
        let mut extra = v.clone();
        extra["other"] = json!(1);
        for text in [
            String::from("{"),
            String::from("[]"),
            zeroed.to_string(),
            negative.to_string(),
            bad_id.to_string(),
            extra.to_string(),
            good.replace("\"version\": 1", "\"version\": 2"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let e = ClientState::open(dir.path()).unwrap_err();
            assert!(e.contains("never read as empty"), "{text}: {e}");
        }
    }
}
