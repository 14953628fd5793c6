//! Statistics served by `Media::stats` and the resource counts of
//! `Media::counts`.

use serde::Serialize;

use super::{Codec, MediaKind, StreamId};

/// Per-track statistics of an up stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpTrackStats {
    pub kind: MediaKind,
    pub codec: Codec,
    pub bitrate: u64,
    pub packet_rate: u32,
    /// Fraction of packets lost over the last second, 0 to 1.
    pub loss: f64,
    pub total_lost: u32,
    pub jitter_ms: f64,
    pub packets: u64,
    pub keyframes: u64,
    /// NACK pairs and PLIs we sent to the publisher.
    pub nacks_sent: u64,
    pub plis_sent: u64,
    pub subscribers: usize,
}

/// Per-track statistics of a down stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownTrackStats {
    pub kind: MediaKind,
    pub codec: Codec,
    pub bitrate: u64,
    pub packets: u64,
    /// Loss reported by the subscriber, 0 to 1.
    pub loss: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// The subscriber's last REMB, if recent.
    pub remb: Option<u64>,
    /// Our loss-based estimate of what it can take.
    pub estimate: u64,
    pub nacks_received: u64,
    pub retransmitted: u64,
    pub plis_received: u64,
    /// Packets dropped because its queue was full.
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpStreamStats {
    pub id: StreamId,
    pub tracks: Vec<UpTrackStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownStreamStats {
    pub id: StreamId,
    /// The up stream it receives.
    pub up: StreamId,
    pub tracks: Vec<DownTrackStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MediaStats {
    pub up: Vec<UpStreamStats>,
    pub down: Vec<DownStreamStats>,
}

/// Live resources, to check that closing releases everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct MediaCounts {
    /// PeerConnections not yet dropped.
    pub peer_connections: usize,
    pub up_streams: usize,
    pub down_streams: usize,
    /// Our tasks still running.
    pub tasks: usize,
    /// Packet caches alive and the payload bytes they hold.
    pub caches: usize,
    pub cached_bytes: usize,
}
