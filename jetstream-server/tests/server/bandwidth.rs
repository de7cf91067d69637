//! Server-wide bandwidth limits, measured over a 10 s window with real transfers on loopback:
//! an outgoing cap shared fairly by two transfers, an incoming cap enforced through the
//! senders, and a cap on concurrent incoming transfers.

use std::time::{Duration, Instant};

use jetstream_client::client::ApiClient;
use serde_json::{json, Value};

use super::util::*;

const WINDOW: Duration = Duration::from_secs(10);

fn acked(c: &mut ApiClient, id: &str) -> u64 {
    c.call("send.getTransfer", json!({ "transferId": id }))
        .unwrap()["bytesAcked"]
        .as_u64()
        .unwrap_or(0)
}

/// Bits per second each transfer moved over `WINDOW`, after a 2 s warm-up.
fn measure(c: &mut ApiClient, ids: &[String]) -> Vec<f64> {
    let warm = Instant::now() + Duration::from_secs(2);
    while Instant::now() < warm {
        std::thread::sleep(Duration::from_millis(100));
    }
    let start: Vec<u64> = ids.iter().map(|id| acked(c, id)).collect();
    let t0 = Instant::now();
    std::thread::sleep(WINDOW);
    let end: Vec<u64> = ids.iter().map(|id| acked(c, id)).collect();
    let secs = t0.elapsed().as_secs_f64();
    start
        .iter()
        .zip(end)
        .map(|(a, b)| (b - a) as f64 * 8.0 / secs)
        .collect()
}

/// Prints the figures (quoted in docs/server.md) and checks the total holds the cap.
fn assert_holds(direction: &str, rates: &[f64], limit_kbps: u64) {
    let total: f64 = rates.iter().sum();
    let limit = limit_kbps as f64 * 1000.0;
    eprintln!(
        "{direction}: {rates:?} bit/s, total {total:.0} ({:.1} %) for a limit of {limit}",
        total * 100.0 / limit
    );
    assert!(total <= limit * 1.05, "over the limit: {total} > {limit}");
    // Goodput counts file bytes; the cap counts datagrams (about 2.5 % of headers and tags).
    // Alone this gets 94-97 %; beside another test's transfers on two shared cores it got 86 %
    // once. The floor only catches a cap that strangles (the figure to quote is the printed one).
    assert!(total >= limit * 0.80, "far under the limit: {total}");
}

fn superuser(s: &Srv, user: &str, pw: &str) -> ApiClient {
    let mut c = s.login(user, pw);
    c.call("superuser", json!({})).unwrap();
    c
}

