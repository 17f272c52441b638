//! Issue 29's flood of made-up identities, with real processes: one peer announces 10,000 identities that claim
//! the fastest machine, their addresses pointing at the honest nodes' ports, at closed loopback ports, and at a
//! host in a network namespace of the test's own that runs no Cairn node. An honest job on the same network must
//! finish within 1.2x of its time without the flood, the client must dial the honest nodes' addresses for no
//! other identity and the other host a bounded number of times, and its memory must stay bounded.
//!
//! Everything runs in the test's namespaces (`TwoHosts`): the nodes, the client and the flooder in host A (the
//! flooder is a thread of this process that joined A's namespace), and the third party at 10.77.0.2 in host B,
//! whose firewall counts the connection attempts it receives (nothing listens there: each is refused at once).
//!
//! The flooder speaks gossipsub's wire format itself: it opens a `/meshsub/1.1.0` stream to the client and
//! publishes each announcement as a message signed by its made-up author, exactly what a gossipsub peer
//! forwarding other authors' messages sends. One connection carries all 10,000.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, ping, tcp, yamux, Multiaddr, StreamProtocol};

use super::{
    assert_fake_receipt_verifies, client_cmd, cores, node_command, opted_out, spawn_node, summary,
    tmp, Node, Proofs, TwoHosts, CAIRN, NETNS_OPT_OUT,
};

/// Identities the flooder makes up.
const IDENTITIES: usize = 10_000;
/// The honest nodes' ports, and the clients', inside host A (a namespace of the test's own: nothing else there).
const PORT_A: u16 = 41_001;
const PORT_B: u16 = 41_002;
const CLIENT_PORTS: [u16; 2] = [41_010, 41_011];
/// Closed loopback ports the made-up identities claim (20000-29999), and the third party's ports (30000-39999).
const CLOSED_BASE: u16 = 20_000;
const THIRD_PARTY: &str = "10.77.0.2";
const THIRD_PARTY_BASE: u16 = 30_000;

/// Thirty fake segments of 1.6 s on two one-slot provers: about 25 s undisturbed.
const JOB: Proofs = Proofs::Fake {
    scale: 0.2,
    cycles: 30 * 14_336,
};

/// Runs `args` in namespace `ns`; its stdout.
fn in_ns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec {ns} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SYN packets counted by the rule of `ns`'s INPUT chain whose comment is `tag`.
fn syns(ns: &str, tag: &str) -> u64 {
    in_ns(ns, &["iptables", "-w", "-nvxL", "INPUT"])
        .lines()
        .find(|l| l.contains(&format!("/* {tag} */")))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no counting rule {tag} in {ns}"))
}

fn count_syns(ns: &str, tag: &str, matching: &[&str]) {
    let mut args = vec!["iptables", "-w", "-A", "INPUT", "-p", "tcp", "--syn"];
    args.extend(matching);
    args.extend(["-m", "comment", "--comment", tag]);
    in_ns(ns, &args);
}

/// What one client run measured.
struct ClientRun {
    secs: f64,
    /// Peak resident memory (VmHWM), KiB.
    peak_kib: u64,
    /// Connection attempts to each honest node's port, to the closed loopback ports and to the third party
    /// during the run (the nodes' own connections count there too).
    syns_a: u64,
    syns_b: u64,
    syns_closed: u64,
    syns_third: u64,
    /// Dials of the client that failed at an honest node's address (another identity answered there, or
    /// nobody): none may happen for a made-up identity.
    failed_dials_at_nodes: usize,
}

fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One client in host A proving `JOB` (a fresh identity and database in `dir`) on the two nodes, with
/// `during` started once it runs; what it measured.
fn run_client(
    ns: &str,
    third: &str,
    dir: &std::path::Path,
    nodes: &[&Node],
    port: u16,
    during: impl FnOnce(),
) -> ClientRun {
    std::fs::create_dir_all(dir).unwrap();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let args: Vec<std::ffi::OsString> = client_cmd(dir, nodes, JOB, &[])
        .get_args()
        .map(|a| {
            if a == "/ip4/127.0.0.1/tcp/0" {
                listen.clone().into()
            } else {
                a.to_os_string()
            }
        })
        .collect();
    let before = (
        syns(ns, "node-a"),
        syns(ns, "node-b"),
        syns(ns, "closed"),
        syns(third, "third"),
    );
    let log = std::fs::File::create(dir.join("client.log")).unwrap();
    let started = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, CAIRN])
        .args(&args)
        // Debug for the network: every failed dial is a line naming its address.
        .env("CAIRN_LOG", "info,cairn_net=debug")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    during();
    let mut peak = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        peak = peak.max(peak_kib(child.id()).unwrap_or(0));
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client ran past 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = started.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "the client failed; its log is {}",
        dir.join("client.log").display()
    );
    ClientRun {
        secs,
        peak_kib: peak,
        syns_a: syns(ns, "node-a") - before.0,
        syns_b: syns(ns, "node-b") - before.1,
        syns_closed: syns(ns, "closed") - before.2,
        syns_third: syns(third, "third") - before.3,
        failed_dials_at_nodes: std::fs::read_to_string(dir.join("client.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("outgoing connection failed"))
            .filter(|l| {
                [PORT_A, PORT_B]
                    .iter()
                    .any(|p| l.contains(&format!("/tcp/{p}")))
            })
            .count(),
    }
}

/// The gossipsub RPC frames (unsigned-varint length, then the protobuf `RPC { publish: [Message] }`) of
/// `IDENTITIES` capacity announcements, each signed by its own made-up author; and the authors.
fn forged_announcements(nodes: [&str; 2]) -> (Vec<Vec<u8>>, Vec<String>) {
    let topic = cairn_net::Topic::Capacity.name();
    let mut frames = Vec::with_capacity(IDENTITIES);
    let mut authors = Vec::with_capacity(IDENTITIES);
    for i in 0..IDENTITIES {
        let key = Keypair::generate_ed25519();
        let me = key.public().to_peer_id();
        // A third at the honest nodes' addresses, a third at closed loopback ports, a third at another host.
        let at = match i % 3 {
            0 => nodes[i / 3 % 2].to_string(),
            1 => format!("/ip4/127.0.0.1/tcp/{}", CLOSED_BASE + (i % 10_000) as u16),
            _ => format!(
                "/ip4/{THIRD_PARTY}/tcp/{}",
                THIRD_PARTY_BASE + (i % 10_000) as u16
            ),
        };
        let announcement = cairn_net::protocol::CapacityAnnouncement {
            capacity: cairn_net::protocol::NodeCapacity {
                memory_bytes: 64 << 30,
                max_po2: 22,
                cycles_per_sec: 50_000_000,
                slots: 8,
                recursion: true,
            },
            free_slots: 8,
            benchmark: None,
            addrs: vec![format!("{at}/p2p/{me}")],
        };
        let data = cairn_net::protocol::encode(&announcement).unwrap();
        let from = me.to_bytes();
        let seqno = (i as u64 + 1).to_be_bytes();
        let mut unsigned = Vec::new();
        field(&mut unsigned, 1, &from);
        field(&mut unsigned, 2, &data);
        field(&mut unsigned, 3, &seqno);
        field(&mut unsigned, 4, topic.as_bytes());
        let signature = key
            .sign(&[&b"libp2p-pubsub:"[..], &unsigned].concat())
            .unwrap();
        let mut message = unsigned;
        field(&mut message, 5, &signature);
        let mut rpc = Vec::new();
        field(&mut rpc, 2, &message);
        let mut frame = Vec::new();
        varint(&mut frame, rpc.len() as u64);
        frame.extend(rpc);
        frames.push(frame);
        authors.push(me.to_string());
    }
    (frames, authors)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, (number << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// What the flooder speaks: ping (nodes close connections to peers without it) and raw streams.
#[derive(NetworkBehaviour)]
struct Flooder {
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// Joins this thread to network namespace `ns` (its sockets are then made there).
fn enter_netns(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace's handle");
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the namespace");
}

/// From inside namespace `ns`: connects to `client`, sends every frame over one gossipsub stream and keeps the
/// connection a few seconds. Returns how long sending took.
fn flood(ns: String, client: Multiaddr, frames: Vec<Vec<u8>>) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        enter_netns(&ns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut swarm = libp2p::SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(
                    tcp::Config::default(),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .unwrap()
                .with_behaviour(|_| Flooder {
                    ping: ping::Behaviour::default(),
                    stream: libp2p_stream::Behaviour::new(),
                })
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
            let mut control = swarm.behaviour().stream.new_control();
            // Take the client's own gossipsub stream (and read it away), so its side of the protocol is up.
            for v in ["/meshsub/1.1.0", "/meshsub/1.0.0"] {
                let mut incoming = control.accept(StreamProtocol::new(v)).unwrap();
                tokio::spawn(async move {
                    while let Some((_, mut s)) = incoming.next().await {
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                        });
                    }
                });
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut tx = Some(tx);
            // The client dials its bootstrap nodes as it starts; give it that moment, as a flood arriving a
            // little later would.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            swarm.dial(client.clone()).unwrap();
            tokio::spawn(async move {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send(peer_id);
                            }
                        }
                        SwarmEvent::OutgoingConnectionError { .. } if tx.is_some() => {
                            // The client is still starting: try again.
                            assert!(Instant::now() < deadline, "the client never answered");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = swarm.dial(client.clone());
                        }
                        _ => {}
                    }
                }
            });
            let peer = rx.await.unwrap();
            let mut stream = control
                .open_stream(peer, StreamProtocol::new("/meshsub/1.1.0"))
                .await
                .expect("a gossipsub stream to the client");
            let started = Instant::now();
            for frame in &frames {
                stream.write_all(frame).await.unwrap();
            }
            stream.flush().await.unwrap();
            let took = started.elapsed();
            tokio::time::sleep(Duration::from_secs(5)).await;
            took
        })
    })
}

