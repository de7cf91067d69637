//! The relay's control port is authenticated (issue 15, item 2): strangers cannot register,
//! displace the private server, take its API clients or make the relay send UDP anywhere; a
//! second registration does not displace a live one; the private server refuses a relay
//! with another key; neither end starts without the keys.
//!
//! Everything runs on loopback: a real `relay_server` on free ports, a real `jetstream
//! server` registered with it, and attackers speaking the relay protocol with this crate's
//! own frame codec (plain TCP) or its relay client (TLS, with keys of their own).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
use jetstream_server::relay::client::{self as relay_client, LinkError};
use jetstream_server::relay::{decode_datagram, encode_datagram, frame, kind, read_frame};
use jetstream_server::tls::Identity;
use serde_json::{json, Value};

use super::relay::{server_public_key, Relay};
use super::util::*;

/// How long an address that must receive nothing is watched.
const SILENCE: Duration = Duration::from_secs(2);

/// A private server registered with `relay` (whose key it pins).
fn registered_server(root: &std::path::Path, relay: &Relay, name: &str) -> Srv {
    let p = Srv::start(
        root,
        name,
        &[
            "--recv-relay-host",
            "127.0.0.1",
            "--recv-relay-port",
            &relay.control.to_string(),
            "--recv-relay-public-key",
            &relay.key,
        ],
    );
    wait_file(&p.log, |t| t.contains("relay: registered with"));
    p
}

/// `getServerInfo` asked through the relay's public API port, over TLS pinned to `key`: it
/// answers only if the relay hands the connection to the server holding that key.
fn info_via_relay(relay: &Relay, key: &str) -> Result<Value, String> {
    let mut opts = ConnectOptions::new(Trust::Pinned(Some(key.to_owned())));
    opts.force_tls = true;
    opts.timeout = Duration::from_secs(20);
    let mut c = ApiClient::connect("127.0.0.1", relay.api, &opts).map_err(|e| e.to_string())?;
    c.call("getServerInfo", json!({}))
        .map_err(|e| e.to_string())
}

/// A plain-TCP stranger speaking the relay protocol as the private server would have before
/// the fix: `HELLO`. Returns the connection and the first frame kind it got back (`None`:
/// closed, or bytes that are no frame, such as a TLS alert).
fn plain_hello(relay: &Relay) -> (TcpStream, Option<u8>) {
    let mut c = TcpStream::connect(("127.0.0.1", relay.control)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&frame(kind::HELLO, br#"{"version": 1}"#))
        .unwrap();
    let mut head = [0u8; 5];
    let got = c.read_exact(&mut head).ok().map(|()| head[0]);
    (c, got)
}

/// The relay's control address.
fn control(relay: &Relay) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], relay.control))
}

/// A fresh identity (a key of its own), kept in a directory under `root`.
fn identity(root: &std::path::Path, name: &str) -> Identity {
    Identity::load_or_create(&root.join(name)).unwrap()
}