/// Two transfers of one 256 MiB file from `a` to `b` (two destinations, so they run at once).
fn two_transfers(
    c: &mut ApiClient,
    b: &Srv,
    user: &str,
    pw: &str,
    src: &std::path::Path,
) -> Vec<String> {
    let m = manifest(c, json!({ src.to_str().unwrap(): "/big.bin" })).unwrap();
    (0..2u64)
        .map(|i| {
            // Distinct (very high) per-destination caps make two destinations.
            let d = destination(c, b, user, pw, json!({ "sendRateMax": 50_000_000 + i }));
            transfer(c, &d, &m, Some(&format!("/t{i}")))
        })
        .collect()
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn an_outgoing_limit_holds_and_is_shared_fairly() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let a = Srv::start(root, "a", &["--superuser", u.name()]);
    let storage = root.join("storage");
    let b = Srv::start(root, "b", &["--sandbox-dir", storage.to_str().unwrap()]);
    let src = root.join("big.bin");
    write(&src, &data(256 << 20, 4));
    let mut su = superuser(&a, u.name(), &pw);
    let limit_kbps = 160_000u64;
    let set = su
        .call(
            "updateBandwidthLimits",
            json!({"outgoingLimitActive": true, "outgoingRateLimit": limit_kbps}),
        )
        .unwrap();
    assert_eq!(set["outgoingRateLimit"], limit_kbps);
    let info = su.call("getServerInfo", json!({})).unwrap();
    assert_eq!(info["bandwidthLimits"]["outgoingLimitActive"], true);
    let mut c = a.login(u.name(), &pw);
    let ids = two_transfers(&mut c, &b, u.name(), &pw, &src);
    let rates = measure(&mut c, &ids);
    assert_holds("outgoing", &rates, limit_kbps);
    for r in &rates {
        let total: f64 = rates.iter().sum();
        assert!((r / total - 0.5).abs() < 0.1, "unfair shares: {rates:?}");
    }
    for id in &ids {
        c.call("send.cancelTransfer", json!({ "transferId": id }))
            .unwrap();
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn an_incoming_limit_is_enforced_through_the_senders() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let a = Srv::start(root, "a", &[]);
    let storage = root.join("storage");
    let b = Srv::start(
        root,
        "b",
        &[
            "--sandbox-dir",
            storage.to_str().unwrap(),
            "--superuser",
            u.name(),
        ],
    );
    let src = root.join("big.bin");
    write(&src, &data(256 << 20, 5));
    let limit_kbps = 120_000u64;
    superuser(&b, u.name(), &pw)
        .call(
            "updateBandwidthLimits",
            json!({"incomingLimitActive": true, "incomingRateLimit": limit_kbps}),
        )
        .unwrap();
    let mut c = a.login(u.name(), &pw);
    let ids = two_transfers(&mut c, &b, u.name(), &pw, &src);
    let rates = measure(&mut c, &ids);
    assert_holds("incoming", &rates, limit_kbps);
    let mut cb = b.login(u.name(), &pw);
    let list: Value = cb.call("recv.getTransfers", json!({})).unwrap();
    let receiving: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "receiving")
        .collect();
    assert_eq!(receiving.len(), 2, "{list}");
    for r in receiving {
        assert_eq!(r["rateLimitKbps"], limit_kbps / 2, "{r}");
    }
    for id in &ids {
        c.call("send.cancelTransfer", json!({ "transferId": id }))
            .unwrap();
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn at_most_incoming_max_connections_are_received_at_once() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let a = Srv::start(root, "a", &[]);
    let storage = root.join("storage");
    let b = Srv::start(
        root,
        "b",
        &[
            "--sandbox-dir",
            storage.to_str().unwrap(),
            "--superuser",
            u.name(),
        ],
    );
    let src = root.join("mid.bin");
    write(&src, &data(24 << 20, 6));
    superuser(&b, u.name(), &pw)
        .call(
            "updateBandwidthLimits",
            json!({"incomingMaxConnections": 1}),
        )
        .unwrap();
    let mut c = a.login(u.name(), &pw);
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/mid.bin" })).unwrap();
    let ids: Vec<String> = (0..2u64)
        .map(|i| {
            let d = destination(
                &mut c,
                &b,
                u.name(),
                &pw,
                json!({ "sendRateMax": 100_000 + i }),
            );
            transfer(&mut c, &d, &m, Some(&format!("/m{i}")))
        })
        .collect();
    let mut cb = b.login(u.name(), &pw);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut most = 0;
    loop {
        let list = cb.call("recv.getTransfers", json!({})).unwrap();
        let receiving = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "receiving")
            .count();
        most = most.max(receiving);
        let done = ids.iter().all(|id| {
            c.call("send.getTransfer", json!({ "transferId": id }))
                .unwrap()["status"]
                == "complete"
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "transfers did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(most, 1, "never two at once");
    for i in 0..2 {
        assert!(
            std::fs::read(storage.join(format!("m{i}/mid.bin"))).unwrap()
                == std::fs::read(&src).unwrap()
        );
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn set_send_rate_changes_a_running_transfer() {
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
    let src = dir.path().join("big.bin");
    write(&src, &data(128 << 20, 9));
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({ "sendRateMax": 40_000 }));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/big.bin" })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    wait_until(&mut c, &t, Duration::from_secs(30), |v| {
        v["status"] == "sending"
    });
    let rate = |c: &mut ApiClient| {
        let a0 = acked(c, &t);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        (acked(c, &t) - a0) as f64 * 8.0 / t0.elapsed().as_secs_f64()
    };
    std::thread::sleep(Duration::from_millis(500));
    let slow = rate(&mut c);
    // `setSendRateAsync` answers with a request; its result says the new cap.
    let r = c
        .call(
            "send.setSendRateAsync",
            json!({ "transferId": t, "sendRateMax": 120_000 }),
        )
        .unwrap();
    let done = c
        .call("getRequestResult", json!({ "requestId": r["requestId"] }))
        .unwrap();
    assert_eq!(done["sendRateMax"], 120_000);
    std::thread::sleep(Duration::from_millis(500));
    let fast = rate(&mut c);
    eprintln!("before {slow:.0} bit/s, after {fast:.0} bit/s");
    // Each cap holds, and the new one takes over at once. Alone this measures 37-38 and
    // 114-116 Mbit/s; beside other tests on two shared cores the pacer's late wake-ups cost up
    // to 20 % (the floors), never the caps (the ceilings).
    assert!(slow < 40e6 * 1.05 && slow > 40e6 * 0.75, "{slow}");
    assert!(fast > 120e6 * 0.75 && fast < 120e6 * 1.05, "{fast}");
    assert!(fast > 2.5 * slow, "{slow} -> {fast}");
    c.call("send.cancelTransfer", json!({ "transferId": t }))
        .unwrap();
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn the_outgoing_limit_holds_from_the_first_datagram() {
    // Issue 18: a 6 MB transfer ran at ~2 Gbit/s under a 16 Mbit/s limit: it was over before
    // the first 200 ms sharing tick capped it. It must take at least what the limit allows.
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let a = Srv::start(root, "a", &["--superuser", u.name()]);
    let b = Srv::start(
        root,
        "b",
        &["--sandbox-dir", root.join("in").to_str().unwrap()],
    );
    let size = 6_000_000usize;
    let src = root.join("six.bin");
    write(&src, &data(size, 6));
    let limit_kbps = 16_000u64;
    superuser(&a, u.name(), &pw)
        .call(
            "updateBandwidthLimits",
            json!({"outgoingLimitActive": true, "outgoingRateLimit": limit_kbps}),
        )
        .unwrap();
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/six.bin" })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let end = wait_end(&mut c, &t, Duration::from_secs(60));
    assert_eq!(end["status"], "complete", "{end}");
    // Times are µs; the file's bytes alone need size * 8 / limit seconds (the datagrams'
    // headers make it longer still). A slow machine only makes it longer.
    let took = (end["endTime"].as_i64().unwrap() - end["startTime"].as_i64().unwrap()) as f64 / 1e6;
    let least = size as f64 * 8.0 / (limit_kbps as f64 * 1000.0);
    eprintln!("6 MB under a 16 Mbit/s limit: {took:.2} s (the limit allows {least:.2} s at best)");
    assert!(
        took >= least * 0.9,
        "{took:.2} s: faster than the limit allows ({least:.2} s)"
    );
}
