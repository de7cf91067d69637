//! Real `jetstream server` processes on loopback, real system users, real files.

use std::fs;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jetstream_client::client::{ApiClient, ConnectOptions, Trust};
use jetstream_server::users::test_support::{self, TestUser};
use serde_json::{json, Value};

/// The `jetstream` binary. From this package's tests cargo says where it is; from another
/// package's tests (jscp's) it is the workspace's, which `cargo test --workspace` builds.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = option_env!("CARGO_BIN_EXE_jetstream") {
            return p.to_owned();
        }
        // target/<profile>/deps/<test> -> target/<profile>/jetstream
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        let bin = dir.join("jetstream");
        // Cargo holds the build lock while tests run, so it cannot be built from here.
        assert!(
            bin.exists(),
            "{} is missing: run `cargo test --workspace` (or `cargo build -p jetstream-server` first)",
            bin.display()
        );
        bin.display().to_string()
    })
}

/// The guard of a test that needs root (system users for PAM logins, servers that switch to
/// them, network and mount namespaces): such a test is marked
/// `#[ignore = "needs root: ..."]`, so that a run as another user lists it as ignored, and
/// `scripts/test.sh` runs it as root. Installs the PAM service file and returns true;
/// panics where the test cannot run (see [`test_support::require_root`]), so it never passes
/// without having run. (A bool so that tests read `if !can_run() { return; }` as before.)
pub fn can_run() -> bool {
    test_support::require_root("system users, PAM");
    test_support::ensure_pam_service().expect("install /etc/pam.d/jetstream");
    true
}

/// Whether a test's outside need (`what`, from Debian's `package`) is met. When it is not, a
/// newcomer's test run skips the test and says what to install; under CI (`CI=true`, or
/// `JETSTREAM_REQUIRE_ROOT_TESTS=1` as `.ci/run` sets), whose `.ci/run` installs every such
/// package, the test fails instead, so that a missing install step cannot hide behind a skip.
pub fn need(present: bool, what: &str, package: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false")
            && !test_support::root_tests_required(),
        "{what} is missing (under CI .ci/run must install {package})"
    );
    eprintln!("skipped: needs {what} (apt-get install {package})");
    false
}

/// Whether `program args` runs and exits 0 (output discarded).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A user with a password.
pub fn user() -> (TestUser, String) {
    let pw = format!("pw-{}", std::process::id());
    (TestUser::create(Some(&pw)).expect("useradd"), pw)
}

/// A scratch directory on tmpfs that any user can traverse.
pub fn scratch() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("jstest-")
        .tempdir_in("/dev/shm")
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

pub fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server process.
pub struct Srv {
    child: Option<Child>,
    pub api: u16,
    pub udp: u16,
    pub state: PathBuf,
    pub log: PathBuf,
    extra: Vec<String>,
    netns: Option<String>,
}

impl Srv {
    /// Starts a server whose state and log live in `dir/<name>-*`.
    pub fn start(dir: &Path, name: &str, extra: &[&str]) -> Self {
        Self::start_in(None, dir, name, extra)
    }

    /// Starts a server inside network namespace `netns` (API on all its interfaces).
    ///
    /// Its ports are free when chosen, but tests run in parallel: another test's server or
    /// client may take one before this server binds it. The server then fails to start, and
    /// it starts again on other ports (at most 5 times).
    pub fn start_in(netns: Option<&Netns>, dir: &Path, name: &str, extra: &[&str]) -> Self {
        let mut s = Self {
            netns: netns.map(|n| n.name.clone()),
            child: None,
            api: free_tcp(),
            udp: free_udp(),
            state: dir.join(format!("{name}-state")),
            log: dir.join(format!("{name}.log")),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        for _ in 0..4 {
            match s.try_launch() {
                Err(why) if why.contains("in use") => {
                    eprintln!("{name}: a port was taken before the server bound it; again");
                    s.api = free_tcp();
                    s.udp = free_udp();
                }
                Err(why) => panic!("{why}"),
                Ok(()) => return s,
            }
        }
        s.launch();
        s
    }

    /// The command line.
    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let host = if self.netns.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        c.arg("server")
            .args(["--api-host", host, "--recv-host", host])
            .args(["--api-port", &self.api.to_string()])
            .args(["--recv-port", &self.udp.to_string()])
            .arg("--persistent-state-dir")
            .arg(&self.state)
            .arg("--log")
            .arg(&self.log)
            .args(&self.extra);
        c
    }

    fn launch(&mut self) {
        if let Err(why) = self.try_launch() {
            panic!("{why}");
        }
    }

    /// The line this server logs once it has bound its API port (no other server's).
    fn listening_line(&self) -> String {
        format!("listening: API tcp 127.0.0.1:{} ", self.api)
    }

