//! The connection manager (`connmgr.rs`, issue 30): above its high-water mark a node closes idle connections
//! and keeps the peers it works with; a node with its fill of peers does not fight that by redialling the
//! bootstrap peer that closed its connection, and a node with nobody else does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_net::protocol::Request;
use cairn_net::{Config, Event, PeerId, TrimLimits};

use crate::common::*;

fn trims(high_water: u32, low_water: u32) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        // Only the connections the test opens.
        c.kademlia = false;
        c.limits.trim = TrimLimits {
            high_water,
            low_water,
            grace: Duration::from_secs(1),
            active_for: Duration::from_secs(600),
        };
    }
}

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_its_high_water_mark_a_node_closes_idle_connections_and_keeps_its_workers() {
    init_tracing();
    bounded(async {
        let hub = spawn_node(vec![], trims(2, 1)).await;
        let hub_addr = hub.tcp_addr().await;
        let hub_id = hub.id();
        let (_events, hub_client, _dir) = serve_requests(hub);

        let worker = spawn_node(vec![], trims(48, 32)).await;
        worker.client.dial(hub_addr.clone()).await.unwrap();
        worker
            .client
            .request(hub_id, &Request::Status)
            .await
            .unwrap();
        let mut idle = Vec::new();
        for _ in 0..3 {
            let node = spawn_node(vec![], trims(48, 32)).await;
            node.client.dial(hub_addr.clone()).await.unwrap();
            idle.push(node);
        }
        let idle_ids: Vec<PeerId> = idle.iter().map(|n| n.id()).collect();

        // 4 connected, high water 2, low water 1: the three idle peers go, the worker stays.
        wait_until("the hub to trim", Duration::from_secs(20), async || {
            let connected = hub_client.connected_peers().await.unwrap();
            !idle_ids.iter().any(|p| connected.contains(p))
        })
        .await;
        let connected = hub_client.connected_peers().await.unwrap();
        assert_eq!(connected, vec![worker.id()], "the worker is protected");
        let status = hub_client.reachability().await.unwrap();
        assert_eq!(status.connections_trimmed, 3, "{status:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_connected_node_does_not_redial_a_bootstrap_peer_that_trimmed_it_and_a_lone_one_does(
) {
    init_tracing();
    bounded(async {
        // The hub closes every idle connection once it has more than one.
        let hub = spawn_node(vec![], trims(1, 0)).await;
        let hub_addr = hub.tcp_addr().await;
        let (mut hub_events, hub_client, _dir) = serve_requests(hub);

        // `connected` has the hub as its bootstrap peer and two other peers (its low water is 2);
        // `lone` has only the hub.
        let others = [
            spawn_node(vec![], trims(48, 32)).await,
            spawn_node(vec![], trims(48, 32)).await,
        ];
        let connected = spawn_node(vec![hub_addr.clone()], trims(48, 2)).await;
        for other in &others {
            connected.client.dial(other.tcp_addr().await).await.unwrap();
        }
        let lone = spawn_node(vec![hub_addr.clone()], trims(48, 32)).await;

        // Count the hub's new connections per peer for a while: the hub trims both (several times, the
        // lone node); a redial comes a second after a close.
        let mut connects: HashMap<PeerId, u32> = HashMap::new();
        let until = Instant::now() + Duration::from_secs(20);
        while let Ok(Some(event)) = tokio::time::timeout_at(until.into(), hub_events.recv()).await {
            if let Event::PeerConnected { peer } = event {
                *connects.entry(peer).or_default() += 1;
            }
        }
        let status = hub_client.reachability().await.unwrap();
        assert!(status.connections_trimmed >= 2, "{status:?}");
        assert_eq!(
            connects.get(&connected.id()),
            Some(&1),
            "a node with its fill of peers redialled a bootstrap peer that closed it: {connects:?}"
        );
        assert!(
            connects.get(&lone.id()).copied().unwrap_or(0) >= 2,
            "a node with no other peer must redial its bootstrap peer: {connects:?}"
        );
    })
    .await;
}
