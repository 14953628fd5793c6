//! GStreamer's signalling protocol on `/gst` (shared/protocols/gstreamer.md), as GStreamer's
//! `webrtcbin` examples speak it: peers register with `HELLO <uid>`, then either call one
//! other peer (`SESSION <uid>`, after which everything is relayed verbatim) or join a room
//! (`ROOM <id>`, then `ROOM_PEER_MSG` to one member at a time).
//!
//! The registered peers are a directory shared by every `/gst` connection ([`Peers`]); a
//! session pairs two of them outside any group. A room is the group of the same name,
//! joined through the core like any client (`protocol: "gstreamer"`), so that a Galène
//! client in the group sees the peers and an operator can kick them. Room messages travel
//! as the core's direct signals; the peer lists show only members of this protocol.
//!
//! One task per connection owns the socket: it reads frames, acts on the directory or the
//! core, and drains the peer's event queue (session messages, room events) into text lines.

mod directory;
mod protocol;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use warp::ws::{Message as Frame, WebSocket};

pub use directory::Peers;
use directory::{Backlog, PROTOCOL, RelayError, SessionError, State};
use protocol::{Command, quote, valid_room_id, valid_uid};

use super::{Context, WRITE_TIMEOUT, close_websocket, message_too_big};
use crate::group::{
    ClientHandle, ClientId, ClientInfo, Event, EventQueue, JoinRequest, Membership,
};

/// The first message, `HELLO`, must come within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// How often liveness is checked.
const LIVENESS_TICK: Duration = Duration::from_secs(5);
/// Silence after which the peer is pinged (the original server's keepalive), and again
/// after each further period of silence.
const PING_AFTER: Duration = Duration::from_secs(30);
/// Silence (not even a pong) after which the peer is declared dead.
const DEAD_AFTER: Duration = Duration::from_secs(90);
/// Why a peer's connection closes when the other side of its session left.
const SESSION_OVER: &str = "the other peer left the session";

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// A bad `HELLO`: this `ERROR` line, then close 1002 with the original server's reason.
    BadHello { error: String, reason: &'static str },
    /// Close with this code and reason.
    Close(u16, String),
    /// The socket is gone; nothing more can be said.
    Gone,
}

/// A peer after `HELLO`: its id, its handle in the directory and the core, its queue.
struct Registered {
    id: ClientId,
    handle: ClientHandle,
    queue: EventQueue,
    backlog: Arc<Backlog>,
}

/// The room a peer is in: its membership of the group, and the other GStreamer peers it
/// has been told of (`ROOM_OK`, `ROOM_PEER_JOINED`), in the order they joined.
struct Room {
    membership: Membership,
    peers: Vec<ClientId>,
}

/// One connection's state.
struct Session {
    ctx: Arc<Context>,
    socket: WebSocket,
    address: Option<SocketAddr>,
    me: Option<Registered>,
    room: Option<Room>,
    last_read: Instant,
    last_ping: Option<Instant>,
}

/// What a frame carries.
enum Input {
    Text(String),
    Binary,
    /// Control frames (ping, pong): nothing to answer.
    Nothing,
}

/// Serves one WebSocket connection until it ends.
pub async fn serve(socket: WebSocket, ctx: Arc<Context>, address: Option<SocketAddr>) {
    let mut session = Session {
        ctx,
        socket,
        address,
        me: None,
        room: None,
        last_read: Instant::now(),
        last_ping: None,
    };
    let end = session.run().await;
    session.finish(end).await;
}

