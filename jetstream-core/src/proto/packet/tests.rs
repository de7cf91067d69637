// One-element range slices are intended: they are lists of ranges.
#![allow(clippy::single_range_in_vec_init)]

use std::ops::Range;

use super::varint::{Reader, Writer};
use super::*;
use crate::proto::crypto::{Cipher, SessionKeys, SessionSecret};
use crate::testing::Rng;
use crate::types::{Digest, FileIndex, Role};

fn parse_all(payload: &[u8]) -> Result<Vec<Frame<'_>>, DecodeError> {
    frames(payload).collect()
}

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame.buffer_len()];
    assert_eq!(frame.encode(&mut buf), Some(buf.len()), "{frame}");
    buf
}

/// The short header the seeds use.
const SEED_HEADER: Header = Header {
    packet_type: PacketType::Protected,
    session_id: SessionId(0x0102_0304_0506_0708),
    packet_number: 77,
    pn_form: PnForm::Short,
};

fn with_header(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; SEED_HEADER.buffer_len()];
    SEED_HEADER.emit(&mut v);
    v.extend_from_slice(payload);
    v
}

#[test]
fn varint_round_trips_at_every_length_boundary() {
    let values = [
        0,
        1,
        63,
        64,
        16383,
        16384,
        (1 << 30) - 1,
        1 << 30,
        VARINT_MAX - 1,
        VARINT_MAX,
    ];
    let expected_len = [1, 1, 1, 2, 2, 4, 4, 8, 8, 8];
    for (&v, &len) in values.iter().zip(&expected_len) {
        let mut buf = [0u8; 8];
        let mut w = Writer::new(&mut buf);
        w.varint(v).unwrap();
        assert_eq!(w.pos(), len, "{v}");
        let mut r = Reader::new(&buf[..len]);
        assert_eq!(r.varint(), Ok(v));
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            Reader::new(&buf[..len - 1]).varint(),
            Err(DecodeError::Truncated)
        );
    }
    let mut buf = [0u8; 8];
    assert_eq!(Writer::new(&mut buf).varint(VARINT_MAX + 1), None);
    assert_eq!(Writer::new(&mut buf[..1]).varint(64), None);
}

#[test]
fn non_canonical_varints_are_rejected() {
    for bad in [
        &[0x40, 0x00][..],
        &[0x40, 0x3f],
        &[0x80, 0x00, 0x3f, 0xff],
        &[0xc0, 0, 0, 0, 0x3f, 0xff, 0xff, 0xff],
    ] {
        assert_eq!(
            Reader::new(bad).varint(),
            Err(DecodeError::BadVarint),
            "{bad:?}"
        );
    }
}

#[test]
fn counts_must_use_the_two_byte_form() {
    assert_eq!(Reader::new(&[0x40, 0x00]).count(), Ok(0));
    assert_eq!(Reader::new(&[0x7f, 0xff]).count(), Ok(16383));
    assert_eq!(
        Reader::new(&[0x00, 0x00]).count(),
        Err(DecodeError::BadVarint)
    );
    assert_eq!(
        Reader::new(&[0x80, 0x00]).count(),
        Err(DecodeError::BadVarint)
    );
    assert_eq!(Reader::new(&[0x40]).count(), Err(DecodeError::Truncated));
}

#[test]
fn header_round_trips_and_rejects_bad_input() {
    for (pn_form, len, first) in [(PnForm::Long, 17, 0x21), (PnForm::Short, 13, 0x20)] {
        let h = Header {
            packet_type: PacketType::Protected,
            session_id: SessionId(u64::MAX - 3),
            packet_number: if pn_form == PnForm::Long {
                1 << 40
            } else {
                0xdead_beef
            },
            pn_form,
        };
        assert_eq!(h.buffer_len(), len);
        let mut buf = [0u8; Header::LONG_LEN];
        h.emit(&mut buf);
        assert_eq!(buf[0], first);
        assert_eq!(Header::parse(&buf[..len]), Ok(h));
        for n in 0..len {
            assert_eq!(Header::parse(&buf[..n]), Err(DecodeError::Truncated));
        }
        let mut bad = buf;
        bad[0] = 0x10 | first & 0x0f;
        assert_eq!(Header::parse(&bad), Err(DecodeError::BadVersion));
        let mut bad = buf;
        bad[0] |= 0x02;
        assert_eq!(Header::parse(&bad), Err(DecodeError::UnknownType));
    }
    // A short header writes the low 32 bits only.
    let h = Header {
        packet_number: (7 << 32) | 5,
        ..SEED_HEADER
    };
    let mut buf = [0u8; Header::SHORT_LEN];
    h.emit(&mut buf);
    assert_eq!(Header::parse(&buf).map(|h| h.packet_number), Ok(5));
}

