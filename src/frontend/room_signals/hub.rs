//! What the Room Signals connections of one server share: for each room, its type and
//! its sessions in the order they joined, with their roles. Roles are decided here,
//! under one lock, so that two sessions joining at once never both become the room's
//! tenth publisher. Everything else about the room (its people, its streams) is the
//! group core's.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use super::protocol::{Channel, Refusal, SessionInfo, Target, code};
use crate::group::GroupName;

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
    pub video: bool,
    pub audio: bool,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Record {
    pub fn user(&self) -> &str {
        self.info.user_id.as_deref().unwrap_or("")
    }
}

struct Room {
    channel: Channel,
    /// In the order they joined: the first publisher is the admin.
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

/// The Room Signals rooms of the server.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<GroupName, Room>>,
}

impl Hub {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<GroupName, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Puts a session in its room, deciding its role (returns whether it publishes), or
    /// says why it cannot enter. The others are not told yet: see [`announce`](Self::announce).
    pub fn enter(&self, entry: Entry) -> Result<bool, Refusal> {
        let mut rooms = self.rooms();
        let room = rooms.get(&entry.group);
        let exists = entry.others_present || room.is_some_and(|r| !r.sessions.is_empty());
        if entry.creating && exists {
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
        if let Some(room) = room.filter(|r| !r.sessions.is_empty()) {
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
                    code::INTERNAL_SERVER_ERROR,
                    format!("p2p room {} already has its two peers", entry.group),
                ));
            }
        }
        let room = rooms.entry(entry.group.clone()).or_insert_with(|| Room {
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
            video: entry.video,
            audio: entry.audio,
            notices: entry.notices,
        });
        Ok(publisher)
    }

    /// Removes a session from its room; with `remember`, later signals naming it learn
    /// that it left. The others are told.
    pub fn leave(&self, group: &GroupName, session: &str, remember: bool) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(group) else {
            return;
        };
        let Some(at) = room.sessions.iter().position(|r| r.session == session) else {
            return;
        };
        let record = room.sessions.remove(at);
        if remember {
            if room.left.len() >= REMEMBERED_LEAVERS {
                room.left.pop_front();
            }
            room.left
                .push_back((record.user().to_owned(), record.session.clone()));
        }
        if room.sessions.is_empty() {
            rooms.remove(group);
        } else {
            notify_all(room, &Notice::ListChanged);
        }
    }

    /// Tells every session of the room that the publisher list may have changed.
    pub fn announce(&self, group: &GroupName) {
        if let Some(room) = self.rooms().get(group) {
            notify_all(room, &Notice::ListChanged);
        }
    }

    /// The room's sessions, in the order they joined.
    pub fn records(&self, group: &GroupName) -> Vec<Record> {
        self.rooms()
            .get(group)
            .map(|r| r.sessions.clone())
            .unwrap_or_default()
    }

    /// One session's record.
    pub fn record(&self, group: &GroupName, session: &str) -> Option<Record> {
        self.rooms()
            .get(group)
            .and_then(|r| r.sessions.iter().find(|s| s.session == session).cloned())
    }

    /// The sessions a target names.
    pub fn find(&self, group: &GroupName, target: &Target) -> Found {
        let rooms = self.rooms();
        let Some(room) = rooms.get(group) else {
            return Found::Never;
        };
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

    /// Records a publisher's `ve`/`ae`; the others are told.
    pub fn set_media(&self, group: &GroupName, session: &str, video: bool, audio: bool) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(group) else {
            return;
        };
        if let Some(record) = room.sessions.iter_mut().find(|r| r.session == session) {
            record.video = video;
            record.audio = audio;
        }
        notify_all(room, &Notice::ListChanged);
    }

    /// Makes viewers publishers (a `PUBLISH_ACCEPT`), within the room's limit, and tells
    /// each of them `frame`, then everyone the new list.
    pub fn promote(
        &self,
        group: &GroupName,
        sessions: &[String],
        frame: Value,
    ) -> Result<(), Refusal> {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(group) else {
            return Err(Refusal::new(code::ROOM_NOT_FOUND, "the room is gone"));
        };
        let publishers = room.sessions.iter().filter(|r| r.publisher).count();
        let promoted = room
            .sessions
            .iter()
            .filter(|r| !r.publisher && sessions.contains(&r.session))
            .count();
        if publishers + promoted > MAX_PUBLISHERS {
            return Err(Refusal::new(
                code::INTERNAL_SERVER_ERROR,
                format!("a room holds at most {MAX_PUBLISHERS} publishers"),
            ));
        }
        for record in room
            .sessions
            .iter_mut()
            .filter(|r| sessions.contains(&r.session))
        {
            record.publisher = true;
            let _ = record.notices.send(Notice::Frame(frame.clone()));
        }
        notify_all(room, &Notice::ListChanged);
        Ok(())
    }

    /// Sends a notice to some sessions of a room.
    pub fn tell(&self, group: &GroupName, sessions: &[String], notice: Notice) {
        if let Some(room) = self.rooms().get(group) {
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
        let Some(room) = rooms.get(group) else {
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

fn notify_all(room: &Room, notice: &Notice) {
    for record in &room.sessions {
        let _ = record.notices.send(notice.clone());
    }
}

/// The admin of a room: its oldest publisher.
pub fn admin(records: &[Record]) -> Option<&Record> {
    records.iter().find(|r| r.publisher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(session: &str, channel: Channel, creating: bool, media: bool) -> Entry {
        Entry {
            group: GroupName::new("room").unwrap(),
            channel,
            creating,
            others_present: false,
            info: SessionInfo {
                user_id: Some(format!("user-{session}")),
                session_id: Some(session.into()),
                ..Default::default()
            },
            session: session.into(),
            video: media,
            audio: media,
            notices: mpsc::unbounded_channel().0,
        }
    }

    #[test]
    fn roles_follow_the_room_type_and_its_limit() {
        let hub = Hub::default();
        let room = GroupName::new("room").unwrap();
        assert_eq!(
            hub.enter(entry("a", Channel::M2m, false, true))
                .unwrap_err()
                .code,
            code::ROOM_NOT_FOUND
        );
        assert!(hub.enter(entry("a", Channel::M2m, true, true)).unwrap());
        assert_eq!(
            hub.enter(entry("b", Channel::M2m, true, true))
                .unwrap_err()
                .code,
            code::ALREADY_EXIST_ROOM
        );
        assert_eq!(
            hub.enter(entry("b", Channel::A2m, false, true))
                .unwrap_err()
                .code,
            code::UNSUPPORTED_CHANNEL
        );
        assert!(
            !hub.enter(entry("quiet", Channel::M2m, false, false))
                .unwrap()
        );
        for n in 1..MAX_PUBLISHERS {
            assert!(
                hub.enter(entry(&n.to_string(), Channel::M2m, false, true))
                    .unwrap()
            );
        }
        assert!(
            !hub.enter(entry("tenth", Channel::M2m, false, true))
                .unwrap()
        );
        assert_eq!(admin(&hub.records(&room)).unwrap().session, "a");
        hub.leave(&room, "a", true);
        assert_eq!(admin(&hub.records(&room)).unwrap().session, "1");
        assert!(matches!(
            hub.find(&room, &Target::User("user-a".into())),
            Found::Left
        ));
        assert!(matches!(
            hub.find(&room, &Target::User("nobody".into())),
            Found::Never
        ));
    }

    #[test]
    fn a_p2p_room_holds_two_peers() {
        let hub = Hub::default();
        assert!(hub.enter(entry("a", Channel::P2p, true, true)).unwrap());
        assert!(hub.enter(entry("b", Channel::P2p, false, false)).unwrap());
        assert_eq!(
            hub.enter(entry("c", Channel::P2p, false, true))
                .unwrap_err()
                .code,
            code::INTERNAL_SERVER_ERROR
        );
    }
}
