//! Bogus datagrams for flood tests: random bytes, truncated valid-looking datagrams, forged and
//! guessed session ids, and the right session id with a forged tag. Generated into a caller
//! buffer, so the flooding thread allocates nothing (the allocation-counting test relies on it).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jetstream_core::proto::packet::{Header, PacketType, PnForm, MIN_DATAGRAM_LEN};
use jetstream_core::SessionId;

/// Longest bogus datagram.
pub const MAX_LEN: usize = 256;

/// A deterministic stream of bogus datagrams aimed at the session `id`.
#[derive(Debug)]
pub struct Bogus {
    x: u64,
    n: u64,
    id: SessionId,
}

impl Bogus {
    /// A stream seeded with `seed`.
    pub fn new(id: SessionId, seed: u64) -> Self {
        Self {
            x: seed | 1,
            n: 0,
            id,
        }
    }

    fn rand(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }

    /// Writes the next datagram into `buf` and returns its length. Five kinds in turn:
    /// random bytes (any length), a valid header with our session id cut short of the minimum
    /// datagram, a valid header with a random session id, one with a guessed id (ours with one
    /// bit flipped), and ours with random ciphertext and tag.
    pub fn next(&mut self, buf: &mut [u8; MAX_LEN]) -> usize {
        let r = self.rand();
        for (i, w) in buf.chunks_mut(8).enumerate() {
            let v = r.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            w.copy_from_slice(&v.to_le_bytes()[..w.len()]);
        }
        let kind = self.n % 5;
        self.n += 1;
        let session_id = match kind {
            0 => return (r % MAX_LEN as u64) as usize,
            2 => SessionId(self.rand()),
            3 => SessionId(self.id.0 ^ (1 << (r % 64))),
            _ => self.id,
        };
        // Both packet-number forms: a short one is restored from the session's largest.
        let pn_form = if r & 1 == 0 {
            PnForm::Short
        } else {
            PnForm::Long
        };
        Header {
            packet_type: PacketType::Protected,
            session_id,
            packet_number: self.rand() >> 2,
            pn_form,
        }
        .emit(&mut buf[..]);
        match kind {
            1 => (r % MIN_DATAGRAM_LEN as u64) as usize,
            _ => 64 + (r % (MAX_LEN as u64 - 64)) as usize,
        }
    }
}

/// Floods `target` from another thread until `stop` is set, at most `pps` datagrams per second
/// (`None`: as fast as the socket takes them). The thread returns how many it sent.
pub fn flood(
    target: SocketAddr,
    id: SessionId,
    pps: Option<u64>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the flooding socket");
    std::thread::spawn(move || {
        let mut gen = Bogus::new(id, 0x5eed);
        let mut buf = [0u8; MAX_LEN];
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let len = gen.next(&mut buf);
            if sock.send_to(&buf[..len], target).is_ok() {
                sent += 1;
            }
            if let Some(pps) = pps.filter(|_| sent % 256 == 0) {
                // Pace: wait until the schedule catches up with what was sent.
                let due = Duration::from_secs_f64(sent as f64 / pps as f64);
                if let Some(ahead) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
        sent
    })
}
