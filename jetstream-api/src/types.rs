//! What commands return: the reference's structures (§4), typed, exactly as the server sends
//! them.
//!
//! Every structure here serializes to the JSON the server produces and deserializes from it
//! with nothing lost or renamed (the server builds its answers from these types, and a test
//! checks the round trip against a running server). The rules they follow:
//!
//! - Names are camelCase on the wire (`serde(rename_all = "camelCase")`), with the few the
//!   reference spells otherwise named one by one (`APITokensAvailable`, `destinationIP`,
//!   `sourceIP`, `_event`).
//! - A field the server sends as `null` when it has no value is an `Option` that serializes
//!   `None` as `null`; a field the server leaves out in some answers is an `Option` that is
//!   left out when `None` (each says which).
//! - Times are [`Timestamp`]s: microseconds since the Unix epoch, UTC.
//! - Unknown fields are ignored when decoding: a newer server may add fields, and an older
//!   client still reads its answers.
//! - Status and other names from a fixed set are enums with one variant per name this version
//!   knows, plus `Other(String)` holding a name a newer server sends that this version does
//!   not know, as sent (so that it can be shown, and re-serializes unchanged). A decoded value
//!   is never `Other` of a known name. The enums are `#[non_exhaustive]`: a later version may
//!   add variants.
//! - `userData` is arbitrary JSON ([`serde_json::Value`], an object today).
//! - API and shared token strings are [`Token`]s, whose `Debug` shows only their first
//!   characters.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Permission;
pub use jetstream_core::FailureReason;

/// The answer to an `*Async` command: the id to ask `getRequestStatus` / `getRequestResult`
/// about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestId {
    /// The request's id (below 2^53, so that every JSON implementation reads it exactly).
    pub request_id: u64,
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/// A point in time as the API gives it: microseconds since the Unix epoch, UTC (reference
/// §4.12). A JSON integer on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The time `micros` µs after the Unix epoch (before it when negative).
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// `t` to the microsecond (saturating far outside ±292,000 years).
    pub fn from_system_time(t: SystemTime) -> Self {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(micros(after)),
            Err(e) => Self(micros(e.duration()).saturating_neg()),
        }
    }

    /// As a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let d = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }
}

/// An API token or shared token (32 hex characters): the secret that logs in as its owner.
/// A JSON string on the wire. `Debug` shows only its first 6 characters, so that logging a
/// structure never leaks one; [`Token::as_str`] gives the whole.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// The token `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The whole token.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The whole token, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self
            .0
            .char_indices()
            .nth(6)
            .map_or(self.0.len(), |(i, _)| i);
        write!(f, "\"{}…\"", &self.0[..end])
    }
}

