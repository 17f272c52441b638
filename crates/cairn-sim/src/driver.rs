//! Binds the engine to the real scheduler. (Placeholder until `cairn_scheduler::Scheduler` lands.)

use cairn_scheduler::types::{Action, Input, Time};

use crate::engine::Brain;
use crate::nodes::NodeSpec;
use crate::scenario::RunParams;

#[derive(Debug)]
pub struct Placeholder;

impl Brain for Placeholder {
    fn handle(&mut self, _now: Time, _input: Input) -> Vec<Action> {
        Vec::new()
    }
    fn next_deadline(&self) -> Option<Time> {
        None
    }
    fn register(&mut self, _node: &NodeSpec) {}
}

pub fn scheduler_for(_p: &RunParams, _seed: u64) -> Result<Placeholder, String> {
    Ok(Placeholder)
}
