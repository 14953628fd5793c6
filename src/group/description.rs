//! Group files (`groups/<name>.json`): strict parsing and the rules they define.
//!
//! The format is Galène's. An unknown key or a type error makes the file fail to load;
//! the error names the file and the fault. Legacy keys that Galène still accepts
//! (`op`, `presenter`, `other`, `allow-subgroups`, `allow-anonymous`) are accepted too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::password::Password;
use super::permissions::{Expansion, NamedSet, PermissionSpec, Permissions};

/// Codecs a group may allow, by Galène's names.
pub const KNOWN_CODECS: [&str; 8] = ["vp8", "vp9", "av1", "h264", "opus", "g722", "pcmu", "pcma"];
/// Codecs a group allows when its file says nothing.
pub const DEFAULT_CODECS: [&str; 2] = ["vp8", "opus"];
/// Chat history kept when `max-history-age` is absent (4 hours, as Galène).
pub const DEFAULT_HISTORY_AGE_SECS: u64 = 4 * 3600;

/// A user entry: password and permissions.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    #[serde(default)]
    pub password: Option<Password>,
    #[serde(default)]
    pub permissions: PermissionSpec,
}

/// A legacy `op`/`presenter`/`other` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyUser {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Password>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DescriptionFile {
    #[serde(default)]
    users: BTreeMap<String, UserEntry>,
    #[serde(default)]
    wildcard_user: Option<UserEntry>,
    #[serde(default)]
    public: bool,
    #[serde(default, rename = "displayName")]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    redirect: Option<String>,
    #[serde(default)]
    max_clients: Option<usize>,
    #[serde(default)]
    max_history_age: Option<u64>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    allow_recording: bool,
    #[serde(default)]
    unrestricted_tokens: bool,
    #[serde(default)]
    auto_subgroups: bool,
    #[serde(default)]
    autolock: bool,
    #[serde(default)]
    autokick: bool,
    #[serde(default)]
    codecs: Option<Vec<String>>,
    // Legacy forms, converted as Galène converts them.
    #[serde(default)]
    op: Option<Vec<LegacyUser>>,
    #[serde(default)]
    presenter: Option<Vec<LegacyUser>>,
    #[serde(default)]
    other: Option<Vec<LegacyUser>>,
    #[serde(default)]
    allow_subgroups: Option<bool>,
    #[serde(default)]
    allow_anonymous: Option<bool>,
}

/// A parsed group file.
#[derive(Clone, Debug, Default)]
pub struct Description {
    pub users: BTreeMap<String, UserEntry>,
    pub wildcard_user: Option<UserEntry>,
    pub public: bool,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub contact: Option<String>,
    pub redirect: Option<String>,
    pub max_clients: Option<usize>,
    pub max_history_age_secs: u64,
    pub not_before: Option<OffsetDateTime>,
    pub expires: Option<OffsetDateTime>,
    pub allow_recording: bool,
    pub unrestricted_tokens: bool,
    pub auto_subgroups: bool,
    pub autolock: bool,
    pub autokick: bool,
    pub codecs: Vec<String>,
}

/// Why a group file did not load.
#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Identifies one version of a file on disk, to notice when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    /// The stamp of something that has no file (a room).
    pub fn none() -> FileStamp {
        FileStamp {
            modified: None,
            len: 0,
        }
    }

    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

impl Description {
    /// Reads and parses a group file.
    pub fn load(path: &Path) -> Result<(Description, FileStamp), DescriptionError> {
        let stamp = FileStamp::of(path).map_err(|source| io_error(path, source))?;
        let text = std::fs::read_to_string(path).map_err(|source| io_error(path, source))?;
        let description =
            Description::parse(&text).map_err(|message| DescriptionError::Invalid {
                path: path.to_owned(),
                message,
            })?;
        Ok((description, stamp))
    }

    /// Parses the text of a group file.
    pub fn parse(text: &str) -> Result<Description, String> {
        let file: DescriptionFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let parse_time = |field: &str, value: Option<String>| {
            value
                .map(|s| {
                    OffsetDateTime::parse(&s, &Rfc3339)
                        .map_err(|e| format!("{field}: {s:?} is not an RFC 3339 time: {e}"))
                })
                .transpose()
        };
        let codecs = match file.codecs {
            None => DEFAULT_CODECS.iter().map(|c| c.to_string()).collect(),
            Some(list) => {
                let mut codecs = Vec::new();
                for codec in list {
                    let lower = codec.to_ascii_lowercase();
                    if !KNOWN_CODECS.contains(&lower.as_str()) {
                        return Err(format!(
                            "codecs: unknown codec {codec:?} (known: {})",
                            KNOWN_CODECS.join(", ")
                        ));
                    }
                    if !codecs.contains(&lower) {
                        codecs.push(lower);
                    }
                }
                codecs
            }
        };
        if let Some(url) = &file.redirect
            && url.is_empty()
        {
            return Err("redirect: empty URL".into());
        }
        if let Some(age) = file.max_history_age
            && age == 0
        {
            return Err("max-history-age: must be a positive number of seconds".into());
        }

        let mut description = Description {
            users: file.users,
            wildcard_user: file.wildcard_user,
            public: file.public,
            display_name: file.display_name,
            description: file.description,
            contact: file.contact,
            redirect: file.redirect,
            max_clients: file.max_clients,
            max_history_age_secs: file.max_history_age.unwrap_or(DEFAULT_HISTORY_AGE_SECS),
            not_before: parse_time("not-before", file.not_before)?,
            expires: parse_time("expires", file.expires)?,
            allow_recording: file.allow_recording,
            unrestricted_tokens: file.unrestricted_tokens,
            auto_subgroups: file.auto_subgroups || file.allow_subgroups.unwrap_or(false),
            autolock: file.autolock,
            autokick: file.autokick,
            codecs,
        };
        let _ = (file.comment, file.allow_anonymous);
        for (list, set) in [
            (file.op, NamedSet::Op),
            (file.presenter, NamedSet::Present),
            (file.other, NamedSet::Message),
        ] {
            for legacy in list.into_iter().flatten() {
                let entry = UserEntry {
                    password: legacy.password,
                    permissions: PermissionSpec::Named(set),
                };
                match legacy.username {
                    Some(name) => {
                        description.users.entry(name).or_insert(entry);
                    }
                    None => {
                        description.wildcard_user.get_or_insert(entry);
                    }
                }
            }
        }
        Ok(description)
    }

