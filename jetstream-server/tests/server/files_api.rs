//! The files API (issue 18, item 4) through a real root server and real users:
//! `lsRootsAsync`, `lsAsync`, `mkdirAsync`, `mvAsync`, `rmAsync`, `duAsync` act as the
//! logged-in user, inside the user's sandbox (narrowed by a token's path), with results
//! through `getRequestResult` for the session that asked only. The attacks: `..`, absolute
//! paths and links the user plants pointing outside; a narrowed token; a token without
//! `modify`; a download link; another user (the kernel's checks, and request results).

use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use jetstream_api::params::{Du, Ls, LsRoots, Mkdir, Mv, Rm};
use jetstream_api::types::{FileType, RootType};
use jetstream_api::{Api, ErrorKind};
use jetstream_client::client::{ApiClient, ClientError};
use jetstream_server::users::test_support::TestUser;
use serde_json::{json, Value};

use super::util::*;

/// Asks `cmd` (an `*Async` files command) and waits for its outcome with `getRequestResult`:
/// the result, or the error's kind and message.
fn run(c: &mut ApiClient, cmd: &str, params: Value) -> Result<Value, (ErrorKind, String)> {
    let id = match c.call(&format!("{cmd}Async"), params) {
        Ok(v) => v["requestId"].clone(),
        Err(ClientError::Api(r)) => return Err((r.kind, r.message)),
        Err(e) => panic!("{cmd}: {e}"),
    };
    assert!(id.is_u64(), "{cmd} answers with a request id: {id}");
    match c.call("getRequestResult", json!({ "requestId": id })) {
        Ok(v) => Ok(v),
        Err(ClientError::Api(r)) => Err((r.kind, r.message)),
        Err(e) => panic!("{cmd}: {e}"),
    }
}

/// As [`run`], expecting a refusal.
fn refused(c: &mut ApiClient, cmd: &str, params: Value) -> (ErrorKind, String) {
    match run(c, cmd, params.clone()) {
        Err(e) => {
            println!("| {cmd} {params} | refused: {} |", e.1);
            e
        }
        Ok(v) => panic!("NOT REFUSED: {cmd} {params}: {v}"),
    }
}

fn names(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

fn give(path: &Path, u: &TestUser) {
    lchown(path, Some(u.uid()), Some(u.gid())).expect("lchown");
}

/// Every command through the real server as the user, in a per-user sandbox: the typed
/// client's methods (each an `*Async` request waited for), what lands on disk and who owns it.
#[test]
#[ignore = "needs root: system users (PAM), a root server acting as them"]
fn every_files_command_works_as_the_user_in_the_sandbox() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let d = dir.path();
    let s = Srv::start(
        d,
        "s",
        &["--sandbox-dir", &format!("{}/sb/%u", d.display())],
    );
    let mut c = s.login(u.name(), &pw);
    let home = d.join("sb").join(u.name());

    let roots = c.ls_roots(&LsRoots {}).expect("lsRoots");
    assert_eq!(roots.len(), 1);
    assert_eq!((roots[0].name.as_str(), roots[0].path.as_str()), ("", "/"));
    assert_eq!(roots[0].root_type, RootType::File);

    let made = c
        .mkdir(&Mkdir {
            path: "/proj/sub".into(),
        })
        .expect("mkdir");
    assert_eq!(made.path, "/proj/sub");
    assert_eq!(made.file_type, FileType::Directory);
    for p in [home.join("proj"), home.join("proj/sub")] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (u.uid(), u.gid()),
            "{} is the user's",
            p.display()
        );
    }
    let e = c
        .mkdir(&Mkdir {
            path: "proj/sub".into(),
        })
        .unwrap_err();
    assert!(e.to_string().contains("/proj/sub: already exists"), "{e}");

    write(&home.join("proj/a.txt"), &data(1234, 1));
    give(&home.join("proj/a.txt"), &u);
    let listing = c
        .ls(&Ls {
            path: Some("/proj".into()),
        })
        .expect("ls");
    assert_eq!(listing.path, "/proj");
    let got: Vec<(&str, &str, FileType)> = listing
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.path.as_str(), e.file_type.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("a.txt", "/proj/a.txt", FileType::File),
            ("sub", "/proj/sub", FileType::Directory)
        ]
    );
    assert_eq!(listing.entries[0].size, 1234);
    let mtime = std::fs::metadata(home.join("proj/a.txt")).unwrap().mtime();
    assert_eq!(
        listing.entries[0].modification_time.as_micros() / 1_000_000,
        mtime,
        "modificationTime is in µs"
    );
    assert!(!listing.truncated);

    let moved = c
        .mv(&Mv {
            src: "/proj/a.txt".into(),
            dst: "/proj/sub/b.txt".into(),
        })
        .expect("mv");
    assert_eq!((moved.path.as_str(), moved.size), ("/proj/sub/b.txt", 1234));
    assert!(home.join("proj/sub/b.txt").is_file() && !home.join("proj/a.txt").exists());

    let usage = c
        .du(&Du {
            path: Some("/proj".into()),
        })
        .expect("du");
    assert_eq!(
        (usage.total_size, usage.file_count, usage.dir_count),
        (1234, 1, 1)
    );

    let removed = c
        .rm(&Rm {
            path: "/proj".into(),
        })
        .expect("rm");
    assert_eq!((removed.files_removed, removed.directories_removed), (1, 2));
    assert!(!home.join("proj").exists() && home.is_dir());

    // The top itself is never removed, however it is written.
    for top in ["/", "", ".", "/a/.."] {
        let (kind, m) = refused(&mut c, "rm", json!({ "path": top }));
        assert_eq!(kind, ErrorKind::BadParameters, "{m}");
        assert!(m.contains("top of the sandbox"), "{m}");
    }
    assert!(home.is_dir());

    // The same through `jetstream api`, as the documents write it.
    std::fs::create_dir(home.join("seen")).unwrap();
    let out = Command::new(bin())
        .args(["api", "--host", "127.0.0.1", "--api-control-port"])
        .arg(s.api.to_string())
        .args(["--user", u.name(), "lsAsync", "--path", "/"])
        .env("JETSTREAM_API_PASSWORD", &pw)
        .env("JETSTREAM_KNOWN_HOSTS", d.join("known_hosts"))
        .stdin(Stdio::null())
        .output()
        .expect("jetstream api");
    assert!(
        out.status.success(),
        "jetstream api lsAsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_eq!(v["path"], "/");
    assert_eq!(names(&v), ["seen"]);
}

