//! The Prometheus endpoint (`--metrics-address`): what an operator graphs and alerts on, in the
//! OpenMetrics text format of the Prometheus org's `prometheus-client` crate.
//!
//! Most numbers are read at scrape time from the state that already holds them (a collector,
//! not increments sprinkled through the code): transfers by state from the transfer records,
//! traffic and rejected datagrams from the engines' own counters (which keep what closed
//! sessions carried, so garbage-collected records lose nothing), throttled sources from the
//! login throttle, trigger counts from the trigger runner, disk space from statvfs. Only events
//! that leave no state behind are counted where they happen: logins, completed files.
//!
//! The HTTP side is a few lines over a std `TcpListener` on its own thread, deliberately: one
//! connection at a time, a request of at most 8 KiB read within 5 s, `GET /metrics` or a 404,
//! and the connection closed after every answer (no keep-alive). A scraper is one client every
//! few seconds; nothing here needs an HTTP library or an async runtime.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jetstream_core::proto::{EndpointStats, TrafficStats};
use jetstream_core::transfer::TransferState;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::objects::TxStatus;
use super::Server;

/// The content type of the OpenMetrics text format (what Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Largest request read (request line and headers).
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client has to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The window the send and receive rates are averaged over, at most.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Label set of the login counter: `method` (password | token) and `result` (ok | failed |
/// throttled).
type LoginLabels = [(&'static str, &'static str); 2];

/// How a login attempt ended, for [`Metrics::login`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginResult {
    /// Refused: wrong credentials, unknown or expired token, or an error.
    Failed,
    /// Logged in.
    Ok,
    /// Refused by the throttle without checking the credentials.
    Throttled,
}

/// The counters of events that leave no state to read at scrape time, and what the engines
/// that are gone had counted.
#[derive(Debug, Default)]
pub struct Metrics {
    logins: Family<LoginLabels, Counter>,
    files_sent: Counter,
    files_received: Counter,
    /// Traffic and drops of the destination engines already closed (a deleted destination's).
    retired: Mutex<(TrafficStats, EndpointStats)>,
    rates: Mutex<RateSampler>,
}

impl Metrics {
    /// Counts a login attempt; `method` is `password` (`auth`) or `token` (`authToken`).
    pub fn login(&self, method: &'static str, result: LoginResult) {
        let result = match result {
            LoginResult::Failed => "failed",
            LoginResult::Ok => "ok",
            LoginResult::Throttled => "throttled",
        };
        self.logins
            .get_or_create(&[("method", method), ("result", result)])
            .inc();
    }

    /// Counts the files of a sending transfer that completed.
    pub fn files_sent(&self, n: u64) {
        self.files_sent.inc_by(n);
    }

    /// Counts the files of a receive that completed.
    pub fn files_received(&self, n: u64) {
        self.files_received.inc_by(n);
    }

    /// Keeps the counters of an engine about to close, so that the totals never go down.
    pub fn retire(&self, traffic: TrafficStats, dropped: EndpointStats) {
        let mut r = self.retired.lock();
        add_traffic(&mut r.0, &traffic);
        add_dropped(&mut r.1, &dropped);
    }
}

fn add_traffic(to: &mut TrafficStats, t: &TrafficStats) {
    to.bytes_sent += t.bytes_sent;
    to.bytes_recv += t.bytes_recv;
    to.bytes_retransmitted += t.bytes_retransmitted;
}

fn add_dropped(to: &mut EndpointStats, d: &EndpointStats) {
    to.malformed += d.malformed;
    to.unknown_session += d.unknown_session;
    to.rejected += d.rejected;
}

