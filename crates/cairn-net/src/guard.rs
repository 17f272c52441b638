//! Inbound connection slots that strangers cannot take from peers that bring or do work (issue 29, the
//! connection flood).
//!
//! libp2p's `connection_limits` caps connections in all (128) and per peer, but a peer id is free: one
//! process with many identities filled an honest prover's table, and clients could no longer reach it. This
//! behaviour adds, for *inbound* connections:
//!
//! - **per address**: at most [`InboundLimits::per_ip`] connections from one IP (loopback exempt unless
//!   [`InboundLimits::limit_loopback`]: on one machine every node shares 127.0.0.1, and a process on the same
//!   machine could do worse than connect);
//! - **a reserve for peers that work**: peers that sent work messages (offers, results, heartbeats, failure
//!   reports), that hold a reservation or a circuit on this node's relay, or that this node dialed are
//!   *valued*; strangers hold at most the connection limit less [`InboundLimits::reserve`] inbound
//!   connections, so the rest of the table stays open to valued peers;
//! - **eviction of idle strangers**: where a new connection finds its address or the strangers' share full,
//!   the oldest stranger connection that has had [`InboundLimits::grace`] to show work and has not is closed
//!   to make room; only if there is none is the new connection refused. So a flood of idle identities cycles
//!   through the slots instead of holding them, and a newcomer that brings work stays.
//!
//! Outbound connections (this node chose to dial) are never limited here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm,
    ListenFailure, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Limits on inbound connections (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundLimits {
    /// Inbound connections from one IP address.
    pub per_ip: u32,
    /// Connections kept for valued peers: strangers hold at most `ConnectionLimits::max_established` less
    /// this many inbound connections.
    pub reserve: u32,
    /// How long a new connection has to show work before it can be evicted.
    pub grace: Duration,
    /// Apply `per_ip` to loopback addresses too (tests; a devnet on one machine shares 127.0.0.1).
    pub limit_loopback: bool,
}

impl Default for InboundLimits {
    fn default() -> Self {
        Self {
            per_ip: 8,
            // Of `ConnectionLimits::max_established` (128 for a node): 96 for strangers.
            reserve: 32,
            grace: Duration::from_secs(10),
            limit_loopback: false,
        }
    }
}

/// Valued peers remembered (oldest forgotten first).
const MAX_VALUED: usize = 8_192;

#[derive(Debug, Clone, Copy)]
struct Inbound {
    peer: PeerId,
    ip: Option<IpAddr>,
    since: Instant,
}

pub(crate) struct Guard {
    limits: InboundLimits,
    /// Inbound connections strangers may hold.
    strangers_max: usize,
    pending: HashMap<ConnectionId, Option<IpAddr>>,
    inbound: HashMap<ConnectionId, Inbound>,
    valued: HashSet<PeerId>,
    valued_order: VecDeque<PeerId>,
    to_close: VecDeque<(PeerId, ConnectionId)>,
    closing: HashSet<ConnectionId>,
    /// Connections refused and strangers evicted, since start.
    pub(crate) refused: u64,
    pub(crate) evicted: u64,
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

impl Guard {
    pub(crate) fn new(limits: InboundLimits, max_established: u32) -> Self {
        Self {
            limits,
            strangers_max: max_established.saturating_sub(limits.reserve).max(1) as usize,
            pending: HashMap::new(),
            inbound: HashMap::new(),
            valued: HashSet::new(),
            valued_order: VecDeque::new(),
            to_close: VecDeque::new(),
            closing: HashSet::new(),
            refused: 0,
            evicted: 0,
        }
    }

    /// `peer` brought or did work (or this node dialed it): it is no stranger from now on.
    pub(crate) fn value(&mut self, peer: PeerId) {
        if self.valued.insert(peer) {
            self.valued_order.push_back(peer);
            if self.valued_order.len() > MAX_VALUED {
                if let Some(old) = self.valued_order.pop_front() {
                    self.valued.remove(&old);
                }
            }
        }
    }

    fn limited_ip(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        ip.filter(|ip| self.limits.limit_loopback || !ip.is_loopback())
    }

    fn live(&self) -> impl Iterator<Item = (&ConnectionId, &Inbound)> {
        self.inbound
            .iter()
            .filter(|(id, _)| !self.closing.contains(id))
    }

    fn coming_from(&self, ip: IpAddr) -> usize {
        let established = self.live().filter(|(_, c)| c.ip == Some(ip)).count();
        established + self.pending.values().filter(|p| **p == Some(ip)).count()
    }

    fn strangers(&self) -> usize {
        self.live()
            .filter(|(_, c)| !self.valued.contains(&c.peer))
            .count()
    }

    /// Marks the oldest stranger connection past its grace (from `ip` if given) for closing.
    fn evict(&mut self, ip: Option<IpAddr>, now: Instant) -> bool {
        let victim = self
            .live()
            .filter(|(_, c)| ip.is_none() || c.ip == ip)
            .filter(|(_, c)| !self.valued.contains(&c.peer))
            .filter(|(_, c)| now.duration_since(c.since) >= self.limits.grace)
            .min_by_key(|(_, c)| c.since)
            .map(|(id, c)| (*id, c.peer));
        match victim {
            Some((id, peer)) => {
                self.closing.insert(id);
                self.to_close.push_back((peer, id));
                self.evicted += 1;
                tracing::debug!(target: "cairn_net", %peer, "evicting an idle stranger's connection");
                true
            }
            None => false,
        }
    }

    fn deny(&mut self, why: String) -> ConnectionDenied {
        self.refused += 1;
        tracing::debug!(target: "cairn_net", %why, "inbound connection refused");
        ConnectionDenied::new(std::io::Error::other(why))
    }

    /// Counts of (inbound connections, from strangers, valued peers known).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.live().count(), self.strangers(), self.valued.len())
    }
}

impl NetworkBehaviour for Guard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let ip = ip_of(remote);
        if let Some(limited) = self.limited_ip(ip) {
            if self.coming_from(limited) >= self.limits.per_ip as usize
                && !self.evict(Some(limited), Instant::now())
            {
                return Err(self.deny(format!(
                    "{} connections from {limited} already (at most {} per address)",
                    self.limits.per_ip, self.limits.per_ip
                )));
            }
        }
        self.pending.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let ip = self
            .pending
            .remove(&connection_id)
            .unwrap_or_else(|| ip_of(remote));
        if !self.valued.contains(&peer)
            && self.strangers() >= self.strangers_max
            && !self.evict(None, Instant::now())
        {
            return Err(self.deny(format!(
                "{} connections from peers that have not worked with this node already",
                self.strangers_max
            )));
        }
        self.inbound.insert(
            connection_id,
            Inbound {
                peer,
                ip,
                since: Instant::now(),
            },
        );
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.value(peer);
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.inbound.remove(&connection_id);
                self.closing.remove(&connection_id);
            }
            // Refused (here or by another behaviour) before or after its handshake.
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending.remove(&connection_id);
                self.inbound.remove(&connection_id);
                self.closing.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.to_close.pop_front() {
            Some((peer_id, id)) => Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(id),
            }),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/5000").parse().unwrap()
    }

    fn connect(g: &mut Guard, ip: &str, peer: PeerId) -> Result<ConnectionId, String> {
        let id = ConnectionId::new_unchecked(rand_id());
        g.handle_pending_inbound_connection(id, &addr("10.0.0.1"), &addr(ip))
            .map_err(|e| format!("{e:?}"))?;
        g.handle_established_inbound_connection(id, peer, &addr("10.0.0.1"), &addr(ip))
            .map_err(|e| format!("{e:?}"))?;
        Ok(id)
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    fn age(g: &mut Guard, by: Duration) {
        for c in g.inbound.values_mut() {
            c.since -= by;
        }
    }

    #[test]
    fn one_address_holds_a_few_slots_and_idle_strangers_make_room() {
        let mut g = Guard::new(InboundLimits::default(), 128);
        for _ in 0..8 {
            connect(&mut g, "10.1.1.1", PeerId::random()).unwrap();
        }
        // Within their grace, nobody can be evicted: the ninth is refused.
        let e = connect(&mut g, "10.1.1.1", PeerId::random()).unwrap_err();
        assert!(e.contains("per address"), "{e}");
        // Another address is not affected.
        connect(&mut g, "10.2.2.2", PeerId::random()).unwrap();
        // Past their grace, the oldest idle stranger makes room.
        age(&mut g, Duration::from_secs(11));
        connect(&mut g, "10.1.1.1", PeerId::random()).unwrap();
        assert_eq!(g.evicted, 1);
        assert_eq!(g.to_close.len(), 1);
        // Loopback is exempt by default.
        for _ in 0..20 {
            connect(&mut g, "127.0.0.1", PeerId::random()).unwrap();
        }
    }

    #[test]
    fn strangers_cannot_take_the_slots_kept_for_peers_that_work() {
        let limits = InboundLimits {
            per_ip: 1_000,
            reserve: 4,
            ..InboundLimits::default()
        };
        let mut g = Guard::new(limits, 8);
        let worker = PeerId::random();
        g.value(worker);
        for _ in 0..4 {
            connect(&mut g, "10.1.1.1", PeerId::random()).unwrap();
        }
        let e = connect(&mut g, "10.1.1.1", PeerId::random()).unwrap_err();
        assert!(e.contains("not worked"), "{e}");
        // A valued peer still gets in.
        connect(&mut g, "10.1.1.1", worker).unwrap();
        assert_eq!(g.counts(), (5, 4, 1));
        // A valued peer's connection is never evicted; idle strangers are.
        age(&mut g, Duration::from_secs(60));
        for _ in 0..4 {
            connect(&mut g, "10.1.1.1", PeerId::random()).unwrap();
        }
        assert_eq!(g.evicted, 4);
        assert!(g.live().any(|(_, c)| c.peer == worker));
    }
}
