use std::future::Future;
use std::time::Duration;

use cairn_net::protocol::{NodeCapacity, NodeStatus, Request, Response};
use cairn_net::{Client, Config, Event, Multiaddr, Network, PeerId};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// Every test body runs under this bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

pub async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test exceeded its time bound");
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cairn_net=info".into()),
        )
        .with_test_writer()
        .try_init();
}

#[derive(Debug)]
pub struct Node {
    pub client: Client,
    pub events: mpsc::Receiver<Event>,
    pub dir: TempDir,
}

impl Node {
    pub fn id(&self) -> PeerId {
        self.client.local_peer_id()
    }

    /// The TCP listen address, with /p2p.
    pub async fn tcp_addr(&self) -> Multiaddr {
        self.client
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.to_string().contains("/tcp/"))
            .expect("a TCP listen address")
    }

    pub async fn quic_addr(&self) -> Multiaddr {
        self.client
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.to_string().contains("/quic-v1"))
            .expect("a QUIC listen address")
    }

    /// Waits for an event that `f` maps to `Some`, skipping others.
    pub async fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&Event) -> Option<T>) -> T {
        let fut = async {
            loop {
                let e = self.events.recv().await.expect("event channel closed");
                if let Some(t) = f(&e) {
                    return t;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::loopback(dir);
    c.transfer.chunk_size = 64 * 1024;
    c.transfer.chunk_timeout = Duration::from_secs(3);
    c.transfer.base_timeout = Duration::from_secs(10);
    c
}

pub async fn spawn_node(bootstrap: Vec<Multiaddr>, tweak: impl FnOnce(&mut Config)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    spawn_node_in(dir, bootstrap, tweak).await
}

pub async fn spawn_node_in(
    dir: TempDir,
    bootstrap: Vec<Multiaddr>,
    tweak: impl FnOnce(&mut Config),
) -> Node {
    let mut config = test_config(dir.path());
    config.bootstrap = bootstrap;
    tweak(&mut config);
    let (client, events, event_loop) = Network::new(config).await.expect("network starts");
    tokio::spawn(event_loop.run());
    Node {
        client,
        events,
        dir,
    }
}

pub async fn wait_connected(client: &Client, peer: PeerId) {
    let fut = async {
        loop {
            if client.connected_peers().await.unwrap().contains(&peer) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{} never connected to {peer}", client.local_peer_id()));
}

pub fn capacity() -> NodeCapacity {
    NodeCapacity {
        memory_bytes: 4 << 30,
        max_po2: 20,
        cycles_per_sec: 40_000,
        slots: 1,
        recursion: false,
    }
}

/// Answers requests like a trivial prover; forwards every other event to the returned channel.
pub fn serve_requests(
    mut node: Node,
) -> (mpsc::UnboundedReceiver<Event>, Client, tempfile::TempDir) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = node.client.clone();
    let dir = std::mem::replace(&mut node.dir, tempfile::tempdir().unwrap());
    tokio::spawn(async move {
        while let Some(event) = node.events.recv().await {
            match event {
                Event::InboundRequest {
                    request, responder, ..
                } => responder.respond(match request {
                    Request::Offer(o) if o.deadline_ms == 0 => Response::Decline {
                        reason: "deadline already passed".into(),
                        kind: None,
                    },
                    Request::Offer(_) => Response::Accept,
                    Request::Status => Response::Status(NodeStatus {
                        capacity: capacity(),
                        free_slots: 1,
                        benchmark: None,
                    }),
                    _ => Response::Ack,
                }),
                other => {
                    let _ = tx.send(other);
                }
            }
        }
    });
    (rx, client, dir)
}

/// Deterministic pseudo-random bytes.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}
