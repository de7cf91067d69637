//! The ACK frame: a zero-allocation view over its two range lists, and an encoder that fits as
//! many ranges as the buffer allows.
//!
//! Wire layout after the type byte (`0x04`):
//!
//! ```text
//! largest_pn varint, ack_delay_us varint, pn_count (2-byte count),
//!   len_0, then (gap_i, len_i) for i in 1..pn_count      -- packet numbers, descending
//! data_cum varint, window_end varint, data_count (2-byte count),
//!   (gap_i, len_i) for i in 0..data_count               -- byte ranges, ascending
//! ```
//!
//! All ranges are half-open. The first packet-number range is `[largest+1-len_0, largest+1)`;
//! each next one ends `gap_i >= 1` below the start of the previous one. The first data range
//! starts `gap_0 >= 1` above `data_cum`, each next one `gap_i >= 1` above the end of the previous
//! one. Every length is at least 1, and no range reaches past 2^62, so that every gap and length
//! is itself a varint.

use std::ops::Range;

use super::varint::{varint_len, Reader, Writer, COUNT_LEN, COUNT_MAX, VARINT_MAX};
use super::{DecodeError, FrameType};

/// Exclusive upper bound on every range end (packet numbers and byte offsets alike).
const POSITION_END_MAX: u64 = VARINT_MAX + 1;

/// A validated ACK frame, borrowing its range lists from the datagram.
///
/// Both range lists were fully checked when the frame was parsed, so iterating them cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckFrame<'a> {
    largest_pn: u64,
    ack_delay_us: u64,
    pn_count: u16,
    pn_raw: &'a [u8],
    data_cum: u64,
    window_end: u64,
    data_count: u16,
    data_raw: &'a [u8],
}

impl<'a> AckFrame<'a> {
    /// Largest packet number acknowledged; the first packet-number range ends right after it.
    pub fn largest_pn(&self) -> u64 {
        self.largest_pn
    }

    /// How long the receiver held the ACK of `largest_pn` back, in microseconds.
    pub fn ack_delay_us(&self) -> u64 {
        self.ack_delay_us
    }

    /// Every byte of the transfer's global byte space below this offset is held by the receiver.
    pub fn data_cum(&self) -> u64 {
        self.data_cum
    }

    /// The receiver's flow-control limit: the sender may send bytes below this offset.
    pub fn window_end(&self) -> u64 {
        self.window_end
    }

    /// Number of packet-number ranges (at least 1).
    pub fn pn_range_count(&self) -> usize {
        usize::from(self.pn_count)
    }

    /// Number of data ranges above [`Self::data_cum`].
    pub fn data_range_count(&self) -> usize {
        usize::from(self.data_count)
    }

