//! Room Signals frames: `{"action": A, "data": SIGNAL}` (or a bare `SIGNAL`) from the
//! client, `{"c": CODE, "s": NAME, "b": BODY}` from the server, and the fields signals
//! carry.

use serde_json::{Map, Value, json};

/// The codes of the document, and the two the WebRTC signals add.
pub mod code {
    pub const OK: u16 = 200;
    pub const INTERNAL_SERVER_ERROR: u16 = 500;
    pub const INVALID_SIGNAL: u16 = 2001;
    pub const UNSUPPORTED_CHANNEL: u16 = 2002;
    pub const ROOM_NOT_FOUND: u16 = 4001;
    pub const NOT_ROOM_MEMBER: u16 = 4002;
    pub const RECIPIENT_NOT_MEMBER: u16 = 4003;
    pub const ALREADY_EXIST_ROOM: u16 = 4022;
    pub const ALREADY_IS_PUBLISHER: u16 = 4023;
    pub const USER_LEFT: u16 = 4024;
    pub const PERMISSION_NOT_FOUND: u16 = 4051;
}

/// Longest string a signal's identifying fields may hold.
const MAX_FIELD: usize = 256;

/// The stream engines a `JOIN` may ask for (`eg`).
pub const ENGINES: [&str; 4] = ["native", "agora", "hundredms", "livekit"];
/// The device types of `ss.host`.
pub const HOSTS: [&str; 6] = ["iOS", "iOS_EX", "Android", "Web", "Web_Studio", "Server"];
/// The session categories of `ss.category`.
pub const CATEGORIES: [&str; 2] = ["stream", "screenshare"];

/// What a signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Join,
    Leave,
    Update,
    Heartbeat,
    Kick,
    PublishRequest,
    PublishAccept,
    PublishReject,
    Offer,
    Answer,
    Ice,
    Watch,
}

const KINDS: [(Kind, &str, &str); 12] = [
    (Kind::Join, "join", "JOIN"),
    (Kind::Leave, "leave", "LEAVE"),
    (Kind::Update, "updateVideo", "UPDATE"),
    (Kind::Heartbeat, "heartbeat", "HEARTBEAT"),
    (Kind::Kick, "kick", "KICK"),
    (Kind::PublishRequest, "publishRequest", "PUBLISH_REQUEST"),
    (Kind::PublishAccept, "publishAccept", "PUBLISH_ACCEPT"),
    (Kind::PublishReject, "publishReject", "PUBLISH_REJECT"),
    (Kind::Offer, "offer", "OFFER"),
    (Kind::Answer, "answer", "ANSWER"),
    (Kind::Ice, "iceCandidate", "ICE"),
    (Kind::Watch, "watch", "WATCH"),
];

impl Kind {
    fn from_action(action: &str) -> Option<Kind> {
        KINDS.iter().find(|k| k.1 == action).map(|k| k.0)
    }

    fn from_signal(s: &str) -> Option<Kind> {
        KINDS.iter().find(|k| k.2 == s).map(|k| k.0)
    }

    /// The signal's name, as `s` carries it.
    pub fn name(self) -> &'static str {
        KINDS.iter().find(|k| k.0 == self).map_or("", |k| k.2)
    }
}

/// A room's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Many publishers (up to 9) to many viewers.
    M2m,
    /// Two peers that connect to each other; the server relays their signals.
    P2p,
    /// Audio only, many to many.
    A2m,
    /// One publisher to many viewers.
    P2m,
}

impl Channel {
    pub fn parse(name: &str) -> Option<Channel> {
        match name {
            "m2m" => Some(Channel::M2m),
            "p2p" => Some(Channel::P2p),
            "a2m" => Some(Channel::A2m),
            "p2m" => Some(Channel::P2m),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::M2m => "m2m",
            Channel::P2p => "p2p",
            Channel::A2m => "a2m",
            Channel::P2m => "p2m",
        }
    }

    /// Whether the media goes through our SFU (everything but `p2p`).
    pub fn through_sfu(self) -> bool {
        self != Channel::P2p
    }
}

/// Why a signal was refused: an error ack with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub msg: String,
}

