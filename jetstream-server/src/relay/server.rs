//! `jetstream relay_server`: the DMZ side of the relay (see the module docs of
//! [`crate::relay`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;
use parking_lot::Mutex;
use serde_json::json;

use super::{decode_datagram, encode_datagram, kind, read_frame, v4, write_frame};

/// The JetStream relay: runs in a DMZ, accepts a private server's connection on the control
/// port and opens the public UDP data port and TCP API port on its behalf, forwarding both
/// as opaque bytes.
#[derive(FromArgs, Debug, Clone)]
pub struct RelayArgs {
    /// TCP port the private server connects to (default 8887)
    #[argh(option, default = "8887")]
    pub control_port: u16,
    /// address of the control port (default 0.0.0.0)
    #[argh(option, default = "IpAddr::from([0, 0, 0, 0])")]
    pub control_host: IpAddr,
    /// public UDP data port opened for the private server (default 8886)
    #[argh(option, default = "8886")]
    pub data_port: u16,
    /// public TCP API port forwarded to the private server (default 8886)
    #[argh(option, default = "8886")]
    pub api_port: u16,
    /// address of the public ports (default 0.0.0.0)
    #[argh(option, default = "IpAddr::from([0, 0, 0, 0])")]
    pub public_host: IpAddr,
    /// append every byte forwarded (both ways, both protocols) to this file: proof, for
    /// audits and tests, that the relay only ever sees ciphertext
    #[argh(option)]
    pub capture: Option<std::path::PathBuf>,
}

struct Relay {
    udp: UdpSocket,
    /// The registered private server's control connection (writes).
    link: Mutex<Option<Arc<Mutex<TcpStream>>>>,
    /// Public API clients waiting for the private server's `API_ACCEPT`.
    pending: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    capture: Option<Mutex<File>>,
    welcome: Vec<u8>,
}

impl Relay {
    fn capture(&self, bytes: &[u8]) {
        if let Some(f) = &self.capture {
            let _ = f.lock().write_all(bytes);
        }
    }

    fn send_to_server(&self, k: u8, payload: &[u8]) -> bool {
        let link = self.link.lock().clone();
        match link {
            Some(l) => write_frame(&mut *l.lock(), k, payload).is_ok(),
            None => false,
        }
    }
}

/// Runs the relay; returns an exit code on a start-up failure.
pub fn run(args: &RelayArgs) -> i32 {
    match start(args) {
        Ok(()) => 0,
        Err(e) => {
            crate::log!("jetstream relay_server: {e}");
            1
        }
    }
}

fn start(a: &RelayArgs) -> Result<(), String> {
    let udp = UdpSocket::bind((a.public_host, a.data_port)).map_err(|e| {
        format!(
            "cannot open the public UDP port {}:{}: {e}",
            a.public_host, a.data_port
        )
    })?;
    let api = TcpListener::bind((a.public_host, a.api_port)).map_err(|e| {
        format!(
            "cannot open the public API port {}:{}: {e}",
            a.public_host, a.api_port
        )
    })?;
    let control = TcpListener::bind((a.control_host, a.control_port)).map_err(|e| {
        format!(
            "cannot open the control port {}:{}: {e}",
            a.control_host, a.control_port
        )
    })?;
    // All three ports are bound (systemd's Type=notify).
    crate::notify::ready("ports bound");
    let capture = match &a.capture {
        Some(p) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("--capture {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let welcome = serde_json::to_vec(&json!({
        "dataPort": udp.local_addr().map(|x| x.port()).unwrap_or(a.data_port),
        "apiPort": api.local_addr().map(|x| x.port()).unwrap_or(a.api_port),
    }))
    .map_err(|e| e.to_string())?;
    let relay = Arc::new(Relay {
        udp,
        link: Mutex::new(None),
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        capture,
        welcome,
    });
    crate::log!(
        "relay: control tcp {}:{}, public udp {}:{}, public api tcp {}:{}",
        a.control_host,
        a.control_port,
        a.public_host,
        a.data_port,
        a.public_host,
        a.api_port
    );
    let r = relay.clone();
    spawn("relay-udp", move || udp_loop(&r))?;
    let r = relay.clone();
    spawn("relay-api", move || {
        for c in api.incoming().flatten() {
            api_client(&r, c);
        }
    })?;
    for c in control.incoming().flatten() {
        let r = relay.clone();
        let _ = spawn("relay-control", move || control_conn(&r, c));
    }
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Public datagrams go to the private server with their source address.
fn udp_loop(r: &Relay) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = r.udp.recv_from(&mut buf) else {
            continue;
        };
        let Some(from) = v4(from) else { continue };
        r.capture(&buf[..n]);
        // Without a registered server the datagram is dropped (the sender retransmits).
        r.send_to_server(kind::DATAGRAM, &encode_datagram(from, &buf[..n]));
    }
}

