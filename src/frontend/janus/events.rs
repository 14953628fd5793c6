//! janus.plugin.sfu inside a session: what the group core tells the session's users
//! (people coming and going, media and data, blocks, kicks), as Janus events.

use std::sync::Arc;

use serde_json::json;

use super::plugin;
use super::session::{Session, Up, UserKey, jsep};
use super::users::Change;
use crate::group::{DataPayload, Direction, Event, MediaEvent};

impl Session {
    /// What the group core tells one of the session's users.
    pub async fn on_core_event(&mut self, key: UserKey, event: Event) {
        let Some(user) = self.users.get_mut(&key) else {
            return;
        };
        let changes = user.view.apply(&event);
        self.announce(&key, changes);
        match event {
            Event::StreamAdded(info) | Event::StreamChanged(info) => {
                self.refresh_subscribers(&key, &info.id).await;
            }
            Event::Media {
                id,
                direction,
                serial,
                event,
            } => self.on_media(&key, &id, direction, serial, event).await,
            Event::Data {
                from: _,
                label,
                payload,
            } => self.on_data(&key, label, payload).await,
            Event::Blocked { by, blocked } => {
                let name = if blocked { "blocked" } else { "unblocked" };
                let data = json!({"event": name, "by": by.as_str()});
                for handle in self.handles_of(&key) {
                    if self.handles.get(&handle).is_some_and(|h| h.notifications()) {
                        self.push(handle, data.clone(), None);
                    }
                }
            }
            Event::Kicked { reason, .. } | Event::Disconnect { reason } => {
                self.evict(&key, &reason);
            }
            Event::UpAborted { id, reason } => {
                let aborted = self.handles.values_mut().find(|h| {
                    h.joined.as_ref() == Some(&key)
                        && h.stream_id() == id
                        && matches!(h.up, Up::Published { .. })
                });
                if let Some(handle) = aborted {
                    handle.up = Up::None;
                    let handle = handle.id;
                    self.emit_handle_event("hangup", handle, json!({"reason": reason}));
                }
            }
            _ => {}
        }
    }

    /// `join` and `leave` events to the user's handles that want notifications.
    fn announce(&mut self, key: &UserKey, changes: Vec<Change>) {
        for change in changes {
            let data = match &change {
                Change::Joined(user) => plugin::presence("join", user.as_str(), key.0.as_str()),
                Change::Left(user) => plugin::presence("leave", user.as_str(), key.0.as_str()),
            };
            for handle in self.handles_of(key) {
                if self.handles.get(&handle).is_some_and(|h| h.notifications()) {
                    self.push(handle, data.clone(), None);
                }
            }
        }
    }

    /// The stream some handles receive gained tracks: they are filled and offered again.
    async fn refresh_subscribers(&mut self, key: &UserKey, stream_id: &str) {
        let watching: Vec<u64> = self
            .handles
            .values()
            .filter(|h| {
                h.joined.as_ref() == Some(key)
                    && h.down.as_ref().is_some_and(|d| d.stream_id == stream_id)
            })
            .map(|h| h.id)
            .collect();
        for handle in watching {
            let Some(user) = self.users.get(key) else {
                return;
            };
            let offer = match user.membership.refresh_down(stream_id).await {
                Ok(Some(_)) => user.membership.gathered_sdp(stream_id).await,
                Ok(None) => continue,
                Err(error) => Err(error),
            };
            match offer {
                Ok(sdp) => self.push(handle, json!({}), Some(jsep("offer", sdp))),
                Err(error) => {
                    tracing::debug!(session = self.id, handle, "cannot offer again: {error}");
                }
            }
        }
    }

    async fn on_media(
        &mut self,
        key: &UserKey,
        id: &str,
        direction: Direction,
        serial: u64,
        event: MediaEvent,
    ) {
        let found = self.handles.values().find(|h| {
            h.joined.as_ref() == Some(key)
                && match direction {
                    Direction::Up => {
                        h.stream_id() == id
                            && matches!(h.up, Up::Published { serial: s } if s == serial)
                    }
                    Direction::Down => h
                        .down
                        .as_ref()
                        .is_some_and(|d| d.stream_id == id && d.serial == serial),
                }
        });
        let Some(handle) = found.map(|h| h.id) else {
            return;
        };
        match event {
            MediaEvent::Data { label, payload } => {
                // Only a room member's channels speak to the room: a handle that joined
                // without `data` is no user the others know of.
                let member = self.handles.get(&handle).is_some_and(|h| h.member);
                if member
                    && let Some(user) = self.users.get(key)
                    && let Err(error) = user.membership.send_data(None, Some(label), payload)
                {
                    tracing::debug!(session = self.id, handle, "data not relayed: {error}");
                }
            }
            MediaEvent::Failed => {
                self.close_connection(handle);
                self.emit_handle_event("hangup", handle, json!({"reason": "ICE failed"}));
            }
            MediaEvent::Closed => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    match direction {
                        Direction::Up => h.up = Up::None,
                        Direction::Down => h.down = None,
                    }
                }
                self.emit_handle_event("hangup", handle, json!({"reason": "Close PC"}));
            }
            other => self.connection_event(handle, other),
        }
    }

    /// A data message for one of the session's users.
    async fn on_data(&mut self, key: &UserKey, label: Option<Arc<str>>, payload: DataPayload) {
        let handles = self.handles_of(key);
        match label {
            // From another member's data channel: onto this user's channel of that label.
            Some(label) => {
                for handle in handles {
                    let Some(h) = self.handles.get(&handle) else {
                        continue;
                    };
                    if !h.member || !matches!(h.up, Up::Published { .. }) {
                        continue;
                    }
                    let stream_id = h.stream_id();
                    let Some(user) = self.users.get(key) else {
                        return;
                    };
                    if let Err(error) = user
                        .membership
                        .write_data(&stream_id, &label, &payload)
                        .await
                    {
                        tracing::debug!(session = self.id, handle, "data not delivered: {error}");
                    }
                }
            }
            // From a `data` message: an event to the handles that subscribed to data.
            None => {
                let DataPayload::Text(body) = payload else {
                    return;
                };
                let data = json!({"event": "data", "body": &*body});
                for handle in handles {
                    if self.handles.get(&handle).is_some_and(|h| h.wants_data()) {
                        self.push(handle, data.clone(), None);
                    }
                }
            }
        }
    }

    /// The user was removed from its room (kicked, or the server is closing): its handles
    /// hang up and are detached.
    fn evict(&mut self, key: &UserKey, reason: &str) {
        tracing::debug!(session = self.id, user = %key.1, room = %key.0, reason, "Janus user removed");
        for handle in self.handles_of(key) {
            if self.close_connection(handle) {
                self.emit_handle_event("hangup", handle, json!({"reason": reason}));
            }
            self.handles.remove(&handle);
            self.emit_handle_event("detached", handle, json!({}));
        }
        self.users.remove(key);
    }
}
