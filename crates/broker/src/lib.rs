//! switchboard-broker: transport-agnostic STOMP broker semantics (work in progress).
