//! The smaller decoders: round parameters, id sets, Shamir shares, packed vectors, .npy files,
//! saved client states.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secagg_core::client::ClientRound;
use secagg_core::codec::Reader;
use secagg_core::config::RoundConfig;
use secagg_core::idset::IdSet;
use secagg_core::ring::Modulus;
use secagg_core::shamir::Share;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let _ = RoundConfig::decode(&mut Reader::new(rest));
    let _ = IdSet::decode(&mut Reader::new(rest), sel as u32 * 16);
    if let Ok(s) = Share::from_bytes(rest) {
        assert_eq!(Share::from_bytes(&s.to_bytes()).ok(), Some(s));
    }
    if let Some(m) = Modulus::new(1 + sel % 64) {
        let len = rest.len() * 8 / m.bits() as usize;
        let _ = m.unpack(rest, len);
        let mut acc = vec![7u64 & m.mask(); len];
        if m.unpack_add(rest, &mut acc).is_err() {
            assert!(
                acc.iter().all(|x| *x == 7 & m.mask()),
                "a rejected vector changed the sum"
            );
        }
    }
    let _ = secagg_sim::npy::parse(rest);
    // A saved client state is canonical: whatever imports exports to the same bytes.
    if let Ok(round) = ClientRound::import_state(data) {
        match round.export_state() {
            Ok(saved) => assert_eq!(saved.as_bytes(), data, "saved state not canonical"),
            Err(e) => panic!("an imported state does not export: {e}"),
        }
    }
});