impl From<String> for Token {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Token {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// Who owns an object (destination, manifest, transfer, token, receive): the `owner`,
/// `ownerToken` and `ownerTokenSession` fields of its structure (reference §4.2-§4.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `owner`: the system user.
    #[serde(rename = "owner")]
    pub user: String,
    /// `ownerToken`: the API token it was made through (`null` for a password login).
    #[serde(rename = "ownerToken")]
    pub token: Option<Token>,
    /// `ownerTokenSession`: the token login session it was made in (`null` for a password
    /// login).
    #[serde(rename = "ownerTokenSession")]
    pub token_session: Option<String>,
}

/// Declares a name from a fixed set: one variant per known name, `Other` for the rest.
macro_rules! wire_enum {
    (
        $(#[doc = $doc:literal])*
        $name:ident {
            $($(#[doc = $vdoc:literal])* $variant:ident = $wire:literal,)*
        }
    ) => {
        $(#[doc = $doc])*
        ///
        /// A JSON string on the wire; a name this version does not know decodes to `Other`.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant,)*
            /// A name this version does not know (from a newer server), as sent.
            Other(String),
        }

        impl $name {
            /// The name on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(s) => s,
                }
            }

            /// The value named `name` (`Other` when this version does not know it).
            pub fn from_wire(name: &str) -> Self {
                match name {
                    $($wire => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok(Self::from_wire(&name))
            }
        }
    };
}

wire_enum! {
    /// A sending transfer's status (reference §4.5).
    TransferStatus {
        /// Queued, waiting for its turn or for the destination.
        Pending = "pending",
        /// Moving data.
        Sending = "sending",
        /// Stopped by the user; `resumeTransfer` continues it.
        Suspended = "suspended",
        /// Done, and verified at the receiver.
        Complete = "complete",
        /// Cancelled by the user.
        Cancelled = "cancelled",
        /// Failed: `errorMessage` says why.
        Error = "error",
    }
}

impl TransferStatus {
    /// Whether the transfer has ended for good (`complete`, `cancelled`, `error`); a
    /// suspended, cancelled or failed transfer can still be resumed.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Complete | Self::Cancelled | Self::Error)
    }
}

wire_enum! {
    /// A manifest's status (reference §4.3): `pending` while its files are scanned, then
    /// `complete` (usable by `createTransfer`) or `error`.
    ManifestStatus {
        /// Its files are being scanned (`processing: true`).
        Pending = "pending",
        /// Scanned: it can be sent or shared.
        Complete = "complete",
        /// Scanning failed: `errorMessage` says why.
        Error = "error",
    }
}

wire_enum! {
    /// A received transfer's status (reference §4.6).
    ReceiveStatus {
        /// Data is arriving (or expected).
        Receiving = "receiving",
        /// Every file arrived and was verified.
        Complete = "complete",
        /// Interrupted or failed: `errorMessage` says why (the sender may resume it).
        Error = "error",
    }
}

wire_enum! {
    /// An async request's status (`getRequestStatus`).
    RequestState {
        /// Still running.
        Processing = "processing",
        /// Done: `getRequestResult` gives its result.
        Complete = "complete",
        /// Failed: `errorMessage` says why.
        Error = "error",
    }
}

wire_enum! {
    /// The state of the encrypted data connection to a destination or from a source
    /// (`encryptedConnectionState`).
    ConnectionState {
        /// No transfer is running to or from it.
        Disconnected = "disconnected",
        /// Connecting: resolving, logging in, agreeing on keys.
        Negotiating = "negotiating",
        /// A transfer is running.
        Connected = "connected",
    }
}

wire_enum! {
    /// How this server logs in to a destination's server (`authMethod`).
    AuthMethod {
        /// A system user's name and password.
        Password = "password",
        /// An API token (and its password, if it has one).
        Token = "token",
        /// No credentials were given.
        NoCredentials = "none",
    }
}

wire_enum! {
    /// How a transfer's rate is controlled (`ratePolicy`).
    RatePolicy {
        /// Shares the path fairly with other traffic, up to the rate cap (the default).
        Fair = "fair",
        /// Sends at the rate cap whatever the loss.
        Fixed = "fixed",
        /// Yields to other traffic: uses only capacity left unused.
        Background = "background",
    }
}

wire_enum! {
    /// A data cipher (`minCipher`, `recv.startTransfer`'s `cipher`).
    Cipher {
        /// ChaCha20-Poly1305.
        ChaCha20Poly1305 = "chacha20-poly1305",
        /// AES-256-GCM (the FIPS-approved one).
        Aes256Gcm = "aes-256-gcm",
    }
}

wire_enum! {
    /// The operating system a server runs on (`serverPlatform`).
    Platform {
        /// Linux.
        Linux = "linux",
        /// macOS.
        MacOs = "macOS",
        /// Windows.
        Windows = "windows",
    }
}

/// `permissions`: a list of permission names (reference §6.6). A name this version does not
/// know is left out when decoding: it would let this client do nothing it knows of, and a
/// permission under-reported is the safe side.
mod permission_names {
    use serde::de::{Deserializer, SeqAccess, Visitor};

    use crate::Permission;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Permission>, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Vec<Permission>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of permission names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    out.extend(Permission::from_name(&name));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Names)
    }
}

/// A field the server sends in some answers and leaves out of others, and sends as `null`
/// when it has no value: `None` absent, `Some(None)` null, `Some(Some(v))` a value.
mod present_or_null {
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        // Called only when the field is present (absent is the field's default, `None`).
        Option::<T>::deserialize(d).map(Some)
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// `getServerInfo` (reference §4.1): the server's version, configuration, features and
/// state, and who the session is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// Whether the API answers on other addresses than loopback (`--api-allow-remote-control`).
    pub allow_remote_control: bool,
    /// The API's TCP port.
    pub api_control_port: u16,
    /// Whether API tokens can be made and used (not `--api-disable-api-tokens`).
    #[serde(rename = "APITokensAvailable")]
    pub api_tokens_available: bool,
    /// The API's version: clients refuse a version they do not know.
    pub api_version: u32,
    /// Whether commands other than the open ones need a login (always true).
    pub auth_required: bool,
    /// The server-wide bandwidth limits.
    pub bandwidth_limits: BandwidthLimits,
    /// Days until the API's TLS certificate expires (negative once it has).
    pub certificate_validation: i64,
    /// The server's configuration: present for a superuser session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Configuration>,
    /// Whether data can be encrypted (always true: it always is).
    pub encryption_available: bool,
    /// Whether the event log is kept (`getEventLog`).
    pub event_log_available: bool,
    /// The machine's host name.
    pub host_name: String,
    /// The license (this server needs none: always valid).
    pub license: License,
    /// The weakest data cipher this server accepts.
    pub min_cipher: Cipher,
    /// Whether several transfers share one UDP port (always true).
    pub multiplex_available: bool,
    /// The server's public key (hex of its certificate's SPKI): what other servers pin, and
    /// what `recv.addAuthorizedClient` takes.
    pub public_key: String,
    /// The receiving side.
    pub receiver: ReceiverInfo,
    /// The server's revision within its version.
    pub revision: u32,
    /// The address others reach this server at, when configured (`--server-external-address`).
    pub server_external_address: Option<String>,
    /// This run's id (new at every start).
    pub server_id: String,
    /// The server's name (`--server-name`, else the host name).
    pub server_name: String,
    /// The operating system.
    pub server_platform: Platform,
    /// The server's clock.
    pub server_time: Timestamp,
    /// The server's id, kept in its state directory across restarts.
    pub server_uid: String,
    /// Whether shared tokens (download links) can be made and used.
    pub shared_tokens_available: bool,
    /// Who the session is.
    pub user: UserInfo,
    /// The server's version (`0.1.0`).
    pub version: String,
}

/// `getServerInfo.license`: this server needs no license key; kept for clients that read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct License {
    /// What is wrong with the license (`null`: nothing).
    pub error_message: Option<String>,
    /// When it expires (`null`: never).
    pub expiry: Option<Timestamp>,
    /// Whether it is valid (always true).
    pub valid: bool,
}

