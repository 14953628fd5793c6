//! Our own RTP send path for subscribers.
//!
//! webrtc-rs sends each RTP packet through its interceptor chain, its SRTP session's
//! writer task, the mux and the ICE agent's connection: several task hand-offs and copies
//! per packet and subscriber. Once a down connection's DTLS is up, we take its SRTP keys
//! (the ones webrtc-rs derives from the DTLS exporter) and the selected candidate pair's
//! remote address; the up track's reader then marshals each packet for each subscriber
//! into a reused buffer, encrypts it (webrtc-srtp's context still allocates its output)
//! and writes it straight to the server's UDP socket. webrtc-rs keeps ICE (checks,
//! consent, restarts), DTLS, SCTP, RTCP both ways and the receive path.
//!
//! Only in mux mode (one UDP socket for every connection, which we own): with a port
//! range the sockets are webrtc-rs's, and its send path is used.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::ice_transport::ice_protocol::RTCIceProtocol;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::header::Header;
use webrtc::srtp::context::Context;
use webrtc::srtp::protection_profile::ProtectionProfile;
use webrtc::util::{Conn, Marshal, MarshalSize};

/// The shared UDP socket, given to webrtc-rs's mux for ICE and DTLS while we send RTP on
/// it too.
pub(crate) struct MuxSocket(pub Arc<UdpSocket>);

#[async_trait::async_trait]
impl Conn for MuxSocket {
    async fn connect(&self, addr: SocketAddr) -> webrtc::util::Result<()> {
        Ok(self.0.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        Ok(self.0.recv(buf).await?)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        Ok(self.0.recv_from(buf).await?)
    }

    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        Ok(self.0.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        Ok(self.0.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.0.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc::util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Where and how a down connection's RTP goes: the socket, the subscriber's address on
/// the selected candidate pair, and the SRTP keys.
#[derive(Clone)]
pub(crate) struct Route {
    socket: Arc<UdpSocket>,
    pub dest: SocketAddr,
    profile: ProtectionProfile,
    key: Arc<[u8]>,
    salt: Arc<[u8]>,
}

impl Route {
    /// The route of a connection whose DTLS is up, if its selected pair is on `socket`
    /// (UDP, one of our host or server-reflexive candidates on the shared port).
    pub async fn of(pc: &RTCPeerConnection, socket: &Arc<UdpSocket>) -> Option<Route> {
        let dtls = pc.sctp().transport();
        let dest = destination(pc, socket).await?;
        let (profile, key, salt) = match dtls.srtp_local_keys().await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::debug!("no SRTP keys for our send path: {error}");
                return None;
            }
        };
        Some(Route {
            socket: socket.clone(),
            dest,
            profile,
            key: key.into(),
            salt: salt.into(),
        })
    }

    /// The same keys to another address (the selected pair changed).
    pub fn to(&self, dest: SocketAddr) -> Route {
        Route {
            dest,
            ..self.clone()
        }
    }

    fn same_keys(&self, other: &Route) -> bool {
        self.profile as u16 == other.profile as u16
            && self.key == other.key
            && self.salt == other.salt
    }
}

/// The subscriber's address on the selected candidate pair, if the pair's local side is
/// our shared socket.
pub(crate) async fn destination(
    pc: &RTCPeerConnection,
    socket: &Arc<UdpSocket>,
) -> Option<SocketAddr> {
    let pair = pc
        .sctp()
        .transport()
        .ice_transport()
        .get_selected_candidate_pair()
        .await?;
    let port = socket.local_addr().ok()?.port();
    let ours = pair.local.protocol == RTCIceProtocol::Udp
        && matches!(
            pair.local.typ,
            RTCIceCandidateType::Host | RTCIceCandidateType::Srflx
        )
        && (pair.local.port == port || pair.local.related_port == port);
    if !ours || pair.remote.protocol != RTCIceProtocol::Udp {
        return None;
    }
    let ip = pair.remote.address.parse().ok()?;
    Some(SocketAddr::new(ip, pair.remote.port))
}

/// SRTP encryption for one SSRC's packets: its context and a buffer reused for every
/// packet's plaintext.
pub struct Sealer {
    context: Context,
    buffer: Vec<u8>,
}

impl Sealer {
    pub fn new(profile: ProtectionProfile, key: &[u8], salt: &[u8]) -> Result<Sealer, String> {
        let context = Context::new(key, salt, profile, None, None).map_err(|e| e.to_string())?;
        Ok(Sealer {
            context,
            buffer: Vec::with_capacity(1500),
        })
    }

    /// The packet as it goes on the wire: marshalled, then encrypted and authenticated.
    pub fn seal(&mut self, header: &Header, payload: &[u8]) -> Result<Bytes, String> {
        let header_len = header.marshal_size();
        self.buffer.clear();
        self.buffer.resize(header_len + payload.len(), 0);
        header
            .marshal_to(&mut self.buffer[..header_len])
            .map_err(|e| e.to_string())?;
        self.buffer[header_len..].copy_from_slice(payload);
        self.context
            .encrypt_rtp_with_header(&self.buffer, header)
            .map_err(|e| e.to_string())
    }
}

/// One down track's sender on a [`Route`] (SRTP state is per SSRC, and a track is one
/// SSRC).
pub(crate) struct Sender {
    route: Route,
    sealer: Sealer,
}

/// Why a packet was not sent.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The socket's buffer is full: the packet is dropped, as a congested link would.
    WouldBlock,
    Failed(String),
}

impl Sender {
    pub fn new(route: Route) -> Result<Sender, String> {
        let sealer = Sealer::new(route.profile, &route.key, &route.salt)?;
        Ok(Sender { route, sealer })
    }

    /// Follows a new route: the same SRTP context if the keys are the same.
    pub fn update(&mut self, route: &Route) -> Result<(), String> {
        if self.route.same_keys(route) {
            self.route.dest = route.dest;
            return Ok(());
        }
        *self = Sender::new(route.clone())?;
        Ok(())
    }

    pub fn dest(&self) -> SocketAddr {
        self.route.dest
    }

    /// Encrypts and sends one packet.
    pub fn send(&mut self, header: &Header, payload: &[u8]) -> Result<(), SendError> {
        let sealed = self
            .sealer
            .seal(header, payload)
            .map_err(SendError::Failed)?;
        match self.route.socket.try_send_to(&sealed, self.route.dest) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(SendError::WouldBlock),
            Err(e) => Err(SendError::Failed(e.to_string())),
        }
    }
}
