//! `jetstream server` flags (reference §2) and the configuration they give.

use std::net::IpAddr;
use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

/// The JetStream server: one process that sends and receives files, serves the JSON control
/// API on TCP (default 8886) and carries every transfer on one UDP port (default 8886).
/// Every option can also be set in the configuration file (default
/// /etc/jetstream/jetstream.toml, if it exists): `key = value` with the long flag name as the
/// key; a flag on the command line wins over the file.
//
// A new flag needs nothing more than its field: the configuration file, --print-config and
// reloads find it through ArgsInfo and its Debug form (see crate::config_file).
#[derive(FromArgs, ArgsInfo, Debug, Clone)]
pub struct ServerArgs {
    /// the configuration file (default /etc/jetstream/jetstream.toml when it exists; "none":
    /// no file)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// read no configuration file, not even the default one
    #[argh(switch)]
    pub no_config: bool,
    /// print the effective configuration (file and command line) as TOML and exit
    #[argh(switch)]
    pub print_config: bool,
    /// TCP port of the control API (default 8886)
    #[argh(option, default = "8886")]
    pub api_port: u16,
    /// address the API listens on (default: all interfaces, 0.0.0.0)
    #[argh(option, default = "String::from(\"0.0.0.0\")")]
    pub api_host: String,
    /// accept API clients from other hosts, over TLS (true|false, default true; given bare:
    /// true); with false only loopback clients are served
    #[argh(option, default = "true")]
    pub api_allow_remote_control: bool,
    /// seconds an API client has, from connecting, to log in (TLS handshake included); a
    /// connection not logged in by then is closed, whatever it sends (default 20)
    #[argh(option, default = "20")]
    pub api_login_timeout: u64,
    /// seconds a logged-in API connection may wait between requests before it is closed
    /// (default 900, 15 minutes; 0: never); connections carrying a receive or a download are
    /// not idle
    #[argh(option, default = "900")]
    pub api_idle_timeout: u64,
    /// UDP port that receives (and sends) transfer data (default 8886; may be repeated)
    #[argh(option)]
    pub recv_port: Vec<u16>,
    /// host:port advertised to clients as serverExternalAddress (behind NAT)
    #[argh(option)]
    pub external_address: Option<String>,
    /// directory for keys, certificate, identity and persisted objects
    /// (default /var/lib/jetstream/state)
    #[argh(option, default = "PathBuf::from(\"/var/lib/jetstream/state\")")]
    pub persistent_state_dir: PathBuf,
    /// sandbox root for every user (%u user name, %d domain, %f full name, %% a percent
    /// sign); default: none (the whole filesystem)
    #[argh(option)]
    pub sandbox_dir: Option<String>,
    /// a user who may become superuser (repeatable); the account running the server always may
    #[argh(option)]
    pub superuser: Vec<String>,
    /// a group whose members may become superuser (repeatable; default sudo, wheel, admin)
    #[argh(option)]
    pub supergroup: Vec<String>,
    /// write the log to this file instead of stderr
    #[argh(option)]
    pub log: Option<PathBuf>,
    /// the least important events logged: error, warn, info or debug (default info)
    #[argh(option, default = "crate::server::log::Level::Info")]
    pub log_level: crate::server::log::Level,
    /// accepted for compatibility: this server collects and sends no telemetry
    #[argh(switch)]
    pub disable_telemetry: bool,
    /// keep destinations across restarts (true|false, default true)
    #[argh(option, default = "true")]
    pub persistent_destinations: bool,
    /// keep transfers across restarts and resume interrupted ones (true|false, default true)
    #[argh(option, default = "true")]
    pub persistent_transfers: bool,
    /// disable API tokens (APITokensAvailable false)
    #[argh(switch)]
    pub api_disable_api_tokens: bool,
    /// disable shared tokens (sharedTokensAvailable false)
    #[argh(switch)]
    pub api_disable_shared_tokens: bool,
    /// server-wide cap on incoming transfers, kbit/s (0: no cap); when set (here or in the
    /// configuration file) it overrides updateBandwidthLimits at start and at every reload
    #[argh(option)]
    pub incoming_rate_limit: Option<u64>,
    /// server-wide cap on outgoing transfers, kbit/s (0: no cap); overrides
    /// updateBandwidthLimits at start and at every reload
    #[argh(option)]
    pub outgoing_rate_limit: Option<u64>,
    /// lend unused incoming capacity to outgoing traffic (true|false); overrides
    /// updateBandwidthLimits at start and at every reload
    #[argh(option)]
    pub borrow_incoming: Option<bool>,
    /// lend unused outgoing capacity to incoming traffic (true|false); overrides
    /// updateBandwidthLimits at start and at every reload
    #[argh(option)]
    pub borrow_outgoing: Option<bool>,
    /// at most this many transfers received at once (0: no limit); overrides
    /// updateBandwidthLimits at start and at every reload
    #[argh(option)]
    pub incoming_max_connections: Option<u64>,
    /// PEM certificate chain for the API (CA-issued); default: a self-signed certificate
    /// generated at first start and kept in the state dir
    #[argh(option)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[argh(option)]
    pub tls_key: Option<PathBuf>,
    /// friendly name of this server (serverName; default: the host name)
    #[argh(option)]
    pub server_name: Option<String>,
    /// directory of trigger scripts, each named after its event
    /// (default /var/lib/jetstream/triggers)
    #[argh(option, default = "PathBuf::from(\"/var/lib/jetstream/triggers\")")]
    pub trigger_dir: PathBuf,
    /// print which triggers run, and their output, on stderr (not into --log)
    #[argh(switch)]
    pub trigger_log: bool,
    /// also run the trigger on.<command> after every API command
    #[argh(switch)]
    pub trigger_on_api: bool,
    /// the weakest data cipher accepted: chacha20-poly1305 (any) or aes-256-gcm (the
    /// FIPS-approved one only); reported as minCipher
    #[argh(option, default = "String::from(\"chacha20-poly1305\")")]
    pub min_cipher: String,
    /// a data cipher this server offers when it sends (repeatable, best first; default both,
    /// the fastest on this CPU first)
    #[argh(option)]
    pub cipher: Vec<String>,
    /// the relay to receive through (a DMZ host running `jetstream relay_server`)
    #[argh(option)]
    pub recv_relay_host: Option<String>,
    /// the relay's control port (default 8887)
    #[argh(option, default = "8887")]
    pub recv_relay_port: u16,
    /// the relay's public key (hex; `jetstream relay_server --print-public-key` prints it):
    /// a relay presenting any other key is refused; required with --recv-relay-host
    #[argh(option)]
    pub recv_relay_public_key: Option<String>,
    /// register with whatever answers at --recv-relay-host, without checking its key:
    /// anyone on the path could then pose as the relay
    #[argh(switch)]
    pub insecure_accept_any_relay: bool,
    /// UDP address to bind the data port on (default 0.0.0.0)
    #[argh(option, default = "IpAddr::from([0, 0, 0, 0])")]
    pub recv_host: IpAddr,
    /// upper bound, in bytes, of the cloud (S3) file cache, reported as
    /// configuration.cloudFileCache.maximumSize (default: none, reported as 0)
    #[argh(option)]
    pub max_cloud_cache_size: Option<u64>,
    /// accepted for compatibility: this server is free software and needs no license key
    /// (the value is never stored, shown or logged)
    #[argh(option)]
    pub license_password: Option<LicenseKey>,
    /// serve Prometheus metrics over HTTP at ADDR:PORT (GET /metrics; a bare PORT means
    /// 127.0.0.1:PORT); default: off. The metrics are unauthenticated: keep them on loopback
    /// or a trusted network
    #[argh(option)]
    pub metrics_address: Option<String>,
}

