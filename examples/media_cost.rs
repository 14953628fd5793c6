//! Server CPU time per forwarded packet, measured in one process.
//!
//! The media module runs on its own tokio runtime whose threads are named
//! `sfu`; the synthetic peers run on another. webrtc-rs spawns its tasks on
//! the runtime that calls it, so the `sfu` threads carry all the server's
//! work (UDP mux, ICE, DTLS, SRTP, our tasks). Their CPU time, read from
//! /proc/self/task/*/schedstat (Linux), divided by the packets forwarded
//! gives the figure.
//!
//! `cargo run --release --example media_cost -- [subscribers] [seconds]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinnabar::media::{Codec, Media, MediaConfig, MediaEvent, TrackSelection, VideoSelection};
use cinnabar::peer::{
    AudioConfig, Publisher, PublisherConfig, Subscriber, SubscriberConfig, VideoConfig,
};

/// CPU nanoseconds of this process's threads named `name`.
fn thread_cpu(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn forwarded(media: &Media) -> u64 {
    media
        .stats()
        .down
        .iter()
        .flat_map(|d| &d.tracks)
        .map(|t| t.packets)
        .sum()
}

/// Candidates from the server's events, delivered on the peers' runtime.
fn sink<F>(deliver: F) -> cinnabar::media::EventSink
where
    F: Fn(serde_json::Value) + Send + Sync + 'static,
{
    Arc::new(move |e| {
        if let MediaEvent::LocalCandidate(c) = e {
            deliver(c)
        }
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let subscribers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sfu")
        .enable_all()
        .build()
        .expect("server runtime");
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("peers")
        .enable_all()
        .build()
        .expect("client runtime");
    let sh = server.handle().clone();
    let ch = clients.handle().clone();
    clients.block_on(async move {
        let media = sh
            .spawn(Media::new(MediaConfig::default()))
            .await
            .expect("join")
            .expect("media");
        let publisher = Arc::new(
            Publisher::new(PublisherConfig {
                video: Some(VideoConfig::default()),
                audio: Some(AudioConfig::default()),
                ..Default::default()
            })
            .await
            .expect("publisher"),
        );
        let offer = publisher.offer().await.expect("offer");
        let p = publisher.clone();
        let h = ch.clone();
        let events = sink(move |c| {
            let p = p.clone();
            h.spawn(async move { p.add_remote_candidate(c).await });
        });
        let m = media.clone();
        let (up, answer) = sh
            .spawn(async move { m.publish(&[Codec::Vp8, Codec::Opus], &offer, events).await })
            .await
            .expect("join")
            .expect("publish");
        publisher.set_answer(&answer).await.expect("answer");
        let mut candidates = publisher.take_candidates().expect("candidates");
        let u = up.clone();
        sh.spawn(async move {
            while let Some(c) = candidates.recv().await {
                let _ = u.add_remote_candidate(c).await;
            }
        });
        assert!(publisher.wait_connected(Duration::from_secs(30)).await);
        let mut subs = vec![];
        for _ in 0..subscribers {
            let sub = Arc::new(Subscriber::new(SubscriberConfig::default()).await.expect("sub"));
            let s = sub.clone();
            let h = ch.clone();
            let events = sink(move |c| {
                let s = s.clone();
                h.spawn(async move { s.add_remote_candidate(c).await });
            });
            let (m, u) = (media.clone(), up.clone());
            let selection = TrackSelection {
                audio: true,
                video: VideoSelection::High,
            };
            let (down, offer) = sh
                .spawn(async move { m.subscribe(&u, selection, events).await })
                .await
                .expect("join")
                .expect("subscribe");
            let answer = sub.answer(&offer).await.expect("answer");
            let d = down.clone();
            sh.spawn(async move { d.set_answer(&answer).await })
                .await
                .expect("join")
                .expect("set answer");
            let mut candidates = sub.take_candidates().expect("candidates");
            let d = down.clone();
            sh.spawn(async move {
                while let Some(c) = candidates.recv().await {
                    let _ = d.add_remote_candidate(c).await;
                }
            });
            assert!(sub.wait_connected(Duration::from_secs(30)).await);
            subs.push((sub, down));
        }
        publisher.start();
        // Warm up, then measure.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, fwd0, t0) = (thread_cpu("sfu"), forwarded(&media), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        // Down track counters are published every 500 ms.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (cpu1, fwd1, elapsed) = (thread_cpu("sfu"), forwarded(&media), t0.elapsed());
        let packets = fwd1.saturating_sub(fwd0);
        let cpu = Duration::from_nanos(cpu1.saturating_sub(cpu0));
        println!(
            "{subscribers} subscribers, {:.1} s: {packets} packets forwarded ({:.0}/s), server CPU {:.2} s ({:.0}% of a core), {:.2} µs per forwarded packet",
            elapsed.as_secs_f64(),
            packets as f64 / elapsed.as_secs_f64(),
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / packets.max(1) as f64,
        );
        let stats = media.stats();
        let dropped: u64 = stats.down.iter().flat_map(|d| &d.tracks).map(|t| t.dropped).sum();
        println!("queue drops: {dropped}");
        sh.spawn(async move { up.close().await }).await.expect("join");
        for (sub, _) in subs {
            sub.close().await;
        }
        publisher.close().await;
    });
}
