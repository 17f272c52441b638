//! Scenario files (TOML): a base configuration, optional named variants and a sweep of values, expanded into
//! one [`RunParams`] per combination (variants outermost, then sweep keys in alphabetical order).
//!
//! ```toml
//! name = "seed-claim"
//! seed = 7
//! [base]
//! nodes = 168
//! po2 = 19
//! [sweep]
//! po2 = [15, 17, 19]
//! [[variant]]
//! name = "composite"
//! aggregation = "composite"
//! [[chart]]
//! file = "ttp-vs-po2.svg"
//! x = "po2"
//! series = ["variant"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::model::{MAX_PO2, MIN_PO2};

/// How segment receipts become one receipt (mirrors the scheduler's `Aggregation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregationMode {
    JoinTree,
    Composite,
}

impl AggregationMode {
    pub fn name(self) -> &'static str {
        match self {
            AggregationMode::JoinTree => "join_tree",
            AggregationMode::Composite => "composite",
        }
    }
}

/// Every knob of one simulated run. All fields have defaults; unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunParams {
    /// Node identities in the network (sybil identities and aggregators included).
    pub nodes: u32,
    /// Jobs submitted during the run.
    pub jobs: u32,
    /// User cycles of each job's program (65.6 M = the seed's program: Table 2 is used exactly).
    pub user_cycles: f64,
    /// Each job's user cycles vary uniformly by +- this fraction (0 = all equal).
    pub cycles_spread: f64,
    /// Segment size (log2 cycles), 14..=22.
    pub po2: u8,
    /// Selection policy: fifo, vrf, reputation, stake, auction.
    pub policy: String,
    pub aggregation: AggregationMode,
    /// Assignees per task (first verified result wins).
    pub redundancy: u32,
    pub max_attempts: u32,
    /// Fixed slack added to each attempt's expected proving time before it times out (s).
    pub task_slack_s: f64,
    /// A job is "live" when it completes within this many seconds of submission.
    pub deadline_s: f64,
    /// Backpressure: tasks of one job in flight at once.
    pub max_in_flight: u32,
    pub reward_per_task: u64,
    /// Seconds between job submissions (exponentially distributed when `poisson_arrivals`).
    pub job_interval_s: f64,
    pub poisson_arrivals: bool,
    /// Client execution speed (MHz of guest cycles, segments streamed as they are produced).
    pub exec_mhz: f64,
    /// Memory sizes of ordinary nodes (GB) and their weights.
    pub memory_gb: Vec<f64>,
    pub memory_weights: Vec<f64>,
    /// Ordinary node speed ~ lognormal(0, sigma) times the 2-core reference machine.
    pub speed_sigma: f64,
    /// A few faster ordinary nodes (e.g. 4-core laptops): this fraction gets `fast_speed` times the speed.
    pub fast_fraction: f64,
    pub fast_speed: f64,
    /// Fraction of identities that are strong aggregator nodes (many cores, much memory, recursion).
    pub aggregators: f64,
    pub aggregator_speed: f64,
    pub aggregator_memory_gb: f64,
    /// Whether ordinary nodes advertise recursion (lift / join). When false only aggregators can join.
    pub weak_recursion: bool,
    /// Fraction of identities that are faulty ("noise"); their kind is drawn from the mix weights below.
    pub noise: f64,
    pub mix_silent: f64,
    pub mix_invalid: f64,
    pub mix_copy: f64,
    pub mix_wrong_claim: f64,
    /// Probability that an honest attempt fails and is reported (crash, out of memory).
    pub task_fail_rate: f64,
    /// Fraction of honest ordinary nodes that churn: online ~exp(churn_up_s), offline ~exp(churn_down_s).
    pub churn: f64,
    pub churn_up_s: f64,
    pub churn_down_s: f64,
    /// Made-up identities a flooder announces over gossip (issue 29, item 1): each claims `phantom_speed`
    /// times the reference machine, never connects and never answers. With `newcomer_rule` (Cairn's rule: a
    /// prover joins a client's pool only after answering over a live connection) they cost one probe each and
    /// never enter the pool; without it they join on their word (as before the rule) and every offer to one
    /// fails after `phantom_dial_s`, a dial that times out. They stay in the pool (re-announced every 30 s).
    pub phantoms: u32,
    pub phantom_speed: f64,
    pub newcomer_rule: bool,
    pub phantom_dial_s: f64,
    /// Sybil operators, each running `sybil_size` identities on one machine (each identity advertises the
    /// whole machine but really gets 1/k of it) and splitting its stake among them.
    pub sybil_groups: u32,
    pub sybil_size: u32,
    /// Stake per operator (ledger units).
    pub stake: u64,
    pub latency_ms: f64,
    /// Node link bandwidth (Mbit/s) and the client's uplink (Mbit/s), shared by all segment uploads of a job.
    pub bandwidth_mbps: f64,
    pub client_uplink_mbps: f64,
    /// Share of ordinary nodes whose traffic goes through a relay (behind NAT where hole punching failed;
    /// docs/NODE.md, "At scale"). Drawn on a stream of its own, so other draws do not move.
    pub relayed: f64,
    /// Extra one-way latency of a relayed link (ms): the detour through the relay.
    pub relay_latency_ms: f64,
    /// Bandwidth one relayed link gets at the relay (Mbit/s); the link is the slower of this and its own.
    pub relay_mbps: f64,
    /// Heartbeat period (s); 0 disables heartbeats.
    pub heartbeat_s: f64,
    /// The run stops at this simulated time even if jobs are unfinished.
    pub max_sim_hours: f64,
    /// Scheduler knobs (defaults = the scheduler's defaults). Joins go to the fastest free nodes.
    pub prefer_fast_joins: bool,
    /// Prove+lift tasks of join-tree jobs go to the fastest free nodes too.
    pub prefer_fast_proves: bool,
    /// Choose the po2 as a client would (`engine::predict_secs`: the bounds of the job on the nodes it sees, faulty
    /// ones included), ignoring `po2`; the po2 used is reported as `po2_used`.
    pub po2_auto: bool,
    /// Finish-time placement: a slow free node is not given a task that faster slots, free now or soon, would
    /// finish first (`SchedulerConfig::finish_time_placement`).
    pub finish_time_placement: bool,
    /// `SchedulerConfig::finish_time_gain`.
    pub finish_time_gain: f64,
    /// Retries and backups go to nodes that have delivered before (`SchedulerConfig::proven_retries`).
    pub proven_retries: bool,
    /// Idle-capacity backups (`SpeculativeConfig::idle_backups`).
    pub idle_backups: bool,
    /// Backups of stuck tasks before queued work (`SpeculativeConfig::stuck_first`).
    pub stuck_backups_first: bool,
    /// Straggler trigger: a copy running past `slow_factor` x its expected time gets a backup (0: off).
    pub slow_factor: f64,
    /// Straggler backups as the scheduler does them now: the trigger's expected time is the median live node's
    /// (or the copy's own node's if shorter), the backup starts only on a node expected to finish first, and it
    /// goes to the fastest free nodes. False: the scheduler before that change (own node's expected time only,
    /// any free node, chosen by the policy).
    pub straggler_median: bool,
    /// A node whose result is rejected is quarantined for an hour (false: only excluded from that task).
    pub quarantine: bool,
    /// The run's jobs are the chunks of one split block (each executed by its own client, all submitted at
    /// once): the run also reports the block's time-to-proof, the last chunk's plus joining the chunks'
    /// receipts (ceil(log2 jobs) join steps on the fastest recursion node; the chunks' state commitments chain,
    /// which each join checks).
    pub split_block: bool,
}

