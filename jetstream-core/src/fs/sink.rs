//! The receiver's write path: buffers datagram payloads into aligned units, writes and hashes
//! them on worker threads, verifies each file's BLAKE3 digest without reading it back, and
//! renames it into place.
//!
//! ```text
//! event loop:  write() ─ copy into per-unit buffer ─ full unit ─┐ (moved, not copied)
//!                                                               ▼
//! workers:     hash unit (tree.rs) + pwrite to the part file ── Done ──► poll(): merge CV
//!              finish + all units merged + digest equal ─► fdatasync, mtime, mode, rename
//! checkpoint:  every interval: fdatasync written part files, then journal `D` records
//! ```
//!
//! A file is written under a hidden part name ([`temp_path`]) and only appears at its final
//! path once its digest matched. Units are [`SUBTREE_LEN`] bytes, aligned, so their hashes
//! merge into the BLAKE3 tree ([`TreeHasher`]) and nothing is read back, except on resume,
//! where the units a previous run made durable are re-hashed once from the part file.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::beneath::Dir;
use super::identity::{run_as_user, FsIdentity};
use super::journal::{self, contains, insert_range, Disk, JournalState};
use super::tree::{subtree_len, SubtreeHash, TreeHasher, SUBTREE_LEN};
use super::FsError;
use crate::manifest::{Manifest, ManifestEntry};
use crate::types::{Digest, FileIndex};

/// Settings of a [`FileSink`].
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub(crate) workers: usize,
    pub(crate) fsync: bool,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) journal: bool,
    /// The user whose file-system identity all of the sink's disk work runs with.
    pub(crate) identity: Option<FsIdentity>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            fsync: true,
            checkpoint_interval: Duration::from_secs(1),
            journal: true,
            identity: None,
        }
    }
}

impl SinkConfig {
    /// Number of worker threads hashing and writing units (default 1; 0 is taken as 1).
    pub fn workers(&mut self, workers: usize) -> &mut Self {
        self.workers = workers.max(1);
        self
    }
    /// Whether a file's data is made durable (`fdatasync`) before it is reported complete
    /// (default `true`). Checkpoints always sync what they journal.
    pub fn fsync(&mut self, fsync: bool) -> &mut Self {
        self.fsync = fsync;
        self
    }
    /// How often durable progress is journaled (default 1 s).
    pub fn checkpoint_interval(&mut self, interval: Duration) -> &mut Self {
        self.checkpoint_interval = interval;
        self
    }
    /// Does all of the sink's disk work (creating the root, the journal, directories and part
    /// files, renames, mtimes and modes) with `identity`'s file-system rights: a server running
    /// as root receiving for a user. Ordinary permission checks then apply, and what is created
    /// belongs to that user. Default `None`: the process's own identity, on the calling thread
    /// for [`FileSink::open`].
    pub fn identity(&mut self, identity: Option<FsIdentity>) -> &mut Self {
        self.identity = identity;
        self
    }
    /// Whether a resume journal is kept (default `true`).
    pub fn journal(&mut self, journal: bool) -> &mut Self {
        self.journal = journal;
        self
    }
}

/// Where a [`FileSink`] writes: a directory path (created if missing, with the sink's
/// identity; the path itself may go through links, it is the caller's to trust), or a
/// directory descriptor the caller resolved safely (a server handing a sandbox over).
///
/// Either way the sink resolves everything below it beneath that one descriptor, refusing
/// symbolic links ([`super::beneath`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SinkRoot {
    /// An open directory.
    Dir(Arc<Dir>),
    /// A path, opened (and created if missing) when the sink opens.
    Path(PathBuf),
}

impl SinkRoot {
    /// The root's path (for messages and reports).
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Dir(d) => d.path(),
            Self::Path(p) => p,
        }
    }

    /// Opens the root (creating a path root and its parents if missing) with the calling
    /// thread's identity.
    fn open(self) -> Result<Arc<Dir>, FsError> {
        match self {
            Self::Dir(d) => Ok(d),
            Self::Path(p) => {
                std::fs::create_dir_all(&p).map_err(|e| FsError::io(&p, &e))?;
                Ok(Arc::new(Dir::open(&p).map_err(|e| FsError::io(&p, &e))?))
            }
        }
    }
}