/// `getServerInfo.receiver`: the receiving side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverInfo {
    /// Whether senders must log in (always true).
    pub auth_required: bool,
    /// Whether received data is encrypted (always true).
    pub encryption_enabled: bool,
    /// Whether only authorized sending servers may start transfers.
    pub only_authorized_clients_allowed: bool,
    /// The address the data ports are bound to (`0.0.0.0`: all).
    #[serde(rename = "receiverIP")]
    pub receiver_ip: IpAddr,
    /// The first UDP data port (`null` when there is none).
    pub receiver_port: Option<u16>,
    /// Every UDP data port (`--recv-port`, repeatable).
    pub receiver_ports: Vec<u16>,
    /// The relay's address, when this server receives through one (`null`: no relay).
    #[serde(rename = "relayIP")]
    pub relay_ip: Option<IpAddr>,
    /// The relay's public data port, once the relay link is up (`null`: no relay, or down).
    pub relay_port: Option<u16>,
    /// The receive buffer of the data socket, bytes (`null` if it cannot be read).
    pub socket_recv_buffer_size: Option<u64>,
    /// The send buffer of the data socket, bytes (`null` if it cannot be read).
    pub socket_send_buffer_size: Option<u64>,
}

/// `getServerInfo.user`: who the session is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Whether the session has logged in.
    pub authed: bool,
    /// What the session may do: all four for a password login, the token's for a token
    /// login, none before login.
    #[serde(deserialize_with = "permission_names::deserialize")]
    pub permissions: Vec<Permission>,
    /// Whether the session is confined to a sandbox (`null` before login).
    pub sandboxed: Option<bool>,
    /// Whether the session has called `superuser`.
    pub superuser: bool,
    /// The token the session logged in with (`null` for a password login or none).
    pub token: Option<Token>,
    /// The token login session (`null` for a password login or none).
    pub token_session: Option<String>,
    /// The user, for a password login (`null` for a token login or none).
    pub user_name: Option<String>,
}

