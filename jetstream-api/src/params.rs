//! Every command's parameters: one struct per command, camelCase on the wire, unknown
//! parameters refused.
//!
//! PLACEHOLDER (skeleton): each struct takes any object; the real fields replace them.

use serde::{Deserialize, Serialize};

macro_rules! placeholder {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("The parameters of `", stringify!($name), "` (placeholder).")]
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        pub struct $name {
            /// Every parameter as given.
            #[serde(flatten)]
            pub raw: serde_json::Map<String, serde_json::Value>,
        }
    )*};
}

placeholder!(
    GetServerInfo,
    Auth,
    AuthToken,
    Echo,
    SuperuserParams,
    Sleep,
    Terminate,
    GetRequestStatus,
    GetRequestResult,
    GetEventLog,
    GarbageCollect,
    UpdateGarbageCollectSettings,
    UpdateBandwidthLimits,
    CreateApiToken,
    GetApiToken,
    GetApiTokens,
    DeleteApiToken,
    CreateDestination,
    GetDestination,
    GetDestinations,
    DeleteDestination,
    CreateManifest,
    GetManifest,
    GetManifests,
    GetManifestFiles,
    DeleteManifest,
    CreateTransfer,
    GetTransfer,
    GetTransfers,
    SuspendTransfer,
    ResumeTransfer,
    CancelTransfer,
    FailTransfer,
    DeleteTransfer,
    SetSendRate,
    StartDownload,
    CreateSharedToken,
    GetSharedToken,
    GetSharedTokens,
    DeleteSharedToken,
    StartReceive,
    TransferRate,
    GetReceiveTransfers,
    GetSources,
    AddAuthorizedClient,
    RemoveAuthorizedClient,
    AllowOnlyAuthorizedClients,
    SendDiscoverPacket,
    RecvDiscoverPacket,
);
