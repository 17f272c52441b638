//! Typed errors with messages that say what to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read scenario file {path}: {source} (pass an existing TOML file, e.g. scenarios/seed-claim.toml)")]
    ReadScenario {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario {origin}: {place}: {message}")]
    Scenario {
        origin: String,
        place: String,
        message: String,
    },
    #[error("run {run} ({label}): unknown selection policy `{policy}`: {message} (use one of fifo, vrf, reputation, stake, auction)")]
    Policy {
        run: usize,
        label: String,
        policy: String,
        message: String,
    },
    #[error("cannot write {path}: {source} (check that --out points to a writable directory)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw chart {path}: {message}")]
    Chart { path: PathBuf, message: String },
}
