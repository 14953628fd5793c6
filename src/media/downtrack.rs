//! One track sent to a subscriber: our own `TrackLocal`, its writer task
//! (seqno map, SSRC/PT/timestamp rewrite, sender reports) and the task
//! reading the subscriber's RTCP for it (NACK, PLI/FIR, REMB, RR).

use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::reception_report::ReceptionReport;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecParameters, RTPCodecType};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::{TrackLocal, TrackLocalContext, TrackLocalWriter};

use super::codecs::{Codec, MediaKind};
use super::packetcache::CachedPacket;
use super::packetmap::PacketMap;
use super::rate::{
    DEFAULT_LOSS_RATE, LossEstimator, REPORT_TIMEOUT, RateEstimator, subscriber_limit,
};
use super::rtcp::{NtpClock, SlowLink, rtt_from_report};
use super::sendpath::{Route, SendError, Sender};
use super::up::{UpCtl, UpTrack};
use super::{DownTrackStats, EventSink, MediaEvent, lock, rtp_codec_type};

/// Packets queued per down track before dropping (Galène's writers hold 32;
/// ours is per track, and a keyframe alone can be 30 packets).
const QUEUE: usize = 128;
const SR_INTERVAL: Duration = Duration::from_millis(500);

/// What `bind` learnt from webrtc-rs.
struct Binding {
    ssrc: u32,
    payload_type: u8,
    writer: Arc<dyn TrackLocalWriter + Send + Sync>,
}

/// What the up track's reader queues for a down track.
pub(crate) enum DownItem {
    Forward(CachedPacket),
    Retransmit(CachedPacket),
}

pub(super) enum DownCtl {
    /// The subscriber lost these (rewritten) seqnos.
    Nack(Vec<u16>),
}

/// One track sent to a subscriber.
pub(crate) struct DownTrack {
    pub id: u64,
    pub(super) track_id: String,
    stream_label: String,
    pub kind: MediaKind,
    pub codec: Codec,
    /// The up track this one forwards; empty for a slot not filled yet.
    up: Mutex<Weak<UpTrack>>,
    binding: ArcSwapOption<Binding>,
    /// Our own send path, once the connection is up on the shared socket.
    pub(super) route: ArcSwapOption<Route>,
    outgoing: Mutex<Outgoing>,
    pub queue: mpsc::Sender<DownItem>,
    pub(super) queue_rx: Mutex<Option<mpsc::Receiver<DownItem>>>,
    ctl: mpsc::UnboundedSender<DownCtl>,
    pub(super) ctl_rx: Mutex<Option<mpsc::UnboundedReceiver<DownCtl>>>,
    pub rate: Arc<DownRate>,
}

/// What a subscriber reports and what we send it, shared through atomics
/// with the up side (no lock on either path).
pub(crate) struct DownRate {
    base: Instant,
    remb: AtomicU64,
    remb_at_ms: AtomicU64,
    estimate: AtomicU64,
    estimate_at_ms: AtomicU64,
    rtt_us: AtomicU64,
    jitter_us: AtomicU64,
    fraction_lost: AtomicU32,
    bitrate: AtomicU64,
    packets: AtomicU64,
    nacks: AtomicU64,
    retransmitted: AtomicU64,
    plis: AtomicU64,
    dropped: AtomicU64,
}

