//! Every fuzz target on its seeds, its regressions (inputs that once crashed it) and a few thousand
//! mutations, uninstrumented: the targets keep building and holding. The coverage-guided campaign is
//! `scripts/fuzz.sh`; its counts are in docs/SECURITY.md.

use cairn_fuzz::{drive, regressions, regressions_dir, TARGETS};

/// Runs every target of a kind on its seeds, its regressions and `mutations` mutations of them, all of them
/// whatever the machine's speed (a time budget would leave a slow machine running the seeds alone). Returns
/// how many regression inputs were replayed.
fn smoke(cheap: bool, mutations: u64) -> usize {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for t in TARGETS.iter().filter(|t| t.cheap == cheap) {
        let seeds = t.seeds();
        assert!(!seeds.is_empty(), "{} has no seeds", t.name);
        let accepted = seeds.iter().filter(|s| t.run(s).is_ok()).count();
        assert!(
            accepted > 0 || !t.accepts_seeds,
            "{}: not one of its seeds is accepted",
            t.name
        );
        let mut inputs = seeds;
        let found = regressions(t.name).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        replayed += found.len();
        inputs.extend(found.into_iter().map(|(_, b)| b));
        let report = drive(t, &inputs, mutations, 42, None);
        eprintln!(
            "{}: {} executions in {:.2} s, {} accepted",
            t.name,
            report.executions,
            report.elapsed.as_secs_f64(),
            report.accepted
        );
        if let Some((input, msg)) = report.crash {
            failures.push(format!(
                "{}: {msg} (input of {} bytes: {})",
                t.name,
                input.len(),
                hex(&input)
            ));
        } else {
            assert_eq!(
                report.executions,
                inputs.len() as u64 + mutations,
                "{}: not every input and mutation ran",
                t.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz targets crashed:\n{}",
        failures.join("\n")
    );
    replayed
}

/// Every file under `regressions/` (one folder per target).
fn regression_files() -> usize {
    let root = regressions_dir();
    std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

fn hex(b: &[u8]) -> String {
    let s: String = b.iter().take(64).map(|x| format!("{x:02x}")).collect();
    if b.len() > 64 {
        format!("{s}...")
    } else {
        s
    }
}

#[test]
fn cheap_targets_hold_on_their_seeds_regressions_and_mutations() {
    let replayed = smoke(true, 10_000);
    // Every regression input of a cheap target was replayed (none of them belongs to a RISC Zero target).
    let cheap_files: usize = TARGETS
        .iter()
        .filter(|t| t.cheap)
        .map(|t| {
            let dir = regressions_dir().join(t.name);
            std::fs::read_dir(dir).map_or(0, |d| d.count())
        })
        .sum();
    assert_eq!(replayed, cheap_files);
}

#[cfg(feature = "risc0")]
#[test]
fn risc0_targets_hold_on_their_seeds_regressions_and_mutations() {
    smoke(false, 100);
}

/// A moved regressions folder, or a target renamed without its folder, fails loudly instead of replaying
/// nothing.
#[test]
fn every_regression_input_belongs_to_a_target_and_is_read() {
    let mut total = 0;
    for t in TARGETS {
        total += regressions(t.name).unwrap_or_else(|e| panic!("{e}")).len();
    }
    assert_eq!(
        total,
        regression_files(),
        "inputs under {} that no target reads",
        regressions_dir().display()
    );
}
