//! Benchmark: simulate a scenario (default `scenarios/scale.toml`, 10,000 nodes x 1,000 jobs) `runs` times and
//! print the wall time of each run and their median (this machine's timings vary by run; one is not a figure).
//! `cargo run -p cairn-sim --release --example scale [-- SCENARIO [RUNS]]`, e.g.
//! `cargo run -p cairn-sim --release --example scale -- scenarios/scale-100k.toml 3` (100,000 x 10,000).
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/scale.toml"),
        std::path::PathBuf::from,
    );
    let runs: usize = match args.next().map(|r| r.parse()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: RUNS must be a positive number");
            std::process::exit(2);
        }
    };
    let scenario = match cairn_sim::Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let mut walls = Vec::with_capacity(runs);
    let mut last = None;
    for i in 0..runs {
        let start = Instant::now();
        let report = match cairn_sim::simulate_scenario(&scenario, scenario.seed, 1) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let wall = start.elapsed().as_secs_f64();
        println!("run {}: wall time {wall:.2} s", i + 1);
        walls.push(wall);
        last = Some(report);
    }
    let report = last.expect("at least one run");
    print!("{}", report.table());
    for r in &report.runs {
        println!(
            "{}: {} nodes, {} jobs, {} events",
            scenario.name, r.spec.params.nodes, r.spec.params.jobs, r.metrics.events
        );
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "wall time: median {:.2} s over {runs} run(s) (min {:.2} s, max {:.2} s)",
        walls[runs / 2],
        walls[0],
        walls[runs - 1]
    );
}
