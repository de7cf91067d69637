//! The file operations of the files API, below a directory descriptor (the top of the
//! caller's sandbox), with the calling thread's file-system identity (the user's: the caller
//! runs them in [`crate::sandbox::run_as_user`]).
//!
//! Every path is walked from the top one component at a time with `openat(O_NOFOLLOW)`
//! ([`Dir::open_child`]): a symbolic link anywhere on the way is refused
//! ([`Problem::Symlink`]), `..` never reaches here (paths are cleaned first, and a component
//! of `.` or `..` is refused by [`Dir`]). The operations are made on the descriptor of the
//! entry's own parent (`fstatat(AT_SYMLINK_NOFOLLOW)`, `mkdirat`, `renameat2`, `unlinkat`),
//! so that nothing a user swaps in meanwhile can send them outside the top. A removal or a
//! measurement that meets another file system (a mount point) does not enter it.

use std::ffi::OsStr;
use std::fmt;
use std::io;

use jetstream_core::fs::beneath::{Dir, Kind, Stat};

/// Most directory levels `rm` and `du` go down (each level holds a descriptor open).
pub(crate) const MAX_DEPTH: usize = 256;

/// Most entries one `ls` answers with.
pub(crate) const MAX_LISTED: usize = 100_000;

/// What went wrong, and on which path (relative to the top, `""` for the top itself).
#[derive(Debug)]
pub(crate) struct TreeError {
    pub(crate) rel: String,
    pub(crate) problem: Problem,
}

/// Why a files command failed.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Something is already there.
    AlreadyExists,
    /// A move between two file systems (the files API does not copy).
    CrossDevice,
    /// A directory moved into itself.
    IntoItself,
    /// Another failure of the system.
    Io(io::Error),
    /// A directory on another file system, which `rm` does not enter.
    MountPoint,
    /// A path component is not a directory.
    NotADirectory,
    /// Nothing is there.
    NotFound,
    /// The user's rights do not allow it.
    PermissionDenied,
    /// A symbolic link on the way, which is never followed.
    Symlink,
    /// The operation would remove or replace the top of the sandbox.
    Top,
    /// Deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl Problem {
    fn of(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOTDIR) => return Self::NotADirectory,
            Some(libc::ELOOP) => return Self::Symlink,
            Some(libc::EXDEV) => return Self::CrossDevice,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::NotFound => Self::NotFound,
            io::ErrorKind::PermissionDenied => Self::PermissionDenied,
            io::ErrorKind::AlreadyExists => Self::AlreadyExists,
            _ => Self::Io(e),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyExists => f.write_str("already exists"),
            Self::CrossDevice => {
                f.write_str("is on another file system than the destination (not copied)")
            }
            Self::IntoItself => f.write_str("a directory cannot be moved into itself"),
            Self::Io(e) => write!(f, "{e}"),
            Self::MountPoint => f.write_str("is another file system (a mount point): not entered"),
            Self::NotADirectory => {
                f.write_str("is not a directory (or a component on the way is not)")
            }
            Self::NotFound => f.write_str("does not exist"),
            Self::PermissionDenied => f.write_str("permission denied (the user's rights)"),
            Self::Symlink => f.write_str("is a symbolic link, which is never followed"),
            Self::Top => f.write_str("is the top of the sandbox, which cannot be removed or moved"),
            Self::TooDeep => write!(f, "is more than {MAX_DEPTH} directory levels deep"),
        }
    }
}

fn err(rel: &str, e: io::Error) -> TreeError {
    at(rel, Problem::of(e))
}

fn at(rel: &str, problem: Problem) -> TreeError {
    TreeError {
        rel: rel.to_owned(),
        problem,
    }
}

/// One entry, as found (not followed).
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its name.
    pub(crate) name: String,
    /// Its path from the top.
    pub(crate) rel: String,
    /// Its facts.
    pub(crate) stat: Stat,
    /// A link's target, as written.
    pub(crate) link_target: Option<String>,
}

/// `rel/name` (`name` at the top).
fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// The parent and name of a clean relative path; `None` for the top (`""`).
fn split(rel: &str) -> Option<(&str, &str)> {
    if rel.is_empty() {
        return None;
    }
    Some(rel.rsplit_once('/').unwrap_or(("", rel)))
}

/// The error for a failed no-follow open of `name` in `dir` (`rel` its path).
fn classify(dir: &Dir, name: &str, rel: &str, e: io::Error) -> TreeError {
    let problem = match e.raw_os_error() {
        Some(libc::ELOOP | libc::ENOTDIR) => match dir.lstat(name) {
            Ok(st) if st.kind == Kind::Symlink => Problem::Symlink,
            Ok(st) if st.kind != Kind::Directory => Problem::NotADirectory,
            _ => Problem::of(e),
        },
        _ => Problem::of(e),
    };
    at(rel, problem)
}

