//! The requests of calling-signaling, each as calls on the core or on the hub.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::hub::{Incoming, Notice, PENDING_KEY, STATUS_KEY};
use super::message::{self, Dialect, Request};
use super::room::{Room, merged_status, signal_payload};
use super::{MAX_ROOMS, PROTOCOL, Session};
use crate::group::name::random_id;
use crate::group::{
    ActionError, ClientHandle, ClientId, GroupName, JoinError, JoinRequest, RoomPolicy, UserAction,
};

/// A request's answer data (`None`: no custom data), or the error text.
type Outcome = Result<Option<Value>, String>;

/// Largest status (global, peer or room) as JSON, so no client can grow shared state
/// without bound.
const MAX_STATUS: usize = 64 * 1024;
/// `remote_ping` and `remote_timeout` times, in milliseconds.
const MIN_TIME_MS: f64 = 100.0;
const MAX_TIME_MS: f64 = 86_400_000.0;

fn check_size(value: &impl serde::Serialize, what: &str) -> Result<(), String> {
    let len = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
    if len > MAX_STATUS {
        return Err(format!("{what} is too large (at most {MAX_STATUS} bytes)"));
    }
    Ok(())
}

/// The core's join errors in the protocol's words.
fn join_error(error: JoinError) -> String {
    match error {
        JoinError::IllegalGroupName => "Invalid room id".into(),
        JoinError::NoSuchGroup => "Room does not exist".into(),
        JoinError::DuplicateClientId => "User is already in room".into(),
        JoinError::NotAuthorised => "This room needs a password and cannot be joined here".into(),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            chars.next().map_or(text.clone(), |c| {
                c.to_uppercase().collect::<String>() + chars.as_str()
            })
        }
    }
}

impl Session {
    pub(super) async fn handle(&mut self, r: Request) -> Outcome {
        let ns = r.str("namespace").unwrap_or_default().to_owned();
        let hub = &self.ctx.calling;
        match r.kind.as_str() {
            "status" => self.on_status(&r),
            "ns_subscribe" => hub.subscribe(&self.id, &ns).map(Some).map_err(Into::into),
            "ns_unsubscribe" => done(hub.unsubscribe(&self.id, &ns)),
            "ns_user_register" => done(hub.register_user(&self.id, &ns)),
            "ns_user_unregister" => done(hub.unregister_user(&self.id, &ns)),
            "ns_room_register" => {
                let room = self.member_room(r.str("room"))?;
                done(hub.register_room(&ns, &room.name, &room.membership))
            }
            "ns_room_unregister" => {
                let room = r.str("room").and_then(GroupName::new);
                let room = room.ok_or("Room was not registered to namespace")?;
                done(hub.unregister_room(&ns, &room))
            }
            "room_join" => self.on_join(&r).await,
            "room_leave" => {
                let name = self.member_room(r.str("room"))?.name.clone();
                self.remove_room(&name);
                Ok(None)
            }
            "room_status" => self.on_room_status(&r),
            "room_peer_status" | "room_peer_update" => self.on_peer_status(&r),
            "room_peer_to" => self.on_peer_to(&r),
            "invite_send" => self.on_invite_send(&r).await,
            "invite_accept" => self.on_invite_accept(&r),
            "invite_deny" => self.on_invite_deny(&r),
            "invite_cancel" => {
                let handle = r.handle().ok_or("Invalid invitation handle")?;
                let invite = hub.take_outgoing(&self.id, handle);
                let invite = invite.ok_or("Invalid invitation handle")?;
                let handle = invite.to_handle;
                hub.notify(&invite.to, Notice::InviteCancelled { handle });
                Ok(None)
            }
            "ping" => Ok(None),
            "remote_ping" => {
                let every = time(&r)?;
                self.live.set_ping(every);
                Ok(None)
            }
            "remote_timeout" => {
                let after = time(&r)?;
                self.live.set_timeout(after);
                Ok(None)
            }
            other => Err(format!("Unknown command {other:?}")),
        }
    }

