//! `secagg gateway`: one device on a serial line, relayed to `secagg server` as that device's
//! gRPC client (what a phone or hub does for a sensor).
//!
//! The gateway relays opaque protocol messages: it converts between the serial framing
//! (`devices/cortex-m/src/frame.rs`, shared with the firmware) and the gRPC frames of
//! `secagg.v1`, and holds none of the device's secrets (keys, seed, shares and input stay on
//! the device; the gateway sees what the server sees). It joins with the identity public key
//! the device announces in HELLO; the device signs with the private key, which never leaves it,
//! and checks its neighbours against its own built-in roster, so a gateway that rewrites
//! messages gets it refused, not unmasked. A device that stays silent for `--silence` after a
//! request (bytes that do not complete a message do not count), disconnects, or refuses is a
//! dropout: the gateway closes its stream and the round goes on without it.

// Shared with the firmware, which uses the parts the gateway does not.
#[allow(dead_code)]
#[path = "../../../devices/cortex-m/src/frame.rs"]
mod frame;

// A malicious gateway, for the attack tests only (never in a release build).
#[cfg(any(test, feature = "gateway-attacks"))]
#[path = "gateway_attack.rs"]
mod attack;

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
use tokio::time::Instant;
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
    /// A device that has not answered a request this long after it was relayed is a dropout
    /// (only a whole valid message answers; other bytes do not extend it).
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
    /// Attacks and tampering, for tests (cargo feature `gateway-attacks`).
    #[cfg(feature = "gateway-attacks")]
    #[command(flatten)]
    pub hooks: attack::Hooks,
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
    /// What an attacking gateway (tests only) did and obtained.
    attack: Option<serde_json::Value>,
}

impl Report {
    fn new() -> Self {
        Self {
            device_id: None,
            round_id: None,
            outcome: Outcome::Aborted("no RoundStart".into()),
            stages: BTreeMap::new(),
            skipped: 0,
            round_released: None,
            attack: None,
        }
    }
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
        SBody::JoinChallenge(_) => "join",
        // Validated rounds' own messages (the gateway's devices run plain rounds).
        SBody::Validation(_) => "validate",
    }
}

/// The protocol message as serial frames.
fn frames_of(msg: &[u8]) -> Vec<u8> {
    let frames = msg.len() / frame::MAX_PAYLOAD + 1;
    let mut out = Vec::with_capacity(frames * frame::max_frame_len(frame::MAX_PAYLOAD));
    frame::encode_message(msg, &mut out);
    out
}

/// What the device announced at boot: its input length and identity public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hello {
    dim: u32,
    identity: [u8; 32],
}

fn parse_hello(payload: &[u8]) -> Result<Hello, String> {
    match payload.split_first_chunk::<4>() {
        Some((dim, rest)) => match <[u8; 32]>::try_from(rest) {
            Ok(identity) => Ok(Hello {
                dim: u32::from_le_bytes(*dim),
                identity,
            }),
            Err(_) => Err(format!(
                "the device's HELLO holds {} bytes, not its input length and a 32-byte \
                 identity public key (firmware without an identity takes part in no round)",
                payload.len()
            )),
        },
        None => Err("the device's HELLO is too short".into()),
    }
}

/// What the device sent: a whole message, a refusal, a new HELLO, or its answer to the
/// server's Join challenge.
#[derive(Debug, PartialEq, Eq)]
enum FromDevice {
    Message(Vec<u8>),
    Refused(String),
    Hello(Vec<u8>),
    Proof(Vec<u8>),
}

/// The device's end of the serial line: frames in, whole messages out.
struct DeviceLink {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: tokio::net::tcp::OwnedWriteHalf,
    dec: Decoder,
    re: Reassembler,
    buf: Vec<u8>,
    /// Serial bytes read since [`DeviceLink::take_bytes_in`].
    bytes_in: u64,
}

