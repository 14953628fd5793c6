//! GStreamer's signalling protocol on `/gst`, every message and every error, against the
//! real server with a plain WebSocket client.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, Server, group_with_op};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A GStreamer signalling peer: text lines over a WebSocket.
struct Peer {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    name: String,
}

/// How the server ended a connection, and the lines it sent before.
#[derive(Debug)]
struct Closed {
    code: u16,
    reason: String,
    before: Vec<String>,
}

impl Peer {
    async fn connect(server: &Server, name: &str) -> Peer {
        let url = format!("ws://127.0.0.1:{}/gst", server.port);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to /gst");
        Peer {
            socket,
            name: name.to_owned(),
        }
    }

    /// Connects and registers as `uid`.
    async fn hello(server: &Server, uid: &str) -> Peer {
        let mut peer = Peer::connect(server, uid).await;
        peer.send(&format!("HELLO {uid}")).await;
        peer.expect("HELLO").await;
        peer
    }

    /// Registers as `uid` and joins `room`; returns the peers listed in `ROOM_OK`.
    async fn in_room(server: &Server, uid: &str, room: &str) -> (Peer, String) {
        let mut peer = Peer::hello(server, uid).await;
        peer.send(&format!("ROOM {room}")).await;
        let ok = peer.recv().await;
        let listed = ok
            .strip_prefix("ROOM_OK ")
            .unwrap_or_else(|| panic!("{uid}: expected ROOM_OK, got {ok:?}"))
            .to_owned();
        (peer, listed)
    }

