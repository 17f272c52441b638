//! Trimming idle connections above a high-water mark (issue 30).
//!
//! Off unless asked for (`--peers-high-water N`; see [`TrimLimits`]'s default for why).
//!
//! By default a node keeps every connection that Kademlia's lookups, identify and gossip opened: at 200
//! nodes on one machine each held about 85 (127 MB a node). A node needs far fewer: its gossip mesh (6 to 12
//! peers), its bootstrap peers and relays, and the peers it works with. So, as go-libp2p's connection
//! manager does, when asked to, a node holding more than
//! [`TrimLimits::high_water`] peers it closes connections down to [`TrimLimits::low_water`], choosing among
//! peers that are not protected:
//!
//! - **protected**: bootstrap peers and relays this node keeps (the redialer's), peers that exchanged a
//!   request with this node (an offer, a result, a heartbeat, a status probe, ...) within
//!   [`TrimLimits::active_for`], peers holding a reservation or a circuit on this node's relay (for as long
//!   as the relay grants it), and connections younger than [`TrimLimits::grace`] (identify and Kademlia's
//!   first exchange need a moment);
//! - **closed first**: peers outside the gossip mesh before mesh peers (gossipsub grafts others if the mesh
//!   runs short), then the least recently active (never active first), then the oldest.
//!
//! Protected peers are never closed, so a node that works with many peers (a client's pool) may hold more
//! than the high-water mark: the bound is on upkeep for nothing, not on work.
//!
//! The choice is a pure function of what the event loop knows ([`ConnManager::to_trim`]); the loop calls it
//! every few seconds and disconnects the peers it names.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// When and how far a node trims (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimLimits {
    /// Above this many connected peers, trim.
    pub high_water: u32,
    /// Trim down to this many connected peers (or as far as unprotected peers allow).
    pub low_water: u32,
    /// A new connection is not trimmed for this long.
    pub grace: Duration,
    /// A peer that exchanged a request with this node is protected for this long after it.
    pub active_for: Duration,
}

/// Off by default: measured side by side on one machine (docs/LAB.md), trimming at 48 peers saved 15-26 % of
/// a node's memory and doubled its idle CPU through connection churn, and the room it was to keep for clients
/// under the connection limit is kept by `guard.rs`'s eviction of idle strangers already.
impl Default for TrimLimits {
    fn default() -> Self {
        Self::off()
    }
}

impl TrimLimits {
    /// Trim above `high_water` peers down to two thirds of it; connections get 30 s before they can be
    /// trimmed, and a peer that exchanged a request is kept for 10 minutes. (Gossip keeps 6 to 12 mesh peers,
    /// a node a few bootstrap peers and relays; a prover works with a few clients at a time: 48 is plenty.)
    pub fn with_high_water(high_water: u32) -> Self {
        Self {
            high_water,
            low_water: high_water * 2 / 3,
            grace: Duration::from_secs(30),
            active_for: Duration::from_secs(600),
        }
    }

    /// Never trim.
    pub fn off() -> Self {
        Self {
            high_water: u32::MAX,
            low_water: u32::MAX,
            grace: Duration::from_secs(30),
            active_for: Duration::from_secs(600),
        }
    }
}

/// What the connection manager remembers per connected peer.
#[derive(Debug, Clone, Copy)]
struct PeerInfo {
    /// When its first (current) connection was established.
    since: Instant,
    /// Protected until then (work exchanged, a relay reservation).
    protected_until: Option<Instant>,
    /// When it last exchanged a request with this node.
    last_active: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct ConnManager {
    limits: TrimLimits,
    peers: HashMap<PeerId, PeerInfo>,
    /// Peers closed by trimming, since start.
    pub(crate) trimmed: u64,
}

impl ConnManager {
    pub(crate) fn new(limits: TrimLimits) -> Self {
        Self {
            limits,
            peers: HashMap::new(),
            trimmed: 0,
        }
    }

    pub(crate) fn limits(&self) -> TrimLimits {
        self.limits
    }

    /// The first connection to `peer` is established.
    pub(crate) fn connected(&mut self, peer: PeerId, now: Instant) {
        self.peers.entry(peer).or_insert(PeerInfo {
            since: now,
            protected_until: None,
            last_active: None,
        });
    }

    /// The last connection to `peer` closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// `peer` exchanged a request with this node: protected for [`TrimLimits::active_for`].
    pub(crate) fn active(&mut self, peer: PeerId, now: Instant) {
        self.protect_for(peer, now, self.limits.active_for);
        if let Some(info) = self.peers.get_mut(&peer) {
            info.last_active = Some(now);
        }
    }

    /// Protects `peer` for `time` from `now` (or longer, if it already is). A peer not connected yet is
    /// protected from its connection on (a request is sent before the connection exists).
    pub(crate) fn protect_for(&mut self, peer: PeerId, now: Instant, time: Duration) {
        let info = self.peers.entry(peer).or_insert(PeerInfo {
            since: now,
            protected_until: None,
            last_active: None,
        });
        let until = now + time;
        info.protected_until = Some(info.protected_until.map_or(until, |u| u.max(until)));
    }

