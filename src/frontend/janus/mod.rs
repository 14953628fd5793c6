//! janus.plugin.sfu on `/janus` (shared/protocols/janus-sfu.md), behind the Janus core
//! protocol that its clients (minijanus, naf-janus-adapter, janus.js) speak: over a
//! WebSocket with the subprotocol `janus-protocol`, or over HTTP with long polls.
//!
//! A Janus *session* is an actor task (`session`) that owns its *handles*. A handle that
//! joins a room joins the group of that name as a user (a core client whose id is the
//! Janus `user_id`); every handle of the session that joins the same room as the same
//! user shares it. Unlike the GStreamer and calling frontends, media goes through our
//! SFU: a handle's offer publishes a stream in the group (label `camera`), seen by the
//! clients of every protocol, and a handle that subscribes to a user receives that
//! user's main stream, whatever protocol the user came through (`users`). Data channel
//! messages and `data` messages are relayed through the core.
//!
//! ```text
//!  WebSocket task ──┐                        ┌── core events of each user (one queue per user)
//!  HTTP POST ───────┼─▶ Request ─▶ Session ◀─┤
//!  HTTP long poll ◀─┘   (reply)    actor     └── media events of connections made before a join
//! ```

mod events;
mod http;
mod plugin;
mod protocol;
mod room;
mod session;
mod token;
mod transport;
mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use warp::ws::{Message as Frame, WebSocket};

pub use http::{HttpAnswer, get as http_get, info as http_info, post as http_post};
use protocol::{ApiError, Envelope, code};
use session::{Request, Session};
use transport::{HttpQueue, OUTBOX_CAPACITY, Outbox, Output, Reply};

use super::{Context, WRITE_TIMEOUT, close_websocket, message_too_big};

/// The protocol name of Janus clients in the core.
pub const PROTOCOL: &str = "janus";
/// A session without a request (or an HTTP long poll) for this long is destroyed.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Handles one session may have.
pub const MAX_HANDLES: usize = 64;
/// Sessions the server keeps at once, and sessions one WebSocket may create.
const MAX_SESSIONS: usize = 4096;
const MAX_SESSIONS_PER_SOCKET: usize = 16;
/// Requests a session may have waiting.
const REQUEST_QUEUE: usize = 64;
/// How long the last events of an HTTP session that timed out wait for a long poll.
const ENDED_GRACE: Duration = Duration::from_secs(10);

/// What every Janus connection shares: the sessions and the token key.
#[derive(Default)]
pub struct Janus {
    sessions: Sessions,
    keys: token::KeyCache,
}

struct Entry {
    requests: mpsc::Sender<Request>,
    http: Option<Arc<HttpQueue>>,
    last_activity: Arc<Mutex<Instant>>,
    /// Which session had this id: a client may take an id again once it is free, so what
    /// ends a session checks that the entry is still that session's.
    serial: u64,
    /// The WebSocket the session was created on; `None` over HTTP.
    socket: Option<u64>,
}

/// An HTTP session that timed out, kept a little while so that the next long poll gets
/// its last events (the `timeout`) rather than "No such session".
struct Ended {
    queue: Arc<HttpQueue>,
    until: Instant,
}

#[derive(Default)]
struct Table {
    live: HashMap<u64, Entry>,
    ended: HashMap<u64, Ended>,
}

#[derive(Default)]
struct Sessions {
    table: Mutex<Table>,
    /// Serials of sessions and ids of WebSockets.
    next_serial: AtomicU64,
}

