//! A synthetic publisher: VP8 video and Opus-sized audio, answering NACK
//! and PLI like a browser.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

use super::netsim::{DropFilter, DroppedPacket, NetSim};
use super::probe::{Probe, now_micros};
use super::{
    Candidates, OPUS_PT, PeerError, Role, VP8_PT, build_api, lock, opus_capability, vp8_capability,
    wait_connected, wire_pc,
};

/// The synthetic video stream.
#[derive(Debug, Clone)]
pub struct VideoConfig {
    pub fps: u32,
    /// A keyframe every this many frames; 0: only the first one and those
    /// asked for by PLI/FIR.
    pub keyframe_interval: u32,
    pub keyframe_packets: u32,
    pub delta_packets: u32,
    /// Payload bytes per packet.
    pub packet_size: usize,
    /// Stop after this many frames.
    pub frames: Option<u32>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            fps: 30,
            keyframe_interval: 90,
            keyframe_packets: 8,
            delta_packets: 3,
            packet_size: 900,
            frames: None,
        }
    }
}

/// The synthetic audio stream: 20 ms packets.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    pub packet_size: usize,
    /// Stop after this many packets.
    pub packets: Option<u32>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            packet_size: 120,
            packets: None,
        }
    }
}

#[derive(Clone, Default)]
pub struct PublisherConfig {
    pub video: Option<VideoConfig>,
    pub audio: Option<AudioConfig>,
    /// Lose the first transmission of the outgoing packets it selects.
    pub drop_outgoing: Option<DropFilter>,
    /// Gather candidates on every interface, not only loopback.
    pub all_interfaces: bool,
}

/// What the publisher sent and what the server asked of it.
#[derive(Debug, Clone, Default)]
pub struct PublisherStats {
    pub video_ssrc: Option<u32>,
    pub audio_ssrc: Option<u32>,
    /// Sequence number of the first video packet: packet (probe) index `i`
    /// went out with seqno `first_video_seq + i`.
    pub first_video_seq: Option<u16>,
    pub video_packets: u32,
    pub audio_packets: u32,
    pub video_frames: u32,
    pub keyframes: u32,
    /// Every video seqno the server NACKed, with repeats.
    pub nacked: Vec<u16>,
    pub retransmitted: u32,
    pub plis: u32,
    pub firs: u32,
    /// Every REMB value received, in order.
    pub rembs: Vec<u64>,
    /// Receiver reports received, and those echoing one of our SRs.
    pub receiver_reports: u32,
    pub receiver_reports_with_lsr: u32,
    /// Packets whose first transmission was dropped on purpose.
    pub dropped: Vec<DroppedPacket>,
    /// Both streams reached their configured length.
    pub done: bool,
}

struct State {
    stats: PublisherStats,
    /// Recently sent video packets, to answer NACKs.
    sent: VecDeque<Packet>,
}

const SEND_BUFFER: usize = 1024;

struct Shared {
    state: Mutex<State>,
    force_keyframe: AtomicBool,
}

type Track = (Arc<TrackLocalStaticRTP>, Arc<RTCRtpSender>);

pub struct Publisher {
    pc: Arc<RTCPeerConnection>,
    netsim: Arc<NetSim>,
    shared: Arc<Shared>,
    config: PublisherConfig,
    video: Option<Track>,
    audio: Option<Track>,
    candidates: Mutex<Option<mpsc::UnboundedReceiver<serde_json::Value>>>,
    remote_candidates: Candidates,
    state: watch::Receiver<RTCPeerConnectionState>,
    started: AtomicBool,
    cancel: CancellationToken,
}

