//! The event loop. Rules (mio): readiness is a hint, so the socket is read until `WouldBlock`
//! or a per-wakeup budget runs out (then the next poll does not sleep); `WouldBlock` on send
//! keeps the batch for the next writable event; other threads reach the loop only through the
//! command channel plus the waker; `now` is taken once per iteration.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};

use super::socket::UdpSocket;
use super::{Command, Discovery, DiscoveryStats, EngineInfo, ReceiveCommand, SendCommand};
use crate::config::EngineConfig;
use crate::error::{Error, TransferError};
use crate::fs::identity::FsIdentity;
use crate::fs::reader::{spawn_reader, ReadEvent, ReaderHandle};
use crate::fs::sink::{FileSink, SinkEvent, SinkRoot};
use crate::fs::FsError;
use crate::manifest::Manifest;
use crate::proto::{Endpoint, Event, ReceiveParams, SendParams, SessionHandle, Storage};
use crate::transfer::{Shared, TransferState};
use crate::trigger::{Trigger, TriggerEvent};
use crate::types::{Digest, FileIndex, Role, TransferId};

const UDP: Token = Token(0);
const WAKER: Token = Token(1);
/// Datagram reads per loop iteration before other work gets a turn.
const RECV_BUDGET: usize = 64;
/// Size of the receive and send buffers: one GRO/GSO batch.
const BATCH_BUF: usize = 65536;
/// Why an entry failed at the receiver, as told to the sender (which has only this code).
mod file_code {
    pub(super) const ESCAPE: u64 = 1;
    pub(super) const INVALID_PATH: u64 = 2;
    pub(super) const IO: u64 = 3;
    pub(super) const DISK_FULL: u64 = 4;
    pub(super) const NOT_PERMITTED: u64 = 5;
    pub(super) const CORRUPT: u64 = 6;
    /// Not the receiver's doing: the sender could not read the entry
    /// ([`Digest::SOURCE_FAILED`](crate::types::Digest::SOURCE_FAILED) in its digest slot).
    pub(super) const SOURCE: u64 = 7;
}

fn file_error_code(err: &FsError) -> u64 {
    match err {
        FsError::Escape { .. } => file_code::ESCAPE,
        FsError::InvalidPath { .. } => file_code::INVALID_PATH,
        FsError::Io { kind, .. } => match kind {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                file_code::DISK_FULL
            }
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                file_code::NOT_PERMITTED
            }
            _ => file_code::IO,
        },
        FsError::DigestMismatch { .. } => file_code::CORRUPT,
        _ => file_code::IO,
    }
}

/// The sender's words for a receiver's failure code.
fn describe_file_code(code: u64) -> String {
    if code == file_code::SOURCE {
        return SOURCE_UNREADABLE.to_owned();
    }
    let why = match code {
        file_code::ESCAPE => "the path leaves the destination or crosses a symbolic link",
        file_code::INVALID_PATH => "the path is not valid there",
        file_code::DISK_FULL => "the receiver's disk is full (No space left on device)",
        file_code::NOT_PERMITTED => {
            "the receiver may not write there (permission denied or read-only)"
        }
        file_code::CORRUPT => "the data arrived corrupted and was discarded",
        _ => "an I/O error on the receiver",
    };
    format!("refused by the receiver: {why}")
}

/// Discovery datagrams: reachability probes between engines, outside any session.
///
/// ```text
/// discovery datagram = magic "JSDISC1\0" (8) | nonce (16) | kind u8 (1 = probe, 2 = echo)
/// ```
///
/// It cannot be confused with a session packet, for two independent reasons: a session
/// datagram is at least [`MIN_DATAGRAM_LEN`](crate::proto::packet::MIN_DATAGRAM_LEN) (13-byte
/// short header + 1 byte of frames + 16-byte AEAD tag = 30) bytes long, a discovery datagram
/// exactly 25; and a session datagram starts with the protocol version in its high nibble
/// (0x20 or 0x21), a discovery datagram with `'J'` (0x4A). So the driver
/// recognises discovery by length and magic before the session lookup, and a session packet
/// never matches. The reverse cannot happen either: anything that is not a well-formed
/// discovery datagram goes to the endpoint, which drops (and counts) a 25-byte datagram as
/// too short to be authenticated, creating no state.
mod discovery {
    use super::{Discovery, Duration, Instant, VecDeque};

