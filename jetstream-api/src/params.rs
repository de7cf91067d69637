//! Every command's parameters: one struct per command, camelCase on the wire, unknown
//! parameters refused.
//!
//! A struct holds exactly the parameters the server reads. Optional ones are `Option`s, left
//! out of the request when `None` (a client sends only what it sets); `null` counts as absent.
//! Some values may take more than one form, as the server has always accepted them (see
//! `params/flex.rs`): ids are strings or numbers of 32 hex digits (lowercased here), integers are
//! numbers or strings of digits, booleans may be `"true"`/`"false"`. Passwords and tokens are
//! [`Secret`]s, so that `Debug` never prints them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Permission;

mod alias;
mod files;
mod flex;
pub use files::*;
mod sandboxes;
pub use sandboxes::*;
mod trust;
pub use trust::AuthClient;
mod remaining;
#[cfg(test)]
mod tests;

pub use remaining::*;

/// A password or a token: a string that `Debug` never shows.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

/// One source → target pair of `send.createManifest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// The file or directory to send: absolute, or relative to the user's sandbox.
    #[serde(rename = "srcPath")]
    pub source: String,
    /// Where it goes, relative to the transfer's `destinationPath` at the receiver.
    #[serde(rename = "destPath")]
    pub target: String,
}

/// `getServerInfo`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetServerInfo {}

/// `auth`: a system user's name and password.
///
/// `Deserialize` is written out (in `params/alias.rs`) to accept `username` for `userName` while
/// serde's field list, which the documentation is made from, names only `userName`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// The user's name (`username` is accepted too).
    pub user_name: String,
    /// The user's password.
    pub password: Secret,
}

/// `authToken`: an API token or a shared token (download link), and its password if it has
/// one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthToken {
    /// The token.
    pub token: Secret,
    /// The token's password, when it was made with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

/// `echo`: what to echo.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Echo {
    /// Any JSON value, returned as `text` (`null` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<serde_json::Value>,
}

/// `superuser`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperuserParams {}

/// `sleep`: how long.
///
/// `Deserialize` is written out (in `params/alias.rs`) to accept `ms` for `milliseconds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sleep {
    /// Milliseconds to wait, at most 60000 (default 0; `ms` is accepted too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milliseconds: Option<u64>,
}

/// `terminate`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terminate {}

/// `getRequestStatus`: which request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetRequestStatus {
    /// The id an `*Async` command answered with.
    #[serde(deserialize_with = "flex::int")]
    pub request_id: u64,
    /// Accepted and ignored (the status is answered at once); `getRequestResult` waits this
    /// long.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
}

/// `getRequestResult`: which request, and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetRequestResult {
    /// The id an `*Async` command answered with.
    #[serde(deserialize_with = "flex::int")]
    pub request_id: u64,
    /// How long to wait for a request still running, in milliseconds (default 60000).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
}

/// `getEventLog`: which entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetEventLog {
    /// Only entries at or after this time (µs since the epoch).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<i64>,
    /// Only entries at or before this time (µs since the epoch).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<i64>,
    /// Only entries of these events (a list, or one name).
    #[serde(
        default,
        deserialize_with = "flex::opt_names",
        skip_serializing_if = "Option::is_none"
    )]
    pub events: Option<Vec<String>>,
    /// Only entries of this event (added to `events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// At most this many entries, the newest (default 1000).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u64>,
}

/// `garbageCollect`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GarbageCollect {}

/// `updateGarbageCollectSettings`: the settings to change (the others stay).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateGarbageCollectSettings {
    /// Seconds between two collections (at least 1).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval_seconds: Option<u64>,
    /// Seconds a finished object is kept.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_limit_seconds: Option<u64>,
}

/// `updateBandwidthLimits`: the settings to change (the others stay); names as in
/// `getServerInfo`'s `bandwidthLimits`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBandwidthLimits {
    /// Whether the incoming cap applies.
    #[serde(
        default,
        deserialize_with = "flex::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub incoming_limit_active: Option<bool>,
    /// The incoming cap, kbit/s.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub incoming_rate_limit: Option<u64>,
    /// Whether the outgoing cap applies.
    #[serde(
        default,
        deserialize_with = "flex::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub outgoing_limit_active: Option<bool>,
    /// The outgoing cap, kbit/s.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub outgoing_rate_limit: Option<u64>,
    /// Lend unused incoming capacity to outgoing traffic.
    #[serde(
        default,
        deserialize_with = "flex::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub borrow_incoming: Option<bool>,
    /// Lend unused outgoing capacity to incoming traffic.
    #[serde(
        default,
        deserialize_with = "flex::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub borrow_outgoing: Option<bool>,
    /// At most this many transfers received at once (0: no limit).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub incoming_max_connections: Option<u64>,
}

/// `createAPIToken`: what the token may do and for how long.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiToken {
    /// Free text shown with the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A password the token's logins must give too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// When it expires (µs since the epoch); wins over `expirySeconds`.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_time: Option<i64>,
    /// When it expires, in seconds from now.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_seconds: Option<i64>,
    /// Confines the token below this path of the owner's sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What it may do (default: all; an empty list makes a read-only token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

