//! `cairn prove --network`: prove with the provers of a Cairn network.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;
use cairn_node::coordinator::{prove_network, AutoPo2, CoordinatorConfig, Progress};
use cairn_node::lock::ProcessLock;
use cairn_risc0::RiscZeroBackend;
use cairn_scheduler::SchedulerConfig;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::node::parse_addrs;
use super::outputs::{check_reference, write_outputs};
use super::program;
use crate::cli::{AggregationArg, BackendKind, NetworkClientArgs, Po2Arg, ProveArgs};
use cairn_scheduler::Aggregation;

/// One client per data directory (its peer identity and blob store) and per job database, held until the
/// process exits: two clients on either would run as one peer and fight over the same jobs.
pub(crate) fn lock_client(n: &NetworkClientArgs) -> anyhow::Result<[ProcessLock; 2]> {
    Ok([
        ProcessLock::dir(&n.data_dir, "the client's data directory", "--data-dir")?,
        ProcessLock::file(&n.db, "the job database", "--db")?,
    ])
}

#[derive(Debug, Serialize)]
struct NetworkSummary {
    program: String,
    image_id: String,
    backend: &'static str,
    receipt: String,
    receipt_bytes: usize,
    po2: u8,
    segments: u32,
    user_cycles: u64,
    total_cycles: u64,
    journal_hex: String,
    resumed_segments: u32,
    proved_by: std::collections::BTreeMap<String, u32>,
    execute_secs: f64,
    segment_latency_secs: Vec<f64>,
    /// The proving time each segment's prover reported (by segment index).
    segment_prove_secs: std::collections::BTreeMap<u32, f64>,
    assemble_secs: f64,
    total_secs: f64,
    aggregation: &'static str,
    joins_verified: u32,
    /// `--po2 auto`: the choice, with the predicted time of every candidate (`total_secs` is the measured one).
    po2_choice: Option<cairn_node::coordinator::Po2Choice>,
}

