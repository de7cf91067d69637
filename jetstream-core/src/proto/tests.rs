//! Deterministic simulated-network tests of the protocol core (virtual clock, seeded faults).

use std::time::Duration;

use crate::error::TransferError;
use crate::failure::FailureReason;
use crate::manifest::{Manifest, ManifestEntry};
use crate::proto::TransportConfig;
use crate::testing::{manifest_of, Link, Pair};
use crate::types::FileIndex;

const MB: u64 = 1 << 20;

fn link(one_way_ms: u64, rate_mbit: u64, loss: f64, seed: u64) -> Link {
    let mut l = Link::new(Duration::from_millis(one_way_ms), seed);
    l.rate = Some(rate_mbit * 1_000_000 / 8);
    // A drop-tail queue of one bandwidth-delay product.
    l.queue = (rate_mbit * 1_000_000 / 8 * one_way_ms * 2 / 1000).max(64 * 1024);
    l.loss = loss;
    l
}

fn assert_clean(p: &Pair) {
    println!(
        "t={:?} fwd_dropped={} maxq={} outcome={:?} verified={} sender={:?} rx_dropped={:?} sessions={}/{}",
        p.elapsed(),
        p.forward.dropped,
        p.forward.max_queue,
        p.outcome,
        p.storage.verified,
        p.sender_stats,
        p.receiver.stats(),
        p.sender.session_count(),
        p.receiver.session_count()
    );
    assert!(
        p.outcome.failures.is_empty(),
        "failures: {:?}",
        p.outcome.failures
    );
    assert!(p.outcome.sender_done.is_some(), "sender did not complete");
    assert!(
        p.outcome.receiver_done.is_some(),
        "receiver did not complete"
    );
    assert_eq!(p.storage.corrupt_bytes, 0);
}

#[test]
fn completes_byte_exact_without_loss_including_empty_entries() {
    let mut entries = vec![
        ManifestEntry::file("a/empty", 0, 0, false).unwrap(),
        ManifestEntry::file("a/one", 1, 0, true).unwrap(),
        ManifestEntry::file("b/big", 3 * MB + 17, 0, false).unwrap(),
    ];
    entries.push(ManifestEntry::empty_dir("c/d").unwrap());
    let m = Manifest::new(entries).unwrap();
    // A deep queue (8 BDP): nothing is lost, so nothing may be retransmitted (no spurious
    // loss detection from deferred acknowledgements).
    let mut fwd = link(10, 100, 0.0, 1);
    fwd.queue *= 8;
    let mut p = Pair::new(m, fwd, link(10, 100, 0.0, 2), TransportConfig::default());
    p.run(Duration::from_secs(30));
    assert_clean(&p);
    assert_eq!(p.storage.verified, 4);
    // 3 MiB at 100 Mbit/s is 0.25 s; allow start-up and a few RTTs.
    let t = p.outcome.sender_done.unwrap();
    assert!(t < Duration::from_millis(1200), "took {t:?}");
    assert_eq!(p.sender_stats.blocks_retransmitted, 0);
}

/// The loss matrix: completion, a virtual-time bound, and retransmission overhead.
#[test]
fn survives_random_loss_with_proportional_retransmission() {
    println!("loss   time(s)  goodput(Mbit/s)  retransmitted/total");
    for (i, &loss) in [0.0, 0.01, 0.05, 0.20].iter().enumerate() {
        let size = 8 * MB;
        let m = manifest_of(&[size]);
        let mut p = Pair::new(
            m,
            link(25, 100, loss, 10 + i as u64),
            link(25, 100, loss, 20 + i as u64),
            TransportConfig::default(),
        );
        p.run(Duration::from_secs(120));
        assert_clean(&p);
        let t = p.outcome.sender_done.unwrap();
        let retx = p.sender_stats.bytes_retransmitted as f64 / size as f64;
        let goodput = size as f64 * 8.0 / t.as_secs_f64() / 1e6;
        println!(
            "{:4.0}%  {:7.2}  {:15.1}  {:.4}",
            loss * 100.0,
            t.as_secs_f64(),
            goodput,
            retx
        );
        // Every lost datagram is resent once; the constant allows for losses of resends and
        // for the one queue overflow that ends start-up (real congestion, bounded).
        assert!(
            retx <= loss * 1.5 + 0.02,
            "loss {loss}: retransmitted {retx}"
        );
        // 8 MiB at 100 Mbit/s is 0.67 s at line rate; at (1-p) of the link plus start-up.
        let bound = 0.67 / (1.0 - loss) * 1.6 + 1.0;
        assert!(
            t.as_secs_f64() < bound,
            "loss {loss}: took {t:?} (bound {bound:.2} s)"
        );
    }
}

