//! When to ping a connection and when to give up on it, as plain data with time passed in.
//!
//! Like the released server: a WebSocket ping after 30 s without a frame from the client,
//! again every 30 s, and the connection is dropped when a fourth would be due (three
//! missed pongs). A client may also ask for `{"type":"ping"}` messages after `time` ms
//! without traffic either way (`remote_ping`), and to be dropped after `time` ms without
//! a message from it (`remote_timeout`).

use std::time::{Duration, Instant};

const WS_PING_EVERY: Duration = Duration::from_secs(30);
const WS_MISSED_PONGS: u32 = 3;

/// What is due now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    WsPing,
    /// A `{"type":"ping"}` message (`remote_ping`).
    Ping,
    Close(&'static str),
}

#[derive(Debug)]
pub struct Liveness {
    last_read: Instant,
    last_activity: Instant,
    missed: u32,
    ping_every: Option<Duration>,
    timeout: Option<Duration>,
}

impl Liveness {
    pub fn new(now: Instant) -> Liveness {
        Liveness {
            last_read: now,
            last_activity: now,
            missed: 0,
            ping_every: None,
            timeout: None,
        }
    }

    /// A frame came from the client (pongs count).
    pub fn read(&mut self, now: Instant) {
        self.last_read = now;
        self.last_activity = now;
        self.missed = 0;
    }

    /// A message went to the client.
    pub fn sent(&mut self, now: Instant) {
        self.last_activity = now;
    }

    pub fn set_ping(&mut self, every: Duration) {
        self.ping_every = Some(every);
    }

    pub fn set_timeout(&mut self, after: Duration) {
        self.timeout = Some(after);
    }

    fn ws_deadline(&self) -> Instant {
        self.last_read + WS_PING_EVERY * (self.missed + 1)
    }

    /// When [`Liveness::due`] may next have something to say.
    pub fn next_check(&self) -> Instant {
        let mut next = self.ws_deadline();
        if let Some(timeout) = self.timeout {
            next = next.min(self.last_read + timeout);
        }
        if let Some(every) = self.ping_every {
            next = next.min(self.last_activity + every);
        }
        next
    }

    /// What is due at `now`; call again until it says `None`.
    pub fn due(&mut self, now: Instant) -> Option<Due> {
        if self.timeout.is_some_and(|t| now >= self.last_read + t) {
            return Some(Due::Close("No message within the remote timeout"));
        }
        if now >= self.ws_deadline() {
            if self.missed >= WS_MISSED_PONGS {
                return Some(Due::Close("No answer to pings"));
            }
            self.missed += 1;
            return Some(Due::WsPing);
        }
        if self
            .ping_every
            .is_some_and(|p| now >= self.last_activity + p)
        {
            self.last_activity = now;
            return Some(Due::Ping);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn websocket_pings_then_drop_after_three_missed() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert_eq!(l.due(t0 + s(29)), None);
        assert_eq!(l.next_check(), t0 + s(30));
        assert_eq!(l.due(t0 + s(30)), Some(Due::WsPing));
        assert_eq!(l.due(t0 + s(30)), None);
        assert_eq!(l.due(t0 + s(60)), Some(Due::WsPing));
        assert_eq!(l.due(t0 + s(90)), Some(Due::WsPing));
        assert!(matches!(l.due(t0 + s(120)), Some(Due::Close(_))));
        // A pong in time starts over.
        let mut l = Liveness::new(t0);
        assert_eq!(l.due(t0 + s(30)), Some(Due::WsPing));
        l.read(t0 + s(31));
        assert_eq!(l.due(t0 + s(60)), None);
        assert_eq!(l.next_check(), t0 + s(61));
    }

    #[test]
    fn remote_ping_after_silence_either_way() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.set_ping(s(5));
        assert_eq!(l.next_check(), t0 + s(5));
        l.sent(t0 + s(3));
        assert_eq!(l.due(t0 + s(5)), None);
        assert_eq!(l.due(t0 + s(8)), Some(Due::Ping));
        assert_eq!(l.due(t0 + s(8)), None);
        assert_eq!(l.next_check(), t0 + s(13));
    }

    #[test]
    fn remote_timeout_counts_only_what_the_client_sends() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.set_timeout(s(10));
        l.sent(t0 + s(9));
        assert!(matches!(l.due(t0 + s(10)), Some(Due::Close(_))));
        let mut l = Liveness::new(t0);
        l.set_timeout(s(10));
        l.read(t0 + s(9));
        assert_eq!(l.due(t0 + s(10)), None);
        assert_eq!(l.next_check(), t0 + s(19));
    }
}
