//! `secagg gateway`: one device on a serial line, relayed to `secagg server` as that device's
//! gRPC client (what a phone or hub does for a sensor).
//!
//! The gateway relays opaque protocol messages: it converts between the serial framing
//! (`devices/cortex-m/src/frame.rs`, shared with the firmware) and the gRPC frames of
//! `secagg.v1`, and holds none of the device's secrets (keys, seed, shares and input stay on
//! the device; the gateway sees what the server sees). A device that stays silent for
//! `--silence` after a request, disconnects, or refuses is a dropout: the gateway closes its
//! stream and the round goes on without it.

// Shared with the firmware, which uses the parts the gateway does not.
#[allow(dead_code)]
#[path = "../../../devices/cortex-m/src/frame.rs"]
mod frame;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use secagg_core::RoundConfig;
use secagg_core::messages::{ClientMessage, ServerMessage};
use secagg_service::convert;
use secagg_service::proto;
use secagg_service::proto::secure_aggregation_client::SecureAggregationClient;
use secagg_service::proto::server_frame::Body as SBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::service_cmd::parse_duration;
use frame::{Decoder, Reassembler, kind};

/// Options of `secagg gateway`.
#[derive(Args)]
pub struct GatewayArgs {
    /// Server URL, e.g. http://127.0.0.1:7000.
    #[arg(long)]
    pub server: String,
    /// The device's serial line: tcp:HOST:PORT (e.g. QEMU's
    /// `-serial tcp:127.0.0.1:PORT,server=on`).
    #[arg(long)]
    pub serial: String,
    /// Name of the device in the round's JSON.
    #[arg(long, default_value = "device")]
    pub name: String,
    /// A device silent this long after a request is a dropout.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub silence: Duration,
    /// Give up when the server sends nothing for this long (waiting to join included).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep retrying to reach the serial line and the server for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub connect_retry: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Testing hook (a tampering gateway): flip one bit of the server's message to the
    /// device at this stage (advertise, share, masked-input, consistency, unmask), re-framed
    /// with a valid CRC so that only the device's own checks can catch it.
    #[arg(long, hide = true)]
    pub tamper_at: Option<String>,
}

/// Bytes one stage moved, on each side of the gateway.
#[derive(Debug, Default, Clone)]
struct StageBytes {
    /// Protocol message bytes to / from the device (secagg-core encodings).
    message_to_device: u64,
    message_from_device: u64,
    /// Bytes on the serial line (framing included).
    serial_to_device: u64,
    serial_from_device: u64,
    /// gRPC payload bytes (protobuf frames) from / to the server.
    grpc_from_server: u64,
    grpc_to_server: u64,
}

/// How the device's round ended, as the gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The server released the round (the device may or may not be among the survivors).
    Released,
    /// The server aborted the round.
    Aborted(String),
    /// The device went silent, disconnected, or sent what does not decode: a dropout.
    DeviceDropped(String),
    /// The device refused the round (its own checks).
    DeviceRefused(String),
}

struct Report {
    device_id: Option<u32>,
    round_id: Option<u64>,
    outcome: Outcome,
    stages: BTreeMap<String, StageBytes>,
    skipped: u64,
    /// Whether the server released the round, once it said so.
    round_released: Option<bool>,
}

/// The stage a server frame belongs to.
fn stage_of(body: &SBody) -> &'static str {
    match body {
        SBody::RoundStart(_) => "advertise",
        SBody::NeighbourKeys(_) => "share",
        SBody::SharesForYou(_) => "masked-input",
        SBody::ConsistencyRequest(_) => "consistency",
        SBody::UnmaskRequest(_) => "unmask",
        SBody::RoundEnd(_) => "end",
    }
}

/// The protocol message as serial frames.
fn frames_of(msg: &[u8]) -> Vec<u8> {
    let frames = msg.len() / frame::MAX_PAYLOAD + 1;
    let mut out = Vec::with_capacity(frames * frame::max_frame_len(frame::MAX_PAYLOAD));
    frame::encode_message(msg, &mut out);
    out
}

