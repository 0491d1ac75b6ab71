//! `secagg combine` as an operator runs it: cohort results in the format `secagg server`
//! writes (`rounds/<id>.json` and `<id>.npy`), random cohorts against the plain sum and the
//! weighted-mean formula, every refusal, and two real server rounds combined.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use secagg_sim::npy::{self, NpyArray};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_secagg");

/// splitmix64: a small deterministic generator, so every case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn below_pow2(&mut self, bits: u8) -> u64 {
        if bits == 64 {
            self.next()
        } else {
            self.next() & ((1u64 << bits) - 1)
        }
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a cohort released.
#[derive(Clone)]
enum Release {
    Sum(Vec<u64>),
    Mean { mean: Vec<f64>, total_weight: u64 },
    DpMean(Vec<f64>),
    Aborted(&'static str),
}

/// A cohort result as `secagg server` writes it.
#[derive(Clone)]
struct Cohort {
    round_id: u64,
    bits: u8,
    dim: usize,
    min_clients: u64,
    survivors: Vec<String>,
    release: Release,
    /// Replaces parameters[key] (e.g. to make one cohort's parameters differ).
    overrides: Vec<(&'static str, Value)>,
}

impl Cohort {
    fn sum(bits: u8, survivors: Vec<String>, values: Vec<u64>) -> Self {
        Cohort {
            round_id: 1,
            bits,
            dim: values.len(),
            min_clients: 2,
            survivors,
            release: Release::Sum(values),
            overrides: Vec::new(),
        }
    }

    fn parameters(&self) -> Value {
        let n = self.survivors.len() as u64 + 1;
        let mut p = json!({
            "clients": n, "dim": self.dim, "bits": self.bits, "k": n - 1, "t": n / 2 + 1,
            "min_clients": self.min_clients, "graph": "complete", "threat": "HonestButCurious",
            "float": null, "dp": null,
        });
        match &self.release {
            Release::Mean { .. } => {
                // The scale depends on the cohort's own n: it must not be compared.
                p["float"] = json!({"clip": 10.0, "scale": 1.0e6 / n as f64, "max_weight": 1000});
            }
            Release::DpMean(_) => {
                p["dp"] = json!({
                    "noise": "DiscreteGaussian", "placement": "Distributed",
                    "noise_multiplier": 1.0, "clip": 1.0, "scale": 100.0 + n as f64,
                    "padded_dim": self.dim.next_power_of_two(), "delta": 1e-5,
                    "epsilon_budget": 10.0, "population": 1000, "sampling_rate": 1.0,
                    "epsilon_before_round": 0.0, "epsilon_after_round": 0.5 + n as f64,
                    "epsilon_holds_against": "server", "order": 12.0,
                    "expected_mean_rmse": 0.1,
                });
            }
            _ => {}
        }
        for (k, v) in &self.overrides {
            p[*k] = v.clone();
        }
        p
    }

