//! Presence, kicks, the admin's succession, p2m rooms.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_session_and_ten_silent_seconds_end_it() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut ben, _) = joined(&server, "ben", "ben-1", "hub", "m2m", publishing()).await;
    ben.stop_heartbeats();
    ana.list_until("ben", |pps| entry(pps, "ben-1").is_some())
        .await;

    // Without send_ack there is no ack: the next HEARTBEAT reply is the acked one's.
    ana.signal(
        "heartbeat",
        "HEARTBEAT",
        json!({"bid": "quiet", "send_ack": false}),
    );
    let ack = ana
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "hb-1", "send_ack": true}),
        )
        .await;
    assert_eq!(ack["bid"], "hb-1", "{ack}");
    assert_eq!(ids(&ack["pps"]), ["ana-1", "ben-1"]);

    // Five silent seconds are not ten.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ack = ana
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "hb-2", "send_ack": true}),
        )
        .await;
    assert_eq!(ack["bid"], "hb-2");
    assert_eq!(ids(&ack["pps"]), ["ana-1", "ben-1"], "ben is still in");

    // Then ben, silent, is gone for everyone, and his socket is closed.
    ana.list_until("ben gone", |pps| entry(pps, "ben-1").is_none())
        .await;
    let (code, reason) = ben.closed(Duration::from_secs(30)).await;
    assert_eq!(code, 1000);
    assert_eq!(reason, "no heartbeat for 10 s");

    // Ana, who sent heartbeats all along, is still in.
    let ack = ana
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "hb-3", "send_ack": true}),
        )
        .await;
    assert_eq!(ack["bid"], "hb-3");
    assert_eq!(ids(&ack["pps"]), ["ana-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_kicks_and_hands_over_when_leaving() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut ben, _) = joined(&server, "ben", "ben-1", "hub", "m2m", publishing()).await;
    let (mut cal, _) = joined(&server, "cal", "cal-1", "hub", "m2m", publishing()).await;
    let (mut dan, _) = joined(&server, "dan", "dan-1", "hub", "m2m", publishing()).await;
    let (mut eve, _) = joined(&server, "eve", "eve-1", "hub", "m2m", publishing()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (mut tom, _) = joined(&server, "tom", "tom-1", "hub", "m2m", viewing()).await;
    let (mut tom2, _) = joined(&server, "tom", "tom-2", "hub", "m2m", viewing()).await;
    let everyone = ["ana-1", "ben-1", "cal-1", "dan-1", "eve-1"];
    cal.list_until("everyone", |pps| {
        everyone.iter().all(|id| entry(pps, id).is_some())
    })
    .await;

    // Only the admin kicks.
    assert_eq!(
        ben.fails("kick", "KICK", json!({"to": cal.to()})).await,
        4051
    );
    assert_eq!(
        vic.fails("kick", "KICK", json!({"to": cal.to()})).await,
        4051
    );
    let ack = ana.ok("kick", "KICK", json!({"to": ben.to()})).await;
    assert_eq!(ack["to"], ben.to());
    let kick = ben.push("KICK").await;
    assert_eq!(kick["b"]["rid"], "hub");
    assert_eq!(kick["b"]["from"]["sessionId"], "ana-1", "{kick}");
    let after = ben
        .request(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "still here?", "send_ack": true}),
        )
        .await;
    assert_eq!(
        after["c"], 4001,
        "ben is out of the room: ROOM_NOT_FOUND tells the app so: {after}"
    );
    for rs in [&mut ana, &mut cal, &mut vic] {
        rs.list_until("ben gone", |pps| entry(pps, "ben-1").is_none())
            .await;
    }

    // A user id names every session of that user.
    ana.ok("kick", "KICK", json!({"to": "tom"})).await;
    for rs in [&mut tom, &mut tom2] {
        let kick = rs.push("KICK").await;
        assert_eq!(kick["b"]["from"]["sessionId"], "ana-1", "{kick}");
    }
    let nobody = json!({"userId": "nobody", "sessionId": "nobody-1"});
    assert_eq!(ana.fails("kick", "KICK", json!({"to": nobody})).await, 4003);
    assert_eq!(
        ana.fails("kick", "KICK", json!({"to": ben.to()})).await,
        4024,
        "ben has left"
    );

    // Closing the socket is leaving.
    eve.close();
    cal.list_until("eve gone", |pps| entry(pps, "eve-1").is_none())
        .await;

    // The admin leaves: the oldest remaining publisher, cal, is admin now.
    ana.stop_heartbeats();
    ana.ok("leave", "LEAVE", json!({})).await;
    for rs in [&mut cal, &mut dan, &mut vic] {
        let pps = rs
            .list_until("cal as admin", |pps| {
                entry(pps, "cal-1").is_some_and(|e| e["role"] == "admin")
            })
            .await;
        assert!(entry(&pps, "ana-1").is_none(), "{pps:?}");
        assert_eq!(entry(&pps, "dan-1").unwrap()["role"], "publisher");
    }
    let ack = cal.ok("kick", "KICK", json!({"to": vic.to()})).await;
    assert_eq!(ack["to"], vic.to());
    vic.push("KICK").await;
    assert_eq!(
        dan.fails("kick", "KICK", json!({"to": cal.to()})).await,
        4051
    );

    // The socket stays open after LEAVE: ana comes back, as a publisher this time.
    let back = ana.join(publishing()).await;
    assert_eq!(back["c"], 200, "{back}");
    assert_eq!(back["b"]["pt"], "publisher", "{back}");
}

