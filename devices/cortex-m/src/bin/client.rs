//! The live device client: speaks the framed serial protocol on USART1 to `secagg gateway`,
//! which relays its messages to `secagg server`. Per stage it logs one JSON line (instructions,
//! bytes, RAM) on the semihosting console; it exits when its round ends.
//!
//! Its CSPRNG ([`DeviceRng`], fast-key-erasure ChaCha20) is seeded once at boot from the
//! entropy source (`trng::seed`: the RNG peripheral on a board, the host's /dev/urandom through
//! semihosting under QEMU with the `qemu` feature), never from the gateway. Its identity key and roster are built in (`build.rs`, [`provision`]): it takes
//! part only in malicious-model PKI rounds, at its own line of its own roster, and in one
//! round per boot.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use secagg_core::crypto::IdentityKey;
use secagg_device::driver::DeviceClient;
use secagg_device::frame::{self, Decoder, Reassembler, kind};
use secagg_device::rng::DeviceRng;
use secagg_device::{heap, host, input, stack, uart};

#[path = "../provision.rs"]
mod provision;

/// The identity key, roster and min_clients floor built in by `build.rs`.
mod provisioned {
    include!(concat!(env!("OUT_DIR"), "/provisioned.rs"));
}

/// Largest server message the device accepts (NeighbourKeys or UnmaskRequest of a large
/// malicious-model round fit with room to spare).
const MAX_MESSAGE: usize = 16 * 1024;

/// Join challenges the device answers in one boot (docs/SECURITY.md §4b).
const MAX_CHALLENGES: u8 = 3;

fn send_frame(k: u8, payload: &[u8]) {
    let mut out = Vec::with_capacity(frame::max_frame_len(payload.len()));
    frame::encode(k, payload, &mut out);
    uart::write(&out);
}

/// Sends a reply's pieces as PART frames of at most MAX_PAYLOAD bytes; `end` closes it. The
/// first frame of a reply opens with a delimiter, the others follow it back to back.
struct Sender {
    pending: Vec<u8>,
    opened: bool,
}

impl Sender {
    fn frame(&mut self, k: u8) {
        let mut out = Vec::with_capacity(frame::max_frame_len(self.pending.len()));
        if !self.opened {
            out.push(frame::DELIMITER);
            self.opened = true;
        }
        frame::encode_frame(k, &self.pending, &mut out);
        uart::write(&out);
        self.pending.clear();
    }

    fn piece(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            let room = frame::MAX_PAYLOAD - self.pending.len();
            let n = room.min(b.len());
            self.pending.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.pending.len() == frame::MAX_PAYLOAD {
                self.frame(kind::PART);
            }
        }
    }

    fn end(&mut self) {
        self.frame(kind::END);
        self.opened = false;
    }
}

/// Ends this boot: logs and sends the reason (the gateway reports it), then exits.
fn refuse(kind_name: &str, reason: &str) -> ! {
    hprintln!(
        "{{\"event\":\"refused\",\"kind\":\"{}\",\"reason\":{:?}}}",
        kind_name,
        reason
    );
    send_frame(kind::REFUSED, reason.as_bytes());
    host::exit(false)
}

