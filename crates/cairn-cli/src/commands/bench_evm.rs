//! `cairn bench evm`: cycles per gas of Ethereum blocks in the zkVM, by stage, measured by execution of the
//! committed `eth-block` guest: a real block (Hoodi 1,265,656 with reth's witness), Ethereum's own test blocks
//! and synthetic blocks; secp256k1 recovery on the bigint2 accelerator next to pure-Rust k256.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use cairn_evm::gen::{generate, parse_gas, GenConfig, Mix};
use cairn_evm::{host_sha256, Stage, StatelessInput};

use crate::cli::BenchEvmArgs;

/// Published figures (user cycles per gas, RISC Zero 3.0.x), from ../shared/reference/evm-in-risc0.md.
const PUBLISHED: &str = "published (RISC Zero 3.0.x, user cycles per gas): reth's guest with every accelerator \
incl. keccak ~28 (mainnet median, 500 blocks); ethrex without the keccak accelerator ~157; zeth ~812 M cycles \
for one mainnet block; blocks of plain ETH transfers 16-19 (reth, accelerated) and 38-47 (ethrex, no keccak \
accelerator).";

struct Row {
    label: String,
    gas: u64,
    txs: u32,
    user_cycles: u64,
    stages: BTreeMap<String, u64>,
    /// With the `--compare` program: (user cycles, senders stage).
    k256: Option<(u64, u64)>,
    per_po2: Vec<(u8, u64, u32, f64)>, // po2, total cycles, segments, executor seconds
    native_ms: f64,
    /// Per transaction: (gas, cycles); and the pre-execution system calls' cycles.
    txs_cost: Vec<(u64, u64)>,
    system_calls: u64,
}

/// Cycles per transaction and of the system calls, from the guest's stderr.
fn tx_cycles(stderr: &[u8]) -> (BTreeMap<usize, u64>, u64) {
    let mut txs = BTreeMap::new();
    let mut system = 0;
    for l in String::from_utf8_lossy(stderr).lines() {
        if let Some(rest) = l.strip_prefix("cairn-evm tx ") {
            if let Some((i, c)) = rest.split_once(" cycles ") {
                if let (Ok(i), Ok(c)) = (i.parse(), c.trim().parse()) {
                    txs.insert(i, c);
                }
            }
        } else if let Some(c) = l.strip_prefix("cairn-evm system-calls cycles ") {
            system = c.trim().parse().unwrap_or(0);
        }
    }
    (txs, system)
}

fn stages(stderr: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cairn-evm stage ")?;
            let (name, cycles) = rest.split_once(" cycles ")?;
            Some((name.to_string(), cycles.trim().parse().ok()?))
        })
        .collect()
}

/// The blocks to measure: (label, input).
fn blocks(args: &BenchEvmArgs) -> anyhow::Result<Vec<(String, StatelessInput)>> {
    let mut out = Vec::new();
    for path in &args.input {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        out.push((path.display().to_string(), StatelessInput::decode(&bytes)?));
    }
    let want = |name: &str| args.blocks.iter().any(|b| b == name || b == "all");
    if want("hoodi") {
        out.push((
            "hoodi-1265656".to_string(),
            cairn_evm::samples::hoodi_1265656(),
        ));
    }
    if want("tests") {
        for (name, input) in cairn_evm::samples::test_blocks() {
            out.push((format!("test:{name}"), input));
        }
    }
    if want("gen") {
        for gas in &args.gas {
            let gas = parse_gas(gas).map_err(anyhow::Error::msg)?;
            for kind in &args.kinds {
                let mix = Mix::parse(kind).map_err(anyhow::Error::msg)?;
                let g = generate(&GenConfig {
                    gas,
                    mix,
                    ..GenConfig::default()
                })?;
                out.push((format!("gen:{kind}:{gas}"), g.input));
            }
        }
    }
    Ok(out)
}

