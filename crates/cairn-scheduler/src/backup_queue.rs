//! The queue of waiting backup requests, and what each one's last look found.
//!
//! A straggler's backup starts only on a node expected to finish before the running copies. A request that no
//! free node could win at its last look is put aside with the speed a node would have needed (at least the
//! fastest free speed of its class then) and the time its copies had to be beaten by: until a node that fast
//! is free or that time passes (or its copies change, and the scheduler says so), it still cannot be won, since
//! the time to beat stays and the time a node needs from now only grows. The scheduler then looks only at requests something has changed for. It used to look at 32
//! of them on every input, nearly all of them lost causes at 100,000 nodes, and that cost more than placing.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::types::Time;

/// What a request's last look found: nobody could win it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lost<C> {
    pub class: C,
    /// It is looked at again once a free node of the class is faster than this: the fastest free speed then
    /// (0: no node was free), or the speed a node would need to win it.
    pub speed: f64,
    /// When any node wins it (its running copies pass their expected end); `Time::MAX`: never by time alone.
    pub beat: Time,
}

#[derive(Debug, Clone)]
pub(crate) struct BackupQueue<K, C> {
    /// Every waiting request, in queue order, with what its last look found (`None`: look again).
    all: BTreeMap<K, Option<Lost<C>>>,
    /// The requests to look at.
    fresh: BTreeSet<K>,
    /// The lost ones by class and the speed they were lost to (as `speed_key`).
    lost: BTreeMap<C, BTreeSet<(u64, K)>>,
    /// The lost ones that time alone will make winnable, by that time.
    beats: BTreeSet<(Time, K)>,
    /// Where the last look at the fresh requests stopped.
    cursor: Option<K>,
}

impl<K, C> Default for BackupQueue<K, C> {
    fn default() -> Self {
        Self {
            all: BTreeMap::new(),
            fresh: BTreeSet::new(),
            lost: BTreeMap::new(),
            beats: BTreeSet::new(),
            cursor: None,
        }
    }
}

impl<K: Ord + Copy, C: Ord + Copy> BackupQueue<K, C> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// A new request, to be looked at.
    pub fn insert(&mut self, key: K) {
        if self.all.insert(key, None).is_none() {
            self.fresh.insert(key);
        }
    }

    pub fn remove(&mut self, key: K) {
        if let Some(found) = self.all.remove(&key) {
            self.unlose(key, found);
        }
    }

    /// Something changed for the request (its copies, or it became unconditional): look at it again.
    pub fn forget(&mut self, key: K) {
        if let Some(found) = self.all.get_mut(&key).and_then(Option::take) {
            self.unlose(key, Some(found));
        }
    }

    /// The request's look found nobody who could win it.
    pub fn lose(&mut self, key: K, lost: Lost<C>) {
        let Some(found) = self.all.get_mut(&key) else {
            return;
        };
        let old = found.replace(lost);
        self.unlose(key, old);
        self.fresh.remove(&key);
        self.lost
            .entry(lost.class)
            .or_default()
            .insert((speed_key(lost.speed), key));
        if lost.beat < Time::MAX {
            self.beats.insert((lost.beat, key));
        }
    }

    /// Whether some request is waiting to be looked at.
    pub fn has_fresh(&self) -> bool {
        !self.fresh.is_empty()
    }

    /// The earliest time a lost request becomes winnable by time alone.
    pub fn next_beat(&self) -> Option<Time> {
        self.beats.first().map(|(t, _)| *t)
    }

    /// Puts back to be looked at the lost requests that may be winnable now: those whose time to beat has
    /// come, and those of a class whose fastest free speed (`fastest`) is above what they lost to.
    pub fn refresh(&mut self, now: Time, mut fastest: impl FnMut(C) -> Option<f64>) {
        while let Some(&(beat, key)) = self.beats.first() {
            if beat > now {
                break;
            }
            self.forget(key);
        }
        let mut next = self.lost.keys().next().copied();
        while let Some(class) = next {
            if let Some(speed) = fastest(class) {
                let bound = speed_key(speed);
                while let Some(&(s, key)) = self.lost.get(&class).and_then(BTreeSet::first) {
                    if s >= bound {
                        break;
                    }
                    self.forget(key);
                }
            }
            next = self
                .lost
                .range((Bound::Excluded(class), Bound::Unbounded))
                .next()
                .map(|(c, _)| *c);
        }
    }

    /// Up to `max` requests to look at, round-robin from where the last call stopped.
    pub fn to_look_at(&self, max: usize) -> Vec<K> {
        let mut keys = Vec::with_capacity(max.min(self.fresh.len()));
        if let Some(c) = self.cursor {
            keys.extend(
                self.fresh
                    .range((Bound::Excluded(c), Bound::Unbounded))
                    .take(max),
            );
        }
        let wrap = max - keys.len();
        let first = keys.first().copied();
        keys.extend(
            self.fresh
                .iter()
                .take(wrap)
                .take_while(|k| Some(**k) != first),
        );
        keys
    }

    /// The last request looked at.
    pub fn looked_at(&mut self, key: K) {
        self.cursor = Some(key);
    }

    fn unlose(&mut self, key: K, found: Option<Lost<C>>) {
        match found {
            Some(l) => {
                if let Some(set) = self.lost.get_mut(&l.class) {
                    set.remove(&(speed_key(l.speed), key));
                    if set.is_empty() {
                        self.lost.remove(&l.class);
                    }
                }
                self.beats.remove(&(l.beat, key));
                if self.all.contains_key(&key) {
                    self.fresh.insert(key);
                }
            }
            None => {
                if !self.all.contains_key(&key) {
                    self.fresh.remove(&key);
                }
            }
        }
    }
}

