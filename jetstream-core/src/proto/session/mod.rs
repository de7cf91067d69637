//! One transfer direction's state machine. A [`Session`] is either the sending or the receiving
//! end; both share the [`Common`] part (keys, packet numbers, timers, close handshake).
//!
//! Sessions are driven by [`crate::proto::Endpoint`]; see its documentation for the contract.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::{CloseCode, TransferError};
use crate::proto::crypto::{SessionKeys, TAG_LEN};
use crate::proto::packet::{self, Frame, Header, PacketType, PnForm};
use crate::proto::rangeset::RangeSet;
use crate::proto::timer::{Timer, TimerTable};
use crate::proto::TransportConfig;
use crate::types::{FileIndex, SessionId};

pub(crate) mod receiver;
pub(crate) mod sender;

pub(crate) use receiver::Receiver;
pub(crate) use sender::Sender;

/// Counters of one session, in the reference's vocabulary (`blocksSent`, `bytesSent`, ...).
///
/// A *block* is one DATA frame's payload: at most `blockSize` bytes of one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams received and authenticated.
    pub packets_recv: u64,
    /// Bytes of UDP payload sent.
    pub bytes_sent: u64,
    /// Bytes of UDP payload received.
    pub bytes_recv: u64,
    /// DATA frames sent (first transmissions and retransmissions).
    pub blocks_sent: u64,
    /// DATA frames sent again because they were lost.
    pub blocks_retransmitted: u64,
    /// Payload bytes sent again because they were lost.
    pub bytes_retransmitted: u64,
    /// Sender: bytes of the transfer's byte space acknowledged. Receiver: bytes held.
    pub bytes_acked: u64,
    /// Total bytes of file data in the transfer.
    pub total_bytes: u64,
    /// Packets declared lost by the sender.
    pub packets_lost: u64,
    /// Smoothed RTT in microseconds (sender).
    pub srtt_us: u64,
    /// Current pacing rate in bytes/s (sender).
    pub pacing_rate: u64,
    /// Duplicate or replayed datagrams dropped.
    pub duplicates: u64,
    /// Congestion window, bytes (sender).
    pub cwnd: u64,
    /// Bytes in flight (sender).
    pub bytes_in_flight: u64,
    /// Bottleneck bandwidth estimate, bytes/s (sender).
    pub bottleneck_bandwidth: u64,
    /// Minimum RTT seen, microseconds (sender).
    pub min_rtt_us: u64,
    /// The peer's address (where its last authenticated datagram came from).
    pub peer: Option<std::net::SocketAddr>,
    /// Rate-control state (sender): `Startup`, `Drain`, `ProbeBW` or `ProbeRTT`.
    pub cc_state: &'static str,
    /// In-flight cap set by congestive loss, bytes (sender; 0 when none).
    pub inflight_cap: u64,
    /// Packets declared lost that were acknowledged later (sender): reordering or late ACKs.
    pub spurious_losses: u64,
    /// What the sender measured of the path, once it found the pipe full.
    pub path_estimate: Option<crate::proto::congestion::PathHint>,
    /// The path hint's outcome (sender): see [`Bbr::resume_state`](crate::proto::congestion::Bbr::resume_state).
    pub path_hint_outcome: &'static str,
}

/// Life cycle of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Open,
    /// We sent CLOSE and wait for CLOSE_ACK (retransmitting on the Control timer).
    Closing {
        code: u64,
        reason: String,
        sends: u32,
    },
    /// The exchange is over; answer stray CLOSE/COMPLETE until the Drain timer fires.
    Draining,
    /// Free the session.
    Closed,
}

/// What a session tells its endpoint.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    ManifestReceived,
    FileFinished { file: FileIndex },
    Complete { failed: Vec<(FileIndex, u64)> },
    Failed(TransferError),
}

/// State shared by both roles.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) id: SessionId,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) keys: SessionKeys,
    pub(crate) next_pn: u64,
    pub(crate) timers: TimerTable,
    pub(crate) config: TransportConfig,
    pub(crate) stats: SessionStats,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) events: VecDeque<SessionEvent>,
    /// Packet numbers received from the peer (replay protection), trimmed to recent history.
    pub(crate) pn_seen: RangeSet,
    pub(crate) largest_pn_seen: Option<u64>,
    /// The largest of our packet numbers the peer has acknowledged: from then on the peer can
    /// restore short packet numbers, so ours are sent short.
    pub(crate) largest_pn_acked: Option<u64>,
    /// A CLOSE_ACK / COMPLETE_ACK we owe the peer.
    pub(crate) owe_close_ack: bool,
}

