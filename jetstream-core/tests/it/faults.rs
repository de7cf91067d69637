//! Network faults between two real engines on loopback, through the userspace [`Proxy`]:
//! a blackout mid-transfer (shorter and longer than the idle timeout), an address change of
//! the sender (NAT rebinding), duplicated and reordered datagrams, and replayed datagrams from
//! an earlier session and from the same one. Each transfer either completes byte-identical or
//! fails with a clear status on both ends and nothing at the final path.
//!
//! Figures are printed; run with `--nocapture` to see them:
//! `cargo test -p jetstream-core --test it faults -- --nocapture`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jetstream_core::io::EngineInfo;
use jetstream_core::proto::crypto::{Cipher, SessionSecret};
use jetstream_core::transfer::TransferState;
use jetstream_core::{
    BitsPerSecond, Destination, Engine, EngineConfig, Error, FailureReason, Manifest, SessionId,
    Transfer, TransferKeys,
};

use super::proxy::Proxy;
use super::util::{engine, hash_file, scratch, wait_for, write_random};

/// The sender's rate cap: the userspace proxy keeps up, and transfers last a few seconds.
const RATE_KBPS: u64 = 200_000;

/// An engine on loopback whose sessions give up after `idle` without an authenticated datagram.
fn engine_with_idle(idle: Duration) -> Engine {
    let mut c = EngineConfig::default();
    c.bind("127.0.0.1:0".parse().unwrap());
    c.transport_mut().idle_timeout(idle);
    Engine::spawn(c).expect("engine binds on loopback")
}

/// A source file of `size` random bytes in `dir`.
fn source(dir: &Path, name: &str, size: u64, seed: u64) -> PathBuf {
    let src = dir.join(name);
    write_random(&src, size, seed);
    src
}

/// A scratch directory with a random source file, two engines and a proxy in front of the
/// receiver: what every case starts from.
struct Rig {
    dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
    rx: Engine,
    tx: Engine,
    proxy: Proxy,
}

fn rig(name: &str, size: u64, seed: u64, (rx, tx): (Engine, Engine)) -> Rig {
    let dir = scratch();
    let src = source(dir.path(), name, size, seed);
    let dst = dir.path().join("dst");
    let proxy = Proxy::start(rx.local_addr());
    Rig {
        dir,
        src,
        dst,
        rx,
        tx,
        proxy,
    }
}

/// Starts `src` from `tx` to `rx` (receiving into `dst`) through `proxy`.
fn start(
    tx: &Engine,
    rx: &Engine,
    proxy: &Proxy,
    keys: TransferKeys,
    src: &Path,
    dst: &Path,
) -> (Transfer, Transfer) {
    let incoming = rx.handle().receive(keys.clone(), dst).unwrap();
    let to =
        Destination::new(proxy.addr()).send_rate_max(Some(BitsPerSecond::from_kbps(RATE_KBPS)));
    let outgoing = tx
        .handle()
        .send(to, keys, Manifest::from_sources(&[src]).unwrap())
        .unwrap();
    (outgoing, incoming)
}

/// Waits until the sender has `bytes` acknowledged.
fn wait_acked(t: &Transfer, bytes: u64) {
    assert!(
        wait_for(Duration::from_secs(60), || t.status().bytes_acked >= bytes),
        "the transfer did not reach {bytes} bytes acknowledged: {:?}",
        t.status().state
    );
}

/// Datagrams the endpoint dropped as forged, replayed or duplicated.
fn rejected(e: &Engine) -> u64 {
    let info: EngineInfo = e.handle().info().unwrap();
    info.dropped.rejected
}

/// Keys with a chosen session id and secret (a replayed session can reuse an id).
fn keys(id: u64, secret_seed: u8) -> TransferKeys {
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = secret_seed.wrapping_mul(97).wrapping_add(i as u8);
    }
    TransferKeys::new(
        SessionId(id),
        SessionSecret::from_bytes(secret),
        Cipher::Aes256Gcm,
    )
}

/// The blackout of case 1: 60 s (the figure), below the default 90 s idle timeout.
const LONG_BLACKOUT: Duration = Duration::from_secs(60);

