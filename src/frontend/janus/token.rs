//! janus.plugin.sfu's tokens: RS256 (or RS384, RS512) JWTs with the claims `join_hub`,
//! `kick_users` and `room_ids`, checked against the RSA public key named by `authKey` in
//! the `janus` section of `data/config.json` (PEM, or DER as the original's `auth_key`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::group::description::FileStamp;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// What a valid token allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub join_hub: bool,
    #[serde(default)]
    pub kick_users: bool,
    #[serde(default)]
    pub room_ids: Option<Vec<String>>,
}

impl Claims {
    /// `join_hub`, and `room` among `room_ids` when the token lists rooms.
    pub fn may_join(&self, room: &str) -> bool {
        self.join_hub
            && self
                .room_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|r| r == room))
    }

    /// Whether the token applies to `room` (to subscribe to a publisher there, or to kick
    /// someone there): any room unless the token lists rooms.
    pub fn covers(&self, room: &str) -> bool {
        self.room_ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|r| r == room))
    }
}

/// The public key tokens are checked with.
pub struct AuthKey(DecodingKey);

impl AuthKey {
    /// Reads an RSA public key: PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or PKCS#1 DER.
    pub fn load(path: &Path) -> Result<AuthKey, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = if bytes.starts_with(b"-----BEGIN") {
            DecodingKey::from_rsa_pem(&bytes)
        } else {
            Ok(DecodingKey::from_rsa_der(&bytes))
        };
        key.map(AuthKey)
            .map_err(|e| format!("{}: not an RSA public key: {e}", path.display()))
    }

    /// The claims of a token signed with this key's private half, if it is valid now.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
        // `exp` is checked when present, as the original does; it is not required.
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<Claims>(token, &self.0, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

/// A key as read from its file, and which version of the file.
type Loaded = (PathBuf, Option<FileStamp>, Arc<AuthKey>);

/// The configured key, read again when its file changes.
#[derive(Default)]
pub struct KeyCache {
    cached: Mutex<Option<Loaded>>,
}

impl KeyCache {
    /// The key in `path`; an error (logged by the caller) if it cannot be read.
    pub fn get(&self, path: &Path) -> Result<Arc<AuthKey>, String> {
        let stamp = FileStamp::of(path).ok();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((p, s, key)) = cached.as_ref()
            && p == path
            && s == &stamp
            && stamp.is_some()
        {
            return Ok(key.clone());
        }
        let key = Arc::new(AuthKey::load(path)?);
        *cached = Some((path.to_owned(), stamp, key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn sign(algorithm: Algorithm, claims: serde_json::Value) -> String {
        let pem = std::fs::read(fixture("janus-test-key.pem")).unwrap();
        let key = EncodingKey::from_rsa_pem(&pem).unwrap();
        jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).unwrap()
    }

    #[test]
    fn tokens_signed_with_the_key_are_accepted_in_pem_and_der() {
        let now = jsonwebtoken::get_current_timestamp();
        for file in ["janus-test-key.pub.pem", "janus-test-key.pub.der"] {
            let key = AuthKey::load(&fixture(file)).unwrap();
            for algorithm in [Algorithm::RS256, Algorithm::RS512] {
                let token = sign(
                    algorithm,
                    serde_json::json!({"join_hub": true, "kick_users": true, "room_ids": ["a"], "exp": now + 60}),
                );
                let claims = key.verify(&token).unwrap();
                assert!(claims.kick_users && claims.may_join("a") && !claims.may_join("b"));
            }
            let no_exp = sign(Algorithm::RS256, serde_json::json!({"join_hub": true}));
            assert!(key.verify(&no_exp).is_ok(), "exp is not required");
            let expired = sign(
                Algorithm::RS256,
                serde_json::json!({"join_hub": true, "exp": now - 60}),
            );
            assert!(key.verify(&expired).is_err());
            assert!(key.verify("not.a.token").is_err());
        }
        // Tokens whose header and payload parse, so that only the signature can tell.
        let key = AuthKey::load(&fixture("janus-test-key.pub.pem")).unwrap();
        let genuine = sign(Algorithm::RS256, serde_json::json!({"join_hub": false}));
        assert_eq!(key.verify(&genuine).map(|c| c.join_hub), Ok(false));
        let granting = sign(Algorithm::RS256, serde_json::json!({"join_hub": true}));
        let part = |token: &str, n: usize| token.split('.').nth(n).unwrap_or_default().to_owned();
        let forged = format!(
            "{}.{}.{}",
            part(&genuine, 0),
            part(&granting, 1),
            part(&genuine, 2)
        );
        let mut bad_signature = genuine.clone();
        let middle = genuine.len() - 100;
        let flipped = if &genuine[middle..=middle] == "A" {
            "B"
        } else {
            "A"
        };
        bad_signature.replace_range(middle..=middle, flipped);
        for tampered in [forged, bad_signature] {
            let error = key.verify(&tampered).unwrap_err();
            assert!(error.contains("InvalidSignature"), "{tampered}: {error}");
        }
        assert!(AuthKey::load(&fixture("janus-test-key.pem.missing")).is_err());
    }

    #[test]
    fn room_rules() {
        let open = Claims {
            join_hub: true,
            ..Default::default()
        };
        assert!(open.may_join("any"));
        let listed = Claims {
            join_hub: true,
            room_ids: Some(vec!["alpha".into()]),
            ..Default::default()
        };
        assert!(listed.may_join("alpha"));
        assert!(!listed.may_join("beta"));
        assert!(listed.covers("alpha") && !listed.covers("beta"));
        let no_hub = Claims::default();
        assert!(!no_hub.may_join("alpha"));
    }
}