/// What a long poll finds at a session id.
enum Polled {
    /// A live HTTP session's queue, to wait on.
    Live(Arc<HttpQueue>),
    /// A session that timed out: its last events.
    Ended(Vec<Value>),
    /// A live session whose events go to its WebSocket.
    Socket,
    Gone,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn serial(&self) -> u64 {
        self.next_serial.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a session's actor. `socket` is the WebSocket it is created on, if any.
    fn create(
        &self,
        ctx: &Arc<Context>,
        wanted: Option<u64>,
        address: Option<SocketAddr>,
        output: Output,
        socket: Option<u64>,
    ) -> Result<u64, (u16, String)> {
        let mut table = self.lock();
        if table.live.len() >= MAX_SESSIONS {
            return Err((
                code::NOT_ACCEPTING_SESSIONS,
                "Not accepting new sessions".into(),
            ));
        }
        if socket.is_some()
            && table.live.values().filter(|e| e.socket == socket).count() >= MAX_SESSIONS_PER_SOCKET
        {
            return Err((
                code::NOT_ACCEPTING_SESSIONS,
                "Not accepting new sessions on this connection".into(),
            ));
        }
        let id = match wanted {
            Some(id) if table.live.contains_key(&id) => {
                return Err((code::SESSION_CONFLICT, "Session ID already in use".into()));
            }
            Some(id) => id,
            None => loop {
                let id = random_id();
                if !table.live.contains_key(&id) {
                    break id;
                }
            },
        };
        // The id is this session's now, with whatever long polls ask of it.
        table.ended.remove(&id);
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
        let last_activity = Arc::new(Mutex::new(Instant::now()));
        let http = match &output {
            Output::Http(queue) => Some(queue.clone()),
            Output::Socket(_) => None,
        };
        let serial = self.serial();
        table.live.insert(
            id,
            Entry {
                requests,
                http,
                last_activity: last_activity.clone(),
                serial,
                socket,
            },
        );
        let session = Session::new(id, serial, ctx.clone(), address, output, last_activity);
        ctx.connections.spawn(session.run(receiver));
        Ok(id)
    }

    fn sender(&self, id: u64) -> Option<mpsc::Sender<Request>> {
        self.lock().live.get(&id).map(|e| e.requests.clone())
    }

    /// What a long poll of session `id` gets: a live HTTP session's queue (its activity
    /// marked: a long poll keeps it alive), or up to `max` last events of one that timed
    /// out (forgotten once they are taken).
    fn poll(&self, id: u64, max: usize) -> Polled {
        let mut table = self.lock();
        if let Some(entry) = table.live.get(&id) {
            if let Ok(mut t) = entry.last_activity.lock() {
                *t = Instant::now();
            }
            return match &entry.http {
                Some(queue) => Polled::Live(queue.clone()),
                None => Polled::Socket,
            };
        }
        let now = Instant::now();
        table.ended.retain(|_, e| e.until > now);
        let Some(ended) = table.ended.get(&id) else {
            return Polled::Gone;
        };
        let events = ended.queue.take(max);
        if ended.queue.is_empty() {
            table.ended.remove(&id);
        }
        if events.is_empty() {
            Polled::Gone
        } else {
            Polled::Ended(events)
        }
    }

    /// Forgets session `id` if the entry is still the one of the session `serial`; its
    /// actor ends once its requests channel closes. `last_events`, for an HTTP session
    /// that timed out, are kept for the next long poll.
    fn end(&self, id: u64, serial: u64, last_events: Option<Arc<HttpQueue>>) {
        let mut table = self.lock();
        if table.live.get(&id).is_none_or(|e| e.serial != serial) {
            return;
        }
        table.live.remove(&id);
        let now = Instant::now();
        table.ended.retain(|_, e| e.until > now);
        if let Some(queue) = last_events {
            table.ended.insert(
                id,
                Ended {
                    queue,
                    until: now + ENDED_GRACE,
                },
            );
        }
    }

    /// Forgets the sessions created on WebSocket `socket` (and only those: an id the
    /// socket once had may be another client's by now).
    fn close_socket(&self, socket: u64) {
        self.lock().live.retain(|_, e| e.socket != Some(socket));
    }
}

/// A random id for a session or handle: at most 2^53, so that JavaScript clients keep it
/// exact.
fn random_id() -> u64 {
    rand::random_range(1..(1u64 << 53))
}

/// Where a request came from, for a `create`.
enum Origin<'a> {
    /// A WebSocket, by its id among the sessions' owners.
    Socket {
        outbox: &'a Outbox,
        socket: u64,
    },
    Http,
}

