//! `cairn soak`: a devnet run for a set time under chaos. Prover nodes (the fake backend for volume, and a
//! lane of real RISC Zero nodes for a share of jobs), some of them lying, while jobs are submitted one after
//! another and provers are killed and restarted, stopped and resumed, their connections cut, and the client
//! itself killed mid-job and restarted (it resumes from its job database). At the end it checks what must
//! hold: every job finished with a receipt that verifies, no invalid result accepted, no segment given out
//! again once verified, and the long-lived node's memory, file handles and disk within bounds.
//!
//! The stages: [`Lane::start`] (nodes), [`Chaos::run`] (a thread of random faults), [`run_jobs`] (the job
//! loop), then [`check`] over the receipts, the job databases and the logs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;

use clap::Args;

mod attackers;
use attackers::{Abandoner, SessionRun, Strangers, Tenant};

/// `cairn soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// How long to submit jobs, in minutes (the job running at the end is finished first).
    #[arg(long, env = "CAIRN_SOAK_MINUTES", default_value_t = 10.0)]
    pub minutes: f64,
    /// Honest fake-backend prover nodes (node 0 is observed for leaks and never disturbed).
    #[arg(long, env = "CAIRN_SOAK_NODES", default_value_t = 4)]
    pub nodes: usize,
    /// Lying fake-backend provers (garbage, replayed, other-job and silent answers, in turn).
    #[arg(long, env = "CAIRN_SOAK_LIARS", default_value_t = 2)]
    pub liars: usize,
    /// Every Nth job is proved for real (RISC Zero, po2 14) on a lane of two more nodes; 0: none.
    #[arg(long, env = "CAIRN_SOAK_REAL_EVERY", default_value_t = 10)]
    pub real_every: u32,
    /// Mean seconds between faults (exponentially distributed).
    #[arg(long, env = "CAIRN_SOAK_CHAOS_SECS", default_value_t = 15.0)]
    pub chaos_secs: f64,
    /// Seed of the faults' randomness.
    #[arg(long, env = "CAIRN_SOAK_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Blob store cap of every node, MB (checked at the end).
    #[arg(long, env = "CAIRN_SOAK_MAX_DISK_MB", default_value_t = 64)]
    pub max_disk_mb: u64,
    /// A fake proof's time as a share of a real one's (po2 14: 8.2 s).
    #[arg(long, env = "CAIRN_SOAK_FAKE_TIME_SCALE", default_value_t = 0.1)]
    pub fake_time_scale: f64,
    /// Cycles of every fake job (and of each gateway session; inputs differ by a seed, so each job is new).
    #[arg(long, env = "CAIRN_SOAK_FAKE_CYCLES", default_value_t = 60_000)]
    pub fake_cycles: u64,
    /// Directory for the nodes, the job databases, the logs, the receipts and `soak.json` (emptied first).
    #[arg(long, env = "CAIRN_SOAK_OUT", default_value = "cairn-out/soak")]
    pub out: PathBuf,
    /// Minutes at the start with no attackers, whose jobs are the baseline the attacked ones are held to
    /// (default: a sixth of --minutes).
    #[arg(long, env = "CAIRN_SOAK_QUIET_MINUTES")]
    pub quiet_minutes: Option<f64>,
    /// Leave the attackers out (strangers, a receipt trickler, an abandoning client, a gateway tenant's
    /// intruder): chaos only.
    #[arg(long, env = "CAIRN_SOAK_NO_ATTACKERS")]
    pub no_attackers: bool,
}

/// Misbehaviours of the lying provers, in turn.
const LIES: &[&str] = &["garbage", "replay", "other-job", "silent"];

/// One `cairn node` process, restartable under the same identity and port.
struct NodeProc {
    name: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    addr: String,
    peer: String,
    liar: bool,
}

impl NodeProc {
    fn spawn(&mut self, exe: &Path) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(exe)
            .args(&self.args)
            .env("CAIRN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening ") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(120)).with_context(|| {
            format!(
                "{} did not report its address (see {})",
                self.name,
                self.log.display()
            )
        })?;
        self.peer = addr.rsplit("/p2p/").next().unwrap_or_default().to_string();
        self.addr = addr;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = signal(pid, "CONT");
        }
        self.kill();
    }
}

