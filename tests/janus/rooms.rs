//! The plugin's rooms: presence, data, kicks, subscriptions, limits and timeouts, with
//! Galène clients in the same groups.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{Janus, OPEN, configure, token};
use crate::common::{Client, Server, group_with_op};

#[tokio::test]
async fn galene_operators_see_janus_users_and_kick_them() {
    let server = Server::start(&[("hub", &group_with_op("present", ""))]);
    let mut op = Client::join(&server.ws_url(), "op-id", "hub", "boss", "secret").await;
    let (mut janus, session, handle) = Janus::joined(
        &server,
        "hub",
        "janus-guy",
        json!({"notifications": true, "data": true}),
    )
    .await;
    let added = op
        .recv_matching(|m| m["type"] == "user" && m["kind"] == "add" && m["id"] == "janus-guy")
        .await;
    assert_eq!(added["username"], "janus-guy");

    op.user_action("kick", "janus-guy", json!("go away")).await;
    let detached = janus.recv_matching(|m| m["janus"] == "detached").await;
    assert_eq!(
        detached,
        json!({"janus": "detached", "session_id": session, "sender": handle})
    );
    op.recv_matching(|m| m["type"] == "user" && m["kind"] == "delete" && m["id"] == "janus-guy")
        .await;
    // The handle is gone; the session lives on.
    let reply = janus
        .request(
            json!({"janus": "message", "session_id": session, "handle_id": handle, "body": {}}),
        )
        .await;
    assert_eq!(reply["error"]["code"], 459);
    assert!(janus.attach(session).await > 0);
}

#[tokio::test]
async fn members_get_presence_and_data_events() {
    let server = Server::start(&[("hub", OPEN)]);
    let member = json!({"notifications": true, "data": true});
    let (mut a, a_session, a_handle) = Janus::joined(&server, "hub", "a", member.clone()).await;
    let (mut b, _, _) = Janus::joined(&server, "hub", "b", member.clone()).await;
    assert_eq!(
        a.plugin_event("join").await,
        json!({"event": "join", "user_id": "b", "room_id": "hub"})
    );
    // A handle that joins without `data` is no member: not announced, gets no data.
    let (mut watcher, _, _) =
        Janus::joined(&server, "hub", "w", json!({"notifications": true})).await;
    let (_quiet, _, _) = Janus::joined(&server, "hub", "w2", json!({})).await;

    let sent = a
        .message(
            a_session,
            a_handle,
            json!({"kind": "data", "body": "hello all"}),
        )
        .await;
    assert_eq!(sent, json!({"success": true, "response": {}}));
    assert_eq!(
        b.plugin_event("data").await,
        json!({"event": "data", "body": "hello all"})
    );
    let sent = a
        .message(
            a_session,
            a_handle,
            json!({"kind": "data", "whom": "b", "body": "just you"}),
        )
        .await;
    assert_eq!(sent["success"], true);
    assert_eq!(b.plugin_event("data").await["body"], "just you");
    watcher
        .assert_no(Duration::from_millis(300), |m| {
            m["plugindata"]["data"]["event"] == "data"
        })
        .await;
    a.assert_no(Duration::from_millis(100), |m| {
        m["plugindata"]["data"]["event"] == "data"
    })
    .await;
    // A member joining after the non-members is the first `join` anyone gets since b's:
    // neither w nor w2 was announced, to members or to the watcher.
    let (_c, _, _) = Janus::joined(&server, "hub", "c", member.clone()).await;
    assert_eq!(watcher.plugin_event("join").await["user_id"], "c");
    assert_eq!(a.plugin_event("join").await["user_id"], "c");
    assert_eq!(b.plugin_event("join").await["user_id"], "c");

    // Leaving: detach of the member's only handle.
    let reply = a
        .request(json!({"janus": "detach", "session_id": a_session, "handle_id": a_handle}))
        .await;
    assert_eq!(reply["janus"], "success");
    assert_eq!(
        b.plugin_event("leave").await,
        json!({"event": "leave", "user_id": "a", "room_id": "hub"})
    );
    assert_eq!(watcher.plugin_event("leave").await["user_id"], "a");
}

