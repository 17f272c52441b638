//! Versioned protocol messages and their wire encoding.
//!
//! Every message travels inside an [`Envelope`] carrying a `version: u16`. Encoding is CBOR; the receiver
//! checks the frame size *before* decoding anything, then reads only the version, refuses versions it does
//! not support (the request-response path answers those with [`ErrorCode::UnsupportedVersion`] and the list
//! of supported versions), then decodes the body and checks the per-kind size limit and the length of every
//! variable-size field. Nothing here panics on hostile input.
//!
//! To change the protocol: add fields with `#[serde(default)]` (old peers ignore unknown fields, new peers
//! fill missing ones), or bump [`PROTOCOL_VERSION`] and add it to [`SUPPORTED_VERSIONS`] for breaking changes.
//! Limits live in [`limits`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::blob::{BlobId, BlobRef};

/// The version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Versions this build accepts.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];

/// Size limits, in bytes of encoded CBOR unless said otherwise.
pub mod limits {
    /// Largest request-response request frame read from the wire (checked before decoding).
    pub const MAX_REQUEST_FRAME: usize = 64 * 1024;
    /// Largest request-response response frame read from the wire (checked before decoding).
    pub const MAX_RESPONSE_FRAME: usize = 64 * 1024;
    /// Offer request.
    pub const OFFER: usize = 2 * 1024;
    /// Result request.
    pub const RESULT: usize = 4 * 1024;
    /// Cancel request.
    pub const CANCEL: usize = 256;
    /// Heartbeat request (carries up to [`MAX_BUSY_TASKS`] task references).
    pub const HEARTBEAT: usize = 48 * 1024;
    /// Status request.
    pub const STATUS: usize = 256;
    /// Accept / Ack / Decline / Status / Error responses.
    pub const RESPONSE: usize = 24 * 1024;
    /// Capacity announcement (gossip).
    pub const CAPACITY_ANNOUNCEMENT: usize = 24 * 1024;
    /// Job announcement (gossip).
    pub const JOB_ANNOUNCEMENT: usize = 2 * 1024;
    /// Free-form strings (decline reasons, error messages), in bytes of UTF-8.
    pub const MAX_TEXT: usize = 1024;
    /// Proof-of-workload benchmark result, raw bytes.
    pub const MAX_BENCHMARK: usize = 16 * 1024;
    /// Addresses in a capacity announcement.
    pub const MAX_ADDRS: usize = 8;
    /// Length of one address (text form).
    pub const MAX_ADDR_LEN: usize = 300;
    /// Prover signature on a result, raw bytes.
    pub const MAX_SIGNATURE: usize = 1024;
    /// Busy tasks listed in one heartbeat.
    pub const MAX_BUSY_TASKS: usize = 1024;
    /// Versions listed in an `UnsupportedVersion` error.
    pub const MAX_VERSIONS: usize = 16;
}

/// A job, as numbered by its client.
pub type JobId = u64;
/// A task within a job (a segment proof, a join, ...).
pub type TaskIndex = u32;

/// Wrapper carried on the wire around every message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Protocol version of `body`.
    pub version: u16,
    /// The message.
    pub body: T,
}

/// Only the version of an envelope; unknown fields (the body of an unknown version) are skipped.
#[derive(Deserialize)]
struct Header {
    version: u16,
}

/// What a prover node can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    /// Memory available for proving, bytes.
    pub memory_bytes: u64,
    /// Largest segment size (log2 of cycles) this node can prove.
    pub max_po2: u8,
    /// Measured proving speed.
    pub cycles_per_sec: u64,
    /// Tasks it proves concurrently.
    pub slots: u32,
    /// Whether it can run recursion (lift/join).
    pub recursion: bool,
}

/// A proof-of-workload benchmark result: opaque to this crate, checked by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadBenchmark {
    /// Opaque result bytes (e.g. a receipt of a known program), at most [`limits::MAX_BENCHMARK`].
    pub result: Vec<u8>,
    /// Time the node claims the benchmark took, milliseconds.
    pub claimed_ms: u64,
}

/// What a task asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Prove one segment.
    Prove {
        /// Segment index within the job.
        segment: u32,
        /// Segment size, log2 of cycles.
        po2: u8,
        /// The serialized segment.
        data: BlobRef,
        /// Also lift the segment receipt into a succinct receipt (the leaf of a join tree): needs recursion.
        #[serde(default)]
        lift: bool,
    },
    /// Join two succinct receipts of consecutive ranges of segments (left first): needs recursion.
    Join {
        /// Left receipt.
        left: BlobRef,
        /// Right receipt.
        right: BlobRef,
    },
}

