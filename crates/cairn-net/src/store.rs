//! A disk-backed, content-addressed blob store with a size cap.
//!
//! Layout under the store directory: `blobs/<hex id>` (complete, verified blobs), `partial/<hex id>.data` and
//! `.manifest` (downloads in progress, kept across restarts for a day, within a quarter of the cap), `tmp/`
//! (files being written; cleared on open).
//! Writes go to `tmp/` then are renamed into place, so a crash never leaves a half-written blob under its
//! name. Content is hashed on every put and every read. When a put would exceed the cap, the least recently
//! used unpinned blobs are evicted; pinned blobs are never evicted, and a put that cannot fit even after
//! evicting everything unpinned fails with [`StoreError::Full`].

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blob::{sha256, BlobId};
use crate::error::StoreError;

/// Downloads left in `partial/` longer than this are dropped when a store opens: a restart soon after a cut
/// transfer resumes it, a download abandoned for a day is not coming back.
pub const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Drops what a store's `partial/` should not keep across a restart: files that are not a blob id's
/// `.data`/`.manifest` pair, downloads older than [`PARTIAL_MAX_AGE`], and the oldest downloads beyond a
/// quarter of the store's cap (partial files are not counted in the cap while they grow, so without this,
/// downloads that never finished would pile up outside it run after run).
fn prune_partials(partial: &Path, config: &StoreConfig, busy: &std::collections::HashSet<String>) {
    let Ok(entries) = fs::read_dir(partial) else {
        return;
    };
    let now = std::time::SystemTime::now();
    // Per blob id: its files, their total size, the newest modification.
    let mut downloads: HashMap<String, (Vec<PathBuf>, u64, std::time::SystemTime)> = HashMap::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let id = name
            .strip_suffix(".data")
            .or_else(|| name.strip_suffix(".manifest"))
            .filter(|id| id.parse::<BlobId>().is_ok());
        let meta = e.metadata().ok();
        if id.is_some_and(|id| busy.contains(id)) {
            // Being downloaded right now: not this pass's to judge.
            continue;
        }
        let (Some(id), Some(meta)) = (id, meta.filter(|m| m.is_file())) else {
            tracing::warn!(target: "cairn_net::store", file = ?path, "removing a stray file from partial/");
            let _ = fs::remove_file(&path);
            continue;
        };
        let modified = meta.modified().unwrap_or(now);
        let d = downloads
            .entry(id.to_string())
            .or_insert_with(|| (Vec::new(), 0, std::time::UNIX_EPOCH));
        d.0.push(path);
        d.1 += meta.len();
        d.2 = d.2.max(modified);
    }
    let mut kept: Vec<_> = downloads.into_values().collect();
    kept.sort_by_key(|(_, _, modified)| std::cmp::Reverse(*modified));
    let budget = config.max_total_bytes / 4;
    let mut used = 0u64;
    for (files, size, modified) in kept {
        let stale = now.duration_since(modified).unwrap_or_default() > PARTIAL_MAX_AGE;
        if stale || used + size > budget {
            tracing::info!(target: "cairn_net::store", files = ?files, size, stale, "dropping an unfinished download");
            for f in files {
                let _ = fs::remove_file(f);
            }
        } else {
            used += size;
        }
    }
}

/// Limits of a [`BlobStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Cap on the total size of complete blobs.
    pub max_total_bytes: u64,
    /// Largest single blob.
    pub max_blob_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_total_bytes: 8 << 30,
            max_blob_bytes: 1 << 30,
        }
    }
}

/// Whether a blob may be evicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Never evicted until unpinned (pins are counted).
    Pinned,
    /// Evicted when least recently used and space is needed.
    Evictable,
}

/// A blob's chunk hashes: what a downloader fetches first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Blob.
    pub id: BlobId,
    /// Total size in bytes.
    pub size: u64,
    /// Chunk size in bytes (the last chunk may be shorter).
    pub chunk_size: u32,
    /// SHA-256 of each chunk.
    pub chunks: Vec<[u8; 32]>,
}

