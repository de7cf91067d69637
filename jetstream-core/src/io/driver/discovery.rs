//! Discovery datagrams: reachability probes between engines, outside any session.
//!
//! ```text
//! discovery datagram = magic "JSDISC1\0" (8) | nonce (16) | kind u8 (1 = probe, 2 = echo)
//! ```
//!
//! It cannot be confused with a session packet, for two independent reasons: a session
//! datagram is at least [`MIN_DATAGRAM_LEN`](crate::proto::packet::MIN_DATAGRAM_LEN) (13-byte
//! short header + 1 byte of frames + 16-byte AEAD tag = 30) bytes long, a discovery datagram
//! exactly 25; and a session datagram starts with the protocol version in its high nibble
//! (0x20 or 0x21), a discovery datagram with `'J'` (0x4A). So the driver
//! recognises discovery by length and magic before the session lookup, and a session packet
//! never matches. The reverse cannot happen either: anything that is not a well-formed
//! discovery datagram goes to the endpoint, which drops (and counts) a 25-byte datagram as
//! too short to be authenticated, creating no state.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::io::Discovery;

pub(super) const MAGIC: [u8; 8] = *b"JSDISC1\0";
pub(super) const LEN: usize = 25;
pub(super) const PROBE: u8 = 1;
pub(super) const ECHO: u8 = 2;
/// How many received discovery datagrams are kept.
pub(super) const RING: usize = 64;
/// Echoes sent per second at most, in total (a bound on reflection abuse: a spoofed probe
/// makes us send 25 bytes to a victim, no amplification, and no more than this rate).
pub(super) const ECHOES_PER_SECOND: u32 = 100;

const _: () = assert!(LEN < crate::proto::packet::MIN_DATAGRAM_LEN);
const _: () = assert!(MAGIC[0] >> 4 != crate::proto::packet::VERSION);

/// What a discovery datagram says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// Not discovery: hand it to the endpoint.
    NotDiscovery,
    /// Discovery magic with an unknown kind byte.
    Invalid,
    /// A probe (`false`) or echo (`true`) with its nonce.
    Valid { nonce: [u8; 16], echo: bool },
}

pub(super) fn parse(d: &[u8]) -> Parsed {
    if d.len() != LEN || d[..8] != MAGIC {
        return Parsed::NotDiscovery;
    }
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&d[8..24]);
    match d[24] {
        PROBE => Parsed::Valid { nonce, echo: false },
        ECHO => Parsed::Valid { nonce, echo: true },
        _ => Parsed::Invalid,
    }
}

pub(super) fn encode(nonce: &[u8; 16], kind: u8) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(&MAGIC);
    b[8..24].copy_from_slice(nonce);
    b[24] = kind;
    b
}

/// The last [`RING`] discovery datagrams received; allocated once.
#[derive(Debug)]
pub(super) struct Ring(VecDeque<Discovery>);

impl Ring {
    pub(super) fn new() -> Self {
        Self(VecDeque::with_capacity(RING))
    }

    pub(super) fn push(&mut self, d: Discovery) {
        if self.0.len() == RING {
            self.0.pop_front();
        }
        self.0.push_back(d);
    }

    pub(super) fn to_vec(&self) -> Vec<Discovery> {
        self.0.iter().cloned().collect()
    }
}

/// A fixed one-second window of at most [`ECHOES_PER_SECOND`] echoes.
#[derive(Debug)]
pub(super) struct Limiter {
    window: Option<Instant>,
    used: u32,
}

impl Limiter {
    pub(super) fn new() -> Self {
        Self {
            window: None,
            used: 0,
        }
    }

    /// Whether one more echo may go out at `now`.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        match self.window {
            Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                self.window = Some(now);
                self.used = 0;
            }
        }
        if self.used < ECHOES_PER_SECOND {
            self.used += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_datagrams_parse_and_nothing_else_does() {
        let nonce = [7u8; 16];
        assert_eq!(
            parse(&encode(&nonce, PROBE)),
            Parsed::Valid { nonce, echo: false }
        );
        assert_eq!(
            parse(&encode(&nonce, ECHO)),
            Parsed::Valid { nonce, echo: true }
        );
        assert_eq!(parse(&encode(&nonce, 3)), Parsed::Invalid);
        let mut wrong_magic = encode(&nonce, PROBE);
        wrong_magic[0] = b'K';
        assert_eq!(parse(&wrong_magic), Parsed::NotDiscovery);
        // One byte more or less: not discovery.
        let mut long = encode(&nonce, PROBE).to_vec();
        long.push(0);
        assert_eq!(parse(&long), Parsed::NotDiscovery);
        assert_eq!(parse(&long[..24]), Parsed::NotDiscovery);
        // A session packet (version byte 1) of the minimum length is never discovery.
        let mut session = vec![0u8; crate::proto::packet::MIN_DATAGRAM_LEN];
        session[0] = crate::proto::packet::VERSION;
        assert_eq!(parse(&session), Parsed::NotDiscovery);
    }

    #[test]
    fn ring_keeps_the_last_64() {
        let mut ring = Ring::new();
        let at = Instant::now();
        for i in 0..(RING as u8 + 10) {
            ring.push(Discovery {
                from: "127.0.0.1:1".parse().unwrap(),
                nonce: [i; 16],
                echo: false,
                at,
            });
        }
        let v = ring.to_vec();
        assert_eq!(v.len(), RING);
        assert_eq!(v[0].nonce, [10; 16]);
        assert_eq!(v[RING - 1].nonce, [RING as u8 + 9; 16]);
    }

    #[test]
    fn echoes_are_limited_to_100_per_second() {
        let mut l = Limiter::new();
        let t0 = Instant::now();
        let allowed = (0..250).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, 100);
        assert!(!l.allow(t0 + Duration::from_millis(999)));
        assert!(l.allow(t0 + Duration::from_secs(1)));
        let allowed = (0..250)
            .filter(|_| l.allow(t0 + Duration::from_millis(1500)))
            .count();
        assert_eq!(allowed, 99);
    }
}
