//! The sender's sequential reader thread.
//!
//! One thread reads every manifest entry in order, cuts files into fixed-size chunks, hashes
//! them with BLAKE3 and hands chunks and digests to the event loop through a *bounded* channel,
//! so at most `queue_chunks` chunks are buffered whatever the speed of the network. After every
//! event it calls a `notify` callback (typically `mio::Waker::wake`).

use std::fmt;
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{select, Receiver, Sender, TryRecvError};

use super::FsError;
use crate::manifest::{Manifest, ManifestEntry};
use crate::{Digest, FileIndex};

/// Settings of the reader thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderConfig {
    chunk_size: usize,
    queue_chunks: usize,
}

impl ReaderConfig {
    /// Chunk sizes are multiples of this (256 KiB).
    pub const CHUNK_GRANULE: usize = 256 * 1024;
    /// Largest chunk size accepted (64 MiB).
    pub const MAX_CHUNK_SIZE: usize = 64 * 1024 * 1024;

    /// Bytes per chunk (every chunk but a file's last one has exactly this size).
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Capacity of the channel, in events.
    pub fn queue_chunks(&self) -> usize {
        self.queue_chunks
    }

    /// Sets the chunk size, rounded up to a multiple of [`Self::CHUNK_GRANULE`] and clamped to
    /// `CHUNK_GRANULE..=MAX_CHUNK_SIZE`. Default 1 MiB.
    pub fn set_chunk_size(&mut self, bytes: usize) -> &mut Self {
        let clamped = bytes.clamp(Self::CHUNK_GRANULE, Self::MAX_CHUNK_SIZE);
        self.chunk_size = clamped.div_ceil(Self::CHUNK_GRANULE) * Self::CHUNK_GRANULE;
        self
    }

    /// Sets the channel capacity (at least 1). Default 8. Memory in flight is about
    /// `queue_chunks * chunk_size`.
    pub fn set_queue_chunks(&mut self, chunks: usize) -> &mut Self {
        self.queue_chunks = chunks.max(1);
        self
    }
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            chunk_size: 1024 * 1024,
            queue_chunks: 8,
        }
    }
}

/// What the reader thread reports, in manifest order.
///
/// For each entry: zero or more `Chunk`s then one `Digest`, or `Failed` (possibly after some
/// chunks). `Done` comes last.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadEvent {
    /// A piece of a file. `offset` is a multiple of the chunk size; `data` is `chunk_size`
    /// bytes long, except the file's last chunk. A 0-byte file has no chunk.
    Chunk {
        /// The manifest entry.
        file: FileIndex,
        /// Byte offset of `data` in the file.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// The BLAKE3 digest of a whole file (of nothing, for empty files and directories).
    Digest {
        /// The manifest entry.
        file: FileIndex,
        /// BLAKE3 of the file's contents.
        digest: Digest,
    },
    /// Every entry has been reported.
    Done,
    /// The file could not be read, or its size differs from the manifest
    /// ([`FsError::SourceChanged`]). The reader carries on with the next entry.
    Failed {
        /// The manifest entry.
        file: FileIndex,
        /// Why.
        error: FsError,
    },
}

impl fmt::Debug for ReadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never dump a megabyte of payload into a log.
            Self::Chunk { file, offset, data } => f
                .debug_struct("Chunk")
                .field("file", file)
                .field("offset", offset)
                .field("len", &data.len())
                .finish(),
            Self::Digest { file, digest } => f
                .debug_struct("Digest")
                .field("file", file)
                .field("digest", digest)
                .finish(),
            Self::Done => f.write_str("Done"),
            Self::Failed { file, error } => f
                .debug_struct("Failed")
                .field("file", file)
                .field("error", error)
                .finish(),
        }
    }
}

/// Owns the reader thread. Dropping it (or calling [`ReaderHandle::stop`]) makes the thread
/// exit promptly, even while it is blocked on a full channel.
#[derive(Debug)]
pub struct ReaderHandle {
    /// Never sent on: dropping it disconnects the thread's receiver, which is the stop signal.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ReaderHandle {
    /// Asks the thread to exit, without waiting for it.
    pub fn stop(&mut self) {
        self.stop = None;
    }

