//! One group's state and everything members do in it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;

use super::chat::{ChatHistory, ChatMessage, ClearChat};
use super::client::{
    ClientHandle, Data, Event, GroupStatus, Joined, JoinedKind, UserInfo, UserMessage,
};
use super::description::{Description, DescriptionError, FileStamp};
use super::name::{ClientId, GroupName, random_id};
use super::permissions::{Permission, Permissions};
use super::streams::{Closing, Published};
use super::{JoinError, Registry, lock};
use crate::media::DataPayload;
use crate::media::{DownStream, Media};

/// Why an action was refused. The texts are Galène's; clients show them as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("not authorised")]
    NotAuthorised,
    #[error("no such user")]
    NoSuchUser,
    #[error("user unknown")]
    UnknownRecipient,
    #[error("this user doesn't chat")]
    DoesNotChat,
    #[error("bad value in setdata")]
    BadSetData,
    #[error("{0} is not supported by this server")]
    Unsupported(&'static str),
    #[error("you are not in this group any more")]
    NotMember,
    #[error("the value has changed")]
    Conflict,
    #[error("too many blocks")]
    TooManyBlocks,
}

/// A chat message as a client sends it.
#[derive(Clone, Debug, Default)]
pub struct ChatRequest {
    pub kind: String,
    pub id: Option<String>,
    pub dest: Option<ClientId>,
    pub value: serde_json::Value,
    pub noecho: bool,
}

/// What a member may do to another member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAction {
    Op,
    Unop,
    Present,
    Unpresent,
    Shutup,
    Unshutup,
    Identify,
    Kick,
    SetData,
}

impl UserAction {
    pub fn from_name(kind: &str) -> Option<UserAction> {
        Some(match kind {
            "op" => UserAction::Op,
            "unop" => UserAction::Unop,
            "present" => UserAction::Present,
            "unpresent" => UserAction::Unpresent,
            "shutup" => UserAction::Shutup,
            "unshutup" => UserAction::Unshutup,
            "identify" => UserAction::Identify,
            "kick" => UserAction::Kick,
            "setdata" => UserAction::SetData,
            _ => return None,
        })
    }
}

/// What a member may do to the group.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupAction {
    ClearChat(ClearChat),
    Lock(Option<String>),
    Unlock,
    Subgroups,
    SetData(serde_json::Value),
    /// Known to Galène, not offered by this server (recording, tokens).
    Unsupported(&'static str),
}

pub(super) struct Member {
    pub handle: ClientHandle,
    pub username: String,
    pub permissions: Permissions,
    pub data: Arc<Data>,
    /// This member's subscriptions, by stream id.
    pub downs: HashMap<String, Arc<DownStream>>,
}

impl Member {
    fn info(&self) -> UserInfo {
        UserInfo {
            id: self.handle.id().clone(),
            username: self.username.clone(),
            permissions: self.permissions,
            data: self.data.clone(),
            protocol: self.handle.info().protocol,
        }
    }

    fn is_op(&self) -> bool {
        self.permissions.has(Permission::Op)
    }
}

pub(super) struct State {
    description: Arc<Description>,
    /// The file version loaded; `None` once the file is gone.
    stamp: Option<FileStamp>,
    /// A room created by a frontend, with no file: it lives in memory until it is empty.
    room: bool,
    broken: bool,
    /// Members in the order they joined.
    pub members: Vec<Member>,
    /// Published streams, in the order they were offered.
    pub streams: Vec<Published>,
    /// `Some(message)` while locked; the message may be empty.
    locked: Option<String>,
    history: ChatHistory,
    data: Arc<Data>,
    empty_since: Instant,
}

impl State {
    pub fn member(&self, id: &ClientId) -> Option<&Member> {
        self.members.iter().find(|m| m.handle.id() == id)
    }

    pub fn member_mut(&mut self, id: &ClientId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.handle.id() == id)
    }

    fn has_op(&self) -> bool {
        self.members.iter().any(Member::is_op)
    }

    fn broadcast(&self, event: &Event) {
        for member in &self.members {
            member.handle.send(event.clone());
        }
    }
}

/// A group: its description, members, lock, chat history and data.
pub struct Group {
    name: GroupName,
    state: Mutex<State>,
}

