//! Password forms a group file may hold, and checking a candidate against them.
//!
//! The forms are Galène's (plain string, wildcard, pbkdf2, bcrypt) plus argon2id PHC
//! strings. Hashed forms are checked off the async runtime by the caller
//! ([`Password::is_expensive`] says when).

use std::fmt;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// A password as written in a group file or in `data/config.json`.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// A plain string, compared in constant time.
    Plain(String),
    /// `{"type":"wildcard"}`: any password matches.
    Wildcard,
    /// `{"type":"pbkdf2","hash":"sha-256","key":hex,"salt":hex,"iterations":n}`.
    Pbkdf2 {
        key: Vec<u8>,
        salt: Vec<u8>,
        iterations: u32,
    },
    /// `{"type":"bcrypt","key":"$2a$..."}`.
    Bcrypt(String),
    /// `{"type":"argon2","key":"$argon2id$..."}` (a PHC string).
    Argon2(String),
    /// An object without `type`: Galène accepts it and never matches it.
    Never,
}

impl fmt::Debug for Password {
    // Never print secrets into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = match self {
            Password::Plain(_) => "plain",
            Password::Wildcard => "wildcard",
            Password::Pbkdf2 { .. } => "pbkdf2",
            Password::Bcrypt(_) => "bcrypt",
            Password::Argon2(_) => "argon2",
            Password::Never => "never",
        };
        write!(f, "Password({form})")
    }
}

impl Password {
    /// Whether checking costs enough CPU that it must run on a blocking thread.
    pub fn is_expensive(&self) -> bool {
        matches!(
            self,
            Password::Pbkdf2 { .. } | Password::Bcrypt(_) | Password::Argon2(_)
        )
    }

