//! Crash and resume: one side is a separate process killed with SIGKILL mid-transfer, then
//! restarted with the same manifest; only what is missing is sent again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jetstream_core::{BitsPerSecond, Destination, Manifest};

use super::util::{
    engine, hash_file, journal_dir, keys_from_seed, scratch, wait_for, write_random, ChildPeer,
};

/// Not a test: the body of a child process (`JETSTREAM_TEST_CHILD` is set by `ChildPeer`,
/// which runs it with `--include-ignored`). Ignored so that it never counts as a passing test.
#[test]
#[ignore = "child-process entry point, run by ChildPeer"]
fn child_entry() {
    let Ok(spec) = std::env::var("JETSTREAM_TEST_CHILD") else {
        return;
    };
    let parts: Vec<&str> = spec.split(';').collect();
    let engine = engine();
    println!("CHILD-PORT {}", engine.local_addr().port());
    let keys = keys_from_seed(parts[1].parse().unwrap());
    match parts[0] {
        "receive" => {
            let t = engine.handle().receive(keys, parts[2]).unwrap();
            t.wait(Duration::from_secs(600)).unwrap();
        }
        "send" => {
            let addr = parts[2].parse().unwrap();
            let kbps: u64 = parts[4].parse().unwrap();
            let rate = (kbps > 0).then(|| BitsPerSecond::from_kbps(kbps));
            let m = Manifest::from_sources(&[parts[3]]).unwrap();
            let t = engine
                .handle()
                .send(Destination::new(addr).send_rate_max(rate), keys, m)
                .unwrap();
            t.wait(Duration::from_secs(600)).unwrap();
        }
        other => panic!("unknown child role {other}"),
    }
    std::process::exit(0);
}

/// Bytes the receiver's journal(s) record as durable (`D <file> <offset> <len> <check>`).
fn journaled_bytes(root: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(journal_dir(root)) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.starts_with("D "))
                .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Kill once this much is durable at the receiver.
const DURABLE_BEFORE_KILL: u64 = 16 << 20;

const SIZE: u64 = 64 << 20;
const SLOW_KBPS: u64 = 100_000; // 12.5 MB/s: the first run lasts ~5 s, long enough to kill.

fn source(dir: &Path) -> PathBuf {
    let src = dir.join("footage.bin");
    write_random(&src, SIZE, 2024);
    src
}

#[test]
fn receiver_killed_mid_transfer_resumes_sending_only_what_is_missing() {
    let dir = scratch();
    let src = source(dir.path());
    let dst = dir.path().join("dst");
    let final_path = dst.join("footage.bin");

    // Run 1: the receiver is a child process; kill it once it has journaled durable data.
    let child = ChildPeer::spawn(&format!("receive;11;{}", dst.display()));
    let sender = engine();
    let to = Destination::new(format!("127.0.0.1:{}", child.udp_port).parse().unwrap())
        .send_rate_max(Some(BitsPerSecond::from_kbps(SLOW_KBPS)));
    let t1 = sender
        .handle()
        .send(
            to,
            keys_from_seed(11),
            Manifest::from_sources(&[&src]).unwrap(),
        )
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || journaled_bytes(&dst)
            >= DURABLE_BEFORE_KILL),
        "receiver journaled too little"
    );
    child.kill();
    assert!(
        !final_path.exists(),
        "a partial file must never appear at its final path"
    );
    t1.cancel();
    assert!(t1.wait(Duration::from_secs(10)).is_err());
    let durable = journaled_bytes(&dst);

    // Run 2: a new receiver process, a new session, the same manifest and destination.
    let child = ChildPeer::spawn(&format!("receive;12;{}", dst.display()));
    let to = Destination::new(format!("127.0.0.1:{}", child.udp_port).parse().unwrap());
    let t2 = sender
        .handle()
        .send(
            to,
            keys_from_seed(12),
            Manifest::from_sources(&[&src]).unwrap(),
        )
        .unwrap();
    let st = t2
        .wait(Duration::from_secs(120))
        .expect("resumed transfer completes");
    assert!(
        child.wait(Duration::from_secs(30)),
        "receiver child exits cleanly"
    );
    assert_eq!(hash_file(&src), hash_file(&final_path));
    let resent = st.bytes_sent;
    println!(
        "receiver crash: {durable} bytes were durable; the resumed run sent {resent} bytes \
         ({:.1}% of the file)",
        100.0 * resent as f64 / SIZE as f64
    );
    // What was durable before the crash is not sent again: the resumed run carries only the
    // rest, plus datagram overhead (headers, tags: ~3%) and a little slack.
    assert!(
        resent < (SIZE - durable) * 106 / 100,
        "resent {resent} of {SIZE} with {durable} durable"
    );
}

#[test]
fn sender_killed_mid_transfer_resumes_sending_only_what_is_missing() {
    let dir = scratch();
    let src = source(dir.path());
    let dst = dir.path().join("dst");
    let final_path = dst.join("footage.bin");
    let receiver = engine();
    let addr = receiver.local_addr();

    // Run 1: the sender is a child process; kill it once the receiver journaled data.
    let r1 = receiver.handle().receive(keys_from_seed(21), &dst).unwrap();
    let child = ChildPeer::spawn(&format!("send;21;{addr};{};{SLOW_KBPS}", src.display()));
    assert!(
        wait_for(Duration::from_secs(60), || journaled_bytes(&dst)
            >= DURABLE_BEFORE_KILL),
        "receiver journaled too little"
    );
    child.kill();
    assert!(
        !final_path.exists(),
        "a partial file must never appear at its final path"
    );
    // The receiver would wait for the idle timeout; the operator cancels (checkpointing).
    r1.cancel();
    assert!(r1.wait(Duration::from_secs(10)).is_err());
    let durable = journaled_bytes(&dst);

    // Run 2: a new sender process with the same manifest.
    let r2 = receiver.handle().receive(keys_from_seed(22), &dst).unwrap();
    let child = ChildPeer::spawn(&format!("send;22;{addr};{};0", src.display()));
    let st = r2
        .wait(Duration::from_secs(120))
        .expect("resumed transfer completes");
    assert!(
        child.wait(Duration::from_secs(30)),
        "sender child exits cleanly"
    );
    assert_eq!(hash_file(&src), hash_file(&final_path));
    let resent = st.bytes_recv;
    println!(
        "sender crash: {durable} bytes were durable; the resumed run carried {resent} bytes \
         ({:.1}% of the file)",
        100.0 * resent as f64 / SIZE as f64
    );
    assert!(
        resent < (SIZE - durable) * 106 / 100,
        "resent {resent} of {SIZE} with {durable} durable"
    );
}
