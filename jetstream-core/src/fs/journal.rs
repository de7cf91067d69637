//! Disk side of a [`FileSink`](super::sink::FileSink): part files (written, finalised or
//! rejected by the sink's workers through `Disk`) and the crash-safe resume journal.
//!
//! ## Part files
//! A file is written at its hidden part path ([`temp_path`]), created with `O_NOFOLLOW` and
//! preallocated (sparse) to its full size. Once its digest is verified it is `fdatasync`ed, given
//! its mtime and mode (0o755 or 0o644, umask-free), and renamed over the final path.
//!
//! Every path is resolved beneath the destination root's descriptor without following a
//! symbolic link ([`super::beneath`]): the part file is created in the descriptor of its
//! parent directory, that descriptor is kept with the open part file, and the rename into
//! place happens in that same directory (`renameat`), so a local user swapping directories
//! for links while the transfer runs cannot make a file land outside the root.
//!
//! ## Journal
//!
//! One append-only text file per transfer, `<root>/.jetstream-resume/<tag>.journal`. Every line
//! ends with a space and the first 8 hex digits of the BLAKE3 hash of the text before it, so a
//! line torn by a crash (or anything after it) is detected and ignored:
//!
//! ```text
//! JSJ1 <tag> <check>                 header: format version and transfer tag
//! D <file> <offset> <len> <check>    these bytes of the file's part file are durably on disk
//! C <file> <check>                   the entry is finalised at its final path
//! ```
//!
//! `D` records are only written by a checkpoint, after the part files concerned have been
//! `fdatasync`ed, and the journal is `fsync`ed afterwards, so a record never claims data the disk
//! does not have. On open the journal is read back, checked against the files on disk and
//! rewritten (atomically, via a temporary file and a rename) with only the records that still
//! hold, which also drops a torn tail before anything is appended after it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::beneath::{Dir, Kind};
use super::paths::temp_path;
use super::tree::{subtree_count, subtree_hash, subtree_len, SubtreeHash, SUBTREE_LEN};
use super::FsError;
use crate::manifest::{Manifest, ManifestEntry};
use crate::types::FileIndex;

/// Directory under the destination root that holds the journals.
pub const JOURNAL_DIR: &str = ".jetstream-resume";
/// First word of the header line (format version).
const VERSION: &str = "JSJ1";
/// Largest journal read back; a bigger file is treated as absent (it cannot be ours).
const MAX_JOURNAL_BYTES: u64 = 256 * 1024 * 1024;

/// Path of the journal of transfer `tag` under `root`.
pub fn journal_path(root: &Path, tag: &str) -> PathBuf {
    root.join(JOURNAL_DIR).join(format!("{tag}.journal"))
}

/// Inserts `r` into a sorted list of disjoint ranges, merging overlapping and adjacent ones.
pub(crate) fn insert_range<T: Ord + Copy>(list: &mut Vec<Range<T>>, r: Range<T>) {
    if r.start >= r.end {
        return;
    }
    let first = list.partition_point(|x| x.end < r.start);
    let mut merged = r;
    let mut last = first;
    while last < list.len() && list[last].start <= merged.end {
        merged.start = merged.start.min(list[last].start);
        merged.end = merged.end.max(list[last].end);
        last += 1;
    }
    list.splice(first..last, [merged]);
}

/// Whether `x` lies in a sorted list of disjoint ranges.
pub(crate) fn contains<T: Ord + Copy>(list: &[Range<T>], x: T) -> bool {
    let i = list.partition_point(|r| r.end <= x);
    i < list.len() && list[i].start <= x
}

/// What a journal says: durable byte ranges per file, and finalised entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JournalRecords {
    /// Durable byte ranges of each file's part file, sorted, disjoint and coalesced.
    pub(crate) durable: BTreeMap<FileIndex, Vec<Range<u64>>>,
    /// Entries finalised at their final path.
    pub(crate) complete: BTreeSet<FileIndex>,
}

impl JournalRecords {
    /// Records that `range` of `file` is durable.
    pub(crate) fn add_durable(&mut self, file: FileIndex, range: Range<u64>) {
        insert_range(self.durable.entry(file).or_default(), range);
    }
}

/// The short checksum ending every line.
fn check(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..8].to_owned()
}

/// `text` followed by its checksum and a newline.
fn line(text: &str) -> String {
    format!("{text} {}\n", check(text))
}

/// The text of a complete, intact line, or `None` if it is torn or corrupt.
fn verified(raw: &str) -> Option<&str> {
    let (text, sum) = raw.rsplit_once(' ')?;
    (sum == check(text)).then_some(text)
}

fn parse_u64(s: Option<&str>) -> Option<u64> {
    s?.parse().ok()
}

