//! The sans-IO connection: decoder + encoder + close handshake + automatic pongs.

use crate::deflate::{DeflateCodec, DeflateConfig, DeflateParams};
use crate::encode::{Encoder, OutQueue, Payload};
use crate::frame::Opcode;
use crate::message::{CloseFrame, Message};
use crate::{CloseCode, Decoder, Error, Limits, Role};
use bytes::BytesMut;

/// Configuration of a [`Connection`].
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Decoding limits.
    pub limits: Limits,
    /// Answer Pings automatically (default true), at most `limits.max_pending_pongs` queued.
    pub auto_pong: bool,
    /// Local permessage-deflate settings (compression level, minimum size to compress) used when
    /// the handshake agreed on the extension.
    pub deflate: DeflateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            auto_pong: true,
            deflate: DeflateConfig::default(),
        }
    }
}

impl Config {
    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets automatic pongs on or off.
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }

    /// Sets the local permessage-deflate settings.
    pub fn deflate(mut self, cfg: DeflateConfig) -> Self {
        self.deflate = cfg;
        self
    }
}

/// Where the close handshake stands (RFC 6455 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Data flows both ways.
    Open,
    /// We sent a Close and wait for the peer's.
    CloseSent,
    /// Close frames went both ways, or the connection failed: flush the queue, then close the
    /// transport (a server closes TCP first, RFC 6455 §7.1.1).
    Closed,
}

/// A WebSocket connection without I/O: feed it received bytes, take the bytes it wants sent.
///
/// ```
/// use bytes::{Buf, BytesMut};
/// use switchboard_ws::{Config, Connection, Message, Role};
/// let mut client = Connection::new(Role::Client, Config::default(), None);
/// let mut server = Connection::new(Role::Server, Config::default(), None);
/// client.send(Message::text("hi")).unwrap();
/// // move bytes from client to server
/// let mut wire = BytesMut::new();
/// let out = client.out();
/// while out.has_remaining() { let c = out.chunk().to_vec(); wire.extend_from_slice(&c); out.advance(c.len()); }
/// assert_eq!(server.receive(&mut wire).unwrap(), Some(Message::text("hi")));
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    decoder: Decoder,
    encoder: Encoder,
    out: OutQueue,
    state: CloseState,
    auto_pong: bool,
    max_pending_pongs: usize,
}

