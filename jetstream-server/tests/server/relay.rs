//! The relay: three network namespaces (sender S, relay R, private server P) joined so that S
//! reaches only R. A transfer from S to P goes through the relay, which forwards only
//! ciphertext, and a relay restart is survived.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::util::*;

/// `jetstream api` inside a namespace, as the test user; the JSON result.
fn api(n: &Netns, port: u16, user: &str, pw: &str, args: &[&str]) -> Result<Value, String> {
    let out = n
        .command(bin())
        .args([
            "api",
            "--api-control-port",
            &port.to_string(),
            "--user",
            user,
        ])
        .args(args)
        .env("JETSTREAM_API_PASSWORD", pw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

struct Relay {
    child: Child,
}

impl Relay {
    fn start(n: &Netns, capture: &Path) -> Self {
        let child = n
            .command(bin())
            .args([
                "relay_server",
                "--control-port",
                "8887",
                "--data-port",
                "8886",
                "--api-port",
                "8886",
            ])
            .arg("--capture")
            .arg(capture)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !n
            .command("bash")
            .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/8887"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(Instant::now() < deadline, "relay did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_registered(p_ns: &Netns, p: &Srv, user: &str, pw: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = api(p_ns, p.api, user, pw, &["getServerInfo"]).unwrap();
        if info["receiver"]["relayPort"] == 8886 {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "never registered with the relay: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_transfer_crosses_the_relay_which_sees_only_ciphertext_and_survives_a_restart() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let id = std::process::id();
    let (s_ns, r_ns, p_ns) = (
        Netns::bare(&format!("jsr{id}s")),
        Netns::bare(&format!("jsr{id}r")),
        Netns::bare(&format!("jsr{id}p")),
    );
    s_ns.join("vs", "10.79.1.1", &r_ns, "vrs", "10.79.1.2");
    r_ns.join("vrp", "10.79.2.2", &p_ns, "vp", "10.79.2.1");
    let capture = root.join("relay.capture");
    let mut relay = Relay::start(&r_ns, &capture);
    let storage = root.join("storage");
    let p = Srv::start_in(
        Some(&p_ns),
        root,
        "p",
        &[
            "--recv-relay-host",
            "10.79.2.2",
            "--recv-relay-port",
            "8887",
            "--sandbox-dir",
            storage.to_str().unwrap(),
        ],
    );
    let s = Srv::start_in(Some(&s_ns), root, "s", &[]);
    let info = wait_registered(&p_ns, &p, u.name(), &pw);
    // The sender cannot reach the private server's API; the relay can (so the probe works).
    let reach = |from: &Netns| {
        from.command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/10.79.2.1/{}", p.api)])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(!reach(&s_ns), "the sender must reach only the relay");
    assert!(reach(&r_ns));
    assert_eq!(info["receiver"]["relayIP"], "10.79.2.2");

    let src = root.join("secret.bin");
    let content = data(24 << 20, 77);
    write(&src, &content);
    let call = |args: &[&str]| {
        api(&s_ns, s.api, u.name(), &pw, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let d = call(&[
        "createDestination",
        "--destinationAddress",
        "10.79.1.2",
        "--destinationApiPort",
        "8886",
        "--userName",
        u.name(),
        "--password",
        &pw,
        "--sendRateMax",
        "100000",
    ]);
    let did = d["destinationId"].as_str().unwrap().to_owned();
    let m = call(&[
        "createManifest",
        "--fileMappings",
        &format!("{}:/via/relay.bin", src.display()),
    ]);
    let mid = m["manifestId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&["getManifest", "--manifestId", &mid])["status"] == "pending" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let wait = |tid: &str, done: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = call(&["getTransfer", "--transferId", tid]);
            if done(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let t = call(&[
        "createTransfer",
        "--destinationId",
        &did,
        "--manifestId",
        &mid,
        "--destinationPath",
        "/one",
    ]);
    let tid = t["transferId"].as_str().unwrap().to_owned();
    let end = wait(&tid, &|t| {
        t["status"] != "pending" && t["status"] != "sending"
    });
    assert_eq!(end["status"], "complete", "{end}");
    assert!(std::fs::read(storage.join("one/via/relay.bin")).unwrap() == content);

    // Everything went through the relay, and the relay saw no plaintext.
    let seen = std::fs::read(&capture).unwrap();
    assert!(
        seen.len() >= content.len(),
        "the data crossed the relay: {} bytes",
        seen.len()
    );
    for at in [1 << 20, 10 << 20, 20 << 20] {
        let needle = &content[at..at + 64];
        assert!(
            !seen.windows(64).any(|w| w == needle),
            "plaintext at {at} seen by the relay"
        );
    }

    // A relay restart mid-transfer is survived.
    let t = call(&[
        "createTransfer",
        "--destinationId",
        &did,
        "--manifestId",
        &mid,
        "--destinationPath",
        "/two",
    ]);
    let tid = t["transferId"].as_str().unwrap().to_owned();
    let mid_way = wait(&tid, &|t| {
        t["bytesAcked"].as_u64() > Some(4 << 20) || t["status"] == "complete"
    });
    assert_eq!(
        mid_way["status"], "sending",
        "still running when the relay goes: {mid_way}"
    );
    drop(relay);
    relay = Relay::start(&r_ns, &capture);
    let end = wait(&tid, &|t| {
        t["status"] == "complete" || t["status"] == "error"
    });
    assert_eq!(end["status"], "complete", "{end}");
    assert!(
        end["attempts"].as_u64() >= Some(2),
        "it was interrupted and resumed: {end}"
    );
    assert!(std::fs::read(storage.join("two/via/relay.bin")).unwrap() == content);
    drop(relay);
}
