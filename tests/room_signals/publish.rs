//! The publish request flow and the room's limit of publishers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_ask_the_admin_to_publish() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (mut wes, _) = joined(&server, "wes", "wes-1", "hub", "m2m", viewing()).await;

    // A viewer may neither update nor offer.
    assert_eq!(
        vic.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
            .await,
        4051
    );
    let would_be = Publisher::new(av(None, 30, None)).await.unwrap();
    let offer = would_be.offer().await.unwrap();
    assert_eq!(
        vic.fails("offer", "OFFER", json!({"sdp": offer})).await,
        4051
    );
    would_be.close().await;

    // Nobody can be accepted or rejected without asking.
    for (action, s) in [
        ("publishAccept", "PUBLISH_ACCEPT"),
        ("publishReject", "PUBLISH_REJECT"),
    ] {
        assert_eq!(
            ana.fails(action, s, json!({"to": vic.to()})).await,
            2001,
            "{s} of a viewer who has not asked"
        );
    }
    assert_eq!(
        vic.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
            .await,
        4051,
        "an accept of nobody's request made nobody a publisher"
    );

    // Request, accept.
    let ack = vic
        .ok(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true, "msg": "may I?"}),
        )
        .await;
    assert_eq!(ack["rid"], "hub");
    let request = ana.push("PUBLISH_REQUEST").await;
    assert_eq!(
        request["b"]["ss"], vic.ss,
        "the requester's session: {request}"
    );
    assert_eq!(request["b"]["msg"], "may I?");
    assert_eq!(
        (&request["b"]["ve"], &request["b"]["ae"]),
        (&json!(true), &json!(true))
    );
    let sent = ana.signal("publishAccept", "PUBLISH_ACCEPT", json!({"to": vic.to()}));
    let ack = ana.reply("PUBLISH_ACCEPT").await;
    assert_eq!(ack["c"], 200, "{ack}");
    assert_eq!(ack["b"]["to"], vic.to());
    // The admin's signal is forwarded to the new publisher, with its role.
    let accepted = vic.push("PUBLISH_ACCEPT").await;
    assert_eq!(accepted["b"]["s"], "PUBLISH_ACCEPT", "{accepted}");
    assert_eq!(
        accepted["b"]["ss"], sent["ss"],
        "the admin's signal: {accepted}"
    );
    assert_eq!(accepted["b"]["to"], vic.to(), "{accepted}");
    assert_eq!(accepted["b"]["ch"], "m2m", "{accepted}");
    assert_eq!(accepted["b"]["pt"], "publisher", "{accepted}");
    assert_eq!(accepted["b"]["rid"], "hub");
    assert_eq!(accepted["b"]["from"]["sessionId"], "ana-1", "{accepted}");
    assert_eq!(accepted["b"]["from"]["userId"], "ana", "{accepted}");
    for rs in [&mut ana, &mut vic, &mut wes] {
        rs.list_until("vic publishing the video and audio asked for", |pps| {
            entry(pps, "vic-1").is_some_and(|e| {
                e["role"] == "publisher" && e["video"] == true && e["audio"] == true
            })
        })
        .await;
    }
    assert_eq!(
        vic.fails(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true})
        )
        .await,
        4023,
        "vic publishes already"
    );

    // Vic publishes, and the media reaches a viewer: nothing is held.
    let (publisher, _) = vic.publish(av(None, 30, None)).await;
    assert!(publisher.wait_connected(MEDIA_PATIENCE).await);
    publisher.start();
    let pps = wes
        .list_until("vic's stream flowing", |pps| {
            entry(pps, "vic-1").is_some_and(|e| e["publish"] == true)
        })
        .await;
    let subscriber = wes.watch(entry(&pps, "vic-1").unwrap()).await;
    wait_for_media("wes to receive vic's video and audio", &subscriber, 60, 50).await;
    assert!(keyframes(&subscriber) > 0, "wes can decode vic's video");

    let ack = vic
        .ok("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
        .await;
    assert_eq!(ack["ae"], false, "a publisher may update: {ack}");

    // Request, reject; only the admin decides.
    wes.ok(
        "publishRequest",
        "PUBLISH_REQUEST",
        json!({"ve": true, "ae": false, "msg": "me too"}),
    )
    .await;
    let request = ana.push("PUBLISH_REQUEST").await;
    assert_eq!(request["b"]["ss"]["sessionId"], "wes-1");
    assert_eq!(
        vic.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": wes.to()}))
            .await,
        4051
    );
    assert_eq!(
        vic.fails("publishReject", "PUBLISH_REJECT", json!({"to": wes.to()}))
            .await,
        4051
    );
    // `to` as a user id: every session of that user that asked.
    let ack = ana
        .ok("publishReject", "PUBLISH_REJECT", json!({"to": "wes"}))
        .await;
    assert_eq!(ack["to"], "wes");
    let rejected = wes.push("PUBLISH_REJECT").await;
    assert_eq!(
        rejected["b"]["s"], "PUBLISH_REJECT",
        "the admin's signal: {rejected}"
    );
    assert_eq!(rejected["b"]["to"], "wes", "{rejected}");
    assert_eq!(rejected["b"]["pt"], "viewer", "{rejected}");
    assert_eq!(rejected["b"]["from"]["sessionId"], "ana-1", "{rejected}");
    assert_eq!(
        wes.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
            .await,
        4051,
        "still a viewer"
    );
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": wes.to()}))
            .await,
        2001,
        "the rejected request is answered: nothing to accept"
    );

    // Someone who is not in the room, or who left.
    let nobody = json!({"userId": "nobody", "sessionId": "nobody-1"});
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": nobody}))
            .await,
        4002
    );
    assert_eq!(
        ana.fails("publishReject", "PUBLISH_REJECT", json!({"to": nobody}))
            .await,
        4002
    );
    wes.stop_heartbeats();
    wes.ok("leave", "LEAVE", json!({})).await;
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": wes.to()}))
            .await,
        4002,
        "wes left: the table's NOT_ROOM_MEMBER"
    );
    for list in ana.lists().iter().chain(&wes.lists()) {
        assert!(
            entry(list.as_array().unwrap(), "wes-1").is_none(),
            "wes was never a publisher: {list}"
        );
    }
}

