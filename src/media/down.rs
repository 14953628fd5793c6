//! A subscriber's connection to one up stream: our offer, its answer,
//! remote candidates queued until the answer, ICE restart, and closing. Its
//! tracks are attached to the up tracks' readers only once the connection
//! is up, so that no packet is sent into the void. The tracks themselves
//! (`TrackLocal`, writer and RTCP tasks) are in `downtrack`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use super::downtrack::{DownTrack, Writer, read_rtcp};
use super::sendpath::{self, Route};
use super::up::{UpCtl, UpStream};
use super::{
    DownStreamStats, EventSink, MediaError, MediaEvent, Shared, StreamId, TrackInfo,
    candidate_event, gathered_sdp, lock, parse_candidate,
};

/// A subscriber's connection: one PeerConnection, one track per selected
/// up track.
pub struct DownStream {
    id: StreamId,
    up_id: StreamId,
    /// The up stream, to fill empty slots from when its tracks change.
    up: Weak<UpStream>,
    /// Taken (and closed) by `close`, so a closed stream holds nothing.
    pc: Mutex<Option<Arc<RTCPeerConnection>>>,
    shared: Arc<Shared>,
    /// Dropped after `Closed`, which breaks any cycle through the sink.
    events: Mutex<Option<EventSink>>,
    tracks: Vec<Arc<DownTrack>>,
    /// Remote candidates waiting for the answer; `None` once it is set.
    pending: tokio::sync::Mutex<Option<Vec<RTCIceCandidateInit>>>,
    connected: AtomicBool,
    /// Set while forwarding is suspended (a block between the two users).
    paused: AtomicBool,
    closed: AtomicBool,
    cancel: CancellationToken,
    negotiation: tokio::sync::Mutex<()>,
}

pub(super) async fn subscribe(
    shared: Arc<Shared>,
    id: StreamId,
    pc: Arc<RTCPeerConnection>,
    up: &Arc<UpStream>,
    tracks: Vec<Arc<DownTrack>>,
    events: EventSink,
    paused: bool,
) -> Result<(Arc<DownStream>, String), MediaError> {
    let down = Arc::new(DownStream {
        id,
        up_id: up.id(),
        up: Arc::downgrade(up),
        pc: Mutex::new(Some(pc.clone())),
        shared: shared.clone(),
        events: Mutex::new(Some(events)),
        tracks,
        pending: tokio::sync::Mutex::new(Some(vec![])),
        connected: AtomicBool::new(false),
        paused: AtomicBool::new(paused),
        closed: AtomicBool::new(false),
        cancel: CancellationToken::new(),
        negotiation: tokio::sync::Mutex::new(()),
    });
    lock(&shared.downs).insert(id, Arc::downgrade(&down));
    down.wire_callbacks(&pc);
    let offer = match down.start(&pc).await {
        Ok(offer) => offer,
        Err(e) => {
            down.shutdown(false).await;
            return Err(e);
        }
    };
    up.add_down(&down);
    // The up stream may have closed meanwhile, without seeing us.
    if up.is_closed() {
        down.shutdown(false).await;
        return Err(MediaError::Closed);
    }
    tracing::debug!(stream = %id, up = %up.id(), "subscribed");
    Ok((down, offer))
}