/// A user's `..`, absolute paths and links planted in the sandbox pointing outside cannot make
/// any command see or touch what is outside: the outside file survives and is never listed.
#[test]
#[ignore = "needs root: system users (PAM), a root server acting as them"]
fn paths_and_planted_links_never_leave_the_sandbox() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let d = dir.path();
    let outside = d.join("outside");
    std::fs::create_dir(&outside).unwrap();
    write(&outside.join("keep"), &data(777_777, 2));
    // The user could even write there itself: only the sandbox rule stops it.
    give(&outside, &u);
    give(&outside.join("keep"), &u);
    let s = Srv::start(
        d,
        "s",
        &["--sandbox-dir", &format!("{}/sb/%u", d.display())],
    );
    let mut c = s.login(u.name(), &pw);
    run(&mut c, "mkdir", json!({ "path": "/in" })).expect("mkdir makes the sandbox");
    let home = d.join("sb").join(u.name());
    for (link, target) in [
        ("out", outside.clone()),
        ("keep-link", outside.join("keep")),
        ("up", "../..".into()),
    ] {
        symlink(&target, home.join(link)).unwrap();
        give(&home.join(link), &u);
    }

    // `..` above the top.
    for p in ["..", "../outside", "/in/../../outside", "../../etc"] {
        for cmd in ["ls", "du", "rm", "mkdir"] {
            let (kind, m) = refused(&mut c, cmd, json!({ "path": p }));
            assert_eq!(kind, ErrorKind::BadParameters, "{cmd} {p}: {m}");
            assert!(m.contains("escapes the sandbox"), "{m}");
        }
        refused(&mut c, "mv", json!({ "src": "/in", "dst": p }));
        refused(&mut c, "mv", json!({ "src": p, "dst": "/x" }));
    }
    // An absolute path is from the top of the sandbox: `/etc` is the sandbox's, not the system's.
    let (kind, m) = refused(&mut c, "ls", json!({ "path": "/etc" }));
    assert_eq!(kind, ErrorKind::NotFound, "{m}");
    assert!(
        m.starts_with("/etc: "),
        "the client's path, not the server's: {m}"
    );
    assert!(!m.contains(&d.display().to_string()), "no server path: {m}");
    let abs = outside.join("keep").display().to_string();
    assert_eq!(
        refused(&mut c, "du", json!({ "path": abs })).0,
        ErrorKind::NotFound
    );

    // The links: listed as links, never followed.
    let top = run(&mut c, "ls", json!({ "path": "/" })).unwrap();
    assert_eq!(names(&top), ["in", "keep-link", "out", "up"]);
    let out_entry = &top["entries"][2];
    assert_eq!(out_entry["type"], "symlink", "{out_entry}");
    assert_eq!(out_entry["linkTarget"], outside.display().to_string());
    for (cmd, params) in [
        ("ls", json!({ "path": "/out" })),
        ("ls", json!({ "path": "/up" })),
        ("ls", json!({ "path": "/up/outside" })),
        ("du", json!({ "path": "/out/keep" })),
        ("rm", json!({ "path": "/out/keep" })),
        ("rm", json!({ "path": "/up/outside/keep" })),
        ("mkdir", json!({ "path": "/out/new" })),
        ("mkdir", json!({ "path": "/up/new" })),
        ("mv", json!({ "src": "/out/keep", "dst": "/stolen" })),
        ("mv", json!({ "src": "/in", "dst": "/out/in" })),
    ] {
        let (_, m) = refused(&mut c, cmd, params);
        assert!(m.contains("symbolic link"), "{cmd}: {m}");
    }
    let usage = run(&mut c, "du", json!({ "path": "/" })).unwrap();
    assert_eq!(usage["totalSize"], 0, "links are not followed: {usage}");
    assert_eq!(usage["symlinkCount"], 3, "{usage}");
    // Removing a link removes the link, not what it points at.
    run(&mut c, "rm", json!({ "path": "/out" })).expect("rm of a link");
    run(&mut c, "rm", json!({ "path": "/keep-link" })).expect("rm of a link");
    // A directory holding a link to outside: the link goes, the outside stays.
    symlink(&outside, home.join("in/inner")).unwrap();
    give(&home.join("in/inner"), &u);
    let r = run(&mut c, "rm", json!({ "path": "/in" })).unwrap();
    assert_eq!(
        (r["filesRemoved"].as_u64(), r["directoriesRemoved"].as_u64()),
        (Some(1), Some(1))
    );

    assert_eq!(
        std::fs::read(outside.join("keep")).unwrap(),
        data(777_777, 2)
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing made outside"
    );
    assert!(!d.join("stolen").exists() && !d.join("new").exists());
}

