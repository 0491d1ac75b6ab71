//! The server's embedded store (redb, pure Rust): round ids and each round's state, committed
//! durably before and after every round, so a crash loses nothing that finished, an in-flight
//! round is recorded as aborted on restart, and ids are never reused.
//!
//! It also holds the **privacy ledger**: per population, the Rényi-DP curve composed over every
//! charged round, and the ids of those rounds. A DP round is charged, in its own transaction
//! that also marks its record `dp_charged`, before the server asks for the first unmask share
//! (the moment it could learn the sum): a round that aborts or crashes after that stays charged,
//! so a crash can lose an aggregate but never a charge, and a round id is never charged twice.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Value, json};

const ROUNDS: TableDefinition<u64, &str> = TableDefinition::new("rounds");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LEDGER: TableDefinition<&str, &str> = TableDefinition::new("dp_ledger");
const NEXT_ID: &str = "next_round_id";

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundState {
    /// Started and not ended (or the server died during it, until the next start).
    InFlight,
    /// Released its aggregate.
    Finished,
    /// Ended without releasing anything.
    Aborted,
}

impl RoundState {
    fn name(self) -> &'static str {
        match self {
            RoundState::InFlight => "in_flight",
            RoundState::Finished => "finished",
            RoundState::Aborted => "aborted",
        }
    }
    fn parse(s: &str) -> RoundState {
        match s {
            "finished" => RoundState::Finished,
            "aborted" => RoundState::Aborted,
            _ => RoundState::InFlight,
        }
    }
}

/// A store error (I/O or database), with what was being done.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for StoreError {}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError(format!("{what}: {e}"))
}

/// What one population has spent: the RDP curve (ε at each order, added over rounds) and the
/// rounds counted in it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    /// Rényi orders α.
    pub orders: Vec<f64>,
    /// RDP ε(α) spent so far, one per order.
    pub rdp: Vec<f64>,
    /// Ids of the rounds counted, in the order they were charged.
    pub rounds: Vec<u64>,
}

impl LedgerEntry {
    fn to_json(&self) -> Value {
        json!({"orders": self.orders, "rdp": self.rdp, "rounds": self.rounds})
    }

    fn from_json(text: &str) -> Result<LedgerEntry, StoreError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| StoreError(format!("the privacy ledger is unreadable: {e}")))?;
        let floats =
            |k: &str| -> Option<Vec<f64>> { v[k].as_array()?.iter().map(Value::as_f64).collect() };
        let rounds: Option<Vec<u64>> = v["rounds"]
            .as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect());
        match (floats("orders"), floats("rdp"), rounds) {
            (Some(orders), Some(rdp), Some(rounds)) if orders.len() == rdp.len() => {
                Ok(LedgerEntry {
                    orders,
                    rdp,
                    rounds,
                })
            }
            _ => Err(StoreError(String::from(
                "the privacy ledger is malformed (orders, rdp and rounds must be arrays of equal length)",
            ))),
        }
    }
}

/// A round's privacy cost, charged to a population's ledger before the round unmasks.
#[derive(Debug, Clone)]
pub struct Charge {
    /// The population (one ledger per population).
    pub population: String,
    /// Rényi orders α; must equal the ledger's.
    pub orders: Vec<f64>,
    /// This round's RDP ε(α).
    pub rdp: Vec<f64>,
}

/// The store.
pub struct Store {
    db: Database,
}

/// One round's record: its state and its summary (the round JSON).
#[derive(Debug, Clone)]
pub struct RoundRecord {
    /// The round id.
    pub id: u64,
    /// Its state.
    pub state: RoundState,
    /// Its summary JSON (the same object as `rounds/<id>.json`).
    pub summary: Value,
}