#[test]
fn survives_reordering_duplication_and_corruption() {
    let m = manifest_of(&[2 * MB, 100_000, 0, 7]);
    let mut fwd = link(20, 100, 0.01, 3);
    fwd.jitter = Duration::from_millis(3);
    fwd.reorder = true;
    fwd.duplicate = 0.02;
    fwd.corrupt = 0.01;
    let mut back = link(20, 100, 0.01, 4);
    back.duplicate = 0.02;
    back.corrupt = 0.01;
    let mut p = Pair::new(m, fwd, back, TransportConfig::default());
    p.run(Duration::from_secs(60));
    assert_clean(&p);
    assert_eq!(p.storage.verified, 4);
    // Corrupted and duplicated datagrams were dropped by authentication / replay checks.
    assert!(p.receiver.stats().rejected > 0);
}

#[test]
fn fills_a_bottleneck_without_overflowing_its_queue_much() {
    let size = 16 * MB;
    let m = manifest_of(&[size]);
    let mut p = Pair::new(
        m,
        link(50, 50, 0.0, 5),
        link(50, 50, 0.0, 6),
        TransportConfig::default(),
    );
    p.run(Duration::from_secs(60));
    assert_clean(&p);
    let t = p.outcome.sender_done.unwrap().as_secs_f64();
    let ideal = size as f64 * 8.0 / 50e6;
    println!(
        "bottleneck: {t:.2} s vs {ideal:.2} s ideal, dropped {}",
        p.forward.dropped
    );
    assert!(
        t < ideal * 1.5 + 1.0,
        "took {t:.2} s for {ideal:.2} s of data"
    );
    // Startup overshoot may overflow the queue once; steady state must not keep dropping.
    let packets = size / 1400;
    assert!(
        p.forward.dropped < packets / 50,
        "dropped {} of {packets}",
        p.forward.dropped
    );
}

#[test]
fn many_small_files_cost_a_few_round_trips_not_one_each() {
    let sizes: Vec<u64> = (0..2000).map(|i| 100 + (i % 7) * 300).collect();
    let total: u64 = sizes.iter().sum();
    let m = manifest_of(&sizes);
    let mut p = Pair::new(
        m,
        link(50, 100, 0.0, 7),
        link(50, 100, 0.0, 8),
        TransportConfig::default(),
    );
    p.run(Duration::from_secs(60));
    assert_clean(&p);
    assert_eq!(p.storage.verified, 2000);
    let t = p.outcome.sender_done.unwrap();
    // 2000 round trips would be 200 s. Data time is ~0.2 s at 100 Mbit/s.
    println!("2000 small files ({total} bytes): {t:?}");
    assert!(t < Duration::from_secs(3), "took {t:?}");
}

#[test]
fn resumed_transfer_sends_only_what_is_missing() {
    let size = 4 * MB;
    let m = manifest_of(&[size, size]);
    let mut p = Pair::new(
        m,
        link(10, 200, 0.0, 9),
        link(10, 200, 0.0, 10),
        TransportConfig::default(),
    );
    // A previous run left file 0 entirely and the first half of file 1.
    p.resume_held = vec![(FileIndex(0), 0..size), (FileIndex(1), 0..size / 2)];
    p.run(Duration::from_secs(30));
    assert_clean(&p);
    assert_eq!(p.storage.verified, 2);
    let sent = p.sender_stats.bytes_sent;
    println!("resume: sent {sent} bytes for {} missing", size / 2);
    assert!(sent < size / 2 + size / 10, "sent {sent}");
}

