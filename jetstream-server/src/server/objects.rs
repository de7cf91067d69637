//! The server's objects (reference §4): destinations, manifests, transfers (both ends) and API
//! tokens; their persisted form and their API views.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jetstream_api::types as api;
use jetstream_core::Manifest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::secrets::{shown_token, MaskedOpt, ShownTokenOpt, MASK};
use jetstream_client::manifest::FileMapping;

/// Microseconds since the Unix epoch (the API's timestamps).
pub type Micros = i64;

/// Now, in µs.
pub fn now_us() -> Micros {
    to_us(SystemTime::now())
}

/// A time in µs.
pub fn to_us(t: SystemTime) -> Micros {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub use jetstream_client::ids::{new_id, new_session_id, random_bytes, random_u64};

/// Lowercase hex.
pub use jetstream_client::tls::hex_encode as hex;

/// An API structure as the JSON value the API sends.
pub fn to_json<T: Serialize>(structure: &T) -> Value {
    // The API types serialize infallibly: structs with string keys, strings and numbers, no
    // maps with other keys, no fallible `Serialize` impls (paths are converted to strings).
    serde_json::to_value(structure).expect("API structures serialize to JSON")
}

/// A time in µs as the API gives it.
pub fn api_time(t: Micros) -> api::Timestamp {
    api::Timestamp::from_micros(t)
}

/// `userData` as the API gives it (an object).
fn api_user_data(d: &BTreeMap<String, Value>) -> Value {
    Value::Object(d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Who owns an object: the user, and the API token (and token login) it was created through.
/// `Debug` shows only the token's first characters.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// System user name.
    pub user: String,
    /// The API token used, if any.
    pub token: Option<String>,
    /// The token login session, if any.
    pub token_session: Option<String>,
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner")
            .field("user", &self.user)
            .field("token", &ShownTokenOpt(&self.token))
            .field("token_session", &self.token_session)
            .finish()
    }
}

impl Owner {
    /// The `owner`, `ownerToken` and `ownerTokenSession` fields of its objects.
    pub fn to_api(&self) -> api::Owner {
        api::Owner {
            user: self.user.clone(),
            token: self.token.clone().map(api::Token::from),
            token_session: self.token_session.clone(),
        }
    }
}

/// How the sending server logs in to a destination's server. Never shown by any command;
/// `Debug` masks the passwords and shows only the token's first characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credentials {
    /// A system user and password.
    Password {
        /// User name on the receiving server.
        user: String,
        /// Its password.
        password: String,
    },
    /// An API token (and its password, if it has one).
    Token {
        /// The token.
        token: String,
        /// The token's password.
        password: Option<String>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password { user, password: _ } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &format_args!("{MASK}"))
                .finish(),
            Self::Token { token, password } => f
                .debug_struct("Token")
                .field("token", &shown_token(token))
                .field("password", &MaskedOpt(password))
                .finish(),
        }
    }
}

/// A destination: a receiving server and how to log in to it (reference §4.2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DestinationRec {
    /// 32 hex chars.
    pub id: String,
    /// Owner.
    pub owner: Owner,
    /// Host name or IP as given.
    pub address: String,
    /// The receiver's API port (TCP, default 8886).
    pub api_port: u16,
    /// The receiver's UDP data port, when given; else learned from its server info.
    pub port: Option<u16>,
    /// Log-in for the receiving server.
    pub credentials: Option<Credentials>,
    /// Rate cap, kbit/s.
    pub send_rate_max: Option<u64>,
    /// Rate policy (`fair`, `fixed`, `background`); `None` is `fair`.
    #[serde(default)]
    pub rate_policy: Option<String>,
    /// The local UDP port transfers to it are sent from (`None`: chosen by the system).
    #[serde(default)]
    pub send_port: Option<u16>,
    /// Receiver public key pinned at first contact (or given up front).
    pub public_key: Option<String>,
    /// Creation time.
    pub creation_time: Micros,
    /// Last resolved IP.
    pub ip: Option<String>,
    /// Last receiver data port learned.
    pub learned_port: Option<u16>,
    /// serverId / serverUid of the receiver at last contact.
    pub last_server_id: Option<String>,
    /// As above.
    pub last_server_uid: Option<String>,
    /// Last error (short code) and message.
    pub last_error: Option<String>,
    /// As above.
    pub last_error_message: Option<String>,
    /// Last time data went out / came back.
    pub last_send_time: Option<Micros>,
    /// As above.
    pub last_recv_time: Option<Micros>,
    /// `disconnected | negotiating | connected`.
    #[serde(skip, default = "disconnected")]
    pub state: &'static str,
    /// User data.
    #[serde(default)]
    pub user_data: BTreeMap<String, Value>,
}

