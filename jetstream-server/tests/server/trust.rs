//! Authorized clients: a receiver that allows only listed sending servers (by the key they
//! present as TLS client certificate), the list surviving a restart, and a destination pinning
//! the receiver's key up front.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use jetstream_client::client::ApiClient;
use jetstream_client::tls::fingerprint_of;
use serde_json::{json, Value};

use super::util::*;

const T: Duration = Duration::from_secs(60);

/// Calls `name` (an `*Async` command) and fetches its outcome with `getRequestResult`.
fn call_async(c: &mut ApiClient, name: &str, params: Value) -> Result<Value, String> {
    let queued = c.call(name, params).map_err(|e| e.to_string())?;
    let id = queued["requestId"].clone();
    assert!(id.is_u64(), "{name}: {queued}");
    c.call("getRequestResult", json!({ "requestId": id }))
        .map_err(|e| e.to_string())
}

fn public_key(s: &Srv) -> String {
    let info = s.client().call("getServerInfo", json!({})).unwrap();
    info["publicKey"].as_str().unwrap().to_owned()
}

fn only_authorized(b: &Srv) -> Value {
    let info = b.client().call("getServerInfo", json!({})).unwrap();
    info["receiver"]["onlyAuthorizedClientsAllowed"].clone()
}

/// Sends the manifest `m` through destination `d` into `<path>`; returns the final view.
fn send(c: &mut ApiClient, d: &str, m: &str, path: &str) -> Value {
    let t = transfer(c, d, m, Some(path));
    wait_end(c, &t, T)
}

