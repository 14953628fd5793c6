//! Namespaces: who is registered, which rooms are listed, and telling subscribers.
//!
//! A room listed in a namespace is mirrored (its peers and status as last announced), and
//! any member may bring the mirror up to date from the core after a change: reading the
//! core under the hub's lock keeps the mirror from going back in time, and an unchanged
//! room says nothing, so however many members report a change it is announced once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Connection, Hub, Inner, Notice, Refusal, calling_peers};
use crate::frontend::calling::message::{Dialect, PeerState, peers_json};
use crate::group::{ClientId, Data, GroupName, Membership, UserInfo};

/// Per connection: namespaces subscribed to, and namespaces registered in.
const MAX_NAMESPACES: usize = 64;
/// Namespaces one room may be registered in.
const MAX_ROOM_NAMESPACES: usize = 64;
/// Longest namespace id.
const MAX_NAMESPACE_LEN: usize = 256;

/// An event about a namespace, for its subscribers.
#[derive(Clone, Debug)]
pub enum NsEvent {
    UserAdd {
        user: ClientId,
        status: Value,
    },
    UserRm {
        user: ClientId,
    },
    UserUpdate {
        user: ClientId,
        status: Value,
    },
    RoomAdd {
        room: GroupName,
        status: Value,
        peers: Value,
    },
    RoomRm {
        room: GroupName,
    },
    RoomUpdate {
        room: GroupName,
        status: Value,
    },
    PeerAdd {
        room: GroupName,
        user: ClientId,
        status: Value,
        pending: bool,
    },
    PeerRm {
        room: GroupName,
        user: ClientId,
    },
    PeerUpdate {
        room: GroupName,
        user: ClientId,
        status: Option<Value>,
        pending: Option<bool>,
    },
}

impl NsEvent {
    /// The message, in the names of the dialect (`user_update` / `ns_user_update`,
    /// `ns_room_user_*` / `ns_room_peer_*`).
    pub fn to_json(&self, namespace: &str, dialect: Dialect) -> Value {
        let rtc = dialect == Dialect::RtcLib;
        let peer = |what: &str| {
            if rtc {
                format!("ns_room_peer_{what}")
            } else {
                format!("ns_room_user_{what}")
            }
        };
        let mut m = match self {
            NsEvent::UserAdd { user, status } => {
                json!({"type": "ns_user_add", "user": user.as_str(), "status": status})
            }
            NsEvent::UserRm { user } => json!({"type": "ns_user_rm", "user": user.as_str()}),
            NsEvent::UserUpdate { user, status } => json!({
                "type": if rtc { "ns_user_update" } else { "user_update" },
                "user": user.as_str(), "status": status,
            }),
            NsEvent::RoomAdd {
                room,
                status,
                peers,
            } => json!({
                "type": "ns_room_add", "room": room.as_str(), "status": status, "peers": peers,
            }),
            NsEvent::RoomRm { room } => json!({"type": "ns_room_rm", "room": room.as_str()}),
            NsEvent::RoomUpdate { room, status } => {
                json!({"type": "ns_room_update", "room": room.as_str(), "status": status})
            }
            NsEvent::PeerAdd {
                room,
                user,
                status,
                pending,
            } => json!({
                "type": peer("add"), "room": room.as_str(), "user": user.as_str(),
                "status": status, "pending": pending,
            }),
            NsEvent::PeerRm { room, user } => {
                json!({"type": peer("rm"), "room": room.as_str(), "user": user.as_str()})
            }
            NsEvent::PeerUpdate {
                room,
                user,
                status,
                pending,
            } => {
                let mut m =
                    json!({"type": peer("update"), "room": room.as_str(), "user": user.as_str()});
                if let Some(status) = status {
                    m["status"] = status.clone();
                }
                if let Some(pending) = pending {
                    m["pending"] = json!(pending);
                }
                m
            }
        };
        m["namespace"] = json!(namespace);
        m
    }
}

#[derive(Default)]
pub(super) struct Namespace {
    pub(super) subscribed: BTreeSet<ClientId>,
    pub(super) registered: BTreeSet<ClientId>,
    pub(super) rooms: BTreeSet<GroupName>,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.subscribed.is_empty() && self.registered.is_empty() && self.rooms.is_empty()
    }
}

/// A room registered in namespaces, as its subscribers were last told it is.
pub(super) struct NsRoom {
    namespaces: BTreeSet<Arc<str>>,
    status: Arc<Data>,
    peers: BTreeMap<ClientId, PeerState>,
}

impl Hub {
    /// Sets a connection's global status and tells the namespaces it is registered in.
    pub fn set_status(&self, id: &ClientId, status: Value) {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.get_mut(id) else {
            return;
        };
        connection.status = status.clone();
        let namespaces: Vec<_> = connection.registered.iter().cloned().collect();
        for ns in namespaces {
            let event = NsEvent::UserUpdate {
                user: id.clone(),
                status: status.clone(),
            };
            inner.broadcast(&ns, event);
        }
    }

