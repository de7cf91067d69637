use serde_json::{json, Value};

use super::*;
use crate::{decode_params, Command, ParamError, Parameter, Request};

fn decode<C: Command>(v: Value) -> Result<C, ParamError> {
    decode_params::<C>(C::META.name, v)
}

fn message<C: Command + fmt::Debug>(v: Value) -> String {
    decode::<C>(v).unwrap_err().to_string()
}

const ID: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_wrong_type_names_the_parameter() {
    let e = decode::<Auth>(json!({"userName": 5, "password": "x"})).unwrap_err();
    assert_eq!(e.parameter(), Some("userName"));
    assert_eq!(
        e.to_string(),
        "parameter \"userName\" must be a string, not 5"
    );
    assert_eq!(
        message::<CreateTransfer>(json!({"destinationId": ID, "manifestId": ID, "priority": []})),
        "parameter \"priority\" must be an integer, not an array"
    );
    assert_eq!(
        message::<CreateApiToken>(json!({"permissions": ["upload", 3]})),
        "parameter \"permissions[1]\" must be a string, not 3"
    );
    assert_eq!(
        message::<SendDiscoverPacket>(json!({"address": "h", "port": 70000})),
        "parameter \"port\" must be an integer from 0 to 65535, not 70000"
    );
}

#[test]
fn an_unknown_parameter_is_named() {
    let e = decode::<GetTransfer>(json!({"transferId": ID, "transferID": ID})).unwrap_err();
    assert!(
        matches!(&e, ParamError::Unknown { parameter, .. } if parameter == "transferID"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "unknown parameter \"transferID\" of send.getTransfer: it takes transferId"
    );
    assert_eq!(
        message::<GetServerInfo>(json!({"verbose": true})),
        "unknown parameter \"verbose\" of getServerInfo: it takes none"
    );
    let e = message::<CreateManifest>(json!({"fileMappings": [{"srcPath": "/a", "dst": "b"}]}));
    assert!(
        e.contains("\"fileMappings.dst\"") && e.contains("srcPath, destPath"),
        "{e}"
    );
}

#[test]
fn a_missing_parameter_is_named() {
    assert_eq!(
        message::<Auth>(json!({"userName": "root"})),
        "missing parameter \"password\""
    );
    // `null` is absent.
    assert_eq!(
        message::<SendDiscoverPacket>(json!({"address": null})),
        "missing parameter \"address\""
    );
    assert_eq!(
        decode::<FailTransfer>(json!({"transferId": ID, "errorMessage": null})).unwrap(),
        FailTransfer {
            transfer_id: ID.into(),
            error_message: None
        }
    );
}

#[test]
fn parameters_that_are_not_an_object_are_refused() {
    let e = decode::<Echo>(json!("text")).unwrap_err();
    assert_eq!(
        e,
        ParamError::NotAnObject {
            command: "echo".into()
        }
    );
    assert_eq!(decode::<Echo>(Value::Null).unwrap(), Echo::default());
}

#[test]
fn aliases_decode() {
    let a = decode::<Auth>(json!({"username": "u", "password": "p"})).unwrap();
    assert_eq!(a.user_name, "u");
    assert_eq!(a.password.expose(), "p");
    let s = decode::<Sleep>(json!({"ms": 5})).unwrap();
    assert_eq!(s.milliseconds, Some(5));
    let s = decode::<Sleep>(json!({"milliseconds": "7"})).unwrap();
    assert_eq!(s.milliseconds, Some(7));
}

#[test]
fn ids_are_checked_and_lowercased() {
    let t = decode::<GetTransfer>(json!({"transferId": ID.to_uppercase()})).unwrap();
    assert_eq!(t.transfer_id, ID);
    for bad in [
        json!("abc"),
        json!(12345),
        json!(ID.replace('a', "g")),
        json!(true),
    ] {
        let e = decode::<GetTransfer>(json!({ "transferId": bad })).unwrap_err();
        assert_eq!(e.parameter(), Some("transferId"), "{bad}");
        assert!(e.to_string().contains("32 hex digits"), "{e}");
    }
    let r = decode::<SetSendRate>(json!({"sendRateMax": 0, "transferId": ID.to_uppercase()}));
    assert_eq!(r.unwrap().transfer_id.as_deref(), Some(ID));
}

#[test]
fn integers_may_be_strings_of_digits() {
    let g = decode::<UpdateGarbageCollectSettings>(
        json!({"intervalSeconds": " 10 ", "timeLimitSeconds": 0}),
    )
    .unwrap();
    assert_eq!(
        (g.interval_seconds, g.time_limit_seconds),
        (Some(10), Some(0))
    );
    let r = decode::<GetRequestStatus>(json!({"requestId": "12"})).unwrap();
    assert_eq!(r.request_id, 12);
    for bad in [json!("-1"), json!(-1), json!(1.5), json!("ten"), json!("")] {
        let e = decode::<GetRequestStatus>(json!({ "requestId": bad })).unwrap_err();
        assert_eq!(e.parameter(), Some("requestId"), "{bad}: {e}");
    }
    let t = decode::<CreateApiToken>(json!({"expiryTime": "-5"})).unwrap();
    assert_eq!(t.expiry_time, Some(-5));
}

#[test]
fn booleans_may_be_strings() {
    let a = decode::<AllowOnlyAuthorizedClients>(json!({"onlyAuthorizedClientsAllowed": "true"}));
    assert!(a.unwrap().only_authorized_clients_allowed);
    let b = decode::<UpdateBandwidthLimits>(json!({"borrowIncoming": false})).unwrap();
    assert_eq!(b.borrow_incoming, Some(false));
    let e = message::<UpdateBandwidthLimits>(json!({"borrowIncoming": "yes"}));
    assert_eq!(
        e,
        "parameter \"borrowIncoming\" must be true or false, not \"yes\""
    );
    let e = message::<UpdateBandwidthLimits>(json!({"outgoingRateLimt": 1}));
    assert!(
        e.contains("outgoingRateLimt") && e.contains("outgoingRateLimit"),
        "{e}"
    );
}

#[test]
fn file_mappings_take_three_forms() {
    let want = vec![
        Mapping {
            source: "/a".into(),
            target: "b".into(),
        },
        Mapping {
            source: "/c".into(),
            target: "d".into(),
        },
    ];
    for form in [
        json!({"/a": "b", "/c": "d"}),
        json!([["/a", "b"], ["/c", "d"]]),
        json!([{"srcPath": "/a", "destPath": "b"}, {"srcPath": "/c", "destPath": "d"}]),
    ] {
        let m = decode::<CreateManifest>(json!({ "fileMappings": form })).unwrap();
        assert_eq!(m.file_mappings, want, "{form}");
    }
    for bad in [
        json!({}),
        json!([]),
        json!("/a:b"),
        json!([["/a"]]),
        json!([["/a", 1]]),
        json!({"/a": 1}),
        json!([{"srcPath": "/a"}]),
    ] {
        let e = decode::<CreateManifest>(json!({ "fileMappings": bad })).unwrap_err();
        assert!(e.to_string().contains("fileMappings"), "{bad}: {e}");
    }
}

#[test]
fn event_names_are_a_list_or_one() {
    let l = decode::<GetEventLog>(json!({"events": "a"})).unwrap();
    assert_eq!(l.events, Some(vec!["a".to_owned()]));
    let l = decode::<GetEventLog>(json!({"events": ["a", "b"], "event": "c"})).unwrap();
    assert_eq!(l.events.map(|e| e.len()), Some(2));
    assert_eq!(l.event.as_deref(), Some("c"));
    let e = decode::<GetEventLog>(json!({"events": ["a", 1]})).unwrap_err();
    assert_eq!(e.parameter(), Some("events"));
}

#[test]
fn a_client_key_is_a_string_or_an_object_holding_one() {
    let a = decode::<AddAuthorizedClient>(json!({"clientPublicKey": "ab12"})).unwrap();
    assert_eq!(a.client_public_key, "ab12");
    let nested = json!({"clientPublicKey": {"clientPublicKey": "cd34", "fingerprint": "x"}});
    let a = decode::<RemoveAuthorizedClient>(nested).unwrap();
    assert_eq!(a.client_public_key, "cd34");
    for bad in [
        json!(5),
        json!({"other": "ab"}),
        json!({"clientPublicKey": 5}),
    ] {
        let e = decode::<AddAuthorizedClient>(json!({ "clientPublicKey": bad })).unwrap_err();
        assert!(e.to_string().contains("clientPublicKey"), "{e}");
    }
}

#[test]
fn an_authorized_client_may_name_its_user_beside_or_inside_the_key() {
    let a = decode::<AddAuthorizedClient>(json!({"clientPublicKey": "ab12", "userName": "svc"}))
        .unwrap();
    assert_eq!(
        (a.client_public_key.as_str(), a.user_name.as_deref()),
        ("ab12", Some("svc"))
    );
    let inner = json!({"clientPublicKey": {"clientPublicKey": "ab12", "userName": "svc"}});
    let a = decode::<AddAuthorizedClient>(inner).unwrap();
    assert_eq!(a.user_name.as_deref(), Some("svc"));
    let a = decode::<AddAuthorizedClient>(json!({"clientPublicKey": "ab12"})).unwrap();
    assert_eq!(a.user_name, None);
    let both = json!({"clientPublicKey": {"clientPublicKey": "ab12", "userName": "a"},
        "userName": "b"});
    let e = decode::<AddAuthorizedClient>(both).unwrap_err();
    assert!(e.to_string().contains("userName"), "{e}");
    let e =
        decode::<AddAuthorizedClient>(json!({"clientPublicKey": "ab", "user": "x"})).unwrap_err();
    assert!(e.to_string().contains("user"), "{e}");
    let c = decode::<AuthClient>(json!({"userName": "alice"})).unwrap();
    assert_eq!(c.user_name.as_deref(), Some("alice"));
    assert!(decode::<AuthClient>(json!({"userName": "a", "x": 1})).is_err());
}

#[test]
fn session_ids_are_hex_on_the_wire() {
    let p = json!({"transferId": ID, "sessionId": "00000000000000ff", "ciphers": ["aes-256-gcm"],
        "destinationPath": "/x", "totalSize": 3, "totalFiles": 1});
    let s = decode::<StartReceive>(p.clone()).unwrap();
    assert_eq!(s.session_id, 255);
    assert_eq!(serde_json::to_value(&s).unwrap(), p);
    for bad in [
        json!("xyz"),
        json!("00000000000000000"),
        json!(255),
        json!(""),
    ] {
        let e = decode::<StartReceive>(json!({"transferId": ID, "sessionId": bad})).unwrap_err();
        assert_eq!(e.parameter(), Some("sessionId"), "{e}");
    }
}

#[test]
fn permissions_are_named() {
    let t = decode::<CreateApiToken>(json!({"permissions": ["upload", "share"]})).unwrap();
    assert_eq!(
        t.permissions,
        Some(vec![Permission::Upload, Permission::Share])
    );
    let e = message::<CreateApiToken>(json!({"permissions": ["root"]}));
    assert!(e.contains("unknown permission \"root\""), "{e}");
}

#[test]
fn a_client_sends_only_what_it_sets() {
    let t = CreateTransfer {
        destination_id: ID.into(),
        manifest_id: ID.into(),
        destination_path: None,
        priority: Some(5),
        checkpoint_frequency_seconds: None,
    };
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(
        v,
        json!({"destinationId": ID, "manifestId": ID, "priority": 5})
    );
    assert_eq!(decode::<CreateTransfer>(v).unwrap(), t);
    assert_eq!(serde_json::to_value(GetServerInfo {}).unwrap(), json!({}));
    let m = CreateManifest {
        file_mappings: vec![Mapping {
            source: "/a".into(),
            target: "b".into(),
        }],
    };
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(decode::<CreateManifest>(v).unwrap(), m);
}

#[test]
fn debug_never_shows_a_secret() {
    let a = decode::<Auth>(json!({"userName": "u", "password": "hunter2"})).unwrap();
    let t = decode::<AuthToken>(json!({"token": "tok-secret", "password": "pw-secret"})).unwrap();
    let d = format!("{a:?} {t:?} {:?}", Request::Auth(a.clone()));
    assert!(
        !d.contains("hunter2") && !d.contains("tok-secret") && !d.contains("pw-secret"),
        "{d}"
    );
}

#[test]
fn parameters_are_listed_with_what_is_required() {
    let p = |name: &'static str, required| Parameter { name, required };
    assert_eq!(
        Auth::META.parameters(),
        [p("userName", true), p("password", true)]
    );
    assert_eq!(
        SetSendRate::META.parameters(),
        [
            p("sendRateMax", true),
            p("transferId", false),
            p("destinationId", false)
        ]
    );
    assert_eq!(GetServerInfo::META.parameters(), []);
    let start = StartDownload::META.parameters();
    let required: Vec<&str> = start
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    assert_eq!(
        required,
        ["manifestId", "transferId", "sessionId", "receiverPort"]
    );
}