/// A task offered to a prover. The blobs it names are fetched from the offering peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Job.
    pub job: JobId,
    /// Task within the job.
    pub task: TaskIndex,
    /// What to do.
    pub kind: TaskKind,
    /// The program (image) of the job.
    pub program: BlobRef,
    /// Deadline, milliseconds from receipt of the offer.
    pub deadline_ms: u64,
}

/// A finished task's result; the receipt travels as a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Job.
    pub job: JobId,
    /// Task within the job.
    pub task: TaskIndex,
    /// The receipt blob.
    pub receipt: BlobRef,
    /// The prover's signature over the result, at most [`limits::MAX_SIGNATURE`] bytes.
    pub prover_signature: Vec<u8>,
    /// How long the prover says proving took, in milliseconds (absent from older nodes). Self-reported and
    /// unsigned: for reports and calibration (the devnet's overheads, the simulator's model), never for
    /// deadlines or payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prove_ms: Option<u64>,
}

impl TaskResult {
    /// The bytes a prover signs for a result: domain tag, job, task and the receipt blob's id and size. A
    /// signed result is the prover's lasting statement that this receipt is its answer to this task, which
    /// anyone can check against its peer id (evidence for a penalty outlives the connection it came on).
    pub fn signing_bytes(job: JobId, task: TaskIndex, receipt: &BlobRef) -> Vec<u8> {
        let mut m = b"cairn/result/v1".to_vec();
        m.extend_from_slice(&job.to_le_bytes());
        m.extend_from_slice(&task.to_le_bytes());
        m.extend_from_slice(&receipt.id.0);
        m.extend_from_slice(&receipt.size.to_le_bytes());
        m
    }

    /// Whether `prover` signed this result.
    pub fn signed_by(&self, prover: &libp2p::PeerId) -> bool {
        verify_signature(
            prover,
            &Self::signing_bytes(self.job, self.task, &self.receipt),
            &self.prover_signature,
        )
    }
}

/// Whether `signature` is `peer`'s signature of `msg`. Peer ids of ed25519 keys carry the public key itself,
/// so no key exchange is needed; other peer ids (hashed keys) cannot be checked and fail.
pub fn verify_signature(peer: &libp2p::PeerId, msg: &[u8], signature: &[u8]) -> bool {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Multihash code 0 = identity: the digest is the protobuf-encoded public key.
    if mh.code() != 0 {
        return false;
    }
    libp2p::identity::PublicKey::try_decode_protobuf(mh.digest())
        .is_ok_and(|key| key.verify(msg, signature))
}

/// A task a node is working on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// Job.
    pub job: JobId,
    /// Task within the job.
    pub task: TaskIndex,
}

/// A prover's periodic sign of life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Tasks in progress, at most [`limits::MAX_BUSY_TASKS`].
    pub busy: Vec<TaskRef>,
    /// Current capacity.
    pub capacity: NodeCapacity,
}

/// A node's answer to [`Request::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Capacity.
    pub capacity: NodeCapacity,
    /// Slots free right now.
    pub free_slots: u32,
    /// Latest benchmark, if measured.
    pub benchmark: Option<WorkloadBenchmark>,
}

/// Why a prover gave up a task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Something about this prover or the moment (a transfer broke, it was cancelled, a worker stopped):
    /// another prover may well succeed.
    #[default]
    Transient,
    /// The prover's backend refused the task's own bytes (a segment that does not decode, is out of range or
    /// fails to prove): another prover will fail it the same way.
    Task,
}

/// Request-response requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Client -> prover: take this task? Answered by `Accept` or `Decline`.
    Offer(Offer),
    /// Prover -> client: a task's result. Answered by `Ack` or `Error`.
    Result(TaskResult),
    /// Client -> prover: stop working on a task. Answered by `Ack`.
    Cancel {
        /// Job.
        job: JobId,
        /// Task.
        task: TaskIndex,
    },
    /// Prover -> client: still alive. Answered by `Ack`.
    Heartbeat(Heartbeat),
    /// Prover -> client: it gave up on a task it had accepted (the segment could not be fetched, the proof
    /// failed), so the client reassigns it now rather than at its deadline. Answered by `Ack`.
    Failed {
        /// Job.
        job: JobId,
        /// Task.
        task: TaskIndex,
        /// Why, at most [`limits::MAX_TEXT`] bytes.
        reason: String,
        /// Whether the failure is the task's own (any prover would fail it the same way) or this prover's.
        #[serde(default)]
        kind: FailureKind,
    },
    /// Anyone -> prover: what can you do? Answered by `Status`.
    Status,
}