#[test]
fn short_packet_numbers_are_restored_around_the_largest_seen() {
    let cases = [
        // (largest seen, sent): RFC 9000 A.3 with a 32-bit window.
        (0, 1),
        (77, 78),
        (1 << 40, (1 << 40) + 5),
        (1 << 40, (1 << 40) - 1000), // reordered: older than the largest
        ((5 << 32) - 3, (5 << 32) + 10), // across a 2^32 boundary, forwards
        ((5 << 32) + 3, (5 << 32) - 10), // and backwards
        (u64::MAX >> 2, (u64::MAX >> 2) - 7), // near the top of the space
        ((1 << 50) + 12345, (1 << 50) + 12345 + (1 << 31) - 1),
        ((1 << 50) + 12345, (1 << 50) + 12345 - (1 << 31) + 2),
    ];
    for (largest, sent) in cases {
        assert_eq!(
            decode_packet_number(largest, sent & 0xffff_ffff),
            sent,
            "largest {largest:#x}, sent {sent:#x}"
        );
    }
    // Beyond half the window the restoration is wrong (and authentication would fail): the
    // sender keeps within 2^30.
    let largest = 1u64 << 50;
    let far = largest + (1 << 32) + 1;
    assert_ne!(decode_packet_number(largest, far & 0xffff_ffff), far);
    // A long header needs no reference; a short one does.
    let long = Header {
        pn_form: PnForm::Long,
        ..SEED_HEADER
    };
    assert_eq!(long.full_packet_number(None), Some(77));
    assert_eq!(SEED_HEADER.full_packet_number(None), None);
    assert_eq!(
        SEED_HEADER.full_packet_number(Some(1 << 33)),
        Some((2 << 32) + 77)
    );
}

#[test]
fn fixed_shape_frames_round_trip() {
    let reason = "disk full: /data/ü";
    let all = [
        Frame::Ping,
        Frame::CompleteAck,
        Frame::CloseAck,
        Frame::Hello(HelloFrame {
            manifest_len: 300,
            data_len: 1 << 40,
            entry_count: 3,
            manifest_digest: Digest([9; 32]),
        }),
        Frame::Data(DataFrame {
            file: FileIndex::MANIFEST,
            offset: 1 << 33,
            payload: &[1, 2, 3, 4],
            to_end: false,
        }),
        Frame::Data(DataFrame {
            file: FileIndex(0),
            offset: 0,
            payload: &[],
            to_end: false,
        }),
        Frame::Close(CloseFrame { code: 7, reason }),
        Frame::Close(CloseFrame {
            code: VARINT_MAX,
            reason: "",
        }),
        Frame::Padding { len: 5 },
    ];
    let mut payload = Vec::new();
    for f in &all {
        let bytes = encode(f);
        assert_eq!(parse_all(&bytes), Ok(vec![*f]));
        payload.extend_from_slice(&bytes);
    }
    // Concatenated, the padding last (it consumes the rest).
    assert_eq!(parse_all(&payload), Ok(all.to_vec()));
    roundtrip_oracle(&with_header(&payload));
}