/// `getServerInfo.configuration` (superusers only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    /// The cloud file cache (none yet: `maximumSize` is `--max-cloud-cache-size`, or 0).
    pub cloud_file_cache: CloudFileCache,
    /// The garbage collector's settings.
    pub garbage_collect: GcSettings,
    /// The state directory.
    pub persistent_state_dir: String,
    /// Whether the trigger directory exists.
    pub triggers_available: bool,
    /// The trigger directory (`--trigger-dir`).
    pub trigger_dir: String,
}

/// `configuration.cloudFileCache`: this server caches no cloud files yet; kept for clients
/// that read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudFileCache {
    /// Bytes above which the cache is trimmed (0: no cache yet).
    pub high_watermark: u64,
    /// Largest size, bytes (`--max-cloud-cache-size`; 0 when not set).
    pub maximum_size: u64,
}

/// `configuration.garbageCollect`, and `updateGarbageCollectSettings`'s result (reference
/// §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcSettings {
    /// Seconds between collections.
    pub interval_seconds: u64,
    /// How long an ended object is kept, seconds.
    pub time_limit_seconds: u64,
}

/// `bandwidthLimits` of `getServerInfo`, and `updateBandwidthLimits`'s result (reference
/// §7.6). Rates in kbit/s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthLimits {
    /// Lend unused incoming capacity to outgoing traffic.
    pub borrow_incoming: bool,
    /// Lend unused outgoing capacity to incoming traffic.
    pub borrow_outgoing: bool,
    /// Whether the incoming cap applies.
    pub incoming_limit_active: bool,
    /// At most this many transfers received at once (0: no limit).
    pub incoming_max_connections: u64,
    /// Incoming cap, kbit/s.
    pub incoming_rate_limit: u64,
    /// Whether the outgoing cap applies.
    pub outgoing_limit_active: bool,
    /// Outgoing cap, kbit/s.
    pub outgoing_rate_limit: u64,
}

/// `auth` and `authToken`'s result: nothing (`null`); the session is logged in. Decoding
/// accepts any value, so that a newer server may say more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginResult;

impl Serialize for LoginResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for LoginResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Self)
    }
}

/// `echo`'s result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EchoResult {
    /// The `text` parameter as given (`null` when none was).
    pub text: serde_json::Value,
}

/// `getRequestStatus`'s result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStatus {
    /// The request.
    pub request_id: u64,
    /// Whether it is still running.
    pub processing: bool,
    /// Where it is.
    pub status: RequestState,
    /// Why it failed (`null` unless it did).
    pub error_message: Option<String>,
}

/// `getEventLog`'s result: entries oldest first.
pub type EventLog = Vec<EventEntry>;

/// One event-log entry (reference §4.10): the event's name and time, and the fields of the
/// structure it is about (a [`Transfer`] for `transferUpdated`, a [`Destination`] for
/// `destinationCreated`, ...; tokens shown by their first characters only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEntry {
    /// `_event`: what happened (`serverStarted`, `transferUpdated`, `destinationCreated`, ...).
    #[serde(rename = "_event")]
    pub event: String,
    /// `_timestamp`: when.
    #[serde(rename = "_timestamp")]
    pub timestamp: Timestamp,
    /// Every other field: the structure the event is about.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl EventEntry {
    /// The structure the event is about, as `T` (e.g. [`Transfer`] for `transferUpdated`).
    ///
    /// # Errors
    /// The fields do not make a `T`.
    pub fn structure<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(self.fields.clone()))
    }
}

