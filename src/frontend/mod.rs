//! Signalling frontends: each translates one wire protocol into calls on the group core
//! and the core's events back into its wire format. No frontend imports another.

pub mod calling;
pub mod galene;
pub mod gstreamer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::group::{Registry, RoomPolicy};

/// Largest WebSocket message any frontend accepts.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// What every frontend connection needs from the server.
pub struct Context {
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    /// Cancelled when the server shuts down: connections close.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to say goodbye.
    pub connections: TaskTracker,
    /// Which rooms GStreamer peers may join (`--gst-rooms`).
    pub gst_rooms: RoomPolicy,
    /// The peers registered on `/gst`, shared by its connections.
    pub gst_peers: gstreamer::Peers,
    /// Which rooms calling-signaling clients may join or create (`--calling-rooms`).
    pub calling_rooms: RoomPolicy,
    /// What calling-signaling connections share: namespaces and invitations.
    pub calling: calling::Hub,
}
