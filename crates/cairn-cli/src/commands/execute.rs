//! `cairn execute`: run once, count, and show how segment size inflates the work.

use std::process::ExitCode;
use std::time::Instant;

use cairn_backend::{ProvingBackend, MAX_PO2, MIN_PO2};
use cairn_risc0::RiscZeroBackend;

use super::program;
use crate::cli::ExecuteArgs;

pub fn run(args: &ExecuteArgs) -> anyhow::Result<ExitCode> {
    let prog = program::resolve(&args.program)?;
    let po2 = args.po2.fixed_or("cairn execute", 18);
    let backend = RiscZeroBackend::new();
    let t = Instant::now();
    let summary = backend.execute(&prog.binary, &prog.input, po2, &mut |_| Ok(()))?;
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
        println!();
        println!(
            "{:>4} {:>9} {:>14} {:>10}",
            "po2", "segments", "total cycles", "inflation"
        );
        let rows: Vec<_> = (MIN_PO2..=MAX_PO2)
            .map(|po2| {
                backend
                    .execute(&prog.binary, &prog.input, po2, &mut |_| Ok(()))
                    .map(|s| (po2, s))
            })
            .collect::<Result<_, _>>()?;
        let base = rows.last().map(|(_, s)| s.total_cycles).unwrap_or(1) as f64;
        for (po2, s) in rows {
            println!(
                "{po2:>4} {:>9} {:>14} {:>9.2}x",
                s.segments,
                s.total_cycles,
                s.total_cycles as f64 / base
            );
        }
        println!("(inflation relative to po2 {MAX_PO2}, as in the seed's Table 2; po2 15 is inflated by RISC Zero's");
        println!(" 25,000-cycle reserve per segment from po2 15 up, which leaves 3,655 usable cycles at po2 15)");
    }
    Ok(ExitCode::SUCCESS)
}
