//! switchboard-ws: a zero-copy, sans-IO RFC 6455 WebSocket codec with RFC 7692 permessage-deflate.
#![forbid(unsafe_code)]
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