#[tokio::test]
async fn one_user_per_room_and_session_however_many_handles() {
    let server = Server::start(&[("hub", OPEN)]);
    let mut observer = Client::join(&server.ws_url(), "observer", "hub", "observer", "").await;
    let (mut janus, session, _) = Janus::joined(
        &server,
        "hub",
        "u",
        json!({"notifications": true, "data": true}),
    )
    .await;
    let second = janus.attach(session).await;
    let reply = janus
        .message(
            session,
            second,
            json!({"kind": "join", "room_id": "hub", "user_id": "u"}),
        )
        .await;
    assert_eq!(reply["success"], true, "a second handle of the same user");
    let adds: Vec<Value> = observer
        .drain(Duration::from_millis(300))
        .await
        .into_iter()
        .filter(|m| m["type"] == "user" && m["kind"] == "add" && m["id"] == "u")
        .collect();
    assert_eq!(adds.len(), 1, "one person in the people list");

    let (mut other, other_session, other_handle) = Janus::attached(&server).await;
    let reply = other
        .message(
            other_session,
            other_handle,
            json!({"kind": "join", "room_id": "hub", "user_id": "u"}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "User ID u is already in room hub."}})
    );
}

#[tokio::test]
async fn room_size_server_size_and_rooms_made_on_the_fly() {
    let server = Server::start_with(&[("hub", OPEN)], &["--janus-rooms", "any"], false);
    std::fs::write(
        server.dir.join("data").join("config.json"),
        r#"{"janus": {"maxRoomSize": 1, "maxClients": 3}}"#,
    )
    .unwrap();
    let member = json!({"data": true});
    let (_first, _, _) = Janus::joined(&server, "hub", "first", member.clone()).await;
    let (mut second, session, handle) = Janus::attached(&server).await;
    let join = |user: &str, room: &str, subscribe: &Value| json!({"kind": "join", "room_id": room, "user_id": user, "subscribe": subscribe});
    let reply = second
        .message(session, handle, join("second", "hub", &member))
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "Room is full."}})
    );
    let reply = second
        .message(session, handle, join("second", "made-up", &member))
        .await;
    assert_eq!(
        reply["success"], true,
        "--janus-rooms any makes rooms: {reply}"
    );
    let (_third, _, _) = Janus::joined(&server, "another", "third", member.clone()).await;
    let (mut fourth, session, handle) = Janus::attached(&server).await;
    let reply = fourth
        .message(session, handle, join("fourth", "yet-another", &member))
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "Server is full."}})
    );
}

#[tokio::test]
async fn a_token_with_kick_users_kicks_from_outside_the_room() {
    let server = Server::start(&[("hub", OPEN)]);
    configure(&server, true, None);
    let member = json!({"notifications": true, "data": true});
    let pass = token(json!({"join_hub": true}));
    let join = |user: &str| json!({"kind": "join", "room_id": "hub", "user_id": user, "subscribe": member, "token": pass});
    let (mut victim, victim_session, victim_handle) = Janus::attached(&server).await;
    let reply = victim
        .message(victim_session, victim_handle, join("victim"))
        .await;
    assert_eq!(reply["success"], true, "{reply}");
    let (mut witness, witness_session, witness_handle) = Janus::attached(&server).await;
    let reply = witness
        .message(witness_session, witness_handle, join("witness"))
        .await;
    assert_eq!(reply["success"], true, "{reply}");

    // The moderator's session never joins any room: its token is its authority.
    let (mut moderator, session, handle) = Janus::attached(&server).await;
    let kick = |user: &str, token: &str| json!({"kind": "kick", "room_id": "hub", "user_id": user, "token": token});
    let elsewhere = token(json!({"kick_users": true, "room_ids": ["other"]}));
    let reply = moderator
        .message(session, handle, kick("victim", &elsewhere))
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "Rejecting kick without permission!"}}),
        "a token that names other rooms"
    );
    let kicker = token(json!({"kick_users": true}));
    let reply = moderator
        .message(session, handle, kick("nobody", &kicker))
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "No user nobody in room hub."}})
    );
    let reply = moderator
        .message(session, handle, kick("victim", &kicker))
        .await;
    assert_eq!(reply, json!({"success": true, "response": {}}));
    let detached = victim.recv_matching(|m| m["janus"] == "detached").await;
    assert_eq!(detached["sender"], victim_handle);
    assert_eq!(
        witness.plugin_event("leave").await,
        json!({"event": "leave", "user_id": "victim", "room_id": "hub"})
    );
}

