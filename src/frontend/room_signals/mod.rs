//! Room Signals on `/room-signals` (shared/protocols/room-signals.md, with the WebRTC
//! signals of the same documentation set): JSON signals of mobile apps in rooms of four
//! types. A room is the group of the same name; a session (`ss.sessionId`) joins it as a
//! core client of that id whose username is `ss.userId`, so the clients of every
//! protocol meet in it. In `m2m`, `a2m` and `p2m` rooms media goes through our SFU (a
//! publisher's `OFFER` publishes a stream whose id is its session id, `WATCH` subscribes);
//! in `p2p` rooms the two peers' WebRTC signals are relayed verbatim.
//!
//! One task per connection owns the socket, reads signals, and drains two queues: the
//! core's events for its session and the [`hub`]'s notices (roles, relayed signals), the
//! state the Room Signals sessions of a room share.

mod hub;
mod media;
mod protocol;
mod publish;
mod room;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use warp::ws::{Message as Frame, WebSocket};

pub use hub::Hub;
use hub::Notice;
use protocol::{Channel, Kind, Refusal, Signal, code, error_frame, frame};

use super::{Context, WRITE_TIMEOUT, close_websocket, message_too_big};
use crate::group::{Event, EventQueue, GroupName, Membership};

/// The protocol name of Room Signals sessions in the core.
pub const PROTOCOL: &str = "room-signals";
/// A session the server hears nothing from for this long is gone (apps send a heartbeat
/// every 3 s).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often silence is checked.
const SILENCE_CHECK: Duration = Duration::from_secs(1);

/// How a connection ends.
enum End {
    Close(u16, String),
    /// The socket is gone.
    Gone,
}

/// A session in a room.
struct Room {
    group: GroupName,
    /// `rid` as the app wrote it.
    rid: String,
    channel: Channel,
    session: String,
    membership: Membership,
    queue: EventQueue,
    notices: mpsc::UnboundedReceiver<Notice>,
    /// The publisher list last sent to the app, so that an unchanged list is not sent.
    last_list: Option<Value>,
    /// The session's published stream, if it publishes.
    up: Option<media::Up>,
    /// The streams watched, by stream id.
    watching: HashMap<String, Watch>,
}

/// A subscription to a publisher's stream.
struct Watch {
    serial: u64,
    /// Whether the app answered our latest offer.
    answered: bool,
}

struct Session {
    ctx: Arc<Context>,
    socket: WebSocket,
    address: Option<SocketAddr>,
    room: Option<Room>,
    /// The `rid` of the room this connection was in until it left it (`LEAVE`, a kick).
    left: Option<String>,
    last_heard: Instant,
}

/// Serves one WebSocket connection until it ends.
pub async fn serve(socket: WebSocket, ctx: Arc<Context>, address: Option<SocketAddr>) {
    let mut session = Session {
        ctx,
        socket,
        address,
        room: None,
        left: None,
        last_heard: Instant::now(),
    };
    let end = session.run().await;
    session.leave_room(true);
    if let End::Close(code, reason) = end {
        close_websocket(&mut session.socket, code, reason).await;
    }
}

/// What a room's queues have for the connection.
enum Input {
    Core(Event),
    Hub(Notice),
}