impl From<PathBuf> for SinkRoot {
    fn from(path: PathBuf) -> Self {
        Self::Path(path)
    }
}

impl From<Dir> for SinkRoot {
    fn from(dir: Dir) -> Self {
        Self::Dir(Arc::new(dir))
    }
}

/// What a previous, interrupted run left on disk (both empty without a journal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeState {
    /// Bytes of each file durably in its part file; the sender need not send them again.
    pub held: Vec<(FileIndex, Range<u64>)>,
    /// Entries already finalised at their final path.
    pub complete: Vec<FileIndex>,
}

/// An output of [`FileSink::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkEvent {
    /// An entry is finished: verified and at its final path, or failed for good.
    FileDone {
        /// The entry.
        file: FileIndex,
        /// `Ok` once it is in place; otherwise why it failed.
        result: Result<(), FsError>,
    },
}

/// A unit being filled from datagrams.
struct Partial {
    data: Vec<u8>,
    /// Filled byte ranges of `data`, sorted and disjoint.
    filled: Vec<Range<usize>>,
    filled_len: usize,
}

impl Partial {
    /// Copies `src` at `at`, skipping bytes already present (duplicates are normal).
    fn fill(&mut self, at: usize, src: &[u8]) {
        let end = at + src.len();
        let mut cur = at;
        for r in &self.filled {
            if r.end <= cur {
                continue;
            }
            if r.start >= end {
                break;
            }
            if r.start > cur {
                self.data[cur..r.start].copy_from_slice(&src[cur - at..r.start - at]);
                self.filled_len += r.start - cur;
            }
            cur = cur.max(r.end);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            self.data[cur..end].copy_from_slice(&src[cur - at..]);
            self.filled_len += end - cur;
        }
        insert_range(&mut self.filled, at..end);
    }
}

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Untouched,
    Open,
    Failed,
    Done,
}

/// Caller-side state of an entry being received.
struct FileState {
    tree: TreeHasher,
    partial: BTreeMap<u64, Partial>,
    /// Units handed to a worker (or held from a previous run), as unit index ranges.
    dispatched: Vec<Range<u64>>,
    /// Units at a worker whose completion has not been polled yet.
    in_flight: u64,
    expected: Option<Digest>,
    finalizing: bool,
}

enum Job {
    Write {
        file: FileIndex,
        index: u64,
        data: Vec<u8>,
    },
    Rehash {
        file: FileIndex,
        index: u64,
    },
    Finalize {
        file: FileIndex,
    },
    Reject {
        file: FileIndex,
    },
    RemoveJournal,
}

enum Done {
    Unit {
        file: FileIndex,
        index: u64,
        len: u64,
        result: Result<SubtreeHash, FsError>,
        /// The written buffer, handed back for reuse.
        buf: Option<Vec<u8>>,
    },
    Finalized {
        file: FileIndex,
        result: Result<(), FsError>,
    },
}

/// What the worker and checkpoint threads share.
struct Ctx {
    disk: Disk,
    /// Taken by every thread that touches the disk for this sink.
    identity: Option<FsIdentity>,
    cancelled: AtomicBool,
    notify: Arc<dyn Fn() + Send + Sync>,
}

/// Writes the files of one transfer under a destination root. See the module docs.
///
/// Driving contract: [`write`](Self::write) and [`finish`](Self::finish) are cheap and never
/// touch the disk; call [`poll`](Self::poll) until `None` whenever `notify` fired.
pub struct FileSink {
    ctx: Arc<Ctx>,
    status: Vec<Status>,
    active: HashMap<u32, FileState>,
    buffered: u64,
    completed: usize,
    events: VecDeque<SinkEvent>,
    jobs: Option<Sender<Job>>,
    done_rx: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    checkpointer: Option<(Sender<()>, JoinHandle<()>)>,
    journaling: bool,
    /// Full-size unit buffers returned by the workers, reused by `write`.
    pool: Vec<Vec<u8>>,
}

/// Most unit buffers kept for reuse (64 × 256 KiB = 16 MiB).
const POOL_BUFFERS: usize = 64;

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("root", &self.ctx.disk.root.path())
            .field("tag", &self.ctx.disk.tag)
            .field("active", &self.active.len())
            .field("buffered", &self.buffered)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

