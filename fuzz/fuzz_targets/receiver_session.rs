//! The receiving side of the sans-IO engine (`proto::Endpoint` with one expected session) fed a
//! sequence of datagrams, time steps and storage callbacks decoded from the input.
//!
//! Built with `--cfg fuzzing`, sessions use `Cipher::Null` (plaintext, all-zero tag), so the
//! fuzzer's frames reach the session state machine. The harness knows a small real manifest
//! (its sizes come from the input) and can send its HELLO, manifest bytes, file bytes and
//! digests, so that the fuzzer gets past the manifest and into data, completion and close.
//!
//! Input: 3 bytes of file sizes, then operations: one opcode byte and its arguments (see
//! `step`). Must never panic. Oracles: storage is only written inside the manifest's files,
//! only finished for real entries; a datagram with an unknown or garbled session id creates no
//! state and is only counted; there is never more than the one session; everything the
//! endpoint transmits parses as a header plus valid frames; events are bounded.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jetstream_core::failure::ALL_REASONS;
use jetstream_core::manifest::{Manifest, ManifestEntry};
use jetstream_core::proto::crypto::{Cipher, SessionSecret, TAG_LEN};
use jetstream_core::proto::packet::{
    self, DataFrame, Frame, Header, HelloFrame, PacketType, PnForm,
};
use jetstream_core::proto::{Endpoint, Event, ReceiveParams, SessionHandle, Storage};
use jetstream_core::{Digest, FileIndex, SessionId, TransportConfig};
use libfuzzer_sys::fuzz_target;

const ID: SessionId = SessionId(0x0123_4567_89ab_cdef);
const MAX_DATAGRAM: usize = packet::MAX_DATAGRAM_LEN;
/// Largest file-data payload the harness puts in one DATA frame (fits one datagram).
const MAX_FRAME_DATA: usize = 1400;

/// Bytes of `file` at `offset` (a fixed pattern, so the harness can resend any range).
fn content(file: u32, offset: u64) -> u8 {
    (offset as u8).wrapping_mul(31).wrapping_add(file as u8)
}

/// Records what the session asks of storage and checks it stays within the manifest.
struct Sink {
    sizes: Vec<u64>,
    finishing: Vec<FileIndex>,
    writes: u64,
}

impl Storage for Sink {
    fn write(&mut self, _: SessionHandle, file: FileIndex, offset: u64, data: &[u8]) {
        let size = *self
            .sizes
            .get(file.0 as usize)
            .unwrap_or_else(|| panic!("write to a file not in the manifest: {file:?}"));
        let end = offset.checked_add(data.len() as u64).expect("no overflow");
        assert!(
            end <= size,
            "write {offset}..{end} beyond the file's {size} bytes"
        );
        self.writes += 1;
    }
    fn finish(&mut self, _: SessionHandle, file: FileIndex, _: Digest) {
        assert!((file.0 as usize) < self.sizes.len(), "finish of {file:?}");
        assert!(!self.finishing.contains(&file), "finish twice: {file:?}");
        self.finishing.push(file);
    }
    fn buffered_bytes(&self, _: SessionHandle) -> u64 {
        0
    }
}

struct Harness<'a> {
    input: &'a [u8],
    ep: Endpoint,
    sink: Sink,
    now: Instant,
    pn: u64,
    manifest_bytes: Vec<u8>,
    hello: HelloFrame,
    handle: SessionHandle,
    manifest_received: bool,
    closed: bool,
    from: SocketAddr,
}

