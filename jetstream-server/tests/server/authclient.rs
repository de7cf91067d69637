//! A receiver that trusts a sending server's key (issue 18, items 1 and 2): the seed's three
//! `jetstream api` lines move a file with a destination that carries no credentials, the
//! failure without that trust says what to configure, `authClient` refuses every caller it
//! should, and `destinationPort` alone reaches a receiver on another port.

use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jetstream_api::ErrorKind;
use jetstream_client::client::{ApiClient, ClientError, ConnectOptions, Trust};
use jetstream_client::tls::{spki_hex, ClientCert};
use serde_json::{json, Value};

use super::util::*;

const T: Duration = Duration::from_secs(60);

/// A receiver started its own way: API and data on `host:port` (one number for both, as the
/// documented server listens), state and log under `dir/<name>-*`.
fn receiver(dir: &Path, name: &str, host: &str, port: u16, extra: &[&str]) -> Proc {
    let child = Command::new(bin())
        .arg("server")
        .args(["--api-host", host, "--recv-host", host])
        .args(["--api-port", &port.to_string()])
        .args(["--recv-port", &port.to_string()])
        .arg("--persistent-state-dir")
        .arg(dir.join(format!("{name}-state")))
        .arg("--log")
        .arg(dir.join(format!("{name}.log")))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the receiver");
    let mut p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !TcpStream::connect((host, port)).is_ok_and(|c| c.local_addr().ok() != c.peer_addr().ok())
    {
        assert!(p.0.try_wait().unwrap().is_none(), "the receiver exited");
        assert!(
            Instant::now() < deadline,
            "the receiver did not open {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// A port free for both TCP and UDP on `host`.
fn free_both(host: &str) -> u16 {
    loop {
        let port = std::net::TcpListener::bind((host, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if UdpSocket::bind((host, port)).is_ok() {
            return port;
        }
    }
}

/// `jetstream api` against the server on `127.0.0.1:api` as `user`, the rest of the line
/// as the seed writes it.
fn api(api: u16, user: &str, pw: &str, line: &[&str]) -> Output {
    Command::new(bin())
        .args([
            "api",
            "--api-control-port",
            &api.to_string(),
            "--user",
            user,
        ])
        .args(line)
        .env("JETSTREAM_API_PASSWORD", pw)
        .env("JETSTREAM_KNOWN_HOSTS", "/nonexistent/known_hosts")
        .stdin(Stdio::null())
        .output()
        .expect("run jetstream api")
}

fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

/// The seed's three lines (001, "replicates the transfer above"), host and paths changed;
/// returns the transfer's final view.
fn seed_lines(a: &Srv, user: &str, pw: &str, receiver: &str, src: &Path) -> Value {
    let dest = json_of(&api(
        a.api,
        user,
        pw,
        &[
            "createDestination",
            &format!("--destinationAddress={receiver}"),
            "--sendRateMax=1500000",
        ],
    ));
    let mapping = format!("{}:/target/my_file", src.display());
    let manifest = json_of(&api(
        a.api,
        user,
        pw,
        &["createManifest", "--fileMappings", &mapping],
    ));
    let (d, m) = (
        dest["destinationId"].as_str().unwrap(),
        manifest["manifestId"].as_str().unwrap(),
    );
    let mut c = a.login(user, pw);
    // The manifest is scanned in the background: the transfer waits for it either way.
    let t = json_of(&api(
        a.api,
        user,
        pw,
        &[
            "createTransfer",
            "--destinationId",
            d,
            "--manifestId",
            m,
            "--destinationPath",
            "/project",
        ],
    ));
    wait_end(&mut c, t["transferId"].as_str().unwrap(), T)
}

fn public_key(s: &Srv) -> String {
    let info = s.client().call("getServerInfo", json!({})).unwrap();
    info["publicKey"].as_str().unwrap().to_owned()
}

/// A random loopback address other than 127.0.0.1, where the default port is surely free.
fn other_loopback() -> String {
    let n = std::process::id();
    format!(
        "127.{}.{}.{}",
        10 + n % 200,
        (n >> 8) % 250 + 1,
        (n >> 16) % 250 + 2
    )
}

#[test]
#[ignore = "needs root: system users (PAM), servers that write as them"]
fn the_seed_api_lines_move_a_file_to_a_receiver_that_trusts_the_sender() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let (admin, admin_pw) = user();
    let dir = scratch();
    let root = dir.path();
    let storage = root.join("storage");
    let src = root.join("source/my_file");
    let bytes = data(300_000, 18);
    write(&src, &bytes);
    let a = Srv::start(root, "a", &[]);
    // The receiver on the default ports, sandboxed, on a loopback address of its own.
    let host = other_loopback();
    let _b = receiver(
        root,
        "b",
        &host,
        8886,
        &[
            "--sandbox-dir",
            storage.to_str().unwrap(),
            "--superuser",
            admin.name(),
        ],
    );
    let key = public_key(&a);

    // Without the receiver's trust: an error saying what to do, on which side, with the key.
    let end = seed_lines(&a, u.name(), &pw, &host, &src);
    assert_eq!(end["status"], "error", "{end}");
    let msg = end["errorMessage"].as_str().unwrap();
    for part in [
        &format!("receiving server {host}:8886 does not trust this server's key"),
        "destination has no credentials",
        &format!("addAuthorizedClientAsync --clientPublicKey {key}"),
        "createDestination",
    ] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }
    assert!(!storage.join("project/target/my_file").exists());

    // The receiver's superuser authorizes the sender's key, with `jetstream api` as documented.
    let o = Command::new(bin())
        .args([
            "api",
            "--host",
            &host,
            "--user",
            admin.name(),
            "--superuser",
        ])
        .args(["addAuthorizedClientAsync", "--clientPublicKey", &key])
        .env("JETSTREAM_API_PASSWORD", &admin_pw)
        .env("JETSTREAM_KNOWN_HOSTS", "/nonexistent/known_hosts")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let added = json_of(&o);
    assert_eq!(added["clientPublicKey"], key.as_str(), "{added}");

    let end = seed_lines(&a, u.name(), &pw, &host, &src);
    assert_eq!(end["status"], "complete", "{end}");
    let landed = storage.join("project/target/my_file");
    assert_eq!(std::fs::read(&landed).unwrap(), bytes);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&landed).unwrap().uid(),
        u.uid(),
        "written as the same-named user"
    );
}

/// A TLS connection to `s` presenting a fresh certificate; returns it and its key.
fn with_cert(s: &Srv) -> (ApiClient, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["sender".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().clone();
    let public = spki_hex(&der).unwrap();
    let identity = ClientCert::new(
        vec![der],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    );
    (connect_as(s, Some(identity)), public)
}

fn connect_as(s: &Srv, identity: Option<ClientCert>) -> ApiClient {
    let opts = ConnectOptions {
        trust: Trust::Pinned(None),
        timeout: T,
        force_tls: true,
        client_identity: identity,
    };
    ApiClient::connect("127.0.0.1", s.api, &opts).expect("TLS connect")
}

fn auth_client(c: &mut ApiClient, user: &str) -> Result<Value, (ErrorKind, String)> {
    c.call("authClient", json!({ "userName": user }))
        .map_err(|e| match e {
            ClientError::Api(r) => (r.kind, r.message),
            e => panic!("{e}"),
        })
}

fn who(c: &mut ApiClient) -> Value {
    c.call("getServerInfo", json!({})).unwrap()["user"].clone()
}

fn authorize(adm: &mut ApiClient, key: &str, user: Option<&str>) {
    let mut p = json!({ "clientPublicKey": key });
    if let Some(u) = user {
        p["userName"] = json!(u);
    }
    let q = adm.call("recv.addAuthorizedClientAsync", p).unwrap();
    adm.call("getRequestResult", q).expect("authorized");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn auth_client_refuses_strangers_and_never_escalates() {
    if !can_run() {
        return;
    }
    let (admin, pw) = user();
    let (plain_user, plain_pw) = user();
    let (named, _) = user();
    let dir = scratch();
    let b = Srv::start(dir.path(), "b", &["--superuser", admin.name()]);
    let mut adm = b.login(admin.name(), &pw);
    adm.call("superuser", json!({})).unwrap();
    let (mut same, same_key) = with_cert(&b);
    let (mut pinned, pinned_key) = with_cert(&b);
    let (mut stranger, _) = with_cert(&b);
    authorize(&mut adm, &same_key, None);
    authorize(&mut adm, &pinned_key, Some(named.name()));

    // A key not on the list, no certificate at all, a plain loopback connection: refused.
    let (kind, m) = auth_client(&mut stranger, plain_user.name()).unwrap_err();
    assert_eq!(kind, ErrorKind::LoginFailed, "{m}");
    assert!(m.contains("not an authorized client"), "{m}");
    assert_eq!(who(&mut stranger)["authed"], false);
    let mut no_cert = connect_as(&b, None);
    let (kind, m) = auth_client(&mut no_cert, plain_user.name()).unwrap_err();
    assert_eq!(kind, ErrorKind::LoginFailed, "{m}");
    assert!(m.contains("no client certificate"), "{m}");
    let (kind, _) = auth_client(&mut b.client(), plain_user.name()).unwrap_err();
    assert_eq!(kind, ErrorKind::LoginFailed);

    // By same name: never root, a superuser, or a user who does not exist here.
    for user in ["root", admin.name(), "jstest_nobody_here"] {
        let (kind, m) = auth_client(&mut same, user).unwrap_err();
        assert_eq!(kind, ErrorKind::PermissionDenied, "{user}: {m}");
        assert_eq!(who(&mut same)["authed"], false);
    }
    auth_client(&mut same, plain_user.name()).expect("same-named user");
    let me = who(&mut same);
    assert_eq!(me["userName"], plain_user.name(), "{me}");
    assert_eq!(me["superuser"], false, "{me}");
    // ... and the session cannot raise itself nor mint a token, nor touch the user's files: a
    // server trusted to deliver as a user may not read, send or list what the user has.
    for (name, params) in [
        ("superuser", json!({})),
        ("createAPIToken", json!({})),
        (
            "send.createManifest",
            json!({"fileMappings": {"/etc/hostname": "/x"}}),
        ),
        ("send.getTransfers", json!({})),
        (
            "send.createDestination",
            json!({"destinationAddress": "127.0.0.1"}),
        ),
        ("lsAsync", json!({"path": "/"})),
    ] {
        let e = same.call(name, params).unwrap_err();
        let ClientError::Api(r) = e else { panic!() };
        assert_eq!(r.kind, ErrorKind::PermissionDenied, "{name}: {}", r.message);
    }

    // A key authorized for a user acts as that user, whatever name it asks for.
    for asked in [plain_user.name(), "root", admin.name()] {
        auth_client(&mut pinned, asked).expect("the named user");
        assert_eq!(who(&mut pinned)["userName"], named.name());
    }

    // A download link's session cannot use it, even over a connection with an authorized key.
    let mut owner = b.login(plain_user.name(), &plain_pw);
    let f = dir.path().join("shared.txt");
    write(&f, b"x");
    let m = manifest(&mut owner, json!({ f.to_str().unwrap(): "/shared.txt" })).unwrap();
    let link = owner
        .call("send.createSharedToken", json!({ "manifestId": m }))
        .unwrap();
    let (mut via_link, via_link_key) = with_cert(&b);
    authorize(&mut adm, &via_link_key, None);
    via_link
        .call("authToken", json!({ "token": link["token"] }))
        .expect("the link logs in");
    let e = via_link
        .call("authClient", json!({ "userName": plain_user.name() }))
        .unwrap_err();
    let ClientError::Api(r) = e else { panic!() };
    assert_eq!(r.kind, ErrorKind::PermissionDenied, "{}", r.message);
    // Still the link's session, nothing more.
    let e = via_link
        .call("send.getDestinations", json!({}))
        .unwrap_err();
    let ClientError::Api(r) = e else { panic!() };
    assert_eq!(r.kind, ErrorKind::PermissionDenied, "{}", r.message);

    // The log-in throttle counts failures by address: then even an authorized key waits.
    for _ in 0..10 {
        let _ = auth_client(&mut stranger, plain_user.name());
    }
    let (kind, m) = auth_client(&mut same, plain_user.name()).unwrap_err();
    assert_eq!(kind, ErrorKind::LoginThrottled, "{m}");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn destination_port_alone_reaches_a_receiver_on_another_port() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let storage = root.join("storage");
    let a = Srv::start(root, "a", &[]);
    let port = free_both("127.0.0.1");
    assert_ne!(port, 8886);
    let _b = receiver(
        root,
        "b",
        "127.0.0.1",
        port,
        &["--sandbox-dir", storage.to_str().unwrap()],
    );
    let src = root.join("src/f");
    write(&src, b"one port number");
    let mut c = a.login(u.name(), &pw);
    let d = c
        .call(
            "send.createDestination",
            json!({ "destinationAddress": "127.0.0.1", "destinationPort": port,
                    "userName": u.name(), "password": pw }),
        )
        .unwrap();
    assert_eq!(d["destinationApiPort"], port, "{d}");
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f" })).unwrap();
    let t = transfer(&mut c, d["destinationId"].as_str().unwrap(), &m, Some("/p"));
    let end = wait_end(&mut c, &t, T);
    assert_eq!(end["status"], "complete", "{end}");
    assert_eq!(
        std::fs::read(storage.join("p/f")).unwrap(),
        b"one port number"
    );

    // Both given: each keeps its meaning (the API port given apart).
    let d2 = c
        .call(
            "send.createDestination",
            json!({ "destinationAddress": "127.0.0.1", "destinationPort": 9,
                    "destinationApiPort": port, "userName": u.name(), "password": pw }),
        )
        .unwrap();
    assert_eq!(d2["destinationApiPort"], port, "{d2}");
    assert_eq!(d2["destinationPort"], 9, "{d2}");
}
