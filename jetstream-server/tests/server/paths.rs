//! Where transfers go: the six rows of the seed's path table, ownership, and sandbox escapes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use jetstream_client::client::ClientError;
use serde_json::json;

use super::util::*;

const T: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs root: system users (PAM)"]
fn every_row_of_the_path_table_lands_where_the_seed_says() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let storage = root.join("storage");
    let a = Srv::start(root, "a", &[]);
    let b0 = Srv::start(root, "b0", &[]);
    let sandbox = storage.to_str().unwrap();
    let b1 = Srv::start(root, "b1", &["--sandbox-dir", sandbox]);
    let per_user = format!("{sandbox}/%u");
    let b2 = Srv::start(root, "b2", &["--sandbox-dir", &per_user]);
    let src = root.join("source/my_file");
    let content = data(100_000, 1);
    write(&src, &content);
    let mut c = a.login(u.name(), &pw);
    // Row 1 writes to an absolute path and row 2 below `/`: use names this test owns. The
    // server writes with the user's rights only: row 1's directory is the user's, and row 2
    // is refused (the user may not write to `/`).
    let abs_target = root.join("mnt/data/file.txt");
    fs::create_dir(root.join("mnt")).unwrap();
    std::os::unix::fs::chown(root.join("mnt"), Some(u.uid()), Some(u.gid())).unwrap();
    let top_name = format!("jstest-{}-{}.txt", std::process::id(), u.uid());
    let top = std::path::PathBuf::from("/").join(&top_name);
    let rows: Vec<(&Srv, Option<&str>, String, std::path::PathBuf)> = vec![
        (
            &b0,
            None,
            abs_target.display().to_string(),
            abs_target.clone(),
        ),
        (&b0, None, top_name, top.clone()),
        (
            &b1,
            None,
            "/mnt/data/file.txt".into(),
            storage.join("mnt/data/file.txt"),
        ),
        (
            &b1,
            Some("/repository1"),
            "/mnt/data/file.txt".into(),
            storage.join("repository1/mnt/data/file.txt"),
        ),
        (
            &b2,
            None,
            "/mnt/data/file.txt".into(),
            storage.join(u.name()).join("mnt/data/file.txt"),
        ),
        (
            &b2,
            Some("/repository1"),
            "/mnt/data/file.txt".into(),
            storage.join(u.name()).join("repository1/mnt/data/file.txt"),
        ),
    ];
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for (i, (to, dest_path, target, expected)) in rows.iter().enumerate() {
            let d = destination(&mut c, to, u.name(), &pw, json!({}));
            let m = manifest(&mut c, json!({ src.to_str().unwrap(): target })).unwrap();
            let t = transfer(&mut c, &d, &m, *dest_path);
            let end = wait_end(&mut c, &t, T);
            if i == 1 {
                let why = end["failedFiles"][0]["errorMessage"].as_str().unwrap_or("");
                assert!(why.contains("may not write there"), "row 2: {end}");
                assert!(!expected.exists(), "row 2: nothing written to /");
                continue;
            }
            assert_eq!(end["status"], "complete", "row {}: {end}", i + 1);
            let got = fs::read(expected)
                .unwrap_or_else(|e| panic!("row {}: {} missing: {e}", i + 1, expected.display()));
            assert!(got == content, "row {}: content differs", i + 1);
            let meta = fs::metadata(expected).unwrap();
            assert_eq!(meta.uid(), u.uid(), "row {}: owned by the user", i + 1);
        }
    }));
    let _ = fs::remove_file(&top);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn no_path_escapes_the_sandbox() {
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
    } = Pair::new(true);
    let root = dir.path();
    let outside = root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let home = storage.join(u.name());
    let src = root.join("src");
    write(&src.join("ok.txt"), b"fine");
    write(&src.join("evil.txt"), b"must not leave the sandbox");
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));

    // `..` in a target: refused when the manifest is made, before anything moves.
    let e = manifest(
        &mut c,
        json!({ src.join("ok.txt").to_str().unwrap(): "../../etc/x" }),
    )
    .unwrap_err();
    assert!(e.contains("escapes the sandbox"), "{e}");
    // `..` in the destination path: refused by createTransfer...
    let m = manifest(
        &mut c,
        json!({ src.join("ok.txt").to_str().unwrap(): "/ok.txt" }),
    )
    .unwrap();
    let err = c
        .call(
            "send.createTransfer",
            json!({"destinationId": d, "manifestId": m, "destinationPath": "/a/../../.."}),
        )
        .unwrap_err();
    assert!(err.to_string().contains("escapes the sandbox"), "{err}");
    // ...and by the receiver itself, whatever a sender asks.
    let mut direct = b.tls_client();
    direct
        .call("auth", json!({"userName": u.name(), "password": pw}))
        .unwrap();
    for bad in ["..", "/../outside", "a/../../.."] {
        let err = direct
            .call(
                "recv.startTransfer",
                json!({"transferId": "0123456789abcdef0123456789abcdef",
                       "sessionId": "00000000000000aa", "destinationPath": bad}),
            )
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Api(m) if m.message.contains("escapes the sandbox")),
            "{bad}: {err}"
        );
    }

    // An absolute target is placed inside the sandbox.
    let abs = format!("/etc/jstest-{}", u.uid());
    let m = manifest(&mut c, json!({ src.join("ok.txt").to_str().unwrap(): abs })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    assert_eq!(wait_end(&mut c, &t, T)["status"], "complete");
    assert_eq!(
        fs::read(home.join(abs.trim_start_matches('/'))).unwrap(),
        b"fine"
    );
    assert!(!std::path::Path::new(&abs).exists());

    // A symlink inside the sandbox pointing out: that file is refused, the rest lands.
    std::os::unix::fs::symlink(&outside, home.join("link")).unwrap();
    let m = manifest(
        &mut c,
        json!({
            src.join("evil.txt").to_str().unwrap(): "/link/evil.txt",
            src.join("ok.txt").to_str().unwrap(): "/fine/ok.txt",
        }),
    )
    .unwrap();
    let t = transfer(&mut c, &d, &m, None);
    let end = wait_end(&mut c, &t, T);
    assert_eq!(end["status"], "error", "{end}");
    let failed = end["failedFiles"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{end}");
    assert_eq!(failed[0]["destPath"], "link/evil.txt");
    assert_eq!(fs::read(home.join("fine/ok.txt")).unwrap(), b"fine");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    // A symlinked destination path is refused by the receiver too.
    let m = manifest(
        &mut c,
        json!({ src.join("ok.txt").to_str().unwrap(): "/x.txt" }),
    )
    .unwrap();
    let t = transfer(&mut c, &d, &m, Some("/link"));
    let end = wait_end(&mut c, &t, T);
    assert_eq!(end["status"], "error");
    assert!(
        end["errorMessage"]
            .as_str()
            .unwrap()
            .contains("symbolic link"),
        "{end}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}
