//! Files: reading sources, writing and verifying destinations, path safety, resume journal.
//!
//! Everything here may block on the disk, so none of it runs on the event-loop thread except
//! the cheap bookkeeping calls documented as such.

use std::fmt;
use std::io;
use std::path::PathBuf;

pub mod beneath;
pub mod identity;
pub mod journal;
pub mod paths;
pub mod reader;
pub mod sink;
pub mod tree;

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
