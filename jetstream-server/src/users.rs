//! System users: looking them up, deciding who is a superuser, and logging them in through PAM
//! with per-source and per-user throttling of failed attempts.
//!
//! Rules (reference §6.1, §6.2):
//! - logins are checked by PAM with the service [`PAM_SERVICE`] (`/etc/pam.d/jetstream`);
//!   accounts without a password cannot log in;
//! - a server not running as root can only log in the account it runs as;
//! - failed attempts are throttled per (user, source), per source and per user, so that a
//!   stranger guessing a user's password from one address cannot lock that user out of the
//!   others (see [`Authenticator::login`]);
//! - superusers are root, the account running the server, the users named by `--superuser`
//!   and the members of the `--supergroup` groups (default `sudo`, `wheel`, `admin`).
#![allow(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::pam;

/// The PAM service the server authenticates with.
pub const PAM_SERVICE: &str = "jetstream";

/// Where the PAM service file must be installed.
pub(crate) const PAM_DIR: &str = "/etc/pam.d";

/// Whether `/etc/pam.d/jetstream` exists (without it, PAM would silently fall back to the
/// `other` service).
pub fn pam_service_installed() -> bool {
    Path::new(PAM_DIR).join(PAM_SERVICE).exists()
}

/// A user account from the system's user database (passwd / NSS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// All group ids the user belongs to (primary and supplementary).
    pub groups: Vec<u32>,
}

/// Largest buffer offered to the `get*_r` functions before giving up.
const MAX_BUF: usize = 16 << 20;
/// Most groups we ask `getgrouplist` for (Linux's NGROUPS_MAX is 65536).
const MAX_GROUPS: usize = 1 << 17;

/// The process's effective user id.
fn euid() -> u32 {
    crate::server::sys::euid()
}

/// Whether a `get*_r` error code means "no such entry" (see getpwnam_r(3)).
fn is_not_found(rc: c_int) -> bool {
    matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM)
}

/// The next buffer size after ERANGE, or an error once it would pass `MAX_BUF`.
fn grow(buf: &mut Vec<c_char>) -> io::Result<()> {
    let len = buf.len() * 2;
    if len > MAX_BUF {
        return Err(io::Error::other("user database entry too large"));
    }
    buf.resize(len, 0);
    Ok(())
}

/// Which passwd entry to read.
#[derive(Clone, Copy)]
enum PwKey<'a> {
    Name(&'a CStr),
    Uid(u32),
}

fn getpw(key: PwKey<'_>) -> io::Result<Option<SystemUser>> {
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        // SAFETY: `passwd` is a plain C struct of integers and pointers; all-zero is valid.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = ptr::null_mut();
        // SAFETY: all pointers are valid for the call; `buf.len()` is the buffer's real size.
        let rc = unsafe {
            match key {
                PwKey::Name(name) => libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                ),
                PwKey::Uid(uid) => {
                    libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
                }
            }
        };
        if rc == libc::ERANGE {
            grow(&mut buf)?;
            continue;
        }
        if rc != 0 {
            return if is_not_found(rc) {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(rc))
            };
        }
        if result.is_null() || pwd.pw_name.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the string fields point into `buf`, NUL-terminated (pw_dir may be
        // null on exotic NSS modules: checked).
        let c_name = unsafe { CStr::from_ptr(pwd.pw_name) };
        let home = if pwd.pw_dir.is_null() {
            PathBuf::from("/")
        } else {
            // SAFETY: as above.
            let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
            PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
        };
        let groups = group_list(c_name, pwd.pw_gid)?;
        return Ok(Some(SystemUser {
            name: c_name.to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
            groups,
        }));
    }
}

/// All groups of `name` (whose primary group is `gid`), via getgrouplist(3).
fn group_list(name: &CStr, gid: u32) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        // Lossless: groups.len() <= MAX_GROUPS < i32::MAX.
        let mut n = groups.len() as c_int;
        // SAFETY: `groups` has room for `n` gids; `name` is NUL-terminated.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(usize::try_from(n).unwrap_or(0).min(groups.len()));
            return Ok(groups);
        }
        // glibc reports the number needed in `n`; other libcs may not, so at least double.
        let want = usize::try_from(n).unwrap_or(0).max(groups.len() * 2);
        if want > MAX_GROUPS {
            return Err(io::Error::other("user belongs to too many groups"));
        }
        groups.resize(want, 0);
    }
}

/// Looks a user up by login name.
///
/// # Errors
///
/// An I/O error from the user database (not "not found", which is `Ok(None)`; so is a name
/// with a NUL byte).
pub fn lookup(name: &str) -> io::Result<Option<SystemUser>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    getpw(PwKey::Name(&c_name))
}

