//! Reachability: how a node behind a NAT router stays reachable without port forwarding.
//!
//! - **Outbound connections kept.** Every bootstrap peer and relay is redialled with backoff and jitter
//!   whenever its connection drops ([`Redialer`]); a ping every 15 s keeps home routers' NAT entries alive
//!   and a connection whose pings fail is closed, so a dead uplink is noticed in about half a minute rather
//!   than at TCP's retransmission timeout.
//! - **Relays.** A node with relays configured reserves a slot on each (libp2p circuit relay v2) and is
//!   dialable at `<relay>/p2p-circuit/p2p/<me>`; the reservation is renewed whenever the relay connection
//!   comes back. Hole punching (DCUtR) then tries a direct connection, and the relayed one is closed a few
//!   seconds after a punch succeeds, so bulk data stops flowing through the relay.
//! - **What a node advertises.** Only addresses others can dial: its confirmed external addresses (AutoNAT
//!   dial-backs, the operator's `external` addresses, relay circuits), never the private listen addresses of a
//!   node behind NAT ([`Reachability`]). Provers carry them in their signed capacity announcements, so a
//!   client that hears of a prover through a relay can dial it back through that relay.
//! - **Public nodes relay** ([`RelayServerConfig`]), with limits sized for Cairn's blobs and jobs: libp2p's
//!   defaults (128 KiB and 2 minutes per circuit) would cut every segment transfer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// How a node decides what addresses to advertise and whether to serve the DHT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reachability {
    /// AutoNAT probes (through connected peers) decide: a listen address another node could dial back is
    /// advertised; until then only relay circuits are. Kademlia serves only once an address is confirmed.
    #[default]
    Auto,
    /// The operator says the listen addresses are reachable (a public host, a LAN or loopback devnet):
    /// they are advertised at once and Kademlia serves.
    Public,
    /// Behind NAT, no probing: only relay circuits and explicitly given external addresses are advertised.
    Private,
}

impl std::str::FromStr for Reachability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            other => Err(format!(
                "unknown reachability {other:?}: use auto, public or private"
            )),
        }
    }
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Public => "public",
            Self::Private => "private",
        })
    }
}

/// Limits of the circuit relay a public node runs for nodes behind NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayServerConfig {
    /// Nodes holding a reservation at once.
    pub max_reservations: usize,
    /// Reservations per peer.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the node renews it.
    pub reservation_duration: Duration,
    /// Circuits (relayed connections) at once.
    pub max_circuits: usize,
    /// Circuits per peer (either end).
    pub max_circuits_per_peer: usize,
    /// Lifetime of one circuit (a job's connection to a prover lives this long at most over the relay).
    pub max_circuit_duration: Duration,
    /// Bytes per circuit and direction; 0 is unlimited.
    pub max_circuit_bytes: u64,
}

impl Default for RelayServerConfig {
    /// Sized for Cairn: a segment of po2 20 is ~20 MB, so a circuit carries up to 1 GiB each way (about 50
    /// such segments) and lives up to 2 hours; then it closes and the next request opens a new one (transfers
    /// resume where they stopped). Before (issue 29, item 7) circuits had no byte limit and lived a day, so a
    /// few identities could hold every circuit as a free proxy. Reservations are renewed hourly. How many
    /// identities one address can bring is bounded by the inbound connection guard (`guard.rs`: 8 per IP).
    fn default() -> Self {
        Self {
            max_reservations: 1024,
            max_reservations_per_peer: 4,
            reservation_duration: Duration::from_secs(3600),
            max_circuits: 256,
            max_circuits_per_peer: 32,
            max_circuit_duration: Duration::from_secs(2 * 3600),
            max_circuit_bytes: 1 << 30,
        }
    }
}

impl RelayServerConfig {
    pub(crate) fn to_libp2p(self) -> libp2p::relay::Config {
        libp2p::relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: self.reservation_duration,
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            // libp2p encodes it as u32 seconds; 0 would be "no time at all", not unlimited.
            max_circuit_duration: self
                .max_circuit_duration
                .clamp(Duration::from_secs(1), Duration::from_secs(u32::MAX as u64)),
            max_circuit_bytes: self.max_circuit_bytes,
            ..libp2p::relay::Config::default()
        }
    }
}

