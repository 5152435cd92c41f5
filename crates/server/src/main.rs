//! The `switchboard` binary (work in progress).
fn main() {}
