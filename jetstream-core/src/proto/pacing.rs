//! A token-bucket pacer, in bytes.
//!
//! # Burst policy: no line-rate bursts beyond ~2 ms of the target rate
//!
//! The driver wakes up on a timer whose granularity is about 1 ms (epoll). A bucket that only
//! held one datagram would cap a 10 Gbit/s sender at one datagram per wakeup. The bucket
//! therefore holds up to `rate × 2 ms` of credit, clamped to
//! `[2 × max_datagram_size, 16 MiB]`, plus what a wakeup up to 2 ms late earns
//! ([`LATE_WAKEUP`]): after each wakeup the sender may emit what accumulated since the previous
//! one, and never more. Bottleneck queues thus see bursts of ~2 ms (at most ~4 ms after a late
//! wakeup) worth of the *target* rate, which the congestion controller's queue budget absorbs.
//!
//! Credit is kept in byte·nanoseconds so that arbitrarily frequent refills at low rates lose
//! no fractional bytes: over a long run the bytes granted equal `rate × time` up to one burst.

use std::time::{Duration, Instant};

/// Maximum burst duration at the target rate.
const BURST_TIME: Duration = Duration::from_millis(2);
/// How late a timer wake-up may be without losing sending time (see [`Pacer::budget`]).
const LATE_WAKEUP: Duration = Duration::from_millis(2);
/// Hard upper bound of the bucket, whatever the rate.
const MAX_BURST_BYTES: u64 = 16 << 20;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Token bucket deciding how many bytes may leave now at a given rate.
#[derive(Clone, Debug)]
pub struct Pacer {
    max_datagram_size: u64,
    /// Credit in bytes × 10⁹. Negative after a `consume` larger than the credit (a debt repaid
    /// by later refills, which keeps the long-run average exact).
    credit: i128,
    /// Time of the last refill; `None` before the first one.
    last: Option<Instant>,
}

impl Pacer {
    /// A pacer for datagrams of at most `max_datagram_size` bytes. The bucket starts full at the
    /// first [`Pacer::budget`] call.
    pub fn new(max_datagram_size: u64) -> Self {
        Self {
            max_datagram_size: max_datagram_size.max(1),
            credit: 0,
            last: None,
        }
    }

    /// The bucket size for `rate` bytes/s: `rate × 2 ms` clamped to
    /// `[2 × max_datagram_size, 16 MiB]`.
    pub fn capacity(&self, rate: u64) -> u64 {
        let burst = (u128::from(rate) * BURST_TIME.as_nanos() / NANOS_PER_SEC) as u64;
        let floor = self.max_datagram_size.saturating_mul(2);
        burst.clamp(floor.min(MAX_BURST_BYTES), MAX_BURST_BYTES)
    }

