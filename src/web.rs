//! HTTP(S): the web client's files, group pages, group status, the frontends'
//! WebSocket endpoints, and TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Reply;

use crate::frontend::{Context, MAX_MESSAGE_SIZE, calling, galene, gstreamer, janus, room_signals};
use crate::group::JoinError;

/// The client's address, put into each request by the connection loop.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Limits how long a TLS handshake may take, so idle sockets do not pile up.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Reply_ = warp::reply::Response;

/// Everything the server answers over HTTP.
pub fn routes(ctx: Arc<Context>, static_dir: PathBuf, secure: bool) -> BoxedFilter<(Reply_,)> {
    let site = Site {
        ctx,
        static_dir,
        secure,
    };
    let site = Arc::new(site);
    let with_site = {
        let site = site.clone();
        warp::any().map(move || site.clone())
    };
    // The authority comes from `Host` in HTTP/1.1 and from `:authority` in HTTP/2.
    let host = warp::host::optional()
        .map(|authority: Option<warp::host::Authority>| authority.map(|a| a.to_string()));

    let canonical = with_site
        .clone()
        .and(host)
        .and(warp::path::full())
        .and_then(
            |site: Arc<Site>, host: Option<String>, path: warp::path::FullPath| async move {
                site.canonical_redirect(host.as_deref(), path.as_str())
                    .ok_or_else(warp::reject::not_found)
            },
        );

    let public_groups = warp::path!("public-groups.json")
        .and(warp::get().or(warp::head()).unify())
        .and(with_site.clone())
        .and(host)
        .map(|site: Arc<Site>, host: Option<String>| {
            let base = site.base_url(host.as_deref());
            let list: Vec<_> = site
                .ctx
                .registry
                .public_groups()
                .iter()
                .map(|s| galene::status_json(s, Some(&base)))
                .collect();
            json_response(&serde_json::Value::Array(list))
        });

    let group = warp::path("group")
        .and(warp::path::tail())
        .and(warp::get().or(warp::head()).unify())
        .and(with_site.clone())
        .and(host)
        .and_then(
            |tail: warp::path::Tail, site: Arc<Site>, host: Option<String>| async move {
                Ok::<_, Infallible>(site.group_route(tail.as_str(), host.as_deref()).await)
            },
        );

    let ws = websocket(&site, "ws", None, |socket, ctx, address| {
        Box::pin(galene::serve(socket, ctx, address))
    });
    let calling = websocket_query(&site, "calling", None, |socket, ctx, address, query| {
        Box::pin(calling::serve(socket, ctx, address, query))
    });
    let gst = websocket(&site, "gst", None, |socket, ctx, address| {
        Box::pin(gstreamer::serve(socket, ctx, address))
    });
    let janus_ws = websocket(
        &site,
        "janus",
        Some("janus-protocol"),
        |socket, ctx, address| Box::pin(janus::serve(socket, ctx, address)),
    );
    let janus_http = janus_http(&site);
    let room_signals = websocket(&site, "room-signals", None, |socket, ctx, address| {
        Box::pin(room_signals::serve(socket, ctx, address))
    });

    // GStreamer's signalling server answers this for load balancers and monitors.
    let health = warp::path!("health")
        .and(warp::get().or(warp::head()).unify())
        .map(|| text_response(StatusCode::OK, "OK\n"));

    let stats = warp::path!("stats.json")
        .and(warp::get().or(warp::head()).unify())
        .and(with_site.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            |site: Arc<Site>, authorization: Option<String>| async move {
                Ok::<_, Infallible>(site.stats(authorization).await)
            },
        );

    let files = warp::get()
        .or(warp::head())
        .unify()
        .and(warp::fs::dir(site.static_dir.clone()))
        .map(|file: warp::fs::File| {
            let mut response = file.into_response();
            response
                .headers_mut()
                .insert("cache-control", HeaderValue::from_static("no-cache"));
            response
        });

    let mut security = HeaderMap::new();
    security.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    security.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    security.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; \
             media-src 'self' blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'self'",
        ),
    );

    canonical
        .or(public_groups)
        .unify()
        .or(group)
        .unify()
        .or(ws)
        .unify()
        .or(calling)
        .unify()
        .or(gst)
        .unify()
        .or(janus_ws)
        .unify()
        .or(janus_http)
        .unify()
        .or(room_signals)
        .unify()
        .or(health)
        .unify()
        .or(stats)
        .unify()
        .or(files)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            Ok::<_, Infallible>(rejection_response(&rejection))
        })
        .unify()
        .with(warp::reply::with::headers(security))
        .map(Reply::into_response)
        .boxed()
}

