//! Stream negotiation in Galène's protocol: `offer`, `answer`, `ice`, `renegotiate`,
//! `close`, `abort`, `request` and `requestStream`, and the core's stream events.
//!
//! Every stream is unidirectional with its own PeerConnection. The client offers the
//! streams it publishes (up); the server offers the streams the client asked for with
//! `request` (down), using the publisher's stream id.

use std::collections::HashMap;

use serde_json::Value;

use super::message::Message;
use super::{End, Session};
use crate::group::{
    Direction, Layout, MediaEvent, StreamError, StreamInfo, TrackSelection, VideoSelection,
};

/// Labels to the list of tracks wanted (`audio`, `video`, `video-low`).
pub(super) type Request = HashMap<String, Vec<String>>;

/// What a client wants of one stream, from its request.
pub(super) fn selection_of(wanted: &[String]) -> TrackSelection {
    let has = |w: &str| wanted.iter().any(|x| x == w);
    TrackSelection {
        audio: has("audio"),
        video: if has("video") {
            VideoSelection::High
        } else if has("video-low") {
            VideoSelection::Low
        } else {
            VideoSelection::None
        },
    }
}

fn is_empty(selection: TrackSelection) -> bool {
    !selection.audio && selection.video == VideoSelection::None
}

/// Parses a `request` value: an object mapping labels to lists of strings.
fn parse_request(value: &Value) -> Option<Request> {
    let Value::Object(map) = value else {
        return None;
    };
    map.iter()
        .map(|(label, wanted)| {
            let list = wanted
                .as_array()?
                .iter()
                .map(|w| w.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            Some((label.clone(), list))
        })
        .collect()
}

/// A subscription the client was offered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sent {
    pub serial: u64,
    pub selection: TrackSelection,
}

/// Per-group media state of a session.
#[derive(Default)]
pub(super) struct Streams {
    /// The client's published streams, by id, with their serials.
    pub ups: HashMap<String, u64>,
    /// Subscriptions offered to the client, by stream id.
    pub downs: HashMap<String, Sent>,
    /// `requestStream` overrides, by stream id.
    pub overrides: HashMap<String, Vec<String>>,
}

impl Session {
    fn stream_id(m: &Message) -> Result<String, End> {
        match m.id.as_deref() {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(End::Protocol("empty id".into())),
        }
    }

    pub(super) async fn on_offer(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        let Some(sdp) = m.sdp.as_deref() else {
            return Err(End::Protocol("offer without sdp".into()));
        };
        let Some(joined) = self.joined.as_ref() else {
            return self.refuse_offer(&id, "join a group first").await;
        };
        let label = m.label.clone().unwrap_or_default();
        let result = joined
            .membership
            .publish(&id, &label, m.replace.as_deref(), sdp)
            .await;
        match result {
            Ok(answer) => {
                if let Some(joined) = self.joined.as_mut() {
                    joined.streams.ups.insert(id.clone(), answer.serial);
                }
                self.send(&Message {
                    id: Some(id),
                    sdp: Some(answer.sdp),
                    ..Message::new("answer")
                })
                .await
            }
            Err(error) => self.refuse_offer(&id, &error.to_string()).await,
        }
    }

    async fn refuse_offer(&mut self, id: &str, why: &str) -> Result<(), End> {
        self.send(&Message {
            id: Some(id.to_owned()),
            ..Message::new("abort")
        })
        .await?;
        self.send_error(why).await
    }

    pub(super) async fn on_answer(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        if !joined.streams.downs.contains_key(&id) {
            tracing::debug!(stream = %id, "answer for an unknown stream");
            return Ok(());
        }
        let result = match m.sdp.as_deref() {
            Some(sdp) => joined.membership.set_down_answer(&id, sdp).await,
            None => Err(StreamError::UnknownStream),
        };
        if let Err(error) = result {
            self.end_down(&id).await?;
            self.send_error(&format!("bad answer: {error}")).await?;
        }
        Ok(())
    }

    pub(super) async fn on_ice(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        let candidate = match m.candidate {
            None | Some(Value::Null) => return Err(End::Protocol("null candidate".into())),
            Some(c) => c,
        };
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        if let Err(error) = joined.membership.add_candidate(&id, candidate).await {
            // Candidates for a stream that just closed are normal; nothing to tell.
            tracing::debug!(stream = %id, "ICE candidate not used: {error}");
        }
        Ok(())
    }

