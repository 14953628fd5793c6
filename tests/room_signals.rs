//! Room Signals on `/room-signals` (README, "Room Signals"): rooms, roles, presence and
//! errors over a real WebSocket, with real WebRTC peers (webrtc-rs) for the media of
//! `m2m`, `a2m` and `p2p` rooms, and the meeting of Room Signals apps and Galène clients in
//! one group. Assertions are about what peers receive; waits are on conditions.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cinnabar::peer::{Kind, Publisher, PublisherConfig, Subscriber, SubscriberConfig};
use common::rtc::{MEDIA_PATIENCE, av, next_matching, stats, wait_until, with_admin};
use common::{Client, PATIENCE, Server, group_with_op};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;

/// A group anyone may enter without a password and publish in.
const OPEN: &str =
    r#"{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}}"#;

/// The fields of a publisher entry (`pps`), as README lists them.
const ENTRY_FIELDS: [&str; 13] = [
    "id",
    "sessionId",
    "userId",
    "username",
    "fullname",
    "avatar",
    "role",
    "video",
    "audio",
    "publish",
    "host",
    "category",
    "deviceId",
];

/// The key of the one peer of a `p2p` room, whose candidates come relayed verbatim.
const P2P: &str = "the p2p peer";

/// A server with the open group `hub` (rooms: `existing`, the default) and an administrator
/// for `/stats.json`.
fn server() -> Server {
    server_with_hub(OPEN)
}

/// A server whose group `hub` is defined by `hub`.
fn server_with_hub(hub: &str) -> Server {
    let server = Server::start_with(&[("hub", hub)], &["--udp-range", "0"], false);
    with_admin(&server);
    server
}

/// A server on which apps may create rooms of any name.
fn any_rooms_server() -> Server {
    let server = Server::start_with(
        &[],
        &["--udp-range", "0", "--room-signals-rooms", "any"],
        false,
    );
    with_admin(&server);
    server
}

/// JOIN fields: create the room, with video and audio on.
fn creating() -> Value {
    json!({"ve": true, "ae": true, "op": {"roomCreating": true}})
}

/// JOIN fields: enter a live room with video and audio on (a publisher).
fn publishing() -> Value {
    json!({"ve": true, "ae": true})
}

