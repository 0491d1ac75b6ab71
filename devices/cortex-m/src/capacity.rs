//! The largest round the device's RAM holds, and the client configuration that refuses a
//! larger one at RoundStart (a typed `BadParameters` error, before any key is drawn) instead
//! of running the heap out, and panicking, at a later stage.
//!
//! The client's heap does not grow with d (the masked input is streamed). It grows with k
//! (per neighbour: its keys and shared secrets, the shares sent and held, a PRG state) and
//! with n: the id sets (n/8 bytes each), the graph (12 bytes per member of U1 while it is
//! built, 8 after), and in a PKI round the roster (32 bytes per client, copied to the heap)
//! and the malicious model's UnmaskRequest, which carries every survivor's signature of U3
//! (about 70 bytes per client on the wire and 110 more decoded). [`model_bytes`] is the peak
//! over the stages, fitted to the heap measured on the host (the tests below; 64-bit
//! pointers and vector headers, so it overestimates the 32-bit device) and rounded up.

use secagg_core::client::StreamedClient;

use crate::heap::ARENA_BYTES;

/// The device's values are 16-bit ([`crate::input::value`]): a round with b < 16 is refused
/// at RoundStart.
pub const INPUT_BITS: u8 = 16;

/// Neighbours the device accepts: the README's RAM goal is for k ≤ 32.
pub const MAX_DEGREE: u32 = 32;

/// Largest server message the device reassembles (`bin/client.rs` refuses a longer one).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Arena kept free for what the model does not count: the frame decoder's and sender's
/// buffers, a message's reassembly growing, and the allocator's fragmentation.
pub const RESERVE_BYTES: usize = 8 * 1024;

/// The client's heap peak, in bytes, in a round of n clients and degree k, any d, with or
/// without a PKI (malicious model); the largest of its stages.
pub const fn model_bytes(n: u32, k: u32, pki: bool) -> usize {
    let (n, k) = (n as usize, k as usize);
    let roster = if pki { 32 * n } else { 0 };
    // NeighbourKeys: the message, the graph being built, the keys and shares.
    let neighbours = 3_584 + roster + 12 * n + 1_088 * k;
    // SharesForYou: k + 1 PRG states, the shares decrypted and held.
    let masking = 3_584 + roster + n / 2 + 1_344 * k;
    // UnmaskRequest: every survivor's U3 signature in the malicious model.
    let unmask = if pki {
        512 + roster + 184 * n + 576 * k
    } else {
        4_096 + 8 * n + 256 * k
    };
    max(neighbours, max(masking, unmask))
}