/// A `--license-password` value: kept only because argh parses it; `Debug` (and with it
/// `--print-config` and any log of the flags) shows it masked.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenseKey(String);

impl std::str::FromStr for LicenseKey {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", super::secrets::MASK)
    }
}

impl ServerArgs {
    /// How long a client has to log in (`--api-login-timeout`, at least 1 s).
    pub fn api_login_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.api_login_timeout.max(1))
    }

    /// How long a logged-in connection may be idle (`--api-idle-timeout`); `None`: for ever.
    pub fn api_idle_timeout(&self) -> Option<std::time::Duration> {
        (self.api_idle_timeout > 0).then(|| std::time::Duration::from_secs(self.api_idle_timeout))
    }

    /// The receive ports, 8886 when none was given.
    pub fn recv_ports(&self) -> Vec<u16> {
        if self.recv_port.is_empty() {
            vec![8886]
        } else {
            self.recv_port.clone()
        }
    }
}

impl crate::config_file::FileConfig for ServerArgs {
    const COMMAND: &'static str = "jetstream server";
    const DEFAULT_PATH: &'static str = "/etc/jetstream/jetstream.toml";
    const COMMAND_LINE_ONLY: &'static [&'static str] = &["config", "no-config", "print-config"];
    const SECRET_KEYS: &'static [&'static str] = &["license-password"];
    const BARE_MEANS_TRUE: &'static [&'static str] = &["api-allow-remote-control"];

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

