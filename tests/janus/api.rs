//! The Janus core protocol over the WebSocket: error codes, ids, and the sessions of a
//! socket.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::client::{Janus, OPEN, configure, error};
use crate::common::Server;

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

#[tokio::test]
async fn ids_that_are_not_numbers_are_answered_as_janus_does() {
    let server = Server::start(&[("hub", OPEN)]);
    let mut janus = Janus::connect(&server).await;
    let session = janus.create().await;
    // Janus's core reads a session id only from an integer: any other is none, and the
    // request is one of the root's.
    let reply = janus
        .request(json!({"janus": "keepalive", "session_id": session.to_string()}))
        .await;
    assert_eq!(
        reply["error"],
        error(457, "Unhandled request 'keepalive' at this path")
    );
    // A handle id that is not a positive integer names no handle.
    for handle in [json!("1"), json!(0), json!(true)] {
        let reply = janus
            .request(json!({"janus": "attach", "plugin": "janus.plugin.sfu",
                            "session_id": session, "handle_id": handle}))
            .await;
        assert_eq!(reply["error"], error(459, "Handle not found"), "{handle}");
    }
    // A chosen session id must be a positive integer, checked (as the transaction and
    // `janus` are) before the request is answered with its transaction.
    janus.send(json!({"janus": "create", "id": "77"})).await;
    let reply = janus.recv_matching(|m| m["janus"] == "error").await;
    assert_eq!(
        reply["error"],
        error(
            467,
            "Invalid element type (id should be a positive integer)"
        )
    );
    assert!(reply.get("transaction").is_none(), "{reply}");
    let reply = janus
        .request(json!({"janus": "keepalive", "session_id": session}))
        .await;
    assert_eq!(reply["janus"], "ack", "the session is unharmed");
}

#[tokio::test]
async fn a_socket_creates_and_destroys_sessions_again_and_again() {
    let server = Server::start(&[("hub", OPEN)]);
    let mut janus = Janus::connect(&server).await;
    for _ in 0..20 {
        let session = janus.create().await;
        let reply = janus
            .request(json!({"janus": "destroy", "session_id": session}))
            .await;
        assert_eq!(reply["janus"], "success", "{reply}");
    }
    // The limit is on the sessions a socket has at once.
    let mut live = vec![];
    for _ in 0..16 {
        live.push(janus.create().await);
    }
    let reply = janus.request(json!({"janus": "create"})).await;
    assert_eq!(
        reply["error"],
        error(472, "Not accepting new sessions on this connection")
    );
    let reply = janus
        .request(json!({"janus": "destroy", "session_id": live[3]}))
        .await;
    assert_eq!(reply["janus"], "success");
    assert!(
        janus.create().await > 0,
        "a destroyed session's place is free"
    );
}

#[tokio::test]
async fn sessions_that_time_out_free_their_places_on_the_socket() {
    let server = Server::start(&[("hub", OPEN)]);
    configure(&server, false, Some(1));
    let mut janus = Janus::connect(&server).await;
    let mut sessions = vec![];
    for _ in 0..16 {
        sessions.push(janus.create().await);
    }
    for session in sessions {
        janus
            .recv_matching(|m| m["janus"] == "timeout" && m["session_id"] == session)
            .await;
    }
    let session = janus.create().await;
    janus.keepalive(session).await;
}

#[tokio::test]
async fn closing_a_socket_ends_its_own_sessions_only() {
    let server = Server::start(&[("hub", OPEN)]);
    let mut first = Janus::connect(&server).await;
    let mut second = Janus::connect(&server).await;
    // The first socket had session 77 and ended it; the second took the id.
    let create = json!({"janus": "create", "id": 77});
    assert_eq!(first.request(create.clone()).await["data"]["id"], 77);
    let reply = first
        .request(json!({"janus": "destroy", "session_id": 77}))
        .await;
    assert_eq!(reply["janus"], "success");
    assert_eq!(second.request(create).await["data"]["id"], 77);
    let own = first.create().await;
    first.close().await;
    // Once the first socket's own session is gone, its close has been dealt with...
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    loop {
        let reply = second
            .request(json!({"janus": "keepalive", "session_id": own}))
            .await;
        if reply["janus"] == "error" {
            assert_eq!(
                reply["error"],
                error(458, &format!("No such session {own}"))
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{own} outlived its socket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and the session that is now the second client's lives on.
    second.keepalive(77).await;
}