fn signal(pid: u32, sig: &str) -> bool {
    // A client may end between being picked and being signalled: not worth a message.
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free TCP port on loopback (a node keeps it across restarts, so clients find it again).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Nodes of one backend, and the client state (job database, data directory, log) that proves on them.
struct Lane {
    name: &'static str,
    backend: &'static str,
    nodes: Vec<NodeProc>,
    dir: PathBuf,
}

impl Lane {
    #[allow(clippy::too_many_arguments)]
    fn start(
        exe: &Path,
        name: &'static str,
        backend: &'static str,
        honest: usize,
        liars: usize,
        out: &Path,
        args: &SoakArgs,
    ) -> anyhow::Result<Self> {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)?;
        let mut lane = Self {
            name,
            backend,
            nodes: Vec::new(),
            dir,
        };
        for i in 0..honest + liars {
            if i >= honest {
                let lie = LIES[(i - honest) % LIES.len()];
                lane.add_node(exe, &format!("liar-{}", i - honest), Some(lie), args)?;
            } else {
                lane.add_node(exe, &format!("node-{i}"), None, args)?;
            }
        }
        Ok(lane)
    }

    /// Starts a node of this lane, honest or misbehaving as `lie` says.
    fn add_node(
        &mut self,
        exe: &Path,
        node_name: &str,
        lie: Option<&str>,
        args: &SoakArgs,
    ) -> anyhow::Result<()> {
        let port = free_port()?;
        let mut a: Vec<String> = [
            "node",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
            "--no-mdns",
            "--print-addr",
            "--heartbeat-secs",
            "2",
            "--workers",
            "1",
            "--threads",
            "1",
            "--no-benchmark",
            "--announce-secs",
            "5",
            "--max-disk-mb",
            &args.max_disk_mb.to_string(),
            "--backend",
            self.backend,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push("--data-dir".into());
        a.push(self.dir.join(node_name).display().to_string());
        if self.backend == "fake" {
            a.extend(["--fake-time-scale".into(), args.fake_time_scale.to_string()]);
        }
        if let Some(lie) = lie {
            a.extend(["--misbehave".into(), lie.into()]);
        }
        let mut node = NodeProc {
            log: self.dir.join(format!("{node_name}.log")),
            name: format!("{}/{node_name}", self.name),
            args: a,
            child: None,
            addr: String::new(),
            peer: String::new(),
            liar: lie.is_some(),
        };
        node.spawn(exe)?;
        self.nodes.push(node);
        Ok(())
    }

    fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What the chaos thread did.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct ChaosCounts {
    prover_kills: u32,
    prover_restarts: u32,
    prover_stalls: u32,
    client_kills: u32,
    connection_cuts: u32,
    sockets_cut: u32,
    /// Identities announced over gossip that never connect or answer (`Strangers`).
    made_up_identities: u32,
    /// Runs of the abandoning client that were killed mid-job (each comes back 65 s later to offer again).
    clients_abandoned: u32,
    /// Nodes the chaos killed, stalled or cut (peer ids): only these may be penalized.
    disturbed: std::collections::BTreeSet<String>,
    /// Strangers that connected to the observed node and stayed idle.
    idle_strangers: u32,
}

/// Random faults, one every `mean` seconds on average, until `stop`.
struct Chaos {
    lanes: Arc<Vec<Mutex<Lane>>>,
    client_pid: Arc<Mutex<Option<u32>>>,
    exe: PathBuf,
    rng: rng::Rng,
    mean: f64,
    counts: Arc<Mutex<ChaosCounts>>,
}

/// A tiny xorshift generator (the soak must be reproducible from `--seed`; no need for `rand` here).
mod rng {
    #[derive(Debug)]
    pub struct Rng(u64);
    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub fn f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
        pub fn below(&mut self, n: usize) -> usize {
            ((self.f64() * n as f64) as usize).min(n.saturating_sub(1))
        }
        pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.f64()
        }
    }
}

impl Chaos {
    fn run(mut self, stop: Arc<AtomicBool>) {
        // Restarts due: (when, lane, node).
        let mut restarts: Vec<(Instant, usize, usize)> = Vec::new();
        let mut resumes: Vec<(Instant, u32)> = Vec::new();
        let mut next = Instant::now() + Duration::from_secs_f64(self.mean);
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            let now = Instant::now();
            restarts.retain(|&(at, l, n)| {
                if at > now {
                    return true;
                }
                let mut lane = self.lanes[l].lock().unwrap_or_else(|p| p.into_inner());
                match lane.nodes[n].spawn(&self.exe) {
                    Ok(()) => {
                        self.counts
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .prover_restarts += 1
                    }
                    Err(e) => eprintln!("soak: restarting {}: {e:#}", lane.nodes[n].name),
                }
                false
            });
            resumes.retain(|&(at, pid)| {
                if at > now {
                    return true;
                }
                signal(pid, "CONT");
                false
            });
            if now < next {
                continue;
            }
            // Exponential gaps between faults.
            next = now + Duration::from_secs_f64(-self.mean * (1.0 - self.rng.f64()).ln());
            // Faults fall on the fake lane's nodes (lane 0) and on the client; the real lane proves undisturbed
            // but for client kills (its proofs are the expensive, slow part).
            let mut lane = self.lanes[0].lock().unwrap_or_else(|p| p.into_inner());
            // Node 0 is the observer (sampled for leaks): never touched. Liars are left alone too.
            let victims: Vec<usize> = (1..lane.nodes.len())
                .filter(|&i| !lane.nodes[i].liar && lane.nodes[i].child.is_some())
                .filter(|&i| !restarts.iter().any(|r| r.2 == i))
                .collect();
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            match self.rng.below(4) {
                0 if !victims.is_empty() => {
                    let i = victims[self.rng.below(victims.len())];
                    counts.disturbed.insert(lane.nodes[i].peer.clone());
                    lane.nodes[i].kill();
                    counts.prover_kills += 1;
                    let back = now + Duration::from_secs_f64(self.rng.range(2.0, 20.0));
                    restarts.push((back, 0, i));
                }
                1 if !victims.is_empty() => {
                    let i = victims[self.rng.below(victims.len())];
                    counts.disturbed.insert(lane.nodes[i].peer.clone());
                    if let Some(pid) = lane.nodes[i].pid() {
                        if !resumes.iter().any(|r| r.1 == pid) && signal(pid, "STOP") {
                            counts.prover_stalls += 1;
                            resumes.push((
                                now + Duration::from_secs_f64(self.rng.range(3.0, 30.0)),
                                pid,
                            ));
                        }
                    }
                }
                2 if !victims.is_empty() => {
                    // Cut every TCP connection of a node (ss -K: needs root and a kernel with sock_destroy).
                    let i = victims[self.rng.below(victims.len())];
                    counts.disturbed.insert(lane.nodes[i].peer.clone());
                    let port = lane.nodes[i]
                        .addr
                        .split("/tcp/")
                        .nth(1)
                        .and_then(|s| s.split('/').next());
                    if let Some(port) = port {
                        let out = Command::new("ss")
                            .args([
                                "-K",
                                "-t",
                                "-n",
                                &format!("( sport = :{port} or dport = :{port} )"),
                            ])
                            .output();
                        if let Some(out) = out.ok().filter(|o| o.status.success()) {
                            let cut =
                                String::from_utf8_lossy(&out.stdout).lines().skip(1).count() as u32;
                            counts.connection_cuts += 1;
                            counts.sockets_cut += cut;
                        }
                    }
                }
                _ => {
                    if let Some(pid) = *self.client_pid.lock().unwrap_or_else(|p| p.into_inner()) {
                        if signal(pid, "KILL") {
                            counts.client_kills += 1;
                        }
                    }
                }
            }
        }
        for (_, pid) in resumes {
            signal(pid, "CONT");
        }
        for (_, l, n) in restarts {
            let mut lane = self.lanes[l].lock().unwrap_or_else(|p| p.into_inner());
            let _ = lane.nodes[n].spawn(&self.exe);
        }
    }
}