/// Looks a user up by uid.
///
/// # Errors
///
/// An I/O error from the user database.
pub fn by_uid(uid: u32) -> io::Result<Option<SystemUser>> {
    getpw(PwKey::Uid(uid))
}

/// The account the process runs as (its effective uid).
///
/// # Errors
///
/// An I/O error from the user database, or `NotFound` when the uid has no entry (as in some
/// containers).
pub fn current() -> io::Result<SystemUser> {
    let uid = euid();
    by_uid(uid)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user database entry for uid {uid}"),
        )
    })
}

/// The gid of the group called `name`, if it exists.
///
/// # Errors
///
/// An I/O error from the group database.
pub fn group_gid(name: &str) -> io::Result<Option<u32>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        // SAFETY: `group` is a plain C struct; all-zero is valid.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = ptr::null_mut();
        // SAFETY: all pointers valid for the call; `buf.len()` is the buffer's real size.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE {
            grow(&mut buf)?;
            continue;
        }
        if rc != 0 {
            return if is_not_found(rc) {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(rc))
            };
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

/// Groups whose members are superusers when no `--supergroup` is given (those that exist).
pub const DEFAULT_SUPERGROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// Who is a superuser: root, the account running the server, the users named by
/// `--superuser` and the members of the `--supergroup` groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperuserPolicy {
    users: Vec<String>,
    groups: Vec<String>,
}

impl SuperuserPolicy {
    /// A policy from the `--superuser` and `--supergroup` values. With no groups, the
    /// defaults [`DEFAULT_SUPERGROUPS`] that exist on this system are used.
    pub fn new(users: Vec<String>, groups: Vec<String>) -> Self {
        let groups = if groups.is_empty() {
            DEFAULT_SUPERGROUPS
                .iter()
                .filter(|g| matches!(group_gid(g), Ok(Some(_))))
                .map(|g| (*g).to_owned())
                .collect()
        } else {
            groups
        };
        Self { users, groups }
    }

    /// The users named as superusers.
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// The groups whose members are superusers (after applying the defaults).
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Whether `u` is a superuser. Groups are resolved now, so groups created after start-up
    /// count; a group that cannot be resolved counts for nobody.
    pub fn is_superuser(&self, u: &SystemUser) -> bool {
        if u.uid == 0 || u.uid == euid() || self.users.contains(&u.name) {
            return true;
        }
        self.groups.iter().any(|g| match group_gid(g) {
            Ok(Some(gid)) => u.gid == gid || u.groups.contains(&gid),
            _ => false,
        })
    }
}

/// Why a login was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong user name or password (never says which), or an unusable account.
    Failed,
    /// PAM or the user database failed; the text is for the administrator.
    Internal(String),
    /// The server does not run as root, so only `running_user` can log in.
    NotPermitted {
        /// The account the server runs as.
        running_user: String,
    },
    /// Too many recent failures from this source or for this user.
    Throttled {
        /// When a new attempt will be considered.
        retry_after: Duration,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed => f.write_str("authentication failed: wrong user name or password"),
            Self::Internal(msg) => write!(f, "authentication error: {msg}"),
            Self::NotPermitted { running_user } => write!(
                f,
                "only {running_user} can log in: this server does not run as root"
            ),
            Self::Throttled { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                write!(f, "too many failed logins: try again in {secs} s")
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one user name from one source allowed before that pair is refused.
const PAIR_FREE: usize = 4;
/// Failures from one source (any user names) allowed before the source is refused: more than
/// [`PAIR_FREE`], so that several people behind one NAT can each mistype, but few enough
/// that a source trying many names is soon slowed down.
const SOURCE_FREE: usize = 20;
/// Failures of one user name (all sources) past which the name is "under attack": then a
/// source that has failed for it at least once in the window is refused for
/// [`MAX_BACKOFF`] after each failure, while a source that has not (the real user at home)
/// is not affected. One source cannot get there alone: its own pair limit stops it near 15
/// failures per window.
const USER_FREE: usize = 100;
/// Longest refusal after the last failure.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Failures kept per key of the pair and source tables: beyond it the backoff is at its
/// maximum anyway.
const MAX_TRACKED: usize = 32;
/// The user-name key of token logins in the pair table (NUL cannot be in a user name).
const TOKEN_KEY: &str = "\0token";
/// Keys per table before old ones are pruned (memory bound against address sprays).
const MAX_KEYS: usize = 10_000;
/// Longest user name passed to PAM; longer ones fail (and are tracked truncated).
const MAX_USER_LEN: usize = 256;

/// How long attempts are refused after the `n`-th failure in the window, when `free`
/// failures are allowed.
fn backoff(n: usize, free: usize) -> Duration {
    match n.checked_sub(free + 1) {
        None => Duration::ZERO,
        Some(exp) if exp >= 9 => MAX_BACKOFF,
        Some(exp) => Duration::from_secs(1 << exp).min(MAX_BACKOFF),
    }
}

/// Recent failure times of one key, oldest first.
#[derive(Debug, Default)]
struct Failures(VecDeque<Instant>);

impl Failures {
    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.0.front() {
            if now.saturating_duration_since(t) < WINDOW {
                break;
            }
            self.0.pop_front();
        }
    }

    /// Until when attempts are refused, if they are, with `free` failures allowed.
    fn blocked_until(&self, free: usize) -> Option<Instant> {
        let last = *self.0.back()?;
        (self.0.len() > free).then(|| last + backoff(self.0.len(), free))
    }
}

/// Failures per key (source address, user name, or both), bounded to about `MAX_KEYS` keys.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Failures>,
    /// Failures allowed per key before it is refused.
    free: usize,
    /// Failures remembered per key.
    tracked: usize,
}

