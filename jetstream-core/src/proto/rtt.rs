//! Round-trip time estimation, as in RFC 9002 §5.
//!
//! The estimator is pure arithmetic on samples handed to it; it never reads the clock.

use std::time::Duration;

/// Smoothed RTT, RTT variation and minimum RTT over every sample (RFC 9002 §5).
///
/// Before the first sample, `latest`, `smoothed` and `min` report the initial RTT and `var`
/// half of it, as RFC 9002 §6.2.2 prescribes for the first PTO.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    latest: Duration,
    latest_path: Duration,
    smoothed: Duration,
    var: Duration,
    min: Duration,
    has_samples: bool,
}

impl RttEstimator {
    /// An estimator that reports `initial_rtt` until the first sample arrives.
    pub fn new(initial_rtt: Duration) -> Self {
        Self {
            latest: initial_rtt,
            latest_path: initial_rtt,
            smoothed: initial_rtt,
            var: initial_rtt / 2,
            min: initial_rtt,
            has_samples: false,
        }
    }

    /// Feeds one RTT sample (send time of the largest newly acknowledged packet to the arrival
    /// of its ACK) with the peer-reported ACK delay.
    ///
    /// The ACK delay is subtracted only when the result stays at or above the minimum RTT, so a
    /// peer cannot shrink the estimate below what the path has shown. The first sample sets
    /// `smoothed = sample` and `var = sample / 2`, without any ACK-delay adjustment.
    pub fn update(&mut self, rtt_sample: Duration, ack_delay: Duration) {
        self.latest = rtt_sample;
        self.latest_path = rtt_sample.saturating_sub(ack_delay);
        if !self.has_samples {
            self.has_samples = true;
            self.min = rtt_sample;
            self.smoothed = rtt_sample;
            self.var = rtt_sample / 2;
            return;
        }
        self.min = self.min.min(rtt_sample);
        let adjusted = match rtt_sample.checked_sub(ack_delay) {
            Some(a) if a >= self.min => a,
            _ => rtt_sample,
        };
        let deviation = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + deviation) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// The most recent raw sample (the initial RTT before any sample).
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The most recent sample less the ACK delay the peer reported for it: the path's part,
    /// without the time the receiver held the acknowledgement (at the start of a transfer, while
    /// it opens its files).
    pub fn latest_path(&self) -> Duration {
        self.latest_path
    }

    /// The smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// The RTT variation.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// The minimum over all raw samples (the initial RTT before any sample). A windowed minimum
    /// is the congestion controller's business.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// Whether at least one sample has been taken.
    pub fn has_samples(&self) -> bool {
        self.has_samples
    }

    /// The probe timeout: `smoothed + max(4·var, 1 ms) + max_ack_delay` (RFC 9002 §6.2.1).
    pub fn pto(&self, max_ack_delay: Duration) -> Duration {
        self.smoothed + (self.var * 4).max(Duration::from_millis(1)) + max_ack_delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reports_initial_rtt_before_samples() {
        let r = RttEstimator::new(ms(100));
        assert!(!r.has_samples());
        assert_eq!(r.smoothed(), ms(100));
        assert_eq!(r.var(), ms(50));
        assert_eq!(r.min(), ms(100));
        assert_eq!(r.pto(ms(25)), ms(100 + 200 + 25));
    }

    #[test]
    fn first_sample_initialises_and_ignores_ack_delay() {
        let mut r = RttEstimator::new(ms(333));
        r.update(ms(40), ms(10));
        assert!(r.has_samples());
        assert_eq!(r.latest(), ms(40));
        assert_eq!(r.smoothed(), ms(40));
        assert_eq!(r.var(), ms(20));
        assert_eq!(r.min(), ms(40));
    }

    #[test]
    fn ewma_follows_rfc9002() {
        let mut r = RttEstimator::new(ms(333));
        r.update(ms(80), Duration::ZERO);
        // adjusted = 120 - 20 = 100 (>= min 80): var = (3·40 + |80-100|)/4 = 35,
        // smoothed = (7·80 + 100)/8 = 82.5.
        r.update(ms(120), ms(20));
        assert_eq!(r.var(), ms(35));
        assert_eq!(r.smoothed(), Duration::from_micros(82_500));
        assert_eq!(r.min(), ms(80));
        assert_eq!(r.latest(), ms(120));
    }

    #[test]
    fn ack_delay_not_subtracted_below_min_rtt() {
        let mut r = RttEstimator::new(ms(333));
        r.update(ms(50), Duration::ZERO);
        // 60 - 20 = 40 < min 50: the raw 60 is used.
        r.update(ms(60), ms(20));
        assert_eq!(r.smoothed(), (ms(50) * 7 + ms(60)) / 8);
        // An ack delay larger than the sample itself is ignored too.
        r.update(ms(55), ms(500));
        assert_eq!(r.latest(), ms(55));
    }

    #[test]
    fn min_tracks_all_samples() {
        let mut r = RttEstimator::new(ms(10));
        for s in [30, 20, 25, 15, 40] {
            r.update(ms(s), Duration::ZERO);
        }
        assert_eq!(r.min(), ms(15));
    }

    #[test]
    fn pto_has_a_granularity_floor() {
        let mut r = RttEstimator::new(ms(1));
        for _ in 0..50 {
            r.update(Duration::from_micros(30), Duration::ZERO);
        }
        // var has decayed to ~0, so the 1 ms floor dominates.
        assert_eq!(r.smoothed(), Duration::from_micros(30));
        assert_eq!(r.pto(Duration::ZERO), Duration::from_micros(1030));
    }
}