/// How a server is set up: what [`super::spawn`] takes. Not the command line: the binary
/// turns its flags (and configuration file) into one with `From<ServerArgs>` (or
/// `From<Loaded<ServerArgs>>`, which keeps where they came from for [`super::ServerHandle::reload`]);
/// an embedding program builds one with the setters below, or from flags with
/// [`Self::from_flags`] for an option without a setter.
///
/// Where the log goes (`--log`) is the program's choice, not the server's: see
/// [`super::log`]. `--log-level` is applied by a reload (process-wide).
///
/// [`Default`] is the reference's defaults: API on TCP `0.0.0.0:8886`, data on UDP
/// `0.0.0.0:8886`, state in `/var/lib/jetstream/state`. An embedding program usually sets the
/// state directory and loopback addresses with port 0 (the bound ports are then read from the
/// handle).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) args: ServerArgs,
    /// The command line and file the flags came from (the binary's), read again on reload.
    pub(crate) source: Option<crate::config_file::ConfigSource>,
    /// Most events waiting for the embedding program's trigger.
    pub(crate) event_queue: usize,
    /// Where the engines write their packet trace (`None`: no trace).
    pub(crate) trace_file: Option<PathBuf>,
}

/// Events that may wait for the embedding program's trigger before the server's threads that
/// produce more wait for it (see [`super::events`]).
pub const DEFAULT_EVENT_QUEUE: usize = 4096;

impl Default for ServerConfig {
    fn default() -> Self {
        let args = ServerArgs::from_args(&["jetstream server"], &[])
            .unwrap_or_else(|_| unreachable!("no flags are always valid flags"));
        args.into()
    }
}

impl From<ServerArgs> for ServerConfig {
    fn from(args: ServerArgs) -> Self {
        Self {
            args,
            source: None,
            event_queue: DEFAULT_EVENT_QUEUE,
            trace_file: None,
        }
    }
}

impl From<crate::config_file::Loaded<ServerArgs>> for ServerConfig {
    fn from(loaded: crate::config_file::Loaded<ServerArgs>) -> Self {
        Self {
            source: Some(loaded.source),
            ..loaded.args.into()
        }
    }
}