    pub(super) const MAGIC: [u8; 8] = *b"JSDISC1\0";
    pub(super) const LEN: usize = 25;
    pub(super) const PROBE: u8 = 1;
    pub(super) const ECHO: u8 = 2;
    /// How many received discovery datagrams are kept.
    pub(super) const RING: usize = 64;
    /// Echoes sent per second at most, in total (a bound on reflection abuse: a spoofed probe
    /// makes us send 25 bytes to a victim, no amplification, and no more than this rate).
    pub(super) const ECHOES_PER_SECOND: u32 = 100;

    const _: () = assert!(LEN < crate::proto::packet::MIN_DATAGRAM_LEN);
    const _: () = assert!(MAGIC[0] >> 4 != crate::proto::packet::VERSION);

    /// What a discovery datagram says.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Parsed {
        /// Not discovery: hand it to the endpoint.
        NotDiscovery,
        /// Discovery magic with an unknown kind byte.
        Invalid,
        /// A probe (`false`) or echo (`true`) with its nonce.
        Valid { nonce: [u8; 16], echo: bool },
    }

    pub(super) fn parse(d: &[u8]) -> Parsed {
        if d.len() != LEN || d[..8] != MAGIC {
            return Parsed::NotDiscovery;
        }
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&d[8..24]);
        match d[24] {
            PROBE => Parsed::Valid { nonce, echo: false },
            ECHO => Parsed::Valid { nonce, echo: true },
            _ => Parsed::Invalid,
        }
    }

    pub(super) fn encode(nonce: &[u8; 16], kind: u8) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..24].copy_from_slice(nonce);
        b[24] = kind;
        b
    }

    /// The last [`RING`] discovery datagrams received; allocated once.
    #[derive(Debug)]
    pub(super) struct Ring(VecDeque<Discovery>);

    impl Ring {
        pub(super) fn new() -> Self {
            Self(VecDeque::with_capacity(RING))
        }

        pub(super) fn push(&mut self, d: Discovery) {
            if self.0.len() == RING {
                self.0.pop_front();
            }
            self.0.push_back(d);
        }

        pub(super) fn to_vec(&self) -> Vec<Discovery> {
            self.0.iter().cloned().collect()
        }
    }

    /// A fixed one-second window of at most [`ECHOES_PER_SECOND`] echoes.
    #[derive(Debug)]
    pub(super) struct Limiter {
        window: Option<Instant>,
        used: u32,
    }

    impl Limiter {
        pub(super) fn new() -> Self {
            Self {
                window: None,
                used: 0,
            }
        }

        /// Whether one more echo may go out at `now`.
        pub(super) fn allow(&mut self, now: Instant) -> bool {
            match self.window {
                Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {}
                _ => {
                    self.window = Some(now);
                    self.used = 0;
                }
            }
            if self.used < ECHOES_PER_SECOND {
                self.used += 1;
                true
            } else {
                false
            }
        }
    }
}

struct Active {
    id: TransferId,
    role: Role,
    shared: Arc<Shared>,
    reader: Option<(ReaderHandle, Receiver<ReadEvent>)>,
    root: Option<SinkRoot>,
    /// The user a receive writes as (see [`EngineHandle::receive_as`](super::EngineHandle::receive_as)).
    owner: Option<FsIdentity>,
    manifest: Option<Arc<Manifest>>,
    file_errors: HashMap<u32, String>,
    started_reported: bool,
}

/// The receiver's words for an entry the sender could not read.
const SOURCE_UNREADABLE: &str = "the sender could not read the source file";

/// Receiving sessions' sinks, keyed by session.
#[derive(Default)]
struct Sinks {
    map: HashMap<SessionHandle, FileSink>,
    /// Write errors raised synchronously, reported after the datagram is processed.
    errors: Vec<(SessionHandle, FileIndex, FsError)>,
    /// Entries whose sender could not read them, reported likewise.
    source_failed: Vec<(SessionHandle, FileIndex)>,
}

impl Storage for Sinks {
    fn write(&mut self, session: SessionHandle, file: FileIndex, offset: u64, data: &[u8]) {
        if let Some(s) = self.map.get_mut(&session) {
            if let Err(e) = s.write(file, offset, data) {
                self.errors.push((session, file, e));
            }
        }
    }
    fn finish(&mut self, session: SessionHandle, file: FileIndex, digest: Digest) {
        if digest == Digest::SOURCE_FAILED {
            // Its part file stays (with its journal records) for a resume once the source
            // reads again; it is never finished.
            self.source_failed.push((session, file));
            return;
        }
        if let Some(s) = self.map.get_mut(&session) {
            s.finish(file, digest);
        }
    }
    fn buffered_bytes(&self, session: SessionHandle) -> u64 {
        self.map.get(&session).map_or(0, FileSink::buffered_bytes)
    }
}