#[test]
fn encode_refuses_what_does_not_fit_or_cannot_be_encoded() {
    let f = Frame::Close(CloseFrame {
        code: 1,
        reason: "abc",
    });
    let mut buf = [0u8; 64];
    assert_eq!(f.encode(&mut buf[..f.buffer_len() - 1]), None);
    let long = "x".repeat(MAX_REASON_LEN + 1);
    let f = Frame::Close(CloseFrame {
        code: 1,
        reason: &long,
    });
    assert_eq!(f.encode(&mut [0u8; 512]), None);
    let f = Frame::Hello(HelloFrame {
        manifest_len: VARINT_MAX + 1,
        data_len: 0,
        entry_count: 0,
        manifest_digest: Digest([0; 32]),
    });
    assert_eq!(f.encode(&mut [0u8; 64]), None);
    assert_eq!(Frame::Padding { len: 0 }.encode(&mut buf), None);
}

#[test]
fn padding_must_be_all_zero() {
    assert_eq!(parse_all(&[0, 0, 0]), Ok(vec![Frame::Padding { len: 3 }]));
    assert_eq!(parse_all(&[1, 0, 0, 1]), Err(DecodeError::BadPadding));
    assert_eq!(
        parse_all(&[1, 1, 0]),
        Ok(vec![Frame::Ping, Frame::Ping, Frame::Padding { len: 1 }])
    );
}

#[test]
fn bad_frames_are_rejected_and_iteration_stops() {
    assert_eq!(parse_all(&[0x09]), Err(DecodeError::UnknownFrame));
    assert_eq!(parse_all(&[0xff]), Err(DecodeError::UnknownFrame));
    let mut it = frames(&[0x01, 0x42, 0x01]);
    assert_eq!(it.next(), Some(Ok(Frame::Ping)));
    assert_eq!(it.next(), Some(Err(DecodeError::UnknownFrame)));
    assert_eq!(it.next(), None);
    // CLOSE: reason too long, not UTF-8, truncated.
    let mut long = vec![0x07, 0x01, 0x41, 0x01];
    long.extend_from_slice(&[b'a'; 257]);
    assert_eq!(parse_all(&long), Err(DecodeError::BadLength));
    assert_eq!(
        parse_all(&[0x07, 0x01, 0x02, 0xc3, 0x28]),
        Err(DecodeError::BadUtf8)
    );
    assert_eq!(
        parse_all(&[0x07, 0x01, 0x02, b'a']),
        Err(DecodeError::Truncated)
    );
    // DATA: payload shorter than its length; a file index above 2^32 - 1; the version-1 DATA
    // type (0x03) is no longer a frame.
    assert_eq!(
        parse_all(&[0x10, 0, 1, 3, 1, 2]),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        parse_all(&[0x18, 0xc0, 0, 0, 1, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadLength)
    );
    assert_eq!(parse_all(&[0x03, 0, 0]), Err(DecodeError::UnknownFrame));
    // HELLO: digest cut short.
    assert_eq!(
        parse_all(&[0x02, 0, 0, 0, 1, 2]),
        Err(DecodeError::Truncated)
    );
    // Errors display.
    assert_eq!(DecodeError::BadRange.to_string(), "malformed range list");
}

#[test]
fn data_header_is_zero_copy_and_bounded() {
    let payload = [0xaau8; 100];
    let mut buf = [0u8; 200];
    // (offset, bytes of offset): the shortest big-endian form.
    let offsets = [
        (0, 1),
        (255, 1),
        (256, 2),
        (70_000, 3),
        ((1 << 32) - 1, 4),
        (1 << 32, 5),
        (1 << 40, 6),
        (u64::MAX, 8),
    ];
    for (offset, offset_len) in offsets {
        for to_end in [false, true] {
            for file in [FileIndex(3), FileIndex(100), FileIndex::MANIFEST] {
                let h = encode_data_header(&mut buf, file, offset, payload.len(), to_end);
                let file_len = match file.0 {
                    3 => 1,
                    100 => 2,
                    _ => 8,
                };
                let len_len = if to_end { 0 } else { 2 };
                assert_eq!(h, 1 + file_len + offset_len + len_len, "{offset} {to_end}");
                assert!(h <= DATA_HEADER_MAX_LEN);
                assert_eq!(h, data_header_len(file, offset, payload.len(), to_end));
                buf[h..h + payload.len()].copy_from_slice(&payload);
                let want = Frame::Data(DataFrame {
                    file,
                    offset,
                    payload: &payload,
                    to_end,
                });
                assert_eq!(parse_all(&buf[..h + payload.len()]), Ok(vec![want]));
                // A frame after an explicit-length DATA parses as its own; after a to-end one
                // it is part of the payload.
                buf[h + payload.len()] = FrameType::Ping as u8;
                let got = parse_all(&buf[..h + payload.len() + 1]).unwrap();
                assert_eq!(got.len(), if to_end { 1 } else { 2 });
            }
        }
    }
    assert_eq!(
        encode_data_header(&mut buf, FileIndex(3), 0, MAX_DATA_LEN + 1, false),
        0
    );
    assert_eq!(
        encode_data_header(&mut buf[..6], FileIndex(3), 1 << 40, 100, false),
        0
    );
    let worst = data_header_len(FileIndex::MANIFEST, u64::MAX, MAX_DATA_LEN, false);
    assert_eq!(worst, DATA_HEADER_MAX_LEN);
    // A non-shortest offset and an explicit length above MAX_DATA_LEN are refused, so that
    // every accepted frame re-encodes to its input.
    assert_eq!(
        parse_all(&[0x11, 0x03, 0x00, 0x05, 0x00]),
        Err(DecodeError::BadVarint)
    );
    assert_eq!(
        parse_all(&[0x10, 0x03, 0x05, 0x80, 0x00, 0x40, 0x00]),
        Err(DecodeError::BadLength)
    );
}

#[test]
fn max_file_payload_per_datagram() {
    assert_eq!(Header::SHORT_LEN, 13);
    assert_eq!(Header::LONG_LEN, 17);
    assert_eq!(MAX_PAYLOAD_LEN, 1443);
    // The budget at a 1500-byte MTU: 20 (IPv4) + 8 (UDP) + 13 + 16 (tag) + 6 (DATA header of
    // one of the first 64 files at an offset below 4 GiB) = 63 bytes, 1437 of file data.
    let to_end = |file, offset| MAX_PAYLOAD_LEN - data_header_len(FileIndex(file), offset, 0, true);
    assert_eq!(to_end(0, (1 << 32) - 1), 1437);
    // Up to 1 TiB into a file: 1436; file 16383 at offset 0: 1439; the worst case (offset
    // >= 2^56 of the manifest stream) 1426.
    assert_eq!(to_end(0, 1 << 39), 1436);
    assert_eq!(to_end(16383, 0), 1439);
    assert_eq!(to_end(u32::MAX, u64::MAX), 1426);
}

fn ack_bytes(
    cap: usize,
    largest: u64,
    pn: &[Range<u64>],
    cum: u64,
    data: &[Range<u64>],
) -> Vec<u8> {
    let mut buf = vec![0u8; cap];
    let n = encode_ack(
        &mut buf,
        largest,
        25,
        pn.iter().cloned(),
        cum,
        cum + 1000,
        data.iter().cloned(),
    );
    buf.truncate(n);
    buf
}

fn ack_of(bytes: &[u8]) -> AckFrame<'_> {
    match parse_all(bytes).as_deref() {
        Ok([Frame::Ack(a)]) => *a,
        other => panic!("not a single ACK: {other:?}"),
    }
}

