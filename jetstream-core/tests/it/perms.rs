//! Receiving "as" a user (`EngineHandle::receive_as`): all file-system work runs with the
//! user's file-system identity, so the user's permissions are enforced and what is created
//! belongs to the user without any chown. Needs root: ignored otherwise (`scripts/test.sh`).

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jetstream_core::fs::identity::FsIdentity;
use jetstream_core::{Destination, Manifest, TransferKeys, TransferStatus};

use super::util::{engine, hash_file, scratch, write_random};

const NOBODY: u32 = 65534;
/// A group nobody is not a member of, unless given as a supplementary group.
const TEAM: u32 = 4242;

fn nobody(groups: Vec<u32>) -> FsIdentity {
    FsIdentity {
        uid: NOBODY,
        gid: NOBODY,
        groups,
    }
}

/// A scratch directory any user can traverse, for a test marked
/// `#[ignore = "needs root: ..."]` (`scripts/test.sh` runs those as root). Panics when not
/// root, and when the test ran without being asked for (`--ignored`), i.e. without the mark.
fn root_scratch() -> tempfile::TempDir {
    let dir = scratch();
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "").unwrap();
    assert!(
        chown(&probe, Some(NOBODY), Some(NOBODY)).is_ok(),
        "this test needs root (receiving as another user): run it as root, as scripts/test.sh does"
    );
    let asked = std::env::args().any(|a| a == "--ignored" || a == "--include-ignored");
    assert!(
        asked,
        "this test needs root but is not marked #[ignore = \"needs root: ...\"]: mark it"
    );
    std::fs::remove_file(&probe).unwrap();
    set_mode(dir.path(), 0o755);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory owned by `uid:gid` with `mode`.
fn mkdir(path: &Path, uid: u32, gid: u32, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    chown(path, Some(uid), Some(gid)).unwrap();
    set_mode(path, mode);
    path.to_owned()
}

/// Sends `sources` (each a directory, kept by name) into `dst` received as `owner`; returns
/// the sender's and the receiver's final status (complete or not).
fn receive(sources: &[PathBuf], dst: &Path, owner: FsIdentity) -> (TransferStatus, TransferStatus) {
    let rx = engine();
    let tx = engine();
    let keys = TransferKeys::random().unwrap();
    let incoming = rx
        .handle()
        .receive_as(keys.clone(), dst, Some(owner))
        .unwrap();
    let manifest = Manifest::from_sources(sources).unwrap();
    let outgoing = tx
        .handle()
        .send(Destination::new(rx.local_addr()), keys, manifest)
        .unwrap();
    let sent = outgoing.wait(Duration::from_secs(60));
    let received = incoming.wait(Duration::from_secs(60));
    let state =
        |r: &Result<TransferStatus, _>| r.as_ref().map(|s| s.state).map_err(ToString::to_string);
    eprintln!(
        "sender: {:?}; receiver: {:?}",
        state(&sent),
        state(&received)
    );
    assert!(
        !matches!(received, Err(jetstream_core::Error::WaitTimedOut)),
        "the receiver ends"
    );
    (outgoing.status(), incoming.status())
}

/// Checks that exactly `paths` failed, at the sender with "may not write there" (what it is
/// told) and at the receiver with "Permission denied" (its own error).
fn assert_refused(sent: &TransferStatus, received: &TransferStatus, paths: &[&str]) {
    for (st, why) in [
        (sent, "may not write there"),
        (received, "Permission denied"),
    ] {
        let mut failed = st.failed_files.clone();
        failed.sort();
        let got: Vec<&str> = failed.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(got, paths, "{:?}: {failed:?}", st.role);
        for (path, message) in &failed {
            assert!(
                message.contains(why),
                "{path}: {message:?} should say {why:?}"
            );
        }
        let msg = st.error_message.clone().unwrap_or_default();
        assert!(msg.contains(why), "{msg:?} should say {why:?}");
    }
}

/// Every path below `dir` (itself excluded), with its uid and gid.
fn walk(dir: &Path) -> Vec<(PathBuf, u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), meta.uid(), meta.gid()));
        if meta.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
