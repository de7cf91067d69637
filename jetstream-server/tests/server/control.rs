//! Transfer control (suspend, resume, cancel, fail, delete), the receiving side's view,
//! destinations logging in with a token, credential secrecy, receiver key pinning, and what
//! survives a restart.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};

use super::util::*;

const T: Duration = Duration::from_secs(60);

fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap_or("")
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn suspend_resume_cancel_fail_and_delete() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        a,
        b,
        storage,
    } = Pair::new(false);
    let root = dir.path();
    let src = root.join("src/big.bin");
    let size = 48 << 20;
    write(&src, &data(size, 5));
    let mut c = a.login(u.name(), &pw);
    // 100 Mbit/s: 4 s of data, so it is still running when we act on it.
    let d = destination(&mut c, &b, u.name(), &pw, json!({"sendRateMax": 100_000}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/big.bin" })).unwrap();

    let t = transfer(&mut c, &d, &m, Some("/one"));
    // Suspend past half-way: a restart from zero would then send 1.5 times the file.
    wait_until(&mut c, &t, T, |v| {
        v["bytesAcked"].as_u64() >= Some(size as u64 / 2)
    });
    let v = c
        .call("send.suspendTransfer", json!({"transferId": t}))
        .unwrap();
    assert_eq!(status(&v), "suspended");
    // The receiving side sees its session end; the partial file is not presented as final.
    let mut cb = b.login(u.name(), &pw);
    let deadline = std::time::Instant::now() + T;
    loop {
        let list = cb.call("recv.getTransfers", json!({})).unwrap();
        let r = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["transferId"] == t.as_str())
            .cloned();
        if r.as_ref().is_some_and(|r| r["status"] != "receiving") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "receiver still receiving: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !storage.join("one/big.bin").exists(),
        "a suspended file is not complete"
    );
    let e = c
        .call(
            "send.deleteTransfer",
            json!({"transferId": "00".repeat(16)}),
        )
        .unwrap_err();
    assert!(e.to_string().contains("no transfer"), "{e}");
    let v = c
        .call("send.resumeTransfer", json!({"transferId": t}))
        .unwrap();
    assert!(matches!(status(&v), "pending" | "sending"), "{v}");
    let end = wait_end(&mut c, &t, T);
    assert_eq!(status(&end), "complete", "{end}");
    assert!(std::fs::read(storage.join("one/big.bin")).unwrap() == std::fs::read(&src).unwrap());
    // Resumed, not restarted.
    assert!(
        end["bytesSent"].as_u64().unwrap() < (size as u64) * 29 / 20,
        "{end}"
    );
    let list = cb.call("recv.getTransfers", json!({})).unwrap();
    let r = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["transferId"] == t.as_str())
        .unwrap();
    assert_eq!(r["status"], "complete");
    assert_eq!(r["sourceIP"], "127.0.0.1");
    let sources = cb.call("recv.getSources", json!({})).unwrap();
    assert!(
        sources[0]["completeTransferCount"].as_u64() >= Some(1),
        "{sources}"
    );
    let e = c
        .call("send.cancelTransfer", json!({"transferId": t}))
        .unwrap_err();
    assert!(e.to_string().contains("already ended"), "{e}");
    c.call("send.deleteTransfer", json!({"transferId": t}))
        .unwrap();
    assert!(c
        .call("send.getTransfer", json!({"transferId": t}))
        .is_err());

    let t2 = transfer(&mut c, &d, &m, Some("/two"));
    wait_until(&mut c, &t2, T, |v| v["bytesAcked"].as_u64() > Some(0));
    let e = c
        .call("send.deleteTransfer", json!({"transferId": t2}))
        .unwrap_err();
    assert!(e.to_string().contains("cancel or suspend it"), "{e}");
    let v = c
        .call("send.cancelTransfer", json!({"transferId": t2}))
        .unwrap();
    assert_eq!(status(&v), "cancelled");
    let t3 = transfer(&mut c, &d, &m, Some("/three"));
    wait_until(&mut c, &t3, T, |v| v["bytesAcked"].as_u64() > Some(0));
    let v = c
        .call(
            "send.failTransfer",
            json!({"transferId": t3, "errorMessage": "operator says no"}),
        )
        .unwrap();
    assert_eq!(status(&v), "error");
    assert_eq!(v["errorMessage"], "operator says no");
    // They stay that way (the workers do not overwrite a user's decision).
    std::thread::sleep(Duration::from_millis(500));
    let v = c
        .call("send.getTransfer", json!({"transferId": t2}))
        .unwrap();
    assert_eq!(status(&v), "cancelled");
    let v = c
        .call("send.getTransfer", json!({"transferId": t3}))
        .unwrap();
    assert_eq!(v["errorMessage"], "operator says no");
    assert!(!storage.join("two/big.bin").exists() && !storage.join("three/big.bin").exists());
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn tokens_as_destination_credentials_secrets_stay_secret_and_keys_are_pinned() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        mut a,
        mut b,
        storage,
    } = Pair::new(false);
    let root = dir.path();
    let src = root.join("src/f.txt");
    write(&src, b"via a token");
    // A token on the receiver, confined to /inbox, with its own password.
    let mut cb = b.login(u.name(), &pw);
    let tok = cb
        .call(
            "createAPIToken",
            json!({"path": "/inbox", "password": "tokpw", "permissions": ["upload"]}),
        )
        .unwrap();
    let token = tok["token"].as_str().unwrap().to_owned();
    let mut c = a.login(u.name(), &pw);
    let d = c
        .call(
            "send.createDestination",
            json!({"destinationAddress": "127.0.0.1", "destinationApiPort": b.api,
                   "token": token, "tokenPassword": "tokpw"}),
        )
        .unwrap();
    let did = d["destinationId"].as_str().unwrap().to_owned();
    assert_eq!(
        d["destinationPublicKey"],
        Value::Null,
        "pinned at first contact, not before"
    );
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    let t = transfer(&mut c, &did, &m, None);
    assert_eq!(status(&wait_end(&mut c, &t, T)), "complete");
    assert_eq!(
        std::fs::read(storage.join("inbox/f.txt")).unwrap(),
        b"via a token"
    );

    // Credentials are never shown, and the state file is the server's alone.
    let shown = c
        .call("send.getDestination", json!({"destinationId": did}))
        .unwrap();
    let text = shown.to_string();
    assert!(!text.contains(&token) && !text.contains("tokpw"), "{text}");
    let info = cb.call("getServerInfo", json!({})).unwrap();
    assert_eq!(
        shown["destinationPublicKey"], info["publicKey"],
        "pinned after first contact"
    );
    let state = a.state.join("objects.json");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&a.state).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Destinations and transfers survive a restart of the sender.
    a.signal(15);
    a.restart();
    let mut c = a.login(u.name(), &pw);
    assert_eq!(
        c.call("send.getTransfer", json!({"transferId": t}))
            .unwrap()["status"],
        "complete"
    );

    // The receiver comes back with another key: the destination refuses it.
    b.signal(15);
    std::fs::remove_dir_all(b.state.join("tls")).unwrap();
    b.restart();
    let t = transfer(&mut c, &did, &m, None);
    let end = wait_end(&mut c, &t, T);
    assert_eq!(status(&end), "error");
    assert!(
        end["errorMessage"]
            .as_str()
            .unwrap()
            .contains("HAS CHANGED"),
        "{end}"
    );
    let shown = c
        .call("send.getDestination", json!({"destinationId": did}))
        .unwrap();
    assert_eq!(shown["lastError"], "hostKeyChanged");

    // With persistence off, nothing is kept.
    a.signal(15);
    let mut off = Srv::start(
        root,
        "a",
        &[
            "--persistent-destinations",
            "false",
            "--persistent-transfers",
            "false",
        ],
    );
    let mut c = off.login(u.name(), &pw);
    assert_eq!(
        c.call("send.getDestinations", json!({})).unwrap(),
        json!([])
    );
    assert_eq!(c.call("send.getTransfers", json!({})).unwrap(), json!([]));
    off.signal(15);
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_cipher_floor_refuses_a_peer_that_offers_only_weaker_ciphers() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let storage = root.join("storage");
    let b = Srv::start(
        root,
        "b",
        &[
            "--sandbox-dir",
            storage.to_str().unwrap(),
            "--min-cipher",
            "aes-256-gcm",
        ],
    );
    let weak = Srv::start(root, "weak", &["--cipher", "chacha20-poly1305"]);
    let strong = Srv::start(root, "strong", &[]);
    let info = b.client().call("getServerInfo", json!({})).unwrap();
    assert_eq!(info["minCipher"], "aes-256-gcm");
    let src = root.join("f.txt");
    write(&src, b"secret");
    for (sender, ok) in [(&weak, false), (&strong, true)] {
        let mut c = sender.login(u.name(), &pw);
        let d = destination(&mut c, &b, u.name(), &pw, json!({}));
        let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
        let t = transfer(&mut c, &d, &m, None);
        let end = wait_end(&mut c, &t, T);
        if ok {
            assert_eq!(status(&end), "complete", "{end}");
        } else {
            assert_eq!(status(&end), "error", "{end}");
            let msg = end["errorMessage"].as_str().unwrap();
            assert!(
                msg.contains("aes-256-gcm or stronger") && msg.contains("chacha20-poly1305"),
                "{msg}"
            );
            assert!(!storage.join("f.txt").exists());
            assert!(
                b.log_text().contains("no acceptable cipher"),
                "the receiver says so too"
            );
        }
    }
    let (code, text) = {
        let out = std::process::Command::new(bin())
            .args(["server", "--min-cipher", "rot13"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(1));
    assert!(
        text.contains("unknown cipher") && text.contains("aes-256-gcm"),
        "{text}"
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn each_destination_sends_from_its_own_port_fixed_when_asked() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        a,
        b,
        ..
    } = Pair::new(false);
    let root = dir.path();
    let src = root.join("f.txt");
    write(&src, b"from a fixed port");
    let fixed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = a.login(u.name(), &pw);
    let pinned = destination(&mut c, &b, u.name(), &pw, json!({"sendPort": fixed}));
    let dynamic = destination(&mut c, &b, u.name(), &pw, json!({"sendRateMax": 900_000}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    let mut cb = b.login(u.name(), &pw);
    let mut ports = Vec::new();
    for d in [&pinned, &dynamic] {
        let t = transfer(&mut c, d, &m, Some(&format!("/{}", &d[..6])));
        assert_eq!(status(&wait_end(&mut c, &t, T)), "complete");
        // The receiver's view of the source port.
        let list = cb.call("recv.getTransfers", json!({})).unwrap();
        let r = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["transferId"] == t.as_str())
            .unwrap()
            .clone();
        let shown = c
            .call("send.getDestination", json!({"destinationId": d}))
            .unwrap();
        assert_eq!(r["sourcePort"], shown["localSendPort"], "{r} {shown}");
        ports.push(r["sourcePort"].as_u64().unwrap());
    }
    assert_eq!(
        ports[0],
        u64::from(fixed),
        "the pinned port is the one on the wire"
    );
    assert_ne!(ports[0], ports[1], "each destination has its own port");
    assert_ne!(ports[1], u64::from(a.udp), "not the receive port");
}
