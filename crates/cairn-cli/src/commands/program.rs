//! Resolving `--program` and the input flags into bytes.

use std::path::Path;

use anyhow::{bail, Context};
use cairn_guests::Guest;

use crate::cli::ProgramArgs;

/// A program to run, with its input.
#[derive(Debug)]
pub struct Resolved {
    pub name: String,
    pub binary: Vec<u8>,
    pub input: Vec<u8>,
    /// Set for bundled programs: lets callers check the journal against the host reference.
    pub guest: Option<Guest>,
}

/// Default iterations of `sha-chain` when no input is given: a few segments at po2 14.
pub const DEFAULT_SHA_CHAIN_ITERATIONS: u64 = 1;

pub fn resolve(args: &ProgramArgs) -> anyhow::Result<Resolved> {
    let guest = cairn_guests::by_name(&args.program);
    let (name, binary) = match guest {
        Some(g) => (g.name.to_string(), g.binary.to_vec()),
        None => {
            let path = Path::new(&args.program);
            if !path.exists() {
                bail!(
                    "no bundled program or file named {:?}: bundled programs are {}",
                    args.program,
                    cairn_guests::ALL.map(|g| g.name).join(", ")
                );
            }
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading program {}", path.display()))?;
            (path.display().to_string(), bytes)
        }
    };
    let input = if let Some(path) = &args.input {
        std::fs::read(path).with_context(|| format!("reading input {}", path.display()))?
    } else if let Some(h) = &args.input_hex {
        hex::decode(h.trim()).with_context(|| format!("--input-hex {h:?} is not valid hex"))?
    } else if let Some(n) = args.iterations {
        if guest.map(|g| g.name) != Some("sha-chain") {
            bail!("--iterations only applies to the bundled sha-chain program");
        }
        cairn_guests::sha_chain_input(n, b"cairn")
    } else {
        match guest.map(|g| g.name) {
            Some("sha-chain") => {
                cairn_guests::sha_chain_input(DEFAULT_SHA_CHAIN_ITERATIONS, b"cairn")
            }
            Some("eth-block") => default_eth_block(),
            _ => Vec::new(),
        }
    };
    Ok(Resolved {
        name,
        binary,
        input,
        guest,
    })
}

/// The block `eth-block` runs without `--input`: a few signed transfers, a token transfer and a swap (seed
/// 1), synthetic. Real blocks: `cairn block import`; larger synthetic ones: `cairn block gen`.
pub fn default_eth_block() -> Vec<u8> {
    let cfg = cairn_evm::gen::GenConfig {
        gas: DEFAULT_ETH_BLOCK_GAS,
        accounts: 16,
        tokens: 2,
        pools: 1,
        ..Default::default()
    };
    cairn_evm::gen::generate(&cfg)
        .expect("the default block generates")
        .input
        .encode()
}

/// Gas of the default `eth-block` input.
pub const DEFAULT_ETH_BLOCK_GAS: u64 = 200_000;