async fn connect_serial(spec: &str, retry: Duration) -> Result<TcpStream, String> {
    let addr = spec
        .strip_prefix("tcp:")
        .ok_or_else(|| format!("--serial {spec:?}: use tcp:HOST:PORT"))?;
    let start = tokio::time::Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) if start.elapsed() >= retry => {
                return Err(format!("cannot reach the serial line {addr}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn connect_server(
    a: &GatewayArgs,
) -> Result<SecureAggregationClient<tonic::transport::Channel>, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(a.server.clone())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10));
    let start = tokio::time::Instant::now();
    loop {
        match endpoint.connect().await {
            Ok(ch) => {
                return Ok(SecureAggregationClient::new(ch)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20));
            }
            Err(e) if start.elapsed() >= a.connect_retry => {
                return Err(format!("cannot reach the server {}: {e}", a.server));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Reads serial bytes until a frame arrives, or `None` on silence or disconnection.
async fn next_device_frame(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    dec: &mut Decoder,
    silence: Duration,
) -> Result<frame::Frame, String> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = dec.next_frame() {
            return Ok(f);
        }
        match tokio::time::timeout(silence, rd.read(&mut buf)).await {
            Err(_) => return Err(format!("the device was silent for {silence:?}")),
            Ok(Ok(0)) => return Err("the device's serial line closed".into()),
            Ok(Err(e)) => return Err(format!("the device's serial line failed: {e}")),
            Ok(Ok(n)) => dec.push(&buf[..n]),
        }
    }
}

fn flip_one_bit(msg: &mut [u8]) {
    // Past the two-byte header, so the message still decodes as the same type.
    let i = 2 + (msg.len().saturating_sub(2)) / 2;
    if let Some(b) = msg.get_mut(i) {
        *b ^= 0x01;
    }
}

