//! The files a transfer sends, found on the local file system: [`scan`] walks source paths
//! like `scp -r` and describes each file it opened ([`FileMapping`]); [`engine_manifest`]
//! turns the list into the engine's [`Manifest`].
//!
//! Both senders use it: `jscp` pushing local files, and the server building a manifest for
//! `send.createManifest` (with the requesting user's rights, confined to a sandbox). It is
//! pure local scanning, no API; it lives here rather than in `jetstream-core` because the
//! scanned list is a serde record (the server persists it in its state file).

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use jetstream_core::manifest::ManifestEntry;
use jetstream_core::Manifest;
use serde::{Deserialize, Serialize};

/// One mapping of a manifest, with what was found at the source.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileMapping {
    /// Absolute source path on this host.
    pub src: PathBuf,
    /// Target path (clean, relative; shown with a leading `/`).
    pub dest: String,
    /// Size in bytes.
    pub size: u64,
    /// Empty directory entry.
    pub is_empty_dir: bool,
    /// Executable bit.
    pub executable: bool,
    /// mtime, µs.
    pub mtime_us: i64,
    /// Device and inode of the file that was opened to build the manifest: the sender reads
    /// only that file later (`None` in state written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_id: Option<(u64, u64)>,
}

/// Why [`scan`] left an entry out of a directory it walked (the caller may log it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// A symbolic link to a directory (never followed: no loops), or a dangling one.
    Link,
    /// A symbolic link below the confining directory (none is followed there).
    SandboxLink,
    /// Neither a regular file nor a directory (a FIFO, socket or device).
    Special,
}

/// The engine's manifest for a list of mappings.
///
/// # Errors
/// A duplicate or conflicting target, or a path the engine refuses.
pub fn engine_manifest(files: &[FileMapping]) -> Result<Manifest, String> {
    let mut entries = Vec::with_capacity(files.len());
    for f in files {
        let e = if f.is_empty_dir {
            ManifestEntry::empty_dir(&f.dest)
        } else {
            ManifestEntry::file(&f.dest, f.size, f.mtime_us, f.executable).map(|e| {
                let e = e.with_source(f.src.clone());
                match f.src_id {
                    Some((dev, ino)) => e.with_source_id(dev, ino),
                    None => e,
                }
            })
        };
        entries.push(e.map_err(|e| format!("{}: {e}", f.dest))?);
    }
    Manifest::new(entries).map_err(|e| e.to_string())
}

/// A sandbox top as given (`.0`, the prefix of the planned source paths) and as it really
/// is (`.1`, symbolic links resolved): below it, no link is followed.
type Confine = (PathBuf, PathBuf);

/// Walks the sources like `scp -r`: a file maps to its target; a directory's contents map
/// below its target (empty directories included). Symbolic links are followed for files and
/// skipped for directories (no loops); under `confine` (a sandboxed user's sandbox, or a
/// token's `path`), no symbolic link below it is followed at all. Each file is opened, and
/// the device and inode of the file actually opened are recorded, so that the sender later
/// reads that file and no other.
///
/// # Errors
/// The first source that is missing, unreadable, not a file or directory, or reached
/// through a symbolic link below `confine`, or a file mapped to the root.
pub fn scan(
    plan: &[(PathBuf, String)],
    confine: Option<&Path>,
    mut skipped: impl FnMut(&Path, Skipped),
) -> Result<Vec<FileMapping>, String> {
    let confine: Option<Confine> = match confine {
        Some(base) => Some((
            base.to_path_buf(),
            fs::canonicalize(base).map_err(|e| format!("{}: {e}", base.display()))?,
        )),
        None => None,
    };
    let confine = confine.as_ref();
    let mut out = Vec::new();
    for (src, target) in plan {
        let meta = fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
        if meta.is_dir() {
            if let Some(c) = confine {
                let real = fs::canonicalize(src).map_err(|e| format!("{}: {e}", src.display()))?;
                check_confined(src, &real, c)?;
            }
            let before = out.len();
            walk_dir(src, target, &mut out, confine, &mut skipped)?;
            if out.len() == before && !target.is_empty() {
                out.push(dir_entry(src, target, &meta));
            }
        } else if meta.is_file() {
            if target.is_empty() {
                return Err(format!(
                    "{}: the target path of a file cannot be /",
                    src.display()
                ));
            }
            out.push(open_file(src, target, confine)?);
        } else {
            return Err(format!(
                "{}: not a regular file or directory",
                src.display()
            ));
        }
    }
    Ok(out)
}

