//! Media through the SFU (m2m, a2m) and between p2p peers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_receive_an_m2m_publishers_video_and_audio() {
    let server = server();
    let (mut ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    assert_eq!(joined_ana["pt"], "admin", "{joined_ana}");
    assert_eq!(joined_ana["eg"], "native");
    assert_eq!(
        joined_ana["es"]["icfg"],
        json!({"is": [], "iceServers": []}),
        "no ICE servers configured: {joined_ana}"
    );
    assert_eq!(joined_ana["ss"]["userId"], "ana");
    assert_eq!(joined_ana["ss"]["sessionId"], "ana-1");
    let pps = joined_ana["pps"].as_array().expect("pps");
    let me = entry(pps, "ana-1").expect("the admin is listed");
    for field in ENTRY_FIELDS {
        assert!(me.get(field).is_some(), "{field} in {me}");
    }
    assert_eq!(me["sessionId"], "ana-1");
    assert_eq!(me["userId"], "ana");
    assert_eq!(me["username"], "ana");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["host"], "iOS");
    assert_eq!(me["category"], "stream");
    assert_eq!(me["deviceId"], "device-ana-1");
    assert_eq!((&me["video"], &me["audio"]), (&json!(true), &json!(true)));
    assert_eq!(me["publish"], false, "nothing flows yet: {me}");

    // A viewer who comes before the stream has nothing to watch yet.
    let (mut vic, joined_vic) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    assert_eq!(joined_vic["pt"], "viewer", "{joined_vic}");
    assert!(
        joined_vic["es"].get("sdps").is_none_or(Value::is_null),
        "no offer before the admin publishes: {joined_vic}"
    );
    assert_eq!(ids(&joined_vic["pps"]), ["ana-1"], "viewers are not listed");

    let (publisher, answer) = ana.publish(av(None, 30, None)).await;
    assert!(
        answer.contains("m=video") && answer.contains("m=audio"),
        "{answer}"
    );
    let ice = ana.push("ICE").await;
    assert_eq!(
        ice["b"]["id"], "ana-1",
        "our own connection's candidate: {ice}"
    );
    assert_eq!(ice["b"]["rid"], "hub");
    for field in ["sdpMid", "sdpMLineIndex"] {
        assert!(ice["b"].get(field).is_some(), "{field} in {ice}");
    }
    assert!(
        ice["b"]["sdp"]
            .as_str()
            .is_some_and(|c| c.starts_with("candidate:")),
        "{ice}"
    );
    assert!(
        publisher.wait_connected(MEDIA_PATIENCE).await,
        "the publisher connects"
    );
    publisher.start();

    let pps = vic
        .list_until("ana publishing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let ana_entry = entry(&pps, "ana-1").unwrap();
    assert_eq!(ana_entry["role"], "admin");
    let to_ana = json!({"userId": ana_entry["userId"], "sessionId": ana_entry["sessionId"]});
    assert_eq!(to_ana, ana.to());
    let subscriber = vic.subscriber("ana-1").await;
    let offer = vic.watch_offer(&to_ana, "ana-1", json!({})).await;
    vic.answer_offer(&subscriber, to_ana.clone(), &offer).await;
    let ice = vic.push("ICE").await;
    assert_eq!(ice["b"]["id"], "ana-1", "the watched publisher's: {ice}");
    wait_for_media("vic to receive ana's video and audio", &subscriber, 60, 50).await;

    // WATCH again with op.restarting: a new offer that restarts ICE; media goes on.
    let renewed = vic
        .watch_offer(&to_ana, "ana-1", json!({"op": {"restarting": true}}))
        .await;
    assert_ne!(ice_ufrag(&renewed), ice_ufrag(&offer), "ICE restarted");
    vic.answer_offer(&subscriber, to_ana, &renewed).await;
    let count = packets(&subscriber, Kind::Video);
    wait_until("video after the ICE restart", || {
        packets(&subscriber, Kind::Video) > count + 60
    })
    .await;

    // A viewer who joins while the admin publishes gets the offer in the join ack.
    let (mut lea, joined_lea) = joined(&server, "lea", "lea-1", "hub", "m2m", viewing()).await;
    assert_eq!(joined_lea["pt"], "viewer");
    let sdps = &joined_lea["es"]["sdps"];
    assert_eq!(
        sdps["id"], "ana-1",
        "an offer for the admin's stream: {joined_lea}"
    );
    let offer = sdps["sdp"].as_str().expect("an SDP offer");
    assert!(
        offer.contains("m=video") && offer.contains("m=audio"),
        "{offer}"
    );
    let late = lea.subscriber("ana-1").await;
    // Answered naming the publisher by its session id alone.
    lea.answer_offer(&late, json!({"sessionId": "ana-1"}), offer)
        .await;
    wait_for_media("lea to receive ana's video and audio", &late, 60, 50).await;
    assert!(keyframes(&late) > 0, "lea can decode the video");

    let lists = vic.lists();
    assert!(!lists.is_empty());
    assert_no_repeats(&lists);
    assert_no_repeats(&ana.lists());
    for list in lists.iter().chain(&ana.lists()) {
        assert_eq!(ids(list), ["ana-1"], "only the publisher is listed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_video_or_audio_off_stops_it_for_viewers_until_it_is_on_again() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    // Keyframes only when asked for: resuming must ask for one.
    let (publisher, _) = ana.publish(av(None, 0, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ana publishing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ana-1").unwrap()).await;
    wait_for_media("media before the update", &subscriber, 60, 50).await;

    let ack = ana
        .ok("updateVideo", "UPDATE", json!({"ve": false, "ae": true}))
        .await;
    assert_eq!(
        (&ack["ve"], &ack["ae"]),
        (&json!(false), &json!(true)),
        "{ack}"
    );
    for rs in [&mut ana, &mut vic] {
        rs.list_until("ana's video off", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["video"] == false && e["audio"] == true)
        })
        .await;
    }
    // What was in flight arrives while a second of audio passes; then video stands still.
    let_pass(&subscriber, Kind::Audio, 50).await;
    let frozen = packets(&subscriber, Kind::Video);
    let sent = publisher.stats().video_packets;
    let_pass(&subscriber, Kind::Audio, 100).await;
    assert!(
        publisher.stats().video_packets > sent,
        "the app still sends video"
    );
    assert_eq!(
        packets(&subscriber, Kind::Video),
        frozen,
        "no video reaches the viewer while it is off"
    );

    let before = keyframes(&subscriber);
    let ack = ana
        .ok("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
        .await;
    assert_eq!(ack["ve"], true, "{ack}");
    vic.list_until("ana's video on", |pps| {
        entry(pps, "ana-1").is_some_and(|e| e["video"] == true)
    })
    .await;
    wait_until("video again, from a new keyframe", || {
        packets(&subscriber, Kind::Video) > frozen + 30 && keyframes(&subscriber) > before
    })
    .await;

    // The same for audio.
    ana.ok("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
        .await;
    vic.list_until("ana's audio off", |pps| {
        entry(pps, "ana-1").is_some_and(|e| e["audio"] == false && e["video"] == true)
    })
    .await;
    let_pass(&subscriber, Kind::Video, 60).await;
    let silent = packets(&subscriber, Kind::Audio);
    let_pass(&subscriber, Kind::Video, 120).await;
    assert_eq!(
        packets(&subscriber, Kind::Audio),
        silent,
        "no audio while it is off"
    );
    ana.ok("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
        .await;
    wait_until("audio again", || {
        packets(&subscriber, Kind::Audio) > silent + 20
    })
    .await;
    assert_no_repeats(&vic.lists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2m_rooms_refuse_video_and_carry_audio() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "a2m", creating()).await;
    let (mut ben, joined_ben) = joined(&server, "ben", "ben-1", "hub", "a2m", publishing()).await;
    assert_eq!(joined_ben["pt"], "publisher");
    let (mut vic, joined_vic) = joined(&server, "vic", "vic-1", "hub", "a2m", viewing()).await;
    assert_eq!(joined_vic["pt"], "viewer");

    // Audio and video offered: video refused (webrtc-rs cannot apply an answer that
    // refuses one of its tracks, so this offer goes no further).
    let both = Arc::new(Publisher::new(av(None, 30, None)).await.unwrap());
    let answer = ana.offer(&both).await;
    assert!(answer.contains("m=video 0 "), "video refused: {answer}");
    assert!(answer.contains("opus/48000"), "audio accepted: {answer}");
    both.close().await;

    // Audio flows to viewers.
    let audio_only = PublisherConfig {
        video: None,
        ..av(None, 30, None)
    };
    let (publisher, answer) = ben.publish(audio_only).await;
    assert!(answer.contains("opus/48000"), "{answer}");
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ben publishing", |pps| {
            entry(pps, "ben-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ben-1").unwrap()).await;
    wait_until("audio at the viewer", || {
        packets(&subscriber, Kind::Audio) > 50
    })
    .await;
    assert!(subscriber.stats().track(Kind::Video).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_peers_signal_through_the_server_and_connect_directly() {
    let server = any_rooms_server();
    let (mut amy, joined_amy) = joined(&server, "amy", "amy-1", "call-7", "p2p", creating()).await;

    let publisher = Arc::new(Publisher::new(av(None, 30, None)).await.unwrap());
    amy.register(P2P, Peer::Publisher(publisher.clone())).await;
    let offer = publisher.offer().await.unwrap();
    assert_eq!(
        amy.fails("offer", "OFFER", json!({"sdp": offer})).await,
        4003,
        "nobody to send it to yet"
    );

    let (mut bob, joined_bob) =
        joined(&server, "bob", "bob-1", "call-7", "p2p", publishing()).await;
    assert_eq!(joined_bob["pt"], "publisher", "{joined_bob}");

    let sent = amy.signal("offer", "OFFER", json!({"sdp": offer}));
    amy.trickle(publisher.take_candidates(), None);
    let relayed = bob
        .recv_matching(PATIENCE, "amy's offer", |m| {
            m["s"] == "OFFER" && m.get("c").is_none()
        })
        .await;
    assert_eq!(relayed, sent, "the offer arrives exactly as sent");

    let subscriber = bob.subscriber(P2P).await;
    let answer = subscriber.answer(relayed["sdp"].as_str().unwrap()).await;
    let sent = bob.signal("answer", "ANSWER", json!({"sdp": answer.unwrap()}));
    bob.trickle(subscriber.take_candidates(), None);
    let relayed = amy
        .recv_matching(PATIENCE, "bob's answer", |m| {
            m["s"] == "ANSWER" && m.get("c").is_none()
        })
        .await;
    assert_eq!(relayed, sent, "the answer arrives exactly as sent");
    publisher
        .set_answer(relayed["sdp"].as_str().unwrap())
        .await
        .unwrap();

    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    assert!(subscriber.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    wait_for_media("bob to receive amy's media", &subscriber, 60, 50).await;

    // The candidates came verbatim too, and the media went around the server.
    let (from_amy, from_bob) = (amy.sent_ice(), bob.sent_ice());
    for (to, sent) in [(&mut bob, from_amy), (&mut amy, from_bob)] {
        let relayed = to.received(|m| m["s"] == "ICE" && m.get("c").is_none());
        assert!(!relayed.is_empty(), "candidates relayed");
        for candidate in &relayed {
            assert!(
                sent.contains(candidate),
                "{candidate} not as sent: {sent:#?}"
            );
        }
        assert!(
            to.received(|m| m["s"] == "ICE" && m.get("c").is_some())
                .is_empty(),
            "the server has no candidates of its own in p2p"
        );
    }
    let stats = stats(&server).await;
    assert_eq!(
        stats["resources"]["peer_connections"], 0,
        "no media through the server: {stats}"
    );

    // Two peers at most; no room control in p2p.
    let mut cy = Rs::connect(&server, "cy", "cy-1", "call-7", "p2p").await;
    let third = cy.join(publishing()).await;
    assert_eq!(
        third["c"], 2002,
        "a third peer: the channel holds two (500 would tell it the server failed): {third}"
    );
    assert_eq!(
        amy.fails("kick", "KICK", json!({"to": bob.to()})).await,
        2002
    );
    assert_eq!(
        bob.fails("watch", "WATCH", json!({"to": amy.to()})).await,
        2002
    );
    assert_eq!(
        bob.fails(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true})
        )
        .await,
        2002
    );
    // Both peers publish; the one who created the room is its admin.
    assert_eq!(
        joined_amy["pt"], "admin",
        "the p2p room's creator: {joined_amy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_ice_restart_keeps_its_media_reaching_viewers() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (publisher, answer) = ana.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ana publishing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ana-1").unwrap()).await;
    wait_for_media("media before the restart", &subscriber, 60, 50).await;
    let ours = |m: &Value| m["s"] == "ICE" && m["c"] == 200 && m["b"]["id"] == "ana-1";
    let before = ana.received(ours).len();
    assert!(before > 0, "our candidates for the first connection");

    // The app restarts ICE (a network change): an offer with new credentials.
    let offer = publisher.restart_offer().await.expect("a restart offer");
    let ack = ana
        .ok(
            "offer",
            "OFFER",
            json!({"sdp": offer, "op": {"restarting": true}}),
        )
        .await;
    let renewed = ack["sdp"].as_str().expect("our answer");
    assert!(ice_ufrag(renewed).is_some(), "{renewed}");
    assert_ne!(
        ice_ufrag(renewed),
        ice_ufrag(&answer),
        "our answer carries new ICE credentials"
    );
    publisher
        .set_answer(renewed)
        .await
        .expect("the answer applies");
    // The restarted agent gathers again: its candidates follow.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ana.received(ours).len() <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no candidate of ours after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (video, audio) = (
        packets(&subscriber, Kind::Video),
        packets(&subscriber, Kind::Audio),
    );
    wait_for_media(
        "media after the restart",
        &subscriber,
        video + 60,
        audio + 50,
    )
    .await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);

    // An offer that says it restarts but keeps its credentials restarts nothing: refused.
    let same = publisher.offer().await.expect("an offer");
    assert_eq!(
        ana.fails(
            "offer",
            "OFFER",
            json!({"sdp": same, "op": {"restarting": true}})
        )
        .await,
        2001
    );
    let (video, audio) = (
        packets(&subscriber, Kind::Video),
        packets(&subscriber, Kind::Audio),
    );
    wait_for_media(
        "media after the refused offer",
        &subscriber,
        video + 30,
        audio + 25,
    )
    .await;

    // An app that restarts with a new RTCPeerConnection: the new connection replaces the
    // published stream, and a viewer who WATCHes again receives it.
    let fresh = Arc::new(Publisher::new(av(None, 30, None)).await.unwrap());
    let offer = fresh.offer().await.expect("an offer");
    ana.register("ana-1", Peer::Publisher(fresh.clone())).await;
    let ack = ana
        .ok(
            "offer",
            "OFFER",
            json!({"sdp": offer, "op": {"restarting": true}}),
        )
        .await;
    ana.trickle(fresh.take_candidates(), None);
    fresh
        .set_answer(ack["sdp"].as_str().expect("our answer"))
        .await
        .expect("the answer applies");
    assert!(
        fresh.wait_connected(MEDIA_PATIENCE).await,
        "the new connection comes up"
    );
    fresh.start();
    let pps = vic
        .list_until("ana's new stream flowing", |pps| {
            entry(pps, "ana-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let again = vic.watch(entry(&pps, "ana-1").unwrap()).await;
    wait_for_media("media from the new connection", &again, 60, 50).await;
}
