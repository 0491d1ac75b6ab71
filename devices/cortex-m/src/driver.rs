//! The device's round: `secagg-core`'s client typestates, with the masked input streamed
//! (input read and reply written chunk by chunk), and the instructions and bytes of each stage.

use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use secagg_core::ClientError;
use secagg_core::Stage;
use secagg_core::client::{
    AfterMaskedInput, AwaitingConsistency, AwaitingNeighbours, AwaitingShares, AwaitingUnmask,
    StreamedClient,
};
use secagg_core::messages::ServerMessage;

/// Input elements masked per chunk: 2 KiB of u64 working memory, a multiple of 8.
pub const CHUNK: usize = 256;

enum State {
    New(StreamedClient),
    Neighbours(AwaitingNeighbours),
    Shares(AwaitingShares),
    Consistency(AwaitingConsistency),
    Unmask(AwaitingUnmask),
    Finished,
    Failed,
}

/// What one stage cost the device.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageCost {
    /// The stage.
    pub stage: Option<Stage>,
    /// Instructions from receiving the request to the last byte of the reply.
    pub instructions: u64,
    /// Bytes of the request (protocol message, before framing).
    pub bytes_in: usize,
    /// Bytes of the reply.
    pub bytes_out: usize,
}

/// A device client for one round.
pub struct DeviceClient {
    state: State,
}

impl DeviceClient {
    /// Starts from a streamed client (id assigned, input length fixed).
    pub fn new(client: StreamedClient) -> Self {
        Self {
            state: State::New(client),
        }
    }

    /// The stage whose request the client waits for.
    pub fn stage(&self) -> Option<Stage> {
        match self.state {
            State::New(_) => Some(Stage::AdvertiseKeys),
            State::Neighbours(_) => Some(Stage::ShareKeys),
            State::Shares(_) => Some(Stage::MaskedInput),
            State::Consistency(_) => Some(Stage::ConsistencyCheck),
            State::Unmask(_) => Some(Stage::Unmask),
            State::Finished | State::Failed => None,
        }
    }

    /// Whether the client sent its last message (or saw the round end after it).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Handles one server message. The reply goes to `send` in pieces (`send(Some(bytes))`;
    /// the pieces of one reply concatenated are the protocol message), then `send(None)`. The
    /// input is read through `input(offset, chunk)` at the masking stage. After an error
    /// the client answers nothing more.
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        msg: &[u8],
        rng: &mut R,
        input: &mut dyn FnMut(usize, &mut [u64]),
        send: &mut dyn FnMut(Option<&[u8]>),
    ) -> Result<StageCost, ClientError> {
        let t0 = crate::clock::instructions();
        let stage = self.stage();
        let mut out = 0usize;
        let mut emit = |b: &[u8], send: &mut dyn FnMut(Option<&[u8]>)| {
            out += b.len();
            send(Some(b));
        };
        let state = core::mem::replace(&mut self.state, State::Failed);
        let next = match state {
            State::New(c) => integer_round(msg)
                .and_then(|()| c.start(msg, rng))
                .map(|(s, m)| {
                    emit(&m, send);
                    State::Neighbours(s)
                }),
            State::Neighbours(s) => s.handle(msg, rng).map(|(s, m)| {
                emit(&m, send);
                State::Shares(s)
            }),
            State::Shares(s) => match s.handle_streamed(msg) {
                Ok((next, mut stream)) => {
                    emit(stream.header(), send);
                    let mut chunk = vec![0u64; CHUNK];
                    let mut packed = Vec::with_capacity(CHUNK * 8);
                    let mut result = Ok(());
                    while stream.remaining() > 0 && result.is_ok() {
                        let n = stream.remaining().min(CHUNK);
                        let offset = stream.position();
                        input(offset, &mut chunk[..n]);
                        packed.clear();
                        result = stream.mask_chunk(&mut chunk[..n], &mut packed);
                        if result.is_ok() {
                            emit(&packed, send);
                        }
                    }
                    result.and_then(|()| stream.finish()).map(|trailer| {
                        emit(&trailer, send);
                        match next {
                            AfterMaskedInput::Consistency(s) => State::Consistency(s),
                            AfterMaskedInput::Unmask(s) => State::Unmask(s),
                        }
                    })
                }
                Err(e) => Err(e),
            },
            State::Consistency(s) => s.handle(msg).map(|(s, m)| {
                emit(&m, send);
                State::Unmask(s)
            }),
            State::Unmask(s) => s.handle(msg).map(|m| {
                emit(&m, send);
                State::Finished
            }),
            State::Finished => match ServerMessage::decode(msg, None) {
                Ok(ServerMessage::Done) => Ok(State::Finished),
                _ => Err(ClientError::UnexpectedMessage(
                    "message after the round ended",
                )),
            },
            State::Failed => Err(ClientError::UnexpectedMessage("the client already failed")),
        };
        let replied = out > 0;
        self.state = next?;
        if replied {
            send(None);
        }
        Ok(StageCost {
            stage,
            instructions: crate::clock::instructions() - t0,
            bytes_in: msg.len(),
            bytes_out: out,
        })
    }
}

/// The device sends unsigned integers: like the host driver, it refuses a round whose input
/// encoding (part of the session id) is anything else, before the core sees it.
fn integer_round(round_start: &[u8]) -> Result<(), ClientError> {
    match ServerMessage::decode(round_start, None) {
        Ok(ServerMessage::RoundStart(c)) if !c.encoding.is_empty() => {
            Err(ClientError::BadParameters(alloc::string::String::from(
                "the round encodes floats; this device sends unsigned integers",
            )))
        }
        // Anything else is the core's to judge (and refuse).
        _ => Ok(()),
    }
}
