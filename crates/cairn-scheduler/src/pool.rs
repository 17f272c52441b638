//! The index of live nodes and of those with a free slot, bucketed by what they can do.
//!
//! Nodes are bucketed by (max_po2, recursion). A task of size po2 that needs recursion can go to any free node of a
//! bucket with max_po2 >= po2 and recursion; there are at most 64 buckets, and two 64-bit sets say which have a
//! free node and which a live one, so a question about a class visits only the buckets that fit it and have any:
//! finding a candidate costs O(fitting buckets + log n), never a scan of all nodes. Each bucket keeps its free
//! nodes three times: in pull order (a `BTreeSet` keyed by the moment the node last asked for work, for FIFO), in
//! a vector (for O(1) uniform sampling by the ranking policies), and by claimed speed (for the fast-node
//! preference: the fastest free fitting nodes cost O(buckets + k log n)). Its busy slots are indexed by expected
//! end, so finish-time placement's slot list reads only the ends early enough to matter.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

use crate::idmap::NodeMap;
use crate::liveness::Liveness;
use crate::quantile::Quantile;
use crate::types::{NodeCapacity, NodeId, TaskId, Time};

/// Largest po2 bucket; bigger claims are clamped to it (RISC Zero segments stop at po2 24).
pub(crate) const MAX_PO2: u8 = 31;
const BUCKETS: usize = (MAX_PO2 as usize + 1) * 2;
const _: () = assert!(BUCKETS == 64, "bucket sets are 64-bit masks");

pub(crate) fn bucket_of(cap: &NodeCapacity) -> usize {
    cap.max_po2.min(MAX_PO2) as usize * 2 + usize::from(cap.recursion)
}

/// The buckets a class (po2, recursion) fits, as a bit set (bit `i` for bucket `i`): those of max_po2 >= po2, and
/// with recursion if it needs it.
fn fit_mask(po2: u8, recursion: bool) -> u64 {
    if po2 > MAX_PO2 {
        return 0;
    }
    let mask = u64::MAX << (2 * u32::from(po2));
    if recursion {
        mask & 0xAAAA_AAAA_AAAA_AAAA
    } else {
        mask
    }
}

/// The set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// A claimed speed as an order-preserving integer (non-finite or non-positive claims count as 0).
pub(crate) fn speed_key(cycles_per_sec: f64) -> u64 {
    if cycles_per_sec.is_finite() && cycles_per_sec > 0.0 {
        cycles_per_sec.to_bits()
    } else {
        0
    }
}

/// Free nodes by speed: iterated from the back, fastest first and, among equal speeds, longest waiting first.
type SpeedKey = (u64, Reverse<u64>, NodeId);

#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    pub cap: NodeCapacity,
    pub bucket: usize,
    pub running: u32,
    /// Slots placement may fill: its own cut to the per-node cap, or none while it is benched.
    pub limit: u32,
    /// The limit it has when not benched.
    unbenched_limit: u32,
    /// Left out of placement for now (its receipts arrived too slowly), its work in flight kept.
    pub benched: bool,
    /// Key in its bucket's pull order while it has a free slot.
    free_key: Option<u64>,
    /// Position in its bucket's vector while it has a free slot.
    vec_pos: usize,
    /// Tasks it has a copy of in flight, and when each is expected to be done (same order).
    pub tasks: Vec<TaskId>,
    ends: Vec<Time>,
}

#[derive(Debug, Default, Clone)]
struct Bucket {
    order: BTreeSet<(u64, NodeId)>,
    free: Vec<NodeId>,
    by_speed: BTreeSet<SpeedKey>,
    /// Every live node of the bucket by speed, free or not (finish-time placement looks only at the fast end).
    all_by_speed: BTreeSet<(u64, NodeId)>,
    /// When the copies in flight on the bucket's nodes are expected to end, with how many end then (finish-time
    /// placement asks which busy slots are free soon enough to matter: usually none, among dozens of busy
    /// nodes faster than the fastest free one).
    ends: BTreeMap<(Time, NodeId), u32>,
    live: u32,
}

