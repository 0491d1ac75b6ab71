//! `secagg simulate --validate l2=B [--cheaters LIST --cheat KIND]` as a user runs it (issue
//! 11, VALIDATION.md §21 step 9): honest validated rounds, cheaters of every kind named with
//! their reason and left out of the release, honest clients above the bound refusing locally,
//! and every combination that cannot work refused with its reason. Needs the feature
//! `validate` (on by default); without it, only the refusal of `--validate` runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn secagg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secagg"))
        .args(args)
        .output()
        .expect("run secagg")
}

#[cfg(feature = "validate")]
fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.trim().lines().count(), 1, "exactly one JSON line: {s}");
    serde_json::from_str(s.trim()).expect("valid JSON")
}

fn refused(args: &[&str], needles: &[&str]) {
    let out = secagg(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
}

#[cfg(not(feature = "validate"))]
#[test]
fn without_the_feature_validate_is_refused() {
    refused(
        &[
            "simulate",
            "--clients",
            "4",
            "--dim",
            "4",
            "--validate",
            "l2=10",
        ],
        &["feature `validate`"],
    );
}

#[cfg(feature = "validate")]
mod validated {
    use super::*;
    use secagg_sim::npy::{self, NpyArray};
    use serde_json::Value;

    fn ids(v: &Value) -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    }

    #[test]
    fn an_honest_validated_round_matches_and_rejects_nobody() {
        let v = json(&secagg(&[
            "simulate",
            "--clients",
            "10",
            "--dim",
            "40",
            "--validate",
            "l2=1000",
            "--json",
        ]));
        assert_eq!(v["aggregate_ok"], true);
        assert_eq!(ids(&v["survivors"]), (0..10).collect::<Vec<_>>());
        assert_eq!(v["parameters"]["threat"], "malicious");
        assert!(
            v["warnings"][0]
                .as_str()
                .unwrap()
                .contains("--threat malicious"),
            "{}",
            v["warnings"]
        );
        let val = &v["validation"];
        assert_eq!(val["bound"], 1000.0);
        assert_eq!(val["bound_encoded"], 1_000_000);
        assert_eq!(val["rejected"], Value::Array(Vec::new()));
        assert_eq!(val["enforced"][0], "norm");
        assert!(val["proof_bytes"].as_u64().unwrap() > 0);
        let prove = val["prove_ms"].as_array().unwrap();
        assert_eq!(prove.len(), 10);
        assert!(prove.iter().all(|p| p.as_f64().unwrap() > 0.0), "{prove:?}");
        assert!(val["verify_ms"]["total"].as_f64().unwrap() > 0.0);
        assert_eq!(val["verify_ms"]["uploads"], 10);
        // J = 41 + ⌊0.05·10⌋ = 41.
        assert_eq!(val["projections"], 41);
    }

    /// Every other cheat kind (§16), run by the core's test-only cheats against the real
    /// server: inputs 1 and 4 are named with the reason of their kind, left out of the release,
    /// and the release is exactly the others' sum.
    #[test]
    fn every_cheat_kind_is_named_with_its_reason() {
        for (kind, reason, stage) in [
            ("forged-proof", "validation: binding", "validate"),
            ("inconsistent", "validation: binding", "validate"),
            ("wrong-mask", "validation: self mask", "unmask"),
        ] {
            let v = json(&secagg(&[
                "simulate",
                "--clients",
                "10",
                "--dim",
                "40",
                "--validate",
                "l2=1000",
                "--cheaters",
                "1,4",
                "--cheat",
                kind,
                "--json",
            ]));
            assert_eq!(v["aggregate_ok"], true, "{kind}");
            let survivors = ids(&v["survivors"]);
            assert!(!survivors.contains(&1) && !survivors.contains(&4), "{kind}");
            assert_eq!(survivors.len(), 8, "{kind}");
            let rejected = v["validation"]["rejected"].as_array().unwrap();
            assert_eq!(rejected.len(), 2, "{kind}: {rejected:?}");
            for (r, client) in rejected.iter().zip([1u64, 4]) {
                assert_eq!(r["client"], client, "{kind}");
                assert_eq!(r["reason"], reason, "{kind}");
                assert_eq!(r["stage"], stage, "{kind}");
            }
        }
    }

    /// The acceptance case of step 9: clients 2 and 5 upload an input of norm above B with a
    /// real proof made under their own larger bound; both, and only they, are rejected with
    /// `validation: norm` at the upload, and the release is exactly the other 18's sum.
    #[test]
    fn oversized_cheaters_are_named_and_left_out() {
        let args = [
            "simulate",
            "--clients",
            "20",
            "--dim",
            "40",
            "--validate",
            "l2=1000",
            "--cheaters",
            "2,5",
            "--cheat",
            "oversized",
        ];
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let v = json(&secagg(&with_json));
        assert_eq!(v["aggregate_ok"], true);
        let rejected = v["validation"]["rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), 2, "{rejected:?}");
        for (r, want) in rejected.iter().zip([2, 5]) {
            assert_eq!(r["client"], want);
            assert_eq!(r["stage"], "masked-input");
            assert_eq!(r["reason"], "validation: norm");
        }
        let survivors = ids(&v["survivors"]);
        assert_eq!(
            survivors,
            (0..20).filter(|i| *i != 2 && *i != 5).collect::<Vec<_>>()
        );
        assert_eq!(ids(&v["dropped"]), vec![2, 5]);
        assert_eq!(v["validation"]["cheat"], "oversized");
        assert_eq!(v["validation"]["uncaught"], Value::Array(Vec::new()));
        // The cheaters' own proofs take time too (forging included).
        assert!(v["validation"]["prove_ms"][2].as_f64().unwrap() > 0.0);

        // The human-readable output names each rejected client with its reason.
        let out = secagg(&args);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for c in [2, 5] {
            assert!(
                text.contains(&format!(
                    "rejected: input {c} (client id {}) at stage masked-input: validation: norm",
                    c + 1
                )),
                "{text}"
            );
        }
        assert!(text.contains("matches the plaintext computation"), "{text}");
        assert!(
            text.contains("enforced: the norm proof at upload, the binding"),
            "{text}"
        );
    }

    /// Float inputs: B in input units, s_val and B_enc² from the core (§5.4). An honest client
    /// far above B is clipped to it and stays in; the cheater (input 1, unclipped) is rejected;
    /// the mean is the weighted mean of the survivors' L2-clipped inputs.
    #[test]
    fn float_inputs_clip_honest_clients_and_reject_the_cheater() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..8u32 {
            let scale = if i == 3 { 50.0 } else { 0.1 };
            let x: Vec<f64> = (0..12)
                .map(|j| scale * (f64::from(i * 12 + j) * 0.37).sin())
                .collect();
            npy::write_file(&dir.path().join(format!("c{i}.npy")), &NpyArray::F64(x)).unwrap();
        }
        let w = dir.path().join("weights");
        std::fs::create_dir(&w).unwrap();
        let wpath = w.join("w.npy");
        npy::write_file(&wpath, &NpyArray::U64(vec![1, 2, 3, 1, 2, 3, 1, 2])).unwrap();
        let v = json(&secagg(&[
            "simulate",
            "--inputs",
            dir.path().to_str().unwrap(),
            "--weights",
            wpath.to_str().unwrap(),
            "--validate",
            "l2=1.5",
            "--cheaters",
            "1",
            "--cheat",
            "oversized",
            "--json",
        ]));
        assert_eq!(v["aggregate_ok"], true, "{}", v["mean_error"]);
        let val = &v["validation"];
        assert_eq!(val["rejected"].as_array().unwrap().len(), 1);
        assert_eq!(val["rejected"][0]["client"], 1);
        assert_eq!(val["rejected"][0]["reason"], "validation: norm");
        assert!(val["scale"].as_f64().unwrap() > 0.0);
        let f = val["slack_factor"].as_f64().unwrap();
        assert!(f > 1.0, "{f}");
        // Input 3 (norm ≈ 120 > 1.5) was clipped, not refused.
        assert!(ids(&v["survivors"]).contains(&3));
        assert_eq!(val["refused"], Value::Array(Vec::new()));
    }

    /// Unsigned inputs: B in encoded units. An honest client above the bound refuses locally
    /// before advertising keys (D34): a dropout, not a rejection, and the release is the
    /// others' sum.
    #[test]
    fn an_honest_unsigned_client_above_the_bound_refuses_locally() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..6u32 {
            let x: Vec<u32> = if i == 4 {
                vec![30, 40, 1, 0]
            } else {
                vec![i, 2 * i, 3, 4]
            };
            npy::write_file(&dir.path().join(format!("c{i}.npy")), &NpyArray::U32(x)).unwrap();
        }
        let v = json(&secagg(&[
            "simulate",
            "--inputs",
            dir.path().to_str().unwrap(),
            "--validate",
            "l2=50",
            "--assumed-dropout",
            "0.2",
            "--json",
        ]));
        assert_eq!(v["aggregate_ok"], true);
        assert_eq!(v["validation"]["rejected"], Value::Array(Vec::new()));
        let refused = v["validation"]["refused"].as_array().unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["client"], 4);
        let e = refused[0]["error"].as_str().unwrap();
        assert!(e.contains("2501") && e.contains("2500"), "{e}");
        assert_eq!(ids(&v["survivors"]), vec![0, 1, 2, 3, 5]);
        assert_eq!(v["dropouts"][0]["stage"], "advertise");
    }

    #[test]
    fn combinations_that_cannot_work_are_refused() {
        let base = ["simulate", "--clients", "6", "--dim", "8"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().chain(extra).copied().collect()
        };
        // DP with client-side noise needs the opt-in, and names the factor: VALIDATION.md §12
        // (F9). The opt-in needs client-side noise; with --dp, B is the clip.
        refused(
            &with(&["--validate", "l2=1", "--dp", "ddg"]),
            &[
                "VALIDATION.md §12",
                "F9",
                "× the clip",
                "--validate-client-noise",
            ],
        );
        refused(
            &with(&[
                "--validate",
                "l2=1",
                "--dp",
                "ddg",
                "--dp-central",
                "--validate-client-noise",
            ]),
            &["--dp without --dp-central"],
        );
        refused(
            &with(&[
                "--validate",
                "l2=1",
                "--dp",
                "ddg",
                "--dp-central",
                "--dp-clip",
                "2",
            ]),
            &["is the L2 clip", "--dp-clip"],
        );
        refused(&with(&["--validate-client-noise"]), &["--validate"]);
        refused(
            &with(&["--validate", "l2=100", "--cheaters", "1", "--cheat", "lazy"]),
            &["unknown cheat", "oversized"],
        );
        // A bound the round cannot carry: the core's ValidateError.
        refused(
            &with(&["--validate", "l2=100", "--bits", "10"]),
            &["validated round", "can wrap 2^10"],
        );
        refused(
            &with(&["--validate", "l2=100", "--bits", "40"]),
            &["validated round: bits = 40 exceeds 32"],
        );
        // Unsigned bounds are whole numbers in encoded units.
        refused(&with(&["--validate", "l2=2.5"]), &["whole number"]);
        refused(&with(&["--validate", "linf=3"]), &["expected l2=B"]);
        refused(&with(&["--validate", "l2=-1"]), &["positive number"]);
        // --cheaters and --cheat go together, with --validate.
        refused(
            &with(&["--validate", "l2=100", "--cheaters", "1"]),
            &["--cheat"],
        );
        refused(
            &with(&["--cheaters", "1", "--cheat", "oversized"]),
            &["--validate"],
        );
        refused(
            &with(&[
                "--validate",
                "l2=100",
                "--cheaters",
                "6",
                "--cheat",
                "oversized",
            ]),
            &["client 6 is not an input index"],
        );
        refused(
            &with(&[
                "--validate",
                "l2=100",
                "--cheaters",
                "1,1",
                "--cheat",
                "oversized",
            ]),
            &["twice"],
        );
    }

    #[test]
    fn float_validated_rounds_refuse_a_value_clip() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            npy::write_file(
                &dir.path().join(format!("c{i}.npy")),
                &NpyArray::F64(vec![0.1, -0.2]),
            )
            .unwrap();
        }
        refused(
            &[
                "simulate",
                "--inputs",
                dir.path().to_str().unwrap(),
                "--clip",
                "1",
                "--validate",
                "l2=1",
            ],
            &["drop --clip"],
        );
    }

    /// Validated DP rounds (VALIDATION.md §12): with server-side noise a cheater is named and
    /// the private mean of the others released, with the DP report; with client-side noise and
    /// the opt-in, the factor is printed on stderr and in the JSON.
    #[test]
    fn validated_dp_rounds_name_cheaters_and_state_the_factor() {
        let base = ["simulate", "--clients", "8", "--dim", "40", "--json"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().chain(extra).copied().collect()
        };
        let out = secagg(&with(&[
            "--validate",
            "l2=1",
            "--dp",
            "ddg",
            "--dp-central",
            "--cheaters",
            "5",
            "--cheat",
            "inconsistent",
        ]));
        let v = json(&out);
        assert_eq!(v["aggregate_ok"], true);
        assert_eq!(v["validation"]["rejected"][0]["client"], 5);
        assert_eq!(
            v["validation"]["rejected"][0]["reason"],
            "validation: binding"
        );
        assert_eq!(v["validation"]["dp_factor"], 1.0);
        assert!(v["dp"]["epsilon"].as_f64().unwrap() > 0.0);
        assert!(!ids(&v["survivors"]).contains(&5));

        let out = secagg(&with(&[
            "--validate",
            "l2=1",
            "--dp",
            "ddg",
            "--validate-client-noise",
        ]));
        let v = json(&out);
        let f = v["validation"]["dp_factor"].as_f64().unwrap();
        assert!(f > 1.0, "{f}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("× the clip as signal"), "{err}");
    }
}
