//! `secagg server --validate-l2 B` and `secagg client` as processes on loopback (issue 11,
//! step 10): a validated round releases the honest clients' exact sum, and a client above the
//! bound refuses with its norm and the bound and sends nothing. (The cheaters, driven through
//! the same service client code, are in crates/secagg-service/tests/validated.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use secagg_sim::npy::{self, NpyArray};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_secagg");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_l2_needs_the_malicious_model_with_a_pki_and_a_whole_bound() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let base = [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--clients",
        "5",
        "--min-clients",
        "5",
        "--dim",
        "10",
        "--data-dir",
        data,
    ];
    let out = run(&[&base[..], &["--validate-l2", "100"]].concat());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--validate-l2 needs --threat malicious with --pki"),
        "{err}"
    );
    for bad in ["0", "2.5", "-3", "x"] {
        let flag = format!("--validate-l2={bad}");
        let out = run(&[&base[..], &[flag.as_str()]].concat());
        assert!(!out.status.success(), "--validate-l2 {bad}");
        assert!(stderr(&out).contains("--validate-l2"), "{}", stderr(&out));
    }
    for bad in ["0", "65", "two"] {
        let flag = format!("--prove-threads={bad}");
        let out = run(&[
            "client",
            "--server",
            "http://127.0.0.1:1",
            "--input",
            "x.npy",
            &flag,
        ]);
        assert!(!out.status.success(), "--prove-threads {bad}");
        assert!(stderr(&out).contains("--prove-threads"), "{}", stderr(&out));
    }
}