fn worker_gone() -> FsError {
    FsError::Io {
        path: PathBuf::new(),
        kind: io::ErrorKind::BrokenPipe,
        message: "file sink worker threads have stopped".to_owned(),
    }
}

impl FileSink {
    /// Opens the sink of transfer `tag` (a short hex id naming part files and the journal)
    /// under `root`, created if missing, and reads back what a previous run left.
    ///
    /// Blocks on the disk (reads and rewrites the journal): call it off the event loop or at
    /// setup. With a [`SinkConfig::identity`], that disk work runs on a short-lived thread
    /// switched to it. Spawns `workers` threads plus one checkpoint thread (with the journal
    /// on), each switched to the identity first, stopped by [`close`](Self::close),
    /// [`discard`](Self::discard) or drop. `notify` is called from worker threads whenever
    /// [`poll`](Self::poll) has news; it must not block.
    ///
    /// # Errors
    /// [`FsError::Io`] when the root or the journal cannot be created (e.g. `PermissionDenied`
    /// where the identity may not write), or the identity cannot be taken.
    pub fn open(
        root: impl Into<SinkRoot>,
        manifest: Arc<Manifest>,
        tag: String,
        config: SinkConfig,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(Self, ResumeState), FsError> {
        let root: SinkRoot = root.into();
        let count = manifest.len();
        let (root, records, journal) = {
            let (manifest, tag) = (manifest.clone(), tag.clone());
            let root_path = root.path().to_path_buf();
            let journaling = config.journal;
            run_as_user(config.identity.clone(), move || {
                let root = root.open()?;
                let (records, journal) = journal::prepare(&root, &manifest, &tag, journaling)?;
                Ok::<_, FsError>((root, records, journal))
            })
            .map_err(|e| FsError::io(&root_path, &e))??
        };
        let (kick_tx, kick_rx) = crossbeam_channel::bounded::<()>(1);
        let journal_state = JournalState {
            journal,
            kick: Some(kick_tx),
            checkpoint_bytes: journal::checkpoint_bytes(manifest.total_bytes()),
            ..JournalState::default()
        };
        let ctx = Arc::new(Ctx {
            disk: Disk::new(root, manifest, tag, config.fsync, journal_state),
            identity: config.identity,
            cancelled: AtomicBool::new(false),
            notify,
        });
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let workers = (0..config.workers.max(1))
            .map(|_| {
                let (ctx, jobs, done) = (ctx.clone(), job_rx.clone(), done_tx.clone());
                std::thread::spawn(move || worker(&ctx, &jobs, &done))
            })
            .collect();
        let checkpointer = config.journal.then(|| {
            let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
            let ctx = ctx.clone();
            let interval = config.checkpoint_interval;
            let handle = std::thread::spawn(move || {
                if let Some(identity) = &ctx.identity {
                    if identity.apply_to_this_thread().is_err() {
                        // Not reachable in practice (`open` took the same identity). Without
                        // checkpoints the journal says less than the truth, never more.
                        ctx.disk.journal.lock().journal = None;
                        return;
                    }
                }
                // Every `interval`, or sooner when enough was written; stops on an explicit
                // stop or when the sink (the sender) is gone, after a final checkpoint (unless
                // the transfer was discarded) so that the transfer can resume.
                loop {
                    crossbeam_channel::select! {
                        recv(stop_rx) -> _ => {
                            if !ctx.cancelled.load(Ordering::Relaxed) {
                                journal::checkpoint(&ctx.disk.journal);
                            }
                            break;
                        }
                        recv(kick_rx) -> _ => {}
                        default(interval) => {}
                    }
                    journal::checkpoint(&ctx.disk.journal);
                }
            });
            (stop_tx, handle)
        });
        let mut sink = Self {
            ctx,
            status: vec![Status::Untouched; count],
            active: HashMap::new(),
            buffered: 0,
            completed: 0,
            events: VecDeque::new(),
            jobs: Some(job_tx),
            done_rx,
            workers,
            checkpointer,
            journaling: config.journal,
            pool: Vec::new(),
        };
        let mut resume = ResumeState::default();
        // `validate` only keeps records of existing entries, so the indexing below is in range.
        for &file in &records.complete {
            sink.status[file.0 as usize] = Status::Done;
            sink.completed += 1;
            resume.complete.push(file);
        }
        for (&file, ranges) in &records.durable {
            let size = sink.ctx.disk.manifest.entries()[file.0 as usize].size();
            let mut state = FileState::new(size);
            for r in ranges {
                resume.held.push((file, r.clone()));
                let units = r.start / SUBTREE_LEN..r.end.div_ceil(SUBTREE_LEN);
                for index in units.clone() {
                    sink.send(Job::Rehash { file, index })?;
                }
                state.in_flight += units.end - units.start;
                insert_range(&mut state.dispatched, units);
            }
            sink.status[file.0 as usize] = Status::Open;
            sink.active.insert(file.0, state);
        }
        Ok((sink, resume))
    }

    fn send(&self, job: Job) -> Result<(), FsError> {
        let jobs = self.jobs.as_ref().ok_or_else(worker_gone)?;
        jobs.send(job).map_err(|_| worker_gone())
    }

    /// Takes a received payload: `data` belongs at `offset` of `file`. Cheap, never touches the
    /// disk: bytes are copied into the buffer of their [`SUBTREE_LEN`] unit, and a completed
    /// unit is moved to a worker. Bytes outside the file, already received, or for an unknown,
    /// failed or finished entry are ignored.
    ///
    /// # Errors
    /// Only when the worker threads are gone (they panicked); per-file disk errors are reported
    /// by [`poll`](Self::poll) as a failed [`SinkEvent::FileDone`].
    pub fn write(&mut self, file: FileIndex, offset: u64, data: &[u8]) -> Result<(), FsError> {
        let Some(entry) = self.ctx.disk.manifest.entries().get(file.0 as usize) else {
            return Ok(());
        };
        let size = entry.size();
        let end = offset.saturating_add(data.len() as u64).min(size);
        if entry.is_empty_dir() || offset >= end {
            return Ok(());
        }
        match self.status[file.0 as usize] {
            Status::Failed | Status::Done => return Ok(()),
            Status::Open => {}
            Status::Untouched => {
                self.status[file.0 as usize] = Status::Open;
                self.active.insert(file.0, FileState::new(size));
            }
        }
        let Some(state) = self.active.get_mut(&file.0) else {
            return Ok(());
        };
        let mut pos = offset;
        while pos < end {
            let index = pos / SUBTREE_LEN;
            let unit_start = index * SUBTREE_LEN;
            let unit_len = subtree_len(size, index);
            let piece_end = end.min(unit_start + unit_len);
            if !contains(&state.dispatched, index) {
                let pool = &mut self.pool;
                let partial = state.partial.entry(index).or_insert_with(|| {
                    self.buffered += unit_len;
                    // Reuse a written buffer when one fits: no zeroing, no page faults. Its old
                    // contents never leak: a unit is dispatched only once every byte of it has
                    // been filled from received data.
                    let data = match pool.pop() {
                        Some(b) if unit_len == SUBTREE_LEN => b,
                        Some(b) => {
                            pool.push(b);
                            // unit_len <= SUBTREE_LEN, so it fits a usize.
                            vec![0; unit_len as usize]
                        }
                        None => vec![0; unit_len as usize],
                    };
                    Partial {
                        data,
                        filled: Vec::new(),
                        filled_len: 0,
                    }
                });
                let src = &data[(pos - offset) as usize..(piece_end - offset) as usize];
                partial.fill((pos - unit_start) as usize, src);
                if partial.filled_len == partial.data.len() {
                    if let Some(done) = state.partial.remove(&index) {
                        insert_range(&mut state.dispatched, index..index + 1);
                        state.in_flight += 1;
                        let jobs = self.jobs.as_ref().ok_or_else(worker_gone)?;
                        jobs.send(Job::Write {
                            file,
                            index,
                            data: done.data,
                        })
                        .map_err(|_| worker_gone())?;
                    }
                }
            }
            pos = piece_end;
        }
        Ok(())
    }

    /// Bytes held in memory: unit buffers being filled (counted at their full allocated size
    /// from the first byte received, so touching a new unit adds up to [`SUBTREE_LEN`]) plus
    /// units queued or in progress at the workers, until [`poll`](Self::poll) sees them done.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered
    }