/// Parses journal text. Reading stops at the first torn or corrupt line; a missing or foreign
/// header gives no records at all.
pub(crate) fn parse(text: &str, tag: &str) -> JournalRecords {
    let mut records = JournalRecords::default();
    // Only newline-terminated lines count: the last, unterminated piece may be torn.
    let mut lines = text
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'));
    let header = format!("{VERSION} {tag}");
    if lines.next().and_then(verified) != Some(header.as_str()) {
        return records;
    }
    for raw in lines {
        let Some(text) = verified(raw) else { break };
        let mut fields = text.split(' ');
        let kind = fields.next();
        let file = parse_u64(fields.next())
            .and_then(|f| u32::try_from(f).ok())
            .map(FileIndex);
        match (kind, file) {
            (Some("D"), Some(file)) => {
                let (Some(offset), Some(len)) =
                    (parse_u64(fields.next()), parse_u64(fields.next()))
                else {
                    break;
                };
                let Some(end) = offset.checked_add(len) else {
                    break;
                };
                records.add_durable(file, offset..end);
            }
            (Some("C"), Some(file)) => {
                records.complete.insert(file);
            }
            _ => break,
        }
    }
    records
}

/// The journal's file name in [`JOURNAL_DIR`].
fn journal_name(tag: &str) -> String {
    format!("{tag}.journal")
}

/// Reads the journal of `tag` under `root`; no journal (or an unreadable one) gives no records.
pub(crate) fn read(root: &Dir, tag: &str) -> JournalRecords {
    let Ok(dir) = root.open_dir(JOURNAL_DIR) else {
        return JournalRecords::default();
    };
    let Ok(file) = dir.open_file(&journal_name(tag), libc::O_RDONLY, 0) else {
        return JournalRecords::default();
    };
    let mut bytes = Vec::new();
    if file
        .take(MAX_JOURNAL_BYTES)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return JournalRecords::default();
    }
    // A torn write may cut a line anywhere; only the valid prefix matters.
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    };
    parse(text, tag)
}

/// Keeps only what still holds on disk: `C` entries whose final path exists with the right size
/// (or as a directory), and `D` ranges (cut down to whole [`SUBTREE_LEN`] units) of files whose
/// part file exists with the right length. Never creates anything.
pub(crate) fn validate(
    root: &Dir,
    tag: &str,
    manifest: &Manifest,
    records: &JournalRecords,
) -> JournalRecords {
    let mut out = JournalRecords::default();
    let entries = manifest.entries();
    for &file in &records.complete {
        let Some(entry) = entries.get(file.0 as usize) else {
            continue;
        };
        let Ok((dir, name)) = root.parent_of(entry.dest_path(), false) else {
            continue;
        };
        let Ok(meta) = dir.lstat(name) else {
            continue;
        };
        let ok = if entry.is_empty_dir() {
            meta.kind == Kind::Directory
        } else {
            meta.kind == Kind::File && meta.len == entry.size()
        };
        if ok {
            out.complete.insert(file);
        }
    }
    for (&file, ranges) in &records.durable {
        let Some(entry) = entries.get(file.0 as usize) else {
            continue;
        };
        if out.complete.contains(&file) || entry.is_empty_dir() || entry.size() == 0 {
            continue;
        }
        let Ok((dir, name)) = root.parent_of(entry.dest_path(), false) else {
            continue;
        };
        match dir.lstat(&part_name(name, tag)) {
            Ok(meta) if meta.kind == Kind::File && meta.len == entry.size() => {}
            _ => continue,
        }
        let size = entry.size();
        for unit in 0..subtree_count(size) {
            let start = unit * SUBTREE_LEN;
            let end = start + subtree_len(size, unit);
            let i = ranges.partition_point(|r| r.end <= start);
            if ranges
                .get(i)
                .is_some_and(|r| r.start <= start && r.end >= end)
            {
                out.add_durable(file, start..end);
            }
        }
    }
    out
}