impl Group {
    pub(super) fn new(name: GroupName, description: Description, stamp: FileStamp) -> Arc<Group> {
        let locked = description.autolock.then(String::new);
        Arc::new(Group {
            name,
            state: Mutex::new(State {
                description: Arc::new(description),
                stamp: Some(stamp),
                room: false,
                broken: false,
                members: Vec::new(),
                streams: Vec::new(),
                locked,
                history: ChatHistory::default(),
                data: Arc::new(Data::new()),
                empty_since: Instant::now(),
            }),
        })
    }

    /// A room without a file, created when a frontend's client asks for it: anyone may
    /// join and present, and it is forgotten once it has been empty for a while.
    pub(super) fn new_room(name: GroupName) -> Arc<Group> {
        let group = Group::new(name, room_description(), FileStamp::none());
        group.state().room = true;
        group
    }

    /// Whether this group is a room created on the fly (no file, no operators).
    pub fn is_room(&self) -> bool {
        self.state().room
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn name(&self) -> &GroupName {
        &self.name
    }

    pub fn description(&self) -> Arc<Description> {
        self.state().description.clone()
    }

    pub fn client_count(&self) -> usize {
        self.state().members.len()
    }

    pub fn status(&self) -> GroupStatus {
        status_of(&self.name, &self.state())
    }

    /// Whether new clients may find the group (its file exists and parses).
    pub(super) fn is_available(&self) -> bool {
        let state = self.state();
        state.room || (state.stamp.is_some() && !state.broken)
    }

    pub(super) fn is_broken(&self) -> bool {
        self.state().broken
    }

    /// Applies what was just read from disk: a new version is installed and members are
    /// told; a broken or missing file makes the group unavailable to newcomers while its
    /// members carry on with the last good version.
    pub(super) fn refresh(
        &self,
        loaded: Option<Result<(Description, FileStamp), DescriptionError>>,
    ) {
        let mut state = self.state();
        if state.room {
            return;
        }
        match loaded {
            None | Some(Err(DescriptionError::Missing { .. })) => {
                state.stamp = None;
                state.broken = false;
            }
            Some(Err(_)) => state.broken = true,
            Some(Ok((description, stamp))) => {
                state.broken = false;
                if state.stamp == Some(stamp) {
                    return;
                }
                let first_version = state.stamp.is_none() && state.members.is_empty();
                state.stamp = Some(stamp);
                if first_version && description.autolock {
                    state.locked.get_or_insert_with(String::new);
                }
                state.description = Arc::new(description);
                tracing::info!(group = %self.name, "group file reloaded");
                notify_change(&self.name, &state);
            }
        }
    }

    pub(super) fn is_expired(&self, now: Instant) -> bool {
        let state = self.state();
        if !state.members.is_empty() {
            return false;
        }
        let idle = now.duration_since(state.empty_since);
        if state.room {
            return idle > ROOM_EXPIRY;
        }
        state.stamp.is_none()
            || (!state.description.public
                && idle > Duration::from_secs(state.description.max_history_age_secs))
    }

    pub(super) fn add_member(
        &self,
        client: ClientHandle,
        username: String,
        permissions: Permissions,
        data: Data,
    ) -> Result<(), JoinError> {
        let mut state = self.state();
        if state.member(client.id()).is_some() {
            return Err(JoinError::DuplicateClientId);
        }
        let op = permissions.has(Permission::Op);
        if !op {
            if let Some(message) = &state.locked {
                let text = if message.is_empty() {
                    "this group is locked".to_owned()
                } else {
                    message.clone()
                };
                return Err(JoinError::Refused(text));
            }
            if let Some(error) = state.description.window_error(OffsetDateTime::now_utc()) {
                return Err(JoinError::Refused(error.into()));
            }
            if state.description.autokick && !state.has_op() {
                return Err(JoinError::Refused(
                    "there are no operators in this group".into(),
                ));
            }
            if let Some(max) = state.description.max_clients
                && state.members.len() >= max
            {
                return Err(JoinError::Refused("too many users".into()));
            }
        }

        let member = Member {
            handle: client.clone(),
            username,
            permissions,
            data: Arc::new(data),
            downs: HashMap::new(),
        };
        let info = member.info();
        state.broadcast(&Event::UserAdded(info.clone()));
        state.members.push(member);

        let max_age = Duration::from_secs(state.description.max_history_age_secs);
        state.history.prune(SystemTime::now(), max_age);
        client.send(Event::Joined(Box::new(Joined {
            kind: JoinedKind::Join,
            group: self.name.clone(),
            username: info.username.clone(),
            permissions,
            status: status_of(&self.name, &state),
            data: state.data.clone(),
        })));
        client.send(Event::ChatHistory(state.history.snapshot()));
        client.send(Event::UserAdded(info));
        for other in state.members.iter().filter(|m| !m.handle.same(&client)) {
            client.send(Event::UserAdded(other.info()));
        }
        for stream in state.streams.iter().filter(|p| p.announced()) {
            client.send(Event::StreamAdded(stream.info.clone()));
        }
        tracing::info!(group = %self.name, client = %client.id(), "joined");
        Ok(())
    }

    /// Removes a member and releases its media; `kicked` carries the reason told to it.
    /// Idempotent.
    fn remove(&self, id: &ClientId, kicked: Option<Event>) {
        let mut closing = Closing::default();
        {
            let mut state = self.state();
            let Some(index) = state.members.iter().position(|m| m.handle.id() == id) else {
                return;
            };
            let member = state.members.remove(index);
            if let Some(event) = kicked {
                member.handle.send(event);
            }
            evict(&mut state, &member, &mut closing);
            state.broadcast(&Event::UserRemoved(id.clone()));
            if state.members.is_empty() {
                state.empty_since = Instant::now();
            }
            tracing::info!(group = %self.name, client = %id, "left");
            if member.is_op() {
                self.after_op_change(&mut state, &mut closing);
            }
        }
        closing.run();
    }

    /// Autolock and autokick, applied whenever an operator leaves or loses `op`.
    fn after_op_change(&self, state: &mut State, closing: &mut Closing) {
        if state.has_op() {
            return;
        }
        if state.description.autolock && state.locked.is_none() {
            state.locked = Some(String::new());
            notify_change(&self.name, state);
        }
        if state.description.autokick {
            for member in std::mem::take(&mut state.members) {
                member.handle.send(Event::Kicked {
                    by: None,
                    by_username: None,
                    reason: "there are no operators in this group".into(),
                });
                evict(state, &member, closing);
            }
            state.empty_since = Instant::now();
        }
    }

    pub(super) fn shut_down(&self, reason: &str) {
        let mut closing = Closing::default();
        {
            let mut state = self.state();
            state.locked = Some(reason.to_owned());
            for member in std::mem::take(&mut state.members) {
                member.handle.send(Event::Kicked {
                    by: None,
                    by_username: None,
                    reason: reason.to_owned(),
                });
                evict(&mut state, &member, &mut closing);
            }
            state.empty_since = Instant::now();
        }
        closing.run();
    }

    /// Kicks a member on the authority of a credential a frontend checked itself (a Janus
    /// token with `kick_users`), for someone who need not be in the group: the member is
    /// told it was kicked, by nobody in particular.
    pub(super) fn kick_with_credential(
        &self,
        dest: &ClientId,
        reason: &str,
    ) -> Result<(), ActionError> {
        self.state().member(dest).ok_or(ActionError::NoSuchUser)?;
        tracing::info!(group = %self.name, client = %dest, "kicked on a credential");
        self.remove(
            dest,
            Some(Event::Kicked {
                by: None,
                by_username: None,
                reason: reason.to_owned(),
            }),
        );
        Ok(())
    }

    fn permissions_of(state: &State, id: &ClientId) -> Result<Permissions, ActionError> {
        state
            .member(id)
            .map(|m| m.permissions)
            .ok_or(ActionError::NotMember)
    }
}

/// How long an empty room is kept, so that people can come back to it.
pub const ROOM_EXPIRY: Duration = Duration::from_secs(600);

/// The rules of a room created on the fly: anyone may join, with any password, and present.
fn room_description() -> Description {
    use super::description::UserEntry;
    use super::password::Password;
    use super::permissions::{NamedSet, PermissionSpec};
    Description {
        wildcard_user: Some(UserEntry {
            password: Some(Password::Wildcard),
            permissions: PermissionSpec::Named(NamedSet::Present),
        }),
        max_history_age_secs: super::description::DEFAULT_HISTORY_AGE_SECS,
        codecs: super::description::DEFAULT_CODECS
            .iter()
            .map(|c| c.to_string())
            .collect(),
        ..Description::default()
    }
}

/// Releases a departed member's streams and subscriptions.
fn evict(state: &mut State, member: &Member, closing: &mut Closing) {
    for (_, up) in Group::take_streams_of(state, member.handle.id()) {
        closing.up(up);
    }
    closing.downs(member.downs.values().cloned());
}

fn status_of(name: &GroupName, state: &State) -> GroupStatus {
    let d = &state.description;
    GroupStatus {
        name: name.clone(),
        display_name: d.display_name.clone(),
        description: d.description.clone(),
        redirect: d.redirect.clone(),
        public: d.public,
        locked: state.locked.is_some(),
        client_count: state.members.len(),
    }
}

/// Tells every member that the group changed (lock, data, description).
fn notify_change(name: &GroupName, state: &State) {
    let status = status_of(name, state);
    for member in &state.members {
        member.handle.send(Event::Joined(Box::new(Joined {
            kind: JoinedKind::Change,
            group: name.clone(),
            username: member.username.clone(),
            permissions: member.permissions,
            status: status.clone(),
            data: state.data.clone(),
        })));
    }
}

/// Merges a `setdata` value into `data`: keys set to `null` are removed.
fn merge_data(data: &Data, value: &serde_json::Value) -> Result<Data, ActionError> {
    let serde_json::Value::Object(update) = value else {
        return Err(ActionError::BadSetData);
    };
    let mut merged = data.clone();
    for (key, v) in update {
        if v.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), v.clone());
        }
    }
    Ok(merged)
}

