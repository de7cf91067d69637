//! The private server's side of the relay (`jetstream server --recv-relay-host H
//! --recv-relay-port P`): keeps a control connection to the relay (reconnecting with backoff
//! when it drops or the relay restarts), hands the relay's datagrams to the local receive
//! engine from one local UDP socket per public peer (so the engine's answers find their way
//! back), and serves the API clients the relay announces as if they had connected directly
//! (with their public address, so TLS and the remote-control rules apply to them).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::{ClientConnection, StreamOwned};

use super::tls_io::{self, LinkSender, TlsConn};
use super::{datagram_frame, decode_datagram, kind, read_frame, write_frame};
use crate::server::config::ServerArgs;
use crate::server::Server;
use crate::tls::Identity;
use jetstream_client::client::{ClientError, Trust};

/// What the server reports about its relay (`receiver.relayIP` / `relayPort`).
#[derive(Debug, Default)]
pub struct RelayState {
    /// The relay's address as configured.
    pub relay: Option<SocketAddr>,
    /// The relay's public UDP data port, once registered.
    pub data_port: Mutex<Option<u16>>,
}

/// Time allowed to connect to the relay and for each answer before the link is up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection to the relay failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkError {
    /// No TCP connection.
    Connect(io::Error),
    /// The TLS handshake failed, or the relay's key is not the pinned one.
    Handshake(ClientError),
    /// The relay refused the registration (another server's link is live), with its reason.
    Refused(String),
    /// The relay closed the connection instead of answering `HELLO`: most likely it does not
    /// authorize our key (TLS 1.3 checks the client's certificate after the client considers
    /// the handshake done, so the refusal arrives here).
    NoAnswer(io::Error),
    /// The relay answered something unexpected.
    Protocol(String),
    /// The connection failed.
    Io(io::Error),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Handshake(e) => write!(f, "{e}"),
            Self::Refused(why) => write!(f, "the relay refused the registration: {why}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::NoAnswer(e) => write!(
                f,
                "the relay closed the connection without answering ({e}): is this server's \
                 public key in its --authorized-server-key?"
            ),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LinkError {}

impl From<io::Error> for LinkError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// An authenticated TLS connection to a relay's control port (blocking; frames with
/// [`write_frame`] / [`read_frame`]).
#[derive(Debug)]
pub struct ControlStream(StreamOwned<ClientConnection, TcpStream>);

impl Read for ControlStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ControlStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The public ports a relay opened for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    /// The public UDP data port.
    pub data_port: Option<u16>,
    /// The public API port.
    pub api_port: Option<u16>,
}

/// Connects to the relay's control port over TLS, presenting `identity` and requiring the
/// relay's key to be `relay_key` (`None`: any key, the `--insecure-accept-any-relay` mode).
///
/// # Errors
/// No connection, or the handshake failed (a relay with another key is
/// [`ClientError::HostKeyChanged`] inside [`LinkError::Handshake`]).
pub fn connect(
    relay: SocketAddr,
    relay_key: Option<&str>,
    identity: &Identity,
) -> Result<ControlStream, LinkError> {
    let tcp = TcpStream::connect_timeout(&relay, CONNECT_TIMEOUT).map_err(LinkError::Connect)?;
    let _ = tcp.set_nodelay(true);
    // A relay that accepts but never answers must not hang us; once the link runs, the
    // PONGs to our pings keep it inside its idle limit.
    tcp.set_read_timeout(Some(super::LINK_IDLE))?;
    tcp.set_write_timeout(Some(super::LINK_IDLE))?;
    let trust = Trust::Pinned(relay_key.map(str::to_owned));
    let (tls, _key) = jetstream_client::client::handshake(
        tcp,
        &relay.ip().to_string(),
        relay.port(),
        &trust,
        Some(&identity.client_cert()),
    )
    .map_err(LinkError::Handshake)?;
    Ok(ControlStream(tls))
}

