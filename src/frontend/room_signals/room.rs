//! The room operation signals: `JOIN`, `UPDATE`, `HEARTBEAT`, `KICK`, the publish
//! request flow, and the publisher list they all end up changing.

use std::collections::HashSet;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::hub::{self, Entry, Found, Notice, Record};
use super::protocol::{Channel, ENGINES, Refusal, SessionInfo, Signal, Target, code};
use super::{PROTOCOL, Room, Session};
use crate::group::{
    ActionError, ClientHandle, ClientId, ClientInfo, GroupName, JoinError, JoinRequest, MediaKind,
    StreamInfo,
};

impl Session {
    pub(super) async fn join(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        if let Some(room) = &self.room {
            return Err(Refusal::invalid(format!(
                "already in room {}: LEAVE it first",
                room.rid
            )));
        }
        let channel = signal
            .channel()?
            .ok_or_else(|| Refusal::invalid("missing \"ch\": m2m, p2p, a2m or p2m"))?;
        let rid = signal.required("rid")?.to_owned();
        let group = GroupName::new(&rid)
            .ok_or_else(|| Refusal::new(code::ROOM_NOT_FOUND, format!("no room {rid:?}")))?;
        // We have one engine: whatever the app asks for (one of the document's), the ack
        // says `native`, which the document lets the server decide.
        signal.one_of("eg", &ENGINES)?;
        let creating = signal.option("roomCreating")?;
        let faking = signal.option("userFaking")?;
        let mut info = signal.session_info()?.unwrap_or_default();
        if faking {
            info.user_id
                .get_or_insert_with(|| ClientId::random().to_string());
            info.session_id
                .get_or_insert_with(|| ClientId::random().to_string());
        }
        let (Some(user), Some(session)) = (info.user_id.clone(), info.session_id.clone()) else {
            return Err(Refusal::invalid(
                "missing \"ss.userId\" or \"ss.sessionId\" (or op.userFaking)",
            ));
        };
        let video = signal.boolean("ve")?.unwrap_or(false) && channel != Channel::A2m;
        let audio = signal.boolean("ae")?.unwrap_or(false);
        let others_present = self
            .ctx
            .registry
            .get(&rid)
            .is_ok_and(|g| g.client_count() > 0);
        let id = ClientId::new(&session)
            .ok_or_else(|| Refusal::invalid("\"ss.sessionId\" is not a valid id"))?;
        let (notices, notices_rx) = mpsc::unbounded_channel();
        let ctx = self.ctx.clone();
        let hub = &ctx.room_signals;
        let publisher = hub.enter(Entry {
            group: group.clone(),
            channel,
            creating,
            others_present,
            info: info.clone(),
            session: session.clone(),
            video,
            audio,
            notices,
        })?;
        let (client, queue) = ClientHandle::new(ClientInfo {
            id,
            protocol: PROTOCOL,
            address: self.address,
            chats: false,
        });
        let request = JoinRequest {
            group: rid.clone(),
            username: user.clone(),
            password: None,
            client,
            data: Default::default(),
        };
        let joined = self
            .ctx
            .registry
            .join_room(request, self.ctx.room_signals_rooms)
            .await;
        let membership = match joined {
            Ok(membership) => membership,
            Err(error) => {
                hub.leave(&group, &session, false);
                return Err(join_refusal(error, &rid));
            }
        };
        tracing::debug!(
            session,
            user,
            room = rid,
            ?channel,
            publisher,
            "Room Signals join"
        );
        self.left = None;
        self.room = Some(Room {
            group: group.clone(),
            rid: rid.clone(),
            channel,
            session: session.clone(),
            membership,
            queue,
            notices: notices_rx,
            last_list: None,
            up: None,
            watching: Default::default(),
        });
        hub.announce(&group);
        // A viewer gets the admin's stream straight away, as `sdps`.
        let mut es = json!({"icfg": self.ice_configuration()});
        if !publisher && channel.through_sfu() {
            let records = hub.records(&group);
            let admin_stream = hub::admin(&records).and_then(|admin| {
                self.streams()
                    .into_iter()
                    .find(|s| s.id == admin.session && s.owner.as_str() == admin.session)
            });
            if let Some(stream) = admin_stream {
                match self.watch(&stream.id, false).await {
                    Ok(sdp) => es["sdps"] = json!({"id": stream.id, "sdp": sdp}),
                    Err(refusal) => {
                        tracing::debug!(session, "no sdps for the admin: {}", refusal.msg);
                    }
                }
            }
        }
        let list = self.publisher_list().unwrap_or_default();
        if let Some(room) = self.room.as_mut() {
            room.last_list = Some(list.clone());
        }
        Ok(json!({
            "rid": rid,
            "pt": role_name(publisher, &hub.records(&group), &session),
            "eg": "native",
            "es": es,
            "pps": list,
            "ss": info.to_json(),
        }))
    }