impl Default for RunParams {
    fn default() -> Self {
        Self {
            nodes: 168,
            jobs: 1,
            user_cycles: crate::model::SEED_USER_CYCLES,
            cycles_spread: 0.0,
            po2: 19,
            policy: "fifo".into(),
            aggregation: AggregationMode::JoinTree,
            redundancy: 1,
            max_attempts: 6,
            task_slack_s: 60.0,
            deadline_s: 3600.0,
            max_in_flight: 1_000_000,
            reward_per_task: 100,
            job_interval_s: 0.0,
            poisson_arrivals: false,
            exec_mhz: 10.0,
            memory_gb: vec![2.0, 4.0, 8.0, 16.0, 32.0],
            memory_weights: vec![0.15, 0.35, 0.30, 0.15, 0.05],
            speed_sigma: 0.25,
            fast_fraction: 0.05,
            fast_speed: 2.0,
            aggregators: 0.0,
            aggregator_speed: 8.0,
            aggregator_memory_gb: 64.0,
            weak_recursion: true,
            noise: 0.0,
            mix_silent: 1.0,
            mix_invalid: 1.0,
            mix_copy: 1.0,
            mix_wrong_claim: 1.0,
            task_fail_rate: 0.0,
            churn: 0.0,
            churn_up_s: 1800.0,
            churn_down_s: 300.0,
            phantoms: 0,
            phantom_speed: 50.0,
            newcomer_rule: true,
            phantom_dial_s: 10.0,
            sybil_groups: 0,
            sybil_size: 4,
            stake: 1000,
            latency_ms: 50.0,
            bandwidth_mbps: 50.0,
            client_uplink_mbps: 100.0,
            relayed: 0.0,
            relay_latency_ms: 40.0,
            relay_mbps: 20.0,
            heartbeat_s: 30.0,
            max_sim_hours: 48.0,
            prefer_fast_joins: true,
            prefer_fast_proves: false,
            po2_auto: false,
            finish_time_placement: true,
            finish_time_gain: 2.0,
            proven_retries: true,
            idle_backups: true,
            stuck_backups_first: true,
            slow_factor: 1.5,
            straggler_median: true,
            quarantine: true,
            split_block: false,
        }
    }
}

