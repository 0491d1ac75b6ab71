//! `secagg bench` as a user runs it: this machine's limits measured in the same run, every row
//! set against lower bounds from them, and no figure stored from another machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;

/// A bound may sit this far above a measurement before the check calls it wrong: the limits
/// and the rounds are timed at different moments on a machine other processes share.
const TOLERANCE: f64 = 0.05;
/// Runs of one command before a bound above its measurement counts as a failure (a slow
/// moment while the limits were measured makes the bounds too high for that run only).
const ATTEMPTS: usize = 3;
/// Fields of the old output that compared against figures from another machine.
const STORED: [&str; 4] = ["flower_s", "budget_s", "within_budget", "speedup"];
/// (measured, limit, ratio) field triples of a row.
const PAIRS: [(&str, &str, &str); 4] = [
    ("round_s", "limit_round_s", "ratio_round"),
    ("server_s", "limit_server_s", "ratio_server"),
    ("client_ms", "limit_client_ms", "ratio_client"),
    (
        "masked_input_client_ms",
        "limit_masked_input_client_ms",
        "ratio_masked_input_client",
    ),
];

fn secagg(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_secagg"))
        .args(args)
        .output()
        .expect("run secagg");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(args: &[&str]) -> Value {
    let out = secagg(args);
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.trim().lines().count(), 1, "exactly one JSON line: {s}");
    serde_json::from_str(s.trim()).expect("valid JSON")
}

fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

/// Every key anywhere in `v`.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

/// Checks everything that must hold in any run; returns the worst measured / limit ratio
/// (which timing noise alone could push slightly under 1).
fn check(v: &Value, rows: usize) -> f64 {
    let mut all = Vec::new();
    keys(v, &mut all);
    for k in STORED {
        assert!(!all.iter().any(|x| x == k), "stale field {k} in {v}");
    }
    let m = &v["machine"];
    assert!(m["cores"].as_u64().unwrap() >= 1);
    for (name, unit) in [
        ("keystream", "bytes/s"),
        ("memory_bandwidth", "bytes/s"),
        ("x25519", "agreements/s"),
    ] {
        let value = positive(&m[name]["value"], name);
        let best = positive(&m[name]["best"], name);
        assert!(
            best >= value,
            "{name}: fastest sample {best} < median {value}"
        );
        assert_eq!(m[name]["unit"], unit);
        assert_eq!(m[name]["per"], "core");
    }
    assert_eq!(m["keystream"]["prg"], "aes128-ctr");
    assert!(v["model"].as_str().unwrap().contains("R_ks"));
    let rs = v["rows"].as_array().unwrap();
    assert_eq!(rs.len(), rows);
    let mut worst = f64::INFINITY;
    for r in rs {
        let n = r["n"].as_u64().unwrap();
        assert_eq!(
            r["survivors"].as_u64().unwrap() + r["dropped"].as_u64().unwrap(),
            n
        );
        for (measured, limit, ratio) in PAIRS {
            let (x, l, q) = (
                positive(&r[measured], measured),
                positive(&r[limit], limit),
                positive(&r[ratio], ratio),
            );
            assert!(
                (q - x / l).abs() <= 1e-9 * q,
                "{ratio} = {q}, not {x} / {l}"
            );
            worst = worst.min(q);
        }
        for w in [
            "client_keystream_bytes",
            "client_x25519",
            "server_masked_input_bytes",
            "server_keystream_bytes",
        ] {
            positive(&r["work"][w], w);
        }
        // The whole client includes its masked-input stage; so do the bounds.
        assert!(r["limit_client_ms"].as_f64() > r["limit_masked_input_client_ms"].as_f64());
    }
    worst
}

/// Runs `args` until no bound exceeds its measurement (beyond [`TOLERANCE`]), at most
/// [`ATTEMPTS`] times; returns the last output.
fn bench_json(args: &[&str], rows: usize) -> Value {
    let mut worst = 0.0;
    for _ in 0..ATTEMPTS {
        let v = json(args);
        worst = check(&v, rows);
        if worst >= 1.0 - TOLERANCE {
            return v;
        }
    }
    panic!("{args:?}: a lower bound exceeds its measurement (ratio {worst}) in every attempt");
}

// One test, its runs one after another: concurrent rounds would slow each other's timings.
#[test]
fn bench_sets_every_row_against_this_machines_limits() {
    // --quick: the complete graph (every client X25519-bound).
    let v = bench_json(&["bench", "--quick", "--repeat", "1", "--json"], 1);
    assert_eq!(v["rows"][0]["graph"], "K100/t51");

    // Row 2: 10% dropouts, so the server regenerates their pairwise masks.
    let v = bench_json(&["bench", "--rows", "2", "--repeat", "1", "--json"], 1);
    let r = &v["rows"][0];
    assert_eq!(r["dropped"], 10);
    assert_eq!(r["k"], 20);
    positive(&r["work"]["server_x25519_at_least"], "server X25519");

    // The table: the limits first, then the rows, no verdict against stored figures.
    let out = secagg(&["bench", "--rows", "6", "--repeat", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let machine = text.find("key stream").expect("key-stream limit printed");
    let row = text.find("K100/t51").expect("row printed");
    assert!(machine < row, "limits come before the rows:\n{text}");
    for line in ["memory bandwidth", "X25519", "limit s", "client ms"] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    for stale in ["Flower", "OVER", "budget", "speedup"] {
        assert!(!text.contains(stale), "{stale:?} still printed:\n{text}");
    }

    // Row numbers are checked.
    let out = Command::new(env!("CARGO_BIN_EXE_secagg"))
        .args(["bench", "--rows", "7", "--json"])
        .output()
        .expect("run secagg");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("numbered 1..=6"));
}
