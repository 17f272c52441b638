//! What `cairn prove` writes and checks, locally or on the network: the receipt and its JSON summary (written
//! atomically), and a bundled program's journal against its host-side reference.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::program;

/// Checks the journal of a bundled program against its host-side reference.
pub fn check_reference(prog: &program::Resolved, journal: &[u8]) -> anyhow::Result<()> {
    if let Some(reference) = prog
        .guest
        .and_then(|g| cairn_guests::reference_journal(&g, &prog.input))
    {
        anyhow::ensure!(
            journal == reference,
            "journal {} differs from the host reference {}",
            hex::encode(journal),
            hex::encode(&reference)
        );
    }
    Ok(())
}

/// Writes the receipt to `out` and the JSON summary beside it (`.json`); returns the summary's path.
pub fn write_outputs(
    out: &Path,
    receipt: &[u8],
    summary: &impl Serialize,
) -> anyhow::Result<std::path::PathBuf> {
    write_atomic(out, receipt)?;
    let summary_path = out.with_extension("json");
    write_atomic(
        &summary_path,
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )?;
    Ok(summary_path)
}

/// Writes through a temporary file and a rename, so a crash never leaves a half-written receipt.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
