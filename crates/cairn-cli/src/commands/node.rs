//! `cairn node`: run a prover node.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;
use cairn_node::lock::ProcessLock;
use cairn_node::prover::{run_prover, ProverConfig};
use cairn_risc0::RiscZeroBackend;

use crate::cli::{BackendKind, NodeAction, NodeArgs, ReachArgs};

/// How long a node keeps proving for a client that dropped off the network before it gives the work up.
const ORPHAN_GRACE: Duration = Duration::from_secs(60);

pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    if let Some(NodeAction::Status(s)) = &args.action {
        return super::node_status::run(s);
    }
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
    // One node per data directory (its identity, blob store and status address), held until it exits; taken
    // before the benchmark, so a second node refuses at once.
    let _lock = ProcessLock::dir(&args.data_dir, "the node's data directory", "--data-dir")?;
    let backend: Arc<dyn ProvingBackend> = match args.backend {
        BackendKind::Risc0 => Arc::new(RiscZeroBackend::new()),
        BackendKind::Fake => Arc::new(FakeBackend::new(args.fake_time_scale.clamp(0.0, 10.0))),
    };
    let slots = Slots::new(args.workers, args.threads);
    // RISC Zero proves on rayon's global pool; every slot's proof shares it, so it gets all the slots' threads.
    std::env::set_var("RAYON_NUM_THREADS", slots.pool_threads().to_string());
    if slots.oversubscribed() {
        eprintln!(
            "cairn node: warning: {} slots x {} threads = {} proving threads on {} cores: proofs will share \
             cores, and the speed this node advertises per slot says so",
            slots.workers,
            slots.threads,
            slots.pool_threads(),
            slots.cores
        );
    }
    let workers = slots.workers;
    let memory = match args.memory_mb {
        Some(mb) => mb << 20,
        None => cairn_node::capacity::available_memory()
            .context("cannot read available memory; pass --memory-mb")?,
    };
    // What one proof achieves with the whole pool to itself...
    let alone = if args.no_benchmark {
        // Speed from the calibrated cost model (po2 14 in 8.2 s on 2 threads), scaled by threads.
        ((1u64 << 14) as f64 / 8.2 * (slots.pool_threads().min(slots.cores) as f64 / 2.0).max(0.5))
            as u64
    } else {
        measured_speed(args, &*backend, slots.pool_threads())?
    };
    // ... and what each slot delivers when every slot is busy, which is what clients' deadlines must assume.
    let cycles_per_sec = slots.per_slot_speed(alone);
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
    apply_reach(&mut net, &args.reach)?;
    net.store.max_total_bytes = args.max_disk_mb.max(64) << 20;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let cfg = ProverConfig {
        net,
        capacity,
        workers,
        heartbeat_every: Duration::from_secs(args.heartbeat_secs.max(1)),
        orphan_grace: ORPHAN_GRACE,
        misbehave: args.misbehave.parse().map_err(anyhow::Error::msg)?,
        share_results: args.share_results.clone(),
        print_addr: args.print_addr,
        drain_linger: Duration::from_secs(10),
        announce_every: Duration::from_secs(args.announce_secs.max(1)),
        status_addr: Some(args.status_addr),
        availability: cairn_node::availability::Availability {
            hours: args.hours,
            idle_below: args
                .idle_below_percent
                .map(|p| (p / 100.0).clamp(0.01, 1.0)),
        },
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

/// How a node's proving slots and threads are sized (see `cairn node --help` for `--workers`, `--threads`).
#[derive(Debug, Clone, Copy)]
struct Slots {
    cores: usize,
    /// Proofs at once.
    workers: usize,
    /// Threads per slot; the slots' proofs share one pool of `workers x threads` threads.
    threads: usize,
}

impl Slots {
    /// Default: one slot with every core (RISC Zero parallelizes one proof across cores, so two proofs on the
    /// same cores are no faster together and each is twice as slow). Given slots, the cores are split among them.
    fn new(workers: Option<usize>, threads: Option<usize>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = workers.unwrap_or(1).max(1);
        let threads = threads.unwrap_or((cores / workers).max(1)).max(1);
        Self {
            cores,
            workers,
            threads,
        }
    }

    fn pool_threads(&self) -> usize {
        self.workers * self.threads
    }

    fn oversubscribed(&self) -> bool {
        self.pool_threads() > self.cores
    }

    /// Speed of one slot while every slot proves, from the speed of one proof alone on the whole pool: the
    /// slots split the pool (an oversubscribed pool was no faster than its cores for the lone proof either).
    fn per_slot_speed(&self, alone: u64) -> u64 {
        (alone / self.workers as u64).max(1)
    }
}

/// Segment size of the start-up benchmark: the smallest RISC Zero proves, so it costs seconds, not minutes.
const BENCHMARK_PO2: u8 = 14;

/// A saved start-up benchmark, reused while the settings it was measured with stay the same.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct SavedBenchmark {
    backend: String,
    threads_per_proof: usize,
    po2: u8,
    secs: f64,
    cycles_per_sec: u64,
}