impl RunParams {
    /// Semantic checks the types cannot express; `Err((field, message))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let frac = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((name, format!("must be a fraction in 0..=1, got {v}")))
            }
        };
        let pos = |name: &'static str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err((name, format!("must be > 0, got {v}")))
            }
        };
        if !(MIN_PO2..=MAX_PO2).contains(&self.po2) {
            return Err((
                "po2",
                format!(
                    "must be in {MIN_PO2}..={MAX_PO2} (risc0 3.x), got {}",
                    self.po2
                ),
            ));
        }
        if self.nodes == 0 {
            return Err(("nodes", "must be at least 1".into()));
        }
        if self.jobs == 0 {
            return Err(("jobs", "must be at least 1".into()));
        }
        if self.redundancy == 0 {
            return Err(("redundancy", "must be at least 1".into()));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts", "must be at least 1".into()));
        }
        if self.memory_gb.is_empty() || self.memory_gb.len() != self.memory_weights.len() {
            return Err((
                "memory_weights",
                format!(
                    "needs one weight per entry of memory_gb ({} sizes, {} weights)",
                    self.memory_gb.len(),
                    self.memory_weights.len()
                ),
            ));
        }
        if self.memory_weights.iter().any(|w| *w < 0.0)
            || self.memory_weights.iter().sum::<f64>() <= 0.0
        {
            return Err((
                "memory_weights",
                "must be non-negative with a positive sum".into(),
            ));
        }
        frac("noise", self.noise)?;
        frac("aggregators", self.aggregators)?;
        frac("fast_fraction", self.fast_fraction)?;
        frac("churn", self.churn)?;
        frac("task_fail_rate", self.task_fail_rate)?;
        frac("cycles_spread", self.cycles_spread)?;
        if self.noise > 0.0
            && self.mix_silent + self.mix_invalid + self.mix_copy + self.mix_wrong_claim <= 0.0
        {
            return Err((
                "mix_silent",
                "noise > 0 needs a positive fault mix weight".into(),
            ));
        }
        pos("user_cycles", self.user_cycles)?;
        pos("exec_mhz", self.exec_mhz)?;
        pos("bandwidth_mbps", self.bandwidth_mbps)?;
        pos("client_uplink_mbps", self.client_uplink_mbps)?;
        frac("relayed", self.relayed)?;
        pos("phantom_speed", self.phantom_speed)?;
        pos("phantom_dial_s", self.phantom_dial_s)?;
        pos("relay_mbps", self.relay_mbps)?;
        if !(self.relay_latency_ms >= 0.0 && self.relay_latency_ms.is_finite()) {
            return Err((
                "relay_latency_ms",
                format!("must be >= 0, got {}", self.relay_latency_ms),
            ));
        }
        pos("fast_speed", self.fast_speed)?;
        pos("aggregator_speed", self.aggregator_speed)?;
        pos("max_sim_hours", self.max_sim_hours)?;
        pos("deadline_s", self.deadline_s)?;
        if !(self.slow_factor == 0.0 || self.slow_factor >= 1.0 && self.slow_factor.is_finite()) {
            return Err((
                "slow_factor",
                format!("must be 0 (off) or >= 1, got {}", self.slow_factor),
            ));
        }
        if self.churn > 0.0 {
            pos("churn_up_s", self.churn_up_s)?;
            pos("churn_down_s", self.churn_down_s)?;
        }
        if self.sybil_groups > 0 && self.sybil_size == 0 {
            return Err(("sybil_size", "must be at least 1".into()));
        }
        if u64::from(self.sybil_groups) * u64::from(self.sybil_size) > u64::from(self.nodes) {
            return Err((
                "sybil_groups",
                "sybil_groups x sybil_size exceeds nodes".into(),
            ));
        }
        Ok(())
    }
}

