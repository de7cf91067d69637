//! What happened on the server, in two forms:
//!
//! - **In-process events** ([`ServerEvent`]) for an embedding program's [`ServerTrigger`] and
//!   for the trigger scripts (`--trigger-dir`), from one source: [`super::Server::emit`].
//!   The names are the reference's trigger names (§7.1: `launch`, `send.destinationCreated`,
//!   `recv.transferComplete`, `on.<command>`, ...) and those of the engine's events
//!   (`send.transferStarted`, ...).
//! - **The event log** ([`EventLog`], `getEventLog`, reference §7.2): newest last, each entry
//!   the structure of the object concerned plus `_event` and `_timestamp` (µs). Kept in memory
//!   (the last [`CAPACITY`] entries) and appended to `<state>/events.log` (one JSON object per
//!   line) so that it survives restarts.
//!
//! # Delivery to the embedding program
//!
//! The trigger is called on one thread of its own (`server-events`), serially, in the order
//! the events happened, as the engine calls its [`jetstream_core::Trigger`]. Between the
//! server and that thread is a bounded queue ([`super::ServerConfig::event_queue`]). When the
//! queue is full, the server thread producing the event **waits** until the trigger has taken
//! one (and logs a warning when such a stall begins): no event is ever dropped, so a program that
//! ingests files on [`ServerEvent::TransferComplete`] never misses one, and memory stays
//! bounded. The price is that a trigger which stops returning stalls what produces events
//! (API commands, transfer bookkeeping) once the queue is full; the UDP data plane does not
//! wait (the engines hand their events over their own threads). So a trigger must not wait on
//! the server itself (a synchronous API call to the same server from `on_event` can deadlock
//! once the queue is full): hand such work to a thread of your own.
//!
//! The script triggers keep their documented model: asynchronous, serial, and a job dropped
//! (and counted, and logged) when their own queue is full (see [`super::triggers`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Sender, TrySendError};
use jetstream_core::Role;
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

/// Receives the server's events. Every method has a no-op default (the shape of the engine's
/// [`jetstream_core::Trigger`]).
pub trait ServerTrigger: Send + 'static {
    /// Called once per event, serially, on the `server-events` thread, in the order the
    /// events happened. See the module docs for what a slow trigger does to the server.
    fn on_event(&mut self, event: &ServerEvent) {
        let _ = event;
    }
}

/// A trigger that does nothing.
#[derive(Debug, Default)]
pub struct NoServerTrigger;

impl ServerTrigger for NoServerTrigger {}

/// A file a receive wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedFile {
    /// Its path in the manifest (`/dir/name`).
    pub manifest_path: String,
    /// Where it was written, absolute.
    pub path: PathBuf,
}

impl ReceivedFile {
    /// A received file (`manifest_path` as the engine reports it, without the leading `/`).
    pub fn new(manifest_path: &str, path: PathBuf) -> Self {
        Self {
            manifest_path: format!("/{}", manifest_path.trim_start_matches('/')),
            path,
        }
    }
}

/// Something that happened on the server. [`Self::name`] is the event's trigger name.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `on.<command>`: an API command was answered.
    CommandProcessed {
        /// The command (`send.createTransfer`).
        command: String,
        /// The request as JSON (`{"request": ..., "parameters": ...}`), every secret masked.
        request: Value,
        /// `success` or `failure`.
        status: String,
        /// The answer's message, secrets cut out.
        message: String,
        /// The answer's result, every secret masked.
        result: Value,
    },
    /// `send.destinationCreated`.
    DestinationCreated {
        /// The destination.
        destination_id: String,
        /// Its data address (`ip:port`).
        destination: String,
        /// The API client that created it (`ip:port`).
        sender: String,
    },
    /// `send.destinationDeleted`.
    DestinationDeleted {
        /// The destination.
        destination_id: String,
        /// Its data address (`ip:port`).
        destination: String,
        /// The API client that deleted it (`ip:port`).
        sender: String,
    },
    /// `launch`: the server is listening.
    Launch {
        /// The bound API address.
        api_addr: std::net::SocketAddr,
    },
    /// `send.transferComplete` / `recv.transferComplete`.
    TransferComplete {
        /// The transfer's id in this server's API (`send.getTransfer` / `recv.getTransfer`).
        transfer_id: String,
        /// Which end this server is.
        role: Role,
        /// The user it ran for.
        user: String,
        /// On the receiving end, every file written (empty on the sending end).
        files: Vec<ReceivedFile>,
    },
    /// `send.transferFailed` / `recv.transferFailed`: it failed or was cancelled (a sending
    /// transfer that is retried is not failed until it is given up).
    TransferFailed {
        /// The transfer's id in this server's API.
        transfer_id: String,
        /// Which end this server is.
        role: Role,
        /// Why, in words.
        message: String,
        /// Why, as the engine's reason (`None`: not the engine's doing, e.g. a refused
        /// connection or `send.failTransfer`).
        reason: Option<jetstream_core::FailureReason>,
    },
    /// `send.transferStarted` / `recv.transferStarted`: data started to move (a sending
    /// transfer: its first attempt reached the receiver).
    TransferStarted {
        /// The transfer's id in this server's API.
        transfer_id: String,
        /// Which end this server is.
        role: Role,
    },
}