/// Where a node stands, for `cairn node status` and start-up messages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReachabilityStatus {
    /// The configured mode.
    pub mode: String,
    /// What AutoNAT concluded: `unknown`, `public` or `private` (`off` when it does not run).
    pub nat: String,
    /// Addresses this node advertises (others can dial them), each ending in `/p2p/<peer id>`.
    pub advertised: Vec<String>,
    /// Relays this node is configured with, and whether it holds a reservation on each.
    pub relays: Vec<RelayState>,
    /// Peers with an open connection.
    pub connected_peers: usize,
    /// Connections to peers that go through a relay.
    pub relayed_connections: usize,
    /// Hole punches that succeeded and failed since start.
    pub hole_punches: (u64, u64),
    /// Addresses in gossip this node did not believe (another identity lives or claimed to live there,
    /// or their IP holds as many unverified claims as it may), since start.
    pub gossip_addrs_ignored: u64,
    /// Gossiped addresses held as unverified claims now.
    pub gossip_addr_claims: usize,
    /// Inbound connections refused (too many from one address, or from strangers), since start.
    pub inbound_refused: u64,
    /// Idle strangers' connections closed to make room, since start.
    pub strangers_evicted: u64,
    /// Idle connections closed above the high-water mark (`connmgr.rs`), since start.
    pub connections_trimmed: u64,
    /// Network events waiting for the node to take them now (it is behind: the latest per peer and kind is
    /// kept), the most that ever waited, and events lost since start (the wait full, or the node stopping).
    pub events_waiting: usize,
    pub events_waiting_peak: usize,
    pub events_dropped: u64,
}

impl ReachabilityStatus {
    /// One line for an owner: reachable directly, through a relay, or not at all, and what to do.
    pub fn summary(&self) -> String {
        let direct = self.advertised.iter().any(|a| !is_relayed(a));
        let relayed: Vec<&RelayState> = self.relays.iter().filter(|r| r.reserved).collect();
        if direct {
            "reachable directly: clients can dial this node at its advertised addresses".into()
        } else if !relayed.is_empty() {
            format!(
                "reachable through {} relay(s) ({}): clients dial through the relay and try to upgrade to a direct \
                 connection; forwarding a port to this node (and --external-addr) would make it reachable directly",
                relayed.len(),
                relayed.iter().map(|r| r.peer.as_str()).collect::<Vec<_>>().join(", ")
            )
        } else if self.connected_peers > 0 {
            "reachable only over the connections it opened itself: clients it is connected to can give it work, \
             others cannot reach it; add a relay (--relay) or forward a port (--external-addr)"
                .into()
        } else {
            "not reachable: no connection to any peer and no relay reservation; check --bootstrap and --relay \
             addresses and this machine's network"
                .into()
        }
    }
}

/// A relay and the node's reservation on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RelayState {
    /// The relay's peer id.
    pub peer: String,
    /// Its address.
    pub addr: String,
    /// Whether this node holds a reservation there right now.
    pub reserved: bool,
    /// When the latest reservation (or renewal) was accepted, Unix seconds.
    pub reserved_at: Option<u64>,
}

/// Whether an address goes through a relay.
pub(crate) fn is_relayed(addr: &str) -> bool {
    addr.contains("/p2p-circuit")
}

pub(crate) fn addr_is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether `addr` is an IP address a peer elsewhere could not dial: unspecified, loopback, link-local, or
/// a private (RFC 1918 / ULA) range. Used to keep such addresses out of what a node behind NAT advertises.
pub(crate) fn is_private_ip(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64 // carrier-grade NAT, 100.64/10
        }
        Protocol::Ip6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        _ => false,
    })
}

pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Backoff for redialling a peer the node wants to stay connected to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `n` (0-based): `first * 2^n`, capped, with up to ±20 % jitter so a relay that
    /// restarts is not redialled by all its nodes in the same instant.
    pub fn delay(&self, attempt: u32, jitter_seed: u64) -> Duration {
        let base = self
            .first
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        // A cheap, well-spread value in [0, 1) from the seed (splitmix64), no RNG dependency.
        let mut z = jitter_seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.8 + 0.4 * unit)
    }
}

#[derive(Debug)]
struct Target {
    addr: Multiaddr,
    attempt: u32,
    due: Option<Instant>,
}

/// The peers a node keeps a connection to (bootstrap peers, relays), and when each is to be redialled.
#[derive(Debug)]
pub(crate) struct Redialer {
    targets: HashMap<PeerId, Target>,
    backoff: Backoff,
    seed: u64,
}

impl Redialer {
    pub fn new(backoff: Backoff, seed: u64) -> Self {
        Self {
            targets: HashMap::new(),
            backoff,
            seed,
        }
    }

    /// Keeps `peer` connected at `addr` (the first address given for a peer wins).
    pub fn keep(&mut self, peer: PeerId, addr: Multiaddr) {
        self.targets.entry(peer).or_insert(Target {
            addr,
            attempt: 0,
            due: None,
        });
    }

