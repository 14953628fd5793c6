//! Cinnabar: a self-hosted videoconferencing server (SFU) speaking Galène's protocol.
//!
//! The layers point one way: `web -> frontend -> group -> media`. `group` is the
//! protocol-agnostic core (groups, users, permissions, chat, streams); `media` is the SFU
//! and the only module that touches WebRTC; each `frontend` translates one signalling
//! protocol; `web` serves HTTP(S). `peer` is the client side used by the tests and by
//! `cinnabar-bench`.

pub mod config;
pub mod frontend;
pub mod group;
pub mod media;
pub mod peer;
pub mod web;