#[test]
fn ack_round_trips_its_ranges() {
    let pn = [90..101, 50..60, 0..10];
    let data = [1000..1500, 1600..1601, 1 << 40..(1 << 40) + 9];
    let bytes = ack_bytes(1000, 100, &pn, 900, &data);
    let a = ack_of(&bytes);
    assert_eq!(a.largest_pn(), 100);
    assert_eq!(a.ack_delay_us(), 25);
    assert_eq!(a.data_cum(), 900);
    assert_eq!(a.window_end(), 1900);
    assert_eq!(a.pn_ranges().collect::<Vec<_>>(), pn);
    assert_eq!(a.data_ranges().collect::<Vec<_>>(), data);
    assert_eq!(Frame::Ack(a).buffer_len(), bytes.len());
    assert_eq!(encode(&Frame::Ack(a)), bytes);
    roundtrip_oracle(&with_header(&bytes));
}

#[test]
fn ack_encoder_clips_invalid_input() {
    // First range above largest: clipped; overlapping/adjacent/unordered ranges: clipped or
    // skipped; data ranges at or below data_cum: clipped or skipped.
    let pn = [95..200, 90..96, 90..95, 80..89, 85..86, 3..3, 0..2];
    let data = [0..50, 100..150, 140..160, 160..170, 171..171, 300..310];
    let bytes = ack_bytes(1000, 100, &pn, 100, &data);
    let a = ack_of(&bytes);
    assert_eq!(
        a.pn_ranges().collect::<Vec<_>>(),
        [95..101, 90..94, 80..89, 0..2]
    );
    assert_eq!(
        a.data_ranges().collect::<Vec<_>>(),
        [101..150, 151..160, 161..170, 300..310]
    );
    // A first range ending below largest + 1 lowers the encoded largest.
    let a_bytes = ack_bytes(100, 100, &[10..20], 0, &[]);
    assert_eq!(ack_of(&a_bytes).largest_pn(), 19);
    // Nothing to acknowledge, or out-of-range scalars: nothing written.
    assert!(ack_bytes(100, 100, &[], 0, &[]).is_empty());
    assert!(ack_bytes(100, 100, &[200..300], 0, &[]).is_empty());
    assert!(ack_bytes(100, VARINT_MAX + 1, &[0..1], 0, &[]).is_empty());
    assert!(ack_bytes(100, 5, &[0..1], VARINT_MAX, &[]).is_empty()); // window_end overflows
}

