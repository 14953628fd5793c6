//! janus.plugin.sfu on /janus, at the protocol level: the Janus core protocol's answers
//! and error codes over the WebSocket and the HTTP transport, sessions and their
//! timeouts, rooms as groups seen by Galène clients, limits, tokens, the plugin's data
//! and presence events, and a webrtc-rs publisher speaking Janus. The real client
//! libraries are in tests/peers/janus.test.mjs.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod client;
mod http;
mod media;
mod rooms;
