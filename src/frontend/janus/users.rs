//! Who is a Janus "user" in a room, as one Janus client sees it.
//!
//! janus.plugin.sfu knows only its own clients; here a room is a group shared with every
//! other protocol. A Janus client that joined with `data: true` is a user (a room
//! member), marked in its user data so that other sessions learn of it through the core.
//! A client of any other protocol is a user while it publishes a stream with audio or
//! video: Janus clients can subscribe to it. When such a user's main stream changes (the
//! camera is turned off and on, say), it is announced as leaving and joining again, so
//! that Janus clients, which keep one connection per user, subscribe anew.

use std::sync::Arc;

use serde_json::Value;

use super::PROTOCOL;
use crate::group::{ClientId, Event, StreamInfo, UserInfo};

/// The user data key that marks a Janus client as a room member.
pub const MEMBER_MARK: &str = "janus-member";

/// Whether a member's user data marks it as a Janus room member.
pub fn is_marked(info: &UserInfo) -> bool {
    info.data.get(MEMBER_MARK) == Some(&Value::Bool(true))
}

/// The stream a user's audio and video come from: its newest `camera`, else its newest.
pub fn main_stream(streams: &[Arc<StreamInfo>]) -> Option<&Arc<StreamInfo>> {
    streams
        .iter()
        .rev()
        .find(|s| s.label == "camera")
        .or_else(|| streams.last())
}

struct Occupant {
    id: ClientId,
    protocol: &'static str,
    marked: bool,
    /// Its announced streams, oldest first.
    streams: Vec<Arc<StreamInfo>>,
}

impl Occupant {
    fn is_user(&self) -> bool {
        if self.protocol == PROTOCOL {
            self.marked
        } else {
            !self.streams.is_empty()
        }
    }

    /// What other Janus clients subscribe to: for another protocol's user, its main stream.
    fn identity(&self) -> Option<&str> {
        if !self.is_user() {
            None
        } else if self.protocol == PROTOCOL {
            Some("")
        } else {
            main_stream(&self.streams).map(|s| s.id.as_str())
        }
    }
}

/// A change of the users list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Joined(ClientId),
    Left(ClientId),
}

/// A room's users as seen by one of its Janus clients.
pub struct RoomView {
    me: ClientId,
    /// Everyone in the group, in the order they joined.
    occupants: Vec<Occupant>,
}

impl RoomView {
    /// The view at join time: the group's members and its announced streams.
    pub fn new(me: ClientId, members: Vec<UserInfo>, streams: Vec<Arc<StreamInfo>>) -> Self {
        let mut occupants: Vec<Occupant> = members
            .into_iter()
            .map(|m| Occupant {
                marked: is_marked(&m),
                id: m.id,
                protocol: m.protocol,
                streams: vec![],
            })
            .collect();
        for stream in streams {
            if let Some(o) = occupants.iter_mut().find(|o| o.id == stream.owner) {
                o.streams.push(stream);
            }
        }
        RoomView { me, occupants }
    }

    /// The room's users, except this client itself, in the order they joined.
    pub fn users(&self) -> Vec<ClientId> {
        self.occupants
            .iter()
            .filter(|o| o.is_user() && o.id != self.me)
            .map(|o| o.id.clone())
            .collect()
    }

    /// Applies a core event; returns the users who joined or left because of it (never
    /// this client itself).
    pub fn apply(&mut self, event: &Event) -> Vec<Change> {
        match event {
            Event::UserAdded(info) => {
                if self.occupants.iter().any(|o| o.id == info.id) {
                    return self.update(&info.id, |o| o.marked = is_marked(info));
                }
                self.occupants.push(Occupant {
                    id: info.id.clone(),
                    protocol: info.protocol,
                    marked: false,
                    streams: vec![],
                });
                self.update(&info.id, |o| o.marked = is_marked(info))
            }
            Event::UserChanged(info) => self.update(&info.id, |o| o.marked = is_marked(info)),
            Event::UserRemoved(id) => {
                let Some(index) = self.occupants.iter().position(|o| &o.id == id) else {
                    return vec![];
                };
                let gone = self.occupants.remove(index);
                if gone.is_user() && gone.id != self.me {
                    vec![Change::Left(gone.id)]
                } else {
                    vec![]
                }
            }
            Event::StreamAdded(info) | Event::StreamChanged(info) => {
                let info = info.clone();
                self.update(&info.owner.clone(), move |o| {
                    match o.streams.iter_mut().find(|s| s.id == info.id) {
                        Some(s) => *s = info,
                        None => o.streams.push(info),
                    }
                })
            }
            Event::StreamRemoved { id } => {
                let Some(owner) = self
                    .occupants
                    .iter()
                    .find(|o| o.streams.iter().any(|s| &s.id == id))
                    .map(|o| o.id.clone())
                else {
                    return vec![];
                };
                self.update(&owner, |o| o.streams.retain(|s| &s.id != id))
            }
            _ => vec![],
        }
    }

