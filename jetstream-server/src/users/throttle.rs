//! Throttling of failed logins: failure tables per (user, source), per source and per user,
//! bounded in memory; and the key a source is counted by.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Failures older than this are forgotten.
pub(super) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one user name from one source allowed before that pair is refused.
const PAIR_FREE: usize = 4;
/// Failures from one source (any user names) allowed before the source is refused: more than
/// [`PAIR_FREE`], so that several people behind one NAT can each mistype, but few enough
/// that a source trying many names is soon slowed down.
pub(super) const SOURCE_FREE: usize = 20;
/// Failures of one user name (all sources) past which the name is "under attack": then a
/// source that has failed for it at least once in the window is refused for
/// [`MAX_BACKOFF`] after each failure, while a source that has not (the real user at home)
/// is not affected. One source cannot get there alone: its own pair limit stops it near 15
/// failures per window.
pub(super) const USER_FREE: usize = 100;
/// Longest refusal after the last failure.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Failures kept per key of the pair and source tables: beyond it the backoff is at its
/// maximum anyway.
const MAX_TRACKED: usize = 32;
/// The user-name key of token logins in the pair table (NUL cannot be in a user name).
pub(super) const TOKEN_KEY: &str = "\0token";
/// Keys per table before old ones are pruned (memory bound against address sprays).
pub(super) const MAX_KEYS: usize = 10_000;

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
pub(super) struct Failures(VecDeque<Instant>);

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
pub(super) struct Table<K> {
    pub(super) map: HashMap<K, Failures>,
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
    pub(super) fn shrink(&mut self, now: Instant) {
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
pub(super) struct Throttle {
    pub(super) by_pair: Table<(String, IpAddr)>,
    pub(super) by_source: Table<IpAddr>,
    pub(super) by_user: Table<String>,
}

impl Throttle {
    pub(super) fn new() -> Self {
        Self {
            by_pair: Table::new(PAIR_FREE, MAX_TRACKED),
            by_source: Table::new(SOURCE_FREE, MAX_TRACKED),
            by_user: Table::new(USER_FREE, USER_FREE + 1),
        }
    }

    /// How long an attempt for `user` (the cut name, or [`TOKEN_KEY`]) from `src` (a
    /// [`source_key`]) must still wait, if it must.
    pub(super) fn check(&mut self, now: Instant, user: &str, src: IpAddr) -> Option<Duration> {
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

    pub(super) fn record(&mut self, now: Instant, user: &str, src: IpAddr) {
        self.by_pair.record(now, (user.to_owned(), src));
        self.by_source.record(now, src);
        if user != TOKEN_KEY {
            self.by_user.record(now, user.to_owned());
        }
    }

    /// Sources that would be refused at `now`, alone or for some user name (distinct
    /// sources).
    pub(super) fn throttled_sources(&mut self, now: Instant) -> usize {
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
    pub(super) fn succeeded(&mut self, user: &str, src: IpAddr) {
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