/// `garbageCollect`'s result: how many objects one collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcCounts {
    /// Sending transfers.
    pub transfers: u64,
    /// Manifests.
    pub manifests: u64,
    /// API and shared tokens.
    pub tokens: u64,
    /// Receive records.
    pub receives: u64,
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// An API token (reference §4.8, §6.3): `createAPIToken`, `getAPIToken`, `getAPITokens`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    /// The token (log in with `authToken`).
    pub token: Token,
    /// Free text.
    pub description: String,
    /// When it was made.
    pub creation_time: Timestamp,
    /// When it stops working (`null`: never).
    pub expiry_time: Option<Timestamp>,
    /// Whether logging in with it needs its password.
    pub password_required: bool,
    /// The directory below the owner's sandbox it is confined to (`null`: the whole sandbox).
    pub path: Option<String>,
    /// What it may do.
    #[serde(deserialize_with = "permission_names::deserialize")]
    pub permissions: Vec<Permission>,
    /// User data.
    pub user_data: serde_json::Value,
    /// Its owner (whose rights it has).
    #[serde(flatten)]
    pub owner: Owner,
}

/// A shared token, a download link (reference §4.8, §6.3): `send.createSharedToken`,
/// `send.getSharedToken`, `send.getSharedTokens`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedToken {
    /// The token (a recipient logs in with `authToken`).
    pub token: Token,
    /// Free text.
    pub description: String,
    /// When it was made.
    pub creation_time: Timestamp,
    /// When it stops working (`null`: never).
    pub expiry_time: Option<Timestamp>,
    /// Whether logging in with it needs its password.
    pub password_required: bool,
    /// What it may do (`download`).
    #[serde(deserialize_with = "permission_names::deserialize")]
    pub permissions: Vec<Permission>,
    /// The manifest it lets a recipient download.
    pub manifest_id: String,
    /// Downloads started with it.
    pub download_count: u64,
    /// At most this many downloads (`null`: unlimited).
    pub download_limit: Option<u64>,
    /// User data.
    pub user_data: serde_json::Value,
    /// Its owner.
    #[serde(flatten)]
    pub owner: Owner,
}

// ---------------------------------------------------------------------------------------------
// Sending

/// A destination: a receiving server and how to log in to it (reference §4.2).
/// `send.createDestination`, `send.getDestination`, `send.getDestinations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Its id (32 hex characters).
    pub destination_id: String,
    /// `host:port` of the receiver's data port.
    pub connection_id: String,
    /// The receiver's host name or IP, as given.
    pub destination_address: String,
    /// The receiver's API port (TCP).
    pub destination_api_port: u16,
    /// The receiver's IP last resolved (`null` until the first contact).
    #[serde(rename = "destinationIP")]
    pub destination_ip: Option<IpAddr>,
    /// The receiver's UDP data port (as given, else learned at contact, else 8886).
    pub destination_port: u16,
    /// The receiver's public key, pinned at first contact or given (`null` until then).
    pub destination_public_key: Option<String>,
    /// The key the receiver must present (the same as `destinationPublicKey`).
    pub permitted_destination_public_key: Option<String>,
    /// The data connection's state.
    pub encrypted_connection_state: ConnectionState,
    /// Whether data to it is encrypted (always true).
    pub encryption_enabled: bool,
    /// The receiver's `serverId` at the last contact (`null` until then).
    pub last_destination_server_id: Option<String>,
    /// The receiver's `serverUid` at the last contact (`null` until then).
    pub last_destination_server_uid: Option<String>,
    /// The last error, a short code (`null`: none).
    pub last_error: Option<String>,
    /// The last error's message (`null`: none).
    pub last_error_message: Option<String>,
    /// When data last came back from it (`null`: never).
    pub last_recv_time: Option<Timestamp>,
    /// When data last went to it (`null`: never).
    pub last_send_time: Option<Timestamp>,
    /// Transfers to it queued or running.
    pub num_transfers_queued: u64,
    /// Its rate cap, kbit/s (`null`: none).
    pub send_rate_max: Option<u64>,
    /// The rate policy of transfers to it.
    pub rate_policy: RatePolicy,
    /// The local UDP port transfers to it are sent from, as configured (`null`: chosen by the
    /// system).
    pub send_port: Option<u16>,
    /// The local UDP port its engine is bound to: `send.getDestination` only (absent
    /// elsewhere: `None`), `null` (`Some(None)`) until a transfer to it has run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null::deserialize"
    )]
    pub local_send_port: Option<Option<u16>>,
    /// How this server logs in to it.
    pub auth_method: AuthMethod,
    /// When it was made.
    pub creation_time: Timestamp,
    /// User data.
    pub user_data: serde_json::Value,
    /// Its owner.
    #[serde(flatten)]
    pub owner: Owner,
}