/// An open journal, appended to.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Writes a fresh journal holding `records` (to a temporary file, fsynced, then renamed over
    /// the old one) and opens it for appending. Creates the journal directory if needed.
    ///
    /// # Errors
    /// [`FsError::Io`] when the directory or the file cannot be written.
    pub(crate) fn create(root: &Dir, tag: &str, records: &JournalRecords) -> Result<Self, FsError> {
        let path = journal_path(root.path(), tag);
        let dir_path = root.path().join(JOURNAL_DIR);
        match root.lstat(JOURNAL_DIR) {
            Ok(meta) if meta.kind == Kind::Directory => {}
            Ok(_) => {
                return Err(FsError::Escape {
                    path: JOURNAL_DIR.to_owned(),
                })
            }
            Err(_) => match root.mkdir(JOURNAL_DIR, 0o777) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FsError::io(&dir_path, &e)),
            },
        }
        // No-follow: a link swapped in since the check is refused here.
        let dir = root.open_dir(JOURNAL_DIR)?;
        let mut text = line(&format!("{VERSION} {tag}"));
        for (file, ranges) in &records.durable {
            for r in ranges {
                text.push_str(&line(&format!(
                    "D {} {} {}",
                    file.0,
                    r.start,
                    r.end - r.start
                )));
            }
        }
        for file in &records.complete {
            text.push_str(&line(&format!("C {}", file.0)));
        }
        let tmp_name = format!(".{tag}.journal.tmp");
        let tmp = dir_path.join(&tmp_name);
        let io_err = |p: &Path, e: io::Error| FsError::io(p, &e);
        let mut f = dir
            .open_file(
                &tmp_name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o666,
            )
            .map_err(|e| io_err(&tmp, e))?;
        f.write_all(text.as_bytes()).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(f);
        dir.rename(&tmp_name, &journal_name(tag))
            .map_err(|e| io_err(&path, e))?;
        dir.sync();
        let file = dir
            .open_file(&journal_name(tag), libc::O_WRONLY | libc::O_APPEND, 0)
            .map_err(|e| io_err(&path, e))?;
        Ok(Self { path, file })
    }

    fn append(&mut self, text: &str) -> Result<(), FsError> {
        self.file
            .write_all(line(text).as_bytes())
            .map_err(|e| FsError::io(&self.path, &e))
    }

    /// Appends a `D` record (not synced; call [`Journal::sync`]).
    ///
    /// # Errors
    /// [`FsError::Io`] on a write error.
    pub(crate) fn append_durable(
        &mut self,
        file: FileIndex,
        range: &Range<u64>,
    ) -> Result<(), FsError> {
        self.append(&format!(
            "D {} {} {}",
            file.0,
            range.start,
            range.end - range.start
        ))
    }

    /// Appends a `C` record (not synced; call [`Journal::sync`]).
    ///
    /// # Errors
    /// [`FsError::Io`] on a write error.
    pub(crate) fn append_complete(&mut self, file: FileIndex) -> Result<(), FsError> {
        self.append(&format!("C {}", file.0))
    }

    /// `fdatasync`s the journal.
    ///
    /// # Errors
    /// [`FsError::Io`] when the sync fails.
    pub(crate) fn sync(&mut self) -> Result<(), FsError> {
        self.file
            .sync_data()
            .map_err(|e| FsError::io(&self.path, &e))
    }
}

/// Removes the journal of `tag` (and the journal directory if that leaves it empty).
pub(crate) fn remove(root: &Dir, tag: &str) {
    // Best effort: a leftover journal is harmless, it is validated against the disk on open.
    if let Ok(dir) = root.open_dir(JOURNAL_DIR) {
        let _ = dir.remove_file(&journal_name(tag));
    }
    let _ = root.remove_dir(JOURNAL_DIR);
}

/// The part file's name of the entry named `name` (see [`temp_path`]).
pub(crate) fn part_name(name: &str, tag: &str) -> String {
    temp_path(Path::new(name), tag)
        .to_string_lossy()
        .into_owned()
}

/// Reads the journal of a previous run, keeps what still holds on disk, and starts the journal
/// of this run (with `journaling`). Runs with the sink's file-system identity, if any.
pub(crate) fn prepare(
    root: &Dir,
    manifest: &Manifest,
    tag: &str,
    journaling: bool,
) -> Result<(JournalRecords, Option<Journal>), FsError> {
    if !journaling {
        return Ok((JournalRecords::default(), None));
    }
    let previous = read(root, tag);
    let records = validate(root, tag, manifest, &previous);
    if records.complete.len() < manifest.len() {
        match Journal::create(root, tag, &records) {
            Ok(journal) => Ok((records, Some(journal))),
            // A root the receiving user may not write (or a read-only one): receive without a
            // journal, so that each entry fails (or succeeds, in a writable subdirectory) on
            // its own with a clear "may not write there" rather than the whole transfer
            // failing on the journal's path. Only resuming is lost.
            Err(FsError::Io {
                kind: io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem,
                ..
            }) => Ok((records, None)),
            Err(e) => Err(e),
        }
    } else {
        remove(root, tag);
        Ok((records, None))
    }
}

/// Part-file writes not yet journaled, and the journal, shared by the sink's threads.
#[derive(Debug, Default)]
pub(crate) struct JournalState {
    /// `None` when journaling is off, finished, or stopped after a write error.
    pub(crate) journal: Option<Journal>,
    /// Per file: its open part file and the unit ranges written since the last checkpoint
    /// (synced through that descriptor, never reopened by path).
    pub(crate) pending: BTreeMap<FileIndex, (Arc<File>, Vec<Range<u64>>)>,
    /// Bytes in `pending`.
    pub(crate) pending_bytes: u64,
    /// Wakes the checkpoint thread early once `pending_bytes` reaches `checkpoint_bytes`
    /// ([`checkpoint_bytes`]): a crash then re-sends at most that much (plus what was in
    /// flight), whatever the rate.
    pub(crate) kick: Option<crossbeam_channel::Sender<()>>,
    /// The threshold for this transfer: [`checkpoint_bytes`] of its size.
    pub(crate) checkpoint_bytes: u64,
}

