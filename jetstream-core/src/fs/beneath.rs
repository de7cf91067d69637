//! Resolving paths *beneath* a directory descriptor, never through a symbolic link.
//!
//! A receiver writes where a hostile peer names and where a local user may be swapping
//! directories for symbolic links while the transfer runs. Checking a path with `lstat` and
//! then opening it by name leaves a window between the two; this module closes it by never
//! resolving a path string from the top again:
//!
//! - a [`Dir`] holds a descriptor of a directory (opened once, `O_PATH | O_DIRECTORY`);
//! - a relative path below it is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
//!   | RESOLVE_NO_MAGICLINKS)` from that descriptor, or, where the kernel lacks `openat2`
//!   (before Linux 5.6, or a seccomp filter answering `ENOSYS`/`EPERM`), by an `openat` walk
//!   with `O_NOFOLLOW` per component. Which one is decided once per process, on the first
//!   refusal, and both refuse a symbolic link anywhere in the path, intermediate or final;
//! - missing directories are made with `mkdirat` on the parent's descriptor and opened with
//!   `O_NOFOLLOW | O_DIRECTORY`;
//! - files are created, renamed, unlinked and stamped relative to the descriptor of their
//!   own parent (`openat`, `renameat`, `unlinkat`, `utimensat` with `AT_SYMLINK_NOFOLLOW`), and
//!   written, synced, `fchmod`ed and `futimens`ed through their own open descriptor.
//!
//! Whatever a local user does meanwhile, every file lands in a directory that was, at the
//! moment it was opened, a real directory reached from the root descriptor through real
//! directories: if a directory is renamed away later, what is written through its descriptor
//! follows it, and stays inside the tree (a user can move a directory out of the tree only to
//! where they may write anyway). A path component that is a symbolic link fails that one
//! operation with [`FsError::Escape`].
//!
//! Path components given to this module are single names: no `/`, not `.` or `..`, no NUL
//! (manifest paths are checked by [`super::paths::validate_relative`] first; names that break
//! the rule are refused here too).
//!
//! Linux-specific (`O_PATH`, `openat2`).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use super::FsError;

/// `openat2` availability: not probed yet, works, or refused by the kernel (the walk is used).
///
/// A process-wide fact about the kernel, not configuration: probed by the first resolution
/// and never changed after the first refusal.
static OPENAT2: AtomicU8 = AtomicU8::new(OPENAT2_UNKNOWN);
const OPENAT2_UNKNOWN: u8 = 0;
const OPENAT2_WORKS: u8 = 1;
const OPENAT2_MISSING: u8 = 2;

/// `struct open_how` of `linux/openat2.h` (libc's is `#[non_exhaustive]`, so it cannot be
/// built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// What a directory entry is, seen without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, fifo, socket).
    Other,
}

/// The facts about an entry that callers decide on (from `fstatat`/`fstat`, never following).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// What the entry is.
    pub kind: Kind,
    /// Size in bytes.
    pub len: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    /// Last modification.
    pub mtime: SystemTime,
    /// The device (file system) it is on.
    pub dev: u64,
}

impl Stat {
    fn from_raw(st: &libc::stat) -> Self {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Directory,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        Self {
            kind,
            len: u64::try_from(st.st_size).unwrap_or(0),
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            mtime: system_time(st.st_mtime, st.st_mtime_nsec),
            dev: st.st_dev,
        }
    }
}

/// A directory descriptor, and the path it was reached by (for messages only: nothing is ever
/// resolved from that path again).
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Resolve with the per-component walk even where `openat2` works (tests of the fallback).
    walk_only: bool,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dir")
            .field("fd", &self.fd.as_raw_fd())
            .field("path", &self.path)
            .finish()
    }
}

