//! `cairn bench evm`: cycles per gas of EVM blocks in the zkVM, measured by execution.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use cairn_evm::gen::{generate, parse_gas, GenConfig, Kind, Mix};
use cairn_evm::{Commitment, Signatures};

use crate::cli::BenchEvmArgs;

/// Published figures (user cycles per gas, RISC Zero 3.0.x), from ../shared/reference/evm-in-risc0.md.
const PUBLISHED: &str = "published (RISC Zero 3.0.x, user cycles per gas): reth guest with all accelerators \
incl. keccak ~28 (mainnet median); ethrex without the keccak accelerator ~157; blocks of plain ETH transfers \
16-19 (accelerated) and 38-47 (not).";

struct Row {
    label: String,
    gas: u64,
    txs: usize,
    user_cycles: u64,
    phases: BTreeMap<String, u64>,
    per_po2: Vec<(u8, u64, u32, f64)>, // po2, total cycles, segments, executor seconds
}

fn phases(stderr: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cairn-evm phase ")?;
            let (name, cycles) = rest.split_once(" cycles ")?;
            Some((name.to_string(), cycles.trim().parse().ok()?))
        })
        .collect()
}

pub fn run(args: &BenchEvmArgs) -> anyhow::Result<ExitCode> {
    let program = cairn_guests::EVM_BLOCK.binary;
    let mut configs: Vec<(String, GenConfig)> = Vec::new();
    for gas in &args.gas {
        let gas = parse_gas(gas).map_err(anyhow::Error::msg)?;
        for kind in &args.kinds {
            let mix = Mix::parse(kind).map_err(anyhow::Error::msg)?;
            configs.push((
                kind.clone(),
                GenConfig {
                    gas,
                    mix,
                    ..GenConfig::default()
                },
            ));
        }
    }
    if args.modes {
        let gas = configs
            .iter()
            .map(|(_, c)| c.gas)
            .min()
            .context("no gas sizes")?;
        let base = GenConfig {
            gas,
            mix: Mix::default(),
            ..GenConfig::default()
        };
        configs.push((
            "mix+mpt".into(),
            GenConfig {
                commitment: Commitment::MerklePatricia,
                ..base.clone()
            },
        ));
        configs.push((
            "eth+signed".into(),
            GenConfig {
                signatures: Signatures::Checked,
                mix: Mix::only(Kind::Eth),
                ..base
            },
        ));
    }
    println!("{PUBLISHED}");
    println!("(each block is generated, then executed in RISC Zero's executor once per po2; nothing is proved)");
    let mut rows = Vec::new();
    for (label, cfg) in &configs {
        let g = generate(cfg)?;
        let input = g.input.encode();
        let expected = g.journal.to_bytes();
        let mut row = Row {
            label: label.clone(),
            gas: g.journal.gas_used,
            txs: g.input.txs.len(),
            user_cycles: 0,
            phases: BTreeMap::new(),
            per_po2: Vec::new(),
        };
        // Every po2 for the mix (paging inflation per segment size); the largest alone for single kinds and
        // the modes (cycles per gas barely depend on it), which keeps a 30 M-gas run to minutes.
        let largest = args.po2.iter().copied().max().unwrap_or(20);
        let po2s: Vec<u8> = if label == "mix" {
            args.po2.clone()
        } else {
            vec![largest]
        };
        for &po2 in &po2s {
            let t = Instant::now();
            let stats = cairn_risc0::execute_stats(program, &input, po2)
                .with_context(|| format!("executing the {label} block at po2 {po2}"))?;
            if stats.journal != expected {
                bail!("the {label} block's journal in the zkVM differs from the host's execution");
            }
            row.user_cycles = stats.user_cycles;
            row.phases = phases(&stats.stderr);
            row.per_po2.push((
                po2,
                stats.total_cycles,
                stats.segments,
                t.elapsed().as_secs_f64(),
            ));
        }
        print_row(&row);
        rows.push(row);
    }
    if args.prove_sample > 0 {
        let (label, cfg) = configs
            .iter()
            .filter(|(l, _)| l == "mix")
            .max_by_key(|(_, c)| c.gas)
            .or_else(|| configs.iter().max_by_key(|(_, c)| c.gas))
            .context("no block to sample")?;
        prove_sample(label, cfg, args.sample_po2, args.prove_sample)?;
    }
    if let Some(path) = &args.csv {
        let mut csv = String::from("block,gas,txs,user_cycles,user_cycles_per_gas,decode,pre_state,execute,post_state,po2,total_cycles,segments,inflation,exec_seconds,exec_mhz\n");
        for r in &rows {
            for (po2, total, segments, secs) in &r.per_po2 {
                let p = |k: &str| r.phases.get(k).copied().unwrap_or(0);
                writeln!(
                    csv,
                    "{},{},{},{},{:.1},{},{},{},{},{po2},{total},{segments},{:.3},{secs:.2},{:.2}",
                    r.label,
                    r.gas,
                    r.txs,
                    r.user_cycles,
                    r.user_cycles as f64 / r.gas as f64,
                    p("decode"),
                    p("pre-state"),
                    p("execute"),
                    p("post-state"),
                    *total as f64 / r.user_cycles as f64,
                    *total as f64 / secs / 1e6
                )?;
            }
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
        println!("CSV written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Proves `count` evenly spaced segments of the block and extrapolates proving time per million gas.
fn prove_sample(label: &str, cfg: &GenConfig, po2: u8, count: usize) -> anyhow::Result<()> {
    use cairn_backend::ProvingBackend;
    let g = generate(cfg)?;
    let input = g.input.encode();
    let backend = cairn_risc0::RiscZeroBackend::new();
    let first = cairn_risc0::execute_stats(cairn_guests::EVM_BLOCK.binary, &input, po2)?;
    let stride = (first.segments as usize / count).max(1);
    let mut kept = Vec::new();
    let mut index = 0usize;
    backend.execute(cairn_guests::EVM_BLOCK.binary, &input, po2, &mut |blob| {
        if index % stride == stride / 2 && kept.len() < count {
            kept.push(blob.bytes);
        }
        index += 1;
        Ok(())
    })?;
    println!(
        "\nproving {} of the {} po2 {po2} segments of the {label} block ({} gas) on this machine:",
        kept.len(),
        first.segments,
        g.journal.gas_used
    );
    let mut secs = Vec::new();
    for bytes in &kept {
        let t = Instant::now();
        backend.prove_segment(bytes)?;
        secs.push(t.elapsed().as_secs_f64());
        println!("  segment proved in {:.1} s", secs.last().unwrap());
    }
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    let total = mean * f64::from(first.segments);
    println!(
        "  mean {mean:.1} s per segment: the whole block is {:.0} s of proving here ({:.0} s per million gas), \
         which {} provers like this one do in ~{:.0} s plus aggregation",
        total,
        total / (g.journal.gas_used as f64 / 1e6),
        first.segments,
        mean
    );
    Ok(())
}

fn print_row(r: &Row) {
    let per_gas = r.user_cycles as f64 / r.gas as f64;
    let exec = r.phases.get("execute").copied().unwrap_or(0);
    let share = |k: &str| {
        100.0 * r.phases.get(k).copied().unwrap_or(0) as f64 / r.user_cycles.max(1) as f64
    };
    println!(
        "\n{:<11} {:>11} gas {:>6} txs  user cycles {:>13}  {:>6.1} cycles/gas  ({:.1} in execution alone)",
        r.label,
        r.gas,
        r.txs,
        r.user_cycles,
        per_gas,
        exec as f64 / r.gas as f64
    );
    println!(
        "            stages: decode {:.1} %, pre-state commitment {:.1} %, execute {:.1} %, post-state commitment {:.1} %",
        share("decode"),
        share("pre-state"),
        share("execute"),
        share("post-state")
    );
    for (po2, total, segments, secs) in &r.per_po2 {
        println!(
            "            po2 {po2}: {total:>13} total cycles, {segments:>5} segments, inflation {:.3}, executor {:.1} s ({:.1} MHz)",
            *total as f64 / r.user_cycles as f64,
            secs,
            *total as f64 / secs / 1e6
        );
    }
}
