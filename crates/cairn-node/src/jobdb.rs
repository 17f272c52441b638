//! The client's durable job state in SQLite: jobs, the expected claim of every segment, every verified
//! receipt, every receipt digest seen (to catch copies), and ledger events.
//!
//! A verified receipt is committed here before the scheduler hears of it, so a client killed at any moment
//! restarts with every verified segment intact and never asks for it again.

use std::path::Path;

use cairn_backend::{Digest32, ExecutionSummary, SegmentClaim};
use cairn_scheduler::SlowStanding;
use rusqlite::{params, Connection, OptionalExtension};

/// How long a prover's slow-result record is kept untouched before it is forgotten (a day).
pub const SLOW_RECORD_KEPT_MS: u64 = 24 * 3_600_000;

/// Milliseconds since the Unix epoch, by this machine's clock (what a bench kept between runs ends by).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Errors of the job database.
#[derive(Debug, thiserror::Error)]
pub enum JobDbError {
    #[error("job database {path}: {source}. Delete the file to start over (verified segments in it are lost)")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("job database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("job database holds a corrupt record: {0}")]
    Corrupt(String),
}

/// Where a job stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a ledger event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// Paid for a verified result.
    Reward,
    /// Penalized (its cause says why).
    Penalty,
    /// A result refused at verification (its cause says why); the penalty, if any, is its own event.
    Rejected,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reward => "reward",
            Self::Penalty => "penalty",
            Self::Rejected => "rejected",
        }
    }
}

/// One ledger event: who, what, why, how much, when (client milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEvent {
    pub job: Option<u64>,
    pub task: Option<u32>,
    pub prover: String,
    pub kind: LedgerKind,
    pub cause: Option<String>,
    pub amount: u64,
    pub at_ms: u64,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: u64,
    /// Identifies the work: image id, input digest and po2. Resuming matches on it.
    pub key: String,
    pub image_id: Digest32,
    pub po2: u8,
    pub state: String,
}

/// The SQLite job database.
#[derive(Debug)]
pub struct JobDb {
    conn: Connection,
}