    /// `icfg`: our ICE servers, as URLs (`is`, what the apps read) and as
    /// `RTCIceServer`s with their credentials (`iceServers`).
    fn ice_configuration(&self) -> Value {
        let servers = self.ctx.config.ice_servers();
        let urls: Vec<&String> = servers.iter().flat_map(|s| &s.urls).collect();
        let full: Vec<Value> = servers.iter().map(|s| s.to_json()).collect();
        json!({"is": urls, "iceServers": full})
    }

    /// The group's announced streams.
    pub(super) fn streams(&self) -> Vec<std::sync::Arc<StreamInfo>> {
        self.room
            .as_ref()
            .map(|r| r.membership.group().streams(None))
            .unwrap_or_default()
    }

    /// The room's publishers as `pps`: the Room Signals publishers, the admin first and
    /// then by how long they have published, then the streams of the clients of other protocols.
    pub(super) fn publisher_list(&self) -> Option<Value> {
        let room = self.room.as_ref()?;
        let records = self.ctx.room_signals.records(&room.group);
        let streams = self.streams();
        let admin = hub::admin(&records).map(|r| r.session.clone());
        let sessions: HashSet<&str> = records.iter().map(|r| r.session.as_str()).collect();
        let mut list = vec![];
        for record in hub::publishers(&records) {
            let publishing = room.channel.through_sfu()
                && streams
                    .iter()
                    .any(|s| s.id == record.session && s.owner.as_str() == record.session);
            let role = if admin.as_ref() == Some(&record.session) {
                "admin"
            } else {
                "publisher"
            };
            list.push(entry(
                &record.session,
                &record.info,
                role,
                record.video,
                record.audio,
                publishing,
            ));
        }
        for stream in streams
            .iter()
            .filter(|s| !sessions.contains(s.owner.as_str()))
        {
            let info = SessionInfo {
                user_id: Some(stream.username.clone()),
                session_id: Some(stream.id.clone()),
                category: Some(
                    if stream.label == "screenshare" {
                        "screenshare"
                    } else {
                        "stream"
                    }
                    .into(),
                ),
                host: Some("Web".into()),
                ..Default::default()
            };
            list.push(entry(
                &stream.id,
                &info,
                "publisher",
                stream.has_video,
                stream.has_audio,
                true,
            ));
        }
        Some(Value::Array(list))
    }

    pub(super) fn record(&self) -> Result<(&Room, Record), Refusal> {
        let room = self.joined()?;
        let record = self
            .ctx
            .room_signals
            .record(&room.group, &room.session)
            .ok_or_else(|| Refusal::new(code::ROOM_NOT_FOUND, "no longer in the room"))?;
        Ok((room, record))
    }

    /// Fails unless this session is the room's admin.
    pub(super) fn require_admin(&self, what: &str) -> Result<(&Room, Record), Refusal> {
        let (room, me) = self.record()?;
        let records = self.ctx.room_signals.records(&room.group);
        if hub::admin(&records).map(|r| &r.session) != Some(&me.session) {
            return Err(Refusal::new(
                code::PERMISSION_NOT_FOUND,
                format!("only the room's admin may {what}"),
            ));
        }
        Ok((room, me))
    }

    pub(super) fn update(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        let (room, me) = self.record()?;
        if !me.publisher {
            return Err(Refusal::new(
                code::PERMISSION_NOT_FOUND,
                "only publishers send UPDATE",
            ));
        }
        let video = signal.boolean("ve")?.unwrap_or(me.video) && room.channel != Channel::A2m;
        let audio = signal.boolean("ae")?.unwrap_or(me.audio);
        if room.up.is_some() {
            for (kind, on) in [(MediaKind::Video, video), (MediaKind::Audio, audio)] {
                if let Err(error) = room.membership.hold(&room.session, kind, !on) {
                    tracing::debug!(session = room.session, "cannot hold {kind:?}: {error}");
                }
            }
        }
        self.ctx
            .room_signals
            .set_media(&room.group, &room.session, video, audio);
        Ok(json!({"rid": room.rid, "ve": video, "ae": audio}))
    }

    pub(super) fn heartbeat(&mut self, signal: &Signal) -> Result<Option<Value>, Refusal> {
        let bid = signal.string("bid")?.map(str::to_owned);
        if !signal.boolean("send_ack")?.unwrap_or(false) {
            return Ok(None);
        }
        let list = self.publisher_list().unwrap_or_default();
        if let Some(room) = self.room.as_mut() {
            room.last_list = Some(list.clone());
        }
        Ok(Some(json!({"rid": self.rid(), "bid": bid, "pps": list})))
    }

