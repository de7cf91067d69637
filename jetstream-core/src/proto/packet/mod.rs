//! The wire format: datagram header, AEAD protection, and the frames inside.
//!
//! ```text
//! datagram = header (13 or 17 bytes, cleartext, AEAD associated data)
//!         || AEAD(frames)                               (at least 1 byte)
//!         || tag (16 bytes)
//!
//! header   = first byte | session id u64 BE | packet number (u32 or u64 BE)
//! first    = version (high nibble, = 2) | packet type (bits 3..1, 0 = protected)
//!          | long packet number (bit 0)
//! ```
//!
//! A packet number is sent in full (8 bytes, "long") until the peer has acknowledged one of the
//! session's packets; after that only its low 32 bits ("short"), and the receiver restores the
//! rest from the largest packet number it has authenticated, as QUIC does (RFC 9000 §17.1,
//! appendix A.3). The full number is always the AEAD nonce, so a wrong restoration can only fail
//! authentication. Header bytes are the main per-datagram cost at full MTU, so they are kept
//! short: see `docs/DESIGN.md` for the budget.
//!
//! Frames are concatenated inside the plaintext, each starting with a type byte; see [`Frame`].
//! Integers are big-endian or QUIC varints (RFC 9000 §16). Parsing accepts only canonical
//! (shortest) varints and two-byte count fields, so that for every accepted frame re-encoding
//! gives back the exact input bytes; the fuzz target `packet_decode` checks this through
//! [`roundtrip_oracle`].
//!
//! Parsing never allocates and never panics on any input. Frames borrow from the datagram.

use std::fmt;

use crate::proto::crypto::{CryptoError, PacketKey, TAG_LEN};
use crate::types::SessionId;

mod ack;
mod frame;
mod varint;

pub use ack::{encode_ack, AckFrame};
pub(crate) use frame::FrameType;
pub use frame::{
    data_header_len, encode_complete, encode_data_header, frames, CloseFrame, CompleteFrame,
    DataFrame, Frame, FrameIter, HelloFrame, DATA_HEADER_MAX_LEN, MAX_DATA_LEN, MAX_REASON_LEN,
};
pub use varint::VARINT_MAX;

/// Protocol version carried in the high nibble of every header's first byte.
pub const VERSION: u8 = 2;

/// Smallest valid datagram: a short header, one byte of (encrypted) frames, and the tag.
pub const MIN_DATAGRAM_LEN: usize = Header::SHORT_LEN + TAG_LEN + 1;

/// Largest datagram we send: a 1500-byte Ethernet MTU minus IPv4 (20) and UDP (8) headers.
pub const MAX_DATAGRAM_LEN: usize = 1472;

/// Largest frame payload (plaintext) of a [`MAX_DATAGRAM_LEN`] datagram with a short header:
/// 1443 bytes (1439 with a long one).
pub const MAX_PAYLOAD_LEN: usize = MAX_DATAGRAM_LEN - Header::SHORT_LEN - TAG_LEN;

/// The packet type (bits 3..1 of the first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum PacketType {
    /// An AEAD-protected packet carrying frames. The only type of version 2.
    Protected = 0,
}

/// How a header carries its packet number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PnForm {
    /// All 64 bits: always correct, used until the peer has acknowledged a packet.
    Long,
    /// The low 32 bits; the receiver restores the rest with [`decode_packet_number`].
    Short,
}

/// The cleartext datagram header, authenticated as AEAD associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The packet type.
    pub packet_type: PacketType,
    /// The session this datagram belongs to; the receiver demultiplexes on it.
    pub session_id: SessionId,
    /// Packet number: unique per direction of a session, never reused; the full number is the
    /// AEAD nonce. With [`PnForm::Short`] only its low 32 bits are written, and a parsed header
    /// holds just those (restore the rest with [`decode_packet_number`]).
    pub packet_number: u64,
    /// How the packet number is written.
    pub pn_form: PnForm,
}

