//! Peer comparisons for Switchboard's crates. Not published: peers never reach users.
