//! The WebRTC side of a scripted app: our peers, the candidates the server sends them,
//! and what they receive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cinnabar::peer::{Kind, Publisher, PublisherConfig, Subscriber, SubscriberConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::app::{Rs, lock};
use crate::common::rtc::wait_until;

/// The key of the one peer of a `p2p` room, whose candidates come relayed verbatim.
pub const P2P: &str = "the p2p peer";

/// One of our WebRTC peers, fed with the candidates the server pushes for it.
#[derive(Clone)]
pub enum Peer {
    Publisher(Arc<Publisher>),
    Subscriber(Arc<Subscriber>),
}

impl Peer {
    pub async fn add_remote_candidate(&self, candidate: Value) {
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
pub struct Peers {
    by_id: HashMap<String, Peer>,
    /// Candidates that came before their peer was made.
    early: HashMap<String, Vec<Value>>,
}

/// A candidate for one of our peers: in a server push (`b.id` names the connection) or
/// relayed verbatim from the other peer of a `p2p` room. Returns the peer's key and the
/// candidate as webrtc-rs reads it.
pub fn candidate_in(m: &Value) -> Option<(String, Value)> {
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

pub async fn deliver(peers: &Mutex<Peers>, key: String, candidate: Value) {
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
pub async fn answer_pushed_offer(peers: &Mutex<Peers>, m: &Value, base: &Value) -> Option<Value> {
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

impl Rs {
    /// Feeds `peer` the candidates pushed (or relayed) for `key`, including earlier ones.
    pub async fn register(&self, key: &str, peer: Peer) {
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
    pub fn trickle(&self, candidates: Option<mpsc::UnboundedReceiver<Value>>, to: Option<Value>) {
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

    pub fn sent_ice(&self) -> Vec<Value> {
        lock(&self.sent_ice).clone()
    }

    /// OFFERs a new publisher's media, trickles and applies the answer from the ack:
    /// the publisher and the answer.
    pub async fn publish(&mut self, config: PublisherConfig) -> (Arc<Publisher>, String) {
        let publisher = Arc::new(Publisher::new(config).await.expect("a publisher"));
        let answer = self.offer(&publisher).await;
        publisher
            .set_answer(&answer)
            .await
            .expect("the server's answer applies");
        (publisher, answer)
    }

    /// OFFERs `publisher`'s media and trickles its candidates: the answer from the ack.
    pub async fn offer(&mut self, publisher: &Arc<Publisher>) -> String {
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
    pub async fn subscriber(&self, key: &str) -> Arc<Subscriber> {
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
    pub async fn watch(&mut self, entry: &Value) -> Arc<Subscriber> {
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
    pub async fn watch_offer(&mut self, to: &Value, id: &str, fields: Value) -> String {
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
    pub async fn answer_offer(&mut self, subscriber: &Subscriber, to: Value, offer: &str) {
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

pub fn packets(subscriber: &Subscriber, kind: Kind) -> u64 {
    subscriber.stats().track(kind).map_or(0, |t| t.packets)
}

pub fn keyframes(subscriber: &Subscriber) -> u32 {
    subscriber
        .stats()
        .track(Kind::Video)
        .map_or(0, |t| t.keyframes)
}

/// Waits until `subscriber` has received more than `video` video and `audio` audio packets.
pub async fn wait_for_media(what: &str, subscriber: &Subscriber, video: u64, audio: u64) {
    wait_until(what, || {
        packets(subscriber, Kind::Video) > video && packets(subscriber, Kind::Audio) > audio
    })
    .await;
}

/// Waits until `n` more packets of `kind` arrived: the stream's own clock.
pub async fn let_pass(subscriber: &Subscriber, kind: Kind, n: u64) {
    let target = packets(subscriber, kind) + n;
    wait_until("packets to pass", || packets(subscriber, kind) >= target).await;
}
