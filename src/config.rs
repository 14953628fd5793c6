//! Server-wide configuration in the data directory: `config.json` and `ice-servers.json`.
//!
//! Both files are optional and strict (an unknown key is an error). They are re-read when
//! they change on disk; a file that fails to parse keeps the last good version in force
//! and is reported in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::group::description::{FileStamp, UserEntry};
use crate::group::permissions::{Expansion, Permission};

/// `data/config.json`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// Administrators (the `admin` permission), for `/stats.json`.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, UserEntry>,
    /// Extra origins allowed to open WebSockets (the server's own origin always is).
    #[serde(default)]
    pub allow_origin: Vec<String>,
    /// Public base URL when behind a reverse proxy, e.g. `https://example.org/meet/`.
    #[serde(default, rename = "proxyURL")]
    pub proxy_url: Option<String>,
    /// Requests for another host are redirected to this one.
    #[serde(default)]
    pub canonical_host: Option<String>,
    /// Accepted for compatibility with Galène; this server has no write API.
    #[serde(default)]
    pub writable_groups: bool,
    /// Accepted for compatibility with Galène; this server has no admin API.
    #[serde(default)]
    pub allow_admin_origin: Vec<String>,
    /// Free text, ignored: lets a config file explain itself.
    #[serde(default)]
    pub comment: Option<serde_json::Value>,
    /// Limits and the token key of janus.plugin.sfu on `/janus`.
    #[serde(default)]
    pub janus: Option<JanusConfig>,
}

/// The `janus` section of `data/config.json`: janus.plugin.sfu's limits and token key.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JanusConfig {
    /// Users (Janus clients that joined with `data: true`, and publishers of other
    /// protocols) a room may have before further Janus members are refused.
    #[serde(default)]
    pub max_room_size: Option<usize>,
    /// Clients (of any protocol) the server may have before Janus members are refused.
    #[serde(default)]
    pub max_clients: Option<usize>,
    /// The RSA public key (PEM or DER file, relative to the data directory) that join and
    /// kick tokens are checked with; without one, joins are open and kicks refused.
    #[serde(default)]
    pub auth_key: Option<PathBuf>,
    /// Seconds without a request after which a session is destroyed (Janus's
    /// `session_timeout`; default 60).
    #[serde(default)]
    pub session_timeout: Option<u64>,
}

impl ServerConfig {
    /// Whether `username`/`password` are an administrator's credentials.
    pub fn is_admin(&self, username: &str, password: &str) -> bool {
        let Some(entry) = self.users.get(username) else {
            return false;
        };
        let permissions = entry.permissions.expand(Expansion::default());
        permissions.has(Permission::Admin)
            && entry.password.as_ref().is_some_and(|p| p.matches(password))
    }
}

/// One entry of `data/ice-servers.json`, as the browser's `RTCIceServer`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IceServerEntry {
    pub urls: Urls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub credential_type: Option<String>,
}

/// `urls` may be one string or a list.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

impl Urls {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Urls::One(u) => vec![u.clone()],
            Urls::Many(v) => v.clone(),
        }
    }
}

/// An ICE server ready to hand to a client: credentials already derived.
#[derive(Clone, Debug, PartialEq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl IceServer {
    /// As the browser's `RTCIceServer`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut entry = serde_json::json!({ "urls": self.urls });
        if let Some(username) = &self.username {
            entry["username"] = serde_json::json!(username);
        }
        if let Some(credential) = &self.credential {
            entry["credential"] = serde_json::json!(credential);
        }
        entry
    }
}

/// How long derived `hmac-sha1` credentials stay valid.
const HMAC_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl IceServerEntry {
    /// Resolves `credentialType: "hmac-sha1"` into coturn-style time-limited credentials
    /// (`username = "<expiry>:<user>"`, `credential = base64(HMAC-SHA1(secret, username))`).
    pub fn resolve(&self, now: SystemTime) -> Result<IceServer, String> {
        let urls = self.urls.to_vec();
        match self.credential_type.as_deref() {
            None | Some("password") | Some("oauth") => Ok(IceServer {
                urls,
                username: self.username.clone(),
                credential: self.credential.clone(),
            }),
            Some("hmac-sha1") => {
                use base64::Engine;
                use hmac::{Hmac, Mac};
                let secret = self
                    .credential
                    .as_deref()
                    .ok_or("hmac-sha1 needs a credential")?;
                let expiry = now
                    .checked_add(HMAC_CREDENTIAL_LIFETIME)
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let username = match &self.username {
                    Some(user) => format!("{expiry}:{user}"),
                    None => expiry.to_string(),
                };
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
                    .map_err(|e| e.to_string())?;
                mac.update(username.as_bytes());
                let credential =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                Ok(IceServer {
                    urls,
                    username: Some(username),
                    credential: Some(credential),
                })
            }
            Some(other) => Err(format!("unknown credentialType {other:?}")),
        }
    }
}

