//! The relay (reference §7.7): `jetstream relay_server` runs in a DMZ; a private server
//! connects *out* to it (`--recv-relay-host/--recv-relay-port`) and the relay opens the public
//! ports on its behalf: UDP data (default 8886) and the TCP API (default 8886). It forwards
//! both as opaque bytes: the API is TLS between the sending server and the private server, and
//! the data are encrypted with keys derived from that TLS session, so the relay never holds a
//! session or data key and never sees file contents (its own key only authenticates its
//! control link).
//!
//! The control port (TCP, default 8887) speaks TLS only, authenticated at both ends by pinned
//! public keys (the same identities as the API's: [`crate::tls::Identity`]): the relay accepts
//! only a client certificate whose key is in its `--authorized-server-key` list, and the
//! private server accepts only the relay key it pins with `--recv-relay-public-key`. Inside
//! TLS it carries frames: `u8 kind, u32 length (BE), payload`.
//! - `HELLO` (server → relay, JSON `{"version": 1}`), answered by `WELCOME` (JSON
//!   `{"dataPort", "apiPort"}`: the public ports), or by `REFUSED` (a UTF-8 reason) when
//!   another server's link is live: a live registration is never displaced.
//! - `DATAGRAM` (both ways): `[a, b, c, d, port_hi, port_lo]` (the public peer's IPv4 address
//!   and port: the source when it goes to the server, the destination when it comes back),
//!   then the datagram. The relay sends a datagram from the server only to a peer that has
//!   sent to the relay in the last two minutes: it is not a reflector.
//! - `API_OPEN` (relay → server, `u64` id): a client connected to the public API port; the
//!   server opens a new (TLS, authenticated) connection to the control port whose first frame
//!   is `API_ACCEPT` (the same id), and from then on that connection carries the client's
//!   bytes both ways. The relay hands a client only to the key of the live registration.
//! - `PING` / `PONG` (keep-alive, every 5 s).
//!
//! Tunnelling datagrams over TCP costs latency under loss (head-of-line blocking); the relay
//! is for reaching servers that cannot open ports, not for the fastest path.

pub mod client;
pub mod metrics;
pub mod server;
mod tls_io;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Frame kinds.
pub mod kind {
    /// Server → relay: register.
    pub const HELLO: u8 = 1;
    /// Relay → server: registered; the public ports.
    pub const WELCOME: u8 = 2;
    /// A UDP datagram, either way.
    pub const DATAGRAM: u8 = 3;
    /// Relay → server: a public API client arrived.
    pub const API_OPEN: u8 = 4;
    /// Server → relay, first frame of a new connection: splice it to that client.
    pub const API_ACCEPT: u8 = 5;
    /// Keep-alive.
    pub const PING: u8 = 6;
    /// Keep-alive answer.
    pub const PONG: u8 = 7;
    /// Relay → server: the registration is refused (UTF-8 reason); the relay then closes.
    pub const REFUSED: u8 = 8;
}

/// A link with no frame for this long is dead, at both ends (the server pings every
/// [`PING_INTERVAL`]).
pub(crate) const LINK_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// How often the private server pings the relay over an idle link.
pub(crate) const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest frame payload (a datagram plus its address, or a small JSON).
pub const MAX_FRAME: usize = 70_000;

/// One encoded frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    frame_of(kind, &[payload])
}

/// One encoded frame whose payload is `parts` one after the other (a datagram frame is its
/// address and the datagram, written once into the frame's buffer).
fn frame_of(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(5 + len);
    buf.push(kind);
    // Payloads are bounded by their producers (a datagram, a small JSON) far below 4 GiB.
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf
}

/// The `DATAGRAM` frame of `datagram` from or to `addr` (the payload of
/// [`encode_datagram`]), built in one buffer.
pub fn datagram_frame(addr: SocketAddrV4, datagram: &[u8]) -> Vec<u8> {
    frame_of(
        kind::DATAGRAM,
        &[&addr.ip().octets(), &addr.port().to_be_bytes(), datagram],
    )
}

/// A frame header's payload length.
///
/// # Errors
/// A length over [`MAX_FRAME`] (the link is then unusable).
fn payload_len(head: &[u8]) -> io::Result<usize> {
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "relay frame too long",
        ));
    }
    Ok(len)
}