/// A narrowed token sees and touches only below its path; a token without `modify` cannot
/// make, move or remove; one with neither `upload` nor `download` cannot browse; a download
/// link can call none of them; another user's results stay private.
#[test]
#[ignore = "needs root: system users (PAM), a root server acting as them"]
fn tokens_links_and_other_sessions_get_no_more_than_theirs() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let d = dir.path();
    let s = Srv::start(
        d,
        "s",
        &["--sandbox-dir", &format!("{}/sb/%u", d.display())],
    );
    let mut owner = s.login(u.name(), &pw);
    run(&mut owner, "mkdir", json!({ "path": "/shared/inner" })).unwrap();
    run(&mut owner, "mkdir", json!({ "path": "/private" })).unwrap();
    let home = d.join("sb").join(u.name());
    write(&home.join("private/secret"), b"secret");
    give(&home.join("private/secret"), &u);

    let token = |c: &mut ApiClient, params: Value| -> ApiClient {
        let t = c.call("createAPIToken", params).expect("createAPIToken")["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut n = s.client();
        n.call("authToken", json!({ "token": t }))
            .expect("authToken");
        n
    };
    // A download token narrowed to /shared: `/` is /shared.
    let mut narrow = token(
        &mut owner,
        json!({ "path": "/shared", "permissions": ["download"] }),
    );
    let top = run(&mut narrow, "ls", json!({ "path": "/" })).unwrap();
    assert_eq!(names(&top), ["inner"]);
    for p in ["..", "/../private", "../private/secret"] {
        let (kind, _) = refused(&mut narrow, "ls", json!({ "path": p }));
        assert_eq!(kind, ErrorKind::BadParameters);
    }
    assert_eq!(
        refused(&mut narrow, "ls", json!({ "path": "/private" })).0,
        ErrorKind::NotFound,
        "/private is /shared/private for this token"
    );
    let usage = run(&mut narrow, "du", json!({})).unwrap();
    assert_eq!(usage["dirCount"], 1, "{usage}");
    for (cmd, params) in [
        ("mkdir", json!({ "path": "/x" })),
        ("rm", json!({ "path": "/inner" })),
        ("mv", json!({ "src": "/inner", "dst": "/y" })),
    ] {
        let (kind, m) = refused(&mut narrow, cmd, params);
        assert_eq!(kind, ErrorKind::PermissionDenied);
        assert!(m.contains("\"modify\" permission"), "{m}");
    }
    assert!(home.join("shared/inner").is_dir());

    // `modify` on a narrowed token acts below its path only; it cannot remove its own top.
    let mut modify = token(
        &mut owner,
        json!({ "path": "/shared", "permissions": ["modify", "upload"] }),
    );
    run(&mut modify, "mkdir", json!({ "path": "/made" })).unwrap();
    assert!(home.join("shared/made").is_dir());
    run(
        &mut modify,
        "mv",
        json!({ "src": "/made", "dst": "/inner/made" }),
    )
    .unwrap();
    assert!(home.join("shared/inner/made").is_dir());
    refused(&mut modify, "rm", json!({ "path": "/" }));
    refused(&mut modify, "rm", json!({ "path": "../private" }));
    assert!(home.join("shared").is_dir() && home.join("private/secret").is_file());

    // Neither upload nor download: no browsing.
    let mut blind = token(&mut owner, json!({ "permissions": ["modify", "share"] }));
    for cmd in ["ls", "lsRoots", "du"] {
        let (kind, m) = refused(&mut blind, cmd, json!({}));
        assert_eq!(kind, ErrorKind::PermissionDenied, "{m}");
    }

    // A download link: none of the files commands.
    write(&home.join("f"), b"f");
    give(&home.join("f"), &u);
    let mid = manifest(&mut owner, json!({ "/f": "/f" })).unwrap();
    let link = owner
        .call("send.createSharedToken", json!({ "manifestId": mid }))
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut l = s.tls_client();
    l.call("authToken", json!({ "token": link }))
        .expect("link login");
    for cmd in ["ls", "lsRoots", "du", "mkdir", "mv", "rm"] {
        let (kind, m) = refused(&mut l, cmd, json!({ "path": "/private/secret" }));
        assert_eq!(kind, ErrorKind::PermissionDenied, "{m}");
    }
    assert!(home.join("private/secret").is_file());

    // The owner's request results are the owner's session's: not the narrowed token's, not
    // another user's.
    let id = owner
        .call("lsAsync", json!({ "path": "/private" }))
        .unwrap()["requestId"]
        .clone();
    let mine = owner
        .call("getRequestResult", json!({ "requestId": id }))
        .unwrap();
    assert_eq!(names(&mine), ["secret"]);
    let (v, vpw) = user();
    let mut other = s.login(v.name(), &vpw);
    for c in [&mut other, &mut narrow] {
        for cmd in ["getRequestResult", "getRequestStatus"] {
            let r = c.call(cmd, json!({ "requestId": id, "timeoutMs": 0 }));
            assert!(matches!(r, Err(ClientError::Api(_))), "{cmd}: {r:?}");
        }
    }
    // The other user's `/` is their own sandbox.
    let theirs = run(&mut other, "ls", json!({ "path": "/" })).unwrap();
    assert!(names(&theirs).is_empty(), "{theirs}");
    let (kind, _) = refused(
        &mut other,
        "ls",
        json!({ "path": format!("../{}", u.name()) }),
    );
    assert_eq!(kind, ErrorKind::BadParameters);
}