/// A client's place in a group. Dropping it leaves the group.
pub struct Membership {
    registry: Arc<Registry>,
    group: Arc<Group>,
    handle: ClientHandle,
    codecs: Vec<String>,
}

impl Membership {
    pub(super) fn new(
        registry: Arc<Registry>,
        group: Arc<Group>,
        handle: ClientHandle,
        description: &Description,
    ) -> Self {
        Membership {
            registry,
            group,
            handle,
            codecs: description.codecs.clone(),
        }
    }

    pub(super) fn handle(&self) -> &ClientHandle {
        &self.handle
    }

    pub(super) fn media(&self) -> &Arc<Media> {
        self.registry.media()
    }

    pub(super) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn group(&self) -> &Arc<Group> {
        &self.group
    }

    pub fn id(&self) -> &ClientId {
        self.handle.id()
    }

    /// The codecs the group allows, by Galène's names.
    pub fn codecs(&self) -> &[String] {
        &self.codecs
    }

    /// This member's current permissions (they change with `op`, `present`, ...).
    pub fn permissions(&self) -> Permissions {
        self.group
            .state()
            .member(self.id())
            .map_or(Permissions::NONE, |m| m.permissions)
    }

    /// This member's username.
    pub fn username(&self) -> Option<String> {
        self.group
            .state()
            .member(self.id())
            .map(|m| m.username.clone())
    }