    /// Waits for the thread to finish. Without [`ReaderHandle::stop`] first, that needs the
    /// receiver to be drained (or dropped) until `Done`.
    ///
    /// # Errors
    /// The panic payload if the thread panicked.
    pub fn join(mut self) -> std::thread::Result<()> {
        match self.thread.take() {
            Some(thread) => thread.join(),
            None => Ok(()),
        }
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the reader thread for `manifest` (entries need a `src_path`; one without is reported
/// as `Failed`).
///
/// # Errors
/// The OS error if the thread cannot be spawned.
pub fn spawn_reader(
    manifest: Arc<Manifest>,
    config: ReaderConfig,
    notify: Arc<dyn Fn() + Send + Sync>,
) -> io::Result<(ReaderHandle, Receiver<ReadEvent>)> {
    let (tx, rx) = crossbeam_channel::bounded(config.queue_chunks.max(1));
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
    let worker = Worker {
        chunk_size: config.chunk_size,
        tx,
        stop: stop_rx,
        notify,
    };
    let thread = std::thread::Builder::new()
        .name("jetstream-reader".into())
        .spawn(move || worker.run(&manifest))?;
    Ok((
        ReaderHandle {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
        rx,
    ))
}

/// Why reading one entry ended early.
enum Abort {
    /// The handle was dropped or the receiver is gone: exit.
    Stopped,
    /// This file failed; report it and go on.
    Failed(FsError),
}

struct Worker {
    chunk_size: usize,
    tx: Sender<ReadEvent>,
    stop: Receiver<()>,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Worker {
    fn run(&self, manifest: &Manifest) {
        for (i, entry) in manifest.entries().iter().enumerate() {
            // Manifest constructors cap the count at FileIndex::MAX_ENTRY, so this never stops
            // early in practice; refusing is better than wrapping around.
            let Ok(index) = u32::try_from(i) else { return };
            let file = FileIndex(index);
            let event = match self.read_entry(file, entry) {
                Ok(digest) => ReadEvent::Digest { file, digest },
                Err(Abort::Failed(error)) => ReadEvent::Failed { file, error },
                Err(Abort::Stopped) => return,
            };
            if self.send(event).is_err() {
                return;
            }
        }
        // Nothing left to do whether this succeeds or not.
        let _ = self.send(ReadEvent::Done);
    }

    fn is_stopped(&self) -> bool {
        matches!(self.stop.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Sends `event`, giving up as soon as the handle is dropped or the receiver is gone.
    fn send(&self, event: ReadEvent) -> Result<(), Abort> {
        if self.is_stopped() {
            return Err(Abort::Stopped);
        }
        select! {
            send(self.tx, event) -> sent => match sent {
                Ok(()) => {
                    (self.notify)();
                    Ok(())
                }
                Err(_) => Err(Abort::Stopped),
            },
            // Nothing is ever sent on `stop`: this fires only on disconnection.
            recv(self.stop) -> _ => Err(Abort::Stopped),
        }
    }

    fn read_entry(&self, file: FileIndex, entry: &ManifestEntry) -> Result<Digest, Abort> {
        let mut hasher = blake3::Hasher::new();
        if entry.is_empty_dir() {
            return Ok(Digest(*hasher.finalize().as_bytes()));
        }
        let Some(path) = entry.src_path() else {
            return Err(Abort::Failed(FsError::Io {
                path: entry.dest_path().into(),
                kind: io::ErrorKind::NotFound,
                message: "manifest entry has no source path".to_owned(),
            }));
        };
        let failed = |e: &io::Error| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Abort::Failed(FsError::SourceChanged {
                    path: path.to_path_buf(),
                })
            } else {
                Abort::Failed(FsError::io(path, e))
            }
        };
        let source = File::open(path).map_err(|e| failed(&e))?;
        if let Some((dev, ino)) = entry.src_id {
            // Not the file the manifest was made from (e.g. the path was swapped for a link
            // to a file its owner may not read, while this side reads with more rights).
            let meta = source.metadata().map_err(|e| failed(&e))?;
            if (meta.dev(), meta.ino()) != (dev, ino) {
                return Err(Abort::Failed(FsError::SourceChanged {
                    path: path.to_path_buf(),
                }));
            }
        }
        advise_sequential(&source);
        let size = entry.size();
        let mut offset = 0u64;
        while offset < size {
            if self.is_stopped() {
                return Err(Abort::Stopped);
            }
            // Bounded by chunk_size, which is a usize.
            let len = (size - offset).min(self.chunk_size as u64) as usize;
            // Read sequentially into spare capacity: `read_to_end` on a `File` does not zero
            // the buffer first (a measurable memset per chunk otherwise).
            let mut buf = Vec::with_capacity(len);
            (&source)
                .take(len as u64)
                .read_to_end(&mut buf)
                .map_err(|e| failed(&e))?;
            if buf.len() < len {
                return Err(Abort::Failed(FsError::SourceChanged {
                    path: path.to_path_buf(),
                }));
            }
            let data = Bytes::from(buf);
            self.send(ReadEvent::Chunk {
                file,
                offset,
                data: data.clone(),
            })?;
            hasher.update(&data);
            offset += len as u64;
        }
        // The file must not have grown either.
        let mut probe = [0u8; 1];
        match source.read_at(&mut probe, size) {
            Ok(0) => Ok(Digest(*hasher.finalize().as_bytes())),
            Ok(_) => Err(Abort::Failed(FsError::SourceChanged {
                path: path.to_path_buf(),
            })),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// Tells the kernel the file is read sequentially (larger read-ahead). Best effort.
#[allow(unsafe_code)]
fn advise_sequential(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: `posix_fadvise` only reads its integer arguments; the descriptor is open for the
    // whole call because `file` is borrowed. The result is ignored: it is only a hint.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestEntry;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(30);

    /// Deterministic content, so that misplaced chunks are detected.
    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = crate::testing::Rng::new(seed);
        (0..len).map(|_| rng.next_u64() as u8).collect()
    }

    fn entry(dir: &Path, name: &str, data: &[u8]) -> ManifestEntry {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        ManifestEntry::file(name, data.len() as u64, 0, false)
            .unwrap()
            .with_source(path)
    }

    fn collect(rx: &Receiver<ReadEvent>) -> Vec<ReadEvent> {
        let mut events = Vec::new();
        loop {
            let ev = rx.recv_timeout(WAIT).expect("reader stalled");
            let done = ev == ReadEvent::Done;
            events.push(ev);
            if done {
                return events;
            }
        }
    }

    fn counting_notify() -> (Arc<AtomicUsize>, Arc<dyn Fn() + Send + Sync>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        (
            count,
            Arc::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn config_rounds_chunk_size() {
        let mut c = ReaderConfig::default();
        assert_eq!((c.chunk_size(), c.queue_chunks()), (1 << 20, 8));
        assert_eq!(c.set_chunk_size(1).chunk_size(), 256 * 1024);
        assert_eq!(c.set_chunk_size(256 * 1024 + 1).chunk_size(), 512 * 1024);
        assert_eq!(
            c.set_chunk_size(usize::MAX).chunk_size(),
            ReaderConfig::MAX_CHUNK_SIZE
        );
        assert_eq!(c.set_queue_chunks(0).queue_chunks(), 1);
    }

    #[test]
    fn reads_a_tree_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let big = pattern(3 * 1024 * 1024 + 17, 42);
        let small = pattern(1000, 7);
        let manifest = Manifest::new(vec![
            entry(dir.path(), "zero", b""),
            entry(dir.path(), "big", &big),
            ManifestEntry::empty_dir("empty").unwrap(),
            entry(dir.path(), "small", &small),
        ])
        .unwrap();
        let (notified, notify) = counting_notify();
        let (handle, rx) =
            spawn_reader(Arc::new(manifest), ReaderConfig::default(), notify).unwrap();
        let events = collect(&rx);
        handle.join().unwrap();
        assert_eq!(notified.load(Ordering::SeqCst), events.len());

        let mut expected = vec![ReadEvent::Digest {
            file: FileIndex(0),
            digest: hash(b""),
        }];
        for (i, chunk) in big.chunks(1 << 20).enumerate() {
            expected.push(ReadEvent::Chunk {
                file: FileIndex(1),
                offset: (i << 20) as u64,
                data: Bytes::copy_from_slice(chunk),
            });
        }
        expected.push(ReadEvent::Digest {
            file: FileIndex(1),
            digest: hash(&big),
        });
        expected.push(ReadEvent::Digest {
            file: FileIndex(2),
            digest: hash(b""),
        });
        expected.push(ReadEvent::Chunk {
            file: FileIndex(3),
            offset: 0,
            data: Bytes::from(small.clone()),
        });
        expected.push(ReadEvent::Digest {
            file: FileIndex(3),
            digest: hash(&small),
        });
        expected.push(ReadEvent::Done);
        assert_eq!(events, expected);
        // The last chunk of `big` is the 17-byte tail.
        assert!(matches!(&events[4], ReadEvent::Chunk { offset, data, .. }
            if *offset == 3 << 20 && data.len() == 17));
    }

    fn hash(data: &[u8]) -> Digest {
        Digest(*blake3::hash(data).as_bytes())
    }

    #[test]
    fn reports_changed_files_and_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(300 * 1024, 3);
        let manifest = Manifest::new(vec![
            entry(dir.path(), "shrunk", &data),
            entry(dir.path(), "grown", &data),
            entry(dir.path(), "gone", &data),
            ManifestEntry::file("no_source", 1, 0, false).unwrap(),
            entry(dir.path(), "fine", &data),
        ])
        .unwrap();
        // Change the files after the manifest was built.
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("shrunk"))
            .unwrap()
            .set_len(100)
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("grown"))
            .unwrap()
            .write_all_at(b"!", data.len() as u64)
            .unwrap();
        std::fs::remove_file(dir.path().join("gone")).unwrap();

        let mut config = ReaderConfig::default();
        config.set_chunk_size(256 * 1024);
        let (_handle, rx) = spawn_reader(Arc::new(manifest), config, Arc::new(|| {})).unwrap();
        let events = collect(&rx);
        let outcomes: Vec<_> = events
            .iter()
            .filter(|e| !matches!(e, ReadEvent::Chunk { .. }))
            .collect();
        let src = |n: &str| dir.path().join(n);
        let changed = |i, n| ReadEvent::Failed {
            file: FileIndex(i),
            error: FsError::SourceChanged { path: src(n) },
        };
        assert_eq!(outcomes.len(), 6, "{outcomes:?}");
        assert_eq!(outcomes[0], &changed(0, "shrunk"));
        assert_eq!(outcomes[1], &changed(1, "grown"));
        assert!(
            matches!(outcomes[2], ReadEvent::Failed { file: FileIndex(2), error: FsError::Io {
                path, kind: io::ErrorKind::NotFound, .. } } if *path == src("gone")),
            "{:?}",
            outcomes[2]
        );
        assert!(
            matches!(
                outcomes[3],
                ReadEvent::Failed {
                    file: FileIndex(3),
                    error: FsError::Io {
                        kind: io::ErrorKind::NotFound,
                        ..
                    }
                }
            ),
            "{:?}",
            outcomes[3]
        );
        assert_eq!(
            outcomes[4],
            &ReadEvent::Digest {
                file: FileIndex(4),
                digest: hash(&data)
            }
        );
        assert_eq!(outcomes[5], &ReadEvent::Done);
        // The grown file was sent in full before the growth was noticed.
        let grown_bytes: usize = events
            .iter()
            .map(|e| match e {
                ReadEvent::Chunk {
                    file: FileIndex(1),
                    data,
                    ..
                } => data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(grown_bytes, data.len());
    }

    #[test]
    fn dropping_the_handle_stops_a_blocked_reader() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(4 << 20, 9); // 16 chunks of 256 KiB
        let manifest = Manifest::new(vec![entry(dir.path(), "f", &data)]).unwrap();
        let mut config = ReaderConfig::default();
        config.set_chunk_size(256 * 1024).set_queue_chunks(2);
        let (sent_tx, sent_rx) = crossbeam_channel::unbounded();
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = sent_tx.send(());
        });
        let (handle, rx) = spawn_reader(Arc::new(manifest), config, notify).unwrap();
        // Two notifications: the channel is full and the thread is (or will be) blocked.
        for _ in 0..2 {
            sent_rx
                .recv_timeout(WAIT)
                .expect("reader did not fill the queue");
        }
        drop(handle);
        let mut chunks = 0;
        loop {
            match rx.recv_timeout(WAIT) {
                Ok(ReadEvent::Chunk { .. }) => chunks += 1,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => panic!("reader did not stop"),
            }
        }
        // The queued chunks, plus at most one sent while we started draining.
        assert!((2..=3).contains(&chunks), "{chunks} chunks");
    }

    #[test]
    fn stop_then_join_returns() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(2 << 20, 5);
        let manifest = Manifest::new(vec![entry(dir.path(), "f", &data)]).unwrap();
        let mut config = ReaderConfig::default();
        config.set_chunk_size(256 * 1024).set_queue_chunks(1);
        let (mut handle, rx) = spawn_reader(Arc::new(manifest), config, Arc::new(|| {})).unwrap();
        handle.stop();
        // Joins even though nobody drains `rx`.
        handle.join().unwrap();
        drop(rx);
    }

    #[test]
    fn dropping_the_receiver_ends_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(2 << 20, 6);
        let manifest = Manifest::new(vec![entry(dir.path(), "f", &data)]).unwrap();
        let mut config = ReaderConfig::default();
        config.set_chunk_size(256 * 1024).set_queue_chunks(1);
        let (handle, rx) = spawn_reader(Arc::new(manifest), config, Arc::new(|| {})).unwrap();
        drop(rx);
        handle.join().unwrap();
    }
}