impl Manifest {
    /// Number of chunks a blob of `size` has.
    pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
        size.div_ceil(u64::from(chunk_size))
    }

    /// Length of chunk `index`.
    pub fn chunk_len(&self, index: u32) -> usize {
        let start = u64::from(index) * u64::from(self.chunk_size);
        (self.size - start).min(u64::from(self.chunk_size)) as usize
    }

    /// Byte offset of chunk `index`.
    pub fn chunk_offset(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.chunk_size)
    }
}

#[derive(Debug)]
struct Entry {
    size: u64,
    last_used: u64,
    pins: u32,
    /// True while the file is being written (not evictable, not readable).
    pending: bool,
    /// Chunk manifests computed so far, one per chunk size asked for (at most [`MANIFESTS_PER_BLOB`]).
    manifests: Vec<Arc<Manifest>>,
}

/// Chunk sizes are powers of two between the transfer limits (4 KiB..4 MiB): eleven at most, all cached.
const MANIFESTS_PER_BLOB: usize = 11;

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<BlobId, Entry>,
    total: u64,
}

/// The store. Cheap to share behind an `Arc`; all methods take `&self` and block on file I/O (call them
/// from `spawn_blocking` in async code when blobs are large).
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    config: StoreConfig,
    index: Mutex<Index>,
    clock: AtomicU64,
    tmp_counter: AtomicU64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobStore {
    /// Opens (creating if needed) a store in `dir`, indexing the blobs already there (oldest modification
    /// first in the LRU order). Files whose names are not blob ids are ignored; content is verified on read.
    pub fn open(dir: impl Into<PathBuf>, config: StoreConfig) -> Result<Self, StoreError> {
        let dir = dir.into();
        for sub in ["blobs", "partial", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = dir.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        prune_partials(&dir.join("partial"), &config, &Default::default());
        let blobs = dir.join("blobs");
        let mut found = Vec::new();
        for e in fs::read_dir(&blobs).map_err(io_err(&blobs))?.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<BlobId>().ok()) else {
                tracing::warn!(target: "cairn_net::store", file = ?e.path(), "ignoring a file that is not named by a blob id");
                continue;
            };
            let Ok(meta) = e.metadata() else { continue };
            found.push((meta.modified().ok(), id, meta.len()));
        }
        found.sort_by_key(|(t, _, _)| *t);
        let mut index = Index::default();
        for (i, (_, id, size)) in found.into_iter().enumerate() {
            index.total += size;
            index.entries.insert(
                id,
                Entry {
                    size,
                    last_used: i as u64,
                    pins: 0,
                    pending: false,
                    manifests: Vec::new(),
                },
            );
        }
        let n = index.entries.len() as u64;
        let store = Self {
            dir,
            config,
            index: Mutex::new(index),
            clock: AtomicU64::new(n),
            tmp_counter: AtomicU64::new(0),
        };
        // Blobs left over from a larger cap: evict down to the current one.
        {
            let mut idx = store.lock();
            let over = idx.total.saturating_sub(config.max_total_bytes);
            if over > 0 {
                let _ = store.make_room(&mut idx, 0);
            }
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its limits.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn blob_path(&self, id: &BlobId) -> PathBuf {
        self.dir.join("blobs").join(id.to_hex())
    }

    /// Applies the opening rule for unfinished downloads (a day, a quarter of the cap, newest first) while the
    /// node runs, leaving alone the downloads in `busy` (issue 29, item 8: a failed fetch's partial files
    /// were counted against nothing until the next restart, so fetches that kept failing filled the disk).
    /// Blocking: call it off the async runtime.
    pub(crate) fn prune_unfinished(&self, busy: &[BlobId]) {
        let busy = busy.iter().map(BlobId::to_hex).collect();
        prune_partials(&self.dir.join("partial"), &self.config, &busy);
    }

    pub(crate) fn partial_paths(&self, id: &BlobId) -> (PathBuf, PathBuf) {
        let p = self.dir.join("partial");
        (
            p.join(format!("{}.data", id.to_hex())),
            p.join(format!("{}.manifest", id.to_hex())),
        )
    }

    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{}-{n}.tmp", std::process::id()))
    }

    /// Whether the blob is stored (complete).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.lock().entries.get(id).is_some_and(|e| !e.pending)
    }

    /// Size of a stored blob.
    pub fn size(&self, id: &BlobId) -> Option<u64> {
        self.lock()
            .entries
            .get(id)
            .filter(|e| !e.pending)
            .map(|e| e.size)
    }

    /// Total bytes of complete and pending blobs.
    pub fn total_bytes(&self) -> u64 {
        self.lock().total
    }

    /// All stored blobs and their sizes.
    pub fn list(&self) -> Vec<(BlobId, u64)> {
        self.lock()
            .entries
            .iter()
            .filter(|(_, e)| !e.pending)
            .map(|(id, e)| (*id, e.size))
            .collect()
    }

    /// Path of a stored blob, marking it used. The file may be evicted later unless the blob is pinned.
    pub fn path(&self, id: &BlobId) -> Option<PathBuf> {
        let t = self.tick();
        let mut idx = self.lock();
        let e = idx.entries.get_mut(id).filter(|e| !e.pending)?;
        e.last_used = t;
        Some(self.blob_path(id))
    }

    /// Pins a stored blob (pins are counted; each needs an [`unpin`](Self::unpin)).
    pub fn pin(&self, id: &BlobId) -> Result<(), StoreError> {
        let mut idx = self.lock();
        let e = idx
            .entries
            .get_mut(id)
            .filter(|e| !e.pending)
            .ok_or(StoreError::NotFound(*id))?;
        e.pins += 1;
        Ok(())
    }

    /// Removes one pin.
    pub fn unpin(&self, id: &BlobId) -> Result<(), StoreError> {
        let mut idx = self.lock();
        let e = idx.entries.get_mut(id).ok_or(StoreError::NotFound(*id))?;
        e.pins = e.pins.saturating_sub(1);
        Ok(())
    }

    /// Whether a blob is pinned.
    pub fn is_pinned(&self, id: &BlobId) -> bool {
        self.lock().entries.get(id).is_some_and(|e| e.pins > 0)
    }

    /// Removes an unpinned blob. Returns whether it was there.
    pub fn remove(&self, id: &BlobId) -> Result<bool, StoreError> {
        let mut idx = self.lock();
        match idx.entries.get(id) {
            None => Ok(false),
            Some(e) if e.pins > 0 || e.pending => Err(StoreError::Pinned(*id)),
            Some(_) => {
                self.drop_entry(&mut idx, id);
                Ok(true)
            }
        }
    }

    fn drop_entry(&self, idx: &mut Index, id: &BlobId) {
        if let Some(e) = idx.entries.remove(id) {
            idx.total -= e.size;
            let _ = fs::remove_file(self.blob_path(id));
        }
    }

    /// Evicts LRU unpinned blobs until `needed` more bytes fit under the cap.
    fn make_room(&self, idx: &mut Index, needed: u64) -> Result<(), StoreError> {
        let cap = self.config.max_total_bytes;
        if idx.total + needed <= cap {
            return Ok(());
        }
        let pinned: u64 = idx
            .entries
            .values()
            .filter(|e| e.pins > 0 || e.pending)
            .map(|e| e.size)
            .sum();
        if pinned + needed > cap {
            return Err(StoreError::Full {
                needed,
                pinned,
                cap,
            });
        }
        let mut victims: Vec<(u64, BlobId)> = idx
            .entries
            .iter()
            .filter(|(_, e)| e.pins == 0 && !e.pending)
            .map(|(id, e)| (e.last_used, *id))
            .collect();
        victims.sort_unstable();
        for (_, id) in victims {
            if idx.total + needed <= cap {
                break;
            }
            tracing::debug!(target: "cairn_net::store", blob = %id.short(), "evicting least recently used blob");
            self.drop_entry(idx, &id);
        }
        Ok(())
    }

    /// Reserves room for a blob about to be written. Returns false if it is already stored (then it was
    /// touched and pinned as asked).
    fn reserve(&self, id: BlobId, size: u64, retention: Retention) -> Result<bool, StoreError> {
        if size > self.config.max_blob_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: self.config.max_blob_bytes,
            });
        }
        let t = self.tick();
        let mut idx = self.lock();
        if let Some(e) = idx.entries.get_mut(&id) {
            if !e.pending {
                e.last_used = t;
                if retention == Retention::Pinned {
                    e.pins += 1;
                }
                return Ok(false);
            }
        }
        self.make_room(&mut idx, size)?;
        idx.total += size;
        idx.entries.insert(
            id,
            Entry {
                size,
                last_used: t,
                pins: u32::from(retention == Retention::Pinned),
                pending: true,
                manifests: Vec::new(),
            },
        );
        Ok(true)
    }

    fn finish(&self, id: &BlobId, ok: bool) {
        let mut idx = self.lock();
        if ok {
            if let Some(e) = idx.entries.get_mut(id) {
                e.pending = false;
            }
        } else if let Some(e) = idx.entries.remove(id) {
            idx.total -= e.size;
        }
    }

    /// Stores `data`, returning its id.
    pub fn put(&self, data: &[u8], retention: Retention) -> Result<BlobId, StoreError> {
        let id = BlobId::of(data);
        if !self.reserve(id, data.len() as u64, retention)? {
            return Ok(id);
        }
        let tmp = self.tmp_path();
        let res = (|| {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(data).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
            let dst = self.blob_path(&id);
            fs::rename(&tmp, &dst).map_err(io_err(&dst))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        self.finish(&id, res.is_ok());
        res.map(|()| id)
    }

    /// Stores a copy of the file at `src`, returning its id.
    pub fn put_file(&self, src: &Path, retention: Retention) -> Result<BlobId, StoreError> {
        let tmp = self.tmp_path();
        let res = (|| {
            let mut input = File::open(src).map_err(io_err(src))?;
            let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(io_err(src))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > self.config.max_blob_bytes {
                    return Err(StoreError::TooLarge {
                        size,
                        max: self.config.max_blob_bytes,
                    });
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err(&tmp))?;
            }
            out.sync_all().map_err(io_err(&tmp))?;
            Ok((BlobId(hasher.finalize().into()), size))
        })();
        let (id, size) = match res {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.commit_file(&tmp, id, size, retention)
    }

    /// Moves an already-verified file (`id` is its hash) into the store.
    fn commit_file(
        &self,
        file: &Path,
        id: BlobId,
        size: u64,
        retention: Retention,
    ) -> Result<BlobId, StoreError> {
        match self.reserve(id, size, retention) {
            Ok(true) => {}
            Ok(false) => {
                let _ = fs::remove_file(file);
                return Ok(id);
            }
            Err(e) => {
                let _ = fs::remove_file(file);
                return Err(e);
            }
        }
        let dst = self.blob_path(&id);
        let res = fs::rename(file, &dst).map_err(io_err(&dst));
        if res.is_err() {
            let _ = fs::remove_file(file);
        }
        self.finish(&id, res.is_ok());
        res.map(|()| id)
    }

    /// Hashes the file at `file` and, if it is `expected`, moves it into the store.
    pub(crate) fn import_verified(
        &self,
        file: &Path,
        expected: BlobId,
        retention: Retention,
    ) -> Result<BlobId, StoreError> {
        let (actual, size) = hash_file(file)?;
        if actual != expected {
            return Err(StoreError::HashMismatch { expected, actual });
        }
        self.commit_file(file, expected, size, retention)
    }

    /// Reads a whole blob, verifying its hash (a corrupt file is removed).
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, StoreError> {
        let path = self.path(id).ok_or(StoreError::NotFound(*id))?;
        let data = fs::read(&path).map_err(|e| self.read_err(id, &path, e))?;
        let actual = BlobId::of(&data);
        if actual != *id {
            self.forget_corrupt(id);
            return Err(StoreError::Corrupt { id: *id, actual });
        }
        Ok(data)
    }

    fn read_err(&self, id: &BlobId, path: &Path, e: std::io::Error) -> StoreError {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Removed behind our back (or evicted between lookup and read).
            self.finish(id, false);
            StoreError::NotFound(*id)
        } else {
            StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    fn forget_corrupt(&self, id: &BlobId) {
        tracing::warn!(target: "cairn_net::store", blob = %id, "blob corrupt on disk; removing it");
        let mut idx = self.lock();
        self.drop_entry(&mut idx, id);
    }

    /// The chunk manifest of a stored blob (computed once per chunk size and cached, for every chunk size
    /// asked for: a peer alternating sizes cannot make it re-hash a large blob on every request; computing
    /// it verifies the whole blob's hash).
    pub fn manifest(&self, id: &BlobId, chunk_size: u32) -> Result<Arc<Manifest>, StoreError> {
        {
            let idx = self.lock();
            let e = idx
                .entries
                .get(id)
                .filter(|e| !e.pending)
                .ok_or(StoreError::NotFound(*id))?;
            if let Some(m) = e.manifests.iter().find(|m| m.chunk_size == chunk_size) {
                return Ok(m.clone());
            }
        }
        let path = self.path(id).ok_or(StoreError::NotFound(*id))?;
        let mut f = File::open(&path).map_err(|e| self.read_err(id, &path, e))?;
        let mut whole = Sha256::new();
        let mut chunks = Vec::new();
        let mut buf = vec![0u8; chunk_size as usize];
        let mut size = 0u64;
        loop {
            let n = read_full(&mut f, &mut buf).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            chunks.push(sha256(&buf[..n]));
            size += n as u64;
        }
        let actual = BlobId(whole.finalize().into());
        if actual != *id {
            self.forget_corrupt(id);
            return Err(StoreError::Corrupt { id: *id, actual });
        }
        let m = Arc::new(Manifest {
            id: *id,
            size,
            chunk_size,
            chunks,
        });
        if let Some(e) = self.lock().entries.get_mut(id) {
            if e.manifests.len() >= MANIFESTS_PER_BLOB {
                e.manifests.remove(0);
            }
            e.manifests.push(m.clone());
        }
        Ok(m)
    }

    /// Reads chunk `index` of a stored blob, checking it against the manifest.
    pub fn read_chunk(&self, manifest: &Manifest, index: u32) -> Result<Vec<u8>, StoreError> {
        let id = &manifest.id;
        let path = self.path(id).ok_or(StoreError::NotFound(*id))?;
        let mut f = File::open(&path).map_err(|e| self.read_err(id, &path, e))?;
        let mut buf = vec![0u8; manifest.chunk_len(index)];
        f.seek(SeekFrom::Start(manifest.chunk_offset(index)))
            .map_err(io_err(&path))?;
        f.read_exact(&mut buf).map_err(io_err(&path))?;
        if Some(&sha256(&buf)) != manifest.chunks.get(index as usize) {
            let actual = hash_file(&path).map(|(a, _)| a).unwrap_or(*id);
            self.forget_corrupt(id);
            return Err(StoreError::Corrupt { id: *id, actual });
        }
        Ok(buf)
    }
}

/// Reads until `buf` is full or EOF; returns bytes read.
pub(crate) fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn hash_file(path: &Path) -> Result<(BlobId, u64), StoreError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((BlobId(h.finalize().into()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, cap: u64) -> BlobStore {
        BlobStore::open(
            dir,
            StoreConfig {
                max_total_bytes: cap,
                max_blob_bytes: 1000,
            },
        )
        .unwrap()
    }

    #[test]
    fn put_get_and_verify_on_read() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 10_000);
        let id = s.put(b"hello", Retention::Evictable).unwrap();
        assert_eq!(id, BlobId::of(b"hello"));
        assert_eq!(s.get(&id).unwrap(), b"hello");
        assert!(s.blob_path(&id).exists());
        // Corrupt the file on disk: the read fails and the blob is dropped.
        fs::write(s.blob_path(&id), b"hellO").unwrap();
        assert!(matches!(s.get(&id), Err(StoreError::Corrupt { .. })));
        assert!(!s.contains(&id));
        assert_eq!(s.total_bytes(), 0);
    }

    #[test]
    fn evicts_lru_unpinned_and_never_pinned() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 300);
        let a = s.put(&[1; 100], Retention::Pinned).unwrap();
        let b = s.put(&[2; 100], Retention::Evictable).unwrap();
        let c = s.put(&[3; 100], Retention::Evictable).unwrap();
        // Touch b so that c is the least recently used unpinned blob.
        s.get(&b).unwrap();
        let e = s.put(&[4; 100], Retention::Evictable).unwrap();
        assert!(s.contains(&a), "pinned blob evicted");
        assert!(s.contains(&b));
        assert!(!s.contains(&c), "LRU blob kept");
        assert!(!s.blob_path(&c).exists());
        assert!(s.contains(&e));
        assert_eq!(s.total_bytes(), 300);
        // Pin everything: the next put cannot fit.
        s.pin(&b).unwrap();
        s.pin(&e).unwrap();
        let err = s.put(&[5; 10], Retention::Evictable).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Full {
                    needed: 10,
                    pinned: 300,
                    cap: 300
                }
            ),
            "{err}"
        );
        // Unpin one and it fits again.
        s.unpin(&b).unwrap();
        s.put(&[5; 10], Retention::Evictable).unwrap();
        assert!(!s.contains(&b));
        assert!(matches!(s.remove(&a), Err(StoreError::Pinned(_))));
    }

    #[test]
    fn too_large_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 10_000);
        assert!(matches!(
            s.put(&[0; 1001], Retention::Evictable),
            Err(StoreError::TooLarge { .. })
        ));
        let id = s.put(&[7; 500], Retention::Evictable).unwrap();
        let src = d.path().join("src.bin");
        fs::write(&src, [9u8; 600]).unwrap();
        let id2 = s.put_file(&src, Retention::Evictable).unwrap();
        assert_eq!(id2, BlobId::of(&[9u8; 600]));
        drop(s);
        fs::write(d.path().join("blobs").join("junk"), b"x").unwrap();
        let s = store(d.path(), 10_000);
        assert_eq!(s.total_bytes(), 1100);
        assert_eq!(s.get(&id).unwrap(), vec![7; 500]);
        // Reopening with a smaller cap evicts down to it.
        drop(s);
        let s = store(d.path(), 700);
        assert!(s.total_bytes() <= 700);
    }

    /// Issue 12 (partial downloads): opening a store keeps a recent unfinished download (a restart resumes
    /// it) and drops stray files, downloads older than a day, and the oldest downloads beyond a quarter of
    /// the cap.
    #[test]
    fn unfinished_downloads_are_pruned_when_a_store_opens() {
        let d = tempfile::tempdir().unwrap();
        drop(store(d.path(), 4_000));
        let partial = d.path().join("partial");
        let put = |seed: u8, len: usize, age_hours: u64| {
            let id = BlobId::of(&[seed]).to_hex();
            let modified =
                std::time::SystemTime::now() - std::time::Duration::from_secs(age_hours * 3600);
            for (ext, len) in [("data", len), ("manifest", 10)] {
                let path = partial.join(format!("{id}.{ext}"));
                fs::write(&path, vec![seed; len]).unwrap();
                File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(modified)
                    .unwrap();
            }
            id
        };
        let recent = put(1, 500, 0);
        let older = put(2, 400, 1);
        let oldest_within_a_day = put(3, 300, 2); // 500 + 400 + 300 + manifests > 1000, a quarter of the cap
        let stale = put(4, 10, 25);
        fs::write(partial.join("stray.bin"), b"x").unwrap();
        drop(store(d.path(), 4_000));
        let left: std::collections::BTreeSet<String> = fs::read_dir(&partial)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let expect: std::collections::BTreeSet<String> = [&recent, &older]
            .iter()
            .flat_map(|id| [format!("{id}.data"), format!("{id}.manifest")])
            .collect();
        assert_eq!(
            left, expect,
            "dropped: {oldest_within_a_day} (over the budget), {stale} (stale)"
        );
    }

    #[test]
    fn item12_manifests_are_cached_for_every_chunk_size_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path(), StoreConfig::default()).unwrap();
        let id = s.put(&vec![7u8; 64 * 1024], Retention::Pinned).unwrap();
        let a = s.manifest(&id, 4096).unwrap();
        let b = s.manifest(&id, 8192).unwrap();
        // Asked again for either size: the cached manifest, not a second pass over the blob.
        assert!(Arc::ptr_eq(&a, &s.manifest(&id, 4096).unwrap()));
        assert!(Arc::ptr_eq(&b, &s.manifest(&id, 8192).unwrap()));
    }

    #[test]
    fn manifest_and_chunks() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 10_000);
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let id = s.put(&data, Retention::Evictable).unwrap();
        let m = s.manifest(&id, 300).unwrap();
        assert_eq!(m.chunks.len(), 4);
        assert_eq!(m.chunk_len(3), 100);
        assert_eq!(s.read_chunk(&m, 1).unwrap(), &data[300..600]);
        assert_eq!(m.chunks[3], sha256(&data[900..]));
    }
}
