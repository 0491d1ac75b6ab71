//! Load test of `secagg server` over gRPC on loopback: one round of N clients, all async tasks
//! in this process (driven as in `load_1000_clients` in `tests/service.rs`), the server in its
//! own process so that its peak memory (VmHWM) and CPU time are its own. It is a benchmark, not
//! a test: `cargo test` never runs it.
//!
//! ```text
//! cargo bench -p secagg-cli --bench load -- --clients 10000 --dim 1000 --runs 3
//! cargo bench -p secagg-cli --bench load -- --clients 10000 --dim 1000 --cohorts 10
//! ```
//!
//! Each run reports the round time (the server's `wall_seconds`, RoundStart to release), the
//! time of each stage, the join phase (first connect to RoundStart), the server's peak RSS and
//! CPU seconds, this process's CPU seconds (the clients') and the clients' own latencies; the
//! released sum is checked against the inputs of the survivors. With `--cohorts C` a round of
//! C·N clients runs as C cohorts of N, one `secagg server` each: first one cohort alone (the
//! reference), then the C cohorts one after another (two cores: cohorts run at once would only
//! share them), then `secagg combine` over their results, whose global sum is checked too.
//!
//! File descriptors: each client holds one TCP connection, so this process and the server each
//! need about N descriptors. The bench raises its soft `RLIMIT_NOFILE` to the hard limit (the
//! server inherits it) and says so when the hard limit is too low for N.
//!
//! Each run also reports its floor on this machine: every client agrees an X25519 secret with
//! each of its k neighbours for both of its key pairs (2·k·N agreements), and the clients share
//! this machine's cores with the server, so the round cannot end sooner than 2·k·N divided by
//! (cores × X25519 agreements per second per core). The rate is measured at the start of the
//! same run ([`MachineLimits`], fastest sample), never taken from another machine.
//!
//! `--perf DIR` records the server and this process with `perf record` (software clock, call
//! graphs) into `DIR/server.data` and `DIR/clients.data`, for `perf report -i`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secagg_cli::machine_limits::MachineLimits;
use secagg_core::PrgKind;
use secagg_service::client::{ClientInput, ClientOptions, participate};
use secagg_sim::npy::{self, NpyArray};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_secagg");
const STAGES: [&str; 5] = [
    "advertise",
    "share",
    "masked-input",
    "consistency",
    "unmask",
];

struct Opts {
    clients: usize,
    dim: usize,
    bits: u8,
    runs: usize,
    cohorts: usize,
    stage_timeout: String,
    json: bool,
    perf: Option<PathBuf>,
    keep: Option<PathBuf>,
    /// The `secagg` binary (default: the one cargo built with this bench).
    bin: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench -p secagg-cli --bench load -- [--clients N (10000)] [--dim D (1000)] \
         [--bits B (32)] [--runs R (1)] [--cohorts C] [--stage-timeout 300s] [--json] \
         [--perf DIR] [--keep DIR] [--bin SECAGG]"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        clients: 10_000,
        dim: 1000,
        bits: 32,
        runs: 1,
        cohorts: 0,
        stage_timeout: "300s".into(),
        json: false,
        perf: None,
        keep: None,
        bin: PathBuf::from(BIN),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        // Run without `--bench` and without options (`cargo test --benches`, which passes
        // neither): a quick smoke round rather than 10^4 clients.
        o.clients = 20;
        o.dim = 16;
    }
    let mut args = argv.into_iter();
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            "--clients" => o.clients = val().parse().unwrap_or_else(|_| usage()),
            "--dim" => o.dim = val().parse().unwrap_or_else(|_| usage()),
            "--bits" => o.bits = val().parse().unwrap_or_else(|_| usage()),
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| usage()),
            "--cohorts" => o.cohorts = val().parse().unwrap_or_else(|_| usage()),
            "--stage-timeout" => o.stage_timeout = val(),
            "--json" => o.json = true,
            "--perf" => o.perf = Some(PathBuf::from(val())),
            "--keep" => o.keep = Some(PathBuf::from(val())),
            "--bin" => o.bin = PathBuf::from(val()),
            _ => usage(),
        }
    }
    if o.clients < 2 || o.dim == 0 || o.runs == 0 || !(1..=63).contains(&o.bits) {
        usage();
    }
    o
}

