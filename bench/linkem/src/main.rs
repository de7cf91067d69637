//! `linkem`: a userspace WAN link emulator for benchmarks and fault tests.
//!
//! This kernel has TUN, veth and network namespaces but no netem, so `linkem run` creates two
//! network namespaces, `<name>-a` and `<name>-b`, puts a TUN device `lkm0` in each (addresses
//! `<subnet>.1` in a, `<subnet>.2` in b, point to point) and forwards IP packets between them
//! through the link model of [`model`]: per direction a bottleneck rate behind a drop-tail
//! queue, one-way delay with jitter, and seeded random loss. Traffic never leaves the two
//! namespaces. Programs are run inside with `ip netns exec <name>-a ...`.
//!
//! Counters and a per-100 ms time series of delivered bytes (TCP and UDP apart) are written as
//! JSON to `--stats` on exit (SIGTERM/SIGINT) and whenever SIGUSR1 arrives. `linkem down`
//! removes the namespaces and the processes left in them. The design note is
//! `docs/benchmarks.md` ("The link emulator").

mod model;
mod tun;

use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use std::{fmt, fs, io};

use argh::FromArgs;
use model::{DirConfig, DirStats, Nanos, Pipe};
use serde_json::json;

const BUCKET: Nanos = 100_000_000;
const IFNAME: &str = "lkm0";
/// Packets read from one device before the other gets a turn.
const READ_BATCH: usize = 128;

