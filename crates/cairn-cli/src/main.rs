//! `cairn`: the command-line edge of Cairn. Library crates return typed errors; here they become messages
//! and exit codes.

mod cli;
mod commands;
mod config_file;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Settings from `--config FILE` fill the environment variables the command line does not override.
    let args: Vec<String> = std::env::args().collect();
    if let Err(err) = config_file::apply_from_args(&args) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let cli = cli::Cli::parse();
    // yamux warns for every connection both ends close at once ("Broken pipe"), which a node trimming idle
    // connections does every few seconds: noise, not news, unless asked for by name.
    let filter = if cli.log.contains("yamux") {
        cli.log.clone()
    } else {
        format!("{},yamux=error", cli.log)
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
