//! Server and client messages decode without panicking, and what decodes re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secagg_core::messages::{ClientMessage, ServerMessage};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut cfg = common::config(sel & 1 == 1);
    cfg.bits = 1 + (sel >> 1) % 64;
    if cfg.validate().is_err() {
        return;
    }
    if let Ok(m) = ServerMessage::decode(rest, Some(&cfg)) {
        assert_eq!(ServerMessage::decode(&m.encode(), Some(&cfg)).ok(), Some(m));
    }
    let _ = ServerMessage::decode(rest, None);
    if let Ok(m) = ClientMessage::decode(rest, &cfg) {
        assert_eq!(ClientMessage::decode(&m.encode(), &cfg).ok(), Some(m));
    }
});