async fn next_input(room: &mut Option<Room>) -> Input {
    match room {
        Some(room) => tokio::select! {
            Some(event) = room.queue.recv() => Input::Core(event),
            Some(notice) = room.notices.recv() => Input::Hub(notice),
            else => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Session {
    async fn run(&mut self) -> End {
        let mut tick = tokio::time::interval(SILENCE_CHECK);
        let shutdown = self.ctx.shutdown.clone();
        loop {
            let step = tokio::select! {
                frame = self.socket.next() => self.on_frame(frame).await,
                input = next_input(&mut self.room) => match input {
                    Input::Core(event) => self.on_core_event(event).await,
                    Input::Hub(notice) => self.on_notice(notice).await,
                },
                _ = tick.tick() => self.check_silence(),
                _ = shutdown.cancelled() => {
                    Err(End::Close(1001, "the server is shutting down".into()))
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// A session that has said nothing for [`HEARTBEAT_TIMEOUT`] is gone.
    fn check_silence(&self) -> Result<(), End> {
        if self.last_heard.elapsed() < HEARTBEAT_TIMEOUT {
            return Ok(());
        }
        tracing::debug!(address = ?self.address, "Room Signals session silent: gone");
        Err(End::Close(1000, "no heartbeat for 10 s".into()))
    }

    async fn on_frame(&mut self, message: Option<Result<Frame, warp::Error>>) -> Result<(), End> {
        let message = match message {
            None => return Err(End::Gone),
            Some(Err(error)) if message_too_big(&error) => {
                return Err(End::Close(1009, "message too big".into()));
            }
            Some(Err(_)) => return Err(End::Gone),
            Some(Ok(message)) => message,
        };
        if message.is_close() {
            return Err(End::Gone);
        }
        if message.is_ping() || message.is_pong() {
            return Ok(());
        }
        let Ok(text) = message.to_str() else {
            let msg = "binary frames are not signals: send JSON text";
            return self
                .send(&error_frame(code::INVALID_SIGNAL, "", &Value::Null, msg))
                .await;
        };
        self.last_heard = Instant::now();
        let signal = match protocol::parse(text) {
            Ok(signal) => signal,
            Err(unreadable) => return self.send(&unreadable.to_frame()).await,
        };
        let reply = match self.check_room(&signal) {
            Ok(()) => self.dispatch(&signal).await,
            Err(refusal) => Err(refusal),
        };
        match reply {
            Ok(Some(body)) => self.send(&frame(signal.kind.name(), body)).await,
            Ok(None) => Ok(()),
            Err(refusal) => {
                tracing::debug!(
                    signal = signal.kind.name(),
                    code = refusal.code,
                    "Room Signals refusal: {}",
                    refusal.msg
                );
                let error = error_frame(
                    refusal.code,
                    signal.kind.name(),
                    &signal.req(),
                    &refusal.msg,
                );
                self.send(&error).await
            }
        }
    }

    /// A signal other than `JOIN` needs a room, and names it (if it does) as joined.
    ///
    /// A session that left its room (`LEAVE`, or kicked) is told 4001 `ROOM_NOT_FOUND`,
    /// which every table lists and which tells the app to leave the room's screen; one
    /// that never joined, 2001 (JOIN comes first). A `ch` other than the room's is 2002,
    /// except for `HEARTBEAT`, whose table has no 2002: 2001 there.
    fn check_room(&self, signal: &Signal) -> Result<(), Refusal> {
        if signal.kind == Kind::Join {
            return Ok(());
        }
        let Some(room) = &self.room else {
            if let Some(rid) = &self.left {
                return Err(Refusal::new(
                    code::ROOM_NOT_FOUND,
                    format!(
                        "this session is no longer in room {rid:?} (it left or was removed): JOIN again before {}",
                        signal.kind.name()
                    ),
                ));
            }
            return Err(Refusal::invalid(format!(
                "not in a room: send JOIN before {}",
                signal.kind.name()
            )));
        };
        let wrong_channel = if signal.kind == Kind::Heartbeat {
            code::INVALID_SIGNAL
        } else {
            code::UNSUPPORTED_CHANNEL
        };
        if let Some(rid) = signal.string("rid")?
            && rid != room.rid
        {
            return Err(Refusal::new(
                code::ROOM_NOT_FOUND,
                format!("not in room {rid:?}: this session is in {:?}", room.rid),
            ));
        }
        let channel = signal
            .channel()
            .map_err(|refusal| Refusal::new(wrong_channel, refusal.msg))?;
        if let Some(channel) = channel
            && channel != room.channel
        {
            return Err(Refusal::new(
                wrong_channel,
                format!(
                    "room {} is a {} room, not {}",
                    room.rid,
                    room.channel.name(),
                    channel.name()
                ),
            ));
        }
        Ok(())
    }

    /// Carries out a signal; returns the ack's body, if it has an ack.
    async fn dispatch(&mut self, signal: &Signal) -> Result<Option<Value>, Refusal> {
        match signal.kind {
            Kind::Join => self.join(signal).await.map(Some),
            Kind::Leave => {
                let rid = self.rid();
                self.leave_room(true);
                Ok(Some(serde_json::json!({"rid": rid})))
            }
            Kind::Update => self.update(signal).map(Some),
            Kind::Heartbeat => self.heartbeat(signal),
            Kind::Kick => self.kick(signal).map(Some),
            Kind::PublishRequest => self.publish_request(signal).map(Some),
            Kind::PublishAccept => self.publish_answer(signal, true).map(Some),
            Kind::PublishReject => self.publish_answer(signal, false).map(Some),
            Kind::Offer => self.offer(signal).await.map(Some),
            Kind::Answer => self.answer(signal).await.map(Some),
            Kind::Ice => self.candidate(signal).await.map(|()| None),
            Kind::Watch => self.watch_signal(signal).await.map(Some),
        }
    }

    /// The session's room, for signals that need one.
    fn joined(&self) -> Result<&Room, Refusal> {
        self.room
            .as_ref()
            .ok_or_else(|| Refusal::invalid("not in a room"))
    }

    fn joined_mut(&mut self) -> Result<&mut Room, Refusal> {
        self.room
            .as_mut()
            .ok_or_else(|| Refusal::invalid("not in a room"))
    }

    fn rid(&self) -> String {
        self.room
            .as_ref()
            .map(|r| r.rid.clone())
            .unwrap_or_default()
    }

    /// Leaves the room, if in one: the core releases the session's media, and the
    /// others get the new publisher list. With `remember`, signals naming the session
    /// are told it left.
    fn leave_room(&mut self, remember: bool) {
        if let Some(room) = self.room.take() {
            tracing::debug!(session = room.session, room = %room.group, "Room Signals session left");
            self.left = Some(room.rid.clone());
            let Room {
                group,
                session,
                membership,
                ..
            } = room;
            membership.leave();
            self.ctx.room_signals.leave(&group, &session, remember);
        }
    }

    async fn send(&mut self, value: &Value) -> Result<(), End> {
        let text = value.to_string();
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(Frame::text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    async fn on_notice(&mut self, notice: Notice) -> Result<(), End> {
        match notice {
            Notice::ListChanged => self.send_list_if_changed().await,
            Notice::Frame(value) => self.send(&value).await,
            Notice::Kicked { from } => {
                let rid = self.rid();
                self.leave_room(true);
                self.send(&frame(
                    "KICK",
                    serde_json::json!({"rid": rid, "from": from}),
                ))
                .await
            }
        }
    }

    /// `PUBLISH_LIST_CHANGED`, unless the app has this list already.
    async fn send_list_if_changed(&mut self) -> Result<(), End> {
        let Some(list) = self.publisher_list() else {
            return Ok(());
        };
        let Some(room) = self.room.as_mut() else {
            return Ok(());
        };
        if room.last_list.as_ref() == Some(&list) {
            return Ok(());
        }
        room.last_list = Some(list.clone());
        let body = serde_json::json!({"rid": room.rid, "pps": list});
        self.send(&frame("PUBLISH_LIST_CHANGED", body)).await
    }

    async fn on_core_event(&mut self, event: Event) -> Result<(), End> {
        match event {
            Event::StreamAdded(_) | Event::StreamRemoved { .. } | Event::UserRemoved(_) => {
                self.send_list_if_changed().await
            }
            Event::StreamChanged(info) => {
                self.refresh_watch(&info.id).await?;
                self.send_list_if_changed().await
            }
            Event::Media {
                id,
                direction,
                serial,
                event,
            } => self.on_media(id, direction, serial, event).await,
            Event::Kicked {
                by_username,
                reason,
                ..
            } => {
                let rid = self.rid();
                self.leave_room(true);
                let from = serde_json::json!({"userId": by_username.unwrap_or_default()});
                self.send(&frame(
                    "KICK",
                    serde_json::json!({"rid": rid, "from": from, "msg": reason}),
                ))
                .await
            }
            Event::Disconnect { reason } => Err(End::Close(1001, reason)),
            Event::UpAborted { id, .. } => {
                if let Some(room) = self.room.as_mut()
                    && id == room.session
                {
                    room.up = None;
                }
                self.send_list_if_changed().await
            }
            _ => Ok(()),
        }
    }
}
