//! The soak's attackers (issue 29). They join after the quiet phase, so the same run measures honest jobs
//! with and without them:
//!
//! - [`Strangers`]: made-up identities announced over gossip, and idle strangers holding connections;
//! - a receipt trickler: a node that proves honestly and serves each receipt one chunk every 15 s (started by
//!   [`super::Lane::add_node`] with `--misbehave trickle`);
//! - [`Abandoner`]: a client that offers a large job, disappears past the provers' grace period and comes
//!   back to offer it again, over and over;
//! - [`Tenant`]: an honest key proving through a `cairn gateway`, while another key tries to stop, read and
//!   download each of its sessions.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;

use super::ChaosCounts;

/// Strangers on the network (issue 29): a flooder announcing made-up identities that claim a fast machine,
/// with addresses pointing at other nodes' ports and at a closed port, each gone a moment after it announced;
/// and idle strangers holding connections to the observed node. None of them may ever be offered a task
/// (checked against the clients' ledgers).
pub(super) struct Strangers {
    pub(super) bootstrap: String,
    /// Other nodes' addresses (`/ip4/.../tcp/<port>`) the made-up identities claim to live at.
    pub(super) targets: Vec<String>,
    pub(super) dir: PathBuf,
    pub(super) counts: Arc<Mutex<ChaosCounts>>,
    pub(super) made_up: Arc<Mutex<HashSet<String>>>,
}

impl Strangers {
    pub(super) fn run(self, start: Instant, stop: Arc<AtomicBool>) {
        if !wait_until(start, &stop) {
            return;
        }
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(bootstrap) = self.bootstrap.parse::<cairn_net::Multiaddr>() else {
                return;
            };
            let mut idle: std::collections::VecDeque<cairn_net::Client> = Default::default();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let dir = self.dir.join(format!("stranger-{n}"));
                let Ok((client, mut events, event_loop)) =
                    cairn_net::Network::new(cairn_net::Config::loopback(&dir)).await
                else {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                };
                tokio::spawn(event_loop.run());
                let me = client.local_peer_id();
                let target = &self.targets[n as usize % self.targets.len().max(1)];
                let announce = async {
                    client.dial(bootstrap.clone()).await.ok()?;
                    tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(ev) = events.recv().await {
                            if let cairn_net::Event::PeerSubscribed {
                                topic: cairn_net::Topic::Capacity,
                                ..
                            } = ev
                            {
                                return;
                            }
                        }
                    })
                    .await
                    .ok()?;
                    let a = cairn_net::protocol::CapacityAnnouncement {
                        capacity: cairn_net::protocol::NodeCapacity {
                            memory_bytes: 64 << 30,
                            max_po2: 22,
                            cycles_per_sec: 50_000_000,
                            slots: 8,
                            recursion: true,
                        },
                        free_slots: 8,
                        benchmark: None,
                        addrs: vec![
                            format!("{target}/p2p/{me}"),
                            format!("/ip4/127.0.0.1/tcp/9/p2p/{me}"),
                        ],
                    };
                    let bytes = cairn_net::protocol::encode(&a).ok()?;
                    client
                        .publish_raw(cairn_net::Topic::Capacity, bytes)
                        .await
                        .ok()
                };
                if announce.await.is_some() {
                    self.made_up
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(me.to_string());
                    self.counts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .made_up_identities += 1;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                // Every other one stays, idle, holding its connection (eight at most, oldest let go).
                if n.is_multiple_of(2) {
                    tokio::spawn(async move { while events.recv().await.is_some() {} });
                    idle.push_back(client);
                    self.counts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .idle_strangers += 1;
                    if idle.len() > 8 {
                        if let Some(old) = idle.pop_front() {
                            old.shutdown().await;
                        }
                    }
                } else {
                    client.shutdown().await;
                    let _ = std::fs::remove_dir_all(&dir);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            for c in idle {
                c.shutdown().await;
            }
        });
    }
}