impl Store {
    /// Opens (or creates) `dir/secagg.redb`. Rounds found in flight were interrupted by a crash:
    /// they are marked aborted and returned, so the caller can write their JSON.
    pub fn open(dir: &Path) -> Result<(Store, Vec<RoundRecord>), StoreError> {
        std::fs::create_dir_all(dir).map_err(err("creating the data directory"))?;
        let db = Database::create(dir.join("secagg.redb")).map_err(err("opening the store"))?;
        let store = Store { db };
        let interrupted: Vec<RoundRecord> = store
            .rounds()?
            .into_iter()
            .filter(|r| r.state == RoundState::InFlight)
            .collect();
        let mut recovered = Vec::new();
        for mut r in interrupted {
            r.summary["state"] = json!("aborted");
            r.summary["reason"] = json!(if r.summary["dp_charged"] == json!(true) {
                "the server stopped while the round was in flight, after its privacy cost was \
                 charged (before unmasking): it stays charged"
            } else {
                "the server stopped while the round was in flight"
            });
            r.state = RoundState::Aborted;
            store.put(&r)?;
            recovered.push(r);
        }
        Ok((store, recovered))
    }

    /// Allocates a fresh round id and records the round as in flight, durably, before any
    /// client hears of it.
    pub fn begin_round(&self, summary: impl Fn(u64) -> Value) -> Result<u64, StoreError> {
        let tx = self
            .db
            .begin_write()
            .map_err(err("starting a transaction"))?;
        let id = {
            let mut meta = tx.open_table(META).map_err(err("opening meta"))?;
            let id = meta
                .get(NEXT_ID)
                .map_err(err("reading the next round id"))?
                .map_or(1, |v| v.value());
            meta.insert(NEXT_ID, id + 1)
                .map_err(err("bumping the round id"))?;
            let mut rounds = tx.open_table(ROUNDS).map_err(err("opening rounds"))?;
            let mut s = summary(id);
            s["state"] = json!(RoundState::InFlight.name());
            rounds
                .insert(id, s.to_string().as_str())
                .map_err(err("recording the round"))?;
            id
        };
        tx.commit().map_err(err("committing the round start"))?;
        Ok(id)
    }

    /// Records a round's end (finished or aborted) with its summary.
    pub fn end_round(
        &self,
        id: u64,
        state: RoundState,
        mut summary: Value,
    ) -> Result<(), StoreError> {
        summary["state"] = json!(state.name());
        self.put(&RoundRecord { id, state, summary })
    }

    /// Charges round `id`'s privacy cost to the population's ledger and, in the same
    /// transaction, stores `summary` as its record, still in flight (the caller marks it
    /// `dp_charged`). Called before the round's unmask stage starts, so a round the server may
    /// have learned the sum of is always charged, whatever happens to it afterwards. Only a
    /// round in flight is charged (an ended one is refused), and a round already in the ledger
    /// is not charged again. Returns the ledger after the charge.
    pub fn charge_round(
        &self,
        id: u64,
        mut summary: Value,
        charge: &Charge,
    ) -> Result<LedgerEntry, StoreError> {
        if charge.orders.len() != charge.rdp.len()
            || charge.rdp.iter().any(|e| !(e.is_finite() && *e >= 0.0))
        {
            return Err(StoreError(String::from(
                "a privacy charge needs one finite, non-negative ε per order",
            )));
        }
        summary["state"] = json!(RoundState::InFlight.name());
        let tx = self
            .db
            .begin_write()
            .map_err(err("starting a transaction"))?;
        let entry = {
            let mut rounds = tx.open_table(ROUNDS).map_err(err("opening rounds"))?;
            let state = rounds
                .get(id)
                .map_err(err("reading a round"))?
                .map(|v| record(id, v.value()).state);
            if state != Some(RoundState::InFlight) {
                return Err(StoreError(format!(
                    "round {id} is not in flight: only a round that has not ended is charged"
                )));
            }
            let mut ledger = tx.open_table(LEDGER).map_err(err("opening the ledger"))?;
            let old = ledger
                .get(charge.population.as_str())
                .map_err(err("reading the ledger"))?
                .map(|v| LedgerEntry::from_json(v.value()))
                .transpose()?;
            let mut entry = old.unwrap_or_else(|| LedgerEntry {
                orders: charge.orders.clone(),
                rdp: vec![0.0; charge.orders.len()],
                rounds: Vec::new(),
            });
            if entry.orders != charge.orders {
                return Err(StoreError(format!(
                    "the ledger of population {:?} uses other Rényi orders than this round: \
                     refusing to mix them",
                    charge.population
                )));
            }
            if !entry.rounds.contains(&id) {
                entry
                    .rdp
                    .iter_mut()
                    .zip(&charge.rdp)
                    .for_each(|(a, b)| *a += b);
                entry.rounds.push(id);
                ledger
                    .insert(
                        charge.population.as_str(),
                        entry.to_json().to_string().as_str(),
                    )
                    .map_err(err("charging the ledger"))?;
            }
            rounds
                .insert(id, summary.to_string().as_str())
                .map_err(err("recording the round"))?;
            entry
        };
        tx.commit()
            .map_err(err("committing the round's privacy charge"))?;
        Ok(entry)
    }

