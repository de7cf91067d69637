//! What `jscp` shows: a live line like `rsync --info=progress2` on a terminal, one summary
//! line at the end, or JSON events (`--json`) for scripts.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

/// A snapshot of a running copy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// File bytes safely at the receiver.
    pub(crate) bytes: u64,
    /// File bytes in the copy.
    pub(crate) total: u64,
    /// Entries finished / in the copy.
    pub(crate) files_done: u64,
    /// As above.
    pub(crate) files_total: u64,
    /// Payload bytes sent and resent (for the retransmission percentage).
    pub(crate) sent: u64,
    /// As above.
    pub(crate) resent: u64,
    /// What became of the path memory's hint (`""`: none given), for the JSON events.
    pub(crate) path_hint: &'static str,
}

impl Snapshot {
    /// Percent of bytes done (100 for an empty copy).
    pub(crate) fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.bytes as f64 * 100.0 / self.total as f64
        }
    }

    /// Retransmitted share of what was sent, in percent.
    pub(crate) fn retransmit_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.resent as f64 * 100.0 / self.sent as f64
        }
    }
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing but errors (`-q`).
    Quiet,
    /// The summary line only (stdout is not a terminal).
    Summary,
    /// A live line and the summary (a terminal).
    Live,
    /// JSON events, one per line (`--json`).
    Json,
}

/// The display, fed snapshots.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: Mode,
    started: Instant,
    last_draw: Option<Instant>,
    /// (time, bytes) samples of the last few seconds, for the current rate.
    window: Vec<(Instant, u64)>,
    drawn_width: usize,
}

/// Human bytes: `512 B`, `1.50 KiB` … `2.00 TiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// Human rate in decimal megabytes per second, like rsync: `112.34 MB/s`.
pub(crate) fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec >= 1e9 {
        format!("{:.2} GB/s", bytes_per_sec / 1e9)
    } else if bytes_per_sec >= 1e6 {
        format!("{:.2} MB/s", bytes_per_sec / 1e6)
    } else {
        format!("{:.2} kB/s", bytes_per_sec / 1e3)
    }
}

/// `h:mm:ss`.
pub(crate) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The live line.
pub(crate) fn live_line(s: &Snapshot, rate_bps: f64) -> String {
    let eta = if rate_bps > 0.0 && s.total > s.bytes {
        clock(Duration::from_secs_f64(
            (s.total - s.bytes) as f64 / rate_bps,
        ))
    } else {
        "-:--:--".into()
    };
    format!(
        "{:>12} {:>3.0}% {:>12} {:>9} ETA  files {}/{}  retrans {:.1}%",
        bytes(s.bytes),
        s.percent().floor(),
        rate(rate_bps),
        eta,
        s.files_done,
        s.files_total,
        s.retransmit_percent()
    )
}

/// The summary line.
pub(crate) fn summary_line(verb: &str, s: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!(
        "{verb} {} in {:.1} s ({}), {} file{}, {:.1}% retransmitted",
        bytes(s.total),
        secs,
        rate(s.total as f64 / secs),
        s.files_total,
        if s.files_total == 1 { "" } else { "s" },
        s.retransmit_percent()
    )
}

impl Progress {
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            started: Instant::now(),
            last_draw: None,
            window: Vec::new(),
            drawn_width: 0,
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Starts the clock: the copy begins now (after logging in and scanning), so the summary
    /// rate is the copy's.
    pub(crate) fn start(&mut self) {
        self.started = Instant::now();
    }

    /// A JSON event (only in JSON mode).
    pub(crate) fn event(&self, value: serde_json::Value) {
        if self.mode == Mode::Json {
            out(format_args!("{value}\n"));
        }
    }