    /// Leaves the group (dropping the membership does the same).
    pub fn leave(self) {}

    /// Sends a chat message: broadcast (stored in the history) or private (`dest`).
    pub fn chat(&self, request: ChatRequest) -> Result<(), ActionError> {
        let mut state = self.group.state();
        let sender = state.member(self.id()).ok_or(ActionError::NotMember)?;
        let needed = if request.kind == "caption" {
            Permission::Caption
        } else {
            Permission::Message
        };
        if !sender.permissions.has(needed) {
            return Err(ActionError::NotAuthorised);
        }
        let message = Arc::new(ChatMessage {
            id: request.id.unwrap_or_else(|| random_id(8)),
            source: Some(self.id().clone()),
            username: Some(sender.username.clone()),
            dest: request.dest.clone(),
            privileged: sender.is_op(),
            time: SystemTime::now(),
            kind: request.kind,
            value: request.value,
            noecho: request.noecho,
        });
        match &request.dest {
            Some(dest) => {
                let target = state.member(dest).ok_or(ActionError::UnknownRecipient)?;
                if !target.handle.info().chats {
                    return Err(ActionError::DoesNotChat);
                }
                target.handle.send(Event::Chat(message));
            }
            None => {
                let event = Event::Chat(message.clone());
                for member in &state.members {
                    if !member.handle.info().chats
                        || (request.noecho && member.handle.id() == self.id())
                    {
                        continue;
                    }
                    member.handle.send(event.clone());
                }
                state.history.push(message);
            }
        }
        Ok(())
    }

