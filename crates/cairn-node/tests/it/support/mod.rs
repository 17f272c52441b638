//! Shared by the fake-backend network tests: the (named) fake backend and prover nodes in-process.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;
use cairn_net::protocol::NodeCapacity;
use cairn_node::prover::{run_prover, Misbehave, ProverConfig};
use tokio::sync::oneshot;

/// po2 14 "proves" in 82 ms: long enough for every prover to join before the work is gone.
pub fn backend() -> Arc<dyn ProvingBackend> {
    backend_at(0.01)
}

/// A fake backend whose po2 14 proofs take `scale` x 8.2 s.
pub fn backend_at(scale: f64) -> Arc<dyn ProvingBackend> {
    Arc::new(FakeBackend::new(scale))
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CAIRN_TEST_LOG"))
        .with_test_writer()
        .try_init();
}

/// How a test prover behaves.
#[derive(Debug, Clone)]
pub struct ProverOpts {
    pub misbehave: Misbehave,
    pub recursion: bool,
    pub slots: u32,
    /// Fake proving time scale (see [`backend_at`]).
    pub scale: f64,
    /// Keep its identity key in its directory, so a restarted prover is the same peer.
    pub persistent_identity: bool,
    /// Largest segment it accepts.
    pub max_po2: u8,
    /// How long a client may stay away before its tasks are dropped.
    pub orphan_grace: Duration,
}

impl Default for ProverOpts {
    fn default() -> Self {
        Self {
            misbehave: Misbehave::Honest,
            recursion: false,
            slots: 1,
            scale: 0.01,
            persistent_identity: false,
            max_po2: 18,
            orphan_grace: Duration::from_secs(30),
        }
    }
}

/// Starts a prover in `dir/name` that dials every address in `bootstrap`; dropping (or sending on) the
/// returned sender stops it.
pub fn start_prover(
    dir: &Path,
    name: &str,
    bootstrap: &[&str],
    opts: ProverOpts,
) -> oneshot::Sender<()> {
    let mut net = cairn_net::Config::loopback(dir.join(name));
    if opts.persistent_identity {
        net.identity = cairn_net::Identity::File(dir.join(name).join("identity.key"));
    }
    net.bootstrap = bootstrap.iter().map(|a| a.parse().unwrap()).collect();
    let cfg = ProverConfig {
        net,
        capacity: NodeCapacity {
            memory_bytes: 4 << 30,
            max_po2: opts.max_po2,
            cycles_per_sec: 2_000_000,
            slots: opts.slots,
            recursion: opts.recursion,
        },
        workers: opts.slots as usize,
        heartbeat_every: Duration::from_millis(500),
        orphan_grace: opts.orphan_grace,
        misbehave: opts.misbehave,
        share_results: None,
        print_addr: false,
        drain_linger: Duration::from_secs(5),
        announce_every: Duration::from_secs(30),
        status_addr: None,
        availability: Default::default(),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let backend = backend_at(opts.scale);
    tokio::spawn(async move {
        let _ = run_prover(cfg, backend, async move {
            let _ = stop_rx.await;
        })
        .await;
    });
    stop_tx
}
