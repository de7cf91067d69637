//! `--metrics-address`: the Prometheus endpoint, scraped directly and by a real Prometheus
//! server (Debian's `prometheus` package) during a transfer.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::util::*;

/// One HTTP/1.1 GET on loopback; returns (status code, body). The answer ends with the
/// connection (the endpoint keeps none alive; Prometheus's API is asked to close).
fn http_get(port: u16, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_owned()
    };
    (code, body)
}

/// Decodes a chunked body (Go's HTTP server chunks larger answers).
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The value of the sample `name{labels}` in an exposition (`labels` as printed, or "").
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes `/metrics` and returns the text.
fn scrape(port: u16) -> String {
    let (code, body) = http_get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn metrics_count_a_transfer_and_logins() {
    if !can_run() {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let storage = dir.path().join("storage");
    let (ma, mb) = (free_tcp(), free_tcp());
    let a = Srv::start(dir.path(), "a", &["--metrics-address", &ma.to_string()]);
    let b = Srv::start(
        dir.path(),
        "b",
        &[
            "--sandbox-dir",
            &format!("{}/%u", storage.display()),
            "--metrics-address",
            &format!("127.0.0.1:{mb}"),
        ],
    );
    // Before anything happened: the counters are there, at zero.
    let before = scrape(mb);
    assert_eq!(
        sample(&before, "jetstream_received_bytes_total", ""),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &before,
            "jetstream_api_logins_total",
            "method=\"password\",result=\"failed\""
        ),
        Some(0.0),
        "{before}"
    );
    assert!(a
        .log_text()
        .contains(&format!("http://127.0.0.1:{ma}/metrics")));

    // A wrong password at b, then a transfer a -> b (the destination logs in at b).
    let mut c = b.client();
    assert!(c
        .call(
            "auth",
            json!({"userName": user.name(), "password": "wrong"})
        )
        .is_err());
    let src = dir.path().join("src.bin");
    let len = 3 * 1024 * 1024 + 17;
    write(&src, &data(len, 7));
    let mut ca = a.login(user.name(), &pw);
    let d = destination(&mut ca, &b, user.name(), &pw, json!({}));
    let m = manifest(&mut ca, json!({ src.to_str().unwrap(): "/got.bin" })).unwrap();
    let t = transfer(&mut ca, &d, &m, Some("/"));
    let end = wait_end(&mut ca, &t, Duration::from_secs(60));
    assert_eq!(end["status"], "complete", "{end}");

    let at_b = scrape(mb);
    let got = |name: &str, labels: &str| {
        sample(&at_b, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}}:\n{at_b}"))
    };
    assert!(
        got("jetstream_received_bytes_total", "") >= len as f64,
        "{at_b}"
    );
    assert_eq!(got("jetstream_received_files_total", ""), 1.0);
    assert!(
        got("jetstream_sent_bytes_total", "") > 0.0,
        "acknowledgements"
    );
    assert_eq!(
        got(
            "jetstream_api_logins_total",
            "method=\"password\",result=\"failed\""
        ),
        1.0
    );
    assert!(
        got(
            "jetstream_api_logins_total",
            "method=\"password\",result=\"ok\""
        ) >= 1.0
    );
    assert_eq!(
        got(
            "jetstream_transfers",
            "direction=\"receive\",state=\"complete\""
        ),
        1.0
    );
    assert!(got("jetstream_state_dir_free_bytes", "") > 0.0);
    assert!(got("jetstream_state_dir_size_bytes", "") >= got("jetstream_state_dir_free_bytes", ""));

    let at_a = scrape(ma);
    let got = |name: &str, labels: &str| {
        sample(&at_a, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}}:\n{at_a}"))
    };
    assert!(
        got("jetstream_sent_bytes_total", "") >= len as f64,
        "{at_a}"
    );
    assert_eq!(got("jetstream_sent_files_total", ""), 1.0);
    assert_eq!(
        got(
            "jetstream_transfers",
            "direction=\"send\",state=\"complete\""
        ),
        1.0
    );
    assert_eq!(
        got("jetstream_transfers", "direction=\"send\",state=\"error\""),
        0.0
    );

    // Only GET /metrics is served.
    assert_eq!(http_get(mb, "/").0, 404);
    assert_eq!(http_get(mb, "/metrics/../etc").0, 404);
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn metrics_count_rejected_datagrams_and_are_off_by_default() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let port = free_tcp();
    let s = Srv::start(dir.path(), "s", &["--metrics-address", &port.to_string()]);
    // Junk at the data port: too short to be a packet.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        udp.send_to(b"x", ("127.0.0.1", s.udp)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(port);
        let n = sample(
            &text,
            "jetstream_rejected_datagrams_total",
            "reason=\"malformed\"",
        )
        .expect("rejected datagrams");
        if n >= 5.0 {
            break;
        }
        assert!(Instant::now() < deadline, "junk not counted:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A request bigger than the cap is refused, and the endpoint still answers afterwards.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Exactly the cap, all read by the server before it answers (so its close is clean).
    let head = "GET /metrics HTTP/1.1\r\nX: ";
    let _ = big.write_all(format!("{head}{}", "y".repeat(8192 - head.len())).as_bytes());
    let mut answer = String::new();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(http_get(port, "/metrics").0, 200);

    // Without the flag nothing listens beyond the API and data ports: the server's log says
    // nothing of metrics.
    let quiet = Srv::start(dir.path(), "quiet", &[]);
    assert!(
        !quiet.log_text().contains("metrics"),
        "{}",
        quiet.log_text()
    );
}

