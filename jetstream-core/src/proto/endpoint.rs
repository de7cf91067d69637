//! Many sessions on one UDP port, demultiplexed by session id.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::session::{Lifecycle, Receiver, Sender, Session, SessionEvent, SessionStats};
use super::Storage;
use crate::error::TransferError;
use crate::failure::FailureReason;
use crate::manifest::Manifest;
use crate::proto::crypto::{Cipher, SessionKeys, SessionSecret};
use crate::proto::packet::Header;
use crate::proto::TransportConfig;
use crate::types::{BitsPerSecond, Digest, FileIndex, Role, SessionId};

/// Local handle of a session inside one [`Endpoint`].
///
/// A handle names one session for good: once that session has closed, a later session that
/// takes the same slot gets another handle, so a handle kept by the caller (in its own maps,
/// or in an event not yet polled) never reaches the new session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle {
    slot: u32,
    generation: u32,
}

/// One or more datagrams of equal size (the last may be shorter) to one destination, laid out
/// back to back at the start of the caller's buffer: ready for one UDP GSO send.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// Total bytes in the buffer.
    pub len: usize,
    /// Size of each datagram but possibly the last.
    pub segment_size: usize,
}

/// What happened, for the driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Receiver: the manifest arrived and was verified. Open storage, then call
    /// [`Endpoint::storage_ready`].
    ManifestReceived(SessionHandle),
    /// Receiver: an entry was verified and moved into place.
    FileFinished(SessionHandle, FileIndex),
    /// The transfer completed. `failed` lists the entries the receiver gave up on, with why
    /// (as the receiver's storage said, or as the sender learnt it from the COMPLETE frame's
    /// codes).
    Complete(SessionHandle, Vec<(FileIndex, FailureReason)>),
    /// The transfer failed.
    Failed(SessionHandle, TransferError),
    /// The session is gone; its handle may be reused.
    Closed(SessionHandle),
}

/// Counters of datagrams dropped before reaching any session. They cost no state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Too short, bad version or unknown packet type.
    pub malformed: u64,
    /// No session with that id.
    pub unknown_session: u64,
    /// Failed authentication, replayed, or not decodable after authentication.
    pub rejected: u64,
}

/// What the endpoint's sessions have carried, closed ones included: monotonic counters for
/// the life of the endpoint (an operator's `*_total` metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Bytes of UDP payload sent.
    pub bytes_sent: u64,
    /// Bytes of UDP payload received and authenticated.
    pub bytes_recv: u64,
    /// Payload bytes sent again because they were lost.
    pub bytes_retransmitted: u64,
}

impl TrafficStats {
    fn add(&mut self, s: &SessionStats) {
        self.bytes_sent += s.bytes_sent;
        self.bytes_recv += s.bytes_recv;
        self.bytes_retransmitted += s.bytes_retransmitted;
    }
}

/// Starting a send.
#[derive(Debug)]
pub struct SendParams {
    /// Wire id of the session (random, agreed with the receiver).
    pub session_id: SessionId,
    /// The receiver's address.
    pub peer: SocketAddr,
    /// Key material shared with the receiver, unique to this session.
    pub secret: SessionSecret,
    /// The AEAD.
    pub cipher: Cipher,
    /// The first packet number (random; see DESIGN.md on nonce safety across restarts).
    pub first_pn: u64,
    /// What to send.
    pub manifest: Arc<Manifest>,
    /// Settings.
    pub config: TransportConfig,
}

/// Expecting a transfer.
#[derive(Debug)]
pub struct ReceiveParams {
    /// Wire id of the session.
    pub session_id: SessionId,
    /// Key material shared with the sender.
    pub secret: SessionSecret,
    /// The AEAD.
    pub cipher: Cipher,
    /// The first packet number of our own packets.
    pub first_pn: u64,
    /// Settings.
    pub config: TransportConfig,
}

