//! Cairn's discrete-event simulator: it drives the REAL scheduler (`cairn-scheduler`) over a simulated network
//! of heterogeneous weak provers, so every design claim (the seed's "168 nodes, 4 min 9 s", redundancy,
//! selection policies, join trees versus composite receipts) becomes a number.
//!
//! Bird's-eye view:
//! - [`scenario`]: TOML scenario files with a base, variants and sweeps, expanded into runs.
//! - [`model`]: the calibrated cost model (proving time and memory per po2, recursion, blob and receipt sizes).
//! - [`nodes`]: the population (memory 2-32 GB, lognormal speeds, aggregators, faulty nodes, churn, sybils).
//! - [`bounds`]: lower bounds no scheduler can beat (the network's capacity; the critical path is in `engine`).
//! - [`engine`]: the event queue and the node/link/client models around the scheduler (the [`engine::Brain`]).
//! - [`report`], [`metrics`], [`charts`]: metrics, CSV, the terminal table and SVG charts.
//! - [`cli`]: `cairn sim` (clap `Args` + [`cli::run`]).
//!
//! Same scenario and seed give byte-identical outputs: one seeded ChaCha RNG per purpose, an event queue ordered
//! by (time, insertion), integer milliseconds, and no hash-map iteration in anything that reaches an output.

pub mod bounds;
pub mod charts;
pub mod cli;
mod driver;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod model;
pub mod nodes;
pub mod report;
pub mod scenario;

pub use error::SimError;
pub use report::{Report, RunMetrics, RunResult};
pub use scenario::{RunParams, RunSpec, Scenario};

use engine::Engine;

/// Simulates one run of a scenario against the real scheduler.
pub fn simulate(spec: &RunSpec, seed: u64) -> Result<RunResult, SimError> {
    let brain = driver::scheduler_for(&spec.params, seed).map_err(|message| SimError::Policy {
        run: spec.index,
        label: spec.label(),
        policy: spec.params.policy.clone(),
        message,
    })?;
    let out = Engine::new(&spec.params, seed, brain).run();
    Ok(RunResult {
        spec: spec.clone(),
        metrics: RunMetrics::from_output(&out),
        jobs: out.jobs,
    })
}

/// Simulates every run of a scenario on `threads` threads; results come back in run order whatever the threads.
pub fn simulate_scenario(
    scenario: &Scenario,
    seed: u64,
    threads: usize,
) -> Result<Report, SimError> {
    let threads = threads.clamp(1, scenario.runs.len().max(1));
    let mut results: Vec<Option<Result<RunResult, SimError>>> =
        (0..scenario.runs.len()).map(|_| None).collect();
    if threads == 1 {
        for (slot, spec) in results.iter_mut().zip(&scenario.runs) {
            *slot = Some(simulate(spec, seed));
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::Mutex::new(&mut results);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(spec) = scenario.runs.get(i) else {
                        break;
                    };
                    let r = simulate(spec, seed);
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(r);
                });
            }
        });
    }
    let runs = results
        .into_iter()
        .map(|r| r.expect("every run simulated"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        scenario: scenario.name.clone(),
        seed,
        runs,
    })
}
