//! A userspace UDP proxy between a sender and a receiver engine, with switchable faults:
//! blackout (drop everything), duplication, reordering within a window, recording and
//! injecting datagrams, and rebinding the socket it uses towards the receiver (the sender's
//! "address change", like a NAT rebinding).
//!
//! The sender's `Destination` is [`Proxy::addr`]; the proxy forwards what arrives there to the
//! receiver from its *upstream* socket, and what the receiver sends back to that socket to the
//! sender. One thread per direction (one per upstream socket for the way back).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a direction waits for a datagram before releasing what it holds for reordering.
const IDLE_FLUSH: Duration = Duration::from_millis(5);

/// Counters of what the proxy did, both directions together unless named.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyStats {
    /// Datagrams received from the sender.
    pub from_sender: u64,
    /// Datagrams received from the receiver (on the current upstream socket).
    pub from_receiver: u64,
    /// Datagrams dropped by a blackout.
    pub blackholed: u64,
    /// Extra copies sent towards the receiver.
    pub duplicated_to_receiver: u64,
    /// Extra copies sent towards the sender.
    pub duplicated_to_sender: u64,
    /// Datagrams that arrived at an upstream socket after it was replaced (dropped, like a
    /// NAT that forgot the old mapping).
    pub stale: u64,
    /// Datagrams injected towards the receiver.
    pub injected: u64,
}

#[derive(Default)]
struct Counters {
    from_sender: AtomicU64,
    from_receiver: AtomicU64,
    blackholed: AtomicU64,
    duplicated_to_receiver: AtomicU64,
    duplicated_to_sender: AtomicU64,
    stale: AtomicU64,
    injected: AtomicU64,
}

struct Shared {
    receiver: SocketAddr,
    stop: AtomicBool,
    blackout: AtomicBool,
    duplicate: AtomicBool,
    /// Reordering window in datagrams; 0 or 1: off.
    reorder: AtomicUsize,
    record: AtomicBool,
    recorded: Mutex<Vec<Vec<u8>>>,
    /// Where the sender sends from (learned from its first datagram).
    sender: Mutex<Option<SocketAddr>>,
    /// The socket towards the receiver and its generation (bumped by each rebind).
    upstream: Mutex<(Arc<UdpSocket>, u64)>,
    counters: Counters,
}

/// The proxy; dropping it stops its threads.
pub struct Proxy {
    shared: Arc<Shared>,
    front: Arc<UdpSocket>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn bind() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    // Best effort (capped by net.core.rmem_max): fewer drops of bursts at the proxy.
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&addr.into()).unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(IDLE_FLUSH)).unwrap();
    s
}

/// Deterministic shuffling (xorshift, Fisher-Yates).
struct Shuffle(u64);

impl Shuffle {
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            v.swap(i, (self.0 % (i as u64 + 1)) as usize);
        }
    }
}

/// One direction's fault pipeline: duplicate, then hold for reordering, then send.
struct Pipe {
    held: Vec<Vec<u8>>,
    rng: Shuffle,
}

impl Pipe {
    fn new(seed: u64) -> Self {
        Self {
            held: Vec::new(),
            rng: Shuffle(seed | 1),
        }
    }

    /// Takes one datagram; calls `send` for what is released now.
    fn push(&mut self, shared: &Shared, d: &[u8], dup: &AtomicU64, send: &mut dyn FnMut(&[u8])) {
        if shared.blackout.load(Ordering::Relaxed) {
            shared.counters.blackholed.fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .blackholed
                .fetch_add(self.held.len() as u64, Ordering::Relaxed);
            self.held.clear();
            return;
        }
        let copies = if shared.duplicate.load(Ordering::Relaxed) {
            dup.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        let window = shared.reorder.load(Ordering::Relaxed);
        for _ in 0..copies {
            if window > 1 {
                self.held.push(d.to_vec());
            } else {
                send(d);
            }
        }
        if self.held.len() >= window.max(1) {
            self.flush(send);
        }
    }

    /// Releases everything held, shuffled.
    fn flush(&mut self, send: &mut dyn FnMut(&[u8])) {
        self.rng.shuffle(&mut self.held);
        for d in self.held.drain(..) {
            send(&d);
        }
    }
}

impl Proxy {
    /// A proxy in front of `receiver`, with no faults switched on.
    pub fn start(receiver: SocketAddr) -> Self {
        let front = Arc::new(bind());
        let upstream = Arc::new(bind());
        let shared = Arc::new(Shared {
            receiver,
            stop: AtomicBool::new(false),
            blackout: AtomicBool::new(false),
            duplicate: AtomicBool::new(false),
            reorder: AtomicUsize::new(0),
            record: AtomicBool::new(false),
            recorded: Mutex::new(Vec::new()),
            sender: Mutex::new(None),
            upstream: Mutex::new((upstream.clone(), 0)),
            counters: Counters::default(),
        });
        let proxy = Self {
            shared,
            front,
            threads: Mutex::new(Vec::new()),
        };
        proxy.spawn_forward();
        proxy.spawn_back(upstream, 0);
        proxy
    }

