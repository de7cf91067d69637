//! Escalation inside the control API (issue #15, items 1, 8 and 11): a download-link holder, a
//! narrowed API token and another user each trying to reach more than they were given.
//!
//! `cargo test -p jetstream-server --test server escalation -- --nocapture` prints what each
//! attempt got.

use jetstream_api::{Access, Permission, COMMANDS};
use jetstream_client::client::{ApiClient, ClientError};
use serde_json::{json, Value};

use super::util::*;

fn token_login(s: &Srv, token: &str) -> ApiClient {
    let mut c = s.client();
    c.call("authToken", json!({ "token": token }))
        .expect("authToken");
    c
}

fn refused(r: Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Api(m)) => m.message,
        other => panic!("NOT REFUSED: {other:?}"),
    }
}

fn new_token(c: &mut ApiClient, params: Value) -> String {
    c.call("createAPIToken", params).expect("createAPIToken")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Item 1: a download link and a narrowed token of the same user ask for the results of the
/// user's own `*Async` requests, one of which holds a freshly created full API token. Both
/// are refused; the ids are random, and each session still reads its own results.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn links_and_narrowed_tokens_cannot_read_the_owners_async_results() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let src = dir.path().join("src");
    write(&src.join("f.bin"), &data(1000, 1));
    std::os::unix::fs::chown(&src, Some(user.uid()), Some(user.gid())).unwrap();
    let a = Srv::start(dir.path(), "a", &[]);
    let mut owner = a.login(user.name(), &pw);
    let narrowed = new_token(
        &mut owner,
        json!({"path": "/tmp", "permissions": ["download"], "description": "narrow"}),
    );
    let mid = manifest(
        &mut owner,
        json!({ src.join("f.bin").to_str().unwrap(): "/f.bin" }),
    )
    .unwrap();
    let link = owner
        .call("send.createSharedToken", json!({ "manifestId": mid }))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The owner's async request whose result is a full token.
    let secret = owner
        .call("createAPITokenAsync", json!({"description": "full"}))
        .unwrap()["requestId"]
        .clone();
    let full = owner
        .call("getRequestResult", json!({ "requestId": secret }))
        .expect("the owner reads its own result");
    assert!(full["token"].is_string());
    let other = owner.call("send.getManifestsAsync", json!({})).unwrap()["requestId"]
        .as_u64()
        .unwrap();
    let first = secret.as_u64().expect("requestId is a number");
    println!("request ids: {first}, {other}");
    assert!(
        first.abs_diff(other) > 1_000_000 && first > 1_000_000 && other > 1_000_000,
        "request ids must not be guessable from one's own: {first}, {other}"
    );
    assert!(first < 1 << 53 && other < 1 << 53, "ids fit a JSON double");

    let mut n = token_login(&a, &narrowed);
    let mut l = a.tls_client();
    l.call("authToken", json!({ "token": link }))
        .expect("link login");
    for (who, c) in [("narrowed token", &mut n), ("download link", &mut l)] {
        for cmd in ["getRequestResult", "getRequestStatus"] {
            for id in [first, other] {
                let m = refused(c.call(cmd, json!({ "requestId": id, "timeoutMs": 0 })));
                println!("| {who} | {cmd} {id} | refused: {m} |");
            }
        }
    }
    // The narrowed token's own request is its own.
    let mine = n.call("send.getManifestsAsync", json!({})).unwrap()["requestId"].clone();
    n.call("getRequestResult", json!({ "requestId": mine }))
        .expect("a token session reads its own result");
    // ... and not the owner's password sessions' business either: they are a different owner.
    let m = refused(owner.call(
        "getRequestResult",
        json!({ "requestId": mine, "timeoutMs": 0 }),
    ));
    println!("| password session | token's request | refused: {m} |");
    drop(user);
}

