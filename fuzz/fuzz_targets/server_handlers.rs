//! The server state machine fed an honest round's messages, mutated, reordered, dropped or
//! replaced by arbitrary bytes, with timeouts and disconnections in between: never panics, and
//! a released aggregate always has at least min_clients survivors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secagg_core::server::{Outcome, ServerRound};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut ops)) = data.split_first() else {
        return;
    };
    let malicious = sel & 1 == 1;
    let cfg = common::config(malicious);
    let roster = malicious.then(|| secagg_sim::harness::make_pki(6, 5).1);
    let Ok(mut server) = ServerRound::new(cfg.clone(), roster, 100) else {
        return;
    };
    server.start(0);
    let msgs: Vec<&(secagg_core::Stage, bool, u32, Vec<u8>)> = common::transcript(malicious)
        .iter()
        .filter(|m| !m.1)
        .collect();
    let mut now = 0u64;
    let mut next = 0usize;
    while let [op, a, b, tail @ ..] = ops {
        ops = tail;
        now += 1;
        match op % 6 {
            // The next honest message, as is.
            0 | 1 => {
                if let Some(m) = msgs.get(next) {
                    let _ = server.handle_message(now, m.2, &m.3);
                    next += 1;
                }
            }
            // An honest message with one byte changed, or cut short.
            2 => {
                if let Some(m) = msgs.get(*a as usize % msgs.len().max(1)) {
                    let mut bytes = m.3.clone();
                    if !bytes.is_empty() {
                        let p = *b as usize % bytes.len();
                        if b & 1 == 0 {
                            bytes[p] ^= a | 1
                        } else {
                            bytes.truncate(p)
                        }
                    }
                    let _ = server.handle_message(now, m.2, &bytes);
                }
            }
            // Arbitrary bytes from an arbitrary id.
            3 => {
                let n = (*b as usize).min(ops.len());
                let _ = server.handle_message(now, *a as u32 % 8, &ops[..n]);
                ops = &ops[n..];
            }
            4 => server.handle_timeout(now + 1000),
            _ => server.client_gone(now, *a as u32 % 8),
        }
        while server.poll_outgoing().is_some() {}
    }
    if let Some(Outcome::Released { survivors, .. }) = server.outcome() {
        assert!(survivors.len() >= cfg.min_clients as usize);
    }
});
