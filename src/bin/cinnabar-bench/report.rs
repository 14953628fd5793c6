//! What a run measured: snapshots during the run, the progress line, and the final table
//! and JSON.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cinnabar::peer::{Histogram, Kind};

use super::server::Monitor;
use super::{Args, Running};

/// When one client reached each step of joining, from its start.
#[derive(Clone, Debug, Default)]
pub struct ClientTimes {
    pub start: Option<Instant>,
    pub ws_open: Option<Duration>,
    pub joined: Option<Duration>,
    /// A publisher's offer answered by the server.
    pub offer_answered: Option<Duration>,
    /// A publisher's connection up.
    pub ice_connected: Option<Duration>,
    /// The stream this client publishes, and when its connection came up: its
    /// subscribers' join phases count from then if they were there before.
    pub published: Option<(String, Instant)>,
}

/// Counters at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: Instant,
    pub received: u64,
    pub sent: u64,
    pub delays: Histogram,
    pub server_cpu: Option<f64>,
}

impl Snapshot {
    pub fn take(running: &[Running], monitor: Option<&Monitor>) -> Snapshot {
        let mut received = 0;
        let mut delays = Histogram::default();
        for r in running {
            for (_, subscriber) in r.client.subscribers() {
                for track in subscriber.stats().tracks {
                    received += track.packets;
                    delays.merge(&track.delays);
                }
            }
        }
        let sent = running
            .iter()
            .filter_map(|r| r.publisher.as_ref())
            .map(|p| {
                let s = p.stats();
                u64::from(s.video_packets) + u64::from(s.audio_packets)
            })
            .sum();
        Snapshot {
            at: Instant::now(),
            received,
            sent,
            delays,
            server_cpu: monitor.and_then(|m| m.cpu_seconds()),
        }
    }
}

/// The progress line, rewritten in place every second.
pub fn progress(last: &Snapshot, now: &Snapshot, running: &[Running], end: Instant) {
    let secs = now.at.duration_since(last.at).as_secs_f64().max(0.001);
    let rate = (now.received.saturating_sub(last.received)) as f64 / secs;
    let cpu = match (last.server_cpu, now.server_cpu) {
        (Some(a), Some(b)) => format!(", server CPU {:.0}%", (b - a) / secs * 100.0),
        _ => String::new(),
    };
    let left = end.saturating_duration_since(Instant::now()).as_secs();
    eprint!(
        "\r{} clients, {:.0} packets/s received, p99 delay {:.1} ms{cpu}, {left} s left   ",
        running.len(),
        rate,
        now.delays.since(&last.delays).percentile(99.0) as f64 / 1000.0,
    );
    let _ = std::io::stderr().flush();
}

/// Percentiles of a list of durations, in milliseconds.
fn spread(mut values: Vec<Duration>) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort();
    let pick = |p: f64| {
        let i = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[i.clamp(1, values.len()) - 1].as_secs_f64() * 1000.0
    };
    json!({"p50_ms": round(pick(50.0)), "p95_ms": round(pick(95.0)), "max_ms": round(pick(100.0)),
           "count": values.len()})
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Everything a run measured.
pub struct Report {
    pub json: Value,
    pub failed_clients: usize,
}

