//! The SFU: receives each publisher's RTP and forwards it to subscribers.
//!
//! This is the only module that imports `webrtc`. It knows nothing of
//! groups, users or signalling formats: it takes SDP strings and candidate
//! JSON, returns SDP strings, and reports through an [`EventSink`].
//!
//! # Model
//!
//! One PeerConnection per published stream ([`UpStream`]) and one per
//! (subscriber, stream) ([`DownStream`]), as in Galène.
//!
//! ```text
//!  publisher ──RTP──▶ UpTrack reader task ──try_send──▶ DownTrack queue ──▶ writer task ──▶ subscriber
//!       ▲              (owns: packet cache,              (bounded; video        (owns: seqno map,
//!       │               loss bitmap, jitter,              overflow drops the     SSRC/PT/ts rewrite,
//!       │               rate, PLI limiter,                rest of the frame)     SR every 500 ms)
//!       │               NACK aggregator,                       ▲
//!       │               its list of down tracks)               │ retransmissions
//!       │                  ▲        ▲                          │
//!       │       NACK (cache│miss),  │ Nack{seqnos} / Keyframe  │
//!       └─ PLI, RR ◀───────┘        └──────────── down RTCP task ◀──RTCP── subscriber
//!          REMB ◀── up RTCP task (min over subscribers' REMB and loss estimates, every 1 s)
//! ```
//!
//! * Each up track has ONE reader task, an actor that owns all the state
//!   touched per packet (cache, statistics, the list of its down tracks).
//!   Everything else talks to it through an unbounded control channel, so
//!   the per-packet path takes no lock of ours.
//! * A down track (`downtrack`) is our own `TrackLocal`. Its writer task maps
//!   sequence numbers (`packetmap`) and rewrites SSRC, payload type and
//!   timestamp per subscriber, so retransmissions and drops concern one
//!   subscriber only. A slow subscriber fills its own bounded queue and
//!   loses packets (to the end of the frame, for video); the others do not
//!   notice.
//! * RTCP is ours: webrtc-rs runs no interceptor. Subscriber NACKs are
//!   answered from the cache, what it lacks is NACKed upstream after 50 ms
//!   (`rtcp::NackAggregator`); holes in the publisher's stream are NACKed
//!   about 20 ms after they appear; PLI and FIR become at most one PLI per
//!   500 ms (`rtcp::KeyframeLimiter`); a new subscriber gets the cached
//!   GOP or a PLI; REMB and loss-based estimates (`rate`) make one REMB
//!   per second; RR upstream every second, SR downstream every 500 ms.
//! * The logic lives in plain structs that take `now` and do no I/O
//!   (`packetcache`, `packetmap`, `rtcp`, `rate`, `jitter`,
//!   `codecs`); the tasks in `reader` and `downtrack` are thin around them.
//!
//! # Events
//!
//! [`MediaEvent::LocalCandidate`] may fire before `publish`, `subscribe` or
//! `restart_ice` has returned: the sink should queue candidates behind the
//! SDP it is about to send (pushing both into one client queue does this).
//! `Connected` fires when the PeerConnection connects (for a down stream, it
//! is also when forwarding starts), `Failed` when ICE fails (the caller may
//! restart ICE or close), and `Closed` exactly once, whatever closed it.
//! `Data` carries a message from one of a publisher's data channels (the
//! media layer does not know who may receive it: [`UpStream::send_data`]
//! writes what the caller relays); `Receiving` and `SlowLink` report when a
//! track's media starts or stops and when many packets are lost.
//!
//! # Subscriber connections
//!
//! [`Layout::Selected`] offers the tracks the publisher has (a new
//! subscription is made when they change); [`Layout::Slots`] offers one
//! m-line per kind at once and fills it when the publisher's track of that
//! kind appears ([`DownStream::refresh`] and a new offer), for clients that
//! keep one connection per publisher. A down stream can be paused (a block).
//!
//! # Limits
//!
//! Simulcast is refused at negotiation (the `a=simulcast` and `a=rid` lines
//! are removed from offers, so browsers send one layer); IPv4 only; SVC
//! layers are forwarded, not selected.

mod codecs;
mod down;
mod downtrack;
mod jitter;
mod packetcache;
mod packetmap;
mod rate;
mod reader;
mod rtcp;
mod sendpath;
mod stats;
mod up;