/// Sleeps until `at` or until `stop`; whether `at` came.
pub(super) fn wait_until(at: Instant, stop: &AtomicBool) -> bool {
    while Instant::now() < at {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    !stop.load(Ordering::SeqCst)
}

/// A client that offers a large job, is killed 20 s later, and comes back 65 s after that (past the provers'
/// 60 s grace period, so their tasks from it are dropped while the proofs may still run) to resume and offer
/// the rest again (issue 29, item 3). When its job ends anyway, the next run starts another.
pub(super) struct Abandoner {
    pub(super) exe: PathBuf,
    pub(super) bootstrap: String,
    pub(super) dir: PathBuf,
    pub(super) cycles: u64,
    pub(super) counts: Arc<Mutex<ChaosCounts>>,
}

impl Abandoner {
    pub(super) fn run(self, start: Instant, stop: Arc<AtomicBool>) {
        if !wait_until(start, &stop) || std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let mut generation = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let Ok(log) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("client.log"))
            else {
                return;
            };
            let child = Command::new(&self.exe)
                .args([
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
                    "fake",
                    "--aggregation",
                    "composite",
                    "--job-timeout-secs",
                    "100000",
                    "--iterations",
                    &(self.cycles + generation).to_string(),
                    "--bootstrap",
                    &self.bootstrap,
                ])
                .arg("--db")
                .arg(self.dir.join("jobs.sqlite"))
                .arg("--data-dir")
                .arg(self.dir.join("client"))
                .arg("--out")
                .arg(self.dir.join("receipt.bin"))
                .env("CAIRN_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn();
            let Ok(mut child) = child else {
                eprintln!("soak: the abandoning client did not start");
                return;
            };
            let kill_at = Instant::now() + Duration::from_secs(20);
            let mut ended = false;
            while Instant::now() < kill_at && !stop.load(Ordering::SeqCst) {
                if let Ok(Some(_)) = child.try_wait() {
                    ended = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
            if ended {
                generation += 1;
            } else {
                self.counts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clients_abandoned += 1;
            }
            if !wait_until(Instant::now() + Duration::from_secs(65), &stop) {
                return;
            }
        }
    }
}

/// One session an honest tenant proved through the gateway.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(super) struct SessionRun {
    pub(super) number: u64,
    pub(super) uuid: String,
    pub(super) phase: &'static str,
    pub(super) status: String,
    pub(super) secs: f64,
    pub(super) receipt_verified: bool,
    /// Requests another key made for this session (stop, status, receipt), all of which must be refused.
    pub(super) intrusions_refused: u32,
    pub(super) problems: Vec<String>,
}

/// An honest key proving through a `cairn gateway`, one session after another, and (after the quiet phase)
/// another key asking to stop, read and download each of its sessions while it runs (issue 29, item 5).
pub(super) struct Tenant {
    pub(super) url: String,
    pub(super) key: String,
    pub(super) intruder_key: String,
    pub(super) cycles: u64,
    pub(super) attack_at: Instant,
    pub(super) sessions: Arc<Mutex<Vec<SessionRun>>>,
}

type HttpResult<T> = Result<T, String>;

impl Tenant {
    pub(super) fn run(self, stop: Arc<AtomicBool>) {
        let http = match reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("soak: no HTTP client: {e}");
                return;
            }
        };
        let program = FakeBackend::program("sha-chain");
        let backend = FakeBackend::new(0.0);
        let Ok(image) = backend.image_id(&program) else {
            return;
        };
        let image = image.to_string();
        let mut n = 0u64;
        let mut failed_in_a_row = 0u32;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let started = Instant::now();
            let mut run = SessionRun {
                number: n,
                phase: if started < self.attack_at {
                    "quiet"
                } else {
                    "attack"
                },
                ..SessionRun::default()
            };
            if let Err(e) = self.session(&http, &backend, &program, &image, n, &mut run) {
                run.problems.push(e);
            }
            run.secs = started.elapsed().as_secs_f64();
            eprintln!(
                "soak: gateway session {n} {} in {:.0} s{}",
                run.status,
                run.secs,
                if run.problems.is_empty() {
                    String::new()
                } else {
                    format!(": {}", run.problems.join("; "))
                }
            );
            let failed = !run.problems.is_empty();
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(run);
            // A gateway that fails at once (gone, refusing) must not spin this loop: wait, and give up after
            // twenty failures in a row (each one is a problem in the verdict).
            failed_in_a_row = if failed { failed_in_a_row + 1 } else { 0 };
            if failed_in_a_row >= 20 {
                eprintln!("soak: the gateway failed 20 sessions in a row; the tenant stops");
                return;
            }
            if failed {
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }

    fn get(
        &self,
        http: &reqwest::blocking::Client,
        key: &str,
        path: &str,
    ) -> HttpResult<reqwest::blocking::Response> {
        http.get(format!("{}{path}", self.url))
            .header("x-api-key", key)
            .send()
            .map_err(|e| format!("GET {path}: {e}"))
    }

    fn json(resp: reqwest::blocking::Response, what: &str) -> HttpResult<serde_json::Value> {
        let status = resp.status();
        let body = resp.text().map_err(|e| format!("{what}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{what}: {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{what}: {e}: {body}"))
    }

    fn put(&self, http: &reqwest::blocking::Client, url: &str, body: Vec<u8>) -> HttpResult<()> {
        let resp = http
            .put(url)
            .header("x-api-key", &self.key)
            .body(body)
            .send()
            .map_err(|e| format!("PUT {url}: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("PUT {url}: {}", resp.status()))
        }
    }

    /// The intruder's requests for `uuid`; each must be refused.
    fn intrude(&self, http: &reqwest::blocking::Client, uuid: &str, run: &mut SessionRun) {
        for path in [
            format!("/sessions/stop/{uuid}"),
            format!("/sessions/status/{uuid}"),
            format!("/receipts/{uuid}"),
            format!("/blobs/receipts/{uuid}"),
        ] {
            match self.get(http, &self.intruder_key, &path) {
                Ok(r) if r.status().is_client_error() => run.intrusions_refused += 1,
                Ok(r) => run.problems.push(format!(
                    "another key's GET {path} was answered {}",
                    r.status()
                )),
                Err(e) => run.problems.push(e),
            }
        }
    }

    fn session(
        &self,
        http: &reqwest::blocking::Client,
        backend: &FakeBackend,
        program: &[u8],
        image: &str,
        n: u64,
        run: &mut SessionRun,
    ) -> HttpResult<()> {
        let up = self.get(http, &self.key, &format!("/images/upload/{image}"))?;
        if up.status() != reqwest::StatusCode::NO_CONTENT {
            let url = Self::json(up, "image upload")?["url"]
                .as_str()
                .ok_or("image upload: no url")?
                .to_string();
            self.put(http, &url, program.to_vec())?;
        }
        let up = Self::json(self.get(http, &self.key, "/inputs/upload")?, "input upload")?;
        let (input, url) = (
            up["uuid"].as_str().ok_or("input upload: no uuid")?,
            up["url"].as_str().ok_or("input upload: no url")?,
        );
        self.put(
            http,
            url,
            // Every session the same size (quiet and attacked ones compare), each input new.
            FakeBackend::input(self.cycles, format!("gateway-{n}").as_bytes()),
        )?;
        let created = http
            .post(format!("{}/sessions/create", self.url))
            .header("x-api-key", &self.key)
            .json(&serde_json::json!({ "img": image, "input": input }))
            .send()
            .map_err(|e| format!("create: {e}"))?;
        let uuid = Self::json(created, "create")?["uuid"]
            .as_str()
            .ok_or("create: no uuid")?
            .to_string();
        run.uuid = uuid.clone();
        let attacked = Instant::now() >= self.attack_at;
        if attacked {
            self.intrude(http, &uuid, run);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let s = Self::json(
                self.get(http, &self.key, &format!("/sessions/status/{uuid}"))?,
                "status",
            )?;
            run.status = s["status"].as_str().unwrap_or("?").to_string();
            if run.status != "RUNNING" {
                if run.status != "SUCCEEDED" {
                    return Err(format!(
                        "session {uuid} ended {}: {}",
                        run.status, s["error_msg"]
                    ));
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("session {uuid} still running after 10 minutes"));
            }
        }
        if attacked {
            // And once more after it finished: a receipt is no more another key's than a running session.
            self.intrude(http, &uuid, run);
        }
        let url = Self::json(
            self.get(http, &self.key, &format!("/receipts/{uuid}"))?,
            "receipt url",
        )?["url"]
            .as_str()
            .ok_or("receipt: no url")?
            .to_string();
        let bytes = http
            .get(&url)
            .header("x-api-key", &self.key)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.bytes())
            .map_err(|e| format!("receipt download: {e}"))?;
        let id = backend.image_id(program).map_err(|e| e.to_string())?;
        backend
            .verify_receipt(&bytes, &id)
            .map_err(|e| format!("session {uuid}: the receipt does not verify: {e}"))?;
        run.receipt_verified = true;
        Ok(())
    }
}
