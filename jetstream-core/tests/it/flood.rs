//! A flood of bogus datagrams on the receiver's data port during a real loopback transfer.
//!
//! The same file goes six times between the same two engines: three undisturbed, three (in
//! turn with those) while another thread floods the receiver's port with random bytes, truncated datagrams, forged and guessed
//! session ids and forged tags (`bogus.rs`). The second copy must be byte-identical, the bogus
//! datagrams must show up in the receiver's drop counters and leave no state, and the two rates
//! are printed. `JETSTREAM_LONG=1` sends a bigger file (1 GiB instead of 128 MiB) and asserts
//! the goal (attacked >= 80 % of unattacked; CI, sharing its cores, asserts 50 %);
//! `JETSTREAM_FLOOD_PPS=<n>` sets the flood's rate in datagrams per second (default 30 000;
//! `0`: as fast as one thread can send, which on a small machine mostly measures the CPU the
//! flooding thread takes from the two engines of the same process).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_core::io::EngineInfo;
use jetstream_core::{Destination, Engine, Manifest, TransferKeys};

use super::bogus::flood;
use super::util::{engine, hash_file, scratch, wait_for, write_random};

/// Every datagram the receiver threw away before any session, or as a forgery.
fn dropped(info: &EngineInfo) -> u64 {
    let d = info.dropped;
    d.malformed + d.unknown_session + d.rejected + info.discovery.invalid
}

/// Sends `src` from `tx` to `rx` into `dst`; returns the sender's rate in bytes/s.
fn transfer(
    tx: &Engine,
    rx: &Engine,
    keys: TransferKeys,
    src: &std::path::Path,
    dst: &std::path::Path,
) -> f64 {
    let incoming = rx.handle().receive(keys.clone(), dst).unwrap();
    let start = Instant::now();
    let outgoing = tx
        .handle()
        .send(
            Destination::new(rx.local_addr()),
            keys,
            Manifest::from_sources(&[src]).unwrap(),
        )
        .unwrap();
    let sent = outgoing
        .wait(Duration::from_secs(120))
        .expect("the transfer completes");
    let secs = start.elapsed().as_secs_f64();
    incoming
        .wait(Duration::from_secs(30))
        .expect("the receiver completes");
    sent.bytes_acked as f64 / secs
}

#[test]
fn a_data_port_flood_drops_bogus_datagrams_and_the_transfer_survives() {
    let long = std::env::var_os("JETSTREAM_LONG").is_some();
    let pps = match std::env::var("JETSTREAM_FLOOD_PPS").map(|v| v.parse::<u64>()) {
        Ok(Ok(0)) => None,
        Ok(Ok(n)) => Some(n),
        _ => Some(30_000),
    };
    let size: u64 = if long { 1 << 30 } else { 128 << 20 };
    let dir = scratch();
    let src = dir.path().join("f.bin");
    write_random(&src, size, 7);
    let rx = engine();
    let tx = engine();

    // Calm and attacked copies alternate, three of each, and the best of each is compared:
    // the other tests of this binary run in parallel on a small machine, and a copy that
    // shares the cores with one of them says nothing about the flood.
    let before = rx.handle().info().unwrap();
    let (mut calm, mut attacked) = (0f64, 0f64);
    let (mut bogus, mut flood_secs) = (0u64, 0f64);
    for round in 0..3 {
        let calm_dir = dir.path().join(format!("calm{round}"));
        calm = calm.max(transfer(
            &tx,
            &rx,
            TransferKeys::random().unwrap(),
            &src,
            &calm_dir,
        ));
        assert_eq!(hash_file(&src), hash_file(&calm_dir.join("f.bin")));
        std::fs::remove_dir_all(&calm_dir).unwrap();

        let keys = TransferKeys::random().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flooder = flood(rx.local_addr(), keys.session_id(), pps, stop.clone());
        let flood_start = Instant::now();
        let attacked_dir = dir.path().join(format!("attacked{round}"));
        attacked = attacked.max(transfer(&tx, &rx, keys, &src, &attacked_dir));
        stop.store(true, Ordering::Relaxed);
        bogus += flooder.join().unwrap();
        flood_secs += flood_start.elapsed().as_secs_f64();
        assert_eq!(
            hash_file(&src),
            hash_file(&attacked_dir.join("f.bin")),
            "the file arrives intact under the flood"
        );
        std::fs::remove_dir_all(&attacked_dir).unwrap();
    }
    let flood_pps = bogus as f64 / flood_secs;

    // The datagrams still queued in the socket are drained and counted; then nothing is left.
    let rxh = rx.handle();
    let mut last = u64::MAX;
    assert!(
        wait_for(Duration::from_secs(10), || {
            let now = dropped(&rxh.info().unwrap());
            std::mem::replace(&mut last, now) == now
        }),
        "the receiver drains the flood"
    );
    let after = rxh.info().unwrap();
    let counted = dropped(&after) - dropped(&before);
    println!(
        "flood: {bogus} bogus datagrams sent ({flood_pps:.0}/s), {counted} counted as dropped by the receiver \
         ({:.1} %; the rest overflowed the socket buffer), {:?}",
        100.0 * counted as f64 / bogus.max(1) as f64,
        after.dropped
    );
    let ratio = attacked / calm;
    println!(
        "flood: {} MiB, best of 3: unattacked {:.0} MB/s, attacked {:.0} MB/s: {:.0} % of the \
         unattacked rate (goal >= 80 %)",
        size >> 20,
        calm / 1e6,
        attacked / 1e6,
        100.0 * ratio
    );
    assert!(bogus > 1_000, "the flood ran ({bogus} datagrams)");
    assert!(
        counted > 0 && counted <= bogus,
        "bogus datagrams are counted, each once ({counted} of {bogus})"
    );
    assert!(
        wait_for(Duration::from_secs(10), || rxh.info().unwrap().sessions
            == 0),
        "no state was created for bogus datagrams"
    );
    // The goal, 80 %, is asserted by the long run (`JETSTREAM_LONG=1`, by hand, alone on
    // the machine). In CI the other tests of this binary share the two cores with the flooding
    // thread, so only a collapse fails it there.
    let floor = if long { 0.8 } else { 0.5 };
    assert!(
        ratio >= floor,
        "attacked rate {:.0} % of unattacked (floor {:.0} %)",
        100.0 * ratio,
        100.0 * floor
    );
}