/// Raises the soft limit on open files to the hard one (children inherit it); returns both.
fn raise_nofile() -> (libc::rlim_t, libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// User + system CPU seconds of this process so far.
fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct passed by pointer; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

/// A process's peak RSS so far in bytes (VmHWM: its own address space's high-water mark,
/// reset at exec), while it lives.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Waits for the child `pid` to exit (at most `limit`), reaping it with `wait4`: its exit
/// status and its CPU seconds (user + system). (Its `ru_maxrss` is not used: Linux carries
/// the forked copy of this process's RSS into it across exec.)
fn wait_rusage(pid: u32, limit: Duration) -> (i32, f64) {
    let t = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: zeroed is a valid rusage; wait4 writes status and rusage by pointer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; the pid is our own child's.
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid as i32 {
            let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            };
            return (code, s(ru.ru_utime) + s(ru.ru_stime));
        }
        assert!(r == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        assert!(
            t.elapsed() < limit,
            "the server did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Server {
    child: Child,
    addr: String,
    /// Set once `wait_rusage` has reaped the process.
    reaped: bool,
    /// The largest VmHWM seen while the server lived (polled every 20 ms until it exits).
    peak_rss: Arc<AtomicU64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_server(data: &Path, o: &Opts) -> Server {
    let n = o.clients.to_string();
    let min = (o.clients - o.clients / 10).max(2).to_string();
    let maxconn = (o.clients + o.clients / 10 + 16).to_string();
    let mut child = Command::new(&o.bin)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--clients", &n, "--min-clients", &min, "--dim"])
        .arg(o.dim.to_string())
        .args(["--bits", &o.bits.to_string(), "--rounds", "1"])
        .args(["--stage-timeout", &o.stage_timeout])
        .args(["--join-timeout", "600s", "--join-frame-timeout", "120s"])
        .args(["--max-connections", &maxconn])
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start secagg server");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the server exited before listening"
        );
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split(|c: char| c == ',' || c.is_whitespace())
                .next()
                .unwrap()
                .to_string();
        }
    };
    // Keep draining the log (the server must never block on a full pipe); show warnings.
    std::thread::spawn(move || {
        let mut l = String::new();
        while err.read_line(&mut l).unwrap_or(0) > 0 {
            let lower = l.to_lowercase();
            if lower.contains("warn") || lower.contains("error") || lower.contains("dropped") {
                eprint!("[server] {l}");
            }
            l.clear();
        }
    });
    let peak_rss = Arc::new(AtomicU64::new(0));
    let (peak, pid) = (peak_rss.clone(), child.id());
    std::thread::spawn(move || {
        while let Some(hwm) = vm_hwm(pid) {
            peak.fetch_max(hwm, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Server {
        child,
        addr,
        reaped: false,
        peak_rss,
    }
}

/// Client `g`'s input (g is its index over all cohorts): small values, so sums never wrap.
fn input(g: usize, dim: usize) -> Vec<u64> {
    (0..dim as u64).map(|j| (g as u64 + j) % 1000).collect()
}

fn name(g: usize) -> String {
    format!("load{g}")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Starts `perf record` on `pid` into `out`, if asked for.
fn perf(pid: u32, out: Option<PathBuf>) -> Option<Child> {
    let out = out?;
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "499", "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("perf record could not start: {e}"))
        .ok()
}

fn stop_perf(p: Option<Child>) {
    if let Some(mut p) = p {
        // SIGINT lets perf write its file.
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe {
            libc::kill(p.id() as i32, libc::SIGINT);
        }
        let _ = p.wait();
    }
}

/// The kernel's count of connections dropped because a listen queue was full (system-wide:
/// `TcpExt: ListenOverflows` in /proc/net/netstat).
fn listen_overflows() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/net/netstat") else {
        return 0;
    };
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (Some(names), Some(values)) = (lines.first(), lines.get(1)) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// One cohort's round: a server, `o.clients` clients with global indices from `first`.
fn run_round(
    rt: &tokio::runtime::Runtime,
    o: &Opts,
    limits: &MachineLimits,
    data: &Path,
    first: usize,
    tag: &str,
) -> Value {
    let mut server = start_server(data, o);
    let perf_dir = o.perf.as_ref().map(|d| {
        std::fs::create_dir_all(d).unwrap();
        d.clone()
    });
    let perf_server = perf(
        server.child.id(),
        perf_dir
            .as_ref()
            .map(|d| d.join(format!("server-{tag}.data"))),
    );
    let perf_clients = perf(
        std::process::id(),
        perf_dir
            .as_ref()
            .map(|d| d.join(format!("clients-{tag}.data"))),
    );
    let addr = server.addr.clone();
    let n = o.clients;
    let dim = o.dim;
    let cpu0 = self_cpu_seconds();
    let overflows0 = listen_overflows();
    let t0 = Instant::now();
    let spawned_ms = unix_ms();
    let outcomes: Vec<(Result<u64, String>, f64)> = rt.block_on(async move {
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let opts = ClientOptions {
                    server: format!("http://{addr}"),
                    name: name(first + i),
                    input: ClientInput::Unsigned(input(first + i, dim)),
                    identity: None,
                    roster: None,
                    timeout: Duration::from_secs(900),
                    connect_retry: Duration::from_secs(120),
                    pause_at: None,
                    tls_ca: None,
                    dp_floor: None,
                };
                let r = participate(&opts)
                    .await
                    .map(|r| r.round_id)
                    .map_err(|e| format!("{e:?}"));
                (r, start.elapsed().as_secs_f64())
            }));
        }
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| (Err(format!("task failed: {e}")), f64::NAN)),
            );
        }
        out
    });
    let clients_wall = t0.elapsed().as_secs_f64();
    let clients_cpu = self_cpu_seconds() - cpu0;
    let overflows = listen_overflows().saturating_sub(overflows0);
    let (code, server_cpu) = wait_rusage(server.child.id(), Duration::from_secs(120));
    let server_rss = server.peak_rss.load(Ordering::Relaxed);
    server.reaped = true;
    stop_perf(perf_server);
    stop_perf(perf_clients);
    assert_eq!(code, 0, "the server exited with status {code}");
    let failures: Vec<&String> = outcomes
        .iter()
        .filter_map(|(r, _)| r.as_ref().err())
        .collect();
    for f in failures.iter().take(5) {
        eprintln!("client failure: {f}");
    }
    let j: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("rounds/1.json")).expect("no round JSON"),
    )
    .expect("round JSON");
    assert_eq!(
        j["state"], "finished",
        "round did not release: {}",
        j["reason"]
    );
    // The released sum equals the sum of the survivors' inputs.
    let survivors: Vec<usize> = j["survivors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap()["load".len()..].parse().unwrap())
        .collect();
    let mask = (1u64 << o.bits) - 1;
    let mut want = vec![0u64; dim];
    for &g in &survivors {
        for (w, x) in want.iter_mut().zip(input(g, dim)) {
            *w = (*w + x) & mask;
        }
    }
    let got: Vec<u64> = match npy::read(&data.join("rounds/1.npy")).expect("no aggregate") {
        NpyArray::U32(v) => v.into_iter().map(u64::from).collect(),
        NpyArray::U64(v) => v,
        NpyArray::U16(v) => v.into_iter().map(u64::from).collect(),
        NpyArray::U8(v) => v.into_iter().map(u64::from).collect(),
        other => panic!("unexpected aggregate dtype ({} values)", other.len()),
    };
    assert_eq!(got, want, "the released sum is not the survivors' sum");
    let latencies: Vec<f64> = outcomes.iter().map(|(_, s)| *s).collect();
    let stages: serde_json::Map<String, Value> = STAGES
        .iter()
        .filter_map(|s| {
            j["stages"][s]["seconds"]
                .as_f64()
                .map(|x| (s.to_string(), json!(x)))
        })
        .collect();
    let started = j["started_unix_ms"].as_u64().unwrap_or(spawned_ms);
    let floor = x25519_floor(limits, n, j["parameters"]["k"].as_u64().unwrap_or(0));
    let round_seconds = j["wall_seconds"].as_f64().unwrap_or(f64::NAN);
    json!({
        "clients": n,
        "dim": dim,
        "survivors": survivors.len(),
        "client_failures": failures.len(),
        "listen_overflows": overflows,
        "round_seconds": round_seconds,
        "x25519_floor": floor,
        "round_over_floor": round_seconds / floor["seconds"].as_f64().unwrap_or(f64::NAN),
        "join_seconds": started.saturating_sub(spawned_ms) as f64 / 1000.0,
        "stages": stages,
        "server_peak_rss_bytes": j["server_peak_rss_bytes"],
        "server_vmhwm_bytes": server_rss,
        "server_cpu_seconds": server_cpu,
        "clients_wall_seconds": clients_wall,
        "clients_cpu_seconds": clients_cpu,
        "client_latency_median_seconds": median(&latencies),
        "client_latency_max_seconds": latencies.iter().copied().fold(0.0, f64::max),
        "round_json": data.join("rounds/1.json"),
    })
}

