//! Path memory: what a transfer measured of the path (bottleneck bandwidth, minimum RTT) is kept
//! per destination in `<state>/paths` and given to the next transfer to it, which starts at
//! that rate (`PathHint`); a transfer that ends incomplete forgets it, so the attempt that
//! resumes it starts cold.

use std::time::Duration;

use serde_json::json;

use super::util::*;

const T: Duration = Duration::from_secs(120);

/// The destination's line in the sending server's path memory: (bandwidth bytes/s, min-RTT µs).
fn remembered(a: &Srv, dest: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(a.state.join("paths")).unwrap_or_default();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&dest)).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
    })
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn the_next_transfer_to_a_destination_starts_from_what_the_last_one_measured() {
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
    let src = dir.path().join("f.bin");
    let bytes = data(48 << 20, 31);
    write(&src, &bytes);
    let mut c = a.login(u.name(), &pw);
    // A 200 Mbit/s cap makes the path's "bandwidth" known: the estimate must be about it.
    let d = destination(&mut c, &b, u.name(), &pw, json!({"sendRateMax": 200_000}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.bin" })).unwrap();
    assert_eq!(remembered(&a, &d), None);

    let first = transfer(&mut c, &d, &m, Some("/one"));
    assert_eq!(wait_end(&mut c, &first, T)["status"], "complete");
    let (bw, rtt_us) = remembered(&a, &d).expect("the first transfer's estimate is kept");
    println!("remembered: {:.1} Mbit/s, {rtt_us} µs", bw as f64 * 8e-6);
    assert!((15_000_000..=27_000_000).contains(&bw), "{bw} bytes/s");
    assert!(rtt_us < 100_000, "{rtt_us} µs on loopback");
    let log = a.log_text();
    assert!(
        log.contains(&format!(
            "transfers: {first} to destination {d}: path hint none"
        )),
        "{log}"
    );

    // The second transfer is given the hint (validated, or retreated if this shared machine
    // could not deliver its rate: both mean the engine had it and checked it).
    let second = transfer(&mut c, &d, &m, Some("/two"));
    assert_eq!(wait_end(&mut c, &second, T)["status"], "complete");
    let log = a.log_text();
    let line = log
        .lines()
        .find(|l| {
            l.contains(&format!(
                "transfers: {second} to destination {d}: path hint"
            ))
        })
        .expect("the second transfer's path line");
    assert!(
        line.contains("path hint validated") || line.contains("path hint retreated"),
        "{line}"
    );
    for name in ["one", "two"] {
        assert!(
            std::fs::read(storage.join(name).join("f.bin")).unwrap() == bytes,
            "{name}/f.bin differs"
        );
    }

    // A cancelled transfer forgets the path.
    let third = transfer(&mut c, &d, &m, Some("/three"));
    wait_until(&mut c, &third, T, |t| {
        t["status"] == "sending" && t["bytesAcked"].as_u64().unwrap_or(0) > 0
    });
    c.call("send.cancelTransfer", json!({ "transferId": third }))
        .unwrap();
    assert_eq!(wait_end(&mut c, &third, T)["status"], "cancelled");
    // The attempt records its outcome as it winds down, just after the status changes.
    let deadline = std::time::Instant::now() + T;
    while remembered(&a, &d).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the path is still remembered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
