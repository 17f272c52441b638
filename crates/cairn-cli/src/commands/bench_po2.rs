//! `cairn bench po2-auto`: `--po2 auto`'s prediction against measured devnet times. The devnet proves the same
//! program at each fixed po2 and once with `--po2 auto`; the auto run's summary carries its prediction for
//! every po2, so each fixed run's measured time stands next to what the client predicted for it, and the auto
//! run's time next to the best fixed one.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{ensure, Context};

use crate::cli::{BackendKind, BenchPo2AutoArgs};

/// What one devnet run's client reported.
struct Run {
    po2: u8,
    segments: u64,
    aggregation: String,
    /// Client start to verified receipt (after the choice, for the auto run).
    client_secs: f64,
    /// The whole devnet command.
    wall_secs: f64,
    choice: Option<serde_json::Value>,
}

pub fn run(args: &BenchPo2AutoArgs) -> anyhow::Result<ExitCode> {
    ensure!(!args.po2.is_empty(), "--po2 needs at least one size");
    for p in &args.po2 {
        cairn_backend::check_po2(*p)?;
    }
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let dir = std::env::temp_dir().join(format!("cairn-bench-po2-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut fixed = Vec::new();
    let mut auto = Vec::new();
    for round in 1..=args.runs.max(1) {
        for po2 in &args.po2 {
            eprintln!("bench: devnet at po2 {po2} (round {round})...");
            fixed.push(devnet(&exe, &dir, args, &po2.to_string())?);
        }
        eprintln!("bench: devnet at po2 auto (round {round})...");
        auto.push(devnet(&exe, &dir, args, "auto")?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let md = report(args, &fixed, &auto)?;
    println!("{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One `cairn devnet` run at `po2` ("auto" or a number). The nodes' data directories are kept between runs,
/// so every run sees the same provers with the same start-up benchmarks (the speeds the prediction uses).
fn devnet(exe: &Path, dir: &Path, args: &BenchPo2AutoArgs, po2: &str) -> anyhow::Result<Run> {
    let receipt = dir.join("receipt.bin");
    let _ = std::fs::remove_file(&receipt);
    let t = Instant::now();
    let backend = match args.backend {
        BackendKind::Risc0 => "risc0",
        BackendKind::Fake => "fake",
    };
    let status = Command::new(exe)
        .args([
            "devnet",
            "--threads-per-node",
            "1",
            "--program",
            "sha-chain",
        ])
        .arg("--iterations")
        .arg(args.iterations.to_string())
        .arg("--nodes")
        .arg(args.nodes.to_string())
        .args(["--po2", po2, "--backend", backend])
        .arg("--out")
        .arg(&receipt)
        .stdout(Stdio::null())
        .status()
        .context("starting cairn devnet")?;
    ensure!(status.success(), "the devnet run at po2 {po2} failed");
    let wall_secs = t.elapsed().as_secs_f64();
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(receipt.with_extension("json"))?)?;
    Ok(Run {
        po2: s["po2"].as_u64().context("po2 in the summary")? as u8,
        segments: s["segments"].as_u64().unwrap_or(0),
        aggregation: s["aggregation"].as_str().unwrap_or("").to_string(),
        client_secs: s["total_secs"]
            .as_f64()
            .context("total_secs in the summary")?,
        wall_secs,
        choice: Some(s["po2_choice"].clone()).filter(|c| !c.is_null()),
    })
}

/// The auto run's prediction for `po2` with the aggregation a run used.
fn predicted(choice: &serde_json::Value, po2: u8, aggregation: &str) -> Option<f64> {
    let want = if aggregation.contains("join") {
        "JoinTree"
    } else {
        "Composite"
    };
    choice["rows"].as_array()?.iter().find_map(|r| {
        (r["po2"].as_u64() == Some(u64::from(po2)) && r["aggregation"].as_str() == Some(want))
            .then(|| r["predicted_secs"].as_f64())
            .flatten()
    })
}

fn report(args: &BenchPo2AutoArgs, fixed: &[Run], auto: &[Run]) -> anyhow::Result<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut md = String::new();
    writeln!(
        md,
        "sha-chain x{}; {} provers x 1 thread; backend {:?}; machine: {cores} cores; {} round(s).\n",
        args.iterations,
        args.nodes,
        args.backend,
        auto.len()
    )?;
    writeln!(md, "| run | po2 | segments | receipt | predicted by `--po2 auto` | measured (client start to verified receipt) | measured / predicted | whole command |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for (i, a) in auto.iter().enumerate() {
        let choice = a
            .choice
            .as_ref()
            .context("the auto run reported no choice")?;
        let per_round = fixed.len() / auto.len().max(1);
        for r in fixed.iter().skip(i * per_round).take(per_round) {
            let p = predicted(choice, r.po2, &r.aggregation);
            writeln!(
                md,
                "| fixed | {} | {} | {} | {} | {:.1} s | {} | {:.1} s |",
                r.po2,
                r.segments,
                r.aggregation,
                p.map_or("-".into(), |p| format!("{p:.1} s")),
                r.client_secs,
                p.map_or("-".into(), |p| format!("{:.2}x", r.client_secs / p)),
                r.wall_secs
            )?;
        }
        let p = choice["predicted_secs"].as_f64().unwrap_or(0.0);
        let best = fixed
            .iter()
            .skip(i * per_round)
            .take(per_round)
            .map(|r| r.client_secs)
            .fold(f64::MAX, f64::min);
        writeln!(
            md,
            "| **auto** (chose {}) | {} | {} | {} | {p:.1} s | **{:.1} s** ({:.2}x the best fixed, {best:.1} s; choosing took {:.1} s more) | {:.2}x | {:.1} s |",
            a.po2,
            a.po2,
            a.segments,
            a.aggregation,
            a.client_secs,
            a.client_secs / best,
            choice["choose_secs"].as_f64().unwrap_or(0.0),
            a.client_secs / p.max(1e-9),
            a.wall_secs
        )?;
    }
    Ok(md)
}