fn disconnected() -> &'static str {
    "disconnected"
}

impl DestinationRec {
    /// The rate policy transfers to it use (`fair` when unset or unknown).
    pub fn rate_mode(&self) -> jetstream_core::RateMode {
        self.rate_policy
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default()
    }

    /// The UDP port transfers go to.
    pub fn data_port(&self) -> u16 {
        self.port.or(self.learned_port).unwrap_or(8886)
    }

    /// The API view (no credentials). `local_send_port` is the port its engine is bound to,
    /// once it has one.
    pub fn view_with_port(&self, queued: usize, local_send_port: Option<u16>) -> Value {
        to_json(&self.to_api_with_port(queued, local_send_port))
    }

    /// The API view (no credentials).
    pub fn view(&self, queued: usize) -> Value {
        to_json(&self.to_api(queued))
    }

    /// The `send.getDestination` structure: [`Self::to_api`] with `localSendPort`.
    pub fn to_api_with_port(
        &self,
        queued: usize,
        local_send_port: Option<u16>,
    ) -> api::Destination {
        api::Destination {
            local_send_port: Some(local_send_port),
            ..self.to_api(queued)
        }
    }

    /// Its `connectionId`: the receiver as it names it, `host:port` (the host as given and the
    /// UDP data port); destinations naming the same receiver share it.
    pub fn connection_id(&self) -> String {
        format!("{}:{}", self.address, self.data_port())
    }

    /// The API structure (no credentials), with `queued` transfers to it queued or running.
    pub fn to_api(&self, queued: usize) -> api::Destination {
        api::Destination {
            destination_id: self.id.clone(),
            connection_id: self.connection_id(),
            destination_address: self.address.clone(),
            destination_api_port: self.api_port,
            // Recorded from a resolved address (`IpAddr::to_string`), so it parses back.
            destination_ip: self.ip.as_deref().and_then(|ip| ip.parse().ok()),
            destination_port: self.data_port(),
            destination_public_key: self.public_key.clone(),
            permitted_destination_public_key: self.public_key.clone(),
            encrypted_connection_state: api::ConnectionState::from_wire(self.state),
            encryption_enabled: true,
            last_destination_server_id: self.last_server_id.clone(),
            last_destination_server_uid: self.last_server_uid.clone(),
            last_error: self.last_error.clone(),
            last_error_message: self.last_error_message.clone(),
            last_recv_time: self.last_recv_time.map(api_time),
            last_send_time: self.last_send_time.map(api_time),
            num_transfers_queued: queued as u64,
            send_rate_max: self.send_rate_max,
            rate_policy: api::RatePolicy::from_wire(self.rate_mode().as_str()),
            send_port: self.send_port,
            local_send_port: None,
            auth_method: match &self.credentials {
                Some(Credentials::Password { .. }) => api::AuthMethod::Password,
                Some(Credentials::Token { .. }) => api::AuthMethod::Token,
                None => api::AuthMethod::NoCredentials,
            },
            creation_time: api_time(self.creation_time),
            user_data: api_user_data(&self.user_data),
            owner: self.owner.to_api(),
        }
    }
}

