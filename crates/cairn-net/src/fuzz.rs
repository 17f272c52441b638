//! Entry points for Cairn's fuzz targets (`crates/cairn-fuzz`; doc-hidden, not part of the API): the
//! decoders and checks a peer's bytes reach in this crate, called as the node calls them, and seed inputs
//! made of real messages. Each entry returns what the node would do with the bytes (`Err` is a refusal, the
//! expected answer to most inputs); a panic, a hang or an allocation out of proportion is the bug a fuzzer
//! looks for.

use std::sync::Arc;

use futures::executor::block_on;
use libp2p::request_response::Codec;
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use crate::codec::{read_frame, FrameCodec};
use crate::protocol::{self, *};
use crate::store::{BlobStore, Manifest, Retention, StoreConfig};
use crate::transfer::{
    self, accept_manifest, check_range, parse_request, prepare_partial, BlobRequest, BlobResponse,
    Wanted,
};
use crate::{BlobId, BlobRef};

/// The codec with the limits the node runs with.
fn codec() -> (FrameCodec, StreamProtocol) {
    let codec = FrameCodec {
        max_request: limits::MAX_REQUEST_FRAME,
        max_response: limits::MAX_RESPONSE_FRAME,
    };
    (codec, StreamProtocol::new("/cairn/task/1"))
}

/// A request-response request frame as the node's codec reads it from a stream (length prefix checked
/// before the body is read), then decoded and checked as the event loop does.
pub fn request_frame(data: &[u8]) -> Result<(), String> {
    let (mut codec, proto) = codec();
    let frame = block_on(codec.read_request(&proto, &mut futures::io::Cursor::new(data)))
        .map_err(|e| e.to_string())?;
    match frame {
        crate::codec::Frame::Data(bytes) => request(&bytes),
        crate::codec::Frame::Oversized { len, max } => Err(format!("oversized: {len} > {max}")),
    }
}

/// A response frame as the requesting side's codec reads it.
pub fn response_frame(data: &[u8]) -> Result<(), String> {
    let (mut codec, proto) = codec();
    let frame = block_on(codec.read_response(&proto, &mut futures::io::Cursor::new(data)))
        .map_err(|e| e.to_string())?;
    match frame {
        crate::codec::Frame::Data(bytes) => response(&bytes),
        crate::codec::Frame::Oversized { len, max } => Err(format!("oversized: {len} > {max}")),
    }
}

/// Decodes `data` as a `T` and, where it is accepted, checks that it encodes again within its limits and
/// decodes to the same value: a message the node accepts must be one it could have sent.
fn round_trip<T: WireMessage + PartialEq + std::fmt::Debug>(data: &[u8]) -> Result<T, String> {
    let msg: T = protocol::decode(data).map_err(|e| e.to_string())?;
    let again = protocol::encode(&msg)
        .unwrap_or_else(|e| panic!("an accepted {} does not encode again: {e}", T::KIND));
    let back: T = protocol::decode(&again)
        .unwrap_or_else(|e| panic!("a re-encoded {} is refused: {e}", T::KIND));
    assert_eq!(back, msg, "{} changes in a round trip", T::KIND);
    Ok(msg)
}

/// A request's body (the bytes inside a frame).
pub fn request(data: &[u8]) -> Result<(), String> {
    let req: Request = round_trip(data)?;
    if let Request::Result(result) = &req {
        // Checked before anything is fetched; a signature of any shape must be refused, not panic.
        let _ = result.signed_by(&signer().public().to_peer_id());
    }
    Ok(())
}

/// A response's body.
pub fn response(data: &[u8]) -> Result<(), String> {
    round_trip::<Response>(data).map(|_| ())
}

/// Gossip on the capacity topic: decoded, then its addresses parsed as the node learns them.
pub fn capacity_gossip(data: &[u8]) -> Result<(), String> {
    let a: CapacityAnnouncement = round_trip(data)?;
    let author = PeerId::random();
    for addr in crate::network::addrs_of(author, &a.addrs) {
        assert!(
            addr.iter()
                .any(|p| p == libp2p::multiaddr::Protocol::P2p(author)),
            "an address not naming its author was learnt: {addr}"
        );
        let _ = crate::reach::addr_is_relayed(&addr);
        let _ = crate::reach::is_private_ip(&addr);
    }
    Ok(())
}

/// Gossip on the jobs topic.
pub fn job_gossip(data: &[u8]) -> Result<(), String> {
    round_trip::<JobAnnouncement>(data).map(|_| ())
}

/// A fixed blob store for the blob-protocol targets: one blob of 40 KiB (several chunks at the smallest
/// chunk size) in a temporary directory that lives as long as the process.
#[derive(Debug)]
pub struct BlobFixture {
    _dir: tempfile_dir::Dir,
    store: Arc<BlobStore>,
    id: BlobId,
    size: u64,
}

