//! Typed identifiers: [`UserId`], [`SessionId`], [`RunId`].
//!
//! Every storage API in loomflow is keyed by a [`UserId`], never by a bare
//! string. The anonymous bucket is explicit ([`UserId::anonymous`]) and no id a
//! caller can construct collides with it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::IdError;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// The reserved key under which the anonymous bucket is stored.
///
/// Real ids may not start with `~`, so this can never collide with one.
const ANONYMOUS_KEY: &str = "~anonymous";

pub use loomflow_model::new_id;

/// `{prefix}_{ULID}` as shared text, made in one allocation (the id is
/// spelled out on the stack first, not in a `String` copied into the `Arc`).
fn generated(prefix: &'static str) -> Arc<str> {
    const ROOM: usize = 32;
    if prefix.len() > ROOM {
        return Arc::from(new_id(prefix));
    }
    let mut buf = [0u8; ROOM + 1 + ulid::ULID_LEN];
    let (head, rest) = buf.split_at_mut(prefix.len());
    head.copy_from_slice(prefix.as_bytes());
    rest[0] = b'_';
    let mut text = [0u8; ulid::ULID_LEN];
    let ulid = ulid::Ulid::new().array_to_str(&mut text);
    rest[1..=ulid::ULID_LEN].copy_from_slice(ulid.as_bytes());
    match std::str::from_utf8(&buf[..prefix.len() + 1 + ulid::ULID_LEN]) {
        Ok(id) => Arc::from(id),
        Err(_) => Arc::from(new_id(prefix)),
    }
}

fn validate(kind: &'static str, raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: raw.len(),
        });
    }
    if raw.starts_with('~') {
        return Err(IdError::Reserved {
            kind,
            value: raw.to_owned(),
        });
    }
    if let Some(bad) = raw.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(IdError::InvalidChar {
            kind,
            value: raw.escape_debug().to_string(),
            ch: bad,
        });
    }
    Ok(())
}

/// The tenant a run belongs to. Memory, journal, budget, permissions and the
/// audit log are all partitioned by it.
///
/// A `UserId` is either a validated, caller-supplied id or the explicit
/// anonymous bucket. Cloning is cheap (one reference count).
///
/// ```
/// use loomflow_core::UserId;
///
/// let alice = UserId::new("alice").unwrap();
/// assert_eq!(alice.as_str(), Some("alice"));
/// assert!(UserId::new("").is_err());
/// assert!(UserId::new("has space").is_err());
/// // No real id can name the anonymous bucket.
/// assert!(UserId::new("~anonymous").is_err());
/// assert!(UserId::anonymous().is_anonymous());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Option<Arc<str>>);

impl UserId {
    /// Validates `id`: non-empty, at most [`MAX_ID_LEN`] bytes, no whitespace or
    /// control characters, and not starting with the reserved `~`.
    pub fn new(id: impl AsRef<str>) -> Result<Self, IdError> {
        let id = id.as_ref();
        validate("user id", id)?;
        Ok(Self(Some(Arc::from(id))))
    }

    /// The anonymous bucket, used when a run names no user.
    pub const fn anonymous() -> Self {
        Self(None)
    }

    /// True for the anonymous bucket.
    pub fn is_anonymous(&self) -> bool {
        self.0.is_none()
    }

    /// The caller's id, or `None` for the anonymous bucket.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The key a storage backend partitions by. The anonymous bucket has a
    /// reserved key that no validated id can equal.
    pub fn storage_key(&self) -> &str {
        self.0.as_deref().unwrap_or(ANONYMOUS_KEY)
    }

    /// The inverse of [`storage_key`](Self::storage_key): the id a backend
    /// stored, the anonymous bucket included.
    ///
    /// ```
    /// use loomflow_core::UserId;
    ///
    /// let anon = UserId::anonymous();
    /// assert_eq!(UserId::from_storage_key(anon.storage_key()).unwrap(), anon);
    /// assert_eq!(UserId::from_storage_key("alice").unwrap().as_str(), Some("alice"));
    /// ```
    pub fn from_storage_key(key: &str) -> Result<Self, IdError> {
        match key == ANONYMOUS_KEY {
            true => Ok(Self::anonymous()),
            false => Self::new(key),
        }
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::anonymous()
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.storage_key())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.storage_key())
    }
}

impl TryFrom<&str> for UserId {
    type Error = IdError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(id) => s.serialize_str(id),
            None => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        match raw {
            None => Ok(Self::anonymous()),
            Some(s) => Self::new(s).map_err(serde::de::Error::custom),
        }
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            #[doc = concat!("A fresh id: `", $prefix, "_` followed by a ULID.")]
            pub fn generate() -> Self {
                Self(generated($prefix))
            }

            /// Validates a caller-supplied id (non-empty, at most
            /// [`MAX_ID_LEN`] bytes, no whitespace or control characters,
            /// not starting with `~`).
            pub fn new(id: impl AsRef<str>) -> Result<Self, IdError> {
                let id = id.as_ref();
                validate($kind, id)?;
                Ok(Self(Arc::from(id)))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A conversation. The same session id continues a conversation (and, with
    /// a durable journal, resumes a run). Sessions are scoped by [`UserId`]:
    /// two users with the same session id never share anything.
    SessionId,
    "sess",
    "session id"
);

string_id!(
    /// One call of `Agent::run` or `Workflow::run`.
    RunId,
    "run",
    "run id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_prefixed_ulids() {
        let s = SessionId::generate();
        assert!(s.as_str().starts_with("sess_"));
        assert_eq!(s.as_str().len(), 31);
        assert!(RunId::generate().as_str().starts_with("run_"));
        assert_ne!(SessionId::generate(), SessionId::generate());
    }

    #[test]
    fn malformed_ids_are_typed_errors() {
        assert_eq!(
            UserId::new("").unwrap_err().to_string(),
            "user id is empty: pass a non-empty id, or use UserId::anonymous() for the anonymous bucket"
        );
        let err = UserId::new("a\tb").unwrap_err();
        assert!(matches!(err, IdError::InvalidChar { ch: '\t', .. }));
        assert!(matches!(
            UserId::new("x".repeat(257)),
            Err(IdError::TooLong { len: 257, .. })
        ));
        assert!(matches!(
            SessionId::new("~x"),
            Err(IdError::Reserved { .. })
        ));
    }

    #[test]
    fn anonymous_never_collides() {
        let anon = UserId::anonymous();
        assert_eq!(anon.storage_key(), "~anonymous");
        assert!(UserId::new(anon.storage_key()).is_err());
        assert_ne!(UserId::new("anonymous").unwrap(), anon);
        let json = serde_json::to_string(&anon).unwrap();
        assert_eq!(json, "null");
        assert_eq!(serde_json::from_str::<UserId>("null").unwrap(), anon);
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }
}
