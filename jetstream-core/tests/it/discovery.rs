//! Discovery datagrams between two real engines on 127.0.0.1: probe, echo, junk, the ring.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use jetstream_core::{Discovery, EngineHandle};

use super::util::engine;

/// Polls `discoveries()` until `pred` holds for some entry, or fails after 10 s.
fn wait_for(h: &EngineHandle, what: &str, pred: impl Fn(&Discovery) -> bool) -> Vec<Discovery> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = h.discoveries().expect("engine runs");
        if v.iter().any(&pred) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn datagram(nonce: [u8; 16], kind: u8) -> Vec<u8> {
    let mut d = b"JSDISC1\0".to_vec();
    d.extend_from_slice(&nonce);
    d.push(kind);
    d
}

#[test]
fn a_probe_is_recorded_and_echoed_with_its_nonce() {
    let a = engine();
    let b = engine();
    let start = Instant::now();
    let nonce = *b"0123456789abcdef";
    a.handle()
        .send_discovery(b.local_addr(), nonce)
        .expect("probe sent");

    let at_b = wait_for(&b.handle(), "B's probe", |d| d.nonce == nonce);
    let probe = at_b.iter().find(|d| d.nonce == nonce).unwrap();
    assert!(!probe.echo);
    assert_eq!(probe.from, a.local_addr());
    assert!(probe.at >= start);

    let at_a = wait_for(&a.handle(), "A's echo", |d| d.nonce == nonce);
    let echo = at_a.iter().find(|d| d.nonce == nonce).unwrap();
    assert!(echo.echo);
    assert_eq!(echo.from, b.local_addr());
    // A echoes nothing back: an echo is not a probe.
    assert_eq!(at_a.len(), 1, "{at_a:?}");

    let info = b.handle().info().unwrap();
    assert_eq!(info.discovery.probes, 1);
    assert_eq!(info.discovery.echoes_sent, 1);
    assert_eq!(info.sessions, 0, "discovery creates no session");
    assert_eq!(a.handle().info().unwrap().discovery.echoes, 1);
}

#[test]
fn junk_is_ignored_and_the_ring_keeps_the_last_64() {
    let b = engine();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let me = sock.local_addr().unwrap();

    // 25 bytes with a wrong magic, a wrong length, an unknown kind: none is recorded.
    let mut junk = datagram([1; 16], 1);
    junk[0] = b'X';
    sock.send_to(&junk, b.local_addr()).unwrap();
    sock.send_to(&datagram([2; 16], 1)[..24], b.local_addr())
        .unwrap();
    sock.send_to(&datagram([3; 16], 9), b.local_addr()).unwrap();
    // Then 70 probes (under the echo limit of 100 per second, whatever the timing).
    for i in 0..70u8 {
        sock.send_to(&datagram([100 + i; 16], 1), b.local_addr())
            .unwrap();
    }
    let v = wait_for(&b.handle(), "the last probe", |d| d.nonce == [169; 16]);
    assert_eq!(v.len(), 64, "the ring holds 64");
    assert_eq!(v[0].nonce, [106; 16], "the oldest six were pushed out");
    assert!(v.iter().all(|d| !d.echo && d.from == me));
    let info = b.handle().info().unwrap();
    assert_eq!(info.discovery.invalid, 1, "unknown kind");
    assert_eq!(info.discovery.probes, 70);
    assert_eq!(
        info.dropped.malformed + info.dropped.unknown_session,
        2,
        "the wrong magic and the short one went to the endpoint and were dropped"
    );
    assert_eq!(info.sessions, 0);

    // Every probe got an echo with its nonce, in order (loopback does not reorder).
    let mut buf = [0u8; 64];
    for i in 0..70u8 {
        let (n, from) = sock.recv_from(&mut buf).expect("an echo");
        assert_eq!(from, b.local_addr());
        assert_eq!(&buf[..n], &datagram([100 + i; 16], 2)[..]);
    }
}
