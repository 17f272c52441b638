//! `--po2 auto`: the client chooses the segment size (and, where it may, composite receipt or join tree) that
//! its prediction of the job's time-to-proof says is fastest on the provers it can see now.
//!
//! 1. **Provers.** It waits until the pool has stopped growing (no prover joined for `settle`, at most
//!    `discovery`), then takes every live prover's memory (its largest po2), slots, recursion and speed as the
//!    scheduler knows it (claimed from its benchmark, or learned from earlier results kept in the database).
//! 2. **The program's size.** It executes the program once at the largest po2 any prover can take (keeping
//!    nothing) and times it. Where that took under [`EXACT_PROBE_SECS`], it executes at smaller po2 too, as
//!    long as those runs are expected to take [`EXACT_BUDGET_SECS`] in all (exact segment counts for small
//!    programs, whose paging no table predicts); otherwise it scales the one execution by the paging inflation
//!    measured in `docs/BENCHMARKS.md` ([`cairn_backend::cost`]). Sizes whose paging would take the run past
//!    the job's cycle limit are left out.
//!
//! A job this database has seen before (same program and input) keeps the po2 and aggregation of that run,
//! so submitting it again resumes it instead of choosing afresh ([`Po2Choice::kept`]).
//! 3. **The prediction.** For each po2 and aggregation, `cairn_scheduler::predict` on the scheduler's own cost
//!    model: the larger of the job's critical path and its capacity bound (the leaves packed onto the prover
//!    lanes, each followed by its joins). Receipts over `max_receipt_bytes` (a composite receipt is one segment
//!    receipt per segment) are left out; the fastest of the rest wins, the smaller po2 on a tie.
//!
//! The prediction is of the job alone, with an assumed link (`AutoPo2`) and a measured per-receipt cost
//! ([`VERIFY_SECS`]): it ignores other jobs on the same provers, faults and churn, and trusts the provers'
//! speeds. `cairn bench po2-auto` puts it next to measured devnet times (`docs/BENCHMARKS.md`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend::{cost, ProvingBackend};
use cairn_scheduler::predict::{self, Overheads, Prediction};
use cairn_scheduler::{Aggregation, NodeCapacity, SchedulerConfig};
use serde::Serialize;

use super::{JobSettings, Service};
use crate::NodeError;

/// A first execution faster than this is repeated at smaller po2 for exact segment counts...
pub const EXACT_PROBE_SECS: f64 = 1.0;

/// ... while the repeats are expected (by the paging each size adds) to take at most this long in all.
pub const EXACT_BUDGET_SECS: f64 = 3.0;

/// Per received receipt: the client's check and the network's share (0.1 s per segment on the devnet, offer to
/// verified result minus the prover's own proving time: `docs/BENCHMARKS.md` section 2).
pub const VERIFY_SECS: f64 = 0.1;

/// How a client chooses its po2.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoPo2 {
    /// The aggregations it may choose between (`--aggregation`: one, or both where recursion is available).
    pub aggregations: Vec<Aggregation>,
    /// Leave out choices whose final receipt would be larger (`--max-receipt-mb`).
    pub max_receipt_bytes: Option<u64>,
    /// Wait at most this long for provers to be heard.
    pub discovery: Duration,
    /// The pool is complete once no prover has joined for this long.
    pub settle: Duration,
    /// One-way latency to a prover (seconds) and bytes per second between the client and a prover.
    pub latency_secs: f64,
    pub bytes_per_sec: f64,
}

impl Default for AutoPo2 {
    fn default() -> Self {
        Self {
            aggregations: vec![Aggregation::Composite],
            max_receipt_bytes: None,
            discovery: Duration::from_secs(30),
            settle: Duration::from_secs(3),
            // A home connection: 20 ms, 100 Mbit/s.
            latency_secs: 0.02,
            bytes_per_sec: 12.5e6,
        }
    }
}

/// One candidate of the choice.
#[derive(Debug, Clone, Serialize)]
pub struct Po2Row {
    pub po2: u8,
    pub aggregation: Aggregation,
    pub segments: u32,
    pub total_cycles: u64,
    /// From an execution at this po2 (true) or scaled from one at another (false).
    pub executed: bool,
    /// `None`: no prover can take a segment of this size (or the join tree's recursion).
    pub predicted_secs: Option<f64>,
    pub critical_secs: Option<f64>,
    pub capacity_secs: Option<f64>,
    pub receipt_bytes: u64,
    pub over_budget: bool,
}

