//! `cairn block import`, `cairn block gen` and `cairn block show`: inputs for the bundled `eth-block`
//! program, from real blocks and their witnesses or from the synthetic generator, validated natively with the
//! guest's own code.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use cairn_evm::gen::{generate, parse_gas, GenConfig, Generated, Mix};
use cairn_evm::import::{block_from_json, block_rlp, ethrex_cache, witness_from_json};
use cairn_evm::{host_sha256, Chain, StatelessInput};
use serde_json::Value;

use crate::cli::{BlockCommand, BlockGenArgs, BlockImportArgs};

pub fn run(cmd: BlockCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BlockCommand::Import(args) => import(&args),
        BlockCommand::Gen(args) => gen(&args),
        BlockCommand::Show { input } => {
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let decoded = StatelessInput::decode(&bytes)?;
            show(&decoded, bytes.len(), "")
        }
    }
}

/// A JSON file, unwrapped from a JSON-RPC response (`{"jsonrpc", "id", "result"}`) if it is one.
fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(match v {
        Value::Object(ref o) if o.contains_key("result") && o.contains_key("jsonrpc") => {
            o["result"].clone()
        }
        other => other,
    })
}

/// A block file: block JSON, RLP as a JSON string or hex text, or raw RLP bytes.
fn read_block(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map(str::trim);
    match text {
        Ok(t) if t.starts_with('{') || t.starts_with('"') => {
            let v = read_json(path)?;
            match &v {
                Value::String(_) => Ok(cairn_evm::import::raw_block_from_json(&v)?),
                _ => Ok(block_rlp(&block_from_json(&v).with_context(|| {
                    format!("{} is not a block's JSON", path.display())
                })?)),
            }
        }
        Ok(t) if t.starts_with("0x") => {
            Ok(hex::decode(&t[2..]).with_context(|| format!("{} is not hex", path.display()))?)
        }
        _ => Ok(bytes),
    }
}

fn import(args: &BlockImportArgs) -> anyhow::Result<ExitCode> {
    let t = Instant::now();
    let (source_chain, block, witness, from, expect) = if let Some(url) = &args.rpc {
        let number = args.number.context("--rpc needs --number")?;
        let mut rpc = cairn_evm::rpc::Rpc::new(url)?;
        let f = rpc.fetch(number)?;
        let from = format!(
            "block {number} from {url} ({}, debug_executionWitness), chain id {}",
            f.block_from, f.chain_id
        );
        (f.chain, f.block, f.witness, from, None)
    } else if let Some(path) = &args.cache {
        let (chain, blocks, witness) = ethrex_cache(&read_json(path)?)?;
        let block = blocks
            .into_iter()
            .next()
            .context("the cache holds no block")?;
        (
            Some(chain),
            block,
            witness,
            path.display().to_string(),
            None,
        )
    } else if let Some(path) = &args.test {
        let json =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let (cases, skipped) = cairn_evm::tests::load(&json, &[])?;
        let case =
            match &args.case {
                Some(name) => cases
                    .into_iter()
                    .find(|c| &c.name == name)
                    .with_context(|| match skipped.iter().find(|(n, _)| n == name) {
                        Some((_, why)) => format!("case {name} cannot be imported: {why:?}"),
                        None => format!("no case {name} in {}", path.display()),
                    })?,
                None => cases
                    .into_iter()
                    .next()
                    .context("the file has no single-block case of a supported network")?,
            };
        let from = format!("{} case {} ({})", path.display(), case.name, case.network);
        let input = case.input;
        (
            Some(input.chain),
            input.block,
            input.witness,
            from,
            Some(case.expect),
        )
    } else if let (Some(block), Some(witness)) = (&args.block, &args.witness) {
        let w = witness_from_json(&read_json(witness)?)
            .with_context(|| format!("{} is not a debug_executionWitness", witness.display()))?;
        (
            None,
            read_block(block)?,
            w,
            block.display().to_string(),
            None,
        )
    } else {
        bail!("give a block and its witness (--block FILE --witness FILE), a node (--rpc URL --number N), a cache file (--cache) or a test file (--test)");
    };
    let chain = if let Some(name) = &args.chain {
        Chain::named(name).with_context(|| {
            format!("unknown chain `{name}` (built in: mainnet, sepolia, holesky, hoodi; others: --genesis FILE)")
        })?
    } else if let Some(path) = &args.genesis {
        Chain::from_genesis_json(&read_json(path)?)?
    } else {
        source_chain.context(
            "the source does not say which chain this is: give --chain (mainnet, sepolia, holesky, hoodi) or --genesis FILE",
        )?
    };
    let input = StatelessInput::new(chain, block, witness);
    let bytes = input.encode();
    let mut header = format!(
        "imported {from} in {:.2} s: block {} bytes, witness {} nodes, {} codes, {} headers\n",
        t.elapsed().as_secs_f64(),
        input.block.len(),
        input.witness.state.len(),
        input.witness.codes.len(),
        input.witness.headers.len()
    );
    if let Some(expect) = &expect {
        header += &format!("the test expects: {expect:?}\n");
    }
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    header += &format!(
        "input written to {} ({} bytes)\n",
        args.out.display(),
        bytes.len()
    );
    show(&input, bytes.len(), &header)
}

/// Validates `input` natively and prints the journal, or why the block is invalid (exit code 1).
fn show(input: &StatelessInput, bytes: usize, header: &str) -> anyhow::Result<ExitCode> {
    let t = Instant::now();
    let mut out = header.to_string();
    let result =
        std::panic::catch_unwind(|| cairn_evm::validate_input(input, host_sha256, &mut |_| {}))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(cairn_evm::BlockError::Execution(format!(
                    "validation panicked: {msg}"
                )))
            });
    match result {
        Ok(executed) => {
            let s = &executed.stats;
            out += &format!(
                "valid: validated natively in {:.3} s ({bytes} bytes of input; {} witness nodes, {} accounts read, {} storage tries, {} accounts and {} slots written)\n",
                t.elapsed().as_secs_f64(),
                s.witness_nodes,
                s.accounts_read,
                s.storage_tries,
                s.accounts_written,
                s.slots_written
            );
            out += &format!("{}\n", executed.journal);
            out += &format!(
                "journal hex:     {}\n",
                hex::encode(executed.journal.to_bytes())
            );
            out += "prove it: cairn prove --local --program eth-block --input FILE --po2 18   (or --network, or cairn devnet)\n";
            emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            out += &format!("INVALID: {e}\n(no proof of this block can exist: the guest refuses it the same way)\n");
            emit(&out)?;
            Ok(ExitCode::FAILURE)
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
        "prove it: cairn prove --local --program eth-block --input {}   (or --network, or cairn devnet)\n",
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
    let mut out = format!(
        "block: {} transactions, {} gas; witness {} trie nodes, {} codes; input {} bytes\n",
        g.journal.tx_count,
        g.journal.gas_used,
        g.input.witness.state.len(),
        g.input.witness.codes.len(),
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
    out += &format!("journal hex:     {}\n", hex::encode(g.journal.to_bytes()));
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
