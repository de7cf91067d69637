//! The server log (and the relay's): one line per event, with a level, on stderr or appended
//! to the `--log` file.
//!
//! - **The program decides where it goes**, once for the process (as with the `log` crate's
//!   `set_logger`): the library never opens a file. The `jetstream` binary calls [`to_file`]
//!   for `--log` (and [`reload`] on `SIGHUP`); a program embedding servers may call
//!   [`to_sink`] to take every line itself (into its own logging); without either, lines go
//!   to stderr. The level ([`set_level`]) is process-wide too.
//! - **Levels**: `error`, `warn`, `info`, `debug` (`--log-level`, default `info`; [`set_level`]
//!   changes it while the server runs). A line below the level is not even formatted.
//! - **Format**: `2026-12-07T15:04:05.123Z WARN api: message` in the `--log` file and on a
//!   terminal. When stderr is the journal (systemd sets `JOURNAL_STREAM` to its device and
//!   inode, and they match stderr's), `<4>api: message`: the `sd-daemon(3)` priority prefix,
//!   which the journal turns into the entry's priority, and no time stamp, since the journal
//!   keeps its own. The message text is the same either way.
//! - **One event per line**: control characters in a message (a newline in a file name, a
//!   peer's error text, an escape sequence) are written escaped (`\n`, `\u{1b}`), so a
//!   message can never start a second line or forge one; a message is cut at
//!   [`MAX_MESSAGE`] bytes (the journal splits longer lines).
//! - **No secrets**: callers never put a password, passphrase, key or whole token in a
//!   message; a token appears as its first 6 characters and `…`
//!   ([`super::secrets::shown_token`]).
//!
//! Macros: [`crate::log!`] (info), [`crate::error!`], [`crate::warn!`], [`crate::debug!`] and
//! [`crate::log_at!`] with a [`Level`].

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

static LOG_FILE: OnceLock<(PathBuf, Mutex<File>)> = OnceLock::new();

/// Where an embedding program takes the lines ([`to_sink`]).
static SINK: OnceLock<Box<Sink>> = OnceLock::new();

/// What [`to_sink`] takes.
type Sink = dyn Fn(Level, &str) + Send + Sync;

/// The current level, as its syslog priority (see [`Level::priority`]).
static LEVEL: AtomicU8 = AtomicU8::new(Level::Info.priority());

/// Whether stderr is the journal (decided at the first line written there).
static JOURNAL: OnceLock<bool> = OnceLock::new();

/// Longest message written, in bytes; the rest is cut and counted. The journal's own limit
/// (`LineMax=`) is 48 KiB: below it, an event stays one journal entry.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// How much an event matters; a log shows the events at its level and above.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed that the operator must look at: the server could not start, save its
    /// state or write its event log; an internal error.
    Error,
    /// Something went wrong that the server handled: a refused client or login, a failed or
    /// interrupted transfer, a dropped trigger.
    Warn,
    /// What the server did: start and stop, logins, transfers, configuration changes.
    Info,
    /// Details for finding a problem: every API request, connection and send attempt.
    Debug,
}

impl Level {
    /// The syslog priority (`LOG_ERR` 3, `LOG_WARNING` 4, `LOG_INFO` 6, `LOG_DEBUG` 7), as
    /// written in front of a journal line.
    pub const fn priority(self) -> u8 {
        match self {
            Self::Error => 3,
            Self::Warn => 4,
            Self::Info => 6,
            Self::Debug => 7,
        }
    }

    fn from_priority(p: u8) -> Self {
        match p {
            3 => Self::Error,
            4 => Self::Warn,
            6 => Self::Info,
            _ => Self::Debug,
        }
    }

    /// The name in a log line: `ERROR`, `WARN`, `INFO`, `DEBUG`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Warn => "WARN",
            Self::Info => "INFO",
            Self::Debug => "DEBUG",
        }
    }
}

