//! The server's TLS identity and the server side of the control API socket.
//!
//! Every server owns one long-lived key pair (ECDSA P-256) kept in `<state-dir>/tls/`. Its
//! public key (the leaf certificate's SubjectPublicKeyInfo, as lowercase hex) is what clients
//! and other servers pin, so a renewed self-signed certificate always reuses the same key. An
//! operator may instead supply a CA-issued certificate (`--tls-cert/--tls-key`).
//!
//! The API port speaks both plain TCP (allowed by the caller for loopback peers only) and TLS:
//! [`accept`] peeks at the first byte, and a TLS handshake record (`0x16`) selects TLS.

use std::cell::Cell;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DistinguishedName, ServerConfig, ServerConnection, StreamOwned};

/// Validity of a freshly issued self-signed certificate (the CA/Browser maximum of old).
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(825 * 86_400);
/// A self-signed certificate closer than this to its expiry is reissued at start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
const SECONDS_PER_DAY: i64 = 86_400;

/// Why the TLS identity could not be loaded or created. Every message names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file or directory could not be read.
    Read {
        /// What the file holds ("key", "certificate", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file or directory could not be written.
    Write {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file was read but its content is not usable.
    Invalid {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating a key or certificate failed.
    Generate(String),
    /// The certificate and key were refused by rustls (for example they do not match).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { what, path, source } => {
                write!(f, "cannot read TLS {what} {}: {source}", path.display())
            }
            Self::Write { what, path, source } => {
                write!(f, "cannot write TLS {what} {}: {source}", path.display())
            }
            Self::Invalid { what, path, reason } => {
                write!(f, "invalid TLS {what} {}: {reason}", path.display())
            }
            Self::Generate(e) => write!(f, "cannot generate the TLS identity: {e}"),
            Self::Config(e) => write!(f, "TLS certificate and key are not usable: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The server's TLS identity: certificate chain, key and the derived public key.
///
/// `Debug` never prints the private key.
#[derive(Clone)]
pub struct Identity {
    config: Arc<ServerConfig>,
    /// The certificate chain, leaf first (also presented as a client certificate).
    chain: Vec<CertificateDer<'static>>,
    /// The private key matching the leaf.
    key: Arc<PrivateKeyDer<'static>>,
    public_key: String,
    /// The leaf certificate's notAfter, in seconds since the Unix epoch.
    not_after: i64,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public_key", &self.public_key)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads `<state_dir>/tls/server.{key,crt}`, creating them on first start.
    ///
    /// A self-signed certificate that has expired or expires within 30 days is reissued for
    /// the same key, so the public key clients pin never changes.
    ///
    /// # Errors
    /// A file cannot be read or written, or holds something unusable. An existing but corrupt
    /// key is an error, never silently replaced (that would change the server's identity).
    pub fn load_or_create(state_dir: &Path) -> Result<Self, TlsError> {
        load_or_create_with(state_dir, SystemTime::now(), SELF_SIGNED_VALIDITY)
    }

    /// Loads a CA-issued certificate chain (leaf first) and its private key from PEM files.
    ///
    /// The key may be PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#1
    /// (`RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate / key, or the key does not match the leaf.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = read_file("certificate", cert)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(invalid(
                "certificate",
                cert,
                "no CERTIFICATE block found".into(),
            ));
        }
        let key_pem = read_file("key", key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| invalid("key", key, format!("no usable private key: {e}")))?;
        Self::from_der(chain, key_der, cert)
    }

    fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_path: &Path,
    ) -> Result<Self, TlsError> {
        let leaf = chain
            .first()
            .ok_or_else(|| invalid("certificate", cert_path, "empty chain".into()))?;
        let public_key = spki_hex(leaf).map_err(|e| invalid("certificate", cert_path, e))?;
        let not_after = not_after_of(leaf)
            .ok_or_else(|| invalid("certificate", cert_path, "cannot read its validity".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_verifier = Arc::new(KeyClientCert {
            keys: None,
            mandatory: false,
            allow_with: "",
            algorithms: provider.signature_verification_algorithms,
        });
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsError::Config(format!("{}: {e}", cert_path.display())))?;
        Ok(Self {
            config: Arc::new(config),
            chain,
            key: Arc::new(key),
            public_key,
            not_after,
        })
    }

    /// The certificate chain (leaf first) and a copy of the private key, to present as a
    /// client certificate when this server connects to another one.
    pub(crate) fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.chain.clone(), self.key.clone_key())
    }

    /// This identity as the certificate a client presents (a server calling another server's
    /// API, or linking to a relay).
    pub fn client_cert(&self) -> ClientCert {
        let (chain, key) = self.chain_and_key();
        ClientCert::new(chain, key)
    }

    /// Lowercase hex of the leaf certificate's SubjectPublicKeyInfo DER: the server's
    /// `publicKey`, which clients and destinations pin.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// `SHA256:` + lowercase hex of SHA-256 over the SPKI DER, for people to compare.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.public_key)
    }

    /// Whole days until the leaf certificate expires (negative once expired), rounded down.
    pub fn days_to_expiry(&self, now: SystemTime) -> i64 {
        (self.not_after - unix_seconds(now)).div_euclid(SECONDS_PER_DAY)
    }

    /// The rustls server configuration (TLS 1.2 and 1.3, ring provider). Client certificates
    /// are requested but optional, and any one is accepted provided the client proves it holds
    /// its key: see [`ApiStream::peer_public_key`].
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}