pub(crate) struct Driver {
    config: Arc<EngineConfig>,
    poll: Poll,
    socket: UdpSocket,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    endpoint: Endpoint,
    sinks: Sinks,
    transfers: HashMap<SessionHandle, Active>,
    by_id: HashMap<TransferId, SessionHandle>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    /// A batch the socket refused with `WouldBlock`: (destination, offset sent so far, len, segment).
    pending: Option<(SocketAddr, usize, usize, usize)>,
    triggers: Sender<TriggerEvent>,
    shutting_down: bool,
    rng_state: u64,
    discoveries: discovery::Ring,
    echo_limit: discovery::Limiter,
    discovery_stats: DiscoveryStats,
}

impl Driver {
    pub(crate) fn new(
        config: Arc<EngineConfig>,
        mut trigger: Box<dyn Trigger>,
    ) -> Result<(Self, Arc<Waker>, Sender<Command>), Error> {
        let poll = Poll::new()?;
        let mut socket = UdpSocket::bind(config.bind, &config.socket)?;
        poll.registry()
            .register(&mut socket, UDP, Interest::READABLE | Interest::WRITABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, commands) = bounded(1024);
        // One worker calls the trigger serially; the engine never waits for it.
        let (triggers, trigger_rx) = bounded::<TriggerEvent>(4096);
        std::thread::Builder::new()
            .name("jetstream-trigger".into())
            .spawn(move || {
                for ev in trigger_rx {
                    trigger.on_event(&ev);
                }
            })?;
        let mut seed = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| Error::Config("OS random generator failed".into()))?;
        let driver = Self {
            config,
            poll,
            socket,
            waker: waker.clone(),
            commands,
            endpoint: Endpoint::new(),
            sinks: Sinks::default(),
            transfers: HashMap::new(),
            by_id: HashMap::new(),
            recv_buf: vec![0; BATCH_BUF],
            send_buf: vec![0; BATCH_BUF],
            pending: None,
            triggers,
            shutting_down: false,
            rng_state: u64::from_le_bytes(seed) | 1,
            discoveries: discovery::Ring::new(),
            echo_limit: discovery::Limiter::new(),
            discovery_stats: DiscoveryStats::default(),
        };
        Ok((driver, waker, tx))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| self.config.bind)
    }

    /// A random first packet number (top bits clear), so that a session restarted with the same
    /// keys by a careless caller still does not reuse nonces.
    fn first_pn(&mut self) -> u64 {
        // xorshift64* seeded from the OS; only needs to be unpredictable-ish and non-repeating.
        let mut x = self.rng_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng_state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 2
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut busy = false;
        let mut last_status = Instant::now();
        loop {
            let now = Instant::now();
            let mut timeout = self.config.status_interval;
            if let Some(t) = self.endpoint.poll_timeout() {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if busy {
                timeout = Duration::ZERO;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            let now = Instant::now();
            busy = self.receive();
            self.drain_commands(now);
            busy |= self.pump_readers();
            self.pump_sinks(now);
            self.endpoint.handle_timeout(now);
            self.flush(now);
            self.handle_events(now);
            if now.duration_since(last_status) >= self.config.status_interval {
                last_status = now;
                self.update_statuses();
            }
            if self.shutting_down {
                self.shutdown(now);
                break;
            }
        }
    }

    /// Reads datagrams until `WouldBlock` or the budget is spent. Returns true if the budget ran
    /// out (more may be waiting).
    ///
    /// Each read takes its own arrival time: a datagram read after others were handled (or after
    /// the thread lost the CPU for a while) arrived later than the loop's start, and an ACK
    /// stamped with the earlier time gives an RTT sample short by that much. On a loaded
    /// 2-core machine that made the minimum RTT of a 20 ms path read 12 ms, and the window
    /// sized from it capped a 500 Mbit/s transfer at 64 %.
    fn receive(&mut self) -> bool {
        for _ in 0..RECV_BUDGET {
            match self.socket.recv(&mut self.recv_buf) {
                Ok(meta) => {
                    let now = Instant::now();
                    let seg = meta.segment_size.max(1);
                    for d in self.recv_buf[..meta.len].chunks_mut(seg) {
                        // Before the session lookup; see `mod discovery` for why the two
                        // kinds of datagram cannot be mistaken for each other.
                        match discovery::parse(d) {
                            discovery::Parsed::NotDiscovery => {
                                self.endpoint
                                    .handle_datagram(now, meta.from, d, &mut self.sinks);
                            }
                            discovery::Parsed::Invalid => self.discovery_stats.invalid += 1,
                            discovery::Parsed::Valid { nonce, echo } => Self::on_discovery(
                                &self.socket,
                                &mut self.discoveries,
                                &mut self.echo_limit,
                                &mut self.discovery_stats,
                                now,
                                Discovery {
                                    from: meta.from,
                                    nonce,
                                    echo,
                                    at: now,
                                },
                            ),
                        }
                    }
                    for (h, file, err) in std::mem::take(&mut self.sinks.errors) {
                        self.file_failed(now, h, file, &err);
                    }
                    for (h, file) in std::mem::take(&mut self.sinks.source_failed) {
                        self.entry_failed(now, h, file, file_code::SOURCE, SOURCE_UNREADABLE);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors (port unreachable) surface here on Linux; the idle timer handles
                // an unreachable peer.
                Err(_) => return false,
            }
        }
        true
    }

    /// Records a discovery datagram and answers a probe with an echo, within the rate limit.
    /// (An associated function: `receive` holds a borrow of the receive buffer.)
    fn on_discovery(
        socket: &UdpSocket,
        ring: &mut discovery::Ring,
        limit: &mut discovery::Limiter,
        stats: &mut DiscoveryStats,
        now: Instant,
        d: Discovery,
    ) {
        if d.echo {
            stats.echoes += 1;
        } else {
            stats.probes += 1;
            let sent = limit.allow(now)
                && socket
                    .send_segments(
                        d.from,
                        &discovery::encode(&d.nonce, discovery::ECHO),
                        discovery::LEN,
                    )
                    .is_ok_and(|n| n == discovery::LEN);
            if sent {
                stats.echoes_sent += 1;
            } else {
                stats.echoes_dropped += 1;
            }
        }
        ring.push(d);
    }

    fn drain_commands(&mut self, now: Instant) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Send(c)) => self.start_send(now, *c),
                Ok(Command::Receive(c)) => self.start_receive(now, *c),
                Ok(Command::Cancel(id)) => {
                    if let Some(&h) = self.by_id.get(&id) {
                        self.endpoint.close(now, h, TransferError::Cancelled);
                    }
                }
                Ok(Command::SetRate(id, rate)) => {
                    if let Some(&h) = self.by_id.get(&id) {
                        self.endpoint.set_max_rate(h, rate);
                    }
                }
                Ok(Command::Info(reply)) => {
                    let (recv_buffer, send_buffer) = self.socket.buffer_sizes();
                    let _ = reply.send(EngineInfo {
                        local_addr: self.local_addr(),
                        recv_buffer,
                        send_buffer,
                        gso: self.socket.gso_enabled(),
                        gro: self.socket.gro_enabled(),
                        dropped: self.endpoint.stats(),
                        sessions: self.endpoint.session_count(),
                        discovery: self.discovery_stats,
                        traffic: self.endpoint.traffic(),
                    });
                }
                Ok(Command::Discover(to, nonce, reply)) => {
                    let probe = discovery::encode(&nonce, discovery::PROBE);
                    let res = match self.socket.send_segments(to, &probe, discovery::LEN) {
                        Ok(n) if n == discovery::LEN => Ok(()),
                        Ok(_) => Err(Error::Io(io::ErrorKind::WouldBlock.into())),
                        Err(e) => Err(Error::Io(e)),
                    };
                    let _ = reply.send(res);
                }
                Ok(Command::Discoveries(reply)) => {
                    let _ = reply.send(self.discoveries.to_vec());
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                    self.shutting_down = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    fn start_send(&mut self, now: Instant, c: SendCommand) {
        let params = SendParams {
            session_id: c.keys.session_id,
            peer: c.destination.address,
            secret: c.keys.secret.clone(),
            cipher: c.keys.cipher,
            first_pn: self.first_pn(),
            manifest: c.manifest.clone(),
            config: c.config,
        };
        let h = match self.endpoint.start_send(now, params) {
            Ok(h) => h,
            Err(e) => {
                let _ = c.reply.send(Err(Error::Transfer(e)));
                return;
            }
        };
        let waker = self.waker.clone();
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = waker.wake();
        });
        let reader = match spawn_reader(c.manifest.clone(), self.config.reader.clone(), notify) {
            Ok(r) => r,
            Err(e) => {
                self.endpoint.close(
                    now,
                    h,
                    TransferError::Internal("cannot start the reader thread"),
                );
                let _ = c.reply.send(Err(Error::Io(e)));
                return;
            }
        };
        {
            let mut st = c.shared.status.lock();
            st.total_bytes = c.manifest.total_bytes();
            st.total_blocks = total_blocks(&c.manifest, st.block_size);
            st.files_total = c.manifest.len() as u64;
            st.state = TransferState::Active;
        }
        let id = c.shared.status.lock().transfer_id;
        self.by_id.insert(id, h);
        self.transfers.insert(
            h,
            Active {
                id,
                role: Role::Sender,
                shared: c.shared,
                reader: Some(reader),
                root: None,
                owner: None,
                manifest: Some(c.manifest),
                file_errors: HashMap::new(),
                started_reported: false,
            },
        );
        let _ = c.reply.send(Ok(()));
    }

    fn start_receive(&mut self, now: Instant, c: ReceiveCommand) {
        let params = ReceiveParams {
            session_id: c.keys.session_id,
            secret: c.keys.secret.clone(),
            cipher: c.keys.cipher,
            first_pn: self.first_pn(),
            config: c.config,
        };
        match self.endpoint.expect_receive(now, params) {
            Ok(h) => {
                let id = c.shared.status.lock().transfer_id;
                self.by_id.insert(id, h);
                self.transfers.insert(
                    h,
                    Active {
                        id,
                        role: Role::Receiver,
                        shared: c.shared,
                        reader: None,
                        root: Some(c.root),
                        owner: c.owner,
                        manifest: None,
                        file_errors: HashMap::new(),
                        started_reported: false,
                    },
                );
                let _ = c.reply.send(Ok(()));
            }
            Err(e) => {
                let _ = c.reply.send(Err(Error::Transfer(e)));
            }
        }
    }

    /// Moves file data from reader threads into sending sessions. Returns true if a session
    /// still wants data that is already waiting (so the loop should not sleep).
    fn pump_readers(&mut self) -> bool {
        let mut more = false;
        // In place, not over a collected copy of the keys: this runs on every loop iteration,
        // which must not allocate (a flood of bogus datagrams wakes the loop at its rate).
        for (&h, t) in &mut self.transfers {
            let Some((_, rx)) = &t.reader else { continue };
            let mut budget = 64;
            while self.endpoint.wants_data(h) {
                let Ok(ev) = rx.try_recv() else { break };
                match ev {
                    ReadEvent::Chunk { file, offset, data } => {
                        self.endpoint.handle_chunk(h, file, offset, data)
                    }
                    ReadEvent::Digest { file, digest } => {
                        self.endpoint.handle_digest(h, file, digest)
                    }
                    ReadEvent::Done => {
                        t.reader = None;
                        break;
                    }
                    ReadEvent::Failed { file, error } => {
                        // That entry alone fails: its digest slot says so, and the receiver
                        // stops waiting for its bytes (the reader carries on with the next).
                        t.file_errors
                            .entry(file.0)
                            .or_insert_with(|| format!("cannot read the source: {error}"));
                        self.endpoint.handle_digest(h, file, Digest::SOURCE_FAILED);
                    }
                }
                budget -= 1;
                if budget == 0 {
                    more = true;
                    break;
                }
            }
        }
        more
    }

    fn pump_sinks(&mut self, now: Instant) {
        // In place and allocation-free unless a file failed (see `pump_readers`).
        let mut failed = Vec::new();
        for (&h, sink) in &mut self.sinks.map {
            while let Some(ev) = sink.poll() {
                match ev {
                    SinkEvent::FileDone {
                        file,
                        result: Ok(()),
                    } => {
                        self.endpoint.file_done(now, h, file, true, 0);
                    }
                    SinkEvent::FileDone {
                        file,
                        result: Err(e),
                    } => failed.push((h, file, e)),
                }
            }
        }
        for (h, file, e) in failed {
            self.file_failed(now, h, file, &e);
        }
    }

    fn file_failed(&mut self, now: Instant, h: SessionHandle, file: FileIndex, err: &FsError) {
        self.entry_failed(now, h, file, file_error_code(err), &err.to_string());
    }

    /// Records why an entry failed here and tells the session (and through it the sender).
    fn entry_failed(
        &mut self,
        now: Instant,
        h: SessionHandle,
        file: FileIndex,
        code: u64,
        why: &str,
    ) {
        if let Some(t) = self.transfers.get_mut(&h) {
            t.file_errors
                .entry(file.0)
                .or_insert_with(|| why.to_owned());
        }
        self.endpoint.file_done(now, h, file, false, code);
    }

    fn flush(&mut self, now: Instant) {
        let max_segments = self.socket.max_gso_segments();
        loop {
            if let Some((dest, at, len, seg)) = self.pending {
                match self
                    .socket
                    .send_segments(dest, &self.send_buf[at..len], seg)
                {
                    Ok(n) if at + n >= len => self.pending = None,
                    Ok(n) => {
                        self.pending = Some((dest, at + n, len, seg));
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Unroutable destination and the like: the datagrams are lost, as on the
                    // network; loss recovery and the idle timer deal with it.
                    Err(_) => self.pending = None,
                }
            }
            // Stamped when built, which is when it is sent (the send above returned): a batch
            // built after earlier ones were sent leaves later than the loop's start.
            let now = now.max(Instant::now());
            match self
                .endpoint
                .poll_transmit(now, &mut self.send_buf, max_segments, &self.sinks)
            {
                Some(t) => self.pending = Some((t.destination, 0, t.len, t.segment_size)),
                None => return,
            }
        }
    }

    fn handle_events(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::ManifestReceived(h) => self.open_sink(now, h),
                Event::FileFinished(h, file) => {
                    let Some(t) = self.transfers.get(&h) else {
                        continue;
                    };
                    t.shared.status.lock().files_done += 1;
                    if let (Some(root), Some(m)) = (&t.root, &t.manifest) {
                        if let Some(e) = m.entries().get(file.0 as usize) {
                            let _ = self.triggers.try_send(TriggerEvent::FileReceived {
                                transfer_id: t.id,
                                path: e.dest_path().to_owned(),
                                written: root.path().join(e.dest_path()),
                            });
                        }
                    }
                }
                Event::Complete(h, failed) => self.complete(h, &failed),
                Event::Failed(h, e) => self.failed(h, &e),
                Event::Closed(h) => {
                    if let Some(t) = self.transfers.remove(&h) {
                        self.by_id.remove(&t.id);
                        // A session that vanished without an outcome (should not happen).
                        if !t.shared.status.lock().state.is_final() {
                            self.finish_status(
                                &t,
                                TransferState::Error,
                                Some("session closed".into()),
                            );
                        }
                    }
                    if let Some(s) = self.sinks.map.remove(&h) {
                        s.close();
                    }
                }
            }
        }
    }

    fn open_sink(&mut self, now: Instant, h: SessionHandle) {
        let Some(manifest) = self.endpoint.manifest(h) else {
            return;
        };
        // Every receiving session has its transfer and root (`start_receive`); should one not,
        // end it with a clear error rather than leave the sender waiting on storage that
        // never opens.
        let Some((t, root)) = self
            .transfers
            .get_mut(&h)
            .and_then(|t| t.root.clone().map(|r| (t, r)))
        else {
            self.endpoint.close(
                now,
                h,
                TransferError::Internal("no destination for the received manifest"),
            );
            return;
        };
        t.manifest = Some(manifest.clone());
        {
            let mut st = t.shared.status.lock();
            st.total_bytes = manifest.total_bytes();
            st.total_blocks = total_blocks(&manifest, st.block_size);
            st.files_total = manifest.len() as u64;
            st.state = TransferState::Active;
        }
        let tag = manifest.digest().to_string()[..16].to_owned();
        let waker = self.waker.clone();
        let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = waker.wake();
        });
        let mut sink_config = self.config.sink.clone();
        sink_config.identity(t.owner.clone());
        match FileSink::open(root, manifest, tag, sink_config, notify) {
            Ok((sink, resume)) => {
                self.sinks.map.insert(h, sink);
                self.endpoint.storage_ready(
                    now,
                    h,
                    &resume.held,
                    &resume.complete,
                    &mut self.sinks,
                );
            }
            Err(e) => self.endpoint.close(now, h, TransferError::Disk(e)),
        }
    }

    fn complete(&mut self, h: SessionHandle, failed: &[(FileIndex, u64)]) {
        let Some(t) = self.transfers.get(&h) else {
            return;
        };
        let mut failed_files = Vec::new();
        let mut files = Vec::new();
        if let Some(m) = &t.manifest {
            for &(f, code) in failed {
                let path = m
                    .entries()
                    .get(f.0 as usize)
                    .map_or_else(String::new, |e| e.dest_path().to_owned());
                let why = t
                    .file_errors
                    .get(&f.0)
                    .cloned()
                    .unwrap_or_else(|| describe_file_code(code));
                failed_files.push((path, why));
            }
            for (i, e) in m.entries().iter().enumerate() {
                if failed.iter().any(|(f, _)| f.0 as usize == i) {
                    continue;
                }
                let written = t
                    .root
                    .as_ref()
                    .map(|r| r.path().join(e.dest_path()))
                    .unwrap_or_default();
                files.push((e.dest_path().to_owned(), written));
            }
        }
        let (state, msg) = if failed_files.is_empty() {
            (TransferState::Complete, None)
        } else {
            let first = &failed_files[0];
            (
                TransferState::Error,
                Some(format!(
                    "{} of {} entries failed; first: {}: {}",
                    failed_files.len(),
                    files.len() + failed_files.len(),
                    first.0,
                    first.1
                )),
            )
        };
        t.shared.status.lock().failed_files = failed_files;
        let _ = self.triggers.try_send(TriggerEvent::TransferComplete {
            transfer_id: t.id,
            role: t.role,
            files,
        });
        self.finish_status(t, state, msg);
    }

    fn failed(&mut self, h: SessionHandle, e: &TransferError) {
        let Some(t) = self.transfers.get_mut(&h) else {
            return;
        };
        if let Some((mut r, _)) = t.reader.take() {
            r.stop();
        }
        let state = if *e == TransferError::Cancelled {
            TransferState::Cancelled
        } else {
            TransferState::Error
        };
        let _ = self.triggers.try_send(TriggerEvent::TransferFailed {
            transfer_id: t.id,
            role: t.role,
            message: e.to_string(),
        });
        let t = &self.transfers[&h];
        self.finish_status(t, state, Some(e.to_string()));
        if let Some(s) = self.sinks.map.remove(&h) {
            s.close(); // Keeps the journal: a later transfer of the same manifest resumes.
        }
    }

    fn finish_status(&self, t: &Active, state: TransferState, msg: Option<String>) {
        let stats = self
            .by_id
            .get(&t.id)
            .and_then(|h| self.endpoint.session_stats(*h));
        let mut st = t.shared.status.lock();
        if st.state.is_final() {
            return;
        }
        if let Some(s) = stats {
            apply_stats(&mut st, &s);
        }
        st.state = state;
        st.error_message = msg;
        st.end_time = Some(SystemTime::now());
        st.ended = Some(Instant::now());
        drop(st);
        t.shared.ended.notify_all();
    }

    fn update_statuses(&mut self) {
        for (h, t) in &mut self.transfers {
            if let Some(s) = self.endpoint.session_stats(*h) {
                trace::record(t.id, t.role, &s);
                let mut st = t.shared.status.lock();
                if !st.state.is_final() {
                    apply_stats(&mut st, &s);
                }
                if !t.started_reported && s.packets_recv > 0 {
                    t.started_reported = true;
                    let _ = self.triggers.try_send(TriggerEvent::TransferStarted {
                        transfer_id: t.id,
                        role: t.role,
                    });
                }
            }
        }
    }

    fn shutdown(&mut self, now: Instant) {
        let handles: Vec<SessionHandle> = self.transfers.keys().copied().collect();
        for h in handles {
            self.endpoint.close(now, h, TransferError::Shutdown);
        }
        self.flush(now);
        self.handle_events(now);
        for (_, s) in self.sinks.map.drain() {
            s.close();
        }
        for (_, mut t) in self.transfers.drain() {
            if let Some((mut r, _)) = t.reader.take() {
                r.stop();
            }
        }
    }
}

