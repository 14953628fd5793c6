//! Pending publish requests: a viewer's `PUBLISH_REQUEST` waits here for the admin's
//! answer; a room that loses its admin hands the requests to the next one, and a room
//! left without publishers grants the oldest.

use serde_json::Value;

use super::{Found, Hub, Record, Room, admin, describe, find_in, notify_all};
use super::{MAX_PUBLISHERS, Notice};
use crate::frontend::room_signals::protocol::{Refusal, Target, code};
use crate::group::GroupName;

/// A viewer's pending `PUBLISH_REQUEST`.
#[derive(Debug, Clone)]
pub struct Request {
    /// What the viewer will publish once accepted.
    pub video: bool,
    pub audio: bool,
    /// The request as the admin receives it (sent again to a new admin).
    pub forward: Value,
    /// What the viewer receives if the request is granted with nobody to ask (the room
    /// has no admin).
    pub granted: Value,
    /// When it was made (the hub's clock): the oldest is granted first.
    at: u64,
}

/// What became of a `PUBLISH_REQUEST`.
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// Forwarded to the admin, who will answer.
    Forwarded,
    /// The room has no admin to ask: the viewer publishes now (and is the admin).
    Granted,
}

impl Request {
    pub fn new(video: bool, audio: bool, forward: Value, granted: Value) -> Request {
        Request {
            video,
            audio,
            forward,
            granted,
            at: 0,
        }
    }
}

impl Hub {
    /// A viewer's `PUBLISH_REQUEST` (a new one replaces its pending one): forwarded to
    /// the admin, or, in a room without one, granted at once.
    pub fn request(
        &self,
        group: &GroupName,
        session: &str,
        mut request: Request,
    ) -> Result<Requested, Refusal> {
        let mut guard = self.rooms();
        let rooms = &mut *guard;
        request.at = rooms.tick();
        let since = rooms.tick();
        let room = rooms
            .rooms
            .get_mut(group)
            .ok_or_else(|| Refusal::new(code::ROOM_NOT_FOUND, "the room is gone"))?;
        let record = room
            .sessions
            .iter_mut()
            .find(|r| r.session == session)
            .ok_or_else(|| Refusal::new(code::ROOM_NOT_FOUND, "no longer in the room"))?;
        if record.publisher {
            return Err(Refusal::new(
                code::ALREADY_IS_PUBLISHER,
                "this session publishes already",
            ));
        }
        let forward = request.forward.clone();
        record.request = Some(request);
        match admin(&room.sessions) {
            Some(admin) => {
                let _ = admin.notices.send(Notice::Frame(forward));
                Ok(Requested::Forwarded)
            }
            None => {
                hand_over(room, since);
                notify_all(room, &Notice::ListChanged);
                Ok(Requested::Granted)
            }
        }
    }

    /// The admin's `PUBLISH_ACCEPT` (`accept`) or `PUBLISH_REJECT` of the pending
    /// requests of the sessions `target` names: each of them receives `frame`, and
    /// with `accept` publishes what it asked for. Returns the sessions answered.
    pub fn answer(
        &self,
        group: &GroupName,
        target: &Target,
        accept: bool,
        frame: Value,
    ) -> Result<Vec<String>, Refusal> {
        let mut guard = self.rooms();
        let rooms = &mut *guard;
        let since = rooms.tick();
        let room = rooms
            .rooms
            .get_mut(group)
            .ok_or_else(|| Refusal::new(code::ROOM_NOT_FOUND, "the room is gone"))?;
        let named = match find_in(room, target) {
            Found::Sessions(records) => records,
            _ => {
                return Err(Refusal::new(
                    code::NOT_ROOM_MEMBER,
                    format!("{} is not in the room", describe(target)),
                ));
            }
        };
        let asking: Vec<String> = named
            .iter()
            .filter(|r| r.request.is_some())
            .map(|r| r.session.clone())
            .collect();
        if asking.is_empty() {
            return Err(Refusal::invalid(format!(
                "{} has not asked to publish (no pending PUBLISH_REQUEST)",
                describe(target)
            )));
        }
        let publishers = room.sessions.iter().filter(|r| r.publisher).count();
        if accept && publishers + asking.len() > MAX_PUBLISHERS {
            return Err(Refusal::new(
                code::UNSUPPORTED_CHANNEL,
                format!(
                    "{} rooms hold at most {MAX_PUBLISHERS} publishers, and this one has {publishers}: the request stays pending",
                    room.channel.name()
                ),
            ));
        }
        for record in room
            .sessions
            .iter_mut()
            .filter(|r| asking.contains(&r.session))
        {
            let request = record.request.take();
            if accept && let Some(request) = request {
                promote(record, &request, since);
            }
            let _ = record.notices.send(Notice::Frame(frame.clone()));
        }
        if accept {
            notify_all(room, &Notice::ListChanged);
        }
        Ok(asking)
    }
}

pub(super) fn promote(record: &mut Record, request: &Request, since: u64) {
    record.publisher = true;
    record.since = since;
    record.video = request.video;
    record.audio = request.audio;
}

/// The room has a new admin, or none: the admin gets the pending requests; with no
/// publisher left, the oldest request is granted (its viewer publishes and is admin).
pub(super) fn hand_over(room: &mut Room, since: u64) {
    if admin(&room.sessions).is_none() {
        let oldest = room
            .sessions
            .iter_mut()
            .filter(|r| r.request.is_some())
            .min_by_key(|r| r.request.as_ref().map_or(u64::MAX, |q| q.at));
        let Some(record) = oldest else {
            return;
        };
        if let Some(request) = record.request.take() {
            promote(record, &request, since);
            let _ = record.notices.send(Notice::Frame(request.granted));
        }
    }
    let Some(admin) = admin(&room.sessions) else {
        return;
    };
    let mut pending: Vec<&Request> = room
        .sessions
        .iter()
        .filter_map(|r| r.request.as_ref())
        .collect();
    pending.sort_by_key(|q| q.at);
    for request in pending {
        let _ = admin.notices.send(Notice::Frame(request.forward.clone()));
    }
}
