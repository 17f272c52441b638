//! The `cairn` command and its scripts as a user meets them, with the (named) fake backend where proofs are not
//! the point: one process per data directory and job database (a second one refuses at once, naming the first),
//! `scripts/demo.sh` letting a user's flags win over its defaults, and `cairn execute --sweep`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A peer that is not there: a closed port on loopback, under a well-formed peer id.
const NOBODY: &str =
    "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWLAx9T3exPywCfkoMC3vFzMBoEtRzwYhnxx2VECkcWQos";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits (at most a minute) for a line on stdout or stderr starting with `prefix`; returns the
/// process and the rest of that line. Everything the process writes is passed on to the test's stderr.
fn spawn_until(mut cmd: Command, prefix: &'static str) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cairn");
    let (tx, rx) = mpsc::channel();
    let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
    for pipe in [out, err] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                if let Some(rest) = line.strip_prefix(prefix) {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
    }
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no `{prefix}` line"));
    (Proc(child), line)
}

/// A fake-backend prover node with data directory `dir`.
fn node_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(CAIRN);
    cmd.args([
        "node",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--print-addr",
        "--no-benchmark",
    ])
    .args(["--workers", "1", "--threads", "1", "--heartbeat-secs", "2"])
    .args(["--backend", "fake", "--fake-time-scale", "0.2"])
    .arg("--data-dir")
    .arg(dir)
    .env("CAIRN_LOG", "warn");
    cmd
}

/// A fake-backend client of a 10-segment job (proofs of 1.6 s on the nodes above) with job database `db` and
/// data directory `data`.
fn client_cmd(bootstrap: &str, db: &Path, data: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(CAIRN);
    cmd.args(["prove", "--network", "--no-progress"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", bootstrap])
        .args(["--program", "sha-chain", "--iterations", "140000"])
        .args(["--backend", "fake", "--aggregation", "composite"])
        .args(["--po2", "14", "--task-slack-secs", "60"])
        .args([
            "--heartbeat-timeout-secs",
            "10",
            "--job-timeout-secs",
            "300",
        ])
        .arg("--db")
        .arg(db)
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("CAIRN_LOG", "warn");
    cmd
}

/// Runs a second process that must refuse at once: it fails within 15 s, and its one-line reason names `what`,
/// the process holding it (`pid`) and the flag that picks another.
fn assert_refused(mut cmd: Command, what: &str, pid: u32, flag: &str) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the second process did not refuse at once: it is still running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("refused after {:?}: {err}", started.elapsed());
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(what), "{err}");
    assert!(
        err.contains(&format!("is in use by process {pid} (")),
        "{err}"
    );
    assert!(err.contains(&format!("another {flag}")), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
}

/// Penalties in a client's job database.
fn penalties(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM ledger_events WHERE kind = 'penalty'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Two clients on one job database, or on one data directory (one peer identity), would fight over the job.
/// The second refuses at once, naming the first; the first finishes as if alone, no prover penalized; once
/// it has exited, the same command runs (and resumes the finished job).
#[test]
fn a_second_client_on_the_same_job_database_or_data_directory_refuses_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = spawn_until(node_cmd(&dir.path().join("node")), "listening ");
    let (db, data, out) = (
        dir.path().join("jobs.sqlite"),
        dir.path().join("client"),
        dir.path().join("receipt.bin"),
    );
    let (mut first, _) = spawn_until(client_cmd(&addr, &db, &data, &out), "client listening on ");
    let pid = first.0.id();
    // Same database, another data directory (another identity): the job's state would be shared.
    assert_refused(
        client_cmd(&addr, &db, &dir.path().join("other"), &out),
        &format!("the job database {}", db.display()),
        pid,
        "--db",
    );
    // Same data directory (the same peer identity), another database.
    assert_refused(
        client_cmd(&addr, &dir.path().join("other.sqlite"), &data, &out),
        &format!("the client's data directory {}", data.display()),
        pid,
        "--data-dir",
    );
    let status = first.0.wait().unwrap();
    assert!(status.success(), "the first client failed");
    assert!(out.exists());
    assert_eq!(penalties(&db), 0, "a prover was penalized");
    // Its locks went with it.
    let again: Output = client_cmd(&addr, &db, &data, &out).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// Two nodes on one data directory would be one peer identity twice.
#[test]
fn a_second_node_on_the_same_data_directory_refuses_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let (first, _) = spawn_until(node_cmd(&data), "listening ");
    assert_refused(
        node_cmd(&data),
        &format!("the node's data directory {}", data.display()),
        first.0.id(),
        "--data-dir",
    );
}

/// Two gateways on one session directory would both resume and run its sessions.
#[test]
fn a_second_gateway_on_the_same_gateway_directory_refuses_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = |n: &str| {
        let mut cmd = Command::new(CAIRN);
        cmd.args(["gateway", "--http", "127.0.0.1:0", "--print-addr"])
            .args([
                "--keys",
                "tester:a-key-0001",
                "--backend",
                "fake",
                "--po2",
                "14",
            ])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", NOBODY])
            .arg("--gateway-dir")
            .arg(dir.path().join("gateway"))
            .arg("--db")
            .arg(dir.path().join(format!("jobs-{n}.sqlite")))
            .arg("--data-dir")
            .arg(dir.path().join(format!("client-{n}")))
            .env("CAIRN_LOG", "warn");
        cmd
    };
    let (first, _) = spawn_until(gateway("1"), "gateway http://");
    assert_refused(
        gateway("2"),
        &format!(
            "the gateway directory {}",
            dir.path().join("gateway").display()
        ),
        first.0.id(),
        "--gateway-dir",
    );
}

