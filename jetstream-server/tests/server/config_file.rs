//! The configuration file (issue 16, item 2, and the reload of item 3): a server started from
//! `--config` alone, the command line over the file, mistakes that stop the start with the
//! file, line and key, `--print-config` fed back, the relay's file, and `SIGHUP` applying the
//! live keys while a broken file leaves the running configuration alone.

use std::fs;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
use serde_json::{json, Value};

use super::util::*;

/// The keys that place a server's ports, state and log in `dir` (`name-*`).
fn placement(dir: &Path, name: &str, api: u16, udp: u16) -> String {
    format!(
        "# test server {name}\n\
         api-host = \"127.0.0.1\"\n\
         api-port = {api}\n\
         recv-host = \"127.0.0.1\"\n\
         recv-port = [{udp}]\n\
         persistent-state-dir = \"{state}\"\n\
         log = \"{log}\"\n",
        state = dir.join(format!("{name}-state")).display(),
        log = dir.join(format!("{name}.log")).display(),
    )
}

fn jetstream(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run jetstream")
}

/// Starts `jetstream server` with exactly `args`; waits until its API port answers and its
/// local token is written (`state`).
fn start(args: &[&str], api: u16, state: &Path, stderr: &Path) -> Proc {
    let mut child = Proc(
        Command::new(bin())
            .arg("server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(stderr).unwrap())
            .spawn()
            .expect("spawn jetstream server"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "server exited at start ({status}): {}",
                fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        let listening = TcpStream::connect(("127.0.0.1", api))
            .is_ok_and(|c| c.local_addr().ok() != c.peer_addr().ok());
        if listening && fs::metadata(state.join("local.token")).is_ok_and(|m| m.len() > 0) {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "server did not open its API port"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `getServerInfo` through a session logged in with the server's local token.
fn server_info(api: u16, state: &Path) -> Value {
    let token = fs::read_to_string(state.join("local.token")).unwrap();
    let mut c = ApiClient::connect("127.0.0.1", api, &ConnectOptions::new(Trust::Pinned(None)))
        .expect("connect");
    c.call("authToken", json!({ "token": token.trim() }))
        .expect("local token login");
    c.call("getServerInfo", json!({})).expect("getServerInfo")
}

/// Waits until the log at `log` contains `text`, while `child` runs.
fn wait_log(log: &Path, child: &mut Proc, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = fs::read_to_string(log).unwrap_or_default();
        if now.contains(text) {
            return now;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the server exited; log:\n{now}"
        );
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{now}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hup(child: &Proc) {
    let st = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn a_server_started_from_its_config_file_alone_serves_with_the_files_settings() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let (api, udp) = (free_tcp(), free_udp());
    let text = format!(
        "{}sandbox-dir = \"{}/sandboxes/%u\"\nmin-cipher = \"aes-256-gcm\"\n\
         outgoing-rate-limit = 5000\nserver-name = \"from-the-file\"\n",
        placement(dir.path(), "a", api, udp),
        dir.path().display()
    );
    let file = config(dir.path(), "jetstream.toml", &text);
    let file_arg = file.to_str().unwrap();
    let state = dir.path().join("a-state");
    let _a = start(
        &["--config", file_arg],
        api,
        &state,
        &dir.path().join("a.err"),
    );
    let info = server_info(api, &state);
    assert_eq!(info["apiControlPort"], api);
    assert_eq!(info["receiver"]["receiverPorts"], json!([udp]));
    assert_eq!(info["receiver"]["receiverIP"], "127.0.0.1");
    assert_eq!(info["minCipher"], "aes-256-gcm");
    assert_eq!(info["serverName"], "from-the-file");
    assert_eq!(info["user"]["sandboxed"], true);
    assert_eq!(info["bandwidthLimits"]["outgoingLimitActive"], true);
    assert_eq!(info["bandwidthLimits"]["outgoingRateLimit"], 5000);
    let log = fs::read_to_string(dir.path().join("a.log")).unwrap();
    assert!(
        log.contains(&format!("sandbox {}/sandboxes/%u", dir.path().display())),
        "{log}"
    );

    // --print-config shows the same, and where it came from.
    let out = jetstream(&["server", "--config", file_arg, "--print-config"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains(&format!("(file {file_arg}, then the command line)")));
    assert!(
        printed.contains(&format!("\napi-port = {api}\n")),
        "{printed}"
    );
    assert!(
        printed.contains("\nmin-cipher = \"aes-256-gcm\"\n"),
        "{printed}"
    );

    // The same file with flags on the command line: they win (a repeatable one replaces the
    // file's list); the rest still comes from the file.
    let (api2, udp2) = (free_tcp(), free_udp());
    let state2 = dir.path().join("b-state");
    let _b = start(
        &[
            "--config",
            file_arg,
            "--api-port",
            &api2.to_string(),
            &format!("--recv-port={udp2}"),
            "--persistent-state-dir",
            state2.to_str().unwrap(),
            "--log",
            dir.path().join("b.log").to_str().unwrap(),
            "--min-cipher",
            "chacha20-poly1305",
        ],
        api2,
        &state2,
        &dir.path().join("b.err"),
    );
    let info = server_info(api2, &state2);
    assert_eq!(info["apiControlPort"], api2);
    assert_eq!(info["receiver"]["receiverPorts"], json!([udp2]));
    assert_eq!(info["minCipher"], "chacha20-poly1305");
    assert_eq!(info["serverName"], "from-the-file");
    assert_eq!(info["bandwidthLimits"]["outgoingRateLimit"], 5000);
}

/// Runs `jetstream server --config FILE` expecting it to refuse to start: exit code 2, the
/// expected message on stderr, and neither port bound.
fn refused(dir: &Path, file_text: &str, api: u16, udp: u16, message: &str) {
    let file = config(dir, "bad.toml", file_text);
    let mut child = Command::new(bin())
        .args(["server", "--config", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // Never bound, not even for a moment.
        assert!(
            TcpStream::connect(("127.0.0.1", api)).is_err(),
            "the API port was bound with a bad configuration file"
        );
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with a bad configuration file");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    let expected = format!("jetstream server: {}:{message}", file.display());
    assert!(err.contains(&expected), "expected {expected:?} in:\n{err}");
    TcpListener::bind(("127.0.0.1", api)).expect("the API port is free");
    UdpSocket::bind(("127.0.0.1", udp)).expect("the data port is free");
    assert!(
        !dir.join("bad-state").exists(),
        "the state directory was created"
    );
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn an_unknown_key_or_a_bad_value_in_the_file_stops_the_start_naming_file_line_and_key() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let (api, udp) = (free_tcp(), free_udp());
    let good = placement(dir.path(), "bad", api, udp); // 7 lines
    refused(
        dir.path(),
        &format!("{good}\nsandbox-dirr = \"/srv/%u\"\n"),
        api,
        udp,
        "9: key \"sandbox-dirr\": unknown key (did you mean \"sandbox-dir\"?)",
    );
    refused(
        dir.path(),
        &format!("{good}api-idle-timeout = -5\n"),
        api,
        udp,
        "8: key \"api-idle-timeout\": invalid value \"-5\"",
    );
    refused(
        dir.path(),
        &format!("{good}api-allow-remote-control = \"perhaps\"\n"),
        api,
        udp,
        "8: key \"api-allow-remote-control\": expected a boolean (like true), not the string \"perhaps\"",
    );
    refused(
        dir.path(),
        &format!("{good}superuser = \"alice\"\n"),
        api,
        udp,
        "8: key \"superuser\": a repeatable flag takes an array",
    );
    refused(
        dir.path(),
        &format!("{good}[server]\napi-port = 1\n"),
        api,
        udp,
        "8: key \"server\": unknown key",
    );
    refused(
        dir.path(),
        &format!("{good}api-port = 1\n"),
        api,
        udp,
        "8: not valid TOML",
    );
    // A file every user could write would hand them the server (it runs as root and the file
    // says which trigger scripts it runs): refused, however right its contents.
    let open_to_all = config(dir.path(), "open.toml", &good);
    fs::set_permissions(&open_to_all, fs::Permissions::from_mode(0o666)).unwrap();
    let out = jetstream(&["server", "--config", open_to_all.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "jetstream server: {}: writable by every user (mode 0666)",
            open_to_all.display()
        )),
        "{err}"
    );
    TcpListener::bind(("127.0.0.1", api)).expect("the API port is free");
    // A file named on the command line must exist.
    let out = jetstream(&["server", "--config", "/nonexistent/jetstream.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jetstream server: /nonexistent/jetstream.toml: No such file"),
        "{err}"
    );
}

#[test]
fn print_config_output_fed_back_gives_the_same_configuration() {
    let dir = scratch();
    let first = jetstream(&[
        "server",
        "--no-config",
        "--print-config",
        "--api-port=9123",
        "--recv-port",
        "9124",
        "--recv-port",
        "9125",
        "--sandbox-dir",
        "/srv/\"quoted\" %u",
        "--trigger-on-api",
        "--api-allow-remote-control",
        "false",
        "--superuser",
        "alice",
        "--incoming-rate-limit",
        "0",
    ]);
    assert!(first.status.success(), "{first:?}");
    let first = String::from_utf8(first.stdout).unwrap();
    assert!(first.contains("\nrecv-port = [9124, 9125]\n"), "{first}");
    assert!(first.contains("\ntrigger-on-api = true\n"), "{first}");
    let file = config(dir.path(), "printed.toml", &first);
    let second = jetstream(&[
        "server",
        "--config",
        file.to_str().unwrap(),
        "--print-config",
    ]);
    assert!(second.status.success(), "{second:?}");
    let second = String::from_utf8(second.stdout).unwrap();
    // The same, but for the first line (which says where the configuration came from).
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&first), body(&second));
    // `--config none` reads no file.
    let none = jetstream(&["server", "--config", "none", "--print-config"]);
    assert!(String::from_utf8(none.stdout)
        .unwrap()
        .contains("\napi-port = 8886\n"));
}

#[test]
fn the_relay_reads_its_config_file_and_refuses_a_bad_one() {
    let dir = scratch();
    let (control, api, udp) = (free_tcp(), free_tcp(), free_udp());
    let text = format!(
        "control-host = \"127.0.0.1\"\ncontrol-port = {control}\npublic-host = \"127.0.0.1\"\n\
         api-port = {api}\ndata-port = {udp}\nstate-dir = \"{}\"\n\
         insecure-accept-any-server = true\n",
        dir.path().join("relay-state").display()
    );
    let file = config(dir.path(), "relay.toml", &text);
    let file_arg = file.to_str().unwrap();
    let printed = jetstream(&["relay_server", "--config", file_arg, "--print-config"]);
    assert!(printed.status.success());
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(
        printed.contains(&format!("\ncontrol-port = {control}\n")),
        "{printed}"
    );
    assert!(
        printed.contains("\ninsecure-accept-any-server = true\n"),
        "{printed}"
    );
    let mut relay = Proc(
        Command::new(bin())
            .args(["relay_server", "--config", file_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", control)).is_err() {
        assert!(relay.0.try_wait().unwrap().is_none(), "the relay exited");
        assert!(
            Instant::now() < deadline,
            "the relay did not open its control port"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    TcpStream::connect(("127.0.0.1", api)).expect("the file's public API port");
    assert!(
        UdpSocket::bind(("127.0.0.1", udp)).is_err(),
        "the file's data port"
    );
    drop(relay);

    let bad = config(
        dir.path(),
        "relay-bad.toml",
        &format!("{text}authorized-server-keys = [\"ab\"]\n"),
    );
    let out = jetstream(&["relay_server", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "jetstream relay_server: {}:8: key \"authorized-server-keys\": unknown key (did you \
         mean \"authorized-server-key\"?)",
        bad.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(TcpListener::bind(("127.0.0.1", control)).is_ok());
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn sighup_applies_the_live_keys_and_a_broken_file_leaves_the_server_as_it_was() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let (api, udp) = (free_tcp(), free_udp());
    let base = placement(dir.path(), "s", api, udp);
    let file = config(
        dir.path(),
        "jetstream.toml",
        &format!("{base}outgoing-rate-limit = 1000\n"),
    );
    let state = dir.path().join("s-state");
    let log = dir.path().join("s.log");
    let mut child = start(
        &["--config", file.to_str().unwrap()],
        api,
        &state,
        &dir.path().join("s.err"),
    );
    let info = server_info(api, &state);
    assert_eq!(info["bandwidthLimits"]["outgoingRateLimit"], 1000);
    assert_eq!(info["minCipher"], "chacha20-poly1305");

    // Live keys change; a key that needs a restart (the data port) is only reported.
    let other_udp = free_udp();
    let changed = base.replace(
        &format!("recv-port = [{udp}]"),
        &format!("recv-port = [{other_udp}]"),
    );
    assert_ne!(changed, base);
    fs::write(
        &file,
        format!(
            "{changed}outgoing-rate-limit = 2000\nincoming-max-connections = 3\n\
             min-cipher = \"aes-256-gcm\"\nlog-level = \"debug\"\n"
        ),
    )
    .unwrap();
    hup(&child);
    wait_log(
        &log,
        &mut child,
        "server: reload: outgoing-rate-limit = 2000: applied",
    );
    let text = wait_log(
        &log,
        &mut child,
        "server: reload: min-cipher = \"aes-256-gcm\": applied",
    );
    assert!(text.contains("server: SIGHUP: log file reopened"), "{text}");
    assert!(
        text.contains(&format!(
            "server: reload: recv-port = [{other_udp}]: needs a restart to take effect"
        )),
        "{text}"
    );
    let info = server_info(api, &state);
    assert_eq!(info["bandwidthLimits"]["outgoingRateLimit"], 2000);
    assert_eq!(info["bandwidthLimits"]["outgoingLimitActive"], true);
    assert_eq!(info["bandwidthLimits"]["incomingMaxConnections"], 3);
    assert_eq!(info["minCipher"], "aes-256-gcm");
    assert_eq!(info["receiver"]["receiverPorts"], json!([udp]));
    // The log level is live too: the request above is logged at debug now (never before).
    let text = wait_log(&log, &mut child, " DEBUG api: ");
    assert!(
        text.contains("server: reload: log-level = \"debug\": applied"),
        "{text}"
    );

    // A broken file: logged, nothing changes, the server keeps serving.
    fs::write(
        &file,
        format!("{changed}outgoing-rate-limit = \"fast\"\nmin-cipher = \"chacha20-poly1305\"\n"),
    )
    .unwrap();
    hup(&child);
    let text = wait_log(&log, &mut child, "; the running configuration stays");
    assert!(
        text.contains(&format!(
            "server: reload: {}:8: key \"outgoing-rate-limit\": invalid value \"fast\"",
            file.display()
        )),
        "{text}"
    );
    let info = server_info(api, &state);
    assert_eq!(info["bandwidthLimits"]["outgoingRateLimit"], 2000);
    assert_eq!(info["minCipher"], "aes-256-gcm");
    // A value the flag parser accepts but the server refuses: the same.
    fs::write(&file, format!("{changed}min-cipher = \"rot13\"\n")).unwrap();
    hup(&child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("; the running configuration stays")
        .count()
        < 2
    {
        assert!(child.0.try_wait().unwrap().is_none());
        assert!(Instant::now() < deadline, "the bad cipher was not reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    let info = server_info(api, &state);
    assert_eq!(info["minCipher"], "aes-256-gcm");
    assert!(child.0.try_wait().unwrap().is_none());
}
