//! Readiness for systemd (`Type=notify`, see `packaging/systemd/`): once its ports are bound,
//! the server (and the relay) sends `READY=1` to the datagram socket named by
//! `$NOTIFY_SOCKET`, the `sd_notify(3)` protocol. Without that variable (not started by
//! systemd) nothing is sent.
//!
//! A few lines over `std`'s Unix datagram sockets; no libsystemd.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tells systemd the service is ready (`READY=1`, with `status` as `STATUS=`), if it started
/// us with `$NOTIFY_SOCKET`. Failures are logged, never fatal: a server that works but cannot
/// say so is better than none.
pub fn ready(status: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("READY=1\nSTATUS={status}\nMAINPID={}\n", std::process::id());
    if let Err(e) = send(&socket, message.as_bytes()) {
        crate::error!("systemd: cannot notify {}: {e}", socket.to_string_lossy());
    }
}

/// Sends one datagram to `socket`: a path, or an abstract name written `@name`.
fn send(socket: &OsStr, message: &[u8]) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let addr = match bytes.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
        Some((b'/', _)) => SocketAddr::from_pathname(socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither a path nor @name",
            ))
        }
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(message, &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        let name = format!("jetstream-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(OsStr::new(&format!("@{name}")), b"READY=1\n").unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn a_malformed_socket_name_is_an_error() {
        assert!(send(OsStr::new("relative/path"), b"READY=1\n").is_err());
        assert!(send(OsStr::new(""), b"READY=1\n").is_err());
    }
}
