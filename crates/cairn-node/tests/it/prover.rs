//! A prover node driven by a bare libp2p client standing in for a coordinator, with the (named) fake backend:
//! what the prover does when its client misbehaves or drops off.

use std::time::Duration;

use crate::support::{init_tracing, start_prover, ProverOpts};
use cairn_backend::fake::FakeBackend;
use cairn_net::protocol::{ErrorCode, ErrorReply, Offer, Request, Response, TaskKind};
use cairn_net::{BlobRef, Event, Network, Retention};

/// A bare client listening on loopback, a prover (with `opts`) dialing it, and the prover's peer id.
async fn client_and_prover(
    dir: &std::path::Path,
    opts: ProverOpts,
) -> (
    cairn_net::Client,
    tokio::sync::mpsc::Receiver<Event>,
    cairn_net::PeerId,
    tokio::sync::oneshot::Sender<()>,
) {
    init_tracing();
    let (client, mut events, event_loop) =
        Network::new(cairn_net::Config::loopback(dir.join("client")))
            .await
            .unwrap();
    tokio::spawn(event_loop.run());
    let addr = format!(
        "{}/p2p/{}",
        client.listen_addrs().await.unwrap()[0],
        client.local_peer_id()
    );
    let stop = start_prover(dir, "prover", &[&addr], opts);
    let prover = loop {
        if let Event::PeerConnected { peer } = events.recv().await.unwrap() {
            break peer;
        }
    };
    (client, events, prover, stop)
}

/// Executes a fake program at `po2`, publishes its first segment and the program, and returns the segment's
/// claim and an offer for it that states `offered_po2`.
async fn offer_first_segment(
    client: &cairn_net::Client,
    name: &str,
    cycles: u64,
    po2: u8,
    offered_po2: u8,
) -> (cairn_backend::SegmentClaim, Request) {
    let program = FakeBackend::program(name);
    let mut segments = Vec::new();
    crate::support::backend()
        .execute(
            &program,
            &FakeBackend::input(cycles, name.as_bytes()),
            po2,
            &mut |s| {
                segments.push(s);
                Ok(())
            },
        )
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
            po2: offered_po2,
            data,
            lift: false,
        },
        program: program_ref,
        deadline_ms: 60_000,
    });
    (seg.claim, offer)
}

/// Issue 13, item 4: a client that drops off the network while its task is being proved, and is back within
/// the grace period, still gets the result: the prover keeps proving through the disconnect and delivers
/// when it can (before, a disconnect threw the work away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_a_result_survives_a_brief_disconnect_of_its_client() {
    let dir = tempfile::tempdir().unwrap();
    // Proofs of 1.6 s: time to cut the connection while one runs.
    let slow = ProverOpts {
        scale: 0.2,
        ..ProverOpts::default()
    };
    let (client, mut events, prover, _stop) = client_and_prover(dir.path(), slow).await;
    let (claim, offer) = offer_first_segment(&client, "orphan", 10_000, 14, 14).await;
    assert_eq!(
        client.request(prover, &offer).await.unwrap(),
        Response::Accept
    );

    // The connection drops while the proof runs; the prover delivers once it is back (it dials again). The
    // order of what the client sees shows it: the connection closed, then a new one, then the result.
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.disconnect(prover).await.unwrap();
    let mut dropped = false;
    let mut back = false;
    let result = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match events.recv().await.unwrap() {
                Event::PeerDisconnected { peer } if peer == prover => dropped = true,
                Event::PeerConnected { peer } if peer == prover => back = dropped,
                Event::InboundRequest {
                    request: Request::Result(r),
                    responder,
                    ..
                } => {
                    assert!(
                        dropped,
                        "the result came before the connection ever dropped: the test cut nothing"
                    );
                    assert!(back, "a result from a prover that is not connected");
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
    assert!(dropped && back);
    assert_eq!((result.job, result.task), (1, 0));
    assert!(result.signed_by(&prover));
    let receipt = client
        .fetch_blob_ref(&[prover], result.receipt, Retention::Evictable)
        .await
        .unwrap();
    crate::support::backend()
        .verify_segment(&std::fs::read(receipt.path).unwrap(), &claim)
        .unwrap();
}

/// Issue 29, item 9: a client whose event channel was full answered a prover's `Result` with `Internal`, and
/// the prover took any answered error as final and threw the finished proof away. A client that answers
/// `Internal` or `Busy` is asked again (until it acknowledges, or refuses for a reason of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item9_a_result_answered_busy_or_internal_is_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mut events, prover, _stop) =
        client_and_prover(dir.path(), ProverOpts::default()).await;
    let (claim, offer) = offer_first_segment(&client, "overloaded", 10_000, 14, 14).await;
    assert_eq!(
        client.request(prover, &offer).await.unwrap(),
        Response::Accept
    );
    let mut answers = vec![
        (
            ErrorCode::Internal,
            "the node dropped the request without answering",
        ),
        (ErrorCode::Busy, "the node is overloaded; retry later"),
    ]
    .into_iter();
    let mut asked = 0;
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await.unwrap() {
                Event::InboundRequest {
                    request: Request::Result(r),
                    responder,
                    ..
                } => {
                    asked += 1;
                    match answers.next() {
                        Some((code, why)) => {
                            responder.respond(Response::Error(ErrorReply::new(code, why)))
                        }
                        None => {
                            responder.respond(Response::Ack);
                            break r;
                        }
                    }
                }
                Event::InboundRequest { responder, .. } => responder.respond(Response::Ack),
                _ => {}
            }
        }
    })
    .await
    .expect("the prover gave up its result after an Internal or Busy answer");
    assert_eq!(asked, 3);
    let receipt = client
        .fetch_blob_ref(&[prover], result.receipt, Retention::Evictable)
        .await
        .unwrap();
    crate::support::backend()
        .verify_segment(&std::fs::read(receipt.path).unwrap(), &claim)
        .unwrap();
}