/// The pure per-packet parts of the media path, public only so the
/// criterion benchmarks in `benches/` can time them; not an API.
#[doc(hidden)]
pub mod internals {
    pub use super::codecs::{Codec, is_keyframe};
    pub use super::downtrack::Rewriter;
    pub use super::packetcache::{Arrival, CachedPacket, PacketCache};
    pub use super::rtcp::{NackAggregator, pack_nacks};
    pub use super::sendpath::Sealer;
}

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::{EphemeralUDP, UDPNetwork};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};

pub use codecs::{Codec, MediaKind, UnknownCodec};
pub use down::DownStream;
pub use stats::{
    DownStreamStats, DownTrackStats, MediaCounts, MediaStats, UpStreamStats, UpTrackStats,
};
pub use up::UpStream;

/// How the media module listens and what it advertises.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaConfig {
    pub udp: UdpConfig,
    /// STUN/TURN servers used for our own candidates (clients get them from
    /// the caller, in their RTC configuration).
    pub ice_servers: Vec<IceServer>,
    /// Addresses of this machine to advertise in host candidates; empty
    /// means every interface plus loopback.
    pub advertise_ips: Vec<IpAddr>,
}

/// UDP sockets for media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpConfig {
    /// One socket for every connection (`0` picks an ephemeral port).
    Mux { port: u16 },
    /// One socket per connection, from this port range.
    Range { min: u16, max: u16 },
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig::Mux { port: 0 }
    }
}

/// A STUN or TURN server, as in `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Identifies a stream in [`MediaStats`]; assigned by [`Media`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happens to a stream, reported from media tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A local ICE candidate, as `RTCIceCandidateInit` JSON, to send to the peer.
    LocalCandidate(serde_json::Value),
    Connected,
    /// ICE failed; the stream stays open until closed.
    Failed,
    /// The stream is closed and its resources released. Sent once.
    Closed,
    /// A message arrived on one of the publisher's data channels.
    Data {
        label: Arc<str>,
        payload: DataPayload,
    },
    /// Media of this kind started arriving from the publisher, or stopped for a second.
    Receiving {
        kind: MediaKind,
        receiving: bool,
    },
    /// Many packets were lost in the last second: from the publisher (`uplink`), or
    /// reported lost by the subscriber.
    SlowLink {
        kind: MediaKind,
        uplink: bool,
        lost: u32,
    },
}

/// A data channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPayload {
    Text(Arc<str>),
    Binary(bytes::Bytes),
}

/// Receives a stream's events; called from media tasks, so it must not block.
pub type EventSink = Arc<dyn Fn(MediaEvent) + Send + Sync>;

/// How long we wait for our own ICE candidates before answering without the missing ones.
const GATHERING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The local description once candidate gathering is complete (or has taken too long).
async fn gathered_sdp(pc: &RTCPeerConnection) -> Result<String, MediaError> {
    let mut complete = pc.gathering_complete_promise().await;
    let _ = tokio::time::timeout(GATHERING_TIMEOUT, complete.recv()).await;
    Ok(pc
        .local_description()
        .await
        .ok_or_else(|| MediaError::Internal("no local description".to_owned()))?
        .sdp)
}

/// How a subscriber's connection is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The selected tracks the publisher has now (Galène: one connection per stream,
    /// made again when the stream changes).
    Selected,
    /// One m-line for each selected kind the stream may carry, whether or not the
    /// publisher sends it yet; filled as the publisher adds tracks (Janus: a
    /// subscriber keeps one connection per publisher).
    Slots,
}

/// Which tracks of an up stream a subscriber gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSelection {
    /// The first audio track.
    pub audio: bool,
    pub video: VideoSelection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoSelection {
    None,
    /// The first video track (Galène's `video`).
    High,
    /// The last video track (Galène's `video-low`).
    Low,
}

/// A track of an up stream, known once its offer is negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    pub kind: MediaKind,
    pub codec: Codec,
    pub mid: String,
}

/// Errors, worded to be shown to a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("invalid session description: {0}")]
    InvalidSdp(String),
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    #[error("none of the offered codecs is allowed here (allowed: {0})")]
    NoCommonCodec(String),
    #[error("no codec is allowed")]
    NoCodecs,
    #[error("the stream has no track matching the request")]
    NothingToSend,
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("the stream is closed")]
    Closed,
    #[error("cannot set up media sockets: {0}")]
    Socket(String),
    #[error("internal media error: {0}")]
    Internal(String),
}

impl From<webrtc::Error> for MediaError {
    fn from(e: webrtc::Error) -> Self {
        MediaError::Internal(e.to_string())
    }
}