impl<K: Hash + Eq> Table<K> {
    fn new(free: usize, tracked: usize) -> Self {
        Self {
            map: HashMap::new(),
            free,
            tracked,
        }
    }

    /// The failures of `key` still in the window at `now` (forgetting older ones).
    fn recent(&mut self, now: Instant, key: &K) -> Option<&Failures> {
        let f = self.map.get_mut(key)?;
        f.prune(now);
        if f.0.is_empty() {
            self.map.remove(key);
            return None;
        }
        self.map.get(key)
    }

    /// How long `key` must still wait at `now`, if it is throttled.
    fn check(&mut self, now: Instant, key: &K) -> Option<Duration> {
        let free = self.free;
        let until = self.recent(now, key)?.blocked_until(free)?;
        (until > now).then(|| until - now)
    }

    /// How many failures `key` has in the window.
    fn count(&mut self, now: Instant, key: &K) -> usize {
        self.recent(now, key).map_or(0, |f| f.0.len())
    }

    /// The last failure of `key` in the window.
    fn last(&mut self, now: Instant, key: &K) -> Option<Instant> {
        self.recent(now, key)?.0.back().copied()
    }

    fn record(&mut self, now: Instant, key: K) {
        let tracked = self.tracked;
        let f = self.map.entry(key).or_default();
        f.prune(now);
        f.0.push_back(now);
        if f.0.len() > tracked {
            f.0.pop_front();
        }
        if self.map.len() > MAX_KEYS {
            self.shrink(now);
        }
    }

    fn reset(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Drops expired keys; if a spray of fresh keys still overflows the table, keeps only the
    /// three quarters most recently failed (O(n log n), then no work for MAX_KEYS / 4 inserts).
    fn shrink(&mut self, now: Instant) {
        self.map.retain(|_, f| {
            f.prune(now);
            !f.0.is_empty()
        });
        if self.map.len() <= MAX_KEYS {
            return;
        }
        let mut lasts: Vec<Instant> = self
            .map
            .values()
            .filter_map(|f| f.0.back().copied())
            .collect();
        lasts.sort_unstable();
        let keep = MAX_KEYS * 3 / 4;
        let cutoff = lasts[lasts.len() - keep];
        self.map
            .retain(|_, f| f.0.back().is_some_and(|&t| t >= cutoff));
    }
}

/// Failure tables by (user, source), by source and by user.
#[derive(Debug)]
struct Throttle {
    by_pair: Table<(String, IpAddr)>,
    by_source: Table<IpAddr>,
    by_user: Table<String>,
}

impl Throttle {
    fn new() -> Self {
        Self {
            by_pair: Table::new(PAIR_FREE, MAX_TRACKED),
            by_source: Table::new(SOURCE_FREE, MAX_TRACKED),
            by_user: Table::new(USER_FREE, USER_FREE + 1),
        }
    }

    /// How long an attempt for `user` (the cut name, or [`TOKEN_KEY`]) from `src` (a
    /// [`source_key`]) must still wait, if it must.
    fn check(&mut self, now: Instant, user: &str, src: IpAddr) -> Option<Duration> {
        let pair = (user.to_owned(), src);
        let mut waits = vec![
            self.by_pair.check(now, &pair),
            self.by_source.check(now, &src),
        ];
        if self.by_user.count(now, &user.to_owned()) > self.by_user.free {
            // Under attack: a source that failed for this name waits the longest back-off.
            waits.push(
                self.by_pair
                    .last(now, &pair)
                    .map(|last| last + MAX_BACKOFF)
                    .filter(|&until| until > now)
                    .map(|until| until - now),
            );
        }
        waits.into_iter().flatten().max()
    }

    fn record(&mut self, now: Instant, user: &str, src: IpAddr) {
        self.by_pair.record(now, (user.to_owned(), src));
        self.by_source.record(now, src);
        if user != TOKEN_KEY {
            self.by_user.record(now, user.to_owned());
        }
    }