/// A manifest: files to send (reference §4.3). `send.createManifest`, `send.getManifest`,
/// `send.getManifests`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Its id (32 hex characters).
    pub manifest_id: String,
    /// Where it is.
    pub status: ManifestStatus,
    /// Whether its files are still being scanned (`status` is `pending`).
    pub processing: bool,
    /// Why it failed (`null` unless it did).
    pub error_message: Option<String>,
    /// Files and empty directories found; `null` until the manifest is complete (a pending
    /// manifest has not counted them yet, and a failed one never will).
    pub total_files: Option<u64>,
    /// Their total size, bytes; `null` until the manifest is complete.
    pub total_size: Option<u64>,
    /// When it was made.
    pub creation_time: Timestamp,
    /// User data.
    pub user_data: serde_json::Value,
    /// Its owner.
    #[serde(flatten)]
    pub owner: Owner,
}

/// `send.getManifestFiles`'s result (reference §4.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFiles {
    /// The manifest.
    pub manifest_id: String,
    /// Its files, in sending order.
    pub file_mappings: Vec<FileMapping>,
}

/// One file of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMapping {
    /// The absolute path on the sending server.
    pub src_path: String,
    /// The path under the transfer's `destinationPath` at the receiver (with a leading `/`).
    pub dest_path: String,
    /// Size, bytes.
    pub file_size: u64,
    /// Whether it is an empty directory.
    pub is_empty_dir: bool,
    /// Whether it is executable.
    pub executable: bool,
    /// Its modification time.
    pub modification_time: Timestamp,
}

/// A sending transfer (reference §4.5). `send.createTransfer`, `send.getTransfer`,
/// `send.getTransfers`, and the transfer commands' results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// Its id (32 hex characters).
    pub transfer_id: String,
    /// Where it goes (for a download, `client:<ip>:<port>`).
    pub destination_id: String,
    /// What it sends.
    pub manifest_id: String,
    /// The directory under the receiving user's sandbox the files go to.
    pub destination_path: String,
    /// Lower first.
    pub priority: i64,
    /// Where it is.
    pub status: TransferStatus,
    /// Whether it has not ended (`status` is not final).
    pub processing: bool,
    /// Why it failed, or the last interruption while retrying (`null`: none).
    pub error_message: Option<String>,
    /// The engine's reason, when the engine caused it (`null` otherwise, and on servers before
    /// error codes): match on this, never on `errorMessage`.
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
    /// When it was asked for.
    pub request_time: Timestamp,
    /// When it was queued.
    pub queue_time: Timestamp,
    /// When it first started (`null` until it does).
    pub start_time: Option<Timestamp>,
    /// When it ended (`null` until it does).
    pub end_time: Option<Timestamp>,
    /// When these figures were taken.
    pub snapshot_time: Timestamp,
    /// How often the receiver records what it holds, seconds (`null`: never).
    pub checkpoint_frequency_seconds: Option<u64>,
    /// Block size, bytes.
    pub block_size: u64,
    /// Blocks in all.
    pub total_blocks: u64,
    /// Bytes in all.
    pub total_bytes: u64,
    /// Files and empty directories in all.
    pub total_files: u64,
    /// Blocks sent, over every attempt.
    pub blocks_sent: u64,
    /// Blocks the receiver holds (this attempt; all of them once complete).
    pub blocks_acked: u64,
    /// Blocks sent again, over every attempt.
    pub blocks_retransmitted: u64,
    /// File bytes the receiver holds (this attempt; all of them once complete).
    pub bytes_acked: u64,
    /// UDP bytes sent, over every attempt.
    pub bytes_sent: u64,
    /// UDP bytes received, over every attempt.
    pub bytes_recv: u64,
    /// Datagrams sent, over every attempt.
    pub packets_sent: u64,
    /// Datagrams received, over every attempt.
    pub packets_recv: u64,
    /// Smoothed round-trip time of the running attempt, µs (0: not running).
    pub rtt_micros: u64,
    /// Sending rate of the running attempt, kbit/s (0: not running).
    pub send_rate_kbps: u64,
    /// Engine sessions started (1 + resumes).
    pub attempts: u32,
    /// Files the receiver could not write.
    pub failed_files: Vec<FailedFile>,
    /// User data.
    pub user_data: serde_json::Value,
    /// Its owner.
    #[serde(flatten)]
    pub owner: Owner,
}

