//! Runs Ethereum's BlockchainTests through Cairn's stateless validation (the host path of the `eth-block`
//! guest): every single-block case of the chosen networks under the given directories.
//!
//! ```sh
//! cargo run --release -p cairn-evm --features host --example blockchain_tests -- \
//!     [--network Cancun|all] [--failures FILE] DIR...
//! ```
//!
//! Prints, per top-level directory, cases run, valid blocks that agree, invalid blocks refused, failures and
//! skipped cases; then every failure with its reason. Exit code 1 if anything failed. `scripts/eth-tests.sh`
//! fetches nothing: point it at a copy of ethereum/tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_evm::tests::{load, load_chains, run, run_chain, ChainOutcome, Outcome, Skip};

#[derive(Default)]
struct Tally {
    files: usize,
    valid: usize,
    refused: usize,
    failed: Vec<String>,
    multi_block: usize,
    chains: usize,
    chain_blocks_valid: usize,
    chain_blocks_refused: usize,
    other_network: usize,
    unsupported: usize,
    load_errors: Vec<String>,
    refused_by_class: BTreeMap<&'static str, usize>,
    /// (the test's exception, Cairn's class) -> cases: whether blocks are refused for the reason the test names.
    exceptions: BTreeMap<(String, &'static str), usize>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut networks = Vec::new();
    let mut dirs = Vec::new();
    let mut failures_file = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--network" => {
                let n = args.next().expect("--network NAME");
                // `all`: every network Cairn supports (the merge and later).
                if n != "all" {
                    networks.push(n)
                }
            }
            "--failures" => failures_file = Some(args.next().expect("--failures FILE")),
            "-h" | "--help" => {
                eprintln!("usage: blockchain_tests [--network NAME]... [--failures FILE] DIR...");
                return;
            }
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    if dirs.is_empty() {
        eprintln!("usage: blockchain_tests [--network NAME]... [--failures FILE] DIR...");
        std::process::exit(2);
    }
    let nets: Vec<&str> = networks.iter().map(|s| s.as_str()).collect();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let started = std::time::Instant::now();
    for dir in &dirs {
        let mut files = Vec::new();
        walk(dir, &mut files);
        let key = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let t = tallies.entry(key).or_default();
        for file in files {
            t.files += 1;
            let rel = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            let json = match std::fs::read_to_string(&file) {
                Ok(j) => j,
                Err(e) => {
                    t.load_errors.push(format!("{rel}: {e}"));
                    continue;
                }
            };
            let (cases, skipped) = match load(&json, &nets) {
                Ok(x) => x,
                Err(e) => {
                    t.load_errors.push(format!("{rel}: {e}"));
                    continue;
                }
            };
            for (_, why) in skipped {
                match why {
                    Skip::MultiBlock(_) => t.multi_block += 1,
                    Skip::Network(_) => t.other_network += 1,
                    Skip::Unsupported(_) => t.unsupported += 1,
                }
            }
            match load_chains(&json, &nets) {
                Ok(chains) => {
                    for c in chains {
                        match run_chain(&c, cairn_evm::host_sha256) {
                            ChainOutcome::Agreed { valid, refused } => {
                                t.chains += 1;
                                t.chain_blocks_valid += valid;
                                t.chain_blocks_refused += refused;
                            }
                            ChainOutcome::Fail(why) => {
                                t.failed.push(format!("{rel} {} (chain): {why}", c.name))
                            }
                        }
                    }
                }
                Err(e) => t.load_errors.push(format!("{rel}: {e}")),
            }
            for case in cases {
                match run(&case, cairn_evm::host_sha256) {
                    Outcome::Valid => t.valid += 1,
                    Outcome::Refused { class, reason } => {
                        if std::env::var_os("CAIRN_SHOW_REASONS").is_some() {
                            if let cairn_evm::tests::Expect::Invalid(why) = &case.expect {
                                println!("reason {why} -> {reason}");
                            }
                        }
                        t.refused += 1;
                        *t.refused_by_class.entry(class).or_default() += 1;
                        if let cairn_evm::tests::Expect::Invalid(why) = &case.expect {
                            *t.exceptions.entry((why.clone(), class)).or_default() += 1;
                        }
                    }
                    Outcome::Fail(why) => t.failed.push(format!("{rel} {}: {why}", case.name)),
                }
            }
        }
    }
    println!(
        "| directory | files | single-block cases run | valid blocks agreeing | invalid blocks refused | multi-block cases agreeing (valid / refused blocks) | failed cases | other networks | unsupported |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut any_failed = false;
    let mut all_failures = Vec::new();
    for (dir, t) in &tallies {
        let run = t.valid + t.refused + t.failed.iter().filter(|f| !f.contains("(chain)")).count();
        println!(
            "| {dir} | {} | {run} | {} | {} | {} of {} ({} / {}) | {} | {} | {} |",
            t.files,
            t.valid,
            t.refused,
            t.chains,
            t.multi_block,
            t.chain_blocks_valid,
            t.chain_blocks_refused,
            t.failed.len(),
            t.other_network,
            t.unsupported
        );
        any_failed |= !t.failed.is_empty() || !t.load_errors.is_empty();
        all_failures.extend(t.failed.iter().cloned());
        all_failures.extend(t.load_errors.iter().map(|e| format!("load error: {e}")));
    }
    for (dir, t) in &tallies {
        let classes: Vec<String> = t
            .refused_by_class
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        println!("{dir}: refused by rule: {}", classes.join(", "));
    }
    if std::env::var_os("CAIRN_SHOW_EXCEPTIONS").is_some() {
        for t in tallies.values() {
            for ((why, class), n) in &t.exceptions {
                println!("exception {why} -> {class}: {n}");
            }
        }
    }
    println!(
        "{} failures; {:.1} s",
        all_failures.len(),
        started.elapsed().as_secs_f64()
    );
    for f in &all_failures {
        println!("FAIL {f}");
    }
    if let Some(path) = failures_file {
        std::fs::write(path, all_failures.join("\n")).expect("writing the failures file");
    }
    if any_failed {
        std::process::exit(1);
    }
}
