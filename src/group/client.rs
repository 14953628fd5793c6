//! What the core knows of a client: its id and its outbound event queue.
//!
//! The core never waits on a client: it pushes typed [`Event`]s into the client's
//! unbounded queue and the client's frontend task drains them into its wire format.
//! A client that stops draining is cut off once [`MAX_PENDING_EVENTS`] pile up, so a
//! stuck socket cannot make the server's memory grow without bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::chat::ChatMessage;
use super::name::{ClientId, GroupName};
use super::permissions::Permissions;
use super::streams::StreamInfo;
use crate::media::{DataPayload, MediaEvent};

/// Events a client may leave undelivered before it is disconnected.
pub const MAX_PENDING_EVENTS: usize = 8192;

/// User data attached to a client or a group (`setdata`): free-form JSON.
pub type Data = serde_json::Map<String, serde_json::Value>;

/// A member as the others see it.
#[derive(Clone, Debug, PartialEq)]
pub struct UserInfo {
    pub id: ClientId,
    pub username: String,
    pub permissions: Permissions,
    pub data: Arc<Data>,
    /// The frontend the member came through (`"galene"`, `"gstreamer"`, ...), so that
    /// peers who signal each other directly can tell who speaks their protocol.
    pub protocol: &'static str,
}

/// What kind of `joined` a client receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinedKind {
    Join,
    Change,
    Leave,
}

/// A group's public description, as `.status`, `public-groups.json` and `joined` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStatus {
    pub name: GroupName,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub redirect: Option<String>,
    pub public: bool,
    pub locked: bool,
    pub client_count: usize,
}

/// Sent when a client joins, when its permissions or the group change, and when it leaves.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    pub kind: JoinedKind,
    pub group: GroupName,
    pub username: String,
    pub permissions: Permissions,
    pub status: GroupStatus,
    pub data: Arc<Data>,
}

/// A message that is relayed but not stored (`usermessage`).
#[derive(Clone, Debug, PartialEq)]
pub struct UserMessage {
    pub kind: String,
    pub source: Option<ClientId>,
    pub username: Option<String>,
    pub dest: Option<ClientId>,
    pub privileged: bool,
    pub value: serde_json::Value,
}

impl UserMessage {
    /// A message from the server itself.
    pub fn from_server(kind: &str, dest: Option<ClientId>, value: serde_json::Value) -> Self {
        UserMessage {
            kind: kind.into(),
            source: None,
            username: None,
            dest,
            privileged: true,
            value,
        }
    }
}

/// Everything the core tells a client.
#[derive(Clone, Debug)]
pub enum Event {
    Joined(Box<Joined>),
    ChatHistory(Vec<Arc<ChatMessage>>),
    UserAdded(UserInfo),
    UserChanged(UserInfo),
    UserRemoved(ClientId),
    Chat(Arc<ChatMessage>),
    UserMessage(Arc<UserMessage>),
    /// The client was removed from its group; its session should end.
    Kicked {
        by: Option<ClientId>,
        by_username: Option<String>,
        reason: String,
    },
    /// The server ends the session (shutdown, or the client stopped reading).
    Disconnect {
        reason: String,
    },
    /// A stream published in the group is flowing and may be subscribed to.
    StreamAdded(Arc<StreamInfo>),
    /// A published stream ended.
    StreamRemoved {
        id: String,
    },
    /// A published stream's tracks changed (its publisher renegotiated): a
    /// subscription made before the change lacks what was added.
    StreamChanged(Arc<StreamInfo>),
    /// A data message from another member: from one of its data channels (`label`), or
    /// sent through signalling (`label` is `None`).
    Data {
        from: ClientId,
        label: Option<Arc<str>>,
        payload: DataPayload,
    },
    /// Another member blocked this client, or lifted its block: data and media between
    /// the two stop (or flow again).
    Blocked {
        by: ClientId,
        blocked: bool,
    },
    /// Something happened to one of this client's own streams (`up`) or subscriptions.
    Media {
        id: String,
        direction: Direction,
        /// Which negotiation of the stream this concerns: an id may be reused after a
        /// close, and events of the old stream must not touch the new one.
        serial: u64,
        event: MediaEvent,
    },
    /// The server closed one of this client's published streams.
    UpAborted {
        id: String,
        reason: String,
    },
    /// An opaque message from another member (see `Membership::signal`).
    Signal {
        from: ClientId,
        username: String,
        protocol: &'static str,
        payload: Arc<str>,
    },
}

/// Which way a stream flows, seen from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client: it publishes.
    Up,
    /// To the client: it subscribes.
    Down,
}

/// What a frontend knows of its client when it joins it to a group.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub id: ClientId,
    /// The frontend the client came through (`"galene"`, `"gstreamer"`, ...).
    pub protocol: &'static str,
    pub address: Option<SocketAddr>,
    /// Whether the client shows chat messages (Galène clients do; signalling-only peers do not).
    pub chats: bool,
}

struct Shared {
    info: ClientInfo,
    queue: mpsc::UnboundedSender<Event>,
    pending: AtomicUsize,
    cut_off: AtomicBool,
}

/// The core's handle on a client: cheap to clone, never blocks.
#[derive(Clone)]
pub struct ClientHandle(Arc<Shared>);

/// The frontend's end of a client's queue.
pub struct EventQueue {
    shared: Arc<Shared>,
    receiver: mpsc::UnboundedReceiver<Event>,
}

impl ClientHandle {
    pub fn new(info: ClientInfo) -> (ClientHandle, EventQueue) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            info,
            queue,
            pending: AtomicUsize::new(0),
            cut_off: AtomicBool::new(false),
        });
        (
            ClientHandle(shared.clone()),
            EventQueue { shared, receiver },
        )
    }

    pub fn id(&self) -> &ClientId {
        &self.0.info.id
    }

    pub fn info(&self) -> &ClientInfo {
        &self.0.info
    }

    /// Queues an event. Never blocks; past [`MAX_PENDING_EVENTS`] the client is cut off.
    pub fn send(&self, event: Event) {
        if self.0.cut_off.load(Ordering::Relaxed) {
            return;
        }
        if self.0.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_EVENTS {
            self.0.cut_off.store(true, Ordering::Relaxed);
            tracing::warn!(client = %self.id(), "client is not reading its events; disconnecting it");
            let _ = self.0.queue.send(Event::Disconnect {
                reason: "too many undelivered messages".into(),
            });
            return;
        }
        // The receiver is gone once the connection ended; nothing left to tell.
        let _ = self.0.queue.send(event);
    }

    pub fn same(&self, other: &ClientHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientHandle({})", self.id())
    }
}

impl EventQueue {
    /// The next event, or `None` when every handle is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.receiver.recv().await?;
        self.shared.pending.fetch_sub(1, Ordering::Relaxed);
        Some(event)
    }

    /// An event already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = self.receiver.try_recv().ok()?;
        self.shared.pending.fetch_sub(1, Ordering::Relaxed);
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_does_not_read_is_cut_off() {
        let (handle, mut queue) = ClientHandle::new(ClientInfo {
            id: ClientId::new("c").unwrap(),
            protocol: "test",
            address: None,
            chats: true,
        });
        for _ in 0..MAX_PENDING_EVENTS + 100 {
            handle.send(Event::UserRemoved(ClientId::new("x").unwrap()));
        }
        let mut delivered = 0;
        let mut last = None;
        while let Ok(Some(event)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), queue.recv()).await
        {
            delivered += 1;
            last = Some(event);
        }
        assert_eq!(delivered, MAX_PENDING_EVENTS + 1);
        assert!(matches!(last, Some(Event::Disconnect { .. })));
    }
}
