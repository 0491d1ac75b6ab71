//! The `secagg` binary as a user runs it: outputs, .npy round trips, and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use secagg_sim::npy::{self, NpyArray};

fn secagg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secagg"))
        .args(args)
        .output()
        .expect("run secagg")
}

fn json(out: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.trim().lines().count(), 1, "exactly one JSON line: {s}");
    serde_json::from_str(s.trim()).expect("valid JSON")
}

fn refused(args: &[&str], needle: &str) {
    let out = secagg(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
}

#[test]
fn default_simulation_prints_one_json_object() {
    let out = secagg(&[
        "simulate",
        "--clients",
        "12",
        "--dim",
        "100",
        "--dropout",
        "0.25",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["aggregate_ok"], true);
    assert_eq!(v["survivors"].as_array().unwrap().len(), 9);
    assert_eq!(v["dropped"].as_array().unwrap().len(), 3);
    assert!(v["k"].as_u64().unwrap() >= v["t"].as_u64().unwrap());
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    assert!(
        stages
            .iter()
            .all(|s| s["server_s"].is_number() && s["bytes_up_per_client"].is_number())
    );
    // Human output too.
    let out = secagg(&["simulate", "--clients", "5", "--dim", "10"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("matches the plaintext computation"));
}

#[test]
fn dropouts_at_every_stage_from_the_cli() {
    for (stage, threat) in [
        ("advertise", "honest-but-curious"),
        ("share", "honest-but-curious"),
        ("masked-input", "honest-but-curious"),
        ("consistency", "malicious"),
        ("unmask", "malicious"),
    ] {
        let out = secagg(&[
            "simulate",
            "--clients",
            "30",
            "--dim",
            "64",
            "--dropout",
            "0.1",
            "--dropout-stage",
            stage,
            "--threat",
            threat,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{stage}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(v["aggregate_ok"], true, "{stage}");
        let dropped = v["dropped"].as_array().unwrap().len();
        let after_upload = matches!(stage, "consistency" | "unmask");
        assert_eq!(dropped, if after_upload { 0 } else { 3 }, "{stage}");
    }
}

fn write_inputs(dir: &Path, arrays: &[NpyArray]) {
    for (i, a) in arrays.iter().enumerate() {
        npy::write_file(&dir.join(format!("client_{i:03}.npy")), a).unwrap();
    }
}

#[test]
fn unsigned_npy_inputs_sum_mod_2b() {
    let dir = tempfile::tempdir().unwrap();
    let arrays: Vec<NpyArray> = (0..6u32)
        .map(|i| NpyArray::U32((0..50).map(|j| i * 1000 + j).collect()))
        .collect();
    write_inputs(dir.path(), &arrays);
    let out_path = dir.path().join("sum.npy");
    let out = secagg(&[
        "simulate",
        "--inputs",
        dir.path().to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["aggregate_ok"], true);
    let want: Vec<u32> = (0..50)
        .map(|j| (0..6u32).map(|i| i * 1000 + j).sum())
        .collect();
    assert_eq!(npy::read(&out_path).unwrap(), NpyArray::U32(want));
}

#[test]
fn float_npy_inputs_give_the_weighted_mean() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let arrays: Vec<NpyArray> = (0..5)
        .map(|i| NpyArray::F32(vec![i as f32 * 0.25 - 0.5, 1.0, -1.0]))
        .collect();
    write_inputs(&inputs, &arrays);
    let weights = dir.path().join("w.npy");
    npy::write_file(&weights, &NpyArray::U64(vec![1, 2, 3, 4, 10])).unwrap();
    let out_path = dir.path().join("mean.npy");
    let out = secagg(&[
        "simulate",
        "--inputs",
        inputs.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["aggregate_ok"], true);
    assert_eq!(v["total_weight"], 20);
    let NpyArray::F64(mean) = npy::read(&out_path).unwrap() else {
        panic!("float64 output expected")
    };
    let want0 = (0..5)
        .map(|i| [1., 2., 3., 4., 10.][i] * (i as f64 * 0.25 - 0.5))
        .sum::<f64>()
        / 20.0;
    assert!((mean[0] - want0).abs() < 1e-6, "{} vs {want0}", mean[0]);
    assert!((mean[1] - 1.0).abs() < 1e-6 && (mean[2] + 1.0).abs() < 1e-6);
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_str().unwrap();
    write_inputs(
        dir.path(),
        &[NpyArray::U32(vec![1, 2, 3]), NpyArray::U32(vec![1, 2])],
    );
    refused(&["simulate", "--inputs", p], "same length");
    write_inputs(
        dir.path(),
        &[
            NpyArray::U32(vec![1, 2, 3]),
            NpyArray::F64(vec![1., 2., 3.]),
        ],
    );
    refused(
        &["simulate", "--inputs", p],
        "all unsigned integers or all floats",
    );
    std::fs::write(dir.path().join("client_001.npy"), b"\x93NUMPY garbage").unwrap();
    refused(&["simulate", "--inputs", p], "client_001.npy");
    let mut f = std::fs::read(dir.path().join("client_000.npy")).unwrap();
    f.truncate(f.len() - 2);
    std::fs::write(dir.path().join("client_001.npy"), f).unwrap();
    refused(&["simulate", "--inputs", p], "truncated");
    refused(
        &["simulate", "--inputs", "/nonexistent/dir"],
        "cannot read --inputs",
    );
    let signed = dir.path().join("client_001.npy");
    let mut bytes = Vec::new();
    npy::write(&mut bytes, &NpyArray::U32(vec![1, 2, 3])).unwrap();
    let at = bytes.windows(3).position(|w| w == b"<u4").unwrap();
    bytes[at + 1] = b'i';
    std::fs::write(&signed, &bytes).unwrap();
    refused(&["simulate", "--inputs", p], "int32");
    write_inputs(
        dir.path(),
        &[NpyArray::U8(vec![255; 4]), NpyArray::U8(vec![255; 4])],
    );
    refused(&["simulate", "--inputs", p, "--bits", "8"], "--bits 9");
    refused(
        &["simulate", "--inputs", p, "--clients", "3"],
        "drop --clients",
    );
    write_inputs(
        dir.path(),
        &[NpyArray::F64(vec![f64::NAN]), NpyArray::F64(vec![1.0])],
    );
    refused(&["simulate", "--inputs", p], "non-finite");
}

#[test]
fn bad_flags_and_unsafe_parameters_are_refused() {
    refused(
        &["simulate", "--bits", "0", "--clients", "4", "--dim", "4"],
        "--bits",
    );
    refused(
        &["simulate", "--bits", "65", "--clients", "4", "--dim", "4"],
        "--bits",
    );
    refused(&["simulate", "--clients", "1"], "at least 2");
    refused(&["simulate", "--dim", "0", "--clients", "4"], "--dim");
    refused(
        &[
            "simulate",
            "--clients",
            "10",
            "--dim",
            "4",
            "--dropout",
            "1.5",
        ],
        "--dropout",
    );
    refused(
        &[
            "simulate",
            "--clients",
            "10",
            "--dim",
            "4",
            "--graph",
            "harary",
            "--degree",
            "5",
            "--threshold",
            "3",
        ],
        "even degree",
    );
    refused(
        &[
            "simulate",
            "--clients",
            "10",
            "--dim",
            "4",
            "--threshold",
            "1",
        ],
        "threshold",
    );
    refused(
        &[
            "simulate",
            "--clients",
            "10",
            "--dim",
            "4",
            "--dropout",
            "0.1",
            "--dropout-stage",
            "consistency",
        ],
        "--threat malicious",
    );
    refused(
        &[
            "simulate",
            "--clients",
            "10",
            "--dim",
            "4",
            "--assumed-corrupt",
            "1.2",
        ],
        "--assumed-corrupt",
    );
    refused(&["simulate", "--frobnicate"], "unexpected argument");
}

#[test]
fn weaker_parameters_need_an_explicit_flag() {
    let args = [
        "simulate",
        "--clients",
        "1000",
        "--dim",
        "8",
        "--graph",
        "harary",
        "--degree",
        "20",
        "--threshold",
        "11",
    ];
    refused(&args, "--accept-weaker-params");
    let mut ok = args.to_vec();
    ok.extend(["--accept-weaker-params", "--json"]);
    let out = secagg(&ok);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("weaker"))
    );
    // Chosen parameters reproduce the threat model's (k, t) = (30, 17) for n = 1,000.
    let out = secagg(&["simulate", "--clients", "1000", "--dim", "8", "--json"]);
    let v = json(&out);
    assert_eq!(
        (v["k"].as_u64().unwrap(), v["t"].as_u64().unwrap()),
        (30, 17)
    );
}

#[test]
fn an_aborted_round_exits_nonzero_and_says_why() {
    let out = secagg(&[
        "simulate",
        "--clients",
        "10",
        "--dim",
        "4",
        "--dropout",
        "0.9",
        "--assumed-dropout",
        "0.05",
        "--json",
    ]);
    assert!(!out.status.success());
    let v = json(&out);
    assert!(
        v["aborted"]
            .as_str()
            .unwrap()
            .contains("round aborted at stage masked-input")
    );
    assert_eq!(v["aggregate_ok"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("round aborted"));
}

#[test]
fn simulate_with_dp_reports_epsilon_and_the_error_of_the_private_mean() {
    let base = ["simulate", "--clients", "12", "--dim", "100", "--json"];
    let out = secagg(&[&base[..], &["--dp", "ddg", "--dp-rounds", "10"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["aggregate_ok"], true);
    let dp = &v["dp"];
    assert_eq!(dp["noise"], "ddg");
    assert_eq!(dp["padded_dim"], 128);
    let eps10 = dp["epsilon"].as_f64().unwrap();
    assert!(eps10.is_finite() && eps10 > 0.0);
    assert!(dp["rmse_vs_clipped"].as_f64().unwrap() > 0.0);
    assert!(dp["expected_rmse"].as_f64().unwrap() > 0.0);
    // More survivors required: less noise per client, so a smaller error is predicted.
    let out = secagg(&[&base[..], &["--dp", "skellam", "--dp-min-survivors", "10"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v2 = json(&out);
    assert_eq!(v2["min_clients"], 10);
    assert!(v2["dp"]["expected_rmse"].as_f64().unwrap() < dp["expected_rmse"].as_f64().unwrap());
    // One round costs less than ten.
    let out = secagg(&[&base[..], &["--dp", "ddg"]].concat());
    assert!(json(&out)["dp"]["epsilon"].as_f64().unwrap() < eps10);
    // Issue 14, finding 1: a sampling rate amplifies only the release-only ε; "epsilon" is the
    // one against the server, which sees who took part.
    assert_eq!(dp["epsilon_release_only"], dp["epsilon"]);
    let sampled = &[
        &base[..],
        &[
            "--dp",
            "ddg",
            "--dp-rounds",
            "10",
            "--dp-sampling-rate",
            "0.1",
        ],
    ];
    let v = json(&secagg(&sampled.concat()))["dp"].clone();
    assert_eq!(v["epsilon"].as_f64().unwrap(), eps10, "{v}");
    assert_eq!(v["epsilon_against_server"].as_f64().unwrap(), eps10, "{v}");
    assert!(
        v["epsilon_release_only"].as_f64().unwrap() < 0.5 * eps10,
        "{v}"
    );
}

#[test]
fn simulate_with_dp_refusals() {
    let base = ["simulate", "--clients", "12", "--dim", "100"];
    refused(
        &[&base[..], &["--dp-noise-multiplier", "2"]].concat(),
        "--dp",
    );
    refused(
        &[&base[..], &["--dp", "ddg", "--dp-noise-multiplier", "0"]].concat(),
        "noise multiplier",
    );
    refused(
        &[&base[..], &["--dp", "ddg", "--dp-delta", "1.5"]].concat(),
        "--dp-delta",
    );
    refused(
        &[&base[..], &["--dp", "ddg", "--dp-sampling-rate", "0"]].concat(),
        "--dp-sampling-rate",
    );
    refused(
        &[&base[..], &["--dp", "ddg", "--dp-min-survivors", "13"]].concat(),
        "more than",
    );
    refused(
        &[&base[..], &["--dp", "ddg", "--bits", "8"]].concat(),
        "bits",
    );
}
