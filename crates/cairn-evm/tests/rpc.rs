//! `cairn block import --rpc`: fetching a block and its witness from a node's JSON-RPC, against a local stub
//! server (loopback) that replays recorded answers. The answers are Hoodi block 1,265,656 and the
//! `debug_executionWitness` reth returned for it, as recorded in lambdaclass/ethrex-replay's cache
//! (`testdata/README.md`), served in the shapes `eth_chainId`, `debug_getRawBlock`, `eth_getBlockByNumber(n,
//! true)` and `debug_executionWitness` answer in; no real node is involved.
#![cfg(feature = "rpc")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use alloy_primitives::b256;
use cairn_evm::import::{block_from_json, block_rlp};
use cairn_evm::rpc::Rpc;
use cairn_evm::{host_sha256, validate_input, Chain, StatelessInput};
use serde_json::{json, Value};

/// A JSON-RPC stub on loopback: answers each method from `answers` (a missing method gets the JSON-RPC
/// "method not found" error), records the methods called.
struct Stub {
    url: String,
    calls: Arc<Mutex<Vec<String>>>,
}

fn stub(answers: Vec<(&'static str, Value)>) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let request: Value = serde_json::from_slice(&body).unwrap();
            let method = request["method"].as_str().unwrap().to_string();
            seen.lock().unwrap().push(method.clone());
            let answer = match answers.iter().find(|(m, _)| *m == method) {
                Some((_, result)) => {
                    json!({"jsonrpc": "2.0", "id": request["id"], "result": result})
                }
                None => json!({"jsonrpc": "2.0", "id": request["id"],
                               "error": {"code": -32601, "message": format!("the method {method} does not exist/is not available")}}),
            };
            let text = answer.to_string();
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Stub { url, calls }
}

/// The recorded Hoodi block and witness, in RPC shapes.
fn recorded() -> (Value, Value, Vec<u8>) {
    let cache: Value =
        serde_json::from_str(include_str!("../testdata/hoodi-1265656.json")).unwrap();
    let b = &cache["blocks"][0];
    let block = block_from_json(b).unwrap();
    // eth_getBlockByNumber(n, true): the header's fields, `hash`, the body's lists, uncles by hash.
    let mut rpc_block = b["header"].clone();
    let obj = rpc_block.as_object_mut().unwrap();
    obj.insert("hash".into(), json!(block.header.hash_slow()));
    obj.insert("transactions".into(), b["body"]["transactions"].clone());
    obj.insert("withdrawals".into(), b["body"]["withdrawals"].clone());
    obj.insert("uncles".into(), json!([]));
    (rpc_block, cache["witness"].clone(), block_rlp(&block))
}

const HOODI_STATE_ROOT: alloy_primitives::B256 =
    b256!("f7c1acf1facc79a7c560efa36f1158a0b643ed14519aaa06f56949ad60d6b03f");

#[test]
fn a_block_fetched_over_json_rpc_validates_to_the_chains_state_root() {
    let (rpc_block, witness, raw) = recorded();
    // A node with debug_getRawBlock, and one without it (eth_getBlockByNumber instead): the same input.
    let raw_hex = format!("0x{}", alloy_primitives::hex::encode(&raw));
    let with_raw = stub(vec![
        ("eth_chainId", json!("0x88bb0")),
        ("debug_getRawBlock", json!(raw_hex)),
        ("debug_executionWitness", witness.clone()),
    ]);
    let without_raw = stub(vec![
        ("eth_chainId", json!("0x88bb0")),
        ("eth_getBlockByNumber", rpc_block),
        ("debug_executionWitness", witness),
    ]);
    let mut inputs = Vec::new();
    for node in [&with_raw, &without_raw] {
        let f = Rpc::new(&node.url).unwrap().fetch(1_265_656).unwrap();
        assert_eq!(f.chain_id, 560_048);
        assert_eq!(f.chain, Some(Chain::Hoodi));
        inputs.push(StatelessInput::new(f.chain.unwrap(), f.block, f.witness));
    }
    assert_eq!(inputs[0], inputs[1]);
    assert_eq!(
        *without_raw.calls.lock().unwrap(),
        [
            "eth_chainId",
            "debug_getRawBlock",
            "eth_getBlockByNumber",
            "debug_executionWitness"
        ]
    );
    let j = validate_input(&inputs[0], host_sha256, &mut |_| {})
        .unwrap()
        .journal;
    assert_eq!(j.post_state_root, HOODI_STATE_ROOT);
    assert_eq!(j.number, 1_265_656);
}

#[test]
fn a_node_without_the_witness_method_or_the_block_is_a_clear_error() {
    let (rpc_block, _, _) = recorded();
    let no_witness = stub(vec![
        ("eth_chainId", json!("0x88bb0")),
        ("eth_getBlockByNumber", rpc_block.clone()),
    ]);
    let e = Rpc::new(&no_witness.url)
        .unwrap()
        .fetch(1_265_656)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("debug_executionWitness: the node says"),
        "{e}"
    );
    let no_block = stub(vec![
        ("eth_chainId", json!("0x88bb0")),
        ("eth_getBlockByNumber", Value::Null),
    ]);
    let e = Rpc::new(&no_block.url).unwrap().fetch(9).unwrap_err();
    assert!(e.to_string().contains("no result"), "{e}");
    // A block whose JSON does not re-encode to its own hash is refused.
    let mut tampered = rpc_block;
    tampered["gasUsed"] = json!("0x1");
    let lying = stub(vec![
        ("eth_chainId", json!("0x88bb0")),
        ("eth_getBlockByNumber", tampered),
    ]);
    let e = Rpc::new(&lying.url).unwrap().fetch(1_265_656).unwrap_err();
    assert!(e.to_string().contains("hashes to"), "{e}");
    // Nothing listening.
    let e = Rpc::new("http://127.0.0.1:9")
        .unwrap()
        .fetch(1)
        .unwrap_err();
    assert!(e.to_string().contains("eth_chainId"), "{e}");
}
