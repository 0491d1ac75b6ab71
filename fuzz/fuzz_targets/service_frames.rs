//! What a client parses from an untrusted server: gRPC frames (protobuf bytes) into RoundStart
//! (round parameters with the input encoding's bytes, roster) and the later stage messages.
//! Parsing never panics; an accepted RoundStart re-encodes to itself; an accepted float
//! encoding derives its scale, and accepted DP parameters build their encoding and encode a
//! small update, without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_service::convert;
use secagg_service::proto;
use secagg_service::proto::server_frame::Body;
use secagg_sim::input_encoding::InputEncoding;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = proto::ServerFrame::decode(data) else {
        return;
    };
    let Some(Body::RoundStart(start)) = frame.body.clone() else {
        // A stage message, parsed against a small fixed round.
        let config = secagg_core::RoundConfig {
            round_id: 1,
            round_seed: [0; 32],
            num_clients: 5,
            min_clients: 3,
            degree: 4,
            threshold: 3,
            graph: secagg_core::config::GraphKind::Complete,
            bits: 32,
            dim: 8,
            prg: secagg_core::PrgKind::Aes128Ctr,
            model: secagg_core::ThreatModel::HonestButCurious,
            pki: false,
            encoding: Vec::new(),
            validation: None,
        };
        let _ = convert::parse_server_frame(frame, &config);
        return;
    };
    let Ok(info) = convert::parse_round_start(start) else {
        return;
    };
    let again = convert::round_start(&info.config, info.client_id, &info.roster);
    let Some(Body::RoundStart(again)) = again.body else {
        panic!("round_start built no RoundStart");
    };
    let back = convert::parse_round_start(again).expect("a re-encoded RoundStart parses");
    assert_eq!(back.config, info.config);
    assert_eq!(back.encoding, info.encoding);
    assert_eq!(back.roster, info.roster);
    let _ = info.encoding.float(&info.config);
    if let InputEncoding::Dp(dp) = &info.encoding
        && dp.dim <= 1024
        && let Ok(enc) = dp.encoding(&info.config)
    {
        let x: Vec<f64> = (0..dp.dim).map(|i| (i as f64 * 0.1).sin()).collect();
        let _ = enc.encode(&x, &mut ChaCha20Rng::seed_from_u64(1));
    }
});
