//! End-to-end tests of the simulator driving the real scheduler.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_sim::cli::{run, SimArgs};
use cairn_sim::{Scenario, SimError};

const SMALL: &str = r#"
name = "small"
seed = 42
[base]
nodes = 60
jobs = 4
user_cycles = 3e6
po2 = 17
job_interval_s = 20
max_attempts = 10
aggregators = 0.05
churn = 0.05
sybil_groups = 1
sybil_size = 3
[sweep]
noise = [0.0, 0.15]
aggregation = ["join_tree", "composite"]
[[chart]]
file = "ttp.svg"
x = "noise"
series = ["aggregation"]
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-sim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn args(scenario: &Path, out: &Path, seed: Option<u64>) -> SimArgs {
    SimArgs {
        scenario: scenario.to_path_buf(),
        seed,
        out: out.to_path_buf(),
        charts: None,
        threads: 2,
        quiet: true,
    }
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .display()
                    .to_string();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_byte_identical_outputs() {
    let dir = temp_dir("determinism");
    let scenario = dir.join("small.toml");
    std::fs::write(&scenario, SMALL).expect("write scenario");
    let a = run(&args(&scenario, &dir.join("a"), None)).expect("first run");
    let b = run(&args(&scenario, &dir.join("b"), None)).expect("second run");
    assert_eq!(a, b);
    let (fa, fb) = (files(&dir.join("a")), files(&dir.join("b")));
    assert!(
        fa.contains_key("small/summary.csv") && fa.contains_key("small/ttp.svg"),
        "{:?}",
        fa.keys()
    );
    assert_eq!(
        fa.len(),
        3 + 4,
        "summary.csv, summary.txt, ttp.svg and 4 run files"
    );
    assert_eq!(
        fa, fb,
        "same scenario and seed must give byte-identical files"
    );

    // A different seed must change something (otherwise the test above proves nothing).
    let c = run(&args(&scenario, &dir.join("c"), Some(7))).expect("other seed");
    assert_ne!(a.runs, c.runs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn small_scenario_finishes_penalizes_faults_and_respects_the_bound() {
    let scenario = Scenario::parse(SMALL, "small").expect("parses");
    let report = cairn_sim::simulate_scenario(&scenario, scenario.seed, 1).expect("simulates");
    assert_eq!(report.runs.len(), 4);
    for run in &report.runs {
        let m = &run.metrics;
        let noisy = run.spec.params.noise > 0.0;
        assert_eq!(
            m.completed,
            m.jobs,
            "run {}: every job completes: {:?}",
            run.spec.label(),
            run.jobs
        );
        if noisy {
            let faults = m.slashes["invalid_proof"]
                + m.slashes["wrong_claim"]
                + m.slashes["not_provers_own"];
            assert!(
                faults > 0,
                "run {}: faulty nodes must be penalized: {:?}",
                run.spec.label(),
                m.slashes
            );
            assert!(m.reassign_share > 0.0, "faults force reassignments");
        } else {
            let invalid = m.slashes["invalid_proof"]
                + m.slashes["wrong_claim"]
                + m.slashes["not_provers_own"];
            assert_eq!(
                invalid, 0,
                "honest nodes are never penalized for invalid results"
            );
        }
        assert!(m.wasted_ratio.expect("work done") >= 1.0);
        assert!(m.cost_per_proof.expect("completed") > 0.0);
        for job in &run.jobs {
            let ttp = job.ttp_s.expect("completed");
            let bound = job.cp_bound_s.expect("bound for a completed job");
            assert!(
                bound > 0.0 && bound <= ttp + 1e-9,
                "job {}: bound {bound} > simulated {ttp}",
                job.job
            );
            assert!(job.exec_s < bound, "the bound includes execution");
            // The capacity bound (leaves packed on the honest nodes, then their joins) is a bound too.
            let cap = job.cap_bound_s.expect("capacity bound for a completed job");
            assert!(
                cap > 0.0 && cap <= ttp + 1e-9,
                "job {}: capacity bound {cap} > simulated {ttp}",
                job.job
            );
            let leaves = job.leaves_s.expect("every leaf verified");
            assert!(leaves > job.exec_s && leaves <= ttp + 1e-9, "{leaves}");
        }
        let receipt = m.receipt_kb_p50.expect("receipt");
        match run.spec.params.aggregation {
            cairn_sim::scenario::AggregationMode::Composite => {
                assert!(receipt > 1000.0, "{receipt}")
            }
            cairn_sim::scenario::AggregationMode::JoinTree => assert!(receipt < 300.0, "{receipt}"),
        }
    }
}

#[test]
fn bad_toml_names_the_field() {
    let dir = temp_dir("badtoml");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "name = \"bad\"\n[base]\nnodes = 10\npo2 = \"twenty\"\n",
    )
    .expect("write");
    let err = run(&args(&path, &dir.join("out"), None)).expect_err("bad type");
    assert!(matches!(err, SimError::Scenario { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("po2") && msg.contains("bad.toml"), "{msg}");

    std::fs::write(&path, "name = \"bad\"\n[base]\npolicy = \"lottery\"\n").expect("write");
    let err = run(&args(&path, &dir.join("out"), None)).expect_err("unknown policy");
    assert!(err.to_string().contains("lottery"), "{err}");

    let err =
        run(&args(&dir.join("missing.toml"), &dir.join("out"), None)).expect_err("missing file");
    assert!(matches!(err, SimError::ReadScenario { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shipped_scenarios_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    for name in [
        "seed-claim.toml",
        "linea.toml",
        "policies.toml",
        "scale.toml",
        "scheduler-changes.toml",
        "claim-smallest.toml",
        "seed-claim-auto.toml",
        "relay.toml",
    ] {
        let s = Scenario::load(&root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!s.runs.is_empty(), "{name}");
    }
}

#[test]
fn po2_auto_chooses_a_segment_size_the_network_can_take() {
    // Configured po2 22 would fit no node of 2-8 GB; with po2_auto the run picks its own and completes.
    let dir = temp_dir("po2auto");
    let path = dir.join("auto.toml");
    std::fs::write(
        &path,
        r#"
name = "auto"
seed = 3
[base]
nodes = 40
user_cycles = 20e6
po2 = 22
po2_auto = true
memory_gb = [2.0, 4.0, 8.0]
memory_weights = [0.3, 0.4, 0.3]
aggregation = "join_tree"
"#,
    )
    .expect("write");
    let report = run(&args(&path, &dir.join("out"), None)).expect("run");
    let m = &report.runs[0].metrics;
    assert!((14..=19).contains(&m.po2_used), "{}", m.po2_used);
    assert_eq!(m.completed, 1, "{m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A heartbeat says a node is alive and nothing else: how often nodes send them must not change who proves
/// what, nor when (the scheduler used to walk its backup queue on every input, so 100,000 nodes heartbeating
/// every 30 s were most of a large run, and changing the period changed the schedule).
#[test]
fn heartbeats_do_not_change_the_schedule() {
    let toml = r#"
name = "heartbeats"
seed = 5
[base]
nodes = 80
jobs = 6
user_cycles = 4e6
po2 = 17
job_interval_s = 10
aggregators = 0.05
noise = 0.2
max_attempts = 10
[sweep]
heartbeat_s = [2.0, 30.0]
"#;
    let scenario = Scenario::parse(toml, "heartbeats").expect("parses");
    let report = cairn_sim::simulate_scenario(&scenario, scenario.seed, 1).expect("simulates");
    let [often, seldom] = &report.runs[..] else {
        panic!("two runs: {}", report.runs.len());
    };
    assert!(
        often.metrics.events > seldom.metrics.events,
        "the heartbeats were sent: {} vs {} events",
        often.metrics.events,
        seldom.metrics.events
    );
    assert_eq!(often.metrics.completed, 6);
    // Faulty nodes (silent ones keep heartbeating) make deadlines, extensions and penalties part of it.
    assert!(
        often.metrics.slashes.values().sum::<u64>() > 0,
        "{:?}",
        often.metrics.slashes
    );
    let times = |r: &cairn_sim::report::RunResult| {
        r.jobs
            .iter()
            .map(|j| (j.job, j.ttp_s, j.backup, j.reassigned))
            .collect::<Vec<_>>()
    };
    assert_eq!(times(often), times(seldom));
    assert_eq!(often.metrics.slashes, seldom.metrics.slashes);
    assert_eq!(often.metrics.wasted_ratio, seldom.metrics.wasted_ratio);
}

/// Issue 29, item 1, the simulator's side: made-up identities announced over gossip, claiming a fast machine
/// and never answering. Without the newcomer rule they join the pool on their word, take the first offers and
/// fail every one at its dial timeout: the job runs out of attempts. With the rule (what the client does now)
/// they never enter the pool and the job is as if they did not exist.
#[test]
fn phantoms_fail_a_job_without_the_newcomer_rule_and_cost_nothing_with_it() {
    let toml = r#"
name = "phantoms"
seed = 3
[base]
jobs = 1
nodes = 300
user_cycles = 20e6
po2 = 16
max_attempts = 5
deadline_s = 3600
max_sim_hours = 4
aggregation = "composite"
[sweep]
phantoms = [0, 300]
[[variant]]
name = "rule"
newcomer_rule = true
[[variant]]
name = "no-rule"
newcomer_rule = false
"#;
    let scenario = Scenario::parse(toml, "phantoms").expect("parses");
    let report = cairn_sim::simulate_scenario(&scenario, scenario.seed, 1).expect("simulates");
    let by = |variant: &str, phantoms: u32| {
        report
            .runs
            .iter()
            .find(|r| r.spec.variant == variant && r.spec.params.phantoms == phantoms)
            .expect("run")
    };
    let calm = by("rule", 0);
    assert_eq!(calm.metrics.completed, 1);
    let ttp = |r: &cairn_sim::RunResult| r.jobs[0].ttp_s;
    let with_rule = by("rule", 300);
    assert_eq!(with_rule.metrics.completed, 1, "{:?}", with_rule.jobs);
    assert_eq!(
        ttp(with_rule),
        ttp(calm),
        "the rule keeps phantoms out entirely"
    );
    let without = by("no-rule", 300);
    assert_eq!(
        without.metrics.completed, 0,
        "300 phantoms should take the first offers and exhaust the attempts: {:?}",
        without.jobs
    );
}
