//! `jscp` against real `jetstream server` processes on loopback, with real users and files.
#![allow(unreachable_pub)]

#[path = "jscp/crash.rs"]
mod crash;
#[path = "../../jetstream-server/tests/server/crash.rs"]
#[allow(dead_code)]
mod crash_kit;
#[path = "jscp/linkage.rs"]
mod linkage;
#[path = "jscp/sandboxes.rs"]
mod sandboxes;
#[path = "../../jetstream-server/tests/server/util.rs"]
#[allow(dead_code)]
mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::*;

const JSCP: &str = env!("CARGO_BIN_EXE_jscp");

/// `jscp` with the test's password and known-hosts file.
fn jscp(srv: &Srv, pw: &str, kh: &Path) -> Command {
    let mut c = Command::new(JSCP);
    c.env("JETSTREAM_API_PASSWORD", pw)
        .env("JETSTREAM_KNOWN_HOSTS", kh)
        .arg("-P")
        .arg(srv.api.to_string())
        .stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let o: Output = c.output().expect("run jscp");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn same_tree(a: &Path, b: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![a.to_path_buf()];
    while let Some(p) = stack.pop() {
        let rel = p.strip_prefix(a).unwrap();
        let q = b.join(rel);
        let meta = std::fs::metadata(&p).unwrap();
        if meta.is_dir() {
            assert!(q.is_dir(), "{} missing", q.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert!(
                std::fs::read(&p).unwrap() == std::fs::read(&q).unwrap(),
                "{} differs",
                q.display()
            );
            n += 1;
        }
    }
    n
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn the_seed_examples_land_where_the_seed_says() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let kh = root.join("kh");
    let src = root.join("source/my_file");
    write(&src, &data(70_000, 11));
    let user_at = |host_path: &str| format!("{}@127.0.0.1:{host_path}", u.name());

    // No sandbox: the target path alone decides (kept inside the scratch dir here, in a
    // directory the user may write: the server writes with the user's rights).
    let open = Srv::start(root, "open", &[]);
    let target = root.join("target/my_file");
    std::fs::create_dir(root.join("target")).expect("mkdir target");
    std::os::unix::fs::chown(root.join("target"), Some(u.uid()), Some(u.gid())).expect("chown");
    let (code, out, err) = run(jscp(&open, &pw, &kh)
        .arg("--accept-new-host")
        .arg(&src)
        .arg(user_at(target.to_str().unwrap())));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("sent 68.36 KiB in "),
        "summary line: {out:?}"
    );
    assert!(std::fs::read(&target).unwrap() == std::fs::read(&src).unwrap());

    // Sandboxed at /storage: sandbox + target; with -d /project: sandbox + path + target.
    let storage = root.join("storage");
    let boxed = Srv::start(root, "boxed", &["--sandbox-dir", storage.to_str().unwrap()]);
    let (code, _, err) = run(jscp(&boxed, &pw, &kh)
        .arg("--accept-new-host")
        .arg(&src)
        .arg(user_at("/target/my_file")));
    assert_eq!(code, 0, "{err}");
    assert!(storage.join("target/my_file").is_file());
    let (code, _, err) = run(jscp(&boxed, &pw, &kh)
        .args(["-d", "/project"])
        .arg(&src)
        .arg(user_at("/target/my_file")));
    assert_eq!(code, 0, "{err}");
    let landed = storage.join("project/target/my_file");
    assert!(std::fs::read(&landed).unwrap() == std::fs::read(&src).unwrap());
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&landed).unwrap()),
        u.uid()
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn push_and_pull_a_tree_of_two_thousand_files_with_json_progress() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        b,
        storage,
        ..
    } = Pair::new(false);
    let root = dir.path();
    let kh = root.join("kh");
    let tree = root.join("tree");
    for i in 0..2000u64 {
        let len = (i * 997 % 20_000) as usize;
        write(
            &tree.join(format!("d{}/f{i:04}.bin", i % 17)),
            &data(len, i),
        );
    }
    std::fs::create_dir_all(tree.join("empty/inner")).unwrap();
    let remote = format!("{}@127.0.0.1:/incoming/", u.name());
    let (code, out, err) = run(jscp(&b, &pw, &kh)
        .args(["--accept-new-host", "--json", "-r"])
        .arg(&tree)
        .arg(&remote));
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(events[0]["event"], "start");
    assert_eq!(events[0]["totalFiles"], 2001);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "complete", "{last}");
    assert_eq!(last["files"], 2001);
    let progress: Vec<&Value> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert!(!progress.is_empty(), "at least one progress event");
    assert!(progress
        .iter()
        .all(|e| e["bytes"].as_u64().unwrap() <= e["totalBytes"].as_u64().unwrap()));
    assert_eq!(same_tree(&tree, &storage.join("incoming/tree")), 2000);
    assert!(storage.join("incoming/tree/empty/inner").is_dir());

    // Pull it back, into a new local directory name (like cp -r).
    let back = root.join("back");
    let (code, out, err) = run(jscp(&b, &pw, &kh)
        .args(["-r", &format!("{}@127.0.0.1:/incoming/tree", u.name())])
        .arg(&back));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("received "), "{out}");
    assert_eq!(same_tree(&tree, &back), 2000);
    // A single file, pulled to a new name.
    let one = root.join("one.bin");
    let (code, _, err) = run(jscp(&b, &pw, &kh)
        .arg(format!(
            "{}@127.0.0.1:/incoming/tree/d3/f0003.bin",
            u.name()
        ))
        .arg(&one));
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&one).unwrap() == std::fs::read(tree.join("d3/f0003.bin")).unwrap());
    // -q: nothing on stdout.
    let (code, out, _) = run(jscp(&b, &pw, &kh)
        .arg("-q")
        .arg(tree.join("d0/f0000.bin"))
        .arg(&remote));
    assert_eq!((code, out.as_str()), (0, ""));
}

