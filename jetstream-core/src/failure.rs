//! Why a transfer or one of its files failed, as a type: [`FailureReason`].
//!
//! One enum is shared by every layer that reports a failure: the wire (the codes the data
//! protocol carries in CLOSE and COMPLETE frames map to and from it), the engine
//! ([`TransferStatus`](crate::TransferStatus), [`Error::TransferFailed`](crate::Error),
//! [`TriggerEvent`](crate::TriggerEvent)), and through them the server's API and `jscp`'s exit
//! status. Each reason has a stable snake_case code ([`FailureReason::as_str`], the inverse
//! of its [`FromStr`]) for programs, and a sentence ([`Display`](fmt::Display)) for people. The
//! detail text that comes with a reason (a path, the OS message, the peer's words) is for
//! people only: no program needs to read it.
//!
//! The wire format is unchanged: the numbers the protocol always carried are mapped here
//! ([`FailureReason::file_code`], [`FailureReason::from_file_code`],
//! [`FailureReason::from_close_code`]).

use std::fmt;
use std::io;
use std::str::FromStr;

/// Why a transfer, or one entry of it, failed.
///
/// `#[non_exhaustive]`: a later version may tell more reasons apart; match with a `_` arm.
/// With the `serde` feature it serialises as its [`code`](Self::as_str) (`"no_space"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// Cancelled by a user (this end's, or the peer's: a CLOSE with code 0).
    Cancelled,
    /// The peer closed the session with a close code this version does not know.
    ClosedByPeer,
    /// An I/O error on a disk other than the specific ones below (wire: CLOSE code 3, file
    /// code 3; an unknown file code from a newer peer reads as this too).
    DiskError,
    /// Some entries failed while the others arrived; each failed entry has its own reason
    /// ([`TransferStatus::failed_files`](crate::TransferStatus::failed_files)).
    FilesFailed,
    /// The data arrived but its BLAKE3 digest does not match the sender's: it was discarded
    /// (wire: file code 6).
    IntegrityMismatch,
    /// A state that should not happen, at this end or the peer's (wire: CLOSE code 1).
    Internal,
    /// The manifest could not be read or was invalid (wire: CLOSE code 4).
    InvalidManifest,
    /// A path that is not valid at the receiver (wire: file code 2).
    InvalidPath,
    /// The receiving disk (or the user's quota) is full (wire: file code 4).
    NoSpace,
    /// A path would leave the destination directory or cross a symbolic link (wire: file
    /// code 1).
    PathEscapes,
    /// Writing there is not permitted (permission denied, read-only file system; wire: file
    /// code 5).
    PermissionDenied,
    /// The peer broke the protocol (wire: CLOSE code 2).
    ProtocolViolation,
    /// An engine shut down while the transfer ran; it can be resumed (wire: CLOSE code 5).
    Shutdown,
    /// The sender could not read the source file, or it changed while being sent (wire: file
    /// code 7).
    SourceUnreadable,
    /// No authenticated datagram arrived from the peer within the idle timeout.
    TimedOut,
}

/// Every reason, in declaration order (for tests and for listing codes in documentation).
pub const ALL_REASONS: [FailureReason; 15] = [
    FailureReason::Cancelled,
    FailureReason::ClosedByPeer,
    FailureReason::DiskError,
    FailureReason::FilesFailed,
    FailureReason::IntegrityMismatch,
    FailureReason::Internal,
    FailureReason::InvalidManifest,
    FailureReason::InvalidPath,
    FailureReason::NoSpace,
    FailureReason::PathEscapes,
    FailureReason::PermissionDenied,
    FailureReason::ProtocolViolation,
    FailureReason::Shutdown,
    FailureReason::SourceUnreadable,
    FailureReason::TimedOut,
];

/// The per-entry failure codes of COMPLETE frames (receiver to sender). Fixed by the wire.
mod file_code {
    pub(super) const PATH_ESCAPES: u64 = 1;
    pub(super) const INVALID_PATH: u64 = 2;
    pub(super) const DISK_ERROR: u64 = 3;
    pub(super) const NO_SPACE: u64 = 4;
    pub(super) const PERMISSION_DENIED: u64 = 5;
    pub(super) const INTEGRITY_MISMATCH: u64 = 6;
    pub(super) const SOURCE_UNREADABLE: u64 = 7;
}

