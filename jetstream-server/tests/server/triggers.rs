//! Trigger scripts (seed 002), the event log and garbage collection, with real scripts (shell
//! and Python, as in the seed) that write what they received to files the test reads.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::util::*;

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn trigger_dir(root: &Path) -> PathBuf {
    let d = root.join("triggers");
    fs::create_dir_all(&d).unwrap();
    d
}

/// Server `b` in `root`, running the scripts of `triggers`, sandboxed in `storage`.
fn receiver(root: &Path, triggers: &Path, storage: &Path) -> Srv {
    Srv::start(
        root,
        "b",
        &[
            "--trigger-dir",
            triggers.to_str().unwrap(),
            "--sandbox-dir",
            storage.to_str().unwrap(),
        ],
    )
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn every_event_reaches_its_script_with_its_arguments() {
    // One of its trigger scripts is Python, as the reference's example is.
    if !can_run() || !need(runs("python3", &["--version"]), "python3", "python3") {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let tb = trigger_dir(&root.join("b"));
    let ta = trigger_dir(&root.join("a"));
    // The seed's scripts, writing where the test can read.
    script(
        &tb,
        "launch",
        "#!/bin/sh\necho \"JetStream server Launched on port \"$1 >> log.txt\n",
    );
    script(
        &tb,
        "recv.transferComplete",
        "#!/bin/sh\necho \"Transfer ID ${1} initiated by ${2} is complete.\" >> log.txt\n\
         while IFS='\t' read -r manifest_file file_path || [ -n \"${manifest_file}\" ]; do\n\
           echo manifest file: ${manifest_file}, file path: ${file_path} >> files.txt\n\
         done\n",
    );
    script(
        &ta,
        "send.destinationCreated",
        "#!/bin/sh\necho \"Sender \"$2\" created destination \"$1 >> log.txt\n",
    );
    script(
        &ta,
        "send.destinationDeleted",
        "#!/bin/sh\necho \"Sender \"$2\" deleted destination \"$1 >> log.txt\n",
    );
    script(
        &ta,
        "on.send.createManifest",
        "#!/usr/bin/env python3\nimport json, os.path, sys\n\
         log = os.path.join(os.path.dirname(__file__), 'api.txt')\n\
         command, status, message, result = sys.argv[1:]\n\
         with open(log, 'a') as s:\n\
         \x20   s.write(json.dumps({'command': json.loads(command), 'status': status, \
         'message': message, 'result': json.loads(result)}) + '\\n')\n",
    );
    let storage = root.join("storage");
    let b = receiver(root, &tb, &storage);
    let a = Srv::start(
        root,
        "a",
        &["--trigger-dir", ta.to_str().unwrap(), "--trigger-on-api"],
    );
    let launched = wait_file(&tb.join("log.txt"), |t| t.contains("Launched"));
    assert_eq!(
        launched.trim(),
        format!("JetStream server Launched on port {}", b.api)
    );

    let mut c = a.login(u.name(), &pw);
    // The trigger reports the destination's data port: give it (else it is the default 8886
    // until the first contact teaches it).
    let d = destination(&mut c, &b, u.name(), &pw, json!({"destinationPort": b.udp}));
    let src = root.join("src");
    write(&src.join("one file.txt"), b"1");
    write(&src.join("sub/two.txt"), b"22");
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/in" })).unwrap();
    let t = transfer(&mut c, &d, &m, Some("/proj"));
    assert_eq!(
        wait_end(&mut c, &t, Duration::from_secs(60))["status"],
        "complete"
    );

    let log = wait_file(&tb.join("log.txt"), |t| t.contains("complete"));
    assert!(
        log.contains(&format!(
            "Transfer ID {t} initiated by {} is complete.",
            u.name()
        )),
        "{log}"
    );
    let files = wait_file(&tb.join("files.txt"), |t| t.lines().count() == 2);
    let expect_one = format!(
        "manifest file: /in/one file.txt, file path: {}",
        storage.join("proj/in/one file.txt").display()
    );
    assert!(files.lines().any(|l| l == expect_one), "{files}");
    assert!(
        files.contains(&storage.join("proj/in/sub/two.txt").display().to_string()),
        "{files}"
    );

    let created = wait_file(&ta.join("log.txt"), |t| t.contains("created"));
    let sender_re = "Sender 127.0.0.1:";
    assert!(created.contains(sender_re), "{created}");
    assert!(
        created
            .trim_end()
            .ends_with(&format!("created destination 127.0.0.1:{}", b.udp)),
        "{created}"
    );
    c.call("send.deleteTransfer", json!({"transferId": t}))
        .unwrap();
    c.call("send.deleteDestination", json!({"destinationId": d}))
        .unwrap();
    let deleted = wait_file(&ta.join("log.txt"), |t| t.contains("deleted"));
    assert!(
        deleted.contains(&format!("deleted destination 127.0.0.1:{}", b.udp)),
        "{deleted}"
    );

    let api = wait_file(&ta.join("api.txt"), |t| !t.is_empty());
    let first: Value = serde_json::from_str(api.lines().next().unwrap()).unwrap();
    assert_eq!(first["command"]["request"], "send.createManifest");
    assert_eq!(
        first["command"]["parameters"]["fileMappings"][src.to_str().unwrap()],
        "/in"
    );
    assert_eq!(first["status"], "success");
    assert_eq!(first["message"], "Manifest requested.");
    assert_eq!(first["result"]["manifestId"], m.as_str());
    assert_eq!(first["result"]["status"], "pending");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn triggers_run_one_at_a_time_and_a_hung_one_never_stops_transfers() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let tb = trigger_dir(&root.join("b"));
    // Serial: each run takes a lock directory; a second run at the same time would find it.
    script(
        &tb,
        "recv.transferComplete",
        "#!/bin/sh\nif [ -e hang ] && [ ! -e hung ]; then touch hung; echo $$ > hung.pid; exec sleep 1000; fi\n\
         if ! mkdir running.lock 2>/dev/null; then echo OVERLAP >> order.txt; fi\n\
         cat > /dev/null\necho \"$1\" >> order.txt\nrmdir running.lock\n",
    );
    let storage = root.join("storage");
    let b = receiver(root, &tb, &storage);
    let a = Srv::start(root, "a", &[]);
    let mut c = a.login(u.name(), &pw);
    let src = root.join("f.txt");
    write(&src, b"x");
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    // A burst of 20 completions (20 destinations: transfers to one destination queue).
    let mut ids = Vec::new();
    for i in 0..20 {
        let d = destination(
            &mut c,
            &b,
            u.name(),
            &pw,
            json!({"sendRateMax": 100_000 + i}),
        );
        ids.push(transfer(&mut c, &d, &m, Some(&format!("/t{i}"))));
    }
    for id in &ids {
        let end = wait_end(&mut c, id, Duration::from_secs(60));
        assert_eq!(end["status"], "complete", "{end}");
    }
    let order = wait_file(&tb.join("order.txt"), |t| t.lines().count() >= 20);
    assert!(!order.contains("OVERLAP"), "{order}");
    let mut got: Vec<&str> = order.lines().collect();
    got.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "each completion once");

    // Now make the next run hang: transfers still complete.
    fs::write(tb.join("hang"), b"").unwrap();
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let first = transfer(&mut c, &d, &m, Some("/h1"));
    assert_eq!(
        wait_end(&mut c, &first, Duration::from_secs(60))["status"],
        "complete"
    );
    let pid = wait_file(&tb.join("hung.pid"), |t| !t.trim().is_empty());
    let _reaper = Reaper(pid.trim().to_owned());
    for i in 0..3 {
        let t = transfer(&mut c, &d, &m, Some(&format!("/h{}", i + 2)));
        assert_eq!(
            wait_end(&mut c, &t, Duration::from_secs(60))["status"],
            "complete"
        );
    }
    let before = fs::read_to_string(tb.join("order.txt"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(before, 20, "the later triggers wait behind the hung one");
    std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap();
    // The hung run was killed; the three behind it run now.
    let after = wait_file(&tb.join("order.txt"), |t| t.lines().count() >= 23);
    assert_eq!(after.lines().count(), 23, "{after}");
    assert!(!after.contains("OVERLAP"), "{after}");
}

/// Kills the hung script if the test fails before it does.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(&self.0)
            .status();
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn the_event_log_and_garbage_collection() {
    if !can_run() {
        return;
    }
    let Pair {
        user: u,
        pw,
        dir,
        mut a,
        b,
        ..
    } = Pair::new(false);
    let root = dir.path();
    let mut c = a.login(u.name(), &pw);
    let t0 = c.call("getServerInfo", json!({})).unwrap()["serverTime"]
        .as_i64()
        .unwrap();
    assert_eq!(
        c.call("getServerInfo", json!({})).unwrap()["eventLogAvailable"],
        true
    );
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let src = root.join("f.txt");
    write(&src, b"x");
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/f.txt" })).unwrap();
    let unused = manifest(&mut c, json!({ src.to_str().unwrap(): "/g.txt" })).unwrap();
    let t = transfer(&mut c, &d, &m, None);
    assert_eq!(
        wait_end(&mut c, &t, Duration::from_secs(60))["status"],
        "complete"
    );
    c.call("createAPIToken", json!({"expirySeconds": 2}))
        .unwrap();

    // transferUpdated for each status the transfer went through (the watcher runs every
    // 200 ms, so wait for the last one).
    let deadline = Instant::now() + Duration::from_secs(10);
    let updates = loop {
        let log = c
            .call(
                "getEventLog",
                json!({"events": ["transferUpdated"], "startTime": t0}),
            )
            .unwrap();
        let mine: Vec<Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["transferId"] == t.as_str())
            .cloned()
            .collect();
        if mine.last().is_some_and(|e| e["status"] == "complete") || Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(updates.last().unwrap()["status"], "complete", "{updates:?}");
    assert!(updates
        .iter()
        .all(|e| e["_timestamp"].as_i64() >= Some(t0) && e["owner"] == u.name()));
    let all = c.call("getEventLog", json!({})).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["_event"].as_str())
        .collect();
    for want in [
        "serverStarted",
        "destinationCreated",
        "tokenCreated",
        "transferUpdated",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let none = c
        .call(
            "getEventLog",
            json!({"endTime": t0 - 1, "event": "transferUpdated"}),
        )
        .unwrap();
    assert_eq!(none, json!([]));

    // GC: superuser only; a short limit collects the ended transfer, the unused manifest and
    // the expired token, and keeps the destination.
    api_error_contains(c.call("garbageCollect", json!({})), "superuser");
    let (s, spw) = user();
    a.signal(15);
    let mut a = Srv::start(root, "a", &["--superuser", s.name()]);
    // (state dir "a-state" is reused: the objects survived the restart)
    let mut su = a.login(s.name(), &spw);
    su.call("superuser", json!({})).unwrap();
    let set = su
        .call(
            "updateGarbageCollectSettings",
            json!({"intervalSeconds": 1, "timeLimitSeconds": 1}),
        )
        .unwrap();
    assert_eq!(set, json!({"intervalSeconds": 1, "timeLimitSeconds": 1}));
    let conf =
        su.call("getServerInfo", json!({})).unwrap()["configuration"]["garbageCollect"].clone();
    assert_eq!(conf, set);
    let mut c = a.login(u.name(), &pw);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.call("send.getTransfer", json!({"transferId": t})).is_ok()
        || c.call("send.getManifest", json!({"manifestId": unused}))
            .is_ok()
        || c.call("getAPITokens", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["expiryTime"] != Value::Null)
    {
        assert!(Instant::now() < deadline, "not collected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.call("send.getDestination", json!({"destinationId": d}))
            .is_ok(),
        "destinations are not collected"
    );
    // The settings survive a restart.
    a.signal(15);
    let a = Srv::start(root, "a", &["--superuser", s.name()]);
    let mut su = a.login(s.name(), &spw);
    su.call("superuser", json!({})).unwrap();
    let conf =
        su.call("getServerInfo", json!({})).unwrap()["configuration"]["garbageCollect"].clone();
    assert_eq!(conf, set);
}

fn api_error_contains(r: Result<Value, jetstream_client::client::ClientError>, what: &str) {
    match r {
        Err(e) => assert!(e.to_string().contains(what), "{e}"),
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn recv_transfer_complete_does_not_fire_when_no_file_was_written() {
    // Seed 002: recv.transferComplete fires "when a transfer is done and file has been written
    // to disk". A transfer whose every file failed wrote nothing: it must not fire.
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let tb = trigger_dir(&root.join("b"));
    script(
        &tb,
        "recv.transferComplete",
        "#!/bin/sh\necho \"$1\" >> log.txt\n",
    );
    let storage = root.join("storage");
    let b = receiver(root, &tb, &storage);
    let a = Srv::start(root, "a", &[]);
    let mut c = a.login(u.name(), &pw);
    let d = destination(&mut c, &b, u.name(), &pw, json!({}));
    let src = root.join("x.txt");
    write(&src, b"data");
    // Where the file would land is a directory with something in it: the one entry fails.
    let blocker = storage.join("proj/x.txt");
    write(&blocker.join("keep"), b"k");
    std::process::Command::new("chown")
        .args(["-R", u.name(), storage.to_str().unwrap()])
        .status()
        .unwrap();
    let m = manifest(&mut c, json!({ src.to_str().unwrap(): "/x.txt" })).unwrap();
    let failed = transfer(&mut c, &d, &m, Some("/proj"));
    let end = wait_end(&mut c, &failed, Duration::from_secs(60));
    assert_eq!(end["status"], "error", "{end}");
    assert!(blocker.join("keep").is_file());
    // A transfer that writes its file fires the trigger; triggers run one at a time, in order,
    // so once its line is there, a line for the failed one would be there too.
    let ok = transfer(&mut c, &d, &m, Some("/other"));
    assert_eq!(
        wait_end(&mut c, &ok, Duration::from_secs(60))["status"],
        "complete"
    );
    let log = wait_file(&tb.join("log.txt"), |t| t.contains(ok.as_str()));
    assert!(!log.contains(failed.as_str()), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
}
