//! Trigger scripts (`--trigger-dir`, reference §7.1): user-supplied executables named after an
//! event (`launch`, `send.destinationCreated`, `recv.transferComplete`, `on.<command>`, ...)
//! that the server runs with the event's arguments.
//!
//! The execution model is the documented one:
//! - **asynchronous**: [`Triggers::fire`] only queues the job (a bounded queue, `try_send`); the
//!   caller never waits, not even for the script to start. When the queue is full the job is
//!   dropped and the server log says so.
//! - **serial**: one executor thread runs the jobs one at a time, in order, and waits for each
//!   script to exit before starting the next. A script that never exits blocks every later
//!   trigger (documented behaviour), but never the server: nothing else waits on the executor.
//! - **silent**: output is discarded and failures are not reported, unless `--trigger-log` is
//!   given; then the executor prints what it runs, why it skips, the scripts' output and their
//!   exit status on stderr (never to the `--log` file).
//!
//! The script name comes from client input for API-command triggers (`on.<command>`), so it is
//! checked before use: only plain file names made of `[A-Za-z0-9._-]`, not starting with `.`,
//! are looked up in the trigger directory; anything else (`on.../../bin/sh`) is skipped.
//!
//! **Strict modes** (as sshd's `StrictModes`): scripts run with the server's rights (usually
//! root), so before each run the executor refuses a script that another account could have
//! written or replaced. Checked at run time, on the resolved (symlink-free) paths:
//! - the script is owned by root or by the server's own user and is not group- or
//!   world-writable;
//! - the trigger directory and the directory holding the script (they differ when the script
//!   is a symlink) are owned by root or the server's user and not group- or world-writable;
//! - every directory above those is owned by root or the server's user and is not writable by
//!   group or others unless it has the sticky bit (as `/tmp`, where others cannot rename
//!   what they do not own).
//!
//! A refused script does not run; the refusal is written to the server log (always, not only
//! with `--trigger-log`) and counted ([`Triggers::refused`]).

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};

/// A `--trigger-log` line: on stderr, never in the `--log` file (reference §2), but written as
/// the log is: one line (the script's text escaped, so its output can neither split a line nor
/// set a journal priority with a leading `<0>`), a time stamp and level, or under systemd the
/// journal's priority prefix.
macro_rules! trigger_log {
    ($level:ident, $($arg:tt)*) => {
        crate::server::log::stderr_line(crate::server::log::Level::$level, &format!($($arg)*))
    };
}

/// Longest accepted script name (`NAME_MAX` on Linux).
const MAX_NAME_LEN: usize = 255;
/// With `--trigger-log`: how long the executor waits, after the script exited, for the rest of
/// its output. A script that leaves a background process holding its stdout open would otherwise
/// block the executor until that process exits.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// With `--trigger-log`: output lines are cut into pieces of at most this many bytes.
const MAX_OUTPUT_LINE: u64 = 4096;
/// With `--trigger-log`: each argument is shown with at most this many characters.
const MAX_SHOWN_ARG: usize = 200;
/// How many times a spawn failing with `ETXTBSY` is retried. The error is transient: it happens
/// when the script was just written and another thread of this process forked while the file
/// was still open for writing (the write descriptor lives in the child until its `exec`).
const SPAWN_RETRIES: u32 = 5;

/// One trigger to run: the script name (= event name), its argv, its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The script name, which is the event name (`launch`, `on.send.createTransfer`, ...).
    pub name: String,
    /// The script's arguments (argv\[1..\]).
    pub args: Vec<String>,
    /// Bytes written to the script's stdin; `None` gives it `/dev/null`.
    pub stdin: Option<Vec<u8>>,
}

