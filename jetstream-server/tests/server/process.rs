//! The process: flags, start-up errors, clean shutdown, persistent identity.

use std::net::TcpListener;
use std::process::Command;

use serde_json::json;

use super::util::*;

fn server(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("server")
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn help_lists_every_flag_and_bad_starts_say_why() {
    let (code, help) = server(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--api-port",
        "--api-host",
        "--api-allow-remote-control",
        "--recv-port",
        "--external-address",
        "--persistent-state-dir",
        "--sandbox-dir",
        "--superuser",
        "--supergroup",
        "--log",
        "--disable-telemetry",
        "--persistent-destinations",
        "--persistent-transfers",
        "--api-disable-api-tokens",
        "--tls-cert",
        "--tls-key",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let (code, text) = server(&["--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(text.contains("--no-such-flag"), "{text}");

    let dir = scratch();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let state = file.join("state");
    let (code, text) = server(&[
        "--persistent-state-dir",
        state.to_str().unwrap(),
        "--api-port",
        "0",
        "--recv-port",
        "0",
    ]);
    assert_eq!(code, 1);
    assert!(
        text.contains("persistent state dir") && text.contains("cannot create"),
        "{text}"
    );

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let state = dir.path().join("s");
    let (code, text) = server(&[
        "--persistent-state-dir",
        state.to_str().unwrap(),
        "--api-host",
        "127.0.0.1",
        "--api-port",
        &port,
        "--recv-port",
        "0",
    ]);
    assert_eq!(code, 1);
    assert!(
        text.contains("cannot listen on the API port") && text.contains(&port),
        "{text}"
    );
}

#[test]
fn sigterm_stops_cleanly_and_the_identity_survives_a_restart() {
    let dir = scratch();
    let mut s = Srv::start(dir.path(), "s", &[]);
    let info = s.client().call("getServerInfo", json!({})).unwrap();
    let status = s.signal(15);
    assert!(status.success(), "{status}");
    assert!(s.log_text().contains("server: stopped"));
    s.restart();
    let again = s.client().call("getServerInfo", json!({})).unwrap();
    assert_eq!(again["serverUid"], info["serverUid"]);
    assert_eq!(again["publicKey"], info["publicKey"]);
    assert_ne!(again["serverId"], info["serverId"]);
    assert!(again["certificateValidation"].as_i64().unwrap() > 30);
    // The local token: private to the server's account, logs in as that account, and is
    // replaced at every start.
    let path = s.state.join("local.token");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let mut c = s.client();
    c.call("authToken", json!({ "token": token })).unwrap();
    let me = jetstream_server::users::current().unwrap();
    let info = c.call("getServerInfo", json!({})).unwrap();
    assert_eq!(info["user"]["authed"], true);
    assert_eq!(info["user"]["token"], token.as_str());
    let d = c
        .call(
            "send.createDestination",
            json!({"destinationAddress": "192.0.2.9"}),
        )
        .unwrap();
    assert_eq!(d["owner"], me.name.as_str());
    let status = s.signal(2);
    assert!(status.success(), "SIGINT: {status}");
    s.restart();
    // Once the API port accepts, the file holds the fresh token or is still being written
    // (the old one is removed before the port opens).
    let fresh = wait_file(&path, |t| !t.trim().is_empty()).trim().to_owned();
    assert_ne!(fresh, token);
    assert!(
        s.client()
            .call("authToken", json!({ "token": token }))
            .is_err(),
        "the old one is gone"
    );
    s.client()
        .call("authToken", json!({ "token": fresh }))
        .unwrap();
}