impl Publisher {
    pub async fn new(config: PublisherConfig) -> Result<Publisher, PeerError> {
        let netsim = NetSim::new(None, config.drop_outgoing.clone());
        let api = build_api(&netsim, Role::Publisher, !config.all_interfaces)?;
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        let (candidates, state) = wire_pc(&pc);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stats: PublisherStats::default(),
                sent: VecDeque::with_capacity(SEND_BUFFER),
            }),
            force_keyframe: AtomicBool::new(false),
        });
        let cancel = CancellationToken::new();
        let audio = match config.audio {
            Some(_) => Some(add_track(&pc, opus_capability(), "audio").await?),
            None => None,
        };
        let video = match config.video {
            Some(_) => Some(add_track(&pc, vp8_capability(), "video").await?),
            None => None,
        };
        for ((track, sender), is_video) in video
            .iter()
            .map(|t| (t, true))
            .chain(audio.iter().map(|t| (t, false)))
        {
            tokio::spawn(read_rtcp(
                shared.clone(),
                track.clone(),
                sender.clone(),
                is_video,
                cancel.clone(),
            ));
        }
        let ssrc = async |t: &Option<Track>| match t {
            Some((_, sender)) => sender
                .get_parameters()
                .await
                .encodings
                .first()
                .map(|e| e.ssrc),
            None => None,
        };
        let (video_ssrc, audio_ssrc) = (ssrc(&video).await, ssrc(&audio).await);
        {
            let mut state = lock(&shared.state);
            state.stats.video_ssrc = video_ssrc;
            state.stats.audio_ssrc = audio_ssrc;
        }
        Ok(Publisher {
            pc,
            netsim,
            shared,
            config,
            video,
            audio,
            candidates: Mutex::new(Some(candidates)),
            remote_candidates: Candidates::new(),
            state,
            started: AtomicBool::new(false),
            cancel,
        })
    }

    /// Our offer (candidates follow through [`take_candidates`](Self::take_candidates)).
    pub async fn offer(&self) -> Result<String, PeerError> {
        self.make_offer(None).await
    }

    /// An offer that restarts ICE: new credentials, and new candidates through the same
    /// channel as the first ones.
    pub async fn restart_offer(&self) -> Result<String, PeerError> {
        let options = RTCOfferOptions {
            ice_restart: true,
            ..Default::default()
        };
        self.make_offer(Some(options)).await
    }

    async fn make_offer(&self, options: Option<RTCOfferOptions>) -> Result<String, PeerError> {
        let offer = self.pc.create_offer(options).await?;
        self.pc.set_local_description(offer).await?;
        Ok(self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default())
    }

    pub async fn set_answer(&self, sdp: &str) -> Result<(), PeerError> {
        let answer = RTCSessionDescription::answer(sdp.to_owned())?;
        self.pc.set_remote_description(answer).await?;
        self.remote_candidates.flush(&self.pc).await
    }

    pub async fn add_remote_candidate(
        &self,
        candidate: serde_json::Value,
    ) -> Result<(), PeerError> {
        self.remote_candidates.add(&self.pc, candidate).await
    }

    /// Our local candidates as `RTCIceCandidateInit` JSON (once).
    pub fn take_candidates(&self) -> Option<mpsc::UnboundedReceiver<serde_json::Value>> {
        lock(&self.candidates).take()
    }

    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        wait_connected(self.state.clone(), timeout).await
    }

    /// Start sending (once the connection is up).
    pub fn start(&self) {
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let sender = Sender {
            shared: self.shared.clone(),
            config: self.config.clone(),
            video: self.video.as_ref().map(|t| t.0.clone()),
            audio: self.audio.as_ref().map(|t| t.0.clone()),
        };
        tokio::spawn(sender.run(self.state.clone(), self.cancel.clone()));
    }

    pub fn stats(&self) -> PublisherStats {
        let mut stats = lock(&self.shared.state).stats.clone();
        stats.dropped = self.netsim.dropped_outgoing();
        stats
    }

    pub async fn close(&self) {
        self.cancel.cancel();
        let _ = self.pc.close().await;
    }
}

async fn add_track(
    pc: &RTCPeerConnection,
    capability: webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability,
    id: &str,
) -> Result<Track, PeerError> {
    let track = Arc::new(TrackLocalStaticRTP::new(
        capability,
        id.to_owned(),
        "cinnabar-peer".to_owned(),
    ));
    let transceiver = pc
        .add_transceiver_from_track(
            track.clone() as Arc<dyn TrackLocal + Send + Sync>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                send_encodings: vec![],
            }),
        )
        .await?;
    Ok((track, transceiver.sender().await))
}