/// Item 11: every command of the permission table, called through a token that lacks what the
/// command needs, is refused for that reason before anything runs; the objects a token may
/// see survive a token without `modify`.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn every_command_checks_the_tokens_permissions() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let a = Srv::start(dir.path(), "a", &[]);
    let mut owner = a.login(user.name(), &pw);
    let fake_id = "0123456789abcdef0123456789abcdef";
    let mut checked = 0;
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    for &perm in &all {
        let others: Vec<&str> = all.iter().copied().filter(|p| *p != perm).collect();
        let token = new_token(&mut owner, json!({ "permissions": others }));
        let mut c = token_login(&a, &token);
        for meta in COMMANDS {
            let cmd = meta.name;
            if Some(meta.access) != Permission::from_name(perm).map(Access::Permission) {
                continue;
            }
            let params = json!({
                "destinationId": fake_id, "manifestId": fake_id, "transferId": fake_id,
                "token": fake_id, "sessionId": "0123456789abcdef", "sendRateMax": 1,
                "destinationAddress": "127.0.0.1", "fileMappings": [["/etc/hostname", "/x"]],
                "receiverPort": 9, "address": "127.0.0.1", "port": 9,
            });
            let m = refused(c.call(cmd, params));
            println!("| token without {perm} | {cmd} | refused: {m} |");
            assert!(
                m.contains(&format!("{perm:?} permission")),
                "{cmd} without {perm}: {m}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} commands checked");
    // Password-only and superuser commands refuse every token.
    let token = new_token(&mut owner, json!({}));
    let mut c = token_login(&a, &token);
    for meta in COMMANDS {
        if matches!(meta.access, Access::Password | Access::Superuser) {
            let cmd = meta.name;
            let m = refused(c.call(cmd, json!({})));
            println!("| full token | {cmd} | refused: {m} |");
        }
    }

    // With real objects: a token that may upload but not modify makes a destination, a
    // manifest and a transfer, and cannot delete any of them.
    let up = new_token(&mut owner, json!({ "permissions": ["upload"] }));
    let mut u = token_login(&a, &up);
    let b = Srv::start(dir.path(), "b", &[]);
    let did = destination(&mut u, &b, user.name(), &pw, json!({"sendRateMax": 100}));
    let src = dir.path().join("src");
    write(&src.join("f.bin"), &data(4 << 20, 2));
    std::os::unix::fs::chown(&src, Some(user.uid()), Some(user.gid())).unwrap();
    let mid = manifest(
        &mut u,
        json!({ src.join("f.bin").to_str().unwrap(): "/f.bin" }),
    )
    .unwrap();
    let tid = transfer(&mut u, &did, &mid, None);
    u.call("send.suspendTransfer", json!({ "transferId": tid }))
        .expect("upload controls its own transfer");
    for (cmd, p) in [
        ("send.deleteTransfer", json!({ "transferId": tid })),
        ("send.deleteManifest", json!({ "manifestId": mid })),
        ("send.deleteDestination", json!({ "destinationId": did })),
        ("deleteAPIToken", json!({ "token": up })),
    ] {
        let m = refused(u.call(cmd, p));
        assert!(m.contains("\"modify\" permission"), "{cmd}: {m}");
    }
    u.call("send.getTransfer", json!({ "transferId": tid }))
        .expect("the transfer is still there");
    u.call("send.getManifest", json!({ "manifestId": mid }))
        .expect("the manifest is still there");
    u.call("send.getDestination", json!({ "destinationId": did }))
        .expect("the destination is still there");
    u.call("send.cancelTransfer", json!({ "transferId": tid }))
        .expect("cancel");
    drop(user);
}

/// Item 11: a narrowed token's event log shows what was done through that token and the
/// server's own events, not the rest of its user's.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_tokens_event_log_shows_only_its_own_objects() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let a = Srv::start(dir.path(), "a", &[]);
    let b = Srv::start(dir.path(), "b", &[]);
    let mut owner = a.login(user.name(), &pw);
    let by_owner = destination(&mut owner, &b, user.name(), &pw, json!({"sendRateMax": 1}));
    let narrowed = new_token(&mut owner, json!({ "permissions": ["upload"] }));
    let mut n = token_login(&a, &narrowed);
    let by_token = destination(&mut n, &b, user.name(), &pw, json!({"sendRateMax": 2}));
    let ids = |c: &mut ApiClient| -> Vec<String> {
        c.call("getEventLog", json!({ "event": "destinationCreated" }))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["destinationId"].as_str().map(str::to_owned))
            .collect()
    };
    let seen_by_token = ids(&mut n);
    let seen_by_owner = ids(&mut owner);
    println!("token sees {seen_by_token:?}; owner sees {seen_by_owner:?}");
    assert!(seen_by_token.contains(&by_token));
    assert!(
        !seen_by_token.contains(&by_owner),
        "a narrowed token sees its user's other events"
    );
    assert!(seen_by_owner.contains(&by_owner) && seen_by_owner.contains(&by_token));
    drop(user);
}

