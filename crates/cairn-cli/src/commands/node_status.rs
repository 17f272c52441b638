//! `cairn node status`: asks a running node (over its local status page) what it is doing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::NodeStatusArgs;

pub fn run(args: &NodeStatusArgs) -> anyhow::Result<ExitCode> {
    let addr = match args.addr {
        Some(a) => a,
        None => {
            let file = cairn_node::node_status::status_addr_file(&args.data_dir);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "no status address in {}: is a node running with --data-dir {}?",
                    file.display(),
                    args.data_dir.display()
                )
            })?;
            text.trim()
                .parse()
                .with_context(|| format!("{} holds {text:?}, not an address", file.display()))?
        }
    };
    let body = get_status(addr).with_context(|| {
        format!("the node's status page at {addr} does not answer: is the node running?")
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&body).context("the node's status page is not JSON")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&v));
    }
    Ok(ExitCode::SUCCESS)
}

/// A plain HTTP/1.0 GET of `/status` on a local address (a dependency-free client for one local request).
fn get_status(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.take(4 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "unexpected answer: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_string())
}

fn render(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let up = cairn_node::node_status::unix_now().saturating_sub(n("started"));
    let _ = writeln!(
        o,
        "node {}  up {}h{:02}m  {} worker(s), max po2 {}{}",
        v["peer"].as_str().unwrap_or("?"),
        up / 3600,
        up / 60 % 60,
        n("workers"),
        n("max_po2"),
        if v["draining"].as_bool() == Some(true) {
            "  DRAINING"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "reachability: {}",
        v["reachability_summary"].as_str().unwrap_or("unknown")
    );
    let r = &v["reachability"];
    for a in r["advertised"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  advertised {}", a.as_str().unwrap_or("?"));
    }
    for relay in r["relays"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  relay {} {}",
            relay["addr"].as_str().unwrap_or("?"),
            if relay["reserved"].as_bool() == Some(true) {
                "(reservation held)"
            } else {
                "(no reservation yet)"
            }
        );
    }
    let _ = writeln!(
        o,
        "  {} peer(s) connected, {} relayed connection(s), NAT check: {}, hole punches ok/failed: {}/{}",
        r["connected_peers"].as_u64().unwrap_or(0),
        r["relayed_connections"].as_u64().unwrap_or(0),
        r["nat"].as_str().unwrap_or("?"),
        r["hole_punches"][0].as_u64().unwrap_or(0),
        r["hole_punches"][1].as_u64().unwrap_or(0),
    );
    let _ = writeln!(
        o,
        "  strangers: {} inbound connection(s) refused, {} idle one(s) evicted; {} idle connection(s) trimmed; {} announced address(es) not believed",
        r["inbound_refused"].as_u64().unwrap_or(0),
        r["strangers_evicted"].as_u64().unwrap_or(0),
        r["connections_trimmed"].as_u64().unwrap_or(0),
        r["gossip_addrs_ignored"].as_u64().unwrap_or(0),
    );
    let _ = writeln!(
        o,
        "  network events: {} waiting for the node (at most {} at once), {} lost",
        r["events_waiting"].as_u64().unwrap_or(0),
        r["events_waiting_peak"].as_u64().unwrap_or(0),
        r["events_dropped"].as_u64().unwrap_or(0),
    );
    let running = v["running"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(o, "tasks in hand: {}", running.len());
    for t in &running {
        let _ = writeln!(
            o,
            "  job {} task {} for {} (for {} s)",
            t["job"],
            t["task"],
            t["client"].as_str().unwrap_or("?"),
            cairn_node::node_status::unix_now().saturating_sub(t["since"].as_u64().unwrap_or(0))
        );
    }
    let _ = writeln!(
        o,
        "done: {} offers accepted, {} declined; {} results accepted by clients, {} refused, {} tasks failed, {} undelivered",
        n("accepted"),
        n("declined"),
        n("delivered"),
        n("refused"),
        n("failed"),
        n("undelivered")
    );
    if n("bad_requests") + n("bad_gossip") > 0 {
        let _ = writeln!(
            o,
            "refused from peers that broke the protocol: {} malformed or oversized requests, {} malformed gossip \
             messages (the node's log names the peers)",
            n("bad_requests"),
            n("bad_gossip")
        );
    }
    let _ = writeln!(
        o,
        "earnings and reputation are kept by each client (its ledger); refused results count against this node there"
    );
    let problems = v["problems"].as_array().cloned().unwrap_or_default();
    if !problems.is_empty() {
        let _ = writeln!(o, "latest problems:");
        for p in problems.iter().rev().take(10) {
            let _ = writeln!(
                o,
                "  {} job {} task {}: {}",
                p["kind"].as_str().unwrap_or("?"),
                p["job"],
                p["task"],
                p["reason"].as_str().unwrap_or("")
            );
        }
    }
    o
}
