//! Every result type against the server's own output: the samples in `samples/` were printed
//! by `jetstream api` from a running server (a transfer to itself, logged in with its local
//! token), except `api_token.json` and `server_info_superuser.json`, written from the view
//! code (those need a password login); the server test `api_types` checks the same against a
//! live server.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// Decodes `text` as `T` and checks it encodes back to the same JSON value.
fn round_trip<T: Serialize + DeserializeOwned + fmt::Debug>(text: &str) -> T {
    let value: Value = serde_json::from_str(text).expect("sample is JSON");
    let typed: T = serde_path_to_error::deserialize(value.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", std::any::type_name::<T>()));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        again,
        value,
        "{} changed in the round trip",
        std::any::type_name::<T>()
    );
    typed
}

macro_rules! sample {
    ($name:literal) => {
        include_str!(concat!("samples/", $name, ".json"))
    };
}

#[test]
fn server_info_round_trips_for_every_kind_of_session() {
    let anonymous: ServerInfo = round_trip(sample!("server_info_anonymous"));
    assert!(!anonymous.user.authed && anonymous.user.sandboxed.is_none());
    assert!(anonymous.configuration.is_none());
    assert_eq!(anonymous.min_cipher, Cipher::ChaCha20Poly1305);
    assert_eq!(anonymous.server_platform, Platform::Linux);

    let token: ServerInfo = round_trip(sample!("server_info_token"));
    assert_eq!(token.user.permissions, Permission::ALL);
    assert_eq!(token.receiver.receiver_ports, [18991]);
    assert_eq!(token.receiver.relay_ip, None);
    assert_eq!(token.api_version, 30);

    let superuser: ServerInfo = round_trip(sample!("server_info_superuser"));
    let config = superuser
        .configuration
        .expect("configuration for a superuser");
    assert_eq!(config.garbage_collect.time_limit_seconds, 48 * 3600);
    assert_eq!(superuser.user.user_name.as_deref(), Some("alice"));
}

#[test]
fn objects_round_trip() {
    let d: Destination = round_trip(sample!("destination_created"));
    assert_eq!(d.local_send_port, None, "absent outside getDestination");
    assert_eq!(d.auth_method, AuthMethod::Token);
    assert_eq!(d.rate_policy, RatePolicy::Fair);
    assert_eq!(d.encrypted_connection_state, ConnectionState::Disconnected);
    assert!(d.owner.token.is_some());

    let d: Destination = round_trip(sample!("destination_get"));
    assert_eq!(d.local_send_port, Some(Some(38779)));
    assert_eq!(d.destination_ip, Some("127.0.0.1".parse().unwrap()));

    let m: Manifest = round_trip(sample!("manifest"));
    assert_eq!(m.status, ManifestStatus::Complete);
    let files: ManifestFiles = round_trip(sample!("manifest_files"));
    assert!(files.file_mappings[1].is_empty_dir);

    let c: Connection = round_trip(sample!("connection"));
    assert_eq!(c.destination_ids.len(), 2);
    assert_eq!(c.rate_control_method, RatePolicy::Fair);
    assert_eq!(c.relay_port, None);

    let t: Transfer = round_trip(sample!("transfer"));
    assert_eq!(t.status, TransferStatus::Complete);
    assert!(t.status.is_final() && !t.processing);
    assert!(t.end_time > t.start_time);

    let tokens: Vec<ApiToken> = round_trip(&format!("[{}]", sample!("api_token")));
    assert_eq!(
        tokens[0].permissions,
        [Permission::Upload, Permission::Modify]
    );
    assert_eq!(tokens[0].owner.token, None);
    let shared: SharedToken = round_trip(sample!("shared_token"));
    assert_eq!(
        (shared.download_limit, shared.permissions.as_slice()),
        (Some(3), &[Permission::Download][..])
    );
}

#[test]
fn receive_side_round_trips() {
    let r: Vec<ReceiveTransfer> = round_trip(sample!("receive_transfers"));
    assert_eq!(r[0].status, ReceiveStatus::Complete);
    let s: Vec<Source> = round_trip(sample!("sources"));
    assert_eq!(s[0].complete_transfer_count, 1);
    let start: ReceiveStart = round_trip(
        r#"{"transferId": "6c24093e88b33d1c23ac603dba957308", "receiverPort": 18991,
            "cipher": "aes-256-gcm", "rateLimitKbps": null}"#,
    );
    assert_eq!(start.cipher, Cipher::Aes256Gcm);
    round_trip::<ReceiveRate>(r#"{"transferId": "6c24", "rateLimitKbps": 5000}"#);
    let added: AuthorizedClients = round_trip(
        r#"{"clientPublicKey": "3059aa", "fingerprint": "SHA256:ab", 
            "onlyAuthorizedClientsAllowed": false, "authorizedClientCount": 1}"#,
    );
    assert_eq!(added.client_public_key.as_deref(), Some("3059aa"));
    let switched: AuthorizedClients =
        round_trip(r#"{"onlyAuthorizedClientsAllowed": true, "authorizedClientCount": 0}"#);
    assert_eq!(switched.fingerprint, None);
}

