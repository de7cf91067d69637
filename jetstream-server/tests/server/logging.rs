//! Issue 16, item 6: logs an operator can use. `--log-level` filters, each event is one line
//! (`<time> <LEVEL> <message>` in a file, `<priority><message>` when stderr is the journal),
//! control characters from clients or file names are escaped, and no password, passphrase or
//! whole token reaches the log or stderr.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_server::users::test_support::TestUser;
use serde_json::json;

use super::util::*;

const T: Duration = Duration::from_secs(60);

/// Whether `line` is `2026-12-07T15:04:05.123Z LEVEL message`.
fn is_file_line(line: &str) -> bool {
    let b = line.as_bytes();
    let stamp = b.len() > 25
        && b[..24].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[24] == b' ';
    stamp
        && ["ERROR ", "WARN ", "INFO ", "DEBUG "]
            .iter()
            .any(|l| line[25..].starts_with(l))
}

/// The log's lines, each checked for the file format.
fn file_lines(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    for l in &lines {
        assert!(is_file_line(l), "not a log line: {l:?}\n{log}");
    }
    lines
}

/// Polls `path` until `done` holds for its text (30 s at most).
fn wait_text(path: &Path, done: impl Fn(&str) -> bool) -> String {
    wait_file(path, done)
}

/// A failed token login (no system user needed): logged at warn by the server.
fn fail_token_login(s_api: u16) {
    let opts = jetstream_client::client::ConnectOptions::new(
        jetstream_client::client::Trust::Pinned(None),
    );
    let mut c = jetstream_client::client::ApiClient::connect("127.0.0.1", s_api, &opts).unwrap();
    let e = c
        .call("authToken", json!({"token": "0123456789abcdef"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("authentication failed"), "{e}");
}

/// `--log-level warn` keeps the failed login and drops the info lines; the default (info)
/// keeps both and no debug line.
#[test]
fn log_level_warn_hides_info_lines_and_keeps_a_failed_login() {
    let dir = scratch();
    let s = Srv::start(dir.path(), "w", &["--log-level", "warn"]);
    s.client().call("echo", json!({"text": 1})).unwrap();
    fail_token_login(s.api);
    let log = wait_text(&s.log, |t| t.contains("failed login"));
    let lines = file_lines(&log);
    assert!(
        lines
            .iter()
            .any(|l| l[25..].starts_with("WARN auth: failed login for \"(API or shared token)\"")),
        "{log}"
    );
    assert!(
        lines.iter().all(|l| l[25..].starts_with("WARN ")),
        "only warnings at --log-level warn: {log}"
    );

    let d = Srv::start(dir.path(), "i", &[]);
    d.client().call("echo", json!({"text": 1})).unwrap();
    fail_token_login(d.api);
    let log = wait_text(&d.log, |t| t.contains("failed login"));
    let lines = file_lines(&log);
    assert!(
        lines.iter().any(|l| l[25..].starts_with("INFO server: ")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l[25..].starts_with("WARN auth: failed login")),
        "{log}"
    );
    assert!(!log.contains(" DEBUG "), "no debug lines by default: {log}");
}

/// `--log-level debug` shows each request (its command, never its parameters), and a command
/// name holding a newline and an escape sequence stays on its line, escaped: it cannot forge a
/// second log line.
#[test]
fn log_level_debug_shows_requests_and_a_newline_cannot_forge_a_line() {
    let dir = scratch();
    let s = Srv::start(dir.path(), "d", &["--log-level", "debug"]);
    let mut c = s.client();
    c.call("echo", json!({"text": 1})).unwrap();
    // (A command name is cut at 64 characters in the log: this one is 54.)
    let forged = "x\n2026-01-01T00:00:00.000Z INFO api: 10.9.9.9 root\u{1b}[2K";
    let e = c.call(forged, json!({})).unwrap_err().to_string();
    assert!(e.contains("unknown") || e.contains("log in"), "{e}");
    let log = wait_text(&s.log, |t| {
        t.contains("DEBUG api: 127.0.0.1") && t.contains("\\n2026")
    });
    let lines = file_lines(&log);
    assert!(
        lines
            .iter()
            .any(|l| l[25..].starts_with("DEBUG api: 127.0.0.1:")
                && l.ends_with("(-): echo: success")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("DEBUG api: 127.0.0.1:") && l.contains(": connected (plain)")),
        "{log}"
    );
    let escaped = "(-): x\\n2026-01-01T00:00:00.000Z INFO api: 10.9.9.9 root\\u{1b}[2K: error";
    assert!(lines.iter().any(|l| l.ends_with(escaped)), "{log}");
    assert!(!log.contains("\n2026-01-01"), "a forged line: {log}");
    assert!(!log.contains('\u{1b}'), "a raw escape sequence: {log}");
    // The parameters of a request never appear, even at debug.
    assert!(!log.contains("\"x\""), "{log}");
}

/// A file name with a newline (a user's own file) is logged on one line when a manifest skips
/// it.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_file_name_with_a_newline_is_logged_on_one_line() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    write(&src.join("f.txt"), b"hello");
    let name = "dangling\n2026-01-01T00:00:00.000Z INFO api: forged";
    symlink("/nonexistent/target", src.join(name)).unwrap();
    let s = Srv::start(dir.path(), "m", &["--log-level", "debug"]);
    let mut c = s.login(user.name(), &pw);
    manifest(&mut c, json!({ src.to_str().unwrap(): "/dst" })).unwrap();
    let log = wait_text(&s.log, |t| t.contains("skipping symbolic link"));
    let lines = file_lines(&log);
    let want = format!(
        "DEBUG manifest: skipping symbolic link {}/dangling\\n2026-01-01T00:00:00.000Z INFO api: forged",
        src.display()
    );
    assert!(lines.iter().any(|l| l[25..] == want), "{log}");
    assert!(!log.contains("\n2026-01-01"), "{log}");
}

/// A server started without `--log` (stderr to `stderr`), with `env` added.
struct Bare {
    child: Option<Child>,
    api: u16,
    stderr: PathBuf,
}

impl Bare {
    fn command(dir: &Path, name: &str, api: u16, stderr: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("server")
            .args(["--api-host", "127.0.0.1", "--recv-host", "127.0.0.1"])
            .args(["--api-port", &api.to_string()])
            .args(["--recv-port", &free_udp().to_string()])
            .arg("--persistent-state-dir")
            .arg(dir.join(format!("{name}-state")))
            .arg("--trigger-dir")
            .arg(dir.join("no-triggers"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::OpenOptions::new()
                    .append(true)
                    .open(stderr)
                    .expect("open stderr file"),
            );
        c
    }

    fn start(dir: &Path, name: &str, stderr: &Path, journal: &str, extra: &[&str]) -> Self {
        let api = free_tcp();
        let mut child = Self::command(dir, name, api, stderr, extra)
            .env("JOURNAL_STREAM", journal)
            .spawn()
            .expect("spawn jetstream server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !TcpStream::connect(("127.0.0.1", api))
            .is_ok_and(|c| c.local_addr().ok() != c.peer_addr().ok())
        {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "server exited ({st}): {}",
                    fs::read_to_string(stderr).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server did not open its API port"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child: Some(child),
            api,
            stderr: stderr.to_owned(),
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {}:\n{}",
                self.stderr.display(),
                fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
    }
}

/// `device:inode` of `path`, as systemd writes `$JOURNAL_STREAM`.
fn dev_ino(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

/// Under systemd (`$JOURNAL_STREAM` names stderr) each line carries its syslog priority and no
/// time stamp; the journal adds its own. Here stderr is a file, and the variable names it.
#[test]
fn stderr_on_the_journal_gets_syslog_priority_prefixes() {
    let dir = scratch();
    let err = dir.path().join("journal.stderr");
    fs::write(&err, b"").unwrap();
    let (dev, ino) = dev_ino(&err);
    let journal = format!("{dev}:{ino}");
    let s = Bare::start(dir.path(), "j", &err, &journal, &["--log-level", "debug"]);
    fail_token_login(s.api);
    wait_text(&err, |t| {
        t.contains("failed login") && t.contains("<7>api: ")
    });
    // An error: a second server on the same API port cannot start, and says so at error.
    let out = Bare::command(dir.path(), "j2", s.api, &err, &[])
        .env("JOURNAL_STREAM", &journal)
        .status()
        .unwrap();
    assert_eq!(out.code(), Some(1));
    let text = wait_text(&err, |t| t.contains("<3>jetstream server: "));
    for l in text.lines() {
        let p = l.get(..3).unwrap_or("");
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&p)
                && !l[3..].starts_with(|c: char| c.is_ascii_digit()),
            "not a journal line: {l:?}\n{text}"
        );
    }
    assert!(text.lines().any(|l| l.starts_with("<6>server: ")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("<4>auth: failed login for")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("<3>jetstream server: ") && l.contains("API")),
        "{text}"
    );
    drop(s);

    // The variable inherited from a parent whose stderr was the journal, while this one's is a
    // file: time-stamped lines, as in a --log file.
    let other = dir.path().join("file.stderr");
    fs::write(&other, b"").unwrap();
    let (dev, ino) = dev_ino(&other);
    let s = Bare::start(dir.path(), "f", &other, &format!("{dev}:{}", ino + 1), &[]);
    fail_token_login(s.api);
    let text = wait_text(&other, |t| t.contains("failed login"));
    file_lines(&text);
    assert!(
        text.lines()
            .any(|l| l[25..].starts_with("WARN auth: failed login")),
        "{text}"
    );
}

/// Writes an executable trigger script that prints its arguments.
fn echo_script(dir: &Path, name: &str) {
    let p = dir.join(name);
    fs::write(&p, "#!/bin/sh\necho \"$@\"\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every way a secret enters the server (password logins, a failed one, token logins, a
/// password on an API token, a destination with a password and one with a token and its
/// password, a shared token with a password, the transfers that use those destinations), at
/// `--log-level debug`, with trigger scripts that print their arguments (`--trigger-log`):
/// none of the secrets appears in either server's `--log` file or stderr. Tokens appear only
/// as their first 6 characters and `…`.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn no_secret_reaches_the_log_or_stderr() {
    if !can_run() {
        return;
    }
    let pid = std::process::id();
    let pw = format!("UserPass-{pid}-q7Z");
    let user = TestUser::create(Some(&pw)).expect("useradd");
    let wrong_pw = format!("WrongPass-{pid}-k2M");
    let tok_pw_a = format!("TokPassA-{pid}-x9W");
    let tok_pw_b = format!("TokPassB-{pid}-r4T");
    let wrong_tok_pw = format!("WrongTokPass-{pid}-c5N");
    let shared_pw = format!("SharedPass-{pid}-v8L");

    let dir = scratch();
    let triggers = dir.path().join("triggers");
    fs::create_dir(&triggers).unwrap();
    fs::set_permissions(&triggers, fs::Permissions::from_mode(0o755)).unwrap();
    let scripts = [
        "on.auth",
        "on.authToken",
        "on.createAPIToken",
        "on.send.createDestination",
        "on.send.createSharedToken",
    ];
    for name in scripts {
        echo_script(&triggers, name);
    }
    let src = dir.path().join("src.bin");
    write(&src, &data(64 * 1024, 7));
    let storage = format!("{}/storage/%u", dir.path().display());
    let debug = ["--log-level", "debug"];
    let trig = dir.path().join("triggers").display().to_string();
    let a = Srv::start(
        dir.path(),
        "a",
        &[
            debug[0],
            debug[1],
            "--trigger-dir",
            &trig,
            "--trigger-log",
            "--trigger-on-api",
        ],
    );
    let b = Srv::start(
        dir.path(),
        "b",
        &[debug[0], debug[1], "--sandbox-dir", &storage],
    );

    // On B: an API token with a password, for A's second destination.
    let mut cb = b.login(user.name(), &pw);
    let token_b = cb
        .call("createAPIToken", json!({"password": tok_pw_b}))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // On A: a password login, a failed one, a token made and used (and once with a wrong
    // password), two destinations, a shared token with a password, used.
    let mut ca = a.login(user.name(), &pw);
    let e = a
        .client()
        .call(
            "auth",
            json!({"userName": user.name(), "password": wrong_pw}),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("authentication failed") || e.contains("failed"),
        "{e}"
    );
    let token_a = ca
        .call("createAPIToken", json!({"password": tok_pw_a}))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    a.client()
        .call("authToken", json!({"token": token_a, "password": tok_pw_a}))
        .unwrap();
    a.client()
        .call(
            "authToken",
            json!({"token": token_a, "password": wrong_tok_pw}),
        )
        .unwrap_err();
    let d_pw = destination(&mut ca, &b, user.name(), &pw, json!({}));
    let d_tok = ca
        .call(
            "send.createDestination",
            json!({
                "destinationAddress": "127.0.0.1",
                "destinationApiPort": b.api,
                "token": token_b,
                "tokenPassword": tok_pw_b,
            }),
        )
        .unwrap()["destinationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = manifest(&mut ca, json!({ src.to_str().unwrap(): "/f.bin" })).unwrap();
    let shared = ca
        .call(
            "send.createSharedToken",
            json!({"manifestId": m, "password": shared_pw}),
        )
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    a.client()
        .call("authToken", json!({"token": shared, "password": shared_pw}))
        .unwrap();
    for (d, path) in [(&d_pw, "/one"), (&d_tok, "/two")] {
        let t = transfer(&mut ca, d, &m, Some(path));
        let end = wait_end(&mut ca, &t, T);
        assert_eq!(end["status"], "complete", "{end}");
    }

    // Every trigger run has ended: auth twice, createAPIToken, authToken three times, the two
    // destinations and the shared token.
    let a_err = dir.path().join("a.stderr");
    let stderr = wait_text(&a_err, |t| {
        t.lines()
            .filter(|l| l.contains("trigger on.") && l.contains(" after "))
            .count()
            >= 9
    });
    assert!(
        stderr.contains("********"),
        "the scripts saw masked arguments: {stderr}"
    );

    let secrets = [
        ("the user's password", pw.clone()),
        ("a wrong password", wrong_pw),
        ("A's API token", token_a.clone()),
        ("A's token password", tok_pw_a),
        ("a wrong token password", wrong_tok_pw),
        ("B's API token (a destination credential)", token_b.clone()),
        ("B's token password (a destination credential)", tok_pw_b),
        ("the shared token", shared.clone()),
        ("the shared token's password", shared_pw),
    ];
    let outputs = [
        ("A's --log", a.log_text()),
        ("A's stderr", stderr),
        ("B's --log", b.log_text()),
        (
            "B's stderr",
            fs::read_to_string(dir.path().join("b.stderr")).unwrap_or_default(),
        ),
    ];
    for (what, text) in &outputs {
        for (secret, value) in &secrets {
            assert!(
                !text.contains(value.as_str()),
                "{secret} is in {what}:\n{text}"
            );
        }
        // Shown tokens are 6 characters; 8 (not 7) so that a chance match in the keys and
        // fingerprints the log holds stays out of reach (16^8).
        for token in [&token_a, &token_b, &shared] {
            assert!(
                !text.contains(&token[..8]),
                "a token's first 8 characters in {what}"
            );
        }
    }
    // The events did happen and were logged (the check above is not vacuous).
    let (a_log, b_log) = (&outputs[0].1, &outputs[2].1);
    let who = user.name();
    for want in [
        format!("logged in as {who}"),
        format!("logged in as {who} with an API token {}…", &token_a[..6]),
        format!("logged in as {who} with a shared token {}…", &shared[..6]),
        "WARN auth: failed login for".to_owned(),
        "INFO api: destination".to_owned(),
    ] {
        assert!(a_log.contains(&want), "{want:?} not in A's log:\n{a_log}");
    }
    assert!(
        b_log.contains(&format!(
            "logged in as {who} with an API token {}…",
            &token_b[..6]
        )),
        "{b_log}"
    );
    assert!(b_log.contains(&format!("logged in as {who}\n")), "{b_log}");
    file_lines(a_log);
    file_lines(b_log);
}

/// The relay takes `--log-level` too, and logs in the same format.
#[test]
fn the_relay_takes_log_level_too() {
    let dir = scratch();
    let relay = super::relay::Relay::start(
        None,
        dir.path(),
        "r",
        &["--insecure-accept-any-server", "--log-level", "warn"],
    );
    let log = relay.wait_log("INSECURE");
    let lines = file_lines(&log);
    assert!(
        lines
            .iter()
            .any(|l| l[25..].starts_with("WARN relay: INSECURE: any private server")),
        "{log}"
    );
    assert!(
        lines.iter().all(|l| l[25..].starts_with("WARN ")),
        "no info line (such as `relay: public key`) at --log-level warn: {log}"
    );
}

/// A level that does not exist is refused at start, naming the levels that do.
#[test]
fn an_unknown_log_level_is_refused_with_the_levels() {
    for command in ["server", "relay_server"] {
        let out = Command::new(bin())
            .args([command, "--log-level", "verbose"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("unknown log level \"verbose\": expected error, warn, info or debug"),
            "{command}: {err}"
        );
    }
}
