//! Helpers of the media integration tests: signalling between the media
//! module and the synthetic peers, and waiting on conditions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cinnabar::media::{
    Codec, DownStream, EventSink, Media, MediaConfig, MediaCounts, MediaEvent, TrackSelection,
    UpStream, VideoSelection,
};
use cinnabar::peer::{
    AudioConfig, DropFilter, Kind, Publisher, PublisherConfig, Subscriber, SubscriberConfig,
    VideoConfig,
};
use tokio::sync::mpsc::UnboundedReceiver;

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const CODECS: [Codec; 2] = [Codec::Vp8, Codec::Opus];
pub const BOTH: TrackSelection = TrackSelection {
    audio: true,
    video: VideoSelection::High,
};

/// Events of one stream, as the test saw them.
#[derive(Clone, Default)]
pub struct EventLog {
    pub events: Arc<Mutex<Vec<MediaEvent>>>,
    candidates: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl EventLog {
    pub fn count(&self, wanted: &MediaEvent) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == wanted)
            .count()
    }

    /// The (address, port) of every local candidate.
    pub fn candidate_addresses(&self) -> Vec<(String, u16)> {
        self.candidates
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| {
                let fields: Vec<&str> = c["candidate"].as_str()?.split(' ').collect();
                Some((fields.get(4)?.to_string(), fields.get(5)?.parse().ok()?))
            })
            .collect()
    }
}

/// An event sink that hands local candidates to `deliver` and logs the rest.
pub fn sink<F, Fut>(deliver: F) -> (EventSink, EventLog)
where
    F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let log = EventLog::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            deliver(c).await;
        }
    });
    let l = log.clone();
    let sink: EventSink = Arc::new(move |e| match e {
        MediaEvent::LocalCandidate(c) => {
            l.candidates.lock().unwrap().push(c.clone());
            let _ = tx.send(c);
        }
        other => l.events.lock().unwrap().push(other),
    });
    (sink, log)
}

pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn media() -> Arc<Media> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Media::new(MediaConfig::default())
        .await
        .expect("media starts")
}

pub fn video(frames: Option<u32>, keyframe_interval: u32) -> VideoConfig {
    VideoConfig {
        frames,
        keyframe_interval,
        ..Default::default()
    }
}

pub fn av_publisher(
    frames: Option<u32>,
    keyframe_interval: u32,
    audio_packets: Option<u32>,
) -> PublisherConfig {
    PublisherConfig {
        video: Some(video(frames, keyframe_interval)),
        audio: Some(AudioConfig {
            packets: audio_packets,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub struct Published {
    pub peer: Arc<Publisher>,
    pub up: Arc<UpStream>,
    pub events: EventLog,
}

/// Publish from a new synthetic publisher and wait for the connection.
pub async fn publish(media: &Arc<Media>, config: PublisherConfig) -> Published {
    let peer = Arc::new(Publisher::new(config).await.expect("publisher"));
    let offer = peer.offer().await.expect("offer");
    let p = peer.clone();
    let (events_sink, events) = sink(move |c| {
        let p = p.clone();
        async move { p.add_remote_candidate(c).await.expect("server candidate") }
    });
    let (up, answer) = media
        .publish(&CODECS, &offer, events_sink)
        .await
        .expect("publish");
    peer.set_answer(&answer).await.expect("answer");
    forward_to_up(peer.take_candidates().expect("candidates"), &up);
    assert!(peer.wait_connected(TIMEOUT).await, "publisher connects");
    wait_for("up stream connected", || {
        events.count(&MediaEvent::Connected) == 1
    })
    .await;
    Published { peer, up, events }
}

pub struct Subscribed {
    pub peer: Arc<Subscriber>,
    pub down: Arc<DownStream>,
    pub events: EventLog,
    pub offer: String,
}

/// Subscribe a new synthetic subscriber and wait until forwarding starts.
pub async fn subscribe(
    media: &Arc<Media>,
    up: &Arc<UpStream>,
    selection: TrackSelection,
    config: SubscriberConfig,
) -> Subscribed {
    let peer = Arc::new(Subscriber::new(config).await.expect("subscriber"));
    let p = peer.clone();
    let (events_sink, events) = sink(move |c| {
        let p = p.clone();
        async move { p.add_remote_candidate(c).await.expect("server candidate") }
    });
    let (down, offer) = media
        .subscribe(up, selection, events_sink)
        .await
        .expect("subscribe");
    // Candidates may reach the server before the answer: it must queue them.
    forward_to_down(peer.take_candidates().expect("candidates"), &down);
    let answer = peer.answer(&offer).await.expect("answer");
    down.set_answer(&answer).await.expect("set answer");
    assert!(peer.wait_connected(TIMEOUT).await, "subscriber connects");
    wait_for("down stream connected", || {
        events.count(&MediaEvent::Connected) == 1
    })
    .await;
    Subscribed {
        peer,
        down,
        events,
        offer,
    }
}

/// The SSRCs announced in an SDP.
pub fn sdp_ssrcs(sdp: &str) -> Vec<u32> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=ssrc:"))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

pub async fn wait_released(media: &Media) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let counts = media.counts();
        if counts == MediaCounts::default() {
            return;
        }
        assert!(Instant::now() < deadline, "not released: {counts:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Video packets whose probe index is in `indices`.
pub fn drop_video(indices: impl Fn(u32) -> bool + Send + Sync + 'static) -> DropFilter {
    Arc::new(move |p| p.kind == Kind::Video && p.probe.is_some_and(|probe| indices(probe.index)))
}

pub fn video_stats(media: &Media, down: &DownStream) -> cinnabar::media::DownTrackStats {
    media
        .stats()
        .down
        .into_iter()
        .find(|d| d.id == down.id())
        .and_then(|d| {
            d.tracks
                .into_iter()
                .find(|t| t.kind == cinnabar::media::MediaKind::Video)
        })
        .expect("down video track stats")
}

pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:"))
}

/// Tasks alive in the test's runtime, webrtc-rs's included.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Wait until the runtime runs no more tasks than `baseline`.
pub async fn wait_tasks(baseline: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let alive = alive_tasks();
        if alive <= baseline {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} tasks alive, {baseline} before the streams"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Passes a test peer's ICE candidates to the server's up stream until it closes.
pub fn forward_to_up(mut candidates: UnboundedReceiver<serde_json::Value>, up: &Arc<UpStream>) {
    let up = up.clone();
    tokio::spawn(async move {
        while let Some(c) = candidates.recv().await {
            if up.add_remote_candidate(c).await.is_err() {
                return;
            }
        }
    });
}

/// Passes a test peer's ICE candidates to the server's down stream until it closes.
pub fn forward_to_down(
    mut candidates: UnboundedReceiver<serde_json::Value>,
    down: &Arc<DownStream>,
) {
    let down = down.clone();
    tokio::spawn(async move {
        while let Some(c) = candidates.recv().await {
            if down.add_remote_candidate(c).await.is_err() {
                return;
            }
        }
    });
}
