//! The client's status API: job status as JSON (`GET /status`) and Prometheus metrics (`GET /metrics`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::NodeError;

/// Counters of one coordinator.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub assigned: Counter,
    pub verified: Counter,
    pub rejected: Counter,
    pub penalties: Counter,
    /// Segments the executor produced (a job that ended stops its executor at the next one).
    pub executed: Counter,
}

impl Metrics {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("cairn");
        r.register(
            "tasks_assigned",
            "Task copies offered to provers",
            self.assigned.clone(),
        );
        r.register(
            "segments_verified",
            "Segment receipts verified and accepted",
            self.verified.clone(),
        );
        r.register(
            "results_rejected",
            "Results refused (invalid, wrong claim, copied, malformed)",
            self.rejected.clone(),
        );
        r.register(
            "penalties",
            "Penalties recorded in the ledger",
            self.penalties.clone(),
        );
        r.register(
            "segments_executed",
            "Segments executed (a job that ends stops its execution at the next segment)",
            self.executed.clone(),
        );
        r
    }
}

#[derive(Clone)]
struct AppState {
    status: Arc<Mutex<serde_json::Value>>,
    registry: Arc<Registry>,
}

/// The HTTP server behind the status API.
#[derive(Debug)]
pub struct StatusServer;

impl StatusServer {
    /// Binds `addr` and serves in the background; returns the bound address (port 0 picks one).
    pub async fn start(
        addr: SocketAddr,
        status: Arc<Mutex<serde_json::Value>>,
        metrics: Metrics,
    ) -> Result<SocketAddr, NodeError> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            NodeError::Config(format!(
                "status API cannot listen on {addr}: {e}; choose another --status-addr"
            ))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let state = AppState {
            status,
            registry: Arc::new(metrics.registry()),
        };
        let app = Router::new()
            .route(
                "/status",
                get(|State(s): State<AppState>| async move {
                    Json(s.status.lock().expect("poisoned").clone())
                }),
            )
            .route(
                "/metrics",
                get(|State(s): State<AppState>| async move {
                    let mut out = String::new();
                    let _ = encode(&mut out, &s.registry);
                    out
                }),
            )
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(bound)
    }
}
