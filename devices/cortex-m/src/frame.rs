//! The serial framing between the device and its gateway (`secagg gateway`), shared by both
//! (the gateway includes this file). No dependencies beyond `alloc`.
//!
//! ```text
//! frame   = COBS(type u8 | payload (≤ MAX_PAYLOAD) | CRC-32 LE) | 0x00
//! message = 0x00 | frame | frame | …        (PART frames, then one END frame)
//! ```
//! COBS (consistent overhead byte stuffing) removes every zero byte from the frame, so 0x00
//! only ever delimits: a reader resynchronises at the next delimiter whatever came before.
//! Every frame ends with a delimiter, and every message (and every lone frame) also starts
//! with one, which flushes whatever noise the line carried since the last message: so a
//! frame costs one delimiter, not two, and garbage, a truncated frame or a flipped bit still
//! costs only the frame it hits (its CRC fails, or it decodes to nothing), never the next
//! message, and a reader never waits for bytes a corrupted length promised. The CRC (IEEE, as
//! in Ethernet and zlib) covers type and payload. Protocol messages longer than one frame go
//! as `PART` frames closed by an `END` frame; the framing never looks inside them.

// Declared here too so that the gateway (a std crate) can include this file as a module.
extern crate alloc;
use alloc::vec::Vec;

/// The delimiter that closes every frame and opens every message.
pub const DELIMITER: u8 = 0x00;
/// Largest payload of one frame.
pub const MAX_PAYLOAD: usize = 1024;
/// Largest encoded frame body (type, payload, CRC and the COBS code bytes).
const MAX_ENCODED: usize = 1 + MAX_PAYLOAD + 4 + (1 + MAX_PAYLOAD + 4) / 254 + 1;

/// Frame types.
pub mod kind {
    /// A piece of a protocol message; more follow.
    pub const PART: u8 = 0x01;
    /// The last piece of a protocol message (possibly empty).
    pub const END: u8 = 0x02;
    /// Gateway → device: the id the server assigned (u32 LE); a round starts.
    pub const ASSIGN: u8 = 0x03;
    /// Gateway → device: the server's Join challenge (payload: the 32-byte nonce, then the
    /// UTF-8 name the gateway joins under); answered with PROOF, only before ASSIGN.
    pub const CHALLENGE: u8 = 0x04;
    /// Device → gateway: booted (payload: its input length, u32 LE, and its 32-byte identity
    /// public key).
    pub const HELLO: u8 = 0x10;
    /// Device → gateway: the device refused or failed (UTF-8 reason); it sends nothing more
    /// this round.
    pub const REFUSED: u8 = 0x11;
    /// Device → gateway: the identity key's signature answering CHALLENGE (64 bytes; the
    /// signed bytes are `secagg_core::messages::join_proof_signed_bytes`).
    pub const PROOF: u8 = 0x12;
}

/// Most bytes a frame with `payload_len` bytes of payload takes on the line, opening
/// delimiter included (fewer when the frame holds zero bytes, which COBS replaces rather than
/// adds to).
pub const fn max_frame_len(payload_len: usize) -> usize {
    let body = 1 + payload_len + 4;
    2 + body + body / 254 + 1
}

/// CRC-32 lookup table (reflected polynomial 0xEDB88320), built at compile time: 1 KiB of
/// flash for about 5× fewer instructions per byte than the bitwise loop, which made the CRC
/// most of the framing's cost on the device.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE 802.3, reflected, init and final xor 0xFFFFFFFF), table-driven.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for part in parts {
        for b in part.iter() {
            crc = (crc >> 8) ^ CRC_TABLE[((crc ^ u32::from(*b)) & 0xFF) as usize];
        }
    }
    !crc
}

/// COBS-encodes `src` (which may hold zeros) onto `out` (which then holds none of them).
fn cobs_encode(src: &[u8], out: &mut Vec<u8>) {
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for &b in src {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
}

/// Inverse of [`cobs_encode`]; `None` for what no encoding produces.
fn cobs_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let code = usize::from(src[i]);
        if code == 0 {
            return None;
        }
        let end = i + code;
        let data = src.get(i + 1..end)?;
        out.extend_from_slice(data);
        i = end;
        if code < 0xFF && i < src.len() {
            out.push(0);
        }
    }
    Some(out)
}

