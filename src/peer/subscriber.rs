//! A subscriber that records what it receives.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::track::track_remote::TrackRemote;

use super::histogram::Histogram;
use super::netsim::{DropFilter, DroppedPacket, NetSim, RtcpLog};
use super::probe::{Probe, now_micros};
use super::{Candidates, Kind, PeerError, Role, build_api, lock, wait_connected, wire_pc};

#[derive(Clone, Default)]
pub struct SubscriberConfig {
    /// Lose the first copy of the incoming packets it selects.
    pub drop_incoming: Option<DropFilter>,
    /// Do not NACK lost packets (only the server's own NACKs can repair them).
    pub no_nack: bool,
    /// Gather candidates on every interface, not only loopback.
    pub all_interfaces: bool,
}

/// What arrived on one track.
#[derive(Debug, Clone, PartialEq)]
pub struct RecvTrackStats {
    pub kind: Kind,
    pub ssrc: u32,
    pub payload_type: u8,
    /// Packets delivered, duplicates included.
    pub packets: u64,
    pub duplicates: u64,
    /// Extended sequence numbers received.
    pub seqs: BTreeSet<i64>,
    /// Probe indices received (the publisher's packet numbers).
    pub probes: BTreeSet<u32>,
    pub keyframes: u32,
    /// Packets that carried RTP header extensions.
    pub with_extensions: u64,
    pub max_delay_micros: u64,
    /// End-to-end delays (publisher's send time to arrival), in microseconds.
    pub delays: Histogram,
    /// When the first packet and the first keyframe start arrived.
    pub first_packet: Option<Instant>,
    pub first_keyframe: Option<Instant>,
    last_ext: Option<i64>,
}

impl RecvTrackStats {
    fn new(kind: Kind, ssrc: u32, payload_type: u8) -> Self {
        RecvTrackStats {
            kind,
            ssrc,
            payload_type,
            packets: 0,
            duplicates: 0,
            seqs: BTreeSet::new(),
            probes: BTreeSet::new(),
            keyframes: 0,
            with_extensions: 0,
            max_delay_micros: 0,
            delays: Histogram::default(),
            first_packet: None,
            first_keyframe: None,
            last_ext: None,
        }
    }

    fn record(&mut self, packet: &webrtc::rtp::packet::Packet) {
        self.packets += 1;
        let now = Instant::now();
        self.first_packet.get_or_insert(now);
        let seq = packet.header.sequence_number;
        let ext = match self.last_ext {
            None => i64::from(seq),
            Some(last) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
        };
        if self.last_ext.is_none_or(|l| ext > l) {
            self.last_ext = Some(ext);
        }
        if !self.seqs.insert(ext) {
            self.duplicates += 1;
        }
        if packet.header.extension {
            self.with_extensions += 1;
        }
        if let Some(probe) = Probe::parse(&packet.payload) {
            self.probes.insert(probe.index);
            if probe.keyframe_start() {
                self.keyframes += 1;
                self.first_keyframe.get_or_insert(now);
            }
            let delay = now_micros().saturating_sub(probe.sent_micros);
            self.max_delay_micros = self.max_delay_micros.max(delay);
            self.delays.record(delay);
        }
    }

    /// Sequence numbers between the first and the last received that did
    /// not arrive.
    pub fn missing_seqs(&self) -> Vec<i64> {
        let (Some(&first), Some(&last)) = (self.seqs.first(), self.seqs.last()) else {
            return vec![];
        };
        (first..=last).filter(|s| !self.seqs.contains(s)).collect()
    }

    /// Whether probes `0..count` all arrived.
    pub fn has_probes(&self, count: u32) -> bool {
        self.probes.range(..count).count() == count as usize
    }
}

#[derive(Debug, Clone, Default)]
pub struct SubscriberStats {
    pub tracks: Vec<RecvTrackStats>,
    /// RTCP we sent (NACKs from the generator, PLIs, REMBs, RRs).
    pub rtcp_sent: RtcpLog,
    /// Sender reports received.
    pub sender_reports: u32,
    /// Packets whose first copy was dropped on purpose.
    pub dropped: Vec<DroppedPacket>,
}

impl SubscriberStats {
    pub fn track(&self, kind: Kind) -> Option<&RecvTrackStats> {
        self.tracks.iter().find(|t| t.kind == kind)
    }
}

struct Shared {
    tracks: Mutex<Vec<RecvTrackStats>>,
    sender_reports: AtomicU32,
    video_ssrc: AtomicU32,
    remb: AtomicU64,
}

pub struct Subscriber {
    pc: Arc<RTCPeerConnection>,
    netsim: Arc<NetSim>,
    shared: Arc<Shared>,
    candidates: Mutex<Option<mpsc::UnboundedReceiver<serde_json::Value>>>,
    remote_candidates: Candidates,
    state: watch::Receiver<RTCPeerConnectionState>,
    rtcp_ssrc: u32,
    cancel: CancellationToken,
}