struct Cached<T> {
    stamp: Option<FileStamp>,
    value: Arc<T>,
}

/// A JSON file that is re-read whenever it changes on disk.
struct Watched<T> {
    path: PathBuf,
    cached: Mutex<Cached<T>>,
}

impl<T: for<'de> Deserialize<'de> + Default> Watched<T> {
    fn new(path: PathBuf) -> Self {
        Watched {
            path,
            cached: Mutex::new(Cached {
                stamp: None,
                value: Arc::new(T::default()),
            }),
        }
    }

    fn get(&self) -> Arc<T> {
        let stamp = FileStamp::of(&self.path).ok();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if stamp != cached.stamp {
            cached.stamp = stamp;
            cached.value = match stamp {
                None => Arc::new(T::default()),
                Some(_) => match read_json(&self.path) {
                    Ok(value) => {
                        tracing::info!("loaded {}", self.path.display());
                        Arc::new(value)
                    }
                    Err(error) => {
                        tracing::error!("{error}; keeping the previous settings");
                        cached.value.clone()
                    }
                },
            };
        }
        cached.value.clone()
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The data directory's configuration files.
pub struct Config {
    data_dir: PathBuf,
    server: Watched<ServerConfig>,
    ice: Watched<Vec<IceServerEntry>>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Arc<Config> {
        let data_dir = data_dir.into();
        Arc::new(Config {
            server: Watched::new(data_dir.join("config.json")),
            ice: Watched::new(data_dir.join("ice-servers.json")),
            data_dir,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn server(&self) -> Arc<ServerConfig> {
        self.server.get()
    }

    /// The ICE servers to hand to clients, with time-limited credentials derived now.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        let now = SystemTime::now();
        self.ice
            .get()
            .iter()
            .filter_map(|entry| match entry.resolve(now) {
                Ok(server) => Some(server),
                Err(error) => {
                    tracing::warn!("ice-servers.json: {error}");
                    None
                }
            })
            .collect()
    }

    /// Reads both files now so that a broken one is reported at start-up.
    pub fn check(&self) {
        let _ = self.server();
        let _ = self.ice_servers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_strict() {
        let ok: ServerConfig = serde_json::from_str(
            r#"{"users": {"root": {"password": "pw", "permissions": "admin"}},
                "allowOrigin": ["https://a"], "proxyURL": "https://p/", "canonicalHost": "h",
                "comment": "explains itself"}"#,
        )
        .unwrap();
        assert!(ok.is_admin("root", "pw"));
        assert!(!ok.is_admin("root", "nope"));
        assert!(!ok.is_admin("nobody", "pw"));
        assert!(serde_json::from_str::<ServerConfig>(r#"{"publicServer": true}"#).is_err());
    }

    #[test]
    fn non_admins_are_not_admins() {
        let c: ServerConfig =
            serde_json::from_str(r#"{"users": {"u": {"password": "pw", "permissions": "op"}}}"#)
                .unwrap();
        assert!(!c.is_admin("u", "pw"));
    }

    #[test]
    fn hmac_credentials_are_coturn_style() {
        let entry: IceServerEntry = serde_json::from_str(
            r#"{"urls": "turn:turn.example.org", "username": "galene",
                "credential": "secret", "credentialType": "hmac-sha1"}"#,
        )
        .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let server = entry.resolve(now).unwrap();
        assert_eq!(server.urls, ["turn:turn.example.org"]);
        assert_eq!(server.username.as_deref(), Some("1086400:galene"));
        // base64(HMAC-SHA1("secret", "1086400:galene")), computed with Python's hmac.
        assert_eq!(
            server.credential.as_deref(),
            Some("7tNcqWZEHFoGHbzFnyfM8x9768I=")
        );
    }

    #[test]
    fn files_are_reread_when_they_change() {
        let dir = std::env::temp_dir().join(format!("cinnabar-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config::new(&dir);
        assert!(config.ice_servers().is_empty());
        std::fs::write(dir.join("ice-servers.json"), r#"[{"urls": ["stun:a"]}]"#).unwrap();
        assert_eq!(config.ice_servers()[0].urls, ["stun:a"]);
        std::fs::write(
            dir.join("ice-servers.json"),
            r#"[{"urls": ["stun:bb"]}, {"urls": "stun:c"}]"#,
        )
        .unwrap();
        assert_eq!(config.ice_servers().len(), 2);
        std::fs::write(dir.join("ice-servers.json"), "[oops").unwrap();
        assert_eq!(
            config.ice_servers().len(),
            2,
            "a broken file keeps the last good one"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