/// Answer the server's RTCP: NACK from the send buffer (video only: audio
/// has no NACK), PLI/FIR with a keyframe; log REMB.
async fn read_rtcp(
    shared: Arc<Shared>,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<RTCRtpSender>,
    video: bool,
    cancel: CancellationToken,
) {
    loop {
        let packets = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sender.read_rtcp() => match r {
                Ok((packets, _)) => packets,
                Err(_) => return,
            },
        };
        let mut resend = vec![];
        {
            let mut state = lock(&shared.state);
            for p in &packets {
                let p = p.as_any();
                if let Some(nack) = p.downcast_ref::<TransportLayerNack>().filter(|_| video) {
                    for seq in nack.nacks.iter().flat_map(|n| n.packet_list()) {
                        state.stats.nacked.push(seq);
                        if let Some(p) = state.sent.iter().find(|p| p.header.sequence_number == seq)
                        {
                            resend.push(p.clone());
                        }
                    }
                } else if p.downcast_ref::<PictureLossIndication>().is_some() {
                    state.stats.plis += 1;
                    shared.force_keyframe.store(true, Ordering::Relaxed);
                } else if p.downcast_ref::<FullIntraRequest>().is_some() {
                    state.stats.firs += 1;
                    shared.force_keyframe.store(true, Ordering::Relaxed);
                } else if let Some(remb) = p.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                    state.stats.rembs.push(remb.bitrate as u64);
                } else if let Some(rr) = p.downcast_ref::<ReceiverReport>() {
                    state.stats.receiver_reports += 1;
                    if rr.reports.iter().any(|r| r.last_sender_report != 0) {
                        state.stats.receiver_reports_with_lsr += 1;
                    }
                }
            }
            state.stats.retransmitted += resend.len() as u32;
        }
        for p in resend {
            let _ = track.write_rtp(&p).await;
        }
    }
}

struct Sender {
    shared: Arc<Shared>,
    config: PublisherConfig,
    video: Option<Arc<TrackLocalStaticRTP>>,
    audio: Option<Arc<TrackLocalStaticRTP>>,
}

struct StreamState {
    seq: u16,
    timestamp: u32,
    index: u32,
    frame: u32,
}

impl StreamState {
    fn new() -> Self {
        StreamState {
            seq: rand::random(),
            timestamp: rand::random(),
            index: 0,
            frame: 0,
        }
    }
}

