//! Storage faults: the receiver's disk fills up, a source file cannot be read (EIO), a target
//! directory is read-only. Each fails only the files concerned, with a clear status and
//! message in the API and the event log; the other files and transfers complete, and nothing
//! partial is ever at a final path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_client::client::ApiClient;
use jetstream_server::users::test_support;
use serde_json::{json, Value};

use super::util::*;

/// A mount made by the test, unmounted (lazily, so that a busy one goes too) on drop,
/// together with the process serving it, if any.
struct Mounted {
    at: PathBuf,
    server: Option<Child>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        if let Some(c) = &mut self.server {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Mounts a tmpfs with `options` (e.g. `size=16m`) at `at`, or says why it cannot.
fn tmpfs(at: &Path, options: &str) -> Option<Mounted> {
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("{options},mode=0777"),
            "jstest",
        ])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        test_support::skip(&format!("cannot mount a tmpfs at {}", at.display()));
    }
    ok.then(|| Mounted {
        at: at.to_owned(),
        server: None,
    })
}

/// A FUSE file system (Python, fusepy) that mirrors `src` read-only at `mnt` and answers
/// EIO to any read of `bad` that reaches `at` bytes or beyond: a real `read()` failing with
/// EIO mid-file, as a failing disk would. (This kernel has no device-mapper, so no
/// `dm-error` target; FUSE is the closest real source of EIO.)
const EIO_FS: &str = r#"
import errno, os, sys
from fusepy import FUSE, FuseOSError, Operations
src, mnt, bad, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
class Mirror(Operations):
    def _p(self, p):
        return os.path.join(src, p.lstrip('/'))
    def getattr(self, p, fh=None):
        st = os.lstat(self._p(p))
        keys = ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_atime', 'st_mtime',
                'st_ctime', 'st_ino')
        return {k: getattr(st, k) for k in keys}
    def readdir(self, p, fh):
        return ['.', '..'] + os.listdir(self._p(p))
    def open(self, p, flags):
        return os.open(self._p(p), os.O_RDONLY)
    def read(self, p, size, off, fh):
        if p.lstrip('/') == bad and off + size > at:
            raise FuseOSError(errno.EIO)
        return os.pread(fh, size, off)
    def release(self, p, fh):
        os.close(fh)
FUSE(Mirror(), mnt, foreground=True, ro=True, allow_other=True, use_ino=True, nothreads=True)
"#;

/// Debian's Python, where the `python3-fusepy` package installs.
const PYTHON: &str = "/usr/bin/python3";