impl Harness<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.input.split_first() else {
            return 0;
        };
        self.input = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.input.len());
        let (a, rest) = self.input.split_at(n);
        self.input = rest;
        a
    }

    /// Seals `payload` (plaintext frames) as a datagram of our session and delivers it.
    fn deliver(&mut self, payload: &[u8], session: SessionId) {
        // Like the real sender: the packet number in full at first, then its low 32 bits.
        let header = Header {
            packet_type: PacketType::Protected,
            session_id: session,
            packet_number: self.pn,
            pn_form: if self.pn == FIRST_PN { PnForm::Long } else { PnForm::Short },
        };
        let hl = header.buffer_len();
        let mut d = vec![0u8; hl + payload.len() + TAG_LEN];
        header.emit(&mut d);
        self.pn += 1;
        d[hl..hl + payload.len()].copy_from_slice(payload);
        self.raw(&mut d);
    }

    fn raw(&mut self, d: &mut [u8]) {
        let before = self.ep.stats();
        let known = Header::parse(d).is_ok_and(|h| h.session_id == ID) && !self.closed;
        self.ep
            .handle_datagram(self.now, self.from, d, &mut self.sink);
        let after = self.ep.stats();
        if !known {
            // Dropped before any session: only a counter moves.
            assert_eq!(
                after.malformed + after.unknown_session,
                before.malformed + before.unknown_session + 1
            );
        }
    }

    fn frame(&mut self, f: &Frame<'_>) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = f.encode(&mut buf).expect("frame fits a datagram");
        self.deliver(&buf[..n], ID);
    }

    fn data(&mut self, file: FileIndex, offset: u64, payload: &[u8]) {
        self.frame(&Frame::Data(DataFrame {
            file,
            offset,
            payload,
            to_end: false,
        }));
    }

    fn step(&mut self, op: u8) {
        match op % 12 {
            0 => {
                let ms = self.u16();
                self.now += Duration::from_millis(u64::from(ms));
            }
            1 => {
                let h = self.hello;
                self.frame(&Frame::Hello(h));
            }
            2 => {
                let off = usize::from(self.u16()) % (self.manifest_bytes.len() + 1);
                let len = (usize::from(self.byte()) * 8).min(MAX_FRAME_DATA);
                let end = (off + len).min(self.manifest_bytes.len());
                let chunk = self.manifest_bytes[off..end].to_vec();
                self.data(FileIndex::MANIFEST, off as u64, &chunk);
            }
            3 => {
                let n = self.sink.sizes.len() as u32;
                let file = u32::from(self.byte()) % n;
                let size = self.sink.sizes[file as usize];
                let off = u64::from(self.u16()) % (size + 1);
                let len = (u64::from(self.byte()) * 8)
                    .min(MAX_FRAME_DATA as u64)
                    .min(size - off);
                let chunk: Vec<u8> = (off..off + len).map(|o| content(file, o)).collect();
                self.data(FileIndex(file), off, &chunk);
            }
            4 => {
                let n = self.sink.sizes.len() as u64;
                let off = u64::from(self.byte()) % (n * 32 + 1);
                let len = u64::from(self.byte()) % 65;
                let chunk = vec![self.byte(); len as usize];
                self.data(FileIndex::DIGESTS, off, &chunk);
            }
            5 => {
                // Arbitrary plaintext frames in an authentic packet.
                let n = usize::from(self.byte()) * 4;
                let payload = self.bytes(n).to_vec();
                self.deliver(&payload, ID);
            }
            6 => {
                // An arbitrary datagram (any header, any tag).
                let n = usize::from(self.u16()) % (MAX_DATAGRAM + 64);
                let mut d = self.bytes(n).to_vec();
                self.raw(&mut d);
            }
            7 => {
                // A forged session id with valid frames.
                let mut id = [0u8; 8];
                id.iter_mut().for_each(|b| *b = self.byte());
                let forged = SessionId(u64::from_le_bytes(id));
                if forged != ID {
                    let before = self.ep.session_count();
                    self.deliver(&[1], forged);
                    assert_eq!(self.ep.session_count(), before);
                }
            }
            8 => {
                // Replay / reorder: move the packet number back or far ahead.
                let back = u64::from(self.byte());
                self.pn = if back & 1 == 0 {
                    self.pn.saturating_sub(back)
                } else {
                    self.pn + (back << 20)
                };
            }
            9 => {
                if self.manifest_received {
                    let k = usize::from(self.byte()) % 3;
                    let held: Vec<(FileIndex, std::ops::Range<u64>)> = (0..k)
                        .map(|i| {
                            let a = u64::from(self.u16());
                            (FileIndex(i as u32), a..a + u64::from(self.byte()))
                        })
                        .collect();
                    let complete = if self.byte() & 1 == 1 {
                        vec![FileIndex(2)]
                    } else {
                        vec![]
                    };
                    self.ep
                        .storage_ready(self.now, self.handle, &held, &complete, &mut self.sink);
                }
            }
            10 => {
                if let Some(file) = self.sink.finishing.pop() {
                    // Any reason, the ones without a wire code included.
                    let b = usize::from(self.byte());
                    let result = match b % (ALL_REASONS.len() + 1) {
                        0 => Ok(()),
                        i => Err(ALL_REASONS[i - 1]),
                    };
                    self.ep.file_done(self.now, self.handle, file, result);
                }
            }
            _ => {
                let code = u64::from(self.byte());
                self.frame(&Frame::Close(packet::CloseFrame {
                    code,
                    reason: "fuzz",
                }));
            }
        }
        if self.ep.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ep.handle_timeout(self.now);
        }
        self.drain();
    }

    fn drain(&mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM * 4];
        let mut sent = 0;
        while let Some(t) = self.ep.poll_transmit(self.now, &mut buf, 4, &self.sink) {
            assert!(t.len <= buf.len() && t.segment_size > 0);
            for d in buf[..t.len].chunks(t.segment_size) {
                let h = Header::parse(d).expect("we emit valid headers");
                assert_eq!(h.session_id, ID);
                for f in packet::frames(&d[h.buffer_len()..d.len() - TAG_LEN]) {
                    f.expect("we emit valid frames");
                }
            }
            sent += 1;
            assert!(sent < 1000, "poll_transmit never stops");
        }
        let mut events = 0;
        while let Some(e) = self.ep.poll_event() {
            match e {
                Event::ManifestReceived(h) => {
                    assert_eq!(h, self.handle);
                    assert!(!self.manifest_received, "manifest received twice");
                    self.manifest_received = true;
                }
                Event::Closed(_) => self.closed = true,
                _ => {}
            }
            events += 1;
            assert!(events < 1000, "unbounded events");
        }
        assert!(self.ep.session_count() <= 1);
        assert_eq!(self.ep.session_count(), usize::from(!self.closed));
    }
}

