//! Galène's WebSocket protocol on `/ws` (shared/protocols/galene.md).
//!
//! One task per connection owns the socket: it reads frames, calls the group core, and
//! drains the client's event queue into Galène's JSON messages. Errors follow Galène's
//! model: a non-fatal error is a `usermessage` of kind `error`; a protocol violation ends
//! the session with close code 1002, a malformed message with 1011, a kick with 1000.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use warp::ws::{Message as Frame, WebSocket};

mod media;
mod message;

pub use message::{Message, status_json};
use message::{
    chat_message, clear_chat_target, error_message, relayed_message, rtc_configuration,
    user_message,
};

use super::{Context, WRITE_TIMEOUT, close_websocket, message_too_big};
use crate::group::{
    ActionError, ChatRequest, ClientHandle, ClientId, ClientInfo, Event, EventQueue, GroupAction,
    JoinError, JoinRequest, Joined, JoinedKind, Membership, UserAction,
};

/// The client must say `handshake` within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often liveness is checked.
const LIVENESS_TICK: Duration = Duration::from_secs(5);
/// Silence after which the server pings the client.
const PING_AFTER: Duration = Duration::from_secs(20);
/// Silence after which the client is declared dead.
const DEAD_AFTER: Duration = Duration::from_secs(45);

/// How a session ends.
#[derive(Debug)]
enum End {
    /// A protocol violation: an error message, then close 1002.
    Protocol(String),
    /// A malformed message: close 1011 without a message.
    Malformed(String),
    /// Removed from the group: a `kicked` message, then close 1000.
    Kicked(Box<Message>),
    /// The server goes away or the client is too slow: close with this code.
    Close(u16, String),
    /// The socket is gone; nothing more can be said.
    Gone,
}

/// A joined group: the core membership and the queue its events arrive in.
struct GroupSession {
    membership: Membership,
    queue: EventQueue,
    username: String,
    streams: media::Streams,
}

/// One connection's state.
struct Session {
    ctx: Arc<Context>,
    socket: WebSocket,
    address: Option<SocketAddr>,
    /// The id from the handshake; `None` for a peer that originates nothing.
    id: Option<ClientId>,
    joined: Option<GroupSession>,
    /// What the client asked to receive (`request`), kept across groups.
    request: media::Request,
    last_read: Instant,
    last_ping: Option<Instant>,
}

/// Serves one WebSocket connection until it ends.
pub async fn serve(socket: WebSocket, ctx: Arc<Context>, address: Option<SocketAddr>) {
    let mut session = Session {
        ctx,
        socket,
        address,
        id: None,
        joined: None,
        request: Default::default(),
        last_read: Instant::now(),
        last_ping: None,
    };
    let end = session.run().await;
    session.finish(end).await;
}