#[test]
fn ack_truncates_to_fit_and_stops_at_the_fixed_part() {
    let pn: Vec<_> = (0..300u64).rev().map(|i| i * 10..i * 10 + 5).collect();
    let data: Vec<_> = (1..300u64).map(|i| i * 10..i * 10 + 5).collect();
    let largest = pn[0].end - 1;
    // Fixed part: type 1 + largest 2 + delay 1 + count 2 + len0 1 + cum 1 + window 2 + count 2.
    let fixed = 12;
    assert!(ack_bytes(fixed - 1, largest, &pn, 0, &data).is_empty());
    let b = ack_bytes(fixed, largest, &pn, 0, &data);
    assert_eq!(b.len(), fixed);
    let a = ack_of(&b);
    assert_eq!(a.pn_range_count(), 1);
    assert_eq!(a.data_range_count(), 0);
    // Everything: 300 pn ranges in 1 + 299 * 2 bytes, 299 data ranges in 2 bytes each.
    let full = fixed + 299 * 2 + 299 * 2;
    assert_eq!(ack_bytes(1438, largest, &pn, 0, &data).len(), full);
    for cap in [fixed + 1, 50, 100, 301, 1000, full - 1] {
        let b = ack_bytes(cap, largest, &pn, 0, &data);
        assert!(b.len() <= cap);
        assert!(b.len() + 2 >= cap, "cap {cap}: wrote {}", b.len());
        let a = ack_of(&b);
        // Prefixes of both lists; pn ranges take at most 2/3 of the range space.
        let got_pn: Vec<_> = a.pn_ranges().collect();
        let got_data: Vec<_> = a.data_ranges().collect();
        assert_eq!(got_pn, pn[..got_pn.len()]);
        assert_eq!(got_data, data[..got_data.len()]);
        assert!(got_pn.len() == 1 || (got_pn.len() * 2 - 1) * 3 <= (cap - fixed + 1) * 2);
        assert!(!got_data.is_empty() || cap < fixed + 3 * 2);
    }
    // Without data ranges, pn ranges use all the space.
    let b = ack_bytes(1000, largest, &pn, 0, &[]);
    assert_eq!(ack_of(&b).pn_range_count(), 300);
}