/// What `--po2 auto` chose and why.
#[derive(Debug, Clone, Serialize)]
pub struct Po2Choice {
    pub po2: u8,
    pub aggregation: Aggregation,
    pub predicted_secs: f64,
    pub provers: usize,
    /// Proving lanes (a prover's slots) across the pool.
    pub lanes: u32,
    pub user_cycles: u64,
    /// Executor speed measured by the first execution (cycles per second).
    pub exec_hz: f64,
    /// Seconds spent choosing (waiting for provers and executing).
    pub choose_secs: f64,
    pub rows: Vec<Po2Row>,
    /// Not chosen now: the size of an earlier run of the same job in this database, kept so that its verified
    /// segments are reused (no prediction was made).
    pub kept: bool,
}

impl Po2Choice {
    /// The size of an earlier run of the same job (see [`Po2Choice::kept`]).
    pub fn kept(po2: u8, aggregation: Aggregation) -> Self {
        Self {
            po2,
            aggregation,
            predicted_secs: f64::NAN,
            provers: 0,
            lanes: 0,
            user_cycles: 0,
            exec_hz: 0.0,
            choose_secs: 0.0,
            rows: Vec::new(),
            kept: true,
        }
    }

    /// The settings to prove with.
    pub fn apply(&self, settings: &JobSettings) -> JobSettings {
        JobSettings {
            po2: self.po2,
            aggregation: self.aggregation,
            auto: None,
            ..settings.clone()
        }
    }

    /// A table of every candidate, for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if self.kept {
            return format!(
                "po2 auto: keeping po2 {} ({}) of the earlier run of this job in the database, to reuse its verified segments",
                self.po2,
                aggregation_name(self.aggregation)
            );
        }
        let _ = writeln!(
            out,
            "po2 auto: {} prover(s), {} lane(s); program {} user cycles; executor {:.1} MHz; chose po2 {} ({}), predicted {:.1} s",
            self.provers,
            self.lanes,
            self.user_cycles,
            self.exec_hz / 1e6,
            self.po2,
            aggregation_name(self.aggregation),
            self.predicted_secs
        );
        let _ = writeln!(
            out,
            "  po2  receipt     segments  predicted  (critical path / capacity)  receipt size"
        );
        for r in &self.rows {
            let secs = match (r.predicted_secs, r.critical_secs, r.capacity_secs) {
                (Some(p), Some(c), Some(k)) => format!("{p:>8.1} s  ({c:.1} / {k:.1} s)"),
                _ => "  no prover fits".into(),
            };
            let mark = if r.po2 == self.po2 && r.aggregation == self.aggregation {
                "  <- chosen"
            } else if r.over_budget {
                "  over --max-receipt-mb"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {:>3}  {:<10} {:>9}{} {secs:<36} {:>7.1} MB{mark}",
                r.po2,
                aggregation_name(r.aggregation),
                r.segments,
                if r.executed { " " } else { "~" },
                r.receipt_bytes as f64 / 1e6,
            );
        }
        if self.rows.iter().any(|r| !r.executed) {
            out.push_str(
                "  (~: segments scaled from one execution by the paging measured in docs/BENCHMARKS.md)\n",
            );
        }
        out.trim_end().to_string()
    }
}

fn aggregation_name(a: Aggregation) -> &'static str {
    match a {
        Aggregation::Composite => "composite",
        Aggregation::JoinTree => "join tree",
    }
}

impl Service {
    /// Chooses the po2 (and aggregation) of a job as the module docs describe.
    pub async fn choose_po2(
        &self,
        program: &[u8],
        input: &[u8],
        settings: &JobSettings,
        auto: &AutoPo2,
    ) -> Result<Po2Choice, NodeError> {
        let start = Instant::now();
        let provers = self.wait_for_provers(auto).await?;
        let largest = provers
            .iter()
            .map(|c| c.max_po2)
            .max()
            .unwrap_or(cairn_backend::MIN_PO2)
            .clamp(cairn_backend::MIN_PO2, cairn_backend::MAX_PO2);
        let sizes = execute_sizes(
            self.backend.clone(),
            program,
            input,
            largest,
            settings.cycle_limit,
        )
        .await?;
        let choice = choose(
            &self.scheduler,
            &provers,
            &sizes,
            auto,
            start.elapsed().as_secs_f64(),
        )?;
        Ok(choice)
    }