impl Sender {
    async fn run(
        self,
        mut state: watch::Receiver<RTCPeerConnectionState>,
        cancel: CancellationToken,
    ) {
        // Packets written before DTLS is up would vanish.
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = state.wait_for(|s| *s == RTCPeerConnectionState::Connected) => {
                if r.is_err() {
                    return;
                }
            }
        }
        let video_cfg = self.config.video.clone().filter(|_| self.video.is_some());
        let audio_cfg = self.config.audio.clone().filter(|_| self.audio.is_some());
        let fps = video_cfg.as_ref().map_or(30, |v| v.fps.max(1));
        let mut video_tick = tokio::time::interval(Duration::from_secs(1) / fps);
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        let (mut video_state, mut audio_state) = (StreamState::new(), StreamState::new());
        lock(&self.shared.state).stats.first_video_seq = Some(video_state.seq);
        let mut pid: u16 = rand::random::<u16>() & 0x7FFF;
        let mut video_done = video_cfg.is_none();
        let mut audio_done = audio_cfg.is_none();
        while !(video_done && audio_done) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = video_tick.tick(), if !video_done => {
                    let (Some(cfg), Some(track)) = (&video_cfg, &self.video) else { continue };
                    if cfg.frames.is_some_and(|n| video_state.frame >= n) {
                        video_done = true;
                        continue;
                    }
                    self.send_frame(cfg, track, &mut video_state, pid).await;
                    pid = (pid + 1) & 0x7FFF;
                }
                _ = audio_tick.tick(), if !audio_done => {
                    let (Some(cfg), Some(track)) = (&audio_cfg, &self.audio) else { continue };
                    if cfg.packets.is_some_and(|n| audio_state.frame >= n) {
                        audio_done = true;
                        continue;
                    }
                    self.send_audio(cfg, track, &mut audio_state).await;
                }
            }
        }
        lock(&self.shared.state).stats.done = true;
    }

    async fn send_frame(
        &self,
        cfg: &VideoConfig,
        track: &TrackLocalStaticRTP,
        s: &mut StreamState,
        pid: u16,
    ) {
        let forced = self.shared.force_keyframe.swap(false, Ordering::Relaxed);
        let keyframe = s.frame == 0
            || forced
            || (cfg.keyframe_interval > 0 && s.frame.is_multiple_of(cfg.keyframe_interval));
        let count = if keyframe {
            cfg.keyframe_packets
        } else {
            cfg.delta_packets
        }
        .max(1);
        let sent_micros = now_micros();
        for i in 0..count {
            let first = i == 0;
            let last = i == count - 1;
            let mut payload = Vec::with_capacity(cfg.packet_size.max(40));
            // VP8 payload descriptor: X, S on the first packet, 15-bit PictureID.
            payload.extend_from_slice(&[
                if first { 0x90 } else { 0x80 },
                0x80,
                0x80 | (pid >> 8) as u8,
                pid as u8,
            ]);
            if first {
                if keyframe {
                    // Frame tag (P=0, show_frame), start code, 640x480.
                    payload.extend_from_slice(&[
                        0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
                    ]);
                } else {
                    payload.extend_from_slice(&[0x11, 0x02, 0x00]);
                }
            }
            let fill = cfg.packet_size.saturating_sub(payload.len() + Probe::LEN);
            payload.extend(std::iter::repeat_n(0x55, fill));
            let mut flags = 0;
            if keyframe {
                flags |= Probe::KEYFRAME;
            }
            if first {
                flags |= Probe::FRAME_START;
            }
            if last {
                flags |= Probe::FRAME_END;
            }
            Probe {
                index: s.index,
                frame: s.frame,
                sent_micros,
                flags,
            }
            .append_to(&mut payload);
            let packet = Packet {
                header: Header {
                    version: 2,
                    marker: last,
                    payload_type: VP8_PT,
                    sequence_number: s.seq,
                    timestamp: s.timestamp,
                    ..Default::default()
                },
                payload: Bytes::from(payload),
            };
            {
                let mut state = lock(&self.shared.state);
                if state.sent.len() == SEND_BUFFER {
                    state.sent.pop_front();
                }
                state.sent.push_back(packet.clone());
                state.stats.video_packets += 1;
            }
            let _ = track.write_rtp(&packet).await;
            s.seq = s.seq.wrapping_add(1);
            s.index += 1;
        }
        {
            let mut state = lock(&self.shared.state);
            state.stats.video_frames += 1;
            if keyframe {
                state.stats.keyframes += 1;
            }
        }
        s.frame += 1;
        s.timestamp = s.timestamp.wrapping_add(90000 / cfg.fps.max(1));
    }

    async fn send_audio(
        &self,
        cfg: &AudioConfig,
        track: &TrackLocalStaticRTP,
        s: &mut StreamState,
    ) {
        let mut payload = Vec::with_capacity(cfg.packet_size.max(40));
        payload.push(0xFC); // Opus TOC: 20 ms CELT fullband, one frame
        let fill = cfg.packet_size.saturating_sub(1 + Probe::LEN);
        payload.extend(std::iter::repeat_n(0x33, fill));
        Probe {
            index: s.index,
            frame: s.frame,
            sent_micros: now_micros(),
            flags: Probe::FRAME_START | Probe::FRAME_END,
        }
        .append_to(&mut payload);
        let packet = Packet {
            header: Header {
                version: 2,
                payload_type: OPUS_PT,
                sequence_number: s.seq,
                timestamp: s.timestamp,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        lock(&self.shared.state).stats.audio_packets += 1;
        let _ = track.write_rtp(&packet).await;
        s.seq = s.seq.wrapping_add(1);
        s.index += 1;
        s.frame += 1;
        s.timestamp = s.timestamp.wrapping_add(960);
    }
}