    pub fn subscribe(&self, id: &ClientId, namespace: &str) -> Result<Value, Refusal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let ns = inner.namespace_for(id, namespace, |c| &c.subscribed)?;
        let namespace = inner.namespaces.entry(ns.clone()).or_default();
        if !namespace.subscribed.insert(id.clone()) {
            return Err("User was already subscribed to that namespace");
        }
        if let Some(c) = inner.connections.get_mut(id) {
            c.subscribed.insert(ns);
        }
        let users: serde_json::Map<String, Value> = namespace
            .registered
            .iter()
            .map(|user| {
                let status = inner.connections.get(user).map(|c| c.status.clone());
                (
                    user.as_str().to_owned(),
                    status.unwrap_or_else(|| json!({})),
                )
            })
            .collect();
        let rooms: serde_json::Map<String, Value> = namespace
            .rooms
            .iter()
            .filter_map(|name| {
                let room = inner.rooms.get(name)?;
                let description = json!({
                    "status": Value::Object((*room.status).clone()),
                    "peers": peers_json(&room.peers),
                });
                Some((name.as_str().to_owned(), description))
            })
            .collect();
        Ok(json!({"users": users, "rooms": rooms}))
    }

    pub fn unsubscribe(&self, id: &ClientId, namespace: &str) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let ns = inner.existing_namespace(namespace)?;
        if !inner
            .namespaces
            .get(&ns)
            .is_some_and(|n| n.subscribed.contains(id))
        {
            return Err("User was not subscribed to namespace");
        }
        if let Some(c) = inner.connections.get_mut(id) {
            c.subscribed.remove(&ns);
        }
        inner.leave_namespace(&ns, |n| {
            n.subscribed.remove(id);
        });
        Ok(())
    }

    pub fn register_user(&self, id: &ClientId, namespace: &str) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let ns = inner.namespace_for(id, namespace, |c| &c.registered)?;
        let status = inner.connections.get(id).map(|c| c.status.clone());
        let namespace = inner.namespaces.entry(ns.clone()).or_default();
        if namespace.registered.contains(id) {
            return Err("User was already registered to that namespace");
        }
        let event = NsEvent::UserAdd {
            user: id.clone(),
            status: status.unwrap_or_else(|| json!({})),
        };
        inner.broadcast(&ns, event);
        if let Some(namespace) = inner.namespaces.get_mut(&ns) {
            namespace.registered.insert(id.clone());
        }
        if let Some(c) = inner.connections.get_mut(id) {
            c.registered.insert(ns);
        }
        Ok(())
    }

    pub fn unregister_user(&self, id: &ClientId, namespace: &str) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let ns = inner.existing_namespace(namespace)?;
        if !inner
            .namespaces
            .get(&ns)
            .is_some_and(|n| n.registered.contains(id))
        {
            return Err("User was not registered to namespace");
        }
        inner.broadcast(&ns, NsEvent::UserRm { user: id.clone() });
        if let Some(c) = inner.connections.get_mut(id) {
            c.registered.remove(&ns);
        }
        inner.leave_namespace(&ns, |n| {
            n.registered.remove(id);
        });
        Ok(())
    }

    /// Registers a room (which `membership` is in) in a namespace.
    pub fn register_room(
        &self,
        namespace: &str,
        room: &GroupName,
        membership: &Membership,
    ) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let ns = valid_namespace(namespace)?;
        if inner
            .rooms
            .get(room)
            .is_some_and(|r| r.namespaces.len() >= MAX_ROOM_NAMESPACES)
        {
            return Err("Room is registered in too many namespaces");
        }
        let ns = inner
            .namespaces
            .get_key_value(ns)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| ns.into());
        if inner
            .namespaces
            .get(&ns)
            .is_some_and(|n| n.rooms.contains(room))
        {
            return Err("Room was already registered to that namespace");
        }
        // Bring the mirror up to date first, so the new namespace starts from now.
        if inner.rooms.contains_key(room) {
            inner.reconcile(room, &membership.members(), membership.group_data());
        }
        let record = inner.rooms.entry(room.clone()).or_insert_with(|| NsRoom {
            namespaces: BTreeSet::new(),
            status: membership.group_data(),
            peers: calling_peers(&membership.members(), None),
        });
        record.namespaces.insert(ns.clone());
        let event = NsEvent::RoomAdd {
            room: room.clone(),
            status: Value::Object((*record.status).clone()),
            peers: peers_json(&record.peers),
        };
        inner
            .namespaces
            .entry(ns.clone())
            .or_default()
            .rooms
            .insert(room.clone());
        inner.broadcast(&ns, event);
        Ok(())
    }

    pub fn unregister_room(&self, namespace: &str, room: &GroupName) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let ns = inner.existing_namespace(namespace)?;
        if !inner
            .namespaces
            .get(&ns)
            .is_some_and(|n| n.rooms.contains(room))
        {
            return Err("Room was not registered to namespace");
        }
        inner.unregister_room(&ns, room);
        Ok(())
    }

    /// Brings the namespaces a room is registered in up to date with the core, as
    /// `membership` (a member of the room) sees it now. Any member may call this after
    /// any change: reading the core under the hub's lock keeps the mirror from going back
    /// in time, and an unchanged room says nothing.
    pub fn reconcile(&self, room: &GroupName, membership: &Membership) {
        let mut inner = self.lock();
        if inner.rooms.contains_key(room) {
            inner.reconcile(room, &membership.members(), membership.group_data());
        }
    }

    /// Called once `id` has left `room`: if it was the last calling member, nobody is
    /// left to notice, so the room is taken out of its namespaces here.
    pub fn left_room(&self, room: &GroupName, id: &ClientId) {
        let mut inner = self.lock();
        let Some(record) = inner.rooms.get_mut(room) else {
            return;
        };
        if record.peers.remove(id).is_none() {
            return;
        }
        let namespaces: Vec<_> = record.namespaces.iter().cloned().collect();
        let empty = record.peers.is_empty();
        for ns in &namespaces {
            let event = NsEvent::PeerRm {
                room: room.clone(),
                user: id.clone(),
            };
            inner.broadcast(ns, event);
        }
        if empty {
            for ns in &namespaces {
                inner.unregister_room(ns, room);
            }
        }
    }
}

