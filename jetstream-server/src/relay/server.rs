//! `jetstream relay_server`: the DMZ side of the relay (see the module docs of
//! [`crate::relay`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::{ArgsInfo, FromArgs};
use parking_lot::Mutex;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::json;

use super::metrics::Dropped;
use super::tls_io::{self, LinkSender, TlsConn};
use super::{
    datagram_frame, decode_datagram, encode_datagram, frame, kind, read_frame, v4, write_frame,
};
use crate::tls::{Identity, KeyClientCert};
use jetstream_client::tls::fingerprint_of;

/// The JetStream relay: runs in a DMZ, accepts a private server's connection on the control
/// port and opens the public UDP data port and TCP API port on its behalf, forwarding both
/// as opaque bytes. The control port is TLS, and only an authorized private server (by its
/// public key) may register. Every option can also be set in the configuration file
/// (default /etc/jetstream/relay.toml, if it exists): `key = value` with the long flag name as
/// the key; a flag on the command line wins over the file.
#[derive(FromArgs, ArgsInfo, Debug, Clone)]
pub struct RelayArgs {
    /// the configuration file (default /etc/jetstream/relay.toml when it exists; "none": no
    /// file)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// read no configuration file, not even the default one
    #[argh(switch)]
    pub no_config: bool,
    /// print the effective configuration (file and command line) as TOML and exit
    #[argh(switch)]
    pub print_config: bool,
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
    pub capture: Option<PathBuf>,
    /// directory of the relay's own TLS identity (tls/server.key, mode 0600, created at
    /// first start; its public key is what private servers pin) (default
    /// /var/lib/jetstream/relay)
    #[argh(option, default = "PathBuf::from(\"/var/lib/jetstream/relay\")")]
    pub state_dir: PathBuf,
    /// public key (hex, the publicKey of `jetstream api getServerInfo` on it) of a private
    /// server allowed to register (repeatable); required unless
    /// --insecure-accept-any-server
    #[argh(option)]
    pub authorized_server_key: Vec<String>,
    /// let any private server that reaches the control port register (still over TLS):
    /// anyone who can reach the port could then take the public ports over
    #[argh(switch)]
    pub insecure_accept_any_server: bool,
    /// print the relay's public key (creating its identity if there is none yet) and exit
    #[argh(switch)]
    pub print_public_key: bool,
    /// the least important events logged: error, warn, info or debug (default info)
    #[argh(option, default = "crate::server::log::Level::Info")]
    pub log_level: crate::server::log::Level,
    /// serve Prometheus metrics over HTTP at ADDR:PORT (GET /metrics; a bare PORT means
    /// 127.0.0.1:PORT); default: off. Unauthenticated: keep them on loopback or a trusted
    /// network
    #[argh(option)]
    pub metrics_address: Option<String>,
}

impl crate::config_file::FileConfig for RelayArgs {
    const COMMAND: &'static str = "jetstream relay_server";
    const DEFAULT_PATH: &'static str = "/etc/jetstream/relay.toml";
    const COMMAND_LINE_ONLY: &'static [&'static str] =
        &["config", "no-config", "print-config", "print-public-key"];

    fn config_flag(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    fn no_config(&self) -> bool {
        self.no_config
    }

    fn print_config(&self) -> bool {
        self.print_config
    }
}

/// Public API clients waiting for the private server at once.
const MAX_PENDING: usize = 256;
/// How long a public API client waits for the private server to pick it up.
const PENDING_TIMEOUT: Duration = Duration::from_secs(15);
/// A public peer may be sent datagrams this long after it last sent one to the relay.
const PEER_TTL: Duration = Duration::from_secs(120);
/// Public peers remembered at once.
const MAX_PEERS: usize = 65_536;
/// A control connection gets this long for its TLS handshake and first frame.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections in their handshake at once (beyond: closed at once).
const MAX_HANDSHAKES: usize = 64;

/// The live registration.
#[derive(Debug)]
struct Live {
    id: u64,
    /// The registered server's public key (hex SPKI).
    key: String,
    peer: SocketAddr,
    sender: LinkSender,
}

struct Relay {
    udp: UdpSocket,
    /// The registered private server, if any: only one at a time.
    link: Mutex<Option<Live>>,
    next_link: AtomicU64,
    /// Public API clients waiting for the private server's `API_ACCEPT`.
    pending: Mutex<HashMap<u64, TcpStream>>,
    /// Public peers that sent to the data port recently: the only addresses the relay sends
    /// datagrams to.
    peers: Mutex<PeerTable>,
    /// Control connections between accept and their first frame.
    handshakes: AtomicUsize,
    tls: Arc<ServerConfig>,
    capture: Option<Mutex<File>>,
    welcome: Vec<u8>,
    counters: super::metrics::RelayCounters,
}

