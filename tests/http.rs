//! The HTTP side: pages, group status, public groups, origins, configuration files, TLS
//! and shutdown, against the real server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, Server, group_with_op, http_over, http_request};
use serde_json::json;

fn groups() -> Vec<(&'static str, String)> {
    vec![
        (
            "demo",
            group_with_op(
                "present",
                r#", "public": true, "displayName": "Demo", "description": "Try it""#,
            ),
        ),
        (
            "private",
            group_with_op("present", r#", "displayName": "Hidden""#),
        ),
        (
            "school/class",
            group_with_op("present", r#", "public": true"#),
        ),
    ]
}

fn start() -> Server {
    let groups = groups();
    let refs: Vec<(&str, &str)> = groups.iter().map(|(n, t)| (*n, t.as_str())).collect();
    Server::start(&refs)
}

#[tokio::test]
async fn landing_page_and_static_files() {
    let server = start();
    let page = server.http("GET", "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Public groups"), "{}", page.body);
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert!(page.header("content-security-policy").is_some());
    let script = server.http("GET", "/protocol.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(server.http("GET", "/no-such-file.txt").await.status, 404);
    assert_eq!(server.http("GET", "/../Cargo.toml").await.status, 404);
}

#[tokio::test]
async fn group_pages_exist_only_for_groups() {
    let server = start();
    let page = server.http("GET", "/group/demo/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.body.contains("login-form"));
    assert_eq!(server.http("GET", "/group/school/class/").await.status, 200);
    assert_eq!(server.http("GET", "/group/nope/").await.status, 404);
    assert_eq!(server.http("GET", "/group/../etc/").await.status, 404);
    let bare = server.http("GET", "/group/demo").await;
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/group/demo/"));
}

#[tokio::test]
async fn status_describes_the_group() {
    let server = start();
    let status = server.http("GET", "/group/demo/.status").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), Some("application/json"));
    let base = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(
        status.json(),
        json!({
            "name": "demo", "displayName": "Demo", "description": "Try it",
            "location": format!("{base}/group/demo/"),
            "endpoint": format!("ws://127.0.0.1:{}/ws", server.port),
            "locked": false, "clientCount": 0,
        })
    );
    // Private groups do not show who is there.
    let private = server.http("GET", "/group/private/.status").await.json();
    assert_eq!(private["displayName"], "Hidden");
    assert!(private.get("clientCount").is_none() && private.get("locked").is_none());
    assert_eq!(server.http("GET", "/group/nope/.status").await.status, 404);
    let old = server.http("GET", "/group/demo/.status.json").await;
    assert_eq!(old.status, 308);
    assert_eq!(old.header("location"), Some("/group/demo/.status"));
}

#[tokio::test]
async fn public_groups_are_listed_with_their_counts() {
    let server = start();
    let list = server.http("GET", "/public-groups.json").await.json();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].clone())
        .collect();
    assert_eq!(names, [json!("demo"), json!("school/class")]);
    assert_eq!(list[0]["clientCount"], 0);

    let _a = Client::join(&server.ws_url(), "a", "demo", "alice", "").await;
    let _b = Client::join(&server.ws_url(), "b", "demo", "bob", "").await;
    let list = server.http("GET", "/public-groups.json").await.json();
    assert_eq!(list[0]["clientCount"], 2);
    assert_eq!(
        list[0]["location"],
        format!("http://127.0.0.1:{}/group/demo/", server.port)
    );
}

#[tokio::test]
async fn websocket_origins_are_checked() {
    let server = start();
    let foreign = http_request(
        server.port,
        "GET",
        "/ws",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(foreign.status, 403);
    let own_origin = format!("http://127.0.0.1:{}", server.port);
    let same = http_request(
        server.port,
        "GET",
        "/ws",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Origin", &own_origin),
        ],
    )
    .await;
    assert_eq!(same.status, 101);
}

