//! The swarm, its owner task ([`EventLoop`]), and the handle everyone else uses ([`Client`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify, kad, mdns, noise, ping, relay, tcp,
    yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::blob::BlobId;
use crate::codec::{Frame, FrameCodec};
use crate::error::NetError;
use crate::identity::{self, Identity};
use crate::outbox::{Outbox, Pushed};
use crate::protocol::{
    self, limits, CapacityAnnouncement, ErrorCode, ErrorReply, JobAnnouncement, Request, Response,
};
use crate::reach::{
    self, addr_is_relayed, Backoff, Reachability, ReachabilityStatus, Redialer, RelayServerConfig,
    RelayState,
};
use crate::store::{BlobStore, Retention, StoreConfig};
use crate::transfer::{self, FetchedBlob, Fetcher, TestHooks, TransferConfig};

const TASK_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/task/1");
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/kad/1.0.0");
const IDENTIFY_PROTOCOL: &str = "/cairn/id/1.0.0";
/// Largest gossip message accepted by the gossipsub codec (each topic has a smaller cap of its own).
const MAX_GOSSIP_TRANSMIT: usize = 32 * 1024;

/// Gossip topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Provers announce their capacity ([`CapacityAnnouncement`]).
    Capacity,
    /// Clients announce jobs ([`JobAnnouncement`]).
    Jobs,
}

impl Topic {
    /// The gossipsub topic name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Capacity => "/cairn/capacity/1",
            Self::Jobs => "/cairn/jobs/1",
        }
    }

    fn ident(self) -> gossipsub::IdentTopic {
        gossipsub::IdentTopic::new(self.name())
    }

    fn from_hash(hash: &gossipsub::TopicHash) -> Option<Self> {
        [Self::Capacity, Self::Jobs]
            .into_iter()
            .find(|t| t.ident().hash() == *hash)
    }
}

/// Connection limits (enforced by libp2p's `connection_limits` behaviour, first in the stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Established connections in total.
    pub max_established: u32,
    /// Established connections per peer.
    pub max_per_peer: u32,
    /// Incoming connections still in their handshake.
    pub max_pending_incoming: u32,
    /// Outgoing connections still in their handshake.
    pub max_pending_outgoing: u32,
    /// Inbound connections per address and from strangers (`guard.rs`).
    pub inbound: crate::guard::InboundLimits,
    /// Idle connections closed above a high-water mark (`connmgr.rs`).
    pub trim: crate::connmgr::TrimLimits,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_established: 128,
            // A relayed and a direct connection (after hole punching) to the same peer, plus the brief
            // extra one of a simultaneous dial.
            max_per_peer: 4,
            max_pending_incoming: 32,
            max_pending_outgoing: 32,
            inbound: crate::guard::InboundLimits::default(),
            trim: crate::connmgr::TrimLimits::default(),
        }
    }
}

/// Everything [`Network::new`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Node keypair.
    pub identity: Identity,
    /// Listen addresses, e.g. `/ip4/0.0.0.0/tcp/4011` and `/ip4/0.0.0.0/udp/4011/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and stay connected to (redialled with backoff whenever the connection drops);
    /// each address must end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// How this node decides which addresses to advertise (see [`Reachability`]).
    pub reachability: Reachability,
    /// Addresses others can dial this node at, known to the operator (a forwarded port, a public IP);
    /// advertised as they are.
    pub external_addrs: Vec<Multiaddr>,
    /// Relays to hold a reservation on (each ending in `/p2p/<relay peer id>`), so this node is dialable at
    /// `<relay>/p2p-circuit/p2p/<me>` from behind NAT. Kept connected like bootstrap peers.
    pub relays: Vec<Multiaddr>,
    /// Serve as a circuit relay for nodes behind NAT (a public node), with these limits.
    pub relay_server: Option<RelayServerConfig>,
    /// Let AutoNAT count private and documentation ranges (192.168/16, 203.0.113/24, ...) as reachable:
    /// for networks that are all on one LAN, and the NAT test lab.
    pub autonat_private_ips: bool,
    /// Ping interval: keeps NAT entries alive; a connection whose ping fails is closed (and redialled if
    /// it was a bootstrap peer or relay).
    pub ping_interval: Duration,
    /// Longest wait between redials of a bootstrap peer or relay.
    pub redial_max_backoff: Duration,
    /// Discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Run Kademlia (peer discovery through the bootstrap peers).
    pub kademlia: bool,
    /// How often Kademlia bootstraps again once the early bootstraps are over (Kademlia's own default, 5 min).
    /// Cairn's loop does it, not Kademlia's timer: that one warns "Failed to trigger bootstrap: No known peers"
    /// on a lone node (the first of a network, a LAN found by mDNS), where having no peers is normal.
    pub kad_bootstrap_every: Duration,
    /// Blob store directory (`blobs/`, `partial/`, `tmp/` live under it).
    pub store_dir: PathBuf,
    /// Blob store limits.
    pub store: StoreConfig,
    /// Blob transfer limits and timeouts.
    pub transfer: TransferConfig,
    /// Connection limits.
    pub limits: ConnectionLimits,
    /// Request-response timeout.
    pub request_timeout: Duration,
    /// Concurrent request-response streams per connection.
    pub max_concurrent_requests: usize,
    /// Gossipsub heartbeat (mesh maintenance); short in tests, about a second in production.
    pub gossip_heartbeat: Duration,
    /// How long a connection with no active protocol stays open.
    pub idle_connection_timeout: Duration,
    /// Capacity of the event channel; when full, events wait in the event loop (the latest per peer and kind)
    /// and inbound requests get `Busy`.
    pub event_buffer: usize,
    /// Fault injection for the blob server (tests only).
    #[doc(hidden)]
    pub test_hooks: TestHooks,
}

impl Config {
    /// Production-leaning defaults: listen on all interfaces, TCP and QUIC on `port` (0 picks one),
    /// persisted identity in `<store_dir>/identity.key`, mDNS on.
    pub fn new(store_dir: impl Into<PathBuf>, port: u16) -> Self {
        let store_dir = store_dir.into();
        Self {
            identity: Identity::File(store_dir.join("identity.key")),
            listen: vec![
                format!("/ip4/0.0.0.0/tcp/{port}")
                    .parse()
                    .expect("valid multiaddr"),
                format!("/ip4/0.0.0.0/udp/{port}/quic-v1")
                    .parse()
                    .expect("valid multiaddr"),
            ],
            bootstrap: Vec::new(),
            reachability: Reachability::Auto,
            external_addrs: Vec::new(),
            relays: Vec::new(),
            relay_server: None,
            autonat_private_ips: false,
            ping_interval: Duration::from_secs(15),
            redial_max_backoff: Duration::from_secs(30),
            mdns: true,
            kademlia: true,
            kad_bootstrap_every: Duration::from_secs(300),
            store_dir,
            store: StoreConfig::default(),
            transfer: TransferConfig::default(),
            limits: ConnectionLimits::default(),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 64,
            gossip_heartbeat: Duration::from_secs(1),
            idle_connection_timeout: Duration::from_secs(120),
            event_buffer: 1024,
            test_hooks: TestHooks::default(),
        }
    }

