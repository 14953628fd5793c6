//! A Galène protocol client over a real WebSocket, with webrtc-rs peers for its streams:
//! what the tests and `cinnabar-bench` use to publish and subscribe through a server.
//!
//! The client answers the server's `offer`s with a [`Subscriber`] each, publishes with
//! [`Publisher`]s, trickles candidates both ways and answers `ping`. Every message it
//! receives is also handed to the caller, in order, through [`GaleneClient::recv`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::{PeerError, Publisher, PublisherConfig, Subscriber, SubscriberConfig, lock};

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("join refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Peer(#[from] PeerError),
    #[error("the server refused the stream: {0}")]
    Aborted(String),
}

/// When the steps of a subscription happened, for join-latency measurements.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionTimes {
    pub offered: Option<Instant>,
    pub answered: Option<Instant>,
    /// When the subscriber's connection came up.
    pub connected: Option<Instant>,
}

/// A stream this client receives.
pub struct Received {
    pub subscriber: Arc<Subscriber>,
    pub label: String,
    pub source: String,
    pub username: String,
    pub times: SubscriptionTimes,
}

#[derive(Default)]
struct Streams {
    publishers: HashMap<String, Arc<Publisher>>,
    subscribers: HashMap<String, Received>,
    /// Answers to our offers, by stream id.
    answers: HashMap<String, mpsc::UnboundedSender<Result<String, String>>>,
}

/// Makes the configuration of each subscriber the server offers us.
pub type SubscriberFactory = Arc<dyn Fn(&str) -> SubscriberConfig + Send + Sync>;

/// A connected Galène client.
pub struct GaleneClient {
    pub id: String,
    username: Mutex<String>,
    out: mpsc::UnboundedSender<Frame>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    streams: Arc<Mutex<Streams>>,
}

impl GaleneClient {
    /// Connects over an established stream (plain TCP or TLS) and sends the handshake.
    pub async fn connect_over<S>(
        url: &str,
        stream: S,
        id: &str,
        subscriber_config: SubscriberFactory,
    ) -> Result<Arc<GaleneClient>, ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (socket, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok(Self::start(socket, id, subscriber_config))
    }