    /// Acknowledged packet numbers as disjoint, non-adjacent half-open ranges, highest first.
    /// The first range ends at `largest_pn + 1`.
    pub fn pn_ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        PnRanges {
            r: Reader::new(self.pn_raw),
            left: self.pn_count,
            first: true,
            low: self.largest_pn + 1,
        }
    }

    /// Byte ranges held above [`Self::data_cum`], as disjoint, non-adjacent half-open ranges,
    /// lowest first. Every range starts strictly above `data_cum`.
    pub fn data_ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        DataRanges {
            r: Reader::new(self.data_raw),
            left: self.data_count,
            high: self.data_cum,
        }
    }

    /// Encoded length of the frame, type byte included.
    pub fn buffer_len(&self) -> usize {
        1 + varint_len(self.largest_pn)
            + varint_len(self.ack_delay_us)
            + COUNT_LEN
            + self.pn_raw.len()
            + varint_len(self.data_cum)
            + varint_len(self.window_end)
            + COUNT_LEN
            + self.data_raw.len()
    }

    /// Parses the body of an ACK frame (the type byte already consumed).
    ///
    /// DoS note: loops over at most 2 × 16383 ranges, each at least two bytes of input.
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let largest_pn = r.varint()?;
        let ack_delay_us = r.varint()?;
        let pn_count = r.count()?;
        if pn_count == 0 {
            return Err(DecodeError::BadRange);
        }
        let start = r.pos();
        // `largest_pn <= VARINT_MAX`, so this cannot overflow.
        let mut low = largest_pn + 1;
        let len0 = r.varint()?;
        if len0 == 0 {
            return Err(DecodeError::BadRange);
        }
        low = low.checked_sub(len0).ok_or(DecodeError::BadRange)?;
        for _ in 1..pn_count {
            let gap = r.varint()?;
            let len = r.varint()?;
            if gap == 0 || len == 0 {
                return Err(DecodeError::BadRange);
            }
            let end = low.checked_sub(gap).ok_or(DecodeError::BadRange)?;
            low = end.checked_sub(len).ok_or(DecodeError::BadRange)?;
        }
        let pn_raw = r.since(start);

        let data_cum = r.varint()?;
        let window_end = r.varint()?;
        let data_count = r.count()?;
        let start = r.pos();
        let mut high = data_cum;
        for _ in 0..data_count {
            let gap = r.varint()?;
            let len = r.varint()?;
            if gap == 0 || len == 0 {
                return Err(DecodeError::BadRange);
            }
            let s = high.checked_add(gap).ok_or(DecodeError::BadRange)?;
            high = s.checked_add(len).ok_or(DecodeError::BadRange)?;
            if high > POSITION_END_MAX {
                return Err(DecodeError::BadRange);
            }
        }
        let data_raw = r.since(start);
        Ok(Self {
            largest_pn,
            ack_delay_us,
            pn_count,
            pn_raw,
            data_cum,
            window_end,
            data_count,
            data_raw,
        })
    }

    /// Writes the frame (type byte included). `None` if it does not fit.
    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Option<()> {
        if w.remaining() < self.buffer_len() {
            return None;
        }
        w.u8(FrameType::Ack as u8)?;
        w.varint(self.largest_pn)?;
        w.varint(self.ack_delay_us)?;
        w.count(self.pn_count)?;
        w.slice(self.pn_raw)?;
        w.varint(self.data_cum)?;
        w.varint(self.window_end)?;
        w.count(self.data_count)?;
        w.slice(self.data_raw)
    }
}

/// Iterator over the packet-number ranges of a validated [`AckFrame`].
#[derive(Clone, Debug)]
struct PnRanges<'a> {
    r: Reader<'a>,
    left: u16,
    first: bool,
    /// Start of the previously yielded range (initially `largest_pn + 1`).
    low: u64,
}

impl Iterator for PnRanges<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The list was validated at parse time; the `ok()?`/`checked_*` below only make a
        // (never expected) inconsistency end the iteration instead of panicking.
        let gap = if self.first { 0 } else { self.r.varint().ok()? };
        self.first = false;
        let len = self.r.varint().ok()?;
        let end = self.low.checked_sub(gap)?;
        let start = end.checked_sub(len)?;
        self.low = start;
        Some(start..end)
    }
}

/// Iterator over the data ranges of a validated [`AckFrame`].
#[derive(Clone, Debug)]
struct DataRanges<'a> {
    r: Reader<'a>,
    left: u16,
    /// End of the previously yielded range (initially `data_cum`).
    high: u64,
}

impl Iterator for DataRanges<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated at parse time; see `PnRanges::next`.
        let gap = self.r.varint().ok()?;
        let len = self.r.varint().ok()?;
        let start = self.high.checked_add(gap)?;
        let end = start.checked_add(len)?;
        self.high = end;
        Some(start..end)
    }
}

