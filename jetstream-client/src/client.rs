//! A blocking control API client: used by `jetstream api`, by the server to reach other
//! servers, and by `jscp`. [`ApiClient`] implements [`jetstream_api::Api`]: one typed method
//! per command; [`ApiClient::call`] sends any command by name with JSON parameters.
//!
//! Loopback connections are plain TCP unless [`ConnectOptions::force_tls`]; everything else is
//! TLS, trusted either like ssh's `known_hosts` ([`Trust::KnownHosts`], for people) or by a
//! pinned public key ([`Trust::Pinned`], server to server). The pinned value is the hex of the
//! server certificate's SubjectPublicKeyInfo, as reported by the server's `publicKey`.
//! With [`ConnectOptions::client_identity`] the client presents that certificate on TLS
//! connections, which the server reads from its side of the connection.

use std::fmt;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jetstream_api::types::RequestId;
use jetstream_api::{Api, Command, ErrorKind, Mode};
use parking_lot::Mutex;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tls::{fingerprint_of, spki_hex, ClientCert};
use jetstream_api::wire::{self, FrameError, Request, Response};

/// Default time allowed for connecting, the handshake and each response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the client decides to trust a TLS server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// For people: a certificate that chains to a system root for the host name is accepted;
    /// otherwise the server's public key is pinned per `host:port` in `file` (ssh style).
    KnownHosts {
        /// The known-hosts file (lines `host:port public_key_hex`).
        file: PathBuf,
        /// Record and accept a host that is not in the file yet.
        accept_new: bool,
    },
    /// For server to server: `None` accepts any key (first contact; the caller records
    /// [`ApiClient::peer_public_key`]), `Some(hex)` requires exactly that public key.
    Pinned(Option<String>),
    /// What the console clients (`jscp`, `jetstream api`) use: as [`Trust::KnownHosts`],
    /// except that a server on this machine (a loopback address) whose socket belongs to root
    /// or to this process's user is trusted without its key, as the reference says of
    /// localhost (§3.1). Another user's loopback server is checked like a remote one, and an
    /// unknown key's error says why ([`ClientError::UnknownHost`]'s `local_listener`).
    KnownHostsOrLocal {
        /// The known-hosts file (lines `host:port public_key_hex`).
        file: PathBuf,
        /// Record and accept a host that is not in the file yet.
        accept_new: bool,
    },
}

impl Trust {
    /// The known-hosts file, for the known-hosts kinds.
    fn known_hosts_file(&self) -> Option<&PathBuf> {
        match self {
            Self::KnownHosts { file, .. } | Self::KnownHostsOrLocal { file, .. } => Some(file),
            Self::Pinned(_) => None,
        }
    }
}

/// The default known-hosts file: `$JETSTREAM_KNOWN_HOSTS`, else
/// `$HOME/.config/jetstream/known_hosts` (else `.jetstream_known_hosts` in the current
/// directory when `HOME` is unset).
pub fn default_known_hosts() -> PathBuf {
    if let Some(p) = std::env::var_os("JETSTREAM_KNOWN_HOSTS").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".config/jetstream/known_hosts"),
        None => PathBuf::from(".jetstream_known_hosts"),
    }
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// How to trust the server's certificate.
    pub trust: Trust,
    /// Time allowed to connect, to complete the handshake and for each response.
    pub timeout: Duration,
    /// Use TLS even to a loopback address.
    pub force_tls: bool,
    /// A certificate to present as the client (a server contacting another presents its own
    /// identity, so that the receiver can check it against its authorized clients).
    pub client_identity: Option<ClientCert>,
}

impl ConnectOptions {
    /// Options with `trust`, the default timeout and no forced TLS.
    pub fn new(trust: Trust) -> Self {
        Self {
            trust,
            timeout: DEFAULT_TIMEOUT,
            force_tls: false,
            client_identity: None,
        }
    }
}

