//! The targets, each a thin call into the crate that owns the decoder (their doc-hidden `fuzz` modules
//! reach what is private there), and their seeds.

use cairn_net::fuzz as net;
use cairn_node::fuzz as node;

use crate::Target;

thread_local! {
    // Fixtures are per thread: a job database connection is not shared between threads.
    static BLOBS: net::BlobFixture = net::BlobFixture::new();
    static JOBDB: node::JobDbFixture = node::JobDbFixture::new();
}

fn blobs<T>(f: impl FnOnce(&net::BlobFixture) -> T) -> T {
    BLOBS.with(f)
}

/// Every target.
pub static TARGETS: &[Target] = &[
    Target {
        name: "request_frame",
        about: "a request-response request from any peer: length prefix, frame limit, then the decode below",
        cheap: true,
        accepts_seeds: true,
        run: net::request_frame,
        seeds: net::seed_request_frames,
    },
    Target {
        name: "response_frame",
        about: "a response to a request this node sent: length prefix, frame limit, decode",
        cheap: true,
        accepts_seeds: true,
        run: net::response_frame,
        seeds: net::seed_response_frames,
    },
    Target {
        name: "request",
        about: "a request body (offer, result, cancel, heartbeat, failed, status): version, CBOR, per-kind and per-field limits, round trip, result signature",
        cheap: true,
        accepts_seeds: true,
        run: net::request,
        seeds: net::seed_requests,
    },
    Target {
        name: "response",
        about: "a response body (accept, decline, ack, status, error)",
        cheap: true,
        accepts_seeds: true,
        run: net::response,
        seeds: net::seed_responses,
    },
    Target {
        name: "capacity_gossip",
        about: "a capacity announcement heard on gossip, and the addresses in it as the node learns them",
        cheap: true,
        accepts_seeds: true,
        run: net::capacity_gossip,
        seeds: net::seed_capacity,
    },
    Target {
        name: "job_gossip",
        about: "a job announcement heard on gossip",
        cheap: true,
        accepts_seeds: true,
        run: net::job_gossip,
        seeds: net::seed_jobs,
    },
    Target {
        name: "blob_request",
        about: "a blob request a serving node reads: decode, chunk size, manifest lookup, range, chunk reads",
        cheap: true,
        accepts_seeds: true,
        run: |d| blobs(|fx| net::blob_request(fx, d)),
        seeds: || blobs(net::seed_blob_requests),
    },
    Target {
        name: "blob_manifest",
        about: "a manifest a fetching node receives: decode, id, chunk size and count, announced size, cap; then laid over a partial download",
        cheap: true,
        accepts_seeds: true,
        run: |d| blobs(|fx| net::blob_manifest(fx, d)),
        seeds: || blobs(net::seed_blob_manifests),
    },
    Target {
        name: "saved_manifest",
        about: "a partial download's saved manifest (left on disk by a crash) read back on resume",
        cheap: true,
        accepts_seeds: true,
        run: |d| blobs(|fx| net::saved_manifest(fx, d)),
        seeds: || blobs(net::seed_saved_manifests),
    },
    Target {
        name: "blob_frame",
        about: "a length-prefixed frame on a blob stream",
        cheap: true,
        accepts_seeds: true,
        run: net::blob_frame,
        seeds: || blobs(net::seed_blob_frames),
    },
    Target {
        name: "stored_records",
        about: "a job database's execution summary and segment claims, read back to resume a job",
        cheap: true,
        accepts_seeds: true,
        run: |d| JOBDB.with(|fx| node::stored_records(fx, d)),
        seeds: node::seed_stored_records,
    },
    Target {
        name: "scenario",
        about: "a simulator scenario file (TOML): base, variants, sweep",
        cheap: true,
        accepts_seeds: true,
        run: scenario,
        seeds: scenario_seeds,
    },
    Target {
        name: "session_request",
        about: "a gateway session request body (POST /sessions/create): JSON, image id, upload ids",
        cheap: true,
        accepts_seeds: true,
        run: cairn_gateway::fuzz::session_request,
        seeds: cairn_gateway::fuzz::seed_session_requests,
    },
    Target {
        name: "api_keys",
        about: "the gateway's API keys: a key file (TOML) or a name:key list",
        cheap: true,
        accepts_seeds: true,
        run: cairn_gateway::fuzz::api_keys,
        seeds: cairn_gateway::fuzz::seed_api_keys,
    },
    Target {
        name: "eth_block",
        about: "an Ethereum block input (`cairn block import`/`gen`, the eth-block guest): decode, ancestry, header, witness tries, signatures, execution, post-state",
        cheap: true,
        accepts_seeds: true,
        run: eth_block,
        seeds: eth_seeds,
    },
    #[cfg(feature = "risc0")]
    Target {
        name: "segment",
        about: "a segment a prover fetched: its claim (checked before a worker is committed), then the decode and size check before proving",
        cheap: false,
        accepts_seeds: true,
        run: crate::risc0::segment,
        seeds: crate::risc0::segment_seeds,
    },
    #[cfg(feature = "risc0")]
    Target {
        name: "segment_receipt",
        about: "a receipt a prover delivers: verify_segment against the task's claim, verify_lifted, the proof fingerprint",
        cheap: false,
        accepts_seeds: true,
        run: crate::risc0::segment_receipt,
        seeds: crate::risc0::segment_receipt_seeds,
    },
    #[cfg(feature = "risc0")]
    Target {
        name: "join_receipt",
        about: "a join result: verify_join against two receipts to join",
        cheap: false,
        accepts_seeds: false,
        run: crate::risc0::join_receipt,
        seeds: crate::risc0::segment_receipt_seeds,
    },
    #[cfg(feature = "risc0")]
    Target {
        name: "final_receipt",
        about: "a final receipt file (`cairn verify`, the gateway's receipts): decode and verify against an image id",
        cheap: false,
        accepts_seeds: true,
        run: crate::risc0::final_receipt,
        seeds: crate::risc0::final_receipt_seeds,
    },
    #[cfg(feature = "risc0")]
    Target {
        name: "program",
        about: "a user's program (`--program FILE`, gateway uploads): ELF or R0BF parsing and image id",
        cheap: false,
        accepts_seeds: true,
        run: crate::risc0::program,
        seeds: crate::risc0::program_seeds,
    },
];

fn scenario(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let s = cairn_sim::Scenario::parse(text, "fuzz").map_err(|e| e.to_string())?;
    assert!(!s.runs.is_empty(), "a parsed scenario has at least one run");
    Ok(())
}

fn scenario_seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn eth_block(data: &[u8]) -> Result<(), String> {
    cairn_evm::validate(data, cairn_evm::host_sha256, &mut |_| {})
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn eth_seeds() -> Vec<Vec<u8>> {
    use cairn_evm::gen::{generate, GenConfig, Mix};
    ["eth", "erc20", "swap", "create"]
        .iter()
        .enumerate()
        .filter_map(|(i, mix)| {
            let cfg = GenConfig {
                gas: 100_000,
                mix: Mix::parse(mix).ok()?,
                accounts: 4,
                tokens: 2,
                pools: 1,
                seed: i as u64,
            };
            generate(&cfg).ok().map(|g| g.input.encode())
        })
        // Ethereum's own test blocks: legacy, 2930, 1559 and blob transactions, withdrawals, system calls.
        .chain(
            cairn_evm::samples::test_blocks()
                .into_iter()
                .map(|(_, input)| input.encode()),
        )
        .collect()
}
