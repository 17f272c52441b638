//! The prover node (`cairn node`): offers its capacity, accepts only work that fits, proves on blocking
//! worker threads, heartbeats its progress, returns results, and drains gracefully.
//!
//! One task runs the loop below and owns the node's state; proving runs on a [`WorkerPool`] (one thread per
//! core by default), never on the async runtime. Bad requests from peers get an error reply; nothing a peer
//! sends can crash the node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend::{ProvingBackend, WorkerPool};
use cairn_net::protocol::{
    limits, truncate, CapacityAnnouncement, DeclineKind, ErrorCode, ErrorReply, FailureKind,
    Heartbeat, NodeCapacity, NodeStatus, Offer, Request, Response, TaskKind, TaskRef, TaskResult,
};
use cairn_net::{BlobRef, Client, Event, Network, PeerId, Retention, Topic};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, warn, Instrument};

use crate::availability::{local_hour, Availability, IdleProbe};
use crate::node_status::{self, unix_now, NodeLog, Problem, SharedLog, TaskInHand};
use crate::NodeError;

/// Largest segment or receipt a prover fetches for a task. A segment carries only the memory pages its
/// cycles touch (a few MB even at po2 22), so this is generous; it keeps a hostile client from making a node
/// download and hold a gigabyte for one offer. Fetches also refuse a blob whose size differs from the offer's.
pub const MAX_TASK_BLOB_BYTES: u64 = 256 << 20;

/// How long a prover keeps trying to deliver a result to a client it cannot reach (its own uplink down, a
/// laptop lid closed, the client restarting), retrying every few seconds.
const DELIVER_FOR: Duration = Duration::from_secs(150);

/// How a node misbehaves, for fault tests and the simulator's real-world counterpart. Honest by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehave {
    Honest,
    /// Accepts work and never answers.
    Silent,
    /// Returns bytes that are not a receipt.
    Garbage,
    /// Returns the receipt of the previous task it proved (a valid proof of another segment).
    Replay,
    /// Proves the same segment index of another run of the job's program (a valid proof from another job).
    OtherJob,
    /// Proves honestly, then serves each receipt one chunk every 12 s (inside the 15 s chunk timeout), holding
    /// the client's fetch slot (a receipt trickler, issue 29 item 2).
    Trickle,
    /// Waits for a colluding node's receipt for the same task in this directory and submits it as its own.
    Copy(PathBuf),
}

impl std::str::FromStr for Misbehave {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "honest" => Self::Honest,
            "silent" => Self::Silent,
            "garbage" => Self::Garbage,
            "replay" => Self::Replay,
            "other-job" => Self::OtherJob,
            "trickle" => Self::Trickle,
            _ => match s.strip_prefix("copy:") {
                Some(dir) => Self::Copy(dir.into()),
                None => return Err(format!("unknown misbehaviour {s:?}: honest, silent, garbage, replay, other-job, trickle, copy:DIR")),
            },
        })
    }
}

/// Everything a prover node needs.
#[derive(Debug, Clone)]
pub struct ProverConfig {
    pub net: cairn_net::Config,
    pub capacity: NodeCapacity,
    /// Proving worker threads.
    pub workers: usize,
    pub heartbeat_every: Duration,
    /// How long a client may be away (disconnected) before the tasks it gave are dropped: within it, they go
    /// on and their results are delivered when it is back.
    pub orphan_grace: Duration,
    pub misbehave: Misbehave,
    /// Also write every receipt to `DIR/<job>-<task>.receipt` (the colluding half of the copy test).
    pub share_results: Option<PathBuf>,
    /// Print `listening <addr>` lines on stdout once listening (for scripts and the devnet).
    pub print_addr: bool,
    /// When draining, how long to stay up after the last result was delivered, serving its receipt blob to
    /// the client that fetches it (and declining offers), unless every client has gone before.
    pub drain_linger: Duration,
    /// How often the node re-announces its capacity, so clients that joined the network since (through a
    /// relay, say, and not connected to it directly) hear of it.
    pub announce_every: Duration,
    /// Serve the owner's status page (`GET /status`, read by `cairn node status`) here.
    pub status_addr: Option<std::net::SocketAddr>,
    /// When the owner lets the node take work (hours of the day, idle-only).
    pub availability: Availability,
}