/// Starts the server and returns it with its address (read from its log).
fn start_server(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "server exited before listening"
        );
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(',').next().unwrap().trim().to_string();
        }
    };
    std::thread::spawn(move || {
        let mut l = String::new();
        while err.read_line(&mut l).unwrap_or(0) > 0 {
            eprint!("[server] {l}");
            l.clear();
        }
    });
    (child, addr)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `secagg server` for one validated round of `n` clients (PKI, malicious model, up to 40%
/// dropouts) with bound `bound`, on an ephemeral port.
fn server_args(data: &Path, roster: &Path, n: usize, dim: usize, bound: &str) -> Vec<String> {
    let n = n.to_string();
    let dim = dim.to_string();
    [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--clients",
        &n,
        "--min-clients",
        "2",
        "--dim",
        &dim,
        "--rounds",
        "1",
        "--threat",
        "malicious",
        "--assumed-dropout",
        "0.4",
        "--pki",
        roster.to_str().unwrap(),
        "--validate-l2",
        bound,
    ]
    .map(String::from)
    .to_vec()
}

/// `n` identity keys k0.. in `d` and their roster file.
fn keygen(d: &Path, n: usize) -> PathBuf {
    let roster = d.join("roster.txt");
    for i in 0..n {
        let out = run(&[
            "keygen",
            "--out",
            d.join(format!("k{i}")).to_str().unwrap(),
            "--roster",
            roster.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    roster
}

/// Runs `secagg client` i (name c{i}, key k{i}) on each input (and its `--weight`), all at
/// once, and waits for them.
fn run_clients(
    d: &Path,
    addr: &str,
    roster: &Path,
    inputs: Vec<(NpyArray, Option<u64>)>,
) -> Vec<Output> {
    let clients: Vec<Child> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, (arr, weight))| {
            let p = d.join(format!("in{i}.npy"));
            npy::write_file(&p, &arr).unwrap();
            let mut cmd = Command::new(BIN);
            cmd.args([
                "client",
                "--server",
                &format!("http://{addr}"),
                "--input",
                p.to_str().unwrap(),
                "--name",
                &format!("c{i}"),
                "--identity",
                d.join(format!("k{i}")).to_str().unwrap(),
                "--roster",
                roster.to_str().unwrap(),
                "--timeout",
                "120s",
            ]);
            if let Some(w) = weight {
                cmd.args(["--weight", &w.to_string()]);
            }
            // Client 0 proves on one thread, the others on two (at d ≥ 300 their first rounds'
            // MSMs and folds really split): every proof must verify at the server.
            cmd.args(["--prove-threads", if i == 0 { "1" } else { "2" }]);
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    clients
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn a_validated_round_over_the_cli_releases_the_sum_and_a_client_above_the_bound_refuses() {
    let n = 6;
    let dim = 300;
    let big = 4; // this client's input has L2 norm 2000 > B = 1000
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let roster = keygen(d, n);
    let data = d.join("data");
    let args = server_args(&data, &roster, n, dim, "1000");
    let (mut server, addr) = start_server(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let inputs: Vec<Vec<u32>> = (0..n)
        .map(|i| {
            if i == big {
                let mut v = vec![0u32; dim];
                v[0] = 2000;
                v
            } else {
                (0..dim as u32).map(|j| (i as u32 * 7 + j) % 40).collect()
            }
        })
        .collect();
    let arrays = inputs
        .iter()
        .map(|v| (NpyArray::U32(v.clone()), None))
        .collect();
    let outs = run_clients(d, &addr, &roster, arrays);
    assert!(wait_exit(&mut server, Duration::from_secs(60)).success());
    for (i, o) in outs.iter().enumerate() {
        if i == big {
            assert!(!o.status.success());
            let err = stderr(o);
            for needle in ["L2 norm 2000.0", "bound 1000.0", "nothing was sent"] {
                assert!(err.contains(needle), "{needle:?} not in {err}");
            }
        } else {
            assert!(o.status.success(), "client {i}: {}", stderr(o));
        }
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("rounds/1.json")).unwrap())
            .unwrap();
    assert_eq!(json["state"], "finished", "{json:#}");
    assert_eq!(json["parameters"]["validation"]["bound"], 1000);
    assert_eq!(json["validation"]["rejected"], Value::Array(Vec::new()));
    let sum = npy::read(&data.join("rounds/1.npy")).unwrap().into_u64();
    let want: Vec<u64> = (0..dim)
        .map(|j| {
            (0..n)
                .filter(|i| *i != big)
                .map(|i| u64::from(inputs[i][j]))
                .sum()
        })
        .collect();
    assert_eq!(sum, want);
}

/// `--validate-l2 B --clip B`: a validated weighted mean of floats. A client whose update is
/// above B clips it (and says so) instead of refusing; the release is the weighted mean of the
/// clipped updates at the validated scale.
#[test]
fn a_validated_float_round_over_the_cli_clips_and_releases_the_weighted_mean() {
    let n = 5;
    let dim = 20;
    // This client's update has L2 norm 2 > B = 0.5, and its weight is --max-weight: its
    // encoding sits at the corner of the bound (only the validated scale keeps it inside).
    let big = 2;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let roster = keygen(d, n);
    let data = d.join("data");
    let mut args = server_args(&data, &roster, n, dim, "0.5");
    args.extend(["--max-weight", "3"].map(String::from));
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A per-value clip other than B is refused before the server listens.
    let out = run(&[&args[..], &["--clip", "1"]].concat());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("give --clip 0.5"), "{}", stderr(&out));
    args.extend(["--clip", "0.5"]);
    let (mut server, addr) = start_server(&args);
    let updates: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let v: Vec<f64> = (0..dim).map(|j| ((i * 3 + j) % 7) as f64 - 3.0).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let want = if i == big { 2.0 } else { 0.1 * (i + 1) as f64 };
            v.iter().map(|x| x * want / norm).collect()
        })
        .collect();
    let weights: Vec<u64> = (0..n as u64).map(|i| 1 + i % 3).collect();
    assert_eq!(weights[big], 3);
    let arrays = updates
        .iter()
        .zip(&weights)
        .map(|(v, w)| (NpyArray::F64(v.clone()), Some(*w)))
        .collect();
    let outs = run_clients(d, &addr, &roster, arrays);
    assert!(wait_exit(&mut server, Duration::from_secs(60)).success());
    for (i, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "client {i}: {}", stderr(o));
    }
    let err = stderr(&outs[big]);
    assert!(err.contains("clipped to it"), "{err}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("rounds/1.json")).unwrap())
            .unwrap();
    assert_eq!(json["state"], "finished", "{json:#}");
    assert_eq!(json["parameters"]["validation"]["bound"], 0.5);
    assert_eq!(json["validation"]["rejected"], Value::Array(Vec::new()));
    let scale = json["parameters"]["float"]["scale"].as_f64().unwrap();
    let total: u64 = weights.iter().sum();
    assert_eq!(json["total_weight"], total);
    let mean = npy::read(&data.join("rounds/1.npy")).unwrap().into_f64();
    assert_eq!(mean.len(), dim);
    for (j, got) in mean.iter().enumerate() {
        let want: f64 = (0..n)
            .map(|i| {
                let norm = updates[i].iter().map(|x| x * x).sum::<f64>().sqrt();
                let f = if norm > 0.5 { 0.5 / norm } else { 1.0 };
                weights[i] as f64 * updates[i][j] * f
            })
            .sum::<f64>()
            / total as f64;
        assert!(
            (got - want).abs() <= 1.0 / scale,
            "coordinate {j}: {got} against {want}"
        );
    }
}
