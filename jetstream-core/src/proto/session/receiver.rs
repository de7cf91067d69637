//! The receiving end: reassembles the manifest, hands file data to storage, reports what it
//! holds in periodic aggregate ACKs, and finishes each entry once its bytes and its digest are
//! in.
//!
//! ACKs are deferred: one is sent every `ack_every` packets or `max_ack_delay` after the first
//! unacknowledged packet, whichever comes first, and it carries (a) recent packet-number ranges,
//! from which the sender detects loss and measures RTT and delivery rate, and (b) the held
//! byte ranges from the first missing byte upwards, which is how a resumed transfer learns what
//! the receiver already has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Common, Lifecycle, SessionEvent, SessionStats};
use crate::error::TransferError;
use crate::manifest::Manifest;
use crate::proto::crypto::SessionKeys;
use crate::proto::layout::{Layout, DIGEST_LEN};
use crate::proto::packet::{self, DataFrame, Frame, HelloFrame};
use crate::proto::rangeset::RangeSet;
use crate::proto::timer::Timer;
use crate::proto::SessionStorage;
use crate::proto::TransportConfig;
use crate::types::{Digest, FileIndex, SessionId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryState {
    Pending,
    Finishing,
    Done,
    Failed,
}

/// The receiving end of a transfer.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) common: Common,
    hello: Option<HelloFrame>,
    layout: Layout,
    manifest_buf: Vec<u8>,
    manifest_got: RangeSet,
    manifest: Option<Arc<Manifest>>,
    storage_ready: bool,
    /// Global bytes held (received, resumed, or given up on for a failed entry).
    received: RangeSet,
    digests: Vec<u8>,
    entries: Vec<EntryState>,
    settled: usize,
    failed: Vec<(FileIndex, u64)>,
    largest: Option<(u64, Instant)>,
    unacked_packets: u32,
    ack_now: bool,
    window_end: u64,
    complete: bool,
    complete_sends: u32,
    /// File data that arrived before storage was ready (the sender's first flight, see
    /// [`EARLY_DATA`](super::EARLY_DATA) and [`EARLY_DATA_MAX`](super::EARLY_DATA_MAX)): written
    /// when it is.
    early: Vec<(FileIndex, u64, Vec<u8>)>,
    early_bytes: u64,
    /// The packet being handled carried early data that did not fit: it is not acknowledged,
    /// so the sender sends that data again.
    refuse_packet: bool,
}

impl Receiver {
    pub(crate) fn new(
        now: Instant,
        id: SessionId,
        keys: SessionKeys,
        first_pn: u64,
        config: TransportConfig,
    ) -> Self {
        Self {
            common: Common::new(id, None, keys, first_pn, config, now),
            hello: None,
            layout: Layout::manifest_only(0),
            manifest_buf: Vec::new(),
            manifest_got: RangeSet::default(),
            manifest: None,
            storage_ready: false,
            received: RangeSet::default(),
            digests: Vec::new(),
            entries: Vec::new(),
            settled: 0,
            failed: Vec::new(),
            largest: None,
            unacked_packets: 0,
            ack_now: false,
            window_end: 0,
            complete: false,
            complete_sends: 0,
            early: Vec::new(),
            early_bytes: 0,
            refuse_packet: false,
        }
    }

    pub(crate) fn manifest(&self) -> Option<&Arc<Manifest>> {
        self.manifest.as_ref()
    }

    pub(crate) fn stats(&self) -> SessionStats {
        let mut s = self.common.stats;
        s.peer = self.common.peer;
        s.bytes_acked = self.received.covered_len(self.layout.data_range());
        s.total_bytes = self.layout.data_range().end - self.layout.data_range().start;
        s
    }