pub fn run(args: &ProveArgs) -> anyhow::Result<ExitCode> {
    let _locks = lock_client(&args.net)?;
    let prog = program::resolve(&args.program)?;
    let (backend, binary): (Arc<dyn ProvingBackend>, Vec<u8>) = match args.backend {
        BackendKind::Risc0 => (Arc::new(RiscZeroBackend::new()), prog.binary.clone()),
        BackendKind::Fake => (
            Arc::new(FakeBackend::new(0.001)),
            FakeBackend::program(&prog.name),
        ),
    };
    let n = &args.net;
    let net = net_config(n)?;
    let scheduler = scheduler_config(n);
    let (po2, aggregation, auto) = job_size(n, args.po2, &*backend)?;
    let cfg = CoordinatorConfig {
        net,
        db_path: n.db.clone(),
        po2,
        auto,
        redundancy: n.redundancy,
        max_attempts: n.max_attempts,
        task_slack: Duration::from_secs(n.task_slack_secs),
        policy: n.policy.clone(),
        scheduler,
        status_addr: n.status_addr,
        job_timeout: Duration::from_secs(n.job_timeout_secs),
        aggregation,
    };

    let multi = MultiProgress::with_draw_target(if args.no_progress {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let exec = multi.add(ProgressBar::new_spinner());
    exec.set_style(ProgressStyle::with_template("{spinner} execute  {msg}").expect("template"));
    let prove = multi.add(ProgressBar::new(0));
    prove.set_style(
        ProgressStyle::with_template("  verified [{bar:30}] {pos}/{len} segments, {elapsed} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut executed = 0u64;
    let mut provers = 0usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let proof = rt.block_on(prove_network(
        cfg,
        backend.clone(),
        binary,
        prog.input.clone(),
        |p| match p {
            Progress::Listening(addrs) => {
                multi.suspend(|| eprintln!("client listening on {}", addrs.join(", ")))
            }
            Progress::Po2Chosen(choice) => multi.suspend(|| eprintln!("{}", choice.table())),
            Progress::StatusServer(addr) => multi.suspend(|| {
                eprintln!("status: http://{addr}/status  metrics: http://{addr}/metrics")
            }),
            Progress::Resumed { verified } => {
                multi.suspend(|| {
                    eprintln!(
                        "resuming: {verified} segments already verified will not be proved again"
                    )
                });
                prove.inc(u64::from(verified));
            }
            Progress::Restarted { dropped } => multi.suspend(|| {
            eprintln!("the previous run stopped during execution: starting over ({dropped} verified segments of it cannot be reused)")
        }),
        Progress::SegmentExecuted(_) => {
                executed += 1;
                exec.set_message(format!("{executed} segments"));
                prove.set_length(executed);
            }
            Progress::ExecutionFinished { segments } => {
                exec.finish_with_message(format!("{segments} segments"));
                prove.set_length(u64::from(segments));
            }
            Progress::ProverJoined(_) => {
                provers += 1;
                prove.set_message(format!("({provers} provers)"));
            }
            Progress::Verified { .. } => prove.inc(1),
            Progress::Rejected {
                segment,
                prover,
                reason,
            } => {
                multi.suspend(|| eprintln!("rejected segment {segment} from {prover}: {reason}"));
            }
            Progress::Assigned { .. } => {}
            Progress::Aggregating => prove.finish_with_message("all verified; assembling"),
        },
    ))?;
    exec.finish_and_clear();

    let journal = backend.verify_receipt(&proof.receipt, &proof.summary.image_id)?;
    // The host reference describes the real guest; the fake backend's journal is a stand-in.
    if args.backend == BackendKind::Risc0 {
        check_reference(&prog, &journal)?;
    }
    let summary = NetworkSummary {
        program: prog.name.clone(),
        image_id: proof.summary.image_id.to_string(),
        backend: backend.name(),
        receipt: args.out.display().to_string(),
        receipt_bytes: proof.receipt.len(),
        po2: proof.summary.po2,
        segments: proof.summary.segments,
        user_cycles: proof.summary.user_cycles,
        total_cycles: proof.summary.total_cycles,
        journal_hex: hex::encode(&journal),
        resumed_segments: proof.resumed_segments,
        proved_by: proof.proved_by.clone(),
        execute_secs: proof.execute_secs,
        segment_latency_secs: proof.segment_latency_secs.clone(),
        segment_prove_secs: proof.segment_prove_secs.clone(),
        assemble_secs: proof.assemble_secs,
        total_secs: proof.total_secs,
        aggregation: aggregation_name(proof.aggregation),
        joins_verified: proof.joins_verified,
        po2_choice: proof.po2_choice.as_deref().cloned(),
    };
    let summary_path = write_outputs(&args.out, &proof.receipt, &summary)?;
    println!(
        "verified {} receipt for {} proved across the network",
        aggregation_name(proof.aggregation),
        prog.name
    );
    println!("  image id  {}", proof.summary.image_id);
    println!(
        "  segments  {} at po2 {} ({} resumed from an earlier run)",
        proof.summary.segments, proof.summary.po2, proof.resumed_segments
    );
    for (prover, count) in &proof.proved_by {
        println!("  prover    {prover}: {count} segments");
    }
    if proof.aggregation == Aggregation::JoinTree {
        println!(
            "  joins     {} proved by the network, each verified here",
            proof.joins_verified
        );
    }
    println!("  journal   {}", hex::encode(&journal));
    println!(
        "  time      {:.1} s total (execute {:.1} s)",
        proof.total_secs, proof.execute_secs
    );
    if let Some(c) = proof.po2_choice.as_ref().filter(|c| !c.kept) {
        println!(
            "  po2 auto  predicted {:.1} s, measured {:.1} s ({:.2}x); choosing took {:.1} s",
            c.predicted_secs,
            proof.total_secs,
            proof.total_secs / c.predicted_secs.max(1e-9),
            c.choose_secs
        );
    }
    println!(
        "  receipt   {} ({} bytes)",
        args.out.display(),
        proof.receipt.len()
    );
    println!("  summary   {}", summary_path.display());
    Ok(ExitCode::SUCCESS)
}

/// The network settings of a client (`prove --network`, `gateway`).
pub(super) fn net_config(n: &NetworkClientArgs) -> anyhow::Result<cairn_net::Config> {
    let mut net = cairn_net::Config::new(&n.data_dir, 0);
    net.listen = parse_addrs(&n.listen)?;
    net.bootstrap = parse_addrs(&n.bootstrap)?;
    net.mdns = n.mdns;
    super::node::apply_reach(&mut net, &n.reach)?;
    anyhow::ensure!(
        !net.bootstrap.is_empty() || !net.relays.is_empty() || net.mdns,
        "no way to find provers: pass --bootstrap <addr/p2p/peer-id> (see `cairn node --print-addr`), \
         --relay <relay addr/p2p/peer-id> (see `cairn relay`) or --mdns"
    );
    Ok(net)
}

pub(super) fn scheduler_config(n: &NetworkClientArgs) -> SchedulerConfig {
    let mut cfg = SchedulerConfig {
        heartbeat_timeout_ms: Some(n.heartbeat_timeout_secs * 1000),
        ..SchedulerConfig::default()
    };
    cfg.speculative.enabled = n.backups == crate::cli::OnOff::On;
    cfg
}

/// The job's po2 and aggregation from `--po2` and `--aggregation`: as given, or (`--po2 auto`) a placeholder
/// and what the service chooses among (`JobSettings::auto`). Warns about po2 15.
pub(super) fn job_size(
    n: &NetworkClientArgs,
    po2: Po2Arg,
    backend: &dyn ProvingBackend,
) -> anyhow::Result<(u8, Aggregation, Option<AutoPo2>)> {
    let aggregation = aggregation(n, backend)?;
    if let Some(mb) = n.max_receipt_mb {
        anyhow::ensure!(mb > 0.0, "--max-receipt-mb must be positive");
        if po2 != Po2Arg::Auto {
            eprintln!(
                "note: --max-receipt-mb guides --po2 auto only; with a fixed po2 the receipt's size follows from it"
            );
        }
    }
    match po2 {
        Po2Arg::Fixed(p) => {
            if let Some(w) = super::po2_warning(p, None) {
                eprintln!("{w}");
            }
            Ok((p, aggregation, None))
        }
        Po2Arg::Auto => {
            // `--aggregation auto` lets the prediction choose where recursion makes a join tree possible.
            let aggregations = match (n.aggregation, aggregation) {
                (AggregationArg::Auto, Aggregation::JoinTree) => {
                    vec![Aggregation::Composite, Aggregation::JoinTree]
                }
                (_, a) => vec![a],
            };
            let auto = AutoPo2 {
                aggregations,
                max_receipt_bytes: n.max_receipt_mb.map(|mb| (mb * 1e6) as u64),
                ..AutoPo2::default()
            };
            Ok((18, aggregation, Some(auto)))
        }
    }
}

/// `--aggregation`, checked against what this machine can finish.
pub(super) fn aggregation(
    n: &NetworkClientArgs,
    backend: &dyn ProvingBackend,
) -> anyhow::Result<Aggregation> {
    Ok(match n.aggregation {
        AggregationArg::Composite => Aggregation::Composite,
        AggregationArg::JoinTree => {
            backend.recursion_available().map_err(|e| {
                anyhow::anyhow!("--aggregation join-tree needs recursion on this machine to finish the receipt: {e}")
            })?;
            Aggregation::JoinTree
        }
        AggregationArg::Auto => match backend.recursion_available() {
            Ok(()) => Aggregation::JoinTree,
            Err(e) => {
                // Said plainly: whoever asked for the default gets a composite receipt, not a succinct one.
                eprintln!("cairn: the receipt will be composite (--aggregation auto): {e}");
                Aggregation::Composite
            }
        },
    })
}

fn aggregation_name(a: Aggregation) -> &'static str {
    match a {
        Aggregation::Composite => "composite",
        Aggregation::JoinTree => "succinct (join tree)",
    }
}
