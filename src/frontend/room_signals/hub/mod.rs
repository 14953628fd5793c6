//! What the Room Signals connections of one server share: for each room, its type and
//! its sessions in the order they joined, with their roles and their pending publish
//! requests. Roles are decided here, under one lock, so that two sessions joining at once
//! never both become the room's tenth publisher. Everything else about the room (its
//! people, its streams) is the group core's.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use super::protocol::{Channel, Refusal, SessionInfo, Target, code};
use crate::group::GroupName;

mod requests;

use requests::hand_over;
pub use requests::{Request, Requested};

/// Publishers an `m2m` or `a2m` room holds.
pub const MAX_PUBLISHERS: usize = 9;
/// Sessions that left a room remembered per room, to tell "left" from "never here".
const REMEMBERED_LEAVERS: usize = 1024;

/// What the hub tells a connection.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The room's sessions or their roles or media changed: the publisher list may be
    /// new.
    ListChanged,
    /// A frame to send to the client as it is.
    Frame(Value),
    /// The admin removed this session from the room (`from` is the admin's `ss`).
    Kicked { from: Value },
}

/// One session in a room.
#[derive(Debug, Clone)]
pub struct Record {
    pub session: String,
    pub info: SessionInfo,
    pub publisher: bool,
    /// When it became a publisher (the hub's clock): the smallest publishes longest and
    /// is the admin.
    since: u64,
    pub video: bool,
    pub audio: bool,
    pub request: Option<Request>,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Record {
    pub fn user(&self) -> &str {
        self.info.user_id.as_deref().unwrap_or("")
    }
}

struct Room {
    channel: Channel,
    /// In the order they joined.
    sessions: Vec<Record>,
    left: VecDeque<(String, String)>,
}

/// Who a [`Target`] names among a room's sessions.
#[derive(Debug)]
pub enum Found {
    Sessions(Vec<Record>),
    /// No such session now, but it was here.
    Left,
    Never,
}

/// A session asking to enter a room.
pub struct Entry {
    pub group: GroupName,
    pub channel: Channel,
    pub creating: bool,
    /// Whether clients of other protocols are in the group.
    pub others_present: bool,
    pub info: SessionInfo,
    pub session: String,
    pub video: bool,
    pub audio: bool,
    pub notices: mpsc::UnboundedSender<Notice>,
}

#[derive(Default)]
struct Rooms {
    rooms: HashMap<GroupName, Room>,
    /// Ticks once per new publisher and per request: orders them.
    clock: u64,
}

impl Rooms {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

/// The Room Signals rooms of the server.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<Rooms>,
}

impl Hub {
    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Puts a session in its room, deciding its role (returns whether it publishes), or
    /// says why it cannot enter. The others are not told yet: see [`announce`](Self::announce).
    ///
    /// `roomCreating` into a room that exists is refused, except into a room whose
    /// publisher seat is free (an `m2m`, `a2m` or `p2m` room without a Room Signals
    /// publisher: its publishers left, or only clients of other protocols are in its
    /// group): the session takes the seat and is the admin.
    pub fn enter(&self, entry: Entry) -> Result<bool, Refusal> {
        let mut guard = self.rooms();
        let rooms = &mut *guard;
        let live = rooms
            .rooms
            .get(&entry.group)
            .filter(|r| !r.sessions.is_empty());
        let exists = entry.others_present || live.is_some();
        let seat_free = entry.channel.through_sfu()
            && live.is_none_or(|r| !r.sessions.iter().any(|s| s.publisher));
        if entry.creating && exists && !seat_free {
            return Err(Refusal::new(
                code::ALREADY_EXIST_ROOM,
                format!(
                    "room {} already exists: join it without roomCreating",
                    entry.group
                ),
            ));
        }
        if !entry.creating && !exists {
            return Err(Refusal::new(
                code::ROOM_NOT_FOUND,
                format!(
                    "room {} does not exist: its creator joins with op.roomCreating",
                    entry.group
                ),
            ));
        }
        if let Some(room) = live {
            if room.channel != entry.channel {
                return Err(Refusal::new(
                    code::UNSUPPORTED_CHANNEL,
                    format!(
                        "room {} is a {} room, not {}",
                        entry.group,
                        room.channel.name(),
                        entry.channel.name()
                    ),
                ));
            }
            if room.sessions.iter().any(|r| r.session == entry.session) {
                return Err(Refusal::new(
                    code::ALREADY_EXIST_ROOM,
                    format!(
                        "session {} is already in room {}",
                        entry.session, entry.group
                    ),
                ));
            }
            if entry.channel == Channel::P2p && room.sessions.len() >= 2 {
                return Err(Refusal::new(
                    code::UNSUPPORTED_CHANNEL,
                    format!(
                        "a p2p room holds two peers, and room {} has both",
                        entry.group
                    ),
                ));
            }
        }
        let since = rooms.tick();
        let room = rooms
            .rooms
            .entry(entry.group.clone())
            .or_insert_with(|| Room {
                channel: entry.channel,
                sessions: vec![],
                left: VecDeque::new(),
            });
        room.channel = entry.channel;
        let publishers = room.sessions.iter().filter(|r| r.publisher).count();
        let publisher = match entry.channel {
            _ if entry.creating => true,
            Channel::P2p => true,
            Channel::P2m => false,
            Channel::M2m | Channel::A2m => {
                (entry.video || entry.audio) && publishers < MAX_PUBLISHERS
            }
        };
        room.sessions.push(Record {
            session: entry.session,
            info: entry.info,
            publisher,
            since,
            video: entry.video,
            audio: entry.audio,
            request: None,
            notices: entry.notices,
        });
        Ok(publisher)
    }