use jetstream_client::tls::{fingerprint_of, hex_encode, peer_key, spki_hex, ClientCert};

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn invalid(what: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError::Invalid {
        what,
        path: path.to_owned(),
        reason,
    }
}

fn write_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Write { what, path, source }
}

/// [`Identity::load_or_create`] with the clock and the new certificates' validity injected.
fn load_or_create_with(
    state_dir: &Path,
    now: SystemTime,
    validity: Duration,
) -> Result<Identity, TlsError> {
    let dir = state_dir.join("tls");
    fs::create_dir_all(&dir).map_err(write_err("directory", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(write_err("directory", &dir))?;
    let key_path = dir.join("server.key");
    let cert_path = dir.join("server.crt");

    let key_pair = if key_path.exists() {
        let pem = read_file("key", &key_path)?;
        let pem = String::from_utf8(pem)
            .map_err(|_| invalid("key", &key_path, "not a PEM text file".into()))?;
        // Tighten the mode in case someone loosened it; the key is the server's identity.
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
            .map_err(write_err("key", &key_path))?;
        rcgen::KeyPair::from_pem(&pem).map_err(|e| invalid("key", &key_path, e.to_string()))?
    } else {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write_atomic(&key_path, kp.serialize_pem().as_bytes(), 0o600)
            .map_err(write_err("key", &key_path))?;
        kp
    };
    let key_spki = hex_encode(&key_pair.public_key_der());

    let existing = existing_cert(&cert_path, &key_spki, now);
    let cert_der = match existing {
        Some(der) => der,
        None => {
            let cert = self_signed(&key_pair, now, validity)?;
            write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)
                .map_err(write_err("certificate", &cert_path))?;
            cert.der().clone()
        }
    };
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    Identity::from_der(vec![cert_der], key_der, &cert_path)
}

/// The stored certificate if it is for `key_spki` and valid for more than [`RENEW_BEFORE`].
fn existing_cert(
    cert_path: &Path,
    key_spki: &str,
    now: SystemTime,
) -> Option<CertificateDer<'static>> {
    let pem = fs::read(cert_path).ok()?;
    let der = CertificateDer::from_pem_slice(&pem).ok()?;
    let fresh_until = unix_seconds(now) + i64::try_from(RENEW_BEFORE.as_secs()).ok()?;
    let matches_key = spki_hex(&der).ok()? == key_spki;
    (matches_key && not_after_of(&der)? > fresh_until).then_some(der)
}