/// Why a connection or a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The host name did not resolve.
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
    /// No TCP connection could be made.
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The TLS handshake failed.
    Tls(String),
    /// The server is not in the known-hosts file.
    UnknownHost {
        /// `host:port`.
        host: String,
        /// The presented key's fingerprint (`SHA256:...`).
        fingerprint: String,
        /// For a server on this machine: why it was not trusted without its key (its socket
        /// belongs to another user, or its owner could not be read).
        local_listener: Option<String>,
    },
    /// The server presented a different key than the one recorded or pinned.
    HostKeyChanged {
        /// `host:port`.
        host: String,
        /// Fingerprint of the recorded / pinned key.
        expected_fingerprint: String,
        /// Fingerprint of the key the server presented.
        presented_fingerprint: String,
        /// The known-hosts file holding the old key (`None` for a pinned key).
        file: Option<PathBuf>,
        /// The 1-based line of `file` holding the old key.
        line: Option<usize>,
    },
    /// The server sent something that is not a response, or closed the connection.
    Protocol(String),
    /// The server answered `status: "error"`: a refusal (unknown object, permission, bad
    /// parameter...), its kind and its message.
    Api(Refusal),
    /// The parameters of a typed call could not be written as JSON.
    Encode {
        /// The command's wire name.
        command: &'static str,
        /// serde's reason.
        source: serde_json::Error,
    },
    /// The server's result does not have the type the command's definition says.
    Decode {
        /// The command's wire name.
        command: &'static str,
        /// serde's reason (it names the field).
        source: serde_json::Error,
    },
    /// A socket or file error.
    Io(io::Error),
}

/// A server's refusal: what kind it is (match on this) and its message (for people).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Its kind: the answer's `errorCode` ([`ErrorKind::Failed`] from a server before error
    /// codes).
    pub kind: ErrorKind,
    /// The server's message.
    pub message: String,
}

impl Refusal {
    /// The refusal an error response carries. A server from before error codes sends none:
    /// the two refusals a caller retries (a busy receiver, a throttled login) are then told by
    /// that server's wording, here and nowhere else; any other is [`ErrorKind::Failed`].
    pub fn of(response: Response) -> Self {
        let kind = response.error_code.unwrap_or_else(|| {
            let m = &response.message;
            if m.contains("incomingMaxConnections") {
                ErrorKind::Busy
            } else if m.contains("too many failed logins") {
                ErrorKind::LoginThrottled
            } else {
                ErrorKind::Failed
            }
        });
        Self {
            kind,
            message: response.message,
        }
    }

    /// A refusal of kind `kind` (for tests and for programs that wrap the client).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { host, reason } => write!(f, "cannot resolve host {host}: {reason}"),
            Self::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: ")?;
                match source.kind() {
                    io::ErrorKind::ConnectionRefused => write!(
                        f,
                        "connection refused: is `jetstream server` running on port {}?",
                        addr.port()
                    ),
                    io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                        f.write_str("host unreachable")
                    }
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                        f.write_str("timed out (is a firewall dropping the API port?)")
                    }
                    _ => write!(f, "{source}"),
                }
            }
            Self::Tls(e) => write!(f, "TLS error: {e}"),
            Self::UnknownHost {
                host,
                fingerprint,
                local_listener,
            } => {
                if let Some(why) = local_listener {
                    write!(f, "{why}: ")?;
                }
                write!(
                    f,
                    "the identity of {host} is not known (key fingerprint {fingerprint}); if \
                     this is the right server, trust it with --accept-new-host"
                )
            }
            Self::HostKeyChanged {
                host,
                expected_fingerprint,
                presented_fingerprint,
                file,
                line,
            } => {
                write!(
                    f,
                    "THE KEY OF {host} HAS CHANGED: expected {expected_fingerprint}, the server \
                     presented {presented_fingerprint}; someone may be intercepting the \
                     connection"
                )?;
                match (file, line) {
                    (Some(file), Some(line)) => write!(
                        f,
                        ". If the change is expected, delete line {line} of {} and connect again",
                        file.display()
                    ),
                    _ => f.write_str(". If the change is expected, update the pinned key"),
                }
            }
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Api(e) => f.write_str(&e.message),
            Self::Encode { command, source } => {
                write!(f, "{command}: cannot encode the parameters: {source}")
            }
            Self::Decode { command, source } => {
                write!(
                    f,
                    "{command}: the server's result does not decode: {source}"
                )
            }
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect { source, .. } | Self::Io(source) => Some(source),
            Self::Encode { source, .. } | Self::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

