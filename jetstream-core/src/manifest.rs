//! The manifest: the list of entries (files and empty directories) one transfer carries.
//!
//! On the sender a manifest also knows where each entry is read from (`src_path`); only the
//! destination-relative part travels on the wire (see [`Manifest::encode`]).

use std::cmp::Ordering;
use std::fmt;
use std::path::PathBuf;

use crate::error::FsError;
use crate::types::{Digest, FileIndex};

/// One file or empty directory of a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Where the sender reads the file from. `None` on the receiving side.
    pub(crate) src_path: Option<PathBuf>,
    /// The device and inode the source had when the manifest was made, when known: the
    /// reader refuses to send any other file found at `src_path` later (a path swapped for a
    /// link to another file). Never sent to the receiver.
    pub(crate) src_id: Option<(u64, u64)>,
    /// Relative destination path, `/`-separated, validated: non-empty, no `.`/`..`/empty
    /// components, no leading `/`, no NUL, valid UTF-8.
    pub(crate) dest_path: String,
    /// Size in bytes (0 for directories).
    pub(crate) size: u64,
    /// Modification time, microseconds since the Unix epoch (may be negative).
    pub(crate) mtime_us: i64,
    /// The owner-executable bit.
    pub(crate) executable: bool,
    /// An empty directory, created as such at the destination.
    pub(crate) is_empty_dir: bool,
}

impl ManifestEntry {
    /// The local source path, on the sending side.
    pub fn src_path(&self) -> Option<&std::path::Path> {
        self.src_path.as_deref()
    }
    /// The destination-relative path (`/`-separated).
    pub fn dest_path(&self) -> &str {
        &self.dest_path
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Modification time in microseconds since the Unix epoch.
    pub fn mtime_us(&self) -> i64 {
        self.mtime_us
    }
    /// Whether the executable bit is carried.
    pub fn is_executable(&self) -> bool {
        self.executable
    }
    /// Whether this entry is an empty directory.
    pub fn is_empty_dir(&self) -> bool {
        self.is_empty_dir
    }
}

/// An ordered list of entries. Entry `i` is addressed on the wire as `FileIndex(i)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub(crate) entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// The entries, in wire order.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }
    /// Number of entries (files and empty directories).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the manifest has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Sum of all file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Magic bytes opening an encoded manifest (format version 1).
pub const MAGIC: &[u8; 4] = b"JSM1";

/// Flag bit: the entry is an empty directory.
const FLAG_EMPTY_DIR: u8 = 0b01;
/// Flag bit: the owner-executable bit is set.
const FLAG_EXECUTABLE: u8 = 0b10;
/// Bytes of an encoded entry besides its path: flags, size, mtime, path length.
const ENTRY_HEADER_LEN: usize = 1 + 8 + 8 + 2;

/// Why a manifest was refused, when decoding it from the wire or building it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// A directory entry has a non-zero size or the executable bit (the path is attached).
    BadDirectory(String),
    /// An entry has flag bits this version does not know.
    BadFlags,
    /// The input does not start with [`MAGIC`].
    BadMagic,
    /// An entry would be a directory of another entry (`a` and `a/b`); the path is attached.
    Conflict(String),
    /// Two entries have the same destination path (attached).
    Duplicate(String),
    /// A destination path breaks the path rules (see [`crate::fs::paths`]).
    InvalidPath(FsError),
    /// The sum of the file sizes does not fit in a `u64`.
    TooLarge,
    /// More entries than [`FileIndex::MAX_ENTRY`] allows.
    TooManyEntries,
    /// Bytes remain after the last entry.
    TrailingData,
    /// The input ends in the middle of the manifest.
    Truncated,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDirectory(p) => {
                write!(
                    f,
                    "{p}: a directory entry must have size 0 and no executable bit"
                )
            }
            Self::BadFlags => f.write_str("unknown manifest entry flags"),
            Self::BadMagic => f.write_str("not a manifest (bad magic)"),
            Self::Conflict(p) => write!(f, "{p}: entry is also used as a directory"),
            Self::Duplicate(p) => write!(f, "{p}: duplicate manifest entry"),
            Self::InvalidPath(e) => write!(f, "{e}"),
            Self::TooLarge => f.write_str("total manifest size overflows 64 bits"),
            Self::TooManyEntries => f.write_str("too many manifest entries"),
            Self::TrailingData => f.write_str("trailing bytes after the manifest"),
            Self::Truncated => f.write_str("truncated manifest"),
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidPath(e) => Some(e),
            _ => None,
        }
    }
}

