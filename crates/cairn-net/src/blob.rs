//! Content addressing: a blob is named by the SHA-256 of its bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of a blob's content; displayed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// Hashes `data` and returns its id.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as 64 lowercase hex characters (also its file name in a [`crate::BlobStore`]).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short form for logs: the first 8 hex characters.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.short())
    }
}

/// Parse error for [`BlobId`] from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid blob id {input:?}: expected 64 hex characters (a SHA-256)")]
pub struct ParseBlobIdError {
    input: String,
}

impl FromStr for BlobId {
    type Err = ParseBlobIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseBlobIdError {
            input: s.chars().take(80).collect(),
        })?;
        Ok(Self(out))
    }
}

/// A reference to a blob carried in protocol messages: its id and its size, so a receiver can refuse a blob
/// that would not fit before fetching anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// Content hash.
    pub id: BlobId,
    /// Size in bytes.
    pub size: u64,
}

impl BlobRef {
    /// A reference to `data`.
    pub fn of(data: &[u8]) -> Self {
        Self {
            id: BlobId::of(data),
            size: data.len() as u64,
        }
    }
}

/// SHA-256 of one chunk.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_vector() {
        let id = BlobId::of(b"abc");
        assert_eq!(
            id.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
        assert!("zz".parse::<BlobId>().is_err());
    }
}
