//! Housekeeping (reference §7.3): ended transfers expire `timeLimitSeconds` (48 h) after they
//! end, manifests that no transfer uses expire that long after creation, API tokens at their
//! expiry, receive records that long after they end. Runs every `intervalSeconds` (an hour),
//! or at once with `garbageCollect`. The same thread notices status changes and writes
//! `transferUpdated` / `receiveUpdated` events to the event log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::objects::{now_us, Micros};
use super::Server;

/// `configuration.garbageCollect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcSettings {
    /// Seconds between collections.
    pub interval_seconds: u64,
    /// Grace period after an object is ready to go.
    pub time_limit_seconds: u64,
}

impl GcSettings {
    /// The `configuration.garbageCollect` structure.
    pub fn to_api(self) -> jetstream_api::types::GcSettings {
        jetstream_api::types::GcSettings {
            interval_seconds: self.interval_seconds,
            time_limit_seconds: self.time_limit_seconds,
        }
    }
}

impl Default for GcSettings {
    fn default() -> Self {
        Self {
            interval_seconds: 3600,
            time_limit_seconds: 48 * 3600,
        }
    }
}

/// What one collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collected {
    /// Sending transfers.
    pub transfers: usize,
    /// Manifests.
    pub manifests: usize,
    /// API tokens.
    pub tokens: usize,
    /// Receive records.
    pub receives: usize,
}

impl Collected {
    /// The `garbageCollect` structure.
    pub fn to_api(self) -> jetstream_api::types::GcCounts {
        jetstream_api::types::GcCounts {
            transfers: self.transfers as u64,
            manifests: self.manifests as u64,
            tokens: self.tokens as u64,
            receives: self.receives as u64,
        }
    }
}

/// Removes what has expired at `now`.
pub fn collect(server: &Server, now: Micros) -> Collected {
    let limit = i64::try_from(server.gc_settings().time_limit_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);
    let expired = |t: Micros| t.saturating_add(limit) <= now;
    let mut c = Collected::default();
    let mut objs = server.objects.lock();
    let running: Vec<String> = objs.running.keys().cloned().collect();
    let before = objs.transfers.len();
    objs.transfers.retain(|id, t| {
        !(t.status.is_final() && !running.contains(id) && t.end_time.is_some_and(expired))
    });
    c.transfers = before - objs.transfers.len();
    // In use: by a transfer, or shared by a token that still works.
    let used: Vec<String> = objs
        .transfers
        .values()
        .map(|t| t.manifest_id.clone())
        .chain(
            objs.tokens
                .values()
                .filter(|t| !t.expired(now))
                .filter_map(|t| t.shared.as_ref().map(|sh| sh.manifest_id.clone())),
        )
        .collect();
    let before = objs.manifests.len();
    objs.manifests
        .retain(|id, m| used.contains(id) || m.status == "pending" || !expired(m.creation_time));
    c.manifests = before - objs.manifests.len();
    let before = objs.tokens.len();
    objs.tokens.retain(|_, t| !t.expired(now));
    c.tokens = before - objs.tokens.len();
    let before = objs.receives.len();
    objs.receives.retain(|_, r| {
        r.status == "receiving" || !expired(r.last_error_time.or(r.last_recv_time).unwrap_or(now))
    });
    c.receives = before - objs.receives.len();
    drop(objs);
    if c != Collected::default() {
        crate::log!(
            "gc: removed {} transfers, {} manifests, {} tokens, {} receive records",
            c.transfers,
            c.manifests,
            c.tokens,
            c.receives
        );
        server.save();
    }
    c
}

/// The housekeeping loop: status changes into the event log every 200 ms, collections on
/// schedule (woken early by `wake` when the settings change).
pub fn run(server: &Arc<Server>, wake: &crossbeam_channel::Receiver<()>) {
    let mut last_gc = Instant::now();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut seen_recv: HashMap<String, String> = HashMap::new();
    while !server.is_stopping() {
        let woken = wake.recv_timeout(Duration::from_millis(200)).is_ok();
        server.rebalance_bandwidth();
        note_changes(server, &mut seen, &mut seen_recv);
        let every = Duration::from_secs(server.gc_settings().interval_seconds.max(1));
        if woken || last_gc.elapsed() >= every {
            last_gc = Instant::now();
            collect(server, now_us());
        }
    }
}

fn note_changes(
    server: &Server,
    seen: &mut HashMap<String, String>,
    seen_recv: &mut HashMap<String, String>,
) {
    let mut changed: Vec<(&str, Value)> = Vec::new();
    {
        // Receive statuses are fresh: the bandwidth tick just before refreshed them.
        let objs = server.objects.lock();
        diff(
            seen,
            objs.transfers.values().map(|t| (&t.id, t.status.as_str())),
            |id| {
                objs.transfers
                    .get(id)
                    .map(super::objects::TransferRec::view)
            },
            "transferUpdated",
            &mut changed,
        );
        diff(
            seen_recv,
            objs.receives.values().map(|r| (&r.id, r.status.as_str())),
            |id| objs.receives.get(id).map(super::objects::RecvRec::view),
            "receiveUpdated",
            &mut changed,
        );
    }
    for (event, view) in changed {
        server.events.record(event, view);
    }
}

/// Adds `(event, view)` for every object whose status differs from the one last seen, and
/// forgets the objects that are gone.
fn diff<'a>(
    seen: &mut HashMap<String, String>,
    now: impl Iterator<Item = (&'a String, &'a str)>,
    view: impl Fn(&str) -> Option<Value>,
    event: &'static str,
    out: &mut Vec<(&'static str, Value)>,
) {
    let mut live = std::collections::HashSet::new();
    for (id, status) in now {
        live.insert(id.as_str());
        if seen.get(id).is_none_or(|s| s != status) {
            seen.insert(id.clone(), status.to_owned());
            out.extend(view(id).map(|v| (event, v)));
        }
    }
    seen.retain(|id, _| live.contains(id.as_str()));
}

/// `updateGarbageCollectSettings` parameters applied to `current`.
///
/// # Errors
/// A value of zero or one that does not fit.
pub fn updated(
    current: GcSettings,
    interval: Option<u64>,
    limit: Option<u64>,
) -> Result<GcSettings, String> {
    let mut s = current;
    if let Some(i) = interval {
        if i == 0 {
            return Err("intervalSeconds must be at least 1".into());
        }
        s.interval_seconds = i;
    }
    if let Some(l) = limit {
        s.time_limit_seconds = l;
    }
    Ok(s)
}

/// The `configuration.garbageCollect` view.
pub fn view(s: GcSettings) -> Value {
    super::objects::to_json(&s.to_api())
}
