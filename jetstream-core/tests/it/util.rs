//! Shared helpers: temp trees, hashing, engines on ephemeral loopback ports, child processes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_core::proto::crypto::{Cipher, SessionSecret};
use jetstream_core::{Engine, EngineConfig, SessionId, TransferKeys};

/// Where big test files go: tmpfs when there is one (measures the engine, not the disk).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir in /dev/shm")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

/// An engine bound to an ephemeral loopback port.
pub fn engine() -> Engine {
    let mut c = EngineConfig::default();
    c.bind("127.0.0.1:0".parse().unwrap());
    Engine::spawn(c).expect("engine binds on loopback")
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for gigabytes.
pub fn write_random(path: &Path, len: u64, seed: u64) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for w in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            w.copy_from_slice(&b[..w.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// BLAKE3 of a file.
pub fn hash_file(path: &Path) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize()
}

/// Every regular file, directory and its hash under `root`, relative, sorted; files whose name
/// ends in `.jspart` or that live in the resume directory are listed too, so leftovers fail.
pub fn tree(root: &Path) -> Vec<(String, Option<blake3::Hash>, bool)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<blake3::Hash>, bool)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.push((rel + "/", None, false));
                walk(root, &p, out);
            } else {
                use std::os::unix::fs::PermissionsExt;
                out.push((
                    rel,
                    Some(hash_file(&p)),
                    md.permissions().mode() & 0o100 != 0,
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Keys both ends agree on, from a seed (tests pass them to child processes as text).
pub fn keys_from_seed(seed: u64) -> TransferKeys {
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = (seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8;
    }
    TransferKeys::new(
        SessionId(seed),
        SessionSecret::from_bytes(secret),
        Cipher::Aes256Gcm,
    )
}

/// A child process running one side of a transfer (see `resume::child_entry`).
pub struct ChildPeer {
    pub child: Child,
    pub udp_port: u16,
}

impl ChildPeer {
    /// Re-executes this test binary as a peer. `spec` is passed in `JETSTREAM_TEST_CHILD`.
    pub fn spawn(spec: &str) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "it::resume::child_entry",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("JETSTREAM_TEST_CHILD", spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-exec the test binary");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut port = 0;
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            // libtest prints "test NAME ... " without a newline before the test's own output.
            if let Some(at) = line.find("CHILD-PORT ") {
                port = line[at + 11..].trim().parse().unwrap();
                break;
            }
        }
        assert_ne!(port, 0, "child did not report its port");
        // Keep draining the child's stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            udp_port: port,
        }
    }

    /// SIGKILL: a crash, no clean-up of any kind.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit by itself.
    pub fn wait(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        false
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Journal directory name used by the sink.
pub fn journal_dir(root: &Path) -> PathBuf {
    root.join(jetstream_core::fs::journal::JOURNAL_DIR)
}