fn total_blocks(m: &Manifest, block: u64) -> u64 {
    m.entries()
        .iter()
        .map(|e| e.size().div_ceil(block.max(1)))
        .sum()
}

fn apply_stats(st: &mut crate::transfer::TransferStatus, s: &crate::proto::SessionStats) {
    st.packets_sent = s.packets_sent;
    st.packets_recv = s.packets_recv;
    st.bytes_sent = s.bytes_sent;
    st.bytes_recv = s.bytes_recv;
    st.blocks_sent = s.blocks_sent;
    st.blocks_retransmitted = s.blocks_retransmitted;
    st.bytes_retransmitted = s.bytes_retransmitted;
    st.bytes_acked = s.bytes_acked;
    st.blocks_acked = s.bytes_acked.div_ceil(st.block_size.max(1));
    st.rtt = Duration::from_micros(s.srtt_us);
    st.pacing_rate = s.pacing_rate;
    st.cwnd = s.cwnd;
    st.bytes_in_flight = s.bytes_in_flight;
    st.bottleneck_bandwidth = s.bottleneck_bandwidth;
    st.min_rtt = Duration::from_micros(s.min_rtt_us);
    if s.path_estimate.is_some() {
        st.path_estimate = s.path_estimate;
    }
    st.path_hint_outcome = s.path_hint_outcome;
    if s.peer.is_some() {
        st.peer = s.peer;
    }
}

