//! A round run as cohorts without any orchestrator: four `secagg server` processes, one per
//! cohort of one global round, each reporting the port it bound in its ready file; one server
//! killed (SIGKILL) while its clients upload masked inputs; `secagg combine` over the others
//! equals the plain sum of their survivors' inputs. And the minimum cohort size: the server's
//! promise is in the configuration, and a client's floor refuses a round that promises less.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secagg_sim::npy::{self, NpyArray};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_secagg");
const DIM: usize = 16;

/// A server process, killed when dropped; its log goes to `<data>/server.log`.
struct Shard {
    child: Child,
    addr: String,
    data: PathBuf,
}

impl Drop for Shard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one cohort's server on port 0 and reads the address from its ready file.
fn start_shard(root: &Path, index: u32, extra: &[&str]) -> Shard {
    let data = root.join(format!("cohort{index}"));
    std::fs::create_dir_all(&data).unwrap();
    let ready = data.join("ready.json");
    let log = std::fs::File::create(data.join("server.log")).unwrap();
    let index_s = index.to_string();
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(["--clients", "3", "--min-clients", "3", "--dim", "16"])
        .args(["--rounds", "1", "--stage-timeout", "30s"])
        .args(["--global-round-id", "g-7", "--cohort-index", &index_s])
        .arg("--ready-file")
        .arg(&ready)
        .args(extra)
        .stderr(log)
        .spawn()
        .unwrap();
    let t = Instant::now();
    let info: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "server {index} exited ({status}) before it was ready: {}",
                std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
            );
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(info["pid"], child.id());
    assert_eq!(info["cohort"]["global_round_id"], "g-7");
    assert_eq!(info["cohort"]["cohort_index"], index);
    let addr = info["address"].as_str().unwrap().to_string();
    assert!(!addr.ends_with(":0"), "the ready file names the bound port");
    Shard { child, addr, data }
}

fn input(dir: &Path, name: &str, seed: u32) -> PathBuf {
    let p = dir.join(format!("{name}.npy"));
    let v = (0..DIM as u32)
        .map(|j| seed.wrapping_mul(7919) ^ (j * 131))
        .collect();
    npy::write_file(&p, &NpyArray::U32(v)).unwrap();
    p
}

fn client(addr: &str, input: &Path, name: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["client", "--server", &format!("http://{addr}"), "--input"])
        .arg(input)
        .args(["--name", name, "--timeout", "60s", "--connect-retry", "0s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn round_json(data: &Path) -> Value {
    let text = std::fs::read_to_string(data.join("rounds/1.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn four_cohort_servers_one_killed_during_masked_input_combine_to_the_plain_sum() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let shards: Vec<Shard> = (0..4)
        .map(|i| start_shard(tmp.path(), i, &["--min-cohort-size", "3"]))
        .collect();
    let mut expected = vec![0u64; DIM];
    let mut finishing = Vec::new();
    let mut victims = Vec::new();
    let mut paused = None;
    for (c, shard) in shards.iter().enumerate() {
        for j in 0..3 {
            let name = format!("c{c}-{j}");
            let path = input(&inputs, &name, (c * 3 + j) as u32 + 1);
            if c == 2 {
                // Cohort 2's server dies while its clients upload: one client freezes when the
                // masked-input request reaches it, and then the server is killed.
                let extra: &[&str] = if j == 0 {
                    &["--min-cohort-size", "3", "--pause-at", "masked-input"]
                } else {
                    &["--min-cohort-size", "3"]
                };
                let mut child = client(&shard.addr, &path, &name, extra);
                if j == 0 {
                    paused = Some(BufReader::new(child.stderr.take().unwrap()));
                }
                victims.push(child);
                continue;
            }
            let npy::NpyArray::U32(v) = npy::read(&path).unwrap() else {
                unreachable!()
            };
            for (e, x) in expected.iter_mut().zip(v) {
                *e += u64::from(x);
            }
            finishing.push(client(
                &shard.addr,
                &path,
                &name,
                &["--min-cohort-size", "3"],
            ));
        }
    }
    // Wait until cohort 2 is in its masked-input stage, then SIGKILL its server.
    let mut line = String::new();
    let mut reader = paused.unwrap();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "client 2-0 ended");
        if line.contains("paused at stage") {
            break;
        }
    }
    let mut shards = shards;
    let killed = shards.remove(2);
    let killed_data = killed.data.clone();
    drop(killed);
    for c in finishing {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for mut v in victims {
        let _ = v.kill();
        let _ = v.wait();
    }
    assert!(
        !killed_data.join("rounds/1.json").exists(),
        "the killed shard wrote no result"
    );
    for s in &mut shards {
        assert!(s.child.wait().unwrap().success());
        let r = round_json(&s.data);
        assert_eq!(r["parameters"]["global_round_id"], "g-7");
        assert_eq!(r["parameters"]["min_cohort_size"], 3);
        assert!(r["parameters"]["min_clients"].as_u64().unwrap() >= 3);
        assert_eq!(r["survivors"].as_array().unwrap().len(), 3);
    }
    let out_npy = tmp.path().join("global.npy");
    let mut cmd = Command::new(BIN);
    cmd.args(["combine", "--json", "--min-cohorts", "3", "--output"])
        .arg(&out_npy);
    for s in &shards {
        cmd.arg("--cohort").arg(&s.data);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["survivors"], 9);
    assert_eq!(report["parameters"]["global_round_id"], "g-7");
    let NpyArray::U64(global) = npy::read(&out_npy).unwrap() else {
        panic!("a global sum is uint64")
    };
    assert_eq!(global, expected);

    // The dead shard's directory holds no round to combine: passing it is an error naming it,
    // so an operator cannot mistake a dead cohort for an empty one.
    let out = Command::new(BIN)
        .args(["combine", "--output"])
        .arg(tmp.path().join("again.npy"))
        .arg("--cohort")
        .arg(&shards[0].data)
        .arg("--cohort")
        .arg(&killed_data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cohort2"), "{err}");
}

#[test]
fn a_client_refuses_a_cohort_smaller_than_its_floor() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    // No promise: an honest-but-curious round of 3 needs only t = 2 survivors.
    let shard = start_shard(tmp.path(), 0, &[]);
    let a = client(&shard.addr, &input(&inputs, "a", 1), "a", &[]);
    let b = client(&shard.addr, &input(&inputs, "b", 2), "b", &[]);
    let careful = client(
        &shard.addr,
        &input(&inputs, "c", 3),
        "c",
        &["--min-cohort-size", "3"],
    );
    let out = careful.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("min_clients 2 is below my policy's 3"),
        "{err}"
    );
    for c in [a, b] {
        let _ = c.wait_with_output();
    }

    // With the promise, the same client takes part.
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let mut shard = start_shard(tmp.path(), 0, &["--min-cohort-size", "3"]);
    let clients: Vec<Child> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let p = input(&inputs, n, i as u32);
            client(&shard.addr, &p, n, &["--min-cohort-size", "3"])
        })
        .collect();
    for c in clients {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(shard.child.wait().unwrap().success());
    assert_eq!(round_json(&shard.data)["parameters"]["min_clients"], 3);
}

#[test]
fn a_promise_larger_than_the_cohort_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .args(["--clients", "3", "--min-clients", "3", "--dim", "4"])
        .args(["--min-cohort-size", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("minimum cohort size must be in 2..=3"),
        "{err}"
    );
}
