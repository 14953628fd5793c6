//! calling-signaling on `/calling`: basics, rooms and liveness, both dialects, against the
//! real server (namespaces and invitations: tests/calling_invites.rs).

mod calling_client;
mod common;

use calling_client::{Calling, Dialect, Doc, Rtc, any_rooms};
use common::{Client, Server, group_with_op};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

// ---------------------------------------------------------------------------------------
// Basics: hello, answers, errors of each dialect

#[tokio::test]
async fn document_dialect_answers_by_tid_and_reports_bad_input() {
    let server = any_rooms();
    let mut a = Calling::connect(&server, Doc).await;
    let b = Calling::connect(&server, Doc).await;
    assert_ne!(a.id, b.id, "ids are generated per connection");

    // A tid of any type comes back; an answer without custom data has an empty `data`.
    a.send(json!({"type": "ping", "tid": {"mine": [1]}})).await;
    let answer = a.read().await.unwrap();
    assert_eq!(
        answer,
        json!({"type": "answer", "tid": {"mine": [1]}, "data": {}})
    );
    // No tid, no answer: the next message is the answer to the next request.
    a.send(json!({"type": "ping"})).await;
    a.send(json!({"type": "ping", "tid": 5})).await;
    assert_eq!(a.read().await.unwrap()["tid"], 5);
    // Unknown fields are ignored.
    a.ok(json!({"type": "ping", "whatever": true})).await;

    assert_eq!(
        a.fails(json!({"type": "dance"})).await,
        "Unknown request type \"dance\""
    );
    assert_eq!(
        a.fails(json!({"room": "x"})).await,
        "Missing field \"type\""
    );
    assert_eq!(
        a.fails(json!({"type": "room_leave"})).await,
        "Missing field \"room\""
    );
    assert_eq!(
        a.fails(json!({"type": "room_join", "room": "r", "status": [1]}))
            .await,
        "Field \"status\" must be an object"
    );
    assert_eq!(
        a.fails(json!({"type": "room_status", "room": "r", "key": "k", "check": "yes"}))
            .await,
        "Field \"check\" must be true or false"
    );

    // Errors that no answer can carry come as `error` messages.
    a.send(json!({"type": "dance"})).await;
    assert_eq!(
        a.read().await.unwrap(),
        json!({"type": "error", "error": "Unknown request type \"dance\""})
    );
    a.send_text("{not json").await;
    let m = a.read().await.unwrap();
    assert_eq!(m["type"], "error");
    assert!(
        m["error"]
            .as_str()
            .unwrap()
            .starts_with("Error processing incoming message")
    );
    a.send_text("[1, 2]").await;
    assert_eq!(
        a.read().await.unwrap()["error"],
        "Message is not a JSON object"
    );
    a.socket.send(Frame::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        a.read().await.unwrap()["error"],
        "Binary messages are not supported"
    );
    // The connection is still fine.
    a.ok(json!({"type": "ping"})).await;
}

#[tokio::test]
async fn rtc_lib_dialect_checks_like_the_released_server() {
    let server = any_rooms();
    let mut a = Calling::connect(&server, Rtc).await;

    a.send(json!({"type": "ping"})).await;
    assert_eq!(
        a.read().await.unwrap(),
        json!({"type": "error", "error": "Missing tid in message"})
    );
    a.send(json!({"type": "ping", "tid": "seven"})).await;
    assert_eq!(
        a.read().await.unwrap(),
        json!({"type": "answer", "tid": "seven", "error": "Type mismatch in message"})
    );
    // An answer without custom data has no `data` at all.
    a.send(json!({"type": "ping", "tid": 0})).await;
    assert_eq!(a.read().await.unwrap(), json!({"type": "answer", "tid": 0}));
    assert_eq!(a.fails(json!({"type": "dance"})).await, "Unknown command");
    assert_eq!(
        a.fails(json!({"room": "x"})).await,
        "Missing type in message"
    );
    assert_eq!(
        a.fails(json!({"type": "ping", "extra": 1})).await,
        "Unexpected field in message"
    );
    assert_eq!(
        a.fails(json!({"type": "room_leave"})).await,
        "Missing element in message"
    );
    assert_eq!(
        a.fails(json!({"type": "room_leave", "room": 1})).await,
        "Type mismatch in message"
    );
    assert_eq!(
        a.fails(json!({"type": "invite_deny", "handle": "0"})).await,
        "Type mismatch in message"
    );
    // Only an event in this dialect.
    assert_eq!(
        a.fails(json!({"type": "room_peer_update", "room": "r", "status": {}}))
            .await,
        "Unknown command"
    );
    a.send_text("{not json").await;
    assert_eq!(a.read().await.unwrap()["type"], "error");
    a.ok(json!({"type": "ping"})).await;
}