#[cfg(test)]
mod tests {
    use super::discovery::{encode, parse, Limiter, Parsed, Ring, ECHO, PROBE, RING};
    use super::*;

    #[test]
    fn discovery_datagrams_parse_and_nothing_else_does() {
        let nonce = [7u8; 16];
        assert_eq!(
            parse(&encode(&nonce, PROBE)),
            Parsed::Valid { nonce, echo: false }
        );
        assert_eq!(
            parse(&encode(&nonce, ECHO)),
            Parsed::Valid { nonce, echo: true }
        );
        assert_eq!(parse(&encode(&nonce, 3)), Parsed::Invalid);
        let mut wrong_magic = encode(&nonce, PROBE);
        wrong_magic[0] = b'K';
        assert_eq!(parse(&wrong_magic), Parsed::NotDiscovery);
        // One byte more or less: not discovery.
        let mut long = encode(&nonce, PROBE).to_vec();
        long.push(0);
        assert_eq!(parse(&long), Parsed::NotDiscovery);
        assert_eq!(parse(&long[..24]), Parsed::NotDiscovery);
        // A session packet (version byte 1) of the minimum length is never discovery.
        let mut session = vec![0u8; crate::proto::packet::MIN_DATAGRAM_LEN];
        session[0] = crate::proto::packet::VERSION;
        assert_eq!(parse(&session), Parsed::NotDiscovery);
    }

