//! The event log (`getEventLog`, reference §7.2): what happened on the server, newest last,
//! each entry the structure of the object concerned plus `_event` and `_timestamp` (µs).
//! Kept in memory (the last [`CAPACITY`] entries) and appended to `<state>/events.log` (one
//! JSON object per line) so that it survives restarts.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::objects::now_us;

/// Entries kept (in memory, and at most twice that on disk before the file is compacted).
pub const CAPACITY: usize = 10_000;

/// The log.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
    path: PathBuf,
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Value>,
    file: Option<File>,
    lines_in_file: usize,
}

impl EventLog {
    /// Opens the log in `state_dir`, loading what it holds.
    pub fn open(state_dir: &Path) -> Self {
        let path = state_dir.join("events.log");
        let mut entries = VecDeque::new();
        let mut lines = 0;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                lines += 1;
                // A torn last line (crash mid-write) is skipped.
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    entries.push_back(v);
                    if entries.len() > CAPACITY {
                        entries.pop_front();
                    }
                }
            }
        }
        let log = Self {
            inner: Mutex::new(Inner {
                entries,
                file: None,
                lines_in_file: lines,
            }),
            path,
        };
        {
            let mut inner = log.inner.lock();
            if inner.lines_in_file > CAPACITY {
                log.compact(&mut inner);
            }
            inner.file = log.append_handle();
        }
        log
    }

    fn append_handle(&self) -> Option<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| crate::error!("events: cannot write {}: {e}", self.path.display()))
            .ok()
    }

    /// Rewrites the file with the entries in memory.
    fn compact(&self, inner: &mut Inner) {
        let mut text = Vec::new();
        for e in &inner.entries {
            text.extend_from_slice(e.to_string().as_bytes());
            text.push(b'\n');
        }
        match super::state::write_atomic(&self.path, &text) {
            Ok(()) => inner.lines_in_file = inner.entries.len(),
            Err(e) => crate::error!("events: cannot compact {}: {e}", self.path.display()),
        }
        inner.file = self.append_handle();
    }

    /// Records `event` with the fields of `structure` (an object; anything else is put under
    /// `value`).
    pub fn record(&self, event: &str, structure: Value) {
        let mut entry = match structure {
            Value::Object(m) => Value::Object(m),
            Value::Null => json!({}),
            other => json!({ "value": other }),
        };
        entry["_event"] = json!(event);
        entry["_timestamp"] = json!(now_us());
        let mut inner = self.inner.lock();
        if let Some(f) = inner.file.as_mut() {
            let mut line = entry.to_string().into_bytes();
            line.push(b'\n');
            if f.write_all(&line).is_ok() {
                inner.lines_in_file += 1;
            }
        }
        inner.entries.push_back(entry);
        if inner.entries.len() > CAPACITY {
            inner.entries.pop_front();
        }
        if inner.lines_in_file > 2 * CAPACITY {
            self.compact(&mut inner);
        }
    }

    /// Entries matching the filter, oldest first, at most `limit` (the newest ones).
    pub fn query(&self, filter: &Filter, visible: impl Fn(&Value) -> bool) -> Vec<Value> {
        let inner = self.inner.lock();
        let mut out: Vec<Value> = inner
            .entries
            .iter()
            .rev()
            .filter(|e| filter.matches(e) && visible(e))
            .take(filter.limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// `getEventLog` parameters.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Entries at or after this time (µs).
    pub start_time: Option<i64>,
    /// Entries at or before this time (µs).
    pub end_time: Option<i64>,
    /// Only these event names (empty: all).
    pub events: Vec<String>,
    /// At most this many (the newest).
    pub limit: usize,
}

impl Filter {
    fn matches(&self, e: &Value) -> bool {
        let t = e["_timestamp"].as_i64().unwrap_or(0);
        self.start_time.is_none_or(|s| t >= s)
            && self.end_time.is_none_or(|end| t <= end)
            && (self.events.is_empty()
                || e["_event"]
                    .as_str()
                    .is_some_and(|n| self.events.iter().any(|x| x == n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Filter {
        Filter {
            start_time: None,
            end_time: None,
            events: Vec::new(),
            limit: usize::MAX,
        }
    }

    #[test]
    fn entries_carry_event_and_timestamp_and_survive_reopening() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path());
        log.record("serverStarted", json!({"serverId": "x"}));
        log.record(
            "transferUpdated",
            json!({"transferId": "t", "status": "sending"}),
        );
        drop(log);
        let log = EventLog::open(d.path());
        let got = log.query(&all(), |_| true);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["_event"], "serverStarted");
        assert_eq!(got[0]["serverId"], "x");
        assert!(got[1]["_timestamp"].as_i64().unwrap() >= got[0]["_timestamp"].as_i64().unwrap());
    }

    #[test]
    fn filters_by_name_time_limit_and_visibility() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path());
        for i in 0..10 {
            log.record(
                if i % 2 == 0 { "a" } else { "b" },
                json!({"i": i, "owner": if i < 5 { "u" } else { "v" }}),
            );
        }
        let mut f = all();
        f.events = vec!["a".into()];
        assert_eq!(log.query(&f, |_| true).len(), 5);
        f.limit = 2;
        let last: Vec<i64> = log
            .query(&f, |_| true)
            .iter()
            .map(|e| e["i"].as_i64().unwrap())
            .collect();
        assert_eq!(last, [6, 8], "the newest, oldest first");
        let only_u = log.query(&all(), |e| e["owner"] == "u");
        assert_eq!(only_u.len(), 5);
        let mut f = all();
        f.start_time = Some(i64::MAX);
        assert!(log.query(&f, |_| true).is_empty());
    }

    #[test]
    fn the_file_stays_bounded_and_a_torn_line_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path());
        for i in 0..(2 * CAPACITY + 10) {
            log.record("x", json!({"i": i}));
        }
        drop(log);
        let text = std::fs::read_to_string(d.path().join("events.log")).unwrap();
        assert!(
            text.lines().count() <= 2 * CAPACITY,
            "{}",
            text.lines().count()
        );
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join("events.log"))
            .unwrap();
        f.write_all(b"{\"_event\": \"torn").unwrap();
        let log = EventLog::open(d.path());
        let got = log.query(&all(), |_| true);
        assert_eq!(got.len(), CAPACITY);
        assert_eq!(got.last().unwrap()["i"], 2 * CAPACITY + 9);
    }
}