#[derive(Debug)]
enum ClientStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// A connection to a server's control API. Requests and responses alternate strictly.
#[derive(Debug)]
pub struct ApiClient {
    stream: BufReader<ClientStream>,
    peer_public_key: Option<String>,
    line: Vec<u8>,
    /// Where it connected, and how (for [`ApiClient::reconnect`]).
    origin: (String, u16, ConnectOptions),
}

impl ApiClient {
    /// Connects to `host:port` (IPv4 addresses tried first). The connection is plain TCP when
    /// the address is loopback and `!opts.force_tls`, else TLS with SNI = `host` (an IP
    /// address is allowed), trusted per `opts.trust`.
    ///
    /// With [`Trust::KnownHostsOrLocal`] (the console clients), a server on this machine (a
    /// loopback address) is trusted without its key, as the reference says of localhost, but
    /// only when its socket belongs to root or to this process's user (read from
    /// `/proc/net/tcp*`): another local user could listen on the port while the server is
    /// down. Any other loopback server is reached over TLS and checked like a remote one, and
    /// an unknown key's error says why.
    ///
    /// # Errors
    /// See [`ClientError`]; trust refusals are [`ClientError::UnknownHost`] and
    /// [`ClientError::HostKeyChanged`].
    pub fn connect(host: &str, port: u16, opts: &ConnectOptions) -> Result<Self, ClientError> {
        let timeout = Some(opts.timeout).filter(|t| !t.is_zero());
        let tcp = connect_tcp(host, port, timeout)?;
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(timeout)?;
        tcp.set_write_timeout(timeout)?;
        let peer = tcp.peer_addr()?;
        let loopback = crate::local::is_loopback(peer.ip());
        let mut trust = opts.trust.clone();
        let mut checked_why = None;
        if loopback && matches!(opts.trust, Trust::KnownHostsOrLocal { .. }) {
            match crate::local::listener(tcp.local_addr()?, peer) {
                crate::local::Listener::Trusted => trust = Trust::Pinned(None),
                other => checked_why = other.why_checked(),
            }
        }
        let (stream, peer_public_key) = if loopback && !opts.force_tls && checked_why.is_none() {
            (ClientStream::Plain(tcp), None)
        } else {
            let client_identity = opts.client_identity.as_ref();
            let (tls, key) =
                handshake(tcp, host, port, &trust, client_identity).map_err(|e| match e {
                    ClientError::UnknownHost {
                        host, fingerprint, ..
                    } => ClientError::UnknownHost {
                        host,
                        fingerprint,
                        local_listener: checked_why.clone(),
                    },
                    e => e,
                })?;
            (ClientStream::Tls(Box::new(tls)), Some(key))
        };
        Ok(Self {
            stream: BufReader::new(stream),
            peer_public_key,
            line: Vec::new(),
            origin: (host.to_owned(), port, opts.clone()),
        })
    }

    /// Replaces the connection with a new one to the same server, trusted the same way (a
    /// server closes a connection that has not logged in within its `--api-login-timeout`,
    /// e.g. while a person types a password).
    ///
    /// # Errors
    /// As [`ApiClient::connect`].
    pub fn reconnect(&mut self) -> Result<(), ClientError> {
        let (host, port, opts) = &self.origin;
        *self = Self::connect(host, *port, opts)?;
        Ok(())
    }

    /// Calls `request` with `parameters` and returns its `result`.
    ///
    /// # Errors
    /// [`ClientError::Api`] with the server's message when it answers `status: "error"`;
    /// otherwise as [`ApiClient::call_raw`].
    pub fn call(&mut self, request: &str, parameters: Value) -> Result<Value, ClientError> {
        let response = self.call_raw(&Request {
            request: request.to_owned(),
            parameters,
            id: None,
        })?;
        if response.is_success() {
            Ok(response.result)
        } else {
            Err(ClientError::Api(Refusal::of(response)))
        }
    }