    /// The pool once no prover has joined for `auto.settle` (at least one prover), or at `auto.discovery`.
    async fn wait_for_provers(&self, auto: &AutoPo2) -> Result<Vec<NodeCapacity>, NodeError> {
        let start = Instant::now();
        let (mut count, mut since) = (0usize, Instant::now());
        loop {
            let provers = self.provers().await?;
            if provers.len() != count {
                (count, since) = (provers.len(), Instant::now());
            }
            let waited = start.elapsed();
            if (count > 0 && since.elapsed() >= auto.settle) || waited >= auto.discovery {
                if provers.is_empty() {
                    return Err(NodeError::Config(format!(
                        "--po2 auto heard of no prover within {} s, so it has nothing to predict from: check \
                         --bootstrap / --relay / --mdns, or pass a po2 (for example --po2 18)",
                        auto.discovery.as_secs()
                    )));
                }
                return Ok(provers);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What executions told of the program: (po2, segments, total cycles, executed here) for po2 14 up to
/// `largest`, and the user cycles and executor speed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    pub user_cycles: u64,
    pub exec_hz: f64,
    pub by_po2: Vec<(u8, u32, u64, bool)>,
}

/// Executes at `largest`, then at smaller po2 where that is cheap (see [`EXACT_BUDGET_SECS`]) and scales the
/// first execution to the others; sizes whose paging would exceed `cycle_limit` are left out. Off the runtime.
async fn execute_sizes(
    backend: Arc<dyn ProvingBackend>,
    program: &[u8],
    input: &[u8],
    largest: u8,
    cycle_limit: Option<u64>,
) -> Result<Sizes, NodeError> {
    let (program, input) = (program.to_vec(), input.to_vec());
    tokio::task::spawn_blocking(move || {
        let run = |po2: u8| {
            let t = Instant::now();
            // A guest that panics the executor fails the submission with its message, as a job would.
            let s = super::unpanicked(
                || backend.execute_limited(&program, &input, po2, cycle_limit, &mut |_| Ok(())),
                cairn_backend::BackendError::Execution,
            )?;
            Ok::<_, NodeError>((s, t.elapsed().as_secs_f64()))
        };
        let (probe, secs) = run(largest)?;
        let exec_hz = probe.total_cycles as f64 / secs.max(1e-3);
        let mut budget = if secs < EXACT_PROBE_SECS {
            EXACT_BUDGET_SECS
        } else {
            0.0
        };
        let mut by_po2 = Vec::new();
        for po2 in cairn_backend::MIN_PO2..largest {
            let scale = cost::paging_inflation(po2) / cost::paging_inflation(largest);
            if secs * scale <= budget {
                let t = Instant::now();
                match run(po2) {
                    Ok((s, _)) => by_po2.push((po2, s.segments, s.total_cycles, true)),
                    // Paging at this size takes the run over the job's cycle limit: not a candidate.
                    Err(NodeError::Backend(cairn_backend::BackendError::CycleLimit { .. })) => {}
                    Err(e) => return Err(e),
                }
                budget -= t.elapsed().as_secs_f64();
            } else {
                let (segments, total) = cost::scale_execution(largest, probe.total_cycles, po2);
                if cycle_limit.is_none_or(|l| total <= l) {
                    by_po2.push((po2, segments, total, false));
                }
            }
        }
        by_po2.push((largest, probe.segments, probe.total_cycles, true));
        Ok(Sizes {
            user_cycles: probe.user_cycles,
            exec_hz,
            by_po2,
        })
    })
    .await
    .map_err(NodeError::join)?
}

/// The prediction for every candidate, and the fastest within the receipt budget.
pub fn choose(
    cfg: &SchedulerConfig,
    provers: &[NodeCapacity],
    sizes: &Sizes,
    auto: &AutoPo2,
    choose_secs: f64,
) -> Result<Po2Choice, NodeError> {
    let mut rows = Vec::new();
    for &(po2, segments, total_cycles, executed) in &sizes.by_po2 {
        let seg_receipt = cost::segment_cost(po2).receipt_bytes;
        for &aggregation in &auto.aggregations {
            let receipt_bytes = match aggregation {
                Aggregation::Composite => u64::from(segments) * seg_receipt,
                Aggregation::JoinTree => cost::SUCCINCT_RECEIPT_BYTES,
            };
            let overheads = Overheads {
                exec_hz: sizes.exec_hz,
                latency_secs: auto.latency_secs,
                bytes_per_sec: auto.bytes_per_sec,
                blob_bytes: total_cycles as f64 / f64::from(segments.max(1)) * BLOB_BYTES_PER_CYCLE,
                segment_receipt_bytes: seg_receipt as f64,
                succinct_receipt_bytes: cost::SUCCINCT_RECEIPT_BYTES as f64,
                verify_secs: VERIFY_SECS,
            };
            let p: Option<Prediction> = predict::job_costs(
                cfg,
                provers,
                po2,
                segments,
                total_cycles as f64,
                aggregation,
                &overheads,
            )
            .and_then(|c| predict::predict(&c));
            rows.push(Po2Row {
                po2,
                aggregation,
                segments,
                total_cycles,
                executed,
                predicted_secs: p.map(|p| p.secs),
                critical_secs: p.map(|p| p.critical_secs),
                capacity_secs: p.map(|p| p.capacity_secs),
                receipt_bytes,
                over_budget: auto.max_receipt_bytes.is_some_and(|m| receipt_bytes > m),
            });
        }
    }
    let best = rows
        .iter()
        .filter(|r| !r.over_budget)
        .filter_map(|r| Some((r.predicted_secs?, r)))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.po2.cmp(&b.1.po2)))
        .map(|(_, r)| (r.po2, r.aggregation, r.predicted_secs.unwrap_or(0.0)));
    let Some((po2, aggregation, predicted_secs)) = best else {
        let why = if rows.iter().any(|r| r.predicted_secs.is_some()) {
            format!(
                "every choice a prover can take makes a receipt over --max-receipt-mb {:.1} (the smallest: {:.1} MB); \
                 raise it, or ask for a succinct receipt (--aggregation join-tree, which needs recursion)",
                auto.max_receipt_bytes.unwrap_or(0) as f64 / 1e6,
                rows.iter()
                    .filter(|r| r.predicted_secs.is_some())
                    .map(|r| r.receipt_bytes)
                    .min()
                    .unwrap_or(0) as f64
                    / 1e6
            )
        } else {
            "no prover can take any po2 of this job (a join tree also needs provers with recursion)"
                .into()
        };
        return Err(NodeError::Config(format!("--po2 auto: {why}")));
    };
    Ok(Po2Choice {
        po2,
        aggregation,
        predicted_secs,
        provers: provers.len(),
        lanes: provers
            .iter()
            .map(|c| c.slots.min(cfg.per_node_in_flight_cap))
            .sum(),
        user_cycles: sizes.user_cycles,
        exec_hz: sizes.exec_hz,
        choose_secs,
        rows,
        kept: false,
    })
}

/// A serialized segment's size per cycle it holds (~0.5 B: 529 KB at po2 20 in the seed's Table 2, 89 KB
/// measured here; the larger is assumed).
const BLOB_BYTES_PER_CYCLE: f64 = 0.5;

#[cfg(test)]
mod tests {
    use super::*;