    /// Whether its "listening" line goes to [`Self::log`] (not with another `--log`, nor a
    /// log level above info).
    fn logs_listening(&self) -> bool {
        !self.extra.iter().enumerate().any(|(i, a)| {
            a == "--log"
                || (a == "--log-level"
                    && self
                        .extra
                        .get(i + 1)
                        .is_some_and(|l| l == "warn" || l == "error"))
        })
    }

    fn try_launch(&mut self) -> Result<(), String> {
        let listening_before = self.log_text().matches(&self.listening_line()).count();
        let mut child = self
            .command()
            .stdout(Stdio::null())
            // To a file, not a pipe nobody reads: trigger runs report there, and a full pipe
            // would stall them.
            .stderr(self.stderr_file())
            .spawn()
            .expect("spawn jetstream server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ready(listening_before) {
            if let Ok(Some(status)) = child.try_wait() {
                let err = fs::read_to_string(self.stderr_path()).unwrap_or_default();
                return Err(format!(
                    "server exited at start ({status}): {err}\n{}",
                    self.log_text()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "server did not open its API port"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Whether this server (not another test's on the same port) serves its API port: its log
    /// has one more "listening" line than before it was started, and the port answers.
    fn ready(&self, listening_before: usize) -> bool {
        match &self.netns {
            // A connection to itself is not the server: polling a local port nobody listens
            // on, the kernel may pick that very port as the source and join the socket to
            // itself (TCP simultaneous open), and the test then connected before the server.
            None => {
                (!self.logs_listening()
                    || self.log_text().matches(&self.listening_line()).count() > listening_before)
                    && TcpStream::connect(("127.0.0.1", self.api))
                        .is_ok_and(|c| c.local_addr().ok() != c.peer_addr().ok())
            }
            Some(ns) => Command::new("ip")
                .args(["netns", "exec", ns, bin(), "api", "--api-control-port"])
                .arg(self.api.to_string())
                .arg("echo")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        }
    }

    /// Stops the process with `signal` and waits for it.
    pub fn signal(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        child.wait().expect("wait")
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.take().expect("running").wait().expect("wait")
    }

    /// Starts it again with the same ports and state.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// `<name>.stderr` beside the log, appended to across restarts.
    fn stderr_path(&self) -> PathBuf {
        self.log.with_extension("stderr")
    }

    fn stderr_file(&self) -> Stdio {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A plain (loopback) API connection.
    pub fn client(&self) -> ApiClient {
        let opts = ConnectOptions::new(Trust::Pinned(None));
        ApiClient::connect("127.0.0.1", self.api, &opts).expect("connect")
    }

    /// A TLS connection (as a remote client or a sending server has), not logged in.
    pub fn tls_client(&self) -> ApiClient {
        let opts = ConnectOptions {
            trust: Trust::Pinned(None),
            timeout: Duration::from_secs(30),
            force_tls: true,
            client_identity: None,
        };
        ApiClient::connect("127.0.0.1", self.api, &opts).expect("TLS connect")
    }

    /// A connection logged in as `user`.
    pub fn login(&self, user: &str, password: &str) -> ApiClient {
        let mut c = self.client();
        c.call("auth", json!({"userName": user, "password": password}))
            .expect("auth");
        c
    }
}

/// A child process killed (and reaped) when dropped, for tests that start one their own way.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        // Whether it was still running matters when a test failed (a panic of the server goes
        // to its stderr, not to its log).
        let state = self.child.take().map(|mut c| {
            let state = match c.try_wait() {
                Ok(Some(status)) => format!("had exited: {status}"),
                Ok(None) => "was running".to_owned(),
                Err(e) => format!("unknown: {e}"),
            };
            let _ = c.kill();
            let _ = c.wait();
            state
        });
        if std::thread::panicking() {
            // A failed test: what the server said is usually the explanation.
            let err = fs::read_to_string(self.stderr_path()).unwrap_or_default();
            let state = state.as_deref().unwrap_or("was stopped by the test");
            eprintln!("--- server {} {state}; stderr: {err}", self.log.display());
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("--- {} (last {} lines)", self.log.display(), tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// Creates a destination on `from` pointing at `to`, logging in there as `user`.
pub fn destination(
    c: &mut ApiClient,
    to: &Srv,
    user: &str,
    password: &str,
    extra: Value,
) -> String {
    let mut p = json!({
        "destinationAddress": "127.0.0.1",
        "destinationApiPort": to.api,
        "userName": user,
        "password": password,
    });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let d = c
        .call("send.createDestination", p)
        .expect("createDestination");
    d["destinationId"].as_str().unwrap().to_owned()
}

/// Creates a manifest and waits until it is complete (or returns its error).
pub fn manifest(c: &mut ApiClient, mappings: Value) -> Result<String, String> {
    let m = c
        .call("send.createManifest", json!({ "fileMappings": mappings }))
        .map_err(|e| e.to_string())?;
    let id = m["manifestId"].as_str().unwrap().to_owned();
    // Issue 18: a manifest that has not counted its files says so (`null`), not 0.
    assert_eq!(m["status"], "pending", "{m}");
    assert!(m["totalFiles"].is_null() && m["totalSize"].is_null(), "{m}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = c
            .call("send.getManifest", json!({ "manifestId": id }))
            .unwrap();
        let counted = m["totalFiles"].is_u64() && m["totalSize"].is_u64();
        match m["status"].as_str().unwrap() {
            "complete" => {
                assert!(counted, "a complete manifest gives its totals: {m}");
                return Ok(id);
            }
            "error" => {
                assert!(m["totalFiles"].is_null(), "{m}");
                return Err(m["errorMessage"].as_str().unwrap_or("").to_owned());
            }
            _ => assert!(m["totalFiles"].is_null(), "{m}"),
        }
        assert!(Instant::now() < deadline, "manifest stuck: {m}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates a transfer; returns its id.
pub fn transfer(c: &mut ApiClient, dest: &str, manifest: &str, path: Option<&str>) -> String {
    let t = c
        .call(
            "send.createTransfer",
            json!({"destinationId": dest, "manifestId": manifest, "destinationPath": path}),
        )
        .expect("createTransfer");
    t["transferId"].as_str().unwrap().to_owned()
}

/// Polls until the transfer has ended; returns its final view.
pub fn wait_end(c: &mut ApiClient, id: &str, timeout: Duration) -> Value {
    wait_until(c, id, timeout, |t| {
        matches!(
            t["status"].as_str(),
            Some("complete" | "error" | "cancelled")
        )
    })
}

/// Polls a transfer until `done` holds.
pub fn wait_until(
    c: &mut ApiClient,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let t = c
            .call("send.getTransfer", json!({ "transferId": id }))
            .expect("getTransfer");
        if done(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "transfer did not get there in time: {t}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Random bytes (seeded, incompressible enough).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a world-readable file (creating parents).
pub fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// Runs `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// A network namespace made for one test, with the address [`Netns::ADDR`] on a veth pair
/// (a non-loopback address on this host's side of nothing: traffic stays in the namespace).
/// Deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub const ADDR: &'static str = "10.77.0.1";

    pub fn new() -> Self {
        let ns = Self::bare(&format!(
            "jst{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let n = ns.name.as_str();
        ip(&[
            "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/24", Self::ADDR),
            "dev",
            "v0",
        ]);
        ip(&["-n", n, "link", "set", "v0", "up"]);
        ip(&["-n", n, "link", "set", "v1", "up"]);
        ns
    }

    /// An empty namespace called `name` with its loopback up.
    pub fn bare(name: &str) -> Self {
        ip(&["netns", "add", name]);
        let ns = Self {
            name: name.to_owned(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// Joins this namespace (interface `here`, address `here_ip`) to `other` (`there`,
    /// `there_ip`) with a veth pair on a /24.
    pub fn join(&self, here: &str, here_ip: &str, other: &Self, there: &str, there_ip: &str) {
        ip(&[
            "link",
            "add",
            here,
            "netns",
            &self.name,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            &other.name,
        ]);
        for (ns, link, addr) in [(self, here, here_ip), (other, there, there_ip)] {
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                link,
            ]);
            ip(&["-n", &ns.name, "link", "set", link, "up"]);
        }
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The usual cast: a user, a scratch directory, a sending server `a` and a receiving server
/// `b` sandboxed at `<dir>/storage` (or `<dir>/storage/%u`).
pub struct Pair {
    pub user: TestUser,
    pub pw: String,
    pub dir: tempfile::TempDir,
    pub a: Srv,
    pub b: Srv,
    pub storage: PathBuf,
}

impl Pair {
    pub fn new(per_user: bool) -> Self {
        let (user, pw) = user();
        let dir = scratch();
        let storage = dir.path().join("storage");
        let a = Srv::start(dir.path(), "a", &[]);
        let mut sandbox = storage.display().to_string();
        if per_user {
            sandbox.push_str("/%u");
        } else {
            // The user's sandbox, made now (as the server would at the first transfer) so
            // that tests can mount things below it: the server writes there with the user's
            // rights only.
            fs::create_dir(&storage).expect("mkdir storage");
            std::os::unix::fs::chown(&storage, Some(user.uid()), Some(user.gid()))
                .expect("chown storage");
        }
        let b = Srv::start(dir.path(), "b", &["--sandbox-dir", &sandbox]);
        Self {
            user,
            pw,
            dir,
            a,
            b,
            storage,
        }
    }
}

/// Waits until `path` exists and `done` holds for its text.
pub fn wait_file(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = fs::read_to_string(path) {
            if done(&t) {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never got there",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
