//! A publisher's stream and its tracks.
//!
//! [`UpStream`] owns the PeerConnection; each negotiated m-line is an
//! [`UpTrack`], known as soon as the offer is answered. When the first RTP of
//! an m-line arrives, its reader task (`reader`) starts. Down tracks and
//! RTCP handlers reach it through [`UpCtl`] messages. Once a second, one REMB
//! for the whole connection goes to the publisher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use webrtc::data_channel::RTCDataChannel;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::data_channel_message::DataChannelMessage;
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::sctp_transport::sctp_transport_state::RTCSctpTransportState;
use webrtc::track::track_remote::TrackRemote;

use super::codecs::{Codec, MediaKind};
use super::down::DownStream;
use super::downtrack::{DownRate, DownTrack};
use super::rate::publisher_limit;
use super::reader::Reader;
use super::{
    DataPayload, EventSink, MediaError, MediaEvent, Shared, StreamId, TrackInfo, TrackSelection,
    UpStreamStats, UpTrackStats, VideoSelection, candidate_event, gathered_sdp, lock,
    parse_candidate, strip_simulcast,
};

/// A kind a subscriber asked for, and the publisher's track of that kind if it has one.
type Choice = (MediaKind, Option<Arc<UpTrack>>);

/// Data channels a publisher may open on one connection (Janus clients open two).
const MAX_DATA_CHANNELS: usize = 16;
/// Bytes a data channel may hold unsent before further messages to it are dropped.
const MAX_DATA_BUFFERED: usize = 1 << 20;

/// A publisher's stream: one PeerConnection, one track per m-line.
pub struct UpStream {
    id: StreamId,
    /// Taken (and closed) by `close`, so a closed stream holds nothing.
    pc: Mutex<Option<Arc<RTCPeerConnection>>>,
    shared: Arc<Shared>,
    /// Dropped after `Closed`, which breaks any cycle through the sink.
    events: Mutex<Option<EventSink>>,
    /// The codecs an m-line may use (the connection's engine may know more).
    codecs: Mutex<Vec<Codec>>,
    tracks: Mutex<Vec<Arc<UpTrack>>>,
    downs: Mutex<Vec<Weak<DownStream>>>,
    /// The publisher's open data channels, by label.
    channels: Mutex<HashMap<Arc<str>, Arc<RTCDataChannel>>>,
    connected: AtomicBool,
    closed: AtomicBool,
    cancel: CancellationToken,
    /// Our SSRC in the RTCP we send upstream.
    rtcp_ssrc: u32,
    negotiation: tokio::sync::Mutex<()>,
    /// The kinds the publisher asked us not to forward (see [`UpStream::hold`]).
    held: Mutex<Vec<MediaKind>>,
}

/// The publisher's last sender report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SenderInfo {
    pub ntp: u64,
    pub rtp: u32,
    pub at: Instant,
}

/// One m-line of an up stream.
pub(crate) struct UpTrack {
    pub mid: String,
    pub kind: MediaKind,
    pub codec: Codec,
    /// Our CNAME for this stream in subscribers' SDP and SDES.
    pub stream_label: String,
    ctl: mpsc::UnboundedSender<UpCtl>,
    /// Taken by the reader task when the first RTP arrives.
    ctl_rx: Mutex<Option<mpsc::UnboundedReceiver<UpCtl>>>,
    pub(super) started: AtomicBool,
    pub(super) ssrc: AtomicU32,
    pub(super) sender_info: Mutex<Option<SenderInfo>>,
    /// The attached subscribers' estimates, for the REMB (set by the reader).
    pub(super) down_rates: Mutex<Vec<Arc<DownRate>>>,
    pub(super) stats: Mutex<UpTrackStats>,
    pub(super) cached_bytes: AtomicUsize,
    /// Whether the publisher asked us not to forward it (read when the reader starts;
    /// later changes reach the reader as [`UpCtl::Hold`]).
    pub(super) held: AtomicBool,
}

/// Requests to an up track's reader task.
pub(crate) enum UpCtl {
    /// Start forwarding to this down track (its connection is up).
    AddDown(Arc<DownTrack>),
    RemoveDown(u64),
    /// A subscriber lost these (publisher) seqnos.
    Nack(Arc<DownTrack>, Vec<u16>),
    /// A subscriber wants a keyframe.
    Keyframe,
    /// Stop forwarding this track (`true`), or forward it again from a keyframe.
    Hold(bool),
}

