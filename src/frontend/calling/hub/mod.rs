//! What calling-signaling connections share beyond the group core: who is connected,
//! namespaces, and invitations. Rooms themselves are groups of the core; a room
//! registered in a namespace is mirrored here so its subscribers can be told of changes.
//!
//! Connections are told things through their mailbox (a bounded queue of [`Notice`]s);
//! a connection that lets it fill up is disconnected. The lock guards plain data and is
//! never held across an `.await`; while holding it the hub may read a group's state
//! (hub first, group second), never the other way round.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::PeerState;
use crate::group::{ClientId, Data, EventQueue, GroupName, Membership, UserInfo};

mod namespaces;

pub use namespaces::NsEvent;
use namespaces::{Namespace, NsRoom};

/// Notices a connection may leave unread before it is disconnected.
const MAILBOX: usize = 1024;
/// Per connection: invitations sent and not yet answered, and received.
const MAX_INVITES: usize = 64;

/// The key of a calling member's user data holding its peer status.
pub const STATUS_KEY: &str = "calling-status";
/// The key of a calling member's user data that is `true` while it is only invited.
pub const PENDING_KEY: &str = "calling-pending";

/// A calling member's status and pending flag, read from its user data.
pub fn peer_state(data: &Data) -> PeerState {
    PeerState {
        status: data.get(STATUS_KEY).cloned().unwrap_or_else(|| json!({})),
        pending: data.get(PENDING_KEY) == Some(&Value::Bool(true)),
    }
}

/// The calling members of a room other than `except`, as peers.
pub fn calling_peers(
    members: &[UserInfo],
    except: Option<&ClientId>,
) -> BTreeMap<ClientId, PeerState> {
    members
        .iter()
        .filter(|m| m.protocol == super::PROTOCOL && Some(&m.id) != except)
        .map(|m| (m.id.clone(), peer_state(&m.data)))
        .collect()
}

/// Something one connection tells another.
pub enum Notice {
    Namespace { namespace: Arc<str>, event: NsEvent },
    Invite(Box<Incoming>),
    InviteResponse { handle: u64, accepted: bool },
    InviteCancelled { handle: u64 },
}

/// An invitation as it reaches the invited connection: the membership (pending) in the
/// room is already made, and the invited connection owns it from now on.
pub struct Incoming {
    pub handle: u64,
    pub sender: ClientId,
    pub sender_status: Value,
    pub room: GroupName,
    pub data: Value,
    pub membership: Membership,
    pub queue: EventQueue,
}

struct Connection {
    mailbox: mpsc::Sender<Notice>,
    /// Cancelled to disconnect it when its mailbox overflows.
    kill: CancellationToken,
    address: Option<SocketAddr>,
    /// Its global status (`status`).
    status: Value,
    subscribed: BTreeSet<Arc<str>>,
    registered: BTreeSet<Arc<str>>,
    next_handle: u64,
    /// Invitations by this connection's handle.
    invites_out: BTreeMap<u64, u64>,
    invites_in: BTreeMap<u64, u64>,
}

/// An invitation, from the handles of both sides.
#[derive(Clone, Debug)]
pub struct Invite {
    pub from: ClientId,
    pub from_handle: u64,
    pub to: ClientId,
    pub to_handle: u64,
}

/// What the inviting connection needs to make the invited one a pending member.
pub struct Ticket {
    pub id: u64,
    pub from_handle: u64,
    pub to_handle: u64,
    pub to_address: Option<SocketAddr>,
    pub to_status: Value,
    pub sender_status: Value,
}

#[derive(Default)]
struct Inner {
    connections: HashMap<ClientId, Connection>,
    namespaces: HashMap<Arc<str>, Namespace>,
    rooms: HashMap<GroupName, NsRoom>,
    invites: HashMap<u64, Invite>,
    next_invite: u64,
}

/// The shared state of the calling frontend (one per server, in the frontend `Context`).
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

