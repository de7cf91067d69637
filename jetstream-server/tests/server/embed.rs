//! The server as a library (issue 17, items 3 and 4): `spawn` in this process, a handle with
//! the bound addresses, stop and wait that never exit the process, typed start-up errors, and
//! the events delivered to an in-process trigger in order, none dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use crossbeam_channel::Receiver;
use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
use jetstream_server::{Port, ServerConfig, ServerError, ServerEvent, ServerHandle, ServerTrigger};
use serde_json::json;

use super::util::*;

/// The example program, built into this suite so that it runs with every `cargo test`.
#[allow(dead_code)]
#[path = "../../../examples/asset_manager.rs"]
mod asset_manager;

const T: Duration = Duration::from_secs(30);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(state: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(state);
    c.api_address(loopback())
        .data_address(loopback())
        .allow_remote_control(false)
        .trigger_dir(state.join("triggers"));
    c
}

/// A client logged in with the server's local token.
fn client(h: &ServerHandle) -> ApiClient {
    let a = h.api_addr();
    let mut c = ApiClient::connect(
        "127.0.0.1",
        a.port(),
        &ConnectOptions::new(Trust::Pinned(None)),
    )
    .unwrap();
    c.call("authToken", json!({ "token": h.local_token().unwrap() }))
        .unwrap();
    c
}

/// The next event, within `T`.
fn next(events: &Receiver<ServerEvent>) -> ServerEvent {
    events.recv_timeout(T).expect("an event within 30 s")
}

#[test]
fn the_asset_manager_example_runs() {
    let dir = scratch();
    let received = asset_manager::run(dir.path());
    assert_eq!(received.len(), 3);
    for path in &received {
        let name = path
            .strip_prefix(dir.path().join("inbox"))
            .expect("under the inbox");
        let sent = std::fs::read(dir.path().join("assets").join(name)).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), sent, "{}", path.display());
    }
}

#[test]
fn port_zero_is_reported_and_stop_neither_exits_nor_leaves_the_port_open() {
    let dir = scratch();
    let (tx, events) = crossbeam_channel::unbounded();
    let h = jetstream_server::spawn_with_trigger(config(dir.path()), tx).unwrap();
    assert_ne!(h.api_addr().port(), 0);
    assert_ne!(h.data_addr().port(), 0);
    assert_eq!(h.data_addrs().len(), 1);
    assert_eq!(h.metrics_addr(), None);
    assert_eq!(
        next(&events),
        ServerEvent::Launch {
            api_addr: h.api_addr()
        }
    );
    let mut c = client(&h);
    let v = c.call("echo", json!({ "text": "hi" })).unwrap();
    assert_eq!(v["text"], "hi");
    h.stop().unwrap();
    assert!(h.is_stopping());
    // A second wait returns at once.
    h.wait().unwrap();
    assert!(
        TcpStream::connect_timeout(&h.api_addr(), Duration::from_secs(2)).is_err(),
        "the API port is closed"
    );
    // The event channel ends: the server's delivery thread is gone.
    let mut rest = Vec::new();
    while let Ok(e) = events.recv_timeout(T) {
        rest.push(e);
    }
    assert!(
        rest.iter().any(
            |e| matches!(e, ServerEvent::CommandProcessed { command, .. } if command == "echo")
        ),
        "{rest:?}"
    );
}

