//! The WebRTC signals: `OFFER`, `WATCH`, `ANSWER` and `ICE`, through our SFU in `m2m`,
//! `a2m` and `p2m` rooms and relayed verbatim between the two peers of a `p2p` room; and
//! the media events of the session's connections.

use serde_json::{Value, json};

use super::hub::{Found, Notice};
use super::protocol::{Channel, Refusal, Signal, Target, code, frame};
use super::room::not_here;
use super::{End, Session, Watch};
use crate::group::{
    ClientId, Direction, Layout, MediaError, MediaEvent, MediaKind, StreamError, TrackSelection,
    VideoSelection, check_sdp,
};

/// The label of a Room Signals stream in the group, from its session's category.
fn label(category: &str) -> &'static str {
    if category == "screenshare" {
        "screenshare"
    } else {
        "camera"
    }
}

/// The session's published stream: its serial, and who offered it.
pub(super) struct Up {
    serial: u64,
    offer: Credentials,
}

/// What an offer says about the connection it comes from: the DTLS certificate of its
/// `RTCPeerConnection` and its ICE credentials (the first of each in the SDP).
#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    fingerprint: Option<String>,
    ufrag: Option<String>,
    pwd: Option<String>,
}

impl Credentials {
    fn of(sdp: &str) -> Credentials {
        let attribute = |name: &str| {
            sdp.lines()
                .find_map(|l| l.trim_end().strip_prefix(name))
                .map(str::to_owned)
        };
        Credentials {
            fingerprint: attribute("a=fingerprint:"),
            ufrag: attribute("a=ice-ufrag:"),
            pwd: attribute("a=ice-pwd:"),
        }
    }

    fn same_ice(&self, other: &Credentials) -> bool {
        self.ufrag == other.ufrag && self.pwd == other.pwd
    }
}