/// The name `--log-level` takes: `error`, `warn`, `info`, `debug`.
/// As the flag spells it (`--print-config` shows a flag's value in its `Debug` form).
impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        })
    }
}

/// A `--log-level` value that is not a level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelError(String);

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown log level {:?}: expected error, warn, info or debug",
            self.0
        )
    }
}

impl std::error::Error for LevelError {}

impl FromStr for Level {
    type Err = LevelError;

    /// `error`, `warn` (or `warning`), `info`, `debug`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "warn" | "warning" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            _ => Err(LevelError(s.to_owned())),
        }
    }
}

/// Sets the level: events below it are not logged from now on (`--log-level`; a reload of
/// the configuration may call it again). Returns the level it replaces.
pub fn set_level(level: Level) -> Level {
    Level::from_priority(LEVEL.swap(level.priority(), Ordering::Relaxed))
}

/// The current level.
pub fn level() -> Level {
    Level::from_priority(LEVEL.load(Ordering::Relaxed))
}

/// Whether an event at `level` is logged now.
pub fn enabled(level: Level) -> bool {
    level.priority() <= LEVEL.load(Ordering::Relaxed)
}

/// Sends the log to `path` (appending; created 0640). Without a call, the log goes to stderr.
///
/// # Errors
/// When the file cannot be opened.
pub fn to_file(path: &Path) -> io::Result<()> {
    let f = open(path)?;
    let _ = LOG_FILE.set((path.to_owned(), Mutex::new(f)));
    Ok(())
}

fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Opens the log file again by its name, so that lines go to a new file after a log rotation
/// moved the old one away (`SIGHUP`, `systemctl reload`). Returns whether there is a log file
/// (without `--log` the log goes to stderr, e.g. the journal, and there is nothing to do).
///
/// # Errors
/// When the file cannot be opened; the log then stays with the old file.
pub fn reopen() -> io::Result<bool> {
    let Some((path, file)) = LOG_FILE.get() else {
        return Ok(false);
    };
    let new = open(path)?;
    *file.lock() = new;
    Ok(true)
}

/// What `SIGHUP` (`systemctl reload`) does: reopens the log file, and says so in the log.
pub fn reload() {
    match reopen() {
        Ok(true) => crate::log!("server: SIGHUP: log file reopened"),
        Ok(false) => crate::log!("server: SIGHUP: nothing to reload (no --log file)"),
        Err(e) => crate::error!("server: SIGHUP: cannot reopen the log file: {e}"),
    }
}

/// Sends every line from now on to `sink` instead of stderr or a file: the level and the
/// message, escaped and cut as [`escape`] does (no time stamp: the sink adds its own). For a
/// program that embeds servers and has its own logging. Once per process; returns `false`
/// (and changes nothing) when a sink was set already. The sink is called on the thread that
/// logs, under no lock of the server's: it must not block for long.
pub fn to_sink(sink: impl Fn(Level, &str) + Send + Sync + 'static) -> bool {
    SINK.set(Box::new(sink)).is_ok()
}

/// Writes one event at `level` (if the level is enabled): to the sink ([`to_sink`]), else to
/// the `--log` file as `2026-12-07T15:04:05.123Z WARN message`, else to stderr (see
/// [`stderr_line`]).
pub fn write(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    if let Some(sink) = SINK.get() {
        sink(level, &escape(message));
        return;
    }
    match LOG_FILE.get() {
        Some((_, f)) => {
            let text = format_line(level, message, false, SystemTime::now());
            let _ = f.lock().write_all(text.as_bytes());
        }
        None => stderr_line(level, message),
    }
}