/// Janus's HTTP transport under `/janus` (the WebSocket on the same path is tried first):
/// `POST` requests, `GET` long polls and `GET /janus/info`, with CORS for the origins
/// allowed to open WebSockets.
fn janus_http(site: &Arc<Site>) -> BoxedFilter<(Reply_,)> {
    let with_site = {
        let site = site.clone();
        warp::any().map(move || site.clone())
    };
    let origin = warp::header::optional::<String>("origin")
        .and(warp::host::optional())
        .map(
            |origin: Option<String>, host: Option<warp::host::Authority>| {
                (origin, host.map(|h| h.to_string()))
            },
        );
    let tail = warp::path("janus")
        .and(warp::path::tail())
        .map(|tail: warp::path::Tail| tail.as_str().to_owned());
    let post = tail
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_MESSAGE_SIZE as u64))
        .and(warp::body::bytes())
        .and(with_site.clone())
        .and(origin)
        .and(warp::ext::optional::<PeerAddr>())
        .and_then(
            |tail: String,
             body: bytes::Bytes,
             site: Arc<Site>,
             origin: (Option<String>, Option<String>),
             peer: Option<PeerAddr>| async move {
                let answer = janus::http_post(&site.ctx, &tail, &body, peer.map(|p| p.0)).await;
                Ok::<_, Infallible>(site.janus_answer(answer, origin))
            },
        );
    let get = tail
        .and(warp::get())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and(with_site.clone())
        .and(origin)
        .and_then(
            |tail: String,
             query: std::collections::HashMap<String, String>,
             site: Arc<Site>,
             origin: (Option<String>, Option<String>)| async move {
                let answer = if tail.trim_matches('/') == "info" {
                    janus::http_info(&site.ctx)
                } else {
                    let maxev = query.get("maxev").and_then(|m| m.parse().ok());
                    janus::http_get(&site.ctx, &tail, maxev).await
                };
                Ok::<_, Infallible>(site.janus_answer(answer, origin))
            },
        );
    let preflight = tail.and(warp::options()).and(with_site).and(origin).map(
        |_tail: String, site: Arc<Site>, origin: (Option<String>, Option<String>)| {
            let mut response = Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Default::default())
                .unwrap_or_else(|_| internal_error());
            site.cors(&mut response, origin);
            response
        },
    );
    post.or(get).unify().or(preflight).unify().boxed()
}

/// A frontend's connection handler: it owns the socket until the session ends.
type Serve = fn(
    warp::ws::WebSocket,
    Arc<Context>,
    Option<SocketAddr>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The WebSocket endpoint `/<path>` of a frontend: checks the origin, limits messages to
/// [`MAX_MESSAGE_SIZE`], and answers the subprotocol `protocol` when the frontend has one
/// and the client asked for it.
fn websocket(
    site: &Arc<Site>,
    path: &'static str,
    protocol: Option<&'static str>,
    serve: Serve,
) -> BoxedFilter<(Reply_,)> {
    websocket_query(site, path, protocol, move |socket, ctx, address, _query| {
        serve(socket, ctx, address)
    })
}

/// [`websocket`] for a frontend that reads the URL's raw query string (empty if none).
fn websocket_query<F>(
    site: &Arc<Site>,
    path: &'static str,
    protocol: Option<&'static str>,
    serve: F,
) -> BoxedFilter<(Reply_,)>
where
    F: Fn(
            warp::ws::WebSocket,
            Arc<Context>,
            Option<SocketAddr>,
            String,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let site = site.clone();
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path(path)
        .and(warp::path::end())
        .and(warp::ws())
        .and(warp::any().map(move || site.clone()))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::host::optional())
        .and(warp::ext::optional::<PeerAddr>())
        .and(query)
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .map(
            move |ws: warp::ws::Ws,
                  site: Arc<Site>,
                  origin: Option<String>,
                  host: Option<warp::host::Authority>,
                  peer: Option<PeerAddr>,
                  query: String,
                  requested: Option<String>| {
                let host = host.map(|h| h.to_string());
                if !site.origin_allowed(origin.as_deref(), host.as_deref()) {
                    return text_response(StatusCode::FORBIDDEN, "origin not allowed\n");
                }
                let ctx = site.ctx.clone();
                let address = peer.map(|p| p.0);
                let serve = serve.clone();
                let mut response = ws
                    .max_message_size(MAX_MESSAGE_SIZE)
                    .max_frame_size(MAX_MESSAGE_SIZE)
                    .on_upgrade(move |socket| {
                        let tracker = ctx.connections.clone();
                        tracker.track_future(serve(socket, ctx, address, query))
                    })
                    .into_response();
                // A subprotocol is named in the answer only if the client asked for it.
                let asked = |p: &str| {
                    requested
                        .as_deref()
                        .is_some_and(|r| r.split(',').any(|x| x.trim() == p))
                };
                if let Some(protocol) = protocol.filter(|p| asked(p)) {
                    response
                        .headers_mut()
                        .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
                }
                response
            },
        )
        .boxed()
}