    /// Refills the bucket for the time elapsed since the previous refill at `rate` bytes/s, and
    /// returns the bytes that may be sent now.
    ///
    /// A `now` earlier than the previous refill adds nothing.
    pub fn budget(&mut self, now: Instant, rate: u64) -> u64 {
        let burst = i128::from(self.capacity(rate)) * NANOS_PER_SEC as i128;
        // Credit may exceed one burst by what `LATE_WAKEUP` earns: the event loop's timer
        // wakes up to a millisecond late (epoll rounds timeouts up to whole milliseconds), and
        // capping at one burst would throw that time away (a capped rate would be undershot
        // by up to a third).
        let late = (u128::from(rate) * LATE_WAKEUP.as_nanos()).min(i128::MAX as u128 / 4) as i128;
        let cap = burst + late.min(i128::from(MAX_BURST_BYTES) * NANOS_PER_SEC as i128);
        match self.last {
            None => self.credit = burst,
            Some(last) => {
                let elapsed = now.saturating_duration_since(last).as_nanos();
                // u64 rate × elapsed nanoseconds fits easily in i128 for any realistic elapsed
                // time; saturate anyway.
                let add = u128::from(rate)
                    .saturating_mul(elapsed)
                    .min(i128::MAX as u128 / 2);
                self.credit = (self.credit + add as i128).min(cap);
            }
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        (self.credit.max(0) / NANOS_PER_SEC as i128) as u64
    }

    /// Takes `bytes` from the bucket. Taking more than [`Pacer::budget`] returned leaves a debt.
    pub fn consume(&mut self, bytes: u64) {
        self.credit -= i128::from(bytes) * NANOS_PER_SEC as i128;
        // Bound the debt to one bucket's worth of the largest burst so it cannot grow unbounded
        // if a caller ignores the budget.
        let floor = -(i128::from(MAX_BURST_BYTES) * NANOS_PER_SEC as i128);
        self.credit = self.credit.max(floor);
    }

    /// The earliest time at which `bytes` (clamped to the bucket size) will be available at
    /// `rate`, counted from the last refill. Returns `None` before the first
    /// [`Pacer::budget`] call, when the bucket is full and the answer is "now".
    ///
    /// A zero rate is treated as 1 byte/s.
    pub fn ready_at(&self, rate: u64, bytes: u64) -> Option<Instant> {
        let last = self.last?;
        let want = i128::from(bytes.min(self.capacity(rate))) * NANOS_PER_SEC as i128;
        if self.credit >= want {
            return Some(last);
        }
        let deficit = (want - self.credit) as u128;
        let rate = u128::from(rate.max(1));
        let nanos = deficit.div_ceil(rate);
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Some(
            last.checked_add(wait)
                .unwrap_or(last + Duration::from_secs(3600)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDS: u64 = 1200;

    #[test]
    fn starts_with_one_burst_and_caps_at_burst_plus_late_wakeup() {
        let base = Instant::now();
        let mut p = Pacer::new(MDS);
        // 100 MB/s → 200 kB per 2 ms.
        assert_eq!(p.budget(base, 100_000_000), 200_000);
        p.consume(200_000);
        assert_eq!(p.budget(base, 100_000_000), 0);
        // A long idle refills only up to the cap: one burst plus what a late wake-up
        // (2 ms) earns.
        assert_eq!(
            p.budget(base + Duration::from_secs(5), 100_000_000),
            400_000
        );
    }

    #[test]
    fn a_late_wakeup_loses_no_sending_time() {
        let base = Instant::now();
        let rate = 12_500_000; // 100 Mbit/s
        let mut p = Pacer::new(MDS);
        let mut sent = 0;
        let mut now = base;
        // Each wake-up comes 1 ms after the pacer said it would be ready.
        for _ in 0..1000 {
            let b = p.budget(now, rate);
            p.consume(b);
            sent += b;
            now = p.ready_at(rate, p.capacity(rate)).unwrap() + Duration::from_millis(1);
        }
        let achieved = sent as f64 / now.duration_since(base).as_secs_f64();
        assert!(achieved > rate as f64 * 0.97, "{achieved} of {rate}");
    }

    #[test]
    fn capacity_clamps() {
        let p = Pacer::new(MDS);
        assert_eq!(p.capacity(0), 2 * MDS);
        assert_eq!(p.capacity(1_000_000), 2 * MDS); // 2 kB < 2 datagrams
        assert_eq!(p.capacity(10_000_000), 20_000);
        assert_eq!(p.capacity(u64::MAX), 16 << 20);
    }

    #[test]
    fn refills_proportionally_to_time() {
        let base = Instant::now();
        let mut p = Pacer::new(MDS);
        let rate = 10_000_000; // 10 MB/s = 10 bytes/µs
        let full = p.budget(base, rate);
        p.consume(full);
        assert_eq!(p.budget(base + Duration::from_micros(100), rate), 1000);
        assert_eq!(p.budget(base + Duration::from_micros(150), rate), 1500);
        // Time going backwards adds nothing.
        assert_eq!(p.budget(base + Duration::from_micros(120), rate), 1500);
    }

    #[test]
    fn ready_at_predicts_refill() {
        let base = Instant::now();
        let mut p = Pacer::new(MDS);
        assert_eq!(p.ready_at(1_000_000, MDS), None);
        let rate = 1_000_000; // 1 byte/µs
        let full = p.budget(base, rate);
        assert_eq!(p.ready_at(rate, MDS), Some(base));
        p.consume(full);
        assert_eq!(
            p.ready_at(rate, MDS),
            Some(base + Duration::from_micros(1200))
        );
        let t = base + Duration::from_micros(700);
        assert_eq!(p.budget(t, rate), 700);
        assert_eq!(
            p.ready_at(rate, MDS),
            Some(base + Duration::from_micros(1200))
        );
        // Requests above the bucket size are clamped to it (else they would never be ready).
        assert_eq!(
            p.ready_at(rate, 1 << 30),
            Some(base + Duration::from_micros(2400))
        );
        assert!(p.ready_at(0, MDS).is_some());
    }

    #[test]
    fn debt_is_repaid() {
        let base = Instant::now();
        let mut p = Pacer::new(MDS);
        let rate = 1_000_000;
        let full = p.budget(base, rate);
        p.consume(full + 1000);
        assert_eq!(p.budget(base + Duration::from_micros(999), rate), 0);
        assert_eq!(p.budget(base + Duration::from_micros(1500), rate), 500);
    }

    /// A sender that wakes up when `ready_at` says (rounded up to a 1 ms timer, like epoll) and
    /// sends whole datagrams: over 10 s the bytes sent match `rate × time` within 1 %.
    #[test]
    fn long_run_matches_rate() {
        for rate in [50_000u64, 1_000_000, 12_500_000, 250_000_000, 1_250_000_000] {
            let base = Instant::now();
            let mut p = Pacer::new(MDS);
            let end = base + Duration::from_secs(10);
            let mut now = base;
            let mut sent = 0u64;
            // Start after the initial full bucket so that only the refills are measured.
            let initial = p.budget(now, rate);
            p.consume(initial);
            while now < end {
                while p.budget(now, rate) >= MDS {
                    p.consume(MDS);
                    sent += MDS;
                }
                let ready = p.ready_at(rate, MDS).unwrap_or(now);
                // 1 ms timer granularity: wake at the next millisecond tick at or after `ready`.
                let since = ready.saturating_duration_since(base).as_micros() as u64;
                let tick = since.div_ceil(1000) * 1000;
                now = (base + Duration::from_micros(tick)).max(now + Duration::from_micros(1));
            }
            let expect = rate as f64 * 10.0;
            let err = (sent as f64 - expect).abs() / expect;
            assert!(
                err < 0.01,
                "rate {rate}: sent {sent}, expected {expect}, err {err}"
            );
        }
    }
}
