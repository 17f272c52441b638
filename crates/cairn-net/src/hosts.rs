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
//!   unverified identity. An IP where nobody was met yet holds at most [`UNPROVEN_CLAIMS_PER_IP`] claims, and
//!   one where an identity was met [`CLAIMS_PER_IP`]; the book holds [`MAX_CLAIMS`]. Past that, new claims are
//!   ignored (never evicting live ones, which would let an attacker cycle them). A claim lasts [`CLAIM_TTL`];
//!   a dial that reached nobody does not free it. So gossip pointing made-up identities at a host that is
//!   not a Cairn node costs that host at most [`UNPROVEN_CLAIMS_PER_IP`] connection attempts from each node
//!   in a [`CLAIM_TTL`], however many identities name it.
//!
//! Relayed addresses (`/p2p-circuit`) carry no claim: the relay, not this node, connects, and only to the
//! identity holding a reservation there. Addresses with no IP (DNS names) are accepted as they are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Unverified claims an IP where some identity was met may hold.
pub const CLAIMS_PER_IP: usize = 64;
/// Unverified claims an IP where nobody was met yet may hold.
pub const UNPROVEN_CLAIMS_PER_IP: usize = 4;
/// How long a claim holds its address.
pub const CLAIM_TTL: Duration = Duration::from_secs(600);
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
    /// Its IP (or the book) holds as many claims as it may: [`UNPROVEN_CLAIMS_PER_IP`] where nobody was met.
    Full,
}

#[derive(Debug, Default)]
pub(crate) struct HostBook {
    verified: HashMap<Host, (PeerId, u64)>,
    /// Verified addresses per IP.
    verified_ips: HashMap<IpAddr, usize>,
    /// Claimed addresses: who claimed each, and when.
    claims: HashMap<Host, (PeerId, Instant)>,
    /// The claimed addresses of each IP.
    per_ip: HashMap<IpAddr, Vec<Host>>,
    /// When expired claims were last swept from the whole book.
    swept: Option<Instant>,
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
        let now = Instant::now();
        if self
            .claims
            .get(&host)
            .is_some_and(|(_, at)| now.duration_since(*at) >= CLAIM_TTL)
        {
            self.release_claim(&host);
        }
        let answer = match self.verified.get(&host) {
            Some((p, _)) if *p == peer => Admit::Yes,
            Some(_) => Admit::VerifiedOther,
            None => match self.claims.get(&host) {
                Some((p, _)) if *p == peer => Admit::Yes,
                Some(_) => Admit::ClaimedOther,
                None => {
                    let limit = if self.verified_ips.contains_key(&host.0) {
                        CLAIMS_PER_IP
                    } else {
                        UNPROVEN_CLAIMS_PER_IP
                    };
                    if self.ip_claims(host.0, now) >= limit || self.book_full(now) {
                        Admit::Full
                    } else {
                        self.claims.insert(host, (peer, now));
                        self.per_ip.entry(host.0).or_default().push(host);
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
        if self.verified.insert(host, (peer, self.clock)).is_none() {
            *self.verified_ips.entry(host.0).or_default() += 1;
        }
        if self.verified.len() > MAX_VERIFIED {
            if let Some(oldest) = self
                .verified
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(h, _)| *h)
            {
                self.verified.remove(&oldest);
                if let Some(n) = self.verified_ips.get_mut(&oldest.0) {
                    *n -= 1;
                    if *n == 0 {
                        self.verified_ips.remove(&oldest.0);
                    }
                }
            }
        }
    }

    /// Live claims of `ip` (its expired ones released).
    fn ip_claims(&mut self, ip: IpAddr, now: Instant) -> usize {
        let Some(hosts) = self.per_ip.get(&ip) else {
            return 0;
        };
        let expired: Vec<Host> = hosts
            .iter()
            .filter(|h| {
                self.claims
                    .get(h)
                    .is_none_or(|(_, at)| now.duration_since(*at) >= CLAIM_TTL)
            })
            .copied()
            .collect();
        for h in &expired {
            self.release_claim(h);
        }
        self.per_ip.get(&ip).map_or(0, Vec::len)
    }

    /// Whether the book holds all the claims it may (expired ones swept first, at most once a minute).
    fn book_full(&mut self, now: Instant) -> bool {
        if self.claims.len() < MAX_CLAIMS {
            return false;
        }
        if self
            .swept
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60))
        {
            self.swept = Some(now);
            let expired: Vec<Host> = self
                .claims
                .iter()
                .filter(|(_, (_, at))| now.duration_since(*at) >= CLAIM_TTL)
                .map(|(h, _)| *h)
                .collect();
            for h in &expired {
                self.release_claim(h);
            }
        }
        self.claims.len() >= MAX_CLAIMS
    }

    fn release_claim(&mut self, host: &Host) {
        if self.claims.remove(host).is_some() {
            if let Some(hosts) = self.per_ip.get_mut(&host.0) {
                hosts.retain(|h| h != host);
                if hosts.is_empty() {
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
        // An IP where nobody was met holds a few claims: a host that is no Cairn node is dialed a few times.
        for port in 0..UNPROVEN_CLAIMS_PER_IP as u16 {
            let p = PeerId::random();
            let a = addr(&format!("/ip4/10.9.9.9/tcp/{}", 1000 + port), p);
            assert_eq!(book.admit(p, &a), Admit::Yes);
        }
        let p = PeerId::random();
        assert_eq!(book.admit(p, &addr("/ip4/10.9.9.9/tcp/9", p)), Admit::Full);
        // Another IP is not affected.
        assert_eq!(book.admit(p, &addr("/ip4/10.9.9.8/tcp/9", p)), Admit::Yes);
        // A verified meeting frees the claim it replaces, and the IP, proven to host a node, holds more.
        let q = PeerId::random();
        book.met(q, &addr("/ip4/10.9.9.9/tcp/1000", q));
        for port in 0..(CLAIMS_PER_IP - UNPROVEN_CLAIMS_PER_IP + 1) as u16 {
            let p = PeerId::random();
            let a = addr(&format!("/ip4/10.9.9.9/tcp/{}", 2000 + port), p);
            assert_eq!(book.admit(p, &a), Admit::Yes, "claim {port}");
        }
        let p = PeerId::random();
        assert_eq!(book.admit(p, &addr("/ip4/10.9.9.9/tcp/9", p)), Admit::Full);
    }

    #[test]
    fn claims_expire_and_their_addresses_can_be_claimed_again() {
        let mut book = HostBook::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let at = "/ip4/10.5.5.5/tcp/4001";
        assert_eq!(book.admit(a, &addr(at, a)), Admit::Yes);
        assert_eq!(book.admit(b, &addr(at, b)), Admit::ClaimedOther);
        // Age the claim past its lifetime (where the clock allows going back that far).
        let host = host_of(&addr(at, a)).unwrap();
        let Some(long_ago) = Instant::now().checked_sub(CLAIM_TTL) else {
            return;
        };
        book.claims.get_mut(&host).unwrap().1 = long_ago;
        assert_eq!(book.admit(b, &addr(at, b)), Admit::Yes);
        assert_eq!(book.claims(), 1);
    }
}