impl ManifestEntry {
    /// A file entry with no local source (receiving side, tests). The path is validated.
    ///
    /// # Errors
    /// The [`FsError`] of [`validate_relative`] when `dest_path` is not a valid manifest path.
    pub fn file(
        dest_path: &str,
        size: u64,
        mtime_us: i64,
        executable: bool,
    ) -> Result<Self, FsError> {
        validate_relative(dest_path)?;
        Ok(Self {
            src_path: None,
            src_id: None,
            dest_path: dest_path.to_owned(),
            size,
            mtime_us,
            executable,
            is_empty_dir: false,
        })
    }

    /// An empty-directory entry. The path is validated.
    ///
    /// # Errors
    /// The [`FsError`] of [`validate_relative`] when `dest_path` is not a valid manifest path.
    pub fn empty_dir(dest_path: &str) -> Result<Self, FsError> {
        Self::empty_dir_with_mtime(dest_path, 0)
    }

    pub(crate) fn empty_dir_with_mtime(dest_path: &str, mtime_us: i64) -> Result<Self, FsError> {
        validate_relative(dest_path)?;
        Ok(Self {
            src_path: None,
            src_id: None,
            dest_path: dest_path.to_owned(),
            size: 0,
            mtime_us,
            executable: false,
            is_empty_dir: true,
        })
    }

    /// Sets the local path the sender reads this entry from.
    #[must_use]
    pub fn with_source(mut self, src_path: PathBuf) -> Self {
        self.src_path = Some(src_path);
        self
    }

    /// Pins the source to the file with this device and inode number (as `stat` gave them
    /// when the manifest was made): the sender then refuses to read any other file found at
    /// the source path (`FsError::SourceChanged`).
    #[must_use]
    pub fn with_source_id(mut self, dev: u64, ino: u64) -> Self {
        self.src_id = Some((dev, ino));
        self
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.is_empty_dir {
            flags |= FLAG_EMPTY_DIR;
        }
        if self.executable {
            flags |= FLAG_EXECUTABLE;
        }
        flags
    }
}

