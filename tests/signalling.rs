//! Galène's protocol on `/ws`, everything but media, against the real server.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server, group_with_op};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

fn demo() -> String {
    group_with_op("present", r#", "public": true, "displayName": "Demo""#)
}

#[tokio::test]
async fn handshake_is_answered_and_required_first() {
    let server = Server::start(&[("demo", &demo())]);
    let _ok = Client::connect(&server.ws_url(), "a").await;

    let mut rude = Client::connect_raw(&server.ws_url()).await;
    rude.send(json!({"type": "join", "kind": "join", "group": "demo"}))
        .await;
    let closed = rude.closed().await;
    assert_eq!(closed.code, 1002);
    assert_eq!(closed.reason, "you must handshake first");

    // A client that offers only version 1 is warned but may go on.
    let mut old = Client::connect_raw(&server.ws_url()).await;
    old.id = "old".into();
    old.send(json!({"type": "handshake", "version": ["1"], "id": "old"}))
        .await;
    assert_eq!(old.recv().await["type"], "handshake");
    let warning = old.recv().await;
    assert_eq!(warning["kind"], "warning", "{warning}");
    let joined = old.try_join("demo", "o", "").await;
    assert_eq!(joined["kind"], "join");
}

#[tokio::test]
async fn silent_clients_are_dropped_after_the_handshake_deadline() {
    let server = Server::start(&[("demo", &demo())]);
    let mut silent = Client::connect_raw(&server.ws_url()).await;
    let started = Instant::now();
    let closed = silent.closed_within(Duration::from_secs(25)).await;
    assert_eq!(closed.code, 1002);
    assert_eq!(closed.reason, "you must handshake first");
    assert!(
        started.elapsed() >= Duration::from_secs(14),
        "15 s deadline"
    );
}

#[tokio::test]
async fn silent_clients_are_pinged_then_dropped() {
    let server = Server::start(&[("demo", &demo())]);
    let mut c = Client::join(&server.ws_url(), "a", "demo", "alice", "").await;
    c.drain(QUIET).await;
    let started = Instant::now();
    let ping = c
        .recv_within(Duration::from_secs(30))
        .await
        .expect("a ping within 30 s");
    assert_eq!(ping["type"], "ping");
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "pinged after ~20 s of silence"
    );
    // Staying silent (not even a pong) gets the client dropped at ~45 s.
    let closed = c.closed_within(Duration::from_secs(40)).await;
    assert_eq!(closed.code, 1001);
    assert!(started.elapsed() >= Duration::from_secs(40));
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let server = Server::start(&[("demo", &demo())]);
    let mut c = Client::connect(&server.ws_url(), "a").await;
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

#[tokio::test]
async fn join_checks_passwords() {
    let server = Server::start(&[(
        "g",
        r#"{"users": {"alice": {"password": "right", "permissions": "op"}},
            "wildcard-user": {"password": "guest", "permissions": "present"}}"#,
    )]);
    let url = server.ws_url();

    let mut alice = Client::connect(&url, "alice-id").await;
    let joined = alice.try_join("g", "alice", "right").await;
    assert_eq!(joined["kind"], "join");
    assert_eq!(joined["group"], "g");
    assert_eq!(joined["username"], "alice");
    assert_eq!(
        joined["permissions"],
        json!(["op", "present", "message", "caption", "token"])
    );
    assert!(joined["rtcConfiguration"]["iceServers"].is_array());

    let mut mallory = Client::connect(&url, "m").await;
    let started = Instant::now();
    let failed = mallory.try_join("g", "alice", "wrong").await;
    assert_eq!(failed["kind"], "fail");
    assert_eq!(failed["value"], "not authorised");
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "a failed login costs ~200 ms"
    );
    // A named user whose password is wrong does not fall back to the wildcard user.
    let failed = mallory.try_join("g", "alice", "guest").await;
    assert_eq!(failed["value"], "not authorised");
    server.wait_for_log("failed login").await;

    // The same connection may retry and succeed.
    let guest = mallory.try_join("g", "bob", "guest").await;
    assert_eq!(guest["kind"], "join");
    assert_eq!(guest["permissions"], json!(["present", "message"]));
}