#[tokio::test]
async fn a_room_holds_nine_publishers() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "p-0", "hub", "m2m", creating()).await;
    let mut publishers = vec![];
    for n in 1..9 {
        let (rs, joined) = joined(
            &server,
            &format!("user-{n}"),
            &format!("p-{n}"),
            "hub",
            "m2m",
            publishing(),
        )
        .await;
        assert_eq!(joined["pt"], "publisher", "publisher {n}: {joined}");
        publishers.push(rs);
    }
    ana.list_until("nine publishers", |pps| pps.len() == 9)
        .await;
    let (mut tenth, joined_tenth) =
        joined(&server, "tenth", "p-9", "hub", "m2m", publishing()).await;
    assert_eq!(joined_tenth["pt"], "viewer", "nine is the most");

    // Nor can the admin accept a tenth: the request stays pending.
    tenth
        .ok(
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true}),
        )
        .await;
    ana.push("PUBLISH_REQUEST").await;
    assert_eq!(
        ana.fails("publishAccept", "PUBLISH_ACCEPT", json!({"to": tenth.to()}))
            .await,
        2002,
        "an m2m room holds nine publishers"
    );
    assert_eq!(
        tenth
            .fails("updateVideo", "UPDATE", json!({"ve": true, "ae": true}))
            .await,
        4051,
        "still a viewer"
    );

    // One leaves: there is room again, for the pending request and for a new publisher.
    publishers.pop().unwrap().close();
    ana.list_until("eight publishers", |pps| pps.len() == 8)
        .await;
    ana.ok("publishAccept", "PUBLISH_ACCEPT", json!({"to": tenth.to()}))
        .await;
    assert_eq!(tenth.push("PUBLISH_ACCEPT").await["b"]["pt"], "publisher");
    ana.list_until("nine publishers again", |pps| pps.len() == 9)
        .await;
    publishers.pop().unwrap().close();
    ana.list_until("eight publishers", |pps| pps.len() == 8)
        .await;
    let (_next, joined_next) = joined(&server, "next", "p-10", "hub", "m2m", publishing()).await;
    assert_eq!(joined_next["pt"], "publisher", "{joined_next}");
}

#[tokio::test]
async fn a_room_without_an_admin_grants_publish_requests() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut vic, _) = joined(&server, "vic", "vic-1", "hub", "m2m", viewing()).await;
    let (mut wes, _) = joined(&server, "wes", "wes-1", "hub", "m2m", viewing()).await;

    // Vic's request waits for ana, who leaves: with nobody left to ask, it is granted.
    vic.ok(
        "publishRequest",
        "PUBLISH_REQUEST",
        json!({"ve": false, "ae": true}),
    )
    .await;
    ana.push("PUBLISH_REQUEST").await;
    ana.stop_heartbeats();
    ana.ok("leave", "LEAVE", json!({})).await;
    let accepted = vic.push("PUBLISH_ACCEPT").await;
    assert_eq!(
        accepted["b"]["pt"], "admin",
        "vic is the only publisher: {accepted}"
    );
    assert_eq!(accepted["b"]["to"], vic.to(), "{accepted}");
    assert!(
        accepted["b"]["from"].is_null(),
        "no admin decided: {accepted}"
    );
    wes.list_until("vic as the admin, with audio only", |pps| {
        entry(pps, "vic-1")
            .is_some_and(|e| e["role"] == "admin" && e["video"] == false && e["audio"] == true)
    })
    .await;

    // Vic leaves too: wes, alone, asks and publishes at once.
    vic.stop_heartbeats();
    vic.ok("leave", "LEAVE", json!({})).await;
    wes.list_until("nobody", |pps| pps.is_empty()).await;
    wes.ok(
        "publishRequest",
        "PUBLISH_REQUEST",
        json!({"ve": true, "ae": true}),
    )
    .await;
    let accepted = wes.push("PUBLISH_ACCEPT").await;
    assert_eq!(accepted["b"]["pt"], "admin", "{accepted}");
    let ack = wes
        .ok("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
        .await;
    assert_eq!(ack["ve"], true, "wes publishes: {ack}");
}
