//! Opening a user's sandbox and `<sandbox>/<destinationPath>` for a receive, as a root server
//! that must not be turned against the system by a user's links (issue 15, items 3 and 4).
//!
//! The walk goes from `/` one component at a time with directory descriptors (`openat` with
//! `O_NOFOLLOW`, [`Dir`]), so every decision is made on what is open, never on a path looked
//! at earlier. Rules, with `cur` the directory reached so far:
//!
//! - `cur` is *root's* when it is owned by root and not writable by group or others: then
//!   nobody but root can change what its entries are;
//! - an existing directory entry is opened (without following) and the walk goes on in it,
//!   whoever owns it (opening has no effect; what happens next is decided on the open
//!   descriptor);
//! - a missing component is created by root (mode 0755, owned by root) only in a directory
//!   that is root's; the *last* component (the sandbox itself) is then given to the user, and
//!   nothing else ever is;
//! - a symbolic link is followed only when the link is owned by root and `cur` is root's (an
//!   administrator's `/home -> /data/home`); its target is walked by the same rules. Any
//!   other link is refused with [`SandboxError::UnsafeSymlink`] naming it;
//! - from the first directory that is not root's and lacks a component (the user's home, a
//!   group-writable share, a world-writable `/tmp`), the rest is done on a thread with the
//!   user's file-system identity ([`run_as_user`]), creating what is missing as the user and
//!   following no link at all (the user's own rights decide: in a directory the user may not
//!   write, the receive is refused with [`SandboxError::UserCannotCreate`]). Root never
//!   creates, chowns or follows anything in a directory someone else can change;
//! - below the sandbox (`destinationPath`), everything is done as the user, no link followed.
//!
//! Without a user identity (the server is not root, or the user is root) the sandbox is the
//! administrator's path and is created and followed like `mkdir -p`; below it no link is
//! followed either.
//!
//! The result is the descriptor of `<sandbox>/<destinationPath>`: the engine writes beneath it
//! ([`jetstream_core::EngineHandle::receive_in`]) and never resolves the path string again.

use std::ffi::OsStr;
use std::fs::Permissions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use jetstream_core::fs::beneath::{Dir, Kind, Stat};
use jetstream_core::fs::FsError;

use super::{clean_relative, run_as_user, SandboxError, UserIds};

/// Most symbolic links followed while walking one sandbox path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Whether only root can change the entries of a directory with these facts.
fn is_roots(st: &Stat) -> bool {
    st.uid == 0 && st.mode & 0o022 == 0
}

fn name_of(c: &OsStr) -> Result<&str, SandboxError> {
    c.to_str().ok_or_else(|| SandboxError::InvalidPath {
        path: c.to_string_lossy().into_owned(),
        reason: "not UTF-8",
    })
}

/// Opens (creating what is missing, by the rules of the module docs) the sandbox `base` and
/// `<base>/<rel>`, and returns the directory descriptor of `<base>/<rel>`.
///
/// `ids` is the user a root server receives for (`None`: the server's own identity, no
/// hand-over). `rel` is cleaned with [`clean_relative`] first.
///
/// # Errors
/// [`SandboxError::UnsafeSymlink`] for a link on the way to the sandbox that root may not
/// follow, [`SandboxError::Symlink`] for a link at or below a directory that is not root's,
/// [`SandboxError::NotADirectory`], [`SandboxError::UserCannotCreate`] for a directory the
/// user may not create (its parent is neither root's nor writable by the user), errors of
/// [`clean_relative`], and [`SandboxError::Io`] for other failures.
pub fn open_receive_dir(
    base: &Path,
    rel: &str,
    ids: Option<&UserIds>,
) -> Result<Dir, SandboxError> {
    let rel = clean_relative(rel)?;
    let sandbox = match ids {
        None => open_as_configured(base)?,
        Some(ids) => open_for_user(base, ids)?,
    };
    if rel.is_empty() {
        return Ok(sandbox);
    }
    run_as_user(ids.cloned(), move || below_as_user(sandbox, &rel))
        .map_err(|e| SandboxError::io(base, e))?
}

/// Without a hand-over: `mkdir -p` of the configured path (links followed, it is the
/// administrator's), then its descriptor.
fn open_as_configured(base: &Path) -> Result<Dir, SandboxError> {
    std::fs::create_dir_all(base).map_err(|e| SandboxError::io(base, e))?;
    let dir = Dir::open(base).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) => SandboxError::NotADirectory {
            path: base.to_path_buf(),
        },
        _ => SandboxError::io(base, e),
    })?;
    Ok(dir)
}

