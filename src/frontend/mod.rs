//! Signalling frontends: each translates one wire protocol into calls on the group core
//! and the core's events back into its wire format. No frontend imports another.

pub mod calling;
pub mod galene;
pub mod gstreamer;
pub mod janus;
pub mod room_signals;

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::group::{Registry, RoomPolicy};
use warp::ws::{Message as Frame, WebSocket};

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
    /// Which rooms Janus clients may join or create (`--janus-rooms`).
    pub janus_rooms: RoomPolicy,
    /// What Janus connections share: the sessions and the token key.
    pub janus: janus::Janus,
    /// Which rooms Room Signals apps may join or create (`--room-signals-rooms`).
    pub room_signals_rooms: RoomPolicy,
    /// The Room Signals rooms: their types and their sessions' roles.
    pub room_signals: room_signals::Hub,
}

/// A peer that does not take a frame within this time is given up on.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Ends a WebSocket session: a close frame with `code` and `reason`, then the socket
/// closes; a peer that reads nothing cannot hold the connection open.
pub async fn close_websocket(socket: &mut WebSocket, code: u16, reason: String) {
    let frame = Frame::close_with(code, truncate_reason(reason));
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(frame)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
}

/// Whether a WebSocket read failed because the peer sent a message larger than
/// [`MAX_MESSAGE_SIZE`]: the connection then closes with 1009 ("message too big").
pub fn message_too_big(error: &warp::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("Space limit") || text.contains("size")
}

/// A close frame's reason holds at most 123 bytes (RFC 6455).
fn truncate_reason(mut reason: String) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    reason
}

#[cfg(test)]
mod tests {
    use super::truncate_reason;

    #[test]
    fn close_reasons_fit_a_frame() {
        assert_eq!(truncate_reason("é".repeat(100)).len(), 122);
        assert_eq!(truncate_reason("short".into()), "short");
    }
}
