//! `cairn gateway` as a user runs it: a separate process in front of real prover nodes, and an unchanged
//! RISC Zero host program (`examples/stock-host`: risc0-zkvm 3.0.6 with its default features, no Cairn crate)
//! that proves its guest through it with only `BONSAI_API_URL` and `BONSAI_API_KEY` set. Real proofs at
//! po2 14: the receipt the host verifies with its own `receipt.verify(image_id)` is the point.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
const KEY: &str = "stock-host-key-1";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits for the stdout line starting with `prefix`; returns the rest of it.
fn spawn_reporting(mut cmd: Command, prefix: &'static str) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start cairn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix(prefix) {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("no `{prefix}` line"));
    (Proc(child), line)
}

fn node(dir: &Path, name: &str) -> (Proc, String) {
    let mut cmd = Command::new(CAIRN);
    cmd.args([
        "node",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--print-addr",
    ])
    .args([
        "--workers",
        "1",
        "--threads",
        "1",
        "--heartbeat-secs",
        "2",
        "--no-benchmark",
    ])
    .arg("--data-dir")
    .arg(dir.join(name))
    .env("CAIRN_LOG", "warn");
    spawn_reporting(cmd, "listening ")
}

/// Builds the example host (its own Cargo project and lockfile) in a target directory outside the clone.
fn build_stock_host() -> PathBuf {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/stock-host/Cargo.toml"
    );
    let target = std::env::var_os("CAIRN_STOCK_HOST_TARGET")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/cairn/target/stock-host")
        });
    // Built as its user would, and exactly as .ci/run prebuilds it (so the two share their artifacts): the
    // `cargo` on PATH in a clean environment, none of this test's cargo variables or scripts/cargo.sh's
    // offline setting (the example has no prover, so it needs none).
    let mut cargo = Command::new("cargo");
    cargo.env_clear();
    for keep in ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cargo.env(keep, v);
        }
    }
    // A debug build, as a user's `cargo run` makes: 2.9 minutes cold here against 4.6 for `--release`, and
    // the host only uploads, polls and verifies.
    let status = cargo
        .args(["build", "--locked", "--manifest-path", manifest])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building examples/stock-host failed");
    target.join("debug/stock-host")
}

#[test]
fn a_stock_risc0_host_proves_through_the_gateway_unchanged() {
    let host = build_stock_host();
    let dir = tempfile::tempdir().unwrap();
    let (_a, a) = node(dir.path(), "a");
    let (_b, b) = node(dir.path(), "b");
    let mut gw = Command::new(CAIRN);
    gw.args([
        "gateway",
        "--http",
        "127.0.0.1:0",
        "--print-addr",
        "--po2",
        "14",
    ])
    .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
    .arg("--bootstrap")
    .arg(format!("{a},{b}"))
    .arg("--keys")
    .arg(format!("tester:{KEY}"))
    .arg("--gateway-dir")
    .arg(dir.path().join("gateway"))
    .arg("--db")
    .arg(dir.path().join("jobs.sqlite"))
    .arg("--data-dir")
    .arg(dir.path().join("client"))
    // Nodes here skip their start-up benchmark: generous slack for the first deadlines.
    .args(["--task-slack-secs", "60", "--heartbeat-timeout-secs", "10"])
    .env("CAIRN_LOG", "warn");
    let (_gw, url) = spawn_reporting(gw, "gateway ");

    let out = Command::new(&host)
        .args(["1", "1"])
        .env("BONSAI_API_URL", &url)
        .env("BONSAI_API_KEY", KEY)
        .env_remove("RISC0_DEV_MODE")
        .env_remove("RISC0_PROVER")
        .output()
        .expect("run the stock host");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the stock host failed:\n{stdout}\n{stderr}"
    );
    // The host printed this after its own receipt.verify(image_id) and journal check passed.
    assert!(stdout.contains("verified: image"), "{stdout}");
    assert!(stdout.contains("segments=5"), "{stdout}");

    // The same host with a key the gateway does not know gets the gateway's sentence, not a hang.
    let out = Command::new(&host)
        .env("BONSAI_API_URL", &url)
        .env("BONSAI_API_KEY", "not-a-key")
        .env_remove("RISC0_DEV_MODE")
        .env_remove("RISC0_PROVER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown API key"), "{stderr}");
}
