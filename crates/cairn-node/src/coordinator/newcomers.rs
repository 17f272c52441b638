//! What a newcomer must show before this client spends anything on it (issue 29, item 1; SECURITY.md,
//! "Newcomers").
//!
//! A prover joins the scheduler's pool only after it answered `Status` over a live connection (Noise proves
//! the identity at the other end). A signed capacity announcement from a peer with no connection here is a
//! *candidate*: this client probes it (a `Status` request, which dials it at the addresses gossip gave and
//! `cairn-net`'s host book let through), at most [`PROBES`] at once, each within [`PROBE_TIMEOUT`]. A
//! candidate that answers joins the pool. One that does not may be probed again when it announces itself
//! after [`RETRY_FIRST`], then after twice that, up to [`RETRIES`] times (an honest prover's one probe can time
//! out: its machine or this one overloaded, the prover still starting, its relay not yet reserved; with one
//! try only, 199 of 200 honest provers never joined a client's pool on a saturated machine); after that its
//! identity is not probed again while it is among the last [`MAX_FAILED`] that failed. At most
//! [`MAX_WAITING`] candidates wait; announcements past that are dropped (an honest prover announces again).
//!
//! So a made-up identity costs this client at most `1 + RETRIES` bounded probes, never a task attempt, a slot
//! in the scheduler or an entry in its tables, and what the client keeps about peers it has never met is
//! bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use cairn_net::PeerId;

/// Probes in flight at once.
pub const PROBES: usize = 4;
/// How long a probe may take (dial and answer).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Candidates waiting for a probe.
pub const MAX_WAITING: usize = 256;
/// Failed identities remembered (not probed again, or not before their retry).
pub const MAX_FAILED: usize = 4_096;
/// The wait before a candidate whose probe failed may be probed again; doubled at each further failure.
pub const RETRY_FIRST: Duration = Duration::from_secs(120);
/// Probes after the first failed one, at most.
pub const RETRIES: u32 = 4;

/// Connections a client may open to probe newcomers, given how many provers of its pool it holds
/// connections to: its working set is at most three quarters of its connection limit, the rest kept for the
/// peers that connect to it (gossip and Kademlia neighbours, relays).
///
/// This is how a client works with more provers than it can hold connections to (issue 30): its pool is a
/// working set, the provers it holds connections to. Past it, announced provers wait as candidates, not
/// probed and not blamed (a dial refused by this client's own limit once counted as the prover's failed
/// probe, and five of those left an honest prover out for good); when a connection closes (a prover leaves,
/// an idle connection times out) the next candidate is probed. The working set counts pool provers only, so
/// strangers holding idle connections to the client (SECURITY.md, connection floods) cannot shrink it below a
/// quarter of the limit; and no probe starts that the limit itself would refuse (`all_connected`: every
/// established connection), where it would be blamed on the prover.
pub fn probe_room(max_established: u32, pool_connected: usize, all_connected: usize) -> usize {
    let working_set = max_established as usize * 3 / 4;
    working_set
        .saturating_sub(pool_connected)
        .min((max_established as usize).saturating_sub(all_connected))
}

#[derive(Debug, Default)]
pub(super) struct Newcomers {
    waiting: VecDeque<PeerId>,
    queued: HashSet<PeerId>,
    probing: HashSet<PeerId>,
    failed: VecDeque<PeerId>,
    /// Failed identities: how many probes failed, and when one may be probed again (`None`: never).
    failed_set: HashMap<PeerId, (u32, Option<Instant>)>,
    /// Announcements dropped because the queue was full (since start).
    pub(super) dropped: u64,
    /// Probes that failed (since start).
    pub(super) failures: u64,
}

