//! Bad input: the codes of the document, with the request echoed.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signals_get_error_codes_and_harm_nobody() {
    let server = server();
    let mut xan = Rs::connect(&server, "xan", "xan-1", "hub", "m2m").await;

    // Frames that are no signal at all.
    xan.send_text("not json".into());
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "{reply}");
    assert_eq!(
        reply["b"]["req"], "not json",
        "a frame that is not JSON is quoted as text: {reply}"
    );
    assert!(reply["b"]["msg"].is_string(), "{reply}");
    xan.send_text("[1, 2]".into());
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "not an object: {reply}");
    assert_eq!(reply["b"]["req"], json!([1, 2]), "{reply}");
    let dance = json!({"s": "DANCE", "rid": "hub", "ch": "m2m"});
    xan.send("dance", &dance);
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "an unknown action: {reply}");
    assert_eq!(reply["b"]["req"], dance);
    let leave = xan.signal_data("LEAVE", json!({}));
    xan.send("join", &leave);
    let reply = xan.next_frame().await;
    assert_eq!(reply["c"], 2001, "action and s disagree: {reply}");
    assert_eq!(reply["b"]["req"], leave);

    // Before JOIN; JOINs that cannot be.
    assert_eq!(
        xan.fails(
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "early", "send_ack": true})
        )
        .await,
        2001,
        "a signal before JOIN"
    );
    assert_eq!(
        xan.fails(
            "join",
            "JOIN",
            json!({"ve": "yes", "ae": true, "op": {"roomCreating": true}})
        )
        .await,
        2001,
        "a mistyped field"
    );
    let no_user = json!({"sessionId": "xan-1", "category": "stream", "host": "iOS",
                         "deviceId": "d"});
    assert_eq!(
        xan.fails(
            "join",
            "JOIN",
            json!({"ss": no_user, "ve": true, "ae": true, "op": {"roomCreating": true}})
        )
        .await,
        2001,
        "a missing userId"
    );
    assert_eq!(
        xan.fails(
            "join",
            "JOIN",
            json!({"ch": "x2x", "ve": true, "ae": true, "op": {"roomCreating": true}})
        )
        .await,
        2002,
        "an unknown channel"
    );
    assert_eq!(
        xan.fails("join", "JOIN", publishing()).await,
        4001,
        "nobody is in hub"
    );
    xan.rid = "nowhere".into();
    assert_eq!(
        xan.fails("join", "JOIN", creating()).await,
        4001,
        "no group nowhere, and rooms are `existing`"
    );
    xan.rid = "hub".into();

    // A bare signal is a signal too.
    let mut bare = xan.signal_data("JOIN", creating());
    bare["eg"] = json!("native");
    xan.send_text(bare.to_string());
    let reply = xan.reply("JOIN").await;
    assert_eq!(reply["c"], 200, "{reply}");
    assert_eq!(reply["b"]["pt"], "admin");
    xan.start_heartbeats();
    assert_eq!(
        xan.fails("join", "JOIN", publishing()).await,
        2001,
        "a second JOIN"
    );

    let mut yul = Rs::connect(&server, "yul", "yul-1", "hub", "m2m").await;
    assert_eq!(
        yul.fails("join", "JOIN", creating()).await,
        4022,
        "hub exists"
    );
    yul.ss["sessionId"] = json!("xan-1");
    assert_eq!(
        yul.fails("join", "JOIN", publishing()).await,
        4022,
        "xan-1 is taken"
    );
    yul.ss["sessionId"] = json!("yul-1");
    assert_eq!(yul.join(publishing()).await["c"], 200);

    // After JOIN, ch and rid must name the room, with the codes of each signal's table:
    // HEARTBEAT's has no 2002.
    let room_signals = [
        (
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "b", "send_ack": true}),
            2001,
        ),
        ("leave", "LEAVE", json!({}), 2002),
        (
            "updateVideo",
            "UPDATE",
            json!({"ve": false, "ae": false}),
            2002,
        ),
        ("kick", "KICK", json!({"to": yul.to()}), 2002),
    ];
    for (action, s, fields, wrong_channel) in room_signals {
        for ch in ["p2p", "a2m", "x2x"] {
            let mut fields = fields.clone();
            fields["ch"] = json!(ch);
            assert_eq!(
                xan.fails(action, s, fields).await,
                wrong_channel,
                "{s} with ch {ch}"
            );
        }
        let mut fields = fields.clone();
        fields["rid"] = json!("elsewhere");
        assert_eq!(xan.fails(action, s, fields).await, 4001, "{s} elsewhere");
    }

    // Media signals that make no sense.
    assert_eq!(
        xan.fails(
            "answer",
            "ANSWER",
            json!({"to": yul.to(), "sdp": "v=0\r\n"})
        )
        .await,
        2001,
        "an ANSWER nothing waits for"
    );
    assert_eq!(
        xan.fails("offer", "OFFER", json!({"sdp": "this is no SDP"}))
            .await,
        2001
    );
    let nobody = json!({"userId": "nobody", "sessionId": "nobody-1"});
    assert_eq!(
        xan.fails("watch", "WATCH", json!({"to": nobody})).await,
        4003
    );
    assert_eq!(
        xan.fails(
            "iceCandidate",
            "ICE",
            json!({"to": nobody, "sdp": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
                   "sdpMid": "0", "sdpMLineIndex": 0})
        )
        .await,
        4003
    );

    // userFaking: the server names the session.
    let mut zed = Rs::connect(&server, "", "", "hub", "m2m").await;
    zed.ss = json!({"category": "stream", "host": "Android", "deviceId": "zed-device"});
    let reply = zed
        .join(json!({"ve": false, "ae": false, "op": {"userFaking": true}}))
        .await;
    assert_eq!(reply["c"], 200, "{reply}");
    for field in ["userId", "sessionId"] {
        assert!(
            reply["b"]["ss"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{field} made up: {reply}"
        );
    }

    // A frame over 1 MiB ends its own connection only.
    let (mut wil, _) = joined(&server, "wil", "wil-1", "hub", "m2m", publishing()).await;
    xan.list_until("wil", |pps| entry(pps, "wil-1").is_some())
        .await;
    let big =
        json!({"action": "heartbeat", "data": {"s": "HEARTBEAT", "bid": "x".repeat(1 << 20)}});
    wil.send_text(big.to_string());
    assert_eq!(wil.closed(PATIENCE).await.0, 1009);
    xan.list_until("wil gone", |pps| entry(pps, "wil-1").is_none())
        .await;

    // Everyone else goes on.
    for rs in [&mut xan, &mut yul] {
        let ack = rs
            .ok(
                "heartbeat",
                "HEARTBEAT",
                json!({"bid": "after", "send_ack": true}),
            )
            .await;
        assert_eq!(ack["bid"], "after");
        assert_eq!(ids(&ack["pps"]), ["xan-1", "yul-1"]);
    }
}

