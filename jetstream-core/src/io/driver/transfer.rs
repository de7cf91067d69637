//! The driver's side of transfers: starting them, moving file data between the protocol and
//! the reader and sink threads, and turning the protocol's events into statuses and trigger
//! events, with a typed [`FailureReason`] for every failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use super::Driver;
use crate::error::{Error, TransferError};
use crate::failure::{FailedFile, FailureReason};
use crate::fs::identity::FsIdentity;
use crate::fs::reader::{spawn_reader, ReadEvent, ReaderHandle};
use crate::fs::sink::{FileSink, SinkEvent, SinkRoot};
use crate::fs::FsError;
use crate::io::{ReceiveCommand, SendCommand};
use crate::manifest::Manifest;
use crate::proto::{Event, ReceiveParams, SendParams, SessionHandle, Storage};
use crate::transfer::{Shared, TransferState};
use crate::trigger::TriggerEvent;
use crate::types::{Digest, FileIndex, Role, TransferId};

/// A transfer the driver runs.
pub(super) struct Active {
    id: TransferId,
    role: Role,
    shared: Arc<Shared>,
    pub(super) reader: Option<(ReaderHandle, Receiver<ReadEvent>)>,
    root: Option<SinkRoot>,
    /// The user a receive writes as (see [`EngineHandle::receive_as`](super::EngineHandle::receive_as)).
    owner: Option<FsIdentity>,
    manifest: Option<Arc<Manifest>>,
    /// Why entries failed at this end (the precise reason and the words), by index.
    file_errors: HashMap<u32, (FailureReason, String)>,
    started_reported: bool,
}

