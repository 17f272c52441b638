//! The cost model: how long proving, recursion and transfers take, how much memory a segment needs, and how big
//! blobs and receipts are. Every constant comes from a measurement cited next to it.
//!
//! Sources: `risc0-offline.md` (risc0 3.0.6 on a 2-core machine: po2 14 8.2 s / 162 MB, 16 34 s / 610 MB,
//! 18 137 s / 2.41 GB, 20 555 s / 9.59 GB; SegmentReceipt 199 / 221 / 256 / 281 KB; one lift 48-50 s and
//! 1.44 GB) and `wholesum-measurements.md` Table 2 (the seed's 65.6 M-user-cycle program, its segment counts,
//! total cycles and segment blob sizes per po2).

/// Smallest and largest segment size that risc0 3.x accepts.
pub const MIN_PO2: u8 = 14;
pub const MAX_PO2: u8 = 22;

/// Measured wall time (s) and peak RSS (bytes) to prove one segment on a 2-core machine, at even po2.
const MEASURED: [(u8, f64, f64); 4] = [
    (14, 8.2, 162.0e6),
    (16, 34.0, 610.0e6),
    (18, 137.0, 2.41e9),
    (20, 555.0, 9.59e9),
];

/// Log-linear interpolation of the measured table; beyond po2 20 time and memory double per step.
fn interpolate(po2: u8, pick: impl Fn(&(u8, f64, f64)) -> f64) -> f64 {
    let po2 = po2.clamp(MIN_PO2, MAX_PO2);
    let last = MEASURED[MEASURED.len() - 1];
    if po2 >= last.0 {
        return pick(&last) * 2f64.powi(i32::from(po2 - last.0));
    }
    for pair in MEASURED.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if po2 >= a.0 && po2 <= b.0 {
            let t = f64::from(po2 - a.0) / f64::from(b.0 - a.0);
            return (pick(&a).ln() * (1.0 - t) + pick(&b).ln() * t).exp();
        }
    }
    pick(&MEASURED[0])
}

/// Seconds to prove one segment of size 2^po2 on the reference 2-core machine (speed 1.0).
pub fn prove_secs(po2: u8) -> f64 {
    interpolate(po2, |m| m.1)
}

/// Peak memory (bytes) to prove one segment of size 2^po2.
pub fn prove_memory(po2: u8) -> f64 {
    interpolate(po2, |m| m.2)
}

/// Cycles per second of the reference machine at this po2 (~1.9-2.0 kHz).
pub fn reference_hz(po2: u8) -> f64 {
    (1u64 << po2) as f64 / prove_secs(po2)
}

/// Memory a node keeps for its operating system and the node process.
pub const OS_RESERVE_BYTES: f64 = 0.5e9;

/// Largest po2 a node with this much memory can prove (measured RSS, after the OS reserve); None if not even
/// po2 14 fits.
pub fn max_po2_for_memory(memory_bytes: u64) -> Option<u8> {
    let usable = memory_bytes as f64 - OS_RESERVE_BYTES;
    (MIN_PO2..=MAX_PO2)
        .rev()
        .find(|&p| prove_memory(p) <= usable)
}

/// One lift or join: a recursion proof of fixed size, ~50 s and ~1.5 GB on the reference machine.
pub const RECURSION_SECS: f64 = 50.0;
pub const RECURSION_MEMORY_BYTES: f64 = 1.5e9;

/// A succinct receipt (output of lift / join): constant size, 200-250 KB.
pub const SUCCINCT_RECEIPT_BYTES: f64 = 230e3;

/// Size of a segment receipt (the unit of a composite receipt): 199 KB at po2 14 to 281 KB at po2 20.
pub fn segment_receipt_bytes(po2: u8) -> f64 {
    let po2 = f64::from(po2.clamp(MIN_PO2, MAX_PO2));
    (199e3 + (po2 - 14.0) * (281e3 - 199e3) / 6.0).max(199e3)
}

/// Size of a serialized segment blob (Table 2: 19 KB at po2 15 ... 529 KB at po2 20 ... 2 MB at po2 22; po2 14
/// is extrapolated as half of po2 15).
pub fn segment_blob_bytes(po2: u8) -> f64 {
    match po2 {
        0..=14 => 9.5e3,
        15 => 19e3,
        16 => 38e3,
        17 => 67e3,
        18 => 133e3,
        19 => 265e3,
        20 => 529e3,
        21 => 1.1e6,
        _ => 2.0e6,
    }
}

