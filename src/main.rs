//! `cinnabar`: command line, logging, start-up and graceful shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use cinnabar::config::Config;
use cinnabar::frontend::Context;
use cinnabar::group::password::{HashForm, hash_to_json};
use cinnabar::group::{Registry, RoomPolicy};
use cinnabar::media::{Media, MediaConfig, UdpConfig};
use cinnabar::web;

/// A self-hosted videoconferencing server speaking Galène's protocol.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Address to listen on: `:PORT` for every interface, or `HOST:PORT`.
    #[arg(long, default_value = ":8443", value_name = "ADDRESS")]
    http: String,
    /// Serve plain HTTP instead of HTTPS (behind a TLS-terminating proxy).
    #[arg(long)]
    insecure: bool,
    /// Directory of config.json, ice-servers.json and the TLS certificate.
    #[arg(long, default_value = "./data/", value_name = "DIR")]
    data: PathBuf,
    /// Directory of group files.
    #[arg(long, default_value = "./groups/", value_name = "DIR")]
    groups: PathBuf,
    /// Directory of the web client's files.
    #[arg(long = "static", default_value = "./static/", value_name = "DIR")]
    static_dir: PathBuf,
    /// UDP for media: one port shared by every connection (`PORT`; default: the HTTP
    /// port's number), or a range of ports, one per connection (`MIN-MAX`).
    #[arg(long, value_name = "PORT|MIN-MAX", value_parser = parse_udp_range)]
    udp_range: Option<UdpRange>,
    /// Rooms GStreamer peers (/gst) may join: `existing` groups that admit anyone without
    /// a password, or `any` name (a room without a group file is created on the fly).
    #[arg(long, value_enum, default_value = "existing", value_name = "POLICY")]
    gst_rooms: Rooms,
    /// Rooms calling-signaling clients (/calling) may join or create: `existing` or `any`.
    #[arg(long, value_enum, default_value = "existing", value_name = "POLICY")]
    calling_rooms: Rooms,
    /// Rooms Janus clients (/janus) may join or create: `existing` or `any`.
    #[arg(long, value_enum, default_value = "existing", value_name = "POLICY")]
    janus_rooms: Rooms,
    /// Rooms Room Signals apps (/room-signals) may join or create: `existing` or `any`.
    #[arg(long, value_enum, default_value = "existing", value_name = "POLICY")]
    room_signals_rooms: Rooms,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--gst-rooms`, `--calling-rooms`, `--janus-rooms` and `--room-signals-rooms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Rooms {
    Existing,
    Any,
}

impl From<Rooms> for RoomPolicy {
    fn from(rooms: Rooms) -> RoomPolicy {
        match rooms {
            Rooms::Existing => RoomPolicy::Existing,
            Rooms::Any => RoomPolicy::Any,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Hash a password and print the JSON to paste into a group file as a user's
    /// "password". The password is read from standard input (prompted on a terminal).
    HashPassword {
        /// Hash form: argon2 (argon2id), bcrypt or pbkdf2 (Galène's default form).
        #[arg(long = "type", value_enum, default_value = "argon2")]
        form: HashForm,
    },
}

/// `--udp-range`: one port (shared by every connection) or a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UdpRange {
    Single(u16),
    Range(u16, u16),
}

fn parse_udp_range(spec: &str) -> Result<UdpRange, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("{s:?} is not a port number"))
    };
    match spec.split_once('-') {
        None => Ok(UdpRange::Single(port(spec)?)),
        Some((min, max)) => {
            let (min, max) = (port(min)?, port(max)?);
            if min == 0 || min > max {
                return Err(format!("{spec:?}: expected MIN-MAX with 0 < MIN <= MAX"));
            }
            Ok(UdpRange::Range(min, max))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Some(Command::HashPassword { form }) = cli.command {
        return hash_password(form);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cinnabar: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // The WebRTC stack logs every ICE hiccup and every connection it tears down as a
    // warning; none of it is actionable, so only its errors are shown by default.
    let default = "info,webrtc=error,webrtc_ice=error,webrtc_dtls=error,webrtc_srtp=error,\
                   webrtc_sctp=error,webrtc_mdns=error,interceptor=error,turn=error,stun=error";
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn hash_password(form: HashForm) -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password("Password: ") {
            Ok(p) => p,
            Err(error) => {
                eprintln!("cinnabar: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut line = String::new();
        if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("cinnabar: {error}");
            return ExitCode::FAILURE;
        }
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    match hash_to_json(&password, form) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cinnabar: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if !cli.groups.is_dir() {
        tracing::warn!(
            "the groups directory {} does not exist: no group can be joined",
            cli.groups.display()
        );
    }
    if !cli.static_dir.join("index.html").is_file() {
        tracing::warn!(
            "{} has no index.html: the web client will not be served",
            cli.static_dir.display()
        );
    }
    let config = Config::new(&cli.data);
    config.check();
    let tls = if cli.insecure {
        None
    } else {
        Some(web::tls_acceptor(&cli.data)?)
    };

    let addresses = web::parse_listen_address(&cli.http)?;
    let listener = web::bind(&addresses).await?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;

    // Media shares one UDP port by default: the HTTP port's number, so that one number
    // opens both on a firewall.
    let udp = match cli.udp_range {
        None => UdpConfig::Mux { port: local.port() },
        Some(UdpRange::Single(port)) => UdpConfig::Mux { port },
        Some(UdpRange::Range(min, max)) => UdpConfig::Range { min, max },
    };
    let media = Media::new(MediaConfig {
        udp,
        ..MediaConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    match media.udp_port() {
        Some(port) => tracing::info!("media on UDP port {port} (all connections)"),
        None => tracing::info!("media on UDP ports {udp:?}"),
    }

    let ctx = Arc::new(Context {
        registry: Registry::new(&cli.groups, media),
        config,
        shutdown: CancellationToken::new(),
        connections: TaskTracker::new(),
        gst_rooms: cli.gst_rooms.into(),
        gst_peers: Default::default(),
        calling_rooms: cli.calling_rooms.into(),
        calling: Default::default(),
        janus_rooms: cli.janus_rooms.into(),
        janus: Default::default(),
        room_signals_rooms: cli.room_signals_rooms.into(),
        room_signals: Default::default(),
    });
    let scheme = if cli.insecure { "http" } else { "https" };
    // Tests and scripts read this line to learn the port when `--http` asks for port 0.
    tracing::info!("listening on {scheme}://{local}/");

    let routes = web::routes(ctx.clone(), cli.static_dir.clone(), !cli.insecure);
    let stop_http = CancellationToken::new();
    let server = tokio::spawn(web::serve(listener, tls, routes, stop_http.clone()));

    let sweeper = {
        let registry = ctx.registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                registry.sweep(Instant::now());
            }
        })
    };

    wait_for_signal().await;
    tracing::info!("shutting down");
    // Kick everyone first (they are told why), then close what is left.
    ctx.registry.shutdown();
    ctx.shutdown.cancel();
    ctx.connections.close();
    if tokio::time::timeout(Duration::from_secs(3), ctx.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    stop_http.cancel();
    let _ = server.await;
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_ranges() {
        assert_eq!(parse_udp_range("9000"), Ok(UdpRange::Single(9000)));
        assert_eq!(
            parse_udp_range("9000-9100"),
            Ok(UdpRange::Range(9000, 9100))
        );
        assert!(parse_udp_range("9100-9000").is_err());
        assert!(parse_udp_range("0-10").is_err());
        assert!(parse_udp_range("x").is_err());
    }
}