    pub fn is_kept(&self, peer: &PeerId) -> bool {
        self.targets.contains_key(peer)
    }

    /// Connected: the backoff starts over.
    pub fn connected(&mut self, peer: &PeerId) {
        if let Some(t) = self.targets.get_mut(peer) {
            t.attempt = 0;
            t.due = None;
        }
    }

    /// The last connection closed or a dial failed: schedule the next dial (unless one is scheduled).
    pub fn lost(&mut self, peer: &PeerId, now: Instant) {
        if let Some(t) = self.targets.get_mut(peer) {
            if t.due.is_none() {
                let seed = self.seed ^ (t.attempt as u64) ^ hash_peer(peer);
                t.due = Some(now + self.backoff.delay(t.attempt, seed));
                t.attempt = t.attempt.saturating_add(1);
            }
        }
    }

    /// Addresses whose redial is due; each is unscheduled (a failure schedules it again).
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let mut out = Vec::new();
        for (peer, t) in &mut self.targets {
            if t.due.is_some_and(|d| d <= now) {
                t.due = None;
                out.push((*peer, t.addr.clone()));
            }
        }
        out
    }
}

fn hash_peer(peer: &PeerId) -> u64 {
    peer.to_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x1000_0000_01b3)
        })
}

/// How long a dial-back verdict counts.
const NAT_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Distinct servers, none of them chosen by the operator, whose failed dial-backs make a private verdict stand.
const NAT_UNTRUSTED_QUORUM: usize = 3;

/// AutoNAT's dial-back results by server, so that no single peer can take a node's addresses away (issue
/// 29, item 10). libp2p's AutoNAT client asks connected peers as well as the servers the operator named
/// (bootstrap peers and relays), and a peer that answers every probe with a failure could flip a public
/// node to private, which withdraws its direct addresses and its DHT service. A private verdict now stands
/// only if no server reached the node in the last 30 minutes and a server the operator chose failed to, or
/// three distinct servers did.
#[derive(Debug, Default)]
pub(crate) struct NatJury {
    trusted: std::collections::HashSet<PeerId>,
    recent: std::collections::VecDeque<(PeerId, bool, Instant)>,
}

impl NatJury {
    /// A server the operator chose (a bootstrap peer or relay).
    pub(crate) fn trust(&mut self, server: PeerId) {
        self.trusted.insert(server);
    }

    /// `server` dialed back (`reached`) or answered that it could not.
    pub(crate) fn heard(&mut self, server: PeerId, reached: bool, now: Instant) {
        self.recent.push_back((server, reached, now));
        while self
            .recent
            .front()
            .is_some_and(|(_, _, at)| now.duration_since(*at) > NAT_WINDOW)
            || self.recent.len() > 256
        {
            self.recent.pop_front();
        }
    }