/// State shared by the factory and every stream: counters and registry.
pub(crate) struct Shared {
    next_id: AtomicU64,
    tasks: AtomicUsize,
    caches: AtomicUsize,
    pcs: Mutex<Vec<Weak<RTCPeerConnection>>>,
    ups: Mutex<HashMap<StreamId, Weak<UpStream>>>,
    downs: Mutex<HashMap<StreamId, Weak<DownStream>>>,
    clock: rtcp::NtpClock,
    rtc_config: RTCConfiguration,
    /// The socket shared by every connection (mux mode), on which subscribers' RTP goes
    /// out through our own send path (`sendpath`).
    rtp_socket: Option<Arc<tokio::net::UdpSocket>>,
}

/// Locks a std mutex, ignoring poisoning: our critical sections leave the
/// data consistent even if a panic interrupted them.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn next_id(&self) -> StreamId {
        StreamId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn add_pc(&self, pc: &Arc<RTCPeerConnection>) {
        let mut pcs = lock(&self.pcs);
        pcs.retain(|w| w.strong_count() > 0);
        pcs.push(Arc::downgrade(pc));
    }

    /// Spawn a task counted in [`MediaCounts::tasks`].
    pub(crate) fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        struct Guard(Arc<Shared>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.tasks.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.tasks.fetch_add(1, Ordering::Relaxed);
        let guard = Guard(self.clone());
        tokio::spawn(async move {
            let _guard = guard;
            fut.await;
        });
    }

    pub(crate) fn cache_created(&self) {
        self.caches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cache_dropped(&self) {
        self.caches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The media factory. Build one with [`Media::new`] and share it.
pub struct Media {
    shared: Arc<Shared>,
    udp: UDPNetwork,
    /// Closed when the factory is dropped, which ends its socket's task.
    mux: Option<Arc<UDPMuxDefault>>,
    udp_port: Option<u16>,
    advertise_ips: Vec<IpAddr>,
    apis: Mutex<HashMap<Vec<Codec>, Arc<API>>>,
}

impl Media {
    pub async fn new(config: MediaConfig) -> Result<Arc<Media>, MediaError> {
        let (udp, mux, udp_port, rtp_socket) = match config.udp {
            UdpConfig::Mux { port } => {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
                let socket = tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|e| MediaError::Socket(format!("UDP port {port}: {e}")))?;
                let port = socket
                    .local_addr()
                    .map_err(|e| MediaError::Socket(e.to_string()))?
                    .port();
                let socket = Arc::new(socket);
                let mux =
                    UDPMuxDefault::new(UDPMuxParams::new(sendpath::MuxSocket(socket.clone())));
                (
                    UDPNetwork::Muxed(mux.clone()),
                    Some(mux),
                    Some(port),
                    Some(socket),
                )
            }
            UdpConfig::Range { min, max } => {
                let range = EphemeralUDP::new(min, max)
                    .map_err(|e| MediaError::Socket(format!("port range {min}-{max}: {e}")))?;
                (UDPNetwork::Ephemeral(range), None, None, None)
            }
        };
        let rtc_config = RTCConfiguration {
            ice_servers: config
                .ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            ..Default::default()
        };
        Ok(Arc::new(Media {
            shared: Arc::new(Shared {
                next_id: AtomicU64::new(1),
                tasks: AtomicUsize::new(0),
                caches: AtomicUsize::new(0),
                pcs: Mutex::new(vec![]),
                ups: Mutex::new(HashMap::new()),
                downs: Mutex::new(HashMap::new()),
                clock: rtcp::NtpClock::new(),
                rtc_config,
                rtp_socket,
            }),
            udp,
            mux,
            udp_port,
            advertise_ips: config.advertise_ips,
            apis: Mutex::new(HashMap::new()),
        }))
    }

    /// The UDP port shared by every connection, in mux mode.
    pub fn udp_port(&self) -> Option<u16> {
        self.udp_port
    }

    /// The webrtc-rs API for a codec set, built once per set.
    fn api(&self, codecs: &[Codec]) -> Result<Arc<API>, MediaError> {
        if codecs.is_empty() {
            return Err(MediaError::NoCodecs);
        }
        let mut key = codecs.to_vec();
        key.dedup();
        let mut apis = lock(&self.apis);
        if let Some(api) = apis.get(&key) {
            return Ok(api.clone());
        }
        let api = Arc::new(self.build_api(&key)?);
        apis.insert(key, api.clone());
        Ok(api)
    }

    fn build_api(&self, codecs: &[Codec]) -> Result<API, MediaError> {
        let mut engine = MediaEngine::default();
        for &codec in codecs {
            engine.register_codec(codec_parameters(codec), rtp_codec_type(codec.kind()))?;
        }
        // The MID extension lets webrtc-rs route RTP of m-lines without
        // a=ssrc; everything else is stripped on forwarding anyway.
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            engine.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: webrtc::sdp::extmap::SDES_MID_URI.to_owned(),
                },
                kind,
                None,
            )?;
        }
        let mut settings = SettingEngine::default();
        settings.set_udp_network(self.udp.clone());
        settings.set_include_loopback_candidate(true);
        settings.set_network_types(vec![NetworkType::Udp4]);
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        // Retransmissions arrive late: a 64-packet window would reject them.
        settings.set_srtp_replay_protection_window(512);
        if !self.advertise_ips.is_empty() {
            let ips = self.advertise_ips.clone();
            settings.set_ip_filter(Box::new(move |ip| ips.contains(&ip)));
        }
        // No interceptor: NACK, RR, SR, REMB and PLI are ours.
        Ok(APIBuilder::new()
            .with_media_engine(engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(Registry::new())
            .build())
    }

    async fn new_peer_connection(
        &self,
        codecs: &[Codec],
    ) -> Result<Arc<RTCPeerConnection>, MediaError> {
        let api = self.api(codecs)?;
        let pc = Arc::new(
            api.new_peer_connection(self.shared.rtc_config.clone())
                .await?,
        );
        self.shared.add_pc(&pc);
        Ok(pc)
    }

    /// Accept a publisher's offer: one PeerConnection per stream, answered
    /// recvonly, each m-line restricted to the first allowed codec it offers.
    pub async fn publish(
        self: &Arc<Self>,
        codecs: &[Codec],
        offer_sdp: &str,
        events: EventSink,
    ) -> Result<(Arc<UpStream>, String), MediaError> {
        let pc = self.new_peer_connection(codecs).await?;
        let id = self.shared.next_id();
        up::publish(
            self.shared.clone(),
            id,
            pc,
            codecs.to_vec(),
            offer_sdp,
            events,
        )
        .await
    }

    /// Open a subscriber's connection to `up`, carrying the selected tracks.
    /// Returns the server's offer; give the answer to
    /// [`DownStream::set_answer`].
    pub async fn subscribe(
        self: &Arc<Self>,
        up: &Arc<UpStream>,
        selection: TrackSelection,
        events: EventSink,
    ) -> Result<(Arc<DownStream>, String), MediaError> {
        self.subscribe_with(up, selection, Layout::Selected, false, events)
            .await
    }

    /// [`subscribe`](Self::subscribe) carrying the selected tracks (with
    /// [`Layout::Selected`]) or one m-line per selected kind (with [`Layout::Slots`]).
    /// With `paused`, nothing is forwarded until [`DownStream::set_paused`] says so.
    pub async fn subscribe_with(
        self: &Arc<Self>,
        up: &Arc<UpStream>,
        selection: TrackSelection,
        layout: Layout,
        paused: bool,
        events: EventSink,
    ) -> Result<(Arc<DownStream>, String), MediaError> {
        let codecs = up.codecs();
        let tracks = match layout {
            Layout::Selected => up
                .select(selection)?
                .iter()
                .enumerate()
                .map(|(i, t)| Arc::new(downtrack::DownTrack::new(self.shared.next_id().0, i, t)))
                .collect(),
            Layout::Slots => up.slots(selection, &codecs, || self.shared.next_id().0)?,
        };
        let pc = self.new_peer_connection(&codecs).await?;
        let id = self.shared.next_id();
        down::subscribe(self.shared.clone(), id, pc, up, tracks, events, paused).await
    }

    pub fn stats(&self) -> MediaStats {
        let ups: Vec<Arc<UpStream>> = lock(&self.shared.ups)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let downs: Vec<Arc<DownStream>> = lock(&self.shared.downs)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let mut stats = MediaStats {
            up: ups.iter().map(|u| u.stats()).collect(),
            down: downs.iter().map(|d| d.stats()).collect(),
        };
        stats.up.sort_by_key(|s| s.id);
        stats.down.sort_by_key(|s| s.id);
        stats
    }

    pub fn counts(&self) -> MediaCounts {
        let peer_connections = {
            let mut pcs = lock(&self.shared.pcs);
            pcs.retain(|w| w.strong_count() > 0);
            pcs.len()
        };
        let ups: Vec<Arc<UpStream>> = lock(&self.shared.ups)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        MediaCounts {
            peer_connections,
            up_streams: ups.len(),
            down_streams: lock(&self.shared.downs)
                .values()
                .filter(|w| w.strong_count() > 0)
                .count(),
            tasks: self.shared.tasks.load(Ordering::Relaxed),
            caches: self.shared.caches.load(Ordering::Relaxed),
            cached_bytes: ups.iter().map(|u| u.cached_bytes()).sum(),
        }
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        // The shared socket goes with the factory (at shutdown): streams
        // still open would stop receiving.
        if let (Some(mux), Ok(rt)) = (self.mux.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = webrtc::ice::udp_mux::UDPMux::close(mux.as_ref()).await;
            });
        }
    }
}

