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
    let ack = ana
        .ok("publishAccept", "PUBLISH_ACCEPT", json!({"to": vic.to()}))
        .await;
    assert_eq!(ack["to"], vic.to());
    let accepted = vic.push("PUBLISH_ACCEPT").await;
    assert_eq!(accepted["b"]["pt"], "publisher", "{accepted}");
    assert_eq!(accepted["b"]["rid"], "hub");
    assert_eq!(accepted["b"]["from"]["sessionId"], "ana-1", "{accepted}");
    assert_eq!(accepted["b"]["from"]["userId"], "ana", "{accepted}");
    for rs in [&mut ana, &mut vic, &mut wes] {
        rs.list_until("vic as a publisher", |pps| {
            entry(pps, "vic-1").is_some_and(|e| e["role"] == "publisher")
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
    let ack = ana
        .ok("publishReject", "PUBLISH_REJECT", json!({"to": wes.to()}))
        .await;
    assert_eq!(ack["to"], wes.to());
    let rejected = wes.push("PUBLISH_REJECT").await;
    assert_eq!(rejected["b"]["pt"], "viewer", "{rejected}");
    assert_eq!(rejected["b"]["from"]["sessionId"], "ana-1", "{rejected}");
    assert_eq!(
        wes.fails("updateVideo", "UPDATE", json!({"ve": true, "ae": false}))
            .await,
        4051,
        "still a viewer"
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
        4024,
        "wes left"
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
    let (_tenth, joined_tenth) = joined(&server, "tenth", "p-9", "hub", "m2m", publishing()).await;
    assert_eq!(joined_tenth["pt"], "viewer", "nine is the most");

    // One leaves: there is room again.
    publishers.pop().unwrap().close();
    ana.list_until("eight publishers", |pps| pps.len() == 8)
        .await;
    let (_next, joined_next) = joined(&server, "next", "p-10", "hub", "m2m", publishing()).await;
    assert_eq!(joined_next["pt"], "publisher", "{joined_next}");
}
