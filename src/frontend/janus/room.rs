//! janus.plugin.sfu inside a session: the `message` request (plugin messages and JSEPs).
//! What the group core tells the session's users is in `events`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::PROTOCOL;
use super::plugin::{self, Message, Subscription};
use super::protocol::{self, Envelope, Jsep, code};
use super::session::{Down, Session, Up, User, UserKey, jsep, membership_of};
use super::token::AuthKey;
use super::transport::Reply;
use super::users::{MEMBER_MARK, RoomView, main_stream};
use crate::group::{
    ActionError, ClientHandle, ClientId, ClientInfo, DataPayload, EventSink, GroupName, JoinError,
    JoinRequest, Layout, MediaEvent, Membership, TrackSelection, UserAction, VideoSelection,
};

/// The label under which a Janus client's stream appears to other clients.
const LABEL: &str = "camera";

/// Marks (or unmarks) a user as a room member in its user data, so that other Janus
/// sessions learn of it through the core.
pub(super) fn set_mark(membership: &Membership, on: bool) {
    let value = if on { Value::Bool(true) } else { Value::Null };
    let change = json!({ MEMBER_MARK: value });
    if let Err(error) = membership.user_action(UserAction::SetData, membership.id(), &change) {
        tracing::debug!("cannot mark a Janus user: {error}");
    }
}

type Outcome = Result<(Option<Value>, Option<Value>), String>;

impl Session {
    /// `message`: checked as Janus checks it and acked at once; the plugin's reply follows
    /// as an event carrying the request's transaction.
    pub async fn message(&mut self, envelope: Envelope, handle: u64, reply: Reply) {
        let (body, jsep) = match protocol::message_parts(&envelope) {
            Ok(parts) => parts,
            Err(error) => return reply.send(error.to_json()),
        };
        if let Some(Jsep::Offer(sdp) | Jsep::Answer(sdp)) = &jsep
            && let Err(why) = crate::group::check_sdp(sdp)
        {
            return reply.send(
                envelope
                    .error(
                        code::JSEP_INVALID_SDP,
                        format!("JSEP error: invalid SDP: {why}"),
                    )
                    .to_json(),
            );
        }
        let mut ack = envelope.reply("ack");
        ack.insert("hint".into(), "Processing.".into());
        reply.send(Value::Object(ack));
        let (data, jsep) = match self.process(handle, body, jsep).await {
            Ok((response, jsep)) => (plugin::success(response), jsep),
            Err(message) => (plugin::failure(&message), None),
        };
        self.reply_event(&envelope, handle, data, jsep);
    }

    /// The plugin message first, then the JSEP, as the original plugin does.
    async fn process(
        &mut self,
        handle: u64,
        body: serde_json::Map<String, Value>,
        jsep: Option<Jsep>,
    ) -> Outcome {
        let mut response = None;
        let mut out = None;
        if let Some(message) = plugin::parse(&body)? {
            let (r, j) = self.plugin_message(handle, message).await?;
            response = Some(r);
            out = j;
        }
        match jsep {
            Some(Jsep::Offer(sdp)) => out = Some(self.offer(handle, &sdp).await?),
            Some(Jsep::Answer(sdp)) => self.answer(handle, &sdp).await?,
            None => {}
        }
        Ok((response, out))
    }

    async fn plugin_message(
        &mut self,
        handle: u64,
        message: Message,
    ) -> Result<(Value, Option<Value>), String> {
        match message {
            Message::Join {
                room,
                user,
                subscribe,
                token,
            } => {
                self.join(handle, &room, &user, subscribe, token.as_deref())
                    .await
            }
            Message::Subscribe { what, token } => {
                let jsep = self.subscribe(handle, what, token.as_deref()).await?;
                Ok((json!({}), jsep))
            }
            Message::Block { whom } => self.block(handle, &whom, true).map(|_| (json!({}), None)),
            Message::Unblock { whom } => {
                self.block(handle, &whom, false).map(|_| (json!({}), None))
            }
            Message::Kick { room, user, token } => self
                .kick(&room, &user, token.as_deref())
                .map(|_| (json!({}), None)),
            Message::Data { whom, body } => self
                .data(handle, whom.as_deref(), body)
                .map(|_| (json!({}), None)),
        }
    }

