//! Cinnabar: a self-hosted videoconferencing server (SFU) speaking Galène's protocol.

pub mod media;
pub mod peer;
