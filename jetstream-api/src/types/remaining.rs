//! The results of issue 18's remaining commands: connections, user data, licenses.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{ConnectionState, RatePolicy, Timestamp};

/// A connection (reference §4.4): this server's association, as a sender, with one receiving
/// server, shared by every destination that names the same receiver (the same
/// `destinationAddress` and UDP data port). `send.getConnection`, `send.getConnections`.
///
/// It is built from the destinations the caller may see: a user sees what their own
/// destinations to that receiver say, a superuser all of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Its id: `host:port` (the destinations' `connectionId`).
    pub connection_id: String,
    /// The receiver's host name or IP, as the destinations give it.
    pub destination_address: String,
    /// The destinations that share it (those the caller may see).
    pub destination_ids: Vec<String>,
    /// The receiver's IP last resolved (`null` until the first contact).
    #[serde(rename = "destinationIP")]
    pub destination_ip: Option<IpAddr>,
    /// The receiver's UDP data port.
    pub destination_port: u16,
    /// The receiver's public key, pinned at first contact or given (`null` until then).
    pub destination_public_key: Option<String>,
    /// The most advanced state of its destinations' data connections.
    pub encrypted_connection_state: ConnectionState,
    /// Whether data to it is encrypted (always true).
    pub encryption_enabled: bool,
    /// The receiver's `serverId` at the last contact (`null` until then).
    pub last_destination_server_id: Option<String>,
    /// The receiver's `serverUid` at the last contact (`null` until then).
    pub last_destination_server_uid: Option<String>,
    /// The last error of the destination in contact most recently, a short code (`null`:
    /// none).
    pub last_error: Option<String>,
    /// That error's message (`null`: none).
    pub last_error_message: Option<String>,
    /// When data last came back from it (`null`: never).
    pub last_recv_time: Option<Timestamp>,
    /// When data last went to it (`null`: never).
    pub last_send_time: Option<Timestamp>,
    /// Transfers to it queued or running, over its destinations.
    pub num_transfers_queued: u64,
    /// Whether a transfer to it is running now with a rate that follows the path (policy
    /// `fair` or `background`, or `fixed` without a `sendRateMax`).
    pub rate_controller_active: bool,
    /// The rate policy of the destination used most recently.
    pub rate_control_method: RatePolicy,
    /// The relay data goes through (`null`: none; this server sends directly).
    #[serde(rename = "relayIP")]
    pub relay_ip: Option<IpAddr>,
    /// The relay's port (`null`: none).
    pub relay_port: Option<u16>,
}

/// `send.updateObjectUserData` and `send.deleteObjectUserData`: the object's user data after
/// the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectUserData {
    /// What kind of object (`destination`, `manifest`, `transfer`, `sharedToken`,
    /// `apiToken`).
    pub object_type: String,
    /// The object's id. For a token, only its first characters and `…` (the token itself
    /// is never answered here).
    pub object_id: String,
    /// All its user data now.
    pub user_data: serde_json::Value,
}

/// One third-party crate linked into the server binary (`getThirdPartyLicenses`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThirdPartyLicense {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its license, an SPDX expression as the crate declares it (`null`: it declares only a
    /// license file).
    pub license: Option<String>,
    /// Its source repository, as the crate declares it (`null`: none).
    pub repository: Option<String>,
    /// The license files the crate ships (LICENSE*, COPYING*, NOTICE*, ...).
    pub license_texts: Vec<LicenseText>,
}

/// A license file of a crate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseText {
    /// Its file name in the crate.
    pub file_name: String,
    /// Its text.
    pub text: String,
}

/// `getThirdPartyLicenses`: the server's own license and the third-party crates it links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThirdPartyLicenses {
    /// This server's own license (`MIT OR Apache-2.0`).
    pub license: String,
    /// The crates, by name and version, as the build found them in `Cargo.lock`.
    pub crates: Vec<ThirdPartyLicense>,
}
