//! `cairn bench segments`: the seed's Tables 1 and 2 measured on this machine, and the local pipeline against
//! RISC Zero's own prover on the same program.

use std::fmt::Write as _;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use cairn_backend::local::{prove_local, LocalOptions};
use cairn_backend::{check_po2, ProvingBackend, MAX_PO2};
use cairn_risc0::RiscZeroBackend;
use serde::{Deserialize, Serialize};

use crate::cli::{BenchCommand, BenchDevnetArgs, BenchSegmentsArgs};

/// The seed's Table 2 (risc0 1.0.1, i7-5500U): po2, segments, inflation over po2 22, seconds per segment,
/// segment blob bytes. Table 1 (RISC Zero 1.0 datasheet): RAM per po2.
const SEED: [(u8, u32, f64, Option<f64>, u64, u64); 8] = [
    (14, 0, 0.0, None, 0, 128_000_000),
    (15, 16_808, 6.57, Some(14.0), 19_000, 256_000_000),
    (16, 2_174, 1.70, Some(28.0), 38_000, 512_000_000),
    (17, 801, 1.25, Some(58.0), 67_000, 1_000_000_000),
    (18, 355, 1.11, Some(119.0), 133_000, 2_000_000_000),
    (19, 168, 1.05, Some(249.0), 265_000, 4_000_000_000),
    (20, 82, 1.02, Some(534.0), 529_000, 8_000_000_000),
    (21, 41, 1.01, None, 1_100_000, 16_000_000_000),
];