/// State shared by the [`Triggers`] handle and its executor thread.
#[derive(Debug, Default)]
struct Shared {
    /// Jobs queued or running. Incremented by `fire` before the job is queued, decremented by the
    /// executor once the job is finished (or discarded), so zero means "queue empty and idle".
    pending: Mutex<usize>,
    /// Notified whenever `pending` drops.
    idle: Condvar,
    /// Jobs dropped because the queue was full (or the executor was gone).
    dropped: AtomicU64,
    /// Scripts refused by the strict-modes check.
    refused: AtomicU64,
    /// Scripts started.
    runs: AtomicU64,
    /// Scripts that could not start, or exited with a status other than 0 (or by a signal).
    failures: AtomicU64,
    /// Set when the handle is dropped: the executor discards the jobs still queued.
    closed: AtomicBool,
}

impl Shared {
    /// Marks one pending job as done.
    fn done(&self) {
        let mut pending = self.pending.lock();
        *pending = pending.saturating_sub(1);
        self.idle.notify_all();
    }
}

/// Decrements `pending` when a job ends, even if running it panicked.
struct DoneGuard<'a>(&'a Shared);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// The trigger runner (Send + Sync; shared by every server thread).
///
/// Dropping it does not wait: the executor thread is detached, finishes the script it is
/// running (if any), discards the jobs still queued and exits.
#[derive(Debug)]
pub struct Triggers {
    /// The queue to the executor; `None` for a disabled runner.
    tx: Option<Sender<Job>>,
    /// The trigger directory (absolute).
    dir: PathBuf,
    /// Counters and the idle signal.
    shared: Arc<Shared>,
}

impl Triggers {
    /// Starts the executor thread. `dir` = --trigger-dir, `log` = --trigger-log,
    /// `capacity` = queue bound (the server uses 1000).
    ///
    /// The directory need not exist yet: scripts are looked up when each job runs. A relative
    /// `dir` is made absolute against the current directory, since it is also the scripts'
    /// working directory.
    ///
    /// # Panics
    /// If the operating system cannot create a thread (as [`std::thread::spawn`] does).
    pub fn start(dir: PathBuf, log: bool, capacity: usize) -> Self {
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let shared = Arc::new(Shared::default());
        let exec = Executor {
            dir: dir.clone(),
            log,
            shared: Arc::clone(&shared),
        };
        // The handle is dropped on purpose: the executor runs detached (see the type's docs).
        let _detached = thread::Builder::new()
            .name("triggers".into())
            .spawn(move || exec.run(&rx))
            .expect("cannot spawn the trigger executor thread"); // Only fails when out of resources.
        Self {
            tx: Some(tx),
            dir,
            shared,
        }
    }

    /// A runner that runs nothing (tests, or a missing trigger dir if you think that useful).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            dir: PathBuf::new(),
            shared: Arc::new(Shared::default()),
        }
    }

    /// Queues a trigger; NEVER blocks (crossbeam bounded channel, try_send). When the queue is
    /// full the job is dropped and the server log says so:
    /// "triggers: queue full (N waiting): dropped <name> (M dropped so far)".
    ///
    /// Nothing is checked here (no file-system access, which could block): the name and the
    /// script are checked by the executor when the job's turn comes.
    pub fn fire(&self, name: &str, args: Vec<String>, stdin: Option<Vec<u8>>) {
        let Some(tx) = &self.tx else { return };
        *self.shared.pending.lock() += 1;
        let job = Job {
            name: name.to_owned(),
            args,
            stdin,
        };
        let gone = match tx.try_send(job) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => true,
        };
        self.shared.done();
        let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if gone {
            crate::warn!("triggers: executor gone: dropped {name} ({dropped} dropped so far)");
        } else {
            crate::warn!(
                "triggers: queue full ({} waiting): dropped {name} ({dropped} dropped so far)",
                tx.len()
            );
        }
    }

    /// Whether a script for `name` exists and is executable (for `triggersAvailable`-like
    /// reporting and for the lead to skip building expensive arguments).
    ///
    /// Always `false` for a disabled runner and for unsafe names. This does a `stat` of the
    /// script; the answer can change before the job runs.
    pub fn has(&self, name: &str) -> bool {
        self.tx.is_some() && safe_name(name) && script(&self.dir.join(name)).is_ok()
    }

    /// Jobs dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Scripts refused so far because another account could have written them (see the
    /// module's "strict modes"). Each is a trigger failure, logged in the server log.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Scripts run so far (started, whatever their outcome).
    pub fn runs(&self) -> u64 {
        self.shared.runs.load(Ordering::Relaxed)
    }

    /// Scripts that failed so far: could not start, or did not exit with status 0.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Waits until the queue is empty and the executor idle, or `timeout` passes; returns
    /// whether it became idle (tests use it instead of sleeping).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self.shared.pending.lock();
        while *pending > 0 {
            if self
                .shared
                .idle
                .wait_until(&mut pending, deadline)
                .timed_out()
            {
                return *pending == 0;
            }
        }
        true
    }
}

