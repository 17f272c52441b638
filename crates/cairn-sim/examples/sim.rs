//! Stand-alone `cairn sim` until the main binary mounts it:
//! `cargo run -p cairn-sim --release --example sim -- scenarios/seed-claim.toml`
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    sim: cairn_sim::cli::SimArgs,
}

fn main() -> ExitCode {
    match cairn_sim::cli::run(&Cli::parse().sim) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
