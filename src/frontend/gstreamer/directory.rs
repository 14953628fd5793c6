//! The peers registered with `HELLO`, shared by every `/gst` connection: who is there,
//! who is in a session with whom, who is in a room.
//!
//! Messages between peers travel through the receiver's core event queue
//! ([`ClientHandle::send`] with [`Event::Signal`]), so that a session's messages and its end
//! reach the other side in order. Each peer has a backlog budget: a sender may not pile up
//! more than [`MAX_BACKLOG`] (counted in bytes plus a per-message overhead) for a peer that
//! does not read, so no sender can make the server's memory grow or get a peer cut off.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::group::{ClientHandle, ClientId, Event};

/// What a receiver may have waiting in its queue, from all senders together.
pub const MAX_BACKLOG: usize = 4 << 20;
/// The cost of a message beyond its bytes: many small messages count too.
const MESSAGE_COST: usize = 1024;

/// The protocol name carried by our signals; others' are ignored.
pub const PROTOCOL: &str = "gstreamer";

/// Where a registered peer stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Registered, free to start a session or join a room.
    Idle,
    /// In a 1-1 session with that peer: everything is relayed.
    Session(ClientId),
    /// In (or joining) that room.
    Room(String),
    /// The other side of its session left: the connection is closing.
    Ended,
}

/// Why a session could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    NotFound,
    Yourself,
    Busy,
    /// The caller is no longer idle (someone started a session with it meanwhile).
    NotIdle,
}

/// Why a message was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayError {
    /// The receiver is gone or its session is over.
    Gone,
    /// The receiver has too much waiting already.
    Backlogged,
}

struct Entry {
    handle: ClientHandle,
    state: State,
    backlog: Arc<Backlog>,
}

/// What is waiting for one peer, in cost units (see [`MAX_BACKLOG`]).
#[derive(Debug, Default)]
pub struct Backlog(AtomicUsize);

impl Backlog {
    fn cost(bytes: usize) -> usize {
        bytes.saturating_add(MESSAGE_COST)
    }

    /// Books room for a message of `bytes`, unless that would pass the budget.
    fn reserve(&self, bytes: usize) -> bool {
        let cost = Backlog::cost(bytes);
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                let after = held.checked_add(cost)?;
                (after <= MAX_BACKLOG).then_some(after)
            })
            .is_ok()
    }

    /// Gives back what a message of `bytes` booked, once it is delivered (or lost).
    pub fn release(&self, bytes: usize) {
        let cost = Backlog::cost(bytes);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(cost))
            });
    }
}

/// The registered peers, by uid (unique server-wide).
#[derive(Default)]
pub struct Peers {
    entries: Mutex<HashMap<ClientId, Entry>>,
}

impl Peers {
    fn lock(&self) -> MutexGuard<'_, HashMap<ClientId, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a peer under its handle's id; `None` if the uid is taken.
    pub fn register(&self, handle: &ClientHandle) -> Option<Arc<Backlog>> {
        match self.lock().entry(handle.id().clone()) {
            Slot::Occupied(_) => None,
            Slot::Vacant(slot) => {
                let backlog = Arc::new(Backlog::default());
                slot.insert(Entry {
                    handle: handle.clone(),
                    state: State::Idle,
                    backlog: backlog.clone(),
                });
                Some(backlog)
            }
        }
    }

    /// Removes a peer. If it was in a session, the other side's session is over: its
    /// handle is returned so that it can be told.
    pub fn unregister(&self, handle: &ClientHandle) -> Option<ClientHandle> {
        let mut entries = self.lock();
        let me = handle.id();
        if !entries.get(me).is_some_and(|e| e.handle.same(handle)) {
            return None;
        }
        let entry = entries.remove(me)?;
        let State::Session(other) = entry.state else {
            return None;
        };
        let other = entries.get_mut(&other)?;
        if other.state != State::Session(me.clone()) {
            return None;
        }
        other.state = State::Ended;
        Some(other.handle.clone())
    }

    pub fn is_registered(&self, uid: &str) -> bool {
        ClientId::new(uid).is_some_and(|id| self.lock().contains_key(&id))
    }

    /// A peer's state; `Ended` once it is no longer registered.
    pub fn state(&self, me: &ClientId) -> State {
        self.lock()
            .get(me)
            .map_or(State::Ended, |e| e.state.clone())
    }

    /// Starts a session between an idle caller and an idle callee.
    pub fn start_session(&self, me: &ClientId, callee: &str) -> Result<(), SessionError> {
        let mut entries = self.lock();
        if entries.get(me).map(|e| &e.state) != Some(&State::Idle) {
            return Err(SessionError::NotIdle);
        }
        let callee = ClientId::new(callee).ok_or(SessionError::NotFound)?;
        if &callee == me {
            return Err(SessionError::Yourself);
        }
        let other = entries.get_mut(&callee).ok_or(SessionError::NotFound)?;
        if other.state != State::Idle {
            return Err(SessionError::Busy);
        }
        other.state = State::Session(me.clone());
        if let Some(mine) = entries.get_mut(me) {
            mine.state = State::Session(callee);
        }
        Ok(())
    }

    /// Marks an idle peer as in `room`; `false` if it is no longer idle.
    pub fn enter_room(&self, me: &ClientId, room: &str) -> bool {
        match self.lock().get_mut(me) {
            Some(entry) if entry.state == State::Idle => {
                entry.state = State::Room(room.to_owned());
                true
            }
            _ => false,
        }
    }