fn media_refusal(error: StreamError) -> Refusal {
    match error {
        StreamError::NotAuthorised => Refusal::new(
            code::PERMISSION_NOT_FOUND,
            "this room's group does not let you publish",
        ),
        StreamError::UnknownStream => {
            Refusal::new(code::RECIPIENT_NOT_MEMBER, "no such stream in the room")
        }
        StreamError::Media(MediaError::InvalidSdp(why)) => {
            Refusal::invalid(format!("invalid SDP: {why}"))
        }
        other => Refusal::new(code::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

impl Session {
    fn channel(&self) -> Result<Channel, Refusal> {
        Ok(self.joined()?.channel)
    }

    /// In a `p2p` room: the signal itself to the other peer.
    fn relay(&self, signal: &Signal) -> Result<(), Refusal> {
        let room = self.joined()?;
        let hub = &self.ctx.room_signals;
        match hub.peer(&room.group, &room.session) {
            Found::Sessions(peers) => {
                let sessions: Vec<String> = peers.into_iter().map(|p| p.session).collect();
                hub.tell(&room.group, &sessions, Notice::Frame(signal.req()));
                Ok(())
            }
            Found::Left => Err(Refusal::new(
                code::USER_LEFT,
                "the other peer left the room",
            )),
            Found::Never => Err(Refusal::new(
                code::RECIPIENT_NOT_MEMBER,
                "no other peer in the room yet",
            )),
        }
    }

    fn sdp<'a>(&self, signal: &'a Signal) -> Result<&'a str, Refusal> {
        let sdp = signal.required("sdp")?;
        check_sdp(sdp).map_err(|why| Refusal::invalid(format!("invalid SDP: {why}")))?;
        Ok(sdp)
    }

    /// A publisher's offer: publishes (or renegotiates) its stream; the ack carries our
    /// answer, our candidates follow as `ICE`.
    ///
    /// An offer with new ICE credentials restarts ICE on the same connection (webrtc-rs
    /// restarts its agent when the remote credentials change, and our answer carries new
    /// ones); `op.restarting` with the old credentials would restart nothing and is
    /// refused. An offer from another `RTCPeerConnection` (another DTLS certificate, as
    /// apps that restart by making a new one send) cannot continue the connection, whose
    /// DTLS session is the old one's: it replaces the published stream.
    pub(super) async fn offer(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        if self.channel()? == Channel::P2p {
            self.relay(signal)?;
            return Ok(json!({"rid": self.rid()}));
        }
        let sdp = self.sdp(signal)?;
        let restarting = signal.option("restarting")?;
        let ctx = self.ctx.clone();
        let room = self.joined_mut()?;
        let me = ctx
            .room_signals
            .record(&room.group, &room.session)
            .ok_or_else(|| Refusal::new(code::ROOM_NOT_FOUND, "no longer in the room"))?;
        if !me.publisher {
            return Err(Refusal::new(
                code::PERMISSION_NOT_FOUND,
                "viewers do not publish: send PUBLISH_REQUEST first",
            ));
        }
        let offered = Credentials::of(sdp);
        if let Some(up) = &room.up {
            if up.offer.fingerprint != offered.fingerprint {
                tracing::debug!(
                    session = room.session,
                    "an offer from a new connection replaces the published stream"
                );
                room.membership.close_up(&room.session);
                room.up = None;
            } else if restarting && up.offer.same_ice(&offered) {
                return Err(Refusal::invalid(
                    "op.restarting, but the offer keeps the connection's ICE credentials (ice-ufrag, ice-pwd): nothing would restart; create the offer with iceRestart",
                ));
            }
        }
        let kinds: &[MediaKind] = match room.channel {
            Channel::A2m => &[MediaKind::Audio],
            _ => &[MediaKind::Audio, MediaKind::Video],
        };
        let first = room.up.is_none();
        let negotiated = room
            .membership
            .publish_kinds(&room.session, label(me.info.category()), None, sdp, kinds)
            .await
            .map_err(media_refusal)?;
        room.up = Some(Up {
            serial: negotiated.serial,
            offer: offered,
        });
        if first {
            // What the app said at JOIN or in its last UPDATE holds for its stream.
            for (kind, on) in [(MediaKind::Video, me.video), (MediaKind::Audio, me.audio)] {
                if !on && let Err(error) = room.membership.hold(&room.session, kind, true) {
                    tracing::debug!(session = room.session, "cannot hold {kind:?}: {error}");
                }
            }
        }
        tracing::debug!(
            session = room.session,
            restarting,
            first,
            "Room Signals publisher offered"
        );
        Ok(json!({"rid": room.rid, "sdp": negotiated.sdp}))
    }

    /// The stream a `WATCH`, `ANSWER` or `ICE` names: a Room Signals publisher's (whose
    /// stream id is its session id), or a stream of a client of another protocol, by
    /// the stream's id or the user's name.
    fn stream_of(&self, target: &Target) -> Result<String, Refusal> {
        let room = self.joined()?;
        let streams = self.streams();
        let found = match target {
            Target::Session { session, .. } => streams.iter().find(|s| &s.id == session),
            Target::User(user) => streams
                .iter()
                .find(|s| &s.username == user && s.owner.as_str() != room.session),
        };
        if let Some(stream) = found {
            return Ok(stream.id.clone());
        }
        match self.ctx.room_signals.find(&room.group, target) {
            Found::Sessions(records) => {
                // Offered but not flowing yet: a connection in slots can wait for it.
                let session = &records[0].session;
                let offered = ClientId::new(session).is_some_and(|id| {
                    room.membership
                        .streams_of(&id)
                        .iter()
                        .any(|s| &s.id == session)
                });
                if offered {
                    return Ok(session.clone());
                }
                Err(Refusal::new(
                    code::RECIPIENT_NOT_MEMBER,
                    format!("{session} publishes nothing to watch yet"),
                ))
            }
            found => Err(not_here(&found, target, code::RECIPIENT_NOT_MEMBER)),
        }
    }

    pub(super) async fn watch_signal(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        if self.channel()? == Channel::P2p {
            return Err(Refusal::new(
                code::UNSUPPORTED_CHANNEL,
                "p2p peers connect to each other: there is nothing to WATCH",
            ));
        }
        let target = signal
            .target()?
            .ok_or_else(|| Refusal::invalid("missing \"to\": whom to watch"))?;
        let stream = self.stream_of(&target)?;
        let sdp = self.watch(&stream, signal.option("restarting")?).await?;
        Ok(json!({"rid": self.rid(), "pps": [{"id": stream, "sdp": sdp}]}))
    }

    /// Subscribes to a stream (or, `restarting` one watched already, restarts its ICE)
    /// and returns our offer.
    pub(super) async fn watch(
        &mut self,
        stream: &str,
        restarting: bool,
    ) -> Result<String, Refusal> {
        let room = self.joined_mut()?;
        if stream == room.session {
            return Err(Refusal::invalid("a session does not watch itself"));
        }
        if restarting && room.watching.contains_key(stream) {
            let offer = room
                .membership
                .restart_down(stream)
                .await
                .map_err(media_refusal)?;
            if let Some(watch) = room.watching.get_mut(stream) {
                watch.answered = false;
            }
            return Ok(offer);
        }
        let selection = TrackSelection {
            audio: true,
            video: VideoSelection::High,
        };
        let negotiated = room
            .membership
            .subscribe(stream, selection, Layout::Slots)
            .await
            .map_err(media_refusal)?
            .ok_or_else(|| {
                Refusal::new(
                    code::RECIPIENT_NOT_MEMBER,
                    format!("{stream} publishes nothing this room can carry"),
                )
            })?;
        room.watching.insert(
            stream.to_owned(),
            Watch {
                serial: negotiated.serial,
                answered: false,
            },
        );
        Ok(negotiated.sdp)
    }

    /// A watched stream gained tracks: our new offer is pushed as `OFFER` with the
    /// stream's `id`; the app answers it with `ANSWER`.
    pub(super) async fn refresh_watch(&mut self, stream: &str) -> Result<(), End> {
        let Some(room) = self.room.as_mut() else {
            return Ok(());
        };
        if !room.watching.contains_key(stream) {
            return Ok(());
        }
        match room.membership.refresh_down(stream).await {
            Ok(Some(offer)) => {
                if let Some(watch) = room.watching.get_mut(stream) {
                    watch.answered = false;
                }
                let body = json!({"rid": room.rid, "id": stream, "sdp": offer});
                self.send(&frame("OFFER", body)).await
            }
            Ok(None) => Ok(()),
            Err(error) => {
                tracing::debug!(stream, "cannot offer a watched stream again: {error}");
                Ok(())
            }
        }
    }

    /// The app's answer to our offer for a watched stream: the one `to` names, or the
    /// only one waiting for an answer.
    pub(super) async fn answer(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        if self.channel()? == Channel::P2p {
            self.relay(signal)?;
            return Ok(json!({"rid": self.rid()}));
        }
        let sdp = self.sdp(signal)?;
        let stream = match signal.target()? {
            Some(target) => self.watched(&target)?,
            None => {
                let room = self.joined()?;
                let waiting: Vec<&String> = room
                    .watching
                    .iter()
                    .filter(|(_, w)| !w.answered)
                    .map(|(id, _)| id)
                    .collect();
                match waiting.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(Refusal::invalid("no offer of ours waits for an answer")),
                    _ => {
                        return Err(Refusal::invalid(
                            "several offers wait for an answer: say which with \"to\"",
                        ));
                    }
                }
            }
        };
        let room = self.joined_mut()?;
        room.membership
            .set_down_answer(&stream, sdp)
            .await
            .map_err(media_refusal)?;
        if let Some(watch) = room.watching.get_mut(&stream) {
            watch.answered = true;
        }
        Ok(json!({"rid": room.rid}))
    }

    /// The stream of a watched publisher a signal names.
    fn watched(&self, target: &Target) -> Result<String, Refusal> {
        let room = self.joined()?;
        if let Target::Session { session, .. } = target
            && room.watching.contains_key(session)
        {
            return Ok(session.clone());
        }
        let stream = self.stream_of(target)?;
        if room.watching.contains_key(&stream) {
            Ok(stream)
        } else {
            Err(Refusal::invalid(format!(
                "{stream} is not watched: WATCH it first"
            )))
        }
    }

    /// A trickled candidate: for the watched publisher `to` names, or for the session's
    /// own stream.
    pub(super) async fn candidate(&mut self, signal: &Signal) -> Result<(), Refusal> {
        if self.channel()? == Channel::P2p {
            return self.relay(signal);
        }
        let candidate = signal.candidate()?;
        let stream = match signal.target()? {
            Some(target) => self.watched(&target)?,
            None => {
                let room = self.joined()?;
                if room.up.is_none() {
                    return Err(Refusal::invalid(
                        "no connection for this candidate: OFFER first, or say which publisher with \"to\"",
                    ));
                }
                room.session.clone()
            }
        };
        let room = self.joined()?;
        room.membership
            .add_candidate(&stream, candidate)
            .await
            .map_err(|error| match error {
                StreamError::Media(error) => Refusal::invalid(format!("bad candidate: {error}")),
                other => media_refusal(other),
            })
    }

    /// Something happened to one of the session's connections.
    pub(super) async fn on_media(
        &mut self,
        id: String,
        direction: Direction,
        serial: u64,
        event: MediaEvent,
    ) -> Result<(), End> {
        let Some(room) = self.room.as_mut() else {
            return Ok(());
        };
        let current = match direction {
            Direction::Up => {
                id == room.session && room.up.as_ref().is_some_and(|u| u.serial == serial)
            }
            Direction::Down => room.watching.get(&id).is_some_and(|w| w.serial == serial),
        };
        if !current {
            return Ok(());
        }
        match event {
            MediaEvent::LocalCandidate(candidate) => {
                let body = json!({
                    "rid": room.rid,
                    "id": id,
                    "sdp": candidate.get("candidate").cloned().unwrap_or(Value::Null),
                    "sdpMid": candidate.get("sdpMid").cloned().unwrap_or(Value::Null),
                    "sdpMLineIndex": candidate.get("sdpMLineIndex").cloned().unwrap_or(Value::Null),
                });
                self.send(&frame("ICE", body)).await
            }
            MediaEvent::Connected if direction == Direction::Up => {
                self.send_list_if_changed().await
            }
            MediaEvent::Closed => {
                match direction {
                    Direction::Up => room.up = None,
                    Direction::Down => {
                        room.watching.remove(&id);
                    }
                }
                self.send_list_if_changed().await
            }
            _ => Ok(()),
        }
    }
}
