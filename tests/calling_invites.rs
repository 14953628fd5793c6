//! calling-signaling on `/calling`: namespaces and invitations, both dialects, against
//! the real server.

mod calling_client;
mod common;

use calling_client::{Calling, Dialect, Doc, Rtc, any_rooms};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Namespaces

async fn namespace_users(dialect: Dialect) {
    let server = any_rooms();
    let mut watcher = Calling::connect(&server, dialect).await;
    let mut bob = Calling::connect(&server, dialect).await;
    let update = match dialect {
        Doc => "user_update",
        Rtc => "ns_user_update",
    };

    let empty = watcher
        .ok(json!({"type": "ns_subscribe", "namespace": "ns"}))
        .await;
    assert_eq!(empty, json!({"users": {}, "rooms": {}}));
    assert_eq!(
        watcher
            .fails(json!({"type": "ns_subscribe", "namespace": "ns"}))
            .await,
        "User was already subscribed to that namespace"
    );

    bob.ok(json!({"type": "status", "status": {"name": "Bob"}}))
        .await;
    bob.ok(json!({"type": "ns_user_register", "namespace": "ns"}))
        .await;
    assert_eq!(
        watcher.event("ns_user_add").await,
        json!({"type": "ns_user_add", "namespace": "ns", "user": bob.id, "status": {"name": "Bob"}})
    );
    assert_eq!(
        bob.fails(json!({"type": "ns_user_register", "namespace": "ns"}))
            .await,
        "User was already registered to that namespace"
    );

    bob.ok(json!({"type": "status", "status": {"name": "Robert"}}))
        .await;
    assert_eq!(
        watcher.event(update).await,
        json!({"type": update, "namespace": "ns", "user": bob.id, "status": {"name": "Robert"}})
    );

    // A later subscriber gets the registered users in the answer.
    let mut late = Calling::connect(&server, dialect).await;
    let listing = late
        .ok(json!({"type": "ns_subscribe", "namespace": "ns"}))
        .await;
    assert_eq!(
        listing["users"],
        json!({ bob.id.clone(): {"name": "Robert"} })
    );

    bob.ok(json!({"type": "ns_user_unregister", "namespace": "ns"}))
        .await;
    assert_eq!(
        watcher.event("ns_user_rm").await,
        json!({"type": "ns_user_rm", "namespace": "ns", "user": bob.id})
    );
    assert_eq!(
        bob.fails(json!({"type": "ns_user_unregister", "namespace": "ns"}))
            .await,
        "User was not registered to namespace"
    );

    // Unsubscribed: no more announcements.
    late.ok(json!({"type": "ns_unsubscribe", "namespace": "ns"}))
        .await;
    late.drain().await;
    assert_eq!(
        late.fails(json!({"type": "ns_unsubscribe", "namespace": "ns"}))
            .await,
        "User was not subscribed to namespace"
    );
    assert_eq!(
        late.fails(json!({"type": "ns_unsubscribe", "namespace": "nowhere"}))
            .await,
        "Namespace does not exist"
    );
    assert_eq!(
        late.fails(json!({"type": "ns_user_unregister", "namespace": "nowhere"}))
            .await,
        "Namespace does not exist"
    );
    assert_eq!(
        late.fails(json!({"type": "ns_subscribe", "namespace": ""}))
            .await,
        "Invalid namespace id"
    );

    // A registered user who disconnects is announced as gone.
    bob.ok(json!({"type": "ns_user_register", "namespace": "ns"}))
        .await;
    watcher.event("ns_user_add").await;
    drop(bob);
    assert_eq!(watcher.event("ns_user_rm").await["namespace"], "ns");
    late.none_of("ns_user_rm").await;
}

#[tokio::test]
async fn namespace_users_document() {
    namespace_users(Doc).await;
}

#[tokio::test]
async fn namespace_users_rtc_lib() {
    namespace_users(Rtc).await;
}

