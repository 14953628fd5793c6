//! `cinnabar-bench`: loads a server that speaks Galène's protocol (Cinnabar, or Galène
//! itself) with real WebSocket clients and real WebRTC peers, and measures what the
//! subscribers receive and what it costs the server.
//!
//! ```text
//! cinnabar-bench --server wss://HOST:PORT/ws --group G --username U --password P \
//!                --scenario lecture --clients 50 --duration 30 [--server-pid PID] [--json FILE]
//! ```

mod connect;
mod plan;
mod report;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::task::JoinSet;

use cinnabar::peer::Publisher;
use cinnabar::peer::galene::GaleneClient;

use plan::{Role, Scenario};
use report::{ClientTimes, Report};

/// Loads a Galène-protocol server with WebRTC clients and measures it.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// The server's WebSocket URL, e.g. wss://localhost:8443/ws.
    #[arg(long)]
    server: String,
    /// The group to join (with `--scenario rooms`: the prefix of `GROUP/1` ... `GROUP/R`).
    #[arg(long)]
    group: String,
    /// The username every client joins with.
    #[arg(long, default_value = "bench")]
    username: String,
    /// The password every client joins with.
    #[arg(long, default_value = "")]
    password: String,
    /// lecture: one publisher, N subscribers; meeting: N clients publishing and receiving
    /// everything; rooms: --groups groups of N/R such clients; audio: N speakers, Opus only.
    #[arg(long, value_enum, default_value = "lecture")]
    scenario: Scenario,
    /// Number of clients (in lecture: subscribers, besides the publisher).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Seconds of measurement once every client is connected.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Number of groups for the rooms scenario.
    #[arg(long, default_value_t = 2)]
    groups: usize,
    /// Video bitrate of each publisher, in kbit/s.
    #[arg(long, default_value_t = 1000)]
    video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Delay between client starts, in milliseconds.
    #[arg(long, default_value_t = 50)]
    ramp_ms: u64,
    /// Accept a self-signed (or any) certificate for wss://.
    #[arg(long)]
    insecure: bool,
    /// The server's process id, to measure its CPU time and memory (same machine only).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seconds a client may take to join and connect before it counts as failed.
    #[arg(long, default_value_t = 60)]
    connect_timeout: u64,
}

/// One running client and when it reached each step.
pub struct Running {
    pub role: Role,
    pub client: Arc<GaleneClient>,
    pub publisher: Option<Arc<Publisher>>,
    pub times: ClientTimes,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The WebRTC stack warns about every connection it tears down; only errors matter here.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,webrtc=error,webrtc_ice=error,webrtc_dtls=error,webrtc_srtp=error,\
                     webrtc_sctp=error,webrtc_mdns=error,interceptor=error,turn=error,stun=error",
                )
            }),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cinnabar-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if report.failed_clients > 0 {
                eprintln!("cinnabar-bench: {} clients failed", report.failed_clients);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cinnabar-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let roles = plan::roles(&args)?;
    let connector = connect::Connector::new(&args.server, args.insecure)?;
    let monitor = match args.server_pid {
        Some(pid) => Some(server::Monitor::start(pid)?),
        None => None,
    };
    let started = Instant::now();
    eprintln!(
        "{} clients ({} scenario) against {}",
        roles.len(),
        args.scenario.name(),
        args.server
    );

    // Start the clients one after the other, `ramp_ms` apart; each then connects on its own.
    let mut starting = JoinSet::new();
    for (i, role) in roles.into_iter().enumerate() {
        let connector = connector.clone();
        let client_args = args.clone();
        starting.spawn(async move { start_client(i, role, &connector, &client_args).await });
        tokio::time::sleep(Duration::from_millis(args.ramp_ms)).await;
    }
    let mut running = Vec::new();
    let mut failures = Vec::new();
    while let Some(result) = starting.join_next().await {
        match result {
            Ok(Ok(client)) => running.push(client),
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    for failure in failures.iter().take(5) {
        eprintln!("client failed: {failure}");
    }

    // Subscribers wait for every stream they expect before the measurement starts.
    let expected = plan::expected_streams(&running);
    let deadline = Instant::now() + Duration::from_secs(args.connect_timeout);
    loop {
        let ready = running
            .iter()
            .filter(|r| {
                r.client.received().len() >= expected.get(&r.role.index).copied().unwrap_or(0)
            })
            .count();
        if ready == running.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the keyframes and rate control settle, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window_start = report::Snapshot::take(&running, monitor.as_ref());
    let window = Duration::from_secs(args.duration);
    let measure_end = Instant::now() + window;
    let mut last = window_start.clone();
    while Instant::now() < measure_end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = report::Snapshot::take(&running, monitor.as_ref());
        report::progress(&last, &now, &running, measure_end);
        last = now;
    }
    eprintln!();
    let window_end = report::Snapshot::take(&running, monitor.as_ref());
    let report = Report::build(
        &args,
        &running,
        failures.len(),
        &window_start,
        &window_end,
        monitor.as_ref(),
        started.elapsed(),
    );
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for r in &running {
        r.client.close().await;
    }
    Ok(report)
}

/// Connects, joins, asks for streams and publishes as the role says; records the times.
async fn start_client(
    index: usize,
    role: Role,
    connector: &connect::Connector,
    args: &Args,
) -> Result<Running, String> {
    let wait = Duration::from_secs(args.connect_timeout);
    let begin = Instant::now();
    let mut times = ClientTimes::default();
    let id = format!("bench-{}-{index}", std::process::id());
    let client = tokio::time::timeout(wait, connector.connect(&id))
        .await
        .map_err(|_| format!("{id}: timed out connecting"))??;
    times.ws_open = Some(begin.elapsed());
    client
        .join(&role.group, &args.username, &args.password, wait)
        .await
        .map_err(|e| format!("{id}: {e}"))?;
    times.joined = Some(begin.elapsed());
    client.request(role.request.clone());
    let mut publisher = None;
    if let Some(mut config) = role.publish.clone() {
        config.all_interfaces = !connector.loopback;
        let p = client
            .publish(&format!("{id}-s"), "camera", config, wait)
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        times.offer_answered = Some(begin.elapsed());
        if !p.wait_connected(wait).await {
            return Err(format!("{id}: the publisher's connection did not come up"));
        }
        times.ice_connected = Some(begin.elapsed());
        times.published = Some((format!("{id}-s"), Instant::now()));
        p.start();
        publisher = Some(p);
    }
    Ok(Running {
        role: Role { index, ..role },
        client,
        publisher,
        times: ClientTimes {
            start: Some(begin),
            ..times
        },
    })
}