/// Routes a validated request: root requests (`create`, `info`, `ping`) are answered
/// here, the rest go to their session. A session created on a WebSocket belongs to it,
/// and ends with it.
async fn route(
    ctx: &Arc<Context>,
    envelope: Envelope,
    reply: Reply,
    address: Option<SocketAddr>,
    origin: Origin<'_>,
) {
    match (envelope.session, envelope.handle) {
        (None, None) => match envelope.janus.as_str() {
            "info" => reply.send(protocol::server_info(
                Some(&envelope.transaction),
                session::session_timeout(ctx),
            )),
            "ping" => reply.send(Value::Object(envelope.reply("pong"))),
            "create" => {
                let wanted = envelope
                    .body
                    .get("id")
                    .and_then(Value::as_u64)
                    .filter(|&id| id > 0);
                let (output, socket) = match origin {
                    Origin::Socket { outbox, socket } => {
                        (Output::Socket(outbox.clone()), Some(socket))
                    }
                    Origin::Http => (Output::Http(Arc::new(HttpQueue::default())), None),
                };
                match ctx
                    .janus
                    .sessions
                    .create(ctx, wanted, address, output, socket)
                {
                    Ok(id) => {
                        let mut success = envelope.reply("success");
                        success.insert("data".into(), serde_json::json!({"id": id}));
                        reply.send(Value::Object(success));
                    }
                    Err((code, reason)) => reply.send(envelope.error(code, reason).to_json()),
                }
            }
            other => reply.send(
                envelope
                    .error(
                        code::INVALID_REQUEST_PATH,
                        format!("Unhandled request '{other}' at this path"),
                    )
                    .to_json(),
            ),
        },
        (None, Some(_)) => reply.send(
            envelope
                .error(code::SESSION_NOT_FOUND, "Session not found")
                .to_json(),
        ),
        // As Janus: a handle id that is no number is no handle, whatever the session.
        (Some(_), None) if envelope.bad_handle => reply.send(
            envelope
                .error(code::HANDLE_NOT_FOUND, "Handle not found")
                .to_json(),
        ),
        (Some(session), _) => match ctx.janus.sessions.sender(session) {
            None => reply.send(
                envelope
                    .error(
                        code::SESSION_NOT_FOUND,
                        format!("No such session {session}"),
                    )
                    .to_json(),
            ),
            Some(sender) => {
                let gone = envelope.error(
                    code::SESSION_NOT_FOUND,
                    format!("No such session {session}"),
                );
                let request = Request { envelope, reply };
                if let Err(mpsc::error::SendError(request)) = sender.send(request).await {
                    request.reply.send(gone.to_json());
                }
            }
        },
    }
}

/// Serves one WebSocket connection (subprotocol `janus-protocol`): its requests, and the
/// messages of the sessions created on it, which end with it.
pub async fn serve(mut socket: WebSocket, ctx: Arc<Context>, address: Option<SocketAddr>) {
    let (sender, mut outgoing) = mpsc::channel::<String>(OUTBOX_CAPACITY);
    let outbox = Outbox(sender);
    let socket_id = ctx.janus.sessions.serial();
    let shutdown = ctx.shutdown.clone();
    let close = loop {
        tokio::select! {
            frame = socket.next() => match frame {
                None => break None,
                Some(Err(error)) => break too_big(&error),
                Some(Ok(frame)) if frame.is_close() => break None,
                Some(Ok(frame)) => {
                    if let Ok(text) = frame.to_str() {
                        match protocol::parse(text) {
                            Ok(envelope) => {
                                let origin = Origin::Socket { outbox: &outbox, socket: socket_id };
                                route(&ctx, envelope, Reply::Socket(outbox.clone()), address, origin).await;
                            }
                            Err(error) => {
                                outbox.push(&error.to_json());
                            }
                        }
                    } else if frame.is_binary() {
                        let error = ApiError::new(code::INVALID_JSON, "Invalid JSON: binary message");
                        outbox.push(&error.to_json());
                    }
                }
            },
            Some(text) = outgoing.recv() => {
                let sent = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Frame::text(text))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break None;
                }
            }
            _ = shutdown.cancelled() => break Some((1001, "the server is shutting down".to_owned())),
        }
    };
    // Sessions die with the connection they were created on, as in Janus.
    ctx.janus.sessions.close_socket(socket_id);
    if let Some((code, reason)) = close {
        close_websocket(&mut socket, code, reason).await;
    }
}

fn too_big(error: &warp::Error) -> Option<(u16, String)> {
    message_too_big(error).then(|| (1009, "message too big".to_owned()))
}
