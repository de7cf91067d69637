//! The event loop. Rules (mio): readiness is a hint, so the socket is read until `WouldBlock`
//! or a per-wakeup budget runs out (then the next poll does not sleep); `WouldBlock` on send
//! keeps the batch for the next writable event; other threads reach the loop only through the
//! command channel plus the waker; `now` is taken once per iteration.
//!
//! The loop and the socket are here; [`transfer`] runs the transfers (file data in and out,
//! statuses, trigger events), [`discovery`] answers reachability probes and [`trace`] writes
//! the optional rate-control trace.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};

use super::socket::UdpSocket;
use super::{Command, Discovery, DiscoveryStats, EngineInfo};
use crate::config::EngineConfig;
use crate::error::{Error, TransferError};
use crate::failure::FailureReason;
use crate::proto::{Endpoint, SessionHandle};
use crate::trigger::{Trigger, TriggerEvent, TriggerQueue};
use crate::types::TransferId;

mod discovery;
mod trace;
mod transfer;

use trace::Trace;
use transfer::{Active, Sinks};

const UDP: Token = Token(0);
const WAKER: Token = Token(1);
/// Datagram reads per loop iteration before other work gets a turn.
const RECV_BUDGET: usize = 64;
/// Size of the receive and send buffers: one GRO/GSO batch.
const BATCH_BUF: usize = 65536;

/// The engine thread's state: the socket, the protocol endpoint and the transfers.
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
    triggers: TriggerQueue,
    trace: Option<Trace>,
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
        let (triggers, trigger_rx) = bounded::<TriggerEvent>(config.trigger_queue);
        std::thread::Builder::new()
            .name("jetstream-trigger".into())
            .spawn(move || {
                for ev in trigger_rx {
                    trigger.on_event(&ev);
                }
            })?;
        let trace = match &config.trace_file {
            Some(path) => Some(
                Trace::open(path)
                    .map_err(|e| Error::Config(format!("trace file {}: {e}", path.display())))?,
            ),
            None => None,
        };
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
            triggers: TriggerQueue::new(triggers),
            trace,
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
                        let why = FailureReason::SourceUnreadable.to_string();
                        self.entry_failed(now, h, file, FailureReason::SourceUnreadable, &why);
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
                        trigger_events_lost: self.triggers.total_lost(),
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