async fn namespace_rooms(dialect: Dialect) {
    let server = any_rooms();
    let mut watcher = Calling::connect(&server, dialect).await;
    let mut alice = Calling::connect(&server, dialect).await;
    let mut bob = Calling::connect(&server, dialect).await;
    let peer = |what: &str| match dialect {
        Doc => format!("ns_room_user_{what}"),
        Rtc => format!("ns_room_peer_{what}"),
    };
    watcher
        .ok(json!({"type": "ns_subscribe", "namespace": "lobby"}))
        .await;

    let register = json!({"type": "ns_room_register", "namespace": "lobby", "room": "r1"});
    assert_eq!(
        alice.fails(register.clone()).await,
        "You are not in the room"
    );
    alice.join("r1", json!({"name": "A"})).await;
    alice.ok(register.clone()).await;
    assert_eq!(
        watcher.event("ns_room_add").await,
        json!({"type": "ns_room_add", "namespace": "lobby", "room": "r1", "status": {},
               "peers": {alice.id.clone(): {"status": {"name": "A"}, "pending": false}}})
    );
    assert_eq!(
        alice.fails(register.clone()).await,
        "Room was already registered to that namespace"
    );

    bob.join("r1", json!({"name": "B"})).await;
    assert_eq!(
        watcher.event(&peer("add")).await,
        json!({"type": peer("add"), "namespace": "lobby", "room": "r1", "user": bob.id,
               "status": {"name": "B"}, "pending": false})
    );
    bob.ok(bob.peer_status("r1", json!({"name": "B2"}))).await;
    assert_eq!(
        watcher.event(&peer("update")).await,
        json!({"type": peer("update"), "namespace": "lobby", "room": "r1", "user": bob.id,
               "status": {"name": "B2"}})
    );
    bob.ok(json!({"type": "room_status", "room": "r1", "key": "topic", "value": "hi"}))
        .await;
    assert_eq!(
        watcher.event("ns_room_update").await,
        json!({"type": "ns_room_update", "namespace": "lobby", "room": "r1",
               "status": {"topic": "hi"}})
    );

    // A subscriber who comes later sees the room in the answer.
    let mut late = Calling::connect(&server, dialect).await;
    let listing = late
        .ok(json!({"type": "ns_subscribe", "namespace": "lobby"}))
        .await;
    assert_eq!(
        listing["rooms"]["r1"],
        json!({"status": {"topic": "hi"}, "peers": {
            alice.id.clone(): {"status": {"name": "A"}, "pending": false},
            bob.id.clone(): {"status": {"name": "B2"}, "pending": false}}})
    );

    // An invited peer is announced as pending, then as accepted.
    let mut carol = Calling::connect(&server, dialect).await;
    alice
        .ok(json!({"type": "invite_send", "room": "r1", "user": carol.id, "data": {}}))
        .await;
    let handle = carol.event("invite_incoming").await["handle"].clone();
    assert_eq!(
        watcher.event(&peer("add")).await,
        json!({"type": peer("add"), "namespace": "lobby", "room": "r1", "user": carol.id,
               "status": {}, "pending": true})
    );
    carol
        .ok(json!({"type": "invite_accept", "handle": handle, "status": {"name": "C"}}))
        .await;
    assert_eq!(
        watcher.event(&peer("update")).await,
        json!({"type": peer("update"), "namespace": "lobby", "room": "r1", "user": carol.id,
               "pending": false})
    );
    assert_eq!(
        watcher.event(&peer("update")).await["status"],
        json!({"name": "C"})
    );
    carol.ok(json!({"type": "room_leave", "room": "r1"})).await;
    assert_eq!(watcher.event(&peer("rm")).await["user"], carol.id.as_str());

    bob.ok(json!({"type": "room_leave", "room": "r1"})).await;
    assert_eq!(
        watcher.event(&peer("rm")).await,
        json!({"type": peer("rm"), "namespace": "lobby", "room": "r1", "user": bob.id})
    );
    // The last peer leaving takes the room out of the namespace.
    alice.ok(json!({"type": "room_leave", "room": "r1"})).await;
    assert_eq!(watcher.event(&peer("rm")).await["user"], alice.id.as_str());
    assert_eq!(
        watcher.event("ns_room_rm").await,
        json!({"type": "ns_room_rm", "namespace": "lobby", "room": "r1"})
    );

    // Explicit unregistration.
    alice.join("r2", json!({})).await;
    alice
        .ok(json!({"type": "ns_room_register", "namespace": "lobby", "room": "r2"}))
        .await;
    watcher.event("ns_room_add").await;
    let unregister = json!({"type": "ns_room_unregister", "namespace": "lobby", "room": "r2"});
    alice.ok(unregister.clone()).await;
    assert_eq!(watcher.event("ns_room_rm").await["room"], "r2");
    assert_eq!(
        alice.fails(unregister).await,
        "Room was not registered to namespace"
    );
    assert_eq!(
        alice
            .fails(json!({"type": "ns_room_unregister", "namespace": "none", "room": "r2"}))
            .await,
        "Namespace does not exist"
    );
}