/// A manifest (reference §4.3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestRec {
    /// 32 hex chars.
    pub id: String,
    /// Owner.
    pub owner: Owner,
    /// `pending | complete | error`.
    pub status: String,
    /// Why it failed.
    pub error_message: Option<String>,
    /// The requested mappings (source → target), as given.
    pub requested: Vec<(String, String)>,
    /// What was found (complete manifests).
    pub files: Vec<FileMapping>,
    /// Creation time.
    pub creation_time: Micros,
    /// User data.
    #[serde(default)]
    pub user_data: BTreeMap<String, Value>,
    /// The engine's manifest, built on demand.
    #[serde(skip)]
    pub built: Option<Arc<Manifest>>,
}

impl ManifestRec {
    /// Total bytes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The engine's manifest, built from the mappings on first use (it is not persisted).
    ///
    /// # Errors
    /// A mapping the engine refuses.
    pub fn engine(&mut self) -> Result<Arc<Manifest>, String> {
        if let Some(b) = &self.built {
            return Ok(b.clone());
        }
        let b = Arc::new(jetstream_client::manifest::engine_manifest(&self.files)?);
        self.built = Some(b.clone());
        Ok(b)
    }

    /// The API view.
    pub fn view(&self) -> Value {
        to_json(&self.to_api())
    }

    /// The API structure.
    pub fn to_api(&self) -> api::Manifest {
        let complete = self.status == "complete";
        api::Manifest {
            manifest_id: self.id.clone(),
            status: api::ManifestStatus::from_wire(&self.status),
            processing: self.status == "pending",
            error_message: self.error_message.clone(),
            total_files: complete.then_some(self.files.len() as u64),
            total_size: complete.then(|| self.total_size()),
            creation_time: api_time(self.creation_time),
            user_data: api_user_data(&self.user_data),
            owner: self.owner.to_api(),
        }
    }

    /// The `getManifestFiles` view.
    pub fn files_view(&self) -> Value {
        to_json(&self.files_to_api())
    }

    /// The `getManifestFiles` structure. A source path that is not UTF-8 is shown with
    /// U+FFFD in place of the bytes that are not.
    pub fn files_to_api(&self) -> api::ManifestFiles {
        api::ManifestFiles {
            manifest_id: self.id.clone(),
            file_mappings: self
                .files
                .iter()
                .map(|f| api::FileMapping {
                    src_path: f.src.to_string_lossy().into_owned(),
                    dest_path: format!("/{}", f.dest),
                    file_size: f.size,
                    is_empty_dir: f.is_empty_dir,
                    executable: f.executable,
                    modification_time: api_time(f.mtime_us),
                })
                .collect(),
        }
    }
}

/// A sending transfer's life (reference §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxStatus {
    /// Queued.
    Pending,
    /// Running.
    Sending,
    /// Stopped by the user; `resumeTransfer` continues it.
    Suspended,
    /// Done and verified at the receiver.
    Complete,
    /// Cancelled by the user.
    Cancelled,
    /// Failed (see errorMessage).
    Error,
}

impl TxStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Suspended => "suspended",
            Self::Complete => "complete",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }

    /// As the API gives it.
    pub fn to_api(self) -> api::TransferStatus {
        match self {
            Self::Pending => api::TransferStatus::Pending,
            Self::Sending => api::TransferStatus::Sending,
            Self::Suspended => api::TransferStatus::Suspended,
            Self::Complete => api::TransferStatus::Complete,
            Self::Cancelled => api::TransferStatus::Cancelled,
            Self::Error => api::TransferStatus::Error,
        }
    }
    /// Whether the transfer has ended for good.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Cancelled | Self::Error)
    }
}