    /// Sends `request` and returns the server's response, whatever its status.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] when the connection closed or the answer is not a response;
    /// [`ClientError::Io`] for socket errors (including the response timeout).
    pub fn call_raw(&mut self, request: &Request) -> Result<Response, ClientError> {
        wire::write_line(self.stream.get_mut(), request)?;
        match wire::read_line(&mut self.stream, &mut self.line) {
            Ok(()) => {}
            Err(FrameError::Closed) => {
                return Err(ClientError::Protocol(
                    "the server closed the connection".into(),
                ))
            }
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ClientError::Protocol(
                    "the server closed the connection".into(),
                ))
            }
            Err(FrameError::Io(e)) => return Err(ClientError::Io(e)),
            Err(e @ FrameError::TooLong) => return Err(ClientError::Protocol(e.to_string())),
        }
        serde_json::from_slice(&self.line)
            .map_err(|e| ClientError::Protocol(format!("not a JSON response: {e}")))
    }

    /// The server's public key (SPKI hex) on a TLS connection.
    pub fn peer_public_key(&self) -> Option<&str> {
        self.peer_public_key.as_deref()
    }

    /// The server's address this connection reached.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self.stream.get_ref() {
            ClientStream::Plain(s) => s.peer_addr().ok(),
            ClientStream::Tls(s) => s.sock.peer_addr().ok(),
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream.get_ref(), ClientStream::Tls(_))
    }

    /// RFC 5705 keying material exported from the TLS session; the server's side of the
    /// connection gets the same bytes for the same `label` and `context`.
    ///
    /// # Errors
    /// [`ClientError::Tls`] on a plain connection or when rustls refuses.
    pub fn export_keying_material(
        &self,
        label: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> Result<(), ClientError> {
        match self.stream.get_ref() {
            ClientStream::Plain(_) => Err(ClientError::Tls(
                "no keying material on a plain connection".into(),
            )),
            ClientStream::Tls(s) => s
                .conn
                .export_keying_material(out, label, Some(context))
                .map(|_| ())
                .map_err(|e| ClientError::Tls(e.to_string())),
        }
    }
}

/// The typed calls: each command's parameters are sent as its JSON object, and its result is
/// read back as the command's output type.
///
/// A command that runs only asynchronously ([`Mode::AsyncOnly`], e.g. discovery) is sent as
/// `nameAsync` and then waited for with `getRequestResult`, so [`Api::call`] always returns the
/// outcome; [`Api::call_async`] returns the request's id instead.
impl Api for ApiClient {
    type Error = ClientError;

    fn call<C: Command>(&mut self, params: &C) -> Result<C::Output, ClientError> {
        let meta = &C::META;
        let parameters = encode(meta.name, params)?;
        let result = match meta.mode {
            Mode::Either => Self::call(self, meta.name, parameters)?,
            Mode::AsyncOnly => {
                let id = self.send_async(meta.name, parameters)?;
                self.request_result(id)?
            }
        };
        decode(meta.name, result)
    }

    fn call_async<C: Command>(&mut self, params: &C) -> Result<RequestId, ClientError> {
        let meta = &C::META;
        let parameters = encode(meta.name, params)?;
        self.send_async(meta.name, parameters)
    }
}

impl ApiClient {
    /// Sends `name` + `Async` and reads the request id it answers with.
    fn send_async(
        &mut self,
        name: &'static str,
        parameters: Value,
    ) -> Result<RequestId, ClientError> {
        let answer = Self::call(self, &format!("{name}Async"), parameters)?;
        decode(name, answer)
    }

    /// Waits for the outcome of an async request (`getRequestResult`): its result, or the
    /// server's error for it.
    fn request_result(&mut self, id: RequestId) -> Result<Value, ClientError> {
        let parameters = serde_json::to_value(id).map_err(|source| ClientError::Encode {
            command: "getRequestResult",
            source,
        })?;
        Self::call(self, "getRequestResult", parameters)
    }
}

/// A command's parameters as the JSON object sent.
fn encode<C: serde::Serialize>(command: &'static str, params: &C) -> Result<Value, ClientError> {
    serde_json::to_value(params).map_err(|source| ClientError::Encode { command, source })
}

/// A result as the command's output type (`null` is `()`).
fn decode<T: DeserializeOwned>(command: &'static str, result: Value) -> Result<T, ClientError> {
    serde_json::from_value(result).map_err(|source| ClientError::Decode { command, source })
}