/// The first complete frame at the start of `buf`: kind, payload and the bytes it used;
/// `None` until the whole frame is there.
///
/// # Errors
/// A frame longer than [`MAX_FRAME`] (the link is then unusable).
pub fn parse_frame(buf: &[u8]) -> io::Result<Option<(u8, &[u8], usize)>> {
    let Some(head) = buf.get(..5) else {
        return Ok(None);
    };
    let len = payload_len(head)?;
    Ok(buf
        .get(5..5 + len)
        .map(|payload| (head[0], payload, 5 + len)))
}

/// A public key given on the command line (`--authorized-server-key`,
/// `--recv-relay-public-key`): hex of a certificate's SubjectPublicKeyInfo, as
/// `getServerInfo`'s `publicKey` and `relay_server --print-public-key` show it; lowercased.
///
/// # Errors
/// Not hex, or of an implausible length for a public key.
pub fn parse_public_key(text: &str) -> Result<String, String> {
    if let Some(key) = jetstream_client::tls::plausible_public_key(text) {
        Ok(key)
    } else {
        Err(format!(
            "{text:?} is not a public key: expected the hex of a SubjectPublicKeyInfo \
             (40 to 2000 hex digits), as printed by `jetstream relay_server --print-public-key` \
             or reported as publicKey by `jetstream api getServerInfo`"
        ))
    }
}

/// Writes one frame.
///
/// # Errors
/// The I/O error.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too long"))?;
    w.write_all(&frame(kind, payload))
}

/// Reads one frame.
///
/// # Errors
/// The I/O error, or a frame longer than [`MAX_FRAME`].
pub fn read_frame(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = payload_len(&head)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((head[0], payload))
}

/// `[ip, port]` + datagram.
pub fn encode_datagram(addr: SocketAddrV4, datagram: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + datagram.len());
    v.extend_from_slice(&addr.ip().octets());
    v.extend_from_slice(&addr.port().to_be_bytes());
    v.extend_from_slice(datagram);
    v
}

/// The address and datagram of a `DATAGRAM` payload.
pub fn decode_datagram(p: &[u8]) -> Option<(SocketAddrV4, &[u8])> {
    if p.len() < 6 {
        return None;
    }
    let ip = Ipv4Addr::new(p[0], p[1], p[2], p[3]);
    let port = u16::from_be_bytes([p[4], p[5]]);
    Some((SocketAddrV4::new(ip, port), &p[6..]))
}

/// The IPv4 form of an address (the relay is IPv4, like the reference's servers).
pub fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(v) => Some(v),
        SocketAddr::V6(v) => v
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, v.port())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_datagrams_round_trip() {
        let mut buf = Vec::new();
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8886);
        write_frame(&mut buf, kind::DATAGRAM, &encode_datagram(a, b"xyz")).unwrap();
        let (k, p) = read_frame(&mut &buf[..]).unwrap();
        assert_eq!(k, kind::DATAGRAM);
        assert_eq!(decode_datagram(&p), Some((a, &b"xyz"[..])));
        assert!(decode_datagram(b"12345").is_none());
        let mut long = vec![kind::PING];
        long.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(read_frame(&mut &long[..]).is_err());
        assert!(parse_frame(&long).is_err());
        let two = [frame(kind::PING, b""), frame(kind::DATAGRAM, b"ab")].concat();
        assert_eq!(parse_frame(&two).unwrap(), Some((kind::PING, &b""[..], 5)));
        assert_eq!(
            parse_frame(&two[5..]).unwrap(),
            Some((kind::DATAGRAM, &b"ab"[..], 7))
        );
        assert_eq!(parse_frame(&two[5..11]).unwrap(), None);
        assert_eq!(parse_frame(&two[..3]).unwrap(), None);
    }

    #[test]
    fn public_keys_are_checked_and_lowercased() {
        let k = "3059301306072A8648CE3D020106082A8648CE3D03010703420004";
        assert_eq!(parse_public_key(k).unwrap(), k.to_ascii_lowercase());
        assert!(parse_public_key("xyz").is_err());
        assert!(parse_public_key("abc").is_err());
        assert!(parse_public_key("").is_err());
    }
}
