//! `secagg bench --validate` as a user runs it (issue 11, step 11): the validated costs (prove,
//! verify alone and batched, binding, bytes) next to the plain round of the same n and d
//! measured in the same run, and the batch's reuse of proofs stated when it happens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn secagg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secagg"))
        .args(args)
        .output()
        .expect("run secagg")
}

#[cfg(not(feature = "validate"))]
#[test]
fn without_the_feature_bench_validate_is_refused() {
    let out = secagg(&["bench", "--validate", "--quick", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("feature `validate`"));
}

#[cfg(feature = "validate")]
mod validated {
    use super::secagg;
    use serde_json::Value;

    fn json(args: &[&str]) -> Value {
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

    fn positive(v: &Value, what: &str) -> f64 {
        let x = v
            .as_f64()
            .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
        assert!(x.is_finite() && x > 0.0, "{what} = {x}");
        x
    }

    fn close(a: f64, b: f64, what: &str) {
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            "{what}: {a} vs {b}"
        );
    }

    /// A measured median with its wall time and sample count.
    fn timing(v: &Value, what: &str, samples: u64) -> f64 {
        positive(&v["wall_ms"], what);
        assert_eq!(v["samples"], samples, "{what} samples");
        positive(&v["ms"], what)
    }

    // One test, its runs one after another: concurrent runs would slow each other's timings.
    #[test]
    fn bench_validate_sets_proof_costs_beside_the_plain_round() {
        // --quick: d = 10^3, n = 100, 3 provers, the batch of 100 filled from their proofs.
        let v = json(&[
            "bench",
            "--validate",
            "--quick",
            "--json",
            "--prove-threads",
            "2",
        ]);
        assert_eq!(v["validate"], true);
        assert!(v["clock"] == "thread-cpu" || v["clock"] == "wall");
        assert!(v["method"].as_str().unwrap().contains("plain"));
        assert_eq!(v["repeats"], 1);
        positive(&v["machine"]["keystream"]["value"], "machine key stream");
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r["n"], 100);
        assert_eq!(r["d"], 1000);
        assert_eq!(r["provers"], 3);
        assert_eq!(r["distinct_proofs"], 3);
        assert_eq!(r["batch_reuses_proofs"], true);
        assert!(r["k"].as_u64().unwrap() >= 1);
        assert!(r["projections"].as_u64().unwrap() >= 41);

        let c = &r["client"];
        let norm = timing(&c["norm_prove"], "norm prove", 3);
        let bind = timing(&c["bind_prove"], "bind prove", 3);
        close(positive(&c["prove_ms"], "prove"), norm + bind, "prove_ms");
        // The same provers again on two prover threads, timed in wall time.
        let t = &c["threaded"];
        assert_eq!(t["threads"], 2, "{c}");
        // Wall time only (no "ms": one thread's CPU time would leave out the others').
        for (what, part) in [
            ("threaded norm prove", "norm_prove"),
            ("threaded bind prove", "bind_prove"),
        ] {
            assert_eq!(t[part]["samples"], 3, "{what} samples");
            assert!(t[part].get("ms").is_none(), "{what}: {t}");
        }
        let t_norm = positive(&t["norm_prove"]["wall_ms"], "threaded norm prove");
        let t_bind = positive(&t["bind_prove"]["wall_ms"], "threaded bind prove");
        let t_wall = positive(&t["prove_wall_ms"], "threaded prove wall");
        let one_wall = positive(&c["prove_wall_ms"], "prove wall");
        close(
            positive(&t["speedup_wall"], "speedup"),
            one_wall / t_wall,
            "speedup",
        );
        assert!(t_norm > 0.0 && t_bind > 0.0);

        let s = &r["server"];
        let alone = timing(&s["norm_verify_alone"], "norm verify", 3);
        let batch = timing(&s["norm_batch_verify"], "batch verify", 1);
        timing(&s["bind_verify"], "bind verify", 3);
        assert_eq!(s["norm_batch_size"], 100);
        let per = positive(&s["norm_batch_per_client_ms"], "batch per client");
        close(per, batch / 100.0, "batch per client");
        // Batching is what makes the server's check cheap: far below one proof alone.
        assert!(per < alone, "batched {per} ms/client vs alone {alone} ms");

        let b = &r["bytes"];
        let proof = b["norm_proof"].as_u64().unwrap();
        let resp = b["validation_response"].as_u64().unwrap();
        let hashes = b["share_hashes"].as_u64().unwrap();
        assert!(proof > 500 && resp > 500 && hashes > 64, "{b}");
        let extra = b["extra_upload_per_client"].as_u64().unwrap();
        assert_eq!(extra, proof + resp + hashes);
        let plain_up = b["plain_upload_per_client"].as_u64().unwrap();
        // At least the packed vector: d values of 32 bits.
        assert!(plain_up >= 4000, "plain upload {plain_up}");
        assert_eq!(r["plain"]["bytes_up_per_client"], plain_up);
        assert_eq!(b["validated_upload_per_client"], plain_up + extra);
        close(
            positive(&b["upload_ratio"], "upload ratio"),
            (plain_up + extra) as f64 / plain_up as f64,
            "upload ratio",
        );

        let p = &r["plain"];
        for f in ["round_s", "server_s", "client_ms", "masked_input_client_ms"] {
            positive(&p[f], f);
        }
        assert_eq!(p["runs"], 1);
        let client_ratio = positive(&r["client_ratio"], "client ratio");
        close(
            client_ratio,
            (p["client_ms"].as_f64().unwrap() + c["prove_wall_ms"].as_f64().unwrap())
                / p["client_ms"].as_f64().unwrap(),
            "client ratio",
        );
        assert!(client_ratio > 1.0);
        assert!(positive(&r["server_ratio"], "server ratio") > 1.0);

        // The table: one row per d, the plain round beside it, the reuse stated; a batch of
        // distinct proofs when asked for.
        let out = secagg(&[
            "bench",
            "--validate",
            "--dims",
            "300",
            "--clients",
            "8",
            "--provers",
            "2",
            "--repeat",
            "1",
            "--prove-threads",
            "2",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "norm prove ms",
            "batch ms/client",
            "bind verify ms",
            "client ms",
            "server s",
            "Load average",
            "batch of 8 from 8 distinct proofs",
            "on 2 prover threads, wall",
        ] {
            assert!(text.contains(needle), "{needle:?} missing:\n{text}");
        }
        assert!(!text.contains("repeat their distinct proofs"), "{text}");

        // More provers than clients: all of them prove, no panic.
        let v = json(&[
            "bench",
            "--validate",
            "--dims",
            "64",
            "--clients",
            "3",
            "--provers",
            "9",
            "--repeat",
            "1",
            "--json",
            "--prove-threads",
            "1",
        ]);
        // One prover thread: nothing to time again.
        assert!(v["rows"][0]["client"]["threaded"].is_null());
        assert_eq!(v["rows"][0]["provers"], 3);
        assert_eq!(v["rows"][0]["distinct_proofs"], 3);
        assert_eq!(v["rows"][0]["batch_reuses_proofs"], false);

        // Options of --validate need it; --validate and --rows exclude each other.
        for args in [
            &["bench", "--provers", "2"][..],
            &["bench", "--prove-threads", "2"][..],
            &["bench", "--validate", "--quick", "--prove-threads", "0"][..],
            &["bench", "--validate", "--quick", "--prove-threads", "65"][..],
            &["bench", "--validate", "--rows", "1"][..],
        ] {
            let out = secagg(args);
            assert!(!out.status.success(), "{args:?} should fail");
        }
    }
}