#[tokio::test]
async fn signals_after_leaving_the_room_get_room_not_found() {
    let server = server();
    let (mut ana, _) = joined(&server, "ana", "ana-1", "hub", "m2m", creating()).await;
    let (mut ben, _) = joined(&server, "ben", "ben-1", "hub", "m2m", publishing()).await;
    ana.stop_heartbeats();
    ana.ok("leave", "LEAVE", json!({})).await;
    let after = [
        ("leave", "LEAVE", json!({})),
        (
            "heartbeat",
            "HEARTBEAT",
            json!({"bid": "b", "send_ack": true}),
        ),
        ("updateVideo", "UPDATE", json!({"ve": true, "ae": true})),
        ("kick", "KICK", json!({"to": ben.to()})),
        (
            "publishRequest",
            "PUBLISH_REQUEST",
            json!({"ve": true, "ae": true}),
        ),
    ];
    for (action, s, fields) in &after {
        assert_eq!(
            ana.fails(action, s, fields.clone()).await,
            4001,
            "{s} after LEAVE: the room is gone for this session"
        );
    }
    ben.list_until("ana gone, ben admin", |pps| {
        entry(pps, "ana-1").is_none() && entry(pps, "ben-1").is_some_and(|e| e["role"] == "admin")
    })
    .await;

    // JOIN again, and be kicked: the same.
    assert_eq!(ana.join(publishing()).await["c"], 200);
    ben.ok("kick", "KICK", json!({"to": ana.to()})).await;
    ana.push("KICK").await;
    for (action, s, fields) in &after {
        assert_eq!(
            ana.fails(action, s, fields.clone()).await,
            4001,
            "{s} after a kick"
        );
    }
}

#[tokio::test]
async fn join_fields_take_the_documents_values_only() {
    let server = server();
    let mut ana = Rs::connect(&server, "ana", "ana-1", "hub", "m2m").await;
    let ss = ana.ss.clone();
    let with_ss = |field: &str, value: Value| {
        let mut ss = ss.clone();
        ss[field] = value;
        ss
    };
    let bad = [
        ("eg", json!(5)),
        ("eg", json!("webex")),
        ("eg", json!("Native")),
        ("ss", with_ss("host", json!("Windows"))),
        ("ss", with_ss("host", json!(""))),
        ("ss", with_ss("category", json!("camera"))),
    ];
    for (field, value) in bad {
        let mut fields = creating();
        fields[field] = value.clone();
        assert_eq!(
            ana.fails("join", "JOIN", fields).await,
            2001,
            "JOIN with {field} {value}"
        );
    }
    let mut ben = Rs::connect(&server, "ben", "ben-1", "hub", "m2m").await;
    assert_eq!(
        ben.fails("join", "JOIN", publishing()).await,
        4001,
        "the refused JOINs made no room"
    );

    // Another engine of the document's: the server decides, and says native.
    ana.ss = with_ss("host", json!("Android"));
    ana.ss["category"] = json!("screenshare");
    let mut fields = creating();
    fields["eg"] = json!("agora");
    let reply = ana.join(fields).await;
    assert_eq!(reply["c"], 200, "{reply}");
    assert_eq!(reply["b"]["eg"], "native", "{reply}");
    assert!(
        reply["b"]["es"]["icfg"]["is"].is_array(),
        "native's es: {reply}"
    );
    let me = &reply["b"]["pps"][0];
    assert_eq!(
        (&me["host"], &me["category"]),
        (&json!("Android"), &json!("screenshare"))
    );
}