    /// The configured token key: `None` when the server has none, an error (logged)
    /// when it cannot be read.
    fn auth_key(&self) -> Result<Option<Arc<AuthKey>>, String> {
        let config = self.ctx.config.server();
        let Some(path) = config.janus.as_ref().and_then(|j| j.auth_key.as_ref()) else {
            return Ok(None);
        };
        let path = self.ctx.config.data_dir().join(path);
        self.ctx.janus.keys.get(&path).map(Some).map_err(|error| {
            tracing::error!("janus.authKey: {error}");
            "The server cannot check tokens now.".to_owned()
        })
    }

    fn check_join_token(&self, room: &str, token: Option<&str>) -> Result<(), String> {
        let Some(key) = self.auth_key()? else {
            return Ok(());
        };
        let token = token.ok_or("Rejecting anonymous join!")?;
        match key.verify(token) {
            Ok(claims) if claims.may_join(room) => Ok(()),
            Ok(_) => Err("Rejecting join without permission!".into()),
            Err(error) => {
                tracing::debug!(room, "Janus join with a bad token: {error}");
                Err("Rejecting join with invalid token!".into())
            }
        }
    }

    async fn join(
        &mut self,
        id: u64,
        room: &str,
        user: &str,
        subscribe: Option<Subscription>,
        token: Option<&str>,
    ) -> Result<(Value, Option<Value>), String> {
        let Some(handle) = self.handles.get(&id) else {
            return Err("No such handle.".into());
        };
        if handle.joined.is_some() {
            return Err("Handles may only join once!".into());
        }
        // The original's text; it refuses after joining, we before anything happens.
        if subscribe.is_some() && handle.subscription.is_some() {
            return Err("Handles may only subscribe once!".into());
        }
        self.check_join_token(room, token)?;
        let group = GroupName::new(room).ok_or_else(|| format!("Invalid room_id {room:?}."))?;
        let user_id = ClientId::new(user).ok_or_else(|| format!("Invalid user_id {user:?}."))?;
        let member = subscribe.as_ref().is_some_and(|s| s.data);
        let key: UserKey = (group, user_id.clone());
        let limits = self.ctx.config.server().janus.clone().unwrap_or_default();
        if !self.users.contains_key(&key) {
            if member
                && limits
                    .max_clients
                    .is_some_and(|max| self.ctx.registry.client_count() >= max)
            {
                return Err("Server is full.".into());
            }
            self.enter(&key).await?;
        }
        let alone = self.handles_of(&key).is_empty();
        let Some(entry) = self.users.get_mut(&key) else {
            return Err("Not in the room any more.".into());
        };
        if member && !entry.marked {
            if limits
                .max_room_size
                .is_some_and(|max| entry.view.users().len() >= max)
            {
                if alone {
                    self.users.remove(&key);
                }
                return Err("Room is full.".into());
            }
            set_mark(&entry.membership, true);
            entry.marked = true;
        }
        // A connection negotiated before the join becomes the user's stream in the room.
        let Some(handle) = self.handles.get_mut(&id) else {
            return Err("No such handle.".into());
        };
        if let Up::Detached(_) = handle.up {
            let Up::Detached(detached) = std::mem::replace(&mut handle.up, Up::None) else {
                return Err("No such handle.".into());
            };
            match entry.membership.adopt(detached, &handle.stream_id(), LABEL) {
                Ok(serial) => handle.up = Up::Published { serial },
                Err(error) => {
                    self.emit_handle_event("hangup", id, json!({"reason": "Close PC"}));
                    if alone {
                        self.users.remove(&key);
                    }
                    return Err(format!("Cannot publish in room {room}: {error}"));
                }
            }
        }
        handle.joined = Some(key.clone());
        handle.member = member;
        if subscribe.is_some() {
            handle.subscription = subscribe.clone();
        }
        let users: Vec<String> = entry
            .view
            .users()
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect();
        tracing::debug!(
            session = self.id,
            handle = id,
            room,
            user,
            member,
            "Janus join"
        );
        let response = json!({"users": {room: users}});
        let jsep = match subscribe.and_then(|s| s.media) {
            Some(target) => Some(self.subscribe_media(id, &target).await?),
            None => None,
        };
        Ok((response, jsep))
    }

