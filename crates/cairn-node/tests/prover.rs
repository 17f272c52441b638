//! A prover node driven by a bare libp2p client standing in for a coordinator, with the (named) fake backend:
//! what the prover does when its client misbehaves or drops off.

mod support;

use std::time::Duration;

use cairn_backend::fake::FakeBackend;
use cairn_net::protocol::{Offer, Request, Response, TaskKind};
use cairn_net::{BlobRef, Event, Network, Retention};
use support::{init_tracing, start_prover, ProverOpts};

/// Issue 13, item 4: a client that drops off the network while its task is being proved, and is back within
/// the grace period, still gets the result: the prover keeps proving through the disconnect and delivers
/// when it can (before, a disconnect threw the work away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_a_result_survives_a_brief_disconnect_of_its_client() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (client, mut events, event_loop) =
        Network::new(cairn_net::Config::loopback(dir.path().join("client")))
            .await
            .unwrap();
    tokio::spawn(event_loop.run());
    let addr = format!(
        "{}/p2p/{}",
        client.listen_addrs().await.unwrap()[0],
        client.local_peer_id()
    );
    // Proofs of 1.6 s: time to cut the connection while one runs.
    let slow = ProverOpts {
        scale: 0.2,
        ..ProverOpts::default()
    };
    let _prover = start_prover(dir.path(), "prover", &[&addr], slow);
    let prover = loop {
        match events.recv().await.unwrap() {
            Event::PeerConnected { peer } => break peer,
            _ => continue,
        }
    };

    // One real (fake-backend) segment to prove.
    let backend = support::backend_at(0.2);
    let program = FakeBackend::program("orphan");
    let mut segments = Vec::new();
    backend
        .execute(&program, &FakeBackend::input(10_000, b"o"), 14, &mut |s| {
            segments.push(s);
            Ok(())
        })
        .unwrap();
    let seg = segments.remove(0);
    let data = BlobRef::of(&seg.bytes);
    client
        .publish_blob(seg.bytes, Retention::Pinned)
        .await
        .unwrap();
    let program_ref = BlobRef::of(&program);
    client
        .publish_blob(program, Retention::Pinned)
        .await
        .unwrap();
    let offer = Request::Offer(Offer {
        job: 1,
        task: 0,
        kind: TaskKind::Prove {
            segment: 0,
            po2: seg.claim.po2,
            data,
            lift: false,
        },
        program: program_ref,
        deadline_ms: 60_000,
    });
    assert_eq!(
        client.request(prover, &offer).await.unwrap(),
        Response::Accept
    );

    // The connection drops while the proof runs; the prover delivers once it is back (it dials again).
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.disconnect(prover).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match events.recv().await.unwrap() {
                Event::InboundRequest {
                    request: Request::Result(r),
                    responder,
                    ..
                } => {
                    responder.respond(Response::Ack);
                    break r;
                }
                Event::InboundRequest { responder, .. } => responder.respond(Response::Ack),
                _ => {}
            }
        }
    })
    .await
    .expect("the result arrived after the reconnect");
    assert_eq!((result.job, result.task), (1, 0));
    assert!(result.signed_by(&prover));
    let receipt = client
        .fetch_blob_ref(&[prover], result.receipt, Retention::Evictable)
        .await
        .unwrap();
    backend
        .verify_segment(&std::fs::read(receipt.path).unwrap(), &seg.claim)
        .unwrap();
}

/// Issue 13, item 11: a hostile client offers a segment as po2 14 that is really po2 18, to a node whose
/// memory stops at po2 16. The node reads the segment's own size before it commits a worker and refuses the
/// task as the task's fault, instead of proving far above its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item11_a_segment_larger_than_its_offer_says_is_refused_before_proving() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (client, mut events, event_loop) =
        Network::new(cairn_net::Config::loopback(dir.path().join("client")))
            .await
            .unwrap();
    tokio::spawn(event_loop.run());
    let addr = format!(
        "{}/p2p/{}",
        client.listen_addrs().await.unwrap()[0],
        client.local_peer_id()
    );
    let small = ProverOpts {
        max_po2: 16,
        ..ProverOpts::default()
    };
    let _prover = start_prover(dir.path(), "prover", &[&addr], small);
    let prover = loop {
        if let Event::PeerConnected { peer } = events.recv().await.unwrap() {
            break peer;
        }
    };
    let backend = support::backend();
    let program = FakeBackend::program("too-big");
    let mut segments = Vec::new();
    backend
        .execute(&program, &FakeBackend::input(600_000, b"b"), 18, &mut |s| {
            segments.push(s);
            Ok(())
        })
        .unwrap();
    let seg = segments.remove(0);
    assert_eq!(seg.claim.po2, 18);
    let data = BlobRef::of(&seg.bytes);
    client
        .publish_blob(seg.bytes, Retention::Pinned)
        .await
        .unwrap();
    let program_ref = BlobRef::of(&program);
    client
        .publish_blob(program, Retention::Pinned)
        .await
        .unwrap();
    let offer = Request::Offer(Offer {
        job: 1,
        task: 0,
        kind: TaskKind::Prove {
            segment: 0,
            po2: 14,
            data,
            lift: false,
        },
        program: program_ref,
        deadline_ms: 60_000,
    });
    // The offer looks fine; the segment is what gives it away.
    assert_eq!(
        client.request(prover, &offer).await.unwrap(),
        Response::Accept
    );
    let (reason, kind) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await.unwrap() {
                Event::InboundRequest {
                    request: Request::Failed { reason, kind, .. },
                    responder,
                    ..
                } => {
                    responder.respond(Response::Ack);
                    break (reason, kind);
                }
                Event::InboundRequest {
                    request: Request::Result(_),
                    ..
                } => panic!("the node proved a segment above its memory"),
                Event::InboundRequest { responder, .. } => responder.respond(Response::Ack),
                _ => {}
            }
        }
    })
    .await
    .expect("the node said it gives the task up");
    assert_eq!(kind, cairn_net::protocol::FailureKind::Task);
    assert!(reason.contains("po2 18"), "{reason}");
}