fn cstring(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// A single component: non-empty, no `/`, not `.` / `..`.
fn component(name: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<CString> {
    let bytes = name.as_ref().as_encoded_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} is not a single path component", name.as_ref()),
        ));
    }
    cstring(bytes)
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Retries a syscall wrapper on `EINTR`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn openat(
    dirfd: RawFd,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    retry(|| {
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call;
        // `dirfd` is a descriptor the caller keeps open; the kernel returns a new descriptor
        // that nothing else owns, which `OwnedFd` takes over.
        let fd = unsafe {
            libc::openat(
                dirfd,
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        };
        if fd < 0 {
            Err(last_error())
        } else {
            // SAFETY: `fd` was just returned by openat and is owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    })
}

fn openat2(
    dirfd: RawFd,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    retry(|| {
        // SAFETY: `path` and `how` live across the call, `how` is a properly laid out
        // `struct open_how` whose size is passed; the returned descriptor is owned by nobody
        // else.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            Err(last_error())
        } else {
            // SAFETY: as above; a descriptor always fits a c_int.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        }
    })
}

fn fstatat(dirfd: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<Stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is writable for the call.
    let rc = unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, flags) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(Stat::from_raw(&st))
}

fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// Whether an `openat2` error means "this kernel has no usable openat2".
fn openat2_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

/// The time `sec` s and `nsec` ns after the Unix epoch (before it for a negative `sec`).
fn system_time(sec: i64, nsec: i64) -> SystemTime {
    let nanos = std::time::Duration::from_nanos(u64::try_from(nsec).unwrap_or(0));
    let secs = std::time::Duration::from_secs(sec.unsigned_abs());
    if sec >= 0 {
        SystemTime::UNIX_EPOCH + secs + nanos
    } else {
        SystemTime::UNIX_EPOCH - secs + nanos
    }
}

/// The timespec of a `SystemTime` (before the epoch is clamped to it).
fn timespec(t: SystemTime) -> libc::timespec {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

impl Dir {
    /// Opens the directory at `path`, following symbolic links on the way (the caller trusts
    /// `path`: it is the configured destination root).
    ///
    /// # Errors
    /// The open's error (`NotFound`, `PermissionDenied`, `ENOTDIR`).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = cstring(path.as_os_str().as_encoded_bytes())?;
        let fd = openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
            walk_only: false,
        })
    }

    /// Wraps a descriptor of a directory that the caller resolved safely; `path` is what it is
    /// called in messages.
    ///
    /// # Errors
    /// `ENOTDIR` when `fd` is not a directory, or the `fstat` error.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> io::Result<Self> {
        let dir = Self {
            fd,
            path,
            walk_only: false,
        };
        if dir.stat()?.kind != Kind::Directory {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(dir)
    }

    /// The path this directory was reached by (for messages; never resolved again).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw descriptor (for `*at` calls of callers; it stays owned by `self`).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A second handle on the same directory (`dup`).
    ///
    /// # Errors
    /// The `dup` error (out of descriptors).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
            walk_only: self.walk_only,
        })
    }

    /// Resolves with the per-component `openat` walk only, as on a kernel without `openat2`
    /// (for tests of that path; children inherit it).
    #[doc(hidden)]
    pub fn force_walk(mut self) -> Self {
        self.walk_only = true;
        self
    }

    fn child(&self, fd: OwnedFd, rel: impl AsRef<Path>) -> Self {
        Self {
            fd,
            path: self.path.join(rel),
            walk_only: self.walk_only,
        }
    }

    /// `fstat` of this directory.
    ///
    /// # Errors
    /// The `fstat` error.
    pub fn stat(&self) -> io::Result<Stat> {
        fstatat(self.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
    }

    /// `fstatat(name, AT_SYMLINK_NOFOLLOW)` of an entry of this directory.
    ///
    /// # Errors
    /// The `fstatat` error (`NotFound` for a missing entry).
    pub fn lstat(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<Stat> {
        fstatat(
            self.as_raw_fd(),
            &component(name)?,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    }

    /// Opens the entry `name` of this directory as a directory, without following it.
    ///
    /// # Errors
    /// `ELOOP`/`ENOTDIR` for a symbolic link or a non-directory, else the open's error.
    pub fn open_child(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<Self> {
        let name = name.as_ref();
        let fd = openat(
            self.as_raw_fd(),
            &component(name)?,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        Ok(self.child(fd, name))
    }

    /// Opens the parent directory (`..`, which is never a link; for callers that follow a
    /// link target they decided to trust).
    ///
    /// # Errors
    /// The open's error.
    pub fn open_parent(&self) -> io::Result<Self> {
        let fd = openat(self.as_raw_fd(), c"..", libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(Self {
            fd,
            path: self.path.parent().unwrap_or(&self.path).to_path_buf(),
            walk_only: self.walk_only,
        })
    }

    /// Opens the directory entry `name` for reading (`O_RDONLY`, so that it can be `fchown`ed,
    /// `fchmod`ed and `fsync`ed), without following it.
    ///
    /// # Errors
    /// As [`Self::open_child`], plus `PermissionDenied` without read permission.
    pub fn open_child_readable(&self, name: &str) -> io::Result<File> {
        let fd = openat(
            self.as_raw_fd(),
            &component(name)?,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        Ok(File::from(fd))
    }

    /// Opens (with `flags`, e.g. `O_RDWR | O_CREAT`, and `mode` for a new file) the file
    /// `name` of this directory, never following a symbolic link.
    ///
    /// # Errors
    /// `ELOOP` for a symbolic link, else the open's error.
    pub fn open_file(
        &self,
        name: &str,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<File> {
        let fd = openat(
            self.as_raw_fd(),
            &component(name)?,
            flags | libc::O_NOFOLLOW,
            mode,
        )?;
        Ok(File::from(fd))
    }

    /// `mkdirat(name, mode)` in this directory (the umask applies).
    ///
    /// # Errors
    /// `AlreadyExists` when something (anything, even a link) is there, else the error.
    pub fn mkdir(&self, name: &str, mode: libc::mode_t) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: `c` is NUL-terminated and lives across the call.
        cvt(unsafe { libc::mkdirat(self.as_raw_fd(), c.as_ptr(), mode) })
    }

    /// `renameat(from, to)` within this directory (`to` is replaced; neither is followed).
    ///
    /// # Errors
    /// The `renameat` error.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        let fd = self.as_raw_fd();
        // SAFETY: both names are NUL-terminated and live across the call.
        cvt(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) })
    }

    /// `unlinkat(name)` (a file or link, never followed).
    ///
    /// # Errors
    /// The `unlinkat` error.
    pub fn remove_file(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: `c` is NUL-terminated and lives across the call.
        cvt(unsafe { libc::unlinkat(self.as_raw_fd(), c.as_ptr(), 0) })
    }

    /// `unlinkat(name, AT_REMOVEDIR)` (an empty directory).
    ///
    /// # Errors
    /// The `unlinkat` error.
    pub fn remove_dir(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: `c` is NUL-terminated and lives across the call.
        cvt(unsafe { libc::unlinkat(self.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// `renameat2(from, to_dir/to, RENAME_NOREPLACE)`: moves the entry `from` of this
    /// directory (whatever it is, not followed) to `to` in `to_dir`, refusing to replace
    /// anything there.
    ///
    /// # Errors
    /// `AlreadyExists` when `to` exists, `EXDEV` across file systems, `EINVAL` for a directory
    /// moved into itself, else the `renameat2` error.
    pub fn move_to(&self, from: &str, to_dir: &Self, to: &str) -> io::Result<()> {
        let (f, t) = (component(from)?, component(to)?);
        // SAFETY: both names are NUL-terminated and live across the call; both descriptors
        // are kept open by `self` and `to_dir`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                self.as_raw_fd(),
                f.as_ptr(),
                to_dir.as_raw_fd(),
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(last_error())
        }
    }

    /// The names in this directory (without `.` and `..`), in the order the file system
    /// gives them, read with the calling thread's identity (it needs read permission).
    ///
    /// DoS/unbounded work: every name is read; callers that answer with them cap the count.
    ///
    /// # Errors
    /// The error of opening the directory for reading or of reading it.
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        let fd = openat(
            self.as_raw_fd(),
            c".",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        // SAFETY: `raw` is an open directory descriptor we own; on success the stream owns it
        // (closedir closes it), on failure we close it ourselves.
        let stream = unsafe { libc::fdopendir(raw) };
        if stream.is_null() {
            let e = last_error();
            // SAFETY: fdopendir failed, so `raw` is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        let mut names = Vec::new();
        let outcome = loop {
            // SAFETY: errno is thread-local; readdir sets it only on an error, so it is
            // cleared first to tell the end of the directory from a failure.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `stream` is a valid open stream until closedir below.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let e = last_error();
                break match e.raw_os_error() {
                    Some(0) | None => Ok(()),
                    Some(_) => Err(e),
                };
            }
            // SAFETY: `entry` points to a dirent valid until the next readdir on `stream`;
            // its `d_name` is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes).to_owned());
            }
        };
        // SAFETY: `stream` is open and not used after this.
        unsafe { libc::closedir(stream) };
        outcome.map(|()| names)
    }

    /// Sets the access and modification times of the entry `name` (not followed).
    ///
    /// # Errors
    /// The `utimensat` error.
    pub fn set_modified(&self, name: &str, mtime: SystemTime) -> io::Result<()> {
        let c = component(name)?;
        let times = [timespec(mtime), timespec(mtime)];
        // SAFETY: `c` is NUL-terminated, `times` holds two timespecs, both live across the call.
        cvt(unsafe {
            libc::utimensat(
                self.as_raw_fd(),
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// Reads the symbolic link `name` of this directory.
    ///
    /// # Errors
    /// `EINVAL` when it is not a link, else the `readlinkat` error.
    pub fn read_link(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<PathBuf> {
        let c = component(name)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: `c` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
        let n = unsafe {
            libc::readlinkat(
                self.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| last_error())?;
        buf.truncate(n);
        Ok(PathBuf::from(std::ffi::OsString::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&buf),
        )))
    }

    /// Best-effort `fsync` of this directory (so that a rename in it is durable).
    pub fn sync(&self) {
        if let Ok(fd) = openat(
            self.as_raw_fd(),
            c".",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        ) {
            let _ = File::from(fd).sync_all();
        }
    }

    /// Opens the existing directory `rel` (a `/`-separated relative path, `""` for this one)
    /// below this one, refusing a symbolic link anywhere on the way.
    ///
    /// # Errors
    /// [`FsError::Escape`] for a symbolic link (or anything that would leave the tree),
    /// [`FsError::Io`] for a missing component (`NotFound`), a non-directory, or another error.
    pub fn open_dir(&self, rel: &str) -> Result<Self, FsError> {
        self.resolve_dir(rel, false)
    }

    /// Opens the directory `rel` below this one, creating the missing components (`mkdirat`,
    /// mode 0o777 minus the umask, with the calling thread's file-system identity), refusing
    /// a symbolic link anywhere on the way (`mkdir -p` beneath, no-follow).
    ///
    /// # Errors
    /// As [`Self::open_dir`], plus the `mkdirat` error (e.g. `PermissionDenied`).
    pub fn create_dirs(&self, rel: &str) -> Result<Self, FsError> {
        self.resolve_dir(rel, true)
    }

    /// Splits `rel` into its parent directory (opened beneath this one, created with
    /// `create`) and its final component.
    ///
    /// # Errors
    /// As [`Self::open_dir`] / [`Self::create_dirs`] for the parent.
    pub fn parent_of<'a>(&self, rel: &'a str, create: bool) -> Result<(Self, &'a str), FsError> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() {
            return Err(FsError::InvalidPath {
                path: rel.to_owned(),
                reason: "empty path component",
            });
        }
        match self.resolve_dir(parent, create) {
            Ok(dir) => Ok((dir, name)),
            // Name the whole path in the refusal, as the caller knows it.
            Err(FsError::Escape { .. }) => Err(FsError::Escape {
                path: rel.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    fn resolve_dir(&self, rel: &str, create: bool) -> Result<Self, FsError> {
        let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        if components.is_empty() {
            return self.try_clone().map_err(|e| FsError::io(&self.path, &e));
        }
        if components.iter().any(|c| *c == "." || *c == "..") {
            return Err(FsError::Escape {
                path: rel.to_owned(),
            });
        }
        // The whole path at once where the kernel can refuse links for us; a missing
        // component (when creating) is made by the walk below, which refuses links too.
        if !self.walk_only && OPENAT2.load(Ordering::Relaxed) != OPENAT2_MISSING {
            let joined = components.join("/");
            let c = cstring(joined.as_bytes()).map_err(|e| FsError::io(self.path.join(rel), &e))?;
            match openat2(self.as_raw_fd(), &c, libc::O_PATH | libc::O_DIRECTORY, 0) {
                Ok(fd) => {
                    OPENAT2.store(OPENAT2_WORKS, Ordering::Relaxed);
                    return Ok(self.child(fd, &joined));
                }
                Err(e) if openat2_missing(&e) => {
                    // Decided once: the kernel (or a seccomp filter) refuses openat2.
                    if OPENAT2.load(Ordering::Relaxed) != OPENAT2_WORKS {
                        OPENAT2.store(OPENAT2_MISSING, Ordering::Relaxed);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {}
                // A concurrent rename made the kernel give up (it cannot tell whether the
                // result would be beneath): the walk decides, refusing links just the same.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => return Err(self.classify(&components, rel, &e)),
            }
        }
        let mut cur: Option<Self> = None;
        for (i, name) in components.iter().enumerate() {
            let here = cur.as_ref().unwrap_or(self);
            let next = match here.open_child(name) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    match here.mkdir(name, 0o777) {
                        // Lost a race with another creator: what is there is checked below.
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => {
                            return Err(FsError::io(self.path.join(components[..=i].join("/")), &e))
                        }
                    }
                    here.open_child(name)
                        .map_err(|e| here.child_error(name, rel, &e))?
                }
                Err(e) => return Err(here.child_error(name, rel, &e)),
            };
            cur = Some(next);
        }
        // `components` is not empty, so the loop set `cur`.
        cur.ok_or_else(|| FsError::InvalidPath {
            path: rel.to_owned(),
            reason: "empty path",
        })
    }

    /// The error for a failed open of the child `name` of `self` (while resolving `rel`).
    fn child_error(&self, name: &str, rel: &str, e: &io::Error) -> FsError {
        let path = || self.path.join(name);
        match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => match self.lstat(name) {
                Ok(st) if st.kind == Kind::Symlink => FsError::Escape {
                    path: rel.to_owned(),
                },
                Ok(st) if st.kind != Kind::Directory => not_a_directory(path()),
                // It changed in between: report what the open said.
                _ => FsError::io(path(), e),
            },
            _ => FsError::io(path(), e),
        }
    }

    /// The error for a failed `openat2` of `components`: walks them to find which one is at
    /// fault (only for the message; nothing is opened for use).
    fn classify(&self, components: &[&str], rel: &str, e: &io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ELOOP | libc::EXDEV) => FsError::Escape {
                path: rel.to_owned(),
            },
            Some(libc::ENOTDIR) => {
                // A symbolic link is refused by openat2 with ELOOP, so this is a non-directory;
                // find it for the message.
                let mut cur: Option<Self> = None;
                for name in components {
                    let here = cur.as_ref().unwrap_or(self);
                    match here.open_child(name) {
                        Ok(d) => cur = Some(d),
                        Err(err) => return here.child_error(name, rel, &err),
                    }
                }
                FsError::io(self.path.join(rel), e)
            }
            _ => FsError::io(self.path.join(rel), e),
        }
    }
}

/// The error for "an intermediate component exists and is not a directory" (the wording of
/// [`super::paths`]).
pub(crate) fn not_a_directory(path: PathBuf) -> FsError {
    FsError::Io {
        path,
        kind: io::ErrorKind::Other,
        message: "not a directory".to_owned(),
    }
}

/// Whether resolutions of this process use `openat2` (`false` before the first one, and
/// where the kernel refused it).
pub fn uses_openat2() -> bool {
    OPENAT2.load(Ordering::Relaxed) == OPENAT2_WORKS
}

#[cfg(test)]
mod tests;
