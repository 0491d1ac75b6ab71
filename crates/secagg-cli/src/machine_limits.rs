//! This machine's limits, measured in the run that uses them (`secagg bench`): the key-stream
//! rate of the mask PRG, memory bandwidth and X25519 agreements per second, each on one core.
//!
//! Each limit is timed in several short samples (about 0.2 s per limit in all); the median and
//! the fastest sample are kept. Noise (other processes, shared cores, frequency changes) only
//! ever slows a core down, so the fastest sample is the closest estimate of what the core can
//! do, and the one a lower bound must use. Nothing here is stored or compared with another
//! machine's figures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use secagg_core::PrgKind;
use secagg_core::crypto::DhKeyPair;
use secagg_core::prg::{MaskStream, Sign, apply_masks};
use secagg_core::ring::Modulus;
use serde_json::{Value, json};

/// Masks applied at once when measuring the key stream: a client applies k + 1 = 21 of them
/// (SecAgg+) or n = 100 (complete graph) to each chunk, so the vector's own traffic is small
/// next to the key stream's, as here.
const KEYSTREAM_MASKS: usize = 32;
/// Elements of the masked vector when measuring the key stream (64 KiB: in L2, like the
/// L1-sized chunks `apply_masks` walks).
const KEYSTREAM_ELEMS: usize = 8 * 1024;
/// u64 elements of each of the two memory buffers (64 MiB each, 128 MiB in all: far larger
/// than any one core's share of cache).
const MEMORY_ELEMS: usize = 8 * 1024 * 1024;
/// Distinct peer keys cycled through when measuring X25519.
const X25519_PEERS: usize = 64;
/// Timed samples per limit.
pub const SAMPLES: usize = 7;
/// Minimum length of one sample.
const SAMPLE_TIME: Duration = Duration::from_millis(25);

/// Cores this process may use (`std::thread::available_parallelism`; 1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The median of `v` (NaN if empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One measured rate, in units per second.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// The median over the samples.
    pub median: f64,
    /// The fastest sample: the limit lower bounds use.
    pub best: f64,
}

impl Rate {
    fn of(samples: Vec<f64>) -> Self {
        let best = samples.iter().copied().fold(0.0, f64::max);
        Self {
            median: median(samples),
            best,
        }
    }

    fn to_json(self, unit: &str, how: &str) -> Value {
        json!({
            "value": self.median,
            "best": self.best,
            "unit": unit,
            "per": "core",
            "samples": SAMPLES,
            "how": how,
        })
    }
}

/// This machine's limits, each measured on one core.
pub struct MachineLimits {
    /// Cores this process may use (`std::thread::available_parallelism`).
    pub cores: usize,
    /// The PRG measured (the one the bench rows configure).
    pub prg: PrgKind,
    /// Modulus bits the key stream was measured at (key-stream bytes per element follow).
    pub bits: u8,
    /// Key-stream bytes generated and added into a vector per second, one core.
    pub keystream_bytes_per_s: Rate,
    /// Bytes read + written per second by a u64 wrapping-add loop over buffers far larger
    /// than cache, one core.
    pub memory_bytes_per_s: Rate,
    /// X25519 agreements per second, one core.
    pub x25519_per_s: Rate,
}

impl MachineLimits {
    /// Measures the three limits now (about 0.2 s each). Their samples are interleaved, so
    /// that each limit's samples spread over the whole measurement rather than one burst
    /// that a busy neighbour could slow throughout.
    pub fn measure(prg: PrgKind, bits: u8) -> Result<Self, String> {
        let modulus =
            Modulus::new(bits).ok_or_else(|| format!("bits must be 1..=64, got {bits}"))?;
        let cores = cores();
        let mut batches: [Box<dyn FnMut() -> f64>; 3] = [
            keystream_batch(prg, modulus),
            memory_batch(modulus),
            x25519_batch(),
        ];
        // One untimed warm-up batch each.
        batches.iter_mut().for_each(|b| {
            b();
        });
        let mut rates: [Vec<f64>; 3] = Default::default();
        for _ in 0..SAMPLES {
            for (batch, r) in batches.iter_mut().zip(&mut rates) {
                r.push(sample(batch));
            }
        }
        let [keystream, memory, x25519] = rates.map(Rate::of);
        Ok(Self {
            cores,
            prg,
            bits,
            keystream_bytes_per_s: keystream,
            memory_bytes_per_s: memory,
            x25519_per_s: x25519,
        })
    }

