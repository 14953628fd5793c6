//! Room Signals apps with the clients of other protocols, and the server's configuration.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_signals_apps_and_galene_clients_meet_in_a_group() {
    // Anyone may enter and publish; boss/secret is an operator.
    let server = server_with_hub(&group_with_op("present", ""));
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (publisher, _) = ana.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();

    // A Galène client sees ana and receives her stream.
    let gal = common::rtc::join(&server, "gal-id", "hub", "gal", "").await;
    next_matching(&gal, "ana in the people list", |m| {
        m["type"] == "user" && m["kind"] == "add" && m["id"] == "ana-1" && m["username"] == "ana"
    })
    .await;
    gal.request(json!({"": ["audio", "video"]}));
    let offer = next_matching(&gal, "ana's stream", |m| m["type"] == "offer").await;
    assert_eq!(offer["source"], "ana-1", "{offer}");
    assert_eq!(offer["username"], "ana");
    let stream = offer["id"].as_str().unwrap().to_owned();
    wait_until("gal to receive ana's stream", || {
        gal.subscriber(&stream)
            .is_some_and(|s| packets(&s, Kind::Video) > 60 && packets(&s, Kind::Audio) > 50)
    })
    .await;

    // A Galène publisher is a publisher for Room Signals apps, who can watch it.
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    next_matching(&gal, "vic in the people list", |m| {
        m["type"] == "user" && m["kind"] == "add" && m["id"] == "vic-1" && m["username"] == "vic"
    })
    .await;
    let camera = gal
        .publish("g-cam", "camera", av(None, 30, None), MEDIA_PATIENCE)
        .await
        .expect("gal publishes");
    camera.start();
    let pps = vic
        .list_until("gal's camera flowing", |pps| {
            entry(pps, "g-cam").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let cam = entry(&pps, "g-cam").unwrap();
    for field in ENTRY_FIELDS {
        assert!(cam.get(field).is_some(), "{field} in {cam}");
    }
    assert_eq!(cam["userId"], "gal");
    assert_eq!(cam["username"], "gal");
    assert_eq!(cam["role"], "publisher");
    assert_eq!(cam["host"], "Web");
    assert_eq!(cam["category"], "stream");
    let subscriber = vic.watch(cam).await;
    wait_for_media("vic to receive gal's camera", &subscriber, 60, 50).await;

    // The admin may kick the Galène client too.
    ana.ok(
        "kick",
        "KICK",
        json!({"to": {"userId": "gal", "sessionId": "gal-id"}}),
    )
    .await;
    next_matching(&gal, "the kick", |m| {
        m["type"] == "usermessage" && m["kind"] == "kicked"
    })
    .await;
    vic.list_until("gal's camera gone", |pps| entry(pps, "g-cam").is_none())
        .await;

    // An operator of the web client may kick a Room Signals session.
    let mut boss = Client::join(&server.ws_url(), "boss-id", "hub", "boss", "secret").await;
    boss.user_action("kick", "vic-1", json!("bye")).await;
    let kick = vic.push("KICK").await;
    assert_eq!(kick["b"]["rid"], "hub");
    assert_eq!(kick["b"]["from"]["userId"], "boss", "{kick}");
    assert!(kick["b"]["msg"].is_string(), "{kick}");
    let after = vic
        .request(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "still here?", "send_ack": true}),
        )
        .await;
    assert_eq!(
        after["c"], 4001,
        "vic is out of the room: ROOM_NOT_FOUND tells the app so: {after}"
    );
    boss.recv_matching(|m| m["type"] == "user" && m["kind"] == "delete" && m["id"] == "vic-1")
        .await;
}

#[tokio::test]
async fn ice_servers_reach_joining_apps() {
    let server = server();
    std::fs::write(
        server.dir.join("data/ice-servers.json"),
        r#"[{"urls": ["stun:stun.example.org:3478"]},
            {"urls": ["turn:turn.example.org"], "username": "u",
             "credential": "s", "credentialType": "hmac-sha1"}]"#,
    )
    .unwrap();
    let (_ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let icfg = &joined_ana["es"]["icfg"];
    let mut urls: Vec<&str> = icfg["is"]
        .as_array()
        .unwrap_or_else(|| panic!("is: {icfg}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        ["stun:stun.example.org:3478", "turn:turn.example.org"]
    );
    let turn = &icfg["iceServers"][1];
    assert_eq!(turn["urls"], json!(["turn:turn.example.org"]), "{icfg}");
    assert!(
        turn["username"].as_str().is_some_and(|u| u.ends_with(":u")),
        "{turn}"
    );
    assert!(turn["credential"].is_string(), "{turn}");
    assert_ne!(turn["credential"], "s", "derived, not the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_takes_the_publisher_seat_of_a_p2m_room_among_web_clients() {
    let server = server();
    let gal = common::rtc::join(&server, "gal-id", "hub", "gal", "").await;
    // The group exists (gal is in it) but has no Room Signals publisher.
    let (mut ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "p2m", creating()).await;
    assert_eq!(joined_ana["pt"], "admin", "{joined_ana}");
    let (publisher, _) = ana.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    gal.request(json!({"": ["audio", "video"]}));
    let offer = next_matching(&gal, "ana's stream", |m| m["type"] == "offer").await;
    assert_eq!(offer["source"], "ana-1", "{offer}");
    let stream = offer["id"].as_str().unwrap().to_owned();
    wait_until("gal to receive ana's broadcast", || {
        gal.subscriber(&stream)
            .is_some_and(|s| packets(&s, Kind::Video) > 60 && packets(&s, Kind::Audio) > 50)
    })
    .await;
    let mut ben = Rs::connect(&server, "ben", "ben-1", "hub", "p2m").await;
    assert_eq!(
        ben.fails("join", "JOIN", creating()).await,
        4022,
        "ana has the seat"
    );
    let (_vic, joined_vic) = joined(&server, "vic", "vic-1", "hub", "p2m", publishing()).await;
    assert_eq!(joined_vic["pt"], "viewer", "{joined_vic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_rooms_lets_an_app_create_an_m2m_room_of_any_name() {
    let server = any_rooms_server();
    let (mut ana, joined_ana) =
        joined(&server, "ana", "ana-1", "lesson-42", "m2m", creating()).await;
    assert_eq!(joined_ana["pt"], "admin", "{joined_ana}");
    let (mut vic, joined_vic) =
        joined(&server, "vic", "vic-1", "lesson-42", "m2m", viewing()).await;
    assert_eq!(joined_vic["pt"], "viewer", "{joined_vic}");
    let (publisher, _) = ana.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ana publishing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ana-1").unwrap()).await;
    wait_for_media("vic to receive ana in lesson-42", &subscriber, 60, 50).await;

    // The room lives while someone is in it: once both left, it is gone.
    for rs in [&mut ana, &mut vic] {
        rs.stop_heartbeats();
        rs.ok("leave", "LEAVE", json!({})).await;
    }
    let mut late = Rs::connect(&server, "late", "late-1", "lesson-42", "m2m").await;
    assert_eq!(
        late.fails("join", "JOIN", publishing()).await,
        4001,
        "nobody is in lesson-42 any more"
    );
    assert_eq!(
        late.join(creating()).await["c"],
        200,
        "it can be created again"
    );
}
