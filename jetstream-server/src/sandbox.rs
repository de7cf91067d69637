//! Sandboxes: where received files land, and acting with a user's file-system rights.
//!
//! A file received by this server is written to
//! `<sandbox or />/<transfer destinationPath>/<file target path>` (reference §6.5, the
//! "Where Do Transfers Go?" table of the primer):
//!
//! | Sandbox       | Destination path | File target path     | Full path                                   |
//! |---------------|------------------|----------------------|---------------------------------------------|
//! | none          | none             | `/mnt/data/file.txt` | `/mnt/data/file.txt`                        |
//! | none          | none             | `file.txt`           | `/file.txt`                                 |
//! | `/storage`    | none             | `/mnt/data/file.txt` | `/storage/mnt/data/file.txt`                |
//! | `/storage`    | `/repository1`   | `/mnt/data/file.txt` | `/storage/repository1/mnt/data/file.txt`    |
//! | `/storage/%u` | none             | `/mnt/data/file.txt` | `/storage/<user>/mnt/data/file.txt`         |
//! | `/storage/%u` | `/repository1`   | `/mnt/data/file.txt` | `/storage/<user>/repository1/mnt/data/file.txt` |
//!
//! The pieces:
//! - [`expand_sandbox`] turns a sandbox template (`--sandbox-dir`, or the `path` of a `File`
//!   sandbox mapping, reference §4.11) into an absolute directory for one user;
//! - [`clean_relative`] is the lexical rule applied to a `destinationPath` and to each file
//!   target path: a leading `/` means "from the top of the sandbox", `..` may not climb above
//!   that top;
//! - [`map_target`] combines the three parts lexically (for reporting and tests);
//! - [`ensure_dir_under`] creates `<sandbox>/<destinationPath>` on disk, refusing symbolic
//!   links below the sandbox, before the engine writes under it (the engine itself refuses
//!   symlinks below that point);
//! - [`run_as_user`] runs a closure with a user's file-system identity, so that a root server
//!   reads and lists files (e.g. to build a manifest) with that user's rights only.
//!
//! The symlink checks are made one component at a time with `lstat`; they protect against a
//! hostile *peer*, not against a local user racing us inside the sandbox (that would need
//! `openat`-style resolution).
//!
//! Paths are handled as UTF-8 strings (they come from JSON); `\` is an ordinary character.

use std::fmt;
use std::io;
use std::os::unix::fs::lchown;
use std::path::{Path, PathBuf};