#[tokio::test]
async fn in_p2m_rooms_only_the_creator_publishes() {
    let server = server();
    let (mut ana, joined_ana) = joined(&server, "ana", "ana-1", "hub", "p2m", creating()).await;
    assert_eq!(joined_ana["pt"], "admin");
    let (mut ben, joined_ben) = joined(&server, "ben", "ben-1", "hub", "p2m", publishing()).await;
    assert_eq!(joined_ben["pt"], "viewer", "ben's ve and ae do not matter");
    assert_eq!(
        ben.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
            .await,
        4051
    );
    assert_eq!(
        ben.fails(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true})
        )
        .await,
        2002
    );
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": ben.to()}))
            .await,
        2002
    );
    let ack = ben
        .ok(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "who", "send_ack": true}),
        )
        .await;
    assert_eq!(ids(&ack["pps"]), ["ana-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_passes_to_who_has_published_longest() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (mut ben, _) = joined(&server, "ben", "ben-1", "hub", "m2m", publishing()).await;

    // Vic joined before ben but publishes after him.
    vic.ok(
        "publishRequest",
        "PUBLISH_REQUEST",
        json!({"ve": true, "ae": true}),
    )
    .await;
    ana.push("PUBLISH_REQUEST").await;
    // `to` as a user id accepts every session of that user that asked.
    let ack = ana
        .ok("publishAccept", "PUBLISH_ACCEPT", json!({"to": "vic"}))
        .await;
    assert_eq!(ack["to"], "vic");
    let accepted = vic.push("PUBLISH_ACCEPT").await;
    assert_eq!(accepted["b"]["pt"], "publisher", "{accepted}");
    let pps = ben
        .list_until("vic publishing", |pps| entry(pps, "vic-1").is_some())
        .await;
    let order: Vec<&Value> = pps.iter().map(|e| &e["id"]).collect();
    assert_eq!(
        order,
        ["ana-1", "ben-1", "vic-1"],
        "by how long they publish"
    );

    // A request is pending when the admin leaves.
    let (mut wes, _) = joined(&server, "wes", "wes-1", "hub", "m2m", viewing()).await;
    wes.ok(
        "publishRequest",
        "PUBLISH_REQUEST",
        json!({"ve": false, "ae": true}),
    )
    .await;
    ana.push("PUBLISH_REQUEST").await;
    ana.stop_heartbeats();
    ana.ok("leave", "LEAVE", json!({})).await;
    for rs in [&mut ben, &mut vic, &mut wes] {
        rs.list_until("ben as admin", |pps| {
            entry(pps, "ben-1").is_some_and(|e| e["role"] == "admin")
                && entry(pps, "vic-1").is_some_and(|e| e["role"] == "publisher")
        })
        .await;
    }
    assert_eq!(
        vic.fails("kick", "KICK", json!({"to": wes.to()})).await,
        4051,
        "vic is not the admin"
    );
    // The new admin is asked, and answers.
    let request = ben.push("PUBLISH_REQUEST").await;
    assert_eq!(request["b"]["ss"]["sessionId"], "wes-1", "{request}");
    ben.ok("publishAccept", "PUBLISH_ACCEPT", json!({"to": wes.to()}))
        .await;
    let accepted = wes.push("PUBLISH_ACCEPT").await;
    assert_eq!(accepted["b"]["from"]["sessionId"], "ben-1", "{accepted}");
    wes.list_until("wes publishing audio only", |pps| {
        entry(pps, "wes-1")
            .is_some_and(|e| e["role"] == "publisher" && e["video"] == false && e["audio"] == true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_publisher_seat_of_a_p2m_room_goes_to_the_next_creator() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "p2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "p2m", viewing()).await;
    let mut ben = Rs::connect(&server, "ben", "ben-1", "hub", "p2m").await;
    assert_eq!(
        ben.fails("join", "JOIN", creating()).await,
        4022,
        "ana has the seat"
    );

    // The publisher goes: the next JOIN with roomCreating takes the seat.
    ana.stop_heartbeats();
    ana.ok("leave", "LEAVE", json!({})).await;
    vic.list_until("nobody publishing", |pps| pps.is_empty())
        .await;
    let joined_ben = ben.join(creating()).await;
    assert_eq!(joined_ben["c"], 200, "{joined_ben}");
    assert_eq!(joined_ben["b"]["pt"], "admin", "{joined_ben}");
    let (publisher, _) = ben.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = vic
        .list_until("ben broadcasting", |pps| {
            entry(pps, "ben-1").is_some_and(|e| e["publish"] == true && e["role"] == "admin")
        })
        .await;
    let subscriber = vic.watch(entry(&pps, "ben-1").unwrap()).await;
    wait_for_media("vic to receive ben's broadcast", &subscriber, 60, 50).await;
    let mut cal = Rs::connect(&server, "cal", "cal-1", "hub", "p2m").await;
    assert_eq!(
        cal.fails("join", "JOIN", creating()).await,
        4022,
        "ben has the seat"
    );
}