/// Writes one event to stderr, whatever the `--log` file and the level (for what goes to
/// stderr by design, such as `--trigger-log`): `<6>message` when stderr is the journal,
/// `2026-12-07T15:04:05.123Z INFO message` otherwise. One `write` per line, under the lock,
/// so that lines from several threads never interleave.
pub fn stderr_line(level: Level, message: &str) {
    let text = format_line(level, message, stderr_is_journal(), SystemTime::now());
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// One log line, newline included: `<priority>message` for the journal, else
/// `<time stamp> <LEVEL> message`; the message escaped and cut as [`escape`] does.
pub fn format_line(level: Level, message: &str, journal: bool, now: SystemTime) -> String {
    let message = escape(message);
    if journal {
        format!("<{}>{message}\n", level.priority())
    } else {
        format!("{} {} {message}\n", timestamp(now), level.label())
    }
}

/// `message` on one line: every control character (C0, DEL, C1) and every character that can
/// break or reorder a line on display (U+2028, U+2029, the bidirectional overrides) written as
/// an escape (`\n`, `\r`, `\t`, else `\u{..}`); cut after [`MAX_MESSAGE`] bytes with
/// `… (N bytes cut)`. Backslashes stay as they are (so a message that already holds a
/// `{:?}`-quoted name is not escaped twice).
pub fn escape(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_MESSAGE && !message.chars().any(needs_escape) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE) + 16);
    for (i, c) in message.char_indices() {
        if out.len() >= MAX_MESSAGE {
            out.push_str(&format!("… ({} bytes cut)", message.len() - i));
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Whether stderr is the journal: `$JOURNAL_STREAM` (`<device>:<inode>`, set by systemd for
/// `StandardError=journal`) names stderr itself. A child that inherited the variable but whose
/// stderr goes elsewhere (a file, a terminal) gets time-stamped lines.
fn stderr_is_journal() -> bool {
    *JOURNAL.get_or_init(|| {
        journal_matches(
            std::env::var("JOURNAL_STREAM").ok().as_deref(),
            stderr_identity(),
        )
    })
}

/// Device and inode of stderr (`fstat(2)` of a duplicate of descriptor 2).
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

fn journal_matches(var: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(var), Some((dev, ino))) = (var, stderr) else {
        return false;
    };
    var.split_once(':')
        .is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

/// Logs a formatted event at a [`Level`]: `log_at!(Level::Warn, "api: {peer}: ...")`. Nothing
/// is formatted when the level is off.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {{
        let level: $crate::server::log::Level = $level;
        if $crate::server::log::enabled(level) {
            $crate::server::log::write(level, &format!($($arg)*));
        }
    }};
}

/// Logs a formatted event at level info.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log_at!($crate::server::log::Level::Info, $($arg)*) };
}

/// Logs a formatted event at level error.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log_at!($crate::server::log::Level::Error, $($arg)*) };
}

/// Logs a formatted event at level warn.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log_at!($crate::server::log::Level::Warn, $($arg)*) };
}

/// Logs a formatted event at level debug.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log_at!($crate::server::log::Level::Debug, $($arg)*) };
}