#[derive(FromArgs, Debug)]
/// Userspace WAN link emulator between two network namespaces.
struct Args {
    #[argh(subcommand)]
    command: Sub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Sub {
    Run(Box<RunArgs>),
    Down(DownArgs),
}

#[derive(FromArgs, Debug)]
/// Create (or reuse) the namespaces and forward packets until SIGTERM or SIGINT.
#[argh(subcommand, name = "run")]
struct RunArgs {
    /// namespace prefix: `<name>-a` and `<name>-b` (default "lkm")
    #[argh(option, default = "String::from(\"lkm\")")]
    name: String,
    /// first three octets of the point-to-point addresses (default 10.99.0)
    #[argh(option, default = "String::from(\"10.99.0\")")]
    subnet: String,
    /// bottleneck rate per direction, e.g. 100mbit, 1gbit, 0 for none (default 100mbit)
    #[argh(option, default = "String::from(\"100mbit\")")]
    rate: String,
    /// round-trip propagation delay, split evenly over the two directions (default 0ms)
    #[argh(option, default = "String::from(\"0ms\")")]
    rtt: String,
    /// one-way delay varies uniformly within ± this (default 0ms)
    #[argh(option, default = "String::from(\"0ms\")")]
    jitter: String,
    /// random loss per direction, e.g. 1% or 0.01 (default 0)
    #[argh(option, default = "String::from(\"0\")")]
    loss: String,
    /// drop-tail queue per direction: bytes (k/m suffix allowed) or a multiple of the
    /// bandwidth-delay product like 1bdp (default 1bdp, at least 64k)
    #[argh(option, default = "String::from(\"1bdp\")")]
    queue: String,
    /// let jitter reorder packets (default: FIFO)
    #[argh(switch)]
    reorder: bool,
    /// seed of the loss and jitter draws (default 1)
    #[argh(option, default = "1")]
    seed: u64,
    /// MTU of both devices (default 1500)
    #[argh(option, default = "1500")]
    mtu: usize,
    /// changes over time: "T:key=value,...;T:..." with T like 20s and keys rate, rtt,
    /// jitter, loss, queue (both directions), e.g. "10s:loss=100%;70s:loss=0" is a 60 s blackout
    #[argh(option, default = "String::new()")]
    schedule: String,
    /// write counters and the time series as JSON here on exit and on SIGUSR1
    #[argh(option)]
    stats: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Remove the namespaces (killing the processes left in them).
#[argh(subcommand, name = "down")]
struct DownArgs {
    /// namespace prefix (default "lkm")
    #[argh(option, default = "String::from(\"lkm\")")]
    name: String,
}

/// A bad command-line value.
#[derive(Debug)]
struct BadValue(String);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

/// The link settings that the command line and the schedule change (same in both directions).
#[derive(Clone, Debug, PartialEq)]
struct LinkSpec {
    rate: u64,
    rtt: Nanos,
    jitter: Nanos,
    loss: f64,
    queue: Queue,
    reorder: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Queue {
    Bytes(u64),
    Bdp(f64),
}

/// Smallest queue from a BDP multiple: at 2 ms and 100 Mbit/s one BDP is 17 packets.
const MIN_BDP_QUEUE: u64 = 64 * 1024;

impl LinkSpec {
    fn dir(&self) -> DirConfig {
        let queue_bytes = match self.queue {
            Queue::Bytes(b) => b,
            Queue::Bdp(k) => {
                let bdp = self.rate as f64 / 8.0 * self.rtt as f64 / 1e9;
                ((k * bdp) as u64).max(MIN_BDP_QUEUE)
            }
        };
        DirConfig {
            rate: self.rate,
            queue_bytes,
            delay: self.rtt / 2,
            jitter: self.jitter,
            loss: self.loss,
            reorder: self.reorder,
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), BadValue> {
        match key {
            "rate" => self.rate = parse_rate(value)?,
            "rtt" => self.rtt = parse_duration(value)?,
            "jitter" => self.jitter = parse_duration(value)?,
            "loss" => self.loss = parse_loss(value)?,
            "queue" => self.queue = parse_queue(value)?,
            _ => return Err(BadValue(format!("unknown schedule key {key:?}"))),
        }
        Ok(())
    }

    fn json(&self) -> serde_json::Value {
        let d = self.dir();
        json!({
            "rateBps": self.rate, "rttMs": self.rtt as f64 / 1e6,
            "jitterMs": self.jitter as f64 / 1e6, "loss": self.loss,
            "queueBytes": d.queue_bytes, "reorder": self.reorder,
        })
    }
}

fn parse_rate(s: &str) -> Result<u64, BadValue> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = [
        ("gbit", 1e9),
        ("mbit", 1e6),
        ("kbit", 1e3),
        ("bit", 1.0),
        ("g", 1e9),
        ("m", 1e6),
        ("k", 1e3),
    ]
    .iter()
    .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|n| (n.to_owned(), *m)))
    .unwrap_or((lower.clone(), 1.0));
    let v: f64 = num
        .parse()
        .map_err(|_| BadValue(format!("bad rate {s:?} (try 100mbit)")))?;
    if !(0.0..=1e12).contains(&v) {
        return Err(BadValue(format!("rate out of range: {s:?}")));
    }
    Ok((v * mult) as u64)
}

fn parse_duration(s: &str) -> Result<Nanos, BadValue> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = [("us", 1e3), ("ms", 1e6), ("s", 1e9)]
        .iter()
        .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|n| (n.to_owned(), *m)))
        .ok_or_else(|| BadValue(format!("bad duration {s:?} (try 100ms)")))?;
    let v: f64 = num
        .parse()
        .map_err(|_| BadValue(format!("bad duration {s:?}")))?;
    if !(0.0..=3600.0 * 1e9).contains(&(v * mult)) {
        return Err(BadValue(format!("duration out of range: {s:?}")));
    }
    Ok((v * mult) as Nanos)
}

fn parse_loss(s: &str) -> Result<f64, BadValue> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| BadValue(format!("bad loss {s:?} (try 1%)")))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(BadValue(format!("loss out of range: {s:?}")));
    }
    Ok(v)
}

fn parse_queue(s: &str) -> Result<Queue, BadValue> {
    let lower = s.trim().to_ascii_lowercase();
    if let Some(k) = lower.strip_suffix("bdp") {
        let k: f64 = k
            .parse()
            .map_err(|_| BadValue(format!("bad queue {s:?}")))?;
        return Ok(Queue::Bdp(k));
    }
    let (num, mult) = [("k", 1024.0), ("m", 1024.0 * 1024.0)]
        .iter()
        .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|n| (n.to_owned(), *m)))
        .unwrap_or((lower.clone(), 1.0));
    let v: f64 = num
        .parse()
        .map_err(|_| BadValue(format!("bad queue {s:?} (try 1bdp or 256k)")))?;
    Ok(Queue::Bytes((v * mult) as u64))
}

