//! `jscp` into sandbox mappings (issue 18 item 3): two users' files land where their mappings
//! say (`%u`, `%f`, named resources chosen with `-d`).

use std::path::Path;

use serde_json::json;

use super::util::*;
use super::{jscp, run};

#[test]
#[ignore = "needs root: system users (PAM)"]
fn two_users_files_land_in_their_own_mapped_directories() {
    if !can_run() {
        return;
    }
    let (u1, pw) = user();
    let (u2, pw2) = user();
    assert_eq!(pw, pw2, "test users share the run's password");
    let full = format!("Full {}", u2.name());
    assert!(std::process::Command::new("usermod")
        .args(["-c", &full, u2.name()])
        .status()
        .unwrap()
        .success());
    let dir = scratch();
    let root = dir.path();
    let kh = root.join("kh");
    let src = root.join("source/my_file");
    write(&src, &data(30_000, 5));
    let b = Srv::start(root, "b", &["--superuser", u1.name()]);
    let mut adm = b.login(u1.name(), &pw);
    adm.call("superuser", json!({})).unwrap();
    let storage = root.join("storage");
    let homes = root.join("homes");
    adm.call(
        "setSandboxMapping",
        json!({"userName": "", "mapping": {"": format!("{}/%u", storage.display())}}),
    )
    .unwrap();
    adm.call(
        "setSandboxMapping",
        json!({"userName": u2.name(), "mapping": {
            "home": {"type": "File", "path": format!("{}/%f", homes.display())},
            "common": root.join("common").to_str().unwrap(),
        }}),
    )
    .unwrap();
    let copy = |user: &str, dest: Option<&str>| {
        let mut c = jscp(&b, &pw, &kh);
        c.arg("--accept-new-host");
        if let Some(d) = dest {
            c.args(["-d", d]);
        }
        run(c.arg(&src).arg(format!("{user}@127.0.0.1:/t/my_file")))
    };
    let same = |p: &Path| std::fs::read(p).unwrap() == std::fs::read(&src).unwrap();

    let (code, _, err) = copy(u1.name(), None);
    assert_eq!(code, 0, "{err}");
    assert!(same(&storage.join(u1.name()).join("t/my_file")));
    let (code, _, err) = copy(u2.name(), Some("/home/x"));
    assert_eq!(code, 0, "{err}");
    assert!(same(&homes.join(&full).join("x/t/my_file")));
    // u2's level replaced the all-users one: nothing of u2 under storage.
    assert!(!storage.join(u2.name()).exists());
    // Without `-d`, u2's destination is in no resource: refused, naming them.
    let (code, _, err) = copy(u2.name(), None);
    assert_ne!(code, 0);
    assert!(err.contains("/common, /home"), "{err}");
}
