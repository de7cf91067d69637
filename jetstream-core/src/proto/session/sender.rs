//! The sending end: paces DATA frames out of the transfer's byte space, learns what arrived
//! from the receiver's aggregate ACKs, and retransmits only what was really lost.
//!
//! Loss detection follows RFC 9002 (packet numbers are never reused, so every RTT sample and
//! every loss is unambiguous): a packet is lost once a later one is acknowledged and either
//! `packet_threshold` newer packets were acknowledged or it is older than 9/8 RTT. A probe
//! (PING) after the probe timeout recovers tail losses. Lost packets' byte ranges, minus
//! whatever has been acknowledged since, are queued for retransmission.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Common, Lifecycle, SessionEvent, SessionStats};
use crate::error::TransferError;
use crate::manifest::Manifest;
use crate::proto::congestion::{Bbr, CongestionConfig, SendSnapshot};
use crate::proto::crypto::SessionKeys;
use crate::proto::layout::Layout;
use crate::proto::pacing::Pacer;
use crate::proto::packet::{self, AckFrame, Frame, HelloFrame};
use crate::proto::rangeset::RangeSet;
use crate::proto::rtt::RttEstimator;
use crate::proto::timer::Timer;
use crate::proto::TransportConfig;
use crate::types::{BitsPerSecond, Digest, FileIndex, SessionId};

/// Byte ranges one datagram carried (adjacent frames coalesce, so small files rarely need more
/// than one).
const MAX_RANGES: usize = 4;

/// Upper bound of the adaptive packet-reordering threshold.
const MAX_PACKET_THRESHOLD: u64 = 1024;

/// Datagrams the pacer must allow before a new send batch starts.
const BURST_DATAGRAMS: u64 = 16;

#[derive(Clone, Debug)]
struct SentPacket {
    time: Instant,
    size: u32,
    ranges: [Range<u64>; MAX_RANGES],
    n_ranges: u8,
    snapshot: SendSnapshot,
}

impl SentPacket {
    fn ranges(&self) -> &[Range<u64>] {
        &self.ranges[..self.n_ranges as usize]
    }
}

/// The second copies of tail retransmissions ([`Sender::next_range`]) stop at this fraction of
/// the transfer's bytes (0.15 %), well inside the bytes-on-the-wire budget of
/// `docs/benchmarks.md` at every loss rate: a copy is worth it only when the tail's
/// retransmissions are all covered, which happens when the file is large next to one
/// bandwidth-delay product times the loss rate.
pub(crate) const TAIL_COPY_BUDGET: f64 = 0.0015;

/// HELLO travels in this many first packets, then in every 32nd until acknowledged.
const HELLO_PACKETS: u64 = 64;

/// Where the range [`Sender::next_range`] picked comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Never sent.
    New,
    /// Declared lost.
    Lost,
    /// The second copy of a retransmission in the tail.
    Copy,
}

/// The sending end of a transfer.
#[derive(Debug)]
pub(crate) struct Sender {
    pub(crate) common: Common,
    layout: Layout,
    hello: HelloFrame,
    hello_acked: bool,
    /// Packets sent with HELLO.
    hello_packets: u64,
    manifest_acked: bool,
    /// File bytes that may go before the manifest is acknowledged: [`EARLY_DATA`](super::EARLY_DATA),
    /// or with a path hint one remembered bandwidth-delay product (up to
    /// [`EARLY_DATA_MAX`](super::EARLY_DATA_MAX)).
    first_flight: u64,
    /// Bytes of the byte space the receiver holds.
    acked: RangeSet,
    /// Bytes available to send that were never sent.
    unsent: RangeSet,
    /// Bytes declared lost, waiting for retransmission.
    lost: RangeSet,
    /// Retransmissions made once all file data had gone out at least once (the tail), to be
    /// sent a second time: see [`Self::next_range`].
    tail_copies: RangeSet,
    /// Bytes queued as tail copies so far, at most [`TAIL_COPY_BUDGET`] of the transfer.
    tail_copy_bytes: u64,
    /// Data we may still need to (re)send, keyed by global start.
    chunks: BTreeMap<u64, Bytes>,
    /// Global end of the file data received from the reader so far.
    read_frontier: u64,
    window_end: u64,
    sent: VecDeque<Option<SentPacket>>,
    sent_base: u64,
    largest_acked: Option<u64>,
    last_ack_eliciting: Option<Instant>,
    bytes_in_flight: u64,
    cc: Bbr,
    rtt: RttEstimator,
    pacer: Pacer,
    pto_count: u32,
    probes: u32,
    owe_complete_ack: bool,
    finished: bool,
    /// Packet numbers recently declared lost; an ACK for one of them means the loss was
    /// spurious (reordering), and the thresholds grow (RFC 9002 §6.1 allows adapting them).
    recently_lost: RangeSet,
    packet_threshold: u64,
    /// Time threshold in eighths of an RTT (9/8 to start, at most 2 RTT).
    time_threshold_eighths: u32,
}

