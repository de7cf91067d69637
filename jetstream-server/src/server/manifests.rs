//! `send.createManifest`: turns source → target mappings into a manifest, in the background,
//! reading the sources with the requesting user's rights.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jetstream_api::params::CreateManifest;
use jetstream_core::manifest::ManifestEntry;
use jetstream_core::Manifest;
use serde_json::Value;

use super::api::{ApiError, Ctx};
use super::commands::owner_of;
use super::objects::{new_id, now_us, FileMapping, ManifestRec};
use super::Server;
use crate::sandbox;

type Reply = Result<(String, Value), ApiError>;

/// `send.createManifest`.
///
/// # Errors
/// Bad parameters or a mapping outside the user's sandbox (checked before anything is read).
pub fn create(ctx: &mut Ctx<'_>, p: CreateManifest) -> Reply {
    let requested: Vec<(String, String)> = p
        .file_mappings
        .into_iter()
        .map(|m| (m.source, m.target))
        .collect();
    let sandbox_root = ctx.server.sandbox_of(ctx.session)?;
    let mut plan = Vec::with_capacity(requested.len());
    for (src, dst) in &requested {
        let target = sandbox::clean_relative(dst)
            .map_err(|e| ApiError(format!("target path {dst:?}: {e}")))?;
        let source = match &sandbox_root {
            Some(root) => {
                let rel = sandbox::clean_relative(src)
                    .map_err(|e| ApiError(format!("source path {src:?}: {e}")))?;
                sandbox::join_under(root, &rel)
            }
            None if Path::new(src).is_absolute() => PathBuf::from(src),
            None => return Err(ApiError(format!("source path {src:?} must be absolute"))),
        };
        plan.push((source, target));
    }
    // No symbolic link is followed below the user's sandbox (or below a token's `path`).
    let confine = match (&ctx.server.args.sandbox_dir, &ctx.session.user) {
        (Some(t), Some(u)) => Some(sandbox::expand_sandbox(t, &u.name, &u.name)?),
        _ => sandbox_root,
    };
    let rec = ManifestRec {
        id: new_id(),
        owner: owner_of(ctx),
        status: "pending".into(),
        error_message: None,
        requested,
        files: Vec::new(),
        creation_time: now_us(),
        user_data: Default::default(),
        built: None,
    };
    let id = rec.id.clone();
    let view = rec.view();
    ctx.server.objects.lock().manifests.insert(id.clone(), rec);
    let server = ctx.server.clone();
    let ids = ctx.session.user.as_ref().and_then(|u| server.user_ids(u));
    std::thread::Builder::new()
        .name("manifest".into())
        .spawn(move || build(&server, &id, plan, confine, ids))
        .map_err(|e| ApiError::internal("starting the manifest builder", e))?;
    Ok(("Manifest requested.".into(), view))
}

fn build(
    server: &Arc<Server>,
    id: &str,
    plan: Vec<(PathBuf, String)>,
    confine: Option<PathBuf>,
    ids: Option<sandbox::UserIds>,
) {
    let outcome = sandbox::run_as_user(ids, move || scan(&plan, confine.as_deref()))
        .map_err(|e| format!("cannot read the sources as the user: {e}"))
        .and_then(|r| r);
    let outcome = outcome.and_then(|files| {
        let manifest = engine_manifest(&files)?;
        Ok((files, manifest))
    });
    let mut objs = server.objects.lock();
    let Some(rec) = objs.manifests.get_mut(id) else {
        return;
    };
    match outcome {
        Ok((files, manifest)) => {
            rec.files = files;
            rec.built = Some(Arc::new(manifest));
            rec.status = "complete".into();
        }
        Err(e) => {
            rec.status = "error".into();
            rec.error_message = Some(e);
        }
    }
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
            walk_dir(src, target, &mut out, confine)?;
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
                crate::debug!(
                    "manifest: skipping symbolic link {} (sandbox)",
                    path.display()
                );
                continue;
            }
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => {
                    crate::debug!("manifest: skipping symbolic link {}", path.display());
                    continue;
                }
            }
        } else {
            lmeta
        };
        if meta.is_dir() {
            let before = out.len();
            walk_dir(&path, &t, out, confine)?;
            if out.len() == before {
                out.push(dir_entry(&path, &t, &meta));
            }
        } else if meta.is_file() {
            out.push(open_file(&path, &t, confine)?);
        } else {
            crate::debug!("manifest: skipping special file {}", path.display());
        }
    }
    Ok(())
}

fn mtime_us(meta: &fs::Metadata) -> i64 {
    meta.modified().map_or(0, super::objects::to_us)
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
        let files = scan(&[(src.clone(), "dst".into())], None).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.dest.as_str()).collect();
        assert_eq!(names, ["dst/a.txt", "dst/sub/b.bin", "dst/sub/empty"]);
        assert_eq!(files[1].size, 1000);
        assert!(files[2].is_empty_dir);
        let m = engine_manifest(&files).unwrap();
        assert_eq!(m.len(), 3);
        assert!(scan(&[(d.path().join("missing"), "x".into())], None).is_err());
        assert!(scan(&[(src.join("a.txt"), String::new())], None).is_err());
        // Confined to `src`: the link is skipped inside a directory and refused as a source.
        let files = scan(&[(src.clone(), "dst".into())], Some(&src)).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files.iter().all(|f| f.src_id.is_some() || f.is_empty_dir));
        std::os::unix::fs::symlink(src.join("a.txt"), src.join("a-link")).unwrap();
        let e = scan(&[(src.join("a-link"), "x".into())], Some(&src)).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(scan(&[(src.join("a-link"), "x".into())], None).is_ok());
    }
}