    /// Joins the room's group as a new user of this session.
    async fn enter(&mut self, key: &UserKey) -> Result<(), String> {
        let (room, user) = key;
        let (client, queue) = ClientHandle::new(ClientInfo {
            id: user.clone(),
            protocol: PROTOCOL,
            address: self.address,
            chats: false,
        });
        let request = JoinRequest {
            group: room.to_string(),
            username: user.to_string(),
            password: None,
            client,
            data: Default::default(),
        };
        let membership = self
            .ctx
            .registry
            .join_room(request, self.ctx.janus_rooms)
            .await
            .map_err(|error| match error {
                JoinError::DuplicateClientId => {
                    format!("User ID {user} is already in room {room}.")
                }
                other => format!("Cannot join room {room}: {other}"),
            })?;
        let view = RoomView::new(
            user.clone(),
            membership.members(),
            membership.group().streams(None),
        );
        self.users.insert(
            key.clone(),
            User {
                membership,
                view,
                marked: false,
            },
        );
        self.watch(key.clone(), queue);
        Ok(())
    }

    /// `subscribe`: the handle's subscription, set once, with a JSEP offer when it names
    /// a user to receive.
    async fn subscribe(
        &mut self,
        id: u64,
        what: Subscription,
        token: Option<&str>,
    ) -> Result<Option<Value>, String> {
        let Some(handle) = self.handles.get_mut(&id) else {
            return Err("No such handle.".into());
        };
        if handle.subscription.is_some() {
            return Err("Users may only subscribe once!".into());
        }
        if let (Some(token), Some((room, _))) = (token, handle.joined.clone())
            && let Some(key) = self.auth_key()?
        {
            let claims = key
                .verify(token)
                .map_err(|_| "Rejecting subscription with invalid token!".to_owned())?;
            if !claims.covers(room.as_str()) {
                return Err("Rejecting subscription without permission!".into());
            }
        }
        let media = what.media.clone();
        if let Some(handle) = self.handles.get_mut(&id) {
            handle.subscription = Some(what);
        }
        match media {
            Some(target) => Ok(Some(self.subscribe_media(id, &target).await?)),
            None => Ok(None),
        }
    }

    /// Opens the handle's connection to `target`'s main stream: one m-line for audio and
    /// one for video whether or not it sends them yet, filled as it does.
    async fn subscribe_media(&mut self, id: u64, target: &str) -> Result<Value, String> {
        let Some(handle) = self.handles.get(&id) else {
            return Err("No such handle.".into());
        };
        let key = handle
            .joined
            .clone()
            .ok_or("Cannot subscribe when not in a room.")?;
        if !matches!(handle.up, Up::None) {
            return Err("This handle publishes; receive on another handle.".into());
        }
        if handle.down.is_some() {
            return Err("This handle already receives a user's media.".into());
        }
        let nonexistent = || "Can't subscribe to a nonexistent publisher.".to_owned();
        let target = ClientId::new(target).ok_or_else(nonexistent)?;
        if target == key.1 {
            return Err("Can't subscribe to yourself.".into());
        }
        let Some(user) = self.users.get(&key) else {
            return Err(nonexistent());
        };
        let streams = user.membership.streams_of(&target);
        let stream = main_stream(&streams).ok_or_else(nonexistent)?.clone();
        let taken = self.handles.values().any(|h| {
            h.joined.as_ref() == Some(&key)
                && h.down.as_ref().is_some_and(|d| d.stream_id == stream.id)
        });
        if taken {
            return Err(format!(
                "Already receiving {target}'s media on another handle."
            ));
        }
        let selection = TrackSelection {
            audio: true,
            video: VideoSelection::High,
        };
        let negotiated = user
            .membership
            .subscribe(&stream.id, selection, Layout::Slots)
            .await
            .map_err(|e| format!("Can't subscribe to {target}: {e}"))?
            .ok_or_else(|| format!("{target} has nothing this room can carry."))?;
        let sdp = user
            .membership
            .gathered_sdp(&stream.id)
            .await
            .map_err(|e| format!("Can't subscribe to {target}: {e}"))?;
        if let Some(handle) = self.handles.get_mut(&id) {
            handle.down = Some(Down {
                stream_id: stream.id.clone(),
                serial: negotiated.serial,
            });
        }
        self.flush_early_candidates(id).await;
        Ok(jsep("offer", sdp))
    }

