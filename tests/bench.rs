//! A short `cinnabar-bench` run against the real server: it completes, loses nothing on
//! loopback, and prints its table. (Performance itself is measured, not asserted.)

mod common;

use std::process::Command;

use common::{Server, group_with_op};
use serde_json::Value;

#[test]
fn a_short_lecture_completes_without_loss() {
    let server = Server::start_with(
        &[("bench", &group_with_op("present", ""))],
        &["--udp-range", "0"],
        false,
    );
    let json = server.dir.join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_cinnabar-bench"))
        .args([
            "--server",
            &server.ws_url(),
            "--group",
            "bench",
            "--username",
            "b",
        ])
        .args(["--scenario", "lecture", "--clients", "3", "--duration", "3"])
        .args(["--video-kbps", "500", "--ramp-ms", "20"])
        .arg("--server-pid")
        .arg(server.process_id().to_string())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run cinnabar-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    print!("{stdout}");
    assert!(stdout.contains("results"), "the table is printed: {stdout}");
    assert!(
        stdout.contains("server CPU per forwarded packet"),
        "{stdout}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["failed_clients"], 0);
    assert_eq!(report["subscriptions"], 3);
    assert!(
        report["packets_received"].as_u64().unwrap() > 300,
        "{report}"
    );
    assert_eq!(
        report["loss_rate_max"], 0.0,
        "no loss on loopback: {report}"
    );
    assert!(report["server_cpu_us_per_packet"].is_number(), "{report}");
    assert!(
        report["server_rss_bytes_per_subscriber"].is_number(),
        "{report}"
    );
    for phase in [
        "websocket_open",
        "joined",
        "offer_answered",
        "ice_connected",
        "first_packet",
        "first_keyframe",
    ] {
        assert!(
            report["join_latency"][phase]["count"].as_u64().unwrap() > 0,
            "{phase}: {report}"
        );
    }
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let output = Command::new(env!("CARGO_BIN_EXE_cinnabar-bench"))
        .args(["--server", "http://example.invalid/ws", "--group", "g"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected a ws:// or wss:// URL"));
}