/// The walk of the module docs for a root server receiving for `ids`.
fn open_for_user(base: &Path, ids: &UserIds) -> Result<Dir, SandboxError> {
    // Components still to walk, last first, so that a followed link's target can be put in
    // front of the rest.
    let mut todo: Vec<PathBuf> = Vec::new();
    push_components(&mut todo, base);
    let mut cur = Dir::open(Path::new("/")).map_err(|e| SandboxError::io(Path::new("/"), e))?;
    let mut links = 0;
    while let Some(component) = todo.pop() {
        let name = name_of(component.as_os_str())?;
        if name == ".." {
            // Only from a link target root trusted (see below); `..` itself is no link.
            cur = cur
                .open_parent()
                .map_err(|e| SandboxError::io(cur.path(), e))?;
            continue;
        }
        let path = cur.path().join(name);
        let here = cur.stat().map_err(|e| SandboxError::io(cur.path(), e))?;
        let last = todo.is_empty();
        match cur.open_child(name) {
            Ok(next) => {
                if last {
                    // An existing sandbox is used as it is (its owner is not changed).
                    return Ok(next);
                }
                cur = next;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !is_roots(&here) {
                    todo.push(component);
                    return hand_over(cur, todo, ids);
                }
                let next = create_as_root(&cur, name, &path, last.then_some(ids))?;
                if last {
                    return Ok(next);
                }
                cur = next;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let st = cur.lstat(name).map_err(|e| SandboxError::io(&path, e))?;
                if st.kind != Kind::Symlink {
                    return Err(SandboxError::NotADirectory { path });
                }
                if !(is_roots(&here) && st.uid == 0) {
                    return Err(SandboxError::UnsafeSymlink { path });
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(SandboxError::io(
                        &path,
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = cur
                    .read_link(name)
                    .map_err(|e| SandboxError::io(&path, e))?;
                if target.is_absolute() {
                    cur = Dir::open(Path::new("/"))
                        .map_err(|e| SandboxError::io(Path::new("/"), e))?;
                }
                push_components(&mut todo, &target);
            }
            Err(e) => return Err(SandboxError::io(&path, e)),
        }
    }
    // `base` is `/` itself.
    Ok(cur)
}

/// Pushes the components of `path` on `todo` so that they are popped in order (`/` and `.`
/// dropped; `..` kept, for link targets).
fn push_components(todo: &mut Vec<PathBuf>, path: &Path) {
    let parts: Vec<PathBuf> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// Root creates `name` in `cur` (a directory only root can change): mode 0755, owned by root,
/// or, for the sandbox itself (`owner`), given to the user.
fn create_as_root(
    cur: &Dir,
    name: &str,
    path: &Path,
    owner: Option<&UserIds>,
) -> Result<Dir, SandboxError> {
    match cur.mkdir(name, 0o755) {
        Ok(()) => {}
        // Another receive made it meanwhile (only root can write here): checked below.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SandboxError::io(path, e)),
    }
    let f = cur
        .open_child_readable(name)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => SandboxError::NotADirectory {
                path: path.to_path_buf(),
            },
            _ => SandboxError::io(path, e),
        })?;
    let meta = f.metadata().map_err(|e| SandboxError::io(path, e))?;
    // Exactly 0755 whatever the umask; a directory another root receive made is taken as is.
    if std::os::unix::fs::MetadataExt::uid(&meta) == 0 {
        f.set_permissions(Permissions::from_mode(0o755))
            .map_err(|e| SandboxError::io(path, e))?;
        if let Some(ids) = owner {
            std::os::unix::fs::fchown(&f, Some(ids.uid), Some(ids.gid))
                .map_err(|e| SandboxError::io(path, e))?;
        }
    }
    Dir::from_fd(OwnedFd::from(f), path.to_path_buf()).map_err(|e| SandboxError::io(path, e))
}

/// The rest of the walk (`todo`, last first) from `cur` with the user's identity: missing
/// directories are created as the user, no link is followed.
fn hand_over(cur: Dir, todo: Vec<PathBuf>, ids: &UserIds) -> Result<Dir, SandboxError> {
    let at = cur.path().to_path_buf();
    run_as_user(Some(ids.clone()), move || {
        let mut cur = cur;
        for component in todo.iter().rev() {
            let name = name_of(component.as_os_str())?;
            let path = cur.path().join(name);
            if name == ".." {
                return Err(SandboxError::UnsafeSymlink { path });
            }
            cur = match cur.open_child(name) {
                Ok(next) => next,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match cur.mkdir(name, 0o777) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(source) => return Err(SandboxError::UserCannotCreate { path, source }),
                    }
                    cur.open_child(name)
                        .map_err(|e| child_error(&cur, name, &path, e))?
                }
                Err(e) => return Err(child_error(&cur, name, &path, e)),
            };
        }
        Ok(cur)
    })
    .map_err(|e| SandboxError::io(&at, e))?
}

