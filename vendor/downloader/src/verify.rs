//! Verify callbacks: each gets the fetched file's path and a progress callback.

use std::{path::PathBuf, sync::Arc};

/// A progress callback, told how many bytes have been checked.
pub type SimpleProgress = dyn Fn(u64) + Sync;

/// Checks a fetched file.
pub type Verify = Arc<dyn Fn(PathBuf, &SimpleProgress) -> Verification + Send + Sync>;

/// What a verify callback found.
#[derive(Debug, Eq, PartialEq)]
pub enum Verification {
    /// Not checked.
    NotVerified,
    /// Checked and wrong.
    Failed,
    /// Checked and right.
    Ok,
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotVerified => "not verified",
            Self::Failed => "FAILED",
            Self::Ok => "Ok",
        })
    }
}

/// Accepts any file without checking it.
#[must_use]
pub fn noop() -> Verify {
    Arc::new(|_: PathBuf, _: &SimpleProgress| Verification::NotVerified)
}

/// Accepts the file only if its digest under `D` is `hash`.
#[cfg(feature = "verify")]
#[must_use]
pub fn with_digest<D: digest::Digest>(hash: Vec<u8>) -> Verify {
    Arc::new(move |path: PathBuf, progress: &SimpleProgress| match std::fs::read(&path) {
        Ok(bytes) => {
            progress(bytes.len() as u64);
            if D::digest(&bytes).as_slice() == hash.as_slice() {
                Verification::Ok
            } else {
                Verification::Failed
            }
        }
        Err(_) => Verification::Failed,
    })
}