/// Refuses `path` (under the sandbox top `c.0`) when what it really is, `real`, is not the
/// same path below the real top: a symbolic link was followed on the way.
fn check_confined(path: &Path, real: &Path, c: &Confine) -> Result<(), String> {
    let want = path
        .strip_prefix(&c.0)
        .map(|rel| c.1.join(rel))
        .map_err(|_| format!("{}: outside the sandbox", path.display()))?;
    if real == want {
        Ok(())
    } else {
        Err(format!(
            "{}: reached through a symbolic link (to {}); links are not followed in a sandbox",
            path.display(),
            real.display()
        ))
    }
}

/// Opens a source file (proving the user may read it: this runs with the user's rights) and
/// describes the file actually opened. Under `confine`, that file's real path (from the open
/// descriptor, so a path swapped meanwhile cannot fool the check) must contain no link.
fn open_file(path: &Path, target: &str, confine: Option<&Confine>) -> Result<FileMapping, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    // O_NONBLOCK: a FIFO swapped in after the type check must not hang the builder.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if let Some(c) = confine {
        let real = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).map_err(err)?;
        check_confined(path, &real, c)?;
    }
    Ok(file_entry(path, target, &meta))
}

fn join(target: &str, name: &str) -> String {
    if target.is_empty() {
        name.to_owned()
    } else {
        format!("{target}/{name}")
    }
}

fn walk_dir(
    dir: &Path,
    target: &str,
    out: &mut Vec<FileMapping>,
    confine: Option<&Confine>,
    skipped: &mut dyn FnMut(&Path, Skipped),
) -> Result<(), String> {
    let mut children: Vec<_> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    children.sort_by_key(fs::DirEntry::file_name);
    for child in children {
        let path = child.path();
        let Some(name) = child.file_name().to_str().map(str::to_owned) else {
            return Err(format!("{}: file name is not UTF-8", path.display()));
        };
        let t = join(target, &name);
        let lmeta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let meta = if lmeta.file_type().is_symlink() {
            if confine.is_some() {
                skipped(&path, Skipped::SandboxLink);
                continue;
            }
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => {
                    skipped(&path, Skipped::Link);
                    continue;
                }
            }
        } else {
            lmeta
        };
        if meta.is_dir() {
            let before = out.len();
            walk_dir(&path, &t, out, confine, skipped)?;
            if out.len() == before {
                out.push(dir_entry(&path, &t, &meta));
            }
        } else if meta.is_file() {
            out.push(open_file(&path, &t, confine)?);
        } else {
            skipped(&path, Skipped::Special);
        }
    }
    Ok(())
}

fn mtime_us(meta: &fs::Metadata) -> i64 {
    meta.modified().map_or(0, |t| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    })
}

fn file_entry(src: &Path, target: &str, meta: &fs::Metadata) -> FileMapping {
    FileMapping {
        src: src.to_path_buf(),
        dest: target.to_owned(),
        size: meta.len(),
        is_empty_dir: false,
        executable: meta.permissions().mode() & 0o111 != 0,
        mtime_us: mtime_us(meta),
        src_id: Some((meta.dev(), meta.ino())),
    }
}

fn dir_entry(src: &Path, target: &str, meta: &fs::Metadata) -> FileMapping {
    FileMapping {
        src: src.to_path_buf(),
        dest: target.to_owned(),
        size: 0,
        is_empty_dir: true,
        executable: false,
        mtime_us: mtime_us(meta),
        src_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_scans_like_scp_r() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("sub/empty")).unwrap();
        fs::write(src.join("a.txt"), b"hello").unwrap();
        fs::write(src.join("sub/b.bin"), vec![7u8; 1000]).unwrap();
        std::os::unix::fs::symlink("/etc", src.join("etc-link")).unwrap();
        let files = scan(&[(src.clone(), "dst".into())], None, |_, _| {}).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.dest.as_str()).collect();
        assert_eq!(names, ["dst/a.txt", "dst/sub/b.bin", "dst/sub/empty"]);
        assert_eq!(files[1].size, 1000);
        assert!(files[2].is_empty_dir);
        let m = engine_manifest(&files).unwrap();
        assert_eq!(m.len(), 3);
        assert!(scan(&[(d.path().join("missing"), "x".into())], None, |_, _| {}).is_err());
        assert!(scan(&[(src.join("a.txt"), String::new())], None, |_, _| {}).is_err());
        // Confined to `src`: the link is skipped inside a directory and refused as a source.
        let files = scan(&[(src.clone(), "dst".into())], Some(&src), |_, _| {}).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files.iter().all(|f| f.src_id.is_some() || f.is_empty_dir));
        std::os::unix::fs::symlink(src.join("a.txt"), src.join("a-link")).unwrap();
        let e = scan(&[(src.join("a-link"), "x".into())], Some(&src), |_, _| {}).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(scan(&[(src.join("a-link"), "x".into())], None, |_, _| {}).is_ok());
    }
}