/// The engine counters last seen for a transfer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Blocks sent.
    pub blocks_sent: u64,
    /// Blocks acknowledged.
    pub blocks_acked: u64,
    /// Blocks sent again.
    pub blocks_retransmitted: u64,
    /// Total blocks.
    pub total_blocks: u64,
    /// Block size.
    pub block_size: u64,
    /// Bytes of file data acknowledged.
    pub bytes_acked: u64,
    /// UDP bytes sent / received.
    pub bytes_sent: u64,
    /// As above.
    pub bytes_recv: u64,
    /// Datagrams sent / received.
    pub packets_sent: u64,
    /// As above.
    pub packets_recv: u64,
    /// Smoothed RTT, µs.
    pub rtt_us: u64,
    /// Current pacing rate, kbit/s.
    pub rate_kbps: u64,
    /// Files the receiver finished (receiver side).
    pub files_done: u64,
}

impl Counters {
    /// Adds a finished attempt's counters (a resumed transfer runs several engine sessions).
    pub fn accumulate(&mut self, other: &Self) {
        self.blocks_sent += other.blocks_sent;
        self.blocks_retransmitted += other.blocks_retransmitted;
        self.bytes_sent += other.bytes_sent;
        self.bytes_recv += other.bytes_recv;
        self.packets_sent += other.packets_sent;
        self.packets_recv += other.packets_recv;
    }

    /// From an engine status.
    pub fn from_status(s: &jetstream_core::TransferStatus) -> Self {
        Self {
            blocks_sent: s.blocks_sent,
            blocks_acked: s.blocks_acked,
            blocks_retransmitted: s.blocks_retransmitted,
            total_blocks: s.total_blocks,
            block_size: s.block_size,
            bytes_acked: s.bytes_acked,
            bytes_sent: s.bytes_sent,
            bytes_recv: s.bytes_recv,
            packets_sent: s.packets_sent,
            packets_recv: s.packets_recv,
            rtt_us: u64::try_from(s.rtt.as_micros()).unwrap_or(u64::MAX),
            rate_kbps: s.pacing_rate * 8 / 1000,
            files_done: s.files_done,
        }
    }
}

/// A file of a transfer that failed at the receiver (API `failedFiles[]`: `destPath`,
/// `errorMessage`, `errorCode`). State files written before the code existed hold
/// `[path, message]` pairs; they still load (with no code).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "FailedFileRepr")]
pub struct FailedFileRec {
    /// The target path.
    pub path: String,
    /// Why, in words.
    pub message: String,
    /// Why, as the engine's reason.
    pub code: Option<jetstream_core::FailureReason>,
}

/// The forms a [`FailedFileRec`] is stored in.
#[derive(Deserialize)]
#[serde(untagged)]
enum FailedFileRepr {
    Pair(String, String),
    Full {
        path: String,
        message: String,
        #[serde(default)]
        code: Option<jetstream_core::FailureReason>,
    },
}

impl From<FailedFileRepr> for FailedFileRec {
    fn from(r: FailedFileRepr) -> Self {
        match r {
            FailedFileRepr::Pair(path, message) => Self {
                path,
                message,
                code: None,
            },
            FailedFileRepr::Full {
                path,
                message,
                code,
            } => Self {
                path,
                message,
                code,
            },
        }
    }
}

impl From<&jetstream_core::FailedFile> for FailedFileRec {
    fn from(f: &jetstream_core::FailedFile) -> Self {
        Self {
            path: f.path.clone(),
            message: f.message.clone(),
            code: Some(f.reason),
        }
    }
}

/// A sending transfer (reference §4.5).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRec {
    /// 32 hex chars.
    pub id: String,
    /// Owner.
    pub owner: Owner,
    /// Destination and manifest.
    pub destination_id: String,
    /// As above.
    pub manifest_id: String,
    /// Per-transfer path under the receiver's sandbox.
    pub destination_path: String,
    /// Lower first.
    pub priority: i64,
    /// Status.
    pub status: TxStatus,
    /// Why it failed, or the last interruption while retrying.
    pub error_message: Option<String>,
    /// The engine's reason for that (API `errorCode`, its snake_case code), when the engine
    /// reported it; shown only while `error_message` is set.
    #[serde(default)]
    pub error_code: Option<jetstream_core::FailureReason>,
    /// Times (µs).
    pub request_time: Micros,
    /// As above.
    pub queue_time: Micros,
    /// As above.
    pub start_time: Option<Micros>,
    /// As above.
    pub end_time: Option<Micros>,
    /// Files that failed at the receiver.
    #[serde(default)]
    pub failed_files: Vec<FailedFileRec>,
    /// Counters of finished attempts.
    #[serde(default)]
    pub done: Counters,
    /// Counters of the running attempt.
    #[serde(skip)]
    pub live: Counters,
    /// Total bytes and files.
    pub total_bytes: u64,
    /// As above.
    pub total_files: u64,
    /// Engine sessions started (1 + resumes).
    #[serde(default)]
    pub attempts: u32,
    /// User data.
    #[serde(default)]
    pub user_data: BTreeMap<String, Value>,
}