impl Drop for Triggers {
    fn drop(&mut self) {
        // The sender is dropped right after, which ends the executor's loop once the queue is
        // drained; the flag makes it drain without running anything.
        self.shared.closed.store(true, Ordering::Relaxed);
    }
}

/// Whether `name` may be used as a file name inside the trigger directory: non-empty, at most
/// `NAME_MAX` bytes, only `[A-Za-z0-9._-]`, not starting with `.` (which also excludes `.` and
/// `..`). No separator can appear, so the script is always a direct child of the directory.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks that `path` is a regular file (after following symlinks) with an execute bit.
fn script(path: &Path) -> Result<(), String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err("no such script".into()),
        Err(e) => return Err(format!("cannot stat: {e}")),
    };
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    Ok(())
}

/// Permission bits that let group or others write.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// The strict-modes check (see the module docs) of the script `script` in the trigger
/// directory `dir`, for a server whose effective uid is `euid`.
///
/// # Errors
/// Why the script must not run, naming the offending path.
fn strict_modes(dir: &Path, script: &Path, euid: u32) -> Result<(), String> {
    let trusted = |m: &fs::Metadata| m.uid() == 0 || m.uid() == euid;
    let stat = |p: &Path| fs::metadata(p).map_err(|e| format!("cannot stat {}: {e}", p.display()));
    let resolve =
        |p: &Path| fs::canonicalize(p).map_err(|e| format!("cannot resolve {}: {e}", p.display()));
    // `exact`: the directory itself must not be writable by others, sticky or not.
    let check_dir = |d: &Path, exact: bool| -> Result<(), String> {
        let m = stat(d)?;
        if !trusted(&m) {
            return Err(format!(
                "directory {} is owned by uid {}, not root or the server's user",
                d.display(),
                m.uid()
            ));
        }
        let sticky = m.mode() & 0o1000 != 0;
        if m.mode() & GROUP_OTHER_WRITE != 0 && (exact || !sticky) {
            return Err(format!(
                "directory {} is writable by group or others (mode {:o})",
                d.display(),
                m.mode() & 0o7777
            ));
        }
        Ok(())
    };
    let dir = resolve(dir)?;
    let real = resolve(script)?;
    let m = stat(&real)?;
    if !trusted(&m) {
        return Err(format!(
            "{} is owned by uid {}, not root or the server's user",
            real.display(),
            m.uid()
        ));
    }
    if m.mode() & GROUP_OTHER_WRITE != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o})",
            real.display(),
            m.mode() & 0o7777
        ));
    }
    // A directory itself, then every directory above it (where a sticky bit may excuse
    // others' write permission, as for /tmp).
    let check_tree = |d: &Path| -> Result<(), String> {
        check_dir(d, true)?;
        d.ancestors().skip(1).try_for_each(|a| check_dir(a, false))
    };
    check_tree(&dir)?;
    match real.parent().filter(|h| *h != dir) {
        Some(holder) => check_tree(holder),
        None => Ok(()),
    }
}