    /// A room the client is a full member of.
    fn member_room(&self, name: Option<&str>) -> Result<&Room, String> {
        let room = name
            .and_then(GroupName::new)
            .and_then(|name| self.rooms.get(&name))
            .ok_or("You are not in the room")?;
        if room.pending.is_some() {
            return Err("You are only invited to the room".into());
        }
        Ok(room)
    }

    fn member_room_mut(&mut self, name: Option<&str>) -> Result<&mut Room, String> {
        let name = self.member_room(name)?.name.clone();
        self.rooms
            .get_mut(&name)
            .ok_or_else(|| "You are not in the room".into())
    }

    /// Writes a room's peer status (and clears the pending mark) into the member's data.
    fn publish_status(&self, name: &GroupName) {
        let Some(room) = self.rooms.get(name) else {
            return;
        };
        let mut data = json!({STATUS_KEY: merged_status(&self.global, &room.own_status)});
        if room.pending.is_none() {
            data[PENDING_KEY] = Value::Null;
        }
        // Fails only once the member was removed, which its queue is about to say.
        let _ = room
            .membership
            .user_action(UserAction::SetData, &self.id, &data);
        self.ctx.calling.reconcile(name, &room.membership);
    }

    fn on_status(&mut self, r: &Request) -> Outcome {
        let status = r.obj("status").cloned().unwrap_or_default();
        check_size(&status, "Status")?;
        self.global = status;
        self.ctx
            .calling
            .set_status(&self.id, Value::Object(self.global.clone()));
        for name in self.rooms.keys().cloned().collect::<Vec<_>>() {
            self.publish_status(&name);
        }
        Ok(None)
    }

    async fn on_join(&mut self, r: &Request) -> Outcome {
        let policy = self.ctx.calling_rooms;
        let name = match (r.str("room"), policy) {
            (Some(name), _) => name.to_owned(),
            (None, RoomPolicy::Any) => random_id(16),
            (None, RoomPolicy::Existing) => {
                return Err(
                    "This server does not create rooms: name an existing room to join".into(),
                );
            }
        };
        let name = GroupName::new(&name).ok_or("Invalid room id")?;
        if self.rooms.contains_key(&name) {
            return Err("User is already in room".into());
        }
        if self.rooms.len() >= MAX_ROOMS {
            return Err(format!("Too many rooms (at most {MAX_ROOMS})"));
        }
        let own = r.obj("status").cloned().unwrap_or_default();
        check_size(&own, "Status")?;
        let mut data = Map::new();
        data.insert(STATUS_KEY.into(), merged_status(&self.global, &own));
        let (client, mut queue) =
            ClientHandle::new(self.client_info(self.id.clone(), self.address));
        let request = JoinRequest {
            group: name.to_string(),
            username: self.id.to_string(),
            password: None,
            client,
            data,
        };
        let membership = self
            .ctx
            .registry
            .join_room(request, policy)
            .await
            .map_err(join_error)?;
        let serial = self.serial();
        let mut room = Room::new(name.clone(), serial, membership, None, own);
        let first = room.prime(&mut queue);
        self.ctx.calling.reconcile(&name, &room.membership);
        let mut answer = json!({"room": name.as_str(), "peers": room.peers_json()});
        if self.dialect == Dialect::RtcLib {
            answer["status"] = room.status_json();
        }
        self.add_room(room, queue, first);
        Ok(Some(answer))
    }

