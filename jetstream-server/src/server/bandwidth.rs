//! Server-wide bandwidth limits (reference §7.6, seed 003 `bandwidthLimits`): an incoming
//! and an outgoing cap in kbit/s, each with its switch, borrowing between them, and a cap on
//! concurrent incoming transfers.
//!
//! How they are enforced: every 200 ms the server shares each cap among the transfers running
//! in that direction, max-min fairly (a transfer whose own cap, e.g. its destination's
//! `sendRateMax`, is below an equal share keeps its cap, and the rest is shared among the
//! others), and gives each its share as the engine's rate cap. The outgoing share is applied
//! to this server's sending engines directly. An incoming share is published to the sender,
//! which asks for it while it sends (`recv.transferRate`, also the sender's liveness check) and
//! paces to the lower of its own caps and the receiver's. Borrowing: with both caps active,
//! `borrowIncoming` lends what incoming traffic leaves unused to the outgoing cap, and
//! `borrowOutgoing` the reverse; lent capacity comes back as soon as traffic in the lender's
//! direction uses it (the next 200 ms tick).

use std::collections::HashMap;
use std::time::Instant;

use jetstream_api::params::UpdateBandwidthLimits;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Server;

/// The settings (`bandwidthLimits`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Whether the incoming cap applies.
    pub incoming_limit_active: bool,
    /// Incoming cap, kbit/s.
    pub incoming_rate_limit: u64,
    /// Whether the outgoing cap applies.
    pub outgoing_limit_active: bool,
    /// Outgoing cap, kbit/s.
    pub outgoing_rate_limit: u64,
    /// Lend unused incoming capacity to outgoing traffic.
    pub borrow_incoming: bool,
    /// Lend unused outgoing capacity to incoming traffic.
    pub borrow_outgoing: bool,
    /// At most this many transfers received at once (0: no limit).
    pub incoming_max_connections: u64,
}

impl Limits {
    /// The `bandwidthLimits` view.
    pub fn view(&self) -> Value {
        super::objects::to_json(&self.to_api())
    }

    /// The `bandwidthLimits` structure.
    pub fn to_api(&self) -> jetstream_api::types::BandwidthLimits {
        jetstream_api::types::BandwidthLimits {
            borrow_incoming: self.borrow_incoming,
            borrow_outgoing: self.borrow_outgoing,
            incoming_limit_active: self.incoming_limit_active,
            incoming_max_connections: self.incoming_max_connections,
            incoming_rate_limit: self.incoming_rate_limit,
            outgoing_limit_active: self.outgoing_limit_active,
            outgoing_rate_limit: self.outgoing_rate_limit,
        }
    }

    /// These limits with the settings `updateBandwidthLimits` gives changed (its parameters
    /// are named as in the view; an unknown name or a wrong type never gets here).
    pub fn updated(&self, p: &UpdateBandwidthLimits) -> Self {
        Self {
            incoming_limit_active: p
                .incoming_limit_active
                .unwrap_or(self.incoming_limit_active),
            incoming_rate_limit: p.incoming_rate_limit.unwrap_or(self.incoming_rate_limit),
            outgoing_limit_active: p
                .outgoing_limit_active
                .unwrap_or(self.outgoing_limit_active),
            outgoing_rate_limit: p.outgoing_rate_limit.unwrap_or(self.outgoing_rate_limit),
            borrow_incoming: p.borrow_incoming.unwrap_or(self.borrow_incoming),
            borrow_outgoing: p.borrow_outgoing.unwrap_or(self.borrow_outgoing),
            incoming_max_connections: p
                .incoming_max_connections
                .unwrap_or(self.incoming_max_connections),
        }
    }

    /// The caps in force, in bit/s, given what each direction uses now (bit/s): `(incoming,
    /// outgoing)`, `None` when a direction is not limited.
    pub fn effective(&self, incoming_used: u64, outgoing_used: u64) -> (Option<u64>, Option<u64>) {
        let inc = self
            .incoming_limit_active
            .then(|| self.incoming_rate_limit.saturating_mul(1000));
        let out = self
            .outgoing_limit_active
            .then(|| self.outgoing_rate_limit.saturating_mul(1000));
        match (inc, out) {
            (Some(i), Some(o)) => {
                let lend_in = if self.borrow_incoming {
                    i.saturating_sub(incoming_used)
                } else {
                    0
                };
                let lend_out = if self.borrow_outgoing {
                    o.saturating_sub(outgoing_used)
                } else {
                    0
                };
                (Some(i + lend_out), Some(o + lend_in))
            }
            other => other,
        }
    }
}

