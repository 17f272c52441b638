//! `cairn node`: run a prover node.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;
use cairn_node::prover::{run_prover, ProverConfig};
use cairn_risc0::RiscZeroBackend;

use crate::cli::{BackendKind, NodeArgs};

pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    if let Some(cores) = &args.cores {
        if std::env::var_os("CAIRN_PINNED").is_none() {
            // Re-run this very command pinned to the chosen cores.
            let status = std::process::Command::new("taskset")
                .arg("-c")
                .arg(cores)
                .arg(std::env::current_exe()?)
                .args(std::env::args_os().skip(1))
                .env("CAIRN_PINNED", "1")
                .status()
                .context("running taskset (install util-linux, or drop --cores)")?;
            return Ok(ExitCode::from(status.code().unwrap_or(1) as u8));
        }
    }
    if let Some(threads) = args.threads {
        // Read once by RISC Zero's thread pool when the first proof starts.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let backend: Arc<dyn ProvingBackend> = match args.backend {
        BackendKind::Risc0 => Arc::new(RiscZeroBackend::new()),
        BackendKind::Fake => Arc::new(FakeBackend::new(0.001)),
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let memory = match args.memory_mb {
        Some(mb) => mb << 20,
        None => cairn_node::capacity::available_memory()
            .context("cannot read available memory; pass --memory-mb")?,
    };
    let per_proof_threads = args.threads.unwrap_or(workers) as f64;
    // Speed from the calibrated cost model (po2 14 in 8.2 s on 2 threads), scaled by threads per proof.
    let cycles_per_sec = ((1u64 << 14) as f64 / 8.2 * (per_proof_threads / 2.0).max(0.5)) as u64;
    let mut capacity = cairn_node::capacity::capacity(
        memory,
        workers as u32,
        backend.recursion_available().is_ok(),
        cycles_per_sec,
    );
    if let Some(cap) = args.max_po2 {
        capacity.max_po2 = capacity.max_po2.min(cap);
    }
    anyhow::ensure!(
        capacity.max_po2 >= cairn_backend::MIN_PO2,
        "{} MB per worker is too little to prove even po2 {} segments; use fewer --workers or more memory",
        memory >> 20,
        cairn_backend::MIN_PO2
    );
    let mut net = cairn_net::Config::new(&args.data_dir, 0);
    net.listen = parse_addrs(&args.listen)?;
    net.bootstrap = parse_addrs(&args.bootstrap)?;
    net.mdns = !args.no_mdns;
    let cfg = ProverConfig {
        net,
        capacity,
        workers,
        heartbeat_every: Duration::from_secs(args.heartbeat_secs.max(1)),
        misbehave: args.misbehave.parse().map_err(anyhow::Error::msg)?,
        share_results: args.share_results.clone(),
        print_addr: args.print_addr,
    };
    eprintln!(
        "cairn node: {workers} workers, max po2 {}, {} MB, recursion {}",
        capacity.max_po2,
        memory >> 20,
        if capacity.recursion { "yes" } else { "no" }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_prover(cfg, backend, shutdown_signal()))?;
    eprintln!("cairn node: drained and stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn parse_addrs(addrs: &[String]) -> anyhow::Result<Vec<cairn_net::Multiaddr>> {
    addrs
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|a| {
            a.trim().parse().with_context(|| {
                format!("{a:?} is not a multiaddr (like /ip4/1.2.3.4/tcp/4011/p2p/<peer id>)")
            })
        })
        .collect()
}
