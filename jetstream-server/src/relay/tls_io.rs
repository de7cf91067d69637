//! Driving one TLS connection of the relay from a single thread (mio): a rustls connection
//! cannot be split into a reading and a writing half, and a reader blocked on a lock held by a
//! writer blocked on a full socket (at both ends) would deadlock the link. So each connection
//! has one thread that owns it; other threads hand it frames through a bounded channel and a
//! [`mio::Waker`] (see [`LinkSender`]).
//!
//! Two shapes: [`Link`] (the control link: frames both ways, an idle timeout) and [`splice`]
//! (an API client's bytes between a plain TCP socket and a TLS connection).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::{parse_frame, MAX_FRAME};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
const PLAIN: Token = Token(2);

/// Frames a link accepts from other threads before [`LinkSender::try_send`] drops (a datagram
/// dropped here is lost like one dropped by a full socket buffer; the protocol recovers).
const QUEUE: usize = 1024;
/// Frames sent per round of a link's loop before it looks at the peer's side again.
const SEND_BUDGET: usize = 256;
/// Plaintext buffered from the peer before reading pauses (back-pressure to the peer).
const READ_LIMIT: usize = 4 * MAX_FRAME;

/// A TLS connection over a non-blocking socket.
#[derive(Debug)]
pub(crate) struct TlsConn {
    conn: rustls::Connection,
    sock: TcpStream,
    eof: bool,
}