/// Starts a rate-limited `--json` push and returns once it has moved `fraction` of the file.
/// The caller waits for the child; if an assertion fails first, the test ends and the copy
/// ends with it (its server goes away).
#[allow(clippy::zombie_processes)]
fn start_push(
    b: &Srv,
    pw: &str,
    kh: &Path,
    src: &Path,
    remote: &str,
    fraction: f64,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = jscp(b, pw, kh)
        .args(["--json", "-r", "-l", "150000"])
        .arg(src)
        .arg(remote)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "jscp ended early");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "progress" && v["percent"].as_f64().unwrap_or(0.0) >= fraction * 100.0 {
            return (child, lines);
        }
        assert!(Instant::now() < deadline, "no progress");
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn ctrl_c_and_kill_leave_a_state_that_resumes() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        b,
        storage,
        ..
    } = Pair::new(false);
    let root = dir.path();
    let kh = root.join("kh");
    // Trust the server once.
    let small = root.join("small");
    write(&small, b"hi");
    let remote = format!("{}@127.0.0.1:/big.bin", u.name());
    let (code, _, err) = run(jscp(&b, &pw, &kh)
        .arg("--accept-new-host")
        .arg(&small)
        .arg(format!("{}@127.0.0.1:/s", u.name())));
    assert_eq!(code, 0, "{err}");
    let size = 64 << 20;
    let src = root.join("big.bin");
    write(&src, &data(size, 21));

    // Ctrl-C: exits 130 with a hint, and nothing partial is at the final path.
    let (mut child, _lines) = start_push(&b, &pw, &kh, &src, &remote, 0.2);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    assert!(
        !storage.join("big.bin").exists(),
        "a partial file is never presented as complete"
    );

    // SIGKILL further on.
    let (mut child, _lines) = start_push(&b, &pw, &kh, &src, &remote, 0.3);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!storage.join("big.bin").exists());

    // Again, with --resume: completes, and sends only what is missing.
    let (code, out, err) = run(jscp(&b, &pw, &kh)
        .args(["--resume", "--json"])
        .arg(&src)
        .arg(&remote));
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let sent = done["bytesSent"].as_u64().unwrap();
    eprintln!("resumed run sent {sent} bytes for a {size}-byte file");
    assert!(
        sent < size as u64 * 85 / 100,
        "resumed, not restarted: {sent}"
    );
    assert!(std::fs::read(storage.join("big.bin")).unwrap() == std::fs::read(&src).unwrap());
}