#[test]
fn cancel_reaches_the_receiver() {
    let m = manifest_of(&[64 * MB]);
    let mut p = Pair::new(
        m,
        link(10, 100, 0.0, 11),
        link(10, 100, 0.0, 12),
        TransportConfig::default(),
    );
    p.run(Duration::from_millis(500));
    p.cancel_sender();
    p.run(Duration::from_secs(10));
    assert!(p.outcome.sender_done.is_none());
    assert!(p
        .outcome
        .failures
        .iter()
        .any(|(r, e)| *r == "sender" && *e == TransferError::Cancelled));
    assert!(p
        .outcome
        .failures
        .iter()
        .any(|(r, e)| *r == "receiver" && matches!(e, TransferError::PeerClosed { code: 0, .. })));
}

#[test]
fn blackout_longer_than_idle_timeout_fails_both_sides_clearly() {
    let m = manifest_of(&[64 * MB]);
    let mut config = TransportConfig::default();
    config.idle_timeout(Duration::from_secs(5));
    let mut p = Pair::new(m, link(10, 100, 0.0, 13), link(10, 100, 0.0, 14), config);
    p.run(Duration::from_millis(300));
    p.forward.down = true;
    p.backward.down = true;
    p.run(Duration::from_secs(30));
    let timed_out = p
        .outcome
        .failures
        .iter()
        .filter(|(_, e)| *e == TransferError::TimedOut)
        .count();
    assert_eq!(timed_out, 2, "{:?}", p.outcome.failures);
    assert!(p
        .outcome
        .failures
        .iter()
        .all(|(_, e)| e.reason() == FailureReason::TimedOut));
    assert_eq!(p.sender.session_count() + p.receiver.session_count(), 0);
}

#[test]
fn blackout_shorter_than_idle_timeout_is_survived() {
    let m = manifest_of(&[8 * MB]);
    let mut p = Pair::new(
        m,
        link(10, 100, 0.0, 15),
        link(10, 100, 0.0, 16),
        TransportConfig::default(),
    );
    p.run(Duration::from_millis(200));
    p.forward.down = true;
    p.backward.down = true;
    p.run(Duration::from_secs(10));
    p.forward.down = false;
    p.backward.down = false;
    p.run(Duration::from_secs(60));
    assert_clean(&p);
}

#[test]
fn rate_cap_is_respected() {
    let size = 4 * MB;
    let m = manifest_of(&[size]);
    let mut config = TransportConfig::default();
    config.max_rate(Some(crate::types::BitsPerSecond(20_000_000)));
    let mut p = Pair::new(m, link(10, 100, 0.0, 17), link(10, 100, 0.0, 18), config);
    p.run(Duration::from_secs(60));
    assert_clean(&p);
    let t = p.outcome.sender_done.unwrap().as_secs_f64();
    let rate = p.sender_stats.bytes_sent as f64 * 8.0 / t;
    println!("capped at 20 Mbit/s: {:.2} Mbit/s on the wire", rate / 1e6);
    assert!(rate <= 20e6 * 1.05, "rate {rate}");
    assert!(rate >= 20e6 * 0.7, "rate {rate}");
}