    /// Where the sender should send.
    pub fn addr(&self) -> SocketAddr {
        self.front.local_addr().unwrap()
    }

    /// The address the receiver currently sees the sender's datagrams come from.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.shared.upstream.lock().unwrap().0.local_addr().unwrap()
    }

    /// Sender to receiver.
    fn spawn_forward(&self) {
        let shared = self.shared.clone();
        let front = self.front.clone();
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut pipe = Pipe::new(0x5eed_f00d);
            let mut send = |d: &[u8]| {
                let up = shared.upstream.lock().unwrap().0.clone();
                let _ = up.send_to(d, shared.receiver);
            };
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    // Idle (or a transient error): release what is held.
                    pipe.flush(&mut send);
                    continue;
                };
                *shared.sender.lock().unwrap() = Some(from);
                shared.counters.from_sender.fetch_add(1, Ordering::Relaxed);
                if shared.record.load(Ordering::Relaxed) {
                    shared.recorded.lock().unwrap().push(buf[..n].to_vec());
                }
                pipe.push(
                    &shared,
                    &buf[..n],
                    &shared.counters.duplicated_to_receiver,
                    &mut send,
                );
            }
        });
        self.threads.lock().unwrap().push(t);
    }

    /// Receiver to sender, for the upstream socket of generation `generation`.
    fn spawn_back(&self, socket: Arc<UdpSocket>, generation: u64) {
        let shared = self.shared.clone();
        let front = self.front.clone();
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut pipe = Pipe::new(0xbac0_0000 ^ generation);
            let mut send = |d: &[u8]| {
                if let Some(to) = *shared.sender.lock().unwrap() {
                    let _ = front.send_to(d, to);
                }
            };
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok((n, _)) = socket.recv_from(&mut buf) else {
                    pipe.flush(&mut send);
                    continue;
                };
                if shared.upstream.lock().unwrap().1 != generation {
                    shared.counters.stale.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                shared
                    .counters
                    .from_receiver
                    .fetch_add(1, Ordering::Relaxed);
                pipe.push(
                    &shared,
                    &buf[..n],
                    &shared.counters.duplicated_to_sender,
                    &mut send,
                );
            }
        });
        self.threads.lock().unwrap().push(t);
    }

    /// Drop everything, both ways (`true`), or forward again.
    pub fn blackout(&self, on: bool) {
        self.shared.blackout.store(on, Ordering::Relaxed);
    }

    /// Send every datagram twice, both ways.
    pub fn duplicate(&self, on: bool) {
        self.shared.duplicate.store(on, Ordering::Relaxed);
    }

    /// Hold datagrams until `window` are held (or the direction is idle for a few
    /// milliseconds), then release them shuffled; both ways. 0: off.
    pub fn reorder(&self, window: usize) {
        self.shared.reorder.store(window, Ordering::Relaxed);
    }

    /// Record the datagrams the sender sends (as received from it).
    pub fn record(&self, on: bool) {
        self.shared.record.store(on, Ordering::Relaxed);
    }

    /// The datagrams recorded so far; the record is emptied.
    pub fn take_recorded(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.shared.recorded.lock().unwrap())
    }

    /// Sends `datagrams` to the receiver from the current upstream socket, in bursts of 64 with
    /// a 1 ms pause between bursts (so that the receiver's socket buffer is not what drops
    /// them). Returns how many were sent.
    pub fn inject(&self, datagrams: &[Vec<u8>]) -> u64 {
        let up = self.shared.upstream.lock().unwrap().0.clone();
        let mut sent = 0;
        for burst in datagrams.chunks(64) {
            for d in burst {
                if up.send_to(d, self.shared.receiver).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared
            .counters
            .injected
            .fetch_add(sent, Ordering::Relaxed);
        sent
    }

    /// Replaces the upstream socket by a new one (a new source port, as after a NAT
    /// rebinding). Datagrams arriving at the old one are dropped from now on. Returns the new
    /// address.
    pub fn rebind(&self) -> SocketAddr {
        let socket = Arc::new(bind());
        let addr = socket.local_addr().unwrap();
        let generation = {
            let mut up = self.shared.upstream.lock().unwrap();
            let g = up.1 + 1;
            *up = (socket.clone(), g);
            g
        };
        self.spawn_back(socket, generation);
        addr
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            from_sender: get(&c.from_sender),
            from_receiver: get(&c.from_receiver),
            blackholed: get(&c.blackholed),
            duplicated_to_receiver: get(&c.duplicated_to_receiver),
            duplicated_to_sender: get(&c.duplicated_to_sender),
            stale: get(&c.stale),
            injected: get(&c.injected),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}