#[tokio::test]
async fn an_unknown_dialect_is_refused() {
    let server = any_rooms();
    let url = format!("ws://127.0.0.1:{}/calling?dialect=sip", server.port);
    let mut c = Client::connect_raw(&url).await;
    let closed = c.closed().await;
    assert_eq!(closed.code, 1008);
    assert_eq!(closed.before[0]["type"], "error");
    assert!(
        closed.before[0]["error"]
            .as_str()
            .unwrap()
            .contains("Unknown dialect")
    );
}

// ---------------------------------------------------------------------------------------
// Rooms

async fn rooms(dialect: Dialect) {
    let server = any_rooms();
    let mut alice = Calling::connect(&server, dialect).await;
    let mut bob = Calling::connect(&server, dialect).await;

    let joined = alice.join("r", json!({"name": "A"})).await;
    let mut expected = json!({"room": "r", "peers": {}});
    if dialect == Rtc {
        expected["status"] = json!({});
    }
    assert_eq!(joined, expected);
    assert_eq!(
        alice.fails(json!({"type": "room_join", "room": "r"})).await,
        "User is already in room"
    );

    // The room status is the group's data, set by compare-and-set.
    let set = |check: Option<Value>, value: Value| {
        let mut m = json!({"type": "room_status", "room": "r", "key": "lead", "value": value});
        if let Some(previous) = check {
            m["check"] = json!(true);
            if !previous.is_null() {
                m["previous"] = previous;
            }
        }
        m
    };
    alice.ok(set(Some(Value::Null), json!("alice"))).await;
    assert_eq!(
        alice.fails(set(Some(Value::Null), json!("again"))).await,
        "Status not in expected state"
    );
    assert_eq!(
        alice.fails(set(Some(json!("bob")), json!("bob"))).await,
        "Status not in expected state"
    );
    alice
        .ok(set(Some(json!("alice")), json!({"who": "A"})))
        .await;
    // Two changes in a row: the setter hears of neither.
    alice.none_of("room_update").await;

    let joined = bob.join("r", json!({"name": "B"})).await;
    let mut expected = json!({"room": "r", "peers": {
        alice.id.clone(): {"pending": false, "status": {"name": "A"}}}});
    if dialect == Rtc {
        expected["status"] = json!({"lead": {"who": "A"}});
    }
    assert_eq!(joined, expected);
    assert_eq!(
        alice.event("room_peer_add").await,
        json!({"type": "room_peer_add", "room": "r", "user": bob.id, "pending": false,
               "status": {"name": "B"}})
    );

    // `room_peer_status` (the released server's name) works in both dialects.
    bob.ok(json!({"type": "room_peer_status", "room": "r", "status": {"name": "B", "cam": 1}}))
        .await;
    assert_eq!(
        alice.event("room_peer_update").await,
        json!({"type": "room_peer_update", "room": "r", "user": bob.id,
               "status": {"name": "B", "cam": 1}})
    );
    if dialect == Doc {
        // The document's request may also just say the peer is no longer pending:
        // bob never was, so nothing changes and nobody is told.
        bob.ok(json!({"type": "room_peer_update", "room": "r", "pending": false}))
            .await;
    }
    // Peer status: the others hear of it, the sender does not.
    bob.ok(bob.peer_status("r", json!({"name": "B", "muted": true})))
        .await;
    assert_eq!(
        alice.event("room_peer_update").await,
        json!({"type": "room_peer_update", "room": "r", "user": bob.id,
               "status": {"name": "B", "muted": true}})
    );
    // The global status is merged under each room's own status.
    bob.ok(json!({"type": "status", "status": {"name": "Global", "lang": "fr"}}))
        .await;
    assert_eq!(
        alice.event("room_peer_update").await["status"],
        json!({"name": "B", "lang": "fr", "muted": true})
    );
    bob.none_of("room_peer_update").await;

    // Room status: the others get room_update; without a value the key goes.
    bob.ok(json!({"type": "room_status", "room": "r", "key": "topic", "value": [1, 2]}))
        .await;
    assert_eq!(
        alice.event("room_update").await,
        json!({"type": "room_update", "room": "r",
               "status": {"lead": {"who": "A"}, "topic": [1, 2]}})
    );
    bob.ok(json!({"type": "room_status", "room": "r", "key": "topic"}))
        .await;
    assert_eq!(
        alice.event("room_update").await["status"],
        json!({"lead": {"who": "A"}})
    );
    bob.none_of("room_update").await;

    // Messages between peers.
    bob.ok(
        json!({"type": "room_peer_to", "room": "r", "user": alice.id,
                  "event": "signaling", "data": {"type": "offer", "sdp": "v=0"}}),
    )
    .await;
    assert_eq!(
        alice.event("room_peer_from").await,
        json!({"type": "room_peer_from", "room": "r", "user": bob.id, "event": "signaling",
               "data": {"type": "offer", "sdp": "v=0"}})
    );
    assert_eq!(
        bob.fails(
            json!({"type": "room_peer_to", "room": "r", "user": "nobody",
                         "event": "e", "data": {}})
        )
        .await,
        "Unknown recipient"
    );
    assert_eq!(
        bob.fails(
            json!({"type": "room_peer_to", "room": "elsewhere", "user": alice.id,
                         "event": "e", "data": {}})
        )
        .await,
        "You are not in the room"
    );
    assert_eq!(
        bob.fails(json!({"type": "room_status", "room": "elsewhere", "key": "k"}))
            .await,
        "You are not in the room"
    );
    assert_eq!(
        bob.fails(bob.peer_status("elsewhere", json!({}))).await,
        "You are not in the room"
    );

    // Several rooms at once, each with its own peers.
    bob.join("other", json!({})).await;
    alice.join("other", json!({})).await;
    assert_eq!(bob.event("room_peer_add").await["room"], "other");

    bob.ok(json!({"type": "room_leave", "room": "r"})).await;
    assert_eq!(
        alice.event("room_peer_rm").await,
        json!({"type": "room_peer_rm", "room": "r", "user": bob.id})
    );
    assert_eq!(
        bob.fails(json!({"type": "room_leave", "room": "r"})).await,
        "You are not in the room"
    );
    // Disconnecting leaves every room.
    drop(bob);
    assert_eq!(alice.event("room_peer_rm").await["room"], "other");
}