impl JobDb {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, JobDbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).ok();
        }
        let open = |path: &Path| -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS jobs (
                    id INTEGER PRIMARY KEY,
                    key TEXT NOT NULL UNIQUE,
                    image_id TEXT NOT NULL,
                    po2 INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    created_ms INTEGER NOT NULL,
                    summary BLOB
                 );
                 CREATE TABLE IF NOT EXISTS segments (
                    job INTEGER NOT NULL,
                    idx INTEGER NOT NULL,
                    claim BLOB NOT NULL,
                    segment BLOB NOT NULL,
                    receipt BLOB,
                    prover TEXT,
                    verified_ms INTEGER,
                    prove_ms INTEGER,
                    PRIMARY KEY (job, idx)
                 );
                 CREATE TABLE IF NOT EXISTS seen_receipts (
                    digest TEXT PRIMARY KEY,
                    job INTEGER NOT NULL,
                    idx INTEGER NOT NULL,
                    prover TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS prover_speeds (
                    prover TEXT PRIMARY KEY,
                    cycles_per_sec REAL NOT NULL,
                    samples INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS prover_slowness (
                    prover TEXT PRIMARY KEY,
                    strikes INTEGER NOT NULL,
                    benches INTEGER NOT NULL,
                    benched_until_ms INTEGER NOT NULL,
                    updated_ms INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS ledger_events (
                    id INTEGER PRIMARY KEY,
                    job INTEGER,
                    task INTEGER,
                    prover TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    cause TEXT,
                    amount INTEGER NOT NULL,
                    at_ms INTEGER NOT NULL
                 );",
            )?;
            // Databases from before `prove_ms` (the prover's reported proving time) gain the column.
            let has_prove_ms = conn
                .prepare("SELECT 1 FROM pragma_table_info('segments') WHERE name = 'prove_ms'")?
                .exists([])?;
            if !has_prove_ms {
                conn.execute_batch("ALTER TABLE segments ADD COLUMN prove_ms INTEGER")?;
            }
            Ok(conn)
        };
        let conn = open(path).map_err(|source| JobDbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { conn })
    }

    /// The job with this key, or a new one.
    pub fn job(
        &self,
        key: &str,
        image_id: Digest32,
        po2: u8,
        now_ms: u64,
    ) -> Result<(JobRecord, bool), JobDbError> {
        if let Some(job) = self.find_job(key)? {
            return Ok((job, true));
        }
        self.conn.execute(
            "INSERT INTO jobs (key, image_id, po2, state, created_ms) VALUES (?1, ?2, ?3, 'running', ?4)",
            params![key, image_id.to_string(), po2, now_ms as i64],
        )?;
        Ok((
            self.find_job(key)?
                .ok_or_else(|| JobDbError::Corrupt("job vanished after insert".into()))?,
            false,
        ))
    }

    /// The most recent job whose key starts with `prefix` (the same program and input at any po2 and
    /// aggregation): its key. What `--po2 auto` resumes instead of choosing again.
    pub fn latest_job_with_prefix(&self, prefix: &str) -> Result<Option<String>, JobDbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT key FROM jobs WHERE substr(key, 1, length(?1)) = ?1 ORDER BY created_ms DESC, id DESC LIMIT 1",
                params![prefix],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }

    fn find_job(&self, key: &str) -> Result<Option<JobRecord>, JobDbError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, key, image_id, po2, state FROM jobs WHERE key = ?1",
                params![key],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, u8>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, key, image, po2, state)| {
            Ok(JobRecord {
                id: id as u64,
                key,
                image_id: Digest32::from_hex(&image)
                    .map_err(|e| JobDbError::Corrupt(e.to_string()))?,
                po2,
                state,
            })
        })
        .transpose()
    }

    pub fn set_state(&self, job: u64, state: JobState) -> Result<(), JobDbError> {
        self.conn.execute(
            "UPDATE jobs SET state = ?2 WHERE id = ?1",
            params![job as i64, state.as_str()],
        )?;
        Ok(())
    }

    /// Records a segment: its expected claim and its bytes, so a restarted client can offer it again without
    /// re-executing (execution is not reproducible: the guest may draw host randomness). Idempotent; a
    /// different claim for a recorded segment is refused.
    pub fn record_segment(
        &self,
        job: u64,
        claim: &SegmentClaim,
        segment: &[u8],
    ) -> Result<(), JobDbError> {
        let bytes = bincode::serialize(claim).expect("in-memory serialization");
        let existing: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT claim FROM segments WHERE job = ?1 AND idx = ?2",
                params![job as i64, claim.index],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(old) if old != bytes => Err(JobDbError::Corrupt(format!(
                "segment {} of job {job} has a different claim than recorded before",
                claim.index
            ))),
            Some(_) => Ok(()),
            None => {
                self.conn.execute(
                    "INSERT INTO segments (job, idx, claim, segment) VALUES (?1, ?2, ?3, ?4)",
                    params![job as i64, claim.index, bytes, segment],
                )?;
                Ok(())
            }
        }
    }

    /// Records that execution finished; from now on the job resumes from its recorded segments.
    pub fn record_execution(&self, job: u64, summary: &ExecutionSummary) -> Result<(), JobDbError> {
        let bytes = bincode::serialize(summary).expect("in-memory serialization");
        self.conn.execute(
            "UPDATE jobs SET summary = ?2 WHERE id = ?1",
            params![job as i64, bytes],
        )?;
        Ok(())
    }

    /// The execution of a job, if it finished: its summary and every segment's claim, in order, without the
    /// segments' bytes (read them one at a time with [`JobDb::segment`]: a resumed job of thousands of
    /// segments does not load them all into memory).
    #[allow(clippy::type_complexity)]
    pub fn execution_claims(
        &self,
        job: u64,
    ) -> Result<Option<(ExecutionSummary, Vec<SegmentClaim>)>, JobDbError> {
        let summary: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT summary FROM jobs WHERE id = ?1",
                params![job as i64],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(summary) = summary else {
            return Ok(None);
        };
        let summary: ExecutionSummary = bincode::deserialize(&summary)
            .map_err(|e| JobDbError::Corrupt(format!("execution summary: {e}")))?;
        let mut stmt = self
            .conn
            .prepare("SELECT claim FROM segments WHERE job = ?1 ORDER BY idx")?;
        let rows = stmt.query_map(params![job as i64], |r| r.get::<_, Vec<u8>>(0))?;
        let mut claims = Vec::new();
        for row in rows {
            claims.push(
                bincode::deserialize(&row?)
                    .map_err(|e| JobDbError::Corrupt(format!("segment claim: {e}")))?,
            );
        }
        if claims.len() != summary.segments as usize {
            return Err(JobDbError::Corrupt(format!(
                "job {job} recorded {} of its {} segments",
                claims.len(),
                summary.segments
            )));
        }
        Ok(Some((summary, claims)))
    }

    /// Fuzzing only (`crates/cairn-fuzz`): overwrites a job's stored execution summary and its first
    /// segment's claim with raw bytes, as a corrupted or hand-edited database would hold them, without
    /// syncing each write.
    #[doc(hidden)]
    pub fn overwrite_records_for_fuzzing(
        &self,
        job: u64,
        summary: &[u8],
        claim: &[u8],
    ) -> Result<(), JobDbError> {
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        self.conn.execute(
            "UPDATE jobs SET summary = ?2 WHERE id = ?1",
            params![job as i64, summary],
        )?;
        self.conn.execute(
            "UPDATE segments SET claim = ?2 WHERE job = ?1 AND idx = 0",
            params![job as i64, claim],
        )?;
        Ok(())
    }

    /// The bytes of one recorded segment.
    pub fn segment(&self, job: u64, index: u32) -> Result<Vec<u8>, JobDbError> {
        self.conn
            .query_row(
                "SELECT segment FROM segments WHERE job = ?1 AND idx = ?2",
                params![job as i64, index],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| JobDbError::Corrupt(format!("segment {index} of job {job} is missing")))
    }

    /// Forgets a job's segments and receipts (an execution that stopped midway cannot be continued: a new
    /// execution may differ). Returns how many verified receipts were dropped.
    pub fn reset_segments(&self, job: u64) -> Result<usize, JobDbError> {
        let dropped: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM segments WHERE job = ?1 AND receipt IS NOT NULL",
            params![job as i64],
            |r| r.get(0),
        )?;
        self.conn
            .execute("DELETE FROM segments WHERE job = ?1", params![job as i64])?;
        Ok(dropped as usize)
    }

    /// Stores a verified receipt durably (fsync'd before returning), with the proving time its prover
    /// reported (self-reported: for reports, never for payment).
    pub fn store_verified(
        &self,
        job: u64,
        index: u32,
        receipt: &[u8],
        prover: &str,
        now_ms: u64,
        prove_ms: Option<u64>,
    ) -> Result<(), JobDbError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE segments SET receipt = ?3, prover = ?4, verified_ms = ?5, prove_ms = ?6 WHERE job = ?1 AND idx = ?2 AND receipt IS NULL",
            params![job as i64, index, receipt, prover, now_ms as i64, prove_ms.map(|ms| ms as i64)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Verified receipts of a job by segment index.
    pub fn verified(&self, job: u64) -> Result<Vec<(u32, Vec<u8>)>, JobDbError> {
        let mut stmt = self.conn.prepare(
            "SELECT idx, receipt FROM segments WHERE job = ?1 AND receipt IS NOT NULL ORDER BY idx",
        )?;
        let rows = stmt.query_map(params![job as i64], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `prover` submitted a receipt with this digest for (job, idx). Returns the earlier
    /// submitter if another prover already submitted the same bytes (a copy).
    pub fn note_receipt(
        &self,
        digest: &Digest32,
        job: u64,
        index: u32,
        prover: &str,
    ) -> Result<Option<String>, JobDbError> {
        let earlier: Option<String> = self
            .conn
            .query_row(
                "SELECT prover FROM seen_receipts WHERE digest = ?1",
                params![digest.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        match earlier {
            Some(p) if p != prover => Ok(Some(p)),
            Some(_) => Ok(None),
            None => {
                self.conn.execute(
                    "INSERT INTO seen_receipts (digest, job, idx, prover) VALUES (?1, ?2, ?3, ?4)",
                    params![digest.to_string(), job as i64, index, prover],
                )?;
                Ok(None)
            }
        }
    }

    /// Appends a ledger event for the record.
    pub fn ledger_event(&self, e: &LedgerEvent) -> Result<(), JobDbError> {
        self.conn.execute(
            "INSERT INTO ledger_events (job, task, prover, kind, cause, amount, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.job.map(|j| j as i64),
                e.task,
                e.prover,
                e.kind.as_str(),
                e.cause,
                e.amount as i64,
                e.at_ms as i64
            ],
        )?;
        Ok(())
    }

    /// Records the speed a prover's verified results showed (cycles per second, over `samples` results), for
    /// the next run's deadlines.
    pub fn save_speed(
        &self,
        prover: &str,
        cycles_per_sec: f64,
        samples: u32,
    ) -> Result<(), JobDbError> {
        self.conn.execute(
            "INSERT INTO prover_speeds (prover, cycles_per_sec, samples) VALUES (?1, ?2, ?3)
             ON CONFLICT(prover) DO UPDATE SET cycles_per_sec = ?2, samples = ?3",
            params![prover, cycles_per_sec, samples],
        )?;
        Ok(())
    }

    /// Every prover's recorded speed: (prover, cycles per second, samples).
    pub fn speeds(&self) -> Result<Vec<(String, f64, u32)>, JobDbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT prover, cycles_per_sec, samples FROM prover_speeds")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a prover's slow-result record (strikes, benches, and its bench as a wall-clock end), for the
    /// next run: a client started again keeps a benched prover out for what is left of its bench.
    pub fn save_slow(
        &self,
        prover: &str,
        standing: &SlowStanding,
        now_unix_ms: u64,
    ) -> Result<(), JobDbError> {
        let until = if standing.bench_left_ms > 0 {
            now_unix_ms.saturating_add(standing.bench_left_ms)
        } else {
            0
        };
        self.conn.execute(
            "INSERT INTO prover_slowness (prover, strikes, benches, benched_until_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(prover) DO UPDATE SET strikes = ?2, benches = ?3, benched_until_ms = ?4,
             updated_ms = ?5",
            params![
                prover,
                standing.strikes,
                standing.benches,
                until as i64,
                now_unix_ms as i64
            ],
        )?;
        Ok(())
    }

    /// Forgets a prover's slow-result record (it delivered promptly again).
    pub fn forget_slow(&self, prover: &str) -> Result<(), JobDbError> {
        self.conn.execute(
            "DELETE FROM prover_slowness WHERE prover = ?1",
            params![prover],
        )?;
        Ok(())
    }

    /// Every prover's slow-result record as of `now_unix_ms` (what is left of its bench, 0 if it has ended).
    /// Records untouched for [`SLOW_RECORD_KEPT_MS`] are dropped: a day-old bad moment is not a habit.
    pub fn slow_records(
        &self,
        now_unix_ms: u64,
    ) -> Result<Vec<(String, SlowStanding)>, JobDbError> {
        let stale = now_unix_ms.saturating_sub(SLOW_RECORD_KEPT_MS) as i64;
        self.conn.execute(
            "DELETE FROM prover_slowness WHERE updated_ms < ?1",
            params![stale],
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT prover, strikes, benches, benched_until_ms FROM prover_slowness ORDER BY prover",
        )?;
        let rows = stmt.query_map([], |r| {
            let until: i64 = r.get(3)?;
            Ok((
                r.get::<_, String>(0)?,
                SlowStanding {
                    strikes: r.get(1)?,
                    benches: r.get(2)?,
                    bench_left_ms: (until.max(0) as u64).saturating_sub(now_unix_ms),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ledger events of a prover: (kind, cause) pairs, oldest first.
    pub fn ledger_of(&self, prover: &str) -> Result<Vec<(String, Option<String>)>, JobDbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, cause FROM ledger_events WHERE prover = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![prover], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every ledger event: (prover, kind, cause).
    pub fn ledger(&self) -> Result<Vec<(String, String, Option<String>)>, JobDbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT prover, kind, cause FROM ledger_events ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A job request of the database thread.
type DbCall = Box<dyn FnOnce(&JobDb) + Send>;

/// The job database on a thread of its own, so its synchronous (fsync'd) writes never stall the async
/// runtime or the coordinator's loop. Calls run one at a time in the order they were made, which keeps the
/// orderings the invariants need (a segment is recorded before the execution that ends with it; a receipt is
/// durable before the scheduler hears of it, because the loop acts on the answer).
#[derive(Debug, Clone)]
pub struct DbHandle {
    tx: std::sync::mpsc::Sender<DbCall>,
}

/// The database thread has stopped (it panicked or the process is ending).
#[derive(Debug, thiserror::Error)]
#[error("the job database thread has stopped")]
pub struct DbStopped;

impl DbHandle {
    /// Moves `db` to a new thread; it stops when every handle is dropped.
    pub fn spawn(db: JobDb) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<DbCall>();
        std::thread::Builder::new()
            .name("cairn-jobdb".into())
            .spawn(move || {
                for call in rx {
                    call(&db);
                }
            })
            .expect("spawn the job database thread");
        Self { tx }
    }

    /// Queues `f` now (after every call made before this one) and returns a future of its answer.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&JobDb) -> Result<T, JobDbError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<Result<T, JobDbError>, DbStopped>> + Send + 'static
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self
            .tx
            .send(Box::new(move |db: &JobDb| {
                let _ = reply.send(f(db));
            }))
            .is_ok();
        async move {
            if !queued {
                return Err(DbStopped);
            }
            answer.await.map_err(|_| DbStopped)
        }
    }

    /// Queues `f` without waiting for it (after every call made before this one).
    pub fn send(&self, f: impl FnOnce(&JobDb) + Send + 'static) {
        let _ = self.tx.send(Box::new(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_prove_ms_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE segments (job INTEGER NOT NULL, idx INTEGER NOT NULL, claim BLOB NOT NULL,
                 segment BLOB NOT NULL, receipt BLOB, prover TEXT, verified_ms INTEGER, PRIMARY KEY (job, idx));
                 INSERT INTO segments (job, idx, claim, segment) VALUES (1, 0, x'00', x'00');",
            )
            .unwrap();
        let db = JobDb::open(&path).unwrap();
        db.store_verified(1, 0, b"r", "peerA", 7, Some(9)).unwrap();
        let got: (Vec<u8>, Option<i64>) = db
            .conn
            .query_row("SELECT receipt, prove_ms FROM segments", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(got, (b"r".to_vec(), Some(9)));
        // Opening it again finds the column there.
        drop(db);
        JobDb::open(&path).unwrap();
    }

    fn claim(i: u32) -> SegmentClaim {
        SegmentClaim {
            index: i,
            po2: 14,
            user_cycles: 10,
            claim_digest: Digest32::sha256(&i.to_le_bytes()),
        }
    }

    #[test]
    fn verified_receipts_survive_reopen_and_copies_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        let id = {
            let db = JobDb::open(&path).unwrap();
            let (job, resumed) = db.job("k", Digest32::default(), 14, 1).unwrap();
            assert!(!resumed);
            for i in 0..3 {
                db.record_segment(job.id, &claim(i), b"segment").unwrap();
            }
            db.store_verified(job.id, 1, b"receipt-1", "peerA", 5, Some(52_100))
                .unwrap();
            let prove_ms: Option<i64> = db
                .conn
                .query_row(
                    "SELECT prove_ms FROM segments WHERE job = ?1 AND idx = 1",
                    params![job.id as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(prove_ms, Some(52_100));
            let d = Digest32::sha256(b"receipt-1");
            assert_eq!(db.note_receipt(&d, job.id, 1, "peerA").unwrap(), None);
            assert_eq!(
                db.note_receipt(&d, job.id, 1, "peerB").unwrap(),
                Some("peerA".into())
            );
            job.id
        };
        let db = JobDb::open(&path).unwrap();
        let (job, resumed) = db.job("k", Digest32::default(), 14, 2).unwrap();
        assert!(resumed);
        assert_eq!(job.id, id);
        assert_eq!(db.verified(id).unwrap(), vec![(1, b"receipt-1".to_vec())]);
        // A second verified copy never overwrites the first.
        db.store_verified(id, 1, b"other", "peerC", 6, None)
            .unwrap();
        assert_eq!(db.verified(id).unwrap()[0].1, b"receipt-1");
        // Speeds learned in one run are there for the next.
        db.save_speed("peerA", 1000.0, 1).unwrap();
        db.save_speed("peerA", 1500.0, 2).unwrap();
        assert_eq!(db.speeds().unwrap(), vec![("peerA".to_string(), 1500.0, 2)]);
        // So are slow-result records, the bench as what is left of it by the wall clock, dropped after a day.
        let benched = SlowStanding {
            strikes: 2,
            benches: 1,
            bench_left_ms: 60_000,
        };
        db.save_slow("peerA", &benched, 1_000_000).unwrap();
        db.save_slow("peerB", &benched, 1_000_000).unwrap();
        db.forget_slow("peerB").unwrap();
        assert_eq!(
            db.slow_records(1_040_000).unwrap(),
            vec![(
                "peerA".to_string(),
                SlowStanding {
                    bench_left_ms: 20_000,
                    ..benched
                }
            )]
        );
        assert_eq!(db.slow_records(1_100_000).unwrap()[0].1.bench_left_ms, 0);
        assert!(db
            .slow_records(1_000_000 + SLOW_RECORD_KEPT_MS + 1)
            .unwrap()
            .is_empty());
        // Execution is deterministic: a changed claim under the same key is refused.
        let mut changed = claim(2);
        changed.claim_digest = Digest32::default();
        assert!(db.record_segment(id, &changed, b"segment").is_err());
        // No finished execution recorded: nothing to resume from; resetting drops the stale receipt.
        assert!(db.execution_claims(id).unwrap().is_none());
        assert_eq!(db.reset_segments(id).unwrap(), 1);
        assert!(db.verified(id).unwrap().is_empty());
    }
}
