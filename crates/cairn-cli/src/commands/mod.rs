//! The commands behind the CLI.

mod bench;
mod bench_evm;
mod bench_po2;
mod block;
mod devnet;
mod execute;
mod gateway;
mod network;
mod node;
mod node_status;
mod outputs;
mod program;
mod prove;
mod relay;
mod verify;

use std::process::ExitCode;

use cairn_backend::cost::usable_cycles;

use crate::cli::Command;

/// A warning for po2 15, a segment size that RISC Zero 3.x makes wasteful, or `None`. `cycles` is (user,
/// total) from an execution at `po2`, when one ran. (Other sizes are a trade-off `cairn execute --sweep`
/// shows; small programs are dominated by paging at any size.)
pub fn po2_warning(po2: u8, cycles: Option<(u64, u64)>) -> Option<String> {
    if po2 != 15 {
        return None;
    }
    let measured = cycles.map_or(String::new(), |(user, total)| {
        format!(
            " Here: {total} cycles to prove for {user} of the program's ({:.1}x).",
            total as f64 / user.max(1) as f64
        )
    });
    Some(format!(
        "warning: po2 15 is a poor segment size: RISC Zero 3.x keeps 25,000 cycles of every segment of po2 15 \
         or more free for its longest instruction, which leaves {} of po2 15's 32,768 cycles (po2 14: {} of \
         16,384; po2 16: {} of 65,536), so po2 15 makes several times more segments than po2 14 or 16.{measured} \
         Prefer po2 14 or 16; `cairn execute --sweep` compares them",
        usable_cycles(15),
        usable_cycles(14),
        usable_cycles(16)
    ))
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Execute(args) => execute::run(&args),
        Command::Prove(args) if args.network => network::run(&args),
        Command::Prove(args) => prove::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Gateway(args) => gateway::run(&args),
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
        Command::Block(cmd) => block::run(cmd),
        Command::Sim(args) => {
            cairn_sim::cli::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Node(args) => node::run(&args),
        Command::Relay(args) => relay::run(&args),
        Command::Devnet(args) => devnet::run(&args),
        Command::Soak(args) => cairn_lab::soak::run(&args),
    }
}