/// Opens the directory `rel` below `top`, one component at a time, never following a link;
/// with `create`, makes the missing ones (`mkdirat`, mode 0777 less the umask).
fn open_dir(top: &Dir, rel: &str, create: bool) -> Result<Dir, TreeError> {
    let mut cur = top.try_clone().map_err(|e| err("", e))?;
    let mut so_far = String::new();
    for name in rel.split('/').filter(|c| !c.is_empty()) {
        so_far = join(&so_far, name);
        cur = match cur.open_child(name) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                match cur.mkdir(name, 0o777) {
                    Ok(()) => {}
                    // Made meanwhile: what is there is checked by the open.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(err(&so_far, e)),
                }
                cur.open_child(name)
                    .map_err(|e| classify(&cur, name, &so_far, e))?
            }
            Err(e) => return Err(classify(&cur, name, &so_far, e)),
        };
    }
    Ok(cur)
}

/// The entry `name` of `dir` (`rel` its path).
fn entry(dir: &Dir, name: &str, rel: &str) -> io::Result<Entry> {
    let stat = dir.lstat(name)?;
    let link_target = (stat.kind == Kind::Symlink)
        .then(|| dir.read_link(name).ok())
        .flatten()
        .map(|t| t.to_string_lossy().into_owned());
    Ok(Entry {
        name: name.to_owned(),
        rel: rel.to_owned(),
        stat,
        link_target,
    })
}

/// The entries of the directory `rel`, sorted by name, at most `cap`; also how many were
/// left out (names that are not UTF-8, and those past the cap).
///
/// DoS/unbounded work: every name of the directory is read and sorted; only the first `cap`
/// are looked at further.
pub(crate) fn list(top: &Dir, rel: &str, cap: usize) -> Result<(Vec<Entry>, u64), TreeError> {
    let dir = open_dir(top, rel, false)?;
    let names = dir.entries().map_err(|e| err(rel, e))?;
    let mut skipped = 0u64;
    let mut names: Vec<String> = names
        .into_iter()
        .filter_map(|n| match n.into_string() {
            Ok(s) => Some(s),
            Err(_) => {
                skipped += 1;
                None
            }
        })
        .collect();
    names.sort_unstable();
    if names.len() > cap {
        skipped += (names.len() - cap) as u64;
        names.truncate(cap);
    }
    let entries = names
        .iter()
        // An entry removed since the directory was read is not listed.
        .filter_map(|name| entry(&dir, name, &join(rel, name)).ok())
        .collect();
    Ok((entries, skipped))
}

/// Makes the directory `rel` and its missing parents; `rel` itself must not exist.
pub(crate) fn mkdir(top: &Dir, rel: &str) -> Result<Entry, TreeError> {
    let Some((parent, name)) = split(rel) else {
        return Err(at(rel, Problem::AlreadyExists));
    };
    let dir = open_dir(top, parent, true)?;
    dir.mkdir(name, 0o777).map_err(|e| err(rel, e))?;
    entry(&dir, name, rel).map_err(|e| err(rel, e))
}

/// Moves `src` to `dst` (its new path), replacing nothing.
pub(crate) fn mv(top: &Dir, src: &str, dst: &str) -> Result<Entry, TreeError> {
    let Some((src_parent, src_name)) = split(src) else {
        return Err(at(src, Problem::Top));
    };
    let Some((dst_parent, dst_name)) = split(dst) else {
        return Err(at(dst, Problem::Top));
    };
    // Clean paths and no link followed: lexical containment is containment.
    if dst.starts_with(&format!("{src}/")) {
        return Err(at(src, Problem::IntoItself));
    }
    let from = open_dir(top, src_parent, false)?;
    from.lstat(src_name).map_err(|e| err(src, e))?;
    let to = open_dir(top, dst_parent, false)?;
    from.move_to(src_name, &to, dst_name)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST | libc::ENOTEMPTY) => at(dst, Problem::AlreadyExists),
            Some(libc::EINVAL) => at(src, Problem::IntoItself),
            _ => err(src, e),
        })?;
    entry(&to, dst_name, dst).map_err(|e| err(dst, e))
}

/// What `rm` removed.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) files: u64,
    pub(crate) dirs: u64,
}