#[tokio::test]
async fn config_json_sets_proxy_url_origins_and_canonical_host() {
    let server = start();
    std::fs::write(
        server.dir.join("data/config.json"),
        r#"{"proxyURL": "https://meet.example.org/video",
            "allowOrigin": ["https://portal.example.org"],
            "canonicalHost": "127.0.0.1"}"#,
    )
    .unwrap();
    let status = server.http("GET", "/group/demo/.status").await.json();
    assert_eq!(
        status["location"],
        "https://meet.example.org/video/group/demo/"
    );
    assert_eq!(status["endpoint"], "wss://meet.example.org/video/ws");

    let allowed = http_request(
        server.port,
        "GET",
        "/ws",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Origin", "https://portal.example.org"),
        ],
    )
    .await;
    assert_eq!(allowed.status, 101);

    // A request naming another host is sent to the canonical one.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let other = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        stream
            .write_all(b"GET /group/demo/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        raw
    };
    assert!(other.starts_with("HTTP/1.1 301"), "{other}");
    assert!(
        other
            .to_ascii_lowercase()
            .contains("location: http://127.0.0.1/group/demo/")
    );
}

#[tokio::test]
async fn ice_servers_reach_joining_clients() {
    let server = start();
    std::fs::write(
        server.dir.join("data/ice-servers.json"),
        r#"[{"urls": ["turn:turn.example.org"], "username": "u",
             "credential": "s", "credentialType": "hmac-sha1"}]"#,
    )
    .unwrap();
    let mut c = Client::connect(&server.ws_url(), "a").await;
    let joined = c.try_join("demo", "a", "").await;
    let ice = &joined["rtcConfiguration"]["iceServers"][0];
    assert_eq!(ice["urls"], json!(["turn:turn.example.org"]));
    assert!(ice["username"].as_str().unwrap().ends_with(":u"), "{ice}");
    assert_ne!(ice["credential"], "s", "derived, not the secret");
}

/// A TLS client configuration trusting exactly the certificate the server generated.
fn trusting(cert_pem: &std::path::Path) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_with_a_generated_certificate() {
    let groups = groups();
    let refs: Vec<(&str, &str)> = groups.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let server = Server::start_with(&refs, &[], true);
    let cert = server.dir.join("data/cert.pem");
    let key = server.dir.join("data/key.pem");
    assert!(cert.is_file(), "certificate generated on first start");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let connector = trusting(&cert);
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let tls = connector
        .connect(name.clone(), tcp)
        .await
        .expect("certificate valid for localhost");
    let page = http_over(tls, server.port, "GET", "/public-groups.json", &[], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.json()[0]["endpoint"],
        format!("wss://127.0.0.1:{}/ws", server.port)
    );

    // And the WebSocket works over TLS.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let url = format!("wss://localhost:{}/ws", server.port);
    let (mut socket, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"type": "handshake", "version": ["2"], "id": "tls"}).to_string(),
        ))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("handshake"));
}

#[tokio::test]
async fn sigterm_kicks_everyone_and_exits_cleanly() {
    let mut server = start();
    let mut a = Client::join(&server.ws_url(), "a", "demo", "alice", "").await;
    let mut idle = Client::connect(&server.ws_url(), "idle").await;
    a.drain(Duration::from_millis(200)).await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let closed = a.closed().await;
    let kicked = closed
        .before
        .iter()
        .find(|m| m["kind"] == "kicked")
        .expect("told why");
    assert_eq!(kicked["value"], "the server is shutting down");
    assert_eq!(closed.code, 1000);
    let closed = idle.closed().await;
    assert_eq!(closed.code, 1001);
    server.wait_for_log("stopped").await;
}

#[tokio::test]
async fn stats_are_for_administrators_only() {
    let server = start();
    let anonymous = server.http("GET", "/stats.json").await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    common::rtc::with_admin(&server);
    // admin:wrong
    let wrong = http_request(
        server.port,
        "GET",
        "/stats.json",
        &[("Authorization", "Basic YWRtaW46d3Jvbmc=")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let stats = common::rtc::stats(&server).await;
    assert_eq!(stats["resources"]["peer_connections"], 0);
    assert_eq!(stats["groups"], json!([]));
}