impl DeviceLink {
    fn new(serial: TcpStream) -> Self {
        let (rd, wr) = serial.into_split();
        Self {
            rd,
            wr,
            dec: Decoder::default(),
            re: Reassembler::new(64 << 20),
            buf: vec![0u8; 8192],
            bytes_in: 0,
        }
    }

    /// The next whole message, refusal or HELLO from the device; an error when the line
    /// closes, the device sends an oversized message, or `deadline` passes first. Bytes that
    /// complete nothing (garbage, stray frames) never move the deadline. Cancel-safe: what
    /// was read stays in `self`.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<FromDevice, String> {
        loop {
            while let Some(f) = self.dec.next_frame() {
                match f.kind {
                    kind::PART | kind::END => match self.re.push(f.kind, &f.payload) {
                        Ok(Some(m)) => return Ok(FromDevice::Message(m)),
                        Ok(None) => {}
                        Err(_) => return Err("the device sent an oversized message".into()),
                    },
                    kind::REFUSED => {
                        return Ok(FromDevice::Refused(
                            String::from_utf8_lossy(&f.payload).into_owned(),
                        ));
                    }
                    kind::HELLO => return Ok(FromDevice::Hello(f.payload)),
                    kind::PROOF => return Ok(FromDevice::Proof(f.payload)),
                    _ => {}
                }
            }
            let read = self.rd.read(&mut self.buf);
            let n = match deadline {
                Some(d) => match tokio::time::timeout_at(d, read).await {
                    Ok(r) => r,
                    Err(_) => return Err("the device did not answer in time".into()),
                },
                None => read.await,
            };
            match n {
                Ok(0) => return Err("the device's serial line closed".into()),
                Err(e) => return Err(format!("the device's serial line failed: {e}")),
                Ok(n) => {
                    self.bytes_in += n as u64;
                    self.dec.push(&self.buf[..n]);
                }
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.wr
            .write_all(bytes)
            .await
            .map_err(|_| "the device's serial line closed".to_string())
    }

    fn take_bytes_in(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_in)
    }
}