impl Bucket {
    fn add_end(&mut self, end: Time, node: NodeId) {
        *self.ends.entry((end, node)).or_insert(0) += 1;
    }

    fn remove_end(&mut self, end: Time, node: NodeId) {
        if let Some(n) = self.ends.get_mut(&(end, node)) {
            *n -= 1;
            if *n == 0 {
                self.ends.remove(&(end, node));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NodeIndex {
    pub nodes: NodeMap<NodeEntry>,
    buckets: Vec<Bucket>,
    seq: u64,
    free_total: usize,
    /// Bumped whenever the set of live nodes or a claimed capacity changes.
    version: u64,
    /// Speed quantiles asked for, by (po2, recursion, q's bits), kept up to date as nodes come, go and change.
    quantiles: Vec<((u8, bool, u64), Quantile)>,
    /// When each live node was last heard from.
    liveness: Liveness,
    /// Buckets with a free node, and with a live node (bit `i` for bucket `i`): a question about a class looks
    /// only at buckets that fit it and have any, not at all 64.
    with_free: u64,
    with_live: u64,
}

impl NodeIndex {
    pub fn new() -> Self {
        Self {
            nodes: NodeMap::default(),
            buckets: vec![Bucket::default(); BUCKETS],
            seq: 0,
            free_total: 0,
            version: 0,
            quantiles: Vec::new(),
            liveness: Liveness::default(),
            with_free: 0,
            with_live: 0,
        }
    }

    /// Buckets that fit the class and have a free node, in bucket order.
    fn free_buckets(&self, po2: u8, recursion: bool) -> impl Iterator<Item = &Bucket> + '_ {
        bits(fit_mask(po2, recursion) & self.with_free).map(|i| &self.buckets[i])
    }

    /// Buckets that fit the class and have a live node, in bucket order.
    fn live_buckets(&self, po2: u8, recursion: bool) -> impl Iterator<Item = &Bucket> + '_ {
        bits(fit_mask(po2, recursion) & self.with_live).map(|i| &self.buckets[i])
    }

    /// Changes whenever a node joins, leaves or changes its claimed capacity.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn free_total(&self) -> usize {
        self.free_total
    }

    /// A live node was heard from at `now` (not earlier than any time given before); false if it is not live.
    pub fn touch(&mut self, node: NodeId, now: Time) -> bool {
        self.liveness.touch(node, now)
    }

    /// When a live node was last heard from.
    pub fn last_seen(&self, node: NodeId) -> Option<Time> {
        self.liveness.last_seen(node)
    }

    /// The live node heard from least recently, and when.
    pub fn least_recently_seen(&self) -> Option<(NodeId, Time)> {
        self.liveness.oldest()
    }

    /// Live nodes heard from least recently first, as long as they were last heard from at or before `until`.
    pub fn seen_until(&self, until: Time) -> impl Iterator<Item = (NodeId, Time)> + '_ {
        self.liveness.oldest_until(until)
    }

    pub fn get(&self, node: NodeId) -> Option<&NodeEntry> {
        self.nodes.get(&node)
    }

    /// Adds a node, or updates the capacity of a known one (keeping its work in flight); it was heard from at
    /// `now`.
    pub fn upsert(&mut self, node: NodeId, cap: NodeCapacity, cap_limit: u32, now: Time) {
        self.liveness.seen(node, now);
        let limit = cap.slots.min(cap_limit);
        if self.nodes.get(&node).is_none_or(|e| e.cap != cap) {
            self.version += 1;
        }
        if let Some(mut e) = self.take(node) {
            e.cap = cap;
            e.bucket = bucket_of(&cap);
            e.unbenched_limit = limit;
            e.limit = if e.benched { 0 } else { limit };
            self.put(node, e);
        } else {
            let e = NodeEntry {
                cap,
                bucket: bucket_of(&cap),
                running: 0,
                limit,
                unbenched_limit: limit,
                benched: false,
                free_key: None,
                vec_pos: 0,
                tasks: Vec::new(),
                ends: Vec::new(),
            };
            self.put(node, e);
        }
    }

