//! `cairn-fuzz`: lists the targets, writes their seed corpora for libFuzzer, makes the RISC Zero seeds, and
//! runs targets without instrumentation (mutations of the seeds; the libFuzzer build is `scripts/fuzz.sh`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cairn_fuzz::{drive, regressions, target, TARGETS};

const USAGE: &str = "usage:
  cairn-fuzz list                          the targets, one per line: name, cheap|risc0, what they read
  cairn-fuzz corpus DIR [TARGET...]        write each target's seeds and regressions into DIR/<target>/
  cairn-fuzz make-seeds                    prove the RISC Zero seeds into crates/cairn-fuzz/seeds/risc0
  cairn-fuzz run TARGET [N] [SECONDS]      N mutations of the seeds (default 100000) within SECONDS (600),
                                           no coverage guidance; prints executions and any crash";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("list") => {
            for t in TARGETS {
                let kind = if t.cheap { "cheap" } else { "risc0" };
                println!("{}\t{kind}\t{}", t.name, t.about);
            }
            ExitCode::SUCCESS
        }
        Some("corpus") => {
            let Some(dir) = arg(1).map(PathBuf::from) else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            let wanted: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            for t in TARGETS
                .iter()
                .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
            {
                let out = dir.join(t.name);
                if let Err(e) = std::fs::create_dir_all(&out) {
                    eprintln!("cairn-fuzz: {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
                let seeds = t.seeds();
                let n = seeds.len();
                let regressions = match regressions(t.name) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("cairn-fuzz: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let files = seeds
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| (format!("seed-{i}"), s))
                    .chain(
                        regressions
                            .into_iter()
                            .map(|(name, s)| (format!("regression-{name}"), s)),
                    );
                for (name, bytes) in files {
                    if let Err(e) = std::fs::write(out.join(name), bytes) {
                        eprintln!("cairn-fuzz: {}: {e}", out.display());
                        return ExitCode::FAILURE;
                    }
                }
                println!("{}: {n} seeds", t.name);
            }
            ExitCode::SUCCESS
        }
        #[cfg(feature = "risc0")]
        Some("make-seeds") => match cairn_fuzz::risc0::make_seeds(&cairn_fuzz::risc0::seed_dir()) {
            Ok(files) => {
                for (name, len) in files {
                    println!("{name}: {len} bytes");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cairn-fuzz: {e}");
                ExitCode::FAILURE
            }
        },
        Some("run") => {
            let Some(t) = arg(1).and_then(target) else {
                eprintln!("cairn-fuzz: name a target (`cairn-fuzz list`)\n{USAGE}");
                return ExitCode::from(2);
            };
            let n = arg(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let secs = arg(3).and_then(|s| s.parse().ok()).unwrap_or(600);
            let mut inputs = t.seeds();
            match regressions(t.name) {
                Ok(r) => inputs.extend(r.into_iter().map(|(_, b)| b)),
                Err(e) => {
                    eprintln!("cairn-fuzz: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let report = drive(t, &inputs, n, 1, Some(Duration::from_secs(secs)));
            println!(
                "{}: {} executions in {:.1} s ({:.0}/s), {} accepted",
                t.name,
                report.executions,
                report.elapsed.as_secs_f64(),
                report.executions as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.accepted
            );
            match report.crash {
                None => ExitCode::SUCCESS,
                Some((input, msg)) => {
                    let path = std::env::temp_dir().join(format!("cairn-fuzz-crash-{}", t.name));
                    let _ = std::fs::write(&path, input);
                    eprintln!(
                        "{}: CRASH: {msg}\n  input written to {}",
                        t.name,
                        path.display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
