//! The test side of /janus: a raw Janus client over the WebSocket, the HTTP transport's
//! requests, and JWTs signed with the test key.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{self, PATIENCE, Server};

/// A group that admits anyone without a password, as Janus rooms need.
pub const OPEN: &str =
    r#"{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}}"#;

/// A raw Janus client over the WebSocket, subprotocol `janus-protocol`.
pub struct Janus {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Messages read while waiting for another.
    backlog: Vec<Value>,
}

impl Janus {
    pub async fn connect(server: &Server) -> Janus {
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

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Frame::text(text.to_owned()))
            .await
            .unwrap();
    }

    /// Sends a request with a fresh transaction; returns the transaction.
    pub async fn send(&mut self, mut request: Value) -> String {
        self.next += 1;
        let transaction = format!("t{}", self.next);
        request["transaction"] = transaction.clone().into();
        self.send_text(&request.to_string()).await;
        transaction
    }

    pub async fn recv_raw(&mut self, wait: Duration) -> Option<Value> {
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
    pub async fn recv_matching(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
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
    pub async fn request(&mut self, request: Value) -> Value {
        let is_message = request["janus"] == "message";
        let transaction = self.send(request).await;
        self.recv_matching(|m| {
            m["transaction"] == transaction.as_str() && !(is_message && m["janus"] == "ack")
        })
        .await
    }

    pub async fn create(&mut self) -> u64 {
        let reply = self.request(json!({"janus": "create"})).await;
        assert_eq!(reply["janus"], "success", "{reply}");
        reply["data"]["id"].as_u64().unwrap()
    }

    pub async fn attach(&mut self, session: u64) -> u64 {
        let reply = self
            .request(
                json!({"janus": "attach", "session_id": session, "plugin": "janus.plugin.sfu"}),
            )
            .await;
        assert_eq!(reply["janus"], "success", "{reply}");
        reply["data"]["id"].as_u64().unwrap()
    }

    /// A plugin message; returns the plugin's reply data.
    pub async fn message(&mut self, session: u64, handle: u64, body: Value) -> Value {
        let reply = self
            .request(json!({"janus": "message", "session_id": session, "handle_id": handle, "body": body}))
            .await;
        assert_eq!(reply["janus"], "event", "{reply}");
        assert_eq!(reply["sender"], handle);
        reply["plugindata"]["data"].clone()
    }

    /// A new session with one handle attached: the client, the session and the handle.
    pub async fn attached(server: &Server) -> (Janus, u64, u64) {
        let mut janus = Janus::connect(server).await;
        let session = janus.create().await;
        let handle = janus.attach(session).await;
        (janus, session, handle)
    }

    /// A session with one handle joined to `room` as `user`.
    pub async fn joined(
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
    pub async fn plugin_event(&mut self, event: &str) -> Value {
        self.recv_matching(|m| {
            m["janus"] == "event"
                && m.get("transaction").is_none()
                && m["plugindata"]["data"]["event"] == event
        })
        .await["plugindata"]["data"]
            .clone()
    }

    /// Asserts that nothing satisfying `matches` arrives within `wait`.
    pub async fn assert_no(&mut self, wait: Duration, matches: impl Fn(&Value) -> bool) {
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

pub fn error(code: u64, reason: &str) -> Value {
    json!({"code": code, "reason": reason})
}

/// A POST with a JSON body; returns the status and the JSON answer.
pub async fn post(
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

impl Janus {
    /// Sends a keepalive for `session` and checks it is acked.
    pub async fn keepalive(&mut self, session: u64) {
        let reply = self
            .request(json!({"janus": "keepalive", "session_id": session}))
            .await;
        assert_eq!(reply["janus"], "ack", "{reply}");
    }

    /// Keeps `session` alive until a message satisfying `matches` arrives.
    pub async fn keep_alive_until(
        &mut self,
        session: u64,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.backlog.iter().position(&matches) {
                return self.backlog.remove(i);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no matching message; kept: {:#?}",
                self.backlog
            );
            self.keepalive(session).await;
            while let Some(m) = self.recv_raw(Duration::from_millis(300)).await {
                self.backlog.push(m);
            }
        }
    }

    /// Closes the WebSocket.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// Configures the server's token key (the test key's public half) and the session
/// timeout, if given.
pub fn configure(server: &Server, authkey: bool, session_timeout: Option<u64>) {
    let data = server.dir.join("data");
    let mut janus = serde_json::Map::new();
    if authkey {
        std::fs::copy(
            fixture("janus-test-key.pub.pem"),
            data.join("janus.pub.pem"),
        )
        .unwrap();
        janus.insert("authKey".into(), "janus.pub.pem".into());
    }
    if let Some(timeout) = session_timeout {
        janus.insert("sessionTimeout".into(), timeout.into());
    }
    std::fs::write(
        data.join("config.json"),
        json!({ "janus": janus }).to_string(),
    )
    .unwrap();
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A session created over HTTP: its id.
pub async fn http_create(server: &Server) -> u64 {
    let (_, created, _) = post(
        server,
        "/janus",
        json!({"janus": "create", "transaction": "create"}),
        None,
    )
    .await;
    assert_eq!(created["janus"], "success", "{created}");
    created["data"]["id"].as_u64().unwrap()
}

/// A long poll of an HTTP session's events (`maxev` as given, or none).
pub async fn long_poll(server: &Server, session: u64, maxev: Option<usize>) -> Value {
    let query = maxev.map(|n| format!("?maxev={n}")).unwrap_or_default();
    server
        .http("GET", &format!("/janus/{session}{query}"))
        .await
        .json()
}

/// A token with these claims, signed with the test key (RS256), valid for ten minutes.
pub fn token(mut claims: Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = std::fs::read(fixture("janus-test-key.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    claims["exp"] = (jsonwebtoken::get_current_timestamp() + 600).into();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}
