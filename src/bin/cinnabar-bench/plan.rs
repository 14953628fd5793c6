//! Scenarios: who joins which group, who publishes what, who receives what.

use std::collections::HashMap;

use serde_json::{Value, json};

use cinnabar::peer::{AudioConfig, PublisherConfig, VideoConfig};

use super::{Args, Running};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Lecture,
    Meeting,
    Rooms,
    Audio,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Lecture => "lecture",
            Scenario::Meeting => "meeting",
            Scenario::Rooms => "rooms",
            Scenario::Audio => "audio",
        }
    }
}

/// One client's part.
#[derive(Clone)]
pub struct Role {
    pub index: usize,
    pub group: String,
    /// What it publishes, if anything.
    pub publish: Option<PublisherConfig>,
    /// Its `request`.
    pub request: Value,
}

/// Synthetic VP8 at `kbps` and `fps`: a keyframe every 3 s five times the size of the
/// other frames, packets of 1000 bytes.
pub fn video(kbps: u32, fps: u32) -> VideoConfig {
    const PACKET: f64 = 1000.0;
    let fps = fps.max(1);
    let gop = 3 * fps;
    let per_frame = f64::from(kbps) * 1000.0 / 8.0 / f64::from(fps) / PACKET;
    // (gop - 1) delta frames of d packets and one keyframe of 5d average per_frame.
    let delta = (per_frame * f64::from(gop) / f64::from(gop + 4)).max(1.0);
    VideoConfig {
        fps,
        keyframe_interval: gop,
        keyframe_packets: (delta * 5.0).round() as u32,
        delta_packets: delta.round().max(1.0) as u32,
        packet_size: PACKET as usize,
        frames: None,
    }
}

fn audio_video(args: &Args) -> PublisherConfig {
    PublisherConfig {
        video: Some(video(args.video_kbps, args.fps)),
        audio: Some(AudioConfig::default()),
        ..Default::default()
    }
}

fn audio_only() -> PublisherConfig {
    PublisherConfig {
        audio: Some(AudioConfig::default()),
        ..Default::default()
    }
}

/// The roles of a run, in start order.
pub fn roles(args: &Args) -> Result<Vec<Role>, String> {
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let everything = json!({"": ["audio", "video"]});
    let role =
        |index: usize, group: &str, publish: Option<PublisherConfig>, request: &Value| Role {
            index,
            group: group.to_owned(),
            publish,
            request: request.clone(),
        };
    Ok(match args.scenario {
        Scenario::Lecture => {
            let mut roles = vec![role(0, &args.group, Some(audio_video(args)), &json!({}))];
            for i in 1..=args.clients {
                roles.push(role(i, &args.group, None, &everything));
            }
            roles
        }
        Scenario::Meeting => (0..args.clients)
            .map(|i| role(i, &args.group, Some(audio_video(args)), &everything))
            .collect(),
        Scenario::Audio => (0..args.clients)
            .map(|i| role(i, &args.group, Some(audio_only()), &json!({"": ["audio"]})))
            .collect(),
        Scenario::Rooms => {
            if args.groups == 0 || args.groups > args.clients {
                return Err("--groups must be between 1 and --clients".into());
            }
            (0..args.clients)
                .map(|i| {
                    let group = format!("{}/{}", args.group, i % args.groups + 1);
                    role(i, &group, Some(audio_video(args)), &everything)
                })
                .collect()
        }
    })
}

/// How many streams each client should end up receiving, by role index.
pub fn expected_streams(running: &[Running]) -> HashMap<usize, usize> {
    let mut publishers: HashMap<&str, usize> = HashMap::new();
    for r in running.iter().filter(|r| r.publisher.is_some()) {
        *publishers.entry(r.role.group.as_str()).or_default() += 1;
    }
    running
        .iter()
        .map(|r| {
            let wants = r.role.request.as_object().is_some_and(|m| !m.is_empty());
            let others = publishers.get(r.role.group.as_str()).copied().unwrap_or(0)
                - usize::from(r.publisher.is_some());
            (r.role.index, if wants { others } else { 0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_bitrate_matches_the_target() {
        for (kbps, fps) in [(1000, 30), (300, 15), (2500, 30)] {
            let v = video(kbps, fps);
            let gop = f64::from(v.keyframe_interval);
            let packets_per_gop =
                f64::from(v.keyframe_packets) + (gop - 1.0) * f64::from(v.delta_packets);
            let bits_per_second =
                packets_per_gop * v.packet_size as f64 * 8.0 / (gop / f64::from(fps));
            let target = f64::from(kbps) * 1000.0;
            assert!(
                (bits_per_second - target).abs() / target < 0.2,
                "{kbps} kbit/s: {bits_per_second}"
            );
            assert!(v.keyframe_packets > v.delta_packets);
        }
    }
}