    /// Feeds a snapshot; draws at most 5 times a second (JSON: twice a second).
    pub(crate) fn update(&mut self, s: &Snapshot) {
        let now = Instant::now();
        self.window.push((now, s.bytes));
        self.window
            .retain(|(t, _)| now.duration_since(*t) <= Duration::from_secs(3));
        let every = match self.mode {
            Mode::Live => Duration::from_millis(200),
            Mode::Json => Duration::from_millis(500),
            Mode::Quiet | Mode::Summary => return,
        };
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.last_draw = Some(now);
        let rate_bps = self.current_rate();
        match self.mode {
            Mode::Live => {
                let line = live_line(s, rate_bps);
                let pad = self.drawn_width.saturating_sub(line.len());
                self.drawn_width = line.len();
                out(format_args!("\r{line}{}", " ".repeat(pad)));
            }
            Mode::Json => self.event(json!({
                "event": "progress",
                "bytes": s.bytes,
                "totalBytes": s.total,
                "percent": (s.percent() * 10.0).round() / 10.0,
                "bytesPerSecond": rate_bps.round(),
                "filesDone": s.files_done,
                "filesTotal": s.files_total,
                "retransmitPercent": (s.retransmit_percent() * 100.0).round() / 100.0,
                "elapsedSeconds": self.started.elapsed().as_secs_f64(),
            })),
            Mode::Quiet | Mode::Summary => {}
        }
    }

    fn current_rate(&self) -> f64 {
        match (self.window.first(), self.window.last()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                b1.saturating_sub(*b0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Ends the live line (so errors start on a fresh line).
    pub(crate) fn finish_line(&mut self) {
        if self.mode == Mode::Live && self.drawn_width > 0 {
            out(format_args!("\n"));
            self.drawn_width = 0;
        }
    }

    /// The end of a successful copy.
    pub(crate) fn done(&mut self, verb: &str, s: &Snapshot) {
        let elapsed = self.started.elapsed();
        match self.mode {
            Mode::Quiet => {}
            Mode::Summary | Mode::Live => {
                self.finish_line();
                out(format_args!("{}\n", summary_line(verb, s, elapsed)));
            }
            Mode::Json => self.event(json!({
                "event": "complete",
                "bytes": s.total,
                "bytesSent": s.sent,
                "files": s.files_total,
                "seconds": elapsed.as_secs_f64(),
                "bytesPerSecond": (s.total as f64 / elapsed.as_secs_f64().max(1e-3)).round(),
                "retransmitPercent": (s.retransmit_percent() * 100.0).round() / 100.0,
                "pathHint": if s.path_hint.is_empty() { "none" } else { s.path_hint },
            })),
        }
    }
}

/// Writes to stdout and flushes, ignoring errors. Every line `jscp` prints goes through here
/// (or [`err`]), never `print!`, which panics when the reader has gone away: with `jscp … |
/// head`, `head` exiting must not turn into a panic (an abort in a release build). The output
/// is only a report; the copy goes on to the end, and the exit status is the copy's.
pub(crate) fn out(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(text);
    let _ = stdout.flush();
}

/// As [`out`], for stderr.
pub(crate) fn err(text: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_clock() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(1 << 30), "1.00 GiB");
        assert_eq!(rate(112_340_000.0), "112.34 MB/s");
        assert_eq!(rate(1.5e9), "1.50 GB/s");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }

    #[test]
    fn lines_say_what_scripts_and_people_need() {
        let s = Snapshot {
            bytes: 512 << 20,
            total: 1 << 30,
            files_done: 1,
            files_total: 3,
            sent: 1000,
            resent: 3,
            path_hint: "",
        };
        let l = live_line(&s, 100e6);
        assert!(
            l.contains("512.00 MiB") && l.contains(" 50%") && l.contains("100.00 MB/s"),
            "{l}"
        );
        assert!(
            l.contains("0:00:05 ETA") && l.contains("files 1/3") && l.contains("retrans 0.3%"),
            "{l}"
        );
        let sum = summary_line("sent", &s, Duration::from_secs(2));
        assert_eq!(
            sum,
            "sent 1.00 GiB in 2.0 s (536.87 MB/s), 3 files, 0.3% retransmitted"
        );
        let empty = Snapshot::default();
        assert!((empty.percent() - 100.0).abs() < f64::EPSILON);
        assert!(live_line(&empty, 0.0).contains("-:--:--"));
    }
}