/// One job of the soak.
#[derive(Debug, Clone, serde::Serialize)]
struct JobRun {
    lane: &'static str,
    number: u64,
    receipt: PathBuf,
    /// Client processes it took (each kill or failure starts another, which resumes).
    runs: u32,
    finished: bool,
    secs: f64,
    /// "quiet" (submitted before the attackers came) or "attack".
    phase: &'static str,
}

/// Submits jobs one after another until `until`; returns them.
fn run_jobs(
    exe: &Path,
    lanes: &Arc<Vec<Mutex<Lane>>>,
    args: &SoakArgs,
    client_pid: &Arc<Mutex<Option<u32>>>,
    until: Instant,
    attack_at: Instant,
) -> anyhow::Result<Vec<JobRun>> {
    let mut jobs = Vec::new();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let real =
            lanes.len() > 1 && args.real_every > 0 && n.is_multiple_of(u64::from(args.real_every));
        let l = usize::from(real);
        let (lane_name, backend, bootstrap, dir) = {
            let lane = lanes[l].lock().unwrap_or_else(|p| p.into_inner());
            (lane.name, lane.backend, lane.bootstrap(), lane.dir.clone())
        };
        let receipt = dir.join(format!("receipts/job-{n}.bin"));
        // Each job's input differs, so each is a new job in the database, and every job of a lane is the same
        // size, so jobs before and under the attack compare (they once grew by 1,000 cycles each, and the
        // hour's last jobs were twice the first): the job's number as seed bytes after the iteration count
        // (the fake backend's cycle count).
        let iterations = if real { 1 } else { args.fake_cycles };
        let input: [String; 2] = [
            "--input-hex".into(),
            hex::encode(cairn_guests::sha_chain_input(
                iterations,
                format!("soak-{n}").as_bytes(),
            )),
        ];
        let mut cmd_args: Vec<String> = [
            "prove",
            "--network",
            "--no-progress",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--program",
            "sha-chain",
            "--po2",
            "14",
            "--backend",
            backend,
            "--aggregation",
            "composite",
            "--backups",
            // Backups race stragglers (and receipt tricklers) where proofs do not share cores: the fake
            // lane's proofs are sleeps; the real lane's provers share this machine's cores.
            if real { "off" } else { "on" },
            "--task-slack-secs",
            "30",
            "--heartbeat-timeout-secs",
            "10",
            "--job-timeout-secs",
            "600",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cmd_args.extend(input);
        cmd_args.extend([
            "--bootstrap".into(),
            bootstrap,
            "--db".into(),
            dir.join("jobs.sqlite").display().to_string(),
            "--data-dir".into(),
            dir.join("client").display().to_string(),
            "--out".into(),
            receipt.display().to_string(),
        ]);
        let started = Instant::now();
        let mut job = JobRun {
            lane: lane_name,
            number: n,
            receipt: receipt.clone(),
            runs: 0,
            finished: false,
            secs: 0.0,
            phase: if started < attack_at {
                "quiet"
            } else {
                "attack"
            },
        };
        // A job gets ten minutes, whatever happens to its clients.
        while started.elapsed() < Duration::from_secs(600) {
            job.runs += 1;
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("client.log"))?;
            let mut child = Command::new(exe)
                .args(&cmd_args)
                .env("CAIRN_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .context("starting a client")?;
            *client_pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.id());
            let status = child.wait()?;
            *client_pid.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if status.success() {
                job.finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        job.secs = started.elapsed().as_secs_f64();
        eprintln!(
            "soak: job {n} ({lane_name}) {} in {:.0} s, {} client run(s)",
            if job.finished {
                "finished"
            } else {
                "DID NOT FINISH"
            },
            job.secs,
            job.runs
        );
        jobs.push(job);
    }
    Ok(jobs)
}

/// Memory and file handles of the observer node over the run.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Samples {
    /// (seconds since start, RSS in KiB, open file descriptors).
    points: Vec<(f64, u64, u64)>,
}

fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// `(timestamp, job, task)` of every line of `log` holding every string in `what` (tracing's format, colours
/// taken out: an RFC 3339 time first, then `job=N task=M` among the fields).
fn events(log: &Path, what: &[&str]) -> Vec<(chrono::DateTime<chrono::FixedOffset>, u64, u32)> {
    let Ok(f) = File::open(log) else {
        return Vec::new();
    };
    let field = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(&format!(" {key}="))? + key.len() + 2;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .map(|l| strip_ansi(&l))
        .filter(|l| what.iter().all(|w| l.contains(w)))
        .filter_map(|plain| {
            let ts = chrono::DateTime::parse_from_rfc3339(plain.split_whitespace().next()?).ok()?;
            Some((
                ts,
                field(&plain, "job")?,
                u32::try_from(field(&plain, "task")?).ok()?,
            ))
        })
        .collect()
}

/// The peer id of the client whose log this is (it logged the identity it created on its first run).
fn client_peer(log: &Path) -> Option<String> {
    let f = File::open(log).ok()?;
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("created a new node identity"))
        .and_then(|l| {
            let plain = strip_ansi(&l);
            let at = plain.find(" peer=")? + 6;
            plain[at..].split_whitespace().next().map(str::to_string)
        })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Verifies every stored segment receipt of every job in the job database at `db` against its segment's
