//! The public face of a transfer: where it goes ([`Destination`]), its keys
//! ([`TransferKeys`]), its live status ([`TransferStatus`]) and a handle to wait on it
//! ([`Transfer`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, TransferError};
use crate::failure::{FailedFile, FailureReason};
use crate::proto::congestion::{PathHint, RateMode};
use crate::proto::crypto::{Cipher, SessionSecret};
use crate::types::{BitsPerSecond, Role, SessionId, TransferId};

/// A receiving engine, as seen by a sender.
#[derive(Clone, Debug)]
pub struct Destination {
    pub(crate) address: SocketAddr,
    pub(crate) send_rate_max: Option<BitsPerSecond>,
    pub(crate) rate_mode: Option<RateMode>,
    pub(crate) path_hint: Option<PathHint>,
}

impl Destination {
    /// The receiver's UDP data address (its `receiverPort`, 8886 by default).
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            send_rate_max: None,
            rate_mode: None,
            path_hint: None,
        }
    }
    /// Caps the sending rate to this destination (`sendRateMax`).
    pub fn send_rate_max(mut self, rate: Option<BitsPerSecond>) -> Self {
        self.send_rate_max = rate;
        self
    }
    /// The rate policy for this destination (`ratePolicy`); `None` keeps the engine's
    /// [`TransportConfig::rate_mode`](crate::TransportConfig::rate_mode).
    pub fn rate_mode(mut self, mode: Option<RateMode>) -> Self {
        self.rate_mode = mode;
        self
    }
    /// What an earlier transfer to this destination measured of the path
    /// ([`TransferStatus::path_estimate`]): a `fair` transfer then starts at that rate and checks
    /// it within a round trip instead of ramping up from 512 KiB (see [`PathHint`]). Give it only
    /// for a fresh transfer: before the receiver answers, up to one remembered bandwidth-delay
    /// product goes out, which a resumed transfer's receiver may already hold.
    pub fn path_hint(mut self, hint: Option<PathHint>) -> Self {
        self.path_hint = hint;
        self
    }
    /// The receiver's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// The keys of one transfer, agreed by both ends over an authenticated channel (the server
/// derives them over its TLS control connection). The engine never exchanges keys itself.
///
/// Use a fresh value for every transfer, including a resumed one.
#[derive(Clone, Debug)]
pub struct TransferKeys {
    pub(crate) session_id: SessionId,
    pub(crate) secret: SessionSecret,
    pub(crate) cipher: Cipher,
}

impl TransferKeys {
    /// Fresh random keys, with the cipher this CPU runs fastest.
    ///
    /// # Errors
    /// If the OS random generator fails.
    pub fn random() -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let mut secret = [0u8; 32];
        let mut id = [0u8; 8];
        rng.fill(&mut secret)
            .map_err(|_| Error::Config("OS random generator failed".into()))?;
        rng.fill(&mut id)
            .map_err(|_| Error::Config("OS random generator failed".into()))?;
        Ok(Self {
            session_id: SessionId(u64::from_be_bytes(id)),
            secret: SessionSecret::from_bytes(secret),
            cipher: Cipher::preferred(),
        })
    }
    /// Keys from parts agreed elsewhere.
    pub fn new(session_id: SessionId, secret: SessionSecret, cipher: Cipher) -> Self {
        Self {
            session_id,
            secret,
            cipher,
        }
    }
    /// The wire session id.
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }
    /// The AEAD in use.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }
}

/// Where a transfer is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferState {
    /// Set up, nothing exchanged yet.
    Pending,
    /// Moving data (`sending` on the sender, `receiving` on the receiver).
    Active,
    /// Every entry is verified at the receiver and durable.
    Complete,
    /// Cancelled by a user.
    Cancelled,
    /// Failed; see `error_message`.
    Error,
}

impl TransferState {
    /// The reference API's status string for this state and role.
    pub fn as_str(self, role: Role) -> &'static str {
        match (self, role) {
            (Self::Pending, _) => "pending",
            (Self::Active, Role::Sender) => "sending",
            (Self::Active, Role::Receiver) => "receiving",
            (Self::Complete, _) => "complete",
            (Self::Cancelled, _) => "cancelled",
            (Self::Error, _) => "error",
        }
    }
    /// Whether the transfer has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Cancelled | Self::Error)
    }
}