#[entry]
fn main() -> ! {
    secagg_device::init();
    uart::init();
    let mut rng = match DeviceRng::from_entropy() {
        Ok(r) => r,
        Err(e) => {
            hprintln!("{{\"event\":\"error\",\"reason\":{:?}}}", e.reason());
            host::exit(false)
        }
    };
    let Some(identity_seed) = provisioned::IDENTITY_SEED else {
        refuse(
            "not-provisioned",
            provision::ProvisionError::NotProvisioned.reason(),
        )
    };
    let identity_public = IdentityKey::from_seed(&identity_seed).public();
    if let Err(e) = provision::own_id(&IdentityKey::from_seed(&identity_seed), provisioned::ROSTER)
    {
        refuse("not-provisioned", e.reason())
    }
    // HELLO: the input length and the identity public key the gateway joins with (the
    // private key never leaves the device).
    let mut hello = Vec::with_capacity(36);
    hello.extend_from_slice(&input::DIM.to_le_bytes());
    hello.extend_from_slice(&identity_public);
    send_frame(kind::HELLO, &hello);
    hprintln!("{{\"event\":\"boot\",\"dim\":{}}}", input::DIM);
    let mut dec = Decoder::default();
    let mut re = Reassembler::new(MAX_MESSAGE);
    let mut client: Option<DeviceClient> = None;
    // Join proofs signed this boot: a gateway that retries its Join needs a few, one that
    // asks for more only wants to drain the battery.
    let mut challenges = 0u8;
    let mut sender = Sender {
        pending: Vec::with_capacity(frame::MAX_PAYLOAD),
        opened: false,
    };
    loop {
        dec.push(&[uart::read_byte()]);
        while let Some(f) = dec.next_frame() {
            match f.kind {
                // The server's Join challenge, relayed by the gateway (docs/SECURITY.md §4b):
                // proves the device holds the key of its HELLO. Signed only before the round
                // starts, and only under the join-proof label.
                kind::CHALLENGE if client.is_none() && challenges < MAX_CHALLENGES => {
                    challenges += 1;
                    let Some((nonce, name)) = f.payload.split_first_chunk::<32>() else {
                        continue;
                    };
                    let Ok(name) = core::str::from_utf8(name) else {
                        continue;
                    };
                    let t0 = secagg_device::clock::instructions();
                    let msg = secagg_core::messages::join_proof_signed_bytes(
                        nonce,
                        &identity_public,
                        name,
                    );
                    let sig = IdentityKey::from_seed(&identity_seed).sign(&msg);
                    send_frame(kind::PROOF, &sig);
                    hprintln!(
                        "{{\"event\":\"stage\",\"stage\":\"join\",\"instructions\":{},\
                         \"bytes_in\":{},\"bytes_out\":{},\"heap_peak_bytes\":{},\
                         \"stack_peak_bytes\":{}}}",
                        secagg_device::clock::instructions() - t0,
                        f.payload.len(),
                        sig.len(),
                        heap::peak(),
                        stack::peak()
                    );
                }
                kind::ASSIGN => {
                    let Ok(id) = <[u8; 4]>::try_from(f.payload.as_slice()) else {
                        continue;
                    };
                    // One round per boot: a second assignment (a gateway re-running the
                    // device's input, or hiding a round it made up) ends the boot.
                    if client.is_some() {
                        refuse("reassigned", "a second ASSIGN in one boot");
                    }
                    let c = provision::device_client(
                        u32::from_le_bytes(id),
                        input::DIM,
                        IdentityKey::from_seed(&identity_seed),
                        provisioned::ROSTER,
                        provisioned::MIN_CLIENTS,
                    )
                    .unwrap_or_else(|e| refuse("wrong-id", e.reason()));
                    // The device's own bounds (its value range, the largest round its RAM
                    // holds): refused at RoundStart rather than a panic later.
                    client = Some(DeviceClient::new(secagg_device::capacity::bounded(c)));
                }
                kind::PART | kind::END => {
                    let msg = match re.push(f.kind, &f.payload) {
                        Ok(Some(m)) => m,
                        Ok(None) => continue,
                        Err(_) => refuse("oversized", "server message over the device's limit"),
                    };
                    let Some(c) = client.as_mut() else { continue };
                    let r = c.handle(&msg, &mut rng, &mut input::fill, &mut |b| match b {
                        Some(b) => sender.piece(b),
                        None => sender.end(),
                    });
                    drop(msg);
                    match r {
                        Ok(cost) => {
                            hprintln!(
                                "{{\"event\":\"stage\",\"stage\":\"{}\",\"instructions\":{},\
                             \"bytes_in\":{},\"bytes_out\":{},\"heap_peak_bytes\":{},\
                             \"stack_peak_bytes\":{}}}",
                                cost.stage.map(|s| s.name()).unwrap_or("end"),
                                cost.instructions,
                                cost.bytes_in,
                                cost.bytes_out,
                                heap::peak(),
                                stack::peak()
                            );
                            if cost.stage.is_none() {
                                // Done after the last reply: this boot's round is over.
                                hprintln!(
                                    "{{\"event\":\"done\",\"ram_peak_bytes\":{}}}",
                                    secagg_device::ram_peak()
                                );
                                host::exit(true);
                            }
                        }
                        // One round per boot: a refused or aborted round ends the run.
                        Err(e) => refuse(provision::error_kind(&e), &alloc::format!("{e}")),
                    }
                }
                _ => {}
            }
        }
    }
}
