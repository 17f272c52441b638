//! Wraps guest ELFs into RISC Zero program binaries and records their image ids.
//! Used by `scripts/build-guests.sh`: `package_guests OUT_DIR NAME.elf...` writes OUT_DIR/NAME.bin and
//! OUT_DIR/NAME.image-id for each ELF.

use std::path::PathBuf;

use cairn_backend::ProvingBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: package_guests OUT_DIR NAME.elf...")?,
    );
    let backend = cairn_risc0::RiscZeroBackend::new();
    for elf_path in args {
        let elf_path = PathBuf::from(elf_path);
        let name = elf_path
            .file_stem()
            .ok_or("ELF path has no name")?
            .to_string_lossy()
            .into_owned();
        let binary = cairn_risc0::program_binary(&std::fs::read(&elf_path)?)?;
        let id = backend.image_id(&binary)?;
        std::fs::write(out.join(format!("{name}.bin")), &binary)?;
        std::fs::write(out.join(format!("{name}.image-id")), id.to_string())?;
        println!("{name}: image id {id} ({} bytes)", binary.len());
    }
    Ok(())
}