impl Subscriber {
    pub async fn new(config: SubscriberConfig) -> Result<Subscriber, PeerError> {
        let netsim = NetSim::new(config.drop_incoming.clone(), None);
        let role = if config.no_nack {
            Role::SubscriberWithoutNack
        } else {
            Role::Subscriber
        };
        let api = build_api(&netsim, role, !config.all_interfaces)?;
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        let (candidates, state) = wire_pc(&pc);
        let shared = Arc::new(Shared {
            tracks: Mutex::new(vec![]),
            sender_reports: AtomicU32::new(0),
            video_ssrc: AtomicU32::new(0),
            remb: AtomicU64::new(0),
        });
        let cancel = CancellationToken::new();
        let on_track_shared = shared.clone();
        let on_track_cancel = cancel.clone();
        pc.on_track(Box::new(move |track, receiver, _transceiver| {
            tokio::spawn(read_track(
                on_track_shared.clone(),
                track,
                on_track_cancel.clone(),
            ));
            // Reading RTCP lets the report interceptor see our SRs (LSR).
            tokio::spawn(read_rtcp(
                on_track_shared.clone(),
                receiver,
                on_track_cancel.clone(),
            ));
            Box::pin(async {})
        }));
        let rtcp_ssrc = rand::random();
        tokio::spawn(send_rembs(
            pc.clone(),
            shared.clone(),
            rtcp_ssrc,
            cancel.clone(),
        ));
        Ok(Subscriber {
            pc,
            netsim,
            shared,
            candidates: Mutex::new(Some(candidates)),
            remote_candidates: Candidates::new(),
            state,
            rtcp_ssrc,
            cancel,
        })
    }

    /// Answer the server's offer.
    pub async fn answer(&self, offer: &str) -> Result<String, PeerError> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
            .await?;
        self.remote_candidates.flush(&self.pc).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        Ok(self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default())
    }

    pub async fn add_remote_candidate(
        &self,
        candidate: serde_json::Value,
    ) -> Result<(), PeerError> {
        self.remote_candidates.add(&self.pc, candidate).await
    }

    pub fn take_candidates(&self) -> Option<mpsc::UnboundedReceiver<serde_json::Value>> {
        lock(&self.candidates).take()
    }

    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        wait_connected(self.state.clone(), timeout).await
    }

    /// Send a PLI for the video track.
    pub async fn send_pli(&self) -> Result<(), PeerError> {
        let media_ssrc = self.shared.video_ssrc.load(Ordering::Relaxed);
        if media_ssrc == 0 {
            return Err(PeerError::NoVideoTrack);
        }
        self.pc
            .write_rtcp(&[Box::new(PictureLossIndication {
                sender_ssrc: self.rtcp_ssrc,
                media_ssrc,
            })])
            .await?;
        Ok(())
    }

    /// Send this REMB value four times a second from now on (`None` stops).
    pub fn set_remb(&self, bitrate: Option<u64>) {
        self.shared
            .remb
            .store(bitrate.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn stats(&self) -> SubscriberStats {
        SubscriberStats {
            tracks: lock(&self.shared.tracks).clone(),
            rtcp_sent: self.netsim.rtcp_sent(),
            sender_reports: self.shared.sender_reports.load(Ordering::Relaxed),
            dropped: self.netsim.dropped_incoming(),
        }
    }

    pub async fn close(&self) {
        self.cancel.cancel();
        let _ = self.pc.close().await;
    }
}

async fn read_track(shared: Arc<Shared>, track: Arc<TrackRemote>, cancel: CancellationToken) {
    let kind = match track.kind() {
        RTPCodecType::Audio => Kind::Audio,
        _ => Kind::Video,
    };
    let index = {
        let mut tracks = lock(&shared.tracks);
        tracks.push(RecvTrackStats::new(
            kind,
            track.ssrc(),
            track.payload_type(),
        ));
        tracks.len() - 1
    };
    if kind == Kind::Video {
        shared.video_ssrc.store(track.ssrc(), Ordering::Relaxed);
    }
    loop {
        let packet = tokio::select! {
            _ = cancel.cancelled() => return,
            r = track.read_rtp() => match r {
                Ok((packet, _)) => packet,
                Err(_) => return,
            },
        };
        lock(&shared.tracks)[index].record(&packet);
    }
}

async fn read_rtcp(shared: Arc<Shared>, receiver: Arc<RTCRtpReceiver>, cancel: CancellationToken) {
    loop {
        let packets = tokio::select! {
            _ = cancel.cancelled() => return,
            r = receiver.read_rtcp() => match r {
                Ok((packets, _)) => packets,
                Err(_) => return,
            },
        };
        let srs = packets
            .iter()
            .filter(|p| p.as_any().downcast_ref::<SenderReport>().is_some())
            .count();
        shared
            .sender_reports
            .fetch_add(srs as u32, Ordering::Relaxed);
    }
}

async fn send_rembs(
    pc: Arc<RTCPeerConnection>,
    shared: Arc<Shared>,
    sender_ssrc: u32,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (bitrate, ssrc) = (
            shared.remb.load(Ordering::Relaxed),
            shared.video_ssrc.load(Ordering::Relaxed),
        );
        if bitrate == 0 || ssrc == 0 {
            continue;
        }
        let remb = ReceiverEstimatedMaximumBitrate {
            sender_ssrc,
            bitrate: bitrate as f32,
            ssrcs: vec![ssrc],
        };
        let _ = pc.write_rtcp(&[Box::new(remb)]).await;
    }
}
