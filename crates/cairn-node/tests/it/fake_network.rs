//! The coordinator and prover nodes over real libp2p on loopback, with the (named) fake proving backend so
//! the flow, the faults and the ledger can be checked in seconds. The same paths with real RISC Zero proofs
//! are tested by `cairn-cli/tests/network.rs`.

use std::path::Path;
use std::time::Duration;

use crate::support::backend;
use cairn_backend::fake::FakeBackend;
use cairn_node::coordinator::{prove_network, CoordinatorConfig, NetworkProof, Progress};
use cairn_node::prover::Misbehave;
use cairn_scheduler::SchedulerConfig;
use tokio::sync::{mpsc, oneshot};

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
        aggregation: cairn_scheduler::Aggregation::Composite,
        auto: None,
    }
}

/// Starts a prover that dials `bootstrap`; returns a handle that stops it.
fn start_prover(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    misbehave: Misbehave,
    recursion: bool,
) -> oneshot::Sender<()> {
    start_prover_with_slots(dir, name, &[bootstrap], misbehave, recursion, 1)
}

/// A prover with `slots` proving slots (and as many workers) that dials every address in `bootstrap`.
fn start_prover_with_slots(
    dir: &Path,
    name: &str,
    bootstrap: &[&str],
    misbehave: Misbehave,
    recursion: bool,
    slots: u32,
) -> oneshot::Sender<()> {
    crate::support::start_prover(
        dir,
        name,
        bootstrap,
        crate::support::ProverOpts {
            misbehave,
            recursion,
            slots,
            ..crate::support::ProverOpts::default()
        },
    )
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
    run_job_on(dir, provers, false, cycles, tweak).await
}

