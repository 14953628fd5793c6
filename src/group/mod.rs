//! The group core: protocol-agnostic.
//!
//! A [`Registry`] holds the groups defined by the files in `groups/`. A frontend joins a
//! client to a group with [`Registry::join`] and gets a [`Membership`], through which it
//! chats and acts; everything the core has to tell the client arrives as typed
//! [`Event`]s in the client's queue. Each group's mutex guards plain data only: it is never
//! held across an `.await` and a client is only ever told things through its queue.

mod blocks;
pub mod chat;
pub mod client;
pub mod description;
pub mod name;
pub mod password;
pub mod permissions;
mod state;
pub mod streams;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::media::{
    DataPayload, EventSink, Layout, MediaError, MediaEvent, MediaKind, TrackSelection,
    VideoSelection, check_sdp, end_of_candidates,
};
pub use chat::{ChatMessage, ClearChat};
pub use client::Direction;
pub use client::{
    ClientHandle, ClientInfo, Data, Event, EventQueue, GroupStatus, Joined, JoinedKind, UserInfo,
    UserMessage,
};
pub use description::Description;
pub use name::{ClientId, GroupName};
pub use permissions::{Permission, Permissions};
pub use state::{ActionError, ChatRequest, Group, GroupAction, Membership, UserAction};
pub use streams::{Detached, GroupStats, Negotiated, ServerStats, StreamError, StreamInfo};

use crate::media::Media;
use description::{DescriptionError, FileStamp};

/// How long a failed login makes the client wait, to slow down guessing.
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(200);

/// Why a join failed. The texts are Galène's, which clients show as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("illegal group name")]
    IllegalGroupName,
    #[error("group does not exist")]
    NoSuchGroup,
    #[error("this group is misconfigured; the server's log says why")]
    BrokenGroup,
    #[error("redirected to {0}")]
    Redirect(String),
    #[error("not authorised")]
    NotAuthorised,
    #[error("illegal username")]
    IllegalUsername,
    #[error("{0}")]
    Refused(String),
    #[error("duplicate client id")]
    DuplicateClientId,
    #[error("already joined a group")]
    AlreadyJoined,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Which rooms the clients of password-less frontends may join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomPolicy {
    /// Any name: a room without a group file is created on the fly.
    Any,
    /// Only groups that exist and admit anyone without a password.
    Existing,
}

/// What a frontend asks for when it joins a client to a group.
pub struct JoinRequest {
    pub group: String,
    pub username: String,
    pub password: Option<String>,
    pub client: ClientHandle,
    /// Initial user data (Galène's `join` may carry `data`).
    pub data: Data,
}

/// The groups of one server.
pub struct Registry {
    groups_dir: PathBuf,
    media: Arc<Media>,
    groups: Mutex<HashMap<GroupName, Arc<Group>>>,
    /// Broken files already reported, so a broken group is logged once per version.
    reported_broken: Mutex<HashMap<PathBuf, FileStamp>>,
    shutting_down: AtomicBool,
    password_checks: tokio::sync::Semaphore,
    /// Who blocks whom, for the server's lifetime.
    blocks: Mutex<blocks::Blocks>,
}

/// Where a group's description comes from.
struct Source {
    path: PathBuf,
    /// Set when the group is an automatic subgroup of the group whose file this is.
    subgroup: bool,
}

