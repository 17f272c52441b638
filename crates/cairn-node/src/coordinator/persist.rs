//! What the service writes to disk, kept off its loop: the job database runs on its own thread
//! ([`DbHandle`]: calls run in the order they are made) and blob writes on blocking threads. The loop starts
//! each write and acts on its answer when it comes back as a report, so a slow fsync never stalls the loop
//! (which also drains the network's events) while the orderings the invariants need still hold:
//!
//! - a job is looked up (and its recorded execution found) before it starts, once per key, however many
//!   submit it at the same moment;
//! - every segment is recorded before the execution that ends with it (one database thread, calls in order),
//!   and the scheduler hears that execution finished only once every segment is stored and published;
//! - a verified receipt is checked for copies and committed before the scheduler hears of it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use cairn_backend::{Digest32, ExecutionSummary, SegmentBlob, SegmentClaim};
use cairn_net::{BlobId, BlobRef, Client, Retention};
use cairn_scheduler::{Input, JobId, JobSpec, NodeId, RejectReason, TaskId};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::job::JobRun;
use super::service::{Core, Ended, JobHandle, JobRequest, Report};
use super::Progress;
use crate::jobdb::{DbStopped, JobDbError, JobState};
use crate::NodeError;

/// Someone waiting for a job that is being looked up.
pub(super) struct Submitter {
    pub owner: String,
    pub reply: oneshot::Sender<Result<JobHandle, NodeError>>,
}

/// What the database knows of a job about to start.
pub(super) struct Prepared {
    pub id: JobId,
    /// The recorded execution, if it finished: resume from it.
    pub recorded: Option<(ExecutionSummary, Vec<SegmentClaim>)>,
    pub verified: BTreeMap<u32, Vec<u8>>,
    /// Verified receipts of an execution that stopped midway, dropped.
    pub dropped: usize,
    pub program_blob: BlobId,
}

/// A segment stored in the database (if new) and published in the blob store.
pub(super) struct StoredSegment {
    pub claim: SegmentClaim,
    pub data: BlobRef,
    pub blob: BlobId,
    /// Join-tree jobs resuming: the segment's verified (lifted) receipt, published for the joins.
    pub restored: Option<(BlobRef, BlobId)>,
}

fn db_error(e: Result<JobDbError, DbStopped>) -> NodeError {
    match e {
        Ok(e) => NodeError::JobDb(e),
        Err(s) => NodeError::Internal(s.to_string()),
    }
}

/// Flattens a database call's two layers of error.
async fn answer<T>(
    call: impl std::future::Future<Output = Result<Result<T, JobDbError>, DbStopped>>,
) -> Result<T, NodeError> {
    match call.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(db_error(Ok(e))),
        Err(e) => Err(db_error(Err(e))),
    }
}

/// Writes `bytes` to the blob store (pinned) on a blocking thread.
pub(super) async fn put_pinned(
    client: &Client,
    bytes: Vec<u8>,
) -> Result<(BlobRef, BlobId), NodeError> {
    let r = BlobRef::of(&bytes);
    let store = client.store().clone();
    let id = tokio::task::spawn_blocking(move || store.put(&bytes, Retention::Pinned))
        .await
        .map_err(NodeError::join)?
        .map_err(|e| NodeError::Internal(format!("blob store: {e}")))?;
    Ok((r, id))
}

impl Core {
    // ---- submitting ----

