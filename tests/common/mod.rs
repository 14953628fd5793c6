//! Test support: start the real `cinnabar` binary on a free port with its own groups
//! and data directories, and talk to it with a real WebSocket client.
#![allow(dead_code)]

pub mod rtc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something the server should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    pub secure: bool,
}

/// A group file for a test: name and JSON text.
pub type GroupFile<'a> = (&'a str, &'a str);

fn scratch_dir() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cinnabar-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("groups")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

impl Server {
    /// Starts a plain-HTTP server with these group files.
    pub fn start(groups: &[GroupFile]) -> Server {
        Server::start_with(groups, &[], false)
    }

    /// Starts a server with these group files, extra arguments, over TLS if `secure`.
    pub fn start_with(groups: &[GroupFile], args: &[&str], secure: bool) -> Server {
        let dir = scratch_dir();
        for (name, text) in groups {
            Server::write_group_in(&dir, name, text);
        }
        let static_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        // CINNABAR_TEST_WRAPPER runs the server under a tool (heaptrack, valgrind, ...).
        let mut command = match std::env::var("CINNABAR_TEST_WRAPPER") {
            Ok(wrapper) if !wrapper.is_empty() => {
                let mut c = Command::new(wrapper);
                c.arg(env!("CARGO_BIN_EXE_cinnabar"));
                c
            }
            _ => Command::new(env!("CARGO_BIN_EXE_cinnabar")),
        };
        command
            .arg("--http")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--groups")
            .arg(dir.join("groups"))
            .arg("--static")
            .arg(&static_dir)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CINNABAR_TEST_RUST_LOG")
                    .unwrap_or_else(|_| "info,webrtc=warn,webrtc_ice=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !secure {
            command.arg("--insecure");
        }
        let mut child = command.spawn().expect("start cinnabar");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let port = rest
                            .trim_end_matches('/')
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.parse::<u16>().ok());
                        let _ = port_tx.send(port);
                    }
                    if std::env::var_os("CINNABAR_TEST_LOG").is_some() {
                        eprintln!("server: {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("server did not start: {:?}", log.lock().unwrap()));
        Server {
            child,
            port,
            dir,
            log,
            secure,
        }
    }

    fn write_group_in(dir: &Path, name: &str, text: &str) {
        let path = dir.join("groups").join(format!("{name}.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes (or rewrites) a group file. The modification time is moved forward so the
    /// change is seen even within the file system's timestamp granularity.
    pub fn write_group(&self, name: &str, text: &str) {
        Server::write_group_in(&self.dir, name, text);
        let path = self.dir.join("groups").join(format!("{name}.json"));
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        let later = std::time::SystemTime::now() + Duration::from_secs(2);
        file.set_modified(later).unwrap();
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line contains {needle:?}: {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: plain `kill` through the shell keeps the test free of libc.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not exit after SIGTERM");
    }

    pub fn process_id(&self) -> u32 {
        self.child.id()
    }

    /// A plain HTTP/1.1 request; returns status, headers (lower-case names) and body.
    pub async fn http(&self, method: &str, path: &str) -> HttpResponse {
        http_request(self.port, method, path, &[]).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one HTTP/1.1 request over a fresh connection (the server closes it after).
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    http_request_with_body(port, method, path, headers, "").await
}

/// [`http_request`] with a body (give its `content-length` among the headers).
pub async fn http_request_with_body(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    http_over(stream, port, method, path, headers, body).await
}

pub async fn http_over<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read the head; then the body by length, or to the end. A 101 has no body and the
    // connection stays open, so stop at the head.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                if head.starts_with("HTTP/1.1 101") {
                    return;
                }
                let length = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                });
                if length.is_some_and(|len| body.len() >= len) {
                    return;
                }
            }
            if n == 0 {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("HTTP response in time");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Galène protocol client over a real WebSocket.
pub struct Client {
    socket: Socket,
    pub id: String,
    pub username: String,
}

/// How the server ended a connection.
#[derive(Debug, PartialEq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
    /// Messages received before the close.
    pub before: Vec<Value>,
}

impl Client {
    /// Opens a WebSocket without saying anything.
    pub async fn connect_raw(url: &str) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client {
            socket,
            id: String::new(),
            username: String::new(),
        }
    }

    /// Connects and completes the version-2 handshake with id `id`.
    pub async fn connect(url: &str, id: &str) -> Client {
        let mut client = Client::connect_raw(url).await;
        client.id = id.to_owned();
        client
            .send(json!({"type": "handshake", "version": ["2"], "id": id}))
            .await;
        let reply = client.recv().await;
        assert_eq!(reply["type"], "handshake", "{reply}");
        assert_eq!(reply["version"], json!(["2"]));
        client
    }

    /// Connects and joins `group`; panics unless the join succeeds.
    pub async fn join(url: &str, id: &str, group: &str, username: &str, password: &str) -> Client {
        let mut client = Client::connect(url, id).await;
        let joined = client.try_join(group, username, password).await;
        assert_eq!(joined["kind"], "join", "{joined}");
        client.username = username.to_owned();
        client
    }

    /// Sends a join and returns the `joined` answer (join, fail or redirect).
    pub async fn try_join(&mut self, group: &str, username: &str, password: &str) -> Value {
        self.send(json!({"type": "join", "kind": "join", "group": group,
                         "username": username, "password": password}))
            .await;
        let reply = self.recv_type("joined").await;
        if reply["kind"] == "join" {
            self.username = username.to_owned();
        }
        reply
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Frame::text(message.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Frame::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// Sends without insisting: the server may hang up while the frame is in flight.
    pub async fn try_send_text(&mut self, text: &str) {
        let _ = self.socket.send(Frame::text(text.to_owned())).await;
    }

    /// The next JSON message; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.recv_within(PATIENCE).await {
            Some(v) => v,
            None => panic!("{}: no message within {PATIENCE:?}", self.id),
        }
    }

    /// The next JSON message within `wait`, or `None`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = match tokio::time::timeout(wait, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("{}: connection closed", self.id),
                Ok(Some(Err(e))) => panic!("{}: {e}", self.id),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Frame::Close(c) => panic!("{}: closed by server: {c:?}", self.id),
                _ => continue,
            }
        }
    }

    /// The next message of this type, skipping others.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        self.recv_matching(|m| m["type"] == kind).await
    }

    /// The next message satisfying `matches`, skipping others.
    pub async fn recv_matching(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(m) if matches(&m) => return m,
                Some(_) => continue,
                None => panic!("{}: no matching message within {PATIENCE:?}", self.id),
            }
        }
    }

    /// Collects messages until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(m) = self.recv_within(quiet).await {
            out.push(m);
        }
        out
    }

    /// Asserts that no message satisfying `matches` arrives within `wait`.
    pub async fn assert_no(&mut self, wait: Duration, matches: impl Fn(&Value) -> bool) {
        for m in self.drain(wait).await {
            assert!(!matches(&m), "{}: unexpected {m}", self.id);
        }
    }

    /// Waits for the server to close the connection.
    pub async fn closed(&mut self) -> Closed {
        self.closed_within(PATIENCE).await
    }

    /// Waits up to `wait` for the server to close the connection.
    pub async fn closed_within(&mut self, wait: Duration) -> Closed {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: not closed within {wait:?}", self.id));
            match frame {
                Some(Ok(Frame::Text(text))) => before.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Frame::Close(c))) => {
                    let (code, reason) = c
                        .map(|c| (u16::from(c.code), c.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Closed {
                        code,
                        reason,
                        before,
                    };
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    return Closed {
                        code: 1006,
                        reason: String::new(),
                        before,
                    };
                }
            }
        }
    }

    pub async fn chat(&mut self, text: &str) {
        let message = json!({"type": "chat", "source": self.id, "username": self.username,
                             "kind": "", "value": text});
        self.send(message).await;
    }

    pub async fn user_action(&mut self, kind: &str, dest: &str, value: Value) {
        let message = json!({"type": "useraction", "source": self.id, "username": self.username,
                             "kind": kind, "dest": dest, "value": value});
        self.send(message).await;
    }

    pub async fn group_action(&mut self, kind: &str, value: Value) {
        let message = json!({"type": "groupaction", "source": self.id, "username": self.username,
                             "kind": kind, "value": value});
        self.send(message).await;
    }

    /// The next error `usermessage` addressed to this client.
    pub async fn recv_error(&mut self) -> String {
        let m = self
            .recv_matching(|m| m["type"] == "usermessage" && m["kind"] == "error")
            .await;
        m["value"].as_str().unwrap_or_default().to_owned()
    }
}

/// A group file with a wildcard user of the given permissions and an op `boss`/`secret`.
pub fn group_with_op(wildcard_permissions: &str, extra: &str) -> String {
    format!(
        r#"{{"users": {{"boss": {{"password": "secret", "permissions": "op"}}}},
            "wildcard-user": {{"password": {{"type": "wildcard"}}, "permissions": "{wildcard_permissions}"}}
            {extra}}}"#
    )
}