/// A task in hand, keyed by (client, job, task).
struct Running {
    cancelled: Arc<AtomicBool>,
}

/// Why a task was given up, and whether it is the task's fault (any prover would fail it) or this node's.
#[derive(Debug)]
struct TaskError {
    kind: FailureKind,
    message: String,
}

impl TaskError {
    /// Another prover may succeed (a transfer broke, the task was cancelled).
    fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            message: message.into(),
        }
    }

    /// The task's own bytes are at fault: every prover fails it the same way.
    fn task(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Task,
            message: message.into(),
        }
    }
}

type Done = (Offer, PeerId, Result<Proved, TaskError>);

/// Runs a prover node until `shutdown` resolves, then drains: declines new offers, finishes the tasks in
/// hand, delivers their results, stays up while clients fetch the receipts (`drain_linger`), and returns.
pub async fn run_prover(
    cfg: ProverConfig,
    backend: Arc<dyn ProvingBackend>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let net = cfg.net.clone();
    if cfg.misbehave == Misbehave::Trickle {
        net.test_hooks.set(cairn_net::HookState {
            chunk_delay_ms: Some(12_000),
            ..cairn_net::HookState::default()
        });
    }
    let (client, mut events, event_loop) = Network::new(net).await?;
    tokio::spawn(event_loop.run());
    print_listen_addrs(&client, cfg.print_addr).await?;
    let log: SharedLog = Arc::new(std::sync::Mutex::new(NodeLog {
        started: unix_now(),
        peer: client.local_peer_id().to_string(),
        workers: cfg.workers,
        max_po2: cfg.capacity.max_po2,
        ..NodeLog::default()
    }));
    if let Some(addr) = cfg.status_addr {
        let bound =
            node_status::serve(addr, &cfg.net.store_dir, log.clone(), client.clone()).await?;
        info!(%bound, "owner's status page up (`cairn node status`)");
    }
    // Tell the owner plainly whether clients can reach this node (once the network has had a moment to find
    // out), and again whenever that changes.
    {
        let c = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let mut last = String::new();
            loop {
                let Ok(r) = c.reachability().await else { break };
                let summary = r.summary();
                if summary != last {
                    eprintln!("cairn node: {summary}");
                    last = summary;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
    }
    let note = |f: &mut dyn FnMut(&mut NodeLog)| {
        if let Ok(mut l) = log.lock() {
            f(&mut l)
        }
    };
    let mut last_announce = tokio::time::Instant::now();
    // Why the owner's limits keep the node from taking new work right now (hours, idle-only), if they do.
    let mut paused: Option<String> = None;
    let mut idle_probe = IdleProbe::default();
    let pool = Arc::new(WorkerPool::new("cairn-prove", cfg.workers));
    let slots = cfg.capacity.slots.max(1);
    info!(peer = %client.local_peer_id(), workers = cfg.workers, max_po2 = cfg.capacity.max_po2, "prover node up");

    // Keyed by client as well: job ids are each client's own numbers, so two clients' tasks can share them.
    let mut running: HashMap<(PeerId, u64, u32), Running> = HashMap::new();
    // Clients that talked to us (offers, status): they get heartbeats, busy or idle.
    let mut clients: std::collections::HashSet<PeerId> = std::collections::HashSet::new();
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
    // Results being delivered (a request to the client, which then fetches the receipt from us).
    let (delivered_tx, mut delivered_rx) = mpsc::channel::<()>(64);
    let mut delivering = 0usize;
    let mut linger_until: Option<tokio::time::Instant> = None;
    let mut heartbeat = tokio::time::interval(cfg.heartbeat_every);
    let last_receipt: Arc<std::sync::Mutex<Option<Vec<u8>>>> = Arc::default();
    let mut draining = false;
    // Clients with tasks here that disconnected, and since when.
    let mut orphaned: HashMap<PeerId, tokio::time::Instant> = HashMap::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    Event::InboundRequest { peer, request, responder } => {
                        if matches!(request, Request::Offer(_) | Request::Status) {
                            clients.insert(peer);
                        }
                        let response = match request {
                            Request::Offer(offer) => {
                                let key = (peer, offer.job, offer.task);
                                let resumable = running.get(&key).filter(|_| !draining);
                                if let Some(r) = resumable {
                                    // Offered again what it is still proving (the client gave up on an earlier
                                    // attempt, say at a deadline): the proof in progress answers this attempt.
                                    r.cancelled.store(false, Ordering::SeqCst);
                                    info!(job = offer.job, task = offer.task, "offered a task already in progress: carrying on");
                                    Response::Accept
                                } else { match check_offer(&offer, &cfg.capacity, running.len() as u32, slots, draining, running.contains_key(&key)).and_then(|()| match &paused {
                                    // Outside the owner's hours, or the owner is using the machine: a passing "busy".
                                    Some(why) => Err((DeclineKind::Busy, why.clone())),
                                    None => Ok(()),
                                }) {
                                    Err((kind, reason)) => {
                                        note(&mut |l| l.declined += 1);
                                        Response::Decline { reason, kind: Some(kind) }
                                    }
                                    Ok(()) => {
                                        info!(job = offer.job, task = offer.task, client = %peer, "task accepted");
                                        note(&mut |l| {
                                            l.accepted += 1;
                                            l.running.push(TaskInHand { client: peer.to_string(), job: offer.job, task: offer.task, since: unix_now() });
                                        });
                                        let cancelled = Arc::new(AtomicBool::new(false));
                                        running.insert(key, Running { cancelled: cancelled.clone() });
                                        let work = Work {
                                            capacity: cfg.capacity,
                                            client: client.clone(),
                                            backend: backend.clone(),
                                            pool: pool.clone(),
                                            misbehave: cfg.misbehave.clone(),
                                            last_receipt: last_receipt.clone(),
                                            cancelled,
                                        };
                                        let done_tx = done_tx.clone();
                                        let span = info_span!("task", job = offer.job, task = offer.task);
                                        tokio::spawn(async move {
                                            let result = work.run(&offer, peer).await;
                                            let _ = done_tx.send((offer, peer, result)).await;
                                        }.instrument(span));
                                        Response::Accept
                                    }
                                } }
                            }
                            Request::Cancel { job, task } => {
                                if let Some(r) = running.get(&(peer, job, task)) {
                                    r.cancelled.store(true, Ordering::SeqCst);
                                    info!(job, task, "cancelled by the client");
                                }
                                Response::Ack
                            }
                            Request::Status => Response::Status(NodeStatus {
                                capacity: cfg.capacity,
                                free_slots: free_slots(slots, running.len(), draining || paused.is_some()),
                                benchmark: None,
                            }),
                            Request::Result(_) | Request::Heartbeat(_) | Request::Failed { .. } => Response::Error(ErrorReply::new(
                                ErrorCode::Refused,
                                "this node is a prover; results and heartbeats go to clients",
                            )),
                        };
                        responder.respond(response);
                    }
                    ev @ (Event::PeerSubscribed { topic: Topic::Capacity, .. } | Event::PeerConnected { .. }) => {
                        if let Event::PeerConnected { peer } = ev {
                            if orphaned.remove(&peer).is_some() {
                                info!(%peer, "client back: its tasks go on");
                            }
                        }
                        announce(&client, cfg.capacity, free_slots(slots, running.len(), paused.is_some()));
                    }
                    Event::ProtocolViolation { peer, reason } => {
                        warn!(%peer, %reason, "refused a bad message");
                        note(&mut |l| l.bad_requests += 1);
                    }
                    Event::GossipRejected { via, reason, .. } => {
                        info!(%via, %reason, "refused a bad gossip message");
                        note(&mut |l| l.bad_gossip += 1);
                    }
                    Event::PeerDisconnected { peer } => {
                        clients.remove(&peer);
                        // A client that drops off may be back in a moment (a NAT blip, a restart): its tasks go on,
                        // and their results are delivered when it is back; only if it stays away past the grace
                        // period are they dropped (see the heartbeat tick).
                        if running.keys().any(|(c, ..)| *c == peer) {
                            orphaned.entry(peer).or_insert_with(tokio::time::Instant::now);
                        }
                    }
                    _ => {}
                }
            }
            Some((offer, peer, result)) = done_rx.recv() => {
                let Some(r) = running.remove(&(peer, offer.job, offer.task)) else { continue };
                let who = peer.to_string();
                note(&mut |l| l.running.retain(|t| !(t.client == who && t.job == offer.job && t.task == offer.task)));
                // A copier is dishonest: it submits even when told to stop.
                if r.cancelled.load(Ordering::SeqCst) && !matches!(cfg.misbehave, Misbehave::Copy(_)) {
                    continue;
                }
                match result {
                    Ok(Proved { receipt, prove_ms }) => {
                        let c = client.clone();
                        let share = cfg.share_results.clone();
                        let delivered = delivered_tx.clone();
                        delivering += 1;
                        let log = log.clone();
                        tokio::spawn(async move {
                            let outcome = deliver(&c, peer, &offer, receipt.clone(), prove_ms).await;
                            if let Ok(mut l) = log.lock() {
                                match &outcome {
                                    Ok(()) => l.delivered += 1,
                                    Err(e) => l.problem(Problem {
                                        at: unix_now(),
                                        client: peer.to_string(),
                                        job: offer.job,
                                        task: offer.task,
                                        kind: if matches!(e, NodeError::Net(n) if matches!(**n, cairn_net::NetError::Remote { .. })) { "refused" } else { "undelivered" },
                                        reason: e.to_string(),
                                    }),
                                }
                            }
                            match outcome {
                                Ok(()) => {
                                    if let Some(dir) = share {
                                        // Leaked only after delivery, so the original always arrives first.
                                        let _ = std::fs::create_dir_all(&dir);
                                        let _ = std::fs::write(dir.join(format!("{}-{}.receipt", offer.job, offer.task)), &receipt);
                                    }
                                }
                                Err(e) => warn!(job = offer.job, task = offer.task, error = %e, "could not deliver the result"),
                            }
                            let _ = delivered.send(()).await;
                        });
                    }
                    Err(e) => {
                        warn!(job = offer.job, task = offer.task, error = %e.message, kind = ?e.kind, "task failed; telling the client to reassign it");
                        note(&mut |l| l.problem(Problem { at: unix_now(), client: peer.to_string(), job: offer.job, task: offer.task, kind: "failed", reason: e.message.clone() }));
                        let c = client.clone();
                        let failed = Request::Failed { job: offer.job, task: offer.task, reason: truncate(e.message, limits::MAX_TEXT), kind: e.kind };
                        tokio::spawn(async move { let _ = c.request(peer, &failed).await; });
                    }
                }
            }
            Some(()) = delivered_rx.recv() => {
                delivering = delivering.saturating_sub(1);
            }
            () = async { match linger_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                break;
            }
            _ = heartbeat.tick() => {
                // Clients away past the grace period: their results cannot be delivered; free the slots (a proof
                // already on a worker runs out).
                let gone: Vec<PeerId> = orphaned
                    .iter()
                    .filter(|(_, since)| since.elapsed() >= cfg.orphan_grace)
                    .map(|(p, _)| *p)
                    .collect();
                // Their tasks are dropped (not delivered), but a proof on a worker cannot be stopped mid-way: the
                // task keeps its slot until its proof has ended (`done_rx`), so nobody can have this node take
                // more work than it has workers by staying away past the grace period and offering again.
                for peer in gone {
                    orphaned.remove(&peer);
                    for ((client_peer, job, task), r) in running.iter() {
                        if *client_peer == peer && !r.cancelled.swap(true, Ordering::SeqCst) {
                            info!(job, task, "client gone: dropping its task (its slot is free once the proof in hand ends)");
                        }
                    }
                }
                let mut by_client: HashMap<PeerId, Vec<TaskRef>> = clients.iter().map(|c| (*c, Vec::new())).collect();
                for ((client_peer, job, task), r) in &running {
                    if !r.cancelled.load(Ordering::SeqCst) {
                        by_client.entry(*client_peer).or_default().push(TaskRef { job: *job, task: *task });
                    }
                }
                if cfg.misbehave == Misbehave::Silent {
                    by_client.clear();
                }
                for (peer, busy) in by_client {
                    let c = client.clone();
                    let hb = Request::Heartbeat(Heartbeat { busy, capacity: cfg.capacity });
                    tokio::spawn(async move { let _ = c.request(peer, &hb).await; });
                }
                let now_paused = cfg.availability.refusal(local_hour(), idle_probe.others_busy());
                if now_paused != paused {
                    match &now_paused {
                        Some(why) => info!(reason = %why, "taking no new work for now"),
                        None => info!("taking work again"),
                    }
                    paused = now_paused;
                    note(&mut |l| l.paused = paused.clone());
                    // Say so at once: clients stop (or start) offering.
                    last_announce = tokio::time::Instant::now() - cfg.announce_every;
                }
                if last_announce.elapsed() >= cfg.announce_every && !draining {
                    last_announce = tokio::time::Instant::now();
                    announce(&client, cfg.capacity, free_slots(slots, running.len(), paused.is_some()));
                }
            }
            () = &mut shutdown, if !draining => {
                draining = true;
                note(&mut |l| l.draining = true);
                info!(in_flight = running.len(), "draining: declining new work, finishing what is in hand");
            }
        }
        if draining && running.is_empty() && delivering == 0 && linger_until.is_none() {
            if clients.is_empty() {
                break;
            }
            // Everything in hand is delivered; stay up while the clients fetch the receipts.
            linger_until = Some(tokio::time::Instant::now() + cfg.drain_linger);
        }
        if linger_until.is_some() && clients.is_empty() {
            break;
        }
    }
    client.shutdown().await;
    Ok(())
}

