//! Every fuzz target on its seeds, its regressions (inputs that once crashed it) and a few thousand
//! mutations, uninstrumented: the targets keep building and holding. The coverage-guided campaign is
//! `scripts/fuzz.sh`; its counts are in docs/SECURITY.md.

use std::time::Duration;

use cairn_fuzz::{drive, regressions, TARGETS};

fn smoke(cheap: bool, mutations: u64, budget: Duration) {
    let mut failures = Vec::new();
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
        inputs.extend(regressions(t.name).into_iter().map(|(_, b)| b));
        let report = drive(t, &inputs, mutations, 42, budget);
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
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz targets crashed:\n{}",
        failures.join("\n")
    );
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
    smoke(true, 10_000, Duration::from_secs(20));
}

#[cfg(feature = "risc0")]
#[test]
fn risc0_targets_hold_on_their_seeds_regressions_and_mutations() {
    smoke(false, 100, Duration::from_secs(30));
}
