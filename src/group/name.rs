//! Validated identifiers: group names and client ids.

use std::fmt;
use std::sync::Arc;

/// A group name such as `demo` or `school/class-a`: non-empty, no leading or trailing `/`,
/// no empty, `.`, `..` or dot-prefixed segment, no backslash or control character.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(Arc<str>);

impl GroupName {
    pub fn new(name: &str) -> Option<GroupName> {
        let ok = !name.is_empty()
            && name.len() <= 256
            && !name.contains('\\')
            && !name.chars().any(char::is_control)
            && name
                .split('/')
                .all(|segment| !segment.is_empty() && !segment.starts_with('.'));
        ok.then(|| GroupName(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent group's name (`a` for `a/b`), if any.
    pub fn parent(&self) -> Option<GroupName> {
        self.0.rsplit_once('/').map(|(p, _)| GroupName(p.into()))
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// A client's id: an opaque string chosen by the client, unique among connected clients.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// Accepts 1 to 256 printable characters.
    pub fn new(id: &str) -> Option<ClientId> {
        let ok = !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control);
        ok.then(|| ClientId(id.into()))
    }

    /// A fresh random id, for clients whose protocol does not name them.
    pub fn random() -> ClientId {
        ClientId(random_id(12).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// `bytes` random bytes, base64url without padding.
pub fn random_id(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Whether a username is acceptable: at most 256 characters, no control characters.
pub fn valid_username(name: &str) -> bool {
    name.len() <= 256 && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        for good in ["demo", "a/b", "école", "a-b_c.d", "x/y/z"] {
            assert!(GroupName::new(good).is_some(), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", "./a", "a/.", ".hidden", "a\\b", "a\nb",
        ] {
            assert!(GroupName::new(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            GroupName::new("a/b/c").unwrap().parent().unwrap().as_str(),
            "a/b"
        );
        assert!(GroupName::new("a").unwrap().parent().is_none());
    }

    #[test]
    fn client_ids() {
        assert!(ClientId::new("abc").is_some());
        assert!(ClientId::new("").is_none());
        assert!(ClientId::new("a\u{0}b").is_none());
        assert!(ClientId::new(&"x".repeat(257)).is_none());
        assert_ne!(ClientId::random(), ClientId::random());
    }
}