impl TransferRec {
    /// The API view.
    pub fn view(&self) -> Value {
        to_json(&self.to_api())
    }

    /// The API structure, its figures as of now.
    pub fn to_api(&self) -> api::Transfer {
        let (d, l) = (&self.done, &self.live);
        let block_size = if l.block_size > 0 {
            l.block_size
        } else {
            jetstream_core::proto::packet::MAX_PAYLOAD_LEN as u64
        };
        let complete = self.status == TxStatus::Complete;
        api::Transfer {
            transfer_id: self.id.clone(),
            destination_id: self.destination_id.clone(),
            manifest_id: self.manifest_id.clone(),
            destination_path: self.destination_path.clone(),
            priority: self.priority,
            status: self.status.to_api(),
            processing: !self.status.is_final(),
            error_message: self.error_message.clone(),
            error_code: self
                .error_message
                .as_ref()
                .and(self.error_code)
                .map(api::ErrorCode::Known),
            request_time: api_time(self.request_time),
            queue_time: api_time(self.queue_time),
            start_time: self.start_time.map(api_time),
            end_time: self.end_time.map(api_time),
            snapshot_time: api_time(now_us()),
            checkpoint_frequency_seconds: Some(1),
            block_size,
            total_blocks: self.total_bytes.div_ceil(block_size),
            total_bytes: self.total_bytes,
            total_files: self.total_files,
            blocks_sent: d.blocks_sent + l.blocks_sent,
            blocks_acked: if complete {
                self.total_bytes.div_ceil(block_size)
            } else {
                l.blocks_acked
            },
            blocks_retransmitted: d.blocks_retransmitted + l.blocks_retransmitted,
            bytes_acked: if complete {
                self.total_bytes
            } else {
                l.bytes_acked
            },
            bytes_sent: d.bytes_sent + l.bytes_sent,
            bytes_recv: d.bytes_recv + l.bytes_recv,
            packets_sent: d.packets_sent + l.packets_sent,
            packets_recv: d.packets_recv + l.packets_recv,
            rtt_micros: l.rtt_us,
            send_rate_kbps: l.rate_kbps,
            attempts: self.attempts,
            failed_files: self
                .failed_files
                .iter()
                .map(|f| api::FailedFile {
                    dest_path: f.path.clone(),
                    error_message: f.message.clone(),
                    error_code: f.code.map(api::ErrorCode::Known),
                })
                .collect(),
            user_data: api_user_data(&self.user_data),
            owner: self.owner.to_api(),
        }
    }
}

