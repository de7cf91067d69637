//! The control API: framing, errors, authentication, tokens, visibility, `jetstream api`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use jetstream_client::client::ClientError;
use serde_json::{json, Value};

use super::util::*;

fn api_error(r: Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Api(m)) => m.message,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn bad_requests_get_json_errors_and_the_connection_stays_usable() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let tcp = TcpStream::connect(("127.0.0.1", s.api)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    let mut ask = |line: &str| -> Value {
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        let mut resp = String::new();
        r.read_line(&mut resp).unwrap();
        serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{resp:?}: {e}"))
    };
    let v = ask("{not json");
    assert_eq!(v["status"], "error");
    assert!(
        v["message"].as_str().unwrap().contains("malformed JSON"),
        "{v}"
    );
    let v = ask(r#"{"parameters": {}}"#);
    assert_eq!(v["status"], "error");
    let v = ask(r#"{"request": "noSuchCommand", "id": 7}"#);
    assert_eq!(v["status"], "error");
    assert_eq!(v["id"], 7);
    assert!(
        v["message"].as_str().unwrap().contains("unknown command"),
        "{v}"
    );
    let v = ask(r#"{"request": "send.getTransfers"}"#);
    assert!(
        v["message"].as_str().unwrap().contains("not authenticated"),
        "{v}"
    );
    let v = ask(r#"{"request": "auth", "parameters": {"userName": 5, "password": "x"}}"#);
    assert!(
        v["message"].as_str().unwrap().contains("must be a string"),
        "{v}"
    );
    let v = ask(r#"{"request": "auth", "parameters": {"userName": "root"}}"#);
    assert_eq!(v["message"], "missing parameter \"password\"");
    let v = ask(r#"{"request": "echo", "parameters": {"text": "still here"}, "id": "x"}"#);
    assert_eq!(v["status"], "success");
    assert_eq!(v["result"]["text"], "still here");
    assert_eq!(v["id"], "x");
    let v = ask(r#"{"request": "getServerInfo"}"#);
    assert_eq!(v["status"], "success");
    let info = &v["result"];
    for key in [
        "allowRemoteControl",
        "apiControlPort",
        "APITokensAvailable",
        "apiVersion",
        "authRequired",
        "bandwidthLimits",
        "certificateValidation",
        "encryptionAvailable",
        "eventLogAvailable",
        "hostName",
        "license",
        "minCipher",
        "multiplexAvailable",
        "publicKey",
        "receiver",
        "revision",
        "serverExternalAddress",
        "serverId",
        "serverName",
        "serverPlatform",
        "serverTime",
        "serverUid",
        "sharedTokensAvailable",
        "user",
        "version",
    ] {
        assert!(info.get(key).is_some(), "getServerInfo lacks {key}");
    }
    assert!(
        info.get("configuration").is_none(),
        "configuration is for superusers only"
    );
    assert_eq!(info["user"]["authed"], false);
    assert_eq!(info["user"]["sandboxed"], Value::Null);
    assert_eq!(info["receiver"]["receiverPort"], s.udp);
    assert_eq!(info["serverId"].as_str().unwrap().len(), 32);
}

/// Issue 17, item 1: every request is decoded into its command's parameters before it runs.
/// An unknown parameter and a wrongly typed one get a JSON error naming the parameter (before
/// and after login, as a command and as its `Async` form), an unknown command is refused, and
/// an async-only command called without `Async` is told how to call it. Nothing runs: the
/// refused `createDestination` leaves no destination.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn unknown_and_ill_typed_parameters_and_unknown_commands_are_named() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let tcp = TcpStream::connect(("127.0.0.1", s.api)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    let mut ask = |line: &str| -> (String, String) {
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        let mut resp = String::new();
        r.read_line(&mut resp).unwrap();
        let v: Value = serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{resp:?}: {e}"));
        let status = v["status"].as_str().unwrap_or_default().to_owned();
        (status, v["message"].as_str().unwrap_or_default().to_owned())
    };
    let (status, m) = ask(r#"{"request": "echo", "parameters": {"txt": "hi"}}"#);
    assert_eq!(status, "error");
    assert_eq!(m, "unknown parameter \"txt\" of echo: it takes text");
    let (status, m) = ask(r#"{"request": "getServerInfo", "parameters": {"verbose": true}}"#);
    assert_eq!(
        (status.as_str(), m.as_str()),
        (
            "error",
            "unknown parameter \"verbose\" of getServerInfo: it takes none"
        )
    );
    let (status, m) =
        ask(r#"{"request": "auth", "parameters": {"userName": ["root"], "password": "x"}}"#);
    assert_eq!(status, "error");
    assert_eq!(m, "parameter \"userName\" must be a string, not an array");
    let (status, m) = ask(r#"{"request": "send.noSuchCommand", "parameters": {}}"#);
    assert_eq!(status, "error");
    assert_eq!(m, "unknown command \"send.noSuchCommand\"");
    let (status, m) = ask(r#"{"request": "noSuchCommandAsync"}"#);
    assert_eq!(
        (status.as_str(), m.as_str()),
        ("error", "unknown command \"noSuchCommandAsync\"")
    );

    let (user, pw) = user();
    let mut c = s.login(user.name(), &pw);
    let id = "0123456789abcdef0123456789abcdef";
    let e = api_error(c.call(
        "send.createDestination",
        json!({"destinationAddress": "127.0.0.1", "destinationPortt": 9}),
    ));
    assert!(
        e.starts_with("unknown parameter \"destinationPortt\" of send.createDestination: it takes destinationAddress, destinationPort,"),
        "{e}"
    );
    let e = api_error(c.call(
        "send.createTransferAsync",
        json!({"destinationId": id, "manifestId": id, "priority": "high"}),
    ));
    assert_eq!(e, "parameter \"priority\" must be an integer, not \"high\"");
    let e = api_error(c.call("send.getTransfer", json!({"transferId": "12"})));
    assert_eq!(
        e,
        "parameter \"transferId\" must be an id of 32 hex digits, not \"12\""
    );
    let e = api_error(c.call("send.getTransfer", json!({})));
    assert_eq!(e, "missing parameter \"transferId\"");
    let e = api_error(c.call("sendDiscoverPacket", json!({"address": "127.0.0.1"})));
    assert!(e.contains("call sendDiscoverPacketAsync"), "{e}");
    assert_eq!(
        c.call("send.getDestinations", json!({})).unwrap(),
        json!([]),
        "the refused createDestination made nothing"
    );
    // The alternative forms the server has always taken still work: an id in capitals, a
    // number as a string, `null` as absent.
    let e = api_error(c.call("send.getTransfer", json!({"transferId": id.to_uppercase()})));
    assert_eq!(e, format!("no transfer {id}"));
    c.call("sleep", json!({"ms": "1", "milliseconds": null}))
        .unwrap();
    drop(user);
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn passwords_tokens_superusers_and_visibility() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (v, vpw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &["--superuser", v.name()]);
    let mut anon = s.client();
    let e = api_error(anon.call("auth", json!({"userName": u.name(), "password": "wrong"})));
    assert!(e.contains("authentication failed"), "{e}");
    let e = api_error(anon.call(
        "auth",
        json!({"userName": "no-such-user-jst", "password": "x"}),
    ));
    assert!(e.contains("authentication failed"), "{e}");
    assert!(
        s.log_text().contains("failed login"),
        "failed logins are logged"
    );

    let mut cu = s.login(u.name(), &pw);
    let info = cu.call("getServerInfo", json!({})).unwrap();
    assert_eq!(info["user"]["userName"], u.name());
    assert_eq!(info["user"]["sandboxed"], false);
    let e = api_error(cu.call("superuser", json!({})));
    assert!(e.contains("is not a superuser"), "{e}");
    let d = cu
        .call(
            "send.createDestination",
            json!({"destinationAddress": "192.0.2.1", "sendRateMax": 1500000}),
        )
        .unwrap();
    let did = d["destinationId"].as_str().unwrap().to_owned();
    assert_eq!(did.len(), 32);
    // Idempotent.
    let again = cu
        .call(
            "send.createDestination",
            json!({"destinationAddress": "192.0.2.1", "sendRateMax": 1500000}),
        )
        .unwrap();
    assert_eq!(again["destinationId"], did.as_str());

    // Another user sees nothing of it; a superuser (after `superuser`) does.
    let mut cv = s.login(v.name(), &vpw);
    assert_eq!(
        cv.call("send.getDestinations", json!({})).unwrap(),
        json!([])
    );
    let e = api_error(cv.call("send.getDestination", json!({"destinationId": did})));
    assert!(e.contains("no destination"), "{e}");
    cv.call("superuser", json!({})).unwrap();
    assert_eq!(
        cv.call("send.getDestinations", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(cv
        .call("getServerInfo", json!({}))
        .unwrap()
        .get("configuration")
        .is_some());

    // API tokens: password, impersonation, deletion stops them at once.
    let tok = cu
        .call(
            "createAPIToken",
            json!({"password": "tpw", "description": "ci"}),
        )
        .unwrap();
    let token = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert_eq!(tok["passwordRequired"], true);
    let mut ct = s.client();
    let e = api_error(ct.call("authToken", json!({"token": token, "password": "nope"})));
    assert!(e.contains("authentication failed"), "{e}");
    let e = api_error(ct.call(
        "authToken",
        json!({"token": "0".repeat(32), "password": "tpw"}),
    ));
    assert!(e.contains("authentication failed"), "{e}");
    ct.call("authToken", json!({"token": token, "password": "tpw"}))
        .unwrap();
    let info = ct.call("getServerInfo", json!({})).unwrap();
    assert_eq!(info["user"]["token"], token.as_str());
    assert_eq!(info["user"]["tokenSession"].as_str().unwrap().len(), 32);
    // The token's objects are its own; the owner's destination is not the token's.
    assert_eq!(
        ct.call("send.getDestinations", json!({})).unwrap(),
        json!([])
    );
    cu.call("deleteAPIToken", json!({"token": token})).unwrap();
    let mut ct2 = s.client();
    api_error(ct2.call("authToken", json!({"token": token, "password": "tpw"})));
    // Expired tokens do not work either.
    let tok = cu
        .call("createAPIToken", json!({"expirySeconds": 1}))
        .unwrap();
    let token = tok["token"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    api_error(s.client().call("authToken", json!({"token": token})));

    // Async requests.
    // `*Async` commands return a request; its result comes from getRequestResult.
    let r = cu.call("recv.getTransfersAsync", json!({})).unwrap();
    let id = r["requestId"].as_u64().unwrap();
    assert!(cu
        .call("getRequestResult", json!({"requestId": id}))
        .unwrap()
        .is_array());
    let r = cu.call("send.getTransfersAsync", json!({})).unwrap();
    let id = r["requestId"].as_u64().unwrap();
    let st = cu
        .call("getRequestStatus", json!({"requestId": id}))
        .unwrap();
    assert_eq!(st["processing"], false);
    assert!(cu
        .call("getRequestResult", json!({"requestId": id}))
        .unwrap()
        .is_array());
    api_error(cv.call("getRequestResult", json!({"requestId": id + 100})));
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn the_seeds_three_command_example_works_through_jetstream_api() {
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
    let root = dir.path();
    let src = root.join("source/my_file");
    write(&src, &data(12345, 9));
    let api = |args: &[&str]| -> (i32, Value, String) {
        let out = Command::new(bin())
            .arg("api")
            .args(["--api-control-port", &a.api.to_string(), "--user", u.name()])
            .args(args)
            .env("JETSTREAM_API_PASSWORD", &pw)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let v = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, d, err) = api(&[
        "createDestination",
        "--destinationAddress=127.0.0.1",
        "--sendRateMax=1500000",
        &format!("--destinationApiPort={}", b.api),
        "--userName",
        u.name(),
        "--password",
        &pw,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, m, err) = api(&[
        "createManifest",
        "--fileMappings",
        &format!("{}:/target/my_file", src.display()),
    ]);
    assert_eq!(code, 0, "{err}");
    let mid = m["manifestId"].as_str().unwrap();
    let mut c = a.login(u.name(), &pw);
    wait_manifest(&mut c, mid);
    let (code, t, err) = api(&[
        "createTransfer",
        "--destinationId",
        d["destinationId"].as_str().unwrap(),
        "--manifestId",
        mid,
        "--destinationPath",
        "/project",
    ]);
    assert_eq!(code, 0, "{err}");
    let end = wait_end(
        &mut c,
        t["transferId"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    assert_eq!(end["status"], "complete", "{end}");
    assert_eq!(
        std::fs::read(storage.join("project/target/my_file")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    // A failing command: non-zero exit, the server's message on stderr, nothing on stdout.
    let (code, v, err) = api(&["getTransfer", "--transferId", &"f".repeat(32)]);
    assert_eq!(code, 1);
    assert_eq!(v, Value::Null);
    assert!(err.contains("no transfer"), "{err}");
    // A wrong password is its own exit code.
    let out = Command::new(bin())
        .arg("api")
        .args([
            "--api-control-port",
            &a.api.to_string(),
            "--user",
            u.name(),
            "getTransfers",
        ])
        .env("JETSTREAM_API_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_manifest(c: &mut jetstream_client::client::ApiClient, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c
        .call("send.getManifest", json!({"manifestId": id}))
        .unwrap()["status"]
        == "pending"
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn objects_list_describe_and_delete_and_a_superuser_can_terminate() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let mut s = Srv::start(dir.path(), "s", &["--superuser", u.name()]);
    let src = dir.path().join("tree");
    write(&src.join("a.txt"), b"aaa");
    std::fs::create_dir_all(src.join("empty")).unwrap();
    let mut c = s.login(u.name(), &pw);
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/dst" })).unwrap();
    let files = c
        .call("send.getManifestFiles", json!({"manifestId": m}))
        .unwrap();
    let list = files["fileMappings"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{files}");
    assert_eq!(list[0]["destPath"], "/dst/a.txt");
    assert_eq!(list[0]["fileSize"], 3);
    assert_eq!(list[1]["destPath"], "/dst/empty");
    assert_eq!(list[1]["isEmptyDir"], true);
    assert!(list[0]["modificationTime"].as_i64().unwrap() > 1_600_000_000_000_000);
    let all = c.call("send.getManifests", json!({})).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["totalSize"], 3);
    c.call("send.deleteManifest", json!({"manifestId": m}))
        .unwrap();
    api_error(c.call("send.getManifest", json!({"manifestId": m})));
    let missing = manifest(&mut c, json!({"/no/such/file": "/x"})).unwrap_err();
    assert!(missing.contains("/no/such/file"), "{missing}");

    let d = c
        .call(
            "send.createDestination",
            json!({"destinationAddress": "192.0.2.7"}),
        )
        .unwrap();
    let did = d["destinationId"].as_str().unwrap();
    assert_eq!(d["encryptedConnectionState"], "disconnected");
    c.call("send.deleteDestination", json!({"destinationId": did}))
        .unwrap();
    assert_eq!(
        c.call("send.getDestinations", json!({})).unwrap(),
        json!([])
    );

    let t = c
        .call("createAPIToken", json!({"permissions": ["download"]}))
        .unwrap();
    let token = t["token"].as_str().unwrap();
    let one = c.call("getAPIToken", json!({"token": token})).unwrap();
    assert_eq!(one["permissions"], json!(["download"]));
    assert_eq!(one["passwordRequired"], false);
    assert_eq!(
        c.call("getAPITokens", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let e = api_error(c.call("createAPIToken", json!({"permissions": ["root"]})));
    assert!(e.contains("unknown permission"), "{e}");
    // A token without `upload` cannot start sends.
    let mut ct = s.client();
    ct.call("authToken", json!({"token": token})).unwrap();
    let e = api_error(ct.call("send.createManifest", json!({"fileMappings": {"/a": "/b"}})));
    assert!(e.contains("upload"), "{e}");

    let e = api_error(c.call("terminate", json!({})));
    assert!(e.contains("superuser"), "{e}");
    c.call("superuser", json!({})).unwrap();
    c.call("terminate", json!({})).unwrap();
    let status = s.wait();
    assert!(status.success(), "{status}");
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn token_guessing_is_throttled_and_connections_are_capped_per_source() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    // Six wrong tokens from one address (each answered after the 1 s failure delay; from the
    // fifth the back-off doubles past that delay): the seventh is refused without a check.
    for i in 0..6 {
        let e = api_error(
            s.client()
                .call("authToken", json!({"token": format!("{i:032x}")})),
        );
        assert!(e.contains("authentication failed"), "{e}");
    }
    let e = api_error(
        s.client()
            .call("authToken", json!({"token": "0".repeat(32)})),
    );
    assert!(e.contains("too many failed logins"), "{e}");
    assert!(
        s.log_text().contains("failed login"),
        "token failures are logged"
    );

    // One address cannot hold more than 128 connections; the next is closed at once.
    let held: Vec<TcpStream> = (0..128)
        .map(|_| TcpStream::connect(("127.0.0.1", s.api)).unwrap())
        .collect();
    // Each held connection is being served (its echo answers), so all slots are taken.
    for c in held.iter().take(2) {
        let mut w = c.try_clone().unwrap();
        w.write_all(b"{\"request\": \"echo\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(c.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("success"), "{line}");
    }
    let extra = TcpStream::connect(("127.0.0.1", s.api)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = extra.try_clone().unwrap();
    let _ = w.write_all(b"{\"request\": \"echo\"}\n");
    let mut line = String::new();
    let n = BufReader::new(extra).read_line(&mut line).unwrap_or(0);
    assert_eq!(
        n, 0,
        "the 129th connection is closed without an answer: {line}"
    );
    drop(held);
    // Slots come back when connections close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = s.client();
        if c.call("echo", json!({})).is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slots never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every refusal carries its kind (`errorCode`), so that a program reacts to it without
/// reading the message: an unknown command, bad parameters, no login, a wrong password or
/// token, a missing object, a token without the permission. A success carries none. The
/// typed client hands the kind over as `ClientError::Api(Refusal { kind, .. })`.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn refusals_carry_their_kind() {
    use jetstream_api::wire::Request;
    use jetstream_api::ErrorKind;
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let code = |c: &mut jetstream_client::client::ApiClient, name: &str, p: Value| {
        let r = c
            .call_raw(&Request {
                request: name.into(),
                parameters: p,
                id: None,
            })
            .expect("an answer");
        println!("| {name} | {} | {:?} |", r.status, r.error_code);
        (r.is_success(), r.error_code)
    };
    let mut anon = s.client();
    let cases = [
        ("nope", json!({}), ErrorKind::UnknownCommand),
        ("echo", json!({"txt": 1}), ErrorKind::BadParameters),
        ("send.getTransfers", json!({}), ErrorKind::NotAuthenticated),
        (
            "auth",
            json!({"userName": user.name(), "password": "wrong"}),
            ErrorKind::LoginFailed,
        ),
        (
            "authToken",
            json!({"token": "0".repeat(32)}),
            ErrorKind::LoginFailed,
        ),
    ];
    for (name, p, want) in cases {
        assert_eq!(code(&mut anon, name, p), (false, Some(want)), "{name}");
    }
    assert_eq!(code(&mut anon, "echo", json!({"text": 1})), (true, None));

    let mut c = s.login(user.name(), &pw);
    let missing = json!({"destinationId": "0".repeat(32)});
    assert_eq!(
        code(&mut c, "send.getDestination", missing.clone()),
        (false, Some(ErrorKind::NotFound))
    );
    assert_eq!(
        code(&mut c, "terminate", json!({})),
        (false, Some(ErrorKind::PermissionDenied))
    );
    let read_only = c
        .call(
            "createAPIToken",
            json!({"permissions": [], "description": "ro"}),
        )
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut t = s.client();
    t.call("authToken", json!({ "token": read_only })).unwrap();
    assert_eq!(
        code(&mut t, "send.deleteDestination", missing.clone()),
        (false, Some(ErrorKind::PermissionDenied))
    );
    // The typed client: the kind, not the text.
    match c.call("send.getDestination", missing) {
        Err(ClientError::Api(r)) => assert_eq!(r.kind, ErrorKind::NotFound, "{r}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(user);
}