/// The protocol endpoint for one UDP socket.
///
/// # Driving contract
///
/// - Feed every received datagram to [`handle_datagram`](Self::handle_datagram), and call
///   [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) has
///   passed. Time must not go backwards.
/// - Push sender data with [`handle_chunk`](Self::handle_chunk) /
///   [`handle_digest`](Self::handle_digest) while [`wants_data`](Self::wants_data) says so.
/// - Then drain, in this order, [`poll_transmit`](Self::poll_transmit) until `None`,
///   [`poll_event`](Self::poll_event) until `None`, and read `poll_timeout` again.
///
/// Datagrams for unknown sessions, forged or replayed ones, create no state and get no reply;
/// they are only counted in [`stats`](Self::stats).
#[derive(Debug, Default)]
pub struct Endpoint {
    sessions: Vec<Option<Session>>,
    /// Per slot of `sessions`: how many sessions it has held (the current one's
    /// [`SessionHandle::generation`]).
    generations: Vec<u32>,
    by_id: HashMap<SessionId, SessionHandle>,
    events: VecDeque<Event>,
    stats: EndpointStats,
    /// Traffic of the sessions already closed.
    closed_traffic: TrafficStats,
    next_rr: usize,
}

impl Endpoint {
    /// An endpoint with no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters of dropped datagrams.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Traffic of every session so far, closed and live.
    pub fn traffic(&self) -> TrafficStats {
        let mut t = self.closed_traffic;
        for s in self.sessions.iter().flatten() {
            t.add(&s.stats());
        }
        t
    }