/// A transfer this server receives (reference §4.6).
#[derive(Clone, Debug)]
pub struct RecvRec {
    /// The sender's transfer id.
    pub id: String,
    /// The receiving user.
    pub owner: Owner,
    /// Directory the files go under (`<sandbox>/<destinationPath>`).
    pub root: PathBuf,
    /// As the sender gave it.
    pub destination_path: String,
    /// The sending server's API peer address.
    pub source_ip: std::net::IpAddr,
    /// As above.
    pub source_port: u16,
    /// `receiving | complete | error`.
    pub status: String,
    /// Bytes announced.
    pub total_size: u64,
    /// Times (µs).
    pub last_recv_time: Option<Micros>,
    /// As above.
    pub last_send_time: Option<Micros>,
    /// As above.
    pub last_error_time: Option<Micros>,
    /// Message of the last interruption or failure.
    pub error_message: Option<String>,
    /// The engine's reason for it (API `errorCode`), when the engine reported it.
    pub error_code: Option<jetstream_core::FailureReason>,
    /// Counters.
    pub counters: Counters,
    /// The sender's server public key.
    pub source_public_key: Option<String>,
    /// The engine transfer.
    pub handle: Option<jetstream_core::Transfer>,
    /// This transfer's share of the incoming limit (kbit/s), told to its sender.
    pub rate_cap_kbps: Option<u64>,
    /// The local UDP port receiving it (one of `--recv-port`).
    pub receiver_port: u16,
    /// Which start of this transfer the record is (a retry replaces the record): lets the API
    /// connection that started an earlier attempt leave the current one alone when it closes.
    pub attempt: u64,
}

impl RecvRec {
    /// The API view.
    pub fn view(&self) -> Value {
        to_json(&self.to_api())
    }

    /// The API structure.
    pub fn to_api(&self) -> api::ReceiveTransfer {
        api::ReceiveTransfer {
            transfer_id: self.id.clone(),
            destination_path: self.destination_path.clone(),
            source_ip: self.source_ip,
            source_port: self.source_port,
            status: api::ReceiveStatus::from_wire(&self.status),
            total_size: self.total_size,
            last_recv_time: self.last_recv_time.map(api_time),
            last_send_time: self.last_send_time.map(api_time),
            last_error_time: self.last_error_time.map(api_time),
            error_message: self.error_message.clone(),
            error_code: self.error_code.map(api::ErrorCode::Known),
            bytes_recv: self.counters.bytes_recv,
            bytes_held: self.counters.bytes_acked,
            files_done: self.counters.files_done,
            rate_limit_kbps: self.rate_cap_kbps,
            receiver_port: self.receiver_port,
            owner: self.owner.to_api(),
        }
    }
}

/// An API token (reference §4.8, §6.3). `Debug` shows only the token's first characters and
/// whether a password hash is set.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenRec {
    /// The token string (32 hex chars from the OS generator).
    pub token: String,
    /// Owner (tokens impersonate their creator).
    pub owner: Owner,
    /// The password's hash when one is required: `pbkdf2-sha256$<iterations>$<salt>$<hex>`
    /// (see [`super::secrets`]), or from servers before that, hex SHA-256 of salt‖password
    /// (still accepted, replaced at the next successful login).
    pub password_hash: Option<String>,
    /// Salt for the hash.
    pub salt: String,
    /// Free text.
    pub description: String,
    /// Creation / expiry (µs; expiry `None` = never).
    pub creation_time: Micros,
    /// As above.
    pub expiry_time: Option<Micros>,
    /// Sandbox path (below the owner's sandbox) the token is confined to.
    pub path: Option<String>,
    /// Permission subset.
    pub permissions: Vec<String>,
    /// User data.
    #[serde(default)]
    pub user_data: BTreeMap<String, Value>,
    /// For a shared token (a download link): what it shares and how often it was used.
    #[serde(default)]
    pub shared: Option<SharedInfo>,
}

impl fmt::Debug for TokenRec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRec")
            .field("token", &shown_token(&self.token))
            .field("owner", &self.owner)
            .field("password_hash", &MaskedOpt(&self.password_hash))
            .field("description", &self.description)
            .field("creation_time", &self.creation_time)
            .field("expiry_time", &self.expiry_time)
            .field("path", &self.path)
            .field("permissions", &self.permissions)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// What a shared token (reference §6.3) gives access to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SharedInfo {
    /// The manifest whose files it lets a recipient download.
    pub manifest_id: String,
    /// Downloads started with it.
    pub download_count: u64,
    /// At most this many (`None`: unlimited).
    pub download_limit: Option<u64>,
}

impl TokenRec {
    /// The API view: an API token's structure, or a shared token's.
    pub fn view(&self) -> Value {
        match self.to_shared_api() {
            Some(shared) => to_json(&shared),
            None => to_json(&self.to_api()),
        }
    }