    /// An offer: the handle publishes (or renegotiates) its audio, video and data
    /// channels. Before the handle joined a room the connection is held aside, and
    /// becomes the user's stream when it joins.
    async fn offer(&mut self, id: u64, sdp: &str) -> Result<Value, String> {
        let Some(handle) = self.handles.get_mut(&id) else {
            return Err("No such handle.".into());
        };
        if handle.down.is_some() {
            return Err(
                "This handle receives a user's media: it takes answers, not offers.".into(),
            );
        }
        let stream_id = handle.stream_id();
        let membership = membership_of(&self.users, handle);
        let answer = match (membership, &handle.up) {
            (Some(membership), _) => {
                let negotiated = membership
                    .publish(&stream_id, LABEL, None, sdp)
                    .await
                    .map_err(|e| format!("Cannot publish: {e}"))?;
                handle.up = Up::Published {
                    serial: negotiated.serial,
                };
                membership.gathered_sdp(&stream_id).await
            }
            (None, Up::Detached(detached)) => {
                detached
                    .renegotiate(sdp)
                    .await
                    .map_err(|e| format!("Cannot publish: {e}"))?;
                detached.gathered_sdp().await
            }
            (None, _) => {
                let events = self.detached_events.clone();
                let sink: EventSink = Arc::new(move |event: MediaEvent| {
                    // Nothing can be done with data before the handle is in a room.
                    if !matches!(event, MediaEvent::Data { .. }) {
                        let _ = events.send((id, event));
                    }
                });
                let (detached, _) = self
                    .ctx
                    .registry
                    .publish_detached(sdp, sink)
                    .await
                    .map_err(|e| format!("Cannot publish: {e}"))?;
                let answer = detached.gathered_sdp().await;
                handle.up = Up::Detached(detached);
                answer
            }
        }
        .map_err(|e| format!("Cannot publish: {e}"))?;
        self.flush_early_candidates(id).await;
        Ok(jsep("answer", answer))
    }

    /// An answer to the offer of a handle that receives a user's media.
    async fn answer(&mut self, id: u64, sdp: &str) -> Result<(), String> {
        let handle = self.handles.get(&id).ok_or("No such handle.")?;
        let (Some(down), Some(key)) = (&handle.down, &handle.joined) else {
            return Err("Unexpected answer: this handle was sent no offer.".into());
        };
        let user = self.users.get(key).ok_or("Not in the room any more.")?;
        user.membership
            .set_down_answer(&down.stream_id, sdp)
            .await
            .map_err(|e| format!("Cannot use the answer: {e}"))
    }

    fn block(&mut self, id: u64, whom: &str, blocked: bool) -> Result<(), String> {
        let key = self.handles.get(&id).and_then(|h| h.joined.clone());
        let Some(user) = key.as_ref().and_then(|k| self.users.get(k)) else {
            return Err(if blocked {
                "Cannot block when not in a room.".into()
            } else {
                "Cannot unblock when not in a room.".into()
            });
        };
        let whom = ClientId::new(whom).ok_or_else(|| format!("Invalid user id {whom:?}."))?;
        user.membership
            .block(&whom, blocked)
            .map_err(|e| e.to_string())
    }

    fn kick(&mut self, room: &str, user: &str, token: Option<&str>) -> Result<(), String> {
        let key = self.auth_key()?.ok_or(
            "Kicking needs a token with kick_users, and this server has no key to check one.",
        )?;
        let token = token.ok_or("Rejecting kick without a token!")?;
        let claims = key
            .verify(token)
            .map_err(|_| "Rejecting kick with invalid token!".to_owned())?;
        // A token that lists rooms kicks only in those.
        if !claims.kick_users || !claims.covers(room) {
            return Err("Rejecting kick without permission!".into());
        }
        let group = GroupName::new(room).ok_or_else(|| format!("Invalid room_id {room:?}."))?;
        let target = ClientId::new(user).ok_or_else(|| format!("Invalid user_id {user:?}."))?;
        // As in the original, the token is the authority: the kicker need not be in the room.
        match self
            .ctx
            .registry
            .kick_with_credential(&group, &target, "kicked out by a moderator")
        {
            Ok(()) => Ok(()),
            Err(ActionError::NoSuchUser) => Err(format!("No user {user} in room {room}.")),
            Err(error) => Err(error.to_string()),
        }
    }

    fn data(&mut self, id: u64, whom: Option<&str>, body: String) -> Result<(), String> {
        let key = self.handles.get(&id).and_then(|h| h.joined.clone());
        let Some(user) = key.as_ref().and_then(|k| self.users.get(k)) else {
            return Err("Cannot send data when not in a room.".into());
        };
        let dest = match whom {
            Some(whom) => {
                Some(ClientId::new(whom).ok_or_else(|| format!("Invalid user id {whom:?}."))?)
            }
            None => None,
        };
        match user
            .membership
            .send_data(dest.as_ref(), None, DataPayload::Text(body.into()))
        {
            // As the original: data for someone who is not there goes nowhere.
            Ok(()) | Err(ActionError::UnknownRecipient) => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    }
}
