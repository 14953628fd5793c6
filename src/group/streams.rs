//! Publishing and subscribing through the core.
//!
//! A member publishes a stream with [`Membership::publish`]; once the publisher's
//! connection is up, every other member is told with [`Event::StreamAdded`] and may
//! subscribe with [`Membership::subscribe`]. The core keeps the up streams in the group
//! and each member's subscriptions in its member record, so that leaving, being kicked or
//! losing `present` releases everything at once, whatever the frontend does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::client::{ClientHandle, Direction, Event};
use super::name::ClientId;
use super::permissions::Permission;
use super::state::{Group, Membership};
use super::{Registry, lock};
use crate::media::{
    Codec, DataPayload, DownStream, DownStreamStats, EventSink, Layout, MediaError, MediaEvent,
    MediaKind, TrackInfo, TrackSelection, UpStream, UpStreamStats,
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
    /// Whether its connection is up.
    pub connected: bool,
}

impl Published {
    /// Whether the others know of it: its connection is up and it carries audio or video
    /// (a connection with data channels only is nothing to subscribe to).
    pub fn announced(&self) -> bool {
        self.connected && (self.info.has_audio || self.info.has_video)
    }
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
    /// Streams that were announced (connected, with audio or video), except `except`'s own.
    pub fn streams(&self, except: Option<&ClientId>) -> Vec<Arc<StreamInfo>> {
        let state = self.state();
        state
            .streams
            .iter()
            .filter(|p| p.announced() && Some(&p.info.owner) != except)
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
        if published.announced() {
            let event = Event::StreamAdded(published.info.clone());
            broadcast_except(&state, owner, &event);
        }
    }