    /// Sets a live node's speed (a learned one), keeping its work in flight and its place in the pull order.
    pub fn set_speed(&mut self, node: NodeId, cycles_per_sec: f64) {
        let Some(e) = self.nodes.get(&node) else {
            return;
        };
        if e.cap.cycles_per_sec == cycles_per_sec {
            return;
        }
        let mut e = self.nodes.remove(&node).expect("present");
        let old = e.cap;
        self.track(&old, node, false);
        self.track(
            &NodeCapacity {
                cycles_per_sec,
                ..old
            },
            node,
            true,
        );
        let all = &mut self.buckets[e.bucket].all_by_speed;
        all.remove(&(speed_key(e.cap.cycles_per_sec), node));
        all.insert((speed_key(cycles_per_sec), node));
        let key = e.free_key;
        if let Some(k) = key {
            self.buckets[e.bucket].by_speed.remove(&(
                speed_key(e.cap.cycles_per_sec),
                Reverse(k),
                node,
            ));
        }
        e.cap.cycles_per_sec = cycles_per_sec;
        if let Some(k) = key {
            self.buckets[e.bucket]
                .by_speed
                .insert((speed_key(cycles_per_sec), Reverse(k), node));
        }
        self.nodes.insert(node, e);
        self.version += 1;
    }

    /// Benches a live node (`true`: placement gives it nothing more, its copies in flight run on) or lets it
    /// back (its free slots are free again).
    pub fn set_benched(&mut self, node: NodeId, benched: bool) {
        if self.nodes.get(&node).is_none_or(|e| e.benched == benched) {
            return;
        }
        let mut e = self.take(node).expect("present");
        e.benched = benched;
        e.limit = if benched { 0 } else { e.unbenched_limit };
        self.version += 1;
        self.put(node, e);
    }

    /// Removes a node and returns its entry (with its tasks in flight).
    pub fn remove(&mut self, node: NodeId) -> Option<NodeEntry> {
        // Out of the liveness list whatever happens: a node left there would time out again and again.
        self.liveness.remove(node);
        let e = self.take(node)?;
        self.version += 1;
        Some(e)
    }

    fn take(&mut self, node: NodeId) -> Option<NodeEntry> {
        let mut e = self.nodes.remove(&node)?;
        self.unfree(node, &mut e);
        let b = &mut self.buckets[e.bucket];
        b.live -= 1;
        if b.live == 0 {
            self.with_live &= !(1 << e.bucket);
        }
        b.all_by_speed
            .remove(&(speed_key(e.cap.cycles_per_sec), node));
        for &end in &e.ends {
            b.remove_end(end, node);
        }
        self.track(&e.cap, node, false);
        Some(e)
    }

    fn put(&mut self, node: NodeId, mut e: NodeEntry) {
        let b = &mut self.buckets[e.bucket];
        b.live += 1;
        self.with_live |= 1 << e.bucket;
        b.all_by_speed
            .insert((speed_key(e.cap.cycles_per_sec), node));
        for &end in &e.ends {
            b.add_end(end, node);
        }
        self.track(&e.cap, node, true);
        if e.running < e.limit {
            self.make_free(node, &mut e);
        }
        self.nodes.insert(node, e);
    }

    fn make_free(&mut self, node: NodeId, e: &mut NodeEntry) {
        debug_assert!(e.free_key.is_none());
        self.seq += 1;
        let b = &mut self.buckets[e.bucket];
        b.order.insert((self.seq, node));
        b.by_speed
            .insert((speed_key(e.cap.cycles_per_sec), Reverse(self.seq), node));
        e.free_key = Some(self.seq);
        e.vec_pos = b.free.len();
        b.free.push(node);
        self.with_free |= 1 << e.bucket;
        self.free_total += 1;
    }

    fn unfree(&mut self, node: NodeId, e: &mut NodeEntry) {
        let Some(key) = e.free_key.take() else { return };
        let b = &mut self.buckets[e.bucket];
        b.order.remove(&(key, node));
        b.by_speed
            .remove(&(speed_key(e.cap.cycles_per_sec), Reverse(key), node));
        let pos = e.vec_pos;
        b.free.swap_remove(pos);
        if b.free.is_empty() {
            self.with_free &= !(1 << e.bucket);
        }
        if let Some(&moved) = b.free.get(pos) {
            // The moved node is another entry of the map (never `node`, which was taken out or is `e`).
            if let Some(m) = self.nodes.get_mut(&moved) {
                m.vec_pos = pos;
            }
        }
        self.free_total -= 1;
    }