impl Newcomers {
    /// A peer with no connection here announced itself: queue a probe unless one is queued or running, it
    /// failed one lately, or the queue is full. A `known` peer (one that answered this client before: it
    /// has a node id, which only a live connection gives) goes to the front and is probed even after a
    /// failure: it announces only while it is up, say back from an outage or a move.
    pub(super) fn heard(&mut self, peer: PeerId, known: bool, now: Instant) {
        if self.queued.contains(&peer) || self.probing.contains(&peer) {
            return;
        }
        if known {
            self.forget_failure(&peer);
            self.queued.insert(peer);
            self.waiting.push_front(peer);
            if self.waiting.len() > MAX_WAITING {
                if let Some(last) = self.waiting.pop_back() {
                    self.queued.remove(&last);
                    self.dropped += 1;
                }
            }
            return;
        }
        if let Some((_, retry_at)) = self.failed_set.get(&peer) {
            if retry_at.is_none_or(|at| now < at) {
                return;
            }
        }
        if self.waiting.len() >= MAX_WAITING {
            self.dropped += 1;
            return;
        }
        self.queued.insert(peer);
        self.waiting.push_back(peer);
    }

    /// The peer connected (and will be asked for its status on that connection): no probe needed.
    pub(super) fn connected(&mut self, peer: &PeerId) {
        if self.queued.remove(peer) {
            self.waiting.retain(|p| p != peer);
        }
        self.forget_failure(peer);
    }

    /// The next candidates to probe now (each marked as probing), with `room` connections this client may
    /// still open for provers ([`probe_room`]): probes in flight count against it, and with none left the
    /// candidates wait, unblamed, until a connection closes.
    pub(super) fn next_probes(&mut self, room: usize) -> Vec<PeerId> {
        let mut out = Vec::new();
        while self.probing.len() < PROBES.min(room) {
            let Some(p) = self.waiting.pop_front() else {
                break;
            };
            self.queued.remove(&p);
            self.probing.insert(p);
            out.push(p);
        }
        out
    }

    /// A probe ended: answered (`true`) or not.
    pub(super) fn probed(&mut self, peer: PeerId, answered: bool, now: Instant) {
        self.probing.remove(&peer);
        if answered {
            self.forget_failure(&peer);
            return;
        }
        self.failures += 1;
        let failed = self.failed_set.get(&peer).map_or(0, |f| f.0) + 1;
        let retry_at = (failed <= RETRIES).then(|| now + RETRY_FIRST * (1u32 << (failed - 1)));
        if self.failed_set.insert(peer, (failed, retry_at)).is_none() {
            self.failed.push_back(peer);
            if self.failed.len() > MAX_FAILED {
                if let Some(old) = self.failed.pop_front() {
                    self.failed_set.remove(&old);
                }
            }
        }
    }

    fn forget_failure(&mut self, peer: &PeerId) {
        if self.failed_set.remove(peer).is_some() {
            self.failed.retain(|p| p != peer);
        }
    }