/// Request-response responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Offer taken.
    Accept,
    /// Offer refused.
    Decline {
        /// Why, at most [`limits::MAX_TEXT`] bytes.
        reason: String,
        /// Why, for the client's scheduler (absent from nodes before it was added: then the client reads
        /// `reason`).
        #[serde(default)]
        kind: Option<DeclineKind>,
    },
    /// Acknowledged.
    Ack,
    /// Answer to `Status`.
    Status(NodeStatus),
    /// The request was refused.
    Error(ErrorReply),
}

/// Why a prover declined an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeclineKind {
    /// Every slot is in use.
    Busy,
    /// Shutting down: finishing what it holds, taking nothing new.
    Draining,
    /// It is already proving this task.
    AlreadyWorking,
    /// The task needs more memory than the node has.
    TooLarge,
    /// The task needs recursion the node cannot run.
    NoRecursion,
}

impl DeclineKind {
    /// A passing reason: the task goes elsewhere and may come back, at no cost to anyone. The others mean
    /// the node cannot take this task at all (an attempt is spent; it should not have been offered).
    pub fn passing(self) -> bool {
        matches!(self, Self::Busy | Self::Draining | Self::AlreadyWorking)
    }

    /// For a decline from a node that sent no kind (older versions): read its reason's first word.
    pub fn from_legacy_reason(reason: &str) -> Option<Self> {
        [
            ("busy", Self::Busy),
            ("draining", Self::Draining),
            ("already working", Self::AlreadyWorking),
        ]
        .iter()
        .find(|(p, _)| reason.starts_with(p))
        .map(|(_, k)| *k)
    }
}

/// Machine-readable error class of an [`ErrorReply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The envelope's version is not spoken here; see `supported`.
    UnsupportedVersion,
    /// The message could not be decoded.
    Malformed,
    /// The message, or one of its fields, exceeds a limit.
    TooLarge,
    /// The job is not known here.
    UnknownJob,
    /// The task is not known here.
    UnknownTask,
    /// The node is overloaded; retry later.
    Busy,
    /// Refused for another reason (see the message).
    Refused,
    /// The node failed internally.
    Internal,
}

/// A polite refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Class.
    pub code: ErrorCode,
    /// Human-readable detail, at most [`limits::MAX_TEXT`] bytes.
    pub message: String,
    /// Protocol versions the replying node supports (filled for `UnsupportedVersion`).
    #[serde(default)]
    pub supported: Vec<u16>,
}

impl ErrorReply {
    /// An error reply with a message truncated to [`limits::MAX_TEXT`].
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: truncate(message.into(), limits::MAX_TEXT),
            supported: Vec::new(),
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if !self.supported.is_empty() {
            write!(f, " (supported versions: {:?})", self.supported)?;
        }
        Ok(())
    }
}

/// Gossip: a prover's capacity, published on [`crate::Topic::Capacity`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityAnnouncement {
    /// Capacity.
    pub capacity: NodeCapacity,
    /// Slots free right now.
    pub free_slots: u32,
    /// Proof-of-workload benchmark for clients to check.
    pub benchmark: Option<WorkloadBenchmark>,
    /// Addresses the author can be dialled at (multiaddrs ending in its peer id: a public address or a relay
    /// circuit), at most [`limits::MAX_ADDRS`]; filled in by [`crate::Client::publish_capacity`]. A client
    /// that hears of a prover through other peers dials it there.
    pub addrs: Vec<String>,
}

/// Gossip: a client looking for provers, published on [`crate::Topic::Jobs`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAnnouncement {
    /// Job.
    pub job: JobId,
    /// Program.
    pub program: BlobRef,
    /// Expected number of segments (0 if unknown).
    pub segments: u32,
    /// Segment size, log2 of cycles.
    pub po2: u8,
    /// Deadline for the whole job, milliseconds from announcement.
    pub deadline_ms: u64,
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Encoded size over the limit for its kind.
    #[error("{kind} message is {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Message kind.
        kind: &'static str,
        /// Size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A field over its limit.
    #[error("field {field} has length {len}, over the limit of {max}")]
    FieldTooLong {
        /// Field.
        field: &'static str,
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Version not spoken here.
    #[error("protocol version {version} is not supported (supported: {supported:?}); upgrade the older peer")]
    UnsupportedVersion {
        /// Version received.
        version: u16,
        /// Versions spoken here.
        supported: Vec<u16>,
    },
    /// CBOR that does not decode into the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Encoding failed (a bug, or a value too large for its limit).
    #[error("could not encode message: {0}")]
    Encode(String),
}

