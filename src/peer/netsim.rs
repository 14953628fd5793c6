//! A network simulator as an interceptor: registered first, it sits at the
//! network side of the chain, so what it drops is never seen by the
//! interceptors after it (the NACK generator, the report interceptors),
//! exactly as if the network had lost it. It also logs the RTCP its peer
//! sends.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use webrtc::interceptor::stream_info::StreamInfo;
use webrtc::interceptor::{
    Attributes, Interceptor, InterceptorBuilder, RTCPReader, RTCPWriter, RTPReader, RTPWriter,
};
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use webrtc::rtp::packet::Packet;

use super::{Kind, Probe, lock};

/// A packet offered to a [`DropFilter`].
pub struct PacketInfo<'a> {
    pub kind: Kind,
    pub packet: &'a Packet,
    pub probe: Option<Probe>,
}

/// Returns true to lose the packet's first transmission.
pub type DropFilter = Arc<dyn Fn(&PacketInfo<'_>) -> bool + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPacket {
    pub kind: Kind,
    pub ssrc: u32,
    pub seq: u16,
    pub probe: Option<Probe>,
}

/// RTCP a peer sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtcpLog {
    /// Every seqno NACKed, in order, with repeats.
    pub nacks: Vec<u16>,
    pub plis: u32,
    pub firs: u32,
    pub rembs: Vec<u64>,
    pub receiver_reports: u32,
}

impl RtcpLog {
    fn record(&mut self, p: &(dyn webrtc::rtcp::packet::Packet + Send + Sync)) {
        let p = p.as_any();
        if let Some(n) = p.downcast_ref::<TransportLayerNack>() {
            self.nacks
                .extend(n.nacks.iter().flat_map(|pair| pair.packet_list()));
        } else if p.downcast_ref::<PictureLossIndication>().is_some() {
            self.plis += 1;
        } else if p.downcast_ref::<FullIntraRequest>().is_some() {
            self.firs += 1;
        } else if let Some(r) = p.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            self.rembs.push(r.bitrate as u64);
        } else if p.downcast_ref::<ReceiverReport>().is_some() {
            self.receiver_reports += 1;
        }
    }
}

#[derive(Default)]
struct Direction {
    filter: Option<DropFilter>,
    /// (ssrc, seqno) of dropped packets: their retransmissions pass.
    dropped_keys: HashSet<(u32, u16)>,
    dropped: Vec<DroppedPacket>,
}

impl Direction {
    fn should_drop(&mut self, kind: Kind, packet: &Packet) -> bool {
        let Some(filter) = &self.filter else {
            return false;
        };
        let key = (packet.header.ssrc, packet.header.sequence_number);
        if self.dropped_keys.contains(&key) {
            return false;
        }
        let probe = Probe::parse(&packet.payload);
        if !filter(&PacketInfo {
            kind,
            packet,
            probe,
        }) {
            return false;
        }
        self.dropped_keys.insert(key);
        self.dropped.push(DroppedPacket {
            kind,
            ssrc: key.0,
            seq: key.1,
            probe,
        });
        true
    }
}

/// The simulator's state, shared with the peer that owns it.
#[derive(Default)]
pub struct NetSim {
    incoming: Mutex<Direction>,
    outgoing: Mutex<Direction>,
    rtcp_sent: Mutex<RtcpLog>,
}

impl NetSim {
    pub fn new(incoming: Option<DropFilter>, outgoing: Option<DropFilter>) -> Arc<Self> {
        Arc::new(NetSim {
            incoming: Mutex::new(Direction {
                filter: incoming,
                ..Default::default()
            }),
            outgoing: Mutex::new(Direction {
                filter: outgoing,
                ..Default::default()
            }),
            rtcp_sent: Mutex::new(RtcpLog::default()),
        })
    }

    pub fn dropped_incoming(&self) -> Vec<DroppedPacket> {
        lock(&self.incoming).dropped.clone()
    }

