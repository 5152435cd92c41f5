//! Peer comparisons for Switchboard's crates. Not published: peers never reach users.
//!
//! `benches/` holds the criterion benches (`cargo xtask bench` runs them and prints ratio
//! tables); `src/bin/` the peer echo servers and the `wsload` load generator
//! (`cargo xtask load ws`).

pub mod ws;