/// Longest manifest path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single path component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Checks that `rel` is a valid manifest path (the rules: [`crate::fs::paths`]).
///
/// # Errors
/// [`FsError::Escape`] for an absolute path or a `..` component, [`FsError::InvalidPath`] for
/// anything else that breaks the rules.
pub fn validate_relative(rel: &str) -> Result<(), FsError> {
    let invalid = |reason: &'static str| FsError::InvalidPath {
        path: rel.to_owned(),
        reason,
    };
    if rel.is_empty() {
        return Err(invalid("empty path"));
    }
    if rel.starts_with('/') {
        return Err(FsError::Escape {
            path: rel.to_owned(),
        });
    }
    if rel.len() > MAX_PATH_BYTES {
        return Err(invalid("path longer than 4096 bytes"));
    }
    if rel.contains('\0') {
        return Err(invalid("path contains a NUL byte"));
    }
    // Check `..` first over all components so that `a//../b` reports the escape attempt.
    if rel.split('/').any(|c| c == "..") {
        return Err(FsError::Escape {
            path: rel.to_owned(),
        });
    }
    for component in rel.split('/') {
        match component {
            "" => return Err(invalid("empty path component")),
            "." => return Err(invalid("`.` path component")),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(invalid("path component longer than 255 bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Orders paths component by component: `/` sorts before every other byte, so all the
/// descendants of `p` (`p/...`) come right after `p` itself.
fn component_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

impl Manifest {
    /// Builds a manifest from entries, applying every check [`Manifest::decode`] applies.
    ///
    /// DoS note: sorts the paths once, `O(n log n)` path comparisons.
    ///
    /// # Errors
    /// [`ManifestError`] for too many entries, an invalid path, a bad directory entry, a
    /// duplicate or conflicting path, or a total size that overflows.
    pub fn new(entries: Vec<ManifestEntry>) -> Result<Self, ManifestError> {
        if u32::try_from(entries.len()).map_or(true, |n| n > FileIndex::MAX_ENTRY) {
            return Err(ManifestError::TooManyEntries);
        }
        let mut total: u64 = 0;
        for e in &entries {
            validate_relative(&e.dest_path).map_err(ManifestError::InvalidPath)?;
            if e.is_empty_dir && (e.size != 0 || e.executable) {
                return Err(ManifestError::BadDirectory(e.dest_path.clone()));
            }
            total = total.checked_add(e.size).ok_or(ManifestError::TooLarge)?;
        }
        let mut paths: Vec<&str> = entries.iter().map(|e| e.dest_path.as_str()).collect();
        paths.sort_unstable_by(|a, b| component_order(a, b));
        for pair in paths.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a == b {
                return Err(ManifestError::Duplicate(a.to_owned()));
            }
            if b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/' {
                return Err(ManifestError::Conflict(a.to_owned()));
            }
        }
        Ok(Self { entries })
    }

    /// The wire encoding: `b"JSM1"`, entry count (u32 BE), then per entry flags (u8: bit 0
    /// empty directory, bit 1 executable), size (u64 BE), mtime in µs (i64 BE), path length
    /// (u16 BE) and the UTF-8 path. Source paths are not encoded.
    pub fn encode(&self) -> Vec<u8> {
        let len = 8 + self
            .entries
            .iter()
            .map(|e| ENTRY_HEADER_LEN + e.dest_path.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(MAGIC);
        // INVARIANT: every constructor (`new`, `decode`, `from_sources`) caps the entry count at
        // `FileIndex::MAX_ENTRY`, which fits a u32.
        let count = u32::try_from(self.entries.len()).expect("entry count checked by constructors");
        out.extend_from_slice(&count.to_be_bytes());
        for e in &self.entries {
            out.push(e.flags());
            out.extend_from_slice(&e.size.to_be_bytes());
            out.extend_from_slice(&e.mtime_us.to_be_bytes());
            // INVARIANT: every path went through `validate_relative`, which caps it at
            // `MAX_PATH_BYTES` (4096) bytes, so it fits a u16.
            let path_len =
                u16::try_from(e.dest_path.len()).expect("path length checked by constructors");
            out.extend_from_slice(&path_len.to_be_bytes());
            out.extend_from_slice(e.dest_path.as_bytes());
        }
        out
    }

    /// Parses a manifest received from the peer. Strict: see [`ManifestError`] for everything
    /// that is refused. `decode(&m.encode())` equals `m` without its source paths.
    ///
    /// DoS note: work and memory are linear in `bytes.len()` (plus one sort); the entry count
    /// read from the input never sizes an allocation beyond what the input can hold.
    ///
    /// # Errors
    /// Any [`ManifestError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut r = Reader(bytes);
        let magic = r.take(MAGIC.len()).map_err(|_| {
            if MAGIC.starts_with(bytes) {
                ManifestError::Truncated
            } else {
                ManifestError::BadMagic
            }
        })?;
        if magic != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let count = r.u32()?;
        if count > FileIndex::MAX_ENTRY {
            return Err(ManifestError::TooManyEntries);
        }
        // Each entry takes at least ENTRY_HEADER_LEN + 1 bytes.
        let capacity = (count as usize).min(r.0.len() / (ENTRY_HEADER_LEN + 1));
        let mut entries = Vec::with_capacity(capacity);
        for _ in 0..count {
            let flags = r.u8()?;
            let size = r.u64()?;
            let mtime_us = i64::from_be_bytes(r.array()?);
            let path_len = usize::from(r.u16()?);
            let raw = r.take(path_len)?;
            if flags & !(FLAG_EMPTY_DIR | FLAG_EXECUTABLE) != 0 {
                return Err(ManifestError::BadFlags);
            }
            let dest_path = std::str::from_utf8(raw).map_err(|_| {
                ManifestError::InvalidPath(FsError::InvalidPath {
                    path: String::from_utf8_lossy(raw).into_owned(),
                    reason: "path is not valid UTF-8",
                })
            })?;
            validate_relative(dest_path).map_err(ManifestError::InvalidPath)?;
            entries.push(ManifestEntry {
                src_path: None,
                src_id: None,
                dest_path: dest_path.to_owned(),
                size,
                mtime_us,
                executable: flags & FLAG_EXECUTABLE != 0,
                is_empty_dir: flags & FLAG_EMPTY_DIR != 0,
            });
        }
        if !r.0.is_empty() {
            return Err(ManifestError::TrailingData);
        }
        Self::new(entries)
    }

    /// The BLAKE3 digest of [`Manifest::encode`], which identifies the transfer's content list.
    pub fn digest(&self) -> Digest {
        Digest(*blake3::hash(&self.encode()).as_bytes())
    }
}

/// A minimal big-endian cursor over untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if self.0.len() < n {
            return Err(ManifestError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, ManifestError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ManifestError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ManifestError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn file(p: &str, size: u64) -> ManifestEntry {
        ManifestEntry::file(p, size, 1_700_000_000_123_456, false).unwrap()
    }

    fn sample() -> Manifest {
        Manifest::new(vec![
            file("a.txt", 10),
            ManifestEntry::file("bin/run me", 3, -1_234_567, true).unwrap(),
            ManifestEntry::empty_dir("empty").unwrap(),
            file("été/ファイル.txt", 0),
            file("été/sub/.hidden", u64::from(u32::MAX) + 7),
        ])
        .unwrap()
    }

    /// flags, size, mtime_us, path bytes.
    type RawEntry<'a> = (u8, u64, i64, &'a [u8]);

    /// A hand-written encoder so that error cases can carry bytes `encode` never produces.
    fn raw(count: u32, entries: &[RawEntry<'_>]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&count.to_be_bytes());
        for (flags, size, mtime, path) in entries {
            out.push(*flags);
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(&mtime.to_be_bytes());
            out.extend_from_slice(&u16::try_from(path.len()).unwrap().to_be_bytes());
            out.extend_from_slice(path);
        }
        out
    }

    #[test]
    fn round_trips() {
        let empty = Manifest::default();
        assert_eq!(empty.encode(), b"JSM1\0\0\0\0");
        assert_eq!(Manifest::decode(&empty.encode()).unwrap(), empty);

        let one = Manifest::new(vec![file("x", 1)]).unwrap();
        assert_eq!(Manifest::decode(&one.encode()).unwrap(), one);

        let m = sample();
        let decoded = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(decoded, m);
        assert!(decoded.entries()[1].is_executable());
        assert_eq!(decoded.entries()[1].mtime_us(), -1_234_567);
        assert!(decoded.entries()[2].is_empty_dir());
        assert_eq!(decoded.total_bytes(), 10 + 3 + u64::from(u32::MAX) + 7);
    }

    #[test]
    fn round_trips_ten_thousand_entries() {
        let entries: Vec<_> = (0..10_000u64)
            .map(|i| {
                let p = format!("d{}/f {i}", i % 37);
                if i % 100 == 0 {
                    ManifestEntry::empty_dir(&format!("empty {i}")).unwrap()
                } else {
                    ManifestEntry::file(&p, i * 1000, -(i as i64), i % 3 == 0).unwrap()
                }
            })
            .collect();
        let m = Manifest::new(entries).unwrap();
        let decoded = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(decoded, m);
        assert_eq!(decoded.digest(), m.digest());
    }

    #[test]
    fn source_paths_are_not_encoded() {
        let with = Manifest::new(vec![file("a", 1).with_source(PathBuf::from("/src/a"))]).unwrap();
        let without = Manifest::new(vec![file("a", 1)]).unwrap();
        assert_eq!(with.encode(), without.encode());
        assert_eq!(with.digest(), without.digest());
        assert_eq!(Manifest::decode(&with.encode()).unwrap(), without);
        assert_eq!(
            with.digest(),
            Digest(*blake3::hash(&with.encode()).as_bytes())
        );
        assert_ne!(with.digest(), sample().digest());
    }

    #[test]
    fn every_strict_prefix_is_truncated() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            assert_eq!(
                Manifest::decode(&bytes[..i]),
                Err(ManifestError::Truncated),
                "prefix {i}"
            );
        }
    }

    #[test]
    fn refuses_trailing_data() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(Manifest::decode(&bytes), Err(ManifestError::TrailingData));
    }

    #[test]
    fn refuses_bad_magic_and_flags() {
        assert_eq!(
            Manifest::decode(b"JSM2\0\0\0\0"),
            Err(ManifestError::BadMagic)
        );
        assert_eq!(Manifest::decode(b"XY"), Err(ManifestError::BadMagic));
        assert_eq!(Manifest::decode(b"JS"), Err(ManifestError::Truncated));
        for flags in [0b100, 0x80, 0xff] {
            let bytes = raw(1, &[(flags, 0, 0, b"a")]);
            assert_eq!(
                Manifest::decode(&bytes),
                Err(ManifestError::BadFlags),
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn refuses_bad_directories() {
        for (flags, size) in [(FLAG_EMPTY_DIR, 1), (FLAG_EMPTY_DIR | FLAG_EXECUTABLE, 0)] {
            let bytes = raw(1, &[(flags, size, 0, b"d")]);
            assert_eq!(
                Manifest::decode(&bytes),
                Err(ManifestError::BadDirectory("d".into()))
            );
        }
    }

    #[test]
    fn refuses_invalid_paths() {
        for path in [
            &b""[..],
            b"..",
            b"a/../b",
            b"/etc/passwd",
            b"a//b",
            b"./a",
            b"a\0",
            b"\xff\xfe",
        ] {
            let bytes = raw(1, &[(0, 0, 0, path)]);
            match Manifest::decode(&bytes) {
                Err(ManifestError::InvalidPath(_)) => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(path)),
            }
        }
        let long = vec![b'x'; 4097];
        assert!(matches!(
            Manifest::decode(&raw(1, &[(0, 0, 0, &long)])),
            Err(ManifestError::InvalidPath(FsError::InvalidPath { .. }))
        ));
    }

    #[test]
    fn refuses_duplicates_and_conflicts() {
        let dup = raw(2, &[(0, 1, 0, b"a/b"), (0, 2, 0, b"a/b")]);
        assert_eq!(
            Manifest::decode(&dup),
            Err(ManifestError::Duplicate("a/b".into()))
        );
        let dir_dup = raw(2, &[(FLAG_EMPTY_DIR, 0, 0, b"a"), (0, 2, 0, b"a")]);
        assert_eq!(
            Manifest::decode(&dir_dup),
            Err(ManifestError::Duplicate("a".into()))
        );
        // A sibling that sorts between `a/b` and `a/b/c` byte-wise must not hide the conflict.
        let cases: [&[RawEntry<'_>]; 3] = [
            &[(0, 1, 0, b"a/b/c"), (0, 1, 0, b"a/b-x"), (0, 1, 0, b"a/b")],
            &[
                (FLAG_EMPTY_DIR, 0, 0, b"a"),
                (0, 1, 0, b"a!"),
                (0, 1, 0, b"a/x"),
            ],
            &[(0, 1, 0, b"x/y/z/w"), (0, 1, 0, b"x/y")],
        ];
        for entries in cases {
            let bytes = raw(u32::try_from(entries.len()).unwrap(), entries);
            assert!(
                matches!(Manifest::decode(&bytes), Err(ManifestError::Conflict(_))),
                "{entries:?}"
            );
        }
        // Prefixes that are not directory prefixes are fine.
        let ok = raw(3, &[(0, 1, 0, b"ab"), (0, 1, 0, b"a"), (0, 1, 0, b"a.b/c")]);
        assert_eq!(Manifest::decode(&ok).unwrap().len(), 3);
    }

    #[test]
    fn refuses_oversized_totals_and_counts() {
        let big = raw(2, &[(0, u64::MAX, 0, b"a"), (0, 1, 0, b"b")]);
        assert_eq!(Manifest::decode(&big), Err(ManifestError::TooLarge));
        let many = raw(FileIndex::MAX_ENTRY + 1, &[]);
        assert_eq!(Manifest::decode(&many), Err(ManifestError::TooManyEntries));
        // A huge claimed count with no data is refused without allocating for it.
        let claimed = raw(FileIndex::MAX_ENTRY, &[(0, 1, 0, b"a")]);
        assert_eq!(Manifest::decode(&claimed), Err(ManifestError::Truncated));
    }

    #[test]
    fn new_applies_the_same_checks() {
        assert_eq!(
            Manifest::new(vec![file("a", 1), file("a", 2)]),
            Err(ManifestError::Duplicate("a".into()))
        );
        assert_eq!(
            Manifest::new(vec![file("a", 1), file("a/b", 2)]),
            Err(ManifestError::Conflict("a".into()))
        );
        assert_eq!(
            Manifest::new(vec![file("a", u64::MAX), file("b", 1)]),
            Err(ManifestError::TooLarge)
        );
        assert!(matches!(
            ManifestEntry::file("../x", 0, 0, false),
            Err(FsError::Escape { .. })
        ));
        assert!(matches!(
            ManifestEntry::empty_dir(""),
            Err(FsError::InvalidPath { .. })
        ));
    }

    fn dest_paths(m: &Manifest) -> Vec<&str> {
        m.entries().iter().map(ManifestEntry::dest_path).collect()
    }

    #[test]
    fn from_sources_walks_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("photos");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::create_dir_all(root.join("only_links")).unwrap();
        std::fs::write(root.join("b.jpg"), b"bbbb").unwrap();
        std::fs::write(root.join("a.jpg"), b"a").unwrap();
        std::fs::write(root.join("sub/deeper/x"), b"xx").unwrap();
        std::fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        symlink(root.join("b.jpg"), root.join("link_to_file")).unwrap();
        symlink(root.join("sub"), root.join("only_links/link_to_dir")).unwrap();
        symlink(tmp.path().join("nowhere"), root.join("only_links/dangling")).unwrap();
        let single = tmp.path().join("single file.txt");
        std::fs::write(&single, b"12345").unwrap();
        let empty_src = tmp.path().join("bare");
        std::fs::create_dir(&empty_src).unwrap();

        let m = Manifest::from_sources(&[root.clone(), single.clone(), empty_src]).unwrap();
        assert_eq!(
            dest_paths(&m),
            [
                "photos/a.jpg",
                "photos/b.jpg",
                "photos/empty",
                "photos/link_to_file",
                "photos/only_links",
                "photos/run.sh",
                "photos/sub/deeper/x",
                "single file.txt",
                "bare",
            ]
        );
        let by_path = |p: &str| m.entries().iter().find(|e| e.dest_path() == p).unwrap();
        assert_eq!(by_path("photos/b.jpg").size(), 4);
        assert_eq!(by_path("photos/link_to_file").size(), 4);
        assert_eq!(
            by_path("photos/link_to_file").src_path(),
            Some(&*root.join("link_to_file"))
        );
        assert!(by_path("photos/run.sh").is_executable());
        assert!(!by_path("photos/a.jpg").is_executable());
        assert!(by_path("photos/empty").is_empty_dir());
        assert!(by_path("photos/only_links").is_empty_dir());
        assert!(by_path("bare").is_empty_dir());
        assert_eq!(by_path("single file.txt").src_path(), Some(&*single));
        let meta = std::fs::metadata(&single).unwrap();
        let expected_mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        assert_eq!(
            by_path("single file.txt").mtime_us() as u128,
            expected_mtime
        );
        assert_eq!(m.total_bytes(), 1 + 4 + 4 + 10 + 2 + 5);

        // Deterministic, and identical to its own wire round trip (without sources).
        let again = Manifest::from_sources(&[root, single]).unwrap();
        assert_eq!(again.entries(), &m.entries()[..8]);
        let decoded = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(dest_paths(&decoded), dest_paths(&m));
    }

    #[test]
    fn from_sources_skips_fifos() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"x").unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(dir.join("pipe"))
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("mkfifo unavailable, skipping");
            return;
        }
        let m = Manifest::from_sources(&[&dir]).unwrap();
        assert_eq!(dest_paths(&m), ["d/f"]);
        // A top-level special file is refused rather than silently dropped.
        let err = Manifest::from_sources(&[dir.join("pipe")]).unwrap_err();
        assert!(matches!(err, FsError::InvalidPath { .. }), "{err:?}");
    }

    #[test]
    fn from_sources_refuses_duplicate_names_and_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["x/same", "y/same"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let err = Manifest::from_sources(&[tmp.path().join("x/same"), tmp.path().join("y/same")])
            .unwrap_err();
        assert!(
            matches!(err, FsError::InvalidPath { ref path, .. } if path == "same"),
            "{err:?}"
        );

        let bad = tmp
            .path()
            .join("x/same")
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bad\xff"));
        std::fs::write(&bad, b"").unwrap();
        let err = Manifest::from_sources(&[tmp.path().join("x/same")]).unwrap_err();
        assert!(
            matches!(err, FsError::InvalidPath { reason, .. } if reason.contains("UTF-8")),
            "{err:?}"
        );

        let err = Manifest::from_sources(&[tmp.path().join("missing")]).unwrap_err();
        assert!(
            matches!(
                err,
                FsError::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
