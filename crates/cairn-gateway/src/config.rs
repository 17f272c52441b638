//! The gateway's settings and its API keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_node::coordinator::JobSettings;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::GatewayError;

/// The shortest API key accepted (in a key file or a list).
pub const MIN_KEY_LEN: usize = 8;
/// Default cap on concurrent sessions per key.
pub const DEFAULT_MAX_SESSIONS: u32 = 4;
/// Default cap on one upload (program, input or receipt), in bytes.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 256 << 20;

/// Everything `cairn gateway` needs besides the coordinator service.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where the REST API listens.
    pub listen: SocketAddr,
    /// Uploaded programs, inputs and receipts, and the session database.
    pub data_dir: PathBuf,
    /// The address clients reach the gateway at, for the absolute URLs it hands out (upload and receipt
    /// URLs). Default: `http://` + the request's `Host` header.
    pub public_url: Option<String>,
    pub keys: ApiKeys,
    /// How every session's job is proved (po2, redundancy, attempts, timeout, aggregation).
    pub job: JobSettings,
}

/// One API key and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Who holds it (logs, metrics, the dashboard); never the key itself.
    pub name: String,
    digest: [u8; 32],
    pub max_sessions: u32,
    pub max_upload_bytes: u64,
}

impl ApiKey {
    pub fn new(name: &str, key: &str) -> Self {
        Self {
            name: name.to_string(),
            digest: Sha256::digest(key.as_bytes()).into(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// The keys allowed to use the gateway.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<ApiKey>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default, rename = "key")]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    key: String,
    max_sessions: Option<u32>,
    max_upload_mb: Option<u64>,
}

impl ApiKeys {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self(keys)
    }

    /// The key a client presented (compared by SHA-256 digest, so the comparison's timing says nothing
    /// about the stored keys).
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.iter().find(|k| k.digest == d)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Parses `name:key,name:key` (the `CAIRN_GATEWAY_KEYS` environment variable). A key without a name
    /// (`key`) is named `key1`, `key2`, ..., skipping names the list gives explicitly. Keys are at least
    /// [`MIN_KEY_LEN`] characters, as in a key file; names and keys are unique.
    pub fn parse_list(s: &str) -> Result<Self, GatewayError> {
        let items: Vec<(Option<String>, &str)> = s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|item| match item.split_once(':') {
                Some((n, k)) => (Some(n.trim().to_string()), k.trim()),
                None => (None, item),
            })
            .collect();
        let mut auto = (1..).map(|i| format!("key{i}")).filter(|n| {
            !items
                .iter()
                .any(|(explicit, _)| explicit.as_deref() == Some(n.as_str()))
        });
        let mut keys = Vec::new();
        for (i, (name, key)) in items.iter().enumerate() {
            let name = match name {
                Some(n) => n.clone(),
                None => auto.next().expect("names without end"),
            };
            if key.is_empty() || name.is_empty() {
                return Err(GatewayError::Config(format!(
                    "API key list item {} is empty: write name:key,name:key",
                    i + 1
                )));
            }
            if key.chars().count() < MIN_KEY_LEN {
                return Err(GatewayError::Config(format!(
                    "the key of {name} (API key list item {}) is shorter than {MIN_KEY_LEN} characters: use a long \
                     random string (openssl rand -hex 16)",
                    i + 1
                )));
            }
            keys.push(ApiKey::new(&name, key));
        }
        let keys = Self(keys);
        keys.check_unique("the API key list")?;
        Ok(keys)
    }

    /// Refuses two keys with one name (sessions belong to a key's name, so they would share sessions and
    /// limits) or one key given twice (the second's name and limits would never apply).
    pub fn check_unique(&self, source: &str) -> Result<(), GatewayError> {
        for (i, a) in self.0.iter().enumerate() {
            for b in &self.0[..i] {
                if a.name == b.name {
                    return Err(GatewayError::Config(format!(
                        "two API keys in {source} are named {}: give each key its own name",
                        a.name
                    )));
                }
                if a.digest == b.digest {
                    return Err(GatewayError::Config(format!(
                        "keys {} and {} in {source} are the same key: give each holder its own",
                        b.name, a.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads a TOML key file:
    ///
    /// ```toml
    /// [[key]]
    /// name = "alice"
    /// key = "a long random string"
    /// max_sessions = 4      # optional: concurrent sessions (default 4)
    /// max_upload_mb = 256   # optional: largest program, input or receipt upload (default 256 MB)
    /// ```
    pub fn from_file(path: &Path) -> Result<Self, GatewayError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            GatewayError::Config(format!("cannot read the key file {}: {e}", path.display()))
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses a key file's text (see [`ApiKeys::from_file`]); `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, GatewayError> {
        let file: KeysFile = toml::from_str(text).map_err(|e| {
            GatewayError::Config(format!("the key file {} is not valid: {e}", path.display()))
        })?;
        let mut keys = Vec::new();
        for e in file.keys {
            if e.key.chars().count() < MIN_KEY_LEN {
                return Err(GatewayError::Config(format!(
                    "the key of {} in {} is shorter than {MIN_KEY_LEN} characters: use a long random string",
                    e.name,
                    path.display()
                )));
            }
            let mut k = ApiKey::new(&e.name, &e.key);
            if let Some(n) = e.max_sessions {
                k.max_sessions = n;
            }
            if let Some(mb) = e.max_upload_mb {
                // `mb << 20` dropped the high bits: 2^44 MB and up became a cap of 0 or of anything.
                k.max_upload_bytes = mb.checked_mul(1 << 20).ok_or_else(|| {
                    GatewayError::Config(format!(
                        "max_upload_mb of {} in {} is {mb}, more than a u64 of bytes holds",
                        e.name,
                        path.display()
                    ))
                })?;
            }
            keys.push(k);
        }
        let keys = Self(keys);
        keys.check_unique(&format!("the key file {}", path.display()))?;
        Ok(keys)
    }

    /// Adds `other`'s keys (a key file's, then a list's), refusing a name or a key both give.
    pub fn merge(&mut self, other: ApiKeys) -> Result<(), GatewayError> {
        self.0.extend(other.0);
        self.check_unique("the key file and the key list together")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_a_list_and_a_file() {
        let k = ApiKeys::parse_list("alice:secret-a, bob:secret-b,lonely-key").unwrap();
        assert_eq!(k.find("secret-a").unwrap().name, "alice");
        assert_eq!(k.find("secret-b").unwrap().name, "bob");
        assert_eq!(k.find("lonely-key").unwrap().name, "key1");
        assert!(k.find("secret-c").is_none());
        assert!(ApiKeys::parse_list("alice:").is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.toml");
        std::fs::write(
            &p,
            "[[key]]\nname = \"carol\"\nkey = \"carol-key-123\"\nmax_sessions = 1\nmax_upload_mb = 2\n",
        )
        .unwrap();
        let k = ApiKeys::from_file(&p).unwrap();
        let carol = k.find("carol-key-123").unwrap();
        assert_eq!((carol.max_sessions, carol.max_upload_bytes), (1, 2 << 20));
        std::fs::write(&p, "[[key]]\nname = \"d\"\nkey = \"short\"\n").unwrap();
        assert!(ApiKeys::from_file(&p).is_err());
        std::fs::write(
            &p,
            "[[key]]\nname = \"d\"\nkey = \"long-enough\"\nbogus = 1\n",
        )
        .unwrap();
        assert!(ApiKeys::from_file(&p).is_err());
        // Found by reading the key file's parser: a size whose bytes overflow is refused, not wrapped.
        std::fs::write(
            &p,
            "[[key]]\nname = \"e\"\nkey = \"long-enough\"\nmax_upload_mb = 17592186044416\n",
        )
        .unwrap();
        let e = ApiKeys::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("max_upload_mb"), "{e}");
    }

    /// Issue 29, item 11: a list took one-character keys (a key file demands 8), an automatic name could be
    /// an explicit one's (`key2:...,other` named both `key2`, and sessions belong to a name), and a file and
    /// a list could both name `alice`.
    #[test]
    fn item11_keys_are_long_and_names_and_keys_unique_wherever_they_come_from() {
        let e = ApiKeys::parse_list("alice:x").unwrap_err().to_string();
        assert!(e.contains("shorter than 8"), "{e}");
        assert!(ApiKeys::parse_list("x").is_err());
        // Unnamed keys take the first free automatic names.
        let k =
            ApiKeys::parse_list("key1:first-key-0001,unnamed-0002,key3:third-key-0003,more-0004")
                .unwrap();
        let names: Vec<&str> = [
            "first-key-0001",
            "unnamed-0002",
            "third-key-0003",
            "more-0004",
        ]
        .iter()
        .map(|key| k.find(key).unwrap().name.as_str())
        .collect();
        assert_eq!(names, ["key1", "key2", "key3", "key4"]);
        let k = ApiKeys::parse_list("key2:named-0001,unnamed-0002").unwrap();
        assert_eq!(k.find("unnamed-0002").unwrap().name, "key1");
        // Two names alike, or one key twice, are refused with the name.
        let e = ApiKeys::parse_list("alice:secret-a1,alice:secret-a2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("named alice"), "{e}");
        let e = ApiKeys::parse_list("alice:secret-a1,bob:secret-a1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("alice and bob") && e.contains("same key"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.toml");
        std::fs::write(
            &p,
            "[[key]]\nname = \"alice\"\nkey = \"alice-file-key\"\n[[key]]\nname = \"alice\"\nkey = \"other-file-key\"\n",
        )
        .unwrap();
        assert!(ApiKeys::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("named alice"));
        std::fs::write(&p, "[[key]]\nname = \"alice\"\nkey = \"alice-file-key\"\n").unwrap();
        let mut keys = ApiKeys::from_file(&p).unwrap();
        let e = keys
            .merge(ApiKeys::parse_list("alice:alice-list-key").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("named alice"), "{e}");
        let mut keys = ApiKeys::from_file(&p).unwrap();
        keys.merge(ApiKeys::parse_list("bob:bob-list-key").unwrap())
            .unwrap();
        assert_eq!(keys.len(), 2);
    }
}
