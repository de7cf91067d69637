//! The receiving user's permissions are enforced: a server running as root writes a user's
//! files with that user's file-system identity (uid, gid, supplementary groups), so a
//! directory of the sandbox the user may not write (their own, made read-only; one owned by
//! root) stays untouched and its files fail with a clear message, while the others arrive,
//! owned by the user.

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jetstream_server::users::test_support::TestGroup;
use serde_json::json;

use super::storage::{assert_failed, same};
use super::util::*;

/// A directory owned by `uid:gid` with `mode`.
fn mkdir(path: &Path, uid: u32, gid: u32, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_directory_the_user_may_not_write_fails_its_files_and_nothing_is_written() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        a,
        b,
        storage,
    } = Pair::new(true);
    // A group the user belongs to (looked up at login, so before it).
    let team = TestGroup::create().expect("groupadd");
    team.add(&u).expect("gpasswd -a");
    let src = dir.path().join("src");
    let files = [
        ("x.bin", "/ro/x.bin"),
        ("w.bin", "/roots/w.bin"),
        ("y.bin", "/ok/y.bin"),
        ("t.bin", "/team/t.bin"),
    ];
    for (i, (name, _)) in files.iter().enumerate() {
        write(&src.join(name), &data(1 << 20, 20 + i as u64));
    }
    // The user's sandbox, as an administrator would prepare it: the user's own directory, in
    // it `ro` (the user's, made read-only), `roots` (root's) and `team` (root's, writable by
    // the group).
    let home = storage.join(u.name());
    mkdir(&storage, 0, 0, 0o755);
    mkdir(&home, u.uid(), u.gid(), 0o755);
    mkdir(&home.join("ro"), u.uid(), u.gid(), 0o555);
    mkdir(&home.join("roots"), 0, 0, 0o755);
    mkdir(&home.join("team"), 0, 0, 0o775);
    let chgrp = Command::new("chgrp")
        .arg(team.name())
        .arg(home.join("team"))
        .status()
        .expect("chgrp");
    assert!(chgrp.success());

    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let mappings: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(name, target)| (src.join(name).display().to_string(), json!(target)))
        .collect();
    let m = manifest(&mut c, mappings.into()).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let end = wait_end(&mut c, &t, Duration::from_secs(60));
    assert_failed(
        &mut c,
        &end,
        &["ro/x.bin", "roots/w.bin"],
        "may not write there",
    );
    for denied in ["ro", "roots"] {
        let left = std::fs::read_dir(home.join(denied)).unwrap().count();
        assert_eq!(left, 0, "nothing at all in {denied}, not even a part file");
    }
    // The others arrived, created by the user (the group directory through the user's
    // supplementary group).
    for (name, target) in [("y.bin", "ok/y.bin"), ("t.bin", "team/t.bin")] {
        let got = home.join(target);
        same(&src.join(name), &got);
        let meta = std::fs::metadata(&got).unwrap();
        assert_eq!(meta.uid(), u.uid(), "{target} belongs to the user");
    }
}