    /// Relays a user message (not stored): to `dest`, or to every member.
    pub fn user_message(
        &self,
        kind: String,
        dest: Option<ClientId>,
        value: serde_json::Value,
        noecho: bool,
    ) -> Result<(), ActionError> {
        let state = self.group.state();
        let sender = state.member(self.id()).ok_or(ActionError::NotMember)?;
        if !sender.permissions.has(Permission::Message) {
            return Err(ActionError::NotAuthorised);
        }
        let message = Arc::new(UserMessage {
            kind,
            source: Some(self.id().clone()),
            username: Some(sender.username.clone()),
            dest: dest.clone(),
            privileged: sender.is_op(),
            value,
        });
        let event = Event::UserMessage(message);
        match &dest {
            Some(dest) => {
                let target = state.member(dest).ok_or(ActionError::UnknownRecipient)?;
                target.handle.send(event);
            }
            None => {
                for member in &state.members {
                    if noecho && member.handle.id() == self.id() {
                        continue;
                    }
                    member.handle.send(event.clone());
                }
            }
        }
        Ok(())
    }

    /// Acts on another member (or, for `setdata`, on oneself).
    pub fn user_action(
        &self,
        action: UserAction,
        dest: &ClientId,
        value: &serde_json::Value,
    ) -> Result<(), ActionError> {
        let mut state = self.group.state();
        let actor = state.member(self.id()).ok_or(ActionError::NotMember)?;
        let actor_username = actor.username.clone();
        let actor_is_op = actor.is_op();

        if action == UserAction::SetData {
            if dest != self.id() {
                return Err(ActionError::NotAuthorised);
            }
            let me = state.member_mut(self.id()).ok_or(ActionError::NotMember)?;
            me.data = Arc::new(merge_data(&me.data, value)?);
            let info = me.info();
            state.broadcast(&Event::UserChanged(info));
            return Ok(());
        }

        if !actor_is_op {
            return Err(ActionError::NotAuthorised);
        }
        let target = state.member(dest).ok_or(ActionError::NoSuchUser)?;
        let allow_recording = state.description.allow_recording;
        let change = |p: Permissions| -> Permissions {
            match action {
                UserAction::Op => {
                    let p = p.with(Permission::Op);
                    if allow_recording {
                        p.with(Permission::Record)
                    } else {
                        p
                    }
                }
                UserAction::Unop => p.without(Permission::Op).without(Permission::Record),
                UserAction::Present => p.with(Permission::Present),
                UserAction::Unpresent => p.without(Permission::Present),
                UserAction::Shutup => p.without(Permission::Message),
                UserAction::Unshutup => p.with(Permission::Message),
                _ => p,
            }
        };
        match action {
            UserAction::Kick => {
                drop(state);
                self.kick(dest, actor_username, value.as_str());
                Ok(())
            }
            UserAction::Identify => {
                let address = target
                    .handle
                    .info()
                    .address
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let reply = serde_json::json!({
                    "id": dest.as_str(), "username": target.username, "address": address,
                });
                if let Some(actor) = state.member(self.id()) {
                    actor
                        .handle
                        .send(Event::UserMessage(Arc::new(UserMessage::from_server(
                            "userinfo",
                            Some(self.id().clone()),
                            reply,
                        ))));
                }
                Ok(())
            }
            _ => {
                let before = target.permissions;
                let after = change(before);
                if before == after {
                    return Ok(());
                }
                let target = state.member_mut(dest).ok_or(ActionError::NoSuchUser)?;
                target.permissions = after;
                let info = target.info();
                let handle = target.handle.clone();
                handle.send(Event::Joined(Box::new(Joined {
                    kind: JoinedKind::Change,
                    group: self.group.name.clone(),
                    username: info.username.clone(),
                    permissions: after,
                    status: status_of(&self.group.name, &state),
                    data: state.data.clone(),
                })));
                state.broadcast(&Event::UserChanged(info));
                let mut closing = Closing::default();
                if before.has(Permission::Present) && !after.has(Permission::Present) {
                    for (id, up) in Group::take_streams_of(&mut state, dest) {
                        handle.send(Event::UpAborted {
                            id,
                            reason: "permission denied".into(),
                        });
                        closing.up(up);
                    }
                }
                if before.has(Permission::Op) && !after.has(Permission::Op) {
                    self.group.after_op_change(&mut state, &mut closing);
                }
                drop(state);
                closing.run();
                Ok(())
            }
        }
    }