impl DownRate {
    fn new() -> Self {
        DownRate {
            base: Instant::now(),
            remb: AtomicU64::new(0),
            remb_at_ms: AtomicU64::new(0),
            estimate: AtomicU64::new(DEFAULT_LOSS_RATE),
            estimate_at_ms: AtomicU64::new(0),
            rtt_us: AtomicU64::new(0),
            jitter_us: AtomicU64::new(0),
            fraction_lost: AtomicU32::new(0),
            bitrate: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            retransmitted: AtomicU64::new(0),
            plis: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Milliseconds since `base`, plus one so that 0 means "never".
    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_millis() as u64 + 1
    }

    fn fresh(&self, at: &AtomicU64, now: Instant) -> bool {
        let at = at.load(Ordering::Relaxed);
        at != 0 && self.stamp(now).saturating_sub(at) <= REPORT_TIMEOUT.as_millis() as u64
    }

    fn remb(&self, now: Instant) -> Option<u64> {
        self.fresh(&self.remb_at_ms, now)
            .then(|| self.remb.load(Ordering::Relaxed))
    }

    fn estimate(&self, now: Instant) -> u64 {
        if self.fresh(&self.estimate_at_ms, now) {
            self.estimate.load(Ordering::Relaxed)
        } else {
            DEFAULT_LOSS_RATE
        }
    }

    /// What this subscriber can take, for the publisher's REMB.
    pub fn limit(&self, now: Instant) -> u64 {
        subscriber_limit(self.estimate(now), self.remb(now))
    }

    pub fn rtt_ms(&self) -> f64 {
        self.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self, kind: MediaKind, codec: Codec, now: Instant) -> DownTrackStats {
        let rtt = self.rtt_us.load(Ordering::Relaxed);
        DownTrackStats {
            kind,
            codec,
            bitrate: self.bitrate.load(Ordering::Relaxed),
            packets: self.packets.load(Ordering::Relaxed),
            loss: f64::from(self.fraction_lost.load(Ordering::Relaxed)) / 256.0,
            jitter_ms: self.jitter_ms(),
            rtt_ms: (rtt != 0).then(|| rtt as f64 / 1000.0),
            remb: self.remb(now),
            estimate: self.estimate(now),
            nacks_received: self.nacks.load(Ordering::Relaxed),
            retransmitted: self.retransmitted.load(Ordering::Relaxed),
            plis_received: self.plis.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

impl DownTrack {
    pub(super) fn new(id: u64, index: usize, up: &Arc<UpTrack>) -> Self {
        let track = DownTrack::slot(id, index, up.kind, up.codec, up.stream_label.clone());
        *lock(&track.up) = Arc::downgrade(up);
        track
    }

    /// A track with no source yet, to be filled by [`fill`](Self::fill): its m-line is
    /// offered at once, so that a subscriber's connection is shaped before the publisher
    /// sends anything.
    pub(super) fn slot(
        id: u64,
        index: usize,
        kind: MediaKind,
        codec: Codec,
        stream_label: String,
    ) -> Self {
        let (queue, queue_rx) = mpsc::channel(QUEUE);
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        DownTrack {
            id,
            track_id: format!(
                "{}-{index}",
                if kind == MediaKind::Audio {
                    "audio"
                } else {
                    "video"
                }
            ),
            stream_label,
            kind,
            codec,
            up: Mutex::new(Weak::new()),
            binding: ArcSwapOption::empty(),
            route: ArcSwapOption::empty(),
            outgoing: Mutex::new(Outgoing::new()),
            queue,
            queue_rx: Mutex::new(Some(queue_rx)),
            ctl,
            ctl_rx: Mutex::new(Some(ctl_rx)),
            rate: Arc::new(DownRate::new()),
        }
    }

    pub(super) fn send_up(&self, ctl: UpCtl) {
        if let Some(up) = self.source() {
            up.send(ctl);
        }
    }

    fn source(&self) -> Option<Arc<UpTrack>> {
        lock(&self.up).upgrade()
    }

    /// Gives an empty slot its source; false if the codec differs or the slot is taken.
    /// A slot is filled once: its sequence numbers and timestamps follow one source, so
    /// a slot whose source went away after sending stays empty.
    pub(super) fn fill(&self, up: &Arc<UpTrack>) -> bool {
        let mut source = lock(&self.up);
        let used = source.strong_count() > 0 || self.rate.packets.load(Ordering::Relaxed) > 0;
        if used || up.kind != self.kind || up.codec != self.codec {
            return false;
        }
        *source = Arc::downgrade(up);
        true
    }
}

#[async_trait]
impl TrackLocal for DownTrack {
    async fn bind(&self, t: &TrackLocalContext) -> Result<RTCRtpCodecParameters, webrtc::Error> {
        let codec = t
            .codec_parameters()
            .iter()
            .find(|c| {
                c.capability
                    .mime_type
                    .eq_ignore_ascii_case(self.codec.mime_type())
            })
            .cloned()
            .ok_or(webrtc::Error::ErrUnsupportedCodec)?;
        self.binding.store(Some(Arc::new(Binding {
            ssrc: t.ssrc(),
            payload_type: codec.payload_type,
            writer: t.write_stream(),
        })));
        Ok(codec)
    }

    async fn unbind(&self, _t: &TrackLocalContext) -> Result<(), webrtc::Error> {
        self.binding.store(None);
        Ok(())
    }

    fn id(&self) -> &str {
        &self.track_id
    }

    fn rid(&self) -> Option<&str> {
        None
    }

    fn stream_id(&self) -> &str {
        &self.stream_label
    }

    fn kind(&self) -> RTPCodecType {
        rtp_codec_type(self.kind)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The header rewrite of one down track: the publisher's sequence numbers
/// through the seqno map plus a random per-subscriber offset, its timestamps
/// plus another, and the subscriber's SSRC and payload type. Pure, so the
/// per-packet cost can be benchmarked on its own.
#[derive(Debug, Clone)]
pub struct Rewriter {
    map: PacketMap,
    seq_offset: u16,
    ts_offset: u32,
}

impl Rewriter {
    pub fn new(seq_offset: u16, ts_offset: u32) -> Self {
        Rewriter {
            map: PacketMap::default(),
            seq_offset,
            ts_offset,
        }
    }

    /// The packet as this subscriber gets it, or `None` if it falls in a
    /// range the map dropped.
    pub fn rewrite(&mut self, p: CachedPacket, payload_type: u8, ssrc: u32) -> Option<Packet> {
        let (seq, _) = self.map.map(p.seq, 0)?;
        Some(Packet {
            header: Header {
                version: 2,
                marker: p.marker,
                payload_type,
                sequence_number: seq.wrapping_add(self.seq_offset),
                timestamp: p.timestamp.wrapping_add(self.ts_offset),
                ssrc,
                ..Default::default()
            },
            // Shared with the cache and the other subscribers: not copied.
            payload: p.payload,
        })
    }

    /// The publisher's sequence number of a packet this subscriber NACKs.
    pub fn original_seq(&self, seq: u16) -> Option<u16> {
        self.map
            .reverse(seq.wrapping_sub(self.seq_offset))
            .map(|(seq, _)| seq)
    }

    /// This subscriber's RTP time for the publisher's `timestamp`.
    pub fn timestamp(&self, timestamp: u32) -> u32 {
        timestamp.wrapping_add(self.ts_offset)
    }
}

/// What is sent on a down track, shared by the up track's reader (which sends on our own
/// path inline) and the track's writer task (webrtc-rs's path, sender reports): the
/// seqno map, the counters for the SR and our SRTP sender.
pub(super) struct Outgoing {
    rewriter: Rewriter,
    rate: RateEstimator,
    packets: u32,
    octets: u32,
    retransmitted: u64,
    /// The last packet sent: its (publisher) timestamp and when.
    last: Option<(u32, Instant)>,
    /// Our own send path (see `sendpath`), once the connection has a route.
    sender: Option<Sender>,
}

impl Outgoing {
    pub(super) fn new() -> Self {
        Outgoing {
            rewriter: Rewriter::new(rand::random(), rand::random()),
            rate: RateEstimator::new(Duration::from_secs(1)),
            packets: 0,
            octets: 0,
            retransmitted: 0,
            last: None,
            sender: None,
        }
    }

    fn count(&mut self, len: usize, timestamp: u32, retransmit: bool, now: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(len as u32);
        self.rate.accumulate(len, now);
        if retransmit {
            self.retransmitted += 1;
        } else if self.last.is_none_or(|(ts, _)| timestamp != ts) {
            self.last = Some((timestamp, now));
        }
    }
}

impl DownTrack {
    /// Sends a packet on our own path, if the connection has one (see `sendpath`): the
    /// up track's reader calls this for every subscriber in turn, without a task hand-off.
    /// Returns `false` when there is no route, and the packet must go to the writer.
    pub(super) fn send_direct(&self, p: &CachedPacket, retransmit: bool) -> bool {
        let route = self.route.load();
        let Some(route) = route.as_deref() else {
            return false;
        };
        let binding = self.binding.load();
        let Some(binding) = binding.as_deref() else {
            return true;
        };
        let mut out = lock(&self.outgoing);
        let ready = match &mut out.sender {
            Some(sender) if sender.dest() == route.dest => Ok(()),
            Some(sender) => sender.update(route),
            None => Sender::new(route.clone()).map(|s| out.sender = Some(s)),
        };
        if let Err(error) = ready {
            tracing::debug!(track = %self.track_id, "no SRTP context: {error}");
            return true;
        }
        let (len, timestamp) = (p.payload.len(), p.timestamp);
        let Some(packet) = out
            .rewriter
            .rewrite(p.clone(), binding.payload_type, binding.ssrc)
        else {
            return true;
        };
        let Some(sender) = &mut out.sender else {
            return true;
        };
        match sender.send(&packet.header, &packet.payload) {
            Ok(()) => out.count(len, timestamp, retransmit, Instant::now()),
            Err(SendError::WouldBlock) => self.rate.count_drop(),
            Err(SendError::Failed(error)) => {
                tracing::trace!(track = %self.track_id, "send failed: {error}");
            }
        }
        true
    }
}

/// The writer task of a down track: packets webrtc-rs sends (before or without our own
/// path), NACK translation, SR.
pub(super) struct Writer {
    track: Arc<DownTrack>,
    pc: Arc<RTCPeerConnection>,
    clock: NtpClock,
    notify: EventSink,
    /// NACKed packets counted at the last slow-link check, and when.
    nacks_checked: (u64, Instant),
    slow_link: SlowLink,
}

impl Writer {
    pub(super) fn new(
        track: Arc<DownTrack>,
        pc: Arc<RTCPeerConnection>,
        clock: NtpClock,
        notify: EventSink,
    ) -> Self {
        Writer {
            track,
            pc,
            clock,
            notify,
            nacks_checked: (0, Instant::now()),
            slow_link: SlowLink::default(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut queue: mpsc::Receiver<DownItem>,
        mut ctl: mpsc::UnboundedReceiver<DownCtl>,
        cancel: CancellationToken,
    ) {
        let mut sr = tokio::time::interval(SR_INTERVAL);
        sr.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                Some(msg) = ctl.recv() => match msg {
                    DownCtl::Nack(seqs) => self.on_nack(seqs),
                },
                item = queue.recv() => match item {
                    Some(DownItem::Forward(p)) => self.write(p, false).await,
                    Some(DownItem::Retransmit(p)) => self.write(p, true).await,
                    None => return,
                },
                _ = sr.tick() => self.send_sr().await,
            }
        }
    }

    fn on_nack(&mut self, seqs: Vec<u16>) {
        let up_seqs: Vec<u16> = {
            let out = lock(&self.track.outgoing);
            seqs.into_iter()
                .filter_map(|s| out.rewriter.original_seq(s))
                .collect()
        };
        if !up_seqs.is_empty() {
            self.track.send_up(UpCtl::Nack(self.track.clone(), up_seqs));
        }
    }

    async fn write(&mut self, p: CachedPacket, retransmit: bool) {
        if self.track.send_direct(&p, retransmit) {
            return;
        }
        let Some(binding) = self.track.binding.load_full() else {
            return;
        };
        let (len, timestamp) = (p.payload.len(), p.timestamp);
        let packet = {
            let mut out = lock(&self.track.outgoing);
            out.rewriter.rewrite(p, binding.payload_type, binding.ssrc)
        };
        let Some(packet) = packet else {
            return;
        };
        if binding.writer.write_rtp(&packet).await.is_err() {
            return;
        }
        lock(&self.track.outgoing).count(len, timestamp, retransmit, Instant::now());
    }

    /// Reports a slow link when the subscriber NACKed many packets in the last second.
    fn check_slow_link(&mut self, now: Instant) {
        let (checked, at) = self.nacks_checked;
        if now.saturating_duration_since(at) < Duration::from_secs(1) {
            return;
        }
        let nacks = self.track.rate.nacks.load(Ordering::Relaxed);
        self.nacks_checked = (nacks, now);
        let lost = u32::try_from(nacks.saturating_sub(checked)).unwrap_or(u32::MAX);
        if self.slow_link.report(lost, now) {
            (self.notify)(MediaEvent::SlowLink {
                kind: self.track.kind,
                uplink: false,
                lost,
            });
        }
    }

    /// A sender report, with the RTP time extrapolated from the
    /// publisher's SR (or our last packet), so subscribers can compute RTT
    /// and synchronise audio and video.
    async fn send_sr(&mut self) {
        let now = Instant::now();
        self.check_slow_link(now);
        let Some(binding) = self.track.binding.load_full() else {
            return;
        };
        let (packets, octets, rtp_time) = {
            let mut out = lock(&self.track.outgoing);
            let rate = &self.track.rate;
            rate.bitrate
                .store(out.rate.estimate(now).0, Ordering::Relaxed);
            rate.packets
                .store(u64::from(out.packets), Ordering::Relaxed);
            rate.retransmitted
                .store(out.retransmitted, Ordering::Relaxed);
            let Some(last) = out.last else {
                return;
            };
            let clock_rate = f64::from(self.track.codec.clock_rate());
            let sender = self.track.source().and_then(|u| u.sender_info());
            let (base_rtp, base_at) = match sender {
                Some(sr) => (sr.rtp, sr.at),
                None => last,
            };
            let elapsed = now.saturating_duration_since(base_at).as_secs_f64();
            let rtp_time = out
                .rewriter
                .timestamp(base_rtp.wrapping_add((elapsed * clock_rate) as u32));
            (out.packets, out.octets, rtp_time)
        };
        let sr = SenderReport {
            ssrc: binding.ssrc,
            ntp_time: self.clock.ntp(now),
            rtp_time,
            packet_count: packets,
            octet_count: octets,
            reports: vec![],
            profile_extensions: Bytes::new(),
        };
        let sdes = SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: binding.ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: Bytes::from(self.track.stream_label.clone()),
                }],
            }],
        };
        let _ = self.pc.write_rtcp(&[Box::new(sr), Box::new(sdes)]).await;
    }
}

/// Reads a subscriber's RTCP for one track.
pub(super) async fn read_rtcp(
    track: Arc<DownTrack>,
    sender: Arc<RTCRtpSender>,
    cancel: CancellationToken,
    clock: NtpClock,
) {
    let mut loss = LossEstimator::default();
    let mut last_fir: Option<u8> = None;
    loop {
        let packets = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sender.read_rtcp() => match r {
                Ok((packets, _)) => packets,
                Err(_) => return,
            },
        };
        let now = Instant::now();
        let ssrc = track.binding.load().as_ref().map(|b| b.ssrc);
        let rate = &track.rate;
        for p in packets {
            let p = p.as_any();
            if let Some(nack) = p.downcast_ref::<TransportLayerNack>() {
                let seqs: Vec<u16> = nack.nacks.iter().flat_map(|n| n.packet_list()).collect();
                rate.nacks.fetch_add(seqs.len() as u64, Ordering::Relaxed);
                let _ = track.ctl.send(DownCtl::Nack(seqs));
            } else if p.downcast_ref::<PictureLossIndication>().is_some() {
                rate.plis.fetch_add(1, Ordering::Relaxed);
                track.send_up(UpCtl::Keyframe);
            } else if let Some(fir) = p.downcast_ref::<FullIntraRequest>() {
                for e in &fir.fir {
                    // A repeated sequence number is a retransmission.
                    if Some(e.ssrc) == ssrc && last_fir != Some(e.sequence_number) {
                        last_fir = Some(e.sequence_number);
                        rate.plis.fetch_add(1, Ordering::Relaxed);
                        track.send_up(UpCtl::Keyframe);
                    }
                }
            } else if let Some(remb) = p.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                rate.remb
                    .store(remb.bitrate.max(0.0) as u64, Ordering::Relaxed);
                rate.remb_at_ms.store(rate.stamp(now), Ordering::Relaxed);
            } else if let Some(rr) = p.downcast_ref::<ReceiverReport>() {
                for block in rr.reports.iter().filter(|b| Some(b.ssrc) == ssrc) {
                    on_report(&track, block, &mut loss, &clock, now);
                }
            } else if let Some(sr) = p.downcast_ref::<SenderReport>() {
                for block in sr.reports.iter().filter(|b| Some(b.ssrc) == ssrc) {
                    on_report(&track, block, &mut loss, &clock, now);
                }
            }
        }
    }
}

fn on_report(
    track: &DownTrack,
    block: &ReceptionReport,
    loss: &mut LossEstimator,
    clock: &NtpClock,
    now: Instant,
) {
    let rate = &track.rate;
    loss.on_report(
        block.fraction_lost,
        rate.bitrate.load(Ordering::Relaxed),
        now,
    );
    rate.estimate.store(loss.rate(now), Ordering::Relaxed);
    rate.estimate_at_ms
        .store(rate.stamp(now), Ordering::Relaxed);
    rate.fraction_lost
        .store(u32::from(block.fraction_lost), Ordering::Relaxed);
    let jitter_us = u64::from(block.jitter) * 1_000_000 / u64::from(track.codec.clock_rate());
    rate.jitter_us.store(jitter_us, Ordering::Relaxed);
    if let Some(rtt) = rtt_from_report(clock.ntp(now), block.last_sender_report, block.delay) {
        let new = rtt.as_micros() as u64;
        let old = rate.rtt_us.load(Ordering::Relaxed);
        // Smoothed as Galène does: (3 old + new) / 4.
        let smoothed = if old == 0 {
            new.max(1)
        } else {
            (3 * old + new) / 4
        };
        rate.rtt_us.store(smoothed.max(1), Ordering::Relaxed);
    }
}