    /// Declares that every byte of `file` has been passed to [`write`](Self::write) and that the
    /// sender's digest is `expected`. Once all units are written the digest is checked and the
    /// file is synced and renamed into place on a worker; the outcome comes from
    /// [`poll`](Self::poll). Empty files and directories are created here. A second call, or a
    /// call for an unknown, failed or finished entry, is ignored.
    pub fn finish(&mut self, file: FileIndex, expected: Digest) {
        let Some(entry) = self.ctx.disk.manifest.entries().get(file.0 as usize) else {
            return;
        };
        let size = entry.size();
        match self.status[file.0 as usize] {
            Status::Failed | Status::Done => return,
            Status::Open => {}
            Status::Untouched => {
                self.status[file.0 as usize] = Status::Open;
                self.active.insert(file.0, FileState::new(size));
            }
        }
        if let Some(state) = self.active.get_mut(&file.0) {
            if state.expected.is_none() {
                state.expected = Some(expected);
            }
        }
        self.try_finalize(file);
    }

    /// Sends the finalize job once the digest is known and every unit is merged.
    fn try_finalize(&mut self, file: FileIndex) {
        let is_dir = self
            .ctx
            .disk
            .manifest
            .entries()
            .get(file.0 as usize)
            .is_some_and(ManifestEntry::is_empty_dir);
        let Some(state) = self.active.get_mut(&file.0) else {
            return;
        };
        let Some(expected) = state.expected else {
            return;
        };
        if state.finalizing || state.in_flight > 0 || !state.tree.is_complete() {
            return;
        }
        state.finalizing = true;
        let digest = std::mem::replace(&mut state.tree, TreeHasher::new(0)).finalize();
        let job = if is_dir || digest == Some(expected) {
            Job::Finalize { file }
        } else {
            Job::Reject { file }
        };
        if self.send(job).is_err() {
            self.fail(file, worker_gone());
        }
    }