#[test]
fn server_commands_round_trip() {
    round_trip::<EchoResult>(sample!("echo"));
    round_trip::<EchoResult>(r#"{"text": null}"#);
    let log: EventLog = round_trip(sample!("event_log"));
    assert_eq!(log[0].event, "transferUpdated");
    let t: Transfer = log[0].structure().unwrap();
    assert_eq!(t.status, TransferStatus::Complete);
    let shared: SharedToken = log[2].structure().unwrap();
    assert_eq!(
        shared.token.as_str(),
        "dbb8b1…",
        "the log shows tokens shortened"
    );

    let s: RequestStatus = round_trip(
        r#"{"requestId": 17, "processing": false, "status": "error", "errorMessage": "no"}"#,
    );
    assert_eq!(s.status, RequestState::Error);
    round_trip::<GcCounts>(r#"{"transfers": 1, "manifests": 2, "tokens": 0, "receives": 3}"#);
    round_trip::<GcSettings>(r#"{"intervalSeconds": 60, "timeLimitSeconds": 0}"#);
    round_trip::<SendRate>(r#"{"sendRateMax": null}"#);
    round_trip::<DownloadStart>(r#"{"transferId": "ab"}"#);
    round_trip::<RequestId>(r#"{"requestId": 4329695253502713}"#);
}

#[test]
fn discovery_results_are_told_apart() {
    let sent: DiscoverResult = round_trip(sample!("send_discover"));
    assert!(matches!(&sent, DiscoverResult::Sent(s) if s.echoed && s.round_trip_ms == Some(0)));
    let received: DiscoverResult = round_trip(sample!("recv_discover"));
    assert!(matches!(&received, DiscoverResult::Received(r) if !r.received));
    round_trip::<SendDiscoverResult>(sample!("send_discover"));
    round_trip::<RecvDiscoverResult>(sample!("recv_discover"));
}

#[test]
fn login_result_is_null_and_accepts_more() {
    assert_eq!(serde_json::to_value(LoginResult).unwrap(), Value::Null);
    let _: LoginResult = serde_json::from_value(Value::Null).unwrap();
    let _: LoginResult = serde_json::from_value(json!({"later": 1})).unwrap();
}

#[test]
fn a_newer_servers_fields_and_names_are_kept_or_ignored() {
    let mut v: Value = serde_json::from_str(sample!("transfer")).unwrap();
    v["status"] = json!("verifying");
    v["newCounter"] = json!(5);
    let t: Transfer = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(t.status, TransferStatus::Other("verifying".into()));
    assert!(!t.status.is_final());
    let again = serde_json::to_value(&t).unwrap();
    assert_eq!(
        again["status"], "verifying",
        "an unknown name is sent back as it came"
    );
    assert!(again.get("newCounter").is_none());

    let mut v: Value = serde_json::from_str(sample!("server_info_token")).unwrap();
    v["user"]["permissions"] = json!(["upload", "teleport"]);
    v["serverPlatform"] = json!("plan9");
    let info: ServerInfo = serde_json::from_value(v).unwrap();
    assert_eq!(info.user.permissions, [Permission::Upload]);
    assert_eq!(info.server_platform.as_str(), "plan9");
    // A known name never decodes to `Other`.
    assert_eq!(
        ManifestStatus::from_wire("pending"),
        ManifestStatus::Pending
    );
}

#[test]
fn a_missing_or_mistyped_field_is_named() {
    let mut v: Value = serde_json::from_str(sample!("manifest")).unwrap();
    v.as_object_mut().unwrap().remove("creationTime");
    let e = serde_json::from_value::<Manifest>(v.clone()).unwrap_err();
    assert!(e.to_string().contains("creationTime"), "{e}");
    v["creationTime"] = json!(1);
    v["totalSize"] = json!("six");
    assert!(serde_json::from_value::<Manifest>(v).is_err());
    let mut v: Value = serde_json::from_str(sample!("transfer")).unwrap();
    v["startTime"] = json!(1.5);
    assert!(
        serde_json::from_value::<Transfer>(v).is_err(),
        "times are integers"
    );
}

#[test]
fn debug_never_shows_a_whole_token() {
    let info: ServerInfo = serde_json::from_str(sample!("server_info_token")).unwrap();
    let shared: SharedToken = serde_json::from_str(sample!("shared_token")).unwrap();
    let shown = format!("{info:?} {shared:#?}");
    for secret in [
        "03759a35adfea9fffd69a861c18563ce",
        "dbb8b16d43c59c240cff555ba234d50d",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("dbb8b1…"), "{shown}");
    assert_eq!(shared.token.as_str(), "dbb8b16d43c59c240cff555ba234d50d");
}

#[test]
fn timestamps_are_microseconds_since_the_epoch() {
    let t = Timestamp::from_micros(1_796_664_065_100_369);
    let back = Timestamp::from_system_time(t.to_system_time());
    assert_eq!(back, t);
    assert_eq!(
        Timestamp::from_system_time(UNIX_EPOCH - Duration::from_micros(5)).as_micros(),
        -5
    );
    assert_eq!(
        Timestamp::from_micros(-5).to_system_time(),
        UNIX_EPOCH - Duration::from_micros(5)
    );
    assert_eq!(serde_json::to_string(&t).unwrap(), "1796664065100369");
}