/// The error for a failed no-follow open of `name` in `cur`.
fn child_error(cur: &Dir, name: &str, path: &Path, e: io::Error) -> SandboxError {
    if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
        match cur.lstat(name) {
            Ok(st) if st.kind == Kind::Symlink => {
                return SandboxError::Symlink {
                    path: path.to_path_buf(),
                }
            }
            Ok(st) if st.kind != Kind::Directory => {
                return SandboxError::NotADirectory {
                    path: path.to_path_buf(),
                }
            }
            _ => {}
        }
    }
    SandboxError::io(path, e)
}

/// `<sandbox>/<rel>`, created as the calling thread's identity, no link followed.
fn below_as_user(sandbox: Dir, rel: &str) -> Result<Dir, SandboxError> {
    sandbox.create_dirs(rel).map_err(|e| match e {
        FsError::Escape { .. } => SandboxError::Symlink {
            path: first_link(&sandbox, rel),
        },
        FsError::Io {
            path,
            kind,
            message,
        } => {
            if message == "not a directory" {
                SandboxError::NotADirectory { path }
            } else if kind == io::ErrorKind::PermissionDenied {
                SandboxError::UserCannotCreate {
                    path,
                    source: io::Error::new(kind, message),
                }
            } else {
                SandboxError::Io {
                    path,
                    source: io::Error::new(kind, message),
                }
            }
        }
        other => SandboxError::Io {
            path: sandbox.path().join(rel),
            source: io::Error::other(other.to_string()),
        },
    })
}