    /// Marks `file` failed, frees its buffers and queues the event.
    fn fail(&mut self, file: FileIndex, err: FsError) {
        if let Some(state) = self.active.remove(&file.0) {
            let held: u64 = state.partial.values().map(|p| p.data.len() as u64).sum();
            self.buffered = self.buffered.saturating_sub(held);
        }
        self.status[file.0 as usize] = Status::Failed;
        self.events.push_back(SinkEvent::FileDone {
            file,
            result: Err(err),
        });
    }

    /// The next event, if any. Non-blocking: drains the workers' completions and merges unit
    /// hashes (cheap) on the caller's thread.
    pub fn poll(&mut self) -> Option<SinkEvent> {
        while let Ok(done) = self.done_rx.try_recv() {
            match done {
                Done::Unit {
                    file,
                    index,
                    len,
                    result,
                    buf,
                } => {
                    self.buffered = self.buffered.saturating_sub(len);
                    if let Some(b) = buf {
                        if b.len() == SUBTREE_LEN as usize && self.pool.len() < POOL_BUFFERS {
                            self.pool.push(b);
                        }
                    }
                    if self.status.get(file.0 as usize) != Some(&Status::Open) {
                        continue;
                    }
                    let Some(state) = self.active.get_mut(&file.0) else {
                        continue;
                    };
                    state.in_flight -= 1;
                    match result {
                        Ok(hash) => {
                            state.tree.add(index, hash);
                            self.try_finalize(file);
                        }
                        Err(e) => self.fail(file, e),
                    }
                }
                Done::Finalized { file, result } => {
                    self.active.remove(&file.0);
                    if result.is_ok() {
                        self.status[file.0 as usize] = Status::Done;
                        self.completed += 1;
                        if self.completed == self.status.len() && self.journaling {
                            // Nothing left to resume; ignore a dead worker, close() cleans up.
                            let _ = self.send(Job::RemoveJournal);
                        }
                    } else {
                        self.status[file.0 as usize] = Status::Failed;
                    }
                    self.events.push_back(SinkEvent::FileDone { file, result });
                }
            }
        }
        self.events.pop_front()
    }

    /// Journals durable progress now: syncs the part files written since the last checkpoint,
    /// then records them. Blocks on the disk (the background checkpoint does the same every
    /// `checkpoint_interval`); meant for tests and orderly shutdown.
    pub fn checkpoint_now(&mut self) {
        let ctx = self.ctx.clone();
        // Best effort, like the background checkpoints (the identity was taken at open).
        let _ = run_as_user(self.ctx.identity.clone(), move || {
            journal::checkpoint(&ctx.disk.journal);
        });
    }

