//! janus.plugin.sfu on /janus, at the protocol level: the Janus core protocol's answers
//! and error codes over the WebSocket and the HTTP transport, rooms as groups seen by
//! Galène clients, limits, and the plugin's data and presence events. Media and the real
//! client libraries are in tests/peers/janus.test.mjs.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, Server, group_with_op};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const OPEN: &str =
    r#"{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}}"#;

/// A raw Janus client over the WebSocket, subprotocol `janus-protocol`.
struct Janus {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Messages read while waiting for another.
    backlog: Vec<Value>,
}

impl Janus {
    async fn connect(server: &Server) -> Janus {
        let url = format!("ws://127.0.0.1:{}/janus", server.port);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "janus-protocol".parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "janus-protocol"
        );
        Janus {
            socket,
            next: 0,
            backlog: vec![],
        }
    }

    async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Frame::text(text.to_owned()))
            .await
            .unwrap();
    }

    /// Sends a request with a fresh transaction; returns the transaction.
    async fn send(&mut self, mut request: Value) -> String {
        self.next += 1;
        let transaction = format!("t{}", self.next);
        request["transaction"] = transaction.clone().into();
        self.send_text(&request.to_string()).await;
        transaction
    }

    async fn recv_raw(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.socket.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Frame::Text(text)))) => {
                    return Some(serde_json::from_str(&text).unwrap());
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// The next message satisfying `matches`; others are kept for later.
    async fn recv_matching(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&matches) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self
                .recv_raw(left)
                .await
                .unwrap_or_else(|| panic!("no matching message; kept: {:#?}", self.backlog));
            if matches(&m) {
                return m;
            }
            self.backlog.push(m);
        }
    }

    /// The reply to a request (skipping the `ack` of a `message`).
    async fn request(&mut self, request: Value) -> Value {
        let is_message = request["janus"] == "message";
        let transaction = self.send(request).await;
        self.recv_matching(|m| {
            m["transaction"] == transaction.as_str() && !(is_message && m["janus"] == "ack")
        })
        .await
    }

    async fn create(&mut self) -> u64 {
        let reply = self.request(json!({"janus": "create"})).await;
        assert_eq!(reply["janus"], "success", "{reply}");
        reply["data"]["id"].as_u64().unwrap()
    }

    async fn attach(&mut self, session: u64) -> u64 {
        let reply = self
            .request(
                json!({"janus": "attach", "session_id": session, "plugin": "janus.plugin.sfu"}),
            )
            .await;
        assert_eq!(reply["janus"], "success", "{reply}");
        reply["data"]["id"].as_u64().unwrap()
    }

    /// A plugin message; returns the plugin's reply data.
    async fn message(&mut self, session: u64, handle: u64, body: Value) -> Value {
        let reply = self
            .request(json!({"janus": "message", "session_id": session, "handle_id": handle, "body": body}))
            .await;
        assert_eq!(reply["janus"], "event", "{reply}");
        assert_eq!(reply["sender"], handle);
        reply["plugindata"]["data"].clone()
    }

    /// A new session with one handle attached: the client, the session and the handle.
    async fn attached(server: &Server) -> (Janus, u64, u64) {
        let mut janus = Janus::connect(server).await;
        let session = janus.create().await;
        let handle = janus.attach(session).await;
        (janus, session, handle)
    }

    /// A session with one handle joined to `room` as `user`.
    async fn joined(
        server: &Server,
        room: &str,
        user: &str,
        subscribe: Value,
    ) -> (Janus, u64, u64) {
        let (mut janus, session, handle) = Janus::attached(server).await;
        let reply = janus
            .message(
                session,
                handle,
                json!({"kind": "join", "room_id": room, "user_id": user, "subscribe": subscribe}),
            )
            .await;
        assert_eq!(reply["success"], true, "{reply}");
        (janus, session, handle)
    }

    /// The next pushed plugin event (no transaction) with this `event`.
    async fn plugin_event(&mut self, event: &str) -> Value {
        self.recv_matching(|m| {
            m["janus"] == "event"
                && m.get("transaction").is_none()
                && m["plugindata"]["data"]["event"] == event
        })
        .await["plugindata"]["data"]
            .clone()
    }

    /// Asserts that nothing satisfying `matches` arrives within `wait`.
    async fn assert_no(&mut self, wait: Duration, matches: impl Fn(&Value) -> bool) {
        assert!(
            !self.backlog.iter().any(&matches),
            "unexpected: {:?}",
            self.backlog
        );
        while let Some(m) = self.recv_raw(wait).await {
            assert!(!matches(&m), "unexpected {m}");
            self.backlog.push(m);
        }
    }
}