fn valid_namespace(namespace: &str) -> Result<&str, Refusal> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_LEN {
        return Err("Invalid namespace id");
    }
    Ok(namespace)
}

impl Inner {
    pub(super) fn broadcast(&mut self, ns: &Arc<str>, event: NsEvent) {
        let Some(namespace) = self.namespaces.get(ns) else {
            return;
        };
        let subscribers: Vec<ClientId> = namespace.subscribed.iter().cloned().collect();
        for id in subscribers {
            let notice = Notice::Namespace {
                namespace: ns.clone(),
                event: event.clone(),
            };
            self.notify(&id, notice);
        }
    }

    /// The namespace's shared key, checking the connection's limit for `set`.
    fn namespace_for(
        &self,
        id: &ClientId,
        namespace: &str,
        set: impl Fn(&Connection) -> &BTreeSet<Arc<str>>,
    ) -> Result<Arc<str>, Refusal> {
        let namespace = valid_namespace(namespace)?;
        let connection = self.connections.get(id).ok_or("Unknown user")?;
        let current = set(connection);
        if !current.contains(namespace) && current.len() >= MAX_NAMESPACES {
            return Err("Too many namespaces");
        }
        Ok(self
            .namespaces
            .get_key_value(namespace)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| namespace.into()))
    }

    fn existing_namespace(&self, namespace: &str) -> Result<Arc<str>, Refusal> {
        self.namespaces
            .get_key_value(namespace)
            .map(|(k, _)| k.clone())
            .ok_or("Namespace does not exist")
    }

    /// Applies `change` to a namespace and forgets the namespace once it is empty.
    pub(super) fn leave_namespace(&mut self, ns: &Arc<str>, change: impl FnOnce(&mut Namespace)) {
        if let Some(namespace) = self.namespaces.get_mut(ns) {
            change(namespace);
            if namespace.is_empty() {
                self.namespaces.remove(ns);
            }
        }
    }

    fn unregister_room(&mut self, ns: &Arc<str>, room: &GroupName) {
        self.broadcast(ns, NsEvent::RoomRm { room: room.clone() });
        self.leave_namespace(ns, |n| {
            n.rooms.remove(room);
        });
        if let Some(record) = self.rooms.get_mut(room) {
            record.namespaces.remove(ns);
            if record.namespaces.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    fn reconcile(&mut self, room: &GroupName, members: &[UserInfo], data: Arc<Data>) {
        let Some(record) = self.rooms.get_mut(room) else {
            return;
        };
        let peers = calling_peers(members, None);
        let mut events = Vec::new();
        if record.status != data {
            events.push(NsEvent::RoomUpdate {
                room: room.clone(),
                status: Value::Object((*data).clone()),
            });
            record.status = data;
        }
        for id in record.peers.keys().filter(|id| !peers.contains_key(*id)) {
            events.push(NsEvent::PeerRm {
                room: room.clone(),
                user: id.clone(),
            });
        }
        for (id, peer) in &peers {
            match record.peers.get(id) {
                None => events.push(NsEvent::PeerAdd {
                    room: room.clone(),
                    user: id.clone(),
                    status: peer.status.clone(),
                    pending: peer.pending,
                }),
                Some(old) => {
                    if old.pending && !peer.pending {
                        events.push(NsEvent::PeerUpdate {
                            room: room.clone(),
                            user: id.clone(),
                            status: None,
                            pending: Some(false),
                        });
                    }
                    if old.status != peer.status {
                        events.push(NsEvent::PeerUpdate {
                            room: room.clone(),
                            user: id.clone(),
                            status: Some(peer.status.clone()),
                            pending: None,
                        });
                    }
                }
            }
        }
        record.peers = peers;
        let empty = record.peers.is_empty();
        let namespaces: Vec<_> = record.namespaces.iter().cloned().collect();
        for ns in &namespaces {
            for event in &events {
                self.broadcast(ns, event.clone());
            }
        }
        // A room without calling peers leaves its namespaces, as the original's empty rooms do.
        if empty {
            for ns in &namespaces {
                self.unregister_room(ns, room);
            }
        }
    }
}
