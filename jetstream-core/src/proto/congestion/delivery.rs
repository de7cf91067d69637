//! Delivery-rate sampling, per draft-cheng-iccrg-delivery-rate-estimation.
//!
//! Each sent packet snapshots how much had been delivered and when; when it is acknowledged, the
//! bytes delivered since that snapshot divided by the elapsed time (the larger of the send and
//! the ACK intervals, which filters out ACK compression) is a delivery-rate sample. Per ACK frame
//! only the packet with the largest snapshot (the most recently sent) gives the sample.

use std::time::{Duration, Instant};

use super::SendSnapshot;

/// One delivery-rate sample, taken per ACK frame.
#[derive(Clone, Copy, Debug)]
pub(super) struct RateSample {
    /// Bytes/s, or `None` when the interval was too short to be trusted.
    pub(super) delivery_rate: Option<u64>,
    /// Whether the sample was taken while application-limited (then it only counts if it
    /// raises the estimate).
    pub(super) is_app_limited: bool,
    /// `delivered` at the send time of the packet that gave the sample (for round counting).
    pub(super) prior_delivered: u64,
    /// Bytes newly acknowledged by this ACK frame.
    pub(super) newly_acked: u64,
}

/// Per-ACK-frame accumulator.
#[derive(Clone, Copy, Debug)]
struct Pending {
    prior_delivered: u64,
    send_elapsed: Duration,
    ack_elapsed: Duration,
    is_app_limited: bool,
    newly_acked: u64,
}

/// The connection-wide delivery counters.
#[derive(Clone, Debug, Default)]
pub(super) struct DeliveryRate {
    /// Total bytes acknowledged.
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    /// Non-zero while application-limited: the `delivered` value after which samples are
    /// trusted again.
    app_limited_until: u64,
    pending: Option<Pending>,
}

impl DeliveryRate {
    pub(super) fn delivered(&self) -> u64 {
        self.delivered
    }

    pub(super) fn on_packet_sent(
        &mut self,
        now: Instant,
        bytes: u64,
        bytes_in_flight_before: u64,
    ) -> SendSnapshot {
        if bytes_in_flight_before == 0 || self.delivered_time.is_none() {
            // Start of a new flight: intervals are measured from here.
            self.first_sent_time = Some(now);
            self.delivered_time = Some(now);
        }
        SendSnapshot {
            delivered: self.delivered,
            delivered_time: self.delivered_time.unwrap_or(now),
            first_sent_time: self.first_sent_time.unwrap_or(now),
            is_app_limited: self.app_limited_until != 0,
            tx_in_flight: bytes_in_flight_before.saturating_add(bytes),
        }
    }

    pub(super) fn on_packet_acked(
        &mut self,
        now: Instant,
        sent_time: Instant,
        snapshot: &SendSnapshot,
        bytes: u64,
    ) {
        self.delivered = self.delivered.saturating_add(bytes);
        self.delivered_time = Some(now);
        let take = match &self.pending {
            None => true,
            Some(p) => snapshot.delivered >= p.prior_delivered,
        };
        let newly_acked = self.pending.map_or(0, |p| p.newly_acked) + bytes;
        if take {
            self.pending = Some(Pending {
                prior_delivered: snapshot.delivered,
                send_elapsed: sent_time.saturating_duration_since(snapshot.first_sent_time),
                ack_elapsed: now.saturating_duration_since(snapshot.delivered_time),
                is_app_limited: snapshot.is_app_limited,
                newly_acked,
            });
            self.first_sent_time = Some(sent_time);
        } else if let Some(p) = &mut self.pending {
            p.newly_acked = newly_acked;
        }
    }

    pub(super) fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited_until = self.delivered.saturating_add(bytes_in_flight).max(1);
    }

    /// Closes the current ACK frame and returns its sample, if any packet was acknowledged.
    /// Samples over an interval shorter than `min_rtt` are not trusted (the draft's rule: they
    /// would overestimate the rate).
    pub(super) fn take_sample(&mut self, min_rtt: Option<Duration>) -> Option<RateSample> {
        let p = self.pending.take()?;
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let interval = p.send_elapsed.max(p.ack_elapsed);
        let bytes = self.delivered.saturating_sub(p.prior_delivered);
        let too_short = interval.is_zero() || min_rtt.is_some_and(|m| interval < m);
        let delivery_rate = if too_short {
            None
        } else {
            let rate = u128::from(bytes) * 1_000_000_000 / interval.as_nanos();
            Some(u64::try_from(rate).unwrap_or(u64::MAX))
        };
        Some(RateSample {
            delivery_rate,
            is_app_limited: p.is_app_limited,
            prior_delivered: p.prior_delivered,
            newly_acked: p.newly_acked,
        })
    }
}