/// The largest server message of such a round, in bytes: NeighbourKeys (U1's bitmap, the
/// Merkle path, k key entries) or, in the malicious model, the UnmaskRequest (every
/// survivor's signature of U3, about 70 bytes per client, and each neighbour's masked-with
/// statement, about 80 bytes).
pub const fn largest_message_bytes(n: u32, k: u32, pki: bool) -> usize {
    let (n, k) = (n as usize, k as usize);
    let neighbours = 1_024 + n / 8 + if pki { 176 } else { 112 } * k;
    let unmask = if pki {
        512 + 70 * n + 80 * k
    } else {
        256 + n / 4
    };
    max(neighbours, unmask)
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The most clients a round of degree [`MAX_DEGREE`] may have for [`model_bytes`] to fit in
/// the arena less [`RESERVE_BYTES`], and its largest message in [`MAX_MESSAGE_BYTES`].
pub const fn max_num_clients(pki: bool) -> u32 {
    // model_bytes grows with n: bisect over 2..=2^20.
    let (mut lo, mut hi) = (2u32, secagg_core::config::MAX_CLIENTS);
    while lo < hi {
        let mid = hi - (hi - lo) / 2;
        if model_bytes(mid, MAX_DEGREE, pki) + RESERVE_BYTES <= ARENA_BYTES
            && largest_message_bytes(mid, MAX_DEGREE, pki) <= MAX_MESSAGE_BYTES
        {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Clients the device accepts: it joins only PKI rounds (its identity key and roster are
/// built in), where the UnmaskRequest's signatures dominate its RAM and its largest message.
pub const MAX_NUM_CLIENTS: u32 = max_num_clients(true);

/// `client` with the device's bounds: its value range and the largest round its RAM holds.
pub fn bounded(client: StreamedClient) -> StreamedClient {
    client
        .with_input_bits(INPUT_BITS)
        .with_capacity(MAX_NUM_CLIENTS, MAX_DEGREE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use alloc::vec::Vec;
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::Cell;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use secagg_core::ClientError;
    use secagg_core::client::{AfterMaskedInput, Client, ClientRound};
    use secagg_core::crypto::IdentityKey;
    use secagg_core::messages::ServerMessage;
    use secagg_core::server::ServerRound;
    use secagg_core::{GraphKind, PrgKind, RoundConfig, ThreatModel};
    use std::alloc::System;

    // Live and peak heap bytes of this thread (the tests of other threads do not count).
    std::thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = LIVE.try_with(|c| {
                c.set(c.get() + l.size());
                let _ = PEAK.try_with(|p| p.set(p.get().max(c.get())));
            });
            // SAFETY: forwarded to the system allocator.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(l.size())));
            // SAFETY: `p` came from `alloc` with this layout.
            unsafe { System.dealloc(p, l) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn live() -> usize {
        LIVE.with(Cell::get)
    }

    fn config(n: u32, k: u32, dim: u32, pki: bool) -> RoundConfig {
        let complete = k >= n - 1;
        RoundConfig {
            round_id: 1,
            round_seed: [5; 32],
            num_clients: n,
            min_clients: (n * 2 / 3).max(k / 2 + 1).max(2),
            degree: k,
            threshold: (k / 2 + 1).max(2),
            graph: if complete {
                GraphKind::Complete
            } else {
                GraphKind::Harary
            },
            bits: 16,
            dim,
            prg: PrgKind::ChaCha20,
            model: if pki {
                ThreatModel::Malicious
            } else {
                ThreatModel::HonestButCurious
            },
            pki,
            encoding: Vec::new(),
            validation: None,
        }
    }

    /// Runs a round of n clients, degree k, with client 1 the device's (streamed, bounded),
    /// and returns the device client's heap peak over its stages: what it holds between
    /// messages plus what each handler allocates, plus the server message it is handling.
    ///
    /// With `pki`, the round is the device's own kind (malicious model, identity keys, a
    /// roster of n keys, which the client copies to its heap).
    fn device_peak(n: u32, k: u32, dim: u32, pki: bool) -> (usize, usize) {
        let cfg = config(n, k, dim, pki);
        let ids: Vec<IdentityKey> = (1..=n)
            .map(|id| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&id.to_le_bytes());
                IdentityKey::from_seed(&seed)
            })
            .collect();
        let roster: Vec<[u8; 32]> = ids.iter().map(IdentityKey::public).collect();
        let mut server = ServerRound::new(cfg, pki.then(|| roster.clone()), 1000).unwrap();
        server.start(0);
        let mut ids = ids.into_iter();
        let device_id = ids.next().unwrap();
        let mut others: Vec<(ClientRound, ChaCha20Rng)> = (2..=n)
            .zip(ids)
            .map(|(id, idk)| {
                let x = (0..dim).map(|j| u64::from((id + j) & 0xFF)).collect();
                let mut c = Client::new(id, x);
                if pki {
                    c = c.with_pki(idk, roster.clone());
                }
                (
                    ClientRound::New(c),
                    ChaCha20Rng::seed_from_u64(u64::from(id)),
                )
            })
            .collect();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut device = Client::streamed(1, dim);
        let base = live();
        if pki {
            device = device.with_pki(device_id, roster.clone());
        }
        // Unbounded, to measure rounds over the bound too.
        let mut fresh = Some(device.with_input_bits(INPUT_BITS));
        let (mut nb, mut sh, mut co, mut un) = (None, None, None, None);
        let mut resident = live() - base;
        let mut peak = resident;
        let mut largest = 0;
        let mut now = 0;
        while server.outcome().is_none() && now < 20 {
            let mut out = Vec::new();
            while let Some(m) = server.poll_outgoing() {
                out.push(m);
            }
            for (to, bytes) in out {
                if to != 1 {
                    let (c, r) = &mut others[to as usize - 2];
                    if let Some(m) = c.handle(&bytes, r).unwrap() {
                        server.handle_message(now, to, &m).unwrap();
                    }
                    continue;
                }
                // What the device sends piece by piece (never held whole): collected here in
                // a buffer allocated before the measurement starts.
                let mut upload: Vec<u8> = Vec::with_capacity(dim as usize * 8 + 4096);
                let base = live();
                PEAK.with(|p| p.set(base));
                let mut reply = Vec::new();
                if let Some(c) = fresh.take() {
                    let (s, m) = c.start(&bytes, &mut rng).unwrap();
                    nb = Some(s);
                    reply = m;
                } else if let Some(s) = nb.take() {
                    let (s, m) = s.handle(&bytes, &mut rng).unwrap();
                    sh = Some(s);
                    reply = m;
                } else if let Some(s) = sh.take() {
                    let (next, mut st) = s.handle_streamed(&bytes).unwrap();
                    let mut chunk = std::vec![0u64; 256];
                    let mut piece = Vec::with_capacity(256 * 8);
                    upload.extend_from_slice(st.header());
                    while st.remaining() > 0 {
                        let m = st.remaining().min(256);
                        let at = st.position();
                        crate::input::fill(at, &mut chunk[..m]);
                        for x in &mut chunk[..m] {
                            *x &= 0xFF;
                        }
                        piece.clear();
                        st.mask_chunk(&mut chunk[..m], &mut piece).unwrap();
                        upload.extend_from_slice(&piece);
                    }
                    drop((chunk, piece));
                    let trailer = st.finish().unwrap();
                    upload.extend_from_slice(&trailer);
                    match next {
                        AfterMaskedInput::Unmask(u) => un = Some(u),
                        AfterMaskedInput::Consistency(c) => co = Some(c),
                    }
                } else if let Some(c) = co.take() {
                    let (u, m) = c.handle(&bytes).unwrap();
                    un = Some(u);
                    reply = m;
                } else if let Some(u) = un.take() {
                    reply = u.handle(&bytes).unwrap();
                }
                let stage_peak = PEAK.with(Cell::get) - base;
                peak = peak.max(resident + stage_peak + bytes.len());
                largest = largest.max(bytes.len());
                if std::env::var_os("SECAGG_RAM_STAGES").is_some() {
                    std::println!(
                        "  message {} B: resident {resident} + handler {stage_peak} B",
                        bytes.len()
                    );
                }
                resident = (resident + live()).saturating_sub(base + reply.capacity());
                for m in [&reply, &upload] {
                    if !m.is_empty() {
                        server.handle_message(now, 1, m).unwrap();
                    }
                }
                drop(reply);
                // The masked input above is not the device's input (its values are masked
                // to 8 bits for the other clients' sum); only the device's memory matters.
            }
            now += 1;
        }
        (peak, largest)
    }

    #[test]
    fn the_device_refuses_a_forged_huge_round_at_round_start() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for (n, k) in [
            (secagg_core::config::MAX_CLIENTS, 20),
            (MAX_NUM_CLIENTS + 1, 20),
            (1_000, MAX_DEGREE + 2),
        ] {
            let mut cfg = config(n, k, 100, false);
            cfg.min_clients = n / 2;
            cfg.validate().unwrap();
            let start = ServerMessage::RoundStart(cfg).encode();
            let got = bounded(Client::streamed(1, 100)).start(&start, &mut rng);
            let Err(ClientError::BadParameters(m)) = got.map(|_| ()) else {
                panic!("n = {n}, k = {k}: accepted or another error");
            };
            assert!(m.contains("my memory"), "{m}");
        }
        let mut cfg = config(MAX_NUM_CLIENTS, MAX_DEGREE, 100, false);
        cfg.min_clients = MAX_NUM_CLIENTS / 2;
        let start = ServerMessage::RoundStart(cfg).encode();
        assert!(
            bounded(Client::streamed(1, 100))
                .start(&start, &mut rng)
                .is_ok()
        );
        // Below the device's 16-bit values.
        let mut cfg = config(10, 4, 100, false);
        cfg.bits = 12;
        let start = ServerMessage::RoundStart(cfg).encode();
        let got = bounded(Client::streamed(1, 100)).start(&start, &mut rng);
        let got = got.map(|_| ());
        assert!(matches!(got, Err(ClientError::BadParameters(_))), "{got:?}");
    }

    #[test]
    fn the_bound_fits_the_arena() {
        for pki in [false, true] {
            let n = max_num_clients(pki);
            assert!(model_bytes(n, MAX_DEGREE, pki) + RESERVE_BYTES <= ARENA_BYTES);
            assert!(largest_message_bytes(n, MAX_DEGREE, pki) <= MAX_MESSAGE_BYTES);
            assert!(
                model_bytes(n + 1, MAX_DEGREE, pki) + RESERVE_BYTES > ARENA_BYTES
                    || largest_message_bytes(n + 1, MAX_DEGREE, pki) > MAX_MESSAGE_BYTES
            );
        }
        assert!(max_num_clients(false) > 2_000, "{}", max_num_clients(false));
        const { assert!(MAX_NUM_CLIENTS >= 150) };
        std::println!(
            "max clients at k = {MAX_DEGREE}: {} with a PKI, {} without",
            max_num_clients(true),
            max_num_clients(false)
        );
    }

    /// The model bounds the measured heap (64-bit host: pointers and vector headers are
    /// twice the device's, so this overestimates the device).
    #[test]
    fn the_model_bounds_the_measured_heap() {
        for (n, k, d, pki) in [
            (40, 8, 1_000, false),
            (400, 8, 100, false),
            (40, 24, 100, false),
            (150, 8, 100, true),
            (40, 24, 100, true),
        ] {
            let ((got, message), model) = (device_peak(n, k, d, pki), model_bytes(n, k, pki));
            assert!(
                got <= model,
                "n = {n}, k = {k}, pki {pki}: {got} B > {model} B"
            );
            let limit = largest_message_bytes(n, k, pki);
            assert!(
                message <= limit,
                "n = {n}, k = {k}, pki {pki}: message {message} B"
            );
        }
    }

    /// `cargo test --lib --target x86_64-unknown-linux-gnu --release -- --ignored
    /// --nocapture ram_table`: the figures of the README (heap vs n, k, d).
    #[test]
    #[ignore]
    fn ram_table() {
        for (n, k, d, pki) in [
            (100, 20, 1_000, false),
            (100, 20, 1_000, true),
            (100, 20, 10_000, true),
            (100, 8, 1_000, true),
            (100, 32, 1_000, true),
            (500, 20, 1_000, true),
            (1_000, 20, 1_000, true),
            (1_000, 20, 1_000, false),
            (3_000, 20, 1_000, false),
            (200, 32, 1_000, true),
        ] {
            let (got, message) = device_peak(n, k, d, pki);
            std::println!(
                "n = {n:>5}, k = {k:>2}, d = {d:>6}, pki {pki:>5}: heap peak {got:>6} B, model {:>6} \
                 B; largest message {message:>6} B, model {:>6} B",
                model_bytes(n, k, pki),
                largest_message_bytes(n, k, pki),
            );
        }
    }
}
