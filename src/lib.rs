//! Cinnabar: a self-hosted videoconferencing server (SFU) speaking Galène's protocol.

pub mod config;
pub mod frontend;
pub mod group;
pub mod web;