/// A chart to draw from a scenario's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// SVG file name (written to the charts directory).
    pub file: String,
    #[serde(default)]
    pub title: String,
    /// Parameter on the x axis (a swept key such as `nodes`, `po2`, `noise`).
    pub x: String,
    /// Metric on the y axis (a column of summary.csv, default `ttp_p50_s`).
    #[serde(default = "default_metric")]
    pub y: String,
    /// Parameters whose values name the series (`variant` is the variant name).
    #[serde(default)]
    pub series: Vec<String>,
    /// Only runs whose parameters equal these values.
    #[serde(default, rename = "where")]
    pub filter: toml::Table,
    #[serde(default)]
    pub log_x: bool,
    #[serde(default)]
    pub log_y: bool,
}

fn default_metric() -> String {
    "ttp_p50_s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    base: toml::Table,
    #[serde(default)]
    sweep: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    variant: Vec<toml::Table>,
    #[serde(default)]
    chart: Vec<ChartSpec>,
}

fn default_seed() -> u64 {
    1
}

/// One expanded run of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub index: usize,
    /// Variant name (empty without variants).
    pub variant: String,
    /// The swept values of this run (and `variant`), rendered as text: the run's identity in outputs.
    pub labels: BTreeMap<String, String>,
    pub params: RunParams,
}

impl RunSpec {
    /// A short human label: `variant key=value ...`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if !self.variant.is_empty() {
            parts.push(self.variant.clone());
        }
        for (k, v) in &self.labels {
            if k != "variant" {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join(" ")
    }
}

/// A parsed scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub runs: Vec<RunSpec>,
    pub charts: Vec<ChartSpec>,
}

/// Renders a TOML value the way labels and chart filters compare them.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Float(f) => format!("{f}"),
        other => other.to_string(),
    }
}

