//! The reader task of an up track: one per m-line, the only owner of the
//! state touched per packet (packet cache, receive statistics, keyframe
//! limiter, NACK aggregator, the list of down tracks it feeds).

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use webrtc::interceptor::Attributes;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::reception_report::ReceptionReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::track::track_remote::TrackRemote;

use super::codecs::{self, MediaKind};
use super::jitter::Jitter;
use super::packetcache::{
    Arrival, CachedPacket, MAX_CAPACITY, MIN_AUDIO_CAPACITY, MIN_VIDEO_CAPACITY, PacketCache,
    seq_diff,
};
use super::rate::RateEstimator;
use super::rtcp::{
    KEYFRAME_INTERVAL, KeyframeLimiter, NACK_AGGREGATION_DELAY, NackAggregator, ReceiverStats,
    SlowLink, ntp_middle,
};
use super::{EventSink, MediaEvent, Shared, UpTrackStats, lock};

use super::downtrack::{DownItem, DownTrack};
use super::up::{UpCtl, UpTrack};

type RtcpPacket = Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>;

/// A down track as the reader sees it.
struct DownEntry {
    track: Arc<DownTrack>,
    overflow: Overflow,
}

impl DownEntry {
    /// Queue a packet; false if the down track is gone.
    fn forward(&mut self, p: &CachedPacket, video: bool) -> bool {
        // On our own send path, at once; otherwise through the track's writer task.
        if self.track.send_direct(p, false) {
            return true;
        }
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
pub(super) struct Reader {
    track: Arc<UpTrack>,
    shared: Arc<Shared>,
    notify: EventSink,
    /// Whether "receiving" was reported, and the packet count at the last tick: a tick
    /// (a second) without packets reports the publisher as not sending this track.
    receiving: bool,
    packets_at_tick: u64,
    slow_link: SlowLink,
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
    /// Forwarding is held (the publisher turned this track off).
    held: bool,
    /// Forwarding resumed after a hold: video waits for a keyframe, so subscribers do
    /// not get frames they cannot decode.
    awaiting_keyframe: bool,
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
    pub(super) fn new(
        track: Arc<UpTrack>,
        payload_type: u8,
        media_ssrc: u32,
        rtcp_ssrc: u32,
        shared: Arc<Shared>,
        notify: EventSink,
    ) -> Self {
        let video = track.kind == MediaKind::Video;
        shared.cache_created();
        Reader {
            notify,
            receiving: false,
            packets_at_tick: 0,
            slow_link: SlowLink::default(),
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
            held: track.held.load(Ordering::Relaxed),
            awaiting_keyframe: false,
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

    pub(super) async fn run(
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
        if !self.receiving {
            self.receiving = true;
            (self.notify)(MediaEvent::Receiving {
                kind: self.track.kind,
                receiving: true,
            });
        }
        if keyframe {
            self.keyframe_count += 1;
            self.keyframes.keyframe_received();
        }
        if self.held || (self.awaiting_keyframe && !keyframe) {
            return;
        }
        self.awaiting_keyframe = false;
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
                if self.video && !self.held && !self.awaiting_keyframe {
                    match self.cache.keyframe_replay() {
                        Some(packets) => {
                            for p in packets {
                                if !track.send_direct(&p, false) {
                                    let _ = track.queue.try_send(DownItem::Forward(p));
                                }
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
                            if !track.send_direct(p, true) {
                                let _ = track.queue.try_send(DownItem::Retransmit(p.clone()));
                            }
                        }
                        None => self.nacks.add(seq, now),
                    }
                }
            }
            UpCtl::Keyframe => self.request_keyframe(now),
            UpCtl::Hold(held) if held != self.held => {
                self.held = held;
                if !held && self.video {
                    self.awaiting_keyframe = true;
                    self.request_keyframe(now);
                }
            }
            UpCtl::Hold(_) => {}
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
        let silent = self.packets == self.packets_at_tick;
        self.packets_at_tick = self.packets;
        if self.receiving && silent {
            self.receiving = false;
            (self.notify)(MediaEvent::Receiving {
                kind: self.track.kind,
                receiving: false,
            });
        }
        if self.packets > 0 {
            let r = self.receiver_stats.report();
            self.last_loss = f64::from(r.fraction_lost) / 256.0;
            let lost = r.total_lost.saturating_sub(self.total_lost);
            self.total_lost = r.total_lost;
            if self.slow_link.report(lost, now) {
                (self.notify)(MediaEvent::SlowLink {
                    kind: self.track.kind,
                    uplink: true,
                    lost,
                });
            }
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
