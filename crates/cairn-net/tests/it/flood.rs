//! Issue 29, the connection flood: many identities from one address connect to an honest node and stay idle.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_net::protocol::{Request, Response};
use cairn_net::InboundLimits;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, ping, tcp, yamux, Multiaddr};

use crate::common::*;

/// One made-up identity: a bare swarm (TCP, Noise, Yamux, and ping, so the node keeps the connection) that
/// dials `target`, holds the connection open and sends nothing else. Counts whether it got in.
fn idle_stranger(target: Multiaddr, connected: Arc<AtomicU32>, refused: Arc<AtomicU32>) {
    tokio::spawn(async move {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| ping::Behaviour::default())
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        if swarm.dial(target).is_err() {
            refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        while let Some(event) = swarm.next().await {
            match event {
                SwarmEvent::ConnectionEstablished { .. } => {
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                SwarmEvent::OutgoingConnectionError { .. } => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                SwarmEvent::ConnectionClosed { .. } => return,
                _ => {}
            }
        }
    });
}

/// 1,000 identities from one address (the test's loopback, limited here as a real address would be) connect
/// to an honest node and stay idle. Before, they filled its 128 connection slots and no client could reach
/// it. Now one address holds a few slots, idle strangers past their grace make room for newcomers, and a
/// peer that brings work keeps its connection: a client still reaches the node and its offers are answered
/// throughout the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_identities_from_one_address_cannot_keep_clients_from_a_node() {
    init_tracing();
    bounded(async {
        let node = spawn_node(vec![], |c| {
            c.limits.inbound = InboundLimits {
                limit_loopback: true,
                grace: Duration::from_secs(1),
                ..InboundLimits::default()
            };
        })
        .await;
        let node_addr = node.tcp_addr().await;
        let node_id = node.id();
        let (_events, node_client, _dir) = serve_requests(node);
        let target: Multiaddr = format!("{node_addr}/p2p/{node_id}").parse().unwrap();

        let (connected, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let flood = {
            let (target, connected, refused) = (target.clone(), connected.clone(), refused.clone());
            tokio::spawn(async move {
                for i in 0..1_000u32 {
                    idle_stranger(target.clone(), connected.clone(), refused.clone());
                    if i % 50 == 49 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;

        // A client arrives mid-flood, as a client that found this prover would, and offers work.
        let client = spawn_node(vec![], |_| {}).await;
        let started = Instant::now();
        let reached = loop {
            if client.client.dial(target.clone()).await.is_ok()
                && matches!(
                    client.client.request(node_id, &Request::Status).await,
                    Ok(Response::Status(_))
                )
            {
                break true;
            }
            if started.elapsed() > Duration::from_secs(30) {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(
            reached,
            "the client could not reach the node through the flood ({} strangers in, {} refused)",
            connected.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        );
        // It brings work, and keeps its connection while the flood goes on.
        let offer = Request::Offer(cairn_net::protocol::Offer {
            job: 1,
            task: 0,
            kind: cairn_net::protocol::TaskKind::Prove {
                segment: 0,
                po2: 14,
                data: cairn_net::BlobRef::of(b"segment"),
                lift: false,
            },
            program: cairn_net::BlobRef::of(b"program"),
            deadline_ms: 60_000,
        });
        for _ in 0..10 {
            assert_eq!(
                client.client.request(node_id, &offer).await.unwrap(),
                Response::Accept
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        flood.await.unwrap();
        let status = node_client.reachability().await.unwrap();
        let (tried, got_in) = (
            connected.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed),
            connected.load(Ordering::Relaxed),
        );
        eprintln!(
            "flood: {tried} strangers tried, {got_in} got in; the node refused {} and evicted {}; it holds {} connected peers",
            status.inbound_refused, status.strangers_evicted, status.connected_peers
        );
        assert!(status.inbound_refused + status.strangers_evicted > 0, "{status:?}");
        assert!(
            status.connected_peers <= 16,
            "one address holds {} of the node's connections",
            status.connected_peers
        );
        assert!(
            client
                .client
                .connected_peers()
                .await
                .unwrap()
                .contains(&node_id),
            "the client that brings work lost its connection"
        );
    })
    .await;
}
