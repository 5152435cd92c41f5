//! switchboard-server: the `switchboard` binary's library — configuration, listeners, and the
//! composition of `switchboard-ws`, `switchboard-stomp` and `switchboard-broker` (work in progress).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod origin;
pub mod tls;
