//! Cairn's networking layer: how prover nodes and clients find each other, talk, and move data.
//!
//! # Bird's-eye view
//!
//! - **One task owns the network.** [`Network::new`] builds a libp2p swarm (TCP and QUIC, Noise, Yamux;
//!   connection limits, identify, ping, Kademlia, optional mDNS, gossipsub, request-response, streams) and
//!   returns a [`Client`] handle, a channel of [`Event`]s, and the [`EventLoop`] that owns the swarm. Spawn
//!   `event_loop.run()`; everything else goes through cloned `Client`s.
//! - **Control plane.** Gossip carries capacity and job announcements ([`Topic`]), signed by their author
//!   and validated (size, version, decoding) *before* they are forwarded: a bad message is rejected and
//!   reported as [`Event::GossipRejected`]. Request-response carries task offers, results, cancels,
//!   heartbeats and status ([`protocol::Request`], [`protocol::Response`]); inbound requests arrive as
//!   [`Event::InboundRequest`] with a [`Responder`].
//! - **Protocol.** [`protocol`] holds versioned serde types in an envelope with explicit size limits per
//!   message kind, checked before decoding. Unknown versions get a polite
//!   [`ErrorCode::UnsupportedVersion`](protocol::ErrorCode) reply listing the versions spoken; malformed or
//!   oversized messages are refused and reported as [`Event::ProtocolViolation`], never a crash.
//! - **Data plane.** Blobs (programs, inputs, segments, receipts) are named by their SHA-256
//!   ([`BlobId`]) and kept in a disk-backed [`BlobStore`] with a size cap, LRU eviction and pinning.
//!   Every node serves the blobs it holds; [`Client::fetch_blob`] pulls one from a list of providers over
//!   libp2p streams in chunks, checks each chunk against a manifest, resumes partial downloads (even after a
//!   restart), fails over to the next provider, and verifies the whole blob before storing it.
//!
//! Nothing here knows about RISC Zero or scheduling: ids are integers, hashes are bytes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_net::NetError> {
//! use cairn_net::{Config, Network, Event, protocol::Response};
//! let (client, mut events, event_loop) = Network::new(Config::loopback("/tmp/cairn-node")).await?;
//! tokio::spawn(event_loop.run());
//! while let Some(event) = events.recv().await {
//!     if let Event::InboundRequest { responder, .. } = event {
//!         responder.respond(Response::Ack);
//!     }
//! }
//! # Ok(()) }
//! ```

mod blob;
mod codec;
mod connmgr;
mod error;
mod guard;
mod hosts;
pub use hosts::{CLAIMS_PER_IP, CLAIM_TTL, UNPROVEN_CLAIMS_PER_IP};
// Entry points for the fuzz targets of crates/cairn-fuzz (not behind a feature: a feature only the fuzz crate
// enables would make `cargo build -p cairn-cli` and a workspace build compile this crate twice).
#[doc(hidden)]
pub mod fuzz;
mod identity;
mod kademlia;
mod network;
mod outbox;
pub mod protocol;
mod reach;
mod store;
mod transfer;

pub use blob::{BlobId, BlobRef, ParseBlobIdError};
pub use connmgr::TrimLimits;
pub use error::{NetError, StoreError};
pub use guard::InboundLimits;
pub use identity::Identity;
pub use libp2p::{Multiaddr, PeerId};
pub use network::{Client, Config, ConnectionLimits, Event, EventLoop, Network, Responder, Topic};
pub use reach::{Reachability, ReachabilityStatus, RelayServerConfig, RelayState};
pub use store::{BlobStore, Manifest, Retention, StoreConfig};
pub use transfer::{FetchedBlob, TransferConfig, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
#[doc(hidden)]
pub use transfer::{HookState, TestHooks};
