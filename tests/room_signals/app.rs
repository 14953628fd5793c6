//! A scripted Room Signals app: one WebSocket, its signals and the server's frames.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::common::rtc::MEDIA_PATIENCE;
use crate::common::{PATIENCE, Server};
use crate::peer::{Peers, answer_pushed_offer, candidate_in, deliver};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Room Signals app: one WebSocket, one session (`ss`) in one room (`rid`, `ch`).
///
/// A reader task hands every frame to the test in order, after applying the candidates
/// the server (or a p2p peer) sends to our peers; once joined, a task sends a `HEARTBEAT`
/// every 3 seconds, as apps do.
pub struct Rs {
    pub ss: Value,
    pub rid: String,
    ch: String,
    pub out: mpsc::UnboundedSender<Frame>,
    inbox: mpsc::UnboundedReceiver<Value>,
    /// Frames read while waiting for another.
    backlog: VecDeque<Value>,
    pub peers: Arc<Mutex<Peers>>,
    /// Every `pps` of a `PUBLISH_LIST_CHANGED` received, in order.
    lists: Arc<Mutex<Vec<Value>>>,
    /// Every `ICE` signal this app sent, in order.
    pub sent_ice: Arc<Mutex<Vec<Value>>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for Rs {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

impl Rs {
    /// Opens `/room-signals` for session `session` of user `user`, meant for room `rid` of
    /// type `ch`.
    pub async fn connect(server: &Server, user: &str, session: &str, rid: &str, ch: &str) -> Rs {
        let url = format!("ws://127.0.0.1:{}/room-signals", server.port);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to /room-signals");
        let (mut sink, mut source) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Frame>();
        tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
        });
        let (to_inbox, inbox) = mpsc::unbounded_channel();
        let peers = Arc::new(Mutex::new(Peers::default()));
        let lists = Arc::new(Mutex::new(Vec::new()));
        let ss = json!({"userId": user, "sessionId": session, "category": "stream",
                        "host": "iOS", "deviceId": format!("device-{session}")});
        {
            let (peers, lists) = (peers.clone(), lists.clone());
            let answers = out.clone();
            let base = json!({"s": "ANSWER", "ch": ch, "rid": rid, "ss": ss});
            tokio::spawn(async move {
                let mut closed = json!({"_closed": 1006, "reason": ""});
                while let Some(frame) = source.next().await {
                    let m = match frame {
                        Ok(Frame::Text(text)) => serde_json::from_str(&text)
                            .unwrap_or_else(|_| json!({"_unparsed": text.as_str()})),
                        Ok(Frame::Close(close)) => {
                            if let Some(c) = close {
                                closed = json!({"_closed": u16::from(c.code),
                                                "reason": c.reason.as_str()});
                            }
                            continue;
                        }
                        Ok(_) => continue,
                        Err(_) => break,
                    };
                    if m["s"] == "PUBLISH_LIST_CHANGED" {
                        lock(&lists).push(m["b"]["pps"].clone());
                    }
                    if let Some((key, candidate)) = candidate_in(&m) {
                        deliver(&peers, key, candidate).await;
                    }
                    if let Some(answer) = answer_pushed_offer(&peers, &m, &base).await {
                        let _ = answers.send(Frame::text(answer.to_string()));
                    }
                    if to_inbox.send(m).is_err() {
                        return;
                    }
                }
                let _ = to_inbox.send(closed);
            });
        }
        Rs {
            ss,
            rid: rid.to_owned(),
            ch: ch.to_owned(),
            out,
            inbox,
            backlog: VecDeque::new(),
            peers,
            lists,
            sent_ice: Arc::new(Mutex::new(Vec::new())),
            heartbeat: None,
        }
    }

    pub fn session(&self) -> String {
        self.ss["sessionId"].as_str().unwrap_or_default().to_owned()
    }

    /// This session as a `to`.
    pub fn to(&self) -> Value {
        json!({"userId": self.ss["userId"], "sessionId": self.ss["sessionId"]})
    }

    /// A signal `s` with this app's `ch`, `rid` and `ss`, and `fields` (which override).
    pub fn signal_data(&self, s: &str, fields: Value) -> Value {
        let mut data = json!({"s": s, "ch": self.ch, "rid": self.rid, "ss": self.ss});
        if let Value::Object(fields) = fields {
            data.as_object_mut().unwrap().extend(fields);
        }
        data
    }

    pub fn send_text(&self, text: String) {
        let _ = self.out.send(Frame::text(text));
    }

    /// Sends `data` in the WebSocket API payload of `action`.
    pub fn send(&self, action: &str, data: &Value) {
        self.send_text(json!({"action": action, "data": data}).to_string());
    }

    /// Sends signal `s` with `fields` as `action`; returns the signal sent.
    pub fn signal(&self, action: &str, s: &str, fields: Value) -> Value {
        let data = self.signal_data(s, fields);
        self.send(action, &data);
        data
    }

    /// The server's answer to our signal `s` (an ack or an error).
    pub async fn reply(&mut self, s: &str) -> Value {
        self.recv_matching(PATIENCE, &format!("the reply to {s}"), |m| {
            m["s"] == s && m["c"].is_number() && !(s == "ICE" && m["c"] == 200)
        })
        .await
    }

    /// Sends a signal and returns the reply.
    pub async fn request(&mut self, action: &str, s: &str, fields: Value) -> Value {
        self.signal(action, s, fields);
        self.reply(s).await
    }