    /// The client asks for an ICE restart of a stream it receives.
    pub(super) async fn on_renegotiate(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        self.restart_down(&id).await
    }

    async fn restart_down(&mut self, id: &str) -> Result<(), End> {
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        if !joined.streams.downs.contains_key(id) {
            return Ok(());
        }
        match joined.membership.restart_down(id).await {
            Ok(offer) => {
                let info = joined
                    .membership
                    .group()
                    .streams(None)
                    .into_iter()
                    .find(|s| s.id == id);
                let mut message = Message {
                    id: Some(id.to_owned()),
                    sdp: Some(offer),
                    ..Message::new("offer")
                };
                if let Some(info) = info {
                    message.label = Some(info.label.clone());
                    message.source = Some(info.owner.to_string());
                    message.username = Some(info.username.clone());
                }
                self.send(&message).await
            }
            Err(error) => {
                tracing::debug!(stream = %id, "ICE restart failed: {error}");
                self.end_down(id).await
            }
        }
    }

    /// The client closes a stream it publishes; its subscribers are told.
    pub(super) async fn on_close(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        if let Some(joined) = self.joined.as_mut()
            && joined.streams.ups.remove(&id).is_some()
        {
            joined.membership.close_up(&id);
        }
        Ok(())
    }

    /// The client asks the server to close a stream it receives.
    pub(super) async fn on_abort(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        self.end_down(&id).await
    }

    /// Ends a subscription and tells the client with `close`.
    async fn end_down(&mut self, id: &str) -> Result<(), End> {
        let Some(joined) = self.joined.as_mut() else {
            return Ok(());
        };
        if joined.streams.downs.remove(id).is_none() {
            return Ok(());
        }
        joined.membership.close_down(id);
        self.send(&Message {
            id: Some(id.to_owned()),
            ..Message::new("close")
        })
        .await
    }

    pub(super) async fn on_request(&mut self, m: Message) -> Result<(), End> {
        let request = match &m.request {
            None | Some(Value::Null) => Request::new(),
            Some(value) => parse_request(value).ok_or(End::Malformed("bad request".into()))?,
        };
        self.request = request;
        self.push_all_streams().await
    }