    /// For tests and the local devnet: loopback TCP and QUIC on free ports, ephemeral identity, no mDNS,
    /// fast gossip heartbeat.
    pub fn loopback(store_dir: impl Into<PathBuf>) -> Self {
        let mut c = Self::new(store_dir, 0);
        c.identity = Identity::Ephemeral;
        c.listen = vec![
            "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
            "/ip4/127.0.0.1/udp/0/quic-v1"
                .parse()
                .expect("valid multiaddr"),
        ];
        c.mdns = false;
        // Loopback addresses are reachable from the same machine: advertise them.
        c.reachability = Reachability::Public;
        c.gossip_heartbeat = Duration::from_millis(100);
        c
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // First, so that a connection over the limits is refused before any other behaviour sees it; the
    // guard before libp2p's limits, so an idle stranger is evicted before the table counts as full.
    guard: crate::guard::Guard,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: Toggle<autonat::Behaviour>,
    kad: Toggle<crate::kademlia::Kademlia>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    tasks: request_response::Behaviour<FrameCodec>,
    stream: libp2p_stream::Behaviour,
}

/// Something that happened on the network, for the node or client to act on.
#[derive(Debug)]
pub enum Event {
    /// A listen address became active.
    Listening {
        /// Address, with `/p2p/<local peer id>`.
        address: Multiaddr,
    },
    /// First connection to a peer established.
    PeerConnected {
        /// Peer.
        peer: PeerId,
    },
    /// Last connection to a peer closed.
    PeerDisconnected {
        /// Peer.
        peer: PeerId,
    },
    /// A peer subscribed to a topic (publishing there will reach it).
    PeerSubscribed {
        /// Peer.
        peer: PeerId,
        /// Topic.
        topic: Topic,
    },
    /// A valid capacity announcement (already accepted for forwarding).
    Capacity {
        /// Its author (signed).
        from: PeerId,
        /// Content.
        announcement: CapacityAnnouncement,
    },
    /// A valid job announcement (already accepted for forwarding).
    Job {
        /// Its author (signed).
        from: PeerId,
        /// Content.
        announcement: JobAnnouncement,
    },
    /// A gossip message failed validation; it was rejected and not forwarded.
    GossipRejected {
        /// The peer that passed it on.
        via: PeerId,
        /// Its claimed author.
        author: Option<PeerId>,
        /// Topic name.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A decoded request; answer it with [`Responder::respond`] (dropping the responder answers `Internal`).
    InboundRequest {
        /// Sender.
        peer: PeerId,
        /// Request.
        request: Request,
        /// Reply handle.
        responder: Responder,
    },
    /// A peer sent something malformed or oversized; it was refused (for the caller's ledger).
    ProtocolViolation {
        /// Peer.
        peer: PeerId,
        /// What happened.
        reason: String,
    },
}

/// The reply handle of an inbound request.
#[derive(Debug)]
pub struct Responder {
    peer: PeerId,
    tx: oneshot::Sender<Response>,
}

impl Responder {
    /// The peer that asked.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Sends the response (encoded and size-checked by the event loop; an over-limit response is
    /// replaced by an `Internal` error).
    pub fn respond(self, response: Response) {
        let _ = self.tx.send(response);
    }
}

#[derive(Debug)]
enum Command {
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        peer: PeerId,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Request {
        peer: PeerId,
        frame: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    Provide {
        id: BlobId,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    FindProviders {
        id: BlobId,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
    Advertised {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Reachability {
        reply: oneshot::Sender<ReachabilityStatus>,
    },
    Shutdown,
}

/// Builds the network.
#[derive(Debug)]
pub struct Network;

impl Network {
    // The shape of rust-libp2p's file-sharing example: a constructor returning the three parts.
    #[allow(clippy::new_ret_no_self)]
    /// Builds the swarm, starts listening (waits until every listen address is bound), and dials the
    /// bootstrap peers. Spawn the returned [`EventLoop`]'s `run()`; use the [`Client`] for everything else.
    pub async fn new(
        config: Config,
    ) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), NetError> {
        let keypair = identity::load(&config.identity)?;
        let local_peer_id = keypair.public().to_peer_id();
        let signing_key = Arc::new(keypair.clone());
        let store = Arc::new(BlobStore::open(&config.store_dir, config.store)?);

        let cfg = config.clone();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(move |key, relay_client| build_behaviour(key, relay_client, &cfg))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
            .build();

        for topic in [Topic::Capacity, Topic::Jobs] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&topic.ident())
                .map_err(|e| NetError::Setup(format!("subscribe {}: {e}", topic.name())))?;
        }

        let (event_tx, event_rx) = mpsc::channel(config.event_buffer.max(1));
        let mut listen_addrs = Vec::new();
        let mut pending = HashMap::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            pending.insert(id, addr.clone());
        }
        let wait = async {
            while !pending.is_empty() {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr {
                        listener_id,
                        address,
                    } => {
                        pending.remove(&listener_id);
                        listen_addrs.push(address);
                    }
                    SwarmEvent::ListenerClosed {
                        listener_id,
                        reason,
                        ..
                    } => {
                        if let Some(addr) = pending.remove(&listener_id) {
                            return Err(NetError::Listen {
                                addr,
                                reason: format!("{reason:?}"),
                            });
                        }
                    }
                    SwarmEvent::ListenerError { listener_id, error } => {
                        if let Some(addr) = pending.remove(&listener_id) {
                            return Err(NetError::Listen {
                                addr,
                                reason: error.to_string(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(10), wait).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(NetError::Listen {
                    addr: pending
                        .values()
                        .next()
                        .cloned()
                        .unwrap_or(Multiaddr::empty()),
                    reason: "no address bound within 10 s".into(),
                })
            }
        }
        for address in &listen_addrs {
            tracing::info!(target: "cairn_net", %address, peer = %local_peer_id, "listening");
            let _ = event_tx.try_send(Event::Listening {
                address: with_peer(address.clone(), local_peer_id),
            });
        }

        // What this node advertises: the operator's external addresses, and its listen addresses where it
        // is said to be public. Behind NAT, AutoNAT and relay reservations add the rest as they are confirmed.
        for addr in &config.external_addrs {
            swarm.add_external_address(addr.clone());
        }
        let explicit_loopback = config.listen.iter().any(reach::is_loopback);
        let direct_known =
            |swarm: &Swarm<Behaviour>| swarm.external_addresses().any(|a| !addr_is_relayed(a));
        for addr in &listen_addrs {
            if advertise_listen_addr(config.reachability, explicit_loopback, addr) {
                swarm.add_external_address(addr.clone());
            }
        }

        if config.reachability == Reachability::Auto && direct_known(&swarm) {
            if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                kad.set_mode(Some(kad::Mode::Server));
            }
        }
        let mut redialer = Redialer::new(
            Backoff {
                first: Duration::from_secs(1),
                max: config.redial_max_backoff.max(Duration::from_secs(1)),
            },
            u64::from_le_bytes(
                local_peer_id.to_bytes()[2..10]
                    .try_into()
                    .expect("a peer id has more than 10 bytes"),
            ),
        );
        let mut relays = HashMap::new();
        for addr in &config.relays {
            let peer = peer_of(addr).ok_or_else(|| NetError::AddressWithoutPeerId(addr.clone()))?;
            relays.insert(
                peer,
                RelaySlot {
                    addr: addr.clone(),
                    listener: None,
                    reserved: false,
                    reserved_at: None,
                },
            );
        }
        let mut bootstrapped = false;
        let mut nat_jury = crate::reach::NatJury::default();
        for addr in config.bootstrap.iter().chain(&config.relays) {
            let peer = peer_of(addr).ok_or_else(|| NetError::AddressWithoutPeerId(addr.clone()))?;
            if redialer.is_kept(&peer) {
                continue;
            }
            redialer.keep(peer, addr.clone());
            if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&peer, addr.clone());
                bootstrapped = true;
            }
            if let Some(autonat) = swarm.behaviour_mut().autonat.as_mut() {
                // Bootstrap peers and relays are the natural servers for this node's dial-back probes, and
                // the ones whose word counts most (`reach::NatJury`).
                autonat.add_server(peer, Some(addr.clone()));
                nat_jury.trust(peer);
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(target: "cairn_net", %addr, error = %e, "could not dial bootstrap peer");
                redialer.lost(&peer, std::time::Instant::now());
            }
        }
        if bootstrapped {
            if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                let _ = kad.bootstrap();
            }
        }

        let control = swarm.behaviour().stream.new_control();
        let incoming = swarm
            .behaviour()
            .stream
            .new_control()
            .accept(transfer::BLOB_PROTOCOL)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let fetcher = Arc::new(Fetcher::new(
            control,
            store.clone(),
            config.transfer.clone(),
            config.test_hooks.clone(),
        ));

        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let client = Client {
            sender: cmd_tx,
            local_peer_id,
            signing_key,
            store: store.clone(),
            fetcher,
        };
        let event_loop = EventLoop {
            swarm,
            commands: cmd_rx,
            events: event_tx,
            listen_addrs,
            pending_dials: HashMap::new(),
            pending_requests: HashMap::new(),
            pending_responses: FuturesUnordered::new(),
            pending_providers: HashMap::new(),
            serve: Some((incoming, store, config.transfer, config.test_hooks)),
            dropped_events: 0,
            outbox: Outbox::new(OUTBOX_CAP),
            outbox_peak: 0,
            outbox_warned: None,
            reachability: config.reachability,
            explicit_loopback,
            operator_addrs: config.external_addrs.clone(),
            redialer,
            relays,
            relayed: HashMap::new(),
            is_relay_server: config.relay_server.is_some(),
            relay_grants: config
                .relay_server
                .map(|r| (r.reservation_duration, r.max_circuit_duration)),
            connmgr: crate::connmgr::ConnManager::new(config.limits.trim),
            next_trim: std::time::Instant::now() + TRIM_EVERY,
            inbound: HashMap::new(),
            closing: Vec::new(),
            hosts: Default::default(),
            nat_jury,
            private_pending: false,
            nat: if config.reachability == Reachability::Private {
                "off".into()
            } else {
                "unknown".into()
            },
            punches: (0, 0),
            early_bootstrap: bootstrapped.then(|| {
                (
                    std::time::Instant::now() + EARLY_BOOTSTRAPS.0,
                    EARLY_BOOTSTRAPS.0,
                )
            }),
            periodic_bootstrap: (
                std::time::Instant::now() + jittered(config.kad_bootstrap_every),
                config.kad_bootstrap_every,
            ),
        };
        Ok((client, event_rx, event_loop))
    }
}

fn build_behaviour(
    key: &libp2p::identity::Keypair,
    relay_client: relay::client::Behaviour,
    config: &Config,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let l = config.limits;
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(l.max_established))
            .with_max_established_per_peer(Some(l.max_per_peer))
            .with_max_pending_incoming(Some(l.max_pending_incoming))
            .with_max_pending_outgoing(Some(l.max_pending_outgoing)),
    );
    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
            .with_agent_version(format!("cairn-net/{}", env!("CARGO_PKG_VERSION")))
            // Behind NAT, listen addresses are private: tell peers only the confirmed external ones.
            .with_hide_listen_addrs(config.reachability != Reachability::Public),
    );
    let kad = config.kademlia.then(|| {
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        // Periodic bootstraps come from the event loop (see `Config::kad_bootstrap_every`).
        kad_config.set_periodic_bootstrap_interval(None);
        // Without bootstraps from an empty routing table (see `kademlia.rs`).
        let mut k = crate::kademlia::Kademlia::new(kad::Behaviour::with_config(
            peer_id,
            kad::store::MemoryStore::new(peer_id),
            kad_config,
        ));
        // Public: serve the DHT at once. Otherwise kad serves only once a direct external address is
        // confirmed: a node behind NAT does not enter others' routing tables, where it could be reached only
        // through a relay (DHT lookups would then open relayed connections to every node they touch).
        k.set_mode(Some(match config.reachability {
            Reachability::Public => kad::Mode::Server,
            // Until a direct address is confirmed (see `EventLoop::update_kad_mode`).
            Reachability::Auto | Reachability::Private => kad::Mode::Client,
        }));
        k
    });
    let mdns = if config.mdns {
        Some(mdns::tokio::Behaviour::new(
            mdns::Config::default(),
            peer_id,
        )?)
    } else {
        None
    };
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip_heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_TRANSMIT)
        .build()?;
    let gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gossip_config,
    )?;
    let tasks = request_response::Behaviour::with_codec(
        FrameCodec {
            max_request: limits::MAX_REQUEST_FRAME,
            max_response: limits::MAX_RESPONSE_FRAME,
        },
        [(TASK_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(config.max_concurrent_requests),
    );
    let autonat = (config.reachability != Reachability::Private).then(|| {
        autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                boot_delay: Duration::from_secs(2),
                retry_interval: Duration::from_secs(20),
                refresh_interval: Duration::from_secs(300),
                only_global_ips: !config.autonat_private_ips,
                ..autonat::Config::default()
            },
        )
    });
    Ok(Behaviour {
        guard: crate::guard::Guard::new(l.inbound, l.max_established),
        limits,
        identify,
        ping: ping::Behaviour::new(
            ping::Config::new()
                .with_interval(config.ping_interval)
                .with_timeout((config.ping_interval * 2 / 3).max(Duration::from_secs(5))),
        ),
        relay_client,
        relay: config
            .relay_server
            .map(|r| relay::Behaviour::new(peer_id, r.to_libp2p()))
            .into(),
        dcutr: dcutr::Behaviour::new(peer_id),
        autonat: autonat.into(),
        kad: kad.into(),
        mdns: mdns.into(),
        gossipsub,
        tasks,
        stream: libp2p_stream::Behaviour::new(),
    })
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn with_peer(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if peer_of(&addr).is_some() {
        addr
    } else {
        addr.with(Protocol::P2p(peer))
    }
}

