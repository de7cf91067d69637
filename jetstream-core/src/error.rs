//! Error types, layered as in rustls: wire decoding errors live in `proto::packet`; file errors
//! ([`FsError`], also reached as `fs::FsError`), why a transfer ended ([`TransferError`]) and
//! [`Error`], what the public API returns, live here. This module depends on nothing else in
//! the crate but [`failure`](crate::failure), so the sans-IO `proto` layer can use it without
//! depending on `fs` or `io`. Every one of them maps to a typed
//! [`FailureReason`].

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::failure::{FailedFile, FailureReason};

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

impl TransferError {
    /// Why, as a type. A peer's CLOSE reads as the reason its code stands for.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Cancelled => FailureReason::Cancelled,
            Self::PeerClosed { code, .. } => FailureReason::from_close_code(*code),
            Self::TimedOut => FailureReason::TimedOut,
            Self::ProtocolViolation(_) => FailureReason::ProtocolViolation,
            Self::BadManifest(_) => FailureReason::InvalidManifest,
            Self::Disk(e) => e.reason(),
            Self::Shutdown => FailureReason::Shutdown,
            Self::Internal(_) => FailureReason::Internal,
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

/// Why a file operation failed. Carries the path for a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsError {
    /// An I/O error on `path` (the `io::ErrorKind` and the OS message are kept).
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The kind of error.
        kind: io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// A destination path would land outside the destination root (`..`, absolute, symlink).
    Escape {
        /// The manifest path that was refused.
        path: String,
    },
    /// A path is not valid for a manifest (empty component, NUL, not UTF-8, ...).
    InvalidPath {
        /// The offending path, lossily printed.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source file changed size (or vanished) while it was being sent.
    SourceChanged {
        /// The source path.
        path: PathBuf,
    },
    /// The received file's BLAKE3 digest does not match the sender's.
    DigestMismatch {
        /// The destination path.
        path: PathBuf,
    },
}

impl FsError {
    /// Why, as a type.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Io { kind, .. } => FailureReason::from_io_kind(*kind),
            Self::Escape { .. } => FailureReason::PathEscapes,
            Self::InvalidPath { .. } => FailureReason::InvalidPath,
            Self::SourceChanged { .. } => FailureReason::SourceUnreadable,
            Self::DigestMismatch { .. } => FailureReason::IntegrityMismatch,
        }
    }

    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, err: &io::Error) -> Self {
        Self::Io {
            path: path.into(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, message, .. } => write!(f, "{}: {message}", path.display()),
            Self::Escape { path } => write!(f, "{path}: path escapes the destination directory"),
            Self::InvalidPath { path, reason } => write!(f, "{path}: invalid path: {reason}"),
            Self::SourceChanged { path } => {
                write!(
                    f,
                    "{}: source file changed while it was being sent",
                    path.display()
                )
            }
            Self::DigestMismatch { path } => {
                write!(
                    f,
                    "{}: received data does not match the sender's BLAKE3 digest",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for FsError {}

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
    /// A transfer ended in error (as in its status: `failure` and `error_message`).
    TransferFailed {
        /// Why, as a type: what a program matches on.
        reason: FailureReason,
        /// The detail, for people.
        message: String,
        /// The entries that failed, each with its reason (for
        /// [`FailureReason::FilesFailed`]; empty otherwise).
        failed_files: Vec<FailedFile>,
    },
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
            Self::TransferFailed { message, .. } => write!(f, "transfer failed: {message}"),
            Self::WaitTimedOut => f.write_str("timed out waiting for the transfer"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Why a transfer failed, as a type, if this error is about a failed or cancelled
    /// transfer.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            Self::Transfer(e) => Some(e.reason()),
            Self::TransferFailed { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

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
