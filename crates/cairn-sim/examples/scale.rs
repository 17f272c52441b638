//! Benchmark: 10,000 nodes x 1,000 jobs (scenarios/scale.toml), wall time printed.
//! `cargo run -p cairn-sim --release --example scale`
use std::time::Instant;

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/scale.toml");
    let scenario = match cairn_sim::Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let report = match cairn_sim::simulate_scenario(&scenario, scenario.seed, 1) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let wall = start.elapsed();
    print!("{}", report.table());
    for r in &report.runs {
        println!(
            "run {}: {} nodes, {} jobs, {} events",
            r.spec.index, r.spec.params.nodes, r.spec.params.jobs, r.metrics.events
        );
    }
    println!("wall time: {:.2} s", wall.as_secs_f64());
}
