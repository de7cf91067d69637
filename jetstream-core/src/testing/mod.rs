//! A deterministic network simulator for the sans-IO core: two [`Endpoint`]s joined by
//! [`Link`]s on a virtual clock, payloads generated from `(file, offset)` so the receiver checks
//! every byte without a copy (the s2n-quic `Data` idea).
//!
//! The link model matches the project's link emulator: Bernoulli loss, then a drop-tail queue
//! in front of a bottleneck of fixed rate, then one-way delay plus jitter (non-reordering unless
//! asked for). Duplication and single-bit corruption can be added.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::TransportConfig;
use crate::error::TransferError;
use crate::failure::FailureReason;
use crate::manifest::{Manifest, ManifestEntry};
use crate::proto::crypto::{Cipher, SessionSecret};
use crate::proto::{Endpoint, Event, ReceiveParams, SendParams, SessionHandle, Storage};
use crate::types::{Digest, FileIndex, SessionId};

/// xorshift64*: tiny, seeded, good enough for fault injection.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The deterministic content of every simulated file.
#[derive(Debug)]
pub struct Data;

impl Data {
    /// The byte of `file` at `offset`.
    pub fn byte(file: u32, offset: u64) -> u8 {
        let x = offset
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(u64::from(file).wrapping_mul(0x85EB_CA6B));
        (x >> 13) as u8 ^ (offset as u8)
    }
    /// `len` bytes of `file` from `offset`.
    pub fn at(file: u32, offset: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| Self::byte(file, offset + i))
            .collect()
    }
    /// BLAKE3 of a whole simulated file.
    pub fn digest(file: u32, size: u64) -> Digest {
        let mut h = blake3::Hasher::new();
        let mut off = 0;
        while off < size {
            let n = (size - off).min(1 << 20);
            h.update(&Self::at(file, off, n as usize));
            off += n;
        }
        Digest(*h.finalize().as_bytes())
    }
}

/// One direction of a simulated path.
#[derive(Clone, Debug)]
pub struct Link {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Let jitter reorder packets.
    pub reorder: bool,
    /// Bernoulli loss probability.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability one bit of a datagram is flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bytes/s (`None`: infinite).
    pub rate: Option<u64>,
    /// Drop-tail queue limit in bytes at the bottleneck.
    pub queue: u64,
    /// Drop everything (a blackout) while set.
    pub down: bool,
    rng: Rng,
    busy_until: Option<Instant>,
    last_arrival: Option<Instant>,
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    /// Datagrams dropped by loss, queue overflow or blackout.
    pub dropped: u64,
    /// Largest queue occupancy seen, bytes.
    pub max_queue: u64,
}

impl Link {
    /// A lossless, infinitely fast link with this one-way delay.
    pub fn new(delay: Duration, seed: u64) -> Self {
        Self {
            delay,
            jitter: Duration::ZERO,
            reorder: false,
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            rate: None,
            queue: u64::MAX,
            down: false,
            rng: Rng::new(seed),
            busy_until: None,
            last_arrival: None,
            in_flight: VecDeque::new(),
            dropped: 0,
            max_queue: 0,
        }
    }

