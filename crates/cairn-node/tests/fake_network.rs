//! The coordinator and prover nodes over real libp2p on loopback, with the (named) fake proving backend so
//! the flow, the faults and the ledger can be checked in seconds. The same paths with real RISC Zero proofs
//! are tested by `cairn-cli/tests/network.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;
use cairn_net::protocol::NodeCapacity;
use cairn_node::coordinator::{prove_network, CoordinatorConfig, NetworkProof, Progress};
use cairn_node::prover::{run_prover, Misbehave, ProverConfig};
use cairn_scheduler::SchedulerConfig;
use tokio::sync::{mpsc, oneshot};

fn backend() -> Arc<dyn ProvingBackend> {
    // po2 14 "proves" in 82 ms: long enough for every prover to join before the work is gone.
    Arc::new(FakeBackend::new(0.01))
}

fn coordinator_config(dir: &Path) -> CoordinatorConfig {
    let scheduler = SchedulerConfig {
        heartbeat_timeout_ms: Some(3_000),
        ..SchedulerConfig::default()
    };
    CoordinatorConfig {
        net: cairn_net::Config::loopback(dir.join("client")),
        db_path: dir.join("jobs.sqlite"),
        po2: 14,
        redundancy: 1,
        max_attempts: 6,
        task_slack: Duration::from_secs(2),
        policy: "fifo".into(),
        scheduler,
        status_addr: Some("127.0.0.1:0".parse().unwrap()),
        job_timeout: Duration::from_secs(60),
    }
}

/// Starts a prover that dials `bootstrap`; returns a handle that stops it.
fn start_prover(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    misbehave: Misbehave,
) -> oneshot::Sender<()> {
    let mut net = cairn_net::Config::loopback(dir.join(name));
    net.bootstrap = vec![bootstrap.parse().unwrap()];
    let cfg = ProverConfig {
        net,
        capacity: NodeCapacity {
            memory_bytes: 4 << 30,
            max_po2: 18,
            cycles_per_sec: 2_000_000,
            slots: 1,
            recursion: false,
        },
        workers: 1,
        heartbeat_every: Duration::from_millis(500),
        misbehave,
        share_results: None,
        print_addr: false,
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = run_prover(cfg, backend(), async move {
            let _ = stop_rx.await;
        })
        .await;
    });
    stop_tx
}

struct Run {
    proof: NetworkProof,
    rejected: Vec<String>,
}

/// Runs one job with one prover per entry of `provers`, all dialing the client.
async fn run_job(
    dir: &Path,
    provers: &[Misbehave],
    cycles: u64,
) -> Result<Run, cairn_node::NodeError> {
    run_job_with(dir, provers, cycles, |_| {}).await
}

async fn run_job_with(
    dir: &Path,
    provers: &[Misbehave],
    cycles: u64,
    tweak: impl FnOnce(&mut CoordinatorConfig),
) -> Result<Run, cairn_node::NodeError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CAIRN_TEST_LOG"))
        .with_test_writer()
        .try_init();
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel::<String>();
    let (rej_tx, mut rej_rx) = mpsc::unbounded_channel::<String>();
    let mut cfg = coordinator_config(dir);
    tweak(&mut cfg);
    let program = FakeBackend::program("fake-net");
    let input = FakeBackend::input(cycles, b"job");
    let job = tokio::spawn(prove_network(
        cfg,
        backend(),
        program,
        input,
        move |p| match p {
            Progress::Listening(a) => {
                let _ = addr_tx.send(a[0].clone());
            }
            Progress::Rejected { reason, .. } => {
                let _ = rej_tx.send(reason);
            }
            _ => {}
        },
    ));
    let client_addr = tokio::time::timeout(Duration::from_secs(20), addr_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let stops: Vec<_> = provers
        .iter()
        .enumerate()
        .map(|(i, m)| start_prover(dir, &format!("prover-{i}"), &client_addr, m.clone()))
        .collect();
    let proof = tokio::time::timeout(Duration::from_secs(90), job)
        .await
        .expect("job finished in time")
        .unwrap();
    drop(stops);
    let mut rejected = Vec::new();
    while let Ok(r) = rej_rx.try_recv() {
        rejected.push(r);
    }
    proof.map(|proof| Run { proof, rejected })
}

fn ledger(dir: &Path) -> Vec<(String, String, Option<String>)> {
    cairn_node::jobdb::JobDb::open(&dir.join("jobs.sqlite"))
        .unwrap()
        .ledger()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_provers_prove_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_job(dir.path(), &[Misbehave::Honest, Misbehave::Honest], 150_000)
        .await
        .unwrap();
    let p = &run.proof;
    assert!(p.summary.segments >= 8);
    assert_eq!(p.proved_by.values().sum::<u32>(), p.summary.segments);
    assert_eq!(p.proved_by.len(), 2, "work was shared: {:?}", p.proved_by);
    let journal = backend()
        .verify_receipt(&p.receipt, &p.summary.image_id)
        .unwrap();
    assert_eq!(journal, p.summary.journal);
    assert!(ledger(dir.path())
        .iter()
        .all(|(_, kind, _)| kind == "reward"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_provers_are_rejected_penalized_and_the_job_completes() {
    for liar in [Misbehave::Garbage, Misbehave::Replay, Misbehave::OtherJob] {
        let dir = tempfile::tempdir().unwrap();
        let run = run_job(dir.path(), &[liar.clone(), Misbehave::Honest], 150_000)
            .await
            .unwrap();
        let p = &run.proof;
        backend()
            .verify_receipt(&p.receipt, &p.summary.image_id)
            .unwrap();
        let penalties: Vec<_> = ledger(dir.path())
            .into_iter()
            .filter(|(_, k, _)| k == "penalty")
            .collect();
        assert!(!penalties.is_empty(), "{liar:?} was not penalized");
        assert!(!run.rejected.is_empty(), "{liar:?}: nothing rejected");
        // Every accepted segment answers its own claim (assemble re-verifies all of them).
        assert_eq!(p.proved_by.values().sum::<u32>(), p.summary.segments);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_prover_is_penalized_for_silence() {
    let dir = tempfile::tempdir().unwrap();
    // Without speculative backups, the silent node's copy must run into its deadline.
    let run = run_job_with(
        dir.path(),
        &[Misbehave::Silent, Misbehave::Honest],
        60_000,
        |c| {
            c.scheduler.speculative.enabled = false;
        },
    )
    .await
    .unwrap();
    backend()
        .verify_receipt(&run.proof.receipt, &run.proof.summary.image_id)
        .unwrap();
    let silence = ledger(dir.path())
        .into_iter()
        .any(|(_, k, c)| k == "penalty" && c.is_some_and(|c| c.contains("Silence")));
    assert!(silence, "{:?}", ledger(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_client_does_not_prove_verified_segments_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_job(dir.path(), &[Misbehave::Honest], 60_000)
        .await
        .unwrap();
    let segments = first.proof.summary.segments;
    // Same job, same database: everything is already verified, nothing is offered to anyone.
    let second = run_job(dir.path(), &[Misbehave::Honest], 60_000)
        .await
        .unwrap();
    assert_eq!(second.proof.resumed_segments, segments);
    assert!(
        second.proof.proved_by.is_empty(),
        "{:?}",
        second.proof.proved_by
    );
    backend()
        .verify_receipt(&second.proof.receipt, &second.proof.summary.image_id)
        .unwrap();
}