/// The harness's first packet number (sent long; the rest short).
const FIRST_PN: u64 = 0;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (sizes, ops) = data.split_at(3);
    let sizes: Vec<u64> = sizes.iter().map(|&s| u64::from(s) * 37).collect();
    let mut entries: Vec<ManifestEntry> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| ManifestEntry::file(&format!("dir/f{i}"), s, 0, false).expect("valid"))
        .collect();
    entries.push(ManifestEntry::empty_dir("empty").expect("valid"));
    let manifest = Manifest::new(entries).expect("valid manifest");
    let manifest_bytes = manifest.encode();
    let hello = HelloFrame {
        manifest_len: manifest_bytes.len() as u64,
        data_len: manifest.total_bytes(),
        entry_count: manifest.len() as u64,
        manifest_digest: manifest.digest(),
    };
    let now = Instant::now();
    let mut ep = Endpoint::new();
    let handle = ep
        .expect_receive(
            now,
            ReceiveParams {
                session_id: ID,
                secret: SessionSecret::from_bytes([7; 32]),
                cipher: Cipher::Null,
                first_pn: 1000,
                config: TransportConfig::default(),
            },
        )
        .expect("fresh endpoint");
    let mut sink_sizes = sizes;
    sink_sizes.push(0);
    let mut h = Harness {
        input: ops,
        ep,
        sink: Sink {
            sizes: sink_sizes,
            finishing: Vec::new(),
            writes: 0,
        },
        now,
        pn: FIRST_PN,
        manifest_bytes,
        hello,
        handle,
        manifest_received: false,
        closed: false,
        from: "192.0.2.1:4000".parse().expect("literal"),
    };
    while !h.input.is_empty() {
        let op = h.byte();
        h.step(op);
    }
    let _ = h.sink.writes;
});