/// The first component of `rel` below `sandbox` that is a symbolic link (for the message
/// only), or the whole path when none is found any more.
fn first_link(sandbox: &Dir, rel: &str) -> PathBuf {
    let mut so_far = String::new();
    for name in rel.split('/').filter(|c| !c.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(name);
        let found = match so_far.rsplit_once('/') {
            Some((parent, last)) => sandbox
                .open_dir(parent)
                .ok()
                .and_then(|d| d.lstat(last).ok()),
            None => sandbox.lstat(name).ok(),
        };
        if found.is_some_and(|st| st.kind == Kind::Symlink) {
            return sandbox.path().join(&so_far);
        }
    }
    sandbox.path().join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{lchown, symlink, MetadataExt};

    const NOBODY: u32 = 65534;

    fn nobody() -> UserIds {
        UserIds {
            uid: NOBODY,
            gid: NOBODY,
            groups: vec![],
        }
    }

    /// A scratch directory root owns with mode 0755 (so that nobody may traverse it), for a
    /// test marked `#[ignore = "needs root: ..."]` (panics when not root).
    fn root_scratch() -> tempfile::TempDir {
        crate::users::test_support::require_root("files owned by other users");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).unwrap();
        tmp
    }

    fn owner_mode(p: &Path) -> (u32, u32, u32) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }

    #[test]
    fn creates_and_returns_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sandbox/alice");
        let got = open_receive_dir(&root, "/repository1/x/../y", None).unwrap();
        assert_eq!(got.path(), root.join("repository1/y"));
        assert!(root.join("repository1/y").is_dir());
        // Idempotent, and "" is the root.
        let again = open_receive_dir(&root, "repository1/y", None).unwrap();
        assert_eq!(again.path(), got.path());
        assert_eq!(open_receive_dir(&root, "", None).unwrap().path(), root);
        let r = open_receive_dir(&root, "../x", None);
        assert!(matches!(r, Err(SandboxError::Escape { .. })), "{r:?}");
    }

    #[test]
    fn refuses_symlinks_below_the_sandbox() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(root.join("inside")).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        symlink(root.join("inside"), root.join("in")).unwrap();
        for rel in ["out", "out/x", "/in/x/y", "in"] {
            let r = open_receive_dir(&root, rel, None);
            let first = rel.trim_start_matches('/').split('/').next().unwrap();
            assert!(
                matches!(&r, Err(SandboxError::Symlink { path }) if *path == root.join(first)),
                "{rel}: {r:?}"
            );
        }
        assert!(!outside.join("x").exists());
        assert!(!root.join("inside/x").exists());
        // Without a hand-over, a symlinked sandbox is the administrator's choice: followed.
        let linked_root = tmp.path().join("linked-root");
        symlink(&root, &linked_root).unwrap();
        open_receive_dir(&linked_root, "inside/z", None).unwrap();
        assert!(root.join("inside/z").is_dir());
    }

    #[test]
    fn refuses_a_file_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/file"), b"x").unwrap();
        for rel in ["a/file", "a/file/b"] {
            let r = open_receive_dir(&root, rel, None);
            assert!(
                matches!(&r, Err(SandboxError::NotADirectory { path }) if *path == root.join("a/file")),
                "{rel}: {r:?}"
            );
        }
        for base in [root.join("a/file"), root.join("a/file/sub")] {
            let r = open_receive_dir(&base, "x", None);
            assert!(
                matches!(
                    r,
                    Err(SandboxError::NotADirectory { .. } | SandboxError::Io { .. })
                ),
                "{r:?}"
            );
        }
    }

    /// Issue 15 item 4: `/srv/js/%u` with `/srv/js` missing gives only the last component to
    /// the user; the ancestors are root's, 0755.
    #[test]
    #[ignore = "needs root: files owned by other users"]
    fn only_the_sandbox_itself_is_given_to_the_user() {
        let tmp = root_scratch();
        let base = tmp.path().join("srv/js/nobody");
        let got = open_receive_dir(&base, "a/b", Some(&nobody())).unwrap();
        assert_eq!(got.path(), base.join("a/b"));
        assert_eq!(owner_mode(&tmp.path().join("srv")), (0, 0, 0o755));
        assert_eq!(owner_mode(&tmp.path().join("srv/js")), (0, 0, 0o755));
        for p in [base.clone(), base.join("a"), base.join("a/b")] {
            let (uid, gid, _) = owner_mode(&p);
            assert_eq!((uid, gid), (NOBODY, NOBODY), "{}", p.display());
        }
        // An existing sandbox keeps its owner.
        let again = open_receive_dir(&base, "", Some(&nobody())).unwrap();
        assert_eq!(again.path(), base);
    }

    /// Issue 15 item 3: a user's link on the way to the sandbox is refused; nothing is made or
    /// given away where it points.
    #[test]
    #[ignore = "needs root: files owned by other users"]
    fn a_users_link_on_the_way_is_refused() {
        let tmp = root_scratch();
        let home = tmp.path().join("home/nobody");
        let outside = tmp.path().join("etc");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        lchown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
        symlink(&outside, home.join("jetstream")).unwrap();
        lchown(home.join("jetstream"), Some(NOBODY), Some(NOBODY)).unwrap();
        let r = open_receive_dir(&home.join("jetstream/incoming"), "", Some(&nobody()));
        assert!(
            matches!(&r, Err(SandboxError::UnsafeSymlink { path }) if *path == home.join("jetstream")),
            "{r:?}"
        );
        assert!(r.unwrap_err().to_string().contains("will not follow"));
        // Even a root-owned link is refused in a directory the user can change.
        std::fs::remove_file(home.join("jetstream")).unwrap();
        symlink(&outside, home.join("jetstream")).unwrap();
        let r = open_receive_dir(&home.join("jetstream/incoming"), "", Some(&nobody()));
        assert!(
            matches!(r, Err(SandboxError::UnsafeSymlink { .. })),
            "{r:?}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(owner_mode(&outside).0, 0);
    }

    /// An administrator's link (`/home -> /data/home`: root's link in a root directory) is
    /// followed, and what is missing below it follows the same rules.
    #[test]
    #[ignore = "needs root: files owned by other users"]
    fn an_administrators_link_is_followed() {
        let tmp = root_scratch();
        let data_home = tmp.path().join("data/home");
        std::fs::create_dir_all(&data_home).unwrap();
        symlink("data/home", tmp.path().join("home")).unwrap();
        let base = tmp.path().join("home/nobody");
        let got = open_receive_dir(&base, "", Some(&nobody())).unwrap();
        assert_eq!(got.stat().unwrap().uid, NOBODY);
        assert_eq!(owner_mode(&data_home.join("nobody")).0, NOBODY);
    }

    /// Below a directory that is not root's alone, the user creates (with their own rights),
    /// or the receive is refused clearly.
    #[test]
    #[ignore = "needs root: files owned by other users"]
    fn in_a_directory_not_roots_the_user_creates_or_is_refused() {
        let tmp = root_scratch();
        let users = tmp.path().join("users");
        std::fs::create_dir(&users).unwrap();
        lchown(&users, Some(NOBODY), Some(NOBODY)).unwrap();
        open_receive_dir(&users.join("x/y"), "z", Some(&nobody())).unwrap();
        for p in ["x", "x/y", "x/y/z"] {
            assert_eq!(owner_mode(&users.join(p)).0, NOBODY, "{p}");
        }
        // Group-writable by a group nobody is not in: root will not create there, and the
        // user may not.
        let team = tmp.path().join("team");
        std::fs::create_dir(&team).unwrap();
        lchown(&team, Some(0), Some(4242)).unwrap();
        std::fs::set_permissions(&team, Permissions::from_mode(0o775)).unwrap();
        let r = open_receive_dir(&team.join("nobody"), "", Some(&nobody()));
        assert!(
            matches!(&r, Err(SandboxError::UserCannotCreate { path, .. }) if *path == team.join("nobody")),
            "{r:?}"
        );
        assert!(!team.join("nobody").exists());
    }
}
