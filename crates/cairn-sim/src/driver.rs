//! Binds the engine to the real scheduler (`cairn_scheduler::Scheduler`).

use cairn_scheduler::types::{Action, Input, JobId, NodeId, Time};
use cairn_scheduler::{
    policy_by_name, PreferFastConfig, QuarantineConfig, Scheduler, SchedulerConfig,
    SpeculativeConfig,
};

use crate::engine::Brain;
use crate::model;
use crate::nodes::NodeSpec;
use crate::scenario::RunParams;

impl Brain for Scheduler {
    fn handle(&mut self, now: Time, input: Input) -> Vec<Action> {
        Scheduler::handle(self, now, input)
    }

    fn heartbeats(&mut self, now: Time, nodes: &[NodeId]) -> Vec<Action> {
        Scheduler::heartbeats(self, now, nodes)
    }

    fn next_deadline(&self) -> Option<Time> {
        Scheduler::next_deadline(self)
    }

    fn forget_job(&mut self, job: JobId) {
        Scheduler::forget_job(self, job);
    }

    fn register(&mut self, node: &NodeSpec) {
        let ledger = self.ledger_mut();
        ledger.deposit(node.id, node.stake);
        ledger.set_ask(node.id, node.ask);
    }
}

/// The scheduler configuration for a run: liveness tracking matches the simulated heartbeats, and lift / join
/// work is the calibrated ~50 s of a 2-core machine expressed in cycles at its measured speed; the scenario's
/// scheduler knobs (fast-node preference, straggler reference, quarantine) are applied.
pub fn config_for(p: &RunParams) -> SchedulerConfig {
    let recursion_cycles = (model::RECURSION_SECS * model::reference_hz(18)).round() as u64;
    let defaults = SchedulerConfig::default();
    SchedulerConfig {
        heartbeat_timeout_ms: (p.heartbeat_s > 0.0)
            .then(|| (p.heartbeat_s * 3.0 * 1000.0).round() as u64),
        // The engine's heartbeats come in rounds, every live node at one instant, so nodes that fail between
        // two rounds look silent "together" however independently they failed: the burst rule, made for a
        // client whose own overload delays everyone's heartbeats (which the engine does not model), would
        // excuse ordinary crashes here.
        silence_burst: None,
        lift_cycles: recursion_cycles,
        join_cycles: recursion_cycles,
        prefer_fast: PreferFastConfig {
            joins: p.prefer_fast_joins,
            join_tree_proves: p.prefer_fast_proves,
            backups: defaults.prefer_fast.backups && p.straggler_median,
            ..defaults.prefer_fast
        },
        speculative: SpeculativeConfig {
            slow_factor: (p.slow_factor > 0.0).then_some(p.slow_factor),
            reference_quantile: if p.straggler_median {
                defaults.speculative.reference_quantile.or(Some(0.5))
            } else {
                None
            },
            only_if_faster: defaults.speculative.only_if_faster && p.straggler_median,
            idle_backups: p.idle_backups,
            stuck_first: p.stuck_backups_first,
            ..defaults.speculative.clone()
        },
        finish_time_placement: p.finish_time_placement,
        finish_time_gain: p.finish_time_gain,
        proven_retries: p.proven_retries,
        quarantine: if p.quarantine {
            defaults.quarantine.or(Some(QuarantineConfig::default()))
        } else {
            None
        },
        ..defaults
    }
}

pub fn scheduler_for(p: &RunParams, seed: u64) -> Result<Scheduler, String> {
    let policy = policy_by_name(&p.policy, seed).map_err(|e| e.to_string())?;
    Ok(Scheduler::new(config_for(p), policy))
}