/// A public API client: parked until the private server accepts it.
fn api_client(r: &Arc<Relay>, c: TcpStream) {
    let Ok(peer) = c.peer_addr() else { return };
    let Some(peer4) = v4(peer) else { return };
    let id = r.next_id.fetch_add(1, Ordering::Relaxed);
    r.pending.lock().insert(id, c);
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&encode_datagram(peer4, &[]));
    if !r.send_to_server(kind::API_OPEN, &payload) {
        // No private server: close the client at once.
        r.pending.lock().remove(&id);
        return;
    }
    // Give up on a client the server never picks up.
    let r = r.clone();
    let _ = spawn("relay-api-timeout", move || {
        std::thread::sleep(Duration::from_secs(15));
        r.pending.lock().remove(&id);
    });
}

/// A connection to the control port: a server registering, or accepting an API client.
fn control_conn(r: &Arc<Relay>, mut c: TcpStream) {
    let peer = c.peer_addr().map_or_else(|_| "?".into(), |p| p.to_string());
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok((k, payload)) = read_frame(&mut c) else {
        return;
    };
    match k {
        kind::HELLO => serve_link(r, c, &peer),
        kind::API_ACCEPT if payload.len() == 8 => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&payload);
            let Some(client) = r.pending.lock().remove(&u64::from_be_bytes(id)) else {
                return;
            };
            let _ = c.set_read_timeout(None);
            splice(r, client, c);
        }
        _ => {}
    }
}

fn serve_link(r: &Arc<Relay>, c: TcpStream, peer: &str) {
    let Ok(writer) = c.try_clone() else { return };
    let writer = Arc::new(Mutex::new(writer));
    if write_frame(&mut *writer.lock(), kind::WELCOME, &r.welcome).is_err() {
        return;
    }
    *r.link.lock() = Some(writer.clone());
    crate::log!("relay: private server {peer} registered");
    // (The 30 s read timeout set in `control_conn` stays: the server pings every 5 s.)
    let mut reader = c;
    while let Ok((k, payload)) = read_frame(&mut reader) {
        match k {
            kind::DATAGRAM => {
                if let Some((to, d)) = decode_datagram(&payload) {
                    r.capture(d);
                    let _ = r.udp.send_to(d, SocketAddr::V4(to));
                }
            }
            kind::PING => {
                let _ = write_frame(&mut *writer.lock(), kind::PONG, &[]);
            }
            _ => {}
        }
    }
    let mut link = r.link.lock();
    if link.as_ref().is_some_and(|l| Arc::ptr_eq(l, &writer)) {
        *link = None;
        crate::log!("relay: private server {peer} left");
    }
}

/// Copies bytes both ways between a public client and the server's accepting connection.
fn splice(r: &Arc<Relay>, client: TcpStream, server: TcpStream) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let r2 = r.clone();
    let _ = spawn("relay-splice", move || copy(&r2, client, s2));
    copy(r, server, c2);
}

fn copy(r: &Relay, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                r.capture(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