/// Cloneable handle to the network. Every method talks to the [`EventLoop`] over a channel, except blob
/// transfers, which run on their own streams.
#[derive(Clone, Debug)]
pub struct Client {
    sender: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    /// The node's identity key, for signing what it vouches for (results).
    signing_key: Arc<libp2p::identity::Keypair>,
    store: Arc<BlobStore>,
    fetcher: Arc<Fetcher>,
}

impl Client {
    /// Signs `msg` with this node's identity key (ed25519); anyone can check it against the node's peer id
    /// with [`crate::protocol::verify_signature`].
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.signing_key
            .sign(msg)
            .expect("ed25519 signing does not fail")
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.sender
            .send(make(tx))
            .await
            .map_err(|_| NetError::EventLoopGone)?;
        rx.await.map_err(|_| NetError::EventLoopGone)
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Bound listen addresses, each ending in `/p2p/<local peer id>` (usable as bootstrap addresses).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Connects to `addr` (which must end in `/p2p/<peer id>`) and waits until connected.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let peer = peer_of(&addr).ok_or_else(|| NetError::AddressWithoutPeerId(addr.clone()))?;
        self.call(|reply| Command::Dial { peer, addr, reply })
            .await??;
        Ok(peer)
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Closes every connection to `peer` (it may dial again, or be dialled again later).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::Disconnect { peer, reply }).await
    }

    /// Publishes this node's capacity on [`Topic::Capacity`], with the addresses it advertises in place of
    /// `announcement.addrs` (so a client that hears of it through other peers can dial it).
    pub async fn publish_capacity(
        &self,
        announcement: &CapacityAnnouncement,
    ) -> Result<(), NetError> {
        let mut announcement = announcement.clone();
        announcement.addrs = self
            .advertised_addrs()
            .await?
            .into_iter()
            .map(|a| a.to_string())
            .filter(|a| a.len() <= protocol::limits::MAX_ADDR_LEN)
            .take(protocol::limits::MAX_ADDRS)
            .collect();
        self.publish_raw(Topic::Capacity, protocol::encode(&announcement)?)
            .await
    }

    /// Addresses this node advertises: the ones others can dial (confirmed external addresses and relay
    /// circuits), each ending in `/p2p/<local peer id>`. Empty for a node behind NAT with no relay.
    pub async fn advertised_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::Advertised { reply }).await
    }

    /// Where this node stands: what it advertises, its relay reservations, AutoNAT's verdict, hole punches.
    pub async fn reachability(&self) -> Result<ReachabilityStatus, NetError> {
        self.call(|reply| Command::Reachability { reply }).await
    }

    /// Publishes a job on [`Topic::Jobs`].
    pub async fn publish_job(&self, announcement: &JobAnnouncement) -> Result<(), NetError> {
        self.publish_raw(Topic::Jobs, protocol::encode(announcement)?)
            .await
    }

    /// Publishes raw bytes, unchecked (tests of hostile peers).
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetError> {
        self.call(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Sends a request and waits for the response. An [`Response::Error`] reply becomes
    /// [`NetError::Remote`].
    pub async fn request(&self, peer: PeerId, request: &Request) -> Result<Response, NetError> {
        let frame = protocol::encode(request)?;
        let bytes = self.request_raw(peer, frame).await?;
        match protocol::decode::<Response>(&bytes) {
            Ok(Response::Error(reply)) => Err(NetError::Remote {
                peer,
                reply: Box::new(reply),
            }),
            Ok(r) => Ok(r),
            Err(source) => Err(NetError::BadResponse { peer, source }),
        }
    }

    /// Sends raw request bytes, unchecked, and returns the raw response (tests of hostile peers and of
    /// version negotiation).
    #[doc(hidden)]
    pub async fn request_raw(&self, peer: PeerId, frame: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.call(|reply| Command::Request { peer, frame, reply })
            .await?
    }

    /// The local blob store (blobs in it are served to any peer that asks).
    pub fn store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// Stores `data` locally so peers can fetch it; returns its id. With Kademlia on, also announces this
    /// node as a provider (best effort).
    pub async fn publish_blob(
        &self,
        data: Vec<u8>,
        retention: Retention,
    ) -> Result<BlobId, NetError> {
        let store = self.store.clone();
        let id = tokio::task::spawn_blocking(move || store.put(&data, retention))
            .await
            .map_err(|e| NetError::Internal(e.to_string()))??;
        match self.provide_blob(id).await {
            Ok(()) | Err(NetError::KademliaDisabled) => {}
            Err(e) => {
                tracing::warn!(target: "cairn_net", blob = %id.short(), error = %e, "could not announce blob")
            }
        }
        Ok(id)
    }

    /// Fetches a blob into the local store, trying `providers` in order (resuming any partial download,
    /// verifying every chunk and the whole blob). Returns at once if the blob is already stored.
    pub async fn fetch_blob(
        &self,
        providers: &[PeerId],
        id: BlobId,
        retention: Retention,
    ) -> Result<FetchedBlob, NetError> {
        self.fetcher.fetch(providers, id, retention, None).await
    }

    /// [`Client::fetch_blob`] of a blob announced with its size (a [`BlobRef`]): a provider whose blob has
    /// another size is refused before anything is downloaded, so a size checked against a limit beforehand
    /// bounds what the fetch costs.
    pub async fn fetch_blob_ref(
        &self,
        providers: &[PeerId],
        blob: crate::BlobRef,
        retention: Retention,
    ) -> Result<FetchedBlob, NetError> {
        self.fetcher
            .fetch(providers, blob.id, retention, Some(blob.size))
            .await
    }

    /// Announces in the DHT that this node holds blob `id` (it must be in the local store). Requires
    /// Kademlia; the announcement spreads in the background.
    pub async fn provide_blob(&self, id: BlobId) -> Result<(), NetError> {
        if !self.store.contains(&id) {
            return Err(NetError::Store(crate::StoreError::NotFound(id)));
        }
        self.call(|reply| Command::Provide { id, reply }).await?
    }

    /// Asks the DHT which peers hold blob `id` (the first answer found, possibly empty). Requires Kademlia.
    pub async fn find_providers(&self, id: BlobId) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::FindProviders { id, reply })
            .await?
    }

    /// Stops the event loop (connections close; other clones of this handle then get
    /// [`NetError::EventLoopGone`]).
    pub async fn shutdown(&self) {
        let _ = self.sender.send(Command::Shutdown).await;
    }
}