    pub(super) async fn on_request_stream(&mut self, m: Message) -> Result<(), End> {
        let id = Self::stream_id(&m)?;
        let wanted: Vec<String> = match &m.request {
            Some(Value::Array(list)) => list
                .iter()
                .map(|w| w.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(End::Malformed("bad request".into()))?,
            _ => return Err(End::Malformed("bad request".into())),
        };
        let Some(joined) = self.joined.as_mut() else {
            return self.send_error("join a group first").await;
        };
        let info = joined
            .membership
            .group()
            .streams(Some(joined.membership.id()))
            .into_iter()
            .find(|s| s.id == id);
        let Some(info) = info else {
            // Galène ends the session here; a stream that just closed is too common a
            // race for that, so the client is only told.
            return self.send_error("unknown stream").await;
        };
        joined.streams.overrides.insert(id, wanted);
        self.push_stream(&info).await
    }

    /// Re-evaluates every stream in the group against the client's request.
    async fn push_all_streams(&mut self) -> Result<(), End> {
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        let streams = joined
            .membership
            .group()
            .streams(Some(joined.membership.id()));
        for info in streams {
            self.push_stream(&info).await?;
        }
        Ok(())
    }

    /// Makes the client's subscription to `info` match what it asked for: offers it,
    /// replaces it, or closes it.
    async fn push_stream(&mut self, info: &StreamInfo) -> Result<(), End> {
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        if &info.owner == joined.membership.id() {
            return Ok(());
        }
        let wanted = joined
            .streams
            .overrides
            .get(&info.id)
            .or_else(|| self.request.get(&info.label))
            .or_else(|| self.request.get(""))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let selection = selection_of(wanted);
        let current = joined.streams.downs.get(&info.id).map(|s| s.selection);
        if current == Some(selection) {
            return Ok(());
        }
        if current.is_some() {
            self.end_down(&info.id).await?;
        }
        if is_empty(selection) {
            return Ok(());
        }
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        match joined
            .membership
            .subscribe(&info.id, selection, Layout::Selected)
            .await
        {
            Ok(Some(offer)) => {
                if let Some(joined) = self.joined.as_mut() {
                    joined.streams.downs.insert(
                        info.id.clone(),
                        Sent {
                            serial: offer.serial,
                            selection,
                        },
                    );
                }
                self.send(&Message {
                    id: Some(info.id.clone()),
                    label: Some(info.label.clone()),
                    replace: info.replace.clone(),
                    source: Some(info.owner.to_string()),
                    username: Some(info.username.clone()),
                    sdp: Some(offer.sdp),
                    ..Message::new("offer")
                })
                .await
            }
            // The stream has none of the wanted tracks, or ended meanwhile.
            Ok(None) | Err(StreamError::UnknownStream) => Ok(()),
            Err(error) => {
                tracing::warn!(stream = %info.id, "cannot subscribe: {error}");
                self.send_error(&format!("cannot receive a stream: {error}"))
                    .await
            }
        }
    }

    pub(super) async fn on_stream_added(&mut self, info: &StreamInfo) -> Result<(), End> {
        self.push_stream(info).await
    }

    /// A stream we may receive gained or lost tracks: a subscription is made again, as a
    /// new connection, so that it carries what the client asked for.
    pub(super) async fn on_stream_changed(&mut self, info: &StreamInfo) -> Result<(), End> {
        self.end_down(&info.id).await?;
        self.push_stream(info).await
    }

    pub(super) async fn on_stream_removed(&mut self, id: &str) -> Result<(), End> {
        if let Some(joined) = self.joined.as_mut() {
            joined.streams.overrides.remove(id);
        }
        self.end_down(id).await
    }

    pub(super) async fn on_up_aborted(&mut self, id: &str, reason: &str) -> Result<(), End> {
        if let Some(joined) = self.joined.as_mut() {
            joined.streams.ups.remove(id);
        }
        self.send(&Message {
            id: Some(id.to_owned()),
            ..Message::new("abort")
        })
        .await?;
        self.send_error(reason).await
    }

    pub(super) async fn on_media_event(
        &mut self,
        id: String,
        direction: Direction,
        serial: u64,
        event: MediaEvent,
    ) -> Result<(), End> {
        let Some(joined) = self.joined.as_ref() else {
            return Ok(());
        };
        let current = match direction {
            Direction::Up => joined.streams.ups.get(&id) == Some(&serial),
            Direction::Down => joined.streams.downs.get(&id).map(|s| s.serial) == Some(serial),
        };
        if !current {
            return Ok(());
        }
        match (direction, event) {
            (_, MediaEvent::LocalCandidate(candidate)) => {
                self.send(&Message {
                    id: Some(id),
                    candidate: Some(candidate),
                    ..Message::new("ice")
                })
                .await
            }
            (_, MediaEvent::Connected) => Ok(()),
            // The publisher's ICE failed: ask it for a new offer with an ICE restart.
            (Direction::Up, MediaEvent::Failed) => {
                self.send(&Message {
                    id: Some(id),
                    ..Message::new("renegotiate")
                })
                .await
            }
            // A subscriber's ICE failed: restart it ourselves.
            (Direction::Down, MediaEvent::Failed) => self.restart_down(&id).await,
            // The server side closed a published stream: ask the client to close it too.
            (Direction::Up, MediaEvent::Closed) => {
                if let Some(joined) = self.joined.as_mut() {
                    joined.streams.ups.remove(&id);
                }
                self.send(&Message {
                    id: Some(id),
                    ..Message::new("abort")
                })
                .await
            }
            (Direction::Down, MediaEvent::Closed) => self.end_down(&id).await,
            // Galène's protocol has no words for data channels or link quality.
            (
                _,
                MediaEvent::Data { .. }
                | MediaEvent::Receiving { .. }
                | MediaEvent::SlowLink { .. },
            ) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> Option<Request> {
        parse_request(&value)
    }

    #[test]
    fn selections() {
        let s =
            |list: &[&str]| selection_of(&list.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["audio", "video"]),
            TrackSelection {
                audio: true,
                video: VideoSelection::High
            }
        );
        assert_eq!(
            s(&["video-low"]),
            TrackSelection {
                audio: false,
                video: VideoSelection::Low
            }
        );
        assert_eq!(s(&["video", "video-low"]).video, VideoSelection::High);
        assert!(is_empty(s(&[])));
        assert!(is_empty(s(&["smell"])), "unknown values are ignored");
    }

    #[test]
    fn requests_parse() {
        let r = request(json!({"camera": ["audio", "video"], "": ["audio"]})).unwrap();
        assert_eq!(r[""], ["audio"]);
        assert!(request(json!({"camera": "video"})).is_none());
        assert!(request(json!({"camera": [1]})).is_none());
        assert!(request(json!(["camera"])).is_none());
    }
}
