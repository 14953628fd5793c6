//! A webrtc-rs publisher speaking Janus: its candidates in one `candidates` list, a
//! subscription by the separate `subscribe` message with a token's `room_ids`, `hangup`
//! (the request and the events) and `slowlink` when its packets are lost.

use std::sync::Arc;
use std::time::Duration;

use cinnabar::peer::{AudioConfig, Kind, PacketInfo, Publisher, PublisherConfig, VideoConfig};
use serde_json::{Value, json};

use crate::client::{Janus, OPEN, configure, token};
use crate::common::Server;

/// Publishes on `handle` with the offer in the `join`, then trickles all of the
/// publisher's candidates in one `candidates` list ended by `completed`, and waits for
/// `webrtcup`.
async fn publish(
    janus: &mut Janus,
    (session, handle): (u64, u64),
    user: &str,
    token: Option<&str>,
    config: PublisherConfig,
) -> Publisher {
    let publisher = Publisher::new(config).await.expect("publisher");
    let mut candidates = publisher.take_candidates().expect("candidates");
    let offer = publisher.offer().await.expect("offer");
    let reply = janus
        .request(
            json!({"janus": "message", "session_id": session, "handle_id": handle,
            "body": {"kind": "join", "room_id": "hub", "user_id": user, "token": token,
                     "subscribe": {"notifications": true, "data": true}},
            "jsep": {"type": "offer", "sdp": offer}}),
        )
        .await;
    assert_eq!(reply["plugindata"]["data"]["success"], true, "{reply}");
    assert_eq!(reply["jsep"]["type"], "answer", "{reply}");
    let answer = reply["jsep"]["sdp"].as_str().unwrap_or_default();
    publisher.set_answer(answer).await.expect("answer");
    let mut list = vec![];
    while let Ok(Some(c)) =
        tokio::time::timeout(Duration::from_millis(500), candidates.recv()).await
    {
        list.push(c);
    }
    assert!(!list.is_empty(), "the publisher gathered candidates");
    list.push(json!({"completed": true}));
    let ack = janus
        .request(
            json!({"janus": "trickle", "session_id": session, "handle_id": handle,
                        "candidates": list}),
        )
        .await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    let up = janus
        .recv_matching(|m| m["janus"] == "webrtcup" && m["sender"] == handle)
        .await;
    assert_eq!(up["session_id"], session);
    publisher.start();
    publisher
}

fn media() -> PublisherConfig {
    PublisherConfig {
        video: Some(VideoConfig::default()),
        audio: Some(AudioConfig::default()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_publisher_is_subscribed_to_within_its_token_rooms_and_hangs_up() {
    let server = Server::start(&[("hub", OPEN)]);
    configure(&server, true, None);
    let pass = token(json!({"join_hub": true}));
    let (mut janus, session, pub_handle) = Janus::attached(&server).await;
    let publisher = publish(
        &mut janus,
        (session, pub_handle),
        "speaker",
        Some(&pass),
        media(),
    )
    .await;

    let (mut viewer, viewer_session, sub_handle) = Janus::attached(&server).await;
    let reply = viewer
        .message(
            viewer_session,
            sub_handle,
            json!({"kind": "join", "room_id": "hub", "user_id": "viewer", "token": pass}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"success": true, "response": {"users": {"hub": ["speaker"]}}})
    );
    let subscribe = |token: &str| {
        json!({"janus": "message", "session_id": viewer_session, "handle_id": sub_handle,
               "body": {"kind": "subscribe", "what": {"media": "speaker"}, "token": token}})
    };
    let reply = viewer
        .request(subscribe(&token(json!({"room_ids": ["other"]}))))
        .await;
    assert_eq!(
        reply["plugindata"]["data"],
        json!({"success": false, "error": {"msg": "Rejecting subscription without permission!"}})
    );
    assert!(reply.get("jsep").is_none());
    let reply = viewer
        .request(subscribe(&token(json!({"room_ids": ["hub"]}))))
        .await;
    assert_eq!(
        reply["plugindata"]["data"],
        json!({"success": true, "response": {}})
    );
    assert_eq!(reply["jsep"]["type"], "offer", "{reply}");
    let sdp = reply["jsep"]["sdp"].as_str().unwrap_or_default();
    assert!(
        sdp.contains("m=audio") && sdp.contains("m=video"),
        "the speaker's audio and video are offered: {sdp}"
    );

    // The publisher hangs up: its connection closes, and so does the viewer's of it.
    let reply = janus
        .request(json!({"janus": "hangup", "session_id": session, "handle_id": pub_handle}))
        .await;
    assert_eq!(reply["janus"], "success", "{reply}");
    let hangup = janus
        .recv_matching(|m| m["janus"] == "hangup" && m["sender"] == pub_handle)
        .await;
    assert_eq!(
        hangup,
        json!({"janus": "hangup", "session_id": session, "sender": pub_handle, "reason": "Janus API"})
    );
    let hangup = viewer
        .recv_matching(|m| m["janus"] == "hangup" && m["sender"] == sub_handle)
        .await;
    assert_eq!(hangup["session_id"], viewer_session);
    let other = viewer.attach(viewer_session).await;
    let reply = viewer
        .message(
            viewer_session,
            other,
            json!({"kind": "join", "room_id": "hub", "user_id": "viewer", "token": pass,
                   "subscribe": {"media": "speaker"}}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "Can't subscribe to a nonexistent publisher."}}),
        "nothing is published any more"
    );
    // A hangup of a handle without a connection says nothing more.
    let reply = janus
        .request(json!({"janus": "hangup", "session_id": session, "handle_id": pub_handle}))
        .await;
    assert_eq!(reply["janus"], "success");
    janus
        .assert_no(Duration::from_millis(300), |m: &Value| {
            m["janus"] == "hangup"
        })
        .await;
    publisher.close().await;
}

#[tokio::test]
async fn packets_lost_on_the_way_in_bring_a_slowlink() {
    let server = Server::start(&[("hub", OPEN)]);
    let (mut janus, session, handle) = Janus::attached(&server).await;
    // Every other audio packet (25 a second) is lost; lost audio is not sent again.
    let config = PublisherConfig {
        drop_outgoing: Some(Arc::new(|p: &PacketInfo<'_>| {
            p.kind == Kind::Audio && p.packet.header.sequence_number.is_multiple_of(2)
        })),
        ..media()
    };
    let publisher = publish(&mut janus, (session, handle), "lossy", None, config).await;
    let slowlink = janus
        .recv_matching(|m| m["janus"] == "slowlink" && m["sender"] == handle)
        .await;
    assert_eq!(slowlink["session_id"], session);
    assert_eq!(slowlink["media"], "audio", "{slowlink}");
    assert_eq!(slowlink["uplink"], true, "{slowlink}");
    assert!(
        slowlink["lost"].as_u64().is_some_and(|n| n >= 10),
        "{slowlink}"
    );
    publisher.close().await;
}