impl UpTrack {
    fn new(mid: String, kind: MediaKind, codec: Codec, stream_label: String) -> Self {
        let (ctl, rx) = mpsc::unbounded_channel();
        UpTrack {
            mid,
            kind,
            codec,
            stream_label,
            ctl,
            ctl_rx: Mutex::new(Some(rx)),
            started: AtomicBool::new(false),
            ssrc: AtomicU32::new(0),
            sender_info: Mutex::new(None),
            down_rates: Mutex::new(vec![]),
            stats: Mutex::new(UpTrackStats {
                kind,
                codec,
                bitrate: 0,
                packet_rate: 0,
                loss: 0.0,
                total_lost: 0,
                jitter_ms: 0.0,
                packets: 0,
                keyframes: 0,
                nacks_sent: 0,
                plis_sent: 0,
                subscribers: 0,
            }),
            cached_bytes: AtomicUsize::new(0),
            held: AtomicBool::new(false),
        }
    }

    /// Send a request to the reader; dropped if the track is gone.
    pub fn send(&self, ctl: UpCtl) {
        let _ = self.ctl.send(ctl);
    }

    pub fn sender_info(&self) -> Option<SenderInfo> {
        *lock(&self.sender_info)
    }

    fn info(&self) -> TrackInfo {
        TrackInfo {
            kind: self.kind,
            codec: self.codec,
            mid: self.mid.clone(),
        }
    }
}

pub(super) async fn publish(
    shared: Arc<Shared>,
    id: StreamId,
    pc: Arc<RTCPeerConnection>,
    codecs: Vec<Codec>,
    offer: &str,
    events: EventSink,
) -> Result<(Arc<UpStream>, String), MediaError> {
    let up = Arc::new(UpStream {
        id,
        pc: Mutex::new(Some(pc.clone())),
        shared: shared.clone(),
        events: Mutex::new(Some(events)),
        codecs: Mutex::new(codecs),
        tracks: Mutex::new(vec![]),
        downs: Mutex::new(vec![]),
        channels: Mutex::new(HashMap::new()),
        connected: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        cancel: CancellationToken::new(),
        rtcp_ssrc: rand::random(),
        negotiation: tokio::sync::Mutex::new(()),
        held: Mutex::new(vec![]),
    });
    lock(&shared.ups).insert(id, Arc::downgrade(&up));
    up.wire_callbacks(&pc);
    match up.negotiate(offer).await {
        Ok(answer) => {
            let weak = Arc::downgrade(&up);
            shared.spawn(rtcp_sender(weak, pc, up.cancel.clone()));
            tracing::debug!(stream = %id, "published");
            Ok((up, answer))
        }
        Err(e) => {
            up.shutdown(false).await;
            Err(e)
        }
    }
}

impl UpStream {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The codecs a subscriber's connection needs: those allowed, and any a track was
    /// negotiated with before a restriction.
    pub(crate) fn codecs(&self) -> Vec<Codec> {
        let mut codecs = lock(&self.codecs).clone();
        for track in lock(&self.tracks).iter() {
            if !codecs.contains(&track.codec) {
                codecs.push(track.codec);
            }
        }
        codecs
    }

    /// Narrows the codecs later negotiations may use to those also in `allowed` (a
    /// stream negotiated before its publisher joined a group takes on the group's
    /// rules). Fails, changing nothing, if a track already uses a codec not allowed.
    pub fn restrict_codecs(&self, allowed: &[Codec]) -> Result<(), MediaError> {
        if let Some(track) = lock(&self.tracks)
            .iter()
            .find(|t| !allowed.contains(&t.codec))
        {
            let names: Vec<&str> = allowed.iter().map(|c| c.name()).collect();
            return Err(MediaError::NoCommonCodec(format!(
                "{}; the stream uses {}",
                names.join(", "),
                track.codec.name()
            )));
        }
        lock(&self.codecs).retain(|c| allowed.contains(c));
        Ok(())
    }

    /// Stops forwarding the publisher's media of one kind to every subscriber (`true`:
    /// the publisher turned its camera or microphone off), or resumes it, video from a
    /// keyframe. Holds across renegotiations, for tracks added later too.
    pub fn hold(&self, kind: MediaKind, held: bool) {
        {
            let mut kinds = lock(&self.held);
            kinds.retain(|k| *k != kind);
            if held {
                kinds.push(kind);
            }
        }
        for track in lock(&self.tracks).iter().filter(|t| t.kind == kind) {
            if track.held.swap(held, Ordering::Relaxed) != held {
                track.send(UpCtl::Hold(held));
            }
        }
    }