/// Written bytes not yet journaled that trigger a checkpoint before its interval is up, for a
/// transfer of `total` bytes: 1/64 of it (what a killed receiver re-receives is then ~1.6 % of
/// the transfer plus what was in flight), within [1 MiB, 64 MiB]. A fixed 4 MiB re-sent 2.9 %
/// per resume on average but 6.6 % at worst of the crash campaign's 100 MB (8 MiB: 6.2 % on
/// average), and on a 100 GB file would checkpoint 15 times a second at 500 Mbit/s for
/// nothing. Each checkpoint is one `fdatasync` per part file touched: cheap for a disk at
/// these sizes, free on tmpfs.
pub(crate) fn checkpoint_bytes(total: u64) -> u64 {
    (total / 64).clamp(1 << 20, 64 << 20)
}

impl JournalState {
    /// Notes that `range` of `file` was written to `part` (called after the write returned).
    pub(crate) fn note_written(&mut self, file: FileIndex, part: &Arc<File>, range: Range<u64>) {
        if self.journal.is_none() {
            return;
        }
        self.pending_bytes = self
            .pending_bytes
            .saturating_add(range.end.saturating_sub(range.start));
        let slot = self
            .pending
            .entry(file)
            .or_insert_with(|| (part.clone(), Vec::new()));
        insert_range(&mut slot.1, range);
        if self.pending_bytes >= self.checkpoint_bytes {
            if let Some(kick) = &self.kick {
                // Full: a kick is already waiting.
                let _ = kick.try_send(());
            }
        }
    }

    /// Appends and syncs a `C` record; on error journaling stops (conservative: the journal
    /// then says less than the truth, never more).
    pub(crate) fn note_complete(&mut self, file: FileIndex, sync: bool) {
        self.pending.remove(&file);
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let res =
            journal
                .append_complete(file)
                .and_then(|()| if sync { journal.sync() } else { Ok(()) });
        if res.is_err() {
            self.journal = None;
        }
    }
}

/// One checkpoint: takes the pending writes, `fdatasync`s their part files, then appends the
/// `D` records of the files that synced and syncs the journal. Blocks on the disk.
pub(crate) fn checkpoint(state: &Mutex<JournalState>) {
    let batch = {
        let mut s = state.lock();
        s.pending_bytes = 0;
        std::mem::take(&mut s.pending)
    };
    if batch.is_empty() {
        return;
    }
    let mut synced = Vec::with_capacity(batch.len());
    for (file, (part, ranges)) in batch {
        // A part file finalised meanwhile has a `C` record, which wins over `D` records on
        // reopen; a rejected one is gone from disk, so its records are dropped on reopen.
        if part.sync_data().is_ok() {
            synced.push((file, ranges));
        }
    }
    let mut guard = state.lock();
    let Some(journal) = guard.journal.as_mut() else {
        return;
    };
    let mut res = Ok(());
    for (file, ranges) in &synced {
        for r in ranges {
            res = res.and_then(|()| journal.append_durable(*file, r));
        }
    }
    if res.and_then(|()| journal.sync()).is_err() {
        guard.journal = None;
    }
}

/// The sink's view of the disk: where part files live and how they become final files.
/// Shared (read-only, except the journal and the caches) by the sink's worker and checkpoint
/// threads.
#[derive(Debug)]
pub(crate) struct Disk {
    /// The destination root's descriptor: every path is resolved beneath it.
    pub(crate) root: Arc<Dir>,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) tag: String,
    pub(crate) fsync: bool,
    pub(crate) journal: Mutex<JournalState>,
    /// Where each entry's part file is, from its first write to its rename into place (or
    /// rejection): the descriptor of its directory, resolved once. The part file is created,
    /// reopened, renamed and removed in that directory only, whatever happens to the path
    /// meanwhile.
    pub(crate) located: Mutex<HashMap<FileIndex, Arc<Located>>>,
    /// Directories resolved for this transfer, by relative path, so that the files of one
    /// directory share one descriptor and one resolution.
    pub(crate) dirs: Mutex<HashMap<String, Arc<Dir>>>,
    /// Part files already opened, so that a unit write is one `pwrite` rather than an open
    /// and a close.
    pub(crate) open: Mutex<HashMap<FileIndex, Arc<File>>>,
}