type RequestReply = oneshot::Sender<Result<Vec<u8>, NetError>>;
type ProvidersReply = oneshot::Sender<Result<Vec<PeerId>, NetError>>;
type PendingResponse = BoxFuture<'static, (PeerId, Option<Response>, ResponseChannel<Frame>)>;

/// Owns the swarm. Run it with `tokio::spawn(event_loop.run())`; it ends when every [`Client`] is dropped
/// or [`Client::shutdown`] is called.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    listen_addrs: Vec<Multiaddr>,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
    pending_requests: HashMap<OutboundRequestId, (PeerId, RequestReply)>,
    pending_responses: FuturesUnordered<PendingResponse>,
    pending_providers: HashMap<kad::QueryId, ProvidersReply>,
    serve: Option<(
        libp2p_stream::IncomingStreams,
        Arc<BlobStore>,
        TransferConfig,
        TestHooks,
    )>,
    /// Events lost: the node stopped taking them, or more distinct ones waited than `OUTBOX_CAP`.
    dropped_events: u64,
    /// Events waiting for room in `events` (the node is behind), the latest per peer and kind.
    outbox: Outbox<EventKey, Event>,
    outbox_peak: usize,
    /// When the node was last warned that events wait.
    outbox_warned: Option<std::time::Instant>,
    reachability: Reachability,
    /// The node was told to listen on a loopback address (see [`advertise_listen_addr`]).
    explicit_loopback: bool,
    /// External addresses the operator gave (never withdrawn on an AutoNAT verdict).
    operator_addrs: Vec<Multiaddr>,
    /// Bootstrap peers and relays: redialled whenever their connection drops.
    redialer: Redialer,
    relays: HashMap<PeerId, RelaySlot>,
    /// Open relayed connections per peer (closed a little after a hole punch succeeds).
    relayed: HashMap<PeerId, Vec<ConnectionId>>,
    /// This node relays for others.
    is_relay_server: bool,
    /// A relay's reservation and circuit durations: how long their peers' connections are protected.
    relay_grants: Option<(Duration, Duration)>,
    /// Idle connections to close above the high-water mark (`connmgr.rs`).
    connmgr: crate::connmgr::ConnManager,
    next_trim: std::time::Instant,
    /// A relay's inbound direct connections per peer, with their remote addresses (see `replace_moved`).
    inbound: HashMap<PeerId, Vec<(ConnectionId, Multiaddr)>>,
    /// Relayed connections to close, and when.
    closing: Vec<(std::time::Instant, ConnectionId)>,
    /// Which identity lives at which address (what gossip may point this node at).
    hosts: crate::hosts::HostBook,
    /// AutoNAT's dial-back results by server (`reach::NatJury`).
    nat_jury: crate::reach::NatJury,
    /// AutoNAT said private but too few servers agreed yet.
    private_pending: bool,
    /// AutoNAT's verdict: `unknown`, `public`, `private` or `off`.
    nat: String,
    /// Hole punches (succeeded, failed).
    punches: (u64, u64),
    /// The next early Kademlia bootstrap, and the wait after it (see [`EARLY_BOOTSTRAPS`]).
    early_bootstrap: Option<(std::time::Instant, Duration)>,
    /// The next periodic Kademlia bootstrap, and the period (see [`Config::kad_bootstrap_every`]).
    periodic_bootstrap: (std::time::Instant, Duration),
}

/// Distinct events (a kind and a peer, see [`EventKey`]) that may wait for a node that is behind: a few per
/// peer for thousands of peers. Past it a new one is dropped and counted (a flood of made-up identities).
const OUTBOX_CAP: usize = 65_536;