impl ServerEvent {
    /// The event's trigger name (`recv.transferComplete`, `on.send.createTransfer`).
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        let by_role = |role: &Role, send: &'static str, recv: &'static str| match role {
            Role::Sender => send,
            Role::Receiver => recv,
        };
        std::borrow::Cow::Borrowed(match self {
            Self::CommandProcessed { command, .. } => {
                return std::borrow::Cow::Owned(format!("on.{command}"))
            }
            Self::DestinationCreated { .. } => "send.destinationCreated",
            Self::DestinationDeleted { .. } => "send.destinationDeleted",
            Self::Launch { .. } => "launch",
            Self::TransferComplete { role, .. } => {
                by_role(role, "send.transferComplete", "recv.transferComplete")
            }
            Self::TransferFailed { role, .. } => {
                by_role(role, "send.transferFailed", "recv.transferFailed")
            }
            Self::TransferStarted { role, .. } => {
                by_role(role, "send.transferStarted", "recv.transferStarted")
            }
        })
    }

    /// The trigger script this event runs, with the reference's argv and stdin (§7.1); `None`
    /// for the events that have no script there.
    pub(crate) fn script(&self) -> Option<super::triggers::Job> {
        let (args, stdin) = match self {
            Self::CommandProcessed {
                request,
                status,
                message,
                result,
                ..
            } => (
                vec![
                    request.to_string(),
                    status.clone(),
                    message.clone(),
                    result.to_string(),
                ],
                None,
            ),
            Self::DestinationCreated {
                destination,
                sender,
                ..
            }
            | Self::DestinationDeleted {
                destination,
                sender,
                ..
            } => (vec![destination.clone(), sender.clone()], None),
            Self::Launch { api_addr } => (vec![api_addr.port().to_string()], None),
            Self::TransferComplete {
                transfer_id,
                role: Role::Receiver,
                user,
                files,
            } => {
                let mut stdin = Vec::new();
                for f in files {
                    stdin.extend_from_slice(format!("{}\t", f.manifest_path).as_bytes());
                    stdin.extend_from_slice(f.path.as_os_str().as_encoded_bytes());
                    stdin.push(b'\n');
                }
                (vec![transfer_id.clone(), user.clone()], Some(stdin))
            }
            _ => return None,
        };
        Some(super::triggers::Job {
            name: self.name().into_owned(),
            args,
            stdin,
        })
    }
}

/// The queue to the embedding program's trigger (see the module docs): a bounded channel to
/// the `server-events` thread. Closed when the server has stopped.
#[derive(Debug)]
pub(crate) struct EventQueue {
    tx: parking_lot::RwLock<Option<Sender<ServerEvent>>>,
    /// Events produced after the queue closed (the server had stopped): counted and logged.
    late: AtomicU64,
    /// Times a producer had to wait for the trigger.
    stalls: AtomicU64,
    /// Whether the queue was full at the last push (a stall is logged once, when it begins).
    stalled: AtomicBool,
    /// Set by [`Self::close`].
    closed: AtomicBool,
}

impl EventQueue {
    /// A queue with no trigger behind it (nothing is queued).
    pub(crate) fn none() -> Self {
        Self {
            tx: parking_lot::RwLock::new(None),
            late: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Starts the `server-events` thread calling `trigger`, behind a queue of `capacity`.
    pub(crate) fn start(
        mut trigger: Box<dyn ServerTrigger>,
        capacity: usize,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded::<ServerEvent>(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("server-events".into())
            .spawn(move || {
                for ev in rx {
                    let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        trigger.on_event(&ev);
                    }));
                    if called.is_err() {
                        crate::error!(
                            "events: the embedding program's trigger panicked on {}; \
                             the next events are still delivered",
                            ev.name()
                        );
                    }
                }
            })?;
        let queue = Self {
            tx: parking_lot::RwLock::new(Some(tx)),
            ..Self::none()
        };
        Ok((queue, thread))
    }

    /// Whether a trigger takes events (skip building an event nobody gets).
    pub(crate) fn is_open(&self) -> bool {
        self.tx.read().is_some()
    }

