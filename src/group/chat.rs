//! Chat messages and the bounded history replayed to newcomers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::name::ClientId;

/// How many broadcast messages a group remembers.
pub const HISTORY_LENGTH: usize = 50;

/// A chat message as the core stores and delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    /// Server-assigned unless the client gave one.
    pub id: String,
    pub source: Option<ClientId>,
    pub username: Option<String>,
    /// Set for private messages.
    pub dest: Option<ClientId>,
    pub privileged: bool,
    pub time: SystemTime,
    /// `""`, `"me"` or `"caption"`.
    pub kind: String,
    pub value: serde_json::Value,
    pub noecho: bool,
}

/// The last [`HISTORY_LENGTH`] broadcast messages, younger than the group's history age.
#[derive(Debug, Default)]
pub struct ChatHistory {
    entries: VecDeque<Arc<ChatMessage>>,
}

/// Which messages a `clearchat` removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClearChat {
    All,
    FromUser(ClientId),
    One { id: String, user: Option<ClientId> },
}

impl ChatHistory {
    pub fn push(&mut self, message: Arc<ChatMessage>) {
        if self.entries.len() == HISTORY_LENGTH {
            self.entries.pop_front();
        }
        self.entries.push_back(message);
    }

    /// Drops messages older than `max_age` at `now`.
    pub fn prune(&mut self, now: SystemTime, max_age: Duration) {
        self.entries.retain(|m| {
            now.duration_since(m.time)
                .map(|age| age <= max_age)
                .unwrap_or(true)
        });
    }

    pub fn snapshot(&self) -> Vec<Arc<ChatMessage>> {
        self.entries.iter().cloned().collect()
    }

    pub fn clear(&mut self, which: &ClearChat) {
        match which {
            ClearChat::All => self.entries.clear(),
            ClearChat::FromUser(user) => self.entries.retain(|m| m.source.as_ref() != Some(user)),
            ClearChat::One { id, user } => self.entries.retain(|m| {
                !(m.id == *id && user.as_ref().is_none_or(|u| m.source.as_ref() == Some(u)))
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, from: &str, time: SystemTime) -> Arc<ChatMessage> {
        Arc::new(ChatMessage {
            id: id.into(),
            source: ClientId::new(from),
            username: Some(from.into()),
            dest: None,
            privileged: false,
            time,
            kind: String::new(),
            value: serde_json::json!("hi"),
            noecho: false,
        })
    }

    #[test]
    fn keeps_the_last_fifty() {
        let mut h = ChatHistory::default();
        let now = SystemTime::now();
        for i in 0..60 {
            h.push(message(&i.to_string(), "a", now));
        }
        let ids: Vec<_> = h.snapshot().iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids.len(), HISTORY_LENGTH);
        assert_eq!(ids[0], "10");
        assert_eq!(ids[49], "59");
    }

    #[test]
    fn prunes_by_age() {
        let mut h = ChatHistory::default();
        let now = SystemTime::now();
        h.push(message("old", "a", now - Duration::from_secs(120)));
        h.push(message("new", "a", now - Duration::from_secs(10)));
        h.prune(now, Duration::from_secs(60));
        assert_eq!(h.snapshot()[0].id, "new");
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn clears_by_user_and_id() {
        let mut h = ChatHistory::default();
        let now = SystemTime::now();
        h.push(message("1", "a", now));
        h.push(message("2", "b", now));
        h.push(message("3", "a", now));
        h.clear(&ClearChat::One {
            id: "2".into(),
            user: ClientId::new("a"),
        });
        assert_eq!(h.len(), 3, "id 2 is not a's");
        h.clear(&ClearChat::One {
            id: "2".into(),
            user: None,
        });
        assert_eq!(h.len(), 2);
        h.clear(&ClearChat::FromUser(ClientId::new("a").unwrap()));
        assert!(h.is_empty());
        h.push(message("4", "b", now));
        h.clear(&ClearChat::All);
        assert!(h.is_empty());
    }
}