fn self_signed(
    key_pair: &rcgen::KeyPair,
    now: SystemTime,
    validity: Duration,
) -> Result<rcgen::Certificate, TlsError> {
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let host = host_name();
    let mut sans = Vec::new();
    if let Some(h) = host.as_deref().filter(|h| *h != "localhost") {
        if let Ok(name) = rcgen::Ia5String::try_from(h) {
            sans.push(rcgen::SanType::DnsName(name));
        }
    }
    sans.push(rcgen::SanType::DnsName(
        rcgen::Ia5String::try_from("localhost").map_err(gen)?,
    ));
    sans.push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));

    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        host.unwrap_or_else(|| "localhost".into()),
    );
    dn.push(rcgen::DnType::OrganizationName, "JetStream server");
    params.distinguished_name = dn;
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Back-date a day so a client whose clock lags ours still accepts a fresh certificate.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch.saturating_sub(Duration::from_secs(86_400));
    params.not_after = epoch + since_epoch + validity;
    // A fresh random serial: a renewed certificate must not reuse the old one's serial.
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| TlsError::Generate("no randomness for the serial number".into()))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01; // positive and of fixed length
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.self_signed(key_pair).map_err(gen)
}

/// The OS host name, if non-empty.
pub(crate) fn host_name() -> Option<String> {
    Some(crate::server::sys::host_name()).filter(|h| !h.trim().is_empty())
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename, so a
/// crash leaves either the old or the new file, never a torn one.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` is filtered by the umask at creation and ignored for an existing file.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---- minimal DER reading: just enough to find a certificate's notAfter ----

/// Splits one DER element off `input`: (tag, content, rest).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The notAfter of a DER certificate, in seconds since the Unix epoch.
fn not_after_of(cert: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert, _) = der_next(cert)?;
    let (tbs_tag, tbs, _) = der_next(cert)?;
    if tag != SEQUENCE || tbs_tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (mut tag, mut content);
    (tag, content, rest) = der_next(rest)?;
    if tag == 0xa0 {
        // [0] EXPLICIT version
        (tag, content, rest) = der_next(rest)?;
    }
    let _serial = (tag, content);
    for _ in 0..3 {
        // signature AlgorithmIdentifier, issuer, validity
        (tag, content, rest) = der_next(rest)?;
    }
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, validity_rest) = der_next(content)?; // notBefore
    let (time_tag, time, _) = der_next(validity_rest)?;
    parse_der_time(time_tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) → Unix seconds.
fn parse_der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = text.get(0..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(0..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (h, m, s) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * SECONDS_PER_DAY + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---- client certificates ----

/// A client-certificate verifier that trusts keys, not CAs: the API's (any key, certificate
/// optional) and the relay control port's (only the keys an operator pinned, certificate
/// mandatory).
///
/// Why this `danger` API use is sound: clients are not authenticated by a CA. A client
/// certificate is only ever used as a *public key* (its SPKI, [`ApiStream::peer_public_key`])
/// which is compared with a list of authorized keys (the receiver's authorized clients, the
/// relay's `--authorized-server-key`); names, issuers and dates mean nothing here, so the
/// chain is deliberately not validated. What matters is that the client proves possession of
/// the matching private key, and the handshake signatures (CertificateVerify) are verified
/// against the certificate's key with the ring provider's algorithms.
#[derive(Debug)]
pub(crate) struct KeyClientCert {
    /// The keys accepted here (hex SPKI); `None`: any key (the API checks it later, where it
    /// matters: `recv.startTransfer`).
    pub(crate) keys: Option<Vec<String>>,
    /// Whether a client must present a certificate (the API serves password logins without).
    pub(crate) mandatory: bool,
    /// The message's hint for an unlisted key: the flag that would allow it.
    pub(crate) allow_with: &'static str,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for KeyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        ParsedCertificate::try_from(end_entity)?;
        let Some(keys) = &self.keys else {
            return Ok(ClientCertVerified::assertion());
        };
        let key = spki_hex(end_entity).map_err(rustls::Error::General)?;
        if keys.contains(&key) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the key {} is not authorized (to allow it: {} {key})",
                fingerprint_of(&key),
                self.allow_with
            )))
        }
    }

    jetstream_client::handshake_signature_checks!();
}

// ---- the server side of the API socket ----