    /// Whether a private verdict stands on what the servers said lately.
    pub(crate) fn private_stands(&self, now: Instant) -> bool {
        let recent = || {
            self.recent
                .iter()
                .filter(move |(_, _, at)| now.duration_since(*at) <= NAT_WINDOW)
        };
        if recent().any(|(_, reached, _)| *reached) {
            return false;
        }
        let failed: std::collections::HashSet<&PeerId> = recent().map(|(p, _, _)| p).collect();
        failed.iter().any(|p| self.trusted.contains(*p)) || failed.len() >= NAT_UNTRUSTED_QUORUM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 29, item 10: any connected peer could answer AutoNAT's dial-back probes with failures and flip a
    /// public node to private. One or two peers' failures no longer do; a server the operator chose, or
    /// three distinct ones, still can, and any success in the window vetoes.
    #[test]
    fn item10_one_lying_peer_cannot_make_a_public_node_private() {
        let now = Instant::now();
        let mut jury = NatJury::default();
        let (liar, other, relay) = (PeerId::random(), PeerId::random(), PeerId::random());
        jury.trust(relay);
        for _ in 0..10 {
            jury.heard(liar, false, now);
        }
        assert!(!jury.private_stands(now), "one peer's failures flip it");
        jury.heard(other, false, now);
        assert!(!jury.private_stands(now));
        jury.heard(PeerId::random(), false, now);
        assert!(jury.private_stands(now), "three distinct servers failed");
        // An honest server reached the node: that vetoes.
        jury.heard(PeerId::random(), true, now);
        assert!(!jury.private_stands(now));
        // Later, the success is out of the window, and the operator's relay fails to dial back.
        let later = now + NAT_WINDOW + Duration::from_secs(1);
        jury.heard(relay, false, later);
        assert!(
            jury.private_stands(later),
            "the operator's own server could not dial back"
        );
        let mut lone = NatJury::default();
        lone.trust(relay);
        lone.heard(relay, false, now);
        assert!(
            lone.private_stands(now),
            "behind NAT with one relay, its word is enough"
        );
    }

    /// Issue 29, item 7: a relay's circuits had no byte limit and lived 24 h, so ~8 identities could hold all
    /// 256 for a day as a free proxy and cut nodes behind NAT off that relay. A circuit is bounded in bytes and
    /// time now (and how many identities one address brings, by `guard.rs`).
    #[test]
    fn item7_a_relay_circuit_is_bounded_in_bytes_and_time() {
        let c = RelayServerConfig::default().to_libp2p();
        assert!(c.max_circuit_bytes > 0 && c.max_circuit_bytes <= 1 << 30);
        assert!(c.max_circuit_duration <= Duration::from_secs(2 * 3600));
        // libp2p's per-address rate limits on reservations and circuits stay in place.
        assert!(!c.reservation_rate_limiters.is_empty());
        assert!(!c.circuit_src_rate_limiters.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_bounded_jitter() {
        let b = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        for seed in 0..200u64 {
            let d0 = b.delay(0, seed).as_secs_f64();
            assert!((0.8..=1.2).contains(&d0), "{d0}");
            let d3 = b.delay(3, seed).as_secs_f64();
            assert!((6.4..=9.6).contains(&d3), "{d3}");
            let d20 = b.delay(20, seed).as_secs_f64();
            assert!((24.0..=36.0).contains(&d20), "{d20}");
        }
        // The jitter spreads: not every seed gives the same delay.
        let distinct: std::collections::BTreeSet<u128> =
            (0..50).map(|s| b.delay(2, s).as_millis()).collect();
        assert!(distinct.len() > 20);
    }

    #[test]
    fn a_kept_peer_is_redialled_after_a_loss_and_its_backoff_resets_on_connect() {
        let mut r = Redialer::new(
            Backoff {
                first: Duration::from_secs(1),
                max: Duration::from_secs(8),
            },
            7,
        );
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/203.0.113.1/tcp/4011".parse().unwrap();
        r.keep(peer, addr.clone());
        let t0 = Instant::now();
        assert!(
            r.due(t0 + Duration::from_secs(100)).is_empty(),
            "nothing lost yet"
        );
        r.lost(&peer, t0);
        r.lost(&peer, t0); // a second report while scheduled changes nothing
        assert!(r.due(t0).is_empty());
        assert_eq!(
            r.due(t0 + Duration::from_secs(2)),
            vec![(peer, addr.clone())]
        );
        // It failed again: a longer wait.
        r.lost(&peer, t0 + Duration::from_secs(2));
        assert!(r.due(t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(r.due(t0 + Duration::from_secs(5)).len(), 1);
        r.connected(&peer);
        r.lost(&peer, t0 + Duration::from_secs(10));
        assert_eq!(
            r.due(t0 + Duration::from_millis(11_300)).len(),
            1,
            "back to the first delay"
        );
        // Unknown peers are ignored.
        r.lost(&PeerId::random(), t0);
        assert!(r.due(t0 + Duration::from_secs(1000)).is_empty());
    }

    #[test]
    fn private_and_relayed_addresses_are_recognised() {
        for a in [
            "/ip4/192.168.1.2/tcp/1",
            "/ip4/10.0.0.1/tcp/1",
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/100.64.3.4/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip6/fd00::1/tcp/1",
        ] {
            assert!(is_private_ip(&a.parse().unwrap()), "{a}");
        }
        for a in ["/ip4/203.0.113.7/tcp/1", "/ip4/8.8.8.8/udp/1/quic-v1"] {
            assert!(!is_private_ip(&a.parse().unwrap()), "{a}");
        }
        let relayed: Multiaddr = format!(
            "/ip4/203.0.113.1/tcp/4011/p2p/{}/p2p-circuit",
            PeerId::random()
        )
        .parse()
        .unwrap();
        assert!(addr_is_relayed(&relayed));
        assert!(is_relayed(&relayed.to_string()));
    }

    #[test]
    fn relay_limits_fit_cairn_transfers() {
        let c = RelayServerConfig::default().to_libp2p();
        // Room for ~50 po2 20 segments (~20 MB each) per circuit and an hour of a job.
        assert!(c.max_circuit_bytes >= 50 * 20_000_000);
        assert!(c.max_circuit_duration >= Duration::from_secs(3600));
        let zero = RelayServerConfig {
            max_circuit_duration: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            zero.to_libp2p().max_circuit_duration,
            Duration::from_secs(1)
        );
    }
}
