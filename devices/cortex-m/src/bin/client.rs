//! The live device client: speaks the framed serial protocol on USART1 to `secagg gateway`,
//! which relays its messages to `secagg server`. Per stage it logs one JSON line (instructions,
//! bytes, RAM) on the semihosting console; it exits when its round ends.
//!
//! Its CSPRNG (ChaCha20) is seeded once at boot from the entropy source ([`host::entropy`]:
//! the host's /dev/urandom through semihosting under QEMU, the TRNG on a board), never from
//! the gateway.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use secagg_core::client::Client;
use secagg_device::driver::DeviceClient;
use secagg_device::frame::{self, Decoder, Reassembler, kind};
use secagg_device::{heap, host, input, stack, uart};

/// Largest server message the device accepts (NeighbourKeys or UnmaskRequest of a large
/// malicious-model round fit with room to spare).
const MAX_MESSAGE: usize = 16 * 1024;

fn send_frame(k: u8, payload: &[u8]) {
    let mut out = Vec::with_capacity(frame::max_frame_len(payload.len()));
    frame::encode(k, payload, &mut out);
    uart::write(&out);
}

/// Sends a reply's pieces as PART frames of at most MAX_PAYLOAD bytes; `end` closes it.
struct Sender {
    pending: Vec<u8>,
}

impl Sender {
    fn piece(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            let room = frame::MAX_PAYLOAD - self.pending.len();
            let n = room.min(b.len());
            self.pending.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.pending.len() == frame::MAX_PAYLOAD {
                send_frame(kind::PART, &self.pending);
                self.pending.clear();
            }
        }
    }

    fn end(&mut self) {
        send_frame(kind::END, &self.pending);
        self.pending.clear();
    }
}

#[entry]
fn main() -> ! {
    secagg_device::init();
    uart::init();
    let Some(seed) = host::entropy() else {
        hprintln!("{{\"event\":\"error\",\"reason\":\"no entropy\"}}");
        host::exit(false)
    };
    let mut rng = ChaCha20Rng::from_seed(seed);
    send_frame(kind::HELLO, &input::DIM.to_le_bytes());
    hprintln!("{{\"event\":\"boot\",\"dim\":{}}}", input::DIM);
    let mut dec = Decoder::default();
    let mut re = Reassembler::new(MAX_MESSAGE);
    let mut client: Option<DeviceClient> = None;
    let mut sender = Sender {
        pending: Vec::with_capacity(frame::MAX_PAYLOAD),
    };
    loop {
        dec.push(&[uart::read_byte()]);
        while let Some(f) = dec.next_frame() {
            match f.kind {
                kind::ASSIGN => {
                    let Ok(id) = <[u8; 4]>::try_from(f.payload.as_slice()) else {
                        continue;
                    };
                    re.reset();
                    client = Some(DeviceClient::new(Client::streamed(
                        u32::from_le_bytes(id),
                        input::DIM,
                    )));
                }
                kind::PART | kind::END => {
                    let msg = match re.push(f.kind, &f.payload) {
                        Ok(Some(m)) => m,
                        Ok(None) => continue,
                        Err(_) => {
                            send_frame(kind::REFUSED, b"server message over the device's limit");
                            client = None;
                            continue;
                        }
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
                        Err(e) => {
                            let reason = alloc::format!("{e}");
                            hprintln!("{{\"event\":\"refused\",\"reason\":{:?}}}", reason);
                            send_frame(kind::REFUSED, reason.as_bytes());
                            // One round per boot: a refused or aborted round ends the run.
                            host::exit(false);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