impl DownStream {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The up stream this stream receives.
    pub fn up_id(&self) -> StreamId {
        self.up_id
    }

    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.tracks
            .iter()
            .map(|t| TrackInfo {
                kind: t.kind,
                codec: t.codec,
                mid: t.track_id.clone(),
            })
            .collect()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) && !self.closed.load(Ordering::Relaxed)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
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
            if let (Some(down), Some(c)) = (weak.upgrade(), c)
                && let Some(ev) = candidate_event(&c)
            {
                down.emit(ev);
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        pc.on_peer_connection_state_change(Box::new(move |state| {
            if let Some(down) = weak.upgrade() {
                down.on_state(state);
            }
            Box::pin(async {})
        }));
    }

    fn on_state(self: &Arc<Self>, state: RTCPeerConnectionState) {
        tracing::debug!(stream = %self.id, %state, "down connection");
        match state {
            RTCPeerConnectionState::Connected
                if !self.connected.swap(true, Ordering::Relaxed) && !self.is_closed() =>
            {
                // Start forwarding only now: packets sent before the connection is up
                // would be lost. Our own send path first, so that every RTP packet of
                // the connection goes one way (two SRTP contexts would disagree).
                let down = self.clone();
                self.shared.spawn(async move {
                    down.open_route().await;
                    if !down.paused.load(Ordering::Relaxed) && !down.is_closed() {
                        down.attach_all();
                    }
                    down.emit(MediaEvent::Connected);
                });
            }
            RTCPeerConnectionState::Failed if !self.is_closed() => {
                self.emit(MediaEvent::Failed);
            }
            RTCPeerConnectionState::Closed if !self.is_closed() => {
                let down = self.clone();
                self.shared.spawn(async move { down.close().await });
            }
            _ => {}
        }
    }

    /// Sets up our own send path (see `sendpath`) when the connection is on the shared
    /// socket, and follows the selected candidate pair when it changes (ICE restart).
    async fn open_route(self: &Arc<Self>) {
        let (Some(socket), Ok(pc)) = (self.shared.rtp_socket.clone(), self.pc()) else {
            return;
        };
        let Some(route) = Route::of(&pc, &socket).await else {
            return;
        };
        tracing::debug!(stream = %self.id, dest = %route.dest, "our own send path");
        for t in &self.tracks {
            t.route.store(Some(Arc::new(route.clone())));
        }
        let weak = Arc::downgrade(self);
        let dtls = pc.sctp().transport();
        dtls.ice_transport().on_selected_candidate_pair_change(Box::new(move |_| {
            let (weak, route, socket) = (weak.clone(), route.clone(), socket.clone());
            Box::pin(async move {
                let Some(down) = weak.upgrade() else { return };
                let Ok(pc) = down.pc() else { return };
                let route = sendpath::destination(&pc, &socket)
                    .await
                    .map(|dest| Arc::new(route.to(dest)));
                tracing::debug!(stream = %down.id, dest = ?route.as_ref().map(|r| r.dest), "send path follows the selected pair");
                for t in &down.tracks {
                    t.route.store(route.clone());
                }
            })
        }));
    }

    /// Add the tracks, start their tasks and make the offer.
    async fn start(self: &Arc<Self>, pc: &Arc<RTCPeerConnection>) -> Result<String, MediaError> {
        for t in &self.tracks {
            let transceiver = pc
                .add_transceiver_from_track(
                    t.clone(),
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await?;
            let sender = transceiver.sender().await;
            let (queue, ctl) = (lock(&t.queue_rx).take(), lock(&t.ctl_rx).take());
            let (Some(queue), Some(ctl)) = (queue, ctl) else {
                return Err(MediaError::Internal("down track started twice".to_owned()));
            };
            let writer = Writer::new(t.clone(), pc.clone(), self.shared.clock, self.notifier());
            let span = tracing::debug_span!("down_track", stream = %self.id, track = %t.track_id);
            self.shared.spawn(
                writer
                    .run(queue, ctl, self.cancel.clone())
                    .instrument(span.clone()),
            );
            self.shared.spawn(
                read_rtcp(t.clone(), sender, self.cancel.clone(), self.shared.clock)
                    .instrument(span),
            );
        }
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        local_sdp(pc).await
    }

    fn notifier(self: &Arc<Self>) -> EventSink {
        let weak = Arc::downgrade(self);
        Arc::new(move |event| {
            if let Some(down) = weak.upgrade() {
                down.emit(event);
            }
        })
    }

    /// Connects every track to its up track's reader.
    fn attach_all(&self) {
        for t in &self.tracks {
            t.send_up(UpCtl::AddDown(t.clone()));
        }
    }

    /// Fills empty slots with the up stream's tracks of their kind (the publisher added
    /// audio or video since). Returns whether a slot was filled; the new media flows at
    /// once if the connection is up, and a new offer (see [`renegotiate`](Self::renegotiate))
    /// lets the subscriber know.
    pub fn refresh(&self) -> bool {
        let Some(up) = self.up.upgrade() else {
            return false;
        };
        let sources = up.tracks_arc();
        let mut filled = false;
        for t in &self.tracks {
            let Some(source) = sources.iter().find(|s| s.kind == t.kind) else {
                continue;
            };
            if t.fill(source) {
                filled = true;
                if self.connected.load(Ordering::Relaxed) && !self.paused.load(Ordering::Relaxed) {
                    t.send_up(UpCtl::AddDown(t.clone()));
                }
            }
        }
        filled
    }

    /// Whether the connection's RTP goes out on our own send path (see `sendpath`): once
    /// it is up on the shared socket.
    pub fn on_own_send_path(&self) -> bool {
        self.tracks.iter().any(|t| t.route.load().is_some())
    }

    /// Suspends forwarding (`true`) or resumes it, starting again from a keyframe.
    pub fn set_paused(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::Relaxed) == paused {
            return;
        }
        if paused {
            for t in &self.tracks {
                t.send_up(UpCtl::RemoveDown(t.id));
            }
        } else if self.connected.load(Ordering::Relaxed) && !self.is_closed() {
            self.attach_all();
        }
    }

    /// A new offer on the same connection (same ICE and DTLS); give the answer to
    /// [`set_answer`](Self::set_answer).
    pub async fn renegotiate(&self) -> Result<String, MediaError> {
        let _serialised = self.negotiation.lock().await;
        let pc = self.pc()?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        local_sdp(&pc).await
    }

    /// Our current offer with every local candidate in it, once they are gathered, for
    /// peers that do not take trickled candidates (Janus clients).
    pub async fn gathered_sdp(&self) -> Result<String, MediaError> {
        let pc = self.pc()?;
        gathered_sdp(&pc).await
    }

    /// Apply the subscriber's answer, then the candidates that came early.
    pub async fn set_answer(&self, sdp: &str) -> Result<(), MediaError> {
        let _serialised = self.negotiation.lock().await;
        let pc = self.pc()?;
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        pc.set_remote_description(answer)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let queued = self.pending.lock().await.take().unwrap_or_default();
        for c in queued {
            if let Err(e) = pc.add_ice_candidate(c).await {
                tracing::debug!(stream = %self.id, "queued candidate refused: {e}");
            }
        }
        Ok(())
    }

    /// Add a remote candidate; queued until the answer is set.
    pub async fn add_remote_candidate(
        &self,
        candidate: serde_json::Value,
    ) -> Result<(), MediaError> {
        let pc = self.pc()?;
        let Some(init) = parse_candidate(candidate)? else {
            return Ok(());
        };
        {
            let mut pending = self.pending.lock().await;
            if let Some(queue) = pending.as_mut() {
                if queue.len() < 64 {
                    queue.push(init);
                }
                return Ok(());
            }
        }
        pc.add_ice_candidate(init)
            .await
            .map_err(|e| MediaError::InvalidCandidate(e.to_string()))
    }

    /// A new offer with fresh ICE credentials; give the answer to
    /// [`set_answer`](Self::set_answer).
    pub async fn restart_ice(&self) -> Result<String, MediaError> {
        let _serialised = self.negotiation.lock().await;
        let pc = self.pc()?;
        *self.pending.lock().await = Some(vec![]);
        let offer = pc
            .create_offer(Some(RTCOfferOptions {
                ice_restart: true,
                ..Default::default()
            }))
            .await?;
        pc.set_local_description(offer).await?;
        local_sdp(&pc).await
    }

    pub async fn close(&self) {
        self.shutdown(true).await;
    }

    async fn shutdown(&self, notify: bool) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        self.cancel.cancel();
        for t in &self.tracks {
            t.route.store(None);
            t.send_up(UpCtl::RemoveDown(t.id));
        }
        let pc = lock(&self.pc).take();
        if let Some(pc) = pc
            && let Err(e) = pc.close().await
        {
            tracing::debug!(stream = %self.id, "closing down connection: {e}");
        }
        lock(&self.shared.downs).remove(&self.id);
        tracing::debug!(stream = %self.id, "down stream closed");
        let mut events = lock(&self.events);
        if let Some(sink) = events.take()
            && notify
        {
            sink(MediaEvent::Closed);
        }
    }

    pub(crate) fn stats(&self) -> DownStreamStats {
        let now = Instant::now();
        DownStreamStats {
            id: self.id,
            up: self.up_id,
            tracks: self
                .tracks
                .iter()
                .map(|t| t.rate.snapshot(t.kind, t.codec, now))
                .collect(),
        }
    }
}

async fn local_sdp(pc: &RTCPeerConnection) -> Result<String, MediaError> {
    Ok(pc
        .local_description()
        .await
        .ok_or_else(|| MediaError::Internal("no local description".to_owned()))?
        .sdp)
}