/// As `run_job_with`, with provers that can (`recursion`) or cannot run lift and join.
async fn run_job_on(
    dir: &Path,
    provers: &[Misbehave],
    recursion: bool,
    cycles: u64,
    tweak: impl FnOnce(&mut CoordinatorConfig),
) -> Result<Run, cairn_node::NodeError> {
    crate::support::init_tracing();
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
        .map(|(i, m)| {
            start_prover(
                dir,
                &format!("prover-{i}"),
                &client_addr,
                m.clone(),
                recursion,
            )
        })
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
        // A replaying prover proves its first task honestly (it has nothing to replay yet), so it lies only
        // from its second task on: ~42 segments make sure it gets one even when a loaded machine lets the
        // honest prover take most of them (11 segments did not, once, under the full suite).
        let run = run_job(dir.path(), &[liar.clone(), Misbehave::Honest], 600_000)
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

fn join_tree(c: &mut CoordinatorConfig) {
    c.aggregation = cairn_scheduler::Aggregation::JoinTree;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provers_lift_and_join_into_one_succinct_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_job_on(
        dir.path(),
        &[Misbehave::Honest, Misbehave::Honest],
        true,
        150_000,
        join_tree,
    )
    .await
    .unwrap();
    let p = &run.proof;
    assert_eq!(p.aggregation, cairn_scheduler::Aggregation::JoinTree);
    assert!(p.summary.segments >= 8);
    // A binary tree over n leaves has n - 1 joins, each proved by a prover and verified by the client.
    assert_eq!(p.joins_verified, p.summary.segments - 1);
    assert_eq!(p.proved_by.values().sum::<u32>(), p.summary.segments);
    let journal = backend()
        .verify_receipt(&p.receipt, &p.summary.image_id)
        .unwrap();
    assert_eq!(journal, p.summary.journal);
    assert!(run.rejected.is_empty(), "{:?}", run.rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lifts_and_joins_are_rejected_and_the_tree_completes() {
    // Garbage: every lift and join it returns is malformed. Other job: valid lifts of the wrong segments.
    for liar in [Misbehave::Garbage, Misbehave::OtherJob] {
        let dir = tempfile::tempdir().unwrap();
        let run = run_job_on(
            dir.path(),
            &[liar.clone(), Misbehave::Honest],
            true,
            150_000,
            join_tree,
        )
        .await
        .unwrap();
        let p = &run.proof;
        backend()
            .verify_receipt(&p.receipt, &p.summary.image_id)
            .unwrap();
        assert_eq!(p.joins_verified, p.summary.segments - 1);
        assert!(!run.rejected.is_empty(), "{liar:?}: nothing rejected");
        assert!(
            ledger(dir.path()).iter().any(|(_, k, _)| k == "penalty"),
            "{liar:?} was not penalized"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_tree_without_recursion_provers_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_job_on(dir.path(), &[Misbehave::Honest], false, 60_000, |c| {
        join_tree(c);
        c.scheduler.stall_timeout_ms = Some(2_000);
    })
    .await
    .err()
    .expect("no prover can lift");
    let msg = err.to_string();
    assert!(msg.contains("recursion"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_join_tree_job_keeps_its_lifted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_job_on(dir.path(), &[Misbehave::Honest], true, 60_000, join_tree)
        .await
        .unwrap();
    let segments = first.proof.summary.segments;
    let second = run_job_on(dir.path(), &[Misbehave::Honest], true, 60_000, join_tree)
        .await
        .unwrap();
    // Every lifted segment comes back from the database; only the joins above them are proved again.
    assert_eq!(second.proof.resumed_segments, segments);
    assert!(
        second.proof.proved_by.is_empty(),
        "{:?}",
        second.proof.proved_by
    );
    assert_eq!(second.proof.joins_verified, segments - 1);
    backend()
        .verify_receipt(&second.proof.receipt, &second.proof.summary.image_id)
        .unwrap();
    // A composite run of the same program and input is another job: lifted receipts cannot assemble it.
    let composite = run_job_on(dir.path(), &[Misbehave::Honest], true, 60_000, |_| {})
        .await
        .unwrap();
    assert_eq!(composite.proof.resumed_segments, 0);
}

/// A prover told to stop (SIGTERM for `cairn node`) drains: the task in hand is finished and its result
/// delivered and fetched (nothing proved is lost), new offers are declined, and the job completes on
/// another prover with no penalty for the one that left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_prover_delivers_what_it_holds_and_takes_nothing_new() {
    use std::collections::{BTreeMap, BTreeSet};
    crate::support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel::<String>();
    // (verified, segment, prover): assignments and verified results, in order.
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(bool, u32, String)>();
    let mut cfg = coordinator_config(dir.path());
    // No backup copies: the task the drained prover holds is its own to deliver, not a faster copy's.
    cfg.scheduler.speculative.enabled = false;
    let job = tokio::spawn(prove_network(
        cfg,
        backend(),
        FakeBackend::program("fake-net"),
        // ~100 segments: when A has delivered what it held, B (82 ms a proof) is still far from done, so
        // there is new work A could take if it did.
        FakeBackend::input(1_500_000, b"job"),
        move |p| match p {
            Progress::Listening(a) => {
                let _ = addr_tx.send(a[0].clone());
            }
            Progress::Assigned { segment, prover } => {
                let _ = ev_tx.send((false, segment, prover.to_string()));
            }
            Progress::Verified { segment, prover } => {
                let _ = ev_tx.send((true, segment, prover.to_string()));
            }
            _ => {}
        },
    ));
    let client_addr = tokio::time::timeout(Duration::from_secs(20), addr_rx.recv())
        .await
        .unwrap()
        .unwrap();
    // A proves alone, 1.6 s a proof, until its first result is verified and it holds the next task.
    let a = crate::support::start_prover(
        dir.path(),
        "a",
        &[&client_addr],
        crate::support::ProverOpts {
            scale: 0.2,
            ..Default::default()
        },
    );
    let mut assigned: BTreeSet<u32> = BTreeSet::new();
    let mut verified: BTreeMap<u32, String> = BTreeMap::new();
    let mut a_peer = None;
    let held = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (is_verified, segment, prover) = ev_rx.recv().await.unwrap();
            a_peer.get_or_insert(prover.clone());
            if is_verified {
                verified.insert(segment, prover);
            } else {
                assigned.insert(segment);
            }
            let pending = assigned.iter().find(|s| !verified.contains_key(s));
            if let (false, Some(&held)) = (verified.is_empty(), pending) {
                return held;
            }
        }
    })
    .await
    .expect("A proves a segment and takes the next");
    let a_peer = a_peer.unwrap();
    // The offer is on its way over loopback: let it arrive (the proof then has over a second to go), and stop A.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = a.send(());
    let before_stop = assigned.clone();
    let _b = start_prover(dir.path(), "b", &client_addr, Misbehave::Honest, false);
    let proof = tokio::time::timeout(Duration::from_secs(90), job)
        .await
        .expect("job finished in time")
        .unwrap()
        .unwrap();
    while let Ok((is_verified, segment, prover)) = ev_rx.try_recv() {
        if is_verified {
            verified.insert(segment, prover);
        }
    }
    assert_eq!(verified.len() as u32, proof.summary.segments);
    // It delivered what it held when told to stop ...
    assert_eq!(
        verified[&held], a_peer,
        "segment {held}, in A's hands when it was told to stop, was not A's result: {verified:?}"
    );
    // ... and took nothing new: every segment it proved was assigned to it before the stop.
    let by_a: BTreeSet<u32> = verified
        .iter()
        .filter(|(_, p)| **p == a_peer)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        by_a.is_subset(&before_stop),
        "A proved {by_a:?}, but held only {before_stop:?} when told to stop"
    );
    assert_eq!(proof.proved_by[&a_peer] as usize, by_a.len());
    assert_eq!(proof.proved_by.len(), 2, "{:?}", proof.proved_by);
    let ledger = ledger(dir.path());
    assert!(
        ledger.iter().all(|(_, kind, _)| kind == "reward"),
        "a drained prover is not a silent one: {ledger:?}"
    );
    assert_eq!(ledger.len() as u32, proof.summary.segments, "{ledger:?}");
}

/// Issue 13, item 3: job ids are each client's own numbers, so two clients' first jobs are both job 1. A
/// prover serving both at once keeps their tasks apart: both jobs complete, every segment proved once, and
/// nobody is penalized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_the_same_job_id_on_one_prover_both_complete() {
    crate::support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    let mut addrs = Vec::new();
    for name in ["x", "y"] {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let (addr_tx, mut addr_rx) = mpsc::unbounded_channel::<String>();
        let job = tokio::spawn(prove_network(
            coordinator_config(&sub),
            backend(),
            FakeBackend::program("fake-net"),
            FakeBackend::input(150_000, name.as_bytes()),
            move |p| {
                if let Progress::Listening(a) = p {
                    let _ = addr_tx.send(a[0].clone());
                }
            },
        ));
        addrs.push(
            tokio::time::timeout(Duration::from_secs(20), addr_rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
        jobs.push((sub, job));
    }
    let both: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let _prover = start_prover_with_slots(dir.path(), "p", &both, Misbehave::Honest, false, 2);
    for (sub, job) in jobs {
        let proof = tokio::time::timeout(Duration::from_secs(90), job)
            .await
            .expect("job finished in time")
            .unwrap()
            .unwrap();
        let db = cairn_node::jobdb::JobDb::open(&sub.join("jobs.sqlite")).unwrap();
        assert_eq!(
            proof.proved_by.values().sum::<u32>(),
            proof.summary.segments
        );
        let ledger = db.ledger().unwrap();
        assert!(
            ledger.iter().all(|(_, kind, _)| kind == "reward"),
            "{ledger:?}"
        );
        backend()
            .verify_receipt(&proof.receipt, &proof.summary.image_id)
            .unwrap();
    }
}
