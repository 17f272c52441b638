//! `cairn block gen` and `cairn block show`: EVM block inputs for the bundled `evm-block` program.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use cairn_evm::gen::{generate, host_sha256, parse_gas, GenConfig, Generated, Mix};
use cairn_evm::{BlockInput, Commitment, Signatures};

use crate::cli::{BlockCommand, BlockGenArgs};

pub fn run(cmd: BlockCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BlockCommand::Gen(args) => gen(&args),
        BlockCommand::Show { input } => {
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let block = BlockInput::decode(&bytes)?;
            let t = Instant::now();
            let executed = cairn_evm::execute(&bytes, host_sha256, &mut |_| {})?;
            println!(
                "block {} (chain {}): {} accounts in the witness, {} bytes",
                block.header.number,
                block.header.chain_id,
                block.accounts.len(),
                bytes.len()
            );
            println!("{}", executed.journal);
            println!("journal hex:  {}", hex::encode(executed.journal.to_bytes()));
            println!("executed natively in {:.3} s", t.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The generator's settings from the CLI.
pub fn config(args: &BlockGenArgs) -> anyhow::Result<GenConfig> {
    Ok(GenConfig {
        gas: parse_gas(&args.gas).map_err(anyhow::Error::msg)?,
        seed: args.seed,
        mix: Mix::parse(&args.mix).map_err(anyhow::Error::msg)?,
        accounts: args.accounts,
        tokens: args.tokens,
        pools: args.pools,
        commitment: if args.commitment == "mpt" {
            Commitment::MerklePatricia
        } else {
            Commitment::Sha256Sorted
        },
        signatures: if args.signed {
            Signatures::Checked
        } else {
            Signatures::Unchecked
        },
    })
}

fn gen(args: &BlockGenArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(args)?;
    let t = Instant::now();
    let g = generate(&cfg)?;
    let bytes = g.input.encode();
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    print_summary(&g, bytes.len());
    println!(
        "generated in {:.2} s; input written to {}",
        t.elapsed().as_secs_f64(),
        args.out.display()
    );
    println!(
        "prove it: cairn prove --local --program evm-block --input {}   (or --network, or cairn devnet)",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn print_summary(g: &Generated, input_bytes: usize) {
    let slots: usize = g.input.accounts.iter().map(|a| a.storage.len()).sum();
    println!(
        "block: {} transactions, {} gas; witness {} accounts, {} slots; input {} bytes",
        g.input.txs.len(),
        g.journal.gas_used,
        g.input.accounts.len(),
        slots,
        input_bytes
    );
    for (kind, (count, gas)) in &g.by_kind {
        println!(
            "  {:<7} {count:>6} txs {gas:>11} gas ({:.0} per tx)",
            kind.name(),
            *gas as f64 / *count as f64
        );
    }
    println!("expected journal (what a proof of this block must carry):");
    println!("{}", g.journal);
    println!("journal hex:  {}", hex::encode(g.journal.to_bytes()));
}