#[test]
fn blackout_of_60_s_mid_transfer_resumes_and_completes_byte_identical() {
    const SIZE: u64 = 48 << 20;
    let Rig {
        dir: _dir,
        src,
        dst,
        rx,
        tx,
        proxy,
    } = rig("blackout.bin", SIZE, 71, (engine(), engine()));
    let (outgoing, incoming) = start(
        &tx,
        &rx,
        &proxy,
        TransferKeys::random().unwrap(),
        &src,
        &dst,
    );

    wait_acked(&outgoing, SIZE / 3);
    proxy.blackout(true);
    let began = Instant::now();
    std::thread::sleep(LONG_BLACKOUT);
    let during = outgoing.status();
    assert!(
        !during.state.is_final() && !incoming.status().state.is_final(),
        "both ends wait through a blackout shorter than the idle timeout: {:?}",
        during.error_message
    );
    assert!(!dst.join("blackout.bin").exists());
    proxy.blackout(false);
    let ended = Instant::now();
    let acked = outgoing.status().bytes_acked;
    assert!(
        wait_for(Duration::from_secs(60), || outgoing.status().bytes_acked
            > acked),
        "no progress after the blackout ended"
    );
    let recovered = ended.elapsed();
    let sent = outgoing
        .wait(Duration::from_secs(120))
        .expect("sender completes after the blackout");
    let received = incoming
        .wait(Duration::from_secs(30))
        .expect("receiver completes after the blackout");
    let finished = ended.elapsed();
    assert_eq!(hash_file(&src), hash_file(&dst.join("blackout.bin")));
    assert_eq!(received.total_bytes, SIZE);
    println!(
        "blackout: {:.1} s of total loss at {:.0}% acked ({} datagrams dropped by the proxy); \
         first new acknowledgement {:.3} s after it ended, complete {:.3} s after it ended; \
         sender sent {} datagrams, {} blocks retransmitted of {} ({:.2}%)",
        (ended - began).as_secs_f64(),
        100.0 * acked as f64 / SIZE as f64,
        proxy.stats().blackholed,
        recovered.as_secs_f64(),
        finished.as_secs_f64(),
        sent.packets_sent,
        sent.blocks_retransmitted,
        sent.blocks_sent,
        100.0 * sent.blocks_retransmitted as f64 / sent.blocks_sent.max(1) as f64
    );
}

#[test]
fn blackout_longer_than_the_idle_timeout_fails_clearly_on_both_ends() {
    const SIZE: u64 = 48 << 20;
    const IDLE: Duration = Duration::from_secs(3);
    let Rig {
        dir: _dir,
        src,
        dst,
        rx,
        tx,
        proxy,
    } = rig(
        "cut.bin",
        SIZE,
        72,
        (engine_with_idle(IDLE), engine_with_idle(IDLE)),
    );
    let (outgoing, incoming) = start(
        &tx,
        &rx,
        &proxy,
        TransferKeys::random().unwrap(),
        &src,
        &dst,
    );

    wait_acked(&outgoing, SIZE / 3);
    proxy.blackout(true);
    let began = Instant::now();
    let sent = outgoing.wait(Duration::from_secs(60));
    let sender_after = began.elapsed();
    let received = incoming.wait(Duration::from_secs(60));
    let receiver_after = began.elapsed();
    proxy.blackout(false);

    for (side, res, st) in [
        ("sender", &sent, outgoing.status()),
        ("receiver", &received, incoming.status()),
    ] {
        let Err(Error::TransferFailed {
            reason,
            message: why,
            ..
        }) = res
        else {
            panic!("{side}: expected a failure, got {res:?}");
        };
        assert_eq!(*reason, FailureReason::TimedOut, "{side}");
        assert_eq!(st.failure, Some(FailureReason::TimedOut), "{side}");
        println!("blackout > idle timeout: {side}: \"{why}\"");
        assert!(
            why.contains("idle timeout"),
            "{side}: unclear reason {why:?}"
        );
        assert_eq!(st.state, TransferState::Error, "{side}");
        assert_eq!(st.error_message.as_deref(), Some(why.as_str()), "{side}");
    }
    // Nothing presented as complete: no file at the final path; the partial data is kept
    // for a resume (a `.jspart` and the journal), not renamed.
    assert!(!dst.join("cut.bin").exists());
    assert!(incoming.status().files_done == 0);
    println!(
        "blackout > idle timeout ({} s): the sender failed {:.2} s and the receiver {:.2} s \
         after the blackout began",
        IDLE.as_secs(),
        sender_after.as_secs_f64(),
        receiver_after.as_secs_f64()
    );
}