    fn on_room_status(&mut self, r: &Request) -> Outcome {
        let key = r.str("key").unwrap_or_default().to_owned();
        let value = r.any("value").cloned();
        // Without `check`, `previous` means nothing; with it, an absent `previous`
        // expects the key to be absent.
        let expect = (r.bool("check") == Some(true)).then(|| r.any("previous").cloned());
        let ctx = self.ctx.clone();
        let room = self.member_room_mut(r.str("room"))?;
        let current = room.membership.group_data();
        let mut after = (*current).clone();
        match &value {
            Some(v) => after.insert(key.clone(), v.clone()),
            None => after.remove(&key),
        };
        check_size(&after, "Room status")?;
        let data = room
            .membership
            .set_group_data(&key, value, expect)
            .map_err(|e| match e {
                ActionError::Conflict => "Status not in expected state".to_owned(),
                ActionError::NotAuthorised => {
                    "Only operators may change the status of this room".to_owned()
                }
                other => other.to_string(),
            })?;
        // The setter is not told of its own change (`room_update` goes to the others).
        room.own_change(data);
        ctx.calling.reconcile(&room.name, &room.membership);
        Ok(None)
    }

    fn on_peer_status(&mut self, r: &Request) -> Outcome {
        if r.bool("pending") == Some(true) {
            return Err("pending can only be set to false".into());
        }
        let status = r.obj("status").cloned();
        let room = self.member_room_mut(r.str("room"))?;
        if let Some(status) = status {
            check_size(&status, "Status")?;
            room.own_status = status;
            let name = room.name.clone();
            self.publish_status(&name);
        }
        Ok(None)
    }

    fn on_peer_to(&mut self, r: &Request) -> Outcome {
        let room = self.member_room(r.str("room"))?;
        let dest = r.str("user").and_then(ClientId::new);
        let dest = dest.ok_or("Unknown recipient")?;
        let peer = room.peers.get(&dest).ok_or("Unknown recipient")?;
        if peer.pending {
            return Err("Recipient is pending".into());
        }
        let data = r.obj("data").cloned().unwrap_or_default();
        let payload = signal_payload(r.str("event").unwrap_or_default(), &data);
        room.membership
            .signal(&dest, PROTOCOL, payload)
            .map_err(|_| "Unknown recipient")?;
        Ok(None)
    }

    async fn on_invite_send(&mut self, r: &Request) -> Outcome {
        let room = self.member_room(r.str("room"))?;
        let name = room.name.clone();
        let to = r.str("user").and_then(ClientId::new);
        let to = to.ok_or("Unknown recipient")?;
        if to == self.id {
            return Err("You cannot invite yourself".into());
        }
        if room.peers.contains_key(&to) {
            return Err("User is already in room".into());
        }
        let hub = &self.ctx.calling;
        let ticket = hub.invite_begin(&self.id, &to)?;
        // The invited connection becomes a pending member now, as in the original; its
        // own task takes the membership over with the notice.
        let mut data = Map::new();
        data.insert(STATUS_KEY.into(), ticket.to_status.clone());
        data.insert(PENDING_KEY.into(), Value::Bool(true));
        let (client, queue) = ClientHandle::new(self.client_info(to.clone(), ticket.to_address));
        let request = JoinRequest {
            group: name.to_string(),
            username: to.to_string(),
            password: None,
            client,
            data,
        };
        let joined = self
            .ctx
            .registry
            .join_room(request, self.ctx.calling_rooms)
            .await;
        let hub = &self.ctx.calling;
        let membership = match joined {
            Ok(membership) => membership,
            Err(error) => {
                hub.invite_abort(ticket.id);
                return Err(join_error(error));
            }
        };
        let incoming = Incoming {
            handle: ticket.to_handle,
            sender: self.id.clone(),
            sender_status: ticket.sender_status,
            room: name,
            data: Value::Object(r.obj("data").cloned().unwrap_or_default()),
            membership,
            queue,
        };
        if !hub.notify(&to, Notice::Invite(Box::new(incoming))) {
            hub.invite_abort(ticket.id);
            return Err("Unknown recipient".into());
        }
        let handle = message::handle(self.dialect, ticket.from_handle);
        Ok(Some(json!({ "handle": handle })))
    }

