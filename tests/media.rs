//! The media module driven by real webrtc-rs peers over UDP on loopback.
//!
//! Signalling is the test passing SDP and candidate JSON between the two
//! sides. No assertion is about time or speed: waits are on conditions,
//! with generous timeouts that only bound a failing test.

mod support;

use std::sync::Arc;
use std::time::Instant;

use cinnabar::media::*;
use cinnabar::peer::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_every_packet_to_two_subscribers() {
    let media = media().await;
    let (frames, audio_packets) = (90, 150);
    let publisher = publish(&media, av_publisher(Some(frames), 30, Some(audio_packets))).await;
    let subs = [
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
    ];
    publisher.peer.start();
    wait_for("the publisher to finish", || publisher.peer.stats().done).await;
    let sent = publisher.peer.stats();
    assert_eq!(sent.video_frames, frames);
    assert_eq!(sent.audio_packets, audio_packets);
    for (i, sub) in subs.iter().enumerate() {
        // Sent on our own send path, encrypted with the connection's SRTP keys: the
        // subscriber (a real webrtc-rs peer) decrypts every packet.
        assert!(
            sub.down.on_own_send_path(),
            "subscriber {i} on our send path"
        );
        wait_for("every packet at the subscriber", || {
            let s = sub.peer.stats();
            s.track(Kind::Video)
                .is_some_and(|t| t.has_probes(sent.video_packets))
                && s.track(Kind::Audio)
                    .is_some_and(|t| t.has_probes(sent.audio_packets))
        })
        .await;
        let stats = sub.peer.stats();
        for (kind, count, publisher_ssrc, pt) in [
            (Kind::Video, sent.video_packets, sent.video_ssrc, 96),
            (Kind::Audio, sent.audio_packets, sent.audio_ssrc, 111),
        ] {
            let t = stats.track(kind).expect("track");
            assert_eq!(
                t.probes.len(),
                count as usize,
                "subscriber {i} {kind:?}: each packet once"
            );
            assert_eq!(
                t.missing_seqs(),
                Vec::<i64>::new(),
                "subscriber {i} {kind:?}: seqnos contiguous"
            );
            assert_eq!(
                t.seqs.len(),
                count as usize,
                "subscriber {i} {kind:?}: no extra seqnos"
            );
            assert_ne!(
                Some(t.ssrc),
                publisher_ssrc,
                "subscriber {i} {kind:?}: SSRC rewritten"
            );
            assert!(
                sdp_ssrcs(&sub.offer).contains(&t.ssrc),
                "subscriber {i} {kind:?}: SSRC of its offer"
            );
            assert_eq!(t.payload_type, pt);
            assert_eq!(t.with_extensions, 0, "header extensions stripped");
        }
        assert_eq!(
            stats.rtcp_sent.nacks,
            Vec::<u16>::new(),
            "subscriber {i}: nothing lost"
        );
    }
    let ssrcs: Vec<u32> = subs
        .iter()
        .map(|s| s.peer.stats().track(Kind::Video).expect("video").ssrc)
        .collect();
    assert_ne!(ssrcs[0], ssrcs[1], "each subscriber has its own SSRC");
    // RTCP both ways: our SRs reach the subscribers and their RRs give an
    // RTT; our RRs upstream echo the publisher's SRs.
    for sub in &subs {
        wait_for("sender reports at the subscriber", || {
            sub.peer.stats().sender_reports > 0
        })
        .await;
        wait_for("an RTT for the subscriber", || {
            video_stats(&media, &sub.down).rtt_ms.is_some()
        })
        .await;
    }
    wait_for("receiver reports echoing the publisher's SRs", || {
        publisher.peer.stats().receiver_reports_with_lsr > 0
    })
    .await;
    let up = media
        .stats()
        .up
        .into_iter()
        .next()
        .expect("up stream stats");
    assert_eq!(up.tracks.len(), 2);
    assert!(
        up.tracks.iter().all(|t| t.packets > 0 && t.total_lost == 0),
        "{up:?}"
    );
    publisher.up.close().await;
    for s in &subs {
        s.peer.close().await;
    }
    publisher.peer.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_loss_is_repaired_from_the_cache() {
    let media = media().await;
    let publisher = publish(&media, av_publisher(Some(90), 30, Some(150))).await;
    let lossy = subscribe(
        &media,
        &publisher.up,
        BOTH,
        SubscriberConfig {
            drop_incoming: Some(drop_video(|i| i % 10 == 5)),
            ..Default::default()
        },
    )
    .await;
    let clean = subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await;
    publisher.peer.start();
    wait_for("the publisher to finish", || publisher.peer.stats().done).await;
    let sent = publisher.peer.stats();
    for sub in [&lossy, &clean] {
        wait_for("every video packet at the subscriber", || {
            sub.peer
                .stats()
                .track(Kind::Video)
                .is_some_and(|t| t.has_probes(sent.video_packets))
        })
        .await;
    }
    let stats = lossy.peer.stats();
    let dropped: Vec<u32> = stats
        .dropped
        .iter()
        .filter_map(|d| d.probe.map(|p| p.index))
        .collect();
    assert!(dropped.len() >= 20, "loss was injected: {dropped:?}");
    assert!(!stats.rtcp_sent.nacks.is_empty(), "the subscriber NACKed");
    assert_eq!(
        stats.track(Kind::Video).expect("video").missing_seqs(),
        Vec::<i64>::new()
    );
    // Every lost packet came from the cache: none was asked of the publisher.
    let first = publisher.peer.stats().first_video_seq.expect("video sent");
    let nacked_upstream = publisher.peer.stats().nacked;
    for index in &dropped {
        let seq = first.wrapping_add(*index as u16);
        assert!(
            !nacked_upstream.contains(&seq),
            "packet {index} was NACKed upstream"
        );
    }
    let server = video_stats(&media, &lossy.down);
    assert!(
        server.nacks_received > 0,
        "server saw the NACKs: {server:?}"
    );
    wait_for("retransmissions counted", || {
        video_stats(&media, &lossy.down).retransmitted >= dropped.len() as u64
    })
    .await;
    assert_eq!(
        video_stats(&media, &clean.down).retransmitted,
        0,
        "the other subscriber is untouched"
    );
    assert!(clean.peer.stats().rtcp_sent.nacks.is_empty());
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_loss_is_nacked_by_the_server() {
    let media = media().await;
    let mut config = av_publisher(Some(90), 30, Some(150));
    // Not the last packets: a hole is noticed when later packets arrive.
    config.drop_outgoing = Some(drop_video(|i| i % 10 == 5 && i < 250));
    let publisher = publish(&media, config).await;
    // A subscriber that never NACKs: only the server's own NACKs can repair.
    let no_nack = SubscriberConfig {
        no_nack: true,
        ..Default::default()
    };
    let sub = subscribe(&media, &publisher.up, BOTH, no_nack).await;
    publisher.peer.start();
    wait_for("the publisher to finish", || publisher.peer.stats().done).await;
    let sent = publisher.peer.stats();
    wait_for("every video packet at the subscriber", || {
        sub.peer
            .stats()
            .track(Kind::Video)
            .is_some_and(|t| t.has_probes(sent.video_packets))
    })
    .await;
    let stats = publisher.peer.stats();
    assert!(stats.dropped.len() >= 20, "loss was injected");
    for d in &stats.dropped {
        assert!(stats.nacked.contains(&d.seq), "the server NACKed {}", d.seq);
    }
    assert!(stats.retransmitted as usize >= stats.dropped.len());
    let track = sub.peer.stats();
    let video = track.track(Kind::Video).expect("video");
    assert_eq!(video.missing_seqs(), Vec::<i64>::new());
    assert_eq!(video.probes.len(), sent.video_packets as usize);
    assert!(
        track.rtcp_sent.nacks.is_empty(),
        "the subscriber did not NACK"
    );
    publisher.up.close().await;
    sub.peer.close().await;
    publisher.peer.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_requests_are_merged() {
    let media = media().await;
    // Keyframes only when asked for.
    let publisher = publish(&media, av_publisher(None, 0, None)).await;
    let subs = [
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
    ];
    publisher.peer.start();
    // Settle: the keyframe asked for when the subscribers joined has
    // arrived, and 30 frames (a second of the publisher's clock) later the
    // limiter is idle.
    for sub in &subs {
        wait_for("a keyframe at the subscriber", || {
            sub.peer
                .stats()
                .track(Kind::Video)
                .is_some_and(|t| t.keyframes > 0)
        })
        .await;
    }
    let settled = publisher.peer.stats().video_frames + 30;
    wait_for("30 more frames", || {
        publisher.peer.stats().video_frames >= settled
    })
    .await;
    let before = publisher.peer.stats().plis;
    let start = Instant::now();
    for _ in 0..5 {
        for sub in &subs {
            sub.peer.send_pli().await.expect("pli");
        }
    }
    wait_for("the server to receive the ten PLIs", || {
        subs.iter()
            .map(|s| video_stats(&media, &s.down).plis_received)
            .sum::<u64>()
            == 10
    })
    .await;
    wait_for("a PLI at the publisher", || {
        publisher.peer.stats().plis > before
    })
    .await;
    let plis = publisher.peer.stats().plis - before;
    // The first goes out at once; the others wait for the 500 ms interval
    // and are dropped when the keyframe arrives. Whatever the machine's
    // speed, no more than one per 500 ms.
    let allowed = 1 + (start.elapsed().as_millis() / 500) as u32;
    assert!(plis <= allowed, "{plis} PLIs in {:?}", start.elapsed());
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_subscriber_without_cached_keyframe_causes_a_pli() {
    let media = media().await;
    let publisher = publish(&media, av_publisher(None, 0, None)).await;
    publisher.peer.start();
    // The only keyframe is long gone from the cache.
    wait_for("video sent", || publisher.peer.stats().video_packets > 300).await;
    assert_eq!(publisher.peer.stats().plis, 0, "nobody asked yet");
    let sub = subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await;
    wait_for("a PLI at the publisher", || {
        publisher.peer.stats().plis >= 1
    })
    .await;
    wait_for("a keyframe at the subscriber", || {
        sub.peer
            .stats()
            .track(Kind::Video)
            .is_some_and(|t| t.keyframes >= 1)
    })
    .await;
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_subscriber_gets_the_cached_keyframe() {
    let media = media().await;
    let config = PublisherConfig {
        video: Some(video(Some(3), 0)),
        ..Default::default()
    };
    let publisher = publish(&media, config).await;
    publisher.peer.start();
    wait_for("the publisher to finish", || publisher.peer.stats().done).await;
    let sent = publisher.peer.stats().video_packets;
    wait_for("the server to have every packet", || {
        media
            .stats()
            .up
            .iter()
            .flat_map(|u| &u.tracks)
            .map(|t| t.packets)
            .sum::<u64>()
            == u64::from(sent)
    })
    .await;
    let only_video = TrackSelection {
        audio: false,
        video: VideoSelection::High,
    };
    let sub = subscribe(
        &media,
        &publisher.up,
        only_video,
        SubscriberConfig::default(),
    )
    .await;
    // The publisher has stopped: only a replay from the cache can deliver.
    wait_for("the replayed GOP", || {
        sub.peer
            .stats()
            .track(Kind::Video)
            .is_some_and(|t| t.has_probes(sent))
    })
    .await;
    let video = sub.peer.stats();
    let video = video.track(Kind::Video).expect("video");
    assert_eq!(video.keyframes, 1);
    assert_eq!(video.missing_seqs(), Vec::<i64>::new());
    assert_eq!(publisher.peer.stats().plis, 0, "no keyframe was requested");
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remb_is_the_minimum_over_subscribers() {
    let media = media().await;
    let publisher = publish(&media, av_publisher(None, 90, None)).await;
    let subs = [
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
    ];
    publisher.peer.start();
    subs[0].peer.set_remb(Some(300_000));
    subs[1].peer.set_remb(Some(1_000_000));
    for (sub, value) in subs.iter().zip([300_000, 1_000_000]) {
        wait_for("the server to record the REMB", || {
            video_stats(&media, &sub.down).remb == Some(value)
        })
        .await;
    }
    let before = publisher.peer.stats().rembs.len();
    wait_for("a REMB near 300 kbit/s at the publisher", || {
        let rembs = publisher.peer.stats().rembs;
        rembs.len() > before
            && rembs
                .last()
                .is_some_and(|&r| (285_000..=315_000).contains(&r))
    })
    .await;
    // And never the larger one.
    assert!(publisher.peer.stats().rembs.iter().all(|&r| r < 1_000_000));
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_picks_the_tracks() {
    let media = media().await;
    let publisher = publish(&media, av_publisher(None, 30, None)).await;
    let audio_only = TrackSelection {
        audio: true,
        video: VideoSelection::None,
    };
    let video_low = TrackSelection {
        audio: false,
        video: VideoSelection::Low,
    };
    let a = subscribe(
        &media,
        &publisher.up,
        audio_only,
        SubscriberConfig::default(),
    )
    .await;
    let v = subscribe(
        &media,
        &publisher.up,
        video_low,
        SubscriberConfig::default(),
    )
    .await;
    publisher.peer.start();
    wait_for("media at both", || {
        a.peer
            .stats()
            .track(Kind::Audio)
            .is_some_and(|t| t.packets > 10)
            && v.peer
                .stats()
                .track(Kind::Video)
                .is_some_and(|t| t.packets > 10)
    })
    .await;
    assert!(a.peer.stats().track(Kind::Video).is_none());
    assert!(v.peer.stats().track(Kind::Audio).is_none());
    assert_eq!(a.down.tracks().len(), 1);
    let nothing = TrackSelection {
        audio: false,
        video: VideoSelection::None,
    };
    let (sink, _) = sink(|_| async {});
    assert!(media.subscribe(&publisher.up, nothing, sink).await.is_err());
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_and_renegotiation_keep_media_flowing() {
    let media = media().await;
    let publisher = publish(&media, av_publisher(None, 30, None)).await;
    let sub = subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await;
    publisher.peer.start();
    let video_packets = || sub.peer.stats().track(Kind::Video).map_or(0, |t| t.packets);
    wait_for("video", || video_packets() > 0).await;
    assert!(sub.down.on_own_send_path(), "on our own send path");
    // The subscriber's connection restarts ICE.
    let offer = sub.down.restart_ice().await.expect("restart");
    assert_ne!(
        ice_ufrag(&offer),
        ice_ufrag(&sub.offer),
        "new ICE credentials"
    );
    let answer = sub.peer.answer(&offer).await.expect("answer");
    sub.down.set_answer(&answer).await.expect("set answer");
    let after = video_packets();
    wait_for("video after the ICE restart", || {
        video_packets() > after + 30
    })
    .await;
    assert!(
        sub.down.on_own_send_path(),
        "still on our own send path after the restart"
    );
    // The publisher renegotiates.
    let offer = publisher.peer.offer().await.expect("offer");
    let answer = publisher.up.renegotiate(&offer).await.expect("renegotiate");
    publisher.peer.set_answer(&answer).await.expect("answer");
    let after = video_packets();
    wait_for("video after renegotiation", || video_packets() > after + 30).await;
    assert_eq!(publisher.up.tracks().len(), 2);
    assert_eq!(sub.events.count(&MediaEvent::Closed), 0);
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_releases_everything() {
    let media = media().await;
    let publisher = publish(&media, av_publisher(None, 30, Some(1000))).await;
    let subs = [
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
        subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await,
    ];
    publisher.peer.start();
    wait_for("media at the subscribers", || {
        subs.iter().all(|s| {
            s.peer
                .stats()
                .track(Kind::Video)
                .is_some_and(|t| t.packets > 30)
        })
    })
    .await;
    assert_eq!(media.counts().peer_connections, 3);
    assert_eq!(media.counts().up_streams, 1);
    assert_eq!(media.counts().down_streams, 2);
    assert!(media.counts().cached_bytes > 0 || media.counts().caches == 2);

    // A subscriber leaves: its connection goes, the rest stays.
    subs[0].down.close().await;
    assert_eq!(subs[0].events.count(&MediaEvent::Closed), 1);
    wait_for("one down stream left", || {
        let c = media.counts();
        c.down_streams == 1 && c.peer_connections == 2
    })
    .await;
    let before = subs[1]
        .peer
        .stats()
        .track(Kind::Video)
        .map_or(0, |t| t.packets);
    wait_for("the other subscriber still receives", || {
        subs[1]
            .peer
            .stats()
            .track(Kind::Video)
            .is_some_and(|t| t.packets > before + 30)
    })
    .await;
    // Operations on a closed stream fail cleanly.
    assert!(subs[0].down.restart_ice().await.is_err());
    assert!(
        subs[0]
            .down
            .add_remote_candidate(serde_json::json!({"candidate": ""}))
            .await
            .is_err()
    );

    // The publisher leaves: every subscriber is closed with it.
    publisher.up.close().await;
    assert_eq!(publisher.events.count(&MediaEvent::Closed), 1);
    assert_eq!(subs[1].events.count(&MediaEvent::Closed), 1);
    assert_eq!(
        subs[0].events.count(&MediaEvent::Closed),
        1,
        "Closed only once"
    );
    let (sink, _) = sink(|_| async {});
    assert!(media.subscribe(&publisher.up, BOTH, sink).await.is_err());
    wait_released(&media).await;
    for s in &subs {
        s.peer.close().await;
    }
    publisher.peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused() {
    let media = media().await;
    let (sink, events) = sink(|_| async {});
    for offer in [
        "",
        "v=0\r\n",
        "this is not SDP",
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    ] {
        assert!(
            media.publish(&CODECS, offer, sink.clone()).await.is_err(),
            "{offer:?}"
        );
    }
    // A valid offer whose codecs the group does not allow.
    let peer = Publisher::new(av_publisher(None, 30, None))
        .await
        .expect("publisher");
    let offer = peer.offer().await.expect("offer");
    let err = match media
        .publish(&[Codec::H264, Codec::Pcmu], &offer, sink.clone())
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("published without a common codec"),
    };
    assert!(err.to_string().contains("h264"), "{err}");
    assert!(media.publish(&[], &offer, sink.clone()).await.is_err());
    peer.close().await;
    // Bad candidates on a good stream.
    let publisher = publish(&media, av_publisher(None, 30, None)).await;
    for c in [
        serde_json::Value::Null,
        serde_json::json!(42),
        serde_json::json!({"candidate": "candidate:garbage"}),
    ] {
        assert!(publisher.up.add_remote_candidate(c).await.is_err());
    }
    assert!(publisher.up.renegotiate("garbage").await.is_err());
    assert!(publisher.up.is_connected(), "still up after bad input");
    publisher.up.close().await;
    assert_eq!(
        events.count(&MediaEvent::Closed),
        0,
        "failed publishes send no event"
    );
    wait_released(&media).await;
    publisher.peer.close().await;
}

/// Many publish/subscribe/close cycles, a few at a time, closed in every
/// order: afterwards the media module holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_nothing_behind() {
    const CYCLES: usize = 200;
    const PARALLEL: usize = 8;
    let media = media().await;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = vec![];
    for _ in 0..PARALLEL {
        let (media, next) = (media.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= CYCLES {
                    return;
                }
                churn_cycle(&media, i).await;
            }
        }));
    }
    for w in workers {
        w.await.expect("cycle");
    }
    wait_released(&media).await;
}

async fn churn_cycle(media: &Arc<Media>, i: usize) {
    let publisher = publish(media, av_publisher(None, 30, None)).await;
    let sub = subscribe(media, &publisher.up, BOTH, SubscriberConfig::default()).await;
    publisher.peer.start();
    wait_for("media", || {
        sub.peer
            .stats()
            .track(Kind::Audio)
            .is_some_and(|t| t.packets > 0)
    })
    .await;
    match i % 4 {
        0 => {
            sub.down.close().await;
            publisher.up.close().await;
        }
        1 => publisher.up.close().await,
        2 => {
            // The clients go first.
            sub.peer.close().await;
            publisher.peer.close().await;
            publisher.up.close().await;
        }
        _ => {
            let up = publisher.up.clone();
            let down = sub.down.clone();
            tokio::join!(up.close(), down.close());
        }
    }
    assert_eq!(sub.events.count(&MediaEvent::Closed), 1);
    assert_eq!(publisher.events.count(&MediaEvent::Closed), 1);
    sub.peer.close().await;
    publisher.peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_range_and_advertised_addresses() {
    let (min, max) = (42_000, 42_100);
    let media = Media::new(MediaConfig {
        udp: UdpConfig::Range { min, max },
        advertise_ips: vec!["127.0.0.1".parse().expect("address")],
        ..Default::default()
    })
    .await
    .expect("media");
    assert_eq!(media.udp_port(), None);
    let publisher = publish(&media, av_publisher(None, 30, None)).await;
    let sub = subscribe(&media, &publisher.up, BOTH, SubscriberConfig::default()).await;
    publisher.peer.start();
    wait_for("media", || {
        sub.peer
            .stats()
            .track(Kind::Video)
            .is_some_and(|t| t.packets > 10)
    })
    .await;
    for log in [&publisher.events, &sub.events] {
        let addresses = log.candidate_addresses();
        assert!(!addresses.is_empty());
        for (ip, port) in addresses {
            assert_eq!(ip, "127.0.0.1", "only the advertised address");
            assert!((min..=max).contains(&port), "port {port} in the range");
        }
    }
    publisher.up.close().await;
    wait_released(&media).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mux_candidates_share_one_port_and_include_loopback() {
    let media = media().await;
    let port = media.udp_port().expect("mux port");
    let publisher = publish(&media, av_publisher(None, 30, None)).await;
    let addresses = publisher.events.candidate_addresses();
    assert!(
        addresses.iter().all(|(_, p)| *p == port),
        "one port: {addresses:?}"
    );
    assert!(
        addresses.iter().any(|(ip, _)| ip == "127.0.0.1"),
        "loopback: {addresses:?}"
    );
    publisher.up.close().await;
    wait_released(&media).await;
}

/// Streams closed at every stage of their life (before the answer, while
/// ICE checks, during the DTLS handshake, once connected), from either
/// side first, leave no task of the runtime behind: webrtc-rs's tasks
/// (ICE agent, DTLS, SRTP, operations queue, UDP mux) end with ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_at_any_stage_leaves_no_task_behind() {
    const CYCLES: usize = 120;
    let media = media().await;
    let baseline = alive_tasks();
    let publisher = publish(&media, av_publisher(None, 30, Some(u32::MAX))).await;
    publisher.peer.start();
    for i in 0..CYCLES {
        match i % 2 {
            0 => up_closed_early(&media, i / 2).await,
            _ => down_closed_early(&media, &publisher.up, i / 2).await,
        }
    }
    publisher.up.close().await;
    publisher.peer.close().await;
    drop(publisher);
    wait_released(&media).await;
    wait_tasks(baseline).await;
}

/// How long after the answer a cycle closes: 0 to 57 ms in 3 ms steps, so
/// that closing falls before, during and after ICE and DTLS.
fn close_delay(i: usize) -> std::time::Duration {
    std::time::Duration::from_millis((i % 20) as u64 * 3)
}

/// A publisher whose stream is closed at stage `i % 5`.
async fn up_closed_early(media: &Arc<Media>, i: usize) {
    let peer = Arc::new(
        Publisher::new(av_publisher(None, 30, None))
            .await
            .expect("publisher"),
    );
    let offer = peer.offer().await.expect("offer");
    let p = peer.clone();
    let (events_sink, events) = sink(move |c| {
        let p = p.clone();
        async move {
            let _ = p.add_remote_candidate(c).await;
        }
    });
    let (up, answer) = media
        .publish(&CODECS, &offer, events_sink)
        .await
        .expect("publish");
    let stage = i % 5;
    if stage > 0 {
        peer.set_answer(&answer).await.expect("answer");
        forward_to_up(peer.take_candidates().expect("candidates"), &up);
        match stage {
            1 => {}
            2 | 3 => tokio::time::sleep(close_delay(i)).await,
            _ => {
                peer.start();
                wait_for("up stream connected", || {
                    events.count(&MediaEvent::Connected) == 1
                })
                .await;
            }
        }
    }
    if i.is_multiple_of(2) {
        up.close().await;
        peer.close().await;
    } else {
        peer.close().await;
        up.close().await;
    }
    assert_eq!(events.count(&MediaEvent::Closed), 1);
}

/// A subscriber whose stream is closed at stage `i % 5`.
async fn down_closed_early(media: &Arc<Media>, up: &Arc<UpStream>, i: usize) {
    let peer = Arc::new(
        Subscriber::new(SubscriberConfig::default())
            .await
            .expect("subscriber"),
    );
    let p = peer.clone();
    let (events_sink, events) = sink(move |c| {
        let p = p.clone();
        async move {
            let _ = p.add_remote_candidate(c).await;
        }
    });
    let (down, offer) = media
        .subscribe(up, BOTH, events_sink)
        .await
        .expect("subscribe");
    let stage = i % 5;
    if stage > 0 {
        forward_to_down(peer.take_candidates().expect("candidates"), &down);
        let answer = peer.answer(&offer).await.expect("answer");
        down.set_answer(&answer).await.expect("set answer");
        match stage {
            1 => {}
            2 | 3 => tokio::time::sleep(close_delay(i)).await,
            _ => {
                wait_for("down stream connected", || {
                    events.count(&MediaEvent::Connected) == 1
                })
                .await;
            }
        }
    }
    if i.is_multiple_of(2) {
        down.close().await;
        peer.close().await;
    } else {
        peer.close().await;
        down.close().await;
    }
    assert_eq!(events.count(&MediaEvent::Closed), 1);
}