impl FailureReason {
    /// The stable snake_case code (`"no_space"`), the one the server's API and `jscp --json`
    /// show. [`FromStr`] parses it back.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled",
            Self::ClosedByPeer => "closed_by_peer",
            Self::DiskError => "disk_error",
            Self::FilesFailed => "files_failed",
            Self::IntegrityMismatch => "integrity_mismatch",
            Self::Internal => "internal",
            Self::InvalidManifest => "invalid_manifest",
            Self::InvalidPath => "invalid_path",
            Self::NoSpace => "no_space",
            Self::PathEscapes => "path_escapes",
            Self::PermissionDenied => "permission_denied",
            Self::ProtocolViolation => "protocol_violation",
            Self::Shutdown => "shutdown",
            Self::SourceUnreadable => "source_unreadable",
            Self::TimedOut => "timed_out",
        }
    }

    /// The code a receiver puts in a COMPLETE frame for an entry that failed this way, if
    /// the reason is one an entry can have.
    pub fn file_code(self) -> Option<u64> {
        Some(match self {
            Self::PathEscapes => file_code::PATH_ESCAPES,
            Self::InvalidPath => file_code::INVALID_PATH,
            Self::DiskError => file_code::DISK_ERROR,
            Self::NoSpace => file_code::NO_SPACE,
            Self::PermissionDenied => file_code::PERMISSION_DENIED,
            Self::IntegrityMismatch => file_code::INTEGRITY_MISMATCH,
            Self::SourceUnreadable => file_code::SOURCE_UNREADABLE,
            _ => return None,
        })
    }

    /// The code an entry failed for this reason travels with: its [`file_code`](Self::file_code),
    /// or [`DiskError`](Self::DiskError)'s for a reason that has none.
    pub(crate) fn file_code_or_disk_error(self) -> u64 {
        self.file_code().unwrap_or(file_code::DISK_ERROR)
    }

    /// The reason behind a COMPLETE frame's entry code. Codes this version does not know
    /// (from a newer peer) read as [`DiskError`](Self::DiskError), as they always did.
    pub fn from_file_code(code: u64) -> Self {
        match code {
            file_code::PATH_ESCAPES => Self::PathEscapes,
            file_code::INVALID_PATH => Self::InvalidPath,
            file_code::NO_SPACE => Self::NoSpace,
            file_code::PERMISSION_DENIED => Self::PermissionDenied,
            file_code::INTEGRITY_MISMATCH => Self::IntegrityMismatch,
            file_code::SOURCE_UNREADABLE => Self::SourceUnreadable,
            _ => Self::DiskError,
        }
    }

    /// The reason behind a peer's CLOSE code ([`CloseCode`](crate::error::CloseCode)).
    pub fn from_close_code(code: u64) -> Self {
        use crate::error::CloseCode;
        match code {
            c if c == CloseCode::Cancelled as u64 => Self::Cancelled,
            c if c == CloseCode::Internal as u64 => Self::Internal,
            c if c == CloseCode::ProtocolViolation as u64 => Self::ProtocolViolation,
            c if c == CloseCode::Disk as u64 => Self::DiskError,
            c if c == CloseCode::BadManifest as u64 => Self::InvalidManifest,
            c if c == CloseCode::Shutdown as u64 => Self::Shutdown,
            _ => Self::ClosedByPeer,
        }
    }

    /// The reason for a local I/O error of this kind.
    pub fn from_io_kind(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::NoSpace,
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                Self::PermissionDenied
            }
            _ => Self::DiskError,
        }
    }

    /// Whether the transfer was interrupted rather than refused: the peer went silent or an
    /// engine shut down. Running it again resumes it.
    pub fn is_interruption(self) -> bool {
        matches!(self, Self::TimedOut | Self::Shutdown)
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "the transfer was cancelled",
            Self::ClosedByPeer => "the peer ended the transfer",
            Self::DiskError => "an I/O error on the disk",
            Self::FilesFailed => "some entries failed",
            Self::IntegrityMismatch => "the data arrived corrupted and was discarded",
            Self::Internal => "an internal error",
            Self::InvalidManifest => "the manifest is invalid",
            Self::InvalidPath => "the path is not valid there",
            Self::NoSpace => "the receiver's disk is full (No space left on device)",
            Self::PathEscapes => "the path leaves the destination or crosses a symbolic link",
            Self::PermissionDenied => {
                "the receiver may not write there (permission denied or read-only)"
            }
            Self::ProtocolViolation => "the peer broke the protocol",
            Self::Shutdown => "an engine shut down; the transfer can be resumed",
            Self::SourceUnreadable => "the sender could not read the source file",
            Self::TimedOut => "peer unreachable: no datagram within the idle timeout",
        })
    }
}