/// Removes `rel`: a file or link (not followed), or a directory with everything in it.
/// Stops at the first failure (what was removed before stays removed).
pub(crate) fn rm(top: &Dir, rel: &str) -> Result<Removed, TreeError> {
    let Some((parent, name)) = split(rel) else {
        return Err(at(rel, Problem::Top));
    };
    let dir = open_dir(top, parent, false)?;
    let st = dir.lstat(name).map_err(|e| err(rel, e))?;
    let mut removed = Removed::default();
    if st.kind == Kind::Directory {
        let dev = dir.stat().map_err(|e| err(parent, e))?.dev;
        remove_tree(&dir, OsStr::new(name), rel, dev, 0, &mut removed)?;
    } else {
        dir.remove_file(name).map_err(|e| err(rel, e))?;
        removed.files += 1;
    }
    Ok(removed)
}

/// Removes the directory `name` of `parent` (on device `parent_dev`) and what it holds.
fn remove_tree(
    parent: &Dir,
    name: &OsStr,
    rel: &str,
    parent_dev: u64,
    depth: usize,
    removed: &mut Removed,
) -> Result<(), TreeError> {
    if depth >= MAX_DEPTH {
        return Err(at(rel, Problem::TooDeep));
    }
    let dir = match parent.open_child(name) {
        Ok(d) => d,
        // Swapped for a link or a file meanwhile: that is removed, not followed.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            parent.remove_file(name).map_err(|e| err(rel, e))?;
            removed.files += 1;
            return Ok(());
        }
        Err(e) => return Err(err(rel, e)),
    };
    let dev = dir.stat().map_err(|e| err(rel, e))?.dev;
    if dev != parent_dev {
        return Err(at(rel, Problem::MountPoint));
    }
    for child in dir.entries().map_err(|e| err(rel, e))? {
        let child_rel = join(rel, &child.to_string_lossy());
        let st = match dir.lstat(&child) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(&child_rel, e)),
        };
        if st.kind == Kind::Directory {
            remove_tree(&dir, &child, &child_rel, dev, depth + 1, removed)?;
        } else {
            match dir.remove_file(&child) {
                Ok(()) => removed.files += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(&child_rel, e)),
            }
        }
    }
    parent.remove_dir(name).map_err(|e| err(rel, e))?;
    removed.dirs += 1;
    Ok(())
}

/// What `du` counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) total_size: u64,
    pub(crate) files: u64,
    pub(crate) dirs: u64,
    pub(crate) symlinks: u64,
    pub(crate) special: u64,
    pub(crate) unreadable: u64,
    pub(crate) mount_points: u64,
}

impl Usage {
    fn count(&mut self, st: &Stat) {
        match st.kind {
            Kind::File => {
                self.files += 1;
                self.total_size = self.total_size.saturating_add(st.len);
            }
            Kind::Directory => self.dirs += 1,
            Kind::Symlink => self.symlinks += 1,
            _ => self.special += 1,
        }
    }
}

/// Measures `rel`: a directory every level down (links not followed, other file systems
/// not entered, unreadable directories counted and skipped), or the one file or link.
pub(crate) fn du(top: &Dir, rel: &str) -> Result<Usage, TreeError> {
    let mut usage = Usage::default();
    let dir = match split(rel) {
        None => top.try_clone().map_err(|e| err(rel, e))?,
        Some((parent, name)) => {
            let pdir = open_dir(top, parent, false)?;
            let st = pdir.lstat(name).map_err(|e| err(rel, e))?;
            if st.kind != Kind::Directory {
                usage.count(&st);
                return Ok(usage);
            }
            pdir.open_child(name)
                .map_err(|e| classify(&pdir, name, rel, e))?
        }
    };
    let names = dir.entries().map_err(|e| err(rel, e))?;
    let dev = dir.stat().map_err(|e| err(rel, e))?.dev;
    measure(&dir, names, rel, dev, 0, &mut usage)?;
    Ok(usage)
}

fn measure(
    dir: &Dir,
    names: Vec<std::ffi::OsString>,
    rel: &str,
    dev: u64,
    depth: usize,
    usage: &mut Usage,
) -> Result<(), TreeError> {
    for name in names {
        let Ok(st) = dir.lstat(&name) else {
            // Removed since the directory was read.
            continue;
        };
        usage.count(&st);
        if st.kind != Kind::Directory {
            continue;
        }
        let child_rel = join(rel, &name.to_string_lossy());
        if depth + 1 >= MAX_DEPTH {
            return Err(at(&child_rel, Problem::TooDeep));
        }
        let Ok(child) = dir.open_child(&name) else {
            usage.unreadable += 1;
            continue;
        };
        match child.stat() {
            Ok(s) if s.dev != dev => {
                usage.mount_points += 1;
                continue;
            }
            Ok(_) => {}
            Err(_) => {
                usage.unreadable += 1;
                continue;
            }
        }
        match child.entries() {
            Ok(names) => measure(&child, names, &child_rel, dev, depth + 1, usage)?,
            Err(_) => usage.unreadable += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
