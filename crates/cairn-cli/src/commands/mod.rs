//! The commands behind the CLI.

mod bench;
mod devnet;
mod execute;
mod network;
mod node;
mod program;
mod prove;
mod verify;

use std::process::ExitCode;

use crate::cli::Command;

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Execute(args) => execute::run(&args),
        Command::Prove(args) => prove::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Programs => {
            for g in cairn_guests::ALL {
                println!(
                    "{:<11} image id {}  {}",
                    g.name,
                    g.image_id_hex.trim(),
                    g.about
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(cmd) => bench::run(cmd),
        Command::Sim(args) => {
            cairn_sim::cli::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Node(args) => node::run(&args),
        Command::Devnet(args) => devnet::run(&args),
    }
}