    pub fn expansion(&self) -> Expansion {
        Expansion {
            allow_recording: self.allow_recording,
            unrestricted_tokens: self.unrestricted_tokens,
        }
    }

    /// The entry whose password a login as `username` is checked against: the named
    /// user if it exists (the wildcard user is then not tried), else the wildcard user.
    pub fn credential_for(&self, username: &str) -> Option<&UserEntry> {
        match self.users.get(username) {
            Some(entry) => Some(entry),
            None => self.wildcard_user.as_ref(),
        }
    }

    /// Whether a username is one of the named users (not the wildcard).
    pub fn has_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The permissions an entry grants in this group.
    pub fn permissions_of(&self, entry: &UserEntry) -> Permissions {
        entry.permissions.expand(self.expansion())
    }

    /// Why a non-operator may not join at `now`, if the join window forbids it.
    pub fn window_error(&self, now: OffsetDateTime) -> Option<&'static str> {
        if self.not_before.is_some_and(|t| now < t) {
            return Some("this group is not open yet");
        }
        if self.expires.is_some_and(|t| now >= t) {
            return Some("this group is closed");
        }
        None
    }
}

fn io_error(path: &Path, source: std::io::Error) -> DescriptionError {
    if source.kind() == std::io::ErrorKind::NotFound {
        DescriptionError::Missing {
            path: path.to_owned(),
        }
    } else {
        DescriptionError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::permissions::Permission;

    #[test]
    fn full_file_parses() {
        let d = Description::parse(
            r#"{
            "users": {"alice": {"password": "a", "permissions": "op"},
                      "bob": {"password": {"type": "wildcard"}, "permissions": ["present"]}},
            "wildcard-user": {"password": {"type": "wildcard"}, "permissions": "observe"},
            "public": true, "displayName": "Demo", "description": "d", "contact": "c",
            "comment": "x", "max-clients": 10, "max-history-age": 60,
            "not-before": "2020-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00+01:00",
            "allow-recording": true, "unrestricted-tokens": false, "auto-subgroups": true,
            "autolock": true, "autokick": false, "codecs": ["VP8", "opus", "vp8"]
        }"#,
        )
        .unwrap();
        assert!(d.public);
        assert_eq!(d.max_clients, Some(10));
        assert_eq!(d.max_history_age_secs, 60);
        assert_eq!(d.codecs, ["vp8", "opus"]);
        let alice = d.credential_for("alice").unwrap();
        assert!(d.permissions_of(alice).has(Permission::Record));
        let stranger = d.credential_for("carol").unwrap();
        assert_eq!(d.permissions_of(stranger), Permissions::NONE);
        let now = OffsetDateTime::now_utc();
        assert_eq!(d.window_error(now), None);
    }

    #[test]
    fn strictness() {
        for (bad, mentions) in [
            (r#"{"pubic": true}"#, "pubic"),
            (r#"{"public": "yes"}"#, "invalid type"),
            (r#"{"max-clients": -1}"#, "invalid value"),
            (r#"{"codecs": ["mp3"]}"#, "mp3"),
            (r#"{"expires": "tomorrow"}"#, "expires"),
            (
                r#"{"users": {"a": {"password": "x", "perms": "op"}}}"#,
                "perms",
            ),
            (r#"{"users": {"a": {"permissions": "emperor"}}}"#, "emperor"),
            (r#"{"public": true"#, "EOF"),
        ] {
            let err = Description::parse(bad).unwrap_err();
            assert!(err.contains(mentions), "{bad}: {err}");
        }
    }

    #[test]
    fn legacy_lists_become_users() {
        let d = Description::parse(
            r#"{"op": [{"username": "root", "password": "r"}], "presenter": [{}],
                "allow-anonymous": true, "allow-subgroups": true}"#,
        )
        .unwrap();
        assert!(d.permissions_of(&d.users["root"]).has(Permission::Op));
        let wildcard = d.wildcard_user.as_ref().unwrap();
        assert!(d.permissions_of(wildcard).has(Permission::Present));
        assert!(d.auto_subgroups);
    }

    #[test]
    fn named_user_does_not_fall_back_to_wildcard() {
        let d = Description::parse(
            r#"{"users": {"alice": {"password": "a"}},
                "wildcard-user": {"password": {"type": "wildcard"}}}"#,
        )
        .unwrap();
        let entry = d.credential_for("alice").unwrap();
        assert!(!entry.password.as_ref().unwrap().matches("anything"));
    }

    #[test]
    fn join_window() {
        let d = Description::parse(
            r#"{"not-before": "2030-01-01T00:00:00Z", "expires": "2031-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let at = |s: &str| OffsetDateTime::parse(s, &Rfc3339).unwrap();
        assert_eq!(
            d.window_error(at("2029-12-31T23:59:59Z")),
            Some("this group is not open yet")
        );
        assert_eq!(d.window_error(at("2030-06-01T00:00:00Z")), None);
        assert_eq!(
            d.window_error(at("2031-01-01T00:00:00Z")),
            Some("this group is closed")
        );
    }
}
