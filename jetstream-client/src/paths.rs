//! Path memory: what the last transfer to a peer measured of the path (bottleneck bandwidth and
//! minimum RTT), kept in a small file so that the next transfer to the same peer starts at that
//! rate instead of ramping up from 512 KiB (the engine's [`PathHint`]; `docs/congestion.md`).
//!
//! It is a cache, never a source of truth: a missing, unreadable or malformed file is an empty
//! memory, a line that does not parse is skipped, entries older than [`MAX_AGE`] are ignored,
//! and the engine checks every hint against the path within a round trip. An entry is removed
//! when a transfer to that peer ends incomplete, so that the next (resuming) one does not send
//! a remembered bandwidth-delay product the receiver may already hold.
//!
//! The file has one line per peer: `key bandwidth-bytes-per-second min-rtt-µs unix-seconds`.
//! The server keeps one in its state directory (keyed by destination id), `jscp` one beside its
//! known-hosts file (keyed by the server's data address).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jetstream_core::PathHint;

/// A remembered path older than this is not used: a day covers the daily transfers of a
/// studio or lab without trusting a path that may have changed since last week.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// At most this many peers are kept (the oldest go first).
const MAX_ENTRIES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    bandwidth: u64,
    min_rtt_us: u64,
    at: u64,
}

/// The remembered paths of one file.
#[derive(Debug)]
pub struct PathMemory {
    file: PathBuf,
    entries: BTreeMap<String, Entry>,
}

/// `$JETSTREAM_PATHS`, else `paths` beside the default known-hosts file.
pub fn default_file() -> PathBuf {
    if let Some(p) = std::env::var_os("JETSTREAM_PATHS").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let hosts = crate::client::default_known_hosts();
    hosts.with_file_name(match hosts.file_name() {
        Some(n) if n.to_string_lossy().starts_with('.') => ".jetstream_paths",
        _ => "paths",
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PathMemory {
    /// Reads `file` (an absent or unreadable file is an empty memory).
    pub fn open(file: &Path) -> Self {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let key = f.next()?;
                let bandwidth = f.next()?.parse().ok()?;
                let min_rtt_us = f.next()?.parse().ok()?;
                let at = f.next()?.parse().ok()?;
                f.next().is_none().then(|| {
                    (
                        key.to_owned(),
                        Entry {
                            bandwidth,
                            min_rtt_us,
                            at,
                        },
                    )
                })
            })
            .collect();
        Self {
            file: file.to_owned(),
            entries,
        }
    }

    /// The hint for `key`, if one was recorded within [`MAX_AGE`].
    pub fn hint(&self, key: &str) -> Option<PathHint> {
        let e = self.entries.get(key)?;
        let age = unix_now().saturating_sub(e.at);
        if age > MAX_AGE.as_secs() {
            return None;
        }
        PathHint::new(e.bandwidth, Duration::from_micros(e.min_rtt_us))
    }

    /// Records what a transfer to `key` measured; `None` (an incomplete transfer, or one
    /// that never found the pipe full) forgets the peer.
    pub fn record(&mut self, key: &str, estimate: Option<PathHint>) {
        // Keys are written unquoted: anything that would break the line format is not kept.
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return;
        }
        match estimate {
            Some(h) => {
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        bandwidth: h.bandwidth,
                        min_rtt_us: u64::try_from(h.min_rtt.as_micros()).unwrap_or(u64::MAX),
                        at: unix_now(),
                    },
                );
                while self.entries.len() > MAX_ENTRIES {
                    let oldest = self
                        .entries
                        .iter()
                        .min_by_key(|(_, e)| e.at)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        self.entries.remove(&k);
                    }
                }
            }
            None => {
                self.entries.remove(key);
            }
        }
    }

    /// Writes the file (a temporary file renamed into place, mode 0600, its directory created
    /// if missing).
    ///
    /// # Errors
    /// If the directory or file cannot be written.
    pub fn save(&self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .file
            .with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        for (k, e) in &self.entries {
            writeln!(f, "{k} {} {} {}", e.bandwidth, e.min_rtt_us, e.at)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reads_back_forgets_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/paths");
        let mut m = PathMemory::open(&file);
        assert_eq!(m.hint("10.0.0.2:8886"), None);
        let h = PathHint::new(62_500_000, Duration::from_millis(200));
        m.record("10.0.0.2:8886", h);
        m.record("with space", h);
        m.save().unwrap();
        let m2 = PathMemory::open(&file);
        assert_eq!(m2.hint("10.0.0.2:8886"), h);
        assert_eq!(m2.entries.len(), 1);
        // An old entry and garbage lines are ignored.
        let old = unix_now() - MAX_AGE.as_secs() - 10;
        std::fs::write(
            &file,
            format!(
                "a 1000 2000 {old}\nb 1000 2000 {}\nnonsense\nc x 1 1\nd 1 2 3 4\n",
                unix_now()
            ),
        )
        .unwrap();
        let mut m3 = PathMemory::open(&file);
        assert_eq!(m3.hint("a"), None);
        assert_eq!(
            m3.hint("b"),
            PathHint::new(1000, Duration::from_micros(2000))
        );
        assert_eq!(m3.entries.len(), 2);
        m3.record("b", None);
        assert_eq!(m3.hint("b"), None);
        // A missing file is an empty memory.
        assert_eq!(PathMemory::open(&dir.path().join("none")).entries.len(), 0);
    }
}