    fn kick(&self, dest: &ClientId, by_username: String, reason: Option<&str>) {
        let reason = reason
            .filter(|s| !s.is_empty())
            .unwrap_or("you have been kicked out")
            .to_owned();
        tracing::info!(group = %self.group.name, client = %dest, by = %self.id(), "kicked");
        self.group.remove(
            dest,
            Some(Event::Kicked {
                by: Some(self.id().clone()),
                by_username: Some(by_username),
                reason,
            }),
        );
    }

    /// Kicks a member on the authority of a credential the frontend checked itself (a
    /// Janus token with `kick_users`), whatever this member's permissions.
    pub fn kick_with_credential(&self, dest: &ClientId, reason: &str) -> Result<(), ActionError> {
        let username = {
            let state = self.group.state();
            let actor = state.member(self.id()).ok_or(ActionError::NotMember)?;
            state.member(dest).ok_or(ActionError::NoSuchUser)?;
            actor.username.clone()
        };
        self.kick(dest, username, Some(reason));
        Ok(())
    }

    /// Blocks `whom` (or lifts the block): data and media between the two stop both ways
    /// while either blocks the other, and `whom`, if present, is told. Blocks outlive the
    /// membership: they hold for the server's lifetime.
    pub fn block(&self, whom: &ClientId, blocked: bool) -> Result<(), ActionError> {
        {
            let mut blocks = lock(&self.registry.blocks);
            if blocked {
                blocks
                    .block(self.id(), whom)
                    .map_err(|_| ActionError::TooManyBlocks)?;
            } else {
                blocks.unblock(self.id(), whom);
            }
        }
        let paused = self.registry.is_blocked(self.id(), whom);
        let state = self.group.state();
        state.member(self.id()).ok_or(ActionError::NotMember)?;
        // Pause (or resume) what flows between the two, both ways.
        let owned_by = |owner: &ClientId| -> Vec<crate::media::StreamId> {
            state
                .streams
                .iter()
                .filter(|p| &p.info.owner == owner)
                .map(|p| p.up.id())
                .collect()
        };
        for (receiver, sender) in [(self.id(), whom), (whom, self.id())] {
            let ups = owned_by(sender);
            if let Some(member) = state.member(receiver) {
                for down in member.downs.values().filter(|d| ups.contains(&d.up_id())) {
                    down.set_paused(paused);
                }
            }
        }
        if let Some(target) = state.member(whom) {
            target.handle.send(Event::Blocked {
                by: self.id().clone(),
                blocked,
            });
        }
        Ok(())
    }