    fn prover(max_po2: u8, cycles_per_sec: f64) -> NodeCapacity {
        NodeCapacity {
            memory_bytes: 0,
            max_po2,
            cycles_per_sec,
            slots: 1,
            recursion: false,
        }
    }

    fn sizes() -> Sizes {
        // A program that needs 64 po2 14 segments, 16 at 16, 4 at 18 (no paging, for the arithmetic).
        Sizes {
            user_cycles: 1 << 20,
            exec_hz: 1e9,
            by_po2: vec![
                (14, 64, 64 << 14, true),
                (16, 16, 16 << 16, true),
                (18, 4, 4 << 18, true),
            ],
        }
    }

    fn auto() -> AutoPo2 {
        AutoPo2 {
            latency_secs: 0.0,
            ..AutoPo2::default()
        }
    }

    #[test]
    fn many_provers_choose_small_segments_and_few_choose_large() {
        let cfg = SchedulerConfig::default();
        // 64 provers: every po2 14 segment at once, 8 s; po2 18 would take 4 x 16 x 1.06 x 8 s.
        let many: Vec<_> = (0..64).map(|_| prover(20, 2048.0)).collect();
        let c = choose(&cfg, &many, &sizes(), &auto(), 0.0).expect("choice");
        assert_eq!(c.po2, 14, "{}", c.table());
        // One prover: the same work either way, but per-segment costs (the check, the transfer) favour
        // fewer segments, and larger segments cost 1.5 % more per cycle per step: the prediction weighs both.
        let one = [prover(20, 2048.0)];
        let c1 = choose(&cfg, &one, &sizes(), &auto(), 0.0).expect("choice");
        let p = |po2: u8| {
            c1.rows
                .iter()
                .find(|r| r.po2 == po2)
                .and_then(|r| r.predicted_secs)
                .expect("row")
        };
        assert!(p(14) > 64.0 * 8.0 && p(18) > 4.0 * 128.0, "{}", c1.table());
        assert_eq!(
            c1.predicted_secs,
            [p(14), p(16), p(18)].into_iter().fold(f64::MAX, f64::min)
        );
    }