#[tokio::test]
async fn join_fails_for_unknown_and_illegal_groups() {
    let server = Server::start(&[("demo", &demo())]);
    let mut c = Client::connect(&server.ws_url(), "a").await;
    let failed = c.try_join("nope", "x", "").await;
    assert_eq!(failed["kind"], "fail");
    assert_eq!(failed["value"], "group does not exist");
    let failed = c.try_join("../etc/passwd", "x", "").await;
    assert_eq!(failed["value"], "illegal group name");
}

#[tokio::test]
async fn locked_groups_refuse_all_but_operators() {
    let server = Server::start(&[("demo", &demo())]);
    let url = server.ws_url();
    let mut boss = Client::join(&url, "boss", "demo", "boss", "secret").await;
    boss.group_action("lock", json!("back in five minutes"))
        .await;
    let change = boss.recv_type("joined").await;
    assert_eq!(change["kind"], "change");
    assert_eq!(change["status"]["locked"], true);

    let mut guest = Client::connect(&url, "guest").await;
    let failed = guest.try_join("demo", "guest", "").await;
    assert_eq!(failed["kind"], "fail");
    assert_eq!(failed["value"], "back in five minutes");

    let mut boss2 = Client::connect(&url, "boss2").await;
    assert_eq!(
        boss2.try_join("demo", "boss", "secret").await["kind"],
        "join"
    );

    boss.group_action("unlock", Value::Null).await;
    let change = boss.recv_type("joined").await;
    assert_eq!(change["status"]["locked"], false);
    assert_eq!(guest.try_join("demo", "guest", "").await["kind"], "join");
}

