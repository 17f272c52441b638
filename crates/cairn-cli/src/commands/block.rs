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
            let mut out = format!(
                "block {} (chain {}): {} accounts in the witness, {} bytes\n",
                block.header.number,
                block.header.chain_id,
                block.accounts.len(),
                bytes.len()
            );
            out += &format!("{}\n", executed.journal);
            out += &format!(
                "journal hex:  {}\n",
                hex::encode(executed.journal.to_bytes())
            );
            out += &format!("executed natively in {:.3} s\n", t.elapsed().as_secs_f64());
            emit(&out)?;
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
    let mut out = summary(&g, bytes.len());
    out += &format!(
        "generated in {:.2} s; input written to {}\n",
        t.elapsed().as_secs_f64(),
        args.out.display()
    );
    out += &format!(
        "prove it: cairn prove --local --program evm-block --input {}   (or --network, or cairn devnet)\n",
        args.out.display()
    );
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the command's report to stdout. A reader that closed the pipe early (`cairn block gen | head`) has
/// read what it wanted: that is not an error, and never a panic (as `println!` makes it).
fn emit(text: &str) -> anyhow::Result<()> {
    emit_to(&mut std::io::stdout().lock(), text)
}

fn emit_to(out: &mut impl std::io::Write, text: &str) -> anyhow::Result<()> {
    match out.write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// What a generated block holds, and the journal a proof of it must carry.
pub fn summary(g: &Generated, input_bytes: usize) -> String {
    let slots: usize = g.input.accounts.iter().map(|a| a.storage.len()).sum();
    let mut out = format!(
        "block: {} transactions, {} gas; witness {} accounts, {} slots; input {} bytes\n",
        g.input.txs.len(),
        g.journal.gas_used,
        g.input.accounts.len(),
        slots,
        input_bytes
    );
    for (kind, (count, gas)) in &g.by_kind {
        out += &format!(
            "  {:<7} {count:>6} txs {gas:>11} gas ({:.0} per tx)\n",
            kind.name(),
            *gas as f64 / *count as f64
        );
    }
    out += "expected journal (what a proof of this block must carry):\n";
    out += &format!("{}\n", g.journal);
    out += &format!("journal hex:  {}\n", hex::encode(g.journal.to_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader gone (`cairn block gen | head`) or any other write error.
    struct Failing(std::io::ErrorKind);

    impl std::io::Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_report_quietly_and_other_write_errors_are_reported() {
        let text = "block: 1 transactions\n";
        assert!(emit_to(&mut Failing(std::io::ErrorKind::BrokenPipe), text).is_ok());
        assert!(emit_to(&mut Failing(std::io::ErrorKind::StorageFull), text).is_err());
        let mut written = Vec::new();
        emit_to(&mut written, text).unwrap();
        assert_eq!(written, text.as_bytes());
    }
}