impl ServerConfig {
    /// The defaults with the state kept in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let mut c = Self::default();
        c.state_dir(state_dir);
        c
    }

    /// A configuration from `jetstream server` flags (`["--api-port=0", "--recv-port", "0"]`),
    /// for any option: each flag is described by `jetstream server --help`. No configuration
    /// file is read.
    ///
    /// # Errors
    /// [`super::ServerError::Config`] for an unknown flag or a bad value.
    pub fn from_flags(flags: &[&str]) -> Result<Self, super::ServerError> {
        let owned: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        let split = crate::config_file::bare_booleans::<ServerArgs>(
            crate::config_file::split_equals(&owned),
        );
        let refs: Vec<&str> = split.iter().map(String::as_str).collect();
        ServerArgs::from_args(&["jetstream server"], &refs)
            .map(Self::from)
            .map_err(|e| super::ServerError::Config {
                option: flags.join(" "),
                reason: e.output.trim_end().to_owned(),
            })
    }

    /// The persistent state directory (`--persistent-state-dir`): keys, identity, objects.
    pub fn state_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.args.persistent_state_dir = dir.into();
        self
    }

    /// Where the control API listens (`--api-host`, `--api-port`); port 0: one the system
    /// chooses ([`super::ServerHandle::api_addr`] says which).
    pub fn api_address(&mut self, addr: std::net::SocketAddr) -> &mut Self {
        self.args.api_host = addr.ip().to_string();
        self.args.api_port = addr.port();
        self
    }

    /// The one UDP data port (`--recv-host`, `--recv-port`); port 0: one the system chooses
    /// ([`super::ServerHandle::data_addrs`] says which).
    pub fn data_address(&mut self, addr: std::net::SocketAddr) -> &mut Self {
        self.args.recv_host = addr.ip();
        self.args.recv_port = vec![addr.port()];
        self
    }

    /// Serves Prometheus metrics at `addr` (`--metrics-address`; default: off).
    pub fn metrics_address(&mut self, addr: std::net::SocketAddr) -> &mut Self {
        self.args.metrics_address = Some(addr.to_string());
        self
    }

    /// Whether API clients from other hosts are served, over TLS
    /// (`--api-allow-remote-control`, default true).
    pub fn allow_remote_control(&mut self, allow: bool) -> &mut Self {
        self.args.api_allow_remote_control = allow;
        self
    }

    /// The server's friendly name (`--server-name`; default: the host name).
    pub fn server_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.args.server_name = Some(name.into());
        self
    }

    /// Every user's sandbox (`--sandbox-dir`, a template with `%u`); checked by
    /// [`super::spawn`].
    pub fn sandbox_dir(&mut self, template: impl Into<String>) -> &mut Self {
        self.args.sandbox_dir = Some(template.into());
        self
    }

    /// The trigger scripts' directory (`--trigger-dir`).
    pub fn trigger_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.args.trigger_dir = dir.into();
        self
    }

    /// Whether destinations and transfers are kept across restarts (`--persistent-destinations`,
    /// `--persistent-transfers`, default true).
    pub fn persistent(&mut self, keep: bool) -> &mut Self {
        self.args.persistent_destinations = keep;
        self.args.persistent_transfers = keep;
        self
    }

    /// Most events waiting for the embedding program's trigger before the server's threads
    /// that produce more wait for it (default [`DEFAULT_EVENT_QUEUE`]; at least 1).
    pub fn event_queue(&mut self, events: usize) -> &mut Self {
        self.event_queue = events.max(1);
        self
    }

    /// Writes every engine's packet trace to `path` (appended; for debugging the data
    /// protocol: see `JetstreamCore`'s `EngineConfig::trace_file`). The `jetstream` binary
    /// sets it from the `JETSTREAM_TRACE` environment variable; the library reads no
    /// environment.
    pub fn trace_file(&mut self, path: Option<PathBuf>) -> &mut Self {
        self.trace_file = path;
        self
    }
}

/// The keys a reload (`SIGHUP`, `systemctl reload jetstream`) applies to the running server;
/// a change to any other key is logged as needing a restart. Each is read where it is used,
/// from [`super::Server::live`]: the login and idle deadlines of the next wait, remote control
/// for the next connection, `on.<command>` triggers for the next command, ciphers for the
/// next transfer, bandwidth limits within 200 ms.
pub const LIVE_KEYS: &[&str] = &[
    "api-allow-remote-control",
    "api-login-timeout",
    "api-idle-timeout",
    "trigger-on-api",
    "min-cipher",
    "cipher",
    "incoming-rate-limit",
    "outgoing-rate-limit",
    "borrow-incoming",
    "borrow-outgoing",
    "incoming-max-connections",
    "log-level",
];