/// A stdout whose reader is gone before `jscp` writes a byte (as after `jscp … | head` once
/// `head` has exited): one end of a socket pair whose other end is closed, so every write
/// fails with EPIPE, deterministically.
fn closed_stdout() -> Stdio {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    drop(theirs);
    Stdio::from(std::os::fd::OwnedFd::from(ours))
}

/// What every run with a closed stdout must show: an ordinary exit (no signal, no abort),
/// no panic message.
fn assert_ended_quietly(o: &Output, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), None, "{what}: killed by a signal; {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(o.status.code(), Some(0), "{what}: {err}");
}

#[test]
fn a_closed_stdout_is_no_reason_to_panic() {
    for arg in ["--help", "--version"] {
        let o = Command::new(JSCP)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(closed_stdout())
            .output()
            .expect("run jscp");
        assert_ended_quietly(&o, arg);
    }
}

/// `jscp --json … | head -1`: the reader goes away, the copy does not.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_copy_goes_on_when_its_progress_reader_goes_away() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let kh = root.join("kh");
    let src = root.join("f.bin");
    write(&src, &data(300_000, 5));
    let srv = Srv::start(root, "epipe", &[]);
    std::fs::create_dir(root.join("target")).expect("mkdir target");
    std::os::unix::fs::chown(root.join("target"), Some(u.uid()), Some(u.gid())).expect("chown");
    let target = root.join("target/f.bin");
    for mode in ["--json", "--verbose"] {
        let _ = std::fs::remove_file(&target);
        let o = jscp(&srv, &pw, &kh)
            .args(["--accept-new-host", mode])
            .arg(&src)
            .arg(format!("{}@127.0.0.1:{}", u.name(), target.display()))
            .stdout(closed_stdout())
            .output()
            .expect("run jscp");
        assert_ended_quietly(&o, mode);
        assert!(std::fs::read(&target).unwrap() == std::fs::read(&src).unwrap());
    }
}

