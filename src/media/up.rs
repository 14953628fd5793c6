//! A publisher's stream and its tracks.
//!
//! [`UpStream`] owns the PeerConnection; each negotiated m-line is an
//! [`UpTrack`], known as soon as the offer is answered. When the first RTP of
//! an m-line arrives, its reader task starts: it owns the packet cache,
//! the receive statistics, the keyframe limiter, the NACK aggregator and the
//! list of down tracks it feeds, and it is the only one to touch them.
//! Down tracks and RTCP handlers reach it through [`UpCtl`] messages.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use webrtc::interceptor::Attributes;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::reception_report::ReceptionReport;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::track::track_remote::TrackRemote;

use super::codecs::{self, Codec, MediaKind};
use super::down::{DownItem, DownRate, DownStream, DownTrack};
use super::jitter::Jitter;
use super::packetcache::{
    Arrival, CachedPacket, MAX_CAPACITY, MIN_AUDIO_CAPACITY, MIN_VIDEO_CAPACITY, PacketCache,
    seq_diff,
};
use super::rate::{RateEstimator, publisher_limit};
use super::rtcp::{
    KEYFRAME_INTERVAL, KeyframeLimiter, NACK_AGGREGATION_DELAY, NackAggregator, ReceiverStats,
    ntp_middle,
};
use super::{
    EventSink, MediaError, MediaEvent, Shared, StreamId, TrackInfo, TrackSelection, UpStreamStats,
    UpTrackStats, VideoSelection, candidate_event, lock, parse_candidate, strip_simulcast,
};

type RtcpPacket = Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>;

/// A publisher's stream: one PeerConnection, one track per m-line.
pub struct UpStream {
    id: StreamId,
    /// Taken (and closed) by `close`, so a closed stream holds nothing.
    pc: Mutex<Option<Arc<RTCPeerConnection>>>,
    shared: Arc<Shared>,
    /// Dropped after `Closed`, which breaks any cycle through the sink.
    events: Mutex<Option<EventSink>>,
    codecs: Vec<Codec>,
    tracks: Mutex<Vec<Arc<UpTrack>>>,
    downs: Mutex<Vec<Weak<DownStream>>>,
    connected: AtomicBool,
    closed: AtomicBool,
    cancel: CancellationToken,
    /// Our SSRC in the RTCP we send upstream.
    rtcp_ssrc: u32,
    negotiation: tokio::sync::Mutex<()>,
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
    started: AtomicBool,
    ssrc: AtomicU32,
    sender_info: Mutex<Option<SenderInfo>>,
    /// The attached subscribers' estimates, for the REMB (set by the reader).
    down_rates: Mutex<Vec<Arc<DownRate>>>,
    stats: Mutex<UpTrackStats>,
    cached_bytes: AtomicUsize,
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
        codecs,
        tracks: Mutex::new(vec![]),
        downs: Mutex::new(vec![]),
        connected: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        cancel: CancellationToken::new(),
        rtcp_ssrc: rand::random(),
        negotiation: tokio::sync::Mutex::new(()),
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

    pub(crate) fn codecs(&self) -> &[Codec] {
        &self.codecs
    }