    /// A job was submitted: join it if it runs, wait for it if it is being looked up, else look it up.
    pub(super) fn begin_submit(
        &mut self,
        request: JobRequest,
        image_id: Digest32,
        key: String,
        reply: oneshot::Sender<Result<JobHandle, NodeError>>,
    ) {
        let submitter = Submitter {
            owner: request.owner.clone(),
            reply,
        };
        if let Some(id) = self.running_keys.get(&key).copied() {
            info!(job = id.0, owner = %submitter.owner, "the same job is already running: joining it");
            self.attach(id, image_id, submitter);
            return;
        }
        if let Some(waiting) = self.preparing.get_mut(&key) {
            waiting.push(submitter);
            return;
        }
        self.preparing.insert(key.clone(), vec![submitter]);
        let (po2, k) = (request.settings.po2, key.clone());
        let lookup = self.db.call(move |db| {
            let (record, resumed) = db.job(&k, image_id, po2, 0)?;
            // Resume from the recorded execution: re-executing could give a different (equally valid)
            // trace, whose segments would not chain with receipts already verified.
            let recorded = if resumed {
                db.execution_claims(record.id)?
            } else {
                None
            };
            let (verified, dropped) = if recorded.is_some() {
                (db.verified(record.id)?.into_iter().collect(), 0)
            } else {
                (BTreeMap::new(), db.reset_segments(record.id)?)
            };
            db.set_state(record.id, JobState::Running)?;
            Ok((JobId(record.id), recorded, verified, dropped))
        });
        let (client, reports) = (self.client.clone(), self.reports.clone());
        tokio::spawn(async move {
            let prepared = async {
                let (id, recorded, verified, dropped) = answer(lookup).await?;
                let program_blob = client
                    .publish_blob(request.program.clone(), Retention::Pinned)
                    .await?;
                Ok(Prepared {
                    id,
                    recorded,
                    verified,
                    dropped,
                    program_blob,
                })
            }
            .await;
            let _ = reports
                .send(Report::Prepared {
                    key,
                    request: Box::new(request),
                    image_id,
                    prepared,
                })
                .await;
        });
    }

    /// Adds a submitter to a running job.
    fn attach(&mut self, id: JobId, image_id: Digest32, submitter: Submitter) {
        let Some(job) = self.jobs.get_mut(&id) else {
            let _ = submitter
                .reply
                .send(Err(NodeError::Internal("the job ended meanwhile".into())));
            return;
        };
        let (progress_tx, progress) = mpsc::unbounded_channel();
        let (result_tx, result) = oneshot::channel();
        job.waiters.push(result_tx);
        job.watchers.push(progress_tx);
        let _ = submitter.reply.send(Ok(JobHandle {
            id,
            image_id,
            progress,
            result,
            po2_choice: None,
        }));
    }

