//! Cairn's Bonsai-compatible gateway (`cairn gateway`).
//!
//! A stock RISC Zero host proves through Cairn by setting two environment variables: with `BONSAI_API_URL`
//! pointing here and `BONSAI_API_KEY` set to a key this gateway knows, `risc0_zkvm::default_prover()` uploads
//! the program and input, creates a session and polls it; the gateway turns each session into a job of the
//! coordinator [`Service`] (one network presence and one job database for every session), which executes it,
//! hands its segments to untrusted provers, verifies every result and assembles the receipt. The gateway
//! verifies that receipt once more against the session's image id before it offers it for download.
//!
//! Rooms: [`config`] (settings, API keys), [`store`] (uploads, receipts and the session database on disk),
//! `api` (the REST routes and their errors), `session` (running one session), `metrics` (Prometheus),
//! `dashboard` (the live page at `/`).

mod api;
pub mod config;
mod dashboard;
mod guard;
// Entry points for the fuzz targets of crates/cairn-fuzz (doc-hidden, not part of the API).
#[doc(hidden)]
pub mod fuzz;
mod metrics;
mod session;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_backend::ProvingBackend;
use cairn_node::coordinator::Service;
use cairn_scheduler::JobId;
use tracing::info;

pub use config::{ApiKey, ApiKeys, GatewayConfig};

/// The risc0-zkvm version whose receipts this gateway hands out (bincode `risc0_zkvm::Receipt`). Clients of
/// the same major version read them; others are refused with a message (`x-risc0-version`).
pub const RISC0_VERSION: &str = "3.0.6";

/// Errors of the gateway as a library (request errors are HTTP answers, see `api`).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway configuration: {0}")]
    Config(String),
    #[error("gateway database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Node(#[from] cairn_node::NodeError),
}

impl GatewayError {
    fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}

/// A session in progress, as the status route and the dashboard show it.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub job: Option<JobId>,
    /// A short line for the client's `state` field.
    pub state: String,
    pub stop: bool,
}

/// Shared by the routes and the session runners.
pub(crate) struct Inner {
    pub cfg: GatewayConfig,
    pub store: Arc<store::Store>,
    pub service: Service,
    pub backend: Arc<dyn ProvingBackend>,
    pub live: Mutex<HashMap<String, Live>>,
    pub metrics: metrics::Metrics,
    /// Refused API key attempts per client address.
    pub failures: guard::Failures,
    /// Uploads in progress per key name (`api::UploadSlot`).
    pub uploads: Mutex<HashMap<String, u32>>,
    /// Programs being read and checked at once (`api::IMAGE_CHECKS`).
    pub image_checks: tokio::sync::Semaphore,
    /// Serializes session creation, so two requests cannot both slip under a key's session cap.
    pub create: tokio::sync::Mutex<()>,
    pub shutting_down: AtomicBool,
    /// Tells the HTTP server to stop.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Inner {
    pub fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("addr", &self.addr).finish()
    }
}

impl Gateway {
    /// Opens the data directory, resumes every session that was running when the gateway last stopped, and
    /// serves the API on `cfg.listen` (port 0 picks one; see [`Gateway::addr`]).
    pub async fn start(
        cfg: GatewayConfig,
        service: Service,
        backend: Arc<dyn ProvingBackend>,
    ) -> Result<Self, GatewayError> {
        if cfg.keys.is_empty() {
            return Err(GatewayError::Config(
                "no API keys: pass --keys-file or set CAIRN_GATEWAY_KEYS=name:key,...".into(),
            ));
        }
        cfg.keys.check_unique("the gateway's keys")?;
        let dir = cfg.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || store::Store::open(&dir))
            .await
            .map_err(|e| GatewayError::Config(e.to_string()))??;
        let store = Arc::new(store);
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| {
                GatewayError::Config(format!(
                    "cannot listen on {}: {e}; choose another --listen",
                    cfg.listen
                ))
            })?;
        let addr = listener
            .local_addr()
            .map_err(GatewayError::io("reading the bound address"))?;
        let inner = Arc::new(Inner {
            cfg,
            store: store.clone(),
            service,
            backend,
            live: Mutex::new(HashMap::new()),
            metrics: metrics::Metrics::default(),
            failures: guard::Failures::default(),
            uploads: Mutex::new(HashMap::new()),
            image_checks: tokio::sync::Semaphore::new(api::IMAGE_CHECKS),
            create: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            stop: tokio::sync::watch::channel(false).0,
        });
        let s = store.clone();
        let unfinished = tokio::task::spawn_blocking(move || s.running())
            .await
            .map_err(|e| GatewayError::Config(e.to_string()))??;
        if !unfinished.is_empty() {
            info!(
                sessions = unfinished.len(),
                "resuming sessions that were running"
            );
        }
        for row in unfinished {
            session::spawn(inner.clone(), row);
        }
        let app = api::router(inner.clone());
        let mut stop = inner.stop.subscribe();
        tokio::spawn(async move {
            // The client's address, for counting refused keys per address (`guard`).
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        info!(%addr, "gateway listening");
        Ok(Self { addr, inner })
    }

    /// Where the API is served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking sessions and leaves the network; running sessions stay `RUNNING` in the database and
    /// resume when a gateway starts again on the same data directory.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner.stop.send_replace(true);
        self.inner.service.shutdown().await;
    }
}