impl ProtocolError {
    /// The reply that tells the sender about this refusal.
    pub fn to_reply(&self) -> ErrorReply {
        let code = match self {
            Self::TooLarge { .. } | Self::FieldTooLong { .. } => ErrorCode::TooLarge,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::Malformed(_) => ErrorCode::Malformed,
            Self::Encode(_) => ErrorCode::Internal,
        };
        let mut reply = ErrorReply::new(code, self.to_string());
        if let Self::UnsupportedVersion { .. } = self {
            reply.supported = SUPPORTED_VERSIONS.to_vec();
        }
        reply
    }
}

/// A message type with its limits.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// Kind name for errors and logs.
    const KIND: &'static str;
    /// Largest frame read before any decoding.
    const FRAME_LIMIT: usize;
    /// Limit on the encoded size of this particular message (may depend on its variant).
    fn max_encoded_len(&self) -> usize;
    /// Checks variable-size fields.
    fn validate(&self) -> Result<(), ProtocolError>;
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), ProtocolError> {
    if len > max {
        return Err(ProtocolError::FieldTooLong { field, len, max });
    }
    Ok(())
}

fn validate_benchmark(b: &Option<WorkloadBenchmark>) -> Result<(), ProtocolError> {
    if let Some(b) = b {
        check_len("benchmark.result", b.result.len(), limits::MAX_BENCHMARK)?;
    }
    Ok(())
}

impl WireMessage for Request {
    const KIND: &'static str = "request";
    const FRAME_LIMIT: usize = limits::MAX_REQUEST_FRAME;
    fn max_encoded_len(&self) -> usize {
        match self {
            Self::Offer(_) => limits::OFFER,
            Self::Result(_) => limits::RESULT,
            Self::Cancel { .. } => limits::CANCEL,
            Self::Failed { .. } => limits::CANCEL + limits::MAX_TEXT,
            Self::Heartbeat(_) => limits::HEARTBEAT,
            Self::Status => limits::STATUS,
        }
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Self::Result(r) => check_len(
                "prover_signature",
                r.prover_signature.len(),
                limits::MAX_SIGNATURE,
            ),
            Self::Heartbeat(h) => check_len("busy", h.busy.len(), limits::MAX_BUSY_TASKS),
            Self::Failed { reason, .. } => check_len("reason", reason.len(), limits::MAX_TEXT),
            Self::Offer(_) | Self::Cancel { .. } | Self::Status => Ok(()),
        }
    }
}

impl WireMessage for Response {
    const KIND: &'static str = "response";
    const FRAME_LIMIT: usize = limits::MAX_RESPONSE_FRAME;
    fn max_encoded_len(&self) -> usize {
        limits::RESPONSE
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Self::Decline { reason, .. } => check_len("reason", reason.len(), limits::MAX_TEXT),
            Self::Error(e) => {
                check_len("message", e.message.len(), limits::MAX_TEXT)?;
                check_len("supported", e.supported.len(), limits::MAX_VERSIONS)
            }
            Self::Status(s) => validate_benchmark(&s.benchmark),
            Self::Accept | Self::Ack => Ok(()),
        }
    }
}

impl WireMessage for CapacityAnnouncement {
    const KIND: &'static str = "capacity announcement";
    const FRAME_LIMIT: usize = limits::CAPACITY_ANNOUNCEMENT;
    fn max_encoded_len(&self) -> usize {
        limits::CAPACITY_ANNOUNCEMENT
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        validate_benchmark(&self.benchmark)?;
        check_len("addrs", self.addrs.len(), limits::MAX_ADDRS)?;
        for a in &self.addrs {
            check_len("addrs[]", a.len(), limits::MAX_ADDR_LEN)?;
        }
        Ok(())
    }
}

impl WireMessage for JobAnnouncement {
    const KIND: &'static str = "job announcement";
    const FRAME_LIMIT: usize = limits::JOB_ANNOUNCEMENT;
    fn max_encoded_len(&self) -> usize {
        limits::JOB_ANNOUNCEMENT
    }
    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// Encodes `msg` in an envelope of the current version, checking its limits.
pub fn encode<T: WireMessage>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    encode_with_version(PROTOCOL_VERSION, msg)
}