/// An accepted API connection: plain TCP (the caller allows it for loopback peers only) or TLS.
#[derive(Debug)]
pub enum ApiStream {
    /// Plain TCP.
    Plain(ApiSocket),
    /// TLS over TCP, handshake completed.
    Tls(Box<StreamOwned<ServerConnection, ApiSocket>>),
}

/// The TCP socket under an API connection, whose reads all end by one deadline.
///
/// A socket read timeout alone bounds each `read` call: a client that sends one byte now and
/// then (inside a TLS record, during the handshake, or in a request line) would restart it
/// each time and hold the connection for ever. Here every read gets only the time left until
/// the deadline, and fails with [`io::ErrorKind::TimedOut`] once it has passed, whatever layer
/// (the TLS handshake, rustls' record reader, the line reader) is reading.
#[derive(Debug)]
pub struct ApiSocket {
    tcp: TcpStream,
    read_deadline: Cell<Option<Instant>>,
}

impl ApiSocket {
    fn new(tcp: TcpStream, read_deadline: Option<Instant>) -> Self {
        Self {
            tcp,
            read_deadline: Cell::new(read_deadline),
        }
    }
}

impl Read for ApiSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.read_deadline.get() {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection's read deadline passed",
                    ));
                }
                Some(left)
            }
            None => None,
        };
        self.tcp.set_read_timeout(timeout)?;
        self.tcp.read(buf)
    }
}

impl Write for ApiSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Accepts an API connection: peeks the first byte and completes a TLS handshake if it is a
/// TLS handshake record (`0x16`); anything else (including an immediate close) is returned as
/// [`ApiStream::Plain`]. Everything is read by `read_deadline` (the peek, and the handshake
/// however slowly the client sends it); the handshake's writes wait at most the time that
/// was left at the start.
///
/// On return the socket keeps `read_deadline` for its reads (see
/// [`ApiStream::set_read_deadline`]) and has no write timeout.
///
/// # Errors
/// The peek timed out or failed, or the TLS handshake failed or passed the deadline.
pub fn accept(
    stream: TcpStream,
    config: &Arc<ServerConfig>,
    read_deadline: Instant,
) -> io::Result<ApiStream> {
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let left = read_deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    let mut first = [0u8; 1];
    let n = loop {
        match stream.peek(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    let sock = ApiSocket::new(stream, Some(read_deadline));
    if n == 0 || first[0] != TLS_HANDSHAKE_RECORD {
        sock.tcp.set_write_timeout(None)?;
        return Ok(ApiStream::Plain(sock));
    }
    let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    tls.sock.tcp.set_write_timeout(None)?;
    Ok(ApiStream::Tls(Box::new(tls)))
}

impl ApiStream {
    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// RFC 5705 keying material exported from the TLS session (the client passes the same
    /// `label` and `context` and gets the same bytes).
    ///
    /// # Errors
    /// The connection is plain, or rustls refused (e.g. an empty `out`).
    pub fn export_keying_material(
        &self,
        label: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> io::Result<()> {
        match self {
            Self::Plain(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no keying material on a plain connection",
            )),
            Self::Tls(s) => s
                .conn
                .export_keying_material(out, label, Some(context))
                .map(|_| ())
                .map_err(io::Error::other),
        }
    }

    /// The public key (lowercase hex SPKI, as [`Identity::public_key`]) of the client's
    /// certificate: `Some` only on a TLS connection where the client presented one and proved
    /// it holds the key (the handshake signature was verified).
    pub fn peer_public_key(&self) -> Option<String> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(s) => peer_key(&s.conn),
        }
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The socket's error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// Sets the deadline by which every later read must end (`None` = reads may block for
    /// ever). Reads after it fail with [`io::ErrorKind::TimedOut`].
    pub fn set_read_deadline(&self, deadline: Option<Instant>) {
        self.socket().read_deadline.set(deadline);
    }

    /// Sets the write timeout of the underlying TCP socket.
    ///
    /// # Errors
    /// The OS error.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }

    fn tcp(&self) -> &TcpStream {
        &self.socket().tcp
    }

    fn socket(&self) -> &ApiSocket {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => &s.sock,
        }
    }
}

