//! The long-running commands log through `tracing`: `--log-format json` gives one JSON object
//! per line on stderr (level, message, fields such as the round and its survivors), and
//! `--log-level` filters them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secagg_sim::npy::{self, NpyArray};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_secagg");

/// Runs one round of 3 clients against a server started with `log_args`; returns the server's
/// and the first client's stderr.
fn one_round(dir: &Path, log_args: &[&str]) -> (String, String) {
    let ready = dir.join("ready.json");
    let mut server = Command::new(BIN)
        .args(log_args)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--clients", "3", "--min-clients", "3", "--dim", "3"])
        .args(["--rounds", "1", "--ready-file"])
        .arg(&ready)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let addr = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            let v: Value = serde_json::from_str(&text).unwrap();
            break v["address"].as_str().unwrap().to_string();
        }
        if let Some(status) = server.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the server exited ({status}) before it was ready: {err}");
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let input = dir.join(format!("in{i}.npy"));
            npy::write_file(&input, &NpyArray::U32(vec![i, 2 * i, 3 * i])).unwrap();
            Command::new(BIN)
                .args(log_args)
                .args(["client", "--server", &format!("http://{addr}"), "--input"])
                .arg(&input)
                .args(["--name", &format!("c{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut first_err = None;
    for c in clients {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        first_err.get_or_insert(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let out = server.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        first_err.unwrap(),
    )
}

#[test]
fn json_logs_are_one_object_per_line_with_levels_and_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, client) = one_round(tmp.path(), &["--log-format", "json"]);
    let events: Vec<Value> = server
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let listening = events
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("listening on"))
        .unwrap();
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(listening["timestamp"].is_string());
    let finished = events
        .iter()
        .find(|e| e["outcome"] == "finished")
        .unwrap_or_else(|| panic!("no round-end event in {server}"));
    assert_eq!(finished["round"], 1);
    assert_eq!(finished["survivors"], 3);
    assert_eq!(finished["dropouts"], 0);
    for l in client.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
}

#[test]
fn the_log_level_filters_and_text_is_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = one_round(tmp.path(), &[]);
    assert!(server.contains("INFO"), "{server}");
    assert!(server.contains("listening on 127.0.0.1:"), "{server}");
    assert!(server.contains("round 1 finished: 3 survivors"), "{server}");

    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = one_round(tmp.path(), &["--log-level", "warn"]);
    assert!(!server.contains("listening on"), "{server}");

    let out = Command::new(BIN)
        .args([
            "--log-level",
            "loud",
            "combine",
            "--cohort",
            "x",
            "--output",
            "y",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid log level"));
}