#[tokio::test]
async fn rooms_document() {
    rooms(Doc).await;
}

#[tokio::test]
async fn rooms_rtc_lib() {
    rooms(Rtc).await;
}

#[tokio::test]
async fn room_join_without_a_room_creates_one_only_when_allowed() {
    let server = any_rooms();
    let mut a = Calling::connect(&server, Rtc).await;
    let created = a.ok(json!({"type": "room_join"})).await;
    let room = created["room"].as_str().unwrap().to_owned();
    assert!(room.len() >= 16, "{room}");
    assert_eq!(created["peers"], json!({}));
    let mut b = Calling::connect(&server, Rtc).await;
    let joined = b.join(&room, json!({})).await;
    assert!(joined["peers"].get(&a.id).is_some());

    let strict = Server::start(&[(
        "open",
        r#"{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}}"#,
    )]);
    let mut c = Calling::connect(&strict, Doc).await;
    let error = c.fails(json!({"type": "room_join"})).await;
    assert!(error.contains("name an existing room"), "{error}");
    assert_eq!(
        c.fails(json!({"type": "room_join", "room": "nowhere"}))
            .await,
        "Room does not exist"
    );
    assert_eq!(
        c.fails(json!({"type": "room_join", "room": "../x"})).await,
        "Invalid room id"
    );
    c.join("open", json!({})).await;
}