    /// Called for every authenticated datagram's plaintext.
    pub(crate) fn handle_frames(
        &mut self,
        now: Instant,
        pn: u64,
        payload: &[u8],
        storage: &mut dyn SessionStorage,
    ) -> Result<(), TransferError> {
        let mut ack_eliciting = false;
        self.refuse_packet = false;
        for frame in packet::frames(payload) {
            let frame = frame.map_err(|_| TransferError::ProtocolViolation("undecodable frame"))?;
            match frame {
                Frame::Hello(h) => {
                    ack_eliciting = true;
                    self.on_hello(h)?;
                }
                Frame::Data(d) => {
                    ack_eliciting = true;
                    self.on_data(&d, storage)?;
                }
                Frame::Ping => ack_eliciting = true,
                Frame::Padding { .. } => {}
                Frame::CompleteAck => {
                    if self.complete {
                        self.common.lifecycle = Lifecycle::Closed;
                    }
                }
                Frame::Close(c) => self.common.on_peer_close(now, c.code, c.reason),
                Frame::CloseAck => {
                    if matches!(self.common.lifecycle, Lifecycle::Closing { .. }) {
                        self.common.lifecycle = Lifecycle::Closed;
                    }
                }
                Frame::Ack(_) | Frame::Complete(_) => {
                    return Err(TransferError::ProtocolViolation(
                        "sender sent a receiver frame",
                    ));
                }
            }
        }
        if self.refuse_packet {
            // Forget it was received: it is neither acknowledged nor a replay.
            self.common.pn_seen.remove(pn..pn + 1);
            return Ok(());
        }
        // The ACK lists `Common::pn_seen` (every authenticated packet), so its largest is the
        // largest packet seen, whatever it carried.
        if self.largest.is_none_or(|(l, _)| pn > l) {
            self.largest = Some((pn, now));
        }
        if ack_eliciting && matches!(self.common.lifecycle, Lifecycle::Open) {
            self.unacked_packets += 1;
            if self.unacked_packets >= self.common.config.ack_every {
                self.ack_now = true;
            } else if self.common.timers.get(Timer::Ack).is_none() {
                self.common
                    .timers
                    .set(Timer::Ack, now + self.common.config.max_ack_delay);
            }
        }
        Ok(())
    }

    fn on_hello(&mut self, h: HelloFrame) -> Result<(), TransferError> {
        if let Some(prev) = &self.hello {
            return if *prev == h {
                Ok(())
            } else {
                Err(TransferError::ProtocolViolation("HELLO changed"))
            };
        }
        if h.manifest_len == 0 || h.manifest_len > self.common.config.max_manifest_len {
            return Err(TransferError::BadManifest(format!(
                "manifest of {} bytes is outside the accepted size",
                h.manifest_len
            )));
        }
        self.hello = Some(h);
        self.layout = Layout::manifest_only(h.manifest_len);
        self.manifest_buf = vec![0; h.manifest_len as usize];
        self.ack_now = true;
        Ok(())
    }

    fn on_data(
        &mut self,
        d: &DataFrame<'_>,
        storage: &mut dyn SessionStorage,
    ) -> Result<(), TransferError> {
        let Some(hello) = self.hello else {
            // HELLO travels in the sender's first packets (and every 32nd until acknowledged);
            // this data came before any of them: leave the packet unacknowledged, so it is
            // sent again.
            self.refuse_packet = true;
            return Ok(());
        };
        let len = d.payload.len() as u64;
        if d.file == FileIndex::MANIFEST {
            let end = d
                .offset
                .checked_add(len)
                .filter(|&e| e <= hello.manifest_len);
            let Some(end) = end else {
                return Err(TransferError::ProtocolViolation(
                    "manifest data out of bounds",
                ));
            };
            if self.manifest.is_some() {
                return Ok(());
            }
            self.manifest_buf[d.offset as usize..end as usize].copy_from_slice(d.payload);
            self.manifest_got.insert(d.offset..end);
            if self.manifest_got.contains_range(0..hello.manifest_len) {
                self.on_manifest_complete(hello)?;
            }
            return Ok(());
        }
        if !self.storage_ready {
            // The sender's first flight: file data sent with the manifest, before the sender
            // knows what a previous run left here. Kept until storage is ready; more than a
            // compliant sender sends is refused (the packet goes unacknowledged).
            if self.early_bytes + len <= super::EARLY_DATA_MAX {
                self.early.push((d.file, d.offset, d.payload.to_vec()));
                self.early_bytes += len;
            } else {
                self.refuse_packet = true;
            }
            return Ok(());
        }
        let Some(r) = self.layout.to_global(d.file, d.offset, len) else {
            return Err(TransferError::ProtocolViolation("data out of bounds"));
        };
        if r.is_empty() || self.received.contains_range(r.clone()) {
            self.common.stats.duplicates += u64::from(!r.is_empty());
            return Ok(());
        }
        if d.file == FileIndex::DIGESTS {
            let at = d.offset as usize;
            self.digests[at..at + d.payload.len()].copy_from_slice(d.payload);
        } else {
            let data = self.layout.data_range();
            if r.end > self.window_end.max(data.start) + self.common.config.recv_window {
                return Ok(()); // Far beyond the advertised window: drop, it will come again.
            }
            let file = d.file.0 as usize;
            if self.entries[file] != EntryState::Pending {
                return Ok(());
            }
            storage.write(d.file, d.offset, d.payload);
        }
        self.received.insert(r);
        // Only the entry written to, or the entries whose digest slots arrived, can be done.
        if d.file == FileIndex::DIGESTS {
            let first = d.offset / DIGEST_LEN;
            let last = (d.offset + len).div_ceil(DIGEST_LEN);
            for i in first..last {
                self.try_finish(i as usize, storage);
            }
        } else {
            self.try_finish(d.file.0 as usize, storage);
        }
        Ok(())
    }