fn eio_fs(dir: &Path, src: &Path, mnt: &Path, bad: &str, at: u64) -> Option<Mounted> {
    // /dev/fuse comes with the kernel, not a package: its absence is a skip even under CI.
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: needs /dev/fuse (FUSE in the kernel)");
        return None;
    }
    let has_fusepy = runs(PYTHON, &["-c", "import fusepy"]);
    if !need(
        has_fusepy,
        &format!("{PYTHON} with fusepy"),
        "python3-fusepy",
    ) {
        return None;
    }
    let script = dir.join("eiofs.py");
    std::fs::write(&script, EIO_FS).unwrap();
    std::fs::create_dir_all(mnt).unwrap();
    let child = Command::new(PYTHON)
        .arg(&script)
        .arg(src)
        .arg(mnt)
        .arg(bad)
        .arg(at.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the FUSE file system");
    let m = Mounted {
        at: mnt.to_owned(),
        server: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mnt.join(bad).exists() {
        assert!(Instant::now() < deadline, "the FUSE mount did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(m)
}

/// The transfer's `transferUpdated` entries in the sender's event log.
fn events_of(c: &mut ApiClient, id: &str) -> Vec<Value> {
    let log = c
        .call("getEventLog", json!({"events": ["transferUpdated"]}))
        .expect("getEventLog");
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["transferId"] == id)
        .cloned()
        .collect()
}

/// Checks a transfer that ended in error because of `failed` (destination paths, each with
/// a message containing `why`; with none, the transfer's own message must contain it): the
/// API view, then the event log (which lags a little).
pub fn assert_failed(c: &mut ApiClient, end: &Value, failed: &[&str], why: &str) {
    assert_eq!(end["status"], "error", "{end}");
    let msg = end["errorMessage"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "an error needs a message: {end}");
    assert!(
        !failed.is_empty() || msg.contains(why),
        "{msg:?} should say {why:?}"
    );
    let list = end["failedFiles"].as_array().unwrap();
    let paths: Vec<&str> = list.iter().filter_map(|f| f["destPath"].as_str()).collect();
    for f in failed {
        let e = list.iter().find(|e| e["destPath"].as_str() == Some(*f));
        let e = e.unwrap_or_else(|| panic!("{f} not in failedFiles {paths:?}: {end}"));
        let m = e["errorMessage"].as_str().unwrap_or("");
        assert!(m.contains(why), "{f}: {m:?} should say {why:?}");
    }
    assert_eq!(list.len(), failed.len(), "only those fail: {paths:?}");
    let id = end["transferId"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let evs = events_of(c, id);
        if let Some(last) = evs.last().filter(|e| e["status"] == "error") {
            assert_eq!(last["errorMessage"], end["errorMessage"], "{last}");
            assert_eq!(last["failedFiles"], end["failedFiles"], "{last}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error in the event log: {evs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("status error: {msg}; failedFiles {}", end["failedFiles"]);
}

/// Asserts `got` holds the same bytes as `want`.
pub fn same(want: &Path, got: &Path) {
    let (w, g) = (std::fs::read(want).unwrap(), std::fs::read(got));
    assert!(g.is_ok_and(|g| g == w), "{} differs", got.display());
}

/// No file but part files (`.*.jspart`) below `dir`; returns how many part files there are.
fn only_part_files(dir: &Path) -> usize {
    let mut parts = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if p.is_dir() {
            if name != ".jetstream-resume" {
                parts += only_part_files(&p);
            }
        } else {
            assert!(
                name.starts_with('.') && name.ends_with(".jspart"),
                "{} is at a final path",
                p.display()
            );
            parts += 1;
        }
    }
    parts
}

#[test]
#[ignore = "needs root: system users (PAM), mounts a tmpfs"]
fn a_full_disk_fails_the_file_that_overflows_and_nothing_else() {
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
    } = Pair::new(false);
    let root = dir.path();
    let Some(_full) = tmpfs(&storage.join("full"), "size=16m") else {
        return;
    };
    let src = root.join("src");
    write(&src.join("a.bin"), &data(1 << 20, 1));
    write(&src.join("b.bin"), &data(1 << 20, 2));
    write(&src.join("big.bin"), &data(24 << 20, 3));
    let other = root.join("other");
    write(&other.join("o.bin"), &data(8 << 20, 4));
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let m1 = manifest(&mut c, json!({ src.to_str().unwrap(): "/full" })).unwrap();
    let m2 = manifest(&mut c, json!({ other.to_str().unwrap(): "/other" })).unwrap();
    let t1 = transfer(&mut c, &d, &m1, None);
    let t2 = transfer(&mut c, &d, &m2, None);
    let end = wait_end(&mut c, &t1, Duration::from_secs(60));
    assert_failed(&mut c, &end, &["full/big.bin"], "disk is full");
    // The typed reasons, for programs (next to the words).
    assert_eq!(end["errorCode"], "files_failed", "{end}");
    assert_eq!(end["failedFiles"][0]["errorCode"], "no_space", "{end}");
    assert!(!storage.join("full/big.bin").exists(), "partial file shown");
    same(&src.join("a.bin"), &storage.join("full/a.bin"));
    same(&src.join("b.bin"), &storage.join("full/b.bin"));
    let end2 = wait_end(&mut c, &t2, Duration::from_secs(60));
    assert_eq!(end2["status"], "complete", "{end2}");
    same(&other.join("o.bin"), &storage.join("other/o.bin"));
    let left = std::fs::read_dir(storage.join("full"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    eprintln!("left on the full disk: {left:?}");
}

#[test]
#[ignore = "needs root: system users (PAM), mounts a FUSE file system"]
fn a_read_error_on_the_sender_fails_that_file_alone_with_a_clear_message() {
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
    } = Pair::new(false);
    let root = dir.path();
    let real = root.join("real");
    write(&real.join("a_good.bin"), &data(3 << 20, 5));
    // In the middle of the manifest: the sender marks that entry failed and carries on.
    write(&real.join("m_bad.bin"), &data(8 << 20, 7));
    write(&real.join("z_good.bin"), &data(3 << 20, 6));
    let other = root.join("other");
    write(&other.join("o.bin"), &data(8 << 20, 8));
    let mnt = root.join("mnt");
    // Reads of m_bad.bin fail from 5 MiB on: after its first chunks have gone out.
    let Some(_fs) = eio_fs(root, &real, &mnt, "m_bad.bin", 5 << 20) else {
        return;
    };
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let m = manifest(&mut c, json!({ mnt.to_str().unwrap(): "/eio" })).unwrap();
    let m2 = manifest(&mut c, json!({ other.to_str().unwrap(): "/other" })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let t2 = transfer(&mut c, &d, &m2, None);
    let end = wait_end(&mut c, &t, Duration::from_secs(60));
    assert_failed(&mut c, &end, &["eio/m_bad.bin"], "Input/output error");
    same(&real.join("a_good.bin"), &storage.join("eio/a_good.bin"));
    same(&real.join("z_good.bin"), &storage.join("eio/z_good.bin"));
    assert!(
        !storage.join("eio/m_bad.bin").exists(),
        "partial file shown"
    );
    // The receiver says why too.
    let mut r = b.login(u.name(), &pw);
    let recs = r
        .call("recv.getTransfers", json!({}))
        .expect("recv.getTransfers");
    let text = recs.to_string();
    assert!(
        text.contains("the sender could not read the source file"),
        "the receiver's record says why: {text}"
    );
    let end2 = wait_end(&mut c, &t2, Duration::from_secs(60));
    assert_eq!(end2["status"], "complete", "{end2}");
    same(&other.join("o.bin"), &storage.join("other/o.bin"));
}

#[test]
#[ignore = "needs root: system users (PAM), mounts a tmpfs"]
fn a_read_only_target_directory_fails_its_files_and_nothing_else() {
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
    } = Pair::new(false);
    let root = dir.path();
    let src = root.join("src");
    write(&src.join("x.bin"), &data(2 << 20, 8));
    write(&src.join("y.bin"), &data(2 << 20, 9));
    write(&src.join("z.bin"), &data(2 << 20, 10));
    // A read-only mount, which binds root too. (Directories the user may not write to are
    // tested in perms.rs: the engine writes with the user's identity.)
    let ro = storage.join("ro");
    let Some(_ro) = tmpfs(&ro, "ro,size=1m") else {
        return;
    };
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let m = manifest(
        &mut c,
        json!({
            src.join("x.bin").to_str().unwrap(): "/ro/x.bin",
            src.join("y.bin").to_str().unwrap(): "/ok/y.bin",
        }),
    )
    .unwrap();
    let m2 = manifest(
        &mut c,
        json!({ src.join("z.bin").to_str().unwrap(): "/ok2/z.bin" }),
    )
    .unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let t2 = transfer(&mut c, &d, &m2, None);
    let end = wait_end(&mut c, &t, Duration::from_secs(60));
    assert_failed(&mut c, &end, &["ro/x.bin"], "may not write there");
    assert_eq!(
        only_part_files(&ro),
        0,
        "nothing at all in the read-only directory"
    );
    same(&src.join("y.bin"), &storage.join("ok/y.bin"));
    let end2 = wait_end(&mut c, &t2, Duration::from_secs(60));
    assert_eq!(end2["status"], "complete", "{end2}");
    same(&src.join("z.bin"), &storage.join("ok2/z.bin"));
}
