//! Per-run metrics, the terminal table and the CSV files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::engine::{JobRecord, RunOutput, SLASH_CAUSES};
use crate::error::SimError;
use crate::metrics::{gini, hhi, nakamoto, percentile};
use crate::scenario::RunSpec;

/// The metrics of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    pub jobs: usize,
    pub completed: usize,
    pub failed: usize,
    pub unfinished: usize,
    pub ttp_p50_s: Option<f64>,
    pub ttp_p95_s: Option<f64>,
    pub ttp_p99_s: Option<f64>,
    pub cp_bound_p50_s: Option<f64>,
    pub cp_formula_p50_s: Option<f64>,
    /// Median over jobs of simulated time / critical-path bound.
    pub overhead_p50: Option<f64>,
    /// The tight lower bound: per job the larger of the critical-path and capacity bounds (`bounds`).
    pub tight_bound_p50_s: Option<f64>,
    /// Median over jobs of simulated time / tight bound: what scheduling costs over what the network allows.
    pub tight_overhead_p50: Option<f64>,
    /// Submission to the last leaf's verified result, and from there to the final receipt (the join tail).
    pub leaves_p50_s: Option<f64>,
    pub tail_p50_s: Option<f64>,
    /// Jobs completed within their deadline / all jobs.
    pub liveness: f64,
    /// Total compute / useful compute (1.0 = nothing wasted).
    pub wasted_ratio: Option<f64>,
    /// Rewards paid / completed jobs.
    pub cost_per_proof: Option<f64>,
    pub reward_gini: f64,
    pub reward_hhi: f64,
    pub nakamoto_33: usize,
    pub nakamoto_50: usize,
    pub slashes: BTreeMap<String, u64>,
    pub slashed_amount: u64,
    /// Share of jobs that needed a reassignment or a backup copy, and each alone.
    pub fallback_share: f64,
    pub reassign_share: f64,
    pub backup_share: f64,
    pub receipt_kb_p50: Option<f64>,
    pub segments_p50: Option<f64>,
    pub events: u64,
    pub sim_end_s: f64,
    /// The po2 the run used (its own choice with `po2_auto`).
    pub po2_used: u8,
    /// With `split_block`, when every chunk completed: from the first submission to the block's receipt (the
    /// last chunk's proof, then the joins of the chunks).
    pub block_ttp_s: Option<f64>,
}

