//! Issue 18, items 5 and 6: the remaining commands (`send.getConnection(s)`,
//! `send.update/deleteObjectUserData`, `send.waitForManifest`, `getThirdPartyLicenses`,
//! `setLicenseKeyAsync`) and the flags the documents name (`--max-cloud-cache-size`,
//! `--license-password`, bare `--api-allow-remote-control`), through real servers and
//! `jetstream api`, with what a stranger, another user, a narrowed token and a download link
//! may not do.

use std::process::Command;
use std::time::Duration;

use jetstream_api::ErrorKind;
use jetstream_client::client::{ApiClient, ClientError};
use serde_json::{json, Value};

use super::util::*;

/// The kind of the API error `r` must be.
fn kind(r: Result<Value, ClientError>) -> ErrorKind {
    match r {
        Err(ClientError::Api(e)) => e.kind,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// `jetstream api` against `port` as `user`: exit code, JSON on stdout, stderr.
fn api_cli(port: u16, user: &str, pw: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin())
        .arg("api")
        .args(["--api-control-port", &port.to_string(), "--user", user])
        .args(args)
        .env("JETSTREAM_API_PASSWORD", pw)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A session logged in with a new API token of `c`'s user, with `permissions`.
fn narrowed(s: &Srv, c: &mut ApiClient, permissions: &[&str]) -> ApiClient {
    let t = c
        .call("createAPIToken", json!({ "permissions": permissions }))
        .expect("createAPIToken");
    let mut tc = s.client();
    tc.call("authToken", json!({ "token": t["token"] }))
        .expect("token login");
    tc
}

/// A download-link session for manifest `mid` of `c`'s user.
fn link(s: &Srv, c: &mut ApiClient, mid: &str) -> (ApiClient, String) {
    let t = c
        .call("send.createSharedToken", json!({ "manifestId": mid }))
        .expect("createSharedToken");
    let token = t["token"].as_str().unwrap().to_owned();
    let mut lc = s.tls_client();
    lc.call("authToken", json!({ "token": token }))
        .expect("link login");
    (lc, token)
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn connections_are_the_receivers_of_the_callers_destinations_with_what_a_transfer_taught() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        a,
        b,
        storage: _,
    } = Pair::new(true);
    let (w, wpw) = user();
    let mut c = a.login(u.name(), &pw);
    // Two destinations naming the same receiver (different rate caps), one another.
    let d1 = destination(&mut c, &b, u.name(), &pw, json!({"destinationPort": b.udp}));
    let d2 = destination(
        &mut c,
        &b,
        u.name(),
        &pw,
        json!({"destinationPort": b.udp, "sendRateMax": 100000, "ratePolicy": "fixed"}),
    );
    let other_port = free_udp();
    let d3 = destination(
        &mut c,
        &b,
        u.name(),
        &pw,
        json!({"destinationAddress": "127.0.0.2", "destinationPort": other_port}),
    );
    assert_ne!(d1, d2);
    let view = c
        .call("send.getDestination", json!({ "destinationId": d1 }))
        .unwrap();
    let cid = view["connectionId"].as_str().unwrap().to_owned();
    assert_eq!(cid, format!("127.0.0.1:{}", b.udp));

    let list = c.call("send.getConnections", json!({})).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let conn = list.iter().find(|x| x["connectionId"] == cid).unwrap();
    let mut ids: Vec<&str> = conn["destinationIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = vec![d1.as_str(), d2.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert_eq!(conn["destinationPort"], b.udp);
    assert_eq!(conn["encryptionEnabled"], true);
    assert_eq!(conn["encryptedConnectionState"], "disconnected");
    assert_eq!(conn["numTransfersQueued"], 0);
    assert_eq!(conn["rateControllerActive"], false);
    assert_eq!(conn["relayIP"], Value::Null);
    assert_eq!(conn["lastSendTime"], Value::Null);
    let other = list
        .iter()
        .find(|x| x["connectionId"] == format!("127.0.0.2:{other_port}"))
        .unwrap();
    assert_eq!(other["destinationIds"], json!([d3]));

    // A transfer teaches the connection the receiver's identity and times.
    let src = dir.path().join("conn-src.bin");
    write(&src, &data(200_000, 3));
    let m = manifest(&mut c, json!([[src.display().to_string(), "/c.bin"]])).unwrap();
    let t = transfer(&mut c, &d1, &m, None);
    let end = wait_end(&mut c, &t, Duration::from_secs(60));
    assert_eq!(end["status"], "complete", "{end}");
    let got = c
        .call("send.getConnection", json!({ "connectionId": cid }))
        .unwrap();
    let mut bc = b.login(u.name(), &pw);
    let binfo = bc.call("getServerInfo", json!({})).unwrap();
    assert_eq!(got["lastDestinationServerUid"], binfo["serverUid"], "{got}");
    assert_eq!(got["destinationPublicKey"], binfo["publicKey"], "{got}");
    assert_eq!(got["destinationIP"], "127.0.0.1");
    assert!(got["lastSendTime"].as_i64().is_some(), "{got}");
    assert_eq!(got["rateControlMethod"], "fair");
    // The typed client reads it.
    let typed: jetstream_api::types::Connection = serde_json::from_value(got).unwrap();
    assert_eq!(typed.connection_id, cid);

    // Another user sees no connection, and this one is "not found" to them.
    let mut cw = a.login(w.name(), &wpw);
    assert_eq!(
        cw.call("send.getConnections", json!({})).unwrap(),
        json!([])
    );
    assert_eq!(
        kind(cw.call("send.getConnection", json!({ "connectionId": cid }))),
        ErrorKind::NotFound
    );
    // A narrowed token sees only the connections of its own destinations.
    let mut tc = narrowed(&a, &mut c, &["upload"]);
    assert_eq!(
        tc.call("send.getConnections", json!({})).unwrap(),
        json!([])
    );
    let own = destination(
        &mut tc,
        &b,
        u.name(),
        &pw,
        json!({"destinationPort": b.udp}),
    );
    let seen = tc
        .call("send.getConnection", json!({ "connectionId": cid }))
        .unwrap();
    assert_eq!(seen["destinationIds"], json!([own]), "{seen}");
    assert_eq!(seen["lastSendTime"], Value::Null, "not the user's transfer");
    // A download link and a stranger get nothing.
    let (mut lc, _) = link(&a, &mut c, &m);
    assert_eq!(
        kind(lc.call("send.getConnections", json!({}))),
        ErrorKind::PermissionDenied
    );
    let mut anon = a.client();
    assert_eq!(
        kind(anon.call("send.getConnection", json!({ "connectionId": cid }))),
        ErrorKind::NotAuthenticated
    );
    // Through `jetstream api`.
    let (code, v, err) = api_cli(a.api, u.name(), &pw, &["getConnections"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|x| x["connectionId"] == cid),
        "{v}"
    );
    let (code, v, err) = api_cli(
        a.api,
        u.name(),
        &pw,
        &["getConnection", "--connectionId", &cid],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["connectionId"], cid);
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn user_data_is_set_and_removed_by_the_owner_only_bounded_and_persisted() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (w, wpw) = user();
    let (v, vpw) = user();
    let dir = scratch();
    let mut s = Srv::start(dir.path(), "s", &["--superuser", v.name()]);
    let mut c = s.login(u.name(), &pw);
    // A receiver that is not there (a local port nobody serves): the transfer only waits.
    let d = c
        .call(
            "send.createDestination",
            json!({"destinationAddress": "127.0.0.1", "destinationApiPort": free_tcp(),
                   "destinationPort": free_udp()}),
        )
        .unwrap()["destinationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let src = dir.path().join("ud.bin");
    write(&src, &data(1000, 1));
    let m = manifest(&mut c, json!([[src.display().to_string(), "/ud.bin"]])).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let shared = c
        .call("send.createSharedToken", json!({ "manifestId": m }))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let api_token = c
        .call("createAPIToken", json!({ "permissions": ["upload"] }))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let objects = [
        (
            "destination",
            d.as_str(),
            "send.getDestination",
            json!({"destinationId": d}),
        ),
        (
            "manifest",
            m.as_str(),
            "send.getManifest",
            json!({"manifestId": m}),
        ),
        (
            "transfer",
            t.as_str(),
            "send.getTransfer",
            json!({"transferId": t}),
        ),
        (
            "sharedToken",
            shared.as_str(),
            "send.getSharedToken",
            json!({"token": shared}),
        ),
        (
            "apiToken",
            api_token.as_str(),
            "getAPIToken",
            json!({"token": api_token}),
        ),
    ];
    for (ty, id, getter, get_params) in &objects {
        let r = c
            .call(
                "send.updateObjectUserData",
                json!({"objectType": ty, "objectId": id,
                       "userData": {"project": "apollo", "n": 7, "tags": ["a", "b"]}}),
            )
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(r["objectType"], *ty);
        assert_eq!(r["userData"]["n"], 7);
        // Merged: a second update keeps the other keys.
        c.call(
            "send.updateObjectUserData",
            json!({"objectType": ty, "objectId": id, "userData": {"n": 8}}),
        )
        .unwrap();
        let got = c.call(getter, get_params.clone()).unwrap();
        assert_eq!(
            got["userData"],
            json!({"project": "apollo", "n": 8, "tags": ["a", "b"]}),
            "{ty}: {got}"
        );
        let r = c
            .call(
                "send.deleteObjectUserData",
                json!({"objectType": ty, "objectId": id, "keys": ["tags", "absent"]}),
            )
            .unwrap();
        assert_eq!(r["userData"], json!({"project": "apollo", "n": 8}), "{ty}");
        // A token is never answered in full.
        if ty.ends_with("Token") {
            assert!(!r.to_string().contains(*id), "{ty}: {r}");
        }
    }
    // Deleting without keys clears all.
    let r = c
        .call(
            "send.deleteObjectUserData",
            json!({"objectType": "manifest", "objectId": m}),
        )
        .unwrap();
    assert_eq!(r["userData"], json!({}));

    // At most 64 KiB of JSON per object, the error naming the limit; nothing changed.
    let big = "x".repeat(40_000);
    c.call(
        "send.updateObjectUserData",
        json!({"objectType": "destination", "objectId": d, "userData": {"a": big}}),
    )
    .unwrap();
    let r = c.call(
        "send.updateObjectUserData",
        json!({"objectType": "destination", "objectId": d, "userData": {"b": big}}),
    );
    match r {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.kind, ErrorKind::BadParameters);
            assert!(e.message.contains("65536"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let got = c
        .call("send.getDestination", json!({"destinationId": d}))
        .unwrap();
    assert!(got["userData"].get("b").is_none());
    c.call(
        "send.deleteObjectUserData",
        json!({"objectType": "destination", "objectId": d, "keys": "a"}),
    )
    .unwrap();
    // An unknown object type is a parameter error.
    assert_eq!(
        kind(c.call(
            "send.updateObjectUserData",
            json!({"objectType": "planet", "objectId": d, "userData": {}}),
        )),
        ErrorKind::BadParameters
    );
    // A shared token is not an API token (and the other way round).
    assert_eq!(
        kind(c.call(
            "send.updateObjectUserData",
            json!({"objectType": "apiToken", "objectId": shared, "userData": {"x": 1}}),
        )),
        ErrorKind::NotFound
    );

    // Attackers: another user, a narrowed token (even with modify), a link, a stranger.
    let mut cw = s.login(w.name(), &wpw);
    let mut tc = narrowed(&s, &mut c, &["upload", "modify"]);
    let mut weak = narrowed(&s, &mut c, &["upload"]);
    let (mut lc, _) = link(&s, &mut c, &m);
    let mut anon = s.client();
    for (ty, id, _, _) in &objects {
        let p = json!({"objectType": ty, "objectId": id, "userData": {"owned": true}});
        let dp = json!({"objectType": ty, "objectId": id});
        assert_eq!(
            kind(cw.call("send.updateObjectUserData", p.clone())),
            ErrorKind::NotFound,
            "{ty}"
        );
        assert_eq!(
            kind(cw.call("send.deleteObjectUserData", dp.clone())),
            ErrorKind::NotFound,
            "{ty}"
        );
        assert_eq!(
            kind(tc.call("send.updateObjectUserData", p.clone())),
            ErrorKind::NotFound,
            "{ty}"
        );
        assert_eq!(
            kind(tc.call("send.deleteObjectUserData", dp.clone())),
            ErrorKind::NotFound,
            "{ty}"
        );
        assert_eq!(
            kind(weak.call("send.updateObjectUserData", p.clone())),
            ErrorKind::PermissionDenied,
            "{ty}"
        );
        assert_eq!(
            kind(lc.call("send.updateObjectUserData", p.clone())),
            ErrorKind::PermissionDenied,
            "{ty}"
        );
        assert_eq!(
            kind(anon.call("send.updateObjectUserData", p.clone())),
            ErrorKind::NotAuthenticated,
            "{ty}"
        );
    }
    let got = c
        .call("send.getDestination", json!({"destinationId": d}))
        .unwrap();
    assert_eq!(got["userData"], json!({"project": "apollo", "n": 8}));
    // A superuser may (as it may see and delete every object).
    let mut cv = s.login(v.name(), &vpw);
    cv.call("superuser", json!({})).unwrap();
    cv.call(
        "send.updateObjectUserData",
        json!({"objectType": "destination", "objectId": d, "userData": {"audited": true}}),
    )
    .unwrap();

    // Through `jetstream api`.
    let (code, r, err) = api_cli(
        s.api,
        u.name(),
        &pw,
        &[
            "updateObjectUserData",
            "--objectType",
            "destination",
            "--objectId",
            &d,
            "--userData",
            r#"{"from": "cli"}"#,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["userData"]["from"], "cli", "{r}");
    let (code, r, err) = api_cli(
        s.api,
        u.name(),
        &pw,
        &[
            "deleteObjectUserData",
            "--objectType",
            "destination",
            "--objectId",
            &d,
            "--keys",
            "n",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(r["userData"].get("n").is_none(), "{r}");

    // Kept across a restart, with the destination.
    s.signal(15);
    s.restart();
    let mut c = s.login(u.name(), &pw);
    let got = c
        .call("send.getDestination", json!({"destinationId": d}))
        .unwrap();
    assert_eq!(
        got["userData"],
        json!({"project": "apollo", "audited": true, "from": "cli"}),
        "{got}"
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn wait_for_manifest_answers_a_finished_manifest_and_only_to_its_owner() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (w, wpw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    // Enough files that scanning them takes far longer than a loopback round trip: a wait
    // that answered at once would answer `pending`.
    let src = dir.path().join("wm");
    std::fs::create_dir_all(&src).unwrap();
    let n = 20_000;
    for i in 0..n {
        std::fs::write(src.join(format!("f{i}")), b"").unwrap();
    }
    let mut c = s.login(u.name(), &pw);
    let m = c
        .call(
            "send.createManifest",
            json!({"fileMappings": [[src.display().to_string(), "/wm"]]}),
        )
        .unwrap();
    let mid = m["manifestId"].as_str().unwrap().to_owned();
    let waited = c
        .call(
            "send.waitForManifest",
            json!({"manifestId": mid, "timeoutMs": 60000}),
        )
        .unwrap();
    assert_eq!(waited["status"], "complete", "{waited}");
    assert_eq!(waited["processing"], false);
    assert_eq!(waited["totalFiles"], n);
    // A manifest that fails is answered with its error, not waited for.
    let bad = c
        .call(
            "send.createManifest",
            json!({"fileMappings": [["/nonexistent-jst-source", "/x"]]}),
        )
        .unwrap();
    let failed = c
        .call(
            "send.waitForManifest",
            json!({"manifestId": bad["manifestId"], "timeoutMs": 30000}),
        )
        .unwrap();
    assert_eq!(failed["status"], "error", "{failed}");
    // Longer than the bound is accepted (and bounded): the manifest is done already.
    c.call(
        "send.waitForManifest",
        json!({"manifestId": mid, "timeoutMs": 86_400_000u64}),
    )
    .unwrap();
    // Someone else's manifest does not exist for them; a stranger must log in.
    let mut cw = s.login(w.name(), &wpw);
    assert_eq!(
        kind(cw.call("send.waitForManifest", json!({"manifestId": mid}))),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            s.client()
                .call("send.waitForManifest", json!({"manifestId": mid}))
        ),
        ErrorKind::NotAuthenticated
    );
    let (mut lc, _) = link(&s, &mut c, &mid);
    assert_eq!(
        kind(lc.call("send.waitForManifest", json!({"manifestId": mid}))),
        ErrorKind::PermissionDenied
    );
    // Through `jetstream api`.
    let (code, v, err) = api_cli(
        s.api,
        u.name(),
        &pw,
        &[
            "waitForManifest",
            "--manifestId",
            &mid,
            "--timeoutMs",
            "5000",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["status"], "complete");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn wait_for_transfer_answers_when_the_transfer_ends_and_only_to_its_owner() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (w, wpw) = user();
    let dir = scratch();
    let root = dir.path();
    let a = Srv::start(root, "a", &[]);
    let b = Srv::start(
        root,
        "b",
        &["--sandbox-dir", root.join("in").to_str().unwrap()],
    );
    let mut c = a.login(u.name(), &pw);
    // 4 MB at 2 Mbit/s would take 16 s: a wait that returns ended is woken by the end.
    let src = root.join("slow.bin");
    write(&src, &data(4_000_000, 9));
    let d = destination(&mut c, &b, u.name(), &pw, json!({"sendRateMax": 2000}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/slow.bin" })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    // A short wait runs out and answers the transfer as it is.
    let early = c
        .call(
            "send.waitForTransfer",
            json!({"transferId": t, "timeoutMs": 300}),
        )
        .unwrap();
    assert_eq!(early["processing"], true, "{early}");
    // Another connection cancels it; the waiter answers with the end (the pause only makes
    // the cancel likely to come while the other waits: either order must answer `cancelled`).
    let ended = std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut c2 = a.login(u.name(), &pw);
            std::thread::sleep(Duration::from_millis(500));
            c2.call("send.cancelTransfer", json!({ "transferId": t }))
                .unwrap();
        });
        c.call(
            "send.waitForTransfer",
            json!({"transferId": t, "timeoutMs": 60000}),
        )
        .unwrap()
    });
    assert_eq!(ended["status"], "cancelled", "{ended}");
    assert_eq!(ended["processing"], false, "{ended}");
    // Someone else's transfer does not exist for them; a stranger must log in.
    let mut cw = a.login(w.name(), &wpw);
    assert_eq!(
        kind(cw.call("send.waitForTransfer", json!({"transferId": t}))),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            a.client()
                .call("send.waitForTransfer", json!({"transferId": t}))
        ),
        ErrorKind::NotAuthenticated
    );
    // Through `jetstream api`: an ended transfer is answered at once.
    let (code, v, err) = api_cli(
        a.api,
        u.name(),
        &pw,
        &["waitForTransfer", "--transferId", &t],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["status"], "cancelled", "{v}");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn third_party_licenses_list_the_linked_crates_and_not_the_dev_only_ones() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let mut c = s.login(u.name(), &pw);
    let v = c.call("getThirdPartyLicenses", json!({})).unwrap();
    let typed: jetstream_api::types::ThirdPartyLicenses = serde_json::from_value(v).unwrap();
    assert_eq!(typed.license, "MIT OR Apache-2.0");
    let find = |name: &str| typed.crates.iter().find(|c| c.name == name);
    let ring = find("ring").expect("ring is linked");
    assert_eq!(ring.license.as_deref(), Some("Apache-2.0 AND ISC"));
    let files: Vec<&str> = ring
        .license_texts
        .iter()
        .map(|t| t.file_name.as_str())
        .collect();
    assert_eq!(
        files,
        ["LICENSE", "LICENSE-BoringSSL", "LICENSE-other-bits"]
    );
    assert!(
        ring.license_texts
            .iter()
            .any(|t| t.file_name == "LICENSE-BoringSSL" && t.text.contains("Apache License")),
        "ring ships its license texts"
    );
    assert_eq!(find("mio").and_then(|c| c.license.as_deref()), Some("MIT"));
    assert!(find("serde").is_some() && find("serde_json").is_some() && find("rustls").is_some());
    // Dev-only (tempfile, the tests' proptest), build-only (cc, ring's build script) and our
    // own crates are not third-party crates of the binary.
    for absent in [
        "tempfile",
        "cc",
        "jetstream-core",
        "jetstream-server",
        "jetstream-api",
    ] {
        assert!(find(absent).is_none(), "{absent} listed");
    }
    assert!(typed.crates.iter().all(|c| !c.version.is_empty()));
    // Anonymous clients are not told the exact versions.
    assert_eq!(
        kind(s.client().call("getThirdPartyLicenses", json!({}))),
        ErrorKind::NotAuthenticated
    );
    // Through `jetstream api`.
    let (code, v, err) = api_cli(s.api, u.name(), &pw, &["getThirdPartyLicenses"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        v["crates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "ring"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_license_key_is_accepted_changes_nothing_and_is_never_kept_or_shown() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (v, vpw) = user();
    let dir = scratch();
    let key = "JST-LICENSE-KEY-77f0c1d2";
    let flag_key = "JST-FLAG-PASSWORD-3a9b";
    let cache = (1u64 << 30).to_string();
    let s = Srv::start(
        dir.path(),
        "s",
        &[
            "--superuser",
            v.name(),
            "--max-cloud-cache-size",
            &cache,
            &format!("--license-password={flag_key}"),
            "--api-allow-remote-control",
            "--log-level",
            "debug",
        ],
    );
    let mut cv = s.login(v.name(), &vpw);
    cv.call("superuser", json!({})).unwrap();
    let before = cv.call("getServerInfo", json!({})).unwrap();
    assert_eq!(
        before["license"],
        json!({"valid": true, "expiry": null, "errorMessage": null})
    );
    assert_eq!(before["allowRemoteControl"], true);
    assert_eq!(
        before["configuration"]["cloudFileCache"],
        json!({"highWatermark": 0, "maximumSize": 1u64 << 30})
    );
    // Superusers only.
    let mut cu = s.login(u.name(), &pw);
    assert_eq!(
        kind(cu.call("setLicenseKeyAsync", json!({ "key": key }))),
        ErrorKind::PermissionDenied
    );
    let r = cv
        .call("setLicenseKeyAsync", json!({ "key": key }))
        .unwrap();
    let result = cv
        .call("getRequestResult", json!({ "requestId": r["requestId"] }))
        .unwrap();
    assert_eq!(result, before["license"]);
    assert!(!result.to_string().contains(key));
    let after = cv.call("getServerInfo", json!({})).unwrap();
    assert_eq!(after["license"], before["license"]);
    // Without `Async` too.
    cv.call("setLicenseKey", json!({ "key": key })).unwrap();
    // Never kept or shown: not in the log, the event log or the state.
    let events = cv.call("getEventLog", json!({})).unwrap().to_string();
    let mut seen = s.log_text() + &events;
    for e in std::fs::read_dir(&s.state).unwrap().flatten() {
        if let Ok(text) = std::fs::read_to_string(e.path()) {
            seen.push_str(&text);
        }
    }
    assert!(!seen.contains(key), "the key was kept somewhere");
    assert!(
        !seen.contains(flag_key),
        "the flag's key was kept somewhere"
    );
    // --print-config masks it.
    let out = Command::new(bin())
        .args(["server", "--no-config", "--print-config"])
        .arg(format!("--license-password={flag_key}"))
        .args(["--max-cloud-cache-size", "5000"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(!printed.contains(flag_key), "{printed}");
    assert!(printed.contains("max-cloud-cache-size = 5000"), "{printed}");
    // Through `jetstream api`: refused (exit 1) without --superuser, accepted with it.
    let (code, _, err) = api_cli(s.api, u.name(), &pw, &["setLicenseKeyAsync", "--key", key]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = api_cli(
        s.api,
        v.name(),
        &vpw,
        &["--superuser", "setLicenseKeyAsync", "--key", key],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.to_string().contains(key) && !err.contains(key));
    assert!(
        out == before["license"] || out.get("requestId").is_some(),
        "{out}"
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn remote_control_is_off_with_false_and_the_cache_size_comes_from_the_config_file() {
    if !can_run() {
        return;
    }
    let (v, vpw) = user();
    let dir = scratch();
    let conf = dir.path().join("j.toml");
    std::fs::write(&conf, "max-cloud-cache-size = 123456789\n").unwrap();
    let conf_arg = format!("--config={}", conf.display());
    let s = Srv::start(
        dir.path(),
        "s",
        &[
            &conf_arg,
            "--api-allow-remote-control=false",
            "--superuser",
            v.name(),
        ],
    );
    let mut c = s.login(v.name(), &vpw);
    c.call("superuser", json!({})).unwrap();
    let info = c.call("getServerInfo", json!({})).unwrap();
    assert_eq!(info["allowRemoteControl"], false);
    assert_eq!(
        info["configuration"]["cloudFileCache"],
        json!({"highWatermark": 0, "maximumSize": 123456789})
    );
    let out = Command::new(bin())
        .args(["server", &conf_arg, "--print-config"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("max-cloud-cache-size = 123456789"),
        "{printed}"
    );
}