    fn on_manifest_complete(&mut self, hello: HelloFrame) -> Result<(), TransferError> {
        if *blake3::hash(&self.manifest_buf).as_bytes() != hello.manifest_digest.0 {
            return Err(TransferError::BadManifest("digest mismatch".into()));
        }
        let manifest = Manifest::decode(&self.manifest_buf)
            .map_err(|e| TransferError::BadManifest(e.to_string()))?;
        if manifest.len() as u64 != hello.entry_count || manifest.total_bytes() != hello.data_len {
            return Err(TransferError::BadManifest("does not match HELLO".into()));
        }
        self.layout = Layout::new(hello.manifest_len, &manifest);
        self.digests = vec![0; manifest.len() * DIGEST_LEN as usize];
        self.entries = vec![EntryState::Pending; manifest.len()];
        self.manifest = Some(Arc::new(manifest));
        self.manifest_buf = Vec::new();
        self.common.events.push_back(SessionEvent::ManifestReceived);
        Ok(())
    }

    /// Storage is open: record what a previous run left durable, then let data flow.
    pub(crate) fn handle_storage_ready(
        &mut self,
        now: Instant,
        held: &[(FileIndex, std::ops::Range<u64>)],
        complete: &[FileIndex],
        storage: &mut dyn SessionStorage,
    ) {
        if self.storage_ready || self.manifest.is_none() {
            return;
        }
        self.storage_ready = true;
        for (file, r) in held {
            if let Some(g) = self
                .layout
                .to_global(*file, r.start, r.end.saturating_sub(r.start))
            {
                self.received.insert(g);
            }
        }
        for &file in complete {
            let i = file.0 as usize;
            if i < self.entries.len() && self.entries[i] == EntryState::Pending {
                self.received.insert(self.layout.file_range(i));
                self.received.insert(self.layout.digest_slot(i));
                self.entries[i] = EntryState::Done;
                self.settled += 1;
            }
        }
        self.received.insert(self.layout.manifest_range());
        self.window_end = self.received.first_missing_from(0) + self.common.config.recv_window;
        self.ack_now = true;
        for (file, offset, bytes) in std::mem::take(&mut self.early) {
            let d = DataFrame {
                file,
                offset,
                payload: &bytes,
                to_end: false,
            };
            if let Err(e) = self.on_data(&d, storage) {
                self.common.close(now, e);
                return;
            }
        }
        self.early_bytes = 0;
        for i in 0..self.entries.len() {
            self.try_finish(i, storage);
        }
        self.check_complete(now);
    }

    /// Hands an entry to storage once its bytes and its digest are here, or as soon as its
    /// digest is [`Digest::SOURCE_FAILED`] (the sender could not read it: the rest of its bytes
    /// will not come, and storage fails the entry).
    fn try_finish(&mut self, i: usize, storage: &mut dyn SessionStorage) {
        if self.entries[i] != EntryState::Pending
            || !self.received.contains_range(self.layout.digest_slot(i))
        {
            return;
        }
        let at = i * DIGEST_LEN as usize;
        let mut d = [0u8; 32];
        d.copy_from_slice(&self.digests[at..at + DIGEST_LEN as usize]);
        if Digest(d) != Digest::SOURCE_FAILED
            && !self.received.contains_range(self.layout.file_range(i))
        {
            return;
        }
        self.entries[i] = EntryState::Finishing;
        storage.finish(FileIndex(i as u32), Digest(d));
    }

