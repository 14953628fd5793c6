//! Janus's HTTP transport: posts, long polls, and how an HTTP client learns of its
//! session's timeout.

use std::time::Duration;

use serde_json::json;

use crate::client::{OPEN, configure, error, http_create, long_poll, post};
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
    // Without maxev, a long poll answers one event, as an object, oldest first.
    for transaction in ["c1", "c2"] {
        let (_, ack, _) = post(
            &server,
            &format!("/janus/{session}/{handle}"),
            json!({"janus": "message", "transaction": transaction,
                   "body": {"kind": "data", "body": "hello"}}),
            None,
        )
        .await;
        assert_eq!(ack["janus"], "ack", "{ack}");
    }
    for transaction in ["c1", "c2"] {
        let polled = long_poll(&server, session, None).await;
        assert!(polled.is_object(), "{polled}");
        assert_eq!(polled["transaction"], transaction);
        assert_eq!(
            polled["plugindata"]["data"],
            json!({"success": true, "response": {}})
        );
    }

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
async fn http_clients_learn_of_their_timeout_from_a_long_poll() {
    let server = Server::start(&[("hub", OPEN)]);
    configure(&server, false, Some(1));
    // A long poll waiting when the session times out gets the timeout...
    let waiting = http_create(&server).await;
    let polled = long_poll(&server, waiting, None).await;
    assert_eq!(polled, json!({"janus": "timeout", "session_id": waiting}));
    // ...and when none was waiting, the next one does (Janus would drop it).
    let idle = http_create(&server).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, reply, _) = post(
        &server,
        &format!("/janus/{idle}"),
        json!({"janus": "keepalive", "transaction": "k"}),
        None,
    )
    .await;
    assert_eq!(
        reply["error"],
        error(458, &format!("No such session {idle}")),
        "a request does not bring it back"
    );
    let polled = long_poll(&server, idle, Some(5)).await;
    assert_eq!(polled, json!([{"janus": "timeout", "session_id": idle}]));
    for session in [waiting, idle] {
        let gone = long_poll(&server, session, None).await;
        assert_eq!(
            gone["error"],
            error(458, &format!("No such session {session}"))
        );
    }
}