    /// A copy of `task` starts at `node`, expected to be done at `expected_end`. The node goes to the back of the
    /// pull order if it still has a free slot.
    pub fn on_assign(&mut self, node: NodeId, task: TaskId, expected_end: Time) {
        let Some(mut e) = self.nodes.remove(&node) else {
            return;
        };
        self.unfree(node, &mut e);
        e.running += 1;
        e.tasks.push(task);
        e.ends.push(expected_end);
        self.buckets[e.bucket].add_end(expected_end, node);
        if e.running < e.limit {
            self.make_free(node, &mut e);
        }
        self.nodes.insert(node, e);
    }

    /// A copy of `task` at `node` ended (any way).
    pub fn on_release(&mut self, node: NodeId, task: TaskId) {
        let Some(mut e) = self.nodes.remove(&node) else {
            return;
        };
        if let Some(i) = e.tasks.iter().position(|t| *t == task) {
            e.tasks.swap_remove(i);
            let end = e.ends.swap_remove(i);
            self.buckets[e.bucket].remove_end(end, node);
            e.running -= 1;
            if e.running < e.limit && e.free_key.is_none() {
                self.make_free(node, &mut e);
            }
        }
        self.nodes.insert(node, e);
    }

    /// Whether some node with a free slot fits the class.
    pub fn has_free(&self, po2: u8, recursion: bool) -> bool {
        fit_mask(po2, recursion) & self.with_free != 0
    }

    /// Live nodes that fit the class (busy or not).
    pub fn live_fitting(&self, po2: u8, recursion: bool) -> u64 {
        self.live_buckets(po2, recursion)
            .map(|b| b.live as u64)
            .sum()
    }

    pub fn fits(cap: &NodeCapacity, po2: u8, recursion: bool) -> bool {
        cap.max_po2 >= po2 && (!recursion || cap.recursion)
    }

