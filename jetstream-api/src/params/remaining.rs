//! The parameters of issue 18's remaining commands: connections, user data, waiting for a
//! manifest, licenses.

use serde::{Deserialize, Serialize};

use super::{flex, Secret};

/// `send.getConnection`: which connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConnection {
    /// The connection's id: `host:port`, the receiver's address as its destinations give it
    /// and its UDP data port (a destination's `connectionId`).
    pub connection_id: String,
}

/// `send.getConnections`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetConnections {}

/// What kind of object `send.updateObjectUserData` and `send.deleteObjectUserData` change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectType {
    /// A destination (`objectId` is its `destinationId`).
    Destination,
    /// A manifest (`manifestId`).
    Manifest,
    /// A transfer (`transferId`).
    Transfer,
    /// A download link (`objectId` is the shared token).
    SharedToken,
    /// An API token (`objectId` is the token).
    #[serde(rename = "apiToken", alias = "APIToken")]
    ApiToken,
}

impl ObjectType {
    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Destination => "destination",
            Self::Manifest => "manifest",
            Self::Transfer => "transfer",
            Self::SharedToken => "sharedToken",
            Self::ApiToken => "apiToken",
        }
    }
}

/// `send.updateObjectUserData`: which object, and the keys to set (others are kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateObjectUserData {
    /// `destination`, `manifest`, `transfer`, `sharedToken` or `apiToken`.
    pub object_type: ObjectType,
    /// The object's id (for a token, the token).
    #[serde(deserialize_with = "flex::id")]
    pub object_id: String,
    /// Keys and their new values (any JSON); the object's other keys are kept (absent: nothing
    /// changes). At most 64 KiB of JSON per object, with what it holds already.
    #[serde(default)]
    pub user_data: serde_json::Map<String, serde_json::Value>,
}

/// `send.deleteObjectUserData`: which object, and which keys to remove.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteObjectUserData {
    /// `destination`, `manifest`, `transfer`, `sharedToken` or `apiToken`.
    pub object_type: ObjectType,
    /// The object's id (for a token, the token).
    #[serde(deserialize_with = "flex::id")]
    pub object_id: String,
    /// The keys to remove (a key it does not have is ignored); absent: all of them.
    #[serde(
        default,
        deserialize_with = "flex::opt_names",
        skip_serializing_if = "Option::is_none"
    )]
    pub keys: Option<Vec<String>>,
}

/// `send.waitForManifest`: which manifest, and how long to wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitForManifest {
    /// The manifest's id.
    #[serde(deserialize_with = "flex::id")]
    pub manifest_id: String,
    /// How long to wait for it to be `complete` or `error`, in milliseconds (default 60000,
    /// at most 600000); when it runs out the manifest is answered as it is (`pending`).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
}

/// `send.waitForTransfer`: which transfer, and how long to wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitForTransfer {
    /// The transfer's id.
    #[serde(deserialize_with = "flex::id")]
    pub transfer_id: String,
    /// How long to wait for it to end, in milliseconds (default 60000, at most 600000); when
    /// it runs out the transfer is answered as it is (`processing` still true).
    #[serde(
        default,
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
}

/// `getThirdPartyLicenses`: no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetThirdPartyLicenses {}

/// `setLicenseKey`: a license key (this server needs none: see the command).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetLicenseKey {
    /// The key. Never stored, logged or answered.
    pub key: Secret,
}
