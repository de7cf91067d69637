//! The server log: timestamped lines on stderr, or appended to the `--log` file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

static LOG_FILE: OnceLock<(PathBuf, Mutex<File>)> = OnceLock::new();

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
        Err(e) => crate::log!("server: SIGHUP: cannot reopen the log file: {e}"),
    }
}

/// Writes one line: `2026-11-23T14:27:32.123Z message`.
pub fn line(message: &str) {
    let text = format!("{} {message}\n", timestamp(SystemTime::now()));
    match LOG_FILE.get() {
        Some((_, f)) => {
            let _ = f.lock().write_all(text.as_bytes());
        }
        None => {
            let _ = io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

/// Logs a formatted line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::server::log::line(&format!($($arg)*)) };
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
}