/// One schedule step: when, and the (key, value) changes.
type Step = (Nanos, Vec<(String, String)>);

/// "T:key=value,...;T:..." into time-ordered steps.
fn parse_schedule(s: &str) -> Result<Vec<Step>, BadValue> {
    let mut steps = Vec::new();
    for step in s.split(';').map(str::trim).filter(|x| !x.is_empty()) {
        let (at, changes) = step
            .split_once(':')
            .ok_or_else(|| BadValue(format!("bad schedule step {step:?} (try 10s:loss=1%)")))?;
        let at = parse_duration(at)?;
        let mut kv = Vec::new();
        for change in changes.split(',') {
            let (k, v) = change
                .split_once('=')
                .ok_or_else(|| BadValue(format!("bad schedule change {change:?}")))?;
            kv.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        steps.push((at, kv));
    }
    steps.sort_by_key(|s| s.0);
    Ok(steps)
}

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn netns_exists(ns: &str) -> bool {
    fs::metadata(format!("/run/netns/{ns}")).is_ok()
}

/// Creates the namespace if needed and a TUN device in it with `local` peered to `remote`.
fn setup_side(ns: &str, local: &str, remote: &str, mtu: usize) -> io::Result<OwnedFd> {
    if !netns_exists(ns) {
        run_ip(&["netns", "add", ns])?;
    }
    run_ip(&["-n", ns, "link", "set", "lo", "up"])?;
    let fd = tun::open_in(ns, IFNAME)?;
    let mtu = mtu.to_string();
    run_ip(&[
        "-n",
        ns,
        "link",
        "set",
        IFNAME,
        "mtu",
        &mtu,
        "txqueuelen",
        "10000",
        "up",
    ])?;
    run_ip(&[
        "-n", ns, "addr", "add", local, "peer", remote, "dev", IFNAME,
    ])?;
    Ok(fd)
}

/// One direction: the model plus the per-protocol series of delivered bytes.
struct Direction {
    pipe: Pipe<usize>,
    /// Delivered bytes per [`BUCKET`]: [TCP, UDP, other].
    series: Vec<[u64; 3]>,
    write_errors: u64,
}

impl Direction {
    fn account(&mut self, now: Nanos, packet: &[u8]) {
        let proto = match packet.first().map(|b| b >> 4) {
            Some(4) => packet.get(9).copied(),
            Some(6) => packet.get(6).copied(),
            _ => None,
        };
        let slot = match proto {
            Some(6) => 0,
            Some(17) => 1,
            _ => 2,
        };
        let bucket = (now / BUCKET) as usize;
        if self.series.len() <= bucket {
            self.series.resize(bucket + 1, [0; 3]);
        }
        self.series[bucket][slot] += packet.len() as u64;
    }

    fn json(&self) -> serde_json::Value {
        let DirStats {
            packets_in,
            bytes_in,
            lost,
            queue_drops,
            packets_out,
            bytes_out,
            max_queue_bytes,
        } = self.pipe.stats().clone();
        json!({
            "packetsIn": packets_in, "bytesIn": bytes_in, "lost": lost,
            "queueDrops": queue_drops, "packetsOut": packets_out, "bytesOut": bytes_out,
            "maxQueueBytes": max_queue_bytes, "writeErrors": self.write_errors,
            "tcpBytes": self.series.iter().map(|b| b[0]).collect::<Vec<_>>(),
            "udpBytes": self.series.iter().map(|b| b[1]).collect::<Vec<_>>(),
        })
    }
}

/// Buffers by index: the model carries indices, the buffers stay put.
struct Pool {
    bufs: Vec<Vec<u8>>,
    free: Vec<usize>,
    size: usize,
}

impl Pool {
    fn take(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.bufs.push(vec![0; self.size]);
            self.bufs.len() - 1
        })
    }
}

