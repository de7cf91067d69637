//! Acting with a user's file-system identity: a process running as root reads, creates and
//! renames files on a user's behalf with that user's rights only.
//!
//! The switch is per thread: raw `setgroups`, `setfsgid` and `setfsuid` syscalls change the
//! credentials of the calling thread only. The glibc wrappers (`setgroups`, `setresuid`, ...)
//! are deliberately not used: they change the credentials of every thread of the process.
//! Moving from fsuid 0 to another fsuid also drops the file-system capabilities
//! (`CAP_DAC_OVERRIDE`, `CAP_CHOWN`, `CAP_FOWNER`, ...) of that thread, so ordinary permission
//! checks (mode bits and ACLs) apply to it, and what it creates belongs to the user without a
//! `chown`.
//!
//! A switched thread must never go back to other work: either it is a thread of its own that
//! ends when its work is done ([`run_as_user`]), or one whose whole life is that user's work
//! (the receive sink's worker and checkpoint threads call [`FsIdentity::apply_to_this_thread`]
//! first thing).
//!
//! Linux-specific: elsewhere every switch fails with [`io::ErrorKind::Unsupported`].
#![allow(unsafe_code)]

use std::io;

/// The identity a thread takes for file-system access: a user's uid, primary gid and
/// supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsIdentity {
    /// File-system user id.
    pub uid: u32,
    /// File-system group id (the primary group).
    pub gid: u32,
    /// Supplementary groups (may be empty).
    pub groups: Vec<u32>,
}

impl FsIdentity {
    /// Switches the calling thread's supplementary groups, file-system gid and file-system uid
    /// to this identity (in that order: the group changes need privileges that the fsuid
    /// change may drop), and verifies that the switch took effect.
    ///
    /// The thread keeps this identity for the rest of its life: call it only on a thread
    /// dedicated to this user's work.
    ///
    /// # Errors
    /// The error of `setgroups`, or `PermissionDenied` when the file-system uid or gid could
    /// not be switched (the process lacks `CAP_SETUID`/`CAP_SETGID`); `Unsupported` off Linux.
    pub fn apply_to_this_thread(&self) -> io::Result<()> {
        switch(self)
    }
}

/// Runs `f` with the file-system identity `ids`, or directly on the calling thread when `ids`
/// is `None`.
///
/// With `Some(ids)`, `f` runs on a fresh thread that first switches its own identity
/// ([`FsIdentity::apply_to_this_thread`]); the thread ends when `f` returns, so the identity
/// never leaks to other work. A panic in `f` is propagated to the caller.
///
/// # Errors
/// The error of spawning the thread or of the switch. `f` does not run in those cases.
pub fn run_as_user<T: Send + 'static>(
    ids: Option<FsIdentity>,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let Some(ids) = ids else {
        return Ok(f());
    };
    let handle = std::thread::Builder::new()
        .name(format!("fs-as-uid-{}", ids.uid))
        .spawn(move || -> io::Result<T> {
            ids.apply_to_this_thread()?;
            Ok(f())
        })?;
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(target_os = "linux")]
mod nr {
    #[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
    pub(super) use libc::{
        SYS_setfsgid as SETFSGID, SYS_setfsuid as SETFSUID, SYS_setgroups as SETGROUPS,
    };
    #[cfg(any(target_arch = "x86", target_arch = "arm"))]
    pub(super) use libc::{
        SYS_setfsgid32 as SETFSGID, SYS_setfsuid32 as SETFSUID, SYS_setgroups32 as SETGROUPS,
    };
}