impl Relay {
    fn capture(&self, bytes: &[u8]) {
        if let Some(f) = &self.capture {
            let _ = f.lock().write_all(bytes);
        }
    }

    fn live_sender(&self) -> Option<LinkSender> {
        self.link.lock().as_ref().map(|l| l.sender.clone())
    }
}

/// The public peers that sent datagrams to the relay, and when they last did.
#[derive(Debug)]
struct PeerTable {
    seen: HashMap<SocketAddrV4, Instant>,
    last_purge: Instant,
}

impl PeerTable {
    fn new(now: Instant) -> Self {
        Self {
            seen: HashMap::new(),
            last_purge: now,
        }
    }

    /// Records a datagram from `from`; `false` when the table is full of live peers (the
    /// datagram is then dropped: it could not be answered).
    ///
    /// DoS note: a full table is purged at most once a second, so a flood of spoofed sources
    /// costs one pass over at most [`MAX_PEERS`] entries per second.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4) -> bool {
        if let Some(t) = self.seen.get_mut(&from) {
            *t = now;
            return true;
        }
        if self.seen.len() >= MAX_PEERS {
            if now.duration_since(self.last_purge) < Duration::from_secs(1) {
                return false;
            }
            self.last_purge = now;
            self.seen.retain(|_, t| now.duration_since(*t) < PEER_TTL);
            if self.seen.len() >= MAX_PEERS {
                return false;
            }
        }
        self.seen.insert(from, now);
        true
    }

    /// Whether `to` sent to the relay within [`PEER_TTL`].
    fn is_recent(&self, now: Instant, to: SocketAddrV4) -> bool {
        self.seen
            .get(&to)
            .is_some_and(|t| now.duration_since(*t) < PEER_TTL)
    }
}

/// The control port's TLS configuration: TLS 1.3, the relay's identity, a mandatory client
/// certificate whose key `--authorized-server-key` lists (any key with
/// `--insecure-accept-any-server`), checked by [`KeyClientCert`], and no session resumption
/// (a resumed session would not present the certificate again).
fn control_tls(identity: &Identity, keys: Option<Vec<String>>) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(KeyClientCert {
        keys,
        mandatory: true,
        allow_with: "--authorized-server-key",
        algorithms: provider.signature_verification_algorithms,
    });
    let (chain, key) = identity.chain_and_key();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The authorized keys, or `None` for any key; refuses a relay that nobody could use safely.
fn authorized_keys(a: &RelayArgs) -> Result<Option<Vec<String>>, String> {
    let keys = a
        .authorized_server_key
        .iter()
        .map(|k| super::parse_public_key(k).map_err(|e| format!("--authorized-server-key: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    match (keys.is_empty(), a.insecure_accept_any_server) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(keys)),
        (false, true) => Err(
            "--authorized-server-key and --insecure-accept-any-server contradict each other".into(),
        ),
        (true, false) => Err("no private server is authorized to register: give \
             --authorized-server-key with the private server's public key (the publicKey of \
             `jetstream api getServerInfo` on it; it also logs it when it connects to the \
             relay), or --insecure-accept-any-server to let anyone who reaches the control \
             port take the public ports over"
            .into()),
    }
}

/// Runs the relay; returns an exit code on a start-up failure.
pub fn run(args: &RelayArgs) -> i32 {
    crate::server::log::set_level(args.log_level);
    let result = if args.print_public_key {
        Identity::load_or_create(&args.state_dir)
            .map(|id| println!("{}", id.public_key()))
            .map_err(|e| e.to_string())
    } else {
        start(args)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            crate::error!("jetstream relay_server: {e}");
            1
        }
    }
}

fn start(a: &RelayArgs) -> Result<(), String> {
    let keys = authorized_keys(a)?;
    let identity = Identity::load_or_create(&a.state_dir).map_err(|e| e.to_string())?;
    let tls = Arc::new(control_tls(&identity, keys.clone())?);
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
    let metrics = crate::server::metrics::bind(a.metrics_address.as_deref())?;
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
        next_link: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        peers: Mutex::new(PeerTable::new(Instant::now())),
        handshakes: AtomicUsize::new(0),
        tls,
        capture,
        welcome,
        counters: super::metrics::RelayCounters::default(),
    });
    if let Some(l) = metrics {
        let r = relay.clone();
        crate::server::metrics::serve_http(
            l,
            move || r.counters.render(r.link.lock().is_some()),
            || false,
        )?;
    }
    crate::log!(
        "relay: public key {} ({}), state {}",
        identity.public_key(),
        identity.fingerprint(),
        a.state_dir.display()
    );
    match &keys {
        Some(keys) => crate::log!(
            "relay: private servers allowed to register: {}",
            keys.iter()
                .map(|k| fingerprint_of(k))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => crate::warn!(
            "relay: INSECURE: any private server that reaches the control port may register \
             (--insecure-accept-any-server)"
        ),
    }
    crate::log!(
        "relay: control tcp {}:{} (TLS), public udp {}:{}, public api tcp {}:{}",
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
        if relay.handshakes.fetch_add(1, Ordering::SeqCst) >= MAX_HANDSHAKES {
            relay.handshakes.fetch_sub(1, Ordering::SeqCst);
            crate::warn!("relay: too many control connections in their handshake: closed one");
            continue;
        }
        let r = relay.clone();
        if spawn("relay-control", move || control_conn(&r, c)).is_err() {
            relay.handshakes.fetch_sub(1, Ordering::SeqCst);
        }
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

/// Public datagrams go to the private server with their source address, and the source
/// becomes a peer the server may answer.
fn udp_loop(r: &Relay) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = r.udp.recv_from(&mut buf) else {
            continue;
        };
        let Some(from) = v4(from) else { continue };
        // Without a registered server the datagram is dropped (the sender retransmits).
        let Some(link) = r.live_sender() else {
            r.counters.dropped(Dropped::NoServer);
            continue;
        };
        if !r.peers.lock().handle_datagram(Instant::now(), from) {
            r.counters.dropped(Dropped::PeersFull);
            continue;
        }
        r.capture(&buf[..n]);
        if link.try_send_frame(datagram_frame(from, &buf[..n])) {
            r.counters.to_server(n);
        } else {
            r.counters.dropped(Dropped::LinkFull);
        }
    }
}