impl Disk {
    /// A disk writing beneath `root`.
    pub(crate) fn new(
        root: Arc<Dir>,
        manifest: Arc<Manifest>,
        tag: String,
        fsync: bool,
        journal: JournalState,
    ) -> Self {
        Self {
            root,
            manifest,
            tag,
            fsync,
            journal: Mutex::new(journal),
            located: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
        }
    }
}

/// Where an entry's part file is.
#[derive(Debug)]
pub(crate) struct Located {
    /// The directory of the final path, shared by the entries in it.
    dir: Arc<Dir>,
    /// The final file's name in `dir`.
    name: String,
    /// The part file's name in `dir`.
    part_name: String,
}

impl Located {
    fn part_path(&self) -> PathBuf {
        self.dir.path().join(&self.part_name)
    }

    /// Best-effort removal of the part file, in the directory it was created in.
    pub(crate) fn remove_part(&self) {
        let _ = self.dir.remove_file(&self.part_name);
    }
}

/// Most part files kept open at once by one sink.
const OPEN_PART_FILES: usize = 128;
/// Most directories remembered by one sink (entries being written keep theirs regardless).
const RESOLVED_DIRS: usize = 256;

impl Disk {
    fn entry(&self, file: FileIndex) -> Result<&ManifestEntry, FsError> {
        self.manifest
            .entries()
            .get(file.0 as usize)
            .ok_or_else(|| FsError::InvalidPath {
                path: format!("#{}", file.0),
                reason: "no such manifest entry",
            })
    }

    /// The directory `rel` beneath the root (created with `create`, symlinks refused), once
    /// per transfer while remembered.
    fn dir(&self, rel: &str, create: bool) -> Result<Arc<Dir>, FsError> {
        if let Some(dir) = self.dirs.lock().get(rel) {
            return Ok(dir.clone());
        }
        let dir = Arc::new(if create {
            self.root.create_dirs(rel)?
        } else {
            self.root.open_dir(rel)?
        });
        let mut dirs = self.dirs.lock();
        if dirs.len() >= RESOLVED_DIRS {
            dirs.clear();
        }
        // A concurrent resolution of the same directory wins: one descriptor per path.
        Ok(dirs.entry(rel.to_owned()).or_insert(dir).clone())
    }

    /// Where `file`'s part file is: remembered from its first write, else resolved now
    /// (parents created with `create`) and remembered with `remember`.
    pub(crate) fn locate(
        &self,
        file: FileIndex,
        create: bool,
        remember: bool,
    ) -> Result<Arc<Located>, FsError> {
        if let Some(l) = self.located.lock().get(&file) {
            return Ok(l.clone());
        }
        let rel = self.entry(file)?.dest_path();
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = self.dir(parent, create).map_err(|e| match e {
            // Name the entry in the refusal, as the sender knows it.
            FsError::Escape { .. } => FsError::Escape {
                path: rel.to_owned(),
            },
            e => e,
        })?;
        let located = Arc::new(Located {
            dir,
            name: name.to_owned(),
            part_name: part_name(name, &self.tag),
        });
        if remember {
            let mut map = self.located.lock();
            return Ok(map.entry(file).or_insert(located).clone());
        }
        Ok(located)
    }

    /// Forgets where `file` is (it is in place, rejected or discarded).
    fn forget(&self, file: FileIndex) -> Option<Arc<Located>> {
        self.open.lock().remove(&file);
        self.located.lock().remove(&file)
    }

    /// Hashes unit `index` of `file` and writes it to the part file (created and preallocated
    /// if missing), then notes it for the next checkpoint.
    pub(crate) fn write_unit(
        &self,
        file: FileIndex,
        index: u64,
        data: &[u8],
    ) -> Result<SubtreeHash, FsError> {
        let size = self.entry(file)?.size();
        let (at, f) = self.part_file(file, size, true)?;
        let hash = subtree_hash(size, index, data)
            .ok_or_else(|| internal(&at.part_path(), "unit of the wrong length"))?;
        let offset = index * SUBTREE_LEN;
        f.write_all_at(data, offset)
            .map_err(|e| FsError::io(at.part_path(), &e))?;
        self.journal
            .lock()
            .note_written(file, &f, offset..offset + data.len() as u64);
        Ok(hash)
    }

    /// Re-reads unit `index` from the part file and hashes it (resume only).
    pub(crate) fn rehash_unit(&self, file: FileIndex, index: u64) -> Result<SubtreeHash, FsError> {
        let size = self.entry(file)?.size();
        let (at, f) = self.part_file(file, size, false)?;
        // subtree_len <= SUBTREE_LEN, so it fits a usize.
        let mut data = vec![0; subtree_len(size, index) as usize];
        f.read_exact_at(&mut data, index * SUBTREE_LEN)
            .map_err(|e| FsError::io(at.part_path(), &e))?;
        subtree_hash(size, index, &data)
            .ok_or_else(|| internal(&at.part_path(), "unit out of range"))
    }