/// Waits at most [`SILENCE`] for a datagram on `sock`; `Some(bytes)` if one came.
fn datagram_within_silence(sock: &UdpSocket) -> Option<Vec<u8>> {
    sock.set_read_timeout(Some(SILENCE)).unwrap();
    let mut buf = [0u8; 2048];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn regression_a_stranger_on_the_control_port_cannot_register_or_displace_the_server() {
    // Issue 15.2: "Anyone who reaches it replaces the private server, receives the public
    // API clients' connections".
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let p_key = server_public_key(&root.join("p-state"));
    let relay = Relay::start(None, root, "relay", &["--authorized-server-key", &p_key]);
    let _p = registered_server(root, &relay, "p");
    let before = info_via_relay(&relay, &p_key).expect("the relay reaches the server");

    // A stranger over plain TCP: the pre-fix protocol. It is not welcomed (the control port
    // speaks TLS only); it keeps its connection open, as an attacker would.
    let (_plain, answer) = plain_hello(&relay);
    assert_ne!(answer, Some(kind::WELCOME), "a plain HELLO was welcomed");

    // A stranger over TLS that pins the right relay key but holds its own key.
    let stranger = identity(root, "stranger");
    let tls_attempt = relay_client::connect(control(&relay), Some(&relay.key), &stranger)
        .and_then(|mut s| relay_client::register(&mut s).map(|w| (s, w)));
    assert!(
        tls_attempt.is_err(),
        "a stranger's key registered: {:?}",
        tls_attempt.map(|(_, w)| w)
    );
    let log = relay.wait_log("is not authorized");
    assert!(log.contains(&stranger.fingerprint()), "{log}");

    // The public API still reaches the real server (TLS pinned to its key), whose identity
    // is the one seen before the strangers came.
    let after = info_via_relay(&relay, &p_key).expect("still the real server");
    assert_eq!(after["serverId"], before["serverId"]);
    assert_eq!(after["publicKey"], p_key);
    assert_eq!(relay.log_text().matches("registered").count(), 1);
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn regression_a_client_through_the_relay_never_counts_as_local() {
    // Issue 15.2, the API forwarding: a client on the relay host's own loopback reached the
    // private server with a loopback address, and was served in plain text like a local one.
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let p_key = server_public_key(&root.join("p-state"));
    let relay = Relay::start(None, root, "relay", &["--authorized-server-key", &p_key]);
    let _p = registered_server(root, &relay, "p");
    // Plain TCP from 127.0.0.1 to the relay's public API port.
    let opts = ConnectOptions::new(Trust::Pinned(None));
    let mut c = ApiClient::connect("127.0.0.1", relay.api, &opts).unwrap();
    assert!(!c.is_tls());
    let answer = c.call("getServerInfo", json!({}));
    let err = answer.expect_err("served in plain text through the relay");
    assert!(err.to_string().contains("connect with TLS"), "{err}");
    // Over TLS the same client is served.
    assert_eq!(info_via_relay(&relay, &p_key).unwrap()["publicKey"], p_key);
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn regression_a_second_registration_is_refused_while_the_first_is_live() {
    // Issue 15.2: "a second registration must not displace a live, authenticated one".
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let p_key = server_public_key(&root.join("p-state"));
    let q = identity(root, "q-state");
    let relay = Relay::start(
        None,
        root,
        "relay",
        &[
            "--authorized-server-key",
            &p_key,
            "--authorized-server-key",
            q.public_key(),
        ],
    );
    let mut p = registered_server(root, &relay, "p");

    // Another authorized server, and a second process holding P's own key: both refused,
    // with the reason.
    let p_again = Identity::load_or_create(&root.join("p-state")).unwrap();
    for who in [&q, &p_again] {
        let mut s = relay_client::connect(control(&relay), Some(&relay.key), who).unwrap();
        match relay_client::register(&mut s) {
            Err(LinkError::Refused(why)) => {
                assert!(why.contains("another private server"), "{why}");
            }
            other => panic!("a second registration was not refused: {other:?}"),
        }
    }
    assert_eq!(
        relay.log_text().matches("refused the registration").count(),
        2
    );
    let info = info_via_relay(&relay, &p_key).expect("P still serves the public API");
    assert_eq!(info["publicKey"], p_key);

    // Once P is gone, another authorized server may take over.
    p.signal(9);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut s = loop {
        let mut s = relay_client::connect(control(&relay), Some(&relay.key), &q).unwrap();
        match relay_client::register(&mut s) {
            Ok(w) => {
                assert_eq!(w.data_port, Some(relay.data));
                break s;
            }
            Err(LinkError::Refused(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("Q could not take over: {e}"),
        }
    };
    // Q's link is live: it answers pings.
    s.write_all(&frame(kind::PING, &[])).unwrap();
    s.flush().unwrap();
    assert_eq!(read_frame(&mut s).unwrap().0, kind::PONG);
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn regression_the_private_server_refuses_a_relay_with_another_key() {
    // Issue 15.2: "The private server and the relay must authenticate each other".
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let p_key = server_public_key(&root.join("p-state"));
    let relay = Relay::start(None, root, "relay", &["--authorized-server-key", &p_key]);
    let other = identity(root, "other-relay");
    let p = Srv::start(
        root,
        "p",
        &[
            "--recv-relay-host",
            "127.0.0.1",
            "--recv-relay-port",
            &relay.control.to_string(),
            "--recv-relay-public-key",
            other.public_key(),
        ],
    );
    let log = wait_file(&p.log, |t| t.contains("HAS CHANGED"));
    let relay_fp = jetstream_client::tls::fingerprint_of(&relay.key);
    assert!(
        log.contains(&other.fingerprint()) && log.contains(&relay_fp),
        "{log}"
    );
    assert!(!log.contains("relay: registered with"), "{log}");
    assert!(!relay.log_text().contains("registered"));
}

/// Runs `jetstream <args>`, which must exit by itself within 20 s (killed otherwise);
/// its exit status and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let dir = scratch();
    let err = dir.path().join("stderr");
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&err).unwrap_or_default())
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn regression_neither_end_runs_the_relay_link_without_keys() {
    // Issue 15.2: refuse to run insecurely rather than fall back to an open control port.
    if !can_run() {
        return;
    }
    let dir = scratch();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string()
    };
    let (c, d, a) = (port(), port(), port());
    let (code, err) = run_to_exit(&[
        "relay_server",
        "--control-host",
        "127.0.0.1",
        "--public-host",
        "127.0.0.1",
        "--control-port",
        &c,
        "--data-port",
        &d,
        "--api-port",
        &a,
        "--state-dir",
        state,
    ]);
    assert_eq!(
        code,
        Some(1),
        "the relay ran without authorized servers: {err}"
    );
    assert!(err.contains("--authorized-server-key"), "{err}");

    let (code, err) = run_to_exit(&[
        "server",
        "--api-host",
        "127.0.0.1",
        "--api-port",
        &a,
        "--recv-host",
        "127.0.0.1",
        "--recv-port",
        &d,
        "--persistent-state-dir",
        state,
        "--recv-relay-host",
        "127.0.0.1",
        "--recv-relay-port",
        &c,
    ]);
    assert!(
        code.is_some_and(|c| c != 0),
        "the server ran a relay link without the relay's key: {err}"
    );
    assert!(err.contains("--recv-relay-public-key"), "{err}");
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn regression_the_relay_sends_datagrams_only_to_peers_that_sent_first() {
    // Issue 15.2: "can make the relay send UDP to any address from its own port".
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let t = identity(root, "t-state");
    let relay = Relay::start(
        None,
        root,
        "relay",
        &["--authorized-server-key", t.public_key()],
    );
    let victim = UdpSocket::bind("127.0.0.3:0").unwrap();
    let SocketAddr::V4(victim_addr) = victim.local_addr().unwrap() else {
        unreachable!("bound to IPv4")
    };
    let aimed_at_victim = frame(
        kind::DATAGRAM,
        &encode_datagram(victim_addr, b"reflected by the relay"),
    );

    // A stranger over plain TCP registers (pre-fix) and names the victim.
    let (mut plain, _) = plain_hello(&relay);
    let _ = plain.write_all(&aimed_at_victim);
    assert_eq!(
        datagram_within_silence(&victim),
        None,
        "a stranger made the relay send UDP"
    );

    // The authenticated server names an address that never sent to the relay: dropped.
    let mut s = relay_client::connect(control(&relay), Some(&relay.key), &t).unwrap();
    relay_client::register(&mut s).unwrap();
    s.write_all(&aimed_at_victim).unwrap();
    s.flush().unwrap();
    assert_eq!(
        datagram_within_silence(&victim),
        None,
        "the relay sent to an address that never sent to it"
    );
    relay.wait_log("which has not sent to the relay");

    // Once the victim is a peer (it sent to the public data port), the answer goes through:
    // the path above works, it was the rule that held it back.
    victim
        .send_to(b"hello relay", ("127.0.0.1", relay.data))
        .unwrap();
    // (The link's reads time out after 30 s: a bound, should the datagram never come.)
    let from = loop {
        let (k, payload) = read_frame(&mut s).unwrap();
        if k == kind::DATAGRAM {
            let (from, d) = decode_datagram(&payload).unwrap();
            assert_eq!(d, b"hello relay");
            break from;
        }
    };
    assert_eq!(from, victim_addr);
    s.write_all(&frame(kind::DATAGRAM, &encode_datagram(from, b"an answer")))
        .unwrap();
    s.flush().unwrap();
    victim
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = victim.recv(&mut buf).expect("the answer to a peer arrives");
    assert_eq!(&buf[..n], b"an answer");

    // Another address on the victim's host, which never sent: still nothing.
    let bystander = UdpSocket::bind("127.0.0.3:0").unwrap();
    let SocketAddr::V4(bystander_addr) = bystander.local_addr().unwrap() else {
        unreachable!("bound to IPv4")
    };
    s.write_all(&frame(
        kind::DATAGRAM,
        &encode_datagram(bystander_addr, b"x"),
    ))
    .unwrap();
    s.flush().unwrap();
    assert_eq!(datagram_within_silence(&bystander), None);
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn the_insecure_relay_mode_still_speaks_tls_and_never_displaces_a_live_server() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let relay = Relay::start(None, root, "relay", &["--insecure-accept-any-server"]);
    assert!(relay.log_text().contains("INSECURE"));
    let (_plain, answer) = plain_hello(&relay);
    assert_ne!(answer, Some(kind::WELCOME), "a plain HELLO was welcomed");
    let (a, b) = (identity(root, "a"), identity(root, "b"));
    let mut first = relay_client::connect(control(&relay), Some(&relay.key), &a).unwrap();
    relay_client::register(&mut first).expect("any key registers in this mode");
    let mut second = relay_client::connect(control(&relay), Some(&relay.key), &b).unwrap();
    assert!(matches!(
        relay_client::register(&mut second),
        Err(LinkError::Refused(_))
    ));
}