/// A snapshot of a transfer, with the reference's counters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransferStatus {
    /// The transfer's id.
    pub transfer_id: TransferId,
    /// Which end this is.
    pub role: Role,
    /// Life-cycle state.
    pub state: TransferState,
    /// Bytes per block: the largest DATA frame payload.
    pub block_size: u64,
    /// Blocks in the transfer's file data: Σ ceil(size / block_size).
    pub total_blocks: u64,
    /// Bytes of file data in the transfer.
    pub total_bytes: u64,
    /// DATA frames sent.
    pub blocks_sent: u64,
    /// Blocks' worth of file data acknowledged (sender) or held (receiver).
    pub blocks_acked: u64,
    /// DATA frames sent again after a loss.
    pub blocks_retransmitted: u64,
    /// File bytes acknowledged (sender) or held (receiver).
    pub bytes_acked: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_recv: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams received.
    pub packets_recv: u64,
    /// Payload bytes retransmitted.
    pub bytes_retransmitted: u64,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Current pacing rate, bytes/s.
    pub pacing_rate: u64,
    /// Congestion window, bytes (sender).
    pub cwnd: u64,
    /// Bytes sent and not yet acknowledged or declared lost (sender).
    pub bytes_in_flight: u64,
    /// Estimated bottleneck bandwidth, bytes/s (sender).
    pub bottleneck_bandwidth: u64,
    /// Minimum RTT seen (sender).
    pub min_rtt: Duration,
    /// Entries finished (receiver).
    pub files_done: u64,
    /// Entries in the manifest (0 until known on the receiver).
    pub files_total: u64,
    /// Entries that failed, each with its manifest path and reason.
    pub failed_files: Vec<FailedFile>,
    /// Why the transfer failed or was cancelled, as a type (`None` while it runs and once it
    /// is complete). What a program matches on; `error_message` is for people.
    pub failure: Option<FailureReason>,
    /// Why the transfer failed, in words.
    pub error_message: Option<String>,
    /// When it was requested.
    pub request_time: SystemTime,
    /// When it ended.
    pub end_time: Option<SystemTime>,
    /// Where the receiver writes (receiver only).
    pub destination_path: Option<PathBuf>,
    /// The peer's UDP address, once a datagram from it was authenticated.
    pub peer: Option<SocketAddr>,
    /// What this transfer measured of the path, for the next transfer to the same destination
    /// ([`Destination::path_hint`]); `None` until the sender found the pipe full (sender only).
    pub path_estimate: Option<PathHint>,
    /// What became of the [`Destination::path_hint`] given: `""` (none, or not the `fair`
    /// policy), `"jumping"` (not checked yet), `"validated"` or `"retreated"` (sender only).
    pub path_hint_outcome: &'static str,
    pub(crate) started: Instant,
    pub(crate) ended: Option<Instant>,
}

impl TransferStatus {
    pub(crate) fn new(transfer_id: TransferId, role: Role) -> Self {
        Self {
            transfer_id,
            role,
            state: TransferState::Pending,
            block_size: crate::proto::packet::MAX_PAYLOAD_LEN as u64,
            total_blocks: 0,
            total_bytes: 0,
            blocks_sent: 0,
            blocks_acked: 0,
            blocks_retransmitted: 0,
            bytes_acked: 0,
            bytes_sent: 0,
            bytes_recv: 0,
            packets_sent: 0,
            packets_recv: 0,
            bytes_retransmitted: 0,
            rtt: Duration::ZERO,
            pacing_rate: 0,
            cwnd: 0,
            bytes_in_flight: 0,
            bottleneck_bandwidth: 0,
            min_rtt: Duration::ZERO,
            files_done: 0,
            files_total: 0,
            failed_files: Vec::new(),
            failure: None,
            error_message: None,
            request_time: SystemTime::now(),
            end_time: None,
            destination_path: None,
            peer: None,
            path_estimate: None,
            path_hint_outcome: "",
            started: Instant::now(),
            ended: None,
        }
    }

    /// Time from request to end (or until now if still running).
    pub fn elapsed(&self) -> Duration {
        self.ended
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(self.started)
    }
}

/// Status shared between the engine thread and [`Transfer`] handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) status: Mutex<TransferStatus>,
    pub(crate) ended: Condvar,
}

/// A handle on one transfer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) engine: crate::io::EngineHandle,
}

impl Transfer {
    /// The transfer's id.
    pub fn id(&self) -> TransferId {
        self.shared.status.lock().transfer_id
    }

    /// A snapshot of its status (updated by the engine every `status_interval`).
    pub fn status(&self) -> TransferStatus {
        self.shared.status.lock().clone()
    }

    /// Blocks until the transfer ends or `timeout` passes, and returns its final status.
    ///
    /// # Errors
    /// `Error::TransferFailed` with the reason (a [`FailureReason`] and the words) if it
    /// failed, `Error::Transfer(Cancelled)` if it was cancelled here, `Error::WaitTimedOut` if
    /// `timeout` passed first (it keeps running).
    pub fn wait(&self, timeout: Duration) -> Result<TransferStatus, Error> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.status.lock();
        while !st.state.is_final() {
            if self.shared.ended.wait_until(&mut st, deadline).timed_out() && !st.state.is_final() {
                return Err(Error::WaitTimedOut);
            }
        }
        match st.state {
            TransferState::Complete => Ok(st.clone()),
            TransferState::Cancelled => Err(Error::Transfer(TransferError::Cancelled)),
            _ => Err(Error::TransferFailed {
                reason: st.failure.unwrap_or(FailureReason::Internal),
                message: st.error_message.clone().unwrap_or_default(),
                failed_files: st.failed_files.clone(),
            }),
        }
    }

    /// Cancels the transfer (both ends are told). A cancelled transfer can be resumed later
    /// with the same manifest and destination.
    pub fn cancel(&self) {
        let id = self.id();
        self.engine.command(crate::io::Command::Cancel(id));
    }

    /// Changes the sending rate cap while the transfer runs.
    pub fn set_send_rate_max(&self, rate: Option<BitsPerSecond>) {
        let id = self.id();
        self.engine.command(crate::io::Command::SetRate(id, rate));
    }
}
