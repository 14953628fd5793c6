//! Publishing and subscribing through the core.
//!
//! A member publishes a stream with [`Membership::publish`]; once the publisher's
//! connection is up, every other member is told with [`Event::StreamAdded`] and may
//! subscribe with [`Membership::subscribe`]. The core keeps the up streams in the group
//! and each member's subscriptions in its member record, so that leaving, being kicked or
//! losing `present` releases everything at once, whatever the frontend does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::client::{ClientHandle, Direction, Event};
use super::name::ClientId;
use super::permissions::Permission;
use super::state::{Group, Membership};
use crate::media::{
    Codec, DownStream, DownStreamStats, EventSink, MediaError, MediaEvent, MediaKind,
    TrackSelection, UpStream, UpStreamStats,
};

/// A published stream as members see it.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    /// The publisher's id for the stream; subscribers use the same id.
    pub id: String,
    pub owner: ClientId,
    pub username: String,
    /// `camera`, `screenshare`, `video`, ... as the publisher said.
    pub label: String,
    /// The stream this one replaces, if the publisher said so.
    pub replace: Option<String>,
    pub has_audio: bool,
    pub has_video: bool,
}

/// Why a stream operation failed; the texts are shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("not authorised")]
    NotAuthorised,
    #[error("unknown stream")]
    UnknownStream,
    #[error("this stream id is taken")]
    DuplicateId,
    #[error("you are not in this group any more")]
    NotMember,
    #[error("{0}")]
    Media(#[from] MediaError),
}

/// The result of a negotiation: the SDP to send and the stream's serial number, which
/// tags the [`Event::Media`] events of this stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub serial: u64,
    pub sdp: String,
}

fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// An up stream in a group.
pub(super) struct Published {
    pub info: Arc<StreamInfo>,
    pub up: Arc<UpStream>,
    pub serial: u64,
    /// Announced to the others once its connection is up.
    pub connected: bool,
}

/// Media to close once the group's lock is released.
#[derive(Default)]
pub(super) struct Closing {
    ups: Vec<Arc<UpStream>>,
    downs: Vec<Arc<DownStream>>,
}

impl Closing {
    pub fn up(&mut self, up: Arc<UpStream>) {
        self.ups.push(up);
    }

    pub fn downs(&mut self, downs: impl IntoIterator<Item = Arc<DownStream>>) {
        self.downs.extend(downs);
    }

    /// Closes everything in the background (closing waits on the network).
    pub fn run(self) {
        if self.ups.is_empty() && self.downs.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            for down in self.downs {
                down.close().await;
            }
            for up in self.ups {
                up.close().await;
            }
        });
    }
}

/// Statistics of one client's streams, for `/stats.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientStats {
    pub id: String,
    pub username: String,
    pub up: Vec<LabelledUpStats>,
    pub down: Vec<LabelledDownStats>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LabelledUpStats {
    pub id: String,
    pub label: String,
    #[serde(flatten)]
    pub media: UpStreamStats,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LabelledDownStats {
    pub id: String,
    #[serde(flatten)]
    pub media: DownStreamStats,
}

/// Everything `/stats.json` shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServerStats {
    /// Live PeerConnections, streams, tasks and cached bytes.
    pub resources: crate::media::MediaCounts,
    pub groups: Vec<GroupStats>,
}

/// Statistics of one group, for `/stats.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupStats {
    pub name: String,
    pub clients: Vec<ClientStats>,
}

impl Group {
    /// Streams whose connection is up, except `except`'s own.
    pub fn streams(&self, except: Option<&ClientId>) -> Vec<Arc<StreamInfo>> {
        let state = self.state();
        state
            .streams
            .iter()
            .filter(|p| p.connected && Some(&p.info.owner) != except)
            .map(|p| p.info.clone())
            .collect()
    }

    /// Called from the media sink when a publisher's connection comes up.
    fn stream_connected(&self, id: &str, owner: &ClientId) {
        let mut state = self.state();
        let Some(published) = state
            .streams
            .iter_mut()
            .find(|p| p.info.id == id && &p.info.owner == owner)
        else {
            return;
        };
        if published.connected {
            return;
        }
        published.connected = true;
        let event = Event::StreamAdded(published.info.clone());
        for member in state.members.iter().filter(|m| m.handle.id() != owner) {
            member.handle.send(event.clone());
        }
    }

    /// Takes a stream out of the group, telling the others if they knew of it. With a
    /// `serial`, only that negotiation of the stream is taken.
    pub(super) fn take_stream(
        state: &mut super::state::State,
        id: &str,
        owner: &ClientId,
        serial: Option<u64>,
    ) -> Option<Arc<UpStream>> {
        let index = state.streams.iter().position(|p| {
            p.info.id == id && &p.info.owner == owner && serial.is_none_or(|s| s == p.serial)
        })?;
        let published = state.streams.remove(index);
        if published.connected {
            let event = Event::StreamRemoved { id: id.to_owned() };
            for member in state.members.iter().filter(|m| m.handle.id() != owner) {
                member.handle.send(event.clone());
            }
        }
        Some(published.up)
    }