    /// Peers to disconnect now, given the peers connected, which are kept for other reasons (bootstrap peers
    /// and relays), and which are in the gossip mesh. Empty unless more than the high-water mark are
    /// connected.
    pub(crate) fn to_trim(
        &self,
        now: Instant,
        connected: &[PeerId],
        kept: impl Fn(&PeerId) -> bool,
        mesh: &HashSet<PeerId>,
    ) -> Vec<PeerId> {
        if connected.len() <= self.limits.high_water as usize {
            return Vec::new();
        }
        let excess = connected.len() - self.limits.low_water as usize;
        let mut candidates: Vec<(bool, Option<Instant>, Instant, PeerId)> = connected
            .iter()
            .filter(|p| !kept(p))
            .filter_map(|p| {
                // A peer the loop has not told about yet is as young as can be: not a candidate.
                let info = self.peers.get(p)?;
                let young = now.saturating_duration_since(info.since) < self.limits.grace;
                let protected = info.protected_until.is_some_and(|u| u > now);
                (!young && !protected).then_some((
                    mesh.contains(p),
                    info.last_active,
                    info.since,
                    *p,
                ))
            })
            .collect();
        // Outside the mesh first, then never or least recently active, then the oldest connection.
        candidates.sort();
        candidates
            .into_iter()
            .take(excess)
            .map(|(_, _, _, p)| p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TrimLimits {
        TrimLimits {
            high_water: 6,
            low_water: 4,
            grace: Duration::from_secs(30),
            active_for: Duration::from_secs(600),
        }
    }

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn nothing_is_trimmed_at_or_under_the_high_water_mark() {
        let t0 = Instant::now();
        let mut m = ConnManager::new(limits());
        let ps = peers(6);
        for p in &ps {
            m.connected(*p, t0);
        }
        let later = t0 + Duration::from_secs(3600);
        assert!(m.to_trim(later, &ps, |_| false, &HashSet::new()).is_empty());
    }

    #[test]
    fn above_the_high_water_mark_idle_peers_go_down_to_the_low_water_mark() {
        let t0 = Instant::now();
        let mut m = ConnManager::new(limits());
        let ps = peers(9);
        for (i, p) in ps.iter().enumerate() {
            m.connected(*p, t0 + Duration::from_secs(i as u64));
        }
        let later = t0 + Duration::from_secs(3600);
        let trim = m.to_trim(later, &ps, |_| false, &HashSet::new());
        assert_eq!(trim.len(), 5, "9 connected, low water 4");
        // The oldest connections go first when none was ever active.
        assert_eq!(trim, ps[..5].to_vec());
    }

    #[test]
    fn workers_kept_peers_and_young_connections_are_never_trimmed_and_the_mesh_goes_last() {
        let t0 = Instant::now();
        let mut m = ConnManager::new(limits());
        let ps = peers(10);
        for p in &ps {
            m.connected(*p, t0);
        }
        let now = t0 + Duration::from_secs(1000);
        // ps[0]: a bootstrap peer; ps[1]: worked with 5 minutes ago; ps[2]: connected 10 s ago;
        // ps[3]: a relay reservation for an hour; ps[4], ps[5]: in the gossip mesh; ps[6]: active long ago.
        m.active(ps[1], now - Duration::from_secs(300));
        m.disconnected(&ps[2]);
        m.connected(ps[2], now - Duration::from_secs(10));
        m.protect_for(ps[3], t0, Duration::from_secs(3600));
        m.active(ps[6], t0 + Duration::from_secs(100));
        let mesh: HashSet<PeerId> = [ps[4], ps[5]].into();
        let kept = ps[0];
        let trim = m.to_trim(now, &ps, |p| *p == kept, &mesh);
        // 10 connected, low water 4: 6 to close, and exactly 6 are unprotected: ps[7..10] (never active),
        // ps[6] (active long ago), then the two mesh peers.
        assert_eq!(trim.len(), 6, "{trim:?}");
        for p in [ps[0], ps[1], ps[2], ps[3]] {
            assert!(!trim.contains(&p), "protected peer trimmed");
        }
        assert!(trim[..3].iter().all(|p| ps[7..].contains(p)));
        assert_eq!(trim[3], ps[6]);
        assert!(trim[4..].iter().all(|p| mesh.contains(p)));
        // With one more connection, the four protected peers still stay: the bound gives way to work.
        let mut more = ps.clone();
        let extra = PeerId::random();
        m.connected(extra, t0);
        more.push(extra);
        assert_eq!(m.to_trim(now, &more, |p| *p == kept, &mesh).len(), 7);
    }

    #[test]
    fn protection_lapses_when_its_time_is_over() {
        let t0 = Instant::now();
        let mut m = ConnManager::new(limits());
        let ps = peers(8);
        for p in &ps {
            m.connected(*p, t0);
            m.active(*p, t0);
        }
        let soon = t0 + Duration::from_secs(599);
        assert!(m.to_trim(soon, &ps, |_| false, &HashSet::new()).is_empty());
        let after = t0 + Duration::from_secs(601);
        assert_eq!(m.to_trim(after, &ps, |_| false, &HashSet::new()).len(), 4);
    }
}
