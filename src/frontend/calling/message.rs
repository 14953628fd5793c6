//! calling-signaling's wire format: parsing requests and checking their fields, in the
//! two dialects the frontend speaks, and building the messages it sends.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::group::ClientId;

/// Which version of the protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The 2015 document (shared/protocols/calling-signaling.md): optional tids of any
    /// type, string invite handles, unknown fields ignored.
    Document,
    /// The released server 0.1.4, spoken by rtc-lib: numeric tids required, fields
    /// checked strictly, numeric invite handles.
    RtcLib,
}

impl Dialect {
    /// The dialect a connection asks for in its query string (`?dialect=rtc-lib`).
    pub fn from_query(query: &str) -> Result<Dialect, String> {
        let mut dialect = Dialect::Document;
        for pair in query.split('&') {
            let Some(value) = pair.strip_prefix("dialect=") else {
                continue;
            };
            dialect = match value {
                "rtc-lib" => Dialect::RtcLib,
                "document" | "" => Dialect::Document,
                other => {
                    return Err(format!(
                        "Unknown dialect {other:?}: use dialect=rtc-lib or dialect=document"
                    ));
                }
            }
        }
        Ok(dialect)
    }
}

/// The type a request's field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    Bool,
    Obj,
    /// Any JSON value (`room_status`'s `value` and `previous`).
    Any,
    /// An invite handle: a number, or in the document's dialect also a string.
    Handle,
}

struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

/// A `'static` list of fields (constant promotion does not reach `const fn` calls).
macro_rules! fields {
    ($($field:expr),* $(,)?) => {{
        const FIELDS: &[Field] = &[$($field),*];
        FIELDS
    }};
}

/// The fields of each request, in the order the released server checks them.
fn fields_of(kind: &str, dialect: Dialect) -> Option<&'static [Field]> {
    use Kind::*;
    Some(match kind {
        "status" => fields![req("status", Obj)],
        "ns_subscribe" | "ns_unsubscribe" | "ns_user_register" | "ns_user_unregister" => {
            fields![req("namespace", Str)]
        }
        "ns_room_register" | "ns_room_unregister" => {
            fields![req("namespace", Str), req("room", Str)]
        }
        "room_join" => fields![opt("room", Str), opt("status", Obj)],
        "room_leave" => fields![req("room", Str)],
        "room_status" => fields![
            req("room", Str),
            req("key", Str),
            opt("value", Any),
            opt("check", Bool),
            opt("previous", Any),
        ],
        "room_peer_status" => fields![req("room", Str), req("status", Obj)],
        // In the released server this is only an event.
        "room_peer_update" if dialect == Dialect::Document => {
            fields![req("room", Str), opt("pending", Bool), opt("status", Obj)]
        }
        "room_peer_to" => fields![
            req("room", Str),
            req("user", Str),
            req("event", Str),
            req("data", Obj),
        ],
        "invite_send" => fields![req("room", Str), req("user", Str), req("data", Obj)],
        "invite_cancel" | "invite_deny" => fields![req("handle", Handle)],
        "invite_accept" => match dialect {
            Dialect::RtcLib => fields![req("handle", Handle), req("status", Obj)],
            Dialect::Document => fields![req("handle", Handle), opt("status", Obj)],
        },
        "ping" => fields![],
        "remote_ping" | "remote_timeout" => fields![req("time", Num)],
        _ => return None,
    })
}

/// Why a request was refused before it was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    MissingType,
    UnknownCommand(String),
    Missing(&'static str),
    Mismatch(&'static str, &'static str),
    Unexpected(String),
}

impl BadRequest {
    /// The error text: the released server's fixed strings for rtc-lib, a description
    /// naming the field for the document's dialect.
    pub fn text(&self, dialect: Dialect) -> String {
        match (dialect, self) {
            (Dialect::RtcLib, BadRequest::MissingType) => "Missing type in message".into(),
            (Dialect::RtcLib, BadRequest::UnknownCommand(_)) => "Unknown command".into(),
            (Dialect::RtcLib, BadRequest::Missing(_)) => "Missing element in message".into(),
            (Dialect::RtcLib, BadRequest::Mismatch(..)) => "Type mismatch in message".into(),
            (Dialect::RtcLib, BadRequest::Unexpected(_)) => "Unexpected field in message".into(),
            (Dialect::Document, BadRequest::MissingType) => "Missing field \"type\"".into(),
            (Dialect::Document, BadRequest::UnknownCommand(kind)) => {
                format!("Unknown request type {kind:?}")
            }
            (Dialect::Document, BadRequest::Missing(field)) => format!("Missing field {field:?}"),
            (Dialect::Document, BadRequest::Mismatch(field, expected)) => {
                format!("Field {field:?} must be {expected}")
            }
            (Dialect::Document, BadRequest::Unexpected(field)) => {
                format!("Unexpected field {field:?}")
            }
        }
    }
}

