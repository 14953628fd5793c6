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
    pub fn enter(&self, entry: Entry) -> Result<bool, Refusal> {
        let mut guard = self.rooms();
        let rooms = &mut *guard;
        let live = rooms
            .rooms
            .get(&entry.group)
            .filter(|r| !r.sessions.is_empty());
        let exists = entry.others_present || live.is_some();
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
            code::UNSUPPORTED_CHANNEL,
            "a third peer"
        );
    }

    fn room() -> GroupName {
        GroupName::new("room").unwrap()
    }

    /// An entry whose notices the test reads.
    fn listening(
        session: &str,
        channel: Channel,
        creating: bool,
        media: bool,
    ) -> (Entry, mpsc::UnboundedReceiver<Notice>) {
        let (notices, rx) = mpsc::unbounded_channel();
        let entry = Entry {
            notices,
            ..entry(session, channel, creating, media)
        };
        (entry, rx)
    }

    /// The frames among the notices received so far.
    fn frames(rx: &mut mpsc::UnboundedReceiver<Notice>) -> Vec<Value> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|n| match n {
                Notice::Frame(frame) => Some(frame),
                _ => None,
            })
            .collect()
    }

    fn request(video: bool, audio: bool, from: &str) -> Request {
        let forward = serde_json::json!({"s": "PUBLISH_REQUEST", "from": from});
        let granted = serde_json::json!({"s": "PUBLISH_ACCEPT", "to": from});
        Request::new(video, audio, forward, granted)
    }

    fn session(target: &str) -> Target {
        Target::Session {
            user: None,
            session: target.into(),
        }
    }

    #[test]
    fn the_admin_is_who_has_published_longest_and_promotion_counts_from_acceptance() {
        let hub = Hub::default();
        let (room, target) = (room(), session("v"));
        assert!(hub.enter(entry("a", Channel::M2m, true, true)).unwrap());
        assert!(!hub.enter(entry("v", Channel::M2m, false, false)).unwrap());
        assert!(hub.enter(entry("b", Channel::M2m, false, true)).unwrap());
        hub.request(&room, "v", request(true, false, "v")).unwrap();
        hub.answer(&room, &target, true, Value::Null).unwrap();
        let v = hub.record(&room, "v").unwrap();
        assert!(
            v.publisher && v.video && !v.audio,
            "what v asked for: {v:?}"
        );
        let order: Vec<String> = publishers(&hub.records(&room))
            .iter()
            .map(|r| r.session.clone())
            .collect();
        assert_eq!(order, ["a", "b", "v"], "by how long they publish");
        hub.leave(&room, "a", true);
        assert_eq!(
            admin(&hub.records(&room)).unwrap().session,
            "b",
            "b published before v, who joined earlier"
        );
    }

    #[test]
    fn only_pending_requests_are_answered() {
        let hub = Hub::default();
        let room = room();
        let (ana, mut ana_rx) = listening("a", Channel::M2m, true, true);
        hub.enter(ana).unwrap();
        let (vic, mut vic_rx) = listening("v", Channel::M2m, false, false);
        hub.enter(vic).unwrap();
        hub.enter(entry("w", Channel::M2m, false, false)).unwrap();
        let code_of = |target: &str, accept: bool| {
            hub.answer(&room, &session(target), accept, Value::Null)
                .unwrap_err()
                .code
        };
        assert_eq!(code_of("v", true), code::INVALID_SIGNAL, "v never asked");
        assert_eq!(code_of("v", false), code::INVALID_SIGNAL, "v never asked");
        assert_eq!(code_of("a", true), code::INVALID_SIGNAL, "a publishes");
        assert_eq!(code_of("nobody", true), code::NOT_ROOM_MEMBER);
        assert_eq!(
            hub.request(&room, "v", request(true, true, "v")).unwrap(),
            Requested::Forwarded
        );
        assert_eq!(frames(&mut ana_rx)[0]["from"], "v", "the admin is asked");
        assert_eq!(
            hub.answer(&room, &session("v"), false, serde_json::json!("no"))
                .unwrap(),
            ["v"]
        );
        assert_eq!(frames(&mut vic_rx), ["no"]);
        assert!(!hub.record(&room, "v").unwrap().publisher);
        assert_eq!(code_of("v", true), code::INVALID_SIGNAL, "answered already");
        assert_eq!(
            hub.request(&room, "a", request(true, true, "a"))
                .unwrap_err()
                .code,
            code::ALREADY_IS_PUBLISHER
        );
        hub.leave(&room, "w", true);
        assert_eq!(code_of("w", true), code::NOT_ROOM_MEMBER, "w left");
    }

    #[test]
    fn a_full_room_keeps_the_request_pending() {
        let hub = Hub::default();
        let room = room();
        hub.enter(entry("0", Channel::M2m, true, true)).unwrap();
        for n in 1..MAX_PUBLISHERS {
            assert!(
                hub.enter(entry(&n.to_string(), Channel::M2m, false, true))
                    .unwrap()
            );
        }
        hub.enter(entry("v", Channel::M2m, false, false)).unwrap();
        hub.request(&room, "v", request(true, true, "v")).unwrap();
        let full = hub
            .answer(&room, &session("v"), true, Value::Null)
            .unwrap_err();
        assert_eq!(full.code, code::UNSUPPORTED_CHANNEL, "{full:?}");
        hub.leave(&room, "3", true);
        hub.answer(&room, &session("v"), true, Value::Null).unwrap();
        assert!(hub.record(&room, "v").unwrap().publisher);
    }

    #[test]
    fn requests_outlive_their_admin() {
        let hub = Hub::default();
        let room = room();
        hub.enter(entry("a", Channel::M2m, true, true)).unwrap();
        let (ben, mut ben_rx) = listening("b", Channel::M2m, false, true);
        hub.enter(ben).unwrap();
        let (vic, mut vic_rx) = listening("v", Channel::M2m, false, false);
        hub.enter(vic).unwrap();
        let (wes, mut wes_rx) = listening("w", Channel::M2m, false, false);
        hub.enter(wes).unwrap();
        hub.request(&room, "v", request(true, true, "v")).unwrap();
        hub.request(&room, "w", request(false, true, "w")).unwrap();
        // The next admin is asked again.
        hub.leave(&room, "a", true);
        let asked: Vec<Value> = frames(&mut ben_rx)
            .iter()
            .map(|f| f["from"].clone())
            .collect();
        assert_eq!(asked, ["v", "w"]);
        // No publisher left: the oldest request is granted, and its viewer asked the rest.
        hub.leave(&room, "b", true);
        assert_eq!(frames(&mut vic_rx)[0]["s"], "PUBLISH_ACCEPT");
        assert_eq!(admin(&hub.records(&room)).unwrap().session, "v");
        let asked: Vec<Value> = frames(&mut vic_rx)
            .iter()
            .map(|f| f["from"].clone())
            .collect();
        assert!(asked.is_empty(), "the accept came first: {asked:?}");
        assert!(frames(&mut wes_rx).is_empty(), "w still waits");
        assert!(hub.record(&room, "w").unwrap().request.is_some());
    }
}
