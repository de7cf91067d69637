//! The wire format: datagram header, AEAD protection, and the frames inside.
//!
//! ```text
//! datagram = header (18 bytes, cleartext, AEAD associated data)
//!         || AEAD(frames)                               (at least 1 byte)
//!         || tag (16 bytes)
//!
//! header   = version u8 (= 1) | packet type u8 (0x01) | session id u64 BE | packet number u64 BE
//! ```
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

/// Protocol version carried in every header.
pub const VERSION: u8 = 1;

/// Smallest valid datagram: a header, one byte of (encrypted) frames, and the tag.
pub const MIN_DATAGRAM_LEN: usize = Header::LEN + TAG_LEN + 1;

/// Largest datagram we send: a 1500-byte Ethernet MTU minus IPv4 (20) and UDP (8) headers.
pub const MAX_DATAGRAM_LEN: usize = 1472;

/// Largest frame payload (plaintext) of a [`MAX_DATAGRAM_LEN`] datagram: 1438 bytes.
pub const MAX_PAYLOAD_LEN: usize = MAX_DATAGRAM_LEN - Header::LEN - TAG_LEN;

/// The packet type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum PacketType {
    /// An AEAD-protected packet carrying frames. The only type of version 1.
    Protected = 0x01,
}

/// The cleartext datagram header, authenticated as AEAD associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The packet type.
    pub packet_type: PacketType,
    /// The session this datagram belongs to; the receiver demultiplexes on it.
    pub session_id: SessionId,
    /// Packet number: unique per direction of a session, never reused. Also the AEAD nonce.
    pub packet_number: u64,
}

impl Header {
    /// Encoded length of a header.
    pub const LEN: usize = 18;

    /// Parses the header at the start of `buf` (the rest of `buf` is ignored).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] if `buf` is shorter than [`Header::LEN`],
    /// [`DecodeError::BadVersion`] if the version is not [`VERSION`],
    /// [`DecodeError::UnknownType`] for any packet type but [`PacketType::Protected`].
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let Some(b) = buf.get(..Self::LEN) else {
            return Err(DecodeError::Truncated);
        };
        if b[0] != VERSION {
            return Err(DecodeError::BadVersion);
        }
        let packet_type = match b[1] {
            0x01 => PacketType::Protected,
            _ => return Err(DecodeError::UnknownType),
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[2..10]);
        let mut pn = [0u8; 8];
        pn.copy_from_slice(&b[10..18]);
        Ok(Self {
            packet_type,
            session_id: SessionId(u64::from_be_bytes(id)),
            packet_number: u64::from_be_bytes(pn),
        })
    }

    /// Writes the header into the first [`Header::LEN`] bytes of `buf`.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`Header::LEN`] (a local buffer-sizing bug, never peer input).
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..Self::LEN];
        b[0] = VERSION;
        b[1] = self.packet_type as u8;
        b[2..10].copy_from_slice(&self.session_id.0.to_be_bytes());
        b[10..18].copy_from_slice(&self.packet_number.to_be_bytes());
    }

    /// Encoded length of the header: always [`Header::LEN`].
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
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
/// header's packet number as the nonce. Returns the header and the plaintext frames (pass them to
/// [`frames`]).
///
/// The caller must still check that the session id is the expected one (it selects `key`) and
/// that the packet number is not a replay.
///
/// # Errors
///
/// [`PacketError::Decode`] for a malformed header or a datagram shorter than
/// [`MIN_DATAGRAM_LEN`]; [`PacketError::Crypto`] if authentication fails.
pub fn open_datagram<'a>(
    key: &PacketKey,
    datagram: &'a mut [u8],
) -> Result<(Header, &'a mut [u8]), PacketError> {
    if datagram.len() < MIN_DATAGRAM_LEN {
        return Err(DecodeError::Truncated.into());
    }
    let header = Header::parse(datagram)?;
    let plaintext = key.open(header.packet_number, datagram, Header::LEN)?;
    Ok((header, plaintext))
}

/// Writes `header` into `buf[..Header::LEN]` and seals, in place, the `payload_len` bytes of
/// plaintext frames the caller already wrote at `buf[Header::LEN..]`, appending the tag. Returns
/// the datagram length, `Header::LEN + payload_len + TAG_LEN`.
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
    if buf.len() < Header::LEN {
        return Err(CryptoError::BufferTooSmall.into());
    }
    header.emit(buf);
    Ok(key.seal(header.packet_number, buf, Header::LEN, payload_len)?)
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
    let mut out = [0u8; Header::LEN];
    header.emit(&mut out);
    assert_eq!(&out[..], &data[..Header::LEN], "header round trip");

    let payload = &data[Header::LEN..];
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
                let h = encode_data_header(&mut scratch, d.file, d.offset, d.payload.len());
                assert!(h > 0 && h <= DATA_HEADER_MAX_LEN);
                assert_eq!(h, data_header_len(d.offset, d.payload.len()));
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