impl Header {
    /// Encoded length of a header with a short packet number.
    pub const SHORT_LEN: usize = 1 + 8 + 4;
    /// Encoded length of a header with a long packet number.
    pub const LONG_LEN: usize = 1 + 8 + 8;

    /// Parses the header at the start of `buf` (the rest of `buf` is ignored).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if `buf` is shorter than the header,
    /// [`DecodeError::BadVersion`] if the version is not [`VERSION`],
    /// [`DecodeError::UnknownType`] for any packet type but [`PacketType::Protected`].
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let Some(&first) = buf.first() else {
            return Err(DecodeError::Truncated);
        };
        if first >> 4 != VERSION {
            return Err(DecodeError::BadVersion);
        }
        let packet_type = match (first >> 1) & 0x7 {
            0 => PacketType::Protected,
            _ => return Err(DecodeError::UnknownType),
        };
        let pn_form = if first & 1 == 1 {
            PnForm::Long
        } else {
            PnForm::Short
        };
        let len = match pn_form {
            PnForm::Long => Self::LONG_LEN,
            PnForm::Short => Self::SHORT_LEN,
        };
        let Some(b) = buf.get(..len) else {
            return Err(DecodeError::Truncated);
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[1..9]);
        let packet_number = match pn_form {
            PnForm::Long => {
                let mut pn = [0u8; 8];
                pn.copy_from_slice(&b[9..17]);
                u64::from_be_bytes(pn)
            }
            PnForm::Short => {
                let mut pn = [0u8; 4];
                pn.copy_from_slice(&b[9..13]);
                u64::from(u32::from_be_bytes(pn))
            }
        };
        Ok(Self {
            packet_type,
            session_id: SessionId(u64::from_be_bytes(id)),
            packet_number,
            pn_form,
        })
    }

    /// Writes the header into the first [`Header::buffer_len`] bytes of `buf`; a short form writes the
    /// low 32 bits of the packet number.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than the header (a local buffer-sizing bug, never peer input).
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        b[0] =
            VERSION << 4 | (self.packet_type as u8) << 1 | u8::from(self.pn_form == PnForm::Long);
        b[1..9].copy_from_slice(&self.session_id.0.to_be_bytes());
        match self.pn_form {
            PnForm::Long => b[9..17].copy_from_slice(&self.packet_number.to_be_bytes()),
            // Truncation is the point of the short form.
            #[allow(clippy::cast_possible_truncation)]
            PnForm::Short => b[9..13].copy_from_slice(&(self.packet_number as u32).to_be_bytes()),
        }
    }

    /// Encoded length of the header: [`Header::SHORT_LEN`] or [`Header::LONG_LEN`].
    pub const fn buffer_len(&self) -> usize {
        match self.pn_form {
            PnForm::Long => Self::LONG_LEN,
            PnForm::Short => Self::SHORT_LEN,
        }
    }

    /// The full packet number: the header's own if long; if short, restored relative to
    /// `largest`, the largest packet number authenticated so far in this direction (`None`
    /// before any: a short header cannot be decoded yet).
    pub fn full_packet_number(&self, largest: Option<u64>) -> Option<u64> {
        match self.pn_form {
            PnForm::Long => Some(self.packet_number),
            PnForm::Short => largest.map(|l| decode_packet_number(l, self.packet_number)),
        }
    }
}

/// Restores a packet number from its low 32 bits: the value closest to `largest + 1` whose low
/// 32 bits are `truncated` (RFC 9000, appendix A.3). Correct as long as the sender keeps fewer
/// than 2^31 packets between the peer's largest acknowledged one and the one it sends.
pub fn decode_packet_number(largest: u64, truncated: u64) -> u64 {
    const WIN: u64 = 1 << 32;
    const HWIN: u64 = WIN / 2;
    const MASK: u64 = WIN - 1;
    let expected = largest.wrapping_add(1);
    let candidate = (expected & !MASK) | (truncated & MASK);
    if candidate.wrapping_add(HWIN) <= expected && candidate < (1 << 62) - WIN {
        candidate + WIN
    } else if candidate > expected.wrapping_add(HWIN) && candidate >= WIN {
        candidate - WIN
    } else {
        candidate
    }
}