/// The WAN benchmark's grid (bench/wan.sh) in simulation: whole sessions (handshake, data,
/// completion) over a one-BDP drop-tail bottleneck with loss both ways, and the utilisation
/// `goodput / (rate × (1 − loss))` over the session's whole time. Each cell runs twice: a first
/// transfer ("cold"), and a repeat transfer given the first one's path estimate ("warm", path
/// memory: `PathHint`). `JETSTREAM_SIM_MIB` sets the file size (default 32 MiB, to keep
/// `cargo test` short; the benchmark uses 256). At 32 MiB each cell must keep its utilisation
/// (the run is deterministic; the floors sit ~5 points below the measured values, so a slower
/// start-up or a lossier steady state fails), and every run must retransmit no more than the
/// loss rate plus a little and stay within the bytes-on-the-wire budget.
#[test]
fn wan_grid_in_simulation() {
    let mib: u64 = std::env::var("JETSTREAM_SIM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let size = mib * MB;
    println!(
        "{mib} MiB: rate Mbit/s, RTT ms, loss % -> time s, utilisation, retransmitted, wire/byte"
    );
    // (Mbit/s, RTT ms, loss, utilisation floors cold and warm at 32 MiB)
    type Cell = (u64, u64, f64, f64, f64);
    let cells = [
        (100, 100, 0.0, 0.82, 0.89),
        (100, 100, 0.05, 0.78, 0.86),
        (100, 300, 0.05, 0.50, 0.69),
        (500, 200, 0.03, 0.20, 0.42),
        (500, 20, 0.01, 0.77, 0.86),
    ];
    // `JETSTREAM_SIM_CELLS=500/200/0,100/300/5` runs those cells instead (no floors checked).
    let custom: Option<Vec<Cell>> = std::env::var("JETSTREAM_SIM_CELLS").ok().map(|v| {
        v.split(',')
            .map(|c| {
                let f: Vec<f64> = c.split('/').map(|x| x.trim().parse().unwrap()).collect();
                (f[0] as u64, f[1] as u64, f[2] / 100.0, 0.0, 0.0)
            })
            .collect()
    });
    let check = mib == 32 && custom.is_none();
    let cells = custom.as_deref().unwrap_or(&cells);
    for (i, &(rate, rtt, loss, cold_floor, warm_floor)) in cells.iter().enumerate() {
        let seed = 40 + i as u64 * 2;
        let mut hint = None;
        for (run, floor) in [("cold", cold_floor), ("warm", warm_floor)] {
            let config = TransportConfig {
                path_hint: hint,
                ..TransportConfig::default()
            };
            let mut p = Pair::new(
                manifest_of(&[size]),
                link(rtt / 2, rate, loss, seed),
                link(rtt / 2, rate, loss, seed + 1),
                config,
            );
            p.run(Duration::from_secs(600));
            assert_clean(&p);
            let t = p.outcome.sender_done.unwrap().as_secs_f64();
            let ideal = size as f64 * 8.0 / (rate as f64 * 1e6 * (1.0 - loss));
            let retx = p.sender_stats.bytes_retransmitted as f64 / size as f64;
            let utilisation = ideal / t;
            // Bytes on the wire per file byte at the IP level (IPv4 + UDP headers: 28 bytes per
            // datagram), against the budget (1 + loss) x 1.05.
            let s = &p.sender_stats;
            let wire = (s.bytes_sent + 28 * s.packets_sent) as f64 / size as f64;
            let retx_ok = retx <= loss * 1.3 + 0.01;
            // The budget is in terms of the loss this run's link really applied (a 32 MiB
            // transfer is ~24,000 datagrams: at 5 % the drawn loss varies by ±0.15 %), plus the
            // tail's second copies, which are bounded by a fixed share of the file (at the
            // benchmark's 256 MiB they fit the budget; at these 32 MiB they weigh 8x more).
            let drawn = p.forward.dropped as f64 / s.packets_sent.max(1) as f64;
            let copies = super::session::sender::TAIL_COPY_BUDGET;
            let wire_ok = wire <= (1.0 + drawn.max(loss)) * 1.05 + copies;
            println!(
                "{rate:>4} {rtt:>4} {:>4.1} {run} -> {t:>6.2} {:>6.1}% {retx:.4} wire {wire:.4} \
                 {}{}{}",
                loss * 100.0,
                utilisation * 100.0,
                s.path_hint_outcome,
                if retx_ok { "" } else { " RETX" },
                if wire_ok { "" } else { " WIRE" },
            );
            hint = s.path_estimate;
            if custom.is_some() {
                continue;
            }
            assert!(retx_ok, "{rate}/{rtt}/{loss} {run}: retransmitted {retx}");
            assert!(
                wire_ok,
                "{rate}/{rtt}/{loss} {run}: {wire:.4} bytes on the wire per file byte"
            );
            if run == "warm" {
                assert_eq!(s.path_hint_outcome, "validated", "{rate}/{rtt}/{loss}");
            }
            if check {
                assert!(
                    utilisation >= floor,
                    "{rate} Mbit/s, {rtt} ms, {loss} {run}: utilisation {utilisation:.3} < {floor}"
                );
            }
        }
    }
}

/// A source the sender cannot read mid-way (an EIO after 1 MiB of the second of three files):
/// that entry alone fails, at once and without its remaining bytes; the others complete, and
/// nothing of the failed one is presented as verified.
#[test]
fn an_unreadable_source_fails_its_entry_alone() {
    let m = manifest_of(&[2 * MB, 3 * MB, MB]);
    let mut p = Pair::new(
        m,
        link(10, 100, 0.01, 61),
        link(10, 100, 0.01, 62),
        TransportConfig::default(),
    );
    p.unreadable = Some((1, MB));
    p.run(Duration::from_secs(30));
    assert!(p.outcome.failures.is_empty(), "{:?}", p.outcome.failures);
    assert!(p.outcome.sender_done.is_some(), "sender did not complete");
    assert!(
        p.outcome.receiver_done.is_some(),
        "receiver did not complete"
    );
    assert_eq!(p.storage.corrupt_bytes, 0);
    assert_eq!(p.storage.verified, 2);
    assert_eq!(
        p.outcome.refused,
        vec![(FileIndex(1), FailureReason::SourceUnreadable)]
    );
    // The 2 MiB after the failure point were never sent (retransmissions aside).
    let sent = p.sender_stats.bytes_sent;
    assert!(sent < 5 * MB, "sent {sent}");
}

/// The sender's first flight carries file data with the manifest: it is held by the receiver
/// about one round trip after the start, where waiting for the manifest's acknowledgement
/// would hold none yet (its first file byte would arrive 1.5 round trips in).
#[test]
fn the_first_flight_carries_file_data() {
    let m = manifest_of(&[4 * MB]);
    let mut p = Pair::new(
        m,
        link(50, 1000, 0.0, 71),
        link(50, 1000, 0.0, 72),
        TransportConfig::default(),
    );
    p.run(Duration::from_millis(140));
    let held = p.storage.written_bytes;
    println!("held after 1.4 RTT: {held}");
    assert!(held >= 200 * 1024, "held {held}");
    p.run(Duration::from_secs(30));
    assert_clean(&p);
    assert_eq!(p.storage.verified, 1);
}

/// File data that arrives before the receiver's storage is open is kept (and written once it
/// is) up to [`EARLY_DATA_MAX`](super::session::EARLY_DATA_MAX); a packet beyond that bound is
/// not acknowledged, so a sender that overruns it loses nothing and the receiver's memory stays
/// bounded.
#[test]
fn early_data_is_kept_until_storage_opens_and_bounded() {
    use std::time::Instant;

    use crate::proto::crypto::{Cipher, SessionKeys, SessionSecret};
    use crate::proto::packet::{
        self, open_datagram, seal_datagram, DataFrame, Frame, Header, HelloFrame, PacketType,
        PnForm,
    };
    use crate::proto::{Endpoint, Event, ReceiveParams};
    use crate::testing::{CheckingStorage, Data};
    use crate::types::{Role, SessionId};

    const BLOCK: usize = 1000;
    let m = manifest_of(&[64 * MB]);
    let manifest_bytes = m.encode();
    let hello = HelloFrame {
        manifest_len: manifest_bytes.len() as u64,
        data_len: m.total_bytes(),
        entry_count: m.len() as u64,
        manifest_digest: m.digest(),
    };
    let (id, secret) = (SessionId(0x5eed), SessionSecret::from_bytes([3; 32]));
    let now = Instant::now();
    let mut ep = Endpoint::new();
    let h = ep
        .expect_receive(
            now,
            ReceiveParams {
                session_id: id,
                secret: secret.clone(),
                cipher: Cipher::Aes256Gcm,
                first_pn: 1 << 40,
                config: TransportConfig::default(),
            },
        )
        .unwrap();
    let keys = SessionKeys::derive(Cipher::Aes256Gcm, &secret, id, Role::Sender);
    let mut storage = CheckingStorage::default();
    let from = "192.0.2.7:9000".parse().unwrap();
    let deliver = |ep: &mut Endpoint, storage: &mut CheckingStorage, pn: u64, f: &Frame<'_>| {
        let header = Header {
            packet_type: PacketType::Protected,
            session_id: id,
            packet_number: pn,
            pn_form: PnForm::Long,
        };
        let mut buf = vec![0u8; 2048];
        let hl = header.buffer_len();
        let mut n = Frame::Hello(hello).encode(&mut buf[hl..]).unwrap();
        n += f.encode(&mut buf[hl + n..]).unwrap();
        let len = seal_datagram(keys.seal_key(), &header, &mut buf, n).unwrap();
        ep.handle_datagram(now, from, &mut buf[..len], storage);
    };
    // Packet 0: the manifest. Packets 1..: file data, 1.5 times the early bound.
    let manifest = Frame::Data(DataFrame {
        file: FileIndex::MANIFEST,
        offset: 0,
        payload: &manifest_bytes,
        to_end: false,
    });
    deliver(&mut ep, &mut storage, 0, &manifest);
    let blocks = 3 * super::session::EARLY_DATA_MAX as usize / 2 / BLOCK;
    for i in 0..blocks {
        let offset = (i * BLOCK) as u64;
        let bytes = Data::at(0, offset, BLOCK);
        let frame = Frame::Data(DataFrame {
            file: FileIndex(0),
            offset,
            payload: &bytes,
            to_end: false,
        });
        deliver(&mut ep, &mut storage, 1 + i as u64, &frame);
    }
    assert_eq!(
        storage.written_bytes, 0,
        "nothing written before storage opens"
    );
    // The receiver's ACK names exactly the packets it kept.
    let mut buf = vec![0u8; 4096];
    let t = ep
        .poll_transmit(now, &mut buf, 1, &storage)
        .expect("an ACK");
    let (_, _, plain) = open_datagram(keys.open_key(), None, &mut buf[..t.len]).unwrap();
    let mut acked = crate::proto::rangeset::RangeSet::default();
    for f in packet::frames(plain) {
        if let Ok(Frame::Ack(a)) = f {
            for r in a.pn_ranges() {
                acked.insert(r);
            }
        }
    }
    let kept = super::session::EARLY_DATA_MAX as usize / BLOCK;
    assert!(acked.contains_range(0..1 + kept as u64), "{acked:?}");
    assert_eq!(
        acked.covered_len(1 + kept as u64..1 + blocks as u64),
        0,
        "{acked:?}"
    );
    // Storage opens: what was kept is written, and checks out byte for byte.
    assert!(matches!(ep.poll_event(), Some(Event::ManifestReceived(_))));
    storage.open(&m);
    ep.storage_ready(now, h, &[], &[], &mut storage);
    assert_eq!(storage.written_bytes, (kept * BLOCK) as u64);
    assert_eq!(storage.corrupt_bytes, 0);
}

