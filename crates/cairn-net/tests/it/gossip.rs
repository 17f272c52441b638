use std::time::Duration;

use cairn_net::protocol::{CapacityAnnouncement, Heartbeat, JobAnnouncement, Request, Response};
use cairn_net::{BlobRef, Event, NetError, Topic};

use crate::common::*;

fn job(n: u64) -> JobAnnouncement {
    JobAnnouncement {
        job: n,
        program: BlobRef::of(b"program"),
        segments: 4,
        po2: 14,
        deadline_ms: 60_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_connect_through_a_bootstrap_peer_and_discover_each_other() {
    init_tracing();
    bounded(async {
        let a = spawn_node(vec![], |_| {}).await;
        let a_addr = a.tcp_addr().await;
        let b = spawn_node(vec![a_addr.clone()], |_| {}).await;
        // Started together: C may ask A before B is in A's table. It then meets B at one of its early
        // re-bootstraps (2 s after start, then 6 s, 14 s, ...), not at the periodic one minutes later.
        let c = spawn_node(vec![a_addr], |_| {}).await;
        wait_connected(&a.client, b.id()).await;
        wait_connected(&a.client, c.id()).await;
        // B and C were only told about A; Kademlia (fed by identify) brings them together.
        wait_connected(&c.client, b.id()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_transport_connects() {
    init_tracing();
    bounded(async {
        let a = spawn_node(vec![], |_| {}).await;
        let b = spawn_node(vec![], |_| {}).await;
        let peer = b.client.dial(a.quic_addr().await).await.unwrap();
        assert_eq!(peer, a.id());
        wait_connected(&a.client, b.id()).await;
    })
    .await;
}

/// A - B - C in a line (no Kademlia, so A and C never meet). A's valid announcements reach C through B;
/// A's garbage and oversized messages are rejected by B and never reach C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_validated_before_forwarding() {
    init_tracing();
    bounded(async {
        let no_kad = |c: &mut cairn_net::Config| c.kademlia = false;
        let mut b = spawn_node(vec![], no_kad).await;
        let b_addr = b.tcp_addr().await;
        let a = spawn_node(vec![b_addr.clone()], no_kad).await;
        let mut c = spawn_node(vec![b_addr], no_kad).await;
        wait_connected(&b.client, a.id()).await;
        wait_connected(&b.client, c.id()).await;
        assert!(!c.client.connected_peers().await.unwrap().contains(&a.id()));

        // Probe until B's mesh forwards A's messages to C.
        let mut n = 0;
        loop {
            n += 1;
            match a.client.publish_job(&job(n)).await {
                Ok(()) | Err(NetError::NoGossipPeers { .. }) => {}
                Err(e) => panic!("publish failed: {e}"),
            }
            let got = tokio::time::timeout(Duration::from_millis(300), async {
                loop {
                    if let Some(Event::Job { from, .. }) = c.events.recv().await {
                        return from;
                    }
                }
            })
            .await;
            if let Ok(from) = got {
                assert_eq!(from, a.id(), "the author is A, signed");
                break;
            }
            assert!(n < 100, "gossip never reached C");
        }

        // Garbage, and a message over the job-announcement limit, then a valid one.
        a.client
            .publish_raw(Topic::Jobs, b"\xff\xfe not cbor".to_vec())
            .await
            .unwrap();
        a.client
            .publish_raw(Topic::Jobs, vec![0u8; 10 * 1024])
            .await
            .unwrap();
        a.client.publish_job(&job(999)).await.unwrap();
        a.client
            .publish_capacity(&CapacityAnnouncement {
                capacity: capacity(),
                free_slots: 1,
                benchmark: None,
                addrs: Vec::new(),
            })
            .await
            .unwrap();

        // C sees the valid job next; the invalid ones, published before it on the same path, never arrive.
        c.wait_for("job 999 on C", |e| match e {
            Event::Job { announcement, .. } if announcement.job == 999 => Some(()),
            Event::Job { .. } => None,
            Event::GossipRejected { reason, .. } => {
                panic!("C received an invalid message: {reason}")
            }
            _ => None,
        })
        .await;
        c.wait_for("capacity on C", |e| match e {
            Event::Capacity { from, announcement } => {
                assert_eq!(*from, a.id());
                assert_eq!(announcement.capacity, capacity());
                Some(())
            }
            Event::GossipRejected { reason, .. } => {
                panic!("C received an invalid message: {reason}")
            }
            _ => None,
        })
        .await;

        // B rejected both.
        let mut rejected = Vec::new();
        while rejected.len() < 2 {
            let r = b
                .wait_for("rejections on B", |e| match e {
                    Event::GossipRejected { via, reason, .. } => Some((*via, reason.clone())),
                    _ => None,
                })
                .await;
            rejected.push(r);
        }
        assert!(rejected.iter().all(|(via, _)| *via == a.id()));
        assert!(rejected[0].1.contains("malformed"), "{rejected:?}");
        assert!(rejected[1].1.contains("over the limit"), "{rejected:?}");
    })
    .await;
}

/// Issue 30: the grand test's first try (200 node processes on 2 cores) had the client drop 2,600 network
/// events: its event channel was full, the swarm's task dropped what did not fit, and honest provers whose
/// announcements and heartbeats it never saw were then taken for silent. Here nobody reads S's events (its
/// channel holds two) while six peers each announce their capacity ten times and send it a heartbeat; then S
/// catches up. It must see every peer's latest announcement and a heartbeat of each, and drop nothing: what
/// waits is the latest per peer and kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_on_its_events_loses_no_peers_latest_announcement() {
    init_tracing();
    bounded(async {
        let mut slow = spawn_node(vec![], |c| c.event_buffer = 2).await;
        let addr = slow.tcp_addr().await;
        let mut peers = Vec::new();
        for _ in 0..6 {
            let p = spawn_node(vec![addr.clone()], |_| {}).await;
            wait_connected(&p.client, slow.id()).await;
            peers.push(p);
        }
        let announce = |free_slots: u32| CapacityAnnouncement {
            capacity: capacity(),
            free_slots,
            benchmark: None,
            addrs: Vec::new(),
        };
        for p in &peers {
            // Until S is in the peer's mesh for the topic.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while let Err(e) = p.client.publish_capacity(&announce(0)).await {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never published: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for n in 1..=10 {
                p.client.publish_capacity(&announce(n)).await.unwrap();
            }
            let (c, to) = (p.client.clone(), slow.id());
            tokio::spawn(async move {
                let hb = Request::Heartbeat(Heartbeat {
                    busy: Vec::new(),
                    capacity: capacity(),
                });
                let _ = c.request(to, &hb).await;
            });
        }
        // Give the last announcements time to arrive, then read everything S kept.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = slow.client.reachability().await.unwrap();
        assert!(
            status.events_waiting as u64 + status.events_dropped > 0,
            "S's channel never filled: the test tests nothing"
        );
        let mut latest = std::collections::HashMap::new();
        let mut heartbeats = std::collections::HashSet::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_millis(500), slow.events.recv()).await
        {
            match e {
                Event::Capacity { from, announcement } => {
                    latest.insert(from, announcement.free_slots);
                }
                Event::InboundRequest {
                    peer,
                    request: Request::Heartbeat(_),
                    responder,
                } => {
                    heartbeats.insert(peer);
                    responder.respond(Response::Ack);
                }
                _ => {}
            }
        }
        assert_eq!(heartbeats.len(), peers.len(), "S lost heartbeats");
        for p in &peers {
            assert_eq!(
                latest.get(&p.id()),
                Some(&10),
                "S lost {}'s latest announcement (saw {latest:?})",
                p.id()
            );
        }
        let status = slow.client.reachability().await.unwrap();
        assert_eq!(status.events_dropped, 0, "{status:?}");
        assert_eq!(status.events_waiting, 0, "{status:?}");
        assert!(status.events_waiting_peak >= 6, "{status:?}");
    })
    .await;
}