/// Why received bytes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// A length field is out of bounds (e.g. a CLOSE reason over [`MAX_REASON_LEN`]).
    BadLength,
    /// A PADDING frame contains a non-zero byte.
    BadPadding,
    /// An ACK or COMPLETE range list is malformed: empty range, zero gap, overflow, missing
    /// packet-number range, or a position beyond 2^62.
    BadRange,
    /// A text field is not valid UTF-8.
    BadUtf8,
    /// A varint is not in its shortest form, or a count field is not two bytes long.
    BadVarint,
    /// A short packet number arrived before any packet it could be restored from.
    BadPacketNumber,
    /// The header's version is not [`VERSION`].
    BadVersion,
    /// The input ends in the middle of a field.
    Truncated,
    /// Unknown frame type byte.
    UnknownFrame,
    /// Unknown packet type byte.
    UnknownType,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadLength => "length field out of bounds",
            Self::BadPadding => "non-zero byte in padding",
            Self::BadRange => "malformed range list",
            Self::BadUtf8 => "text is not valid UTF-8",
            Self::BadVarint => "non-canonical varint",
            Self::BadPacketNumber => "short packet number with no reference",
            Self::BadVersion => "unsupported protocol version",
            Self::Truncated => "truncated input",
            Self::UnknownFrame => "unknown frame type",
            Self::UnknownType => "unknown packet type",
        })
    }
}

impl std::error::Error for DecodeError {}

/// Why a datagram could not be opened or sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// AEAD failure: forged, corrupted, wrong key, or a buffer too small.
    Crypto(CryptoError),
    /// The header is malformed or the datagram too short.
    Decode(DecodeError),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Crypto(e) => write!(f, "packet protection: {e}"),
            Self::Decode(e) => write!(f, "packet decoding: {e}"),
        }
    }
}

impl std::error::Error for PacketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Crypto(e) => Some(e),
            Self::Decode(e) => Some(e),
        }
    }
}

impl From<CryptoError> for PacketError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

impl From<DecodeError> for PacketError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

/// Parses the header of `datagram`, authenticates it and decrypts the payload in place, using the
/// full packet number as the nonce. `largest` is the largest packet number authenticated so far
/// in this direction (needed to restore a short one). Returns the header, the full packet number
/// and the plaintext frames (pass them to [`frames`]).
///
/// The caller must still check that the session id is the expected one (it selects `key`) and
/// that the packet number is not a replay.
///
/// # Errors
///
/// [`PacketError::Decode`] for a malformed header, a datagram shorter than
/// [`MIN_DATAGRAM_LEN`], or a short packet number with no `largest` to restore it from;
/// [`PacketError::Crypto`] if authentication fails.
pub fn open_datagram<'a>(
    key: &PacketKey,
    largest: Option<u64>,
    datagram: &'a mut [u8],
) -> Result<(Header, u64, &'a mut [u8]), PacketError> {
    if datagram.len() < MIN_DATAGRAM_LEN {
        return Err(DecodeError::Truncated.into());
    }
    let header = Header::parse(datagram)?;
    let pn = header
        .full_packet_number(largest)
        .ok_or(DecodeError::BadPacketNumber)?;
    let plaintext = key.open(pn, datagram, header.buffer_len())?;
    Ok((header, pn, plaintext))
}