#[tokio::test]
async fn calling_rooms_are_groups_shared_with_galene_clients() {
    let server = Server::start_with(
        &[("meet", &group_with_op("present", ""))],
        &["--calling-rooms", "existing"],
        false,
    );
    let mut boss = Client::join(&server.ws_url(), "boss-id", "meet", "boss", "secret").await;
    let mut a = Calling::connect(&server, Rtc).await;
    let mut b = Calling::connect(&server, Rtc).await;

    // Galène members are not calling peers.
    let joined = a.join("meet", json!({"name": "A"})).await;
    assert_eq!(joined["peers"], json!({}));
    // A Galène user sees the calling member, with its status in the user data.
    let added = boss
        .recv_matching(|m| m["type"] == "user" && m["kind"] == "add" && m["id"] == a.id.as_str())
        .await;
    assert_eq!(added["data"]["calling-status"], json!({"name": "A"}));
    b.join("meet", json!({})).await;
    a.event("room_peer_add").await;

    // In a group from a file only operators set the group's data.
    assert_eq!(
        a.fails(json!({"type": "room_status", "room": "meet", "key": "k", "value": 1}))
            .await,
        "Only operators may change the status of this room"
    );
    // The operator's group data is the room status.
    boss.group_action("setdata", json!({"topic": "standup"}))
        .await;
    assert_eq!(
        a.event("room_update").await,
        json!({"type": "room_update", "room": "meet", "status": {"topic": "standup"}})
    );

    // An operator can kick a calling member: it is told why and disconnected.
    boss.user_action("kick", &b.id, json!("not today")).await;
    let (before, code) = b.closed().await;
    assert_eq!(code, 1000);
    let error = before.iter().find(|m| m["type"] == "error").unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not today"),
        "{error}"
    );
    assert_eq!(a.event("room_peer_rm").await["user"], b.id.as_str());
}

// ---------------------------------------------------------------------------------------
// Liveness and limits

#[tokio::test]
async fn remote_ping_and_remote_timeout_in_both_dialects() {
    let server = any_rooms();
    for dialect in [Doc, Rtc] {
        let mut c = Calling::connect(&server, dialect).await;
        assert!(
            c.fails(json!({"type": "remote_ping", "time": 5}))
                .await
                .contains("between")
        );
        c.ok(json!({"type": "remote_ping", "time": 150})).await;
        // Silence on both sides makes the server ping.
        assert_eq!(c.event("ping").await, json!({"type": "ping"}));
        assert_eq!(c.event("ping").await, json!({"type": "ping"}));

        c.ok(json!({"type": "remote_timeout", "time": 300})).await;
        // The server's pings do not keep the connection alive: only the client's messages do.
        let (_, code) = c.closed().await;
        assert_eq!(code, 1001, "{dialect:?}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_without_harm_to_others() {
    let server = any_rooms();
    let mut a = Calling::connect(&server, Rtc).await;
    let mut b = Calling::connect(&server, Doc).await;
    a.join("r", json!({})).await;
    b.join("r", json!({})).await;
    a.event("room_peer_add").await;

    let huge = "x".repeat(100_000);
    assert!(
        b.fails(json!({"type": "status", "status": {"big": huge}}))
            .await
            .contains("too large")
    );
    assert!(
        b.fails(json!({"type": "room_status", "room": "r", "key": "k", "value": huge}))
            .await
            .contains("too large")
    );
    assert_eq!(
        b.fails(json!({"type": "room_peer_update", "room": "r", "pending": true}))
            .await,
        "pending can only be set to false"
    );
    for junk in [
        "null",
        "\"text\"",
        "{\"type\": null, \"tid\": 1}",
        "{\"type\": \"room_join\", \"tid\": 1, \"room\": \"\"}",
        "{\"type\": \"invite_accept\", \"tid\": 1, \"handle\": \"minus one\"}",
        "{\"type\": \"invite_accept\", \"tid\": 1, \"handle\": -1}",
        "{\"type\": \"remote_ping\", \"tid\": 1, \"time\": 1e308}",
        "{\"type\": \"ns_subscribe\", \"tid\": 1, \"namespace\": 7}",
        &format!("{}1{}", "[".repeat(500), "]".repeat(500)),
    ] {
        b.send_text(junk).await;
        let reply = b.read().await.unwrap();
        assert!(
            reply.get("error").is_some(),
            "{junk} should be refused: {reply}"
        );
    }
    // Too many rooms for one connection.
    let mut last = String::new();
    for i in 0..70 {
        let answer = b
            .request(json!({"type": "room_join", "room": format!("many-{i}")}))
            .await;
        if let Some(error) = answer["error"].as_str() {
            last = error.to_owned();
            break;
        }
    }
    assert!(last.starts_with("Too many rooms"), "{last}");

    // The other client was not disturbed.
    b.ok(
        json!({"type": "room_peer_to", "room": "r", "user": a.id, "event": "still",
                "data": {}}),
    )
    .await;
    assert_eq!(a.event("room_peer_from").await["event"], "still");
}