/// The executor thread's state.
struct Executor {
    dir: PathBuf,
    log: bool,
    shared: Arc<Shared>,
}

impl Executor {
    /// Runs the jobs one at a time until the queue is closed and drained.
    fn run(&self, rx: &Receiver<Job>) {
        for job in rx {
            let _done = DoneGuard(&self.shared);
            if !self.shared.closed.load(Ordering::Relaxed) {
                self.job(&job);
            }
        }
    }

    /// Runs one job to completion (or skips it).
    fn job(&self, job: &Job) {
        let name = &job.name;
        if !safe_name(name) {
            if self.log {
                trigger_log!(Info, "trigger {name:?}: skipped: unsafe name");
            }
            return;
        }
        let path = self.dir.join(name);
        if let Err(why) = script(&path) {
            if self.log {
                trigger_log!(Info, "trigger {name}: skipped: {why} ({})", path.display());
            }
            return;
        }
        if let Err(why) = strict_modes(&self.dir, &path, super::sys::euid()) {
            let n = self.shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
            crate::warn!("triggers: refused {name}: {why} ({n} refused so far)");
            if self.log {
                trigger_log!(Warn, "trigger {name}: refused: {why}");
            }
            return;
        }
        let shown = self.log.then(|| show(name, &job.args));
        if let Some(shown) = &shown {
            trigger_log!(Info, "trigger {shown}: starting");
        }
        let started = Instant::now();
        self.shared.runs.fetch_add(1, Ordering::Relaxed);
        let mut child = match self.spawn(&path, job) {
            Ok(c) => c,
            Err(e) => {
                self.shared.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(shown) = &shown {
                    trigger_log!(Warn, "trigger {shown}: failed to start: {e}");
                }
                return;
            }
        };
        if let (Some(data), Some(mut pipe)) = (job.stdin.clone(), child.stdin.take()) {
            // A separate thread, so a script that never reads cannot block the executor. It ends
            // when everything is written or the script closes its end (EPIPE, ignored: SIGPIPE
            // is ignored in Rust programs). Detached, since a background process of the script
            // could keep the pipe open without reading.
            let spawned = thread::Builder::new()
                .name("trigger-stdin".into())
                .spawn(move || {
                    let _ = pipe.write_all(&data);
                });
            if let (Err(e), Some(shown)) = (spawned, &shown) {
                trigger_log!(Warn, "trigger {shown}: cannot feed stdin: {e}");
            }
        }
        let output = shown.as_ref().map(|_| capture(name, &mut child));
        let status = child.wait();
        if !status.as_ref().is_ok_and(ExitStatus::success) {
            self.shared.failures.fetch_add(1, Ordering::Relaxed);
        }
        let secs = started.elapsed().as_secs_f64();
        if let Some(done) = output {
            // Waits for the readers to reach EOF, but not forever (see `OUTPUT_GRACE`).
            let deadline = Instant::now() + OUTPUT_GRACE;
            for _ in 0..2 {
                if done.recv_deadline(deadline).is_err() {
                    break;
                }
            }
        }
        if let Some(shown) = &shown {
            match status {
                Ok(s) => trigger_log!(Info, "trigger {shown}: {} after {secs:.3} s", exit(s)),
                Err(e) => trigger_log!(Warn, "trigger {shown}: cannot wait: {e}"),
            }
        }
    }

