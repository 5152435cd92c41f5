//! switchboard-stomp: a streaming, zero-copy STOMP 1.0/1.1/1.2 parser and encoder (work in progress).

pub mod frame;

pub use frame::{Command, Frame, Header, Headers, Version};