#[test]
fn sender_address_change_mid_transfer_is_followed_by_the_receiver() {
    const SIZE: u64 = 48 << 20;
    let Rig {
        dir: _dir,
        src,
        dst,
        rx,
        tx,
        proxy,
    } = rig("moving.bin", SIZE, 73, (engine(), engine()));
    let first = proxy.upstream_addr();
    let (outgoing, incoming) = start(
        &tx,
        &rx,
        &proxy,
        TransferKeys::random().unwrap(),
        &src,
        &dst,
    );

    wait_acked(&outgoing, SIZE / 3);
    assert_eq!(incoming.status().peer, Some(first));
    // From now on the receiver sees the sender at a new port, and datagrams sent to the old
    // one are lost (the NAT forgot that mapping): only following the new address works.
    let second = proxy.rebind();
    wait_acked(&outgoing, 2 * SIZE / 3);
    let third = proxy.rebind();
    let sent = outgoing
        .wait(Duration::from_secs(120))
        .expect("sender completes across address changes");
    let received = incoming
        .wait(Duration::from_secs(30))
        .expect("receiver completes across address changes");
    assert_eq!(hash_file(&src), hash_file(&dst.join("moving.bin")));
    assert_eq!(
        received.peer,
        Some(third),
        "the receiver follows the sender"
    );
    let stats = proxy.stats();
    println!(
        "address change: {first} -> {second} -> {third}; {} datagrams from the receiver reached \
         an old address and were dropped; {} blocks retransmitted of {}",
        stats.stale, sent.blocks_retransmitted, sent.blocks_sent
    );
}

#[test]
fn every_datagram_duplicated_and_reordered_in_a_window_of_64_completes_byte_identical() {
    const SIZE: u64 = 32 << 20;
    let Rig {
        dir: _dir,
        src,
        dst,
        rx,
        tx,
        proxy,
    } = rig("shuffled.bin", SIZE, 74, (engine(), engine()));
    proxy.duplicate(true);
    proxy.reorder(64);
    let (rx0, tx0) = (rejected(&rx), rejected(&tx));
    let (outgoing, incoming) = start(
        &tx,
        &rx,
        &proxy,
        TransferKeys::random().unwrap(),
        &src,
        &dst,
    );
    let sent = outgoing
        .wait(Duration::from_secs(120))
        .expect("sender completes");
    incoming
        .wait(Duration::from_secs(30))
        .expect("receiver completes");
    assert_eq!(hash_file(&src), hash_file(&dst.join("shuffled.bin")));
    // Late copies may still be in flight: let both endpoints settle before counting.
    let mut last = (u64::MAX, u64::MAX);
    wait_for(Duration::from_secs(5), || {
        let now = (rejected(&rx), rejected(&tx));
        std::mem::replace(&mut last, now) == now
    });
    let (rx_dup, tx_dup) = (rejected(&rx) - rx0, rejected(&tx) - tx0);
    let stats = proxy.stats();
    println!(
        "duplicated + reordered (window 64): sender sent {} bytes for {SIZE} ({:.2}x), {} of {} \
         blocks retransmitted ({:.2}%); the proxy got {} datagrams \
         from the sender and {} from the receiver, and duplicated {} to the receiver and {} to \
         the sender; the receiver dropped {} as duplicates, \
         the sender {}",
        sent.bytes_sent,
        sent.bytes_sent as f64 / SIZE as f64,
        sent.blocks_retransmitted,
        sent.blocks_sent,
        100.0 * sent.blocks_retransmitted as f64 / sent.blocks_sent.max(1) as f64,
        stats.from_sender,
        stats.from_receiver,
        stats.duplicated_to_receiver,
        stats.duplicated_to_sender,
        rx_dup,
        tx_dup
    );
    // Each datagram arrived twice: one copy of each pair is dropped. A few more may be: at
    // the start of a session, a datagram with a packet number below the first one received is
    // taken for an ancient one (the receiver cannot know the random first packet number), so
    // reordering in the first window (2 x 64 copies) can drop both copies of a pair.
    assert!(rx_dup <= stats.duplicated_to_receiver + 2 * 64);
    assert!(
        rx_dup >= stats.duplicated_to_receiver / 2,
        "the receiver counted {rx_dup} of {} duplicates",
        stats.duplicated_to_receiver
    );
    assert!(tx_dup <= stats.duplicated_to_sender + 2 * 64);
    assert!(
        sent.bytes_sent < 2 * SIZE,
        "reordering caused a retransmission storm"
    );
}

