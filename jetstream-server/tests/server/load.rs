//! Load (issue #7, item 6): many API connections at once, a client that never reads its
//! answers, many transfers into one server. Figures are printed, not asserted; the bounds
//! are on answers, bytes and memory.
//!
//! `cargo test -p jetstream-server --test server load -- --nocapture --test-threads 1`
//! (`JETSTREAM_LONG=1` for the bigger versions).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::attacks::connect_from;
use super::util::*;

const T: Duration = Duration::from_secs(60);

fn long() -> bool {
    std::env::var_os("JETSTREAM_LONG").is_some()
}

/// The pid of the server whose state dir is `s.state`.
pub fn server_pid(s: &Srv) -> u32 {
    let want = s.state.display().to_string();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        if args.contains(&b"server".as_slice()) && args.contains(&want.as_bytes()) {
            return pid;
        }
    }
    panic!("no server process with state {want}");
}

/// A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM) or a count (Threads).
pub fn status(pid: u32, key: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// What the process has open (for failure messages).
fn fd_list(pid: u32) -> String {
    let mut v: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| fs::read_link(e.path()).map_or_else(|_| "?".into(), |l| l.display().to_string()))
        .collect();
    v.sort();
    v.join(" ")
}

/// A plain JSON-lines API connection from `src`.
struct Line {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Line {
    fn new(src: Ipv4Addr, port: u16) -> Self {
        let s = connect_from(src, port);
        s.set_read_timeout(Some(T)).unwrap();
        Self {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn ask(&mut self, request: &str, params: Value) -> Value {
        writeln!(
            self.w,
            "{}",
            json!({"request": request, "parameters": params})
        )
        .unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn two_hundred_api_connections_are_all_served() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let pid = server_pid(&s);
    let (conns, per) = if long() { (1000, 50) } else { (200, 20) };
    let rss0 = status(pid, "VmRSS");
    let barrier = Arc::new(Barrier::new(conns + 1));
    let started = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let (name, pw, barrier) = (u.name().to_owned(), pw.clone(), barrier.clone());
            let port = s.api;
            std::thread::spawn(move || {
                // A client that fails still meets both barriers (the test then fails on its
                // error instead of waiting for it for ever).
                let login = std::panic::catch_unwind(|| {
                    // Spread over 10 source addresses: one address may hold 128 connections.
                    let mut c = Line::new(Ipv4Addr::new(127, 0, 0, 10 + (i % 10) as u8), port);
                    let v = c.ask("auth", json!({"userName": name, "password": pw}));
                    assert_eq!(v["status"], "success", "{v}");
                    c
                });
                barrier.wait();
                let work = login.and_then(|mut c| {
                    std::panic::catch_unwind(move || {
                        let mut lat = Vec::with_capacity(per);
                        for k in 0..per {
                            let (cmd, p) = match k % 3 {
                                0 => ("send.getTransfers", json!({})),
                                1 => ("getServerInfo", json!({})),
                                _ => ("echo", json!({"text": format!("{i}-{k}")})),
                            };
                            let t0 = Instant::now();
                            let v = c.ask(cmd, p);
                            lat.push(t0.elapsed());
                            assert_eq!(v["status"], "success", "{cmd}: {v}");
                        }
                        (c, lat)
                    })
                });
                // Hold the connection until every client is done.
                barrier.wait();
                match work {
                    Ok((_c, lat)) => lat,
                    Err(e) => std::panic::resume_unwind(e),
                }
            })
        })
        .collect();
    barrier.wait();
    let logged_in = started.elapsed();
    let t0 = Instant::now();
    let threads_busy = status(pid, "Threads");
    let rss_busy = status(pid, "VmRSS");
    barrier.wait();
    let served = t0.elapsed();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a client failed"))
        .collect();
    assert_eq!(lat.len(), conns * per, "every request got an answer");
    lat.sort();
    let rss1 = status(pid, "VmRSS");
    let hwm = status(pid, "VmHWM");
    println!(
        "{conns} connections logged in in {:.1} s; {} requests in {:.2} s; latency p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms; server threads {threads_busy}; RSS {} -> {} (busy) -> {} MiB \
         (peak {} MiB)",
        logged_in.as_secs_f64(),
        lat.len(),
        served.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
        rss0 / 1024,
        rss_busy / 1024,
        rss1 / 1024,
        hwm / 1024,
    );
    // A thread and a few buffers per connection: well under 256 KiB each.
    assert!(
        hwm.saturating_sub(rss0) < conns as u64 * 256,
        "RSS grew by {} KiB for {conns} connections",
        hwm - rss0
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn a_client_that_never_reads_does_not_stall_the_others() {
    if !can_run() {
        return;
    }
    let (u, pw) = user();
    let dir = scratch();
    let s = Srv::start(dir.path(), "s", &[]);
    let pid = server_pid(&s);
    // A login first (PAM may keep a syslog socket open afterwards); this connection stays
    // open so that it is counted in the baseline.
    let _first = s.login(u.name(), &pw);
    let rss0 = status(pid, "VmRSS");
    let fds0 = open_fds(pid);
    let before = fd_list(pid);
    // The slow client: 64 KiB echo requests, written until the server stops reading (its
    // answers fill both socket buffers, so its write blocks, so it stops reading ours).
    let slow = connect_from(Ipv4Addr::new(127, 0, 0, 20), s.api);
    // Logged in: before login a request line may hold only 8 KiB (conn_limits.rs).
    let mut login = Line {
        w: slow.try_clone().unwrap(),
        r: BufReader::new(slow.try_clone().unwrap()),
    };
    let v = login.ask("auth", json!({"userName": u.name(), "password": pw}));
    assert_eq!(v["status"], "success", "{v}");
    slow.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let req = format!(
        "{}\n",
        json!({"request": "echo", "parameters": {"text": "z".repeat(64 << 10)}})
    );
    let mut w = slow.try_clone().unwrap();
    let mut sent = 0usize;
    while sent < 100_000 && w.write_all(req.as_bytes()).is_ok() {
        sent += 1;
    }
    let blocked = Instant::now();
    println!(
        "slow client: {sent} requests ({} MiB) written before the server stopped reading",
        (sent * req.len()) >> 20
    );
    assert!(sent < 100_000, "the server kept reading without writing");
    // Everyone else is still served, logins included.
    let others = if long() { 64 } else { 16 };
    let handles: Vec<_> = (0..others)
        .map(|i| {
            let (name, pw, port) = (u.name().to_owned(), pw.clone(), s.api);
            std::thread::spawn(move || {
                let mut c = Line::new(Ipv4Addr::new(127, 0, 0, 30 + (i % 4) as u8), port);
                let v = c.ask("auth", json!({"userName": name, "password": pw}));
                assert_eq!(v["status"], "success", "{v}");
                for k in 0..50 {
                    let v = c.ask("echo", json!({"text": k}));
                    assert_eq!(v["status"], "success", "{v}");
                }
                c.ask("send.getTransfers", json!({}))["status"] == "success"
            })
        })
        .collect();
    let served = handles
        .into_iter()
        .map(|h| h.join().expect("a client failed"))
        .filter(|&ok| ok)
        .count();
    assert_eq!(served, others);
    let rss_stuck = status(pid, "VmRSS");
    println!(
        "{others} other clients served in {:.2} s while it was stuck; RSS {} -> {} MiB",
        blocked.elapsed().as_secs_f64(),
        rss0 / 1024,
        rss_stuck / 1024
    );
    // Its answers are not piling up in the server: one at a time.
    assert!(
        rss_stuck.saturating_sub(rss0) < 64 << 10,
        "RSS grew by {} KiB",
        rss_stuck - rss0
    );
    // The server gives up on it (its write times out after 30 s) and closes its socket.
    let deadline = blocked + Duration::from_secs(50);
    while open_fds(pid) > fds0 {
        assert!(
            Instant::now() < deadline,
            "the slow connection is still open after {:.0} s ({} fds, {fds0} before: {before}; now {})",
            blocked.elapsed().as_secs_f64(),
            open_fds(pid),
            fd_list(pid)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "slow connection dropped by the server {:.1} s after it stopped reading",
        blocked.elapsed().as_secs_f64()
    );
    // From the client's side the connection ends (EOF or reset) once it reads again.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let end = (&slow).take(1 << 30).read_to_end(&mut sink);
    assert!(
        !matches!(&end, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "still open: {end:?}"
    );
    // And the server still answers.
    assert_eq!(
        s.client().call("echo", json!({})).unwrap()["text"],
        Value::Null
    );
}

#[test]
#[ignore = "needs root: system users (PAM)"]
fn thirty_two_transfers_at_once_into_one_server() {
    if !can_run() {
        return;
    }
    let p = Pair::new(false);
    let pid = server_pid(&p.b);
    let (n, size) = if long() {
        (64, 32 << 20)
    } else {
        (32, 4 << 20)
    };
    let src = p.dir.path().join("src");
    for i in 0..n {
        write(&src.join(format!("f{i}.bin")), &data(size, 100 + i as u64));
    }
    let rss0 = status(pid, "VmRSS");
    let mut c = p.a.login(p.user.name(), &p.pw);
    // One destination per transfer (each destination sends one transfer at a time), each capped
    // at ~8 Mbit/s so that a transfer lasts longer than the receiver takes to accept all of
    // them (its PAM logins of one user are serialized, ~70 ms each): they really overlap.
    let jobs: Vec<(String, String)> = (0..n)
        .map(|i| {
            let d = destination(
                &mut c,
                &p.b,
                p.user.name(),
                &p.pw,
                json!({"sendRateMax": 8_000 + i}),
            );
            let f = src.join(format!("f{i}.bin"));
            let m = manifest(&mut c, json!({ f.to_str().unwrap(): format!("/f{i}.bin") })).unwrap();
            (d, m)
        })
        .collect();
    let dests: std::collections::HashSet<&String> = jobs.iter().map(|j| &j.0).collect();
    assert_eq!(dests.len(), n, "destinations must be distinct");
    let t0 = Instant::now();
    let ids: Vec<String> = jobs
        .iter()
        .enumerate()
        .map(|(i, (d, m))| transfer(&mut c, d, m, Some(&format!("/t{i}"))))
        .collect();
    let mut most_running = 0;
    let mut rss_peak_seen = 0;
    loop {
        let list = c.call("send.getTransfers", json!({})).unwrap();
        let list = list.as_array().unwrap();
        let running = list.iter().filter(|t| t["status"] == "sending").count();
        most_running = most_running.max(running);
        rss_peak_seen = rss_peak_seen.max(status(pid, "VmRSS"));
        if list.iter().all(|t| {
            matches!(
                t["status"].as_str(),
                Some("complete" | "error" | "cancelled")
            )
        }) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "transfers stuck");
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t0.elapsed();
    for (i, id) in ids.iter().enumerate() {
        let t = wait_end(&mut c, id, T);
        assert_eq!(t["status"], "complete", "{t}");
        let got = fs::read(p.storage.join(format!("t{i}/f{i}.bin"))).unwrap();
        assert!(got == data(size, 100 + i as u64), "t{i} differs");
    }
    assert!(
        most_running * 2 >= n,
        "only {most_running} of {n} transfers were seen sending at once"
    );
    let hwm = status(pid, "VmHWM");
    let total = (n * size) as f64;
    println!(
        "{n} transfers of {} MiB at once: {:.2} s ({:.0} Mbit/s total), up to {most_running} \
         sending at once; receiver RSS {} MiB before, {} MiB peak seen, VmHWM {} MiB",
        size >> 20,
        took.as_secs_f64(),
        total * 8.0 / took.as_secs_f64() / 1e6,
        rss0 / 1024,
        rss_peak_seen / 1024,
        hwm / 1024
    );
}