/// A public API client: parked until the registered private server accepts it.
fn api_client(r: &Arc<Relay>, c: TcpStream) {
    let Ok(peer) = c.peer_addr() else { return };
    let Some(peer4) = v4(peer) else { return };
    // No private server: the client is closed at once.
    let Some(link) = r.live_sender() else { return };
    // A random id: nothing about one client's id tells another's.
    let id = crate::server::objects::random_u64();
    {
        let mut pending = r.pending.lock();
        if pending.len() >= MAX_PENDING {
            crate::warn!("relay: api client {peer} closed: {MAX_PENDING} clients already wait");
            return;
        }
        pending.insert(id, c);
    }
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&encode_datagram(peer4, &[]));
    if !link.send(kind::API_OPEN, &payload, Duration::from_secs(5)) {
        r.pending.lock().remove(&id);
        return;
    }
    // Give up on a client the server never picks up.
    let r = r.clone();
    let _ = spawn("relay-api-timeout", move || {
        std::thread::sleep(PENDING_TIMEOUT);
        r.pending.lock().remove(&id);
    });
}

/// A connection to the control port: TLS with an authorized client key, then a server
/// registering (`HELLO`) or accepting an API client (`API_ACCEPT`).
fn control_conn(r: &Arc<Relay>, tcp: TcpStream) {
    let peer = tcp
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let first = handshake(r, tcp);
    r.handshakes.fetch_sub(1, Ordering::SeqCst);
    let (stream, key, k, payload) = match first {
        Ok(f) => f,
        Err(e) => {
            crate::warn!("relay: control connection from {peer} refused: {e}");
            return;
        }
    };
    match k {
        kind::HELLO => serve_link(r, stream, key, peer),
        kind::API_ACCEPT if payload.len() == 8 => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&payload);
            accept_api(r, stream, &key, peer, u64::from_be_bytes(id));
        }
        _ => crate::warn!("relay: control connection from {peer}: unexpected frame {k}"),
    }
}

type ControlStream = StreamOwned<ServerConnection, TcpStream>;

/// The TLS handshake (the client's key checked against `--authorized-server-key` by
/// [`KeyClientCert`]) and the first frame, within [`HANDSHAKE_TIMEOUT`].
fn handshake(r: &Relay, tcp: TcpStream) -> io::Result<(ControlStream, String, u8, Vec<u8>)> {
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let _ = tcp.set_nodelay(true);
    let conn = ServerConnection::new(r.tls.clone()).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    let key = jetstream_client::tls::peer_key(&s.conn)
        .ok_or_else(|| io::Error::other("no client certificate"))?;
    let (k, payload) = read_frame(&mut s)?;
    Ok((s, key, k, payload))
}

