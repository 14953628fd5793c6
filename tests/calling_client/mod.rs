//! A calling-signaling test client over a real WebSocket, for tests/calling*.rs.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{PATIENCE, Server};

/// Long enough for a message that is not coming to have arrived if it were.
pub const QUIET: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dialect {
    Doc,
    Rtc,
}

pub use Dialect::{Doc, Rtc};

/// A calling-signaling client: answers are matched by tid, everything else is kept in
/// order until a test asks for it.
pub struct Calling {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub dialect: Dialect,
    pub id: String,
    next_tid: u64,
    inbox: VecDeque<Value>,
}

impl Calling {
    pub async fn connect(server: &Server, dialect: Dialect) -> Calling {
        let query = match dialect {
            Doc => "",
            Rtc => "?dialect=rtc-lib",
        };
        let url = format!("ws://127.0.0.1:{}/calling{query}", server.port);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let mut c = Calling {
            socket,
            dialect,
            id: String::new(),
            next_tid: 0,
            inbox: VecDeque::new(),
        };
        let hello = c.read().await.expect("hello");
        assert_eq!(hello["type"], "hello", "{hello}");
        assert!(hello["server"].as_str().is_some_and(|s| !s.is_empty()));
        c.id = hello["id"].as_str().expect("id").to_owned();
        c
    }

    /// The next message from the socket within `wait`.
    pub async fn read_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(wait, self.socket.next()).await.ok()?;
            match frame {
                Some(Ok(Frame::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Frame::Close(c))) => panic!("{}: closed: {c:?}", self.id),
                Some(Ok(_)) => continue,
                other => panic!("{}: socket ended: {other:?}", self.id),
            }
        }
    }

    pub async fn read(&mut self) -> Option<Value> {
        self.read_within(PATIENCE).await
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Frame::text(text.to_owned()))
            .await
            .unwrap();
    }

    /// Sends a request with a fresh tid (numeric for rtc-lib, a string in the document's
    /// dialect) and returns its answer.
    pub async fn request(&mut self, mut message: Value) -> Value {
        self.next_tid += 1;
        let tid = match self.dialect {
            Rtc => json!(self.next_tid),
            Doc => json!(format!("t{}", self.next_tid)),
        };
        message["tid"] = tid.clone();
        self.send(message).await;
        self.answer_to(&tid).await
    }

    pub async fn answer_to(&mut self, tid: &Value) -> Value {
        loop {
            let m = self
                .read()
                .await
                .unwrap_or_else(|| panic!("no answer to {tid}"));
            if m["type"] == "answer" && m["tid"] == *tid {
                return m;
            }
            self.inbox.push_back(m);
        }
    }

    /// A request that must succeed; returns its data.
    pub async fn ok(&mut self, message: Value) -> Value {
        let answer = self.request(message.clone()).await;
        assert!(answer.get("error").is_none(), "{message} → {answer}");
        answer.get("data").cloned().unwrap_or(Value::Null)
    }

    /// A request that must fail; returns the error text.
    pub async fn fails(&mut self, message: Value) -> String {
        let answer = self.request(message.clone()).await;
        let error = answer["error"].as_str();
        error
            .unwrap_or_else(|| panic!("{message} should fail: {answer}"))
            .to_owned()
    }

    /// The next message of this type (earlier ones of other types stay in the inbox).
    pub async fn event(&mut self, kind: &str) -> Value {
        if let Some(i) = self.inbox.iter().position(|m| m["type"] == kind) {
            return self.inbox.remove(i).unwrap();
        }
        loop {
            let m = self
                .read()
                .await
                .unwrap_or_else(|| panic!("{}: no {kind} within {PATIENCE:?}", self.id));
            if m["type"] == kind {
                return m;
            }
            self.inbox.push_back(m);
        }
    }

    /// Everything that arrives until the connection is quiet, inbox first.
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut out: Vec<Value> = self.inbox.drain(..).collect();
        while let Some(m) = self.read_within(QUIET).await {
            out.push(m);
        }
        out
    }

    /// Asserts nothing of this type arrives (or is waiting).
    pub async fn none_of(&mut self, kind: &str) {
        let got = self.drain().await;
        assert!(
            !got.iter().any(|m| m["type"] == kind),
            "{}: unexpected {kind}: {got:?}",
            self.id
        );
    }

    /// Waits for the server to close the connection; returns the messages before it
    /// and the close code.
    pub async fn closed(&mut self) -> (Vec<Value>, u16) {
        let mut before: Vec<Value> = self.inbox.drain(..).collect();
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: not closed", self.id));
            match frame {
                Some(Ok(Frame::Text(text))) => before.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Frame::Close(c))) => {
                    return (before, c.map_or(1005, |c| u16::from(c.code)));
                }
                Some(Ok(_)) => continue,
                _ => return (before, 1006),
            }
        }
    }

    pub async fn join(&mut self, room: &str, status: Value) -> Value {
        self.ok(json!({"type": "room_join", "room": room, "status": status}))
            .await
    }

    /// Sets this peer's status in a room, by the dialect's request.
    pub fn peer_status(&self, room: &str, status: Value) -> Value {
        match self.dialect {
            Doc => json!({"type": "room_peer_update", "room": room, "status": status}),
            Rtc => json!({"type": "room_peer_status", "room": room, "status": status}),
        }
    }
}

pub fn any_rooms() -> Server {
    Server::start_with(&[], &["--calling-rooms", "any"], false)
}
