//! Room Signals on `/room-signals` (README, "Room Signals"): rooms, roles, presence and
//! errors over a real WebSocket, with real WebRTC peers (webrtc-rs) for the media of
//! `m2m`, `a2m`, `p2m` and `p2p` rooms, and the meeting of Room Signals apps and Galène
//! clients in one group. Assertions are about what peers receive; waits are on conditions.
//!
//! `app` is a scripted Room Signals app, `peer` its WebRTC side; the tests are grouped by
//! what they are about.

#[path = "../common/mod.rs"]
mod common;

mod app;
mod errors;
mod media;
mod meeting;
mod peer;
mod publish;
mod roles;

use std::sync::Arc;
use std::time::Duration;

use cinnabar::peer::{Kind, Publisher, PublisherConfig};
use common::rtc::{MEDIA_PATIENCE, av, next_matching, stats, wait_until, with_admin};
use common::{Client, PATIENCE, Server, group_with_op};
use serde_json::{Value, json};

use app::Rs;
use peer::{P2P, Peer, keyframes, let_pass, packets, wait_for_media};

/// A group anyone may enter without a password and publish in.
pub const OPEN: &str =
    r#"{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}}"#;

/// The fields of a publisher entry (`pps`), as README lists them.
pub const ENTRY_FIELDS: [&str; 13] = [
    "id",
    "sessionId",
    "userId",
    "username",
    "fullname",
    "avatar",
    "role",
    "video",
    "audio",
    "publish",
    "host",
    "category",
    "deviceId",
];

/// A server with the open group `hub` (rooms: `existing`, the default) and an administrator
/// for `/stats.json`.
pub fn server() -> Server {
    server_with_hub(OPEN)
}

/// A server whose group `hub` is defined by `hub`.
pub fn server_with_hub(hub: &str) -> Server {
    let server = Server::start_with(&[("hub", hub)], &["--udp-range", "0"], false);
    with_admin(&server);
    server
}

/// A server on which apps may create rooms of any name.
pub fn any_rooms_server() -> Server {
    let server = Server::start_with(
        &[],
        &["--udp-range", "0", "--room-signals-rooms", "any"],
        false,
    );
    with_admin(&server);
    server
}

/// JOIN fields: create the room, with video and audio on.
pub fn creating() -> Value {
    json!({"ve": true, "ae": true, "op": {"roomCreating": true}})
}

/// JOIN fields: enter a live room with video and audio on (a publisher).
pub fn publishing() -> Value {
    json!({"ve": true, "ae": true})
}

/// JOIN fields: enter a live room with video and audio off (a viewer).
pub fn viewing() -> Value {
    json!({"ve": false, "ae": false})
}

/// Connects and joins; the join must succeed. The app and the ack's `b`.
pub async fn joined(
    server: &Server,
    user: &str,
    session: &str,
    rid: &str,
    ch: &str,
    fields: Value,
) -> (Rs, Value) {
    let mut rs = Rs::connect(server, user, session, rid, ch).await;
    let reply = rs.join(fields).await;
    assert_eq!(reply["c"], 200, "{session} joins {rid}: {reply}");
    assert_eq!(reply["b"]["rid"], rid, "{reply}");
    (rs, reply["b"].clone())
}

/// The entry of publisher `id` in a list.
pub fn entry<'a>(pps: &'a [Value], id: &str) -> Option<&'a Value> {
    pps.iter().find(|p| p["id"] == id)
}

/// The ids of a list's publishers, sorted.
pub fn ids(pps: &Value) -> Vec<String> {
    let mut ids: Vec<String> = pps
        .as_array()
        .unwrap_or_else(|| panic!("a list: {pps}"))
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

/// An SDP's first ICE username fragment.
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:"))
}

/// The server pushes a list only when it changed.
pub fn assert_no_repeats(lists: &[Value]) {
    for pair in lists.windows(2) {
        assert_ne!(pair[0], pair[1], "the same list twice in a row: {lists:#?}");
    }
}
