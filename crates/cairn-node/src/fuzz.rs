//! Entry points for Cairn's fuzz targets (`crates/cairn-fuzz`; doc-hidden, not part of the API): the
//! job database's stored records, read back as a restarted client reads them to resume a job.

use cairn_backend::{Digest32, ExecutionSummary, SegmentClaim};

use crate::jobdb::JobDb;

/// A job database in a temporary directory with one executed job of two segments.
#[derive(Debug)]
pub struct JobDbFixture {
    dir: std::path::PathBuf,
    db: JobDb,
    job: u64,
}

impl Drop for JobDbFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn claim(index: u32) -> SegmentClaim {
    SegmentClaim {
        index,
        po2: 14,
        user_cycles: 14_000,
        claim_digest: Digest32::sha256(&index.to_le_bytes()),
    }
}

fn summary() -> ExecutionSummary {
    ExecutionSummary {
        image_id: Digest32::sha256(b"program"),
        po2: 14,
        segments: 2,
        user_cycles: 28_000,
        total_cycles: 32_768,
        journal: b"journal".to_vec(),
        exit_code: "Halted(0)".into(),
        claims: vec![claim(0), claim(1)],
    }
}

impl JobDbFixture {
    /// Makes the database and its job.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cairn-fuzz-jobdb-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let db = JobDb::open(&dir.join("jobs.sqlite")).expect("a job database in the temp dir");
        let s = summary();
        let (record, _) = db.job("fuzz", s.image_id, s.po2, 0).expect("a job");
        for c in &s.claims {
            db.record_segment(record.id, c, b"segment")
                .expect("a segment");
        }
        db.record_execution(record.id, &s).expect("an execution");
        Self {
            dir,
            db,
            job: record.id,
        }
    }
}

impl Default for JobDbFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The input: one byte choosing the record (even: the execution summary, odd: the first segment's claim),
/// then that record's bytes; the other record is stored valid. Read back as a resume reads them.
pub fn stored_records(fx: &JobDbFixture, data: &[u8]) -> Result<(), String> {
    let Some((which, bytes)) = data.split_first() else {
        return Err("empty".into());
    };
    let valid_summary = bincode::serialize(&summary()).expect("in-memory serialization");
    let valid_claim = bincode::serialize(&claim(0)).expect("in-memory serialization");
    let (s, c) = if which % 2 == 0 {
        (bytes, valid_claim.as_slice())
    } else {
        (valid_summary.as_slice(), bytes)
    };
    fx.db
        .overwrite_records_for_fuzzing(fx.job, s, c)
        .map_err(|e| e.to_string())?;
    match fx.db.execution_claims(fx.job).map_err(|e| e.to_string())? {
        Some((summary, claims)) => {
            assert_eq!(
                claims.len(),
                summary.segments as usize,
                "a resume got a job with segments missing"
            );
            Ok(())
        }
        None => Err("no execution recorded".into()),
    }
}

/// Both records as a job's execution stores them.
pub fn seed_stored_records() -> Vec<Vec<u8>> {
    let mut s = vec![0u8];
    s.extend(bincode::serialize(&summary()).expect("in-memory serialization"));
    let mut c = vec![1u8];
    c.extend(bincode::serialize(&claim(0)).expect("in-memory serialization"));
    vec![s, c]
}
