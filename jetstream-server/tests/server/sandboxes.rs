//! Sandbox mappings (issue 18 item 3): `getSandboxMappings`, `setSandboxMapping`,
//! `deleteSandboxMapping`, where files land under them, persistence, `--sandbox-dir` as the
//! all-users root, and what a stranger, a narrowed token or a download link cannot do.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jetstream_api::ErrorKind;
use jetstream_client::client::{ApiClient, ClientError};
use serde_json::{json, Value};

use super::util::*;

const T: Duration = Duration::from_secs(60);

fn admin(b: &Srv, user: &str, pw: &str) -> ApiClient {
    let mut c = b.login(user, pw);
    c.call("superuser", json!({})).expect("superuser");
    c
}

fn refusal(r: Result<Value, ClientError>) -> (ErrorKind, String) {
    match r {
        Err(ClientError::Api(e)) => (e.kind, e.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn set(c: &mut ApiClient, user: &str, mapping: Value) -> Result<Value, ClientError> {
    c.call(
        "setSandboxMapping",
        json!({"userName": user, "mapping": mapping}),
    )
}

fn file(path: &Path) -> Value {
    json!({"type": "File", "path": path.to_str().unwrap()})
}

/// `recv.startTransfer` straight at the receiver, as `user`: the receiver's own check of a
/// destination path, whatever a sender asks.
fn start_receive(b: &Srv, user: &str, pw: &str, dest: &str) -> Result<Value, ClientError> {
    let mut direct = b.tls_client();
    direct
        .call("auth", json!({"userName": user, "password": pw}))
        .unwrap();
    direct.call(
        "recv.startTransfer",
        json!({"transferId": "0123456789abcdef0123456789abcdef",
               "sessionId": "00000000000000aa", "destinationPath": dest}),
    )
}

/// Sends `src` to `target` through `a` to `b` as `user`, with `dest_path`; returns the end.
fn send(
    a: &Srv,
    b: &Srv,
    user: &str,
    pw: &str,
    src: &Path,
    target: &str,
    dest_path: Option<&str>,
) -> Value {
    let mut c = a.login(user, pw);
    let d = destination(&mut c, b, user, pw, json!({}));
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): target })).unwrap();
    let t = transfer(&mut c, &d, &m, dest_path);
    wait_end(&mut c, &t, T)
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn set_get_delete_persist_and_the_flag_is_the_all_users_root() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let flag_root = root.join("flagroot");
    let flag = flag_root.to_str().unwrap().to_owned();
    let extra = ["--sandbox-dir", flag.as_str(), "--superuser", u.name()];
    let b = Srv::start(root, "b", &extra);
    let mut c = admin(&b, u.name(), &pw);

    // `--sandbox-dir` shows as the all-users root mapping.
    let all = c.call("getSandboxMappings", json!({})).unwrap();
    assert_eq!(all, json!({"": {"": file(&flag_root)}}));

    // A per-user level (the simplified string form), then the all-users level (object form,
    // named resources): answers always use the object form.
    let per = root.join("per/%u");
    let all = set(&mut c, "alice", json!({"": per.to_str().unwrap()})).unwrap();
    assert_eq!(all["alice"], json!({"": file(&per)}));
    let homes = root.join("homes/%u");
    let common = root.join("common");
    let all = set(
        &mut c,
        "",
        json!({"home": file(&homes), "common": common.to_str().unwrap()}),
    )
    .unwrap();
    assert_eq!(
        all[""],
        json!({"home": file(&homes), "common": file(&common)})
    );
    assert_eq!(c.call("getSandboxMappings", json!({})).unwrap(), all);

    // Refusals name what is wrong, with a kind a program can match.
    for (mapping, needle) in [
        (json!({"": "relative/%u"}), "not an absolute path"),
        (json!({"": "/srv/%x"}), "%x"),
        (json!({"home": "/srv/%"}), "lone '%'"),
        (
            json!({"": {"type": "S3", "bucketName": "b"}}),
            "not supported yet",
        ),
        (
            json!({"": {"type": "File", "path": "/x", "shareName": "s"}}),
            "shareName",
        ),
        (json!({"a/b": "/x"}), "\"a/b\""),
        (json!({}), "no resource"),
    ] {
        let (kind, message) = refusal(set(&mut c, "bob", mapping.clone()));
        assert_eq!(kind, ErrorKind::BadParameters, "{mapping}: {message}");
        assert!(message.contains(needle), "{mapping}: {message}");
    }
    let (kind, _) = refusal(c.call("deleteSandboxMapping", json!({"userName": "nobody"})));
    assert_eq!(kind, ErrorKind::NotFound);

    // Persisted, 0600; at the next start the flag sets the all-users level again.
    let file_path = b.state.join("sandbox_mappings.json");
    assert_eq!(fs::metadata(&file_path).unwrap().mode() & 0o777, 0o600);
    drop(c);
    drop(b);
    let b = Srv::start(root, "b", &extra);
    let mut c = admin(&b, u.name(), &pw);
    assert_eq!(
        c.call("getSandboxMappings", json!({})).unwrap(),
        json!({"": {"": file(&flag_root)}, "alice": {"": file(&per)}})
    );
    drop(c);
    drop(b);
    // Without the flag, the all-users level saved by command is in force.
    let b = Srv::start(root, "b", &["--superuser", u.name()]);
    let mut c = admin(&b, u.name(), &pw);
    let all = c.call("getSandboxMappings", json!({})).unwrap();
    assert_eq!(
        all[""],
        json!({"home": file(&homes), "common": file(&common)})
    );
    // Delete both levels: none left, and that is saved too.
    c.call("deleteSandboxMapping", json!({"userName": "alice"}))
        .unwrap();
    let all = c
        .call("deleteSandboxMapping", json!({"userName": ""}))
        .unwrap();
    assert_eq!(all, json!({}));
    drop(c);
    drop(b);
    let b = Srv::start(root, "b", &["--superuser", u.name()]);
    let mut c = admin(&b, u.name(), &pw);
    assert_eq!(c.call("getSandboxMappings", json!({})).unwrap(), json!({}));
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn files_land_where_the_mappings_say() {
    if !can_run() {
        return;
    }
    let (u1, pw1) = user();
    let (u2, pw2) = user();
    // `%f` is the passwd GECOS full name.
    let full = format!("Full {}", u2.name());
    assert!(Command::new("usermod")
        .args(["-c", &format!("{full},room 1"), u2.name()])
        .status()
        .unwrap()
        .success());
    let dir = scratch();
    let root = dir.path();
    let a = Srv::start(root, "a", &[]);
    let b = Srv::start(root, "b", &["--superuser", u1.name()]);
    let mut adm = admin(&b, u1.name(), &pw1);
    let src = root.join("src/f.txt");
    write(&src, b"mapped");

    // Nothing mapped: not sandboxed.
    let info = b
        .login(u2.name(), &pw2)
        .call("getServerInfo", json!({}))
        .unwrap();
    assert_eq!(info["user"]["sandboxed"], false);

    // All users: `<root>/storage/%d/%u/100%%` (no domain on Linux: that level disappears).
    let tpl = format!("{}/storage/%d/%u/100%%", root.display());
    set(&mut adm, "", json!({"": tpl})).unwrap();
    // u2's own level replaces it: a home resource named by full name, and a common one.
    let homes = root.join("homes");
    let common = root.join("common");
    set(
        &mut adm,
        u2.name(),
        json!({"home": format!("{}/%f", homes.display()), "common": file(&common)}),
    )
    .unwrap();
    for (u, pw) in [(&u1, &pw1), (&u2, &pw2)] {
        let info = b
            .login(u.name(), pw)
            .call("getServerInfo", json!({}))
            .unwrap();
        assert_eq!(info["user"]["sandboxed"], true, "{}", u.name());
    }

    // u1: the all-users root, expanded for u1.
    let end = send(&a, &b, u1.name(), &pw1, &src, "/t/f.txt", Some("/p"));
    assert_eq!(end["status"], "complete", "{end}");
    let landed = root.join("storage").join(u1.name()).join("100%/p/t/f.txt");
    assert_eq!(fs::read(&landed).unwrap(), b"mapped");
    assert_eq!(fs::metadata(&landed).unwrap().uid(), u1.uid());
    // u2: `/home/x` lands in the home resource, `/common` in the common one.
    let end = send(&a, &b, u2.name(), &pw2, &src, "/f.txt", Some("/home/x"));
    assert_eq!(end["status"], "complete", "{end}");
    let landed = homes.join(&full).join("x/f.txt");
    assert_eq!(fs::read(&landed).unwrap(), b"mapped");
    assert_eq!(fs::metadata(&landed).unwrap().uid(), u2.uid());
    let end = send(&a, &b, u2.name(), &pw2, &src, "/g.txt", Some("/common"));
    assert_eq!(end["status"], "complete", "{end}");
    assert_eq!(fs::read(common.join("g.txt")).unwrap(), b"mapped");
    // u2 has no root: a destination outside the resources is refused, naming them.
    for outside in ["/", "/elsewhere", "/homex/y"] {
        let (kind, message) = refusal(start_receive(&b, u2.name(), &pw2, outside));
        assert_eq!(kind, ErrorKind::BadParameters, "{outside}: {message}");
        assert!(message.contains("/common, /home"), "{outside}: {message}");
    }
    // `..` cannot leave a resource, nor reach another user's `%u` directory.
    for escape in ["/home/../..", "/home/x/../../../etc", "/common/../../homes"] {
        let (_, message) = refusal(start_receive(&b, u2.name(), &pw2, escape));
        assert!(
            message.contains("escapes the sandbox"),
            "{escape}: {message}"
        );
    }
    let other = format!("/../{}", u2.name());
    let (_, message) = refusal(start_receive(&b, u1.name(), &pw1, &other));
    assert!(message.contains("escapes the sandbox"), "{message}");
    assert!(!root.join("storage").join(u2.name()).exists());
    // `/home/../common` is a path inside the user's view: cleaned first, it is `/common`.
    let end = send(
        &a,
        &b,
        u2.name(),
        &pw2,
        &src,
        "/h.txt",
        Some("/home/../common"),
    );
    assert_eq!(end["status"], "complete", "{end}");
    assert!(common.join("h.txt").exists());

    // Deleting u2's level puts u2 back under the all-users level.
    adm.call("deleteSandboxMapping", json!({"userName": u2.name()}))
        .unwrap();
    let end = send(&a, &b, u2.name(), &pw2, &src, "/f.txt", None);
    assert_eq!(end["status"], "complete", "{end}");
    assert!(root
        .join("storage")
        .join(u2.name())
        .join("100%/f.txt")
        .exists());
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn only_a_superuser_session_manages_mappings() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let sandbox = root.join("sb/%u");
    let b = Srv::start(
        root,
        "b",
        &[
            "--sandbox-dir",
            sandbox.to_str().unwrap(),
            "--superuser",
            u.name(),
        ],
    );
    write(&root.join("sb").join(u.name()).join("ok.bin"), b"x");
    let calls = [
        ("getSandboxMappings", json!({})),
        (
            "setSandboxMapping",
            json!({"userName": "", "mapping": {"": "/"}}),
        ),
        ("deleteSandboxMapping", json!({"userName": ""})),
    ];
    let check = |c: &mut ApiClient, who: &str| {
        for (name, params) in &calls {
            let (kind, message) = refusal(c.call(name, params.clone()));
            assert_eq!(kind, ErrorKind::PermissionDenied, "{who} {name}: {message}");
        }
    };
    // A logged-in user that has not called `superuser`, even one allowed to.
    let mut plain = b.login(u.name(), &pw);
    check(&mut plain, "plain login");
    // An API token narrowed to a path, made by a superuser session.
    let mut adm = admin(&b, u.name(), &pw);
    let tok = adm
        .call(
            "createAPIToken",
            json!({"path": "/sub", "permissions": ["upload", "download", "modify", "share"]}),
        )
        .unwrap();
    let mut t = b.client();
    t.call("authToken", json!({"token": tok["token"]})).unwrap();
    check(&mut t, "token");
    let (kind, _) = refusal(t.call("superuser", json!({})));
    assert_eq!(kind, ErrorKind::PermissionDenied);
    check(&mut t, "token after superuser");
    // A download link.
    let m = manifest(&mut adm, json!([["/ok.bin", "/ok.bin"]])).unwrap();
    let link = adm
        .call("send.createSharedToken", json!({"manifestId": m}))
        .unwrap();
    let mut l = b.client();
    l.call("authToken", json!({"token": link["token"]}))
        .unwrap();
    check(&mut l, "download link");
    // A stranger.
    let mut s = b.client();
    for (name, params) in &calls {
        let (kind, message) = refusal(s.call(name, params.clone()));
        assert_eq!(
            kind,
            ErrorKind::NotAuthenticated,
            "stranger {name}: {message}"
        );
    }
    // Nothing changed.
    assert_eq!(
        adm.call("getSandboxMappings", json!({})).unwrap(),
        json!({"": {"": file(&sandbox)}})
    );
}