impl Refusal {
    pub fn new(code: u16, msg: impl Into<String>) -> Refusal {
        Refusal {
            code,
            msg: msg.into(),
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Refusal {
        Refusal::new(code::INVALID_SIGNAL, msg)
    }
}

/// A signal from the client: what it asks for and the signal object itself, echoed in
/// error acks as `req`.
#[derive(Debug, Clone)]
pub struct Signal {
    pub kind: Kind,
    pub body: Map<String, Value>,
}

/// A frame that could not be read as a signal: the error ack to send.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The signal's name if it could be told, for the error's `s`.
    pub name: String,
    pub req: Value,
    pub msg: String,
}

impl Unreadable {
    pub fn to_frame(&self) -> Value {
        error_frame(code::INVALID_SIGNAL, &self.name, &self.req, &self.msg)
    }
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Signal, Unreadable> {
    let unreadable = |name: &str, req: Value, msg: String| Unreadable {
        name: name.to_owned(),
        req,
        msg,
    };
    let value: Value = serde_json::from_str(text).map_err(|error| {
        unreadable(
            "",
            Value::String(text.chars().take(1024).collect()),
            format!("the frame is not JSON: {error}"),
        )
    })?;
    let Value::Object(mut frame) = value else {
        return Err(unreadable(
            "",
            value,
            "a frame is a JSON object: {\"action\": ..., \"data\": {...}}".into(),
        ));
    };
    let action = match frame.get("action") {
        None => None,
        Some(Value::String(action)) => Some(action.clone()),
        Some(_) => {
            return Err(unreadable(
                "",
                Value::Object(frame),
                "\"action\" must be a string".into(),
            ));
        }
    };
    // `{"action", "data"}`, or a bare signal.
    let body = match (&action, frame.remove("data")) {
        (Some(_), Some(Value::Object(data))) => data,
        (Some(_), Some(other)) => {
            frame.insert("data".into(), other);
            return Err(unreadable(
                "",
                Value::Object(frame),
                "\"data\" must be the signal object".into(),
            ));
        }
        (Some(_), None) if !frame.contains_key("s") => {
            return Err(unreadable(
                "",
                Value::Object(frame),
                "missing \"data\": the signal".into(),
            ));
        }
        (_, data) => {
            if let Some(data) = data {
                frame.insert("data".into(), data);
            }
            frame
        }
    };
    let by_signal = match body.get("s") {
        None => None,
        Some(Value::String(s)) => Some(Kind::from_signal(s).ok_or_else(|| {
            unreadable(
                s,
                Value::Object(body.clone()),
                format!("unknown signal {s:?}"),
            )
        })?),
        Some(_) => {
            return Err(unreadable(
                "",
                Value::Object(body),
                "\"s\" must be a string".into(),
            ));
        }
    };
    let by_action = match &action {
        Some(action) => Some(Kind::from_action(action).ok_or_else(|| {
            unreadable(
                by_signal.map_or("", Kind::name),
                Value::Object(body.clone()),
                format!("unknown action {action:?}"),
            )
        })?),
        None => None,
    };
    let kind = match (by_action, by_signal) {
        (Some(a), Some(s)) if a != s => {
            return Err(unreadable(
                s.name(),
                Value::Object(body),
                format!("action {:?} does not carry a {} signal", action, s.name()),
            ));
        }
        (Some(kind), _) | (None, Some(kind)) => kind,
        (None, None) => {
            return Err(unreadable(
                "",
                Value::Object(body),
                "missing \"action\" and \"s\": which signal is this?".into(),
            ));
        }
    };
    Ok(Signal { kind, body })
}

impl Signal {
    pub fn req(&self) -> Value {
        Value::Object(self.body.clone())
    }