    /// Stops the workers (after they finish their queue) and makes a final checkpoint so the
    /// transfer can resume. Part files stay in place. Same as dropping the sink.
    pub fn close(self) {
        drop(self);
    }

    /// Stops the workers and deletes this transfer's part files and journal (the transfer was
    /// deleted). Files already at their final path stay.
    pub fn discard(mut self) {
        self.ctx.cancelled.store(true, Ordering::Relaxed);
        self.stop_threads();
        self.ctx.disk.journal.lock().journal = None;
        let started: Vec<usize> = (self.status.iter().enumerate())
            .filter(|(_, status)| matches!(status, Status::Open | Status::Failed))
            .map(|(i, _)| i)
            .collect();
        let ctx = self.ctx.clone();
        // Best effort throughout: a part file may never have been created.
        let _ = run_as_user(self.ctx.identity.clone(), move || {
            let disk = &ctx.disk;
            for i in started {
                disk.discard(FileIndex(i as u32));
            }
            journal::remove(&disk.root, &disk.tag);
        });
    }

    fn stop_threads(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            // A panicked worker has nothing left to clean up.
            let _ = handle.join();
        }
        if let Some((stop, handle)) = self.checkpointer.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if self.workers.is_empty() && self.checkpointer.is_none() {
            return; // discarded
        }
        // The checkpoint thread makes the final checkpoint as it stops; without a journal
        // there is nothing to checkpoint.
        self.stop_threads();
    }
}