/// A string that is not a [`FailureReason`] code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownReason(pub String);

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown failure reason {:?}", self.0)
    }
}

impl std::error::Error for UnknownReason {}

impl FromStr for FailureReason {
    type Err = UnknownReason;
    fn from_str(s: &str) -> Result<Self, UnknownReason> {
        ALL_REASONS
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for FailureReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for FailureReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One entry of a transfer that failed, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedFile {
    /// The entry's manifest (destination) path.
    pub path: String,
    /// Why it failed.
    pub reason: FailureReason,
    /// The detail, for people: the OS message and the path at the end that saw the error,
    /// or the reason's sentence at the sender, which has only the receiver's code.
    pub message: String,
}

impl FailedFile {
    /// An entry that failed.
    pub fn new(path: impl Into<String>, reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for FailedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        // The list holds every variant: a new one without a place here does not compile, and
        // one missing from ALL_REASONS fails the assertion.
        let place = |r: FailureReason| match r {
            FailureReason::Cancelled => 0,
            FailureReason::ClosedByPeer => 1,
            FailureReason::DiskError => 2,
            FailureReason::FilesFailed => 3,
            FailureReason::IntegrityMismatch => 4,
            FailureReason::Internal => 5,
            FailureReason::InvalidManifest => 6,
            FailureReason::InvalidPath => 7,
            FailureReason::NoSpace => 8,
            FailureReason::PathEscapes => 9,
            FailureReason::PermissionDenied => 10,
            FailureReason::ProtocolViolation => 11,
            FailureReason::Shutdown => 12,
            FailureReason::SourceUnreadable => 13,
            FailureReason::TimedOut => 14,
        };
        for (i, r) in ALL_REASONS.into_iter().enumerate() {
            assert_eq!(place(r), i, "{r:?} out of place in ALL_REASONS");
            // Only these two are resumed as interruptions.
            assert_eq!(
                r.is_interruption(),
                matches!(r, FailureReason::TimedOut | FailureReason::Shutdown),
                "{r:?}"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for r in ALL_REASONS {
            assert_eq!(r.as_str().parse::<FailureReason>(), Ok(r));
            assert!(seen.insert(r.as_str()), "duplicate code {}", r.as_str());
            assert!(r
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(
            "disk_full".parse::<FailureReason>(),
            Err(UnknownReason("disk_full".into()))
        );
    }

    #[test]
    fn wire_file_codes_are_the_ones_the_protocol_always_carried() {
        // The numbers of the COMPLETE frame, fixed since the first version of the protocol.
        let table = [
            (1, FailureReason::PathEscapes),
            (2, FailureReason::InvalidPath),
            (3, FailureReason::DiskError),
            (4, FailureReason::NoSpace),
            (5, FailureReason::PermissionDenied),
            (6, FailureReason::IntegrityMismatch),
            (7, FailureReason::SourceUnreadable),
        ];
        for (code, r) in table {
            assert_eq!(r.file_code(), Some(code));
            assert_eq!(FailureReason::from_file_code(code), r);
        }
        assert_eq!(FailureReason::from_file_code(99), FailureReason::DiskError);
        assert_eq!(FailureReason::TimedOut.file_code(), None);
    }

    #[test]
    fn close_codes_map_to_reasons() {
        assert_eq!(FailureReason::from_close_code(0), FailureReason::Cancelled);
        assert_eq!(FailureReason::from_close_code(1), FailureReason::Internal);
        assert_eq!(
            FailureReason::from_close_code(2),
            FailureReason::ProtocolViolation
        );
        assert_eq!(FailureReason::from_close_code(3), FailureReason::DiskError);
        assert_eq!(
            FailureReason::from_close_code(4),
            FailureReason::InvalidManifest
        );
        assert_eq!(FailureReason::from_close_code(5), FailureReason::Shutdown);
        assert_eq!(
            FailureReason::from_close_code(6),
            FailureReason::ClosedByPeer
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_code() {
        for r in ALL_REASONS {
            let j = serde_json::to_string(&r).unwrap();
            assert_eq!(j, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<FailureReason>(&j).unwrap(), r);
        }
        assert!(serde_json::from_str::<FailureReason>("\"nope\"").is_err());
    }
}