#[ignore = "needs root: receives as another user"]
fn receive_as_creates_everything_as_the_user() {
    let dir = root_scratch();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    write_random(&src.join("a/b/f.bin"), 300_000, 4);
    std::fs::write(src.join("top.txt"), "x").unwrap();
    let dst = mkdir(&dir.path().join("dst"), NOBODY, NOBODY, 0o755);
    let (_, st) = receive(std::slice::from_ref(&src), &dst, nobody(vec![]));
    assert!(st.failed_files.is_empty(), "{:?}", st.failed_files);
    assert_eq!(
        hash_file(&dst.join("src/a/b/f.bin")),
        hash_file(&src.join("a/b/f.bin"))
    );
    let all = walk(&dst);
    for (p, uid, gid) in &all {
        assert_eq!((*uid, *gid), (NOBODY, NOBODY), "{}", p.display());
    }
    let names: Vec<_> = all
        .iter()
        .map(|(p, ..)| p.strip_prefix(&dst).unwrap())
        .collect();
    assert_eq!(
        all.len(),
        6,
        "src, a, a/b, a/b/f.bin, empty, top.txt: {names:?}"
    );
}

#[test]
#[ignore = "needs root: receives as another user"]
fn receive_as_uses_the_users_supplementary_groups() {
    let dir = root_scratch();
    let src = dir.path().join("team");
    std::fs::create_dir_all(&src).unwrap();
    write_random(&src.join("t.bin"), 70_000, 5);
    // Owned by root, writable by the group TEAM only.
    let dst = mkdir(&dir.path().join("dst"), 0, TEAM, 0o775);
    let (_, st) = receive(std::slice::from_ref(&src), &dst, nobody(vec![TEAM]));
    assert!(st.failed_files.is_empty(), "{:?}", st.failed_files);
    let meta = std::fs::metadata(dst.join("team/t.bin")).unwrap();
    // Created by nobody (primary group nobody); no chown was made.
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    // Without the group, the same directory is refused.
    let dst2 = mkdir(&dir.path().join("dst2"), 0, TEAM, 0o775);
    let (sent, received) = receive(std::slice::from_ref(&src), &dst2, nobody(vec![]));
    assert_refused(&sent, &received, &["team/t.bin"]);
    assert_eq!(walk(&dst2), vec![], "nothing written");
}

#[test]
#[ignore = "needs root: receives as another user"]
fn receive_as_may_not_write_where_the_user_may_not() {
    let dir = root_scratch();
    // Sources `ro/x.bin`, `ok/y.bin`, `roots/z.bin` and the same layout at the receiver: the
    // user's own directory made read-only (555), a writable one, and one owned by root.
    let src = dir.path().join("src");
    for (d, seed) in [("ro", 1), ("ok", 2), ("roots", 3)] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        write_random(&src.join(d).join("f.bin"), 500_000, seed);
    }
    let dst = mkdir(&dir.path().join("dst"), NOBODY, NOBODY, 0o755);
    let ro = mkdir(&dst.join("ro"), NOBODY, NOBODY, 0o555);
    let roots = mkdir(&dst.join("roots"), 0, 0, 0o755);
    let sources = ["ro", "ok", "roots"].map(|d| src.join(d));
    let (sent, received) = receive(&sources, &dst, nobody(vec![]));
    assert_refused(&sent, &received, &["ro/f.bin", "roots/f.bin"]);
    // Nothing at all in either directory, not even a part file.
    assert_eq!(walk(&ro), vec![]);
    assert_eq!(walk(&roots), vec![]);
    // The writable one completed, as the user.
    assert_eq!(
        hash_file(&dst.join("ok/f.bin")),
        hash_file(&src.join("ok/f.bin"))
    );
    let meta = std::fs::metadata(dst.join("ok/f.bin")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
}

#[test]
#[ignore = "needs root: receives as another user"]
fn receive_as_into_a_root_the_user_may_not_write_fails_each_entry() {
    let dir = root_scratch();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a.bin"), 100_000, 6);
    std::fs::write(src.join("b.txt"), "b").unwrap();
    // Root's directory: no journal, no part file, no directory can be made there.
    let dst = mkdir(&dir.path().join("dst"), 0, 0, 0o755);
    let (sent, received) = receive(std::slice::from_ref(&src), &dst, nobody(vec![]));
    assert_refused(&sent, &received, &["src/a.bin", "src/b.txt"]);
    assert_eq!(walk(&dst), vec![], "nothing written");
}