/// Receiving sessions' sinks, keyed by session.
#[derive(Default)]
pub(super) struct Sinks {
    pub(super) map: HashMap<SessionHandle, FileSink>,
    /// Write errors raised synchronously, reported after the datagram is processed.
    pub(super) errors: Vec<(SessionHandle, FileIndex, FsError)>,
    /// Entries whose sender could not read them, reported likewise.
    pub(super) source_failed: Vec<(SessionHandle, FileIndex)>,
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

impl Driver {
    pub(super) fn start_send(&mut self, now: Instant, c: SendCommand) {
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

    pub(super) fn start_receive(&mut self, now: Instant, c: ReceiveCommand) {
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
    pub(super) fn pump_readers(&mut self) -> bool {
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
                        t.file_errors.entry(file.0).or_insert_with(|| {
                            (error.reason(), format!("cannot read the source: {error}"))
                        });
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

    pub(super) fn pump_sinks(&mut self, now: Instant) {
        // In place and allocation-free unless a file failed (see `pump_readers`).
        let mut failed = Vec::new();
        for (&h, sink) in &mut self.sinks.map {
            while let Some(ev) = sink.poll() {
                match ev {
                    SinkEvent::FileDone {
                        file,
                        result: Ok(()),
                    } => {
                        self.endpoint.file_done(now, h, file, Ok(()));
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

    pub(super) fn file_failed(
        &mut self,
        now: Instant,
        h: SessionHandle,
        file: FileIndex,
        err: &FsError,
    ) {
        self.entry_failed(now, h, file, err.reason(), &err.to_string());
    }

    /// Records why an entry failed here and tells the session (and through it the sender).
    pub(super) fn entry_failed(
        &mut self,
        now: Instant,
        h: SessionHandle,
        file: FileIndex,
        reason: FailureReason,
        why: &str,
    ) {
        if let Some(t) = self.transfers.get_mut(&h) {
            t.file_errors
                .entry(file.0)
                .or_insert_with(|| (reason, why.to_owned()));
        }
        self.endpoint.file_done(now, h, file, Err(reason));
    }

    pub(super) fn handle_events(&mut self, now: Instant) {
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
                            self.triggers.push(TriggerEvent::FileReceived {
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
                                Some((FailureReason::Internal, "session closed".into())),
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

    fn complete(&mut self, h: SessionHandle, failed: &[(FileIndex, FailureReason)]) {
        // A transfer short enough to end before the next status tick started all the same:
        // `TransferStarted` comes before `TransferComplete`, always.
        if let Some(t) = self.transfers.get_mut(&h) {
            if !std::mem::replace(&mut t.started_reported, true) {
                self.triggers.push(TriggerEvent::TransferStarted {
                    transfer_id: t.id,
                    role: t.role,
                });
            }
        }
        let Some(t) = self.transfers.get(&h) else {
            return;
        };
        let mut failed_files = Vec::new();
        let mut files = Vec::new();
        if let Some(m) = &t.manifest {
            for &(f, reason) in failed {
                let path = m
                    .entries()
                    .get(f.0 as usize)
                    .map_or_else(String::new, |e| e.dest_path().to_owned());
                // This end's own record is the more precise (the OS message, the path); the
                // sender has only the receiver's code.
                let (reason, why) = t
                    .file_errors
                    .get(&f.0)
                    .cloned()
                    .unwrap_or_else(|| (reason, refused_by_receiver(reason)));
                failed_files.push(FailedFile::new(path, reason, why));
            }
            // One pass over the failures, not one per entry: a full disk under a tree of many
            // files fails most of them.
            let mut bad = vec![false; m.len()];
            for (f, _) in failed {
                if let Some(b) = bad.get_mut(f.0 as usize) {
                    *b = true;
                }
            }
            for (e, _) in m.entries().iter().zip(&bad).filter(|(_, b)| !**b) {
                let written = t
                    .root
                    .as_ref()
                    .map(|r| r.path().join(e.dest_path()))
                    .unwrap_or_default();
                files.push((e.dest_path().to_owned(), written));
            }
        }
        let (state, failure) = match failed_files.first() {
            None => (TransferState::Complete, None),
            Some(first) => (
                TransferState::Error,
                Some((
                    FailureReason::FilesFailed,
                    format!(
                        "{} of {} entries failed; first: {}",
                        failed_files.len(),
                        files.len() + failed_files.len(),
                        first
                    ),
                )),
            ),
        };
        t.shared.status.lock().failed_files = failed_files.clone();
        self.triggers.push(TriggerEvent::TransferComplete {
            transfer_id: t.id,
            role: t.role,
            files,
            failed: failed_files,
        });
        let t = &self.transfers[&h];
        self.finish_status(t, state, failure);
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
        let (id, role) = (t.id, t.role);
        self.triggers.push(TriggerEvent::TransferFailed {
            transfer_id: id,
            role,
            reason: e.reason(),
            message: e.to_string(),
        });
        let t = &self.transfers[&h];
        self.finish_status(t, state, Some((e.reason(), e.to_string())));
        if let Some(s) = self.sinks.map.remove(&h) {
            s.close(); // Keeps the journal: a later transfer of the same manifest resumes.
        }
    }

    /// Ends a transfer's status, with why unless it completed.
    fn finish_status(
        &self,
        t: &Active,
        state: TransferState,
        failure: Option<(FailureReason, String)>,
    ) {
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
        (st.failure, st.error_message) = failure.unzip();
        st.end_time = Some(SystemTime::now());
        st.ended = Some(Instant::now());
        drop(st);
        t.shared.ended.notify_all();
    }

    pub(super) fn update_statuses(&mut self) {
        self.triggers.report_lost();
        for (h, t) in &mut self.transfers {
            if let Some(s) = self.endpoint.session_stats(*h) {
                if let Some(trace) = &mut self.trace {
                    trace.record(t.id, t.role, &s);
                }
                let mut st = t.shared.status.lock();
                if !st.state.is_final() {
                    apply_stats(&mut st, &s);
                }
                if !t.started_reported && s.packets_recv > 0 {
                    t.started_reported = true;
                    self.triggers.push(TriggerEvent::TransferStarted {
                        transfer_id: t.id,
                        role: t.role,
                    });
                }
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

/// The sender's words for an entry the receiver gave up on (it has only the code).
fn refused_by_receiver(reason: FailureReason) -> String {
    match reason {
        FailureReason::SourceUnreadable => reason.to_string(),
        FailureReason::DiskError => "refused by the receiver: an I/O error on the receiver".into(),
        _ => format!("refused by the receiver: {reason}"),
    }
}
