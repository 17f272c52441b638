use cairn_net::protocol::{
    self, limits, BlobRef, ErrorCode, Heartbeat, Offer, Request, Response, TaskKind, TaskRef,
};
use cairn_net::{Event, NetError};

use crate::common::*;

fn offer(deadline_ms: u64) -> Request {
    let blob = BlobRef::of(b"segment");
    Request::Offer(Offer {
        job: 1,
        task: 0,
        kind: TaskKind::Prove {
            segment: 0,
            po2: 14,
            data: blob,
            lift: false,
        },
        program: BlobRef::of(b"program"),
        deadline_ms,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_round_trip() {
    init_tracing();
    bounded(async {
        let prover = spawn_node(vec![], |_| {}).await;
        let prover_addr = prover.tcp_addr().await;
        let prover_id = prover.id();
        let (_events, _prover_client, _dir) = serve_requests(prover);
        let client = spawn_node(vec![prover_addr], |_| {}).await;
        wait_connected(&client.client, prover_id).await;

        let c = &client.client;
        assert_eq!(
            c.request(prover_id, &offer(60_000)).await.unwrap(),
            Response::Accept
        );
        assert!(matches!(
            c.request(prover_id, &offer(0)).await.unwrap(),
            Response::Decline { .. }
        ));
        match c.request(prover_id, &Request::Status).await.unwrap() {
            Response::Status(s) => assert_eq!(s.capacity, capacity()),
            other => panic!("unexpected {other:?}"),
        }
        let hb = Request::Heartbeat(Heartbeat {
            busy: vec![TaskRef { job: 1, task: 0 }],
            capacity: capacity(),
        });
        assert_eq!(c.request(prover_id, &hb).await.unwrap(), Response::Ack);
        assert_eq!(
            c.request(prover_id, &Request::Cancel { job: 1, task: 0 })
                .await
                .unwrap(),
            Response::Ack
        );
        // A message over its own limit never leaves the sender.
        let too_busy = Request::Heartbeat(Heartbeat {
            busy: vec![TaskRef { job: 1, task: 0 }; limits::MAX_BUSY_TASKS + 1],
            capacity: capacity(),
        });
        assert!(matches!(
            c.request(prover_id, &too_busy).await,
            Err(NetError::Protocol(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_version_gets_a_polite_error() {
    init_tracing();
    bounded(async {
        let prover = spawn_node(vec![], |_| {}).await;
        let prover_addr = prover.tcp_addr().await;
        let prover_id = prover.id();
        let (_events, _pc, _dir) = serve_requests(prover);
        let client = spawn_node(vec![prover_addr], |_| {}).await;
        wait_connected(&client.client, prover_id).await;

        let frame = protocol::encode_with_version(7, &Request::Status).unwrap();
        let raw = client.client.request_raw(prover_id, frame).await.unwrap();
        match protocol::decode::<Response>(&raw).unwrap() {
            Response::Error(reply) => {
                assert_eq!(reply.code, ErrorCode::UnsupportedVersion);
                assert_eq!(reply.supported, protocol::SUPPORTED_VERSIONS.to_vec());
            }
            other => panic!("expected an error reply, got {other:?}"),
        }
        // And the prover still answers current-version requests.
        assert!(matches!(
            client.client.request(prover_id, &Request::Status).await,
            Ok(Response::Status(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_without_crashing_the_receiver() {
    init_tracing();
    bounded(async {
        let prover = spawn_node(vec![], |_| {}).await;
        let prover_addr = prover.tcp_addr().await;
        let prover_id = prover.id();
        let (mut events, _pc, _dir) = serve_requests(prover);
        let hostile = spawn_node(vec![prover_addr], |c| {
            c.request_timeout = std::time::Duration::from_secs(5)
        })
        .await;
        wait_connected(&hostile.client, prover_id).await;
        let h = &hostile.client;

        // Over the frame limit: refused before the body is read. The sender gets a TooLarge reply, or a
        // failed request when it was still blocked writing the body it should not have sent.
        for size in [limits::MAX_REQUEST_FRAME + 1, 4 << 20] {
            match h.request_raw(prover_id, vec![0u8; size]).await {
                Ok(raw) => assert!(matches!(
                    protocol::decode::<Response>(&raw),
                    Ok(Response::Error(r)) if r.code == ErrorCode::TooLarge
                )),
                Err(NetError::RequestFailed { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        // Garbage within the limit: a Malformed error reply.
        let raw = h
            .request_raw(prover_id, b"\x9f\xff\x00garbage".to_vec())
            .await
            .unwrap();
        assert!(matches!(
            protocol::decode::<Response>(&raw),
            Ok(Response::Error(r)) if r.code == ErrorCode::Malformed
        ));
        // Under the frame limit but over the per-kind limit (a Status request padded to 8 KiB).
        #[derive(serde::Serialize)]
        struct Padded {
            version: u16,
            body: &'static str,
            pad: Vec<u8>,
        }
        let mut padded = Vec::new();
        ciborium::into_writer(
            &Padded {
                version: 1,
                body: "Status",
                pad: vec![1; 8192],
            },
            &mut padded,
        )
        .unwrap();
        let raw = h.request_raw(prover_id, padded).await.unwrap();
        assert!(matches!(
            protocol::decode::<Response>(&raw),
            Ok(Response::Error(r)) if r.code == ErrorCode::TooLarge
        ));

        // The receiver reported each violation, and still works.
        let mut violations = 0;
        while violations < 4 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await {
                Ok(Some(Event::ProtocolViolation { peer, .. })) => {
                    assert_eq!(peer, hostile.id());
                    violations += 1;
                }
                Ok(Some(_)) => {}
                other => panic!("expected 4 protocol violations, got {violations} then {other:?}"),
            }
        }
        assert!(matches!(
            h.request(prover_id, &Request::Status).await,
            Ok(Response::Status(_))
        ));
    })
    .await;
}

/// Issue 29, item 9: a node whose event channel is full dropped inbound requests, and a dropped request is
/// answered `Internal`, which a prover takes as final (it threw a finished proof away). It is answered
/// `Busy` now: the node is overloaded, retry later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item9_a_node_whose_event_channel_is_full_answers_busy_not_internal() {
    init_tracing();
    bounded(async {
        // Nobody reads the busy node's events, and its channel holds one.
        let busy = spawn_node(vec![], |c| c.event_buffer = 1).await;
        let busy_addr = busy.tcp_addr().await;
        let busy_id = busy.id();
        let asker = spawn_node(vec![busy_addr], |_| {}).await;
        wait_connected(&asker.client, busy_id).await;
        let mut codes = Vec::new();
        for _ in 0..4 {
            match asker.client.request(busy_id, &Request::Status).await {
                Err(NetError::Remote { reply, .. }) => codes.push(reply.code),
                other => panic!("nobody reads the node's events, yet it answered {other:?}"),
            }
        }
        assert!(
            codes.iter().all(|c| *c == ErrorCode::Busy),
            "a full event channel must answer Busy: {codes:?}"
        );
        drop(busy);
    })
    .await;
}