/// With a metrics endpoint on port 0: its bound port is reported, it answers, and `stop`
/// closes it too (its thread used to run on, holding the port, after the server stopped).
#[test]
fn stop_closes_the_metrics_port() {
    let dir = scratch();
    let mut c = config(dir.path());
    c.metrics_address(loopback());
    let h = jetstream_server::spawn(c).unwrap();
    let m = h.metrics_addr().expect("a metrics address");
    assert_ne!(m.port(), 0);
    let mut tcp = TcpStream::connect_timeout(&m, Duration::from_secs(2)).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    h.stop().unwrap();
    h.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&m, Duration::from_secs(1)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the metrics port {m} still accepts after stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn start_up_errors_are_typed() {
    let dir = scratch();
    let busy = TcpListener::bind(loopback()).unwrap();
    let mut c = config(&dir.path().join("a"));
    c.api_address(busy.local_addr().unwrap());
    let e = jetstream_server::spawn(c).unwrap_err();
    assert!(
        matches!(
            e,
            ServerError::Bind {
                port: Port::Api,
                kind: std::io::ErrorKind::AddrInUse,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains(&busy.local_addr().unwrap().to_string()),
        "{e}"
    );

    let c = ServerConfig::from_flags(&["--min-cipher=rot13"]).unwrap();
    let e = jetstream_server::spawn(c).unwrap_err();
    assert!(
        matches!(&e, ServerError::Config { option, .. } if option == "min-cipher"),
        "{e:?}"
    );
    assert!(ServerConfig::from_flags(&["--no-such-flag"]).is_err());

    // A state directory below a file cannot be created.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = jetstream_server::spawn(config(&file.join("state"))).unwrap_err();
    assert!(matches!(e, ServerError::StateDir { .. }), "{e:?}");
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn the_terminate_command_ends_wait_without_ending_the_process() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let mut c = ServerConfig::from_flags(&["--superuser", u.name()]).unwrap();
    c.state_dir(dir.path())
        .api_address(loopback())
        .data_address(loopback())
        .trigger_dir(dir.path().join("triggers"));
    let h = jetstream_server::spawn(c).unwrap();
    let mut c = ApiClient::connect(
        "127.0.0.1",
        h.api_addr().port(),
        &ConnectOptions::new(Trust::Pinned(None)),
    )
    .unwrap();
    c.call("auth", json!({"userName": u.name(), "password": pw}))
        .unwrap();
    c.call("superuser", json!({})).unwrap();
    c.call("terminate", json!({})).unwrap();
    let (done, finished) = crossbeam_channel::bounded(1);
    let waiter = h.clone();
    std::thread::spawn(move || done.send(waiter.wait()).unwrap());
    finished.recv_timeout(T).expect("stopped").unwrap();
    assert!(h.is_stopping());
}

/// Forwards each event once the test lets it through, one at a time.
struct Gated {
    gate: Receiver<()>,
    out: crossbeam_channel::Sender<ServerEvent>,
}

impl ServerTrigger for Gated {
    fn on_event(&mut self, event: &ServerEvent) {
        self.gate.recv().unwrap();
        self.out.send(event.clone()).unwrap();
    }
}

/// With a queue of one event and a trigger that is slower than the server, nothing is dropped:
/// the server waits, and every event arrives, in order.
#[test]
fn a_slow_trigger_loses_no_event() {
    let dir = scratch();
    let (open, gate) = crossbeam_channel::unbounded();
    let (out, events) = crossbeam_channel::unbounded();
    let mut c = config(dir.path());
    c.event_queue(1);
    let h = jetstream_server::spawn_with_trigger(c, Gated { gate, out }).unwrap();
    let mut api = client(&h);
    const N: usize = 6;
    let caller = std::thread::spawn(move || {
        for i in 0..N {
            api.call("echo", json!({ "text": i })).unwrap();
        }
    });
    open.send(()).unwrap();
    assert!(matches!(next(&events), ServerEvent::Launch { .. }));
    // authToken, then the echoes.
    open.send(()).unwrap();
    assert!(
        matches!(next(&events), ServerEvent::CommandProcessed { command, .. } if command == "authToken")
    );
    for i in 0..N {
        open.send(()).unwrap();
        match next(&events) {
            ServerEvent::CommandProcessed {
                command, request, ..
            } => {
                assert_eq!(command, "echo");
                assert_eq!(request["parameters"]["text"], i, "in order");
            }
            other => panic!("{other:?}"),
        }
    }
    caller.join().unwrap();
    for _ in 0..16 {
        open.send(()).unwrap();
    }
    h.stop().unwrap();
}

/// The lines the sink took (the newest), for `the_program_can_take_the_log_lines`.
static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A program that embeds servers takes their log lines into its own logging. (The sink is process-wide: the other servers of this test binary log
/// through it too, and it passes every line on to stderr as before.)
#[test]
fn the_program_can_take_the_log_lines() {
    use jetstream_server::server::log::{self, Level};
    log::to_sink(|level: Level, line: &str| {
        eprintln!("{} {line}", level.label());
        let mut lines = LINES.lock().unwrap();
        if lines.len() >= 10_000 {
            lines.drain(..5_000);
        }
        lines.push(format!("{level} {line}"));
    });
    let dir = scratch();
    let name = format!("embedded-{}", std::process::id());
    let mut c = config(dir.path());
    c.server_name(&name);
    let h = jetstream_server::spawn(c).unwrap();
    h.stop().unwrap();
    let lines = LINES.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("info server: ") && l.contains(&format!("{name} listening"))),
        "{lines:?}"
    );
}
