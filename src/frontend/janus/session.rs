//! One Janus session: an actor task that owns its handles, the users they joined rooms as
//! (each a client of the group core) and its timeout. Requests reach it through a
//! channel from either transport; it answers each on the transport it came from and
//! sends everything asynchronous (plugin events, `webrtcup`, `hangup`, ...) to the
//! session's own output: its WebSocket, or the queue that HTTP long polls drain.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SelectAll, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::plugin::Subscription;
use super::protocol::{self, ApiError, Envelope, code};
use super::transport::{Output, Reply};
use super::users::RoomView;
use super::{MAX_HANDLES, SESSION_TIMEOUT};
use crate::frontend::Context;
use crate::group::{
    ClientId, Detached, Event, EventQueue, GroupName, MediaEvent, MediaKind, Membership,
};

/// How often the session checks its timeout.
const TICK: Duration = Duration::from_secs(1);
/// Trickled candidates kept for a handle whose connection does not exist yet.
const MAX_EARLY_CANDIDATES: usize = 64;

/// A request from a transport, with where its reply goes.
pub struct Request {
    pub envelope: Envelope,
    pub reply: Reply,
}

/// A room and user id: one of the session's users.
pub(super) type UserKey = (GroupName, ClientId);

/// A user the session's handles joined a room as: a client of the group core.
pub(super) struct User {
    pub membership: Membership,
    pub view: RoomView,
    /// Whether it is marked as a room member (a handle joined with `data: true`).
    pub marked: bool,
}

/// What a handle publishes.
pub(super) enum Up {
    None,
    /// Negotiated before the handle joined a room.
    Detached(Detached),
    /// A stream of the user's in its room (id [`Handle::stream_id`]).
    Published {
        serial: u64,
    },
}

/// What a handle receives: another user's main stream.
pub(super) struct Down {
    pub stream_id: String,
    pub serial: u64,
}

/// A handle attached to janus.plugin.sfu.
pub(super) struct Handle {
    pub id: u64,
    /// The room and user it joined as.
    pub joined: Option<UserKey>,
    /// Whether it joined as a room member (`subscribe.data` at join).
    pub member: bool,
    pub subscription: Option<Subscription>,
    pub up: Up,
    pub down: Option<Down>,
    /// Candidates that came before the connection they belong to.
    pub early_candidates: Vec<Value>,
}

impl Handle {
    /// The id of the stream this handle publishes in its room.
    pub fn stream_id(&self) -> String {
        format!("janus-{}", self.id)
    }

    pub fn has_connection(&self) -> bool {
        self.down.is_some() || !matches!(self.up, Up::None)
    }

    pub fn notifications(&self) -> bool {
        self.subscription.as_ref().is_some_and(|s| s.notifications)
    }

    pub fn wants_data(&self) -> bool {
        self.subscription.as_ref().is_some_and(|s| s.data)
    }
}

type Queues = SelectAll<Pin<Box<dyn Stream<Item = (UserKey, Event)> + Send>>>;

/// The session actor.
pub(super) struct Session {
    pub id: u64,
    /// Which session of this id it is (see `Sessions::end`).
    serial: u64,
    pub ctx: Arc<Context>,
    /// The address of the client that created the session.
    pub address: Option<SocketAddr>,
    pub output: Output,
    pub handles: BTreeMap<u64, Handle>,
    pub users: HashMap<UserKey, User>,
    /// The core's events for each user.
    queues: Queues,
    /// Events of connections negotiated before their handle joined a room.
    pub detached_events: mpsc::UnboundedSender<(u64, MediaEvent)>,
    detached_rx: mpsc::UnboundedReceiver<(u64, MediaEvent)>,
    /// Shared with the registry, which long polls touch.
    pub last_activity: Arc<Mutex<Instant>>,
    /// Set by `destroy`, a timeout, or an output that can take no more.
    pub ended: bool,
    /// Set by a timeout.
    timed_out: bool,
}

impl Session {
    pub fn new(
        id: u64,
        serial: u64,
        ctx: Arc<Context>,
        address: Option<SocketAddr>,
        output: Output,
        last_activity: Arc<Mutex<Instant>>,
    ) -> Self {
        let (detached_events, detached_rx) = mpsc::unbounded_channel();
        Session {
            id,
            serial,
            ctx,
            address,
            output,
            handles: BTreeMap::new(),
            users: HashMap::new(),
            queues: SelectAll::new(),
            detached_events,
            detached_rx,
            last_activity,
            ended: false,
            timed_out: false,
        }
    }