    /// Every stream of `owner`, taken out of the group.
    pub(super) fn take_streams_of(
        state: &mut super::state::State,
        owner: &ClientId,
    ) -> Vec<(String, Arc<UpStream>)> {
        let ids: Vec<String> = state
            .streams
            .iter()
            .filter(|p| &p.info.owner == owner)
            .map(|p| p.info.id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| Group::take_stream(state, &id, owner, None).map(|up| (id, up)))
            .collect()
    }

    /// This group's media statistics, matched to clients.
    pub fn stats(&self, media: &crate::media::MediaStats) -> GroupStats {
        let state = self.state();
        let ups: HashMap<_, _> = media.up.iter().map(|s| (s.id, s)).collect();
        let downs: HashMap<_, _> = media.down.iter().map(|s| (s.id, s)).collect();
        let clients = state
            .members
            .iter()
            .map(|member| ClientStats {
                id: member.handle.id().to_string(),
                username: member.username.clone(),
                up: state
                    .streams
                    .iter()
                    .filter(|p| &p.info.owner == member.handle.id())
                    .filter_map(|p| {
                        ups.get(&p.up.id()).map(|s| LabelledUpStats {
                            id: p.info.id.clone(),
                            label: p.info.label.clone(),
                            media: (*s).clone(),
                        })
                    })
                    .collect(),
                down: member
                    .downs
                    .iter()
                    .filter_map(|(id, down)| {
                        downs.get(&down.id()).map(|s| LabelledDownStats {
                            id: id.clone(),
                            media: (*s).clone(),
                        })
                    })
                    .collect(),
            })
            .collect();
        GroupStats {
            name: self.name().to_string(),
            clients,
        }
    }
}

/// A sink that tells `handle` about its stream `id`.
fn client_sink(handle: ClientHandle, id: String, direction: Direction, serial: u64) -> EventSink {
    Arc::new(move |event: MediaEvent| {
        handle.send(Event::Media {
            id: id.clone(),
            direction,
            serial,
            event,
        });
    })
}

impl Membership {
    fn media_codecs(&self) -> Vec<Codec> {
        // The group file's codecs were validated at load time.
        self.codecs()
            .iter()
            .filter_map(|name| name.parse().ok())
            .collect()
    }

    /// Publishes a stream (or renegotiates one this client already publishes) and
    /// returns the answer. `replace` names a stream of this client's to drop.
    pub async fn publish(
        &self,
        id: &str,
        label: &str,
        replace: Option<&str>,
        offer_sdp: &str,
    ) -> Result<Negotiated, StreamError> {
        let existing = {
            let state = self.group().state();
            let me = state.member(self.id()).ok_or(StreamError::NotMember)?;
            if !me.permissions.has(Permission::Present) {
                return Err(StreamError::NotAuthorised);
            }
            match state.streams.iter().find(|p| p.info.id == id) {
                Some(p) if &p.info.owner == self.id() => Some((p.up.clone(), p.serial)),
                Some(_) => return Err(StreamError::DuplicateId),
                None => None,
            }
        };
        if let Some((up, serial)) = existing {
            let sdp = up.renegotiate(offer_sdp).await?;
            return Ok(Negotiated { serial, sdp });
        }

        let handle = self.handle().clone();
        let group: Weak<Group> = Arc::downgrade(self.group());
        let owner = self.id().clone();
        let stream_id = id.to_owned();
        let serial = next_serial();
        let to_client = client_sink(handle, stream_id.clone(), Direction::Up, serial);
        let sink: EventSink = Arc::new(move |event: MediaEvent| {
            if let Some(group) = group.upgrade() {
                match &event {
                    MediaEvent::Connected => group.stream_connected(&stream_id, &owner),
                    MediaEvent::Closed => {
                        let mut state = group.state();
                        Group::take_stream(&mut state, &stream_id, &owner, Some(serial));
                    }
                    _ => {}
                }
            }
            to_client(event);
        });
        let (up, answer) = self
            .media()
            .publish(&self.media_codecs(), offer_sdp, sink)
            .await?;
        let tracks = up.tracks();
        let info = Arc::new(StreamInfo {
            id: id.to_owned(),
            owner: self.id().clone(),
            username: self.username().unwrap_or_default(),
            label: label.to_owned(),
            replace: replace.map(str::to_owned),
            has_audio: tracks.iter().any(|t| t.kind == MediaKind::Audio),
            has_video: tracks.iter().any(|t| t.kind == MediaKind::Video),
        });
        let mut closing = Closing::default();
        {
            let mut state = self.group().state();
            let still_presenting = state
                .member(self.id())
                .is_some_and(|m| m.permissions.has(Permission::Present));
            let taken = state.streams.iter().any(|p| p.info.id == id);
            if !still_presenting || taken {
                // Lost `present` or raced with another offer while negotiating.
                closing.up(up);
                drop(state);
                closing.run();
                return Err(if taken {
                    StreamError::DuplicateId
                } else {
                    StreamError::NotAuthorised
                });
            }
            if let Some(old) = replace
                && let Some(old_up) = Group::take_stream(&mut state, old, self.id(), None)
            {
                closing.up(old_up);
            }
            state.streams.push(Published {
                info,
                up,
                serial,
                connected: false,
            });
        }
        closing.run();
        Ok(Negotiated {
            serial,
            sdp: answer,
        })
    }

