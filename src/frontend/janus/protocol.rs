//! The Janus core protocol: requests as clients send them (`create`, `attach`, `message`,
//! `trickle`, ...), validated in the order Janus validates them, and the messages Janus
//! sends back (`success`, `ack`, `error`, `event`, ...), with its numeric error codes.

use serde_json::{Map, Value, json};

use crate::group::end_of_candidates;

/// Janus's API error codes (janus/apierror.h) that this server uses.
pub mod code {
    pub const UNKNOWN: u16 = 490;
    pub const UNKNOWN_REQUEST: u16 = 453;
    pub const INVALID_JSON: u16 = 454;
    pub const INVALID_JSON_OBJECT: u16 = 455;
    pub const MISSING_MANDATORY_ELEMENT: u16 = 456;
    pub const INVALID_REQUEST_PATH: u16 = 457;
    pub const SESSION_NOT_FOUND: u16 = 458;
    pub const HANDLE_NOT_FOUND: u16 = 459;
    pub const PLUGIN_NOT_FOUND: u16 = 460;
    pub const PLUGIN_ATTACH: u16 = 461;
    pub const JSEP_UNKNOWN_TYPE: u16 = 464;
    pub const JSEP_INVALID_SDP: u16 = 465;
    pub const INVALID_ELEMENT_TYPE: u16 = 467;
    pub const SESSION_CONFLICT: u16 = 468;
    pub const NOT_ACCEPTING_SESSIONS: u16 = 472;
}

/// The only plugin this server offers.
pub const PLUGIN: &str = "janus.plugin.sfu";

/// A request that Janus answers with an `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    /// The request's transaction, when it had a valid one.
    pub transaction: Option<String>,
    /// The session named in the request, when there was one.
    pub session: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            transaction: None,
            session: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut message = Map::new();
        message.insert("janus".into(), "error".into());
        if let Some(session) = self.session {
            message.insert("session_id".into(), session.into());
        }
        if let Some(transaction) = &self.transaction {
            message.insert("transaction".into(), transaction.clone().into());
        }
        message.insert(
            "error".into(),
            json!({"code": self.code, "reason": self.reason}),
        );
        Value::Object(message)
    }
}

/// The fields every request has, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub janus: String,
    pub transaction: String,
    /// `session_id` when a positive integer: Janus treats any other value as absent.
    pub session: Option<u64>,
    /// `handle_id` when a positive integer.
    pub handle: Option<u64>,
    /// A `handle_id` that is there but not a positive integer: on a session's path, Janus
    /// answers it 459 (without a session, the request is the root's, as without one).
    pub bad_handle: bool,
    pub body: Map<String, Value>,
}

/// Parses a request's text: invalid JSON is 454; a request without a string
/// `transaction` and `janus` is 456 or 467, answered without a transaction, as Janus does.
pub fn parse(text: &str) -> Result<Envelope, ApiError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::new(code::INVALID_JSON, format!("Invalid JSON: {e}")))?;
    envelope(value)
}

/// Validates an already parsed request.
pub fn envelope(value: Value) -> Result<Envelope, ApiError> {
    let Value::Object(body) = value else {
        return Err(ApiError::new(
            code::INVALID_JSON_OBJECT,
            "Invalid JSON object: the request is not an object",
        ));
    };
    let id = |name: &str| body.get(name).and_then(Value::as_u64).filter(|&n| n > 0);
    let (session, handle) = (id("session_id"), id("handle_id"));
    let bad_handle = handle.is_none() && body.get("handle_id").is_some_and(|h| !h.is_null());
    let with_session = |mut e: ApiError| {
        e.session = session;
        e
    };
    // Checked in Janus's order, all before the request's path is looked at.
    let transaction = required_string(&body, "transaction").map_err(with_session)?;
    let janus = required_string(&body, "janus").map_err(with_session)?;
    if body.get("id").is_some_and(|id| id.as_u64().is_none()) {
        return Err(with_session(ApiError::new(
            code::INVALID_ELEMENT_TYPE,
            "Invalid element type (id should be a positive integer)",
        )));
    }
    Ok(Envelope {
        janus,
        transaction,
        session,
        handle,
        bad_handle,
        body,
    })
}