    #[test]
    fn provers_without_the_memory_rule_out_large_segments() {
        let cfg = SchedulerConfig::default();
        let small = [prover(16, 2048.0), prover(16, 2048.0)];
        let c = choose(&cfg, &small, &sizes(), &auto(), 0.0).expect("choice");
        assert!(c.po2 <= 16);
        let row18 = c.rows.iter().find(|r| r.po2 == 18).expect("row");
        assert_eq!(row18.predicted_secs, None);
        assert!(c.table().contains("no prover fits"));
    }

    #[test]
    fn a_receipt_budget_rules_out_large_composites() {
        let cfg = SchedulerConfig::default();
        let many: Vec<_> = (0..64).map(|_| prover(20, 2048.0)).collect();
        // 64 segment receipts are ~13 MB, 4 are ~1 MB: a 2 MB budget forces po2 18.
        let budget = AutoPo2 {
            max_receipt_bytes: Some(2_000_000),
            ..auto()
        };
        let c = choose(&cfg, &many, &sizes(), &budget, 0.0).expect("choice");
        assert_eq!(c.po2, 18, "{}", c.table());
        assert!(c.rows.iter().any(|r| r.over_budget));
        // Nothing fits 100 KB: a clear error that says what to do.
        let tiny = AutoPo2 {
            max_receipt_bytes: Some(100_000),
            ..auto()
        };
        let e = choose(&cfg, &many, &sizes(), &tiny, 0.0).expect_err("over budget");
        assert!(e.to_string().contains("--max-receipt-mb"), "{e}");
    }

    #[test]
    fn a_join_tree_is_chosen_only_where_recursion_is() {
        let cfg = SchedulerConfig::default();
        let both = AutoPo2 {
            aggregations: vec![Aggregation::Composite, Aggregation::JoinTree],
            max_receipt_bytes: Some(2_000_000),
            ..auto()
        };
        // No prover has recursion: the join tree rows have no prediction.
        let plain: Vec<_> = (0..64).map(|_| prover(20, 2048.0)).collect();
        let c = choose(&cfg, &plain, &sizes(), &both, 0.0).expect("choice");
        assert_eq!(c.aggregation, Aggregation::Composite);
        // With recursion everywhere and a budget no composite meets, the join tree is chosen, at the po2 its
        // joins and lifts make fastest (not the smallest: each halving of the segments saves a level of joins).
        let rec: Vec<_> = plain
            .iter()
            .map(|c| NodeCapacity {
                recursion: true,
                ..*c
            })
            .collect();
        let succinct = AutoPo2 {
            max_receipt_bytes: Some(500_000),
            ..both
        };
        let c = choose(&cfg, &rec, &sizes(), &succinct, 0.0).expect("choice");
        assert_eq!(c.aggregation, Aggregation::JoinTree, "{}", c.table());
        let fastest_tree = c
            .rows
            .iter()
            .filter(|r| r.aggregation == Aggregation::JoinTree)
            .min_by(|a, b| {
                a.predicted_secs
                    .partial_cmp(&b.predicted_secs)
                    .expect("predicted")
            })
            .expect("rows");
        assert_eq!(c.po2, fastest_tree.po2);
        assert_eq!(c.po2, 16, "{}", c.table());
    }
}
