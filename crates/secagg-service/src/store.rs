//! The server's embedded store (redb, pure Rust): round ids and each round's state, committed
//! durably before and after every round, so a crash loses nothing that finished, an in-flight
//! round is recorded as aborted on restart, and ids are never reused.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Value, json};

const ROUNDS: TableDefinition<u64, &str> = TableDefinition::new("rounds");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
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
            r.summary["reason"] = json!("the server stopped while the round was in flight");
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
}