/// `getAPIToken`: which token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetApiToken {
    /// The token.
    pub token: Secret,
}

/// `getAPITokens`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetApiTokens {}

/// `deleteAPIToken`: which token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteApiToken {
    /// The token.
    pub token: Secret,
}

/// `send.createDestination`: the receiving server, how to log in there, and its rate.
/// Identical parameters give the existing destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDestination {
    /// Its host name or IP.
    pub destination_address: String,
    /// Its port: the UDP data port, and the TCP API port too unless `destinationApiPort` is
    /// given (the documented server listens on one number for both). Default: the data port
    /// the receiver reports, API port 8886.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_port: Option<u16>,
    /// Its TCP API port, when it differs from `destinationPort` (default: `destinationPort`,
    /// else 8886).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_api_port: Option<u16>,
    /// An API token to log in there with (instead of `userName` and `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The token's password (`password` is used when this is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_password: Option<Secret>,
    /// A user to log in there as, with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The user's password (or the token's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Its rate cap, kbit/s (0 or absent: none).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub send_rate_max: Option<u64>,
    /// `fair` (default), `fixed` or `background`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_policy: Option<String>,
    /// The local UDP port to send from (0 or absent: any).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub send_port: Option<u16>,
    /// The receiver's public key (hex), pinned from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted_destination_public_key: Option<String>,
}

/// `send.getDestination`: which destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetDestination {
    /// The destination's id.
    #[serde(deserialize_with = "flex::id")]
    pub destination_id: String,
}

/// `send.getDestinations`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetDestinations {}

/// `send.deleteDestination`: which destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteDestination {
    /// The destination's id.
    #[serde(deserialize_with = "flex::id")]
    pub destination_id: String,
}

/// `send.createManifest`: what to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateManifest {
    /// Sources and targets: `{"/src": "/dst"}`, `[["/src", "/dst"]]` or
    /// `[{"srcPath": "/src", "destPath": "/dst"}]` (sent as the last form); at least one.
    #[serde(deserialize_with = "flex::mappings")]
    pub file_mappings: Vec<Mapping>,
}

/// `send.getManifest`: which manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetManifest {
    /// The manifest's id.
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
}

/// `send.getManifests`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetManifests {}

/// `send.getManifestFiles`: which manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetManifestFiles {
    /// The manifest's id.
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
}

/// `send.deleteManifest`: which manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteManifest {
    /// The manifest's id.
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
}

/// `send.createTransfer`: which manifest to which destination, and where it lands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTransfer {
    /// The destination's id.
    #[serde(deserialize_with = "flex::id")]
    pub destination_id: String,
    /// The manifest's id (a complete manifest).
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
    /// Below the receiving user's sandbox (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_path: Option<String>,
    /// Lower runs first (default 100).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority: Option<i64>,
    /// Accepted and ignored (the reference's checkpoint interval: this server keeps the
    /// receiver's block map instead, so a resumed transfer never re-sends what arrived).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub checkpoint_frequency_seconds: Option<u64>,
}

/// `send.getTransfer`: which transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
}

/// `send.getTransfers`: which transfers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTransfers {
    /// Only those of this status (`pending`, `sending`, `suspended`, `complete`, `cancelled`,
    /// `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `send.suspendTransfer`: which transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuspendTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
}

/// `send.resumeTransfer`: which transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
}

/// `send.cancelTransfer`: which transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
}

/// `send.failTransfer`: which transfer, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
    /// The transfer's `errorMessage` (default "failed by request").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `send.deleteTransfer`: which transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
}

/// `send.setSendRate`: a running transfer's rate, or else a destination's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSendRate {
    /// The cap, kbit/s (0: none).
    #[serde(deserialize_with = "flex::int")]
    pub send_rate_max: u64,
    /// A running transfer's id (wins over `destinationId`).
    #[serde(
        default,
        deserialize_with = "flex::opt_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub transfer_id: Option<String>,
    /// A destination's id (needed without `transferId`).
    #[serde(
        default,
        deserialize_with = "flex::opt_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_id: Option<String>,
}

/// `send.startDownload`: the manifest, and the data session the calling client (`jscp`)
/// prepared to receive it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartDownload {
    /// The manifest's id (a complete manifest).
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
    /// The transfer's id, chosen by the client.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
    /// The data session's id, chosen by the client (16 hex digits on the wire).
    #[serde(with = "flex::hex_u64")]
    pub session_id: u64,
    /// The ciphers the client offers, best first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphers: Option<Vec<String>>,
    /// The one cipher the client offers (without `ciphers`; default `aes-256-gcm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The client's UDP port (its address is the API connection's).
    #[serde(deserialize_with = "flex::int")]
    pub receiver_port: u16,
    /// A rate cap, kbit/s (0 or absent: none).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub send_rate_max: Option<u64>,
    /// `fair` (default), `fixed` or `background`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_policy: Option<String>,
}

