//! The hub's rules: roles, seats, seniority and requests, without sockets.

use super::*;

fn entry(session: &str, channel: Channel, creating: bool, media: bool) -> Entry {
    Entry {
        group: GroupName::new("room").unwrap(),
        channel,
        creating,
        others_present: false,
        info: SessionInfo {
            user_id: Some(format!("user-{session}")),
            session_id: Some(session.into()),
            ..Default::default()
        },
        session: session.into(),
        video: media,
        audio: media,
        notices: mpsc::unbounded_channel().0,
    }
}

#[test]
fn roles_follow_the_room_type_and_its_limit() {
    let hub = Hub::default();
    let room = GroupName::new("room").unwrap();
    assert_eq!(
        hub.enter(entry("a", Channel::M2m, false, true))
            .unwrap_err()
            .code,
        code::ROOM_NOT_FOUND
    );
    assert!(hub.enter(entry("a", Channel::M2m, true, true)).unwrap());
    assert_eq!(
        hub.enter(entry("b", Channel::M2m, true, true))
            .unwrap_err()
            .code,
        code::ALREADY_EXIST_ROOM
    );
    assert_eq!(
        hub.enter(entry("b", Channel::A2m, false, true))
            .unwrap_err()
            .code,
        code::UNSUPPORTED_CHANNEL
    );
    assert!(
        !hub.enter(entry("quiet", Channel::M2m, false, false))
            .unwrap()
    );
    for n in 1..MAX_PUBLISHERS {
        assert!(
            hub.enter(entry(&n.to_string(), Channel::M2m, false, true))
                .unwrap()
        );
    }
    assert!(
        !hub.enter(entry("tenth", Channel::M2m, false, true))
            .unwrap()
    );
    assert_eq!(admin(&hub.records(&room)).unwrap().session, "a");
    hub.leave(&room, "a", true);
    assert_eq!(admin(&hub.records(&room)).unwrap().session, "1");
    assert!(matches!(
        hub.find(&room, &Target::User("user-a".into())),
        Found::Left
    ));
    assert!(matches!(
        hub.find(&room, &Target::User("nobody".into())),
        Found::Never
    ));
}

#[test]
fn a_p2p_room_holds_two_peers() {
    let hub = Hub::default();
    assert!(hub.enter(entry("a", Channel::P2p, true, true)).unwrap());
    assert!(hub.enter(entry("b", Channel::P2p, false, false)).unwrap());
    assert_eq!(
        hub.enter(entry("c", Channel::P2p, false, true))
            .unwrap_err()
            .code,
        code::UNSUPPORTED_CHANNEL,
        "a third peer"
    );
}

fn room() -> GroupName {
    GroupName::new("room").unwrap()
}

/// An entry whose notices the test reads.
fn listening(
    session: &str,
    channel: Channel,
    creating: bool,
    media: bool,
) -> (Entry, mpsc::UnboundedReceiver<Notice>) {
    let (notices, rx) = mpsc::unbounded_channel();
    let entry = Entry {
        notices,
        ..entry(session, channel, creating, media)
    };
    (entry, rx)
}