/// Max-min fair shares of `total` among transfers with their own caps (`None`: uncapped).
pub fn fair_shares(total: u64, caps: &[Option<u64>]) -> Vec<u64> {
    let mut shares = vec![0u64; caps.len()];
    let mut open: Vec<usize> = (0..caps.len()).collect();
    let mut left = total;
    while !open.is_empty() {
        let each = left / open.len() as u64;
        // Everyone whose own cap is below an equal share gets their cap; repeat with the rest.
        let (capped, rest): (Vec<usize>, Vec<usize>) = open
            .iter()
            .partition(|&&i| caps[i].is_some_and(|c| c < each));
        if capped.is_empty() {
            for &i in &rest {
                shares[i] = each;
            }
            break;
        }
        for &i in &capped {
            let c = caps[i].unwrap_or(0);
            shares[i] = c;
            left = left.saturating_sub(c);
        }
        open = rest;
    }
    shares
}

/// The manager's memory between ticks.
#[derive(Debug, Default)]
pub struct Manager {
    /// Rate cap last given to each sending transfer (bit/s; `None`: uncapped).
    applied: HashMap<String, Option<u64>>,
    /// Last byte count seen per transfer, to measure what each direction uses.
    last: HashMap<String, (u64, Instant)>,
}

impl Manager {
    /// Bits per second moved by transfer `id` since the last tick.
    fn rate(&mut self, id: &str, bytes: u64, now: Instant) -> u64 {
        let prev = self.last.insert(id.to_owned(), (bytes, now));
        match prev {
            Some((b, t)) if now > t => {
                (bytes.saturating_sub(b) as f64 * 8.0 / now.duration_since(t).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }
}

/// The cap a sending transfer starts with (bit/s; `None`: uncapped): its own cap `own`, or
/// below it an equal share of the outgoing limit among the senders running and this one, so
/// that the limit holds from its first datagram; [`tick`], run right after it starts, then
/// gives everyone their fair share.
pub fn initial_send_cap(server: &Server, own: Option<u64>) -> Option<u64> {
    let limits = server.bandwidth_limits();
    let Some(total) = limits.effective(u64::MAX, u64::MAX).1 else {
        return own;
    };
    let running = {
        let objs = server.objects.lock();
        objs.running
            .values()
            .filter(|c| c.engine().is_some())
            .count()
            + objs.downloads.len()
    };
    let share = (total / (running as u64 + 1)).max(1);
    Some(own.map_or(share, |o| o.min(share)))
}

/// One round: measures both directions, computes the caps in force, and gives every running
/// transfer its share (senders directly; receivers through `rateLimitKbps`, which their
/// senders ask for).
pub fn tick(server: &Server, m: &mut Manager) {
    let limits = server.bandwidth_limits();
    let now = Instant::now();
    // Sending transfers with their own caps (bit/s).
    let mut senders: Vec<(String, jetstream_core::Transfer, Option<u64>)> = Vec::new();
    let mut receiving: Vec<String> = Vec::new();
    {
        let mut objs = server.objects.lock();
        for (id, ctl) in &objs.running {
            let Some(t) = ctl.engine() else { continue };
            let dest_cap = objs
                .transfers
                .get(id)
                .and_then(|tr| objs.destinations.get(&tr.destination_id))
                .and_then(|d| d.send_rate_max);
            let cap = ctl.effective_cap(dest_cap);
            senders.push((id.clone(), t, cap.map(|k| k.saturating_mul(1000))));
        }
        for (id, (t, cap)) in &objs.downloads {
            senders.push((id.clone(), t.clone(), cap.map(|k| k.saturating_mul(1000))));
        }
        for r in objs.receives.values_mut() {
            if super::receive::is_receiving(r) {
                receiving.push(r.id.clone());
            }
        }
    }
    // One status snapshot per sender: drop the finished, measure the rest.
    let mut out_used = 0;
    senders.retain(|(id, t, _)| {
        let st = t.status();
        if st.state.is_final() {
            return false;
        }
        out_used += m.rate(id, st.bytes_sent, now);
        true
    });
    let mut in_used = 0;
    {
        let objs = server.objects.lock();
        for id in &receiving {
            if let Some(bytes) = objs.receives.get(id).map(|r| r.counters.bytes_recv) {
                in_used += m.rate(&format!("in:{id}"), bytes, now);
            }
        }
    }
    let (in_cap, out_cap) = limits.effective(in_used, out_used);
    // Outgoing: shares of the cap, or each transfer's own cap.
    let caps: Vec<Option<u64>> = senders.iter().map(|s| s.2).collect();
    let targets: Vec<Option<u64>> = match out_cap {
        Some(total) => fair_shares(total, &caps).into_iter().map(Some).collect(),
        None => caps,
    };
    for ((id, t, _), target) in senders.iter().zip(targets) {
        if m.applied.get(id) != Some(&target) {
            t.set_send_rate_max(target.map(jetstream_core::BitsPerSecond));
            m.applied.insert(id.clone(), target);
        }
    }
    // Incoming: each receive's share, told to its sender.
    let shares = in_cap.map(|total| fair_shares(total, &vec![None; receiving.len()]));
    {
        let mut objs = server.objects.lock();
        for r in objs.receives.values_mut() {
            r.rate_cap_kbps = None;
        }
        if let Some(shares) = shares {
            for (id, share) in receiving.iter().zip(shares) {
                if let Some(r) = objs.receives.get_mut(id) {
                    r.rate_cap_kbps = Some((share / 1000).max(1));
                }
            }
        }
    }
    // Forget transfers that are gone.
    let live: Vec<&String> = senders.iter().map(|s| &s.0).collect();
    m.applied.retain(|id, _| live.contains(&id));
    m.last.retain(|id, _| {
        live.contains(&id)
            || id
                .strip_prefix("in:")
                .is_some_and(|r| receiving.iter().any(|x| x == r))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_max_min_fair() {
        assert_eq!(fair_shares(300, &[None, None, None]), [100, 100, 100]);
        assert_eq!(fair_shares(300, &[Some(50), None, None]), [50, 125, 125]);
        assert_eq!(fair_shares(300, &[Some(50), Some(60), None]), [50, 60, 190]);
        assert_eq!(fair_shares(100, &[Some(500), Some(500)]), [50, 50]);
        assert!(fair_shares(100, &[]).is_empty());
        let s = fair_shares(1_000_000, &[Some(1), Some(2), None, None]);
        assert_eq!(s.iter().sum::<u64>(), 1_000_000 - (1_000_000 - 3) % 2);
    }

    #[test]
    fn borrowing_lends_only_what_the_other_side_leaves_unused() {
        let mut l = Limits {
            incoming_limit_active: true,
            incoming_rate_limit: 200_000,
            outgoing_limit_active: true,
            outgoing_rate_limit: 300_000,
            ..Limits::default()
        };
        assert_eq!(l.effective(0, 0), (Some(200_000_000), Some(300_000_000)));
        l.borrow_incoming = true;
        // The seed's example: 200 in + 300 out = 500 usable by outgoing when nothing comes in.
        assert_eq!(l.effective(0, 0).1, Some(500_000_000));
        // Taken back as incoming traffic appears.
        assert_eq!(l.effective(150_000_000, 0).1, Some(350_000_000));
        l.borrow_outgoing = true;
        assert_eq!(l.effective(0, 300_000_000).0, Some(200_000_000));
        assert_eq!(l.effective(0, 100_000_000).0, Some(400_000_000));
        l.outgoing_limit_active = false;
        assert_eq!(
            l.effective(0, 0),
            (Some(200_000_000), None),
            "borrowing needs both"
        );
    }

    #[test]
    fn updates_change_only_what_is_given() {
        let l = Limits {
            borrow_incoming: true,
            ..Limits::default()
        };
        let u = l.updated(&UpdateBandwidthLimits {
            outgoing_limit_active: Some(true),
            outgoing_rate_limit: Some(1000),
            ..Default::default()
        });
        assert!(u.outgoing_limit_active && u.outgoing_rate_limit == 1000 && u.borrow_incoming);
        assert_eq!(u.view()["outgoingRateLimit"], 1000);
        assert_eq!(l.updated(&UpdateBandwidthLimits::default()), l);
    }
}