    /// Starts the script (retrying a transient `ETXTBSY`).
    fn spawn(&self, path: &Path, job: &Job) -> io::Result<Child> {
        let quiet = || {
            if self.log {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let mut attempt = 0;
        loop {
            let mut cmd = Command::new(path);
            cmd.args(&job.args)
                .current_dir(&self.dir)
                .stdin(if job.stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(quiet())
                .stderr(quiet());
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < SPAWN_RETRIES => {
                    attempt += 1;
                    thread::sleep(Duration::from_millis(10 << attempt));
                }
                other => return other,
            }
        }
    }
}

/// Starts one reader thread per output pipe of `child`; each prints the lines it reads to stderr
/// prefixed `trigger <name>: ` and signals the returned channel at EOF.
fn capture(name: &str, child: &mut Child) -> Receiver<()> {
    let (tx, rx) = crossbeam_channel::bounded(2);
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for pipe in pipes {
        let tx = tx.clone();
        let Some(pipe) = pipe else {
            // Not piped: nothing to wait for.
            let _ = tx.send(());
            continue;
        };
        let prefix = format!("trigger {name}: ");
        let spawned = thread::Builder::new()
            .name("trigger-output".into())
            .spawn(move || {
                print_lines(&prefix, pipe);
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            // The pipe is closed with the failed closure; the script gets EPIPE if it writes.
            trigger_log!(Warn, "trigger {name}: cannot read output: {e}");
        }
    }
    rx
}

/// Copies `pipe` to stderr line by line (lines longer than `MAX_OUTPUT_LINE` are cut), each
/// as one `--trigger-log` line.
fn print_lines(prefix: &str, pipe: Box<dyn Read + Send>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_OUTPUT_LINE)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                trigger_log!(Info, "{prefix}{}", text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

/// `<name> "arg1" "arg2"`, each argument quoted and cut to `MAX_SHOWN_ARG` characters.
fn show(name: &str, args: &[String]) -> String {
    let mut out = name.to_owned();
    for a in args {
        out.push(' ');
        if a.chars().count() > MAX_SHOWN_ARG {
            let cut: String = a.chars().take(MAX_SHOWN_ARG).collect();
            out.push_str(&format!("{cut:?}..."));
        } else {
            out.push_str(&format!("{a:?}"));
        }
    }
    out
}

/// `exit <code>` or `killed by signal <n>`.
fn exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("{status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generous bound for `wait_idle`; only reached when a test fails.
    const LONG: Duration = Duration::from_secs(60);

    /// Writes an executable `#!/bin/sh` script `name` into `dir`.
    fn write_script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Waits (bounded) until `path` exists with content; returns it.
    fn wait_file(path: &Path) -> String {
        let deadline = Instant::now() + LONG;
        loop {
            if let Ok(s) = fs::read_to_string(path) {
                if s.ends_with('\n') {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills (SIGKILL) the process whose pid is in a file, when dropped: a hung test script
    /// never outlives its test, even a failing one.
    struct KillOnDrop(PathBuf);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Ok(pid) = fs::read_to_string(&self.0) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
    }

    #[test]
    fn names_are_checked() {
        for ok in [
            "launch",
            "recv.transferComplete",
            "on.send.createTransfer",
            "a-b_c.9",
        ] {
            assert!(safe_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../x",
            "a/b",
            "on.../../x",
            "a b",
            "é",
            &long,
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn argv_and_stdin_are_delivered_exactly() {
        let dir = tempfile::tempdir().unwrap();
        write_script(
            dir.path(),
            "recv.transferComplete",
            "for a in \"$@\"; do printf '%s\\n' \"$a\" >> args.txt; done\ncat > stdin.bin",
        );
        let t = Triggers::start(dir.path().to_owned(), false, 10);
        assert!(t.has("recv.transferComplete"));
        let json = r#"{"request":"send.createManifest","parameters":{"fileMappings":{"/src/foo.txt":"/dst/bar.txt"}}}"#;
        let args: Vec<String> = ["id 1", json, "", "$HOME `id` *", "last"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let stdin = b"/a.txt\t/srv/a.txt\n/b c.txt\t/srv/b c.txt\n".to_vec();
        t.fire("recv.transferComplete", args.clone(), Some(stdin.clone()));
        assert!(t.wait_idle(LONG));
        let got = fs::read_to_string(dir.path().join("args.txt")).unwrap();
        assert_eq!(
            got,
            args.iter().map(|a| format!("{a}\n")).collect::<String>()
        );
        assert_eq!(fs::read(dir.path().join("stdin.bin")).unwrap(), stdin);
    }

    #[test]
    fn no_stdin_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "launch", "cat > stdin.bin; echo \"$#\" > argc");
        let t = Triggers::start(dir.path().to_owned(), false, 10);
        t.fire("launch", vec![], None);
        assert!(t.wait_idle(LONG));
        assert_eq!(fs::read(dir.path().join("stdin.bin")).unwrap(), b"");
        assert_eq!(fs::read_to_string(dir.path().join("argc")).unwrap(), "0\n");
    }

    /// What `jetstream_trigger_runs_total` and `jetstream_trigger_failures_total` show.
    #[test]
    fn runs_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "launch", "exit 0");
        write_script(dir.path(), "recv.transferComplete", "exit 3");
        write_script(dir.path(), "send.transferComplete", "kill -9 $$");
        let t = Triggers::start(dir.path().to_owned(), false, 10);
        t.fire("launch", vec![], None);
        t.fire("recv.transferComplete", vec![], None);
        t.fire("send.transferComplete", vec![], None);
        // No such script: neither a run nor a failure.
        t.fire("recv.transferStarted", vec![], None);
        assert!(t.wait_idle(LONG));
        assert_eq!((t.runs(), t.failures(), t.refused()), (3, 2, 0));
    }

    #[test]
    fn cwd_is_the_trigger_dir() {
        let dir = tempfile::tempdir().unwrap();
        write_script(
            dir.path(),
            "launch",
            "echo \"JetStream server Launched on port \"$1 >> log.txt",
        );
        let t = Triggers::start(dir.path().to_owned(), false, 10);
        t.fire("launch", vec!["8886".into()], None);
        assert!(t.wait_idle(LONG));
        let log = fs::read_to_string(dir.path().join("log.txt")).unwrap();
        assert_eq!(log, "JetStream server Launched on port 8886\n");
    }

    #[test]
    fn a_burst_runs_serially_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // `mkdir` is atomic: if two runs overlapped, the second would fail to create the lock.
        write_script(
            dir.path(),
            "step",
            "mkdir lock || echo \"overlap at $1\" >> overlap.txt\n\
             echo \"$1\" >> order.txt\n\
             sleep 0.02\n\
             rmdir lock",
        );
        let t = Triggers::start(dir.path().to_owned(), false, 100);
        for i in 0..20 {
            t.fire("step", vec![i.to_string()], None);
        }
        assert!(t.wait_idle(LONG));
        let order = fs::read_to_string(dir.path().join("order.txt")).unwrap();
        let want: String = (0..20).map(|i| format!("{i}\n")).collect();
        assert_eq!(order, want);
        assert!(!dir.path().join("overlap.txt").exists());
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn bad_jobs_are_skipped_and_later_ones_run() {
        // Layout: <parent>/sub is the trigger dir; <outside> is another temporary directory.
        // Every script named `x` appends its own path to one marker file, so the marker shows
        // exactly which of them ran.
        let parent = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let sub = parent.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let marker = outside.path().join("ran");
        let body = format!("echo \"$0\" >> '{}'", marker.display());
        write_script(outside.path(), "x", &body); // `../../<outside>/x`
        write_script(parent.path(), "x", &body); // `../x`
        write_script(&sub, "x", &body); // `on.../../x` (via the directory `on...`)
        fs::create_dir(sub.join("on...")).unwrap();
        write_script(&sub, ".hidden", &body);
        fs::create_dir(sub.join("a")).unwrap();
        write_script(&sub.join("a"), "b", &body);
        write_script(&sub, "plain", &body);
        fs::set_permissions(sub.join("plain"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir(sub.join("adir")).unwrap();
        write_script(&sub, "good", "echo \"$1\" >> good.txt");
        let escape = format!(
            "../../{}/x",
            outside.path().file_name().unwrap().to_string_lossy()
        );

        let t = Triggers::start(sub.clone(), true, 100);
        let bad = [
            "missing",
            "plain",
            "adir",
            "on.../../x",
            "../x",
            ".hidden",
            "a/b",
            "",
            &escape,
            "..",
            "/bin/true",
        ];
        for (i, name) in bad.iter().enumerate() {
            assert!(!t.has(name), "{name:?}");
            t.fire(name, vec![], None);
            t.fire("good", vec![i.to_string()], None);
        }
        // The marker mechanism works: the one legitimate `x` runs and is the only entry.
        assert!(t.has("x"));
        t.fire("x", vec![], None);
        assert!(t.wait_idle(LONG));
        let ran = fs::read_to_string(&marker).unwrap();
        assert_eq!(ran, format!("{}\n", sub.join("x").display()));
        let good = fs::read_to_string(sub.join("good.txt")).unwrap();
        assert_eq!(
            good,
            (0..bad.len()).map(|i| format!("{i}\n")).collect::<String>()
        );
    }

    #[test]
    fn unread_stdin_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "deaf", "echo ran > deaf.txt");
        write_script(dir.path(), "after", "echo ran > after.txt");
        let t = Triggers::start(dir.path().to_owned(), false, 10);
        t.fire("deaf", vec![], Some(vec![b'x'; 1 << 20]));
        t.fire("after", vec![], None);
        assert!(t.wait_idle(LONG));
        assert!(dir.path().join("deaf.txt").exists());
        assert!(dir.path().join("after.txt").exists());
    }

    #[test]
    fn a_hung_script_delays_later_jobs_and_overflow_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("hang.pid");
        let _kill = KillOnDrop(pid.clone());
        write_script(dir.path(), "hang", "echo $$ > hang.pid\nexec sleep 1000");
        write_script(dir.path(), "rec", "echo \"$1\" >> rec.txt");
        let t = Triggers::start(dir.path().to_owned(), false, 3);
        t.fire("hang", vec![], None);
        // Once the pid is written, the hang job has left the queue: it holds 0 of 3.
        wait_file(&pid);
        for i in 0..10 {
            t.fire("rec", vec![i.to_string()], None); // Returns although the executor is stuck.
        }
        assert_eq!(t.dropped(), 7);
        assert!(!t.wait_idle(Duration::ZERO));
        assert!(!dir.path().join("rec.txt").exists());
        drop(_kill);
        assert!(t.wait_idle(LONG));
        let rec = fs::read_to_string(dir.path().join("rec.txt")).unwrap();
        assert_eq!(rec, "0\n1\n2\n");
        assert_eq!(t.dropped(), 7);
    }

    #[test]
    fn dropping_does_not_wait_and_discards_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("hang.pid");
        let kill = KillOnDrop(pid.clone());
        write_script(dir.path(), "hang", "echo $$ > hang.pid\nexec sleep 1000");
        write_script(dir.path(), "rec", "echo \"$1\" >> rec.txt");
        let t = Triggers::start(dir.path().to_owned(), false, 10);
        let shared = Arc::clone(&t.shared);
        t.fire("hang", vec![], None);
        t.fire("rec", vec!["0".into()], None);
        wait_file(&pid);
        drop(t); // Must return while `hang` runs.
        drop(kill);
        let mut pending = shared.pending.lock();
        let deadline = Instant::now() + LONG;
        while *pending > 0 && !shared.idle.wait_until(&mut pending, deadline).timed_out() {}
        assert_eq!(*pending, 0);
        assert!(!dir.path().join("rec.txt").exists());
    }

    #[test]
    fn trigger_log_mode_runs_and_survives_background_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("bg.pid");
        let _kill = KillOnDrop(pid.clone());
        // The background `sleep` inherits stdout/stderr: the readers never see EOF while it
        // lives, and the executor must go on anyway.
        write_script(
            dir.path(),
            "noisy",
            "echo out; echo err >&2; printf 'no newline'; sleep 1000 & echo $! > bg.pid; exit 3",
        );
        write_script(dir.path(), "after", "cat > after.txt");
        let t = Triggers::start(dir.path().to_owned(), true, 10);
        t.fire("noisy", vec!["a b".into()], Some(b"ignored".to_vec()));
        t.fire("after", vec![], Some(b"fed".to_vec()));
        assert!(t.wait_idle(LONG));
        assert_eq!(fs::read(dir.path().join("after.txt")).unwrap(), b"fed");
        assert!(pid.exists());
    }

    /// Regression (issue 15, item 10): scripts ran as the server (root) whoever owned them and
    /// whoever could write them or their directory. Each refused script would append to a
    /// marker; a good one fired after them shows the executor got past them.
    #[test]
    #[ignore = "needs root: a script owned by another user"]
    fn regression_strict_modes_refuse_scripts_others_could_write() {
        crate::users::test_support::require_root("a script owned by another user");
        let me = super::super::sys::euid();
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("triggers");
        fs::create_dir(&dir).unwrap();
        let marker = base.path().join("ran");
        let body = format!("echo \"$0\" >> '{}'", marker.display());
        let stranger = if me == 0 { 4242 } else { 0 };
        write_script(&dir, "foreign", &body);
        std::os::unix::fs::chown(dir.join("foreign"), Some(stranger), None).unwrap();
        for (name, mode) in [("groupw", 0o775), ("worldw", 0o757)] {
            write_script(&dir, name, &body);
            fs::set_permissions(dir.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        // A symlink to a good script in a world-writable (even sticky) directory.
        let open_dir = base.path().join("open");
        fs::create_dir(&open_dir).unwrap();
        write_script(&open_dir, "target", &body);
        fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::symlink(open_dir.join("target"), dir.join("linked")).unwrap();
        write_script(&dir, "good", "echo \"$1\" >> good.txt");
        let t = Triggers::start(dir.clone(), false, 100);
        for name in ["foreign", "groupw", "worldw", "linked"] {
            t.fire(name, vec![], None);
        }
        t.fire("good", vec!["1".into()], None);
        assert!(t.wait_idle(LONG));
        assert!(!marker.exists(), "{}", fs::read_to_string(&marker).unwrap());
        assert_eq!(t.refused(), 4);
        assert_eq!(fs::read_to_string(dir.join("good.txt")).unwrap(), "1\n");

        // The trigger directory itself writable by others: even the good script is refused.
        for mode in [0o777, 0o1777, 0o775] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            t.fire("good", vec![format!("{mode:o}")], None);
            assert!(t.wait_idle(LONG));
        }
        // A directory above it writable by others without the sticky bit: refused; with
        // the sticky bit (as /tmp): allowed.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o777)).unwrap();
        t.fire("good", vec!["parent 777".into()], None);
        assert!(t.wait_idle(LONG));
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        t.fire("good", vec!["parent 1777".into()], None);
        assert!(t.wait_idle(LONG));
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("good.txt")).unwrap(),
            "1\nparent 1777\n"
        );
        assert_eq!(t.refused(), 8);
    }

    #[test]
    fn disabled_runs_nothing() {
        let t = Triggers::disabled();
        assert!(!t.has("launch"));
        t.fire("launch", vec![], None);
        assert!(t.wait_idle(Duration::ZERO));
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn a_relative_dir_is_made_absolute() {
        let t = Triggers::start(PathBuf::from("some/triggers"), false, 1);
        assert!(t.dir.is_absolute());
        assert!(t.dir.ends_with("some/triggers"));
    }

    #[test]
    fn shown_args_are_quoted_and_cut() {
        let long = "x".repeat(300);
        let s = show("on.x", &["a b".into(), "{\"k\":1}".into(), long]);
        assert!(s.starts_with("on.x \"a b\" \"{\\\"k\\\":1}\" \"xxx"));
        assert!(s.ends_with("\"..."));
    }
}