impl Connection {
    /// A connection for `role`; pass the parameters agreed in the handshake to enable
    /// permessage-deflate.
    pub fn new(role: Role, config: Config, deflate: Option<DeflateParams>) -> Self {
        let mut decoder = Decoder::new(role, config.limits);
        let mut encoder = Encoder::new(role);
        if let Some(p) = deflate {
            let codec = DeflateCodec::new(role, &p, &config.deflate);
            decoder = decoder.with_inflater(codec.inflater);
            encoder = encoder.with_deflater(codec.deflater);
        }
        Connection {
            role,
            decoder,
            encoder,
            out: OutQueue::new(),
            state: CloseState::Open,
            auto_pong: config.auto_pong,
            max_pending_pongs: config.limits.max_pending_pongs,
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The close handshake state.
    pub fn state(&self) -> CloseState {
        self.state
    }

    /// The decoder (for [`Decoder::frame_bytes_missing`], limits).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Bytes to write to the transport, in order ([`bytes::Buf`]; advance what was written).
    pub fn out(&mut self) -> &mut OutQueue {
        &mut self.out
    }

    /// Bytes queued for writing.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// True once the close handshake is over (or the connection failed) and everything queued was
    /// written: time to close the transport.
    pub fn is_done(&self) -> bool {
        self.state == CloseState::Closed && self.out.is_empty()
    }

    /// Decodes the next message from `buf`; `Ok(None)` = need more bytes (or closed).
    ///
    /// Pings are answered (if auto-pong is on) and a received Close is answered (echoing its
    /// code), both by queueing frames in [`Connection::out`]. On a protocol error a Close with
    /// [`Error::close_code`] is queued, the state becomes [`CloseState::Closed`], and the error
    /// is returned.
    #[inline]
    pub fn receive(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        // An empty buffer completes nothing (a frame without payload completes as soon as its
        // header is decoded): skip the decoder, as a reader asks once more before every read.
        if self.state == CloseState::Closed || buf.is_empty() {
            return Ok(None);
        }
        match self.decoder.decode(buf) {
            Ok(Some(msg)) => {
                if !msg.is_data() {
                    self.answer_control(&msg)?;
                }
                Ok(Some(msg))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Queues the automatic answer to a received control frame: a Pong for a Ping (if
    /// auto-pong is on and few are queued), the Close reply; a Close ends the handshake.
    fn answer_control(&mut self, msg: &Message) -> Result<(), Error> {
        match msg {
            Message::Ping(p)
                if self.auto_pong
                    && self.state == CloseState::Open
                    && self.out.pending_pongs() < self.max_pending_pongs =>
            {
                self.encoder
                    .encode(Opcode::Pong, Payload::Shared(p), &mut self.out)?;
            }
            Message::Close(frame) => {
                if self.state == CloseState::Open {
                    let payload = close_payload(frame.as_ref());
                    self.encoder
                        .encode(Opcode::Close, Payload::Slice(&payload), &mut self.out)?;
                }
                self.state = CloseState::Closed;
            }
            _ => {}
        }
        Ok(())
    }

    /// Fails the connection for `err`: queues a Close with its code (if one applies and none was
    /// sent yet) and moves to [`CloseState::Closed`].
    pub fn fail(&mut self, err: &Error) {
        if self.state == CloseState::Open
            && let Some(code) = err.close_code()
        {
            let payload = close_payload(Some(&CloseFrame {
                code,
                reason: Default::default(),
            }));
            // cannot fail: 2 bytes
            let _ = self
                .encoder
                .encode(Opcode::Close, Payload::Slice(&payload), &mut self.out);
        }
        self.state = CloseState::Closed;
    }

    /// Queues a message. Close messages start the close handshake (see [`Connection::close`]).
    pub fn send(&mut self, msg: Message) -> Result<(), Error> {
        match msg {
            Message::Text(t) => self.send_data(Opcode::Text, Payload::Shared(&t.into_bytes())),
            Message::Binary(b) => self.send_data(Opcode::Binary, Payload::Shared(&b)),
            Message::Ping(b) => self.send_data(Opcode::Ping, Payload::Shared(&b)),
            Message::Pong(b) => self.send_data(Opcode::Pong, Payload::Shared(&b)),
            Message::Close(c) => match c {
                Some(c) => self.close(c.code, c.reason.as_bytes()),
                None => self.close_empty(),
            },
        }
    }

    /// Queues a text message from a borrowed string (copied).
    pub fn send_text(&mut self, s: &str) -> Result<(), Error> {
        self.send_data(Opcode::Text, Payload::Slice(s.as_bytes()))
    }

    /// Queues a binary message from borrowed bytes (copied).
    pub fn send_binary(&mut self, b: &[u8]) -> Result<(), Error> {
        self.send_data(Opcode::Binary, Payload::Slice(b))
    }

    /// Queues a raw frame (opcode, FIN, payload), for sending a message in fragments. Text
    /// payloads are not checked for UTF-8 here.
    pub fn send_frame(
        &mut self,
        fin: bool,
        opcode: Opcode,
        payload: Payload<'_>,
    ) -> Result<(), Error> {
        if self.state != CloseState::Open {
            return Err(Error::Closed);
        }
        if opcode == Opcode::Close {
            return Err(Error::InvalidInput("use close() to send a Close frame"));
        }
        self.encoder
            .encode_frame(fin, opcode, payload, &mut self.out)
    }

    fn send_data(&mut self, opcode: Opcode, payload: Payload<'_>) -> Result<(), Error> {
        if self.state != CloseState::Open {
            return Err(Error::Closed);
        }
        self.encoder.encode(opcode, payload, &mut self.out)
    }

    /// Starts the close handshake with `code` and a UTF-8 `reason` (≤ 123 bytes).
    pub fn close(&mut self, code: CloseCode, reason: &[u8]) -> Result<(), Error> {
        if self.state != CloseState::Open {
            return Err(Error::Closed);
        }
        if !code.is_sendable() {
            return Err(Error::InvalidInput("close code may not be sent"));
        }
        if reason.len() > 123 || std::str::from_utf8(reason).is_err() {
            return Err(Error::InvalidInput(
                "close reason must be UTF-8 of at most 123 bytes",
            ));
        }
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.0.to_be_bytes());
        payload.extend_from_slice(reason);
        self.encoder
            .encode(Opcode::Close, Payload::Slice(&payload), &mut self.out)?;
        self.state = CloseState::CloseSent;
        Ok(())
    }

    /// Starts the close handshake with an empty Close frame (no status code).
    pub fn close_empty(&mut self) -> Result<(), Error> {
        if self.state != CloseState::Open {
            return Err(Error::Closed);
        }
        self.encoder
            .encode(Opcode::Close, Payload::Slice(&[]), &mut self.out)?;
        self.state = CloseState::CloseSent;
        Ok(())
    }
}

/// The payload of the Close we answer with: the received code echoed, without reason.
fn close_payload(frame: Option<&CloseFrame>) -> Vec<u8> {
    match frame {
        Some(f) => f.code.0.to_be_bytes().to_vec(),
        None => Vec::new(),
    }
}
