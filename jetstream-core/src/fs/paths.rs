//! Traversal-safe destination paths.
//!
//! A manifest path comes from the network, so it is treated as hostile: it is validated
//! ([`validate_relative`]) before anything else, and it is resolved under the destination root
//! ([`resolve`], [`resolve_for_write`]) without ever following a symlink below the root, even
//! one pointing back inside it (simple and obviously safe).
//!
//! Rules for a manifest path: non-empty, `/`-separated, relative (no leading `/`), no empty,
//! `.` or `..` component, no NUL byte, at most [`MAX_PATH_BYTES`] bytes, each component at most
//! [`MAX_COMPONENT_BYTES`] bytes. Backslashes are ordinary characters on Unix and are allowed.
//!
//! [`resolve`] and [`resolve_for_write`] check with `symlink_metadata` one component at a time
//! and return a path: they state the rules (and the fuzz target checks them), but a path
//! resolved again later can be raced by a local user swapping directories. The engine's
//! receive path does not use them: it resolves beneath a directory descriptor with
//! [`super::beneath`] and writes through the descriptors it resolved.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::FsError;

pub use crate::manifest::{validate_relative, MAX_COMPONENT_BYTES, MAX_PATH_BYTES};

/// The error for "an intermediate component exists and is not a directory".
fn not_a_directory(path: PathBuf) -> FsError {
    FsError::Io {
        path,
        kind: io::ErrorKind::Other,
        message: "not a directory".to_owned(),
    }
}

/// Validates `rel` and joins it to `root`, refusing to go through any existing symlink.
///
/// Every component below `root` that exists is inspected with `symlink_metadata`: a symlink
/// (intermediate or final) is refused, and an intermediate component must be a directory.
/// Components that do not exist yet are fine. `root` itself is trusted (it may be a symlink).
///
/// # Errors
/// [`FsError::Escape`] / [`FsError::InvalidPath`] from [`validate_relative`], `Escape` for a
/// symlink, [`FsError::Io`] for a non-directory intermediate or a failed `lstat`.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, FsError> {
    walk(root, rel, false)
}

/// Like [`resolve`], but also creates the missing parent directories, one component at a time.
///
/// The final component itself is not created. `root` must already exist. The directories are
/// created with the calling thread's file-system identity (see [`super::identity`]), so they
/// belong to the user a receive runs as.
///
/// # Errors
/// As [`resolve`], plus [`FsError::Io`] when a directory cannot be created.
pub fn resolve_for_write(root: &Path, rel: &str) -> Result<PathBuf, FsError> {
    walk(root, rel, true)
}

/// What an existing path component turned out to be.
enum Found {
    Missing,
    Directory,
    Other,
}

/// `lstat`s `path`, refusing symlinks.
fn inspect(path: &Path, rel: &str) -> Result<Found, FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FsError::Escape {
            path: rel.to_owned(),
        }),
        Ok(meta) if meta.is_dir() => Ok(Found::Directory),
        Ok(_) => Ok(Found::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Missing),
        Err(e) => Err(FsError::io(path, &e)),
    }
}

fn walk(root: &Path, rel: &str, create: bool) -> Result<PathBuf, FsError> {
    validate_relative(rel)?;
    let mut components = rel.split('/').peekable();
    let mut current = root.to_path_buf();
    // Once a component is missing (and we are not creating), nothing below it can exist.
    let mut missing = false;
    while let Some(component) = components.next() {
        current.push(component);
        let is_last = components.peek().is_none();
        if missing {
            continue;
        }
        match inspect(&current, rel)? {
            Found::Directory => {}
            Found::Other if is_last => {}
            Found::Other => return Err(not_a_directory(current)),
            Found::Missing if is_last => {}
            Found::Missing if !create => missing = true,
            Found::Missing => match std::fs::create_dir(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Someone created it in between: it must be a real directory.
                    match inspect(&current, rel)? {
                        Found::Directory => {}
                        _ => return Err(not_a_directory(current)),
                    }
                }
                Err(e) => return Err(FsError::io(&current, &e)),
            },
        }
    }
    Ok(current)
}

