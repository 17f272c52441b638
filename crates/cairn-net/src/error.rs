//! Typed errors. Each message says what went wrong and, where there is one, what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use crate::blob::BlobId;
use crate::protocol::{ErrorReply, ProtocolError};

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem failure.
    #[error("blob store I/O error at {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Blob not in the store.
    #[error("blob {0} is not in the store")]
    NotFound(BlobId),
    /// Content does not hash to its name; the file was removed.
    #[error("blob {id} is corrupt on disk (its content hashes to {actual}); it was removed, fetch it again")]
    Corrupt {
        /// Expected id.
        id: BlobId,
        /// What the content hashes to.
        actual: BlobId,
    },
    /// Content does not match the id the caller expected.
    #[error("content hashes to {actual}, not the expected {expected}")]
    HashMismatch {
        /// Expected.
        expected: BlobId,
        /// Actual.
        actual: BlobId,
    },
    /// Blob over the per-blob limit.
    #[error(
        "blob of {size} bytes exceeds the per-blob limit of {max} bytes; raise max_blob_bytes"
    )]
    TooLarge {
        /// Size.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// Not enough room even after evicting every unpinned blob.
    #[error(
        "blob store full: {needed} bytes needed, {pinned} bytes pinned, cap {cap} bytes; unpin blobs or raise max_total_bytes"
    )]
    Full {
        /// Bytes requested.
        needed: u64,
        /// Bytes pinned (not evictable).
        pinned: u64,
        /// Cap.
        cap: u64,
    },
    /// Refused to remove a pinned blob.
    #[error("blob {0} is pinned; unpin it before removing it")]
    Pinned(BlobId),
}

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Could not read or create the identity file.
    #[error("node identity at {path}: {reason}; delete the file to create a new identity (this changes the peer id)")]
    Identity {
        /// File.
        path: PathBuf,
        /// Cause.
        reason: String,
    },
    /// Could not build the transport or a behaviour.
    #[error("could not build the libp2p swarm: {0}")]
    Setup(String),
    /// Listening failed.
    #[error(
        "could not listen on {addr}: {reason}; is the port in use? choose another listen address"
    )]
    Listen {
        /// Address.
        addr: Multiaddr,
        /// Cause.
        reason: String,
    },
    /// A bootstrap or dial address lacks a peer id.
    #[error(
        "address {0} has no /p2p/<peer id> suffix; bootstrap and dial addresses must name the peer"
    )]
    AddressWithoutPeerId(Multiaddr),
    /// Dial failed.
    #[error("could not connect to {peer}: {reason}")]
    Dial {
        /// Peer.
        peer: PeerId,
        /// Cause.
        reason: String,
    },
    /// The event loop is not running.
    #[error("the network event loop has stopped (was `EventLoop::run` spawned, and is it still running?)")]
    EventLoopGone,
    /// Local encoding or remote decoding refused a message.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The peer answered with an error reply.
    #[error("peer {peer} refused the request: {reply}")]
    Remote {
        /// Peer.
        peer: PeerId,
        /// Its reply.
        reply: Box<ErrorReply>,
    },
    /// The peer sent a response that does not decode.
    #[error("peer {peer} sent an invalid response: {source}")]
    BadResponse {
        /// Peer.
        peer: PeerId,
        /// Cause.
        #[source]
        source: ProtocolError,
    },
    /// The request got no answer.
    #[error("request to {peer} failed: {reason}")]
    RequestFailed {
        /// Peer.
        peer: PeerId,
        /// Cause.
        reason: String,
    },
    /// No peer is subscribed to the topic yet.
    #[error("no peers subscribed to {topic} yet; wait for peers to connect (check bootstrap addresses) and retry")]
    NoGossipPeers {
        /// Topic.
        topic: String,
    },
    /// Publishing failed for another reason.
    #[error("could not publish on {topic}: {reason}")]
    Publish {
        /// Topic.
        topic: String,
        /// Cause.
        reason: String,
    },
    /// Blob store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provider does not have the blob.
    #[error("peer {peer} does not have blob {id}")]
    BlobNotFound {
        /// Peer.
        peer: PeerId,
        /// Blob.
        id: BlobId,
    },
    /// The provider is serving too many streams.
    #[error("peer {peer} is busy serving other transfers; retry later or use another provider")]
    ProviderBusy {
        /// Peer.
        peer: PeerId,
    },
    /// A chunk did not match its hash in the manifest.
    #[error("peer {peer} sent chunk {index} of blob {id} that does not match its hash")]
    CorruptChunk {
        /// Peer.
        peer: PeerId,
        /// Blob.
        id: BlobId,
        /// Chunk.
        index: u32,
    },
    /// The manifest is inconsistent, or the assembled blob did not hash to its id.
    #[error("peer {peer} sent a bad manifest for blob {id}: {reason}")]
    BadManifest {
        /// Peer.
        peer: PeerId,
        /// Blob.
        id: BlobId,
        /// Cause.
        reason: String,
    },
    /// A transfer step timed out.
    #[error("timed out after {after:?} waiting for {what} of blob {id} from {peer}")]
    Timeout {
        /// Peer.
        peer: PeerId,
        /// Blob.
        id: BlobId,
        /// Step.
        what: &'static str,
        /// Limit.
        after: Duration,
    },
    /// The blob stream failed.
    #[error("blob stream with {peer} failed: {reason}")]
    Stream {
        /// Peer.
        peer: PeerId,
        /// Cause.
        reason: String,
    },
    /// Every provider failed.
    #[error("could not fetch blob {id} from any of {} provider(s): {}", failures.len(), summarize(failures))]
    AllProvidersFailed {
        /// Blob.
        id: BlobId,
        /// Each provider and why it failed.
        failures: Vec<(PeerId, String)>,
    },
    /// No provider given.
    #[error("no providers given for blob {0}")]
    NoProviders(BlobId),
    /// A DHT operation was asked of a node running without Kademlia.
    #[error(
        "Kademlia is disabled on this node (Config::kademlia = false); pass providers explicitly"
    )]
    KademliaDisabled,
    /// A blocking task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summarize(failures: &[(PeerId, String)]) -> String {
    failures
        .iter()
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}
