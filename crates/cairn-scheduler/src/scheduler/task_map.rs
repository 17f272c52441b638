//! A job's tasks by index, indexed rather than searched.
//!
//! A Prove task's index is its segment number and a join's is `JOIN_INDEX_BASE` plus its place in the plan, so
//! both run from 0 with few gaps: two vectors hold them, and a lookup (placement, timers and results all do
//! several per input) is one indexing instead of a walk down a tree (the tree's lookups were 8 % of a simulated
//! run of 100,000 nodes). An index far above the others (a segment number reported out of range before the
//! segment count is known) goes to an ordered map, so it cannot make a vector huge. Iteration is in index order,
//! segments then joins, as with a `BTreeMap`.

use std::collections::BTreeMap;

use super::Task;
use crate::types::JOIN_INDEX_BASE;

/// Positions at or above this (within segments or within joins) are kept in the ordered map.
const DENSE: u32 = 1 << 20;

#[derive(Debug, Clone, Default)]
pub(super) struct TaskMap {
    segments: Vec<Option<Task>>,
    joins: Vec<Option<Task>>,
    sparse: BTreeMap<u32, Task>,
    len: usize,
}

/// Where an index lives: (joins?, position), or `None` for the sparse map.
fn place(index: u32) -> Option<(bool, usize)> {
    let (join, pos) = if index >= JOIN_INDEX_BASE {
        (true, index - JOIN_INDEX_BASE)
    } else {
        (false, index)
    };
    (pos < DENSE).then_some((join, pos as usize))
}

impl TaskMap {
    pub fn len(&self) -> usize {
        self.len
    }

    fn side(&self, join: bool) -> &Vec<Option<Task>> {
        if join {
            &self.joins
        } else {
            &self.segments
        }
    }

    fn side_mut(&mut self, join: bool) -> &mut Vec<Option<Task>> {
        if join {
            &mut self.joins
        } else {
            &mut self.segments
        }
    }

    pub fn get(&self, index: &u32) -> Option<&Task> {
        match place(*index) {
            Some((join, pos)) => self.side(join).get(pos)?.as_ref(),
            None => self.sparse.get(index),
        }
    }

    pub fn get_mut(&mut self, index: &u32) -> Option<&mut Task> {
        match place(*index) {
            Some((join, pos)) => self.side_mut(join).get_mut(pos)?.as_mut(),
            None => self.sparse.get_mut(index),
        }
    }

    pub fn contains_key(&self, index: &u32) -> bool {
        self.get(index).is_some()
    }

    pub fn insert(&mut self, index: u32, task: Task) -> Option<Task> {
        let old = match place(index) {
            Some((join, pos)) => {
                let side = self.side_mut(join);
                if side.len() <= pos {
                    side.resize_with(pos + 1, || None);
                }
                side[pos].replace(task)
            }
            None => self.sparse.insert(index, task),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Tasks in index order: segments, then joins.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Task)> + '_ {
        fn dense(base: u32, side: &[Option<Task>]) -> impl Iterator<Item = (u32, &Task)> + '_ {
            side.iter()
                .enumerate()
                .filter_map(move |(i, t)| t.as_ref().map(|t| (base + i as u32, t)))
        }
        dense(0, &self.segments)
            .chain(self.sparse.range(..JOIN_INDEX_BASE).map(entry))
            .chain(dense(JOIN_INDEX_BASE, &self.joins))
            .chain(self.sparse.range(JOIN_INDEX_BASE..).map(entry))
    }

    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter().map(|(i, _)| i)
    }

    pub fn values(&self) -> impl Iterator<Item = &Task> + '_ {
        self.iter().map(|(_, t)| t)
    }

    /// The highest segment number (Prove task) held.
    pub fn last_segment(&self) -> Option<u32> {
        if let Some((&i, _)) = self.sparse.range(..JOIN_INDEX_BASE).next_back() {
            return Some(i);
        }
        self.segments
            .iter()
            .rposition(Option::is_some)
            .map(|p| p as u32)
    }
}

fn entry<'a>((&i, t): (&'a u32, &'a Task)) -> (u32, &'a Task) {
    (i, t)
}

impl std::ops::Index<&u32> for TaskMap {
    type Output = Task;

    fn index(&self, index: &u32) -> &Task {
        self.get(index).expect("no task at this index")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{JobId, TaskId, TaskKind};
    use rand::{Rng, SeedableRng};

    fn prove() -> TaskKind {
        TaskKind::Prove {
            segment: 0,
            po2: 16,
        }
    }

    /// Against a `BTreeMap`, the map it replaced: lookups, replacement, iteration order and the last segment,
    /// with indices near 0, far out (the sparse map) and on both sides of `JOIN_INDEX_BASE`.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut map = TaskMap::default();
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        for step in 0..5_000u64 {
            let index = match rng.random_range(0..6) {
                0 => rng.random_range(0..40),
                1 => JOIN_INDEX_BASE + rng.random_range(0..40),
                2 => rng.random_range(DENSE - 2..DENSE + 2),
                3 => JOIN_INDEX_BASE + rng.random_range(DENSE - 2..DENSE + 2),
                4 => rng.random_range(JOIN_INDEX_BASE - 3..JOIN_INDEX_BASE),
                _ => u32::MAX - rng.random_range(0..3),
            };
            // The task's prove cost carries the value, to tell a replaced task from the old one.
            let old = map.insert(index, Task::new(prove(), 0, step, 0));
            assert_eq!(old.map(|t| t.prove_cost), model.insert(index, step));
            let probe = rng.random_range(0..50);
            assert_eq!(
                map.get(&probe).map(|t| t.prove_cost),
                model.get(&probe).copied()
            );
            assert_eq!(map.contains_key(&index), model.contains_key(&index));
        }
        assert_eq!(map.len(), model.len());
        let got: Vec<(u32, u64)> = map.iter().map(|(i, t)| (i, t.prove_cost)).collect();
        let want: Vec<(u32, u64)> = model.iter().map(|(i, v)| (*i, *v)).collect();
        assert_eq!(got, want, "iteration in index order");
        assert_eq!(
            map.last_segment(),
            model.range(..JOIN_INDEX_BASE).next_back().map(|(i, _)| *i)
        );
        if let Some(t) = map.get_mut(&3) {
            t.prove_cost = 1;
            assert_eq!(map[&3].prove_cost, 1);
        }
    }

    #[test]
    fn last_segment_ignores_joins() {
        let mut map = TaskMap::default();
        assert_eq!(map.last_segment(), None);
        map.insert(
            JOIN_INDEX_BASE + 4,
            Task::new(
                TaskKind::Join {
                    left: TaskId::new(JobId(0), 0),
                    right: TaskId::new(JobId(0), 1),
                },
                1,
                0,
                0,
            ),
        );
        assert_eq!(map.last_segment(), None);
        map.insert(7, Task::new(prove(), 0, 0, 0));
        map.insert(2, Task::new(prove(), 0, 0, 0));
        assert_eq!(map.last_segment(), Some(7));
    }
}
