//! The manifest: the list of entries (files and empty directories) one transfer carries.
//!
//! On the sender a manifest also knows where each entry is read from (`src_path`); only the
//! destination-relative part travels on the wire (see [`Manifest::encode`]).

use std::path::PathBuf;

/// One file or empty directory of a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Where the sender reads the file from. `None` on the receiving side.
    pub(crate) src_path: Option<PathBuf>,
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