/// Time for the driver to verify one received receipt (composite verification of 8 segments: 0.1 s).
pub const VERIFY_SECS_PER_RECEIPT: f64 = 0.0125;

/// Table 2: the seed's 65.6 M-user-cycle program split at po2 15..24 (segments, total cycles with paging).
const SEED_PROGRAM: [(u8, u32, f64); 10] = [
    (15, 16_808, 551.0e6),
    (16, 2_174, 142.5e6),
    (17, 801, 105.0e6),
    (18, 355, 92.9e6),
    (19, 168, 87.8e6),
    (20, 82, 85.5e6),
    (21, 41, 84.4e6),
    (22, 20, 83.9e6),
    (23, 10, 83.9e6),
    (24, 5, 83.9e6),
];

/// User cycles of the seed's program.
pub const SEED_USER_CYCLES: f64 = 65.6e6;

/// Segments and total cycles of a program of `user_cycles` at `po2`. The seed's own program returns Table 2
/// exactly; any other size uses Table 2's paging inflation at that po2 (relative to the user cycles).
pub fn split_program(user_cycles: f64, po2: u8) -> (u32, f64) {
    let row = SEED_PROGRAM.iter().find(|r| r.0 == po2);
    match row {
        Some(&(_, segments, total)) if (user_cycles - SEED_USER_CYCLES).abs() < 1.0 => {
            (segments, total)
        }
        Some(&(_, _, total)) => {
            let total = user_cycles * total / SEED_USER_CYCLES;
            (segments_for(total, po2), total)
        }
        None => {
            // po2 14 (not in Table 2): extrapolate the inflation trend (x6.57 at 15 doubles and more); use the
            // po2 15 inflation as an optimistic floor.
            let total = user_cycles * SEED_PROGRAM[0].2 / SEED_USER_CYCLES;
            (segments_for(total, po2), total)
        }
    }
}

fn segments_for(total_cycles: f64, po2: u8) -> u32 {
    ((total_cycles / (1u64 << po2) as f64).ceil() as u32).max(1)
}

/// Depth of each leaf in the scheduler's join tree of `segments` leaves (its "mountain range").
pub use cairn_scheduler::predict::mountain_range_depths;

/// ceil(log2 n) for n >= 1.
pub fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_matches_measurements() {
        assert!((prove_secs(14) - 8.2).abs() < 1e-9);
        assert!((prove_secs(18) - 137.0).abs() < 1e-9);
        assert!((prove_secs(20) - 555.0).abs() < 1e-9);
        // Odd po2 sits between its neighbours (geometric mean).
        let p19 = prove_secs(19);
        assert!(p19 > 137.0 * 1.9 && p19 < 555.0 / 1.9, "{p19}");
        assert!((prove_secs(21) - 1110.0).abs() < 1e-9);
        let hz = reference_hz(18);
        assert!((1850.0..2050.0).contains(&hz), "{hz}");
    }

    #[test]
    fn memory_decides_max_po2() {
        const GB: u64 = 1_000_000_000;
        assert_eq!(max_po2_for_memory(2 * GB), Some(17));
        assert_eq!(max_po2_for_memory(4 * GB), Some(18));
        assert_eq!(max_po2_for_memory(8 * GB), Some(19));
        assert_eq!(max_po2_for_memory(16 * GB), Some(20));
        assert_eq!(max_po2_for_memory(32 * GB), Some(21));
        assert_eq!(max_po2_for_memory(GB / 2), None);
    }

    #[test]
    fn seed_program_is_table_2() {
        assert_eq!(split_program(SEED_USER_CYCLES, 19), (168, 87.8e6));
        assert_eq!(split_program(SEED_USER_CYCLES, 15).0, 16_808);
        let (s, total) = split_program(3.0e9, 20);
        assert!((total / 3.0e9 - 85.5 / 65.6).abs() < 1e-9);
        assert_eq!(s, (total / 1_048_576.0).ceil() as u32);
        assert!((segment_blob_bytes(20) - 529e3).abs() < 1.0);
    }

    /// The tree's shape itself is tested with `cairn_scheduler::predict`; here, that `ceil_log2` (the formula
    /// bound's join depth) is its height.
    #[test]
    fn ceil_log2_is_the_join_tree_height() {
        for s in 1..300u32 {
            let d = mountain_range_depths(s);
            assert_eq!(*d.iter().max().expect("leaf"), ceil_log2(s), "S={s}");
        }
        assert_eq!(ceil_log2(168), 8);
        assert_eq!(ceil_log2(16_808), 15);
    }
}