/// RFC 3339 UTC time with milliseconds (civil-from-days, no time crate needed).
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_443_452_123);
        assert_eq!(timestamp(t), "2026-11-23T14:17:32.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }

    const T: u64 = 1_795_443_452_123; // 2026-11-23T14:17:32.123Z

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn lines_have_a_time_stamp_and_a_level_or_a_journal_priority() {
        let m = "api: 127.0.0.1:4000: TLS handshake failed";
        assert_eq!(
            format_line(Level::Warn, m, false, at(T)),
            format!("2026-11-23T14:17:32.123Z WARN {m}\n")
        );
        assert_eq!(
            format_line(Level::Info, m, false, at(T)),
            format!("2026-11-23T14:17:32.123Z INFO {m}\n")
        );
        assert_eq!(
            format_line(Level::Error, m, true, at(T)),
            format!("<3>{m}\n")
        );
        assert_eq!(
            format_line(Level::Warn, m, true, at(T)),
            format!("<4>{m}\n")
        );
        assert_eq!(
            format_line(Level::Info, m, true, at(T)),
            format!("<6>{m}\n")
        );
        assert_eq!(
            format_line(Level::Debug, m, true, at(T)),
            format!("<7>{m}\n")
        );
        assert_eq!(
            format_line(Level::Debug, m, false, at(T)),
            format!("2026-11-23T14:17:32.123Z DEBUG {m}\n")
        );
    }

    /// A peer's error text or a file name with a newline must not start a second line, and so
    /// cannot forge one (`...\n2026-... INFO api: alice logged in`), nor a journal priority.
    #[test]
    fn a_message_with_control_characters_stays_on_one_line() {
        let forged = "manifest: skipping special file /x/a\n2026-11-23T14:17:32.123Z INFO \
                      api: 10.0.0.1 logged in as root\r\u{1b}[2K\t\u{85}\u{2028}\u{202e}z\u{7f}";
        for journal in [false, true] {
            let line = format_line(Level::Info, forged, journal, at(T));
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert!(line.ends_with('\n'));
            assert!(
                !line[..line.len() - 1].chars().any(needs_escape),
                "{line:?}"
            );
        }
        assert_eq!(
            escape(forged),
            "manifest: skipping special file /x/a\\n2026-11-23T14:17:32.123Z INFO \
             api: 10.0.0.1 logged in as root\\r\\u{1b}[2K\\t\\u{85}\\u{2028}\\u{202e}z\\u{7f}"
        );
        // A journal line whose message starts with `<0>` keeps the server's own priority first.
        assert_eq!(
            format_line(Level::Info, "trigger x: <0>panic", true, at(T)),
            "<6>trigger x: <0>panic\n"
        );
        // Plain text, quotes and backslashes and non-ASCII are left alone, without a copy.
        let plain = "auth: failed login for \"b\\\\ob\" from ::1 — ok é";
        assert!(matches!(escape(plain), Cow::Borrowed(s) if s == plain));
    }

    #[test]
    fn a_long_message_is_cut_and_says_how_much() {
        let long = "é".repeat(MAX_MESSAGE); // 2 bytes each
        let shown = escape(&long);
        assert!(shown.len() < MAX_MESSAGE + 64, "{}", shown.len());
        assert!(
            shown.ends_with(&format!("… ({} bytes cut)", MAX_MESSAGE)),
            "{}",
            &shown[shown.len() - 40..]
        );
        let exact = "x".repeat(MAX_MESSAGE);
        assert_eq!(escape(&exact), exact);
        let nl = "\n".repeat(MAX_MESSAGE);
        let shown = escape(&nl);
        assert!(!shown.contains('\n'));
        assert!(shown.ends_with(&format!("({} bytes cut)", MAX_MESSAGE / 2)));
    }

    #[test]
    fn levels_parse_print_and_order() {
        for l in [Level::Error, Level::Warn, Level::Info, Level::Debug] {
            assert_eq!(l.to_string().parse::<Level>(), Ok(l));
            assert_eq!(Level::from_priority(l.priority()), l);
        }
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        let e = "verbose".parse::<Level>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown log level \"verbose\": expected error, warn, info or debug"
        );
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
    }

    #[test]
    fn the_level_filters_and_can_change_at_run_time() {
        let before = set_level(Level::Warn);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Info) && !enabled(Level::Debug));
        assert_eq!(set_level(Level::Debug), Level::Warn);
        assert!(enabled(Level::Debug));
        assert_eq!(level(), Level::Debug);
        set_level(before);
    }

    #[test]
    fn the_journal_is_recognised_by_the_device_and_inode_of_stderr() {
        assert!(journal_matches(
            Some("64769:1234567"),
            Some((64769, 1_234_567))
        ));
        assert!(!journal_matches(
            Some("64769:1234568"),
            Some((64769, 1_234_567))
        ));
        assert!(!journal_matches(
            Some("1:1234567"),
            Some((64769, 1_234_567))
        ));
        assert!(!journal_matches(Some("64769"), Some((64769, 1_234_567))));
        assert!(!journal_matches(Some(""), Some((0, 0))));
        assert!(!journal_matches(None, Some((64769, 1_234_567))));
        assert!(!journal_matches(Some("1:2"), None));
    }
}
