//! The private server's side of the relay (`jetstream server --recv-relay-host H
//! --recv-relay-port P`): keeps a control connection to the relay (reconnecting with backoff
//! when it drops or the relay restarts), hands the relay's datagrams to the local receive
//! engine from one local UDP socket per public peer (so the engine's answers find their way
//! back), and serves the API clients the relay announces as if they had connected directly
//! (with their public address, so TLS and the remote-control rules apply to them).

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{decode_datagram, encode_datagram, kind, read_frame, write_frame};
use crate::server::Server;

/// What the server reports about its relay (`receiver.relayIP` / `relayPort`).
#[derive(Debug, Default)]
pub struct RelayState {
    /// The relay's address as configured.
    pub relay: Option<SocketAddr>,
    /// The relay's public UDP data port, once registered.
    pub data_port: Mutex<Option<u16>>,
}

/// Starts the relay link in the background.
pub fn start(server: &Arc<Server>, relay: SocketAddr, engine: SocketAddr) {
    let server = server.clone();
    let _ = std::thread::Builder::new()
        .name("relay-link".into())
        .spawn(move || {
            let mut backoff = Duration::from_secs(1);
            while !server.is_stopping() {
                let mut registered = false;
                if let Err(e) = link(&server, relay, engine, &mut registered) {
                    if registered {
                        // A link that worked starts the back-off again.
                        backoff = Duration::from_secs(1);
                    }
                    crate::log!("relay: {relay}: {e}; retrying in {backoff:?}");
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
    engine: SocketAddr,
    registered: &mut bool,
) -> std::io::Result<()> {
    let mut c = TcpStream::connect_timeout(&relay, Duration::from_secs(10))?;
    let _ = c.set_nodelay(true);
    // A relay that accepts but never answers must not hang us: the PONGs to our pings (every
    // 5 s) keep a healthy link inside this.
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    write_frame(&mut c, kind::HELLO, br#"{"version": 1}"#)?;
    let (k, welcome) = read_frame(&mut c)?;
    if k != kind::WELCOME {
        return Err(std::io::Error::other("the relay did not welcome us"));
    }
    let w: serde_json::Value = serde_json::from_slice(&welcome).unwrap_or_default();
    let data_port = w["dataPort"].as_u64().and_then(|p| u16::try_from(p).ok());
    *server.relay.data_port.lock() = data_port;
    *registered = true;
    crate::log!("relay: registered with {relay} (public data port {data_port:?})");
    let writer = Arc::new(Mutex::new(c.try_clone()?));
    let peers: Peers = Arc::new(Mutex::new(HashMap::new()));
    // Keep-alive, and the end of idle peer mappings.
    let (w2, p2) = (writer.clone(), peers.clone());
    let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let a2 = alive.clone();
    std::thread::Builder::new()
        .name("relay-ping".into())
        .spawn(move || {
            while a2.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(5));
                if write_frame(&mut *w2.lock(), kind::PING, &[]).is_err() {
                    break;
                }
                p2.lock()
                    .retain(|_, (_, last)| last.elapsed() < Duration::from_secs(120));
            }
        })?;
    let result = loop {
        let (k, payload) = match read_frame(&mut c) {
            Ok(f) => f,
            Err(e) => break Err(e),
        };
        match k {
            kind::DATAGRAM => {
                let Some((from, d)) = decode_datagram(&payload) else {
                    continue;
                };
                let sock = match peer_socket(&peers, &writer, from, engine) {
                    Ok(s) => s,
                    Err(e) => {
                        crate::log!("relay: no local socket for {from}: {e}");
                        continue;
                    }
                };
                let _ = sock.send(d);
            }
            kind::API_OPEN if payload.len() >= 14 => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&payload[..8]);
                let Some((client, _)) = decode_datagram(&payload[8..]) else {
                    continue;
                };
                let server = server.clone();
                let _ = std::thread::Builder::new()
                    .name("relay-api".into())
                    .spawn(move || accept_api(&server, relay, id, client));
            }
            _ => {}
        }
    };
    alive.store(false, std::sync::atomic::Ordering::Relaxed);
    peers.lock().clear();
    result
}

/// The local socket standing for public peer `from`: datagrams from it go to the engine,
/// and what the engine answers goes back through the relay to `from`.
fn peer_socket(
    peers: &Peers,
    writer: &Arc<Mutex<TcpStream>>,
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
    let (s2, w2, p2) = (sock.clone(), writer.clone(), peers.clone());
    std::thread::Builder::new()
        .name("relay-peer".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            loop {
                match s2.recv(&mut buf) {
                    Ok(n) => {
                        if write_frame(
                            &mut *w2.lock(),
                            kind::DATAGRAM,
                            &encode_datagram(from, &buf[..n]),
                        )
                        .is_err()
                        {
                            break;
                        }
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

/// Opens the accepting connection for API client `id` and serves it here.
fn accept_api(server: &Arc<Server>, relay: SocketAddr, id: [u8; 8], client: SocketAddrV4) {
    let Ok(mut c) = TcpStream::connect_timeout(&relay, Duration::from_secs(10)) else {
        return;
    };
    if write_frame(&mut c, kind::API_ACCEPT, &id).is_err() {
        return;
    }
    crate::server::api::serve_as(server, c, SocketAddr::V4(client), true);
}
