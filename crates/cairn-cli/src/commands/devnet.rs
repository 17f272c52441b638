//! `cairn devnet`: N prover nodes and one client as separate processes on this machine (loopback), one
//! bundled program proved across them, the receipt verified, everything stopped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::{BackendKind, DevnetArgs};

/// Child processes that are stopped (SIGTERM, then SIGKILL) when dropped.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let until = Instant::now() + Duration::from_secs(10);
        for child in &mut self.0 {
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Risc0 => "risc0",
        BackendKind::Fake => "fake",
    }
}

pub fn run(args: &DevnetArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.nodes >= 1, "a devnet needs at least one node");
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let out_dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // One devnet per output directory: a second would delete the first one's job database below.
    let _lock =
        cairn_node::lock::ProcessLock::dir(out_dir, "the devnet's output directory", "--out")?;
    let db = out_dir.join("jobs.sqlite");
    for stale in [
        db.clone(),
        db.with_extension("sqlite-wal"),
        db.with_extension("sqlite-shm"),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    eprintln!(
        "devnet: starting {} prover nodes ({} proving thread(s) each)",
        args.nodes, args.threads_per_node
    );
    let mut nodes = Nodes(Vec::new());
    let (addr_tx, addr_rx) = mpsc::channel();
    for i in 0..args.nodes {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--workers",
            "1",
            "--print-addr",
        ])
        .arg("--threads")
        .arg(args.threads_per_node.to_string())
        .arg("--data-dir")
        .arg(out_dir.join(format!("node-{i}")))
        .args(["--backend", backend_name(args.backend)])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if args.pin_cores {
            cmd.arg("--cores").arg((i % cores).to_string());
        }
        let mut child = cmd.spawn().context("starting a prover node")?;
        let stdout = child.stdout.take().expect("piped");
        let tx = addr_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening ") {
                    let _ = tx.send((i, addr.to_string()));
                }
            }
        });
        nodes.0.push(child);
    }
    let mut addrs = vec![None; args.nodes];
    // Each node proves one small benchmark segment before it listens (saved for the next run).
    let until = Instant::now() + Duration::from_secs(300);
    while addrs.iter().any(Option::is_none) {
        if Instant::now() >= until {
            bail!("prover nodes did not report a listen address within 300 s (see their messages above)");
        }
        if let Ok((i, a)) = addr_rx.recv_timeout(Duration::from_millis(500)) {
            addrs[i].get_or_insert(a);
            continue;
        }
        // A node that stopped before it listens will never report (its own message says why).
        for (i, child) in nodes.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("prover node {i} stopped before it was listening ({status}; see its messages above)");
            }
        }
    }
    let bootstrap: Vec<String> = addrs.into_iter().flatten().collect();
    eprintln!("devnet: nodes listening at {}", bootstrap.join(" "));

    if let Some(http) = args.gateway {
        return serve_gateway(&exe, args, http, &bootstrap, out_dir, nodes);
    }
    let mut client = Command::new(&exe);
    client
        .args(["prove", "--network", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .arg("--bootstrap")
        .arg(bootstrap.join(","))
        .arg("--program")
        .arg(&args.program.program)
        .arg("--po2")
        .arg(args.po2.to_string())
        .arg("--redundancy")
        .arg(args.redundancy.to_string())
        .arg("--backups")
        .arg(on_off(args.backups))
        .arg("--db")
        .arg(&db)
        .arg("--data-dir")
        .arg(out_dir.join("client"))
        .arg("--out")
        .arg(&args.out)
        .args(["--backend", backend_name(args.backend)]);
    if let Some(i) = &args.program.input {
        client.arg("--input").arg(i);
    }
    if let Some(h) = &args.program.input_hex {
        client.arg("--input-hex").arg(h);
    }
    if let Some(n) = args.program.iterations {
        client.arg("--iterations").arg(n.to_string());
    }
    let status = client.status().context("starting the client")?;
    if !status.success() {
        bail!("the client failed ({status})");
    }
    drop(nodes);
    eprintln!("devnet: all nodes stopped");
    if args.backend == BackendKind::Risc0 {
        let mut verify = Command::new(&exe);
        verify
            .arg("verify")
            .arg(&args.out)
            .arg("--program")
            .arg(&args.program.program);
        if let Some(input) = &args.program.input {
            // A bundled program's journal is checked against the host's reference for this input too.
            verify.arg("--expect-input").arg(input);
        }
        let verified = verify.status()?;
        if !verified.success() {
            bail!("the receipt did not verify");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cairn devnet --gateway ADDR`: a gateway in front of the nodes, in the foreground until Ctrl-C.
fn serve_gateway(
    exe: &Path,
    args: &DevnetArgs,
    http: std::net::SocketAddr,
    bootstrap: &[String],
    out_dir: &Path,
    nodes: Nodes,
) -> anyhow::Result<ExitCode> {
    eprintln!(
        "devnet: gateway for stock RISC Zero hosts: export BONSAI_API_URL=http://{http} BONSAI_API_KEY={}",
        args.gateway_key
    );
    eprintln!("devnet: dashboard at http://{http}/ ; Ctrl-C stops everything");
    let status = Command::new(exe)
        .args(["gateway", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .arg("--http")
        .arg(http.to_string())
        .arg("--bootstrap")
        .arg(bootstrap.join(","))
        .arg("--keys")
        .arg(format!("devnet:{}", args.gateway_key))
        .arg("--po2")
        .arg(args.po2.to_string())
        .arg("--redundancy")
        .arg(args.redundancy.to_string())
        .arg("--backups")
        .arg(on_off(args.backups))
        .arg("--db")
        .arg(out_dir.join("gateway-jobs.sqlite"))
        .arg("--data-dir")
        .arg(out_dir.join("gateway-client"))
        .arg("--gateway-dir")
        .arg(out_dir.join("gateway"))
        .args(["--backend", backend_name(args.backend)])
        .status()
        .context("starting the gateway")?;
    drop(nodes);
    eprintln!("devnet: all nodes stopped");
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn on_off(v: crate::cli::OnOff) -> &'static str {
    match v {
        crate::cli::OnOff::On => "on",
        crate::cli::OnOff::Off => "off",
    }
}
