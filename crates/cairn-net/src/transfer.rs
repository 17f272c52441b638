//! The data plane: blobs moved over libp2p streams in verified chunks.
//!
//! Protocol `/cairn/blob/1`, one stream per fetch attempt. The client sends length-prefixed CBOR requests
//! and the server answers each in turn:
//! 1. `Manifest { id, chunk_size }` -> `Manifest` (size + SHA-256 of every chunk), `NotFound` or `Busy`.
//! 2. `Chunks { id, chunk_size, start, end }` -> `ChunksFollow`, then `end - start` raw frames
//!    `[u32 length][bytes]`, each checked by the client against the manifest before it is written.
//!
//! Downloads land in `partial/<id>.data` next to `partial/<id>.manifest`. On a new attempt (after a cut
//! stream, a lying provider, or a restart) the client re-hashes the chunks already on disk and requests only
//! the missing ones. When all chunks are there, the whole file is hashed against the blob id and moved into
//! the store. Timeouts: one per chunk, and one for the whole attempt that grows with the bytes still needed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncSeekExt, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::blob::{sha256, BlobId};
use crate::codec::{read_frame, write_frame};
use crate::error::{NetError, StoreError};
use crate::store::{read_full, BlobStore, Manifest, Retention};

pub(crate) const BLOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/blob/1");
const BLOB_PROTOCOL_VERSION: u16 = 1;
const MAX_BLOB_REQUEST: usize = 1024;
/// Smallest and largest chunk sizes a server accepts.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// See [`MIN_CHUNK_SIZE`].
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// Transfer limits and timeouts.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// Chunk size requested by this node's fetches (between [`MIN_CHUNK_SIZE`] and [`MAX_CHUNK_SIZE`]).
    pub chunk_size: u32,
    /// Longest wait for one chunk (or for opening a stream / receiving a manifest).
    pub chunk_timeout: Duration,
    /// Fixed part of an attempt's overall timeout.
    pub base_timeout: Duration,
    /// Slowest acceptable throughput, bytes per second: the overall timeout is
    /// `base_timeout + bytes_missing / min_throughput`.
    pub min_throughput: u64,
    /// Streams served at once; further requests get `Busy`.
    pub max_concurrent_serves: usize,
    /// Fetches run at once by this node; further fetches wait.
    pub max_concurrent_fetches: usize,
    /// How long a served stream may sit idle between requests.
    pub serve_idle_timeout: Duration,
    /// Rounds over the providers before a fetch gives up. A provider whose stream broke, timed out or was
    /// busy is tried again next round (resuming from the chunks already verified); one that lacks the blob or
    /// sent bad data is not.
    pub fetch_rounds: u32,
    /// Pause before the second round; doubled before each later one.
    pub retry_backoff: Duration,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            chunk_size: 256 * 1024,
            chunk_timeout: Duration::from_secs(15),
            base_timeout: Duration::from_secs(30),
            min_throughput: 256 * 1024,
            max_concurrent_serves: 16,
            max_concurrent_fetches: 4,
            serve_idle_timeout: Duration::from_secs(30),
            fetch_rounds: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

impl TransferConfig {
    /// Overall timeout of an attempt that still needs `bytes`.
    pub fn overall_timeout(&self, bytes: u64) -> Duration {
        self.base_timeout
            + Duration::from_secs_f64(bytes as f64 / self.min_throughput.max(1) as f64)
    }
}

/// Fault injection for tests of the serving side. Not part of the stable API.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct TestHooks(Arc<Mutex<HookState>>);

/// See [`TestHooks`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookState {
    /// Drop each served stream after sending this many chunks on it.
    pub cut_after_chunks: Option<u32>,
    /// Flip a byte of this chunk index whenever it is served.
    pub corrupt_chunk: Option<u32>,
    /// Flip a byte of this chunk index *and* advertise the hash of the flipped chunk in the manifest, so
    /// every chunk check passes and only the whole-blob hash catches the lie.
    pub lie_in_manifest: Option<u32>,
    /// Fetching side: after receiving this many chunks of a range, stop reading the stream (and hold it open)
    /// for an hour, like a peer that asks for a blob and then reads nothing.
    pub stall_reading_after_chunks: Option<u32>,
    /// Serving side: wait this many milliseconds before sending each chunk, like a peer that trickles a
    /// blob out to hold the fetcher's transfer slot (issue 29, item 2).
    pub chunk_delay_ms: Option<u32>,
}

