//! What this machine can prove: memory, the largest po2 that fits, and a measured speed.

use std::time::Instant;

use cairn_backend::{cost, ProvingBackend};
use cairn_net::protocol::NodeCapacity;

/// Memory kept for the OS and the node itself when choosing the largest po2.
pub const RESERVE_BYTES: u64 = 512 << 20;

/// Available memory from /proc/meminfo (MemAvailable), if readable.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Capacity from memory and worker count: each worker may hold one proof, so memory is split among them.
pub fn capacity(
    memory_bytes: u64,
    workers: u32,
    recursion: bool,
    cycles_per_sec: u64,
) -> NodeCapacity {
    let per_worker = memory_bytes.saturating_sub(RESERVE_BYTES) / u64::from(workers.max(1));
    NodeCapacity {
        memory_bytes,
        max_po2: cost::max_po2_for_memory(per_worker, 0).unwrap_or(0),
        cycles_per_sec,
        slots: workers.max(1),
        recursion,
    }
}

/// Proof of workload: prove one small segment of a known program and report cycles per second. The client
/// can re-run the same benchmark to check a claim (same program, same segment, known cost).
pub fn benchmark(
    backend: &dyn ProvingBackend,
    program: &[u8],
    input: &[u8],
    po2: u8,
) -> Result<(u64, f64), cairn_backend::BackendError> {
    let mut first = None;
    backend.execute(program, input, po2, &mut |blob| {
        if first.is_none() {
            first = Some(blob);
        }
        Ok(())
    })?;
    let blob = first.ok_or_else(|| {
        cairn_backend::BackendError::Execution("benchmark produced no segment".into())
    })?;
    let t = Instant::now();
    backend.prove_segment(&blob.bytes)?;
    let secs = t.elapsed().as_secs_f64().max(1e-3);
    Ok((((1u64 << po2) as f64 / secs) as u64, secs))
}
