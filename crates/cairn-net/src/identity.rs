//! The node's persistent identity: an ed25519 keypair in a file, created on first start.

use std::path::Path;

use libp2p::identity::Keypair;

use crate::error::NetError;

/// Where the node's keypair comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Loaded from this file (protobuf-encoded keypair), created with mode 0600 if missing.
    File(std::path::PathBuf),
    /// A fresh keypair for this run only (tests, throwaway clients).
    Ephemeral,
}

// Called once at startup: the size of the error type does not matter here.
#[allow(clippy::result_large_err)]
pub(crate) fn load(identity: &Identity) -> Result<Keypair, NetError> {
    match identity {
        Identity::Ephemeral => Ok(Keypair::generate_ed25519()),
        Identity::File(path) => load_or_create(path).map_err(|reason| NetError::Identity {
            path: path.clone(),
            reason,
        }),
    }
}

fn load_or_create(path: &Path) -> Result<Keypair, String> {
    let err = |reason: String| reason;
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| err(format!("not a valid keypair file: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
            }
            let tmp = path.with_extension("tmp");
            write_private(&tmp, &bytes).map_err(|e| err(e.to_string()))?;
            std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            tracing::info!(target: "cairn_net", path = %path.display(), peer = %key.public().to_peer_id(), "created a new node identity");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/key");
        let a = load(&Identity::File(p.clone())).unwrap();
        let b = load(&Identity::File(p.clone())).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            load(&Identity::File(p)),
            Err(NetError::Identity { .. })
        ));
    }
}