    /// Whether `given` matches this password.
    pub fn matches(&self, given: &str) -> bool {
        match self {
            Password::Plain(expected) => expected.as_bytes().ct_eq(given.as_bytes()).into(),
            Password::Wildcard => true,
            Password::Never => false,
            Password::Pbkdf2 {
                key,
                salt,
                iterations,
            } => {
                let mut derived = vec![0u8; key.len()];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                    given.as_bytes(),
                    salt,
                    *iterations,
                    &mut derived,
                );
                derived.ct_eq(key).into()
            }
            Password::Bcrypt(hash) => bcrypt::verify(given, hash).unwrap_or(false),
            Password::Argon2(phc) => {
                use argon2::password_hash::{PasswordHash, PasswordVerifier};
                match PasswordHash::new(phc) {
                    Ok(parsed) => argon2::Argon2::default()
                        .verify_password(given.as_bytes(), &parsed)
                        .is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}

/// Which hashed form `cinnabar hash-password` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HashForm {
    Argon2,
    Bcrypt,
    Pbkdf2,
}

/// Hashes `password` into the JSON a group file takes as a user's `password`.
pub fn hash_to_json(password: &str, form: HashForm) -> Result<serde_json::Value, String> {
    use rand::RngCore;
    Ok(match form {
        HashForm::Argon2 => {
            use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
            let salt = SaltString::generate(&mut OsRng);
            let phc = argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| e.to_string())?;
            serde_json::json!({"type": "argon2", "key": phc.to_string()})
        }
        HashForm::Bcrypt => {
            let key = bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| e.to_string())?;
            serde_json::json!({"type": "bcrypt", "key": key})
        }
        HashForm::Pbkdf2 => {
            // Galène's own defaults: 16 bytes of salt, 4096 iterations, 32-byte key.
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let iterations = 4096;
            let mut key = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut key);
            serde_json::json!({
                "type": "pbkdf2", "hash": "sha-256",
                "key": hex::encode(key), "salt": hex::encode(salt), "iterations": iterations,
            })
        }
    })
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            #[serde(rename = "type")]
            kind: Option<String>,
            hash: Option<String>,
            key: Option<String>,
            salt: Option<String>,
            iterations: Option<u32>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Plain(String),
            Object(Object),
        }

        let object = match Wire::deserialize(d).map_err(|_| {
            D::Error::custom("a password must be a string or an object with a \"type\"")
        })? {
            Wire::Plain(s) => return Ok(Password::Plain(s)),
            Wire::Object(o) => o,
        };
        let key = |form: &str| {
            object
                .key
                .clone()
                .ok_or_else(|| D::Error::custom(format!("a {form} password needs a \"key\"")))
        };
        match object.kind.as_deref() {
            None => Ok(Password::Never),
            Some("wildcard") => Ok(Password::Wildcard),
            Some("pbkdf2") => {
                match object.hash.as_deref() {
                    Some("sha-256") => {}
                    other => {
                        return Err(D::Error::custom(format!(
                            "pbkdf2 hash {other:?} is not supported (use \"sha-256\")"
                        )));
                    }
                }
                let key = hex::decode(key("pbkdf2")?)
                    .map_err(|e| D::Error::custom(format!("pbkdf2 key is not hex: {e}")))?;
                let salt = hex::decode(object.salt.as_deref().unwrap_or(""))
                    .map_err(|e| D::Error::custom(format!("pbkdf2 salt is not hex: {e}")))?;
                let iterations = object
                    .iterations
                    .filter(|n| *n > 0)
                    .ok_or_else(|| D::Error::custom("pbkdf2 needs \"iterations\" > 0"))?;
                if key.is_empty() {
                    return Err(D::Error::custom("pbkdf2 key is empty"));
                }
                Ok(Password::Pbkdf2 {
                    key,
                    salt,
                    iterations,
                })
            }
            Some("bcrypt") => {
                let key = key("bcrypt")?;
                // Validate the hash now so a typo fails at load time, not at login.
                key.parse::<bcrypt::HashParts>()
                    .map_err(|e| D::Error::custom(format!("bad bcrypt key: {e}")))?;
                Ok(Password::Bcrypt(key))
            }
            Some("argon2") => {
                let key = key("argon2")?;
                let parsed = argon2::password_hash::PasswordHash::new(&key)
                    .map_err(|e| D::Error::custom(format!("bad argon2 PHC string: {e}")))?;
                if argon2::Algorithm::try_from(parsed.algorithm).is_err() || parsed.hash.is_none() {
                    return Err(D::Error::custom(
                        "bad argon2 PHC string: expected $argon2id$v=19$m=...,t=...,p=...$salt$hash",
                    ));
                }
                Ok(Password::Argon2(key))
            }
            Some(other) => Err(D::Error::custom(format!(
                "unknown password type {other:?} (expected wildcard, pbkdf2, bcrypt or argon2)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Password {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn plain_and_wildcard() {
        let p = parse(r#""secret""#);
        assert!(p.matches("secret"));
        assert!(!p.matches("Secret"));
        assert!(!p.matches("secre"));
        assert!(!p.matches(""));
        assert!(!p.is_expensive());
        let w = parse(r#"{"type":"wildcard"}"#);
        assert!(w.matches("anything") && w.matches(""));
        assert!(
            !parse(r#"{"key":"x"}"#).matches("x"),
            "no type never matches"
        );
    }

    #[test]
    fn pbkdf2_known_vectors() {
        // PBKDF2-HMAC-SHA256 vectors (RFC 7914 §11 style, P="password", S="salt").
        let cases = [
            (
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                2,
                "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
            ),
            (
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
        ];
        for (iterations, key) in cases {
            let json = format!(
                r#"{{"type":"pbkdf2","hash":"sha-256","key":"{key}","salt":"{}","iterations":{iterations}}}"#,
                hex::encode("salt")
            );
            let p = parse(&json);
            assert!(p.matches("password"), "iterations {iterations}");
            assert!(!p.matches("passwore"), "iterations {iterations}");
            assert!(p.is_expensive());
        }
    }

    #[test]
    fn bcrypt_known_vectors() {
        // From the OpenBSD / jBCrypt test vectors.
        let cases = [
            (
                "",
                "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            ),
            (
                "a",
                "$2a$06$m0CrhHm10qJ3lXRY.5zDGO3rS2KdeeWLuGmsfGlMfOxih58VYVfxe",
            ),
            (
                "abc",
                "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i",
            ),
        ];
        for (password, hash) in cases {
            let p = parse(&format!(r#"{{"type":"bcrypt","key":"{hash}"}}"#));
            assert!(p.matches(password), "{password:?}");
            assert!(!p.matches("wrong"), "{password:?}");
        }
    }

    #[test]
    fn argon2id_known_vector() {
        // The reference implementation's vector: argon2id, m=65536, t=2, p=1,
        // password "password", salt "somesalt".
        let phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let p = parse(&format!(r#"{{"type":"argon2","key":"{phc}"}}"#));
        assert!(p.matches("password"));
        assert!(!p.matches("Password"));
    }

    #[test]
    fn hashed_forms_round_trip() {
        for form in [HashForm::Argon2, HashForm::Bcrypt, HashForm::Pbkdf2] {
            let json = hash_to_json("correct horse", form).unwrap();
            let p: Password = serde_json::from_value(json).unwrap();
            assert!(p.matches("correct horse"), "{form:?}");
            assert!(!p.matches("battery staple"), "{form:?}");
        }
    }

    #[test]
    fn malformed_forms_are_rejected_at_load() {
        for bad in [
            r#"{"type":"bcrypt","key":"not a hash"}"#,
            r#"{"type":"argon2","key":"$argon2id$garbage"}"#,
            r#"{"type":"pbkdf2","hash":"sha-256","key":"zz","salt":"00","iterations":1}"#,
            r#"{"type":"pbkdf2","hash":"md5","key":"00","salt":"00","iterations":1}"#,
            r#"{"type":"pbkdf2","hash":"sha-256","key":"00","salt":"00"}"#,
            r#"{"type":"rot13","key":"x"}"#,
            r#"{"type":"wildcard","colour":"red"}"#,
            "42",
        ] {
            assert!(serde_json::from_str::<Password>(bad).is_err(), "{bad}");
        }
    }
}
