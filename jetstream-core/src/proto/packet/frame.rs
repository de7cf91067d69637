//! Frames: the plaintext units carried, concatenated, inside a protected datagram.

use std::fmt;

use super::ack::AckFrame;
use super::varint::{varint_len, Reader, Writer, COUNT_LEN, COUNT_MAX, VARINT_MAX};
use super::DecodeError;
use crate::types::{Digest, FileIndex};

/// Frame type bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FrameType {
    Padding = 0x00,
    Ping = 0x01,
    Hello = 0x02,
    Ack = 0x04,
    Complete = 0x05,
    CompleteAck = 0x06,
    Close = 0x07,
    CloseAck = 0x08,
    /// `0x10..=0x1f`: DATA; the low four bits are flags (see [`DataFrame`]).
    Data = 0x10,
}

/// DATA type flag: the frame runs to the end of the packet and has no length field.
const DATA_TO_END: u8 = 0x08;

/// Longest CLOSE reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// Upper bound on the length of a DATA frame header (type, file, offset, length) as written by
/// [`encode_data_header`]: 1 + 8 (file varint) + 8 (offset) + 2 (length ≤ [`MAX_DATA_LEN`]).
pub const DATA_HEADER_MAX_LEN: usize = 1 + 8 + 8 + 2;

/// Largest payload [`encode_data_header`] accepts: the largest value of a two-byte varint, far
/// above what fits in one datagram.
pub const MAX_DATA_LEN: usize = (1 << 14) - 1;

/// One decoded frame, borrowing from the datagram it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// `0x00`: zero bytes filling the rest of the payload. `len` counts the type byte, so it is
    /// at least 1.
    Padding {
        /// Bytes of padding, type byte included.
        len: usize,
    },
    /// `0x01`: elicits an ACK; carries nothing.
    Ping,
    /// `0x02`: the sender's opening frame.
    Hello(HelloFrame),
    /// `0x10..=0x1f`: a piece of a file (or of the manifest / digest table).
    Data(DataFrame<'a>),
    /// `0x04`: the receiver's acknowledgement of packet numbers and bytes.
    Ack(AckFrame<'a>),
    /// `0x05`: the receiver has every entry durable and verified except the listed failures.
    Complete(CompleteFrame<'a>),
    /// `0x06`: the sender's acknowledgement of COMPLETE.
    CompleteAck,
    /// `0x07`: either side ends the session.
    Close(CloseFrame<'a>),
    /// `0x08`: acknowledgement of CLOSE.
    CloseAck,
}

/// The sender's opening frame: what the transfer contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloFrame {
    /// Length of the encoded manifest ([`FileIndex::MANIFEST`]) in bytes.
    pub manifest_len: u64,
    /// Total bytes of all files.
    pub data_len: u64,
    /// Number of manifest entries.
    pub entry_count: u64,
    /// BLAKE3 digest of the encoded manifest.
    pub manifest_digest: Digest,
}

/// A piece of a file.
///
/// ```text
/// DATA = type 0b0001_EOOO | file varint | offset (OOO + 1 bytes, BE) | [length varint] | bytes
/// ```
///
/// `E` set: the frame runs to the end of the packet and has no length field (the common case:
/// one DATA frame filling a full-size datagram). The offset takes the fewest bytes that hold it
/// (4 for any offset below 4 GiB, 5 below 1 TiB), so a full datagram's DATA header is 6 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFrame<'a> {
    /// Which manifest entry (or metadata stream) the bytes belong to.
    pub file: FileIndex,
    /// Offset of the first payload byte within that entry.
    pub offset: u64,
    /// The bytes.
    pub payload: &'a [u8],
    /// The frame is the packet's last and is written without a length field.
    pub to_end: bool,
}

/// A validated COMPLETE frame, borrowing its failure list from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompleteFrame<'a> {
    count: u16,
    raw: &'a [u8],
}

/// A CLOSE frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// Why the session ends (an application-level code).
    pub code: u64,
    /// Human-readable detail, at most [`MAX_REASON_LEN`] bytes.
    pub reason: &'a str,
}