/// Lexically cleans a path given by a person or a client (a transfer's `destinationPath`, a
/// file's target path) into a path relative to a top directory: a leading `/` means "from the
/// top", empty and `.` components are dropped, and `..` removes the previous component.
/// Returns `""` for the top itself. Examples: `/mnt/data/file.txt` → `mnt/data/file.txt`,
/// `a/../b` → `b`. The server applies it below a sandbox; `jscp` to its remote target.
///
/// # Errors
/// [`FsError::Escape`] when a `..` would climb above the top (`../x`, `a/../../b`),
/// [`FsError::InvalidPath`] for a NUL byte.
pub fn clean_relative(path: &str) -> Result<String, FsError> {
    if path.contains('\0') {
        return Err(FsError::InvalidPath {
            path: path.to_owned(),
            reason: "contains a NUL byte",
        });
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(FsError::Escape {
                        path: path.to_owned(),
                    });
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The hidden temporary name a file is written under until it is verified:
/// `<dir>/.<file name>.<tag>.jspart`.
///
/// `tag` is a short hex id of the transfer, so that a resumed transfer finds its own part file.
/// When the decorated name would exceed 255 bytes, the file name is truncated (at a character
/// boundary when it is UTF-8) and a short hash of the full name is added, so that two long names
/// sharing a prefix still get different part files.
pub fn temp_path(final_path: &Path, tag: &str) -> PathBuf {
    let name = final_path
        .file_name()
        .map(OsStrExt::as_bytes)
        .unwrap_or_default();
    let suffix = format!(".{tag}.jspart");
    let mut out = Vec::with_capacity(1 + name.len() + suffix.len());
    out.push(b'.');
    if 1 + name.len() + suffix.len() <= MAX_COMPONENT_BYTES {
        out.extend_from_slice(name);
    } else {
        let hash = blake3::hash(name);
        let marker = format!("~{}", &hash.to_hex()[..16]);
        let budget = MAX_COMPONENT_BYTES.saturating_sub(1 + suffix.len() + marker.len());
        let mut keep = budget.min(name.len());
        if let Ok(s) = std::str::from_utf8(name) {
            while keep > 0 && !s.is_char_boundary(keep) {
                keep -= 1;
            }
        }
        out.extend_from_slice(&name[..keep]);
        out.extend_from_slice(marker.as_bytes());
    }
    out.extend_from_slice(suffix.as_bytes());
    let file = OsString::from_vec(out);
    match final_path.parent() {
        Some(dir) => dir.join(file),
        None => PathBuf::from(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn is_escape(r: &Result<(), FsError>) -> bool {
        matches!(r, Err(FsError::Escape { .. }))
    }

    #[test]
    fn refuses_invalid_and_escaping_paths() {
        let long_component = "x".repeat(256);
        let long_path = vec!["d"; 2049].join("/");
        // (path, expect Escape rather than InvalidPath)
        let cases: Vec<(&str, bool)> = vec![
            ("..", true),
            ("../a", true),
            ("a/..", true),
            ("a/../../b", true),
            ("a/../b", true),
            ("/etc/passwd", true),
            ("/", true),
            ("//a", true),
            ("a//../b", true),
            ("", false),
            ("a//b", false),
            ("./a", false),
            ("a/.", false),
            (".", false),
            ("a/./b", false),
            ("a/", false),
            ("a\0b", false),
            ("\0", false),
            (&long_component, false),
            (&long_path, false),
        ];
        assert!(cases.len() >= 20);
        for (path, escape) in cases {
            let r = validate_relative(path);
            assert!(r.is_err(), "accepted {path:?}");
            assert_eq!(is_escape(&r), escape, "{path:?} gave {r:?}");
            assert!(
                resolve(Path::new("/tmp"), path).is_err(),
                "resolve accepted {path:?}"
            );
        }
    }

    #[test]
    fn accepts_valid_paths() {
        let max_component = "y".repeat(255);
        for path in [
            "a",
            "a/b/c",
            "été/ファイル.txt",
            "name with spaces/and more.txt",
            ".hidden",
            "..hidden",
            "a/...",
            "back\\slash",
            "trailing.",
            &max_component,
        ] {
            validate_relative(path).unwrap_or_else(|e| panic!("{path:?} refused: {e}"));
        }
    }

    #[test]
    fn resolve_joins_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let p = resolve(dir.path(), "été/ファイル.txt").unwrap();
        assert_eq!(p, dir.path().join("été").join("ファイル.txt"));
        // Nothing is created by `resolve`.
        assert!(!dir.path().join("été").exists());
    }

    #[test]
    fn refuses_symlink_directory_pointing_outside() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("link")).unwrap();
        for r in [
            resolve(root.path(), "link/x"),
            resolve_for_write(root.path(), "link/sub/x"),
        ] {
            assert!(matches!(r, Err(FsError::Escape { .. })), "{r:?}");
        }
        assert!(!outside.path().join("sub").exists());
    }

    #[test]
    fn refuses_symlink_inside_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        symlink(root.path().join("real"), root.path().join("alias")).unwrap();
        let r = resolve(root.path(), "alias/x");
        assert!(matches!(r, Err(FsError::Escape { .. })), "{r:?}");
    }

    #[test]
    fn refuses_symlink_final_component() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("target"), b"x").unwrap();
        symlink("/etc/passwd", root.path().join("f")).unwrap();
        symlink(root.path().join("target"), root.path().join("g")).unwrap();
        for rel in ["f", "g"] {
            for r in [
                resolve(root.path(), rel),
                resolve_for_write(root.path(), rel),
            ] {
                assert!(matches!(r, Err(FsError::Escape { .. })), "{rel}: {r:?}");
            }
        }
        // A dangling symlink is refused too.
        symlink(root.path().join("nowhere"), root.path().join("dangling")).unwrap();
        let r = resolve_for_write(root.path(), "dangling");
        assert!(matches!(r, Err(FsError::Escape { .. })), "{r:?}");
    }

    #[test]
    fn refuses_file_used_as_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("file"), b"x").unwrap();
        for r in [
            resolve(root.path(), "file/x"),
            resolve_for_write(root.path(), "file/sub/x"),
        ] {
            match r {
                Err(FsError::Io { kind, message, .. }) => {
                    assert_eq!(kind, io::ErrorKind::Other);
                    assert_eq!(message, "not a directory");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn resolve_for_write_creates_parents_only() {
        let root = tempfile::tempdir().unwrap();
        let p = resolve_for_write(root.path(), "a/b c/ファイル").unwrap();
        assert_eq!(p, root.path().join("a/b c/ファイル"));
        assert!(root.path().join("a/b c").is_dir());
        assert!(!p.exists());
        // Idempotent: existing directories are reused.
        assert_eq!(resolve_for_write(root.path(), "a/b c/ファイル").unwrap(), p);
        assert_eq!(
            resolve_for_write(root.path(), "top").unwrap(),
            root.path().join("top")
        );
    }

    #[test]
    fn temp_path_is_hidden_next_to_final() {
        let p = temp_path(Path::new("/d/sub/file.txt"), "ab12");
        assert_eq!(p, Path::new("/d/sub/.file.txt.ab12.jspart"));
        let p = temp_path(Path::new("file"), "ff");
        assert_eq!(p, Path::new(".file.ff.jspart"));
    }

    #[test]
    fn temp_path_truncates_long_names_uniquely() {
        let a = format!("{}a", "é".repeat(127)); // 255 bytes
        let b = format!("{}b", "é".repeat(127));
        let ta = temp_path(&Path::new("/d").join(&a), "0123456789abcdef");
        let tb = temp_path(&Path::new("/d").join(&b), "0123456789abcdef");
        assert_ne!(ta, tb);
        for t in [&ta, &tb] {
            let name = t.file_name().unwrap();
            assert!(name.len() <= MAX_COMPONENT_BYTES, "{}", name.len());
            let s = name.to_str().expect("truncated at a char boundary");
            assert!(
                s.starts_with(".éé") && s.ends_with(".0123456789abcdef.jspart"),
                "{s}"
            );
        }
        assert_eq!(ta.parent(), Some(Path::new("/d")));
    }
}