    /// Sends a data message to `dest`, or to every other member; members that block or
    /// are blocked by the sender get nothing. `label` names the data channel it came
    /// from (`None`: it came through signalling). Needs the `message` permission.
    pub fn send_data(
        &self,
        dest: Option<&ClientId>,
        label: Option<Arc<str>>,
        payload: DataPayload,
    ) -> Result<(), ActionError> {
        let state = self.group.state();
        let sender = state.member(self.id()).ok_or(ActionError::NotMember)?;
        if !sender.permissions.has(Permission::Message) {
            return Err(ActionError::NotAuthorised);
        }
        let event = Event::Data {
            from: self.id().clone(),
            label,
            payload,
        };
        let blocks = lock(&self.registry.blocks);
        match dest {
            Some(dest) => {
                let target = state.member(dest).ok_or(ActionError::UnknownRecipient)?;
                if !blocks.between(self.id(), dest) {
                    target.handle.send(event);
                }
            }
            None => {
                for member in &state.members {
                    let id = member.handle.id();
                    if id != self.id() && !blocks.between(self.id(), id) {
                        member.handle.send(event.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Acts on the group.
    pub fn group_action(&self, action: GroupAction) -> Result<(), ActionError> {
        let mut state = self.group.state();
        let permissions = Group::permissions_of(&state, self.id())?;
        if let GroupAction::Unsupported(what) = action {
            return Err(ActionError::Unsupported(what));
        }
        if !permissions.has(Permission::Op) {
            return Err(ActionError::NotAuthorised);
        }
        match action {
            GroupAction::ClearChat(which) => {
                state.history.clear(&which);
                let value = match &which {
                    ClearChat::All => serde_json::Value::Null,
                    ClearChat::FromUser(user) => serde_json::json!({"userId": user.as_str()}),
                    ClearChat::One { id, user } => match user {
                        Some(user) => serde_json::json!({"id": id, "userId": user.as_str()}),
                        None => serde_json::json!({"id": id}),
                    },
                };
                let username = state.member(self.id()).map(|m| m.username.clone());
                state.broadcast(&Event::UserMessage(Arc::new(UserMessage {
                    kind: "clearchat".into(),
                    source: Some(self.id().clone()),
                    username,
                    dest: None,
                    privileged: true,
                    value,
                })));
            }
            GroupAction::Lock(message) => {
                state.locked = Some(message.unwrap_or_default());
                notify_change(&self.group.name, &state);
            }
            GroupAction::Unlock => {
                state.locked = None;
                notify_change(&self.group.name, &state);
            }
            GroupAction::SetData(value) => {
                state.data = Arc::new(merge_data(&state.data, &value)?);
                notify_change(&self.group.name, &state);
            }
            GroupAction::Subgroups => {
                drop(state);
                let lines: Vec<String> = self
                    .registry
                    .subgroups(&self.group.name)
                    .into_iter()
                    .map(|(name, count)| format!("{name} ({count} clients)"))
                    .collect();
                let text = if lines.is_empty() {
                    "No subgroups".to_owned()
                } else {
                    lines.join("\n")
                };
                let state = self.group.state();
                if let Some(me) = state.member(self.id()) {
                    me.handle.send(Event::Chat(Arc::new(ChatMessage {
                        id: random_id(8),
                        source: None,
                        username: Some("Server".into()),
                        dest: Some(self.id().clone()),
                        privileged: true,
                        time: SystemTime::now(),
                        kind: String::new(),
                        value: serde_json::Value::String(text),
                        noecho: false,
                    })));
                }
            }
            GroupAction::Unsupported(_) => {}
        }
        Ok(())
    }
}

impl Membership {
    /// Sends an opaque signalling message to another member, for frontends whose peers
    /// talk to each other directly (`protocol` lets the receiving frontend ignore what is
    /// not its own).
    pub fn signal(
        &self,
        dest: &ClientId,
        protocol: &'static str,
        payload: Arc<str>,
    ) -> Result<(), ActionError> {
        let state = self.group.state();
        let sender = state.member(self.id()).ok_or(ActionError::NotMember)?;
        let target = state.member(dest).ok_or(ActionError::UnknownRecipient)?;
        target.handle.send(Event::Signal {
            from: self.id().clone(),
            username: sender.username.clone(),
            protocol,
            payload,
        });
        Ok(())
    }

    /// Sets (or with `None` removes) one key of the group's data. With `expect`, the
    /// change is made only if the key currently holds that value (`Some(None)`: absent),
    /// which makes it a compare-and-set. Everyone is told with a `joined` of kind `change`.
    /// In a group from a file only operators may do this; in a room anyone may.
    /// Returns the data as it now stands (what the `joined` carries).
    pub fn set_group_data(
        &self,
        key: &str,
        value: Option<serde_json::Value>,
        expect: Option<Option<serde_json::Value>>,
    ) -> Result<Arc<Data>, ActionError> {
        let mut state = self.group.state();
        let permissions = Group::permissions_of(&state, self.id())?;
        if !state.room && !permissions.has(Permission::Op) {
            return Err(ActionError::NotAuthorised);
        }
        if let Some(expected) = expect
            && state.data.get(key) != expected.as_ref()
        {
            return Err(ActionError::Conflict);
        }
        let mut data = (*state.data).clone();
        match value {
            Some(v) => {
                data.insert(key.to_owned(), v);
            }
            None => {
                data.remove(key);
            }
        }
        state.data = Arc::new(data);
        notify_change(&self.group.name, &state);
        Ok(state.data.clone())
    }

    /// The group's data.
    pub fn group_data(&self) -> Arc<Data> {
        self.group.state().data.clone()
    }

    /// Every member, in the order they joined.
    pub fn members(&self) -> Vec<UserInfo> {
        self.group
            .state()
            .members
            .iter()
            .map(Member::info)
            .collect()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.group.remove(self.id(), None);
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Membership({} in {})", self.id(), self.group.name)
    }
}