#[test]
fn ack_parser_rejects_bad_ranges() {
    let good = ack_bytes(100, 100, &[90..101], 0, &[5..6]);
    assert!(parse_all(&good).is_ok());
    // Layout: 04 | 40 64 (largest 100) | 19 (delay) | 40 01 | 0b (len0 11) | 00 (cum) |
    //         43 e8 (window 1000) | 40 01 | 05 (gap) 01 (len)
    assert_eq!(
        good,
        [0x04, 0x40, 0x64, 0x19, 0x40, 0x01, 0x0b, 0x00, 0x43, 0xe8, 0x40, 0x01, 0x05, 0x01]
    );
    let patch = |i: usize, v: u8| {
        let mut b = good.clone();
        b[i] = v;
        b
    };
    assert_eq!(parse_all(&patch(5, 0x00)), Err(DecodeError::BadRange)); // pn_count 0
    assert_eq!(parse_all(&patch(6, 0x00)), Err(DecodeError::BadRange)); // len0 0
    assert_eq!(parse_all(&patch(12, 0x00)), Err(DecodeError::BadRange)); // data gap 0
    assert_eq!(parse_all(&patch(13, 0x00)), Err(DecodeError::BadRange)); // data len 0
    assert_eq!(parse_all(&patch(4, 0x00)), Err(DecodeError::BadVarint)); // 1-byte count form
                                                                         // len0 = 102 > largest + 1.
    let mut b = good[..6].to_vec();
    b.extend_from_slice(&[0x40, 102, 0x00, 0x01, 0x40, 0x00]);
    assert_eq!(parse_all(&b), Err(DecodeError::BadRange));
    // Second pn range running below zero: gap 90, len 2 from start 90.
    let mut b = good[..4].to_vec();
    b.extend_from_slice(&[0x40, 0x02, 0x0b, 0x3f, 0x40, 0x40, 0x00, 0x01, 0x40, 0x00]);
    assert_eq!(parse_all(&b), Err(DecodeError::BadRange));
    // Data range past 2^62.
    let mut b = good[..7].to_vec();
    b.extend_from_slice(&[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x40, 0x01,
    ]);
    b.extend_from_slice(&[0x01, 0x01]);
    assert_eq!(parse_all(&b), Err(DecodeError::BadRange));
    // Truncated everywhere.
    for n in 1..good.len() {
        assert_eq!(parse_all(&good[..n]), Err(DecodeError::Truncated), "{n}");
    }
}

#[test]
fn ack_encoder_output_always_parses_model() {
    for seed in 1..=300u64 {
        let mut rng = Rng::new(seed);
        let scale = [4, 100, 1 << 20, 1 << 62][rng.below(4) as usize];
        let arb = |rng: &mut Rng| {
            let a = rng.below(scale);
            a..a + rng.below(scale / 2 + 2)
        };
        let pn: Vec<_> = (0..rng.below(40)).map(|_| arb(&mut rng)).collect();
        let data: Vec<_> = (0..rng.below(40)).map(|_| arb(&mut rng)).collect();
        let largest = rng.below(scale);
        let cum = rng.below(scale);
        let cap = rng.below(300) as usize;
        let mut buf = vec![0u8; cap];
        let n = encode_ack(
            &mut buf,
            largest,
            rng.next_u64(),
            pn.iter().cloned(),
            cum,
            cum,
            data.iter().cloned(),
        );
        if n == 0 {
            continue;
        }
        let a = ack_of(&buf[..n]);
        assert!(a.largest_pn() <= largest, "seed {seed}");
        // Every acknowledged number or byte was in some input range.
        for r in a.pn_ranges() {
            assert!(
                pn.iter().any(|p| p.start <= r.start && r.end <= p.end),
                "seed {seed}: {r:?}"
            );
        }
        for r in a.data_ranges() {
            assert!(r.start > cum, "seed {seed}");
            assert!(
                data.iter().any(|p| p.start <= r.start && r.end <= p.end),
                "seed {seed}: {r:?}"
            );
        }
        roundtrip_oracle(&with_header(&buf[..n]));
    }
}