impl TlsConn {
    /// Takes over a connection whose handshake is complete (plaintext already decrypted by
    /// rustls stays in it and is read first).
    ///
    /// # Errors
    /// The socket cannot be made non-blocking.
    pub(crate) fn new(
        conn: impl Into<rustls::Connection>,
        sock: std::net::TcpStream,
    ) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        let mut conn = conn.into();
        // Back-pressure is ours (a frame is queued only once the last one is on the wire);
        // rustls's default limit would cut a large frame short.
        conn.set_buffer_limit(None);
        Ok(Self {
            conn,
            sock: TcpStream::from_std(sock),
            eof: false,
        })
    }

    /// Moves what the socket holds into `out` (plaintext), stopping once `out` holds `limit`
    /// bytes. Returns `true` when the peer has closed and everything it sent is in `out`.
    fn pull(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            loop {
                if out.len() >= limit {
                    return Ok(false);
                }
                match self.conn.reader().read(&mut chunk) {
                    Ok(0) => return Ok(true),
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            if self.eof {
                return Ok(true);
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Send the alert that says why, then give up.
                let _ = self.flush();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// Queues plaintext for the peer (written by [`Self::flush`]).
    fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(data)
    }

    /// Writes what rustls holds for the peer; `true` when nothing is left.
    fn flush(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Hands frames to a [`Link`] from any thread.
#[derive(Debug, Clone)]
pub(crate) struct LinkSender {
    tx: Sender<Vec<u8>>,
    waker: Arc<Waker>,
}

impl LinkSender {
    /// Queues a frame unless the queue is full or the link has ended; `false` if dropped.
    pub(crate) fn try_send(&self, kind: u8, payload: &[u8]) -> bool {
        self.try_send_frame(super::frame(kind, payload))
    }

    /// Queues an encoded frame (see [`super::datagram_frame`]) as [`Self::try_send`] does.
    pub(crate) fn try_send_frame(&self, frame: Vec<u8>) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => self.waker.wake().is_ok(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Queues a frame, waiting up to `timeout` for room; `false` if the link has ended or
    /// stayed full.
    pub(crate) fn send(&self, kind: u8, payload: &[u8], timeout: Duration) -> bool {
        self.tx
            .send_timeout(super::frame(kind, payload), timeout)
            .is_ok()
            && self.waker.wake().is_ok()
    }
}

/// The control link: frames both ways over one TLS connection, driven by [`Link::run`].
#[derive(Debug)]
pub(crate) struct Link {
    tls: TlsConn,
    poll: Poll,
    rx: Receiver<Vec<u8>>,
}

impl Link {
    /// The link and the sender other threads use.
    ///
    /// # Errors
    /// The poller or waker cannot be created.
    pub(crate) fn new(mut tls: TlsConn) -> io::Result<(Self, LinkSender)> {
        let poll = Poll::new()?;
        poll.registry().register(
            &mut tls.sock,
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        Ok((Self { tls, poll, rx }, LinkSender { tx, waker }))
    }

    /// Runs until the peer closes, an error, or `idle` passes without a frame from the peer.
    /// Each frame goes to `on_frame(kind, payload, replies)`; frames it appends to `replies`
    /// (encoded with [`super::frame`]) go back to the peer.
    ///
    /// # Errors
    /// Why the link ended (a clean close by the peer is `UnexpectedEof` too: for the caller,
    /// the link is gone either way).
    pub(crate) fn run(
        mut self,
        idle: Duration,
        mut on_frame: impl FnMut(u8, &[u8], &mut Vec<Vec<u8>>),
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        let mut inbound = Vec::new();
        let mut replies = Vec::new();
        let mut last_frame = Instant::now();
        loop {
            // Make every move that is possible now; readiness is edge-triggered, so stop only
            // when nothing moved (each source is then at `WouldBlock` or deliberately paused).
            loop {
                let mut moved = false;
                let before = inbound.len();
                let closed = self.tls.pull(&mut inbound, READ_LIMIT)?;
                moved |= inbound.len() != before;
                let mut used = 0;
                while let Some((k, payload, n)) = parse_frame(&inbound[used..])? {
                    on_frame(k, payload, &mut replies);
                    used += n;
                    last_frame = Instant::now();
                }
                inbound.drain(..used);
                for r in replies.drain(..) {
                    self.tls.push(&r)?;
                }
                if closed {
                    let _ = self.tls.flush();
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the link",
                    ));
                }
                // A budget, so that a steady stream of outgoing frames cannot starve the
                // peer's frames (its pings keep the link alive).
                let mut flushed = self.tls.flush()?;
                for _ in 0..SEND_BUDGET {
                    if !flushed {
                        break;
                    }
                    let Ok(f) = self.rx.try_recv() else { break };
                    self.tls.push(&f)?;
                    flushed = self.tls.flush()?;
                    moved = true;
                }
                if !moved {
                    break;
                }
            }
            let deadline = last_frame + idle;
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no frame from the peer for {idle:?}"),
                ));
            }
            match self.poll.poll(&mut events, Some(deadline - now)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => other?,
            }
        }
    }
}

/// Copies bytes both ways between `plain` and `tls` until both directions have ended (or an
/// error), passing every byte to `seen` (the relay's `--capture`).
pub(crate) fn splice(
    mut tls: TlsConn,
    plain: std::net::TcpStream,
    seen: &dyn Fn(&[u8]),
) -> io::Result<()> {
    plain.set_nonblocking(true)?;
    let mut plain = TcpStream::from_std(plain);
    let mut poll = Poll::new()?;
    let both = Interest::READABLE | Interest::WRITABLE;
    poll.registry().register(&mut tls.sock, SOCKET, both)?;
    poll.registry().register(&mut plain, PLAIN, both)?;
    let mut events = Events::with_capacity(16);
    let result = splice_loop(&mut tls, &mut plain, &mut poll, &mut events, seen);
    let _ = plain.shutdown(Shutdown::Both);
    let _ = tls.sock.shutdown(Shutdown::Both);
    result
}

fn splice_loop(
    tls: &mut TlsConn,
    plain: &mut TcpStream,
    poll: &mut Poll,
    events: &mut Events,
    seen: &dyn Fn(&[u8]),
) -> io::Result<()> {
    let mut to_plain: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let (mut tls_done, mut plain_done, mut plain_shut) = (false, false, false);
    loop {
        loop {
            let mut moved = false;
            // TLS → plain.
            if !tls_done {
                let before = to_plain.len();
                tls_done = tls.pull(&mut to_plain, READ_LIMIT)?;
                seen(&to_plain[before..]);
                moved |= to_plain.len() != before || tls_done;
            }
            while !to_plain.is_empty() {
                match plain.write(&to_plain) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        to_plain.drain(..n);
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if tls_done && to_plain.is_empty() && !plain_shut {
                let _ = plain.shutdown(Shutdown::Write);
                plain_shut = true;
            }
            // Plain → TLS, one chunk at a time and only while the TLS side keeps up.
            let mut flushed = tls.flush()?;
            while flushed && !plain_done {
                match plain.read(&mut chunk) {
                    Ok(0) => {
                        plain_done = true;
                        tls.conn.send_close_notify();
                    }
                    Ok(n) => {
                        seen(&chunk[..n]);
                        tls.push(&chunk[..n])?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                moved = true;
                flushed = tls.flush()?;
            }
            if tls_done && plain_done && flushed && to_plain.is_empty() {
                return Ok(());
            }
            if !moved {
                break;
            }
        }
        match poll.poll(events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
    }
}
