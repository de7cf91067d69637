//! [`ServerError`]: why a server could not start, reload or finish, as a type (the binary maps
//! it to a message and an exit code; an embedding program can match on it).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Which of the server's sockets a [`ServerError::Bind`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Port {
    /// The TCP control API (`--api-host`, `--api-port`).
    Api,
    /// A UDP data port (`--recv-host`, `--recv-port`).
    Data,
    /// The Prometheus endpoint (`--metrics-address`).
    Metrics,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Api => "listen on the API port",
            Self::Data => "open the UDP receive port",
            Self::Metrics => "listen on the metrics address",
        })
    }
}

/// Why the server could not start (or reload, or finish cleanly).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerError {
    /// A socket could not be bound.
    Bind {
        /// Which one.
        port: Port,
        /// The address asked for, as given (`0.0.0.0:8886`, a host name...).
        address: String,
        /// The operating system's reason (`AddrInUse`, `PermissionDenied`...).
        kind: io::ErrorKind,
        /// Its text.
        cause: String,
    },
    /// An option has a value the server refuses.
    Config {
        /// The option, as its flag or configuration key names it (`min-cipher`).
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file cannot be read or is wrong (on reload).
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong: the line and key when there is one, and why.
        reason: String,
    },
    /// The persistent state directory (`--persistent-state-dir`) cannot be used: created,
    /// locked down, read or written.
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The TLS identity (the API's certificate and key) cannot be loaded or made.
    Tls(String),
    /// The system's users cannot be looked up (the server's own account, or PAM's setup).
    Users(String),
    /// A thread the server needs could not be started (the system is out of resources).
    Thread {
        /// The thread's name.
        name: &'static str,
        /// The operating system's reason.
        cause: String,
    },
    /// A thread of the server panicked (the log has the panic's message).
    Panicked {
        /// The thread's name.
        thread: &'static str,
    },
}

impl ServerError {
    /// A bind failure of `port` at `address`.
    pub(crate) fn bind(port: Port, address: impl fmt::Display, e: &io::Error) -> Self {
        Self::Bind {
            port,
            address: address.to_string(),
            kind: e.kind(),
            cause: e.to_string(),
        }
    }

    /// A refused value of `option` (its flag name without the dashes).
    pub(crate) fn config(option: &str, reason: impl fmt::Display) -> Self {
        Self::Config {
            option: option.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// A thread that could not start.
    pub(crate) fn thread(name: &'static str, e: &io::Error) -> Self {
        Self::Thread {
            name,
            cause: e.to_string(),
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind {
                port,
                address,
                cause,
                ..
            } => write!(f, "cannot {port} {address}: {cause}"),
            Self::Config { option, reason } => write!(f, "--{option}: {reason}"),
            Self::ConfigFile { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::StateDir { path, reason } => {
                let prefix = format!("persistent state dir {}: ", path.display());
                let reason = reason.strip_prefix(&prefix).unwrap_or(reason);
                write!(f, "{prefix}{reason}")
            }
            Self::Tls(reason) => write!(f, "TLS identity: {reason}"),
            Self::Users(reason) => write!(f, "users: {reason}"),
            Self::Thread { name, cause } => write!(f, "cannot start the {name} thread: {cause}"),
            Self::Panicked { thread } => {
                write!(f, "the {thread} thread panicked (see the log)")
            }
        }
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_wrong() {
        let e = io::Error::from(io::ErrorKind::AddrInUse);
        let b = ServerError::bind(Port::Api, "127.0.0.1:8886", &e);
        assert!(matches!(
            b,
            ServerError::Bind {
                port: Port::Api,
                kind: io::ErrorKind::AddrInUse,
                ..
            }
        ));
        assert!(b
            .to_string()
            .starts_with("cannot listen on the API port 127.0.0.1:8886: "));
        assert_eq!(
            ServerError::config("min-cipher", "unknown cipher \"rot13\"").to_string(),
            "--min-cipher: unknown cipher \"rot13\""
        );
    }
}