pub fn run(args: &BenchEvmArgs) -> anyhow::Result<ExitCode> {
    let program = cairn_guests::ETH_BLOCK.binary;
    println!("{PUBLISHED}");
    println!(
        "(each block is validated natively, then executed in RISC Zero's executor with the committed eth-block \
         guest once per po2; nothing is proved; keccak in software, SHA-256 and secp256k1 accelerated)"
    );
    let largest = args.po2.iter().copied().max().unwrap_or(20);
    let compare = match &args.compare {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let mut rows = Vec::new();
    for (label, input) in blocks(args)? {
        let bytes = input.encode();
        let t = Instant::now();
        let native = cairn_evm::validate_input(&input, host_sha256, &mut |_| {})
            .with_context(|| format!("the {label} block does not validate natively"))?;
        let native_ms = t.elapsed().as_secs_f64() * 1e3;
        let expected = native.journal.to_bytes();
        let mut row = Row {
            label: label.clone(),
            gas: native.journal.gas_used,
            txs: native.journal.tx_count,
            user_cycles: 0,
            stages: BTreeMap::new(),
            k256: None,
            per_po2: Vec::new(),
            native_ms,
            txs_cost: Vec::new(),
            system_calls: 0,
        };
        for &po2 in &args.po2 {
            let t = Instant::now();
            let stats = cairn_risc0::execute_stats(program, &bytes, po2)
                .with_context(|| format!("executing the {label} block at po2 {po2}"))?;
            if stats.journal != expected {
                bail!("the {label} block's journal in the zkVM differs from the host's validation");
            }
            row.user_cycles = stats.user_cycles;
            row.stages = stages(&stats.stderr);
            let (per_tx, system) = tx_cycles(&stats.stderr);
            row.system_calls = system;
            row.txs_cost = native
                .tx_gas
                .iter()
                .enumerate()
                .map(|(i, (gas, _))| (*gas, per_tx.get(&i).copied().unwrap_or(0)))
                .collect();
            row.per_po2.push((
                po2,
                stats.total_cycles,
                stats.segments,
                t.elapsed().as_secs_f64(),
            ));
        }
        if let Some(other) = compare.as_deref().filter(|_| row.txs > 0) {
            let stats = cairn_risc0::execute_stats(other, &bytes, largest)
                .with_context(|| format!("executing the {label} block with --compare"))?;
            if stats.journal != expected {
                bail!(
                    "the {label} block's journal with --compare differs from the host's validation"
                );
            }
            let senders = stages(&stats.stderr).get("senders").copied().unwrap_or(0);
            row.k256 = Some((stats.user_cycles, senders));
        }
        print_row(&row);
        rows.push(row);
    }
    if let Some(path) = &args.csv {
        let mut csv = String::from("block,gas,txs,user_cycles,user_cycles_per_gas");
        for s in Stage::ALL {
            write!(csv, ",{}", s.name().replace('-', "_"))?;
        }
        csv += ",k256_user_cycles,k256_senders,po2,total_cycles,segments,inflation,exec_seconds,exec_mhz,native_ms\n";
        for r in &rows {
            for (po2, total, segments, secs) in &r.per_po2 {
                write!(
                    csv,
                    "{},{},{},{},{:.1}",
                    r.label,
                    r.gas,
                    r.txs,
                    r.user_cycles,
                    r.user_cycles as f64 / r.gas.max(1) as f64
                )?;
                for s in Stage::ALL {
                    write!(csv, ",{}", r.stages.get(s.name()).copied().unwrap_or(0))?;
                }
                let (k, ks) = r.k256.unwrap_or((0, 0));
                writeln!(
                    csv,
                    ",{k},{ks},{po2},{total},{segments},{:.3},{secs:.2},{:.2},{:.1}",
                    *total as f64 / r.user_cycles as f64,
                    *total as f64 / secs / 1e6,
                    r.native_ms
                )?;
            }
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
        println!("CSV written to {}", path.display());
    }
    if args.prove_sample > 0 {
        let input = cairn_evm::samples::hoodi_1265656();
        prove_sample(&input, args.sample_po2, args.prove_sample)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Proves `count` evenly spaced segments of the Hoodi block and extrapolates the whole block's proving time.
fn prove_sample(input: &StatelessInput, po2: u8, count: usize) -> anyhow::Result<()> {
    use cairn_backend::ProvingBackend;
    let bytes = input.encode();
    let backend = cairn_risc0::RiscZeroBackend::new();
    let first = cairn_risc0::execute_stats(cairn_guests::ETH_BLOCK.binary, &bytes, po2)?;
    let stride = (first.segments as usize / count).max(1);
    let mut kept = Vec::new();
    let mut index = 0usize;
    backend.execute(cairn_guests::ETH_BLOCK.binary, &bytes, po2, &mut |blob| {
        if index % stride == stride / 2 && kept.len() < count {
            kept.push(blob.bytes);
        }
        index += 1;
        Ok(())
    })?;
    println!(
        "\nproving {} of the {} po2 {po2} segments of Hoodi block 1,265,656 on this machine:",
        kept.len(),
        first.segments
    );
    let mut secs = Vec::new();
    for b in &kept {
        let t = Instant::now();
        backend.prove_segment(b)?;
        secs.push(t.elapsed().as_secs_f64());
        println!("  segment proved in {:.1} s", secs.last().unwrap());
    }
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    println!(
        "  mean {mean:.1} s per segment: the whole block is {:.0} s ({:.1} h) of proving on this machine, which \
         {} provers like it do in ~{mean:.0} s plus aggregation",
        mean * f64::from(first.segments),
        mean * f64::from(first.segments) / 3600.0,
        first.segments
    );
    Ok(())
}

fn print_row(r: &Row) {
    let gas = r.gas.max(1) as f64;
    println!(
        "\n{:<44} {:>10} gas {:>5} txs  user cycles {:>12}  {:>7.1} cycles/gas  (native {:.0} ms)",
        r.label,
        r.gas,
        r.txs,
        r.user_cycles,
        r.user_cycles as f64 / gas,
        r.native_ms
    );
    let parts: Vec<String> = Stage::ALL
        .iter()
        .map(|s| {
            let c = r.stages.get(s.name()).copied().unwrap_or(0);
            format!(
                "{} {:.1}/gas ({:.0} %)",
                s.name(),
                c as f64 / gas,
                100.0 * c as f64 / r.user_cycles.max(1) as f64
            )
        })
        .collect();
    println!("    stages: {}", parts.join(", "));
    if let Some((user, senders)) = r.k256 {
        println!(
            "    with --compare (k256 instead of bigint2): {user} user cycles ({:.1}/gas); senders {senders} cycles \
             ({:.0} per transaction) against {} ({:.0} per transaction)",
            user as f64 / gas,
            senders as f64 / f64::from(r.txs.max(1)),
            r.stages.get("senders").copied().unwrap_or(0),
            r.stages.get("senders").copied().unwrap_or(0) as f64 / f64::from(r.txs.max(1))
        );
    }
    if !r.txs_cost.is_empty() {
        let mut by_cost: Vec<(usize, &(u64, u64))> = r.txs_cost.iter().enumerate().collect();
        by_cost.sort_by_key(|(_, (_, c))| std::cmp::Reverse(*c));
        let top: Vec<String> = by_cost
            .iter()
            .take(5)
            .map(|(i, (g, c))| {
                format!(
                    "#{i} {g} gas {c} cycles ({:.0}/gas)",
                    *c as f64 / (*g).max(1) as f64
                )
            })
            .collect();
        println!(
            "    system calls {} cycles; costliest transactions: {}",
            r.system_calls,
            top.join(", ")
        );
    }
    for (po2, total, segments, secs) in &r.per_po2 {
        println!(
            "    po2 {po2}: {total:>12} total cycles, {segments:>5} segments, inflation {:.3}, executor {:.1} s ({:.1} MHz)",
            *total as f64 / r.user_cycles as f64,
            secs,
            *total as f64 / secs / 1e6
        );
    }
}