impl ServerArgs {
    /// `limits` with what these flags set (`--incoming-rate-limit` and the others) put over
    /// them: a set flag wins over `updateBandwidthLimits` at start and at every reload.
    pub fn bandwidth_over(&self, limits: super::bandwidth::Limits) -> super::bandwidth::Limits {
        let mut l = limits;
        if let Some(r) = self.incoming_rate_limit {
            l.incoming_limit_active = r > 0;
            l.incoming_rate_limit = r;
        }
        if let Some(r) = self.outgoing_rate_limit {
            l.outgoing_limit_active = r > 0;
            l.outgoing_rate_limit = r;
        }
        if let Some(b) = self.borrow_incoming {
            l.borrow_incoming = b;
        }
        if let Some(b) = self.borrow_outgoing {
            l.borrow_outgoing = b;
        }
        if let Some(n) = self.incoming_max_connections {
            l.incoming_max_connections = n;
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::split_equals;

    fn parse(args: &[&str]) -> Result<ServerArgs, argh::EarlyExit> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let args = crate::config_file::bare_booleans::<ServerArgs>(split_equals(&args));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerArgs::from_args(&["jetstream server"], &refs)
    }

    /// Issue 18, item 6: `--api-allow-remote-control` bare (as the reference writes it), with
    /// `=true/false`, ` true/false` and `1/0`; anything else refused.
    #[test]
    fn remote_control_takes_every_documented_form() {
        let allow = |args: &[&str]| parse(args).map(|a| a.api_allow_remote_control);
        assert!(allow(&["--api-allow-remote-control"]).unwrap());
        assert!(allow(&["--api-allow-remote-control", "--api-port", "9"]).unwrap());
        assert!(!allow(&["--api-allow-remote-control=false"]).unwrap());
        assert!(allow(&["--api-allow-remote-control=true"]).unwrap());
        assert!(!allow(&["--api-allow-remote-control", "false"]).unwrap());
        assert!(!allow(&["--api-allow-remote-control=0"]).unwrap());
        assert!(allow(&["--api-allow-remote-control", "1"]).unwrap());
        assert!(allow(&["--api-allow-remote-control=maybe"]).is_err());
        // Bare, then another flag: both apply.
        let a = parse(&["--api-allow-remote-control", "--api-port=9"]).unwrap();
        assert_eq!(a.api_port, 9);
        // Only that flag: another boolean option still needs its value.
        assert!(parse(&["--persistent-transfers"]).is_err());
        let a = ServerConfig::from_flags(&["--api-allow-remote-control", "--api-port=0"]).unwrap();
        assert!(a.args.api_allow_remote_control);
    }

    /// Issue 18, item 6: `--max-cloud-cache-size` in bytes; `--license-password` accepted and
    /// never shown (Debug, `--print-config`).
    #[test]
    fn cache_size_and_license_password_parse_and_the_password_never_shows() {
        let key = "LICENSE-SECRET-4f2a";
        let a = parse(&[
            "--max-cloud-cache-size=1073741824",
            "--license-password",
            key,
        ])
        .unwrap();
        assert_eq!(a.max_cloud_cache_size, Some(1 << 30));
        assert!(parse(&["--max-cloud-cache-size", "1G"]).is_err());
        let shown = format!("{a:?} {:?}", ServerConfig::from(a.clone()));
        assert!(!shown.contains(key), "{shown}");
        for mask in [true, false] {
            let table = crate::config_file::values(&a, mask).unwrap();
            assert!(!table.to_string().contains(key), "{table}");
            assert_eq!(table["max-cloud-cache-size"].as_integer(), Some(1 << 30));
        }
        let printed = crate::config_file::render(&a, "x", false).unwrap();
        assert!(!printed.contains(key), "{printed}");
    }

    #[test]
    fn defaults_follow_the_reference() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.api_port, 8886);
        assert_eq!(a.recv_ports(), vec![8886]);
        assert!(a.api_allow_remote_control && a.persistent_transfers && a.persistent_destinations);
        assert_eq!(
            a.persistent_state_dir,
            PathBuf::from("/var/lib/jetstream/state")
        );
        assert_eq!(a.api_login_timeout(), std::time::Duration::from_secs(20));
        assert_eq!(
            a.api_idle_timeout(),
            Some(std::time::Duration::from_secs(900))
        );
        let a = parse(&["--api-idle-timeout=0", "--api-login-timeout", "0"]).unwrap();
        assert_eq!(a.api_idle_timeout(), None);
        assert_eq!(a.api_login_timeout(), std::time::Duration::from_secs(1));
    }

    #[test]
    fn both_spellings_and_repeats_parse() {
        let a = parse(&[
            "--api-allow-remote-control=false",
            "--recv-port",
            "9000",
            "--recv-port=9001",
            "--sandbox-dir=/storage/%u",
            "--superuser",
            "alice",
        ])
        .unwrap();
        assert!(!a.api_allow_remote_control);
        assert_eq!(a.recv_ports(), vec![9000, 9001]);
        assert_eq!(a.sandbox_dir.as_deref(), Some("/storage/%u"));
        assert_eq!(a.superuser, vec!["alice"]);
    }

    #[test]
    fn unknown_flags_and_bad_values_are_refused() {
        assert!(parse(&["--no-such-flag"]).is_err());
        assert!(parse(&["--api-port", "http"]).is_err());
        assert!(parse(&["--api-allow-remote-control", "maybe"]).is_err());
    }
}