/// The round's lower bound on this machine from the clients' X25519 agreements alone (see the
/// module comment): `clients` clients with `k` neighbours each, at the fastest sampled rate.
fn x25519_floor(limits: &MachineLimits, clients: usize, k: u64) -> Value {
    let agreements = 2 * k * clients as u64;
    let rate = limits.x25519_per_s.best * limits.cores as f64;
    json!({
        "agreements": agreements,
        "agreements_per_s_per_core": limits.x25519_per_s.best,
        "cores": limits.cores,
        "seconds": agreements as f64 / rate,
    })
}

fn line(r: &Value) -> String {
    let st: Vec<String> = STAGES
        .iter()
        .filter_map(|s| r["stages"][s].as_f64().map(|x| format!("{s} {x:.2}")))
        .collect();
    format!(
        "round {:.2} s ({}); floor {:.2} s ({}x); join {:.2} s; server peak RSS {} MB, CPU {:.1} s; clients CPU {:.1} s, \
         wall {:.2} s; survivors {}/{}; listen overflows {}",
        r["round_seconds"].as_f64().unwrap_or(f64::NAN),
        st.join(", "),
        r["x25519_floor"]["seconds"].as_f64().unwrap_or(f64::NAN),
        (r["round_over_floor"].as_f64().unwrap_or(f64::NAN) * 100.0).round() / 100.0,
        r["join_seconds"].as_f64().unwrap_or(f64::NAN),
        r["server_vmhwm_bytes"].as_f64().unwrap_or(0.0) as u64 >> 20,
        r["server_cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        r["clients_cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        r["clients_wall_seconds"].as_f64().unwrap_or(f64::NAN),
        r["survivors"],
        r["clients"],
        r["listen_overflows"],
    )
}

/// Medians over runs of every number the runs report.
fn medians(runs: &[Value]) -> Value {
    let pick = |f: &dyn Fn(&Value) -> Option<f64>| -> Value {
        json!(median(&runs.iter().filter_map(f).collect::<Vec<_>>()))
    };
    let mut stages = serde_json::Map::new();
    for s in STAGES {
        if runs.iter().any(|r| r["stages"][s].is_number()) {
            stages.insert(s.into(), pick(&|r| r["stages"][s].as_f64()));
        }
    }
    let mut m = json!({"stages": stages});
    for k in [
        "round_seconds",
        "round_over_floor",
        "join_seconds",
        "server_peak_rss_bytes",
        "server_vmhwm_bytes",
        "server_cpu_seconds",
        "clients_cpu_seconds",
        "clients_wall_seconds",
        "client_latency_median_seconds",
        "listen_overflows",
    ] {
        m[k] = pick(&|r| r[k].as_f64());
    }
    m["x25519_floor"] = runs[0]["x25519_floor"].clone();
    m["survivors"] = runs[0]["survivors"].clone();
    m["clients"] = runs[0]["clients"].clone();
    m
}

fn main() {
    let o = parse_opts();
    let (soft, hard) = raise_nofile();
    let need = o.clients as libc::rlim_t + 256;
    if soft < need {
        eprintln!(
            "warning: open-file limit {soft} (hard {hard}) is below the ~{need} descriptors this \
             process and the server each need for {} connections; raise it (ulimit -Hn)",
            o.clients
        );
    }
    let scratch = match &o.keep {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            None
        }
        None => Some(tempfile::tempdir().unwrap()),
    };
    let base = o
        .keep
        .clone()
        .unwrap_or_else(|| scratch.as_ref().unwrap().path().to_path_buf());
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Measured before any round, while this process is otherwise idle.
    let limits = MachineLimits::measure(PrgKind::Aes128Ctr, o.bits).unwrap();
    eprintln!(
        "this machine: {:.0} X25519 agreements/s per core (fastest of {} samples), {} cores",
        limits.x25519_per_s.best,
        secagg_cli::machine_limits::SAMPLES,
        limits.cores
    );
    eprintln!(
        "load: {} clients x d = {} ({} bits), open-file limit {soft}, server {}",
        o.clients,
        o.dim,
        o.bits,
        o.bin.display()
    );
    // With --cohorts, the lone runs are spread between the cohorts (one before the first, the
    // others evenly after), so that the reference and the cohorts see the same shared machine.
    let lone = |r: usize| {
        let res = run_round(
            &rt,
            &o,
            &limits,
            &base.join(format!("run{r}")),
            0,
            &format!("run{r}"),
        );
        eprintln!("run {}: {}", r + 1, line(&res));
        res
    };
    let mut runs = Vec::new();
    let cohort_report = if o.cohorts > 0 {
        Some(cohorts(&rt, &o, &limits, &base, &mut runs, &lone))
    } else {
        runs.extend((0..o.runs).map(lone));
        None
    };
    let mut report = json!({
        "clients": o.clients, "dim": o.dim, "bits": o.bits,
        "nofile_soft_limit": soft, "machine": limits.to_json(), "runs": runs, "median": medians(&runs),
    });
    if o.runs > 1 {
        eprintln!("median of {}: {}", o.runs, line(&report["median"]));
    }
    if let Some(c) = cohort_report {
        report["cohorts"] = c;
    }
    if o.json {
        println!("{report}");
    }
}