    /// The database answered: start the job (or tell its submitters why not).
    pub(super) fn start_job(
        &mut self,
        key: String,
        request: JobRequest,
        image_id: Digest32,
        prepared: Result<Prepared, NodeError>,
    ) -> Ended {
        let submitters = self.preparing.remove(&key).unwrap_or_default();
        let p = match prepared {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "could not start a job");
                for s in submitters {
                    let _ = s.reply.send(Err(e.duplicate()));
                }
                return Vec::new();
            }
        };
        let JobRequest {
            program,
            input,
            settings,
            owner,
        } = request;
        let id = p.id;
        let mut spec = JobSpec::new(settings.po2);
        spec.redundancy = settings.redundancy.max(1);
        spec.max_attempts = settings.max_attempts.max(1);
        spec.task_timeout_ms = settings.task_slack.as_millis() as u64;
        spec.aggregation = settings.aggregation;
        let run = JobRun {
            id,
            key: key.clone(),
            owner: owner.clone(),
            program: BlobRef::of(&program),
            client: self.client.clone(),
            segments: BTreeMap::new(),
            pending_total: None,
            resumed_segments: p.verified.len() as u32,
            verified: p.verified,
            result_refs: BTreeMap::new(),
            joins: BTreeMap::new(),
            joins_verified: 0,
            proved_by: BTreeMap::new(),
            summary: None,
            started: Instant::now(),
            deadline: tokio::time::Instant::now() + settings.timeout,
            execute_secs: 0.0,
            segment_latency_secs: Vec::new(),
            segment_prove_ms: BTreeMap::new(),
            assemble_started: None,
            assembling: false,
            waiters: Vec::new(),
            watchers: Vec::new(),
            pinned: vec![p.program_blob],
            delivered: HashMap::new(),
            failed_fetches: Default::default(),
            slow_fetches: Default::default(),
            stop: Default::default(),
            settings,
        };
        let stop = run.stop.clone();
        info!(job = id.0, %owner, %image_id, po2 = run.settings.po2, "job submitted");
        let (po2, cycle_limit) = (run.settings.po2, run.settings.cycle_limit);
        let resumed = run.resumed_segments;
        self.jobs.insert(id, run);
        self.running_keys.insert(key, id);
        for s in submitters {
            self.attach(id, image_id, s);
        }
        let job = self.jobs.get_mut(&id).expect("inserted");
        if p.dropped > 0 {
            warn!(
                job = id.0,
                dropped = p.dropped,
                "the previous run stopped during execution; starting the job over"
            );
            job.emit(Progress::Restarted {
                dropped: p.dropped as u32,
            });
        }
        if p.recorded.is_some() {
            info!(job = id.0, verified = resumed, "resuming job");
            job.emit(Progress::Resumed { verified: resumed });
        }
        let ended = self.feed(Input::SubmitJob { job: id, spec });

        let reports = self.reports.clone();
        if let Some((summary, claims)) = p.recorded {
            // Replay the recorded execution, one segment in memory at a time (the channel is bounded).
            let db = self.db.clone();
            tokio::spawn(async move {
                for claim in claims {
                    let bytes = match answer(db.call(move |db| db.segment(id.0, claim.index))).await
                    {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = reports.send(Report::JobError(id, e)).await;
                            return;
                        }
                    };
                    let blob = SegmentBlob { claim, bytes };
                    let _ = reports.send(Report::Segment(id, blob, true)).await;
                }
                let _ = reports.send(Report::Executed(id, Ok(summary), true)).await;
            });
        } else {
            // Execute on a blocking thread, streaming segments to the loop.
            let (backend, executed) = (self.backend.clone(), self.metrics.executed.clone());
            tokio::task::spawn_blocking(move || {
                let execute = || {
                    backend.execute_limited(&program, &input, po2, cycle_limit, &mut |blob| {
                        executed.inc();
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return Err(cairn_backend::BackendError::Execution(
                                "the job ended; its execution stops".into(),
                            ));
                        }
                        reports
                            .blocking_send(Report::Segment(id, blob, false))
                            .map_err(|_| {
                                cairn_backend::BackendError::Execution("coordinator stopped".into())
                            })
                    })
                };
                let r = super::unpanicked(execute, cairn_backend::BackendError::Execution);
                let _ = reports.blocking_send(Report::Executed(id, r, false));
            });
        }
        ended
    }

    // ---- segments and the execution ----

    /// A segment was executed (or replayed): record it (if new) and publish it, off the loop.
    pub(super) fn store_segment(&mut self, id: JobId, blob: SegmentBlob, recorded: bool) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let index = blob.claim.index;
        let restored = (job.aggregation() == cairn_scheduler::Aggregation::JoinTree)
            .then(|| job.verified.get(&index).cloned())
            .flatten();
        // A job that ended while its segments queued for the database skips their writes: nothing will use
        // them, and a fast executor can queue seconds of them.
        let stop = job.stop.clone();
        let record = (!recorded).then(|| {
            let (claim, bytes, stop) = (blob.claim, blob.bytes.clone(), stop.clone());
            self.db.call(move |db| {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(());
                }
                db.record_segment(id.0, &claim, &bytes)
            })
        });
        let (client, reports) = (self.client.clone(), self.reports.clone());
        tokio::spawn(async move {
            let stored = async {
                if let Some(r) = record {
                    answer(r).await?;
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(None);
                }
                let data = BlobRef::of(&blob.bytes);
                let blob_id = client.publish_blob(blob.bytes, Retention::Pinned).await?;
                let restored = match restored {
                    Some(bytes) => Some(put_pinned(&client, bytes).await?),
                    None => None,
                };
                Ok(Some(StoredSegment {
                    claim: blob.claim,
                    data,
                    blob: blob_id,
                    restored,
                }))
            }
            .await;
            let report = match stored {
                Ok(Some(s)) => Report::SegmentStored(id, s),
                // The job ended before anything was published for this segment: nobody waits for it (and
                // a report could reach a later run of the same job id).
                Ok(None) => return,
                Err(e) => Report::JobError(id, e),
            };
            let _ = reports.send(report).await;
        });
    }

    pub(super) fn on_segment_stored(&mut self, id: JobId, s: StoredSegment) -> Ended {
        let Some(job) = self.jobs.get_mut(&id) else {
            // The job ended meanwhile: release what was pinned for it.
            let store = self.client.store();
            let _ = store.unpin(&s.blob);
            if let Some((_, b)) = s.restored {
                let _ = store.unpin(&b);
            }
            return Vec::new();
        };
        let index = s.claim.index;
        job.pinned.push(s.blob);
        if let Some((r, b)) = s.restored {
            job.pinned.push(b);
            job.result_refs.insert(index, r);
        }
        job.segments.insert(index, (s.claim, s.data));
        job.emit(Progress::SegmentExecuted(index));
        // Proving cost follows the padded trace (2^po2 rows), not the guest's own cycles.
        let cycles = 1u64 << s.claim.po2;
        let input = if job.verified.contains_key(&index) {
            Input::SegmentRestored {
                job: id,
                segment: index,
                cycles,
            }
        } else {
            Input::SegmentReady {
                job: id,
                segment: index,
                cycles,
            }
        };
        let mut ended = self.feed(input);
        ended.extend(self.maybe_execution_finished(id));
        ended
    }

    /// Execution ended: record it (after its segments: same database thread), then tell the scheduler.
    pub(super) fn store_execution(
        &mut self,
        id: JobId,
        summary: ExecutionSummary,
        recorded: bool,
    ) -> Ended {
        if !self.jobs.contains_key(&id) {
            return Vec::new();
        }
        if recorded {
            return self.on_execution_stored(id, summary);
        }
        let reports = self.reports.clone();
        let s = summary.clone();
        let record = self.db.call(move |db| db.record_execution(id.0, &s));
        tokio::spawn(async move {
            let _ = reports
                .send(match answer(record).await {
                    Ok(()) => Report::ExecutionStored(id, summary),
                    Err(e) => Report::JobError(id, e),
                })
                .await;
        });
        Vec::new()
    }

    pub(super) fn on_execution_stored(&mut self, id: JobId, summary: ExecutionSummary) -> Ended {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        job.execute_secs = job.started.elapsed().as_secs_f64();
        let segments = summary.segments;
        job.emit(Progress::ExecutionFinished { segments });
        job.summary = Some(summary);
        job.pending_total = Some(segments);
        self.maybe_execution_finished(id)
    }

    /// Tells the scheduler execution finished once every segment of it is stored.
    fn maybe_execution_finished(&mut self, id: JobId) -> Ended {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        match job.pending_total {
            Some(n) if job.segments.len() as u32 == n => {
                job.pending_total = None;
                self.feed(Input::ExecutionFinished {
                    job: id,
                    segments: n,
                })
            }
            _ => Vec::new(),
        }
    }

    // ---- verified results ----

    /// A result verified: check it is not a copy and commit it (and, for a join tree, publish it), off the
    /// loop; `Report::Stored` brings it back.
    pub(super) fn store_result(
        &mut self,
        task: TaskId,
        node: NodeId,
        bytes: Vec<u8>,
        fingerprint: Digest32,
        prove_ms: Option<u64>,
    ) {
        let Some(job) = self.jobs.get(&task.job) else {
            return;
        };
        let already = job.verified.contains_key(&task.index);
        // Joins are not stored: a resumed job re-plans them from its verified segments.
        let durable = !task.is_join() && !already;
        let publish = job.aggregation() == cairn_scheduler::Aggregation::JoinTree && !already;
        let prover = self.prover_name(node);
        let now = self.now();
        let b = bytes.clone();
        // Proofs are randomized: the same proof (by fingerprint, whatever its bytes) from a second prover is a
        // copy. Without the check (the database failed) nothing is accepted: the job stops, to be resumed.
        let commit = self.db.call(move |db| {
            if let Some(original) =
                db.note_receipt(&fingerprint, task.job.0, task.index, &prover)?
            {
                return Ok(Some(original));
            }
            if durable {
                db.store_verified(task.job.0, task.index, &b, &prover, now, prove_ms)?;
            }
            Ok(None)
        });
        let (client, reports) = (self.client.clone(), self.reports.clone());
        tokio::spawn(async move {
            let report = async {
                Ok(match answer(commit).await? {
                    Some(original) => Report::Checked {
                        task,
                        node,
                        outcome: Err((
                            RejectReason::NotProversOwn,
                            format!("identical to the receipt {original} delivered"),
                        )),
                        prove_ms,
                    },
                    None => {
                        // The input of a join to come: served to whoever is given it.
                        let published = match publish {
                            true => Some(put_pinned(&client, bytes.clone()).await?),
                            false => None,
                        };
                        Report::Stored {
                            task,
                            node,
                            bytes,
                            published,
                            prove_ms,
                        }
                    }
                })
            }
            .await;
            let _ = reports
                .send(report.unwrap_or_else(|e| Report::JobError(task.job, e)))
                .await;
        });
    }

    /// A verified result is durable (and published): now the scheduler hears of it.
    pub(super) fn on_stored(
        &mut self,
        task: TaskId,
        node: NodeId,
        bytes: Vec<u8>,
        published: Option<(BlobRef, BlobId)>,
        prove_ms: Option<u64>,
    ) -> Ended {
        let peer = self.nodes.get(&node).copied();
        let prover = self.prover_name(node);
        let Some(job) = self.jobs.get_mut(&task.job) else {
            if let Some((_, b)) = published {
                let _ = self.client.store().unpin(&b);
            }
            return Vec::new();
        };
        // Slow fetches of other copies' receipts for this task are of no use now: abort them.
        job.slow_fetches.remove(&task.index);
        if !job.verified.contains_key(&task.index) {
            if let Some((r, b)) = published {
                job.pinned.push(b);
                job.result_refs.insert(task.index, r);
            }
            job.verified.insert(task.index, bytes);
            self.metrics.verified.inc();
            if task.is_join() {
                job.joins_verified += 1;
                info!(%prover, %task, "join verified");
            } else {
                info!(job = task.job.0, task = task.index, %prover, "segment verified");
                *job.proved_by.entry(prover).or_default() += 1;
                if let Some(ms) = prove_ms {
                    job.segment_prove_ms.insert(task.index, ms);
                }
                if let Some(p) = peer {
                    job.emit(Progress::Verified {
                        segment: task.index,
                        prover: p,
                    });
                }
            }
        } else if let Some((_, b)) = published {
            let _ = self.client.store().unpin(&b);
        }
        let had_slow_record = self.sched.slow_standing(self.now(), node).is_some();
        let ended = self.feed(Input::ResultVerified { node, task });
        self.save_speed(node);
        if had_slow_record {
            // A prompt result clears it; a late one (a slow copy that won after all) leaves it as it was.
            self.save_slow(node);
        }
        ended
    }

    /// Persists `node`'s slow-result record as the scheduler has it now (or forgets it, where it has none),
    /// so a client started again keeps a benched prover out for what is left of its bench.
    pub(super) fn save_slow(&self, node: NodeId) {
        let standing = self.sched.slow_standing(self.now(), node);
        let prover = self.prover_name(node);
        let now = crate::jobdb::unix_ms();
        self.db.send(move |db| {
            let saved = match standing {
                Some(s) => db.save_slow(&prover, &s, now),
                None => db.forget_slow(&prover),
            };
            if let Err(e) = saved {
                warn!(%prover, error = %e, "could not record a prover's slow results");
            }
        });
    }

    /// Persists what the scheduler now knows of `node`'s speed, for the next run.
    pub(super) fn save_speed(&self, node: NodeId) {
        let Some((_, speed, samples)) = self.sched.learned_speeds().find(|(n, ..)| *n == node)
        else {
            return;
        };
        let prover = self.prover_name(node);
        self.db.send(move |db| {
            if let Err(e) = db.save_speed(&prover, speed, samples) {
                warn!(%prover, error = %e, "could not record a prover's speed");
            }
        });
    }
}
