//! Whether a server on this machine may be trusted without its key (reference §3.1: a
//! connection to localhost needs no trusted certificate).
//!
//! A loopback port is not proof of who listens: when the server is down, any local user may
//! bind 8886 (an unprivileged port) and collect the passwords people type. So a loopback
//! server is trusted without its key only when its listening socket belongs to root or to the
//! user running the client. The owner is read from `/proc/net/tcp` and `/proc/net/tcp6`: the
//! row of the server's end of our connection (its local address is our peer, its remote
//! address is us) carries the uid of the socket, which an accepted socket inherits from the
//! listener. Where that cannot be read (no `/proc`, another network namespace's view), the
//! server is treated as another user's.
#![allow(unsafe_code)] // geteuid; see the SAFETY comment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Who owns the server's end of a loopback connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// Root or this client's user: trusted without its key.
    Trusted,
    /// Another user (uid).
    Other(u32),
    /// Not found in `/proc/net/tcp*`.
    Unknown,
}

impl Listener {
    /// Why a loopback server is checked as a remote one, for the client's message.
    pub(crate) fn why_checked(self) -> Option<String> {
        match self {
            Self::Trusted => None,
            Self::Other(uid) => Some(format!(
                "the server on this machine runs as uid {uid}, neither root nor you, so its key \
                 is checked as a remote server's"
            )),
            Self::Unknown => Some(
                "the owner of the server's socket on this machine could not be read from \
                 /proc/net/tcp, so its key is checked as a remote server's"
                    .to_owned(),
            ),
        }
    }
}

/// Whether `ip` is a loopback address (an IPv4-mapped IPv6 one too).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The owner of the server's end of the connection from `local` to `peer`.
pub(crate) fn listener(local: SocketAddr, peer: SocketAddr) -> Listener {
    let owner = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| owner_in(&table, local, peer));
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    let me = unsafe { libc::geteuid() };
    match owner {
        Some(uid) if uid == 0 || uid == me => Listener::Trusted,
        Some(uid) => Listener::Other(uid),
        None => Listener::Unknown,
    }
}

/// The uid of the row of `table` (`/proc/net/tcp` format) whose local address is `peer` and
/// whose remote address is `local`.
fn owner_in(table: &str, local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let canon = |a: SocketAddr| (a.ip().to_canonical(), a.port());
    let (local, peer) = (canon(local), canon(peer));
    table.lines().skip(1).find_map(|row| {
        let f: Vec<&str> = row.split_whitespace().collect();
        let (mine, theirs) = (parse_addr(f.get(1)?)?, parse_addr(f.get(2)?)?);
        (canon(mine) == peer && canon(theirs) == local)
            .then(|| f.get(7)?.parse().ok())
            .flatten()
    })
}

/// An address as `/proc/net/tcp*` prints it: the IP as 32-bit words of native byte order in
/// hex, `:`, the port in hex.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn loopback_is_only_127_8_and_colon_colon_1() {
        for ip in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.2",
            "192.168.1.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn proc_addresses_parse() {
        let v4 = if cfg!(target_endian = "little") {
            "0100007F:22B6"
        } else {
            "7F000001:22B6"
        };
        assert_eq!(parse_addr(v4), Some("127.0.0.1:8886".parse().unwrap()));
        let v6 = if cfg!(target_endian = "little") {
            "00000000000000000000000001000000:0050"
        } else {
            "00000000000000000000000000000001:0050"
        };
        assert_eq!(parse_addr(v6), Some("[::1]:80".parse().unwrap()));
        assert_eq!(parse_addr("zz:1"), None);
        assert_eq!(parse_addr("0100007F"), None);
    }

    #[test]
    fn the_server_end_of_a_connection_is_found_with_its_owner() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:22B6 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1 1\n\
            1: 0100007F:22B6 0100007F:C000 01 00000000:00000000 00:00000000 00000000  1002        0 2 1\n\
            2: 0100007F:C000 0100007F:22B6 01 00000000:00000000 00:00000000 00000000  1003        0 3 1\n";
        if cfg!(target_endian = "big") {
            return;
        }
        let (client, server): (SocketAddr, SocketAddr) = (
            "127.0.0.1:49152".parse().unwrap(),
            "127.0.0.1:8886".parse().unwrap(),
        );
        assert_eq!(owner_in(table, client, server), Some(1002));
        assert_eq!(owner_in(table, server, client), Some(1003));
        // A dual-stack server's end shows the IPv4-mapped address in tcp6.
        let six = "head\n0: 0000000000000000FFFF00000100007F:22B6 0000000000000000FFFF00000100007F:C000 01 0:0 0:0 0 1004 0 4 1\n";
        assert_eq!(owner_in(six, client, server), Some(1004));
    }

    #[test]
    fn a_real_listener_of_this_process_is_trusted() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let got = listener(c.local_addr().unwrap(), c.peer_addr().unwrap());
        assert_eq!(got, Listener::Trusted);
        let l6 = TcpListener::bind("[::1]:0");
        if let Ok(l6) = l6 {
            let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
            assert_eq!(
                listener(c6.local_addr().unwrap(), c6.peer_addr().unwrap()),
                Listener::Trusted
            );
        }
    }
}
