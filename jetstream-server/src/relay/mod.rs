//! The relay (reference §7.7): `jetstream relay_server` runs in a DMZ; a private server
//! connects *out* to it (`--recv-relay-host/--recv-relay-port`) and the relay opens the public
//! ports on its behalf: UDP data (default 8886) and the TCP API (default 8886). It forwards
//! both as opaque bytes: the API is TLS between the sending server and the private server, and
//! the data are encrypted with keys derived from that TLS session, so the relay never holds a
//! key and never sees file contents.
//!
//! The control link (TCP, default 8887) carries frames: `u8 kind, u32 length (BE), payload`.
//! - `HELLO` (server → relay, JSON `{"version": 1}`), answered by `WELCOME` (JSON
//!   `{"dataPort", "apiPort"}`: the public ports).
//! - `DATAGRAM` (both ways): `[a, b, c, d, port_hi, port_lo]` (the public peer's IPv4 address
//!   and port: the source when it goes to the server, the destination when it comes back),
//!   then the datagram.
//! - `API_OPEN` (relay → server, `u64` id): a client connected to the public API port; the
//!   server opens a new connection to the control port whose first frame is `API_ACCEPT` (the
//!   same id), and from then on that connection carries the client's bytes both ways.
//! - `PING` / `PONG` (keep-alive, every 5 s).
//!
//! Tunnelling datagrams over TCP costs latency under loss (head-of-line blocking); the relay
//! is for reaching servers that cannot open ports, not for the fastest path.

pub mod client;
pub mod server;

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
}

/// Largest frame payload (a datagram plus its address, or a small JSON).
pub const MAX_FRAME: usize = 70_000;

/// Writes one frame.
///
/// # Errors
/// The I/O error.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too long"))?;
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Reads one frame.
///
/// # Errors
/// The I/O error, or a frame longer than [`MAX_FRAME`].
pub fn read_frame(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "relay frame too long",
        ));
    }
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
    }
}