    /// The negotiated tracks, in m-line order.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        lock(&self.tracks).iter().map(|t| t.info()).collect()
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
        if self.is_closed() {
            return Err(MediaError::Closed);
        }
        let tracks = lock(&self.tracks);
        let mut chosen = vec![];
        if selection.audio {
            chosen.extend(tracks.iter().find(|t| t.kind == MediaKind::Audio).cloned());
        }
        let mut video = tracks.iter().filter(|t| t.kind == MediaKind::Video);
        match selection.video {
            VideoSelection::None => {}
            VideoSelection::High => chosen.extend(video.next().cloned()),
            VideoSelection::Low => chosen.extend(video.next_back().cloned()),
        }
        if chosen.is_empty() {
            return Err(MediaError::NothingToSend);
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
        let offer = RTCSessionDescription::offer(strip_simulcast(offer))
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        pc.set_remote_description(offer)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
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
                    .filter(|c| c.kind() == kind && self.codecs.contains(c))
                    .map(|c| (c, p.clone()))
            });
            if let Some((codec, params)) = pick {
                t.set_codec_preferences(vec![params]).await?;
                chosen.push((mid.to_string(), kind, codec));
            }
        }
        if chosen.is_empty() {
            let names: Vec<&str> = self.codecs.iter().map(|c| c.name()).collect();
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
        let mut tracks = lock(&self.tracks);
        let label = format!("cinnabar-{}", self.id);
        let updated: Vec<Arc<UpTrack>> = chosen
            .into_iter()
            .map(|(mid, kind, codec)| {
                match tracks.iter().find(|t| t.mid == mid && t.codec == codec) {
                    Some(t) => t.clone(),
                    None => Arc::new(UpTrack::new(mid, kind, codec, label.clone())),
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

/// A down track as the reader sees it.
struct DownEntry {
    track: Arc<DownTrack>,
    overflow: Overflow,
}

impl DownEntry {
    /// Queue a packet; false if the down track is gone.
    fn forward(&mut self, p: &CachedPacket, video: bool) -> bool {
        let sent = self.overflow.offer(p.marker, video, || {
            match self.track.queue.try_send(DownItem::Forward(p.clone())) {
                Ok(()) => Ok(true),
                Err(TrySendError::Full(_)) => Ok(false),
                Err(TrySendError::Closed(_)) => Err(()),
            }
        });
        match sent {
            Ok(true) => true,
            Ok(false) => {
                self.track.rate.count_drop();
                true
            }
            Err(()) => false,
        }
    }
}

/// What a full queue does to a stream: the packet is lost and, for video,
/// so is the rest of its frame (the frame is broken anyway, and dropping it
/// whole gives the queue time to drain).
#[derive(Debug, Default)]
struct Overflow {
    dropping: bool,
}

impl Overflow {
    /// Offer a packet to `send` (which says whether the queue took it).
    /// Returns whether it was sent; errors from `send` pass through.
    fn offer<E>(
        &mut self,
        marker: bool,
        video: bool,
        send: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, E> {
        if self.dropping {
            self.dropping = !marker;
            return Ok(false);
        }
        let sent = send()?;
        if !sent {
            self.dropping = video && !marker;
        }
        Ok(sent)
    }
}

/// The reader task of one up track: the only owner of its per-packet state.
struct Reader {
    track: Arc<UpTrack>,
    shared: Arc<Shared>,
    video: bool,
    payload_type: u8,
    media_ssrc: u32,
    rtcp_ssrc: u32,
    cache: PacketCache,
    receiver_stats: ReceiverStats,
    jitter: Jitter,
    rate: RateEstimator,
    packet_rate: u32,
    keyframes: KeyframeLimiter,
    nacks: NackAggregator,
    downs: Vec<DownEntry>,
    next_tick: Instant,
    out: Vec<RtcpPacket>,
    packets: u64,
    keyframe_count: u64,
    nacks_sent: u64,
    plis_sent: u64,
    last_loss: f64,
    total_lost: u32,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.track.cached_bytes.store(0, Ordering::Relaxed);
        self.shared.cache_dropped();
    }
}

/// Consecutive read errors after which the track is considered dead.
const MAX_READ_ERRORS: u32 = 100;
const READ_BUFFER: usize = 1500;

/// Read one packet; owns its buffer so the future can outlive a `select!`
/// round (TrackRemote::read is not cancel-safe).
async fn read_packet(
    remote: Arc<TrackRemote>,
    mut buf: Vec<u8>,
) -> (Result<webrtc::rtp::packet::Packet, webrtc::Error>, Vec<u8>) {
    let r = remote.read(&mut buf).await.map(|(p, _): (_, Attributes)| p);
    (r, buf)
}

impl Reader {
    fn new(
        track: Arc<UpTrack>,
        payload_type: u8,
        media_ssrc: u32,
        rtcp_ssrc: u32,
        shared: Arc<Shared>,
    ) -> Self {
        let video = track.kind == MediaKind::Video;
        shared.cache_created();
        Reader {
            video,
            payload_type,
            media_ssrc,
            rtcp_ssrc,
            cache: PacketCache::new(if video {
                MIN_VIDEO_CAPACITY
            } else {
                MIN_AUDIO_CAPACITY
            }),
            receiver_stats: ReceiverStats::default(),
            jitter: Jitter::new(track.codec.clock_rate()),
            rate: RateEstimator::new(Duration::from_secs(1)),
            packet_rate: 0,
            keyframes: KeyframeLimiter::new(KEYFRAME_INTERVAL),
            nacks: NackAggregator::new(NACK_AGGREGATION_DELAY),
            downs: vec![],
            next_tick: Instant::now() + Duration::from_secs(1),
            out: vec![],
            packets: 0,
            keyframe_count: 0,
            nacks_sent: 0,
            plis_sent: 0,
            last_loss: 0.0,
            total_lost: 0,
            track,
            shared,
        }
    }

    async fn run(
        mut self,
        remote: Arc<TrackRemote>,
        pc: Arc<RTCPeerConnection>,
        mut ctl: mpsc::UnboundedReceiver<UpCtl>,
        cancel: CancellationToken,
    ) {
        let mut read = pin!(read_packet(remote.clone(), vec![0; READ_BUFFER]));
        let mut sleep = pin!(tokio::time::sleep_until(self.deadline().into()));
        let mut errors = 0;
        loop {
            let deadline = tokio::time::Instant::from(self.deadline());
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                msg = ctl.recv() => match msg {
                    Some(msg) => self.on_ctl(msg, Instant::now()),
                    None => break,
                },
                (result, buf) = &mut read => {
                    match result {
                        Ok(packet) => {
                            errors = 0;
                            self.on_packet(packet, Instant::now());
                        }
                        Err(e) => {
                            errors += 1;
                            if errors >= MAX_READ_ERRORS {
                                tracing::debug!(mid = %self.track.mid, "up track ended: {e}");
                                break;
                            }
                        }
                    }
                    read.set(read_packet(remote.clone(), buf));
                }
                _ = &mut sleep => self.on_timer(Instant::now()),
            }
            if !self.out.is_empty() {
                let out = std::mem::take(&mut self.out);
                let _ = pc.write_rtcp(&out).await;
            }
        }
    }

    fn deadline(&self) -> Instant {
        [self.keyframes.deadline(), self.nacks.deadline()]
            .into_iter()
            .flatten()
            .fold(self.next_tick, Instant::min)
    }

    fn on_packet(&mut self, packet: webrtc::rtp::packet::Packet, now: Instant) {
        let h = &packet.header;
        if h.payload_type != self.payload_type {
            return;
        }
        let keyframe =
            self.video && codecs::is_keyframe(self.track.codec, &packet.payload) == Some(true);
        let p = CachedPacket {
            seq: h.sequence_number,
            timestamp: h.timestamp,
            marker: h.marker,
            keyframe,
            payload: packet.payload,
        };
        let len = p.payload.len();
        match self.cache.store(p.clone()) {
            Arrival::Duplicate => return,
            Arrival::InOrder => {
                self.jitter.update(p.timestamp, now);
                if self.video {
                    self.nack_holes();
                }
            }
            Arrival::Late => {}
        }
        self.receiver_stats.on_packet(p.seq);
        self.rate.accumulate(len, now);
        self.packets += 1;
        if keyframe {
            self.keyframe_count += 1;
            self.keyframes.keyframe_received();
        }
        let video = self.video;
        self.downs.retain_mut(|d| d.forward(&p, video));
    }

    /// NACK the holes about 20 ms old (Galène counts packets: pps/50).
    fn nack_holes(&mut self) {
        let age = (self.packet_rate / 50).clamp(2, 24) as u16;
        let mut pairs = vec![];
        while let Some(pair) = self.cache.take_nack(age) {
            pairs.push(pair);
        }
        if !pairs.is_empty() {
            self.nacks_sent += pairs.len() as u64;
            self.out.push(Box::new(TransportLayerNack {
                sender_ssrc: self.rtcp_ssrc,
                media_ssrc: self.media_ssrc,
                nacks: pairs,
            }));
        }
    }

    fn request_keyframe(&mut self, now: Instant) {
        if self.video && self.keyframes.request(now) {
            self.send_pli();
        }
    }

    fn send_pli(&mut self) {
        self.plis_sent += 1;
        self.out.push(Box::new(PictureLossIndication {
            sender_ssrc: self.rtcp_ssrc,
            media_ssrc: self.media_ssrc,
        }));
    }

    fn on_ctl(&mut self, msg: UpCtl, now: Instant) {
        match msg {
            UpCtl::AddDown(track) => {
                if self.downs.iter().any(|d| d.track.id == track.id) {
                    return;
                }
                if self.video {
                    match self.cache.keyframe_replay() {
                        Some(packets) => {
                            for p in packets {
                                let _ = track.queue.try_send(DownItem::Forward(p));
                            }
                        }
                        None => self.request_keyframe(now),
                    }
                }
                self.downs.push(DownEntry {
                    track,
                    overflow: Overflow::default(),
                });
                self.publish_down_rates();
            }
            UpCtl::RemoveDown(id) => {
                self.downs.retain(|d| d.track.id != id);
                self.publish_down_rates();
            }
            UpCtl::Nack(track, seqs) => {
                for seq in seqs {
                    match self.cache.get(seq) {
                        Some(p) => {
                            let _ = track.queue.try_send(DownItem::Retransmit(p.clone()));
                        }
                        None => self.nacks.add(seq, now),
                    }
                }
            }
            UpCtl::Keyframe => self.request_keyframe(now),
        }
    }

    fn publish_down_rates(&self) {
        *lock(&self.track.down_rates) = self.downs.iter().map(|d| d.track.rate.clone()).collect();
    }

    fn on_timer(&mut self, now: Instant) {
        if self.keyframes.poll(now) {
            self.send_pli();
        }
        if let Some(newest) = self.cache.newest() {
            // Nobody can use packets from before the last keyframe.
            let floor = newest.wrapping_sub(256);
            let oldest = match self.cache.last_keyframe() {
                Some(k) if seq_diff(k, floor) > 0 => k,
                _ => floor,
            };
            let cache = &self.cache;
            let pairs = self.nacks.poll(now, oldest, |s| cache.get(s).is_some());
            if !pairs.is_empty() {
                self.nacks_sent += pairs.len() as u64;
                self.out.push(Box::new(TransportLayerNack {
                    sender_ssrc: self.rtcp_ssrc,
                    media_ssrc: self.media_ssrc,
                    nacks: pairs,
                }));
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + Duration::from_secs(1);
            self.tick(now);
        }
    }

    /// Once a second: receiver report, cache size, statistics.
    fn tick(&mut self, now: Instant) {
        let (bitrate, packet_rate) = self.rate.estimate(now);
        self.packet_rate = packet_rate;
        if self.packets > 0 {
            let r = self.receiver_stats.report();
            self.last_loss = f64::from(r.fraction_lost) / 256.0;
            self.total_lost = r.total_lost;
            let (lsr, dlsr) = match self.track.sender_info() {
                Some(sr) => {
                    let held = now.saturating_duration_since(sr.at);
                    (
                        ntp_middle(sr.ntp),
                        (held.as_micros() * 65536 / 1_000_000) as u32,
                    )
                }
                None => (0, 0),
            };
            self.out.push(Box::new(ReceiverReport {
                ssrc: self.rtcp_ssrc,
                reports: vec![ReceptionReport {
                    ssrc: self.media_ssrc,
                    fraction_lost: r.fraction_lost,
                    total_lost: r.total_lost,
                    last_sequence_number: r.ext_highest,
                    jitter: self.jitter.jitter(),
                    last_sender_report: lsr,
                    delay: dlsr,
                }],
                profile_extensions: Bytes::new(),
            }));
        }
        // Keep packets for about 4 round trips of the slowest subscriber.
        let worst = self
            .downs
            .iter()
            .map(|d| d.track.rate.rtt_ms() + 4.0 * d.track.rate.jitter_ms())
            .fold(0.0, f64::max);
        let min = if self.video {
            MIN_VIDEO_CAPACITY
        } else {
            MIN_AUDIO_CAPACITY
        };
        let target = (f64::from(packet_rate) * worst / 1000.0 * 4.0) as usize;
        self.cache.resize_towards(target.clamp(min, MAX_CAPACITY));
        self.track
            .cached_bytes
            .store(self.cache.bytes(), Ordering::Relaxed);
        *lock(&self.track.stats) = UpTrackStats {
            kind: self.track.kind,
            codec: self.track.codec,
            bitrate,
            packet_rate,
            loss: self.last_loss,
            total_lost: self.total_lost,
            jitter_ms: self.jitter.millis(),
            packets: self.packets,
            keyframes: self.keyframe_count,
            nacks_sent: self.nacks_sent,
            plis_sent: self.plis_sent,
            subscribers: self.downs.len(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_drops_to_the_end_of_the_frame() {
        // (marker, queue has room) -> sent. Frames end at the markers.
        let video: [(bool, bool, bool); 9] = [
            (false, true, true),
            (false, false, false), // full: the rest of this frame goes
            (false, true, false),
            (true, true, false), // its last packet
            (false, true, true), // the next frame is whole
            (true, true, true),
            (true, false, false), // a full queue on a frame's last packet
            (false, true, true),  // drops nothing more
            (true, true, true),
        ];
        let mut o = Overflow::default();
        for (i, (marker, room, sent)) in video.into_iter().enumerate() {
            assert_eq!(
                o.offer::<()>(marker, true, || Ok(room)),
                Ok(sent),
                "video packet {i}"
            );
        }
        // Audio loses only what did not fit.
        let mut o = Overflow::default();
        let audio = [(true, true), (false, false), (true, true), (true, true)];
        for (i, (room, sent)) in audio.into_iter().enumerate() {
            assert_eq!(
                o.offer::<()>(false, false, || Ok(room)),
                Ok(sent),
                "audio packet {i}"
            );
        }
        // A closed queue is reported.
        assert_eq!(
            Overflow::default().offer(false, true, || Err("closed")),
            Err("closed")
        );
    }
}
