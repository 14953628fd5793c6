//! Janus's HTTP transport: posts and long polls.

use serde_json::json;

use crate::client::{OPEN, error, post};
use crate::common::{self, Server};

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