/// Registers as the relay's private server (`HELLO`), returning its public ports.
///
/// # Errors
/// The relay refused ([`LinkError::Refused`]: another server is registered), closed the
/// connection (it does not authorize our key) or answered something else.
pub fn register(s: &mut ControlStream) -> Result<Welcome, LinkError> {
    write_frame(s, kind::HELLO, br#"{"version": 1}"#)
        .and_then(|()| s.flush())
        .map_err(LinkError::NoAnswer)?;
    let (k, payload) = read_frame(s).map_err(LinkError::NoAnswer)?;
    match k {
        kind::WELCOME => {
            let w: serde_json::Value = serde_json::from_slice(&payload)
                .map_err(|e| LinkError::Protocol(format!("bad WELCOME: {e}")))?;
            let port = |name: &str| w[name].as_u64().and_then(|p| u16::try_from(p).ok());
            Ok(Welcome {
                data_port: port("dataPort"),
                api_port: port("apiPort"),
            })
        }
        kind::REFUSED => Err(LinkError::Refused(
            String::from_utf8_lossy(&payload).into_owned(),
        )),
        other => Err(LinkError::Protocol(format!(
            "the relay answered frame {other} to HELLO"
        ))),
    }
}

/// The relay's key as `--recv-relay-public-key` pins it (`None` with
/// `--insecure-accept-any-relay`); refuses a relay link that would trust anyone.
///
/// # Errors
/// `--recv-relay-host` without either flag, both flags, or a malformed key.
pub fn relay_key(args: &ServerArgs) -> Result<Option<String>, String> {
    let key = args
        .recv_relay_public_key
        .as_deref()
        .map(super::parse_public_key)
        .transpose()
        .map_err(|e| format!("--recv-relay-public-key: {e}"))?;
    match (&args.recv_relay_host, key, args.insecure_accept_any_relay) {
        (_, Some(_), true) => Err(
            "--recv-relay-public-key and --insecure-accept-any-relay contradict each other".into(),
        ),
        (Some(_), None, false) => Err("--recv-relay-host needs --recv-relay-public-key: the \
             relay's public key, which `jetstream relay_server --print-public-key` prints on \
             the relay host (and the relay logs at start); --insecure-accept-any-relay would \
             trust whoever answers at that address"
            .into()),
        (_, key, _) => Ok(key),
    }
}

/// Starts the relay link in the background, pinning the relay's key to `pin` (what
/// [`relay_key`] made of the flags at start; `None` only with --insecure-accept-any-relay).
pub fn start(server: &Arc<Server>, relay: SocketAddr, pin: Option<String>, engine: SocketAddr) {
    let server = server.clone();
    crate::log!(
        "relay: registering with {relay} as public key {} ({}); relay key {}",
        server.identity.public_key(),
        server.identity.fingerprint(),
        pin.as_deref().map_or_else(
            || "NOT CHECKED (--insecure-accept-any-relay)".to_owned(),
            jetstream_client::tls::fingerprint_of
        ),
    );
    let _ = std::thread::Builder::new()
        .name("relay-link".into())
        .spawn(move || {
            let mut backoff = Duration::from_secs(1);
            while !server.is_stopping() {
                let mut registered = false;
                if let Err(e) = link(&server, relay, pin.as_deref(), engine, &mut registered) {
                    if registered {
                        // A link that worked starts the back-off again.
                        backoff = Duration::from_secs(1);
                    }
                    crate::warn!("relay: {relay}: {e}; retrying in {backoff:?}");
                }
                *server.relay.data_port.lock() = None;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
}

type Peers = Arc<Mutex<HashMap<SocketAddrV4, (Arc<UdpSocket>, Instant)>>>;

/// One session with the relay; returns when it ends (always with the reason), having set
/// `registered` once the relay welcomed us.
fn link(
    server: &Arc<Server>,
    relay: SocketAddr,
    pin: Option<&str>,
    engine: SocketAddr,
    registered: &mut bool,
) -> Result<(), LinkError> {
    let mut s = connect(relay, pin, &server.identity)?;
    let welcome = register(&mut s)?;
    *server.relay.data_port.lock() = welcome.data_port;
    *registered = true;
    crate::log!(
        "relay: registered with {relay} (public data port {:?})",
        welcome.data_port
    );
    let ControlStream(StreamOwned { conn, sock }) = s;
    let (link, sender) = TlsConn::new(conn, sock).and_then(tls_io::Link::new)?;
    let peers: Peers = Arc::new(Mutex::new(HashMap::new()));
    // Keep-alive, and the end of idle peer mappings.
    let (s2, p2) = (sender.clone(), peers.clone());
    let alive = Arc::new(AtomicBool::new(true));
    let a2 = alive.clone();
    std::thread::Builder::new()
        .name("relay-ping".into())
        .spawn(move || {
            while a2.load(Ordering::Relaxed) {
                std::thread::sleep(super::PING_INTERVAL);
                if !s2.send(kind::PING, &[], super::PING_INTERVAL) {
                    break;
                }
                p2.lock()
                    .retain(|_, (_, last)| last.elapsed() < Duration::from_secs(120));
            }
        })?;
    let result = link.run(super::LINK_IDLE, |k, payload, _replies| match k {
        kind::DATAGRAM => {
            let Some((from, d)) = decode_datagram(payload) else {
                return;
            };
            match peer_socket(&peers, &sender, from, engine) {
                Ok(sock) => {
                    let _ = sock.send(d);
                }
                Err(e) => crate::warn!("relay: no local socket for {from}: {e}"),
            }
        }
        kind::API_OPEN if payload.len() >= 14 => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&payload[..8]);
            let Some((client, _)) = decode_datagram(&payload[8..]) else {
                return;
            };
            let server = server.clone();
            let pin = pin.map(str::to_owned);
            let _ = std::thread::Builder::new()
                .name("relay-api".into())
                .spawn(move || accept_api(&server, relay, pin.as_deref(), id, client));
        }
        _ => {}
    });
    alive.store(false, Ordering::Relaxed);
    peers.lock().clear();
    result.map_err(LinkError::Io)
}

/// The local socket standing for public peer `from`: datagrams from it go to the engine,
/// and what the engine answers goes back through the relay to `from`.
fn peer_socket(
    peers: &Peers,
    sender: &LinkSender,
    from: SocketAddrV4,
    engine: SocketAddr,
) -> std::io::Result<Arc<UdpSocket>> {
    let mut map = peers.lock();
    if let Some((s, last)) = map.get_mut(&from) {
        *last = Instant::now();
        return Ok(s.clone());
    }
    let local = if engine.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], engine.port()))
    } else {
        engine
    };
    let sock = UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
    sock.connect(local)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let sock = Arc::new(sock);
    map.insert(from, (sock.clone(), Instant::now()));
    let (s2, w2, p2) = (sock.clone(), sender.clone(), peers.clone());
    std::thread::Builder::new()
        .name("relay-peer".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            loop {
                match s2.recv(&mut buf) {
                    Ok(n) => {
                        // Dropped when the link is congested (like a full socket buffer);
                        // the thread ends with the mapping, below.
                        w2.try_send_frame(datagram_frame(from, &buf[..n]));
                    }
                    Err(_) => {
                        // Idle: stop when the mapping is gone.
                        let still = p2
                            .lock()
                            .get(&from)
                            .is_some_and(|(s, _)| Arc::ptr_eq(s, &s2));
                        if !still {
                            break;
                        }
                    }
                }
            }
        })?;
    Ok(sock)
}