/// What `prove-one` reports.
#[derive(Debug, Serialize, Deserialize)]
struct ProveOne {
    secs: f64,
    peak_rss_bytes: u64,
    receipt_bytes: usize,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Segments(args) => segments(&args),
        BenchCommand::Devnet(args) => devnet(&args),
        BenchCommand::Po2Auto(args) => super::bench_po2::run(&args),
        BenchCommand::Evm(args) => super::bench_evm::run(&args),
        BenchCommand::Risc0Baseline { iterations, po2 } => {
            let input = cairn_guests::sha_chain_input(iterations, b"cairn");
            let t = Instant::now();
            let info = risc0_zkvm::get_prover_server(&risc0_zkvm::ProverOpts::default())?
                .prove(risc0_env(&input, po2)?, cairn_guests::SHA_CHAIN.binary)
                .context("risc0 prove")?;
            let out = serde_json::json!({
                "secs": t.elapsed().as_secs_f64(),
                "segments": info.stats.segments,
                "user_cycles": info.stats.user_cycles,
            });
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::ProveOne { segment } => {
            let bytes = std::fs::read(&segment)
                .with_context(|| format!("reading {}", segment.display()))?;
            let t = Instant::now();
            let receipt = RiscZeroBackend::new().prove_segment(&bytes)?;
            let out = ProveOne {
                secs: t.elapsed().as_secs_f64(),
                peak_rss_bytes: peak_rss()?,
                receipt_bytes: receipt.len(),
            };
            println!("{}", serde_json::to_string(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Peak resident set size of this process (VmHWM).
fn peak_rss() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kb * 1024)
}

fn mb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

fn kb(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.0} KB", bytes as f64 / 1e3)
    }
}

struct Row {
    po2: u8,
    segments: u32,
    total_cycles: u64,
    /// Execution stopped at the segment cap: segments and cycles are lower bounds.
    capped: bool,
    blob_bytes: u64,
    proofs: Vec<ProveOne>,
}

fn segments(args: &BenchSegmentsArgs) -> anyhow::Result<ExitCode> {
    check_po2(args.po2_min)?;
    check_po2(args.po2_max)?;
    if args.po2_min > args.po2_max {
        bail!("--po2-min must not exceed --po2-max");
    }
    let backend = RiscZeroBackend::new();
    let guest = cairn_guests::SEED_BENCH;
    let input = cairn_guests::seed_bench_input(args.words);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let tmp = std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;

    eprintln!("executing seed-bench at po2 {MAX_PO2} for the reference cycle count...");
    let reference = backend.execute(guest.binary, &input, MAX_PO2, &mut |_| Ok(()))?;
    let mut rows = Vec::new();
    for po2 in args.po2_min..=args.po2_max {
        eprintln!("po2 {po2}: executing...");
        let mut sampled = Vec::new();
        let mut blob_bytes = 0u64;
        let mut count = 0u32;
        let executed = backend.execute(guest.binary, &input, po2, &mut |blob| {
            count += 1;
            blob_bytes += blob.bytes.len() as u64;
            if sampled.len() < args.samples && blob.claim.po2 == po2 {
                sampled.push(blob);
            }
            if count >= args.max_segments {
                return Err(cairn_backend::BackendError::Execution(
                    "segment cap reached".into(),
                ));
            }
            Ok(())
        });
        let (segments, total_cycles, capped) = match executed {
            Ok(s) => (s.segments, s.total_cycles, false),
            Err(_) if count >= args.max_segments => (count, u64::from(count) << po2, true),
            Err(e) => return Err(e.into()),
        };
        let mut proofs = Vec::new();
        for blob in sampled {
            eprintln!(
                "po2 {po2}: proving segment {} in a child process...",
                blob.claim.index
            );
            let path = tmp.join(format!("segment-{po2}-{}.bin", blob.claim.index));
            std::fs::write(&path, &blob.bytes)?;
            let out = Command::new(&exe)
                .args(["bench", "prove-one"])
                .arg(&path)
                .output()?;
            if !out.status.success() {
                bail!(
                    "proving a po2 {po2} segment failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            proofs.push(
                serde_json::from_slice::<ProveOne>(&out.stdout)
                    .context("reading prove-one output")?,
            );
            std::fs::remove_file(&path)?;
        }
        rows.push(Row {
            po2,
            segments,
            total_cycles,
            capped,
            blob_bytes: blob_bytes / u64::from(segments.max(1)),
            proofs,
        });
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let mut md = String::new();
    writeln!(
        md,
        "Program: seed-bench, {} user cycles (seed: 65.6 M); machine: {cores} cores.\n",
        reference.user_cycles
    )?;
    writeln!(md, "| po2 | segments | total cycles | inflation | prove s/segment | peak RSS | receipt | segment blob | seed segments | seed inflation | seed s/segment | seed RAM (Table 1) | seed blob |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        let n = r.proofs.len().max(1) as f64;
        let secs = r.proofs.iter().map(|p| p.secs).sum::<f64>() / n;
        let rss = r.proofs.iter().map(|p| p.peak_rss_bytes).max().unwrap_or(0);
        let receipt = r
            .proofs
            .iter()
            .map(|p| p.receipt_bytes as u64)
            .max()
            .unwrap_or(0);
        let seed = SEED.iter().find(|s| s.0 == r.po2);
        let (proved, rss, receipt) = if r.proofs.is_empty() {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            (format!("{secs:.1}"), mb(rss), kb(receipt))
        };
        let over = if r.capped { "> " } else { "" };
        writeln!(
            md,
            "| {} | {over}{} | {over}{} | {over}{:.2}x | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.po2,
            r.segments,
            r.total_cycles,
            r.total_cycles as f64 / reference.total_cycles as f64,
            proved,
            rss,
            receipt,
            kb(r.blob_bytes),
            seed.filter(|s| s.1 > 0)
                .map_or("-".into(), |s| s.1.to_string()),
            seed.filter(|s| s.2 > 0.0)
                .map_or("-".into(), |s| format!("{:.2}x", s.2)),
            seed.and_then(|s| s.3)
                .map_or("-".into(), |t| format!("{t:.0}")),
            seed.map_or("-".into(), |s| mb(s.5)),
            seed.filter(|s| s.4 > 0).map_or("-".into(), |s| kb(s.4)),
        )?;
    }

    if !args.no_baseline {
        writeln!(md)?;
        md.push_str(&baseline(args, cores)?);
    }
    println!("{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The same program proved by RISC Zero's own prover (one process, all cores) and by Cairn's local pipeline.
fn baseline(args: &BenchSegmentsArgs, cores: usize) -> anyhow::Result<String> {
    let guest = cairn_guests::SHA_CHAIN;
    let input = cairn_guests::sha_chain_input(args.baseline_iterations, b"baseline");
    let po2 = args.baseline_po2;

    eprintln!(
        "baseline: risc0 prover, sha-chain x{} at po2 {po2}...",
        args.baseline_iterations
    );
    let t = Instant::now();
    let env = risc0_env(&input, po2)?;
    let info = risc0_zkvm::get_prover_server(&risc0_zkvm::ProverOpts::default())?
        .prove(env, guest.binary)
        .context("risc0 prove")?;
    let risc0_secs = t.elapsed().as_secs_f64();
    let segments = info.stats.segments;

    let backend: Arc<dyn ProvingBackend> = Arc::new(RiscZeroBackend::new());
    let mut out = String::new();
    writeln!(
        out,
        "Baseline: sha-chain, {} iterations, po2 {po2}, {segments} segments, {} user cycles.\n",
        args.baseline_iterations, info.stats.user_cycles
    )?;
    writeln!(out, "| prover | wall time | vs risc0 |")?;
    writeln!(out, "|---|---|---|")?;
    writeln!(
        out,
        "| risc0 `prove()` (one process, composite receipt) | {risc0_secs:.1} s | 1.00x |"
    )?;
    for workers in [1, cores] {
        eprintln!("baseline: Cairn local pipeline, {workers} workers...");
        let proof = prove_local(
            backend.clone(),
            guest.binary,
            &input,
            LocalOptions {
                po2,
                workers,
                succinct: false,
            },
            |_| {},
        )?;
        let t = &proof.timings;
        writeln!(
            out,
            "| Cairn `prove --local`, {workers} worker(s) (execute {:.1} s, verify {:.1} s, assemble {:.1} s) | {:.1} s | {:.2}x |",
            t.execute_secs,
            t.verify_secs,
            t.aggregate_secs,
            t.total_secs,
            t.total_secs / risc0_secs
        )?;
    }
    Ok(out)
}

fn risc0_env(input: &[u8], po2: u8) -> anyhow::Result<risc0_zkvm::ExecutorEnv<'static>> {
    risc0_zkvm::ExecutorEnv::builder()
        .write_slice(input)
        .segment_limit_po2(u32::from(po2))
        .build()
}

fn child_json(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Devnet of N single-threaded provers vs risc0's prover on one thread, same program; `--runs` devnet runs,
/// each against the critical-path bound from its own provers' timings.
fn devnet(args: &BenchDevnetArgs) -> anyhow::Result<ExitCode> {
    let po2n = args.po2.fixed_or("cairn bench devnet", 14);
    check_po2(po2n)?;
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let dir = std::env::temp_dir().join(format!("cairn-bench-devnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (iters, po2) = (args.iterations.to_string(), po2n.to_string());

    eprintln!("bench: risc0 prove(), one thread...");
    let base = child_json(
        Command::new(&exe)
            .args([
                "bench",
                "risc0-baseline",
                "--iterations",
                &iters,
                "--po2",
                &po2,
            ])
            .env("RAYON_NUM_THREADS", "1"),
    )?;
    let base_secs = base["secs"].as_f64().context("baseline time")?;

    eprintln!("bench: one segment, one thread...");
    let input = cairn_guests::sha_chain_input(args.iterations, b"cairn");
    let mut first = None;
    RiscZeroBackend::new().execute(cairn_guests::SHA_CHAIN.binary, &input, po2n, &mut |b| {
        if first.is_none() {
            first = Some(b.bytes);
        }
        Ok(())
    })?;
    let seg_path = dir.join("segment.bin");
    std::fs::write(&seg_path, first.context("no segment")?)?;
    let one = child_json(
        Command::new(&exe)
            .args(["bench", "prove-one"])
            .arg(&seg_path)
            .env("RAYON_NUM_THREADS", "1"),
    )?;
    let t_seg = one["secs"].as_f64().context("segment time")?;

    let mut runs = Vec::new();
    for run in 1..=args.runs.max(1) {
        eprintln!(
            "bench: devnet, {} single-threaded provers (run {run} of {})...",
            args.nodes,
            args.runs.max(1)
        );
        runs.push(devnet_run(&exe, &dir, args, &iters, &po2, t_seg)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let md = devnet_report(args, po2n, cores, base_secs, t_seg, &runs)?;
    println!("{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One devnet run, as its client reported it.
struct DevnetRun {
    segments: u64,
    /// Client start to verified receipt.
    client_secs: f64,
    /// The whole command: nodes start, prove, verify, stop.
    wall_secs: f64,
    execute: f64,
    assemble: f64,
    /// Per segment: first offer to verified result.
    latency: Vec<f64>,
    /// Per segment: the proving time its prover reported for it.
    prove: Vec<f64>,
}

impl DevnetRun {
    /// The job's critical path with `nodes` provers, from the provers' own timings of the segments they
    /// proved in this run: execute + the longer of the slowest segment and an even share of all proving +
    /// assemble. No schedule of these proofs on these nodes can finish sooner.
    fn bound(&self, nodes: usize) -> f64 {
        let slowest = self.prove.iter().copied().fold(0.0, f64::max);
        let share = self.prove.iter().sum::<f64>() / nodes.max(1) as f64;
        self.execute + slowest.max(share) + self.assemble
    }
    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }
}

fn devnet_run(
    exe: &std::path::Path,
    dir: &std::path::Path,
    args: &BenchDevnetArgs,
    iters: &str,
    po2: &str,
    t_seg: f64,
) -> anyhow::Result<DevnetRun> {
    let receipt = dir.join("devnet/receipt.bin");
    let _ = std::fs::remove_dir_all(dir.join("devnet"));
    let t = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.args([
        "devnet",
        "--threads-per-node",
        "1",
        "--program",
        "sha-chain",
        "--iterations",
        iters,
        "--po2",
        po2,
    ])
    .arg("--nodes")
    .arg(args.nodes.to_string())
    .arg("--out")
    .arg(&receipt)
    .stdout(std::process::Stdio::null());
    if args.pin_cores {
        cmd.arg("--pin-cores");
    }
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "the devnet run failed");
    let wall_secs = t.elapsed().as_secs_f64();
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(receipt.with_extension("json"))?)?;
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        match v {
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_f64()).collect(),
            serde_json::Value::Object(o) => o.values().filter_map(|v| v.as_f64()).collect(),
            _ => Vec::new(),
        }
    };
    let mut prove = floats(&s["segment_prove_secs"]);
    let segments = s["segments"].as_u64().unwrap_or(0);
    if prove.is_empty() {
        // Provers that do not report their proving time: the separately measured sample stands in.
        prove = vec![t_seg; segments as usize];
    }
    Ok(DevnetRun {
        segments,
        client_secs: s["total_secs"].as_f64().unwrap_or(0.0),
        wall_secs,
        execute: s["execute_secs"].as_f64().unwrap_or(0.0),
        assemble: s["assemble_secs"].as_f64().unwrap_or(0.0),
        latency: floats(&s["segment_latency_secs"]),
        prove,
    })
}

fn devnet_report(
    args: &BenchDevnetArgs,
    po2: u8,
    cores: usize,
    base_secs: f64,
    t_seg: f64,
    runs: &[DevnetRun],
) -> anyhow::Result<String> {
    let n = args.nodes;
    let mut md = String::new();
    let segments = runs.first().map_or(0, |r| r.segments);
    writeln!(md, "sha-chain x{}, po2 {}, {segments} segments; {n} provers x 1 thread; machine: {cores} cores; {} run(s).\n", args.iterations, po2, runs.len())?;
    writeln!(md, "risc0 `prove()`, 1 thread, whole program: **{base_secs:.1} s**. One segment proved alone, 1 thread: {t_seg:.1} s.\n")?;
    writeln!(md, "| run | client start to verified receipt | whole command | speedup over risc0 | provers' proving, per segment (min-max) | latency per segment, mean | overhead per segment (latency - own proof) | execute / assemble | bound: execute + max(slowest, all/{n}) + assemble | devnet / bound |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for (i, r) in runs.iter().enumerate() {
        let (lo, hi) = r
            .prove
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
        let (lat, own) = (DevnetRun::mean(&r.latency), DevnetRun::mean(&r.prove));
        let bound = r.bound(n);
        writeln!(
            md,
            "| {} | {:.1} s | {:.1} s | {:.2}x | {lo:.1}-{hi:.1} s | {lat:.1} s | {:.1} s ({:.0}%) | {:.1} / {:.1} s | {bound:.1} s | {:.2}x |",
            i + 1,
            r.client_secs,
            r.wall_secs,
            base_secs / r.client_secs,
            lat - own,
            100.0 * (lat - own) / own.max(1e-9),
            r.execute,
            r.assemble,
            r.client_secs / bound
        )?;
    }
    if runs.len() > 1 {
        let spread = |f: &dyn Fn(&DevnetRun) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2], v[v.len() - 1])
        };
        let (a, b, c) = spread(&|r| r.client_secs);
        let (d, e, f) = spread(&|r| r.client_secs / r.bound(n));
        writeln!(md, "\nOver {} runs: client time {a:.1} / {b:.1} / {c:.1} s (min / median / max); devnet over its bound {d:.2} / {e:.2} / {f:.2}x.", runs.len())?;
    }
    Ok(md)
}
