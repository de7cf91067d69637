//! A machine without Linux-PAM's library (`libpam.so.0`): the server must still start and
//! serve token logins (the local token is how the README's demo logs in), and a password
//! login must fail with a message that says what to install. Issue 16, item 1: the server used
//! to link `-lpam`, so building needed `libpam0g-dev` and the binary did not even start
//! without the library.
//!
//! The library is hidden in a private mount namespace (`unshare -m`, whose mounts do not
//! propagate back): `/dev/null` is bind-mounted over the real file, so `dlopen` (and, for the
//! old binary, the dynamic loader) finds an empty file where the library was.

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
use serde_json::json;

use super::util::*;

/// Where Debian (and other multiarch or lib64 systems) keep `libpam.so.0`: the real files
/// behind the names that exist here, without duplicates.
fn libpam_files() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/lib64",
        "/usr/lib",
        "/lib",
    ]
    .iter()
    .filter_map(|d| fs::canonicalize(PathBuf::from(d).join("libpam.so.0")).ok())
    .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
#[ignore = "needs root: system users (PAM), a mount namespace"]
fn regression_server_starts_and_explains_without_libpam() {
    if !can_run() {
        return;
    }
    let libs = libpam_files();
    assert!(!libs.is_empty(), "libpam.so.0 not found on this machine");
    let (user, pw) = user();
    let dir = scratch();
    let state = dir.path().join("state");
    let log = dir.path().join("server.log");
    let (api, udp) = (free_tcp(), free_udp());
    // sh -c SCRIPT sh LIB... -- jetstream server ARGS
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "while [ \"$1\" != -- ]; do mount --bind /dev/null \"$1\" || exit 97; shift; done; \
             shift; exec \"$@\"",
        )
        .arg("sh")
        .args(&libs)
        .arg("--")
        .arg(bin())
        .arg("server")
        .args(["--api-host", "127.0.0.1", "--recv-host", "127.0.0.1"])
        .args([
            "--api-port",
            &api.to_string(),
            "--recv-port",
            &udp.to_string(),
        ])
        .arg("--persistent-state-dir")
        .arg(&state)
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Proc(cmd.spawn().expect("unshare (util-linux)"));
    let token_file = state.join("local.token");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!(
                "the server did not start without libpam.so.0 ({status}): {err}\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let listening = TcpStream::connect(("127.0.0.1", api))
            .is_ok_and(|c| c.local_addr().ok() != c.peer_addr().ok());
        if listening && fs::metadata(&token_file).is_ok_and(|m| m.len() > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not open its API port"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let connect = || {
        ApiClient::connect("127.0.0.1", api, &ConnectOptions::new(Trust::Pinned(None)))
            .expect("connect")
    };

    // The local token still logs in, and the session works.
    let token = fs::read_to_string(&token_file).unwrap();
    let mut c = connect();
    c.call("authToken", json!({ "token": token.trim() }))
        .expect("local token login without libpam");
    c.call("getAPITokens", json!({}))
        .expect("a command after a token login");

    // A password login (right password) fails, saying what is missing.
    let e = connect()
        .call("auth", json!({"userName": user.name(), "password": pw}))
        .expect_err("a password login cannot succeed without PAM")
        .to_string();
    assert!(
        e.contains("PAM library libpam.so.0 not found: install libpam0g"),
        "{e}"
    );
    // The server said so at start, in its log.
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("auth: PAM library libpam.so.0 not found: install libpam0g"),
        "{text}"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "server still running"
    );
}