/// Appends one frame to `out`, closed by a delimiter but not opened by one: for the frames
/// of a message after its opening delimiter. `payload` must be at most [`MAX_PAYLOAD`] bytes
/// (longer is cut there: callers split with [`encode_message`]).
pub fn encode_frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let mut body = Vec::with_capacity(payload.len() + 5);
    body.push(kind);
    body.extend_from_slice(payload);
    body.extend_from_slice(&crc32(&[&[kind], payload]).to_le_bytes());
    cobs_encode(&body, out);
    out.push(DELIMITER);
}

/// Appends one frame that stands alone (opening delimiter, frame).
pub fn encode(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(DELIMITER);
    encode_frame(kind, payload, out);
}

/// Appends a whole protocol message: an opening delimiter, `PART` frames and a closing `END`
/// frame.
pub fn encode_message(msg: &[u8], out: &mut Vec<u8>) {
    out.push(DELIMITER);
    let mut chunks = msg.chunks(MAX_PAYLOAD).peekable();
    if chunks.peek().is_none() {
        encode_frame(kind::END, &[], out);
    }
    while let Some(c) = chunks.next() {
        let k = if chunks.peek().is_some() {
            kind::PART
        } else {
            kind::END
        };
        encode_frame(k, c, out);
    }
}

/// A received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its type ([`kind`]).
    pub kind: u8,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Reassembles frames from a byte stream, skipping what is not a valid frame. Holds at most
/// one frame's bytes (a longer run without a delimiter is dropped as it arrives).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Inside a run too long to be a frame: drop up to the next delimiter.
    overlong: bool,
    /// `buf[..scanned]` holds no delimiter: a byte-by-byte feed scans each byte once.
    scanned: usize,
    /// Bytes dropped as not belonging to a valid frame (garbage, bad CRC, truncation).
    pub skipped: u64,
}

impl Decoder {
    /// Feeds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete valid frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let found = self.buf[self.scanned..]
                .iter()
                .position(|b| *b == DELIMITER);
            let Some(end) = found.map(|i| self.scanned + i) else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_ENCODED {
                    self.skipped += self.buf.len() as u64;
                    self.buf.clear();
                    self.scanned = 0;
                    self.overlong = true;
                }
                return None;
            };
            let body = cobs_body(&self.buf[..end], core::mem::take(&mut self.overlong));
            if body.is_none() && end > 0 {
                self.skipped += end as u64 + 1;
            }
            self.buf.drain(..=end);
            self.scanned = 0;
            if let Some(f) = body {
                return Some(f);
            }
        }
    }
}

/// The frame in one delimited run, if it is one.
fn cobs_body(run: &[u8], overlong: bool) -> Option<Frame> {
    if overlong || run.is_empty() || run.len() > MAX_ENCODED {
        return None;
    }
    let body = cobs_decode(run)?;
    let (head, crc) = body.split_at_checked(body.len().checked_sub(4)?)?;
    let (&kind, payload) = head.split_first()?;
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    (crc32(&[&[kind], payload]) == crc && payload.len() <= MAX_PAYLOAD).then(|| Frame {
        kind,
        payload: payload.to_vec(),
    })
}

/// A message over the [`Reassembler`]'s limit (its pieces so far are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Collects `PART`/`END` frames into whole protocol messages, up to a size limit.
#[derive(Debug)]
pub struct Reassembler {
    msg: Vec<u8>,
    limit: usize,
}

impl Reassembler {
    /// Accepts messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            msg: Vec::new(),
            limit,
        }
    }

    /// Feeds a `PART` or `END` frame's payload; returns the message at `END`.
    pub fn push(&mut self, kind: u8, payload: &[u8]) -> Result<Option<Vec<u8>>, TooLong> {
        if self.msg.len() + payload.len() > self.limit {
            self.msg = Vec::new();
            return Err(TooLong);
        }
        self.msg.extend_from_slice(payload);
        Ok((kind == kind::END).then(|| core::mem::take(&mut self.msg)))
    }

    /// Drops a partial message.
    pub fn reset(&mut self) {
        self.msg = Vec::new();
    }
}