    /// Changes one occupant and says how its place in the users list changed.
    fn update(&mut self, id: &ClientId, change: impl FnOnce(&mut Occupant)) -> Vec<Change> {
        let Some(occupant) = self.occupants.iter_mut().find(|o| &o.id == id) else {
            return vec![];
        };
        let before = occupant.identity().map(str::to_owned);
        change(occupant);
        let after = occupant.identity().map(str::to_owned);
        if occupant.id == self.me {
            return vec![];
        }
        match (before, after) {
            (None, Some(_)) => vec![Change::Joined(id.clone())],
            (Some(_), None) => vec![Change::Left(id.clone())],
            (Some(a), Some(b)) if a != b => {
                vec![Change::Left(id.clone()), Change::Joined(id.clone())]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Data, Permissions};

    fn id(s: &str) -> ClientId {
        ClientId::new(s).unwrap()
    }

    fn user(name: &str, protocol: &'static str, marked: bool) -> UserInfo {
        let mut data = Data::new();
        if marked {
            data.insert(MEMBER_MARK.into(), Value::Bool(true));
        }
        UserInfo {
            id: id(name),
            username: name.into(),
            permissions: Permissions::NONE,
            data: Arc::new(data),
            protocol,
        }
    }

    fn stream(sid: &str, owner: &str, label: &str) -> Arc<StreamInfo> {
        Arc::new(StreamInfo {
            id: sid.into(),
            owner: id(owner),
            username: owner.into(),
            label: label.into(),
            replace: None,
            has_audio: true,
            has_video: true,
        })
    }

    #[test]
    fn janus_members_and_publishers_of_other_protocols_are_users() {
        let view = RoomView::new(
            id("me"),
            vec![
                user("me", PROTOCOL, true),
                user("viewer", PROTOCOL, false),
                user("naf", PROTOCOL, true),
                user("galene-quiet", "galene", false),
                user("galene-cam", "galene", false),
            ],
            vec![stream("s1", "galene-cam", "camera")],
        );
        assert_eq!(view.users(), [id("naf"), id("galene-cam")]);
        assert!(
            !view.users().contains(&id("viewer")),
            "a Janus client that only watches"
        );
    }

    #[test]
    fn users_come_and_go_with_their_marks_and_streams() {
        let mut view = RoomView::new(id("me"), vec![user("me", PROTOCOL, true)], vec![]);
        assert_eq!(
            view.apply(&Event::UserAdded(user("j", PROTOCOL, true))),
            [Change::Joined(id("j"))]
        );
        assert_eq!(
            view.apply(&Event::UserAdded(user("g", "galene", false))),
            []
        );
        assert_eq!(
            view.apply(&Event::StreamAdded(stream("s1", "g", "camera"))),
            [Change::Joined(id("g"))]
        );
        assert_eq!(
            view.apply(&Event::StreamAdded(stream("s2", "g", "screenshare"))),
            [],
            "the camera stays the main stream"
        );
        assert_eq!(
            view.apply(&Event::StreamRemoved { id: "s1".into() }),
            [Change::Left(id("g")), Change::Joined(id("g"))],
            "the main stream changed: Janus clients must subscribe again"
        );
        assert_eq!(
            view.apply(&Event::StreamRemoved { id: "s2".into() }),
            [Change::Left(id("g"))]
        );
        assert_eq!(
            view.apply(&Event::UserChanged(user("j", PROTOCOL, false))),
            [Change::Left(id("j"))]
        );
        assert_eq!(view.apply(&Event::UserRemoved(id("j"))), []);
        assert_eq!(
            view.apply(&Event::UserChanged(user("me", PROTOCOL, false))),
            [],
            "never about oneself"
        );
    }
}