/// Proves one po2 14 segment of the bundled sha-chain program alone, with the node's whole proving pool (same
/// backend, same threads), and returns the cycles per second it achieved. Saved in the data directory, so a
/// restart does not pay for it again.
fn measured_speed(
    args: &NodeArgs,
    backend: &dyn ProvingBackend,
    threads_per_proof: usize,
) -> anyhow::Result<u64> {
    let path = args.data_dir.join("benchmark.json");
    let saved: Option<SavedBenchmark> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(b) = saved.filter(|b| {
        !args.rebenchmark
            && b.backend == backend.name()
            && b.threads_per_proof == threads_per_proof
            && b.po2 == BENCHMARK_PO2
    }) {
        eprintln!(
            "cairn node: benchmark from {}: po2 {} in {:.1} s ({} cycles/s; --rebenchmark to measure again)",
            path.display(),
            b.po2,
            b.secs,
            b.cycles_per_sec
        );
        return Ok(b.cycles_per_sec);
    }
    eprintln!("cairn node: benchmarking: proving one po2 {BENCHMARK_PO2} segment (--no-benchmark skips this)");
    // The fake backend runs only fake programs: its benchmark is a fake po2 14 segment (its time is the cost
    // model's, scaled by --fake-time-scale).
    let (program, input) = if backend.name() == "fake" {
        (
            cairn_backend::fake::FakeBackend::program("benchmark"),
            cairn_backend::fake::FakeBackend::input(8_000, b"cairn node benchmark"),
        )
    } else {
        (
            cairn_guests::SHA_CHAIN.binary.to_vec(),
            cairn_guests::sha_chain_input(1, b"cairn node benchmark"),
        )
    };
    let (cycles_per_sec, secs) =
        cairn_node::capacity::benchmark(backend, &program, &input, BENCHMARK_PO2)
            .context("start-up benchmark failed (pass --no-benchmark to skip it)")?;
    eprintln!(
        "cairn node: benchmark: po2 {BENCHMARK_PO2} in {secs:.1} s ({cycles_per_sec} cycles/s)"
    );
    let saved = SavedBenchmark {
        backend: backend.name().to_string(),
        threads_per_proof,
        po2: BENCHMARK_PO2,
        secs,
        cycles_per_sec,
    };
    std::fs::create_dir_all(&args.data_dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&saved).unwrap_or_default()))
        .with_context(|| format!("saving the benchmark to {}", path.display()))?;
    Ok(cycles_per_sec)
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

/// Relays, reachability mode and external addresses (`ReachArgs`) into a network config.
pub fn apply_reach(net: &mut cairn_net::Config, r: &ReachArgs) -> anyhow::Result<()> {
    net.relays = parse_addrs(&r.relay)?;
    for a in &net.relays {
        anyhow::ensure!(
            a.to_string().contains("/p2p/"),
            "--relay {a} does not end in /p2p/<relay peer id> (`cairn relay --print-addr` prints it)"
        );
    }
    net.reachability = r.reachability;
    net.external_addrs = parse_addrs(&r.external_addr)?;
    net.autonat_private_ips = r.autonat_private_ips;
    net.limits.inbound.per_ip = r.max_conns_per_ip.max(1);
    net.limits.trim = match r.peers_high_water {
        0 => cairn_net::TrimLimits::off(),
        high => cairn_net::TrimLimits::with_high_water(high),
    };
    if r.serve_relay {
        net.relay_server = Some(cairn_net::RelayServerConfig::default());
    }
    Ok(())
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