impl RunMetrics {
    pub fn from_output(out: &RunOutput) -> Self {
        let done: Vec<&JobRecord> = out.jobs.iter().filter(|j| j.ttp_s.is_some()).collect();
        let ttp: Vec<f64> = done.iter().filter_map(|j| j.ttp_s).collect();
        let bound: Vec<f64> = done.iter().filter_map(|j| j.cp_bound_s).collect();
        let formula: Vec<f64> = done.iter().map(|j| j.cp_formula_s).collect();
        let overhead: Vec<f64> = done
            .iter()
            .filter_map(|j| Some(j.ttp_s? / j.cp_bound_s?.max(1e-9)))
            .collect();
        let tight: Vec<Option<f64>> = done
            .iter()
            .map(|j| match (j.cp_bound_s, j.cap_bound_s) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            })
            .collect();
        let tight_overhead: Vec<f64> = done
            .iter()
            .zip(&tight)
            .filter_map(|(j, t)| Some(j.ttp_s? / t.as_ref()?.max(1e-9)))
            .collect();
        let tight: Vec<f64> = tight.into_iter().flatten().collect();
        let leaves: Vec<f64> = done.iter().filter_map(|j| j.leaves_s).collect();
        let tails: Vec<f64> = done
            .iter()
            .filter_map(|j| Some(j.ttp_s? - j.leaves_s?))
            .collect();
        let receipts: Vec<f64> = done.iter().map(|j| j.receipt_bytes / 1e3).collect();
        let segments: Vec<f64> = out.jobs.iter().map(|j| f64::from(j.segments)).collect();
        let n = out.jobs.len();
        let completed = done.len();
        let unfinished = out
            .jobs
            .iter()
            .filter(|j| j.outcome == "unfinished")
            .count();
        Self {
            jobs: n,
            completed,
            failed: n - completed - unfinished,
            unfinished,
            ttp_p50_s: percentile(&ttp, 50.0),
            ttp_p95_s: percentile(&ttp, 95.0),
            ttp_p99_s: percentile(&ttp, 99.0),
            cp_bound_p50_s: percentile(&bound, 50.0),
            cp_formula_p50_s: percentile(&formula, 50.0),
            overhead_p50: percentile(&overhead, 50.0),
            tight_bound_p50_s: percentile(&tight, 50.0),
            tight_overhead_p50: percentile(&tight_overhead, 50.0),
            leaves_p50_s: percentile(&leaves, 50.0),
            tail_p50_s: percentile(&tails, 50.0),
            liveness: out.jobs.iter().filter(|j| j.within_deadline).count() as f64
                / n.max(1) as f64,
            wasted_ratio: (out.useful_work_s > 0.0).then(|| out.total_work_s / out.useful_work_s),
            cost_per_proof: (completed > 0).then(|| out.rewards_total as f64 / completed as f64),
            reward_gini: gini(&out.operator_rewards),
            reward_hhi: hhi(&out.operator_rewards),
            nakamoto_33: nakamoto(&out.operator_rewards, 0.33),
            nakamoto_50: nakamoto(&out.operator_rewards, 0.5),
            slashes: out.slashes.clone(),
            slashed_amount: out.slashed_amount,
            fallback_share: out.jobs.iter().filter(|j| j.reassigned || j.backup).count() as f64
                / n.max(1) as f64,
            reassign_share: out.jobs.iter().filter(|j| j.reassigned).count() as f64
                / n.max(1) as f64,
            backup_share: out.jobs.iter().filter(|j| j.backup).count() as f64 / n.max(1) as f64,
            receipt_kb_p50: percentile(&receipts, 50.0),
            segments_p50: percentile(&segments, 50.0),
            events: out.events,
            sim_end_s: out.end_s,
            po2_used: out.po2,
            block_ttp_s: out
                .stitch_s
                .filter(|_| completed == n && n > 0)
                .map(|stitch| {
                    let first = out
                        .jobs
                        .iter()
                        .map(|j| j.submit_s)
                        .fold(f64::INFINITY, f64::min);
                    let last = out
                        .jobs
                        .iter()
                        .filter_map(|j| Some(j.submit_s + j.ttp_s?))
                        .fold(0.0, f64::max);
                    last - first + stitch
                }),
        }
    }

    /// Metric columns in output order, as text.
    pub fn columns(&self) -> Vec<(String, String)> {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        let mut c: Vec<(String, String)> = vec![
            ("jobs".into(), self.jobs.to_string()),
            ("completed".into(), self.completed.to_string()),
            ("failed".into(), self.failed.to_string()),
            ("unfinished".into(), self.unfinished.to_string()),
            ("ttp_p50_s".into(), f(self.ttp_p50_s)),
            ("ttp_p95_s".into(), f(self.ttp_p95_s)),
            ("ttp_p99_s".into(), f(self.ttp_p99_s)),
            ("cp_bound_p50_s".into(), f(self.cp_bound_p50_s)),
            ("cp_formula_p50_s".into(), f(self.cp_formula_p50_s)),
            ("overhead_p50".into(), f(self.overhead_p50)),
            ("tight_bound_p50_s".into(), f(self.tight_bound_p50_s)),
            ("tight_overhead_p50".into(), f(self.tight_overhead_p50)),
            ("leaves_p50_s".into(), f(self.leaves_p50_s)),
            ("tail_p50_s".into(), f(self.tail_p50_s)),
            ("liveness".into(), format!("{:.4}", self.liveness)),
            ("wasted_ratio".into(), f(self.wasted_ratio)),
            ("cost_per_proof".into(), f(self.cost_per_proof)),
            ("reward_gini".into(), format!("{:.4}", self.reward_gini)),
            ("reward_hhi".into(), format!("{:.4}", self.reward_hhi)),
            ("nakamoto_33".into(), self.nakamoto_33.to_string()),
            ("nakamoto_50".into(), self.nakamoto_50.to_string()),
        ];
        for cause in SLASH_CAUSES {
            c.push((
                format!("slash_{cause}"),
                self.slashes.get(cause).copied().unwrap_or(0).to_string(),
            ));
        }
        c.extend([
            ("slashed_amount".into(), self.slashed_amount.to_string()),
            (
                "fallback_share".into(),
                format!("{:.4}", self.fallback_share),
            ),
            (
                "reassign_share".into(),
                format!("{:.4}", self.reassign_share),
            ),
            ("backup_share".into(), format!("{:.4}", self.backup_share)),
            ("receipt_kb_p50".into(), f(self.receipt_kb_p50)),
            ("segments_p50".into(), f(self.segments_p50)),
            ("events".into(), self.events.to_string()),
            ("sim_end_s".into(), format!("{:.3}", self.sim_end_s)),
            ("po2_used".into(), self.po2_used.to_string()),
            ("block_ttp_s".into(), f(self.block_ttp_s)),
        ]);
        c
    }

    /// A metric by its column name, as a number (for charts).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.columns()
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
    }

    pub fn slash_total(&self) -> u64 {
        self.slashes.values().sum()
    }
}

/// One finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub spec: RunSpec,
    pub metrics: RunMetrics,
    pub jobs: Vec<JobRecord>,
}