/// A round of C·N clients as C cohorts of N, one server each, one after another, combined with
/// `secagg combine`. The lone runs (`lone`, pushed onto `runs`), whose medians are the reference
/// for each cohort's time, are interleaved with the cohorts: run r goes before cohort
/// ⌈r·C/R⌉ (the last ones after the last cohort).
fn cohorts(
    rt: &tokio::runtime::Runtime,
    o: &Opts,
    limits: &MachineLimits,
    base: &Path,
    runs: &mut Vec<Value>,
    lone: &dyn Fn(usize) -> Value,
) -> Value {
    // Time in the cohorts and combine only, not in the interleaved lone runs.
    let mut cohort_time = Duration::ZERO;
    let mut per = Vec::new();
    let mut args: Vec<String> = vec!["combine".into()];
    let lone_before = |r: usize| (r * o.cohorts).div_ceil(o.runs.max(1));
    for c in 0..=o.cohorts {
        while runs.len() < o.runs && lone_before(runs.len()) <= c {
            runs.push(lone(runs.len()));
        }
        if c == o.cohorts {
            break;
        }
        let dir = base.join(format!("cohort{c}"));
        let tc = Instant::now();
        let res = run_round(rt, o, limits, &dir, c * o.clients, &format!("cohort{c}"));
        cohort_time += tc.elapsed();
        eprintln!("cohort {}/{}: {}", c + 1, o.cohorts, line(&res));
        args.extend([
            "--cohort".into(),
            dir.join("rounds/1.json").display().to_string(),
        ]);
        per.push(res);
    }
    let out = base.join("global.npy");
    let report = base.join("global.json");
    let tc = Instant::now();
    let st = Command::new(&o.bin)
        .args(&args)
        .arg("--output")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .args(["--min-cohorts", &o.cohorts.to_string()])
        // Its summary goes to stderr with the rest of the log: stdout is for --json.
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .expect("cannot run secagg combine");
    let combine_seconds = tc.elapsed().as_secs_f64();
    assert!(st.success(), "secagg combine failed: {st}");
    let total = cohort_time.as_secs_f64() + combine_seconds;
    // The global sum (no wrapping across cohorts) equals the sum over every cohort's survivors.
    let mut want = vec![0u64; o.dim];
    for res in &per {
        let j: Value = serde_json::from_str(
            &std::fs::read_to_string(res["round_json"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        let mask = (1u64 << o.bits) - 1;
        let mut cohort = vec![0u64; o.dim];
        for s in j["survivors"].as_array().unwrap() {
            let g: usize = s.as_str().unwrap()["load".len()..].parse().unwrap();
            for (w, x) in cohort.iter_mut().zip(input(g, o.dim)) {
                *w = (*w + x) & mask;
            }
        }
        for (w, x) in want.iter_mut().zip(cohort) {
            *w += x;
        }
    }
    let got = match npy::read(&out).expect("no global aggregate") {
        NpyArray::U64(v) => v,
        other => panic!("global aggregate is not uint64 ({} values)", other.len()),
    };
    assert_eq!(
        got, want,
        "the global sum is not the sum over the cohorts' survivors"
    );
    let times: Vec<f64> = per
        .iter()
        .filter_map(|r| r["round_seconds"].as_f64())
        .collect();
    let walls: Vec<f64> = per
        .iter()
        .filter_map(|r| r["clients_wall_seconds"].as_f64())
        .collect();
    let alone = &medians(runs);
    let alone_round = alone["round_seconds"].as_f64().unwrap_or(f64::NAN);
    let alone_wall = alone["clients_wall_seconds"].as_f64().unwrap_or(f64::NAN);
    // CPU seconds (server + clients) do not depend on what else the machine runs.
    let cpu = |r: &Value| {
        r["server_cpu_seconds"].as_f64().unwrap_or(f64::NAN)
            + r["clients_cpu_seconds"].as_f64().unwrap_or(f64::NAN)
    };
    let cpus: Vec<f64> = per.iter().map(cpu).collect();
    let survivors: u64 = per.iter().filter_map(|r| r["survivors"].as_u64()).sum();
    let summary = json!({
        "cohorts": o.cohorts,
        "clients": o.cohorts * o.clients,
        "survivors": survivors,
        "per_cohort": per,
        "round_seconds_median": median(&times),
        "round_seconds_max": times.iter().copied().fold(0.0, f64::max),
        "alone_round_seconds": alone_round,
        "ratio_round_median_to_alone": median(&times) / alone_round,
        "ratio_round_max_to_alone": times.iter().copied().fold(0.0, f64::max) / alone_round,
        "end_to_end_per_cohort_seconds": median(&walls),
        "ratio_end_to_end_to_alone": median(&walls) / alone_wall,
        "cpu_seconds_median": median(&cpus),
        "alone_cpu_seconds": cpu(alone),
        "ratio_cpu_to_alone": median(&cpus) / cpu(alone),
        "combine_seconds": combine_seconds,
        "total_seconds": total,
        "global_sum_ok": true,
    });
    eprintln!(
        "{} cohorts x {} clients ({} survivors): per-cohort round median {:.2} s (max {:.2}) vs \
         one cohort alone {:.2} s: ratio {:.3} (max {:.3}); end to end per cohort {:.2} s vs \
         {:.2} s alone: ratio {:.3}; CPU per cohort {:.1} s vs {:.1} s alone: ratio {:.3}; \
         combine {:.2} s; total {:.1} s; global sum checked",
        o.cohorts,
        o.clients,
        survivors,
        median(&times),
        summary["round_seconds_max"].as_f64().unwrap_or(f64::NAN),
        alone_round,
        summary["ratio_round_median_to_alone"]
            .as_f64()
            .unwrap_or(f64::NAN),
        summary["ratio_round_max_to_alone"]
            .as_f64()
            .unwrap_or(f64::NAN),
        median(&walls),
        alone_wall,
        summary["ratio_end_to_end_to_alone"]
            .as_f64()
            .unwrap_or(f64::NAN),
        median(&cpus),
        cpu(alone),
        median(&cpus) / cpu(alone),
        combine_seconds,
        total,
    );
    summary
}