/// Opens the accepting connection for API client `id` (authenticated like the link) and
/// serves the client here, through a loopback socket pair (the API serves TCP sockets).
fn accept_api(
    server: &Arc<Server>,
    relay: SocketAddr,
    pin: Option<&str>,
    id: [u8; 8],
    client: SocketAddrV4,
) {
    let mut s = match connect(relay, pin, &server.identity) {
        Ok(s) => s,
        Err(e) => {
            crate::warn!("relay: api client {client}: {e}");
            return;
        }
    };
    if write_frame(&mut s, kind::API_ACCEPT, &id)
        .and_then(|()| s.flush())
        .is_err()
    {
        return;
    }
    let (inner, outer) = match loopback_pair() {
        Ok(p) => p,
        Err(e) => {
            crate::warn!("relay: api client {client}: {e}");
            return;
        }
    };
    let ControlStream(StreamOwned { conn, sock }) = s;
    let spliced = std::thread::Builder::new()
        .name("relay-api-splice".into())
        .spawn(move || {
            let _ = TlsConn::new(conn, sock).and_then(|tls| tls_io::splice(tls, outer, &|_| {}));
        });
    if spliced.is_ok() {
        crate::server::api::serve_as(server, inner, SocketAddr::V4(client), true);
    }
}

/// Two connected loopback TCP sockets. Another local process connecting to the short-lived
/// listener first is dropped: only our own connection is paired.
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let ours = TcpStream::connect(listener.local_addr()?)?;
    let want = ours.local_addr()?;
    for _ in 0..16 {
        let (theirs, from) = listener.accept()?;
        if from == want {
            return Ok((theirs, ours));
        }
    }
    Err(io::Error::other("cannot pair a loopback socket"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::FromArgs;

    fn key(extra: &[&str]) -> Result<Option<String>, String> {
        relay_key(&ServerArgs::from_args(&["jetstream server"], extra).unwrap())
    }

    #[test]
    fn a_relay_link_needs_the_relay_key_or_an_explicit_insecure_flag() {
        let k = "3059301306072A8648CE3D020106082A8648CE3D03010703420004AA";
        assert_eq!(key(&[]).unwrap(), None, "no relay, nothing to pin");
        let e = key(&["--recv-relay-host", "r"]).unwrap_err();
        assert!(e.contains("--recv-relay-public-key"), "{e}");
        let pinned = key(&["--recv-relay-host", "r", "--recv-relay-public-key", k]).unwrap();
        assert_eq!(pinned, Some(k.to_ascii_lowercase()));
        let any = key(&["--recv-relay-host", "r", "--insecure-accept-any-relay"]).unwrap();
        assert_eq!(any, None);
        assert!(key(&["--recv-relay-public-key", "zz"]).is_err());
        assert!(key(&[
            "--recv-relay-host",
            "r",
            "--recv-relay-public-key",
            k,
            "--insecure-accept-any-relay"
        ])
        .is_err());
    }
}