/// A Prometheus server scraping `target` every second, with its own storage in `dir`;
/// killed and removed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Self {
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: jetstream\n    scrape_interval: 1s\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_tcp();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(dir.join("prometheus.log"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("start prometheus");
        Self { child, port }
    }

    /// The value of an instant query's first sample, if any.
    fn query(&self, q: &str) -> Option<f64> {
        let target = format!("/api/v1/query?query={}", encode(q));
        let (code, body) = TcpStream::connect(("127.0.0.1", self.port))
            .ok()
            .map(|_| http_get(self.port, &target))?;
        if code != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls `q` until `done` holds for its value (30 s at most).
    fn wait(&self, q: &str, done: impl Fn(f64) -> bool, dir: &Path) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.query(q).filter(|&v| done(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {q} never got there (last {:?}); its log:\n{}",
                self.query(q),
                fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Issue 16 item 5: a real Prometheus server scrapes the receiving server while a transfer
/// runs, and the byte counter is read back through Prometheus's own HTTP API.
#[test]
#[ignore = "needs root: system users (PAM)"]
fn prometheus_scrapes_a_server_during_a_transfer() {
    if !need(
        runs("prometheus", &["--version"]),
        "the prometheus server",
        "prometheus",
    ) || !can_run()
    {
        return;
    }
    let (user, pw) = user();
    let dir = scratch();
    let storage = dir.path().join("storage");
    let mb = free_tcp();
    let a = Srv::start(dir.path(), "a", &[]);
    let b = Srv::start(
        dir.path(),
        "b",
        &[
            "--sandbox-dir",
            &format!("{}/%u", storage.display()),
            "--metrics-address",
            &mb.to_string(),
        ],
    );
    let prom_dir = dir.path().join("prometheus");
    fs::create_dir(&prom_dir).unwrap();
    let prom = Prometheus::start(&prom_dir, mb);
    // Prometheus is up and has scraped the server once.
    prom.wait("up{job=\"jetstream\"}", |v| v == 1.0, &prom_dir);

    // 12 MiB at 24 Mbit/s: about 4 s, several scrapes at 1 s.
    let len = 12 * 1024 * 1024;
    let src = dir.path().join("big.bin");
    write(&src, &data(len, 3));
    let mut ca = a.login(user.name(), &pw);
    let d = destination(
        &mut ca,
        &b,
        user.name(),
        &pw,
        json!({ "sendRateMax": 24_000 }),
    );
    let m = manifest(&mut ca, json!({ src.to_str().unwrap(): "/big.bin" })).unwrap();
    let t = transfer(&mut ca, &d, &m, Some("/"));
    // Prometheus sees the receive running: it scraped during the transfer.
    prom.wait(
        "max_over_time(jetstream_transfers{direction=\"receive\",state=\"receiving\"}[1m])",
        |v| v >= 1.0,
        &prom_dir,
    );
    let end = wait_end(&mut ca, &t, Duration::from_secs(60));
    assert_eq!(end["status"], "complete", "{end}");
    let got = prom.wait(
        "jetstream_received_bytes_total",
        |v| v >= len as f64,
        &prom_dir,
    );
    eprintln!("prometheus: jetstream_received_bytes_total = {got} (file {len} bytes)");
    prom.wait("jetstream_received_files_total", |v| v == 1.0, &prom_dir);
    drop(prom);
    fs::remove_dir_all(&prom_dir).unwrap();

    // The scrape job and the alert rules docs/metrics.md gives are what promtool accepts.
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .expect("docs/metrics.md");
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(yaml, _)| yaml))
        .collect();
    let find = |start: &str| {
        *blocks
            .iter()
            .find(|b| b.starts_with(start))
            .unwrap_or_else(|| panic!("no yaml block starting with {start} in docs/metrics.md"))
    };
    for (what, start, file) in [
        ("config", "scrape_configs:", "prometheus.yml"),
        ("rules", "groups:", "rules.yml"),
    ] {
        let path = dir.path().join(file);
        fs::write(&path, find(start)).unwrap();
        let out = Command::new("promtool")
            .args(["check", what])
            .arg(&path)
            .output()
            .expect("promtool (from the prometheus package)");
        assert!(
            out.status.success(),
            "promtool check {what} on docs/metrics.md's block: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs root: the server runs as root"]
fn relay_metrics_show_registration_and_forwarded_datagrams() {
    if !can_run() {
        return;
    }
    let dir = scratch();
    let root = dir.path();
    let port = free_tcp();
    let p_key = super::relay::server_public_key(&root.join("p-state"));
    let relay = super::relay::Relay::start(
        None,
        root,
        "relay",
        &[
            "--authorized-server-key",
            &p_key,
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let poll = |what: &str, done: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = scrape(port);
            if done(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{what}:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // No private server yet: a datagram is dropped, and counted as such.
    udp.send_to(b"hello", ("127.0.0.1", relay.data)).unwrap();
    let text = poll("dropped without a server", &|t| {
        sample(
            t,
            "jetstream_relay_dropped_datagrams_total",
            "reason=\"no_server\"",
        ) == Some(1.0)
    });
    assert_eq!(sample(&text, "jetstream_relay_registered", ""), Some(0.0));
    // The private server registers; then datagrams reach it.
    let _p = Srv::start(
        root,
        "p",
        &[
            "--recv-relay-host",
            "127.0.0.1",
            "--recv-relay-port",
            &relay.control.to_string(),
            "--recv-relay-public-key",
            &relay.key,
        ],
    );
    poll("registered", &|t| {
        sample(t, "jetstream_relay_registered", "") == Some(1.0)
            && sample(t, "jetstream_relay_registrations_total", "") == Some(1.0)
    });
    udp.send_to(b"0123456789", ("127.0.0.1", relay.data))
        .unwrap();
    poll("forwarded to the server", &|t| {
        sample(
            t,
            "jetstream_relay_forwarded_datagrams_total",
            "direction=\"to_server\"",
        ) == Some(1.0)
            && sample(
                t,
                "jetstream_relay_forwarded_bytes_total",
                "direction=\"to_server\"",
            ) == Some(10.0)
    });
}