    /// Connects to a `ws://` URL and sends the handshake.
    pub async fn connect(
        url: &str,
        id: &str,
        subscriber_config: SubscriberFactory,
    ) -> Result<Arc<GaleneClient>, ClientError> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok(Self::start(socket, id, subscriber_config))
    }

    fn start<S>(
        socket: tokio_tungstenite::WebSocketStream<S>,
        id: &str,
        subscriber_config: SubscriberFactory,
    ) -> Arc<GaleneClient>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut source) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Frame>();
        tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let (to_inbox, inbox) = mpsc::unbounded_channel();
        let client = Arc::new(GaleneClient {
            id: id.to_owned(),
            username: Mutex::new(String::new()),
            out,
            inbox: tokio::sync::Mutex::new(inbox),
            streams: Arc::new(Mutex::new(Streams::default())),
        });
        client.send(json!({"type": "handshake", "version": ["2"], "id": id}));
        let weak = Arc::downgrade(&client);
        tokio::spawn(async move {
            while let Some(Ok(frame)) = source.next().await {
                let Frame::Text(text) = frame else {
                    if let Frame::Close(close) = frame {
                        let (code, reason) = close
                            .map(|c| (u16::from(c.code), c.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        let _ = to_inbox
                            .send(json!({"type": "_closed", "code": code, "reason": reason}));
                    }
                    continue;
                };
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let Some(client) = weak.upgrade() else {
                    return;
                };
                client.handle(&message, &subscriber_config).await;
                if to_inbox.send(message).is_err() {
                    return;
                }
            }
            let _ = to_inbox.send(json!({"type": "_closed", "code": 1006}));
        });
        client
    }

    /// Sends one message.
    pub fn send(&self, message: Value) {
        let _ = self.out.send(Frame::text(message.to_string()));
    }

    /// The next message from the server (`{"type": "_closed"}` once the socket is gone).
    pub async fn recv(&self, wait: Duration) -> Option<Value> {
        let mut inbox = self.inbox.lock().await;
        tokio::time::timeout(wait, inbox.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message satisfying `wanted`, skipping others.
    pub async fn recv_matching(
        &self,
        wait: Duration,
        what: &'static str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                None => return Err(ClientError::Timeout(what)),
                Some(m) if wanted(&m) => return Ok(m),
                Some(m) if m["type"] == "_closed" => return Err(ClientError::Closed),
                Some(_) => {}
            }
        }
    }

    /// Joins a group; returns the `joined` message.
    pub async fn join(
        &self,
        group: &str,
        username: &str,
        password: &str,
        wait: Duration,
    ) -> Result<Value, ClientError> {
        self.send(json!({"type": "join", "kind": "join", "group": group,
                         "username": username, "password": password}));
        let joined = self
            .recv_matching(wait, "joined", |m| m["type"] == "joined")
            .await?;
        if joined["kind"] != "join" {
            return Err(ClientError::Refused(
                joined["value"].as_str().unwrap_or("").to_owned(),
            ));
        }
        *lock(&self.username) = username.to_owned();
        Ok(joined)
    }

    /// Asks for streams: `{"camera": ["audio", "video"], ...}`.
    pub fn request(&self, request: Value) {
        self.send(json!({"type": "request", "request": request}));
    }

    /// Publishes a stream with a new synthetic publisher and waits for the answer.
    /// Media starts flowing once the connection is up (call [`Publisher::start`]).
    pub async fn publish(
        &self,
        id: &str,
        label: &str,
        config: PublisherConfig,
        wait: Duration,
    ) -> Result<Arc<Publisher>, ClientError> {
        let publisher = Arc::new(Publisher::new(config).await?);
        let offer = publisher.offer().await?;
        self.offer_stream(id, label, &publisher, offer, None, wait)
            .await?;
        Ok(publisher)
    }

    /// Sends an offer for `publisher` (a new stream, a renegotiation or a replacement)
    /// and applies the answer.
    pub async fn offer_stream(
        &self,
        id: &str,
        label: &str,
        publisher: &Arc<Publisher>,
        offer: String,
        replace: Option<&str>,
        wait: Duration,
    ) -> Result<(), ClientError> {
        let (answers, mut answer) = mpsc::unbounded_channel();
        {
            let mut streams = lock(&self.streams);
            streams.answers.insert(id.to_owned(), answers);
            streams.publishers.insert(id.to_owned(), publisher.clone());
        }
        let mut message = json!({"type": "offer", "id": id, "label": label, "sdp": offer,
                                 "source": self.id, "username": *lock(&self.username)});
        if let Some(old) = replace {
            message["replace"] = json!(old);
        }
        self.send(message);
        if let Some(mut candidates) = publisher.take_candidates() {
            let out = self.out.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                while let Some(candidate) = candidates.recv().await {
                    let m = json!({"type": "ice", "id": id, "candidate": candidate});
                    if out.send(Frame::text(m.to_string())).is_err() {
                        return;
                    }
                }
            });
        }
        let result = tokio::time::timeout(wait, answer.recv()).await;
        lock(&self.streams).answers.remove(id);
        match result {
            Err(_) | Ok(None) => Err(ClientError::Timeout("answer")),
            Ok(Some(Err(why))) => {
                lock(&self.streams).publishers.remove(id);
                Err(ClientError::Aborted(why))
            }
            Ok(Some(Ok(sdp))) => Ok(publisher.set_answer(&sdp).await?),
        }
    }

    /// Closes a stream this client publishes.
    pub async fn unpublish(&self, id: &str) {
        let publisher = lock(&self.streams).publishers.remove(id);
        self.send(json!({"type": "close", "id": id, "source": self.id}));
        if let Some(p) = publisher {
            p.close().await;
        }
    }

    /// The subscriber receiving stream `id`, once the server offered it.
    pub fn subscriber(&self, id: &str) -> Option<Arc<Subscriber>> {
        lock(&self.streams)
            .subscribers
            .get(id)
            .map(|r| r.subscriber.clone())
    }

    /// Ids of the streams this client receives, with their labels and sources.
    pub fn received(&self) -> Vec<(String, String, String)> {
        let streams = lock(&self.streams);
        let mut list: Vec<_> = streams
            .subscribers
            .iter()
            .map(|(id, r)| (id.clone(), r.label.clone(), r.source.clone()))
            .collect();
        list.sort();
        list
    }

    /// When the subscription to `id` was offered and answered.
    pub fn subscription_times(&self, id: &str) -> Option<SubscriptionTimes> {
        lock(&self.streams)
            .subscribers
            .get(id)
            .map(|r| r.times.clone())
    }

    /// Every subscriber, by stream id.
    pub fn subscribers(&self) -> Vec<(String, Arc<Subscriber>)> {
        lock(&self.streams)
            .subscribers
            .iter()
            .map(|(id, r)| (id.clone(), r.subscriber.clone()))
            .collect()
    }

    /// Closes every peer and the socket.
    pub async fn close(&self) {
        let (publishers, subscribers) = {
            let mut streams = lock(&self.streams);
            (
                std::mem::take(&mut streams.publishers),
                std::mem::take(&mut streams.subscribers),
            )
        };
        for p in publishers.values() {
            p.close().await;
        }
        for r in subscribers.values() {
            r.subscriber.close().await;
        }
        let _ = self.out.send(Frame::Close(None));
    }

    /// Reacts to a server message before the caller sees it.
    async fn handle(&self, m: &Value, subscriber_config: &SubscriberFactory) {
        let id = m["id"].as_str().unwrap_or_default();
        match m["type"].as_str().unwrap_or_default() {
            "ping" => self.send(json!({"type": "pong"})),
            "answer" => {
                if let Some(tx) = lock(&self.streams).answers.get(id) {
                    let _ = tx.send(Ok(m["sdp"].as_str().unwrap_or_default().to_owned()));
                }
            }
            "abort" => {
                // The server refuses or ends one of our streams: close it as asked.
                let (waiting, publisher) = {
                    let mut streams = lock(&self.streams);
                    (
                        streams.answers.get(id).cloned(),
                        streams.publishers.remove(id),
                    )
                };
                if let Some(tx) = waiting {
                    let _ = tx.send(Err("aborted by the server".into()));
                }
                self.send(json!({"type": "close", "id": id, "source": self.id}));
                if let Some(p) = publisher {
                    p.close().await;
                }
            }
            "ice" => {
                let (publisher, subscriber) = {
                    let streams = lock(&self.streams);
                    (
                        streams.publishers.get(id).cloned(),
                        streams.subscribers.get(id).map(|r| r.subscriber.clone()),
                    )
                };
                let candidate = m["candidate"].clone();
                if let Some(p) = publisher {
                    let _ = p.add_remote_candidate(candidate).await;
                } else if let Some(s) = subscriber {
                    let _ = s.add_remote_candidate(candidate).await;
                }
            }
            "offer" => self.on_offer(m, subscriber_config).await,
            "close" => {
                let removed = lock(&self.streams).subscribers.remove(id);
                if let Some(r) = removed {
                    r.subscriber.close().await;
                }
            }
            _ => {}
        }
    }

    async fn on_offer(&self, m: &Value, subscriber_config: &SubscriberFactory) {
        let id = m["id"].as_str().unwrap_or_default().to_owned();
        let sdp = m["sdp"].as_str().unwrap_or_default();
        let offered = Instant::now();
        if let Some(replaced) = m["replace"].as_str() {
            let old = lock(&self.streams).subscribers.remove(replaced);
            if let Some(r) = old {
                r.subscriber.close().await;
            }
        }
        let existing = self.subscriber(&id);
        let subscriber = match existing {
            Some(s) => s,
            None => match Subscriber::new(subscriber_config(&id)).await {
                Ok(s) => Arc::new(s),
                Err(error) => {
                    tracing::warn!("cannot create a subscriber: {error}");
                    self.send(json!({"type": "abort", "id": id, "source": self.id}));
                    return;
                }
            },
        };
        let answer = match subscriber.answer(sdp).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!("cannot answer: {error}");
                self.send(json!({"type": "abort", "id": id, "source": self.id}));
                return;
            }
        };
        self.send(json!({"type": "answer", "id": id, "sdp": answer, "source": self.id}));
        if let Some(mut candidates) = subscriber.take_candidates() {
            let out = self.out.clone();
            let stream = id.clone();
            tokio::spawn(async move {
                while let Some(candidate) = candidates.recv().await {
                    let m = json!({"type": "ice", "id": stream, "candidate": candidate});
                    if out.send(Frame::text(m.to_string())).is_err() {
                        return;
                    }
                }
            });
        }
        let waiting = subscriber.clone();
        let received = Received {
            subscriber,
            label: m["label"].as_str().unwrap_or_default().to_owned(),
            source: m["source"].as_str().unwrap_or_default().to_owned(),
            username: m["username"].as_str().unwrap_or_default().to_owned(),
            times: SubscriptionTimes {
                offered: Some(offered),
                answered: Some(Instant::now()),
                connected: None,
            },
        };
        lock(&self.streams).subscribers.insert(id.clone(), received);
        // Note when the connection comes up, for join-latency measurements.
        let streams = Arc::downgrade(&self.streams);
        let stream = id.clone();
        tokio::spawn(async move {
            if waiting.wait_connected(Duration::from_secs(120)).await
                && let Some(streams) = streams.upgrade()
                && let Some(r) = lock(&streams).subscribers.get_mut(&stream)
            {
                r.times.connected.get_or_insert_with(Instant::now);
            }
        });
    }
}