fn admin(b: &Srv, user: &str, pw: &str) -> ApiClient {
    let mut c = b.login(user, pw);
    c.call("superuser", json!({})).expect("superuser");
    c
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn only_authorized_sending_servers_may_start_transfers() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let storage = root.join("storage");
    let a = Srv::start(root, "a", &[]);
    let c = Srv::start(root, "c", &[]);
    let mut b = Srv::start(
        root,
        "b",
        &[
            "--sandbox-dir",
            storage.to_str().unwrap(),
            "--superuser",
            u.name(),
        ],
    );
    let src = root.join("src/f.txt");
    write(&src, b"only from friends");
    let (key_a, key_c) = (public_key(&a), public_key(&c));
    assert_ne!(key_a, key_c);

    // Not without superuser rights (a plain log-in is not enough).
    let mut plain = b.login(u.name(), &pw);
    for (name, params) in [
        (
            "recv.addAuthorizedClientAsync",
            json!({ "clientPublicKey": key_a }),
        ),
        (
            "recv.allowOnlyAuthorizedClientsAsync",
            json!({ "onlyAuthorizedClientsAllowed": true }),
        ),
    ] {
        let e = call_async(&mut plain, name, params).unwrap_err();
        assert!(e.contains("call superuser first"), "{name}: {e}");
    }
    let e = plain
        .call(
            "recv.removeAuthorizedClient",
            json!({ "clientPublicKey": key_a }),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("call superuser first"), "{e}");
    assert_eq!(only_authorized(&b), false);

    // A's key is listed (given as a dict, uppercase), then only listed clients are allowed.
    let mut adm = admin(&b, u.name(), &pw);
    let added = call_async(
        &mut adm,
        "recv.addAuthorizedClientAsync",
        json!({ "clientPublicKey": { "clientPublicKey": key_a.to_uppercase() } }),
    )
    .unwrap();
    assert_eq!(added["clientPublicKey"], key_a.as_str(), "{added}");
    let e = call_async(
        &mut adm,
        "recv.addAuthorizedClientAsync",
        json!({ "clientPublicKey": "not hex" }),
    )
    .unwrap_err();
    assert!(e.contains("clientPublicKey"), "{e}");
    let on = call_async(
        &mut adm,
        "recv.allowOnlyAuthorizedClientsAsync",
        json!({ "onlyAuthorizedClientsAllowed": true }),
    )
    .unwrap();
    assert_eq!(on["onlyAuthorizedClientsAllowed"], true, "{on}");
    assert_eq!(only_authorized(&b), true);
    let file = b.state.join("authorized_clients.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let events = adm
        .call(
            "getEventLog",
            json!({ "events": ["authorizedClientAdded"] }),
        )
        .unwrap();
    assert_eq!(events[0]["clientPublicKey"], key_a.as_str(), "{events}");

    // A is accepted; C is refused whatever its (valid) credentials, and nothing is written.
    let mut ca = a.login(u.name(), &pw);
    let da = destination(&mut ca, &b, u.name(), &pw, json!({}));
    let ma = manifest(&mut ca, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    let end = send(&mut ca, &da, &ma, "/a1");
    assert_eq!(end["status"], "complete", "{end}");
    assert_eq!(
        std::fs::read(storage.join("a1/f.txt")).unwrap(),
        b"only from friends"
    );
    let mut cc = c.login(u.name(), &pw);
    let dc = destination(&mut cc, &b, u.name(), &pw, json!({}));
    let mc = manifest(&mut cc, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    let refused = |end: &Value| {
        let msg = end["errorMessage"].as_str().unwrap_or("");
        end["status"] == "error"
            && msg.contains("authorized clients")
            && msg.contains("addAuthorizedClientAsync")
    };
    let end = send(&mut cc, &dc, &mc, "/c1");
    assert!(refused(&end), "{end}");
    assert!(
        end["errorMessage"]
            .as_str()
            .unwrap()
            .contains(&fingerprint_of(&key_c)),
        "{end}"
    );
    assert!(!storage.join("c1").exists());

    // The list and the switch survive a restart of B.
    b.signal(15);
    b.restart();
    assert_eq!(only_authorized(&b), true);
    let end = send(&mut cc, &dc, &mc, "/c2");
    assert!(refused(&end), "{end}");
    assert!(!storage.join("c2").exists());
    let end = send(&mut ca, &da, &ma, "/a2");
    assert_eq!(end["status"], "complete", "{end}");
    assert!(storage.join("a2/f.txt").exists());

    // Removing A's key refuses A.
    let mut adm = admin(&b, u.name(), &pw);
    call_async(
        &mut adm,
        "recv.removeAuthorizedClientAsync",
        json!({ "clientPublicKey": key_a }),
    )
    .unwrap();
    let e = call_async(
        &mut adm,
        "recv.removeAuthorizedClientAsync",
        json!({ "clientPublicKey": key_a }),
    )
    .unwrap_err();
    assert!(e.contains("not an authorized client"), "{e}");
    let end = send(&mut ca, &da, &ma, "/a3");
    assert!(refused(&end), "{end}");
    assert!(!storage.join("a3").exists());
    let events = adm
        .call(
            "getEventLog",
            json!({ "events": ["authorizedClientRemoved"] }),
        )
        .unwrap();
    assert_eq!(events[0]["clientPublicKey"], key_a.as_str(), "{events}");

    // Turned off, anyone with credentials may send again.
    call_async(
        &mut adm,
        "recv.allowOnlyAuthorizedClientsAsync",
        json!({ "onlyAuthorizedClientsAllowed": false }),
    )
    .unwrap();
    assert_eq!(only_authorized(&b), false);
    let end = send(&mut cc, &dc, &mc, "/c3");
    assert_eq!(end["status"], "complete", "{end}");
    assert!(storage.join("c3/f.txt").exists());
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_destination_pinned_to_another_key_refuses_the_receiver() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        a,
        b,
        storage,
    } = Pair::new(false);
    let src = dir.path().join("src/f.txt");
    write(&src, b"not for impostors");
    let mut c = a.login(u.name(), &pw);
    // A's own key is not B's.
    let wrong = public_key(&a);
    let d = destination(
        &mut c,
        &b,
        u.name(),
        &pw,
        json!({ "permittedDestinationPublicKey": wrong }),
    );
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    let end = send(&mut c, &d, &m, "/pinned");
    assert_eq!(end["status"], "error", "{end}");
    assert!(
        end["errorMessage"]
            .as_str()
            .unwrap()
            .contains("HAS CHANGED"),
        "{end}"
    );
    assert!(!storage.join("pinned").exists());
}
