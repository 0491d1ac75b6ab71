//! A client fed an honest round's server messages up to some point, then arbitrary or mutated
//! bytes: typed errors, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use secagg_core::client::{Client, ClientRound};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let malicious = sel & 1 == 1;
    let to_client: Vec<&Vec<u8>> = common::transcript(malicious)
        .iter()
        .filter(|m| m.1 && m.2 == 1)
        .map(|m| &m.3)
        .collect();
    let mut client = Client::new(1, common::inputs()[0].clone());
    if malicious {
        let (keys, roster) = secagg_sim::harness::make_pki(6, 5);
        if let Some(k) = keys.into_iter().next() {
            client = client.with_pki(k, roster);
        }
    }
    let mut round = ClientRound::New(client);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let honest = (sel >> 1) as usize % (to_client.len() + 1);
    for m in &to_client[..honest] {
        let _ = round.handle(m, &mut rng);
    }
    // Then the fuzzer's bytes: either raw, or the next honest message with them xor-ed in.
    match to_client.get(honest) {
        Some(next) if sel & 2 == 2 => {
            let mut b = (*next).clone();
            for (x, y) in b.iter_mut().zip(rest) {
                *x ^= y;
            }
            let _ = round.handle(&b, &mut rng);
        }
        _ => {
            let _ = round.handle(rest, &mut rng);
        }
    }
});
