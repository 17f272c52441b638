//! The gateway's settings and its API keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_node::coordinator::JobSettings;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::GatewayError;

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
    /// (`key`) is named `key1`, `key2`, ...
    pub fn parse_list(s: &str) -> Result<Self, GatewayError> {
        let mut keys = Vec::new();
        for (i, item) in s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let (name, key) = match item.split_once(':') {
                Some((n, k)) => (n.trim().to_string(), k.trim()),
                None => (format!("key{}", i + 1), item),
            };
            if key.is_empty() || name.is_empty() {
                return Err(GatewayError::Config(format!(
                    "API key list item {} is empty: write name:key,name:key",
                    i + 1
                )));
            }
            keys.push(ApiKey::new(&name, key));
        }
        Ok(Self(keys))
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
            if e.key.len() < 8 {
                return Err(GatewayError::Config(format!(
                    "the key of {} in {} is shorter than 8 characters: use a long random string",
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
        Ok(Self(keys))
    }

    pub fn extend(&mut self, other: ApiKeys) {
        self.0.extend(other.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_a_list_and_a_file() {
        let k = ApiKeys::parse_list("alice:secret-a, bob:secret-b,lonely").unwrap();
        assert_eq!(k.find("secret-a").unwrap().name, "alice");
        assert_eq!(k.find("secret-b").unwrap().name, "bob");
        assert_eq!(k.find("lonely").unwrap().name, "key3");
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
}