impl Read for ApiStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ApiStream {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_or_create_is_stable_and_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(a.public_key().starts_with("30"), "SPKI DER is a SEQUENCE");
        let key_mode = fs::metadata(dir.path().join("tls/server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path().join("tls"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let days = a.days_to_expiry(SystemTime::now());
        assert!((823..=825).contains(&days), "{days}");
        let key_pem = fs::read_to_string(dir.path().join("tls/server.key")).unwrap();
        assert!(key_pem.contains("BEGIN PRIVATE KEY"));
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }

    #[test]
    fn expiring_certificate_is_renewed_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let short = load_or_create_with(dir.path(), now, Duration::from_secs(10 * 86_400)).unwrap();
        assert!((9..=10).contains(&short.days_to_expiry(now)));
        let crt = dir.path().join("tls/server.crt");
        let old_cert = fs::read(&crt).unwrap();
        let renewed = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(short.public_key(), renewed.public_key());
        assert!(renewed.days_to_expiry(now) > 800);
        assert_ne!(
            old_cert,
            fs::read(&crt).unwrap(),
            "a new certificate was written"
        );
        // A fresh certificate is left alone.
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(again.days_to_expiry(now), renewed.days_to_expiry(now));
    }

    #[test]
    fn from_pem_files_loads_what_load_or_create_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::from_pem_files(
            &dir.path().join("tls/server.crt"),
            &dir.path().join("tls/server.key"),
        )
        .unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let err = Identity::from_pem_files(&dir.path().join("nope.crt"), &dir.path().join("k"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read TLS certificate "), "{err}");
        assert!(err.contains("nope.crt"), "{err}");
    }

    #[test]
    fn corrupt_key_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tls")).unwrap();
        fs::write(dir.path().join("tls/server.key"), "garbage").unwrap();
        let err = Identity::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.key"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("tls/server.key")).unwrap(),
            "garbage"
        );
    }

    /// A client presenting an identity is seen with that key; one presenting none, or on a
    /// plain connection, is seen with no key; both are served.
    #[test]
    fn client_certificates_are_optional_and_reported() {
        use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
        use std::net::TcpListener;

        let (dir_s, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server = Identity::load_or_create(dir_s.path()).unwrap();
        let client = Identity::load_or_create(dir_c.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = server.server_config();
        // Answers one request per connection with the key the client presented.
        let thread = std::thread::spawn(move || {
            for _ in 0..3 {
                let (tcp, _) = listener.accept().unwrap();
                let stream =
                    accept(tcp, &config, Instant::now() + Duration::from_secs(10)).unwrap();
                let key = stream.peer_public_key();
                let mut r = io::BufReader::new(stream);
                let mut line = Vec::new();
                jetstream_api::wire::read_line(&mut r, &mut line).unwrap();
                let answer = jetstream_api::wire::Response::success("", serde_json::json!(key));
                jetstream_api::wire::write_line(r.get_mut(), &answer).unwrap();
            }
        });
        let ask = |identity: Option<&Identity>, force_tls: bool| {
            let mut opts = ConnectOptions::new(Trust::Pinned(Some(server.public_key().into())));
            opts.force_tls = force_tls;
            opts.client_identity = identity.map(Identity::client_cert);
            let mut c = ApiClient::connect("127.0.0.1", port, &opts).unwrap();
            c.call("whoami", serde_json::Value::Null).unwrap()
        };
        assert_eq!(ask(Some(&client), true), client.public_key());
        assert_eq!(ask(None, true), serde_json::Value::Null);
        assert_eq!(ask(Some(&client), false), serde_json::Value::Null);
        thread.join().unwrap();
        assert_ne!(client.public_key(), server.public_key());
    }

    #[test]
    fn der_times_and_fingerprints() {
        assert_eq!(parse_der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_der_time(0x18, b"20000301000000Z"), Some(951_868_800));
        assert_eq!(parse_der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_der_time(0x17, b"4912312359Z"), None);
        assert_eq!(fingerprint_of("zz"), "SHA256:invalid");
        assert_eq!(
            fingerprint_of(""),
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