    /// Candidates waiting and being probed.
    pub(super) fn pending(&self) -> (usize, usize) {
        (self.waiting.len(), self.probing.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_bounded_and_a_failed_identity_waits_for_its_retry() {
        let t0 = Instant::now();
        let mut n = Newcomers::default();
        let peers: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
        for p in &peers {
            n.heard(*p, false, t0);
            n.heard(*p, false, t0);
        }
        assert_eq!(n.pending(), (10, 0));
        let first = n.next_probes(usize::MAX);
        assert_eq!(first.len(), PROBES);
        assert!(
            n.next_probes(usize::MAX).is_empty(),
            "no more than {PROBES} at once"
        );
        n.heard(first[0], false, t0); // announced again while probed: not queued twice
        assert_eq!(n.pending(), (10 - PROBES, PROBES));
        n.probed(first[0], false, t0);
        n.probed(first[1], true, t0);
        n.heard(first[0], false, t0);
        assert_eq!(
            n.pending(),
            (10 - PROBES, PROBES - 2),
            "a failed one waits for its retry"
        );
        // Unless it answered before: a known prover is probed again, first.
        n.heard(first[0], true, t0);
        assert_eq!(n.next_probes(usize::MAX)[0], first[0]);
        n.probed(first[0], false, t0);
        assert_eq!(n.failures, 2);
        // Connecting on its own clears a failure: it is asked on its connection.
        n.connected(&first[0]);
        let waiting = n.pending().0;
        n.heard(first[0], false, t0);
        assert_eq!(n.pending().0, waiting + 1);
    }

    /// Issue 30: a client at its connection ceiling (128 established) had its dials to announced provers
    /// refused by its own limit, each counted as the prover's failed probe; five and an honest prover was left
    /// out for good. Past its working set it now probes no one, and the candidates wait, unblamed.
    #[test]
    fn a_client_out_of_connections_probes_no_one_and_blames_no_one() {
        let t0 = Instant::now();
        let mut n = Newcomers::default();
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for p in &peers {
            n.heard(*p, false, t0);
        }
        assert_eq!(probe_room(128, 96, 96), 0);
        assert_eq!(probe_room(128, 200, 200), 0);
        assert!(n.next_probes(probe_room(128, 96, 96)).is_empty());
        assert_eq!(n.pending(), (6, 0), "all still waiting");
        assert_eq!(n.failures, 0);
        // Two connections close: two probes, no more, even after one of them ends.
        let room = probe_room(128, 94, 94);
        assert_eq!(room, 2);
        let first = n.next_probes(room);
        assert_eq!(first.len(), 2);
        assert!(n.next_probes(room).is_empty());
        n.probed(first[0], true, t0);
        // The answered one now holds a connection: room is still what the caller counts.
        assert!(n.next_probes(probe_room(128, 95, 95)).is_empty());
        assert_eq!(n.pending(), (4, 1));
        // Strangers' connections do not shrink the working set (10 provers, 90 strangers: 86 more may be
        // probed), but no probe starts that the connection limit would refuse (10 provers, 117 strangers:
        // one).
        assert_eq!(probe_room(128, 10, 100), 28);
        assert_eq!(probe_room(128, 10, 40), 86);
        assert_eq!(probe_room(128, 10, 127), 1);
        assert_eq!(probe_room(128, 10, 128), 0);
    }

    #[test]
    fn what_is_kept_about_strangers_is_bounded() {
        let t0 = Instant::now();
        let mut n = Newcomers::default();
        for _ in 0..(MAX_WAITING + 100) {
            n.heard(PeerId::random(), false, t0);
        }
        assert_eq!(n.pending().0, MAX_WAITING);
        assert_eq!(n.dropped, 100);
        for _ in 0..(MAX_FAILED + 10) {
            let p = PeerId::random();
            n.probing.insert(p);
            n.probed(p, false, t0);
        }
        assert_eq!(n.failed.len(), MAX_FAILED);
        assert_eq!(n.failed_set.len(), MAX_FAILED);
    }

    /// Issue 30: with one try only, an honest prover whose single probe timed out (on a saturated machine,
    /// 199 of 200) never joined the client's pool. A failed identity is probed again when it announces itself
    /// after 2 minutes, then 4, 8 and 16, and then no more: a made-up identity costs 5 probes at most.
    #[test]
    fn a_failed_identity_is_probed_again_after_a_doubling_wait_a_bounded_number_of_times() {
        let t0 = Instant::now();
        let mut n = Newcomers::default();
        let p = PeerId::random();
        let mut at = t0;
        let mut probes = 0;
        for retry in 0..=RETRIES {
            n.heard(p, false, at);
            assert_eq!(
                n.next_probes(usize::MAX),
                vec![p],
                "try {retry} at {:?}",
                at - t0
            );
            probes += 1;
            n.probed(p, false, at);
            let wait = RETRY_FIRST * (1u32 << retry);
            // Announced again just before the wait is over: not queued.
            n.heard(p, false, at + wait - Duration::from_secs(1));
            assert!(
                n.next_probes(usize::MAX).is_empty(),
                "probed again before its wait (try {retry})"
            );
            at += wait;
        }
        assert_eq!(probes, 1 + RETRIES as usize);
        // Out of retries: never again, however long it waits.
        n.heard(p, false, at + Duration::from_secs(365 * 86_400));
        assert!(n.next_probes(usize::MAX).is_empty());
        assert_eq!(n.failures, u64::from(1 + RETRIES));
        // Unless it connects on its own (then it is asked on its connection) or was known before.
        n.connected(&p);
        n.heard(p, false, at);
        assert_eq!(n.next_probes(usize::MAX), vec![p]);
    }
}