impl FileState {
    fn new(size: u64) -> Self {
        Self {
            tree: TreeHasher::new(size),
            partial: BTreeMap::new(),
            dispatched: Vec::new(),
            in_flight: 0,
            expected: None,
            finalizing: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Worker threads: run jobs against the disk (see `journal::Disk`) and report back.

/// `Err(refused)` when set, else `worker_gone()` when `cancelled`, else what `f` returns.
fn guarded<T>(
    refused: Option<&FsError>,
    cancelled: bool,
    f: impl FnOnce() -> Result<T, FsError>,
) -> Result<T, FsError> {
    match refused {
        Some(err) => Err(err.clone()),
        None if cancelled => Err(worker_gone()),
        None => f(),
    }
}

fn worker(ctx: &Ctx, jobs: &Receiver<Job>, done: &Sender<Done>) {
    // Switch first: this thread only ever works for this sink. If the switch fails (not
    // reachable in practice: `open` took the same identity), every job fails with its error
    // rather than running with the process's rights.
    let refused = ctx.identity.as_ref().and_then(|identity| {
        let err = identity.apply_to_this_thread().err()?;
        Some(FsError::io(ctx.disk.root.path(), &err))
    });
    let refused = refused.as_ref();
    while let Ok(job) = jobs.recv() {
        let cancelled = ctx.cancelled.load(Ordering::Relaxed);
        let out = match job {
            Job::Write { file, index, data } => {
                let len = data.len() as u64;
                let result = guarded(refused, cancelled, || {
                    ctx.disk.write_unit(file, index, &data)
                });
                Done::Unit {
                    file,
                    index,
                    len,
                    result,
                    buf: Some(data),
                }
            }
            Job::Rehash { file, index } => {
                let result = guarded(refused, cancelled, || ctx.disk.rehash_unit(file, index));
                Done::Unit {
                    file,
                    index,
                    len: 0,
                    result,
                    buf: None,
                }
            }
            Job::Finalize { file } => Done::Finalized {
                file,
                result: guarded(refused, false, || ctx.disk.finalize(file)),
            },
            Job::Reject { file } => Done::Finalized {
                file,
                result: guarded(refused, false, || ctx.disk.reject(file)),
            },
            Job::RemoveJournal => {
                ctx.disk.journal.lock().journal = None;
                if refused.is_none() {
                    journal::remove(&ctx.disk.root, &ctx.disk.tag);
                }
                continue;
            }
        };
        if done.send(out).is_err() {
            break;
        }
        (ctx.notify)();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fs::journal::{system_time, JOURNAL_DIR};
    use crate::testing::Rng;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    pub(crate) const TAG: &str = "0123456789abcdef";
    pub(crate) const MTIME_US: i64 = 1_700_000_000_123_456;
    const PIECE: u64 = 1400;

    pub(crate) fn content(len: u64, seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        (0..len).map(|_| rng.next_u64() as u8).collect()
    }

    pub(crate) fn digest(data: &[u8]) -> Digest {
        Digest(*blake3::hash(data).as_bytes())
    }

    pub(crate) fn file_entry(path: &str, size: u64, exec: bool) -> ManifestEntry {
        ManifestEntry::file(path, size, MTIME_US, exec).expect("valid path")
    }

    pub(crate) struct Harness {
        pub(crate) sink: FileSink,
        pub(crate) resume: ResumeState,
        wake: Receiver<()>,
    }

    pub(crate) fn open(root: &Path, entries: Vec<ManifestEntry>, config: SinkConfig) -> Harness {
        let manifest = Arc::new(Manifest::new(entries).expect("valid manifest"));
        let (tx, wake) = crossbeam_channel::unbounded();
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = tx.send(());
        });
        let (sink, resume) =
            FileSink::open(root.to_path_buf(), manifest, TAG.to_owned(), config, notify)
                .expect("open sink");
        Harness { sink, resume, wake }
    }

    impl Harness {
        /// Polls until `n` events arrived (bounded wait on the notify channel).
        pub(crate) fn events(&mut self, n: usize) -> Vec<SinkEvent> {
            let mut out = Vec::new();
            loop {
                while let Some(ev) = self.sink.poll() {
                    out.push(ev);
                }
                if out.len() >= n {
                    return out;
                }
                self.wake
                    .recv_timeout(Duration::from_secs(30))
                    .expect("sink event within 30 s");
            }
        }

        /// Polls until `buffered_bytes() == target`.
        pub(crate) fn settle(&mut self, target: u64) {
            loop {
                assert_eq!(self.sink.poll(), None, "no event expected while settling");
                if self.sink.buffered_bytes() == target {
                    return;
                }
                self.wake
                    .recv_timeout(Duration::from_secs(30))
                    .expect("worker progress within 30 s");
            }
        }

        /// Sends `ranges` of `data` as 1400-byte pieces in a seeded shuffled order, with
        /// duplicates, and with 1/5 of them held back and sent last (holes filled later).
        pub(crate) fn send(
            &mut self,
            file: FileIndex,
            data: &[u8],
            ranges: &[(u64, u64)],
            seed: u64,
        ) {
            let mut pieces: Vec<Range<u64>> = Vec::new();
            for &(start, end) in ranges {
                let mut at = start;
                while at < end {
                    pieces.push(at..end.min(at + PIECE));
                    at += PIECE;
                }
            }
            let mut rng = Rng::new(seed);
            // Mostly in order: swap neighbours within a small window.
            for i in 0..pieces.len() {
                let j = i + (rng.next_u64() % 8) as usize;
                if j < pieces.len() {
                    pieces.swap(i, j);
                }
            }
            let (mut first, mut late) = (Vec::new(), Vec::new());
            for p in pieces {
                match rng.next_u64() % 10 {
                    0 | 1 => late.push(p),
                    2 => {
                        first.push(p.clone());
                        late.push(p);
                    }
                    _ => first.push(p),
                }
            }
            for p in first.iter().chain(&late) {
                let slice = &data[p.start as usize..p.end as usize];
                self.sink.write(file, p.start, slice).expect("write");
            }
        }
    }

    pub(crate) fn part_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if e.file_type().expect("file type").is_dir() {
                out.extend(part_files(&p));
            } else if p.to_string_lossy().ends_with(".jspart") {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn writes_out_of_order_pieces_and_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("dest");
        let sizes = [0, 1, 1400, SUBTREE_LEN + 3, 5 * 1024 * 1024 + 7];
        let mut entries: Vec<ManifestEntry> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| file_entry(&format!("d/f{i}"), s, i % 2 == 1))
            .collect();
        let mut dir_entry = ManifestEntry::empty_dir("empty/dir").expect("valid path");
        dir_entry.mtime_us = MTIME_US;
        entries.push(dir_entry);
        let mut config = SinkConfig::default();
        config.workers(2);
        let mut h = open(&root, entries, config);
        assert_eq!(h.resume, ResumeState::default());
        let data: Vec<Vec<u8>> = sizes.iter().map(|&s| content(s, s + 11)).collect();
        for (i, d) in data.iter().enumerate() {
            let file = FileIndex(i as u32);
            let len = d.len() as u64;
            h.send(file, d, &[(0, len)], 0x5EED + i as u64);
            // Bytes past the end are ignored.
            h.sink.write(file, len, &[1, 2, 3]).expect("write past end");
            h.sink.finish(file, digest(d));
        }
        h.sink
            .finish(FileIndex(sizes.len() as u32), Digest([0; 32]));
        let mut events = h.events(sizes.len() + 1);
        events.sort_by_key(|SinkEvent::FileDone { file, .. }| *file);
        for (i, ev) in events.iter().enumerate() {
            assert_eq!(
                ev,
                &SinkEvent::FileDone {
                    file: FileIndex(i as u32),
                    result: Ok(())
                }
            );
        }
        assert_eq!(h.sink.buffered_bytes(), 0);
        for (i, d) in data.iter().enumerate() {
            let path = root.join(format!("d/f{i}"));
            assert_eq!(
                &std::fs::read(&path).expect("final file"),
                d,
                "content of f{i}"
            );
            let meta = std::fs::metadata(&path).expect("metadata");
            assert_eq!(meta.modified().expect("mtime"), system_time(MTIME_US));
            let mode = if i % 2 == 1 { 0o755 } else { 0o644 };
            assert_eq!(meta.mode() & 0o777, mode, "mode of f{i}");
        }
        let meta = std::fs::metadata(root.join("empty/dir")).expect("dir");
        assert!(meta.is_dir());
        assert_eq!(meta.modified().expect("mtime"), system_time(MTIME_US));
        h.sink.close();
        assert_eq!(part_files(&root), Vec::<PathBuf>::new());
        assert!(
            !root.join(JOURNAL_DIR).exists(),
            "journal removed once everything is complete"
        );
    }

    #[test]
    fn digest_mismatch_fails_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = 3 * SUBTREE_LEN + 5;
        let mut h = open(
            dir.path(),
            vec![
                file_entry("bad", size, false),
                file_entry("small", 10, false),
            ],
            SinkConfig::default(),
        );
        let data = content(size, 1);
        h.send(FileIndex(0), &data, &[(0, size)], 9);
        h.sink.finish(FileIndex(0), digest(b"something else"));
        h.sink.write(FileIndex(1), 0, b"0123456789").expect("write");
        h.sink.finish(FileIndex(1), digest(b"0123456780"));
        let mut events = h.events(2);
        events.sort_by_key(|SinkEvent::FileDone { file, .. }| *file);
        for (i, name) in ["bad", "small"].iter().enumerate() {
            let path = dir.path().join(name);
            let expected = SinkEvent::FileDone {
                file: FileIndex(i as u32),
                result: Err(FsError::DigestMismatch { path: path.clone() }),
            };
            assert_eq!(events[i], expected);
            assert!(!path.exists());
        }
        assert_eq!(h.sink.buffered_bytes(), 0);
        assert_eq!(part_files(dir.path()), Vec::<PathBuf>::new());
    }

