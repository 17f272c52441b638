//! What the gateway keeps on disk: uploaded programs (by image id), inputs and assumption receipts (by
//! upload id), final receipts (by session id), and the session database (SQLite), so a restarted gateway
//! knows every session and resumes the unfinished ones.
//!
//! Everything here blocks: call it from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::GatewayError;

/// What an upload id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    Input,
    Receipt,
}

impl UploadKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Receipt => "receipt",
        }
    }
}

/// Session statuses as the Bonsai client reads them: `RUNNING` keeps it polling, `SUCCEEDED` ends it with a
/// receipt, anything else is a failure shown with `error_msg`.
pub const RUNNING: &str = "RUNNING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
pub const TIMED_OUT: &str = "TIMED_OUT";
pub const ABORTED: &str = "ABORTED";

/// The Bonsai `stats` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub segments: usize,
    pub total_cycles: u64,
    pub cycles: u64,
}

/// One session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub uuid: String,
    pub owner: String,
    pub image_id: String,
    pub input: String,
    pub assumptions: Vec<String>,
    pub execute_only: bool,
    pub cycle_limit: Option<u64>,
    pub status: String,
    pub error_msg: Option<String>,
    pub job: Option<u64>,
    pub stats: Option<Stats>,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    /// Segments verified before the gateway last restarted, not proved again.
    pub resumed: u32,
}

