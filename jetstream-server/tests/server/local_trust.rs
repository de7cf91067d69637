//! A server on this machine needs no trusted certificate (reference §3.1) only when root or
//! the client's own user runs it (issue 18, item 7): another local user listening on the port
//! is checked like a remote server, so that it cannot collect passwords unnoticed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_client::client::{ApiClient, ClientError, ConnectOptions, Trust};

use super::util::*;

/// What `jscp` does: TLS always, known hosts in `file`, nothing accepted unasked.
fn people(file: &Path, force_tls: bool) -> ConnectOptions {
    let mut o = ConnectOptions::new(Trust::KnownHostsOrLocal {
        file: file.to_owned(),
        accept_new: false,
    });
    o.force_tls = force_tls;
    o
}

#[test]
#[ignore = "needs root: a server run by another system user"]
fn loopback_servers_of_root_are_trusted_and_of_other_users_are_checked() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let kh = root.join("known_hosts");

    // Root's server (the test runs as root): TLS without a known-hosts entry, nothing recorded.
    let s = Srv::start(root, "mine", &[]);
    for force_tls in [true, false] {
        let mut c = ApiClient::connect("127.0.0.1", s.api, &people(&kh, force_tls))
            .expect("a server of root on loopback is trusted");
        c.call("echo", serde_json::json!({"text": "hi"})).unwrap();
        assert_eq!(c.peer_public_key().is_some(), force_tls);
    }
    assert!(!kh.exists(), "nothing pinned for this machine's own server");
    let o = Command::new(bin())
        .args([
            "api",
            "--api-control-port",
            &s.api.to_string(),
            "getServerInfo",
        ])
        .env("JETSTREAM_KNOWN_HOSTS", &kh)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Another user's server on a loopback port: not trusted silently, by the library or the
    // console client, and the message says why.
    let (other, _) = user();
    let state = root.join("other-state");
    std::fs::create_dir(&state).unwrap();
    let chown = Command::new("chown")
        .arg(format!("{}:{}", other.uid(), other.gid()))
        .arg(&state)
        .status()
        .unwrap();
    assert!(chown.success());
    let port = free_tcp();
    let child = Command::new("setpriv")
        .arg(format!("--reuid={}", other.uid()))
        .arg(format!("--regid={}", other.gid()))
        .arg("--clear-groups")
        .arg(bin())
        .args([
            "server",
            "--api-host",
            "127.0.0.1",
            "--recv-host",
            "127.0.0.1",
        ])
        .args(["--api-port", &port.to_string()])
        .args(["--recv-port", &free_udp().to_string()])
        .arg("--persistent-state-dir")
        .arg(&state)
        .arg("--log")
        .arg(state.join("log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::net::TcpStream::connect(("127.0.0.1", port))
        .is_ok_and(|c| c.local_addr().ok() != c.peer_addr().ok())
    {
        assert!(
            p.0.try_wait().unwrap().is_none(),
            "the other user's server exited"
        );
        assert!(
            Instant::now() < deadline,
            "the other user's server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for force_tls in [true, false] {
        match ApiClient::connect("127.0.0.1", port, &people(&kh, force_tls)) {
            Err(e @ ClientError::UnknownHost { .. }) => {
                let m = e.to_string();
                assert!(m.contains(&format!("uid {}", other.uid())), "{m}");
                assert!(m.contains("neither root nor you"), "{m}");
                assert!(m.contains("--accept-new-host"), "{m}");
            }
            Ok(_) => panic!("another user's loopback server was trusted silently"),
            Err(e) => panic!("{e}"),
        }
    }
    let o = Command::new(bin())
        .args([
            "api",
            "--api-control-port",
            &port.to_string(),
            "getServerInfo",
        ])
        .env("JETSTREAM_KNOWN_HOSTS", &kh)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("neither root nor you"), "{err}");
    assert!(!kh.exists());

    // Accepted explicitly, it is pinned like a remote server.
    let mut accept = people(&kh, true);
    accept.trust = Trust::KnownHostsOrLocal {
        file: kh.clone(),
        accept_new: true,
    };
    ApiClient::connect("127.0.0.1", port, &accept).expect("accepted explicitly");
    assert!(std::fs::read_to_string(&kh)
        .unwrap()
        .contains(&format!("127.0.0.1:{port} ")));
    ApiClient::connect("127.0.0.1", port, &people(&kh, true)).expect("pinned now");
}