impl Sender {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        now: Instant,
        id: SessionId,
        peer: SocketAddr,
        keys: SessionKeys,
        first_pn: u64,
        config: TransportConfig,
        manifest: &Arc<Manifest>,
        manifest_bytes: Bytes,
    ) -> Self {
        let layout = Layout::new(manifest_bytes.len() as u64, manifest);
        let hello = HelloFrame {
            manifest_len: manifest_bytes.len() as u64,
            data_len: layout.data_range().end - layout.data_range().start,
            entry_count: manifest.len() as u64,
            manifest_digest: Digest(*blake3::hash(&manifest_bytes).as_bytes()),
        };
        // A path hint also gives the RTT to assume before the first sample (loss and probe
        // timers).
        let initial_rtt = config.path_hint.map_or(config.initial_rtt, |h| h.min_rtt);
        let cc_config = CongestionConfig::default()
            .max_rate(config.max_rate)
            .mode(config.rate_mode)
            .initial_rtt(initial_rtt)
            .max_datagram_size(config.max_datagram_size as u64)
            .path_hint(config.path_hint);
        let cc = Bbr::new(cc_config);
        let first_flight = if cc.resume_state().is_empty() {
            super::EARLY_DATA
        } else {
            cc.congestion_window()
                .clamp(super::EARLY_DATA, super::EARLY_DATA_MAX)
        };
        let packet_threshold = config.packet_threshold;
        let rtt = RttEstimator::new(initial_rtt);
        let pacer = Pacer::new(config.max_datagram_size as u64);
        let mut unsent = RangeSet::default();
        unsent.insert(layout.manifest_range());
        let mut chunks = BTreeMap::new();
        let read_frontier = layout.data_range().start;
        let mut common = Common::new(id, Some(peer), keys, first_pn, config, now);
        common.stats.total_bytes = layout.data_range().end - layout.data_range().start;
        chunks.insert(0, manifest_bytes);
        Self {
            common,
            layout,
            hello,
            hello_acked: false,
            hello_packets: 0,
            manifest_acked: false,
            first_flight,
            acked: RangeSet::default(),
            unsent,
            lost: RangeSet::default(),
            tail_copies: RangeSet::default(),
            tail_copy_bytes: 0,
            chunks,
            read_frontier,
            window_end: 0,
            sent: VecDeque::new(),
            sent_base: first_pn,
            largest_acked: None,
            last_ack_eliciting: None,
            bytes_in_flight: 0,
            cc,
            rtt,
            pacer,
            pto_count: 0,
            probes: 0,
            owe_complete_ack: false,
            finished: false,
            recently_lost: RangeSet::default(),
            packet_threshold,
            time_threshold_eighths: 9,
        }
    }

    pub(crate) fn stats(&self) -> SessionStats {
        let mut s = self.common.stats;
        s.peer = self.common.peer;
        s.bytes_acked = self.acked.covered_len(self.layout.data_range());
        s.srtt_us = self.rtt.smoothed().as_micros() as u64;
        s.pacing_rate = self.cc.pacing_rate();
        s.cwnd = self.cc.congestion_window();
        s.bytes_in_flight = self.bytes_in_flight;
        s.bottleneck_bandwidth = self.cc.bottleneck_bandwidth();
        s.min_rtt_us = self.cc.min_rtt().map_or(0, |d| d.as_micros() as u64);
        s.cc_state = self.cc.state_name();
        s.inflight_cap = self.cc.inflight_cap().unwrap_or(0);
        s.path_estimate = self.cc.path_estimate();
        s.path_hint_outcome = self.cc.resume_state();
        s
    }

    /// Whether the reader should hand over more file data now. Bounds sender memory to the
    /// receiver's window plus a little read-ahead.
    pub(crate) fn wants_data(&self) -> bool {
        if self.finished || !matches!(self.common.lifecycle, Lifecycle::Open) {
            return false;
        }
        let floor = self
            .acked
            .first_missing_from(self.layout.data_range().start);
        self.read_frontier < floor + self.common.config.recv_window + (8 << 20)
    }

    /// File data from the reader, in order.
    pub(crate) fn handle_chunk(&mut self, file: FileIndex, offset: u64, data: Bytes) {
        let Some(r) = self.layout.to_global(file, offset, data.len() as u64) else {
            return;
        };
        if r.is_empty() {
            return;
        }
        self.read_frontier = self.read_frontier.max(r.end);
        if self.acked.contains_range(r.clone()) {
            return; // Resumed: the receiver already holds it.
        }
        for gap in self.acked.gaps(r.clone()).collect::<Vec<_>>() {
            self.unsent.insert(gap);
        }
        self.chunks.insert(r.start, data);
    }

    /// A file's digest, computed by the reader once it read the whole file.
    pub(crate) fn handle_digest(&mut self, file: FileIndex, digest: Digest) {
        if file.0 as usize >= self.layout.entry_count() {
            return;
        }
        let slot = self.layout.digest_slot(file.0 as usize);
        self.read_frontier = self
            .read_frontier
            .max(self.layout.file_range(file.0 as usize).end);
        if self.acked.contains_range(slot.clone()) {
            return;
        }
        self.unsent.insert(slot.clone());
        self.chunks
            .insert(slot.start, Bytes::copy_from_slice(&digest.0));
    }

    pub(crate) fn set_max_rate(&mut self, rate: Option<BitsPerSecond>) {
        self.common.config.max_rate = rate;
        self.cc.set_max_rate(rate);
    }

    pub(crate) fn handle_frames(
        &mut self,
        now: Instant,
        payload: &[u8],
    ) -> Result<(), TransferError> {
        for frame in packet::frames(payload) {
            let frame = frame.map_err(|_| TransferError::ProtocolViolation("undecodable frame"))?;
            match frame {
                Frame::Ack(ack) => self.on_ack(now, &ack),
                Frame::Complete(c) => {
                    self.owe_complete_ack = true;
                    if !self.finished && matches!(self.common.lifecycle, Lifecycle::Open) {
                        self.finished = true;
                        // COMPLETE means the receiver holds everything (or gave up on the
                        // listed entries), even if its last ACK has not arrived.
                        self.mark_acked(0..self.layout.total());
                        let failed = c.failures().collect();
                        self.common
                            .events
                            .push_back(SessionEvent::Complete { failed });
                        self.common.enter_draining(now);
                    }
                }
                Frame::Close(c) => self.common.on_peer_close(now, c.code, c.reason),
                Frame::CloseAck => {
                    if matches!(self.common.lifecycle, Lifecycle::Closing { .. }) {
                        self.common.lifecycle = Lifecycle::Closed;
                    }
                }
                Frame::Padding { .. } | Frame::Ping => {}
                Frame::Hello(_) | Frame::Data(_) | Frame::CompleteAck => {
                    return Err(TransferError::ProtocolViolation(
                        "receiver sent a sender frame",
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_ack(&mut self, now: Instant, ack: &AckFrame<'_>) {
        let largest = ack.largest_pn();
        if largest >= self.common.next_pn {
            return; // Acknowledges something never sent: ignore the frame.
        }
        self.common.on_pn_acked(largest);
        self.hello_acked = true;
        let mut rtt_sample = None;
        let end = self.sent_base + self.sent.len() as u64;
        // Consecutive packets carry adjacent data: coalesce before touching the range sets.
        let mut run: Option<Range<u64>> = None;
        for r in ack.pn_ranges() {
            if self.recently_lost.covered_len(r.clone()) > 0 {
                // A packet we called lost arrived after all: reordering, not loss.
                self.common.stats.spurious_losses += self.recently_lost.remove(r.clone());
                self.packet_threshold = (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
                self.time_threshold_eighths = (self.time_threshold_eighths + 2).min(16);
            }
            let lo = r.start.max(self.sent_base);
            let hi = r.end.min(end);
            for pn in lo..hi {
                let idx = (pn - self.sent_base) as usize;
                let Some(p) = self.sent[idx].take() else {
                    continue;
                };
                for range in p.ranges() {
                    match &mut run {
                        Some(cur) if cur.end == range.start => cur.end = range.end,
                        Some(cur) if range.end == cur.start => cur.start = range.start,
                        _ => {
                            if let Some(done) = run.replace(range.clone()) {
                                self.mark_acked(done);
                            }
                        }
                    }
                }
                self.bytes_in_flight -= u64::from(p.size);
                self.cc
                    .on_packet_acked(now, p.time, &p.snapshot, u64::from(p.size));
                if pn == largest {
                    rtt_sample = Some(now.saturating_duration_since(p.time));
                }
            }
        }
        if let Some(done) = run {
            self.mark_acked(done);
        }
        if self.largest_acked.is_none_or(|l| largest > l) {
            self.largest_acked = Some(largest);
            if let Some(sample) = rtt_sample {
                self.rtt
                    .update(sample, Duration::from_micros(ack.ack_delay_us()));
            }
        }
        // The receiver's view of the byte space (resume holdings, and a safety net for
        // acknowledgements that scrolled out of its packet-number history).
        let total = self.layout.total();
        let cum = ack.data_cum().min(total);
        if cum > 0 {
            self.mark_acked(0..cum);
        }
        for r in ack.data_ranges() {
            self.mark_acked(r.start.min(total)..r.end.min(total));
        }
        self.window_end = self.window_end.max(ack.window_end());
        if !self.manifest_acked && self.acked.contains_range(self.layout.manifest_range()) {
            self.manifest_acked = true;
        }
        self.detect_lost(now);
        self.cc.on_ack_end(now, &self.rtt, self.bytes_in_flight);
        self.release_chunks();
        self.pto_count = 0;
        self.set_loss_timer();
    }

    fn mark_acked(&mut self, r: Range<u64>) {
        if r.is_empty() || self.acked.contains_range(r.clone()) {
            return;
        }
        self.acked.insert(r.clone());
        self.lost.remove(r.clone());
        self.tail_copies.remove(r.clone());
        self.unsent.remove(r);
    }

    /// Whether all file data has gone out at least once: what is left is loss recovery.
    fn in_tail(&self) -> bool {
        let data = self.layout.data_range();
        self.unsent
            .iter_from(data.start)
            .next()
            .is_none_or(|r| r.start >= data.end)
    }

    fn detect_lost(&mut self, now: Instant) {
        let Some(largest) = self.largest_acked else {
            return;
        };
        let loss_delay = self.loss_delay();
        let threshold = self.packet_threshold;
        let mut lost_bytes = 0;
        let mut lost_packets = 0;
        let end = (largest.saturating_sub(self.sent_base) as usize).min(self.sent.len());
        for idx in 0..end {
            let pn = self.sent_base + idx as u64;
            let is_lost = match &self.sent[idx] {
                Some(p) => largest - pn >= threshold || p.time + loss_delay <= now,
                None => false,
            };
            if !is_lost {
                continue;
            }
            // Checked just above that the slot is occupied.
            let Some(p) = self.sent[idx].take() else {
                continue;
            };
            self.bytes_in_flight -= u64::from(p.size);
            let ranges = p.ranges();
            if !ranges.is_empty() && ranges.iter().all(|r| self.acked.contains_range(r.clone())) {
                // Its data was reported held through the ACK's byte ranges: delivered.
                continue;
            }
            lost_bytes += u64::from(p.size);
            lost_packets += 1;
            self.recently_lost.insert(pn..pn + 1);
            for r in p.ranges() {
                let gaps: Vec<_> = self.acked.gaps(r.clone()).collect();
                for g in gaps {
                    self.lost.insert(g);
                }
            }
        }
        self.recently_lost.pop_front_ranges_beyond(256);
        while let Some(None) = self.sent.front() {
            self.sent.pop_front();
            self.sent_base += 1;
        }
        if lost_bytes > 0 {
            self.common.stats.packets_lost += lost_packets;
            self.cc
                .on_packets_lost(now, lost_bytes, self.bytes_in_flight);
        }
    }

    fn loss_delay(&self) -> Duration {
        let rtt = self.rtt.smoothed().max(self.rtt.latest());
        (rtt * self.time_threshold_eighths / 8).max(Duration::from_millis(1))
    }

    fn set_loss_timer(&mut self) {
        let loss_delay = self.loss_delay();
        let timers = &mut self.common.timers;
        // Earliest packet below the largest acknowledged that is not yet old enough to be lost.
        if let Some(largest) = self.largest_acked {
            let end = (largest.saturating_sub(self.sent_base) as usize).min(self.sent.len());
            if let Some(p) = self.sent.range(..end).flatten().next() {
                timers.set(Timer::LossDetection, p.time + loss_delay);
                return;
            }
        }
        if self.bytes_in_flight > 0 {
            if let Some(base) = self.last_ack_eliciting {
                let backoff = 2u32.pow(self.pto_count.min(6));
                let pto = self.rtt.pto(self.common.config.max_ack_delay) * backoff;
                timers.set(Timer::LossDetection, base + pto);
            }
        } else {
            timers.stop(Timer::LossDetection);
        }
    }

    fn release_chunks(&mut self) {
        while let Some((&start, data)) = self.chunks.first_key_value() {
            let r = start..start + data.len() as u64;
            if !self.acked.contains_range(r) {
                break;
            }
            self.chunks.pop_first();
        }
        // Digest slots sit far above the data; release them individually.
        let d = self.layout.digest_range();
        let done: Vec<u64> = self
            .chunks
            .range(d.start..)
            .filter(|(s, b)| self.acked.contains_range(**s..**s + b.len() as u64))
            .map(|(s, _)| *s)
            .collect();
        for s in done {
            self.chunks.remove(&s);
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.common.handle_common_timeouts(now);
        if !matches!(self.common.lifecycle, Lifecycle::Open) {
            return;
        }
        if self.common.timers.is_expired(Timer::LossDetection, now) {
            self.common.timers.stop(Timer::LossDetection);
            let before = self.bytes_in_flight;
            self.detect_lost(now);
            if self.bytes_in_flight == before && self.bytes_in_flight > 0 {
                // Probe timeout: nothing was declared lost, so ask for an acknowledgement.
                self.pto_count += 1;
                self.probes = 2;
                // Make sure the probe is ack-eliciting even with nothing new to send.
            }
            self.set_loss_timer();
        }
        if self.common.timers.is_expired(Timer::Pacing, now) {
            self.common.timers.stop(Timer::Pacing);
        }
        if self.common.timers.is_expired(Timer::KeepAlive, now) {
            self.common.timers.stop(Timer::KeepAlive);
            self.probes = self.probes.max(1);
        }
    }

    /// Next range to put on the wire: lost data first, then new data. File data must stay
    /// below the receiver's window; until the manifest is acknowledged (so the receiver has
    /// opened its files and reported what it already holds) only the first
    /// [`EARLY_DATA`](super::EARLY_DATA) bytes of it may go. The manifest and the digests are
    /// tiny and exempt from the window.
    ///
    /// In the tail (all file data sent once), every retransmission is sent twice, the copy
    /// after the other retransmissions: with random loss p, a retransmission is lost again with
    /// probability p and costs another round trip, and the last file is complete only when its
    /// last byte is. Twice, both copies are lost with probability p² (5 % loss: 0.25 %). The
    /// copies cost about p × the last flight (a BDP) once per transfer, and at most
    /// [`TAIL_COPY_BUDGET`] of the transfer's bytes. In simulation (256 MiB, 500 Mbit/s,
    /// 200 ms, 3 %, with a path hint) the transfer took 4.92 s instead of 5.28 s
    /// (`docs/congestion.md`, "The loss-recovery tail").
    fn next_range(&self) -> Option<(Range<u64>, Source)> {
        if let Some(r) = self.lost.iter().next() {
            return Some((r, Source::Lost));
        }
        if let Some(r) = self.tail_copies.iter().next() {
            return Some((r, Source::Copy));
        }
        let data = self.layout.data_range();
        let limit = self.window_end.min(data.end);
        // Ranges coalesce across regions: clip each to the region it starts in.
        let r = self.unsent.iter().next()?;
        if r.start < data.start {
            return Some((r.start..r.end.min(data.start), Source::New)); // Manifest.
        }
        if !self.manifest_acked {
            // The first flight: the start of the file data goes with the manifest instead of a
            // round trip later (the receiver keeps it until its storage is open). On a resume
            // some of it may already be there: at most the first flight sent twice.
            let early_end = data.end.min(data.start + self.first_flight);
            return (r.start < early_end).then(|| (r.start..r.end.min(early_end), Source::New));
        }
        if r.start >= data.end {
            return Some((r, Source::New)); // Digests.
        }
        if r.start < limit {
            return Some((r.start..r.end.min(limit), Source::New));
        }
        // Blocked by the window: digests above may still go.
        self.unsent
            .iter_from(data.end)
            .next()
            .map(|r| (r, Source::New))
    }

    /// Drops `r` from every set of ranges waiting to be sent.
    fn forget_range(&mut self, r: Range<u64>) {
        self.lost.remove(r.clone());
        self.tail_copies.remove(r.clone());
        self.unsent.remove(r);
    }

    /// Builds the next datagram into `buf`. Returns its length.
    ///
    /// `batch_start`: this datagram would open a new GSO batch. A batch only opens once the
    /// pacer allows a burst of [`BURST_DATAGRAMS`] (or its whole capacity, on slow links):
    /// one `sendmsg` then carries many datagrams, which is what makes GSO pay off. The burst is
    /// at most ~23 KB, or 2 ms of the target rate.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        batch_start: bool,
    ) -> Option<usize> {
        let payload = self.common.payload_range(buf.len())?;
        match self.common.lifecycle {
            Lifecycle::Closed => return None,
            Lifecycle::Closing { .. } | Lifecycle::Draining => {
                let out = &mut buf[payload];
                let mut n = 0;
                if self.owe_complete_ack {
                    if let Some(w) = Frame::CompleteAck.encode(out) {
                        n += w;
                        self.owe_complete_ack = false;
                    }
                }
                n += self.common.write_close_frames(now, &mut out[n..]);
                return self.common.seal(buf, n);
            }
            Lifecycle::Open => {}
        }
        let mds = self.common.config.max_datagram_size as u64;
        let probe = self.probes > 0;
        if !probe {
            if self.bytes_in_flight + mds > self.cc.congestion_window() {
                return None;
            }
            let rate = self.cc.pacing_rate();
            let need = if batch_start {
                (BURST_DATAGRAMS * mds)
                    .min(self.pacer.capacity(rate))
                    .max(mds)
            } else {
                mds
            };
            if self.pacer.budget(now, rate) < need {
                if let Some(at) = self.pacer.ready_at(rate, need) {
                    self.common.timers.set(Timer::Pacing, at);
                }
                return None;
            }
        }
        let out = &mut buf[payload];
        let mut n = 0;
        // HELLO goes in the first packets and then in every 32nd until acknowledged: a first
        // flight of one remembered BDP (path memory) is thousands of packets, and HELLO in each
        // cost 1.3 % of a 32 MiB transfer at 500 Mbit/s and 200 ms. Data that reaches the
        // receiver before any HELLO is left unacknowledged and sent again.
        if !self.hello_acked
            && (self.hello_packets < HELLO_PACKETS || self.common.stats.packets_sent % 32 == 0)
        {
            n += Frame::Hello(self.hello).encode(out).unwrap_or(0);
            self.hello_packets += 1;
        }
        let mut ranges: [Range<u64>; MAX_RANGES] = Default::default();
        let mut n_ranges = 0usize;
        while out.len() - n > packet::DATA_HEADER_MAX_LEN {
            let Some((r, source)) = self.next_range() else {
                break;
            };
            let Some((file, offset, region_end)) = self.layout.locate(r.start) else {
                // Cannot happen: ranges come from the layout. Drop it rather than loop.
                self.forget_range(r);
                continue;
            };
            let Some((&cstart, chunk)) = self.chunks.range(..=r.start).next_back() else {
                self.forget_range(r);
                continue;
            };
            let cend = cstart + chunk.len() as u64;
            if r.start >= cend {
                // Data no longer buffered (acknowledged meanwhile): nothing to send.
                self.forget_range(r);
                continue;
            }
            // Fill the datagram exactly (equal sizes keep GSO batches going). A frame that
            // reaches the end of the datagram needs no length field.
            let space = out.len() - n;
            let avail = r.end.min(region_end).min(cend) - r.start;
            let end_hl = packet::data_header_len(file, offset, 0, true) as u64;
            let (len, to_end) = if avail + end_hl >= space as u64 {
                ((space as u64).saturating_sub(end_hl), true)
            } else {
                let hl = packet::data_header_len(file, offset, avail as usize, false) as u64;
                (avail.min((space as u64).saturating_sub(hl)), false)
            };
            let sent = r.start..r.start + len;
            // Coalesce with the previous range when adjacent (consecutive small files).
            let merged = n_ranges > 0 && ranges[n_ranges - 1].end == sent.start;
            if !merged && n_ranges == MAX_RANGES {
                break;
            }
            let at = (r.start - cstart) as usize;
            let h = packet::encode_data_header(&mut out[n..], file, offset, len as usize, to_end);
            out[n + h..n + h + len as usize].copy_from_slice(&chunk[at..at + len as usize]);
            n += h + len as usize;
            if merged {
                ranges[n_ranges - 1].end = sent.end;
            } else {
                ranges[n_ranges] = sent.clone();
                n_ranges += 1;
            }
            self.common.stats.blocks_sent += 1;
            match source {
                Source::New => {
                    self.unsent.remove(sent);
                }
                Source::Lost | Source::Copy => {
                    self.common.stats.blocks_retransmitted += 1;
                    self.common.stats.bytes_retransmitted += len;
                    if source == Source::Lost {
                        self.lost.remove(sent.clone());
                        let budget =
                            (self.common.stats.total_bytes as f64 * TAIL_COPY_BUDGET) as u64;
                        if self.in_tail() && self.tail_copy_bytes + len <= budget {
                            self.tail_copy_bytes += len;
                            self.tail_copies.insert(sent);
                        }
                    } else {
                        self.tail_copies.remove(sent);
                    }
                }
            }
        }
        if n_ranges == 0 {
            // No data: only a probe goes out (with the HELLO if still unacknowledged, else a
            // PING). A HELLO alone is never worth a datagram: it rides on the manifest's DATA,
            // and a lost one is re-sent with the manifest or by the probe timer. (Sending it
            // whenever the window allowed filled the first round trip with thousands of
            // 39-byte datagrams.)
            if !probe {
                self.on_idle(now);
                return None;
            }
            if n == 0 {
                n += Frame::Ping.encode(out).unwrap_or(0);
            }
        }
        self.probes = self.probes.saturating_sub(1);
        let len = self.common.seal(buf, n)?;
        let snapshot = self
            .cc
            .on_packet_sent(now, len as u64, self.bytes_in_flight);
        self.pacer.consume(len as u64);
        self.bytes_in_flight += len as u64;
        self.last_ack_eliciting = Some(now);
        self.sent.push_back(Some(SentPacket {
            time: now,
            size: len as u32,
            ranges,
            n_ranges: n_ranges as u8,
            snapshot,
        }));
        if self.common.timers.get(Timer::LossDetection).is_none() {
            self.set_loss_timer();
        }
        self.common.timers.stop(Timer::KeepAlive);
        Some(len)
    }

    /// Nothing to send although the window and pacer allow it.
    fn on_idle(&mut self, now: Instant) {
        self.cc.on_app_limited(self.bytes_in_flight);
        if self.bytes_in_flight == 0 && self.common.timers.get(Timer::KeepAlive).is_none() {
            self.common
                .timers
                .set(Timer::KeepAlive, now + self.common.config.keep_alive);
        }
    }
}