async fn connect_serial(spec: &str, retry: Duration) -> Result<TcpStream, String> {
    let addr = spec
        .strip_prefix("tcp:")
        .ok_or_else(|| format!("--serial {spec:?}: use tcp:HOST:PORT"))?;
    let start = Instant::now();
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
    let start = Instant::now();
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

async fn relay(a: &GatewayArgs) -> Result<Report, String> {
    let serial = connect_serial(&a.serial, a.connect_retry).await?;
    let mut link = DeviceLink::new(serial);
    // The device announces itself first; nothing about the round exists yet.
    let hello = match link.next(Some(Instant::now() + a.timeout)).await? {
        FromDevice::Hello(p) => parse_hello(&p)?,
        FromDevice::Refused(r) => {
            let mut report = Report::new();
            report.outcome = Outcome::DeviceRefused(r);
            return Ok(report);
        }
        FromDevice::Message(_) | FromDevice::Proof(_) => {
            return Err("the device opened with a message, not HELLO".into());
        }
    };
    // HELLO is not part of any stage's bytes.
    link.take_bytes_in();
    #[cfg(feature = "gateway-attacks")]
    if a.hooks.attack == Some(attack::Attack::ForgeRound) {
        return attack::forge_round(&mut link, hello, a).await;
    }
    let mut grpc = connect_server(a).await?;
    let (tx, rx) = mpsc::channel::<proto::ClientFrame>(64);
    tx.send(proto::ClientFrame {
        body: Some(proto::client_frame::Body::Join(proto::Join {
            name: a.name.clone(),
            identity_public_key: hello.identity.to_vec(),
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
    let mut report = Report::new();
    let mut config: Option<RoundConfig> = None;
    let mut stage = "advertise";
    // Set when a request is relayed to the device, cleared by its whole reply.
    let mut device_deadline: Option<Instant> = None;
    // Moved by every server frame and every reply relayed to the server.
    let mut server_deadline = Instant::now() + a.timeout;
    // The device's last message (the advertisement, for an attack that takes over).
    let mut _last_from_device: Vec<u8> = Vec::new();
    'relay: loop {
        tokio::select! {
            frame = inbound.message() => {
                server_deadline = Instant::now() + a.timeout;
                let f = match frame {
                    Ok(Some(f)) => f,
                    Ok(None) => return Err("the server closed the stream".into()),
                    Err(s) => return Err(format!("the server stream failed: {}", s.message())),
                };
                let grpc_len = prost::Message::encoded_len(&f) as u64;
                let Some(body) = f.body else { continue };
                stage = stage_of(&body);
                if let SBody::JoinChallenge(c) = &body {
                    // The server asks the device to prove it holds the key of its HELLO
                    // (docs/SECURITY.md §4b); only the device can answer.
                    if config.is_some() {
                        return Err("the server sent a JoinChallenge after RoundStart".into());
                    }
                    if c.nonce.len() != 32 {
                        return Err(format!(
                            "the server's JoinChallenge holds {} bytes, not a 32-byte nonce",
                            c.nonce.len()
                        ));
                    }
                    let mut payload = c.nonce.clone();
                    payload.extend_from_slice(a.name.as_bytes());
                    let mut wire = Vec::new();
                    frame::encode(kind::CHALLENGE, &payload, &mut wire);
                    let st = report.stages.entry(stage.to_string()).or_default();
                    st.grpc_from_server += grpc_len;
                    st.message_to_device += payload.len() as u64;
                    st.serial_to_device += wire.len() as u64;
                    if link.send(&wire).await.is_err() {
                        report.outcome =
                            Outcome::DeviceDropped("the device's serial line closed".into());
                        break;
                    }
                    device_deadline = Some(Instant::now() + a.silence);
                    continue;
                }
                let mut assign = Vec::new();
                #[allow(unused_mut)]
                let mut msg = match body {
                    SBody::RoundStart(s) => {
                        let info = convert::parse_round_start(s)
                            .map_err(|e| format!("the server sent an invalid RoundStart: {e}"))?;
                        report.device_id = Some(info.client_id);
                        report.round_id = Some(info.config.round_id);
                        frame::encode(kind::ASSIGN, &info.client_id.to_le_bytes(), &mut assign);
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
                        let _ = link.send(&frames_of(&done.encode())).await;
                        report.round_released = Some(end.released);
                        report.outcome = if end.released {
                            Outcome::Released
                        } else {
                            Outcome::Aborted(end.reason)
                        };
                        report.skipped = link.dec.skipped;
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
                #[cfg(feature = "gateway-attacks")]
                {
                    if a.hooks.tamper_at.as_deref() == Some(stage) {
                        attack::flip_one_bit(&mut msg);
                    }
                    if a.hooks.attack == Some(attack::Attack::SubstituteKeys) && stage == "share" {
                        let (Some(c), Some(id)) = (&config, report.device_id) else {
                            return Err("NeighbourKeys before RoundStart".into());
                        };
                        let (outcome, value) = attack::substitute_keys(
                            &mut link, c.clone(), id, hello.identity, &_last_from_device, a,
                        ).await?;
                        report.outcome = outcome;
                        report.attack = Some(value);
                        break 'relay;
                    }
                }
                let wire = frames_of(&msg);
                let st = report.stages.entry(stage.to_string()).or_default();
                st.grpc_from_server += grpc_len;
                st.message_to_device += msg.len() as u64;
                st.serial_to_device += wire.len() as u64;
                if link.send(&[assign, wire].concat()).await.is_err() {
                    report.outcome = Outcome::DeviceDropped("the device's serial line closed".into());
                    break;
                }
                device_deadline = Some(Instant::now() + a.silence);
            }
            ev = link.next(device_deadline) => {
                let n = link.take_bytes_in();
                report.stages.entry(stage.to_string()).or_default().serial_from_device += n;
                let msg = match ev {
                    Ok(FromDevice::Message(m)) => m,
                    Ok(FromDevice::Proof(signature)) => {
                        let cf = proto::ClientFrame {
                            body: Some(proto::client_frame::Body::JoinProof(proto::JoinProof {
                                signature: signature.clone(),
                            })),
                        };
                        let st = report.stages.entry(stage.to_string()).or_default();
                        st.message_from_device += signature.len() as u64;
                        st.grpc_to_server += prost::Message::encoded_len(&cf) as u64;
                        tx.send(cf).await.map_err(|_| "the stream to the server closed")?;
                        device_deadline = None;
                        server_deadline = Instant::now() + a.timeout;
                        continue;
                    }
                    Ok(FromDevice::Refused(r)) => {
                        report.outcome = Outcome::DeviceRefused(r);
                        break;
                    }
                    Ok(FromDevice::Hello(_)) => {
                        report.outcome = Outcome::DeviceDropped("the device rebooted".into());
                        break;
                    }
                    Err(e) => {
                        let e = if device_deadline.is_some_and(|d| Instant::now() >= d) {
                            format!("the device was silent for {:?} after a request", a.silence)
                        } else {
                            e
                        };
                        report.outcome = Outcome::DeviceDropped(e);
                        break;
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
                device_deadline = None;
                server_deadline = Instant::now() + a.timeout;
                _last_from_device = msg;
                #[cfg(feature = "gateway-attacks")]
                if stage == "advertise"
                    && let (Some(mode), Some(id), Some(c)) = (a.hooks.attack, report.device_id, &config)
                {
                    // F2: after the device advertised, a second assignment in the same boot
                    // (with the same RoundStart), or a message over its limit.
                    let mut bad = Vec::new();
                    match mode {
                        attack::Attack::Reassign => {
                            frame::encode(kind::ASSIGN, &id.to_le_bytes(), &mut bad);
                            bad.extend(frames_of(&ServerMessage::RoundStart(c.clone()).encode()));
                        }
                        attack::Attack::Oversize => bad = frames_of(&vec![0x5A; 17 * 1024]),
                        _ => {}
                    }
                    if !bad.is_empty() {
                        link.send(&bad).await?;
                        device_deadline = Some(Instant::now() + a.silence);
                        report.attack = Some(serde_json::json!({"mode": mode.name()}));
                    }
                }
            }
            () = tokio::time::sleep_until(server_deadline), if device_deadline.is_none() => {
                report.outcome =
                    Outcome::Aborted(format!("the server sent nothing for {:?}", a.timeout));
                break;
            }
        }
    }
    report.skipped = link.dec.skipped;
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
                "attack": report.attack,
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
    fn a_frame_costs_one_delimiter_and_a_message_one_more() {
        // type + CRC + one COBS code byte + closing delimiter = 7 bytes a frame (payloads
        // under 254 bytes without zeros), plus the message's opening delimiter.
        let m = vec![0x5Au8; 200];
        assert_eq!(frames(&[&m]).len(), 1 + 200 + 7);
        let big = vec![0x5Au8; 3 * 1024];
        // Each 1024-byte payload needs 4 more COBS code bytes (one per 254-byte block).
        assert_eq!(frames(&[&big]).len(), 1 + 3 * (1024 + 7 + 4));
    }

    #[test]
    fn noise_before_a_message_costs_nothing() {
        // Line noise without a zero byte, right before a message: its opening delimiter
        // closes the noise as a run of its own.
        let mut bytes = vec![0x13u8, 0x37, 0xA5];
        bytes.extend(frames(&[b"after noise"]));
        let (msgs, skipped) = decode_all(&bytes, 1);
        assert_eq!(msgs, vec![b"after noise".to_vec()]);
        assert_eq!(skipped, 4);
    }

    #[test]
    fn a_byte_by_byte_feed_scans_each_byte_once() {
        // The decoder remembers where its scan for a delimiter stopped: feeding a 16 KiB
        // message a byte at a time takes about as long as feeding it whole (the rescanning
        // decoder took n²/2 comparisons per frame, ~0.5 M per 1 KiB frame).
        let big: Vec<u8> = (0..16 * 1024u32).map(|i| (i % 251 + 1) as u8).collect();
        let bytes = frames(&[&big]);
        let mut dec = Decoder::default();
        let mut frames_seen = 0;
        for b in &bytes {
            dec.push(std::slice::from_ref(b));
            while dec.next_frame().is_some() {
                frames_seen += 1;
            }
        }
        assert_eq!(frames_seen, 16);
        assert_eq!(dec.skipped, 0);
    }

    #[test]
    fn an_oversized_message_is_refused() {
        let mut re = Reassembler::new(10);
        assert_eq!(re.push(kind::PART, &[0; 8]), Ok(None));
        assert_eq!(re.push(kind::END, &[0; 8]), Err(frame::TooLong));
        assert_eq!(re.push(kind::END, b"ok"), Ok(Some(b"ok".to_vec())));
    }

    /// A connected (device, gateway link) pair over loopback.
    async fn link_pair() -> (tokio::net::TcpStream, super::DeviceLink) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (dev, gw) = tokio::join!(l.accept(), tokio::net::TcpStream::connect(addr));
        (dev.unwrap().0, super::DeviceLink::new(gw.unwrap()))
    }

    #[tokio::test]
    async fn garbage_does_not_keep_a_silent_device_alive() {
        use tokio::io::AsyncWriteExt;
        use tokio::time::{Duration, Instant};
        let (mut dev, mut link) = link_pair().await;
        // One garbage byte (never a whole message) every 200 ms, for 5 s.
        let noise = tokio::spawn(async move {
            for _ in 0..25 {
                if dev.write_all(&[0x55]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            dev
        });
        let start = Instant::now();
        let r = link.next(Some(start + Duration::from_millis(1000))).await;
        let waited = start.elapsed();
        assert!(r.is_err(), "{r:?}");
        assert!(waited < Duration::from_millis(1900), "{waited:?}");
        assert!(link.take_bytes_in() >= 3, "the noise arrived");
        noise.abort();
    }

    #[tokio::test]
    async fn a_whole_message_answers_within_the_deadline() {
        use tokio::io::AsyncWriteExt;
        use tokio::time::{Duration, Instant};
        let (mut dev, mut link) = link_pair().await;
        let mut bytes = vec![0x55, 0x66];
        bytes.extend(frames(&[b"reply"]));
        dev.write_all(&bytes).await.unwrap();
        let r = link
            .next(Some(Instant::now() + Duration::from_secs(5)))
            .await;
        assert_eq!(r, Ok(super::FromDevice::Message(b"reply".to_vec())));
    }

    #[tokio::test]
    async fn a_join_proof_is_told_apart_from_a_message() {
        use tokio::io::AsyncWriteExt;
        use tokio::time::{Duration, Instant};
        let (mut dev, mut link) = link_pair().await;
        let mut bytes = Vec::new();
        super::frame::encode(super::kind::PROOF, &[3u8; 64], &mut bytes);
        bytes.extend(frames(&[b"reply"]));
        dev.write_all(&bytes).await.unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(
            link.next(deadline).await,
            Ok(super::FromDevice::Proof(vec![3u8; 64]))
        );
        assert_eq!(
            link.next(deadline).await,
            Ok(super::FromDevice::Message(b"reply".to_vec()))
        );
    }

    #[test]
    fn hello_carries_the_identity() {
        let mut p = 1000u32.to_le_bytes().to_vec();
        p.extend([9u8; 32]);
        assert_eq!(
            super::parse_hello(&p),
            Ok(super::Hello {
                dim: 1000,
                identity: [9; 32]
            })
        );
        // Firmware without an identity: refused, not joined with an empty key.
        assert!(super::parse_hello(&1000u32.to_le_bytes()).is_err());
    }
}