    pub(super) fn kick(&mut self, signal: &Signal) -> Result<Value, Refusal> {
        if self
            .room
            .as_ref()
            .is_some_and(|r| r.channel == Channel::P2p)
        {
            return Err(Refusal::new(
                code::UNSUPPORTED_CHANNEL,
                "there is no KICK in p2p rooms",
            ));
        }
        let target = signal
            .target()?
            .ok_or_else(|| Refusal::invalid("missing \"to\": whom to kick"))?;
        let (room, me) = self.require_admin("kick")?;
        let hub = &self.ctx.room_signals;
        let mut kicked = false;
        let found = hub.find(&room.group, &target);
        if let Found::Sessions(records) = &found {
            let sessions: Vec<String> = records.iter().map(|r| r.session.clone()).collect();
            let from = me.info.to_json();
            hub.tell(&room.group, &sessions, Notice::Kicked { from });
            kicked = true;
        }
        // Members of other protocols: by their name, their id or a stream's id.
        for member in self.other_members(&target) {
            match room
                .membership
                .kick_with_credential(&member, "kicked out by the room's admin")
            {
                Ok(()) => kicked = true,
                Err(ActionError::NoSuchUser) => {}
                Err(error) => {
                    return Err(Refusal::new(code::INTERNAL_SERVER_ERROR, error.to_string()));
                }
            }
        }
        if !kicked {
            return Err(not_here(&found, &target, code::RECIPIENT_NOT_MEMBER));
        }
        Ok(json!({"rid": room.rid, "to": target.to_json()}))
    }

    /// The group's members of other protocols a target names.
    fn other_members(&self, target: &Target) -> Vec<ClientId> {
        let Some(room) = &self.room else {
            return vec![];
        };
        let streams = self.streams();
        room.membership
            .members()
            .into_iter()
            .filter(|m| m.protocol != PROTOCOL)
            .filter(|m| match target {
                Target::User(user) => &m.username == user,
                Target::Session { session, .. } => {
                    m.id.as_str() == session
                        || streams.iter().any(|s| &s.id == session && s.owner == m.id)
                }
            })
            .map(|m| m.id)
            .collect()
    }
}

/// A publisher list entry: the fields of both the join ack's and the list push's.
fn entry(
    id: &str,
    info: &SessionInfo,
    role: &str,
    video: bool,
    audio: bool,
    publish: bool,
) -> Value {
    let user = info.user_id.as_deref().unwrap_or("");
    json!({
        "id": id,
        "sessionId": id,
        "userId": user,
        "username": user,
        "fullname": info.fullname.as_deref().unwrap_or(user),
        "avatar": info.avatar.as_deref().unwrap_or(""),
        "role": role,
        "video": video,
        "audio": audio,
        "publish": publish,
        "host": info.host(),
        "category": info.category(),
        "deviceId": info.device_id.as_deref().unwrap_or(""),
    })
}

/// A session's role as the protocol names it.
fn role_name(publisher: bool, records: &[Record], session: &str) -> &'static str {
    if !publisher {
        "viewer"
    } else if hub::admin(records).is_some_and(|a| a.session == session) {
        "admin"
    } else {
        "publisher"
    }
}

/// The error for a target that is not in the room: `USER_LEFT` if it was.
pub(super) fn not_here(found: &Found, target: &Target, never: u16) -> Refusal {
    let who = hub::describe(target);
    match found {
        Found::Left => Refusal::new(code::USER_LEFT, format!("{who} left the room")),
        _ => Refusal::new(never, format!("{who} is not in the room")),
    }
}

/// A failed core join in the protocol's terms.
fn join_refusal(error: JoinError, rid: &str) -> Refusal {
    match error {
        JoinError::IllegalGroupName | JoinError::NoSuchGroup => {
            Refusal::new(code::ROOM_NOT_FOUND, format!("no room {rid:?}"))
        }
        JoinError::NotAuthorised | JoinError::Redirect(_) => Refusal::new(
            code::ROOM_NOT_FOUND,
            format!("room {rid:?} does not admit Room Signals apps"),
        ),
        JoinError::IllegalUsername => Refusal::invalid("\"ss.userId\" is not a valid user name"),
        JoinError::DuplicateClientId => Refusal::new(
            code::ALREADY_EXIST_ROOM,
            format!("this sessionId is already in room {rid}"),
        ),
        other => Refusal::new(code::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}