    /// An optional string field; another type is an invalid signal.
    pub fn string(&self, name: &str) -> Result<Option<&str>, Refusal> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Refusal::invalid(format!("\"{name}\" must be a string"))),
        }
    }

    /// A string field that must be there.
    pub fn required(&self, name: &str) -> Result<&str, Refusal> {
        self.string(name)?
            .ok_or_else(|| Refusal::invalid(format!("missing \"{name}\"")))
    }

    /// An optional boolean field.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Refusal> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Refusal::invalid(format!(
                "\"{name}\" must be true or false"
            ))),
        }
    }

    /// An optional boolean inside `op`.
    pub fn option(&self, name: &str) -> Result<bool, Refusal> {
        match self.body.get("op") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Object(op)) => match op.get(name) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(Refusal::invalid(format!(
                    "\"op.{name}\" must be true or false"
                ))),
            },
            Some(_) => Err(Refusal::invalid("\"op\" must be an object")),
        }
    }

    /// An optional string field that must be one of `allowed`.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>, Refusal> {
        match self.string(name)? {
            Some(value) if !allowed.contains(&value) => Err(Refusal::invalid(format!(
                "\"{name}\" must be one of {}",
                allowed.join(", ")
            ))),
            value => Ok(value),
        }
    }

    /// `ch`, if given.
    pub fn channel(&self) -> Result<Option<Channel>, Refusal> {
        match self.string("ch")? {
            None => Ok(None),
            Some(name) => Channel::parse(name).map(Some).ok_or_else(|| {
                Refusal::new(
                    code::UNSUPPORTED_CHANNEL,
                    format!("unknown channel {name:?}: m2m, p2p, a2m or p2m"),
                )
            }),
        }
    }

    /// `ss`, if given.
    pub fn session_info(&self) -> Result<Option<SessionInfo>, Refusal> {
        match self.body.get("ss") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(ss)) => SessionInfo::parse(ss).map(Some),
            Some(_) => Err(Refusal::invalid("\"ss\" must be an object")),
        }
    }

    /// Whom the signal is for: `to` (a user id, or `{userId, sessionId}`), or `id`.
    pub fn target(&self) -> Result<Option<Target>, Refusal> {
        let bad = || {
            Refusal::invalid("\"to\" must be a user id or {\"userId\": ..., \"sessionId\": ...}")
        };
        match self.body.get("to") {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) => return Ok(Some(Target::User(checked(user, "to")?))),
            Some(Value::Object(to)) => {
                let field = |name: &str| match to.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => checked(s, name).map(Some),
                    Some(_) => Err(bad()),
                };
                return match (field("userId")?, field("sessionId")?) {
                    (user, Some(session)) => Ok(Some(Target::Session { user, session })),
                    (Some(user), None) => Ok(Some(Target::User(user))),
                    (None, None) => Err(bad()),
                };
            }
            Some(_) => return Err(bad()),
        }
        Ok(self.string("id")?.map(|id| Target::Session {
            user: None,
            session: id.to_owned(),
        }))
    }

    /// A trickled candidate as `RTCIceCandidateInit`: the `candidate:` line in `sdp`
    /// (as iOS and Android name it) with `sdpMid` and `sdpMLineIndex`, or an object.
    pub fn candidate(&self) -> Result<Value, Refusal> {
        let init = match self.body.get("sdp").or_else(|| self.body.get("candidate")) {
            Some(Value::String(line)) => json!({
                "candidate": line,
                "sdpMid": self.body.get("sdpMid").cloned().unwrap_or(Value::Null),
                "sdpMLineIndex": self.body.get("sdpMLineIndex").cloned().unwrap_or(Value::Null),
            }),
            Some(Value::Object(object)) => {
                let line = object.get("candidate").or_else(|| object.get("sdp"));
                json!({
                    "candidate": line.cloned().unwrap_or(Value::Null),
                    "sdpMid": object.get("sdpMid").cloned().unwrap_or(Value::Null),
                    "sdpMLineIndex": object.get("sdpMLineIndex").cloned().unwrap_or(Value::Null),
                })
            }
            _ => {
                return Err(Refusal::invalid(
                    "missing \"sdp\": the candidate line, with \"sdpMid\" and \"sdpMLineIndex\"",
                ));
            }
        };
        if !init["candidate"].is_string()
            || !(init["sdpMid"].is_string() || init["sdpMid"].is_null())
            || !(init["sdpMLineIndex"].is_u64() || init["sdpMLineIndex"].is_null())
        {
            return Err(Refusal::invalid(
                "a candidate is a \"candidate:\" line with a string \"sdpMid\" and a number \"sdpMLineIndex\"",
            ));
        }
        Ok(init)
    }
}

fn checked(value: &str, name: &str) -> Result<String, Refusal> {
    if value.is_empty() || value.len() > MAX_FIELD || value.chars().any(char::is_control) {
        return Err(Refusal::invalid(format!(
            "\"{name}\" must be 1 to {MAX_FIELD} printable characters"
        )));
    }
    Ok(value.to_owned())
}

/// Whom a signal names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every session of this user.
    User(String),
    /// One session (the user id, if given, is not needed to find it).
    Session {
        user: Option<String>,
        session: String,
    },
}

impl Target {
    pub fn to_json(&self) -> Value {
        match self {
            Target::User(user) => Value::String(user.clone()),
            Target::Session { user, session } => json!({"userId": user, "sessionId": session}),
        }
    }
}

/// A session's `ss`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub category: Option<String>,
    pub host: Option<String>,
    pub device_id: Option<String>,
    pub fullname: Option<String>,
    pub avatar: Option<String>,
}

impl SessionInfo {
    fn parse(ss: &Map<String, Value>) -> Result<SessionInfo, Refusal> {
        let field = |name: &str| match ss.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => checked(s, &format!("ss.{name}")).map(Some),
            Some(_) => Err(Refusal::invalid(format!("\"ss.{name}\" must be a string"))),
        };
        let one_of = |name: &str, allowed: &[&str]| match ss.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
            Some(_) => Err(Refusal::invalid(format!(
                "\"ss.{name}\" must be one of {}",
                allowed.join(", ")
            ))),
        };
        Ok(SessionInfo {
            user_id: field("userId")?,
            session_id: field("sessionId")?,
            category: one_of("category", &CATEGORIES)?,
            host: one_of("host", &HOSTS)?,
            device_id: field("deviceId")?,
            fullname: field("fullname")?,
            avatar: field("avatar")?,
        })
    }

    pub fn category(&self) -> &str {
        self.category.as_deref().unwrap_or("stream")
    }

    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("Web")
    }

    pub fn to_json(&self) -> Value {
        json!({
            "userId": self.user_id.as_deref().unwrap_or(""),
            "sessionId": self.session_id.as_deref().unwrap_or(""),
            "category": self.category(),
            "host": self.host(),
            "deviceId": self.device_id.as_deref().unwrap_or(""),
        })
    }
}

