//! Galène's messages: the JSON shape and conversions from the core's types.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::IceServer;
use crate::group::{ChatMessage, ClearChat, ClientId, GroupStatus, UserInfo, UserMessage};

/// One message of Galène's protocol, in either direction. Every field but `type` is
/// optional; unknown fields are ignored as Galène ignores them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind_of_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noecho: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(
        default,
        rename = "rtcConfiguration",
        skip_serializing_if = "Option::is_none"
    )]
    pub rtc_configuration: Option<Value>,
}

impl Message {
    pub fn new(kind_of_message: &str) -> Message {
        Message {
            kind_of_message: kind_of_message.to_owned(),
            ..Message::default()
        }
    }
}

/// The JSON `status` of a group. `base` is the public base URL (`https://host/`) for
/// `.status`, absent inside `joined` where Galène omits location and endpoint.
pub fn status_json(status: &GroupStatus, base: Option<&str>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("name".into(), json!(status.name.as_str()));
    if let Some(redirect) = &status.redirect {
        out.insert("redirect".into(), json!(redirect));
    } else if let Some(base) = base {
        out.insert(
            "location".into(),
            json!(format!("{base}group/{}/", status.name)),
        );
        let ws_base = base
            .strip_prefix("https://")
            .map(|rest| format!("wss://{rest}"))
            .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
            .unwrap_or_else(|| base.to_owned());
        out.insert("endpoint".into(), json!(format!("{ws_base}ws")));
    }
    if let Some(display_name) = &status.display_name {
        out.insert("displayName".into(), json!(display_name));
    }
    if let Some(description) = &status.description {
        out.insert("description".into(), json!(description));
    }
    // Public groups show their state to anyone; members always see whether it is locked.
    if status.public && status.redirect.is_none() {
        out.insert("locked".into(), json!(status.locked));
        out.insert("clientCount".into(), json!(status.client_count));
    } else if base.is_none() {
        out.insert("locked".into(), json!(status.locked));
    }
    Value::Object(out)
}

pub(super) fn rtc_configuration(servers: &[IceServer]) -> Value {
    let servers: Vec<Value> = servers.iter().map(IceServer::to_json).collect();
    json!({ "iceServers": servers })
}

pub(super) fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub(super) fn error_message(dest: Option<&ClientId>, text: &str) -> Message {
    Message {
        kind: Some("error".into()),
        dest: dest.map(|d| d.to_string()),
        privileged: true,
        value: Some(json!(text)),
        ..Message::new("usermessage")
    }
}

pub(super) fn clear_chat_target(value: &Value) -> Option<ClearChat> {
    match value {
        Value::Null => Some(ClearChat::All),
        Value::Object(map) => {
            let user = match map.get("userId") {
                None | Some(Value::Null) => None,
                Some(Value::String(u)) => Some(ClientId::new(u)?),
                Some(_) => return None,
            };
            match map.get("id") {
                None | Some(Value::Null) => user.map(ClearChat::FromUser),
                Some(Value::String(id)) => Some(ClearChat::One {
                    id: id.clone(),
                    user,
                }),
                Some(_) => None,
            }
        }
        _ => None,
    }
}

pub(super) fn user_message(kind: &str, info: &UserInfo) -> Message {
    Message {
        kind: Some(kind.into()),
        id: Some(info.id.to_string()),
        username: Some(info.username.clone()),
        permissions: Some(json!(info.permissions)),
        data: Some(Value::Object((*info.data).clone())),
        ..Message::new("user")
    }
}

pub(super) fn chat_message(entry: &ChatMessage) -> Message {
    Message {
        kind: Some(entry.kind.clone()).filter(|k| !k.is_empty()),
        id: Some(entry.id.clone()),
        source: entry.source.as_ref().map(|s| s.to_string()),
        username: entry.username.clone(),
        dest: entry.dest.as_ref().map(|d| d.to_string()),
        privileged: entry.privileged,
        time: Some(rfc3339(entry.time)),
        value: Some(entry.value.clone()),
        noecho: entry.noecho,
        ..Message::new("chat")
    }
}

pub(super) fn relayed_message(message: &UserMessage) -> Message {
    Message {
        kind: Some(message.kind.clone()),
        source: message.source.as_ref().map(|s| s.to_string()),
        username: message.username.clone(),
        dest: message.dest.as_ref().map(|d| d.to_string()),
        privileged: message.privileged,
        value: Some(message.value.clone()),
        ..Message::new("usermessage")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupName;

    #[test]
    fn status_of_public_and_private_groups() {
        let mut status = GroupStatus {
            name: GroupName::new("demo").unwrap(),
            display_name: Some("Demo".into()),
            description: None,
            redirect: None,
            public: true,
            locked: false,
            client_count: 3,
        };
        let v = status_json(&status, Some("https://example.org/"));
        assert_eq!(v["location"], "https://example.org/group/demo/");
        assert_eq!(v["endpoint"], "wss://example.org/ws");
        assert_eq!(v["clientCount"], 3);
        assert_eq!(v["displayName"], "Demo");
        status.public = false;
        let v = status_json(&status, Some("http://h:1/"));
        assert_eq!(v["endpoint"], "ws://h:1/ws");
        assert!(v.get("clientCount").is_none() && v.get("locked").is_none());
        status.redirect = Some("https://elsewhere/".into());
        let v = status_json(&status, Some("http://h:1/"));
        assert_eq!(v["redirect"], "https://elsewhere/");
        assert!(v.get("location").is_none());
    }

    #[test]
    fn clear_chat_values() {
        assert_eq!(clear_chat_target(&Value::Null), Some(ClearChat::All));
        assert_eq!(
            clear_chat_target(&json!({"userId": "u"})),
            Some(ClearChat::FromUser(ClientId::new("u").unwrap()))
        );
        assert_eq!(
            clear_chat_target(&json!({"id": "m", "userId": "u"})),
            Some(ClearChat::One {
                id: "m".into(),
                user: ClientId::new("u")
            })
        );
        assert_eq!(clear_chat_target(&json!(3)), None);
        assert_eq!(clear_chat_target(&json!({"id": 3})), None);
    }
}