    /// The claimed speed at quantile `q` (0 = slowest, 1 = fastest) of the live nodes that fit the class, busy or
    /// not; `None` if none fits. The first question for a class scans the live nodes; the answer is then kept
    /// up to date as nodes join, leave and change speed (O(log n) each).
    pub fn live_speed_quantile(&mut self, po2: u8, recursion: bool, q: f64) -> Option<f64> {
        let q = if q.is_finite() {
            q.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let key = (po2, recursion, q.to_bits());
        let i = match self.quantiles.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let items = self
                    .nodes
                    .iter()
                    .filter(|(_, e)| Self::fits(&e.cap, po2, recursion))
                    .map(|(n, e)| (speed_key(e.cap.cycles_per_sec), n));
                self.quantiles.push((key, Quantile::new(q, items)));
                self.quantiles.len() - 1
            }
        };
        self.quantiles[i].1.get().map(f64::from_bits)
    }

    /// Keeps the tracked quantiles in step with a live node entering (`add`) or leaving the pool.
    fn track(&mut self, cap: &NodeCapacity, node: NodeId, add: bool) {
        for ((po2, rec, _), q) in &mut self.quantiles {
            if Self::fits(cap, *po2, *rec) {
                let item = (speed_key(cap.cycles_per_sec), node);
                if add {
                    q.insert(item);
                } else {
                    q.remove(&item);
                }
            }
        }
    }

    /// The speed of the slowest free node that fits the class (`None` if none is free). O(fitting buckets).
    pub fn slowest_free_speed(&self, po2: u8, recursion: bool) -> Option<f64> {
        self.free_buckets(po2, recursion)
            .filter_map(|b| b.by_speed.first().map(|k| f64::from_bits(k.0)))
            .reduce(f64::min)
    }

    /// When each slot of the live nodes that fit the class and are at least `min_speed` fast can start a new
    /// task, with the node's speed: a free slot now, a busy one when its copy is expected to be done. A copy
    /// already past its expected end tells nothing about when it will be (a slow or silent node): that slot is
    /// left out. For a queue of `queued` tasks, a bucket gives at most `queued` free slots, the fastest: every
    /// slot after them is slower and free no sooner, so it would finish a task after each of those (and a
    /// thousand nodes of one claimed speed are not looked at for a queue of ten). With `finish_by` (a task's
    /// cycles, a time), a busy slot that could not finish such a task by then is left out too, and the busy
    /// slots come from the bucket's index of expected ends (only those early enough are read); without it the
    /// bucket's nodes are walked from the fastest down, so a high `min_speed` looks at few of them.
    pub fn slots(
        &self,
        po2: u8,
        recursion: bool,
        now: Time,
        min_speed: f64,
        queued: usize,
        finish_by: Option<(u64, Time)>,
    ) -> Vec<(Time, f64)> {
        let mut out = Vec::new();
        for b in self.live_buckets(po2, recursion) {
            match finish_by {
                Some(finish_by) => {
                    self.bucket_slots(b, now, min_speed, queued, finish_by, &mut out)
                }
                None => self.bucket_slots_walk(b, now, min_speed, queued, None, &mut out),
            }
        }
        out
    }

    /// One bucket's part of `slots`, by walking its nodes from the fastest down.
    fn bucket_slots_walk(
        &self,
        b: &Bucket,
        now: Time,
        min_speed: f64,
        queued: usize,
        finish_by: Option<(u64, Time)>,
        out: &mut Vec<(Time, f64)>,
    ) {
        let mut free = 0;
        for &(key, node) in b.all_by_speed.iter().rev() {
            let speed = f64::from_bits(key);
            if key == 0 || speed < min_speed || free >= queued {
                break;
            }
            let Some(e) = self.nodes.get(&node) else {
                continue;
            };
            for _ in e.running..e.limit {
                out.push((now, speed));
                free += 1;
            }
            let by = finish_by
                .map(|(cycles, by)| by.saturating_sub(crate::horizon::task_ms(cycles, speed)));
            out.extend(
                e.ends
                    .iter()
                    .filter(|end| **end > now && by.is_none_or(|b| **end <= b))
                    .map(|end| (*end, speed)),
            );
        }
    }

    /// The same slots as `bucket_slots_walk` with `finish_by`, without walking the busy nodes: the free slots
    /// come from the free nodes in the walk's order (fastest first, then by id from the highest), which also
    /// tells where the walk would stop; the busy slots from the bucket's expected ends early enough to finish
    /// the task by the time given, of the nodes the walk would have reached.
    fn bucket_slots(
        &self,
        b: &Bucket,
        now: Time,
        min_speed: f64,
        queued: usize,
        (cycles, finish_by): (u64, Time),
        out: &mut Vec<(Time, f64)>,
    ) {
        // The free slots, and the last node the walk reaches when the free ones cover the queue.
        let mut free = 0;
        let mut last: Option<(u64, NodeId)> = None;
        let mut group: Vec<NodeId> = Vec::new();
        let mut it = b.by_speed.iter().rev().peekable();
        'walk: while let Some(&&(key, _, _)) = it.peek() {
            let speed = f64::from_bits(key);
            if key == 0 || speed < min_speed || free >= queued {
                break;
            }
            // Nodes of one speed, in the walk's order (by id, highest first).
            group.clear();
            while let Some(&(_, _, node)) = it.next_if(|k| k.0 == key) {
                group.push(node);
            }
            group.sort_unstable_by(|a, b| b.cmp(a));
            for &node in &group {
                if free >= queued {
                    break 'walk;
                }
                let Some(e) = self.nodes.get(&node) else {
                    continue;
                };
                for _ in e.running..e.limit {
                    out.push((now, speed));
                    free += 1;
                }
                last = Some((key, node));
            }
        }
        // Where the walk stops: right after `last` once the free slots cover the queue (before any node when
        // nothing is queued); otherwise at `min_speed`.
        let reached = |key: u64, node: NodeId| {
            if free >= queued {
                last.is_some_and(|l| (key, node) >= l)
            } else {
                true
            }
        };
        let Some(&(top, _)) = b.all_by_speed.last() else {
            return;
        };
        // No node finishes a task later than the fastest of the bucket would from the same start.
        let latest = finish_by.saturating_sub(crate::horizon::task_ms(cycles, f64::from_bits(top)));
        if latest <= now {
            return;
        }
        for (&(end, node), &count) in b
            .ends
            .range((now + 1, NodeId(0))..=(latest, NodeId(u64::MAX)))
        {
            let Some(e) = self.nodes.get(&node) else {
                continue;
            };
            let key = speed_key(e.cap.cycles_per_sec);
            let speed = f64::from_bits(key);
            if key == 0 || speed < min_speed || !reached(key, node) {
                continue;
            }
            if end <= finish_by.saturating_sub(crate::horizon::task_ms(cycles, speed)) {
                out.extend(std::iter::repeat_n((end, speed), count as usize));
            }
        }
    }

    /// The claimed speed of the fastest free node that fits the class (O(fitting buckets)).
    pub fn fastest_free_speed(&self, po2: u8, recursion: bool) -> Option<f64> {
        self.free_buckets(po2, recursion)
            .filter_map(|b| b.by_speed.last().map(|k| k.0))
            .max()
            .map(f64::from_bits)
    }

    /// The fastest free fitting node not in `excluded` (the first of `fastest_free`, without building a list).
    pub fn fastest_free_one(
        &self,
        po2: u8,
        recursion: bool,
        excluded: &[NodeId],
    ) -> Option<NodeId> {
        self.free_buckets(po2, recursion)
            .filter_map(|b| b.by_speed.iter().rev().find(|k| !excluded.contains(&k.2)))
            .max()
            .map(|k| k.2)
    }

    /// The fastest free nodes that fit the class and are not `excluded`, fastest first (equal speeds: longest
    /// waiting first): at most `max`, only those at least `1 / within` as fast as the fastest of them, and none
    /// slower than `min_speed`. Costs O(buckets + (max + excluded) x buckets), whatever the number of nodes.
    pub fn fastest_free(
        &self,
        po2: u8,
        recursion: bool,
        excluded: &[NodeId],
        within: f64,
        min_speed: f64,
        max: usize,
    ) -> Vec<NodeId> {
        // Only buckets whose fastest free node reaches `min_speed` can give any (often few, with a high floor).
        let mut heads: Vec<_> = self
            .free_buckets(po2, recursion)
            .filter(|b| {
                b.by_speed
                    .last()
                    .is_some_and(|k| f64::from_bits(k.0) >= min_speed)
            })
            .map(|b| b.by_speed.iter().rev().peekable())
            .collect();
        let within = if within.is_finite() && within >= 1.0 {
            within
        } else {
            1.0
        };
        let mut out = Vec::with_capacity(max.min(self.free_total).min(256));
        let mut floor: Option<f64> = None;
        while out.len() < max {
            let mut best: Option<(usize, SpeedKey)> = None;
            for (i, h) in heads.iter_mut().enumerate() {
                if let Some(&&k) = h.peek() {
                    if best.is_none_or(|(_, b)| k > b) {
                        best = Some((i, k));
                    }
                }
            }
            let Some((i, (speed, _, node))) = best else {
                break;
            };
            heads[i].next();
            if excluded.contains(&node) {
                continue;
            }
            let speed = f64::from_bits(speed);
            if speed < min_speed {
                break;
            }
            match floor {
                None => floor = Some(speed / within),
                Some(f) if speed < f => break,
                Some(_) => {}
            }
            out.push(node);
        }
        out
    }
}

