//! Error types, layered as in rustls: wire decoding errors live in `proto::packet`, file errors
//! in `fs`, why a transfer ended here, and [`Error`] is what the public API returns.

use std::fmt;
use std::io;

use crate::fs::FsError;

/// Why a transfer failed or ended early. Peer-facing variants map to a wire close code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// Cancelled by the local user.
    Cancelled,
    /// The peer closed the session with a code and a reason.
    PeerClosed {
        /// The peer's close code (see [`CloseCode`]).
        code: u64,
        /// The peer's reason text.
        reason: String,
    },
    /// No authenticated datagram arrived for the idle timeout.
    TimedOut,
    /// The peer broke the protocol (undecodable frame after authentication, data out of bounds).
    ProtocolViolation(&'static str),
    /// The manifest could not be read or was invalid.
    BadManifest(String),
    /// A local file error that ends the whole transfer.
    Disk(FsError),
    /// The engine shut down while the transfer was running (it can be resumed).
    Shutdown,
    /// A state that cannot happen.
    Internal(&'static str),
}

/// Close codes carried in CLOSE frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCode {
    /// The user cancelled.
    Cancelled = 0,
    /// An internal error.
    Internal = 1,
    /// The peer sent something the protocol forbids.
    ProtocolViolation = 2,
    /// A disk error ended the transfer.
    Disk = 3,
    /// The manifest was invalid.
    BadManifest = 4,
    /// The engine is shutting down.
    Shutdown = 5,
}

impl From<&TransferError> for CloseCode {
    fn from(e: &TransferError) -> Self {
        match e {
            TransferError::Cancelled => Self::Cancelled,
            TransferError::ProtocolViolation(_) => Self::ProtocolViolation,
            TransferError::BadManifest(_) => Self::BadManifest,
            TransferError::Disk(_) => Self::Disk,
            TransferError::Shutdown => Self::Shutdown,
            TransferError::PeerClosed { .. }
            | TransferError::TimedOut
            | TransferError::Internal(_) => Self::Internal,
        }
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("transfer cancelled"),
            Self::PeerClosed { code, reason } => {
                write!(f, "peer closed the transfer (code {code}): {reason}")
            }
            Self::TimedOut => f.write_str("peer unreachable: no datagram within the idle timeout"),
            Self::ProtocolViolation(what) => write!(f, "protocol violation: {what}"),
            Self::BadManifest(why) => write!(f, "invalid manifest: {why}"),
            Self::Disk(e) => write!(f, "disk error: {e}"),
            Self::Shutdown => f.write_str("engine shut down; the transfer can be resumed"),
            Self::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for TransferError {}

/// The error of the public API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Binding or using a socket failed.
    Io(io::Error),
    /// A file error (building a manifest, opening a destination).
    Fs(FsError),
    /// A transfer failed.
    Transfer(TransferError),
    /// An invalid argument or configuration.
    Config(String),
    /// The engine thread is gone.
    EngineStopped,
    /// No transfer with that id.
    UnknownTransfer,
    /// A transfer ended in error; the message says why (as in its status).
    TransferFailed(String),
    /// Waiting for a transfer timed out (the transfer goes on).
    WaitTimedOut,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Fs(e) => write!(f, "{e}"),
            Self::Transfer(e) => write!(f, "{e}"),
            Self::Config(e) => write!(f, "invalid configuration: {e}"),
            Self::EngineStopped => f.write_str("the engine has stopped"),
            Self::UnknownTransfer => f.write_str("no such transfer"),
            Self::TransferFailed(why) => write!(f, "transfer failed: {why}"),
            Self::WaitTimedOut => f.write_str("timed out waiting for the transfer"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<FsError> for Error {
    fn from(e: FsError) -> Self {
        Self::Fs(e)
    }
}

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Self {
        Self::Transfer(e)
    }
}
