//! A queue that keeps the latest value per key, in the order keys first arrived, up to a bound.
//!
//! The swarm's task hands events to the node through a bounded channel. When the node is slow to take them
//! (its machine overloaded: the grand test's first try, 200 processes on 2 cores, had a client drop 2,600
//! events and then punish honest provers whose announcements it never saw as silent), the events wait here
//! instead of being dropped, and the swarm keeps being polled (its connections, timers and the node's own
//! requests go on). A later event of the same kind about the same peer replaces the waiting one in its place
//! (a capacity announcement by its author, a connection change by its peer), so what waits is bounded by
//! the peers the node knows, not by how long it is slow; past `cap` keys a new one is refused and counted.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// What [`Outbox::push`] did with a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed<V> {
    /// Queued behind the others.
    Queued,
    /// A value of the same key was waiting: replaced, in its place.
    Replaced,
    /// The queue holds `cap` keys: refused, handed back.
    Full(V),
}

/// The latest value per key, first-come order of keys, at most `cap` keys.
#[derive(Debug)]
pub(crate) struct Outbox<K, V> {
    order: VecDeque<K>,
    waiting: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Outbox<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::new(),
            waiting: HashMap::new(),
            cap: cap.max(1),
        }
    }

    pub(crate) fn push(&mut self, key: K, value: V) -> Pushed<V> {
        let len = self.waiting.len();
        match self.waiting.entry(key) {
            Entry::Occupied(mut e) => {
                e.insert(value);
                Pushed::Replaced
            }
            Entry::Vacant(_) if len >= self.cap => Pushed::Full(value),
            Entry::Vacant(e) => {
                self.order.push_back(e.key().clone());
                e.insert(value);
                Pushed::Queued
            }
        }
    }

    /// The value of the key that has waited longest.
    pub(crate) fn pop(&mut self) -> Option<V> {
        let key = self.order.pop_front()?;
        self.waiting.remove(&key)
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_value_per_key_in_first_arrival_order() {
        let mut o = Outbox::new(8);
        assert_eq!(o.push("a", 1), Pushed::Queued);
        assert_eq!(o.push("b", 2), Pushed::Queued);
        assert_eq!(o.push("a", 3), Pushed::Replaced);
        assert_eq!(o.len(), 2);
        assert_eq!(o.pop(), Some(3));
        assert_eq!(o.push("a", 4), Pushed::Queued);
        assert_eq!(o.pop(), Some(2));
        assert_eq!(o.pop(), Some(4));
        assert_eq!(o.pop(), None);
        assert!(o.is_empty());
    }

    #[test]
    fn refuses_a_new_key_past_its_bound_but_still_replaces() {
        let mut o = Outbox::new(2);
        o.push(1, "x");
        o.push(2, "y");
        assert_eq!(o.push(3, "z"), Pushed::Full("z"));
        assert_eq!(o.push(2, "w"), Pushed::Replaced);
        assert_eq!(o.pop(), Some("x"));
        assert_eq!(o.push(3, "z"), Pushed::Queued);
        assert_eq!(o.pop(), Some("w"));
        assert_eq!(o.pop(), Some("z"));
    }
}
