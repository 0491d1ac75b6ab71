//! `secagg dp epsilon` and `secagg dp plan` as a user runs them, and their refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn secagg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secagg"))
        .args(args)
        .output()
        .expect("run secagg")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = secagg(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.trim().lines().count(), 1, "exactly one JSON line: {s}");
    serde_json::from_str(s.trim()).expect("valid JSON")
}

fn refused(args: &[&str], needle: &str) {
    let out = secagg(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
}

const PIPELINE: [&str; 8] = [
    "--clients",
    "100",
    "--dim",
    "1000",
    "--bits",
    "20",
    "--clip",
    "1",
];

#[test]
fn gaussian_epsilon_is_dp_accountings() {
    // dp-accounting 0.6.0: PoissonSampledDpEvent(0.01, GaussianDpEvent(1.1)) × 1000 at δ = 1e-5
    // gives ε = 1.7117701662429012 at order 9.6.
    let v = json(&[
        "dp",
        "epsilon",
        "--mechanism",
        "gaussian",
        "--noise-multiplier",
        "1.1",
        "--sampling-rate",
        "0.01",
        "--rounds",
        "1000",
        "--delta",
        "1e-5",
        "--json",
    ]);
    let e = v["epsilon_release_only"].as_f64().unwrap();
    assert!((e - 1.7117701662429012).abs() < 1e-6, "{v}");
    assert_eq!(v["order_release_only"].as_f64().unwrap(), 9.6);
    // At rate 1 (whoever knows who took part) the same rounds cost far more, and that is
    // "epsilon"; a continuous Gaussian is central noise, so nothing holds against the server.
    assert!(v["epsilon"].as_f64().unwrap() > 100.0 * e, "{v}");
    assert!(v["epsilon_against_server"].is_null(), "{v}");
    assert!(
        v["epsilon_holds_against"]
            .as_str()
            .unwrap()
            .contains("central"),
        "{v}"
    );
    // Human output.
    let out = secagg(&[
        "dp",
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--sampling-rate",
        "0.01",
        "--rounds",
        "1000",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("epsilon = 1.7118"), "{text}");
    assert!(
        text.contains("against observers of the released model only"),
        "{text}"
    );
    assert!(text.contains("not the server"), "{text}");
}

/// Issue 14, finding 1: the example of the review, DDG z = 1.1, 100 clients, d = 10^5, 1,000
/// rounds at q = 0.01: ε = 2.02 against observers of the released model, 836.6 against the
/// server, which sees who took part.
#[test]
fn epsilon_says_against_whom_it_holds() {
    let v = json(&[
        "dp",
        "epsilon",
        "--mechanism",
        "ddg",
        "--noise-multiplier",
        "1.1",
        "--sampling-rate",
        "0.01",
        "--rounds",
        "1000",
        "--clients",
        "100",
        "--dim",
        "100000",
        "--bits",
        "32",
        "--clip",
        "1",
        "--json",
    ]);
    let release = v["epsilon_release_only"].as_f64().unwrap();
    let server = v["epsilon_against_server"].as_f64().unwrap();
    assert!((release - 2.02).abs() < 0.01, "{v}");
    assert!((server - 836.6).abs() < 0.1, "{v}");
    assert_eq!(v["epsilon"].as_f64().unwrap(), server, "{v}");
    // Adversarial review, F3: with central noise the server sees the exact sum, and no ε is
    // said to hold against it.
    let central = json(&[
        "dp",
        "epsilon",
        "--mechanism",
        "ddg",
        "--placement",
        "central",
        "--noise-multiplier",
        "1.1",
        "--rounds",
        "100",
        "--clients",
        "100",
        "--dim",
        "1000",
        "--bits",
        "32",
        "--clip",
        "1",
        "--json",
    ]);
    assert!(central["epsilon_against_server"].is_null(), "{central}");
    let whom = central["epsilon_holds_against"].as_str().unwrap();
    assert!(whom.contains("no ε holds against it"), "{central}");
}

#[test]
fn ddg_and_skellam_epsilons_need_the_pipeline_and_cost_a_little_more() {
    let base = [
        "dp",
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--sampling-rate",
        "0.01",
        "--rounds",
        "1000",
        "--json",
    ];
    let g = json(&base)["epsilon_release_only"].as_f64().unwrap();
    for m in ["ddg", "skellam"] {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--mechanism", m]);
        args.extend(PIPELINE);
        let v = json(&args);
        let e = v["epsilon_release_only"].as_f64().unwrap();
        assert!(e > g && e < 1.5 * g, "{m}: {e} vs gaussian {g}: {v}");
        assert!(v["order"].as_f64().unwrap() > 1.0);
        assert!(v["scale"].as_f64().unwrap() > 0.0);
        // Without the pipeline's flags: a clear refusal naming them.
        let mut bare: Vec<&str> = base.to_vec();
        bare.extend(["--mechanism", m, "--clients", "100"]);
        refused(&bare, "--dim --bits --clip");
    }
}

#[test]
fn plan_meets_the_budget_it_was_given() {
    for m in ["gaussian", "ddg", "skellam"] {
        let mut args = vec![
            "dp",
            "plan",
            "--epsilon",
            "3",
            "--delta",
            "1e-5",
            "--rounds",
            "100",
            "--sampling-rate",
            "0.1",
            "--mechanism",
            m,
            "--json",
        ];
        args.extend(PIPELINE);
        let v = json(&args);
        let z = v["noise_multiplier"].as_f64().unwrap();
        // At q < 1 the budget is the release-only ε; against the server it is larger.
        assert_eq!(v["target_applies_to"], "release_only", "{v}");
        let e = v["epsilon_release_only"].as_f64().unwrap();
        assert!(e <= 3.0 && e > 2.9, "{m}: {v}");
        assert!(v["epsilon"].as_f64().unwrap() > e, "{v}");
        // The continuous Gaussian is central noise: nothing holds against the server.
        assert_eq!(
            v["epsilon_against_server"].is_null(),
            m == "gaussian",
            "{v}"
        );
        assert!(v["rmse_per_coordinate"].as_f64().unwrap() > 0.0);
        // Feeding z back into `epsilon` gives the same ε.
        let z = format!("{z}");
        let mut back = vec![
            "dp",
            "epsilon",
            "--noise-multiplier",
            z.as_str(),
            "--sampling-rate",
            "0.1",
            "--rounds",
            "100",
            "--mechanism",
            m,
            "--json",
        ];
        back.extend(PIPELINE);
        let e2 = json(&back)["epsilon_release_only"].as_f64().unwrap();
        assert!((e2 - e).abs() < 1e-9 * e, "{m}: plan {e} vs epsilon {e2}");
        if m != "gaussian" {
            assert!(v["scale"].as_f64().unwrap() > 0.0, "{v}");
        }
    }
    // A tighter budget needs more noise.
    let z = |eps: &str| {
        let mut a = vec!["dp", "plan", "--epsilon", eps, "--rounds", "100", "--json"];
        a.extend(PIPELINE);
        json(&a)["noise_multiplier"].as_f64().unwrap()
    };
    assert!(z("1") > z("4"));
}

#[test]
fn bad_input_exits_2_and_says_what_to_change() {
    let e = ["dp", "epsilon", "--noise-multiplier"];
    refused(
        &[&e[..], &["1", "--delta", "0"]].concat(),
        "delta must be in (0, 1)",
    );
    refused(
        &[&e[..], &["1", "--delta", "1"]].concat(),
        "delta must be in (0, 1)",
    );
    refused(
        &[&e[..], &["1", "--sampling-rate", "0"]].concat(),
        "sampling rate must be in (0, 1]",
    );
    refused(
        &[&e[..], &["1", "--sampling-rate", "1.5"]].concat(),
        "sampling rate",
    );
    refused(&[&e[..], &["0"]].concat(), "noise multiplier must be");
    refused(&[&e[..], &["-1"]].concat(), "");
    refused(
        &[&e[..], &["1", "--rounds", "0"]].concat(),
        "rounds must be at least 1",
    );
    refused(
        &[
            "dp",
            "plan",
            "--epsilon",
            "0",
            "--rounds",
            "10",
            "--mechanism",
            "gaussian",
            "--clients",
            "10",
            "--dim",
            "10",
            "--bits",
            "20",
            "--clip",
            "1",
        ],
        "epsilon",
    );
    refused(
        &["dp", "plan", "--epsilon", "1", "--rounds", "10"],
        "--clients --dim --bits --clip",
    );
    let mut a = vec![
        "dp",
        "plan",
        "--epsilon",
        "1",
        "--rounds",
        "10",
        "--min-survivors",
        "500",
    ];
    a.extend(PIPELINE);
    refused(&a, "--min-survivors");
}