/// The nodes a policy may choose from for one task: live, with a free slot, fitting the task (po2, recursion)
/// and not excluded from it (already on it, or failed it before). When the scheduler prefers fast nodes for the
/// task, the candidates are further restricted to a short list of the fastest ones.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    index: &'a NodeIndex,
    po2: u8,
    recursion: bool,
    excluded: &'a [NodeId],
    only: Option<&'a [NodeId]>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(
        index: &'a NodeIndex,
        po2: u8,
        recursion: bool,
        excluded: &'a [NodeId],
    ) -> Self {
        Self {
            index,
            po2,
            recursion,
            excluded,
            only: None,
        }
    }

    /// The same candidates, restricted to `only` (free, fitting, not excluded nodes: see
    /// [`NodeIndex::fastest_free`]).
    pub(crate) fn restricted_to(self, only: &'a [NodeId]) -> Self {
        Self {
            only: Some(only),
            ..self
        }
    }

    /// Whether the candidates are a short list of the fastest free nodes (the fast-node preference).
    pub fn is_fast_tier(&self) -> bool {
        self.only.is_some()
    }

    fn buckets(&self) -> impl Iterator<Item = &'a Bucket> + '_ {
        self.index.free_buckets(self.po2, self.recursion)
    }

    /// Free fitting nodes, counting excluded ones (an upper bound on the candidates).
    pub fn len_upper_bound(&self) -> usize {
        match self.only {
            Some(only) => only.len(),
            None => self.buckets().map(|b| b.free.len()).sum(),
        }
    }

    pub fn is_excluded(&self, node: NodeId) -> bool {
        self.excluded.contains(&node) || self.only.is_some_and(|only| !only.contains(&node))
    }

    /// Whether `node` is a candidate.
    pub fn contains(&self, node: NodeId) -> bool {
        self.index.nodes.get(&node).is_some_and(|e| {
            e.free_key.is_some()
                && NodeIndex::fits(&e.cap, self.po2, self.recursion)
                && !self.is_excluded(node)
        })
    }

    /// What the candidate `node` claims.
    pub fn capacity(&self, node: NodeId) -> Option<&'a NodeCapacity> {
        self.index.nodes.get(&node).map(|e| &e.cap)
    }

    /// Candidates in pull order: the node that has waited longest for work first.
    pub fn fifo(&self) -> Box<dyn Iterator<Item = NodeId> + '_> {
        if let Some(only) = self.only {
            let mut v: Vec<(u64, NodeId)> = Vec::with_capacity(only.len());
            v.extend(
                only.iter()
                    .filter(|n| !self.excluded.contains(n))
                    .filter_map(|n| {
                        let e = self.index.nodes.get(n)?;
                        Some((e.free_key?, *n))
                    }),
            );
            // Usually only the first one or two are taken: a heap yields them in order without sorting all.
            let mut heap: std::collections::BinaryHeap<Reverse<(u64, NodeId)>> =
                v.into_iter().map(Reverse).collect();
            return Box::new(std::iter::from_fn(move || {
                heap.pop().map(|Reverse((_, n))| n)
            }));
        }
        let mut heads: Vec<_> = self.buckets().map(|b| b.order.iter().peekable()).collect();
        Box::new(std::iter::from_fn(move || loop {
            let mut best: Option<(usize, (u64, NodeId))> = None;
            for (i, h) in heads.iter_mut().enumerate() {
                if let Some(&&k) = h.peek() {
                    if best.is_none_or(|(_, b)| k < b) {
                        best = Some((i, k));
                    }
                }
            }
            let (i, (_, node)) = best?;
            heads[i].next();
            if !self.is_excluded(node) {
                return Some(node);
            }
        }))
    }

    /// The `i`-th free fitting node in a fixed (but arbitrary) order, excluded ones included; `i` < `len_upper_bound`.
    pub fn nth(&self, mut i: usize) -> Option<NodeId> {
        if let Some(only) = self.only {
            return only.get(i).copied();
        }
        for b in self.buckets() {
            if i < b.free.len() {
                return Some(b.free[i]);
            }
            i -= b.free.len();
        }
        None
    }

    /// Up to `k` distinct candidates drawn uniformly at random.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, k: usize) -> Vec<NodeId> {
        let total = self.len_upper_bound();
        if total == 0 || k == 0 {
            return Vec::new();
        }
        if total <= k * 2 {
            // Small pool: take everything (in a random order) rather than rejection-sample.
            let mut all: Vec<NodeId> = match self.only {
                Some(only) => only.to_vec(),
                None => self
                    .buckets()
                    .flat_map(|b| b.free.iter().copied())
                    .collect(),
            };
            all.retain(|n| !self.is_excluded(*n));
            all.sort();
            for i in (1..all.len()).rev() {
                let j = rng.random_range(0..=i);
                all.swap(i, j);
            }
            all.truncate(k);
            return all;
        }
        let mut out = Vec::with_capacity(k);
        let mut tries = 0;
        while out.len() < k && tries < k * 4 {
            tries += 1;
            let Some(n) = self.nth(rng.random_range(0..total)) else {
                break;
            };
            if !self.is_excluded(n) && !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::JobId;
    use rand::SeedableRng;

    fn sorted(v: Vec<(Time, f64)>) -> Vec<(Time, u64)> {
        let mut v: Vec<(Time, u64)> = v.into_iter().map(|(t, s)| (t, s.to_bits())).collect();
        v.sort_unstable();
        v
    }

    /// The indexed slot list equals the walk over every node it replaced, through joins, departures, speed
    /// changes, benches, assignments and releases, with many nodes of equal speed; a benched node is never free.
    #[test]
    fn indexed_slots_equal_the_walk() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut index = NodeIndex::new();
        let mut running: Vec<(NodeId, TaskId)> = Vec::new();
        let mut task = 0u32;
        let (mut with_busy, mut with_free) = (0, 0);
        for step in 0..10_000u64 {
            let node = NodeId(rng.random_range(0..60));
            match rng.random_range(0..10) {
                0 => {
                    let cap = NodeCapacity {
                        memory_bytes: 0,
                        max_po2: rng.random_range(16..=20),
                        // Few distinct speeds: ties are where the walk's order matters.
                        cycles_per_sec: f64::from(rng.random_range(0..4u32)) * 50.0,
                        slots: rng.random_range(0..=3),
                        recursion: rng.random_bool(0.5),
                    };
                    index.upsert(node, cap, 2, step);
                }
                1 => {
                    if let Some(e) = index.remove(node) {
                        running.retain(|(n, _)| *n != node);
                        drop(e);
                    }
                }
                2 if rng.random_bool(0.7) => {
                    index.set_speed(node, f64::from(rng.random_range(1..4u32)) * 50.0)
                }
                2 => index.set_benched(node, rng.random_bool(0.5)),
                3..=6 => {
                    if index.get(node).is_some_and(|e| e.running < e.limit) {
                        task += 1;
                        let t = TaskId::new(JobId(0), task);
                        index.on_assign(node, t, step + rng.random_range(0..2_000));
                        running.push((node, t));
                    }
                }
                _ => {
                    if !running.is_empty() {
                        let (n, t) = running.swap_remove(rng.random_range(0..running.len()));
                        index.on_release(n, t);
                    }
                }
            }
            let po2 = rng.random_range(15..=21);
            let rec = rng.random_bool(0.3);
            let min_speed = f64::from(rng.random_range(0..4u32)) * 40.0;
            let queued = rng.random_range(0..6);
            let finish_by = (
                rng.random_range(1..100u64),
                step + rng.random_range(0..5_000),
            );
            let indexed = index.slots(po2, rec, step, min_speed, queued, Some(finish_by));
            let mut walked = Vec::new();
            for b in index.live_buckets(po2, rec) {
                index.bucket_slots_walk(b, step, min_speed, queued, Some(finish_by), &mut walked);
            }
            with_busy += usize::from(walked.iter().any(|s| s.0 > step));
            with_free += usize::from(walked.iter().any(|s| s.0 == step));
            assert_eq!(sorted(indexed), sorted(walked), "step {step}");
            let free = index
                .nodes
                .iter()
                .filter(|(_, e)| e.free_key.is_some())
                .count();
            assert_eq!(free, index.free_total(), "step {step}");
            assert!(
                index
                    .nodes
                    .iter()
                    .all(|(_, e)| !e.benched || (e.limit == 0 && e.free_key.is_none())),
                "a benched node has a free slot (step {step})"
            );
        }
        // The comparison saw both kinds of slot often.
        assert!(
            with_busy > 500 && with_free > 500,
            "{with_busy} {with_free}"
        );
    }
}