fn speed_key(speed: f64) -> u64 {
    crate::pool::speed_key(speed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_requests_come_back_when_a_faster_node_is_free_or_their_time_comes() {
        let mut q: BackupQueue<u32, u8> = BackupQueue::default();
        for k in 0..4 {
            q.insert(k);
        }
        assert_eq!(q.to_look_at(10), vec![0, 1, 2, 3]);
        q.lose(
            0,
            Lost {
                class: 1,
                speed: 10.0,
                beat: 500,
            },
        );
        q.lose(
            1,
            Lost {
                class: 1,
                speed: 20.0,
                beat: Time::MAX,
            },
        );
        q.lose(
            2,
            Lost {
                class: 2,
                speed: 0.0,
                beat: 900,
            },
        );
        assert_eq!(q.to_look_at(10), vec![3]);
        assert_eq!(q.next_beat(), Some(500));
        // No node faster than what they lost to: still lost.
        q.refresh(100, |c| if c == 1 { Some(10.0) } else { None });
        assert_eq!(q.to_look_at(10), vec![3]);
        // A faster node of class 1: the one lost to 10 comes back, the one lost to 20 does not.
        q.refresh(100, |c| if c == 1 { Some(15.0) } else { None });
        assert_eq!(q.to_look_at(10), vec![0, 3]);
        // Its time comes: any node wins it.
        q.refresh(900, |_| None);
        assert_eq!(q.to_look_at(10), vec![0, 2, 3]);
        assert_eq!(q.next_beat(), None);
        // Its copies changed: looked at again.
        q.forget(1);
        assert_eq!(q.to_look_at(10), vec![0, 1, 2, 3]);
        q.remove(2);
        assert_eq!(q.len(), 3);
        // Round-robin from the last one looked at.
        q.looked_at(1);
        assert_eq!(q.to_look_at(2), vec![3, 0]);
        assert_eq!(q.to_look_at(10), vec![3, 0, 1]);
    }

    #[test]
    fn a_removed_lost_request_leaves_no_trace() {
        let mut q: BackupQueue<u32, u8> = BackupQueue::default();
        q.insert(7);
        q.lose(
            7,
            Lost {
                class: 0,
                speed: 1.0,
                beat: 50,
            },
        );
        q.remove(7);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_beat(), None);
        q.refresh(100, |_| Some(1e9));
        assert!(q.to_look_at(10).is_empty());
    }
}