#[test]
#[ignore = "needs root: system users (PAM), mounts a tmpfs"]
fn each_failure_has_its_exit_code_and_a_message_that_says_what_to_do() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        b,
        storage,
        ..
    } = Pair::new(false);
    let root = dir.path();
    let kh = root.join("kh");
    let src = root.join("f.txt");
    write(&src, b"data");
    let remote = format!("{}@127.0.0.1:/f.txt", u.name());
    // Unknown server key, not a terminal: refused (4) with the way to accept it.
    let (code, _, err) = run(jscp(&b, &pw, &kh).arg(&src).arg(&remote));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("--accept-new-host"), "{err}");
    run(jscp(&b, &pw, &kh)
        .arg("--accept-new-host")
        .arg(&src)
        .arg(&remote));
    // Usage (2).
    let (code, _, err) = run(jscp(&b, &pw, &kh).arg("--bogus").arg(&src).arg(&remote));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(jscp(&b, &pw, &kh).arg(root).arg(&remote));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("use -r"), "{err}");
    // Wrong password (3).
    let (code, _, err) = run(jscp(&b, "wrong", &kh).arg(&src).arg(&remote));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("authentication failed") && err.contains("JETSTREAM_API_PASSWORD"),
        "{err}"
    );
    // Port closed (4).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, _, err) = run(Command::new(JSCP)
        .env("JETSTREAM_API_PASSWORD", &pw)
        .env("JETSTREAM_KNOWN_HOSTS", &kh)
        .args(["-P", &port.to_string()])
        .arg(&src)
        .arg(&remote));
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("refused") && err.contains(&port.to_string()),
        "{err}"
    );
    // Outside the sandbox (5).
    let (code, _, err) = run(jscp(&b, &pw, &kh)
        .args(["-d", "/../../etc"])
        .arg(&src)
        .arg(&remote));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("escapes the sandbox"), "{err}");
    // A missing local source (6).
    let (code, _, err) = run(jscp(&b, &pw, &kh).arg(root.join("nope")).arg(&remote));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("nope"), "{err}");
    // The receiver's disk is full (1): a 1 MiB tmpfs as the target directory.
    let small = storage.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "jstest",
            small.to_str().unwrap(),
        ])
        .status()
        .unwrap()
        .success();
    if mounted {
        let big = root.join("big.bin");
        write(&big, &data(3 << 20, 2));
        let (code, _, err) = run(jscp(&b, &pw, &kh)
            .arg(&big)
            .arg(format!("{}@127.0.0.1:/small/big.bin", u.name())));
        let _ = Command::new("umount").arg(&small).status();
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("disk is full") || err.contains("No space"),
            "{err}"
        );
    } else {
        jetstream_server::users::test_support::skip("disk-full case: cannot mount a tmpfs");
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_shared_token_downloads_its_files_until_its_limit_or_expiry() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        b,
        storage,
        ..
    } = Pair::new(false);
    let root = dir.path();
    let kh = root.join("kh");
    // On the sandboxed server, inside the user's sandbox.
    let tree = storage.join("shared");
    write(&tree.join("a.txt"), b"aaa");
    write(&tree.join("sub/b.bin"), &data(100_000, 8));
    let mut c = b.login(u.name(), &pw);
    let info = c.call("getServerInfo", serde_json::json!({})).unwrap();
    assert_eq!(info["sharedTokensAvailable"], true);
    let m = manifest(&mut c, serde_json::json!({ "/shared": "/pub" })).unwrap();
    let t = c
        .call(
            "send.createSharedToken",
            serde_json::json!({"manifestId": m, "downloadLimit": 2, "password": "pp"}),
        )
        .unwrap();
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(
        (t["downloadCount"].as_u64(), t["downloadLimit"].as_u64()),
        (Some(0), Some(2))
    );

    // A recipient with only the token (and its passphrase) pulls the files.
    let fetch = |into: &str, passphrase: &str| {
        run(Command::new(JSCP)
            .env("JETSTREAM_API_PASSWORD", passphrase)
            .env("JETSTREAM_KNOWN_HOSTS", &kh)
            .args([
                "--accept-new-host",
                "-P",
                &b.api.to_string(),
                "--token",
                &token,
                "127.0.0.1:",
            ])
            .arg(root.join(into))
            .stdin(Stdio::null()))
    };
    let (code, _, err) = fetch("one", "wrong");
    assert_eq!(code, 3, "{err}");
    for into in ["one", "two"] {
        let (code, _, err) = fetch(into, "pp");
        assert_eq!(code, 0, "{err}");
        assert_eq!(same_tree(&tree, &root.join(into).join("pub")), 2);
    }
    let (code, _, err) = fetch("three", "pp");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("limit"), "{err}");
    let t = c
        .call("send.getSharedToken", serde_json::json!({"token": token}))
        .unwrap();
    assert_eq!(t["downloadCount"], 2);

    // The token reaches nothing else.
    let mut r = b.client();
    r.call(
        "authToken",
        serde_json::json!({"token": token, "password": "pp"}),
    )
    .unwrap();
    let e = r
        .call(
            "send.createManifest",
            serde_json::json!({"fileMappings": {"/etc": "/x"}}),
        )
        .unwrap_err();
    assert!(e.to_string().contains("only allows downloading"), "{e}");
    assert!(r
        .call("send.getDestinations", serde_json::json!({}))
        .is_err());

    // Expired and deleted tokens stop at once.
    let t = c
        .call(
            "send.createSharedToken",
            serde_json::json!({"manifestId": m, "expirySeconds": 1}),
        )
        .unwrap();
    let short = t["token"].as_str().unwrap().to_owned();
    let mut early = b.client();
    early
        .call("authToken", serde_json::json!({"token": short}))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(b
        .client()
        .call("authToken", serde_json::json!({"token": short}))
        .is_err());
    let e = early
        .call("send.getManifest", serde_json::json!({"manifestId": m}))
        .unwrap_err();
    assert!(e.to_string().contains("expired or was deleted"), "{e}");
    c.call(
        "send.deleteSharedToken",
        serde_json::json!({"token": token}),
    )
    .unwrap();
    let (code, _, err) = fetch("four", "pp");
    assert_eq!(code, 3, "{err}");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn shared_tokens_can_be_switched_off() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &["--api-disable-shared-tokens"]);
    let mut c = s.login(u.name(), &pw);
    assert_eq!(
        c.call("getServerInfo", serde_json::json!({})).unwrap()["sharedTokensAvailable"],
        false
    );
    let e = c
        .call(
            "send.createSharedToken",
            serde_json::json!({"manifestId": "0".repeat(32)}),
        )
        .unwrap_err();
    assert!(e.to_string().contains("disabled"), "{e}");
}