    /// An invitation arrives: the client is a pending member of the room from now on.
    pub(super) async fn on_invite(&mut self, incoming: Incoming) -> Result<(), super::End> {
        let hub = &self.ctx.calling;
        // Cancelled meanwhile: the membership goes, and the cancellation is not told.
        if !hub.is_invited(&self.id, incoming.handle) {
            return Ok(());
        }
        if self.rooms.len() >= MAX_ROOMS || self.rooms.contains_key(&incoming.room) {
            if let Some(invite) = hub.take_incoming(&self.id, incoming.handle) {
                let notice = Notice::InviteResponse {
                    handle: invite.from_handle,
                    accepted: false,
                };
                hub.notify(&invite.from, notice);
            }
            return Ok(());
        }
        let Incoming {
            handle,
            sender,
            sender_status,
            room: name,
            data,
            membership,
            mut queue,
        } = incoming;
        let serial = self.serial();
        let mut room = Room::new(name.clone(), serial, membership, Some(handle), Map::new());
        let first = room.prime(&mut queue);
        self.ctx.calling.reconcile(&name, &room.membership);
        let handle = message::handle(self.dialect, handle);
        let message = match self.dialect {
            Dialect::Document => json!({
                "type": "invite_incoming", "handle": handle, "user": sender.as_str(),
                "status": sender_status, "data": data,
            }),
            Dialect::RtcLib => json!({
                "type": "invite_incoming", "handle": handle, "sender": sender.as_str(),
                "room": name.as_str(), "status": room.status_json(), "peers": room.peers_json(),
                "data": data,
            }),
        };
        self.add_room(room, queue, first);
        self.send(&message).await?;
        self.run_deferred().await
    }

    /// The pending room an incoming invitation handle is for, taking the invitation.
    fn take_invitation(&mut self, r: &Request) -> Result<(GroupName, super::hub::Invite), String> {
        let handle = r.handle().ok_or("Invalid invitation handle")?;
        let name = self
            .pending_room(handle)
            .ok_or("Invalid invitation handle")?;
        let invite = self.ctx.calling.take_incoming(&self.id, handle);
        Ok((name, invite.ok_or("Invalid invitation handle")?))
    }

    fn on_invite_accept(&mut self, r: &Request) -> Outcome {
        let own = r.obj("status").cloned().unwrap_or_default();
        check_size(&own, "Status")?;
        let (name, invite) = self.take_invitation(r)?;
        let Some(room) = self.rooms.get_mut(&name) else {
            return Err("Invalid invitation handle".into());
        };
        room.pending = None;
        room.own_status = own;
        self.publish_status(&name);
        let notice = Notice::InviteResponse {
            handle: invite.from_handle,
            accepted: true,
        };
        self.ctx.calling.notify(&invite.from, notice);
        Ok(match self.dialect {
            // rtc-lib has the room from `invite_incoming` and takes no second description.
            Dialect::RtcLib => None,
            // The document's `invite_incoming` does not name the room: the answer does.
            Dialect::Document => {
                let peers = self.rooms.get(&name).map(Room::peers_json);
                let peers = peers.unwrap_or_else(|| json!({}));
                Some(json!({"room": name.as_str(), "peers": peers}))
            }
        })
    }

    fn on_invite_deny(&mut self, r: &Request) -> Outcome {
        let (name, invite) = self.take_invitation(r)?;
        self.remove_room(&name);
        let notice = Notice::InviteResponse {
            handle: invite.from_handle,
            accepted: false,
        };
        self.ctx.calling.notify(&invite.from, notice);
        Ok(None)
    }
}

fn done(result: Result<(), &'static str>) -> Outcome {
    result.map(|()| None).map_err(Into::into)
}

fn time(r: &Request) -> Result<Duration, String> {
    let ms = r.num("time").unwrap_or_default();
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        return Err(format!(
            "time must be between {MIN_TIME_MS} and {MAX_TIME_MS} milliseconds"
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}
