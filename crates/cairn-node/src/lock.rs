//! One process per data directory and per job database. Two clients on one job database (a second terminal, a
//! service restarted while the old process lingers) run with the same peer identity and fight over the same
//! jobs: each refuses the other's provers' results as tasks it never assigned, and penalizes them for silence.
//! So `cairn prove --network`, `cairn node` and `cairn gateway` each hold an exclusive lock (`flock`) on what
//! they own for as long as they run, and a second process refuses at once, naming the process that holds it.
//!
//! The lock is on a file beside what it guards (`<dir>/cairn.lock`, `<database>.lock`), which also records the
//! holder's pid and command line for that message. The kernel releases the lock when its holder exits, however
//! it exits (a kill included), so a stale file never blocks anyone; the file itself is left in place.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

/// The lock file in a locked directory.
pub const DIR_LOCK_FILE: &str = "cairn.lock";

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{what} {} is in use by {holder}: stop that process first, or give this one another {flag}", path.display())]
    Held {
        /// What is locked, as a user knows it ("the data directory", "the job database").
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The holder as its lock file records it: `process 1234 (cairn node --data-dir ...)`.
        holder: String,
        /// The flag that names another one.
        flag: &'static str,
    },
    /// The lock file could not be made or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct ProcessLock {
    file: File,
    path: PathBuf,
}

impl ProcessLock {
    /// Locks directory `dir` (created if missing) for this process: `what` and `flag` name it in the refusal.
    pub fn dir(dir: &Path, what: &'static str, flag: &'static str) -> Result<Self, LockError> {
        std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::take(&dir.join(DIR_LOCK_FILE), dir, what, flag)
    }

    /// Locks file `path` (a database; it need not exist yet) through `<path>.lock` beside it.
    pub fn file(path: &Path, what: &'static str, flag: &'static str) -> Result<Self, LockError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| LockError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        Self::take(Path::new(&name), path, what, flag)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(
        lock_path: &Path,
        guarded: &Path,
        what: &'static str,
        flag: &'static str,
    ) -> Result<Self, LockError> {
        let io = |source: std::io::Error| LockError::Io {
            path: lock_path.to_path_buf(),
            source,
        };
        // Not truncated on open: while another process holds it, it says who that is.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(LockError::Held {
                    what,
                    path: guarded.to_path_buf(),
                    holder: holder(&mut file),
                    flag,
                })
            }
            Err(e) => return Err(io(e.into())),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}\n{}", std::process::id(), command_line()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self {
            file,
            path: lock_path.to_path_buf(),
        })
    }
}

impl Drop for ProcessLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the order plain.
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// This process's command line, shortened for a one-line message.
fn command_line() -> String {
    let line = std::env::args().collect::<Vec<_>>().join(" ");
    shorten(&line, 160)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{} ...", s.chars().take(max).collect::<String>())
    }
}

/// Who holds the lock, from what it wrote into the file (a holder that has just taken it may not have written
/// yet: wait a moment for it).
fn holder(file: &mut File) -> String {
    let until = Instant::now() + Duration::from_millis(500);
    loop {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        if let (Ok(_), Some(desc)) = (read, describe(&text)) {
            return desc;
        }
        if Instant::now() >= until {
            return "another process".into();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `process <pid> (<command line>)` from a lock file's text.
fn describe(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let cmd = lines.next().map(str::trim).unwrap_or_default();
    Some(if cmd.is_empty() {
        format!("process {pid}")
    } else {
        format!("process {pid} ({})", shorten(cmd, 160))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_free_again_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = ProcessLock::dir(&data, "the data directory", "--data-dir").unwrap();
        let err = ProcessLock::dir(&data, "the data directory", "--data-dir").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("--data-dir") && msg.contains("data"), "{msg}");
        assert!(matches!(err, LockError::Held { .. }));
        drop(first);
        let again = ProcessLock::dir(&data, "the data directory", "--data-dir").unwrap();
        assert_eq!(again.path(), data.join(DIR_LOCK_FILE));

        let db = dir.path().join("jobs.sqlite");
        let _held = ProcessLock::file(&db, "the job database", "--db").unwrap();
        let msg = ProcessLock::file(&db, "the job database", "--db")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("the job database "), "{msg}");
        assert!(msg.ends_with("or give this one another --db"), "{msg}");
        // The database itself is not touched: another reader may still open it.
        assert!(!db.exists());
    }

    #[test]
    fn the_holder_is_read_from_the_lock_file() {
        assert_eq!(
            describe("42\ncairn node --data-dir x\n").as_deref(),
            Some("process 42 (cairn node --data-dir x)")
        );
        assert_eq!(describe("42\n").as_deref(), Some("process 42"));
        assert_eq!(describe(""), None);
        assert_eq!(describe("not a pid\n"), None);
    }
}
