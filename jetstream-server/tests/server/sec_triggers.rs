//! Issue 15, items 9 and 10: trigger scripts must never see a secret on their command line
//! (any local user can read it with `ps`), and a script that another account could have
//! written must not run with the server's rights.

use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::util::*;

/// Writes a `#!/bin/sh` script `name` in `dir` with mode 0755.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A 0755 trigger directory `<root>/triggers`.
fn trigger_dir(root: &Path) -> PathBuf {
    let d = root.join("triggers");
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Appends each argument on its own line to `<script name>.argv` in the trigger directory
/// (the scripts' working directory), then a `--end--` line.
const ARGV_TO_FILE: &str =
    "f=\"$(basename \"$0\").argv\"\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$f\"; done\necho --end-- >> \"$f\"";

/// Waits until the server log contains `what` (the executor logs each refusal).
fn wait_log(s: &Srv, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log_text().contains(what) {
        assert!(Instant::now() < deadline, "the log never said {what:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Regression (issue 15, item 9): `on.createAPIToken` got the command's result, with the new
/// token in full, as argv[4]; `on.<command>` of a token login got the login token as
/// `ownerToken`; an error message quoting a token passed it on too.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn regression_trigger_arguments_carry_no_secret() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let tdir = trigger_dir(dir.path());
    for name in [
        "on.createAPIToken",
        "on.authToken",
        "on.send.createDestination",
        "on.send.getSharedToken",
        "on.auth",
        "on.echo",
    ] {
        script(&tdir, name, ARGV_TO_FILE);
    }
    let s = Srv::start(
        dir.path(),
        "s",
        &["--trigger-dir", tdir.to_str().unwrap(), "--trigger-on-api"],
    );
    let mut c = s.login(u.name(), &pw);
    let token_pw = "token-Passw0rd-secret";
    let created = c
        .call(
            "createAPIToken",
            json!({"password": token_pw, "description": "for the trigger test"}),
        )
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    // A token login, which then creates a destination with a token credential.
    let mut t = s.client();
    t.call("authToken", json!({"token": token, "password": token_pw}))
        .unwrap();
    let cred_token = "feedfacefeedfacefeedfacefeedface";
    let cred_pw = "credential-pw-secret";
    t.call(
        "send.createDestination",
        json!({"destinationAddress": "127.0.0.1", "destinationApiPort": 9,
               "token": cred_token, "password": cred_pw}),
    )
    .unwrap();
    // An error message that quotes the token it was given.
    let _ = c.call("send.getSharedToken", json!({"token": cred_token}));
    // The executor is serial: once `on.echo` has run, every earlier trigger has.
    c.call("echo", json!({})).unwrap();
    wait_file(&tdir.join("on.echo.argv"), |t| t.contains("--end--"));

    let mut all = String::new();
    for name in [
        "on.auth",
        "on.createAPIToken",
        "on.authToken",
        "on.send.createDestination",
        "on.send.getSharedToken",
    ] {
        let argv = fs::read_to_string(tdir.join(format!("{name}.argv")))
            .unwrap_or_else(|e| panic!("{name} did not run: {e}"));
        println!("{name}:\n{argv}");
        all.push_str(&argv);
    }
    for secret in [token.as_str(), token_pw, cred_token, cred_pw, pw.as_str()] {
        assert!(
            !all.contains(secret),
            "{secret:?} reached a trigger:\n{all}"
        );
    }
    // What remains is enough to tell which token it was: its first 6 characters.
    let created_argv = fs::read_to_string(tdir.join("on.createAPIToken.argv")).unwrap();
    assert!(
        created_argv.contains(&format!("{}…", &token[..6])),
        "{created_argv}"
    );
    assert!(
        created_argv.contains("for the trigger test"),
        "{created_argv}"
    );
}

/// Regression (issue 15, item 10): scripts ran as root whoever owned them and whoever could
/// write them or the trigger directory (sshd's StrictModes refuses such files).
#[test]
#[ignore = "needs root: system users (PAM)"]
fn regression_trigger_scripts_others_could_write_do_not_run() {
    if !can_run() {
        return;
    }
    let (u, _pw) = user();
    let dir = scratch();
    let root = dir.path();
    let tdir = trigger_dir(root);
    let markers = root.join("markers");
    fs::create_dir(&markers).unwrap();
    let mark = |what: &str| format!("echo ran >> '{}'", markers.join(what).display());
    // Owned by an ordinary user (who could put anything in it).
    let owned = script(&tdir, "on.getServerInfo", &mark("owned"));
    chown(&owned, Some(u.uid()), Some(u.gid())).unwrap();
    // Group-writable, world-writable.
    let gw = script(&tdir, "on.getEventLog", &mark("group-writable"));
    fs::set_permissions(&gw, fs::Permissions::from_mode(0o775)).unwrap();
    let ww = script(&tdir, "on.getAPITokens", &mark("world-writable"));
    fs::set_permissions(&ww, fs::Permissions::from_mode(0o757)).unwrap();
    // A link to a root-owned 0755 script in a world-writable directory.
    let open = root.join("open");
    fs::create_dir(&open).unwrap();
    let target = script(&open, "real", &mark("linked"));
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    symlink(&target, tdir.join("on.send.getTransfers")).unwrap();
    // The control: root-owned, 0755, in a 0755 directory.
    script(&tdir, "on.echo", &mark("good"));

    let s = Srv::start(
        root,
        "s",
        &["--trigger-dir", tdir.to_str().unwrap(), "--trigger-on-api"],
    );
    let mut c = s.client();
    for cmd in [
        "getServerInfo",
        "getEventLog",
        "getAPITokens",
        "send.getTransfers",
        "echo",
    ] {
        let _ = c.call(cmd, json!({}));
    }
    let good = markers.join("good");
    wait_file(&good, |t| t == "ran\n");
    for bad in ["owned", "group-writable", "world-writable", "linked"] {
        assert!(!markers.join(bad).exists(), "the {bad} script ran");
    }
    let log = s.log_text();
    for name in [
        "on.getServerInfo",
        "on.getEventLog",
        "on.getAPITokens",
        "on.send.getTransfers",
    ] {
        assert!(log.contains(&format!("triggers: refused {name}:")), "{log}");
    }

    // The trigger directory itself made world-writable: the good script is refused too.
    fs::set_permissions(&tdir, fs::Permissions::from_mode(0o777)).unwrap();
    c.call("echo", json!({})).unwrap();
    wait_log(&s, "refused on.echo: directory");
    // A directory above it writable by others (no sticky bit): refused as well.
    fs::set_permissions(&tdir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
    c.call("echo", json!({})).unwrap();
    wait_log(&s, &format!("directory {} is writable", root.display()));
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    // Put right, it runs again: checked at each run, not once at start.
    c.call("echo", json!({})).unwrap();
    wait_file(&good, |t| t == "ran\nran\n");
}