    /// Sources that would be refused at `now`, alone or for some user name (distinct
    /// sources).
    fn throttled_sources(&mut self, now: Instant) -> usize {
        let mut out = std::collections::HashSet::new();
        let sources: Vec<IpAddr> = self.by_source.map.keys().copied().collect();
        for src in sources {
            if self.by_source.check(now, &src).is_some() {
                out.insert(src);
            }
        }
        let pairs: Vec<(String, IpAddr)> = self.by_pair.map.keys().cloned().collect();
        for pair in pairs {
            if !out.contains(&pair.1) && self.by_pair.check(now, &pair).is_some() {
                out.insert(pair.1);
            }
        }
        out.len()
    }

    /// After a successful login: only that pair is forgotten (a success of one account must
    /// not wipe a source's failures for others, which an attacker with an account could use).
    fn succeeded(&mut self, user: &str, src: IpAddr) {
        self.by_pair.reset(&(user.to_owned(), src));
    }
}

/// The key a source is counted by (the login throttle, the API connection cap): IPv4 and
/// IPv4-mapped addresses by address, IPv6 by /64 (one host usually owns a whole /64, so
/// counting its addresses one by one would count nothing).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// `s` cut to at most `max` bytes (at a char boundary).
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The signature of the password check (PAM in production, a fake in tests).
type VerifyFn = fn(&str, &str, &str) -> Result<(), pam::PamError>;

/// Logs users in: throttling, the root / running-user rule, PAM, then the user database.
/// Shared by all API connection threads (`Send + Sync`).
pub struct Authenticator {
    service: String,
    is_root: bool,
    running_user: String,
    failure_delay: Duration,
    check_service_file: bool,
    verify: VerifyFn,
    throttle: Mutex<Throttle>,
    /// One login at a time per user name, so that concurrent attempts are counted one after
    /// the other (and a burst of good logins, e.g. a server starting 20 transfers, is not
    /// mistaken for guessing).
    per_user: Mutex<std::collections::HashMap<String, std::sync::Arc<Mutex<()>>>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("service", &self.service)
            .field("is_root", &self.is_root)
            .field("running_user", &self.running_user)
            .field("failure_delay", &self.failure_delay)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for the PAM `service` (normally [`PAM_SERVICE`]); records whether the
    /// process runs as root and as whom, and loads the PAM library (logging why not where it
    /// is missing: password logins then fail with [`AuthError::Internal`]).
    ///
    /// # Errors
    ///
    /// The running account cannot be looked up (see [`current`]).
    pub fn new(service: &str) -> io::Result<Self> {
        let me = current()?;
        if let Some(why) = pam::library_error() {
            // Not fatal: token logins (the local token among them) do not need PAM.
            crate::error!("auth: {why}; password logins fail until it is installed");
        }
        Ok(Self {
            service: service.to_owned(),
            is_root: euid() == 0,
            running_user: me.name,
            failure_delay: Duration::from_secs(1),
            check_service_file: true,
            verify: pam::authenticate,
            throttle: Mutex::new(Throttle::new()),
            per_user: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The PAM service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether the server runs as root (and so can log in any user).
    pub fn is_root(&self) -> bool {
        self.is_root
    }

    /// The account the server runs as.
    pub fn running_user(&self) -> &str {
        &self.running_user
    }

    /// Sets how long a failed [`login`](Self::login) waits before returning (default 1 s).
    #[doc(hidden)]
    pub fn set_failure_delay(&mut self, d: Duration) {
        self.failure_delay = d;
    }

    /// How many sources (IPv4 addresses, IPv6 /64s) are throttled now, for some user name or
    /// for all (the metric `jetstream_api_throttled_sources`). Walks the failure tables
    /// (at most 10,000 keys each).
    pub fn throttled_sources(&self) -> usize {
        self.throttle.lock().throttled_sources(Instant::now())
    }

    /// Refuses a token login from `source` while token logins from it, or the source as a
    /// whole, are throttled (token guesses count like password guesses of one more user name:
    /// 5 free per source, and towards the source's limit).
    ///
    /// # Errors
    /// [`AuthError::Throttled`].
    pub fn check_source(&self, source: IpAddr) -> Result<(), AuthError> {
        let src = source_key(source);
        match self.throttle.lock().check(Instant::now(), TOKEN_KEY, src) {
            Some(retry_after) => Err(AuthError::Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed token login from `source`, logs it, and waits the failure delay.
    pub fn token_failed(&self, source: IpAddr) {
        self.throttle
            .lock()
            .record(Instant::now(), TOKEN_KEY, source_key(source));
        log_failure("(API or shared token)", source);
        if !self.failure_delay.is_zero() {
            std::thread::sleep(self.failure_delay);
        }
    }

    /// Checks `user` / `password` for a client at `source`.
    ///
    /// Blocks while PAM works, and for the failure delay (1 s) after a failed attempt.
    ///
    /// Throttling (failures within 15 minutes; a source is an IPv4 address or an IPv6 /64):
    /// - per (user, source): from the 5th failure, refused until `min(2^(failures - 5), 300)`
    ///   s after the last one;
    /// - per source, all user names together: the same from the 21st failure;
    /// - per user, all sources together: past 100 failures, a source that failed for this
    ///   user at least once in the window is refused for 300 s after each of its failures; a
    ///   source that did not (the real user elsewhere) logs in as usual.
    ///
    /// A success forgets the failures of that (user, source) pair only.
    ///
    /// # Errors
    ///
    /// - [`AuthError::Throttled`]: refused by one of the limits above, without asking PAM;
    /// - [`AuthError::Failed`]: empty or wrong password, unknown user or unusable account
    ///   (counted as a failure and logged to stderr);
    /// - [`AuthError::NotPermitted`]: not running as root and `user` is not the running user;
    /// - [`AuthError::Internal`]: PAM misconfigured (e.g. the service file is missing) or the
    ///   user database failed.
    pub fn login(
        &self,
        user: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<SystemUser, AuthError> {
        let key = cut(user, MAX_USER_LEN).to_owned();
        let slot = self.per_user.lock().entry(key.clone()).or_default().clone();
        let result = {
            let _one_at_a_time = slot.lock();
            self.login_at(user, password, source, Instant::now())
        };
        {
            let mut map = self.per_user.lock();
            // Ours and the map's: nobody else waits for this user.
            if std::sync::Arc::strong_count(&slot) == 2 {
                map.remove(&key);
            }
        }
        // The failure is already counted: wait outside the user's slot, so that a stranger's
        // failures do not hold up the real user's login from elsewhere.
        if result == Err(AuthError::Failed) && !self.failure_delay.is_zero() {
            std::thread::sleep(self.failure_delay);
        }
        result
    }

    /// [`login`](Self::login) at the time `now`, without the failure delay.
    pub(crate) fn login_at(
        &self,
        user: &str,
        password: &str,
        source: IpAddr,
        now: Instant,
    ) -> Result<SystemUser, AuthError> {
        let src = source_key(source);
        let user_key = cut(user, MAX_USER_LEN).to_owned();
        {
            let mut t = self.throttle.lock();
            if let Some(retry_after) = t.check(now, &user_key, src) {
                return Err(AuthError::Throttled { retry_after });
            }
            if password.is_empty() || user.len() > MAX_USER_LEN {
                t.record(now, &user_key, src);
                drop(t);
                log_failure(user, source);
                return Err(AuthError::Failed);
            }
            if !self.is_root && user != self.running_user {
                return Err(AuthError::NotPermitted {
                    running_user: self.running_user.clone(),
                });
            }
            if self.check_service_file && !Path::new(PAM_DIR).join(&self.service).exists() {
                return Err(AuthError::Internal(format!(
                    "PAM service {PAM_DIR}/{} is missing; install packaging/pam.d/jetstream",
                    self.service
                )));
            }
        }
        match (self.verify)(&self.service, user, password) {
            Ok(()) => match lookup(user) {
                Ok(Some(u)) => {
                    self.throttle.lock().succeeded(&user_key, src);
                    Ok(u)
                }
                Ok(None) => Err(AuthError::Internal(format!(
                    "user {user:?} passed PAM but is not in the user database"
                ))),
                Err(e) => Err(AuthError::Internal(format!(
                    "looking up user {user:?}: {e}"
                ))),
            },
            Err(e) if e.is_auth_failure() => {
                self.throttle.lock().record(now, &user_key, src);
                log_failure(user, source);
                Err(AuthError::Failed)
            }
            Err(e) => Err(AuthError::Internal(format!("PAM: {e}"))),
        }
    }
}

/// Logs a failed attempt (the server's logger captures stderr); long names are cut so that a
/// client cannot flood the log.
fn log_failure(user: &str, source: IpAddr) {
    let user = cut(user, 64);
    crate::warn!("auth: failed login for {user:?} from {source}");
}

/// Test fixtures (throwaway system users and groups, the PAM service file); they live in
/// [`crate::pam`] and are re-exported here.
#[doc(hidden)]
pub use crate::pam::test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{is_root, TestGroup, TestUser};
    use super::*;
    use std::net::Ipv4Addr;

    /// A PAM stand-in: "right" is the password of every user; "" must never reach it.
    fn fake_verify(_service: &str, _user: &str, password: &str) -> Result<(), pam::PamError> {
        assert!(!password.is_empty(), "empty passwords must not reach PAM");
        match password {
            "right" => Ok(()),
            "broken" => Err(pam::PamError {
                code: 4,
                message: "System error".into(),
            }),
            _ => Err(pam::PamError {
                code: 7,
                message: "Authentication failure".into(),
            }),
        }
    }

    fn fake_auth() -> Authenticator {
        let mut a = Authenticator::new(PAM_SERVICE).unwrap();
        a.verify = fake_verify;
        a.check_service_file = false;
        a.is_root = true;
        a.set_failure_delay(Duration::ZERO);
        a
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn throttled(secs: u64) -> Result<SystemUser, AuthError> {
        Err(AuthError::Throttled {
            retry_after: Duration::from_secs(secs),
        })
    }

    /// What `jetstream_api_throttled_sources` shows: each throttled source once.
    #[test]
    fn throttled_sources_are_counted_once_each() {
        let a = fake_auth();
        let t0 = Instant::now();
        assert_eq!(a.throttle.lock().throttled_sources(t0), 0);
        for _ in 0..5 {
            let _ = a.login_at("root", "wrong", ip(1), t0);
        }
        // ip(2) is throttled for two names: still one source.
        for user in ["root", "other"] {
            for _ in 0..5 {
                let _ = a.login_at(user, "wrong", ip(2), t0);
            }
        }
        // ip(3) failed, but not enough to be throttled.
        let _ = a.login_at("root", "wrong", ip(3), t0);
        assert_eq!(a.throttle.lock().throttled_sources(t0), 2);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(a.throttle.lock().throttled_sources(later), 0);
    }

    #[test]
    fn fifth_failure_throttles_with_growing_backoff_that_expires() {
        let a = fake_auth();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(
                a.login_at("root", "wrong", ip(1), t0),
                Err(AuthError::Failed)
            );
        }
        // The 5th attempt still reaches PAM; after it fails, attempts wait 2^0 s.
        assert_eq!(
            a.login_at("root", "wrong", ip(1), t0),
            Err(AuthError::Failed)
        );
        assert_eq!(a.login_at("root", "right", ip(1), t0), throttled(1));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            a.login_at("root", "wrong", ip(1), t1),
            Err(AuthError::Failed)
        );
        assert_eq!(a.login_at("root", "wrong", ip(1), t1), throttled(2));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            a.login_at("root", "wrong", ip(1), t2),
            Err(AuthError::Failed)
        );
        assert_eq!(a.login_at("root", "", ip(1), t2), throttled(4));
        // Doubling up to the 300 s cap.
        let (mut t, mut wait) = (t2, 4);
        for next in [8, 16, 32, 64, 128, 256, 300, 300] {
            t += Duration::from_secs(wait);
            assert_eq!(
                a.login_at("root", "wrong", ip(1), t),
                Err(AuthError::Failed)
            );
            assert_eq!(a.login_at("root", "right", ip(1), t), throttled(next));
            wait = next;
        }
        // 15 minutes after the last failure, everything is forgotten.
        let later = t + WINDOW;
        let ok = a.login_at("root", "right", ip(1), later).unwrap();
        assert_eq!(ok.uid, 0);
    }

    #[test]
    fn success_resets_failures() {
        let a = fake_auth();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(
                a.login_at("root", "wrong", ip(2), t0),
                Err(AuthError::Failed)
            );
        }
        assert_eq!(a.login_at("root", "right", ip(2), t0).unwrap().name, "root");
        for _ in 0..4 {
            assert_eq!(
                a.login_at("root", "wrong", ip(2), t0),
                Err(AuthError::Failed)
            );
        }
        assert_eq!(a.login_at("root", "right", ip(2), t0).unwrap().name, "root");
    }

    /// Regression (issue 15, item 12): five wrong passwords for a user from anywhere locked
    /// that user out everywhere, so a stranger could lock out any account. Now the pair
    /// (user, source) is throttled, the real user elsewhere is not.
    #[test]
    fn regression_guessing_from_one_source_does_not_lock_out_the_user_elsewhere() {
        let a = fake_auth();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(
                a.login_at("root", "wrong", ip(10), t0),
                Err(AuthError::Failed)
            );
        }
        assert_eq!(a.login_at("root", "right", ip(10), t0), throttled(1));
        assert_eq!(a.login_at("root", "right", ip(99), t0).unwrap().uid, 0);
        // One wrong guess from each of six sources does not lock the name either.
        for i in 0..6 {
            assert_eq!(
                a.login_at("root", "wrong", ip(20 + i), t0),
                Err(AuthError::Failed)
            );
        }
        assert_eq!(a.login_at("root", "right", ip(98), t0).unwrap().uid, 0);
        // The attacker's source stays throttled for that name.
        assert_eq!(a.login_at("root", "right", ip(10), t0), throttled(1));
    }

    #[test]
    fn source_throttle_trips_across_user_names_from_the_21st_failure() {
        let a = fake_auth();
        let t0 = Instant::now();
        for i in 0..SOURCE_FREE + 1 {
            assert_eq!(
                a.login_at(&format!("nobody{i}"), "wrong", ip(50), t0),
                Err(AuthError::Failed)
            );
        }
        assert_eq!(a.login_at("someone", "x", ip(50), t0), throttled(1));
        // A success of one account does not wipe the source's failures for the others.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            a.login_at("nobody0", "wrong", ip(50), t1),
            Err(AuthError::Failed)
        );
        assert_eq!(a.login_at("root", "right", ip(50), t1), throttled(2));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(a.login_at("root", "right", ip(50), t2).unwrap().uid, 0);
        assert_eq!(
            a.login_at("nobody1", "wrong", ip(50), t2),
            Err(AuthError::Failed)
        );
        // The 23rd failure: 4 s (a reset would have made it the first, with no wait).
        assert_eq!(a.login_at("other", "x", ip(50), t2), throttled(4));
        // An IPv6 host is one /64; IPv4-mapped addresses count as IPv4.
        for i in 0..=SOURCE_FREE as u16 {
            let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
            assert_eq!(
                a.login_at(&format!("u{i}"), "w", v6, t0),
                Err(AuthError::Failed)
            );
        }
        let same64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
        assert_eq!(a.login_at("v", "w", same64, t0), throttled(1));
        // ip(50), still throttled at t2.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 50).to_ipv6_mapped());
        assert_eq!(a.login_at("w", "w", mapped, t2), throttled(4));
    }

    /// A distributed guess at one name (more than 100 failures in the window): each source
    /// that failed for it is held back for 300 s, a source that never failed still logs in.
    #[test]
    fn a_user_under_attack_slows_the_guessing_sources_only() {
        let a = fake_auth();
        let t0 = Instant::now();
        let src = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..=USER_FREE as u32 {
            assert_eq!(
                a.login_at("root", "wrong", src(i), t0),
                Err(AuthError::Failed)
            );
        }
        // Source 0 failed once: below its own pair limit, but the name is under attack.
        assert_eq!(a.login_at("root", "right", src(0), t0), throttled(300));
        assert_eq!(
            a.login_at(
                "root",
                "right",
                src(0),
                t0 + MAX_BACKOFF - Duration::from_secs(1)
            ),
            throttled(1)
        );
        // A source that never failed for it logs in at once.
        assert_eq!(a.login_at("root", "right", ip(7), t0).unwrap().uid, 0);
        // Other names are not affected at the guessing sources.
        assert_eq!(
            a.login_at("someone", "wrong", src(0), t0),
            Err(AuthError::Failed)
        );
    }

    #[test]
    fn token_failures_count_per_source() {
        let a = fake_auth();
        let me = ip(60);
        for _ in 0..5 {
            assert_eq!(a.check_source(me), Ok(()));
            a.token_failed(me);
        }
        assert!(matches!(
            a.check_source(me),
            Err(AuthError::Throttled { .. })
        ));
        assert_eq!(a.check_source(ip(61)), Ok(()));
        // They do not throttle password logins of users from that source (below 21).
        assert_eq!(
            a.login_at("root", "right", me, Instant::now()).unwrap().uid,
            0
        );
    }

    #[test]
    fn empty_password_counts_internal_errors_do_not() {
        let a = fake_auth();
        let t0 = Instant::now();
        for _ in 0..10 {
            let e = a.login_at("root", "broken", ip(3), t0).unwrap_err();
            assert!(
                matches!(e, AuthError::Internal(ref m) if m.contains("System error")),
                "{e}"
            );
        }
        for _ in 0..5 {
            assert_eq!(a.login_at("root", "", ip(3), t0), Err(AuthError::Failed));
        }
        assert_eq!(a.login_at("root", "right", ip(3), t0), throttled(1));
        let long = "x".repeat(MAX_USER_LEN + 1);
        assert_eq!(
            a.login_at(&long, "right", ip(4), t0),
            Err(AuthError::Failed)
        );
    }

    #[test]
    fn throttle_tables_stay_bounded() {
        let a = fake_auth();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 * 2) {
            let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let now = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(
                a.login_at(&format!("u{i}"), "", src, now),
                Err(AuthError::Failed)
            );
        }
        let t = a.throttle.lock();
        assert!(
            t.by_source.map.len() <= MAX_KEYS,
            "{}",
            t.by_source.map.len()
        );
        assert!(t.by_user.map.len() <= MAX_KEYS, "{}", t.by_user.map.len());
        assert!(t.by_pair.map.len() <= MAX_KEYS, "{}", t.by_pair.map.len());
        // The most recent sources are the ones kept.
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + MAX_KEYS as u32 * 2 - 1));
        assert!(t.by_source.map.contains_key(&newest));
        drop(t);
        // Once the window has passed, a new insert prunes every old key.
        let mut t = a.throttle.lock();
        let later = t0 + WINDOW + Duration::from_secs(60);
        t.by_source.shrink(later);
        assert!(t.by_source.map.is_empty());
    }

    #[test]
    fn only_running_user_may_log_in_when_not_root() {
        let mut a = fake_auth();
        a.is_root = false;
        a.running_user = "alice".into();
        let t0 = Instant::now();
        let e = a.login_at("bob", "right", ip(5), t0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "only alice can log in: this server does not run as root"
        );
        // Not counted as failures.
        for _ in 0..10 {
            let _ = a.login_at("bob", "wrong", ip(5), t0);
        }
        assert!(matches!(
            a.login_at("bob", "wrong", ip(5), t0),
            Err(AuthError::NotPermitted { .. })
        ));
    }

    #[test]
    fn missing_pam_service_is_an_internal_error() {
        let mut a = fake_auth();
        a.check_service_file = true;
        a.service = "jetstream-test-no-such-service".into();
        let e = a
            .login_at("root", "right", ip(6), Instant::now())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "authentication error: PAM service /etc/pam.d/jetstream-test-no-such-service is \
             missing; install packaging/pam.d/jetstream"
        );
    }

    #[test]
    fn looks_up_users_and_groups() {
        let root = lookup("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.home, Path::new("/root"));
        assert!(root.groups.contains(&0));
        assert_eq!(by_uid(0).unwrap().unwrap(), root);
        assert_eq!(lookup("jstest_no_such_user").unwrap(), None);
        assert_eq!(lookup("ro\0ot").unwrap(), None);
        assert_eq!(current().unwrap().uid, euid());
        assert_eq!(group_gid("root").unwrap(), Some(0));
        assert_eq!(group_gid("jstest_no_such_group").unwrap(), None);
    }

    fn fabricated(uid: u32, gid: u32, groups: Vec<u32>) -> SystemUser {
        SystemUser {
            name: format!("fab{uid}"),
            uid,
            gid,
            home: PathBuf::from("/"),
            groups,
        }
    }

    #[test]
    fn superuser_policy_rules() {
        let uid = if euid() == 4242 { 4243 } else { 4242 };
        let plain = fabricated(uid, 4242, vec![4242]);
        let defaults = SuperuserPolicy::new(vec![], vec![]);
        assert!(defaults
            .groups()
            .iter()
            .all(|g| DEFAULT_SUPERGROUPS.contains(&g.as_str())));
        assert!(!defaults.is_superuser(&plain));
        assert!(defaults.is_superuser(&fabricated(0, 4242, vec![])));
        assert!(defaults.is_superuser(&fabricated(euid(), 4242, vec![])));
        let by_name = SuperuserPolicy::new(vec![plain.name.clone()], vec!["nogroup".into()]);
        assert!(by_name.is_superuser(&plain));
        assert_eq!(by_name.groups(), ["nogroup"]);
        // Group 0 ("root") as primary or supplementary group.
        let by_group = SuperuserPolicy::new(vec![], vec!["root".into()]);
        assert!(by_group.is_superuser(&fabricated(uid, 0, vec![])));
        assert!(by_group.is_superuser(&fabricated(uid, 4242, vec![4242, 0])));
        assert!(!by_group.is_superuser(&plain));
        let unknown = SuperuserPolicy::new(vec![], vec!["jstest_no_such_group".into()]);
        assert!(!unknown.is_superuser(&plain));
    }

    #[test]
    fn superuser_policy_with_real_users_and_groups() {
        if !is_root() {
            println!("skipped: needs root");
            return;
        }
        let tu = TestUser::create(Some("pw-for-policy")).unwrap();
        let group = TestGroup::create().unwrap();
        let u = lookup(tu.name()).unwrap().unwrap();
        assert_eq!((u.uid, u.gid), (tu.uid(), tu.gid()));
        let policy = SuperuserPolicy::new(vec![], vec![group.name().to_owned()]);
        assert!(!policy.is_superuser(&u));
        assert!(!SuperuserPolicy::new(vec![], vec![]).is_superuser(&u));
        let named = SuperuserPolicy::new(vec![tu.name().to_owned()], vec![]);
        assert!(named.is_superuser(&u));
        group.add(&tu).unwrap();
        let u = lookup(tu.name()).unwrap().unwrap();
        assert!(policy.is_superuser(&u));
        assert!(policy.is_superuser(&lookup("root").unwrap().unwrap()));
    }
}