    pub fn dropped_outgoing(&self) -> Vec<DroppedPacket> {
        lock(&self.outgoing).dropped.clone()
    }

    pub fn rtcp_sent(&self) -> RtcpLog {
        lock(&self.rtcp_sent).clone()
    }
}

fn kind_of(info: &StreamInfo) -> Kind {
    if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
        Kind::Audio
    } else {
        Kind::Video
    }
}

pub(crate) struct Builder(pub Arc<NetSim>);

impl InterceptorBuilder for Builder {
    fn build(
        &self,
        _id: &str,
    ) -> Result<Arc<dyn Interceptor + Send + Sync>, webrtc::interceptor::Error> {
        Ok(Arc::new(Sim(self.0.clone())))
    }
}

struct Sim(Arc<NetSim>);

struct Reader {
    sim: Arc<NetSim>,
    kind: Kind,
    inner: Arc<dyn RTPReader + Send + Sync>,
}

#[async_trait]
impl RTPReader for Reader {
    async fn read(
        &self,
        buf: &mut [u8],
        attributes: &Attributes,
    ) -> Result<(Packet, Attributes), webrtc::interceptor::Error> {
        loop {
            let (packet, attributes) = self.inner.read(buf, attributes).await?;
            if !lock(&self.sim.incoming).should_drop(self.kind, &packet) {
                return Ok((packet, attributes));
            }
        }
    }
}

struct Writer {
    sim: Arc<NetSim>,
    kind: Kind,
    inner: Arc<dyn RTPWriter + Send + Sync>,
}

#[async_trait]
impl RTPWriter for Writer {
    async fn write(
        &self,
        packet: &Packet,
        attributes: &Attributes,
    ) -> Result<usize, webrtc::interceptor::Error> {
        if lock(&self.sim.outgoing).should_drop(self.kind, packet) {
            return Ok(0);
        }
        self.inner.write(packet, attributes).await
    }
}

struct RtcpTap {
    sim: Arc<NetSim>,
    inner: Arc<dyn RTCPWriter + Send + Sync>,
}

#[async_trait]
impl RTCPWriter for RtcpTap {
    async fn write(
        &self,
        packets: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>],
        attributes: &Attributes,
    ) -> Result<usize, webrtc::interceptor::Error> {
        {
            let mut log = lock(&self.sim.rtcp_sent);
            for p in packets {
                log.record(p.as_ref());
            }
        }
        self.inner.write(packets, attributes).await
    }
}

#[async_trait]
impl Interceptor for Sim {
    async fn bind_rtcp_reader(
        &self,
        reader: Arc<dyn RTCPReader + Send + Sync>,
    ) -> Arc<dyn RTCPReader + Send + Sync> {
        reader
    }

    async fn bind_rtcp_writer(
        &self,
        writer: Arc<dyn RTCPWriter + Send + Sync>,
    ) -> Arc<dyn RTCPWriter + Send + Sync> {
        Arc::new(RtcpTap {
            sim: self.0.clone(),
            inner: writer,
        })
    }

    async fn bind_local_stream(
        &self,
        info: &StreamInfo,
        writer: Arc<dyn RTPWriter + Send + Sync>,
    ) -> Arc<dyn RTPWriter + Send + Sync> {
        Arc::new(Writer {
            sim: self.0.clone(),
            kind: kind_of(info),
            inner: writer,
        })
    }

    async fn unbind_local_stream(&self, _info: &StreamInfo) {}

    async fn bind_remote_stream(
        &self,
        info: &StreamInfo,
        reader: Arc<dyn RTPReader + Send + Sync>,
    ) -> Arc<dyn RTPReader + Send + Sync> {
        Arc::new(Reader {
            sim: self.0.clone(),
            kind: kind_of(info),
            inner: reader,
        })
    }

    async fn unbind_remote_stream(&self, _info: &StreamInfo) {}

    async fn close(&self) -> Result<(), webrtc::interceptor::Error> {
        Ok(())
    }
}