    /// The part file of `file`, located and opened on first use (created and preallocated
    /// with `create`; otherwise it must exist at full length, as on resume).
    fn part_file(
        &self,
        file: FileIndex,
        size: u64,
        create: bool,
    ) -> Result<(Arc<Located>, Arc<File>), FsError> {
        let at = self.locate(file, create, true)?;
        if let Some(f) = self.open.lock().get(&file) {
            return Ok((at, f.clone()));
        }
        let f = Arc::new(open_part(&at.dir, &at.part_name, size, create)?);
        let mut open = self.open.lock();
        if open.len() >= OPEN_PART_FILES {
            open.clear();
        }
        open.insert(file, f.clone());
        Ok((at, f))
    }

    /// Puts a verified entry in place: sync, mtime, mode, rename (or creates the empty
    /// directory), then journals its completion.
    pub(crate) fn finalize(&self, file: FileIndex) -> Result<(), FsError> {
        let e = self.entry(file)?;
        if e.is_empty_dir() {
            let at = self.locate(file, true, false)?;
            let (dir, name) = (&at.dir, &at.name);
            let path = dir.path().join(name);
            match dir.mkdir(name, 0o777) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = dir.lstat(name).map_err(|e| FsError::io(&path, &e))?;
                    if meta.kind != Kind::Directory {
                        return Err(FsError::io(&path, &err));
                    }
                }
                Err(err) => return Err(FsError::io(&path, &err)),
            }
            dir.set_modified(name, system_time(e.mtime_us()))
                .map_err(|e| FsError::io(&path, &e))?;
        } else {
            // The part file written to, in the directory it was created in; only an empty
            // file's part is created here, any other must exist at full length.
            let empty = e.size() == 0;
            let (at, f) = self.part_file(file, e.size(), empty)?;
            self.forget(file);
            let path = at.part_path();
            if self.fsync {
                f.sync_data().map_err(|e| FsError::io(&path, &e))?;
            }
            f.set_modified(system_time(e.mtime_us()))
                .map_err(|e| FsError::io(&path, &e))?;
            let mode = if e.is_executable() { 0o755 } else { 0o644 };
            f.set_permissions(Permissions::from_mode(mode))
                .map_err(|e| FsError::io(&path, &e))?;
            at.dir
                .rename(&at.part_name, &at.name)
                .map_err(|e| FsError::io(at.dir.path().join(&at.name), &e))?;
            if self.fsync {
                at.dir.sync();
            }
        }
        self.journal.lock().note_complete(file, self.fsync);
        Ok(())
    }

    /// Deletes the part file of an entry whose digest did not match; always returns the
    /// [`FsError::DigestMismatch`] to report.
    pub(crate) fn reject(&self, file: FileIndex) -> Result<(), FsError> {
        let at = match self.forget(file) {
            Some(at) => at,
            None => self.locate(file, false, false)?,
        };
        // Best effort: the bad data must not be mistaken for progress on a later resume either.
        at.remove_part();
        self.journal.lock().pending.remove(&file);
        Err(FsError::DigestMismatch {
            path: at.dir.path().join(&at.name),
        })
    }

    /// Best-effort removal of `file`'s part file (the transfer is discarded).
    pub(crate) fn discard(&self, file: FileIndex) {
        let at = match self.forget(file) {
            Some(at) => at,
            None => match self.locate(file, false, false) {
                Ok(at) => at,
                Err(_) => return,
            },
        };
        at.remove_part();
    }
}

/// Opens the part file `name` in `dir` (`O_NOFOLLOW`; created with `create`) and makes it
/// exactly `size` bytes long.
fn open_part(dir: &Dir, name: &str, size: u64, create: bool) -> Result<File, FsError> {
    let path = dir.path().join(name);
    let flags = libc::O_RDWR | if create { libc::O_CREAT } else { 0 };
    let f = dir
        .open_file(name, flags, 0o600)
        .map_err(|e| FsError::io(&path, &e))?;
    let meta = f.metadata().map_err(|e| FsError::io(&path, &e))?;
    if !meta.is_file() {
        return Err(FsError::io(&path, &io::Error::other("not a regular file")));
    }
    if meta.len() != size {
        if !create {
            return Err(FsError::io(
                &path,
                &io::Error::other("the part file is not of the expected length"),
            ));
        }
        // Real preallocation where the filesystem supports it: blocks allocated up front make
        // the later fdatasync much cheaper, and a full disk shows up now, not midway. Sparse
        // `set_len` otherwise; it also trims a stale part file of another length.
        // (fallocate with mode 0 also sets the file size.)
        let allocated = meta.len() == 0 && preallocate(&f, size);
        if !allocated {
            f.set_len(size).map_err(|e| FsError::io(&path, &e))?;
        }
    }
    Ok(f)
}

