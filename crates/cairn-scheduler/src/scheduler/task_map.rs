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
