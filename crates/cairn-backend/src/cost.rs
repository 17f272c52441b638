//! A cost model of segment proving, calibrated on the measurements in `shared/reference/risc0-offline.md`
//! (risc0 3.0.6 on a 2-core machine). Used by the fake backend for its latencies and by capacity planning
//! (which po2 fits in a node's memory).

use std::time::Duration;

/// Measured on a 2-core / 24 GB machine: (po2, seconds per segment, peak RSS in bytes, receipt bytes).
/// Odd po2 values are interpolated (time and memory double with each po2 step).
const MEASURED: [(u8, f64, u64, u64); 4] = [
    (14, 8.2, 162_000_000, 199_000),
    (16, 34.0, 610_000_000, 221_000),
    (18, 137.0, 2_410_000_000, 256_000),
    (20, 555.0, 9_590_000_000, 281_000),
];

/// Seconds and bytes for one lift or join on the same machine (calibration from risc0 5.0.0-rc.1 lift).
pub const RECURSION_SECS: f64 = 50.0;
/// Peak memory of a lift or join.
pub const RECURSION_PEAK_BYTES: u64 = 1_500_000_000;
/// Size of a succinct receipt.
pub const SUCCINCT_RECEIPT_BYTES: u64 = 230_000;

/// Cycles RISC Zero 3.x's executor keeps free at the end of every segment for the longest instruction it may
/// have to fit (`risc0_circuit_rv32im::MAX_INSN_CYCLES` from po2 15 up, `MAX_INSN_CYCLES_LOWER_PO2` below).
pub fn reserved_insn_cycles(po2: u8) -> u64 {
    if po2 >= 15 {
        25_000
    } else {
        2_000
    }
}

/// Fixed cycles of every segment besides the reserve: lookup tables and control (`RESERVED_CYCLES`, 4,113).
pub const FIXED_SEGMENT_CYCLES: u64 = 4_113;

/// At most how many cycles of a segment of 2^po2 are left for the guest and its paging. At po2 15 this is
/// 3,655 of 32,768 (11 %), fewer than at po2 14 (10,271 of 16,384): that is why po2 15 gives several times
/// more segments than po2 14 or 16 for the same program.
pub fn usable_cycles(po2: u8) -> u64 {
    (1u64 << po2).saturating_sub(reserved_insn_cycles(po2) + FIXED_SEGMENT_CYCLES)
}

/// Cost of proving one segment of a given po2 on a reference 2-core machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentCost {
    pub prove_secs: f64,
    pub peak_bytes: u64,
    pub receipt_bytes: u64,
}

/// Cost of proving a segment of 2^po2 cycles on the reference machine (speed factor 1.0).
pub fn segment_cost(po2: u8) -> SegmentCost {
    let (base_po2, secs, peak, receipt) = *MEASURED
        .iter()
        .rev()
        .find(|(p, ..)| *p <= po2)
        .unwrap_or(&MEASURED[0]);
    let scale = 2f64.powi(i32::from(po2) - i32::from(base_po2));
    // Receipt size grows slowly (~6% per po2 step in the measurements).
    let receipt_scale = 1.06f64.powi(i32::from(po2) - i32::from(base_po2));
    SegmentCost {
        prove_secs: secs * scale,
        peak_bytes: (peak as f64 * scale) as u64,
        receipt_bytes: (receipt as f64 * receipt_scale) as u64,
    }
}

/// Largest po2 whose proof fits in `memory_bytes`, keeping `reserve_bytes` for the OS and the node itself.
/// `None` if not even the smallest segment fits.
pub fn max_po2_for_memory(memory_bytes: u64, reserve_bytes: u64) -> Option<u8> {
    let usable = memory_bytes.saturating_sub(reserve_bytes);
    (crate::MIN_PO2..=crate::MAX_PO2)
        .rev()
        .find(|&po2| segment_cost(po2).peak_bytes <= usable)
}

/// Expected proving time of a segment at a node that is `speed` times the reference machine.
pub fn prove_time(po2: u8, speed: f64) -> Duration {
    Duration::from_secs_f64(segment_cost(po2).prove_secs / speed.max(1e-6))
}

/// Cycles proved per cycle of the same program at po2 22 (paging and the per-segment reserve), measured on the
/// 65.6 M-cycle `seed-bench` program with RISC Zero 3.0.6 (`docs/BENCHMARKS.md` section 1: 2.17x at po2 16,
/// 1.39x at 17, 1.17x at 18, 1.08x at 19, 1.04x at 20). Po2 21 is interpolated. Po2 14 and 15 went past that
/// benchmark's segment cap (over 1.20x and 2.40x); `cairn execute --sweep` of `sha-chain` (100 and 2,000
/// iterations) measured 2.38-2.40x at po2 14 and 42x at po2 15, where RISC Zero 3.x leaves 3,655 of 32,768
/// cycles of a segment to the guest and its paging. A guide for scaling one execution to other sizes, not a
/// law: paging depends on how much memory a program touches per segment.
pub fn paging_inflation(po2: u8) -> f64 {
    match po2 {
        0..=14 => 2.4,
        15 => 42.0,
        16 => 2.17,
        17 => 1.39,
        18 => 1.17,
        19 => 1.08,
        20 => 1.04,
        21 => 1.02,
        _ => 1.0,
    }
}

/// Segments and total cycles at `po2` of a program that executed into `probe_total` cycles (padded, what is
/// proved) at `probe_po2`, scaled by [`paging_inflation`].
pub fn scale_execution(probe_po2: u8, probe_total: u64, po2: u8) -> (u32, u64) {
    let total = probe_total as f64 * paging_inflation(po2) / paging_inflation(probe_po2);
    let size = (1u64 << po2.min(63)) as f64;
    let segments = (total / size).ceil().max(1.0);
    (segments as u32, (segments * size) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_measurements_and_doubles_per_step() {
        assert_eq!(segment_cost(14).prove_secs, 8.2);
        assert_eq!(segment_cost(18).peak_bytes, 2_410_000_000);
        assert_eq!(segment_cost(15).prove_secs, 16.4);
        assert!(segment_cost(22).prove_secs > 2000.0);
    }

    #[test]
    fn po2_15_leaves_less_room_than_po2_14() {
        assert_eq!(usable_cycles(14), 10_271);
        assert_eq!(usable_cycles(15), 3_655);
        assert!(usable_cycles(16) > 4 * usable_cycles(15));
    }

    #[test]
    fn one_execution_scales_to_other_sizes() {
        // BENCHMARKS section 1: 68 segments at po2 20 -> 305 at po2 18 (measured), 2,255 at 16.
        let (s18, t18) = scale_execution(20, 68 << 20, 18);
        assert!((290..=320).contains(&s18), "{s18}");
        assert_eq!(t18, u64::from(s18) << 18);
        let (s16, _) = scale_execution(20, 68 << 20, 16);
        assert!((2_100..=2_400).contains(&s16), "{s16}");
        assert_eq!(scale_execution(20, 68 << 20, 20).0, 68);
        assert_eq!(
            scale_execution(14, 1 << 14, 22).0,
            1,
            "never fewer than one segment"
        );
    }

    #[test]
    fn memory_to_po2() {
        // A 4 GB laptop keeping 1 GB for itself proves po2 18 (2.4 GB), not 19 (4.8 GB).
        assert_eq!(max_po2_for_memory(4_000_000_000, 1_000_000_000), Some(18));
        assert_eq!(max_po2_for_memory(16_000_000_000, 1_000_000_000), Some(20));
        assert_eq!(max_po2_for_memory(100_000_000, 0), None);
    }
}
