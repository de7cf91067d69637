//! Building a manifest from the local file system ([`Manifest::from_sources`]): the one part
//! of manifests that reads directories, kept here so that the manifest type and its codec
//! (which the sans-IO `proto` layer uses) depend on no file-system code.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::FsError;
use crate::manifest::{validate_relative, Manifest, ManifestEntry, ManifestError};

impl Manifest {
    /// Builds the manifest for sending `sources`, like `scp -r SRC... DST`.
    ///
    /// A source file becomes one entry named by its file name; a source directory contributes
    /// its whole tree under its own name, with empty directories (including an empty source
    /// directory) as empty-directory entries. The order is deterministic (each directory's
    /// children sorted by name bytes, depth-first), so the same tree always gives the same
    /// manifest. Size, mtime and the owner-executable bit come from the metadata. Inside a
    /// tree, symlinks to files are followed, symlinks to directories, dangling symlinks and
    /// special files (fifos, sockets, devices) are skipped; a top-level source is always
    /// followed and must be a file or a directory.
    ///
    /// # Errors
    /// [`FsError::Io`] when reading the tree fails, [`FsError::InvalidPath`] for a non-UTF-8
    /// name, a path too long for a manifest, two sources with the same name or a top-level
    /// special file.
    pub fn from_sources(sources: &[impl AsRef<Path>]) -> Result<Self, FsError> {
        let mut entries = Vec::new();
        let mut names = HashSet::new();
        for source in sources {
            let source = source.as_ref();
            let name = source_name(source)?;
            if !names.insert(name.clone()) {
                return Err(FsError::InvalidPath {
                    path: name,
                    reason: "two sources have the same name",
                });
            }
            let meta = std::fs::metadata(source).map_err(|e| FsError::io(source, &e))?;
            if meta.is_dir() {
                add_dir(source, &name, &meta, &mut entries)?;
            } else if meta.is_file() {
                entries.push(file_entry(source, &name, &meta)?);
            } else {
                return Err(FsError::InvalidPath {
                    path: source.display().to_string(),
                    reason: "source is neither a regular file nor a directory",
                });
            }
        }
        Self::new(entries).map_err(|e| match e {
            ManifestError::InvalidPath(e) => e,
            ManifestError::TooManyEntries => FsError::InvalidPath {
                path: String::new(),
                reason: "too many files for one transfer",
            },
            ManifestError::TooLarge => FsError::InvalidPath {
                path: String::new(),
                reason: "total size overflows 64 bits",
            },
            ManifestError::Duplicate(p) | ManifestError::Conflict(p) => FsError::InvalidPath {
                path: p,
                reason: "two sources map to the same destination",
            },
            // Not produced by `new` for entries built from metadata.
            other => FsError::InvalidPath {
                path: other.to_string(),
                reason: "internal error",
            },
        })
    }
}

/// The destination name of a top-level source: its file name (resolving `.` and the like).
fn source_name(source: &Path) -> Result<String, FsError> {
    let canonical;
    let name = match source.file_name() {
        Some(name) => name,
        None => {
            canonical = std::fs::canonicalize(source).map_err(|e| FsError::io(source, &e))?;
            canonical.file_name().ok_or_else(|| FsError::InvalidPath {
                path: source.display().to_string(),
                reason: "source has no file name",
            })?
        }
    };
    let name = name.to_str().ok_or_else(|| FsError::InvalidPath {
        path: source.display().to_string(),
        reason: "file name is not valid UTF-8",
    })?;
    validate_relative(name)?;
    Ok(name.to_owned())
}

fn mtime_us(meta: &std::fs::Metadata) -> i64 {
    // `mtime` is floored to the second and `mtime_nsec` is in [0, 1e9), also before 1970.
    meta.mtime()
        .saturating_mul(1_000_000)
        .saturating_add(meta.mtime_nsec() / 1000)
}

fn file_entry(src: &Path, dest: &str, meta: &std::fs::Metadata) -> Result<ManifestEntry, FsError> {
    let exec = meta.mode() & 0o100 != 0;
    Ok(ManifestEntry::file(dest, meta.len(), mtime_us(meta), exec)?.with_source(src.to_path_buf()))
}

/// Adds the tree of directory `dir` under destination `dest`; adds `dest` itself as an empty
/// directory when nothing below it is sent.
fn add_dir(
    dir: &Path,
    dest: &str,
    meta: &std::fs::Metadata,
    out: &mut Vec<ManifestEntry>,
) -> Result<(), FsError> {
    // Bounds the recursion depth: every level adds at least two bytes to `dest`.
    validate_relative(dest)?;
    let before = out.len();
    let mut children = Vec::new();
    for child in std::fs::read_dir(dir).map_err(|e| FsError::io(dir, &e))? {
        let child = child.map_err(|e| FsError::io(dir, &e))?;
        children.push((child.file_name(), child.path()));
    }
    children.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, path) in children {
        let name = name.to_str().ok_or_else(|| FsError::InvalidPath {
            path: path.display().to_string(),
            reason: "file name is not valid UTF-8",
        })?;
        let child_dest = format!("{dest}/{name}");
        let lmeta = std::fs::symlink_metadata(&path).map_err(|e| FsError::io(&path, &e))?;
        let ftype = lmeta.file_type();
        if ftype.is_symlink() {
            // Follow links to files only: links to directories could loop.
            match std::fs::metadata(&path) {
                Ok(target) if target.is_file() => {
                    out.push(file_entry(&path, &child_dest, &target)?)
                }
                _ => {}
            }
        } else if ftype.is_dir() {
            add_dir(&path, &child_dest, &lmeta, out)?;
        } else if ftype.is_file() {
            out.push(file_entry(&path, &child_dest, &lmeta)?);
        }
    }
    if out.len() == before {
        out.push(
            ManifestEntry::empty_dir_with_mtime(dest, mtime_us(meta))?
                .with_source(dir.to_path_buf()),
        );
    }
    Ok(())
}