/// What makes two waiting events one: the later replaces the earlier (see [`crate::outbox`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum EventKey {
    Listening(Multiaddr),
    /// Connected or disconnected: the latest is what holds.
    Connection(PeerId),
    Subscribed(PeerId, Topic),
    Capacity(PeerId),
    Job(PeerId, u64),
    /// A prover's heartbeat: the latest says which tasks it holds (the one it replaces is answered
    /// `Internal`, which a heartbeat's sender ignores). Missing them all while behind, the node would take
    /// an honest prover for silent.
    Heartbeat(PeerId),
    /// Refusals for the ledger: the latest per peer stands for the others while the node is behind.
    Rejected(PeerId),
    Violation(PeerId),
}

impl EventKey {
    /// `None` for an inbound request other than a heartbeat (it never waits: answered `Busy` when there is no
    /// room, which its sender retries).
    fn of(event: &Event) -> Option<Self> {
        Some(match event {
            Event::Listening { address } => Self::Listening(address.clone()),
            Event::PeerConnected { peer } | Event::PeerDisconnected { peer } => {
                Self::Connection(*peer)
            }
            Event::PeerSubscribed { peer, topic } => Self::Subscribed(*peer, *topic),
            Event::Capacity { from, .. } => Self::Capacity(*from),
            Event::Job { from, announcement } => Self::Job(*from, announcement.job),
            Event::GossipRejected { via, .. } => Self::Rejected(*via),
            Event::ProtocolViolation { peer, .. } => Self::Violation(*peer),
            Event::InboundRequest {
                peer,
                request: Request::Heartbeat(_),
                ..
            } => Self::Heartbeat(*peer),
            Event::InboundRequest { .. } => return None,
        })
    }
}

/// A node bootstraps Kademlia when it starts, through its bootstrap peers. If they did not know the others yet
/// (a network starting together), it would meet them only at the periodic bootstrap, minutes later. So it
/// bootstraps again 2 s after it starts and then after gaps of 4, 8, 16 and 32 s (about a minute in all), while
/// the network around it forms.
const EARLY_BOOTSTRAPS: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(32));

/// `every`, give or take a quarter, at random: nodes started together (a devnet, the lab) should not refresh
/// their routing tables in the same minute (each refresh contacts dozens of peers, over new connections
/// where they were closed).
fn jittered(every: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // Random keys per process, a new pair per call: enough for spreading timers.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
    every.mul_f64(0.75 + 0.5 * unit)
}

/// Early bootstraps stop once the routing table holds this many peers (Kademlia's bucket size, which is also
/// where libp2p's own bootstrap-on-new-peer stops).
const EARLY_BOOTSTRAP_ENOUGH: usize = 20;

/// How often the event loop looks for idle connections to trim (`connmgr.rs`).
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// A relay this node reserves a slot on.
#[derive(Debug)]
struct RelaySlot {
    addr: Multiaddr,
    listener: Option<ListenerId>,
    reserved: bool,
    reserved_at: Option<u64>,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long a relayed connection stays open after a hole punch to the same peer succeeded: requests and
/// blob streams already on it finish, new ones go direct.
const CLOSE_RELAYED_AFTER_PUNCH: Duration = Duration::from_secs(3);

/// Whether a listen address is advertised as soon as it is bound: always where the node is public; in
/// `Auto` mode a non-private IP (a host with a public address on its interface is not behind NAT), or a
/// loopback address the node was told to listen on (a devnet on one machine), the rest waiting for an
/// AutoNAT dial-back; never in `Private` mode.
fn advertise_listen_addr(mode: Reachability, explicit_loopback: bool, addr: &Multiaddr) -> bool {
    let concrete = !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    });
    concrete
        && !addr_is_relayed(addr)
        && match mode {
            Reachability::Public => true,
            Reachability::Auto => {
                !reach::is_private_ip(addr) || (explicit_loopback && reach::is_loopback(addr))
            }
            Reachability::Private => false,
        }
}