#[test]
fn complete_round_trips_and_truncates() {
    let failures: Vec<_> = (0..100u32)
        .map(|i| (FileIndex(i * 7), u64::from(i) << 20))
        .collect();
    let mut buf = [0u8; 2000];
    let (n, k) = encode_complete(&mut buf, failures.iter().copied());
    assert_eq!(k, 100);
    let c = match parse_all(&buf[..n]).as_deref() {
        Ok([Frame::Complete(c)]) => *c,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.failure_count(), 100);
    assert_eq!(c.failures().collect::<Vec<_>>(), failures);
    roundtrip_oracle(&with_header(&buf[..n]));

    let (n, k) = encode_complete(&mut buf[..50], failures.iter().copied());
    assert!(n <= 50 && k < 100 && k > 0);
    let parsed = parse_all(&buf[..n]);
    let Ok([Frame::Complete(c)]) = parsed.as_deref() else {
        panic!("truncated COMPLETE does not parse: {parsed:?}");
    };
    assert_eq!(c.failures().collect::<Vec<_>>(), failures[..k]);
    assert_eq!(encode_complete(&mut buf[..2], std::iter::empty()), (0, 0));
    assert_eq!(
        encode_complete(&mut buf[..3], failures.iter().copied()),
        (3, 0)
    );
}

#[test]
fn datagram_seal_open_round_trip() {
    let secret = SessionSecret::from_bytes([1; 32]);
    let tx = SessionKeys::derive(Cipher::Aes256Gcm, &secret, SessionId(9), Role::Sender);
    let rx = SessionKeys::derive(Cipher::Aes256Gcm, &secret, SessionId(9), Role::Receiver);
    // The full packet number is the nonce; the short header carries its low 32 bits.
    let pn = (3 << 32) + 12345;
    let header = Header {
        packet_type: PacketType::Protected,
        session_id: SessionId(9),
        packet_number: pn,
        pn_form: PnForm::Short,
    };
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let mut len = header.buffer_len();
    len += Frame::Ping.encode(&mut buf[len..]).unwrap();
    // With the 1-byte PING and a 6-byte to-end DATA header, 1436 bytes of file data fill it.
    let h = encode_data_header(&mut buf[len..], FileIndex(0), 1 << 30, 1436, true);
    len += h;
    buf[len..len + 1436].fill(0x5a);
    len += 1436;
    let n = seal_datagram(tx.seal_key(), &header, &mut buf, len - header.buffer_len()).unwrap();
    assert_eq!(n, MAX_DATAGRAM_LEN);

    let mut tampered = buf;
    tampered[2] ^= 1;
    assert!(matches!(
        open_datagram(rx.open_key(), Some(pn - 1), &mut tampered),
        Err(PacketError::Crypto(_))
    ));
    // No reference to restore a short packet number from.
    let mut copy = buf;
    assert_eq!(
        open_datagram(rx.open_key(), None, &mut copy),
        Err(PacketError::Decode(DecodeError::BadPacketNumber))
    );
    // A reference off by 2^32 restores the wrong number: authentication fails.
    let mut copy = buf;
    assert!(matches!(
        open_datagram(rx.open_key(), Some(pn + (1 << 32)), &mut copy),
        Err(PacketError::Crypto(_))
    ));

    let (got, full, plain) = open_datagram(rx.open_key(), Some(pn - 40), &mut buf).unwrap();
    assert_eq!(got.session_id, header.session_id);
    assert_eq!(full, pn);
    let frames = parse_all(plain).unwrap();
    assert_eq!(frames.len(), 2);
    assert!(
        matches!(frames[1], Frame::Data(d) if d.payload.len() == 1436 && d.offset == 1 << 30 && d.to_end)
    );

    let mut short = [0u8; MIN_DATAGRAM_LEN - 1];
    short[0] = VERSION << 4;
    assert_eq!(
        open_datagram(rx.open_key(), Some(0), &mut short),
        Err(PacketError::Decode(DecodeError::Truncated))
    );
    assert_eq!(
        seal_datagram(tx.seal_key(), &header, &mut [0u8; 38], 10),
        Err(PacketError::Crypto(
            crate::proto::crypto::CryptoError::BufferTooSmall
        ))
    );
}

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/packet_decode");