fn connect_tcp(host: &str, port: u16, timeout: Option<Duration>) -> Result<TcpStream, ClientError> {
    let resolve_err = |reason: String| ClientError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| resolve_err(e.to_string()))?
        .collect();
    // Stable sort: IPv4 first (the product is IPv4-only), resolver order otherwise kept.
    addrs.sort_by_key(|a| !a.is_ipv4());
    let mut last = None;
    for addr in addrs {
        let result = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match result {
            Ok(s) => return Ok(s),
            Err(source) => last = Some(ClientError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| resolve_err("no addresses".into())))
}

/// `host:port` as used in the known-hosts file and messages (IPv6 literals bracketed).
fn host_key(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The TLS client handshake on `tcp` (also used by the server's relay link, which needs the
/// raw stream): the server trusted per `trust`, `client_identity` presented when given.
/// Returns the stream and the server's public key (SPKI hex).
///
/// # Errors
/// As [`ApiClient::connect`]'s TLS and trust errors.
pub fn handshake(
    mut tcp: TcpStream,
    host: &str,
    port: u16,
    trust: &Trust,
    client_identity: Option<&ClientCert>,
) -> Result<(StreamOwned<ClientConnection, TcpStream>, String), ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let host_key = host_key(host, port);
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|e| ClientError::Tls(format!("{host} is not a valid server name: {e}")))?;
    let policy = match trust {
        Trust::Pinned(key) => Policy::Pinned(key.as_ref().map(|k| k.trim().to_ascii_lowercase())),
        Trust::KnownHosts { file, accept_new } | Trust::KnownHostsOrLocal { file, accept_new } => {
            Policy::KnownHosts {
                ca: system_root_verifier(&provider),
                known: read_known_hosts(file)?
                    .into_iter()
                    .filter(|e| e.host == host_key)
                    .collect(),
                file: file.clone(),
                accept_new: *accept_new,
            }
        }
    };
    let verifier = Arc::new(PinVerifier {
        host_key: host_key.clone(),
        policy,
        algorithms: provider.signature_verification_algorithms,
        outcome: Mutex::new(Outcome::default()),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>);
    // A server presents its own identity, so the receiver can check it against its
    // authorized clients; people present none.
    let mut config = match client_identity {
        Some(identity) => {
            let (chain, key) = identity.chain_and_key();
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(format!("cannot use the client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    // A resumed session skips `verify_server_cert`, i.e. the pin check. Each client builds
    // its own config so nothing could be resumed anyway; make that explicit.
    config.resumption = Resumption::disabled();
    let mut conn = ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            if let Some(refusal) = verifier.outcome.lock().refusal.take() {
                return Err(refusal);
            }
            return Err(ClientError::Tls(format!(
                "handshake with {host_key} failed: {e}"
            )));
        }
    }
    let presented = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| ClientError::Tls("the server sent no certificate".into()))
        .and_then(|c| spki_hex(c).map_err(ClientError::Tls))?;
    let record_new = verifier.outcome.lock().record_new;
    if record_new {
        if let Some(file) = trust.known_hosts_file() {
            append_known_host(file, &host_key, &presented).map_err(|e| {
                ClientError::Io(io::Error::new(
                    e.kind(),
                    format!("cannot write known hosts file {}: {e}", file.display()),
                ))
            })?;
        }
    }
    Ok((StreamOwned::new(conn, tcp), presented))
}

/// A WebPKI verifier over the system's root certificates, if there are any.
fn system_root_verifier(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .ok()
}

#[derive(Debug, PartialEq, Eq)]
struct KnownHost {
    line: usize,
    host: String,
    key: String,
}

fn read_known_hosts(file: &Path) -> Result<Vec<KnownHost>, ClientError> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ClientError::Io(io::Error::new(
                e.kind(),
                format!("cannot read known hosts file {}: {e}", file.display()),
            )))
        }
    };
    Ok(parse_known_hosts(&text))
}

fn parse_known_hosts(text: &str) -> Vec<KnownHost> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut words = l.split_whitespace();
            Some(KnownHost {
                line: i + 1,
                host: words.next()?.to_ascii_lowercase(),
                key: words.next()?.to_ascii_lowercase(),
            })
        })
        .collect()
}