    /// Runs until the session is destroyed, times out, or its transport goes.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut tick = tokio::time::interval(TICK);
        let shutdown = self.ctx.shutdown.clone();
        while !self.ended {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request).await,
                    None => break,
                },
                Some((key, event)) = self.queues.next(), if !self.queues.is_empty() => {
                    self.on_core_event(key, event).await;
                }
                Some((handle, event)) = self.detached_rx.recv() => {
                    self.on_detached_event(handle, event).await;
                }
                _ = tick.tick() => self.check_timeout(),
                _ = shutdown.cancelled() => break,
            }
        }
        // An HTTP client learns of its timeout from its next long poll.
        let last_events = match &self.output {
            Output::Http(queue) if self.timed_out => Some(queue.clone()),
            _ => None,
        };
        self.ctx
            .janus
            .sessions
            .end(self.id, self.serial, last_events);
        // Requests that came after the end are answered: the session is gone.
        requests.close();
        while let Ok(request) = requests.try_recv() {
            let error = request.envelope.error(
                code::SESSION_NOT_FOUND,
                format!("No such session {}", self.id),
            );
            request.reply.send(error.to_json());
        }
        tracing::debug!(session = self.id, "Janus session over");
        // Handles and users drop here: connections close and users leave their rooms.
    }

    fn check_timeout(&mut self) {
        let idle = self
            .last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if idle >= session_timeout(&self.ctx) {
            tracing::debug!(session = self.id, "Janus session timed out");
            self.emit(json!({"janus": "timeout", "session_id": self.id}));
            self.ended = true;
            self.timed_out = true;
        }
    }

    /// Sends an asynchronous message to the session's output; a client that takes no more
    /// ends its session.
    pub fn emit(&mut self, message: Value) {
        if !self.output.push(message) {
            tracing::info!(
                session = self.id,
                "Janus client is not reading its events; session ended"
            );
            self.ended = true;
        }
    }

    /// A plugin event on a handle, without a transaction (a push).
    pub fn push(&mut self, handle: u64, data: Value, jsep: Option<Value>) {
        let event = protocol::plugin_event(self.id, handle, None, data, jsep);
        self.emit(event);
    }

    /// A core event (`webrtcup`, `hangup`, ...) about a handle.
    pub fn emit_handle_event(&mut self, kind: &str, handle: u64, extra: Value) {
        let mut message = protocol::handle_event(kind, self.id, handle);
        if let Value::Object(extra) = extra {
            message.extend(extra);
        }
        self.emit(Value::Object(message));
    }

    async fn on_request(&mut self, request: Request) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
        let Request { envelope, reply } = request;
        if let Some(handle) = envelope.handle
            && !self.handles.contains_key(&handle)
        {
            reply.send(
                envelope
                    .error(
                        code::HANDLE_NOT_FOUND,
                        format!("No such handle {handle} in session {}", self.id),
                    )
                    .to_json(),
            );
            return;
        }
        let result = match (envelope.janus.as_str(), envelope.handle) {
            ("keepalive", _) => Ok(Value::Object(envelope.reply("ack"))),
            ("attach", None) => self.attach(&envelope),
            ("destroy", None) => {
                // Gone before the reply: the client may take its id again at once.
                self.ctx.janus.sessions.end(self.id, self.serial, None);
                self.ended = true;
                Ok(Value::Object(envelope.reply("success")))
            }
            // The reply first, then what follows from it, as Janus does.
            ("detach", Some(handle)) => {
                reply.send(Value::Object(envelope.reply("success")));
                self.detach(handle).await;
                return;
            }
            ("hangup", Some(handle)) => {
                reply.send(Value::Object(envelope.reply("success")));
                if self.close_connection(handle) {
                    self.emit_handle_event("hangup", handle, json!({"reason": "Janus API"}));
                }
                return;
            }
            ("trickle", Some(handle)) => self.trickle(&envelope, handle).await,
            ("message", Some(handle)) => {
                self.message(envelope, handle, reply).await;
                return;
            }
            ("attach" | "destroy", Some(_))
            | ("detach" | "hangup" | "trickle" | "message", None) => Err(envelope.error(
                code::INVALID_REQUEST_PATH,
                format!("Unhandled request '{}' at this path", envelope.janus),
            )),
            (other, _) => {
                Err(envelope.error(code::UNKNOWN_REQUEST, format!("Unknown request '{other}'")))
            }
        };
        reply.send(result.unwrap_or_else(|error| error.to_json()));
    }

    fn attach(&mut self, envelope: &Envelope) -> Result<Value, ApiError> {
        let plugin = protocol::required_string(&envelope.body, "plugin")
            .map_err(|e| envelope.annotate(e))?;
        if plugin != protocol::PLUGIN {
            return Err(
                envelope.error(code::PLUGIN_NOT_FOUND, format!("No such plugin '{plugin}'"))
            );
        }
        if self.handles.len() >= MAX_HANDLES {
            return Err(envelope.error(
                code::PLUGIN_ATTACH,
                format!("Couldn't attach to plugin: a session may have {MAX_HANDLES} handles"),
            ));
        }
        let id = loop {
            let id = super::random_id();
            if !self.handles.contains_key(&id) {
                break id;
            }
        };
        self.handles.insert(
            id,
            Handle {
                id,
                joined: None,
                member: false,
                subscription: None,
                up: Up::None,
                down: None,
                early_candidates: vec![],
            },
        );
        let mut reply = envelope.reply("success");
        reply.insert("data".into(), json!({"id": id}));
        Ok(Value::Object(reply))
    }

    /// `detach`: the handle's connection closes (`hangup`), its user leaves the room if it
    /// was its last handle there, and `detached` says the handle is gone.
    async fn detach(&mut self, id: u64) {
        if self.remove_handle(id).await {
            self.emit_handle_event("hangup", id, json!({"reason": "Detach"}));
        }
        self.emit_handle_event("detached", id, json!({}));
    }

    /// Closes a handle's connection, if it has one. Returns whether it had.
    pub fn close_connection(&mut self, id: u64) -> bool {
        let Some(handle) = self.handles.get_mut(&id) else {
            return false;
        };
        let had = handle.has_connection();
        let up = std::mem::replace(&mut handle.up, Up::None);
        let down = handle.down.take();
        let stream_id = handle.stream_id();
        let membership = membership_of(&self.users, handle);
        if let (Up::Published { .. }, Some(m)) = (&up, membership) {
            m.close_up(&stream_id);
        }
        if let (Some(down), Some(m)) = (&down, membership) {
            m.close_down(&down.stream_id);
        }
        // A detached connection closes when dropped.
        drop(up);
        had
    }

    /// Removes a handle and what it holds. Returns whether it had a connection.
    pub async fn remove_handle(&mut self, id: u64) -> bool {
        let had = self.close_connection(id);
        let Some(handle) = self.handles.remove(&id) else {
            return had;
        };
        if let Some(key) = handle.joined {
            self.release_user(&key, handle.member).await;
        }
        had
    }

    /// A handle of `key` went: the user leaves its room with its last handle, and stops
    /// being a member with its last member handle.
    async fn release_user(&mut self, key: &UserKey, was_member: bool) {
        let remaining: Vec<&Handle> = self
            .handles
            .values()
            .filter(|h| h.joined.as_ref() == Some(key))
            .collect();
        if remaining.is_empty() {
            self.users.remove(key);
            return;
        }
        if was_member
            && !remaining.iter().any(|h| h.member)
            && let Some(user) = self.users.get_mut(key)
        {
            user.marked = false;
            super::room::set_mark(&user.membership, false);
        }
    }

    async fn trickle(&mut self, envelope: &Envelope, id: u64) -> Result<Value, ApiError> {
        for candidate in protocol::trickle(envelope)? {
            self.add_candidate(id, candidate).await;
        }
        Ok(Value::Object(envelope.reply("ack")))
    }

    /// Gives a candidate to the handle's connection, or keeps it until there is one.
    pub async fn add_candidate(&mut self, id: u64, candidate: Value) {
        let Some(handle) = self.handles.get_mut(&id) else {
            return;
        };
        let membership = membership_of(&self.users, handle);
        let result = match (&handle.up, &handle.down, membership) {
            (_, Some(down), Some(m)) => m.add_candidate(&down.stream_id, candidate).await,
            (Up::Published { .. }, _, Some(m)) => {
                m.add_candidate(&handle.stream_id(), candidate).await
            }
            (Up::Detached(detached), _, _) => detached.add_candidate(candidate).await,
            _ => {
                if handle.early_candidates.len() < MAX_EARLY_CANDIDATES {
                    handle.early_candidates.push(candidate);
                }
                return;
            }
        };
        if let Err(error) = result {
            tracing::debug!(
                session = self.id,
                handle = id,
                "trickled candidate not used: {error}"
            );
        }
    }

    /// Applies the candidates that came before the handle's connection.
    pub async fn flush_early_candidates(&mut self, id: u64) {
        let early = match self.handles.get_mut(&id) {
            Some(handle) if handle.has_connection() => std::mem::take(&mut handle.early_candidates),
            _ => return,
        };
        for candidate in early {
            self.add_candidate(id, candidate).await;
        }
    }

    /// Starts receiving a user's core events.
    pub fn watch(&mut self, key: UserKey, queue: EventQueue) {
        let stream = futures_util::stream::unfold((key, queue), |(key, mut queue)| async move {
            let event = queue.recv().await?;
            Some(((key.clone(), event), (key, queue)))
        });
        self.queues.push(Box::pin(stream));
    }

    /// A media event of a connection negotiated before its handle joined.
    async fn on_detached_event(&mut self, id: u64, event: MediaEvent) {
        let Some(handle) = self.handles.get(&id) else {
            return;
        };
        if !matches!(handle.up, Up::Detached(_)) {
            return;
        }
        match event {
            MediaEvent::Failed | MediaEvent::Closed => {
                let reason = if event == MediaEvent::Failed {
                    "ICE failed"
                } else {
                    "Close PC"
                };
                if let Some(handle) = self.handles.get_mut(&id) {
                    handle.up = Up::None;
                }
                self.emit_handle_event("hangup", id, json!({"reason": reason}));
            }
            // Data channel messages have nowhere to go before the handle is in a room.
            MediaEvent::Data { .. } => {}
            other => self.connection_event(id, other),
        }
    }

    /// Events that read the same whatever the connection: `webrtcup`, `media`,
    /// `slowlink`. Our candidates are in our SDP (Janus clients expect no trickle).
    pub fn connection_event(&mut self, id: u64, event: MediaEvent) {
        match event {
            MediaEvent::Connected => self.emit_handle_event("webrtcup", id, json!({})),
            MediaEvent::Receiving { kind, receiving } => self.emit_handle_event(
                "media",
                id,
                json!({"type": kind_name(kind), "receiving": receiving}),
            ),
            MediaEvent::SlowLink { kind, uplink, lost } => self.emit_handle_event(
                "slowlink",
                id,
                json!({"media": kind_name(kind), "uplink": uplink, "lost": lost}),
            ),
            MediaEvent::LocalCandidate(_)
            | MediaEvent::Failed
            | MediaEvent::Closed
            | MediaEvent::Data { .. } => {}
        }
    }

    /// Handles of a user, by id.
    pub fn handles_of(&self, key: &UserKey) -> Vec<u64> {
        self.handles
            .values()
            .filter(|h| h.joined.as_ref() == Some(key))
            .map(|h| h.id)
            .collect()
    }

    /// A reply to a `message` request: a plugin event with its transaction.
    pub fn reply_event(
        &mut self,
        envelope: &Envelope,
        handle: u64,
        data: Value,
        jsep: Option<Value>,
    ) {
        let event =
            protocol::plugin_event(self.id, handle, Some(&envelope.transaction), data, jsep);
        self.emit(event);
    }
}

/// The membership a handle joined its room with (a function of the users, not the
/// session, so that a handle of the same session can be borrowed meanwhile).
pub(super) fn membership_of<'a>(
    users: &'a HashMap<UserKey, User>,
    handle: &Handle,
) -> Option<&'a Membership> {
    handle
        .joined
        .as_ref()
        .and_then(|key| users.get(key))
        .map(|u| &u.membership)
}

/// How long a session may be silent: `sessionTimeout` in the `janus` configuration.
pub(super) fn session_timeout(ctx: &Context) -> Duration {
    ctx.config
        .server()
        .janus
        .as_ref()
        .and_then(|j| j.session_timeout)
        .map_or(SESSION_TIMEOUT, Duration::from_secs)
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// A JSEP object.
pub fn jsep(kind: &str, sdp: String) -> Value {
    json!({"type": kind, "sdp": sdp})
}