/// `send.createSharedToken`: a download link for a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSharedToken {
    /// The manifest's id (a complete manifest).
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
    /// When it expires (µs since the epoch); wins over `expirySeconds`.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_time: Option<i64>,
    /// When it expires, in seconds from now.
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_seconds: Option<i64>,
    /// At most this many downloads (at least 1; absent: no limit).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub download_limit: Option<u64>,
    /// A passphrase the recipient must give (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Free text shown with the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `send.getSharedToken`: which link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetSharedToken {
    /// The shared token.
    pub token: Secret,
}

/// `send.getSharedTokens`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSharedTokens {}

/// `send.deleteSharedToken`: which link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteSharedToken {
    /// The shared token.
    pub token: Secret,
}

/// `recv.startTransfer`: the data session a sender (another server, or `jscp` pushing)
/// prepared, and where the files go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartReceive {
    /// The transfer's id, chosen by the sender.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
    /// The data session's id, chosen by the sender (16 hex digits on the wire).
    #[serde(with = "flex::hex_u64")]
    pub session_id: u64,
    /// The ciphers the sender offers, best first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphers: Option<Vec<String>>,
    /// The one cipher the sender offers (without `ciphers`; default `aes-256-gcm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// Below the receiving user's sandbox (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_path: Option<String>,
    /// The bytes to come (shown in `recv.getTransfers`).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_size: Option<u64>,
    /// Accepted and ignored: the files to come (the receiver counts what arrives).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_files: Option<u64>,
    /// The sending server's public key (hex), shown in `recv.getTransfers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_public_key: Option<String>,
}

/// `recv.transferRate`: which receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferRate {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
}

/// `recv.getTransfers`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetReceiveTransfers {}

/// `recv.getSources`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSources {}

/// `recv.addAuthorizedClient`: the sending server's key, and optionally the local user its
/// files are written as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "trust::RawAddAuthorizedClient")]
pub struct AddAuthorizedClient {
    /// Its public key in hex (its `publicKey` in `getServerInfo`), or an object holding it as
    /// `clientPublicKey` (and optionally `userName`).
    pub client_public_key: String,
    /// The local user the sending server acts as (any user, a superuser too: the caller is a
    /// superuser and chose it). Without it, the sender acts as the user of the same name as
    /// the transfer's owner on the sending server, never root or a superuser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// `recv.removeAuthorizedClient`: the sending server's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveAuthorizedClient {
    /// Its public key in hex, or an object holding it as `clientPublicKey`.
    #[serde(deserialize_with = "flex::client_key")]
    pub client_public_key: String,
}

/// `recv.allowOnlyAuthorizedClients`: the switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowOnlyAuthorizedClients {
    /// Whether only authorized clients may start transfers.
    #[serde(deserialize_with = "flex::boolean")]
    pub only_authorized_clients_allowed: bool,
}

/// `sendDiscoverPacket` (async only): where to probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendDiscoverPacket {
    /// The other server's host name or IP.
    pub address: String,
    /// Its UDP port (default 8886).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    /// Probes to send, 1 to 100 (default 3).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub count: Option<u64>,
    /// How long to wait for the echo, at most 600000 ms (default 3000).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
}

/// `recvDiscoverPacket` (async only): which probe to wait for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecvDiscoverPacket {
    /// How long to wait, at most 600000 ms (default 10000).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
    /// Only a probe with this nonce (32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Only a probe from this IP or host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
}

impl AuthToken {
    /// A login with `token` (no password).
    pub fn new(token: impl Into<Secret>) -> Self {
        Self {
            token: token.into(),
            password: None,
        }
    }
}

impl CreateDestination {
    /// The server at `address` (host name or IP) on the default ports, no credentials, no
    /// rate limit: set the fields that differ.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            destination_address: address.into(),
            destination_port: None,
            destination_api_port: None,
            token: None,
            token_password: None,
            user_name: None,
            password: None,
            send_rate_max: None,
            rate_policy: None,
            send_port: None,
            permitted_destination_public_key: None,
        }
    }
}

impl CreateManifest {
    /// A manifest of `(source, target)` pairs.
    pub fn new<S: Into<String>, T: Into<String>>(pairs: impl IntoIterator<Item = (S, T)>) -> Self {
        Self {
            file_mappings: pairs
                .into_iter()
                .map(|(s, t)| Mapping {
                    source: s.into(),
                    target: t.into(),
                })
                .collect(),
        }
    }
}

impl CreateTransfer {
    /// Manifest `manifest_id` to destination `destination_id`, into the receiving user's
    /// sandbox root, at the default priority.
    pub fn new(destination_id: impl Into<String>, manifest_id: impl Into<String>) -> Self {
        Self {
            destination_id: destination_id.into(),
            manifest_id: manifest_id.into(),
            destination_path: None,
            priority: None,
            checkpoint_frequency_seconds: None,
        }
    }
}

impl GetManifest {
    /// Manifest `manifest_id`.
    pub fn new(manifest_id: impl Into<String>) -> Self {
        Self {
            manifest_id: manifest_id.into(),
        }
    }
}