    fn api_permissions(&self) -> Vec<jetstream_api::Permission> {
        // Only known names are ever stored (`createAPIToken` checks them).
        self.permissions
            .iter()
            .filter_map(|p| jetstream_api::Permission::from_name(p))
            .collect()
    }

    /// The API token structure (for a shared token, see [`Self::to_shared_api`]).
    pub fn to_api(&self) -> api::ApiToken {
        api::ApiToken {
            token: api::Token::new(self.token.clone()),
            description: self.description.clone(),
            creation_time: api_time(self.creation_time),
            expiry_time: self.expiry_time.map(api_time),
            password_required: self.password_hash.is_some(),
            path: self.path.clone(),
            permissions: self.api_permissions(),
            user_data: api_user_data(&self.user_data),
            owner: self.owner.to_api(),
        }
    }

    /// The shared token structure; `None` for an API token.
    pub fn to_shared_api(&self) -> Option<api::SharedToken> {
        let sh = self.shared.as_ref()?;
        Some(api::SharedToken {
            token: api::Token::new(self.token.clone()),
            description: self.description.clone(),
            creation_time: api_time(self.creation_time),
            expiry_time: self.expiry_time.map(api_time),
            password_required: self.password_hash.is_some(),
            permissions: self.api_permissions(),
            manifest_id: sh.manifest_id.clone(),
            download_count: sh.download_count,
            download_limit: sh.download_limit,
            user_data: api_user_data(&self.user_data),
            owner: self.owner.to_api(),
        })
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Micros) -> bool {
        self.expiry_time.is_some_and(|t| t <= now)
    }
}

/// Everything persisted, in one document.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    /// Destinations (when persisted).
    #[serde(default)]
    pub destinations: Vec<DestinationRec>,
    /// Transfers (when persisted).
    #[serde(default)]
    pub transfers: Vec<TransferRec>,
    /// Manifests referenced by persisted transfers.
    #[serde(default)]
    pub manifests: Vec<ManifestRec>,
    /// API tokens.
    #[serde(default)]
    pub tokens: Vec<TokenRec>,
    /// Garbage-collection settings (`updateGarbageCollectSettings`).
    #[serde(default)]
    pub gc: Option<super::gc::GcSettings>,
    /// Bandwidth limits (`updateBandwidthLimits`).
    #[serde(default)]
    pub bandwidth: Option<super::bandwidth::Limits>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 15, item 13): `Credentials`, `Owner` and `TokenRec` derived `Debug`,
    /// so any `{:?}` of a destination or token printed passwords and whole tokens.
    #[test]
    fn regression_debug_never_prints_secrets() {
        let token = "0123456789abcdef0123456789abcdef";
        let creds = [
            Credentials::Password {
                user: "alice".into(),
                password: "hunter2-password".into(),
            },
            Credentials::Token {
                token: token.into(),
                password: Some("token-passphrase".into()),
            },
        ];
        for c in &creds {
            let shown = format!("{c:?} {c:#?}");
            assert!(!shown.contains("hunter2-password"), "{shown}");
            assert!(!shown.contains("token-passphrase"), "{shown}");
            assert!(!shown.contains(token), "{shown}");
        }
        assert!(format!("{:?}", creds[0]).contains("alice"));
        let owner = Owner {
            user: "alice".into(),
            token: Some(token.into()),
            token_session: None,
        };
        let rec = TokenRec {
            token: token.into(),
            owner,
            password_hash: Some("pbkdf2-sha256$600000$s$abcdef".into()),
            salt: "s".into(),
            description: "d".into(),
            creation_time: 0,
            expiry_time: None,
            path: None,
            permissions: vec![],
            user_data: BTreeMap::new(),
            shared: None,
        };
        let shown = format!("{rec:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains("abcdef\""), "{shown}");
        assert!(shown.contains("012345…"), "{shown}");
    }
}
