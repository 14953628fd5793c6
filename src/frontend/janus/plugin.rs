//! janus.plugin.sfu's messages (`join`, `subscribe`, `block`, `unblock`, `kick`, `data`),
//! its replies (`{"success": ...}`) and its pushed events (`join`, `leave`, `blocked`,
//! `unblocked`, `data`). See shared/protocols/janus-sfu.md.

use serde_json::{Map, Value, json};

/// What a handle wants pushed to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Join and leave events of the room's users.
    pub notifications: bool,
    /// The room's data: data channel messages and `data` events. A handle that joins
    /// with it is a member of the room (its connection is the user's own).
    pub data: bool,
    /// The user whose audio and video this handle receives.
    pub media: Option<String>,
}

/// A plugin message (the `body` of a Janus `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Join {
        room: String,
        user: String,
        subscribe: Option<Subscription>,
        token: Option<String>,
    },
    Subscribe {
        what: Subscription,
        token: Option<String>,
    },
    Block {
        whom: String,
    },
    Unblock {
        whom: String,
    },
    Kick {
        room: String,
        user: String,
        token: Option<String>,
    },
    Data {
        whom: Option<String>,
        body: String,
    },
}

/// Parses a message body: `Ok(None)` for an empty body (a bare JSEP), an error text (as
/// the reply's `error.msg`) for anything malformed. Unknown fields are ignored.
pub fn parse(body: &Map<String, Value>) -> Result<Option<Message>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let kind = string(body, "kind")?;
    let message = match kind.as_str() {
        "join" => Message::Join {
            room: string(body, "room_id")?,
            user: string(body, "user_id")?,
            subscribe: match body.get("subscribe") {
                None | Some(Value::Null) => None,
                Some(what) => Some(subscription(what, "subscribe")?),
            },
            token: optional_string(body, "token")?,
        },
        "subscribe" => Message::Subscribe {
            what: subscription(body.get("what").unwrap_or(&Value::Null), "what")?,
            token: optional_string(body, "token")?,
        },
        "block" => Message::Block {
            whom: string(body, "whom")?,
        },
        "unblock" => Message::Unblock {
            whom: string(body, "whom")?,
        },
        "kick" => Message::Kick {
            room: string(body, "room_id")?,
            user: string(body, "user_id")?,
            token: optional_string(body, "token")?,
        },
        "data" => Message::Data {
            whom: optional_string(body, "whom")?,
            body: string(body, "body")?,
        },
        other => {
            return Err(format!(
                "unknown message kind `{other}`, expected one of `join`, `subscribe`, \
                 `block`, `unblock`, `kick`, `data`"
            ));
        }
    };
    Ok(Some(message))
}

fn string(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    optional_string(object, name)?.ok_or_else(|| format!("missing field `{name}`"))
}

fn optional_string(object: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "invalid type for `{name}`: expected a string, found {}",
            type_name(other)
        )),
    }
}

fn subscription(value: &Value, name: &str) -> Result<Subscription, String> {
    let Value::Object(what) = value else {
        return Err(format!(
            "invalid type for `{name}`: expected an object, found {}",
            type_name(value)
        ));
    };
    let flag = |field: &str| match what.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "invalid type for `{field}`: expected a boolean, found {}",
            type_name(other)
        )),
    };
    Ok(Subscription {
        notifications: flag("notifications")?,
        data: flag("data")?,
        media: optional_string(what, "media")?,
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `{"success": true}`, with `response` when the message had one.
pub fn success(response: Option<Value>) -> Value {
    match response {
        Some(response) => json!({"success": true, "response": response}),
        None => json!({"success": true}),
    }
}

/// `{"success": false, "error": {"msg": ...}}`.
pub fn failure(message: &str) -> Value {
    json!({"success": false, "error": {"msg": message}})
}

/// The `join` or `leave` event of a user.
pub fn presence(event: &str, user: &str, room: &str) -> Value {
    json!({"event": event, "user_id": user, "room_id": room})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn messages_parse() {
        assert_eq!(parse(&body(json!({}))), Ok(None));
        assert_eq!(
            parse(&body(
                json!({"kind": "join", "room_id": "r", "user_id": "u",
                "subscribe": {"notifications": true, "data": true}, "extra": 1})
            )),
            Ok(Some(Message::Join {
                room: "r".into(),
                user: "u".into(),
                subscribe: Some(Subscription {
                    notifications: true,
                    data: true,
                    media: None
                }),
                token: None,
            }))
        );
        assert_eq!(
            parse(&body(json!({"kind": "subscribe", "what": {"media": "u"}}))),
            Ok(Some(Message::Subscribe {
                what: Subscription {
                    media: Some("u".into()),
                    ..Default::default()
                },
                token: None
            }))
        );
        assert_eq!(
            parse(&body(json!({"kind": "data", "body": "hi"}))),
            Ok(Some(Message::Data {
                whom: None,
                body: "hi".into()
            }))
        );
    }

    #[test]
    fn malformed_messages_say_what_is_wrong() {
        assert_eq!(
            parse(&body(json!({"room_id": "r"}))),
            Err("missing field `kind`".into())
        );
        assert_eq!(
            parse(&body(json!({"kind": "join", "room_id": "r"}))),
            Err("missing field `user_id`".into())
        );
        assert_eq!(
            parse(&body(json!({"kind": "join", "room_id": 5, "user_id": "u"}))),
            Err("invalid type for `room_id`: expected a string, found a number".into())
        );
        assert_eq!(
            parse(&body(json!({"kind": "subscribe", "what": {"data": "yes"}}))),
            Err("invalid type for `data`: expected a boolean, found a string".into())
        );
        assert!(
            parse(&body(json!({"kind": "fiddle"})))
                .unwrap_err()
                .contains("fiddle")
        );
        assert!(parse(&body(json!({"kind": "subscribe"}))).is_err());
    }
}
