//! # switchboard-ws
//!
//! A WebSocket (RFC 6455) implementation with permessage-deflate (RFC 7692), built as a
//! **sans-IO core** plus a thin **tokio adapter**.
//!
//! * [`Decoder`] decodes frames straight out of a `BytesMut` read buffer: every length form,
//!   masking rules by [`Role`], word-at-a-time in-place unmasking ([`mask::apply_mask`]),
//!   fragmentation with interleaved control frames, RSV/opcode/control-frame rules, close codes,
//!   and text validated incrementally — failing on the first invalid UTF-8 sequence, even inside
//!   a frame that has not fully arrived. An unfragmented message's payload is a `Bytes` split off
//!   the read buffer: no copy, no allocation.
//! * [`Encoder`] writes frames for either role (clients mask with a random key) into an
//!   [`OutQueue`] that keeps large `Bytes` payloads as separate chunks for vectored writes.
//! * [`Connection`] adds the close handshake, automatic pongs (bounded) and failing the
//!   connection with the right close code ([`Error::close_code`]).
//! * [`handshake`] parses and answers upgrade requests (and client responses) from bytes, with
//!   HTTP statuses for every failure ([`HandshakeError::status`]).
//! * [`deflate`] negotiates all four permessage-deflate parameters and compresses with a
//!   decompression-bomb limit.
//!
//! ## Server (feature `tokio`)
//! ```no_run
//! use switchboard_ws::{accept, DeflateConfig, Message, ServerConfig, StreamConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let server = ServerConfig::default()
//!     .protocols(["v12.stomp"])
//!     .deflate(DeflateConfig::default());
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let server = server.clone();
//!     tokio::spawn(async move {
//!         let Ok((mut ws, request)) = accept(tcp, &server, StreamConfig::default()).await else { return };
//!         println!("upgrade for {} from origin {:?}", request.path, request.origin);
//!         while let Some(Ok(msg)) = ws.recv().await {
//!             if msg.is_data() && ws.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! ## Client (feature `tokio`)
//! ```
//! use switchboard_ws::{connect, handshake::ClientRequest, Message, StreamConfig, ServerConfig, CloseCode};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), switchboard_ws::Error> {
//! // any AsyncRead + AsyncWrite works; here an in-memory pipe to a server task
//! let (client_io, server_io) = tokio::io::duplex(4096);
//! tokio::spawn(async move {
//!     let (mut ws, _) = switchboard_ws::accept(server_io, &ServerConfig::default(), StreamConfig::default()).await?;
//!     while let Some(msg) = ws.recv().await {
//!         let msg = msg?;
//!         if msg.is_data() { ws.send(msg).await?; }
//!     }
//!     Ok::<_, switchboard_ws::Error>(())
//! });
//! let request = ClientRequest::new("localhost", "/chat");
//! let (mut ws, _accepted) = connect(client_io, &request, StreamConfig::default()).await?;
//! ws.send(Message::text("hello")).await?;
//! assert_eq!(ws.recv().await.unwrap()?, Message::text("hello"));
//! ws.close(CloseCode::NORMAL, "done").await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Sans-IO
//! ```
//! use bytes::BytesMut;
//! use switchboard_ws::{Decoder, Limits, Message, Role};
//! let mut read_buf = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58][..]);
//! let mut decoder = Decoder::new(Role::Server, Limits::default());
//! assert_eq!(decoder.decode(&mut read_buf)?, Some(Message::text("Hello")));
//! # Ok::<(), switchboard_ws::Error>(())
//! ```
//!
//! ## Feature flags
//! * `tokio` (default): [`WebSocketStream`] over any `AsyncRead + AsyncWrite`, [`accept`],
//!   [`accept_with`], [`connect`], [`connect_url`], split into [`WsReader`]/[`WsWriter`],
//!   bounded send buffer, handshake/idle/close timeouts.
//! * `hyper`: `upgrade::upgrade` turns a hyper 1.x request into a `WebSocketStream` (implies
//!   `tokio`).
//!
//! Without features the crate is the sans-IO core only (deps: bytes, flate2, sha1, base64,
//! httparse, rand, thiserror).
//!
//! ## Limits and defaults ([`Limits`])
//! | limit | default | on excess |
//! |---|---|---|
//! | `max_frame_size` | 16 MiB | close 1009 |
//! | `max_message_size` (after decompression too) | 16 MiB | close 1009 |
//! | `max_fragments` per message | 4096 | close 1008 |
//! | `max_pending_pongs` | 16 | further pings not answered until written |
//! | `max_handshake_size` | 8 KiB | HTTP 431 |
//! | `max_handshake_headers` | 64 | HTTP 431 |
//!
//! The tokio adapter adds ([`StreamConfig`]): `max_send_buffer` 1 MiB (sending waits; reading
//! pauses while replies cannot be written), handshake timeout 10 s, close timeout 5 s, idle
//! timeout off. No claimed length is ever allocated up front; inflating stops at the message
//! limit.
//!
//! ## permessage-deflate window bits
//! zlib cannot compress raw deflate with an 8-bit window; a negotiated 8 is run as 9, which is
//! safe because zlib's longest match distance with a 9-bit window is 512 − 262 = 250 bytes
//! (see [`deflate`]).
// One audited `unsafe` call lives in `mask` (runtime-dispatched AVX2 unmasking); everything else
// is safe code, and `unsafe` anywhere else is a compile error.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod decode;
pub mod deflate;
pub mod encode;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod mask;
pub mod message;
pub mod utf8;

#[cfg(feature = "tokio")]
pub mod stream;
#[cfg(feature = "hyper")]
pub mod upgrade;
#[cfg(feature = "tokio")]
pub use stream::{
    StreamConfig, WebSocketStream, WsReader, WsWriter, accept, accept_with, connect, connect_url,
};

pub use close::CloseCode;
pub use connection::{CloseState, Config, Connection};
pub use decode::Decoder;
pub use deflate::{DeflateConfig, DeflateParams};
pub use encode::{Encoder, OutQueue, Payload, encode_frame_into};
pub use error::Error;
pub use frame::{FrameHeader, Opcode};
pub use handshake::{HandshakeError, ServerConfig};
pub use limits::Limits;
pub use message::{CloseFrame, Message, Utf8Bytes};

/// Which end of the connection this endpoint is: decides the masking rules (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends masked frames, requires unmasked ones.
    Client,
    /// Sends unmasked frames, requires masked ones.
    Server,
}
