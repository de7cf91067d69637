//! Discovery packets between two servers in two network namespaces joined by a veth pair:
//! `recvDiscoverPacketAsync` on B sees A's probe and A's `sendDiscoverPacketAsync` gets B's
//! echo; with the link down both say so clearly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::util::*;

const A_ADDR: &str = "10.78.0.1";
const B_ADDR: &str = "10.78.0.2";
/// B's end of the veth pair.
const B_LINK: &str = "vdb";

/// Two namespaces joined by a veth pair (`vda` in A, `vdb` in B). Both are deleted on drop
/// (through [`Netns`]'s own drop), which also removes the pair.
struct TwoNs {
    a: Netns,
    b: Netns,
}

impl TwoNs {
    fn new() -> Self {
        let base = format!("jsd{}", std::process::id());
        let a = Netns::bare(&format!("{base}a"));
        let b = Netns::bare(&format!("{base}b"));
        a.join("vda", A_ADDR, &b, B_LINK, B_ADDR);
        Self { a, b }
    }
}

/// `jetstream api` inside `ns` against the server on its loopback, logged in as `user`.
fn api(ns: &Netns, srv: &Srv, user: &str, pw: &str, kh: &Path, args: &[&str]) -> Command {
    let mut c = ns.command(bin());
    c.args(["api", "--host", "127.0.0.1", "--api-control-port"])
        .arg(srv.api.to_string())
        .args(["--user", user])
        .args(args)
        .env("JETSTREAM_API_PASSWORD", pw)
        .env("JETSTREAM_KNOWN_HOSTS", kh)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn result(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "jetstream api failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON result")
}

/// Waits until the `*Async` request that `recv` (a `jetstream api` child) queued is running,
/// so that a probe sent afterwards is one it must see. The child names its request on stderr.
fn wait_processing(ns: &Netns, srv: &Srv, user: &str, pw: &str, kh: &Path, recv: &mut Child) {
    let mut err = BufReader::new(recv.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("stderr of jetstream api");
    let id = line
        .split("request ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request id in {line:?}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = api(
            ns,
            srv,
            user,
            pw,
            kh,
            &["getRequestStatus", "--requestId", &id],
        )
        .output()
        .unwrap();
        if o.status.success() {
            let st: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(st["status"], "processing", "{st}");
            return;
        }
        if let Ok(Some(status)) = recv.try_wait() {
            panic!("recvDiscoverPacketAsync exited early: {status}");
        }
        assert!(Instant::now() < deadline, "B's request never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn discovery_packets_show_whether_udp_gets_through() {
    if !can_run() {
        return;
    }
    let nets = TwoNs::new();
    let (user, pw) = user();
    let dir = scratch();
    let kh = dir.path().join("known_hosts");
    let a = Srv::start_in(Some(&nets.a), dir.path(), "a", &[]);
    let b = Srv::start_in(Some(&nets.b), dir.path(), "b", &[]);
    let u = user.name();
    let b_port = b.udp.to_string();

    // The path is open: B waits first, A probes, both see it.
    let mut recv = api(
        &nets.b,
        &b,
        u,
        &pw,
        &kh,
        &[
            "recvDiscoverPacketAsync",
            "--timeoutMs",
            "30000",
            "--sourceAddress",
            A_ADDR,
        ],
    )
    .spawn()
    .unwrap();
    wait_processing(&nets.b, &b, u, &pw, &kh, &mut recv);
    let sent = result(
        &api(
            &nets.a,
            &a,
            u,
            &pw,
            &kh,
            &[
                "sendDiscoverPacketAsync",
                "--address",
                B_ADDR,
                "--port",
                &b_port,
                "--timeoutMs",
                "10000",
            ],
        )
        .output()
        .unwrap(),
    );
    let got = result(&recv.wait_with_output().unwrap());
    assert_eq!(sent["echoed"], true, "{sent}");
    assert_eq!(sent["address"], B_ADDR, "{sent}");
    assert_eq!(sent["port"], b.udp, "{sent}");
    assert!(sent["roundTripMs"].is_u64(), "{sent}");
    let msg = sent["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("UDP {B_ADDR}:{b_port} answered in ")),
        "{msg}"
    );
    let nonce = sent["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 32);
    assert_eq!(got["received"], true, "{got}");
    assert_eq!(got["sourceIP"], A_ADDR, "{got}");
    assert_eq!(got["sourcePort"], a.udp, "{got}");
    assert_eq!(got["nonce"], nonce, "{got}");

    // The path is blocked: A gets no echo, B no probe; both say so.
    ip(&["-n", &nets.b.name, "link", "set", B_LINK, "down"]);
    let recv = api(
        &nets.b,
        &b,
        u,
        &pw,
        &kh,
        &["recvDiscoverPacketAsync", "--timeoutMs", "2000"],
    )
    .spawn()
    .unwrap();
    let sent = result(
        &api(
            &nets.a,
            &a,
            u,
            &pw,
            &kh,
            &[
                "sendDiscoverPacketAsync",
                "--address",
                B_ADDR,
                "--port",
                &b_port,
                "--timeoutMs",
                "1000",
                "--count",
                "2",
            ],
        )
        .output()
        .unwrap(),
    );
    let got = result(&recv.wait_with_output().unwrap());
    assert_eq!(sent["echoed"], false, "{sent}");
    assert_eq!(sent["roundTripMs"], Value::Null, "{sent}");
    assert_eq!(sent["sent"], 2, "{sent}");
    let msg = sent["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "no answer from UDP {B_ADDR}:{b_port} within 1 s: the path is blocked or no \
             JetStream server listens there"
        )),
        "{msg}"
    );
    assert_eq!(got["received"], false, "{got}");
    assert_eq!(got["sourceIP"], Value::Null, "{got}");
    let msg = got["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "no discovery probe arrived on UDP port {b_port} within 2 s"
        )) && msg.contains("blocked"),
        "{msg}"
    );

    // Parameters are checked before anything is sent.
    let o = api(
        &nets.a,
        &a,
        u,
        &pw,
        &kh,
        &["sendDiscoverPacketAsync", "--port", &b_port],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing parameter \"address\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop((a, b));
}