/// Encodes `msg` in an envelope of any version (for tests of version negotiation), checking its limits.
pub fn encode_with_version<T: WireMessage>(
    version: u16,
    msg: &T,
) -> Result<Vec<u8>, ProtocolError> {
    msg.validate()?;
    let mut out = Vec::new();
    ciborium::into_writer(&Envelope { version, body: msg }, &mut out)
        .map_err(|e| ProtocolError::Encode(e.to_string()))?;
    let max = msg.max_encoded_len().min(T::FRAME_LIMIT);
    if out.len() > max {
        return Err(ProtocolError::TooLarge {
            kind: T::KIND,
            len: out.len(),
            max,
        });
    }
    Ok(out)
}

/// Decodes an envelope: size check, then version check, then body, then per-kind limits.
pub fn decode<T: WireMessage>(bytes: &[u8]) -> Result<T, ProtocolError> {
    if bytes.len() > T::FRAME_LIMIT {
        return Err(ProtocolError::TooLarge {
            kind: T::KIND,
            len: bytes.len(),
            max: T::FRAME_LIMIT,
        });
    }
    let header: Header =
        ciborium::from_reader(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if !SUPPORTED_VERSIONS.contains(&header.version) {
        return Err(ProtocolError::UnsupportedVersion {
            version: header.version,
            supported: SUPPORTED_VERSIONS.to_vec(),
        });
    }
    let env: Envelope<T> =
        ciborium::from_reader(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let max = env.body.max_encoded_len();
    if bytes.len() > max {
        return Err(ProtocolError::TooLarge {
            kind: T::KIND,
            len: bytes.len(),
            max,
        });
    }
    env.body.validate()?;
    Ok(env.body)
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> NodeCapacity {
        NodeCapacity {
            memory_bytes: 8 << 30,
            max_po2: 20,
            cycles_per_sec: 50_000,
            slots: 2,
            recursion: true,
        }
    }

    #[test]
    fn round_trip_every_request() {
        let blob = BlobRef::of(b"x");
        let reqs = vec![
            Request::Offer(Offer {
                job: 7,
                task: 3,
                kind: TaskKind::Prove {
                    segment: 3,
                    po2: 20,
                    data: blob,
                    lift: false,
                },
                program: blob,
                deadline_ms: 60_000,
            }),
            Request::Offer(Offer {
                job: 7,
                task: 9,
                kind: TaskKind::Join {
                    left: blob,
                    right: blob,
                },
                program: blob,
                deadline_ms: 1,
            }),
            Request::Result(TaskResult {
                job: 1,
                task: 2,
                receipt: blob,
                prover_signature: vec![1; 64],
                prove_ms: Some(52_100),
            }),
            // From a node older than `prove_ms`: the field is absent on the wire and reads as None.
            Request::Result(TaskResult {
                job: 1,
                task: 3,
                receipt: blob,
                prover_signature: vec![1; 64],
                prove_ms: None,
            }),
            Request::Cancel { job: 1, task: 2 },
            Request::Failed {
                job: 1,
                task: 2,
                reason: "x".repeat(limits::MAX_TEXT),
                kind: FailureKind::Task,
            },
            Request::Heartbeat(Heartbeat {
                busy: vec![TaskRef { job: 1, task: 2 }; limits::MAX_BUSY_TASKS],
                capacity: cap(),
            }),
            Request::Status,
        ];
        for r in reqs {
            let bytes = encode(&r).unwrap();
            assert_eq!(decode::<Request>(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn results_are_signed_by_the_prover_and_checkable_from_its_peer_id() {
        let prover = libp2p::identity::Keypair::generate_ed25519();
        let other = libp2p::identity::Keypair::generate_ed25519();
        let receipt = BlobRef::of(b"receipt");
        let sign = |k: &libp2p::identity::Keypair, task| {
            k.sign(&TaskResult::signing_bytes(4, task, &receipt))
                .unwrap()
        };
        let result = TaskResult {
            job: 4,
            task: 2,
            receipt,
            prover_signature: sign(&prover, 2),
            prove_ms: None,
        };
        let id = prover.public().to_peer_id();
        assert!(result.signed_by(&id));
        // Not by another peer; not for another task; not with a flipped bit; not unsigned.
        assert!(!result.signed_by(&other.public().to_peer_id()));
        assert!(!TaskResult {
            prover_signature: sign(&prover, 3),
            ..result.clone()
        }
        .signed_by(&id));
        let mut flipped = result.clone();
        flipped.prover_signature[0] ^= 1;
        assert!(!flipped.signed_by(&id));
        assert!(!TaskResult {
            prover_signature: Vec::new(),
            ..result
        }
        .signed_by(&id));
    }

    #[test]
    fn unknown_version_is_reported_with_supported_list() {
        let bytes = encode_with_version(99, &Request::Status).unwrap();
        let err = decode::<Request>(&bytes).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::UnsupportedVersion {
                version: 99,
                supported: vec![1]
            }
        );
        let reply = err.to_reply();
        assert_eq!(reply.code, ErrorCode::UnsupportedVersion);
        assert_eq!(reply.supported, vec![1]);
    }

    /// A decline says why in a type the client acts on; one from a node that predates the type still
    /// decodes, and its reason's text is read the old way.
    #[test]
    fn declines_carry_their_kind_and_old_ones_still_decode() {
        let new = Response::Decline {
            reason: "busy: all 2 slots in use".into(),
            kind: Some(DeclineKind::Busy),
        };
        assert_eq!(decode::<Response>(&encode(&new).unwrap()).unwrap(), new);
        #[derive(Serialize)]
        enum OldResponse {
            #[allow(dead_code)]
            Accept,
            Decline {
                reason: String,
            },
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(
            &Envelope {
                version: PROTOCOL_VERSION,
                body: OldResponse::Decline {
                    reason: "draining: this node is shutting down".into(),
                },
            },
            &mut bytes,
        )
        .unwrap();
        match decode::<Response>(&bytes).unwrap() {
            Response::Decline { reason, kind: None } => {
                let kind = DeclineKind::from_legacy_reason(&reason);
                assert_eq!(kind, Some(DeclineKind::Draining));
                assert!(kind.unwrap().passing());
            }
            other => panic!("{other:?}"),
        }
        assert!(!DeclineKind::TooLarge.passing());
        assert_eq!(
            DeclineKind::from_legacy_reason("po2 20 needs more memory"),
            None
        );
    }

    #[test]
    fn unknown_version_with_unknown_body_still_yields_version() {
        #[derive(Serialize)]
        struct Future {
            version: u16,
            body: (String, Vec<u64>),
            extra: bool,
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(
            &Future {
                version: 2,
                body: ("new".into(), vec![1, 2]),
                extra: true,
            },
            &mut bytes,
        )
        .unwrap();
        assert!(matches!(
            decode::<Request>(&bytes),
            Err(ProtocolError::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn oversized_and_garbage_are_refused() {
        let big = vec![0u8; limits::MAX_REQUEST_FRAME + 1];
        assert!(matches!(
            decode::<Request>(&big),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(matches!(
            decode::<Request>(&[0xff, 0x00, 0x13]),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Request>(&[]),
            Err(ProtocolError::Malformed(_))
        ));
        // A signature over its limit is refused at encode and at decode.
        let r = Request::Result(TaskResult {
            job: 1,
            task: 1,
            receipt: BlobRef::of(b""),
            prover_signature: vec![0; limits::MAX_SIGNATURE + 1],
            prove_ms: None,
        });
        assert!(matches!(
            encode(&r),
            Err(ProtocolError::FieldTooLong { .. })
        ));
        let mut raw = Vec::new();
        ciborium::into_writer(
            &Envelope {
                version: 1,
                body: &r,
            },
            &mut raw,
        )
        .unwrap();
        assert!(decode::<Request>(&raw).is_err());
        // A per-kind limit smaller than the frame limit: a Status request padded with junk fields.
        #[derive(Serialize)]
        struct Padded {
            version: u16,
            body: &'static str,
            pad: Vec<u8>,
        }
        let mut raw = Vec::new();
        ciborium::into_writer(
            &Padded {
                version: 1,
                body: "Status",
                pad: vec![0; 4096],
            },
            &mut raw,
        )
        .unwrap();
        assert!(matches!(
            decode::<Request>(&raw),
            Err(ProtocolError::TooLarge {
                max: limits::STATUS,
                ..
            })
        ));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé".into(), 3), "é");
        let r = ErrorReply::new(ErrorCode::Internal, "x".repeat(5000));
        assert_eq!(r.message.len(), limits::MAX_TEXT);
    }
}