impl Registry {
    pub fn new(groups_dir: impl Into<PathBuf>, media: Arc<Media>) -> Arc<Registry> {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Registry {
            groups_dir: groups_dir.into(),
            media,
            groups: Mutex::new(HashMap::new()),
            reported_broken: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            password_checks: tokio::sync::Semaphore::new(parallelism),
            blocks: Mutex::new(blocks::Blocks::default()),
        })
    }

    pub fn groups_dir(&self) -> &Path {
        &self.groups_dir
    }

    pub fn media(&self) -> &Arc<Media> {
        &self.media
    }

    /// Media statistics of every group with clients, and the server's live media
    /// resources, for `/stats.json`.
    pub fn stats(&self) -> ServerStats {
        let media = self.media.stats();
        let mut groups: Vec<Arc<Group>> = lock(&self.groups).values().cloned().collect();
        groups.sort_by(|a, b| a.name().cmp(b.name()));
        ServerStats {
            resources: self.media.counts(),
            groups: groups
                .iter()
                .filter(|g| g.client_count() > 0)
                .map(|g| g.stats(&media))
                .collect(),
        }
    }

    /// The group of that name, loading its file or re-reading it if it changed on disk.
    pub fn get(&self, name: &str) -> Result<Arc<Group>, JoinError> {
        let name = GroupName::new(name).ok_or(JoinError::IllegalGroupName)?;
        let existing = lock(&self.groups).get(&name).cloned();
        let source = self.source_of(&name);
        match existing {
            Some(group) => {
                let loaded = source.map(|s| self.load(&s));
                group.refresh(loaded);
                if group.is_available() {
                    Ok(group)
                } else if group.is_broken() {
                    Err(JoinError::BrokenGroup)
                } else {
                    Err(JoinError::NoSuchGroup)
                }
            }
            None => {
                let source = source.ok_or(JoinError::NoSuchGroup)?;
                let (description, stamp) =
                    self.load(&source).map_err(|_| JoinError::BrokenGroup)?;
                let group = Group::new(name.clone(), description, stamp);
                // Another task may have loaded it meanwhile; keep the first.
                let group = lock(&self.groups).entry(name).or_insert(group).clone();
                Ok(group)
            }
        }
    }

    /// The file a group's description comes from: its own, or with `auto-subgroups` the
    /// nearest ancestor's.
    fn source_of(&self, name: &GroupName) -> Option<Source> {
        let own = self.file_of(name);
        if own.is_file() {
            return Some(Source {
                path: own,
                subgroup: false,
            });
        }
        let mut parent = name.parent();
        while let Some(p) = parent {
            let path = self.file_of(&p);
            if path.is_file() {
                let allows = Description::load(&path).is_ok_and(|(d, _)| d.auto_subgroups);
                return allows.then_some(Source {
                    path,
                    subgroup: true,
                });
            }
            parent = p.parent();
        }
        None
    }

    fn file_of(&self, name: &GroupName) -> PathBuf {
        // GroupName forbids `..` and dot segments, so this stays inside groups_dir.
        self.groups_dir.join(format!("{name}.json"))
    }

    fn load(&self, source: &Source) -> Result<(Description, FileStamp), DescriptionError> {
        match Description::load(&source.path) {
            Ok((mut description, stamp)) => {
                lock(&self.reported_broken).remove(&source.path);
                if source.subgroup {
                    // Subgroups are private and say nothing of themselves.
                    description.public = false;
                    description.display_name = None;
                    description.description = None;
                }
                Ok((description, stamp))
            }
            Err(error) => {
                let stamp = FileStamp::of(&source.path).ok();
                let mut reported = lock(&self.reported_broken);
                if stamp.is_some() && reported.get(&source.path) != stamp.as_ref() {
                    tracing::error!("group file failed to load: {error}");
                    if let Some(stamp) = stamp {
                        reported.insert(source.path.clone(), stamp);
                    }
                }
                Err(error)
            }
        }
    }

    /// Checks credentials and adds the client to the group.
    pub async fn join(self: &Arc<Self>, request: JoinRequest) -> Result<Membership, JoinError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(JoinError::ShuttingDown);
        }
        if !name::valid_username(&request.username) {
            return Err(JoinError::IllegalUsername);
        }
        let group = self.get(&request.group)?;
        let description = group.description();
        if let Some(url) = &description.redirect {
            return Err(JoinError::Redirect(url.clone()));
        }
        let permissions = self
            .authenticate(&description, &request.username, request.password.as_deref())
            .await;
        let Some(permissions) = permissions else {
            tracing::warn!(
                group = %group.name(),
                username = %request.username,
                address = ?request.client.info().address,
                "failed login"
            );
            tokio::time::sleep(FAILED_LOGIN_DELAY).await;
            return Err(JoinError::NotAuthorised);
        };
        let handle = request.client.clone();
        group.add_member(request.client, request.username, permissions, request.data)?;
        Ok(Membership::new(self.clone(), group, handle, &description))
    }

    /// Joins a client of a frontend without passwords (GStreamer, calling-signaling) to
    /// a room: an existing group that admits the user with an empty password, or, when
    /// `policy` allows it, a room created on the fly.
    pub async fn join_room(
        self: &Arc<Self>,
        request: JoinRequest,
        policy: RoomPolicy,
    ) -> Result<Membership, JoinError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(JoinError::ShuttingDown);
        }
        if !name::valid_username(&request.username) {
            return Err(JoinError::IllegalUsername);
        }
        let group = match self.get(&request.group) {
            Ok(group) => group,
            Err(JoinError::NoSuchGroup) if policy == RoomPolicy::Any => {
                let name = GroupName::new(&request.group).ok_or(JoinError::IllegalGroupName)?;
                let room = Group::new_room(name.clone());
                lock(&self.groups).entry(name).or_insert(room).clone()
            }
            Err(error) => return Err(error),
        };
        let description = group.description();
        if let Some(url) = &description.redirect {
            return Err(JoinError::Redirect(url.clone()));
        }
        let Some(permissions) = self
            .authenticate(&description, &request.username, None)
            .await
        else {
            return Err(JoinError::NotAuthorised);
        };
        let handle = request.client.clone();
        group.add_member(request.client, request.username, permissions, request.data)?;
        Ok(Membership::new(self.clone(), group, handle, &description))
    }

    async fn authenticate(
        &self,
        description: &Description,
        username: &str,
        password: Option<&str>,
    ) -> Option<Permissions> {
        let entry = description.credential_for(username)?;
        let permissions = description.permissions_of(entry);
        let stored = entry.password.clone()?;
        let given = password.unwrap_or("").to_owned();
        let matched = if stored.is_expensive() {
            // Hashing is CPU-bound: keep it off the async runtime and bounded.
            let _permit = self.password_checks.acquire().await.ok()?;
            tokio::task::spawn_blocking(move || stored.matches(&given))
                .await
                .unwrap_or(false)
        } else {
            stored.matches(&given)
        };
        matched.then_some(permissions)
    }

    /// Public groups, sorted by name, for the landing page.
    pub fn public_groups(&self) -> Vec<GroupStatus> {
        let mut names = Vec::new();
        collect_group_files(&self.groups_dir, "", &mut names);
        let mut statuses: Vec<GroupStatus> = names
            .iter()
            .filter_map(|name| self.get(name).ok())
            .filter(|g| g.description().public)
            .map(|g| g.status())
            .collect();
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        statuses
    }

    /// Loaded groups under `parent/` with their client counts.
    pub fn subgroups(&self, parent: &GroupName) -> Vec<(GroupName, usize)> {
        let prefix = format!("{parent}/");
        let mut names = Vec::new();
        collect_group_files(&self.groups_dir, "", &mut names);
        let mut found: Vec<(GroupName, usize)> = names
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .filter_map(|n| self.get(n).ok())
            .map(|g| (g.name().clone(), g.client_count()))
            .collect();
        for group in lock(&self.groups).values() {
            if group.name().as_str().starts_with(&prefix)
                && !found.iter().any(|(n, _)| n == group.name())
            {
                found.push((group.name().clone(), group.client_count()));
            }
        }
        found.sort();
        found
    }

    /// Drops groups that are empty and either gone from disk or idle past their history age.
    pub fn sweep(&self, now: Instant) {
        lock(&self.groups).retain(|_, group| !group.is_expired(now));
    }

    /// Locks every group and kicks every client. Joins fail from now on.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let groups: Vec<_> = lock(&self.groups).values().cloned().collect();
        for group in groups {
            group.shut_down("the server is shutting down");
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Whether `a` or `b` blocks the other.
    pub fn is_blocked(&self, a: &ClientId, b: &ClientId) -> bool {
        lock(&self.blocks).between(a, b)
    }

    /// Kicks `dest` out of the group `group` on the authority of a credential the frontend
    /// checked itself (a Janus token with `kick_users`), whether or not the caller is in
    /// the group. Only groups in memory are looked at: one that is not has nobody in it.
    pub fn kick_with_credential(
        &self,
        group: &GroupName,
        dest: &ClientId,
        reason: &str,
    ) -> Result<(), state::ActionError> {
        let group = lock(&self.groups)
            .get(group)
            .cloned()
            .ok_or(state::ActionError::NoSuchUser)?;
        group.kick_with_credential(dest, reason)
    }

    /// Clients currently in any group.
    pub fn client_count(&self) -> usize {
        lock(&self.groups).values().map(|g| g.client_count()).sum()
    }
}

/// Group names of the `.json` files under `dir`, dot-files ignored.
fn collect_group_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_group_files(&path, &format!("{prefix}{file_name}/"), out);
        } else if let Some(stem) = file_name.strip_suffix(".json") {
            out.push(format!("{prefix}{stem}"));
        }
    }
}

/// Locks a mutex, recovering the data if a thread panicked while holding it: the core's
/// state stays usable for every other client.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