/// A request whose fields have the types its kind asks for.
#[derive(Debug)]
pub struct Request {
    pub kind: String,
    fields: Map<String, Value>,
}

impl Request {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    pub fn obj(&self, name: &str) -> Option<&Map<String, Value>> {
        self.fields.get(name).and_then(Value::as_object)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.fields.get(name).and_then(Value::as_bool)
    }

    pub fn num(&self, name: &str) -> Option<f64> {
        self.fields.get(name).and_then(Value::as_f64)
    }

    /// A field that may hold any value; `None` when absent.
    pub fn any(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// An invite handle: the number, or the number a string holds.
    pub fn handle(&self) -> Option<u64> {
        match self.fields.get("handle")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// What became of one incoming text message.
#[derive(Debug)]
pub enum Parsed {
    /// Not something any answer can be addressed to: an `error` message says why.
    Unanswerable(String),
    /// A request; `tid` is what the answer carries (`None`: no answer is sent).
    Request {
        tid: Option<Value>,
        request: Result<Request, BadRequest>,
    },
}

/// Parses and checks one text message.
pub fn parse(text: &str, dialect: Dialect) -> Parsed {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            return Parsed::Unanswerable(format!("Error processing incoming message: {error}"));
        }
    };
    let Value::Object(mut fields) = value else {
        return Parsed::Unanswerable("Message is not a JSON object".into());
    };
    // A null tid is no tid: nothing could be addressed to it.
    let tid = fields.remove("tid").filter(|t| !t.is_null());
    if dialect == Dialect::RtcLib && tid.is_none() {
        return Parsed::Unanswerable("Missing tid in message".into());
    }
    let request = check(&mut fields, tid.as_ref(), dialect);
    Parsed::Request { tid, request }
}

fn check(
    fields: &mut Map<String, Value>,
    tid: Option<&Value>,
    dialect: Dialect,
) -> Result<Request, BadRequest> {
    let kind = match fields.remove("type") {
        None | Some(Value::Null) => return Err(BadRequest::MissingType),
        Some(Value::String(kind)) => kind,
        Some(other) => return Err(BadRequest::UnknownCommand(other.to_string())),
    };
    let spec = fields_of(&kind, dialect).ok_or_else(|| BadRequest::UnknownCommand(kind.clone()))?;
    for field in spec {
        let value = fields.get(field.name).filter(|v| !v.is_null());
        let Some(value) = value else {
            if field.required {
                return Err(BadRequest::Missing(field.name));
            }
            fields.remove(field.name);
            continue;
        };
        let (ok, expected) = match field.kind {
            Kind::Str => (value.is_string(), "a string"),
            Kind::Num => (value.is_number(), "a number"),
            Kind::Bool => (value.is_boolean(), "true or false"),
            Kind::Obj => (value.is_object(), "an object"),
            Kind::Any => (true, ""),
            Kind::Handle => match dialect {
                Dialect::RtcLib => (value.is_number(), "a number"),
                Dialect::Document => (value.is_number() || value.is_string(), "a handle"),
            },
        };
        if !ok {
            return Err(BadRequest::Mismatch(field.name, expected));
        }
    }
    if dialect == Dialect::RtcLib {
        if tid.is_some_and(|t| !t.is_number()) {
            return Err(BadRequest::Mismatch("tid", "a number"));
        }
        if let Some(name) = fields.keys().find(|k| !spec.iter().any(|f| f.name == *k)) {
            return Err(BadRequest::Unexpected(name.clone()));
        }
    } else {
        // The document says nothing of extra fields: they are ignored.
        fields.retain(|k, _| spec.iter().any(|f| f.name == *k));
    }
    Ok(Request {
        kind,
        fields: std::mem::take(fields),
    })
}

/// A positive answer; `data` is the request's custom data, if it has any.
pub fn answer(dialect: Dialect, tid: &Value, data: Option<Value>) -> Value {
    match (dialect, data) {
        (_, Some(data)) => json!({"type": "answer", "tid": tid, "data": data}),
        // rtc-lib takes an answer with data to an `invite_accept` as a second room
        // initialisation, which it refuses: the released server sends none.
        (Dialect::RtcLib, None) => json!({"type": "answer", "tid": tid}),
        (Dialect::Document, None) => json!({"type": "answer", "tid": tid, "data": {}}),
    }
}

pub fn error_answer(tid: &Value, error: &str) -> Value {
    json!({"type": "answer", "tid": tid, "error": error})
}

/// An error that no answer can carry.
pub fn error(error: &str) -> Value {
    json!({"type": "error", "error": error})
}

pub fn hello(id: &ClientId, server: &str) -> Value {
    json!({"type": "hello", "id": id.as_str(), "server": server})
}

/// An invite handle as the dialect writes it.
pub fn handle(dialect: Dialect, handle: u64) -> Value {
    match dialect {
        Dialect::RtcLib => json!(handle),
        Dialect::Document => json!(handle.to_string()),
    }
}

/// What other members of a room (or of a room in a namespace) look like.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerState {
    pub status: Value,
    pub pending: bool,
}