    /// The machine section of the JSON output, with units and what was timed. `value` is
    /// the median over the samples, `best` the fastest sample (the one bounds use).
    pub fn to_json(&self) -> Value {
        let mut keystream = self.keystream_bytes_per_s.to_json(
            "bytes/s",
            &format!(
                "secagg_core::prg::apply_masks: {KEYSTREAM_MASKS} masks added into a \
                 {KEYSTREAM_ELEMS}-element vector, key-stream bytes per second"
            ),
        );
        keystream["prg"] = json!(prg_name(self.prg));
        keystream["bits"] = json!(self.bits);
        json!({
            "cores": self.cores,
            "keystream": keystream,
            "memory_bandwidth": self.memory_bytes_per_s.to_json(
                "bytes/s",
                &format!(
                    "acc[i] = acc[i] wrapping_add x[i] (Modulus::add_assign) over two buffers \
                     of {} MiB, bytes read + written (24 per element) per second",
                    (MEMORY_ELEMS * 8) >> 20
                ),
            ),
            "x25519": self.x25519_per_s.to_json(
                "agreements/s",
                "secagg_core::crypto::DhKeyPair::agree with distinct peer keys",
            ),
        })
    }
}

/// The PRG's name as `--prg` spells it in JSON.
pub fn prg_name(prg: PrgKind) -> &'static str {
    match prg {
        PrgKind::Aes128Ctr => "aes128-ctr",
        PrgKind::ChaCha20 => "chacha20",
    }
}

/// One sample: runs `batch` (which returns the units of work it did) until at least
/// [`SAMPLE_TIME`] has passed; units per second.
fn sample(batch: &mut dyn FnMut() -> f64) -> f64 {
    let start = Instant::now();
    let mut units = 0.0;
    loop {
        units += batch();
        let t = start.elapsed();
        if t >= SAMPLE_TIME {
            return units / t.as_secs_f64();
        }
    }
}

/// Key-stream bytes through the masks' own code path (seeded streams added into a vector
/// chunk by chunk, then reduced mod 2^b).
fn keystream_batch(prg: PrgKind, modulus: Modulus) -> Box<dyn FnMut() -> f64> {
    let mut streams: Vec<MaskStream> = (0..KEYSTREAM_MASKS)
        .map(|i| {
            let mut seed = [0x5au8; 32];
            seed[0] = i as u8;
            MaskStream::new(prg, &seed, Sign::Plus)
        })
        .collect();
    let mut v = vec![0u64; KEYSTREAM_ELEMS];
    let bytes = (KEYSTREAM_MASKS * KEYSTREAM_ELEMS * modulus.stream_bytes_per_element()) as f64;
    Box::new(move || {
        // The streams run on: every batch is fresh key stream.
        apply_masks(black_box(&mut v), modulus, &mut streams);
        bytes
    })
}

/// Bytes read + written by the aggregation's add loop over memory, not cache.
fn memory_batch(modulus: Modulus) -> Box<dyn FnMut() -> f64> {
    // Nonzero fills, so every page is really written before timing starts.
    let x = vec![0x0123_4567u64; MEMORY_ELEMS];
    let mut acc = vec![1u64; MEMORY_ELEMS];
    let bytes = (MEMORY_ELEMS * 24) as f64;
    Box::new(move || {
        modulus.add_assign(black_box(&mut acc), black_box(&x));
        bytes
    })
}

/// X25519 agreements through the protocol's wrapper.
fn x25519_batch() -> Box<dyn FnMut() -> f64> {
    let own = DhKeyPair::from_secret_bytes(&[0x42; 32]);
    let peers: Vec<[u8; 32]> = (0..X25519_PEERS)
        .map(|i| {
            let mut s = [0x17u8; 32];
            s[0] = i as u8;
            DhKeyPair::from_secret_bytes(&s).public()
        })
        .collect();
    Box::new(move || {
        for p in &peers {
            black_box(own.agree(black_box(p)));
        }
        X25519_PEERS as f64
    })
}
