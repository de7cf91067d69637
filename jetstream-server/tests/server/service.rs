//! Running under systemd (`packaging/systemd/`): readiness (`Type=notify`: `READY=1` on
//! `$NOTIFY_SOCKET` once the ports are bound) for the server and the relay, and `systemctl
//! reload` (`SIGHUP`: the server reopens its `--log` file after a rotation and keeps serving).
//! Issue 16, item 3.

use std::fs;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::*;

/// A notification socket like systemd's; returns it and its path.
fn notify_socket(dir: &Path) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    (sock, path)
}

/// Waits for one notification; panics if none comes in 20 s or the process exits first.
fn notification(sock: &UnixDatagram, child: &mut Proc) -> String {
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!(
            "no notification within 20 s ({e}); process: {:?}",
            child.0.try_wait()
        ),
    }
}

/// Whether `port` is taken on 127.0.0.1 for UDP.
fn udp_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

fn server(dir: &Path, notify: &Path, api: u16, udp: u16) -> Proc {
    Proc(
        Command::new(bin())
            .arg("server")
            .args(["--api-host", "127.0.0.1", "--recv-host", "127.0.0.1"])
            .args([
                "--api-port",
                &api.to_string(),
                "--recv-port",
                &udp.to_string(),
            ])
            .arg("--persistent-state-dir")
            .arg(dir.join("state"))
            .arg("--log")
            .arg(dir.join("server.log"))
            .env("NOTIFY_SOCKET", notify)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jetstream server"),
    )
}

#[test]
fn the_server_tells_systemd_it_is_ready_once_its_ports_are_bound() {
    let dir = scratch();
    let (sock, path) = notify_socket(dir.path());
    let (api, udp) = (free_tcp(), free_udp());
    let mut child = server(dir.path(), &path, api, udp);
    let msg = notification(&sock, &mut child);
    let lines: Vec<&str> = msg.lines().collect();
    assert!(lines.contains(&"READY=1"), "{msg:?}");
    assert!(
        lines.contains(&format!("MAINPID={}", child.0.id()).as_str()),
        "{msg:?}"
    );
    // Ready means bound: the API port accepts (queued until served) and the data port is taken.
    TcpStream::connect(("127.0.0.1", api)).expect("API port bound at READY=1");
    assert!(udp_taken(udp), "data port bound at READY=1");
}

#[test]
fn the_relay_tells_systemd_it_is_ready_once_its_ports_are_bound() {
    let dir = scratch();
    let (sock, path) = notify_socket(dir.path());
    let (control, api, udp) = (free_tcp(), free_tcp(), free_udp());
    let mut child = Proc(
        Command::new(bin())
            .arg("relay_server")
            .args(["--control-host", "127.0.0.1", "--public-host", "127.0.0.1"])
            .args(["--control-port", &control.to_string()])
            .args(["--api-port", &api.to_string()])
            .args(["--data-port", &udp.to_string()])
            .arg("--state-dir")
            .arg(dir.path().join("relay-state"))
            // Any well-formed key: readiness does not depend on which server may register.
            .args(["--authorized-server-key", &"ab".repeat(91)])
            .env("NOTIFY_SOCKET", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jetstream relay_server"),
    );
    let msg = notification(&sock, &mut child);
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    TcpStream::connect(("127.0.0.1", control)).expect("control port bound at READY=1");
    TcpStream::connect(("127.0.0.1", api)).expect("API port bound at READY=1");
    assert!(udp_taken(udp), "data port bound at READY=1");
}

#[test]
fn sighup_reopens_the_log_file_and_the_server_keeps_serving() {
    let dir = scratch();
    let (sock, path) = notify_socket(dir.path());
    let (api, udp) = (free_tcp(), free_udp());
    let mut child = server(dir.path(), &path, api, udp);
    notification(&sock, &mut child);
    let log = dir.path().join("server.log");
    let rotated = dir.path().join("server.log.1");
    // What logrotate does: move the file away, then ask for a reload.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(" listening: ")
    {
        assert!(Instant::now() < deadline, "no start-up line in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::rename(&log, &rotated).unwrap();
    let st = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("server: SIGHUP: log file reopened")
    {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the server died of SIGHUP"
        );
        assert!(Instant::now() < deadline, "the log file was not reopened");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still serving, and the old lines stayed in the rotated file.
    let ok = Command::new(bin())
        .args(["api", "--api-control-port", &api.to_string(), "echo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "API answers after SIGHUP");
    assert!(child.0.try_wait().unwrap().is_none());
    assert!(fs::read_to_string(&rotated)
        .unwrap()
        .contains(" listening: "));
}
