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
//! - [`open_receive_dir`] opens (creating what is missing) the sandbox and
//!   `<sandbox>/<destinationPath>` with directory descriptors, never letting a user's link
//!   make root create or give away anything (see [`open`] for the rules), and returns the
//!   descriptor the engine then writes beneath (it refuses symlinks below that point);
//! - [`run_as_user`] runs a closure with a user's file-system identity, so that a root server
//!   reads and lists files (e.g. to build a manifest) with that user's rights only.
//!
//! Every check is made on an open directory descriptor (`openat` with `O_NOFOLLOW`, or
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` in the engine), never on a path
//! looked at earlier, so a local user swapping directories for links while a transfer runs
//! cannot win a race against them.
//!
//! Paths are handled as UTF-8 strings (they come from JSON); `\` is an ordinary character.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub mod mappings;
pub mod open;
pub mod resources;
pub use open::open_receive_dir;
pub use resources::{Located, Resources, Root};

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
    /// A symbolic link on the way to the sandbox that root will not follow: the link or the
    /// directory holding it is not root's alone.
    UnsafeSymlink {
        /// The full path of the link.
        path: PathBuf,
    },
    /// A directory on the way to (or below) the sandbox is missing and the receiving user may
    /// not create it (root only creates in directories nobody else can change).
    UserCannotCreate {
        /// The directory that could not be created.
        path: PathBuf,
        /// The user's error (usually `PermissionDenied`).
        source: io::Error,
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
            Self::UnsafeSymlink { path } => write!(
                f,
                "{} is a symbolic link the server will not follow to a sandbox (only links \
                 owned by root in a directory only root may write are followed)",
                path.display()
            ),
            Self::UserCannotCreate { path, source } => write!(
                f,
                "{}: cannot be created with the receiving user's rights ({source}); the server \
                 creates sandbox directories as root only in directories only root may write",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::UserCannotCreate { source, .. } => Some(source),
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
    // The rule itself is `jetstream-core`'s (jscp applies it too); here its errors are the
    // sandbox's.
    jetstream_core::fs::paths::clean_relative(path).map_err(|e| match e {
        jetstream_core::fs::FsError::Escape { path } => SandboxError::Escape { path },
        jetstream_core::fs::FsError::InvalidPath { path, reason } => {
            SandboxError::InvalidPath { path, reason }
        }
        // Cleaning is lexical: it reports only the two above.
        _ => SandboxError::InvalidPath {
            path: path.to_owned(),
            reason: "is not a valid path",
        },
    })
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
}
