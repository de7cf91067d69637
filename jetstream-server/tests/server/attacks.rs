//! Authentication attacks (issue #7, item 5): a sandboxed user trying to reach outside the
//! sandbox through every API command that takes a path, users reaching each other's objects,
//! password and token guessing, token strength and lifetime.
//!
//! `cargo test -p jetstream-server --test server attacks -- --nocapture --test-threads 1`
//! prints the escape table and the guessing figures.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jetstream_client::client::{ApiClient, ClientError};
use jetstream_server::users::test_support::TestUser;
use serde_json::{json, Value};

use super::util::*;

const T: Duration = Duration::from_secs(30);

/// What one escape attempt goes through.
enum Via {
    /// `send.createManifest` with this source and target (then a transfer, if it builds).
    Manifest(String, String),
    /// `send.createTransfer` of a good manifest with this `destinationPath`.
    Transfer(String),
    /// `recv.startTransfer` straight at the receiver (TLS) with this `destinationPath`.
    Receive(String),
    /// `createAPIToken {path}`, then a manifest of this source through a token login.
    Token(String, String),
    /// A shared-token session calling this command with these parameters.
    Shared(&'static str, Value),
    /// A source file (0) or directory (1) swapped for a link after `createManifest`.
    Swap(u8),
    /// The user making a hard link to this file outside.
    HardLink(&'static str),
}

struct Row {
    what: String,
    via: Via,
    /// Must be refused (a plain `..` escape); other rows may also be taken literally.
    refuse: bool,
}

fn row(what: &str, via: Via, refuse: bool) -> Row {
    Row {
        what: what.to_owned(),
        via,
        refuse,
    }
}

/// A sandboxed user on a sending server `a` (sandbox `sa/%u`) and a receiving server `b`
/// (`sb/%u`), with a canary outside both.
struct Arena {
    user: TestUser,
    pw: String,
    dir: tempfile::TempDir,
    a: Srv,
    b: Srv,
    sa: PathBuf,
    sb: PathBuf,
    outside: PathBuf,
    c: ApiClient,
    dest: String,
    ok_manifest: String,
    shared: ApiClient,
}

fn give(path: &Path, u: &TestUser) {
    lchown(path, Some(u.uid()), Some(u.gid())).expect("lchown");
}

impl Arena {
    fn new() -> Self {
        let (user, pw) = user();
        let dir = scratch();
        let d = dir.path().to_path_buf();
        let outside = d.join("outside");
        write(&outside.join("canary.bin"), &canary());
        write(&outside.join("secret.bin"), &secret());
        fs::set_permissions(
            outside.join("secret.bin"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        write(&outside.join("victim.txt"), b"untouched");
        let sa = d.join("sa").join(user.name());
        let sb = d.join("sb").join(user.name());
        for p in [&sa, &sb] {
            fs::create_dir_all(p).unwrap();
            give(p, &user);
        }
        let files: [(&str, Vec<u8>); 5] = [
            ("ok.bin", data(1000, 7)),
            ("dir/a.txt", b"a".to_vec()),
            ("swap.bin", vec![1; secret().len()]),
            ("sd/secret.bin", vec![2; secret().len()]),
            ("swap2.bin", vec![3; canary().len()]),
        ];
        for (name, bytes) in files {
            write(&sa.join(name), &bytes);
            give(&sa.join(name), &user);
            give(sa.join(name).parent().unwrap(), &user);
        }
        let canary_path = outside.join("canary.bin");
        let links = [
            (sa.join("lnfile"), canary_path.clone()),
            (sa.join("lndir"), outside.clone()),
            (sa.join("dangling"), outside.join("none")),
            (
                sa.join("lnproc"),
                Path::new("/proc/self/root").join(canary_path.strip_prefix("/").unwrap()),
            ),
            (sa.join("lnrel"), PathBuf::from("../../outside/canary.bin")),
            (
                sa.join("dir/inner"),
                PathBuf::from("../../../outside/canary.bin"),
            ),
            (sb.join("rlink"), outside.clone()),
            (sb.join("rfile"), outside.join("victim.txt")),
        ];
        for (at, to) in links {
            symlink(&to, &at).unwrap();
            give(&at, &user);
        }
        let a = Srv::start(
            &d,
            "a",
            &["--sandbox-dir", &format!("{}/sa/%u", d.display())],
        );
        let b = Srv::start(
            &d,
            "b",
            &["--sandbox-dir", &format!("{}/sb/%u", d.display())],
        );
        let mut c = a.login(user.name(), &pw);
        let dest = destination(&mut c, &b, user.name(), &pw, json!({}));
        let ok_manifest = manifest(&mut c, json!([["/ok.bin", "/ok.bin"]])).unwrap();
        let t = c
            .call(
                "send.createSharedToken",
                json!({"manifestId": ok_manifest, "password": "spw"}),
            )
            .unwrap();
        let mut shared = a.tls_client();
        shared
            .call("authToken", json!({"token": t["token"], "password": "spw"}))
            .unwrap();
        Self {
            user,
            pw,
            dir,
            a,
            b,
            sa,
            sb,
            outside,
            c,
            dest,
            ok_manifest,
            shared,
        }
    }

    /// A manifest of `src` → `dst` through `c`, then a transfer with it.
    fn manifest_then_send(c: &mut ApiClient, dest: &str, src: &str, dst: &str) -> String {
        match manifest(c, json!([[src, dst]])) {
            Err(e) => format!("refused: {e}"),
            Ok(m) => Self::send(c, dest, &m, None),
        }
    }

    fn send(c: &mut ApiClient, dest: &str, m: &str, path: Option<&str>) -> String {
        let t = c.call(
            "send.createTransfer",
            json!({"destinationId": dest, "manifestId": m, "destinationPath": path}),
        );
        let id = match t {
            Err(e) => return format!("refused: {e}"),
            Ok(t) => t["transferId"].as_str().unwrap().to_owned(),
        };
        let end = wait_end(c, &id, T);
        match end["status"].as_str() {
            Some("complete") => format!("taken literally, landed inside: {}", landed(c, m)),
            _ => format!(
                "transfer {}: {}",
                end["status"],
                end["errorMessage"].as_str().unwrap_or("")
            ),
        }
    }

    fn run(&mut self, via: &Via) -> String {
        match via {
            Via::Manifest(src, dst) => Self::manifest_then_send(&mut self.c, &self.dest, src, dst),
            Via::Transfer(path) => {
                Self::send(&mut self.c, &self.dest, &self.ok_manifest, Some(path))
            }
            Via::Receive(path) => {
                let mut direct = self.b.tls_client();
                direct
                    .call(
                        "auth",
                        json!({"userName": self.user.name(), "password": self.pw}),
                    )
                    .unwrap();
                let r = direct.call(
                    "recv.startTransfer",
                    json!({"transferId": format!("{:032x}", rand_u64()),
                           "sessionId": "00000000000000aa", "destinationPath": path}),
                );
                match r {
                    Err(e) => format!("refused: {e}"),
                    Ok(_) => "taken literally: receive opened inside the sandbox".into(),
                }
            }
            Via::Token(path, src) => {
                let t = self
                    .c
                    .call("createAPIToken", json!({"path": path, "password": "tpw"}));
                let token = match t {
                    Err(e) => return format!("refused: createAPIToken: {e}"),
                    Ok(t) => t["token"].as_str().unwrap().to_owned(),
                };
                let mut tc = self.a.client();
                if let Err(e) = tc.call("authToken", json!({"token": token, "password": "tpw"})) {
                    return format!("refused: authToken: {e}");
                }
                let dest = match tc.call(
                    "send.createDestination",
                    json!({"destinationAddress": "127.0.0.1", "destinationApiPort": self.b.api,
                           "userName": self.user.name(), "password": self.pw}),
                ) {
                    Err(e) => return format!("refused: createDestination: {e}"),
                    Ok(d) => d["destinationId"].as_str().unwrap().to_owned(),
                };
                Self::manifest_then_send(&mut tc, &dest, src, "/token.bin")
            }
            Via::Shared(cmd, params) => match self.shared.call(cmd, params.clone()) {
                Err(e) => format!("refused: {e}"),
                Ok(v) => format!("answered: {v}"),
            },
            Via::Swap(kind) => self.swap(*kind),
            Via::HardLink(name) => {
                let at = self.sa.join(format!("hl-{name}"));
                let out = Command::new("ln")
                    .arg(self.outside.join(name))
                    .arg(&at)
                    .uid(self.user.uid())
                    .gid(self.user.gid())
                    .output()
                    .unwrap();
                if !out.status.success() {
                    return format!(
                        "refused by the kernel (fs.protected_hardlinks): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                let _ = fs::remove_file(&at);
                "skipped: fs.protected_hardlinks is off, the user may link the file".into()
            }
        }
    }

    /// A good source is manifested, then swapped for a link to a file outside (one the user
    /// may not read, or the world-readable canary), then sent.
    fn swap(&mut self, kind: u8) -> String {
        let (src, link_at, to, aside) = match kind {
            0 => (
                "/swap.bin",
                "swap.bin",
                self.outside.join("secret.bin"),
                None,
            ),
            1 => ("/sd/secret.bin", "sd", self.outside.clone(), Some("sd-old")),
            _ => (
                "/swap2.bin",
                "swap2.bin",
                self.outside.join("canary.bin"),
                None,
            ),
        };
        let m = match manifest(&mut self.c, json!([[src, format!("/swapped{kind}")]])) {
            Err(e) => return format!("refused: {e}"),
            Ok(m) => m,
        };
        let at = self.sa.join(link_at);
        match aside {
            Some(name) => fs::rename(&at, self.sa.join(name)).unwrap(),
            None => fs::remove_file(&at).unwrap(),
        }
        symlink(&to, &at).unwrap();
        give(&at, &self.user);
        Self::send(&mut self.c, &self.dest, &m, None)
    }
}

/// What a completed transfer's manifest put where.
fn landed(c: &mut ApiClient, m: &str) -> String {
    let f = c
        .call("send.getManifestFiles", json!({ "manifestId": m }))
        .unwrap();
    let names: Vec<String> = f["fileMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let d = m["destPath"].as_str().unwrap_or("");
            if d.len() > 40 {
                format!("{}…({} chars)", &d[..20], d.len())
            } else {
                d.to_owned()
            }
        })
        .collect();
    names.join(", ")
}

fn canary() -> Vec<u8> {
    data(64 << 10, 0xC0FF_EE00)
}

fn secret() -> Vec<u8> {
    data(4096, 0x5EC2_E700)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Every regular file below `dir` (links not followed), with its bytes.
fn files_below(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            files_below(&e.path(), out);
        } else if ft.is_file() {
            out.push((e.path(), fs::read(e.path()).unwrap_or_default()));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn escape_rows(d: &Path, uid: u32) -> Vec<Row> {
    use Via::{Manifest as M, Receive as R, Shared as S, Token as K, Transfer as X};
    let s = |x: &str| x.to_owned();
    let canary = d.join("outside/canary.bin").display().to_string();
    let outside = d.join("outside").display().to_string();
    let deep_up = format!("/{}etc/passwd", "../".repeat(2000));
    vec![
        // Sources (read side): all resolved inside the sandbox, no link followed.
        row(
            "source ../../outside",
            M(s("../../outside/canary.bin"), s("/x")),
            true,
        ),
        row(
            "source /../../outside",
            M(s("/../../outside/canary.bin"), s("/x")),
            true,
        ),
        row(
            "source ok.bin/../../../x",
            M(s("ok.bin/../../../outside/canary.bin"), s("/x")),
            true,
        ),
        row(
            "source //..//..//outside",
            M(s("//..//..//outside/canary.bin"), s("/x")),
            true,
        ),
        row("source /./../outside", M(s("/./../outside"), s("/x")), true),
        row("source /../ x2000 etc/passwd", M(deep_up, s("/x")), true),
        row(
            "source absolute path of the canary",
            M(canary.clone(), s("/x")),
            true,
        ),
        row(
            "source /proc/self/root/<canary>",
            M(format!("/proc/self/root{canary}"), s("/x")),
            true,
        ),
        row(
            "source NUL byte",
            M(s("/ok.bin\0/../../outside/canary.bin"), s("/x")),
            true,
        ),
        row(
            "source backslashes ..\\..\\",
            M(s("..\\..\\outside\\canary.bin"), s("/x")),
            true,
        ),
        row(
            "source percent-encoded %2e%2e",
            M(s("%2e%2e/%2e%2e/outside/canary.bin"), s("/x")),
            true,
        ),
        row(
            "source fullwidth dots \u{FF0E}\u{FF0E}",
            M(
                s("\u{FF0E}\u{FF0E}/\u{FF0E}\u{FF0E}/outside/canary.bin"),
                s("/x"),
            ),
            true,
        ),
        row(
            "source trailing slash on a file",
            M(s("/ok.bin/"), s("/x")),
            false,
        ),
        row(
            "source link -> canary (file)",
            M(s("/lnfile"), s("/x")),
            true,
        ),
        row(
            "source link -> outside (directory)",
            M(s("/lndir"), s("/x")),
            true,
        ),
        row(
            "source through a linked directory",
            M(s("/lndir/canary.bin"), s("/x")),
            true,
        ),
        row(
            "source relative link ../../outside",
            M(s("/lnrel"), s("/x")),
            true,
        ),
        row(
            "source link via /proc/self/root",
            M(s("/lnproc"), s("/x")),
            true,
        ),
        row("source dangling link", M(s("/dangling"), s("/x")), true),
        row(
            "source directory holding a link out",
            M(s("/dir"), s("/dir")),
            false,
        ),
        row(
            "source the whole sandbox (links inside)",
            M(s("/"), s("/all")),
            false,
        ),
        // Targets (write side).
        row("target ../pwn", M(s("/ok.bin"), s("../pwn")), true),
        row("target /../../pwn", M(s("/ok.bin"), s("/../../pwn")), true),
        row(
            "target a/../../pwn",
            M(s("/ok.bin"), s("a/../../pwn")),
            true,
        ),
        row(
            "target a/b/../../../pwn",
            M(s("/ok.bin"), s("a/b/../../../pwn")),
            true,
        ),
        row("target NUL byte", M(s("/ok.bin"), s("a\0/../../pwn")), true),
        row(
            "target absolute <outside>/pwn-abs",
            M(s("/ok.bin"), format!("{outside}/pwn-abs")),
            false,
        ),
        row(
            "target /etc/jstest-<uid>",
            M(s("/ok.bin"), format!("/etc/jstest-{uid}")),
            false,
        ),
        row(
            "target //etc//jstest-dbl",
            M(s("/ok.bin"), s("//etc//jstest-dbl")),
            false,
        ),
        row(
            "target ./././x.bin",
            M(s("/ok.bin"), s("./././x.bin")),
            false,
        ),
        row(
            "target trailing slash sub/dir/",
            M(s("/ok.bin"), s("sub/dir/")),
            false,
        ),
        row(
            "target backslashes ..\\..\\pwn",
            M(s("/ok.bin"), s("..\\..\\pwn-bs")),
            false,
        ),
        row(
            "target percent-encoded ..%2f",
            M(s("/ok.bin"), s("%2e%2e%2f%2e%2e%2fpwn-pct")),
            false,
        ),
        row(
            "target one-dot leaders \u{2024}\u{2024}",
            M(s("/ok.bin"), s("\u{2024}\u{2024}/\u{2024}\u{2024}/pwn-u")),
            false,
        ),
        row(
            "target fullwidth dots \u{FF0E}\u{FF0E}",
            M(s("/ok.bin"), s("\u{FF0E}\u{FF0E}/pwn-fw")),
            false,
        ),
        row(
            "target division slash ..\u{2215}..",
            M(s("/ok.bin"), s("..\u{2215}..\u{2215}pwn-ds")),
            false,
        ),
        row(
            "target 300-byte component",
            M(s("/ok.bin"), "x".repeat(300)),
            false,
        ),
        row(
            "target 6000-byte path",
            M(s("/ok.bin"), format!("{}x", "a/".repeat(3000))),
            false,
        ),
        row(
            "target via receiver's link -> outside dir",
            M(s("/ok.bin"), s("/rlink/pwn")),
            false,
        ),
        row(
            "target = receiver's link -> outside file",
            M(s("/ok.bin"), s("/rfile")),
            false,
        ),
        row(
            "target /proc/self/root<outside>/pwn",
            M(s("/ok.bin"), format!("/proc/self/root{outside}/pwn-proc")),
            false,
        ),
        // Destination paths at the sender.
        row("destinationPath ../", X(s("../")), true),
        row("destinationPath /../outside", X(s("/../outside")), true),
        row(
            "destinationPath a/../../outside",
            X(s("a/../../outside")),
            true,
        ),
        row("destinationPath NUL byte", X(s("a\0")), true),
        row(
            "destinationPath absolute <outside>",
            X(outside.clone()),
            false,
        ),
        row(
            "destinationPath receiver's link /rlink",
            X(s("/rlink")),
            false,
        ),
        row(
            "destinationPath below the link /rlink/sub",
            X(s("/rlink/sub")),
            false,
        ),
        row("destinationPath ..\\..", X(s("..\\..")), false),
        row("destinationPath %2e%2e", X(s("%2e%2e")), false),
        // Destination paths straight at the receiver (it never trusts the sender).
        row("recv.startTransfer ..", R(s("..")), true),
        row(
            "recv.startTransfer /../../outside",
            R(s("/../../outside")),
            true,
        ),
        row("recv.startTransfer x/../../..", R(s("x/../../..")), true),
        row(
            "recv.startTransfer receiver's link /rlink",
            R(s("/rlink")),
            true,
        ),
        row(
            "recv.startTransfer through a file link /rfile/x",
            R(s("/rfile/x")),
            true,
        ),
        row("recv.startTransfer NUL byte", R(s("a\0b")), true),
        // Token `path` confinement.
        row(
            "token path ../ (above the sandbox)",
            K(s("../"), s("/ok.bin")),
            true,
        ),
        row(
            "token path /../../outside",
            K(s("/../../outside"), s("/canary.bin")),
            true,
        ),
        row(
            "token path /dir, source ../ok.bin",
            K(s("/dir"), s("../ok.bin")),
            true,
        ),
        row(
            "token path = link to outside",
            K(s("/lndir"), s("/canary.bin")),
            true,
        ),
        row(
            "token path <outside> (absolute)",
            K(outside, s("/canary.bin")),
            true,
        ),
        // Shared-token sessions: only their manifest, only downloading it.
        row(
            "shared token: createManifest",
            S(
                "send.createManifest",
                json!({"fileMappings": [["/ok.bin", "/x"]]}),
            ),
            true,
        ),
        row(
            "shared token: createTransfer ../",
            S("send.createTransfer", json!({"destinationPath": "../"})),
            true,
        ),
        row(
            "shared token: createAPIToken path /",
            S("createAPIToken", json!({"path": "/"})),
            true,
        ),
        row(
            "shared token: createSharedToken",
            S("send.createSharedToken", json!({})),
            true,
        ),
        // Races and links made by the user.
        row(
            "file swapped for link -> root-only file after createManifest",
            Via::Swap(0),
            true,
        ),
        row(
            "directory swapped for link -> outside after createManifest",
            Via::Swap(1),
            true,
        ),
        row(
            "file swapped for link -> canary after createManifest",
            Via::Swap(2),
            true,
        ),
        row(
            "hard link to the canary (0644, root's)",
            Via::HardLink("canary.bin"),
            true,
        ),
        row(
            "hard link to a root-only file",
            Via::HardLink("secret.bin"),
            true,
        ),
    ]
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn a_sandboxed_user_cannot_reach_outside_the_sandbox() {
    if !can_run() {
        return;
    }
    let mut ar = Arena::new();
    let d = ar.dir.path().to_path_buf();
    let uid = ar.user.uid();
    let mut before = Vec::new();
    files_below(&ar.outside, &mut before);
    let rows = escape_rows(&d, uid);
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let started = Instant::now();
    let mut table = Vec::new();
    for r in &rows {
        let out = ar.run(&r.via);
        let cmd = match &r.via {
            Via::Manifest(..) => "createManifest+createTransfer",
            Via::Transfer(_) => "createTransfer",
            Via::Receive(_) => "recv.startTransfer",
            Via::Token(..) => "createAPIToken+authToken+createManifest",
            Via::Shared(c, _) => c,
            Via::Swap(_) => "createManifest, swap, createTransfer",
            Via::HardLink(_) => "ln (as the user)",
        };
        let mut shown: String = out.replace('\n', " ").chars().take(150).collect();
        if shown.len() < out.len() {
            shown.push('…');
        }
        println!("| {} | {} | {} |", r.what.replace('\0', "\\0"), cmd, shown);
        table.push((r, out));
    }
    println!(
        "{} attempts in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    // The must-refuse rows were refused (not merely failed later).
    for (r, out) in &table {
        if r.refuse {
            assert!(
                out.starts_with("refused")
                    || (matches!(r.via, Via::Swap(_)) && out.starts_with("transfer \"error\"")),
                "{}: {out}",
                r.what
            );
        }
    }
    // Nothing outside changed, and nothing new appeared outside.
    let mut after = Vec::new();
    files_below(&ar.outside, &mut after);
    assert_eq!(before, after, "files outside the sandbox changed");
    for p in [
        format!("/etc/jstest-{uid}"),
        "/etc/jstest-dbl".into(),
        format!("{}/pwn", d.display()),
        format!("{}/sb/pwn", d.display()),
        format!("{}/sa/pwn", d.display()),
    ] {
        assert!(!Path::new(&p).exists(), "{p} was written");
    }
    let mut top: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["a-state", "a.log", "a.stderr", "b-state", "b.log", "b.stderr", "outside", "sa", "sb"],
        "something was created next to the sandboxes"
    );
    // No byte of the canary or of the secret arrived anywhere: not at the receiver, not in
    // either server's state or log.
    let mut everywhere = Vec::new();
    for sub in ["sb", "a-state", "b-state", "a.log", "b.log"] {
        let p = d.join(sub);
        if p.is_file() {
            everywhere.push((p.clone(), fs::read(&p).unwrap()));
        } else {
            files_below(&p, &mut everywhere);
        }
    }
    let (c, s) = (canary(), secret());
    for (path, bytes) in &everywhere {
        for needle in [&c[..64], &c[40_000..40_064], &s[..64], &s[3000..3064]] {
            assert!(
                !contains(bytes, needle),
                "outside bytes arrived at {}",
                path.display()
            );
        }
    }
    // The sandboxes did receive what was taken literally (the test is not vacuous).
    assert!(ar.sb.join("etc").join(format!("jstest-{uid}")).is_file());
    assert!(ar.sb.join("..\\..\\pwn-bs").is_file());
    let _ = &ar.sa;
}

/// One command that a user may try on another's object.
struct Poke {
    what: &'static str,
    cmd: &'static str,
    params: Value,
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn users_cannot_see_or_touch_each_others_objects() {
    if !can_run() {
        return;
    }
    let p = Pair::new(false);
    let (v, vpw) = user();
    let src = p.dir.path().join("src");
    write(&src.join("f.bin"), &data(2 << 20, 3));
    let mut cu = p.a.login(p.user.name(), &p.pw);
    // Slow, so the transfer is still running while the other user pokes at it.
    let did = destination(
        &mut cu,
        &p.b,
        p.user.name(),
        &p.pw,
        json!({"sendRateMax": 2000}),
    );
    let mid = manifest(
        &mut cu,
        json!({ src.join("f.bin").to_str().unwrap(): "/f.bin" }),
    )
    .unwrap();
    let tid = transfer(&mut cu, &did, &mid, None);
    let token = cu
        .call("createAPIToken", json!({"description": "u's"}))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let shared = cu
        .call("send.createSharedToken", json!({"manifestId": mid}))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = cu.call("send.getTransfersAsync", json!({})).unwrap()["requestId"].clone();

    let mut cv = p.a.login(v.name(), &vpw);
    let pokes = [
        Poke {
            what: "get destination",
            cmd: "send.getDestination",
            params: json!({"destinationId": did}),
        },
        Poke {
            what: "delete destination",
            cmd: "send.deleteDestination",
            params: json!({"destinationId": did}),
        },
        Poke {
            what: "rate of destination",
            cmd: "send.setSendRate",
            params: json!({"destinationId": did, "sendRateMax": 1}),
        },
        Poke {
            what: "get manifest",
            cmd: "send.getManifest",
            params: json!({"manifestId": mid}),
        },
        Poke {
            what: "manifest files",
            cmd: "send.getManifestFiles",
            params: json!({"manifestId": mid}),
        },
        Poke {
            what: "delete manifest",
            cmd: "send.deleteManifest",
            params: json!({"manifestId": mid}),
        },
        Poke {
            what: "transfer with u's destination",
            cmd: "send.createTransfer",
            params: json!({"destinationId": did, "manifestId": mid}),
        },
        Poke {
            what: "share u's manifest",
            cmd: "send.createSharedToken",
            params: json!({"manifestId": mid}),
        },
        Poke {
            what: "get transfer",
            cmd: "send.getTransfer",
            params: json!({"transferId": tid}),
        },
        Poke {
            what: "suspend transfer",
            cmd: "send.suspendTransfer",
            params: json!({"transferId": tid}),
        },
        Poke {
            what: "resume transfer",
            cmd: "send.resumeTransfer",
            params: json!({"transferId": tid}),
        },
        Poke {
            what: "cancel transfer",
            cmd: "send.cancelTransfer",
            params: json!({"transferId": tid}),
        },
        Poke {
            what: "fail transfer",
            cmd: "send.failTransfer",
            params: json!({"transferId": tid, "errorMessage": "x"}),
        },
        Poke {
            what: "delete transfer",
            cmd: "send.deleteTransfer",
            params: json!({"transferId": tid}),
        },
        Poke {
            what: "rate of transfer",
            cmd: "send.setSendRate",
            params: json!({"transferId": tid, "sendRateMax": 1}),
        },
        Poke {
            what: "get API token",
            cmd: "getAPIToken",
            params: json!({"token": token}),
        },
        Poke {
            what: "delete API token",
            cmd: "deleteAPIToken",
            params: json!({"token": token}),
        },
        Poke {
            what: "get shared token",
            cmd: "send.getSharedToken",
            params: json!({"token": shared}),
        },
        Poke {
            what: "delete shared token",
            cmd: "send.deleteSharedToken",
            params: json!({"token": shared}),
        },
        Poke {
            what: "u's async request",
            cmd: "getRequestResult",
            params: json!({"requestId": req}),
        },
        Poke {
            what: "u's async request status",
            cmd: "getRequestStatus",
            params: json!({"requestId": req}),
        },
        Poke {
            what: "superuser",
            cmd: "superuser",
            params: json!({}),
        },
        Poke {
            what: "terminate",
            cmd: "terminate",
            params: json!({}),
        },
        Poke {
            what: "bandwidth limits",
            cmd: "updateBandwidthLimits",
            params: json!({"outgoingLimitActive": true}),
        },
    ];
    for poke in &pokes {
        let r = cv.call(poke.cmd, poke.params.clone());
        let out = match &r {
            Err(ClientError::Api(m)) => format!("refused: {m}"),
            other => format!("NOT REFUSED: {other:?}"),
        };
        println!("| {} | {} | {} |", poke.what, poke.cmd, out);
        assert!(out.starts_with("refused"), "{}: {out}", poke.what);
    }
    // Lists show nothing of u's.
    for cmd in [
        "send.getDestinations",
        "send.getManifests",
        "send.getTransfers",
        "getAPITokens",
        "send.getSharedTokens",
        "recv.getTransfers",
    ] {
        let list = cv.call(cmd, json!({})).unwrap();
        let text = list.to_string();
        for id in [&did, &mid, &tid, &token, &shared] {
            assert!(!text.contains(id.as_str()), "{cmd} shows {id}: {text}");
        }
        println!(
            "| list | {cmd} | {} entries, none of u's |",
            list.as_array().map_or(0, Vec::len)
        );
    }
    let log = cv.call("getEventLog", json!({})).unwrap().to_string();
    for id in [&did, &mid, &tid] {
        assert!(!log.contains(id.as_str()), "event log shows {id}");
    }
    // And u's objects are all still there, untouched.
    let t = cu
        .call("send.getTransfer", json!({"transferId": tid}))
        .unwrap();
    assert!(
        matches!(t["status"].as_str(), Some("sending" | "pending")),
        "{t}"
    );
    cu.call("send.getDestination", json!({"destinationId": did}))
        .unwrap();
    cu.call("send.getManifest", json!({"manifestId": mid}))
        .unwrap();
    cu.call("getAPIToken", json!({"token": token})).unwrap();
    cu.call("send.getSharedToken", json!({"token": shared}))
        .unwrap();
    cu.call("send.cancelTransfer", json!({"transferId": tid}))
        .unwrap();
}

/// A plain loopback API connection whose source address is `src` (any of 127.0.0.0/8), so
/// that one test can play several client hosts.
#[allow(unsafe_code)]
pub fn connect_from(src: Ipv4Addr, port: u16) -> TcpStream {
    let sa = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls with valid, correctly sized addresses; the descriptor is
    // owned by the TcpStream made from it (or closed on failure).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let me = sa(src, 0);
        assert_eq!(libc::bind(fd, (&raw const me).cast(), len), 0, "bind {src}");
        let to = sa(Ipv4Addr::LOCALHOST, port);
        let rc = libc::connect(fd, (&raw const to).cast(), len);
        if rc != 0 {
            libc::close(fd);
            panic!("connect from {src}: {}", std::io::Error::last_os_error());
        }
        TcpStream::from_raw_fd(fd)
    }
}

/// One request on a fresh connection from `src`; the answer's message.
fn ask_from(src: Ipv4Addr, port: u16, request: &str, params: Value) -> (bool, String) {
    let s = connect_from(src, port);
    s.set_read_timeout(Some(T)).unwrap();
    let mut w = s.try_clone().unwrap();
    writeln!(w, "{}", json!({"request": request, "parameters": params})).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    (
        v["status"] == "success",
        v["message"].as_str().unwrap_or("").to_owned(),
    )
}

fn window() -> Duration {
    if std::env::var_os("JETSTREAM_LONG").is_some() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(15)
    }
}

/// Guesses from `threads` connections at once from one source for `window`; returns
/// (evaluated, throttled) counts. Each thread guesses its own user names, so only the
/// per-source limit holds them back.
fn guess(port: u16, src: Ipv4Addr, threads: usize, window: Duration, tag: &str) -> (usize, usize) {
    let end = Instant::now() + window;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let tag = tag.to_owned();
            std::thread::spawn(move || {
                let (mut evaluated, mut throttled) = (0, 0);
                let mut n = 0;
                while Instant::now() < end {
                    n += 1;
                    let user = format!("jstguess-{tag}-{i}-{n}");
                    let (ok, msg) = ask_from(
                        src,
                        port,
                        "auth",
                        json!({"userName": user, "password": "guess"}),
                    );
                    assert!(!ok);
                    if msg.contains("too many failed logins") {
                        throttled += 1;
                        // Do not spin: a refusal is immediate.
                        std::thread::sleep(Duration::from_millis(100));
                    } else {
                        assert!(msg.contains("authentication failed"), "{msg}");
                        evaluated += 1;
                    }
                }
                (evaluated, throttled)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn password_guessing_is_throttled_per_source_and_per_user() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (v, vpw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let w = window();
    // One source, one connection after the other.
    let (ev, th) = guess(s.api, Ipv4Addr::new(127, 0, 0, 2), 1, w, "seq");
    let per_min = ev as f64 * 60.0 / w.as_secs_f64();
    println!(
        "sequential attacker: {ev} guesses evaluated, {th} refused unevaluated in {} s ({per_min:.0}/min over this window)",
        w.as_secs()
    );
    // Each guess is a new user name, so only the per-source limit holds them back: 21 free
    // (each answered after 1 s), then back-off 1, 2, 4, 8, 16 … s after each: 15 in 15 s,
    // 26 in 60 s.
    assert!(ev <= 21 + 11, "{ev} guesses evaluated in {} s", w.as_secs());
    // While that source is throttled, the right password from elsewhere works.
    let (ok, msg) = ask_from(
        Ipv4Addr::new(127, 0, 0, 3),
        s.api,
        "auth",
        json!({"userName": u.name(), "password": pw}),
    );
    assert!(ok, "{msg}");
    // 16 connections at once from one source.
    let (ev, th) = guess(s.api, Ipv4Addr::new(127, 0, 0, 4), 16, w, "par");
    println!(
        "parallel attacker (16 connections): {ev} evaluated, {th} refused in {} s",
        w.as_secs()
    );
    assert!(
        ev <= 16 + 21 + 11,
        "{ev} guesses evaluated in {} s",
        w.as_secs()
    );
    // Per user: one wrong guess from each of six sources does not lock that user name: the
    // right password from a new source still works (a per-user lock-out would let anyone
    // keep any account locked, issue 15 item 12; see sec_auth.rs).
    for i in 0..6 {
        let (ok, _) = ask_from(
            Ipv4Addr::new(127, 0, 1, 10 + i),
            s.api,
            "auth",
            json!({"userName": v.name(), "password": "nope"}),
        );
        assert!(!ok);
    }
    let (ok, msg) = ask_from(
        Ipv4Addr::new(127, 0, 1, 99),
        s.api,
        "auth",
        json!({"userName": v.name(), "password": vpw}),
    );
    assert!(ok, "{msg}");
    println!("per user: after 6 failures from 6 sources, the right password from a 7th works");
    let (ok, msg) = ask_from(
        Ipv4Addr::new(127, 0, 1, 99),
        s.api,
        "auth",
        json!({"userName": u.name(), "password": pw}),
    );
    assert!(ok, "{msg}");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn tokens_are_random_and_stop_at_once() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let src = dir.path().join("f.txt");
    write(&src, b"x");
    let mut c = s.login(u.name(), &pw);
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    // 128 API and 128 shared tokens: 32 lowercase hex digits = 16 bytes each, all distinct,
    // every bit position both set and clear somewhere, about half the bits set.
    let mut seen = std::collections::HashSet::new();
    let mut ones = 0u32;
    let (mut any_set, mut any_clear) = (0u128, 0u128);
    for i in 0..256 {
        let t = if i % 2 == 0 {
            c.call("createAPIToken", json!({})).unwrap()
        } else {
            c.call("send.createSharedToken", json!({"manifestId": m}))
                .unwrap()
        };
        let tok = t["token"].as_str().unwrap().to_owned();
        assert_eq!(tok.len(), 32, "{tok}");
        assert!(
            tok.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{tok}"
        );
        let bits = u128::from_str_radix(&tok, 16).unwrap();
        ones += bits.count_ones();
        any_set |= bits;
        any_clear |= !bits;
        assert!(seen.insert(tok), "a token repeated");
    }
    let share = f64::from(ones) / (256.0 * 128.0);
    println!(
        "256 tokens: 128 bits each, {:.2} % of bits set",
        share * 100.0
    );
    assert_eq!(
        (any_set, any_clear),
        (u128::MAX, u128::MAX),
        "a bit position never changes"
    );
    assert!((0.47..0.53).contains(&share), "{share}");

    // A deleted API token stops at once for the session already logged in with it.
    let t = c
        .call("createAPIToken", json!({"password": "tpw"}))
        .unwrap();
    let token = t["token"].as_str().unwrap().to_owned();
    let mut ct = s.client();
    ct.call("authToken", json!({"token": token, "password": "tpw"}))
        .unwrap();
    ct.call("send.getTransfers", json!({})).unwrap();
    c.call("deleteAPIToken", json!({"token": token})).unwrap();
    let e = ct
        .call("send.getTransfers", json!({}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired or was deleted"), "{e}");
    // And the session is logged out, not just refused once.
    let e = ct
        .call("send.getManifests", json!({}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not authenticated"), "{e}");
    // An expiring one: works, then stops on the same connection.
    let t = c
        .call("createAPIToken", json!({"expirySeconds": 2}))
        .unwrap();
    let token = t["token"].as_str().unwrap().to_owned();
    let mut ct = s.client();
    ct.call("authToken", json!({"token": token})).unwrap();
    ct.call("send.getTransfers", json!({})).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        match ct.call("send.getTransfers", json!({})) {
            Ok(_) => {
                assert!(Instant::now() < deadline, "the token never expired");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => break e.to_string(),
        }
    };
    assert!(e.contains("expired or was deleted"), "{e}");
    // A deleted shared token, on a session logged in with it.
    let t = c
        .call("send.createSharedToken", json!({"manifestId": m}))
        .unwrap();
    let token = t["token"].as_str().unwrap().to_owned();
    let mut cs = s.client();
    cs.call("authToken", json!({"token": token})).unwrap();
    cs.call("send.getManifest", json!({"manifestId": m}))
        .unwrap();
    c.call("send.deleteSharedToken", json!({"token": token}))
        .unwrap();
    let e = cs
        .call("send.getManifest", json!({"manifestId": m}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired or was deleted"), "{e}");
}