#[cfg(target_os = "linux")]
fn switch(ids: &FsIdentity) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = ids.groups.clone();
    // SAFETY: raw setgroups(2) acts on the calling thread only; `groups` is a live, properly
    // aligned array of `groups.len()` gid_t values that the kernel only reads during the call.
    let rc = unsafe { libc::syscall(nr::SETGROUPS, groups.len() as libc::size_t, groups.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let set_fs_id = |nr: libc::c_long, id: u32| -> libc::c_long {
        // SAFETY: setfsuid(2)/setfsgid(2) take one integer id, touch no memory and act on the
        // calling thread only; they return the previous id and never fail with -1/errno.
        unsafe { libc::syscall(nr, id as libc::c_uint) }
    };
    // Each call reports only the previous value: the second call shows whether the first
    // took effect.
    set_fs_id(nr::SETFSGID, ids.gid);
    if set_fs_id(nr::SETFSGID, ids.gid) != libc::c_long::from(ids.gid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("could not switch the file-system gid to {}", ids.gid),
        ));
    }
    set_fs_id(nr::SETFSUID, ids.uid);
    if set_fs_id(nr::SETFSUID, ids.uid) != libc::c_long::from(ids.uid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("could not switch the file-system uid to {}", ids.uid),
        ));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn switch(_ids: &FsIdentity) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "acting with a user's file-system identity is only supported on Linux",
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
    use std::path::Path;

    pub(crate) const NOBODY: u32 = 65534;

    /// The guard of a test that needs to give files away and switch identities (root). Such a
    /// test is marked `#[ignore = "needs root: ..."]`, so that a run as another user lists it
    /// as ignored; `scripts/test.sh` runs it as root (`--ignored`). Panics when this process
    /// cannot (checked in `dir`), and when the test ran without being asked for, i.e. without
    /// the mark (as `jetstream_server::users::test_support::require_root` does).
    pub(crate) fn require_root(dir: &Path) {
        let probe = dir.join("chown-probe");
        let ok = std::fs::write(&probe, b"").is_ok()
            && std::fs::metadata(&probe).is_ok_and(|m| m.uid() == 0)
            && lchown(&probe, Some(NOBODY), Some(NOBODY)).is_ok();
        let _ = std::fs::remove_file(&probe);
        assert!(
            ok,
            "this test needs root (switching identities): run it as root, as scripts/test.sh does"
        );
        let asked = std::env::args().any(|a| a == "--ignored" || a == "--include-ignored");
        assert!(
            asked,
            "this test needs root but is not marked #[ignore = \"needs root: ...\"]: mark it"
        );
    }

    pub(crate) fn nobody(groups: Vec<u32>) -> FsIdentity {
        FsIdentity {
            uid: NOBODY,
            gid: NOBODY,
            groups,
        }
    }

    #[test]
    fn without_ids_runs_inline() {
        let here = std::thread::current().id();
        let there = run_as_user(None, move || std::thread::current().id() == here).unwrap();
        assert!(there);
    }

    #[test]
    #[ignore = "needs root: switches to another user"]
    fn reads_with_the_users_rights() {
        let tmp = tempfile::tempdir().unwrap();
        require_root(tmp.path());
        // nobody must be able to traverse the temp dir to reach the files.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = tmp.path().join("secret");
        let public = tmp.path().join("public");
        std::fs::write(&secret, b"secret").unwrap();
        std::fs::write(&public, b"public").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (s, p) = (secret.clone(), public);
        let (secret_read, public_read) = run_as_user(Some(nobody(vec![])), move || {
            (std::fs::read(&s), std::fs::read(&p))
        })
        .unwrap();
        let err = secret_read.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert_eq!(public_read.unwrap(), b"public");
        // The calling thread kept root's file-system identity.
        assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
        // And a listing as nobody of a 0700 directory fails too.
        let private = tmp.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let p = private.clone();
        let listed = run_as_user(Some(nobody(vec![])), move || {
            std::fs::read_dir(&p).map(|_| ())
        })
        .unwrap();
        assert_eq!(listed.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(std::fs::read_dir(&private).is_ok());
    }

    #[test]
    #[ignore = "needs root: switches to another user"]
    fn creates_as_the_user_and_only_where_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        require_root(tmp.path());
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mine = tmp.path().join("mine");
        let roots = tmp.path().join("roots");
        std::fs::create_dir(&mine).unwrap();
        std::fs::create_dir(&roots).unwrap();
        lchown(&mine, Some(NOBODY), Some(NOBODY)).unwrap();
        let (m, r) = (mine.clone(), roots.clone());
        let (in_mine, in_roots) = run_as_user(Some(nobody(vec![])), move || {
            (
                std::fs::write(m.join("f"), b"x"),
                std::fs::write(r.join("f"), b"x"),
            )
        })
        .unwrap();
        in_mine.unwrap();
        let meta = std::fs::metadata(mine.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
        assert_eq!(
            in_roots.unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(!roots.join("f").exists());
    }

    #[test]
    #[ignore = "needs root: switches to another user"]
    fn supplementary_groups_apply() {
        let tmp = tempfile::tempdir().unwrap();
        require_root(tmp.path());
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let shared = tmp.path().join("group-readable");
        std::fs::write(&shared, b"team").unwrap();
        // Owned by root, group 4242, readable by the group only.
        lchown(&shared, Some(0), Some(4242)).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        let read_as = |groups: Vec<u32>| {
            let p = shared.clone();
            run_as_user(Some(nobody(groups)), move || std::fs::read(&p)).unwrap()
        };
        assert_eq!(read_as(vec![4242]).unwrap(), b"team");
        assert_eq!(
            read_as(vec![]).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn propagates_a_panic() {
        let r = std::panic::catch_unwind(|| run_as_user(None, || panic!("boom")));
        assert!(r.is_err());
        let ids = FsIdentity {
            uid: 0,
            gid: 0,
            groups: vec![0],
        };
        let r = std::panic::catch_unwind(move || run_as_user(Some(ids), || panic!("boom")));
        // Either the switch failed (not root: Ok(Err(_))) or the panic came back.
        assert!(matches!(r, Err(_) | Ok(Err(_))), "{r:?}");
    }
}