/// A file of a transfer the receiver could not write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedFile {
    /// Its path in the manifest (with a leading `/`).
    pub dest_path: String,
    /// Why.
    pub error_message: String,
    /// Why, as the engine's reason (`null`: not known).
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
}

/// A failure's reason as the API carries it (`errorCode`): one of the engine's
/// [`FailureReason`]s, written as its snake_case code (`"no_space"`), or a code a newer server
/// sends that this version does not know, kept as sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A reason this version knows.
    Known(FailureReason),
    /// A code from a newer server.
    Other(String),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(r) => r.as_str(),
            Self::Other(s) => s,
        }
    }

    /// The engine's reason, if this version knows the code.
    pub fn reason(&self) -> Option<FailureReason> {
        match self {
            Self::Known(r) => Some(*r),
            Self::Other(_) => None,
        }
    }
}

impl From<FailureReason> for ErrorCode {
    fn from(r: FailureReason) -> Self {
        Self::Known(r)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().map_or(Self::Other(s), Self::Known))
    }
}

/// `send.setSendRate`'s result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRate {
    /// The cap now in force, kbit/s (`null`: none).
    pub send_rate_max: Option<u64>,
}

/// `send.startDownload`'s result: the download is a sending transfer of this server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadStart {
    /// The transfer (`send.getTransfer`).
    pub transfer_id: String,
}

// ---------------------------------------------------------------------------------------------
// Receiving

/// `recv.startTransfer`'s result: where and how the sender sends the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveStart {
    /// The transfer (the sender's id).
    pub transfer_id: String,
    /// The UDP port to send to (the relay's when the sender came through it).
    pub receiver_port: u16,
    /// The data cipher agreed.
    pub cipher: Cipher,
    /// The rate the sender may use, kbit/s (`null`: no limit).
    pub rate_limit_kbps: Option<u64>,
}

/// `recv.transferRate`'s result: what this receiver allows the transfer now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveRate {
    /// The transfer.
    pub transfer_id: String,
    /// Its share of the incoming limit, kbit/s (`null`: no limit).
    pub rate_limit_kbps: Option<u64>,
}

/// A transfer this server receives (reference §4.6): `recv.getTransfers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveTransfer {
    /// The sender's transfer id.
    pub transfer_id: String,
    /// As the sender gave it.
    pub destination_path: String,
    /// The sender's address (its data address once data arrives).
    #[serde(rename = "sourceIP")]
    pub source_ip: IpAddr,
    /// The sender's port (its data port once data arrives).
    pub source_port: u16,
    /// Where it is.
    pub status: ReceiveStatus,
    /// Bytes announced.
    pub total_size: u64,
    /// When data last arrived (`null`: not yet).
    pub last_recv_time: Option<Timestamp>,
    /// When this side last answered (`null`: not yet).
    pub last_send_time: Option<Timestamp>,
    /// When it was last interrupted or failed (`null`: never).
    pub last_error_time: Option<Timestamp>,
    /// Why (`null`: never).
    pub error_message: Option<String>,
    /// The engine's reason, when the engine caused it (`null` otherwise, and on servers before
    /// error codes): match on this, never on `errorMessage`.
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
    /// UDP bytes received.
    pub bytes_recv: u64,
    /// File bytes held.
    pub bytes_held: u64,
    /// Files finished.
    pub files_done: u64,
    /// Its share of the incoming limit, kbit/s (`null`: no limit).
    pub rate_limit_kbps: Option<u64>,
    /// The local UDP port receiving it.
    pub receiver_port: u16,
    /// The receiving user.
    #[serde(flatten)]
    pub owner: Owner,
}

