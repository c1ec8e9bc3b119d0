//! Identifiers, parsed once at the boundary (parse, don't validate).
//!
//! Every id is a newtype with a private field: the only ways to get one are the
//! generators (random, unguessable) or `parse`, which rejects anything that could
//! not have been produced by us or that would break the Redis key schema.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why an id or a free-text identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} contains a control character (U+{code:04X}); remove it")]
    ControlChar { what: &'static str, code: u32 },
    #[error("{what} is not a valid id: expected {expected}")]
    Malformed {
        what: &'static str,
        expected: &'static str,
    },
}

/// `n` random bytes from the operating system, hex-encoded (2n characters).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

/// A random number from the operating system.
pub fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    u32::from_le_bytes(buf)
}

fn check_text(what: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.trim().is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.chars().count() > max {
        return Err(IdError::TooLong { what, max });
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(IdError::ControlChar {
            what,
            code: c as u32,
        });
    }
    Ok(())
}

fn check_hex(what: &'static str, s: &str, len: usize) -> Result<(), IdError> {
    if s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(IdError::Malformed {
            what,
            expected: "lowercase hex produced by testamur",
        })
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_text($what, &s, $max)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $bytes:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(random_hex($bytes))
            }
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_hex($what, s, $bytes * 2)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_id!(
    /// An LMS course id, e.g. `course-v1:MITx+6.002x+2026`. Opaque to us.
    CourseId, "course_id", 255
);
text_id!(
    /// An LMS username. Opaque to us.
    Username, "username", 255
);
text_id!(
    /// A workserver's configured name (unique in a cluster: re-registering it
    /// replaces the previous registration).
    WsName, "workserver name", 128
);

hex_id!(
    /// A certificate id. Derived from (course_id, username), see [`CertId::for_pair`],
    /// so every CC computes the same id without a lookup.
    CertId, "cert_id", 16
);
hex_id!(
    /// One queued unit of work (add, regen or delete of one certificate).
    JobId, "job_id", 16
);
hex_id!(
    /// A registered workserver; a new one is issued at every registration.
    WsId, "ws_id", 16
);

impl CertId {
    /// The id of the certificate of `username` in `course_id`. Both are free of
    /// control characters, so the NUL separator cannot be forged.
    pub fn for_pair(course_id: &CourseId, username: &Username) -> Self {
        let mut h = Sha256::new();
        h.update(course_id.as_str().as_bytes());
        h.update([0u8]);
        h.update(username.as_str().as_bytes());
        Self(hex::encode(&h.finalize()[..16]))
    }
}

/// A lease on one job: `{job_id}.{secret}`. The secret part is unguessable; the
/// CC stores the whole lease id on the job and fences every completion, extension
/// or failure against it, so a workserver that lost its lease changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LeaseId(String);

impl LeaseId {
    pub fn generate(job: &JobId) -> Self {
        Self(format!("{}.{}", job, random_hex(16)))
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = IdError::Malformed {
            what: "lease_id",
            expected: "<job_id>.<secret> as issued by POST /v1/leases",
        };
        let (job, secret) = s.split_once('.').ok_or(bad.clone())?;
        JobId::parse(job).map_err(|_| bad.clone())?;
        check_hex("lease_id", secret, 32).map_err(|_| bad)?;
        Ok(Self(s.to_owned()))
    }
    /// The job this lease is for.
    pub fn job_id(&self) -> JobId {
        JobId(self.0[..32].to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LeaseId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A public uuid under which one version of a certificate's files is published
/// (`downloads/{uuid}/...` or `cert/{uuid}/...`). Lowercase hyphenated uuid v4.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PublicUuid(String);

impl PublicUuid {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match uuid::Uuid::try_parse(s) {
            Ok(u) if u.hyphenated().to_string() == s => Ok(Self(s.to_owned())),
            _ => Err(IdError::Malformed {
                what: "uuid",
                expected: "a lowercase hyphenated uuid",
            }),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PublicUuid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_id_is_stable_and_separates_fields() {
        let a = CertId::for_pair(
            &CourseId::parse("c1").unwrap(),
            &Username::parse("u").unwrap(),
        );
        let b = CertId::for_pair(
            &CourseId::parse("c1").unwrap(),
            &Username::parse("u").unwrap(),
        );
        let c = CertId::for_pair(
            &CourseId::parse("c").unwrap(),
            &Username::parse("1u").unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(CertId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn lease_ids_round_trip_and_reject_garbage() {
        let job = JobId::generate();
        let lease = LeaseId::generate(&job);
        assert_eq!(LeaseId::parse(lease.as_str()).unwrap().job_id(), job);
        assert!(LeaseId::parse("nope").is_err());
        assert!(LeaseId::parse(&format!("{job}.xyz")).is_err());
        assert!(LeaseId::parse(&format!("{job}.{}", "A".repeat(32))).is_err());
    }

    #[test]
    fn text_ids_reject_empty_and_control_chars() {
        assert!(CourseId::parse("").is_err());
        assert!(CourseId::parse("  ").is_err());
        assert!(Username::parse("a\u{0}b").is_err());
        assert!(Username::parse("x".repeat(256)).is_err());
        assert!(Username::parse("Ана").is_ok());
    }

    #[test]
    fn public_uuid_must_be_canonical() {
        let u = PublicUuid::generate();
        assert!(PublicUuid::parse(u.as_str()).is_ok());
        assert!(PublicUuid::parse(&u.as_str().to_uppercase()).is_err());
        assert!(PublicUuid::parse("../etc/passwd").is_err());
    }
}
