//! The join-tree planner: Bento's "mountain range".
//!
//! Segments are pushed in order. Each becomes a peak of height 0; whenever the two newest peaks have the same
//! height they are merged by a join one higher, like carrying in a binary counter. So joins are planned (and can
//! run) while execution still streams segments. At the end, the remaining peaks (at most one per bit of the
//! segment count) are joined from the newest to the oldest into one root.

use crate::types::JOIN_INDEX_BASE;

/// A join the planner decided on: task `index` joins `left` and `right` (task indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlannedJoin {
    pub index: u32,
    pub left: u32,
    pub right: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Planner {
    /// (height, task index), oldest first.
    peaks: Vec<(u32, u32)>,
    joins: u32,
    pushed: u32,
}

impl Planner {
    pub fn pushed(&self) -> u32 {
        self.pushed
    }

    fn join(&mut self, left: (u32, u32), right: (u32, u32)) -> PlannedJoin {
        let j = PlannedJoin {
            index: JOIN_INDEX_BASE + self.joins,
            left: left.1,
            right: right.1,
            height: left.0.max(right.0) + 1,
        };
        self.joins += 1;
        j
    }

    /// Push the next segment's task (segments must come in order); returns the joins this makes possible.
    pub fn push(&mut self, task: u32) -> Vec<PlannedJoin> {
        self.pushed += 1;
        self.peaks.push((0, task));
        let mut out = Vec::new();
        while self.peaks.len() >= 2 {
            let n = self.peaks.len();
            let (l, r) = (self.peaks[n - 2], self.peaks[n - 1]);
            if l.0 != r.0 {
                break;
            }
            self.peaks.truncate(n - 2);
            let j = self.join(l, r);
            self.peaks.push((j.height, j.index));
            out.push(j);
        }
        out
    }

    /// No more segments: join the remaining peaks. Returns the joins and the root task (None if nothing was pushed).
    pub fn finish(&mut self) -> (Vec<PlannedJoin>, Option<u32>) {
        let mut out = Vec::new();
        while self.peaks.len() >= 2 {
            let r = self.peaks.pop().expect("two peaks");
            let l = self.peaks.pop().expect("two peaks");
            let j = self.join(l, r);
            self.peaks.push((j.height, j.index));
            out.push(j);
        }
        (out, self.peaks.first().map(|p| p.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_start_while_segments_arrive() {
        let mut p = Planner::default();
        assert!(p.push(0).is_empty());
        let j = p.push(1);
        assert_eq!(
            j,
            vec![PlannedJoin {
                index: JOIN_INDEX_BASE,
                left: 0,
                right: 1,
                height: 1
            }]
        );
        assert!(p.push(2).is_empty());
        let j = p.push(3);
        // 2+3 -> J1, then J0+J1 -> J2 (height 2).
        assert_eq!(j.len(), 2);
        assert_eq!(
            j[1],
            PlannedJoin {
                index: JOIN_INDEX_BASE + 2,
                left: JOIN_INDEX_BASE,
                right: JOIN_INDEX_BASE + 1,
                height: 2
            }
        );
        assert!(p.push(4).is_empty());
        let (fin, root) = p.finish();
        assert_eq!(fin.len(), 1);
        assert_eq!(fin[0].left, JOIN_INDEX_BASE + 2);
        assert_eq!(fin[0].right, 4);
        assert_eq!(root, Some(fin[0].index));
    }

    #[test]
    fn segment_count_gives_count_minus_one_joins() {
        for n in 1..70u32 {
            let mut p = Planner::default();
            let mut joins = 0;
            for s in 0..n {
                joins += p.push(s).len();
            }
            let (fin, root) = p.finish();
            joins += fin.len();
            assert_eq!(joins as u32, n - 1);
            assert!(root.is_some());
            if n == 1 {
                assert_eq!(root, Some(0));
            }
        }
        assert_eq!(Planner::default().finish(), (vec![], None));
    }
}
