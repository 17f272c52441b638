//! A TestRig in the manner of lighthouse's sync tests: drive `Scheduler::handle` with no network and assert on
//! the actions it emits.
#![allow(dead_code)]

use cairn_scheduler::*;

pub struct Rig {
    pub s: Scheduler,
    pub now: Time,
    /// Every action ever emitted, in order.
    pub log: Vec<Action>,
}

pub fn cap(max_po2: u8, recursion: bool, slots: u32) -> NodeCapacity {
    NodeCapacity {
        memory_bytes: 8 << 30,
        max_po2,
        cycles_per_sec: 10_000.0,
        slots,
        recursion,
    }
}

/// No liveness timers, no backups, and claimed speeds taken as they are: the rig answers at arbitrary instants
/// (often at once), which would teach the scheduler absurd speeds. Speed learning has its own tests.
pub fn quiet_config() -> SchedulerConfig {
    SchedulerConfig {
        heartbeat_timeout_ms: None,
        learn_speed: false,
        // Placement as the policy alone makes it; finish-time placement and proven retries have their own tests.
        finish_time_placement: false,
        proven_retries: false,
        speculative: SpeculativeConfig {
            enabled: false,
            ..SpeculativeConfig::default()
        },
        ..SchedulerConfig::default()
    }
}

impl Rig {
    pub fn new(cfg: SchedulerConfig, policy: &str) -> Self {
        Self {
            s: Scheduler::new(cfg, policy_by_name(policy, 7).unwrap()),
            now: 0,
            log: Vec::new(),
        }
    }

    pub fn fifo() -> Self {
        Self::new(quiet_config(), "fifo")
    }

    pub fn input(&mut self, i: Input) -> Vec<Action> {
        let a = self.s.handle(self.now, i);
        self.log.extend(a.iter().cloned());
        a
    }

    pub fn node(&mut self, id: u64, capacity: NodeCapacity) -> Vec<Action> {
        self.input(Input::NodeJoined {
            node: NodeId(id),
            capacity,
        })
    }

    pub fn submit(&mut self, job: u64, spec: JobSpec) -> Vec<Action> {
        self.input(Input::SubmitJob {
            job: JobId(job),
            spec,
        })
    }

    pub fn segment(&mut self, job: u64, segment: u32) -> Vec<Action> {
        self.input(Input::SegmentReady {
            job: JobId(job),
            segment,
            cycles: 10_000,
        })
    }

    pub fn finish_exec(&mut self, job: u64, segments: u32) -> Vec<Action> {
        self.input(Input::ExecutionFinished {
            job: JobId(job),
            segments,
        })
    }

    pub fn verify(&mut self, node: u64, task: TaskId) -> Vec<Action> {
        self.input(Input::ResultVerified {
            node: NodeId(node),
            task,
        })
    }

    pub fn reject(&mut self, node: u64, task: TaskId, reason: RejectReason) -> Vec<Action> {
        self.input(Input::ResultRejected {
            node: NodeId(node),
            task,
            reason,
        })
    }

    pub fn fail(&mut self, node: u64, task: TaskId) -> Vec<Action> {
        self.input(Input::TaskFailed {
            node: NodeId(node),
            task,
            reason: "boom".into(),
        })
    }

    /// Move time to `t` and tick.
    pub fn tick_at(&mut self, t: Time) -> Vec<Action> {
        self.now = self.now.max(t);
        self.input(Input::Tick)
    }

    /// Move time to `t` as a driver does: a tick at every deadline the scheduler asks for on the way.
    pub fn run_until(&mut self, t: Time) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(d) = self.s.next_deadline().filter(|d| *d <= t) {
            out.extend(self.tick_at(d.max(self.now)));
            assert_ne!(
                self.s.next_deadline(),
                Some(d),
                "a tick at its deadline must clear it, or a driver would spin"
            );
        }
        self.now = self.now.max(t);
        out
    }
}

pub fn task(job: u64, index: u32) -> TaskId {
    TaskId::new(JobId(job), index)
}

pub fn join(job: u64, k: u32) -> TaskId {
    TaskId::new(JobId(job), JOIN_INDEX_BASE + k)
}

pub fn assigns(actions: &[Action]) -> Vec<(TaskId, NodeId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Assign { task, node, .. } => Some((*task, *node)),
            _ => None,
        })
        .collect()
}

pub fn cancels(actions: &[Action]) -> Vec<(TaskId, NodeId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Cancel { task, node } => Some((*task, *node)),
            _ => None,
        })
        .collect()
}

pub fn rewards(actions: &[Action]) -> Vec<(TaskId, NodeId, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reward { task, node, amount } => Some((*task, *node, *amount)),
            _ => None,
        })
        .collect()
}

pub fn penalties(actions: &[Action]) -> Vec<(TaskId, NodeId, PenaltyCause)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Penalize {
                task, node, cause, ..
            } => Some((*task, *node, *cause)),
            _ => None,
        })
        .collect()
}

pub fn finished(actions: &[Action]) -> Vec<(JobId, JobOutcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::JobFinished { job, outcome } => Some((*job, outcome.clone())),
            _ => None,
        })
        .collect()
}

pub fn composite(po2: u8) -> JobSpec {
    JobSpec {
        aggregation: Aggregation::Composite,
        ..JobSpec::new(po2)
    }
}