struct Site {
    ctx: Arc<Context>,
    static_dir: PathBuf,
    secure: bool,
}

impl Site {
    /// The public base URL, ending in `/`: `proxyURL` if configured, else this request's host.
    fn base_url(&self, host: Option<&str>) -> String {
        if let Some(url) = &self.ctx.config.server().proxy_url {
            return if url.ends_with('/') {
                url.clone()
            } else {
                format!("{url}/")
            };
        }
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}/", host.unwrap_or("localhost"))
    }

    fn canonical_redirect(&self, host: Option<&str>, path: &str) -> Option<Reply_> {
        let config = self.ctx.config.server();
        let canonical = config.canonical_host.as_deref()?;
        let host = host?;
        if host_part(host).eq_ignore_ascii_case(host_part(canonical)) {
            return None;
        }
        let scheme = if self.secure { "https" } else { "http" };
        let location = format!("{scheme}://{canonical}{path}");
        Some(redirect(StatusCode::MOVED_PERMANENTLY, &location))
    }

    /// A Janus HTTP answer as a response, with CORS headers when the origin is allowed.
    fn janus_answer(
        &self,
        answer: janus::HttpAnswer,
        origin: (Option<String>, Option<String>),
    ) -> Reply_ {
        let mut response = json_response(&answer.body);
        *response.status_mut() =
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.cors(&mut response, origin);
        response
    }

    /// Lets a web page of an allowed origin (the server's own, or `allowOrigin`) read
    /// the response, as janus.js does from its own pages.
    fn cors(&self, response: &mut Reply_, (origin, host): (Option<String>, Option<String>)) {
        let Some(origin) = origin else {
            return;
        };
        if !self.origin_allowed(Some(&origin), host.as_deref()) {
            return;
        }
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&origin) {
            headers.insert("access-control-allow-origin", value);
        }
        headers.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("content-type"),
        );
        headers.insert("vary", HeaderValue::from_static("origin"));
    }

    fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            // Non-browser clients send no Origin; only browsers need protecting.
            return true;
        };
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host)) {
            return true;
        }
        let config = self.ctx.config.server();
        config
            .allow_origin
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }

    async fn group_route(&self, tail: &str, host: Option<&str>) -> Reply_ {
        let Ok(decoded) = percent_encoding::percent_decode_str(tail).decode_utf8() else {
            return text_response(StatusCode::NOT_FOUND, "no such group\n");
        };
        if let Some(name) = decoded.strip_suffix("/.status.json") {
            let location = format!("/group/{}/.status", encode_path(name));
            return redirect(StatusCode::PERMANENT_REDIRECT, &location);
        }
        if let Some(name) = decoded.strip_suffix("/.status") {
            return match self.ctx.registry.get(name) {
                Ok(group) => {
                    let base = self.base_url(host);
                    json_response(&galene::status_json(&group.status(), Some(&base)))
                }
                Err(error) => group_error_response(&error),
            };
        }
        let Some(name) = decoded.strip_suffix('/') else {
            // `/group/demo` is the same page as `/group/demo/`.
            let location = format!("/group/{}/", encode_path(&decoded));
            return redirect(StatusCode::PERMANENT_REDIRECT, &location);
        };
        match self.ctx.registry.get(name) {
            Ok(group) => {
                if let Some(url) = group.description().redirect.clone() {
                    return redirect(StatusCode::PERMANENT_REDIRECT, &url);
                }
                self.page("galene.html").await
            }
            Err(error) => group_error_response(&error),
        }
    }

    /// `/stats.json`, for administrators (HTTP Basic against `data/config.json`).
    async fn stats(&self, authorization: Option<String>) -> Reply_ {
        let config = self.ctx.config.server();
        let credentials = authorization.as_deref().and_then(basic_credentials);
        // Hashes cost CPU: check them off the runtime, and make failures slow.
        let admitted = match credentials {
            Some((user, password)) => {
                tokio::task::spawn_blocking(move || config.is_admin(&user, &password))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if !admitted {
            if authorization.is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Basic realm=\"cinnabar\"")
                .body("administrator credentials required\n".into())
                .unwrap_or_else(|_| internal_error());
        }
        let mut stats = serde_json::to_value(self.ctx.registry.stats()).unwrap_or_default();
        // Open WebSocket sessions, of every frontend.
        stats["resources"]["connections"] = self.ctx.connections.len().into();
        // Every task of the runtime, the WebRTC stack's included: after clients leave,
        // this returns to its idle value.
        stats["resources"]["runtime_tasks"] = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            .into();
        json_response(&stats)
    }

    async fn page(&self, file: &str) -> Reply_ {
        match tokio::fs::read(self.static_dir.join(file)).await {
            Ok(body) => Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                .header("cache-control", "no-cache")
                .body(body.into())
                .unwrap_or_else(|_| internal_error()),
            Err(error) => {
                tracing::error!("cannot read {file} from the static directory: {error}");
                internal_error()
            }
        }
    }
}

