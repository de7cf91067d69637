//! Every command of the control API: the one list (reference §3).
//!
//! Each line: the variant and the client method, the wire name, who may call it ([`Access`]),
//! whether a download link may, the mode ([`crate::Mode`]), the parameters and the result. The
//! doc comment is the command's one-line summary in the documentation and `jetstream api`.

use crate::command::commands;
use crate::params::*;
use crate::types::*;
use crate::Access::{Login, Open, Password, Permission, Superuser};
use crate::Permission::{Download, Modify, Share, Upload};

commands! {
    /// The server's version, configuration, features and state.
    GetServerInfo / get_server_info = "getServerInfo", Open, link: true, Either, GetServerInfo => ServerInfo;
    /// Logs in with a system user's name and password.
    Auth / auth = "auth", Open, link: false, Either, Auth => LoginResult;
    /// Logs in with an API token or a shared token (download link).
    AuthToken / auth_token = "authToken", Open, link: false, Either, AuthToken => LoginResult;
    /// Answers with the text it was given.
    Echo / echo = "echo", Open, link: true, Either, Echo => EchoResult;
    /// Raises a password session to superuser (a member of the superuser group).
    Superuser / superuser = "superuser", Password, link: false, Either, SuperuserParams => ();
    /// Waits, then answers (at most 60 s): for testing clients.
    Sleep / sleep = "sleep", Login, link: false, Either, Sleep => ();
    /// Stops the server.
    Terminate / terminate = "terminate", Superuser, link: false, Either, Terminate => ();
    /// The status of an async request.
    GetRequestStatus / get_request_status = "getRequestStatus", Login, link: false, Either, GetRequestStatus => RequestStatus;
    /// The result of an async request, waiting for it.
    GetRequestResult / get_request_result = "getRequestResult", Login, link: false, Either, GetRequestResult => serde_json::Value;
    /// Recent server events (the caller's own, or all for a superuser).
    GetEventLog / get_event_log = "getEventLog", Login, link: false, Either, GetEventLog => EventLog;
    /// Deletes finished objects older than the garbage-collection time limit now.
    GarbageCollect / garbage_collect = "garbageCollect", Superuser, link: false, Either, GarbageCollect => GcCounts;
    /// Changes the garbage collector's interval and time limit.
    UpdateGarbageCollectSettings / update_garbage_collect_settings = "updateGarbageCollectSettings", Superuser, link: false, Either, UpdateGarbageCollectSettings => GcSettings;
    /// Changes the server-wide bandwidth limits.
    UpdateBandwidthLimits / update_bandwidth_limits = "updateBandwidthLimits", Superuser, link: false, Either, UpdateBandwidthLimits => BandwidthLimits;
    /// Makes an API token for the logged-in user.
    CreateApiToken / create_api_token = "createAPIToken", Password, link: false, Either, CreateApiToken => ApiToken;
    /// One API token.
    GetApiToken / get_api_token = "getAPIToken", Login, link: false, Either, GetApiToken => ApiToken;
    /// The caller's API tokens.
    GetApiTokens / get_api_tokens = "getAPITokens", Login, link: false, Either, GetApiTokens => Vec<ApiToken>;
    /// Deletes an API token.
    DeleteApiToken / delete_api_token = "deleteAPIToken", Permission(Modify), link: false, Either, DeleteApiToken => ();
    /// Names a receiving server (address, ports, credentials, rate limits).
    CreateDestination / create_destination = "send.createDestination", Permission(Upload), link: false, Either, CreateDestination => Destination;
    /// One destination.
    GetDestination / get_destination = "send.getDestination", Login, link: false, Either, GetDestination => Destination;
    /// The caller's destinations.
    GetDestinations / get_destinations = "send.getDestinations", Login, link: false, Either, GetDestinations => Vec<Destination>;
    /// Deletes a destination.
    DeleteDestination / delete_destination = "send.deleteDestination", Permission(Modify), link: false, Either, DeleteDestination => ();
    /// Lists files to send (scanned in the caller's sandbox).
    CreateManifest / create_manifest = "send.createManifest", Permission(Upload), link: false, Either, CreateManifest => Manifest;
    /// One manifest.
    GetManifest / get_manifest = "send.getManifest", Login, link: true, Either, GetManifest => Manifest;
    /// The caller's manifests.
    GetManifests / get_manifests = "send.getManifests", Login, link: false, Either, GetManifests => Vec<Manifest>;
    /// The files of a manifest.
    GetManifestFiles / get_manifest_files = "send.getManifestFiles", Login, link: true, Either, GetManifestFiles => ManifestFiles;
    /// Deletes a manifest.
    DeleteManifest / delete_manifest = "send.deleteManifest", Permission(Modify), link: false, Either, DeleteManifest => ();
    /// Sends a manifest to a destination.
    CreateTransfer / create_transfer = "send.createTransfer", Permission(Upload), link: false, Either, CreateTransfer => Transfer;
    /// One transfer.
    GetTransfer / get_transfer = "send.getTransfer", Login, link: false, Either, GetTransfer => Transfer;
    /// The caller's transfers, optionally of one status.
    GetTransfers / get_transfers = "send.getTransfers", Login, link: false, Either, GetTransfers => Vec<Transfer>;
    /// Pauses a transfer (it keeps what was sent).
    SuspendTransfer / suspend_transfer = "send.suspendTransfer", Permission(Upload), link: false, Either, SuspendTransfer => Transfer;
    /// Resumes a suspended, cancelled or failed transfer where it stopped.
    ResumeTransfer / resume_transfer = "send.resumeTransfer", Permission(Upload), link: false, Either, ResumeTransfer => Transfer;
    /// Cancels a transfer.
    CancelTransfer / cancel_transfer = "send.cancelTransfer", Permission(Upload), link: false, Either, CancelTransfer => Transfer;
    /// Marks a transfer failed, with a message.
    FailTransfer / fail_transfer = "send.failTransfer", Permission(Upload), link: false, Either, FailTransfer => Transfer;
    /// Deletes a finished transfer.
    DeleteTransfer / delete_transfer = "send.deleteTransfer", Permission(Modify), link: false, Either, DeleteTransfer => ();
    /// Changes a running transfer's or a destination's rate limit.
    SetSendRate / set_send_rate = "send.setSendRate", Permission(Upload), link: false, Either, SetSendRate => SendRate;
    /// Starts sending a manifest to the calling client (a pull, `jscp` from a server).
    StartDownload / start_download = "send.startDownload", Permission(Download), link: true, Either, StartDownload => DownloadStart;
    /// Makes a download link for a manifest.
    CreateSharedToken / create_shared_token = "send.createSharedToken", Permission(Share), link: false, Either, CreateSharedToken => SharedToken;
    /// One download link.
    GetSharedToken / get_shared_token = "send.getSharedToken", Login, link: true, Either, GetSharedToken => SharedToken;
    /// The caller's download links.
    GetSharedTokens / get_shared_tokens = "send.getSharedTokens", Login, link: false, Either, GetSharedTokens => Vec<SharedToken>;
    /// Deletes a download link.
    DeleteSharedToken / delete_shared_token = "send.deleteSharedToken", Permission(Share), link: false, Either, DeleteSharedToken => ();
    /// Prepares this server to receive a transfer (called by the sending server or `jscp`).
    StartReceive / start_receive = "recv.startTransfer", Permission(Upload), link: false, Either, StartReceive => ReceiveStart;
    /// A receiving transfer's rate.
    TransferRate / transfer_rate = "recv.transferRate", Login, link: false, Either, TransferRate => ReceiveRate;
    /// Inbound transfers.
    GetReceiveTransfers / get_receive_transfers = "recv.getTransfers", Login, link: false, Either, GetReceiveTransfers => Vec<ReceiveTransfer>;
    /// Senders currently connected.
    GetSources / get_sources = "recv.getSources", Login, link: false, Either, GetSources => Vec<Source>;
    /// Trusts a sending server's public key.
    AddAuthorizedClient / add_authorized_client = "recv.addAuthorizedClient", Superuser, link: false, Either, AddAuthorizedClient => AuthorizedClients;
    /// Stops trusting a sending server's public key.
    RemoveAuthorizedClient / remove_authorized_client = "recv.removeAuthorizedClient", Superuser, link: false, Either, RemoveAuthorizedClient => AuthorizedClients;
    /// Whether only trusted sending servers may connect.
    AllowOnlyAuthorizedClients / allow_only_authorized_clients = "recv.allowOnlyAuthorizedClients", Superuser, link: false, Either, AllowOnlyAuthorizedClients => AuthorizedClients;
    /// Every sandbox mapping, by user name (`""` = all users).
    GetSandboxMappings / get_sandbox_mappings = "getSandboxMappings", Superuser, link: false, Either, GetSandboxMappings => SandboxMappings;
    /// Sets one user's (or, for `""`, every user's) sandbox mapping, replacing that level's.
    SetSandboxMapping / set_sandbox_mapping = "setSandboxMapping", Superuser, link: false, Either, SetSandboxMapping => SandboxMappings;
    /// Removes one user's (or, for `""`, the all-users) sandbox mapping.
    DeleteSandboxMapping / delete_sandbox_mapping = "deleteSandboxMapping", Superuser, link: false, Either, DeleteSandboxMapping => SandboxMappings;
    /// Logs a sending server in by its authorized key (the TLS client certificate it presents).
    AuthClient / auth_client = "authClient", Open, link: false, Either, AuthClient => LoginResult;
    /// Sends UDP discovery probes to another server (reachability).
    SendDiscoverPacket / send_discover_packet = "sendDiscoverPacket", Permission(Upload), link: false, AsyncOnly, SendDiscoverPacket => DiscoverResult;
    /// Waits for another server's UDP discovery probes.
    RecvDiscoverPacket / recv_discover_packet = "recvDiscoverPacket", Permission(Upload), link: false, AsyncOnly, RecvDiscoverPacket => DiscoverResult;
    // Issue 18, item 5: the remaining commands.
    /// Per-receiver connection state (reference §4.4), from the caller's destinations.
    GetConnection / get_connection = "send.getConnection", Login, link: false, Either, GetConnection => Connection;
    /// Every receiver the caller's destinations name, as connections.
    GetConnections / get_connections = "send.getConnections", Login, link: false, Either, GetConnections => Vec<Connection>;
    /// Sets user-data keys of a destination, manifest, transfer or token (others kept).
    UpdateObjectUserData / update_object_user_data = "send.updateObjectUserData", Permission(Modify), link: false, Either, UpdateObjectUserData => ObjectUserData;
    /// Removes user-data keys (or all) of a destination, manifest, transfer or token.
    DeleteObjectUserData / delete_object_user_data = "send.deleteObjectUserData", Permission(Modify), link: false, Either, DeleteObjectUserData => ObjectUserData;
    /// Waits (at most 10 minutes) until a manifest is complete or failed, and answers it.
    WaitForManifest / wait_for_manifest = "send.waitForManifest", Login, link: false, Either, WaitForManifest => Manifest;
    /// Waits (at most 10 minutes) until a transfer has ended, and answers it.
    WaitForTransfer / wait_for_transfer = "send.waitForTransfer", Login, link: false, Either, WaitForTransfer => Transfer;
    /// The third-party crates the server links, with their licenses and license texts.
    GetThirdPartyLicenses / get_third_party_licenses = "getThirdPartyLicenses", Login, link: false, Either, GetThirdPartyLicenses => ThirdPartyLicenses;
    /// Accepted for compatibility: this free server needs no license key (nothing is stored).
    SetLicenseKey / set_license_key = "setLicenseKey", Superuser, link: false, Either, SetLicenseKey => License;
    /// The top-level folders of the caller's sandbox.
    LsRoots / ls_roots = "lsRoots", crate::Access::AnyOf(&[Upload, Download]), link: false, AsyncOnly, LsRoots => Vec<FileRoot>;
    /// The entries of a directory in the caller's sandbox.
    Ls / ls = "ls", crate::Access::AnyOf(&[Upload, Download]), link: false, AsyncOnly, Ls => Listing;
    /// Makes a directory (and its missing parents) in the caller's sandbox.
    Mkdir / mkdir = "mkdir", Permission(Modify), link: false, AsyncOnly, Mkdir => FileEntry;
    /// Moves or renames a file or directory within the caller's sandbox.
    Mv / mv = "mv", Permission(Modify), link: false, AsyncOnly, Mv => FileEntry;
    /// Removes a file, link or directory (with its contents) from the caller's sandbox.
    Rm / rm = "rm", Permission(Modify), link: false, AsyncOnly, Rm => Removed;
    /// What a directory of the caller's sandbox holds: sizes and counts, every level down.
    Du / du = "du", crate::Access::AnyOf(&[Upload, Download]), link: false, AsyncOnly, Du => DiskUsage;
}