    /// Storage finished an entry (`None`) or failed it with this wire code.
    pub(crate) fn handle_file_done(&mut self, now: Instant, file: FileIndex, failed: Option<u64>) {
        let i = file.0 as usize;
        let Some(state) = self.entries.get(i).copied() else {
            return;
        };
        if matches!(state, EntryState::Done | EntryState::Failed) {
            return;
        }
        if let Some(code) = failed {
            self.entries[i] = EntryState::Failed;
            self.failed.push((file, code));
            // Stop the sender from sending (or resending) what we will not write.
            self.received.insert(self.layout.file_range(i));
            self.received.insert(self.layout.digest_slot(i));
        } else {
            self.entries[i] = EntryState::Done;
            self.common
                .events
                .push_back(SessionEvent::FileFinished { file });
        }
        self.settled += 1;
        self.check_complete(now);
    }

    fn check_complete(&mut self, now: Instant) {
        if self.complete || !self.storage_ready || self.settled < self.entries.len() {
            return;
        }
        self.complete = true;
        self.common.events.push_back(SessionEvent::Complete {
            failed: self.failed.clone(),
        });
        self.common.timers.set(Timer::Control, now);
        self.common.timers.set(
            Timer::Drain,
            now + self.common.config.idle_timeout.min(Duration::from_secs(30)),
        );
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.common.handle_common_timeouts(now);
        if self.common.timers.is_expired(Timer::Ack, now) {
            self.common.timers.stop(Timer::Ack);
            self.ack_now = true;
        }
    }

    /// The window the sender may fill: `recv_window` beyond the first missing byte, held back
    /// while storage has more than that buffered (slow disk).
    fn update_window(&mut self, storage_buffered: u64) -> bool {
        let cum = self.received.first_missing_from(0);
        if storage_buffered > self.common.config.recv_window {
            // Re-check soon: the window opens as storage drains.
            return true;
        }
        let w = cum + self.common.config.recv_window;
        if w > self.window_end {
            self.window_end = w;
        }
        false
    }

    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        storage_buffered: u64,
    ) -> Option<usize> {
        let payload = self.common.payload_range(buf.len())?;
        let out = &mut buf[payload];
        let mut n = 0;
        match self.common.lifecycle {
            Lifecycle::Closed => return None,
            Lifecycle::Closing { .. } | Lifecycle::Draining => {
                n += self.common.write_close_frames(now, out);
                return self.common.seal(buf, n);
            }
            Lifecycle::Open => {}
        }
        if self.complete && self.common.timers.is_expired(Timer::Control, now) {
            {
                let (written, _listed) = packet::encode_complete(out, self.failed.iter().copied());
                n += written;
                self.complete_sends += 1;
                let backoff = self
                    .common
                    .config
                    .initial_rtt
                    .max(Duration::from_millis(50))
                    * self.complete_sends.min(16);
                self.common.timers.set(Timer::Control, now + backoff);
            }
        }
        if self.ack_now {
            if let Some((largest, at)) = self.largest {
                let blocked = self.update_window(storage_buffered);
                let cum = self.received.first_missing_from(0);
                let delay = now.saturating_duration_since(at).as_micros() as u64;
                let w = packet::encode_ack(
                    &mut out[n..],
                    largest,
                    delay,
                    self.common.pn_seen.iter().rev(),
                    cum,
                    self.window_end,
                    self.received.iter_from(cum),
                );
                n += w;
                self.ack_now = false;
                self.unacked_packets = 0;
                self.common.timers.stop(Timer::Ack);
                if blocked {
                    self.common
                        .timers
                        .set(Timer::Ack, now + Duration::from_millis(1));
                }
            } else {
                self.ack_now = false;
            }
        }
        if n == 0 {
            return None;
        }
        self.common.seal(buf, n)
    }
}