impl Frame<'_> {
    /// Encoded length of the frame, type byte included.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Padding { len } => *len,
            Self::Ping | Self::CompleteAck | Self::CloseAck => 1,
            Self::Hello(h) => {
                1 + varint_len(h.manifest_len)
                    + varint_len(h.data_len)
                    + varint_len(h.entry_count)
                    + 32
            }
            Self::Data(d) => {
                data_header_len(d.file, d.offset, d.payload.len(), d.to_end) + d.payload.len()
            }
            Self::Ack(a) => a.buffer_len(),
            Self::Complete(c) => 1 + COUNT_LEN + c.raw.len(),
            Self::Close(c) => {
                1 + varint_len(c.code) + varint_len(c.reason.len() as u64) + c.reason.len()
            }
        }
    }

    /// Writes the frame at the start of `buf` and returns its length, or `None` if it does not
    /// fit or cannot be encoded (a varint field above 2^62 - 1, a CLOSE reason longer than
    /// [`MAX_REASON_LEN`], a zero-length padding).
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < self.buffer_len() {
            return None;
        }
        if let Self::Padding { len } = self {
            if *len == 0 {
                return None;
            }
            let (ty, rest) = buf.get_mut(..*len)?.split_first_mut()?;
            *ty = FrameType::Padding as u8;
            rest.fill(0);
            return Some(*len);
        }
        let mut w = Writer::new(buf);
        match self {
            // Handled above.
            Self::Padding { .. } => return None,
            Self::Ping => w.u8(FrameType::Ping as u8)?,
            Self::CompleteAck => w.u8(FrameType::CompleteAck as u8)?,
            Self::CloseAck => w.u8(FrameType::CloseAck as u8)?,
            Self::Hello(h) => {
                w.u8(FrameType::Hello as u8)?;
                w.varint(h.manifest_len)?;
                w.varint(h.data_len)?;
                w.varint(h.entry_count)?;
                w.slice(&h.manifest_digest.0)?;
            }
            Self::Data(d) => {
                if d.payload.len() > MAX_DATA_LEN && !d.to_end {
                    return None;
                }
                write_data_header(&mut w, d.file, d.offset, d.payload.len(), d.to_end)?;
                w.slice(d.payload)?;
            }
            Self::Ack(a) => a.encode(&mut w)?,
            Self::Complete(c) => {
                w.u8(FrameType::Complete as u8)?;
                w.count(c.count)?;
                w.slice(c.raw)?;
            }
            Self::Close(c) => {
                if c.reason.len() > MAX_REASON_LEN {
                    return None;
                }
                w.u8(FrameType::Close as u8)?;
                w.varint(c.code)?;
                w.varint(c.reason.len() as u64)?;
                w.slice(c.reason.as_bytes())?;
            }
        }
        Some(w.pos())
    }
}

impl<'a> Frame<'a> {
    /// Parses one frame from the front of `r`.
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let ty = r.u8()?;
        Ok(match ty {
            0x00 => {
                let rest = r.rest();
                if rest.iter().any(|&b| b != 0) {
                    return Err(DecodeError::BadPadding);
                }
                Self::Padding {
                    len: 1 + rest.len(),
                }
            }
            0x01 => Self::Ping,
            0x02 => Self::Hello(HelloFrame {
                manifest_len: r.varint()?,
                data_len: r.varint()?,
                entry_count: r.varint()?,
                manifest_digest: Digest(r.array32()?),
            }),
            0x10..=0x1f => {
                let file = u32::try_from(r.varint()?).map_err(|_| DecodeError::BadLength)?;
                let n = usize::from(ty & 0x07) + 1;
                let bytes = r.bytes(n)?;
                if n > 1 && bytes[0] == 0 {
                    // Not the shortest form: re-encoding would differ.
                    return Err(DecodeError::BadVarint);
                }
                let offset = bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
                let to_end = ty & DATA_TO_END != 0;
                let payload = if to_end {
                    r.rest()
                } else {
                    let len = r.varint()?;
                    if len > MAX_DATA_LEN as u64 {
                        return Err(DecodeError::BadLength);
                    }
                    // `len <= MAX_DATA_LEN`, so the cast is lossless.
                    r.bytes(len as usize)?
                };
                Self::Data(DataFrame {
                    file: FileIndex(file),
                    offset,
                    payload,
                    to_end,
                })
            }
            0x04 => Self::Ack(AckFrame::parse(r)?),
            0x05 => Self::Complete(CompleteFrame::parse(r)?),
            0x06 => Self::CompleteAck,
            0x07 => {
                let code = r.varint()?;
                let len = r.varint()?;
                if len > MAX_REASON_LEN as u64 {
                    return Err(DecodeError::BadLength);
                }
                // `len <= MAX_REASON_LEN`, so the cast is lossless.
                let bytes = r.bytes(len as usize)?;
                let reason = std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8)?;
                Self::Close(CloseFrame { code, reason })
            }
            0x08 => Self::CloseAck,
            _ => return Err(DecodeError::UnknownFrame),
        })
    }
}

impl<'a> CompleteFrame<'a> {
    /// Number of failed entries listed.
    pub fn failure_count(&self) -> usize {
        usize::from(self.count)
    }

    /// The failed entries and their failure codes. Validated at parse time, so it cannot fail.
    pub fn failures(&self) -> impl Iterator<Item = (FileIndex, u64)> + 'a {
        let mut r = Reader::new(self.raw);
        (0..self.count).map_while(move |_| Some((FileIndex(r.u32().ok()?), r.varint().ok()?)))
    }

    fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let count = r.count()?;
        let start = r.pos();
        for _ in 0..count {
            r.u32()?;
            r.varint()?;
        }
        Ok(Self {
            count,
            raw: r.since(start),
        })
    }
}