#[test]
fn replayed_datagrams_from_an_earlier_session_and_the_same_one_are_dropped() {
    const FIRST: u64 = 8 << 20;
    const SIZE: u64 = 32 << 20;
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("old")).unwrap();
    std::fs::create_dir_all(dir.path().join("new")).unwrap();
    let old = source(&dir.path().join("old"), "data.bin", FIRST, 75);
    let new = source(&dir.path().join("new"), "data.bin", SIZE, 76);
    let (dst1, dst2) = (dir.path().join("dst1"), dir.path().join("dst2"));
    let (rx, tx) = (engine(), engine());
    let proxy = Proxy::start(rx.local_addr());

    // Session 1, recorded. Session 2 reuses its id with a new secret: the replayed datagrams
    // reach session 2 and must fail authentication there.
    proxy.record(true);
    let (outgoing, incoming) = start(&tx, &rx, &proxy, keys(0x7e57, 1), &old, &dst1);
    outgoing.wait(Duration::from_secs(60)).expect("session 1");
    incoming.wait(Duration::from_secs(30)).expect("session 1");
    proxy.record(false);
    let session1 = proxy.take_recorded();
    // Both ends forget session 1 (it drains briefly after completing) before its id is reused.
    assert!(wait_for(Duration::from_secs(10), || {
        rx.handle().info().unwrap().sessions == 0 && tx.handle().info().unwrap().sessions == 0
    }));

    let before = rejected(&rx);
    let (outgoing, incoming) = start(&tx, &rx, &proxy, keys(0x7e57, 2), &new, &dst2);
    proxy.record(true);
    wait_acked(&outgoing, SIZE / 4);
    let r0 = rejected(&rx);
    let injected1 = proxy.inject(&session1);
    wait_acked(&outgoing, SIZE / 2);
    let r1 = rejected(&rx);
    // Session 2's own datagrams so far, again (the receiver has seen every one of them).
    let own = proxy.take_recorded();
    let injected2 = proxy.inject(&own);
    outgoing.wait(Duration::from_secs(120)).expect("session 2");
    incoming.wait(Duration::from_secs(30)).expect("session 2");
    let r2 = rejected(&rx);
    assert_eq!(hash_file(&new), hash_file(&dst2.join("data.bin")));
    assert_eq!(hash_file(&old), hash_file(&dst1.join("data.bin")));
    println!(
        "replay: {injected1} datagrams of session 1 injected into session 2 (same id, new key): \
         {} rejected while they were sent; {injected2} of session 2's own earlier datagrams \
         injected: {} rejected while they were sent; {} rejected over all of session 2",
        r1 - r0,
        r2 - r1,
        r2 - before
    );
    assert!(injected1 > 0 && injected2 > 0);
    assert_eq!(proxy.stats().injected, injected1 + injected2);
    // Nothing but the replays is rejected (no faults otherwise), and each counts once.
    let total = r2 - before;
    assert!(total <= injected1 + injected2);
    assert!(
        total >= (injected1 + injected2) * 9 / 10,
        "only {total} of {} replays counted as dropped",
        injected1 + injected2
    );
}