    /// Sends a signal that must be acked; returns the ack's `b`.
    pub async fn ok(&mut self, action: &str, s: &str, fields: Value) -> Value {
        let sent = self.signal(action, s, fields);
        let reply = self.reply(s).await;
        assert_eq!(
            reply["c"],
            200,
            "{} sent {sent}, got {reply}",
            self.session()
        );
        assert_eq!(reply["b"]["rid"], self.rid.as_str(), "{reply}");
        reply["b"].clone()
    }

    /// Sends `data` as `action`, which must be refused; returns the code after checking
    /// that the error carries the signal as sent and a message.
    pub async fn refused(&mut self, action: &str, data: Value) -> u64 {
        self.send(action, &data);
        let reply = self.reply(data["s"].as_str().unwrap()).await;
        assert_ne!(
            reply["c"],
            200,
            "{} sent {data}, got {reply}",
            self.session()
        );
        assert_eq!(
            reply["b"]["req"], data,
            "the error quotes the signal: {reply}"
        );
        assert!(reply["b"]["msg"].is_string(), "{reply}");
        reply["c"].as_u64().unwrap_or(0)
    }

    /// [`refused`](Self::refused) for signal `s` with this app's `ch`, `rid` and `ss`.
    pub async fn fails(&mut self, action: &str, s: &str, fields: Value) -> u64 {
        let data = self.signal_data(s, fields);
        self.refused(action, data).await
    }

    /// The next frame satisfying `wanted` within `wait`; others are kept for later.
    pub async fn recv_matching(
        &mut self,
        wait: Duration,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.inbox.recv()).await;
            match next {
                Ok(Some(m)) if wanted(&m) => return m,
                Ok(Some(m)) if m.get("_closed").is_some() => {
                    panic!("{}: closed ({m}) while waiting for {what}", self.session())
                }
                Ok(Some(m)) => self.backlog.push_back(m),
                Ok(None) | Err(_) => panic!(
                    "{}: no {what} within {wait:?}; received: {:#?}",
                    self.session(),
                    self.backlog
                ),
            }
        }
    }

    /// The next frame, whatever it is.
    pub async fn next_frame(&mut self) -> Value {
        self.recv_matching(PATIENCE, "a frame", |_| true).await
    }

    /// The next push `s` (code 200) from the server.
    pub async fn push(&mut self, s: &str) -> Value {
        self.recv_matching(PATIENCE, s, |m| m["s"] == s && m["c"] == 200)
            .await
    }

    /// Frames received so far (without waiting) that satisfy `wanted`; they stay
    /// available.
    pub fn received(&mut self, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        while let Ok(m) = self.inbox.try_recv() {
            self.backlog.push_back(m);
        }
        self.backlog.iter().filter(|m| wanted(m)).cloned().collect()
    }

    /// The `pps` of the next `PUBLISH_LIST_CHANGED` that satisfies `wanted`.
    pub async fn list_until(
        &mut self,
        what: &str,
        wanted: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + MEDIA_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self
                .recv_matching(left, &format!("a publisher list with {what}"), |m| {
                    m["s"] == "PUBLISH_LIST_CHANGED"
                })
                .await;
            assert_eq!(m["c"], 200, "{m}");
            assert_eq!(m["b"]["rid"], self.rid.as_str(), "{m}");
            let pps = m["b"]["pps"].as_array().expect("pps is a list").clone();
            if wanted(&pps) {
                return pps;
            }
        }
    }

    /// Every publisher list received so far.
    pub fn lists(&self) -> Vec<Value> {
        lock(&self.lists).clone()
    }

    /// Waits for the server to close the socket: its code and reason.
    pub async fn closed(&mut self, wait: Duration) -> (u64, String) {
        let m = self
            .recv_matching(wait, "the close", |m| m.get("_closed").is_some())
            .await;
        (
            m["_closed"].as_u64().unwrap(),
            m["reason"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Sends JOIN with `fields` (and `eg: native`); returns the reply. Once in, sends
    /// heartbeats.
    pub async fn join(&mut self, fields: Value) -> Value {
        let mut data = self.signal_data("JOIN", json!({"eg": "native"}));
        if let Value::Object(fields) = fields {
            data.as_object_mut().unwrap().extend(fields);
        }
        self.send("join", &data);
        let reply = self.reply("JOIN").await;
        if reply["c"] == 200 {
            // With op.userFaking, the server says who we are.
            for field in ["userId", "sessionId"] {
                if let Some(v) = reply["b"]["ss"].get(field) {
                    self.ss[field] = v.clone();
                }
            }
            self.start_heartbeats();
        }
        reply
    }

    pub fn start_heartbeats(&mut self) {
        self.stop_heartbeats();
        let (out, base) = (self.out.clone(), self.signal_data("HEARTBEAT", json!({})));
        self.heartbeat = Some(tokio::spawn(async move {
            for n in 0.. {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let mut data = base.clone();
                data["bid"] = json!(format!("auto-{n}"));
                data["send_ack"] = json!(false);
                let frame = json!({"action": "heartbeat", "data": data}).to_string();
                if out.send(Frame::text(frame)).is_err() {
                    return;
                }
            }
        }));
    }

    pub fn stop_heartbeats(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// Closes the socket (as an app that goes away).
    pub fn close(&mut self) {
        self.stop_heartbeats();
        let _ = self.out.send(Frame::Close(None));
    }
}