/// The frames among the notices received so far.
fn frames(rx: &mut mpsc::UnboundedReceiver<Notice>) -> Vec<Value> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|n| match n {
            Notice::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

fn request(video: bool, audio: bool, from: &str) -> Request {
    let forward = serde_json::json!({"s": "PUBLISH_REQUEST", "from": from});
    let granted = serde_json::json!({"s": "PUBLISH_ACCEPT", "to": from});
    Request::new(video, audio, forward, granted)
}

fn session(target: &str) -> Target {
    Target::Session {
        user: None,
        session: target.into(),
    }
}

#[test]
fn the_admin_is_who_has_published_longest_and_promotion_counts_from_acceptance() {
    let hub = Hub::default();
    let (room, target) = (room(), session("v"));
    assert!(hub.enter(entry("a", Channel::M2m, true, true)).unwrap());
    assert!(!hub.enter(entry("v", Channel::M2m, false, false)).unwrap());
    assert!(hub.enter(entry("b", Channel::M2m, false, true)).unwrap());
    hub.request(&room, "v", request(true, false, "v")).unwrap();
    hub.answer(&room, &target, true, Value::Null).unwrap();
    let v = hub.record(&room, "v").unwrap();
    assert!(
        v.publisher && v.video && !v.audio,
        "what v asked for: {v:?}"
    );
    let order: Vec<String> = publishers(&hub.records(&room))
        .iter()
        .map(|r| r.session.clone())
        .collect();
    assert_eq!(order, ["a", "b", "v"], "by how long they publish");
    hub.leave(&room, "a", true);
    assert_eq!(
        admin(&hub.records(&room)).unwrap().session,
        "b",
        "b published before v, who joined earlier"
    );
}

#[test]
fn only_pending_requests_are_answered() {
    let hub = Hub::default();
    let room = room();
    let (ana, mut ana_rx) = listening("a", Channel::M2m, true, true);
    hub.enter(ana).unwrap();
    let (vic, mut vic_rx) = listening("v", Channel::M2m, false, false);
    hub.enter(vic).unwrap();
    hub.enter(entry("w", Channel::M2m, false, false)).unwrap();
    let code_of = |target: &str, accept: bool| {
        hub.answer(&room, &session(target), accept, Value::Null)
            .unwrap_err()
            .code
    };
    assert_eq!(code_of("v", true), code::INVALID_SIGNAL, "v never asked");
    assert_eq!(code_of("v", false), code::INVALID_SIGNAL, "v never asked");
    assert_eq!(code_of("a", true), code::INVALID_SIGNAL, "a publishes");
    assert_eq!(code_of("nobody", true), code::NOT_ROOM_MEMBER);
    assert_eq!(
        hub.request(&room, "v", request(true, true, "v")).unwrap(),
        Requested::Forwarded
    );
    assert_eq!(frames(&mut ana_rx)[0]["from"], "v", "the admin is asked");
    assert_eq!(
        hub.answer(&room, &session("v"), false, serde_json::json!("no"))
            .unwrap(),
        ["v"]
    );
    assert_eq!(frames(&mut vic_rx), ["no"]);
    assert!(!hub.record(&room, "v").unwrap().publisher);
    assert_eq!(code_of("v", true), code::INVALID_SIGNAL, "answered already");
    assert_eq!(
        hub.request(&room, "a", request(true, true, "a"))
            .unwrap_err()
            .code,
        code::ALREADY_IS_PUBLISHER
    );
    hub.leave(&room, "w", true);
    assert_eq!(code_of("w", true), code::NOT_ROOM_MEMBER, "w left");
}

#[test]
fn a_full_room_keeps_the_request_pending() {
    let hub = Hub::default();
    let room = room();
    hub.enter(entry("0", Channel::M2m, true, true)).unwrap();
    for n in 1..MAX_PUBLISHERS {
        assert!(
            hub.enter(entry(&n.to_string(), Channel::M2m, false, true))
                .unwrap()
        );
    }
    hub.enter(entry("v", Channel::M2m, false, false)).unwrap();
    hub.request(&room, "v", request(true, true, "v")).unwrap();
    let full = hub
        .answer(&room, &session("v"), true, Value::Null)
        .unwrap_err();
    assert_eq!(full.code, code::UNSUPPORTED_CHANNEL, "{full:?}");
    hub.leave(&room, "3", true);
    hub.answer(&room, &session("v"), true, Value::Null).unwrap();
    assert!(hub.record(&room, "v").unwrap().publisher);
}

#[test]
fn requests_outlive_their_admin() {
    let hub = Hub::default();
    let room = room();
    hub.enter(entry("a", Channel::M2m, true, true)).unwrap();
    let (ben, mut ben_rx) = listening("b", Channel::M2m, false, true);
    hub.enter(ben).unwrap();
    let (vic, mut vic_rx) = listening("v", Channel::M2m, false, false);
    hub.enter(vic).unwrap();
    let (wes, mut wes_rx) = listening("w", Channel::M2m, false, false);
    hub.enter(wes).unwrap();
    hub.request(&room, "v", request(true, true, "v")).unwrap();
    hub.request(&room, "w", request(false, true, "w")).unwrap();
    // The next admin is asked again.
    hub.leave(&room, "a", true);
    let asked: Vec<Value> = frames(&mut ben_rx)
        .iter()
        .map(|f| f["from"].clone())
        .collect();
    assert_eq!(asked, ["v", "w"]);
    // No publisher left: the oldest request is granted, and its viewer asked the rest.
    hub.leave(&room, "b", true);
    assert_eq!(frames(&mut vic_rx)[0]["s"], "PUBLISH_ACCEPT");
    assert_eq!(admin(&hub.records(&room)).unwrap().session, "v");
    let asked: Vec<Value> = frames(&mut vic_rx)
        .iter()
        .map(|f| f["from"].clone())
        .collect();
    assert!(asked.is_empty(), "the accept came first: {asked:?}");
    assert!(frames(&mut wes_rx).is_empty(), "w still waits");
    assert!(hub.record(&room, "w").unwrap().request.is_some());
}

#[test]
fn the_free_publisher_seat_of_a_p2m_room_can_be_taken() {
    let hub = Hub::default();
    let room = room();
    assert!(hub.enter(entry("a", Channel::P2m, true, true)).unwrap());
    assert!(!hub.enter(entry("v", Channel::P2m, false, true)).unwrap());
    assert_eq!(
        hub.enter(entry("b", Channel::P2m, true, true))
            .unwrap_err()
            .code,
        code::ALREADY_EXIST_ROOM,
        "a has the seat"
    );
    hub.leave(&room, "a", true);
    assert!(
        !hub.enter(entry("w", Channel::P2m, false, true)).unwrap(),
        "joining is not taking the seat"
    );
    assert!(
        hub.enter(entry("b", Channel::P2m, true, true)).unwrap(),
        "roomCreating takes the free seat"
    );
    assert_eq!(admin(&hub.records(&room)).unwrap().session, "b");
    // Only clients of other protocols in the group: the seat is free too.
    let other = GroupName::new("web").unwrap();
    let joining = Entry {
        group: other.clone(),
        others_present: true,
        ..entry("c", Channel::P2m, true, true)
    };
    assert!(hub.enter(joining).unwrap());
}
