//! What commands return: the reference's structures (§4), typed.
//!
//! PLACEHOLDER (skeleton): the aliases to `Value` are replaced by structs.

use serde::{Deserialize, Serialize};

/// The answer to an `*Async` command: the id to ask `getRequestStatus` / `getRequestResult`
/// about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestId {
    /// The request's id (below 2^53, so that every JSON implementation reads it exactly).
    pub request_id: u64,
}

macro_rules! placeholder {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), "` (placeholder).")]
        pub type $name = serde_json::Value;
    )*};
}

placeholder!(
    ServerInfo,
    LoginResult,
    EchoResult,
    RequestStatus,
    EventLog,
    GcCounts,
    GcSettings,
    BandwidthLimits,
    ApiToken,
    Destination,
    Manifest,
    ManifestFiles,
    Transfer,
    SendRate,
    DownloadStart,
    SharedToken,
    ReceiveStart,
    ReceiveRate,
    ReceiveTransfer,
    Source,
    AuthorizedClients,
    DiscoverResult,
);
