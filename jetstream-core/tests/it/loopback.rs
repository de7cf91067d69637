//! Real engines, real files, real UDP on 127.0.0.1.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use jetstream_core::{Destination, Manifest, TransferKeys};

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
fn forged_and_junk_datagrams_change_nothing() {
    let dir = scratch();
    let src = dir.path().join("f.bin");
    write_random(&src, 32 << 20, 7);
    let rx = engine();
    let tx = engine();
    let keys = TransferKeys::random().unwrap();
    let incoming = rx
        .handle()
        .receive(keys.clone(), dir.path().join("dst"))
        .unwrap();
    // A flood of junk: random bytes, truncated headers, forged session ids, and datagrams with
    // the right session id but no valid tag.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = rx.local_addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let id = keys.session_id().0.to_be_bytes();
        std::thread::spawn(move || {
            let mut x = 99u64;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut d = [0u8; 200];
                for (i, b) in d.iter_mut().enumerate() {
                    *b = (x >> (i % 8 * 8)) as u8;
                }
                let len = match n % 4 {
                    0 => (x % 200) as usize,
                    1 => {
                        d[0] = 1;
                        d[1] = 1;
                        17
                    }
                    _ => {
                        d[0] = 1;
                        d[1] = 1;
                        if n % 4 == 3 {
                            d[2..10].copy_from_slice(&id);
                        }
                        200
                    }
                };
                let _ = junk.send_to(&d[..len], target);
                n += 1;
            }
            n
        })
    };
    let outgoing = tx
        .handle()
        .send(
            Destination::new(target),
            keys,
            Manifest::from_sources(&[&src]).unwrap(),
        )
        .unwrap();
    outgoing
        .wait(Duration::from_secs(120))
        .expect("transfer completes under a flood");
    incoming
        .wait(Duration::from_secs(30))
        .expect("receiver completes");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent_junk = flood.join().unwrap();
    let info = rx.handle().info().unwrap();
    println!("junk sent {sent_junk}, dropped {:?}", info.dropped);
    assert!(info.dropped.malformed + info.dropped.unknown_session + info.dropped.rejected > 0);
    let rxh = rx.handle();
    assert!(
        super::util::wait_for(Duration::from_secs(10), || rxh.info().unwrap().sessions
            == 0),
        "no state was created for junk"
    );
    assert_eq!(hash_file(&src), hash_file(&dir.path().join("dst/f.bin")));
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
        matches!(err, jetstream_core::Error::TransferFailed(_)),
        "{err}"
    );
    // The receiver's status is final once its own wait returns (it sends COMPLETE a moment
    // before it records the outcome).
    assert!(incoming.wait(Duration::from_secs(30)).is_err());
    let st = incoming.status();
    assert_eq!(st.failed_files.len(), 1, "{:?}", st.failed_files);
    assert_eq!(st.failed_files[0].0, "src/evil/x.txt");
    assert!(
        st.failed_files[0].1.contains("escapes"),
        "{}",
        st.failed_files[0].1
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
    assert_eq!(outgoing.status().failed_files.len(), 1);
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

#[test]
fn receive_as_gives_everything_it_creates_to_the_user() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch();
    let root_probe = dir.path().join("probe");
    std::fs::write(&root_probe, "").unwrap();
    if std::os::unix::fs::chown(&root_probe, Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: needs root to give files away");
        return;
    }
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    write_random(&src.join("a/b/f.bin"), 300_000, 4);
    std::fs::write(src.join("top.txt"), "x").unwrap();
    let dst = dir.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let rx = engine();
    let tx = engine();
    let keys = TransferKeys::random().unwrap();
    let incoming = rx
        .handle()
        .receive_as(keys.clone(), &dst, Some((65534, 65534)))
        .unwrap();
    let manifest = Manifest::from_sources(&[src]).unwrap();
    tx.handle()
        .send(Destination::new(rx.local_addr()), keys, manifest)
        .unwrap()
        .wait(Duration::from_secs(60))
        .unwrap();
    incoming.wait(Duration::from_secs(60)).unwrap();
    let mut seen = 0;
    let mut stack = vec![dst.join("src")];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{}", p.display());
        seen += 1;
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert_eq!(seen, 6, "src, a, a/b, a/b/f.bin, empty, top.txt");
}
