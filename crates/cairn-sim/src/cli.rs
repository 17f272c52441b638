//! `cairn sim`: the command-line entry. The lead's binary mounts [`SimArgs`] as a subcommand and calls [`run`].

use std::path::PathBuf;

use crate::error::SimError;
use crate::report::Report;
use crate::scenario::Scenario;

/// Simulate a scenario file against the real scheduler and write CSV files and SVG charts.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Scenario file (TOML), e.g. scenarios/seed-claim.toml.
    #[arg(env = "CAIRN_SIM_SCENARIO")]
    pub scenario: PathBuf,
    /// Seed for every random draw (overrides the scenario's `seed`).
    #[arg(long, env = "CAIRN_SIM_SEED")]
    pub seed: Option<u64>,
    /// Output directory; results go to <out>/<scenario name>/ (summary.csv, summary.txt, runs/run-NNN.csv).
    #[arg(long, env = "CAIRN_SIM_OUT", default_value = "target/cairn-sim")]
    pub out: PathBuf,
    /// Directory for the SVG charts (default: the scenario's output directory).
    #[arg(long, env = "CAIRN_SIM_CHARTS")]
    pub charts: Option<PathBuf>,
    /// Runs simulated in parallel (results do not depend on it).
    #[arg(long, env = "CAIRN_SIM_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Print nothing (files are still written).
    #[arg(long, env = "CAIRN_SIM_QUIET")]
    pub quiet: bool,
}

/// Loads the scenario, simulates every run, writes CSV and charts, prints the summary table.
pub fn run(args: &SimArgs) -> Result<Report, SimError> {
    let scenario = Scenario::load(&args.scenario)?;
    let seed = args.seed.unwrap_or(scenario.seed);
    let report = crate::simulate_scenario(&scenario, seed, args.threads)?;
    let dir = args.out.join(&scenario.name);
    report.write_csv(&dir)?;
    let charts_dir = args.charts.clone().unwrap_or_else(|| dir.clone());
    let charts = crate::charts::write_all(&report, &scenario.charts, &charts_dir)?;
    if !args.quiet {
        println!(
            "scenario {} (seed {seed}): {} runs",
            scenario.name,
            report.runs.len()
        );
        print!("{}", report.table());
        println!(
            "wrote {}/summary.csv, summary.txt, runs/*.csv",
            dir.display()
        );
        for c in charts {
            println!("wrote {}", c.display());
        }
    }
    Ok(report)
}
