//! Client-side WebRTC peers, for tests and the load generator.
//!
//! A [`Publisher`] sends synthetic VP8 (keyframes every few seconds,
//! several packets per frame, marker bits) and Opus-sized audio at 50
//! packets/s, and answers NACK from its send buffer and PLI/FIR with a
//! keyframe, like a browser. A [`Subscriber`] records what it receives per
//! track, sends NACKs (webrtc-rs's generator), PLIs and REMBs on demand.
//! Each payload ends with a [`Probe`] (track index, frame, send time) so
//! receivers can measure loss and delay end to end.
//!
//! Both can lose packets on purpose through a [`DropFilter`] applied by an
//! interceptor placed at the network side of the chain ([`NetSim`]): a
//! publisher drops the first transmission of chosen outgoing packets, a
//! subscriber drops chosen incoming packets before its NACK generator sees
//! them. Retransmissions pass.
//!
//! This is a client: it speaks SDP strings and candidate JSON only, and
//! does not use `crate::media`.

pub mod galene;
mod histogram;
mod netsim;
mod probe;
mod publisher;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::interceptor::nack::generator::Generator;
use webrtc::interceptor::registry::Registry;
use webrtc::interceptor::report::receiver::ReceiverReport;
use webrtc::interceptor::report::sender::SenderReport;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};

pub use histogram::Histogram;
pub use netsim::{DropFilter, DroppedPacket, NetSim, PacketInfo, RtcpLog};
pub use probe::{Probe, now_micros};
pub use publisher::{AudioConfig, Publisher, PublisherConfig, PublisherStats, VideoConfig};
pub use subscriber::{RecvTrackStats, Subscriber, SubscriberConfig, SubscriberStats};

/// Audio or video, as this client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("webrtc: {0}")]
    WebRtc(String),
    #[error("invalid candidate: {0}")]
    Candidate(String),
    #[error("no video track received yet")]
    NoVideoTrack,
}

impl From<webrtc::Error> for PeerError {
    fn from(e: webrtc::Error) -> Self {
        PeerError::WebRtc(e.to_string())
    }
}

pub(crate) const VP8_PT: u8 = 96;
pub(crate) const OPUS_PT: u8 = 111;

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

pub(crate) fn vp8_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            feedback("goog-remb", ""),
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ],
    }
}

pub(crate) fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Which side of the media a peer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Publisher,
    Subscriber,
    SubscriberWithoutNack,
}

/// A webrtc-rs API for one peer: VP8 and Opus, our loss interceptor first
/// (nearest the network), then what a browser would run.
fn build_api(netsim: &Arc<NetSim>, role: Role, loopback_only: bool) -> Result<API, PeerError> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            capability: vp8_capability(),
            payload_type: VP8_PT,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            capability: opus_capability(),
            payload_type: OPUS_PT,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    // Browsers send the MID extension: the server must strip it.
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: webrtc::sdp::extmap::SDES_MID_URI.to_owned(),
            },
            kind,
            None,
        )?;
    }
    let mut registry = Registry::new();
    registry.add(Box::new(netsim::Builder(netsim.clone())));
    match role {
        Role::Publisher => registry.add(Box::new(SenderReport::builder())),
        Role::Subscriber => {
            registry.add(Box::new(
                Generator::builder().with_interval(Duration::from_millis(50)),
            ));
            registry.add(Box::new(ReceiverReport::builder()));
        }
        Role::SubscriberWithoutNack => registry.add(Box::new(ReceiverReport::builder())),
    }
    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    if loopback_only {
        settings.set_interface_filter(Box::new(|name: &str| name == "lo"));
    }
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // Dropped packets were already seen by SRTP: without this, their
    // retransmissions would be rejected as replays.
    settings.disable_srtp_replay_protection(true);
    Ok(APIBuilder::new()
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build())
}

/// Wire a PeerConnection's candidates into a channel and its state into a
/// watch.
fn wire_pc(
    pc: &Arc<RTCPeerConnection>,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    tokio::sync::watch::Receiver<RTCPeerConnectionState>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    pc.on_ice_candidate(Box::new(move |c: Option<RTCIceCandidate>| {
        if let Some(v) = c
            .and_then(|c| c.to_json().ok())
            .and_then(|init| serde_json::to_value(init).ok())
        {
            let _ = tx.send(v);
        }
        Box::pin(async {})
    }));
    let (state_tx, state_rx) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    pc.on_peer_connection_state_change(Box::new(move |s| {
        let _ = state_tx.send(s);
        Box::pin(async {})
    }));
    (rx, state_rx)
}

/// Remote candidates, queued until the remote description is set (as
/// browsers' clients do).
#[derive(Default)]
struct Candidates(tokio::sync::Mutex<Option<Vec<RTCIceCandidateInit>>>);

impl Candidates {
    fn new() -> Self {
        Candidates(tokio::sync::Mutex::new(Some(vec![])))
    }

    async fn add(
        &self,
        pc: &RTCPeerConnection,
        candidate: serde_json::Value,
    ) -> Result<(), PeerError> {
        let init: RTCIceCandidateInit =
            serde_json::from_value(candidate).map_err(|e| PeerError::Candidate(e.to_string()))?;
        if init.candidate.is_empty() {
            return Ok(());
        }
        if let Some(queue) = self.0.lock().await.as_mut() {
            queue.push(init);
            return Ok(());
        }
        pc.add_ice_candidate(init)
            .await
            .map_err(|e| PeerError::Candidate(e.to_string()))
    }

    /// The remote description is set: apply what was queued.
    async fn flush(&self, pc: &RTCPeerConnection) -> Result<(), PeerError> {
        let queued = self.0.lock().await.take().unwrap_or_default();
        for c in queued {
            pc.add_ice_candidate(c)
                .await
                .map_err(|e| PeerError::Candidate(e.to_string()))?;
        }
        Ok(())
    }
}

/// Wait until the connection is up, or fails, or `timeout` passes.
async fn wait_connected(
    mut state: tokio::sync::watch::Receiver<RTCPeerConnectionState>,
    timeout: Duration,
) -> bool {
    let r = tokio::time::timeout(timeout, async {
        state
            .wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            })
            .await
            .map(|s| *s == RTCPeerConnectionState::Connected)
    })
    .await;
    matches!(r, Ok(Ok(true)))
}

/// Locks a std mutex, ignoring poisoning.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