/// Why a sandbox path could not be computed or prepared.
#[derive(Debug)]
#[non_exhaustive]
pub enum SandboxError {
    /// The sandbox template (or a value substituted into it) is unusable; the text says why.
    BadTemplate(String),
    /// A relative path would climb above the top of the sandbox (`..` too many times).
    Escape {
        /// The path as given.
        path: String,
    },
    /// A path is malformed in a way unrelated to escaping (e.g. it contains a NUL byte).
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file-system operation failed.
    Io {
        /// The path the operation was applied to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A path component exists but is not a directory.
    NotADirectory {
        /// The full path of the offending component.
        path: PathBuf,
    },
    /// A path component below the sandbox is a symbolic link.
    Symlink {
        /// The full path of the offending component.
        path: PathBuf,
    },
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadTemplate(why) => write!(f, "bad sandbox path: {why}"),
            Self::Escape { path } => write!(f, "path {path:?} escapes the sandbox"),
            Self::InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NotADirectory { path } => {
                write!(f, "{} exists and is not a directory", path.display())
            }
            Self::Symlink { path } => write!(
                f,
                "{} is a symbolic link, which is not allowed inside the sandbox",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl SandboxError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The domain part of a user name: before the first `\` (`DOMAIN\user`), else after the last
/// `@` (`user@domain`), else empty (the usual case on Linux).
fn domain_of(user: &str) -> &str {
    if let Some((domain, _)) = user.split_once('\\') {
        domain
    } else if let Some((_, domain)) = user.rsplit_once('@') {
        domain
    } else {
        ""
    }
}

/// Checks a value about to be substituted into a sandbox template: it must not be able to add
/// or remove path levels.
fn check_substitution(what: &str, value: &str, allow_empty: bool) -> Result<(), SandboxError> {
    let bad = |why: &str| Err(SandboxError::BadTemplate(format!("{what} {value:?} {why}")));
    if value.is_empty() && !allow_empty {
        return bad("is empty");
    }
    if value.contains('/') {
        return bad("contains '/'");
    }
    if value.contains('\0') {
        return bad("contains a NUL byte");
    }
    if value == "." || value == ".." {
        return bad("is not a valid directory name");
    }
    Ok(())
}

/// Expands a sandbox template for one user and normalizes it lexically.
///
/// Placeholders (reference §4.11): `%u` the user name, `%d` the domain (the part before `\`
/// or after `@` in the user name, usually empty on Linux), `%f` the full user name (given by
/// the caller), `%%` a literal `%`. Empty and `.` components are dropped, so `/storage/%d/%u`
/// with an empty domain gives `/storage/<user>`.
///
/// # Errors
/// [`SandboxError::BadTemplate`] for an unknown `%x` placeholder or a trailing `%`, a `..`
/// component or NUL byte in the template (or in its expansion), a result that is not absolute,
/// or a substituted value that contains `/`, is `.` / `..`, or is empty (the domain may be).
/// A user name containing `/` or NUL, or equal to `.` / `..`, is refused even when the template
/// does not use it.
pub fn expand_sandbox(
    template: &str,
    user: &str,
    full_name: &str,
) -> Result<PathBuf, SandboxError> {
    if template.split('/').any(|c| c == "..") {
        return Err(SandboxError::BadTemplate(format!(
            "{template:?} contains a `..` component"
        )));
    }
    // A user name that could add or remove path levels is refused whatever the template: it
    // is never legitimate, and `%d` is derived from it.
    check_substitution("user name", user, true)?;
    let mut out = String::with_capacity(template.len() + user.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('u') => {
                check_substitution("user name", user, false)?;
                out.push_str(user);
            }
            Some('d') => {
                let domain = domain_of(user);
                check_substitution("domain", domain, true)?;
                out.push_str(domain);
            }
            Some('f') => {
                check_substitution("full user name", full_name, false)?;
                out.push_str(full_name);
            }
            Some(other) => {
                return Err(SandboxError::BadTemplate(format!(
                    "{template:?} contains the unknown placeholder %{other} \
                     (known: %u, %d, %f, %%)"
                )))
            }
            None => {
                return Err(SandboxError::BadTemplate(format!(
                    "{template:?} ends with a lone '%' (write %% for a literal '%')"
                )))
            }
        }
    }
    if out.contains('\0') {
        return Err(SandboxError::BadTemplate(format!(
            "{template:?} contains a NUL byte"
        )));
    }
    if !out.starts_with('/') {
        return Err(SandboxError::BadTemplate(format!(
            "{template:?} is not an absolute path"
        )));
    }
    // Substitutions cannot contain `/`, but they can glue onto literal text (`.%u` with the
    // user `.`), so check the expansion's components again.
    let mut normalized = String::with_capacity(out.len());
    for component in out.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return Err(SandboxError::BadTemplate(format!(
                    "{template:?} expands to {out:?}, which contains a `..` component"
                )))
            }
            c => {
                normalized.push('/');
                normalized.push_str(c);
            }
        }
    }
    if normalized.is_empty() {
        normalized.push('/');
    }
    Ok(PathBuf::from(normalized))
}

/// Lexically cleans a `destinationPath` or a file target path into a path relative to the top
/// of the sandbox.
///
/// A leading `/` is stripped (an absolute path means "from the top of the sandbox"), empty and
/// `.` components are dropped, and `..` removes the previous component. Returns `""` for the
/// top itself. Examples: `/mnt/data/file.txt` → `mnt/data/file.txt`, `a/../b` → `b`.
///
/// # Errors
/// [`SandboxError::Escape`] when a `..` would climb above the top (`../x`, `a/../../b`),
/// [`SandboxError::InvalidPath`] for a NUL byte.
pub fn clean_relative(path: &str) -> Result<String, SandboxError> {
    if path.contains('\0') {
        return Err(SandboxError::InvalidPath {
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
                    return Err(SandboxError::Escape {
                        path: path.to_owned(),
                    });
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Joins a clean relative path (from [`clean_relative`]) under `root`; `""` gives `root`.
///
/// Leading `/`s are stripped defensively so that the result is always below `root` for a
/// clean path (`Path::join` with an absolute path would replace `root`).
pub fn join_under(root: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// The full path of a received file, purely lexically: `<sandbox or />`, then
/// `clean(destination_path)`, then `clean(target)` (the path table of the module docs).
///
/// The two relative parts are cleaned separately, so a `..` in `target` cannot climb into or
/// above `destination_path`. Nothing on disk is looked at.
///
/// # Errors
/// As [`clean_relative`], for either part.
pub fn map_target(
    sandbox: Option<&Path>,
    destination_path: &str,
    target: &str,
) -> Result<PathBuf, SandboxError> {
    let dest = clean_relative(destination_path)?;
    let target = clean_relative(target)?;
    let base = join_under(sandbox.unwrap_or_else(|| Path::new("/")), &dest);
    Ok(join_under(&base, &target))
}

/// Gives `path` to `owner` when one is set.
fn give(path: &Path, owner: Option<(u32, u32)>) -> Result<(), SandboxError> {
    match owner {
        Some((uid, gid)) => {
            lchown(path, Some(uid), Some(gid)).map_err(|e| SandboxError::io(path, e))
        }
        None => Ok(()),
    }
}

/// Creates the directory `path` (whose parent exists) unless it already is one; a created
/// directory is given to `owner`. `symlinks_refused` says whether a symlink at `path` is an
/// error (below the sandbox) or is followed (the sandbox itself and its ancestors).
fn make_dir(
    path: &Path,
    owner: Option<(u32, u32)>,
    symlinks_refused: bool,
) -> Result<(), SandboxError> {
    let inspect = |path: &Path| -> Result<Option<bool>, SandboxError> {
        let meta = if symlinks_refused {
            std::fs::symlink_metadata(path)
        } else {
            std::fs::metadata(path)
        };
        match meta {
            Ok(m) if m.file_type().is_symlink() => Err(SandboxError::Symlink {
                path: path.to_path_buf(),
            }),
            Ok(m) => Ok(Some(m.is_dir())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SandboxError::io(path, e)),
        }
    };
    let not_a_dir = || SandboxError::NotADirectory {
        path: path.to_path_buf(),
    };
    match inspect(path)? {
        Some(true) => return Ok(()),
        Some(false) => return Err(not_a_dir()),
        None => {}
    }
    match std::fs::create_dir(path) {
        Ok(()) => give(path, owner),
        // Lost a race with another creator: accept it only if it is now a real directory.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match inspect(path)? {
            Some(true) => Ok(()),
            _ => Err(not_a_dir()),
        },
        Err(e) => Err(SandboxError::io(path, e)),
    }
}

/// Creates `root` and then `root/<rel>`, one component at a time, and returns the full path.
///
/// This is how the receiving server prepares `<sandbox>/<destinationPath>` before the engine
/// writes under it. `rel` is cleaned with [`clean_relative`] first (idempotent for a clean
/// path). `root` and its ancestors are created like `create_dir_all` (following symlinks: the
/// sandbox is configured by the administrator). Below `root`, a component that is a symbolic
/// link is refused, even one pointing back inside the sandbox, and so is one that exists but is
/// not a directory. Every directory this call creates (for `root` too) is given to `owner`
/// (uid, gid) when one is set; existing ones are left alone.
///
/// # Errors
/// [`SandboxError::Symlink`], [`SandboxError::NotADirectory`] as above, errors of
/// [`clean_relative`], and [`SandboxError::Io`] when a directory cannot be created, inspected
/// or given away.
pub fn ensure_dir_under(
    root: &Path,
    rel: &str,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf, SandboxError> {
    let rel = clean_relative(rel)?;
    // The missing ancestors of `root` (and `root` itself), deepest first.
    let mut missing: Vec<&Path> = Vec::new();
    for ancestor in root.ancestors() {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(ancestor) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(ancestor),
            Err(e) => return Err(SandboxError::io(ancestor, e)),
        }
    }
    for dir in missing.iter().rev() {
        make_dir(dir, owner, false)?;
    }
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SandboxError::NotADirectory {
                path: root.to_path_buf(),
            })
        }
        Err(e) => return Err(SandboxError::io(root, e)),
    }
    let mut path = root.to_path_buf();
    for component in rel.split('/').filter(|c| !c.is_empty()) {
        path.push(component);
        make_dir(&path, owner, true)?;
    }
    Ok(path)
}

/// The identity a [`run_as_user`] thread takes for file-system access (uid, gid,
/// supplementary groups): the engine's, shared with the receive path.
pub use jetstream_core::fs::identity::FsIdentity as UserIds;

/// Runs a closure with a user's file-system identity (a fresh thread switched with per-thread
/// `setgroups`/`setfsgid`/`setfsuid`), or inline for `None`: how a server running as root
/// reads and lists files (e.g. to build a manifest) with that user's rights only. The
/// engine's, shared with the receive path; tested there.
pub use jetstream_core::fs::identity::run_as_user;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    /// Whether this process can give files away (root with CAP_CHOWN): the ownership tests
    /// need it and are skipped (with a message) otherwise.
    fn can_chown(dir: &Path) -> bool {
        let probe = dir.join("chown-probe");
        let ok = std::fs::write(&probe, b"").is_ok()
            && std::fs::metadata(&probe).is_ok_and(|m| m.uid() == 0)
            && lchown(&probe, Some(NOBODY), Some(NOBODY)).is_ok();
        let _ = std::fs::remove_file(&probe);
        if !ok {
            eprintln!("skipped: needs root with CAP_CHOWN");
        }
        ok
    }

    const NOBODY: u32 = 65534;

    #[test]
    fn maps_the_seed_table() {
        let user_sandbox = expand_sandbox("/storage/%u", "alice", "alice").unwrap();
        let storage = Path::new("/storage");
        let rows: [(Option<&Path>, &str, &str, &str); 6] = [
            (None, "", "/mnt/data/file.txt", "/mnt/data/file.txt"),
            (None, "", "file.txt", "/file.txt"),
            (
                Some(storage),
                "",
                "/mnt/data/file.txt",
                "/storage/mnt/data/file.txt",
            ),
            (
                Some(storage),
                "/repository1",
                "/mnt/data/file.txt",
                "/storage/repository1/mnt/data/file.txt",
            ),
            (
                Some(&user_sandbox),
                "",
                "/mnt/data/file.txt",
                "/storage/alice/mnt/data/file.txt",
            ),
            // The seed's table prints `/storage/<username>/repository/mnt/data/file.txt` for this
            // row: a typo in the seed (the destination path is `/repository1`, and reference
            // §6.5 gives `/storage/<user>/repository1/mnt/data/file.txt`).
            (
                Some(&user_sandbox),
                "/repository1",
                "/mnt/data/file.txt",
                "/storage/alice/repository1/mnt/data/file.txt",
            ),
        ];
        for (sandbox, dest, target, expected) in rows {
            let got = map_target(sandbox, dest, target).unwrap();
            assert_eq!(got, Path::new(expected), "{sandbox:?} {dest:?} {target:?}");
        }
    }

    #[test]
    fn maps_the_primer_examples() {
        // jscp /source/my_file host:/target/my_file, with and without a sandbox and `-d`.
        let storage = Path::new("/storage");
        assert_eq!(
            map_target(None, "", "/target/my_file").unwrap(),
            Path::new("/target/my_file")
        );
        assert_eq!(
            map_target(Some(storage), "", "/target/my_file").unwrap(),
            Path::new("/storage/target/my_file")
        );
        assert_eq!(
            map_target(Some(storage), "/project", "/target/my_file").unwrap(),
            Path::new("/storage/project/target/my_file")
        );
        assert_eq!(
            map_target(None, "/project", "/target/my_file").unwrap(),
            Path::new("/project/target/my_file")
        );
    }

    #[test]
    fn map_target_keeps_parts_apart() {
        let storage = Path::new("/storage");
        // A `..` in the target cannot climb into the destination path, nor above the sandbox.
        let r = map_target(Some(storage), "/project", "../x");
        assert!(
            matches!(&r, Err(SandboxError::Escape { path }) if path == "../x"),
            "{r:?}"
        );
        let r = map_target(Some(storage), "a/../..", "x");
        assert!(matches!(r, Err(SandboxError::Escape { .. })), "{r:?}");
        assert_eq!(
            map_target(Some(storage), "p/q/..", "a/./b/../c").unwrap(),
            Path::new("/storage/p/a/c")
        );
        assert_eq!(map_target(Some(storage), "/", "/").unwrap(), storage);
    }

    #[test]
    fn cleans_relative_paths() {
        // (input, Some(clean) or None for Escape)
        let cases: &[(&str, Option<&str>)] = &[
            ("/mnt/data/file.txt", Some("mnt/data/file.txt")),
            ("file.txt", Some("file.txt")),
            ("a/../b", Some("b")),
            ("../x", None),
            ("..", None),
            ("/..", None),
            ("a/../../b", None),
            ("a/b/../../..", None),
            ("./a//b/", Some("a/b")),
            ("/", Some("")),
            ("", Some("")),
            (".", Some("")),
            ("//a///b//", Some("a/b")),
            ("a/b/..", Some("a")),
            ("a/b/../..", Some("")),
            ("a/./././b", Some("a/b")),
            ("données/été/ファイル.txt", Some("données/été/ファイル.txt")),
            ("/..a/b..", Some("..a/b..")),
            ("...", Some("...")),
            ("a\\..\\b", Some("a\\..\\b")),
            (" /x", Some(" /x")),
        ];
        for &(input, expected) in cases {
            match (clean_relative(input), expected) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{input:?}"),
                (Err(SandboxError::Escape { path }), None) => assert_eq!(path, input),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn clean_relative_refuses_nul() {
        let r = clean_relative("a/b\0c");
        assert!(matches!(r, Err(SandboxError::InvalidPath { .. })), "{r:?}");
    }

    #[test]
    fn clean_relative_is_idempotent() {
        for input in ["/a/./b/../c//d", "x", "", "a/b/c/../../d"] {
            let once = clean_relative(input).unwrap();
            assert_eq!(clean_relative(&once).unwrap(), once);
        }
    }

    #[test]
    fn escape_message_says_so() {
        let err = clean_relative("../etc/passwd").unwrap_err();
        assert_eq!(
            err.to_string(),
            "path \"../etc/passwd\" escapes the sandbox"
        );
        let err = SandboxError::Symlink {
            path: PathBuf::from("/s/a"),
        };
        assert!(err.to_string().contains("/s/a"), "{err}");
    }

    #[test]
    fn join_under_root_and_relative() {
        let root = Path::new("/storage");
        assert_eq!(join_under(root, ""), root);
        assert_eq!(join_under(root, "a/b"), Path::new("/storage/a/b"));
        // Defensive: even an unclean absolute path stays below the root.
        assert_eq!(join_under(root, "/a"), Path::new("/storage/a"));
    }

    #[test]
    fn expands_placeholders() {
        let ok = |t: &str, u: &str, f: &str| expand_sandbox(t, u, f).unwrap();
        assert_eq!(
            ok("/storage/%u", "alice", "Alice"),
            Path::new("/storage/alice")
        );
        assert_eq!(
            ok("/storage/%f", "alice", "Alice"),
            Path::new("/storage/Alice")
        );
        assert_eq!(
            ok("/s/%d/%u", "alice@corp", "x"),
            Path::new("/s/corp/alice@corp")
        );
        assert_eq!(ok("/s/%d/x", "CORP\\alice", "x"), Path::new("/s/CORP/x"));
        // No domain on Linux: the empty component disappears.
        assert_eq!(ok("/s/%d/%u", "alice", "alice"), Path::new("/s/alice"));
        assert_eq!(ok("/s/100%%/%u", "bob", "bob"), Path::new("/s/100%/bob"));
        assert_eq!(ok("/s/%%u", "bob", "bob"), Path::new("/s/%u"));
        assert_eq!(ok("//s/./x//", "bob", "bob"), Path::new("/s/x"));
        assert_eq!(ok("/", "bob", "bob"), Path::new("/"));
        assert_eq!(ok("/data", "", ""), Path::new("/data"));
        assert_eq!(ok("/h/%u", "ユーザー", "x"), Path::new("/h/ユーザー"));
    }

    #[test]
    fn refuses_bad_templates() {
        let bad = [
            ("/storage/%x", "alice", "alice"),
            ("/storage/%", "alice", "alice"),
            ("/storage/%U", "alice", "alice"),
            ("/storage/../etc", "alice", "alice"),
            ("..", "alice", "alice"),
            ("/storage/%u/..", "alice", "alice"),
            ("storage/%u", "alice", "alice"),
            ("%u", "alice", "alice"),
            ("/storage/%u", "a/b", "alice"),
            ("/storage/%u", "../etc", "alice"),
            ("/storage/%u", "..", "alice"),
            ("/storage/%u", ".", "alice"),
            ("/storage/%u", "", "alice"),
            ("/storage/%u", "a\0b", "alice"),
            ("/storage/%f", "alice", "x/y"),
            ("/storage/%f", "alice", ""),
            ("/storage/%d", "alice@..", "alice"),
            ("/storage/%d", "a/b@c", "alice"),
            ("/data", "../x", "alice"),
            // The substitution glues onto literal text and forms `..`.
            ("/storage/.%u", ".", "alice"),
            ("/storage/%u.", ".", "alice"),
            ("/storage/\0", "alice", "alice"),
        ];
        for (template, user, full) in bad {
            let r = expand_sandbox(template, user, full);
            assert!(
                matches!(r, Err(SandboxError::BadTemplate(_))),
                "{template:?} {user:?} {full:?}: {r:?}"
            );
        }
        // A `..` inside a component name is an ordinary name.
        assert_eq!(
            expand_sandbox("/s/a..b", "u", "u").unwrap(),
            Path::new("/s/a..b")
        );
    }

    #[test]
    fn ensure_dir_creates_and_returns_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sandbox/alice");
        let got = ensure_dir_under(&root, "/repository1/x/../y", None).unwrap();
        assert_eq!(got, root.join("repository1/y"));
        assert!(got.is_dir());
        // Idempotent, and "" is the root.
        assert_eq!(ensure_dir_under(&root, "repository1/y", None).unwrap(), got);
        assert_eq!(ensure_dir_under(&root, "", None).unwrap(), root);
        let r = ensure_dir_under(&root, "../x", None);
        assert!(matches!(r, Err(SandboxError::Escape { .. })), "{r:?}");
    }

    #[test]
    fn ensure_dir_gives_created_dirs_to_owner() {
        let tmp = tempfile::tempdir().unwrap();
        if !can_chown(tmp.path()) {
            return;
        }
        std::fs::create_dir(tmp.path().join("existing")).unwrap();
        let root = tmp.path().join("existing/sandbox");
        let got = ensure_dir_under(&root, "a/b", Some((NOBODY, NOBODY))).unwrap();
        for dir in [root.clone(), root.join("a"), got] {
            let meta = std::fs::symlink_metadata(&dir).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (NOBODY, NOBODY),
                "{}",
                dir.display()
            );
        }
        // Directories that already existed keep their owner.
        let meta = std::fs::metadata(tmp.path().join("existing")).unwrap();
        assert_eq!(meta.uid(), 0);
        let meta = std::fs::metadata(tmp.path()).unwrap();
        assert_eq!(meta.uid(), 0);
    }

    #[test]
    fn ensure_dir_refuses_symlinks_below_root() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(root.join("inside")).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        symlink(root.join("inside"), root.join("in")).unwrap();
        for rel in ["out", "out/x", "/in/x/y", "in"] {
            let r = ensure_dir_under(&root, rel, None);
            let first = rel.trim_start_matches('/').split('/').next().unwrap();
            assert!(
                matches!(&r, Err(SandboxError::Symlink { path }) if *path == root.join(first)),
                "{rel}: {r:?}"
            );
        }
        assert!(!outside.join("x").exists());
        assert!(!root.join("inside/x").exists());
        // A symlinked sandbox root itself is the administrator's choice and is followed.
        let linked_root = tmp.path().join("linked-root");
        symlink(&root, &linked_root).unwrap();
        let got = ensure_dir_under(&linked_root, "inside/z", None).unwrap();
        assert!(root.join("inside/z").is_dir(), "{}", got.display());
    }

    #[test]
    fn ensure_dir_refuses_a_file_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/file"), b"x").unwrap();
        for rel in ["a/file", "a/file/b"] {
            let r = ensure_dir_under(&root, rel, None);
            assert!(
                matches!(&r, Err(SandboxError::NotADirectory { path }) if *path == root.join("a/file")),
                "{rel}: {r:?}"
            );
        }
        // A file as the root (or in its ancestry) too.
        let r = ensure_dir_under(&root.join("a/file"), "x", None);
        assert!(
            matches!(
                r,
                Err(SandboxError::NotADirectory { .. }) | Err(SandboxError::Io { .. })
            ),
            "{r:?}"
        );
        let r = ensure_dir_under(&root.join("a/file/sub"), "x", None);
        assert!(
            matches!(
                r,
                Err(SandboxError::NotADirectory { .. }) | Err(SandboxError::Io { .. })
            ),
            "{r:?}"
        );
    }
}