#[tokio::test]
async fn max_clients_is_enforced_for_non_operators() {
    let server = Server::start(&[("small", &group_with_op("present", r#", "max-clients": 2"#))]);
    let url = server.ws_url();
    let _a = Client::join(&url, "a", "small", "a", "").await;
    let _b = Client::join(&url, "b", "small", "b", "").await;
    let mut c = Client::connect(&url, "c").await;
    let failed = c.try_join("small", "c", "").await;
    assert_eq!(failed["value"], "too many users");
    let mut op = Client::connect(&url, "op").await;
    assert_eq!(op.try_join("small", "boss", "secret").await["kind"], "join");
}

#[tokio::test]
async fn join_window_is_enforced() {
    let server = Server::start(&[
        (
            "future",
            &group_with_op("present", r#", "not-before": "2999-01-01T00:00:00Z""#),
        ),
        (
            "past",
            &group_with_op("present", r#", "expires": "2000-01-01T00:00:00Z""#),
        ),
    ]);
    let url = server.ws_url();
    let mut c = Client::connect(&url, "c").await;
    assert_eq!(
        c.try_join("future", "c", "").await["value"],
        "this group is not open yet"
    );
    assert_eq!(
        c.try_join("past", "c", "").await["value"],
        "this group is closed"
    );
    assert_eq!(c.try_join("past", "boss", "secret").await["kind"], "join");
}

#[tokio::test]
async fn members_see_each_other() {
    let server = Server::start(&[("demo", &demo())]);
    let url = server.ws_url();
    let mut a = Client::connect(&url, "a-id").await;
    assert_eq!(a.try_join("demo", "alice", "").await["kind"], "join");
    let me = a.recv_type("user").await;
    assert_eq!(
        (me["kind"].as_str(), me["id"].as_str()),
        (Some("add"), Some("a-id"))
    );

    let mut b = Client::connect(&url, "b-id").await;
    assert_eq!(b.try_join("demo", "bob", "").await["kind"], "join");
    // The newcomer gets itself, then every member.
    let first = b.recv_type("user").await;
    let second = b.recv_type("user").await;
    let ids: Vec<_> = [&first, &second].iter().map(|m| m["id"].clone()).collect();
    assert!(
        ids.contains(&json!("a-id")) && ids.contains(&json!("b-id")),
        "{ids:?}"
    );
    assert_eq!(first["id"], "b-id", "self first");
    assert_eq!(second["username"], "alice");
    assert_eq!(second["permissions"], json!(["present", "message"]));

    let added = a.recv_type("user").await;
    assert_eq!(added["kind"], "add");
    assert_eq!(added["id"], "b-id");
    assert_eq!(added["username"], "bob");

    b.send(json!({"type": "join", "kind": "leave", "group": "demo", "username": "bob"}))
        .await;
    assert_eq!(b.recv_type("joined").await["kind"], "leave");
    let gone = a.recv_type("user").await;
    assert_eq!(
        (gone["kind"].as_str(), gone["id"].as_str()),
        (Some("delete"), Some("b-id"))
    );

    // Dropping the socket is a leave too.
    let mut c = Client::join(&url, "c-id", "demo", "carol", "").await;
    c.drain(QUIET).await;
    a.recv_matching(|m| m["type"] == "user" && m["id"] == "c-id")
        .await;
    drop(c);
    let gone = a
        .recv_matching(|m| m["type"] == "user" && m["kind"] == "delete")
        .await;
    assert_eq!(gone["id"], "c-id");
}

#[tokio::test]
async fn chat_broadcast_private_history_and_noecho() {
    let server = Server::start(&[("demo", &demo())]);
    let url = server.ws_url();
    let mut a = Client::join(&url, "a", "demo", "alice", "").await;
    let mut b = Client::join(&url, "b", "demo", "bob", "").await;
    a.drain(QUIET).await;
    b.drain(QUIET).await;

    a.chat("hello everyone").await;
    for client in [&mut a, &mut b] {
        let m = client.recv_type("chat").await;
        assert_eq!(m["value"], "hello everyone");
        assert_eq!(m["source"], "a");
        assert_eq!(m["username"], "alice");
        assert!(m["id"].as_str().is_some_and(|id| !id.is_empty()), "{m}");
        assert!(m["time"].as_str().is_some_and(|t| t.contains('T')), "{m}");
        assert!(m.get("privileged").is_none(), "alice is no op: {m}");
    }

    let me = json!({"type": "chat", "source": "b", "username": "bob", "kind": "me",
                    "value": "waves"});
    b.send(me).await;
    assert_eq!(a.recv_type("chat").await["kind"], "me");
    b.recv_type("chat").await;

    // Private: only the destination, not echoed.
    b.send(
        json!({"type": "chat", "source": "b", "username": "bob", "dest": "a",
                  "value": "psst"}),
    )
    .await;
    let private = a.recv_type("chat").await;
    assert_eq!(
        (private["value"].as_str(), private["dest"].as_str()),
        (Some("psst"), Some("a"))
    );
    b.assert_no(QUIET, |m| m["type"] == "chat").await;

    // noecho: the others get it, the sender does not.
    a.send(
        json!({"type": "chat", "source": "a", "username": "alice", "value": "quiet",
                  "noecho": true}),
    )
    .await;
    assert_eq!(b.recv_type("chat").await["value"], "quiet");
    a.assert_no(QUIET, |m| m["type"] == "chat").await;

    // A late joiner gets the broadcast history, not the private message.
    let mut late = Client::connect(&url, "late").await;
    late.try_join("demo", "late", "").await;
    let history: Vec<Value> = late
        .drain(QUIET)
        .await
        .into_iter()
        .filter(|m| m["type"] == "chathistory")
        .collect();
    let values: Vec<_> = history
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["hello everyone", "waves", "quiet"]);
    assert_eq!(history[1]["kind"], "me");
    assert!(
        history
            .iter()
            .all(|m| m["time"].is_string() && m["id"].is_string())
    );

    // To an unknown user: a non-fatal error.
    a.send(
        json!({"type": "chat", "source": "a", "username": "alice", "dest": "ghost",
                  "value": "?"}),
    )
    .await;
    assert_eq!(a.recv_error().await, "user unknown");
}

#[tokio::test]
async fn history_keeps_the_last_fifty_within_max_age() {
    let server = Server::start(&[
        ("demo", &demo()),
        (
            "brief",
            &group_with_op("present", r#", "max-history-age": 1"#),
        ),
    ]);
    let url = server.ws_url();
    let mut a = Client::join(&url, "a", "demo", "alice", "").await;
    for i in 0..55 {
        a.chat(&format!("m{i}")).await;
    }
    a.recv_matching(|m| m["type"] == "chat" && m["value"] == "m54")
        .await;
    let mut late = Client::connect(&url, "late").await;
    late.try_join("demo", "late", "").await;
    let history: Vec<Value> = late
        .drain(QUIET)
        .await
        .into_iter()
        .filter(|m| m["type"] == "chathistory")
        .collect();
    assert_eq!(history.len(), 50);
    assert_eq!(history[0]["value"], "m5");

    let mut b = Client::join(&url, "b", "brief", "bob", "").await;
    b.chat("soon forgotten").await;
    b.recv_type("chat").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut late = Client::connect(&url, "late2").await;
    late.try_join("brief", "late", "").await;
    late.assert_no(QUIET, |m| m["type"] == "chathistory").await;
}

#[tokio::test]
async fn chat_needs_the_message_permission() {
    let server = Server::start(&[(
        "g",
        r#"{"users": {"boss": {"password": "secret", "permissions": "op"},
                      "speaker": {"password": "talk", "permissions": "present"}},
            "wildcard-user": {"password": {"type": "wildcard"}, "permissions": "observe"}}"#,
    )]);
    let url = server.ws_url();
    let mut quiet = Client::join(&url, "q", "g", "quiet", "").await;
    quiet.chat("can I speak?").await;
    assert_eq!(quiet.recv_error().await, "not authorised");
    // Captions need their own permission: presenters have none, operators do.
    let mut presenter = Client::join(&url, "p", "g", "speaker", "talk").await;
    let caption = json!({"type": "chat", "source": "p", "username": "speaker",
                         "kind": "caption", "value": "[music]"});
    presenter.send(caption.clone()).await;
    assert_eq!(presenter.recv_error().await, "not authorised");
    let mut captioner = Client::join(&url, "cap", "g", "boss", "secret").await;
    let mut caption = caption;
    caption["source"] = json!("cap");
    caption["username"] = json!("boss");
    captioner.send(caption).await;
    let seen = quiet.recv_type("chat").await;
    assert_eq!(
        (seen["kind"].as_str(), seen["value"].as_str()),
        (Some("caption"), Some("[music]"))
    );

    let mut outsider = Client::connect(&url, "o").await;
    outsider
        .send(json!({"type": "chat", "source": "o", "value": "hi"}))
        .await;
    assert_eq!(outsider.recv_error().await, "join a group first");
}

/// Joins boss (op) and two guests, and drains the join chatter.
async fn op_and_guests(server: &Server) -> (Client, Client, Client) {
    let url = server.ws_url();
    let mut boss = Client::join(&url, "boss", "demo", "boss", "secret").await;
    let mut g1 = Client::join(&url, "g1", "demo", "guest1", "").await;
    let mut g2 = Client::join(&url, "g2", "demo", "guest2", "").await;
    for c in [&mut boss, &mut g1, &mut g2] {
        c.drain(QUIET).await;
    }
    (boss, g1, g2)
}

#[tokio::test]
async fn permission_actions_need_op_and_are_announced() {
    let server = Server::start(&[("demo", &demo())]);
    let (mut boss, mut g1, mut g2) = op_and_guests(&server).await;

    // Without op, every user action but setdata on oneself is refused.
    for kind in [
        "op",
        "unop",
        "present",
        "unpresent",
        "shutup",
        "unshutup",
        "identify",
        "kick",
    ] {
        g1.user_action(kind, "g2", Value::Null).await;
        assert_eq!(g1.recv_error().await, "not authorised", "{kind}");
    }
    g1.user_action("setdata", "g2", json!({"x": 1})).await;
    assert_eq!(g1.recv_error().await, "not authorised");
    g2.assert_no(QUIET, |m| {
        m["type"] == "joined" || m["type"] == "usermessage"
    })
    .await;

    // Each action adds or removes exactly its permission, as in Galène.
    let cases: [(&str, Value); 6] = [
        ("op", json!(["op", "present", "message"])),
        ("unop", json!(["present", "message"])),
        ("unpresent", json!(["message"])),
        ("present", json!(["present", "message"])),
        ("shutup", json!(["present"])),
        ("unshutup", json!(["present", "message"])),
    ];
    for (kind, expected) in cases {
        boss.user_action(kind, "g1", Value::Null).await;
        let change = g1.recv_type("joined").await;
        assert_eq!(change["kind"], "change", "{kind}");
        assert_eq!(change["permissions"], expected, "{kind}");
        let seen = g2.recv_type("user").await;
        assert_eq!(
            (seen["kind"].as_str(), seen["id"].as_str()),
            (Some("change"), Some("g1"))
        );
        assert_eq!(seen["permissions"], expected, "{kind}");
    }

    // A silenced user cannot chat.
    boss.user_action("shutup", "g2", Value::Null).await;
    g2.recv_type("joined").await;
    g2.chat("still here").await;
    assert_eq!(g2.recv_error().await, "not authorised");

    boss.user_action("op", "nobody", Value::Null).await;
    assert_eq!(boss.recv_error().await, "no such user");
}

#[tokio::test]
async fn identify_reports_the_address_to_the_operator() {
    let server = Server::start(&[("demo", &demo())]);
    let (mut boss, _g1, _g2) = op_and_guests(&server).await;
    boss.user_action("identify", "g1", Value::Null).await;
    let info = boss
        .recv_matching(|m| m["type"] == "usermessage" && m["kind"] == "userinfo")
        .await;
    assert_eq!(info["value"]["id"], "g1");
    assert_eq!(info["value"]["username"], "guest1");
    assert!(
        info["value"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[tokio::test]
async fn kick_closes_the_target_with_the_reason() {
    let server = Server::start(&[("demo", &demo())]);
    let (mut boss, mut g1, mut g2) = op_and_guests(&server).await;
    boss.user_action("kick", "g1", json!("too noisy")).await;
    let closed = g1.closed().await;
    assert_eq!(closed.code, 1000);
    let kicked = closed
        .before
        .iter()
        .find(|m| m["kind"] == "kicked")
        .expect("a kicked message");
    assert_eq!(kicked["value"], "too noisy");
    assert_eq!(kicked["source"], "boss");
    assert_eq!(kicked["username"], "boss");
    let gone = g2
        .recv_matching(|m| m["type"] == "user" && m["kind"] == "delete")
        .await;
    assert_eq!(gone["id"], "g1");

    boss.user_action("kick", "g2", Value::Null).await;
    let closed = g2.closed().await;
    let kicked = closed
        .before
        .iter()
        .find(|m| m["kind"] == "kicked")
        .unwrap();
    assert_eq!(kicked["value"], "you have been kicked out");
}

#[tokio::test]
async fn setdata_changes_own_data_for_everyone() {
    let server = Server::start(&[("demo", &demo())]);
    let (mut boss, mut g1, _g2) = op_and_guests(&server).await;
    g1.user_action("setdata", "g1", json!({"raisehand": true}))
        .await;
    let seen = boss.recv_type("user").await;
    assert_eq!(seen["kind"], "change");
    assert_eq!(seen["data"]["raisehand"], true);
    g1.user_action("setdata", "g1", json!({"raisehand": null}))
        .await;
    let seen = boss.recv_type("user").await;
    assert!(seen["data"].get("raisehand").is_none(), "{seen}");
    g1.user_action("setdata", "g1", json!("not an object"))
        .await;
    assert_eq!(g1.recv_error().await, "bad value in setdata");
}

#[tokio::test]
async fn group_actions_need_op() {
    let server = Server::start(&[("demo", &demo()), ("demo/sub", &demo())]);
    let (mut boss, mut g1, _g2) = op_and_guests(&server).await;
    for kind in ["clearchat", "lock", "unlock", "subgroups", "setdata"] {
        g1.group_action(
            kind,
            if kind == "setdata" {
                json!({})
            } else {
                Value::Null
            },
        )
        .await;
        assert_eq!(g1.recv_error().await, "not authorised", "{kind}");
    }

    // clearchat: the history is emptied and everyone is told.
    g1.chat("regrettable").await;
    boss.recv_type("chat").await;
    boss.group_action("clearchat", Value::Null).await;
    let cleared = g1
        .recv_matching(|m| m["type"] == "usermessage" && m["kind"] == "clearchat")
        .await;
    assert_eq!(cleared["privileged"], true);
    let mut late = Client::connect(&server.ws_url(), "late").await;
    late.try_join("demo", "late", "").await;
    late.assert_no(QUIET, |m| m["type"] == "chathistory").await;

    // setdata on the group: every member gets joined/change with the data.
    boss.group_action("setdata", json!({"topic": "budget"}))
        .await;
    let change = g1.recv_type("joined").await;
    assert_eq!(change["kind"], "change");
    assert_eq!(change["data"]["topic"], "budget");

    // subgroups: a private chat from the server.
    boss.group_action("subgroups", Value::Null).await;
    let list = boss
        .recv_matching(|m| m["type"] == "chat" && m["username"] == "Server")
        .await;
    assert_eq!(list["value"], "demo/sub (0 clients)");
    assert_eq!(list["dest"], "boss");

    // Recording exists in Galène's protocol but not here: a clear error.
    boss.group_action("record", Value::Null).await;
    assert_eq!(
        boss.recv_error().await,
        "recording is not supported by this server"
    );
}

#[tokio::test]
async fn clearchat_can_target_one_user_or_message() {
    let server = Server::start(&[("demo", &demo())]);
    let (mut boss, mut g1, mut g2) = op_and_guests(&server).await;
    g1.chat("one").await;
    let one = boss
        .recv_matching(|m| m["type"] == "chat" && m["value"] == "one")
        .await;
    g2.chat("two").await;
    boss.recv_matching(|m| m["type"] == "chat" && m["value"] == "two")
        .await;
    g2.chat("three").await;
    boss.recv_matching(|m| m["type"] == "chat" && m["value"] == "three")
        .await;

    boss.group_action("clearchat", json!({"id": one["id"], "userId": "g1"}))
        .await;
    let cleared = g2
        .recv_matching(|m| m["type"] == "usermessage" && m["kind"] == "clearchat")
        .await;
    assert_eq!(cleared["value"]["id"], one["id"]);
    boss.group_action("clearchat", json!({"userId": "g2"}))
        .await;
    g2.recv_matching(|m| m["kind"] == "clearchat").await;

    g1.chat("four").await;
    boss.recv_matching(|m| m["type"] == "chat" && m["value"] == "four")
        .await;
    let mut late = Client::connect(&server.ws_url(), "late").await;
    late.try_join("demo", "late", "").await;
    let values: Vec<_> = late
        .drain(QUIET)
        .await
        .into_iter()
        .filter(|m| m["type"] == "chathistory")
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(values, [json!("four")]);
}

#[tokio::test]
async fn privileged_marks_operators_messages() {
    let server = Server::start(&[("demo", &demo())]);
    let (mut boss, mut g1, _g2) = op_and_guests(&server).await;
    boss.chat("listen up").await;
    let m = g1.recv_type("chat").await;
    assert_eq!(m["privileged"], true);
    let um = json!({"type": "usermessage", "source": "boss", "username": "boss",
                    "kind": "mute", "dest": "g1", "value": null});
    boss.send(um).await;
    let mute = g1.recv_matching(|m| m["type"] == "usermessage").await;
    assert_eq!(
        (mute["kind"].as_str(), mute["privileged"].as_bool()),
        (Some("mute"), Some(true))
    );
}

#[tokio::test]
async fn spoofing_is_fatal() {
    let server = Server::start(&[("demo", &demo())]);
    let url = server.ws_url();
    let mut liar = Client::join(&url, "liar", "demo", "liar", "").await;
    liar.send(
        json!({"type": "chat", "source": "someone-else", "username": "liar",
                     "value": "it was not me"}),
    )
    .await;
    let closed = liar.closed().await;
    assert_eq!(closed.code, 1002);
    assert_eq!(closed.reason, "spoofed client id");

    let mut liar = Client::join(&url, "liar2", "demo", "liar", "").await;
    liar.send(json!({"type": "chat", "source": "liar2", "username": "boss", "value": "hi"}))
        .await;
    let closed = liar.closed().await;
    assert_eq!(closed.code, 1002);
    assert_eq!(closed.reason, "spoofed username");
    assert!(
        closed
            .before
            .iter()
            .any(|m| m["kind"] == "error" && m["value"] == "spoofed username"),
        "{:?}",
        closed.before
    );
}

#[tokio::test]
async fn protocol_violations_close_with_the_specified_codes() {
    let server = Server::start(&[("demo", &demo())]);
    let url = server.ws_url();

    let mut c = Client::connect(&url, "a").await;
    c.send(json!({"type": "dance"})).await;
    let closed = c.closed().await;
    assert_eq!(closed.code, 1002);
    assert!(
        closed.reason.contains("unexpected message"),
        "{}",
        closed.reason
    );

    let mut c = Client::connect(&url, "b").await;
    c.send_text("{not json").await;
    assert_eq!(c.closed().await.code, 1011);

    let mut c = Client::join(&url, "c", "demo", "c", "").await;
    c.user_action("tickle", "c", Value::Null).await;
    assert_eq!(c.closed().await.code, 1002);

    let mut c = Client::join(&url, "d", "demo", "d", "").await;
    c.send(json!({"type": "join", "kind": "join", "group": "demo", "username": "d"}))
        .await;
    assert_eq!(c.closed().await.code, 1002, "a second join");

    let mut c = Client::connect(&url, "e").await;
    c.send(json!({"type": "request", "request": {"camera": "yes please"}}))
        .await;
    assert_eq!(c.closed().await.code, 1011, "a malformed request");

    let mut c = Client::connect(&url, "f").await;
    let big = format!(
        r#"{{"type":"ping","value":"{}"}}"#,
        "x".repeat((1 << 20) + 10)
    );
    c.try_send_text(&big).await;
    assert_eq!(c.closed().await.code, 1009, "over 1 MiB");

    // None of this disturbed anybody else.
    let mut fine = Client::join(&url, "g", "demo", "g", "").await;
    fine.chat("still working").await;
    assert_eq!(fine.recv_type("chat").await["value"], "still working");
}

#[tokio::test]
async fn a_broken_group_file_affects_only_that_group() {
    let server = Server::start(&[
        ("demo", &demo()),
        (
            "broken",
            r#"{"public": true, "wildcard-user": {"password": "x", "permisions": "op"}}"#,
        ),
    ]);
    let url = server.ws_url();
    let mut c = Client::connect(&url, "a").await;
    let failed = c.try_join("broken", "x", "x").await;
    assert_eq!(failed["kind"], "fail");
    let line = server.wait_for_log("broken.json").await;
    assert!(
        line.contains("permisions"),
        "the log names the fault: {line}"
    );
    assert_eq!(c.try_join("demo", "x", "").await["kind"], "join");

    let listed = server.http("GET", "/public-groups.json").await.json();
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].clone())
        .collect();
    assert_eq!(names, [json!("demo")]);
}

#[tokio::test]
async fn a_changed_group_file_is_reread() {
    let server = Server::start(&[("demo", &demo())]);
    let url = server.ws_url();
    let mut a = Client::join(&url, "a", "demo", "alice", "").await;
    a.drain(QUIET).await;
    server.write_group(
        "demo",
        &group_with_op("present", r#", "public": true, "displayName": "Renamed""#),
    );
    // Any access re-reads the file; members are told.
    let status = server.http("GET", "/group/demo/.status").await.json();
    assert_eq!(status["displayName"], "Renamed");
    let change = a.recv_type("joined").await;
    assert_eq!(change["kind"], "change");
    assert_eq!(change["status"]["displayName"], "Renamed");

    // A new file with a different password takes effect for the next join.
    server.write_group(
        "demo",
        r#"{"wildcard-user": {"password": "now-secret", "permissions": "present"}}"#,
    );
    let mut b = Client::connect(&url, "b").await;
    assert_eq!(
        b.try_join("demo", "bob", "").await["value"],
        "not authorised"
    );
    assert_eq!(
        b.try_join("demo", "bob", "now-secret").await["kind"],
        "join"
    );

    // Breaking the file keeps members connected and refuses newcomers.
    server.write_group("demo", "{ not json");
    let mut c = Client::connect(&url, "c").await;
    assert_eq!(c.try_join("demo", "c", "now-secret").await["kind"], "fail");
    a.chat("still here").await;
    assert_eq!(a.recv_type("chat").await["value"], "still here");
}

#[tokio::test]
async fn autolock_and_autokick_follow_the_operators() {
    let server = Server::start(&[
        ("al", &group_with_op("present", r#", "autolock": true"#)),
        ("ak", &group_with_op("present", r#", "autokick": true"#)),
    ]);
    let url = server.ws_url();

    // autolock: locked at load time, and again when the last operator leaves.
    let mut g = Client::connect(&url, "g").await;
    assert_eq!(
        g.try_join("al", "guest", "").await["value"],
        "this group is locked"
    );
    let mut boss = Client::join(&url, "boss", "al", "boss", "secret").await;
    boss.group_action("unlock", Value::Null).await;
    boss.recv_matching(|m| m["type"] == "joined" && m["status"]["locked"] == false)
        .await;
    assert_eq!(g.try_join("al", "guest", "").await["kind"], "join");
    g.drain(QUIET).await;
    drop(boss);
    let change = g.recv_type("joined").await;
    assert_eq!(change["status"]["locked"], true);

    // autokick: nobody but operators without an operator; all out when the last leaves.
    let mut h = Client::connect(&url, "h").await;
    assert_eq!(
        h.try_join("ak", "guest", "").await["value"],
        "there are no operators in this group"
    );
    let boss = Client::join(&url, "boss2", "ak", "boss", "secret").await;
    assert_eq!(h.try_join("ak", "guest", "").await["kind"], "join");
    drop(boss);
    let closed = h.closed().await;
    assert_eq!(closed.code, 1000);
    assert!(
        closed
            .before
            .iter()
            .any(|m| m["kind"] == "kicked" && m["value"] == "there are no operators in this group")
    );
}

#[tokio::test]
async fn redirect_groups_send_joined_redirect() {
    let server = Server::start(&[(
        "moved",
        r#"{"redirect": "https://elsewhere.example/group/x/"}"#,
    )]);
    let mut c = Client::connect(&server.ws_url(), "a").await;
    let reply = c.try_join("moved", "a", "").await;
    assert_eq!(reply["kind"], "redirect");
    assert_eq!(reply["value"], "https://elsewhere.example/group/x/");
    let page = server.http("GET", "/group/moved/").await;
    assert_eq!(page.status, 308);
    assert_eq!(
        page.header("location"),
        Some("https://elsewhere.example/group/x/")
    );
}

#[tokio::test]
async fn hashed_passwords_from_the_subcommand_work() {
    let hash = |form: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cinnabar"))
            .args(["hash-password", "--type", form])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let users: Vec<String> = ["argon2", "bcrypt", "pbkdf2"]
        .iter()
        .map(|form| {
            let json: Value = serde_json::from_str(&hash(form)).unwrap();
            assert_eq!(json["type"], *form);
            format!(r#""{form}": {{"password": {json}, "permissions": "present"}}"#)
        })
        .collect();
    let group = format!(r#"{{"users": {{{}}}}}"#, users.join(","));
    let server = Server::start(&[("hashed", &group)]);
    let mut c = Client::connect(&server.ws_url(), "a").await;
    for form in ["argon2", "bcrypt", "pbkdf2"] {
        assert_eq!(
            c.try_join("hashed", form, "hunter3").await["value"],
            "not authorised"
        );
        assert_eq!(
            c.try_join("hashed", form, "hunter2").await["kind"],
            "join",
            "{form}"
        );
        c.send(json!({"type": "join", "kind": "leave", "group": "hashed", "username": form}))
            .await;
        assert_eq!(c.recv_type("joined").await["kind"], "leave");
    }
}
