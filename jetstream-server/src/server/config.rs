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
    /// accept API clients from other hosts, over TLS (true|false, default true); with false
    /// only loopback clients are served
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
    /// serve Prometheus metrics over HTTP at ADDR:PORT (GET /metrics; a bare PORT means
    /// 127.0.0.1:PORT); default: off. The metrics are unauthenticated: keep them on loopback
    /// or a trusted network
    #[argh(option)]
    pub metrics_address: Option<String>,
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
        let args = split_equals(&args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerArgs::from_args(&["jetstream server"], &refs)
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