/// Why a request was refused, in the original's words.
type Refusal = &'static str;

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection; its notices arrive in the returned queue.
    pub fn connect(
        &self,
        id: ClientId,
        address: Option<SocketAddr>,
        kill: CancellationToken,
    ) -> mpsc::Receiver<Notice> {
        let (mailbox, notices) = mpsc::channel(MAILBOX);
        self.lock().connections.insert(
            id,
            Connection {
                mailbox,
                kill,
                address,
                status: json!({}),
                subscribed: BTreeSet::new(),
                registered: BTreeSet::new(),
                next_handle: 0,
                invites_out: BTreeMap::new(),
                invites_in: BTreeMap::new(),
            },
        );
        notices
    }

    /// Forgets a connection: its namespaces hear it left, its invitations end.
    pub fn disconnect(&self, id: &ClientId) {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.remove(id) else {
            return;
        };
        for ns in &connection.subscribed {
            inner.leave_namespace(ns, |n| {
                n.subscribed.remove(id);
            });
        }
        for ns in &connection.registered {
            inner.broadcast(ns, NsEvent::UserRm { user: id.clone() });
            inner.leave_namespace(ns, |n| {
                n.registered.remove(id);
            });
        }
        for invite in connection.invites_out.values() {
            if let Some(invite) = inner.take_invite(*invite) {
                let handle = invite.to_handle;
                inner.notify(&invite.to, Notice::InviteCancelled { handle });
            }
        }
        for invite in connection.invites_in.values() {
            if let Some(invite) = inner.take_invite(*invite) {
                let handle = invite.from_handle;
                let notice = Notice::InviteResponse {
                    handle,
                    accepted: false,
                };
                inner.notify(&invite.from, notice);
            }
        }
    }

    /// Delivers a notice; false if the connection is gone or had to be cut off.
    pub fn notify(&self, to: &ClientId, notice: Notice) -> bool {
        self.lock().notify(to, notice)
    }

    /// Starts an invitation from `from` to `to`: both get a handle.
    pub fn invite_begin(&self, from: &ClientId, to: &ClientId) -> Result<Ticket, Refusal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let sender = inner.connections.get(from).ok_or("Unknown recipient")?;
        if sender.invites_out.len() >= MAX_INVITES {
            return Err("Too many open invitations");
        }
        let sender_status = sender.status.clone();
        let receiver = inner.connections.get(to).ok_or("Unknown recipient")?;
        if receiver.invites_in.len() >= MAX_INVITES {
            return Err("The recipient has too many open invitations");
        }
        let id = inner.next_invite;
        inner.next_invite += 1;
        let (to_handle, to_address, to_status) = {
            let Some(receiver) = inner.connections.get_mut(to) else {
                return Err("Unknown recipient");
            };
            let handle = receiver.next_handle;
            receiver.next_handle += 1;
            receiver.invites_in.insert(handle, id);
            (handle, receiver.address, receiver.status.clone())
        };
        let from_handle = {
            let Some(sender) = inner.connections.get_mut(from) else {
                return Err("Unknown recipient");
            };
            let handle = sender.next_handle;
            sender.next_handle += 1;
            sender.invites_out.insert(handle, id);
            handle
        };
        inner.invites.insert(
            id,
            Invite {
                from: from.clone(),
                from_handle,
                to: to.clone(),
                to_handle,
            },
        );
        Ok(Ticket {
            id,
            from_handle,
            to_handle,
            to_address,
            to_status,
            sender_status,
        })
    }

    /// Drops an invitation that could not be delivered.
    pub fn invite_abort(&self, id: u64) {
        self.lock().take_invite(id);
    }

    /// Ends an invitation `to` received, if it is still open (accept, deny).
    pub fn take_incoming(&self, to: &ClientId, handle: u64) -> Option<Invite> {
        let mut inner = self.lock();
        let id = *inner.connections.get(to)?.invites_in.get(&handle)?;
        inner.take_invite(id)
    }

    /// Ends an invitation `from` sent, if it is still open (cancel).
    pub fn take_outgoing(&self, from: &ClientId, handle: u64) -> Option<Invite> {
        let mut inner = self.lock();
        let id = *inner.connections.get(from)?.invites_out.get(&handle)?;
        inner.take_invite(id)
    }

    /// Whether `to` still has this invitation open.
    pub fn is_invited(&self, to: &ClientId, handle: u64) -> bool {
        self.lock()
            .connections
            .get(to)
            .is_some_and(|c| c.invites_in.contains_key(&handle))
    }
}

impl Inner {
    fn notify(&mut self, to: &ClientId, notice: Notice) -> bool {
        let Some(connection) = self.connections.get(to) else {
            return false;
        };
        match connection.mailbox.try_send(notice) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(client = %to, "calling client is not reading; disconnecting it");
                connection.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn take_invite(&mut self, id: u64) -> Option<Invite> {
        let invite = self.invites.remove(&id)?;
        if let Some(c) = self.connections.get_mut(&invite.from) {
            c.invites_out.remove(&invite.from_handle);
        }
        if let Some(c) = self.connections.get_mut(&invite.to) {
            c.invites_in.remove(&invite.to_handle);
        }
        Some(invite)
    }
}