/// Room for one event in the node's channel, asked for only while events wait (`wanted`; the sender is not
/// even cloned otherwise: the select loop builds this future on every turn).
fn reserve(
    events: &mpsc::Sender<Event>,
    wanted: bool,
) -> impl std::future::Future<Output = Result<mpsc::OwnedPermit<Event>, mpsc::error::SendError<()>>>
{
    let sender = wanted.then(|| events.clone());
    async move {
        match sender {
            Some(s) => s.reserve_owned().await,
            None => std::future::pending().await,
        }
    }
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("local_peer_id", self.swarm.local_peer_id())
            .field("listen_addrs", &self.listen_addrs)
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    /// Drives the swarm until shutdown.
    pub async fn run(self) {
        let span =
            tracing::info_span!(target: "cairn_net", "net", peer = %self.swarm.local_peer_id());
        self.run_inner().instrument(span).await;
    }

    async fn run_inner(mut self) {
        let server = self.serve.take().map(|(incoming, store, cfg, hooks)| {
            tokio::spawn(transfer::serve_loop(incoming, store, cfg, hooks).in_current_span())
        });
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
                permit = reserve(&self.events, !self.outbox.is_empty()), if !self.outbox.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(event) = self.outbox.pop() {
                                permit.send(event);
                            }
                        }
                        Err(_) => {
                            // The node stopped taking events: nothing will take these.
                            while self.outbox.pop().is_some() {
                                self.dropped_events += 1;
                            }
                        }
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                Some((peer, response, channel)) = self.pending_responses.next(), if !self.pending_responses.is_empty() => {
                    self.send_response(peer, response, channel);
                }
            }
        }
        if let Some(server) = server {
            server.abort();
        }
        tracing::info!(target: "cairn_net", dropped_events = self.dropped_events, "network event loop stopped");
    }

    /// Hands `event` to the node, or, when the node is behind (the channel full, or events already waiting),
    /// keeps it waiting in the outbox, the latest per peer and kind: never dropped while the node takes
    /// events at all (the grand test's overloaded client once dropped 2,600 and then took honest provers
    /// whose announcements it never saw for silent). An inbound request other than a heartbeat does not wait:
    /// with no room it is answered `Busy`, which the asker retries (a dropped responder would answer
    /// `Internal`, which a prover takes as final).
    fn emit(&mut self, event: Event) {
        let event = if self.outbox.is_empty() || matches!(event, Event::InboundRequest { .. }) {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.dropped_events += 1;
                    return;
                }
                Err(mpsc::error::TrySendError::Full(event)) => event,
            }
        } else {
            event
        };
        let Some(key) = EventKey::of(&event) else {
            if let Event::InboundRequest { responder, .. } = event {
                tracing::warn!(target: "cairn_net", peer = %responder.peer(), "event channel full; request answered Busy");
                responder.respond(Response::Error(ErrorReply::new(
                    ErrorCode::Busy,
                    "the node is overloaded; retry later",
                )));
            }
            return;
        };
        if let Pushed::Full(_) = self.outbox.push(key, event) {
            self.dropped_events += 1;
        }
        self.outbox_peak = self.outbox_peak.max(self.outbox.len());
        let now = std::time::Instant::now();
        if self
            .outbox_warned
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(10))
        {
            self.outbox_warned = Some(now);
            tracing::warn!(
                target: "cairn_net",
                waiting = self.outbox.len(),
                dropped = self.dropped_events,
                "the node is behind on network events; they wait (the latest per peer and kind)"
            );
        }
    }

    fn send_response(
        &mut self,
        peer: PeerId,
        response: Option<Response>,
        channel: ResponseChannel<Frame>,
    ) {
        let response = response.unwrap_or_else(|| {
            Response::Error(ErrorReply::new(
                ErrorCode::Internal,
                "the node dropped the request without answering",
            ))
        });
        let bytes = protocol::encode(&response).unwrap_or_else(|e| {
            tracing::error!(target: "cairn_net", %peer, error = %e, "response over its limit; answering Internal");
            protocol::encode(&Response::Error(ErrorReply::new(ErrorCode::Internal, e.to_string())))
                .unwrap_or_default()
        });
        if self
            .swarm
            .behaviour_mut()
            .tasks
            .send_response(channel, Frame::Data(bytes))
            .is_err()
        {
            tracing::debug!(target: "cairn_net", %peer, "response not sent: the request stream is gone");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs { reply } => {
                let me = *self.swarm.local_peer_id();
                let addrs = self
                    .swarm
                    .listeners()
                    .cloned()
                    .chain(self.listen_addrs.iter().cloned())
                    .filter(|a| {
                        !a.iter()
                            .any(|p| matches!(p, Protocol::Tcp(0) | Protocol::Udp(0)))
                    })
                    .map(|a| with_peer(a, me))
                    .fold(Vec::new(), |mut v, a| {
                        if !v.contains(&a) {
                            v.push(a);
                        }
                        v
                    });
                let _ = reply.send(addrs);
            }
            Command::Dial { peer, addr, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.add_address(&peer, addr.clone());
                }
                match self.swarm.dial(addr) {
                    Ok(()) => self.pending_dials.entry(peer).or_default().push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            peer,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Disconnect { peer, reply } => {
                let _ = self.swarm.disconnect_peer_id(peer);
                let _ = reply.send(());
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Publish { topic, data, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic.ident(), data)
                    .map(|_| ())
                    .map_err(|e| match e {
                        gossipsub::PublishError::NoPeersSubscribedToTopic => {
                            NetError::NoGossipPeers {
                                topic: topic.name().into(),
                            }
                        }
                        other => NetError::Publish {
                            topic: topic.name().into(),
                            reason: other.to_string(),
                        },
                    });
                let _ = reply.send(result);
            }
            Command::Request { peer, frame, reply } => {
                self.connmgr.active(peer, std::time::Instant::now());
                let id = self
                    .swarm
                    .behaviour_mut()
                    .tasks
                    .send_request(&peer, Frame::Data(frame));
                self.pending_requests.insert(id, (peer, reply));
            }
            Command::Provide { id, reply } => {
                let result = match self.swarm.behaviour_mut().kad.as_mut() {
                    None => Err(NetError::KademliaDisabled),
                    Some(kad) => kad
                        .start_providing(kad::RecordKey::new(&id.0))
                        .map(|_| ())
                        .map_err(|e| NetError::Internal(format!("provider record: {e}"))),
                };
                let _ = reply.send(result);
            }
            Command::FindProviders { id, reply } => match self.swarm.behaviour_mut().kad.as_mut() {
                None => {
                    let _ = reply.send(Err(NetError::KademliaDisabled));
                }
                Some(kad) => {
                    let query = kad.get_providers(kad::RecordKey::new(&id.0));
                    self.pending_providers.insert(query, reply);
                }
            },
            Command::Advertised { reply } => {
                let _ = reply.send(self.advertised());
            }
            Command::Reachability { reply } => {
                let relayed_connections = self.relayed.values().map(Vec::len).sum();
                let _ = reply.send(ReachabilityStatus {
                    mode: self.reachability.to_string(),
                    nat: self.nat.clone(),
                    advertised: self.advertised().iter().map(|a| a.to_string()).collect(),
                    relays: self
                        .relays
                        .iter()
                        .map(|(peer, slot)| RelayState {
                            peer: peer.to_string(),
                            addr: slot.addr.to_string(),
                            reserved: slot.reserved,
                            reserved_at: slot.reserved_at,
                        })
                        .collect(),
                    connected_peers: self.swarm.connected_peers().count(),
                    relayed_connections,
                    hole_punches: self.punches,
                    gossip_addrs_ignored: self.hosts.ignored,
                    gossip_addr_claims: self.hosts.claims(),
                    inbound_refused: self.swarm.behaviour().guard.refused,
                    strangers_evicted: self.swarm.behaviour().guard.evicted,
                    connections_trimmed: self.connmgr.trimmed,
                    events_waiting: self.outbox.len(),
                    events_waiting_peak: self.outbox_peak,
                    events_dropped: self.dropped_events,
                });
            }
            Command::Shutdown => {}
        }
    }

    /// The addresses this node advertises (its confirmed external addresses), with its peer id.
    fn advertised(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        let mut out: Vec<Multiaddr> = Vec::new();
        for a in self.swarm.external_addresses() {
            let a = with_peer(a.clone(), me);
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// Timers: redials that are due, relayed connections to close after a hole punch.
    fn on_tick(&mut self) {
        let now = std::time::Instant::now();
        if let Some((at, wait)) = self.early_bootstrap.filter(|(at, _)| *at <= now) {
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                // Only while the routing table is still short of one full bucket: each bootstrap refreshes
                // every bucket, contacting dozens of peers (over new connections where the connection
                // manager closed them); once a node knows a bucket's worth, the periodic refresh is enough.
                let known: usize = kad.kbuckets().map(|b| b.num_entries()).sum();
                if known < EARLY_BOOTSTRAP_ENOUGH {
                    let _ = kad.bootstrap();
                }
            }
            self.early_bootstrap =
                (wait < EARLY_BOOTSTRAPS.1).then(|| (at.max(now) + wait * 2, wait * 2));
        }
        let (at, every) = self.periodic_bootstrap;
        if at <= now {
            self.periodic_bootstrap = (now + jittered(every), every);
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                // A lone node knows no peers yet: nothing to bootstrap from, and nothing wrong.
                if let Err(e) = kad.bootstrap() {
                    tracing::debug!(target: "cairn_net", error = %e, "no Kademlia bootstrap");
                }
            }
        }
        let well_connected =
            self.swarm.connected_peers().count() >= self.trim_limits().low_water as usize;
        for (peer, addr) in self.redialer.due(now) {
            if self.swarm.is_connected(&peer) {
                self.redialer.connected(&peer);
                continue;
            }
            if well_connected && !self.relays.contains_key(&peer) {
                // A node with its fill of peers does not need its bootstrap peer's connection (it may be the
                // bootstrap peer's connection manager that closed it: redialling at once would only be
                // closed again). Checked again at the next backoff; relays are always redialled.
                self.redialer.lost(&peer, now);
                continue;
            }
            tracing::info!(target: "cairn_net", %peer, %addr, "redialling");
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(target: "cairn_net", %peer, %addr, error = %e, "redial refused");
                self.redialer.lost(&peer, now);
            }
        }
        if self.next_trim <= now {
            self.next_trim = now + TRIM_EVERY;
            self.trim(now);
        }
        let (due, later): (Vec<_>, Vec<_>) = self.closing.drain(..).partition(|(at, _)| *at <= now);
        self.closing = later;
        for (_, connection) in due {
            tracing::debug!(target: "cairn_net", ?connection, "closing the relayed connection: a direct one exists");
            self.swarm.close_connection(connection);
        }
    }

    fn trim_limits(&self) -> crate::connmgr::TrimLimits {
        self.connmgr.limits()
    }

    /// Closes idle, unprotected connections above the high-water mark (`connmgr.rs`).
    fn trim(&mut self, now: std::time::Instant) {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let mesh: std::collections::HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        let redialer = &self.redialer;
        let trim = self
            .connmgr
            .to_trim(now, &connected, |p| redialer.is_kept(p), &mesh);
        if trim.is_empty() {
            return;
        }
        tracing::debug!(target: "cairn_net", connected = connected.len(), closing = trim.len(), "trimming idle connections");
        self.connmgr.trimmed += trim.len() as u64;
        for peer in trim {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Remembers where an announcing peer says it can be dialled. Only addresses of the author itself (the
    /// announcement is signed by it), so nobody can point others at a third party.
    fn learn_addrs(&mut self, from: PeerId, addrs: &[String]) {
        if from == *self.swarm.local_peer_id() {
            return;
        }
        for addr in addrs_of(from, addrs) {
            // Gossip cannot point this node at a host that is not the one it names (`hosts.rs`).
            match self.hosts.admit(from, &addr) {
                crate::hosts::Admit::Yes => self.swarm.add_peer_address(from, addr),
                why => {
                    tracing::debug!(target: "cairn_net", peer = %from, %addr, ?why, "announced address ignored")
                }
            }
        }
    }

    /// Nobody could dial back: withdraw the direct addresses (relay circuits and the operator's stay).
    fn withdraw_direct(&mut self) {
        self.private_pending = false;
        let withdraw: Vec<Multiaddr> = self
            .swarm
            .external_addresses()
            .filter(|a| !addr_is_relayed(a) && !self.operator_addrs.contains(a))
            .cloned()
            .collect();
        for a in withdraw {
            self.swarm.remove_external_address(&a);
        }
        self.update_kad_mode();
    }

    /// In `Auto` mode, Kademlia serves while the node has a direct (not relayed) confirmed address.
    fn update_kad_mode(&mut self) {
        if self.reachability != Reachability::Auto {
            return;
        }
        let direct = self.swarm.external_addresses().any(|a| !addr_is_relayed(a));
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            kad.set_mode(Some(if direct {
                kad::Mode::Server
            } else {
                kad::Mode::Client
            }));
        }
    }

    /// A relay's view of a node that moved: a new connection from it arrives from another IP while the old
    /// one, from an address the node no longer has, looks open until its pings time out. Circuits to the node
    /// could be routed over the dead one, so it is closed now.
    fn replace_moved(&mut self, peer: PeerId, connection: ConnectionId, remote: Multiaddr) {
        let ip = |a: &Multiaddr| {
            a.iter().find_map(|p| match p {
                Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            })
        };
        let new_ip = ip(&remote);
        let conns = self.inbound.entry(peer).or_default();
        for (old, addr) in conns.iter() {
            if ip(addr) != new_ip {
                tracing::info!(target: "cairn_net", %peer, old = %addr, new = %remote, "node moved: closing its old connection");
                self.swarm.close_connection(*old);
            }
        }
        conns.retain(|(_, addr)| ip(addr) == new_ip);
        conns.push((connection, remote));
    }

    /// Reserves a slot on `relay` (listening on its circuit address) unless one is held or pending.
    fn reserve_on(&mut self, relay: PeerId) {
        let Some(slot) = self.relays.get_mut(&relay) else {
            return;
        };
        if slot.listener.is_some() {
            return;
        }
        let circuit = slot.addr.clone().with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(id) => slot.listener = Some(id),
            Err(e) => {
                tracing::warn!(target: "cairn_net", %relay, addr = %circuit, error = %e, "could not reserve on relay")
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                if advertise_listen_addr(self.reachability, self.explicit_loopback, &address) {
                    self.swarm.add_external_address(address.clone());
                    self.update_kad_mode();
                }
                if addr_is_relayed(&address) {
                    tracing::info!(target: "cairn_net", %address, "reachable through a relay");
                }
                self.listen_addrs.push(address.clone());
                self.emit(Event::Listening {
                    address: with_peer(address, me),
                });
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(target: "cairn_net", %address, "advertising");
                self.update_kad_mode();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(target: "cairn_net", %address, "no longer advertised");
                self.update_kad_mode();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                // An interface went away (the machine moved to another network): stop advertising it.
                self.listen_addrs.retain(|a| a != &address);
                if !self.operator_addrs.contains(&address) {
                    self.swarm.remove_external_address(&address);
                    self.update_kad_mode();
                }
                // Connections from the old address are dead though they look open until their pings time
                // out; drop the ones to bootstrap peers and relays now so they are redialled from the new one.
                if !addr_is_relayed(&address) && !reach::is_loopback(&address) {
                    let kept: Vec<PeerId> = self
                        .swarm
                        .connected_peers()
                        .filter(|p| self.redialer.is_kept(p))
                        .copied()
                        .collect();
                    for peer in kept {
                        tracing::info!(target: "cairn_net", %peer, %address, "address gone: reconnecting");
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                for (relay, slot) in &mut self.relays {
                    if slot.listener == Some(listener_id) {
                        tracing::info!(target: "cairn_net", %relay, "relay reservation lost; renewed when the relay is back");
                        slot.listener = None;
                        slot.reserved = false;
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                connection_id,
                ..
            } => {
                tracing::debug!(target: "cairn_net", peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                self.redialer.connected(&peer_id);
                if endpoint.is_dialer() {
                    self.hosts.met(peer_id, endpoint.get_remote_address());
                }
                if addr_is_relayed(endpoint.get_remote_address()) {
                    self.relayed.entry(peer_id).or_default().push(connection_id);
                } else if self.is_relay_server && endpoint.is_listener() {
                    self.replace_moved(
                        peer_id,
                        connection_id,
                        endpoint.get_remote_address().clone(),
                    );
                }
                if self.relays.contains_key(&peer_id) {
                    self.reserve_on(peer_id);
                }
                for reply in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
                if num_established.get() == 1 {
                    self.connmgr.connected(peer_id, std::time::Instant::now());
                    self.emit(Event::PeerConnected { peer: peer_id });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                connection_id,
                ..
            } => {
                if let Some(conns) = self.inbound.get_mut(&peer_id) {
                    conns.retain(|(c, _)| *c != connection_id);
                    if conns.is_empty() {
                        self.inbound.remove(&peer_id);
                    }
                }
                if let Some(conns) = self.relayed.get_mut(&peer_id) {
                    conns.retain(|c| *c != connection_id);
                    if conns.is_empty() {
                        self.relayed.remove(&peer_id);
                    }
                }
                if num_established == 0 {
                    self.connmgr.disconnected(&peer_id);
                    self.redialer.lost(&peer_id, std::time::Instant::now());
                    self.emit(Event::PeerDisconnected { peer: peer_id });
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                tracing::debug!(target: "cairn_net", %peer, %error, "outgoing connection failed");
                if let libp2p::swarm::DialError::WrongPeerId { obtained, address } = &error {
                    // Someone else lives there: gossip naming `peer` at that address is not believed again.
                    self.hosts.met(*obtained, address);
                }
                if !self.swarm.is_connected(&peer) {
                    self.redialer.lost(&peer, std::time::Instant::now());
                }
                for reply in self.pending_dials.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NetError::Dial {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                // Only peers that serve the DHT go into the routing table: a node behind NAT (Kademlia
                // client) listed there would be handed to others' lookups and dialled through its relay.
                if !info.protocols.contains(&KAD_PROTOCOL) {
                    return;
                }
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    for addr in info.listen_addrs {
                        kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.add_address(&peer, addr.clone());
                    }
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetProviders(result),
                step,
                ..
            }) => {
                let found = match result {
                    Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                        Ok(providers.into_iter().collect())
                    }
                    Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => {
                        Ok(Vec::new())
                    }
                    Err(e) => Err(NetError::Internal(format!("provider lookup: {e}"))),
                };
                if let Some(reply) = self.pending_providers.remove(&id) {
                    let _ = reply.send(found);
                    // The first answer is enough; stop the query unless it already ended.
                    if !step.last {
                        if let Some(mut q) = self
                            .swarm
                            .behaviour_mut()
                            .kad
                            .as_mut()
                            .and_then(|k| k.query_mut(&id))
                        {
                            q.finish();
                        }
                    }
                }
            }
            BehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            BehaviourEvent::Tasks(event) => self.on_request_response(event),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            }) => {
                // A connection that cannot carry a ping is dead (an uplink down, a router that forgot the NAT
                // entry); close it now rather than at TCP's timeout, so it is redialled.
                tracing::info!(target: "cairn_net", %peer, %error, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            // A node holding a reservation on this relay, or a circuit through it, is no stranger: its
            // connection is what the relay is for (`guard.rs`).
            BehaviourEvent::Relay(relay::Event::ReservationReqAccepted { src_peer_id, .. }) => {
                self.swarm.behaviour_mut().guard.value(src_peer_id);
                if let Some((reservation, _)) = self.relay_grants {
                    self.connmgr
                        .protect_for(src_peer_id, std::time::Instant::now(), reservation);
                }
            }
            BehaviourEvent::Relay(relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            }) => {
                let guard = &mut self.swarm.behaviour_mut().guard;
                guard.value(src_peer_id);
                guard.value(dst_peer_id);
                if let Some((_, circuit)) = self.relay_grants {
                    let now = std::time::Instant::now();
                    self.connmgr.protect_for(src_peer_id, now, circuit);
                    self.connmgr.protect_for(dst_peer_id, now, circuit);
                }
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                if let Some(slot) = self.relays.get_mut(&relay_peer_id) {
                    slot.reserved = true;
                    slot.reserved_at = Some(unix_secs());
                }
                if !renewal {
                    tracing::info!(target: "cairn_net", relay = %relay_peer_id, "reservation accepted by relay");
                }
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => {
                    self.punches.0 += 1;
                    tracing::info!(target: "cairn_net", peer = %remote_peer_id, "hole punch succeeded: direct connection");
                    let at = std::time::Instant::now() + CLOSE_RELAYED_AFTER_PUNCH;
                    for c in self.relayed.get(&remote_peer_id).into_iter().flatten() {
                        self.closing.push((at, *c));
                    }
                }
                Err(error) => {
                    self.punches.1 += 1;
                    tracing::info!(target: "cairn_net", peer = %remote_peer_id, %error, "hole punch failed: staying on the relay");
                }
            },
            BehaviourEvent::Autonat(autonat::Event::OutboundProbe(probe)) => {
                let now = std::time::Instant::now();
                match probe {
                    autonat::OutboundProbeEvent::Response { peer, .. } => {
                        self.nat_jury.heard(peer, true, now)
                    }
                    autonat::OutboundProbeEvent::Error {
                        peer: Some(peer),
                        error:
                            autonat::OutboundProbeError::Response(autonat::ResponseError::DialError),
                        ..
                    } => self.nat_jury.heard(peer, false, now),
                    _ => {}
                }
                if self.private_pending && self.nat_jury.private_stands(now) {
                    self.withdraw_direct();
                }
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                tracing::info!(target: "cairn_net", ?old, ?new, "AutoNAT verdict changed");
                self.nat = match &new {
                    autonat::NatStatus::Public(_) => "public",
                    autonat::NatStatus::Private => "private",
                    autonat::NatStatus::Unknown => "unknown",
                }
                .into();
                self.private_pending = false;
                if matches!(new, autonat::NatStatus::Private)
                    && self.reachability == Reachability::Auto
                {
                    if self.nat_jury.private_stands(std::time::Instant::now()) {
                        self.withdraw_direct();
                    } else {
                        // Not on the word of one or two peers (`NatJury`): wait for more.
                        tracing::info!(target: "cairn_net", "AutoNAT says private, but too few servers agree; keeping the addresses");
                        self.private_pending = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let topic = Topic::from_hash(&message.topic);
                let author = message.source;
                let decoded = match topic {
                    Some(Topic::Capacity) => {
                        protocol::decode::<CapacityAnnouncement>(&message.data).map(|a| {
                            let from = author.unwrap_or(propagation_source);
                            self.learn_addrs(from, &a.addrs);
                            Event::Capacity {
                                from,
                                announcement: a,
                            }
                        })
                    }
                    Some(Topic::Jobs) => {
                        protocol::decode::<JobAnnouncement>(&message.data).map(|a| Event::Job {
                            from: author.unwrap_or(propagation_source),
                            announcement: a,
                        })
                    }
                    None => Err(protocol::ProtocolError::Malformed(format!(
                        "unknown topic {}",
                        message.topic
                    ))),
                };
                let acceptance = match &decoded {
                    Ok(_) => gossipsub::MessageAcceptance::Accept,
                    // A newer version is not the sender's fault: do not forward, do not penalize.
                    Err(protocol::ProtocolError::UnsupportedVersion { .. }) => {
                        gossipsub::MessageAcceptance::Ignore
                    }
                    Err(_) => gossipsub::MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                match decoded {
                    Ok(event) => self.emit(event),
                    Err(e) => {
                        tracing::debug!(target: "cairn_net", via = %propagation_source, error = %e, "gossip message refused");
                        self.emit(Event::GossipRejected {
                            via: propagation_source,
                            author,
                            topic: message.topic.to_string(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(topic) = Topic::from_hash(&topic) {
                    self.emit(Event::PeerSubscribed {
                        peer: peer_id,
                        topic,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_request_response(&mut self, event: request_response::Event<Frame, Frame>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request: Frame::Oversized { len, max },
                    channel,
                    ..
                } => {
                    let e = protocol::ProtocolError::TooLarge {
                        kind: "request frame",
                        len,
                        max,
                    };
                    tracing::info!(target: "cairn_net", %peer, error = %e, "refusing request");
                    self.emit(Event::ProtocolViolation {
                        peer,
                        reason: e.to_string(),
                    });
                    self.send_response(peer, Some(Response::Error(e.to_reply())), channel);
                }
                request_response::Message::Request {
                    request: Frame::Data(request),
                    channel,
                    ..
                } => match protocol::decode::<Request>(&request) {
                    Ok(request) => {
                        // A peer that talks to this node is not idle (`connmgr.rs`).
                        self.connmgr.active(peer, std::time::Instant::now());
                        // Work brought or done: the peer keeps its connection slots (`guard.rs`).
                        if matches!(
                            request,
                            Request::Offer(_)
                                | Request::Result(_)
                                | Request::Heartbeat(_)
                                | Request::Failed { .. }
                        ) {
                            self.swarm.behaviour_mut().guard.value(peer);
                        }
                        let (tx, rx) = oneshot::channel();
                        self.pending_responses
                            .push(rx.map(move |r| (peer, r.ok(), channel)).boxed());
                        self.emit(Event::InboundRequest {
                            peer,
                            request,
                            responder: Responder { peer, tx },
                        });
                    }
                    Err(e) => {
                        tracing::info!(target: "cairn_net", %peer, error = %e, "refusing request");
                        if !matches!(e, protocol::ProtocolError::UnsupportedVersion { .. }) {
                            self.emit(Event::ProtocolViolation {
                                peer,
                                reason: e.to_string(),
                            });
                        }
                        self.send_response(peer, Some(Response::Error(e.to_reply())), channel);
                    }
                },
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((peer, reply)) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(match response {
                            Frame::Data(bytes) => Ok(bytes),
                            Frame::Oversized { len, max } => Err(NetError::RequestFailed {
                                peer,
                                reason: format!("response of {len} bytes over the limit of {max}"),
                            }),
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::RequestFailed {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                let reason = error.to_string();
                tracing::info!(target: "cairn_net", %peer, %reason, "inbound request failed");
                if let request_response::InboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.emit(Event::ProtocolViolation { peer, reason });
                    }
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// The addresses in `from`'s capacity announcement that parse and name `from` as their final peer (a relay
/// circuit names the relay first): nobody can point clients at a third party's address.
pub(crate) fn addrs_of(from: PeerId, addrs: &[String]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter(|addr| {
            let last = addr
                .iter()
                .filter_map(|p| match p {
                    Protocol::P2p(id) => Some(id),
                    _ => None,
                })
                .last();
            last == Some(from)
        })
        .collect()
}