impl TestHooks {
    /// Replaces the hook state.
    pub fn set(&self, state: HookState) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }
    fn get(&self) -> HookState {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BlobEnvelope<T> {
    version: u16,
    body: T,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BlobRequest {
    Manifest {
        id: BlobId,
        chunk_size: u32,
    },
    Chunks {
        id: BlobId,
        chunk_size: u32,
        start: u32,
        end: u32,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BlobResponse {
    Manifest(Manifest),
    ChunksFollow,
    NotFound,
    Busy,
    Error(String),
}

pub(crate) fn encode<T: Serialize>(body: T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing CBOR into a Vec cannot fail for these types.
    let _ = ciborium::into_writer(
        &BlobEnvelope {
            version: BLOB_PROTOCOL_VERSION,
            body,
        },
        &mut out,
    );
    out
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let env: BlobEnvelope<T> = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
    if env.version != BLOB_PROTOCOL_VERSION {
        return Err(format!(
            "blob protocol version {} not supported (supported: [{BLOB_PROTOCOL_VERSION}])",
            env.version
        ));
    }
    Ok(env.body)
}

/// Largest manifest frame for blobs up to `max_blob` in chunks of `chunk_size`.
pub(crate) fn manifest_frame_limit(max_blob: u64, chunk_size: u32) -> usize {
    let chunks = Manifest::chunk_count(max_blob, chunk_size) as usize;
    4096 + chunks * 40
}

impl BlobRequest {
    fn blob(&self) -> (BlobId, u32) {
        match self {
            BlobRequest::Manifest { id, chunk_size }
            | BlobRequest::Chunks { id, chunk_size, .. } => (*id, *chunk_size),
        }
    }
}

/// Serving side: decodes a peer's request and checks its chunk size.
pub(crate) fn parse_request(frame: &[u8]) -> Result<BlobRequest, String> {
    let request: BlobRequest = decode(frame)?;
    let (_, chunk_size) = request.blob();
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) || !chunk_size.is_power_of_two() {
        return Err(format!(
            "chunk size {chunk_size} is not a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        ));
    }
    Ok(request)
}

/// Serving side: whether `start..end` names chunks of a blob of `chunks` chunks.
pub(crate) fn check_range(start: u32, end: u32, chunks: usize) -> Result<(), String> {
    if start >= end || end as usize > chunks {
        return Err(format!(
            "chunk range {start}..{end} invalid for {chunks} chunks"
        ));
    }
    Ok(())
}

/// What the fetching side asked for, to check a manifest against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub(crate) peer: PeerId,
    pub(crate) id: BlobId,
    pub(crate) chunk_size: u32,
    /// The size the blob was announced at, if any.
    pub(crate) expected_size: Option<u64>,
    /// The local store's largest blob.
    pub(crate) max_blob_bytes: u64,
}

/// Fetching side: decodes a peer's answer to a manifest request and checks that it describes the blob asked
/// for (id, chunk size, chunk count, announced size) within the store's cap, before any data moves.
// The fetch path's own error type, as the async fetch returned it before this was pulled out of it.
#[allow(clippy::result_large_err)]
pub(crate) fn accept_manifest(frame: &[u8], want: Wanted) -> Result<Manifest, NetError> {
    let Wanted {
        peer,
        id,
        chunk_size,
        expected_size,
        max_blob_bytes,
    } = want;
    let bad = |reason: String| NetError::BadManifest { peer, id, reason };
    let manifest = match decode::<BlobResponse>(frame).map_err(bad)? {
        BlobResponse::Manifest(m) => m,
        BlobResponse::NotFound => return Err(NetError::BlobNotFound { peer, id }),
        BlobResponse::Busy => return Err(NetError::ProviderBusy { peer }),
        BlobResponse::Error(e) => return Err(NetError::Stream { peer, reason: e }),
        BlobResponse::ChunksFollow => return Err(bad("unexpected ChunksFollow".into())),
    };
    if manifest.id != id
        || manifest.chunk_size != chunk_size
        || manifest.chunks.len() as u64 != Manifest::chunk_count(manifest.size, chunk_size)
    {
        return Err(bad(format!(
            "manifest does not describe blob {id} in chunks of {chunk_size} bytes"
        )));
    }
    if let Some(n) = expected_size.filter(|n| *n != manifest.size) {
        return Err(bad(format!(
            "the blob is {} bytes, not the {n} bytes it was announced as",
            manifest.size
        )));
    }
    if manifest.size > max_blob_bytes {
        return Err(NetError::Store(StoreError::TooLarge {
            size: manifest.size,
            max: max_blob_bytes,
        }));
    }
    Ok(manifest)
}

// ---------------------------------------------------------------------------------------------------
// Serving

pub(crate) async fn serve_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    store: Arc<BlobStore>,
    config: TransferConfig,
    hooks: TestHooks,
) {
    let permits = Arc::new(Semaphore::new(config.max_concurrent_serves));
    while let Some((peer, stream)) = incoming.next().await {
        let permit = permits.clone().try_acquire_owned().ok();
        let span = tracing::debug_span!(target: "cairn_net::transfer", "serve", %peer);
        tokio::spawn(
            serve_stream(stream, permit, store.clone(), config.clone(), hooks.clone())
                .instrument(span),
        );
    }
}

/// Writes one frame to a peer fetching from this node, within the stream's idle timeout plus the frame's
/// length at the slowest throughput this node accepts ([`TransferConfig::min_throughput`], which its own
/// fetches demand of others too). A peer that asks for chunks and then stops reading (or reads a few bytes a
/// second) loses the stream and its serving permit instead of holding one of the few for as long as it likes.
async fn send(stream: &mut Stream, config: &TransferConfig, frame: &[u8]) -> std::io::Result<()> {
    let limit = config.serve_idle_timeout
        + Duration::from_secs_f64(frame.len() as f64 / config.min_throughput.max(1) as f64);
    match tokio::time::timeout(limit, write_frame(stream, frame)).await {
        Ok(written) => written,
        Err(_) => {
            tracing::debug!(
                bytes = frame.len(),
                ?limit,
                "a peer read too slowly; closing its blob stream"
            );
            Err(std::io::ErrorKind::TimedOut.into())
        }
    }
}

async fn serve_stream(
    mut stream: Stream,
    permit: Option<OwnedSemaphorePermit>,
    store: Arc<BlobStore>,
    config: TransferConfig,
    hooks: TestHooks,
) {
    let mut sent = 0u32;
    loop {
        let frame = match tokio::time::timeout(
            config.serve_idle_timeout,
            read_frame(&mut stream, MAX_BLOB_REQUEST),
        )
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::debug!(error = %e, "blob stream ended");
                }
                return;
            }
            Err(_) => return,
        };
        if permit.is_none() {
            let _ = send(&mut stream, &config, &encode(BlobResponse::Busy)).await;
            let _ = stream.close().await;
            return;
        }
        let request = match parse_request(&frame) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut stream, &config, &encode(BlobResponse::Error(e))).await;
                let _ = stream.close().await;
                return;
            }
        };
        let (id, chunk_size) = request.blob();
        let manifest = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.manifest(&id, chunk_size)).await
        };
        let manifest = match manifest {
            Ok(Ok(m)) => m,
            Ok(Err(StoreError::NotFound(_) | StoreError::Corrupt { .. })) => {
                let _ = send(&mut stream, &config, &encode(BlobResponse::NotFound)).await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(blob = %id.short(), error = %e, "cannot serve blob");
                let _ = send(
                    &mut stream,
                    &config,
                    &encode(BlobResponse::Error(e.to_string())),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "manifest task failed");
                return;
            }
        };
        match request {
            BlobRequest::Manifest { .. } => {
                let mut manifest = (*manifest).clone();
                if let Some(k) = hooks.get().lie_in_manifest {
                    let chunk = {
                        let (store, m) = (store.clone(), Arc::new(manifest.clone()));
                        tokio::task::spawn_blocking(move || store.read_chunk(&m, k)).await
                    };
                    if let Ok(Ok(mut chunk)) = chunk {
                        chunk[0] ^= 0xff;
                        manifest.chunks[k as usize] = sha256(&chunk);
                    }
                }
                let resp = encode(BlobResponse::Manifest(manifest));
                if send(&mut stream, &config, &resp).await.is_err() {
                    return;
                }
            }
            BlobRequest::Chunks { start, end, .. } => {
                if let Err(msg) = check_range(start, end, manifest.chunks.len()) {
                    let _ = send(&mut stream, &config, &encode(BlobResponse::Error(msg))).await;
                    return;
                }
                if send(&mut stream, &config, &encode(BlobResponse::ChunksFollow))
                    .await
                    .is_err()
                {
                    return;
                }
                for index in start..end {
                    let hook = hooks.get();
                    if hook.cut_after_chunks == Some(sent) {
                        tracing::debug!(sent, "test hook: cutting the stream");
                        return;
                    }
                    if let Some(ms) = hook.chunk_delay_ms {
                        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
                    }
                    let chunk = {
                        let (store, m) = (store.clone(), manifest.clone());
                        tokio::task::spawn_blocking(move || store.read_chunk(&m, index)).await
                    };
                    let mut chunk = match chunk {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => {
                            tracing::warn!(blob = %id.short(), index, error = %e, "cannot read chunk");
                            return;
                        }
                        Err(_) => return,
                    };
                    if (hook.corrupt_chunk == Some(index) || hook.lie_in_manifest == Some(index))
                        && !chunk.is_empty()
                    {
                        chunk[0] ^= 0xff;
                    }
                    if send(&mut stream, &config, &chunk).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Fetching

/// The outcome of a successful [`crate::Client::fetch_blob`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedBlob {
    /// Blob.
    pub id: BlobId,
    /// Path of the verified blob in the store.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Provider that completed the transfer (`None` if the blob was already stored).
    pub provider: Option<PeerId>,
    /// Chunks received over the network during this call.
    pub chunks_downloaded: u32,
    /// Chunks found valid on disk from an earlier, interrupted download.
    pub chunks_resumed: u32,
    /// Providers that failed before one succeeded, and why (for the caller's ledger).
    pub failures: Vec<(PeerId, String)>,
}

pub(crate) struct Fetcher {
    control: libp2p_stream::Control,
    store: Arc<BlobStore>,
    config: TransferConfig,
    permits: Semaphore,
    in_flight: Mutex<HashMap<BlobId, Arc<tokio::sync::Mutex<()>>>>,
    hooks: TestHooks,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Stats {
    downloaded: u32,
    resumed: Option<u32>,
}

impl Fetcher {
    pub(crate) fn new(
        control: libp2p_stream::Control,
        store: Arc<BlobStore>,
        config: TransferConfig,
        hooks: TestHooks,
    ) -> Self {
        let permits = Semaphore::new(config.max_concurrent_fetches.max(1));
        Self {
            control,
            store,
            config,
            permits,
            in_flight: Mutex::new(HashMap::new()),
            hooks,
        }
    }

    fn already_stored(&self, id: BlobId, retention: Retention) -> Option<FetchedBlob> {
        let path = self.store.path(&id)?;
        if retention == Retention::Pinned && self.store.pin(&id).is_err() {
            return None;
        }
        Some(FetchedBlob {
            id,
            path,
            size: self.store.size(&id).unwrap_or(0),
            provider: None,
            chunks_downloaded: 0,
            chunks_resumed: 0,
            failures: Vec::new(),
        })
    }

    /// Fetches blob `id`; with `expected_size`, a provider whose manifest says another size is refused
    /// before a byte of the blob is downloaded (a peer cannot announce a small blob and send a large one).
    pub(crate) async fn fetch(
        &self,
        providers: &[PeerId],
        id: BlobId,
        retention: Retention,
        expected_size: Option<u64>,
    ) -> Result<FetchedBlob, NetError> {
        if let Some(done) = self.already_stored(id, retention) {
            return Ok(done);
        }
        if providers.is_empty() {
            return Err(NetError::NoProviders(id));
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| NetError::Internal("fetch semaphore closed".into()))?;
        let lock = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let result = self
            .fetch_locked(providers, id, retention, expected_size)
            .await;
        let busy: Vec<BlobId> = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.remove(&id);
            in_flight.keys().copied().collect()
        };
        if result.is_err() {
            // A failed fetch may leave its partial download behind (kept to be resumed): keep what all of
            // them hold within the store's budget for unfinished downloads now, not at the next restart.
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.prune_unfinished(&busy));
        }
        result
    }

    async fn fetch_locked(
        &self,
        providers: &[PeerId],
        id: BlobId,
        retention: Retention,
        expected_size: Option<u64>,
    ) -> Result<FetchedBlob, NetError> {
        if let Some(done) = self.already_stored(id, retention) {
            return Ok(done);
        }
        let mut stats = Stats::default();
        let mut failures = Vec::new();
        let mut candidates: Vec<PeerId> = providers.to_vec();
        let mut backoff = self.config.retry_backoff;
        for round in 0..self.config.fetch_rounds.max(1) {
            if round > 0 {
                if candidates.is_empty() {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let mut again = Vec::new();
            for peer in candidates {
                let span = tracing::info_span!(target: "cairn_net::transfer", "fetch", blob = %id.short(), %peer, round);
                match self
                    .attempt(peer, id, retention, expected_size, &mut stats)
                    .instrument(span)
                    .await
                {
                    Ok((path, size)) => {
                        return Ok(FetchedBlob {
                            id,
                            path,
                            size,
                            provider: Some(peer),
                            chunks_downloaded: stats.downloaded,
                            chunks_resumed: stats.resumed.unwrap_or(0),
                            failures,
                        });
                    }
                    // Local problems are not the provider's fault: stop here.
                    Err(e @ NetError::Store(_)) => return Err(e),
                    Err(e) => {
                        let transient = matches!(
                            e,
                            NetError::Stream { .. }
                                | NetError::Timeout { .. }
                                | NetError::ProviderBusy { .. }
                        );
                        tracing::warn!(target: "cairn_net::transfer", blob = %id.short(), %peer, error = %e, transient, "provider failed; trying the next");
                        failures.push((peer, e.to_string()));
                        if transient {
                            again.push(peer);
                        }
                    }
                }
            }
            candidates = again;
        }
        Err(NetError::AllProvidersFailed { id, failures })
    }

    async fn attempt(
        &self,
        peer: PeerId,
        id: BlobId,
        retention: Retention,
        expected_size: Option<u64>,
        stats: &mut Stats,
    ) -> Result<(PathBuf, u64), NetError> {
        let cfg = &self.config;
        let timeout = |what: &'static str| NetError::Timeout {
            peer,
            id,
            what,
            after: cfg.chunk_timeout,
        };
        let stream_err = |e: std::io::Error| NetError::Stream {
            peer,
            reason: e.to_string(),
        };
        let mut control = self.control.clone();
        let mut stream =
            tokio::time::timeout(cfg.chunk_timeout, control.open_stream(peer, BLOB_PROTOCOL))
                .await
                .map_err(|_| timeout("a stream"))?
                .map_err(|e| NetError::Stream {
                    peer,
                    reason: e.to_string(),
                })?;

        // 1. Manifest.
        let req = encode(BlobRequest::Manifest {
            id,
            chunk_size: cfg.chunk_size,
        });
        let max_blob = self.store.config().max_blob_bytes;
        let manifest = tokio::time::timeout(cfg.chunk_timeout, async {
            write_frame(&mut stream, &req).await?;
            read_frame(&mut stream, manifest_frame_limit(max_blob, cfg.chunk_size)).await
        })
        .await
        .map_err(|_| timeout("the manifest"))?
        .map_err(stream_err)?;
        let manifest = accept_manifest(
            &manifest,
            Wanted {
                peer,
                id,
                chunk_size: cfg.chunk_size,
                expected_size,
                max_blob_bytes: max_blob,
            },
        )?;
        let bad = |reason: String| NetError::BadManifest { peer, id, reason };

        // 2. What is already on disk.
        let (data_path, manifest_path) = self.store.partial_paths(&id);
        let have = {
            let (d, mp, m) = (data_path.clone(), manifest_path.clone(), manifest.clone());
            tokio::task::spawn_blocking(move || prepare_partial(&d, &mp, &m))
                .await
                .map_err(|e| NetError::Internal(e.to_string()))?
                .map_err(NetError::Store)?
        };
        let on_disk = have.iter().filter(|h| **h).count() as u32;
        stats.resumed.get_or_insert(on_disk);
        let missing_bytes: u64 = (0..manifest.chunks.len() as u32)
            .filter(|i| !have[*i as usize])
            .map(|i| manifest.chunk_len(i) as u64)
            .sum();
        tracing::debug!(
            chunks = manifest.chunks.len(),
            on_disk,
            missing_bytes,
            "manifest received"
        );

        // 3. Missing chunks, in contiguous ranges.
        let overall = cfg.overall_timeout(missing_bytes);
        let download = async {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&data_path)
                .await
                .map_err(|e| {
                    NetError::Store(StoreError::Io {
                        path: data_path.clone(),
                        source: e,
                    })
                })?;
            for (start, end) in missing_ranges(&have) {
                let req = encode(BlobRequest::Chunks {
                    id,
                    chunk_size: cfg.chunk_size,
                    start,
                    end,
                });
                let header = tokio::time::timeout(cfg.chunk_timeout, async {
                    write_frame(&mut stream, &req).await?;
                    read_frame(&mut stream, 4096).await
                })
                .await
                .map_err(|_| timeout("a chunk range"))?
                .map_err(stream_err)?;
                match decode::<BlobResponse>(&header).map_err(bad)? {
                    BlobResponse::ChunksFollow => {}
                    BlobResponse::NotFound => return Err(NetError::BlobNotFound { peer, id }),
                    BlobResponse::Busy => return Err(NetError::ProviderBusy { peer }),
                    BlobResponse::Error(e) => return Err(NetError::Stream { peer, reason: e }),
                    BlobResponse::Manifest(_) => return Err(bad("unexpected manifest".into())),
                }
                for index in start..end {
                    if self
                        .hooks
                        .get()
                        .stall_reading_after_chunks
                        .is_some_and(|n| index - start >= n)
                    {
                        tracing::debug!(index, "test hook: reading nothing more");
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let len = manifest.chunk_len(index);
                    let chunk =
                        tokio::time::timeout(cfg.chunk_timeout, read_frame(&mut stream, len))
                            .await
                            .map_err(|_| timeout("a chunk"))?
                            .map_err(stream_err)?;
                    if chunk.len() != len || sha256(&chunk) != manifest.chunks[index as usize] {
                        return Err(NetError::CorruptChunk { peer, id, index });
                    }
                    let io = |e| {
                        NetError::Store(StoreError::Io {
                            path: data_path.clone(),
                            source: e,
                        })
                    };
                    file.seek(std::io::SeekFrom::Start(manifest.chunk_offset(index)))
                        .await
                        .map_err(io)?;
                    file.write_all(&chunk).await.map_err(io)?;
                    // Hand the write to the OS before counting the chunk: if the next one fails, this one
                    // is on disk for the resume.
                    file.flush().await.map_err(|e| {
                        NetError::Store(StoreError::Io {
                            path: data_path.clone(),
                            source: e,
                        })
                    })?;
                    stats.downloaded += 1;
                }
            }
            file.sync_data().await.map_err(|e| {
                NetError::Store(StoreError::Io {
                    path: data_path.clone(),
                    source: e,
                })
            })?;
            Ok::<_, NetError>(())
        };
        tokio::time::timeout(overall, download)
            .await
            .map_err(|_| NetError::Timeout {
                peer,
                id,
                what: "the whole transfer",
                after: overall,
            })??;
        let _ = stream.close().await;

        // 4. Whole-blob check and move into the store.
        let store = self.store.clone();
        let d = data_path.clone();
        let imported =
            tokio::task::spawn_blocking(move || store.import_verified(&d, id, retention))
                .await
                .map_err(|e| NetError::Internal(e.to_string()))?;
        match imported {
            Ok(_) => {
                let _ = tokio::fs::remove_file(&manifest_path).await;
                tracing::info!(
                    size = manifest.size,
                    downloaded = stats.downloaded,
                    "blob fetched and verified"
                );
                Ok((self.store.blob_path(&id), manifest.size))
            }
            Err(StoreError::HashMismatch { actual, .. }) => {
                // Every chunk matched the manifest, so the manifest itself lied.
                let _ = tokio::fs::remove_file(&data_path).await;
                let _ = tokio::fs::remove_file(&manifest_path).await;
                Err(bad(format!("assembled content hashes to {actual}")))
            }
            Err(e) => Err(NetError::Store(e)),
        }
    }
}

/// Ranges `[start, end)` of chunks not on disk.
fn missing_ranges(have: &[bool]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < have.len() {
        if have[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < have.len() && !have[i] {
            i += 1;
        }
        out.push((start as u32, i as u32));
    }
    out
}

/// Makes the partial file match `manifest` and returns which chunks it already holds (re-hashed, so a crash
/// between writing and syncing never counts a bad chunk as done).
pub(crate) fn prepare_partial(
    data_path: &std::path::Path,
    manifest_path: &std::path::Path,
    manifest: &Manifest,
) -> Result<Vec<bool>, StoreError> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let saved: Option<Manifest> = std::fs::read(manifest_path)
        .ok()
        .and_then(|b| ciborium::from_reader(b.as_slice()).ok());
    let n = manifest.chunks.len();
    if saved.as_ref() != Some(manifest) || !data_path.exists() {
        if saved.is_some() {
            tracing::info!("partial download belongs to a different manifest; starting over");
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(manifest, &mut bytes)
            .map_err(|e| io(manifest_path)(std::io::Error::other(e.to_string())))?;
        let tmp = manifest_path.with_extension("manifest.tmp");
        std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, manifest_path).map_err(io(manifest_path))?;
        let f = std::fs::File::create(data_path).map_err(io(data_path))?;
        f.set_len(manifest.size).map_err(io(data_path))?;
        return Ok(vec![false; n]);
    }
    let mut f = std::fs::File::open(data_path).map_err(io(data_path))?;
    let mut buf = vec![0u8; manifest.chunk_size as usize];
    let mut have = vec![false; n];
    for (i, h) in have.iter_mut().enumerate() {
        let len = manifest.chunk_len(i as u32);
        let got = read_full(&mut f, &mut buf[..len]).map_err(io(data_path))?;
        *h = got == len && sha256(&buf[..len]) == manifest.chunks[i];
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(missing_ranges(&[]), vec![]);
        assert_eq!(missing_ranges(&[true, true]), vec![]);
        assert_eq!(
            missing_ranges(&[false, true, false, false, true, false]),
            vec![(0, 1), (2, 4), (5, 6)]
        );
    }

    #[test]
    fn overall_timeout_scales_with_size() {
        let c = TransferConfig::default();
        assert!(c.overall_timeout(1 << 30) > c.overall_timeout(1 << 20));
        assert_eq!(c.overall_timeout(0), c.base_timeout);
    }
}
