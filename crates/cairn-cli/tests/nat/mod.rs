//! Provers at home: a NAT lab of network namespaces (needs root, iproute2 and iptables; CI installs them).
//!
//! ```text
//!   "internet" 203.0.113.0/24 (a bridge in namespace <p>net)
//!     |-- relay   203.0.113.1   `cairn relay`
//!     |-- public  203.0.113.2   a client with a public address
//!     |-- router A 203.0.113.11 -- NAT -- home A 192.168.1.0/24 (host 192.168.1.2)
//!     |-- router B 203.0.113.12 -- NAT -- home B 192.168.2.0/24 (host 192.168.2.2)
//!     '-- router C 203.0.113.13 -- NAT -- home C 192.168.3.0/24 (host 192.168.3.2)
//! ```
//!
//! Routers masquerade their homes (`--random-fully` for symmetric NAT) and forward only what the homes
//! started: nothing outside can open a connection to a home. Home A's host has a second, unplugged cable into
//! home C, for the test of a laptop that moves.

use super::*;

/// Every namespace and cable of one lab; deleted when dropped.
struct NatLab {
    prefix: String,
}

const HOMES: [(char, u8); 3] = [('a', 1), ('b', 2), ('c', 3)];

/// A fake job long enough for a client that knows only the relay to hear of both provers before it ends: 10
/// segments of 2 s each (about 20 s on one prover). With 0.4 s proofs, one prover, heard first, could finish
/// the whole job before the other's first announcement (every 2 s) reached the client (CI saw it once).
const BOTH_PROVERS: Proofs = Proofs::Fake {
    scale: 0.25,
    cycles: 140_000,
};