/// Slots a node offers: none while it takes no new work (draining, or its owner's limits), else the idle ones.
fn free_slots(slots: u32, busy: usize, closed: bool) -> u32 {
    if closed {
        0
    } else {
        slots.saturating_sub(busy as u32)
    }
}

/// Publishes this node's capacity in the background (the network fills in its addresses).
fn announce(client: &Client, capacity: NodeCapacity, free_slots: u32) {
    let announcement = CapacityAnnouncement {
        capacity,
        free_slots,
        benchmark: None,
        addrs: Vec::new(),
    };
    let c = client.clone();
    tokio::spawn(async move {
        let _ = c.publish_capacity(&announcement).await;
    });
}

/// Reports the addresses clients can dial: `listening <addr>` lines on stdout for scripts, or a line on
/// stderr for people.
async fn print_listen_addrs(client: &Client, for_scripts: bool) -> Result<(), NodeError> {
    for _ in 0..100 {
        let addrs = client.listen_addrs().await?;
        if !addrs.is_empty() {
            use std::io::Write;
            if for_scripts {
                let mut out = std::io::stdout().lock();
                for a in addrs {
                    let _ = writeln!(out, "listening {a}");
                }
                let _ = out.flush();
            } else {
                for a in addrs {
                    eprintln!("cairn node: clients can dial {a}");
                }
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(NodeError::Config("no listen address became active".into()))
}

fn check_offer(
    offer: &Offer,
    capacity: &NodeCapacity,
    busy: u32,
    slots: u32,
    draining: bool,
    duplicate: bool,
) -> Result<(), (DeclineKind, String)> {
    if draining {
        return Err((
            DeclineKind::Draining,
            "draining: this node is shutting down".into(),
        ));
    }
    if duplicate {
        return Err((
            DeclineKind::AlreadyWorking,
            "already working on this task".into(),
        ));
    }
    if busy >= slots {
        return Err((DeclineKind::Busy, format!("busy: all {slots} slots in use")));
    }
    match &offer.kind {
        TaskKind::Prove { po2, .. } if *po2 > capacity.max_po2 => Err((
            DeclineKind::TooLarge,
            format!(
                "po2 {po2} needs more memory than this node has (max po2 {})",
                capacity.max_po2
            ),
        )),
        TaskKind::Prove { lift: true, .. } | TaskKind::Join { .. } if !capacity.recursion => Err((
            DeclineKind::NoRecursion,
            "this node cannot run recursion (lift/join): RISC Zero's recursion programs are not installed here"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// What one task needs.
struct Work {
    capacity: NodeCapacity,
    client: Client,
    backend: Arc<dyn ProvingBackend>,
    pool: Arc<WorkerPool>,
    misbehave: Misbehave,
    last_receipt: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Set when the task is cancelled (by its client, or its client is gone): work not started yet on a worker
    /// is skipped.
    cancelled: Arc<AtomicBool>,
}

/// A finished task: the receipt, and how long proving it took here (reported to the client with the result).
struct Proved {
    receipt: Vec<u8>,
    prove_ms: Option<u64>,
}

impl Work {
    async fn run(&self, offer: &Offer, client_peer: PeerId) -> Result<Proved, TaskError> {
        let cancelled = &self.cancelled;
        if self.misbehave == Misbehave::Silent {
            std::future::pending::<()>().await;
        }
        if let Misbehave::Copy(dir) = &self.misbehave {
            let receipt = wait_for_shared(dir, offer)
                .await
                .map_err(TaskError::transient)?;
            return Ok(Proved {
                receipt,
                prove_ms: None,
            });
        }
        // When the inputs are fetched and checked and the proof starts.
        let started;
        let receipt = match offer.kind {
            TaskKind::Prove {
                data, po2, lift, ..
            } => {
                let segment = self.fetch(client_peer, data).await?;
                if cancelled.load(Ordering::SeqCst) {
                    return Err(TaskError::transient("cancelled"));
                }
                let segment = self.check_segment(segment, po2).await?;
                started = Instant::now();
                let receipt = match &self.misbehave {
                    Misbehave::Garbage => {
                        return Ok(Proved {
                            receipt: b"definitely not a receipt".to_vec(),
                            prove_ms: None,
                        })
                    }
                    Misbehave::OtherJob => {
                        let program = self.fetch(client_peer, offer.program).await?;
                        self.prove_other_job(program, po2, offer).await?
                    }
                    _ => {
                        let backend = self.backend.clone();
                        self.blocking(move || backend.prove_segment(&segment))
                            .await?
                    }
                };
                if lift {
                    let backend = self.backend.clone();
                    self.blocking(move || backend.lift(&receipt)).await?
                } else {
                    receipt
                }
            }
            TaskKind::Join { left, right } => {
                let left = self.fetch(client_peer, left).await?;
                let right = self.fetch(client_peer, right).await?;
                if cancelled.load(Ordering::SeqCst) {
                    return Err(TaskError::transient("cancelled"));
                }
                if self.misbehave == Misbehave::Garbage {
                    return Ok(Proved {
                        receipt: b"definitely not a join".to_vec(),
                        prove_ms: None,
                    });
                }
                started = Instant::now();
                let backend = self.backend.clone();
                self.blocking(move || backend.join(&left, &right)).await?
            }
        };
        let receipt = match &self.misbehave {
            Misbehave::Replay => {
                let previous = self
                    .last_receipt
                    .lock()
                    .expect("poisoned")
                    .replace(receipt.clone());
                previous.unwrap_or(receipt)
            }
            _ => receipt,
        };
        Ok(Proved {
            receipt,
            prove_ms: Some(started.elapsed().as_millis() as u64),
        })
    }

    async fn fetch(&self, peer: PeerId, blob: BlobRef) -> Result<Vec<u8>, TaskError> {
        if blob.size > MAX_TASK_BLOB_BYTES {
            return Err(TaskError::task(format!(
                "the offer names a {} byte input; a prover takes at most {MAX_TASK_BLOB_BYTES}",
                blob.size
            )));
        }
        let fetched = self
            .client
            .fetch_blob_ref(&[peer], blob, Retention::Evictable)
            .await
            .map_err(|e| TaskError::transient(e.to_string()))?;
        tokio::fs::read(&fetched.path)
            .await
            .map_err(|e| TaskError::transient(format!("reading fetched blob: {e}")))
    }

    /// Before a worker is committed to it: the segment decodes, and it is no larger than the offer said and
    /// this node can hold (a client cannot make the node prove above its memory by understating the po2).
    async fn check_segment(&self, segment: Vec<u8>, offered_po2: u8) -> Result<Vec<u8>, TaskError> {
        let backend = self.backend.clone();
        let (segment, claim) = self
            .blocking(move || {
                let claim = backend.segment_claim(&segment)?;
                Ok((segment, claim))
            })
            .await?;
        if claim.po2 > offered_po2 || claim.po2 > self.capacity.max_po2 {
            return Err(TaskError::task(format!(
                "the segment is po2 {}, but the offer said po2 {offered_po2} and this node proves up to po2 {}",
                claim.po2, self.capacity.max_po2
            )));
        }
        Ok(segment)
    }

    /// Runs `f` on a proving worker. A backend error is the task's own (another prover would hit it too); so
    /// is a panic, which is caught here and fails only this task, leaving the worker thread alive.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, cairn_backend::BackendError> + Send + 'static,
    ) -> Result<T, TaskError> {
        let (tx, rx) = oneshot::channel();
        let cancelled = self.cancelled.clone();
        self.pool
            .spawn(move || {
                // Queued behind other work and cancelled meanwhile: not started at all.
                if cancelled.load(Ordering::SeqCst) {
                    let _ = tx.send(Err(TaskError::transient("cancelled before it started")));
                    return;
                }
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .map_err(|panic| {
                        TaskError::task(format!(
                            "the prover panicked on this task: {}",
                            panic_message(&panic)
                        ))
                    })
                    .and_then(|r| r.map_err(|e| TaskError::task(e.to_string())));
                let _ = tx.send(outcome);
            })
            .map_err(|e| TaskError::transient(e.to_string()))?;
        rx.await
            .map_err(|_| TaskError::transient("proving worker stopped"))?
    }

    /// The "other job" attack: run the same program on different input and prove the segment at the same
    /// index. A valid proof, of the wrong thing.
    async fn prove_other_job(
        &self,
        program: Vec<u8>,
        po2: u8,
        offer: &Offer,
    ) -> Result<Vec<u8>, TaskError> {
        let index = match offer.kind {
            TaskKind::Prove { segment, .. } => segment,
            TaskKind::Join { .. } => 0,
        };
        let backend = self.backend.clone();
        self.blocking(move || {
            // sha-chain's input layout; any other program just gets different bytes.
            let input = [&4u64.to_le_bytes()[..], b"another job"].concat();
            let mut wanted = None;
            let _ = backend.execute(&program, &input, po2, &mut |blob| {
                if blob.claim.index == index || wanted.is_none() {
                    wanted = Some(blob.bytes);
                }
                Ok(())
            });
            let segment = wanted.ok_or(cairn_backend::BackendError::Execution(
                "the other run produced no segment".into(),
            ))?;
            backend.prove_segment(&segment)
        })
        .await
    }
}

/// The text of a caught panic.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

async fn wait_for_shared(dir: &std::path::Path, offer: &Offer) -> Result<Vec<u8>, String> {
    let path = dir.join(format!("{}-{}.receipt", offer.job, offer.task));
    for _ in 0..600 {
        if let Ok(bytes) = tokio::fs::read(&path).await {
            return Ok(bytes);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("nothing to copy".into())
}

/// Whether the client answered and refused a request. `Busy` (its queue was full) and `Internal` are not
/// refusals of what was sent: a finished proof is offered again, like one to an unreachable client (issue 29,
/// item 9: a client whose event channel was full answered `Internal`, and the proof was thrown away).
fn refused(e: &cairn_net::NetError) -> bool {
    matches!(e, cairn_net::NetError::Remote { reply, .. }
        if !matches!(reply.code, ErrorCode::Busy | ErrorCode::Internal))
}

/// Delivers a finished result: publishes the receipt blob once, then sends the signed `Result`, retrying the
/// request with backoff (~1 minute in all) while the client is unreachable: a finished proof is worth a wait,
/// and the client keeps the task open until its deadline.
async fn deliver(
    client: &Client,
    peer: PeerId,
    offer: &Offer,
    receipt: Vec<u8>,
    prove_ms: Option<u64>,
) -> Result<(), NodeError> {
    let blob = BlobRef::of(&receipt);
    client.publish_blob(receipt, Retention::Evictable).await?;
    let result = Request::Result(TaskResult {
        job: offer.job,
        task: offer.task,
        receipt: blob,
        prover_signature: client.sign(&TaskResult::signing_bytes(offer.job, offer.task, &blob)),
        prove_ms,
    });
    let mut wait = Duration::from_secs(1);
    let started = Instant::now();
    loop {
        match client.request(peer, &result).await {
            Ok(_) => {
                info!(job = offer.job, task = offer.task, "result delivered");
                return Ok(());
            }
            // The client answered and refused it: asking again changes nothing.
            Err(e) if refused(&e) => return Err(e.into()),
            // The client stays unreachable past the time it keeps a gone prover's tasks: give up.
            Err(e) if started.elapsed() >= DELIVER_FOR => return Err(e.into()),
            Err(e) => {
                info!(job = offer.job, task = offer.task, error = %e, retry_in = ?wait, "result not delivered yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}