/// JOIN fields: enter a live room with video and audio off (a viewer).
fn viewing() -> Value {
    json!({"ve": false, "ae": false})
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One of our WebRTC peers, fed with the candidates the server pushes for it.
#[derive(Clone)]
enum Peer {
    Publisher(Arc<Publisher>),
    Subscriber(Arc<Subscriber>),
}

impl Peer {
    async fn add_remote_candidate(&self, candidate: Value) {
        let added = match self {
            Peer::Publisher(p) => p.add_remote_candidate(candidate.clone()).await,
            Peer::Subscriber(s) => s.add_remote_candidate(candidate.clone()).await,
        };
        if let Err(e) = added {
            eprintln!("cannot add the remote candidate {candidate}: {e}");
        }
    }
}

/// Our peers by the id the server's `ICE` pushes name them with (`b.id`).
#[derive(Default)]
struct Peers {
    by_id: HashMap<String, Peer>,
    /// Candidates that came before their peer was made.
    early: HashMap<String, Vec<Value>>,
}

/// A candidate for one of our peers: in a server push (`b.id` names the connection) or
/// relayed verbatim from the other peer of a `p2p` room. Returns the peer's key and the
/// candidate as webrtc-rs reads it.
fn candidate_in(m: &Value) -> Option<(String, Value)> {
    if m["s"] != "ICE" {
        return None;
    }
    let (key, signal) = match m.get("c") {
        Some(c) if *c == 200 => (m["b"]["id"].as_str()?.to_owned(), &m["b"]),
        Some(_) => return None,
        None => (P2P.to_owned(), m),
    };
    let candidate = json!({"candidate": signal["sdp"], "sdpMid": signal["sdpMid"],
                           "sdpMLineIndex": signal["sdpMLineIndex"]});
    Some((key, candidate))
}

async fn deliver(peers: &Mutex<Peers>, key: String, candidate: Value) {
    let peer = {
        let mut peers = lock(peers);
        match peers.by_id.get(&key) {
            Some(peer) => peer.clone(),
            None => {
                peers.early.entry(key).or_default().push(candidate);
                return;
            }
        }
    };
    peer.add_remote_candidate(candidate).await;
}

/// A publisher we watch gained tracks: the server pushes a new offer (`OFFER` with the
/// stream's `id`), which our subscriber answers as an app would. Returns the `ANSWER`
/// frame to send.
async fn answer_pushed_offer(peers: &Mutex<Peers>, m: &Value, base: &Value) -> Option<Value> {
    if m["s"] != "OFFER" || m["c"] != 200 {
        return None;
    }
    let (id, offer) = (m["b"]["id"].as_str()?, m["b"]["sdp"].as_str()?);
    let Some(Peer::Subscriber(subscriber)) = lock(peers).by_id.get(id).cloned() else {
        return None;
    };
    let answer = subscriber.answer(offer).await;
    let answer = answer.unwrap_or_else(|e| panic!("cannot answer the pushed offer {m}: {e}"));
    let mut data = base.clone();
    data["to"] = json!({"sessionId": id});
    data["sdp"] = json!(answer);
    Some(json!({"action": "answer", "data": data}))
}

/// A Room Signals app: one WebSocket, one session (`ss`) in one room (`rid`, `ch`).
///
/// A reader task hands every frame to the test in order, after applying the candidates
/// the server (or a p2p peer) sends to our peers; once joined, a task sends a `HEARTBEAT`
/// every 3 seconds, as apps do.
struct Rs {
    ss: Value,
    rid: String,
    ch: String,
    out: mpsc::UnboundedSender<Frame>,
    inbox: mpsc::UnboundedReceiver<Value>,
    /// Frames read while waiting for another.
    backlog: VecDeque<Value>,
    peers: Arc<Mutex<Peers>>,
    /// Every `pps` of a `PUBLISH_LIST_CHANGED` received, in order.
    lists: Arc<Mutex<Vec<Value>>>,
    /// Every `ICE` signal this app sent, in order.
    sent_ice: Arc<Mutex<Vec<Value>>>,
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
    async fn connect(server: &Server, user: &str, session: &str, rid: &str, ch: &str) -> Rs {
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

    fn session(&self) -> String {
        self.ss["sessionId"].as_str().unwrap_or_default().to_owned()
    }

    /// This session as a `to`.
    fn to(&self) -> Value {
        json!({"userId": self.ss["userId"], "sessionId": self.ss["sessionId"]})
    }

    /// A signal `s` with this app's `ch`, `rid` and `ss`, and `fields` (which override).
    fn signal_data(&self, s: &str, fields: Value) -> Value {
        let mut data = json!({"s": s, "ch": self.ch, "rid": self.rid, "ss": self.ss});
        if let Value::Object(fields) = fields {
            data.as_object_mut().unwrap().extend(fields);
        }
        data
    }

    fn send_text(&self, text: String) {
        let _ = self.out.send(Frame::text(text));
    }

    /// Sends `data` in the WebSocket API payload of `action`.
    fn send(&self, action: &str, data: &Value) {
        self.send_text(json!({"action": action, "data": data}).to_string());
    }

    /// Sends signal `s` with `fields` as `action`; returns the signal sent.
    fn signal(&self, action: &str, s: &str, fields: Value) -> Value {
        let data = self.signal_data(s, fields);
        self.send(action, &data);
        data
    }

    /// The server's answer to our signal `s` (an ack or an error).
    async fn reply(&mut self, s: &str) -> Value {
        self.recv_matching(PATIENCE, &format!("the reply to {s}"), |m| {
            m["s"] == s && m["c"].is_number() && !(s == "ICE" && m["c"] == 200)
        })
        .await
    }

    /// Sends a signal and returns the reply.
    async fn request(&mut self, action: &str, s: &str, fields: Value) -> Value {
        self.signal(action, s, fields);
        self.reply(s).await
    }

    /// Sends a signal that must be acked; returns the ack's `b`.
    async fn ok(&mut self, action: &str, s: &str, fields: Value) -> Value {
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
    async fn refused(&mut self, action: &str, data: Value) -> u64 {
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
    async fn fails(&mut self, action: &str, s: &str, fields: Value) -> u64 {
        let data = self.signal_data(s, fields);
        self.refused(action, data).await
    }

    /// The next frame satisfying `wanted` within `wait`; others are kept for later.
    async fn recv_matching(
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
    async fn next_frame(&mut self) -> Value {
        self.recv_matching(PATIENCE, "a frame", |_| true).await
    }

    /// The next push `s` (code 200) from the server.
    async fn push(&mut self, s: &str) -> Value {
        self.recv_matching(PATIENCE, s, |m| m["s"] == s && m["c"] == 200)
            .await
    }

    /// Frames received so far (without waiting) that satisfy `wanted`; they stay
    /// available.
    fn received(&mut self, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        while let Ok(m) = self.inbox.try_recv() {
            self.backlog.push_back(m);
        }
        self.backlog.iter().filter(|m| wanted(m)).cloned().collect()
    }

    /// The `pps` of the next `PUBLISH_LIST_CHANGED` that satisfies `wanted`.
    async fn list_until(&mut self, what: &str, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
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
    fn lists(&self) -> Vec<Value> {
        lock(&self.lists).clone()
    }

    /// Waits for the server to close the socket: its code and reason.
    async fn closed(&mut self, wait: Duration) -> (u64, String) {
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
    async fn join(&mut self, fields: Value) -> Value {
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

    fn start_heartbeats(&mut self) {
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

    fn stop_heartbeats(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// Closes the socket (as an app that goes away).
    fn close(&mut self) {
        self.stop_heartbeats();
        let _ = self.out.send(Frame::Close(None));
    }

    /// Feeds `peer` the candidates pushed (or relayed) for `key`, including earlier ones.
    async fn register(&self, key: &str, peer: Peer) {
        let early = {
            let mut peers = lock(&self.peers);
            peers.by_id.insert(key.to_owned(), peer.clone());
            peers.early.remove(key).unwrap_or_default()
        };
        for candidate in early {
            peer.add_remote_candidate(candidate).await;
        }
    }

    /// Trickles our local candidates with `iceCandidate`, with `to` when they belong to a
    /// watched publisher's connection. `None`: a task trickles them already.
    fn trickle(&self, candidates: Option<mpsc::UnboundedReceiver<Value>>, to: Option<Value>) {
        let Some(mut candidates) = candidates else {
            return;
        };
        let (out, sent) = (self.out.clone(), self.sent_ice.clone());
        let mut base = self.signal_data("ICE", json!({}));
        if let Some(to) = to {
            base["to"] = to;
        }
        tokio::spawn(async move {
            while let Some(c) = candidates.recv().await {
                let mut data = base.clone();
                data["sdp"] = c["candidate"].clone();
                data["sdpMid"] = c["sdpMid"].clone();
                data["sdpMLineIndex"] = c["sdpMLineIndex"].clone();
                lock(&sent).push(data.clone());
                let frame = json!({"action": "iceCandidate", "data": data}).to_string();
                if out.send(Frame::text(frame)).is_err() {
                    return;
                }
            }
        });
    }

    fn sent_ice(&self) -> Vec<Value> {
        lock(&self.sent_ice).clone()
    }

    /// OFFERs a new publisher's media, trickles and applies the answer from the ack:
    /// the publisher and the answer.
    async fn publish(&mut self, config: PublisherConfig) -> (Arc<Publisher>, String) {
        let publisher = Arc::new(Publisher::new(config).await.expect("a publisher"));
        let answer = self.offer(&publisher).await;
        publisher
            .set_answer(&answer)
            .await
            .expect("the server's answer applies");
        (publisher, answer)
    }

    /// OFFERs `publisher`'s media and trickles its candidates: the answer from the ack.
    async fn offer(&mut self, publisher: &Arc<Publisher>) -> String {
        self.register(&self.session(), Peer::Publisher(publisher.clone()))
            .await;
        let offer = publisher.offer().await.expect("an offer");
        let sent = self.signal("offer", "OFFER", json!({"sdp": offer}));
        self.trickle(publisher.take_candidates(), None);
        let reply = self.reply("OFFER").await;
        assert_eq!(reply["c"], 200, "sent {sent}, got {reply}");
        assert_eq!(reply["b"]["rid"], self.rid.as_str(), "{reply}");
        reply["b"]["sdp"]
            .as_str()
            .unwrap_or_else(|| panic!("an answer in the OFFER ack: {reply}"))
            .to_owned()
    }

    /// A subscriber fed with the candidates for `key`.
    async fn subscriber(&self, key: &str) -> Arc<Subscriber> {
        let subscriber = Arc::new(
            Subscriber::new(SubscriberConfig::default())
                .await
                .expect("a subscriber"),
        );
        self.register(key, Peer::Subscriber(subscriber.clone()))
            .await;
        subscriber
    }

    /// WATCHes the publisher of this `pps` entry, answers the server's offer and trickles.
    async fn watch(&mut self, entry: &Value) -> Arc<Subscriber> {
        let id = entry["id"]
            .as_str()
            .expect("an entry with an id")
            .to_owned();
        let to = json!({"userId": entry["userId"], "sessionId": id});
        let subscriber = self.subscriber(&id).await;
        let offer = self.watch_offer(&to, &id, json!({})).await;
        self.answer_offer(&subscriber, to, &offer).await;
        subscriber
    }

    /// Sends WATCH for the publisher `to` (of id `id`) with `fields`: the server's offer.
    async fn watch_offer(&mut self, to: &Value, id: &str, fields: Value) -> String {
        let mut signal = json!({"to": to});
        if let Value::Object(fields) = fields {
            signal.as_object_mut().unwrap().extend(fields);
        }
        let ack = self.ok("watch", "WATCH", signal).await;
        let offer = &ack["pps"][0];
        assert_eq!(offer["id"], id, "the offer is for {id}: {ack}");
        offer["sdp"].as_str().expect("an SDP offer").to_owned()
    }

    /// Answers the server's offer for the publisher `to` with `subscriber` and trickles.
    async fn answer_offer(&mut self, subscriber: &Subscriber, to: Value, offer: &str) {
        let answer = subscriber
            .answer(offer)
            .await
            .expect("the server's offer is answerable");
        let sent = self.signal("answer", "ANSWER", json!({"to": to, "sdp": answer}));
        self.trickle(subscriber.take_candidates(), Some(to));
        let reply = self.reply("ANSWER").await;
        assert_eq!(reply["c"], 200, "sent {sent}, got {reply}");
    }
}

/// Connects and joins; the join must succeed. The app and the ack's `b`.
async fn joined(
    server: &Server,
    user: &str,
    session: &str,
    rid: &str,
    ch: &str,
    fields: Value,
) -> (Rs, Value) {
    let mut rs = Rs::connect(server, user, session, rid, ch).await;
    let reply = rs.join(fields).await;
    assert_eq!(reply["c"], 200, "{session} joins {rid}: {reply}");
    assert_eq!(reply["b"]["rid"], rid, "{reply}");
    (rs, reply["b"].clone())
}

/// The entry of publisher `id` in a list.
fn entry<'a>(pps: &'a [Value], id: &str) -> Option<&'a Value> {
    pps.iter().find(|p| p["id"] == id)
}

/// The ids of a list's publishers, sorted.
fn ids(pps: &Value) -> Vec<String> {
    let mut ids: Vec<String> = pps
        .as_array()
        .unwrap_or_else(|| panic!("a list: {pps}"))
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

fn packets(subscriber: &Subscriber, kind: Kind) -> u64 {
    subscriber.stats().track(kind).map_or(0, |t| t.packets)
}

fn keyframes(subscriber: &Subscriber) -> u32 {
    subscriber
        .stats()
        .track(Kind::Video)
        .map_or(0, |t| t.keyframes)
}

/// Waits until `subscriber` has received more than `video` video and `audio` audio packets.
async fn wait_for_media(what: &str, subscriber: &Subscriber, video: u64, audio: u64) {
    wait_until(what, || {
        packets(subscriber, Kind::Video) > video && packets(subscriber, Kind::Audio) > audio
    })
    .await;
}

/// Waits until `n` more packets of `kind` arrived: the stream's own clock.
async fn let_pass(subscriber: &Subscriber, kind: Kind, n: u64) {
    let target = packets(subscriber, kind) + n;
    wait_until("packets to pass", || packets(subscriber, kind) >= target).await;
}

/// An SDP's first ICE username fragment.
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:"))
}

/// The server pushes a list only when it changed.
fn assert_no_repeats(lists: &[Value]) {
    for pair in lists.windows(2) {
        assert_ne!(pair[0], pair[1], "the same list twice in a row: {lists:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_receive_an_m2m_publishers_video_and_audio() {
    let server = server();
    let (mut ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    assert_eq!(joined_ana["pt"], "admin", "{joined_ana}");
    assert_eq!(joined_ana["eg"], "native");
    assert_eq!(
        joined_ana["es"]["icfg"],
        json!({"is": [], "iceServers": []}),
        "no ICE servers configured: {joined_ana}"
    );
    assert_eq!(joined_ana["ss"]["userId"], "ana");
    assert_eq!(joined_ana["ss"]["sessionId"], "ana-1");
    let pps = joined_ana["pps"].as_array().expect("pps");
    let me = entry(pps, "ana-1").expect("the admin is listed");
    for field in ENTRY_FIELDS {
        assert!(me.get(field).is_some(), "{field} in {me}");
    }
    assert_eq!(me["sessionId"], "ana-1");
    assert_eq!(me["userId"], "ana");
    assert_eq!(me["username"], "ana");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["host"], "iOS");
    assert_eq!(me["category"], "stream");
    assert_eq!(me["deviceId"], "device-ana-1");
    assert_eq!((&me["video"], &me["audio"]), (&json!(true), &json!(true)));
    assert_eq!(me["publish"], false, "nothing flows yet: {me}");

    // A viewer who comes before the stream has nothing to watch yet.
    let (mut vic, joined_vic) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    assert_eq!(joined_vic["pt"], "viewer", "{joined_vic}");
    assert!(
        joined_vic["es"].get("sdps").is_none_or(Value::is_null),
        "no offer before the admin publishes: {joined_vic}"
    );
    assert_eq!(ids(&joined_vic["pps"]), ["ana-1"], "viewers are not listed");

    let (publisher, answer) = ana.publish(av(None, 30, None)).await;
    assert!(
        answer.contains("m=video") && answer.contains("m=audio"),
        "{answer}"
    );
    let ice = ana.push("ICE").await;
    assert_eq!(
        ice["b"]["id"], "ana-1",
        "our own connection's candidate: {ice}"
    );
    assert_eq!(ice["b"]["rid"], "hub");
    for field in ["sdpMid", "sdpMLineIndex"] {
        assert!(ice["b"].get(field).is_some(), "{field} in {ice}");
    }
    assert!(
        ice["b"]["sdp"]
            .as_str()
            .is_some_and(|c| c.starts_with("candidate:")),
        "{ice}"
    );
    assert!(
        publisher.wait_connected(MEDIA_PATIENCE).await,
        "the publisher connects"
    );
    publisher.start();

    let pps = vic
        .list_until("ana publishing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let ana_entry = entry(&pps, "ana-1").unwrap();
    assert_eq!(ana_entry["role"], "admin");
    let to_ana = json!({"userId": ana_entry["userId"], "sessionId": ana_entry["sessionId"]});
    assert_eq!(to_ana, ana.to());
    let subscriber = vic.subscriber("ana-1").await;
    let offer = vic.watch_offer(&to_ana, "ana-1", json!({})).await;
    vic.answer_offer(&subscriber, to_ana.clone(), &offer).await;
    let ice = vic.push("ICE").await;
    assert_eq!(ice["b"]["id"], "ana-1", "the watched publisher's: {ice}");
    wait_for_media("vic to receive ana's video and audio", &subscriber, 60, 50).await;

    // WATCH again with op.restarting: a new offer that restarts ICE; media goes on.
    let renewed = vic
        .watch_offer(&to_ana, "ana-1", json!({"op": {"restarting": true}}))
        .await;
    assert_ne!(ice_ufrag(&renewed), ice_ufrag(&offer), "ICE restarted");
    vic.answer_offer(&subscriber, to_ana, &renewed).await;
    let count = packets(&subscriber, Kind::Video);
    wait_until("video after the ICE restart", || {
        packets(&subscriber, Kind::Video) > count + 60
    })
    .await;

    // A viewer who joins while the admin publishes gets the offer in the join ack.
    let (mut lea, joined_lea) = joined(&server, "lea", "lea-1", "hub", "m2m", viewing()).await;
    assert_eq!(joined_lea["pt"], "viewer");
    let sdps = &joined_lea["es"]["sdps"];
    assert_eq!(
        sdps["id"], "ana-1",
        "an offer for the admin's stream: {joined_lea}"
    );
    let offer = sdps["sdp"].as_str().expect("an SDP offer");
    assert!(
        offer.contains("m=video") && offer.contains("m=audio"),
        "{offer}"
    );
    let late = lea.subscriber("ana-1").await;
    // Answered naming the publisher by its session id alone.
    lea.answer_offer(&late, json!({"sessionId": "ana-1"}), offer)
        .await;
    wait_for_media("lea to receive ana's video and audio", &late, 60, 50).await;
    assert!(keyframes(&late) > 0, "lea can decode the video");

    let lists = vic.lists();
    assert!(!lists.is_empty());
    assert_no_repeats(&lists);
    assert_no_repeats(&ana.lists());
    for list in lists.iter().chain(&ana.lists()) {
        assert_eq!(ids(list), ["ana-1"], "only the publisher is listed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_video_or_audio_off_stops_it_for_viewers_until_it_is_on_again() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    // Keyframes only when asked for: resuming must ask for one.
    let (publisher, _) = ana.publish(av(None, 0, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ana publishing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ana-1").unwrap()).await;
    wait_for_media("media before the update", &subscriber, 60, 50).await;

    let ack = ana
        .ok("updateVideo", "UPDATE", json!({"ve": false, "ae": true}))
        .await;
    assert_eq!(
        (&ack["ve"], &ack["ae"]),
        (&json!(false), &json!(true)),
        "{ack}"
    );
    for rs in [&mut ana, &mut vic] {
        rs.list_until("ana's video off", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["video"] == false && e["audio"] == true)
        })
        .await;
    }
    // What was in flight arrives while a second of audio passes; then video stands still.
    let_pass(&subscriber, Kind::Audio, 50).await;
    let frozen = packets(&subscriber, Kind::Video);
    let sent = publisher.stats().video_packets;
    let_pass(&subscriber, Kind::Audio, 100).await;
    assert!(
        publisher.stats().video_packets > sent,
        "the app still sends video"
    );
    assert_eq!(
        packets(&subscriber, Kind::Video),
        frozen,
        "no video reaches the viewer while it is off"
    );

    let before = keyframes(&subscriber);
    let ack = ana
        .ok("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
        .await;
    assert_eq!(ack["ve"], true, "{ack}");
    vic.list_until("ana's video on", |pps| {
        entry(pps, "ana-1").is_some_and(|e| e["video"] == true)
    })
    .await;
    wait_until("video again, from a new keyframe", || {
        packets(&subscriber, Kind::Video) > frozen + 30 && keyframes(&subscriber) > before
    })
    .await;

    // The same for audio.
    ana.ok("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
        .await;
    vic.list_until("ana's audio off", |pps| {
        entry(pps, "ana-1").is_some_and(|e| e["audio"] == false && e["video"] == true)
    })
    .await;
    let_pass(&subscriber, Kind::Video, 60).await;
    let silent = packets(&subscriber, Kind::Audio);
    let_pass(&subscriber, Kind::Video, 120).await;
    assert_eq!(
        packets(&subscriber, Kind::Audio),
        silent,
        "no audio while it is off"
    );
    ana.ok("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
        .await;
    wait_until("audio again", || {
        packets(&subscriber, Kind::Audio) > silent + 20
    })
    .await;
    assert_no_repeats(&vic.lists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_session_and_ten_silent_seconds_end_it() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut ben, _) = joined(&server, "ben", "ben-1", "hub", "m2m", publishing()).await;
    ben.stop_heartbeats();
    ana.list_until("ben", |pps| entry(pps, "ben-1").is_some())
        .await;

    // Without send_ack there is no ack: the next HEARTBEAT reply is the acked one's.
    ana.signal(
        "heartbeat",
        "HEARTBEAT",
        json!({"bid": "quiet", "send_ack": false}),
    );
    let ack = ana
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "hb-1", "send_ack": true}),
        )
        .await;
    assert_eq!(ack["bid"], "hb-1", "{ack}");
    assert_eq!(ids(&ack["pps"]), ["ana-1", "ben-1"]);

    // Five silent seconds are not ten.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ack = ana
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "hb-2", "send_ack": true}),
        )
        .await;
    assert_eq!(ack["bid"], "hb-2");
    assert_eq!(ids(&ack["pps"]), ["ana-1", "ben-1"], "ben is still in");

    // Then ben, silent, is gone for everyone, and his socket is closed.
    ana.list_until("ben gone", |pps| entry(pps, "ben-1").is_none())
        .await;
    let (code, reason) = ben.closed(Duration::from_secs(30)).await;
    assert_eq!(code, 1000);
    assert_eq!(reason, "no heartbeat for 10 s");

    // Ana, who sent heartbeats all along, is still in.
    let ack = ana
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "hb-3", "send_ack": true}),
        )
        .await;
    assert_eq!(ack["bid"], "hb-3");
    assert_eq!(ids(&ack["pps"]), ["ana-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_ask_the_admin_to_publish() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (mut wes, _) = joined(&server, "wes", "wes-1", "hub", "m2m", viewing()).await;

    // A viewer may neither update nor offer.
    assert_eq!(
        vic.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
            .await,
        4051
    );
    let would_be = Publisher::new(av(None, 30, None)).await.unwrap();
    let offer = would_be.offer().await.unwrap();
    assert_eq!(
        vic.fails("offer", "OFFER", json!({"sdp": offer})).await,
        4051
    );
    would_be.close().await;

    // Request, accept.
    let ack = vic
        .ok(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true, "msg": "may I?"}),
        )
        .await;
    assert_eq!(ack["rid"], "hub");
    let request = ana.push("PUBLISH_REQUEST").await;
    assert_eq!(
        request["b"]["ss"], vic.ss,
        "the requester's session: {request}"
    );
    assert_eq!(request["b"]["msg"], "may I?");
    let ack = ana
        .ok("publishAccept", "PUBLISH_ACCEPT", json!({"to": vic.to()}))
        .await;
    assert_eq!(ack["to"], vic.to());
    let accepted = vic.push("PUBLISH_ACCEPT").await;
    assert_eq!(accepted["b"]["pt"], "publisher", "{accepted}");
    assert_eq!(accepted["b"]["rid"], "hub");
    assert_eq!(accepted["b"]["from"]["sessionId"], "ana-1", "{accepted}");
    assert_eq!(accepted["b"]["from"]["userId"], "ana", "{accepted}");
    for rs in [&mut ana, &mut vic, &mut wes] {
        rs.list_until("vic as a publisher", |pps| {
            entry(pps, "vic-1").is_some_and(|e| e["role"] == "publisher")
        })
        .await;
    }
    assert_eq!(
        vic.fails(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true})
        )
        .await,
        4023,
        "vic publishes already"
    );
    let ack = vic
        .ok("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
        .await;
    assert_eq!(ack["ae"], false, "a publisher may update: {ack}");

    // Request, reject; only the admin decides.
    wes.ok(
        "publishRequest",
        "PUBLISH_REQUEST",
        json!({"ve": true, "ae": false, "msg": "me too"}),
    )
    .await;
    let request = ana.push("PUBLISH_REQUEST").await;
    assert_eq!(request["b"]["ss"]["sessionId"], "wes-1");
    assert_eq!(
        vic.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": wes.to()}))
            .await,
        4051
    );
    assert_eq!(
        vic.fails("publishReject", "PUBLISH_REJECT", json!({"to": wes.to()}))
            .await,
        4051
    );
    let ack = ana
        .ok("publishReject", "PUBLISH_REJECT", json!({"to": wes.to()}))
        .await;
    assert_eq!(ack["to"], wes.to());
    let rejected = wes.push("PUBLISH_REJECT").await;
    assert_eq!(rejected["b"]["pt"], "viewer", "{rejected}");
    assert_eq!(rejected["b"]["from"]["sessionId"], "ana-1", "{rejected}");
    assert_eq!(
        wes.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
            .await,
        4051,
        "still a viewer"
    );

    // Someone who is not in the room, or who left.
    let nobody = json!({"userId": "nobody", "sessionId": "nobody-1"});
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": nobody}))
            .await,
        4002
    );
    assert_eq!(
        ana.fails("publishReject", "PUBLISH_REJECT", json!({"to": nobody}))
            .await,
        4002
    );
    wes.stop_heartbeats();
    wes.ok("leave", "LEAVE", json!({})).await;
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": wes.to()}))
            .await,
        4024,
        "wes left"
    );
    for list in ana.lists().iter().chain(&wes.lists()) {
        assert!(
            entry(list.as_array().unwrap(), "wes-1").is_none(),
            "wes was never a publisher: {list}"
        );
    }
}

#[tokio::test]
async fn a_room_holds_nine_publishers() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "p-0", "hub", "m2m", creating()).await;
    let mut publishers = vec![];
    for n in 1..9 {
        let (rs, joined) = joined(
            &server,
            &format!("user-{n}"),
            &format!("p-{n}"),
            "hub",
            "m2m",
            publishing(),
        )
        .await;
        assert_eq!(joined["pt"], "publisher", "publisher {n}: {joined}");
        publishers.push(rs);
    }
    ana.list_until("nine publishers", |pps| pps.len() == 9)
        .await;
    let (_tenth, joined_tenth) = joined(&server, "tenth", "p-9", "hub", "m2m", publishing()).await;
    assert_eq!(joined_tenth["pt"], "viewer", "nine is the most");

    // One leaves: there is room again.
    publishers.pop().unwrap().close();
    ana.list_until("eight publishers", |pps| pps.len() == 8)
        .await;
    let (_next, joined_next) = joined(&server, "next", "p-10", "hub", "m2m", publishing()).await;
    assert_eq!(joined_next["pt"], "publisher", "{joined_next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_kicks_and_hands_over_when_leaving() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut ben, _) = joined(&server, "ben", "ben-1", "hub", "m2m", publishing()).await;
    let (mut cal, _) = joined(&server, "cal", "cal-1", "hub", "m2m", publishing()).await;
    let (mut dan, _) = joined(&server, "dan", "dan-1", "hub", "m2m", publishing()).await;
    let (mut eve, _) = joined(&server, "eve", "eve-1", "hub", "m2m", publishing()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (mut tom, _) = joined(&server, "tom", "tom-1", "hub", "m2m", viewing()).await;
    let (mut tom2, _) = joined(&server, "tom", "tom-2", "hub", "m2m", viewing()).await;
    let everyone = ["ana-1", "ben-1", "cal-1", "dan-1", "eve-1"];
    cal.list_until("everyone", |pps| {
        everyone.iter().all(|id| entry(pps, id).is_some())
    })
    .await;

    // Only the admin kicks.
    assert_eq!(
        ben.fails("kick", "KICK", json!({"to": cal.to()})).await,
        4051
    );
    assert_eq!(
        vic.fails("kick", "KICK", json!({"to": cal.to()})).await,
        4051
    );
    let ack = ana.ok("kick", "KICK", json!({"to": ben.to()})).await;
    assert_eq!(ack["to"], ben.to());
    let kick = ben.push("KICK").await;
    assert_eq!(kick["b"]["rid"], "hub");
    assert_eq!(kick["b"]["from"]["sessionId"], "ana-1", "{kick}");
    let after = ben
        .request(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "still here?", "send_ack": true}),
        )
        .await;
    assert!(
        after["c"] == 2001 || after["c"] == 4001,
        "ben is out of the room: {after}"
    );
    for rs in [&mut ana, &mut cal, &mut vic] {
        rs.list_until("ben gone", |pps| entry(pps, "ben-1").is_none())
            .await;
    }

    // A user id names every session of that user.
    ana.ok("kick", "KICK", json!({"to": "tom"})).await;
    for rs in [&mut tom, &mut tom2] {
        let kick = rs.push("KICK").await;
        assert_eq!(kick["b"]["from"]["sessionId"], "ana-1", "{kick}");
    }
    let nobody = json!({"userId": "nobody", "sessionId": "nobody-1"});
    assert_eq!(ana.fails("kick", "KICK", json!({"to": nobody})).await, 4003);
    assert_eq!(
        ana.fails("kick", "KICK", json!({"to": ben.to()})).await,
        4024,
        "ben has left"
    );

    // Closing the socket is leaving.
    eve.close();
    cal.list_until("eve gone", |pps| entry(pps, "eve-1").is_none())
        .await;

    // The admin leaves: the oldest remaining publisher, cal, is admin now.
    ana.stop_heartbeats();
    ana.ok("leave", "LEAVE", json!({})).await;
    for rs in [&mut cal, &mut dan, &mut vic] {
        let pps = rs
            .list_until("cal as admin", |pps| {
                entry(pps, "cal-1").is_some_and(|e| e["role"] == "admin")
            })
            .await;
        assert!(entry(&pps, "ana-1").is_none(), "{pps:?}");
        assert_eq!(entry(&pps, "dan-1").unwrap()["role"], "publisher");
    }
    let ack = cal.ok("kick", "KICK", json!({"to": vic.to()})).await;
    assert_eq!(ack["to"], vic.to());
    vic.push("KICK").await;
    assert_eq!(
        dan.fails("kick", "KICK", json!({"to": cal.to()})).await,
        4051
    );

    // The socket stays open after LEAVE: ana comes back, as a publisher this time.
    let back = ana.join(publishing()).await;
    assert_eq!(back["c"], 200, "{back}");
    assert_eq!(back["b"]["pt"], "publisher", "{back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_peers_signal_through_the_server_and_connect_directly() {
    let server = any_rooms_server();
    let (mut amy, joined_amy) = joined(&server, "amy", "amy-1", "call-7", "p2p", creating()).await;

    let publisher = Arc::new(Publisher::new(av(None, 30, None)).await.unwrap());
    amy.register(P2P, Peer::Publisher(publisher.clone())).await;
    let offer = publisher.offer().await.unwrap();
    assert_eq!(
        amy.fails("offer", "OFFER", json!({"sdp": offer})).await,
        4003,
        "nobody to send it to yet"
    );

    let (mut bob, joined_bob) =
        joined(&server, "bob", "bob-1", "call-7", "p2p", publishing()).await;
    assert_eq!(joined_bob["pt"], "publisher", "{joined_bob}");

    let sent = amy.signal("offer", "OFFER", json!({"sdp": offer}));
    amy.trickle(publisher.take_candidates(), None);
    let relayed = bob
        .recv_matching(PATIENCE, "amy's offer", |m| {
            m["s"] == "OFFER" && m.get("c").is_none()
        })
        .await;
    assert_eq!(relayed, sent, "the offer arrives exactly as sent");

    let subscriber = bob.subscriber(P2P).await;
    let answer = subscriber.answer(relayed["sdp"].as_str().unwrap()).await;
    let sent = bob.signal("answer", "ANSWER", json!({"sdp": answer.unwrap()}));
    bob.trickle(subscriber.take_candidates(), None);
    let relayed = amy
        .recv_matching(PATIENCE, "bob's answer", |m| {
            m["s"] == "ANSWER" && m.get("c").is_none()
        })
        .await;
    assert_eq!(relayed, sent, "the answer arrives exactly as sent");
    publisher
        .set_answer(relayed["sdp"].as_str().unwrap())
        .await
        .unwrap();

    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    assert!(subscriber.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    wait_for_media("bob to receive amy's media", &subscriber, 60, 50).await;

    // The candidates came verbatim too, and the media went around the server.
    let (from_amy, from_bob) = (amy.sent_ice(), bob.sent_ice());
    for (to, sent) in [(&mut bob, from_amy), (&mut amy, from_bob)] {
        let relayed = to.received(|m| m["s"] == "ICE" && m.get("c").is_none());
        assert!(!relayed.is_empty(), "candidates relayed");
        for candidate in &relayed {
            assert!(
                sent.contains(candidate),
                "{candidate} not as sent: {sent:#?}"
            );
        }
        assert!(
            to.received(|m| m["s"] == "ICE" && m.get("c").is_some())
                .is_empty(),
            "the server has no candidates of its own in p2p"
        );
    }
    let stats = stats(&server).await;
    assert_eq!(
        stats["resources"]["peer_connections"], 0,
        "no media through the server: {stats}"
    );

    // Two peers at most; no room control in p2p.
    let mut cy = Rs::connect(&server, "cy", "cy-1", "call-7", "p2p").await;
    assert_eq!(cy.join(publishing()).await["c"], 500, "a third peer");
    assert_eq!(
        amy.fails("kick", "KICK", json!({"to": bob.to()})).await,
        2002
    );
    assert_eq!(
        bob.fails("watch", "WATCH", json!({"to": amy.to()})).await,
        2002
    );
    assert_eq!(
        bob.fails(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true})
        )
        .await,
        2002
    );
    // Both peers publish; the one who created the room is its admin.
    assert_eq!(
        joined_amy["pt"], "admin",
        "the p2p room's creator: {joined_amy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2m_rooms_refuse_video_and_carry_audio() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "a2m", creating()).await;
    let (mut ben, joined_ben) = joined(&server, "ben", "ben-1", "hub", "a2m", publishing()).await;
    assert_eq!(joined_ben["pt"], "publisher");
    let (mut vic, joined_vic) = joined(&server, "vic", "vic-1", "hub", "a2m", viewing()).await;
    assert_eq!(joined_vic["pt"], "viewer");

    // Audio and video offered: video refused (webrtc-rs cannot apply an answer that
    // refuses one of its tracks, so this offer goes no further).
    let both = Arc::new(Publisher::new(av(None, 30, None)).await.unwrap());
    let answer = ana.offer(&both).await;
    assert!(answer.contains("m=video 0 "), "video refused: {answer}");
    assert!(answer.contains("opus/48000"), "audio accepted: {answer}");
    both.close().await;

    // Audio flows to viewers.
    let audio_only = PublisherConfig {
        video: None,
        ..av(None, 30, None)
    };
    let (publisher, answer) = ben.publish(audio_only).await;
    assert!(answer.contains("opus/48000"), "{answer}");
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ben publishing", |pps| {
            entry(pps, "ben-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ben-1").unwrap()).await;
    wait_until("audio at the viewer", || {
        packets(&subscriber, Kind::Audio) > 50
    })
    .await;
    assert!(subscriber.stats().track(Kind::Video).is_none());
}

#[tokio::test]
async fn in_p2m_rooms_only_the_creator_publishes() {
    let server = server();
    let (mut ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "p2m", creating()).await;
    assert_eq!(joined_ana["pt"], "admin");
    let (mut ben, joined_ben) = joined(&server, "ben", "ben-1", "hub", "p2m", publishing()).await;
    assert_eq!(joined_ben["pt"], "viewer", "ben's ve and ae do not matter");
    assert_eq!(
        ben.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
            .await,
        4051
    );
    assert_eq!(
        ben.fails(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true})
        )
        .await,
        2002
    );
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": ben.to()}))
            .await,
        2002
    );
    let ack = ben
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "who", "send_ack": true}),
        )
        .await;
    assert_eq!(ids(&ack["pps"]), ["ana-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signals_get_error_codes_and_harm_nobody() {
    let server = server();
    let mut xan = Rs::connect(&server, "xan", "xan-1", "hub", "m2m").await;

    // Frames that are no signal at all.
    xan.send_text("not json".into());
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "{reply}");
    assert!(reply["b"].get("req").is_some(), "{reply}");
    if let Some(req) = reply["b"]["req"].as_str() {
        assert_eq!(req, "not json");
    }
    assert!(reply["b"]["msg"].is_string(), "{reply}");
    xan.send_text("[1, 2]".into());
    assert_eq!(xan.next_frame().await["c"], 2001, "not an object");
    let dance = json!({"s": "DANCE", "rid": "hub", "ch": "m2m"});
    xan.send("dance", &dance);
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "an unknown action: {reply}");
    assert_eq!(reply["b"]["req"], dance);
    let leave = xan.signal_data("LEAVE", json!({}));
    xan.send("join", &leave);
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "action and s disagree: {reply}");
    assert_eq!(reply["b"]["req"], leave);

    // Before JOIN; JOINs that cannot be.
    assert_eq!(
        xan.fails(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "early", "send_ack": true})
        )
        .await,
        2001,
        "a signal before JOIN"
    );
    assert_eq!(
        xan.fails(
            "join",
            "JOIN",
            json!({"ve": "yes", "ae": true, "op": {"roomCreating": true}})
        )
        .await,
        2001,
        "a mistyped field"
    );
    let no_user = json!({"sessionId": "xan-1", "category": "stream", "host": "iOS",
                         "deviceId": "d"});
    assert_eq!(
        xan.fails(
            "join",
            "JOIN",
            json!({"ss": no_user, "ve": true, "ae": true, "op": {"roomCreating": true}})
        )
        .await,
        2001,
        "a missing userId"
    );
    assert_eq!(
        xan.fails(
            "join",
            "JOIN",
            json!({"ch": "x2x", "ve": true, "ae": true, "op": {"roomCreating": true}})
        )
        .await,
        2002,
        "an unknown channel"
    );
    assert_eq!(
        xan.fails("join", "JOIN", publishing()).await,
        4001,
        "nobody is in hub"
    );
    xan.rid = "nowhere".into();
    assert_eq!(
        xan.fails("join", "JOIN", creating()).await,
        4001,
        "no group nowhere, and rooms are `existing`"
    );
    xan.rid = "hub".into();

    // A bare signal is a signal too.
    let mut bare = xan.signal_data("JOIN", creating());
    bare["eg"] = json!("native");
    xan.send_text(bare.to_string());
    let reply = xan.reply("JOIN").await;
    assert_eq!(reply["c"], 200, "{reply}");
    assert_eq!(reply["b"]["pt"], "admin");
    xan.start_heartbeats();
    assert_eq!(
        xan.fails("join", "JOIN", publishing()).await,
        2001,
        "a second JOIN"
    );

    let mut yul = Rs::connect(&server, "yul", "yul-1", "hub", "m2m").await;
    assert_eq!(
        yul.fails("join", "JOIN", creating()).await,
        4022,
        "hub exists"
    );
    yul.ss["sessionId"] = json!("xan-1");
    assert_eq!(
        yul.fails("join", "JOIN", publishing()).await,
        4022,
        "xan-1 is taken"
    );
    yul.ss["sessionId"] = json!("yul-1");
    assert_eq!(yul.join(publishing()).await["c"], 200);

    // After JOIN, ch and rid must name the room.
    let beat = json!({"bid": "b", "send_ack": true});
    for ch in ["p2p", "a2m", "x2x"] {
        let mut fields = beat.clone();
        fields["ch"] = json!(ch);
        assert_eq!(
            xan.fails("heartbeat", "HEARTBEAT", fields).await,
            2002,
            "ch {ch}"
        );
    }
    let mut fields = beat.clone();
    fields["rid"] = json!("elsewhere");
    assert_eq!(xan.fails("heartbeat", "HEARTBEAT", fields).await, 4001);

    // Media signals that make no sense.
    assert_eq!(
        xan.fails(
            "answer",
            "ANSWER",
            json!({"to": yul.to(), "sdp": "v=0\r\n"})
        )
        .await,
        2001,
        "an ANSWER nothing waits for"
    );
    assert_eq!(
        xan.fails("offer", "OFFER", json!({"sdp": "this is no SDP"}))
            .await,
        2001
    );
    let nobody = json!({"userId": "nobody", "sessionId": "nobody-1"});
    assert_eq!(
        xan.fails("watch", "WATCH", json!({"to": nobody})).await,
        4003
    );
    assert_eq!(
        xan.fails(
            "iceCandidate",
            "ICE",
            json!({"to": nobody, "sdp": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
                   "sdpMid": "0", "sdpMLineIndex": 0})
        )
        .await,
        4003
    );

    // userFaking: the server names the session.
    let mut zed = Rs::connect(&server, "", "", "hub", "m2m").await;
    zed.ss = json!({"category": "stream", "host": "Android", "deviceId": "zed-device"});
    let reply = zed
        .join(json!({"ve": false, "ae": false, "op": {"userFaking": true}}))
        .await;
    assert_eq!(reply["c"], 200, "{reply}");
    for field in ["userId", "sessionId"] {
        assert!(
            reply["b"]["ss"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{field} made up: {reply}"
        );
    }

    // A frame over 1 MiB ends its own connection only.
    let (mut wil, _) = joined(&server, "wil", "wil-1", "hub", "m2m", publishing()).await;
    xan.list_until("wil", |pps| entry(pps, "wil-1").is_some())
        .await;
    let big =
        json!({"action": "heartbeat", "data": {"s": "HEARTBEAT", "bid": "x".repeat(1 << 20)}});
    wil.send_text(big.to_string());
    assert_eq!(wil.closed(PATIENCE).await.0, 1009);
    xan.list_until("wil gone", |pps| entry(pps, "wil-1").is_none())
        .await;

    // Everyone else goes on.
    for rs in [&mut xan, &mut yul] {
        let ack = rs
            .ok(
                "heartbeat",
                "HEARTBEAT",
                json!({"bid": "after", "send_ack": true}),
            )
            .await;
        assert_eq!(ack["bid"], "after");
        assert_eq!(ids(&ack["pps"]), ["xan-1", "yul-1"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_signals_apps_and_galene_clients_meet_in_a_group() {
    // Anyone may enter and publish; boss/secret is an operator.
    let server = server_with_hub(&group_with_op("present", ""));
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (publisher, _) = ana.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();

    // A Galène client sees ana and receives her stream.
    let gal = common::rtc::join(&server, "gal-id", "hub", "gal", "").await;
    next_matching(&gal, "ana in the people list", |m| {
        m["type"] == "user" && m["kind"] == "add" && m["id"] == "ana-1" && m["username"] == "ana"
    })
    .await;
    gal.request(json!({"": ["audio", "video"]}));
    let offer = next_matching(&gal, "ana's stream", |m| m["type"] == "offer").await;
    assert_eq!(offer["source"], "ana-1", "{offer}");
    assert_eq!(offer["username"], "ana");
    let stream = offer["id"].as_str().unwrap().to_owned();
    wait_until("gal to receive ana's stream", || {
        gal.subscriber(&stream)
            .is_some_and(|s| packets(&s, Kind::Video) > 60 && packets(&s, Kind::Audio) > 50)
    })
    .await;

    // A Galène publisher is a publisher for Room Signals apps, who can watch it.
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    next_matching(&gal, "vic in the people list", |m| {
        m["type"] == "user" && m["kind"] == "add" && m["id"] == "vic-1" && m["username"] == "vic"
    })
    .await;
    let camera = gal
        .publish("g-cam", "camera", av(None, 30, None), MEDIA_PATIENCE)
        .await
        .expect("gal publishes");
    camera.start();
    let pps = vic
        .list_until("gal's camera flowing", |pps| {
            entry(pps, "g-cam").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let cam = entry(&pps, "g-cam").unwrap();
    for field in ENTRY_FIELDS {
        assert!(cam.get(field).is_some(), "{field} in {cam}");
    }
    assert_eq!(cam["userId"], "gal");
    assert_eq!(cam["username"], "gal");
    assert_eq!(cam["role"], "publisher");
    assert_eq!(cam["host"], "Web");
    assert_eq!(cam["category"], "stream");
    let subscriber = vic.watch(cam).await;
    wait_for_media("vic to receive gal's camera", &subscriber, 60, 50).await;

    // The admin may kick the Galène client too.
    ana.ok(
        "kick",
        "KICK",
        json!({"to": {"userId": "gal", "sessionId": "gal-id"}}),
    )
    .await;
    next_matching(&gal, "the kick", |m| {
        m["type"] == "usermessage" && m["kind"] == "kicked"
    })
    .await;
    vic.list_until("gal's camera gone", |pps| entry(pps, "g-cam").is_none())
        .await;

    // An operator of the web client may kick a Room Signals session.
    let mut boss = Client::join(&server.ws_url(), "boss-id", "hub", "boss", "secret").await;
    boss.user_action("kick", "vic-1", json!("bye")).await;
    let kick = vic.push("KICK").await;
    assert_eq!(kick["b"]["rid"], "hub");
    assert_eq!(kick["b"]["from"]["userId"], "boss", "{kick}");
    assert!(kick["b"]["msg"].is_string(), "{kick}");
    let after = vic
        .request(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "still here?", "send_ack": true}),
        )
        .await;
    assert!(
        after["c"] == 2001 || after["c"] == 4001,
        "vic is out of the room: {after}"
    );
    boss.recv_matching(|m| m["type"] == "user" && m["kind"] == "delete" && m["id"] == "vic-1")
        .await;
}

#[tokio::test]
async fn ice_servers_reach_joining_apps() {
    let server = server();
    std::fs::write(
        server.dir.join("data/ice-servers.json"),
        r#"[{"urls": ["stun:stun.example.org:3478"]},
            {"urls": ["turn:turn.example.org"], "username": "u",
             "credential": "s", "credentialType": "hmac-sha1"}]"#,
    )
    .unwrap();
    let (_ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let icfg = &joined_ana["es"]["icfg"];
    let mut urls: Vec<&str> = icfg["is"]
        .as_array()
        .unwrap_or_else(|| panic!("is: {icfg}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        ["stun:stun.example.org:3478", "turn:turn.example.org"]
    );
    let turn = &icfg["iceServers"][1];
    assert_eq!(turn["urls"], json!(["turn:turn.example.org"]), "{icfg}");
    assert!(
        turn["username"].as_str().is_some_and(|u| u.ends_with(":u")),
        "{turn}"
    );
    assert!(turn["credential"].is_string(), "{turn}");
    assert_ne!(turn["credential"], "s", "derived, not the secret");
}