mod tempfile_dir {
    /// A directory removed when dropped (no dependency on `tempfile` outside tests).
    #[derive(Debug)]
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl BlobFixture {
    /// Makes the store and its blob.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cairn-fuzz-blobs-{}-{:x}",
            std::process::id(),
            rand_suffix()
        ));
        let store =
            BlobStore::open(&dir, StoreConfig::default()).expect("a blob store in the temp dir");
        let data: Vec<u8> = (0..40 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
        let id = store.put(&data, Retention::Pinned).expect("a 40 KiB blob");
        Self {
            _dir: tempfile_dir::Dir(dir),
            store: Arc::new(store),
            id,
            size: data.len() as u64,
        }
    }

    /// The stored blob.
    pub fn blob(&self) -> BlobRef {
        BlobRef {
            id: self.id,
            size: self.size,
        }
    }
}

impl Default for BlobFixture {
    fn default() -> Self {
        Self::new()
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A blob request as the serving side handles it: decoded and checked, the manifest looked up in the store at
/// the requested chunk size, the chunk range checked, and (up to four of) the chunks read.
pub fn blob_request(fx: &BlobFixture, data: &[u8]) -> Result<(), String> {
    let req = parse_request(data)?;
    let (id, chunk_size) = match &req {
        BlobRequest::Manifest { id, chunk_size } | BlobRequest::Chunks { id, chunk_size, .. } => {
            (*id, *chunk_size)
        }
    };
    let manifest = fx
        .store
        .manifest(&id, chunk_size)
        .map_err(|e| e.to_string())?;
    if let BlobRequest::Chunks { start, end, .. } = req {
        check_range(start, end, manifest.chunks.len())?;
        for index in start..end.min(start.saturating_add(4)) {
            let chunk = fx
                .store
                .read_chunk(&manifest, index)
                .map_err(|e| e.to_string())?;
            assert_eq!(chunk.len(), manifest.chunk_len(index));
        }
    }
    Ok(())
}

/// A manifest answer as the fetching side checks it (the fixture's blob, announced at its size, chunks of
/// 4 KiB), then laid over a partial download as a resumed fetch does.
pub fn blob_manifest(fx: &BlobFixture, data: &[u8]) -> Result<(), String> {
    let want = Wanted {
        peer: PeerId::random(),
        id: fx.id,
        chunk_size: crate::MIN_CHUNK_SIZE,
        expected_size: Some(fx.size),
        max_blob_bytes: fx.store.config().max_blob_bytes,
    };
    let manifest = accept_manifest(data, want).map_err(|e| e.to_string())?;
    let dir = fx.store.dir().join("fuzz-partial");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let have = prepare_partial(&dir.join("data"), &dir.join("manifest"), &manifest)
        .map_err(|e| e.to_string())?;
    assert_eq!(have.len(), manifest.chunks.len());
    Ok(())
}

/// A partial download's saved manifest (a file a crash may have left half-written) read back on resume,
/// against the manifest the peer sends now.
pub fn saved_manifest(fx: &BlobFixture, data: &[u8]) -> Result<(), String> {
    let dir = fx.store.dir().join("fuzz-saved");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (data_path, manifest_path) = (dir.join("data"), dir.join("manifest"));
    std::fs::write(&manifest_path, data).map_err(|e| e.to_string())?;
    let manifest = fx
        .store
        .manifest(&fx.id, crate::MIN_CHUNK_SIZE)
        .map_err(|e| e.to_string())?;
    let have = prepare_partial(&data_path, &manifest_path, &manifest).map_err(|e| e.to_string())?;
    assert_eq!(have.len(), manifest.chunks.len());
    Ok(())
}

/// A raw length-prefixed frame on a blob stream (limit: a manifest frame for the default store).
pub fn blob_frame(data: &[u8]) -> Result<(), String> {
    let limit = transfer::manifest_frame_limit(
        StoreConfig::default().max_blob_bytes,
        crate::MIN_CHUNK_SIZE,
    );
    let frame = block_on(read_frame(&mut futures::io::Cursor::new(data), limit))
        .map_err(|e| e.to_string())?;
    assert!(frame.len() <= limit);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Seeds: real messages, as the node sends them.

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn capacity() -> NodeCapacity {
    NodeCapacity {
        memory_bytes: 8 << 30,
        max_po2: 20,
        cycles_per_sec: 60_000,
        slots: 2,
        recursion: false,
    }
}

fn blob_ref(n: u8) -> BlobRef {
    BlobRef {
        id: BlobId([n; 32]),
        size: 123_456 + u64::from(n),
    }
}

/// The prover whose signed results the seeds carry (and whose signature the `request` target checks).
fn signer() -> libp2p::identity::Keypair {
    libp2p::identity::Keypair::ed25519_from_bytes([7u8; 32]).expect("32 bytes make an ed25519 key")
}

/// Every kind of request, encoded.
pub fn seed_requests() -> Vec<Vec<u8>> {
    let key = signer();
    let receipt = blob_ref(3);
    let signature = key
        .sign(&TaskResult::signing_bytes(7, 2, &receipt))
        .expect("ed25519 signs");
    [
        Request::Offer(Offer {
            job: 7,
            task: 2,
            kind: TaskKind::Prove {
                segment: 2,
                po2: 14,
                data: blob_ref(1),
                lift: false,
            },
            program: blob_ref(2),
            deadline_ms: 60_000,
        }),
        Request::Offer(Offer {
            job: 7,
            task: 9,
            kind: TaskKind::Join {
                left: blob_ref(4),
                right: blob_ref(5),
            },
            program: blob_ref(2),
            deadline_ms: 60_000,
        }),
        Request::Result(TaskResult {
            job: 7,
            task: 2,
            receipt,
            prover_signature: signature,
            prove_ms: Some(11_000),
        }),
        Request::Cancel { job: 7, task: 2 },
        Request::Heartbeat(Heartbeat {
            busy: vec![TaskRef { job: 7, task: 2 }, TaskRef { job: 8, task: 0 }],
            capacity: capacity(),
        }),
        Request::Failed {
            job: 7,
            task: 2,
            reason: "segment does not decode".into(),
            kind: FailureKind::Task,
        },
        Request::Status,
    ]
    .iter()
    .map(|r| protocol::encode(r).expect("seed requests are within their limits"))
    .collect()
}

/// Every kind of response, encoded.
pub fn seed_responses() -> Vec<Vec<u8>> {
    [
        Response::Accept,
        Response::Decline {
            reason: "busy".into(),
            kind: Some(DeclineKind::Busy),
        },
        Response::Ack,
        Response::Status(NodeStatus {
            capacity: capacity(),
            free_slots: 1,
            benchmark: Some(WorkloadBenchmark {
                result: vec![1, 2, 3],
                claimed_ms: 9_000,
            }),
        }),
        Response::Error(
            ProtocolError::UnsupportedVersion {
                version: 9,
                supported: vec![1],
            }
            .to_reply(),
        ),
    ]
    .iter()
    .map(|r| protocol::encode(r).expect("seed responses are within their limits"))
    .collect()
}

/// Request and response bodies inside length-prefixed frames.
pub fn seed_request_frames() -> Vec<Vec<u8>> {
    seed_requests().iter().map(|b| frame(b)).collect()
}

/// Response bodies inside frames.
pub fn seed_response_frames() -> Vec<Vec<u8>> {
    seed_responses().iter().map(|b| frame(b)).collect()
}

/// Capacity announcements: a public prover and one behind a relay.
pub fn seed_capacity() -> Vec<Vec<u8>> {
    let me = PeerId::random();
    let relay = PeerId::random();
    let direct: Multiaddr = format!("/ip4/203.0.113.7/tcp/7000/p2p/{me}")
        .parse()
        .unwrap();
    let circuit: Multiaddr = format!("/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{me}")
        .parse()
        .unwrap();
    [
        vec![direct.to_string()],
        vec![circuit.to_string(), "/ip4/10.0.0.2/udp/1/quic-v1".into()],
    ]
    .into_iter()
    .map(|addrs| {
        protocol::encode(&CapacityAnnouncement {
            capacity: capacity(),
            free_slots: 2,
            benchmark: None,
            addrs,
        })
        .unwrap()
    })
    .collect()
}

/// A job announcement.
pub fn seed_jobs() -> Vec<Vec<u8>> {
    vec![protocol::encode(&JobAnnouncement {
        job: 7,
        program: blob_ref(2),
        segments: 40,
        po2: 18,
        deadline_ms: 3_600_000,
    })
    .unwrap()]
}

/// Blob requests for the fixture's blob: its manifest and chunk ranges.
pub fn seed_blob_requests(fx: &BlobFixture) -> Vec<Vec<u8>> {
    let cs = crate::MIN_CHUNK_SIZE;
    vec![
        transfer::encode(BlobRequest::Manifest {
            id: fx.id,
            chunk_size: cs,
        }),
        transfer::encode(BlobRequest::Chunks {
            id: fx.id,
            chunk_size: cs,
            start: 0,
            end: 3,
        }),
        transfer::encode(BlobRequest::Chunks {
            id: fx.id,
            chunk_size: cs,
            start: 9,
            end: 10,
        }),
    ]
}

/// The fixture's true manifest and the other answers a server gives.
pub fn seed_blob_manifests(fx: &BlobFixture) -> Vec<Vec<u8>> {
    let m: Manifest = (*fx.store.manifest(&fx.id, crate::MIN_CHUNK_SIZE).unwrap()).clone();
    vec![
        transfer::encode(BlobResponse::Manifest(m)),
        transfer::encode(BlobResponse::NotFound),
        transfer::encode(BlobResponse::Busy),
        transfer::encode(BlobResponse::Error("no".into())),
    ]
}

/// A saved manifest as a fetch writes it before downloading.
pub fn seed_saved_manifests(fx: &BlobFixture) -> Vec<Vec<u8>> {
    let m: Manifest = (*fx.store.manifest(&fx.id, crate::MIN_CHUNK_SIZE).unwrap()).clone();
    let mut saved = Vec::new();
    ciborium::into_writer(&m, &mut saved).unwrap();
    vec![saved]
}

/// Blob-stream frames: a request and a manifest in their frames.
pub fn seed_blob_frames(fx: &BlobFixture) -> Vec<Vec<u8>> {
    seed_blob_requests(fx)
        .into_iter()
        .chain(seed_blob_manifests(fx))
        .map(|b| frame(&b))
        .collect()
}