/// See the module's comment.
#[test]
fn ten_thousand_made_up_identities_neither_slow_a_job_nor_point_its_client_at_other_hosts() {
    // Alone: it compares two runs' times.
    let _g = cores(Proofs::Real);
    let test =
        "ten_thousand_made_up_identities_neither_slow_a_job_nor_point_its_client_at_other_hosts";
    if opted_out(test, NETNS_OPT_OUT) {
        return;
    }
    let hosts = TwoHosts::create().unwrap_or_else(|why| {
        panic!(
            "cannot create network namespaces here (they need root and iproute2; scripts/test.sh installs it \
             where it can): {why}; set {NETNS_OPT_OUT}=1 to skip the tests that need them"
        )
    });
    let (a, b) = (hosts.a.as_str(), hosts.b.as_str());
    count_syns(
        a,
        "node-a",
        &["-i", "lo", "--dport", &PORT_A.to_string()][..],
    );
    count_syns(
        a,
        "node-b",
        &["-i", "lo", "--dport", &PORT_B.to_string()][..],
    );
    count_syns(
        a,
        "closed",
        &[
            "-i",
            "lo",
            "--dport",
            &format!("{CLOSED_BASE}:{}", CLOSED_BASE + 9_999),
        ][..],
    );
    count_syns(b, "third", &[]);

    let dir = tmp();
    let nodes: Vec<Node> = [PORT_A, PORT_B]
        .iter()
        .enumerate()
        .map(|(i, port)| {
            spawn_node(node_command(
                Some(a),
                &format!("/ip4/127.0.0.1/tcp/{port}"),
                dir.path(),
                &format!("node-{i}"),
                JOB,
                &[],
            ))
        })
        .collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let (frames, authors) = forged_announcements([
        &format!("/ip4/127.0.0.1/tcp/{PORT_A}"),
        &format!("/ip4/127.0.0.1/tcp/{PORT_B}"),
    ]);

    let quiet_dir = dir.path().join("quiet");
    let quiet = run_client(a, b, &quiet_dir, &refs, CLIENT_PORTS[0], || {});
    assert_fake_receipt_verifies(
        &quiet_dir,
        &cairn_guests::sha_chain_input(30 * 14_336, b"cairn"),
    );

    let flood_dir = dir.path().join("flood");
    let mut sender = None;
    let flooded = run_client(a, b, &flood_dir, &refs, CLIENT_PORTS[1], || {
        let client: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", CLIENT_PORTS[1])
            .parse()
            .unwrap();
        sender = Some(flood(hosts.a.clone(), client, frames));
    });
    let sent_in = sender.unwrap().join().expect("the flooder");
    assert_fake_receipt_verifies(
        &flood_dir,
        &cairn_guests::sha_chain_input(30 * 14_336, b"cairn"),
    );

    eprintln!(
        "flood: {IDENTITIES} identities sent in {:.2} s; job {:.1} s quiet, {:.1} s flooded ({:.2}x); client peak \
         RSS {} KiB quiet, {} KiB flooded; connection attempts quiet/flooded: node A {}/{}, node B {}/{}, closed \
         loopback ports {}/{}, the other host {}/{}",
        sent_in.as_secs_f64(),
        quiet.secs,
        flooded.secs,
        flooded.secs / quiet.secs,
        quiet.peak_kib,
        flooded.peak_kib,
        quiet.syns_a,
        flooded.syns_a,
        quiet.syns_b,
        flooded.syns_b,
        quiet.syns_closed,
        flooded.syns_closed,
        quiet.syns_third,
        flooded.syns_third
    );
    let s = summary(&flood_dir);
    let provers: Vec<&String> = s["proved_by"].as_object().unwrap().keys().collect();
    for p in &provers {
        assert!(!authors.contains(p), "a made-up identity proved: {p}");
        assert!(p == &&nodes[0].peer || p == &&nodes[1].peer, "{p}");
    }
    assert!(
        flooded.secs <= quiet.secs * 1.2,
        "the flooded job took {:.1} s, over 1.2x the quiet one's {:.1} s",
        flooded.secs,
        quiet.secs
    );
    // No dial of an honest node's address for another identity: no failed dial there (a dial for a made-up
    // identity meets the honest node and fails on its peer id), and no more connection attempts at its port
    // than without the flood.
    assert_eq!(quiet.failed_dials_at_nodes, 0);
    assert_eq!(
        flooded.failed_dials_at_nodes, 0,
        "the client dialed an honest node's address for a made-up identity"
    );
    assert!(flooded.syns_a <= quiet.syns_a && flooded.syns_b <= quiet.syns_b);
    // The other host: a few attempts per node, not one per identity naming it (3,333 did).
    assert!(
        flooded.syns_third <= cairn_net::UNPROVEN_CLAIMS_PER_IP as u64,
        "the other host got {} connection attempts",
        flooded.syns_third
    );
    assert!(
        flooded.syns_closed <= cairn_net::CLAIMS_PER_IP as u64,
        "closed loopback ports got {} connection attempts",
        flooded.syns_closed
    );
    assert!(
        flooded.peak_kib <= quiet.peak_kib + 64 * 1024,
        "the client's memory grew from {} to {} KiB",
        quiet.peak_kib,
        flooded.peak_kib
    );
    // The flood reached the client: it tried some of the addresses it was given (and nothing in the quiet run).
    assert_eq!(quiet.syns_third + quiet.syns_closed, 0);
    assert!(
        flooded.syns_third + flooded.syns_closed > 0,
        "the client never tried a made-up identity's address: did the flood reach it?"
    );
}