/// A private server registering: refused while another link is live, else served until it
/// goes.
fn serve_link(r: &Arc<Relay>, mut s: ControlStream, key: String, peer: SocketAddr) {
    let fp = fingerprint_of(&key);
    let mut live = r.link.lock();
    if let Some(l) = live.as_ref() {
        let reason = format!(
            "another private server ({}, {}) is registered with this relay",
            l.peer,
            fingerprint_of(&l.key)
        );
        drop(live);
        crate::warn!("relay: refused the registration of {peer} ({fp}): {reason}");
        let _ = write_frame(&mut s, kind::REFUSED, reason.as_bytes()).and_then(|()| s.flush());
        s.conn.send_close_notify();
        let _ = s.flush();
        return;
    }
    let StreamOwned { conn, sock } = s;
    let link = TlsConn::new(conn, sock).and_then(tls_io::Link::new);
    let (link, sender) = match link {
        Ok(l) => l,
        Err(e) => {
            crate::warn!("relay: private server {peer}: {e}");
            return;
        }
    };
    // The first frame out: queued before anyone else can reach the link.
    if !sender.try_send(kind::WELCOME, &r.welcome) {
        return;
    }
    let id = r.next_link.fetch_add(1, Ordering::Relaxed);
    *live = Some(Live {
        id,
        key,
        peer,
        sender,
    });
    drop(live);
    r.counters.registered();
    crate::log!("relay: private server {peer} ({fp}) registered");
    let mut warned = false;
    let end = link.run(super::LINK_IDLE, |k, payload, replies| match k {
        kind::DATAGRAM => {
            let Some((to, d)) = decode_datagram(payload) else {
                return;
            };
            // Only to a peer that has just sent to us: never a reflector towards an address
            // the control link names.
            if !r.peers.lock().is_recent(Instant::now(), to) {
                r.counters.dropped(Dropped::UnknownPeer);
                if !warned {
                    crate::warn!(
                        "relay: dropping datagrams from the private server to {to}, which has \
                         not sent to the relay (further drops are not logged)"
                    );
                    warned = true;
                }
                return;
            }
            r.capture(d);
            if r.udp.send_to(d, SocketAddr::V4(to)).is_ok() {
                r.counters.to_peer(d.len());
            }
        }
        kind::PING => replies.push(frame(kind::PONG, &[])),
        _ => {}
    });
    let mut live = r.link.lock();
    if live.as_ref().is_some_and(|l| l.id == id) {
        *live = None;
    }
    drop(live);
    let why = end
        .err()
        .map_or_else(|| "closed".to_owned(), |e| e.to_string());
    crate::log!("relay: private server {peer} ({fp}) left: {why}");
}

/// The registered server's connection for API client `id`: spliced to that client.
fn accept_api(r: &Arc<Relay>, s: ControlStream, key: &str, peer: SocketAddr, id: u64) {
    let registered = r.link.lock().as_ref().is_some_and(|l| l.key == key);
    if !registered {
        crate::warn!(
            "relay: api accept from {peer} ({}) refused: not the registered server",
            fingerprint_of(key)
        );
        return;
    }
    let Some(client) = r.pending.lock().remove(&id) else {
        return;
    };
    let StreamOwned { conn, sock } = s;
    let seen = |b: &[u8]| r.capture(b);
    let _ = TlsConn::new(conn, sock).and_then(|tls| tls_io::splice(tls, client, &seen));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recent_peers_may_be_sent_to_and_the_table_is_bounded() {
        let t0 = Instant::now();
        let mut t = PeerTable::new(t0);
        let a = SocketAddrV4::new([10, 0, 0, 1].into(), 9);
        let b = SocketAddrV4::new([10, 0, 0, 2].into(), 9);
        assert!(!t.is_recent(t0, a));
        assert!(t.handle_datagram(t0, a));
        assert!(t.is_recent(t0 + Duration::from_secs(119), a));
        assert!(!t.is_recent(t0 + PEER_TTL, a));
        assert!(!t.is_recent(t0, b), "only the address that sent");
        for i in 0..MAX_PEERS - 1 {
            let ip = u32::try_from(i).unwrap() + (11 << 24);
            assert!(t.handle_datagram(t0, SocketAddrV4::new(ip.into(), 1)));
        }
        assert!(!t.handle_datagram(t0, b), "full of live peers");
        assert!(t.handle_datagram(t0, a), "a known peer is refreshed");
        let later = t0 + PEER_TTL + Duration::from_secs(1);
        assert!(t.handle_datagram(later, b), "expired peers make room");
        assert!(t.is_recent(later, b) && t.seen.len() == 1);
    }

    fn args(extra: &[&str]) -> Result<Option<Vec<String>>, String> {
        authorized_keys(&RelayArgs::from_args(&["relay_server"], extra).unwrap())
    }

    #[test]
    fn the_relay_refuses_to_start_without_authorized_servers() {
        let k = "3059301306072a8648ce3d020106082a8648ce3d03010703420004aa";
        let e = args(&[]).unwrap_err();
        assert!(e.contains("--authorized-server-key"), "{e}");
        assert!(args(&["--authorized-server-key", "nothex"]).is_err());
        assert_eq!(
            args(&["--authorized-server-key", k]).unwrap(),
            Some(vec![k.into()])
        );
        assert_eq!(args(&["--insecure-accept-any-server"]).unwrap(), None);
        assert!(args(&["--insecure-accept-any-server", "--authorized-server-key", k]).is_err());
    }
}
