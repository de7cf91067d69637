//! jetstream-api's result types against live servers: every structure a command returns,
//! fetched with the raw JSON client, decodes into its type and encodes back to the very same
//! JSON value (nothing lost, renamed or retyped).

use std::fmt::Debug;
use std::fs;
use std::time::{Duration, Instant};

use jetstream_api::types::*;
use jetstream_api::Permission;
use jetstream_client::client::ApiClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::util::*;

const T: Duration = Duration::from_secs(60);

/// `value` as `T`, checked to encode back to itself.
fn typed<R: Serialize + DeserializeOwned + Debug>(what: &str, value: &Value) -> R {
    let typed: R = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: does not decode: {e}\n{value:#}"));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &again, value,
        "{what}: the round trip changed it\nserver: {value:#}\nagain:  {again:#}"
    );
    typed
}

/// Calls `command` and checks its result against `R`.
fn call<R: Serialize + DeserializeOwned + Debug>(
    c: &mut ApiClient,
    command: &str,
    params: Value,
) -> R {
    let v = c
        .call(command, params)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    typed(command, &v)
}

/// The outcome of an async request, checked against `R`.
fn call_async<R: Serialize + DeserializeOwned + Debug>(
    c: &mut ApiClient,
    command: &str,
    params: Value,
) -> R {
    let id: RequestId = call(c, command, params);
    let status: RequestStatus = call(c, "getRequestStatus", json!({"requestId": id.request_id}));
    assert_eq!(status.request_id, id.request_id);
    let v = c
        .call("getRequestResult", json!({"requestId": id.request_id}))
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    typed(command, &v)
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn every_result_round_trips_through_its_type() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let storage = root.join("storage");
    fs::create_dir(&storage).unwrap();
    std::os::unix::fs::chown(&storage, Some(u.uid()), Some(u.gid())).unwrap();
    let a = Srv::start(root, "a", &["--superuser", u.name()]);
    let b = Srv::start(root, "b", &["--sandbox-dir", storage.to_str().unwrap()]);
    write(&root.join("src/one.bin"), &data(100_000, 1));
    write(&root.join("src/sub/two.bin"), &data(3, 2));

    // getServerInfo before and after login.
    let anonymous: ServerInfo = call(&mut a.client(), "getServerInfo", json!({}));
    assert!(!anonymous.user.authed && anonymous.configuration.is_none());
    let mut c = a.client();
    let _: LoginResult = call(
        &mut c,
        "auth",
        json!({"userName": u.name(), "password": pw}),
    );
    let info: ServerInfo = call(&mut c, "getServerInfo", json!({}));
    assert_eq!(info.user.user_name.as_deref(), Some(u.name()));
    assert_eq!(info.user.permissions, Permission::ALL);
    assert_eq!(info.receiver.receiver_port, Some(a.udp));

    // A destination, a manifest, a transfer to the second server.
    let d: Destination = call(
        &mut c,
        "send.createDestination",
        json!({"destinationAddress": "127.0.0.1", "destinationApiPort": b.api,
               "userName": u.name(), "password": pw, "sendRateMax": 500_000}),
    );
    assert_eq!(d.local_send_port, None);
    assert_eq!(d.auth_method, AuthMethod::Password);
    let m: Manifest = call(
        &mut c,
        "send.createManifest",
        json!({"fileMappings": {root.join("src").to_str().unwrap(): "/in"}}),
    );
    let deadline = Instant::now() + T;
    while call::<Manifest>(
        &mut c,
        "send.getManifest",
        json!({"manifestId": m.manifest_id}),
    )
    .status
        != ManifestStatus::Complete
    {
        assert!(Instant::now() < deadline, "manifest not complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    let files: ManifestFiles = call(
        &mut c,
        "send.getManifestFiles",
        json!({"manifestId": m.manifest_id}),
    );
    assert_eq!(files.file_mappings.len(), 2);
    let _: Vec<Manifest> = call(&mut c, "send.getManifests", json!({}));
    let t: Transfer = call(
        &mut c,
        "send.createTransfer",
        json!({"destinationId": d.destination_id, "manifestId": m.manifest_id,
               "destinationPath": "/out"}),
    );
    assert_eq!(t.status, TransferStatus::Pending);
    let done = wait_end(&mut c, &t.transfer_id, T);
    let done: Transfer = typed("send.getTransfer", &done);
    assert_eq!(done.status, TransferStatus::Complete, "{done:?}");
    let _: Vec<Transfer> = call(&mut c, "send.getTransfers", json!({}));
    let d: Destination = call(
        &mut c,
        "send.getDestination",
        json!({"destinationId": d.destination_id}),
    );
    assert!(matches!(d.local_send_port, Some(Some(_))), "{d:?}");
    assert!(d.destination_ip.is_some());
    let _: Vec<Destination> = call(&mut c, "send.getDestinations", json!({}));
    let _: SendRate = call(
        &mut c,
        "send.setSendRate",
        json!({"destinationId": d.destination_id, "sendRateMax": 0}),
    );

    // The receiving side, as the same user on the second server.
    let mut cb = b.login(u.name(), &pw);
    let received: Vec<ReceiveTransfer> = call(&mut cb, "recv.getTransfers", json!({}));
    let r = received
        .iter()
        .find(|r| r.transfer_id == t.transfer_id)
        .expect("the receive record");
    assert_eq!(r.status, ReceiveStatus::Complete);
    let _: ReceiveRate = call(
        &mut cb,
        "recv.transferRate",
        json!({"transferId": t.transfer_id}),
    );
    let sources: Vec<Source> = call(&mut cb, "recv.getSources", json!({}));
    assert_eq!(sources.len(), 1);

    // Tokens.
    let token: ApiToken = call(
        &mut c,
        "createAPIToken",
        json!({"description": "typed", "password": "p", "path": "/sub",
               "permissions": ["upload", "share"], "expirySeconds": 3600}),
    );
    assert_eq!(token.permissions, [Permission::Upload, Permission::Share]);
    assert!(token.password_required && token.expiry_time.is_some());
    let _: ApiToken = call(
        &mut c,
        "getAPIToken",
        json!({"token": token.token.as_str()}),
    );
    let _: Vec<ApiToken> = call(&mut c, "getAPITokens", json!({}));
    let shared: SharedToken = call(
        &mut c,
        "send.createSharedToken",
        json!({"manifestId": m.manifest_id, "downloadLimit": 2}),
    );
    let _: SharedToken = call(
        &mut c,
        "send.getSharedToken",
        json!({"token": shared.token.as_str()}),
    );
    let _: Vec<SharedToken> = call(&mut c, "send.getSharedTokens", json!({}));

    // A token login's view of the server.
    let mut ct = a.client();
    let _: LoginResult = call(
        &mut ct,
        "authToken",
        json!({"token": token.token.as_str(), "password": "p"}),
    );
    let info: ServerInfo = call(&mut ct, "getServerInfo", json!({}));
    assert_eq!(info.user.token.as_ref(), Some(&token.token));
    assert_eq!(info.user.sandboxed, Some(true));

    // Server commands, the superuser's view and settings.
    let echo: EchoResult = call(&mut c, "echo", json!({"text": "hi"}));
    assert_eq!(echo.text, "hi");
    let _: EchoResult = call_async(&mut c, "echoAsync", json!({}));
    c.call("superuser", json!({})).unwrap();
    let info: ServerInfo = call(&mut c, "getServerInfo", json!({}));
    assert!(info.configuration.is_some() && info.user.superuser);
    let b_key = call::<ServerInfo>(&mut b.client(), "getServerInfo", json!({})).public_key;
    let added: AuthorizedClients = call(
        &mut c,
        "recv.addAuthorizedClient",
        json!({"clientPublicKey": b_key}),
    );
    assert_eq!(added.client_public_key.as_deref(), Some(b_key.as_str()));
    let switched: AuthorizedClients = call(
        &mut c,
        "recv.allowOnlyAuthorizedClients",
        json!({"onlyAuthorizedClientsAllowed": false}),
    );
    assert_eq!(switched.client_public_key, None);
    let _: AuthorizedClients = call(
        &mut c,
        "recv.removeAuthorizedClient",
        json!({"clientPublicKey": b_key}),
    );
    let _: BandwidthLimits = call(
        &mut c,
        "updateBandwidthLimits",
        json!({"incomingLimitActive": true, "incomingRateLimit": 1_000_000}),
    );
    let _: GcSettings = call(
        &mut c,
        "updateGarbageCollectSettings",
        json!({"intervalSeconds": 3600}),
    );
    let _: GcCounts = call(&mut c, "garbageCollect", json!({}));
    let log: EventLog = call(&mut c, "getEventLog", json!({}));
    let updates: Vec<Transfer> = log
        .iter()
        .filter(|e| e.event == "transferUpdated")
        .map(|e| e.structure().unwrap())
        .collect();
    assert!(updates.iter().any(|u| u.transfer_id == t.transfer_id));

    // Discovery, both ways.
    let sent: SendDiscoverResult = call_async(
        &mut c,
        "sendDiscoverPacketAsync",
        json!({"address": "127.0.0.1", "port": b.udp}),
    );
    assert!(sent.echoed, "{sent:?}");
    let _: RecvDiscoverResult =
        call_async(&mut c, "recvDiscoverPacketAsync", json!({"timeoutMs": 50}));
}
