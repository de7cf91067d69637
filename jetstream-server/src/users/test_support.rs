//! Helpers for tests that need real system users (root only): create and remove users and
//! groups, install the PAM service file. Used by the unit tests and by `tests/`.
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::users::{lookup, PAM_DIR, PAM_SERVICE};

/// Serialises user database changes within this process (useradd and friends lock the
/// files and fail rather than wait).
static USERDB: Mutex<()> = Mutex::new(());

/// Whether the process runs as root (and so can create users).
pub fn is_root() -> bool {
    crate::server::sys::euid() == 0
}

/// The environment variable that makes every root test run: `.ci/run` sets it to `1` for
/// `scripts/test.sh`, which then refuses to run as another user, and [`skip`] fails.
pub const REQUIRE_ROOT_TESTS: &str = "JETSTREAM_REQUIRE_ROOT_TESTS";

/// Whether [`REQUIRE_ROOT_TESTS`] is set (to anything but empty or `0`).
pub fn root_tests_required() -> bool {
    std::env::var(REQUIRE_ROOT_TESTS).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The guard at the top of a test that needs root (`why`: what for). Such a test is marked
/// `#[ignore = "needs root: <why>"]`, so that a run as another user lists it as ignored, and
/// `scripts/test.sh` runs it as root (`--ignored`).
///
/// # Panics
///
/// - not root: the test was asked for (`--ignored`, `--include-ignored`) where it cannot run;
/// - root, but the test binary was not run with `--ignored` or `--include-ignored`: then the
///   test ran although it was not ignored, i.e. it lacks the `#[ignore = "needs root: ..."]`
///   mark, and would pass unseen (skip) or fail as another user.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test needs root ({why}): run it as root, as scripts/test.sh does"
    );
    let asked = std::env::args().any(|a| a == "--ignored" || a == "--include-ignored");
    assert!(
        asked,
        "this test needs root ({why}) but is not marked #[ignore = \"needs root: {why}\"]: mark \
         it, so that a run as another user lists it as ignored (scripts/test.sh runs it as root)"
    );
}

/// A root test that cannot do something root can do on most machines (mount a tmpfs in an
/// unprivileged container, say): says why it skips, so the caller returns, or with
/// [`REQUIRE_ROOT_TESTS`] set (CI) fails the test instead.
///
/// # Panics
///
/// When [`root_tests_required`].
pub fn skip(why: &str) {
    assert!(
        !root_tests_required(),
        "{why} ({REQUIRE_ROOT_TESTS} is set: root tests must run, not skip)"
    );
    eprintln!("skipped: {why}");
}

/// Installs `packaging/pam.d/jetstream` as `/etc/pam.d/jetstream` unless that exists.
///
/// # Errors
///
/// Reading the packaged file or writing `/etc/pam.d` failed.
pub fn ensure_pam_service() -> io::Result<()> {
    let target = Path::new(PAM_DIR).join(PAM_SERVICE);
    if target.exists() {
        return Ok(());
    }
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/pam.d/jetstream");
    let text = std::fs::read(source)?;
    // Write then rename, so that a concurrent test never sees a half-written file.
    let tmp = Path::new(PAM_DIR).join(format!(".{PAM_SERVICE}.{}.tmp", random_hex()?));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// 8 random hex digits.
fn random_hex() -> io::Result<String> {
    Ok(crate::server::objects::new_id()[..8].to_owned())
}

/// Runs a user-administration command, retrying a few times (another process may hold
/// the lock on /etc/passwd).
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<()> {
    let _guard = USERDB.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for attempt in 0..5u64 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
        }
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    }
    Err(io::Error::other(format!(
        "{program} {args:?} failed: {last}"
    )))
}

/// A system user `jstest_<random hex>` (no home, shell nologin), deleted when dropped.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    /// Creates the user with `password`, or with an empty password (`passwd -d`: an
    /// account without a password) for `None`.
    ///
    /// # Errors
    ///
    /// Not root, or useradd / chpasswd / passwd failed.
    pub fn create(password: Option<&str>) -> io::Result<Self> {
        let name = format!("jstest_{}", random_hex()?);
        run("useradd", &["-M", "-s", "/usr/sbin/nologin", &name], None)?;
        // From here on the guard deletes the user, whatever fails next.
        let mut user = Self {
            name,
            uid: u32::MAX,
            gid: u32::MAX,
        };
        let found =
            lookup(&user.name)?.ok_or_else(|| io::Error::other("user created but not found"))?;
        user.uid = found.uid;
        user.gid = found.gid;
        match password {
            Some(pw) => {
                if pw.contains(['\n', '\0']) {
                    return Err(io::Error::other("password with newline or NUL"));
                }
                run("chpasswd", &[], Some(&format!("{}:{pw}\n", user.name)))?;
            }
            None => run("passwd", &["-d", &user.name], None)?,
        }
        Ok(user)
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The primary group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if let Err(e) = run("userdel", &[&self.name], None) {
            eprintln!("test user {}: {e}", self.name);
        }
    }
}

/// A system group `jstestg_<random hex>`, deleted when dropped.
#[derive(Debug)]
pub struct TestGroup {
    name: String,
}

impl TestGroup {
    /// Creates the group.
    ///
    /// # Errors
    ///
    /// Not root, or groupadd failed.
    pub fn create() -> io::Result<Self> {
        let name = format!("jstestg_{}", random_hex()?);
        run("groupadd", &[&name], None)?;
        Ok(Self { name })
    }

    /// Adds `user` to the group (as a supplementary group).
    ///
    /// # Errors
    ///
    /// gpasswd failed.
    pub fn add(&self, user: &TestUser) -> io::Result<()> {
        run("gpasswd", &["-a", user.name(), &self.name], None)
    }

    /// The group name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        if let Err(e) = run("groupdel", &[&self.name], None) {
            eprintln!("test group {}: {e}", self.name);
        }
    }
}