/// Writes `header` into `buf[..header.buffer_len()]` and seals, in place, the `payload_len` bytes of
/// plaintext frames the caller already wrote at `buf[header.buffer_len()..]`, appending the tag. `pn`
/// is the full packet number (the nonce); the header carries it or its low 32 bits. Returns the
/// datagram length, `header.buffer_len() + payload_len + TAG_LEN`.
///
/// # Errors
///
/// [`PacketError::Crypto`] if `buf` cannot hold the header, payload and tag;
/// [`PacketError::Decode`] with [`DecodeError::BadLength`] if `payload_len` is 0.
pub fn seal_datagram(
    key: &PacketKey,
    header: &Header,
    buf: &mut [u8],
    payload_len: usize,
) -> Result<usize, PacketError> {
    if payload_len == 0 {
        return Err(DecodeError::BadLength.into());
    }
    if buf.len() < header.buffer_len() {
        return Err(CryptoError::BufferTooSmall.into());
    }
    header.emit(buf);
    Ok(key.seal(header.packet_number, buf, header.buffer_len(), payload_len)?)
}

/// Fuzzing and test oracle: parses `data` as a header followed by *plaintext* frames and asserts
/// that everything accepted re-encodes to exactly the bytes it came from (header, each frame
/// through [`Frame::encode`], ACK frames also through [`encode_ack`], COMPLETE through
/// [`encode_complete`], DATA through [`encode_data_header`]), and that [`frames`] agrees.
///
/// # Panics
///
/// On any round-trip mismatch: that is the bug it exists to find.
#[doc(hidden)]
pub fn roundtrip_oracle(data: &[u8]) {
    let Ok(header) = Header::parse(data) else {
        return;
    };
    let mut out = [0u8; Header::LONG_LEN];
    header.emit(&mut out);
    assert_eq!(
        &out[..header.buffer_len()],
        &data[..header.buffer_len()],
        "header round trip"
    );

    let payload = &data[header.buffer_len()..];
    let mut scratch = vec![0u8; 3 * payload.len() + 64];
    let mut r = varint::Reader::new(payload);
    let mut iter = frames(payload);
    while r.remaining() > 0 {
        let start = r.pos();
        let parsed = Frame::parse(&mut r);
        let from_iter = iter.next();
        assert_eq!(
            from_iter,
            Some(parsed),
            "frames() disagrees with Frame::parse"
        );
        let Ok(frame) = parsed else {
            assert_eq!(iter.next(), None, "frames() continued after an error");
            return;
        };
        let input = &payload[start..r.pos()];
        assert!(!input.is_empty(), "frame consumed no input");
        assert_eq!(frame.buffer_len(), input.len(), "buffer_len of {frame}");
        assert_eq!(
            frame.encode(&mut scratch[..input.len() - 1]),
            None,
            "encode into short buf"
        );
        let n = frame
            .encode(&mut scratch)
            .expect("accepted frame must re-encode");
        assert_eq!(&scratch[..n], input, "re-encoding of {frame}");
        match frame {
            Frame::Ack(a) => {
                let n = encode_ack(
                    &mut scratch,
                    a.largest_pn(),
                    a.ack_delay_us(),
                    a.pn_ranges(),
                    a.data_cum(),
                    a.window_end(),
                    a.data_ranges(),
                );
                assert_eq!(&scratch[..n], input, "encode_ack of {frame}");
                assert_eq!(a.pn_ranges().count(), a.pn_range_count());
                assert_eq!(a.data_ranges().count(), a.data_range_count());
            }
            Frame::Complete(c) => {
                let (n, k) = encode_complete(&mut scratch, c.failures());
                assert_eq!(k, c.failure_count());
                assert_eq!(&scratch[..n], input, "encode_complete of {frame}");
            }
            Frame::Data(d) if d.payload.len() <= MAX_DATA_LEN => {
                let h =
                    encode_data_header(&mut scratch, d.file, d.offset, d.payload.len(), d.to_end);
                assert!(h > 0 && h <= DATA_HEADER_MAX_LEN);
                assert_eq!(
                    h,
                    data_header_len(d.file, d.offset, d.payload.len(), d.to_end)
                );
                assert_eq!(&scratch[..h], &input[..h], "encode_data_header of {frame}");
                assert_eq!(&input[h..], d.payload);
            }
            _ => {}
        }
    }
    assert_eq!(iter.next(), None, "frames() yielded past the end");
}

#[cfg(test)]
mod tests;