    /// Queues `ev`; waits while the queue is full (see the module docs).
    pub(crate) fn push(&self, ev: ServerEvent) {
        let guard = self.tx.read();
        let Some(tx) = guard.as_ref() else {
            if self.closed.load(Ordering::Relaxed) {
                self.count_late(&ev.name());
            }
            return;
        };
        match tx.try_send(ev) {
            Ok(()) => self.stalled.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(ev)) => {
                let n = self.stalls.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.stalled.swap(true, Ordering::Relaxed) {
                    crate::warn!(
                        "events: {} events wait for the embedding program's trigger: the \
                         server waits until it takes them ({} now; {n} waits so far)",
                        tx.len(),
                        ev.name()
                    );
                }
                let tx = tx.clone();
                // Not under the lock: close() must be able to take it.
                drop(guard);
                if tx.send(ev).is_err() {
                    self.count_late("(an event)");
                }
            }
            Err(TrySendError::Disconnected(ev)) => self.count_late(&ev.name()),
        }
    }

    fn count_late(&self, name: &str) {
        let n = self.late.fetch_add(1, Ordering::Relaxed) + 1;
        crate::warn!(
            "events: {name} happened after the server stopped: not delivered ({n} so far)"
        );
    }

    /// Closes the queue: the `server-events` thread delivers what is queued and ends.
    pub(crate) fn close(&self) {
        let mut tx = self.tx.write();
        if tx.take().is_some() {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    /// Times a producer waited for the trigger.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }
}

/// Where a [`ServerTrigger`] shares its events with a channel (tests, and programs that want
/// to receive on a thread of their own).
impl ServerTrigger for crossbeam_channel::Sender<ServerEvent> {
    fn on_event(&mut self, event: &ServerEvent) {
        let _ = self.send(event.clone());
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

    #[test]
    fn events_are_named_as_the_reference_triggers() {
        let at = "127.0.0.1:8886".parse().unwrap();
        assert_eq!(ServerEvent::Launch { api_addr: at }.name(), "launch");
        let started = |role| ServerEvent::TransferStarted {
            transfer_id: "t".into(),
            role,
        };
        assert_eq!(started(Role::Sender).name(), "send.transferStarted");
        assert_eq!(started(Role::Receiver).name(), "recv.transferStarted");
        let cmd = ServerEvent::CommandProcessed {
            command: "send.createTransfer".into(),
            request: json!({}),
            status: "success".into(),
            message: "ok".into(),
            result: json!({"transferId": "t"}),
        };
        assert_eq!(cmd.name(), "on.send.createTransfer");
        let job = cmd.script().unwrap();
        assert_eq!(job.name, "on.send.createTransfer");
        assert_eq!(job.args, ["{}", "success", "ok", r#"{"transferId":"t"}"#]);
    }

    /// The scripts get the reference's argv and stdin (§7.1) from the same events the
    /// embedding program gets; the events the reference has no script for run none.
    #[test]
    fn scripts_are_fed_from_the_events() {
        let at = "127.0.0.1:8886".parse().unwrap();
        let job = ServerEvent::Launch { api_addr: at }.script().unwrap();
        assert_eq!(
            (job.name.as_str(), job.args.as_slice()),
            ("launch", &["8886".to_owned()][..])
        );
        let job = ServerEvent::DestinationCreated {
            destination_id: "d".into(),
            destination: "10.0.0.2:8886".into(),
            sender: "127.0.0.1:5000".into(),
        }
        .script()
        .unwrap();
        assert_eq!(job.name, "send.destinationCreated");
        assert_eq!(job.args, ["10.0.0.2:8886", "127.0.0.1:5000"]);
        let complete = |role| ServerEvent::TransferComplete {
            transfer_id: "t".into(),
            role,
            user: "alice".into(),
            files: vec![
                ReceivedFile::new("a/b.mov", PathBuf::from("/in/a/b.mov")),
                ReceivedFile::new("/c", PathBuf::from("/in/c")),
            ],
        };
        let job = complete(Role::Receiver).script().unwrap();
        assert_eq!(job.name, "recv.transferComplete");
        assert_eq!(job.args, ["t", "alice"]);
        assert_eq!(job.stdin.unwrap(), b"/a/b.mov\t/in/a/b.mov\n/c\t/in/c\n");
        assert_eq!(complete(Role::Sender).script(), None);
        let started = ServerEvent::TransferStarted {
            transfer_id: "t".into(),
            role: Role::Receiver,
        };
        assert_eq!(started.script(), None);
    }

    #[test]
    fn the_queue_delivers_in_order_and_counts_what_comes_after_it_closed() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (q, thread) = EventQueue::start(Box::new(tx), 1).unwrap();
        assert!(q.is_open());
        for port in 1..=5u16 {
            q.push(ServerEvent::Launch {
                api_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            });
        }
        q.close();
        assert!(!q.is_open());
        q.push(ServerEvent::Launch {
            api_addr: "127.0.0.1:9".parse().unwrap(),
        });
        assert_eq!(q.late.load(Ordering::Relaxed), 1);
        thread.join().unwrap();
        let ports: Vec<u16> = rx
            .try_iter()
            .map(|e| match e {
                ServerEvent::Launch { api_addr } => api_addr.port(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ports, [1, 2, 3, 4, 5]);
        // A server without a trigger queues nothing.
        let none = EventQueue::none();
        assert!(!none.is_open());
        none.push(ServerEvent::Launch {
            api_addr: "127.0.0.1:9".parse().unwrap(),
        });
        assert_eq!(none.late.load(Ordering::Relaxed), 0);
    }
}
