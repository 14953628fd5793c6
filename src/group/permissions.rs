//! Named permission sets and what each permission allows.
//!
//! A group file gives a user either a named set (`"op"`, `"present"`, ...) that expands
//! as Galène expands it, or a raw list of permission names used as they are.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One permission a client may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    Op,
    Present,
    Message,
    Caption,
    Token,
    Record,
    Admin,
}

impl Permission {
    /// Every permission, in the order they are listed on the wire.
    pub const ALL: [Permission; 7] = [
        Permission::Op,
        Permission::Present,
        Permission::Message,
        Permission::Caption,
        Permission::Token,
        Permission::Record,
        Permission::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Op => "op",
            Permission::Present => "present",
            Permission::Message => "message",
            Permission::Caption => "caption",
            Permission::Token => "token",
            Permission::Record => "record",
            Permission::Admin => "admin",
        }
    }

    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of permissions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    pub fn of(list: &[Permission]) -> Permissions {
        list.iter().fold(Permissions::NONE, |acc, p| acc.with(*p))
    }

    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    #[must_use]
    pub fn with(self, p: Permission) -> Permissions {
        Permissions(self.0 | p.bit())
    }

    #[must_use]
    pub fn without(self, p: Permission) -> Permissions {
        Permissions(self.0 & !p.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.has(*p))
    }

    /// The names of the permissions held, as sent in `joined` and `user` messages.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::name).collect()
    }
}

impl std::fmt::Debug for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// What a group file says about a user's permissions: a named set or a raw list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PermissionSpec {
    /// No `permissions` key: the user gets none.
    #[default]
    Nothing,
    Named(NamedSet),
    Raw(Permissions),
}

/// The named sets a group file may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedSet {
    Op,
    Present,
    Message,
    Observe,
    Caption,
    Admin,
}

/// Group-wide settings that widen the named sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expansion {
    /// `allow-recording`: operators also get `record`.
    pub allow_recording: bool,
    /// `unrestricted-tokens`: presenters also get `token`.
    pub unrestricted_tokens: bool,
}

impl PermissionSpec {
    /// The permissions this spec grants in a group with the given settings.
    pub fn expand(&self, expansion: Expansion) -> Permissions {
        use Permission::*;
        match self {
            PermissionSpec::Nothing => Permissions::NONE,
            PermissionSpec::Raw(p) => *p,
            PermissionSpec::Named(set) => {
                let mut p = match set {
                    NamedSet::Op => Permissions::of(&[Op, Present, Message, Caption, Token]),
                    NamedSet::Present => Permissions::of(&[Present, Message]),
                    NamedSet::Message => Permissions::of(&[Message]),
                    NamedSet::Observe => Permissions::NONE,
                    NamedSet::Caption => Permissions::of(&[Caption]),
                    NamedSet::Admin => Permissions::of(&[Admin]),
                };
                if *set == NamedSet::Op && expansion.allow_recording {
                    p = p.with(Record);
                }
                if *set == NamedSet::Present && expansion.unrestricted_tokens {
                    p = p.with(Token);
                }
                p
            }
        }
    }
}

impl NamedSet {
    fn from_name(name: &str) -> Option<NamedSet> {
        Some(match name {
            "op" => NamedSet::Op,
            "present" => NamedSet::Present,
            "message" => NamedSet::Message,
            "observe" => NamedSet::Observe,
            "caption" => NamedSet::Caption,
            "admin" => NamedSet::Admin,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for PermissionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Named(String),
            Raw(Vec<String>),
        }
        match Wire::deserialize(d)? {
            Wire::Named(name) => NamedSet::from_name(&name)
                .map(PermissionSpec::Named)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown permission set {name:?} (expected op, present, message, observe, caption or admin)"
                    ))
                }),
            Wire::Raw(names) => {
                let mut p = Permissions::NONE;
                for name in names {
                    let one = Permission::from_name(&name).ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown permission {name:?}"))
                    })?;
                    p = p.with(one);
                }
                Ok(PermissionSpec::Raw(p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Permission::*;
    use super::*;

    fn spec(json: &str) -> PermissionSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn named_sets_expand_as_galene() {
        let plain = Expansion::default();
        let cases: &[(&str, &[Permission])] = &[
            (r#""op""#, &[Op, Present, Message, Caption, Token]),
            (r#""present""#, &[Present, Message]),
            (r#""message""#, &[Message]),
            (r#""observe""#, &[]),
            (r#""caption""#, &[Caption]),
            (r#""admin""#, &[Admin]),
        ];
        for (json, want) in cases {
            assert_eq!(spec(json).expand(plain), Permissions::of(want), "{json}");
        }
    }

    #[test]
    fn group_settings_widen_sets() {
        let recording = Expansion {
            allow_recording: true,
            unrestricted_tokens: false,
        };
        assert!(spec(r#""op""#).expand(recording).has(Record));
        assert!(!spec(r#""present""#).expand(recording).has(Record));
        let tokens = Expansion {
            allow_recording: false,
            unrestricted_tokens: true,
        };
        assert!(spec(r#""present""#).expand(tokens).has(Token));
        assert!(!spec(r#""message""#).expand(tokens).has(Token));
    }

    #[test]
    fn raw_lists_are_used_verbatim() {
        let p = spec(r#"["present", "record"]"#).expand(Expansion::default());
        assert_eq!(p, Permissions::of(&[Present, Record]));
        assert!(!p.has(Message), "a raw list does not expand");
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(serde_json::from_str::<PermissionSpec>(r#""god""#).is_err());
        assert!(serde_json::from_str::<PermissionSpec>(r#"["op","fly"]"#).is_err());
        assert!(serde_json::from_str::<PermissionSpec>("3").is_err());
    }

    #[test]
    fn wire_names_are_ordered() {
        let p = Permissions::of(&[Message, Op, Present]);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"["op","present","message"]"#
        );
    }
}