/// Encodes a COMPLETE frame listing as many of `failures` as fit in `buf` (at most 16383), and
/// returns `(bytes written, failures written)`; `(0, 0)` if not even an empty list fits.
///
/// Truncation changes the meaning (an unlisted entry reads as a success), so the caller must
/// compare the second value with the number of failures it meant to send. Codes above 2^62 - 1
/// saturate.
pub fn encode_complete(
    buf: &mut [u8],
    failures: impl Iterator<Item = (FileIndex, u64)>,
) -> (usize, usize) {
    let mut w = Writer::new(buf);
    if w.remaining() < 1 + COUNT_LEN {
        return (0, 0);
    }
    let mut count: u16 = 0;
    // The remaining-space check above guarantees these two writes succeed.
    if w.u8(FrameType::Complete as u8)
        .and_then(|()| w.count(0))
        .is_none()
    {
        return (0, 0);
    }
    for (file, code) in failures {
        let code = code.min(VARINT_MAX);
        if count == COUNT_MAX || w.remaining() < 4 + varint_len(code) {
            break;
        }
        if w.u32(file.0).and_then(|()| w.varint(code)).is_none() {
            break;
        }
        count += 1;
    }
    if w.patch_count(1, count).is_none() {
        return (0, 0);
    }
    (w.pos(), usize::from(count))
}

/// Bytes of the shortest big-endian form of `offset` (at least 1).
fn offset_len(offset: u64) -> usize {
    (8 - offset.leading_zeros() as usize / 8).max(1)
}

/// Length of the DATA frame header (type byte, file, offset and, unless `to_end`, length) for
/// this frame.
pub fn data_header_len(file: FileIndex, offset: u64, len: usize, to_end: bool) -> usize {
    let len_field = if to_end { 0 } else { varint_len(len as u64) };
    1 + varint_len(u64::from(file.0)) + offset_len(offset) + len_field
}

fn write_data_header(
    w: &mut Writer<'_>,
    file: FileIndex,
    offset: u64,
    len: usize,
    to_end: bool,
) -> Option<()> {
    let n = offset_len(offset);
    let flags = if to_end { DATA_TO_END } else { 0 };
    // `n` is 1..=8, so `n - 1` fits the three offset-length bits.
    w.u8(FrameType::Data as u8 | flags | (n - 1) as u8)?;
    w.varint(u64::from(file.0))?;
    w.slice(&offset.to_be_bytes()[8 - n..])?;
    if !to_end {
        w.varint(len as u64)?;
    }
    Some(())
}

/// Writes a DATA frame header for a payload of `len` bytes at `offset` of `file`, and returns its
/// length; the caller copies the payload (exactly `len` bytes) right after it, with no
/// intermediate copy. With `to_end` the frame has no length field, so the caller must end the
/// packet right after the payload.
///
/// Returns 0 if `buf` is shorter than the header or `len` exceeds [`MAX_DATA_LEN`]. Within those
/// limits the header is at most [`DATA_HEADER_MAX_LEN`] bytes.
pub fn encode_data_header(
    buf: &mut [u8],
    file: FileIndex,
    offset: u64,
    len: usize,
    to_end: bool,
) -> usize {
    if len > MAX_DATA_LEN {
        return 0;
    }
    let mut w = Writer::new(buf);
    match write_data_header(&mut w, file, offset, len, to_end) {
        Some(()) => w.pos(),
        None => 0,
    }
}

/// Iterator over the frames of a decrypted payload; see [`frames`].
#[derive(Clone, Debug)]
pub struct FrameIter<'a> {
    r: Reader<'a>,
    failed: bool,
}

/// Iterates over the frames of a decrypted payload. Yields each frame in order; after the first
/// error it yields that error and then stops, so a caller should drop the whole datagram on
/// error.
///
/// DoS note: work is linear in the payload length.
pub fn frames(payload: &[u8]) -> FrameIter<'_> {
    FrameIter {
        r: Reader::new(payload),
        failed: false,
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.remaining() == 0 {
            return None;
        }
        let res = Frame::parse(&mut self.r);
        self.failed = res.is_err();
        Some(res)
    }
}

impl std::iter::FusedIterator for FrameIter<'_> {}

impl fmt::Display for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Padding { len } => write!(f, "PADDING({len})"),
            Self::Ping => f.write_str("PING"),
            Self::Hello(h) => write!(
                f,
                "HELLO(entries={}, data={}, manifest={})",
                h.entry_count, h.data_len, h.manifest_len
            ),
            Self::Data(d) => write!(
                f,
                "DATA(file={}, offset={}, len={}{})",
                d.file.0,
                d.offset,
                d.payload.len(),
                if d.to_end { ", to end" } else { "" }
            ),
            Self::Ack(a) => write!(
                f,
                "ACK(largest={}, pn_ranges={}, cum={}, data_ranges={}, window={})",
                a.largest_pn(),
                a.pn_range_count(),
                a.data_cum(),
                a.data_range_count(),
                a.window_end()
            ),
            Self::Complete(c) => write!(f, "COMPLETE(failures={})", c.failure_count()),
            Self::CompleteAck => f.write_str("COMPLETE_ACK"),
            Self::Close(c) => write!(f, "CLOSE(code={}, reason={:?})", c.code, c.reason),
            Self::CloseAck => f.write_str("CLOSE_ACK"),
        }
    }
}
