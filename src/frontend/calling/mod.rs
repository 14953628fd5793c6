//! calling-signaling on `/calling` (shared/protocols/calling-signaling.md), in the 2015
//! document's dialect by default and in the released server's (rtc-lib's) with
//! `?dialect=rtc-lib`.
//!
//! One task per connection owns the socket. A calling room is a group of the core: the
//! connection holds one membership per room it is in, each with its own event queue so
//! every core event is known to be about that room. A peer's status is its member's
//! user data (key `calling-status`, and `calling-pending` while only invited), the room
//! status is the group's data, and `room_peer_to` is a core signal. Namespaces and
//! invitations exist only in this protocol: they live in the shared [`Hub`].

mod hub;
mod liveness;
mod message;
mod requests;
mod room;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warp::ws::{Message as Frame, WebSocket};

pub use hub::Hub;
pub use message::Dialect;

use super::{Context, WRITE_TIMEOUT, close_websocket, message_too_big};
use crate::group::{ClientId, ClientInfo, Event, EventQueue, GroupName};
use hub::Notice;
use liveness::{Due, Liveness};
use message::Parsed;
use room::{Change, Room};

/// The `protocol` of calling members and of their signals in the core.
pub const PROTOCOL: &str = "calling";
/// What `hello` says the server is.
const SERVER_NAME: &str = concat!("cinnabar ", env!("CARGO_PKG_VERSION"));
/// Rooms one connection may be in (invitations included).
const MAX_ROOMS: usize = 64;

/// The core events of every room the connection is in, tagged with the room.
type Events = SelectAll<BoxStream<'static, (GroupName, u64, Event)>>;

/// How a session ends.
#[derive(Debug)]
enum End {
    /// The socket is gone; nothing more can be said.
    Gone,
    Close(u16, String),
    /// An `error` message saying why, then a normal close.
    Error(String),
}

struct Session {
    ctx: Arc<Context>,
    socket: WebSocket,
    dialect: Dialect,
    id: ClientId,
    address: Option<SocketAddr>,
    rooms: BTreeMap<GroupName, Room>,
    events: Events,
    notices: mpsc::Receiver<Notice>,
    /// Cancelled by the hub when this connection does not read its notices.
    kill: CancellationToken,
    /// The global status (`status`).
    global: Map<String, Value>,
    live: Liveness,
    next_serial: u64,
    /// Events held back while a room was joined, handled after the answer.
    deferred: Vec<(GroupName, u64, Event)>,
}

/// Serves one WebSocket connection; `query` is the URL's query string.
pub async fn serve(
    mut socket: WebSocket,
    ctx: Arc<Context>,
    address: Option<SocketAddr>,
    query: String,
) {
    let dialect = match Dialect::from_query(&query) {
        Ok(dialect) => dialect,
        Err(error) => {
            let text = message::error(&error).to_string();
            let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Frame::text(text))).await;
            close_websocket(&mut socket, 1008, "unknown dialect".into()).await;
            return;
        }
    };
    let id = ClientId::random();
    let kill = CancellationToken::new();
    let notices = ctx.calling.connect(id.clone(), address, kill.clone());
    let mut session = Session {
        ctx,
        socket,
        dialect,
        id,
        address,
        rooms: BTreeMap::new(),
        events: SelectAll::new(),
        notices,
        kill,
        global: Map::new(),
        live: Liveness::new(Instant::now()),
        next_serial: 0,
        deferred: Vec::new(),
    };
    let end = session.run().await;
    session.finish(end).await;
}