    /// After a renegotiation: if the stream's tracks changed, the others are told (a
    /// stream that gains its first audio or video is announced only now).
    fn stream_tracks_changed(
        &self,
        id: &str,
        owner: &ClientId,
        serial: u64,
        before: &[TrackInfo],
        after: &[TrackInfo],
    ) {
        if before == after {
            return;
        }
        let mut state = self.state();
        let Some(published) = state
            .streams
            .iter_mut()
            .find(|p| p.info.id == id && &p.info.owner == owner && p.serial == serial)
        else {
            return;
        };
        let was_announced = published.announced();
        published.info = Arc::new(StreamInfo {
            has_audio: after.iter().any(|t| t.kind == MediaKind::Audio),
            has_video: after.iter().any(|t| t.kind == MediaKind::Video),
            ..(*published.info).clone()
        });
        let event = match (was_announced, published.announced()) {
            (true, true) => Event::StreamChanged(published.info.clone()),
            (false, true) => Event::StreamAdded(published.info.clone()),
            (true, false) => Event::StreamRemoved { id: id.to_owned() },
            (false, false) => return,
        };
        broadcast_except(&state, owner, &event);
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
        if published.announced() {
            let event = Event::StreamRemoved { id: id.to_owned() };
            broadcast_except(state, owner, &event);
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

/// Tells every member but `owner`.
fn broadcast_except(state: &super::state::State, owner: &ClientId, event: &Event) {
    for member in state.members.iter().filter(|m| m.handle.id() != owner) {
        member.handle.send(event.clone());
    }
}

/// A publisher's connection negotiated before its client joined a group (Janus clients
/// offer before they join). Its events go to the sink given to
/// [`Registry::publish_detached`] until [`Membership::adopt`] makes it a stream of the
/// group; dropped without that, it is closed.
pub struct Detached {
    up: Option<Arc<UpStream>>,
    target: Arc<Mutex<EventSink>>,
}

impl Detached {
    fn up(&self) -> Result<&Arc<UpStream>, StreamError> {
        self.up
            .as_ref()
            .ok_or(StreamError::Media(MediaError::Closed))
    }

    /// A new offer from the publisher (media added, ICE restart).
    pub async fn renegotiate(&self, offer_sdp: &str) -> Result<String, StreamError> {
        Ok(self.up()?.renegotiate(offer_sdp).await?)
    }

    pub async fn add_candidate(&self, candidate: serde_json::Value) -> Result<(), StreamError> {
        Ok(self.up()?.add_remote_candidate(candidate).await?)
    }

    /// Our answer with every local candidate in it.
    pub async fn gathered_sdp(&self) -> Result<String, StreamError> {
        Ok(self.up()?.gathered_sdp().await?)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(up) = self.up.take() {
            let mut closing = Closing::default();
            closing.up(up);
            closing.run();
        }
    }
}

impl Registry {
    /// Negotiates a publisher's connection before its client is in any group, with the
    /// codecs of a group that names none (VP8 and Opus): the group is not known yet.
    /// `events` gets the connection's media events until it is adopted.
    pub async fn publish_detached(
        &self,
        offer_sdp: &str,
        events: EventSink,
    ) -> Result<(Detached, String), StreamError> {
        let codecs: Vec<Codec> = super::description::DEFAULT_CODECS
            .iter()
            .filter_map(|name| name.parse().ok())
            .collect();
        let target = Arc::new(Mutex::new(events));
        let forward = target.clone();
        let sink: EventSink = Arc::new(move |event| {
            let current = lock(&forward).clone();
            current(event);
        });
        let (up, answer) = self.media().publish(&codecs, offer_sdp, sink).await?;
        Ok((
            Detached {
                up: Some(up),
                target,
            },
            answer,
        ))
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
        self.publish_kinds(
            id,
            label,
            replace,
            offer_sdp,
            &[MediaKind::Audio, MediaKind::Video],
        )
        .await
    }

    /// [`publish`](Self::publish) accepting only media of these kinds: the m-lines of
    /// other kinds are refused (an audio-only room), now and when the stream renegotiates.
    pub async fn publish_kinds(
        &self,
        id: &str,
        label: &str,
        replace: Option<&str>,
        offer_sdp: &str,
        kinds: &[MediaKind],
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
            let before = up.tracks();
            let sdp = up.renegotiate(offer_sdp).await?;
            self.group()
                .stream_tracks_changed(id, self.id(), serial, &before, &up.tracks());
            return Ok(Negotiated { serial, sdp });
        }

        let serial = next_serial();
        let sink = self.stream_sink(id, serial);
        let mut codecs = self.media_codecs();
        codecs.retain(|c| kinds.contains(&c.kind()));
        let (up, answer) = self.media().publish(&codecs, offer_sdp, sink).await?;
        self.install(id, label, replace, up, serial)?;
        Ok(Negotiated {
            serial,
            sdp: answer,
        })
    }

    /// Makes a connection negotiated before this client joined ([`Registry::publish_detached`])
    /// one of its streams in the group, as `publish` would have. Returns the stream's
    /// serial. Fails if the client may not present, the id is taken, or the stream uses a
    /// codec the group does not allow (the connection is then closed).
    pub fn adopt(&self, mut detached: Detached, id: &str, label: &str) -> Result<u64, StreamError> {
        let up = detached
            .up
            .take()
            .ok_or(StreamError::Media(MediaError::Closed))?;
        let close = |up: Arc<UpStream>| {
            let mut closing = Closing::default();
            closing.up(up);
            closing.run();
        };
        if up.is_closed() {
            return Err(StreamError::Media(MediaError::Closed));
        }
        if let Err(error) = up.restrict_codecs(&self.media_codecs()) {
            close(up);
            return Err(error.into());
        }
        let serial = next_serial();
        *lock(&detached.target) = self.stream_sink(id, serial);
        self.install(id, label, None, up, serial)?;
        Ok(serial)
    }

    /// The sink of this client's stream `id`: group bookkeeping, then the client's queue.
    fn stream_sink(&self, id: &str, serial: u64) -> EventSink {
        let group: Weak<Group> = Arc::downgrade(self.group());
        let owner = self.id().clone();
        let stream_id = id.to_owned();
        let to_client = client_sink(
            self.handle().clone(),
            stream_id.clone(),
            Direction::Up,
            serial,
        );
        Arc::new(move |event: MediaEvent| {
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
        })
    }

    /// Puts a negotiated up stream into the group (announcing it if its connection is
    /// already up), or closes it if the client may no longer present or the id was taken
    /// meanwhile. `replace` names a stream of this client's to drop.
    fn install(
        &self,
        id: &str,
        label: &str,
        replace: Option<&str>,
        up: Arc<UpStream>,
        serial: u64,
    ) -> Result<(), StreamError> {
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
            // A connection adopted after it came up is announced at once; otherwise
            // its `Connected` event does it.
            let published = Published {
                info,
                connected: up.is_connected(),
                up,
                serial,
            };
            if published.announced() {
                broadcast_except(
                    &state,
                    self.id(),
                    &Event::StreamAdded(published.info.clone()),
                );
            }
            state.streams.push(published);
        }
        closing.run();
        Ok(())
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
        let target = self
            .own_up(id)
            .map(Target::Up)
            .or_else(|| self.down(id).ok().map(Target::Down));
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
        layout: Layout,
    ) -> Result<Option<Negotiated>, StreamError> {
        let (up, owner) = {
            let state = self.group().state();
            state
                .streams
                .iter()
                // A connection shaped in slots may wait for the publisher's first track.
                .find(|p| {
                    p.info.id == id
                        && &p.info.owner != self.id()
                        && (p.announced() || layout == Layout::Slots)
                })
                .map(|p| (p.up.clone(), p.info.owner.clone()))
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
        let paused = self.registry().is_blocked(self.id(), &owner);
        let subscribed = self
            .media()
            .subscribe_with(&up, selection, layout, paused, sink)
            .await;
        let (down, offer) = match subscribed {
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

    /// Fills a subscription's empty slots with what its stream carries now (see
    /// [`Layout::Slots`]): returns a new offer on the same connection if anything was
    /// added, `None` if nothing changed.
    pub async fn refresh_down(&self, id: &str) -> Result<Option<String>, StreamError> {
        let down = self.down(id)?;
        if !down.refresh() {
            return Ok(None);
        }
        Ok(Some(down.renegotiate().await?))
    }

    /// Our current description of one of this client's streams (up or down) with every
    /// local candidate in it, for clients that take no trickled candidates (Janus).
    pub async fn gathered_sdp(&self, id: &str) -> Result<String, StreamError> {
        match self.own_up(id) {
            Some(up) => Ok(up.gathered_sdp().await?),
            None => Ok(self.down(id)?.gathered_sdp().await?),
        }
    }

    /// Writes a message on a data channel of one of this client's own streams (the
    /// connection its messages come from; a channel `label` is opened if there is none).
    pub async fn write_data(
        &self,
        id: &str,
        label: &str,
        payload: &DataPayload,
    ) -> Result<(), StreamError> {
        let up = self.own_up(id).ok_or(StreamError::UnknownStream)?;
        Ok(up.send_data(label, payload).await?)
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

    /// Every stream `owner` publishes, announced or not (a connection with data channels
    /// only, or not connected yet), oldest first.
    pub fn streams_of(&self, owner: &ClientId) -> Vec<Arc<StreamInfo>> {
        let state = self.group().state();
        state
            .streams
            .iter()
            .filter(|p| &p.info.owner == owner)
            .map(|p| p.info.clone())
            .collect()
    }

    /// Stops (or resumes) forwarding one kind of media of this client's stream `id` to
    /// all its subscribers: the publisher turned its camera or microphone off.
    pub fn hold(&self, id: &str, kind: MediaKind, held: bool) -> Result<(), StreamError> {
        self.own_up(id)
            .ok_or(StreamError::UnknownStream)?
            .hold(kind, held);
        Ok(())
    }

    /// Whether this client publishes a stream with this id.
    pub fn has_up(&self, id: &str) -> bool {
        self.own_up(id).is_some()
    }

    /// This client's published stream with this id.
    fn own_up(&self, id: &str) -> Option<Arc<UpStream>> {
        let state = self.group().state();
        state
            .streams
            .iter()
            .find(|p| p.info.id == id && &p.info.owner == self.id())
            .map(|p| p.up.clone())
    }
}
