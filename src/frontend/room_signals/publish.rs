//! The publish request flow of `m2m` and `a2m` rooms: a viewer's `PUBLISH_REQUEST` goes
//! to the admin, whose `PUBLISH_ACCEPT` makes the viewer a publisher of what it asked
//! for, and whose `PUBLISH_REJECT` tells it no. Requests are pending in the [`hub`] until
//! answered, so that only a viewer who asked can be accepted or rejected.
//!
//! [`hub`]: super::hub

use serde_json::{Map, Value, json};

use super::Session;
use super::hub::{Request, Requested};
use super::protocol::{Channel, Refusal, Signal, code, frame};

impl Session {
    pub(super) fn publish_request(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        self.check_publish_flow()?;
        // What the viewer asks to publish: both, unless it says otherwise; never video in
        // an audio-only room.
        let video = signal.boolean("ve")?.unwrap_or(true);
        let audio = signal.boolean("ae")?.unwrap_or(true);
        let (room, me) = self.record()?;
        if me.publisher {
            return Err(Refusal::new(
                code::ALREADY_IS_PUBLISHER,
                "this session publishes already",
            ));
        }
        let video = video && room.channel != Channel::A2m;
        if !video && !audio {
            return Err(Refusal::invalid(
                "a publish request asks for video or audio: \"ve\" or \"ae\" true",
            ));
        }
        let mut forward = signal.body.clone();
        forward.insert("s".into(), json!("PUBLISH_REQUEST"));
        forward.insert("rid".into(), json!(room.rid));
        forward.insert("ch".into(), json!(room.channel.name()));
        forward.insert("ss".into(), me.info.to_json());
        forward.insert("ve".into(), json!(video));
        forward.insert("ae".into(), json!(audio));
        let to = json!({
            "userId": me.user(),
            "sessionId": me.session,
        });
        let granted = json!({
            "s": "PUBLISH_ACCEPT",
            "rid": room.rid,
            "ch": room.channel.name(),
            "to": to,
            "pt": "admin",
            "from": null,
        });
        let request = Request::new(
            video,
            audio,
            frame("PUBLISH_REQUEST", Value::Object(forward)),
            frame("PUBLISH_ACCEPT", granted),
        );
        let requested = self
            .ctx
            .room_signals
            .request(&room.group, &room.session, request)?;
        match requested {
            Requested::Forwarded => {
                tracing::debug!(session = room.session, "publish request to the admin");
            }
            Requested::Granted => {
                tracing::debug!(session = room.session, "publish request granted: no admin");
            }
        }
        Ok(json!({"rid": room.rid}))
    }

    /// `PUBLISH_ACCEPT` (`accept`) or `PUBLISH_REJECT` from the admin: the requesters
    /// `to` names receive the admin's signal, with `pt` (their role now) and `from` (the
    /// admin's `ss`).
    pub(super) fn publish_answer(
        &mut self,
        signal: &Signal,
        accept: bool,
    ) -> Result<Value, Refusal> {
        self.check_publish_flow()?;
        let target = signal
            .target()?
            .ok_or_else(|| Refusal::invalid("missing \"to\": whose request this answers"))?;
        let (s, what, pt) = if accept {
            ("PUBLISH_ACCEPT", "accept publish requests", "publisher")
        } else {
            ("PUBLISH_REJECT", "reject publish requests", "viewer")
        };
        let (room, me) = self.require_admin(what)?;
        let mut forward: Map<String, Value> = signal.body.clone();
        forward.insert("s".into(), json!(s));
        forward.insert("rid".into(), json!(room.rid));
        forward.insert("ch".into(), json!(room.channel.name()));
        forward.insert("ss".into(), me.info.to_json());
        forward.insert("to".into(), target.to_json());
        forward.insert("pt".into(), json!(pt));
        forward.insert("from".into(), me.info.to_json());
        self.ctx.room_signals.answer(
            &room.group,
            &target,
            accept,
            frame(s, Value::Object(forward)),
        )?;
        Ok(json!({"rid": room.rid, "to": target.to_json()}))
    }

    /// The publish request flow is for `m2m` and `a2m` rooms.
    fn check_publish_flow(&self) -> Result<(), Refusal> {
        match self.room.as_ref().map(|r| r.channel) {
            Some(Channel::M2m | Channel::A2m) | None => Ok(()),
            Some(other) => Err(Refusal::new(
                code::UNSUPPORTED_CHANNEL,
                format!("{} rooms have no publish requests", other.name()),
            )),
        }
    }
}