async fn relay(a: &GatewayArgs) -> Result<Report, String> {
    let serial = connect_serial(&a.serial, a.connect_retry).await?;
    let (mut rd, mut wr) = serial.into_split();
    let mut dec = Decoder::default();
    // The device announces itself first; nothing about the round exists yet.
    let hello = next_device_frame(&mut rd, &mut dec, a.timeout).await?;
    if hello.kind != kind::HELLO {
        return Err(format!(
            "the device opened with frame type {:#04x}, not HELLO",
            hello.kind
        ));
    }
    let mut grpc = connect_server(a).await?;
    let (tx, rx) = mpsc::channel::<proto::ClientFrame>(64);
    tx.send(proto::ClientFrame {
        body: Some(proto::client_frame::Body::Join(proto::Join {
            name: a.name.clone(),
            identity_public_key: Vec::new(),
            wire_version: convert::WIRE_VERSION,
        })),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut inbound = grpc
        .participate(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("the server refused the stream: {}", s.message()))?
        .into_inner();
    let mut report = Report {
        device_id: None,
        round_id: None,
        outcome: Outcome::Aborted("no RoundStart".into()),
        stages: BTreeMap::new(),
        skipped: 0,
        round_released: None,
    };
    let mut config: Option<RoundConfig> = None;
    let mut stage = "advertise";
    let mut awaiting_device = false;
    let mut reassembler = Reassembler::new(64 << 20);
    let mut buf = vec![0u8; 8192];
    'relay: loop {
        let silence = tokio::time::sleep(if awaiting_device {
            a.silence
        } else {
            a.timeout
        });
        tokio::select! {
            frame = inbound.message() => {
                let f = match frame {
                    Ok(Some(f)) => f,
                    Ok(None) => return Err("the server closed the stream".into()),
                    Err(s) => return Err(format!("the server stream failed: {}", s.message())),
                };
                let grpc_len = prost::Message::encoded_len(&f) as u64;
                let Some(body) = f.body else { continue };
                stage = stage_of(&body);
                let mut msg = match body {
                    SBody::RoundStart(s) => {
                        let info = convert::parse_round_start(s)
                            .map_err(|e| format!("the server sent an invalid RoundStart: {e}"))?;
                        report.device_id = Some(info.client_id);
                        report.round_id = Some(info.config.round_id);
                        let mut assign = Vec::new();
                        frame::encode(kind::ASSIGN, &info.client_id.to_le_bytes(), &mut assign);
                        wr.write_all(&assign).await.map_err(|e| e.to_string())?;
                        let bytes = ServerMessage::RoundStart(info.config.clone()).encode();
                        config = Some(info.config);
                        bytes
                    }
                    SBody::RoundEnd(end) => {
                        let done = if end.released {
                            ServerMessage::Done
                        } else {
                            ServerMessage::Abort(end.reason.clone())
                        };
                        // The device learns the end (and stops); a dead device does not matter.
                        let _ = wr.write_all(&frames_of(&done.encode())).await;
                        report.round_released = Some(end.released);
                        report.outcome = if end.released {
                            Outcome::Released
                        } else {
                            Outcome::Aborted(end.reason)
                        };
                        report.skipped = dec.skipped;
                        return Ok(report);
                    }
                    body => {
                        let Some(c) = &config else {
                            return Err("the server sent a request before RoundStart".into());
                        };
                        convert::parse_server_frame(proto::ServerFrame { body: Some(body) }, c)
                            .map_err(|e| format!("the server sent an invalid frame: {e}"))?
                            .encode()
                    }
                };
                if a.tamper_at.as_deref() == Some(stage) {
                    flip_one_bit(&mut msg);
                }
                let wire = frames_of(&msg);
                let st = report.stages.entry(stage.to_string()).or_default();
                st.grpc_from_server += grpc_len;
                st.message_to_device += msg.len() as u64;
                st.serial_to_device += wire.len() as u64;
                if wr.write_all(&wire).await.is_err() {
                    report.outcome = Outcome::DeviceDropped("the device's serial line closed".into());
                    break;
                }
                awaiting_device = true;
            }
            n = rd.read(&mut buf) => {
                let n = match n {
                    Ok(0) | Err(_) => {
                        report.outcome = Outcome::DeviceDropped("the device's serial line closed".into());
                        break;
                    }
                    Ok(n) => n,
                };
                dec.push(&buf[..n]);
                report.stages.entry(stage.to_string()).or_default().serial_from_device += n as u64;
                while let Some(f) = dec.next_frame() {
                    match f.kind {
                        kind::PART | kind::END => {
                            let msg = match reassembler.push(f.kind, &f.payload) {
                                Ok(Some(m)) => m,
                                Ok(None) => continue,
                                Err(_) => {
                                    report.outcome = Outcome::DeviceDropped(
                                        "the device sent an oversized message".into());
                                    break 'relay;
                                }
                            };
                            let Some(c) = &config else { continue };
                            let Ok(decoded) = ClientMessage::decode(&msg, c) else {
                                report.outcome = Outcome::DeviceDropped(
                                    "the device sent a message that does not decode".into());
                                break 'relay;
                            };
                            let st = report.stages.entry(stage.to_string()).or_default();
                            st.message_from_device += msg.len() as u64;
                            for cf in convert::client_frames(decoded) {
                                st.grpc_to_server += prost::Message::encoded_len(&cf) as u64;
                                tx.send(cf).await.map_err(|_| "the stream to the server closed")?;
                            }
                            awaiting_device = false;
                        }
                        kind::REFUSED => {
                            report.outcome = Outcome::DeviceRefused(
                                String::from_utf8_lossy(&f.payload).into_owned());
                            break 'relay;
                        }
                        _ => {}
                    }
                }
            }
            () = silence => {
                report.outcome = if awaiting_device {
                    Outcome::DeviceDropped(format!("the device was silent for {:?}", a.silence))
                } else {
                    Outcome::Aborted(format!("the server sent nothing for {:?}", a.timeout))
                };
                break;
            }
        }
    }
    report.skipped = dec.skipped;
    // Closing our side tells the server at once that the device is gone (after what was
    // already relayed, e.g. a masked input sent just before the device died); the round goes
    // on without it. Its end is still reported.
    drop(tx);
    while let Ok(Ok(Some(f))) = tokio::time::timeout(a.timeout, inbound.message()).await {
        if let Some(SBody::RoundEnd(end)) = f.body {
            report.round_released = Some(end.released);
            break;
        }
    }
    Ok(report)
}

fn print(report: &Report, json: bool) {
    let (outcome, reason) = match &report.outcome {
        Outcome::Released => ("released", String::new()),
        Outcome::Aborted(r) => ("aborted", r.clone()),
        Outcome::DeviceDropped(r) => ("device-dropped", r.clone()),
        Outcome::DeviceRefused(r) => ("device-refused", r.clone()),
    };
    if json {
        let stages: serde_json::Map<String, serde_json::Value> = report
            .stages
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    serde_json::json!({
                        "message_bytes_to_device": s.message_to_device,
                        "message_bytes_from_device": s.message_from_device,
                        "serial_bytes_to_device": s.serial_to_device,
                        "serial_bytes_from_device": s.serial_from_device,
                        "grpc_bytes_from_server": s.grpc_from_server,
                        "grpc_bytes_to_server": s.grpc_to_server,
                    }),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "device_id": report.device_id,
                "round_id": report.round_id,
                "outcome": outcome,
                "reason": reason,
                "serial_bytes_skipped": report.skipped,
                "round_released": report.round_released,
                "stages": stages,
            })
        );
    } else {
        println!(
            "device {:?} in round {:?}: {outcome} {reason}",
            report.device_id, report.round_id
        );
    }
}