    /// Makes a peer whose room join failed idle again.
    pub fn leave_room(&self, me: &ClientId) {
        if let Some(entry) = self.lock().get_mut(me)
            && matches!(entry.state, State::Room(_))
        {
            entry.state = State::Idle;
        }
    }

    /// Relays a message to the other side of `me`'s session, verbatim.
    pub fn relay_in_session(&self, me: &ClientId, payload: &str) -> Result<(), RelayError> {
        let entries = self.lock();
        let Some(State::Session(other)) = entries.get(me).map(|e| &e.state) else {
            return Err(RelayError::Gone);
        };
        let other = entries.get(other).ok_or(RelayError::Gone)?;
        if !other.backlog.reserve(payload.len()) {
            return Err(RelayError::Backlogged);
        }
        other.handle.send(Event::Signal {
            from: me.clone(),
            username: me.to_string(),
            protocol: PROTOCOL,
            payload: payload.into(),
        });
        Ok(())
    }

    /// Books room in `dest`'s backlog for a room message sent through the core; the
    /// receiver releases it when it delivers the message.
    pub fn reserve(&self, dest: &ClientId, bytes: usize) -> Result<Arc<Backlog>, RelayError> {
        let entries = self.lock();
        let entry = entries.get(dest).ok_or(RelayError::Gone)?;
        if !entry.backlog.reserve(bytes) {
            return Err(RelayError::Backlogged);
        }
        Ok(entry.backlog.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{ClientInfo, EventQueue};

    fn peer(id: &str) -> (ClientHandle, EventQueue) {
        ClientHandle::new(ClientInfo {
            id: ClientId::new(id).unwrap(),
            protocol: PROTOCOL,
            address: None,
            chats: false,
        })
    }

    fn id(s: &str) -> ClientId {
        ClientId::new(s).unwrap()
    }

    #[test]
    fn uids_are_unique_until_unregistered() {
        let peers = Peers::default();
        let (a, _qa) = peer("a");
        let (a2, _qa2) = peer("a");
        assert!(peers.register(&a).is_some());
        assert!(peers.register(&a2).is_none());
        // Only the owner of the entry removes it.
        peers.unregister(&a2);
        assert!(peers.is_registered("a"));
        peers.unregister(&a);
        assert!(!peers.is_registered("a"));
        assert!(peers.register(&a2).is_some());
    }

    #[test]
    fn sessions_pair_two_idle_peers() {
        let peers = Peers::default();
        let (a, _qa) = peer("a");
        let (b, mut qb) = peer("b");
        let (c, _qc) = peer("c");
        for p in [&a, &b, &c] {
            peers.register(p);
        }
        assert_eq!(
            peers.start_session(&id("a"), "zz"),
            Err(SessionError::NotFound)
        );
        assert_eq!(
            peers.start_session(&id("a"), "a"),
            Err(SessionError::Yourself)
        );
        assert_eq!(peers.start_session(&id("a"), "b"), Ok(()));
        assert_eq!(peers.state(&id("b")), State::Session(id("a")));
        assert_eq!(peers.start_session(&id("c"), "b"), Err(SessionError::Busy));
        assert_eq!(
            peers.start_session(&id("b"), "c"),
            Err(SessionError::NotIdle)
        );

        peers.relay_in_session(&id("a"), "hi").unwrap();
        let Some(Event::Signal { from, payload, .. }) = qb.try_recv() else {
            panic!("no signal");
        };
        assert_eq!((from.as_str(), &*payload), ("a", "hi"));

        // When a leaves, b's session is over and b is to be told.
        let told = peers.unregister(&a).expect("b is told");
        assert!(told.same(&b));
        assert_eq!(peers.state(&id("b")), State::Ended);
        assert_eq!(peers.relay_in_session(&id("b"), "x"), Err(RelayError::Gone));
        assert!(peers.unregister(&b).is_none());
    }

    #[test]
    fn rooms_make_peers_busy() {
        let peers = Peers::default();
        let (a, _qa) = peer("a");
        let (b, _qb) = peer("b");
        peers.register(&a);
        peers.register(&b);
        assert!(peers.enter_room(&id("a"), "r"));
        assert!(!peers.enter_room(&id("a"), "r"));
        assert_eq!(peers.start_session(&id("b"), "a"), Err(SessionError::Busy));
        peers.leave_room(&id("a"));
        assert_eq!(peers.state(&id("a")), State::Idle);
    }

    #[test]
    fn a_backlog_has_a_budget() {
        let peers = Peers::default();
        let (a, _qa) = peer("a");
        let (b, _qb) = peer("b");
        peers.register(&a);
        let backlog = peers.register(&b).unwrap();
        peers.start_session(&id("a"), "b").unwrap();
        let big = "x".repeat(1 << 20);
        for _ in 0..3 {
            peers.relay_in_session(&id("a"), &big).unwrap();
        }
        assert_eq!(
            peers.relay_in_session(&id("a"), &big),
            Err(RelayError::Backlogged)
        );
        // Small messages count too.
        while peers.relay_in_session(&id("a"), "").is_ok() {}
        backlog.release(big.len());
        peers.relay_in_session(&id("a"), &big).unwrap();
        assert!(peers.reserve(&id("b"), 1).is_err());
        // Releasing more than was booked does not wrap around.
        for _ in 0..10_000 {
            backlog.release(1 << 20);
        }
        assert!(peers.reserve(&id("b"), 1).is_ok());
    }
}