fn append_known_host(file: &Path, host_key: &str, key: &str) -> io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let needs_newline = fs::read(file)
        .map(|b| b.last().is_some_and(|&c| c != b'\n'))
        .unwrap_or(false);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)?;
    let sep = if needs_newline { "\n" } else { "" };
    f.write_all(format!("{sep}{host_key} {key}\n").as_bytes())?;
    f.sync_all()
}

#[derive(Debug)]
enum Policy {
    KnownHosts {
        ca: Option<Arc<WebPkiServerVerifier>>,
        known: Vec<KnownHost>,
        file: PathBuf,
        accept_new: bool,
    },
    Pinned(Option<String>),
}

#[derive(Debug, Default)]
struct Outcome {
    /// Why the certificate was refused, in the caller's terms.
    refusal: Option<ClientError>,
    /// The host was unknown and accepted: record it once the handshake completes.
    record_new: bool,
}

/// Certificate verification by public key pin (or known-hosts entry).
///
/// Why this `danger` API use is sound: for self-signed server identities there is no CA, so
/// the trust anchor IS the pinned public key (SPKI). `verify_server_cert` accepts the
/// certificate only when its SPKI equals the pin (or the known-hosts entry, or it chains to a
/// system root for the name), and the handshake signatures are still verified with the
/// certificate's key below, so the peer must hold the private key matching the pin. Names and
/// validity dates of a pinned certificate are deliberately not checked (ssh semantics); the
/// key is the identity. Session resumption is disabled so the check is never skipped.
#[derive(Debug)]
struct PinVerifier {
    host_key: String,
    policy: Policy,
    algorithms: WebPkiSupportedAlgorithms,
    outcome: Mutex<Outcome>,
}

impl PinVerifier {
    fn refuse(&self, refusal: ClientError) -> rustls::Error {
        let message = refusal.to_string();
        self.outcome.lock().refusal = Some(refusal);
        rustls::Error::General(message)
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = spki_hex(end_entity).map_err(rustls::Error::General)?;
        match &self.policy {
            Policy::Pinned(None) => Ok(ServerCertVerified::assertion()),
            Policy::Pinned(Some(pin)) if *pin == presented => Ok(ServerCertVerified::assertion()),
            Policy::Pinned(Some(pin)) => Err(self.refuse(ClientError::HostKeyChanged {
                host: self.host_key.clone(),
                expected_fingerprint: fingerprint_of(pin),
                presented_fingerprint: fingerprint_of(&presented),
                file: None,
                line: None,
            })),
            Policy::KnownHosts {
                ca,
                known,
                file,
                accept_new,
            } => {
                let ca_ok = ca.as_ref().is_some_and(|v| {
                    v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                        .is_ok()
                });
                if ca_ok || known.iter().any(|k| k.key == presented) {
                    return Ok(ServerCertVerified::assertion());
                }
                if let Some(old) = known.first() {
                    return Err(self.refuse(ClientError::HostKeyChanged {
                        host: self.host_key.clone(),
                        expected_fingerprint: fingerprint_of(&old.key),
                        presented_fingerprint: fingerprint_of(&presented),
                        file: Some(file.clone()),
                        line: Some(old.line),
                    }));
                }
                if *accept_new {
                    self.outcome.lock().record_new = true;
                    return Ok(ServerCertVerified::assertion());
                }
                Err(self.refuse(ClientError::UnknownHost {
                    host: self.host_key.clone(),
                    fingerprint: fingerprint_of(&presented),
                    local_listener: None,
                }))
            }
        }
    }

    crate::handshake_signature_checks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_parsing_skips_comments_and_keys_ipv6() {
        let hosts = parse_known_hosts("# c\n\nA:1 AB\n  b:2 cd extra\nbroken\n");
        assert_eq!(
            hosts,
            vec![
                KnownHost {
                    line: 3,
                    host: "a:1".into(),
                    key: "ab".into()
                },
                KnownHost {
                    line: 4,
                    host: "b:2".into(),
                    key: "cd".into()
                },
            ]
        );
        assert_eq!(host_key("::1", 8886), "[::1]:8886");
        assert_eq!(host_key("Jet.LAN", 8886), "jet.lan:8886");
    }
}
