//! `cairn prove --local`: execute, prove segments on worker threads, verify each, assemble, write.

use std::process::ExitCode;
use std::sync::Arc;

use cairn_backend::fake::FakeBackend;
use cairn_backend::local::{prove_local, LocalEvent, LocalOptions, LocalTimings};
use cairn_backend::ProvingBackend;
use cairn_risc0::RiscZeroBackend;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::outputs::{check_reference, write_outputs};
use super::program;
use crate::cli::{BackendKind, ProveArgs};

/// The JSON summary written next to the receipt.
#[derive(Debug, Serialize)]
pub struct ProofSummary {
    pub program: String,
    pub image_id: String,
    pub backend: &'static str,
    pub receipt: String,
    pub receipt_kind: &'static str,
    pub receipt_bytes: usize,
    pub po2: u8,
    pub segments: u32,
    pub user_cycles: u64,
    pub total_cycles: u64,
    pub journal_hex: String,
    pub workers: usize,
    pub timings: LocalTimings,
}

pub fn run(args: &ProveArgs) -> anyhow::Result<ExitCode> {
    let po2 = args.po2.fixed("cairn prove --local")?;
    let prog = program::resolve(&args.program)?;
    let (backend, binary): (Arc<dyn ProvingBackend>, Vec<u8>) = match args.backend {
        BackendKind::Risc0 => (Arc::new(RiscZeroBackend::new()), prog.binary.clone()),
        BackendKind::Fake => {
            eprintln!(
                "note: the fake backend is a test double; its receipt is NOT a RISC Zero receipt"
            );
            (
                Arc::new(FakeBackend::new(0.001)),
                FakeBackend::program(&prog.name),
            )
        }
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let multi = MultiProgress::with_draw_target(if args.no_progress {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let exec_bar = multi.add(ProgressBar::new_spinner());
    exec_bar
        .set_style(ProgressStyle::with_template("{spinner} execute   {msg}").expect("template"));
    exec_bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let prove_bar = multi.add(ProgressBar::new(0));
    prove_bar.set_style(
        ProgressStyle::with_template(
            "  prove     [{bar:30}] {pos}/{len} segments, {elapsed} {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let mut executed = 0u64;
    let proof = prove_local(
        backend.clone(),
        &binary,
        &prog.input,
        LocalOptions {
            po2,
            workers,
            succinct: args.succinct,
        },
        |event| match event {
            LocalEvent::SegmentExecuted(_) => {
                executed += 1;
                exec_bar.set_message(format!("{executed} segments"));
                prove_bar.set_length(executed);
            }
            LocalEvent::ExecutionFinished {
                segments,
                user_cycles,
                total_cycles,
            } => {
                if let Some(w) = super::po2_warning(po2, Some((user_cycles, total_cycles))) {
                    multi.suspend(|| eprintln!("{w}"));
                }
                exec_bar.finish_with_message(format!(
                    "{segments} segments, {user_cycles} user cycles, {total_cycles} total"
                ));
                prove_bar.set_length(u64::from(segments));
            }
            LocalEvent::SegmentProved { index, prove_time } => {
                prove_bar.inc(1);
                prove_bar.set_message(format!(
                    "(segment {index} took {:.1} s, verified)",
                    prove_time.as_secs_f64()
                ));
            }
            LocalEvent::Aggregating => {
                prove_bar.finish_with_message("all verified");
            }
        },
    );
    exec_bar.finish_and_clear();
    let proof = proof?;

    // Check the final receipt once more as a verifier would, and the journal against the host reference.
    let journal = backend.verify_receipt(&proof.receipt, &proof.summary.image_id)?;
    // The host reference describes the real guest; the fake backend's journal is a stand-in.
    if args.backend == BackendKind::Risc0 {
        check_reference(&prog, &journal)?;
    }

    let summary = ProofSummary {
        program: prog.name.clone(),
        image_id: proof.summary.image_id.to_string(),
        backend: backend.name(),
        receipt: args.out.display().to_string(),
        receipt_kind: proof.kind,
        receipt_bytes: proof.receipt.len(),
        po2: proof.summary.po2,
        segments: proof.summary.segments,
        user_cycles: proof.summary.user_cycles,
        total_cycles: proof.summary.total_cycles,
        journal_hex: hex::encode(&journal),
        workers,
        timings: proof.timings.clone(),
    };
    let summary_path = write_outputs(&args.out, &proof.receipt, &summary)?;

    println!("verified {} receipt for {}", proof.kind, prog.name);
    println!("  image id  {}", proof.summary.image_id);
    println!(
        "  segments  {} at po2 {} ({} user cycles)",
        proof.summary.segments, po2, proof.summary.user_cycles
    );
    println!("  journal   {}", hex::encode(&journal));
    println!(
        "  time      {:.1} s total (execute {:.1} s, prove+verify {:.1} s, aggregate {:.1} s) on {workers} workers",
        proof.timings.total_secs, proof.timings.execute_secs, proof.timings.prove_secs, proof.timings.aggregate_secs
    );
    println!(
        "  receipt   {} ({} bytes)",
        args.out.display(),
        proof.receipt.len()
    );
    println!("  summary   {}", summary_path.display());
    Ok(ExitCode::SUCCESS)
}