/// Encodes an ACK frame (type byte included) into `buf`, fitting as many ranges as possible, and
/// returns the number of bytes written.
///
/// - `pn_ranges` must be descending; the first range should end at `largest_pn + 1`.
/// - `data_ranges` must be ascending and lie above `data_cum`.
///
/// The encoder is defensive, so its output always parses: a packet-number range reaching above
/// `largest_pn` or too close to (or above) the previous range is clipped, a data range reaching
/// down to `data_cum` or to the end of the previous range (or beyond 2^62) is clipped, and ranges
/// left empty are skipped. If the first usable packet-number range ends below `largest_pn + 1`,
/// the encoded `largest_pn` is lowered to its last element. `ack_delay_us` saturates at 2^62 - 1.
///
/// Space: when both lists are non-empty, the packet-number ranges get at most 2/3 of the space
/// left after the fixed part (but always the first one); the data ranges get everything else.
/// Each list stops at its first range that does not fit (so what is sent is the most recent
/// packet numbers and the lowest holes, which matter most), and at 16383 ranges.
///
/// Returns 0 — nothing usable written — if there is no non-empty packet-number range, if
/// `largest_pn`, `data_cum` or `window_end` exceeds 2^62 - 1, or if the fixed part plus the first
/// packet-number range does not fit.
pub fn encode_ack(
    buf: &mut [u8],
    largest_pn: u64,
    ack_delay_us: u64,
    pn_ranges: impl Iterator<Item = Range<u64>>,
    data_cum: u64,
    window_end: u64,
    data_ranges: impl Iterator<Item = Range<u64>>,
) -> usize {
    encode_ack_inner(
        buf,
        largest_pn,
        ack_delay_us,
        pn_ranges,
        data_cum,
        window_end,
        data_ranges,
    )
    .unwrap_or(0)
}

fn encode_ack_inner(
    buf: &mut [u8],
    largest_pn: u64,
    ack_delay_us: u64,
    mut pn_ranges: impl Iterator<Item = Range<u64>>,
    data_cum: u64,
    window_end: u64,
    data_ranges: impl Iterator<Item = Range<u64>>,
) -> Option<usize> {
    if largest_pn > VARINT_MAX || data_cum > VARINT_MAX || window_end > VARINT_MAX {
        return None;
    }
    let ack_delay_us = ack_delay_us.min(VARINT_MAX);
    let first = loop {
        let r = pn_ranges.next()?;
        let end = r.end.min(largest_pn + 1);
        if r.start < end {
            break r.start..end;
        }
    };
    let largest = first.end - 1;
    let len0 = first.end - first.start;

    let head = 1 + varint_len(largest) + varint_len(ack_delay_us) + COUNT_LEN;
    let tail = varint_len(data_cum) + varint_len(window_end) + COUNT_LEN;
    let first_len = varint_len(len0);
    let avail = buf.len().checked_sub(head + tail + first_len)? + first_len;

    let mut data_ranges = data_ranges.peekable();
    let pn_budget = if data_ranges.peek().is_some() {
        (avail * 2 / 3).max(first_len)
    } else {
        avail
    };

    let mut w = Writer::new(buf);
    w.u8(FrameType::Ack as u8)?;
    w.varint(largest)?;
    w.varint(ack_delay_us)?;
    let pn_count_at = w.pos();
    w.count(0)?;
    w.varint(len0)?;
    let mut used = first_len;
    let mut count: u16 = 1;
    let mut low = first.start;
    for r in pn_ranges {
        // The next range needs a gap >= 1 and a length >= 1 below `low`.
        if low < 2 || count == COUNT_MAX {
            break;
        }
        let end = r.end.min(low - 1);
        if r.start >= end {
            continue;
        }
        let (gap, len) = (low - end, end - r.start);
        let n = varint_len(gap) + varint_len(len);
        if used + n > pn_budget {
            break;
        }
        w.varint(gap)?;
        w.varint(len)?;
        used += n;
        count += 1;
        low = r.start;
    }
    w.patch_count(pn_count_at, count)?;

    w.varint(data_cum)?;
    w.varint(window_end)?;
    let data_count_at = w.pos();
    w.count(0)?;
    let mut count: u16 = 0;
    let mut high = data_cum;
    for r in data_ranges {
        if count == COUNT_MAX || high >= VARINT_MAX {
            break;
        }
        let start = r.start.max(high + 1);
        let end = r.end.min(POSITION_END_MAX);
        if start >= end {
            continue;
        }
        let (gap, len) = (start - high, end - start);
        let n = varint_len(gap) + varint_len(len);
        if used + n > avail {
            break;
        }
        w.varint(gap)?;
        w.varint(len)?;
        used += n;
        count += 1;
        high = end;
    }
    w.patch_count(data_count_at, count)?;
    Some(w.pos())
}