/// Samples of the traffic totals taken at scrapes: the current rates are the change over the
/// time since the previous scrape, or over the last [`RATE_WINDOW`] when scraped more often.
#[derive(Debug, Default)]
struct RateSampler {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl RateSampler {
    /// Adds a sample at `now`; returns the (send, receive) rates in bytes/s.
    fn sample(&mut self, now: Instant, sent: u64, recv: u64) -> (u64, u64) {
        // Keep the newest sample older than the window, and the ones inside it.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|s| now.duration_since(s.0) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let rates = match self.samples.front() {
            Some(&(t, s, r)) if now.duration_since(t) >= Duration::from_millis(100) => {
                let secs = now.duration_since(t).as_secs_f64();
                let per_s = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs) as u64;
                (per_s(sent, s), per_s(recv, r))
            }
            _ => (0, 0),
        };
        self.samples.push_back((now, sent, recv));
        // Bounded whatever the scrape rate: at most one sample per 100 ms is needed.
        if self.samples.len() > 128 {
            self.samples.pop_front();
        }
        rates
    }
}

/// What a scrape reads from the server, gathered before encoding (and testable without one).
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sending transfers by state.
    pub sends: Vec<(&'static str, u64)>,
    /// Receives by state.
    pub receives: Vec<(&'static str, u64)>,
    /// Engines' traffic, closed engines included.
    pub traffic: TrafficStats,
    /// Datagrams dropped before any session, closed engines included.
    pub dropped: EndpointStats,
    /// Current rates, bytes/s.
    pub send_rate: u64,
    /// As above.
    pub receive_rate: u64,
    /// Sources refused by the login throttle now.
    pub throttled_sources: u64,
    /// Trigger scripts run, failed, refused, dropped.
    pub trigger_runs: u64,
    /// As above.
    pub trigger_failures: u64,
    /// As above.
    pub trigger_refused: u64,
    /// As above.
    pub trigger_dropped: u64,
    /// State directory file system: size and free bytes (`None`: statvfs failed).
    pub disk: Option<(u64, u64)>,
    /// Start time, seconds since the epoch.
    pub start_time: f64,
}

/// Reads the server's state for a scrape.
pub fn snapshot(server: &Server) -> Snapshot {
    let (sends, receives) = {
        let objs = server.objects.lock();
        let mut sends: Vec<(&'static str, u64)> = [
            TxStatus::Pending,
            TxStatus::Sending,
            TxStatus::Suspended,
            TxStatus::Complete,
            TxStatus::Error,
            TxStatus::Cancelled,
        ]
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
        for t in objs.transfers.values() {
            if let Some(e) = sends.iter_mut().find(|e| e.0 == t.status.as_str()) {
                e.1 += 1;
            }
        }
        let mut receives: Vec<(&'static str, u64)> =
            vec![("receiving", 0), ("complete", 0), ("error", 0)];
        for r in objs.receives.values() {
            // A receive the API has not looked at since it ended still says "receiving": its
            // engine transfer knows better. Read without updating the record (a refresh
            // would also move its lastRecvTime, which garbage collection goes by).
            let state = match r.handle.as_ref().map(|h| h.status().state) {
                Some(TransferState::Complete) if r.status == "receiving" => "complete",
                Some(TransferState::Error | TransferState::Cancelled)
                    if r.status == "receiving" =>
                {
                    "error"
                }
                _ => r.status.as_str(),
            };
            if let Some(e) = receives.iter_mut().find(|e| e.0 == state) {
                e.1 += 1;
            }
        }
        (sends, receives)
    };
    let (mut traffic, mut dropped) = *server.metrics.retired.lock();
    let mut engines: Vec<jetstream_core::EngineHandle> = server.receive_engines().to_vec();
    engines.extend(server.destination_engines());
    for e in &engines {
        if let Ok(info) = e.info() {
            add_traffic(&mut traffic, &info.traffic);
            add_dropped(&mut dropped, &info.dropped);
        }
    }
    let (send_rate, receive_rate) =
        server
            .metrics
            .rates
            .lock()
            .sample(Instant::now(), traffic.bytes_sent, traffic.bytes_recv);
    Snapshot {
        sends,
        receives,
        traffic,
        dropped,
        send_rate,
        receive_rate,
        throttled_sources: server.auth.throttled_sources() as u64,
        trigger_runs: server.triggers.runs(),
        trigger_failures: server.triggers.failures(),
        trigger_refused: server.triggers.refused(),
        trigger_dropped: server.triggers.dropped(),
        disk: super::sys::disk_space(server.state.path()).ok(),
        start_time: server.start_time as f64 / 1e6,
    }
}

/// The OpenMetrics text of `snap` and the event counters of `m`.
pub fn render(m: &Metrics, snap: &Snapshot) -> String {
    let mut reg = Registry::default();
    reg.register(
        "jetstream_build",
        "The server's version",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    reg.register_with_unit(
        "jetstream_start_time",
        "When the server started, since the Unix epoch",
        Unit::Seconds,
        ConstGauge::new(snap.start_time),
    );
    let counter =
        |reg: &mut Registry, name: &str, help: &str, unit: Option<Unit>, v: u64| match unit {
            Some(u) => reg.register_with_unit(name, help, u, ConstCounter::new(v)),
            None => reg.register(name, help, ConstCounter::new(v)),
        };
    counter(
        &mut reg,
        "jetstream_sent",
        "UDP payload bytes sent by transfers on the data ports (data, and acknowledgements of receives)",
        Some(Unit::Bytes),
        snap.traffic.bytes_sent,
    );
    counter(
        &mut reg,
        "jetstream_received",
        "UDP payload bytes received and authenticated by transfers on the data ports",
        Some(Unit::Bytes),
        snap.traffic.bytes_recv,
    );
    counter(
        &mut reg,
        "jetstream_retransmitted",
        "Payload bytes sent again because they were lost",
        Some(Unit::Bytes),
        snap.traffic.bytes_retransmitted,
    );
    reg.register(
        "jetstream_sent_files",
        "Files of sending transfers that completed",
        m.files_sent.clone(),
    );
    reg.register(
        "jetstream_received_files",
        "Files of receives that completed",
        m.files_received.clone(),
    );
    let transfers = Family::<[(&'static str, &'static str); 2], Gauge>::default();
    for (direction, states) in [("send", &snap.sends), ("receive", &snap.receives)] {
        for &(state, n) in states {
            transfers
                .get_or_create(&[("direction", direction), ("state", state)])
                .set(n as i64);
        }
    }
    reg.register(
        "jetstream_transfers",
        "Transfer records the server holds, by direction and state (finished ones until \
         garbage-collected)",
        transfers,
    );
    reg.register(
        "jetstream_send_rate_bytes_per_second",
        "Bytes sent per second on the data ports, averaged since the previous scrape (10 s at most)",
        ConstGauge::new(snap.send_rate as i64),
    );
    reg.register(
        "jetstream_receive_rate_bytes_per_second",
        "Bytes received per second on the data ports, averaged since the previous scrape (10 s at most)",
        ConstGauge::new(snap.receive_rate as i64),
    );
    let rejected = Family::<[(&'static str, &'static str); 1], Counter>::default();
    for (reason, n) in [
        ("malformed", snap.dropped.malformed),
        ("unknown_session", snap.dropped.unknown_session),
        ("unauthenticated", snap.dropped.rejected),
    ] {
        rejected.get_or_create(&[("reason", reason)]).inc_by(n);
    }
    reg.register(
        "jetstream_rejected_datagrams",
        "Datagrams dropped on the data ports before reaching a transfer: malformed, for no \
         known session, or failing authentication (forged, replayed)",
        rejected,
    );
    // Every combination is shown from the start, so that a rate() over it has a series.
    for method in ["password", "token"] {
        for result in ["ok", "failed", "throttled"] {
            let _created = m
                .logins
                .get_or_create(&[("method", method), ("result", result)]);
        }
    }
    reg.register(
        "jetstream_api_logins",
        "API login attempts, by method (password: auth, token: authToken) and result (ok, \
         failed, throttled: refused unchecked after too many failures)",
        m.logins.clone(),
    );
    reg.register(
        "jetstream_api_throttled_sources",
        "Sources (IPv4 addresses, IPv6 /64s) whose logins are refused now after too many failures",
        ConstGauge::new(snap.throttled_sources as i64),
    );
    counter(
        &mut reg,
        "jetstream_trigger_runs",
        "Trigger scripts started",
        None,
        snap.trigger_runs,
    );
    counter(
        &mut reg,
        "jetstream_trigger_failures",
        "Trigger scripts that could not start or did not exit with status 0",
        None,
        snap.trigger_failures,
    );
    counter(
        &mut reg,
        "jetstream_trigger_refused",
        "Trigger scripts refused because another account could have written them",
        None,
        snap.trigger_refused,
    );
    counter(
        &mut reg,
        "jetstream_trigger_dropped",
        "Trigger events dropped because the queue of scripts to run was full",
        None,
        snap.trigger_dropped,
    );
    if let Some((size, free)) = snap.disk {
        reg.register_with_unit(
            "jetstream_state_dir_size",
            "Size of the file system holding the state directory",
            Unit::Bytes,
            ConstGauge::new(size),
        );
        reg.register_with_unit(
            "jetstream_state_dir_free",
            "Bytes free for unprivileged users on the file system holding the state directory",
            Unit::Bytes,
            ConstGauge::new(free),
        );
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// Parses `--metrics-address`: `ADDR:PORT`, `HOST:PORT` or a bare `PORT` (127.0.0.1).
///
/// # Errors
/// Not an address, or a host name that does not resolve.
pub fn parse_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("--metrics-address {s}: {e} (expected ADDR:PORT or PORT)"))?
        .next()
        .ok_or_else(|| format!("--metrics-address {s}: no address"))
}

/// Binds `--metrics-address` if given (before the server says it is ready, so that a port in
/// use stops the start with a clear error).
///
/// # Errors
/// A bad address, or the port cannot be bound.
pub fn bind(address: Option<&str>) -> Result<Option<TcpListener>, String> {
    let Some(s) = address else { return Ok(None) };
    let addr = parse_address(s)?;
    let l = TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on the metrics address {addr}: {e}"))?;
    if !addr.ip().is_loopback() {
        crate::warn!(
            "metrics: warning: {addr} is not a loopback address; the metrics are served \
             without authentication to whoever reaches it"
        );
    }
    Ok(Some(l))
}

/// Serves `GET /metrics` on `listener` from its own thread, one connection at a time.
///
/// # Errors
/// The thread cannot start.
pub fn serve(server: &Arc<Server>, listener: TcpListener) -> Result<(), String> {
    let s = server.clone();
    let stopping = server.clone();
    serve_http(
        listener,
        move || render(&s.metrics, &snapshot(&s)),
        move || stopping.is_stopping(),
    )
}

/// Serves the text `render` makes at `GET /metrics` on `listener`, from a thread of its own,
/// one connection at a time (the server's and the relay's endpoint), until `stopped` says so
/// after a connection (whoever stops it then connects once, to wake the thread): the thread
/// ends and the port closes.
///
/// # Errors
/// The thread cannot start.
pub fn serve_http(
    listener: TcpListener,
    render: impl Fn() -> String + Send + 'static,
    stopped: impl Fn() -> bool + Send + 'static,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    crate::log!("metrics: serving http://{addr}/metrics");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stopped() {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                answer(tcp, &render);
            }
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Reads one request and answers it; every error just closes the connection.
fn answer(mut tcp: TcpStream, render: &dyn Fn() -> String) {
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST || Instant::now() >= deadline {
            let _ = respond(
                &mut tcp,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            );
            return;
        }
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = render();
            let _ = respond(&mut tcp, "200 OK", CONTENT_TYPE, body.as_bytes());
        }
        (_, "/metrics") => {
            let _ = respond(
                &mut tcp,
                "405 Method Not Allowed",
                "text/plain",
                b"GET only\n",
            );
        }
        _ => {
            let _ = respond(&mut tcp, "404 Not Found", "text/plain", b"see /metrics\n");
        }
    }
}

fn respond(tcp: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes())?;
    tcp.write_all(body)?;
    tcp.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the exposition: `# TYPE` lines by family name, and samples as (name, labels,
    /// value).
    /// (name, labels, value).
    type Sample = (String, String, f64);

    fn parse(text: &str) -> (Vec<(String, String)>, Vec<Sample>) {
        let mut types = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').expect("TYPE name type");
                types.push((name.to_owned(), ty.to_owned()));
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("sample");
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                samples.push((name.to_owned(), labels.to_owned(), value.parse().unwrap()));
            }
        }
        (types, samples)
    }

    fn value(samples: &[Sample], name: &str, labels: &str) -> f64 {
        samples
            .iter()
            .find(|s| s.0 == name && s.1 == labels)
            .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
            .2
    }

    #[test]
    fn exposition_has_the_documented_names_types_and_labels() {
        let m = Metrics::default();
        m.login("password", LoginResult::Ok);
        m.login("password", LoginResult::Failed);
        m.login("password", LoginResult::Failed);
        m.login("token", LoginResult::Throttled);
        m.files_sent(3);
        m.files_received(2);
        m.retire(
            TrafficStats {
                bytes_sent: 10,
                bytes_recv: 20,
                bytes_retransmitted: 1,
            },
            EndpointStats {
                malformed: 1,
                unknown_session: 0,
                rejected: 0,
            },
        );
        let snap = Snapshot {
            sends: vec![("pending", 1), ("sending", 2), ("complete", 0)],
            receives: vec![("receiving", 4)],
            traffic: TrafficStats {
                bytes_sent: 1000,
                bytes_recv: 2000,
                bytes_retransmitted: 30,
            },
            dropped: EndpointStats {
                malformed: 5,
                unknown_session: 6,
                rejected: 7,
            },
            send_rate: 123,
            receive_rate: 456,
            throttled_sources: 2,
            trigger_runs: 9,
            trigger_failures: 1,
            trigger_refused: 0,
            trigger_dropped: 0,
            disk: Some((1 << 30, 1 << 20)),
            start_time: 1.5e9,
        };
        let text = render(&m, &snap);
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF:\n{text}"
        );
        let (types, samples) = parse(&text);
        let ty = |name: &str| {
            types
                .iter()
                .find(|t| t.0 == name)
                .unwrap_or_else(|| panic!("no TYPE for {name}:\n{text}"))
                .1
                .clone()
        };
        for (family, t) in [
            ("jetstream_build", "info"),
            ("jetstream_start_time_seconds", "gauge"),
            ("jetstream_sent_bytes", "counter"),
            ("jetstream_received_bytes", "counter"),
            ("jetstream_retransmitted_bytes", "counter"),
            ("jetstream_sent_files", "counter"),
            ("jetstream_received_files", "counter"),
            ("jetstream_transfers", "gauge"),
            ("jetstream_send_rate_bytes_per_second", "gauge"),
            ("jetstream_receive_rate_bytes_per_second", "gauge"),
            ("jetstream_rejected_datagrams", "counter"),
            ("jetstream_api_logins", "counter"),
            ("jetstream_api_throttled_sources", "gauge"),
            ("jetstream_trigger_runs", "counter"),
            ("jetstream_trigger_failures", "counter"),
            ("jetstream_trigger_refused", "counter"),
            ("jetstream_trigger_dropped", "counter"),
            ("jetstream_state_dir_size_bytes", "gauge"),
            ("jetstream_state_dir_free_bytes", "gauge"),
        ] {
            assert_eq!(ty(family), t, "{family}");
        }
        let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
        assert_eq!(value(&samples, "jetstream_build_info", &version), 1.0);
        // The snapshot's engine totals are shown as they are (retired engines are added when
        // the snapshot is taken, not again here).
        assert_eq!(value(&samples, "jetstream_sent_bytes_total", ""), 1000.0);
        assert_eq!(
            value(&samples, "jetstream_received_bytes_total", ""),
            2000.0
        );
        assert_eq!(
            value(&samples, "jetstream_retransmitted_bytes_total", ""),
            30.0
        );
        assert_eq!(value(&samples, "jetstream_sent_files_total", ""), 3.0);
        assert_eq!(value(&samples, "jetstream_received_files_total", ""), 2.0);
        let t = |d: &str, s: &str| {
            value(
                &samples,
                "jetstream_transfers",
                &format!("direction=\"{d}\",state=\"{s}\""),
            )
        };
        assert_eq!(t("send", "sending"), 2.0);
        assert_eq!(t("send", "pending"), 1.0);
        assert_eq!(t("receive", "receiving"), 4.0);
        let rej = |r: &str| {
            value(
                &samples,
                "jetstream_rejected_datagrams_total",
                &format!("reason=\"{r}\""),
            )
        };
        assert_eq!(
            (
                rej("malformed"),
                rej("unknown_session"),
                rej("unauthenticated")
            ),
            (5.0, 6.0, 7.0)
        );
        let login = |m: &str, r: &str| {
            value(
                &samples,
                "jetstream_api_logins_total",
                &format!("method=\"{m}\",result=\"{r}\""),
            )
        };
        assert_eq!(login("password", "ok"), 1.0);
        assert_eq!(login("password", "failed"), 2.0);
        assert_eq!(login("token", "throttled"), 1.0);
        assert_eq!(login("token", "ok"), 0.0, "every combination is present");
        assert_eq!(value(&samples, "jetstream_api_throttled_sources", ""), 2.0);
        assert_eq!(value(&samples, "jetstream_trigger_runs_total", ""), 9.0);
        assert_eq!(value(&samples, "jetstream_trigger_failures_total", ""), 1.0);
        assert_eq!(
            value(&samples, "jetstream_send_rate_bytes_per_second", ""),
            123.0
        );
        assert_eq!(
            value(&samples, "jetstream_state_dir_free_bytes", ""),
            1048576.0
        );
        // Every counter sample ends in _total, and every sample belongs to a TYPE'd family.
        for (name, _, _) in &samples {
            let family = types
                .iter()
                .find(|t| {
                    name == &t.0
                        || name
                            .strip_prefix(t.0.as_str())
                            .is_some_and(|s| s.starts_with('_'))
                })
                .unwrap_or_else(|| panic!("{name} has no TYPE"));
            if family.1 == "counter" {
                assert!(
                    name.ends_with("_total") || name.ends_with("_created"),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn rates_are_the_change_since_the_previous_scrape_within_ten_seconds() {
        let mut r = RateSampler::default();
        let t0 = Instant::now();
        assert_eq!(r.sample(t0, 0, 0), (0, 0), "one sample has no rate");
        assert_eq!(
            r.sample(t0 + Duration::from_secs(2), 2000, 4000),
            (1000, 2000)
        );
        // Scraped every 2 s: the rate covers the last 10 s.
        for i in 2..=10 {
            r.sample(t0 + Duration::from_secs(2 * i), 2000 * i, 0);
        }
        assert_eq!(
            r.sample(t0 + Duration::from_secs(22), 22_000, 0).0,
            1000,
            "steady 1000 B/s"
        );
        // Scraped rarely: the rate covers the time since the previous scrape.
        assert_eq!(
            r.sample(t0 + Duration::from_secs(82), 22_000, 60_000),
            (0, 1000)
        );
    }

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(
            parse_address("9100").unwrap(),
            "127.0.0.1:9100".parse().unwrap()
        );
        assert_eq!(
            parse_address("0.0.0.0:9100").unwrap(),
            "0.0.0.0:9100".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(parse_address("nonsense").is_err());
    }
}