impl Session {
    async fn run(&mut self) -> End {
        if let Err(end) = self.hello().await {
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
                Some(event) = next_event(&mut self.me) => self.on_event(event).await,
                _ = tick.tick() => self.check_liveness().await,
                _ = shutdown.cancelled() => {
                    Err(End::Close(1001, "the server is shutting down".into()))
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Registers the peer: `HELLO <uid>` with a free, well-formed uid, answered `HELLO`.
    async fn hello(&mut self) -> Result<(), End> {
        let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
        let text = loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => {
                    return Err(End::BadHello {
                        error: "ERROR no HELLO received in time".into(),
                        reason: "invalid protocol",
                    });
                }
                Ok(None) => return Err(End::Gone),
                Ok(Some(frame)) => frame,
            };
            match decode(frame)? {
                Input::Text(text) => break text,
                Input::Binary => break String::new(),
                Input::Nothing => continue,
            }
        };
        self.last_read = Instant::now();
        let Command::Hello(uid) = protocol::parse(&text) else {
            return Err(End::BadHello {
                error: "ERROR expected HELLO <uid>".into(),
                reason: "invalid protocol",
            });
        };
        let invalid = |error: String| End::BadHello {
            error,
            reason: "invalid peer uid",
        };
        let id = ClientId::new(uid)
            .filter(|_| valid_uid(uid))
            .ok_or_else(|| invalid(format!("ERROR invalid peer uid {}", quote(uid))))?;
        let (handle, queue) = ClientHandle::new(ClientInfo {
            id: id.clone(),
            protocol: PROTOCOL,
            address: self.address,
            chats: false,
        });
        let Some(backlog) = self.ctx.gst_peers.register(&handle) else {
            return Err(invalid(format!(
                "ERROR peer {} is already registered",
                quote(uid)
            )));
        };
        tracing::debug!(peer = %id, address = ?self.address, "GStreamer peer registered");
        self.me = Some(Registered {
            id,
            handle,
            queue,
            backlog,
        });
        self.send("HELLO").await
    }

    async fn on_frame(&mut self, frame: Result<Frame, warp::Error>) -> Result<(), End> {
        self.last_read = Instant::now();
        self.last_ping = None;
        match decode(frame)? {
            Input::Text(text) => self.on_text(&text).await,
            Input::Binary => self.send_error("binary messages are not supported").await,
            Input::Nothing => Ok(()),
        }
    }

    fn me(&self) -> Result<&Registered, End> {
        self.me.as_ref().ok_or(End::Gone)
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        // States only move forward (idle, then a session or a room, then ended), so this
        // looks again at most once or twice, when another peer changed ours meanwhile.
        loop {
            let me = self.me()?.id.clone();
            match self.ctx.gst_peers.state(&me) {
                State::Ended => return Err(session_over()),
                State::Session(other) => {
                    return match self.ctx.gst_peers.relay_in_session(&me, text) {
                        Ok(()) => Ok(()),
                        Err(RelayError::Gone) => Err(session_over()),
                        Err(RelayError::Backlogged) => self.send_backlogged(other.as_str()).await,
                    };
                }
                State::Room(_) => return self.in_room(text).await,
                State::Idle => {
                    if self.when_idle(&me, text).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A message from a registered peer in neither a session nor a room. `Ok(false)` if
    /// its state changed meanwhile and the message must be looked at again.
    async fn when_idle(&mut self, me: &ClientId, text: &str) -> Result<bool, End> {
        match protocol::parse(text) {
            Command::Hello(_) => {
                self.send_error(&format!("already registered as {}", quote(me.as_str())))
                    .await?
            }
            Command::Session(uid) if !valid_uid(uid) => {
                self.send_error(&format!("invalid peer uid {}", quote(uid)))
                    .await?
            }
            Command::Session(uid) => match self.ctx.gst_peers.start_session(me, uid) {
                Ok(()) => {
                    tracing::debug!(peer = %me, callee = uid, "GStreamer session");
                    self.send("SESSION_OK").await?
                }
                Err(SessionError::NotIdle) => return Ok(false),
                Err(SessionError::NotFound) => {
                    self.send_error(&format!("peer {} not found", quote(uid)))
                        .await?
                }
                Err(SessionError::Yourself) => {
                    self.send_error("cannot start a session with yourself")
                        .await?
                }
                Err(SessionError::Busy) => {
                    self.send_error(&format!("peer {} busy", quote(uid)))
                        .await?
                }
            },
            Command::OfferRequest => {
                self.send_error("OFFER_REQUEST is only valid in a session")
                    .await?
            }
            Command::Room(id) => return self.join_room(me, id).await,
            Command::RoomPeerMsg { .. } | Command::RoomPeerList => {
                self.send_error("not in a room").await?
            }
            Command::Unknown(word) => {
                self.send_error(&format!("unknown message {}", quote(word)))
                    .await?
            }
        }
        Ok(true)
    }

    /// `ROOM <id>`: joins the group of that name and answers `ROOM_OK` with the GStreamer
    /// peers already there.
    async fn join_room(&mut self, me: &ClientId, id: &str) -> Result<bool, End> {
        if !valid_room_id(id) {
            self.send_error(&format!("invalid room id {}", quote(id)))
                .await?;
            return Ok(true);
        }
        // Busy from now on, so that nobody starts a session with us while we join.
        if !self.ctx.gst_peers.enter_room(me, id) {
            return Ok(false);
        }
        let handle = self.me()?.handle.clone();
        let request = JoinRequest {
            group: id.to_owned(),
            username: me.to_string(),
            password: None,
            client: handle,
            data: Default::default(),
        };
        match self
            .ctx
            .registry
            .join_room(request, self.ctx.gst_rooms)
            .await
        {
            Ok(membership) => {
                // Members are in the order they joined: those before us were there
                // already; those after us get announced by their `UserAdded` event.
                let peers: Vec<ClientId> = membership
                    .members()
                    .into_iter()
                    .take_while(|m| &m.id != me)
                    .filter(|m| m.protocol == PROTOCOL)
                    .map(|m| m.id)
                    .collect();
                let line = format!("ROOM_OK {}", join_ids(&peers));
                tracing::debug!(peer = %me, room = id, "GStreamer peer joined a room");
                self.room = Some(Room { membership, peers });
                self.send(&line).await?;
            }
            Err(error) => {
                self.ctx.gst_peers.leave_room(me);
                self.send_error(&format!("cannot join room {}: {error}", quote(id)))
                    .await?;
            }
        }
        Ok(true)
    }

    /// In a room, only `ROOM_PEER_MSG` and `ROOM_PEER_LIST` are accepted.
    async fn in_room(&mut self, text: &str) -> Result<(), End> {
        match protocol::parse(text) {
            Command::RoomPeerMsg { peer, message } if !peer.is_empty() && !message.is_empty() => {
                self.room_peer_msg(peer, message).await
            }
            Command::RoomPeerMsg { .. } => {
                self.send_error("expected ROOM_PEER_MSG <peer uid> <message>")
                    .await
            }
            Command::RoomPeerList => {
                let peers = self.room.as_ref().map(|r| join_ids(&r.peers));
                self.send(&format!("ROOM_PEER_LIST {}", peers.unwrap_or_default()))
                    .await
            }
            _ => self.send_error("invalid msg, already in room").await,
        }
    }

    async fn room_peer_msg(&mut self, peer: &str, message: &str) -> Result<(), End> {
        let me = self.me()?.id.clone();
        let Some(room) = self.room.as_ref() else {
            return self.send_error("not in a room").await;
        };
        let Some(dest) = room.peers.iter().find(|p| p.as_str() == peer).cloned() else {
            let error = if peer == me.as_str() {
                "cannot send a message to yourself".to_owned()
            } else if self.ctx.gst_peers.is_registered(peer) {
                format!("peer {} is not in the room", quote(peer))
            } else {
                format!("peer {} not found", quote(peer))
            };
            return self.send_error(&error).await;
        };
        let backlog = match self.ctx.gst_peers.reserve(&dest, message.len()) {
            Ok(backlog) => backlog,
            Err(RelayError::Backlogged) => return self.send_backlogged(peer).await,
            Err(RelayError::Gone) => {
                return self
                    .send_error(&format!("peer {} not found", quote(peer)))
                    .await;
            }
        };
        if room
            .membership
            .signal(&dest, PROTOCOL, message.into())
            .is_err()
        {
            backlog.release(message.len());
            return self
                .send_error(&format!("peer {} is not in the room", quote(peer)))
                .await;
        }
        Ok(())
    }

    async fn on_event(&mut self, event: Event) -> Result<(), End> {
        match event {
            Event::Signal {
                from,
                protocol,
                payload,
                ..
            } if protocol == PROTOCOL => {
                let me = self.me()?;
                me.backlog.release(payload.len());
                if self.room.is_some() {
                    return self.send(&format!("ROOM_PEER_MSG {from} {payload}")).await;
                }
                // Outside a room, signals come from the session's other side, including
                // what it said just before it left.
                match self.ctx.gst_peers.state(&me.id) {
                    State::Session(other) if other != from => Ok(()),
                    State::Session(_) | State::Ended => self.send(&payload).await,
                    State::Idle | State::Room(_) => Ok(()),
                }
            }
            Event::UserAdded(info) => {
                let me = self.me()?.id.clone();
                let Some(room) = self.room.as_mut() else {
                    return Ok(());
                };
                if info.protocol != PROTOCOL || info.id == me || room.peers.contains(&info.id) {
                    return Ok(());
                }
                room.peers.push(info.id.clone());
                self.send(&format!("ROOM_PEER_JOINED {}", info.id)).await
            }
            Event::UserRemoved(id) => {
                let Some(room) = self.room.as_mut() else {
                    return Ok(());
                };
                let Some(index) = room.peers.iter().position(|p| p == &id) else {
                    return Ok(());
                };
                room.peers.remove(index);
                self.send(&format!("ROOM_PEER_LEFT {id}")).await
            }
            Event::Kicked {
                by_username,
                reason,
                ..
            } => {
                let text = match by_username {
                    Some(by) => format!("kicked out of the room by {by}: {reason}"),
                    None => format!("kicked out of the room: {reason}"),
                };
                Err(End::Close(1000, text))
            }
            Event::Disconnect { reason } => {
                let me = self.me()?;
                if self.ctx.gst_peers.state(&me.id) == State::Ended {
                    Err(session_over())
                } else {
                    Err(End::Close(1008, reason))
                }
            }
            // Group life that a GStreamer peer has no words for: chat, streams, other
            // protocols' signals, permission changes.
            _ => Ok(()),
        }
    }

    async fn check_liveness(&mut self) -> Result<(), End> {
        let silent = self.last_read.elapsed();
        if silent >= DEAD_AFTER {
            return Err(End::Close(1001, "no message for too long".into()));
        }
        if silent >= PING_AFTER && self.last_ping.is_none_or(|p| p.elapsed() >= PING_AFTER) {
            self.last_ping = Some(Instant::now());
            self.send_frame(Frame::ping(Vec::new())).await?;
        }
        Ok(())
    }

    async fn send(&mut self, text: &str) -> Result<(), End> {
        self.send_frame(Frame::text(text)).await
    }

    async fn send_frame(&mut self, frame: Frame) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    async fn send_error(&mut self, text: &str) -> Result<(), End> {
        self.send(&format!("ERROR {text}")).await
    }

    async fn send_backlogged(&mut self, peer: &str) -> Result<(), End> {
        self.send_error(&format!(
            "peer {} is not reading its messages; message dropped",
            quote(peer)
        ))
        .await
    }

    /// Says goodbye as the ending requires, leaves the room and the directory.
    async fn finish(mut self, end: End) {
        let close = match end {
            End::Gone => None,
            End::BadHello { error, reason } => {
                tracing::debug!(address = ?self.address, "bad HELLO: {error}");
                let _ = self.send(&error).await;
                Some((1002, reason.to_owned()))
            }
            End::Close(code, reason) => Some((code, reason)),
        };
        // Leave before the socket closes, so that the others hear of it at once.
        self.room = None;
        if let Some(me) = &self.me {
            if let Some(other) = self.ctx.gst_peers.unregister(&me.handle) {
                other.send(Event::Disconnect {
                    reason: SESSION_OVER.into(),
                });
            }
            tracing::debug!(peer = %me.id, "GStreamer peer left");
        }
        if let Some((code, reason)) = close {
            close_websocket(&mut self.socket, code, reason).await;
        }
    }
}

fn session_over() -> End {
    End::Close(1000, SESSION_OVER.into())
}

fn join_ids(ids: &[ClientId]) -> String {
    ids.iter()
        .map(ClientId::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn next_event(me: &mut Option<Registered>) -> Option<Event> {
    match me {
        Some(me) => me.queue.recv().await,
        None => std::future::pending().await,
    }
}

fn decode(frame: Result<Frame, warp::Error>) -> Result<Input, End> {
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
        return Ok(Input::Nothing);
    }
    match frame.to_str() {
        Ok(text) => Ok(Input::Text(text.to_owned())),
        Err(()) => Ok(Input::Binary),
    }
}