/// A mandatory string element, with Janus's error texts.
pub fn required_string(object: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match object.get(name) {
        None => Err(ApiError::new(
            code::MISSING_MANDATORY_ELEMENT,
            format!("Missing mandatory element ({name})"),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::new(
            code::INVALID_ELEMENT_TYPE,
            format!("Invalid element type ({name} should be a string)"),
        )),
    }
}

impl Envelope {
    /// An error in reply to this request.
    pub fn error(&self, code: u16, reason: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.into(),
            transaction: Some(self.transaction.clone()),
            session: self.session,
        }
    }

    /// Attaches this request's transaction and session to an error found in its body.
    pub fn annotate(&self, mut error: ApiError) -> ApiError {
        error.transaction = Some(self.transaction.clone());
        error.session = self.session;
        error
    }

    /// A reply of type `kind` (`success`, `ack`, ...) to this request.
    pub fn reply(&self, kind: &str) -> Map<String, Value> {
        let mut message = Map::new();
        message.insert("janus".into(), kind.into());
        if let Some(session) = self.session {
            message.insert("session_id".into(), session.into());
        }
        message.insert("transaction".into(), self.transaction.clone().into());
        message
    }
}

/// A JSEP (`{"type": "offer"|"answer", "sdp": ...}`) attached to a `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jsep {
    Offer(String),
    Answer(String),
}