/// recorded claim. Returns how many there are, the ones that fail, and how many came from `liars` (a lying
/// prover's honest answer, such as a replayer's first, is valid and may count).
fn recheck_segments(
    db: &Path,
    backend: &dyn ProvingBackend,
    liars: &[&str],
) -> anyhow::Result<(usize, Vec<String>, usize)> {
    let conn = rusqlite::Connection::open(db)?;
    let jobs: Vec<i64> = conn
        .prepare("SELECT id FROM jobs ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let from_liars = liars
        .iter()
        .map(|p| {
            conn.query_row(
                "SELECT COUNT(*) FROM segments WHERE receipt IS NOT NULL AND prover = ?1",
                [p],
                |r| r.get::<_, i64>(0),
            )
        })
        .sum::<Result<i64, _>>()? as usize;
    drop(conn);
    let db = cairn_node::jobdb::JobDb::open(db)?;
    let (mut count, mut invalid) = (0, Vec::new());
    for job in jobs {
        let Some((_, claims)) = db.execution_claims(job as u64)? else {
            continue;
        };
        for (index, receipt) in db.verified(job as u64)? {
            count += 1;
            let check = claims
                .get(index as usize)
                .ok_or_else(|| "no claim recorded".to_string())
                .and_then(|claim| {
                    backend
                        .verify_segment(&receipt, claim)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = check {
                invalid.push(format!(
                    "job {job} segment {index}: an accepted receipt does not verify: {e}"
                ));
            }
        }
    }
    Ok((count, invalid, from_liars))
}

/// What the soak found.
#[derive(Debug, Default, serde::Serialize)]
struct Verdict {
    jobs: usize,
    jobs_finished: usize,
    receipts_verified: usize,
    invalid_results_accepted: usize,
    verified_segments_given_out_again: usize,
    /// Segment verifications found in the clients' logs and task acceptances in the nodes' logs: what the
    /// check above compared (zero would make it vacuous).
    verifications_logged: usize,
    acceptances_logged: usize,
    segments_verified: usize,
    segments_from_lying_provers: usize,
    rss_kib_after_warmup: u64,
    rss_kib_at_end: u64,
    fds_after_warmup: u64,
    fds_at_end: u64,
    largest_node_store_mb: f64,
    node_store_cap_mb: u64,
    client_store_mb: f64,
    /// Penalties of honest nodes the chaos never touched (must be none) and of those it did (allowed).
    honest_nodes_penalized: usize,
    penalties_of_disturbed_honest_nodes: usize,
    gateway_sessions: usize,
    gateway_sessions_verified: usize,
    /// Another key's requests for the tenant's sessions, all refused.
    intrusions_refused: usize,
    /// Jobs before and under attack, their median times and the ratio (once each phase has `MIN_COMPARED`).
    quiet_jobs: usize,
    attacked_jobs: usize,
    quiet_median_secs: f64,
    attacked_median_secs: f64,
    attacked_to_quiet: Option<f64>,
    /// The same for the gateway tenant's sessions.
    gateway_quiet_median_secs: f64,
    gateway_attacked_median_secs: f64,
    gateway_attacked_to_quiet: Option<f64>,
    problems: Vec<String>,
}

fn check(lanes: &[Mutex<Lane>], jobs: &[JobRun], samples: &Samples, args: &SoakArgs) -> Verdict {
    let mut v = Verdict {
        jobs: jobs.len(),
        jobs_finished: jobs.iter().filter(|j| j.finished).count(),
        node_store_cap_mb: args.max_disk_mb,
        ..Verdict::default()
    };
    // 1. Every job finished with a receipt that verifies, checked here again from the file.
    let fake = FakeBackend::new(0.0);
    let real = cairn_risc0::RiscZeroBackend::new();
    for job in jobs {
        if !job.finished {
            v.problems.push(format!(
                "job {} ({}) did not finish in 10 minutes",
                job.number, job.lane
            ));
            continue;
        }
        let (backend, program): (&dyn ProvingBackend, Vec<u8>) = if job.lane == "real" {
            (&real, cairn_guests::SHA_CHAIN.binary.to_vec())
        } else {
            (&fake, FakeBackend::program("sha-chain"))
        };
        let ok = std::fs::read(&job.receipt)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let id = backend.image_id(&program).map_err(|e| e.to_string())?;
                backend
                    .verify_receipt(&bytes, &id)
                    .map_err(|e| e.to_string())
            });
        match ok {
            Ok(_) => v.receipts_verified += 1,
            Err(e) => v.problems.push(format!(
                "job {} ({}): receipt does not verify: {e}",
                job.number, job.lane
            )),
        }
    }
    for lane in lanes {
        let lane = lane.lock().unwrap_or_else(|p| p.into_inner());
        // 2. Every accepted segment receipt proves its segment: verified again here, against the claim the
        // client recorded when it executed the job, whoever delivered it.
        let backend: &dyn ProvingBackend = if lane.backend == "risc0" {
            &real
        } else {
            &fake
        };
        let liars: Vec<&str> = lane
            .nodes
            .iter()
            .filter(|n| n.liar)
            .map(|n| n.peer.as_str())
            .collect();
        match recheck_segments(&lane.dir.join("jobs.sqlite"), backend, &liars) {
            Ok((verified, invalid, from_liars)) => {
                v.segments_verified += verified;
                v.segments_from_lying_provers += from_liars;
                v.invalid_results_accepted += invalid.len();
                v.problems
                    .extend(invalid.into_iter().map(|e| format!("{}: {e}", lane.name)));
            }
            Err(e) => v
                .problems
                .push(format!("{}: job database: {e:#}", lane.name)),
        }
        // 3. Nothing verified is given out again: no prover accepts a task of the lane's client after the
        // client verified it (other clients, the gateway's and the abandoning one, number their jobs alike).
        let client = client_peer(&lane.dir.join("client.log"));
        let verified_at: HashMap<(u64, u32), chrono::DateTime<chrono::FixedOffset>> =
            events(&lane.dir.join("client.log"), &["segment verified"])
                .into_iter()
                .fold(HashMap::new(), |mut m, (ts, job, task)| {
                    m.entry((job, task))
                        .and_modify(|t: &mut _| *t = (*t).min(ts))
                        .or_insert(ts);
                    m
                });
        v.verifications_logged += verified_at.len();
        for node in &lane.nodes {
            let accepted = match &client {
                Some(peer) => events(&node.log, &["task accepted", &format!("client={peer}")]),
                None => Vec::new(),
            };
            v.acceptances_logged += accepted.len();
            for (ts, job, task) in accepted {
                if let Some(at) = verified_at.get(&(job, task)) {
                    if ts > *at + chrono::Duration::seconds(1) {
                        v.verified_segments_given_out_again += 1;
                        v.problems.push(format!(
                            "{}: job {job} segment {task} was accepted by {} at {ts}, after it was verified at {at}",
                            lane.name, node.name
                        ));
                    }
                }
            }
            let mb = dir_bytes(
                &lane
                    .dir
                    .join(node.name.rsplit('/').next().unwrap_or_default())
                    .join("blobs"),
            ) as f64
                / 1e6;
            v.largest_node_store_mb = v.largest_node_store_mb.max(mb);
        }
        v.client_store_mb += dir_bytes(&lane.dir.join("client/blobs")) as f64 / 1e6;
    }
    if v.verifications_logged == 0 || v.acceptances_logged == 0 {
        v.problems.push(format!(
            "the logs hold {} verifications and {} acceptances: nothing to check re-proving against",
            v.verifications_logged, v.acceptances_logged
        ));
    }
    if v.largest_node_store_mb > args.max_disk_mb as f64 * 1.05 {
        v.problems.push(format!(
            "a node's blob store holds {:.1} MB, over its cap of {} MB",
            v.largest_node_store_mb, args.max_disk_mb
        ));
    }
    // 4. The observer node's memory and file handles: after a warm-up (the first quarter), the last quarter's
    // peak may not exceed the second quarter's peak by more than half plus a margin.
    let pts = &samples.points;
    if pts.len() >= 8 {
        let q = pts.len() / 4;
        let peak = |s: &[(f64, u64, u64)]| {
            (
                s.iter().map(|p| p.1).max().unwrap_or(0),
                s.iter().map(|p| p.2).max().unwrap_or(0),
            )
        };
        let (rss_a, fds_a) = peak(&pts[q..2 * q]);
        let (rss_b, fds_b) = peak(&pts[pts.len() - q..]);
        (
            v.rss_kib_after_warmup,
            v.rss_kib_at_end,
            v.fds_after_warmup,
            v.fds_at_end,
        ) = (rss_a, rss_b, fds_a, fds_b);
        if rss_b > rss_a + rss_a / 2 + 32 * 1024 {
            v.problems.push(format!(
                "the observer node's memory grew from {rss_a} KiB to {rss_b} KiB"
            ));
        }
        if fds_b > fds_a + fds_a / 2 + 16 {
            v.problems.push(format!(
                "the observer node's open files grew from {fds_a} to {fds_b}"
            ));
        }
    } else {
        v.problems.push(format!(
            "too few samples of the observer node ({}): run the soak for longer",
            pts.len()
        ));
    }
    v
}

pub fn run(args: &SoakArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.nodes >= 2,
        "a soak needs at least 2 honest nodes (one is observed, never disturbed)"
    );
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let out = &args.out;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    eprintln!(
        "soak: {:.1} min, {} honest + {} lying fake-backend nodes{}, a fault every ~{} s; logs in {}",
        args.minutes,
        args.nodes,
        args.liars,
        if args.real_every > 0 { format!(", every {}th job real on 2 RISC Zero nodes", args.real_every) } else { String::new() },
        args.chaos_secs,
        out.display()
    );
    let mut lanes = vec![Mutex::new(Lane::start(
        &exe, "fake", "fake", args.nodes, args.liars, out, args,
    )?)];
    if args.real_every > 0 {
        lanes.push(Mutex::new(Lane::start(
            &exe, "real", "risc0", 2, 0, out, args,
        )?));
    }
    let lanes = Arc::new(lanes);
    let observer = lanes[0].lock().unwrap_or_else(|p| p.into_inner()).nodes[0].pid();

    // A gateway on the same provers (an honest tenant's sessions, and another key after them), started before
    // any thread so that a failure to start leaves nothing running.
    let mut gateway = None;
    if !args.no_attackers {
        let lane = lanes[0].lock().unwrap_or_else(|p| p.into_inner());
        gateway = Some(start_gateway(&exe, &lane, out)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let client_pid = Arc::new(Mutex::new(None));
    let counts = Arc::new(Mutex::new(ChaosCounts::default()));
    let chaos = Chaos {
        lanes: lanes.clone(),
        client_pid: client_pid.clone(),
        exe: exe.clone(),
        rng: rng::Rng::new(args.seed),
        mean: args.chaos_secs,
        counts: counts.clone(),
    };
    let chaos_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || chaos.run(stop))
    };
    // The attackers come after the quiet phase, whose jobs are the baseline (issue 29).
    let quiet = Duration::from_secs_f64(args.quiet_minutes.unwrap_or(args.minutes / 6.0) * 60.0);
    let attack_at = if args.no_attackers {
        Instant::now() + duration * 4 + Duration::from_secs(3600)
    } else {
        Instant::now() + quiet
    };
    let made_up = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let mut attacker_threads = Vec::new();
    let sessions: Arc<Mutex<Vec<SessionRun>>> = Arc::default();
    if let Some((_, url)) = &gateway {
        let lane = lanes[0].lock().unwrap_or_else(|p| p.into_inner());
        let strangers = Strangers {
            bootstrap: lane.nodes[0].addr.clone(),
            targets: lane
                .nodes
                .iter()
                .filter_map(|n| n.addr.split("/p2p/").next().map(str::to_string))
                .collect(),
            dir: out.join("strangers"),
            counts: counts.clone(),
            made_up: made_up.clone(),
        };
        let halt = stop.clone();
        attacker_threads.push(std::thread::spawn(move || strangers.run(attack_at, halt)));
        let abandoner = Abandoner {
            exe: exe.clone(),
            bootstrap: lane.bootstrap(),
            dir: out.join("abandoner"),
            cycles: args.fake_cycles * 40,
            counts: counts.clone(),
        };
        let halt = stop.clone();
        attacker_threads.push(std::thread::spawn(move || abandoner.run(attack_at, halt)));
        // The receipt trickler joins the lane when the attack starts.
        let (all, path, a, halt) = (lanes.clone(), exe.clone(), args.clone(), stop.clone());
        attacker_threads.push(std::thread::spawn(move || {
            if attackers::wait_until(attack_at, &halt) {
                let mut lane = all[0].lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = lane.add_node(&path, "trickler-0", Some("trickle"), &a) {
                    eprintln!("soak: the receipt trickler did not start: {e:#}");
                }
            }
        }));
        let tenant = Tenant {
            url: url.clone(),
            key: TENANT_KEY.into(),
            intruder_key: INTRUDER_KEY.into(),
            cycles: args.fake_cycles,
            attack_at,
            sessions: sessions.clone(),
        };
        let halt = stop.clone();
        attacker_threads.push(std::thread::spawn(move || tenant.run(halt)));
    }
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        let start = Instant::now();
        let every = (duration / 40).clamp(Duration::from_secs(2), Duration::from_secs(30));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some((rss, fds)) = observer.and_then(sample) {
                    samples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .points
                        .push((start.elapsed().as_secs_f64(), rss, fds));
                }
                std::thread::sleep(every);
            }
        })
    };

    let jobs = run_jobs(
        &exe,
        &lanes,
        args,
        &client_pid,
        Instant::now() + duration,
        attack_at,
    );
    stop.store(true, Ordering::SeqCst);
    let _ = chaos_thread.join();
    for t in attacker_threads {
        let _ = t.join();
    }
    let _ = sampler.join();
    if let Some((mut g, _)) = gateway {
        let _ = g.kill();
        let _ = g.wait();
    }
    let sessions = sessions.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let jobs = jobs?;
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let counts = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut verdict = check(&lanes, &jobs, &samples, args);
    // 6. No made-up identity was ever offered a task, and no honest node the chaos left alone was penalized:
    // neither appears so in a client's ledger (the CLI clients' and the gateway's).
    let made_up = made_up.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut ledgers = Vec::new();
    let mut honest = std::collections::HashMap::new();
    for lane in lanes.iter() {
        let lane = lane.lock().unwrap_or_else(|p| p.into_inner());
        ledgers.push((lane.name.to_string(), lane.dir.join("jobs.sqlite")));
        for n in lane.nodes.iter().filter(|n| !n.liar) {
            honest.insert(n.peer.clone(), n.name.clone());
        }
    }
    if !args.no_attackers {
        ledgers.push(("gateway".into(), out.join("gateway/jobs.sqlite")));
    }
    for (name, db) in &ledgers {
        match cairn_node::jobdb::JobDb::open(db).and_then(|db| db.ledger()) {
            Ok(ledger) => {
                for (prover, kind, cause) in &ledger {
                    if made_up.contains(prover) {
                        verdict.problems.push(format!(
                            "{name}: a made-up identity {prover} is in the ledger ({kind} {cause:?}): it was offered work"
                        ));
                    }
                    if kind == "penalty" {
                        if let Some(node) = honest.get(prover) {
                            if counts.disturbed.contains(prover) {
                                verdict.penalties_of_disturbed_honest_nodes += 1;
                            } else {
                                verdict.honest_nodes_penalized += 1;
                                verdict.problems.push(format!(
                                    "{name}: honest node {node}, never disturbed, was penalized ({cause:?})"
                                ));
                            }
                        }
                    }
                }
            }
            Err(e) => verdict
                .problems
                .push(format!("{name}: reading the ledger: {e}")),
        }
    }
    // 7. The gateway tenant's sessions all succeeded with receipts that verify, and every request another key
    // made for them was refused.
    verdict.gateway_sessions = sessions.len();
    for s in &sessions {
        verdict.gateway_sessions_verified += usize::from(s.receipt_verified);
        verdict.intrusions_refused += s.intrusions_refused as usize;
        for p in &s.problems {
            verdict
                .problems
                .push(format!("gateway session {}: {p}", s.number));
        }
    }
    // 8. Honest jobs under attack take at most 1.5x the time of those before it (medians of the fake lane's
    // command-line jobs; compared once each phase has `MIN_COMPARED`: a 75 s run has too few for a median).
    let median = |phase: &str| {
        count_and_median(
            jobs.iter()
                .filter(|j| j.lane == "fake" && j.finished && j.phase == phase)
                .map(|j| j.secs),
        )
    };
    let (nq, quiet_median) = median("quiet");
    let (na, attack_median) = median("attack");
    verdict.quiet_jobs = nq;
    verdict.attacked_jobs = na;
    if let (Some(q), Some(a)) = (quiet_median, attack_median) {
        verdict.quiet_median_secs = q;
        verdict.attacked_median_secs = a;
        if nq >= MIN_COMPARED && na >= MIN_COMPARED {
            verdict.attacked_to_quiet = Some(a / q);
            if a > 1.5 * q {
                verdict.problems.push(format!(
                    "honest jobs took {a:.1} s (median) under attack against {q:.1} s before: over 1.5x"
                ));
            }
        }
    }
    // The same for the gateway tenant's sessions (honest jobs too, through another client).
    let session_median = |phase: &str| {
        count_and_median(
            sessions
                .iter()
                .filter(|s| s.phase == phase && s.receipt_verified)
                .map(|s| s.secs),
        )
    };
    if let ((sq, Some(q)), (sa, Some(a))) = (session_median("quiet"), session_median("attack")) {
        verdict.gateway_quiet_median_secs = q;
        verdict.gateway_attacked_median_secs = a;
        if sq >= MIN_COMPARED && sa >= MIN_COMPARED {
            verdict.gateway_attacked_to_quiet = Some(a / q);
            if a > 1.5 * q {
                verdict.problems.push(format!(
                    "the gateway's sessions took {a:.1} s (median) under attack against {q:.1} s before: over 1.5x"
                ));
            }
        }
    }
    if verdict.attacked_to_quiet.is_none() && !args.no_attackers && args.minutes >= 10.0 {
        verdict.problems.push(format!(
            "{nq} jobs before the attack and {na} under it: too few to compare their times"
        ));
    }

    let report = serde_json::json!({
        "minutes": args.minutes,
        "seed": args.seed,
        "chaos": counts,
        "verdict": verdict,
        "jobs": jobs,
        "gateway_sessions": sessions,
        "observer_samples": samples.points,
    });
    let path = out.join("soak.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    let c = &counts;
    println!(
        "soak: {} jobs ({} real), {} finished, {} receipts verified; {} segments verified, {} invalid accepted, {} given out again after verification",
        verdict.jobs,
        jobs.iter().filter(|j| j.lane == "real").count(),
        verdict.jobs_finished,
        verdict.receipts_verified,
        verdict.segments_verified,
        verdict.invalid_results_accepted,
        verdict.verified_segments_given_out_again
    );
    println!(
        "soak: faults: {} prover kills ({} restarts), {} stalls, {} connection cuts ({} sockets), {} client kills",
        c.prover_kills, c.prover_restarts, c.prover_stalls, c.connection_cuts, c.sockets_cut, c.client_kills
    );
    println!(
        "soak: strangers: {} made-up identities announced, {} idle connections held",
        c.made_up_identities, c.idle_strangers
    );
    println!(
        "soak: attackers: {} abandoned client runs; gateway: {} sessions, {} receipts verified, {} intruding requests refused; penalties of undisturbed honest nodes: {}",
        c.clients_abandoned,
        verdict.gateway_sessions,
        verdict.gateway_sessions_verified,
        verdict.intrusions_refused,
        verdict.honest_nodes_penalized
    );
    match verdict.attacked_to_quiet {
        Some(r) => println!(
            "soak: honest jobs: median {:.1} s before the attack ({} jobs), {:.1} s under it ({} jobs): {r:.2}x",
            verdict.quiet_median_secs, verdict.quiet_jobs, verdict.attacked_median_secs, verdict.attacked_jobs
        ),
        None => println!(
            "soak: honest jobs: {} before the attack, {} under it: too few to compare times",
            verdict.quiet_jobs, verdict.attacked_jobs
        ),
    }
    if let Some(r) = verdict.gateway_attacked_to_quiet {
        println!(
            "soak: gateway sessions: median {:.1} s before the attack, {:.1} s under it: {r:.2}x",
            verdict.gateway_quiet_median_secs, verdict.gateway_attacked_median_secs
        );
    }
    println!(
        "soak: observer node: RSS {} -> {} KiB, open files {} -> {}; largest node blob store {:.1} MB (cap {} MB), client store {:.1} MB",
        verdict.rss_kib_after_warmup,
        verdict.rss_kib_at_end,
        verdict.fds_after_warmup,
        verdict.fds_at_end,
        verdict.largest_node_store_mb,
        verdict.node_store_cap_mb,
        verdict.client_store_mb
    );
    println!("soak: report in {}", path.display());
    if verdict.jobs == 0 {
        bail!("no job ran: give the soak more minutes");
    }
    if verdict.problems.is_empty() {
        println!("soak: PASSED");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &verdict.problems {
            println!("soak: PROBLEM: {p}");
        }
        println!("soak: FAILED");
        Ok(ExitCode::FAILURE)
    }
}