/// Issue 13, item 11: a hostile client offers a segment as po2 14 that is really po2 18, to a node whose
/// memory stops at po2 16. The node reads the segment's own size before it commits a worker and refuses the
/// task as the task's fault, instead of proving far above its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item11_a_segment_larger_than_its_offer_says_is_refused_before_proving() {
    let dir = tempfile::tempdir().unwrap();
    let small = ProverOpts {
        max_po2: 16,
        ..ProverOpts::default()
    };
    let (client, mut events, prover, _stop) = client_and_prover(dir.path(), small).await;
    let (claim, offer) = offer_first_segment(&client, "too-big", 600_000, 18, 14).await;
    assert_eq!(claim.po2, 18);
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

/// A free TCP port on loopback (for a client that must come back at the same address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare client with a persistent identity at a fixed loopback port: stopped and started again, it is the same
/// peer at the same address (a client restarting).
async fn fixed_client(
    dir: &std::path::Path,
    port: u16,
) -> (cairn_net::Client, tokio::sync::mpsc::Receiver<Event>) {
    let mut cfg = cairn_net::Config::loopback(dir.join("client"));
    cfg.identity = cairn_net::Identity::File(dir.join("client").join("identity.key"));
    cfg.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
    let (client, events, event_loop) = Network::new(cfg).await.unwrap();
    tokio::spawn(event_loop.run());
    (client, events)
}

/// Issue 29, item 3: a client that stays away past the grace period has its tasks dropped, but their proofs
/// cannot be stopped mid-way and go on on the workers. Before, their slots were freed at once, so a client that
/// came back (or any client) could offer more work than the node has workers: offered, disconnected for a minute
/// and back, again and again, proofs piled up in the worker queue until the node ran out of memory. Now a slot
/// stays taken until its proof has really ended: the client back after the grace period is told the node is
/// busy, and its next task is taken once the abandoned proof is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue29_item3_a_client_away_past_the_grace_period_cannot_push_a_prover_past_its_slots() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (client, mut events) = fixed_client(dir.path(), port).await;
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", client.local_peer_id());
    // One slot, proofs of ~16 s, a grace period of 1 s.
    let opts = ProverOpts {
        scale: 2.0,
        orphan_grace: Duration::from_secs(1),
        ..ProverOpts::default()
    };
    let _stop = start_prover(dir.path(), "prover", &[&addr], opts);
    let prover = loop {
        if let Event::PeerConnected { peer } = events.recv().await.unwrap() {
            break peer;
        }
    };
    let (_, offer) = offer_first_segment(&client, "away", 10_000, 14, 14).await;
    let Request::Offer(first) = offer else {
        unreachable!()
    };
    let second = Request::Offer(Offer {
        task: 1,
        ..first.clone()
    });
    assert_eq!(
        client
            .request(prover, &Request::Offer(first))
            .await
            .unwrap(),
        Response::Accept
    );
    // The client goes away (its process stops) for longer than the grace period, and comes back as the same
    // peer at the same address; the prover dials it again.
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.shutdown().await;
    drop(events);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (client, mut events) = fixed_client(dir.path(), port).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await.unwrap() {
                Event::PeerConnected { peer } if peer == prover => break,
                Event::InboundRequest { responder, .. } => responder.respond(Response::Ack),
                _ => {}
            }
        }
    })
    .await
    .expect("the prover dialled the client again");
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let Event::InboundRequest { responder, .. } = ev {
                responder.respond(Response::Ack);
            }
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the first proof may be over already: the test shows nothing"
    );
    // Its first task was dropped, but its proof still holds the node's only worker.
    match client.request(prover, &second).await.unwrap() {
        Response::Decline { kind, reason } => {
            assert_eq!(
                kind,
                Some(cairn_net::protocol::DeclineKind::Busy),
                "{reason}"
            )
        }
        other => panic!(
            "a one-slot node took a second task while its worker still proves the first: {other:?}"
        ),
    }
    // Once the abandoned proof is over, the slot is free again.
    let taken = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            if client.request(prover, &second).await.unwrap() == Response::Accept {
                break started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("the slot was never freed");
    assert!(
        taken >= Duration::from_secs(12),
        "taken after {taken:?}, before the first proof (~16 s) could have ended"
    );
}