    #[test]
    fn ring_keeps_the_last_64() {
        let mut ring = Ring::new();
        let at = Instant::now();
        for i in 0..(RING as u8 + 10) {
            ring.push(Discovery {
                from: "127.0.0.1:1".parse().unwrap(),
                nonce: [i; 16],
                echo: false,
                at,
            });
        }
        let v = ring.to_vec();
        assert_eq!(v.len(), RING);
        assert_eq!(v[0].nonce, [10; 16]);
        assert_eq!(v[RING - 1].nonce, [RING as u8 + 9; 16]);
    }

    #[test]
    fn echoes_are_limited_to_100_per_second() {
        let mut l = Limiter::new();
        let t0 = Instant::now();
        let allowed = (0..250).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, 100);
        assert!(!l.allow(t0 + Duration::from_millis(999)));
        assert!(l.allow(t0 + Duration::from_secs(1)));
        let allowed = (0..250)
            .filter(|_| l.allow(t0 + Duration::from_millis(1500)))
            .count();
        assert_eq!(allowed, 99);
    }
}

/// `JETSTREAM_TRACE=<file>`: one JSON line per sending session per status interval (100 ms)
/// with the rate controller's view (state, RTTs, bandwidth estimate, pacing rate, window, in
/// flight, losses), appended to that file. For finding where a transfer on a long path loses
/// time (start-up, cruise, the loss-recovery tail); see docs/congestion.md.
mod trace {
    use std::io::Write;
    use std::sync::OnceLock;

