//! An interrupted transfer resumes after either server restarts; the files end identical.

use std::time::Duration;

use serde_json::json;

use super::util::*;

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_transfer_survives_a_restart_of_each_server() {
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
    let size = 96 << 20;
    let src = root.join("src");
    write(&src.join("big.bin"), &data(size, 3));
    write(&src.join("small.txt"), b"small");
    let mut c = a.login(u.name(), &pw);
    // 200 Mbit/s: about 4 s of data, time enough to restart each side in the middle.
    let d = destination(&mut c, &b, u.name(), &pw, json!({"sendRateMax": 200_000}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/dst" })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let total = (size + 5) as u64;
    let at = |fraction: f64| {
        move |v: &serde_json::Value| {
            v["bytesAcked"].as_u64().unwrap_or(0) as f64 >= fraction * total as f64
                || v["status"] != "sending" && v["status"] != "pending"
        }
    };

    wait_until(&mut c, &t, Duration::from_secs(60), at(0.2));
    b.signal(9);
    b.restart();
    wait_until(&mut c, &t, Duration::from_secs(90), |v| {
        v["attempts"].as_u64() >= Some(2)
    });
    wait_until(&mut c, &t, Duration::from_secs(90), at(0.6));
    assert_eq!(a.signal(15).code(), Some(0));
    a.restart();
    let mut c = a.login(u.name(), &pw);
    let end = wait_end(&mut c, &t, Duration::from_secs(120));
    assert_eq!(end["status"], "complete", "{end}");
    assert!(end["attempts"].as_u64().unwrap() >= 3, "{end}");
    for name in ["big.bin", "small.txt"] {
        let sent = std::fs::read(src.join(name)).unwrap();
        let got = std::fs::read(storage.join("dst").join(name)).unwrap();
        assert!(sent == got, "{name} differs");
    }
    // Resumed, not restarted: far less than three times the data went out.
    let sent = end["bytesSent"].as_u64().unwrap();
    eprintln!(
        "bytes sent {sent} for {total} ({:.2}x)",
        sent as f64 / total as f64
    );
    // Restarting from zero after either interruption would send at least 1.6 times the data.
    assert!(sent < total * 3 / 2, "{sent} bytes sent for {total}");
}
