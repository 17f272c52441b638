//! What a prover node tells its owner: `GET /status` (JSON) on a local address, which `cairn node status`
//! reads. What it is doing, what it has done, what clients refused and why, and whether it is reachable.
//!
//! The node's loop records events in a [`NodeLog`]; the server adds the network's
//! [`ReachabilityStatus`](cairn_net::ReachabilityStatus) at each request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::NodeError;

/// Problems kept for the owner to read (the latest ones).
const KEEP_PROBLEMS: usize = 20;

/// File in the node's data directory holding the status server's address.
pub const STATUS_ADDR_FILE: &str = "status.addr";

/// A task in hand.
#[derive(Clone, Debug, Serialize)]
pub struct TaskInHand {
    pub client: String,
    pub job: u64,
    pub task: u32,
    /// Unix seconds.
    pub since: u64,
}

/// Something that went wrong, as the owner should see it.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// Unix seconds.
    pub at: u64,
    pub client: String,
    pub job: u64,
    pub task: u32,
    /// `refused` (a client rejected this node's result: it counts against the node's reputation there),
    /// `failed` (the node gave the task up), `undelivered` (the client could not be reached).
    pub kind: &'static str,
    pub reason: String,
}

/// Counters and recent events of a prover node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeLog {
    /// Unix seconds when the node started.
    pub started: u64,
    pub peer: String,
    pub workers: usize,
    pub max_po2: u8,
    pub draining: bool,
    /// Why the owner's limits keep the node from taking new work right now (outside its hours, the
    /// machine in use), if they do.
    pub paused: Option<String>,
    pub running: Vec<TaskInHand>,
    /// Offers accepted.
    pub accepted: u64,
    /// Offers declined (busy, too large, draining ...).
    pub declined: u64,
    /// Results clients acknowledged (verified and counted to this node).
    pub delivered: u64,
    /// Results clients refused.
    pub refused: u64,
    /// Tasks this node gave up.
    pub failed: u64,
    /// Results that could not be delivered (the client was unreachable too long).
    pub undelivered: u64,
    /// Requests refused as malformed or oversized: a peer broke the protocol (each is in the log as a warning).
    pub bad_requests: u64,
    /// Gossip messages refused as malformed (not forwarded; the sender's gossip score pays for it).
    pub bad_gossip: u64,
    /// The latest problems, newest last.
    pub problems: VecDeque<Problem>,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl NodeLog {
    pub fn problem(&mut self, p: Problem) {
        match p.kind {
            "refused" => self.refused += 1,
            "failed" => self.failed += 1,
            _ => self.undelivered += 1,
        }
        if self.problems.len() == KEEP_PROBLEMS {
            self.problems.pop_front();
        }
        self.problems.push_back(p);
    }
}

/// Shared between the node's loop and the status server.
pub type SharedLog = Arc<Mutex<NodeLog>>;

#[derive(Clone)]
struct AppState {
    log: SharedLog,
    net: cairn_net::Client,
}

async fn status(State(s): State<AppState>) -> Json<serde_json::Value> {
    let log = s.log.lock().map(|l| l.clone()).unwrap_or_default();
    let reach = s.net.reachability().await.ok();
    let summary = reach.as_ref().map(|r| r.summary());
    let mut v = serde_json::to_value(&log).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "reachability".into(),
            serde_json::to_value(&reach).unwrap_or_default(),
        );
        obj.insert(
            "reachability_summary".into(),
            serde_json::to_value(summary).unwrap_or_default(),
        );
    }
    Json(v)
}

/// Serves `GET /status` on `addr` (port 0 picks one) and records the bound address in
/// `<data_dir>/status.addr` for `cairn node status`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    data_dir: &Path,
    log: SharedLog,
    net: cairn_net::Client,
) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Config(format!("status address {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let file = status_addr_file(data_dir);
    std::fs::write(&file, bound.to_string())
        .map_err(|e| NodeError::Config(format!("writing {}: {e}", file.display())))?;
    let app = Router::new()
        .route("/status", get(status))
        .with_state(AppState { log, net });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

/// Where a node with data directory `data_dir` records its status address.
pub fn status_addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join(STATUS_ADDR_FILE)
}