    /// Writes `<dir>/rounds/<id>.json` (and `.npy`) and returns the JSON's path.
    fn write(&self, dir: &Path) -> PathBuf {
        let rounds = dir.join("rounds");
        std::fs::create_dir_all(&rounds).unwrap();
        let mut j = json!({
            "round_id": self.round_id,
            "parameters": self.parameters(),
            "warnings": [],
            "clients": self.survivors,
            "dropouts": [],
            "stages": {},
            "started_unix_ms": 0,
            "ended_unix_ms": 1,
            "wall_seconds": 0.1,
            "server_peak_rss_bytes": 1,
            "survivors": self.survivors,
            "state": "finished",
        });
        let npy_path = rounds.join(format!("{}.npy", self.round_id));
        match &self.release {
            Release::Sum(v) => {
                npy::write_file(&npy_path, &NpyArray::unsigned_for_bits(v, self.bits)).unwrap()
            }
            Release::Mean { mean, total_weight } => {
                j["total_weight"] = json!(total_weight);
                npy::write_file(&npy_path, &NpyArray::F64(mean.clone())).unwrap()
            }
            Release::DpMean(mean) => {
                j["dp_charged"] = json!(true);
                npy::write_file(&npy_path, &NpyArray::F64(mean.clone())).unwrap()
            }
            Release::Aborted(reason) => {
                j["state"] = json!("aborted");
                j["survivors"] = json!([]);
                j["reason"] = json!(reason);
            }
        }
        let path = rounds.join(format!("{}.json", self.round_id));
        std::fs::write(&path, format!("{j:#}\n")).unwrap();
        path
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Writes each cohort in its own data directory (as one server per cohort would).
fn write_all(root: &Path, cohorts: &[Cohort]) -> Vec<PathBuf> {
    cohorts
        .iter()
        .enumerate()
        .map(|(i, c)| c.write(&root.join(format!("shard{i}"))))
        .collect()
}

fn combine(paths: &[PathBuf], out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("combine");
    for p in paths {
        cmd.arg("--cohort").arg(p);
    }
    cmd.arg("--output").arg(out).arg("--json").args(extra);
    cmd.output().unwrap()
}

/// Runs combine, asserts success and returns its report.
fn combine_ok(paths: &[PathBuf], out: &Path, extra: &[&str]) -> Value {
    let o = combine(paths, out, extra);
    assert!(
        o.status.success(),
        "combine failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(s.trim().lines().count(), 1, "one JSON line: {s}");
    serde_json::from_str(s.trim()).unwrap()
}

/// Runs combine, asserts exit 2 and no output file, returns stderr.
fn combine_refused(paths: &[PathBuf], out: &Path, extra: &[&str]) -> String {
    let o = combine(paths, out, extra);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "should be refused: {err}");
    assert!(!out.exists(), "nothing may be written when refused");
    err
}

fn excluded(report: &Value) -> Vec<(String, String)> {
    report["cohorts_excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ceil_log2(c: usize) -> u32 {
    c.next_power_of_two().trailing_zeros()
}

#[test]
fn random_cohort_sums_equal_the_plain_sum_without_wrapping() {
    let mut rng = Rng(0x5ec_a99);
    for case in 0..30 {
        let tmp = tempfile::tempdir().unwrap();
        let c = rng.range(1, 8) as usize;
        let dim = rng.range(1, 40) as usize;
        // b + ⌈log2 C⌉ ≤ 64: up to 61 bits with 8 cohorts.
        let bits = [4u8, 8, 12, 16, 24, 32, 40, 61][rng.range(0, 7) as usize];
        let mut cohorts = Vec::new();
        let mut expected = vec![0u128; dim];
        for i in 0..c {
            // Mostly large values, so that the sum carries past 2^b.
            let v: Vec<u64> = (0..dim).map(|_| rng.below_pow2(bits)).collect();
            for (e, x) in expected.iter_mut().zip(&v) {
                *e += u128::from(*x);
            }
            let n = rng.range(2, 6) as usize;
            cohorts.push(Cohort::sum(bits, names(&format!("c{i}"), n), v));
        }
        let survivors: usize = cohorts.iter().map(|c| c.survivors.len()).sum();
        let paths = write_all(tmp.path(), &cohorts);
        let out = tmp.path().join("global.npy");
        let r = combine_ok(&paths, &out, &[]);
        let got = match npy::read(&out).unwrap() {
            NpyArray::U64(v) => v,
            other => panic!("case {case}: expected uint64, got {}", other.dtype_name()),
        };
        let got: Vec<u128> = got.into_iter().map(u128::from).collect();
        assert_eq!(got, expected, "case {case}: C={c} dim={dim} bits={bits}");
        assert_eq!(r["ok"], true);
        assert_eq!(r["kind"], "sum");
        assert_eq!(r["dtype"], "uint64");
        assert_eq!(r["bits_needed"], u32::from(bits) + ceil_log2(c));
        assert_eq!(r["survivors"], survivors);
        assert_eq!(r["cohorts_included"].as_array().unwrap().len(), c);
        assert!(excluded(&r).is_empty());
        if c > 1 && bits >= 8 {
            // With c random values near 2^b, the sum exceeds 2^b somewhere: no wrapping.
            assert!(expected.iter().any(|e| *e >= 1u128 << bits), "case {case}");
        }
    }
}

#[test]
fn random_float_and_dp_means_equal_the_weighted_formula() {
    let mut rng = Rng(42);
    for case in 0..24 {
        let tmp = tempfile::tempdir().unwrap();
        let c = rng.range(1, 7) as usize;
        let dim = rng.range(1, 30) as usize;
        let dp = case % 2 == 1;
        let mut cohorts = Vec::new();
        let mut num = vec![0f64; dim];
        let mut den = 0f64;
        for i in 0..c {
            let n = rng.range(2, 9) as usize;
            let mean: Vec<f64> = (0..dim).map(|_| rng.unit() * 20.0 - 10.0).collect();
            let w = if dp { n as u64 } else { rng.range(1, 5000) };
            for (a, m) in num.iter_mut().zip(&mean) {
                *a += w as f64 * m;
            }
            den += w as f64;
            let mut co = Cohort::sum(32, names(&format!("c{i}"), n), vec![0; dim]);
            co.release = if dp {
                Release::DpMean(mean)
            } else {
                Release::Mean {
                    mean,
                    total_weight: w,
                }
            };
            cohorts.push(co);
        }
        let paths = write_all(tmp.path(), &cohorts);
        let out = tmp.path().join("global.npy");
        let r = combine_ok(&paths, &out, &[]);
        let got = match npy::read(&out).unwrap() {
            NpyArray::F64(v) => v,
            other => panic!("expected float64, got {}", other.dtype_name()),
        };
        for (g, a) in got.iter().zip(&num) {
            let want = a / den;
            assert!(
                (g - want).abs() <= 1e-12 * want.abs().max(1.0),
                "case {case}: {g} vs {want}"
            );
        }
        assert_eq!(r["dtype"], "float64");
        assert_eq!(r["total_weight"].as_f64().unwrap(), den);
        let included = r["cohorts_included"].as_array().unwrap();
        for (inc, co) in included.iter().zip(&cohorts) {
            assert_eq!(inc["survivors"], co.survivors.len());
        }
        if dp {
            assert_eq!(r["kind"], "dp_mean");
            let notes = r["notes"].to_string();
            assert!(notes.contains("own minimum survivors"), "{notes}");
            // The weight of a DP cohort is its survivor count.
            for (inc, co) in included.iter().zip(&cohorts) {
                assert_eq!(inc["weight"], co.survivors.len());
            }
        } else {
            assert_eq!(r["kind"], "weighted_mean");
        }
    }
}

#[test]
fn mismatched_parameters_are_excluded_with_the_key_that_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Cohort::sum(16, names("a", 3), vec![1, 2, 3]);
    let b = Cohort::sum(16, names("b", 3), vec![10, 20, 30]);
    // The odd one out comes first: the reference is the majority, not the first.
    let mut odd = Cohort::sum(16, names("odd", 3), vec![100, 200, 300]);
    odd.overrides.push(("threat", json!("Malicious")));
    let mut wide = Cohort::sum(32, names("wide", 3), vec![7, 7, 7]);
    wide.round_id = 9;
    let paths = write_all(tmp.path(), &[odd, a, b, wide]);
    let out = tmp.path().join("g.npy");
    let r = combine_ok(&paths, &out, &[]);
    assert_eq!(npy::read(&out).unwrap(), NpyArray::U64(vec![11, 22, 33]));
    let ex = excluded(&r);
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert_eq!(ex[0].0, paths[0].display().to_string());
    assert!(ex[0].1.contains("parameters differ") && ex[0].1.contains("threat"));
    assert!(ex[1].1.contains("bits is 32 here but 16"), "{}", ex[1].1);
    // A cohort of another global round is a mix-up; its cohort index is an identifier.
    let gdir = tmp.path().join("global");
    let mut cohorts = Vec::new();
    for (i, g) in ["g-1", "g-1", "g-2"].iter().enumerate() {
        let mut c = Cohort::sum(16, names(&format!("g{i}"), 3), vec![1, 1, 1]);
        c.overrides.push(("global_round_id", json!(g)));
        c.overrides.push(("cohort_index", json!(i)));
        cohorts.push(c);
    }
    let paths = write_all(&gdir, &cohorts);
    let r = combine_ok(&paths, &gdir.join("g.npy"), &[]);
    assert_eq!(r["cohorts_included"].as_array().unwrap().len(), 2);
    assert_eq!(r["parameters"]["global_round_id"], "g-1");
    let ex = excluded(&r);
    assert_eq!(ex.len(), 1);
    assert!(ex[0].1.contains("global_round_id"), "{}", ex[0].1);
    // Per-round keys (n, k, t, the float scale) differ between these cohorts and do not count.
    let mut f1 = Cohort::sum(32, names("f1", 2), vec![0; 2]);
    f1.release = Release::Mean {
        mean: vec![1.0, 2.0],
        total_weight: 1,
    };
    let mut f2 = f1.clone();
    f2.survivors = names("f2", 5);
    let mut f3 = f1.clone();
    f3.survivors = names("f3", 2);
    f3.overrides.push((
        "float",
        json!({"clip": 5.0, "scale": 1.0, "max_weight": 1000}),
    ));
    let fdir = tmp.path().join("float");
    let paths = write_all(&fdir, &[f1, f2, f3]);
    let r = combine_ok(&paths, &fdir.join("g.npy"), &[]);
    assert_eq!(r["cohorts_included"].as_array().unwrap().len(), 2);
    let ex = excluded(&r);
    assert_eq!(ex.len(), 1);
    assert!(
        ex[0].1.contains("float.clip is 5.0 here but 10.0"),
        "{}",
        ex[0].1
    );
}

#[test]
fn overlapping_survivors_refuse_the_whole_combination() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Cohort::sum(8, vec!["alice".into(), "bob".into()], vec![1]);
    let b = Cohort::sum(8, vec!["carol".into(), "bob".into()], vec![2]);
    let paths = write_all(tmp.path(), &[a, b]);
    let out = tmp.path().join("g.npy");
    let err = combine_refused(&paths, &out, &[]);
    assert!(err.contains("\"bob\""), "{err}");
    assert!(
        err.contains(&paths[0].display().to_string())
            && err.contains(&paths[1].display().to_string()),
        "{err}"
    );
    // The same result named twice (here through its directory) is refused too.
    let again = vec![paths[0].clone(), tmp.path().join("shard0")];
    let err = combine_refused(&again, &out, &[]);
    assert!(err.contains("same round result"), "{err}");
}

#[test]
fn small_and_aborted_cohorts_are_excluded_and_min_cohorts_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = Cohort::sum(8, names("ok", 5), vec![1, 1]);
    // Below its own announced minimum.
    let mut small = Cohort::sum(8, names("small", 2), vec![2, 2]);
    small.min_clients = 3;
    let mut aborted = Cohort::sum(8, Vec::new(), vec![0, 0]);
    aborted.release = Release::Aborted("only 1 of 3 clients sent masked inputs");
    let four = Cohort::sum(8, names("four", 4), vec![4, 4]);
    let paths = write_all(tmp.path(), &[ok, small, aborted, four]);
    let out = tmp.path().join("g.npy");
    let r = combine_ok(&paths, &out, &[]);
    assert_eq!(npy::read(&out).unwrap(), NpyArray::U64(vec![5, 5]));
    let ex = excluded(&r);
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert!(
        ex[0]
            .1
            .contains("2 survivors, fewer than the minimum cohort size 3"),
        "{}",
        ex[0].1
    );
    assert!(
        ex[1].1.contains("did not release") && ex[1].1.contains("only 1 of 3 clients"),
        "{}",
        ex[1].1
    );
    assert_eq!(r["survivors"], 9);