/// The user name and password of an HTTP Basic `Authorization` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn host_part(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

fn encode_path(name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

fn group_error_response(error: &JoinError) -> Reply_ {
    match error {
        JoinError::BrokenGroup => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this group is misconfigured; the server's log says why\n",
        ),
        _ => text_response(StatusCode::NOT_FOUND, "no such group\n"),
    }
}

fn json_response(value: &serde_json::Value) -> Reply_ {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body.into())
        .unwrap_or_else(|_| internal_error())
}

fn text_response(status: StatusCode, text: &'static str) -> Reply_ {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(text.into())
        .unwrap_or_else(|_| internal_error())
}

fn redirect(status: StatusCode, location: &str) -> Reply_ {
    Response::builder()
        .status(status)
        .header("location", location)
        .body(Default::default())
        .unwrap_or_else(|_| internal_error())
}

fn internal_error() -> Reply_ {
    let mut response = Response::new("internal server error\n".into());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

fn rejection_response(rejection: &warp::Rejection) -> Reply_ {
    if rejection.is_not_found() {
        text_response(StatusCode::NOT_FOUND, "not found\n")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
    } else {
        text_response(StatusCode::BAD_REQUEST, "bad request\n")
    }
}

/// Parses `--http`: `:8443` (every interface), `HOST:PORT` or `[V6]:PORT`.
pub fn parse_listen_address(spec: &str) -> Result<Vec<SocketAddr>, String> {
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{spec:?}: bad port number"))?;
        return Ok(vec![
            SocketAddr::from(([0u16; 8], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]);
    }
    use std::net::ToSocketAddrs;
    let addresses: Vec<SocketAddr> = spec
        .to_socket_addrs()
        .map_err(|e| format!("{spec:?}: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("{spec:?}: no address"));
    }
    Ok(addresses)
}

/// Binds the first of `addresses` that works (for `:port`, dual-stack IPv6 first).
pub async fn bind(addresses: &[SocketAddr]) -> Result<TcpListener, String> {
    let mut last_error = String::from("no address to listen on");
    for address in addresses {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = format!("cannot listen on {address}: {error}"),
        }
    }
    Err(last_error)
}

/// Loads `cert.pem`/`key.pem` from `data_dir`, generating a self-signed pair on first start.
pub fn tls_acceptor(data_dir: &Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let cert_path = data_dir.join("cert.pem");
    let key_path = data_dir.join("key.pem");
    if !cert_path.exists() && !key_path.exists() {
        generate_certificate(&cert_path, &key_path)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn generate_certificate(cert_path: &Path, key_path: &Path) -> Result<(), String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.push(host.to_owned());
        }
    }
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(cert_path, generated.cert.pem())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    write_private(key_path, generated.key_pair.serialize_pem().as_bytes())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    tracing::info!(
        "generated a self-signed certificate in {}",
        cert_path.display()
    );
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// Accepts connections until `stop` is cancelled, then lets HTTP requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: BoxedFilter<(Reply_,)>,
    stop: tokio_util::sync::CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = warp::service(routes.clone());
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            use tower_service::Service;
            request.extensions_mut().insert(PeerAddr(peer));
            let head = request.method() == http::Method::HEAD;
            let mut service = service.clone();
            async move {
                let response = service.call(request).await?;
                // HTTP/2 forbids a body on a HEAD response; HTTP/1.1 drops it anyway.
                Ok::<_, Infallible>(if head {
                    response.map(|_| Default::default())
                } else {
                    response
                })
            }
        });
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = ConnectionBuilder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let Ok(Ok(stream)) = handshake else {
                        tracing::debug!(%peer, "TLS handshake failed");
                        return;
                    };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, "HTTP connection ended: {error}");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(3), graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let all = parse_listen_address(":8443").unwrap();
        assert_eq!(all[0].port(), 8443);
        assert!(all[0].is_ipv6() && all[1].is_ipv4());
        assert_eq!(
            parse_listen_address("127.0.0.1:0").unwrap(),
            [SocketAddr::from(([127, 0, 0, 1], 0))]
        );
        assert!(parse_listen_address(":http").is_err());
        assert!(parse_listen_address("nonsense").is_err());
    }

    #[test]
    fn basic_auth() {
        assert_eq!(
            basic_credentials("Basic YWRtaW46czNjcjN0"),
            Some(("admin".into(), "s3cr3t".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_part("example.org:8443"), "example.org");
        assert_eq!(host_part("[::1]:8443"), "[::1]");
        assert_eq!(host_part("example.org"), "example.org");
    }
}