fn rtp_codec_type(kind: MediaKind) -> RTPCodecType {
    match kind {
        MediaKind::Audio => RTPCodecType::Audio,
        MediaKind::Video => RTPCodecType::Video,
    }
}

fn codec_parameters(codec: Codec) -> RTCRtpCodecParameters {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    let rtcp_feedback = match codec.kind() {
        MediaKind::Video => vec![
            feedback("goog-remb", ""),
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ],
        MediaKind::Audio => vec![],
    };
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: codec.mime_type().to_owned(),
            clock_rate: codec.clock_rate(),
            channels: codec.channels(),
            sdp_fmtp_line: codec.fmtp().to_owned(),
            rtcp_feedback,
        },
        payload_type: codec.payload_type(),
        ..Default::default()
    }
}

/// Checks that a session description parses, before it is handed to a connection (some
/// protocols answer a malformed one at once, with an error of their own).
pub fn check_sdp(sdp: &str) -> Result<(), String> {
    let mut reader = std::io::Cursor::new(sdp.as_bytes());
    webrtc::sdp::SessionDescription::unmarshal(&mut reader)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The remote candidate that says the peer has no more (an empty `candidate`, as in the
/// browsers' end-of-candidates `RTCIceCandidateInit`), for the `add_candidate`s.
pub fn end_of_candidates() -> serde_json::Value {
    serde_json::json!({"candidate": ""})
}

/// Parse a remote candidate; `Ok(None)` is the end-of-candidates marker.
fn parse_candidate(value: serde_json::Value) -> Result<Option<RTCIceCandidateInit>, MediaError> {
    if value.is_null() {
        return Err(MediaError::InvalidCandidate("null candidate".to_owned()));
    }
    let init: RTCIceCandidateInit =
        serde_json::from_value(value).map_err(|e| MediaError::InvalidCandidate(e.to_string()))?;
    if init.candidate.is_empty() {
        return Ok(None);
    }
    Ok(Some(init))
}

/// Our local candidate as JSON for the sink.
fn candidate_event(
    c: &webrtc::ice_transport::ice_candidate::RTCIceCandidate,
) -> Option<MediaEvent> {
    let init = c.to_json().ok()?;
    serde_json::to_value(init)
        .ok()
        .map(MediaEvent::LocalCandidate)
}

/// Remove simulcast from an offer: without `a=simulcast`/`a=rid` in our
/// answer, browsers send a single encoding.
fn strip_simulcast(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let l = line.trim_end();
        if l.starts_with("a=simulcast:") || l.starts_with("a=rid:") {
            continue;
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulcast_is_stripped() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\na=mid:0\r\n";
        assert_eq!(
            strip_simulcast(sdp),
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"
        );
    }

    #[test]
    fn candidates() {
        assert!(parse_candidate(serde_json::Value::Null).is_err());
        assert!(parse_candidate(serde_json::json!({"candidate": 3})).is_err());
        assert_eq!(
            parse_candidate(serde_json::json!({"candidate": ""})),
            Ok(None)
        );
        assert_eq!(parse_candidate(end_of_candidates()), Ok(None));
        let c = parse_candidate(serde_json::json!({
            "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0
        }))
        .expect("valid")
        .expect("not the end marker");
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
    }

    #[test]
    fn ice_server_json() {
        let s: IceServer =
            serde_json::from_str(r#"{"urls":["stun:example.org"]}"#).expect("parses");
        assert_eq!(s.username, None);
        let s: IceServer = serde_json::from_str(
            r#"{"urls":["turn:example.org"],"username":"u","credential":"c"}"#,
        )
        .expect("parses");
        assert_eq!(s.credential.as_deref(), Some("c"));
    }
}
