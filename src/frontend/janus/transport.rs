//! Where Janus messages go: the WebSocket a session was created on, or the queue an HTTP
//! client drains with long polls. Both are bounded: a client that does not read its
//! messages loses its session instead of growing the server's memory.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

/// Messages a WebSocket may have waiting to be written.
pub const OUTBOX_CAPACITY: usize = 1024;
/// Events an HTTP session may have waiting for a long poll.
pub const HTTP_QUEUE_CAPACITY: usize = 1024;

/// The sending side of a WebSocket connection.
#[derive(Clone)]
pub struct Outbox(pub mpsc::Sender<String>);

impl Outbox {
    /// Queues a message; false if the socket is gone or not keeping up.
    pub fn push(&self, message: &Value) -> bool {
        self.0.try_send(message.to_string()).is_ok()
    }
}

/// The events of a session created over HTTP, waiting for a long poll.
#[derive(Default)]
pub struct HttpQueue {
    events: Mutex<VecDeque<Value>>,
    ready: Notify,
}

impl HttpQueue {
    /// Queues an event; false if the queue is full (nobody polls).
    pub fn push(&self, event: Value) -> bool {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= HTTP_QUEUE_CAPACITY {
            return false;
        }
        events.push_back(event);
        drop(events);
        self.ready.notify_waiters();
        true
    }

    /// Up to `max` events, waiting at most `wait` for the first.
    pub async fn poll(&self, max: usize, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Registered before looking, so an event pushed in between wakes us.
            notified.as_mut().enable();
            let events = self.take(max);
            if !events.is_empty() {
                return events;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return vec![];
            }
        }
    }

    /// Up to `max` (at least one) of the events queued now, without waiting.
    pub fn take(&self, max: usize) -> Vec<Value> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let n = max.max(1).min(events.len());
        events.drain(..n).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// Where a session's asynchronous messages go.
pub enum Output {
    Socket(Outbox),
    Http(std::sync::Arc<HttpQueue>),
}

impl Output {
    /// Sends a message; false if the client takes no more.
    pub fn push(&self, message: Value) -> bool {
        match self {
            Output::Socket(outbox) => outbox.push(&message),
            Output::Http(queue) => queue.push(message),
        }
    }
}

/// Where the reply to one request goes.
pub enum Reply {
    Socket(Outbox),
    Http(oneshot::Sender<Value>),
}

impl Reply {
    pub fn send(self, message: Value) {
        match self {
            // A socket that is gone or full loses its session elsewhere.
            Reply::Socket(outbox) => {
                outbox.push(&message);
            }
            Reply::Http(sender) => {
                let _ = sender.send(message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn long_polls_get_what_is_queued_or_wait() {
        let queue = std::sync::Arc::new(HttpQueue::default());
        assert!(queue.poll(1, Duration::from_millis(20)).await.is_empty());
        for n in 0..3 {
            assert!(queue.push(json!(n)));
        }
        assert_eq!(queue.poll(2, Duration::ZERO).await, [json!(0), json!(1)]);
        assert_eq!(queue.poll(5, Duration::ZERO).await, [json!(2)]);
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.poll(1, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.push(json!("late"));
        assert_eq!(waiting.await.unwrap(), [json!("late")]);
        for n in 0..HTTP_QUEUE_CAPACITY {
            assert!(queue.push(json!(n)));
        }
        assert!(
            !queue.push(json!("too many")),
            "a queue nobody polls is bounded"
        );
    }
}