/// A session that closed leaves its slot to the next one, but not its handle: the driver keys
/// its transfers and sinks by handle, and a `Closed` event for the old session handled after
/// the new one was registered used to remove the new one's transfer (its storage then never
/// opened: a 1-byte transfer hung in CI).
#[test]
fn a_closed_sessions_handle_never_reaches_the_session_in_its_slot() {
    use crate::proto::crypto::{Cipher, SessionSecret};
    use crate::proto::{Event, ReceiveParams};
    use crate::types::SessionId;

    let mut p = Pair::new(
        manifest_of(&[1]),
        link(1, 100, 0.0, 1),
        link(1, 100, 0.0, 2),
        TransportConfig::default(),
    );
    p.run(Duration::from_secs(30));
    assert_clean(&p);
    assert_eq!(
        p.receiver.session_count(),
        0,
        "the receiving session closed"
    );
    let old = p.receiver_handle();
    let params = |id| ReceiveParams {
        session_id: SessionId(id),
        secret: SessionSecret::from_bytes([9; 32]),
        cipher: Cipher::Aes256Gcm,
        first_pn: 1 << 40,
        config: TransportConfig::default(),
    };
    let new = p.receiver.expect_receive(p.now, params(0xA)).unwrap();
    assert_ne!(new, old, "a new session gets a new handle");
    assert!(p.receiver.session_stats(old).is_none());
    assert!(p.receiver.session_stats(new).is_some());
    // Acting on the old handle leaves the new session alone.
    p.receiver
        .close(p.now, old, TransferError::Internal("stale handle"));
    assert_eq!(p.receiver.session_count(), 1);
    while let Some(e) = p.receiver.poll_event() {
        assert!(!matches!(e, Event::Failed(h, _) if h == new), "{e:?}");
    }
    // The slot is reused (no growth per session), with a handle of its own each time.
    p.receiver
        .close(p.now, new, TransferError::Internal("done"));
    let mut handles = vec![old, new];
    for id in 0..4 {
        let h = p
            .receiver
            .expect_receive(p.now, params(0x100 + id))
            .unwrap();
        assert!(!handles.contains(&h), "{h:?} in {handles:?}");
        handles.push(h);
    }
}

