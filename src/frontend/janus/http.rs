//! Janus's HTTP transport on `/janus`, as janus.js uses it: `POST /janus` creates a
//! session, `POST /janus/<session>[/<handle>]` sends a request (its synchronous reply is
//! the response), and `GET /janus/<session>?maxev=N` long-polls for up to 30 seconds for
//! the session's events (a `keepalive` when there were none). A session that times out
//! tells the long poll waiting then, as Janus's transport does, or else the next one
//! within `ENDED_GRACE` (where Janus would have dropped it). `GET /janus/info` says what
//! the server is. Every answer is JSON; Janus errors are JSON with status 200, as in Janus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::protocol::{self, ApiError, code};
use super::transport::Reply;
use super::{Origin, Polled, route};
use crate::frontend::Context;

/// How long a long poll waits for an event.
const LONG_POLL: Duration = Duration::from_secs(30);
/// Events one long poll may return at most.
const MAX_EVENTS: usize = 64;
/// How long a request's synchronous reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP answer: status and JSON body.
pub struct HttpAnswer {
    pub status: u16,
    pub body: Value,
}

impl HttpAnswer {
    fn ok(body: Value) -> Self {
        HttpAnswer { status: 200, body }
    }
}

/// `GET /janus/info`.
pub fn info(ctx: &Context) -> HttpAnswer {
    HttpAnswer::ok(protocol::server_info(
        None,
        super::session::session_timeout(ctx),
    ))
}

/// `POST /janus[/<session>[/<handle>]]` with a request in the body. The path's ids, when
/// given, are the request's.
pub async fn post(
    ctx: &Arc<Context>,
    path: &str,
    body: &[u8],
    address: Option<SocketAddr>,
) -> HttpAnswer {
    let Some((session, handle)) = ids(path) else {
        return not_found(path);
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return HttpAnswer::ok(
            ApiError::new(code::INVALID_JSON, "Invalid JSON: the body is not UTF-8").to_json(),
        );
    };
    let mut envelope = match protocol::parse(text) {
        Ok(envelope) => envelope,
        Err(error) => return HttpAnswer::ok(error.to_json()),
    };
    // The path's ids stand in for the body's, as in Janus's HTTP transport.
    if session.is_some() {
        envelope.session = session;
    }
    if handle.is_some() {
        envelope.handle = handle;
        envelope.bad_handle = false;
    }
    let (sender, receiver) = oneshot::channel();
    let transaction = envelope.transaction.clone();
    route(ctx, envelope, Reply::Http(sender), address, Origin::Http).await;
    match tokio::time::timeout(REPLY_TIMEOUT, receiver).await {
        Ok(Ok(reply)) => HttpAnswer::ok(reply),
        _ => {
            let mut error = ApiError::new(code::UNKNOWN, "No reply from the session");
            error.transaction = Some(transaction);
            error.session = session;
            HttpAnswer::ok(error.to_json())
        }
    }
}

/// `GET /janus/<session>?maxev=N`: the session's events, waiting up to 30 s for the first.
/// With `maxev` above 1 the answer is a list.
pub async fn get(ctx: &Arc<Context>, path: &str, maxev: Option<usize>) -> HttpAnswer {
    let session = match ids(path) {
        Some((Some(session), None)) => session,
        Some((None, None)) => {
            return HttpAnswer::ok(
                ApiError::new(code::INVALID_REQUEST_PATH, "Unhandled GET at this path").to_json(),
            );
        }
        _ => return not_found(path),
    };
    let max = maxev.unwrap_or(1).clamp(1, MAX_EVENTS);
    let mut events = match ctx.janus.sessions.poll(session, max) {
        Polled::Gone => {
            let mut error = ApiError::new(
                code::SESSION_NOT_FOUND,
                format!("No such session {session}"),
            );
            error.session = Some(session);
            return HttpAnswer::ok(error.to_json());
        }
        Polled::Socket => {
            let mut error = ApiError::new(
                code::INVALID_REQUEST_PATH,
                "This session's events go to the WebSocket it was created on",
            );
            error.session = Some(session);
            return HttpAnswer::ok(error.to_json());
        }
        Polled::Ended(events) => events,
        Polled::Live(queue) => queue.poll(max, LONG_POLL).await,
    };
    if events.is_empty() {
        events.push(json!({"janus": "keepalive"}));
    }
    if max == 1 {
        HttpAnswer::ok(events.swap_remove(0))
    } else {
        HttpAnswer::ok(Value::Array(events))
    }
}

/// The session and handle ids in a path below `/janus` (`""`, `"S"`, `"S/H"`).
fn ids(path: &str) -> Option<(Option<u64>, Option<u64>)> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let parse = |p: &str| p.parse::<u64>().ok().filter(|&n| n > 0);
    let session = match parts.next() {
        None => return Some((None, None)),
        Some(p) => Some(parse(p)?),
    };
    let handle = match parts.next() {
        None => None,
        Some(p) => Some(parse(p)?),
    };
    parts.next().is_none().then_some((session, handle))
}

fn not_found(path: &str) -> HttpAnswer {
    HttpAnswer {
        status: 404,
        body: ApiError::new(
            code::INVALID_REQUEST_PATH,
            format!("No Janus resource at /janus/{path}"),
        )
        .to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::ids;

    #[test]
    fn paths() {
        assert_eq!(ids(""), Some((None, None)));
        assert_eq!(ids("12"), Some((Some(12), None)));
        assert_eq!(ids("12/34"), Some((Some(12), Some(34))));
        assert_eq!(ids("12/34/56"), None);
        assert_eq!(ids("abc"), None);
        assert_eq!(ids("0"), None);
    }
}