/// File bytes the sender may send before the manifest is acknowledged (its first flight, the
/// size of the initial congestion window). Saves the round trip a transfer would otherwise
/// spend on the manifest.
pub(crate) const EARLY_DATA: u64 = 512 * 1024;
/// With a path hint the first flight is one remembered bandwidth-delay product, up to this; the
/// receiver keeps up to this much file data that arrives before its storage is open (a few
/// milliseconds after the manifest), and leaves the rest unacknowledged, to be sent again.
pub(crate) const EARLY_DATA_MAX: u64 = 32 << 20;

/// How many ranges of received packet numbers are remembered.
pub(crate) const PN_HISTORY_RANGES: usize = 256;

impl Common {
    pub(crate) fn new(
        id: SessionId,
        peer: Option<SocketAddr>,
        keys: SessionKeys,
        first_pn: u64,
        config: TransportConfig,
        now: Instant,
    ) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Idle, now + config.idle_timeout);
        Self {
            id,
            peer,
            keys,
            next_pn: first_pn,
            timers,
            config,
            stats: SessionStats::default(),
            lifecycle: Lifecycle::Open,
            events: VecDeque::new(),
            pn_seen: RangeSet::default(),
            largest_pn_seen: None,
            largest_pn_acked: None,
            owe_close_ack: false,
        }
    }

    /// Authenticates and decrypts a datagram addressed to this session. Returns the full packet
    /// number and the plaintext, or `None` (and counts it) for a forgery, a replay, an ancient
    /// packet or a short packet number that cannot be restored yet.
    pub(crate) fn open<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        datagram: &'a mut [u8],
    ) -> Option<(u64, &'a mut [u8])> {
        let pn = header.full_packet_number(self.largest_pn_seen)?;
        if self.pn_seen.contains(pn) || self.pn_seen.min().is_some_and(|m| pn < m) {
            self.stats.duplicates += 1;
            return None;
        }
        let plain = self
            .keys
            .open_key()
            .open(pn, datagram, header.buffer_len())
            .ok()?;
        self.pn_seen.insert(pn..pn + 1);
        self.pn_seen.pop_front_ranges_beyond(PN_HISTORY_RANGES);
        // Follow the peer to a new address only on a newer authenticated packet (NAT rebinding).
        if self.largest_pn_seen.is_none_or(|l| pn > l) {
            self.largest_pn_seen = Some(pn);
            self.peer = Some(from);
        }
        self.stats.packets_recv += 1;
        self.stats.bytes_recv += (header.buffer_len() + plain.len() + TAG_LEN) as u64;
        if !matches!(self.lifecycle, Lifecycle::Closed) {
            self.timers.set(Timer::Idle, now + self.config.idle_timeout);
        }
        Some((pn, plain))
    }

    /// The header of our next packet. Its packet number is short once the peer has
    /// acknowledged one of ours and fewer than 2^30 packets separate the two (the peer restores
    /// correctly up to 2^31).
    fn next_header(&self) -> Header {
        let short = self
            .largest_pn_acked
            .is_some_and(|a| self.next_pn.saturating_sub(a) < 1 << 30);
        Header {
            packet_type: PacketType::Protected,
            session_id: self.id,
            packet_number: self.next_pn,
            pn_form: if short { PnForm::Short } else { PnForm::Long },
        }
    }

    /// Records that the peer acknowledged our packet `pn`.
    pub(crate) fn on_pn_acked(&mut self, pn: u64) {
        if pn < self.next_pn && self.largest_pn_acked.is_none_or(|a| pn > a) {
            self.largest_pn_acked = Some(pn);
        }
    }

    /// Where frames go in a datagram buffer: `buf[payload_range()]` (header before, tag after).
    /// Valid for the next [`Self::seal`] only (the header's length can change in between).
    pub(crate) fn payload_range(&self, buf_len: usize) -> Option<std::ops::Range<usize>> {
        let max = self.config.max_datagram_size.min(buf_len);
        let start = self.next_header().buffer_len();
        (max >= start + TAG_LEN + 1 + 32).then(|| start..max - TAG_LEN)
    }

    /// Writes the header in front of the `payload_len` bytes of frames already in
    /// `buf[payload_range().start..]` and seals them. Returns the datagram length.
    pub(crate) fn seal(&mut self, buf: &mut [u8], payload_len: usize) -> Option<usize> {
        if payload_len == 0 {
            return None;
        }
        let header = self.next_header();
        header.emit(buf);
        let len = self
            .keys
            .seal_key()
            .seal(self.next_pn, buf, header.buffer_len(), payload_len)
            .ok()?;
        self.next_pn += 1;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        Some(len)
    }

    /// Starts the close handshake for a local reason.
    pub(crate) fn close(&mut self, now: Instant, error: TransferError) {
        if !matches!(self.lifecycle, Lifecycle::Open) {
            return;
        }
        let code = CloseCode::from(&error) as u64;
        let mut reason = error.to_string();
        reason.truncate(200);
        self.lifecycle = Lifecycle::Closing {
            code,
            reason,
            sends: 0,
        };
        self.stop_data_timers();
        self.timers.set(Timer::Control, now);
        self.timers.set(Timer::Drain, now + self.drain_period());
        self.events.push_back(SessionEvent::Failed(error));
    }

    /// The peer closed: acknowledge, report and drain.
    pub(crate) fn on_peer_close(&mut self, now: Instant, code: u64, reason: &str) {
        self.owe_close_ack = true;
        if matches!(self.lifecycle, Lifecycle::Open) {
            self.events
                .push_back(SessionEvent::Failed(TransferError::PeerClosed {
                    code,
                    reason: reason.to_owned(),
                }));
        }
        if !matches!(self.lifecycle, Lifecycle::Closed) {
            self.enter_draining(now);
        }
    }

    pub(crate) fn enter_draining(&mut self, now: Instant) {
        self.lifecycle = Lifecycle::Draining;
        self.stop_data_timers();
        self.timers.stop(Timer::Control);
        self.timers.set(Timer::Drain, now + self.drain_period());
    }

    pub(crate) fn drain_period(&self) -> Duration {
        (self.config.initial_rtt * 3).max(Duration::from_millis(300))
    }

    /// Stops the timers that only matter while data flows.
    fn stop_data_timers(&mut self) {
        for t in [
            Timer::Ack,
            Timer::LossDetection,
            Timer::Pacing,
            Timer::KeepAlive,
        ] {
            self.timers.stop(t);
        }
    }

    /// Handles the timers common to both roles. Returns true if the session should stop
    /// processing this round (closed).
    pub(crate) fn handle_common_timeouts(&mut self, now: Instant) {
        if !matches!(self.lifecycle, Lifecycle::Open) {
            // Only the close handshake's timers matter once closing.
            self.stop_data_timers();
        }
        if self.timers.is_expired(Timer::Control, now)
            && matches!(self.lifecycle, Lifecycle::Draining | Lifecycle::Closed)
        {
            self.timers.stop(Timer::Control);
        }
        if self.timers.is_expired(Timer::Drain, now) {
            self.timers.stop(Timer::Drain);
            self.lifecycle = Lifecycle::Closed;
        }
        if self.timers.is_expired(Timer::Idle, now) {
            self.timers.stop(Timer::Idle);
            if matches!(self.lifecycle, Lifecycle::Open) {
                self.events
                    .push_back(SessionEvent::Failed(TransferError::TimedOut));
            }
            self.lifecycle = Lifecycle::Closed;
        }
    }

    /// Writes a pending CLOSE or CLOSE_ACK. Returns bytes written into the payload.
    pub(crate) fn write_close_frames(&mut self, now: Instant, out: &mut [u8]) -> usize {
        let mut n = 0;
        if self.owe_close_ack {
            if let Some(w) = Frame::CloseAck.encode(&mut out[n..]) {
                n += w;
                self.owe_close_ack = false;
            }
        }
        if let Lifecycle::Closing {
            code,
            reason,
            sends,
        } = &mut self.lifecycle
        {
            if self.timers.is_expired(Timer::Control, now) {
                let frame = Frame::Close(packet::CloseFrame {
                    code: *code,
                    reason,
                });
                if let Some(w) = frame.encode(&mut out[n..]) {
                    n += w;
                    *sends += 1;
                    let backoff =
                        self.config.initial_rtt.max(Duration::from_millis(50)) * (*sends).min(8);
                    self.timers.set(Timer::Control, now + backoff);
                }
            }
        }
        n
    }
}

/// Either end of a transfer.
#[derive(Debug)]
pub(crate) enum Session {
    Sender(Box<Sender>),
    Receiver(Box<Receiver>),
}

impl Session {
    pub(crate) fn common(&self) -> &Common {
        match self {
            Self::Sender(s) => &s.common,
            Self::Receiver(r) => &r.common,
        }
    }

    pub(crate) fn common_mut(&mut self) -> &mut Common {
        match self {
            Self::Sender(s) => &mut s.common,
            Self::Receiver(r) => &mut r.common,
        }
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.common().timers.next()
    }

    pub(crate) fn stats(&self) -> SessionStats {
        match self {
            Self::Sender(s) => s.stats(),
            Self::Receiver(r) => r.stats(),
        }
    }
}