/// `fallocate(2)` the whole file. Returns false where unsupported (the caller falls back).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn preallocate(f: &File, size: u64) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(size) else {
        return false;
    };
    if len == 0 {
        return false;
    }
    // SAFETY: the descriptor is owned by `f`, which outlives the call; fallocate does not
    // touch user memory.
    unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_: &File, _: u64) -> bool {
    false
}

fn internal(path: &Path, what: &str) -> FsError {
    FsError::Io {
        path: path.to_path_buf(),
        kind: io::ErrorKind::Other,
        message: what.to_owned(),
    }
}

/// A manifest mtime (µs since the epoch, may be negative) as a `SystemTime`.
pub(crate) fn system_time(mtime_us: i64) -> SystemTime {
    let abs = Duration::from_micros(mtime_us.unsigned_abs());
    let t = if mtime_us >= 0 {
        UNIX_EPOCH.checked_add(abs)
    } else {
        UNIX_EPOCH.checked_sub(abs)
    };
    t.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::sink::tests::{content, digest, file_entry, open, part_files, TAG};
    use crate::fs::sink::{ResumeState, SinkConfig, SinkEvent};
    use std::fs::OpenOptions;

    #[test]
    fn insert_range_coalesces() {
        let mut v: Vec<Range<u64>> = Vec::new();
        for r in [
            10..20,
            30..40,
            20..25,
            0..5,
            5..10,
            50..60,
            24..31,
            55..57,
            70..70,
        ] {
            insert_range(&mut v, r);
        }
        assert_eq!(v, vec![0..40, 50..60]);
        assert!(contains(&v, 0) && contains(&v, 39) && contains(&v, 59));
        assert!(!contains(&v, 40) && !contains(&v, 60) && !contains(&v, 45));
    }

    #[test]
    fn round_trips_and_ignores_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut records = JournalRecords::default();
        records.add_durable(FileIndex(3), 0..SUBTREE_LEN);
        records.add_durable(FileIndex(3), SUBTREE_LEN..2 * SUBTREE_LEN + 7);
        records.complete.insert(FileIndex(1));
        let root = Dir::open(dir.path()).expect("root");
        let mut j = Journal::create(&root, "abcd", &records).expect("create");
        j.append_durable(FileIndex(5), &(0..100)).expect("append");
        j.sync().expect("sync");
        drop(j);
        let mut expected = records.clone();
        expected.add_durable(FileIndex(5), 0..100);
        assert_eq!(read(&root, "abcd"), expected);
        // A different tag does not read someone else's journal.
        assert_eq!(read(&root, "ffff"), JournalRecords::default());

        // Tear the last line: it and only it is ignored.
        let path = journal_path(dir.path(), "abcd");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str(&line("C 9"));
        text.push_str("D 7 0 1");
        std::fs::write(&path, &text).expect("write");
        let mut with_c = expected.clone();
        with_c.complete.insert(FileIndex(9));
        assert_eq!(read(&root, "abcd"), with_c);
        // Corrupt a middle line: everything from there on is ignored.
        let corrupt = text.replacen("D 5 0 100", "D 5 0 900", 1);
        assert_eq!(parse(&corrupt, "abcd").durable.get(&FileIndex(5)), None);
        assert!(!parse(&corrupt, "abcd").complete.contains(&FileIndex(9)));
        remove(&root, "abcd");
        assert!(!dir.path().join(JOURNAL_DIR).exists());
    }

    /// Writes units 0, 1 and 3 of a 6-unit file, checkpoints, writes unit 4, "crashes" with
    /// unit 4's journal record torn; the reopened sink holds exactly units 0, 1 and 3.
    fn interrupted_run(root: &Path, data: &[u8]) {
        let size = data.len() as u64;
        let s = SUBTREE_LEN;
        let mut h = open(
            root,
            vec![file_entry("big", size, true)],
            SinkConfig::default(),
        );
        h.send(
            FileIndex(0),
            data,
            &[(0, 2 * s), (3 * s, 4 * s), (2 * s, 2 * s + 1000)],
            21,
        );
        h.settle(s); // only unit 2's partial buffer is left
        h.sink.checkpoint_now();
        h.send(FileIndex(0), data, &[(4 * s, 5 * s)], 22);
        h.settle(s);
        drop(h); // final checkpoint records unit 4, which the "crash" below tears
        let journal = journal_path(root, TAG);
        let text = std::fs::read(&journal).expect("journal");
        assert!(text.ends_with(b"\n"));
        std::fs::write(&journal, &text[..text.len() - 5]).expect("truncate journal");
    }

    #[test]
    fn resumes_from_durable_units_after_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SUBTREE_LEN;
        let size = 5 * s + 100;
        let data = content(size, 77);
        interrupted_run(dir.path(), &data);

        let mut h = open(
            dir.path(),
            vec![file_entry("big", size, true)],
            SinkConfig::default(),
        );
        let file = FileIndex(0);
        assert_eq!(h.resume.held, vec![(file, 0..2 * s), (file, 3 * s..4 * s)]);
        assert!(h.resume.complete.is_empty());
        // Re-hashing the held units is in flight; only the missing bytes are sent.
        h.send(file, &data, &[(2 * s, 3 * s), (4 * s, size)], 23);
        // Stray writes into held units are ignored.
        h.sink.write(file, 10, &[0xFF; 100]).expect("write");
        h.sink.finish(file, digest(&data));
        assert_eq!(
            h.events(1),
            vec![SinkEvent::FileDone {
                file,
                result: Ok(())
            }]
        );
        assert_eq!(
            std::fs::read(dir.path().join("big")).expect("final file"),
            data
        );
        h.sink.close();
        assert!(!dir.path().join(JOURNAL_DIR).exists());

        // Everything complete: a new open reports it and recreates nothing.
        let h = open(
            dir.path(),
            vec![file_entry("big", size, true)],
            SinkConfig::default(),
        );
        assert_eq!(h.resume.held, vec![]);
        assert_eq!(h.resume.complete, vec![]);
    }

    #[test]
    fn resume_verifies_held_units_against_the_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SUBTREE_LEN;
        let size = 5 * s + 100;
        let data = content(size, 78);
        interrupted_run(dir.path(), &data);
        // Corrupt a held byte behind the journal's back.
        let part = temp_path(&dir.path().join("big"), TAG);
        let f = OpenOptions::new()
            .write(true)
            .open(&part)
            .expect("part file");
        f.write_all_at(&[data[s as usize + 5] ^ 1], s + 5)
            .expect("corrupt");
        drop(f);
        let mut h = open(
            dir.path(),
            vec![file_entry("big", size, false)],
            SinkConfig::default(),
        );
        let file = FileIndex(0);
        assert_eq!(h.resume.held.len(), 2);
        h.send(file, &data, &[(0, size)], 24);
        h.sink.finish(file, digest(&data));
        let path = dir.path().join("big");
        assert_eq!(
            h.events(1),
            vec![SinkEvent::FileDone {
                file,
                result: Err(FsError::DigestMismatch { path: path.clone() })
            }]
        );
        assert!(!path.exists() && !part.exists());
    }

    #[test]
    fn reports_completed_entries_on_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = || vec![file_entry("a", 5, false), file_entry("b", 5, false)];
        let mut h = open(dir.path(), entries(), SinkConfig::default());
        h.sink.write(FileIndex(0), 0, b"hello").expect("write");
        h.sink.finish(FileIndex(0), digest(b"hello"));
        assert_eq!(
            h.events(1),
            vec![SinkEvent::FileDone {
                file: FileIndex(0),
                result: Ok(())
            }]
        );
        h.sink.close();
        let h = open(dir.path(), entries(), SinkConfig::default());
        assert_eq!(h.resume.complete, vec![FileIndex(0)]);
        assert!(h.resume.held.is_empty());
    }

    #[test]
    fn discard_removes_part_files_and_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = 3 * SUBTREE_LEN;
        let data = content(size, 5);
        let mut h = open(
            dir.path(),
            vec![file_entry("x/y", size, false)],
            SinkConfig::default(),
        );
        h.send(FileIndex(0), &data, &[(0, SUBTREE_LEN + 10)], 6);
        h.settle(SUBTREE_LEN);
        assert_eq!(part_files(dir.path()).len(), 1);
        assert!(journal_path(dir.path(), TAG).exists());
        h.sink.discard();
        assert_eq!(part_files(dir.path()), Vec::<PathBuf>::new());
        assert!(!dir.path().join(JOURNAL_DIR).exists());
        assert!(!dir.path().join("x/y").exists());
    }

    #[test]
    fn without_journal_nothing_is_resumed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SinkConfig::default();
        config.journal(false).fsync(false);
        let size = 2 * SUBTREE_LEN;
        let data = content(size, 8);
        let mut h = open(
            dir.path(),
            vec![file_entry("f", size, false)],
            config.clone(),
        );
        h.send(FileIndex(0), &data, &[(0, SUBTREE_LEN)], 1);
        h.settle(0);
        h.sink.close();
        assert!(!dir.path().join(JOURNAL_DIR).exists());
        let h = open(dir.path(), vec![file_entry("f", size, false)], config);
        assert_eq!(h.resume, ResumeState::default());
    }
}
