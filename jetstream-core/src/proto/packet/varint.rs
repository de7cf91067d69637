//! QUIC variable-length integers (RFC 9000 §16) and the bounds-checked cursors every frame codec
//! is built on.
//!
//! The reader accepts only the canonical (shortest) encoding of each value, so that re-encoding a
//! parsed value reproduces the input bytes. The one exception is a *count*: it is always two bytes
//! long (`0b01` prefix), whatever its value, so that an encoder can reserve it before it knows how
//! many items will fit and patch it afterwards.

use super::DecodeError;

/// Largest value a varint can carry: 2^62 - 1.
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Largest value of a two-byte count field.
pub(crate) const COUNT_MAX: u16 = (1 << 14) - 1;

/// Encoded length of a count field.
pub(crate) const COUNT_LEN: usize = 2;

/// Number of bytes the canonical encoding of `v` takes (8 for values above [`VARINT_MAX`], which
/// cannot be encoded at all; writers reject them).
pub(crate) const fn varint_len(v: u64) -> usize {
    if v < (1 << 6) {
        1
    } else if v < (1 << 14) {
        2
    } else if v < (1 << 30) {
        4
    } else {
        8
    }
}

/// A cursor over received bytes. Every read is bounds-checked and fails with
/// [`DecodeError::Truncated`] instead of panicking.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes consumed since position `start` (a value previously returned by [`Self::pos`]).
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or(&[])
    }

    /// Takes the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Takes every remaining byte.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn array32(&mut self) -> Result<[u8; 32], DecodeError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.bytes(32)?);
        Ok(out)
    }

    /// A canonical varint. Non-minimal encodings fail with [`DecodeError::BadVarint`].
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let first = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        let len = 1usize << (first >> 6);
        let b = self.bytes(len)?;
        let mut v = u64::from(first & 0x3f);
        for &byte in &b[1..] {
            v = (v << 8) | u64::from(byte);
        }
        let min = match len {
            1 => 0,
            2 => 1 << 6,
            4 => 1 << 14,
            _ => 1 << 30,
        };
        if v < min {
            return Err(DecodeError::BadVarint);
        }
        Ok(v)
    }

    /// A count field: a varint that must use the two-byte form.
    pub(crate) fn count(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(COUNT_LEN)?;
        if b[0] >> 6 != 0b01 {
            return Err(DecodeError::BadVarint);
        }
        Ok(u16::from_be_bytes([b[0] & 0x3f, b[1]]))
    }
}

/// A cursor over an output buffer. Every write checks for space and returns `None` when it is
/// missing (or when a varint is out of range), leaving the cursor unchanged.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Space left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn slice(&mut self, src: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(src.len())?;
        self.buf.get_mut(self.pos..end)?.copy_from_slice(src);
        self.pos = end;
        Some(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Option<()> {
        self.slice(&[v])
    }

    pub(crate) fn u32(&mut self, v: u32) -> Option<()> {
        self.slice(&v.to_be_bytes())
    }

    /// Writes the canonical encoding of `v`; `None` if `v > VARINT_MAX` or it does not fit.
    pub(crate) fn varint(&mut self, v: u64) -> Option<()> {
        if v > VARINT_MAX {
            return None;
        }
        match varint_len(v) {
            1 => self.slice(&[v as u8]),
            2 => self.slice(&((v as u16) | 0x4000).to_be_bytes()),
            4 => self.slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
            _ => self.slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
        }
    }

    /// Writes a two-byte count; `None` if `v > COUNT_MAX` or it does not fit.
    pub(crate) fn count(&mut self, v: u16) -> Option<()> {
        if v > COUNT_MAX {
            return None;
        }
        self.slice(&(v | 0x4000).to_be_bytes())
    }

    /// Overwrites a count previously written at `at` (a value of [`Self::pos`] taken before it).
    pub(crate) fn patch_count(&mut self, at: usize, v: u16) -> Option<()> {
        if v > COUNT_MAX {
            return None;
        }
        self.buf
            .get_mut(at..at + COUNT_LEN)?
            .copy_from_slice(&(v | 0x4000).to_be_bytes());
        Some(())
    }
}
