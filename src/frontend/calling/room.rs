//! One calling room as one connection sees it: its membership in the core group, and the
//! peers and status the client was last told of, so that the core's events become the
//! protocol's `room_*` events with nothing said twice.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::PROTOCOL;
use super::hub::peer_state;
use super::message::PeerState;
use crate::group::{ClientId, Data, Event, EventQueue, GroupName, JoinedKind, Membership};

pub struct Room {
    pub name: GroupName,
    /// Tells this joining apart from an earlier one of the same room.
    pub serial: u64,
    pub membership: Membership,
    /// The invitation handle while the client is only invited.
    pub pending: Option<u64>,
    /// The status the client gave for this room (merged over its global status).
    pub own_status: Map<String, Value>,
    /// The other calling members, as last told.
    pub peers: BTreeMap<ClientId, PeerState>,
    /// The room status (the group's data), as last told.
    pub status: Arc<Data>,
    /// Room statuses this client set whose `joined` has not come back yet, oldest first:
    /// the setter is not told of its own change, however quickly it makes the next one.
    pub own_changes: VecDeque<Arc<Data>>,
}

/// Own changes remembered at most (the core delivers every one in order; this only bounds
/// memory if it ever did not).
const MAX_OWN_CHANGES: usize = 64;

/// What a core event means to the client.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// The room's peers or status changed (namespaces may need to hear of it).
    State(Vec<Value>),
    /// A message for the client that changes nothing.
    Message(Value),
    /// The client was removed from the room by the server: the session ends.
    End(String),
    Nothing,
}

impl Room {
    pub fn new(
        name: GroupName,
        serial: u64,
        membership: Membership,
        pending: Option<u64>,
        own_status: Map<String, Value>,
    ) -> Room {
        Room {
            name,
            serial,
            membership,
            pending,
            own_status,
            peers: BTreeMap::new(),
            status: Arc::new(Data::new()),
            own_changes: VecDeque::new(),
        }
    }

    /// Takes in the events already queued when the client joined (its view of the room
    /// at that point) without telling the client: the answer to the join says it all.
    /// Returns the first event that is not about the room's state, to be handled after
    /// the answer.
    pub fn prime(&mut self, queue: &mut EventQueue) -> Option<Event> {
        while let Some(event) = queue.try_recv() {
            if matches!(
                event,
                Event::Signal { .. } | Event::Kicked { .. } | Event::Disconnect { .. }
            ) {
                return Some(event);
            }
            self.apply(event);
        }
        None
    }

    /// Notes a room status this client has just set: it is the status the client knows,
    /// and its `joined`, when it comes back, is not told.
    pub fn own_change(&mut self, data: Arc<Data>) {
        if self.own_changes.len() == MAX_OWN_CHANGES {
            self.own_changes.pop_front();
        }
        self.own_changes.push_back(data.clone());
        self.status = data;
    }

    pub fn peers_json(&self) -> Value {
        super::message::peers_json(&self.peers)
    }

    pub fn status_json(&self) -> Value {
        Value::Object((*self.status).clone())
    }

    /// Applies a core event to the view and says what the client must be told.
    pub fn apply(&mut self, event: Event) -> Change {
        let me = self.membership.id().clone();
        let room = self.name.as_str();
        match event {
            Event::Joined(joined) => {
                if joined.kind == JoinedKind::Leave {
                    return Change::Nothing;
                }
                if let Some(own) = self.own_changes.iter().position(|d| *d == joined.data) {
                    self.own_changes.drain(..=own);
                    // The status already shows the latest own change, unless another
                    // client's change came in between.
                    if self.own_changes.is_empty() {
                        self.status = joined.data;
                    }
                    return Change::Nothing;
                }
                if joined.data == self.status {
                    return Change::Nothing;
                }
                self.status = joined.data;
                let message =
                    json!({"type": "room_update", "room": room, "status": self.status_json()});
                Change::State(vec![message])
            }
            Event::UserAdded(info) | Event::UserChanged(info) => {
                if info.id == me || info.protocol != PROTOCOL {
                    return Change::Nothing;
                }
                let user = info.id.as_str();
                let new = peer_state(&info.data);
                let mut messages = Vec::new();
                match self.peers.get(&info.id) {
                    None => messages.push(json!({
                        "type": "room_peer_add", "room": room, "user": user,
                        "pending": new.pending, "status": new.status,
                    })),
                    Some(old) => {
                        // Accepting an invitation is told apart from the status it brings.
                        if old.pending && !new.pending {
                            messages.push(json!({
                                "type": "room_peer_update", "room": room, "user": user,
                                "pending": false,
                            }));
                        }
                        if old.status != new.status {
                            messages.push(json!({
                                "type": "room_peer_update", "room": room, "user": user,
                                "status": new.status,
                            }));
                        }
                    }
                }
                self.peers.insert(info.id, new);
                if messages.is_empty() {
                    Change::Nothing
                } else {
                    Change::State(messages)
                }
            }
            Event::UserRemoved(id) => match self.peers.remove(&id) {
                Some(_) => Change::State(vec![json!({
                    "type": "room_peer_rm", "room": room, "user": id.as_str(),
                })]),
                None => Change::Nothing,
            },
            Event::Signal {
                from,
                protocol,
                payload,
                ..
            } => {
                if protocol != PROTOCOL {
                    return Change::Nothing;
                }
                // We wrote the payload ourselves (`room_peer_to`); anything else is dropped.
                let Ok(Value::Object(mut signal)) = serde_json::from_str::<Value>(&payload) else {
                    return Change::Nothing;
                };
                Change::Message(json!({
                    "type": "room_peer_from", "room": room, "user": from.as_str(),
                    "event": signal.remove("event").unwrap_or(Value::Null),
                    "data": signal.remove("data").unwrap_or(Value::Null),
                }))
            }
            Event::Kicked { reason, .. } => {
                Change::End(format!("You were removed from room {room}: {reason}"))
            }
            Event::Disconnect { reason } => Change::End(reason),
            Event::ChatHistory(_)
            | Event::Chat(_)
            | Event::UserMessage(_)
            | Event::StreamAdded(_)
            | Event::StreamRemoved { .. }
            | Event::StreamChanged(_)
            | Event::Media { .. }
            | Event::UpAborted { .. }
            | Event::Data { .. }
            | Event::Blocked { .. } => Change::Nothing,
        }
    }
}

/// The payload `room_peer_to` hands to the core, which `room_peer_from` unpacks.
pub fn signal_payload(event: &str, data: &Map<String, Value>) -> Arc<str> {
    json!({"event": event, "data": data}).to_string().into()
}

/// A member's peer status: its global status with the room's own status over it.
pub fn merged_status(global: &Map<String, Value>, own: &Map<String, Value>) -> Value {
    let mut merged = global.clone();
    for (key, value) in own {
        merged.insert(key.clone(), value.clone());
    }
    Value::Object(merged)
}