impl NatLab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Builds the lab, or says why it cannot be built here.
    fn create(symmetric: bool) -> Result<Self, String> {
        let id = std::process::id() % 10_000;
        let n = NEXT_LAB.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let lab = NatLab {
            prefix: format!("cn{id}{n}"),
        };
        let p = &lab.prefix;
        let net = lab.ns("net");
        let mut steps: Vec<Vec<String>> = Vec::new();
        let mut ip = |args: &[&str]| steps.push(args.iter().map(|s| s.to_string()).collect());
        ip(&["netns", "add", &net]);
        ip(&["-n", &net, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &net, "link", "set", "br0", "up"]);
        ip(&["-n", &net, "link", "set", "lo", "up"]);
        // Public hosts: the relay and a public client.
        for (name, addr) in [("relay", "203.0.113.1"), ("pub", "203.0.113.2")] {
            let ns = lab.ns(name);
            let (outer, inner) = (format!("{p}{name}o"), format!("{p}{name}i"));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &outer, "netns", &net]);
            ip(&["-n", &net, "link", "set", &outer, "master", "br0", "up"]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        // Homes: a router with a WAN leg on the bridge and a LAN leg to the home's host.
        for (h, i) in HOMES {
            let (rtr, host) = (lab.ns(&format!("r{h}")), lab.ns(&format!("h{h}")));
            let (wo, wi) = (format!("{p}w{h}o"), format!("{p}w{h}"));
            let (lr, lh) = (format!("{p}l{h}r"), format!("{p}l{h}h"));
            ip(&["netns", "add", &rtr]);
            ip(&["netns", "add", &host]);
            ip(&["link", "add", &wo, "type", "veth", "peer", "name", &wi]);
            ip(&["link", "set", &wo, "netns", &net]);
            ip(&["-n", &net, "link", "set", &wo, "master", "br0", "up"]);
            ip(&["link", "set", &wi, "netns", &rtr]);
            ip(&[
                "-n",
                &rtr,
                "addr",
                "add",
                &format!("203.0.113.1{i}/24"),
                "dev",
                &wi,
            ]);
            ip(&["-n", &rtr, "link", "set", &wi, "up"]);
            ip(&["link", "add", &lr, "type", "veth", "peer", "name", &lh]);
            ip(&["link", "set", &lr, "netns", &rtr]);
            ip(&["link", "set", &lh, "netns", &host]);
            ip(&[
                "-n",
                &rtr,
                "addr",
                "add",
                &format!("192.168.{i}.1/24"),
                "dev",
                &lr,
            ]);
            ip(&["-n", &rtr, "link", "set", &lr, "up"]);
            ip(&["-n", &rtr, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &host,
                "addr",
                "add",
                &format!("192.168.{i}.2/24"),
                "dev",
                &lh,
            ]);
            ip(&["-n", &host, "link", "set", &lh, "up"]);
            ip(&["-n", &host, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &host,
                "route",
                "add",
                "default",
                "via",
                &format!("192.168.{i}.1"),
            ]);
        }
        // Home A's host: a second cable into home C (down until the laptop moves).
        let (mr, mh) = (format!("{p}mcr"), format!("{p}mah"));
        ip(&["link", "add", &mr, "type", "veth", "peer", "name", &mh]);
        ip(&["link", "set", &mr, "netns", &lab.ns("rc")]);
        ip(&["link", "set", &mh, "netns", &lab.ns("ha")]);
        ip(&["-n", &lab.ns("rc"), "link", "set", &mr, "up"]);
        ip(&[
            "-n",
            &lab.ns("rc"),
            "addr",
            "add",
            "192.168.33.1/24",
            "dev",
            &mr,
        ]);
        for step in &steps {
            run("ip", step)?;
        }
        for (h, _) in HOMES {
            let rtr = lab.ns(&format!("r{h}"));
            let wan = format!("{p}w{h}");
            run(
                "ip",
                &sv(&[
                    "netns",
                    "exec",
                    &rtr,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ]),
            )?;
            let mut masq = sv(&[
                "netns",
                "exec",
                &rtr,
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                &wan,
                "-j",
                "MASQUERADE",
            ]);
            if symmetric {
                masq.push("--random-fully".into());
            }
            run("ip", &masq)?;
            // A home router: what the home started comes back in; nothing else does.
            for rule in [
                vec!["-P", "FORWARD", "DROP"],
                vec!["-A", "FORWARD", "!", "-i", &wan, "-j", "ACCEPT"],
                vec![
                    "-A",
                    "FORWARD",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                ],
            ] {
                let mut a = sv(&["netns", "exec", &rtr, "iptables"]);
                a.extend(rule.iter().map(|s| s.to_string()));
                run("ip", &a)?;
            }
        }
        Ok(lab)
    }

    /// `cairn <args>` inside namespace `name`.
    fn cairn(&self, name: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(name), CAIRN]);
        c
    }

    /// The relay, listening on 203.0.113.1:4001.
    fn relay(&self, dir: &Path) -> Node {
        let mut c = self.cairn("relay");
        c.args([
            "relay",
            "--listen",
            "/ip4/203.0.113.1/tcp/4001",
            "--print-addr",
        ])
        .args(["--autonat-private-ips"])
        .arg("--data-dir")
        .arg(dir.join("relay"))
        .env("CAIRN_LOG", nat_log());
        spawn_node(c)
    }

    /// A prover in home `h` (`a`, `b` or `c`), knowing only the relay.
    fn prover(&self, h: char, dir: &Path, relay: &Node, proofs: Proofs, extra: &[&str]) -> Node {
        let mut c = node_command(
            Some(&self.ns(&format!("h{h}"))),
            "/ip4/0.0.0.0/tcp/4011",
            dir,
            &format!("home-{h}"),
            proofs,
            extra,
        );
        c.args(["--bootstrap", &relay.addr, "--relay", &relay.addr])
            .args(["--autonat-private-ips", "--announce-secs", "2"])
            // CAIRN_NAT_LOG=cairn_net=debug shows what the provers' networks do.
            .env("CAIRN_LOG", nat_log());
        spawn_node(c)
    }

    /// The relay and provers in homes A and B, once both hold a reservation on it.
    fn relay_and_two_provers(&self, dir: &Path, proofs: Proofs) -> (Node, Node, Node) {
        let relay = self.relay(dir);
        let a = self.prover('a', dir, &relay, proofs, &[]);
        let b = self.prover('b', dir, &relay, proofs, &[]);
        for (h, name) in [("ha", "home-a"), ("hb", "home-b")] {
            wait_until(
                "the prover holds a relay reservation",
                Duration::from_secs(30),
                || self.status(h, dir, name)["reachability"]["relays"][0]["reserved"] == true,
            );
        }
        (relay, a, b)
    }

    /// The client command in namespace `name` (`pub`, or a home host `ha`/`hb`/`hc`), knowing only the relay.
    fn client(
        &self,
        name: &str,
        dir: &Path,
        relay: &Node,
        proofs: Proofs,
        extra: &[&str],
    ) -> Command {
        let args: Vec<_> = client_cmd(dir, &[relay], proofs, extra)
            .get_args()
            .map(|a| {
                if a == "/ip4/127.0.0.1/tcp/0" {
                    "/ip4/0.0.0.0/tcp/4020".into()
                } else {
                    a.to_os_string()
                }
            })
            .collect();
        let mut c = self.cairn(name);
        c.args(args)
            .args(["--relay", &relay.addr, "--autonat-private-ips"])
            .env("CAIRN_LOG", nat_log());
        c
    }

    /// Takes home `h`'s uplink down (a laptop lid closed, a router unplugged) or back up.
    fn uplink(&self, h: char, up: bool) {
        let wan = format!("{}w{h}", self.prefix);
        run(
            "ip",
            &sv(&[
                "-n",
                &self.ns(&format!("r{h}")),
                "link",
                "set",
                &wan,
                if up { "up" } else { "down" },
            ]),
        )
        .unwrap();
    }

    /// Moves home A's host to home C's network: a new address, the old network gone.
    fn move_a_to_c(&self) {
        let (ha, p) = (self.ns("ha"), &self.prefix);
        for step in [
            sv(&["-n", &ha, "link", "set", &format!("{p}lah"), "down"]),
            sv(&["-n", &ha, "addr", "flush", "dev", &format!("{p}lah")]),
            sv(&[
                "-n",
                &ha,
                "addr",
                "add",
                "192.168.33.2/24",
                "dev",
                &format!("{p}mah"),
            ]),
            sv(&["-n", &ha, "link", "set", &format!("{p}mah"), "up"]),
            sv(&[
                "-n",
                &ha,
                "route",
                "replace",
                "default",
                "via",
                "192.168.33.1",
            ]),
        ] {
            run("ip", &step).unwrap();
        }
    }

    /// `cairn node status --json` of a node in namespace `ns` with data directory `dir/name`.
    fn status(&self, ns: &str, dir: &Path, name: &str) -> serde_json::Value {
        let out = self
            .cairn(ns)
            .args(["node", "status", "--json", "--data-dir"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// `CAIRN_NAT_LOG=cairn_net=debug` (say) shows what the lab's processes do.
fn nat_log() -> String {
    std::env::var("CAIRN_NAT_LOG").unwrap_or_else(|_| "warn".into())
}

static NEXT_LAB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for NatLab {
    fn drop(&mut self) {
        let mut names = vec!["net".to_string(), "relay".into(), "pub".into()];
        for (h, _) in HOMES {
            names.push(format!("r{h}"));
            names.push(format!("h{h}"));
        }
        for n in names {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(&n)])
                .status();
        }
    }
}

fn sv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn run(cmd: &str, args: &[String]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The lab for `test`, or `None` where the opt-out variable [`NETNS_OPT_OUT`] is set (the test is then skipped
/// and listed as such). Where the lab cannot be built (not root, no iproute2 or iptables), the test fails with
/// the reason: it never passes without having run.
fn lab(test: &str, symmetric: bool) -> Option<NatLab> {
    if opted_out(test, NETNS_OPT_OUT) {
        return None;
    }
    match NatLab::create(symmetric) {
        Ok(l) => Some(l),
        Err(why) => panic!(
            "cannot build the NAT lab here (it needs root, iproute2 and iptables; scripts/test.sh installs them \
             where it can): {why}; set {NETNS_OPT_OUT}=1 to skip the tests that need network namespaces"
        ),
    }
}

/// Waits until `f` holds, checking every half second.
fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn advertised(status: &serde_json::Value) -> Vec<String> {
    status["reachability"]["advertised"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

/// Every address a node behind NAT advertises goes through the relay; none is a home's private address.
fn assert_only_dialable(status: &serde_json::Value) {
    let addrs = advertised(status);
    assert!(!addrs.is_empty(), "advertises nothing: {status}");
    for a in &addrs {
        assert!(
            a.starts_with("/ip4/203.0.113.1/tcp/4001/p2p/") && a.contains("/p2p-circuit/p2p/"),
            "a node behind NAT advertises {a}, which nobody outside its home can dial: {status}"
        );
    }
}

#[test]
fn provers_behind_two_nats_prove_for_a_public_client_then_one_behind_nat_advertising_only_what_can_be_dialled(
) {
    let _g = cores(QUICK);
    let Some(lab) = lab(
        "provers_behind_two_nats_prove_for_a_public_client_then_one_behind_nat_advertising_only_what_can_be_dialled",
        false,
    ) else {
        return;
    };
    let dir = tmp();
    let (relay, a, b) = lab.relay_and_two_provers(dir.path(), BOTH_PROVERS);
    let out = lab
        .client("pub", dir.path(), &relay, BOTH_PROVERS, &[])
        .output()
        .unwrap();
    eprintln!("client stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert_receipt_verifies(dir.path(), BOTH_PROVERS);
    let s = summary(dir.path());
    for p in [&a, &b] {
        assert!(
            s["proved_by"].get(&p.peer).is_some(),
            "{} proved nothing: {s}",
            p.peer
        );
    }
    for (h, name) in [("ha", "home-a"), ("hb", "home-b")] {
        let st = lab.status(h, dir.path(), name);
        eprintln!("{name}: {st}");
        assert_only_dialable(&st);
        assert!(st["delivered"].as_u64().unwrap() >= 1, "{st}");
    }

    // Now a client behind a third (cone) NAT: it reaches the provers through the relay, and hole punching
    // tries to move each to a direct connection (in this lab about half the attempts succeed: TCP simultaneous
    // open through two Linux NATs is a race; either way the job completes).
    let job2 = dir.path().join("job2");
    std::fs::create_dir_all(&job2).unwrap();
    let out = lab
        .client("hc", &job2, &relay, BOTH_PROVERS, &[])
        .output()
        .unwrap();
    eprintln!("client stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert_receipt_verifies(&job2, BOTH_PROVERS);
    for (h, name) in [("ha", "home-a"), ("hb", "home-b")] {
        let st = lab.status(h, dir.path(), name);
        eprintln!("{name} after a client behind NAT: {}", st["reachability"]);
        let punches = &st["reachability"]["hole_punches"];
        assert!(
            punches[0].as_u64().unwrap() + punches[1].as_u64().unwrap() >= 1,
            "the client behind NAT did not come through the relay: {st}"
        );
        assert_only_dialable(&st);
    }
}

/// Symmetric NAT everywhere (`--random-fully`): hole punching cannot work, so everything goes through the
/// relay, including segment blobs of 200 KiB, over libp2p's old 128 KiB per-circuit limit. The client is behind
/// NAT too. The fake backend (named as such: the proof adds nothing here), whose segments carry the input after
/// its cycle count as real ones carry their input's pages, so a 200 KiB input makes 200 KiB segments.
#[test]
fn behind_symmetric_nats_client_and_provers_move_large_blobs_through_the_relay() {
    let _g = cores(QUICK);
    let Some(lab) = lab(
        "behind_symmetric_nats_client_and_provers_move_large_blobs_through_the_relay",
        true,
    ) else {
        return;
    };
    let dir = tmp();
    let (relay, a, b) = lab.relay_and_two_provers(dir.path(), QUICK);
    let input = dir.path().join("input.bin");
    let mut bytes = 60_000u64.to_le_bytes().to_vec();
    bytes.extend((0..200 * 1024u32).map(|i| (i * 7 + i / 251) as u8));
    std::fs::write(&input, &bytes).unwrap();
    let input = input.to_str().unwrap();
    let out = lab
        .client(
            "hc",
            dir.path(),
            &relay,
            QUICK,
            &["--program", "sha-chain", "--input", input],
        )
        .args(["--backend", "fake", "--aggregation", "composite"])
        .output()
        .unwrap();
    eprintln!("client stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert_fake_receipt_verifies(dir.path(), &bytes);
    let conn = rusqlite::Connection::open(dir.path().join("jobs.sqlite")).unwrap();
    let (n, smallest): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), MIN(length(segment)) FROM segments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        n >= 5 && smallest > 128 * 1024,
        "{n} segments, the smallest {smallest} bytes"
    );
    let s = summary(dir.path());
    for p in [&a, &b] {
        assert!(
            s["proved_by"].get(&p.peer).is_some(),
            "{} proved nothing: {s}",
            p.peer
        );
    }
    for (h, name) in [("ha", "home-a"), ("hb", "home-b")] {
        let st = lab.status(h, dir.path(), name);
        eprintln!("{name}: {st}");
        assert_only_dialable(&st);
        assert_eq!(
            st["reachability"]["hole_punches"][0], 0,
            "a punch through symmetric NAT: {st}"
        );
    }
}

/// A laptop's lid closes for a minute mid-proof: the job finishes (its task reassigned, or its result
/// accepted when it is back), nothing verified is proved twice, and the node reconnects by itself and gets
/// work again. Then it moves to another network and rejoins under the same identity.
#[test]
fn a_prover_that_loses_its_uplink_or_moves_reconnects_by_itself_and_gets_work_again() {
    // No cores guard: its fake proofs sleep and it mostly waits out the outage, so it takes no CPU from the
    // real-proof tests, and holding the guard for its ~80 s would keep them waiting.
    let Some(lab) = lab(
        "a_prover_that_loses_its_uplink_or_moves_reconnects_by_itself_and_gets_work_again",
        false,
    ) else {
        return;
    };
    let dir = tmp();
    let (relay, a, _b) = lab.relay_and_two_provers(dir.path(), SLOW);
    let job1 = dir.path().join("job1");
    std::fs::create_dir_all(&job1).unwrap();
    let mut client = lab.client("pub", &job1, &relay, SLOW, &[]).spawn().unwrap();
    wait_until(
        "home A's prover holds a task",
        Duration::from_secs(60),
        || {
            !lab.status("ha", dir.path(), "home-a")["running"]
                .as_array()
                .unwrap()
                .is_empty()
        },
    );
    lab.uplink('a', false);
    std::thread::sleep(Duration::from_secs(60));
    lab.uplink('a', true);
    let status = client.wait().unwrap();
    assert!(status.success());
    assert_receipt_verifies(&job1, SLOW);
    // Every segment was verified once: the database holds one receipt per segment.
    assert_eq!(
        verified_count(&job1) as u64,
        summary(&job1)["segments"].as_u64().unwrap()
    );
    wait_until(
        "home A's prover is back on its relay",
        Duration::from_secs(60),
        || lab.status("ha", dir.path(), "home-a")["reachability"]["relays"][0]["reserved"] == true,
    );

    // It moves to home C's network (a new address); same identity, it gets work again.
    let before = lab.status("ha", dir.path(), "home-a")["delivered"]
        .as_u64()
        .unwrap();
    let moved_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    lab.move_a_to_c();
    wait_until(
        "the moved prover has a new reservation on its relay",
        Duration::from_secs(90),
        || {
            let st = lab.status("ha", dir.path(), "home-a");
            st["reachability"]["relays"][0]["reserved_at"]
                .as_u64()
                .is_some_and(|t| t >= moved_at)
                && st["peer"] == a.peer.as_str()
        },
    );
    let job2 = dir.path().join("job2");
    std::fs::create_dir_all(&job2).unwrap();
    // Only the moved prover may work on this job: home B's is drained by killing it.
    drop(_b);
    let out = lab
        .client("pub", &job2, &relay, QUICK, &[])
        .output()
        .unwrap();
    eprintln!("client stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert_receipt_verifies(&job2, QUICK);
    assert!(summary(&job2)["proved_by"].get(&a.peer).is_some());
    let after = lab.status("ha", dir.path(), "home-a")["delivered"]
        .as_u64()
        .unwrap();
    assert!(after > before, "the moved prover delivered nothing new");
}