pub fn peers_json(peers: &BTreeMap<ClientId, PeerState>) -> Value {
    let map: Map<String, Value> = peers
        .iter()
        .map(|(id, p)| {
            (
                id.as_str().to_owned(),
                json!({"status": p.status, "pending": p.pending}),
            )
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str, dialect: Dialect) -> (Option<Value>, String) {
        match parse(text, dialect) {
            Parsed::Request {
                tid,
                request: Err(e),
            } => (tid, e.text(dialect)),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn dialect_from_query() {
        assert_eq!(Dialect::from_query(""), Ok(Dialect::Document));
        assert_eq!(
            Dialect::from_query("a=b&dialect=rtc-lib"),
            Ok(Dialect::RtcLib)
        );
        assert_eq!(
            Dialect::from_query("dialect=document"),
            Ok(Dialect::Document)
        );
        assert!(Dialect::from_query("dialect=xmpp").is_err());
    }

    #[test]
    fn rtc_lib_checks_like_the_released_server() {
        let rtc = Dialect::RtcLib;
        assert!(matches!(
            parse(r#"{"type":"ping"}"#, rtc),
            Parsed::Unanswerable(e) if e == "Missing tid in message"
        ));
        assert_eq!(bad(r#"{"tid":1}"#, rtc).1, "Missing type in message");
        assert_eq!(bad(r#"{"tid":1,"type":"x"}"#, rtc).1, "Unknown command");
        assert_eq!(bad(r#"{"tid":1,"type":7}"#, rtc).1, "Unknown command");
        assert_eq!(
            bad(r#"{"tid":"a","type":"ping"}"#, rtc),
            (Some(json!("a")), "Type mismatch in message".into())
        );
        assert_eq!(
            bad(r#"{"tid":1,"type":"room_leave"}"#, rtc).1,
            "Missing element in message"
        );
        assert_eq!(
            bad(r#"{"tid":1,"type":"room_leave","room":3}"#, rtc).1,
            "Type mismatch in message"
        );
        assert_eq!(
            bad(r#"{"tid":1,"type":"ping","x":1}"#, rtc).1,
            "Unexpected field in message"
        );
        assert_eq!(
            bad(r#"{"tid":1,"type":"room_peer_update","room":"r"}"#, rtc).1,
            "Unknown command"
        );
        assert_eq!(
            bad(r#"{"tid":1,"type":"invite_deny","handle":"1"}"#, rtc).1,
            "Type mismatch in message"
        );
    }

    #[test]
    fn the_document_is_lenient_and_says_which_field() {
        let doc = Dialect::Document;
        let Parsed::Request {
            tid: None,
            request: Ok(r),
        } = parse(r#"{"type":"room_leave","room":"r","extra":1}"#, doc)
        else {
            panic!()
        };
        assert_eq!(r.str("room"), Some("r"));
        assert!(r.any("extra").is_none());
        assert_eq!(
            bad(r#"{"tid":"t","type":"room_leave"}"#, doc),
            (Some(json!("t")), "Missing field \"room\"".into())
        );
        assert_eq!(
            bad(r#"{"type":"room_join","status":[]}"#, doc).1,
            "Field \"status\" must be an object"
        );
        let Parsed::Request { request: Ok(r), .. } =
            parse(r#"{"type":"invite_deny","handle":"12"}"#, doc)
        else {
            panic!()
        };
        assert_eq!(r.handle(), Some(12));
        assert!(matches!(parse("[1]", doc), Parsed::Unanswerable(_)));
        assert!(matches!(parse("{", doc), Parsed::Unanswerable(_)));
    }

    #[test]
    fn answers_by_dialect() {
        assert_eq!(
            answer(Dialect::RtcLib, &json!(1), None),
            json!({"type": "answer", "tid": 1})
        );
        assert_eq!(
            answer(Dialect::Document, &json!("x"), None),
            json!({"type": "answer", "tid": "x", "data": {}})
        );
        assert_eq!(handle(Dialect::RtcLib, 3), json!(3));
        assert_eq!(handle(Dialect::Document, 3), json!("3"));
    }
}