/// The endpoint's traffic totals keep what its closed sessions carried: the server's
/// `jetstream_*_bytes_total` metrics are read from them and must not drop to zero when a
/// transfer ends (issue 16, item 5).
#[test]
fn traffic_totals_outlive_the_sessions_that_made_them() {
    let m = manifest_of(&[2 * MB]);
    let mut p = Pair::new(
        m,
        link(10, 100, 0.01, 11),
        link(10, 100, 0.0, 12),
        TransportConfig::default(),
    );
    p.run(Duration::from_secs(30));
    assert_clean(&p);
    assert_eq!(
        (p.sender.session_count(), p.receiver.session_count()),
        (0, 0),
        "both sessions are closed and freed"
    );
    let (sent, got) = (p.sender.traffic(), p.receiver.traffic());
    assert!(sent.bytes_sent >= p.sender_stats.bytes_sent, "{sent:?}");
    assert!(sent.bytes_sent > 2 * MB, "{sent:?}");
    assert!(sent.bytes_retransmitted >= p.sender_stats.bytes_retransmitted);
    assert!(got.bytes_recv > 2 * MB, "{got:?}");
    assert!(got.bytes_sent > 0, "acknowledgements: {got:?}");
    assert!(sent.bytes_recv > 0, "{sent:?}");
}