/// The `message` request's `body` (an object) and optional `jsep`, with Janus's checks.
pub fn message_parts(envelope: &Envelope) -> Result<(Map<String, Value>, Option<Jsep>), ApiError> {
    let body = match envelope.body.get("body") {
        None => {
            return Err(envelope.error(
                code::MISSING_MANDATORY_ELEMENT,
                "Missing mandatory element (body)",
            ));
        }
        Some(Value::Object(body)) => body.clone(),
        Some(_) => {
            return Err(envelope.error(
                code::INVALID_ELEMENT_TYPE,
                "Invalid element type (body should be an object)",
            ));
        }
    };
    let jsep = match envelope.body.get("jsep") {
        None | Some(Value::Null) => None,
        Some(Value::Object(jsep)) => {
            let field = |name: &str| match jsep.get(name) {
                None => Err(envelope.error(
                    code::MISSING_MANDATORY_ELEMENT,
                    format!("JSEP error: missing mandatory element ({name})"),
                )),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(envelope.error(
                    code::INVALID_ELEMENT_TYPE,
                    format!("JSEP error: invalid element type ({name} should be a string)"),
                )),
            };
            let kind = field("type")?;
            let sdp = field("sdp")?;
            match kind.to_ascii_lowercase().as_str() {
                "offer" => Some(Jsep::Offer(sdp)),
                "answer" => Some(Jsep::Answer(sdp)),
                _ => {
                    return Err(envelope.error(
                        code::JSEP_UNKNOWN_TYPE,
                        format!("JSEP error: unknown message type '{kind}'"),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(envelope.error(code::INVALID_JSON_OBJECT, "Invalid jsep object"));
        }
    };
    Ok((body, jsep))
}

/// Parses a `trickle` request's `candidate` or `candidates`, with Janus's checks, into
/// the candidates for the media layer, in order: `RTCIceCandidateInit` objects, and
/// [`end_of_candidates`] where the client said it has no more (`{"completed": true}` or
/// `null`).
pub fn trickle(envelope: &Envelope) -> Result<Vec<Value>, ApiError> {
    let candidate = envelope.body.get("candidate");
    let candidates = envelope.body.get("candidates");
    let media = |checked: Option<Value>| checked.unwrap_or_else(end_of_candidates);
    match (candidate, candidates) {
        (None, None) => Err(envelope.error(
            code::MISSING_MANDATORY_ELEMENT,
            "Missing mandatory element (candidate|candidates)",
        )),
        (Some(_), Some(_)) => Err(envelope.error(
            code::INVALID_JSON,
            "Can't have both candidate and candidates",
        )),
        (Some(candidate), None) => match check_candidate(candidate) {
            Ok(checked) => Ok(vec![media(checked)]),
            Err((code, reason)) => Err(envelope.error(code, reason)),
        },
        // As Janus: candidates in a list that do not parse are skipped.
        (None, Some(Value::Array(list))) => Ok(list
            .iter()
            .filter_map(|c| check_candidate(c).ok())
            .map(media)
            .collect()),
        (None, Some(_)) => {
            Err(envelope.error(code::INVALID_ELEMENT_TYPE, "candidates is not an array"))
        }
    }
}

/// One trickled candidate: `None` for the end of candidates (anything that is not an
/// object, or has `completed`), else the candidate, checked as Janus checks it.
fn check_candidate(candidate: &Value) -> Result<Option<Value>, (u16, String)> {
    let Value::Object(fields) = candidate else {
        return Ok(None);
    };
    if fields.contains_key("completed") {
        return Ok(None);
    }
    let mid = fields.get("sdpMid").filter(|v| !v.is_null());
    if mid.is_some_and(|m| !m.is_string()) {
        return Err((
            code::INVALID_ELEMENT_TYPE,
            "Trickle error: invalid element type (sdpMid should be a string)".into(),
        ));
    }
    let index = fields.get("sdpMLineIndex").filter(|v| !v.is_null());
    if index.is_some_and(|i| i.as_u64().is_none()) {
        return Err((
            code::INVALID_ELEMENT_TYPE,
            "Trickle error: invalid element type (sdpMLineIndex should be a positive integer)"
                .into(),
        ));
    }
    if mid.is_none() && index.is_none() {
        return Err((
            code::MISSING_MANDATORY_ELEMENT,
            "Trickle error: missing mandatory element (sdpMid or sdpMLineIndex)".into(),
        ));
    }
    match fields.get("candidate") {
        None => Err((
            code::MISSING_MANDATORY_ELEMENT,
            "Trickle error: missing mandatory element (candidate)".into(),
        )),
        Some(Value::String(_)) => Ok(Some(candidate.clone())),
        Some(_) => Err((
            code::INVALID_ELEMENT_TYPE,
            "Trickle error: invalid element type (candidate should be a string)".into(),
        )),
    }
}

/// An asynchronous message about a handle (`webrtcup`, `media`, `hangup`, `detached`, ...).
pub fn handle_event(kind: &str, session: u64, handle: u64) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("janus".into(), kind.into());
    message.insert("session_id".into(), session.into());
    message.insert("sender".into(), handle.into());
    message
}

/// A plugin event: a reply to `message` (with its transaction) or a push (without).
pub fn plugin_event(
    session: u64,
    handle: u64,
    transaction: Option<&str>,
    data: Value,
    jsep: Option<Value>,
) -> Value {
    let mut message = handle_event("event", session, handle);
    if let Some(transaction) = transaction {
        message.insert("transaction".into(), transaction.into());
    }
    message.insert("plugindata".into(), json!({"plugin": PLUGIN, "data": data}));
    if let Some(jsep) = jsep {
        message.insert("jsep".into(), jsep);
    }
    Value::Object(message)
}

/// `info`: what this server is and offers.
pub fn server_info(transaction: Option<&str>, timeout: std::time::Duration) -> Value {
    let mut info = json!({
        "janus": "server_info",
        "name": "Cinnabar",
        "version": 14,
        "version_string": env!("CARGO_PKG_VERSION"),
        "author": "Cinnabar",
        "data_channels": true,
        "ipv6": false,
        "full-trickle": false,
        "session-timeout": timeout.as_secs(),
        "transports": {
            "janus.transport.websockets": {"name": "WebSocket transport (janus-protocol)"},
            "janus.transport.http": {"name": "REST (HTTP/HTTPS) transport"},
        },
        "plugins": {
            PLUGIN: {
                "name": "Janus SFU plugin",
                "author": "Cinnabar",
                "description": "janus.plugin.sfu over Cinnabar's groups: rooms are groups, media goes through Cinnabar's SFU",
                "version_string": env!("CARGO_PKG_VERSION"),
                "version": 1,
            }
        },
    });
    if let (Some(transaction), Value::Object(info)) = (transaction, &mut info) {
        info.insert("transaction".into(), transaction.into());
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_checked_as_janus_checks_them() {
        let e = parse("{").unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);
        let e = parse(r#"{"janus": "create"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str(), e.transaction),
            (456, "Missing mandatory element (transaction)", None)
        );
        let e = parse(r#"{"transaction": 3, "janus": "create"}"#).unwrap_err();
        assert_eq!(e.code, 467);
        let e = parse(r#"{"transaction": "t", "session_id": 5}"#).unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str(), e.session),
            (456, "Missing mandatory element (janus)", Some(5))
        );
        let ok =
            parse(r#"{"transaction": "t", "janus": "attach", "session_id": 5, "handle_id": "x"}"#)
                .unwrap();
        assert_eq!(
            (ok.session, ok.handle, ok.bad_handle),
            (Some(5), None, true)
        );
        let ok = parse(r#"{"transaction": "t", "janus": "info", "session_id": "5"}"#).unwrap();
        assert_eq!(
            ok.session, None,
            "as in Janus, a session id that is no number is none"
        );
        assert_eq!(parse("[1]").unwrap_err().code, code::INVALID_JSON_OBJECT);
        for id in [r#""7""#, "-1", "1.5", "null"] {
            let e = parse(&format!(
                r#"{{"transaction": "t", "janus": "create", "id": {id}}}"#
            ))
            .unwrap_err();
            assert_eq!(
                (e.code, e.reason.as_str(), e.transaction),
                (
                    467,
                    "Invalid element type (id should be a positive integer)",
                    None
                ),
                "id {id}"
            );
        }
    }

    #[test]
    fn errors_and_replies_carry_session_and_transaction() {
        let request = parse(r#"{"transaction": "t", "janus": "x", "session_id": 9}"#).unwrap();
        assert_eq!(
            request.error(458, "No such session 9").to_json(),
            json!({"janus": "error", "session_id": 9, "transaction": "t",
                   "error": {"code": 458, "reason": "No such session 9"}})
        );
        assert_eq!(
            Value::Object(request.reply("ack")),
            json!({"janus": "ack", "session_id": 9, "transaction": "t"})
        );
    }

    #[test]
    fn messages_need_a_body_and_a_proper_jsep() {
        let parts = |text: &str| message_parts(&parse(text).unwrap());
        let e = parts(r#"{"transaction": "t", "janus": "message"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str()),
            (456, "Missing mandatory element (body)")
        );
        let e = parts(r#"{"transaction": "t", "janus": "message", "body": []}"#).unwrap_err();
        assert_eq!(e.code, 467);
        let e = parts(
            r#"{"transaction": "t", "janus": "message", "body": {}, "jsep": {"type": "offer"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str()),
            (456, "JSEP error: missing mandatory element (sdp)")
        );
        let e = parts(
            r#"{"transaction": "t", "janus": "message", "body": {}, "jsep": {"type": "pranswer", "sdp": ""}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, code::JSEP_UNKNOWN_TYPE);
        let (body, jsep) = parts(
            r#"{"transaction": "t", "janus": "message", "body": {"kind": "join"}, "jsep": {"type": "offer", "sdp": "v=0"}}"#,
        )
        .unwrap();
        assert_eq!(body.get("kind"), Some(&json!("join")));
        assert_eq!(jsep, Some(Jsep::Offer("v=0".into())));
    }

    #[test]
    fn trickles() {
        let t = |text: &str| trickle(&parse(text).unwrap());
        let head = r#""transaction": "t", "janus": "trickle""#;
        let end = end_of_candidates();
        assert_eq!(
            t(&format!("{{{head}, \"candidate\": null}}")),
            Ok(vec![end.clone()]),
            "the end of candidates goes to the media layer"
        );
        assert_eq!(
            t(&format!(
                "{{{head}, \"candidate\": {{\"completed\": true}}}}"
            )),
            Ok(vec![end.clone()])
        );
        let c = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"});
        assert_eq!(
            t(&format!("{{{head}, \"candidate\": {c}}}")),
            Ok(vec![c.clone()])
        );
        assert_eq!(
            t(&format!(
                "{{{head}, \"candidates\": [{c}, {{\"candidate\": 5, \"sdpMid\": \"0\"}}, {{\"completed\": true}}]}}"
            )),
            Ok(vec![c.clone(), end.clone()]),
            "bad candidates in a list are skipped; its end is kept, in its place"
        );
        assert_eq!(t(&format!("{{{head}}}")).unwrap_err().code, 456);
        assert_eq!(
            t(&format!(
                "{{{head}, \"candidate\": {c}, \"candidates\": []}}"
            ))
            .unwrap_err()
            .code,
            454
        );
        assert_eq!(
            t(&format!("{{{head}, \"candidates\": 3}}"))
                .unwrap_err()
                .code,
            467
        );
        let e = t(&format!(
            "{{{head}, \"candidate\": {{\"candidate\": \"c\"}}}}"
        ))
        .unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str()),
            (
                456,
                "Trickle error: missing mandatory element (sdpMid or sdpMLineIndex)"
            )
        );
    }
}