    /// A population's ledger (None before its first charged round).
    pub fn ledger(&self, population: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let tx = self.db.begin_read().map_err(err("starting a read"))?;
        let table = match tx.open_table(LEDGER) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StoreError(format!("opening the ledger: {e}"))),
        };
        let v = table.get(population).map_err(err("reading the ledger"))?;
        v.map(|v| LedgerEntry::from_json(v.value())).transpose()
    }

    fn put(&self, r: &RoundRecord) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_write()
            .map_err(err("starting a transaction"))?;
        {
            let mut rounds = tx.open_table(ROUNDS).map_err(err("opening rounds"))?;
            rounds
                .insert(r.id, r.summary.to_string().as_str())
                .map_err(err("recording the round"))?;
        }
        tx.commit().map_err(err("committing the round"))
    }

    /// One round.
    pub fn round(&self, id: u64) -> Result<Option<RoundRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(err("starting a read"))?;
        let table = match tx.open_table(ROUNDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StoreError(format!("opening rounds: {e}"))),
        };
        let v = table.get(id).map_err(err("reading a round"))?;
        Ok(v.map(|v| record(id, v.value())))
    }

    /// All rounds, by id.
    pub fn rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(err("starting a read"))?;
        let table = match tx.open_table(ROUNDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError(format!("opening rounds: {e}"))),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(err("listing rounds"))? {
            let (k, v) = row.map_err(err("reading a round"))?;
            out.push(record(k.value(), v.value()));
        }
        Ok(out)
    }
}