fn error(code: u64, reason: &str) -> Value {
    json!({"code": code, "reason": reason})
}

#[tokio::test]
async fn the_core_protocol_answers_with_janus_codes() {
    let server = Server::start(&[("hub", OPEN)]);
    let mut janus = Janus::connect(&server).await;

    // Before anything is known of a request: no transaction in the reply.
    janus.send_text("{").await;
    let reply = janus.recv_matching(|_| true).await;
    assert_eq!(reply["janus"], "error");
    assert_eq!(reply["error"]["code"], 454);
    assert!(reply.get("transaction").is_none());
    janus.send_text("[1]").await;
    assert_eq!(janus.recv_matching(|_| true).await["error"]["code"], 455);
    janus.send_text(r#"{"janus": "create"}"#).await;
    assert_eq!(
        janus.recv_matching(|_| true).await["error"],
        error(456, "Missing mandatory element (transaction)")
    );
    janus
        .socket
        .send(Frame::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(janus.recv_matching(|_| true).await["error"]["code"], 454);

    // As in Janus, even with a transaction: the request was not valid enough to have one.
    janus.send_text(r#"{"transaction": "x"}"#).await;
    let reply = janus.recv_matching(|_| true).await;
    assert_eq!(
        reply["error"],
        error(456, "Missing mandatory element (janus)")
    );
    assert!(reply.get("transaction").is_none());
    let reply = janus.request(json!({"janus": "keepalive"})).await;
    assert_eq!(
        reply["error"],
        error(457, "Unhandled request 'keepalive' at this path")
    );
    let info = janus.request(json!({"janus": "info"})).await;
    assert_eq!(info["janus"], "server_info");
    assert_eq!(
        info["plugins"]["janus.plugin.sfu"]["name"],
        "Janus SFU plugin"
    );
    assert_eq!(
        janus.request(json!({"janus": "ping"})).await["janus"],
        "pong"
    );
    let reply = janus
        .request(json!({"janus": "keepalive", "session_id": 1}))
        .await;
    assert_eq!(reply["error"], error(458, "No such session 1"));
    assert_eq!(reply["session_id"], 1);

    let session = janus.create().await;
    assert!(session < 1 << 53, "ids stay exact in JavaScript");
    let reply = janus
        .request(json!({"janus": "keepalive", "session_id": session}))
        .await;
    assert_eq!(reply["janus"], "ack");
    assert_eq!(reply["session_id"], session);
    let reply = janus
        .request(json!({"janus": "info", "session_id": session}))
        .await;
    assert_eq!(reply["error"], error(453, "Unknown request 'info'"));
    let reply = janus.request(json!({"janus": "create", "id": 77})).await;
    assert_eq!(
        reply["data"]["id"], 77,
        "a client may choose its session id"
    );
    let reply = janus.request(json!({"janus": "create", "id": 77})).await;
    assert_eq!(reply["error"], error(468, "Session ID already in use"));

    let handle = janus.attach(session).await;
    let at = |extra: Value| {
        let mut request = json!({"session_id": session, "handle_id": handle});
        if let (Some(r), Value::Object(extra)) = (request.as_object_mut(), extra) {
            r.extend(extra);
        }
        request
    };
    let reply = janus
        .request(at(json!({"janus": "attach", "plugin": "janus.plugin.sfu"})))
        .await;
    assert_eq!(
        reply["error"],
        error(457, "Unhandled request 'attach' at this path")
    );
    let reply = janus
        .request(at(
            json!({"janus": "trickle", "candidate": {"completed": true}, "candidates": []}),
        ))
        .await;
    assert_eq!(
        reply["error"],
        error(454, "Can't have both candidate and candidates")
    );
    let reply = janus
        .request(at(json!({"janus": "trickle", "candidates": "x"})))
        .await;
    assert_eq!(reply["error"], error(467, "candidates is not an array"));
    let reply = janus
        .request(at(
            json!({"janus": "trickle", "candidate": {"candidate": "c", "sdpMid": 0}}),
        ))
        .await;
    assert_eq!(
        reply["error"],
        error(
            467,
            "Trickle error: invalid element type (sdpMid should be a string)"
        )
    );
    let reply = janus
        .request(at(json!({"janus": "trickle", "candidate": null})))
        .await;
    assert_eq!(
        reply["janus"], "ack",
        "a null candidate ends the candidates"
    );
    let reply = janus
        .request(at(json!({"janus": "message", "body": {}, "jsep": "offer"})))
        .await;
    assert_eq!(reply["error"], error(455, "Invalid jsep object"));

    // A bare message: acked with a hint, then the plugin's (empty) success.
    let transaction = janus
        .send(at(json!({"janus": "message", "body": {}})))
        .await;
    let ack = janus
        .recv_matching(|m| m["transaction"] == transaction.as_str())
        .await;
    assert_eq!(
        ack,
        json!({"janus": "ack", "session_id": session, "transaction": transaction, "hint": "Processing."})
    );
    let event = janus
        .recv_matching(|m| m["transaction"] == transaction.as_str())
        .await;
    assert_eq!(
        event,
        json!({"janus": "event", "session_id": session, "sender": handle, "transaction": transaction,
               "plugindata": {"plugin": "janus.plugin.sfu", "data": {"success": true}}})
    );

    let reply = janus
        .request(json!({"janus": "destroy", "session_id": session}))
        .await;
    assert_eq!(reply["janus"], "success");
    let reply = janus
        .request(json!({"janus": "keepalive", "session_id": session}))
        .await;
    assert_eq!(reply["error"]["code"], 458);
}

/// A POST with a JSON body; returns the status and the JSON answer.
async fn post(
    server: &Server,
    path: &str,
    body: Value,
    origin: Option<&str>,
) -> (u16, Value, common::HttpResponse) {
    let text = body.to_string();
    let length = text.len().to_string();
    let mut headers = vec![
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
    ];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    let response = common::http_request_with_body(server.port, "POST", path, &headers, &text).await;
    (response.status, response.json(), response)
}

#[tokio::test]
async fn the_http_transport_answers_posts_and_long_polls() {
    let server = Server::start(&[("hub", OPEN)]);
    let (status, created, _) = post(
        &server,
        "/janus",
        json!({"janus": "create", "transaction": "a"}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let session = created["data"]["id"].as_u64().unwrap();
    let (_, attached, _) = post(
        &server,
        &format!("/janus/{session}"),
        json!({"janus": "attach", "plugin": "janus.plugin.sfu", "transaction": "b"}),
        None,
    )
    .await;
    assert_eq!(
        attached["session_id"], session,
        "the path names the session"
    );
    let handle = attached["data"]["id"].as_u64().unwrap();

    let (_, ack, _) = post(
        &server,
        &format!("/janus/{session}/{handle}"),
        json!({"janus": "message",
        "transaction": "c", "body": {"kind": "join", "room_id": "hub", "user_id": "poller",
        "subscribe": {"notifications": true, "data": true}}}),
        None,
    )
    .await;
    assert_eq!(
        ack["janus"], "ack",
        "the POST gets the ack; the reply comes by long poll"
    );
    let polled = server
        .http("GET", &format!("/janus/{session}?maxev=5&rid=1"))
        .await
        .json();
    let events = polled.as_array().expect("a list, with maxev above 1");
    assert_eq!(events[0]["transaction"], "c");
    assert_eq!(
        events[0]["plugindata"]["data"],
        json!({"success": true, "response": {"users": {"hub": []}}})
    );

    let (_, missing, _) = post(
        &server,
        &format!("/janus/{session}/999"),
        json!({"janus": "message", "transaction": "d", "body": {}}),
        None,
    )
    .await;
    assert_eq!(
        missing["error"],
        error(459, &format!("No such handle 999 in session {session}"))
    );
    assert_eq!(
        server.http("GET", "/janus/info").await.json()["janus"],
        "server_info"
    );
    assert_eq!(server.http("GET", "/janus/not-a-number").await.status, 404);

    // Browsers on other origins may read the answers only if the server allows them.
    let (_, _, foreign) = post(
        &server,
        "/janus",
        json!({"janus": "ping", "transaction": "e"}),
        Some("http://elsewhere.example"),
    )
    .await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let own = format!("http://127.0.0.1:{}", server.port);
    let (_, _, same) = post(
        &server,
        "/janus",
        json!({"janus": "ping", "transaction": "f"}),
        Some(&own),
    )
    .await;
    assert_eq!(
        same.header("access-control-allow-origin"),
        Some(own.as_str())
    );
    let preflight =
        common::http_request(server.port, "OPTIONS", "/janus/1", &[("origin", &own)]).await;
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );

    let (_, destroyed, _) = post(
        &server,
        &format!("/janus/{session}"),
        json!({"janus": "destroy", "transaction": "g"}),
        None,
    )
    .await;
    assert_eq!(destroyed["janus"], "success");
    let gone = server
        .http("GET", &format!("/janus/{session}"))
        .await
        .json();
    assert_eq!(
        gone["error"],
        error(458, &format!("No such session {session}"))
    );
}

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
            m["plugindata"]["data"]["event"] == "data" || m["plugindata"]["data"]["event"] == "join"
        })
        .await;
    a.assert_no(Duration::from_millis(100), |m| {
        m["plugindata"]["data"]["event"] == "data"
    })
    .await;

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