impl Session {
    async fn run(&mut self) -> End {
        let hello = message::hello(&self.id, SERVER_NAME);
        if let Err(end) = self.send(&hello).await {
            return end;
        }
        let shutdown = self.ctx.shutdown.clone();
        let kill = self.kill.clone();
        loop {
            let check = tokio::time::Instant::from_std(self.live.next_check());
            let step = tokio::select! {
                frame = self.socket.next() => match frame {
                    None => Err(End::Gone),
                    Some(frame) => self.on_frame(frame).await,
                },
                Some((room, serial, event)) = self.events.next() => {
                    self.on_event(room, serial, event).await
                }
                Some(notice) = self.notices.recv() => self.on_notice(notice).await,
                _ = tokio::time::sleep_until(check) => self.on_timer().await,
                _ = kill.cancelled() => Err(End::Close(1008, "too many undelivered messages".into())),
                _ = shutdown.cancelled() => Err(End::Close(1001, "the server is shutting down".into())),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Leaves every room, then the hub (namespaces hear of it, invitations end), then
    /// closes the socket as the ending requires.
    async fn finish(mut self, end: End) {
        let close = match end {
            End::Gone => None,
            End::Close(code, reason) => Some((code, reason)),
            End::Error(text) => {
                let _ = self.send(&message::error(&text)).await;
                Some((1000, String::new()))
            }
        };
        for name in self.rooms.keys().cloned().collect::<Vec<_>>() {
            self.remove_room(&name);
        }
        self.ctx.calling.disconnect(&self.id);
        if let Some((code, reason)) = close {
            close_websocket(&mut self.socket, code, reason).await;
        }
    }

    async fn send(&mut self, message: &Value) -> Result<(), End> {
        let text = message.to_string();
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(Frame::text(text))).await {
            Ok(Ok(())) => {
                self.live.sent(Instant::now());
                Ok(())
            }
            _ => Err(End::Gone),
        }
    }

    async fn on_frame(&mut self, frame: Result<Frame, warp::Error>) -> Result<(), End> {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) if message_too_big(&error) => {
                return Err(End::Close(1009, "message too big".into()));
            }
            Err(_) => return Err(End::Gone),
        };
        self.live.read(Instant::now());
        if frame.is_close() {
            return Err(End::Gone);
        }
        if frame.is_ping() || frame.is_pong() {
            return Ok(());
        }
        let Ok(text) = frame.to_str() else {
            let message = message::error("Binary messages are not supported");
            return self.send(&message).await;
        };
        match message::parse(text, self.dialect) {
            Parsed::Unanswerable(error) => self.send(&message::error(&error)).await?,
            Parsed::Request { tid, request } => {
                let result = match request {
                    Ok(request) => self.handle(request).await,
                    Err(bad) => Err(bad.text(self.dialect)),
                };
                let reply = match (tid, result) {
                    (Some(tid), Ok(data)) => Some(message::answer(self.dialect, &tid, data)),
                    (Some(tid), Err(error)) => Some(message::error_answer(&tid, &error)),
                    (None, Ok(_)) => None,
                    // No tid to answer to: the error still reaches the client.
                    (None, Err(error)) => Some(message::error(&error)),
                };
                if let Some(reply) = reply {
                    self.send(&reply).await?;
                }
            }
        }
        self.run_deferred().await
    }