    use parking_lot::Mutex;

    use crate::proto::SessionStats;
    use crate::types::{Role, TransferId};

    fn file() -> Option<&'static Mutex<std::fs::File>> {
        static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
        FILE.get_or_init(|| {
            let path = std::env::var_os("JETSTREAM_TRACE").filter(|p| !p.is_empty())?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .map(Mutex::new)
        })
        .as_ref()
    }

    pub(super) fn record(id: TransferId, role: Role, s: &SessionStats) {
        if role != Role::Sender {
            return;
        }
        let Some(f) = file() else { return };
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let line = format!(
            "{{\"t\":{t:.3},\"transferId\":\"{id}\",\"state\":\"{}\",\"srttUs\":{},\
             \"minRttUs\":{},\"btlBw\":{},\"pacing\":{},\"cwnd\":{},\"inFlight\":{},\
             \"inflightCap\":{},\"acked\":{},\"sent\":{},\"retx\":{},\"lostPackets\":{},\
             \"spurious\":{},\"pathHint\":\"{}\"}}",
            s.cc_state,
            s.srtt_us,
            s.min_rtt_us,
            s.bottleneck_bandwidth,
            s.pacing_rate,
            s.cwnd,
            s.bytes_in_flight,
            s.inflight_cap,
            s.bytes_acked,
            s.bytes_sent,
            s.bytes_retransmitted,
            s.packets_lost,
            s.spurious_losses,
            s.path_hint_outcome,
        );
        let _ = writeln!(f.lock(), "{line}");
    }
}