    /// Removes a session from its room; with `remember`, later signals naming it learn
    /// that it left. The others are told. When the admin goes, the next admin receives
    /// the pending publish requests (and with no publisher left, the oldest request is
    /// granted).
    pub fn leave(&self, group: &GroupName, session: &str, remember: bool) {
        let mut guard = self.rooms();
        let rooms = &mut *guard;
        let Some(room) = rooms.rooms.get_mut(group) else {
            return;
        };
        let Some(at) = room.sessions.iter().position(|r| r.session == session) else {
            return;
        };
        let was_admin = admin(&room.sessions).is_some_and(|a| a.session == session);
        let record = room.sessions.remove(at);
        if remember {
            if room.left.len() >= REMEMBERED_LEAVERS {
                room.left.pop_front();
            }
            room.left
                .push_back((record.user().to_owned(), record.session.clone()));
        }
        if room.sessions.is_empty() {
            rooms.rooms.remove(group);
            return;
        }
        if was_admin {
            let since = rooms.tick();
            if let Some(room) = rooms.rooms.get_mut(group) {
                hand_over(room, since);
            }
        }
        if let Some(room) = rooms.rooms.get(group) {
            notify_all(room, &Notice::ListChanged);
        }
    }

    /// Tells every session of the room that the publisher list may have changed.
    pub fn announce(&self, group: &GroupName) {
        if let Some(room) = self.rooms().rooms.get(group) {
            notify_all(room, &Notice::ListChanged);
        }
    }

    /// The room's sessions, in the order they joined.
    pub fn records(&self, group: &GroupName) -> Vec<Record> {
        self.rooms()
            .rooms
            .get(group)
            .map(|r| r.sessions.clone())
            .unwrap_or_default()
    }

    /// One session's record.
    pub fn record(&self, group: &GroupName, session: &str) -> Option<Record> {
        self.rooms()
            .rooms
            .get(group)
            .and_then(|r| r.sessions.iter().find(|s| s.session == session).cloned())
    }

    /// The sessions a target names.
    pub fn find(&self, group: &GroupName, target: &Target) -> Found {
        match self.rooms().rooms.get(group) {
            Some(room) => find_in(room, target),
            None => Found::Never,
        }
    }

    /// Records a publisher's `ve`/`ae`; the others are told.
    pub fn set_media(&self, group: &GroupName, session: &str, video: bool, audio: bool) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.rooms.get_mut(group) else {
            return;
        };
        if let Some(record) = room.sessions.iter_mut().find(|r| r.session == session) {
            record.video = video;
            record.audio = audio;
        }
        notify_all(room, &Notice::ListChanged);
    }

    /// Sends a notice to some sessions of a room.
    pub fn tell(&self, group: &GroupName, sessions: &[String], notice: Notice) {
        if let Some(room) = self.rooms().rooms.get(group) {
            for record in room
                .sessions
                .iter()
                .filter(|r| sessions.contains(&r.session))
            {
                let _ = record.notices.send(notice.clone());
            }
        }
    }

    /// The other peer of a `p2p` room.
    pub fn peer(&self, group: &GroupName, session: &str) -> Found {
        let rooms = self.rooms();
        let Some(room) = rooms.rooms.get(group) else {
            return Found::Never;
        };
        let others: Vec<Record> = room
            .sessions
            .iter()
            .filter(|r| r.session != session)
            .cloned()
            .collect();
        if !others.is_empty() {
            Found::Sessions(others)
        } else if room.left.iter().any(|(_, s)| s != session) {
            Found::Left
        } else {
            Found::Never
        }
    }
}

fn find_in(room: &Room, target: &Target) -> Found {
    let matches = |user: &str, session: &str| match target {
        Target::User(u) => u == user,
        Target::Session { session: s, .. } => s == session,
    };
    let found: Vec<Record> = room
        .sessions
        .iter()
        .filter(|r| matches(r.user(), &r.session))
        .cloned()
        .collect();
    if !found.is_empty() {
        Found::Sessions(found)
    } else if room.left.iter().any(|(u, s)| matches(u, s)) {
        Found::Left
    } else {
        Found::Never
    }
}

/// Whom a target names, for messages.
pub fn describe(target: &Target) -> String {
    match target {
        Target::User(user) => format!("user {user}"),
        Target::Session { session, .. } => format!("session {session}"),
    }
}

fn notify_all(room: &Room, notice: &Notice) {
    for record in &room.sessions {
        let _ = record.notices.send(notice.clone());
    }
}

/// The admin of a room: the Room Signals session that has published longest (a
/// promotion counts from its acceptance).
pub fn admin(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .filter(|r| r.publisher)
        .min_by_key(|r| r.since)
}

/// The publishers of a room, the admin first, then by how long they have published.
pub fn publishers(records: &[Record]) -> Vec<&Record> {
    let mut publishers: Vec<&Record> = records.iter().filter(|r| r.publisher).collect();
    publishers.sort_by_key(|r| r.since);
    publishers
}

#[cfg(test)]
mod tests;
