//! The system's user and group databases (passwd, group, NSS), read with the reentrant
//! `get*_r` functions.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;

/// A user account from the system's user database (passwd / NSS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// All group ids the user belongs to (primary and supplementary).
    pub groups: Vec<u32>,
}

/// Largest buffer offered to the `get*_r` functions before giving up.
const MAX_BUF: usize = 16 << 20;
/// Most groups we ask `getgrouplist` for (Linux's NGROUPS_MAX is 65536).
const MAX_GROUPS: usize = 1 << 17;

/// The process's effective user id.
pub(super) fn euid() -> u32 {
    crate::server::sys::euid()
}

/// Whether a `get*_r` error code means "no such entry" (see getpwnam_r(3)).
fn is_not_found(rc: c_int) -> bool {
    matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM)
}

/// The next buffer size after ERANGE, or an error once it would pass `MAX_BUF`.
fn grow(buf: &mut Vec<c_char>) -> io::Result<()> {
    let len = buf.len() * 2;
    if len > MAX_BUF {
        return Err(io::Error::other("user database entry too large"));
    }
    buf.resize(len, 0);
    Ok(())
}

/// Which passwd entry to read.
#[derive(Clone, Copy)]
enum PwKey<'a> {
    Name(&'a CStr),
    Uid(u32),
}

/// The entry and its GECOS field (empty when there is none).
fn getpw(key: PwKey<'_>) -> io::Result<Option<(SystemUser, String)>> {
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        // SAFETY: `passwd` is a plain C struct of integers and pointers; all-zero is valid.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = ptr::null_mut();
        // SAFETY: all pointers are valid for the call; `buf.len()` is the buffer's real size.
        let rc = unsafe {
            match key {
                PwKey::Name(name) => libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                ),
                PwKey::Uid(uid) => {
                    libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
                }
            }
        };
        if rc == libc::ERANGE {
            grow(&mut buf)?;
            continue;
        }
        if rc != 0 {
            return if is_not_found(rc) {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(rc))
            };
        }
        if result.is_null() || pwd.pw_name.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the string fields point into `buf`, NUL-terminated (pw_dir may be
        // null on exotic NSS modules: checked).
        let c_name = unsafe { CStr::from_ptr(pwd.pw_name) };
        let home = if pwd.pw_dir.is_null() {
            PathBuf::from("/")
        } else {
            // SAFETY: as above.
            let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
            PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
        };
        let gecos = if pwd.pw_gecos.is_null() {
            String::new()
        } else {
            // SAFETY: as above.
            unsafe { CStr::from_ptr(pwd.pw_gecos) }
                .to_string_lossy()
                .into_owned()
        };
        let groups = group_list(c_name, pwd.pw_gid)?;
        let user = SystemUser {
            name: c_name.to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
            groups,
        };
        return Ok(Some((user, gecos)));
    }
}

/// All groups of `name` (whose primary group is `gid`), via getgrouplist(3).
fn group_list(name: &CStr, gid: u32) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        // Lossless: groups.len() <= MAX_GROUPS < i32::MAX.
        let mut n = groups.len() as c_int;
        // SAFETY: `groups` has room for `n` gids; `name` is NUL-terminated.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(usize::try_from(n).unwrap_or(0).min(groups.len()));
            return Ok(groups);
        }
        // glibc reports the number needed in `n`; other libcs may not, so at least double.
        let want = usize::try_from(n).unwrap_or(0).max(groups.len() * 2);
        if want > MAX_GROUPS {
            return Err(io::Error::other("user belongs to too many groups"));
        }
        groups.resize(want, 0);
    }
}

/// Looks a user up by login name.
///
/// # Errors
///
/// An I/O error from the user database (not "not found", which is `Ok(None)`; so is a name
/// with a NUL byte).
pub fn lookup(name: &str) -> io::Result<Option<SystemUser>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    Ok(getpw(PwKey::Name(&c_name))?.map(|(u, _)| u))
}

/// A user's full name (the sandbox placeholder `%f`): the first comma-separated field of the
/// passwd GECOS field, trimmed; the login name when that is empty or the user is unknown.
///
/// # Errors
///
/// An I/O error from the user database.
pub fn full_name(name: &str) -> io::Result<String> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(name.to_owned());
    };
    let gecos = getpw(PwKey::Name(&c_name))?.map(|(_, g)| g);
    let full = gecos
        .as_deref()
        .and_then(|g| g.split(',').next())
        .map(str::trim)
        .unwrap_or("");
    Ok(if full.is_empty() {
        name.to_owned()
    } else {
        full.to_owned()
    })
}

/// Looks a user up by uid.
///
/// # Errors
///
/// An I/O error from the user database.
pub fn by_uid(uid: u32) -> io::Result<Option<SystemUser>> {
    Ok(getpw(PwKey::Uid(uid))?.map(|(u, _)| u))
}

/// The account the process runs as (its effective uid).
///
/// # Errors
///
/// An I/O error from the user database, or `NotFound` when the uid has no entry (as in some
/// containers).
pub fn current() -> io::Result<SystemUser> {
    let uid = euid();
    by_uid(uid)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user database entry for uid {uid}"),
        )
    })
}

/// The gid of the group called `name`, if it exists.
///
/// # Errors
///
/// An I/O error from the group database.
pub fn group_gid(name: &str) -> io::Result<Option<u32>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        // SAFETY: `group` is a plain C struct; all-zero is valid.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = ptr::null_mut();
        // SAFETY: all pointers valid for the call; `buf.len()` is the buffer's real size.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE {
            grow(&mut buf)?;
            continue;
        }
        if rc != 0 {
            return if is_not_found(rc) {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(rc))
            };
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn looks_up_users_and_groups() {
        let root = lookup("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.home, Path::new("/root"));
        assert!(root.groups.contains(&0));
        assert_eq!(by_uid(0).unwrap().unwrap(), root);
        assert_eq!(lookup("jstest_no_such_user").unwrap(), None);
        assert_eq!(lookup("ro\0ot").unwrap(), None);
        assert_eq!(current().unwrap().uid, euid());
        assert_eq!(group_gid("root").unwrap(), Some(0));
        assert_eq!(group_gid("jstest_no_such_group").unwrap(), None);
    }
}