    async fn send(&mut self, text: &str) {
        self.socket
            .send(Frame::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// The next text line; panics on close or after [`PATIENCE`].
    async fn recv(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no message within {PATIENCE:?}", self.name));
            match frame {
                Some(Ok(Frame::Text(text))) => return text.to_string(),
                Some(Ok(Frame::Close(c))) => panic!("{}: closed by the server: {c:?}", self.name),
                Some(Ok(_)) => continue,
                other => panic!("{}: connection ended: {other:?}", self.name),
            }
        }
    }

    async fn expect(&mut self, line: &str) {
        let got = self.recv().await;
        assert_eq!(got, line, "{}", self.name);
    }

    /// Asks for the room's peer list and checks it: since the answer comes after
    /// everything already queued for us, it also shows that nothing else was pending.
    async fn expect_list(&mut self, peers: &str) {
        self.send("ROOM_PEER_LIST").await;
        self.expect(&format!("ROOM_PEER_LIST {peers}")).await;
    }

    /// Waits for the server to close the connection.
    async fn closed(&mut self) -> Closed {
        self.closed_within(PATIENCE).await
    }

    async fn closed_within(&mut self, wait: Duration) -> Closed {
        let mut before = Vec::new();
        loop {
            let frame = tokio::time::timeout(wait, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: not closed within {wait:?}", self.name));
            match frame {
                Some(Ok(Frame::Text(text))) => before.push(text.to_string()),
                Some(Ok(Frame::Close(c))) => {
                    let (code, reason) = c
                        .map(|c| (u16::from(c.code), c.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Closed {
                        code,
                        reason,
                        before,
                    };
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    return Closed {
                        code: 1006,
                        reason: String::new(),
                        before,
                    };
                }
            }
        }
    }

    async fn leave(mut self) {
        let _ = self.socket.close(None).await;
        // Read to the end, so the server has seen the close before the test goes on.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, self.socket.next()).await {}
    }
}

fn any_rooms() -> Server {
    Server::start_with(&[], &["--gst-rooms", "any"], false)
}

#[tokio::test]
async fn hello_registers_a_peer_and_health_answers() {
    let server = Server::start(&[]);
    let _peer = Peer::hello(&server, "1234").await;
    let health = server.http("GET", "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, "OK\n");
}

#[tokio::test]
async fn a_bad_hello_is_an_error_and_closes_with_1002() {
    let server = Server::start(&[]);
    let cases = [
        (
            "SESSION 1",
            "ERROR expected HELLO <uid>",
            "invalid protocol",
        ),
        ("hello 1", "ERROR expected HELLO <uid>", "invalid protocol"),
        ("HELLO", "ERROR invalid peer uid ''", "invalid peer uid"),
        (
            "HELLO a b",
            "ERROR invalid peer uid 'a b'",
            "invalid peer uid",
        ),
        (
            "HELLO a\u{1}",
            "ERROR invalid peer uid 'a\\u{1}'",
            "invalid peer uid",
        ),
    ];
    for (hello, error, reason) in cases {
        let mut peer = Peer::connect(&server, hello).await;
        peer.send(hello).await;
        let closed = peer.closed().await;
        assert_eq!(closed.before, [error], "{hello:?}");
        assert_eq!((closed.code, closed.reason.as_str()), (1002, reason));
    }

    let mut binary = Peer::connect(&server, "binary").await;
    binary
        .socket
        .send(Frame::binary(b"HELLO 1".to_vec()))
        .await
        .unwrap();
    assert_eq!(binary.closed().await.code, 1002);

    // A uid is taken while its peer is connected, and free again once it left.
    let first = Peer::hello(&server, "taken").await;
    let mut second = Peer::connect(&server, "second").await;
    second.send("HELLO taken").await;
    let closed = second.closed().await;
    assert_eq!(closed.before, ["ERROR peer 'taken' is already registered"]);
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1002, "invalid peer uid")
    );
    first.leave().await;
    let _again = Peer::hello(&server, "taken").await;
}

#[tokio::test]
async fn a_peer_that_never_says_hello_is_closed() {
    let server = Server::start(&[]);
    let mut silent = Peer::connect(&server, "silent").await;
    let closed = silent.closed_within(Duration::from_secs(40)).await;
    assert_eq!(closed.before, ["ERROR no HELLO received in time"]);
    assert_eq!(closed.code, 1002);
}

#[tokio::test]
async fn a_session_relays_everything_both_ways() {
    let server = Server::start(&[]);
    let mut a = Peer::hello(&server, "a").await;
    let mut b = Peer::hello(&server, "b").await;
    a.send("SESSION b").await;
    a.expect("SESSION_OK").await;

    // The callee is not told: it just receives what the caller sends, verbatim.
    a.send("OFFER_REQUEST").await;
    b.expect("OFFER_REQUEST").await;
    let offer = r#"{"sdp": {"type": "offer", "sdp": "v=0\r\n"}}"#;
    b.send(offer).await;
    a.expect(offer).await;
    let answer = r#"{"sdp": {"type": "answer", "sdp": "v=0\r\n"}}"#;
    a.send(answer).await;
    b.expect(answer).await;
    // Commands are messages like any other inside a session, even from the callee.
    for line in [
        "ROOM r",
        "HELLO x",
        "SESSION a",
        "ROOM_PEER_LIST",
        "ERROR x",
        " ",
    ] {
        b.send(line).await;
        a.expect(line).await;
        a.send(line).await;
        b.expect(line).await;
    }
    let big = "x".repeat(1000 * 1000);
    a.send(&big).await;
    b.expect(&big).await;
}

#[tokio::test]
async fn when_one_side_leaves_the_others_socket_is_closed() {
    let server = Server::start(&[]);
    for leaver in ["caller", "callee"] {
        let mut caller = Peer::hello(&server, "caller").await;
        let callee = Peer::hello(&server, "callee").await;
        caller.send("SESSION callee").await;
        caller.expect("SESSION_OK").await;
        let (mut leaving, mut staying) = if leaver == "caller" {
            (caller, callee)
        } else {
            (callee, caller)
        };
        // What the leaver said last arrives before the close.
        leaving.send("bye").await;
        leaving.leave().await;
        let closed = staying.closed().await;
        assert_eq!(closed.before, ["bye"], "{leaver} left");
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1000, "the other peer left the session")
        );
    }
    // Both uids are free again.
    let _caller = Peer::hello(&server, "caller").await;
    let _callee = Peer::hello(&server, "callee").await;
}

#[tokio::test]
async fn session_errors() {
    let server = any_rooms();
    let mut a = Peer::hello(&server, "a").await;
    for (line, error) in [
        ("SESSION", "ERROR invalid peer uid ''"),
        ("SESSION x y", "ERROR invalid peer uid 'x y'"),
        ("SESSION nobody", "ERROR peer 'nobody' not found"),
        ("SESSION a", "ERROR cannot start a session with yourself"),
        (
            "OFFER_REQUEST",
            "ERROR OFFER_REQUEST is only valid in a session",
        ),
        ("HELLO a", "ERROR already registered as 'a'"),
        ("ROOM_PEER_LIST", "ERROR not in a room"),
        ("ROOM_PEER_MSG b hi", "ERROR not in a room"),
        ("{\"sdp\": {}}", "ERROR unknown message '{\"sdp\":'"),
        ("", "ERROR unknown message ''"),
        ("SESSIONb", "ERROR unknown message 'SESSIONb'"),
    ] {
        a.send(line).await;
        a.expect(error).await;
    }
    a.socket
        .send(Frame::binary(b"SESSION b".to_vec()))
        .await
        .unwrap();
    a.expect("ERROR binary messages are not supported").await;

    // Peers in a session or a room are busy.
    let mut b = Peer::hello(&server, "b").await;
    let mut c = Peer::hello(&server, "c").await;
    b.send("SESSION c").await;
    b.expect("SESSION_OK").await;
    a.send("SESSION b").await;
    a.expect("ERROR peer 'b' busy").await;
    a.send("SESSION c").await;
    a.expect("ERROR peer 'c' busy").await;
    let (_d, _) = Peer::in_room(&server, "d", "r").await;
    a.send("SESSION d").await;
    a.expect("ERROR peer 'd' busy").await;

    // After all these errors `a` still works.
    let _e = Peer::hello(&server, "e").await;
    a.send("SESSION e").await;
    a.expect("SESSION_OK").await;
    c.send("still there").await;
    b.expect("still there").await;
}

#[tokio::test]
async fn rooms_list_join_leave_and_relay() {
    let server = any_rooms();
    let (mut a, listed) = Peer::in_room(&server, "a", "r1").await;
    assert_eq!(listed, "");
    let (mut b, listed) = Peer::in_room(&server, "b", "r1").await;
    assert_eq!(listed, "a");
    a.expect("ROOM_PEER_JOINED b").await;
    let (mut c, listed) = Peer::in_room(&server, "c", "r1").await;
    assert_eq!(listed, "a b");
    a.expect("ROOM_PEER_JOINED c").await;
    b.expect("ROOM_PEER_JOINED c").await;
    // Another room is another group: nobody here hears of it.
    let (_other, listed) = Peer::in_room(&server, "z", "r2").await;
    assert_eq!(listed, "");

    a.expect_list("b c").await;
    b.expect_list("a c").await;
    c.expect_list("a b").await;

    b.send(r#"ROOM_PEER_MSG a {"sdp": {"type": "offer"}}"#)
        .await;
    a.expect(r#"ROOM_PEER_MSG b {"sdp": {"type": "offer"}}"#)
        .await;
    a.send("ROOM_PEER_MSG   c   spaced  out ").await;
    c.expect("ROOM_PEER_MSG a spaced  out ").await;

    c.leave().await;
    a.expect("ROOM_PEER_LEFT c").await;
    b.expect("ROOM_PEER_LEFT c").await;
    a.expect_list("b").await;
    b.expect_list("a").await;
}

#[tokio::test]
async fn room_errors() {
    let server = any_rooms();
    let mut a = Peer::hello(&server, "a").await;
    for (line, error) in [
        ("ROOM", "ERROR invalid room id ''"),
        ("ROOM session", "ERROR invalid room id 'session'"),
        ("ROOM a b", "ERROR invalid room id 'a b'"),
        ("ROOM r ", "ERROR invalid room id 'r '"),
        (
            "ROOM ../etc",
            "ERROR cannot join room '../etc': illegal group name",
        ),
    ] {
        a.send(line).await;
        a.expect(error).await;
    }
    a.send("ROOM r").await;
    a.expect("ROOM_OK ").await;
    let (mut b, _) = Peer::in_room(&server, "b", "r").await;
    a.expect("ROOM_PEER_JOINED b").await;
    let _outside = Peer::hello(&server, "outside").await;

    // Inside a room only ROOM_PEER_MSG and ROOM_PEER_LIST are accepted.
    for (line, error) in [
        ("ROOM r2", "ERROR invalid msg, already in room"),
        ("SESSION outside", "ERROR invalid msg, already in room"),
        ("HELLO a", "ERROR invalid msg, already in room"),
        ("OFFER_REQUEST", "ERROR invalid msg, already in room"),
        ("ROOM_PEER_LIST extra", "ERROR invalid msg, already in room"),
        ("whatever", "ERROR invalid msg, already in room"),
        (
            "ROOM_PEER_MSG",
            "ERROR expected ROOM_PEER_MSG <peer uid> <message>",
        ),
        (
            "ROOM_PEER_MSG b",
            "ERROR expected ROOM_PEER_MSG <peer uid> <message>",
        ),
        ("ROOM_PEER_MSG nobody hi", "ERROR peer 'nobody' not found"),
        (
            "ROOM_PEER_MSG outside hi",
            "ERROR peer 'outside' is not in the room",
        ),
        (
            "ROOM_PEER_MSG a hi",
            "ERROR cannot send a message to yourself",
        ),
    ] {
        a.send(line).await;
        a.expect(error).await;
    }
    a.socket
        .send(Frame::binary(b"ROOM_PEER_LIST".to_vec()))
        .await
        .unwrap();
    a.expect("ERROR binary messages are not supported").await;
    // None of it reached b, and the room still works.
    a.send("ROOM_PEER_MSG b after the errors").await;
    b.expect("ROOM_PEER_MSG a after the errors").await;
}

#[tokio::test]
async fn existing_policy_refuses_rooms_without_an_open_group() {
    let server = Server::start(&[
        (
            "open",
            r#"{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}}"#,
        ),
        (
            "guarded",
            r#"{"wildcard-user": {"password": "secret", "permissions": "present"}}"#,
        ),
        ("moved", r#"{"redirect": "https://example.org/"}"#),
    ]);
    let mut a = Peer::hello(&server, "a").await;
    for (line, error) in [
        (
            "ROOM nofile",
            "ERROR cannot join room 'nofile': group does not exist",
        ),
        (
            "ROOM guarded",
            "ERROR cannot join room 'guarded': not authorised",
        ),
        (
            "ROOM moved",
            "ERROR cannot join room 'moved': redirected to https://example.org/",
        ),
    ] {
        a.send(line).await;
        a.expect(error).await;
    }
    // A failed join leaves the peer free: it may be called, or join another room.
    let mut b = Peer::hello(&server, "b").await;
    b.send("SESSION a").await;
    b.expect("SESSION_OK").await;
    b.send("ROOM open").await;
    a.expect("ROOM open").await;
    let (_c, listed) = Peer::in_room(&server, "c", "open").await;
    assert_eq!(listed, "");
}

#[tokio::test]
async fn any_policy_creates_rooms_that_galene_clients_can_join() {
    let server = any_rooms();
    let (mut g, listed) = Peer::in_room(&server, "gst-1", "fresh").await;
    assert_eq!(listed, "");
    // The room is a group: a Galène client joins it and sees the peer as a user.
    let mut galene = Client::join(&server.ws_url(), "web-1", "fresh", "alice", "any").await;
    let user = galene
        .recv_matching(|m| m["type"] == "user" && m["id"] == "gst-1")
        .await;
    assert_eq!(user["kind"], "add");
    assert_eq!(user["username"], "gst-1");
    // The Galène client speaks another protocol: it is not a GStreamer room peer.
    g.expect_list("").await;
    g.send("ROOM_PEER_MSG web-1 hi").await;
    g.expect("ERROR peer 'web-1' not found").await;
}

#[tokio::test]
async fn galene_operators_see_gstreamer_peers_and_kick_them() {
    let group = group_with_op("present", "");
    let server = Server::start(&[("meeting", &group)]);
    let (mut g1, _) = Peer::in_room(&server, "g1", "meeting").await;
    let mut boss = Client::join(&server.ws_url(), "boss", "meeting", "boss", "secret").await;
    let user = boss
        .recv_matching(|m| m["type"] == "user" && m["id"] == "g1")
        .await;
    assert_eq!(user["kind"], "add");
    assert_eq!(user["username"], "g1");

    // A GStreamer peer that comes after the operator is told of g1 only.
    let (mut g2, listed) = Peer::in_room(&server, "g2", "meeting").await;
    assert_eq!(listed, "g1");
    g1.expect("ROOM_PEER_JOINED g2").await;
    g1.expect_list("g2").await;

    boss.user_action("kick", "g1", json!("too noisy")).await;
    let closed = g1.closed().await;
    assert!(closed.before.is_empty(), "{closed:?}");
    assert_eq!(closed.code, 1000);
    assert_eq!(closed.reason, "kicked out of the room by boss: too noisy");
    g2.expect("ROOM_PEER_LEFT g1").await;
    let gone = boss
        .recv_matching(|m| m["type"] == "user" && m["kind"] == "delete")
        .await;
    assert_eq!(gone["id"], "g1");
    // A Galène client whose id is taken by a GStreamer peer cannot join alongside it.
    let mut clash = Client::connect(&server.ws_url(), "g2").await;
    let failed = clash.try_join("meeting", "clash", "").await;
    assert_eq!(failed["value"], "duplicate client id", "{failed}");
}

#[tokio::test]
async fn a_gstreamer_uid_already_used_by_a_galene_client_cannot_join_its_group() {
    let server = Server::start(&[("meeting", &group_with_op("present", ""))]);
    let _web = Client::join(&server.ws_url(), "same", "meeting", "alice", "").await;
    let mut peer = Peer::hello(&server, "same").await;
    peer.send("ROOM meeting").await;
    peer.expect("ERROR cannot join room 'meeting': duplicate client id")
        .await;
}

#[tokio::test]
async fn a_peer_that_does_not_read_gets_no_unbounded_backlog() {
    let server = Server::start(&[]);
    let mut sender = Peer::hello(&server, "sender").await;
    // The receiver registers, is called, and then reads nothing at all.
    let _receiver = Peer::hello(&server, "receiver").await;
    sender.send("SESSION receiver").await;
    sender.expect("SESSION_OK").await;
    let chunk = "x".repeat(1 << 20);
    let mut refused = None;
    // Far more than socket buffers can hold: the server must refuse some of it.
    for _ in 0..64 {
        sender.send(&chunk).await;
        if let Ok(Some(Ok(Frame::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(1), sender.socket.next()).await
        {
            refused = Some(text.to_string());
            break;
        }
    }
    let refused = match refused {
        Some(line) => line,
        None => sender.recv().await,
    };
    assert_eq!(
        refused,
        "ERROR peer 'receiver' is not reading its messages; message dropped"
    );
    // Nobody else is harmed.
    let mut other = Peer::hello(&server, "other").await;
    let _x = Peer::hello(&server, "x").await;
    other.send("SESSION x").await;
    other.expect("SESSION_OK").await;
}

#[tokio::test]
async fn messages_over_one_mebibyte_close_the_connection() {
    let server = Server::start(&[]);
    let mut big = Peer::hello(&server, "big").await;
    let mut fine = Peer::hello(&server, "fine").await;
    let _ = big
        .socket
        .send(Frame::text("x".repeat((1 << 20) + 1)))
        .await;
    assert_eq!(big.closed().await.code, 1009);
    fine.send("SESSION big").await;
    fine.expect("ERROR peer 'big' not found").await;
}

#[tokio::test]
async fn silent_peers_are_pinged() {
    let server = Server::start(&[]);
    let mut peer = Peer::hello(&server, "quiet").await;
    // The keepalive comes after 30 s of silence; the client answers it by itself.
    let ping = async {
        loop {
            match peer.socket.next().await {
                Some(Ok(Frame::Ping(_))) => return,
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), ping)
        .await
        .expect("a keepalive ping");
    // The pong counts as life: the peer is still registered and reachable.
    let mut caller = Peer::hello(&server, "caller").await;
    caller.send("SESSION quiet").await;
    caller.expect("SESSION_OK").await;
    caller.send("still here?").await;
    peer.expect("still here?").await;
}

#[tokio::test]
async fn every_message_gets_an_answer_or_is_relayed() {
    // Whatever a registered, idle peer sends, it gets exactly one line back.
    let server = Server::start(&[]);
    let mut a = Peer::hello(&server, "a").await;
    let inputs: Vec<String> = vec![
        "\u{0}".into(),
        "HELLO".into(),
        "ROOM".into(),
        "ROOM_PEER_MSG".into(),
        "\t\n".into(),
        "é".repeat(300),
        "SESSION ".to_owned() + &"é".repeat(300),
    ];
    for input in &inputs {
        a.send(input).await;
        let line = a.recv().await;
        assert!(line.starts_with("ERROR "), "{input:?}: {line:?}");
        assert!(line.len() < 200, "short errors: {line:?}");
    }
}