/// `scripts/demo.sh --po2 auto`: the user's flag wins over the script's `--po2 14` (it was passed twice, and
/// clap refused it), and the devnet proves at the po2 the network chose. Fake backend, so it takes seconds.
#[test]
fn the_demo_script_lets_a_users_po2_win_over_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("devnet/receipt.bin");
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/demo.sh"
    ))
    .args(["--po2", "auto", "--backend", "fake", "--out"])
    .arg(&receipt)
    .env("CAIRN_DEMO_BIN", CAIRN)
    .env_remove("CAIRN_PO2")
    .env_remove("CAIRN_OUT")
    .env_remove("CAIRN_DEVNET_NODES")
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(receipt.with_extension("json")).unwrap()).unwrap();
    let choice = &summary["po2_choice"];
    assert!(choice.is_object(), "no po2 was chosen: {summary}");
    assert_eq!(summary["po2"], choice["po2"], "{summary}");
    // The script's other default still applies: two prover nodes.
    assert!(err.contains("starting 2 prover nodes"), "{err}");
}

/// `cairn execute --sweep` leaves po2 15 out unless asked (it took 14 minutes for seed-bench on 2 cores),
/// saying so, and executes every other size.
#[test]
fn execute_sweep_leaves_po2_15_out_unless_asked() {
    let sweep = |extra: &[&str]| {
        let out = Command::new(CAIRN)
            .args(["execute", "--program", "sha-chain", "--sweep"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The table's rows: po2 and segment count.
    let rows = |table: &str| -> Vec<(u8, String)> {
        table
            .lines()
            .skip_while(|l| !(l.contains("segments") && l.contains("inflation")))
            .skip(1)
            .map_while(|l| {
                let mut f = l.split_whitespace();
                let po2 = f.next()?.parse().ok()?;
                Some((po2, f.next()?.to_string()))
            })
            .collect()
    };
    let default = sweep(&[]);
    let r = rows(&default);
    assert_eq!(
        r.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        (14..=22).collect::<Vec<u8>>(),
        "{default}"
    );
    for (po2, segments) in &r {
        if *po2 == 15 {
            assert_eq!(segments, "(left", "{default}");
        } else {
            assert!(segments.parse::<u32>().unwrap() >= 1, "{default}");
        }
    }
    assert!(default.contains("--sweep-po2-15"), "{default}");
    let all = sweep(&["--sweep-po2-15"]);
    let r = rows(&all);
    let (_, at15) = r.iter().find(|(p, _)| *p == 15).expect("a po2 15 row");
    assert!(at15.parse::<u32>().unwrap() >= 1, "{all}");
}

/// Issue 29, "Also": the fuzz targets' entry points (`cairn_net::fuzz`, `cairn_node::fuzz`,
/// `cairn_gateway::fuzz`, `JobDb::overwrite_records_for_fuzzing`) are compiled into the library crates (a
/// feature only the fuzz crate enabled would build each of them twice in a workspace build), but nothing a
/// node runs calls them, so the linker leaves them out of the `cairn` binary. This holds it: none of their
/// symbols may be in the binary's symbol table.
#[test]
fn the_fuzz_entry_points_are_not_linked_into_the_cairn_binary() {
    let out = Command::new("nm")
        .arg(CAIRN)
        .output()
        .expect("nm (binutils; scripts/test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let symbols = String::from_utf8_lossy(&out.stdout);
    assert!(
        symbols.lines().count() > 1_000,
        "the binary has no symbol table to check"
    );
    let linked: Vec<&str> = symbols
        .lines()
        .filter(|l| {
            [
                "cairn_net4fuzz",
                "cairn_node4fuzz",
                "cairn_gateway4fuzz",
                "for_fuzzing",
            ]
            .iter()
            .any(|f| l.contains(f))
        })
        .take(5)
        .collect();
    assert!(
        linked.is_empty(),
        "fuzz-only entry points are in the cairn binary: {linked:?}"
    );
}