    #[test]
    fn symlinked_directory_fails_only_that_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("dest");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        let size = 2 * SUBTREE_LEN + 1;
        let entries = vec![
            file_entry("link/evil", size, false),
            file_entry("ok/good", size, false),
        ];
        let mut h = open(&root, entries, SinkConfig::default());
        let data = content(size, 2);
        for file in [FileIndex(0), FileIndex(1)] {
            h.send(file, &data, &[(0, size)], 3);
            h.sink.finish(file, digest(&data));
        }
        let mut events = h.events(2);
        events.sort_by_key(|SinkEvent::FileDone { file, .. }| *file);
        assert_eq!(
            events[0],
            SinkEvent::FileDone {
                file: FileIndex(0),
                result: Err(FsError::Escape {
                    path: "link/evil".to_owned()
                })
            }
        );
        assert_eq!(
            events[1],
            SinkEvent::FileDone {
                file: FileIndex(1),
                result: Ok(())
            }
        );
        // Later writes to the failed file are ignored; workers' leftovers are accounted for.
        h.sink.write(FileIndex(0), 0, &data[..100]).expect("write");
        h.settle(0);
        assert_eq!(std::fs::read_dir(&outside).expect("read_dir").count(), 0);
        assert_eq!(
            std::fs::read(root.join("ok/good")).expect("good file"),
            data
        );
    }
}
