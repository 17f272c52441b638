//! Cairn's prover node and client coordinator: where the scheduler ([`cairn_scheduler`]), the network
//! ([`cairn_net`]) and the proving backend ([`cairn_backend`]) meet.
//!
//! - [`prover::run_prover`]: `cairn node`. Advertises capacity, accepts work that fits, proves on worker
//!   threads, heartbeats, returns results, drains on shutdown.
//! - [`coordinator::prove_network`]: `cairn prove --network`. Executes once, streams segments to provers,
//!   drives the scheduler, verifies every result against its expected claim, persists verified receipts in
//!   SQLite ([`jobdb`]) before acting on them, assembles the final receipt, serves status ([`status`]).
//! - [`availability`]: the owner's limits on when the node takes work (hours of the day, idle-only).
//! - [`node_status`]: the prover node's status page for its owner (`cairn node status`).
//! - [`capacity`]: what this machine can prove (memory, max po2, a short proof-of-workload benchmark).
//! - [`lock`]: one process per data directory and job database.

pub mod availability;
pub mod capacity;
pub mod coordinator;
// Entry points for the fuzz targets of crates/cairn-fuzz (not behind a feature: a feature only the fuzz crate
// enables would make `cargo build -p cairn-cli` and a workspace build compile this crate twice).
#[doc(hidden)]
pub mod fuzz;
pub mod jobdb;
pub mod lock;
pub mod node_status;
pub mod prover;
pub mod status;

/// Errors of nodes and coordinators.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Net(Box<cairn_net::NetError>),
    #[error(transparent)]
    Backend(#[from] cairn_backend::BackendError),
    #[error(transparent)]
    JobDb(#[from] jobdb::JobDbError),
    #[error("job failed: {0}")]
    JobFailed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<cairn_net::NetError> for NodeError {
    fn from(e: cairn_net::NetError) -> Self {
        Self::Net(Box::new(e))
    }
}

impl NodeError {
    fn join(e: tokio::task::JoinError) -> Self {
        Self::Internal(e.to_string())
    }

    /// A copy for a second party waiting on the same outcome: the kinds a caller acts on (a failed job, a
    /// timeout, a configuration problem) are kept, the others keep their message.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::JobFailed(m) => Self::JobFailed(m.clone()),
            Self::Timeout(m) => Self::Timeout(m.clone()),
            Self::Config(m) => Self::Config(m.clone()),
            other => Self::Internal(other.to_string()),
        }
    }
}