    // An explicit --min-cohort-size applies to every cohort.
    let out2 = tmp.path().join("g2.npy");
    let r = combine_ok(&paths, &out2, &["--min-cohort-size", "5"]);
    assert_eq!(npy::read(&out2).unwrap(), NpyArray::U64(vec![1, 1]));
    assert_eq!(excluded(&r).len(), 3);

    // Fewer than --min-cohorts: refused, with every reason, and the report says why.
    let out3 = tmp.path().join("g3.npy");
    let report = tmp.path().join("report.json");
    let err = combine_refused(
        &paths,
        &out3,
        &["--min-cohorts", "3", "--report", report.to_str().unwrap()],
    );
    assert!(err.contains("only 2 cohort(s)"), "{err}");
    assert!(err.contains("fewer than the minimum cohort size"), "{err}");
    assert!(err.contains("did not release"), "{err}");
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["ok"], false);
    assert!(
        rep["error"]
            .as_str()
            .unwrap()
            .contains("--min-cohorts is 3")
    );
    assert_eq!(rep["cohorts_excluded"].as_array().unwrap().len(), 2);
}

#[test]
fn directories_sums_too_wide_and_mixed_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory: every rounds/*.json in it.
    let mut r1 = Cohort::sum(8, names("r1", 3), vec![200, 1]);
    r1.round_id = 1;
    let mut r2 = Cohort::sum(8, names("r2", 3), vec![200, 2]);
    r2.round_id = 2;
    let data = tmp.path().join("data");
    r1.write(&data);
    r2.write(&data);
    let out = tmp.path().join("g.npy");
    let report = tmp.path().join("report.json");
    let r = combine_ok(
        std::slice::from_ref(&data),
        &out,
        &["--report", report.to_str().unwrap()],
    );
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep, r, "the report file and --json say the same");
    assert_eq!(npy::read(&out).unwrap(), NpyArray::U64(vec![400, 3]));
    assert_eq!(r["bits_needed"], 9);

    // 64-bit cohort sums: two need 65 bits, refused before anything is read.
    let a = Cohort::sum(64, names("a", 2), vec![u64::MAX]);
    let b = Cohort::sum(64, names("b", 2), vec![1]);
    let wide = tmp.path().join("wide");
    let paths = write_all(&wide, &[a, b]);
    let err = combine_refused(&paths, &wide.join("g.npy"), &[]);
    assert!(err.contains("65 bits") && err.contains("uint64"), "{err}");

    // A sum and a mean: refused outright.
    let s = Cohort::sum(32, names("s", 2), vec![1]);
    let mut m = Cohort::sum(32, names("m", 2), vec![0]);
    m.release = Release::Mean {
        mean: vec![0.5],
        total_weight: 3,
    };
    let mixed = tmp.path().join("mixed");
    let paths = write_all(&mixed, &[s, m]);
    let err = combine_refused(&paths, &mixed.join("g.npy"), &[]);
    assert!(err.contains("different kinds"), "{err}");
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = Cohort::sum(16, names("g", 3), vec![1, 2, 3]).write(&tmp.path().join("good"));
    let out = tmp.path().join("g.npy");
    let bad_dir = tmp.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let check = |path: &Path, needle: &str| {
        let err = combine_refused(&[good.clone(), path.to_path_buf()], &out, &[]);
        assert!(
            err.contains(&path.display().to_string()) && err.contains(needle),
            "{needle:?} naming {}: {err}",
            path.display()
        );
        assert!(!err.contains("panicked"), "{err}");
    };
    // Round JSONs: not JSON, wrong shape, fields missing or of the wrong type.
    for (i, (text, needle)) in [
        ("{not json", "not a round result"),
        ("[1, 2]", "expected a JSON object"),
        (r#"{"round_id": 1}"#, "no state"),
        (
            r#"{"round_id": 1, "state": "done", "parameters": {}}"#,
            "neither finished nor aborted",
        ),
        (
            r#"{"round_id": 1, "state": "finished", "survivors": ["x", "y"], "parameters": {"bits": 0, "dim": 3, "min_clients": 2}}"#,
            "parameters.bits",
        ),
        (
            r#"{"round_id": 1, "state": "finished", "survivors": [1, 2], "parameters": {"bits": 16, "dim": 3, "min_clients": 2}}"#,
            "client names",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let p = bad_dir.join(format!("{i}.json"));
        std::fs::write(&p, text).unwrap();
        check(&p, needle);
    }
    std::fs::write(bad_dir.join("empty.json"), b"").unwrap();
    check(&bad_dir.join("empty.json"), "not a round result");
    // A file that does not exist.
    check(&bad_dir.join("missing.json"), "No such file");
    // A float round without its total weight.
    let mut f = Cohort::sum(16, names("f", 3), vec![0; 3]);
    f.release = Release::Mean {
        mean: vec![0.0; 3],
        total_weight: 1,
    };
    let fp = f.write(&tmp.path().join("f"));
    let text = std::fs::read_to_string(&fp)
        .unwrap()
        .replace("\"total_weight\": 1", "\"total_weight\": 0");
    std::fs::write(&fp, text).unwrap();
    let err = combine_refused(std::slice::from_ref(&fp), &out, &[]);
    assert!(err.contains("total_weight"), "{err}");

    // Aggregates: missing, truncated, the wrong length, the wrong dtype, not below 2^b.
    type Spoil = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Spoil, &str)> = vec![
        (
            "missing",
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            "cannot read it",
        ),
        (
            "truncated",
            Box::new(|p: &Path| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() - 3]).unwrap();
            }),
            "truncated",
        ),
        (
            "garbage",
            Box::new(|p: &Path| std::fs::write(p, b"hello").unwrap()),
            "not a NumPy",
        ),
        (
            "length",
            Box::new(|p: &Path| npy::write_file(p, &NpyArray::U16(vec![1, 2])).unwrap()),
            "2 values, but its round JSON says dim 3",
        ),
        (
            "dtype",
            Box::new(|p: &Path| npy::write_file(p, &NpyArray::F64(vec![1.0; 3])).unwrap()),
            "dtype float64",
        ),
        (
            "range",
            Box::new(|p: &Path| npy::write_file(p, &NpyArray::U32(vec![1, 1 << 16, 1])).unwrap()),
            "not below 2^16",
        ),
    ];
    for (name, spoil, needle) in cases {
        let p = Cohort::sum(16, names(name, 3), vec![4, 5, 6]).write(&tmp.path().join(name));
        let npy_path = p.with_extension("npy");
        spoil(&npy_path);
        let err = combine_refused(&[good.clone(), p], &out, &[]);
        assert!(
            err.contains(&npy_path.display().to_string()) && err.contains(needle),
            "{name}: expected {needle:?}: {err}"
        );
    }
    // A float mean with a non-finite value.
    let mut nan = Cohort::sum(16, names("nan", 3), vec![0; 2]);
    nan.release = Release::Mean {
        mean: vec![1.0, f64::NAN],
        total_weight: 2,
    };
    let p = nan.write(&tmp.path().join("nan"));
    let err = combine_refused(&[p], &out, &[]);
    assert!(err.contains("not finite"), "{err}");
}

/// Starts `secagg server` for one round of 3 clients × 4 values; returns it and its address.
fn start_server(data: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args([
            "--clients",
            "3",
            "--min-clients",
            "3",
            "--dim",
            "4",
            "--rounds",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "server exited early");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(',').next().unwrap().trim().to_string();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut l = String::new();
        while err.read_line(&mut l).unwrap_or(0) > 0 {
            l.clear();
        }
    });
    (child, addr)
}

fn wait_exit(child: &mut Child, limit: Duration) {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_real_server_rounds_combine_to_the_sum_of_their_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = [0u64; 4];
    let mut rounds = Vec::new();
    for shard in 0..2u32 {
        let data = tmp.path().join(format!("shard{shard}"));
        let (mut server, addr) = start_server(&data);
        let mut clients = Vec::new();
        for i in 0..3u32 {
            // Three values below 2^32 / 3 per cohort: each cohort's sum fits in 32 bits (as the
            // clients check), the global sum needs 33.
            let v: Vec<u32> = (0..4u32)
                .map(|j| 1_400_000_000 + 1000 * (shard * 3 + i) + j)
                .collect();
            for (e, x) in expected.iter_mut().zip(&v) {
                *e += u64::from(*x);
            }
            let input = tmp.path().join(format!("in{shard}-{i}.npy"));
            npy::write_file(&input, &NpyArray::U32(v)).unwrap();
            let child = Command::new(BIN)
                .args(["client", "--server", &format!("http://{addr}"), "--input"])
                .arg(&input)
                .args(["--name", &format!("shard{shard}-client{i}")])
                .args(["--timeout", "60s"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            clients.push(child);
        }
        for mut c in clients {
            wait_exit(&mut c, Duration::from_secs(60));
        }
        wait_exit(&mut server, Duration::from_secs(60));
        rounds.push(data);
    }
    let out = tmp.path().join("global.npy");
    let r = combine_ok(&rounds, &out, &["--min-cohorts", "2"]);
    // Each cohort's sum fits in 32 bits; the global sum does not, and is not wrapped.
    assert!(expected.iter().all(|e| *e >= 1 << 32));
    assert_eq!(npy::read(&out).unwrap(), NpyArray::U64(expected.to_vec()));
    assert_eq!(r["survivors"], 6);
    assert_eq!(r["bits_needed"], 33);
    assert_eq!(r["cohorts_included"].as_array().unwrap().len(), 2);
}
