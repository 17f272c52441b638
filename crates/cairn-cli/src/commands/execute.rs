//! `cairn execute`: run once, count, and show how segment size inflates the work.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cairn_backend::{ProvingBackend, MAX_PO2, MIN_PO2};
use cairn_risc0::RiscZeroBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::program;
use crate::cli::ExecuteArgs;

/// The size `--sweep` leaves out unless `--sweep-po2-15` asks for it (see `cairn_backend::cost::usable_cycles`).
const SLOW_PO2: u8 = 15;

/// A spinner on stderr (drawn only on a terminal) counting an execution's segments as they are made: a long
/// execution shows that it is going and how far.
fn progress(po2: u8) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} executing at po2 {prefix}: {pos} segments, {elapsed}",
        )
        .expect("template"),
    );
    bar.set_prefix(po2.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

pub fn run(args: &ExecuteArgs) -> anyhow::Result<ExitCode> {
    let prog = program::resolve(&args.program)?;
    let po2 = args.po2.fixed_or("cairn execute", 18);
    let backend = RiscZeroBackend::new();
    let t = Instant::now();
    let bar = progress(po2);
    let summary = backend.execute(&prog.binary, &prog.input, po2, &mut |_| {
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    let summary = summary?;
    // Segments by size: the last one of a run is usually smaller than the po2 asked for.
    let mut sizes = std::collections::BTreeMap::<u8, u32>::new();
    for c in &summary.claims {
        *sizes.entry(c.po2).or_default() += 1;
    }
    let last_po2 = summary.claims.last().map_or(po2, |c| c.po2);
    println!("program     {}", prog.name);
    println!("image id    {}", summary.image_id);
    println!("exit        {}", summary.exit_code);
    println!("user cycles {}", summary.user_cycles);
    println!("po2         {}", summary.po2);
    println!("segments    {}", summary.segments);
    println!(
        "sizes       {} (last segment: po2 {last_po2})",
        sizes
            .iter()
            .map(|(po2, n)| format!("{n} x po2 {po2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "total cycles {} (with paging and padding)",
        summary.total_cycles
    );
    println!(
        "journal     {} ({} bytes)",
        hex::encode(&summary.journal),
        summary.journal.len()
    );
    if let Some(text) = prog
        .guest
        .and_then(|g| cairn_guests::describe_journal(&g, &summary.journal))
    {
        println!("{text}");
    }
    println!("executed in {:.2} s", t.elapsed().as_secs_f64());
    if let Some(w) = super::po2_warning(po2, Some((summary.user_cycles, summary.total_cycles))) {
        eprintln!("{w}");
    }
    if args.sweep {
        sweep(args, &prog)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--sweep`: the program at every size, each row printed as its execution ends. The largest size runs first:
/// inflation is relative to it.
fn sweep(args: &ExecuteArgs, prog: &program::Resolved) -> anyhow::Result<()> {
    let run = |po2: u8| {
        let bar = progress(po2);
        let stats =
            cairn_risc0::execute_stats_with_progress(&prog.binary, &prog.input, po2, &mut |n| {
                bar.set_position(u64::from(n))
            });
        bar.finish_and_clear();
        stats
    };
    println!();
    println!(
        "{:>4} {:>9} {:>14} {:>10}",
        "po2", "segments", "total cycles", "inflation"
    );
    let base = run(MAX_PO2)?;
    let row = |po2: u8, s: &cairn_risc0::ExecutionStats| {
        println!(
            "{po2:>4} {:>9} {:>14} {:>9.2}x",
            s.segments,
            s.total_cycles,
            s.total_cycles as f64 / base.total_cycles.max(1) as f64
        );
    };
    for po2 in MIN_PO2..MAX_PO2 {
        if po2 == SLOW_PO2 && !args.sweep_po2_15 {
            println!(
                "{po2:>4}   (left out: add --sweep-po2-15; it can take many minutes, see below)"
            );
            continue;
        }
        row(po2, &run(po2)?);
    }
    row(MAX_PO2, &base);
    println!("(inflation relative to po2 {MAX_PO2}, as in the seed's Table 2; po2 15 is inflated by RISC Zero's");
    println!(" 25,000-cycle reserve per segment from po2 15 up, which leaves 3,655 usable cycles at po2 15:");
    println!(" seed-bench makes 523,374 po2 15 segments, 14 minutes of execution on 2 cores)");
    Ok(())
}