    fn send(&mut self, now: Instant, datagram: &[u8]) {
        if self.down || self.rng.chance(self.loss) {
            self.dropped += 1;
            return;
        }
        let mut depart = now;
        if let Some(rate) = self.rate {
            let busy = self.busy_until.filter(|b| *b > now).unwrap_or(now);
            let queued = (busy - now).as_secs_f64() * rate as f64;
            if queued as u64 + datagram.len() as u64 > self.queue {
                self.dropped += 1;
                return;
            }
            self.max_queue = self.max_queue.max(queued as u64 + datagram.len() as u64);
            depart = busy + Duration::from_secs_f64(datagram.len() as f64 / rate as f64);
            self.busy_until = Some(depart);
        }
        let copies = if self.rng.chance(self.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut d = datagram.to_vec();
            if self.rng.chance(self.corrupt) {
                let bit = self.rng.below(d.len() as u64 * 8);
                d[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            let jitter = if self.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_nanos(self.rng.below(self.jitter.as_nanos() as u64))
            };
            let mut at = depart + self.delay + jitter;
            if !self.reorder {
                at = at.max(self.last_arrival.unwrap_or(at));
                self.last_arrival = Some(at);
            }
            // Keep the queue sorted by arrival time.
            let pos = self.in_flight.partition_point(|(t, _)| *t <= at);
            self.in_flight.insert(pos, (at, d));
        }
    }

    /// Bytes waiting in the bottleneck queue at `now`.
    pub fn queued_bytes(&self, now: Instant) -> u64 {
        match (self.rate, self.busy_until) {
            (Some(rate), Some(busy)) if busy > now => {
                ((busy - now).as_secs_f64() * rate as f64) as u64
            }
            _ => 0,
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(t, _)| *t)
    }
}

/// In-memory storage that checks every byte against [`Data`] and every digest.
#[derive(Debug, Default)]
pub struct CheckingStorage {
    sizes: Vec<u64>,
    held: Vec<crate::proto::rangeset::RangeSet>,
    /// Bytes whose content did not match.
    pub corrupt_bytes: u64,
    /// Bytes written, counting overlaps.
    pub written_bytes: u64,
    finished: VecDeque<(SessionHandle, FileIndex, Result<(), FailureReason>)>,
    /// Entries verified.
    pub verified: u64,
    /// The disk is full once this many bytes are written: every entry with a write beyond
    /// that fails with [`FailureReason::NoSpace`], as a real sink's failed write would.
    pub disk_full_after: Option<u64>,
    /// Entries a write failed on for want of space.
    full: std::collections::BTreeSet<u32>,
}

impl CheckingStorage {
    pub(crate) fn open(&mut self, manifest: &Manifest) {
        self.sizes = manifest.entries().iter().map(ManifestEntry::size).collect();
        self.held = vec![Default::default(); self.sizes.len()];
    }
}

impl Storage for CheckingStorage {
    fn write(&mut self, _: SessionHandle, file: FileIndex, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            if *b != Data::byte(file.0, offset + i as u64) {
                self.corrupt_bytes += 1;
            }
        }
        self.written_bytes += data.len() as u64;
        if self.disk_full_after.is_some_and(|n| self.written_bytes > n) {
            self.full.insert(file.0);
        }
        if let Some(h) = self.held.get_mut(file.0 as usize) {
            h.insert(offset..offset + data.len() as u64);
        }
    }
    fn finish(&mut self, session: SessionHandle, file: FileIndex, digest: Digest) {
        let i = file.0 as usize;
        let size = self.sizes.get(i).copied().unwrap_or(0);
        let complete = self.held.get(i).is_some_and(|h| h.contains_range(0..size));
        let result = if digest == Digest::SOURCE_FAILED {
            Err(FailureReason::SourceUnreadable)
        } else if self.full.contains(&file.0) {
            Err(FailureReason::NoSpace)
        } else if !complete || digest != Data::digest(file.0, size) {
            Err(FailureReason::IntegrityMismatch)
        } else {
            self.verified += 1;
            Ok(())
        };
        self.finished.push_back((session, file, result));
    }
    fn buffered_bytes(&self, _: SessionHandle) -> u64 {
        0
    }
}

/// Outcome of a simulated transfer.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// When the sender saw completion.
    pub sender_done: Option<Duration>,
    /// When the receiver saw completion.
    pub receiver_done: Option<Duration>,
    /// Failures reported (role, error).
    pub failures: Vec<(&'static str, TransferError)>,
    /// Entries the receiver refused, as the sender learnt them (over the wire).
    pub refused: Vec<(FileIndex, FailureReason)>,
}

/// A sender and a receiver joined by two links.
#[derive(Debug)]
pub struct Pair {
    /// Virtual time now.
    pub now: Instant,
    start: Instant,
    /// Sending endpoint.
    pub sender: Endpoint,
    /// Receiving endpoint.
    pub receiver: Endpoint,
    /// Sender → receiver.
    pub forward: Link,
    /// Receiver → sender.
    pub backward: Link,
    /// The receiver's storage.
    pub storage: CheckingStorage,
    manifest: Arc<Manifest>,
    send_h: SessionHandle,
    recv_h: SessionHandle,
    next_chunk: (usize, u64),
    /// The sender's reader fails on this entry at this offset (entry index, byte offset).
    pub unreadable: Option<(usize, u64)>,
    /// The sender announces a digest for this entry that its data does not have.
    pub wrong_digest: Option<usize>,
    chunk: u64,
    /// Ranges the receiver holds from a "previous run" (resume).
    pub resume_held: Vec<(FileIndex, Range<u64>)>,
    /// What happened.
    pub outcome: Outcome,
    /// The sender's counters, as last seen (the session is freed after completion).
    pub sender_stats: crate::proto::SessionStats,
    buf: Vec<u8>,
    sender_addr: SocketAddr,
    receiver_addr: SocketAddr,
    trace_tick: Option<u128>,
}