    fn insert(&mut self, id: SessionId, s: Session) -> Result<SessionHandle, TransferError> {
        if self.by_id.contains_key(&id) {
            return Err(TransferError::Internal("session id already in use"));
        }
        let idx = match self.sessions.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.sessions.push(None);
                self.generations.push(0);
                self.sessions.len() - 1
            }
        };
        self.sessions[idx] = Some(s);
        self.generations[idx] = self.generations[idx].wrapping_add(1);
        let h = self.handle_at(idx);
        self.by_id.insert(id, h);
        Ok(h)
    }

    /// The handle of the session in slot `i`.
    fn handle_at(&self, i: usize) -> SessionHandle {
        SessionHandle {
            slot: i as u32,
            generation: self.generations[i],
        }
    }

    /// The slot of `h`'s session, if that session is still there.
    fn slot(&self, h: SessionHandle) -> Option<usize> {
        let i = h.slot as usize;
        (self.generations.get(i) == Some(&h.generation) && self.sessions[i].is_some()).then_some(i)
    }

    fn session(&self, h: SessionHandle) -> Option<&Session> {
        self.sessions[self.slot(h)?].as_ref()
    }

    /// Starts sending `params.manifest`. The manifest's encoding is sent first.
    ///
    /// # Errors
    /// If the session id is already in use on this endpoint.
    pub fn start_send(
        &mut self,
        now: Instant,
        params: SendParams,
    ) -> Result<SessionHandle, TransferError> {
        let keys = SessionKeys::derive(
            params.cipher,
            &params.secret,
            params.session_id,
            Role::Sender,
        );
        let bytes = Bytes::from(params.manifest.encode());
        let s = Sender::new(
            now,
            params.session_id,
            params.peer,
            keys,
            params.first_pn,
            params.config,
            &params.manifest,
            bytes,
        );
        self.insert(params.session_id, Session::Sender(Box::new(s)))
    }

    /// Registers a transfer we expect to receive. Nothing is accepted from anyone before this.
    ///
    /// # Errors
    /// If the session id is already in use on this endpoint.
    pub fn expect_receive(
        &mut self,
        now: Instant,
        params: ReceiveParams,
    ) -> Result<SessionHandle, TransferError> {
        let keys = SessionKeys::derive(
            params.cipher,
            &params.secret,
            params.session_id,
            Role::Receiver,
        );
        let r = Receiver::new(now, params.session_id, keys, params.first_pn, params.config);
        self.insert(params.session_id, Session::Receiver(Box::new(r)))
    }

    fn session_mut(&mut self, h: SessionHandle) -> Option<&mut Session> {
        let i = self.slot(h)?;
        self.sessions[i].as_mut()
    }

    /// One received datagram (a GRO batch must be split by the caller). Decrypted in place.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        storage: &mut dyn Storage,
    ) {
        let Ok(header) = Header::parse(datagram) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(&h) = self.by_id.get(&header.session_id) else {
            self.stats.unknown_session += 1;
            return;
        };
        let Some(i) = self.slot(h) else {
            return;
        };
        let Some(session) = self.sessions[i].as_mut() else {
            return;
        };
        let Some((pn, plain)) = session.common_mut().open(now, from, &header, datagram) else {
            self.stats.rejected += 1;
            return;
        };
        let res = match session {
            Session::Sender(s) => s.handle_frames(now, plain),
            Session::Receiver(r) => r.handle_frames(
                now,
                pn,
                plain,
                &mut HandleStorage {
                    inner: storage,
                    handle: h,
                },
            ),
        };
        if let Err(e) = res {
            self.stats.rejected += 1;
            session.common_mut().close(now, e);
        }
        self.collect_events(h);
    }

    /// Handles expired timers of every session.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.sessions.len() {
            let Some(s) = self.sessions[i].as_mut() else {
                continue;
            };
            if s.next_timeout().is_some_and(|t| t <= now) {
                match s {
                    Session::Sender(s) => s.handle_timeout(now),
                    Session::Receiver(r) => r.handle_timeout(now),
                }
                self.collect_events(self.handle_at(i));
            }
        }
    }

    /// The earliest timer of any session.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .iter()
            .flatten()
            .filter_map(Session::next_timeout)
            .min()
    }

    /// Fills `buf` with up to `max_segments` datagrams for one destination. Sessions take turns.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        max_segments: usize,
        storage: &dyn Storage,
    ) -> Option<Transmit> {
        let n = self.sessions.len();
        for k in 0..n {
            let i = (self.next_rr + k) % n;
            let Some(s) = self.sessions[i].as_mut() else {
                continue;
            };
            let Some(dest) = s.common().peer else {
                continue;
            };
            let mut len = 0;
            let mut segment = 0;
            let mut count = 0;
            let h = SessionHandle {
                slot: i as u32,
                generation: self.generations[i],
            };
            while count < max_segments.max(1) {
                let room = &mut buf[len..];
                if segment != 0 && room.len() < segment {
                    break;
                }
                let room = if segment != 0 {
                    &mut room[..segment]
                } else {
                    room
                };
                let wrote = match s {
                    Session::Sender(s) => s.poll_transmit(now, room, count == 0),
                    Session::Receiver(r) => r.poll_transmit(now, room, storage.buffered_bytes(h)),
                };
                let Some(w) = wrote else { break };
                if segment == 0 {
                    segment = w;
                }
                len += w;
                count += 1;
                if w < segment {
                    break; // A short datagram ends a GSO batch.
                }
            }
            self.collect_events(h);
            if len > 0 {
                self.next_rr = (i + 1) % n;
                return Some(Transmit {
                    destination: dest,
                    len,
                    segment_size: segment,
                });
            }
        }
        None
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn collect_events(&mut self, h: SessionHandle) {
        let Some(i) = self.slot(h) else {
            return;
        };
        let Some(s) = self.sessions[i].as_mut() else {
            return;
        };
        let common = s.common_mut();
        while let Some(e) = common.events.pop_front() {
            self.events.push_back(match e {
                SessionEvent::ManifestReceived => Event::ManifestReceived(h),
                SessionEvent::FileFinished { file } => Event::FileFinished(h, file),
                SessionEvent::Complete { failed } => Event::Complete(
                    h,
                    failed
                        .into_iter()
                        .map(|(f, code)| (f, FailureReason::from_file_code(code)))
                        .collect(),
                ),
                SessionEvent::Failed(e) => Event::Failed(h, e),
            });
        }
        if common.lifecycle == Lifecycle::Closed {
            let id = common.id;
            if let Some(s) = self.sessions[h.slot as usize].take() {
                self.closed_traffic.add(&s.stats());
            }
            self.by_id.remove(&id);
            self.events.push_back(Event::Closed(h));
        }
    }

    /// Sender: whether the session wants more file data now.
    pub fn wants_data(&self, h: SessionHandle) -> bool {
        match self.session(h) {
            Some(Session::Sender(s)) => s.wants_data(),
            _ => false,
        }
    }

    /// Sender: the next chunk of file data, in manifest order.
    pub fn handle_chunk(&mut self, h: SessionHandle, file: FileIndex, offset: u64, data: Bytes) {
        if let Some(Session::Sender(s)) = self.session_mut(h) {
            s.handle_chunk(file, offset, data);
        }
    }

    /// Sender: a file's digest, after its last chunk.
    pub fn handle_digest(&mut self, h: SessionHandle, file: FileIndex, digest: Digest) {
        if let Some(Session::Sender(s)) = self.session_mut(h) {
            s.handle_digest(file, digest);
        }
    }

    /// Receiver: the manifest received for this session.
    pub fn manifest(&self, h: SessionHandle) -> Option<Arc<Manifest>> {
        match self.session(h) {
            Some(Session::Receiver(r)) => r.manifest().cloned(),
            _ => None,
        }
    }

    /// Receiver: storage is open; `held` and `complete` come from a previous run's journal.
    pub fn storage_ready(
        &mut self,
        now: Instant,
        h: SessionHandle,
        held: &[(FileIndex, Range<u64>)],
        complete: &[FileIndex],
        storage: &mut dyn Storage,
    ) {
        if let Some(Session::Receiver(r)) = self.session_mut(h) {
            r.handle_storage_ready(
                now,
                held,
                complete,
                &mut HandleStorage {
                    inner: storage,
                    handle: h,
                },
            );
        }
        self.collect_events(h);
    }

    /// Receiver: storage finished an entry (`Ok`) or gave up on it, for this reason. The
    /// sender learns the reason through the COMPLETE frame's per-entry code
    /// ([`FailureReason::file_code`]; a reason without one travels as
    /// [`FailureReason::DiskError`]).
    pub fn file_done(
        &mut self,
        now: Instant,
        h: SessionHandle,
        file: FileIndex,
        result: Result<(), FailureReason>,
    ) {
        if let Some(Session::Receiver(r)) = self.session_mut(h) {
            let code = result.err().map(FailureReason::file_code_or_disk_error);
            r.handle_file_done(now, file, code);
        }
        self.collect_events(h);
    }

    /// Ends a session: tells the peer (CLOSE) and reports `Failed(reason)`.
    pub fn close(&mut self, now: Instant, h: SessionHandle, reason: TransferError) {
        if let Some(s) = self.session_mut(h) {
            s.common_mut().close(now, reason);
        }
        self.collect_events(h);
    }

    /// Sender: changes the rate cap of a running transfer.
    pub fn set_max_rate(&mut self, h: SessionHandle, rate: Option<BitsPerSecond>) {
        if let Some(Session::Sender(s)) = self.session_mut(h) {
            s.set_max_rate(rate);
        }
    }

    /// Counters of one session.
    pub fn session_stats(&self, h: SessionHandle) -> Option<SessionStats> {
        self.session(h).map(Session::stats)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.by_id.len()
    }
}

/// Binds a session handle to the storage calls of one receiver.
struct HandleStorage<'a> {
    inner: &'a mut dyn Storage,
    handle: SessionHandle,
}

impl super::SessionStorage for HandleStorage<'_> {
    fn write(&mut self, file: FileIndex, offset: u64, data: &[u8]) {
        self.inner.write(self.handle, file, offset, data);
    }
    fn finish(&mut self, file: FileIndex, digest: Digest) {
        self.inner.finish(self.handle, file, digest);
    }
}
