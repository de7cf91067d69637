//! Logging users in: the root / running-user rule, throttling, PAM, then the user database.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::database::{current, euid, lookup, SystemUser};
use super::throttle::{source_key, Throttle, TOKEN_KEY};
use super::PAM_DIR;
use crate::pam;

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

/// Longest user name passed to PAM; longer ones fail (and are tracked truncated).
const MAX_USER_LEN: usize = 256;

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
    /// An authenticator for the PAM `service` (normally [`PAM_SERVICE`](super::PAM_SERVICE));
    /// records whether the process runs as root and as whom, and loads the PAM library
    /// (logging why not where it is missing: password logins then fail with
    /// [`AuthError::Internal`]).
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

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::super::throttle::{MAX_BACKOFF, MAX_KEYS, SOURCE_FREE, USER_FREE, WINDOW};
    use super::super::PAM_SERVICE;
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

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
}
