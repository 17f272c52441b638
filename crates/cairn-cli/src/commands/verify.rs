//! `cairn verify`: check a receipt file against a program or image id.

use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_backend::{Digest32, ProvingBackend};
use cairn_risc0::RiscZeroBackend;

use crate::cli::VerifyArgs;

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let backend = RiscZeroBackend::new();
    let bytes = std::fs::read(&args.receipt)
        .with_context(|| format!("reading receipt {}", args.receipt.display()))?;
    let (image_id, guest) = match (&args.program, &args.image_id) {
        (_, Some(hex)) => (Digest32::from_hex(hex)?, None),
        (Some(p), None) => {
            let guest = cairn_guests::by_name(p);
            let binary = match guest {
                Some(g) => g.binary.to_vec(),
                None => std::fs::read(p).with_context(|| format!("reading program {p}"))?,
            };
            (backend.image_id(&binary)?, guest)
        }
        (None, None) => bail!("give --program or --image-id"),
    };
    let journal = match backend.verify_receipt(&bytes, &image_id) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("NOT VERIFIED: {} ({})", args.receipt.display(), e);
            return Ok(ExitCode::FAILURE);
        }
    };
    if let (Some(g), Some(input)) = (guest, &args.expect.input) {
        let input = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        let reference =
            cairn_guests::reference_journal(&g, &input).context("the guest rejects that input")?;
        if reference != journal {
            eprintln!("NOT VERIFIED: the proof is valid but its journal differs from the host reference for that input");
            return Ok(ExitCode::FAILURE);
        }
    }
    println!(
        "verified: {} proves image id {image_id}",
        args.receipt.display()
    );
    println!(
        "journal ({} bytes): {}",
        journal.len(),
        hex::encode(&journal)
    );
    if let Some(text) = guest.and_then(|g| cairn_guests::describe_journal(&g, &journal)) {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