fn tun_tx_dropped(ns: &str) -> Option<u64> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "-s", "link", "show", "dev", IFNAME])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0)?
        .get("stats64")?
        .get("tx")?
        .get("dropped")?
        .as_u64()
}

fn write_stats(path: &str, name: &str, spec: &LinkSpec, started: Instant, dirs: &[Direction; 2]) {
    let doc = json!({
        "name": name, "bucketMs": BUCKET / 1_000_000,
        "elapsedS": started.elapsed().as_secs_f64(), "link": spec.json(),
        "ab": dirs[0].json(), "ba": dirs[1].json(),
        "tunTxDropped": [tun_tx_dropped(&format!("{name}-a")), tun_tx_dropped(&format!("{name}-b"))],
    });
    let tmp = format!("{path}.tmp");
    let written = fs::write(&tmp, format!("{doc:#}\n")).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        eprintln!("linkem: cannot write {path}: {e}");
    }
}

fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut spec = LinkSpec {
        rate: parse_rate(&args.rate)?,
        rtt: parse_duration(&args.rtt)?,
        jitter: parse_duration(&args.jitter)?,
        loss: parse_loss(&args.loss)?,
        queue: parse_queue(&args.queue)?,
        reorder: args.reorder,
    };
    let mut schedule = parse_schedule(&args.schedule)?.into_iter().peekable();
    // Every schedule step must parse before anything is created.
    for (_, changes) in schedule.clone() {
        let mut probe = spec.clone();
        for (k, v) in &changes {
            probe.set(k, v)?;
        }
    }
    if !(576..=9000).contains(&args.mtu) {
        return Err(Box::new(BadValue(format!(
            "mtu {} out of 576..=9000",
            args.mtu
        ))));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let dump = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&dump))?;

    let (ns_a, ns_b) = (format!("{}-a", args.name), format!("{}-b", args.name));
    let (ip_a, ip_b) = (format!("{}.1", args.subnet), format!("{}.2", args.subnet));
    let fds = [
        setup_side(&ns_a, &ip_a, &ip_b, args.mtu)?,
        setup_side(&ns_b, &ip_b, &ip_a, args.mtu)?,
    ];
    let mut dirs = [0u64, 1].map(|i| Direction {
        pipe: Pipe::new(spec.dir(), args.seed.wrapping_mul(2).wrapping_add(i)),
        series: Vec::new(),
        write_errors: 0,
    });
    let mut pool = Pool {
        bufs: Vec::new(),
        free: Vec::new(),
        size: args.mtu + 64,
    };
    if let Err(e) = tun::set_realtime(10) {
        eprintln!("linkem: no real-time priority ({e}): timing will suffer under CPU load");
    }
    let started = Instant::now();
    eprintln!(
        "linkem: ready: {ns_a} {ip_a} <-> {ns_b} {ip_b}, {}",
        spec.json()
    );
    let mut read_error = None;
    while !stop.load(Ordering::Relaxed) {
        let now = started.elapsed().as_nanos() as Nanos;
        while schedule.peek().is_some_and(|(at, _)| *at <= now) {
            let Some((_, changes)) = schedule.next() else {
                break;
            };
            for (k, v) in &changes {
                spec.set(k, v)?;
            }
            for d in &mut dirs {
                d.pipe.set_config(spec.dir());
            }
            eprintln!("linkem: at {:.1} s: {}", now as f64 / 1e9, spec.json());
        }
        if dump.swap(false, Ordering::Relaxed) {
            if let Some(path) = &args.stats {
                write_stats(path, &args.name, &spec, started, &dirs);
            }
        }
        // Deliver what is due: a→b goes out of b's device, b→a out of a's.
        for (i, d) in dirs.iter_mut().enumerate() {
            let out = &fds[1 - i];
            while let Some((buf, len)) = d.pipe.pop_due(now) {
                let packet = &pool.bufs[buf][..len];
                if tun::write(out, packet).is_err() {
                    d.write_errors += 1;
                } else {
                    d.account(now, packet);
                }
                pool.free.push(buf);
            }
        }
        // Take in what the two stacks sent.
        for (i, d) in dirs.iter_mut().enumerate() {
            for _ in 0..READ_BATCH {
                let buf = pool.take();
                match tun::read(&fds[i], &mut pool.bufs[buf]) {
                    Ok(Some(len)) if len > 0 => {
                        let now = started.elapsed().as_nanos() as Nanos;
                        if let Err((_, back)) = d.pipe.offer(now, buf, len) {
                            pool.free.push(back);
                        }
                    }
                    Ok(_) => {
                        pool.free.push(buf);
                        break;
                    }
                    Err(e) => {
                        pool.free.push(buf);
                        read_error = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = read_error.take() {
            return Err(Box::new(e));
        }
        let now = started.elapsed().as_nanos() as Nanos;
        let next = dirs
            .iter()
            .filter_map(|d| d.pipe.next_due())
            .chain(schedule.peek().map(|(at, _)| *at))
            .min();
        // Wake for the next delivery, a schedule step, or at least every 100 ms (signals).
        let timeout = next.map_or(BUCKET, |t| t.saturating_sub(now).min(BUCKET));
        tun::wait([&fds[0], &fds[1]], Some(timeout))?;
    }
    let in_flight: usize = dirs.iter().map(|d| d.pipe.in_flight()).sum();
    eprintln!("linkem: stopping ({in_flight} packets in flight dropped)");
    if let Some(path) = &args.stats {
        write_stats(path, &args.name, &spec, started, &dirs);
    }
    Ok(())
}

fn down(args: &DownArgs) -> io::Result<()> {
    for side in ["a", "b"] {
        let ns = format!("{}-{side}", args.name);
        if !netns_exists(&ns) {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        run_ip(&["netns", "del", &ns])?;
    }
    Ok(())
}

fn main() {
    let args: Args = argh::from_env();
    let result = match args.command {
        Sub::Run(r) => run(*r),
        Sub::Down(d) => down(&d).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("linkem: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse_rate("500mbit").ok(), Some(500_000_000));
        assert_eq!(parse_rate("1.5G").ok(), Some(1_500_000_000));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_duration("100ms").ok(), Some(100_000_000));
        assert_eq!(parse_duration("2s").ok(), Some(2_000_000_000));
        assert!(parse_duration("100").is_err());
        assert_eq!(parse_loss("3%").ok(), Some(0.03));
        assert_eq!(parse_loss("0.001").ok(), Some(0.001));
        assert!(parse_loss("120%").is_err());
        assert_eq!(parse_queue("1bdp").ok(), Some(Queue::Bdp(1.0)));
        assert_eq!(parse_queue("256k").ok(), Some(Queue::Bytes(262_144)));
    }

    #[test]
    fn bdp_queue_follows_rate_and_rtt_with_a_floor() {
        let mut spec = LinkSpec {
            rate: 100_000_000,
            rtt: 100_000_000,
            jitter: 0,
            loss: 0.0,
            queue: Queue::Bdp(1.0),
            reorder: false,
        };
        assert_eq!(spec.dir().queue_bytes, 1_250_000);
        assert_eq!(spec.dir().delay, 50_000_000);
        spec.set("rtt", "2ms").expect("valid");
        assert_eq!(spec.dir().queue_bytes, MIN_BDP_QUEUE);
        assert!(spec.set("colour", "blue").is_err());
    }

    #[test]
    fn schedule_is_sorted_and_validated() {
        let s = parse_schedule("70s:loss=0;10s:loss=100%,rate=50mbit").expect("valid");
        assert_eq!(s[0].0, 10_000_000_000);
        assert_eq!(s[0].1.len(), 2);
        assert_eq!(s[1].0, 70_000_000_000);
        assert!(parse_schedule("10s loss=1").is_err());
    }
}
