//! Which identity lives at which address, so gossip cannot point this node at a host that is not the one it
//! names (issue 29, item 1).
//!
//! A capacity announcement carries addresses its author chose: IP and port can be anything (a LAN host, a
//! loopback port of another node), and a node that believed them would dial there for every made-up identity
//! an attacker announces. The book keeps two kinds of entries, keyed by a direct address's IP and port:
//!
//! - **verified**: this node dialed the address and met the identity there (a connection was established,
//!   or a dial failed because another identity answered: that one lives there). Gossip naming anyone else at
//!   a verified address is ignored.
//! - **claims**: addresses gossip named and nothing has verified yet. The first identity to claim an address
//!   holds it; others naming the same address are ignored, so one address is dialed for at most one
//!   unverified identity. An IP holds at most [`CLAIMS_PER_IP`] claims and the book [`MAX_CLAIMS`] in all;
//!   past that, new claims are ignored (never evicting older ones, which would let an attacker cycle them).
//!
//! Relayed addresses (`/p2p-circuit`) carry no claim: the relay, not this node, connects, and only to the
//! identity holding a reservation there. Addresses with no IP (DNS names) are accepted as they are.

use std::collections::HashMap;
use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Unverified claims one IP may hold.
pub const CLAIMS_PER_IP: usize = 64;
/// Unverified claims in all.
pub const MAX_CLAIMS: usize = 4_096;
/// Verified addresses kept (oldest forgotten first).
pub const MAX_VERIFIED: usize = 16_384;

/// A direct address's host: IP and port (TCP or UDP).
pub(crate) type Host = (IpAddr, u16);

/// The host an address reaches directly; `None` for relayed addresses and those without an IP and port.
pub(crate) fn host_of(addr: &Multiaddr) -> Option<Host> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::P2pCircuit => return None,
            Protocol::Ip4(a) if ip.is_none() => ip = Some(IpAddr::V4(a)),
            Protocol::Ip6(a) if ip.is_none() => ip = Some(IpAddr::V6(a)),
            Protocol::Tcp(p) | Protocol::Udp(p) if port.is_none() => port = Some(p),
            _ => {}
        }
    }
    Some((ip?, port?))
}

/// What [`HostBook::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Dial it: verified for this identity, newly claimed by it, already its claim, or relayed.
    Yes,
    /// Another identity was met at this address.
    VerifiedOther,
    /// Another identity claimed it first.
    ClaimedOther,
    /// Its IP (or the book) holds as many claims as it may.
    Full,
}

#[derive(Debug, Default)]
pub(crate) struct HostBook {
    verified: HashMap<Host, (PeerId, u64)>,
    claims: HashMap<Host, PeerId>,
    per_ip: HashMap<IpAddr, usize>,
    /// Insertion counter, for forgetting the oldest verified entry.
    clock: u64,
    /// Gossiped addresses ignored so far (for the status and tests).
    pub(crate) ignored: u64,
}

impl HostBook {
    /// Whether `peer` may be dialed at `addr`, an address gossip gave for it; claims it if nobody has.
    pub(crate) fn admit(&mut self, peer: PeerId, addr: &Multiaddr) -> Admit {
        let Some(host) = host_of(addr) else {
            return Admit::Yes;
        };
        let answer = match self.verified.get(&host) {
            Some((p, _)) if *p == peer => Admit::Yes,
            Some(_) => Admit::VerifiedOther,
            None => match self.claims.get(&host) {
                Some(p) if *p == peer => Admit::Yes,
                Some(_) => Admit::ClaimedOther,
                None => {
                    let n = self.per_ip.get(&host.0).copied().unwrap_or(0);
                    if n >= CLAIMS_PER_IP || self.claims.len() >= MAX_CLAIMS {
                        Admit::Full
                    } else {
                        self.claims.insert(host, peer);
                        *self.per_ip.entry(host.0).or_default() += 1;
                        Admit::Yes
                    }
                }
            },
        };
        if answer != Admit::Yes {
            self.ignored += 1;
        }
        answer
    }

    /// This node dialed `addr` and met `peer` there.
    pub(crate) fn met(&mut self, peer: PeerId, addr: &Multiaddr) {
        let Some(host) = host_of(addr) else {
            return;
        };
        self.release_claim(&host);
        self.clock += 1;
        self.verified.insert(host, (peer, self.clock));
        if self.verified.len() > MAX_VERIFIED {
            if let Some(oldest) = self
                .verified
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(h, _)| *h)
            {
                self.verified.remove(&oldest);
            }
        }
    }

    fn release_claim(&mut self, host: &Host) {
        if self.claims.remove(host).is_some() {
            if let Some(n) = self.per_ip.get_mut(&host.0) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&host.0);
                }
            }
        }
    }

    /// Unverified claims held now.
    pub(crate) fn claims(&self) -> usize {
        self.claims.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str, peer: PeerId) -> Multiaddr {
        format!("{s}/p2p/{peer}").parse().unwrap()
    }

    #[test]
    fn an_address_is_dialed_for_one_unverified_identity_and_a_met_one_wins() {
        let mut book = HostBook::default();
        let (a, b, honest) = (PeerId::random(), PeerId::random(), PeerId::random());
        let at = "/ip4/127.0.0.1/tcp/4001";
        assert_eq!(book.admit(a, &addr(at, a)), Admit::Yes);
        assert_eq!(
            book.admit(a, &addr(at, a)),
            Admit::Yes,
            "its own claim again"
        );
        assert_eq!(book.admit(b, &addr(at, b)), Admit::ClaimedOther);
        // The same IP and port over QUIC counts as the same host.
        assert_eq!(
            book.admit(b, &addr("/ip4/127.0.0.1/udp/4001/quic-v1", b)),
            Admit::ClaimedOther
        );
        // A dial met the honest node there: the address is its, for everyone.
        book.met(honest, &addr(at, honest));
        assert_eq!(book.admit(a, &addr(at, a)), Admit::VerifiedOther);
        assert_eq!(book.admit(honest, &addr(at, honest)), Admit::Yes);
        assert_eq!(book.claims(), 0);
        assert_eq!(book.ignored, 3);
    }

    #[test]
    fn relayed_addresses_carry_no_claim_and_an_ip_holds_a_bounded_number() {
        let mut book = HostBook::default();
        let relay = PeerId::random();
        for _ in 0..10 {
            let p = PeerId::random();
            let circuit: Multiaddr = format!("/ip4/10.0.0.1/tcp/1/p2p/{relay}/p2p-circuit/p2p/{p}")
                .parse()
                .unwrap();
            assert_eq!(book.admit(p, &circuit), Admit::Yes);
        }
        assert_eq!(book.claims(), 0);
        for port in 0..CLAIMS_PER_IP as u16 {
            let p = PeerId::random();
            let a = addr(&format!("/ip4/10.9.9.9/tcp/{}", 1000 + port), p);
            assert_eq!(book.admit(p, &a), Admit::Yes);
        }
        let p = PeerId::random();
        assert_eq!(book.admit(p, &addr("/ip4/10.9.9.9/tcp/9", p)), Admit::Full);
        // Another IP is not affected.
        assert_eq!(book.admit(p, &addr("/ip4/10.9.9.8/tcp/9", p)), Admit::Yes);
        // A verified meeting frees the claim it replaces.
        let q = PeerId::random();
        book.met(q, &addr("/ip4/10.9.9.9/tcp/1000", q));
        assert_eq!(book.admit(p, &addr("/ip4/10.9.9.9/tcp/9", p)), Admit::Yes);
    }
}