/// The gateway's disk.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    conn: Mutex<Connection>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Removes every file in an upload directory of temporary files, saying how many it removed.
fn sweep_temp(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let removed = entries
        .filter_map(Result::ok)
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count();
    if removed > 0 {
        tracing::info!(removed, dir = %tmp.display(), "removed uploads left unfinished by the last run");
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, GatewayError> {
        for sub in ["images", "uploads", "receipts", "journals", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| {
                GatewayError::Config(format!("cannot create {}: {e}", dir.join(sub).display()))
            })?;
        }
        // Uploads that were in progress when the gateway last stopped (a crash, a kill) can never finish: the
        // directory is this process's alone (the gateway holds its lock), so whatever `tmp/` holds is stale.
        sweep_temp(&dir.join("tmp"));
        let path = dir.join("gateway.sqlite");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS uploads (
                uuid TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                kind TEXT NOT NULL,
                size INTEGER,
                created_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS sessions (
                uuid TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                image_id TEXT NOT NULL,
                input TEXT NOT NULL,
                assumptions TEXT NOT NULL,
                execute_only INTEGER NOT NULL,
                cycle_limit INTEGER,
                status TEXT NOT NULL,
                error_msg TEXT,
                job INTEGER,
                stats TEXT,
                created_ms INTEGER NOT NULL,
                finished_ms INTEGER,
                resumed INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS image_owners (
                image_id TEXT NOT NULL,
                owner TEXT NOT NULL,
                PRIMARY KEY (image_id, owner)
             );",
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn image_path(&self, image_id: &str) -> PathBuf {
        self.dir.join("images").join(image_id)
    }

    pub fn upload_path(&self, uuid: &str) -> PathBuf {
        self.dir.join("uploads").join(uuid)
    }

    pub fn receipt_path(&self, session: &str) -> PathBuf {
        self.dir.join("receipts").join(session)
    }

    pub fn journal_path(&self, session: &str) -> PathBuf {
        self.dir.join("journals").join(session)
    }

    /// A fresh path for an upload in progress (moved into place once checked).
    pub fn temp_path(&self) -> PathBuf {
        self.dir.join("tmp").join(new_uuid())
    }

    /// Whether `owner` has uploaded this program (and it is on disk). Programs are stored once by image id,
    /// but each key sees only those it uploaded itself, so no tenant learns what programs another runs
    /// (issue 29, item 12); a second key's upload of the same program is checked and recorded like a first.
    pub fn has_image(&self, image_id: &str, owner: &str) -> Result<bool, GatewayError> {
        if !self.image_path(image_id).is_file() {
            return Ok(false);
        }
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM image_owners WHERE image_id = ?1 AND owner = ?2",
            params![image_id, owner],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Records that `owner` uploaded this program (after its image id was checked and the file stored).
    pub fn add_image_owner(&self, image_id: &str, owner: &str) -> Result<(), GatewayError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO image_owners (image_id, owner) VALUES (?1, ?2)",
            params![image_id, owner],
        )?;
        Ok(())
    }

    /// Moves a checked upload into place (atomic rename within the data directory).
    pub fn commit_file(&self, tmp: &Path, dest: &Path) -> Result<(), GatewayError> {
        std::fs::rename(tmp, dest).map_err(GatewayError::io("storing an upload"))
    }

    /// Opens an upload slot for `owner`; its id goes into the URL the client PUTs to.
    pub fn new_upload(&self, owner: &str, kind: UploadKind) -> Result<String, GatewayError> {
        let uuid = new_uuid();
        self.conn().execute(
            "INSERT INTO uploads (uuid, owner, kind, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![uuid, owner, kind.as_str(), now_ms() as i64],
        )?;
        Ok(uuid)
    }

    /// The owner of an upload slot of this kind and the size of its data (None until it is PUT).
    pub fn upload(
        &self,
        uuid: &str,
        kind: UploadKind,
    ) -> Result<Option<(String, Option<u64>)>, GatewayError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT owner, size FROM uploads WHERE uuid = ?1 AND kind = ?2",
                params![uuid, kind.as_str()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .optional()?
            .map(|(o, s)| (o, s.map(|s| s as u64))))
    }

    pub fn finish_upload(&self, uuid: &str, size: u64) -> Result<(), GatewayError> {
        self.conn().execute(
            "UPDATE uploads SET size = ?2 WHERE uuid = ?1",
            params![uuid, size as i64],
        )?;
        Ok(())
    }

    pub fn insert_session(&self, s: &SessionRow) -> Result<(), GatewayError> {
        self.conn().execute(
            "INSERT INTO sessions (uuid, owner, image_id, input, assumptions, execute_only, cycle_limit,
                                   status, error_msg, job, stats, created_ms, finished_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                s.uuid,
                s.owner,
                s.image_id,
                s.input,
                serde_json::to_string(&s.assumptions).unwrap_or_default(),
                s.execute_only,
                s.cycle_limit.map(|c| c as i64),
                s.status,
                s.error_msg,
                s.job.map(|j| j as i64),
                s.stats.and_then(|st| serde_json::to_string(&st).ok()),
                s.created_ms as i64,
                s.finished_ms.map(|f| f as i64),
            ],
        )?;
        Ok(())
    }

    const COLUMNS: &'static str =
        "uuid, owner, image_id, input, assumptions, execute_only, cycle_limit, \
                                   status, error_msg, job, stats, created_ms, finished_ms, resumed";

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
        Ok(SessionRow {
            uuid: r.get(0)?,
            owner: r.get(1)?,
            image_id: r.get(2)?,
            input: r.get(3)?,
            assumptions: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            execute_only: r.get(5)?,
            cycle_limit: r.get::<_, Option<i64>>(6)?.map(|c| c as u64),
            status: r.get(7)?,
            error_msg: r.get(8)?,
            job: r.get::<_, Option<i64>>(9)?.map(|j| j as u64),
            stats: r
                .get::<_, Option<String>>(10)?
                .and_then(|s| serde_json::from_str(&s).ok()),
            created_ms: r.get::<_, i64>(11)? as u64,
            finished_ms: r.get::<_, Option<i64>>(12)?.map(|f| f as u64),
            resumed: r.get(13)?,
        })
    }

    pub fn session(&self, uuid: &str) -> Result<Option<SessionRow>, GatewayError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {} FROM sessions WHERE uuid = ?1", Self::COLUMNS),
                params![uuid],
                Self::row,
            )
            .optional()?)
    }

    /// Every session, newest first (at most `limit`).
    pub fn sessions(&self, limit: u32) -> Result<Vec<SessionRow>, GatewayError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {} FROM sessions ORDER BY created_ms DESC LIMIT ?1",
            Self::COLUMNS
        ))?;
        let rows = st.query_map(params![limit], Self::row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sessions not finished yet (to resume after a restart), oldest first.
    pub fn running(&self) -> Result<Vec<SessionRow>, GatewayError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {} FROM sessions WHERE status = ?1 ORDER BY created_ms",
            Self::COLUMNS
        ))?;
        let rows = st.query_map(params![RUNNING], Self::row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn running_count(&self, owner: &str) -> Result<u32, GatewayError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM sessions WHERE owner = ?1 AND status = ?2",
            params![owner, RUNNING],
            |r| r.get::<_, u32>(0),
        )?)
    }

    pub fn set_job(&self, uuid: &str, job: u64) -> Result<(), GatewayError> {
        self.conn().execute(
            "UPDATE sessions SET job = ?2 WHERE uuid = ?1",
            params![uuid, job as i64],
        )?;
        Ok(())
    }

    pub fn set_resumed(&self, uuid: &str, segments: u32) -> Result<(), GatewayError> {
        self.conn().execute(
            "UPDATE sessions SET resumed = ?2 WHERE uuid = ?1",
            params![uuid, segments],
        )?;
        Ok(())
    }

    /// Ends a session (only a running one: a finished session never changes again).
    pub fn finish_session(
        &self,
        uuid: &str,
        status: &str,
        error_msg: Option<&str>,
        stats: Option<Stats>,
    ) -> Result<(), GatewayError> {
        self.conn().execute(
            "UPDATE sessions SET status = ?2, error_msg = ?3, stats = ?4, finished_ms = ?5
             WHERE uuid = ?1 AND status = ?6",
            params![
                uuid,
                status,
                error_msg,
                stats.and_then(|s| serde_json::to_string(&s).ok()),
                now_ms() as i64,
                RUNNING
            ],
        )?;
        Ok(())
    }

    pub fn now_ms() -> u64 {
        now_ms()
    }
}

