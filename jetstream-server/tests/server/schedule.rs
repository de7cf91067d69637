//! Scheduling: one transfer at a time per destination, lower `priority` first; a suspended
//! transfer keeps its place in the queue; several receive ports receive at the same time.

use std::time::Duration;

use serde_json::json;

use super::util::*;

const T: Duration = Duration::from_secs(90);

fn start_time(c: &mut jetstream_client::client::ApiClient, id: &str) -> i64 {
    c.call("send.getTransfer", json!({ "transferId": id }))
        .unwrap()["startTime"]
        .as_i64()
        .unwrap_or(i64::MAX)
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn priority_orders_the_queue_and_a_suspended_transfer_keeps_its_place() {
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
    let src = root.join("f.bin");
    write(&src, &data(8 << 20, 12));
    let mut c = a.login(u.name(), &pw);
    // 60 Mbit/s: about a second per transfer, so the others wait in the queue.
    let d = destination(&mut c, &b, u.name(), &pw, json!({"sendRateMax": 60_000}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.bin" })).unwrap();
    let create = |c: &mut jetstream_client::client::ApiClient, name: &str, priority: i64| {
        let t = c
            .call(
                "send.createTransfer",
                json!({"destinationId": d, "manifestId": m, "destinationPath": format!("/{name}"),
                       "priority": priority}),
            )
            .unwrap();
        t["transferId"].as_str().unwrap().to_owned()
    };
    let first = create(&mut c, "first", 100);
    wait_until(&mut c, &first, T, |v| v["status"] == "sending");
    let low = create(&mut c, "low", 200);
    let high = create(&mut c, "high", 50);
    let same = create(&mut c, "same", 100);
    // Suspend the running one: the queue moves on; resumed, it goes back to its old place
    // (queued before `same`, which has its priority).
    c.call("send.suspendTransfer", json!({"transferId": first}))
        .unwrap();
    wait_until(&mut c, &high, T, |v| v["status"] != "pending");
    c.call("send.resumeTransfer", json!({"transferId": first}))
        .unwrap();
    for id in [&first, &low, &high, &same] {
        let end = wait_end(&mut c, id, T);
        assert_eq!(end["status"], "complete", "{end}");
    }
    let order = [
        start_time(&mut c, &high),
        // `first` started before everyone; its (first) start time stays the earliest, so
        // compare the end of its second run instead: it must end before `same` starts.
        c.call("send.getTransfer", json!({"transferId": first}))
            .unwrap()["endTime"]
            .as_i64()
            .unwrap(),
        start_time(&mut c, &same),
        start_time(&mut c, &low),
    ];
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "high, then first (resumed), then same, then low: {order:?}"
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn several_receive_ports_receive_at_the_same_time() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let second = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = root.join("storage");
    let b = Srv::start(
        root,
        "b",
        &[
            "--sandbox-dir",
            storage.to_str().unwrap(),
            "--recv-port",
            &second.to_string(),
        ],
    );
    let a = Srv::start(root, "a", &[]);
    let info = b.client().call("getServerInfo", json!({})).unwrap();
    let ports = info["receiver"]["receiverPorts"].clone();
    assert_eq!(ports, json!([b.udp, second]), "{info}");
    let src = root.join("f.bin");
    write(&src, &data(16 << 20, 13));
    let mut c = a.login(u.name(), &pw);
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.bin" })).unwrap();
    let ids: Vec<String> = (0..2u64)
        .map(|i| {
            let d = destination(
                &mut c,
                &b,
                u.name(),
                &pw,
                json!({"sendRateMax": 60_000 + i}),
            );
            transfer(&mut c, &d, &m, Some(&format!("/p{i}")))
        })
        .collect();
    let mut cb = b.login(u.name(), &pw);
    let deadline = std::time::Instant::now() + T;
    let mut both_at_once = false;
    let mut seen_ports = std::collections::BTreeSet::new();
    while !ids.iter().all(|id| {
        c.call("send.getTransfer", json!({ "transferId": id }))
            .unwrap()["status"]
            == "complete"
    }) {
        let list = cb.call("recv.getTransfers", json!({})).unwrap();
        let receiving: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "receiving")
            .collect();
        for r in &receiving {
            seen_ports.insert(r["receiverPort"].as_u64().unwrap());
        }
        both_at_once |= receiving.len() == 2;
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        both_at_once,
        "the two transfers were received at the same time"
    );
    let want: std::collections::BTreeSet<u64> = [u64::from(b.udp), u64::from(second)].into();
    assert_eq!(seen_ports, want, "one on each receive port");
}