/// How many times there are, and their median.
fn count_and_median(times: impl Iterator<Item = f64>) -> (usize, Option<f64>) {
    let mut t: Vec<f64> = times.collect();
    t.sort_by(f64::total_cmp);
    (t.len(), t.get(t.len() / 2).copied())
}

/// Jobs (or gateway sessions) each phase needs before their median times are compared.
const MIN_COMPARED: usize = 10;

/// The gateway tenant's key, and the key that intrudes on its sessions.
const TENANT_KEY: &str = "soak-tenant-key-0123456789abcdef";
const INTRUDER_KEY: &str = "soak-intruder-key-0123456789abcd";

/// A `cairn gateway` (fake backend) proving on `lane`'s nodes; its process and base URL once it answers.
fn start_gateway(exe: &Path, lane: &Lane, out: &Path) -> anyhow::Result<(Child, String)> {
    let dir = out.join("gateway");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gateway.log"))?;
    let mut child = Command::new(exe)
        .args([
            "gateway",
            "--backend",
            "fake",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--bootstrap",
            &lane.bootstrap(),
            "--keys",
            &format!("tenant:{TENANT_KEY},intruder:{INTRUDER_KEY}"),
            "--po2",
            "14",
            "--aggregation",
            "composite",
            "--backups",
            "on",
            "--task-slack-secs",
            "30",
            "--heartbeat-timeout-secs",
            "10",
            "--job-timeout-secs",
            "600",
        ])
        .arg("--gateway-dir")
        .arg(dir.join("store"))
        .arg("--db")
        .arg(dir.join("jobs.sqlite"))
        .arg("--data-dir")
        .arg(dir.join("client"))
        .env("CAIRN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting the gateway")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the gateway exited ({status}) before it answered; see {}",
                dir.join("gateway.log").display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the gateway did not answer within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((child, format!("http://127.0.0.1:{port}")))
}