/// Item 8: another user (with the same rights on the receiving server) calls
/// `recv.startTransfer` with a running receive's `transferId`: refused, and the first
/// user's receive goes on, still theirs; the owner itself may retry (a sender reconnecting).
#[test]
#[ignore = "needs root: system users (PAM)"]
fn another_user_cannot_take_over_a_receive_by_its_transfer_id() {
    if !can_run() {
        return;
    }
    let (u, upw) = user();
    let (v, vpw) = user();
    let dir = scratch();
    let b = Srv::start(
        dir.path(),
        "b",
        &["--sandbox-dir", &format!("{}/sb/%u", dir.path().display())],
    );
    let id = "00112233445566778899aabbccddeeff";
    let start = |c: &mut ApiClient, session: &str| {
        c.call(
            "recv.startTransfer",
            json!({"transferId": id, "sessionId": session, "destinationPath": "/in"}),
        )
    };
    let mut cu = b.tls_client();
    cu.call("auth", json!({"userName": u.name(), "password": upw}))
        .unwrap();
    start(&mut cu, "0123456789abcdef").expect("u receives");
    let mut cv = b.tls_client();
    cv.call("auth", json!({"userName": v.name(), "password": vpw}))
        .unwrap();
    let m = refused(start(&mut cv, "fedcba9876543210"));
    println!("| another user | recv.startTransfer with u's id | refused: {m} |");
    assert!(m.contains("in use"), "{m}");
    let list = cu.call("recv.getTransfers", json!({})).unwrap();
    let rec = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["transferId"] == id)
        .unwrap_or_else(|| panic!("u's receive is gone: {list}"));
    assert_eq!(rec["owner"], u.name(), "{rec}");
    assert_ne!(rec["status"], "cancelled", "{rec}");
    assert!(
        !dir.path().join("sb").join(v.name()).join("in").exists(),
        "v's sandbox was prepared for u's transfer"
    );
    // v sees nothing of it.
    let seen = cv.call("recv.getTransfers", json!({})).unwrap();
    assert!(!seen.to_string().contains(id), "{seen}");
    // u retrying (a sender reconnecting) is still allowed.
    let mut cu2 = b.tls_client();
    cu2.call("auth", json!({"userName": u.name(), "password": upw}))
        .unwrap();
    start(&mut cu2, "0123456789abcde0").expect("the owner retries");
    drop((u, v));
}

/// Item 13: a failure inside the server reaches the client as what failed and a reference to
/// the server log, never as the system's error text with the server's own paths.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn internal_errors_reach_the_client_as_a_log_reference() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let a = Srv::start(dir.path(), "a", &["--superuser", user.name()]);
    // The authorized-clients file cannot be replaced: a directory stands in its place.
    std::fs::create_dir(a.state.join("authorized_clients.json")).unwrap();
    let mut c = a.login(user.name(), &pw);
    c.call("superuser", json!({})).unwrap();
    let m = refused(c.call(
        "recv.addAuthorizedClient",
        json!({ "clientPublicKey": "ab".repeat(32) }),
    ));
    println!("client sees: {m}");
    let state = a.state.display().to_string();
    assert!(
        !m.contains(&state),
        "the client sees the server's paths: {m}"
    );
    assert!(!m.to_lowercase().contains("directory"), "{m}");
    let reference = m
        .split("reference ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no reference in {m:?}"));
    let log = wait_file(&a.log, |t| t.contains(reference));
    assert!(
        log.lines()
            .any(|l| l.contains(reference) && l.contains(&state)),
        "the log has the detail under {reference}"
    );
    drop(user);
}

/// Objects record the API token they were made through (`ownerToken`), and are shown to more
/// than that token's holder: to a download link for a manifest made through the token, to the
/// user's password sessions and to superusers. None of them gets the token itself: before, the
/// link holder read a full API token of the user (every permission of it) from
/// `send.getManifest`.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn no_answer_shows_the_token_an_object_was_made_through() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let src = dir.path().join("src");
    write(&src.join("f.bin"), &data(1000, 2));
    std::os::unix::fs::chown(&src, Some(user.uid()), Some(user.gid())).unwrap();
    let a = Srv::start(dir.path(), "a", &[]);
    let mut owner = a.login(user.name(), &pw);
    let full = new_token(
        &mut owner,
        json!({"permissions": ["upload", "download", "modify", "share"], "description": "full"}),
    );
    let mut t = token_login(&a, &full);
    let mid = manifest(
        &mut t,
        json!({ src.join("f.bin").to_str().unwrap(): "/f.bin" }),
    )
    .unwrap();
    let link = t
        .call("send.createSharedToken", json!({ "manifestId": mid }))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut l = a.tls_client();
    l.call("authToken", json!({ "token": link }))
        .expect("link login");
    let seen = [
        (
            "link: send.getManifest",
            l.call("send.getManifest", json!({ "manifestId": mid })),
        ),
        (
            "owner: send.getManifests",
            owner.call("send.getManifests", json!({})),
        ),
        (
            "owner: send.getSharedTokens",
            owner.call("send.getSharedTokens", json!({})),
        ),
        ("owner: getEventLog", owner.call("getEventLog", json!({}))),
        (
            "token: send.getManifest",
            t.call("send.getManifest", json!({ "manifestId": mid })),
        ),
    ];
    for (who, answer) in seen {
        let text = answer.expect(who).to_string();
        assert!(!text.contains(&full), "{who} shows the full token: {text}");
        println!("| {who} | ownerToken masked |");
    }
    // The masked form still tells the objects of one token from another's.
    let m = t
        .call("send.getManifest", json!({ "manifestId": mid }))
        .unwrap();
    assert!(
        m["ownerToken"]
            .as_str()
            .is_some_and(|s| full.starts_with(s.trim_end_matches('…'))),
        "{m}"
    );
    drop(user);
}
