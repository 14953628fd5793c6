//! Real GStreamer `webrtcbin` peers (tests/peers/gst_peer.py, Debian's GStreamer) call each
//! other through `/gst` and decode each other's VP8 video and Opus audio: in a 1-1 session,
//! with either side making the offer, and in a room of three.
//!
//! The media goes directly between the peers. libnice gathers no loopback candidates by
//! itself, so each peer is given 127.0.0.1 as its only ICE address: nothing leaves the
//! machine's loopback and no interface address is needed.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// Decoded video frames and audio buffers each peer must get from each other peer.
const FRAMES: u64 = 30;
const AUDIO: u64 = 50;
/// A safety stop for a peer that hangs, not an expectation: the peers end by themselves.
const PEER_TIMEOUT_SECS: u64 = 240;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/gst_peer.py")
}

/// Fails the test, saying what to install, unless GStreamer, the elements and the Python
/// modules the peer needs are all there: a machine without them must not pass silently.
fn require_gstreamer() {
    let output = Command::new("/usr/bin/python3")
        .arg(script())
        .arg("--check")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run /usr/bin/python3 ({e}): ./test.sh installs it with GStreamer")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "GStreamer or its Python bindings are missing; ./test.sh installs them.\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running peer process and the lines of its standard output.
struct PeerProcess {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// What a peer printed when it ended.
struct Outcome {
    status: ExitStatus,
    /// Decoded counts by remote peer: (video frames, audio buffers).
    decoded: HashMap<String, (u64, u64)>,
}

impl PeerProcess {
    fn start(server: &Server, id: &str, args: &[&str]) -> PeerProcess {
        let mut child = Command::new("/usr/bin/python3")
            .arg(script())
            .arg("--server")
            .arg(format!("ws://127.0.0.1:{}/gst", server.port))
            .arg("--id")
            .arg(id)
            .arg("--frames")
            .arg(FRAMES.to_string())
            .arg("--audio")
            .arg(AUDIO.to_string())
            // The peer's own deadline comes before ours, so that it still reports.
            .arg("--timeout")
            .arg((PEER_TIMEOUT_SECS - 30).to_string())
            .arg("--local-address")
            .arg("127.0.0.1")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "start /usr/bin/python3 (./test.sh installs GStreamer and its Python bindings)",
            );
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PeerProcess {
            name: id.to_owned(),
            child,
            lines,
        }
    }

    /// Waits until the peer has registered (it prints `READY <id>`).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("READY ") => return,
                Ok(_) => continue,
                Err(_) => panic!("{}: never became ready", self.name),
            }
        }
    }

    /// Waits for the peer to exit (killing it past the safety stop) and reads its result.
    fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(PEER_TIMEOUT_SECS);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the peer") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("wait for the killed peer");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut decoded = HashMap::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            let Some(json) = line.strip_prefix("RESULT ") else {
                continue;
            };
            let result: Value = serde_json::from_str(json).expect("RESULT is JSON");
            assert_eq!(result["id"], self.name.as_str());
            for (peer, counts) in result["peers"].as_object().expect("peers") {
                let count = |kind: &str| counts[kind].as_u64().unwrap_or(0);
                decoded.insert(peer.clone(), (count("video"), count("audio")));
            }
        }
        Outcome { status, decoded }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `outcome` is a success with enough decoded from each of `from`.
fn assert_decoded(name: &str, outcome: &Outcome, from: &[&str]) {
    assert!(
        outcome.status.success(),
        "{name} failed ({}); decoded {:?}",
        outcome.status,
        outcome.decoded
    );
    let mut peers: Vec<&str> = outcome.decoded.keys().map(String::as_str).collect();
    peers.sort_unstable();
    assert_eq!(peers, from, "{name} received media from");
    for peer in from {
        let (video, audio) = outcome.decoded[*peer];
        assert!(
            video >= FRAMES,
            "{name} decoded {video} video frames from {peer}"
        );
        assert!(
            audio >= AUDIO,
            "{name} decoded {audio} audio buffers from {peer}"
        );
    }
}

fn session(remote_offerer: bool) {
    require_gstreamer();
    let server = Server::start(&[]);
    let callee = PeerProcess::start(&server, "callee", &[]);
    callee.wait_ready();
    let mut args = vec!["--call", "callee"];
    if remote_offerer {
        args.push("--remote-offerer");
    }
    let caller = PeerProcess::start(&server, "caller", &args);
    let caller = caller.finish();
    let callee = callee.finish();
    // The callee is never told who called: it knows its peer as "caller" by its role.
    assert_decoded("caller", &caller, &["callee"]);
    assert_decoded("callee", &callee, &["caller"]);
}

#[test]
fn a_session_where_the_caller_offers_carries_video_and_audio_both_ways() {
    session(false);
}

#[test]
fn a_session_where_the_callee_offers_on_offer_request_carries_video_and_audio_both_ways() {
    session(true);
}

#[test]
fn a_room_of_three_carries_video_and_audio_between_every_pair() {
    require_gstreamer();
    let server = Server::start_with(&[], &["--gst-rooms", "any"], false);
    let names = ["a", "b", "c"];
    // Started together: whoever joins later makes the offers, whatever the order.
    let peers: Vec<PeerProcess> = names
        .iter()
        .map(|name| PeerProcess::start(&server, name, &["--room", "trio", "--expect", "2"]))
        .collect();
    let outcomes: Vec<Outcome> = peers.into_iter().map(PeerProcess::finish).collect();
    for (name, outcome) in names.iter().zip(&outcomes) {
        let others: Vec<&str> = names.iter().copied().filter(|n| n != name).collect();
        assert_decoded(name, outcome, &others);
    }
}