/// The handcrafted seed corpus of the `packet_decode` fuzz target: header + valid frames.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let one = |f: Frame<'_>| with_header(&encode(&f));
    out.push(("ping", one(Frame::Ping)));
    out.push((
        "hello",
        one(Frame::Hello(HelloFrame {
            manifest_len: 1234,
            data_len: 5 << 30,
            entry_count: 17,
            manifest_digest: Digest([0x11; 32]),
        })),
    ));
    out.push((
        "data",
        one(Frame::Data(DataFrame {
            file: FileIndex(2),
            offset: 70_000,
            payload: b"some file bytes",
            to_end: false,
        })),
    ));
    let mut two = encode(&Frame::Data(DataFrame {
        file: FileIndex(70),
        offset: 5 << 30,
        payload: b"end of one file",
        to_end: false,
    }));
    two.extend(encode(&Frame::Data(DataFrame {
        file: FileIndex(71),
        offset: 0,
        payload: b"start of the next, to the end of the packet",
        to_end: true,
    })));
    out.push(("data_to_end", with_header(&two)));
    let mut long = vec![0u8; Header::LONG_LEN];
    Header {
        pn_form: PnForm::Long,
        packet_number: 1 << 61,
        ..SEED_HEADER
    }
    .emit(&mut long);
    long.extend(encode(&Frame::Ping));
    out.push(("long_header", long));
    out.push((
        "ack",
        with_header(&ack_bytes(
            200,
            100,
            &[90..101, 50..60, 0..10],
            900,
            &[1000..1500, 1600..1601],
        )),
    ));
    let mut buf = [0u8; 64];
    let (n, _) = encode_complete(
        &mut buf,
        [(FileIndex(3), 2), (FileIndex(9), 300)].into_iter(),
    );
    out.push(("complete", with_header(&buf[..n])));
    out.push((
        "close",
        one(Frame::Close(CloseFrame {
            code: 4,
            reason: "checksum mismatch",
        })),
    ));
    let mut mixed = encode(&Frame::Ping);
    mixed.extend(encode(&Frame::CompleteAck));
    mixed.extend(encode(&Frame::CloseAck));
    mixed.extend(encode(&Frame::Padding { len: 8 }));
    out.push(("mixed_padding", with_header(&mixed)));
    out
}

/// Rewrites the checked-in seed corpus. Run with
/// `JETSTREAM_WRITE_SEEDS=1 cargo test -p jetstream-core --lib write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus/packet_decode; run by hand"]
fn write_seed_corpus() {
    if std::env::var_os("JETSTREAM_WRITE_SEEDS").is_none() {
        return;
    }
    std::fs::create_dir_all(CORPUS_DIR).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(format!("{CORPUS_DIR}/{name}.bin"), bytes).unwrap();
    }
}

#[test]
fn seed_corpus_parses_fully_and_round_trips() {
    for (name, bytes) in seeds() {
        let len = Header::parse(&bytes).unwrap().buffer_len();
        let frames = parse_all(&bytes[len..]);
        assert!(frames.is_ok(), "{name}: {frames:?}");
        roundtrip_oracle(&bytes);
    }
    // The checked-in copy, if present, is the same.
    if let Ok(dir) = std::fs::read_dir(CORPUS_DIR) {
        for entry in dir {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            roundtrip_oracle(&bytes);
        }
    }
}

#[test]
fn oracle_survives_random_and_mutated_inputs() {
    let seeds: Vec<Vec<u8>> = seeds().into_iter().map(|(_, b)| b).collect();
    for seed in 1..=4000u64 {
        let mut rng = Rng::new(seed ^ 0x2545_f491_4f6c_dd1d);
        let mut input = if seed % 4 == 0 {
            // Random bytes behind a valid header.
            let len = rng.below(64) as usize;
            with_header(&(0..len).map(|_| rng.next_u64() as u8).collect::<Vec<_>>())
        } else {
            seeds[rng.below(seeds.len() as u64) as usize].clone()
        };
        for _ in 0..=rng.below(4) {
            let h = Header::SHORT_LEN;
            let i = h + rng.below((input.len() - h) as u64 + 1) as usize;
            match rng.below(4) {
                0 if i < input.len() => input[i] ^= 1 << rng.below(8),
                1 if i < input.len() => input[i] = rng.next_u64() as u8,
                2 => input.insert(i, rng.next_u64() as u8),
                _ => input.truncate(i.max(h)),
            }
        }
        let caught = std::panic::catch_unwind(|| roundtrip_oracle(&input));
        assert!(caught.is_ok(), "seed {seed}: input {input:02x?}");
    }
}