/// An ack or a push.
pub fn frame(s: &str, body: Value) -> Value {
    json!({"c": code::OK, "s": s, "b": body})
}

/// An error ack, with the signal as received.
pub fn error_frame(c: u16, s: &str, req: &Value, msg: &str) -> Value {
    json!({"c": c, "s": s, "b": {"req": req, "msg": msg}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_frame_shapes_are_read() {
        let wrapped = parse(r#"{"action": "join", "data": {"s": "JOIN", "rid": "r"}}"#).unwrap();
        assert_eq!(wrapped.kind, Kind::Join);
        assert_eq!(wrapped.required("rid").unwrap(), "r");
        let bare = parse(r#"{"s": "HEARTBEAT", "bid": "b"}"#).unwrap();
        assert_eq!(bare.kind, Kind::Heartbeat);
        let action_only = parse(r#"{"action": "watch", "data": {"to": "u"}}"#).unwrap();
        assert_eq!(action_only.kind, Kind::Watch);
        assert_eq!(
            action_only.target().unwrap(),
            Some(Target::User("u".into()))
        );
    }

    #[test]
    fn unreadable_frames_say_why_and_echo_the_request() {
        let not_json = parse("{oops").unwrap_err();
        assert_eq!(not_json.req, Value::String("{oops".into()));
        let unknown = parse(r#"{"action": "dance", "data": {"x": 1}}"#).unwrap_err();
        assert_eq!(unknown.req, json!({"x": 1}));
        assert!(unknown.msg.contains("dance"));
        let mismatch = parse(r#"{"action": "join", "data": {"s": "LEAVE"}}"#).unwrap_err();
        assert_eq!(mismatch.name, "LEAVE");
        let frame = mismatch.to_frame();
        assert_eq!(frame["c"], 2001);
        assert_eq!(frame["b"]["req"]["s"], "LEAVE");
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"action": "join", "data": 3}"#).is_err());
    }

    #[test]
    fn fields_are_type_checked() {
        let signal =
            parse(r#"{"s": "UPDATE", "ve": "yes", "ch": "x2y", "op": {"restarting": 1}}"#).unwrap();
        assert_eq!(signal.boolean("ve").unwrap_err().code, code::INVALID_SIGNAL);
        assert_eq!(
            signal.channel().unwrap_err().code,
            code::UNSUPPORTED_CHANNEL
        );
        assert!(signal.option("restarting").is_err());
        let ice = parse(r#"{"s": "ICE", "sdp": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMLineIndex": 0, "sdpMid": "0"}"#).unwrap();
        assert_eq!(ice.candidate().unwrap()["sdpMid"], "0");
        let bad = parse(r#"{"s": "ICE", "sdp": "candidate:x", "sdpMLineIndex": "zero"}"#).unwrap();
        assert!(bad.candidate().is_err());
    }

    #[test]
    fn enumerated_fields_take_the_documents_values_only() {
        let join = |body: &str| parse(&format!(r#"{{"s": "JOIN", {body}}}"#)).unwrap();
        for engine in ENGINES {
            let signal = join(&format!(r#""eg": "{engine}""#));
            assert_eq!(signal.one_of("eg", &ENGINES).unwrap(), Some(engine));
        }
        assert_eq!(join(r#""x": 1"#).one_of("eg", &ENGINES).unwrap(), None);
        for bad in [
            r#""eg": 5"#,
            r#""eg": "webex""#,
            r#""eg": """#,
            r#""eg": "Native""#,
        ] {
            let refusal = join(bad).one_of("eg", &ENGINES).unwrap_err();
            assert_eq!(refusal.code, code::INVALID_SIGNAL, "{bad}");
        }
        let ss = |ss: &str| join(&format!(r#""ss": {ss}"#)).session_info();
        let good = ss(r#"{"host": "iOS_EX", "category": "screenshare"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((good.host(), good.category()), ("iOS_EX", "screenshare"));
        let default = ss(r#"{"host": null}"#).unwrap().unwrap();
        assert_eq!((default.host(), default.category()), ("Web", "stream"));
        for bad in [
            r#"{"host": "Windows"}"#,
            r#"{"host": "ios"}"#,
            r#"{"host": ""}"#,
            r#"{"host": 1}"#,
            r#"{"category": "camera"}"#,
            r#"{"category": ""}"#,
        ] {
            assert_eq!(ss(bad).unwrap_err().code, code::INVALID_SIGNAL, "{bad}");
        }
    }
}