/// A sending server, by address (reference §4.7): `recv.getSources`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Its address.
    #[serde(rename = "sourceIP")]
    pub source_ip: IpAddr,
    /// Its port, of the latest transfer.
    pub source_port: u16,
    /// Transfers from it receiving now.
    pub active_transfer_count: u64,
    /// Transfers from it complete.
    pub complete_transfer_count: u64,
    /// Transfers from it failed or interrupted.
    pub error_transfer_count: u64,
    /// Transfers from it not receiving (complete + error).
    pub inactive_transfer_count: u64,
    /// Average receive rate since the server started, kbit/s.
    pub ave_recv_rate: u64,
    /// Recent average receive rate, kbit/s.
    pub ave_recv_rate_window: u64,
    /// Its public key, as it presented it (`null`: unknown).
    pub destination_public_key: Option<String>,
    /// Whether a transfer from it is running.
    pub encrypted_connection_state: ConnectionState,
    /// Whether data from it is encrypted (always true).
    pub encryption_enabled: bool,
}

/// `recv.addAuthorizedClient`, `recv.removeAuthorizedClient` and
/// `recv.allowOnlyAuthorizedClients`'s result (reference §3.4, §6.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizedClients {
    /// The key added or removed, lowercase hex (absent from
    /// `allowOnlyAuthorizedClients`'s result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_public_key: Option<String>,
    /// Its short fingerprint, as logs show it (absent from `allowOnlyAuthorizedClients`'s
    /// result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The local user the key acts as, when it was authorized for one (absent: the user of
    /// the same name as the transfer's owner on the sending server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Whether only authorized sending servers may start transfers.
    pub only_authorized_clients_allowed: bool,
    /// Keys on the list.
    pub authorized_client_count: u64,
}

// ---------------------------------------------------------------------------------------------
// Discovery

/// `sendDiscoverPacketAsync`'s result: whether the probes to a server's UDP port were
/// answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendDiscoverResult {
    /// The probes' nonce (32 hex characters).
    pub nonce: String,
    /// The address probed.
    pub address: IpAddr,
    /// The UDP port probed.
    pub port: u16,
    /// Probes sent.
    pub sent: u64,
    /// Whether an answer came back.
    pub echoed: bool,
    /// How long the answer took, ms (`null`: none came).
    pub round_trip_ms: Option<u64>,
    /// The outcome in words.
    pub message: String,
}

/// `recvDiscoverPacketAsync`'s result: whether a probe arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecvDiscoverResult {
    /// Whether one did.
    pub received: bool,
    /// Its sender's address (`null`: none arrived).
    #[serde(rename = "sourceIP")]
    pub source_ip: Option<IpAddr>,
    /// Its sender's port (`null`: none arrived).
    pub source_port: Option<u16>,
    /// Its nonce, or the one waited for (`null`: none arrived and none was given).
    pub nonce: Option<String>,
    /// The outcome in words.
    pub message: String,
}

/// The result of either discovery command: [`SendDiscoverResult`] or
/// [`RecvDiscoverResult`], told apart by their fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DiscoverResult {
    /// `sendDiscoverPacketAsync`'s.
    Sent(SendDiscoverResult),
    /// `recvDiscoverPacketAsync`'s.
    Received(RecvDiscoverResult),
}

mod files;
pub use files::*;
mod sandboxes;
pub use sandboxes::*;
mod remaining;
pub use remaining::*;

#[cfg(test)]
mod tests;
