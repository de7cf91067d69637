//! The relay: three network namespaces (sender S, relay R, private server P) joined so that S
//! reaches only R. A transfer from S to P goes through the relay, which forwards only
//! ciphertext, and a relay restart is survived.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jetstream_server::tls::Identity;
use serde_json::Value;

use super::util::*;

/// `jetstream api` inside a namespace, as the test user; the JSON result.
fn api(n: &Netns, port: u16, user: &str, pw: &str, args: &[&str]) -> Result<Value, String> {
    let out = n
        .command(bin())
        .args([
            "api",
            "--api-control-port",
            &port.to_string(),
            "--user",
            user,
        ])
        .args(args)
        .env("JETSTREAM_API_PASSWORD", pw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A relay process: inside a namespace on the reference's ports (control 8887, public 8886),
/// or on loopback on free ports. Its stderr (its log) goes to `<root>/<name>.stderr`.
pub struct Relay {
    child: Child,
    stderr: PathBuf,
    /// Its public key, from `relay_server --print-public-key`.
    pub key: String,
    pub control: u16,
    pub data: u16,
    pub api: u16,
}

/// The public key of the relay whose state dir is `state` (created on first use).
pub fn relay_public_key(state: &Path) -> String {
    let out = Command::new(bin())
        .args(["relay_server", "--print-public-key", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "--print-public-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The public key of the server whose state dir is `state`, creating its identity now (as
/// its first start would) so that the relay can be told it before the server starts.
pub fn server_public_key(state: &Path) -> String {
    Identity::load_or_create(state)
        .unwrap()
        .public_key()
        .to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Relay {
    /// Starts `relay_server` with its state in `<root>/<name>-state` and `extra` flags.
    pub fn start(n: Option<&Netns>, root: &Path, name: &str, extra: &[&str]) -> Self {
        let state = root.join(format!("{name}-state"));
        let key = relay_public_key(&state);
        let (control, data, api) = match n {
            Some(_) => (8887, 8886, 8886),
            None => (free_port(), free_port(), free_port()),
        };
        let stderr = root.join(format!("{name}.stderr"));
        let mut c = match n {
            Some(n) => n.command(bin()),
            None => Command::new(bin()),
        };
        c.arg("relay_server")
            .args(["--control-port", &control.to_string()])
            .args(["--data-port", &data.to_string()])
            .args(["--api-port", &api.to_string()]);
        if n.is_none() {
            c.args(["--control-host", "127.0.0.1", "--public-host", "127.0.0.1"]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .unwrap();
        let mut child = c
            .arg("--state-dir")
            .arg(&state)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = match n {
                Some(n) => n
                    .command("bash")
                    .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{control}")])
                    .stderr(Stdio::null())
                    .status()
                    .unwrap()
                    .success(),
                None => TcpStream::connect(("127.0.0.1", control)).is_ok(),
            };
            if up {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "relay exited at start ({status}): {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "relay did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            stderr,
            key,
            control,
            data,
            api,
        }
    }

    /// What the relay logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the relay's log holds `text`.
    pub fn wait_log(&self, text: &str) -> String {
        wait_file(&self.stderr, |t| t.contains(text))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- relay {}:\n{}", self.stderr.display(), self.log_text());
        }
    }
}

fn wait_registered(p_ns: &Netns, p: &Srv, user: &str, pw: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = api(p_ns, p.api, user, pw, &["getServerInfo"]).unwrap();
        if info["receiver"]["relayPort"] == 8886 {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "never registered with the relay: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root: system users (PAM), network namespaces"]
fn a_transfer_crosses_the_relay_which_sees_only_ciphertext_and_survives_a_restart() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let root = dir.path();
    let id = std::process::id();
    let (s_ns, r_ns, p_ns) = (
        Netns::bare(&format!("jsr{id}s")),
        Netns::bare(&format!("jsr{id}r")),
        Netns::bare(&format!("jsr{id}p")),
    );
    s_ns.join("vs", "10.79.1.1", &r_ns, "vrs", "10.79.1.2");
    r_ns.join("vrp", "10.79.2.2", &p_ns, "vp", "10.79.2.1");
    let capture = root.join("relay.capture");
    // Each side pins the other's key (docs/server.md, Relay: the setup steps).
    let p_key = server_public_key(&root.join("p-state"));
    let relay_flags = [
        "--capture",
        capture.to_str().unwrap(),
        "--authorized-server-key",
        &p_key,
    ];
    let mut relay = Relay::start(Some(&r_ns), root, "relay", &relay_flags);
    let storage = root.join("storage");
    let p = Srv::start_in(
        Some(&p_ns),
        root,
        "p",
        &[
            "--recv-relay-host",
            "10.79.2.2",
            "--recv-relay-port",
            "8887",
            "--recv-relay-public-key",
            &relay.key,
            "--sandbox-dir",
            storage.to_str().unwrap(),
        ],
    );
    let s = Srv::start_in(Some(&s_ns), root, "s", &[]);
    let info = wait_registered(&p_ns, &p, u.name(), &pw);
    // The sender cannot reach the private server's API; the relay can (so the probe works).
    let reach = |from: &Netns| {
        from.command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/10.79.2.1/{}", p.api)])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(!reach(&s_ns), "the sender must reach only the relay");
    assert!(reach(&r_ns));
    assert_eq!(info["receiver"]["relayIP"], "10.79.2.2");

    let src = root.join("secret.bin");
    let content = data(24 << 20, 77);
    write(&src, &content);
    let call = |args: &[&str]| {
        api(&s_ns, s.api, u.name(), &pw, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let d = call(&[
        "createDestination",
        "--destinationAddress",
        "10.79.1.2",
        "--destinationApiPort",
        "8886",
        "--userName",
        u.name(),
        "--password",
        &pw,
        "--sendRateMax",
        "100000",
    ]);
    let did = d["destinationId"].as_str().unwrap().to_owned();
    let m = call(&[
        "createManifest",
        "--fileMappings",
        &format!("{}:/via/relay.bin", src.display()),
    ]);
    let mid = m["manifestId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&["getManifest", "--manifestId", &mid])["status"] == "pending" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let wait = |tid: &str, done: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = call(&["getTransfer", "--transferId", tid]);
            if done(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let t = call(&[
        "createTransfer",
        "--destinationId",
        &did,
        "--manifestId",
        &mid,
        "--destinationPath",
        "/one",
    ]);
    let tid = t["transferId"].as_str().unwrap().to_owned();
    let end = wait(&tid, &|t| {
        t["status"] != "pending" && t["status"] != "sending"
    });
    assert_eq!(end["status"], "complete", "{end}");
    assert!(std::fs::read(storage.join("one/via/relay.bin")).unwrap() == content);

    // Everything went through the relay, and the relay saw no plaintext.
    let seen = std::fs::read(&capture).unwrap();
    assert!(
        seen.len() >= content.len(),
        "the data crossed the relay: {} bytes",
        seen.len()
    );
    for at in [1 << 20, 10 << 20, 20 << 20] {
        let needle = &content[at..at + 64];
        assert!(
            !seen.windows(64).any(|w| w == needle),
            "plaintext at {at} seen by the relay"
        );
    }

    // A relay restart mid-transfer is survived.
    let t = call(&[
        "createTransfer",
        "--destinationId",
        &did,
        "--manifestId",
        &mid,
        "--destinationPath",
        "/two",
    ]);
    let tid = t["transferId"].as_str().unwrap().to_owned();
    let mid_way = wait(&tid, &|t| {
        t["bytesAcked"].as_u64() > Some(4 << 20) || t["status"] == "complete"
    });
    assert_eq!(
        mid_way["status"], "sending",
        "still running when the relay goes: {mid_way}"
    );
    drop(relay);
    relay = Relay::start(Some(&r_ns), root, "relay", &relay_flags);
    let end = wait(&tid, &|t| {
        t["status"] == "complete" || t["status"] == "error"
    });
    assert_eq!(end["status"], "complete", "{end}");
    assert!(
        end["attempts"].as_u64() >= Some(2),
        "it was interrupted and resumed: {end}"
    );
    assert!(std::fs::read(storage.join("two/via/relay.bin")).unwrap() == content);
    drop(relay);
}