    /// A remote ICE candidate for one of this client's streams, either way.
    pub async fn add_candidate(
        &self,
        id: &str,
        candidate: serde_json::Value,
    ) -> Result<(), StreamError> {
        enum Target {
            Up(Arc<UpStream>),
            Down(Arc<DownStream>),
        }
        let target = {
            let state = self.group().state();
            let up = state
                .streams
                .iter()
                .find(|p| p.info.id == id && &p.info.owner == self.id())
                .map(|p| Target::Up(p.up.clone()));
            up.or_else(|| {
                state
                    .member(self.id())
                    .and_then(|m| m.downs.get(id).cloned())
                    .map(Target::Down)
            })
        };
        match target {
            Some(Target::Up(up)) => Ok(up.add_remote_candidate(candidate).await?),
            Some(Target::Down(down)) => Ok(down.add_remote_candidate(candidate).await?),
            None => Err(StreamError::UnknownStream),
        }
    }

    /// Closes one of this client's published streams; subscribers are told.
    pub fn close_up(&self, id: &str) -> bool {
        let up = {
            let mut state = self.group().state();
            Group::take_stream(&mut state, id, self.id(), None)
        };
        let found = up.is_some();
        let mut closing = Closing::default();
        if let Some(up) = up {
            closing.up(up);
        }
        closing.run();
        found
    }

    /// Subscribes to a stream with the given tracks and returns the server's offer, or
    /// `None` when the selection asks for nothing the stream has. An existing
    /// subscription to the same stream is replaced.
    pub async fn subscribe(
        &self,
        id: &str,
        selection: TrackSelection,
    ) -> Result<Option<Negotiated>, StreamError> {
        let up = {
            let state = self.group().state();
            state
                .streams
                .iter()
                .find(|p| p.info.id == id && p.connected && &p.info.owner != self.id())
                .map(|p| p.up.clone())
                .ok_or(StreamError::UnknownStream)?
        };
        self.close_down(id);
        let serial = next_serial();
        let sink = client_sink(
            self.handle().clone(),
            id.to_owned(),
            Direction::Down,
            serial,
        );
        let (down, offer) = match self.media().subscribe(&up, selection, sink).await {
            Ok(pair) => pair,
            Err(MediaError::NothingToSend) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let mut state = self.group().state();
        let Some(me) = state.member_mut(self.id()) else {
            drop(state);
            let mut closing = Closing::default();
            closing.downs([down]);
            closing.run();
            return Err(StreamError::NotMember);
        };
        me.downs.insert(id.to_owned(), down);
        Ok(Some(Negotiated { serial, sdp: offer }))
    }

    fn down(&self, id: &str) -> Result<Arc<DownStream>, StreamError> {
        let state = self.group().state();
        state
            .member(self.id())
            .and_then(|m| m.downs.get(id).cloned())
            .ok_or(StreamError::UnknownStream)
    }

    /// The client's answer to the server's offer for a subscription.
    pub async fn set_down_answer(&self, id: &str, sdp: &str) -> Result<(), StreamError> {
        Ok(self.down(id)?.set_answer(sdp).await?)
    }

    /// Restarts ICE on a subscription and returns the new offer.
    pub async fn restart_down(&self, id: &str) -> Result<String, StreamError> {
        Ok(self.down(id)?.restart_ice().await?)
    }

    /// Whether this client has a subscription with this id.
    pub fn has_down(&self, id: &str) -> bool {
        self.down(id).is_ok()
    }

    /// Ends a subscription; returns whether it existed.
    pub fn close_down(&self, id: &str) -> bool {
        let down = {
            let mut state = self.group().state();
            state.member_mut(self.id()).and_then(|m| m.downs.remove(id))
        };
        let found = down.is_some();
        let mut closing = Closing::default();
        closing.downs(down);
        closing.run();
        found
    }

    /// Whether this client publishes a stream with this id.
    pub fn has_up(&self, id: &str) -> bool {
        let state = self.group().state();
        state
            .streams
            .iter()
            .any(|p| p.info.id == id && &p.info.owner == self.id())
    }
}