impl Session {
    async fn run(&mut self) -> End {
        if let Err(end) = self.handshake().await {
            return end;
        }
        let mut tick = tokio::time::interval(LIVENESS_TICK);
        let shutdown = self.ctx.shutdown.clone();
        loop {
            let step = tokio::select! {
                frame = self.socket.next() => match frame {
                    None => Err(End::Gone),
                    Some(frame) => self.on_frame(frame).await,
                },
                Some(event) = next_event(&mut self.joined) => self.on_event(event).await,
                _ = tick.tick() => self.check_liveness().await,
                _ = shutdown.cancelled() => self.on_shutdown().await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Delivers what the core already said (a shutdown kick says why), then closes.
    async fn on_shutdown(&mut self) -> Result<(), End> {
        while let Some(event) = self.joined.as_mut().and_then(|j| j.queue.try_recv()) {
            self.on_event(event).await?;
        }
        Err(End::Close(1001, "the server is shutting down".into()))
    }

    async fn handshake(&mut self) -> Result<(), End> {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.socket.next()).await;
        let frame = match first {
            Err(_) => return Err(End::Protocol("you must handshake first".into())),
            Ok(None) => return Err(End::Gone),
            Ok(Some(frame)) => frame,
        };
        self.last_read = Instant::now();
        let Some(message) = decode(frame)? else {
            return Err(End::Protocol("you must handshake first".into()));
        };
        if message.kind_of_message != "handshake" {
            return Err(End::Protocol("you must handshake first".into()));
        }
        if let Some(id) = &message.id {
            self.id = Some(ClientId::new(id).ok_or_else(|| End::Protocol("bad client id".into()))?);
        }
        let speaks_2 = message
            .version
            .as_ref()
            .is_some_and(|v| v.iter().any(|v| v == "2"));
        self.send(&Message {
            version: Some(vec!["2".into()]),
            ..Message::new("handshake")
        })
        .await?;
        if !speaks_2 {
            self.send(&Message {
                kind: Some("warning".into()),
                privileged: true,
                value: Some(json!(
                    "unknown protocol version; this server speaks version 2"
                )),
                ..Message::new("usermessage")
            })
            .await?;
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: Result<Frame, warp::Error>) -> Result<(), End> {
        self.last_read = Instant::now();
        self.last_ping = None;
        match decode(frame)? {
            Some(message) => self.on_message(message).await,
            None => Ok(()),
        }
    }

    async fn check_liveness(&mut self) -> Result<(), End> {
        let silent = self.last_read.elapsed();
        if silent >= DEAD_AFTER {
            return Err(End::Close(1001, "no message for too long".into()));
        }
        if silent >= PING_AFTER && self.last_ping.is_none() {
            self.last_ping = Some(Instant::now());
            self.send(&Message::new("ping")).await?;
        }
        Ok(())
    }

    async fn send(&mut self, message: &Message) -> Result<(), End> {
        let text = serde_json::to_string(message).map_err(|_| End::Gone)?;
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(Frame::text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    async fn send_error(&mut self, text: &str) -> Result<(), End> {
        let message = error_message(self.id.as_ref(), text);
        self.send(&message).await
    }

    /// Says goodbye as the ending requires and leaves the group.
    async fn finish(mut self, end: End) {
        let close = match end {
            End::Gone => None,
            End::Protocol(text) => {
                tracing::debug!(client = ?self.id, "protocol error: {text}");
                let message = error_message(self.id.as_ref(), &text);
                let _ = self.send(&message).await;
                Some((1002, text))
            }
            End::Malformed(text) => {
                tracing::debug!(client = ?self.id, "malformed message: {text}");
                Some((1011, String::new()))
            }
            End::Kicked(message) => {
                let _ = self.send(&message).await;
                Some((1000, String::new()))
            }
            End::Close(code, text) => Some((code, text)),
        };
        // Leave the group before the socket closes, so the others hear of it at once.
        self.joined = None;
        if let Some((code, reason)) = close {
            close_websocket(&mut self.socket, code, reason).await;
        }
    }

    async fn on_message(&mut self, m: Message) -> Result<(), End> {
        // Anti-spoofing: a client speaks only for itself.
        if let Some(source) = &m.source
            && self.id.as_ref().is_none_or(|id| id.as_str() != source)
        {
            return Err(End::Protocol("spoofed client id".into()));
        }
        if m.kind_of_message != "join"
            && let Some(username) = &m.username
        {
            let assigned = self.joined.as_ref().map_or("", |j| j.username.as_str());
            if username != assigned {
                return Err(End::Protocol("spoofed username".into()));
            }
        }
        match m.kind_of_message.as_str() {
            "handshake" => Err(End::Protocol("duplicate handshake".into())),
            "ping" => self.send(&Message::new("pong")).await,
            "pong" => Ok(()),
            "join" => self.on_join(m).await,
            "request" => self.on_request(m).await,
            "requestStream" => self.on_request_stream(m).await,
            "offer" => self.on_offer(m).await,
            "answer" => self.on_answer(m).await,
            "ice" => self.on_ice(m).await,
            "renegotiate" => self.on_renegotiate(m).await,
            "close" => self.on_close(m).await,
            "abort" => self.on_abort(m).await,
            "chat" => self.on_chat(m).await,
            "usermessage" => self.on_user_message(m).await,
            "useraction" => self.on_user_action(m).await,
            "groupaction" => self.on_group_action(m).await,
            other => Err(End::Protocol(format!("unexpected message {other:?}"))),
        }
    }

    async fn on_join(&mut self, m: Message) -> Result<(), End> {
        let group = m.group.clone().unwrap_or_default();
        match m.kind.as_deref() {
            Some("join") => {}
            Some("leave") => {
                let Some(joined) = self.joined.take() else {
                    return Err(End::Protocol("you are not in a group".into()));
                };
                if joined.membership.group().name().as_str() != group {
                    self.joined = Some(joined);
                    return Err(End::Protocol("you are not in that group".into()));
                }
                let name = joined.membership.group().name().to_string();
                let username = joined.username.clone();
                joined.membership.leave();
                return self
                    .send(&Message {
                        kind: Some("leave".into()),
                        group: Some(name),
                        username: Some(username),
                        ..Message::new("joined")
                    })
                    .await;
            }
            _ => return Err(End::Protocol("unknown join kind".into())),
        }
        if self.joined.is_some() {
            return Err(End::Protocol("cannot join multiple groups".into()));
        }
        let Some(id) = self.id.clone() else {
            return Err(End::Protocol("a client without an id cannot join".into()));
        };
        if m.token.is_some() {
            return self
                .send_join_failure(
                    &group,
                    m.username.as_deref(),
                    "tokens are not supported by this server",
                )
                .await;
        }
        let data = match m.data {
            None | Some(Value::Null) => Default::default(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(End::Protocol("join data must be an object".into())),
        };
        let (handle, queue) = ClientHandle::new(ClientInfo {
            id,
            protocol: "galene",
            address: self.address,
            chats: true,
        });
        let username = m.username.clone().unwrap_or_default();
        let request = JoinRequest {
            group: group.clone(),
            username: username.clone(),
            password: m.password.clone(),
            client: handle,
            data,
        };
        match self.ctx.registry.join(request).await {
            Ok(membership) => {
                self.joined = Some(GroupSession {
                    membership,
                    queue,
                    username,
                    streams: media::Streams::default(),
                });
                Ok(())
            }
            Err(JoinError::Redirect(url)) => {
                self.send(&Message {
                    kind: Some("redirect".into()),
                    group: Some(group),
                    value: Some(json!(url)),
                    ..Message::new("joined")
                })
                .await
            }
            Err(error) => {
                self.send_join_failure(&group, m.username.as_deref(), &error.to_string())
                    .await
            }
        }
    }

    async fn send_join_failure(
        &mut self,
        group: &str,
        username: Option<&str>,
        text: &str,
    ) -> Result<(), End> {
        self.send(&Message {
            kind: Some("fail".into()),
            group: Some(group.to_owned()),
            username: username.map(str::to_owned),
            value: Some(json!(text)),
            ..Message::new("joined")
        })
        .await
    }

    fn membership(&self) -> Option<&Membership> {
        self.joined.as_ref().map(|j| &j.membership)
    }

    /// Reports a refused action to the client.
    async fn report(&mut self, result: Result<(), ActionError>) -> Result<(), End> {
        match result {
            Ok(()) => Ok(()),
            Err(error) => self.send_error(&error.to_string()).await,
        }
    }

    fn parse_dest(dest: Option<&str>) -> Option<Option<ClientId>> {
        match dest {
            None | Some("") => Some(None),
            Some(d) => ClientId::new(d).map(Some),
        }
    }

    async fn on_chat(&mut self, m: Message) -> Result<(), End> {
        let Some(membership) = self.membership() else {
            return self.send_error("join a group first").await;
        };
        let Some(dest) = Self::parse_dest(m.dest.as_deref()) else {
            return self
                .send_error(&ActionError::UnknownRecipient.to_string())
                .await;
        };
        let result = membership.chat(ChatRequest {
            kind: m.kind.unwrap_or_default(),
            id: m.id.filter(|id| !id.is_empty()),
            dest,
            value: m.value.unwrap_or(Value::Null),
            noecho: m.noecho,
        });
        self.report(result).await
    }

    async fn on_user_message(&mut self, m: Message) -> Result<(), End> {
        let Some(membership) = self.membership() else {
            return self.send_error("join a group first").await;
        };
        let Some(dest) = Self::parse_dest(m.dest.as_deref()) else {
            return self
                .send_error(&ActionError::UnknownRecipient.to_string())
                .await;
        };
        let result = membership.user_message(
            m.kind.unwrap_or_default(),
            dest,
            m.value.unwrap_or(Value::Null),
            m.noecho,
        );
        self.report(result).await
    }

    async fn on_user_action(&mut self, m: Message) -> Result<(), End> {
        let kind = m.kind.as_deref().unwrap_or("");
        let Some(action) = UserAction::from_name(kind) else {
            return Err(End::Protocol(format!("unknown user action {kind:?}")));
        };
        let Some(membership) = self.membership() else {
            return self.send_error("join a group first").await;
        };
        let Some(dest) = m.dest.as_deref().and_then(ClientId::new) else {
            return self.send_error(&ActionError::NoSuchUser.to_string()).await;
        };
        let result = membership.user_action(action, &dest, &m.value.unwrap_or(Value::Null));
        self.report(result).await
    }

    async fn on_group_action(&mut self, m: Message) -> Result<(), End> {
        let kind = m.kind.as_deref().unwrap_or("");
        let value = m.value.unwrap_or(Value::Null);
        let action = match kind {
            "clearchat" => match clear_chat_target(&value) {
                Some(which) => GroupAction::ClearChat(which),
                None => return self.send_error("bad value in clearchat").await,
            },
            "lock" => GroupAction::Lock(value.as_str().map(str::to_owned)),
            "unlock" => GroupAction::Unlock,
            "subgroups" => GroupAction::Subgroups,
            "setdata" => GroupAction::SetData(value),
            "record" | "unrecord" => GroupAction::Unsupported("recording"),
            "maketoken" | "edittoken" | "listtokens" => GroupAction::Unsupported("tokens"),
            other => return Err(End::Protocol(format!("unknown group action {other:?}"))),
        };
        let Some(membership) = self.membership() else {
            return self.send_error("join a group first").await;
        };
        let result = membership.group_action(action);
        self.report(result).await
    }

    async fn on_event(&mut self, event: Event) -> Result<(), End> {
        let me = self.id.clone();
        match event {
            Event::Joined(joined) => {
                let message = self.joined_message(&joined);
                self.send(&message).await
            }
            Event::ChatHistory(entries) => {
                for entry in entries {
                    let mut message = chat_message(&entry);
                    message.kind_of_message = "chathistory".into();
                    self.send(&message).await?;
                }
                Ok(())
            }
            Event::UserAdded(info) => self.send(&user_message("add", &info)).await,
            Event::UserChanged(info) => self.send(&user_message("change", &info)).await,
            Event::UserRemoved(id) => {
                self.send(&Message {
                    kind: Some("delete".into()),
                    id: Some(id.to_string()),
                    ..Message::new("user")
                })
                .await
            }
            Event::Chat(entry) => self.send(&chat_message(&entry)).await,
            Event::UserMessage(message) => self.send(&relayed_message(&message)).await,
            Event::Kicked {
                by,
                by_username,
                reason,
            } => Err(End::Kicked(Box::new(Message {
                kind: Some("kicked".into()),
                source: by.map(|b| b.to_string()),
                username: by_username,
                dest: me.map(|d| d.to_string()),
                privileged: true,
                value: Some(json!(reason)),
                ..Message::new("usermessage")
            }))),
            Event::Disconnect { reason } => Err(End::Close(1008, reason)),
            Event::StreamAdded(info) => self.on_stream_added(&info).await,
            Event::StreamRemoved { id } => self.on_stream_removed(&id).await,
            Event::StreamChanged(info) => self.on_stream_changed(&info).await,
            Event::Media {
                id,
                direction,
                serial,
                event,
            } => self.on_media_event(id, direction, serial, event).await,
            Event::UpAborted { id, reason } => self.on_up_aborted(&id, &reason).await,
            // Direct signalling between peers of other frontends, their data messages and
            // blocks: nothing for a Galène client.
            Event::Signal { .. } | Event::Data { .. } | Event::Blocked { .. } => Ok(()),
        }
    }

    fn joined_message(&self, joined: &Joined) -> Message {
        let kind = match joined.kind {
            JoinedKind::Join => "join",
            JoinedKind::Change => "change",
            JoinedKind::Leave => "leave",
        };
        Message {
            kind: Some(kind.into()),
            group: Some(joined.group.to_string()),
            username: Some(joined.username.clone()),
            permissions: Some(json!(joined.permissions)),
            status: Some(status_json(&joined.status, None)),
            data: Some(Value::Object((*joined.data).clone())),
            rtc_configuration: Some(rtc_configuration(&self.ctx.config.ice_servers())),
            ..Message::new("joined")
        }
    }
}

async fn next_event(joined: &mut Option<GroupSession>) -> Option<Event> {
    match joined {
        Some(j) => j.queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Decodes a frame: `Ok(None)` for frames that carry no message (ping, pong).
fn decode(frame: Result<Frame, warp::Error>) -> Result<Option<Message>, End> {
    let frame = match frame {
        Ok(frame) => frame,
        Err(error) => {
            if message_too_big(&error) {
                return Err(End::Close(1009, "message too big".into()));
            }
            return Err(End::Gone);
        }
    };
    if frame.is_close() {
        return Err(End::Gone);
    }
    if frame.is_ping() || frame.is_pong() {
        return Ok(None);
    }
    let Ok(text) = frame.to_str() else {
        return Err(End::Close(1003, "binary messages are not supported".into()));
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| End::Malformed(e.to_string()))
}