/// Everything a scenario produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub runs: Vec<RunResult>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Report {
    /// Parameter keys that vary across runs (sorted), used as label columns.
    fn label_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .runs
            .iter()
            .flat_map(|r| r.spec.labels.keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// summary.csv: one row per run.
    pub fn summary_csv(&self) -> String {
        let keys = self.label_keys();
        let mut out = String::new();
        let mut header = vec!["run".to_string(), "label".to_string()];
        header.extend(keys.iter().cloned());
        let fixed: Vec<&str> = ["policy", "po2", "nodes", "aggregation"]
            .into_iter()
            .filter(|k| !keys.iter().any(|x| x == k))
            .collect();
        header.extend(fixed.iter().map(|k| (*k).to_string()));
        if let Some(r) = self.runs.first() {
            header.extend(r.metrics.columns().into_iter().map(|(k, _)| k));
        }
        let _ = writeln!(out, "{}", header.join(","));
        for r in &self.runs {
            let mut row = vec![r.spec.index.to_string(), csv_field(&r.spec.label())];
            row.extend(
                keys.iter()
                    .map(|k| csv_field(r.spec.labels.get(k).map(String::as_str).unwrap_or(""))),
            );
            let p = &r.spec.params;
            for k in &fixed {
                row.push(match *k {
                    "policy" => p.policy.clone(),
                    "po2" => p.po2.to_string(),
                    "nodes" => p.nodes.to_string(),
                    _ => p.aggregation.name().to_string(),
                });
            }
            row.extend(r.metrics.columns().into_iter().map(|(_, v)| v));
            let _ = writeln!(out, "{}", row.join(","));
        }
        out
    }

    /// One run's jobs as CSV.
    pub fn jobs_csv(run: &RunResult) -> String {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        let mut out = String::from(
            "job,submit_s,segments,total_cycles,exec_s,outcome,ttp_s,cp_bound_s,cap_bound_s,leaves_s,cp_formula_s,within_deadline,reassigned,backup,assigns,receipt_kb\n",
        );
        for j in &run.jobs {
            let _ = writeln!(
                out,
                "{},{:.3},{},{:.0},{:.3},{},{},{},{},{},{:.3},{},{},{},{},{:.1}",
                j.job,
                j.submit_s,
                j.segments,
                j.total_cycles,
                j.exec_s,
                csv_field(&j.outcome),
                f(j.ttp_s),
                f(j.cp_bound_s),
                f(j.cap_bound_s),
                f(j.leaves_s),
                j.cp_formula_s,
                j.within_deadline,
                j.reassigned,
                j.backup,
                j.assigns,
                j.receipt_bytes / 1e3
            );
        }
        out
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let o =
            |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
        let mut out = String::new();
        let width = self
            .runs
            .iter()
            .map(|r| r.spec.label().len())
            .max()
            .unwrap_or(3)
            .clamp(3, 48);
        let _ = writeln!(
            out,
            "{:>3} {:<width$} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>8} {:>5} {:>8} {:>8} {:>5} {:>6} {:>7} {:>5} {:>5} {:>4} {:>4} {:>6} {:>5} {:>8}",
            "#", "run", "done", "p50 s", "p95 s", "p99 s", "bound s", "formula", "ovh", "tight s", "ovh*", "leaves s", "tail s",
            "live", "waste", "cost",
            "gini", "hhi", "N33", "N50", "slash", "re%", "rcpt KB"
        );
        for r in &self.runs {
            let m = &r.metrics;
            let mut label = r.spec.label();
            label.truncate(width);
            let _ = writeln!(
                out,
                "{:>3} {:<width$} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>8} {:>5} {:>8} {:>8} {:>5.2} {:>6} {:>7} {:>5.2} {:>5.3} {:>4} {:>4} {:>6} {:>5.1} {:>8}",
                r.spec.index,
                label,
                format!("{}/{}", m.completed, m.jobs),
                o(m.ttp_p50_s, 1),
                o(m.ttp_p95_s, 1),
                o(m.ttp_p99_s, 1),
                o(m.cp_bound_p50_s, 1),
                o(m.cp_formula_p50_s, 1),
                o(m.overhead_p50, 2),
                o(m.tight_bound_p50_s, 1),
                o(m.tight_overhead_p50, 2),
                o(m.leaves_p50_s, 1),
                o(m.tail_p50_s, 1),
                m.liveness,
                o(m.wasted_ratio, 2),
                o(m.cost_per_proof, 0),
                m.reward_gini,
                m.reward_hhi,
                m.nakamoto_33,
                m.nakamoto_50,
                m.slash_total(),
                m.reassign_share * 100.0,
                o(m.receipt_kb_p50, 0),
            );
            if let Some(block) = m.block_ttp_s {
                let _ = writeln!(
                    out,
                    "{:>3} {:<width$} split block: {} chunks, block proved in {block:.1} s",
                    "", "", m.jobs
                );
            }
        }
        out
    }

    /// Writes summary.csv, summary.txt and runs/run-NNN.csv under `dir`.
    pub fn write_csv(&self, dir: &Path) -> Result<(), SimError> {
        let runs_dir = dir.join("runs");
        std::fs::create_dir_all(&runs_dir).map_err(|source| SimError::Write {
            path: runs_dir.clone(),
            source,
        })?;
        let write = |path: std::path::PathBuf, text: &str| {
            std::fs::write(&path, text).map_err(|source| SimError::Write { path, source })
        };
        write(dir.join("summary.csv"), &self.summary_csv())?;
        write(dir.join("summary.txt"), &self.table())?;
        for r in &self.runs {
            write(
                runs_dir.join(format!("run-{:03}.csv", r.spec.index)),
                &Self::jobs_csv(r),
            )?;
        }
        Ok(())
    }
}