#[tokio::test]
async fn a_handle_subscribes_once_whether_with_its_join_or_after() {
    let server = Server::start(&[("hub", OPEN)]);
    let (mut janus, session, handle) = Janus::attached(&server).await;
    let reply = janus
        .message(
            session,
            handle,
            json!({"kind": "subscribe", "what": {"notifications": true}}),
        )
        .await;
    assert_eq!(reply, json!({"success": true, "response": {}}));
    let reply = janus
        .message(
            session,
            handle,
            json!({"kind": "join", "room_id": "hub", "user_id": "u",
                   "subscribe": {"notifications": true, "data": true}}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "Handles may only subscribe once!"}})
    );
    // Refused before anything happened: the handle joins without a subscription, and
    // keeps the one it has.
    let reply = janus
        .message(
            session,
            handle,
            json!({"kind": "join", "room_id": "hub", "user_id": "u"}),
        )
        .await;
    assert_eq!(reply["success"], true, "{reply}");
    let (_other, _, _) = Janus::joined(&server, "hub", "v", json!({"data": true})).await;
    assert_eq!(janus.plugin_event("join").await["user_id"], "v");
    let reply = janus
        .message(
            session,
            handle,
            json!({"kind": "subscribe", "what": {"data": true}}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"success": false, "error": {"msg": "Users may only subscribe once!"}})
    );
}

#[tokio::test]
async fn a_session_that_times_out_leaves_its_rooms() {
    let server = Server::start(&[("hub", OPEN)]);
    configure(&server, false, Some(2));
    let mut observer = Client::join(&server.ws_url(), "observer", "hub", "observer", "").await;
    let member = json!({"notifications": true, "data": true});
    let (mut silent, silent_session, silent_handle) =
        Janus::joined(&server, "hub", "silent", member.clone()).await;
    let second = silent.attach(silent_session).await;
    let reply = silent
        .message(
            silent_session,
            second,
            json!({"kind": "join", "room_id": "hub", "user_id": "silent"}),
        )
        .await;
    assert_eq!(reply["success"], true, "{reply}");
    let (mut alive, alive_session, _) = Janus::joined(&server, "hub", "alive", member).await;

    let leave = alive
        .keep_alive_until(alive_session, |m| {
            m["plugindata"]["data"]["event"] == "leave"
        })
        .await;
    assert_eq!(
        leave["plugindata"]["data"],
        json!({"event": "leave", "user_id": "silent", "room_id": "hub"})
    );
    observer
        .recv_matching(|m| m["type"] == "user" && m["kind"] == "delete" && m["id"] == "silent")
        .await;
    let timeout = silent.recv_matching(|m| m["janus"] == "timeout").await;
    assert_eq!(
        timeout,
        json!({"janus": "timeout", "session_id": silent_session})
    );
    for handle in [silent_handle, second] {
        let reply = silent
            .request(json!({"janus": "message", "session_id": silent_session,
                            "handle_id": handle, "body": {}}))
            .await;
        assert_eq!(reply["error"]["code"], 458, "{reply}");
    }
    // The other session, kept alive, is still in the room.
    alive.keepalive(alive_session).await;
}