fn record(id: u64, text: &str) -> RoundRecord {
    let summary: Value = serde_json::from_str(text).unwrap_or_else(|_| json!({"round_id": id}));
    let state = RoundState::parse(summary["state"].as_str().unwrap_or(""));
    RoundRecord { id, state, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_in_flight_rounds_abort_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (s, rec) = Store::open(dir.path()).unwrap();
        assert!(rec.is_empty());
        let a = s.begin_round(|id| json!({"round_id": id})).unwrap();
        s.end_round(
            a,
            RoundState::Finished,
            json!({"round_id": a, "survivors": ["x"]}),
        )
        .unwrap();
        let b = s.begin_round(|id| json!({"round_id": id})).unwrap();
        assert_eq!((a, b), (1, 2));
        drop(s);
        // Crash with round b in flight.
        let (s, rec) = Store::open(dir.path()).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].id, b);
        assert_eq!(s.round(b).unwrap().unwrap().state, RoundState::Aborted);
        assert_eq!(s.round(a).unwrap().unwrap().state, RoundState::Finished);
        assert_eq!(s.round(a).unwrap().unwrap().summary["survivors"][0], "x");
        assert_eq!(s.begin_round(|id| json!({"round_id": id})).unwrap(), 3);
        assert!(s.round(99).unwrap().is_none());
    }

    #[test]
    fn ledger_charges_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path()).unwrap();
        assert!(s.ledger("p").unwrap().is_none());
        let charge = Charge {
            population: "p".into(),
            orders: vec![2.0, 8.0],
            rdp: vec![0.5, 2.0],
        };
        let a = s.begin_round(|id| json!({"round_id": id})).unwrap();
        let e = s
            .charge_round(a, json!({"round_id": a, "dp_charged": true}), &charge)
            .unwrap();
        assert_eq!((e.rdp.clone(), e.rounds.clone()), (vec![0.5, 2.0], vec![a]));
        // Charged before unmasking: still in flight until the round ends.
        assert_eq!(s.round(a).unwrap().unwrap().state, RoundState::InFlight);
        // The same round again (a retried write): not counted twice.
        let e2 = s.charge_round(a, json!({"round_id": a}), &charge).unwrap();
        assert_eq!(e2, e);
        s.end_round(a, RoundState::Finished, json!({"round_id": a}))
            .unwrap();
        let b = s.begin_round(|id| json!({"round_id": id})).unwrap();
        s.charge_round(b, json!({"round_id": b}), &charge).unwrap();
        s.end_round(b, RoundState::Aborted, json!({"round_id": b}))
            .unwrap();
        assert_eq!(s.round(b).unwrap().unwrap().state, RoundState::Aborted);
        // A round in flight when the process dies, before its charge, is not charged.
        let c = s.begin_round(|id| json!({"round_id": id})).unwrap();
        drop(s);
        let (s, rec) = Store::open(dir.path()).unwrap();
        assert_eq!(rec[0].id, c);
        assert!(
            !rec[0].summary["reason"]
                .as_str()
                .unwrap()
                .contains("charged")
        );
        let e = s.ledger("p").unwrap().unwrap();
        assert_eq!((e.rdp, e.rounds), (vec![1.0, 4.0], vec![a, b]));
        assert!(s.ledger("other").unwrap().is_none());
        // Other orders, or a bad ε, are refused and change nothing.
        let d = s.begin_round(|id| json!({"round_id": id})).unwrap();
        let other = Charge {
            orders: vec![3.0, 8.0],
            ..charge.clone()
        };
        assert!(s.charge_round(d, json!({}), &other).is_err());
        let nan = Charge {
            rdp: vec![f64::NAN, 1.0],
            ..charge
        };
        assert!(s.charge_round(d, json!({}), &nan).is_err());
        assert_eq!(s.ledger("p").unwrap().unwrap().rounds, vec![a, b]);
        assert_eq!(s.round(d).unwrap().unwrap().state, RoundState::InFlight);
    }

    /// Issue 14, finding 3: a round charged before unmasking and interrupted by a crash stays
    /// charged, exactly once, and its record says so after the restart.
    #[test]
    fn a_round_charged_before_a_crash_stays_charged_once() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path()).unwrap();
        let charge = Charge {
            population: "p".into(),
            orders: vec![2.0, 8.0],
            rdp: vec![0.5, 2.0],
        };
        let a = s.begin_round(|id| json!({"round_id": id})).unwrap();
        s.charge_round(a, json!({"round_id": a, "dp_charged": true}), &charge)
            .unwrap();
        drop(s); // crash before the unmask stage
        let (s, rec) = Store::open(dir.path()).unwrap();
        assert_eq!(rec.len(), 1);
        let r = s.round(a).unwrap().unwrap();
        assert_eq!(r.state, RoundState::Aborted);
        assert_eq!(r.summary["dp_charged"], true);
        let reason = r.summary["reason"].as_str().unwrap();
        assert!(
            reason.contains("in flight") && reason.contains("stays charged"),
            "{reason}"
        );
        // A replayed charge of the same id after the restart is refused and counts nothing.
        let e = s
            .charge_round(a, json!({"round_id": a}), &charge)
            .unwrap_err();
        assert!(e.0.contains("not in flight"), "{e}");
        assert!(s.charge_round(99, json!({}), &charge).is_err());
        drop(s);
        let (s, rec) = Store::open(dir.path()).unwrap();
        assert!(rec.is_empty());
        assert_eq!(s.round(a).unwrap().unwrap().state, RoundState::Aborted);
        let e = s.ledger("p").unwrap().unwrap();
        assert_eq!((e.rdp, e.rounds), (vec![0.5, 2.0], vec![a]));
    }
}