/// Runs `secagg gateway`.
pub fn run(a: GatewayArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = rt.block_on(relay(&a))?;
    print(&report, a.json);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::frame::{self, Decoder, Reassembler, kind};

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            frame::encode_message(m, &mut out);
        }
        out
    }

    fn decode_all(bytes: &[u8], step: usize) -> (Vec<Vec<u8>>, u64) {
        let mut dec = Decoder::default();
        let mut re = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        for chunk in bytes.chunks(step) {
            dec.push(chunk);
            while let Some(f) = dec.next_frame() {
                if let Ok(Some(m)) = re.push(f.kind, &f.payload) {
                    out.push(m);
                }
            }
        }
        (out, dec.skipped)
    }

    #[test]
    fn crc_is_ieee() {
        assert_eq!(frame::crc32(&[b"123456789"]), 0xCBF4_3926);
    }

    #[test]
    fn messages_round_trip_in_any_split() {
        let big: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let bytes = frames(&[b"hello", &[], &big]);
        for step in [1, 3, 1024, bytes.len()] {
            let (msgs, skipped) = decode_all(&bytes, step);
            assert_eq!(msgs, vec![b"hello".to_vec(), vec![], big.clone()]);
            assert_eq!(skipped, 0);
        }
        // 5000 bytes in 5 frames: at most 12 bytes each of framing (1.2 %).
        let framed = frames(&[&big]).len();
        assert!(framed <= 4 * frame::max_frame_len(1024) + frame::max_frame_len(904));
        assert!(framed <= 5000 + 5 * 12, "{framed}");
    }

    #[test]
    fn payloads_of_every_shape_round_trip() {
        // COBS's edge cases: zeros, no zeros, and runs around its 254-byte blocks.
        for len in (0..600).chain([1019, 1020, 1021, 1024]) {
            for pattern in [0u8, 0xFF, 1] {
                let m: Vec<u8> = (0..len)
                    .map(|i| if pattern == 1 { (i % 3) as u8 } else { pattern })
                    .collect();
                let mut out = Vec::new();
                frame::encode(kind::END, &m, &mut out);
                assert!(out.len() <= frame::max_frame_len(len), "{len}");
                let (msgs, skipped) = decode_all(&out, 7);
                assert_eq!((msgs, skipped), (vec![m], 0), "len {len} pattern {pattern}");
            }
        }
    }

    #[test]
    fn garbage_between_frames_is_skipped() {
        // Pseudo-random bytes (zeros included), and garbage ending right before a frame.
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut bytes = vec![0x00, 0xA5, 0xA5, 0x5A, 0xFF, 0x13, 0xA5];
        bytes.extend(frames(&[b"first"]));
        bytes.extend(&noise);
        bytes.extend(frames(&[b"second"]));
        bytes.extend([0x5A, 0xA5, 0x00, 0x02, 0x5A]);
        bytes.extend(frames(&[b"third"]));
        for step in [1, 2, 7, 1000, bytes.len()] {
            let (msgs, skipped) = decode_all(&bytes, step);
            assert_eq!(
                msgs,
                vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()],
                "step {step}"
            );
            assert!(skipped > 3000, "{skipped}");
        }
    }

    #[test]
    fn a_truncated_or_corrupted_frame_costs_only_itself() {
        let good = frames(&[b"kept"]);
        let mut cut = frames(&[b"this one is cut short"]);
        cut.truncate(cut.len() - 6);
        let mut flipped = frames(&[b"this one has a flipped bit"]);
        flipped[10] ^= 0x20;
        let mut zeroed = frames(&[b"this one has a byte zeroed"]);
        zeroed[12] = 0;
        let bytes = [cut, good.clone(), flipped, good.clone(), zeroed, good].concat();
        for step in [1, 5, bytes.len()] {
            let (msgs, _) = decode_all(&bytes, step);
            assert_eq!(msgs, vec![b"kept".to_vec(); 3], "step {step}");
        }
    }

    #[test]
    fn a_run_too_long_for_a_frame_is_dropped() {
        let mut bytes = vec![0x55u8; 5000];
        bytes.extend(frames(&[b"after"]));
        let (msgs, skipped) = decode_all(&bytes, 100);
        assert_eq!(msgs, vec![b"after".to_vec()]);
        assert!(skipped >= 5000);
    }

    #[test]
    fn an_oversized_message_is_refused() {
        let mut re = Reassembler::new(10);
        assert_eq!(re.push(kind::PART, &[0; 8]), Ok(None));
        assert_eq!(re.push(kind::END, &[0; 8]), Err(frame::TooLong));
        assert_eq!(re.push(kind::END, b"ok"), Ok(Some(b"ok".to_vec())));
    }

    #[test]
    fn a_tampered_bit_stays_inside_the_message() {
        let mut m = vec![2, 3, 0, 0, 0, 0];
        super::flip_one_bit(&mut m);
        assert_eq!(&m[..2], &[2, 3]);
        assert_eq!(m.iter().filter(|b| **b != 0).count(), 3);
    }
}
