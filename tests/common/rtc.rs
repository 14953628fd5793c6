//! Real WebRTC peers (webrtc-rs) speaking Galène's protocol to the real server.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinnabar::peer::galene::{GaleneClient, SubscriberFactory};
use cinnabar::peer::{AudioConfig, PublisherConfig, SubscriberConfig, VideoConfig};
use serde_json::Value;

use super::{Server, http_request};

/// Bounds a failing wait; passing tests never come near it.
pub const MEDIA_PATIENCE: Duration = Duration::from_secs(60);

/// Subscribers with the default configuration.
pub fn plain_subscribers() -> SubscriberFactory {
    Arc::new(|_| SubscriberConfig::default())
}

/// Connects a client and waits for the server's handshake.
pub async fn connect(server: &Server, id: &str, factory: SubscriberFactory) -> Arc<GaleneClient> {
    let client = GaleneClient::connect(&server.ws_url(), id, factory)
        .await
        .expect("connect");
    client
        .recv_matching(MEDIA_PATIENCE, "handshake", |m| m["type"] == "handshake")
        .await
        .expect("handshake");
    client
}

/// Connects and joins.
pub async fn join(
    server: &Server,
    id: &str,
    group: &str,
    username: &str,
    password: &str,
) -> Arc<GaleneClient> {
    join_with(server, id, group, username, password, plain_subscribers()).await
}

pub async fn join_with(
    server: &Server,
    id: &str,
    group: &str,
    username: &str,
    password: &str,
    factory: SubscriberFactory,
) -> Arc<GaleneClient> {
    let client = connect(server, id, factory).await;
    client
        .join(group, username, password, MEDIA_PATIENCE)
        .await
        .expect("join");
    client
}

/// VP8 (`frames` frames, a keyframe every `keyframe_interval`) and Opus (`audio` packets).
pub fn av(frames: Option<u32>, keyframe_interval: u32, audio: Option<u32>) -> PublisherConfig {
    PublisherConfig {
        video: Some(VideoConfig {
            frames,
            keyframe_interval,
            ..Default::default()
        }),
        audio: Some(AudioConfig {
            packets: audio,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Waits until `condition` holds.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + MEDIA_PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message of type `kind` (skipping others).
pub async fn next(client: &GaleneClient, kind: &'static str) -> Value {
    client
        .recv_matching(MEDIA_PATIENCE, kind, |m| m["type"] == kind)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", client.id))
}

/// The next message satisfying `wanted`.
pub async fn next_matching(
    client: &GaleneClient,
    what: &'static str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    client
        .recv_matching(MEDIA_PATIENCE, what, wanted)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", client.id))
}

/// Asserts that no message satisfying `unwanted` arrives within `wait`.
pub async fn assert_none(client: &GaleneClient, wait: Duration, unwanted: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.recv(left).await {
            None => return,
            Some(m) => assert!(!unwanted(&m), "{}: unexpected {m}", client.id),
        }
    }
}

/// The server's `/stats.json`, read with the administrator credentials that
/// [`with_admin`] installs.
pub async fn stats(server: &Server) -> Value {
    let response = http_request(
        server.port,
        "GET",
        "/stats.json",
        &[("Authorization", "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=")],
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

/// Installs an administrator `admin`/`admin-password` in the server's config.
pub fn with_admin(server: &Server) {
    std::fs::write(
        server.dir.join("data/config.json"),
        r#"{"users": {"admin": {"password": "admin-password", "permissions": "admin"}}}"#,
    )
    .unwrap();
}