/// A random (version 4) UUID, as text.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `s` looks like an id this gateway hands out (so it can be used as a file name).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_checked() {
        let u = new_uuid();
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert!(!is_uuid("../../etc/passwd"));
        assert!(!is_uuid(&u.to_uppercase()));
    }

    /// Issue 29, item 8: nothing swept `tmp/`, so uploads cut off by a crash stayed forever.
    #[test]
    fn item8_uploads_left_unfinished_by_the_last_run_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let stale = s.temp_path();
        std::fs::write(&stale, vec![7u8; 4096]).unwrap();
        let image = s.image_path("ab");
        std::fs::write(&image, b"kept").unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert!(!stale.exists(), "a stale upload survived a restart");
        assert!(image.exists(), "only tmp/ is swept");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        drop(s);
    }

    #[test]
    fn sessions_survive_a_reopen_and_finish_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let input = s.new_upload("alice", UploadKind::Input).unwrap();
        assert_eq!(
            s.upload(&input, UploadKind::Input).unwrap(),
            Some(("alice".into(), None))
        );
        assert_eq!(s.upload(&input, UploadKind::Receipt).unwrap(), None);
        s.finish_upload(&input, 12).unwrap();
        let row = SessionRow {
            uuid: new_uuid(),
            owner: "alice".into(),
            image_id: "ab".repeat(32),
            input,
            assumptions: vec![],
            execute_only: false,
            cycle_limit: Some(1 << 20),
            status: RUNNING.into(),
            error_msg: None,
            job: None,
            stats: None,
            created_ms: 1,
            finished_ms: None,
            resumed: 0,
        };
        s.insert_session(&row).unwrap();
        s.set_job(&row.uuid, 7).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.running_count("alice").unwrap(), 1);
        let back = s.running().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].job, back[0].cycle_limit), (Some(7), Some(1 << 20)));
        let stats = Stats {
            segments: 5,
            total_cycles: 100,
            cycles: 50,
        };
        s.finish_session(&row.uuid, SUCCEEDED, None, Some(stats))
            .unwrap();
        // Finished is final.
        s.finish_session(&row.uuid, FAILED, Some("late"), None)
            .unwrap();
        let done = s.session(&row.uuid).unwrap().unwrap();
        assert_eq!(done.status, SUCCEEDED);
        assert_eq!(done.stats, Some(stats));
        assert_eq!(s.running_count("alice").unwrap(), 0);
    }
}