/// Without a sandbox the user reaches the whole file system, with their own rights only: the
/// kernel refuses another user's private directory, and a file in a directory the user may not
/// write cannot be removed or moved.
#[test]
#[ignore = "needs root: system users (PAM), a root server acting as them"]
fn another_users_files_are_guarded_by_the_kernel() {
    if !can_run() {
        return;
    }
    let (a, apw) = user();
    let (b, bpw) = user();
    let dir = scratch();
    let d = dir.path();
    let private = d.join("a-private");
    let shared = d.join("a-shared");
    for (p, mode) in [(&private, 0o700), (&shared, 0o755)] {
        std::fs::create_dir(p).unwrap();
        write(&p.join("f"), b"a's");
        give(p, &a);
        give(&p.join("f"), &a);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let s = Srv::start(d, "s", &[]);
    let mut ca = s.login(a.name(), &apw);
    let mut cb = s.login(b.name(), &bpw);
    let p = |path: &Path| path.display().to_string();

    assert_eq!(
        names(&run(&mut ca, "ls", json!({ "path": p(&private) })).unwrap()),
        ["f"]
    );
    let (kind, m) = refused(&mut cb, "ls", json!({ "path": p(&private) }));
    assert_eq!(kind, ErrorKind::PermissionDenied, "{m}");
    refused(&mut cb, "rm", json!({ "path": p(&private.join("f")) }));
    // B may read the shared directory, not change it.
    assert_eq!(
        names(&run(&mut cb, "ls", json!({ "path": p(&shared) })).unwrap()),
        ["f"]
    );
    let (kind, _) = refused(&mut cb, "rm", json!({ "path": p(&shared.join("f")) }));
    assert_eq!(kind, ErrorKind::PermissionDenied);
    refused(&mut cb, "rm", json!({ "path": p(&shared) }));
    refused(
        &mut cb,
        "mv",
        json!({ "src": p(&shared.join("f")), "dst": p(&d.join("taken")) }),
    );
    refused(
        &mut cb,
        "mkdir",
        json!({ "path": p(&shared.join("b-was-here")) }),
    );
    let usage = run(&mut cb, "du", json!({ "path": p(d) })).unwrap();
    assert!(usage["unreadableCount"].as_u64().unwrap() >= 1, "{usage}");
    for f in [private.join("f"), shared.join("f")] {
        assert_eq!(
            std::fs::read(&f).unwrap(),
            b"a's",
            "{} survives",
            f.display()
        );
    }
    assert!(!shared.join("b-was-here").exists() && !d.join("taken").exists());
    // A removes its own file; not its directory, which is in a directory only root may write.
    run(&mut ca, "rm", json!({ "path": p(&shared.join("f")) })).unwrap();
    assert!(!shared.join("f").exists());
    let (kind, _) = refused(&mut ca, "rm", json!({ "path": p(&shared) }));
    assert_eq!(kind, ErrorKind::PermissionDenied);
    assert!(shared.is_dir());
}

/// With sandbox mappings of named resources (issue 18 item 3): `lsRootsAsync` lists them as
/// top-level folders, each command acts in the resource its path names, a resource's own
/// directory is its top (not removable), and a move between resources is refused.
#[test]
#[ignore = "needs root: system users (PAM), a root server acting as them"]
fn named_resources_are_top_level_folders() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let d = dir.path();
    let s = Srv::start(d, "s", &["--superuser", u.name()]);
    let mut admin = s.login(u.name(), &pw);
    admin.call("superuser", json!({})).expect("superuser");
    let file = |p: &Path| json!({"type": "File", "path": p.to_str().unwrap()});
    let (common, homes) = (d.join("common"), d.join("homes"));
    admin
        .call(
            "setSandboxMapping",
            json!({"userName": "", "mapping": {
                "common": file(&common),
                "home": file(&homes.join("%u")),
            }}),
        )
        .expect("setSandboxMapping");
    let mut c = s.login(u.name(), &pw);
    let roots = run(&mut c, "lsRoots", json!({})).unwrap();
    assert_eq!(
        roots,
        json!([
            {"name": "common", "path": "/common", "type": "File"},
            {"name": "home", "path": "/home", "type": "File"},
        ])
    );
    let made = run(&mut c, "mkdir", json!({ "path": "/home/docs" })).unwrap();
    assert_eq!(made["path"], "/home/docs");
    let mine = homes.join(u.name());
    assert_eq!(std::fs::metadata(mine.join("docs")).unwrap().uid(), u.uid());
    let listing = run(&mut c, "ls", json!({ "path": "/home" })).unwrap();
    assert_eq!(listing["path"], "/home");
    assert_eq!(names(&listing), ["docs"]);
    assert_eq!(listing["entries"][0]["path"], "/home/docs");
    // Outside every resource, above one, a resource itself, across two: refused.
    let (kind, m) = refused(&mut c, "ls", json!({ "path": "/elsewhere" }));
    assert_eq!(kind, ErrorKind::BadParameters);
    assert!(m.contains("/common") && m.contains("/home"), "{m}");
    refused(&mut c, "ls", json!({ "path": "/home/.." }));
    let (kind, m) = refused(&mut c, "rm", json!({ "path": "/home" }));
    assert_eq!(kind, ErrorKind::BadParameters, "{m}");
    assert!(m.starts_with("/home: "), "{m}");
    let (kind, m) = refused(
        &mut c,
        "mv",
        json!({ "src": "/home/docs", "dst": "/common/docs" }),
    );
    assert_eq!(kind, ErrorKind::BadParameters, "{m}");
    assert!(mine.join("docs").is_dir() && !common.join("docs").exists());
    run(
        &mut c,
        "mv",
        json!({ "src": "/home/docs", "dst": "/home/papers" }),
    )
    .unwrap();
    assert!(mine.join("papers").is_dir());
}