/// Most runs one scenario file may ask for (variants x the sweep's product).
pub const MAX_RUNS: usize = 100_000;

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ReadScenario {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SimError> {
        let err = |place: String, message: String| SimError::Scenario {
            origin: origin.to_string(),
            place,
            message,
        };
        let file: ScenarioFile = toml::from_str(text)
            .map_err(|e| err("file".into(), e.to_string().trim_end().to_string()))?;
        let decode = |table: &toml::Table, place: &str| -> Result<RunParams, SimError> {
            let params: RunParams =
                toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        // A value deserializer does not say which key failed: find it by trying each key alone.
                        let culprit = table.iter().find(|(k, v)| {
                            let mut one = toml::Table::new();
                            one.insert((*k).clone(), (*v).clone());
                            toml::Value::Table(one).try_into::<RunParams>().is_err()
                        });
                        match culprit {
                            Some((k, v)) => err(
                                place.to_string(),
                                format!("field `{k}` = {v}: {}", e.message()),
                            ),
                            None => err(place.to_string(), e.message().to_string()),
                        }
                    })?;
            params.validate().map_err(|(field, message)| {
                err(place.to_string(), format!("field `{field}` {message}"))
            })?;
            Ok(params)
        };
        decode(&file.base, "[base]")?;

        let variants: Vec<(String, toml::Table)> = if file.variant.is_empty() {
            vec![(String::new(), toml::Table::new())]
        } else {
            file.variant
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut v = v.clone();
                    match v.remove("name") {
                        Some(toml::Value::String(name)) => Ok((name, v)),
                        _ => Err(err(
                            format!("[[variant]] #{}", i + 1),
                            "needs a string field `name`".into(),
                        )),
                    }
                })
                .collect::<Result<_, _>>()?
        };
        for (key, values) in &file.sweep {
            if values.is_empty() {
                return Err(err(
                    format!("[sweep] `{key}`"),
                    "needs at least one value".into(),
                ));
            }
        }

        // Cartesian product of the sweep, last key fastest; its size is checked first (a 734-byte file of five
        // 40-value sweeps asked for 1e8 runs per variant and exhausted memory building them).
        let runs_asked = file
            .sweep
            .values()
            .try_fold(variants.len(), |n, values| n.checked_mul(values.len()))
            .filter(|n| *n <= MAX_RUNS);
        if runs_asked.is_none() {
            let sizes: Vec<String> = file
                .sweep
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.len()))
                .collect();
            return Err(err(
                "[sweep]".into(),
                format!(
                    "the sweep makes more than {MAX_RUNS} runs ({} variant(s) x {}): narrow it or split the scenario",
                    variants.len(),
                    sizes.join(" x ")
                ),
            ));
        }
        // Cartesian product of the sweep, last key fastest.
        let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
        for (key, values) in &file.sweep {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((key.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }

        let mut runs = Vec::new();
        for (vname, overrides) in &variants {
            let mut vtable = file.base.clone();
            for (k, v) in overrides {
                vtable.insert(k.clone(), v.clone());
            }
            decode(&vtable, &format!("[[variant]] `{vname}`"))?;
            for combo in &combos {
                let mut table = vtable.clone();
                let mut labels = BTreeMap::new();
                for (k, v) in combo {
                    table.insert(k.clone(), v.clone());
                    labels.insert(k.clone(), value_text(v));
                }
                let place = if combo.is_empty() {
                    format!("[[variant]] `{vname}`")
                } else {
                    let c: Vec<String> = combo.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("[sweep] {} (variant `{vname}`)", c.join(", "))
                };
                let params = decode(&table, &place)?;
                if !vname.is_empty() {
                    labels.insert("variant".into(), vname.clone());
                }
                runs.push(RunSpec {
                    index: runs.len(),
                    variant: vname.clone(),
                    labels,
                    params,
                });
            }
        }
        for chart in &file.chart {
            let known = |k: &str| k == "variant" || file.sweep.contains_key(k);
            for key in std::iter::once(&chart.x)
                .chain(chart.series.iter())
                .chain(chart.filter.keys())
            {
                if !known(key) {
                    return Err(err(
                        format!("[[chart]] `{}`", chart.file),
                        format!("`{key}` is not a swept key (add it to [sweep]) nor `variant`"),
                    ));
                }
            }
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            seed: file.seed,
            runs,
            charts: file.chart,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_and_variants_expand() {
        let s = Scenario::parse(
            r#"
name = "t"
[base]
nodes = 10
[sweep]
po2 = [16, 18]
nodes = [10, 20, 30]
[[variant]]
name = "a"
[[variant]]
name = "b"
aggregation = "composite"
"#,
            "test",
        )
        .expect("parses");
        assert_eq!(s.runs.len(), 12);
        assert_eq!(s.runs[0].label(), "a nodes=10 po2=16");
        assert_eq!(s.runs[1].params.po2, 18);
        assert_eq!(s.runs[11].params.aggregation, AggregationMode::Composite);
        assert_eq!(s.runs[11].params.nodes, 30);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Scenario::parse("name = \"t\"\n[base]\nnodez = 3\n", "x.toml")
            .expect_err("unknown field");
        let msg = e.to_string();
        assert!(
            msg.contains("nodez") && msg.contains("[base]") && msg.contains("x.toml"),
            "{msg}"
        );

        let e = Scenario::parse("name = \"t\"\n[sweep]\npo2 = [18, \"big\"]\n", "x.toml")
            .expect_err("bad type");
        let msg = e.to_string();
        assert!(msg.contains("po2") && msg.contains("[sweep]"), "{msg}");

        let e = Scenario::parse("name = \"t\"\n[base]\npo2 = 30\n", "x.toml").expect_err("range");
        assert!(e.to_string().contains("`po2`"), "{e}");

        let e = Scenario::parse("name = \"t\"\n[base\n", "x.toml").expect_err("syntax");
        assert!(e.to_string().contains("line"), "{e}");

        let e = Scenario::parse(
            "name = \"t\"\n[[chart]]\nfile = \"a.svg\"\nx = \"nodes\"\n",
            "x.toml",
        )
        .expect_err("chart key");
        assert!(e.to_string().contains("not a swept key"), "{e}");
    }

    /// Found while fuzzing scenario files (crates/cairn-fuzz/regressions/scenario): five sweeps of 40 values
    /// asked for 1e8 runs and exhausted memory before any check; now refused by size, with the sizes.
    #[test]
    fn a_sweep_too_large_to_run_is_refused_before_it_is_built() {
        let text = include_str!(
            "../../cairn-fuzz/regressions/scenario/sweep-of-a-hundred-million-runs.toml"
        );
        let e = Scenario::parse(text, "boom.toml").expect_err("too many runs");
        let msg = e.to_string();
        assert!(
            msg.contains("more than 100000 runs") && msg.contains("nodes: 40"),
            "{msg}"
        );
    }
}
