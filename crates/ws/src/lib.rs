//! switchboard-ws: a zero-copy, sans-IO RFC 6455 WebSocket codec (work in progress).
