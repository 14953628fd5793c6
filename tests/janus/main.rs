//! janus.plugin.sfu on /janus, at the protocol level: the Janus core protocol's answers
//! and error codes over the WebSocket and the HTTP transport, rooms as groups seen by
//! Galène clients, limits, and the plugin's data and presence events. Media and the real
//! client libraries are in tests/peers/janus.test.mjs.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod client;
mod http;
mod rooms;