#[tokio::test]
async fn namespace_rooms_document() {
    namespace_rooms(Doc).await;
}

#[tokio::test]
async fn namespace_rooms_rtc_lib() {
    namespace_rooms(Rtc).await;
}

// ---------------------------------------------------------------------------------------
// Invitations

async fn invitations(dialect: Dialect) {
    let server = any_rooms();
    let mut alice = Calling::connect(&server, dialect).await;
    let mut bob = Calling::connect(&server, dialect).await;
    alice
        .ok(json!({"type": "status", "status": {"name": "Alice"}}))
        .await;
    alice.join("call", json!({"role": "host"})).await;
    alice
        .ok(json!({"type": "room_status", "room": "call", "key": "k", "value": 1}))
        .await;
    let handle_type = |h: &Value| match dialect {
        Doc => h.is_string(),
        Rtc => h.is_number(),
    };

    let invite = json!({"type": "invite_send", "room": "call", "user": bob.id,
                        "data": {"why": "chat"}});
    let sent = alice.ok(invite.clone()).await;
    let out_handle = sent["handle"].clone();
    assert!(handle_type(&out_handle), "{sent}");

    let incoming = bob.event("invite_incoming").await;
    let in_handle = incoming["handle"].clone();
    assert!(handle_type(&in_handle), "{incoming}");
    let expected = match dialect {
        Doc => json!({"type": "invite_incoming", "handle": in_handle, "user": alice.id,
                      "status": {"name": "Alice"}, "data": {"why": "chat"}}),
        Rtc => json!({"type": "invite_incoming", "handle": in_handle, "sender": alice.id,
                      "room": "call", "status": {"k": 1},
                      "peers": {alice.id.clone(): {"pending": false,
                                                   "status": {"name": "Alice", "role": "host"}}},
                      "data": {"why": "chat"}}),
    };
    assert_eq!(incoming, expected);
    // The invited peer is in the room, pending.
    assert_eq!(
        alice.event("room_peer_add").await,
        json!({"type": "room_peer_add", "room": "call", "user": bob.id, "pending": true,
               "status": {}})
    );
    assert_eq!(
        alice
            .fails(
                json!({"type": "room_peer_to", "room": "call", "user": bob.id,
                          "event": "e", "data": {}})
            )
            .await,
        "Recipient is pending"
    );
    assert_eq!(alice.fails(invite.clone()).await, "User is already in room");
    assert_eq!(
        bob.fails(json!({"type": "room_leave", "room": "call"}))
            .await,
        "You are only invited to the room"
    );
    assert_eq!(
        bob.fails(json!({"type": "invite_accept", "handle": 999, "status": {}}))
            .await,
        "Invalid invitation handle"
    );

    let accepted = bob
        .ok(json!({"type": "invite_accept", "handle": in_handle, "status": {"name": "Bob"}}))
        .await;
    match dialect {
        Doc => assert_eq!(
            accepted,
            json!({"room": "call", "peers": {alice.id.clone(): {"pending": false,
                   "status": {"name": "Alice", "role": "host"}}}})
        ),
        Rtc => assert_eq!(accepted, Value::Null, "no data for rtc-lib"),
    }
    assert_eq!(
        alice.event("invite_response").await,
        json!({"type": "invite_response", "handle": out_handle, "accepted": true})
    );
    assert_eq!(
        alice.event("room_peer_update").await,
        json!({"type": "room_peer_update", "room": "call", "user": bob.id, "pending": false})
    );
    assert_eq!(
        alice.event("room_peer_update").await["status"],
        json!({"name": "Bob"})
    );
    bob.ok(
        json!({"type": "room_peer_to", "room": "call", "user": alice.id,
                  "event": "hi", "data": {}}),
    )
    .await;
    assert_eq!(alice.event("room_peer_from").await["event"], "hi");
    assert_eq!(
        bob.fails(json!({"type": "invite_deny", "handle": in_handle}))
            .await,
        "Invalid invitation handle"
    );

    // Denied: the inviter hears so and the pending peer goes.
    let mut carol = Calling::connect(&server, dialect).await;
    let sent = alice
        .ok(json!({"type": "invite_send", "room": "call", "user": carol.id, "data": {}}))
        .await;
    let handle = carol.event("invite_incoming").await["handle"].clone();
    assert_eq!(alice.event("room_peer_add").await["pending"], true);
    carol
        .ok(json!({"type": "invite_deny", "handle": handle}))
        .await;
    assert_eq!(
        alice.event("invite_response").await,
        json!({"type": "invite_response", "handle": sent["handle"], "accepted": false})
    );
    assert_eq!(alice.event("room_peer_rm").await["user"], carol.id.as_str());

    // Cancelled: the invited client is told, the others see the pending peer go.
    bob.drain().await;
    let sent = alice
        .ok(json!({"type": "invite_send", "room": "call", "user": carol.id, "data": {}}))
        .await;
    let handle = carol.event("invite_incoming").await["handle"].clone();
    assert_eq!(bob.event("room_peer_add").await["user"], carol.id.as_str());
    alice
        .ok(json!({"type": "invite_cancel", "handle": sent["handle"]}))
        .await;
    assert_eq!(
        carol.event("invite_cancelled").await,
        json!({"type": "invite_cancelled", "handle": handle})
    );
    assert_eq!(bob.event("room_peer_rm").await["user"], carol.id.as_str());
    assert_eq!(
        alice
            .fails(json!({"type": "invite_cancel", "handle": sent["handle"]}))
            .await,
        "Invalid invitation handle"
    );
    assert_eq!(
        carol
            .fails(json!({"type": "invite_accept", "handle": handle, "status": {}}))
            .await,
        "Invalid invitation handle"
    );

    // Inviter gone: the invitation is cancelled. Invited gone: it is refused.
    alice
        .ok(json!({"type": "invite_send", "room": "call", "user": carol.id, "data": {}}))
        .await;
    let first = carol.event("invite_incoming").await;
    bob.join("side", json!({})).await;
    let from_bob = bob
        .ok(json!({"type": "invite_send", "room": "side", "user": carol.id, "data": {}}))
        .await;
    let second = carol.event("invite_incoming").await;
    assert_ne!(second["handle"], first["handle"]);
    drop(alice);
    assert_eq!(
        carol.event("invite_cancelled").await["handle"],
        first["handle"]
    );
    drop(carol);
    assert_eq!(
        bob.event("invite_response").await,
        json!({"type": "invite_response", "handle": from_bob["handle"], "accepted": false})
    );

    // Bad invitations.
    assert_eq!(
        bob.fails(json!({"type": "invite_send", "room": "call", "user": "nobody", "data": {}}))
            .await,
        "Unknown recipient"
    );
    assert_eq!(
        bob.fails(json!({"type": "invite_send", "room": "call", "user": bob.id, "data": {}}))
            .await,
        "You cannot invite yourself"
    );
    let dave = Calling::connect(&server, dialect).await;
    assert_eq!(
        bob.fails(json!({"type": "invite_send", "room": "nope", "user": dave.id, "data": {}}))
            .await,
        "You are not in the room"
    );
}

#[tokio::test]
async fn invitations_document() {
    invitations(Doc).await;
}

#[tokio::test]
async fn invitations_rtc_lib() {
    invitations(Rtc).await;
}