impl Report {
    pub fn build(
        args: &Args,
        running: &[Running],
        failed_clients: usize,
        start: &Snapshot,
        end: &Snapshot,
        monitor: Option<&Monitor>,
        total: Duration,
    ) -> Report {
        let window = end.at.duration_since(start.at).as_secs_f64();
        let received = end.received.saturating_sub(start.received);
        let sent = end.sent.saturating_sub(start.sent);

        // Loss and duplicates per subscription, over the whole run: gaps left in the
        // rewritten sequence numbers are packets that never arrived.
        let mut losses = Vec::new();
        let mut duplicates = Vec::new();
        let mut subscriptions = 0;
        let mut phases: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let stream_up: HashMap<&str, Instant> = running
            .iter()
            .filter_map(|r| r.times.published.as_ref())
            .map(|(id, at)| (id.as_str(), *at))
            .collect();
        for r in running {
            let t0 = r.times.start;
            for (name, value) in [
                ("websocket_open", r.times.ws_open),
                ("joined", r.times.joined),
                ("offer_answered", r.times.offer_answered),
                ("ice_connected", r.times.ice_connected),
            ] {
                if let Some(v) = value {
                    phases.entry(name).or_default().push(v);
                }
            }
            for (id, subscriber) in r.client.subscribers() {
                subscriptions += 1;
                // From when both ends were there: a subscriber waiting for a publisher
                // that joins later is not waiting for the server.
                let origin = match (t0, stream_up.get(id.as_str())) {
                    (Some(t0), Some(&up)) => Some(t0.max(up)),
                    (t0, _) => t0,
                };
                let since = |i: Option<Instant>| {
                    i.zip(origin).map(|(i, t0)| i.saturating_duration_since(t0))
                };
                if let Some(times) = r.client.subscription_times(&id) {
                    if let Some(d) = since(times.answered) {
                        phases.entry("offer_answered").or_default().push(d);
                    }
                    if let Some(d) = since(times.connected) {
                        phases.entry("ice_connected").or_default().push(d);
                    }
                }
                let stats = subscriber.stats();
                let mut expected = 0;
                let mut missing = 0;
                let mut packets = 0;
                let mut dups = 0;
                for track in &stats.tracks {
                    if let (Some(first), Some(last)) = (track.seqs.first(), track.seqs.last()) {
                        expected += (last - first + 1) as u64;
                        missing += track.missing_seqs().len() as u64;
                    }
                    packets += track.packets;
                    dups += track.duplicates;
                    if let Some(d) = since(track.first_packet) {
                        phases.entry("first_packet").or_default().push(d);
                    }
                    if track.kind == Kind::Video
                        && let Some(d) = since(track.first_keyframe)
                    {
                        phases.entry("first_keyframe").or_default().push(d);
                    }
                }
                losses.push(if expected > 0 {
                    missing as f64 / expected as f64
                } else {
                    0.0
                });
                duplicates.push(if packets > 0 {
                    dups as f64 / packets as f64
                } else {
                    0.0
                });
            }
        }
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let delays = end.delays.since(&start.delays);

        let mut server = serde_json::Map::new();
        let mut cpu_per_packet = Value::Null;
        let mut rss_per_subscriber = Value::Null;
        if let (Some(monitor), Some(a), Some(b)) = (monitor, start.server_cpu, end.server_cpu) {
            let cpu = b - a;
            server.insert("cpu_seconds".into(), json!(round(cpu)));
            server.insert("cpu_percent".into(), json!(round(cpu / window * 100.0)));
            if received > 0 {
                cpu_per_packet = json!(round(cpu * 1e6 / received as f64));
            }
            server.insert("rss_baseline_bytes".into(), json!(monitor.baseline_rss));
            server.insert("rss_peak_bytes".into(), json!(monitor.peak_rss()));
            if subscriptions > 0 {
                let grown = monitor.peak_rss().saturating_sub(monitor.baseline_rss);
                rss_per_subscriber = json!(grown / subscriptions as u64);
            }
        }
        let json = json!({
            "scenario": args.scenario.name(),
            "server": args.server,
            "clients": running.len(),
            "failed_clients": failed_clients,
            "publishers": running.iter().filter(|r| r.publisher.is_some()).count(),
            "subscriptions": subscriptions,
            "video_kbps": args.video_kbps,
            "fps": args.fps,
            "window_seconds": round(window),
            "total_seconds": round(total.as_secs_f64()),
            "packets_sent": sent,
            "packets_received": received,
            "packets_received_per_second": round(received as f64 / window.max(0.001)),
            "loss_rate_mean": mean(&losses),
            "loss_rate_max": max(&losses),
            "duplicate_rate_mean": mean(&duplicates),
            "delay_ms": {
                "p50": round(delays.percentile(50.0) as f64 / 1000.0),
                "p90": round(delays.percentile(90.0) as f64 / 1000.0),
                "p99": round(delays.percentile(99.0) as f64 / 1000.0),
                "max": round(delays.max() as f64 / 1000.0),
            },
            "join_latency": phases.into_iter().map(|(k, v)| (k.to_owned(), spread(v))).collect::<serde_json::Map<_, _>>(),
            "server_process": Value::Object(server),
            "server_cpu_us_per_packet": cpu_per_packet,
            "server_rss_bytes_per_subscriber": rss_per_subscriber,
        });
        Report {
            json,
            failed_clients,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_default() + "\n"
    }

    /// The results as a table for a terminal.
    pub fn table(&self) -> String {
        let j = &self.json;
        let mut out = String::new();
        let mut row = |name: &str, value: String| out.push_str(&format!("  {name:<36} {value}\n"));
        row(
            "scenario",
            format!(
                "{} ({} clients, {} failed)",
                str_of(&j["scenario"]),
                j["clients"],
                j["failed_clients"]
            ),
        );
        row(
            "publishers / subscriptions",
            format!("{} / {}", j["publishers"], j["subscriptions"]),
        );
        row("measured for", format!("{} s", j["window_seconds"]));
        row(
            "packets sent / received",
            format!(
                "{} / {} ({} per s received)",
                j["packets_sent"], j["packets_received"], j["packets_received_per_second"]
            ),
        );
        row(
            "loss per subscription (mean / max)",
            format!(
                "{:.3}% / {:.3}%",
                num(&j["loss_rate_mean"]) * 100.0,
                num(&j["loss_rate_max"]) * 100.0
            ),
        );
        row(
            "duplicates (mean)",
            format!("{:.3}%", num(&j["duplicate_rate_mean"]) * 100.0),
        );
        let d = &j["delay_ms"];
        row(
            "end-to-end delay p50 / p90 / p99 / max",
            format!(
                "{} / {} / {} / {} ms",
                d["p50"], d["p90"], d["p99"], d["max"]
            ),
        );
        if let Some(phases) = j["join_latency"].as_object() {
            for phase in [
                "websocket_open",
                "joined",
                "offer_answered",
                "ice_connected",
                "first_packet",
                "first_keyframe",
            ] {
                if let Some(p) = phases.get(phase).filter(|p| !p.is_null()) {
                    row(
                        &format!("join: {phase} (p50 / p95 / max)"),
                        format!("{} / {} / {} ms", p["p50_ms"], p["p95_ms"], p["max_ms"]),
                    );
                }
            }
        }
        let s = &j["server_process"];
        if !s.is_null() && s.as_object().is_some_and(|m| !m.is_empty()) {
            row(
                "server CPU",
                format!("{} s ({}% of one core)", s["cpu_seconds"], s["cpu_percent"]),
            );
            row(
                "server CPU per forwarded packet",
                format!("{} µs", j["server_cpu_us_per_packet"]),
            );
            row(
                "server RSS baseline / peak",
                format!(
                    "{:.1} / {:.1} MiB",
                    num(&s["rss_baseline_bytes"]) / 1048576.0,
                    num(&s["rss_peak_bytes"]) / 1048576.0
                ),
            );
            row(
                "server memory per subscription",
                format!(
                    "{:.1} KiB",
                    num(&j["server_rss_bytes_per_subscriber"]) / 1024.0
                ),
            );
        }
        format!("\nresults\n{out}")
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}