/// Builds a manifest of files with these sizes (named `f0`, `f1`, ...).
pub fn manifest_of(sizes: &[u64]) -> Manifest {
    let entries = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            ManifestEntry::file(&format!("dir/f{i}"), s, 1_700_000_000_000_000, i % 2 == 0)
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("valid generated names");
    Manifest::new(entries).expect("valid generated manifest")
}

impl Pair {
    /// A pair transferring `manifest` over the given links.
    pub fn new(manifest: Manifest, forward: Link, backward: Link, config: TransportConfig) -> Self {
        let now = Instant::now();
        let sender_addr: SocketAddr = "10.0.0.1:8886".parse().expect("literal");
        let receiver_addr: SocketAddr = "10.0.0.2:8886".parse().expect("literal");
        let id = SessionId(0x5EED);
        let secret = SessionSecret::from_bytes([7; 32]);
        let manifest = Arc::new(manifest);
        let mut sender = Endpoint::new();
        let mut receiver = Endpoint::new();
        let recv_h = receiver
            .expect_receive(
                now,
                ReceiveParams {
                    session_id: id,
                    secret: secret.clone(),
                    cipher: Cipher::Aes256Gcm,
                    first_pn: 1 << 40,
                    config: config.clone(),
                },
            )
            .expect("fresh endpoint");
        let send_h = sender
            .start_send(
                now,
                SendParams {
                    session_id: id,
                    peer: receiver_addr,
                    secret,
                    cipher: Cipher::Aes256Gcm,
                    first_pn: 1 << 20,
                    manifest: manifest.clone(),
                    config,
                },
            )
            .expect("fresh endpoint");
        Self {
            now,
            start: now,
            sender,
            receiver,
            forward,
            backward,
            storage: CheckingStorage::default(),
            manifest,
            send_h,
            recv_h,
            next_chunk: (0, 0),
            unreadable: None,
            wrong_digest: None,
            chunk: 1 << 20,
            resume_held: Vec::new(),
            outcome: Outcome::default(),
            sender_stats: Default::default(),
            buf: vec![0; 2048],
            sender_addr,
            receiver_addr,
            trace_tick: None,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The sending session's handle.
    pub fn sender_handle(&self) -> SessionHandle {
        self.send_h
    }

    /// The receiving session's handle.
    pub fn receiver_handle(&self) -> SessionHandle {
        self.recv_h
    }

    fn pump_data(&mut self) {
        while self.sender.wants_data(self.send_h) && self.next_chunk.0 < self.manifest.len() {
            let (i, off) = self.next_chunk;
            let size = self.manifest.entries()[i].size();
            if self
                .unreadable
                .is_some_and(|(f, at)| f == i && off >= at && off < size)
            {
                // The reader fails here: what a driver does with `ReadEvent::Failed`.
                self.sender
                    .handle_digest(self.send_h, FileIndex(i as u32), Digest::SOURCE_FAILED);
                self.next_chunk = (i + 1, 0);
                continue;
            }
            if off < size {
                let n = (size - off).min(self.chunk);
                let data = Bytes::from(Data::at(i as u32, off, n as usize));
                self.sender
                    .handle_chunk(self.send_h, FileIndex(i as u32), off, data);
                self.next_chunk.1 += n;
            } else {
                let mut digest = Data::digest(i as u32, size);
                if self.wrong_digest == Some(i) {
                    digest.0[0] ^= 1;
                }
                self.sender
                    .handle_digest(self.send_h, FileIndex(i as u32), digest);
                self.next_chunk = (i + 1, 0);
            }
        }
    }

    /// `JETSTREAM_SIM_TRACE=1`: prints the sender's rate-control view every 100 ms of virtual
    /// time (the simulator's counterpart of the driver's `JETSTREAM_TRACE`).
    fn trace(&mut self, s: &crate::proto::SessionStats) {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if !*ON.get_or_init(|| std::env::var_os("JETSTREAM_SIM_TRACE").is_some()) {
            return;
        }
        let tick = self.elapsed().as_millis() / 100;
        if self.trace_tick == Some(tick) {
            return;
        }
        self.trace_tick = Some(tick);
        println!(
            "{:>6.1} {:<8} srtt {:>4} min {:>4} bw {:>6.1} pace {:>6.1} cwnd {:>6.2} infl {:>6.2} \
             cap {:>6.2} acked {:>7.1} retx {:>5.2} lost {} q {:.2}",
            self.elapsed().as_secs_f64(),
            s.cc_state,
            s.srtt_us / 1000,
            s.min_rtt_us / 1000,
            s.bottleneck_bandwidth as f64 / 1e6,
            s.pacing_rate as f64 / 1e6,
            s.cwnd as f64 / 1e6,
            s.bytes_in_flight as f64 / 1e6,
            s.inflight_cap as f64 / 1e6,
            s.bytes_acked as f64 / 1e6,
            s.bytes_retransmitted as f64 / 1e6,
            s.packets_lost,
            self.forward.queued_bytes(self.now) as f64 / 1e6,
        );
    }

    /// Runs until both ends are done or `limit` of virtual time passes.
    pub fn run(&mut self, limit: Duration) -> &Outcome {
        let deadline = self.start + limit;
        while self.now < deadline {
            self.pump_data();
            // Transmit everything both ends want to send now.
            while let Some(t) = self
                .sender
                .poll_transmit(self.now, &mut self.buf, 1, &self.storage)
            {
                self.forward.send(self.now, &self.buf[..t.len]);
            }
            while let Some(t) =
                self.receiver
                    .poll_transmit(self.now, &mut self.buf, 1, &self.storage)
            {
                self.backward.send(self.now, &self.buf[..t.len]);
            }
            self.drain_events();
            if let Some(s) = self.sender.session_stats(self.send_h) {
                self.trace(&s);
                self.sender_stats = s;
            }
            if self.sender.session_count() == 0 && self.receiver.session_count() == 0 {
                break;
            }
            // Jump to the next thing that happens.
            let next = [
                self.forward.next_arrival(),
                self.backward.next_arrival(),
                self.sender.poll_timeout(),
                self.receiver.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            while self.forward.next_arrival().is_some_and(|t| t <= self.now) {
                let (_, mut d) = self
                    .forward
                    .in_flight
                    .pop_front()
                    .expect("checked non-empty");
                self.receiver.handle_datagram(
                    self.now,
                    self.sender_addr,
                    &mut d,
                    &mut self.storage,
                );
            }
            while self.backward.next_arrival().is_some_and(|t| t <= self.now) {
                let (_, mut d) = self
                    .backward
                    .in_flight
                    .pop_front()
                    .expect("checked non-empty");
                self.sender.handle_datagram(
                    self.now,
                    self.receiver_addr,
                    &mut d,
                    &mut self.storage,
                );
            }
            while let Some((h, f, result)) = self.storage.finished.pop_front() {
                self.receiver.file_done(self.now, h, f, result);
            }
            self.sender.handle_timeout(self.now);
            self.receiver.handle_timeout(self.now);
        }
        &self.outcome
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.sender.poll_event() {
            match e {
                Event::Complete(_, failed) => {
                    self.outcome.sender_done = Some(self.elapsed());
                    self.outcome.refused = failed;
                }
                Event::Failed(_, err) => self.outcome.failures.push(("sender", err)),
                _ => {}
            }
        }
        while let Some(e) = self.receiver.poll_event() {
            match e {
                Event::ManifestReceived(h) => {
                    let m = self.receiver.manifest(h).expect("manifest just received");
                    self.storage.open(&m);
                    let held = self.resume_held.clone();
                    for (f, r) in &held {
                        for o in r.clone().step_by(4096) {
                            let n = (r.end - o).min(4096);
                            let data = Data::at(f.0, o, n as usize);
                            self.storage.write(h, *f, o, &data);
                        }
                    }
                    self.storage.written_bytes = 0;
                    self.receiver
                        .storage_ready(self.now, h, &held, &[], &mut self.storage);
                }
                Event::Complete(_, _) => self.outcome.receiver_done = Some(self.elapsed()),
                Event::Failed(_, err) => self.outcome.failures.push(("receiver", err)),
                _ => {}
            }
        }
    }

    /// Closes the sending session (a user cancel).
    pub fn cancel_sender(&mut self) {
        self.sender
            .close(self.now, self.send_h, TransferError::Cancelled);
    }
}