    async fn run_deferred(&mut self) -> Result<(), End> {
        for (room, serial, event) in std::mem::take(&mut self.deferred) {
            self.on_event(room, serial, event).await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, name: GroupName, serial: u64, event: Event) -> Result<(), End> {
        let Some(room) = self.rooms.get_mut(&name) else {
            return Ok(());
        };
        if room.serial != serial {
            return Ok(());
        }
        match room.apply(event) {
            Change::State(messages) => {
                self.ctx.calling.reconcile(&name, &room.membership);
                for message in messages {
                    self.send(&message).await?;
                }
                Ok(())
            }
            Change::Message(message) => self.send(&message).await,
            Change::End(reason) => Err(End::Error(reason)),
            Change::Nothing => Ok(()),
        }
    }

    async fn on_notice(&mut self, notice: Notice) -> Result<(), End> {
        match notice {
            Notice::Namespace { namespace, event } => {
                let message = event.to_json(&namespace, self.dialect);
                self.send(&message).await
            }
            Notice::Invite(incoming) => self.on_invite(*incoming).await,
            Notice::InviteResponse { handle, accepted } => {
                let handle = message::handle(self.dialect, handle);
                let message =
                    json!({"type": "invite_response", "handle": handle, "accepted": accepted});
                self.send(&message).await
            }
            Notice::InviteCancelled { handle } => {
                let Some(name) = self.pending_room(handle) else {
                    return Ok(());
                };
                self.remove_room(&name);
                let handle = message::handle(self.dialect, handle);
                self.send(&json!({"type": "invite_cancelled", "handle": handle}))
                    .await
            }
        }
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        while let Some(due) = self.live.due(Instant::now()) {
            match due {
                Due::WsPing => {
                    let ping = self.socket.send(Frame::ping(Vec::new()));
                    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, ping).await, Ok(Ok(()))) {
                        return Err(End::Gone);
                    }
                }
                Due::Ping => self.send(&json!({"type": "ping"})).await?,
                Due::Close(reason) => return Err(End::Close(1001, reason.into())),
            }
        }
        Ok(())
    }

    /// What the core is told about this client when it joins (or is invited to) a room.
    fn client_info(&self, id: ClientId, address: Option<SocketAddr>) -> ClientInfo {
        ClientInfo {
            id,
            protocol: PROTOCOL,
            address,
            chats: false,
        }
    }

    /// Takes a joined room in: its events flow from now on, starting with `first`.
    fn add_room(&mut self, room: Room, queue: EventQueue, first: Option<Event>) {
        let name = room.name.clone();
        let serial = room.serial;
        if let Some(event) = first {
            self.deferred.push((name.clone(), serial, event));
        }
        let tag = name.clone();
        let stream = futures_util::stream::unfold(queue, |mut queue| async move {
            let event = queue.recv().await?;
            Some((event, queue))
        })
        .map(move |event| (tag.clone(), serial, event));
        self.events.push(stream.boxed());
        self.rooms.insert(name, room);
    }

    /// Leaves a room (or drops an invitation to it).
    fn remove_room(&mut self, name: &GroupName) {
        if self.rooms.remove(name).is_some() {
            self.ctx.calling.left_room(name, &self.id);
        }
    }

    fn pending_room(&self, handle: u64) -> Option<GroupName> {
        self.rooms
            .values()
            .find(|r| r.pending == Some(handle))
            .map(|r| r.name.clone())
    }

    fn serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Map, json};

    use super::PROTOCOL;
    use crate::group::{ClientHandle, ClientId, ClientInfo, JoinError, JoinRequest, Registry};
    use crate::group::{GroupName, RoomPolicy};
    use crate::media::{Media, MediaConfig, UdpConfig};

    async fn join(
        registry: &std::sync::Arc<Registry>,
        policy: RoomPolicy,
    ) -> Result<crate::group::Membership, JoinError> {
        let id = ClientId::random();
        let (client, _queue) = ClientHandle::new(ClientInfo {
            id: id.clone(),
            protocol: PROTOCOL,
            address: None,
            chats: false,
        });
        let request = JoinRequest {
            group: "standup".into(),
            username: id.to_string(),
            password: None,
            client,
            data: Map::new(),
        };
        registry.join_room(request, policy).await
    }

    /// A calling room made on the fly keeps its status while it is in use and is
    /// forgotten once it has been empty for ten minutes (time passed in, not waited for).
    #[tokio::test]
    async fn empty_rooms_expire_after_ten_minutes() {
        let media = Media::new(MediaConfig {
            udp: UdpConfig::Mux { port: 0 },
            ice_servers: Vec::new(),
            advertise_ips: Vec::new(),
        })
        .await
        .expect("media");
        let dir = std::env::temp_dir().join(format!("cinnabar-calling-{}", ClientId::random()));
        let registry = Registry::new(&dir, media);
        let name = GroupName::new("standup").expect("name");

        let member = join(&registry, RoomPolicy::Any).await.expect("created");
        member
            .set_group_data("topic", Some(json!("planning")), None)
            .expect("set");
        member.leave();
        let emptied = Instant::now();

        // Still there just under ten minutes later: a new member finds its status.
        registry.sweep(emptied + Duration::from_secs(590));
        let member = join(&registry, RoomPolicy::Existing).await.expect("kept");
        assert_eq!(member.group_data().get("topic"), Some(&json!("planning")));
        member.leave();
        let emptied = Instant::now();

        // Gone after ten minutes empty: it cannot be joined as existing, and a new
        // room of that name starts with no status.
        registry.sweep(emptied + Duration::from_secs(601));
        assert!(matches!(
            join(&registry, RoomPolicy::Existing).await,
            Err(JoinError::NoSuchGroup)
        ));
        let member = join(&registry, RoomPolicy::Any).await.expect("made again");
        assert!(member.group_data().is_empty());
        assert_eq!(member.group().name(), &name);
    }
}