/// The receiver's disk fills up during the second of three files: the sender learns, through
/// the COMPLETE frame's per-entry code, that those entries failed because the disk is full
/// (not a bare "I/O error"), and the transfer itself completes.
#[test]
fn a_full_disk_at_the_receiver_reaches_the_sender_as_no_space() {
    let m = manifest_of(&[2 * MB, 3 * MB, MB]);
    let mut p = Pair::new(
        m,
        link(10, 100, 0.0, 71),
        link(10, 100, 0.0, 72),
        TransportConfig::default(),
    );
    p.storage.disk_full_after = Some(3 * MB);
    p.run(Duration::from_secs(30));
    assert!(p.outcome.failures.is_empty(), "{:?}", p.outcome.failures);
    assert!(p.outcome.sender_done.is_some(), "sender did not complete");
    assert_eq!(p.storage.verified, 1);
    assert_eq!(
        p.outcome.refused,
        vec![
            (FileIndex(1), FailureReason::NoSpace),
            (FileIndex(2), FailureReason::NoSpace)
        ]
    );
}

/// An entry whose data does not match the digest the sender announced: the receiver discards
/// it, and the sender hears `IntegrityMismatch` (wire code 6), not a generic failure.
#[test]
fn a_digest_mismatch_reaches_the_sender_as_integrity_mismatch() {
    let m = manifest_of(&[MB, MB]);
    let mut p = Pair::new(
        m,
        link(10, 100, 0.0, 73),
        link(10, 100, 0.0, 74),
        TransportConfig::default(),
    );
    p.wrong_digest = Some(0);
    p.run(Duration::from_secs(30));
    assert!(p.outcome.failures.is_empty(), "{:?}", p.outcome.failures);
    assert!(p.outcome.sender_done.is_some(), "sender did not complete");
    assert_eq!(p.storage.verified, 1);
    assert_eq!(
        p.outcome.refused,
        vec![(FileIndex(0), FailureReason::IntegrityMismatch)]
    );
}

/// A receiver that goes silent for longer than the idle timeout: the sender's failure is
/// `TimedOut` (and so an interruption to resume), distinct from every refusal.
#[test]
fn a_silent_peer_surfaces_as_timed_out() {
    let m = manifest_of(&[64 * MB]);
    let mut config = TransportConfig::default();
    config.idle_timeout(Duration::from_secs(3));
    let mut p = Pair::new(m, link(10, 100, 0.0, 75), link(10, 100, 0.0, 76), config);
    p.run(Duration::from_millis(300));
    p.backward.down = true;
    p.run(Duration::from_secs(20));
    let sender: Vec<FailureReason> = p
        .outcome
        .failures
        .iter()
        .filter(|(side, _)| *side == "sender")
        .map(|(_, e)| e.reason())
        .collect();
    assert_eq!(sender, vec![FailureReason::TimedOut]);
}
