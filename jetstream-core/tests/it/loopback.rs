//! Real engines, real files, real UDP on 127.0.0.1.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use jetstream_core::{Destination, FailureReason, Manifest, TransferKeys};

use super::util::{engine, hash_file, scratch, tree, write_random};

fn copy(
    src: &[std::path::PathBuf],
    dst: &std::path::Path,
) -> (
    jetstream_core::TransferStatus,
    jetstream_core::TransferStatus,
) {
    let rx = engine();
    let tx = engine();
    let keys = TransferKeys::random().unwrap();
    let manifest = Manifest::from_sources(src).unwrap();
    let incoming = rx.handle().receive(keys.clone(), dst).unwrap();
    let outgoing = tx
        .handle()
        .send(Destination::new(rx.local_addr()), keys, manifest)
        .unwrap();
    let sent = outgoing
        .wait(Duration::from_secs(300))
        .expect("sender completes");
    let received = incoming
        .wait(Duration::from_secs(60))
        .expect("receiver completes");
    (sent, received)
}

#[test]
fn copies_a_tree_with_unicode_spaces_empty_files_empty_dirs_and_exec_bits() {
    let dir = scratch();
    let src = dir.path().join("src tree");
    std::fs::create_dir_all(src.join("été/ファイル")).unwrap();
    std::fs::create_dir_all(src.join("empty dir/nested empty")).unwrap();
    std::fs::write(src.join("été/ファイル/naïve name.txt"), "héllo wörld\n").unwrap();
    std::fs::write(src.join("zero bytes"), "").unwrap();
    write_random(&src.join("été/big.bin"), 3 * 1024 * 1024 + 17, 1);
    std::fs::write(src.join("run me.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        src.join("run me.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(src.join("zero bytes"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let dst = dir.path().join("dst");
    let (sent, received) = copy(std::slice::from_ref(&src), &dst);
    assert_eq!(sent.total_bytes, received.total_bytes);
    // 4 files and the one empty directory ("empty dir" itself holds "nested empty").
    assert_eq!(received.files_total, 5);
    // Same tree, same contents, same exec bits; nothing left behind (no .jspart, no journal).
    assert_eq!(tree(&src), tree(&dst.join("src tree")));
    assert_eq!(tree(&dst).len(), tree(&src).len() + 1);
    let mtime = std::fs::metadata(dst.join("src tree/zero bytes"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, old);
}

#[test]
fn copies_five_thousand_small_files() {
    let dir = scratch();
    let src = dir.path().join("many");
    for d in 0..50 {
        std::fs::create_dir_all(src.join(format!("d{d:02}"))).unwrap();
        for f in 0..100 {
            let body = format!("file {d}/{f} ").repeat(1 + (f % 13) * 20);
            std::fs::write(src.join(format!("d{d:02}/f{f:03}.txt")), body).unwrap();
        }
    }
    let dst = dir.path().join("dst");
    let t = std::time::Instant::now();
    let (sent, received) = copy(std::slice::from_ref(&src), &dst);
    println!(
        "5000 files: {:?}, {} datagrams",
        t.elapsed(),
        sent.packets_sent
    );
    assert_eq!(received.files_done, 5000);
    assert_eq!(tree(&src), tree(&dst.join("many")));
}

#[test]
fn copies_a_one_gib_random_file_byte_identical() {
    let dir = scratch();
    let src = dir.path().join("one-gib.bin");
    write_random(&src, 1 << 30, 42);
    let dst = dir.path().join("dst");
    let (sent, _) = copy(std::slice::from_ref(&src), &dst);
    assert_eq!(hash_file(&src), hash_file(&dst.join("one-gib.bin")));
    assert_eq!(sent.bytes_acked, 1 << 30);
}

#[test]
fn an_entry_behind_a_symlink_fails_alone_and_the_rest_arrives() {
    let dir = scratch();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("evil")).unwrap();
    std::fs::write(src.join("evil/x.txt"), "must not escape").unwrap();
    std::fs::write(src.join("good.txt"), "fine").unwrap();
    let dst = dir.path().join("dst");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(dst.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // The destination has a symlink where the manifest wants a directory.
    std::os::unix::fs::symlink(&outside, dst.join("src/evil")).unwrap();

    let rx = engine();
    let tx = engine();
    let keys = TransferKeys::random().unwrap();
    let incoming = rx.handle().receive(keys.clone(), &dst).unwrap();
    let m = Manifest::from_sources(std::slice::from_ref(&src)).unwrap();
    let outgoing = tx
        .handle()
        .send(Destination::new(rx.local_addr()), keys, m)
        .unwrap();
    let err = outgoing.wait(Duration::from_secs(60)).unwrap_err();
    assert!(
        matches!(
            err,
            jetstream_core::Error::TransferFailed {
                reason: FailureReason::FilesFailed,
                ..
            }
        ),
        "{err}"
    );
    // The receiver's status is final once its own wait returns (it sends COMPLETE a moment
    // before it records the outcome).
    assert!(incoming.wait(Duration::from_secs(30)).is_err());
    let st = incoming.status();
    assert_eq!(st.failed_files.len(), 1, "{:?}", st.failed_files);
    assert_eq!(st.failed_files[0].path, "src/evil/x.txt");
    assert_eq!(st.failed_files[0].reason, FailureReason::PathEscapes);
    assert!(
        st.failed_files[0].message.contains("escapes"),
        "{}",
        st.failed_files[0].message
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("src/good.txt")).unwrap(),
        "fine"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    // The sender learns which entry failed from the receiver.
    let sent = outgoing.status();
    assert_eq!(sent.failed_files.len(), 1);
    assert_eq!(sent.failed_files[0].reason, FailureReason::PathEscapes);
    assert_eq!(sent.failure, Some(FailureReason::FilesFailed));
}

#[test]
fn a_source_that_changes_during_the_transfer_fails_clearly_and_nothing_partial_appears() {
    let dir = scratch();
    let src = dir.path().join("changing.bin");
    write_random(&src, 8 << 20, 5);
    let manifest = Manifest::from_sources(std::slice::from_ref(&src)).unwrap();
    // The file shrinks after the manifest was built (an editor saving over it, say).
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();

    let rx = engine();
    let tx = engine();
    let keys = TransferKeys::random().unwrap();
    let dst = dir.path().join("dst");
    let incoming = rx.handle().receive(keys.clone(), &dst).unwrap();
    let outgoing = tx
        .handle()
        .send(Destination::new(rx.local_addr()), keys, manifest)
        .unwrap();
    let err = outgoing.wait(Duration::from_secs(60)).unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
    assert!(
        incoming.wait(Duration::from_secs(30)).is_err(),
        "the receiver is told"
    );
    assert!(
        !dst.join("changing.bin").exists(),
        "no partial file at the final path"
    );
}

/// A transfer that ends before the engine's first status tick (a few bytes) still reports
/// `TransferStarted` before `TransferComplete`, at both ends: an embedder that tracks
/// transfers from their start never sees one complete that never started.
#[test]
fn a_tiny_transfer_reports_started_before_complete_at_both_ends() {
    use jetstream_core::{Engine, EngineConfig, Role, TriggerEvent};
    let dir = scratch();
    let src = dir.path().join("tiny.txt");
    std::fs::write(&src, b"hi").unwrap();
    let spawn = || {
        let (tx, rx) = crossbeam_channel::unbounded::<TriggerEvent>();
        let mut c = EngineConfig::default();
        c.bind("127.0.0.1:0".parse().unwrap());
        (Engine::spawn_with_trigger(c, tx).unwrap(), rx)
    };
    let (receiver, rx_events) = spawn();
    let (sender, tx_events) = spawn();
    let keys = TransferKeys::random().unwrap();
    let incoming = receiver
        .handle()
        .receive(keys.clone(), dir.path().join("dst"))
        .unwrap();
    let outgoing = sender
        .handle()
        .send(
            Destination::new(receiver.local_addr()),
            keys,
            Manifest::from_sources(&[src]).unwrap(),
        )
        .unwrap();
    outgoing.wait(Duration::from_secs(60)).expect("sent");
    incoming.wait(Duration::from_secs(60)).expect("received");
    for (role, events) in [(Role::Sender, tx_events), (Role::Receiver, rx_events)] {
        let mut names = Vec::new();
        while let Ok(e) = events.recv_timeout(Duration::from_secs(5)) {
            let done = matches!(e, TriggerEvent::TransferComplete { .. });
            names.push(e.name());
            if done {
                break;
            }
        }
        let started = names.iter().position(|n| n.ends_with("transferStarted"));
        let complete = names.iter().position(|n| n.ends_with("transferComplete"));
        assert!(
            matches!((started, complete), (Some(s), Some(c)) if s < c),
            "{role:?}: {names:?}"
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| n.ends_with("transferStarted"))
                .count(),
            1,
            "{role:?}: once: {names:?}"
        );
    }
}