    /// The negotiated tracks, in m-line order.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        lock(&self.tracks).iter().map(|t| t.info()).collect()
    }

    pub(crate) fn tracks_arc(&self) -> Vec<Arc<UpTrack>> {
        lock(&self.tracks).clone()
    }

    /// The CNAME subscribers see for this stream.
    pub(crate) fn stream_label(&self) -> String {
        format!("cinnabar-{}", self.id)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) && !self.closed.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub(crate) fn cached_bytes(&self) -> usize {
        lock(&self.tracks)
            .iter()
            .map(|t| t.cached_bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// The tracks a subscriber with this selection gets.
    pub(crate) fn select(
        &self,
        selection: TrackSelection,
    ) -> Result<Vec<Arc<UpTrack>>, MediaError> {
        let chosen: Vec<Arc<UpTrack>> = self
            .choose(selection)?
            .into_iter()
            .filter_map(|(_, track)| track)
            .collect();
        if chosen.is_empty() {
            return Err(MediaError::NothingToSend);
        }
        Ok(chosen)
    }

    /// One down track per selected kind: fed by the publisher's track of that kind if it
    /// has one, else an empty slot with the first allowed codec of that kind.
    pub(crate) fn slots(
        &self,
        selection: TrackSelection,
        codecs: &[Codec],
        mut next_id: impl FnMut() -> u64,
    ) -> Result<Vec<Arc<DownTrack>>, MediaError> {
        let mut slots = vec![];
        for (kind, source) in self.choose(selection)? {
            let index = slots.len();
            let track = match source {
                Some(up) => DownTrack::new(next_id(), index, &up),
                None => match codecs.iter().find(|c| c.kind() == kind) {
                    Some(&codec) => {
                        DownTrack::slot(next_id(), index, kind, codec, self.stream_label())
                    }
                    None => continue,
                },
            };
            slots.push(Arc::new(track));
        }
        if slots.is_empty() {
            return Err(MediaError::NothingToSend);
        }
        Ok(slots)
    }

    /// Each kind the selection asks for, with the track that serves it if there is one:
    /// the first audio track, and the first (`High`) or last (`Low`) video track.
    fn choose(&self, selection: TrackSelection) -> Result<Vec<Choice>, MediaError> {
        if self.is_closed() {
            return Err(MediaError::Closed);
        }
        let tracks = lock(&self.tracks);
        let mut chosen = vec![];
        if selection.audio {
            let audio = tracks.iter().find(|t| t.kind == MediaKind::Audio);
            chosen.push((MediaKind::Audio, audio.cloned()));
        }
        let mut video = tracks.iter().filter(|t| t.kind == MediaKind::Video);
        match selection.video {
            VideoSelection::None => {}
            VideoSelection::High => chosen.push((MediaKind::Video, video.next().cloned())),
            VideoSelection::Low => chosen.push((MediaKind::Video, video.next_back().cloned())),
        }
        Ok(chosen)
    }

    pub(crate) fn add_down(&self, down: &Arc<DownStream>) {
        let mut downs = lock(&self.downs);
        downs.retain(|w| w.strong_count() > 0);
        downs.push(Arc::downgrade(down));
    }

    fn pc(&self) -> Result<Arc<RTCPeerConnection>, MediaError> {
        lock(&self.pc).clone().ok_or(MediaError::Closed)
    }

    /// Report an event, unless the stream has closed.
    fn emit(&self, event: MediaEvent) {
        // Under the lock, so nothing can follow `Closed`.
        if let Some(sink) = lock(&self.events).as_ref() {
            sink(event);
        }
    }

    fn wire_callbacks(self: &Arc<Self>, pc: &RTCPeerConnection) {
        let weak = Arc::downgrade(self);
        pc.on_ice_candidate(Box::new(move |c| {
            if let (Some(up), Some(c)) = (weak.upgrade(), c)
                && let Some(ev) = candidate_event(&c)
            {
                up.emit(ev);
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        pc.on_peer_connection_state_change(Box::new(move |state| {
            if let Some(up) = weak.upgrade() {
                up.on_state(state);
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        pc.on_track(Box::new(move |track, receiver, transceiver| {
            if let Some(up) = weak.upgrade() {
                up.on_track(track, receiver, transceiver.mid().map(|m| m.to_string()));
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        pc.on_data_channel(Box::new(move |channel| {
            if let Some(up) = weak.upgrade() {
                up.on_data_channel(channel);
            }
            Box::pin(async {})
        }));
    }

    /// A notifier for this stream's tasks: events stop once the stream is gone.
    fn notifier(self: &Arc<Self>) -> EventSink {
        let weak = Arc::downgrade(self);
        Arc::new(move |event| {
            if let Some(up) = weak.upgrade() {
                up.emit(event);
            }
        })
    }

    /// Registers a data channel the publisher opened and reports its messages.
    fn on_data_channel(self: &Arc<Self>, channel: Arc<RTCDataChannel>) {
        if self.is_closed() {
            return;
        }
        let label: Arc<str> = channel.label().into();
        {
            let mut channels = lock(&self.channels);
            if channels.len() >= MAX_DATA_CHANNELS && !channels.contains_key(&label) {
                tracing::debug!(stream = %self.id, %label, "too many data channels; ignored");
                return;
            }
            channels.insert(label.clone(), channel.clone());
        }
        self.watch_channel(&channel, label);
    }

    fn watch_channel(self: &Arc<Self>, channel: &Arc<RTCDataChannel>, label: Arc<str>) {
        let notify = self.notifier();
        let message_label = label.clone();
        channel.on_message(Box::new(move |message: DataChannelMessage| {
            let payload = if message.is_string {
                match std::str::from_utf8(&message.data) {
                    Ok(text) => DataPayload::Text(text.into()),
                    Err(_) => return Box::pin(async {}),
                }
            } else {
                DataPayload::Binary(message.data)
            };
            notify(MediaEvent::Data {
                label: message_label.clone(),
                payload,
            });
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        let closed = Arc::downgrade(channel);
        channel.on_close(Box::new(move || {
            if let Some(up) = weak.upgrade() {
                let mut channels = lock(&up.channels);
                // Only if a newer channel of the same label did not replace it.
                if channels
                    .get(&label)
                    .is_some_and(|c| Weak::ptr_eq(&Arc::downgrade(c), &closed))
                {
                    channels.remove(&label);
                }
            }
            Box::pin(async {})
        }));
    }

    /// Sends a message to the publisher on its data channel `label`, opening one if it has
    /// none (ordered and reliable, except `unreliable`, which is neither, as Janus clients
    /// use it). Messages are dropped, not queued without bound, when the channel is not
    /// open, the connection has no data channels, or the publisher does not read.
    pub async fn send_data(
        self: &Arc<Self>,
        label: &str,
        payload: &DataPayload,
    ) -> Result<(), MediaError> {
        let pc = self.pc()?;
        let existing = lock(&self.channels).get(label).cloned();
        let channel = match existing {
            Some(channel) => channel,
            None => {
                if pc.sctp().state() != RTCSctpTransportState::Connected {
                    return Err(MediaError::Negotiation(
                        "the connection has no data channels".to_owned(),
                    ));
                }
                if lock(&self.channels).len() >= MAX_DATA_CHANNELS {
                    return Err(MediaError::Negotiation("too many data channels".to_owned()));
                }
                let init = if label == "unreliable" {
                    RTCDataChannelInit {
                        ordered: Some(false),
                        max_retransmits: Some(0),
                        ..Default::default()
                    }
                } else {
                    RTCDataChannelInit::default()
                };
                let channel = pc.create_data_channel(label, Some(init)).await?;
                let label: Arc<str> = label.into();
                lock(&self.channels).insert(label.clone(), channel.clone());
                self.watch_channel(&channel, label);
                channel
            }
        };
        if channel.ready_state() != RTCDataChannelState::Open
            || channel.buffered_amount().await > MAX_DATA_BUFFERED
        {
            return Ok(());
        }
        let sent = match payload {
            DataPayload::Text(text) => channel.send_text(text.to_string()).await,
            DataPayload::Binary(bytes) => channel.send(bytes).await,
        };
        sent.map(|_| ()).map_err(MediaError::from)
    }

    fn on_state(self: &Arc<Self>, state: RTCPeerConnectionState) {
        tracing::debug!(stream = %self.id, %state, "up connection");
        match state {
            RTCPeerConnectionState::Connected
                if !self.connected.swap(true, Ordering::Relaxed) && !self.is_closed() =>
            {
                self.emit(MediaEvent::Connected);
            }
            RTCPeerConnectionState::Failed if !self.is_closed() => {
                self.emit(MediaEvent::Failed);
            }
            RTCPeerConnectionState::Closed if !self.is_closed() => {
                // Closing from inside a webrtc-rs callback would deadlock.
                let up = self.clone();
                self.shared.spawn(async move { up.close().await });
            }
            _ => {}
        }
    }

    fn on_track(
        self: &Arc<Self>,
        remote: Arc<TrackRemote>,
        receiver: Arc<RTCRtpReceiver>,
        mid: Option<String>,
    ) {
        if self.is_closed() {
            return;
        }
        let track = lock(&self.tracks)
            .iter()
            .find(|t| Some(&t.mid) == mid.as_ref())
            .cloned();
        let Some(track) = track else {
            tracing::debug!(stream = %self.id, ?mid, "RTP for an m-line we did not accept");
            return;
        };
        if track.started.swap(true, Ordering::Relaxed) {
            // One reader per m-line: a second SSRC (simulcast) is ignored.
            tracing::debug!(stream = %self.id, ?mid, "second track on one m-line ignored");
            return;
        }
        let Ok(pc) = self.pc() else { return };
        let Some(ctl_rx) = lock(&track.ctl_rx).take() else {
            return;
        };
        track.ssrc.store(remote.ssrc(), Ordering::Relaxed);
        let reader = Reader::new(
            track.clone(),
            remote.payload_type(),
            remote.ssrc(),
            self.rtcp_ssrc,
            self.shared.clone(),
            self.notifier(),
        );
        let span = tracing::debug_span!("up_track", stream = %self.id, mid = %track.mid);
        self.shared.spawn(
            reader
                .run(remote, pc, ctl_rx, self.cancel.clone())
                .instrument(span.clone()),
        );
        self.shared
            .spawn(read_sender_reports(track, receiver, self.cancel.clone()).instrument(span));
    }

    /// Apply an offer and answer it, restricting each m-line to one codec.
    async fn negotiate(&self, offer: &str) -> Result<String, MediaError> {
        let _serialised = self.negotiation.lock().await;
        let pc = self.pc()?;
        let offer_text = offer;
        let offer = RTCSessionDescription::offer(strip_simulcast(offer))
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        pc.set_remote_description(offer)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let allowed = lock(&self.codecs).clone();
        let mut chosen = vec![];
        for t in pc.get_transceivers().await {
            let kind = match t.kind() {
                RTPCodecType::Audio => MediaKind::Audio,
                RTPCodecType::Video => MediaKind::Video,
                _ => continue,
            };
            let Some(mid) = t.mid() else { continue };
            if !t.direction().has_recv() {
                continue;
            }
            let params = t.receiver().await.get_parameters().await;
            let pick = params.codecs.iter().find_map(|p| {
                Codec::from_mime(&p.capability.mime_type)
                    .filter(|c| c.kind() == kind && allowed.contains(c))
                    .map(|c| (c, p.clone()))
            });
            match pick {
                Some((codec, params)) => {
                    t.set_codec_preferences(vec![params]).await?;
                    chosen.push((mid.to_string(), kind, codec));
                }
                // The engine knows the codec but this stream may not use it (it was
                // restricted after it was created): the publisher must not send.
                None if !params.codecs.is_empty() => {
                    t.set_direction(RTCRtpTransceiverDirection::Inactive).await;
                }
                None => {}
            }
        }
        // An offer with only data channels is fine (Janus clients start that way).
        if chosen.is_empty() && !has_data_section(offer_text) {
            let names: Vec<&str> = allowed.iter().map(|c| c.name()).collect();
            return Err(MediaError::NoCommonCodec(names.join(", ")));
        }
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        pc.set_local_description(answer)
            .await
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        let sdp = pc
            .local_description()
            .await
            .ok_or_else(|| MediaError::Internal("no local description".to_owned()))?
            .sdp;
        let held = lock(&self.held).clone();
        let mut tracks = lock(&self.tracks);
        let label = self.stream_label();
        let updated: Vec<Arc<UpTrack>> = chosen
            .into_iter()
            .map(|(mid, kind, codec)| {
                match tracks.iter().find(|t| t.mid == mid && t.codec == codec) {
                    Some(t) => t.clone(),
                    None => {
                        let track = UpTrack::new(mid, kind, codec, label.clone());
                        track.held.store(held.contains(&kind), Ordering::Relaxed);
                        Arc::new(track)
                    }
                }
            })
            .collect();
        *tracks = updated;
        Ok(sdp)
    }

    /// Apply a new offer from the publisher (new tracks, ICE restart).
    pub async fn renegotiate(&self, offer_sdp: &str) -> Result<String, MediaError> {
        self.negotiate(offer_sdp).await
    }

    /// Our current description with every local candidate in it, once they are gathered,
    /// for peers that do not take trickled candidates (Janus clients).
    pub async fn gathered_sdp(&self) -> Result<String, MediaError> {
        let pc = self.pc()?;
        gathered_sdp(&pc).await
    }

    pub async fn add_remote_candidate(
        &self,
        candidate: serde_json::Value,
    ) -> Result<(), MediaError> {
        let pc = self.pc()?;
        let Some(init) = parse_candidate(candidate)? else {
            return Ok(());
        };
        pc.add_ice_candidate(init)
            .await
            .map_err(|e| MediaError::InvalidCandidate(e.to_string()))
    }

    /// Close the stream and every down stream it feeds.
    pub async fn close(&self) {
        self.shutdown(true).await;
    }

    async fn shutdown(&self, notify: bool) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        self.cancel.cancel();
        let downs: Vec<Arc<DownStream>> = std::mem::take(&mut *lock(&self.downs))
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        futures_util::future::join_all(downs.iter().map(|d| d.close())).await;
        let pc = lock(&self.pc).take();
        if let Some(pc) = pc
            && let Err(e) = pc.close().await
        {
            tracing::debug!(stream = %self.id, "closing up connection: {e}");
        }
        // Queued requests may hold down tracks: drop them with the tracks.
        lock(&self.tracks).clear();
        lock(&self.channels).clear();
        lock(&self.shared.ups).remove(&self.id);
        tracing::debug!(stream = %self.id, "up stream closed");
        let mut events = lock(&self.events);
        if let Some(sink) = events.take()
            && notify
        {
            sink(MediaEvent::Closed);
        }
    }

    pub(crate) fn stats(&self) -> UpStreamStats {
        UpStreamStats {
            id: self.id,
            tracks: lock(&self.tracks)
                .iter()
                .map(|t| lock(&t.stats).clone())
                .collect(),
        }
    }
}

/// Reads the publisher's sender reports: their NTP/RTP pair feeds our
/// receiver reports (LSR) and the SRs we send subscribers.
async fn read_sender_reports(
    track: Arc<UpTrack>,
    receiver: Arc<RTCRtpReceiver>,
    cancel: CancellationToken,
) {
    loop {
        let packets = tokio::select! {
            _ = cancel.cancelled() => return,
            r = receiver.read_rtcp() => match r {
                Ok((packets, _)) => packets,
                Err(_) => return,
            },
        };
        for p in packets {
            if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                *lock(&track.sender_info) = Some(SenderInfo {
                    ntp: sr.ntp_time,
                    rtp: sr.rtp_time,
                    at: Instant::now(),
                });
            }
        }
    }
}

/// Once a second, one REMB for the connection's video tracks: per track
/// the smallest subscriber limit, summed over tracks.
async fn rtcp_sender(up: Weak<UpStream>, pc: Arc<RTCPeerConnection>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(up) = up.upgrade() else { return };
        let (sender_ssrc, tracks) = (up.rtcp_ssrc, lock(&up.tracks).clone());
        drop(up);
        let now = Instant::now();
        let mut ssrcs = vec![];
        let mut bitrate = 0u64;
        for t in tracks.iter().filter(|t| t.kind == MediaKind::Video) {
            if !t.started.load(Ordering::Relaxed) {
                continue;
            }
            ssrcs.push(t.ssrc.load(Ordering::Relaxed));
            let rates = lock(&t.down_rates).clone();
            bitrate += publisher_limit(rates.iter().map(|r| r.limit(now)));
        }
        if ssrcs.is_empty() {
            continue;
        }
        let remb = ReceiverEstimatedMaximumBitrate {
            sender_ssrc,
            bitrate: bitrate.min(1 << 30) as f32,
            ssrcs,
        };
        let _ = pc.write_rtcp(&[Box::new(remb)]).await;
    }
}

/// Whether an SDP has an `m=application` section (data channels).
fn has_data_section(sdp: &str) -> bool {
    sdp.lines().any(|l| l.starts_with("m=application "))
}
