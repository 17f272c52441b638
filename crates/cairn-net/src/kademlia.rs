//! Kademlia as Cairn runs it: libp2p's behaviour, except that it does not try to bootstrap from an empty
//! routing table.
//!
//! libp2p-kad bootstraps by itself when a listen address appears while no peer is connected (every node at
//! start), and on a timer; with an empty routing table that fails and it warns "Failed to trigger bootstrap: No
//! known peers". For a node alone on its network (the first node of a network, a LAN mDNS has not found yet)
//! that is normal, and the warning only worries its owner. So the listen-address trigger is passed on only once
//! the routing table knows a peer, and the periodic bootstrap is the event loop's
//! ([`crate::Config::kad_bootstrap_every`]), which says nothing when there is nobody to ask. The first peer that
//! enters the routing table still triggers a bootstrap by itself, as before.

use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::kad;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

type Inner = kad::Behaviour<kad::store::MemoryStore>;

/// libp2p's Kademlia behaviour without bootstraps from an empty routing table (see the module docs).
pub(crate) struct Kademlia(Inner);

impl Kademlia {
    pub(crate) fn new(inner: Inner) -> Self {
        Self(inner)
    }

    fn knows_no_peer(&mut self) -> bool {
        self.0.kbuckets().all(|bucket| bucket.num_entries() == 0)
    }
}

impl Deref for Kademlia {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl DerefMut for Kademlia {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl NetworkBehaviour for Kademlia {
    type ConnectionHandler = <Inner as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = <Inner as NetworkBehaviour>::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.0
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.0.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // Kademlia's only use of a new listen address is to bootstrap: from an empty routing table, nothing to.
        if matches!(event, FromSwarm::NewListenAddr(_)) && self.knows_no_peer() {
            return;
        }
        self.0.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}
